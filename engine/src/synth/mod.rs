//! Random-weight LFM2 model folders of the published shapes.
//!
//! A fresh machine with no model download can still run every command end to end: `synth`
//! writes `config.json`, `model.safetensors`, a byte-level BPE `tokenizer.json` of the preset's
//! vocabulary size with LFM2's special tokens at their ids, the chat template and a
//! `generation_config.json`. The weights are random, so the text is meaningless; compute and
//! memory traffic are those of the real model. `config.json` carries
//! `"lfm_agent_synthetic": true` so tools can say so.

mod gguf;
mod tokenizer;
mod writer;

use std::path::Path;

use serde_json::json;

use crate::error::{Error, Result};

pub use gguf::write_gguf;
pub use tokenizer::synth_tokenizer_json;

/// A model shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Preset {
    /// A few-MB model with the full 65,536-token vocabulary, for tests and demos.
    Tiny,
    /// A 2M-parameter model with a 512-token vocabulary and rows of 256 (whole K-quant
    /// blocks), small enough to commit as GGUF parity fixtures.
    Micro,
    /// The exact published LFM2.5-1.2B shape.
    Lfm25_1_2b,
}

impl std::str::FromStr for Preset {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "tiny" => Ok(Preset::Tiny),
            "micro" => Ok(Preset::Micro),
            "lfm2.5-1.2b" => Ok(Preset::Lfm25_1_2b),
            _ => Err(Error::arg(
                "preset",
                format!("`{s}`: expected tiny, micro or lfm2.5-1.2b"),
            )),
        }
    }
}

/// On-disk dtype of the weights.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DiskDtype {
    /// 32-bit floats.
    F32,
    /// bfloat16 (what LFM2.5 ships).
    Bf16,
}

impl Preset {
    /// The preset's name on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Preset::Tiny => "tiny",
            Preset::Micro => "micro",
            Preset::Lfm25_1_2b => "lfm2.5-1.2b",
        }
    }

    /// The `config.json` of the preset.
    pub fn config(self) -> serde_json::Value {
        let (hidden, layers, attn, heads, kv, inter, ctx): (
            usize,
            usize,
            &[usize],
            usize,
            usize,
            usize,
            usize,
        ) = match self {
            Preset::Tiny => (64, 6, &[2, 4], 4, 2, 256, 4096),
            Preset::Micro => (256, 4, &[1, 3], 4, 2, 384, 4096),
            Preset::Lfm25_1_2b => (2048, 16, &[2, 5, 8, 10, 12, 14], 32, 8, 12288, 128_000),
        };
        let layer_types: Vec<&str> = (0..layers)
            .map(|i| {
                if attn.contains(&i) {
                    "full_attention"
                } else {
                    "conv"
                }
            })
            .collect();
        json!({
            "architectures": ["Lfm2ForCausalLM"],
            "model_type": "lfm2",
            "vocab_size": if self == Preset::Micro { 512 } else { 65536 },
            "hidden_size": hidden,
            "intermediate_size": inter,
            "num_hidden_layers": layers,
            "num_attention_heads": heads,
            "num_key_value_heads": kv,
            "max_position_embeddings": ctx,
            "norm_eps": 1e-5,
            "conv_bias": false,
            "conv_L_cache": 3,
            "block_auto_adjust_ff_dim": true,
            "block_ffn_dim_multiplier": 1.0,
            "block_multiple_of": if self == Preset::Lfm25_1_2b { 256 } else { 32 },
            "layer_types": layer_types,
            "rope_parameters": {"rope_type": "default", "rope_theta": 1000000.0},
            "tie_word_embeddings": true,
            "bos_token_id": 1,
            "eos_token_id": 7,
            "pad_token_id": 0,
            "use_cache": true,
            "lfm_agent_synthetic": true,
        })
    }

    /// The default on-disk dtype: f32 for tiny, bf16 (as published) for the 1.2B shape.
    pub fn default_dtype(self) -> DiskDtype {
        match self {
            Preset::Tiny | Preset::Micro => DiskDtype::F32,
            Preset::Lfm25_1_2b => DiskDtype::Bf16,
        }
    }
}

