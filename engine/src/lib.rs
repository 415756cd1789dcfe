//! `lfm-engine`: LFM2 inference on `candle-core`.
//!
//! The crate owns everything between a model folder and generated text, and knows nothing of
//! tools or documents (to the engine, a tool call will be a grammar).
//!
//! | module | what it owns |
//! |---|---|
//! | [`config`] | `config.json`, raw and resolved (both spellings transformers accepts) |
//! | [`weights`] | memory-mapped safetensors, single or sharded, shape-checked per tensor |
//! | [`model`] | the forward pass: RMSNorm, gated short conv, GQA with q/k norm and RoPE, SwiGLU |
//! | [`session`] | one sequence's state (KV caches, conv windows), snapshot / restore / fork |
//! | [`text`] | tokenizer, chat template, UTF-8-safe streaming |
//! | [`constraint`] | JSON Schema / regex / Lark constraints via llguidance, token masks, fast-forward |
//! | [`sampling`] | greedy, temperature, top-k/p, min-p, repetition penalty, seeds |
//! | [`generate`] | the generation loop with stop tokens, stop strings and max tokens |
//! | [`folder`] | loading a Hugging Face model folder |
//! | [`synth`] | random-weight model folders of the published shapes, for offline testing |
//!
//! The generation loop in short:
//!
//! ```no_run
//! use lfm_engine::{folder::{LoadedModel, LoadOptions}, generate::{generate, GenerateOptions},
//!                  session::Session, text::{Message, Role}};
//! # fn main() -> lfm_engine::Result<()> {
//! let m = LoadedModel::load(std::path::Path::new("models/lfm2.5-1.2b"), &LoadOptions::default())?;
//! let tok = m.tokenizer.as_ref().expect("this folder ships tokenizer.json");
//! let prompt = m.template()?.render(&[Message::new(Role::User, "Hello")], &[], true)?;
//! let ids = tok.encode(&prompt)?;
//! let mut session = Session::new(m.model.clone(), 4096)?;
//! let opts = GenerateOptions { stop_tokens: m.stop_tokens(), ..Default::default() };
//! let out = generate(&mut session, Some(tok), &ids, &opts, &mut |piece| print!("{piece}"))?;
//! println!("\n[{}]", out.finish_reason.as_str());
//! # Ok(()) }
//! ```

#![warn(missing_docs)]

pub mod batch;
pub mod config;
pub mod constraint;
pub mod error;
pub mod folder;
pub mod generate;
pub mod gguf;
pub mod lookup;
pub mod model;
pub mod quant;
pub mod sampling;
pub mod session;
pub mod synth;
pub mod text;
pub mod weights;

pub use error::{Error, Result};
