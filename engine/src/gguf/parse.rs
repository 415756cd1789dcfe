//! The GGUF byte reader: a bounds-checked cursor over the mapped file. Every length read from
//! the file is checked against the bytes that remain before anything is allocated, so a
//! corrupt or hostile file costs at most its own size in memory.

use super::Value;

/// Where parsing stopped and why; the caller adds the file name.
#[derive(Debug)]
pub(crate) struct ParseError {
    pub offset: usize,
    pub message: String,
}

pub(crate) type PResult<T> = std::result::Result<T, ParseError>;

/// Arrays nest at most this deep (GGUF writers use one level; arrays of arrays are rare).
const MAX_DEPTH: usize = 4;

pub(crate) struct Cursor<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    pub fn new(buf: &'a [u8]) -> Self {
        Cursor { buf, pos: 0 }
    }

    pub fn pos(&self) -> usize {
        self.pos
    }

    pub fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    pub fn fail<T>(&self, message: impl Into<String>) -> PResult<T> {
        Err(ParseError {
            offset: self.pos,
            message: message.into(),
        })
    }

    pub fn bytes(&mut self, n: usize, what: &str) -> PResult<&'a [u8]> {
        if n > self.remaining() {
            return self.fail(format!(
                "{what}: needs {n} bytes, only {} remain (truncated file?)",
                self.remaining()
            ));
        }
        let s = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    fn array<const N: usize>(&mut self, what: &str) -> PResult<[u8; N]> {
        let b = self.bytes(N, what)?;
        let mut a = [0u8; N];
        a.copy_from_slice(b);
        Ok(a)
    }

    pub fn u32(&mut self, what: &str) -> PResult<u32> {
        Ok(u32::from_le_bytes(self.array(what)?))
    }

    pub fn u64(&mut self, what: &str) -> PResult<u64> {
        Ok(u64::from_le_bytes(self.array(what)?))
    }

    /// A count that must fit in what remains at `min_size` bytes per item.
    pub fn count(&mut self, min_size: usize, what: &str) -> PResult<usize> {
        let at = self.pos;
        let n = self.u64(what)?;
        let max = (self.remaining() / min_size.max(1)) as u64;
        if n > max {
            return Err(ParseError {
                offset: at,
                message: format!(
                    "{what} is {n}, more than the {} bytes left could hold",
                    self.remaining()
                ),
            });
        }
        Ok(n as usize)
    }

    pub fn string(&mut self, what: &str) -> PResult<String> {
        let n = self.count(1, what)?;
        let b = self.bytes(n, what)?;
        // Token strings of byte-level vocabularies are valid UTF-8; a byte that is not is kept
        // as U+FFFD rather than failing the whole file.
        Ok(String::from_utf8_lossy(b).into_owned())
    }

    pub fn value(&mut self, ty: u32, depth: usize) -> PResult<Value> {
        Ok(match ty {
            0 => Value::U8(self.array::<1>("u8")?[0]),
            1 => Value::I8(self.array::<1>("i8")?[0] as i8),
            2 => Value::U16(u16::from_le_bytes(self.array("u16")?)),
            3 => Value::I16(i16::from_le_bytes(self.array("i16")?)),
            4 => Value::U32(self.u32("u32")?),
            5 => Value::I32(i32::from_le_bytes(self.array("i32")?)),
            6 => Value::F32(f32::from_le_bytes(self.array("f32")?)),
            7 => match self.array::<1>("bool")?[0] {
                0 => Value::Bool(false),
                1 => Value::Bool(true),
                b => return self.fail(format!("bool value {b} is neither 0 nor 1")),
            },
            8 => Value::String(self.string("string length")?),
            9 => {
                if depth >= MAX_DEPTH {
                    return self.fail(format!("arrays nested deeper than {MAX_DEPTH}"));
                }
                let elem = self.u32("array element type")?;
                let size = match elem {
                    0 | 1 | 7 => 1,
                    2 | 3 => 2,
                    4..=6 => 4,
                    8..=12 => 8,
                    t => return self.fail(format!("unknown array element type {t}")),
                };
                let n = self.count(size, "array length")?;
                let mut items = Vec::with_capacity(n);
                for _ in 0..n {
                    items.push(self.value(elem, depth + 1)?);
                }
                Value::Array(items)
            }
            10 => Value::U64(self.u64("u64")?),
            11 => Value::I64(i64::from_le_bytes(self.array("i64")?)),
            12 => Value::F64(f64::from_le_bytes(self.array("f64")?)),
            t => return self.fail(format!("unknown value type {t}")),
        })
    }
}
