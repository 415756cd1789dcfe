use super::*;
use serde_json::json;

fn resolve(v: serde_json::Value) -> Result<ModelConfig> {
    let raw: RawConfig = serde_json::from_value(v).expect("test config deserializes");
    ModelConfig::from_raw(&raw, Path::new("config.json"))
}

fn lfm25_1_2b() -> serde_json::Value {
    json!({
        "model_type": "lfm2", "architectures": ["Lfm2ForCausalLM"],
        "vocab_size": 65536, "hidden_size": 2048, "num_hidden_layers": 16,
        "num_attention_heads": 32, "num_key_value_heads": 8,
        "intermediate_size": 12288, "block_auto_adjust_ff_dim": true,
        "block_ffn_dim_multiplier": 1.0, "block_multiple_of": 256,
        "layer_types": ["conv","conv","full_attention","conv","conv","full_attention","conv","conv",
                        "full_attention","conv","full_attention","conv","full_attention","conv","full_attention","conv"],
        "rope_parameters": {"rope_type": "default", "rope_theta": 1000000.0},
        "max_position_embeddings": 128000, "norm_eps": 1e-5, "eos_token_id": 7
    })
}

#[test]
fn published_1_2b_shape_resolves_to_the_documented_numbers() {
    let c = resolve(lfm25_1_2b()).unwrap();
    assert_eq!(c.ff_dim, 8192);
    assert_eq!(c.head_dim, 64);
    assert_eq!(c.group_size(), 4);
    let attn: Vec<usize> = (0..16)
        .filter(|&i| c.layer_kinds[i] == LayerKind::Attention)
        .collect();
    assert_eq!(attn, vec![2, 5, 8, 10, 12, 14]);
    assert_eq!(c.eos_token_ids, vec![7]);
    assert!(c.tie_word_embeddings);
}

#[test]
fn old_spellings_are_read_like_transformers() {
    let c = resolve(json!({
        "model_type": "lfm2", "hidden_size": 64, "num_hidden_layers": 4,
        "num_attention_heads": 4, "num_key_value_heads": 2,
        "full_attn_idxs": [1, 3], "block_ff_dim": 300, "intermediate_size": 999,
        "block_auto_adjust_ff_dim": false, "rope_theta": 5000.0, "tie_embedding": false
    }))
    .unwrap();
    use LayerKind::*;
    assert_eq!(c.layer_kinds, vec![Conv, Attention, Conv, Attention]);
    assert_eq!(c.ff_dim, 300, "block_ff_dim wins over intermediate_size");
    assert_eq!(c.rope_theta, 5000.0);
    assert!(!c.tie_word_embeddings);
}

#[test]
fn neither_layer_key_means_every_layer_is_attention() {
    let c = resolve(
        json!({"model_type": "lfm2", "hidden_size": 32, "num_hidden_layers": 3,
        "num_attention_heads": 4, "num_key_value_heads": 4, "full_attn_idxs": null}),
    )
    .unwrap();
    assert!(c.layer_kinds.iter().all(|k| *k == LayerKind::Attention));
}

#[test]
fn ff_rounding_happens_only_with_a_multiplier() {
    let base = |m: serde_json::Value| {
        resolve(
            json!({"model_type": "lfm2", "hidden_size": 32, "num_attention_heads": 4,
            "num_key_value_heads": 1, "num_hidden_layers": 1, "intermediate_size": 100,
            "block_ffn_dim_multiplier": m, "block_multiple_of": 32}),
        )
        .unwrap()
        .ff_dim
    };
    // int(200/3) = 66; int(1.3 * 66) = 85; rounded up to 96.
    assert_eq!(base(json!(1.3)), 96);
    assert_eq!(base(json!(null)), 66);
}

#[test]
fn inconsistent_configs_name_the_field() {
    let mut v = lfm25_1_2b();
    v["layer_types"] = json!(["conv"]);
    let e = resolve(v).unwrap_err().to_string();
    assert!(e.contains("layer_types") && e.contains("16"), "{e}");

    let mut v = lfm25_1_2b();
    v["num_key_value_heads"] = json!(5);
    assert!(resolve(v)
        .unwrap_err()
        .to_string()
        .contains("num_key_value_heads"));

    let mut v = lfm25_1_2b();
    v["layer_types"][3] = json!("mamba");
    assert!(resolve(v)
        .unwrap_err()
        .to_string()
        .contains("layer_types[3]"));

    let mut v = lfm25_1_2b();
    v["hidden_size"] = json!("big");
    assert!(resolve(v)
        .unwrap_err()
        .to_string()
        .contains("`hidden_size`"));

    let mut v = lfm25_1_2b();
    v["rope_parameters"] = json!({"rope_type": "yarn", "rope_theta": 1.0});
    assert!(resolve(v).unwrap_err().to_string().contains("rope_type"));
}

#[test]
fn other_architectures_are_refused() {
    let mut v = lfm25_1_2b();
    v["model_type"] = json!("llama");
    let e = resolve(v).unwrap_err();
    assert!(matches!(e, Error::UnsupportedArchitecture { .. }), "{e}");
    assert!(e.to_string().contains("llama"));
}
