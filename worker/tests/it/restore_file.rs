//! `restore_file` end to end against a real PostgreSQL (and, once, a real S3-compatible server):
//! Parquet files built the way an RDS snapshot export builds them (ints/floats/bool/bytea typed,
//! everything else PostgreSQL's text output, gzip, several row groups) load exactly, once, in
//! one transaction with their ledger row; bad files, bad data and bad tasks fail clearly and
//! leave nothing behind. Missing services fail the tests.
//!
//! The throughput measurement is ignored by default:
//! cargo test -p pgfleet-worker --release --test restore_file -- --ignored --nocapture throughput

use crate::common::*;
use arrow::array::{
    ArrayRef, BinaryArray, BooleanArray, Float32Array, Float64Array, Int16Array, Int32Array,
    Int64Array, StringArray,
};
use arrow::datatypes::{DataType, Field, Schema};
use arrow::record_batch::RecordBatch;
use bytes::BytesMut;
use fleet_io::clients::Clients;
use fleet_io::error::TaskError;
use fleet_io::ledger;
use futures::{SinkExt, TryStreamExt};
use parquet::arrow::arrow_writer::ArrowWriterOptions;
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, GzipLevel};
use parquet::file::properties::WriterProperties;
use protocol::{
    LedgerKey, ObjectLocation, ObjectRef, PgConn, QualifiedName, RestoreColumn, RestoreFile,
    RowGroupRange,
};
use std::path::{Path, PathBuf};
use std::pin::pin;
use std::sync::Arc;
use std::time::Instant;
use tokio_postgres::types::Type;
use tokio_postgres::SimpleQueryMessage;
use worker::export::ChunkStats;
use worker::restore::restore_file;

const EXPORT: &str = "s3://rds-exports/snap-test/";

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

/// A scratch folder for Parquet files, removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> Self {
        let p = std::env::temp_dir().join(format!("pgfleet-restore-{}", random_suffix()));
        std::fs::create_dir_all(&p).expect("create temp dir");
        Self(p)
    }

    fn location(&self) -> ObjectLocation {
        ObjectLocation::File {
            root: self.0.to_string_lossy().into_owned(),
        }
    }

    fn path(&self, key: &str) -> PathBuf {
        self.0.join(key)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A scratch database with the ledger created, and a context whose pools write to it.
async fn setup() -> (ScratchDb, Clients) {
    let db = ScratchDb::create().await;
    db.client
        .batch_execute(ledger::LEDGER_DDL)
        .await
        .expect("create ledger");
    // Idempotent.
    db.client
        .batch_execute(ledger::LEDGER_DDL)
        .await
        .expect("ledger DDL twice");
    (db, worker_ctx())
}

fn target(db: &ScratchDb) -> PgConn {
    PgConn {
        url: Some(db.url.clone()),
        password_env: None,
        application_name: "pgfleet-restore-test".into(),
        statement_timeout: None,
        read_only: false,
    }
}

/// Parquet the way the RDS export writes it: gzip, no embedded Arrow schema, row groups of
/// `group_rows` rows. Returns the file size.
fn write_parquet(path: &Path, batches: &[RecordBatch], group_rows: usize) -> u64 {
    write_parquet_with(path, batches, group_rows, true)
}

/// `write_parquet`, optionally embedding the Arrow schema (as arrow-rs and pyarrow do, which
/// makes readers return e.g. dictionary arrays again).
fn write_parquet_with(
    path: &Path,
    batches: &[RecordBatch],
    group_rows: usize,
    skip_arrow_metadata: bool,
) -> u64 {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).expect("create folder");
    }
    let file = std::fs::File::create(path).expect("create parquet file");
    let props = WriterProperties::builder()
        .set_compression(Compression::GZIP(GzipLevel::default()))
        .set_max_row_group_row_count(Some(group_rows))
        .build();
    let options = ArrowWriterOptions::new()
        .with_properties(props)
        .with_skip_arrow_metadata(skip_arrow_metadata);
    let mut w = ArrowWriter::try_new_with_options(file, batches[0].schema(), options)
        .expect("parquet writer");
    for b in batches {
        w.write(b).expect("write batch");
    }
    w.close().expect("close parquet");
    std::fs::metadata(path).expect("stat").len()
}

/// The Parquet type RDS uses for a PostgreSQL type: a few are typed, the rest is text.
fn rds_type(t: &Type) -> DataType {
    match *t {
        Type::INT2 => DataType::Int16,
        Type::INT4 => DataType::Int32,
        Type::INT8 => DataType::Int64,
        Type::FLOAT4 => DataType::Float32,
        Type::FLOAT8 => DataType::Float64,
        Type::BOOL => DataType::Boolean,
        Type::BYTEA => DataType::Binary,
        _ => DataType::Utf8,
    }
}

fn parse_f64(s: &str) -> f64 {
    match s {
        "NaN" => f64::NAN,
        "Infinity" => f64::INFINITY,
        "-Infinity" => f64::NEG_INFINITY,
        _ => s.parse().unwrap_or_else(|e| panic!("float {s:?}: {e}")),
    }
}

fn parse_f32(s: &str) -> f32 {
    match s {
        "NaN" => f32::NAN,
        "Infinity" => f32::INFINITY,
        "-Infinity" => f32::NEG_INFINITY,
        _ => s.parse().unwrap_or_else(|e| panic!("float {s:?}: {e}")),
    }
}

fn unhex(s: &str) -> Vec<u8> {
    let hex = s.strip_prefix("\\x").expect("bytea hex output");
    (0..hex.len() / 2)
        .map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).expect("hex"))
        .collect()
}

fn arrow_column(dt: &DataType, values: &[Option<&str>]) -> ArrayRef {
    let v = values.iter();
    match dt {
        DataType::Int16 => Arc::new(
            v.map(|s| s.map(|s| s.parse::<i16>().expect("int2")))
                .collect::<Int16Array>(),
        ),
        DataType::Int32 => Arc::new(
            v.map(|s| s.map(|s| s.parse::<i32>().expect("int4")))
                .collect::<Int32Array>(),
        ),
        DataType::Int64 => Arc::new(
            v.map(|s| s.map(|s| s.parse::<i64>().expect("int8")))
                .collect::<Int64Array>(),
        ),
        DataType::Float32 => Arc::new(v.map(|s| s.map(parse_f32)).collect::<Float32Array>()),
        DataType::Float64 => Arc::new(v.map(|s| s.map(parse_f64)).collect::<Float64Array>()),
        DataType::Boolean => Arc::new(v.map(|s| s.map(|s| s == "t")).collect::<BooleanArray>()),
        DataType::Binary => {
            let bytes: Vec<Option<Vec<u8>>> = v.map(|s| s.map(unhex)).collect();
            Arc::new(BinaryArray::from(
                bytes.iter().map(|b| b.as_deref()).collect::<Vec<_>>(),
            ))
        }
        _ => Arc::new(StringArray::from(values.to_vec())),
    }
}

