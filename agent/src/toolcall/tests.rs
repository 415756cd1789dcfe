use serde_json::json;

use super::*;

fn known(name: &str) -> bool {
    matches!(name, "search_docs" | "current_time" | "sql_query")
}

fn args(v: serde_json::Value) -> Map<String, Value> {
    v.as_object().unwrap().clone()
}

#[test]
fn pythonic_calls_between_the_special_tokens() {
    let m = parse_message(
        "<think>I should search.</think>Let me look.<|tool_call_start|>[search_docs(query=\"vpn handshake\", k=3), current_time()]<|tool_call_end|>",
        &known,
    );
    assert_eq!(
        m.calls,
        vec![
            ToolCall {
                name: "search_docs".into(),
                arguments: args(json!({"query": "vpn handshake", "k": 3}))
            },
            ToolCall {
                name: "current_time".into(),
                arguments: Map::new()
            },
        ]
    );
    assert_eq!(m.content, "Let me look.");
    assert!(m.errors.is_empty());
}

#[test]
fn sloppy_literals_are_read() {
    let calls = parse_calls(
        "[sql_query(sql='SELECT * FROM t WHERE a = \\'x\\'', strict=True, limit=None, ratio=-2.5e-1, tags=['a', \"b\",], opts={'deep': [1, (2, 3)]},)]",
    )
    .unwrap();
    assert_eq!(
        Value::Object(calls[0].arguments.clone()),
        json!({
            "sql": "SELECT * FROM t WHERE a = 'x'",
            "strict": true,
            "limit": null,
            "ratio": -0.25,
            "tags": ["a", "b"],
            "opts": {"deep": [1, [2, 3]]}
        })
    );
    // A single call without the list brackets.
    assert_eq!(
        parse_calls("current_time()").unwrap()[0].name,
        "current_time"
    );
}

#[test]
fn json_forms() {
    for body in [
        r#"[{"name": "search_docs", "arguments": {"query": "dns"}}]"#,
        r#"{"name": "search_docs", "parameters": {"query": "dns"}}"#,
        r#"{"function": {"name": "search_docs", "arguments": "{\"query\": \"dns\"}"}}"#,
        r#"{'name': 'search_docs', 'arguments': {'query': 'dns'}}"#,
        "[\n  {\n\"name\"\n:\"search_docs\" , \"arguments\":\t{\"query\": \"dns\"}}\n\t]",
    ] {
        let calls = parse_calls(body).unwrap_or_else(|e| panic!("{body}: {e}"));
        assert_eq!(calls.len(), 1, "{body}");
        assert_eq!(calls[0].name, "search_docs");
        assert_eq!(
            Value::Object(calls[0].arguments.clone()),
            json!({"query": "dns"})
        );
    }
}

#[test]
fn a_missing_end_token_still_parses() {
    let m = parse_message("<|tool_call_start|>[current_time()]", &known);
    assert_eq!(m.calls.len(), 1);
}

#[test]
fn bare_lists_count_only_when_they_are_the_whole_answer_of_known_tools() {
    let m = parse_message(
        "<think>plan</think>\n[search_docs(query=\"disk full\")]\n",
        &known,
    );
    assert_eq!(m.calls.len(), 1);
    assert_eq!(m.content, "");
    // Prose with brackets, unknown names, or a list inside a sentence: not calls.
    for text in [
        "See [1] and [2] for details.",
        "Run [rm(path=\"/\")] now",
        "[delete_tickets(all=True)]",
        "The answer is [search_docs(query=\"x\")] as shown.",
        "[a, b]",
    ] {
        let m = parse_message(text, &known);
        assert!(m.calls.is_empty(), "{text}");
        assert_eq!(m.content, text.trim());
    }
}

#[test]
fn malformed_wrapped_calls_are_reported_not_guessed() {
    for (text, why) in [
        (
            "<|tool_call_start|>[search_docs(\"vpn\")]<|tool_call_end|>",
            "argument name",
        ),
        (
            "<|tool_call_start|>[search_docs(query=\"vpn)]<|tool_call_end|>",
            "unterminated",
        ),
        (
            "<|tool_call_start|>[search_docs(query=1, query=2)]<|tool_call_end|>",
            "twice",
        ),
        ("<|tool_call_start|><|tool_call_end|>", "empty"),
        (
            "<|tool_call_start|>[f(a=1)] trailing<|tool_call_end|>",
            "after the calls",
        ),
        (
            "<|tool_call_start|>{\"arguments\": {}}<|tool_call_end|>",
            "name",
        ),
    ] {
        let m = parse_message(text, &known);
        assert!(m.calls.is_empty(), "{text}");
        assert_eq!(m.errors.len(), 1, "{text}");
        assert!(m.errors[0].contains(why), "{text}: {}", m.errors[0]);
    }
}

#[test]
fn deep_nesting_is_refused_without_overflow() {
    let body = format!("[f(a={}{})]", "[".repeat(10_000), "]".repeat(10_000));
    assert!(parse_calls(&body)
        .unwrap_err()
        .contains("nested too deeply"));
}

#[test]
fn unclosed_thinking_leaves_no_calls() {
    let m = parse_message("<think>[search_docs(query=\"x\")] maybe", &known);
    assert!(m.calls.is_empty());
    assert_eq!(m.content, "");
}
