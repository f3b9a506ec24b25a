#!/usr/bin/env python3
"""A load generator for kiln-serve (loopback only; the standard library only).

  scripts/serve-bench.py [--url http://127.0.0.1:8080] [--requests 64] [--concurrency 8]
                         [--prompt-min 128] [--prompt-max 512] [--gen 256] [--gen-min N]
                         [--vocab 256] [--cancel-fraction 0] [--server-pid PID]
                         [--max-time 600] [--seed 0] [--json]

Sends `--requests` streamed /v1/completions requests, at most `--concurrency` at once, each
with a prompt of random token ids (length uniform in [prompt-min, prompt-max], ids below
`--vocab`), greedy, `--gen` new tokens (uniform in [gen-min, gen] with --gen-min) with EOS
ignored. `--cancel-fraction` of them (seeded) close their connection after 1-8 chunks, as a
client that goes away. Stops issuing requests after `--max-time` seconds. Reports the requests
that completed, were cancelled and failed (a completed one must have exactly its max_tokens),
the tokens generated, the total decode throughput (generated tokens / wall time), time to first
token (TTFT) and inter-token latency (ITL: per request, (last token time - first token time) /
(tokens - 1)) as p50 / p99 over the completed requests, the server's /metrics counters before
and after (with the scheduler's seconds in decode calls, prefill calls and besides), the rows still
in use once it settles (and with a paged KV cache the blocks still held: a non-zero exit unless the
pool is full again), and with --server-pid the server's RSS (from
/proc) when 10% and 50% of the requests are done and at the end.
"""
import argparse
import http.client
import json
import random
import sys
import threading
import time
import urllib.parse


def percentile(values, q):
    if not values:
        return float("nan")
    values = sorted(values)
    k = (len(values) - 1) * q
    lo, hi = int(k), min(int(k) + 1, len(values) - 1)
    return values[lo] + (values[hi] - values[lo]) * (k - lo)


def one(host, port, body, timeout, drop_after=None):
    """Streams one completion; returns (ttft, itl, tokens), or None when it
    dropped the connection after `drop_after` chunks; raises on errors."""
    start = time.perf_counter()
    conn = http.client.HTTPConnection(host, port, timeout=timeout)
    conn.request("POST", "/v1/completions", body=json.dumps(body).encode(),
                 headers={"Content-Type": "application/json"})
    resp = conn.getresponse()
    if resp.status != 200:
        raise RuntimeError(f"HTTP {resp.status}: {resp.read().decode()[:200]}")
    first = last = None
    tokens = chunks = 0
    while True:
        if drop_after is not None and chunks >= drop_after:
            conn.sock.close()
            conn.close()
            return None
        line = resp.fp.readline()
        if not line:
            raise RuntimeError("the stream ended without [DONE]")
        if not line.startswith(b"data: "):
            continue
        data = line[len(b"data: "):].strip()
        if data == b"[DONE]":
            break
        chunk = json.loads(data)
        chunks += 1
        if "error" in chunk:
            raise RuntimeError(chunk["error"].get("message", "error"))
        now = time.perf_counter()
        if chunk["choices"][0].get("text"):
            first = first or now
            last = now
        if "usage" in chunk:
            tokens = chunk["usage"]["completion_tokens"]
    conn.close()
    if tokens != body["max_tokens"]:
        raise RuntimeError(f"{tokens} tokens, not max_tokens {body['max_tokens']}")
    if first is None:
        first = last = time.perf_counter()
    itl = (last - first) / (tokens - 1) if tokens > 1 else 0.0
    return first - start, itl, tokens