/// Run `query` and turn its result into record batches the way the RDS export does: every
/// value is PostgreSQL's text output (simple query protocol), converted to a typed Parquet
/// column for ints, floats, booleans and bytea.
async fn rds_export(client: &tokio_postgres::Client, query: &str) -> Vec<RecordBatch> {
    let stmt = client.prepare(query).await.expect("prepare export query");
    let fields: Vec<Field> = stmt
        .columns()
        .iter()
        .map(|c| Field::new(c.name(), rds_type(c.type_()), true))
        .collect();
    let schema = Arc::new(Schema::new(fields));
    let rows: Vec<_> = client
        .simple_query(query)
        .await
        .expect("run export query")
        .into_iter()
        .filter_map(|m| match m {
            SimpleQueryMessage::Row(r) => Some(r),
            _ => None,
        })
        .collect();
    rows.chunks(700)
        .map(|chunk| {
            let columns = schema
                .fields()
                .iter()
                .enumerate()
                .map(|(i, f)| {
                    let values: Vec<Option<&str>> = chunk.iter().map(|r| r.get(i)).collect();
                    arrow_column(f.data_type(), &values)
                })
                .collect();
            RecordBatch::try_new(schema.clone(), columns).expect("batch")
        })
        .collect()
}

#[allow(clippy::too_many_arguments)]
fn task(
    db: &ScratchDb,
    table: &QualifiedName,
    columns: &[(&str, &str)],
    location: ObjectLocation,
    key: &str,
    size: u64,
    row_groups: Option<(u32, u32)>,
    expected_rows: u64,
) -> RestoreFile {
    let piece = match row_groups {
        Some((s, e)) => format!("{key}#{s}-{e}"),
        None => key.to_string(),
    };
    RestoreFile {
        target: target(db),
        table: table.clone(),
        columns: columns
            .iter()
            .map(|(s, t)| RestoreColumn {
                source: s.to_string(),
                target: t.to_string(),
            })
            .collect(),
        object: ObjectRef {
            location,
            key: key.to_string(),
            size,
            s3: s3_options(),
        },
        row_groups: row_groups.map(|(start, end)| RowGroupRange { start, end }),
        ledger: LedgerKey {
            export: EXPORT.to_string(),
            piece,
        },
        expected_rows,
        filter: None,
    }
}

async fn count(db: &ScratchDb, table: &QualifiedName) -> i64 {
    db.client
        .query_one(&format!("SELECT count(*) FROM {}", table.quoted()), &[])
        .await
        .expect("count")
        .get(0)
}

async fn ledger_count(db: &ScratchDb) -> i64 {
    db.client
        .query_one("SELECT count(*) FROM pgfleet_restore.ledger", &[])
        .await
        .expect("ledger count")
        .get(0)
}

/// Row count and an order-independent-of-storage digest of a table's full text.
async fn digest(db: &ScratchDb, table: &str) -> (i64, String) {
    let row = db
        .client
        .query_one(
            &format!(
                "SELECT count(*), coalesce(md5(string_agg(t::text, '|' ORDER BY id)), '') FROM {table} t"
            ),
            &[],
        )
        .await
        .expect("digest");
    (row.get(0), row.get(1))
}

/// A plain table `(id bigint, n int, v text)` and its Parquet file: `rows` rows, NULLs and
/// empty strings mixed in, `group_rows` per row group.
async fn simple_fixture(
    db: &ScratchDb,
    dir: &TempDir,
    table: &QualifiedName,
    key: &str,
    rows: i64,
    group_rows: usize,
) -> u64 {
    db.client
        .batch_execute(&format!(
            "CREATE TABLE {} (id bigint PRIMARY KEY, n int, v text)",
            table.quoted()
        ))
        .await
        .expect("create table");
    write_parquet(&dir.path(key), &simple_batches(rows), group_rows)
}

fn simple_batches(rows: i64) -> Vec<RecordBatch> {
    let schema = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, true),
        Field::new("n", DataType::Int32, true),
        Field::new("v", DataType::Utf8, true),
    ]));
    let ids: Vec<i64> = (1..=rows).collect();
    ids.chunks(1000)
        .map(|chunk| {
            let id = Int64Array::from(chunk.to_vec());
            let n: Int32Array = chunk
                .iter()
                .map(|i| (i % 5 != 0).then_some((i * 3) as i32))
                .collect();
            let v: StringArray = chunk
                .iter()
                .map(|i| match i % 7 {
                    0 => None,
                    1 => Some(String::new()),
                    _ => Some(format!("value {i}\twith\\escapes\n")),
                })
                .collect();
            RecordBatch::try_new(schema.clone(), vec![Arc::new(id), Arc::new(n), Arc::new(v)])
                .expect("batch")
        })
        .collect()
}

const SIMPLE_COLUMNS: &[(&str, &str)] = &[("id", "id"), ("n", "n"), ("v", "v")];

fn assert_fatal(err: &TaskError, needles: &[&str]) {
    eprintln!("expected error: {}", err.message);
    assert!(!err.retryable, "expected a fatal error: {}", err.message);
    for n in needles {
        assert!(
            err.message.contains(n),
            "error should mention {n:?}: {}",
            err.message
        );
    }
}

// ---------------------------------------------------------------------------------------------
// 1. Every type
// ---------------------------------------------------------------------------------------------

const ALL_TYPES_DDL: &str = r#"
CREATE EXTENSION IF NOT EXISTS postgis;
CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy', 'it''s "complicated"');
CREATE DOMAIN posint AS int CHECK (VALUE > 0);
CREATE TYPE pair AS (a int, b text);
CREATE TABLE src (
    id int PRIMARY KEY, i2 int2, i4 int4, i8 int8, f4 float4, f8 float8, num numeric, mon money,
    b bool, t text, vc varchar(10), ch char(3), bin bytea, d date, tm time, ttz timetz,
    ts timestamp, tstz timestamptz, iv interval, u uuid, j json, jb jsonb, ia int[], ta text[],
    m mood, dom posint, comp pair, r4 int4range, rtz tstzrange, bt bit(4), vb varbit, ip inet,
    cid cidr, mac macaddr, tsv tsvector, x xml, pt point, bx box, geom geometry,
    geog geography
);
CREATE TABLE dst (LIKE src INCLUDING ALL);
INSERT INTO src VALUES
(1, -32768, -2147483648, -9223372036854775808, 'NaN', 'NaN', 'NaN', '-92233720368547758.08', true,
 '', '', 'a', '', '4713-01-01 BC', '00:00', '00:00:00+15:59', '4713-01-01 00:00:00 BC',
 '-infinity', '-178000000 years', '00000000-0000-0000-0000-000000000000',
 '{"a": [1, 2.50, {"b": null}], "c": "\u00e9\t"}', '{"a": [1, 2.50, {"b": null}], "c": "\u00e9\t"}',
 '{}', '{}', 'sad', 1, '(1,"a,b")', 'empty', '[2024-01-01 00:00+00,infinity)', B'0000', B'',
 '::1', '10.0.0.0/8', '08:00:2b:01:02:03', 'a fat cat', '<a>b</a>', '(0,0)', '((0,0),(1,1))',
 'SRID=4326;POINT(1 2)', 'SRID=4326;POINT(1 2)'),
