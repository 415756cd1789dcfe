//! The LFM2 network: embedding, a stack of pre-norm decoder layers (short convolution or
//! attention, then SwiGLU), the final norm (`embedding_norm`, despite its name) and the head.
//!
//! The model holds only weights. All per-sequence state (KV caches, conv windows, position)
//! lives in a [`crate::session::Session`], so one loaded model serves any number of sessions.

mod attention;
mod conv;
mod embedding;
mod ffn;
mod host;
mod linear;
mod norm;
mod rope;

use candle_core::{DType, Device, Tensor};

pub use attention::Attention;
pub use conv::ShortConv;
pub use embedding::Embedding;
pub use ffn::FeedForward;
pub use linear::Linear;
pub use norm::RmsNorm;
pub use rope::Rope;

use crate::config::{LayerKind, ModelConfig};
use crate::error::{Error, Result};
use crate::session::LayerState;

/// Where the model's tensors come from: a safetensors folder or a GGUF file. Names are the
/// Hugging Face checkpoint's (`model.layers.3.feed_forward.w1.weight`); a source with other
/// names translates them, and its errors name its own file and tensor.
pub trait WeightSource {
    /// A dense tensor of exactly `shape`, converted to `dtype`.
    fn tensor(&self, name: &str, shape: &[usize], dtype: DType) -> Result<Tensor>;
    /// The linear layer `prefix.weight` (`[out, in]`) and, with `bias`, `prefix.bias`.
    fn linear(
        &self,
        prefix: &str,
        out: usize,
        inp: usize,
        bias: bool,
        dtype: DType,
    ) -> Result<Linear>;
    /// The `[vocab, hidden]` embedding table.
    fn embedding(&self, name: &str, vocab: usize, hidden: usize, dtype: DType)
        -> Result<Embedding>;
    /// Whether the source holds tensor `name` (optional tensors such as an untied head).
    fn has(&self, name: &str) -> bool;
    /// The dtype sessions store keys and values in by default, given the compute dtype.
    fn kv_dtype(&self, compute: DType) -> DType {
        compute
    }
}

/// The operator of one decoder layer.
#[derive(Debug, Clone)]
pub enum Operator {
    /// Gated short convolution.
    Conv(ShortConv),
    /// Grouped-query attention.
    Attention(Attention),
}

/// One pre-norm decoder layer.
#[derive(Debug, Clone)]
pub struct Layer {
    operator_norm: RmsNorm,
    operator: Operator,
    ffn_norm: RmsNorm,
    ffn: FeedForward,
}

/// Which positions' logits a forward pass returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Logits {
    /// Only the last position (generation).
    Last,
    /// Every position of the chunk (scoring, parity checks).
    All,
}

/// One sequence of a batched forward pass: its new tokens, the position of the first, its
/// per-layer state, and which of its logits the pass returns.
pub(crate) struct Seq<'a> {
    pub tokens: &'a [u32],
    pub pos: usize,
    pub state: &'a mut [LayerState],
    pub want: Logits,
}

/// Where one sequence's rows sit among the stacked rows of a batched pass.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Span {
    /// First row.
    pub off: usize,
    /// Rows (new tokens).
    pub len: usize,
    /// Position of the first token.
    pub pos: usize,
}

/// A loaded LFM2 model.
#[derive(Debug)]
pub struct Lfm2Model {
    config: ModelConfig,
    dtype: DType,
    embed: Embedding,
    layers: Vec<Layer>,
    final_norm: RmsNorm,
    /// The embedding itself when tied.
    lm_head: Linear,
    rope: Rope,
    /// What sessions store keys and values in unless told otherwise.
    kv_dtype: DType,
}

