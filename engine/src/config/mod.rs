//! Model configuration: the raw `config.json` ([`RawConfig`]) and the checked, resolved
//! [`ModelConfig`] the model is built from.
//!
//! Resolution follows transformers' `Lfm2Config` exactly: the same defaults, the same older
//! spellings (`full_attn_idxs`, `block_ff_dim`, `tie_embedding`, top-level `rope_theta`), and
//! the same feed-forward width rule. Anything inconsistent is an error naming the key; nothing
//! is silently filled in.

mod raw;

use std::path::{Path, PathBuf};

pub use raw::RawConfig;
use serde_json::Value;

use crate::error::{Error, Result};

/// What a decoder layer computes besides its feed-forward block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LayerKind {
    /// Gated short convolution.
    Conv,
    /// Grouped-query attention.
    Attention,
}

/// A resolved LFM2 configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelConfig {
    /// Vocabulary size (rows of the embedding).
    pub vocab_size: usize,
    /// Model width.
    pub hidden_size: usize,
    /// One entry per layer.
    pub layer_kinds: Vec<LayerKind>,
    /// Query heads.
    pub num_heads: usize,
    /// Key/value heads (divides `num_heads`).
    pub num_kv_heads: usize,
    /// Width of one head.
    pub head_dim: usize,
    /// Effective feed-forward width (rows of `w1`), after the auto-adjust rule.
    pub ff_dim: usize,
    /// Convolution window, current token included.
    pub conv_l_cache: usize,
    /// Whether in_proj, conv and out_proj of conv layers carry biases.
    pub conv_bias: bool,
    /// RMSNorm epsilon.
    pub norm_eps: f64,
    /// RoPE base.
    pub rope_theta: f64,
    /// Longest context the model was configured for.
    pub max_position_embeddings: usize,
    /// Whether the output head is the embedding matrix.
    pub tie_word_embeddings: bool,
    /// Beginning-of-sequence token.
    pub bos_token_id: Option<u32>,
    /// End tokens from `config.json`.
    pub eos_token_ids: Vec<u32>,
    /// Pad token.
    pub pad_token_id: Option<u32>,
    /// Written by `lfm-agent synth`: random weights.
    pub synthetic: bool,
}

struct Reader<'a> {
    path: &'a Path,
}

impl Reader<'_> {
    fn err(&self, field: &str, message: impl Into<String>) -> Error {
        Error::config(self.path, field, message)
    }

    fn usize(&self, field: &str, v: &Option<Value>, default: usize) -> Result<usize> {
        match v {
            None | Some(Value::Null) => Ok(default),
            Some(v) => self.usize_value(field, v),
        }
    }

    fn usize_value(&self, field: &str, v: &Value) -> Result<usize> {
        v.as_u64()
            .and_then(|n| usize::try_from(n).ok())
            .ok_or_else(|| self.err(field, format!("expected a non-negative integer, found {v}")))
    }

    fn positive(&self, field: &str, v: &Option<Value>, default: usize) -> Result<usize> {
        let n = self.usize(field, v, default)?;
        if n == 0 {
            return Err(self.err(field, "must be greater than 0"));
        }
        Ok(n)
    }

    fn f64(&self, field: &str, v: &Option<Value>, default: f64) -> Result<f64> {
        match v {
            None | Some(Value::Null) => Ok(default),
            Some(v) => v
                .as_f64()
                .filter(|x| x.is_finite())
                .ok_or_else(|| self.err(field, format!("expected a number, found {v}"))),
        }
    }

    fn bool(&self, field: &str, v: &Option<Value>, default: bool) -> Result<bool> {
        match v {
            None | Some(Value::Null) => Ok(default),
            Some(Value::Bool(b)) => Ok(*b),
            Some(v) => Err(self.err(field, format!("expected true or false, found {v}"))),
        }
    }

    fn token_ids(&self, field: &str, v: &Option<Value>, default: Option<u32>) -> Result<Vec<u32>> {
        let one = |v: &Value| -> Result<u32> {
            v.as_u64()
                .and_then(|n| u32::try_from(n).ok())
                .ok_or_else(|| self.err(field, format!("expected a token id, found {v}")))
        };
        match v {
            None => Ok(default.into_iter().collect()),
            Some(Value::Null) => Ok(Vec::new()),
            Some(Value::Array(items)) => items.iter().map(one).collect(),
            Some(v) => Ok(vec![one(v)?]),
        }
    }
}

impl ModelConfig {
    /// Reads and resolves `config.json` at `path`.
    pub fn from_file(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        let raw: RawConfig = serde_json::from_str(&text).map_err(|source| Error::Json {
            path: path.to_path_buf(),
            source,
        })?;
        Self::from_raw(&raw, path)
    }