(2, 32767, 2147483647, 9223372036854775807, 'Infinity', 'Infinity',
 (repeat('9', 1000) || '.' || repeat('1', 1000))::numeric, '92233720368547758.07', false,
 repeat(E'x\t\\y\nz\r', 12000), 'abcdefghij', 'abc',
 (SELECT decode(string_agg(lpad(to_hex(g), 2, '0'), '' ORDER BY g), 'hex') FROM generate_series(0, 255) g),
 'infinity', '24:00:00', '23:59:59.999999-15:59', 'infinity', 'infinity',
 '1 year 2 mons 3 days 04:05:06.789', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', '[]',
 '{"k": "v\"q", "n": 12345678901234567890.5}', '{{1,2},{3,4}}',
 E'{"a,b","c\\"d","",NULL,"NULL","x\\\\y","{}"}', 'it''s "complicated"', 2147483647, '(,)',
 '[1,10)', 'empty', B'1111', B'101010101', '192.168.0.1/24', '2001:db8::/32',
 'ff:ff:ff:ff:ff:ff', to_tsvector('english', 'The quick brown foxes jumped'),
 '<r a="1">t&amp;<![CDATA[x]]></r>', '(-1.5,1e300)', '((-1,-2),(3,4))',
 'SRID=3857;POLYGON((0 0,1 0,1 1,0 1,0 0))', 'SRID=4326;LINESTRING(0 0,10 10)');
INSERT INTO src (id, f4, f8, num, t, vc, ch, d, ts, tstz, ta, x, geom) VALUES
(3, '-Infinity', '-Infinity', 'Infinity', '🎉 日本語 עברית العربية 한국어', '🎉日本語', '日本',
 '2024-02-29', '2024-02-29 23:59:59.999999', '2024-03-10 02:30:00 America/New_York',
 ARRAY['🎉', 'a"b', 'c\d', ' lead'], '<ü>✓</ü>', 'POINT EMPTY'),
(4, '-0', '-0', '-0.000001', NULL, NULL, NULL, NULL, NULL, '1999-12-31 23:59:59.5+05:45', NULL, NULL, NULL),
(5, '1e-45', '1e-300', '1e-300', E'C:\\path\\to\\file\\n \\N \\.', 'a\b', 'a b', '0001-01-01',
 '0001-01-01 00:00:00', '1900-01-01 00:00:00+00', ARRAY[NULL, 'NULL'], '', NULL),
(6, '3.4028235e38', '1e300', '-Infinity', E'\\', '\', '\', '9999-12-31', '294276-12-31 23:59:59.999999',
 '2038-01-19 03:14:08+00', '{}', NULL, NULL),
(7, '1.17549435e-38', '5e-324', '0.1', E'\t\n\r', E'\t', E'\n', '2000-01-01', NULL, NULL, NULL, NULL, NULL),
(8, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL);
INSERT INTO src
SELECT g, (g % 32767)::int2, g * 7, g::int8 * 1000003, (g / 7.0)::float4, g / 3.0::float8,
       round(g / 7.0, 6), (g / 100.0)::numeric::money, g % 2 = 0,
       'row ' || g || E'\t' || md5(g::text), left(md5(g::text), 10), left(md5(g::text), 3),
       decode(md5(g::text), 'hex'), date '2000-01-01' + g, time '00:00' + g * interval '17 seconds',
       ('12:34:56+0' || (g % 10))::timetz,
       timestamp '2000-01-01' + g * interval '1 hour 7 minutes 0.123456 seconds',
       timestamptz '2000-01-01 00:00+00' + g * interval '1 day 1 minute 0.25 seconds',
       g * interval '1 minute 1.5 seconds', md5(g::text)::uuid,
       json_build_object('g', g, 's', 'x"y'), jsonb_build_object('g', g, 'a', ARRAY[g]),
       ARRAY[g, -g], ARRAY['a' || g, 'b,c', NULL], (enum_range(NULL::mood))[1 + g % 4], 1 + g,
       ROW(g, 't' || g)::pair, int4range(g, g + 10),
       tstzrange(timestamptz '2020-01-01 00:00+00' + g * interval '1 hour',
                 timestamptz '2020-01-01 00:00+00' + g * interval '2 hours', '[]'),
       (g % 16)::bit(4), g::bit(12)::varbit,
       ('10.' || (g % 256) || '.' || (g / 256 % 256) || '.1')::inet,
       ('10.' || (g % 256) || '.0.0/16')::cidr,
       ('08:00:2b:' || lpad(to_hex(g % 256), 2, '0') || ':00:01')::macaddr,
       to_tsvector('english', 'row number ' || g || ' of many'), ('<r n="' || g || '"/>')::xml,
       point(g, -g), box(point(0, 0), point(g, g)),
       ST_SetSRID(ST_MakePoint(g / 10.0, g / 20.0), 4326),
       ST_SetSRID(ST_MakePoint(g % 180, g % 90), 4326)::geography
FROM generate_series(100, 3099) g;
UPDATE src SET t = NULL, bin = NULL, f8 = NULL, jb = NULL, geom = NULL, ia = NULL
 WHERE id >= 100 AND id % 11 = 0;
UPDATE src SET t = '', bin = '' WHERE id >= 100 AND id % 13 = 0;
"#;

const ALL_COLUMNS: &[&str] = &[
    "id", "i2", "i4", "i8", "f4", "f8", "num", "mon", "b", "t", "vc", "ch", "bin", "d", "tm",
    "ttz", "ts", "tstz", "iv", "u", "j", "jb", "ia", "ta", "m", "dom", "comp", "r4", "rtz", "bt",
    "vb", "ip", "cid", "mac", "tsv", "x", "pt", "bx", "geom", "geog",
];

/// timestamptz text in several zones: the reading session's (+05:30), +14 and -12.
const TSTZ_EXPR: &str = "CASE WHEN tstz IS NULL OR NOT isfinite(tstz) OR id % 3 = 0 THEN tstz::text \
     WHEN id % 3 = 1 THEN to_char(tstz AT TIME ZONE 'Etc/GMT-14', 'YYYY-MM-DD HH24:MI:SS.US') || '+14' \
     ELSE to_char(tstz AT TIME ZONE 'Etc/GMT+12', 'YYYY-MM-DD HH24:MI:SS.US') || '-12' END AS tstz";

