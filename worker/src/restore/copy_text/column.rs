//! One column of a record batch, downcast once to its concrete array type, writing any of its
//! rows as a COPY text field.

use super::datetime::{write_date, write_time, write_timestamp};
use super::numbers::{write_decimal, write_f32, write_f64};
use super::text::{write_bytea, write_text};
use super::UnsupportedType;
use arrow::array::{
    Array, AsArray, BinaryArray, BinaryViewArray, BooleanArray, FixedSizeBinaryArray,
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

/// COPY text's NULL.
const NULL: &[u8] = b"\\N";

/// Values and validity of a primitive array, borrowed.
pub(super) struct Prim<'a, T> {
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
pub(super) enum Col<'a> {
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
    pub(super) fn new(array: &'a dyn Array, name: &str) -> Result<Self, UnsupportedType> {
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
    pub(super) fn write(&self, row: usize, out: &mut BytesMut) {
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
