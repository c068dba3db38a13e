//! `export_chunk` end to end against a real PostgreSQL and a real S3-compatible server:
//! nasty values survive the prefix transform exactly (NULL and "" distinct), for csv and
//! csv.gz, to S3 (single PUT and multipart) and to files, over key and page ranges; failures
//! are classified and leave no object and no pending multipart upload behind.

use crate::common::*;
use flate2::read::MultiGzDecoder;
use protocol::{ChunkRange, ObjectLocation, OutputFormat, QualifiedName};
use std::io::Read;
use worker::export::{export_chunk, ChunkStats};

/// Every value PostgreSQL's CSV output has to quote, escape or keep apart.
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
    Some("ünïcødé ✓ 日本語"),
    Some("\\."),
    Some("\\"),
    Some("."),
    Some(" lead"),
    Some("trail "),
    Some(","),
    Some("\n"),
    Some("x\"y,z\nw"),
    Some("NULL"),
];

const ROWS: i64 = 100_000;
/// Splits the ~23 MiB table into a ~16 MiB chunk (4 CSV parts, 2 gzip parts) and a ~7 MiB
/// one (2 CSV parts, 1 gzip part: the single-PUT path).
const KEY_SPLIT: i64 = 70_001;

/// Column name, prefix. `Mixed Col` has a prefix that itself needs quoting; `n` none.
const COLUMNS: &[(&str, Option<&str>)] = &[
    ("id", Some("x-")),
    ("txt", Some("x-")),
    ("Mixed Col", Some("q\"p,")),
    ("n", None),
    ("payload", Some("x-")),
];

type Row = Vec<Option<String>>;

fn table() -> QualifiedName {
    QualifiedName::new("public", "Odd \"Name\" Table")
}

/// The test table: ~23 MiB of CSV, hex payloads so gzip output still needs two parts.
async fn create_table(db: &ScratchDb) {
    db.client
        .batch_execute(&format!(
            "CREATE TABLE {} (id bigint PRIMARY KEY, txt text, \"Mixed Col\" text, n int, payload text)",
            table().quoted()
        ))
        .await
        .expect("create table");
    let nasty: Vec<Option<String>> = NASTY.iter().map(|v| v.map(str::to_string)).collect();
    db.client
        .execute(
            &format!(
                "INSERT INTO {} SELECT g, ($1::text[])[1 + g % 20], ($1::text[])[1 + (g * 7) % 20], \
                 CASE WHEN g % 7 = 0 THEN NULL ELSE g END, \
                 md5(g::text) || md5((g + 1)::text) || md5((g * 3)::text) || md5((g * 5)::text) \
                 || md5((g * 7)::text) || md5((g * 11)::text) \
                 FROM generate_series(1, $2::bigint) g",
                table().quoted()
            ),
            &[&nasty, &ROWS],
        )
        .await
        .expect("fill table");
    db.client
        .batch_execute(&format!("VACUUM ANALYZE {}", table().quoted()))
        .await
        .expect("analyze");
}

/// The table as PostgreSQL sees it, in id order.
async fn source_rows(db: &ScratchDb) -> Vec<Row> {
    db.client
        .query(
            &format!(
                "SELECT id::text, txt, \"Mixed Col\", n::text, payload FROM {} ORDER BY id",
                table().quoted()
            ),
            &[],
        )
        .await
        .expect("read source")
        .iter()
        .map(|r| (0..5).map(|i| r.get::<_, Option<String>>(i)).collect())
        .collect()
}

