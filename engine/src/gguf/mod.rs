//! llama.cpp's GGUF files: reading (memory-mapped, every offset checked), writing (for
//! `synth --format gguf`), the `lfm2` architecture's metadata and tensor names, and the
//! tokenizer stored in `tokenizer.ggml.*`.
//!
//! Layout (GGUF v2/v3, little-endian): magic `GGUF`, version, tensor count, metadata count,
//! metadata key/value pairs, tensor infos (name, dims innermost first, ggml type, offset),
//! padding to `general.alignment` (32 by default), then the tensor data. A tensor's offset is
//! relative to the start of the data and aligned.

mod model;
mod parse;
#[cfg(test)]
mod tests;
mod tokenizer;
mod writer;

use std::collections::HashMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use memmap2::Mmap;

use crate::error::{Error, Result};
use crate::quant::{GgmlType, QMatrix, Storage};

pub(crate) use model::gguf_name;
pub use model::{config_from_gguf, GgufWeights, SYNTHETIC_KEY};
pub use tokenizer::tokenizer_from_gguf;
pub use writer::{GgufWriter, TensorData};

/// The four bytes every GGUF file starts with.
pub const MAGIC: &[u8; 4] = b"GGUF";
/// Data alignment when `general.alignment` is absent.
pub const DEFAULT_ALIGNMENT: usize = 32;
/// ggml tensors have at most this many dimensions.
const MAX_DIMS: usize = 4;

/// A metadata value.
#[derive(Debug, Clone, PartialEq)]
#[allow(missing_docs)] // the variants are the GGUF value types, named as in the spec
pub enum Value {
    U8(u8),
    I8(i8),
    U16(u16),
    I16(i16),
    U32(u32),
    I32(i32),
    F32(f32),
    Bool(bool),
    String(String),
    Array(Vec<Value>),
    U64(u64),
    I64(i64),
    F64(f64),
}

impl Value {
    /// An unsigned integer of any width (negative values give `None`).
    pub fn as_u64(&self) -> Option<u64> {
        match *self {
            Value::U8(v) => Some(v as u64),
            Value::U16(v) => Some(v as u64),
            Value::U32(v) => Some(v as u64),
            Value::U64(v) => Some(v),
            Value::I8(v) => u64::try_from(v).ok(),
            Value::I16(v) => u64::try_from(v).ok(),
            Value::I32(v) => u64::try_from(v).ok(),
            Value::I64(v) => u64::try_from(v).ok(),
            _ => None,
        }
    }

    /// A float of either width, or an integer.
    pub fn as_f64(&self) -> Option<f64> {
        match *self {
            Value::F32(v) => Some(v as f64),
            Value::F64(v) => Some(v),
            _ => self.as_u64().map(|v| v as f64),
        }
    }

    /// A string.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::String(s) => Some(s),
            _ => None,
        }
    }

    /// A boolean.
    pub fn as_bool(&self) -> Option<bool> {
        match *self {
            Value::Bool(b) => Some(b),
            _ => None,
        }
    }

    /// An array.
    pub fn as_array(&self) -> Option<&[Value]> {
        match self {
            Value::Array(a) => Some(a),
            _ => None,
        }
    }

    /// The GGUF type name, for error messages.
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::U8(_) => "u8",
            Value::I8(_) => "i8",
            Value::U16(_) => "u16",
            Value::I16(_) => "i16",
            Value::U32(_) => "u32",
            Value::I32(_) => "i32",
            Value::F32(_) => "f32",
            Value::Bool(_) => "bool",
            Value::String(_) => "string",
            Value::Array(_) => "array",
            Value::U64(_) => "u64",
            Value::I64(_) => "i64",
            Value::F64(_) => "f64",
        }
    }
}

/// One tensor's header entry.
#[derive(Debug, Clone)]
pub struct TensorInfo {
    /// The tensor name (`blk.3.ffn_up.weight`).
    pub name: String,
    /// Dimensions, innermost (contiguous) first, as ggml's `ne`.
    pub dims: Vec<usize>,
    /// ggml type id (see [`GgmlType::from_id`]).
    pub type_id: u32,
    /// Absolute byte offset of the data in the file.
    pub offset: usize,
    /// Byte length of the data.
    pub len: usize,
}

impl TensorInfo {
    /// Number of elements.
    pub fn elements(&self) -> usize {
        self.dims.iter().product()
    }
}