#[tokio::test(flavor = "multi_thread")]
async fn every_type_round_trips_exactly() {
    let (db, ctx) = setup().await;
    let dir = TempDir::new();
    db.client
        .batch_execute(ALL_TYPES_DDL)
        .await
        .expect("create and fill the source table");
    // The export session's settings differ from the restore session's (UTC).
    db.client
        .batch_execute("SET TimeZone = 'Asia/Kolkata'")
        .await
        .unwrap();
    let select: Vec<&str> = ALL_COLUMNS
        .iter()
        .map(|c| if *c == "tstz" { TSTZ_EXPR } else { c })
        .collect();
    let query = format!("SELECT {} FROM src ORDER BY id", select.join(", "));
    let batches = rds_export(&db.client, &query).await;
    // Check the file really is typed like an RDS export.
    let schema = batches[0].schema();
    for (name, dt) in [
        ("i2", DataType::Int16),
        ("i4", DataType::Int32),
        ("i8", DataType::Int64),
        ("f4", DataType::Float32),
        ("f8", DataType::Float64),
        ("b", DataType::Boolean),
        ("bin", DataType::Binary),
        ("num", DataType::Utf8),
        ("geom", DataType::Utf8),
    ] {
        assert_eq!(
            schema.field_with_name(name).unwrap().data_type(),
            &dt,
            "{name}"
        );
    }
    let key = "db/public.src/1/part-00000-0a1b-c000.gz.parquet";
    let size = write_parquet(&dir.path(key), &batches, 1000);
    let (src_rows, src_digest) = digest(&db, "src").await;
    assert_eq!(src_rows, 3008);

    let columns: Vec<(&str, &str)> = ALL_COLUMNS.iter().map(|c| (*c, *c)).collect();
    let table = QualifiedName::new("public", "dst");
    let t = task(&db, &table, &columns, dir.location(), key, size, None, 3008);
    let stats = restore_file(&ctx, &t).await.expect("restore");
    assert_eq!(stats.rows, 3008);
    // At most the file plus the part of the footer read that overlaps the last row group.
    assert!(
        stats.bytes > 0 && stats.bytes <= size + 64 * 1024,
        "{stats:?} of {size}"
    );

    let (dst_rows, dst_digest) = digest(&db, "dst").await;
    assert_eq!(dst_rows, src_rows);
    if dst_digest != src_digest {
        // Name the first differing column to make a failure readable.
        for c in ALL_COLUMNS {
            let q = format!(
                "SELECT s.id, s.{c}::text, d.{c}::text FROM src s JOIN dst d USING (id) \
                 WHERE s.{c}::text IS DISTINCT FROM d.{c}::text ORDER BY 1 LIMIT 1"
            );
            if let Some(r) = db.client.query_opt(&q, &[]).await.unwrap() {
                let (id, s, d): (i32, Option<String>, Option<String>) =
                    (r.get(0), r.get(1), r.get(2));
                panic!("column {c} differs at id {id}: source {s:?}, restored {d:?}");
            }
        }
        panic!("tables differ");
    }
    // NULL and "" stayed apart.
    let r = db
        .client
        .query_one(
            "SELECT (SELECT t FROM dst WHERE id = 1), (SELECT t IS NULL FROM dst WHERE id = 4), \
             (SELECT length(t) FROM dst WHERE id = 2), (SELECT length(bin) FROM dst WHERE id = 2)",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(r.get::<_, Option<String>>(0).as_deref(), Some(""));
    assert!(r.get::<_, bool>(1));
    assert_eq!(r.get::<_, i32>(2), 84_000);
    assert_eq!(r.get::<_, i32>(3), 256);
    assert_eq!(
        ledger::loaded_rows(&db.client, EXPORT, &table)
            .await
            .unwrap(),
        3008
    );
}

// ---------------------------------------------------------------------------------------------
// 2. Row-group ranges (and the S3 path)
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread")]
async fn row_group_ranges_load_every_row_once() {
    let (db, ctx) = setup().await;
    let dir = TempDir::new();
    let table = QualifiedName::new("public", "ranges");
    let key = "db/public.ranges/1/part-00000.gz.parquet";
    let size = simple_fixture(&db, &dir, &table, key, 5000, 1000).await;
    let mut first = task(
        &db,
        &table,
        SIMPLE_COLUMNS,
        dir.location(),
        key,
        size,
        Some((0, 2)),
        2000,
    );
    first.target.statement_timeout = Some("5min".into());
    let second = task(
        &db,
        &table,
        SIMPLE_COLUMNS,
        dir.location(),
        key,
        size,
        Some((2, 5)),
        3000,
    );
    let a = restore_file(&ctx, &first).await.expect("row groups 0..2");
    let b = restore_file(&ctx, &second).await.expect("row groups 2..5");
    assert_eq!((a.rows, b.rows), (2000, 3000));
    assert!(a.bytes > 0 && b.bytes > 0);
    let r = db
        .client
        .query_one(
            "SELECT count(*), count(DISTINCT id), min(id), max(id), count(*) FILTER (WHERE v IS NULL), \
             count(*) FILTER (WHERE v = '') FROM ranges",
            &[],
        )
        .await
        .unwrap();
    let got: (i64, i64, i64, i64, i64, i64) =
        (r.get(0), r.get(1), r.get(2), r.get(3), r.get(4), r.get(5));
    assert_eq!(got, (5000, 5000, 1, 5000, 714, 715));
    assert_eq!(
        db.client
            .query_one("SELECT v FROM ranges WHERE id = 2", &[])
            .await
            .unwrap()
            .get::<_, String>(0),
        "value 2\twith\\escapes\n"
    );
    assert_eq!(
        ledger::loaded_rows(&db.client, EXPORT, &table)
            .await
            .unwrap(),
        5000
    );

    // A range past the file's row groups is a clear, fatal error.
    let bad = task(
        &db,
        &table,
        SIMPLE_COLUMNS,
        dir.location(),
        key,
        size,
        Some((4, 9)),
        1000,
    );
    let err = restore_file(&ctx, &bad).await.unwrap_err();
    assert_fatal(&err, &["public.ranges", key, "4..9", "has 5"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn restores_from_s3_with_ranged_reads() {
    let (db, ctx) = setup().await;
    let dir = TempDir::new();
    let table = QualifiedName::new("public", "from_s3");
    let key = "db/public.from_s3/1/part-00003.gz.parquet";
    let size = simple_fixture(&db, &dir, &table, key, 50_000, 10_000).await;
    let client = ctx.s3(&s3_options()).await;
    let bucket = create_bucket(&client).await;
    let body = std::fs::read(dir.path(key)).unwrap();
    client
        .put_object()
        .bucket(&bucket)
        .key(format!("exports/snap/{key}"))
        .body(aws_sdk_s3::primitives::ByteStream::from(body))
        .send()
        .await
        .expect("upload parquet");
    let location = ObjectLocation::S3 {
        bucket: bucket.clone(),
        prefix: "exports/snap/".into(),
    };
    let head = task(
        &db,
        &table,
        SIMPLE_COLUMNS,
        location.clone(),
        key,
        size,
        Some((0, 3)),
        30_000,
    );
    let rest = task(
        &db,
        &table,
        SIMPLE_COLUMNS,
        location.clone(),
        key,
        size,
        Some((3, 5)),
        20_000,
    );
    let a = restore_file(&ctx, &head).await.expect("restore from s3");
    let b = restore_file(&ctx, &rest).await.expect("restore from s3");
    assert_eq!((a.rows, b.rows), (30_000, 20_000));
    // Ranged reads: each piece reads the footer and its own row groups, never the whole file.
    assert!(a.bytes < size && b.bytes < size, "{a:?} {b:?} of {size}");
    assert_eq!(count(&db, &table).await, 50_000);

    // A missing object is fatal and named.
    let missing = task(
        &db,
        &table,
        SIMPLE_COLUMNS,
        location,
        "db/nope.gz.parquet",
        size,
        None,
        1,
    );
    let err = restore_file(&ctx, &missing).await.unwrap_err();
    assert_fatal(&err, &["db/nope.gz.parquet", &bucket, "re-plan"]);
    delete_bucket(&client, &bucket).await;
}

// ---------------------------------------------------------------------------------------------
// 3. Redelivery
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread")]
async fn redelivered_task_loads_once() {
    let (db, ctx) = setup().await;
    let dir = TempDir::new();
    let table = QualifiedName::new("public", "redeliver");
    let key = "db/public.redeliver/1/part-00000.gz.parquet";
    let size = simple_fixture(&db, &dir, &table, key, 3000, 1000).await;
    let t = task(
        &db,
        &table,
        SIMPLE_COLUMNS,
        dir.location(),
        key,
        size,
        None,
        3000,
    );

    let first = restore_file(&ctx, &t).await.expect("first delivery");
    assert_eq!(first.rows, 3000);
    assert!(first.bytes > 0);
    let second = restore_file(&ctx, &t).await.expect("second delivery");
    assert_eq!(
        second,
        ChunkStats {
            rows: 3000,
            ..ChunkStats::default()
        }
    );
    assert_eq!(count(&db, &table).await, 3000);

    // Two deliveries at once: one loads, the other waits on the ledger key and sees it loaded.
    let table2 = QualifiedName::new("public", "redeliver_concurrent");
    let key2 = "db/public.redeliver_concurrent/1/part-00000.gz.parquet";
    let size2 = simple_fixture(&db, &dir, &table2, key2, 20_000, 1000).await;
    let t2 = task(
        &db,
        &table2,
        SIMPLE_COLUMNS,
        dir.location(),
        key2,
        size2,
        None,
        20_000,
    );
    let (a, b) = tokio::join!(restore_file(&ctx, &t2), restore_file(&ctx, &t2));
    let (a, b) = (a.expect("delivery a"), b.expect("delivery b"));
    assert_eq!((a.rows, b.rows), (20_000, 20_000));
    assert!(
        (a.bytes > 0) != (b.bytes > 0),
        "exactly one delivery loads: {a:?} {b:?}"
    );
    assert_eq!(count(&db, &table2).await, 20_000);
    assert_eq!(ledger_count(&db).await, 2);
    assert_eq!(
        ledger::loaded_rows(&db.client, EXPORT, &table2)
            .await
            .unwrap(),
        20_000
    );
}

// ---------------------------------------------------------------------------------------------
// 4. Row count mismatch
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread")]
async fn row_count_mismatch_rolls_back() {
    let (db, ctx) = setup().await;
    let dir = TempDir::new();
    let table = QualifiedName::new("public", "mismatch");
    let key = "db/public.mismatch/1/part-00000.gz.parquet";
    let size = simple_fixture(&db, &dir, &table, key, 2500, 1000).await;
    let t = task(
        &db,
        &table,
        SIMPLE_COLUMNS,
        dir.location(),
        key,
        size,
        None,
        2501,
    );
    let err = restore_file(&ctx, &t).await.unwrap_err();
    assert_fatal(&err, &["public.mismatch", key, "2500", "2501"]);
    assert_eq!(count(&db, &table).await, 0);
    assert_eq!(ledger_count(&db).await, 0);
    // The right count then loads (the failed attempt left no ledger row behind).
    let t = task(
        &db,
        &table,
        SIMPLE_COLUMNS,
        dir.location(),
        key,
        size,
        None,
        2500,
    );
    assert_eq!(restore_file(&ctx, &t).await.unwrap().rows, 2500);
}

// ---------------------------------------------------------------------------------------------
// 5. Corrupt files
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread")]
async fn corrupt_files_fail_clearly_and_load_nothing() {
    let (db, ctx) = setup().await;
    let dir = TempDir::new();
    let table = QualifiedName::new("public", "corrupt");
    let good_key = "db/public.corrupt/1/part-00000.gz.parquet";
    // ~2 MiB of COPY text in 6 row groups: the mangled file fails after COPY data was sent.
    let size = simple_fixture(&db, &dir, &table, good_key, 60_000, 10_000).await;
    let good = std::fs::read(dir.path(good_key)).unwrap();

    let footer_len = u32::from_le_bytes(good[good.len() - 8..good.len() - 4].try_into().unwrap());
    let data_end = good.len() - 8 - footer_len as usize;
    // Garbage in the middle of the column data, footer intact: fails while COPY is running.
    let mut mangled = good.clone();
    let mid = data_end * 5 / 6;
    for (i, b) in mangled[mid..mid + 300].iter_mut().enumerate() {
        *b = (i as u8).wrapping_mul(37) ^ 0x5a;
    }
    let cases: Vec<(&str, Vec<u8>)> = vec![
        (
            "db/public.corrupt/1/part-truncated.gz.parquet",
            good[..good.len() / 2].to_vec(),
        ),
        (
            "db/public.corrupt/1/part-footerless.gz.parquet",
            good[..good.len() - 3].to_vec(),
        ),
        (
            "db/public.corrupt/1/part-garbage.gz.parquet",
            (0..20_000u32)
                .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
                .collect(),
        ),
        (
            "db/public.corrupt/1/data.csv",
            b"id,n,v\n1,2,three\n".to_vec(),
        ),
        ("db/public.corrupt/1/empty.gz.parquet", Vec::new()),
        ("db/public.corrupt/1/part-mangled.gz.parquet", mangled),
    ];
    for (key, bytes) in &cases {
        std::fs::write(dir.path(key), bytes).unwrap();
        let t = task(
            &db,
            &table,
            SIMPLE_COLUMNS,
            dir.location(),
            key,
            bytes.len() as u64,
            None,
            60_000,
        );
        let err = restore_file(&ctx, &t).await.unwrap_err();
        assert_fatal(&err, &["public.corrupt", key]);
        assert!(
            err.message.contains("corrupt") || err.message.contains("Parquet"),
            "{}",
            err.message
        );
        assert_eq!(count(&db, &table).await, 0, "{key}");
        assert_eq!(ledger_count(&db).await, 0, "{key}");
    }

    // A file that changed size since planning.
    let t = task(
        &db,
        &table,
        SIMPLE_COLUMNS,
        dir.location(),
        good_key,
        size + 10,
        None,
        60_000,
    );
    let err = restore_file(&ctx, &t).await.unwrap_err();
    assert_fatal(&err, &[good_key, "re-plan"]);
    // A missing file.
    let t = task(
        &db,
        &table,
        SIMPLE_COLUMNS,
        dir.location(),
        "db/gone.gz.parquet",
        size,
        None,
        60_000,
    );
    let err = restore_file(&ctx, &t).await.unwrap_err();
    assert_fatal(&err, &["db/gone.gz.parquet"]);
    assert_eq!(count(&db, &table).await, 0);
    assert_eq!(ledger_count(&db).await, 0);

    // The worker is still healthy: the good file loads.
    let t = task(
        &db,
        &table,
        SIMPLE_COLUMNS,
        dir.location(),
        good_key,
        size,
        None,
        60_000,
    );
    assert_eq!(restore_file(&ctx, &t).await.unwrap().rows, 60_000);
}

// ---------------------------------------------------------------------------------------------
// 6. Missing field
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread")]
async fn missing_field_is_fatal_and_named() {
    let (db, ctx) = setup().await;
    let dir = TempDir::new();
    let table = QualifiedName::new("public", "missing");
    let key = "db/public.missing/1/part-00000.gz.parquet";
    let size = simple_fixture(&db, &dir, &table, key, 100, 1000).await;
    let cols = [("id", "id"), ("no_such_field", "n"), ("v", "v")];
    let t = task(&db, &table, &cols, dir.location(), key, size, None, 100);
    let err = restore_file(&ctx, &t).await.unwrap_err();
    assert_fatal(&err, &["no_such_field", "public.missing", key]);
    assert_eq!(count(&db, &table).await, 0);
    assert_eq!(ledger_count(&db).await, 0);

    // A target column that does not exist: PostgreSQL says so, fatal.
    let cols = [("id", "id"), ("n", "no_such_column"), ("v", "v")];
    let t = task(&db, &table, &cols, dir.location(), key, size, None, 100);
    let err = restore_file(&ctx, &t).await.unwrap_err();
    assert_fatal(&err, &["no_such_column", "42703", "target table"]);
    assert_eq!(ledger_count(&db).await, 0);
}

// ---------------------------------------------------------------------------------------------
// 7. Data PostgreSQL rejects
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread")]
async fn rejected_data_is_fatal_and_rolls_back() {
    let (db, ctx) = setup().await;
    let dir = TempDir::new();
    // NOT NULL: row 1500 (second row group) has a NULL `v`.
    db.client
        .batch_execute(
            "CREATE TABLE strict (id bigint PRIMARY KEY, n int, v text NOT NULL); \
             CREATE TABLE typed (id bigint, n int, v int)",
        )
        .await
        .unwrap();
    let schema = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, true),
        Field::new("n", DataType::Int32, true),
        Field::new("v", DataType::Utf8, true),
    ]));
    let batch = |ids: std::ops::Range<i64>, v: &dyn Fn(i64) -> Option<String>| {
        RecordBatch::try_new(
            schema.clone(),
            vec![
                Arc::new(Int64Array::from(ids.clone().collect::<Vec<_>>())),
                Arc::new(Int32Array::from(
                    ids.clone().map(|i| i as i32).collect::<Vec<_>>(),
                )),
                Arc::new(ids.map(v).collect::<StringArray>()),
            ],
        )
        .unwrap()
    };
    let key = "db/public.strict/1/part-00000.gz.parquet";
    let b = batch(1..3001, &|i| (i != 1500).then(|| i.to_string()));
    let size = write_parquet(&dir.path(key), &[b], 1000);
    let table = QualifiedName::new("public", "strict");
    let t = task(
        &db,
        &table,
        SIMPLE_COLUMNS,
        dir.location(),
        key,
        size,
        None,
        3000,
    );
    let err = restore_file(&ctx, &t).await.unwrap_err();
    assert_fatal(&err, &["public.strict", key, "23502", "line 1500"]);
    assert_eq!(count(&db, &table).await, 0);
    assert_eq!(ledger_count(&db).await, 0);

    // Text that is not an integer (22P02).
    let key = "db/public.typed/1/part-00000.gz.parquet";
    let b = batch(1..2001, &|i| {
        Some(if i == 1999 {
            "12abc".into()
        } else {
            i.to_string()
        })
    });
    let size = write_parquet(&dir.path(key), &[b], 1000);
    let table = QualifiedName::new("public", "typed");
    let t = task(
        &db,
        &table,
        SIMPLE_COLUMNS,
        dir.location(),
        key,
        size,
        None,
        2000,
    );
    let err = restore_file(&ctx, &t).await.unwrap_err();
    assert_fatal(&err, &["public.typed", "22P02", "12abc"]);
    assert_eq!(count(&db, &table).await, 0);
    assert_eq!(ledger_count(&db).await, 0);

    // A Parquet type that has no COPY text form here.
    let list_schema = Arc::new(Schema::new(vec![Field::new(
        "v",
        DataType::List(Arc::new(Field::new("item", DataType::Int32, true))),
        true,
    )]));
    let list =
        arrow::array::ListArray::from_iter_primitive::<arrow::datatypes::Int32Type, _, _>(vec![
            Some(vec![Some(1), Some(2)]),
        ]);
    let b = RecordBatch::try_new(list_schema, vec![Arc::new(list)]).unwrap();
    let key = "db/public.typed/1/part-list.gz.parquet";
    let size = write_parquet(&dir.path(key), &[b], 1000);
    let t = task(
        &db,
        &table,
        &[("v", "v")],
        dir.location(),
        key,
        size,
        None,
        1,
    );
    let err = restore_file(&ctx, &t).await.unwrap_err();
    assert_fatal(&err, &["\"v\"", "List", key]);
    assert_eq!(ledger_count(&db).await, 0);
}

