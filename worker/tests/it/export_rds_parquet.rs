//! `export_chunk` in the `rds-parquet` format against a real PostgreSQL and a real
//! S3-compatible server: every type of the RDS mapping, read back with parquet's own reader,
//! must equal the source (floats bitwise, text equal to PostgreSQL's `::text`, bytea bytes,
//! NULL vs "" apart), in gzip column chunks, several row groups and several upload parts.
//!
//! Throughput against the CSV path (a measurement, not a check):
//! cargo test -p pgfleet-worker --release --test export_rds_parquet -- --ignored --nocapture

use crate::common::*;
use arrow::array::{
    Array, BinaryArray, BooleanArray, Float32Array, Float64Array, Int16Array, Int32Array,
    Int64Array, RecordBatch, StringArray,
};
use bytes::Bytes;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::basic::{Compression, LogicalType, Type as PhysicalType};
use parquet::file::metadata::ParquetMetaData;
use protocol::{
    ChunkRange, ColumnExport, ColumnType, ExportChunk, ObjectLocation, OutputFormat, OutputTarget,
    QualifiedName,
};
use std::collections::HashMap;
use std::time::Instant;
use worker::export::export_chunk;

const ROWS: i64 = 150_000;
/// Chunk 0 holds 100k rows: two row groups, and ≥12 MiB of Parquet (three 5 MiB parts).
const SPLIT: i64 = 100_001;

fn table() -> QualifiedName {
    QualifiedName::new("public", "Rds \"Types\"")
}

/// Column names in table order; `odd col` has a space, `Mixed"Q` a quote.
const COLUMNS: &[&str] = &[
    "id", "i2", "i4", "f4", "f8", "ok", "raw", "amount", "note", "at", "tags", "odd col",
    "Mixed\"Q", "blob",
];

const SCHEMA: &str = r#"
CREATE TABLE public."Rds ""Types""" (
    id int8 PRIMARY KEY, i2 int2, i4 int4, f4 float4, f8 float8, ok bool, raw bytea,
    amount numeric(14,3), note text, at timestamptz, tags int[], "odd col" varchar(20),
    "Mixed""Q" text, blob bytea);
"#;

/// Text values PostgreSQL's CSV output has to quote, escape or keep apart, plus 64 KiB.
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
    Some("tab\there"),
    Some("ünïcødé ✓ 日本語 🦀"),
    Some("\\."),
    Some("\\"),
    Some(","),
    Some("\n"),
    Some("x\"y,z\nw"),
    Some("NULL"),
    Some("\\N"),
];