impl Lfm2Model {
    /// Builds the model from `weights`, computing in `dtype`. Every tensor is checked against
    /// the shape `config` implies.
    pub fn load(config: ModelConfig, weights: &dyn WeightSource, dtype: DType) -> Result<Self> {
        if !matches!(dtype, DType::F32 | DType::BF16 | DType::F16 | DType::F64) {
            return Err(Error::arg(
                "dtype",
                format!("{dtype:?} is not a compute dtype; use f32, bf16, f16 or f64"),
            ));
        }
        let c = &config;
        let (h, v) = (c.hidden_size, c.vocab_size);
        let load = |name: &str, shape: &[usize]| weights.tensor(name, shape, dtype);
        let norm = |name: &str, width: usize| -> Result<RmsNorm> {
            Ok(RmsNorm::new(load(name, &[width])?, c.norm_eps))
        };
        let linear = |name: &str, out: usize, inp: usize, bias: bool| -> Result<Linear> {
            weights.linear(name, out, inp, bias, dtype)
        };

        let embed = weights.embedding("model.embed_tokens.weight", v, h, dtype)?;
        let mut layers = Vec::with_capacity(c.num_layers());
        for (i, kind) in c.layer_kinds.iter().enumerate() {
            let p = format!("model.layers.{i}");
            let operator = match kind {
                LayerKind::Conv => {
                    let l = c.conv_l_cache;
                    let w = load(&format!("{p}.conv.conv.weight"), &[h, 1, l])?;
                    let taps = w.reshape((h, l))?.t()?.contiguous()?;
                    let bias = if c.conv_bias {
                        Some(load(&format!("{p}.conv.conv.bias"), &[h])?)
                    } else {
                        None
                    };
                    Operator::Conv(ShortConv {
                        in_proj: linear(&format!("{p}.conv.in_proj"), 3 * h, h, c.conv_bias)?,
                        out_proj: linear(&format!("{p}.conv.out_proj"), h, h, c.conv_bias)?,
                        taps,
                        bias,
                        hidden: h,
                    })
                }
                LayerKind::Attention => {
                    let a = format!("{p}.self_attn");
                    let (nh, nkv, hd) = (c.num_heads, c.num_kv_heads, c.head_dim);
                    Operator::Attention(Attention {
                        q_proj: linear(&format!("{a}.q_proj"), nh * hd, h, false)?,
                        k_proj: linear(&format!("{a}.k_proj"), nkv * hd, h, false)?,
                        v_proj: linear(&format!("{a}.v_proj"), nkv * hd, h, false)?,
                        out_proj: linear(&format!("{a}.out_proj"), h, nh * hd, false)?,
                        q_norm: norm(&format!("{a}.q_layernorm.weight"), hd)?,
                        k_norm: norm(&format!("{a}.k_layernorm.weight"), hd)?,
                        num_heads: nh,
                        num_kv_heads: nkv,
                        head_dim: hd,
                    })
                }
            };
            let f = format!("{p}.feed_forward");
            layers.push(Layer {
                operator_norm: norm(&format!("{p}.operator_norm.weight"), h)?,
                operator,
                ffn_norm: norm(&format!("{p}.ffn_norm.weight"), h)?,
                ffn: FeedForward {
                    w1: linear(&format!("{f}.w1"), c.ff_dim, h, false)?,
                    w2: linear(&format!("{f}.w2"), h, c.ff_dim, false)?,
                    w3: linear(&format!("{f}.w3"), c.ff_dim, h, false)?,
                },
            });
        }
        let final_norm = norm("model.embedding_norm.weight", h)?;
        let lm_head = if c.tie_word_embeddings {
            embed.as_head()
        } else {
            linear("lm_head", v, h, false)?
        };
        let rope = Rope::new(c.head_dim, c.rope_theta);
        Ok(Lfm2Model {
            config,
            dtype,
            embed,
            layers,
            final_norm,
            lm_head,
            rope,
            kv_dtype: weights.kv_dtype(dtype),
        })
    }

    /// The resolved configuration.
    pub fn config(&self) -> &ModelConfig {
        &self.config
    }

    /// The dtype sessions store keys and values in by default, chosen by the weight source:
    /// f16 for GGUF models, as llama.cpp does, else the compute dtype.
    pub fn default_kv_dtype(&self) -> DType {
        self.kv_dtype
    }

    /// Bytes of weights one decode step reads: every matrix, the head included (the embedding
    /// contributes one row, not counted). The memory traffic a decode token costs, at least.
    pub fn weight_bytes_per_token(&self) -> usize {
        let mut n = self.lm_head.byte_len();
        for l in &self.layers {
            n += match &l.operator {
                Operator::Conv(c) => c.in_proj.byte_len() + c.out_proj.byte_len(),
                Operator::Attention(a) => {
                    a.q_proj.byte_len()
                        + a.k_proj.byte_len()
                        + a.v_proj.byte_len()
                        + a.out_proj.byte_len()
                }
            };
            n += l.ffn.w1.byte_len() + l.ffn.w2.byte_len() + l.ffn.w3.byte_len();
        }
        n
    }

    /// The dtype activations and weights are computed in.
    pub fn dtype(&self) -> DType {
        self.dtype
    }

