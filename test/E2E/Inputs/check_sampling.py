#!/usr/bin/env python3
"""Sampling statistics of a compiled model: kiln-run's draws against the
distribution its own logits define.

For one prompt, the logits of its last position are dumped (kiln-run
--dump-logits), and for each sampling configuration (temperature, top-k,
top-p, min-p) kiln-run draws N first tokens (--num-return-sequences N
--max-new-tokens 1, seeds S, S + 1, ...). The expected distribution is
computed here in numpy with the semantics of tfm.sample (Passes.td and
TfmOps.td): softmax(logits / T) restricted to the top-k largest, then to the
smallest set of largest whose probability reaches top-p of what remains,
then to those at least min-p times as likely as the most likely. Checks:

  - every draw lies in the kept set (up to tokens whose logit is within
    `--boundary-tol` of the last kept one: the dumped logits come from
    another entry, whose rounding may differ on a GPU);
  - a chi-square test of the counts (bins with an expected count below 5
    merged) does not reject at p < 1e-4 (Wilson-Hilferty approximation);
  - temperature 0 gives the argmax every time, and the same seed gives the
    same draws.

GPU artifacts draw on the device (sample_rows), CPU ones on the host
(runtime/lib/Sampler.cpp); both must pass. Prints one "ok:" line per check,
or "FAIL:" lines and exits 1.

  check_sampling.py ARTIFACT [--kiln-run PATH] [--samples N] [--work DIR]
"""

import argparse
import math
import os
import subprocess
import sys
import tempfile

import numpy as np

CONFIGS = [
    # name, temperature, top_k, top_p, min_p
    ("t1.0", 1.0, 0, 1.0, 0.0),
    ("t0.7-topk8", 0.7, 8, 1.0, 0.0),
    ("t1.3-topp0.7", 1.3, 0, 0.7, 0.0),
    ("t1.0-minp0.05", 1.0, 0, 1.0, 0.05),
    ("t0.9-topk50-topp0.9-minp0.02", 0.9, 50, 0.9, 0.02),
]


def kept_distribution(logits, t, k, p, min_p):
    """Probabilities of tfm.sample's draw (float64), and the kept mask."""
    x = logits.astype(np.float64)
    keep = np.isfinite(x)
    if 0 < k < x.size:
        kth = np.sort(x[keep])[::-1][k - 1]
        keep &= x >= kth
    w = np.where(keep, np.exp((x - x[keep].max()) / t), 0.0)
    if p < 1:
        order = np.argsort(-w, kind="stable")
        cum = np.cumsum(w[order])
        last = int(np.searchsorted(cum, p * cum[-1]))
        boundary = w[order[min(last, x.size - 1)]]
        keep &= w >= boundary
        w = np.where(keep, w, 0.0)
    if min_p > 0:
        keep &= w >= min_p * w.max()
        w = np.where(keep, w, 0.0)
    return w / w.sum(), keep


def chi2_pvalue(stat, dof):
    """Upper tail of chi-square (Wilson-Hilferty normal approximation)."""
    if dof <= 0:
        return 1.0
    z = ((stat / dof) ** (1 / 3) - (1 - 2 / (9 * dof))) / math.sqrt(2 / (9 * dof))
    return 0.5 * math.erfc(z / math.sqrt(2))


def chi2(counts, probs, n):
    expected = probs * n
    big = expected >= 5
    obs = list(counts[big])
    exp = list(expected[big])
    rest_o, rest_e = counts[~big].sum(), expected[~big].sum()
    if rest_e >= 5:
        obs.append(rest_o)
        exp.append(rest_e)
    elif exp:  # fold the tail into the smallest bin
        i = int(np.argmin(exp))
        obs[i] += rest_o
        exp[i] += rest_e
    obs, exp = np.array(obs, float), np.array(exp, float)
    stat = float(((obs - exp) ** 2 / exp).sum())
    dof = len(exp) - 1
    return stat, dof, chi2_pvalue(stat, dof)


def run(cmd):
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit(f"FAIL: {' '.join(cmd)}: exit {r.returncode}: {r.stderr.strip()}")
    return r.stdout


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("artifact")
    ap.add_argument("--kiln-run", default="kiln-run")
    ap.add_argument("--samples", type=int, default=3000)
    ap.add_argument("--prompt-ids", default="1,17,42,7")
    ap.add_argument("--seed", type=int, default=1000)
    ap.add_argument("--boundary-tol", type=float, default=0.0)
    ap.add_argument("--work")
    a = ap.parse_args()
    work = a.work or tempfile.mkdtemp(prefix="kiln-sampling-")
    os.makedirs(work, exist_ok=True)
    base = [a.kiln_run, a.artifact, "--prompt-ids", a.prompt_ids, "--max-new-tokens", "1",
            "--format", "ids"]
    dump = os.path.join(work, "logits.npy")
    greedy = int(run(base + ["--dump-logits", dump]).split()[0])
    logits = np.load(dump)[-1].astype(np.float64)
    failures = 0
    if greedy != int(np.argmax(logits)):
        print(f"FAIL: greedy draw {greedy} is not the argmax {int(np.argmax(logits))} of the "
              "dumped logits")
        failures += 1
    out = run(base + ["--num-return-sequences", "50", "--seed", "7"])
    ids = [int(v) for v in out.split()]
    if ids != [greedy] * 50:
        print("FAIL: temperature 0 did not give the argmax every time")
        failures += 1
    else:
        print(f"ok: temperature 0: 50 draws, all the argmax {greedy}")

    for name, t, k, p, min_p in CONFIGS:
        probs, keep = kept_distribution(logits, t, k, p, min_p)
        flags = ["--temperature", str(t), "--top-k", str(k), "--top-p", str(p),
                 "--min-p", str(min_p), "--seed", str(a.seed)]
        out = run(base + flags + ["--num-return-sequences", str(a.samples)])
        draws = np.array([int(v) for v in out.split()])
        if draws.size != a.samples:
            print(f"FAIL: {name}: {draws.size} draws, expected {a.samples}")
            failures += 1
            continue
        outside = draws[~keep[draws]]
        if outside.size:
            last_kept = logits[keep].min()
            far = [int(i) for i in outside if last_kept - logits[i] > a.boundary_tol]
            if far:
                print(f"FAIL: {name}: {len(far)} draws outside the kept set, e.g. token "
                      f"{far[0]} (logit {logits[far[0]]:.4f}, last kept {last_kept:.4f})")
                failures += 1
                continue
        counts = np.bincount(draws, minlength=logits.size).astype(float)
        stat, dof, pv = chi2(counts, probs, a.samples)
        tv = 0.5 * np.abs(counts / a.samples - probs).sum()
        again = run(base + flags + ["--num-return-sequences", "20"])
        same = [int(v) for v in again.split()] == [int(v) for v in draws[:20]]
        verdict = "ok" if pv >= 1e-4 and same else "FAIL"
        failures += verdict == "FAIL"
        print(f"{verdict}: {name}: {a.samples} draws over {int(keep.sum())} kept tokens, "
              f"chi2 {stat:.1f} on {dof} dof, p = {pv:.3g}, total variation {tv:.3f}, "
              f"same seed {'same' if same else 'DIFFERENT'} draws")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
