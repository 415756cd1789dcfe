//! The `lfm2` architecture in GGUF: metadata keys to a [`ModelConfig`], and llama.cpp's tensor
//! names to the Hugging Face names the model loader asks for.
//!
//! | Hugging Face | GGUF |
//! |---|---|
//! | `model.embed_tokens` | `token_embd` |
//! | `model.embedding_norm` (the final norm) | `token_embd_norm` |
//! | `lm_head` (absent when tied) | `output` |
//! | `model.layers.N.operator_norm` / `ffn_norm` | `blk.N.attn_norm` / `blk.N.ffn_norm` |
//! | `…conv.conv` / `conv.in_proj` / `conv.out_proj` | `blk.N.shortconv.{conv,in_proj,out_proj}` |
//! | `…self_attn.{q,k,v}_proj` / `out_proj` | `blk.N.attn_{q,k,v}` (or fused `attn_qkv`) / `attn_output` |
//! | `…self_attn.{q,k}_layernorm` | `blk.N.attn_{q,k}_norm` |
//! | `…feed_forward.w1` / `w3` / `w2` | `blk.N.ffn_gate` / `ffn_up` / `ffn_down` |
//!
//! GGUF dims are innermost first, so a Hugging Face `[out, in]` weight is `[in, out]` here, and
//! the conv weight `[hidden, 1, L]` is stored squeezed as `[L, hidden]`.

use candle_core::{DType, Device, Tensor};

use super::{GgufFile, Value};
use crate::config::{LayerKind, ModelConfig};
use crate::error::{Error, Result};
use crate::model::{Embedding, Linear, WeightSource};

/// The GGUF metadata key `synth` sets on random-weight files.
pub const SYNTHETIC_KEY: &str = "lfm_agent.synthetic";

fn scalar_u64(g: &GgufFile, key: &str) -> Result<u64> {
    let v = g.need(key)?;
    match v {
        // Some converters write per-layer arrays for values that are uniform.
        Value::Array(items) if !items.is_empty() => {
            let first = items[0].as_u64();
            if first.is_some() && items.iter().all(|i| i.as_u64() == first) {
                first.ok_or_else(|| g.bad_key(key, "expected an unsigned integer"))
            } else {
                Err(g.bad_key(key, "per-layer values differ; this engine needs one value"))
            }
        }
        _ => v.as_u64().ok_or_else(|| {
            g.bad_key(
                key,
                format!("expected an unsigned integer, found {}", v.type_name()),
            )
        }),
    }
}

fn positive(g: &GgufFile, key: &str) -> Result<usize> {
    let v = scalar_u64(g, key)?;
    if v == 0 || v > (1 << 32) {
        return Err(g.bad_key(key, format!("{v} is out of range")));
    }
    Ok(v as usize)
}

fn float(g: &GgufFile, key: &str, default: Option<f64>) -> Result<f64> {
    match g.get(key) {
        None => default.ok_or_else(|| g.bad_key(key, "missing")),
        Some(v) => v
            .as_f64()
            .filter(|x| x.is_finite())
            .ok_or_else(|| g.bad_key(key, format!("expected a number, found {}", v.type_name()))),
    }
}

fn token_id(g: &GgufFile, key: &str, vocab: usize) -> Result<Option<u32>> {
    let Some(v) = g.get(key) else {
        return Ok(None);
    };
    let id = v
        .as_u64()
        .ok_or_else(|| g.bad_key(key, format!("expected a token id, found {}", v.type_name())))?;
    if id as usize >= vocab {
        return Err(g.bad_key(
            key,
            format!("token id {id} is outside the vocabulary ({vocab})"),
        ));
    }
    Ok(Some(id as u32))
}

