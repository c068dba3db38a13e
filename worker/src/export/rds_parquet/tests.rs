//! The CSV → Arrow parser against values PostgreSQL writes, with the input split at every
//! possible place; and the Parquet files it produces, read back with parquet's own reader.

use super::builders::HEX;
use super::*;
use arrow::array::{
    Array, BinaryArray, BooleanArray, Float32Array, Float64Array, Int16Array, Int32Array,
    Int64Array, StringArray,
};
use arrow::record_batch::RecordBatch;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::basic::{LogicalType, Type as PhysicalType};
use protocol::{ColumnExport, ColumnType};

fn spec(name: &str, typname: &str) -> ColumnSpec {
    ColumnSpec {
        name: name.into(),
        kind: ColumnKind::from_typname(typname),
        typname: typname.into(),
    }
}

/// Quote a value the way PostgreSQL's CSV output does.
fn csv_field(out: &mut Vec<u8>, v: Option<&str>) {
    let Some(v) = v else { return };
    if v.is_empty() || v == "\\." || v.bytes().any(|b| b",\"\r\n".contains(&b)) {
        out.push(b'"');
        out.extend_from_slice(v.replace('"', "\"\"").as_bytes());
        out.push(b'"');
    } else {
        out.extend_from_slice(v.as_bytes());
    }
}

fn csv(rows: &[Vec<Option<&str>>]) -> Vec<u8> {
    let mut out = Vec::new();
    for row in rows {
        for (i, v) in row.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            csv_field(&mut out, *v);
        }
        out.push(b'\n');
    }
    out
}

/// Parse `pieces` with a batcher and return every record batch.
fn parse(specs: &[ColumnSpec], pieces: &[&[u8]], max_rows: usize) -> Vec<RecordBatch> {
    let mut b = Batcher::with_limits(specs, max_rows, BATCH_BYTES);
    let mut out = Vec::new();
    for piece in pieces {
        let mut rest = *piece;
        while !rest.is_empty() {
            let n = b.feed(rest).unwrap();
            rest = &rest[n..];
            if b.is_full() {
                out.push(b.take().finish(b.schema()).unwrap());
            }
        }
    }
    b.finish().unwrap();
    if b.buffered_rows() > 0 {
        out.push(b.take().finish(b.schema()).unwrap());
    }
    out
}

fn texts(batches: &[RecordBatch], col: usize) -> Vec<Option<String>> {
    batches
        .iter()
        .flat_map(|b| {
            let a = b
                .column(col)
                .as_any()
                .downcast_ref::<StringArray>()
                .unwrap();
            (0..a.len())
                .map(|i| a.is_valid(i).then(|| a.value(i).to_string()))
                .collect::<Vec<_>>()
        })
        .collect()
}

const NASTY: &[Option<&str>] = &[
    None,
    Some(""),
    Some("plain"),
    Some("a,b"),
    Some("say \"hi\""),
    Some("\""),
    Some("\"\""),
    Some("line1\nline2"),
    Some("cr\rlf\r\n"),
    Some("ünïcødé ✓ 日本語"),
    Some("\\."),
    Some("\\"),
    Some(","),
    Some("\n"),
    Some("x\"y,z\nw"),
    Some("NULL"),
];