    /// Resolves a raw config; `path` is only used to name the file in errors.
    pub fn from_raw(raw: &RawConfig, path: &Path) -> Result<Self> {
        let r = Reader { path };
        check_architecture(raw, path)?;

        let vocab_size = r.positive("vocab_size", &raw.vocab_size, 65536)?;
        let hidden_size = r.positive("hidden_size", &raw.hidden_size, 2560)?;
        let num_layers = r.positive("num_hidden_layers", &raw.num_hidden_layers, 32)?;
        let num_heads = r.positive("num_attention_heads", &raw.num_attention_heads, 32)?;
        let num_kv_heads = r.positive("num_key_value_heads", &raw.num_key_value_heads, 8)?;
        if num_heads % num_kv_heads != 0 {
            return Err(r.err(
                "num_key_value_heads",
                format!("{num_kv_heads} does not divide num_attention_heads ({num_heads})"),
            ));
        }
        let head_dim = match &raw.head_dim {
            Some(Value::Null) => {
                // transformers' attention would read None here while its RoPE falls back.
                return Err(r.err("head_dim", "is null; remove the key or give a number"));
            }
            None => {
                if hidden_size % num_heads != 0 {
                    return Err(r.err(
                        "num_attention_heads",
                        format!("{num_heads} does not divide hidden_size ({hidden_size}) and no head_dim is given"),
                    ));
                }
                hidden_size / num_heads
            }
            Some(v) => r.usize_value("head_dim", v)?,
        };
        if head_dim == 0 || head_dim % 2 != 0 {
            return Err(r.err(
                "head_dim",
                format!("{head_dim} must be even and positive for RoPE"),
            ));
        }

        let layer_kinds = resolve_layers(&r, raw, num_layers)?;
        let ff_dim = resolve_ff_dim(&r, raw)?;
        let conv_l_cache = r.positive("conv_L_cache", &raw.conv_l_cache, 3)?;
        let norm_eps = r.f64("norm_eps", &raw.norm_eps, 1e-5)?;
        if norm_eps <= 0.0 {
            return Err(r.err("norm_eps", "must be positive"));
        }
        let rope_theta = resolve_rope_theta(&r, raw)?;
        let max_position_embeddings = r.positive(
            "max_position_embeddings",
            &raw.max_position_embeddings,
            128_000,
        )?;
        let tie = match &raw.tie_embedding {
            Some(v) if !v.is_null() => r.bool("tie_embedding", &raw.tie_embedding, true)?,
            _ => r.bool("tie_word_embeddings", &raw.tie_word_embeddings, true)?,
        };
        let bos = r.token_ids("bos_token_id", &raw.bos_token_id, Some(1))?;
        let pad = r.token_ids("pad_token_id", &raw.pad_token_id, Some(0))?;
        let eos_token_ids = r.token_ids("eos_token_id", &raw.eos_token_id, Some(2))?;
        for (field, ids) in [
            ("bos_token_id", &bos),
            ("pad_token_id", &pad),
            ("eos_token_id", &eos_token_ids),
        ] {
            if let Some(id) = ids.iter().find(|&&id| id as usize >= vocab_size) {
                return Err(r.err(
                    field,
                    format!("token id {id} is outside the vocabulary ({vocab_size})"),
                ));
            }
        }
        // Every weight shape must be addressable: refuse absurd sizes before allocating.
        let sizes = [
            ("vocab_size", vocab_size.checked_mul(hidden_size)),
            (
                "hidden_size",
                hidden_size
                    .checked_mul(3)
                    .and_then(|x| x.checked_mul(hidden_size)),
            ),
            (
                "num_attention_heads",
                num_heads
                    .checked_mul(head_dim)
                    .and_then(|q| q.checked_mul(hidden_size)),
            ),
            ("intermediate_size", ff_dim.checked_mul(hidden_size)),
        ];
        for (field, n) in sizes {
            if n.is_none_or(|n| n > (1usize << 40)) {
                return Err(r.err(field, "gives a weight matrix too large to load"));
            }
        }
        Ok(ModelConfig {
            vocab_size,
            hidden_size,
            layer_kinds,
            num_heads,
            num_kv_heads,
            head_dim,
            ff_dim,
            conv_l_cache,
            conv_bias: r.bool("conv_bias", &raw.conv_bias, false)?,
            norm_eps,
            rope_theta,
            max_position_embeddings,
            tie_word_embeddings: tie,
            bos_token_id: bos.first().copied(),
            eos_token_ids,
            pad_token_id: pad.first().copied(),
            synthetic: r.bool("lfm_agent_synthetic", &raw.lfm_agent_synthetic, false)?,
        })
    }

    /// Number of decoder layers.
    pub fn num_layers(&self) -> usize {
        self.layer_kinds.len()
    }

    /// Query heads that share one key/value head.
    pub fn group_size(&self) -> usize {
        self.num_heads / self.num_kv_heads
    }
}

fn check_architecture(raw: &RawConfig, path: &Path) -> Result<()> {
    let unsupported = |field, found: &str| Error::UnsupportedArchitecture {
        path: PathBuf::from(path),
        field,
        found: found.to_string(),
    };
    match raw.model_type.as_deref() {
        Some("lfm2") => {}
        Some(other) => return Err(unsupported("model_type", other)),
        None => {
            return Err(Error::config(
                path,
                "model_type",
                "missing; expected \"lfm2\"",
            ))
        }
    }
    if let Some(archs) = &raw.architectures {
        if let Some(a) = archs.iter().find(|a| a.as_str() != "Lfm2ForCausalLM") {
            return Err(unsupported("architectures", a));
        }
    }
    Ok(())
}

