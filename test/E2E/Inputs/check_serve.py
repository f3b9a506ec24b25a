#!/usr/bin/env python3
"""kiln-serve end to end, on loopback, with a compiled artifact that has a
tokenizer and at least 2 batch rows (the CPU target in CI):

  check_serve.py ARTIFACT
  check_serve.py --chat ARTIFACT SYSTEM USER N   (see main_chat)

Starts `kiln-serve ARTIFACT --port 0` and checks, printing one "ok:" line
per check (a failed check raises):
  - /health, /v1/models;
  - greedy completions equal `kiln-run --prompt` for 8 prompts, run one at
    a time and all at once (more requests than batch rows: queued, admitted
    and retired at every step), with and without "stream" (server-sent
    events whose pieces add up to the same text, then [DONE]);
  - a decoding request advances inside the calls that feed another's long
    prompt (chunked prefill and decode in one call), and with
    --separate-prefill in decode calls of its own (the same texts);
  - a stop string, seeded sampling reproducible alone and in a batch;
  - bad requests: HTTP 400 with a JSON error naming the field;
  - a client that disconnects mid-stream frees its row;
  - a load of 48 requests of random lengths, a quarter of them dropped by
    their client midway: every other one completes, and at the end no row is
    in use and the counters add up (/metrics);
  - --max-queue: requests beyond it get HTTP 503;
  - SIGTERM stops the server with status 0.
Uses only the standard library (urllib, http.client, threading).
"""
import http.client
import json
import os
import random
import signal
import subprocess
import sys
import threading
import time

BENCH = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "..", "scripts",
                     "serve-bench.py")
PROMPTS = ["def fibonacci(n):", "import os\n", "class Stack:\n", "for i in range(",
           "x = [", "# Sort a list\ndef", "while True:\n", "return self."]


def fail(message):
    raise SystemExit("FAIL: " + message)


def start(artifact, *flags):
    proc = subprocess.Popen(["kiln-serve", artifact, "--port", "0", *flags],
                            stderr=subprocess.PIPE, text=True)
    line = proc.stderr.readline()
    if "listening on http://127.0.0.1:" not in line:
        fail(f"kiln-serve did not start: {line!r}")
    port = int(line.rsplit(":", 1)[1])
    # Keep reading stderr so that the server never blocks on it.
    threading.Thread(target=proc.stderr.read, daemon=True).start()
    return proc, port


def request(port, method, path, body=None, timeout=120):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    data = body if isinstance(body, (bytes, type(None))) else json.dumps(body).encode()
    conn.request(method, path, body=data, headers={"Content-Type": "application/json"})
    resp = conn.getresponse()
    payload = resp.read().decode()
    conn.close()
    return resp.status, payload


def complete(port, prompt, stream=False, **extra):
    body = {"prompt": prompt, "max_tokens": 32, "temperature": 0, **extra}
    if not stream:
        status, payload = request(port, "POST", "/v1/completions", body)
        if status != 200:
            fail(f"{prompt!r}: HTTP {status}: {payload}")
        answer = json.loads(payload)
        return answer["choices"][0]["text"], answer["choices"][0]["finish_reason"]
    body["stream"] = True
    status, payload = request(port, "POST", "/v1/completions", body)
    if status != 200:
        fail(f"{prompt!r} (stream): HTTP {status}: {payload}")
    events = [e[len("data: "):] for e in payload.split("\n\n") if e]
    if events[-1] != "[DONE]":
        fail(f"stream of {prompt!r} does not end with [DONE]: {events[-1]!r}")
    chunks = [json.loads(e) for e in events[:-1]]
    text = "".join(c["choices"][0]["text"] for c in chunks)
    finish = chunks[-1]["choices"][0]["finish_reason"]
    if any(c["choices"][0]["finish_reason"] for c in chunks[:-1]):
        fail("a finish_reason before the last chunk")
    return text, finish


