use super::*;
use serde_json::json;

fn conv() -> Vec<Message> {
    vec![
        Message::new(Role::System, "You triage tickets."),
        Message::new(Role::User, "Disk full on db-1"),
        Message::new(Role::Assistant, "<think>check disk</think>\nCalling df."),
        Message::new(Role::Tool, "{\"free\": \"0%\"}"),
        Message::new(
            Role::Assistant,
            "<think>it is full</think>The disk is full.",
        ),
    ]
}

#[test]
fn builtin_renders_roles_tools_and_drops_past_thinking() {
    let t = ChatTemplate::builtin();
    let tools = vec![
        json!({"name": "df", "description": "disk usage", "parameters": {"type": "object", "properties": {}}}),
    ];
    let s = t.render(&conv(), &tools, false).unwrap();
    let expected = concat!(
        "<|startoftext|><|im_start|>system\nYou triage tickets.\n",
        "List of tools: <|tool_list_start|>[{\"name\": \"df\", \"description\": \"disk usage\", ",
        "\"parameters\": {\"type\": \"object\", \"properties\": {}}}]<|tool_list_end|><|im_end|>\n",
        "<|im_start|>user\nDisk full on db-1<|im_end|>\n",
        "<|im_start|>assistant\nCalling df.<|im_end|>\n",
        "<|im_start|>tool\n<|tool_response_start|>{\"free\": \"0%\"}<|tool_response_end|><|im_end|>\n",
        "<|im_start|>assistant\n<think>it is full</think>The disk is full.<|im_end|>\n",
    );
    assert_eq!(s, expected);
}

#[test]
fn generation_prompt_and_no_system_turn() {
    let t = ChatTemplate::builtin();
    let s = t
        .render(&[Message::new(Role::User, "hi")], &[], true)
        .unwrap();
    assert_eq!(
        s,
        "<|startoftext|><|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n"
    );
}

#[test]
fn tojson_matches_python_json_dumps() {
    let t = ChatTemplate::new("{{ x | tojson }}|{{ x | tojson(indent=2) }}", "test", "").unwrap();
    let tmpl = t.env.get_template(NAME).unwrap();
    let s = tmpl
        .render(minijinja::context! { x => json!({"b": [1, 2.5, "é<"], "a": null}) })
        .unwrap();
    assert_eq!(
        s,
        "{\"b\": [1, 2.5, \"é<\"], \"a\": null}|{\n  \"b\": [\n    1,\n    2.5,\n    \"é<\"\n  ],\n  \"a\": null\n}"
    );
}

#[test]
fn template_errors_name_the_origin_and_raise_exception_works() {
    let e = ChatTemplate::new("{% if %}", "tokenizer_config.json", "").unwrap_err();
    assert!(e.to_string().contains("tokenizer_config.json"), "{e}");
    let t = ChatTemplate::new("{{ raise_exception('no system role') }}", "x.jinja", "").unwrap();
    let e = t.render(&[], &[], false).unwrap_err().to_string();
    assert!(e.contains("no system role") && e.contains("x.jinja"), "{e}");
}