/// An open GGUF file: parsed header, memory-mapped data.
pub struct GgufFile {
    path: PathBuf,
    map: Arc<Mmap>,
    version: u32,
    metadata: Vec<(String, Value)>,
    meta_index: HashMap<String, usize>,
    tensors: Vec<TensorInfo>,
    tensor_index: HashMap<String, usize>,
}

impl std::fmt::Debug for GgufFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "GgufFile({}, v{}, {} keys, {} tensors)",
            self.path.display(),
            self.version,
            self.metadata.len(),
            self.tensors.len()
        )
    }
}

/// Whether `path` starts with the GGUF magic.
pub fn is_gguf(path: &Path) -> bool {
    use std::io::Read;
    let mut head = [0u8; 4];
    File::open(path)
        .and_then(|mut f| f.read_exact(&mut head))
        .map(|_| &head == MAGIC)
        .unwrap_or(false)
}

impl GgufFile {
    /// Opens and parses `path`; the tensor data stays mapped, not read.
    pub fn open(path: &Path) -> Result<Self> {
        let file = File::open(path).map_err(|e| Error::io(path, e))?;
        // SAFETY: the map is read-only; a file changed underneath a running model is outside
        // what any mmap-based loader (llama.cpp included) can guard against.
        let map = unsafe { Mmap::map(&file) }.map_err(|e| Error::io(path, e))?;
        Self::from_map(path, Arc::new(map))
    }

    /// Parses a GGUF image held in memory (copied into an anonymous map); `label` names it in
    /// errors. For tests and fuzzing.
    pub fn from_bytes(label: &Path, bytes: &[u8]) -> Result<Self> {
        if bytes.is_empty() {
            return Err(Error::Gguf {
                path: label.to_path_buf(),
                message: "empty file".into(),
            });
        }
        let mut anon = memmap2::MmapMut::map_anon(bytes.len()).map_err(|e| Error::io(label, e))?;
        anon.copy_from_slice(bytes);
        let map = anon.make_read_only().map_err(|e| Error::io(label, e))?;
        Self::from_map(label, Arc::new(map))
    }