def metrics(port):
    status, payload = request(port, "GET", "/metrics")
    if status != 200:
        fail(f"/metrics: HTTP {status}")
    out = {}
    for line in payload.splitlines():
        if line and not line.startswith("#"):
            name, value = line.split()
            out[name] = float(value) if name.endswith("_seconds_total") else int(value)
    return out


def concurrently(fn, args):
    results = [None] * len(args)
    errors = []

    def work(i):
        try:
            results[i] = fn(*args[i])
        except BaseException as e:  # noqa: BLE001 (reported below)
            errors.append(e)
    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(args))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
    return results


def decode_calls_during_long_prefill(port, long_prompt):
    """Request A decodes (64 tokens, EOS ignored); once its first token is
    out, request B's long prompt is sent. Returns the decode calls the server
    made meanwhile and the prompt chunks B took: with mixed steps A advances
    inside B's prefill calls, without them each of those steps adds a decode
    call of its own."""
    before = metrics(port)
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    body = {"prompt": "x = 1", "max_tokens": 64, "temperature": 0, "stream": True,
            "ignore_eos": True}
    conn.request("POST", "/v1/completions", body=json.dumps(body).encode(),
                 headers={"Content-Type": "application/json"})
    resp = conn.getresponse()
    while not resp.fp.readline().startswith(b"data: "):
        pass
    b = threading.Thread(target=complete, args=(port, long_prompt), kwargs={"max_tokens": 4})
    b.start()
    while resp.fp.readline():
        pass
    conn.close()
    b.join()
    after = settle(port, "A and B done", lambda m: m["kiln_kv_slots_in_use"] == 0)
    return (after["kiln_decode_steps_total"] - before["kiln_decode_steps_total"],
            after["kiln_prefill_calls_total"] - before["kiln_prefill_calls_total"])


