//! Loading a Hugging Face LFM2 model folder.
//!
//! ```text
//! DIR/config.json                      required
//! DIR/model.safetensors                or model.safetensors.index.json + shards
//! DIR/tokenizer.json                   optional (commands that take token ids work without)
//! DIR/chat_template.jinja              optional; else tokenizer_config.json `chat_template`;
//!                                      else the built-in LFM2.5 template
//! DIR/generation_config.json           optional sampling defaults and eos ids
//! ```

use std::path::{Path, PathBuf};
use std::sync::Arc;

use candle_core::DType;
use serde_json::Value;

use crate::config::ModelConfig;
use crate::error::{Error, Result};
use crate::model::Lfm2Model;
use crate::sampling::SamplingParams;
use crate::text::{special, ChatTemplate, Tokenizer};
use crate::weights::WeightFiles;

/// The dtype to compute in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ComputeDtype {
    /// f32: exact against an f32 reference, and on CPU as fast as bf16 (whose matmuls widen
    /// to f32 anyway).
    #[default]
    Auto,
    /// Force f32.
    F32,
    /// Compute in bf16, as transformers does for a bf16 model.
    Bf16,
    /// Compute in f16.
    F16,
    /// Compute in f64: slow, for checking the engine against a float64 reference.
    F64,
}

impl ComputeDtype {
    fn resolve(self) -> DType {
        match self {
            ComputeDtype::Auto | ComputeDtype::F32 => DType::F32,
            ComputeDtype::F64 => DType::F64,
            ComputeDtype::Bf16 => DType::BF16,
            ComputeDtype::F16 => DType::F16,
        }
    }
}

impl std::str::FromStr for ComputeDtype {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "auto" => Ok(ComputeDtype::Auto),
            "f32" => Ok(ComputeDtype::F32),
            "bf16" => Ok(ComputeDtype::Bf16),
            "f16" => Ok(ComputeDtype::F16),
            "f64" => Ok(ComputeDtype::F64),
            _ => Err(Error::arg(
                "dtype",
                format!("`{s}`: expected auto, f32, bf16, f16 or f64"),
            )),
        }
    }
}

/// Sampling defaults and end tokens from `generation_config.json`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct GenerationDefaults {
    /// `temperature` (0 when `do_sample` is false).
    pub temperature: Option<f32>,
    /// `top_k`.
    pub top_k: Option<usize>,
    /// `top_p`.
    pub top_p: Option<f32>,
    /// `min_p`.
    pub min_p: Option<f32>,
    /// `repetition_penalty`.
    pub repetition_penalty: Option<f32>,
    /// `eos_token_id` (one id or a list).
    pub eos_token_ids: Vec<u32>,
    /// `max_new_tokens`.
    pub max_new_tokens: Option<usize>,
}

