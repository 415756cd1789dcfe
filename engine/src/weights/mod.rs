//! Weight files: a single `model.safetensors` or a sharded set behind
//! `model.safetensors.index.json`, memory-mapped and read tensor by tensor.
//!
//! Headers are parsed once at open; a tensor is copied out of the map only when the model asks
//! for it, converted to the compute dtype, and checked against the shape the config implies.

use std::collections::HashMap;
use std::fs::File;
use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use memmap2::Mmap;
use safetensors::tensor::{Metadata, TensorInfo};
use safetensors::{Dtype, SafeTensors};

use crate::error::{Error, Result};

/// File name of an unsharded checkpoint.
pub const SINGLE_FILE: &str = "model.safetensors";
/// File name of the shard index.
pub const INDEX_FILE: &str = "model.safetensors.index.json";

struct Shard {
    path: PathBuf,
    map: Mmap,
    header_len: usize,
    meta: Metadata,
}

/// The memory-mapped safetensors files of one model folder.
pub struct WeightFiles {
    shards: Vec<Shard>,
    /// tensor name -> shard index
    locate: HashMap<String, usize>,
    /// The file errors about missing tensors name (the index, or the single file).
    origin: PathBuf,
}

impl WeightFiles {
    /// Opens the weights of the model folder `dir`.
    pub fn open(dir: &Path) -> Result<Self> {
        let index = dir.join(INDEX_FILE);
        let single = dir.join(SINGLE_FILE);
        // transformers prefers the single file when both exist.
        if index.is_file() && !single.is_file() {
            Self::open_index(&index)
        } else if single.is_file() {
            let shard = open_shard(&single)?;
            let locate = shard.meta.tensors().into_keys().map(|k| (k, 0)).collect();
            Ok(WeightFiles {
                shards: vec![shard],
                locate,
                origin: single,
            })
        } else {
            Err(Error::MissingFile {
                path: single,
                what: "model weights (model.safetensors or model.safetensors.index.json)",
            })
        }
    }

    fn open_index(index: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(index).map_err(|e| Error::io(index, e))?;
        let json: serde_json::Value =
            serde_json::from_str(&text).map_err(|source| Error::Json {
                path: index.to_path_buf(),
                source,
            })?;
        let map = json
            .get("weight_map")
            .and_then(|m| m.as_object())
            .ok_or_else(|| Error::config(index, "weight_map", "missing or not an object"))?;
        let dir = index.parent().unwrap_or(Path::new("."));
        let mut shards = Vec::new();
        let mut by_file: HashMap<String, usize> = HashMap::new();
        let mut locate = HashMap::new();
        for (name, file) in map {
            let file = file.as_str().ok_or_else(|| {
                Error::config(index, format!("weight_map.{name}"), "expected a file name")
            })?;
            if file.contains('/') || file.contains('\\') || file == ".." {
                return Err(Error::config(
                    index,
                    format!("weight_map.{name}"),
                    format!("`{file}` is not a plain file name"),
                ));
            }
            let i = match by_file.get(file) {
                Some(&i) => i,
                None => {
                    let path = dir.join(file);
                    if !path.is_file() {
                        return Err(Error::MissingFile {
                            path,
                            what: "a weights shard listed in model.safetensors.index.json",
                        });
                    }
                    shards.push(open_shard(&path)?);
                    by_file.insert(file.to_string(), shards.len() - 1);
                    shards.len() - 1
                }
            };
            if shards[i].meta.info(name).is_none() {
                return Err(Error::MissingTensor {
                    path: shards[i].path.clone(),
                    name: name.clone(),
                });
            }
            locate.insert(name.clone(), i);
        }
        Ok(WeightFiles {
            shards,
            locate,
            origin: index.to_path_buf(),
        })
    }

    /// Whether a tensor of this name exists.
    pub fn contains(&self, name: &str) -> bool {
        self.locate.contains_key(name)
    }

