//! The batch being filled: one Arrow builder per column, values parsed from PostgreSQL's text
//! output; a full batch becomes a [`RawBatch`], checked and assembled off the async thread.

use super::columns::{ColumnKind, ColumnSpec};
use super::BATCH_ROWS;
use arrow::array::{
    Array, ArrayRef, BinaryArray, BinaryBuilder, BooleanBuilder, Float32Builder, Float64Builder,
    Int16Builder, Int32Builder, Int64Builder, StringArray,
};
use arrow::datatypes::{DataType, SchemaRef};
use arrow::record_batch::RecordBatch;
use fleet_io::error::TaskError;
use std::io::Write;
use std::sync::Arc;

enum Builder {
    Int16(Int16Builder),
    Int32(Int32Builder),
    Int64(Int64Builder),
    Float32(Float32Builder),
    Float64(Float64Builder),
    Boolean(BooleanBuilder),
    Binary(BinaryBuilder),
    /// Text is gathered as bytes and validated as UTF-8 once per batch.
    Text(BinaryBuilder),
}

impl Builder {
    fn new(kind: ColumnKind) -> Self {
        let n = BATCH_ROWS;
        match kind {
            ColumnKind::Int16 => Self::Int16(Int16Builder::with_capacity(n)),
            ColumnKind::Int32 => Self::Int32(Int32Builder::with_capacity(n)),
            ColumnKind::Int64 => Self::Int64(Int64Builder::with_capacity(n)),
            ColumnKind::Float32 => Self::Float32(Float32Builder::with_capacity(n)),
            ColumnKind::Float64 => Self::Float64(Float64Builder::with_capacity(n)),
            ColumnKind::Boolean => Self::Boolean(BooleanBuilder::with_capacity(n)),
            ColumnKind::Binary => Self::Binary(BinaryBuilder::with_capacity(n, 1 << 20)),
            ColumnKind::Text => Self::Text(BinaryBuilder::with_capacity(n, 1 << 20)),
        }
    }

    /// Append one value; `Err(())` when it is not valid text for the column's type.
    #[inline]
    fn push(&mut self, value: Option<&[u8]>) -> Result<(), ()> {
        let Some(v) = value else {
            match self {
                Self::Int16(b) => b.append_null(),
                Self::Int32(b) => b.append_null(),
                Self::Int64(b) => b.append_null(),
                Self::Float32(b) => b.append_null(),
                Self::Float64(b) => b.append_null(),
                Self::Boolean(b) => b.append_null(),
                Self::Binary(b) | Self::Text(b) => b.append_null(),
            }
            return Ok(());
        };
        match self {
            Self::Text(b) => b.append_value(v),
            Self::Int64(b) => b.append_value(parse_i64(v).ok_or(())?),
            Self::Int32(b) => {
                b.append_value(parse_i64(v).and_then(|n| i32::try_from(n).ok()).ok_or(())?)
            }
            Self::Int16(b) => {
                b.append_value(parse_i64(v).and_then(|n| i16::try_from(n).ok()).ok_or(())?)
            }
            Self::Float64(b) => b.append_value(parse_float::<f64>(v).ok_or(())?),
            Self::Float32(b) => b.append_value(parse_float::<f32>(v).ok_or(())?),
            Self::Boolean(b) => b.append_value(match v {
                b"t" => true,
                b"f" => false,
                _ => return Err(()),
            }),
            Self::Binary(b) => decode_bytea(v, b)?,
        }
        Ok(())
    }

    /// The batch so far as an array (text still as bytes: see [`RawBatch::finish`]).
    fn finish(&mut self) -> ArrayRef {
        match self {
            Self::Int16(b) => Arc::new(b.finish()),
            Self::Int32(b) => Arc::new(b.finish()),
            Self::Int64(b) => Arc::new(b.finish()),
            Self::Float32(b) => Arc::new(b.finish()),
            Self::Float64(b) => Arc::new(b.finish()),
            Self::Boolean(b) => Arc::new(b.finish()),
            Self::Binary(b) | Self::Text(b) => Arc::new(b.finish()),
        }
    }
}

/// `[+-]digits` as PostgreSQL prints integers; `None` on anything else or on overflow.
#[inline]
fn parse_i64(b: &[u8]) -> Option<i64> {
    let (negative, digits) = match b.first()? {
        b'-' => (true, &b[1..]),
        b'+' => (false, &b[1..]),
        _ => (false, b),
    };
    if digits.is_empty() {
        return None;
    }
    // Accumulate negatively so that i64::MIN parses.
    let mut n: i64 = 0;
    for &c in digits {
        let d = c.wrapping_sub(b'0');
        if d > 9 {
            return None;
        }
        n = n.checked_mul(10)?.checked_sub(i64::from(d))?;
    }
    if negative {
        Some(n)
    } else {
        n.checked_neg()
    }
}

/// Rust's float parser is correctly rounded and accepts PostgreSQL's `NaN`, `Infinity` and
/// `-Infinity`, so shortest-exact output parses back to the same bits.
fn parse_float<T: std::str::FromStr>(b: &[u8]) -> Option<T> {
    std::str::from_utf8(b).ok()?.parse().ok()
}