impl GenerationDefaults {
    /// Reads `generation_config.json`.
    pub fn from_file(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        let v: Value = serde_json::from_str(&text).map_err(|source| Error::Json {
            path: path.to_path_buf(),
            source,
        })?;
        let num = |k: &str| -> Result<Option<f64>> {
            match v.get(k) {
                None | Some(Value::Null) => Ok(None),
                Some(x) => x
                    .as_f64()
                    .map(Some)
                    .ok_or_else(|| Error::config(path, k, format!("expected a number, found {x}"))),
            }
        };
        let int = |k: &str| -> Result<Option<usize>> {
            match num(k)? {
                Some(x) if x >= 0.0 && x.fract() == 0.0 => Ok(Some(x as usize)),
                Some(x) => Err(Error::config(
                    path,
                    k,
                    format!("expected a non-negative integer, found {x}"),
                )),
                None => Ok(None),
            }
        };
        // Hugging Face's GenerationConfig: sampling happens only with `do_sample: true`
        // (then temperature defaults to 1.0 and top_k to 50); otherwise decoding is greedy.
        let do_sample = match v.get("do_sample") {
            None | Some(Value::Null) => false,
            Some(Value::Bool(b)) => *b,
            Some(x) => {
                return Err(Error::config(
                    path,
                    "do_sample",
                    format!("expected true or false, found {x}"),
                ))
            }
        };
        let temperature = if do_sample {
            Some(num("temperature")?.unwrap_or(1.0) as f32)
        } else {
            Some(0.0)
        };
        let top_k = if do_sample {
            Some(int("top_k")?.unwrap_or(50))
        } else {
            int("top_k")?
        };
        let in_range =
            |k: &str, x: Option<f64>, ok: &dyn Fn(f64) -> bool, want: &str| -> Result<()> {
                match x {
                    Some(x) if !ok(x) => Err(Error::config(
                        path,
                        k,
                        format!("{x} is out of range ({want})"),
                    )),
                    _ => Ok(()),
                }
            };
        in_range("temperature", num("temperature")?, &|x| x >= 0.0, ">= 0")?;
        in_range(
            "top_p",
            num("top_p")?,
            &|x| x > 0.0 && x <= 1.0,
            "0 < top_p <= 1",
        )?;
        in_range(
            "min_p",
            num("min_p")?,
            &|x| (0.0..=1.0).contains(&x),
            "0 <= min_p <= 1",
        )?;
        in_range(
            "repetition_penalty",
            num("repetition_penalty")?,
            &|x| x > 0.0,
            "> 0",
        )?;
        let eos_token_ids = match v.get("eos_token_id") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(a)) => a
                .iter()
                .map(|x| x.as_u64().map(|n| n as u32))
                .collect::<Option<Vec<_>>>()
                .ok_or_else(|| {
                    Error::config(
                        path,
                        "eos_token_id",
                        format!("expected token ids, found {}", Value::Array(a.clone())),
                    )
                })?,
            Some(x) => vec![x.as_u64().ok_or_else(|| {
                Error::config(
                    path,
                    "eos_token_id",
                    format!("expected a token id, found {x}"),
                )
            })? as u32],
        };
        Ok(GenerationDefaults {
            temperature,
            top_k,
            top_p: num("top_p")?.map(|x| x as f32),
            min_p: num("min_p")?.map(|x| x as f32),
            repetition_penalty: num("repetition_penalty")?.map(|x| x as f32),
            eos_token_ids,
            max_new_tokens: int("max_new_tokens")?,
        })
    }

    /// Sampling parameters: these defaults over greedy.
    pub fn sampling(&self) -> SamplingParams {
        SamplingParams {
            temperature: self.temperature.unwrap_or(0.0),
            top_k: self.top_k,
            top_p: self.top_p,
            min_p: self.min_p,
            repetition_penalty: self.repetition_penalty.unwrap_or(1.0),
            seed: 0,
        }
    }
}

/// How to load a model folder.
#[derive(Debug, Clone, Default)]
pub struct LoadOptions {
    /// The compute dtype.
    pub dtype: ComputeDtype,
}

/// A model folder, loaded.
#[derive(Debug)]
pub struct LoadedModel {
    /// The folder.
    pub dir: PathBuf,
    /// The network.
    pub model: Arc<Lfm2Model>,
    /// `tokenizer.json`, when present.
    pub tokenizer: Option<Tokenizer>,
    /// The chat template, or why it could not be loaded (token-id commands work either way).
    template: std::result::Result<ChatTemplate, (String, String)>,
    /// `generation_config.json` defaults (empty when absent).
    pub generation: GenerationDefaults,
}