#[test]
fn text_survives_every_split() {
    let specs = [spec("a", "text"), spec("b b", "varchar"), spec("c", "text")];
    let rows: Vec<Vec<Option<&str>>> = (0..NASTY.len())
        .map(|i| {
            vec![
                NASTY[i],
                NASTY[(i * 7 + 3) % NASTY.len()],
                NASTY[(i * 5 + 1) % NASTY.len()],
            ]
        })
        .collect();
    let data = csv(&rows);
    let want: Vec<Vec<Option<String>>> = (0..3)
        .map(|c| rows.iter().map(|r| r[c].map(str::to_string)).collect())
        .collect();
    let check = |batches: &[RecordBatch]| {
        for (c, w) in want.iter().enumerate() {
            assert_eq!(&texts(batches, c), w, "column {c}");
        }
    };
    check(&parse(&specs, &[&data], BATCH_ROWS));
    // One split anywhere, then two splits, then one byte at a time.
    for at in 0..=data.len() {
        check(&parse(&specs, &[&data[..at], &data[at..]], BATCH_ROWS));
    }
    for at in (0..data.len()).step_by(3) {
        for at2 in (at..data.len()).step_by(5) {
            check(&parse(
                &specs,
                &[&data[..at], &data[at..at2], &data[at2..]],
                BATCH_ROWS,
            ));
        }
    }
    let bytes: Vec<&[u8]> = data.chunks(1).collect();
    check(&parse(&specs, &bytes, BATCH_ROWS));
    // Small batches: stops after a full batch, the rest of the input goes to the next one.
    for max_rows in [1, 2, 3, 7] {
        let batches = parse(&specs, &[&data], max_rows);
        assert!(batches.iter().all(|b| b.num_rows() <= max_rows));
        assert_eq!(batches.len(), rows.len().div_ceil(max_rows));
        check(&batches);
    }
}

#[test]
fn typed_values() {
    let specs = [
        spec("i2", "int2"),
        spec("i4", "int4"),
        spec("i8", "int8"),
        spec("f4", "float4"),
        spec("f8", "float8"),
        spec("b", "bool"),
        spec("raw", "bytea"),
    ];
    let data = b"-32768,-2147483648,-9223372036854775808,NaN,-Infinity,t,\\x00ff10\n\
32767,2147483647,9223372036854775807,Infinity,1.7976931348623157e+308,f,\"\\x\"\n\
,,,-0,5e-324,,\n\
0,0,0,3.4028235e+38,0.1,t,\\xDEADbeef\n";
    let batches = parse(&specs, &[data], BATCH_ROWS);
    assert_eq!(batches.len(), 1);
    let b = &batches[0];
    let col = |i: usize| b.column(i).as_any();
    let i2 = col(0).downcast_ref::<Int16Array>().unwrap();
    assert_eq!(
        i2.iter().collect::<Vec<_>>(),
        [Some(i16::MIN), Some(i16::MAX), None, Some(0)]
    );
    let i4 = col(1).downcast_ref::<Int32Array>().unwrap();
    assert_eq!(
        i4.iter().collect::<Vec<_>>(),
        [Some(i32::MIN), Some(i32::MAX), None, Some(0)]
    );
    let i8 = col(2).downcast_ref::<Int64Array>().unwrap();
    assert_eq!(
        i8.iter().collect::<Vec<_>>(),
        [Some(i64::MIN), Some(i64::MAX), None, Some(0)]
    );
    let f4 = col(3).downcast_ref::<Float32Array>().unwrap();
    assert!(f4.value(0).is_nan());
    assert_eq!(f4.value(1), f32::INFINITY);
    assert_eq!(f4.value(2).to_bits(), (-0.0f32).to_bits());
    assert_eq!(f4.value(3), f32::MAX);
    let f8 = col(4).downcast_ref::<Float64Array>().unwrap();
    assert_eq!(f8.value(0), f64::NEG_INFINITY);
    assert_eq!(f8.value(1), f64::MAX);
    assert_eq!(f8.value(2).to_bits(), 1);
    assert_eq!(f8.value(3), 0.1);
    let bo = col(5).downcast_ref::<BooleanArray>().unwrap();
    assert_eq!(
        bo.iter().collect::<Vec<_>>(),
        [Some(true), Some(false), None, Some(true)]
    );
    let raw = col(6).downcast_ref::<BinaryArray>().unwrap();
    assert_eq!(raw.value(0), [0x00, 0xff, 0x10]);
    assert!(
        raw.is_valid(1) && raw.value(1).is_empty(),
        "empty bytea is not NULL"
    );
    assert!(raw.is_null(2));
    assert_eq!(raw.value(3), [0xde, 0xad, 0xbe, 0xef]);
}