// ---------------------------------------------------------------------------------------------
// 8. Columns mapped by name
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread")]
async fn columns_map_by_name_not_position() {
    let (db, ctx) = setup().await;
    let dir = TempDir::new();
    let table = QualifiedName::new("Odd Schema", "Odd \"Name\" Table");
    db.client
        .batch_execute(&format!(
            "CREATE SCHEMA \"Odd Schema\"; \
             CREATE TABLE {} (id bigint PRIMARY KEY, n int, \"Payload\" text, untouched text DEFAULT 'dflt')",
            table.quoted()
        ))
        .await
        .unwrap();
    // File order: payload, an unused field, id, n — none matching the table's order.
    let schema = Arc::new(Schema::new(vec![
        Field::new("Payload Text", DataType::Utf8, true),
        Field::new("ignored", DataType::Float64, true),
        Field::new("ID", DataType::Int64, true),
        Field::new("n", DataType::Int16, true),
    ]));
    let rows = 2500i64;
    let b = RecordBatch::try_new(
        schema,
        vec![
            Arc::new(
                (0..rows)
                    .map(|i| Some(format!("p{i}")))
                    .collect::<StringArray>(),
            ),
            Arc::new(Float64Array::from(vec![1.5; rows as usize])),
            Arc::new(Int64Array::from((0..rows).collect::<Vec<_>>())),
            Arc::new(Int16Array::from(
                (0..rows).map(|i| (i % 100) as i16).collect::<Vec<_>>(),
            )),
        ],
    )
    .unwrap();
    let key = "db/Odd_Schema.Odd__Name__Table/1/part-00000.gz.parquet";
    let size = write_parquet(&dir.path(key), &[b], 1000);
    // COPY column order differs from both the file's and the table's.
    let cols = [("n", "n"), ("Payload Text", "Payload"), ("ID", "id")];
    let t = task(
        &db,
        &table,
        &cols,
        dir.location(),
        key,
        size,
        None,
        rows as u64,
    );
    assert_eq!(restore_file(&ctx, &t).await.unwrap().rows, rows as u64);
    let r = db
        .client
        .query_one(
            &format!(
                "SELECT count(*) FILTER (WHERE \"Payload\" = 'p' || id AND n = id % 100 AND untouched = 'dflt'), \
                 count(*) FROM {}",
                table.quoted()
            ),
            &[],
        )
        .await
        .unwrap();
    assert_eq!((r.get::<_, i64>(0), r.get::<_, i64>(1)), (rows, rows));
    assert_eq!(
        ledger::loaded_rows(&db.client, EXPORT, &table)
            .await
            .unwrap(),
        rows as u64
    );
}

