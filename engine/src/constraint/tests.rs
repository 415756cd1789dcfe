use std::sync::OnceLock;

use serde_json::json;

use super::*;
use crate::synth::synth_tokenizer_json;

fn compiler() -> &'static (Tokenizer, ConstraintCompiler) {
    static C: OnceLock<(Tokenizer, ConstraintCompiler)> = OnceLock::new();
    C.get_or_init(|| {
        let tok = Tokenizer::from_bytes(
            synth_tokenizer_json(65536, 0)
                .unwrap()
                .to_string()
                .as_bytes(),
        )
        .unwrap();
        let c = ConstraintCompiler::new(&tok, 65536, crate::text::special::IM_END).unwrap();
        (tok, c)
    })
}

/// Feeds `text`'s tokens; returns how many were accepted and whether the end is complete.
fn walk(spec: &ConstraintSpec, text: &str) -> (usize, usize, bool) {
    let (tok, c) = compiler();
    let mut m = c.compile(spec).unwrap();
    let ids = tok.encode(text).unwrap();
    let mut n = 0;
    for &t in &ids {
        if !m.allows(t).unwrap() {
            break;
        }
        m.accept(t).unwrap();
        n += 1;
    }
    (n, ids.len(), m.is_complete())
}

#[test]
fn json_schema_accepts_valid_and_stops_at_the_first_bad_token() {
    let spec = ConstraintSpec::JsonSchema(json!({
        "type": "object",
        "properties": {"severity": {"enum": ["low", "high"]}, "count": {"type": "integer"}},
        "required": ["severity"], "additionalProperties": false
    }));
    let (n, total, complete) = walk(&spec, r#"{"severity":"high","count":3}"#);
    assert_eq!(n, total);
    assert!(complete);
    let (n, total, _) = walk(&spec, r#"{"severity":"urgent"}"#);
    assert!(n < total);
    let (n, total, complete) = walk(&spec, r#"{"severity":"low""#);
    assert_eq!(n, total);
    assert!(!complete, "an unclosed object is not complete");
}

#[test]
fn regex_and_lark_constraints() {
    let rx = ConstraintSpec::Regex(r"INC-[0-9]{4}".into());
    assert_eq!(
        walk(&rx, "INC-0042"),
        (walk(&rx, "INC-0042").1, walk(&rx, "INC-0042").1, true)
    );
    assert!(!walk(&rx, "INC-42").2);
    let g = ConstraintSpec::Lark("start: \"yes\" | \"no\"".into());
    assert!(walk(&g, "yes").2);
    let (n, total, _) = walk(&g, "maybe");
    assert!(n < total);
}

#[test]
fn mask_allows_only_grammar_tokens_and_end_when_complete() {
    let (tok, c) = compiler();
    let mut m = c.compile(&ConstraintSpec::Regex("ab".into())).unwrap();
    let mut logits = vec![0.0f32; 65536];
    m.mask_logits(&mut logits).unwrap();
    let allowed: Vec<usize> = (0..65536).filter(|&i| logits[i].is_finite()).collect();
    assert!(!allowed.is_empty());
    for &i in &allowed {
        let s = tok.decode(&[i as u32]).unwrap();
        assert!(
            "ab".starts_with(&s),
            "token {i} {s:?} does not start \"ab\""
        );
    }
    assert!(!allowed.contains(&(crate::text::special::IM_END as usize)));
    for t in tok.encode("ab").unwrap() {
        m.accept(t).unwrap();
    }
    assert!(m.is_complete());
}

#[test]
fn unsupported_schemas_are_refused_naming_the_keyword() {
    let (_, c) = compiler();
    let e = c
        .compile(&ConstraintSpec::JsonSchema(
            json!({"$dynamicRef": "#meta", "type": "object"}),
        ))
        .unwrap_err()
        .to_string();
    assert!(e.contains("$dynamicRef"), "{e}");
    let e = c
        .compile(&ConstraintSpec::Lark("start: missing_rule".into()))
        .unwrap_err()
        .to_string();
    assert!(e.contains("missing_rule"), "{e}");
    let e = c
        .compile(&ConstraintSpec::Regex("(unclosed".into()))
        .unwrap_err()
        .to_string();
    assert!(e.starts_with("unsupported regex"), "{e}");
}

#[test]
fn forced_tokens_cover_a_fixed_prefix() {
    let (tok, c) = compiler();
    // A const string is forced whole; a regex's literal prefix too.
    let mut m = c
        .compile(&ConstraintSpec::JsonSchema(
            json!({"const": "incident_severity_level"}),
        ))
        .unwrap();
    let text = tok.decode(&m.forced_tokens()).unwrap();
    assert_eq!(text, "\"incident_severity_level\"");
    let mut m = c
        .compile(&ConstraintSpec::Regex("INC-[0-9]{4}".into()))
        .unwrap();
    assert_eq!(tok.decode(&m.forced_tokens()).unwrap(), "INC-");
}

#[test]
fn generated_numbers_stay_representable_but_the_grammar_is_never_starved() {
    let (tok, c) = compiler();
    let mut m = c
        .compile(&ConstraintSpec::JsonSchema(json!({"type": "number"})))
        .unwrap();
    for t in tok.encode("8e00").unwrap() {
        m.accept(t).unwrap();
    }
    let mut logits = vec![0.0f32; 65536];
    m.mask_logits(&mut logits).unwrap();
    let allowed: Vec<u32> = (0..65536u32)
        .filter(|&i| logits[i as usize].is_finite())
        .collect();
    assert_eq!(
        allowed,
        vec![crate::text::special::IM_END],
        "only the end may follow 8e00"
    );
    // Where only digits fit (an exponent just opened), digits stay allowed.
    let mut m = c
        .compile(&ConstraintSpec::JsonSchema(json!({"type": "number"})))
        .unwrap();
    for t in tok.encode("8e").unwrap() {
        m.accept(t).unwrap();
    }
    let mut logits = vec![0.0f32; 65536];
    m.mask_logits(&mut logits).unwrap();
    assert!(logits[tok.encode("5").unwrap()[0] as usize].is_finite());
    // The checker is unaffected: the grammar itself accepts long numbers.
    let mut m = c
        .compile(&ConstraintSpec::JsonSchema(json!({"type": "number"})))
        .unwrap();
    assert!(m
        .check(&tok.encode("123456789012345678901234567890e123").unwrap())
        .unwrap()
        .accepted());
}
