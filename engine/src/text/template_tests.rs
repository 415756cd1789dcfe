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
        Message::new(Role::User, "thanks"),
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
        "List of tools: [{\"name\": \"df\", \"description\": \"disk usage\", ",
        "\"parameters\": {\"type\": \"object\", \"properties\": {}}}]<|im_end|>\n",
        "<|im_start|>user\nDisk full on db-1<|im_end|>\n",
        "<|im_start|>assistant\nCalling df.<|im_end|>\n",
        "<|im_start|>tool\n{\"free\": \"0%\"}<|im_end|>\n",
        "<|im_start|>assistant\n<think>it is full</think>The disk is full.<|im_end|>\n",
        "<|im_start|>user\nthanks<|im_end|>\n",
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
    let t = ChatTemplate::new(
        "{{ x | tojson }}|{{ x | tojson(indent=2) }}",
        "test",
        "",
        "",
    )
    .unwrap();
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
    let e = ChatTemplate::new("{% if %}", "tokenizer_config.json", "", "").unwrap_err();
    assert!(e.to_string().contains("tokenizer_config.json"), "{e}");
    let t =
        ChatTemplate::new("{{ raise_exception('no system role') }}", "x.jinja", "", "").unwrap();
    let e = t.render(&[], &[], false).unwrap_err().to_string();
    assert!(e.contains("no system role") && e.contains("x.jinja"), "{e}");
}

#[test]
fn tojson_options_ensure_ascii_sort_keys_separators() {
    let t = ChatTemplate::new(
        "{{ x | tojson(ensure_ascii=true) }}|{{ x | tojson(sort_keys=true, separators=[',', ':']) }}",
        "test",
        "",
        "",
    )
    .unwrap();
    let s = t
        .env
        .get_template(NAME)
        .unwrap()
        .render(minijinja::context! { x => json!({"b": "é", "a": [1]}) })
        .unwrap();
    assert_eq!(
        s,
        "{\"b\": \"\\u00e9\", \"a\": [1]}|{\"a\":[1],\"b\":\"é\"}"
    );
}

#[test]
fn generation_tags_render_their_body() {
    let src = "{%- for m in messages -%}{%- if m.role == 'assistant' -%}{% generation %}[{{ m.content }}]{%- endgeneration %}{%- endif -%}{%- endfor -%}";
    let t = ChatTemplate::new(src, "test", "", "").unwrap();
    let s = t
        .render(
            &[
                Message::new(Role::User, "q"),
                Message::new(Role::Assistant, "a"),
            ],
            &[],
            false,
        )
        .unwrap();
    assert_eq!(s, "[a]");
}

#[test]
fn strftime_formats_a_known_instant() {
    // 2026-11-22 05:24:36 UTC was a Sunday.
    assert_eq!(
        format_time(1_795_325_076, "%d %b %Y %H:%M:%S %A %j"),
        "22 Nov 2026 05:24:36 Sunday 326"
    );
    assert_eq!(format_time(951_782_400, "%Y-%m-%d %a"), "2000-02-29 Tue");
    assert_eq!(format_time(0, "%B %e, %y %%"), "January  1, 70 %");
}

#[test]
fn past_thinking_is_kept_in_the_last_assistant_turn_even_before_a_tool_result() {
    let t = ChatTemplate::builtin();
    let msgs = vec![
        Message::new(Role::User, "q"),
        Message::new(Role::Assistant, "<think>plan</think>call"),
        Message::new(Role::Tool, "42"),
    ];
    let s = t.render(&msgs, &[], true).unwrap();
    assert!(s.contains("<think>plan</think>call"), "{s}");
}