/// `\x0a1b...` (bytea_output = hex) into raw bytes, written straight into the builder.
#[inline]
fn decode_bytea(v: &[u8], b: &mut BinaryBuilder) -> Result<(), ()> {
    let hex = v.strip_prefix(b"\\x").ok_or(())?;
    if hex.len() % 2 != 0 {
        return Err(());
    }
    let mut buf = [0u8; 4096];
    for piece in hex.chunks(buf.len() * 2) {
        let n = piece.len() / 2;
        for (k, out) in buf[..n].iter_mut().enumerate() {
            let hi = HEX[usize::from(piece[2 * k])];
            let lo = HEX[usize::from(piece[2 * k + 1])];
            if (hi | lo) & 0x80 != 0 {
                return Err(());
            }
            *out = (hi << 4) | lo;
        }
        // Writing into a BinaryBuilder extends the current value; it cannot fail.
        b.write_all(&buf[..n]).map_err(|_| ())?;
    }
    b.append_value(b"");
    Ok(())
}

/// Hex digit values; 0xff for anything else.
pub(super) static HEX: [u8; 256] = {
    let mut t = [0xffu8; 256];
    let mut i = 0;
    while i < 10 {
        t[b'0' as usize + i] = i as u8;
        i += 1;
    }
    let mut i = 0;
    while i < 6 {
        t[b'a' as usize + i] = 10 + i as u8;
        t[b'A' as usize + i] = 10 + i as u8;
        i += 1;
    }
    t
};

/// The builders of the batch being filled.
pub(super) struct Columns {
    specs: Arc<[ColumnSpec]>,
    builders: Vec<Builder>,
    pub(super) rows: usize,
    bytes: usize,
    max_rows: usize,
    max_bytes: usize,
}

impl Columns {
    pub(super) fn new(specs: Arc<[ColumnSpec]>, max_rows: usize, max_bytes: usize) -> Self {
        let builders = specs.iter().map(|c| Builder::new(c.kind)).collect();
        Self {
            specs,
            builders,
            rows: 0,
            bytes: 0,
            max_rows: max_rows.max(1),
            max_bytes: max_bytes.max(1),
        }
    }

    #[inline]
    pub(super) fn len(&self) -> usize {
        self.builders.len()
    }

    pub(super) fn name(&self, col: usize) -> &str {
        self.specs.get(col).map_or("?", |c| c.name.as_str())
    }

    #[inline]
    pub(super) fn push(&mut self, col: usize, value: Option<&[u8]>) -> Result<(), TaskError> {
        let Some(builder) = self.builders.get_mut(col) else {
            return Err(TaskError::fatal(format!(
                "malformed COPY output: a record has more than {} fields",
                self.specs.len()
            )));
        };
        self.bytes += value.map_or(1, |v| v.len() + 1);
        builder.push(value).map_err(|()| {
            let spec = &self.specs[col];
            let v = value.unwrap_or_default();
            let shown = String::from_utf8_lossy(&v[..v.len().min(40)]);
            TaskError::fatal(format!(
                "column {:?} ({}): PostgreSQL printed {shown:?}{}, which is not a valid {} value \
                 (did the column's type change after the job was planned?)",
                spec.name,
                spec.typname,
                if v.len() > 40 { "..." } else { "" },
                spec.typname
            ))
        })
    }

    /// Count a complete record; true when the batch is full.
    #[inline]
    pub(super) fn end_row(&mut self) -> bool {
        self.rows += 1;
        self.is_full()
    }

    #[inline]
    pub(super) fn is_full(&self) -> bool {
        self.rows >= self.max_rows || self.bytes >= self.max_bytes
    }

    pub(super) fn take(&mut self) -> RawBatch {
        let arrays = self.builders.iter_mut().map(Builder::finish).collect();
        let rows = std::mem::take(&mut self.rows);
        self.bytes = 0;
        RawBatch { arrays, rows }
    }
}

/// A batch whose text columns are still unchecked bytes: [`RawBatch::finish`] validates them
/// (off the async thread) and builds the record batch.
pub struct RawBatch {
    arrays: Vec<ArrayRef>,
    rows: usize,
}

impl RawBatch {
    pub fn rows(&self) -> usize {
        self.rows
    }

    pub fn finish(self, schema: &SchemaRef) -> Result<RecordBatch, TaskError> {
        let mut arrays = Vec::with_capacity(self.arrays.len());
        for (array, field) in self.arrays.into_iter().zip(schema.fields()) {
            if field.data_type() == &DataType::Utf8 {
                let bytes = array
                    .as_any()
                    .downcast_ref::<BinaryArray>()
                    .ok_or_else(|| TaskError::fatal("text column built as non-bytes (bug)"))?
                    .clone();
                let text = StringArray::try_from_binary(bytes).map_err(|e| {
                    TaskError::fatal(format!(
                        "column {:?}: PostgreSQL sent text that is not UTF-8 ({e})",
                        field.name()
                    ))
                })?;
                arrays.push(Arc::new(text) as ArrayRef);
            } else {
                arrays.push(array);
            }
        }
        RecordBatch::try_new(schema.clone(), arrays)
            .map_err(|e| TaskError::fatal(format!("building a record batch: {e}")))
    }
}