/// The model configuration of an `lfm2` GGUF file.
pub fn config_from_gguf(g: &GgufFile) -> Result<ModelConfig> {
    let arch = g.need_str("general.architecture")?;
    if arch != "lfm2" {
        return Err(Error::UnsupportedArchitecture {
            path: g.path().to_path_buf(),
            field: "general.architecture",
            found: arch.to_string(),
        });
    }
    let k = |s: &str| format!("lfm2.{s}");
    let n_layers = positive(g, &k("block_count"))?;
    let hidden = positive(g, &k("embedding_length"))?;
    let ff_dim = positive(g, &k("feed_forward_length"))?;
    let num_heads = positive(g, &k("attention.head_count"))?;
    let kv_key = k("attention.head_count_kv");
    let kv: Vec<u64> = match g.need(&kv_key)? {
        Value::Array(items) => items
            .iter()
            .map(|v| {
                v.as_u64()
                    .ok_or_else(|| g.bad_key(&kv_key, "expected unsigned integers"))
            })
            .collect::<Result<_>>()?,
        v => vec![
            v.as_u64()
                .ok_or_else(|| g.bad_key(&kv_key, "expected an unsigned integer"))?;
            n_layers
        ],
    };
    if kv.len() != n_layers {
        return Err(g.bad_key(
            &kv_key,
            format!("has {} entries for {n_layers} layers", kv.len()),
        ));
    }
    // 0 KV heads marks a short-convolution layer.
    let layer_kinds: Vec<LayerKind> = kv
        .iter()
        .map(|&n| {
            if n == 0 {
                LayerKind::Conv
            } else {
                LayerKind::Attention
            }
        })
        .collect();
    let mut attn_kv = kv.iter().copied().filter(|&n| n > 0);
    let num_kv_heads = attn_kv.next().unwrap_or(num_heads as u64) as usize;
    if attn_kv.any(|n| n as usize != num_kv_heads) {
        return Err(g.bad_key(
            &kv_key,
            "attention layers differ in KV head count; this engine needs one",
        ));
    }
    if num_heads % num_kv_heads != 0 {
        return Err(g.bad_key(
            &kv_key,
            format!("{num_kv_heads} does not divide the head count {num_heads}"),
        ));
    }
    let head_dim = match g.get(&k("attention.key_length")) {
        Some(_) => positive(g, &k("attention.key_length"))?,
        None if hidden % num_heads == 0 => hidden / num_heads,
        None => {
            return Err(g.bad_key(
                &k("attention.head_count"),
                format!("{num_heads} does not divide embedding_length {hidden}"),
            ))
        }
    };
    if head_dim % 2 != 0 {
        return Err(g.bad_key(
            &k("attention.key_length"),
            format!("{head_dim} must be even for RoPE"),
        ));
    }
    if let Some(v) = g.get(&k("attention.sliding_window")) {
        if v.as_u64().is_some_and(|w| w > 0) {
            return Err(g.bad_key(
                &k("attention.sliding_window"),
                "sliding-window attention is not supported",
            ));
        }
    }
    let vocab = match g.get(&k("vocab_size")) {
        Some(_) => positive(g, &k("vocab_size"))?,
        None => g
            .tensor("token_embd.weight")
            .and_then(|t| t.dims.get(1).copied())
            .ok_or_else(|| {
                g.bad_key(
                    &k("vocab_size"),
                    "missing, and token_embd.weight gives no vocabulary size",
                )
            })?,
    };
    let norm_eps = float(g, &k("attention.layer_norm_rms_epsilon"), None)?;
    if norm_eps <= 0.0 {
        return Err(g.bad_key(&k("attention.layer_norm_rms_epsilon"), "must be positive"));
    }
    // Refuse sizes no real model has before anything is allocated from them (the file's own
    // tensors are checked against these later, but the RoPE table and caches are not).
    for (key, v, max) in [
        ("embedding_length", hidden, 1 << 16),
        ("feed_forward_length", ff_dim, 1 << 18),
        ("attention.head_count", num_heads, 1 << 10),
        ("attention.key_length", head_dim, 1 << 12),
        ("vocab_size", vocab, 1 << 22),
        ("block_count", n_layers, 1 << 10),
    ] {
        if v > max {
            return Err(g.bad_key(
                &k(key),
                format!("{v} is larger than any model this engine runs (at most {max})"),
            ));
        }
    }
    let eos = token_id(g, "tokenizer.ggml.eos_token_id", vocab)?;
    Ok(ModelConfig {
        vocab_size: vocab,
        hidden_size: hidden,
        layer_kinds,
        num_heads,
        num_kv_heads,
        head_dim,
        ff_dim,
        conv_l_cache: match positive(g, &k("shortconv.l_cache"))? {
            l if l > 64 => {
                return Err(g.bad_key(
                    &k("shortconv.l_cache"),
                    format!("{l} is larger than any model this engine runs (at most 64)"),
                ))
            }
            l => l,
        },
        conv_bias: false,
        norm_eps,
        rope_theta: float(g, &k("rope.freq_base"), Some(10_000.0))?,
        max_position_embeddings: positive(g, &k("context_length"))?,
        tie_word_embeddings: g.tensor("output.weight").is_none(),
        bos_token_id: token_id(g, "tokenizer.ggml.bos_token_id", vocab)?,
        eos_token_ids: eos.into_iter().collect(),
        pad_token_id: token_id(g, "tokenizer.ggml.padding_token_id", vocab)?,
        synthetic: g
            .get(SYNTHETIC_KEY)
            .and_then(Value::as_bool)
            .unwrap_or(false),
    })
}

