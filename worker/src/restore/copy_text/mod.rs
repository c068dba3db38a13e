//! Arrow record batches → PostgreSQL `COPY … FROM STDIN` text format.
//!
//! One line per row, fields separated by a tab, `\N` for NULL (an empty string stays an empty
//! field), and a backslash escape for the four bytes that would otherwise break the framing:
//! `\\`, `\t`, `\n`, `\r`. Strings are copied as they are: in an RDS export they already hold
//! PostgreSQL's text output (numeric, timestamptz, arrays, json, hex EWKB …), which PostgreSQL
//! parses itself. Binary values become bytea hex (`\\x…` — the backslash is itself escaped).
//!
//! The encoder appends into a caller-owned, reused buffer: no allocation per row or per value
//! (integers via `itoa`, floats via `ryu`, dates and times by hand), and it stops at a byte
//! budget so the caller can flush to COPY in bounded chunks whatever the value sizes.

mod column;
mod datetime;
mod numbers;
mod text;

pub use numbers::{write_decimal, write_f32, write_f64};
pub use text::{write_bytea, write_text};

use arrow::array::{Array, ArrayRef};
use arrow::datatypes::DataType;
use bytes::{BufMut, BytesMut};
use column::Col;
use std::fmt;

/// A column whose Arrow type has no COPY text encoding here.
#[derive(Debug, Clone, PartialEq)]
pub struct UnsupportedType {
    pub column: String,
    pub data_type: DataType,
}

impl fmt::Display for UnsupportedType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "column {:?} has Arrow type {}, which pgfleet cannot load (supported: integers, \
             floats, booleans, strings, binary, dates, times, timestamps, decimals); export that \
             column as text or leave it out of the restore",
            self.column, self.data_type
        )
    }
}

impl std::error::Error for UnsupportedType {}

/// Replace dictionary-encoded arrays by plain arrays of their value type (other arrays are
/// returned as they are). Parquet readers produce dictionaries only when a file's embedded
/// Arrow schema asks for them, so this cost is rare.
pub fn decode_dictionary(array: &ArrayRef) -> Result<ArrayRef, arrow::error::ArrowError> {
    match array.data_type() {
        DataType::Dictionary(_, value) => arrow::compute::cast(array, value),
        _ => Ok(array.clone()),
    }
}

/// The columns of one record batch (in COPY column order), ready to be written row by row.
pub struct RowEncoder<'a> {
    cols: Vec<Col<'a>>,
    rows: usize,
}

impl<'a> RowEncoder<'a> {
    /// `arrays` in COPY column order (dictionaries already decoded, see [`decode_dictionary`]);
    /// `names[i]` names `arrays[i]` in errors. Every array must have the same length.
    pub fn new(arrays: &'a [ArrayRef], names: &[&str]) -> Result<Self, UnsupportedType> {
        let cols = arrays
            .iter()
            .enumerate()
            .map(|(i, a)| Col::new(a.as_ref(), names.get(i).copied().unwrap_or("?")))
            .collect::<Result<Vec<_>, _>>()?;
        let rows = arrays.iter().map(|a| a.len()).min().unwrap_or(0);
        Ok(Self { cols, rows })
    }

    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Append rows from `start` on until `out` holds at least `limit` bytes or the batch ends.
    /// Returns the first row not written (`self.rows()` when done).
    pub fn encode(&self, start: usize, out: &mut BytesMut, limit: usize) -> usize {
        let mut row = start;
        while row < self.rows {
            let mut first = true;
            for col in &self.cols {
                if !first {
                    out.put_u8(b'\t');
                }
                first = false;
                col.write(row, out);
            }
            out.put_u8(b'\n');
            row += 1;
            if out.len() >= limit {
                break;
            }
        }
        row
    }
}

#[cfg(test)]
mod tests;
