"""Drives `lfm-agent serve` with the official `openai` Python client and checks what comes back.

    python scripts/serve/openai_check.py --base-url http://127.0.0.1:8080/v1

Four kinds of request, each asserted on (an AssertionError names the one that failed):
plain, streamed (its deltas must add up to the same request answered whole), tools (a call of
the offered tool whose arguments fit its schema, streamed and whole alike), and json_schema
(content that parses and fits). On a synthetic random-weight model the text means nothing; what
is checked is the protocol and the constraints. Prints one line per check and a JSON summary.
"""

import argparse
import json
import sys
import time

import openai

TOOL = {
    "type": "function",
    "function": {
        "name": "lookup_host",
        "description": "Who owns a host.",
        "parameters": {
            "type": "object",
            "properties": {"host": {"type": "string", "maxLength": 30}},
            "required": ["host"],
            "additionalProperties": False,
        },
    },
}
SCHEMA = {
    "type": "object",
    "properties": {
        "severity": {"enum": ["low", "medium", "high"]},
        "team": {"type": "string", "maxLength": 20},
    },
    "required": ["severity", "team"],
    "additionalProperties": False,
}


def fits(value, schema):
    """The few schema keywords used above, checked by hand (no jsonschema dependency)."""
    if not isinstance(value, dict):
        return False
    props = schema["properties"]
    if set(value) - set(props) or not set(schema["required"]) <= set(value):
        return False
    for k, v in value.items():
        p = props[k]
        if "enum" in p and v not in p["enum"]:
            return False
        if p.get("type") == "string" and (not isinstance(v, str) or len(v) > p.get("maxLength", 1 << 30)):
            return False
    return True


def assemble(stream):
    """A streamed reply put together as a client would: content, reasoning, calls, finish, usage."""
    content, reasoning, calls, finish, usage, chunks = "", "", {}, None, None, 0
    for chunk in stream:
        chunks += 1
        if chunk.usage is not None:
            usage = chunk.usage
        if not chunk.choices:
            continue
        ch = chunk.choices[0]
        d = ch.delta
        content += d.content or ""
        reasoning += getattr(d, "reasoning_content", None) or ""
        for tc in d.tool_calls or []:
            c = calls.setdefault(tc.index, {"id": None, "name": "", "arguments": ""})
            c["id"] = tc.id or c["id"]
            c["name"] += (tc.function.name or "") if tc.function else ""
            c["arguments"] += (tc.function.arguments or "") if tc.function else ""
        finish = ch.finish_reason or finish
    return {
        "content": content,
        "reasoning": reasoning,
        "calls": [calls[i] for i in sorted(calls)],
        "finish": finish,
        "usage": usage,
        "chunks": chunks,
    }


def whole(resp):
    m = resp.choices[0].message
    return {
        "content": m.content or "",
        "reasoning": getattr(m, "reasoning_content", None) or "",
        "calls": [
            {"id": c.id, "name": c.function.name, "arguments": c.function.arguments}
            for c in (m.tool_calls or [])
        ],
        "finish": resp.choices[0].finish_reason,
    }