    fn from_map(path: &Path, map: Arc<Mmap>) -> Result<Self> {
        let corrupt = |offset: usize, message: String| Error::Gguf {
            path: path.to_path_buf(),
            message: format!("at byte {offset}: {message}"),
        };
        let mut c = parse::Cursor::new(&map[..]);
        let lift = |e: parse::ParseError| corrupt(e.offset, e.message);
        let magic = c.bytes(4, "magic").map_err(lift)?;
        if magic != MAGIC {
            return Err(Error::Gguf {
                path: path.to_path_buf(),
                message: format!("not a GGUF file (starts with {magic:02x?}, expected \"GGUF\")"),
            });
        }
        let version = c.u32("version").map_err(lift)?;
        match version {
            2 | 3 => {}
            1 => return Err(Error::Gguf {
                path: path.to_path_buf(),
                message:
                    "GGUF version 1 is obsolete; convert the model again with a current llama.cpp"
                        .into(),
            }),
            v if v.swap_bytes() <= 3 => {
                return Err(Error::Gguf {
                    path: path.to_path_buf(),
                    message: "big-endian GGUF files are not supported".into(),
                })
            }
            v => {
                return Err(Error::Gguf {
                    path: path.to_path_buf(),
                    message: format!("unsupported GGUF version {v} (this engine reads 2 and 3)"),
                })
            }
        }
        // A tensor info takes at least 8 (name length) + 4 (dims) + 4 (type) + 8 (offset)
        // bytes; a key/value pair at least 8 + 4 + 1.
        let n_tensors = c.count(24, "tensor count").map_err(lift)?;
        let n_kv = c.count(13, "metadata count").map_err(lift)?;
        let mut metadata = Vec::with_capacity(n_kv);
        let mut meta_index = HashMap::with_capacity(n_kv);
        for _ in 0..n_kv {
            let at = c.pos();
            let key = c.string("metadata key").map_err(lift)?;
            let ty = c.u32("metadata value type").map_err(lift)?;
            let value = c
                .value(ty, 0)
                .map_err(|e| corrupt(e.offset, format!("metadata `{key}`: {}", e.message)))?;
            if meta_index.insert(key.clone(), metadata.len()).is_some() {
                return Err(corrupt(at, format!("metadata key `{key}` appears twice")));
            }
            metadata.push((key, value));
        }
        let alignment = match metadata
            .iter()
            .find(|(k, _)| k == "general.alignment")
            .map(|(_, v)| v)
        {
            None => DEFAULT_ALIGNMENT,
            Some(v) => match v.as_u64() {
                Some(a) if a > 0 && a.is_power_of_two() && a <= 1 << 20 => a as usize,
                _ => {
                    return Err(Error::Gguf {
                        path: path.to_path_buf(),
                        message: format!("general.alignment {v:?} is not a power of two"),
                    })
                }
            },
        };
        let mut infos = Vec::with_capacity(n_tensors);
        for _ in 0..n_tensors {
            let at = c.pos();
            let name = c.string("tensor name").map_err(lift)?;
            let n_dims = c.u32("tensor dimension count").map_err(lift)? as usize;
            if n_dims == 0 || n_dims > MAX_DIMS {
                return Err(corrupt(
                    at,
                    format!("tensor `{name}` has {n_dims} dimensions (1 to {MAX_DIMS} allowed)"),
                ));
            }
            let mut dims = Vec::with_capacity(n_dims);
            for _ in 0..n_dims {
                let d = c.u64("tensor dimension").map_err(lift)?;
                dims.push(usize::try_from(d).unwrap_or(usize::MAX));
            }
            let type_id = c.u32("tensor type").map_err(lift)?;
            let rel = c.u64("tensor offset").map_err(lift)?;
            infos.push((at, name, dims, type_id, rel));
        }
        let data_start = c.pos().div_ceil(alignment) * alignment;
        let file_len = map.len();
        let mut tensors = Vec::with_capacity(n_tensors);
        let mut tensor_index = HashMap::with_capacity(n_tensors);
        for (at, name, dims, type_id, rel) in infos {
            let elements = dims
                .iter()
                .try_fold(1usize, |a, &d| a.checked_mul(d))
                .ok_or_else(|| {
                    corrupt(at, format!("tensor `{name}`: dimensions {dims:?} overflow"))
                })?;
            // Unsupported types are reported when the model asks for the tensor, by name; their
            // size is still checked when ggml's layout is known.
            let len = match GgmlType::from_id(type_id) {
                Some(ty) => {
                    let row = ty.row_bytes(dims[0]).ok_or_else(|| {
                        corrupt(
                            at,
                            format!(
                                "tensor `{name}`: row of {} is not a whole number of {ty} blocks",
                                dims[0]
                            ),
                        )
                    })?;
                    (row as u128 * (elements / dims[0].max(1)) as u128)
                        .try_into()
                        .unwrap_or(usize::MAX)
                }
                None => 0,
            };
            if rel % alignment as u64 != 0 {
                return Err(corrupt(
                    at,
                    format!("tensor `{name}`: offset {rel} is not aligned to {alignment}"),
                ));
            }
            let offset = (data_start as u128 + rel as u128)
                .try_into()
                .unwrap_or(usize::MAX);
            if offset > file_len || len > file_len - offset {
                return Err(Error::Gguf {
                    path: path.to_path_buf(),
                    message: format!(
                        "tensor `{name}` ({} bytes at {offset}) runs past the end of the file ({file_len} bytes): truncated download?",
                        len
                    ),
                });
            }
            if tensor_index.insert(name.clone(), tensors.len()).is_some() {
                return Err(corrupt(at, format!("tensor `{name}` appears twice")));
            }
            tensors.push(TensorInfo {
                name,
                dims,
                type_id,
                offset,
                len,
            });
        }
        Ok(GgufFile {
            path: path.to_path_buf(),
            map,
            version,
            metadata,
            meta_index,
            tensors,
            tensor_index,
        })
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The GGUF version (2 or 3).
    pub fn version(&self) -> u32 {
        self.version
    }

    /// Every metadata pair, in file order.
    pub fn metadata(&self) -> &[(String, Value)] {
        &self.metadata
    }

    /// A metadata value.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.meta_index.get(key).map(|&i| &self.metadata[i].1)
    }

    /// Every tensor's header entry, in file order.
    pub fn tensors(&self) -> &[TensorInfo] {
        &self.tensors
    }

    /// A tensor's header entry.
    pub fn tensor(&self, name: &str) -> Option<&TensorInfo> {
        self.tensor_index.get(name).map(|&i| &self.tensors[i])
    }