    /// Names of every tensor in the files.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.locate.keys().map(String::as_str)
    }

    /// The on-disk dtype of the embedding, taken as the checkpoint's dtype.
    pub fn dtype_of(&self, name: &str) -> Option<DType> {
        let (_, info) = self.info(name).ok()?;
        candle_dtype(info.dtype)
    }

    fn info(&self, name: &str) -> Result<(&Shard, &TensorInfo)> {
        let i = *self.locate.get(name).ok_or_else(|| Error::MissingTensor {
            path: self.origin.clone(),
            name: name.to_string(),
        })?;
        let shard = &self.shards[i];
        let info = shard.meta.info(name).ok_or_else(|| Error::MissingTensor {
            path: shard.path.clone(),
            name: name.to_string(),
        })?;
        Ok((shard, info))
    }

    /// Loads tensor `name`, checks it has shape `expected`, and converts it to `dtype`.
    pub fn load(&self, name: &str, expected: &[usize], dtype: DType) -> Result<Tensor> {
        let (shard, info) = self.info(name)?;
        if info.shape != expected {
            return Err(Error::TensorShape {
                path: shard.path.clone(),
                name: name.to_string(),
                expected: expected.to_vec(),
                found: info.shape.clone(),
            });
        }
        let start = shard.header_len + info.data_offsets.0;
        let end = shard.header_len + info.data_offsets.1;
        let bytes = shard
            .map
            .get(start..end)
            .ok_or_else(|| Error::CorruptWeights {
                path: shard.path.clone(),
                message: format!("tensor `{name}` lies outside the file"),
            })?;
        let t = match info.dtype {
            Dtype::F32 => {
                Tensor::from_vec(decode(bytes, f32::from_le_bytes), expected, &Device::Cpu)?
            }
            Dtype::BF16 => Tensor::from_vec(
                decode(bytes, |b: [u8; 2]| {
                    half::bf16::from_bits(u16::from_le_bytes(b))
                }),
                expected,
                &Device::Cpu,
            )?,
            Dtype::F16 => Tensor::from_vec(
                decode(bytes, |b: [u8; 2]| {
                    half::f16::from_bits(u16::from_le_bytes(b))
                }),
                expected,
                &Device::Cpu,
            )?,
            other => {
                return Err(Error::TensorDtype {
                    path: shard.path.clone(),
                    name: name.to_string(),
                    found: format!("{other:?}"),
                })
            }
        };
        Ok(t.to_dtype(dtype)?)
    }
}

fn decode<const N: usize, T>(bytes: &[u8], f: impl Fn([u8; N]) -> T) -> Vec<T> {
    bytes
        .chunks_exact(N)
        .map(|c| {
            let mut a = [0u8; N];
            a.copy_from_slice(c);
            f(a)
        })
        .collect()
}

fn candle_dtype(d: Dtype) -> Option<DType> {
    match d {
        Dtype::F32 => Some(DType::F32),
        Dtype::BF16 => Some(DType::BF16),
        Dtype::F16 => Some(DType::F16),
        _ => None,
    }
}

fn open_shard(path: &Path) -> Result<Shard> {
    let file = File::open(path).map_err(|e| Error::io(path, e))?;
    // SAFETY: the map is read-only and private to this process. Like every mmap-based loader
    // (candle, safetensors, llama.cpp), a file truncated by another process while mapped would
    // fault; the file sizes are validated against the header below.
    let map = unsafe { Mmap::map(&file) }.map_err(|e| Error::io(path, e))?;
    let (n, meta) = SafeTensors::read_metadata(&map).map_err(|e| Error::CorruptWeights {
        path: path.to_path_buf(),
        message: e.to_string(),
    })?;
    Ok(Shard {
        path: path.to_path_buf(),
        map,
        header_len: n + 8,
        meta,
    })
}

#[cfg(test)]
mod tests;

impl crate::model::WeightSource for WeightFiles {
    fn tensor(&self, name: &str, shape: &[usize], dtype: DType) -> Result<Tensor> {
        self.load(name, shape, dtype)
    }

    fn linear(
        &self,
        prefix: &str,
        out: usize,
        inp: usize,
        bias: bool,
        dtype: DType,
    ) -> Result<crate::model::Linear> {
        let w = self.load(&format!("{prefix}.weight"), &[out, inp], dtype)?;
        let b = if bias {
            Some(self.load(&format!("{prefix}.bias"), &[out], dtype)?)
        } else {
            None
        };
        Ok(crate::model::Linear::new(w, b))
    }

    fn embedding(
        &self,
        name: &str,
        vocab: usize,
        hidden: usize,
        dtype: DType,
    ) -> Result<crate::model::Embedding> {
        Ok(crate::model::Embedding::Dense(self.load(
            name,
            &[vocab, hidden],
            dtype,
        )?))
    }

    fn has(&self, name: &str) -> bool {
        self.contains(name)
    }
}