impl LoadedModel {
    /// Loads the folder `dir`, or a GGUF file (see [`LoadedModel::load_gguf`]).
    pub fn load(dir: &Path, opts: &LoadOptions) -> Result<Self> {
        if dir.is_file() {
            return Self::load_gguf(dir);
        }
        if !dir.is_dir() {
            return Err(Error::MissingFile {
                path: dir.to_path_buf(),
                what: "a model folder",
            });
        }
        let config_path = dir.join("config.json");
        if !config_path.is_file() {
            return Err(Error::MissingFile {
                path: config_path,
                what: "the model config",
            });
        }
        let config = ModelConfig::from_file(&config_path)?;
        let weights = WeightFiles::open(dir)?;
        let model = Lfm2Model::load(config, &weights, opts.dtype.resolve())?;
        let tok_path = dir.join("tokenizer.json");
        let tokenizer = if tok_path.is_file() {
            Some(Tokenizer::from_file(&tok_path)?)
        } else {
            None
        };
        if let Some(t) = &tokenizer {
            let vocab = model.config().vocab_size;
            if t.vocab_size() > vocab {
                tracing::warn!(
                    tokenizer = t.vocab_size(),
                    model = vocab,
                    "tokenizer.json has more tokens than the model's vocab_size; ids past it will be refused"
                );
            }
        }
        let template = load_template(dir).map_err(|e| {
            tracing::warn!("chat template unavailable: {e}");
            match e {
                Error::Template {
                    source_name,
                    message,
                } => (source_name, message),
                other => (dir.display().to_string(), other.to_string()),
            }
        });
        let gen_path = dir.join("generation_config.json");
        let generation = if gen_path.is_file() {
            GenerationDefaults::from_file(&gen_path)?
        } else {
            GenerationDefaults::default()
        };
        tracing::info!(dir = %dir.display(), "model loaded");
        Ok(LoadedModel {
            dir: dir.to_path_buf(),
            model: Arc::new(model),
            tokenizer,
            template,
            generation,
        })
    }

    /// Tokens that end a chat turn: `<|im_end|>`, plus the eos ids of `generation_config.json`
    /// or, without them, of `config.json`.
    pub fn stop_tokens(&self) -> Vec<u32> {
        let im_end = self
            .tokenizer
            .as_ref()
            .and_then(|t| t.token_id("<|im_end|>"))
            .unwrap_or(special::IM_END);
        let mut ids = vec![im_end];
        let eos = if self.generation.eos_token_ids.is_empty() {
            &self.model.config().eos_token_ids
        } else {
            &self.generation.eos_token_ids
        };
        for &id in eos {
            if !ids.contains(&id) {
                ids.push(id);
            }
        }
        ids.retain(|&id| (id as usize) < self.model.config().vocab_size);
        ids
    }
}

impl LoadedModel {
    /// Loads a llama.cpp GGUF file of architecture `lfm2`. Matrices stay memory-mapped in their
    /// ggml types and are computed on in f32. The tokenizer is `tokenizer.json` beside the
    /// file when there is one, else rebuilt from `tokenizer.ggml.*`; the chat template is
    /// `tokenizer.chat_template`, else the built-in LFM2.5 template.
    pub fn load_gguf(path: &Path) -> Result<Self> {
        let file = crate::gguf::GgufFile::open(path)?;
        let tok_json = path.parent().map(|d| d.join("tokenizer.json"));
        let tokenizer = match tok_json.filter(|p| p.is_file()) {
            Some(p) => Some(Tokenizer::from_file(&p)?),
            None => None,
        };
        Self::from_gguf(file, tokenizer)
    }

    /// A model from an open GGUF file; `tokenizer` overrides the one in `tokenizer.ggml.*`.
    pub fn from_gguf(file: crate::gguf::GgufFile, tokenizer: Option<Tokenizer>) -> Result<Self> {
        let path = file.path().to_path_buf();
        let path = path.as_path();
        let config = crate::gguf::config_from_gguf(&file)?;
        let tokenizer = match tokenizer {
            Some(t) => t,
            None => crate::gguf::tokenizer_from_gguf(&file)?,
        };
        let template_src = file
            .get("tokenizer.chat_template")
            .and_then(crate::gguf::Value::as_str)
            .map(str::to_string);
        let token_text = |key: &str, default: &str| {
            file.get(key)
                .and_then(crate::gguf::Value::as_u64)
                .and_then(|id| tokenizer.id_to_token(id as u32))
                .unwrap_or_else(|| default.to_string())
        };
        let bos = token_text("tokenizer.ggml.bos_token_id", "<|startoftext|>");
        let eos = token_text("tokenizer.ggml.eos_token_id", "<|im_end|>");
        let template = match &template_src {
            Some(src) => ChatTemplate::new(
                src,
                &format!("{} (tokenizer.chat_template)", path.display()),
                &bos,
                &eos,
            ),
            None => ChatTemplate::new(
                crate::text::BUILTIN_LFM2_TEMPLATE,
                "built-in LFM2.5 template",
                &bos,
                &eos,
            ),
        }
        .map_err(|e| match e {
            Error::Template {
                source_name,
                message,
            } => (source_name, message),
            other => (path.display().to_string(), other.to_string()),
        });
        let generation = GenerationDefaults {
            eos_token_ids: config.eos_token_ids.clone(),
            ..GenerationDefaults::default()
        };
        let weights = crate::gguf::GgufWeights::new(file, config.clone());
        let model = Lfm2Model::load(config, &weights, DType::F32)?;
        tracing::info!(file = %path.display(), "GGUF model loaded");
        Ok(LoadedModel {
            dir: path.to_path_buf(),
            model: Arc::new(model),
            tokenizer: Some(tokenizer),
            template,
            generation,
        })
    }