    fn require(&self, name: &str) -> Result<(&TensorInfo, GgmlType)> {
        let info = self.tensor(name).ok_or_else(|| Error::MissingTensor {
            path: self.path.clone(),
            name: name.to_string(),
        })?;
        let ty = GgmlType::from_id(info.type_id).ok_or_else(|| Error::UnsupportedTensorType {
            path: self.path.clone(),
            name: name.to_string(),
            found: GgmlType::name_of_id(info.type_id),
        })?;
        Ok((info, ty))
    }

    fn check_dims(&self, info: &TensorInfo, expected: &[usize]) -> Result<()> {
        // Size-1 dims do not change the layout (ggml pads shapes with trailing 1s, and
        // converters squeeze axes such as the conv weight's channel axis).
        let squeeze = |d: &[usize]| d.iter().copied().filter(|&x| x != 1).collect::<Vec<_>>();
        if squeeze(&info.dims) != squeeze(expected) {
            return Err(Error::TensorShape {
                path: self.path.clone(),
                name: info.name.clone(),
                expected: expected.to_vec(),
                found: info.dims.clone(),
            });
        }
        Ok(())
    }

    /// Tensor `name` as a `[rows, cols]` matrix (ggml dims `[cols, rows]`), borrowing the map.
    pub fn matrix(&self, name: &str, rows: usize, cols: usize) -> Result<QMatrix> {
        let (info, ty) = self.require(name)?;
        self.check_dims(info, &[cols, rows])?;
        self.matrix_any(info, ty, rows, cols)
    }

    /// Tensor `name` as f32 values, checking its ggml dims (innermost first) are `dims`, size-1
    /// dims aside.
    pub fn f32_values(&self, name: &str, dims: &[usize]) -> Result<Vec<f32>> {
        let (info, ty) = self.require(name)?;
        self.check_dims(info, dims)?;
        let cols = info.dims[0];
        let rows = info.elements() / cols.max(1);
        let m = self.matrix_any(info, ty, rows, cols)?;
        Ok(m.dequantize())
    }

    fn matrix_any(
        &self,
        info: &TensorInfo,
        ty: GgmlType,
        rows: usize,
        cols: usize,
    ) -> Result<QMatrix> {
        QMatrix::new(
            ty,
            rows,
            cols,
            Storage::Mapped {
                map: self.map.clone(),
                offset: info.offset,
            },
        )
        .map_err(|e| Error::Gguf {
            path: self.path.clone(),
            message: format!("tensor `{}`: {e}", info.name),
        })
    }

    /// A required metadata value, with an error naming the key.
    pub(crate) fn need(&self, key: &str) -> Result<&Value> {
        self.get(key).ok_or_else(|| Error::Gguf {
            path: self.path.clone(),
            message: format!("metadata key `{key}` is missing"),
        })
    }

    /// A required string value, with an error naming the key.
    pub(crate) fn need_str(&self, key: &str) -> Result<&str> {
        self.need(key)?
            .as_str()
            .ok_or_else(|| self.bad_key(key, "expected a string"))
    }

    /// An error about metadata `key`.
    pub(crate) fn bad_key(&self, key: &str, message: impl std::fmt::Display) -> Error {
        Error::Gguf {
            path: self.path.clone(),
            message: format!("metadata `{key}`: {message}"),
        }
    }
}

/// Runs every step of loading a model from `bytes` (parse, config, tokenizer, weights and a
/// one-token forward pass when the model is small), discarding the result: errors are
/// expected, panics and runaway allocations are bugs. The entry point of the fuzz target
/// (`fuzz/`) and of the mutation test in `tests/gguf_fuzz.rs`.
#[doc(hidden)]
pub fn exercise(bytes: &[u8]) {
    let Ok(file) = GgufFile::from_bytes(Path::new("fuzz.gguf"), bytes) else {
        return;
    };
    for (_, v) in file.metadata() {
        let _ = (v.as_u64(), v.as_f64(), v.as_str(), v.as_array());
    }
    let Ok(m) = crate::folder::LoadedModel::from_gguf(file, None) else {
        return;
    };
    let c = m.model.config();
    if c.hidden_size * c.num_layers() <= 1 << 16 {
        if let Ok(mut s) = crate::session::Session::new(m.model.clone(), 8) {
            let _ = s.decode(c.bos_token_id.unwrap_or(0));
        }
    }
}
