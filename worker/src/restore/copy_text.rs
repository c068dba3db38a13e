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

use arrow::array::{
    Array, ArrayRef, AsArray, BinaryArray, BinaryViewArray, BooleanArray, FixedSizeBinaryArray,
    LargeBinaryArray, LargeStringArray, StringArray, StringViewArray,
};
use arrow::buffer::NullBuffer;
use arrow::datatypes::{
    DataType, Date32Type, Date64Type, Decimal128Type, Decimal32Type, Decimal64Type, Float32Type,
    Float64Type, Int16Type, Int32Type, Int64Type, Int8Type, Time32MillisecondType,
    Time32SecondType, Time64MicrosecondType, Time64NanosecondType, TimeUnit,
    TimestampMicrosecondType, TimestampMillisecondType, TimestampNanosecondType,
    TimestampSecondType, UInt16Type, UInt32Type, UInt64Type, UInt8Type,
};
use bytes::{BufMut, BytesMut};
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

/// Values and validity of a primitive array, borrowed.
struct Prim<'a, T> {
    values: &'a [T],
    nulls: Option<&'a NullBuffer>,
}

impl<'a, T> Prim<'a, T> {
    #[inline]
    fn get(&self, row: usize) -> Option<&'a T> {
        if self.nulls.is_some_and(|n| n.is_null(row)) {
            None
        } else {
            self.values.get(row)
        }
    }
}

fn prim<T: arrow::datatypes::ArrowPrimitiveType>(array: &dyn Array) -> Prim<'_, T::Native> {
    let a = array.as_primitive::<T>();
    Prim {
        values: a.values(),
        nulls: a.nulls(),
    }
}