// ---------------------------------------------------------------------------------------------
// Non-RDS Parquet: dictionary, date, time, timestamp and decimal columns
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread")]
async fn typed_arrow_columns_from_other_writers() {
    use arrow::array::{
        Date32Array, Decimal128Array, DictionaryArray, Time64MicrosecondArray,
        TimestampMicrosecondArray,
    };
    let (db, ctx) = setup().await;
    let dir = TempDir::new();
    db.client
        .batch_execute(
            "CREATE TABLE typed (id int, label text, d date, tm time, ts timestamp, \
             tstz timestamptz, amount numeric(38, 4))",
        )
        .await
        .unwrap();
    let label: DictionaryArray<arrow::datatypes::Int32Type> =
        vec![Some("a\tb"), None, Some("a\tb"), Some("")]
            .into_iter()
            .collect();
    let tz_values = vec![Some(1_704_110_400_123_456), Some(-1), None, Some(0)];
    let batch = RecordBatch::try_from_iter(vec![
        (
            "id",
            Arc::new(Int32Array::from(vec![1, 2, 3, 4])) as ArrayRef,
        ),
        ("label", Arc::new(label) as ArrayRef),
        (
            "d",
            Arc::new(Date32Array::from(vec![
                Some(0),
                Some(-719_528),
                Some(2_932_896),
                None,
            ])) as ArrayRef,
        ),
        (
            "tm",
            Arc::new(Time64MicrosecondArray::from(vec![
                Some(0),
                Some(86_399_999_999),
                None,
                Some(45_296_000_001),
            ])) as ArrayRef,
        ),
        (
            "ts",
            Arc::new(TimestampMicrosecondArray::from(vec![
                Some(1_704_110_400_123_456),
                Some(-62_167_219_200_000_000 - 86_400_000_000),
                None,
                Some(253_402_300_799_999_999),
            ])) as ArrayRef,
        ),
        (
            "tstz",
            Arc::new(TimestampMicrosecondArray::from(tz_values).with_timezone("UTC")) as ArrayRef,
        ),
        (
            "amount",
            Arc::new(
                Decimal128Array::from(vec![Some(12_345_678), Some(-5), None, Some(0)])
                    .with_precision_and_scale(38, 4)
                    .unwrap(),
            ) as ArrayRef,
        ),
    ])
    .unwrap();
    assert!(matches!(
        batch.schema().field_with_name("label").unwrap().data_type(),
        DataType::Dictionary(..)
    ));
    let key = "other/typed.parquet";
    let size = write_parquet_with(&dir.path(key), &[batch], 2, false);
    let table = QualifiedName::new("public", "typed");
    let cols: Vec<(&str, &str)> = ["id", "label", "d", "tm", "ts", "tstz", "amount"]
        .iter()
        .map(|c| (*c, *c))
        .collect();
    let t = task(&db, &table, &cols, dir.location(), key, size, None, 4);
    assert_eq!(restore_file(&ctx, &t).await.unwrap().rows, 4);
    db.client
        .batch_execute("SET TimeZone = 'UTC'")
        .await
        .unwrap();
    let rows = db
        .client
        .query(
            "SELECT label, d::text, tm::text, ts::text, tstz::text, amount::text FROM typed ORDER BY id",
            &[],
        )
        .await
        .unwrap();
    let got: Vec<Vec<Option<String>>> = rows
        .iter()
        .map(|r| (0..6).map(|i| r.get::<_, Option<String>>(i)).collect())
        .collect();
    let s = |v: &str| Some(v.to_string());
    assert_eq!(
        got,
        vec![
            vec![
                s("a\tb"),
                s("1970-01-01"),
                s("00:00:00"),
                s("2024-01-01 12:00:00.123456"),
                s("2024-01-01 12:00:00.123456+00"),
                s("1234.5678"),
            ],
            vec![
                None,
                s("0001-01-01 BC"),
                s("23:59:59.999999"),
                s("0002-12-31 00:00:00 BC"),
                s("1969-12-31 23:59:59.999999+00"),
                s("-0.0005"),
            ],
            vec![s("a\tb"), s("9999-12-31"), None, None, None, None],
            vec![
                s(""),
                None,
                s("12:34:56.000001"),
                s("9999-12-31 23:59:59.999999"),
                s("1970-01-01 00:00:00+00"),
                s("0.0000"),
            ],
        ]
    );
}