    /// Runs several sequences in one pass (each its new tokens from its position, updating its
    /// per-layer state; callers go through [`crate::session::Session`]): their rows are stacked for the embedding, the
    /// norms, every linear layer and the head (one read of each weight for all of them), and
    /// split for what is per sequence: attention over its own KV cache at its own position, and
    /// the short convolution over its own window. Returns each sequence's f32 logits, in order:
    /// every position's or the last one's, as each asks.
    pub(crate) fn forward_batch(&self, seqs: &mut [Seq<'_>]) -> Result<Vec<Tensor>> {
        let vocab = self.config.vocab_size;
        let mut all = Vec::new();
        let mut spans = Vec::with_capacity(seqs.len());
        for s in seqs.iter() {
            if s.tokens.is_empty() {
                return Err(Error::arg("tokens", "at least one token is needed"));
            }
            if let Some(&id) = s.tokens.iter().find(|&&id| id as usize >= vocab) {
                return Err(Error::TokenOutOfRange { id, vocab });
            }
            if s.state.len() != self.layers.len() {
                return Err(Error::arg(
                    "state",
                    "session state does not match the model's layers",
                ));
            }
            spans.push(Span {
                off: all.len(),
                len: s.tokens.len(),
                pos: s.pos,
            });
            all.extend_from_slice(s.tokens);
        }
        let _span = tracing::trace_span!("forward", seqs = seqs.len(), n = all.len()).entered();
        let mut x = self.embed.lookup(&all)?;
        let tables = spans
            .iter()
            .map(|s| self.rope.tables(s.pos, s.len, self.dtype))
            .collect::<Result<Vec<_>>>()?;
        let (c, s): (Vec<Tensor>, Vec<Tensor>) = tables.into_iter().unzip();
        let (cos, sin) = match (c.as_slice(), s.as_slice()) {
            ([c], [s]) => (c.clone(), s.clone()),
            _ => (Tensor::cat(&c, 0)?, Tensor::cat(&s, 0)?),
        };
        for (l, layer) in self.layers.iter().enumerate() {
            let u = layer.operator_norm.forward(&x)?;
            let mismatch =
                || Error::arg("state", "session state does not match the model's layers");
            let y = match &layer.operator {
                Operator::Conv(op) => {
                    let mut windows = Vec::with_capacity(seqs.len());
                    for s in seqs.iter_mut() {
                        match &mut s.state[l] {
                            LayerState::Conv(w) => windows.push(w),
                            LayerState::Kv(_) => return Err(mismatch()),
                        }
                    }
                    op.forward_batch(&u, &spans, &mut windows)?
                }
                Operator::Attention(op) => {
                    let mut caches = Vec::with_capacity(seqs.len());
                    for s in seqs.iter_mut() {
                        match &mut s.state[l] {
                            LayerState::Kv(c) => caches.push(c),
                            LayerState::Conv(_) => return Err(mismatch()),
                        }
                    }
                    op.forward_batch(&u, &spans, (&cos, &sin), &mut caches)?
                }
            };
            let h = (x + y)?;
            let f = layer.ffn.forward(&layer.ffn_norm.forward(&h)?)?;
            x = (h + f)?;
        }
        // The head runs only on the rows whose logits are asked for.
        let counts: Vec<usize> = seqs
            .iter()
            .zip(&spans)
            .map(|(s, sp)| match s.want {
                Logits::All => sp.len,
                Logits::Last => 1,
            })
            .collect();
        let x = if counts.iter().sum::<usize>() == all.len() {
            x
        } else if let ([s], [sp]) = (&*seqs, spans.as_slice()) {
            debug_assert_eq!(s.want, Logits::Last);
            x.narrow(0, sp.len - 1, 1)?
        } else {
            let rows: Vec<u32> = spans
                .iter()
                .zip(&counts)
                .flat_map(|(s, &c)| (s.off + s.len - c..s.off + s.len).map(|r| r as u32))
                .collect();
            let n = rows.len();
            x.index_select(&Tensor::from_vec(rows, n, x.device())?, 0)?
        };
        let logits = self
            .lm_head
            .forward(&self.final_norm.forward(&x)?)?
            .to_dtype(DType::F32)?;
        if spans.len() == 1 {
            return Ok(vec![logits]);
        }
        let mut at = 0;
        counts
            .iter()
            .map(|&c| {
                at += c;
                Ok(logits.narrow(0, at - c, c)?)
            })
            .collect()
    }

    /// Fresh per-layer state: an empty KV cache with room for `reserve` tokens (growing up to
    /// `context`) for each attention layer, a zero window for each conv layer.
    pub(crate) fn new_state(
        &self,
        reserve: usize,
        context: usize,
        kv_dtype: DType,
    ) -> Result<Vec<LayerState>> {
        let c = &self.config;
        c.layer_kinds
            .iter()
            .map(|k| match k {
                LayerKind::Attention => Ok(LayerState::Kv(crate::session::KvCache::new(
                    c.num_kv_heads,
                    c.head_dim,
                    reserve,
                    context,
                    kv_dtype,
                    self.dtype,
                )?)),
                LayerKind::Conv => Ok(LayerState::Conv(Tensor::zeros(
                    (c.conv_l_cache - 1, c.hidden_size),
                    self.dtype,
                    &Device::Cpu,
                )?)),
            })
            .collect()
    }
}