#[test]
fn bad_input_is_a_clear_fatal_error() {
    let feed = |specs: &[ColumnSpec], data: &[u8]| {
        let mut b = Batcher::new(specs);
        b.feed(data).and_then(|_| b.finish())
    };
    let int = [spec("n", "int4")];
    for bad in [&b"x\n"[..], b"2147483648\n", b"-\n", b"1.5\n", b"\"\"\n"] {
        let e = feed(&int, bad).unwrap_err();
        assert!(!e.retryable);
        assert!(e.message.contains("\"n\" (int4)"), "{}", e.message);
    }
    assert!(feed(&[spec("n", "int2")], b"32768\n").is_err());
    assert!(feed(&[spec("b", "bool")], b"true\n").is_err());
    for bad in [&b"00\n"[..], b"\\x0\n", b"\\xzz\n"] {
        assert!(feed(&[spec("r", "bytea")], bad).is_err());
    }
    // Field count.
    let two = [spec("a", "text"), spec("b", "text")];
    assert!(feed(&two, b"1\n")
        .unwrap_err()
        .message
        .contains("1 fields, expected 2"));
    assert!(feed(&two, b"1,2,3\n")
        .unwrap_err()
        .message
        .contains("more than 2"));
    assert!(feed(&two, b"\"a\"x,b\n")
        .unwrap_err()
        .message
        .contains("closing quote"));
    // Truncated stream: retryable.
    let e = feed(&two, b"1,2\n3,\"open").unwrap_err();
    assert!(
        e.retryable && e.message.contains("after 1 complete rows"),
        "{}",
        e.message
    );
    // Text that is not UTF-8 fails when the batch is built.
    let mut b = Batcher::new(&[spec("t", "text")]);
    b.feed(b"\xff\xfe\n").unwrap();
    assert!(b.take().finish(b.schema()).is_err());
}

#[test]
fn columns_need_types_and_no_transform() {
    let mut c = ColumnExport {
        name: "a".into(),
        transform: None,
        pg_type: None,
    };
    let e = column_specs(std::slice::from_ref(&c)).unwrap_err();
    assert!(
        !e.retryable && e.message.contains("pg_type"),
        "{}",
        e.message
    );
    c.pg_type = Some(ColumnType {
        typname: "_int4".into(),
        data_type: "ARRAY".into(),
        char_max_length: None,
        numeric_precision: None,
        datetime_precision: None,
    });
    assert_eq!(
        column_specs(std::slice::from_ref(&c)).unwrap()[0].kind,
        ColumnKind::Text
    );
    c.transform = Some(protocol::Transform::Prefix { value: "x".into() });
    assert!(column_specs(&[c]).is_err());
    assert!(column_specs(&[]).is_err());
}

fn encode(specs: &[ColumnSpec], data: &[u8], part_size: u64) -> (Vec<Bytes>, u64) {
    let mut enc = ParquetEncoder::new(specs, 6, part_size).unwrap();
    let mut parts = Vec::new();
    for piece in data.chunks(1000) {
        enc.feed(piece, &mut parts).unwrap();
    }
    let rows = enc.finish(&mut parts).unwrap();
    (parts, rows)
}