async fn create_table(db: &ScratchDb) {
    db.client.batch_execute(SCHEMA).await.expect("create table");
    let nasty: Vec<Option<String>> = NASTY.iter().map(|v| v.map(str::to_string)).collect();
    let n = NASTY.len() as i64;
    db.client
        .execute(
            &format!(
                r#"INSERT INTO {t}
                 SELECT g,
                   CASE WHEN g % 13 = 0 THEN NULL WHEN g % 2 = 0 THEN -32768 + g % 65536
                        ELSE 32767 - g % 1000 END,
                   CASE WHEN g % 17 = 0 THEN NULL WHEN g % 3 = 0 THEN -2147483648 + g
                        ELSE 2147483647 - g END,
                   CASE g % 9 WHEN 0 THEN 'NaN'::float4 WHEN 1 THEN 'Infinity'
                        WHEN 2 THEN '-Infinity' WHEN 3 THEN NULL WHEN 4 THEN '-0'
                        WHEN 5 THEN 1.17549435e-38 ELSE (g::float4 / 7) END,
                   CASE g % 10 WHEN 0 THEN 'NaN'::float8 WHEN 1 THEN 'Infinity'
                        WHEN 2 THEN '-Infinity' WHEN 3 THEN NULL WHEN 4 THEN 5e-324
                        WHEN 5 THEN 1.7976931348623157e308 ELSE g::float8 / 3 END,
                   CASE g % 3 WHEN 0 THEN true WHEN 1 THEN false END,
                   CASE g % 5 WHEN 0 THEN NULL WHEN 1 THEN '\x'::bytea
                        WHEN 2 THEN (SELECT string_agg(set_byte('\x00'::bytea, 0, b), ''::bytea
                                      ORDER BY b) FROM generate_series(0, 255) b)
                        ELSE int8send(g) END,
                   CASE WHEN g % 11 = 0 THEN NULL WHEN g % 11 = 1 THEN 'NaN'::numeric
                        ELSE g * 1.001 - 50000 END,
                   CASE WHEN g % 997 = 0 THEN repeat('€x', 21846)
                        ELSE ($1::text[])[1 + g % $2] END,
                   CASE WHEN g % 19 = 0 THEN NULL WHEN g = 1 THEN 'infinity'::timestamptz
                        ELSE '2024-02-29 23:59:59.123456+00'::timestamptz
                             + g * interval '1 hour 1.5 second' END,
                   CASE WHEN g % 7 = 0 THEN NULL WHEN g % 7 = 1 THEN '{{}}'::int[]
                        ELSE ARRAY[g::int4, -g::int4, NULL] END,
                   CASE WHEN g % 4 = 0 THEN NULL WHEN g % 4 = 1 THEN '' ELSE 'v ' || g END,
                   ($1::text[])[1 + (g * 7) % $2],
                   decode(md5(g::text || 'a') || md5(random()::text) || md5(random()::text)
                          || md5(random()::text) || md5(random()::text) || md5(random()::text)
                          || md5(random()::text) || md5(random()::text) || md5(random()::text),
                          'hex')
                 FROM generate_series(1, $3::int8) g"#,
                t = table().quoted()
            ),
            &[&nasty, &n, &ROWS],
        )
        .await
        .expect("fill table");
    db.client
        .batch_execute(&format!("ANALYZE {}", table().quoted()))
        .await
        .expect("analyze");
}

/// Column types from the catalog, as the coordinator sends them.
async fn column_types(db: &ScratchDb, t: &QualifiedName) -> Vec<ColumnExport> {
    db.client
        .query(
            "SELECT a.attname::text, t.typname::text, format_type(a.atttypid, NULL)
               FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid
              WHERE a.attrelid = $1::text::regclass AND a.attnum > 0 AND NOT a.attisdropped
              ORDER BY a.attnum",
            &[&t.quoted()],
        )
        .await
        .expect("read catalog")
        .iter()
        .map(|r| ColumnExport {
            name: r.get(0),
            transform: None,
            pg_type: Some(ColumnType {
                typname: r.get(1),
                data_type: r.get(2),
                char_max_length: None,
                numeric_precision: None,
                datetime_precision: None,
            }),
        })
        .collect()
}

fn rds_task(
    db: &ScratchDb,
    columns: Vec<ColumnExport>,
    range: ChunkRange,
    location: ObjectLocation,
    key: &str,
) -> ExportChunk {
    ExportChunk {
        source: db.source(),
        snapshot: None,
        table: table(),
        only: true,
        columns,
        range,
        output: OutputTarget {
            location,
            key: key.to_string(),
            format: OutputFormat::RdsParquet,
            gzip_level: 6,
            part_size: MIN_PART,
            parts_in_flight: 2,
            s3: s3_options(),
        },
    }
}

/// One source row, every value as the test compares it.
#[derive(Debug, Clone, PartialEq)]
struct Row {
    i2: Option<i16>,
    i4: Option<i32>,
    f4: Option<u32>,
    f8: Option<u64>,
    ok: Option<bool>,
    raw: Option<Vec<u8>>,
    /// numeric, text, timestamptz, int[], varchar, text: PostgreSQL's own text output.
    texts: [Option<String>; 6],
    blob: Option<Vec<u8>>,
}

