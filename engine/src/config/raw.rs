//! `config.json` as written on disk, in either of the spellings transformers accepts.
//!
//! Nothing here is checked: [`super::ModelConfig::from_raw`] turns this into the runtime type
//! and reports every inconsistency with the key that caused it.

use serde::Deserialize;
use serde_json::Value;

/// The keys of an LFM2 `config.json`. Absent keys take transformers' `Lfm2Config` defaults
/// during resolution, never here.
// The fields are the config.json keys, documented by transformers' `Lfm2Config`.
#[allow(missing_docs)]
#[derive(Debug, Clone, Default, Deserialize)]
pub struct RawConfig {
    pub model_type: Option<String>,
    pub architectures: Option<Vec<String>>,
    #[serde(default, deserialize_with = "keep_null")]
    pub vocab_size: Option<Value>,
    #[serde(default, deserialize_with = "keep_null")]
    pub hidden_size: Option<Value>,
    #[serde(default, deserialize_with = "keep_null")]
    pub num_hidden_layers: Option<Value>,
    #[serde(default, deserialize_with = "keep_null")]
    pub num_attention_heads: Option<Value>,
    #[serde(default, deserialize_with = "keep_null")]
    pub num_key_value_heads: Option<Value>,
    #[serde(default, deserialize_with = "keep_null")]
    pub head_dim: Option<Value>,
    #[serde(default, deserialize_with = "keep_null")]
    pub max_position_embeddings: Option<Value>,
    #[serde(default, deserialize_with = "keep_null")]
    pub norm_eps: Option<Value>,
    #[serde(default, deserialize_with = "keep_null")]
    pub conv_bias: Option<Value>,
    #[serde(rename = "conv_L_cache", default, deserialize_with = "keep_null")]
    pub conv_l_cache: Option<Value>,
    #[serde(default, deserialize_with = "keep_null")]
    pub intermediate_size: Option<Value>,
    /// Older spelling of `intermediate_size`; wins when both are present, as in transformers.
    #[serde(default, deserialize_with = "keep_null")]
    pub block_ff_dim: Option<Value>,
    #[serde(default, deserialize_with = "keep_null")]
    pub block_auto_adjust_ff_dim: Option<Value>,
    #[serde(default, deserialize_with = "keep_null")]
    pub block_ffn_dim_multiplier: Option<Value>,
    #[serde(default, deserialize_with = "keep_null")]
    pub block_multiple_of: Option<Value>,
    #[serde(default, deserialize_with = "keep_null")]
    pub tie_word_embeddings: Option<Value>,
    /// Older spelling of `tie_word_embeddings`; wins when both are present, as in transformers.
    #[serde(default, deserialize_with = "keep_null")]
    pub tie_embedding: Option<Value>,
    /// Older, top-level spelling of `rope_parameters.rope_theta`.
    #[serde(default, deserialize_with = "keep_null")]
    pub rope_theta: Option<Value>,
    #[serde(default, deserialize_with = "keep_null")]
    pub rope_parameters: Option<Value>,
    #[serde(default, deserialize_with = "keep_null")]
    pub rope_scaling: Option<Value>,
    #[serde(default, deserialize_with = "keep_null")]
    pub layer_types: Option<Value>,
    #[serde(default, deserialize_with = "keep_null")]
    pub full_attn_idxs: Option<Value>,
    #[serde(default, deserialize_with = "keep_null")]
    pub bos_token_id: Option<Value>,
    #[serde(default, deserialize_with = "keep_null")]
    pub eos_token_id: Option<Value>,
    #[serde(default, deserialize_with = "keep_null")]
    pub pad_token_id: Option<Value>,
    /// Set by `lfm-agent synth`: the weights are random and the output is meaningless.
    #[serde(default, deserialize_with = "keep_null")]
    pub lfm_agent_synthetic: Option<Value>,
}

/// Keeps an explicit `null` as `Some(Value::Null)`, so "absent" (the default applies) and
/// "null" (which means something else for several LFM2 keys) stay distinct.
fn keep_null<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Value>, D::Error> {
    Value::deserialize(d).map(Some)
}