/// One column of a batch, downcast once, ready to write any of its rows.
enum Col<'a> {
    AllNull,
    Bool(&'a BooleanArray),
    I8(Prim<'a, i8>),
    I16(Prim<'a, i16>),
    I32(Prim<'a, i32>),
    I64(Prim<'a, i64>),
    U8(Prim<'a, u8>),
    U16(Prim<'a, u16>),
    U32(Prim<'a, u32>),
    U64(Prim<'a, u64>),
    F32(Prim<'a, f32>),
    F64(Prim<'a, f64>),
    Str(&'a StringArray),
    LargeStr(&'a LargeStringArray),
    StrView(&'a StringViewArray),
    Bin(&'a BinaryArray),
    LargeBin(&'a LargeBinaryArray),
    BinView(&'a BinaryViewArray),
    FixedBin(&'a FixedSizeBinaryArray),
    Date32(Prim<'a, i32>),
    /// Milliseconds since the epoch; only the date is written.
    Date64(Prim<'a, i64>),
    Time32(Prim<'a, i32>, TimeUnit),
    Time64(Prim<'a, i64>, TimeUnit),
    /// `utc`: the type carries a time zone, so values are instants (written with `+00`).
    Timestamp(Prim<'a, i64>, TimeUnit, bool),
    Dec32(Prim<'a, i32>, i8),
    Dec64(Prim<'a, i64>, i8),
    Dec128(Prim<'a, i128>, i8),
}

impl<'a> Col<'a> {
    fn new(array: &'a dyn Array, name: &str) -> Result<Self, UnsupportedType> {
        use DataType as D;
        Ok(match array.data_type() {
            D::Null => Col::AllNull,
            D::Boolean => Col::Bool(array.as_boolean()),
            D::Int8 => Col::I8(prim::<Int8Type>(array)),
            D::Int16 => Col::I16(prim::<Int16Type>(array)),
            D::Int32 => Col::I32(prim::<Int32Type>(array)),
            D::Int64 => Col::I64(prim::<Int64Type>(array)),
            D::UInt8 => Col::U8(prim::<UInt8Type>(array)),
            D::UInt16 => Col::U16(prim::<UInt16Type>(array)),
            D::UInt32 => Col::U32(prim::<UInt32Type>(array)),
            D::UInt64 => Col::U64(prim::<UInt64Type>(array)),
            D::Float32 => Col::F32(prim::<Float32Type>(array)),
            D::Float64 => Col::F64(prim::<Float64Type>(array)),
            D::Utf8 => Col::Str(array.as_string::<i32>()),
            D::LargeUtf8 => Col::LargeStr(array.as_string::<i64>()),
            D::Utf8View => Col::StrView(array.as_string_view()),
            D::Binary => Col::Bin(array.as_binary::<i32>()),
            D::LargeBinary => Col::LargeBin(array.as_binary::<i64>()),
            D::BinaryView => Col::BinView(array.as_binary_view()),
            D::FixedSizeBinary(_) => Col::FixedBin(array.as_fixed_size_binary()),
            D::Date32 => Col::Date32(prim::<Date32Type>(array)),
            D::Date64 => Col::Date64(prim::<Date64Type>(array)),
            D::Time32(TimeUnit::Second) => {
                Col::Time32(prim::<Time32SecondType>(array), TimeUnit::Second)
            }
            D::Time32(TimeUnit::Millisecond) => {
                Col::Time32(prim::<Time32MillisecondType>(array), TimeUnit::Millisecond)
            }
            D::Time64(TimeUnit::Microsecond) => {
                Col::Time64(prim::<Time64MicrosecondType>(array), TimeUnit::Microsecond)
            }
            D::Time64(TimeUnit::Nanosecond) => {
                Col::Time64(prim::<Time64NanosecondType>(array), TimeUnit::Nanosecond)
            }
            D::Timestamp(unit, tz) => {
                let values = match unit {
                    TimeUnit::Second => prim::<TimestampSecondType>(array),
                    TimeUnit::Millisecond => prim::<TimestampMillisecondType>(array),
                    TimeUnit::Microsecond => prim::<TimestampMicrosecondType>(array),
                    TimeUnit::Nanosecond => prim::<TimestampNanosecondType>(array),
                };
                Col::Timestamp(values, *unit, tz.is_some())
            }
            D::Decimal32(_, scale) => Col::Dec32(prim::<Decimal32Type>(array), *scale),
            D::Decimal64(_, scale) => Col::Dec64(prim::<Decimal64Type>(array), *scale),
            D::Decimal128(_, scale) => Col::Dec128(prim::<Decimal128Type>(array), *scale),
            other => {
                return Err(UnsupportedType {
                    column: name.to_string(),
                    data_type: other.clone(),
                })
            }
        })
    }

    /// Append the field for `row` (without separators).
    #[inline]
    fn write(&self, row: usize, out: &mut BytesMut) {
        macro_rules! int {
            ($p:expr) => {
                match $p.get(row) {
                    Some(v) => out.put_slice(itoa::Buffer::new().format(*v).as_bytes()),
                    None => out.put_slice(NULL),
                }
            };
        }
        macro_rules! var {
            ($a:expr, $f:ident) => {
                if $a.is_null(row) {
                    out.put_slice(NULL)
                } else {
                    $f($a.value(row).as_ref(), out)
                }
            };
        }
        match self {
            Col::AllNull => out.put_slice(NULL),
            Col::Bool(a) => out.put_slice(if a.is_null(row) {
                NULL
            } else if a.value(row) {
                b"t"
            } else {
                b"f"
            }),
            Col::I8(p) => int!(p),
            Col::I16(p) => int!(p),
            Col::I32(p) => int!(p),
            Col::I64(p) => int!(p),
            Col::U8(p) => int!(p),
            Col::U16(p) => int!(p),
            Col::U32(p) => int!(p),
            Col::U64(p) => int!(p),
            Col::F32(p) => match p.get(row) {
                Some(v) => write_f32(*v, out),
                None => out.put_slice(NULL),
            },
            Col::F64(p) => match p.get(row) {
                Some(v) => write_f64(*v, out),
                None => out.put_slice(NULL),
            },
            Col::Str(a) => var!(a, write_text),
            Col::LargeStr(a) => var!(a, write_text),
            Col::StrView(a) => var!(a, write_text),
            Col::Bin(a) => var!(a, write_bytea),
            Col::LargeBin(a) => var!(a, write_bytea),
            Col::BinView(a) => var!(a, write_bytea),
            Col::FixedBin(a) => var!(a, write_bytea),
            Col::Date32(p) => match p.get(row) {
                Some(days) => write_date(i64::from(*days), out),
                None => out.put_slice(NULL),
            },
            Col::Date64(p) => match p.get(row) {
                Some(ms) => write_date(ms.div_euclid(86_400_000), out),
                None => out.put_slice(NULL),
            },
            Col::Time32(p, unit) => match p.get(row) {
                Some(v) => write_time(i64::from(*v), *unit, out),
                None => out.put_slice(NULL),
            },
            Col::Time64(p, unit) => match p.get(row) {
                Some(v) => write_time(*v, *unit, out),
                None => out.put_slice(NULL),
            },
            Col::Timestamp(p, unit, utc) => match p.get(row) {
                Some(v) => write_timestamp(*v, *unit, *utc, out),
                None => out.put_slice(NULL),
            },
            Col::Dec32(p, scale) => match p.get(row) {
                Some(v) => write_decimal(i128::from(*v), *scale, out),
                None => out.put_slice(NULL),
            },
            Col::Dec64(p, scale) => match p.get(row) {
                Some(v) => write_decimal(i128::from(*v), *scale, out),
                None => out.put_slice(NULL),
            },
            Col::Dec128(p, scale) => match p.get(row) {
                Some(v) => write_decimal(*v, *scale, out),
                None => out.put_slice(NULL),
            },
        }
    }
}

const NULL: &[u8] = b"\\N";

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

/// True when no byte of `s` needs an escape. Branch-free over 16-byte blocks so the compiler
/// vectorizes it; bytes <= `\r` (which include `\t` and `\n`) and `\` send a value to the slow
/// path, which escapes only the four framing bytes.
#[inline]
fn is_plain(s: &[u8]) -> bool {
    let mut blocks = s.chunks_exact(16);
    for block in &mut blocks {
        let mut special = false;
        for &b in block {
            special |= (b <= b'\r') | (b == b'\\');
        }
        if special {
            return false;
        }
    }
    blocks.remainder().iter().all(|&b| b > b'\r' && b != b'\\')
}

/// A text value, escaped for COPY text format.
#[inline]
pub fn write_text(s: &[u8], out: &mut BytesMut) {
    if is_plain(s) {
        out.put_slice(s);
        return;
    }
    out.reserve(s.len() + 16);
    // Next position of `\r` and of any of the other three, each searched again only once
    // passed, so the whole value is scanned once however many escapes it needs.
    let len = s.len();
    let find3 =
        |from: usize| memchr::memchr3(b'\\', b'\t', b'\n', &s[from..]).map_or(len, |o| from + o);
    let find_cr = |from: usize| memchr::memchr(b'\r', &s[from..]).map_or(len, |o| from + o);
    let (mut next3, mut next_cr) = (find3(0), find_cr(0));
    let mut start = 0;
    loop {
        let at = next3.min(next_cr);
        if at >= len {
            break;
        }
        out.put_slice(&s[start..at]);
        out.put_slice(match s[at] {
            b'\\' => b"\\\\",
            b'\t' => b"\\t",
            b'\n' => b"\\n",
            _ => b"\\r",
        });
        start = at + 1;
        if at == next3 {
            next3 = find3(start);
        } else {
            next_cr = find_cr(start);
        }
    }
    out.put_slice(&s[start..]);
}

const HEX: &[u8; 16] = b"0123456789abcdef";

/// A bytea value in hex format. In COPY text the value's own backslash must be escaped, so the
/// field starts with `\\x`.
#[inline]
pub fn write_bytea(bytes: &[u8], out: &mut BytesMut) {
    out.reserve(3 + 2 * bytes.len());
    out.put_slice(b"\\\\x");
    for chunk in bytes.chunks(512) {
        let mut pairs = [0u8; 1024];
        for (i, &b) in chunk.iter().enumerate() {
            pairs[2 * i] = HEX[usize::from(b >> 4)];
            pairs[2 * i + 1] = HEX[usize::from(b & 15)];
        }
        out.put_slice(&pairs[..2 * chunk.len()]);
    }
}

/// Shortest representation that reads back to the same value (`1e300`, `5e-324`, `-0.0`),
/// and PostgreSQL's spellings of the special values.
#[inline]
pub fn write_f64(v: f64, out: &mut BytesMut) {
    if v.is_nan() {
        out.put_slice(b"NaN");
    } else if v.is_infinite() {
        out.put_slice(if v > 0.0 { b"Infinity" } else { b"-Infinity" });
    } else {
        out.put_slice(ryu::Buffer::new().format_finite(v).as_bytes());
    }
}

#[inline]
pub fn write_f32(v: f32, out: &mut BytesMut) {
    if v.is_nan() {
        out.put_slice(b"NaN");
    } else if v.is_infinite() {
        out.put_slice(if v > 0.0 { b"Infinity" } else { b"-Infinity" });
    } else {
        out.put_slice(ryu::Buffer::new().format_finite(v).as_bytes());
    }
}

/// An unscaled integer with `scale` digits after the point, exactly (`12345`, 2 → `123.45`;
/// negative scales append zeros).
pub fn write_decimal(v: i128, scale: i8, out: &mut BytesMut) {
    let mut buf = itoa::Buffer::new();
    let digits = buf.format(v.unsigned_abs()).as_bytes();
    if v < 0 {
        out.put_u8(b'-');
    }
    if scale <= 0 {
        out.put_slice(digits);
        if v != 0 {
            for _ in 0..scale.unsigned_abs() {
                out.put_u8(b'0');
            }
        }
        return;
    }
    let scale = usize::from(scale.unsigned_abs());
    if digits.len() > scale {
        let (int, frac) = digits.split_at(digits.len() - scale);
        out.put_slice(int);
        out.put_u8(b'.');
        out.put_slice(frac);
    } else {
        out.put_slice(b"0.");
        for _ in digits.len()..scale {
            out.put_u8(b'0');
        }
        out.put_slice(digits);
    }
}

/// Proleptic Gregorian (year, month, day) of a day count since 1970-01-01 (H. Hinnant's
/// `civil_from_days`). Total over i64 inputs that come from i32 days or i64 seconds / 86400.
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days.saturating_add(719_468);
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097); // [0, 146096]
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365; // [0, 399]
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100); // [0, 365]
    let mp = (5 * doy + 2) / 153; // [0, 11]
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = era.saturating_mul(400).saturating_add(yoe) + i64::from(month <= 2);
    (year, month, day)
}

fn put_2(v: u32, out: &mut BytesMut) {
    out.put_slice(&[b'0' + (v / 10 % 10) as u8, b'0' + (v % 10) as u8]);
}

/// `YYYY-MM-DD`; returns whether the year is BC (year <= 0), whose ` BC` suffix the caller
/// writes after the whole value, as PostgreSQL does.
fn put_date(days: i64, out: &mut BytesMut) -> bool {
    let (year, month, day) = civil_from_days(days);
    let bc = year <= 0;
    let shown = if bc { 1 - year } else { year }.unsigned_abs();
    let mut buf = itoa::Buffer::new();
    let digits = buf.format(shown).as_bytes();
    for _ in digits.len()..4 {
        out.put_u8(b'0');
    }
    out.put_slice(digits);
    out.put_u8(b'-');
    put_2(month, out);
    out.put_u8(b'-');
    put_2(day, out);
    bc
}

fn write_date(days: i64, out: &mut BytesMut) {
    if put_date(days, out) {
        out.put_slice(b" BC");
    }
}

/// Units per second and fraction digits of a time unit.
fn unit_scale(unit: TimeUnit) -> (i64, usize) {
    match unit {
        TimeUnit::Second => (1, 0),
        TimeUnit::Millisecond => (1_000, 3),
        TimeUnit::Microsecond => (1_000_000, 6),
        TimeUnit::Nanosecond => (1_000_000_000, 9),
    }
}

/// `HH:MM:SS[.fraction]` of `secs` seconds into the day plus `frac` units of `digits` digits
/// (trailing zeros trimmed).
fn put_clock(secs: i64, frac: i64, digits: usize, out: &mut BytesMut) {
    let mut buf = itoa::Buffer::new();
    let hours = secs.div_euclid(3600);
    if (0..10).contains(&hours) {
        out.put_u8(b'0');
    }
    out.put_slice(buf.format(hours).as_bytes());
    out.put_u8(b':');
    put_2((secs.rem_euclid(3600) / 60) as u32, out);
    out.put_u8(b':');
    put_2(secs.rem_euclid(60) as u32, out);
    if frac != 0 && digits > 0 {
        let text = buf.format(frac).as_bytes();
        let mut fraction = [b'0'; 9];
        let digits = digits.min(9);
        let start = digits.saturating_sub(text.len());
        for (i, &c) in text.iter().take(digits).enumerate() {
            fraction[start + i] = c;
        }
        let mut end = digits;
        while end > 0 && fraction[end - 1] == b'0' {
            end -= 1;
        }
        out.put_u8(b'.');
        out.put_slice(&fraction[..end]);
    }
}

fn write_time(v: i64, unit: TimeUnit, out: &mut BytesMut) {
    let (per_sec, digits) = unit_scale(unit);
    put_clock(v.div_euclid(per_sec), v.rem_euclid(per_sec), digits, out);
}

/// ISO 8601 as PostgreSQL reads it: `YYYY-MM-DD HH:MM:SS[.ffffff][+00][ BC]`.
fn write_timestamp(v: i64, unit: TimeUnit, utc: bool, out: &mut BytesMut) {
    let (per_sec, digits) = unit_scale(unit);
    let secs = v.div_euclid(per_sec);
    let bc = put_date(secs.div_euclid(86_400), out);
    out.put_u8(b' ');
    put_clock(secs.rem_euclid(86_400), v.rem_euclid(per_sec), digits, out);
    if utc {
        out.put_slice(b"+00");
    }
    if bc {
        out.put_slice(b" BC");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{
        BinaryViewArray, Date32Array, Date64Array, Decimal128Array, DictionaryArray,
        FixedSizeBinaryArray, Float32Array, Float64Array, Int16Array, Int32Array, Int64Array,
        Int8Array, LargeBinaryArray, LargeStringArray, ListArray, NullArray, StringViewArray,
        Time32SecondArray, Time64MicrosecondArray, Time64NanosecondArray,
        TimestampMicrosecondArray, TimestampMillisecondArray, TimestampNanosecondArray,
        TimestampSecondArray, UInt64Array, UInt8Array,
    };
    use arrow::datatypes::Int32Type;
    use std::sync::Arc;

    fn encode(arrays: Vec<ArrayRef>) -> String {
        let arrays: Vec<ArrayRef> = arrays
            .iter()
            .map(|a| decode_dictionary(a).unwrap())
            .collect();
        let names: Vec<String> = (0..arrays.len()).map(|i| format!("c{i}")).collect();
        let names: Vec<&str> = names.iter().map(String::as_str).collect();
        let enc = RowEncoder::new(&arrays, &names).unwrap();
        let mut out = BytesMut::new();
        assert_eq!(enc.encode(0, &mut out, usize::MAX), enc.rows());
        String::from_utf8(out.to_vec()).unwrap()
    }

    fn one(array: ArrayRef) -> Vec<String> {
        encode(vec![array]).lines().map(str::to_string).collect()
    }

    #[test]
    fn text_escapes_and_null_vs_empty() {
        let a: ArrayRef = Arc::new(StringArray::from(vec![
            None,
            Some(""),
            Some("plain"),
            Some("tab\there"),
            Some("new\nline"),
            Some("cr\rlf\r\n"),
            Some("back\\slash"),
            Some("\\N"),
            Some("\\."),
            Some("ünïcødé ✓ 日本語 שלום 🎉"),
            Some("\x0b\x0c\x01 other controls stay"),
            Some("a long value without anything special in it at all, past one block"),
            Some("a long value with a tab\tand a backslash \\ past the first 16-byte block"),
        ]));
        assert_eq!(
            one(a),
            vec![
                "\\N",
                "",
                "plain",
                "tab\\there",
                "new\\nline",
                "cr\\rlf\\r\\n",
                "back\\\\slash",
                "\\\\N",
                "\\\\.",
                "ünïcødé ✓ 日本語 שלום 🎉",
                "\x0b\x0c\x01 other controls stay",
                "a long value without anything special in it at all, past one block",
                "a long value with a tab\\tand a backslash \\\\ past the first 16-byte block",
            ]
        );
    }

    #[test]
    fn every_string_and_binary_flavour() {
        let vals = [Some("a\tb"), None, Some("")];
        let bins: [Option<&[u8]>; 3] = [Some(b"\x00\xff\\"), None, Some(b"")];
        let out = encode(vec![
            Arc::new(LargeStringArray::from(vals.to_vec())),
            Arc::new(StringViewArray::from(vals.to_vec())),
            Arc::new(BinaryArray::from(bins.to_vec())),
            Arc::new(LargeBinaryArray::from(bins.to_vec())),
            Arc::new(BinaryViewArray::from(bins.to_vec())),
        ]);
        assert_eq!(
            out,
            "a\\tb\ta\\tb\t\\\\x00ff5c\t\\\\x00ff5c\t\\\\x00ff5c\n\
             \\N\t\\N\t\\N\t\\N\t\\N\n\
             \t\t\\\\x\t\\\\x\t\\\\x\n"
        );
        let fixed: ArrayRef = Arc::new(
            FixedSizeBinaryArray::try_from_sparse_iter_with_size(
                vec![Some(vec![0xabu8, 0x01]), None].into_iter(),
                2,
            )
            .unwrap(),
        );
        assert_eq!(one(fixed), vec!["\\\\xab01", "\\N"]);
    }

    #[test]
    fn bytea_all_byte_values() {
        let all: Vec<u8> = (0..=255u8).collect();
        let mut out = BytesMut::new();
        write_bytea(&all, &mut out);
        let expect: String = std::iter::once("\\\\x".to_string())
            .chain(all.iter().map(|b| format!("{b:02x}")))
            .collect();
        assert_eq!(String::from_utf8(out.to_vec()).unwrap(), expect);
        let big = vec![7u8; 5000];
        let mut out = BytesMut::new();
        write_bytea(&big, &mut out);
        assert_eq!(out.len(), 3 + 10_000);
        assert!(out[3..].chunks(2).all(|p| p == b"07"));
    }

    #[test]
    fn floats_round_trip_and_specials() {
        let f64s = [
            0.0,
            -0.0,
            1.0,
            0.1,
            1e300,
            1e-300,
            f64::MAX,
            f64::MIN_POSITIVE,
            5e-324,
            123456789012345680000.0,
            f64::NAN,
            f64::INFINITY,
            f64::NEG_INFINITY,
        ];
        let lines = one(Arc::new(Float64Array::from(f64s.to_vec())));
        assert_eq!(
            &lines[..6],
            &["0.0", "-0.0", "1.0", "0.1", "1e300", "1e-300"]
        );
        assert_eq!(&lines[10..], &["NaN", "Infinity", "-Infinity"]);
        for (v, text) in f64s.iter().zip(&lines).take(10) {
            let back: f64 = text.parse().unwrap();
            assert_eq!(back.to_bits(), v.to_bits(), "{text}");
        }
        let f32s = [
            0.1f32,
            -0.0,
            3.4028235e38,
            1e-45,
            f32::NAN,
            f32::NEG_INFINITY,
        ];
        let lines = one(Arc::new(Float32Array::from(f32s.to_vec())));
        assert_eq!(lines[0], "0.1");
        assert_eq!(&lines[4..], &["NaN", "-Infinity"]);
        for (v, text) in f32s.iter().zip(&lines).take(4) {
            let back: f32 = text.parse().unwrap();
            assert_eq!(back.to_bits(), v.to_bits(), "{text}");
        }
    }

    #[test]
    fn integers_and_booleans() {
        let out = encode(vec![
            Arc::new(Int8Array::from(vec![Some(i8::MIN), None])),
            Arc::new(Int16Array::from(vec![Some(i16::MIN), None])),
            Arc::new(Int32Array::from(vec![Some(i32::MIN), None])),
            Arc::new(Int64Array::from(vec![Some(i64::MIN), None])),
            Arc::new(UInt8Array::from(vec![Some(u8::MAX), None])),
            Arc::new(UInt64Array::from(vec![Some(u64::MAX), None])),
            Arc::new(BooleanArray::from(vec![Some(true), None])),
            Arc::new(BooleanArray::from(vec![Some(false), Some(true)])),
        ]);
        assert_eq!(
            out,
            "-128\t-32768\t-2147483648\t-9223372036854775808\t255\t18446744073709551615\tt\tf\n\
             \\N\t\\N\t\\N\t\\N\t\\N\t\\N\t\\N\tt\n"
        );
    }

    #[test]
    fn decimals_are_exact() {
        let a = Decimal128Array::from(vec![
            Some(12345),
            Some(-12345),
            Some(5),
            Some(-5),
            Some(0),
            None,
            Some(i128::MAX),
        ])
        .with_precision_and_scale(38, 3)
        .unwrap();
        assert_eq!(
            one(Arc::new(a)),
            vec![
                "12.345",
                "-12.345",
                "0.005",
                "-0.005",
                "0.000",
                "\\N",
                "170141183460469231731687303715884105.727"
            ]
        );
        let neg = Decimal128Array::from(vec![Some(12), Some(0)])
            .with_precision_and_scale(10, -2)
            .unwrap();
        assert_eq!(one(Arc::new(neg)), vec!["1200", "0"]);
    }

    #[test]
    fn dates_times_timestamps() {
        let dates = Date32Array::from(vec![Some(0), Some(19_723), Some(-719_528), None]);
        assert_eq!(
            one(Arc::new(dates)),
            vec!["1970-01-01", "2024-01-01", "0001-01-01 BC", "\\N"]
        );
        let d64 = Date64Array::from(vec![Some(86_400_000 * 2 + 5), Some(-1)]);
        assert_eq!(one(Arc::new(d64)), vec!["1970-01-03", "1969-12-31"]);
        let ts = TimestampMicrosecondArray::from(vec![Some(1_704_110_400_123_456), Some(-1), None]);
        assert_eq!(
            one(Arc::new(ts)),
            vec![
                "2024-01-01 12:00:00.123456",
                "1969-12-31 23:59:59.999999",
                "\\N"
            ]
        );
        let tz =
            TimestampMillisecondArray::from(vec![Some(1_704_110_400_100)]).with_timezone("UTC");
        assert_eq!(one(Arc::new(tz)), vec!["2024-01-01 12:00:00.1+00"]);
        // 1 BC (year 0), Dec 31, as PostgreSQL writes it.
        let s = TimestampSecondArray::from(vec![Some(-719_163 * 86_400)]);
        assert_eq!(one(Arc::new(s)), vec!["0001-12-31 00:00:00 BC"]);
        let ns = TimestampNanosecondArray::from(vec![Some(1_000_000_001)]);
        assert_eq!(one(Arc::new(ns)), vec!["1970-01-01 00:00:01.000000001"]);
        let t32 = Time32SecondArray::from(vec![Some(3_661), None]);
        assert_eq!(one(Arc::new(t32)), vec!["01:01:01", "\\N"]);
        let t64 = Time64MicrosecondArray::from(vec![Some(86_399_999_999), Some(0)]);
        assert_eq!(one(Arc::new(t64)), vec!["23:59:59.999999", "00:00:00"]);
        let t64n = Time64NanosecondArray::from(vec![Some(500)]);
        assert_eq!(one(Arc::new(t64n)), vec!["00:00:00.0000005"]);
    }

    #[test]
    fn civil_dates_match_known_days() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(-1), (1969, 12, 31));
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
        assert_eq!(civil_from_days(2_932_896), (9999, 12, 31));
        // Extremes never panic.
        let _ = civil_from_days(i64::MAX);
        let _ = civil_from_days(i64::MIN);
        let mut out = BytesMut::new();
        write_timestamp(i64::MIN, TimeUnit::Nanosecond, true, &mut out);
        write_timestamp(i64::MAX, TimeUnit::Second, false, &mut out);
        write_time(i64::MIN, TimeUnit::Second, &mut out);
    }

    #[test]
    fn dictionaries_and_nulls_everywhere() {
        let dict: DictionaryArray<Int32Type> = vec![Some("a\tb"), None, Some("a\tb"), Some("")]
            .into_iter()
            .collect();
        let ints: ArrayRef = Arc::new(Int64Array::from(vec![Some(1), Some(2), None, Some(4)]));
        let out = encode(vec![ints, Arc::new(dict), Arc::new(NullArray::new(4))]);
        assert_eq!(
            out,
            "1\ta\\tb\t\\N\n2\t\\N\t\\N\n\\N\ta\\tb\t\\N\n4\t\t\\N\n"
        );
    }

    #[test]
    fn nulls_in_every_supported_type() {
        let types = [
            DataType::Null,
            DataType::Boolean,
            DataType::Int8,
            DataType::Int16,
            DataType::Int32,
            DataType::Int64,
            DataType::UInt8,
            DataType::UInt16,
            DataType::UInt32,
            DataType::UInt64,
            DataType::Float32,
            DataType::Float64,
            DataType::Utf8,
            DataType::LargeUtf8,
            DataType::Utf8View,
            DataType::Binary,
            DataType::LargeBinary,
            DataType::BinaryView,
            DataType::FixedSizeBinary(4),
            DataType::Date32,
            DataType::Date64,
            DataType::Time32(TimeUnit::Second),
            DataType::Time32(TimeUnit::Millisecond),
            DataType::Time64(TimeUnit::Microsecond),
            DataType::Time64(TimeUnit::Nanosecond),
            DataType::Timestamp(TimeUnit::Second, None),
            DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into())),
            DataType::Timestamp(TimeUnit::Microsecond, Some("+02:00".into())),
            DataType::Timestamp(TimeUnit::Nanosecond, None),
            DataType::Decimal32(9, 2),
            DataType::Decimal64(18, 2),
            DataType::Decimal128(38, 10),
            DataType::Dictionary(Box::new(DataType::Int16), Box::new(DataType::Utf8)),
        ];
        let arrays: Vec<ArrayRef> = types
            .iter()
            .map(|t| arrow::array::new_null_array(t, 2))
            .collect();
        let expect = vec!["\\N"; types.len()].join("\t") + "\n";
        assert_eq!(encode(arrays), expect.repeat(2));
    }

    #[test]
    fn unsupported_types_name_the_column() {
        let list: ArrayRef = Arc::new(ListArray::from_iter_primitive::<Int32Type, _, _>(vec![
            Some(vec![Some(1)]),
        ]));
        let arrays = vec![list];
        let err = match RowEncoder::new(&arrays, &["tags"]) {
            Err(e) => e,
            Ok(_) => panic!("a list column must be refused"),
        };
        assert_eq!(err.column, "tags");
        assert!(err.to_string().contains("\"tags\""), "{err}");
        assert!(err.to_string().contains("List"), "{err}");
    }

    #[test]
    fn stops_at_the_byte_budget() {
        let a: ArrayRef = Arc::new(StringArray::from(vec!["0123456789"; 100]));
        let arrays = vec![a];
        let enc = RowEncoder::new(&arrays, &["c"]).unwrap();
        let mut out = BytesMut::new();
        let next = enc.encode(0, &mut out, 50);
        assert_eq!(next, 5);
        assert_eq!(out.len(), 55);
        out.clear();
        assert_eq!(enc.encode(next, &mut out, usize::MAX), 100);
        assert_eq!(out.len(), 95 * 11);
    }
}
