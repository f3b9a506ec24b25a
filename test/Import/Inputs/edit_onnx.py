#!/usr/bin/env python3
"""Change one thing in an ONNX file, for the importer's rejection tests.

Usage::

    edit_onnx.py IN OUT --op OP_TYPE [--set NAME=VALUE]... [--domain D]
                        [--clear-input I]... [--scale-row INIT:ROW:FACTOR]

Every node of OP_TYPE gets the attributes of --set (an int if VALUE parses as one,
else a float), the domain of --domain, and empty names for the inputs listed by
--clear-input (an absent optional input). --scale-row multiplies one row of a 2-D
float initializer by FACTOR. Everything else is kept as it was.
"""
import argparse

import numpy as np
import onnx
from onnx import helper, numpy_helper


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("inp")
    ap.add_argument("out")
    ap.add_argument("--op", required=True)
    ap.add_argument("--set", action="append", default=[])
    ap.add_argument("--domain")
    ap.add_argument("--clear-input", type=int, action="append", default=[])
    ap.add_argument("--scale-row")
    args = ap.parse_args()
    m = onnx.load(args.inp)
    nodes = [n for n in m.graph.node if n.op_type == args.op]
    if not nodes:
        raise SystemExit(f"edit_onnx: no {args.op} node in {args.inp}")
    for n in nodes:
        for kv in args.set:
            name, value = kv.split("=", 1)
            try:
                v = int(value)
            except ValueError:
                v = float(value)
            for a in list(n.attribute):
                if a.name == name:
                    n.attribute.remove(a)
            n.attribute.append(helper.make_attribute(name, v))
        if args.domain is not None:
            n.domain = args.domain
        for i in args.clear_input:
            n.input[i] = ""
    if args.scale_row:
        name, row, factor = args.scale_row.split(":")
        for t in m.graph.initializer:
            if t.name == name:
                a = numpy_helper.to_array(t).copy()
                a[int(row)] *= np.asarray(float(factor), a.dtype)
                t.CopyFrom(numpy_helper.from_array(a, name))
    onnx.save(m, args.out)


if __name__ == "__main__":
    main()
