//! Streams random LFM2 weights into a safetensors file without holding them in memory.
//!
//! Scales are chosen so that a random model is not degenerate: linear weights have standard
//! deviation `1/sqrt(fan_in)` (activations keep their size through the stack), embeddings
//! `4/sqrt(hidden)` (tied logits then spread over a few units, so sampling and greedy paths
//! vary), norm weights `1 ± 0.1`.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;

use serde_json::json;

use super::DiskDtype;
use crate::config::{LayerKind, ModelConfig};
use crate::error::{Error, Result};

pub(super) enum Init {
    Normal(f32),
    AroundOne,
}

pub(super) struct Spec {
    pub name: String,
    pub shape: Vec<usize>,
    pub init: Init,
}

pub(super) fn specs(c: &ModelConfig) -> Vec<Spec> {
    let h = c.hidden_size;
    let mut out = Vec::new();
    let mut push =
        |name: String, shape: Vec<usize>, init: Init| out.push(Spec { name, shape, init });
    let lin = |fan_in: usize| Init::Normal(1.0 / (fan_in as f32).sqrt());
    push(
        "model.embed_tokens.weight".into(),
        vec![c.vocab_size, h],
        Init::Normal(4.0 / (h as f32).sqrt()),
    );
    for (i, kind) in c.layer_kinds.iter().enumerate() {
        let p = format!("model.layers.{i}");
        push(
            format!("{p}.operator_norm.weight"),
            vec![h],
            Init::AroundOne,
        );
        push(format!("{p}.ffn_norm.weight"), vec![h], Init::AroundOne);
        match kind {
            LayerKind::Conv => {
                push(format!("{p}.conv.in_proj.weight"), vec![3 * h, h], lin(h));
                push(
                    format!("{p}.conv.conv.weight"),
                    vec![h, 1, c.conv_l_cache],
                    lin(c.conv_l_cache),
                );
                push(format!("{p}.conv.out_proj.weight"), vec![h, h], lin(h));
            }
            LayerKind::Attention => {
                let a = format!("{p}.self_attn");
                let (q, kv) = (c.num_heads * c.head_dim, c.num_kv_heads * c.head_dim);
                push(format!("{a}.q_proj.weight"), vec![q, h], lin(h));
                push(format!("{a}.k_proj.weight"), vec![kv, h], lin(h));
                push(format!("{a}.v_proj.weight"), vec![kv, h], lin(h));
                push(format!("{a}.out_proj.weight"), vec![h, q], lin(q));
                push(
                    format!("{a}.q_layernorm.weight"),
                    vec![c.head_dim],
                    Init::AroundOne,
                );
                push(
                    format!("{a}.k_layernorm.weight"),
                    vec![c.head_dim],
                    Init::AroundOne,
                );
            }
        }
        let f = format!("{p}.feed_forward");
        push(format!("{f}.w1.weight"), vec![c.ff_dim, h], lin(h));
        push(format!("{f}.w3.weight"), vec![c.ff_dim, h], lin(h));
        push(format!("{f}.w2.weight"), vec![h, c.ff_dim], lin(c.ff_dim));
    }
    push(
        "model.embedding_norm.weight".into(),
        vec![h],
        Init::AroundOne,
    );
    out
}

/// SplitMix64: fast, seedable, good enough for weights.
pub(super) struct Rng(pub u64);

impl Rng {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn uniform(&mut self) -> f32 {
        ((self.next_u64() >> 40) as f32 + 0.5) / (1u64 << 24) as f32
    }

    /// The values of `spec`, drawn as `write_random_weights` draws them (same seed, same
    /// weights, whichever file format they go to).
    pub(super) fn values(&mut self, spec: &Spec) -> Vec<f32> {
        let n: usize = spec.shape.iter().product();
        let mut out = Vec::with_capacity(n + 1);
        while out.len() < n {
            let (a, b) = self.normal_pair();
            out.push(a);
            out.push(b);
        }
        out.truncate(n);
        for v in &mut out {
            *v = match spec.init {
                Init::Normal(std) => *v * std,
                Init::AroundOne => 1.0 + 0.1 * *v,
            };
        }
        out
    }

    /// Two standard normals (Box-Muller).
    fn normal_pair(&mut self) -> (f32, f32) {
        let r = (-2.0 * self.uniform().ln()).sqrt();
        let th = std::f32::consts::TAU * self.uniform();
        (r * th.cos(), r * th.sin())
    }
}

/// Mixed into the seed so that seed 0 is not a degenerate SplitMix64 state.
pub(super) const RNG_SALT: u64 = 0x5EED_1F4A_0000_0001;

pub(super) fn write_random_weights(
    c: &ModelConfig,
    dtype: DiskDtype,
    seed: u64,
    path: &Path,
) -> Result<()> {
    let specs = specs(c);
    let elem = match dtype {
        DiskDtype::F32 => 4,
        DiskDtype::Bf16 => 2,
    };
    let mut header = serde_json::Map::new();
    header.insert(
        "__metadata__".into(),
        json!({"format": "pt", "generator": "lfm-agent synth"}),
    );
    let mut offset = 0usize;
    for s in &specs {
        let n: usize = s.shape.iter().product::<usize>() * elem;
        header.insert(
            s.name.clone(),
            json!({
                "dtype": if elem == 4 { "F32" } else { "BF16" },
                "shape": s.shape,
                "data_offsets": [offset, offset + n],
            }),
        );
        offset += n;
    }
    let mut head = serde_json::to_string(&header).map_err(|source| Error::Json {
        path: path.to_path_buf(),
        source,
    })?;
    while head.len() % 8 != 0 {
        head.push(' ');
    }
    let file = File::create(path).map_err(|e| Error::io(path, e))?;
    let mut w = BufWriter::with_capacity(1 << 20, file);
    let io = |e| Error::io(path, e);
    w.write_all(&(head.len() as u64).to_le_bytes())
        .map_err(io)?;
    w.write_all(head.as_bytes()).map_err(io)?;
    let mut rng = Rng(seed ^ RNG_SALT);
    let mut buf: Vec<u8> = Vec::with_capacity(1 << 20);
    for s in &specs {
        let n: usize = s.shape.iter().product();
        let mut i = 0;
        while i < n {
            let (a, b) = rng.normal_pair();
            for z in [a, b] {
                if i < n {
                    let v = match s.init {
                        Init::Normal(std) => z * std,
                        Init::AroundOne => 1.0 + 0.1 * z,
                    };
                    match dtype {
                        DiskDtype::F32 => buf.extend_from_slice(&v.to_le_bytes()),
                        DiskDtype::Bf16 => {
                            buf.extend_from_slice(&half::bf16::from_f32(v).to_bits().to_le_bytes())
                        }
                    }
                    i += 1;
                }
            }
            if buf.len() >= (1 << 20) - 16 {
                w.write_all(&buf).map_err(io)?;
                buf.clear();
            }
        }
    }
    w.write_all(&buf).map_err(io)?;
    w.flush().map_err(io)?;
    Ok(())
}
