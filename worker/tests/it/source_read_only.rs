//! Every source session is READ ONLY: the export's transaction (`export::source::begin`, exactly
//! as an export chunk opens it: per-chunk, with a statement timeout, and with an imported snapshot)
//! refuses every kind of write with SQLSTATE 25006 `read_only_sql_transaction`, cannot be
//! switched to READ WRITE, and leaves the tables as they were. A plain connection built for a
//! source (`pg_config` with `read_only = true`, and the worker's pool) refuses writes outside
//! any explicit transaction too (`default_transaction_read_only`).

use crate::common::{self, ScratchDb};
use protocol::{ChunkRange, ObjectLocation, OutputFormat, PgConn, QualifiedName};
use tokio_postgres::error::SqlState;
use worker::export::source;

/// Statements that write, each tried in a fresh session.
const WRITES: &[&str] = &[
    "INSERT INTO victim (id, v) VALUES (100, 'x')",
    "UPDATE victim SET v = 'changed'",
    "DELETE FROM victim",
    "TRUNCATE victim",
    "CREATE TABLE created_by_export (a int)",
    "CREATE TEMP TABLE temp_by_export (a int)",
    "CREATE INDEX ON victim (v)",
    "ALTER TABLE victim ADD COLUMN extra int",
    "DROP TABLE victim",
    "SELECT nextval('victim_seq')",
    "SELECT setval('victim_seq', 1000)",
    "SELECT * FROM victim FOR UPDATE",
    "COMMENT ON TABLE victim IS 'changed'",
    "GRANT SELECT ON victim TO PUBLIC",
    "CREATE SEQUENCE seq_by_export",
    "INSERT INTO victim SELECT g, 'g' FROM generate_series(200, 210) g",
    "WITH d AS (DELETE FROM victim RETURNING *) SELECT count(*) FROM d",
    // Not `lo_create()`: PostgreSQL (15 at least) lets large objects be created in a read-only
    // transaction. pgfleet never calls the large-object functions.
];

async fn setup() -> ScratchDb {
    let db = ScratchDb::create().await;
    db.client
        .batch_execute(
            "CREATE TABLE victim (id int PRIMARY KEY, v text);
             INSERT INTO victim SELECT g, 'v' || g FROM generate_series(1, 50) g;
             CREATE SEQUENCE victim_seq;
             SELECT nextval('victim_seq');",
        )
        .await
        .expect("fixture");
    db
}

/// (rows, checksum, sequence value, tables in public, comment): what a write would change.
async fn fingerprint(db: &ScratchDb) -> (i64, String, i64, i64, Option<String>) {
    let row = db
        .client
        .query_one(
            "SELECT (SELECT count(*) FROM victim),
                    (SELECT md5(string_agg(t::text, '|' ORDER BY id)) FROM victim t),
                    (SELECT last_value FROM victim_seq),
                    (SELECT count(*) FROM pg_class WHERE relnamespace = 'public'::regnamespace),
                    obj_description('victim'::regclass, 'pg_class')",
            &[],
        )
        .await
        .expect("fingerprint");
    (row.get(0), row.get(1), row.get(2), row.get(3), row.get(4))
}

fn chunk(source: PgConn, snapshot: Option<String>) -> protocol::ExportChunk {
    let mut t = common::task(
        source,
        QualifiedName::new("public", "victim"),
        &[("id", None), ("v", None)],
        ChunkRange::All,
        ObjectLocation::File {
            root: std::env::temp_dir().to_string_lossy().into_owned(),
        },
        "unused.csv",
        OutputFormat::Csv,
    );
    t.snapshot = snapshot;
    t
}

fn assert_read_only(e: &tokio_postgres::Error, what: &str) {
    let code = e.code().map(|c| c.code().to_string());
    assert_eq!(
        e.code(),
        Some(&SqlState::READ_ONLY_SQL_TRANSACTION),
        "{what}: expected 25006 read_only_sql_transaction, got {code:?}: {e:?}"
    );
}