#[test]
fn writes_rds_like_parquet() {
    let specs = [
        spec("id", "int8"),
        spec("small", "int2"),
        spec("Odd \"Col\" ", "text"),
        spec("raw", "bytea"),
    ];
    let mut data = Vec::new();
    let rows = BATCH_ROWS + 1000;
    for i in 0..rows {
        let text = if i % 10 == 0 {
            String::new()
        } else {
            format!("v{i},\"x\"")
        };
        data.extend_from_slice(format!("{i},{},", i % 30_000).as_bytes());
        if i % 7 == 0 {
            // NULL
        } else {
            csv_field(&mut data, Some(&text));
        }
        data.extend_from_slice(format!(",\\x{:08x}\n", i).as_bytes());
    }
    let (parts, count) = encode(&specs, &data, 64 * 1024);
    assert_eq!(count, rows as u64);
    assert!(parts.len() > 2);
    assert!(parts[..parts.len() - 1]
        .iter()
        .all(|p| p.len() == 64 * 1024));
    let file = Bytes::from(parts.concat());

    let builder = ParquetRecordBatchReaderBuilder::try_new(file).unwrap();
    let meta = builder.metadata().clone();
    assert_eq!(meta.num_row_groups(), 2, "a row group per batch");
    assert_eq!(meta.row_group(0).num_rows(), BATCH_ROWS as i64);
    let schema = meta.file_metadata().schema_descr();
    assert_eq!(schema.root_schema().name(), "spark_schema");
    let names: Vec<&str> = schema.columns().iter().map(|c| c.name()).collect();
    assert_eq!(names, ["id", "small", "Odd \"Col\" ", "raw"]);
    let c = schema.columns();
    assert_eq!(c[0].physical_type(), PhysicalType::INT64);
    assert_eq!(c[1].physical_type(), PhysicalType::INT32);
    match c[1].logical_type_ref() {
        Some(LogicalType::Integer(t)) => assert!(t.bit_width == 16 && t.is_signed),
        other => panic!("int2 annotated {other:?}"),
    }
    assert_eq!(c[2].physical_type(), PhysicalType::BYTE_ARRAY);
    assert_eq!(c[2].logical_type_ref(), Some(&LogicalType::String));
    assert_eq!(c[3].physical_type(), PhysicalType::BYTE_ARRAY);
    assert_eq!(c[3].logical_type_ref(), None);
    assert!(c.iter().all(|c| c.self_type().is_optional()));
    for rg in meta.row_groups() {
        for col in rg.columns() {
            assert!(matches!(
                col.compression(),
                parquet::basic::Compression::GZIP(_)
            ));
        }
    }
    assert!(meta
        .file_metadata()
        .key_value_metadata()
        .is_none_or(|kv| kv.iter().all(|k| k.key != "ARROW:schema")));

    let mut seen = 0usize;
    for batch in builder.build().unwrap() {
        let batch = batch.unwrap();
        let ids = batch
            .column(0)
            .as_any()
            .downcast_ref::<Int64Array>()
            .unwrap();
        let text = batch
            .column(2)
            .as_any()
            .downcast_ref::<StringArray>()
            .unwrap();
        let raw = batch
            .column(3)
            .as_any()
            .downcast_ref::<BinaryArray>()
            .unwrap();
        for r in 0..batch.num_rows() {
            let i = ids.value(r) as usize;
            assert_eq!(i, seen);
            if i.is_multiple_of(7) {
                assert!(text.is_null(r));
            } else if i.is_multiple_of(10) {
                assert_eq!(text.value(r), "");
            } else {
                assert_eq!(text.value(r), format!("v{i},\"x\""));
            }
            assert_eq!(raw.value(r), (i as u32).to_be_bytes());
            seen += 1;
        }
    }
    assert_eq!(seen, rows);
}

#[test]
fn empty_input_is_a_valid_empty_file() {
    let specs = [spec("a", "int4"), spec("b", "text")];
    let (parts, rows) = encode(&specs, b"", 5 << 20);
    assert_eq!(rows, 0);
    assert_eq!(parts.len(), 1);
    let builder = ParquetRecordBatchReaderBuilder::try_new(parts[0].clone()).unwrap();
    assert_eq!(builder.metadata().file_metadata().num_rows(), 0);
    assert_eq!(builder.schema().fields().len(), 2);
    assert_eq!(builder.build().unwrap().count(), 0);
}

#[test]
fn hex_table() {
    for b in 0..=255u8 {
        let want = (b as char).to_digit(16).map(|d| d as u8).unwrap_or(0xff);
        assert_eq!(HEX[usize::from(b)], want, "{b}");
    }
}
