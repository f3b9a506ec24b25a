"""Compiles a model for every GPU target kiln-compile accepts (the list its own
refusal message gives) and checks that none aborts: each ends in an artifact
(exit 0, through ptxas when the CUDA toolkit is there) or a one-line error.
Prints `ok: <target>` per target and `targets: <n>`; exits non-zero on the
first target that crashed or printed more than one error line.

    compile_targets.py MODEL WORKDIR
"""
import os
import re
import subprocess
import sys


def main():
    model, work = sys.argv[1], sys.argv[2]
    os.makedirs(work, exist_ok=True)
    r = subprocess.run(["kiln-compile", model, "--target", "sm_0"], capture_output=True, text=True)
    m = re.search(r"\(targets: cpu, (.*)\)", r.stderr)
    if r.returncode == 0 or not m:
        sys.exit(f"FAILED: no list of targets in: {r.stderr!r}")
    targets = [t.strip() for t in m.group(1).split(",")]
    for t in targets:
        out = os.path.join(work, t + ".kiln")
        r = subprocess.run(["kiln-compile", model, "--target", t, "--max-seq-len", "64",
                            "--prefill-chunk", "16", "--quiet", "-o", out],
                           capture_output=True, text=True)
        if r.returncode != 0 or not os.path.getsize(out):
            sys.exit(f"FAILED: --target {t}: exit {r.returncode}: {r.stderr.strip()[:400]}")
        print(f"ok: {t}")
    print(f"targets: {len(targets)}")


if __name__ == "__main__":
    main()
