//! Loading model folders: chat template sources, generation defaults, f16 weights.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use lfm_engine::folder::{LoadOptions, LoadedModel};
use lfm_engine::model::Logits;
use lfm_engine::session::Session;
use lfm_engine::text::{Message, Role};
use safetensors::tensor::TensorView;
use safetensors::{Dtype, SafeTensors};

fn fixture(case: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/parity")
        .join(case)
}

fn copy(case: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for e in std::fs::read_dir(fixture(case)).unwrap() {
        let p = e.unwrap().path();
        std::fs::copy(&p, dir.path().join(p.file_name().unwrap())).unwrap();
    }
    dir
}

fn render(dir: &Path) -> String {
    let m = LoadedModel::load(dir, &LoadOptions::default()).unwrap();
    m.template()
        .unwrap()
        .render(&[Message::new(Role::User, "hi")], &[], true)
        .unwrap()
}

#[test]
fn template_sources_in_order_of_precedence() {
    let dir = copy("old_style_tied_f32");
    // None shipped: the built-in LFM2.5 template.
    assert_eq!(
        render(dir.path()),
        "<|startoftext|><|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n"
    );
    // tokenizer_config.json, string form, with its bos_token.
    let cfg = serde_json::json!({"bos_token": "<s>", "chat_template": "{{ bos_token }}{% for m in messages %}[{{ m.role }}]{{ m.content | upper }}{% endfor %}"});
    std::fs::write(dir.path().join("tokenizer_config.json"), cfg.to_string()).unwrap();
    assert_eq!(render(dir.path()), "<s>[user]HI");
    // List form: the template named "default".
    let cfg = serde_json::json!({"chat_template": [
        {"name": "tool_use", "template": "tools"},
        {"name": "default", "template": "{% for m in messages %}{{ m.content.strip() }}!{% endfor %}"}]});
    std::fs::write(dir.path().join("tokenizer_config.json"), cfg.to_string()).unwrap();
    assert_eq!(render(dir.path()), "hi!");
    // chat_template.jinja wins over tokenizer_config.json.
    std::fs::write(
        dir.path().join("chat_template.jinja"),
        "J:{{ messages[0]['content'] }}",
    )
    .unwrap();
    assert_eq!(render(dir.path()), "J:hi");
    // A template that does not compile names its file, and only when a template is needed:
    // the model itself still loads.
    std::fs::write(dir.path().join("chat_template.jinja"), "{% for %}").unwrap();
    let m = LoadedModel::load(dir.path(), &LoadOptions::default()).unwrap();
    let e = m.template().unwrap_err().to_string();
    assert!(e.contains("chat_template.jinja"), "{e}");
}

/// Writes `generation_config.json` and loads the folder.
fn load_with_generation_config(dir: &Path, json: &str) -> lfm_engine::Result<LoadedModel> {
    std::fs::write(dir.join("generation_config.json"), json).unwrap();
    LoadedModel::load(dir, &LoadOptions::default())
}

#[test]
fn generation_config_sets_defaults_and_eos() {
    let dir = copy("old_style_tied_f32");
    let m = load_with_generation_config(
        dir.path(),
        r#"{"do_sample": false, "temperature": 0.7, "top_p": 0.9, "eos_token_id": [7, 2], "max_new_tokens": 99}"#,
    )
    .unwrap();
    assert_eq!(
        m.generation.sampling().temperature,
        0.0,
        "do_sample=false means greedy"
    );
    assert_eq!(m.generation.top_p, Some(0.9));
    assert_eq!(m.generation.max_new_tokens, Some(99));
    assert_eq!(m.stop_tokens(), vec![7, 2]);
    // Like transformers' GenerationConfig: do_sample without a temperature samples at 1.0, top_k 50.
    let m = load_with_generation_config(dir.path(), r#"{"do_sample": true}"#).unwrap();
    assert_eq!(
        (m.generation.sampling().temperature, m.generation.top_k),
        (1.0, Some(50))
    );
    for (json, key) in [
        (r#"{"do_sample": true, "top_p": 1.5}"#, "top_p"),
        (r#"{"top_k": "many"}"#, "top_k"),
    ] {
        let e = load_with_generation_config(dir.path(), json)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("generation_config.json") && e.contains(key),
            "{e}"
        );
    }
}

/// Rewrites every f32 tensor of a folder's model.safetensors through `f`, in `dtype`.
fn rewrite_weights(dir: &Path, dtype: Dtype, f: impl Fn(f32) -> Vec<u8>) {
    let path = dir.join("model.safetensors");
    let bytes = std::fs::read(&path).unwrap();
    let st = SafeTensors::deserialize(&bytes).unwrap();
    let data: Vec<(String, Vec<usize>, Vec<u8>)> = st
        .tensors()
        .into_iter()
        .map(|(n, v)| {
            assert_eq!(v.dtype(), Dtype::F32);
            let out: Vec<u8> = v
                .data()
                .chunks_exact(4)
                .flat_map(|c| f(f32::from_le_bytes(c.try_into().unwrap())))
                .collect();
            (n, v.shape().to_vec(), out)
        })
        .collect();
    let views: HashMap<String, TensorView<'_>> = data
        .iter()
        .map(|(n, s, d)| (n.clone(), TensorView::new(dtype, s.clone(), d).unwrap()))
        .collect();
    safetensors::serialize_to_file(views, None, &path).unwrap();
}

#[test]
fn f16_weights_load_exactly() {
    // The same f16-representable weights stored once as F16 and once as F32 must give the same
    // logits: the F16 reader decodes every value exactly.
    let as_f16 = copy("old_style_tied_f32");
    rewrite_weights(as_f16.path(), Dtype::F16, |x| {
        half::f16::from_f32(x).to_le_bytes().to_vec()
    });
    let as_f32 = copy("old_style_tied_f32");
    rewrite_weights(as_f32.path(), Dtype::F32, |x| {
        half::f16::from_f32(x).to_f32().to_le_bytes().to_vec()
    });
    let logits = |dir: &Path| {
        let m = LoadedModel::load(dir, &LoadOptions::default()).unwrap();
        let mut s = Session::new(m.model.clone(), 16).unwrap();
        s.forward(&[1, 5, 9, 200], Logits::All)
            .unwrap()
            .to_vec2::<f32>()
            .unwrap()
    };
    assert_eq!(logits(as_f16.path()), logits(as_f32.path()));
}