    /// The chat template; an error naming the template file if it failed to load.
    pub fn template(&self) -> Result<&ChatTemplate> {
        self.template
            .as_ref()
            .map_err(|(source_name, message)| Error::Template {
                source_name: source_name.clone(),
                message: message.clone(),
            })
    }

    /// A constraint compiler for this model's tokenizer (builds its token trie; keep it).
    pub fn constraint_compiler(&self) -> Result<crate::constraint::ConstraintCompiler> {
        let tok = self.tokenizer.as_ref().ok_or_else(|| Error::MissingFile {
            path: self.dir.join("tokenizer.json"),
            what: "the tokenizer, needed for constrained decoding",
        })?;
        let end = self
            .stop_tokens()
            .first()
            .copied()
            .unwrap_or(special::IM_END);
        crate::constraint::ConstraintCompiler::new(tok, self.model.config().vocab_size, end)
    }
}

/// A special token's text from `tokenizer_config.json`: a string, or `{"content": ...}`.
fn special_token(cfg: Option<&Value>, key: &str, default: &str) -> String {
    cfg.and_then(|c| c.get(key))
        .and_then(|b| {
            b.as_str()
                .or_else(|| b.get("content").and_then(Value::as_str))
        })
        .unwrap_or(default)
        .to_string()
}

fn load_template(dir: &Path) -> Result<ChatTemplate> {
    let cfg_path = dir.join("tokenizer_config.json");
    let cfg: Option<Value> = if cfg_path.is_file() {
        let text = std::fs::read_to_string(&cfg_path).map_err(|e| Error::io(&cfg_path, e))?;
        Some(serde_json::from_str(&text).map_err(|source| Error::Json {
            path: cfg_path.clone(),
            source,
        })?)
    } else {
        None
    };
    let bos = special_token(cfg.as_ref(), "bos_token", "<|startoftext|>");
    let eos = special_token(cfg.as_ref(), "eos_token", "<|im_end|>");
    let jinja = dir.join("chat_template.jinja");
    if jinja.is_file() {
        let src = std::fs::read_to_string(&jinja).map_err(|e| Error::io(&jinja, e))?;
        return ChatTemplate::new(&src, &jinja.display().to_string(), &bos, &eos);
    }
    if let Some(t) = cfg.as_ref().and_then(|c| c.get("chat_template")) {
        let origin = format!("{} (chat_template)", cfg_path.display());
        let src = match t {
            Value::String(s) => s.clone(),
            Value::Array(named) => named
                .iter()
                .find(|e| e.get("name").and_then(Value::as_str) == Some("default"))
                .and_then(|e| e.get("template"))
                .and_then(Value::as_str)
                .ok_or_else(|| {
                    Error::config(&cfg_path, "chat_template", "no template named \"default\"")
                })?
                .to_string(),
            other => {
                return Err(Error::config(
                    &cfg_path,
                    "chat_template",
                    format!("expected a string, found {other}"),
                ))
            }
        };
        return ChatTemplate::new(&src, &origin, &bos, &eos);
    }
    ChatTemplate::new(
        crate::text::BUILTIN_LFM2_TEMPLATE,
        "built-in LFM2.5 template",
        &bos,
        &eos,
    )
}
