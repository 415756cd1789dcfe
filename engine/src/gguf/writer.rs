//! Writing GGUF v3 files: metadata, tensor infos, aligned data. Tensors are declared first and
//! their bytes produced one at a time by a callback, so a multi-GB file never sits in memory.

use std::fs::File;
use std::io::{BufWriter, Seek, Write};
use std::path::Path;

use super::{Value, DEFAULT_ALIGNMENT, MAGIC};
use crate::error::{Error, Result};
use crate::quant::GgmlType;

/// A tensor to be written: name, ggml dims (innermost first) and type.
#[derive(Debug, Clone)]
pub struct TensorData {
    /// The tensor name.
    pub name: String,
    /// ggml dims, innermost first.
    pub dims: Vec<usize>,
    /// The storage type.
    pub ty: GgmlType,
}

impl TensorData {
    /// Bytes of the tensor's data; `None` if the innermost dim is not whole blocks.
    pub fn byte_len(&self) -> Option<usize> {
        let rows: usize = self.dims[1..].iter().product();
        Some(self.ty.row_bytes(self.dims[0])? * rows)
    }
}

/// Builds a GGUF file.
#[derive(Debug, Default)]
pub struct GgufWriter {
    metadata: Vec<(String, Value)>,
    tensors: Vec<TensorData>,
}

fn put_str(w: &mut impl Write, s: &str) -> std::io::Result<()> {
    w.write_all(&(s.len() as u64).to_le_bytes())?;
    w.write_all(s.as_bytes())
}

fn type_id(v: &Value) -> u32 {
    match v {
        Value::U8(_) => 0,
        Value::I8(_) => 1,
        Value::U16(_) => 2,
        Value::I16(_) => 3,
        Value::U32(_) => 4,
        Value::I32(_) => 5,
        Value::F32(_) => 6,
        Value::Bool(_) => 7,
        Value::String(_) => 8,
        Value::Array(_) => 9,
        Value::U64(_) => 10,
        Value::I64(_) => 11,
        Value::F64(_) => 12,
    }
}

fn put_value(w: &mut impl Write, v: &Value) -> std::io::Result<()> {
    match v {
        Value::U8(x) => w.write_all(&[*x]),
        Value::I8(x) => w.write_all(&x.to_le_bytes()),
        Value::U16(x) => w.write_all(&x.to_le_bytes()),
        Value::I16(x) => w.write_all(&x.to_le_bytes()),
        Value::U32(x) => w.write_all(&x.to_le_bytes()),
        Value::I32(x) => w.write_all(&x.to_le_bytes()),
        Value::F32(x) => w.write_all(&x.to_le_bytes()),
        Value::Bool(x) => w.write_all(&[*x as u8]),
        Value::String(s) => put_str(w, s),
        Value::Array(items) => {
            // An empty array is written as u32 elements, as gguf-py does.
            let elem = items.first().map(type_id).unwrap_or(4);
            w.write_all(&elem.to_le_bytes())?;
            w.write_all(&(items.len() as u64).to_le_bytes())?;
            items.iter().try_for_each(|i| put_value(w, i))
        }
        Value::U64(x) => w.write_all(&x.to_le_bytes()),
        Value::I64(x) => w.write_all(&x.to_le_bytes()),
        Value::F64(x) => w.write_all(&x.to_le_bytes()),
    }
}

impl GgufWriter {
    /// An empty file.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a metadata pair.
    pub fn add(&mut self, key: &str, value: Value) -> &mut Self {
        self.metadata.push((key.to_string(), value));
        self
    }

    /// Declares a tensor; data comes later, in declaration order.
    pub fn add_tensor(&mut self, name: &str, dims: &[usize], ty: GgmlType) -> &mut Self {
        self.tensors.push(TensorData {
            name: name.to_string(),
            dims: dims.to_vec(),
            ty,
        });
        self
    }

    /// Writes the file. `fill(i, tensor, buf)` fills `buf` (exactly the tensor's byte length)
    /// with tensor `i`'s data.
    pub fn write(
        &self,
        path: &Path,
        mut fill: impl FnMut(usize, &TensorData, &mut [u8]) -> Result<()>,
    ) -> Result<()> {
        let io = |e| Error::io(path, e);
        let mut sizes = Vec::with_capacity(self.tensors.len());
        for t in &self.tensors {
            let n = t.byte_len().ok_or_else(|| {
                Error::arg(
                    "tensor",
                    format!(
                        "`{}`: {} columns are not whole {} blocks",
                        t.name, t.dims[0], t.ty
                    ),
                )
            })?;
            sizes.push(n);
        }
        let file = File::create(path).map_err(io)?;
        let mut w = BufWriter::with_capacity(1 << 20, file);
        w.write_all(MAGIC).map_err(io)?;
        w.write_all(&3u32.to_le_bytes()).map_err(io)?;
        w.write_all(&(self.tensors.len() as u64).to_le_bytes())
            .map_err(io)?;
        w.write_all(&(self.metadata.len() as u64).to_le_bytes())
            .map_err(io)?;
        for (k, v) in &self.metadata {
            put_str(&mut w, k).map_err(io)?;
            w.write_all(&type_id(v).to_le_bytes()).map_err(io)?;
            put_value(&mut w, v).map_err(io)?;
        }
        let align = DEFAULT_ALIGNMENT;
        let mut offset = 0usize;
        for (t, &n) in self.tensors.iter().zip(&sizes) {
            put_str(&mut w, &t.name).map_err(io)?;
            w.write_all(&(t.dims.len() as u32).to_le_bytes())
                .map_err(io)?;
            for &d in &t.dims {
                w.write_all(&(d as u64).to_le_bytes()).map_err(io)?;
            }
            w.write_all(&t.ty.id().to_le_bytes()).map_err(io)?;
            w.write_all(&(offset as u64).to_le_bytes()).map_err(io)?;
            offset = (offset + n).div_ceil(align) * align;
        }
        let pad = |w: &mut BufWriter<File>| -> Result<()> {
            let pos = w.stream_position().map_err(io)? as usize;
            let n = pos.div_ceil(align) * align - pos;
            w.write_all(&vec![0u8; n]).map_err(io)
        };
        pad(&mut w)?;
        let mut buf = Vec::new();
        for (i, (t, &n)) in self.tensors.iter().zip(&sizes).enumerate() {
            buf.clear();
            buf.resize(n, 0);
            fill(i, t, &mut buf)?;
            w.write_all(&buf).map_err(io)?;
            pad(&mut w)?;
        }
        w.flush().map_err(io)
    }
}
