//! Helpers shared by the constraint test suites.

#![allow(dead_code)] // each test binary uses a different subset

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use lfm_engine::constraint::{CheckOutcome, ConstraintCompiler, ConstraintSpec};
use lfm_engine::folder::{LoadOptions, LoadedModel};
use lfm_engine::generate::{generate_constrained, GenerateOptions, Generation};
use lfm_engine::sampling::SamplingParams;
use lfm_engine::session::Session;
use lfm_engine::synth::{write_model_folder, DiskDtype, Preset};
use serde_json::Value;

/// The tiny synthetic model (65,536-token vocabulary) and its constraint compiler.
pub fn tiny() -> (&'static LoadedModel, &'static ConstraintCompiler) {
    static M: OnceLock<(tempfile::TempDir, LoadedModel, ConstraintCompiler)> = OnceLock::new();
    let (_, m, c) = M.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        write_model_folder(Preset::Tiny, DiskDtype::F32, 7, dir.path()).unwrap();
        let m = LoadedModel::load(dir.path(), &LoadOptions::default()).unwrap();
        let c = m.constraint_compiler().unwrap();
        (dir, m, c)
    });
    (m, c)
}

/// Walks the compact serialisation of `instance` through a fresh matcher for `schema`.
pub fn check(
    c: &ConstraintCompiler,
    m: &LoadedModel,
    schema: &Value,
    instance: &Value,
) -> CheckOutcome {
    let tok = m.tokenizer.as_ref().unwrap();
    let ids = tok
        .encode(&serde_json::to_string(instance).unwrap())
        .unwrap();
    c.compile(&ConstraintSpec::JsonSchema(schema.clone()))
        .unwrap()
        .check(&ids)
        .unwrap()
}

/// One generation of the tiny model under `spec` from `prompt` (token ids), in a fresh
/// session, sampling at `temperature` with `seed`.
pub fn generate_under(
    c: &ConstraintCompiler,
    m: &LoadedModel,
    spec: &ConstraintSpec,
    prompt: &[u32],
    (seed, temperature, max_tokens): (u64, f32, usize),
) -> lfm_engine::Result<Generation> {
    let mut matcher = c.compile(spec).unwrap();
    let mut s = Session::new(m.model.clone(), 4096).unwrap();
    let opts = GenerateOptions {
        max_tokens,
        sampling: SamplingParams {
            temperature,
            seed,
            ..Default::default()
        },
        stop_tokens: m.stop_tokens(),
        ..Default::default()
    };
    let tok = m.tokenizer.as_ref();
    generate_constrained(&mut s, tok, prompt, &opts, &mut matcher, &mut |_| {})
}

/// One constrained generation; `Some(text)` when it completed.
pub fn generate_json(
    c: &ConstraintCompiler,
    m: &LoadedModel,
    schema: &Value,
    seed: u64,
    temperature: f32,
    max_tokens: usize,
) -> Option<String> {
    let tok = m.tokenizer.as_ref().unwrap();
    let prompt = tok
        .encode(
            "<|startoftext|><|im_start|>user\nGive me the JSON.<|im_end|>\n<|im_start|>assistant\n",
        )
        .unwrap();
    let spec = ConstraintSpec::JsonSchema(schema.clone());
    let g = match generate_under(c, m, &spec, &prompt, (seed, temperature, max_tokens)) {
        Ok(g) => g,
        // The key guard stops a generation the grammar could only continue with a repeated
        // key: an incomplete output, never an invalid one.
        Err(e @ lfm_engine::Error::DeadEnd(_)) => {
            eprintln!("stopped before a repeated key: {e}");
            return None;
        }
        Err(e) => panic!("generation failed: {e}"),
    };
    (g.constraint_complete == Some(true)).then_some(g.text)
}

/// Parses JSON text, refusing an object that has the same key twice (serde_json alone keeps
/// the last value silently).
pub fn parse_unique(text: &str) -> Result<Value, String> {
    use serde::de::{Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};

    struct Unique(Value);
    struct V;
    impl<'de> Visitor<'de> for V {
        type Value = Unique;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("JSON")
        }
        fn visit_bool<E>(self, v: bool) -> Result<Unique, E> {
            Ok(Unique(Value::Bool(v)))
        }
        fn visit_i64<E>(self, v: i64) -> Result<Unique, E> {
            Ok(Unique(v.into()))
        }
        fn visit_u64<E>(self, v: u64) -> Result<Unique, E> {
            Ok(Unique(v.into()))
        }
        fn visit_f64<E>(self, v: f64) -> Result<Unique, E> {
            Ok(Unique(v.into()))
        }
        fn visit_str<E>(self, v: &str) -> Result<Unique, E> {
            Ok(Unique(Value::String(v.to_string())))
        }
        fn visit_unit<E>(self) -> Result<Unique, E> {
            Ok(Unique(Value::Null))
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut a: A) -> Result<Unique, A::Error> {
            let mut out = Vec::new();
            while let Some(Unique(v)) = a.next_element()? {
                out.push(v);
            }
            Ok(Unique(Value::Array(out)))
        }
        fn visit_map<A: MapAccess<'de>>(self, mut a: A) -> Result<Unique, A::Error> {
            let mut out = serde_json::Map::new();
            while let Some(k) = a.next_key::<String>()? {
                let Unique(v) = a.next_value()?;
                if out.insert(k.clone(), v).is_some() {
                    return Err(serde::de::Error::custom(format!("key {k:?} appears twice")));
                }
            }
            Ok(Unique(Value::Object(out)))
        }
    }
    impl<'de> Deserialize<'de> for Unique {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Unique, D::Error> {
            d.deserialize_any(V)
        }
    }
    serde_json::from_str::<Unique>(text)
        .map(|u| u.0)
        .map_err(|e| e.to_string())
}

/// Draft 2020-12 validators for `schema`: as the specification has it (`format` is an
/// annotation) and with formats asserted (stricter than the engine's format regexes in a few
/// corners, such as leap seconds).
pub fn validators(schema: &Value) -> (jsonschema::Validator, jsonschema::Validator) {
    let build = |formats: bool| {
        jsonschema::options()
            .with_draft(jsonschema::Draft::Draft202012)
            .should_validate_formats(formats)
            .build(schema)
            .unwrap_or_else(|e| panic!("jsonschema cannot build {schema}: {e}"))
    };
    (build(false), build(true))
}

/// `../shared/json-schema-test-suite/draft2020-12` beside the repository, if present.
pub fn suite_dir() -> Option<PathBuf> {
    let root = match std::env::var_os("LFM_JSON_SCHEMA_SUITE") {
        Some(dir) => PathBuf::from(dir),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/json-schema-test-suite"),
    };
    let p = root.join("draft2020-12");
    p.is_dir().then_some(p)
}