/// Translates a Hugging Face tensor name to llama.cpp's.
pub(crate) fn gguf_name(hf: &str) -> Option<String> {
    let top = match hf {
        "model.embed_tokens.weight" => Some("token_embd.weight"),
        "model.embedding_norm.weight" => Some("token_embd_norm.weight"),
        "lm_head.weight" => Some("output.weight"),
        _ => None,
    };
    if let Some(t) = top {
        return Some(t.to_string());
    }
    let rest = hf.strip_prefix("model.layers.")?;
    let (layer, rest) = rest.split_once('.')?;
    let (stem, suffix) = rest.rsplit_once('.')?;
    let mapped = match stem {
        "operator_norm" => "attn_norm",
        "ffn_norm" => "ffn_norm",
        "feed_forward.w1" => "ffn_gate",
        "feed_forward.w3" => "ffn_up",
        "feed_forward.w2" => "ffn_down",
        "conv.conv" => "shortconv.conv",
        "conv.in_proj" => "shortconv.in_proj",
        "conv.out_proj" => "shortconv.out_proj",
        "self_attn.q_proj" => "attn_q",
        "self_attn.k_proj" => "attn_k",
        "self_attn.v_proj" => "attn_v",
        "self_attn.out_proj" => "attn_output",
        "self_attn.q_layernorm" => "attn_q_norm",
        "self_attn.k_layernorm" => "attn_k_norm",
        _ => return None,
    };
    Some(format!("blk.{layer}.{mapped}.{suffix}"))
}

/// A GGUF file as the model's weight source. Matrices stay in their ggml type and in the map;
/// norms and conv taps (small, F32 in llama.cpp's files) are read as f32 tensors.
#[derive(Debug)]
pub struct GgufWeights {
    file: GgufFile,
    config: ModelConfig,
}

impl GgufWeights {
    /// Wraps an open file whose config has been read.
    pub fn new(file: GgufFile, config: ModelConfig) -> Self {
        GgufWeights { file, config }
    }

    /// The file.
    pub fn file(&self) -> &GgufFile {
        &self.file
    }

    fn name(&self, hf: &str) -> Result<String> {
        gguf_name(hf).ok_or_else(|| Error::MissingTensor {
            path: self.file.path().to_path_buf(),
            name: format!("{hf} (no GGUF name for it)"),
        })
    }

    /// Rows `range` of the fused `blk.N.attn_qkv.weight`, for files that store Q, K and V
    /// as one matrix.
    fn fused_qkv(&self, hf_prefix: &str, out: usize, inp: usize) -> Option<Result<Linear>> {
        let layer = hf_prefix.strip_prefix("model.layers.")?.split('.').next()?;
        let which = hf_prefix.rsplit('.').next()?;
        let fused = format!("blk.{layer}.attn_qkv.weight");
        self.file.tensor(&fused)?;
        let c = &self.config;
        let (q, kv) = (c.num_heads * c.head_dim, c.num_kv_heads * c.head_dim);
        let start = match which {
            "q_proj" => 0,
            "k_proj" => q,
            "v_proj" => q + kv,
            _ => return None,
        };
        Some(self.file.matrix(&fused, q + 2 * kv, inp).and_then(|m| {
            m.slice_rows(start, out)
                .map(Linear::Quant)
                .ok_or_else(|| Error::Gguf {
                    path: self.file.path().to_path_buf(),
                    message: format!("tensor `{fused}` is too small to split into Q, K and V"),
                })
        }))
    }
}

impl WeightSource for GgufWeights {
    fn tensor(&self, name: &str, shape: &[usize], dtype: DType) -> Result<Tensor> {
        // ggml dims are the reverse of the Hugging Face shape (the converter drops the conv
        // weight's channel axis; size-1 dims are not compared).
        let want: Vec<usize> = shape.iter().rev().copied().collect();
        let values = self.file.f32_values(&self.name(name)?, &want)?;
        Ok(Tensor::from_vec(values, shape, &Device::Cpu)?.to_dtype(dtype)?)
    }

    fn linear(
        &self,
        prefix: &str,
        out: usize,
        inp: usize,
        bias: bool,
        _dtype: DType,
    ) -> Result<Linear> {
        if bias {
            return Err(Error::Gguf {
                path: self.file.path().to_path_buf(),
                message: format!("`{prefix}` needs a bias, which lfm2 GGUF files do not carry"),
            });
        }
        let g = self.name(&format!("{prefix}.weight"))?;
        if self.file.tensor(&g).is_none() {
            if let Some(fused) = self.fused_qkv(prefix, out, inp) {
                return fused;
            }
        }
        Ok(Linear::Quant(
            self.file.matrix(&g, out, inp)?.into_fast_layout(),
        ))
    }

    fn embedding(
        &self,
        name: &str,
        vocab: usize,
        hidden: usize,
        _dtype: DType,
    ) -> Result<Embedding> {
        let g = self.name(name)?;
        Ok(Embedding::Quant(
            self.file.matrix(&g, vocab, hidden)?.into_fast_layout(),
        ))
    }

    fn has(&self, name: &str) -> bool {
        gguf_name(name).is_some_and(|g| self.file.tensor(&g).is_some())
    }

    /// f16, as llama.cpp's default cache: half the memory of f32 at 32K tokens.
    fn kv_dtype(&self, _compute: DType) -> DType {
        DType::F16
    }
}
