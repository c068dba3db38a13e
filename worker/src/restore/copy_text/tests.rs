//! The COPY text encoder, value by value and type by type.

use super::datetime::{civil_from_days, write_time, write_timestamp};
use super::*;
use arrow::array::{
    BinaryArray, BinaryViewArray, BooleanArray, Date32Array, Date64Array, Decimal128Array,
    DictionaryArray, FixedSizeBinaryArray, Float32Array, Float64Array, Int16Array, Int32Array,
    Int64Array, Int8Array, LargeBinaryArray, LargeStringArray, ListArray, NullArray, StringArray,
    StringViewArray, Time32SecondArray, Time64MicrosecondArray, Time64NanosecondArray,
    TimestampMicrosecondArray, TimestampMillisecondArray, TimestampNanosecondArray,
    TimestampSecondArray, UInt64Array, UInt8Array,
};
use arrow::datatypes::{Int32Type, TimeUnit};
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
    let tz = TimestampMillisecondArray::from(vec![Some(1_704_110_400_100)]).with_timezone("UTC");
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