/// Writes a random-weight model folder for `preset` into `out` (created if needed).
pub fn write_model_folder(preset: Preset, dtype: DiskDtype, seed: u64, out: &Path) -> Result<()> {
    std::fs::create_dir_all(out).map_err(|e| Error::io(out, e))?;
    let config = preset.config();
    let raw: crate::config::RawConfig =
        serde_json::from_value(config.clone()).map_err(|source| Error::Json {
            path: out.join("config.json"),
            source,
        })?;
    let resolved = crate::config::ModelConfig::from_raw(&raw, &out.join("config.json"))?;
    let mut cfg_on_disk = config.clone();
    cfg_on_disk["dtype"] = json!(match dtype {
        DiskDtype::F32 => "float32",
        DiskDtype::Bf16 => "bfloat16",
    });
    write_json(&out.join("config.json"), &cfg_on_disk)?;
    writer::write_random_weights(
        &resolved,
        dtype,
        seed,
        &out.join(crate::weights::SINGLE_FILE),
    )?;
    write_json(
        &out.join("tokenizer.json"),
        &synth_tokenizer_json(resolved.vocab_size, seed)?,
    )?;
    write_json(
        &out.join("tokenizer_config.json"),
        &json!({
            "bos_token": "<|startoftext|>",
            "eos_token": "<|im_end|>",
            "pad_token": "<|pad|>",
            "model_max_length": resolved.max_position_embeddings,
            "tokenizer_class": "PreTrainedTokenizerFast",
        }),
    )?;
    let template = out.join("chat_template.jinja");
    std::fs::write(&template, crate::text::BUILTIN_LFM2_TEMPLATE)
        .map_err(|e| Error::io(&template, e))?;
    write_json(
        &out.join("generation_config.json"),
        &json!({
            "bos_token_id": 1, "eos_token_id": 7, "pad_token_id": 0,
            "do_sample": true, "temperature": 0.1, "top_k": 50, "repetition_penalty": 1.05,
        }),
    )?;
    Ok(())
}

fn write_json(path: &Path, v: &serde_json::Value) -> Result<()> {
    let text = serde_json::to_string_pretty(v).map_err(|source| Error::Json {
        path: path.to_path_buf(),
        source,
    })?;
    std::fs::write(path, text + "\n").map_err(|e| Error::io(path, e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{LayerKind, ModelConfig, RawConfig};
    use crate::folder::{LoadOptions, LoadedModel};
    use crate::model::Logits;
    use crate::session::Session;

    fn resolve(v: serde_json::Value) -> ModelConfig {
        let raw: RawConfig = serde_json::from_value(v).unwrap();
        ModelConfig::from_raw(&raw, Path::new("config.json")).unwrap()
    }

    #[test]
    fn the_1_2b_preset_has_the_published_shape() {
        let c = resolve(Preset::Lfm25_1_2b.config());
        assert_eq!(
            (c.hidden_size, c.num_layers(), c.ff_dim, c.head_dim),
            (2048, 16, 8192, 64)
        );
        assert_eq!(
            (c.num_heads, c.num_kv_heads, c.vocab_size, c.conv_l_cache),
            (32, 8, 65536, 3)
        );
        let attn: Vec<usize> = (0..16)
            .filter(|&i| c.layer_kinds[i] == LayerKind::Attention)
            .collect();
        assert_eq!(attn, vec![2, 5, 8, 10, 12, 14]);
        assert!(c.tie_word_embeddings && c.synthetic);
    }

    #[test]
    fn a_conv_window_of_one_keeps_no_state_and_still_runs() {
        let dir = tempfile::tempdir().unwrap();
        let mut v = Preset::Tiny.config();
        v["conv_L_cache"] = serde_json::json!(1);
        v["vocab_size"] = serde_json::json!(512);
        std::fs::write(dir.path().join("config.json"), v.to_string()).unwrap();
        let c = resolve(v);
        writer::write_random_weights(&c, DiskDtype::F32, 1, &dir.path().join("model.safetensors"))
            .unwrap();
        let m = LoadedModel::load(dir.path(), &LoadOptions::default()).unwrap();
        let tokens = [1u32, 50, 60, 70, 80];
        let mut a = Session::new(m.model.clone(), 16).unwrap();
        let whole = a
            .forward(&tokens, Logits::All)
            .unwrap()
            .to_vec2::<f32>()
            .unwrap();
        let mut b = Session::new(m.model.clone(), 16).unwrap();
        let last = tokens.iter().map(|&t| b.decode(t).unwrap()).last().unwrap();
        let d = whole[4]
            .iter()
            .zip(&last)
            .map(|(x, y)| (x - y).abs())
            .fold(0.0f32, f32::max);
        assert!(d < 1e-4, "{d}");
    }
}