def same(streamed, full, what):
    for k in ("content", "reasoning", "finish"):
        assert streamed[k] == full[k], f"{what}: streamed {k} {streamed[k]!r} != whole {full[k]!r}"
    strip = lambda cs: [(c["name"], c["arguments"]) for c in cs]
    assert strip(streamed["calls"]) == strip(full["calls"]), f"{what}: calls {streamed['calls']} != {full['calls']}"


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--base-url", required=True)
    ap.add_argument("--api-key", default="none")
    ap.add_argument("--seeds", type=int, default=3, help="requests per kind")
    ap.add_argument("--agent-tasks", action="store_true", help="also check POST /v1/agent/tasks (serve --tasks)")
    a = ap.parse_args()
    client = openai.OpenAI(base_url=a.base_url, api_key=a.api_key, max_retries=0, timeout=300)
    model = client.models.list().data[0].id
    results = {}

    def check(name, fn):
        t = time.perf_counter()
        fn()
        results[name] = round(time.perf_counter() - t, 3)
        print(f"ok  {name:<28} {results[name]:.2f} s", flush=True)

    msgs = [{"role": "user", "content": "The VPN drops every hour. What should I check?"}]

    def plain():
        for seed in range(a.seeds):
            r = client.chat.completions.create(model=model, messages=msgs, max_tokens=48, seed=seed)
            assert r.object == "chat.completion" and r.choices[0].finish_reason in ("stop", "length"), r
            assert r.usage.completion_tokens > 0, r.usage
            assert not r.choices[0].message.tool_calls

    def streamed():
        for seed in range(a.seeds):
            kw = dict(model=model, messages=msgs, max_tokens=48, seed=seed, temperature=0.8)
            full = whole(client.chat.completions.create(**kw))
            s = assemble(client.chat.completions.create(stream=True, stream_options={"include_usage": True}, **kw))
            same(s, full, f"stream seed {seed}")
            assert s["chunks"] >= 3 and s["usage"] is not None and s["usage"].completion_tokens > 0, s

    def tools():
        ask = [{"role": "user", "content": "Who owns db-7?"}]
        for seed in range(a.seeds):
            kw = dict(model=model, messages=ask, tools=[TOOL], tool_choice="required", max_tokens=200, seed=seed)
            r = client.chat.completions.create(**kw)
            full = whole(r)
            assert full["finish"] == "tool_calls" and full["calls"], r
            for c in full["calls"]:
                assert c["name"] == "lookup_host" and c["id"], c
                assert fits(json.loads(c["arguments"]), TOOL["function"]["parameters"]), c
            same(assemble(client.chat.completions.create(stream=True, **kw)), full, f"tools seed {seed}")
            # The tool's result goes back and the conversation goes on.
            follow = ask + [
                {"role": "assistant", "content": None, "tool_calls": r.choices[0].message.tool_calls},
                {"role": "tool", "tool_call_id": full["calls"][0]["id"], "content": '{"owner": "dba-team"}'},
            ]
            r2 = client.chat.completions.create(model=model, messages=follow, tools=[TOOL], tool_choice="none", max_tokens=32, seed=seed)
            assert r2.choices[0].finish_reason in ("stop", "length") and not r2.choices[0].message.tool_calls, r2

    def json_schema():
        rf = {"type": "json_schema", "json_schema": {"name": "triage", "schema": SCHEMA, "strict": True}}
        for seed in range(a.seeds):
            r = client.chat.completions.create(model=model, messages=msgs, response_format=rf, max_tokens=120, seed=seed)
            v = json.loads(r.choices[0].message.content)
            assert fits(v, SCHEMA), v
        # json_object bounds nothing but the syntax, so a reply cut at max_tokens ("length") is
        # an unfinished object; every finished one must be an object.
        finished = 0
        for seed in range(a.seeds):
            r = client.chat.completions.create(model=model, messages=msgs, response_format={"type": "json_object"}, max_tokens=400, seed=seed)
            assert r.choices[0].message.content.lstrip().startswith("{"), r
            if r.choices[0].finish_reason == "stop":
                assert isinstance(json.loads(r.choices[0].message.content), dict), r
                finished += 1
            else:
                assert r.choices[0].finish_reason == "length", r
        # Random weights seldom close a free-form object: say how many did.
        print(f"    json_object: {finished} of {a.seeds} replies finished within 400 tokens (each one parsed)")

    def errors():
        try:
            client.chat.completions.create(model=model, messages=msgs, tool_choice="required")
        except openai.BadRequestError as e:
            assert e.body["param"] == "tool_choice", e.body
        else:
            raise AssertionError("tool_choice required without tools was accepted")

    def agent_task():
        # POST /v1/agent/tasks (serve --tasks): whole, then streamed; the streamed steps are
        # the result's steps, and a bad request names its field. Standard library HTTP.
        import urllib.error
        import urllib.request

        url = a.base_url.rstrip("/") + "/agent/tasks"

        def post(body):
            req = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST", headers={
                "Content-Type": "application/json", "Authorization": f"Bearer {a.api_key}"})
            try:
                return urllib.request.urlopen(req, timeout=300)
            except urllib.error.HTTPError as e:
                return e

        ticket = {"id": "INC-1", "subject": "VPN handshake fails", "body": "handshake timed out"}
        r = post({"task": "triage", "input": ticket})
        assert r.status == 200, r.read()
        whole_run = json.loads(r.read())
        assert whole_run["task"] == "triage" and whole_run["steps"] and isinstance(whole_run["run"], int), whole_run
        r = post({"task": "triage", "input": ticket, "stream": True})
        assert r.status == 200 and r.headers["content-type"] == "text/event-stream", r.headers
        events, event = [], None
        for raw in r:
            line = raw.decode().rstrip("\n")
            if line.startswith("event: "):
                event = line[7:]
            elif line.startswith("data: "):
                events.append((event, json.loads(line[6:])))
        kinds = [e for e, _ in events]
        assert kinds[-1] == "result" and kinds.count("step") == len(events) - 1, kinds
        result = events[-1][1]
        assert [d for e, d in events[:-1]] == result["steps"], "streamed steps != the result's steps"
        print(f"    agent task: {len(result['steps'])} steps streamed, stop {result['stop']}, run {result['run']}")
        bad = post({"task": "extract", "input": "a line"})
        assert bad.status == 400 and json.loads(bad.read())["error"]["param"] == "schema", bad

    checks = [("plain", plain), ("stream", streamed), ("tools", tools), ("json_schema", json_schema), ("errors", errors)]
    if a.agent_tasks:
        checks.append(("agent_task", agent_task))
    for name, fn in checks:
        check(name, fn)
    print(json.dumps({"model": model, "seconds": results, "ok": True}))


if __name__ == "__main__":
    try:
        main()
    except AssertionError as e:
        print(f"FAILED: {e}", file=sys.stderr)
        sys.exit(1)