def drop_midway(port, prompt, chunks):
    """Streams a long completion and closes the connection after `chunks`
    events."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    body = {"prompt": prompt, "max_tokens": 200, "temperature": 0, "stream": True}
    conn.request("POST", "/v1/completions", body=json.dumps(body).encode(),
                 headers={"Content-Type": "application/json"})
    resp = conn.getresponse()
    seen = 0
    while seen < chunks:
        line = resp.fp.readline()
        if not line:
            break
        if line.startswith(b"data: "):
            seen += 1
    conn.sock.close()
    conn.close()


def settle(port, what, cond, seconds=30):
    deadline = time.time() + seconds
    while time.time() < deadline:
        m = metrics(port)
        if cond(m):
            return m
        time.sleep(0.1)
    fail(f"{what}: {metrics(port)}")


def main():
    artifact = sys.argv[1]
    expected = {}
    for p in PROMPTS:
        r = subprocess.run(["kiln-run", artifact, "--prompt", p, "--max-new-tokens", "32"],
                           capture_output=True, text=True, check=True)
        expected[p] = r.stdout[:-1]  # kiln-run ends the text with a newline

    proc, port = start(artifact)
    try:
        status, payload = request(port, "GET", "/health")
        if status != 200 or json.loads(payload) != {"status": "ok"}:
            fail(f"/health: {status} {payload}")
        status, payload = request(port, "GET", "/v1/models")
        if status != 200 or json.loads(payload)["data"][0]["object"] != "model":
            fail(f"/v1/models: {status} {payload}")
        print("ok: /health and /v1/models answer")

        for p in PROMPTS:
            text, finish = complete(port, p)
            if text != expected[p] or finish not in ("length", "stop"):
                fail(f"alone: {p!r}: {text!r} ({finish}) != kiln-run's {expected[p]!r}")
        # vLLM's return_token_ids: the generated ids beside the text, kiln-run's.
        ids = subprocess.run(["kiln-run", artifact, "--prompt", PROMPTS[0], "--max-new-tokens",
                              "32", "--format", "ids"], capture_output=True, text=True,
                             check=True).stdout.split()
        status, payload = request(port, "POST", "/v1/completions",
                                  {"prompt": PROMPTS[0], "max_tokens": 32, "temperature": 0,
                                   "return_token_ids": True})
        got = json.loads(payload)["choices"][0].get("token_ids") if status == 200 else None
        if got != [int(t) for t in ids]:
            fail(f"return_token_ids: HTTP {status}: {got} != kiln-run's {ids}")
        print(f"ok: return_token_ids gives kiln-run's {len(ids)} ids")
        m = metrics(port)
        if m["kiln_prefill_calls_total"] <= len(PROMPTS):
            fail(f"prompts longer than the prefill chunk took one call each: {m}")
        print(f"ok: {len(PROMPTS)} greedy completions, one at a time, equal kiln-run's text "
              f"({m['kiln_prefill_calls_total']} prefill calls: a chunk per step)")
        # With --decode-batches 1 (@decode_b1), one sequence at a time runs on
        # row 0 through the one-row entry.
        one_row = m.get('kiln_decode_entry_steps_total{rows="1"}', 0)
        if m["kiln_kv_slots"] > 1 and 'kiln_decode_entry_steps_total{rows="1"}' in m:
            if one_row != m["kiln_decode_steps_total"]:
                fail(f"one request at a time: {one_row} of {m['kiln_decode_steps_total']} "
                     "decode calls through @decode_b1")
            print(f"ok: one request at a time decodes through @decode_b1 ({one_row} calls)")

        together = concurrently(complete, [(port, p) for p in PROMPTS])
        for p, (text, _) in zip(PROMPTS, together):
            if text != expected[p]:
                fail(f"together: {p!r}: {text!r} != {expected[p]!r}")
        m = metrics(port)
        full = m.get(f'kiln_decode_entry_steps_total{{rows="{m["kiln_kv_slots"]}"}}', 0)
        if 'kiln_decode_entry_steps_total{rows="1"}' in m and full == 0:
            fail(f"{len(PROMPTS)} at once never decoded through the full batch: {m}")
        print(f"ok: the same {len(PROMPTS)} sent at once on {m['kiln_kv_slots']} batch rows "
              "(queued, admitted and retired at every step) give the same text")

        # Chunked prefill and decode in one call (the default): while B's long
        # prompt is fed a chunk a step, A advances in those calls. A takes 63
        # decode steps after its first token; at least 10 of them fall in B's
        # prefill (its ~30 chunks), which then add no decode call.
        long_prompt = "".join(PROMPTS) * 2
        calls, chunks = decode_calls_during_long_prefill(port, long_prompt)
        if chunks < 12 or calls > 63 + 4 - 10:
            fail(f"mixed steps: {calls} decode calls, {chunks} prefill calls")
        print(f"ok: a decoding request advances inside another's prefill calls "
              f"({calls} decode calls for 63 + 3 decode steps, {chunks} prefill calls)")
        # --separate-prefill: the decoding rows get a call of their own after
        # every step's prompt chunks; the same text at once.
        proc2, port2 = start(artifact, "--separate-prefill")
        try:
            calls2, _ = decode_calls_during_long_prefill(port2, long_prompt)
            if calls2 < 63:
                fail(f"--separate-prefill: {calls2} decode calls for A's 63 steps")
            together = concurrently(complete, [(port2, p) for p in PROMPTS])
            for p, (text, _) in zip(PROMPTS, together):
                if text != expected[p]:
                    fail(f"--separate-prefill, together: {p!r}: {text!r} != {expected[p]!r}")
            print(f"ok: --separate-prefill: {calls2} decode calls in the same scenario, and "
                  f"the {len(PROMPTS)} at once give the same text")
        finally:
            proc2.terminate()
            proc2.wait(timeout=30)

        streamed = concurrently(complete, [(port, p, True) for p in PROMPTS])
        for p, (text, finish) in zip(PROMPTS, streamed):
            if text != expected[p] or finish not in ("length", "stop"):
                fail(f"stream: {p!r}: {text!r} != {expected[p]!r}")
        print("ok: streamed (server-sent events, then [DONE]): the pieces add up to the same text")

        text, finish = complete(port, "def f(", max_tokens=60, stop=["\n"])
        if "\n" in text or finish != "stop":
            fail(f"stop string: {text!r} ({finish})")
        print(f"ok: stop ['\\n'] ends the text before it (finish_reason stop): {text!r}")

        sampled = {"temperature": 0.8, "top_p": 0.9, "seed": 7}
        a, _ = complete(port, PROMPTS[0], **sampled)
        b, _ = complete(port, PROMPTS[0], **sampled)
        c = concurrently(lambda: complete(port, PROMPTS[0], **sampled), [()] * 3)
        if a != b or any(t != a for t, _ in c):
            fail(f"seeded sampling differs: {a!r} {b!r} {c!r}")
        print("ok: temperature 0.8, top_p 0.9, seed 7: the same text alone, again and in a batch")

        bad = [({"prompt": "x", "max_tokens": 100000}, "max_tokens"),
               ({"max_tokens": 4}, "prompt"),
               ({"prompt": "x", "n": 2}, "n"),
               ({"prompt": "x", "temperature": "hot"}, "temperature"),
               ({"prompt": "x", "top_p": 1.5}, "top_p"),
               ({"prompt": [1, 2, 10 ** 9]}, "prompt"),
               ({"prompt": "x", "stop": 3}, "stop"),
               ({"prompt": {"a": 1}}, "prompt"),
               (b"{not json", None)]
        for body, param in bad:
            status, payload = request(port, "POST", "/v1/completions", body)
            error = json.loads(payload).get("error", {})
            if status != 400 or not error.get("message") or error.get("param") != param:
                fail(f"bad request {body!r}: HTTP {status} {payload}")
        status, payload = request(port, "POST", "/v1/chat/completions",
                                  {"messages": "hello"})
        if status != 400 or json.loads(payload)["error"]["param"] != "messages":
            fail(f"chat with a bad 'messages': {status} {payload}")
        status, _ = request(port, "GET", "/v1/nothing")
        if status != 404:
            fail(f"an unknown path: HTTP {status}")
        print(f"ok: {len(bad) + 1} bad requests get HTTP 400 with a JSON error naming the "
              "field; an unknown path 404")

        before = metrics(port)
        drop_midway(port, PROMPTS[1], chunks=2)
        settle(port, "a dropped stream still holds its row",
               lambda m: m["kiln_requests_running"] == 0
               and m["kiln_requests_cancelled_total"] == before["kiln_requests_cancelled_total"] + 1)
        text, _ = complete(port, PROMPTS[1])
        if text != expected[PROMPTS[1]]:
            fail("after a dropped stream the same prompt gives other text")
        print("ok: a client that disconnects mid-stream frees its row (cancelled), and the "
              "row serves the next request")

        rng = random.Random(0)
        load, dropped = [], 0
        for i in range(48):
            p = rng.choice(PROMPTS)
            if i % 4 == 3:
                load.append(("drop", p, rng.randint(1, 4)))
                dropped += 1
            else:
                load.append(("complete", p, rng.randint(1, 40)))
        before = metrics(port)

        def one(kind, p, n):
            if kind == "drop":
                drop_midway(port, p, n)
                return None
            body = {"prompt": p, "max_tokens": n, "temperature": 0}
            status, payload = request(port, "POST", "/v1/completions", body)
            if status != 200:
                fail(f"load: HTTP {status}: {payload}")
            answer = json.loads(payload)
            if answer["usage"]["completion_tokens"] > n:
                fail(f"load: more than max_tokens {n}")
            # Greedy: the shorter of this text and the 32-token one begins
            # the other.
            text = answer["choices"][0]["text"]
            if not (expected[p].startswith(text) or text.startswith(expected[p])):
                fail(f"load: {p!r} with {n} tokens: {text!r} and the 32-token text "
                     f"{expected[p]!r} differ")
            return answer["choices"][0]["finish_reason"]
        start_time = time.time()
        finishes = concurrently(one, load)
        m = settle(port, "rows still in use after the load",
                   lambda m: m["kiln_requests_running"] == 0 and m["kiln_requests_queued"] == 0)
        done = m["kiln_requests_finished_total"] - before["kiln_requests_finished_total"]
        cancelled = m["kiln_requests_cancelled_total"] - before["kiln_requests_cancelled_total"]
        if done + cancelled != len(load) or m["kiln_kv_slots_in_use"] != 0 or \
                m["kiln_requests_failed_total"] != 0:
            fail(f"load: {done} finished + {cancelled} cancelled of {len(load)}: {m}")
        completed = sum(1 for f in finishes if f in ("length", "stop"))
        wall = time.time() - start_time
        # Where the scheduler's time went: every part grew, and together they
        # fit in the load's wall time.
        parts = {k: m[k] - before[k] for k in
                 ("kiln_decode_call_seconds_total", "kiln_prefill_call_seconds_total",
                  "kiln_scheduler_host_seconds_total")}
        if min(parts.values()) <= 0 or sum(parts.values()) > wall + 0.5:
            fail(f"load: the scheduler's seconds {parts} against {wall:.2f} s of wall time")
        print(f"ok: load of {len(load)} requests ({dropped} dropped midway by their client) in "
              f"{wall:.1f} s: the other {completed} complete; afterwards "
              "no row in use, nothing queued, finished + cancelled = requests; the scheduler "
              f"spent {parts['kiln_decode_call_seconds_total']:.2f} s in decode calls, "
              f"{parts['kiln_prefill_call_seconds_total']:.2f} s in prefill calls and "
              f"{parts['kiln_scheduler_host_seconds_total']:.2f} s besides")

        bench = subprocess.run(
            [sys.executable, BENCH, "--url", f"http://127.0.0.1:{port}", "--requests", "6",
             "--concurrency", "3", "--prompt-min", "4", "--prompt-max", "12", "--gen", "8",
             "--cancel-fraction", "0.5", "--server-pid", str(proc.pid), "--json"],
            capture_output=True, text=True)
        report = json.loads(bench.stdout)
        if bench.returncode != 0 or report["completed"] + report["cancelled"] != 6 or \
                report["failed"] or report["generated_tokens"] != 8 * report["completed"] or \
                report["rows_in_use_after"] != 0 or not report["ttft_ms"]["p50"] > 0 or \
                not report["server_rss_kb"].get("end"):
            fail(f"serve-bench: {bench.returncode} {bench.stdout} {bench.stderr}")
        print("ok: scripts/serve-bench.py: 6 requests of 8 tokens (ignore_eos), 3 at once, "
              f"{report['cancelled']} dropped by their client: the others get exactly 8 tokens, "
              "no row in use after, TTFT/ITL percentiles and the server's RSS reported")
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            code = proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            fail("kiln-serve did not stop on SIGTERM")
    if code != 0:
        fail(f"kiln-serve exited with {code} on SIGTERM")
    print("ok: SIGTERM stops the server (status 0)")

    proc, port = start(artifact, "--max-queue", "1")
    try:
        statuses = concurrently(
            lambda: request(port, "POST", "/v1/completions",
                            {"prompt": PROMPTS[0], "max_tokens": 48, "temperature": 0})[0],
            [()] * 8)
        if 503 not in statuses or 200 not in statuses or set(statuses) - {200, 503}:
            fail(f"--max-queue 1 with 8 requests at once: {statuses}")
        print(f"ok: --max-queue 1: of 8 requests at once, {statuses.count(200)} served and "
              f"{statuses.count(503)} refused with HTTP 503")
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=20)


def main_paged(artifact, blocks, block_size):
    """A paged KV cache smaller than the batch's demand (kiln-compile
    --kv-block-size/--kv-blocks): 8 prompts at once, 48 new tokens each, on
    more rows than the pool holds at full length. Requests wait for blocks,
    the newest running one is preempted when the pool runs out and
    recomputed later; every text still equals kiln-run's, and at the end
    every block is back in the pool."""
    expected = {}
    for p in PROMPTS:
        r = subprocess.run(["kiln-run", artifact, "--prompt", p, "--max-new-tokens", "48"],
                           capture_output=True, text=True, check=True)
        expected[p] = r.stdout[:-1]
    proc, port = start(artifact)
    try:
        m = metrics(port)
        if m["kiln_kv_blocks"] != blocks or m["kiln_kv_blocks_in_use"] != 0:
            fail(f"an idle server's pool: {m}")
        for stream in (False, True):
            together = concurrently(lambda p: complete(port, p, stream, max_tokens=48),
                                    [(p,) for p in PROMPTS])
            for p, (text, _) in zip(PROMPTS, together):
                if text != expected[p]:
                    fail(f"paged, stream={stream}: {p!r}: {text!r} != kiln-run's {expected[p]!r}")
        m = settle(port, "the pool to be full again",
                   lambda m: m["kiln_kv_blocks_in_use"] == 0 and m["kiln_kv_slots_in_use"] == 0)
        if m["kiln_preemptions_total"] < 1:
            fail(f"the pool of {blocks} blocks never ran out: {m}")
        print(f"ok: paged KV cache of {blocks} blocks of {block_size}: {len(PROMPTS)} prompts at "
              f"once, twice, equal kiln-run's text after {m['kiln_preemptions_total']} "
              "preemptions; every block back in the pool")
        # A sequence the whole pool cannot hold is refused up front.
        body = {"prompt": PROMPTS[0], "max_tokens": blocks * block_size, "temperature": 0}
        status, payload = request(port, "POST", "/v1/completions", body)
        if status != 400 or "KV blocks" not in payload:
            fail(f"a sequence beyond the pool: HTTP {status}: {payload}")
        print(f"ok: a sequence beyond the pool gets HTTP 400: {json.loads(payload)['error']['message']}")
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def main_chat(artifact, system, user, max_tokens):
    """check_serve.py --chat ARTIFACT SYSTEM USER N: /v1/chat/completions
    equals `kiln-run --chat USER --system SYSTEM` (greedy), streamed or not."""
    r = subprocess.run(["kiln-run", artifact, "--chat", user, "--system", system,
                        "--max-new-tokens", str(max_tokens)],
                       capture_output=True, text=True, check=True)
    want = r.stdout[:-1]
    proc, port = start(artifact)
    try:
        body = {"messages": [{"role": "system", "content": system},
                             {"role": "user", "content": user}],
                "max_tokens": max_tokens, "temperature": 0}
        status, payload = request(port, "POST", "/v1/chat/completions", body)
        answer = json.loads(payload)
        if status != 200 or answer["object"] != "chat.completion":
            fail(f"chat: HTTP {status}: {payload}")
        message = answer["choices"][0]["message"]
        if message != {"role": "assistant", "content": want}:
            fail(f"chat: {message!r} != kiln-run's {want!r}")
        print(f"ok: chat completion equals kiln-run --chat: {want!r}")
        status, payload = request(port, "POST", "/v1/chat/completions",
                                  {**body, "stream": True})
        events = [e[len("data: "):] for e in payload.split("\n\n") if e]
        chunks = [json.loads(e) for e in events[:-1]]
        if status != 200 or events[-1] != "[DONE]" or \
                chunks[0]["choices"][0]["delta"].get("role") != "assistant" or \
                any(c["object"] != "chat.completion.chunk" for c in chunks):
            fail(f"chat stream: HTTP {status}: {payload}")
        text = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks)
        if text != want or not chunks[-1]["choices"][0]["finish_reason"]:
            fail(f"chat stream: {text!r} != {want!r}")
        print("ok: streamed chat chunks (the role first, then content deltas) add up to it")
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=20)


if __name__ == "__main__":
    if sys.argv[1] == "--paged":
        main_paged(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))
    elif sys.argv[1] == "--chat":
        main_chat(sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5]))
    else:
        main()
