//! The project's own schema corpus (`tests/fixtures/schemas/`, 88 schemas with labelled
//! valid, invalid and format-invalid instances) through the constraint engine:
//! the checker must accept every valid instance and reject every invalid one (format
//! violations included, for the formats the engine enforces), and every completed generation
//! of the tiny random-weight model, over several seeds and temperatures, must validate
//! (draft 2020-12, where `format` is an annotation; outputs that would fail a strict format
//! check are counted and printed).
//! Each run draws with its own seed; `LFM_CORPUS_SEEDS=N` runs N rounds of the three
//! temperatures (default 1, the CI scale: three runs per schema, each temperature with its own
//! seed).

mod common;

use std::path::Path;

use lfm_engine::constraint::schema::Adaptations;
use lfm_engine::constraint::ConstraintSpec;
use serde_json::{json, Value};

#[test]
fn own_corpus_checker_agrees_with_labels_and_generation_is_always_valid() {
    let (m, c) = common::tiny();
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/schemas");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    let seeds: u64 = std::env::var("LFM_CORPUS_SEEDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1);
    let (mut supported, mut refused) = (0, Vec::new());
    // Supported with the coverage steps of `schema.rs` switched off.
    let mut alone = 0;
    let mut wrong_accepts = Vec::new();
    let mut over_strict = Vec::new();
    let mut order_only = Vec::new();
    let (mut checked, mut generated, mut completed) = (0, 0, 0);
    let mut bad_outputs = Vec::new();
    let mut format_strict = Vec::new();
    for f in &files {
        let name = f.file_name().unwrap().to_string_lossy().to_string();
        let doc: Value = serde_json::from_str(&std::fs::read_to_string(f).unwrap()).unwrap();
        let schema = &doc["schema"];
        // The labels themselves, checked with the `jsonschema` crate.
        let (loose, strict) = common::validators(schema);
        for inst in doc["valid"].as_array().into_iter().flatten() {
            assert!(
                strict.is_valid(inst),
                "{name}: a `valid` instance does not validate: {inst}"
            );
        }
        for inst in doc["invalid"].as_array().into_iter().flatten() {
            assert!(
                !loose.is_valid(inst),
                "{name}: an `invalid` instance validates: {inst}"
            );
        }
        for inst in doc["invalid_format"].as_array().into_iter().flatten() {
            assert!(
                loose.is_valid(inst) && !strict.is_valid(inst),
                "{name}: bad `invalid_format` label: {inst}"
            );
        }
        let spec = ConstraintSpec::JsonSchema(schema.clone());
        if c.compile_with(&spec, Adaptations::none()).is_ok() {
            alone += 1;
        }
        if let Err(e) = c.compile(&spec) {
            refused.push(format!("{name}: {e}"));
            continue;
        }
        supported += 1;
        for (list, want) in [
            ("valid", true),
            ("invalid", false),
            ("invalid_format", false),
        ] {
            for inst in doc[list].as_array().into_iter().flatten() {
                checked += 1;
                if common::check(c, m, schema, inst).accepted() == want {
                    continue;
                }
                // The grammar emits object properties in the schema's order; a valid instance
                // written in another order is refused (over-strict, never unsound). Anything
                // else is a real disagreement.
                let reordered = reorder(inst, schema, schema);
                if !want {
                    wrong_accepts.push(format!("{name} {list}: {inst}"));
                } else if common::check(c, m, schema, &reordered).accepted() {
                    order_only.push(format!("{name}: {inst}"));
                } else {
                    over_strict.push(format!("{name}: {inst}"));
                }
            }
        }
        let (validator, strict) = common::validators(schema);
        for round in 0..seeds {
            for (k, temperature) in [0.5f32, 1.0, 1.5].into_iter().enumerate() {
                let seed = round * 3 + k as u64;
                generated += 1;
                if let Some(text) = common::generate_json(c, m, schema, seed, temperature, 256) {
                    completed += 1;
                    match common::parse_unique(&text) {
                        Ok(v) if validator.is_valid(&v) => {
                            if !strict.is_valid(&v) {
                                format_strict
                                    .push(format!("{name} seed {seed} T {temperature}: {text}"));
                            }
                        }
                        _ => {
                            bad_outputs.push(format!("{name} seed {seed} T {temperature}: {text}"))
                        }
                    }
                }
            }
        }
    }
    eprintln!(
        "corpus: {} schemas, {supported} supported ({alone} by llguidance alone), {} refused",
        files.len(),
        refused.len()
    );
    for r in &refused {
        eprintln!("  refused: {r}");
    }
    eprintln!(
        "checker: {checked} labelled instances; invalid accepted: {}; valid refused only for property order: {}; \
         valid refused otherwise: {}",
        wrong_accepts.len(),
        order_only.len(),
        over_strict.len()
    );
    for o in &order_only {
        eprintln!("  order: {o}");
    }
    for d in &over_strict {
        eprintln!("  over-strict: {d}");
    }
    for d in &wrong_accepts {
        eprintln!("  ACCEPTED ALTHOUGH INVALID: {d}");
    }
    eprintln!(
        "generation: {generated} runs, {completed} completed, {} invalid; {} valid but failing a strict format check",
        bad_outputs.len(),
        format_strict.len()
    );
    for f in &format_strict {
        eprintln!("  format-strict: {f}");
    }
    for b in &bad_outputs {
        eprintln!("  INVALID OUTPUT: {b}");
    }
    assert!(files.len() >= 60);
    assert!(
        bad_outputs.is_empty(),
        "completed outputs that do not validate"
    );
    assert!(
        wrong_accepts.is_empty(),
        "the checker accepted invalid instances"
    );
    // Known over-strictness of llguidance's number ranges (a value just inside an exclusive
    // decimal bound is refused); sound, but listed so any change is noticed.
    assert!(
        over_strict
            .iter()
            .all(|o| o.starts_with("46_number_exclusive_bounds.json")),
        "valid instances refused: {over_strict:?}"
    );
    assert!(
        supported + refused.len() == files.len() && supported >= 80,
        "{supported} supported"
    );
    assert!(
        completed * 2 >= generated,
        "only {completed} of {generated} generations completed"
    );
}

