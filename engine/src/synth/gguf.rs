//! Random-weight GGUF files of the presets' exact shapes, in the layout llama.cpp's converter
//! writes for `lfm2` (so llama.cpp loads and runs them). The weights are the same draws as the
//! safetensors folder of the same preset and seed, then quantized.

use std::path::Path;

use serde_json::Value as Json;

use super::writer::{specs, Rng, RNG_SALT};
use super::{synth_tokenizer_json, Preset};
use crate::config::{LayerKind, ModelConfig, RawConfig};
use crate::error::{Error, Result};
use crate::gguf::{gguf_name, GgufWriter, Value, SYNTHETIC_KEY};
use crate::quant::{quantize_row, GgmlType};

/// ggml's `general.file_type` (`llama_ftype`) for a file whose matrices are `ty`.
fn file_type(ty: GgmlType) -> u32 {
    match ty {
        GgmlType::F32 => 0,
        GgmlType::F16 => 1,
        GgmlType::Q4_0 => 2,
        GgmlType::Q8_0 => 7,
        GgmlType::BF16 => 32,
        GgmlType::Q4K => 15,
        GgmlType::Q5K => 17,
        GgmlType::Q6K => 18,
    }
}

fn u32v(n: usize) -> Value {
    Value::U32(n as u32)
}

/// Writes a random-weight GGUF of `preset` with every matrix in `quant` (F32, F16, BF16,
/// Q8_0 or Q4_0); norms and conv taps stay F32 as llama.cpp's converter keeps them.
pub fn write_gguf(preset: Preset, quant: GgmlType, seed: u64, path: &Path) -> Result<()> {
    if !matches!(
        quant,
        GgmlType::F32 | GgmlType::F16 | GgmlType::BF16 | GgmlType::Q8_0 | GgmlType::Q4_0
    ) {
        return Err(Error::arg(
            "quant",
            format!("{quant}: synth writes f32, f16, bf16, q8_0 or q4_0 (make K-quants with llama.cpp's llama-quantize)"),
        ));
    }
    let json = preset.config();
    let raw: RawConfig = serde_json::from_value(json.clone()).map_err(|source| Error::Json {
        path: path.to_path_buf(),
        source,
    })?;
    let c = ModelConfig::from_raw(&raw, Path::new("(synth config)"))?;
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(|e| Error::io(parent, e))?;
    }
    let mut w = GgufWriter::new();
    let name = format!("lfm-agent synthetic {} (random weights)", preset.name());
    w.add("general.architecture", Value::String("lfm2".into()))
        .add("general.name", Value::String(name))
        .add("general.file_type", Value::U32(file_type(quant)))
        .add("general.quantization_version", Value::U32(2))
        .add(SYNTHETIC_KEY, Value::Bool(true))
        .add("lfm2.block_count", u32v(c.num_layers()))
        .add("lfm2.context_length", u32v(c.max_position_embeddings))
        .add("lfm2.embedding_length", u32v(c.hidden_size))
        .add("lfm2.feed_forward_length", u32v(c.ff_dim))
        .add("lfm2.attention.head_count", u32v(c.num_heads))
        .add(
            "lfm2.attention.head_count_kv",
            Value::Array(
                c.layer_kinds
                    .iter()
                    .map(|k| match k {
                        LayerKind::Conv => Value::I32(0),
                        LayerKind::Attention => Value::I32(c.num_kv_heads as i32),
                    })
                    .collect(),
            ),
        )
        .add("lfm2.rope.freq_base", Value::F32(c.rope_theta as f32))
        .add(
            "lfm2.attention.layer_norm_rms_epsilon",
            Value::F32(c.norm_eps as f32),
        )
        .add("lfm2.shortconv.l_cache", u32v(c.conv_l_cache))
        .add("lfm2.vocab_size", u32v(c.vocab_size));
    add_tokenizer(&mut w, &c, seed)?;
    w.add(
        "tokenizer.chat_template",
        Value::String(crate::text::BUILTIN_LFM2_TEMPLATE.to_string()),
    );
    let specs = specs(&c);
    for s in &specs {
        let ty = if s.shape.len() == 2 {
            quant
        } else {
            GgmlType::F32
        };
        // ggml dims: innermost first; the conv weight [h, 1, L] is stored squeezed as [L, h].
        let dims: Vec<usize> = s.shape.iter().rev().copied().filter(|&d| d != 1).collect();
        let name = gguf_name(&s.name).ok_or_else(|| {
            Error::arg(
                "preset",
                format!("no GGUF name for synthetic tensor `{}`", s.name),
            )
        })?;
        w.add_tensor(&name, &dims, ty);
    }
    let mut rng = Rng(seed ^ RNG_SALT);
    w.write(path, |i, t, buf| {
        let values = rng.values(&specs[i]);
        let cols = t.dims[0];
        let row_bytes = buf.len() / (values.len() / cols).max(1);
        for (src, dst) in values
            .chunks_exact(cols)
            .zip(buf.chunks_exact_mut(row_bytes))
        {
            if !quantize_row(t.ty, src, dst) {
                return Err(Error::arg("quant", format!("no quantizer for {}", t.ty)));
            }
        }
        Ok(())
    })
}

fn add_tokenizer(w: &mut GgufWriter, c: &ModelConfig, seed: u64) -> Result<()> {
    let tok = synth_tokenizer_json(c.vocab_size, seed)?;
    let vocab = tok["model"]["vocab"]
        .as_object()
        .ok_or_else(|| Error::Tokenizer("synthetic tokenizer has no vocab".into()))?;
    let mut tokens = vec![String::new(); c.vocab_size];
    for (text, id) in vocab {
        if let Some(slot) = id.as_u64().and_then(|i| tokens.get_mut(i as usize)) {
            *slot = text.clone();
        }
    }
    let mut types = vec![Value::I32(1); c.vocab_size];
    for a in tok["added_tokens"].as_array().into_iter().flatten() {
        let id = a["id"].as_u64().unwrap_or(u64::MAX) as usize;
        if let Some(t) = types.get_mut(id) {
            *t = Value::I32(if a["special"] == Json::Bool(true) {
                3
            } else {
                4
            });
        }
    }
    let merges: Vec<Value> = tok["model"]["merges"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|m| m.as_str().map(|s| Value::String(s.to_string())))
        .collect();
    w.add("tokenizer.ggml.model", Value::String("gpt2".into()))
        // The synthetic tokenizer.json splits with GPT-2's byte-level regex.
        .add("tokenizer.ggml.pre", Value::String("gpt-2".into()))
        .add(
            "tokenizer.ggml.tokens",
            Value::Array(tokens.into_iter().map(Value::String).collect()),
        )
        .add("tokenizer.ggml.token_type", Value::Array(types))
        .add("tokenizer.ggml.merges", Value::Array(merges))
        .add("tokenizer.ggml.bos_token_id", Value::U32(1))
        .add("tokenizer.ggml.eos_token_id", Value::U32(7))
        .add("tokenizer.ggml.padding_token_id", Value::U32(0))
        .add("tokenizer.ggml.add_bos_token", Value::Bool(false));
    Ok(())
}