async fn source_rows(db: &ScratchDb) -> HashMap<i64, Row> {
    // The text the worker's session prints (it sets these for its transaction).
    db.client
        .batch_execute("SET DateStyle = 'ISO'; SET IntervalStyle = 'postgres'")
        .await
        .expect("session settings");
    db.client
        .query(
            &format!(
                "SELECT id, i2, i4, f4, f8, ok, raw, amount::text, note, at::text, tags::text,
                        \"odd col\"::text, \"Mixed\"\"Q\", blob FROM {}",
                table().quoted()
            ),
            &[],
        )
        .await
        .expect("read source")
        .iter()
        .map(|r| {
            let row = Row {
                i2: r.get(1),
                i4: r.get(2),
                f4: r.get::<_, Option<f32>>(3).map(f32::to_bits),
                f8: r.get::<_, Option<f64>>(4).map(f64::to_bits),
                ok: r.get(5),
                raw: r.get(6),
                texts: [
                    r.get(7),
                    r.get(8),
                    r.get(9),
                    r.get(10),
                    r.get(11),
                    r.get(12),
                ],
                blob: r.get(13),
            };
            (r.get::<_, i64>(0), row)
        })
        .collect()
}

fn column<'a, T: 'static>(batch: &'a RecordBatch, name: &str) -> &'a T {
    batch
        .column_by_name(name)
        .unwrap_or_else(|| panic!("no field {name:?}"))
        .as_any()
        .downcast_ref::<T>()
        .unwrap_or_else(|| {
            panic!(
                "field {name:?} has type {}",
                batch.schema().field_with_name(name).unwrap().data_type()
            )
        })
}

fn opt<A: Array, T>(a: &A, i: usize, get: impl Fn(&A, usize) -> T) -> Option<T> {
    a.is_valid(i).then(|| get(a, i))
}

/// Check the file's layout and decode its rows.
fn read_parquet(body: Bytes) -> (ParquetMetaData, Vec<(i64, Row)>) {
    let builder = ParquetRecordBatchReaderBuilder::try_new(body).expect("a valid Parquet file");
    let meta = builder.metadata().as_ref().clone();
    let schema = meta.file_metadata().schema_descr();
    let names: Vec<&str> = schema.columns().iter().map(|c| c.name()).collect();
    assert_eq!(names, COLUMNS, "field names are the column names exactly");
    for c in schema.columns() {
        assert!(c.self_type().is_optional(), "{} is OPTIONAL", c.name());
        let (physical, logical) = (c.physical_type(), c.logical_type_ref());
        match c.name() {
            "id" => assert_eq!((physical, logical), (PhysicalType::INT64, None)),
            "i4" => assert_eq!((physical, logical), (PhysicalType::INT32, None)),
            "i2" => {
                assert_eq!(physical, PhysicalType::INT32);
                match logical {
                    Some(LogicalType::Integer(t)) => assert!(t.bit_width == 16 && t.is_signed),
                    other => panic!("int2 is annotated {other:?}"),
                }
            }
            "f4" => assert_eq!((physical, logical), (PhysicalType::FLOAT, None)),
            "f8" => assert_eq!((physical, logical), (PhysicalType::DOUBLE, None)),
            "ok" => assert_eq!((physical, logical), (PhysicalType::BOOLEAN, None)),
            "raw" | "blob" => assert_eq!((physical, logical), (PhysicalType::BYTE_ARRAY, None)),
            _ => assert_eq!(
                (physical, logical),
                (PhysicalType::BYTE_ARRAY, Some(&LogicalType::String)),
                "{}",
                c.name()
            ),
        }
    }
    for rg in meta.row_groups() {
        for col in rg.columns() {
            assert!(
                matches!(col.compression(), Compression::GZIP(_)),
                "{:?} is {:?}",
                col.column_path(),
                col.compression()
            );
        }
    }
    let mut rows = Vec::new();
    for batch in builder.build().expect("reader") {
        let b = batch.expect("decode a batch");
        let id = column::<Int64Array>(&b, "id");
        let i2 = column::<Int16Array>(&b, "i2");
        let i4 = column::<Int32Array>(&b, "i4");
        let f4 = column::<Float32Array>(&b, "f4");
        let f8 = column::<Float64Array>(&b, "f8");
        let ok = column::<BooleanArray>(&b, "ok");
        let raw = column::<BinaryArray>(&b, "raw");
        let blob = column::<BinaryArray>(&b, "blob");
        let texts: Vec<&StringArray> = ["amount", "note", "at", "tags", "odd col", "Mixed\"Q"]
            .iter()
            .map(|n| column::<StringArray>(&b, n))
            .collect();
        for i in 0..b.num_rows() {
            assert!(id.is_valid(i));
            let row = Row {
                i2: opt(i2, i, |a, i| a.value(i)),
                i4: opt(i4, i, |a, i| a.value(i)),
                f4: opt(f4, i, |a, i| a.value(i).to_bits()),
                f8: opt(f8, i, |a, i| a.value(i).to_bits()),
                ok: opt(ok, i, |a, i| a.value(i)),
                raw: opt(raw, i, |a, i| a.value(i).to_vec()),
                texts: std::array::from_fn(|k| opt(texts[k], i, |a, i| a.value(i).to_string())),
                blob: opt(blob, i, |a, i| a.value(i).to_vec()),
            };
            rows.push((id.value(i), row));
        }
    }
    (meta, rows)
}

#[derive(Clone, Copy, Debug)]
enum Sink {
    File,
    S3,
}

async fn round_trip(sink: Sink) {
    let db = ScratchDb::create().await;
    create_table(&db).await;
    let columns = column_types(&db, &table()).await;
    assert_eq!(
        columns.iter().map(|c| c.name.as_str()).collect::<Vec<_>>(),
        COLUMNS
    );
    let ctx = worker_ctx();
    let s3 = ctx.s3(&s3_options()).await;
    let file_root = std::env::temp_dir().join(format!("pgfleet-wtest-{}", random_suffix()));
    let (location, bucket) = match sink {
        Sink::S3 => {
            let bucket = create_bucket(&s3).await;
            let loc = ObjectLocation::S3 {
                bucket: bucket.clone(),
                prefix: "exports/rds-run-1/".into(),
            };
            (loc, Some(bucket))
        }
        Sink::File => (
            ObjectLocation::File {
                root: file_root.to_string_lossy().to_string(),
            },
            None,
        ),
    };
    let key = |seq: u32| {
        format!("db/public.Rds__Types_/1/part-{seq:05}-0b4ad4b2-4b1c-4a44-9a58-5b5d3a6d7c10-c000.gz.parquet")
    };
    let ranges = [
        ChunkRange::Key {
            column: "id".into(),
            lo: None,
            hi: Some(SPLIT),
        },
        ChunkRange::Key {
            column: "id".into(),
            lo: Some(SPLIT),
            hi: None,
        },
        // Empty: still a valid file with the schema and no rows.
        ChunkRange::Key {
            column: "id".into(),
            lo: Some(10 * ROWS),
            hi: None,
        },
    ];

    let mut exported: HashMap<i64, Row> = HashMap::new();
    for (seq, range) in ranges.into_iter().enumerate() {
        let key = key(seq as u32);
        let t = rds_task(&db, columns.clone(), range, location.clone(), &key);
        let started = Instant::now();
        let stats = export_chunk(&ctx, &t)
            .await
            .unwrap_or_else(|e| panic!("export failed: {e}"));
        println!(
            "{sink:?} chunk {seq}: {} rows, {} bytes in {:?}",
            stats.rows,
            stats.bytes,
            started.elapsed()
        );
        let body = match &bucket {
            Some(b) => {
                let full_key = location.key(&key);
                let body = get_object(&s3, b, &full_key).await;
                let head = s3
                    .head_object()
                    .bucket(b)
                    .key(&full_key)
                    .send()
                    .await
                    .expect("head object");
                let etag = head
                    .e_tag()
                    .unwrap_or_default()
                    .trim_matches('"')
                    .to_string();
                let parts = (body.len() as u64).div_ceil(MIN_PART);
                if parts > 1 {
                    assert!(
                        etag.ends_with(&format!("-{parts}")),
                        "etag {etag}, {parts} parts"
                    );
                }
                assert_eq!(head.content_type(), Some("application/vnd.apache.parquet"));
                body
            }
            None => std::fs::read(file_root.join(&key)).expect("read exported file"),
        };
        assert_eq!(stats.bytes, body.len() as u64, "bytes = stored object size");
        assert_eq!(&body[..4], b"PAR1");
        let (meta, rows) = read_parquet(Bytes::from(body));
        assert_eq!(stats.rows, rows.len() as u64);
        assert_eq!(meta.file_metadata().num_rows() as u64, stats.rows);
        match seq {
            0 => {
                assert_eq!(stats.rows, (SPLIT - 1) as u64);
                // A row group per batch: 64k rows or 32 MiB of values, whichever comes first.
                assert!(
                    meta.num_row_groups() >= 2,
                    "{} row groups",
                    meta.num_row_groups()
                );
                assert!(meta.row_groups().iter().all(|rg| rg.num_rows() <= 65_536));
                assert!(
                    stats.bytes >= 12 << 20 && stats.bytes.div_ceil(MIN_PART) >= 3,
                    "chunk 0 must need several 5 MiB parts: {} bytes",
                    stats.bytes
                );
            }
            2 => {
                assert_eq!(stats.rows, 0);
                assert_eq!(meta.num_row_groups(), 0);
            }
            _ => {}
        }
        for (id, row) in rows {
            assert!(exported.insert(id, row).is_none(), "id {id} exported twice");
        }
    }

    let want = source_rows(&db).await;
    assert_eq!(exported.len(), want.len());
    let mut ids: Vec<&i64> = want.keys().collect();
    ids.sort();
    for id in ids {
        assert_eq!(exported.get(id), Some(&want[id]), "row {id}");
    }
    // The data really has what the test claims to cover.
    let all: Vec<&Row> = want.values().collect();
    assert!(all.iter().any(|r| r.f4 == Some(f32::NAN.to_bits())));
    assert!(all
        .iter()
        .any(|r| r.f8 == Some(f64::NEG_INFINITY.to_bits())));
    assert!(all.iter().any(|r| r.raw.as_deref() == Some(&[][..])));
    assert!(all
        .iter()
        .any(|r| r.raw.as_ref().is_some_and(|b| b.len() == 256)));
    assert!(all.iter().any(|r| r.texts[1].is_none()));
    assert!(all.iter().any(|r| r.texts[1].as_deref() == Some("")));
    assert!(all
        .iter()
        .any(|r| r.texts[1].as_ref().is_some_and(|t| t.len() > 64 * 1024)));
    assert!(all
        .iter()
        .any(|r| r.texts[2].as_deref() == Some("infinity")));
    assert!(all.iter().any(|r| r.texts[3].as_deref() == Some("{}")));

    match &bucket {
        Some(b) => delete_bucket(&s3, b).await,
        None => {
            // Only the final files: no temporaries left behind.
            let folder = file_root.join("db/public.Rds__Types_/1");
            let mut names: Vec<String> = std::fs::read_dir(&folder)
                .expect("table folder")
                .flatten()
                .map(|e| e.file_name().to_string_lossy().to_string())
                .collect();
            names.sort();
            assert_eq!(
                names,
                (0..3)
                    .map(key)
                    .map(|k| k.rsplit('/').next().unwrap().to_string())
                    .collect::<Vec<_>>()
            );
            std::fs::remove_dir_all(&file_root).expect("clean up");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rds_parquet_to_files() {
    round_trip(Sink::File).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rds_parquet_to_s3_multipart() {
    round_trip(Sink::S3).await;
}

/// A task without column types (or with a transform) is refused before anything is opened;
/// a value that does not fit the declared type fails the task, and leaves no object.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_tasks_fail_cleanly() {
    let db = ScratchDb::create().await;
    db.client
        .batch_execute(
            "CREATE TABLE t (id int8 PRIMARY KEY, v text); INSERT INTO t VALUES (1, 'x'), (2, 'y')",
        )
        .await
        .unwrap();
    let ctx = worker_ctx();
    let root = std::env::temp_dir().join(format!("pgfleet-wtest-{}", random_suffix()));
    let location = ObjectLocation::File {
        root: root.to_string_lossy().to_string(),
    };
    let t = QualifiedName::new("public", "t");
    let mut columns = column_types(&db, &t).await;
    let mut task = rds_task(
        &db,
        columns.clone(),
        ChunkRange::All,
        location.clone(),
        "a.gz.parquet",
    );
    task.table = t.clone();

    let mut untyped = task.clone();
    untyped.columns[1].pg_type = None;
    let err = export_chunk(&ctx, &untyped).await.unwrap_err();
    assert!(!err.retryable, "{err}");
    assert!(
        err.message.contains("\"v\"") && err.message.contains("pg_type"),
        "{err}"
    );

    // The coordinator says int4 but the column holds text.
    columns[1].pg_type.as_mut().unwrap().typname = "int4".into();
    let mut wrong = task.clone();
    wrong.columns = columns;
    let err = export_chunk(&ctx, &wrong).await.unwrap_err();
    assert!(!err.retryable, "{err}");
    assert!(
        err.message.contains("\"v\" (int4)") && err.message.contains("\"x\""),
        "{err}"
    );
    assert!(err.message.contains("public.t"), "names the table: {err}");
    assert!(!root.join("a.gz.parquet").exists());

    // The pool is fine afterwards and a correct task works.
    let stats = export_chunk(&ctx, &task).await.expect("good task");
    assert_eq!(stats.rows, 2);
    let leftovers: Vec<_> = std::fs::read_dir(&root)
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert_eq!(leftovers.len(), 1, "{leftovers:?}");
    std::fs::remove_dir_all(&root).unwrap();
}

// ---- throughput ------------------------------------------------------------------------------

const BENCH_ROWS: i64 = 1_000_000;

/// A mixed table: integers, a float, a bool, short and medium text, a timestamp, a numeric.
const BENCH_SCHEMA: &str = "
CREATE TABLE bench (id int8 PRIMARY KEY, account int4, qty int2, price float8, paid bool,
    sku text, note text, created timestamptz, amount numeric(12,2));
INSERT INTO bench
SELECT g, g % 100000, (g % 300)::int2, g * 0.37, g % 3 = 0, 'SKU-' || (g % 5000),
       CASE WHEN g % 10 = 0 THEN NULL ELSE 'lorem ipsum dolor sit amet ' || md5(g::text) END,
       '2024-01-01'::timestamptz + g * interval '17 seconds', (g % 100000) / 7.0
  FROM generate_series(1, 1000000) g;
";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "measurement; run in release mode with --ignored --nocapture"]
async fn throughput_vs_csv() {
    let db = ScratchDb::create().await;
    db.client
        .batch_execute(BENCH_SCHEMA)
        .await
        .expect("bench table");
    db.client
        .batch_execute("VACUUM ANALYZE bench")
        .await
        .expect("vacuum");
    let t = QualifiedName::new("public", "bench");
    let columns = column_types(&db, &t).await;
    let ctx = worker_ctx();
    let root = std::env::temp_dir().join(format!("pgfleet-wbench-{}", random_suffix()));
    let location = ObjectLocation::File {
        root: root.to_string_lossy().to_string(),
    };
    let mut base = rds_task(&db, columns.clone(), ChunkRange::All, location, "x");
    base.table = t;
    base.output.part_size = 64 << 20;

    let mut csv_bytes = 0u64;
    for (format, key) in [
        (OutputFormat::Csv, "bench.csv"),
        (OutputFormat::CsvGz, "bench.csv.gz"),
        (OutputFormat::RdsParquet, "bench.gz.parquet"),
        (OutputFormat::Csv, "bench2.csv"),
        (OutputFormat::RdsParquet, "bench2.gz.parquet"),
    ] {
        let mut task = base.clone();
        task.output.format = format;
        task.output.key = key.into();
        if format != OutputFormat::RdsParquet {
            for c in &mut task.columns {
                c.pg_type = None;
            }
        }
        let started = Instant::now();
        let stats = export_chunk(&ctx, &task).await.expect("export");
        let secs = started.elapsed().as_secs_f64();
        assert_eq!(stats.rows, BENCH_ROWS as u64);
        if format == OutputFormat::Csv {
            csv_bytes = stats.bytes;
        }
        println!(
            "export_chunk {:<12} {:>6.2} s {:>9.0} rows/s {:>6.1} MB/s of CSV  -> {:>5.1} MB",
            format.extension(),
            secs,
            BENCH_ROWS as f64 / secs,
            csv_bytes as f64 / 1e6 / secs,
            stats.bytes as f64 / 1e6
        );
    }

    // The encoder alone, on the CSV PostgreSQL sent (minus the header), in 64 KiB pieces.
    let csv = std::fs::read(root.join("bench.csv")).unwrap();
    let body = &csv[csv.iter().position(|&c| c == b'\n').unwrap() + 1..];
    let specs = worker::export::rds_parquet::column_specs(&columns).unwrap();
    let mut best = f64::MAX;
    let mut out_bytes = 0;
    for _ in 0..2 {
        let started = Instant::now();
        let mut enc =
            worker::export::rds_parquet::ParquetEncoder::new(&specs, 6, 64 << 20).unwrap();
        let mut parts = Vec::new();
        for piece in body.chunks(64 * 1024) {
            enc.feed(piece, &mut parts).unwrap();
        }
        assert_eq!(enc.finish(&mut parts).unwrap(), BENCH_ROWS as u64);
        best = best.min(started.elapsed().as_secs_f64());
        out_bytes = parts.iter().map(|p| p.len()).sum::<usize>();
    }
    println!(
        "encoder only (1 thread)  {:>6.2} s {:>9.0} rows/s {:>6.1} MB/s of CSV  -> {:>5.1} MB",
        best,
        BENCH_ROWS as f64 / best,
        body.len() as f64 / 1e6 / best,
        out_bytes as f64 / 1e6
    );
    // Where the time goes: parsing into Arrow batches alone, then gzip levels.
    let started = Instant::now();
    let mut batcher = worker::export::rds_parquet::Batcher::new(&specs);
    let mut batches = Vec::new();
    for piece in body.chunks(64 * 1024) {
        let mut rest = piece;
        while !rest.is_empty() {
            let n = batcher.feed(rest).unwrap();
            rest = &rest[n..];
            if batcher.is_full() {
                batches.push(batcher.take().finish(batcher.schema()).unwrap());
            }
        }
    }
    batches.push(batcher.take().finish(batcher.schema()).unwrap());
    let secs = started.elapsed().as_secs_f64();
    println!(
        "parse to Arrow only       {:>6.2} s {:>9.0} rows/s {:>6.1} MB/s of CSV",
        secs,
        BENCH_ROWS as f64 / secs,
        body.len() as f64 / 1e6 / secs
    );
    for level in [0, 1, 6] {
        let started = Instant::now();
        let mut file = worker::export::rds_parquet::ParquetFile::new(
            batcher.schema().clone(),
            level,
            64 << 20,
        )
        .unwrap();
        for b in &batches {
            file.write(b).unwrap();
        }
        let bytes: usize = file.finish().unwrap().iter().map(|p| p.len()).sum();
        let secs = started.elapsed().as_secs_f64();
        println!(
            "Parquet write, gzip {level}     {:>6.2} s {:>9.0} rows/s {:>6.1} MB/s of CSV  -> {:>5.1} MB",
            secs,
            BENCH_ROWS as f64 / secs,
            body.len() as f64 / 1e6 / secs,
            bytes as f64 / 1e6
        );
    }
    std::fs::remove_dir_all(&root).unwrap();
}