fn resolve_layers(r: &Reader<'_>, raw: &RawConfig, n: usize) -> Result<Vec<LayerKind>> {
    match &raw.layer_types {
        Some(Value::Array(items)) => {
            if items.len() != n {
                return Err(r.err(
                    "layer_types",
                    format!("has {} entries but num_hidden_layers is {n}", items.len()),
                ));
            }
            items
                .iter()
                .enumerate()
                .map(|(i, v)| match v.as_str() {
                    Some("conv") => Ok(LayerKind::Conv),
                    Some("full_attention") => Ok(LayerKind::Attention),
                    _ => Err(r.err(
                        &format!("layer_types[{i}]"),
                        format!("expected \"conv\" or \"full_attention\", found {v}"),
                    )),
                })
                .collect()
        }
        Some(Value::Null) | None => {
            let idxs: Vec<usize> = match &raw.full_attn_idxs {
                Some(Value::Array(items)) => items
                    .iter()
                    .map(|v| r.usize_value("full_attn_idxs", v))
                    .collect::<Result<_>>()?,
                // transformers: with neither key, every layer is attention.
                Some(Value::Null) | None => (0..n).collect(),
                Some(v) => {
                    return Err(r.err(
                        "full_attn_idxs",
                        format!("expected a list of layer indices, found {v}"),
                    ))
                }
            };
            if let Some(i) = idxs.iter().find(|&&i| i >= n) {
                return Err(r.err(
                    "full_attn_idxs",
                    format!("layer {i} does not exist (num_hidden_layers is {n})"),
                ));
            }
            Ok((0..n)
                .map(|i| {
                    if idxs.contains(&i) {
                        LayerKind::Attention
                    } else {
                        LayerKind::Conv
                    }
                })
                .collect())
        }
        Some(v) => Err(r.err("layer_types", format!("expected a list, found {v}"))),
    }
}

fn resolve_ff_dim(r: &Reader<'_>, raw: &RawConfig) -> Result<usize> {
    let (field, base) = match &raw.block_ff_dim {
        Some(v) if !v.is_null() => ("block_ff_dim", r.usize_value("block_ff_dim", v)?),
        _ => (
            "intermediate_size",
            r.usize("intermediate_size", &raw.intermediate_size, 12288)?,
        ),
    };
    let auto = r.bool(
        "block_auto_adjust_ff_dim",
        &raw.block_auto_adjust_ff_dim,
        true,
    )?;
    let mut ff = base;
    if let Some(v) = &raw.block_ffn_dim_multiplier {
        if v.as_f64().is_some_and(|m| !(m > 0.0 && m.is_finite())) {
            return Err(r.err(
                "block_ffn_dim_multiplier",
                format!("must be a positive number, found {v}"),
            ));
        }
    }
    if auto {
        ff = (2.0 * ff as f64 / 3.0) as usize;
        let mult = match &raw.block_ffn_dim_multiplier {
            None => Some(1.0),
            Some(Value::Null) => None,
            Some(_) => Some(r.f64(
                "block_ffn_dim_multiplier",
                &raw.block_ffn_dim_multiplier,
                1.0,
            )?),
        };
        if let Some(mult) = mult {
            let multiple_of = r.positive("block_multiple_of", &raw.block_multiple_of, 256)?;
            ff = (mult * ff as f64) as usize;
            ff = multiple_of * ff.div_ceil(multiple_of);
        }
    }
    if ff == 0 {
        return Err(r.err(field, format!("{base} gives a feed-forward width of 0")));
    }
    Ok(ff)
}

fn resolve_rope_theta(r: &Reader<'_>, raw: &RawConfig) -> Result<f64> {
    if let Some(v) = &raw.rope_scaling {
        if !v.is_null() {
            return Err(r.err(
                "rope_scaling",
                "RoPE scaling is not supported (LFM2 uses plain RoPE)",
            ));
        }
    }
    let top = r.f64("rope_theta", &raw.rope_theta, 1e6)?;
    if top <= 0.0 {
        return Err(r.err("rope_theta", format!("must be positive, found {top}")));
    }
    let theta = match &raw.rope_parameters {
        None | Some(Value::Null) => top,
        Some(Value::Object(map)) => {
            if let Some(t) = map.get("rope_type") {
                if t.as_str() != Some("default") {
                    return Err(r.err(
                        "rope_parameters.rope_type",
                        format!("only \"default\" RoPE is supported, found {t}"),
                    ));
                }
            }
            match map.get("rope_theta") {
                Some(v) => v.as_f64().ok_or_else(|| {
                    r.err(
                        "rope_parameters.rope_theta",
                        format!("expected a number, found {v}"),
                    )
                })?,
                None => top,
            }
        }
        Some(v) => return Err(r.err("rope_parameters", format!("expected an object, found {v}"))),
    };
    if !(theta.is_finite() && theta > 0.0) {
        return Err(r.err(
            "rope_parameters.rope_theta",
            format!("must be positive, found {theta}"),
        ));
    }
    Ok(theta)
}

#[cfg(test)]
mod tests;