// ---------------------------------------------------------------------------------------------
// Throughput (a measurement, not a check)
// ---------------------------------------------------------------------------------------------

const BENCH_ROWS: i64 = 1_000_000;

/// 6 mixed columns: bigint id, int, double, bool, short text, timestamptz text.
fn bench_batches() -> Vec<RecordBatch> {
    let schema = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, true),
        Field::new("qty", DataType::Int32, true),
        Field::new("price", DataType::Float64, true),
        Field::new("active", DataType::Boolean, true),
        Field::new("name", DataType::Utf8, true),
        Field::new("created", DataType::Utf8, true),
    ]));
    let ids: Vec<i64> = (1..=BENCH_ROWS).collect();
    ids.chunks(8192)
        .map(|c| {
            RecordBatch::try_new(
                schema.clone(),
                vec![
                    Arc::new(Int64Array::from(c.to_vec())),
                    Arc::new(
                        c.iter()
                            .map(|i| (i % 13 != 0).then_some((i % 1000) as i32))
                            .collect::<Int32Array>(),
                    ),
                    Arc::new(Float64Array::from(
                        c.iter().map(|i| *i as f64 / 7.0).collect::<Vec<_>>(),
                    )),
                    Arc::new(c.iter().map(|i| Some(i % 2 == 0)).collect::<BooleanArray>()),
                    Arc::new(
                        c.iter()
                            .map(|i| Some(format!("customer {} of {}", i % 9973, i % 17)))
                            .collect::<StringArray>(),
                    ),
                    Arc::new(
                        c.iter()
                            .map(|i| {
                                Some(format!(
                                    "2024-{:02}-{:02} {:02}:{:02}:{:02}.{:06}+00",
                                    1 + i % 12,
                                    1 + i % 28,
                                    i % 24,
                                    i % 60,
                                    (i / 60) % 60,
                                    i % 1_000_000
                                ))
                            })
                            .collect::<StringArray>(),
                    ),
                ],
            )
            .unwrap()
        })
        .collect()
}

