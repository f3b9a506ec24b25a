#!/usr/bin/env python3
"""Greedy agreement of sequences batched with others vs run alone (issue 17).

  agreement.py (--url http://127.0.0.1:PORT | --serve) --artifact model.kiln [--n 64]
               [--vocab V] [--prompt-min 128] [--prompt-max 512] [--gen 256] [--seed 0]
               [--require-all]

With --serve it starts `kiln-serve ARTIFACT --port 0` itself (and stops it at the end). Sends
--n greedy requests of random token-id prompts (EOS ignored, `return_token_ids`) to a
running kiln-serve all at once, then the same requests one at a time, and compares each
sequence's generated ids. For a sequence whose ids differ it runs `kiln-run ARTIFACT
--dump-logits` on the prompt and the common prefix and reports the logits of the first
diverging position: the gap between the two tokens chosen (alone and batched) and the gap of
the top two. Prints one line per diverging sequence and a summary; the exit status is 0 unless
--require-all is given and a sequence differs (the CPU target, where batching must change
nothing).
"""
import argparse
import http.client
import json
import os
import random
import subprocess
import sys
import tempfile
import threading
import urllib.parse

import numpy as np


def complete(host, port, prompt, gen):
    conn = http.client.HTTPConnection(host, port, timeout=600)
    body = {"prompt": prompt, "max_tokens": gen, "temperature": 0, "ignore_eos": True,
            "return_token_ids": True}
    conn.request("POST", "/v1/completions", body=json.dumps(body),
                 headers={"Content-Type": "application/json"})
    resp = conn.getresponse()
    payload = json.loads(resp.read().decode())
    conn.close()
    if resp.status != 200:
        raise SystemExit(f"agreement: HTTP {resp.status}: {payload}")
    return payload["choices"][0]["token_ids"]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--url")
    ap.add_argument("--serve", action="store_true")
    ap.add_argument("--artifact", required=True)
    ap.add_argument("--n", type=int, default=64)
    ap.add_argument("--vocab", type=int, default=128256)
    ap.add_argument("--prompt-min", type=int, default=128)
    ap.add_argument("--prompt-max", type=int, default=512)
    ap.add_argument("--gen", type=int, default=256)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--require-all", action="store_true")
    a = ap.parse_args()
    if a.serve == bool(a.url):
        raise SystemExit("agreement: give --url or --serve")
    server = None
    if a.serve:
        server = subprocess.Popen(["kiln-serve", a.artifact, "--port", "0"],
                                  stderr=subprocess.PIPE, text=True)
        line = server.stderr.readline()
        if "listening on http://127.0.0.1:" not in line:
            raise SystemExit(f"agreement: kiln-serve did not start: {line!r}")
        a.url = "http://127.0.0.1:" + line.rsplit(":", 1)[1].strip()
        threading.Thread(target=server.stderr.read, daemon=True).start()
    try:
        return compare(a)
    finally:
        if server:
            server.terminate()
            server.wait(timeout=30)


def compare(a):
    u = urllib.parse.urlparse(a.url)
    rng = random.Random(a.seed)
    prompts = [[rng.randrange(a.vocab) for _ in range(rng.randint(a.prompt_min, a.prompt_max))]
               for _ in range(a.n)]
    batched = [None] * a.n

    def work(i):
        batched[i] = complete(u.hostname, u.port, prompts[i], a.gen)
    threads = [threading.Thread(target=work, args=(i,)) for i in range(a.n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    alone = [complete(u.hostname, u.port, p, a.gen) for p in prompts]
    same = 0
    gaps = []
    for i, (x, y) in enumerate(zip(alone, batched)):
        if x == y:
            same += 1
            continue
        k = next(j for j, (s, t) in enumerate(zip(x, y)) if s != t)
        with tempfile.TemporaryDirectory() as d:
            f = os.path.join(d, "l.npy")
            ids = ",".join(str(t) for t in prompts[i] + x[:k])
            subprocess.run(["kiln-run", a.artifact, "--no-verify-weights", "--prompt-ids", ids,
                            "--max-new-tokens", "1",
                            "--dump-logits", f], check=True, capture_output=True)
            row = np.load(f)[-1]
        top = np.sort(row)[::-1]
        gap = float(row[x[k]] - row[y[k]])
        gaps.append(abs(gap))
        print(f"agreement: sequence {i} (prompt {len(prompts[i])}): the first {k} of {a.gen} "
              f"tokens agree; at token {k} alone chose {x[k]}, batched {y[k]}: their logits "
              f"differ by {gap:.4f} (kiln-run, alone's path), the top two by "
              f"{float(top[0] - top[1]):.4f}; the logit is {float(top[0]):.3f}")
    print(f"agreement: {same} of {a.n} sequences generate the same {a.gen} greedy tokens batched "
          f"({a.n} at once) and alone ({100.0 * same / a.n:.1f}%)"
          + (f"; the others diverge where the two tokens' logits differ by at most "
             f"{max(gaps):.4f}" if gaps else ""))
    return 1 if a.require_all and same != a.n else 0


if __name__ == "__main__":
    sys.exit(main())