/// Parse one exported object: header, then rows with prefixes removed. With a prefix on a
/// column, an empty field can only be NULL ("" reads back as the bare prefix).
fn parse_object(bytes: &[u8], format: OutputFormat) -> Vec<Row> {
    let csv_bytes = match format {
        OutputFormat::Csv => bytes.to_vec(),
        OutputFormat::CsvGz => {
            let mut out = Vec::new();
            MultiGzDecoder::new(bytes)
                .read_to_end(&mut out)
                .expect("valid gzip");
            out
        }
        OutputFormat::RdsParquet => panic!("this helper reads CSV outputs only"),
    };
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .from_reader(&csv_bytes[..]);
    let header: Vec<String> = reader
        .headers()
        .expect("header row")
        .iter()
        .map(str::to_string)
        .collect();
    let names: Vec<&str> = COLUMNS.iter().map(|c| c.0).collect();
    assert_eq!(header, names);
    reader
        .records()
        .map(|rec| {
            let rec = rec.expect("valid CSV record");
            assert_eq!(rec.len(), COLUMNS.len());
            rec.iter()
                .zip(COLUMNS)
                .map(|(field, (name, prefix))| match (field, prefix) {
                    ("", _) => None,
                    (f, Some(p)) => Some(
                        f.strip_prefix(p)
                            .unwrap_or_else(|| panic!("{name}: {f:?} lacks prefix {p:?}"))
                            .to_string(),
                    ),
                    (f, None) => Some(f.to_string()),
                })
                .collect()
        })
        .collect()
}

fn sort_by_id(rows: &mut [Row]) {
    rows.sort_by_key(|r| {
        r[0].as_deref()
            .and_then(|s| s.parse::<i64>().ok())
            .unwrap_or(i64::MIN)
    });
}

#[derive(Clone, Copy, Debug)]
enum Sink {
    S3,
    File,
}

#[derive(Clone, Copy, Debug)]
enum Ranges {
    Key,
    Pages,
}

async fn chunk_ranges(db: &ScratchDb, kind: Ranges) -> Vec<ChunkRange> {
    match kind {
        Ranges::Key => vec![
            ChunkRange::Key {
                column: "id".into(),
                lo: None,
                hi: Some(KEY_SPLIT),
            },
            ChunkRange::Key {
                column: "id".into(),
                lo: Some(KEY_SPLIT),
                hi: None,
            },
        ],
        Ranges::Pages => {
            let row = db
                .client
                .query_one(
                    "SELECT (pg_relation_size($1::text::regclass) / current_setting('block_size')::bigint)::bigint",
                    &[&table().quoted()],
                )
                .await
                .expect("relation size");
            let pages: i64 = row.get(0);
            let mid = u32::try_from(pages * 7 / 10).expect("page count fits u32");
            assert!(mid > 0);
            vec![
                ChunkRange::Pages {
                    lo: None,
                    hi: Some(mid),
                },
                ChunkRange::Pages {
                    lo: Some(mid),
                    hi: None,
                },
            ]
        }
    }
}

/// Export the whole table in two chunks and check every row came back exactly.
/// Every message of the COPY `query`, fingerprinted as `protocol::proof` says.
async fn copy_fingerprint(db: &ScratchDb, query: &str) -> protocol::proof::RowFingerprint {
    use futures::TryStreamExt;
    let stream = db.client.copy_out(query).await.expect("copy out");
    let messages: Vec<bytes::Bytes> = stream.try_collect().await.expect("copy rows");
    let mut f = protocol::proof::RowFingerprint::default();
    for m in &messages {
        f.add_row(m);
    }
    f
}