/// The three ways an export opens its transaction: plain per-chunk, with a statement timeout,
/// and importing the coordinator's exported snapshot.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn export_sessions_refuse_every_write() {
    let db = setup().await;
    let before = fingerprint(&db).await;
    let ctx = common::worker_ctx();

    // A consistent-snapshot job: the coordinator holds an exported snapshot open.
    let holder = {
        let (c, conn) = tokio_postgres::connect(&db.url, tokio_postgres::NoTls)
            .await
            .expect("connect");
        tokio::spawn(async move {
            let _ = conn.await;
        });
        c
    };
    holder
        .batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
        .await
        .unwrap();
    let snapshot: String = holder
        .query_one("SELECT pg_export_snapshot()", &[])
        .await
        .unwrap()
        .get(0);

    let plain = db.source();
    let mut timed = db.source();
    timed.statement_timeout = Some("5min".into());
    let variants = [
        ("per-chunk", chunk(plain.clone(), None)),
        ("statement_timeout", chunk(timed, None)),
        ("imported snapshot", chunk(plain.clone(), Some(snapshot))),
    ];
    let mut tried = 0;
    for (variant, task) in &variants {
        for sql in WRITES {
            let mut session = source::begin(&ctx, task)
                .await
                .unwrap_or_else(|e| panic!("{variant}: begin: {e:?}"));
            let err = session
                .client()
                .batch_execute(sql)
                .await
                .expect_err(&format!("{variant}: {sql} must fail"));
            assert_read_only(&err, &format!("{variant}: {sql}"));
            session.rollback().await;
            tried += 1;
        }

        // COPY FROM STDIN into the table.
        let mut session = source::begin(&ctx, task).await.unwrap();
        let err = match session
            .client()
            .copy_in::<_, bytes::Bytes>("COPY victim FROM STDIN")
            .await
        {
            Ok(_) => panic!("{variant}: COPY FROM STDIN must fail"),
            Err(e) => e,
        };
        assert_read_only(&err, &format!("{variant}: COPY FROM STDIN"));
        session.rollback().await;

        // The transaction cannot be turned into a writable one, and reading still works.
        let mut session = source::begin(&ctx, task).await.unwrap();
        let err = session
            .client()
            .batch_execute("SET TRANSACTION READ WRITE")
            .await
            .expect_err(&format!("{variant}: SET TRANSACTION READ WRITE must fail"));
        assert_eq!(
            err.code(),
            Some(&SqlState::ACTIVE_SQL_TRANSACTION),
            "{variant}: {err:?}"
        );
        session.rollback().await;
        let mut session = source::begin(&ctx, task).await.unwrap();
        let err = session
            .client()
            .batch_execute("SET transaction_read_only = off")
            .await
            .expect_err(&format!(
                "{variant}: SET transaction_read_only = off must fail"
            ));
        assert_eq!(
            err.code(),
            Some(&SqlState::ACTIVE_SQL_TRANSACTION),
            "{variant}: {err:?}"
        );
        session.rollback().await;
        let session = source::begin(&ctx, task).await.unwrap();
        let ro: String = session
            .client()
            .query_one("SHOW transaction_read_only", &[])
            .await
            .unwrap()
            .get(0);
        assert_eq!(ro, "on", "{variant}");
        let n: i64 = session
            .client()
            .query_one("SELECT count(*) FROM victim", &[])
            .await
            .unwrap()
            .get(0);
        assert_eq!(n, 50, "{variant}: reads work");
        session.commit().await.unwrap();
    }
    assert_eq!(tried, WRITES.len() * variants.len());
    holder.batch_execute("COMMIT").await.unwrap();
    assert_eq!(fingerprint(&db).await, before, "the source changed");
}

/// Outside any explicit transaction: a connection configured for a source (`pg_config`, and the
/// worker's pool built from it) is read-only by default.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn source_connections_are_read_only_by_default() {
    let db = setup().await;
    let before = fingerprint(&db).await;

    let source = db.source();
    assert!(source.read_only);
    let (config, tls) = fleet_io::pg::pg_config(&source).expect("pg_config");
    let direct = fleet_io::pg::connect(&config, &tls)
        .await
        .unwrap_or_else(|e| panic!("connect: {}", e.message));
    let ctx = common::worker_ctx();
    let pooled = ctx.pg(&source).await.expect("pooled source connection");

    for (how, client) in [("pg_config", &direct), ("worker pool", &**pooled)] {
        let ro: String = client
            .query_one("SHOW default_transaction_read_only", &[])
            .await
            .unwrap()
            .get(0);
        assert_eq!(ro, "on", "{how}");
        for sql in WRITES {
            let err = client
                .batch_execute(sql)
                .await
                .expect_err(&format!("{how}: {sql} must fail"));
            assert_read_only(&err, &format!("{how}: {sql}"));
        }
        // A transaction opened without saying READ ONLY is read-only too.
        client.batch_execute("BEGIN").await.unwrap();
        let err = client
            .batch_execute("INSERT INTO victim (id, v) VALUES (300, 'x')")
            .await
            .expect_err("insert in BEGIN");
        assert_read_only(&err, &format!("{how}: INSERT after BEGIN"));
        client.batch_execute("ROLLBACK").await.unwrap();
    }

    // The same database through a writable (restore target) configuration: the writes above
    // would have succeeded, so the refusals come from the read-only setting, not from the
    // statements.
    let mut target = source.clone();
    target.read_only = false;
    let (config, tls) = fleet_io::pg::pg_config(&target).expect("pg_config");
    let writable = fleet_io::pg::connect(&config, &tls)
        .await
        .unwrap_or_else(|e| panic!("connect: {}", e.message));
    writable
        .batch_execute("BEGIN; INSERT INTO victim (id, v) VALUES (100, 'x'); ROLLBACK")
        .await
        .expect("a writable session writes");
    assert_eq!(fingerprint(&db).await, before, "the source changed");
}
