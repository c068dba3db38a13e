//! Export planning is set-based: the statements it sends to the source do not grow with the
//! number of tables or partitions. Against a real PostgreSQL (PGFLEET_TEST_PG_URL, default
//! postgresql://postgres@127.0.0.1:5432/postgres), in a scratch database with a few hundred
//! small never-analyzed tables and a partitioned table of a few hundred partitions. Counts
//! what the catalog module sends (`catalog::queries`); fails, never skips, when PostgreSQL is
//! unreachable.

use coordinator::export::catalog::queries;
use coordinator::export::plan::{plan_export, ExportPlan, KeyChoice};
use protocol::{ChunkRange, ExportSpec, JobSpec};
use std::time::{Duration, Instant};
use tokio_postgres::{Client, IsolationLevel, NoTls};

/// Tables in schema `few`, and in schema `many`.
const FEW: usize = 10;
const MANY: usize = 400;
/// Partitions of `parted.events`.
const PARTITIONS: usize = 300;
const ROWS: i64 = 5;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn planning_sends_the_same_statements_whatever_the_number_of_tables() {
    crate::scratch_db::with_scratch_db("pgfleet_pscale_", run).await;
}

/// `n` tables `schema.t1..tn` of [`ROWS`] rows, committed every 100 tables (one transaction
/// holding thousands of locks could run out of lock space).
async fn make_tables(client: &Client, schema: &str, n: usize) {
    client
        .batch_execute(&format!("CREATE SCHEMA {schema}"))
        .await
        .expect("create schema");
    for start in (1..=n).step_by(100) {
        let end = (start + 99).min(n);
        client
            .batch_execute(&format!(
                "DO $$ BEGIN FOR i IN {start}..{end} LOOP
                   EXECUTE format('CREATE TABLE {schema}.%I (id bigint PRIMARY KEY, v text NOT NULL)', 't' || i);
                   EXECUTE format('INSERT INTO {schema}.%I SELECT g, ''v'' || g FROM generate_series(1, {ROWS}) g', 't' || i);
                 END LOOP; END $$"
            ))
            .await
            .expect("create tables");
    }
}

async fn run(config: tokio_postgres::Config) {
    let (mut client, conn) = config.connect(NoTls).await.expect("connect scratch db");
    tokio::spawn(async move {
        let _ = conn.await;
    });
    make_tables(&client, "few", FEW).await;
    make_tables(&client, "many", MANY).await;
    client
        .batch_execute(
            "CREATE SCHEMA parted;
             CREATE TABLE parted.events (id bigint PRIMARY KEY, v text) PARTITION BY RANGE (id);",
        )
        .await
        .expect("create partitioned table");
    for start in (1..=PARTITIONS).step_by(100) {
        let end = (start + 99).min(PARTITIONS);
        client
            .batch_execute(&format!(
                "DO $$ BEGIN FOR i IN {start}..{end} LOOP
                   EXECUTE format('CREATE TABLE parted.%I PARTITION OF parted.events FOR VALUES FROM (%s) TO (%s)',
                                  'events_' || i, (i - 1) * 100, i * 100);
                 END LOOP; END $$"
            ))
            .await
            .expect("create partitions");
    }
    client
        .batch_execute(&format!(
            "INSERT INTO parted.events SELECT g, 'v' FROM generate_series(0, {} - 1, 20) g",
            PARTITIONS * 100
        ))
        .await
        .expect("fill partitions");

    let (few, few_statements, _) = plan_counted(&mut client, "few.*").await;
    assert_eq!(few.tables.len(), FEW);
    let (many, many_statements, many_time) = plan_counted(&mut client, "many.*").await;
    assert_eq!(many.tables.len(), MANY);
    assert_eq!(
        few_statements, many_statements,
        "planning {FEW} tables sent {few_statements} statements, {MANY} tables {many_statements}: \
         catalog reads must be one statement per phase for all tables, not one per table"
    );
    assert!(
        many_statements <= 12,
        "{many_statements} statements to plan tiny tables"
    );
    // Still the same plans: exact counts of the never-analyzed tables, one chunk each on the
    // primary key.
    for t in &many.tables {
        assert_eq!(t.estimated_rows, ROWS as u64, "{}", t.table.display_name());
        assert_eq!(
            t.key,
            KeyChoice::Integer {
                column: "id".into()
            }
        );
        assert_eq!(t.chunks, [ChunkRange::All]);
        assert_eq!(t.columns, ["id", "v"]);
    }
    // A generous bound, only as a second check: the old per-table queries took ~10 ms each
    // here; set-based planning takes well under 1 ms a table.
    assert!(
        many_time < Duration::from_secs(20),
        "planning {MANY} tables took {many_time:?}"
    );

    // The partitioned table: its size sums every partition in the same statement.
    let (root, root_statements, _) = plan_counted(&mut client, "parted.*").await;
    assert_eq!(
        root.tables.len(),
        1,
        "the partitions are read through their root"
    );
    assert_eq!(
        root.tables[0].estimated_rows,
        (PARTITIONS * 100 / 20) as u64
    );
    assert_eq!(root_statements, few_statements);
    // The partitions alone (root excluded): each a table of its own, planned the same way.
    let (parts, parts_statements, _) =
        plan_with_exclude(&mut client, "parted.*", "parted.events").await;
    assert_eq!(parts.tables.len(), PARTITIONS);
    assert!(parts.tables.iter().all(|t| t.estimated_rows == 5));
    assert_eq!(parts_statements, few_statements);
}

async fn plan_counted(client: &mut Client, include: &str) -> (ExportPlan, u64, Duration) {
    plan_with_exclude(client, include, "").await
}

async fn plan_with_exclude(
    client: &mut Client,
    include: &str,
    exclude: &str,
) -> (ExportPlan, u64, Duration) {
    let spec = spec(include, exclude);
    let tx = client
        .build_transaction()
        .read_only(true)
        .isolation_level(IsolationLevel::RepeatableRead)
        .start()
        .await
        .expect("BEGIN READ ONLY");
    let started = Instant::now();
    let (plan, statements) = queries::counted(plan_export(&tx, &spec)).await;
    let elapsed = started.elapsed();
    let plan = plan.unwrap_or_else(|e| panic!("plan of {include} failed: {e:#}"));
    // Planning must not keep a lock on every table it read until it commits: thousands
    // exhaust the server's lock table.
    let locks: i64 = tx
        .query_one(
            "SELECT count(*) FROM pg_locks WHERE pid = pg_backend_pid() AND locktype = 'relation'",
            &[],
        )
        .await
        .expect("pg_locks")
        .get(0);
    assert!(
        locks < 50,
        "planning {include} left {locks} relation locks held"
    );
    tx.rollback().await.expect("rollback");
    (plan, statements, elapsed)
}

fn spec(include: &str, exclude: &str) -> ExportSpec {
    let exclude = if exclude.is_empty() {
        String::new()
    } else {
        format!("exclude = [\"{exclude}\"]\n")
    };
    let text = format!(
        "kind = \"export\"\nname = \"t\"\n[source]\n[tables]\ninclude = [\"{include}\"]\n{exclude}\
         [output]\nurl = \"file:///tmp/out/\"\n"
    );
    match JobSpec::from_toml(&text) {
        Ok(JobSpec::Export(spec)) => spec,
        Ok(other) => panic!("expected an export spec, got {}", other.kind()),
        Err(e) => panic!("bad test spec: {e}\n{text}"),
    }
}