/// `v` with every object's keys in the order its schema's `properties` lists them (local
/// `$ref`s followed, `allOf`/`anyOf`/`oneOf` branches searched for property lists).
fn reorder(v: &Value, schema: &Value, root: &Value) -> Value {
    let schema = resolve(schema, root);
    if let (Some(Value::Object(c)), Value::Object(_)) = (schema.get("const"), v) {
        // A const object is matched as written: use its key order.
        let order: Vec<(String, Value)> = c
            .iter()
            .map(|(k, x)| (k.clone(), json!({ "const": x })))
            .collect();
        return reorder(
            v,
            &json!({"properties": serde_json::Map::from_iter(order)}),
            root,
        );
    }
    match v {
        Value::Object(map) => {
            let props = property_schemas(schema, root);
            let mut out = serde_json::Map::new();
            for (k, sub) in &props {
                if let Some(x) = map.get(k) {
                    out.insert(k.clone(), reorder(x, sub, root));
                }
            }
            for (k, x) in map {
                if !out.contains_key(k) {
                    let sub = schema
                        .get("additionalProperties")
                        .unwrap_or(&Value::Bool(true));
                    out.insert(k.clone(), reorder(x, sub, root));
                }
            }
            Value::Object(out)
        }
        Value::Array(items) => {
            let item_schema = schema.get("items").unwrap_or(&Value::Bool(true));
            Value::Array(
                items
                    .iter()
                    .map(|x| reorder(x, item_schema, root))
                    .collect(),
            )
        }
        other => other.clone(),
    }
}

fn resolve<'a>(schema: &'a Value, root: &'a Value) -> &'a Value {
    match schema.get("$ref").and_then(Value::as_str) {
        Some(r) if r.starts_with("#/") => {
            root.pointer(&r[1..]).map_or(schema, |s| resolve(s, root))
        }
        _ => schema,
    }
}

fn property_schemas(schema: &Value, root: &Value) -> Vec<(String, Value)> {
    let mut out: Vec<(String, Value)> = Vec::new();
    if let Some(p) = schema.get("properties").and_then(Value::as_object) {
        out.extend(p.iter().map(|(k, v)| (k.clone(), v.clone())));
    }
    for key in ["allOf", "anyOf", "oneOf"] {
        for branch in schema
            .get(key)
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            for (k, v) in property_schemas(resolve(branch, root), root) {
                if !out.iter().any(|(e, _)| *e == k) {
                    out.push((k, v));
                }
            }
        }
    }
    out
}
