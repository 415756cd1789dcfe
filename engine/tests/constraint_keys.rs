//! The key guard in generation: where the grammar alone would let a key repeat, no completed
//! output repeats one. The schema below allows the keys `a` and `b` only and wants exactly
//! two of them, so after the first key the grammar offers both again: without the guard about
//! half the completed runs of a random-weight model would write `{"a": .., "a": ..}`; with it
//! every completed run has both keys. A run whose model has already written the start of a
//! repeated key (`"a`, with only the closing quote left) cannot go on: it stops with
//! `Error::DeadEnd`, never with the repeat (the guard vetoes at the closing quote; it does not
//! look ahead).

mod common;

use serde_json::json;

#[test]
fn generated_objects_never_repeat_a_key() {
    let (m, c) = common::tiny();
    let schema = json!({
        "type": "object",
        "patternProperties": {"^[ab]$": {"type": "integer", "minimum": 0, "maximum": 9}},
        "additionalProperties": false,
        "minProperties": 2,
        "maxProperties": 2
    });
    // The checker refuses a repeat that the grammar alone accepts.
    assert!(common::check(c, m, &schema, &json!({"a": 1, "b": 2})).accepted());
    let tok = m.tokenizer.as_ref().unwrap();
    let repeated = tok.encode(r#"{"a":1,"a":2}"#).unwrap();
    let outcome = c
        .compile(&lfm_engine::constraint::ConstraintSpec::JsonSchema(
            schema.clone(),
        ))
        .unwrap()
        .check(&repeated)
        .unwrap();
    assert!(!outcome.accepted(), "{outcome:?}");

    let prompt = tok
        .encode("<|im_start|>user\nJSON<|im_end|>\n<|im_start|>assistant\n")
        .unwrap();
    let spec = lfm_engine::constraint::ConstraintSpec::JsonSchema(schema.clone());
    let (mut completed, mut dead_ends, mut cut) = (0, 0, 0);
    for seed in 0..40 {
        let g = match common::generate_under(c, m, &spec, &prompt, (seed, 1.0, 64)) {
            Ok(g) => g,
            Err(lfm_engine::Error::DeadEnd(_)) => {
                dead_ends += 1;
                continue;
            }
            Err(e) => panic!("seed {seed}: {e}"),
        };
        if g.constraint_complete != Some(true) {
            cut += 1;
            continue;
        }
        completed += 1;
        let v = common::parse_unique(&g.text).unwrap_or_else(|e| panic!("{}: {e}", g.text));
        let o = v.as_object().unwrap();
        assert!(
            o.contains_key("a") && o.contains_key("b"),
            "seed {seed}: {}",
            g.text
        );
    }
    eprintln!("40 runs: {completed} completed, each with distinct keys; {dead_ends} stopped before a repeat; {cut} cut by max tokens");
    assert_eq!(completed + dead_ends + cut, 40);
    assert!(completed >= 8, "only {completed} of 40 runs completed");
}