def metrics(host, port):
    conn = http.client.HTTPConnection(host, port, timeout=30)
    conn.request("GET", "/metrics")
    text = conn.getresponse().read().decode()
    conn.close()
    out = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, value = line.split()
            out[name] = float(value) if name.endswith("_seconds_total") else int(value)
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--url", default="http://127.0.0.1:8080")
    ap.add_argument("--requests", type=int, default=64)
    ap.add_argument("--concurrency", type=int, default=8)
    ap.add_argument("--prompt-min", type=int, default=128)
    ap.add_argument("--prompt-max", type=int, default=512)
    ap.add_argument("--gen", type=int, default=256)
    ap.add_argument("--gen-min", type=int, default=None)
    ap.add_argument("--cancel-fraction", type=float, default=0.0)
    ap.add_argument("--server-pid", type=int, default=None)
    ap.add_argument("--vocab", type=int, default=256)
    ap.add_argument("--max-time", type=float, default=600)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    url = urllib.parse.urlparse(a.url)
    if url.hostname not in ("127.0.0.1", "localhost", "::1"):
        sys.exit("serve-bench: loopback only (--url http://127.0.0.1:PORT)")
    if not (1 <= a.prompt_min <= a.prompt_max) or a.requests < 1 or a.concurrency < 1 \
            or a.gen < 1 or a.vocab < 1 or not 0 <= a.cancel_fraction <= 1 or \
            (a.gen_min is not None and not 1 <= a.gen_min <= a.gen):
        sys.exit("serve-bench: bad sizes")
    host, port = url.hostname, url.port or 80
    rng = random.Random(a.seed)
    bodies, drops = [], []
    for _ in range(a.requests):
        n = rng.randint(a.prompt_min, a.prompt_max)
        gen = a.gen if a.gen_min is None else rng.randint(a.gen_min, a.gen)
        bodies.append({"prompt": [rng.randrange(a.vocab) for _ in range(n)],
                       "max_tokens": gen, "temperature": 0, "ignore_eos": True,
                       "stream": True})
        drops.append(rng.randint(1, 8) if rng.random() < a.cancel_fraction else None)

    def rss_kb():
        try:
            with open(f"/proc/{a.server_pid}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        return int(line.split()[1])
        except OSError:
            return None
        return None
    rss = {}
    before = metrics(host, port)
    if a.server_pid:
        rss["start"] = rss_kb()
    results, failures, cancelled = [], [], [0]
    lock = threading.Lock()
    next_index = [0]
    deadline = time.perf_counter() + a.max_time

    def worker():
        while True:
            with lock:
                i = next_index[0]
                if i >= len(bodies) or time.perf_counter() > deadline:
                    return
                next_index[0] += 1
            try:
                r = one(host, port, bodies[i], timeout=a.max_time, drop_after=drops[i])
                with lock:
                    if r is None:
                        cancelled[0] += 1
                    else:
                        results.append(r)
            except Exception as e:  # noqa: BLE001 (counted and reported)
                with lock:
                    failures.append(str(e))
            with lock:
                done = len(results) + len(failures) + cancelled[0]
                for name, frac in (("10%", 0.1), ("50%", 0.5)):
                    if a.server_pid and name not in rss and done >= frac * len(bodies):
                        rss[name] = rss_kb()

    start = time.perf_counter()
    threads = [threading.Thread(target=worker) for _ in range(a.concurrency)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - start
    # Dropped streams are noticed at the server's next step: let it settle.
    settle = time.perf_counter() + 30
    after = metrics(host, port)
    while (after.get("kiln_kv_slots_in_use", 0) or after.get("kiln_kv_blocks_in_use", 0)) \
            and time.perf_counter() < settle:
        time.sleep(0.1)
        after = metrics(host, port)
    if a.server_pid:
        rss["end"] = rss_kb()
    tokens = sum(r[2] for r in results)
    report = {
        "requests": a.requests, "completed": len(results), "cancelled": cancelled[0],
        "failed": len(failures),
        "concurrency": a.concurrency, "prompt_tokens": [a.prompt_min, a.prompt_max],
        "generated_tokens": tokens, "wall_s": round(wall, 3),
        "throughput_tok_s": round(tokens / wall, 1) if wall > 0 else 0.0,
        "ttft_ms": {"p50": round(1e3 * percentile([r[0] for r in results], 0.5), 2),
                    "p99": round(1e3 * percentile([r[0] for r in results], 0.99), 2)},
        "itl_ms": {"p50": round(1e3 * percentile([r[1] for r in results], 0.5), 2),
                   "p99": round(1e3 * percentile([r[1] for r in results], 0.99), 2)},
        "server": {k: after.get(k, 0) - before.get(k, 0) for k in
                   ("kiln_requests_finished_total", "kiln_requests_cancelled_total",
                    "kiln_requests_failed_total", "kiln_generated_tokens_total",
                    "kiln_decode_steps_total", "kiln_prefill_calls_total",
                    "kiln_preemptions_total")},
        # The scheduler's seconds in decode calls, prefill calls and besides.
        "server_seconds": {k.removeprefix("kiln_").removesuffix("_seconds_total"):
                           round(after.get(k, 0) - before.get(k, 0), 3) for k in
                           ("kiln_decode_call_seconds_total", "kiln_prefill_call_seconds_total",
                            "kiln_scheduler_host_seconds_total")},
        # Decode calls by the rows of the entry that ran them (--decode-batches).
        "decode_calls_by_rows": {
            k.split('"')[1]: after[k] - before.get(k, 0) for k in sorted(after)
            if k.startswith("kiln_decode_entry_steps_total{") and after[k] - before.get(k, 0)},
        "rows_in_use_after": after.get("kiln_kv_slots_in_use"),
        # A paged KV cache: its blocks, and those still held once settled (0: the pool is
        # full again).
        "kv_blocks": after.get("kiln_kv_blocks", 0),
        "kv_blocks_in_use_after": after.get("kiln_kv_blocks_in_use", 0),
        "server_rss_kb": rss,
        "errors": failures[:5],
    }
    if a.json:
        print(json.dumps(report))
    else:
        gen = f"{a.gen_min}-{a.gen}" if a.gen_min is not None else str(a.gen)
        print(f"serve-bench: {len(results)} of {a.requests} requests completed, "
              f"{cancelled[0]} cancelled by their client, {len(failures)} failed, "
              f"{a.concurrency} at once; prompts {a.prompt_min}-{a.prompt_max} tokens, "
              f"{gen} new each")
        print(f"serve-bench: {tokens} tokens in {wall:.2f} s = {report['throughput_tok_s']} tok/s; "
              f"TTFT p50 {report['ttft_ms']['p50']} ms, p99 {report['ttft_ms']['p99']} ms; "
              f"ITL p50 {report['itl_ms']['p50']} ms, p99 {report['itl_ms']['p99']} ms")
        print(f"serve-bench: server: {report['server']}; rows in use after: "
              f"{report['rows_in_use_after']}" +
              (f"; KV blocks in use after: {report['kv_blocks_in_use_after']} of "
               f"{report['kv_blocks']}" if report["kv_blocks"] else "") +
              (f"; RSS (KB) {rss}" if rss else ""))
        print(f"serve-bench: server seconds: {report['server_seconds']}; decode calls by "
              f"entry rows: {report['decode_calls_by_rows']}")
        for e in failures[:5]:
            print(f"serve-bench: failed: {e}")
    sys.exit(1 if failures or report["rows_in_use_after"] or report["kv_blocks_in_use_after"]
             else 0)


if __name__ == "__main__":
    main()