async fn round_trip(format: OutputFormat, sink: Sink, ranges: Ranges) {
    let db = ScratchDb::create().await;
    create_table(&db).await;
    let ctx = worker_ctx();
    let s3 = ctx.s3(&s3_options()).await;
    let file_root = std::env::temp_dir().join(format!("pgfleet-wtest-{}", random_suffix()));
    let (location, bucket) = match sink {
        Sink::S3 => {
            let bucket = create_bucket(&s3).await;
            (
                ObjectLocation::S3 {
                    bucket: bucket.clone(),
                    prefix: "exports/run1/".into(),
                },
                Some(bucket),
            )
        }
        Sink::File => (
            ObjectLocation::File {
                root: file_root.to_string_lossy().to_string(),
            },
            None,
        ),
    };

    let mut exported = Vec::new();
    let mut most_parts = 0;
    for (seq, range) in chunk_ranges(&db, ranges).await.into_iter().enumerate() {
        let key = protocol::layout::csv::part_key(&table(), seq as u32, format.extension());
        let t = task(
            db.source(),
            table(),
            COLUMNS,
            range,
            location.clone(),
            &key,
            format,
        );
        let stats = export_chunk(&ctx, &t)
            .await
            .unwrap_or_else(|e| panic!("export failed: {e}"));
        let body = match &bucket {
            Some(b) => {
                let full_key = location.key(&key);
                let body = get_object(&s3, b, &full_key).await;
                // The upload path must match the size: one PUT up to a part, multipart beyond,
                // with exactly ceil(size / part) parts (s3s-fs ETags end in "-<parts>").
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
                } else {
                    assert!(!etag.contains('-'), "single PUT expected, etag {etag}");
                }
                assert_eq!(head.content_type(), Some(format.content_type()));
                body
            }
            None => std::fs::read(file_root.join(&key)).expect("read exported file"),
        };
        assert_eq!(stats.bytes, body.len() as u64, "bytes = stored object size");
        // The proof: CRC32C of the stored bytes (across every multipart part), and the
        // fingerprint of the rows a COPY of this chunk returns, read here on our own session.
        assert_eq!(
            stats.proof.crc32c,
            Some(crc32c::crc32c(&body)),
            "crc32c of the object"
        );
        assert_eq!(
            stats.proof.fingerprint,
            Some(copy_fingerprint(&db, &worker::export::source_query(&t).unwrap()).await),
            "fingerprint of the source rows"
        );
        let rows = parse_object(&body, format);
        assert_eq!(stats.rows, rows.len() as u64);
        most_parts = most_parts.max(stats.bytes.div_ceil(MIN_PART));
        exported.extend(rows);
    }
    assert!(
        most_parts >= 2,
        "a chunk must be big enough to need several parts"
    );

    let mut want = source_rows(&db).await;
    sort_by_id(&mut want);
    sort_by_id(&mut exported);
    assert_eq!(exported.len(), want.len());
    for (got, want) in exported.iter().zip(&want) {
        assert_eq!(got, want);
    }
    // NULL and "" really are both there and really stayed apart.
    assert!(want.iter().any(|r| r[1].is_none()));
    assert!(want.iter().any(|r| r[1].as_deref() == Some("")));

    match &bucket {
        Some(b) => {
            assert_eq!(pending_uploads(&s3, b).await, 0);
            delete_bucket(&s3, b).await;
        }
        None => {
            // Only the final files: no temporaries left behind.
            let folder = file_root.join(protocol::layout::csv::table_folder(&table()));
            let mut names: Vec<String> = std::fs::read_dir(&folder)
                .expect("table folder")
                .flatten()
                .map(|e| e.file_name().to_string_lossy().to_string())
                .collect();
            names.sort();
            let ext = format.extension();
            assert_eq!(
                names,
                vec![format!("part-00000.{ext}"), format!("part-00001.{ext}")]
            );
            std::fs::remove_dir_all(&file_root).expect("clean up");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_csv_key_ranges() {
    round_trip(OutputFormat::Csv, Sink::S3, Ranges::Key).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_csv_gz_page_ranges() {
    round_trip(OutputFormat::CsvGz, Sink::S3, Ranges::Pages).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_csv_gz_key_ranges() {
    round_trip(OutputFormat::CsvGz, Sink::S3, Ranges::Key).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_csv_page_ranges() {
    round_trip(OutputFormat::Csv, Sink::S3, Ranges::Pages).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn file_csv_page_ranges() {
    round_trip(OutputFormat::Csv, Sink::File, Ranges::Pages).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn file_csv_gz_key_ranges() {
    round_trip(OutputFormat::CsvGz, Sink::File, Ranges::Key).await;
}

/// A small table for the tests that do not need volume.
async fn small_table(db: &ScratchDb, name: &str, rows: i64) -> QualifiedName {
    let t = QualifiedName::new("public", name);
    db.client
        .batch_execute(&format!(
            "CREATE TABLE {0} (id bigint PRIMARY KEY, v text, k int); \
             INSERT INTO {0} SELECT g, 'v' || g, CASE WHEN g % 3 = 0 THEN NULL ELSE g END \
             FROM generate_series(1, {rows}) g",
            t.quoted()
        ))
        .await
        .expect("small table");
    t
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn empty_chunk_is_header_only_and_null_key_range_works() {
    let db = ScratchDb::create().await;
    let t = small_table(&db, "small", 30).await;
    let ctx = worker_ctx();
    let s3 = ctx.s3(&s3_options()).await;
    let bucket = create_bucket(&s3).await;
    let location = ObjectLocation::S3 {
        bucket: bucket.clone(),
        prefix: String::new(),
    };
    let cols = [("id", None), ("v", Some("p-"))];

    let empty = task(
        db.source(),
        t.clone(),
        &cols,
        ChunkRange::Key {
            column: "id".into(),
            lo: Some(1000),
            hi: None,
        },
        location.clone(),
        "empty.csv",
        OutputFormat::Csv,
    );
    let stats = export_chunk(&ctx, &empty).await.expect("empty export");
    let mut header = protocol::proof::ObjectChecksum::default();
    header.add(b"id,v\n");
    assert_eq!(
        stats,
        ChunkStats {
            rows: 0,
            bytes: 5,
            proof: protocol::proof::PartProof {
                crc32c: Some(header.value()),
                fingerprint: Some(Default::default()),
            },
        }
    );
    assert_eq!(get_object(&s3, &bucket, "empty.csv").await, b"id,v\n");

    let nulls = task(
        db.source(),
        t.clone(),
        &cols,
        ChunkRange::KeyIsNull { column: "k".into() },
        location.clone(),
        "nulls.csv",
        OutputFormat::Csv,
    );
    let stats = export_chunk(&ctx, &nulls).await.expect("null-key export");
    assert_eq!(stats.rows, 10);
    let body = String::from_utf8(get_object(&s3, &bucket, "nulls.csv").await).unwrap();
    assert!(body.starts_with("id,v\n3,p-v3\n"), "{body}");

    let all = task(
        db.source(),
        t,
        &cols,
        ChunkRange::All,
        location,
        "all.csv.gz",
        OutputFormat::CsvGz,
    );
    let stats = export_chunk(&ctx, &all).await.expect("whole-table export");
    assert_eq!(stats.rows, 30);
    delete_bucket(&s3, &bucket).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_table_or_column_is_fatal_and_leaves_nothing() {
    let db = ScratchDb::create().await;
    let t = small_table(&db, "present", 5).await;
    let ctx = worker_ctx();
    let s3 = ctx.s3(&s3_options()).await;
    let bucket = create_bucket(&s3).await;
    let location = ObjectLocation::S3 {
        bucket: bucket.clone(),
        prefix: "p/".into(),
    };

    let missing = QualifiedName::new("public", "does_not_exist");
    let task_missing = task(
        db.source(),
        missing,
        &[("id", Some("x-"))],
        ChunkRange::All,
        location.clone(),
        "missing/part-00000.csv",
        OutputFormat::Csv,
    );
    let err = export_chunk(&ctx, &task_missing).await.unwrap_err();
    assert!(!err.retryable, "{err}");
    assert!(err.message.contains("public.does_not_exist"), "{err}");
    assert!(err.message.contains("42P01"), "{err}");
    assert!(err.message.contains("p/missing/part-00000.csv"), "{err}");
    assert!(!object_exists(&s3, &bucket, "p/missing/part-00000.csv").await);

    let task_bad_column = task(
        db.source(),
        t.clone(),
        &[("id", None), ("nope", None)],
        ChunkRange::All,
        location.clone(),
        "bad/part-00000.csv",
        OutputFormat::Csv,
    );
    let err = export_chunk(&ctx, &task_bad_column).await.unwrap_err();
    assert!(!err.retryable && err.message.contains("42703"), "{err}");
    assert!(!object_exists(&s3, &bucket, "p/bad/part-00000.csv").await);
    assert_eq!(pending_uploads(&s3, &bucket).await, 0);

    // The failures returned their connections cleanly: the same context still works.
    let ok = task(
        db.source(),
        t,
        &[("id", None)],
        ChunkRange::All,
        location,
        "ok.csv",
        OutputFormat::Csv,
    );
    assert_eq!(
        export_chunk(&ctx, &ok)
            .await
            .expect("export after failures")
            .rows,
        5
    );
    delete_bucket(&s3, &bucket).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failure_mid_stream_aborts_the_multipart_upload() {
    let db = ScratchDb::create().await;
    create_table(&db).await;
    // A view that fails deep into the chunk, after several parts have been uploaded.
    db.client
        .batch_execute(&format!(
            "CREATE VIEW fails_late AS SELECT id, payload, (1 / (id - 70000))::text AS boom FROM {}",
            table().quoted()
        ))
        .await
        .expect("create view");
    let ctx = worker_ctx();
    let s3 = ctx.s3(&s3_options()).await;
    let bucket = create_bucket(&s3).await;
    let location = ObjectLocation::S3 {
        bucket: bucket.clone(),
        prefix: String::new(),
    };
    let t = task(
        db.source(),
        QualifiedName::new("public", "fails_late"),
        &[("id", None), ("payload", Some("x-")), ("boom", None)],
        ChunkRange::All,
        location.clone(),
        "late.csv",
        OutputFormat::Csv,
    );
    let err = export_chunk(&ctx, &t).await.unwrap_err();
    assert!(err.message.contains("22012"), "{err}");
    assert!(err.message.contains("public.fails_late"), "{err}");
    assert!(!err.retryable, "division by zero is not transient: {err}");
    assert!(!object_exists(&s3, &bucket, "late.csv").await);
    assert_eq!(pending_uploads(&s3, &bucket).await, 0);

    // And the pool is still healthy afterwards.
    let again = task(
        db.source(),
        table(),
        &[("id", None)],
        ChunkRange::Key {
            column: "id".into(),
            lo: Some(1),
            hi: Some(11),
        },
        location,
        "after.csv",
        OutputFormat::Csv,
    );
    assert_eq!(
        export_chunk(&ctx, &again)
            .await
            .expect("export after failure")
            .rows,
        10
    );
    delete_bucket(&s3, &bucket).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshot_import_and_statement_timeout() {
    let db = ScratchDb::create().await;
    let t = small_table(&db, "snap", 20).await;
    let ctx = worker_ctx();
    let root = std::env::temp_dir().join(format!("pgfleet-wtest-{}", random_suffix()));
    let location = ObjectLocation::File {
        root: root.to_string_lossy().to_string(),
    };

    // Export a snapshot from a transaction that stays open, then add rows after it.
    let (holder, conn) = tokio_postgres::connect(&db.url, tokio_postgres::NoTls)
        .await
        .expect("connect");
    tokio::spawn(async move {
        let _ = conn.await;
    });
    holder
        .batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ")
        .await
        .unwrap();
    let snapshot: String = holder
        .query_one("SELECT pg_export_snapshot()", &[])
        .await
        .unwrap()
        .get(0);
    db.client
        .batch_execute(&format!(
            "INSERT INTO {} SELECT g, 'late', 1 FROM generate_series(21, 25) g",
            t.quoted()
        ))
        .await
        .unwrap();

    let mut with_snapshot = task(
        db.source(),
        t.clone(),
        &[("id", None), ("v", Some("x-"))],
        ChunkRange::All,
        location.clone(),
        "snap.csv",
        OutputFormat::Csv,
    );
    with_snapshot.snapshot = Some(snapshot);
    assert_eq!(
        export_chunk(&ctx, &with_snapshot)
            .await
            .expect("snapshot export")
            .rows,
        20
    );

    let mut without = with_snapshot.clone();
    without.snapshot = None;
    assert_eq!(
        export_chunk(&ctx, &without)
            .await
            .expect("plain export")
            .rows,
        25
    );
    holder.batch_execute("COMMIT").await.unwrap();

    // A well-formed id of a snapshot that does not exist: fatal, retrying cannot help.
    let mut stale = without.clone();
    stale.snapshot = Some("00000003-0000001B-1".into());
    let err = export_chunk(&ctx, &stale).await.unwrap_err();
    assert!(!err.retryable && err.message.contains("22023"), "{err}");
    // Anything else is refused before touching the database.
    stale.snapshot = Some("1'; DROP TABLE snap; --".into());
    assert!(!export_chunk(&ctx, &stale).await.unwrap_err().retryable);

    // statement_timeout is applied (as a parameter) and a timeout is retryable.
    db.client
        .batch_execute("CREATE VIEW slow AS SELECT g AS id, pg_sleep(0.05)::text AS s FROM generate_series(1, 100) g")
        .await
        .unwrap();
    let mut slow = task(
        db.source(),
        QualifiedName::new("public", "slow"),
        &[("id", None)],
        ChunkRange::All,
        location,
        "slow.csv",
        OutputFormat::Csv,
    );
    slow.source.statement_timeout = Some("200ms".into());
    let err = export_chunk(&ctx, &slow).await.unwrap_err();
    assert!(err.retryable && err.message.contains("57014"), "{err}");
    assert!(!root.join("slow.csv").exists());
    let leftovers: Vec<_> = std::fs::read_dir(&root)
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert_eq!(leftovers.len(), 1, "only snap.csv: {leftovers:?}");
    std::fs::remove_dir_all(&root).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn put_object_writes_small_objects() {
    let ctx = worker_ctx();
    let opts = s3_options();
    let s3 = ctx.s3(&opts).await;
    let bucket = create_bucket(&s3).await;
    let location = ObjectLocation::S3 {
        bucket: bucket.clone(),
        prefix: "job/".into(),
    };
    let body = bytes::Bytes::from_static(b"{\"ok\":true}");
    // (A missing bucket cannot be tested here: s3s-fs creates buckets on PutObject. The
    // classification of NoSuchBucket is unit-tested in error.rs.)
    fleet_io::sink::put_object(
        &ctx,
        &location,
        &opts,
        "_manifest.json",
        body.clone(),
        "application/json",
    )
    .await
    .expect("put to S3");
    assert_eq!(get_object(&s3, &bucket, "job/_manifest.json").await, body);
    let head = s3
        .head_object()
        .bucket(&bucket)
        .key("job/_manifest.json")
        .send()
        .await
        .unwrap();
    assert_eq!(head.content_type(), Some("application/json"));

    let root = std::env::temp_dir().join(format!("pgfleet-wtest-{}", random_suffix()));
    let file_loc = ObjectLocation::File {
        root: root.to_string_lossy().to_string(),
    };
    fleet_io::sink::put_object(
        &ctx,
        &file_loc,
        &opts,
        "job/_SUCCESS",
        bytes::Bytes::new(),
        "text/plain",
    )
    .await
    .expect("put to file");
    assert_eq!(std::fs::read(root.join("job/_SUCCESS")).unwrap(), b"");
    std::fs::remove_dir_all(&root).unwrap();

    delete_bucket(&s3, &bucket).await;
}