const BENCH_DDL: &str = "CREATE TABLE bench (id bigint, qty int, price float8, active bool, \
                         name text, created timestamptz)";

#[tokio::test(flavor = "multi_thread")]
#[ignore = "measurement: run with --release -- --ignored --nocapture throughput"]
async fn throughput() {
    use worker::restore::copy_text::{decode_dictionary, RowEncoder};
    let batches = bench_batches();
    let names = ["id", "qty", "price", "active", "name", "created"];

    // Encoder alone.
    let mut best = f64::MAX;
    let mut bytes = 0usize;
    for _ in 0..3 {
        let mut out = BytesMut::with_capacity(2 << 20);
        bytes = 0;
        let started = Instant::now();
        for b in &batches {
            let arrays: Vec<ArrayRef> = b
                .columns()
                .iter()
                .map(|a| decode_dictionary(a).unwrap())
                .collect();
            let enc = RowEncoder::new(&arrays, &names).unwrap();
            let mut row = 0;
            while row < enc.rows() {
                row = enc.encode(row, &mut out, 1 << 20);
                if out.len() >= 1 << 20 {
                    bytes += out.len();
                    out.clear();
                }
            }
        }
        bytes += out.len();
        best = best.min(started.elapsed().as_secs_f64());
    }
    println!(
        "encoder alone: {BENCH_ROWS} rows x 6 cols, {:.1} MB text in {:.3}s = {:.2} M rows/s, {:.0} MB/s",
        bytes as f64 / 1e6,
        best,
        BENCH_ROWS as f64 / best / 1e6,
        bytes as f64 / 1e6 / best
    );

    // End to end vs. plain COPY of the same text.
    let (db, ctx) = setup().await;
    let dir = TempDir::new();
    db.client.batch_execute(BENCH_DDL).await.unwrap();
    let key = "db/public.bench/1/part-00000.gz.parquet";
    let size = write_parquet(&dir.path(key), &batches, 131_072);
    drop(batches);
    let table = QualifiedName::new("public", "bench");
    let cols: Vec<(&str, &str)> = names.iter().map(|n| (*n, *n)).collect();
    // Client side alone: ranged reads + Parquet decode + encoder, no PostgreSQL.
    let restore_cols: Vec<RestoreColumn> = names
        .iter()
        .map(|n| RestoreColumn {
            source: n.to_string(),
            target: n.to_string(),
        })
        .collect();
    let object = ObjectRef {
        location: dir.location(),
        key: key.to_string(),
        size,
        s3: s3_options(),
    };
    let mut client_best = f64::MAX;
    for _ in 0..3 {
        let started = Instant::now();
        let reader = worker::restore::reader::ObjectReader::new(&ctx, &object);
        let opened = worker::restore::reader::open(reader, &restore_cols, None)
            .await
            .unwrap();
        let mut stream = opened.stream;
        let mut out = BytesMut::with_capacity(2 << 20);
        let mut rows = 0;
        while let Some(batch) = futures::StreamExt::next(&mut stream).await {
            let batch = batch.unwrap();
            let arrays: Vec<ArrayRef> = opened
                .positions
                .iter()
                .map(|&p| batch.column(p).clone())
                .collect();
            let enc = RowEncoder::new(&arrays, &names).unwrap();
            let mut row = 0;
            while row < enc.rows() {
                row = enc.encode(row, &mut out, 1 << 20);
                if out.len() >= 1 << 20 {
                    out.clear();
                }
            }
            rows += enc.rows();
        }
        assert_eq!(rows as i64, BENCH_ROWS);
        client_best = client_best.min(started.elapsed().as_secs_f64());
    }
    println!(
        "read + decode + encode (no PostgreSQL): {:.3}s = {:.2} M rows/s",
        client_best,
        BENCH_ROWS as f64 / client_best / 1e6
    );
    let mut restore_best = f64::MAX;
    for attempt in 0..3 {
        db.client.batch_execute("TRUNCATE bench").await.unwrap();
        let mut t = task(
            &db,
            &table,
            &cols,
            dir.location(),
            key,
            size,
            None,
            BENCH_ROWS as u64,
        );
        t.ledger.piece = format!("{key}#attempt{attempt}");
        let started = Instant::now();
        let stats = restore_file(&ctx, &t).await.unwrap();
        restore_best = restore_best.min(started.elapsed().as_secs_f64());
        assert_eq!(stats.rows, BENCH_ROWS as u64);
    }
    // Baseline: COPY TO STDOUT, then the same text back with COPY FROM STDIN.
    let text: Vec<bytes::Bytes> = {
        let stream = db.client.copy_out("COPY bench TO STDOUT").await.unwrap();
        stream.try_collect().await.unwrap()
    };
    let text_bytes: usize = text.iter().map(|b| b.len()).sum();
    let mut chunks = Vec::new();
    let mut cur = BytesMut::new();
    for b in &text {
        cur.extend_from_slice(b);
        if cur.len() >= 1 << 20 {
            chunks.push(cur.split().freeze());
        }
    }
    chunks.push(cur.freeze());
    let mut copy_best = f64::MAX;
    for _ in 0..3 {
        db.client.batch_execute("TRUNCATE bench").await.unwrap();
        let started = Instant::now();
        db.client
            .batch_execute("BEGIN; SET LOCAL synchronous_commit = off")
            .await
            .unwrap();
        let sink = db
            .client
            .copy_in::<_, bytes::Bytes>("COPY bench FROM STDIN")
            .await
            .unwrap();
        let mut sink = pin!(sink);
        for c in &chunks {
            sink.send(c.clone()).await.unwrap();
        }
        let rows = sink.as_mut().finish().await.unwrap();
        db.client.batch_execute("COMMIT").await.unwrap();
        copy_best = copy_best.min(started.elapsed().as_secs_f64());
        assert_eq!(rows, BENCH_ROWS as u64);
    }
    println!(
        "restore_file: {BENCH_ROWS} rows from a {:.1} MB gzip Parquet file in {:.3}s = {:.0} k rows/s",
        size as f64 / 1e6,
        restore_best,
        BENCH_ROWS as f64 / restore_best / 1e3
    );
    println!(
        "baseline COPY FROM STDIN of {:.1} MB text: {:.3}s = {:.0} k rows/s; restore_file / baseline time = {:.2}",
        text_bytes as f64 / 1e6,
        copy_best,
        BENCH_ROWS as f64 / copy_best / 1e3,
        restore_best / copy_best
    );
}
