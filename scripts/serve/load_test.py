"""A bounded load test of `lfm-agent serve` on loopback (standard library only).

    python scripts/serve/load_test.py --base-url http://127.0.0.1:8080/v1 [--clients 32] [--seconds 60]

Each client sends chat requests back to back (a third of them streamed, a third with a JSON
schema) until the time is up; a 429 is waited out for its Retry-After. Reported: answered
requests and completion tokens per second, p50/p99 latency of answered requests, the count of
each status, and whether the server is healthy and answers afterwards. Exits 1 on any error
other than a 429, or when the server is not healthy after the run.
"""

import argparse
import json
import threading
import time
import urllib.error
import urllib.request

SCHEMA = {"type": "object", "properties": {"severity": {"enum": ["low", "high"]}}, "required": ["severity"],
          "additionalProperties": False}


def request(base, body, timeout):
    """(status, completion tokens, retry-after seconds) for one request."""
    req = urllib.request.Request(f"{base}/chat/completions", data=json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            text = r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, 0, float(e.headers.get("Retry-After") or 0)
    except Exception as e:  # a dropped connection or a timeout counts as an error
        return f"{type(e).__name__}", 0, 0
    if body.get("stream"):
        events = [l[6:] for l in text.split("\n\n") if l.startswith("data: ")]
        if not events or events[-1] != "[DONE]":
            return "unterminated-stream", 0, 0
        usage = [json.loads(e)["usage"] for e in events[:-1] if '"usage"' in e and json.loads(e).get("usage")]
        return 200, usage[-1]["completion_tokens"] if usage else 0, 0
    return 200, json.loads(text)["usage"]["completion_tokens"], 0


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))] if xs else float("nan")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--base-url", required=True)
    ap.add_argument("--clients", type=int, default=32)
    ap.add_argument("--seconds", type=float, default=60)
    ap.add_argument("--max-tokens", type=int, default=32)
    a = ap.parse_args()
    lock = threading.Lock()
    latencies, statuses, tokens = [], {}, [0]
    end = time.monotonic() + a.seconds

    def client(i):
        n = 0
        while time.monotonic() < end:
            body = {"messages": [{"role": "user", "content": f"Ticket {i}-{n}: the printer on floor {n % 7} is offline."}],
                    "max_tokens": a.max_tokens, "seed": n}
            if n % 3 == 1:
                body |= {"stream": True, "stream_options": {"include_usage": True}}
            elif n % 3 == 2:
                body["response_format"] = {"type": "json_schema", "json_schema": {"name": "s", "schema": SCHEMA}}
            n += 1
            t = time.monotonic()
            status, toks, retry = request(a.base_url, body, timeout=a.seconds + 120)
            took = time.monotonic() - t
            with lock:
                statuses[status] = statuses.get(status, 0) + 1
                if status == 200:
                    latencies.append(took)
                    tokens[0] += toks
            if status == 429:
                time.sleep(min(retry or 1, max(0, end - time.monotonic())))

    t0 = time.monotonic()
    threads = [threading.Thread(target=client, args=(i,)) for i in range(a.clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.monotonic() - t0
    with urllib.request.urlopen(a.base_url.removesuffix("/v1") + "/health", timeout=10) as r:
        healthy = r.status == 200
    after = request(a.base_url, {"messages": [{"role": "user", "content": "still there?"}], "max_tokens": 4}, 60)[0]
    errors = {str(k): v for k, v in statuses.items() if k not in (200, 429)}
    report = {
        "clients": a.clients, "seconds": round(wall, 1), "answered": statuses.get(200, 0),
        "rejected_429": statuses.get(429, 0), "errors": errors,
        "requests_per_s": round(statuses.get(200, 0) / wall, 2),
        "completion_tokens_per_s": round(tokens[0] / wall, 1),
        "latency_p50_s": round(pct(latencies, 50), 3), "latency_p99_s": round(pct(latencies, 99), 3),
        "healthy_after": healthy and after == 200,
    }
    print(json.dumps(report))
    ok = not errors and report["healthy_after"] and report["answered"] > 0
    print("load test: " + ("PASSED" if ok else "FAILED") + " (only 429s allowed, healthy afterwards)")
    raise SystemExit(0 if ok else 1)


if __name__ == "__main__":
    main()
