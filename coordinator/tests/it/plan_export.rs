//! Export planning against a real PostgreSQL (PGFLEET_TEST_PG_URL, default
//! postgresql://postgres@127.0.0.1:5432/postgres). Creates a scratch database, plans several
//! job specs inside READ ONLY transactions, and checks each plan by counting rows per chunk.
//! Fails, never skips, when PostgreSQL is unreachable.

use coordinator::export::catalog;
use coordinator::export::chunking::{self, KeyDistribution};
use coordinator::export::plan::{plan_export, ExportPlan, KeyChoice, TablePlan};
use protocol::{ChunkRange, ExportSpec, JobSpec, QualifiedName};
use tokio_postgres::{Client, IsolationLevel, NoTls};

const ODD: &str = "Odd \"Name\" Table";

const SCHEMA: &str = r#"
CREATE TABLE events (id bigint PRIMARY KEY, payload text NOT NULL)
    WITH (autovacuum_enabled = off);
-- 90% of the rows in ids 1..180000, the rest spread up to 2e10: naive strides would put
-- almost everything in the first chunk.
INSERT INTO events
SELECT CASE WHEN g <= 180000 THEN g ELSE 180000 + (g - 180000)::bigint * 1000000 END,
       rpad('payload ' || g, 100, '.')
  FROM generate_series(1, 200000) g;

CREATE TABLE nopk (a int, b text) WITH (autovacuum_enabled = off);
INSERT INTO nopk SELECT g, repeat('x', 50) FROM generate_series(1, 30000) g;

CREATE TABLE "Odd ""Name"" Table" (id int PRIMARY KEY, "Weird Col" text, dropped int,
    gen int GENERATED ALWAYS AS (id * 2) STORED) WITH (autovacuum_enabled = off);
ALTER TABLE "Odd ""Name"" Table" DROP COLUMN dropped;
INSERT INTO "Odd ""Name"" Table" (id, "Weird Col") SELECT g, 'w' FROM generate_series(1, 5000) g;

CREATE TABLE measurements (id bigint PRIMARY KEY, v int) PARTITION BY RANGE (id);
CREATE TABLE measurements_p1 PARTITION OF measurements FOR VALUES FROM (MINVALUE) TO (10000)
    WITH (autovacuum_enabled = off);
CREATE TABLE measurements_p2 PARTITION OF measurements FOR VALUES FROM (10000) TO (50000)
    WITH (autovacuum_enabled = off);
CREATE TABLE measurements_p3 PARTITION OF measurements FOR VALUES FROM (50000) TO (MAXVALUE)
    PARTITION BY RANGE (id);
CREATE TABLE measurements_p3a PARTITION OF measurements_p3 FOR VALUES FROM (50000) TO (60000)
    WITH (autovacuum_enabled = off);
CREATE TABLE measurements_p3b PARTITION OF measurements_p3 FOR VALUES FROM (60000) TO (MAXVALUE)
    WITH (autovacuum_enabled = off);
INSERT INTO measurements SELECT g, g % 7 FROM generate_series(1, 80000) g;

CREATE TABLE empty_t (id bigint PRIMARY KEY, note text) WITH (autovacuum_enabled = off);

CREATE TABLE textpk (code text PRIMARY KEY, n int, k bigint NOT NULL)
    WITH (autovacuum_enabled = off);
INSERT INTO textpk SELECT 'c' || g, CASE WHEN g % 10 = 0 THEN NULL ELSE g END, g
  FROM generate_series(1, 40000) g;

-- Keys of other types: uuid, composite (text collated "C" first), and keys that cannot split:
-- a unique index over a nullable column, a partial one, an expression.
CREATE TABLE uuidpk (id uuid PRIMARY KEY, v int) WITH (autovacuum_enabled = off);
INSERT INTO uuidpk SELECT md5(g::text)::uuid, g FROM generate_series(1, 30000) g;
CREATE TABLE compositepk (a text COLLATE "C" NOT NULL, b int NOT NULL, v int,
    PRIMARY KEY (a, b)) WITH (autovacuum_enabled = off);
-- Key values that need quoting in the chunk's SQL: a quote, a backslash.
INSERT INTO compositepk
SELECT CASE g % 13 WHEN 0 THEN E'back\\slash' WHEN 1 THEN 'it''s' ELSE 'k' || (g % 13) END, g, g
  FROM generate_series(1, 30000) g;
CREATE TABLE weakkeys (a text, b text NOT NULL, c text NOT NULL) WITH (autovacuum_enabled = off);
CREATE UNIQUE INDEX ON weakkeys (a);
CREATE UNIQUE INDEX ON weakkeys (b) WHERE b <> '';
CREATE UNIQUE INDEX ON weakkeys (lower(c));
INSERT INTO weakkeys SELECT 'a' || g, 'b' || g, 'c' || g FROM generate_series(1, 30000) g;

-- A partitioned table with a uuid primary key: key ranges through the parent.
CREATE SCHEMA parts;
CREATE TABLE parts.u (id uuid PRIMARY KEY, v int) PARTITION BY HASH (id);
CREATE TABLE parts.u_0 PARTITION OF parts.u FOR VALUES WITH (MODULUS 2, REMAINDER 0)
    WITH (autovacuum_enabled = off);
CREATE TABLE parts.u_1 PARTITION OF parts.u FOR VALUES WITH (MODULUS 2, REMAINDER 1)
    WITH (autovacuum_enabled = off);
INSERT INTO parts.u SELECT md5(g::text)::uuid, g FROM generate_series(1, 20000) g;

CREATE SCHEMA other;
CREATE TABLE other.things (id int PRIMARY KEY) WITH (autovacuum_enabled = off);
INSERT INTO other.things SELECT generate_series(1, 10);
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plans_exports_against_postgres() {
    crate::scratch_db::with_scratch_db("pgfleet_ptest_", run_all).await;
}

async fn run_all(config: tokio_postgres::Config) {
    let (mut client, conn) = config.connect(NoTls).await.expect("connect scratch db");
    tokio::spawn(async move {
        let _ = conn.await;
    });
    client.batch_execute(SCHEMA).await.expect("create fixtures");

    // Nothing analyzed yet: row counts come from samples.
    let plan = plan_ok(
        &mut client,
        &spec(&["public.*"], &[], &[], "rows_per_chunk = 20000"),
    )
    .await;
    check_everything(&client, &plan).await;
    assert!(
        plan.notes
            .iter()
            .any(|n| n.contains("events has no usable statistics")),
        "{:?}",
        plan.notes
    );

    client
        .batch_execute("ANALYZE events; ANALYZE measurements; ANALYZE nopk;")
        .await
        .expect("analyze");
    let plan = plan_ok(
        &mut client,
        &spec(&["public.*"], &[], &[], "rows_per_chunk = 20000"),
    )
    .await;
    check_everything(&client, &plan).await;
    let events = table(&plan, "events");
    let error = events.estimated_rows.abs_diff(200_000) as f64 / 200_000.0;
    assert!(error < 0.01, "analyzed estimate {}", events.estimated_rows);

    excludes_and_other_schemas(&mut client).await;
    unique_key_ranges(&mut client).await;
    literal_names_and_partitions(&mut client).await;
    key_overrides(&mut client).await;
    byte_targets(&mut client).await;
    errors(&mut client).await;
    histogram_points(&client).await;
}

/// Assertions on the `public.*` plan at 20000 rows per chunk.
async fn check_everything(client: &Client, plan: &ExportPlan) {
    let names: Vec<&str> = plan.tables.iter().map(|t| t.table.name.as_str()).collect();
    assert_eq!(
        names,
        [
            ODD,
            "compositepk",
            "empty_t",
            "events",
            "measurements",
            "nopk",
            "textpk",
            "uuidpk",
            "weakkeys"
        ]
    );
    assert!(plan.tables.iter().all(|t| t.table.schema == "public"));

    assert!(
        plan.database.starts_with("pgfleet_ptest_"),
        "{}",
        plan.database
    );
    let events = table(plan, "events");
    assert_eq!(events.key, integer("id"));
    assert!(
        events.own_rows_only,
        "an ordinary table reads FROM ONLY itself"
    );
    assert_eq!(events.columns, ["id", "payload"]);
    let types: Vec<(&str, &str, Option<i32>)> = events
        .column_types
        .iter()
        .map(|t| {
            (
                t.typname.as_str(),
                t.data_type.as_str(),
                t.numeric_precision,
            )
        })
        .collect();
    assert_eq!(
        types,
        [("int8", "bigint", Some(64)), ("text", "text", None)]
    );
    assert!(
        (8..=13).contains(&events.chunks.len()),
        "{:?}",
        events.chunks
    );
    let counts = check_coverage(client, events).await;
    println!(
        "events: {} estimated rows, {} bytes, rows per chunk {counts:?}",
        events.estimated_rows, events.estimated_bytes
    );
    // The skewed table must still be balanced (see chunking's tests for the tolerance).
    let ideal = 200_000.0 / counts.len() as f64;
    for c in &counts {
        assert!(
            (*c as f64 - ideal).abs() / ideal <= 0.35,
            "unbalanced chunks {counts:?}"
        );
    }

    let odd = table(plan, ODD);
    assert_eq!(odd.key, integer("id"));
    assert_eq!(odd.columns, ["id", "Weird Col", "gen"]);
    let typnames: Vec<&str> = odd
        .column_types
        .iter()
        .map(|t| t.typname.as_str())
        .collect();
    assert_eq!(typnames, ["int4", "text", "int4"], "dropped column skipped");
    assert_eq!(odd.chunks, [ChunkRange::All]);
    check_coverage(client, odd).await;

    let m = table(plan, "measurements");
    assert_eq!(m.key, integer("id"));
    assert!(
        !m.own_rows_only,
        "a partitioned table's rows are in its partitions"
    );
    assert!((3..=6).contains(&m.chunks.len()), "{:?}", m.chunks);
    check_coverage(client, m).await;
    for part in ["p1", "p2", "p3", "p3a", "p3b"] {
        let name = format!("skipped partition public.measurements_{part}:");
        assert!(
            plan.notes.iter().any(|n| n.starts_with(&name)),
            "no note for {part}: {:?}",
            plan.notes
        );
    }

    let empty = table(plan, "empty_t");
    assert_eq!(empty.chunks, [ChunkRange::All]);
    assert_eq!(empty.estimated_rows, 0);
    check_coverage(client, empty).await;

    // Per-chunk snapshots: page ranges would duplicate rows updated meanwhile, so a table
    // without a usable unique key is one chunk (and the plan says why).
    for name in ["nopk", "weakkeys"] {
        let t = table(plan, name);
        assert_eq!(t.key, KeyChoice::Whole, "{name}");
        assert_eq!(t.chunks, [ChunkRange::All], "{name}");
        assert!(
            plan.notes
                .iter()
                .any(|n| n.starts_with(&format!("public.{name}: no unique key"))),
            "{:?}",
            plan.notes
        );
    }
    let t = table(plan, "nopk");
    let error = t.estimated_rows.abs_diff(30_000) as f64 / 30_000.0;
    assert!(error < 0.1, "nopk: estimated {}", t.estimated_rows);

    for (name, columns, rows) in [
        ("textpk", &["code"][..], 40_000),
        ("uuidpk", &["id"], 30_000),
        ("compositepk", &["a", "b"], 30_000),
    ] {
        let t = table(plan, name);
        let KeyChoice::Unique { columns: key } = &t.key else {
            panic!("{name}: {:?}", t.key);
        };
        let key: Vec<&str> = key.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(key, columns, "{name}");
        assert!((2..=3).contains(&t.chunks.len()), "{name}: {:?}", t.chunks);
        let error = t.estimated_rows.abs_diff(rows) as f64 / rows as f64;
        assert!(error < 0.1, "{name}: estimated {}", t.estimated_rows);
        check_coverage(client, t).await;
    }
}

/// Small chunks on keys of other types: many ranges, balanced, every row in one of them.
async fn unique_key_ranges(client: &mut Client) {
    let plan = plan_ok(
        client,
        &spec(
            &["textpk", "uuidpk", "compositepk"],
            &[],
            &[],
            "rows_per_chunk = 1000",
        ),
    )
    .await;
    for t in &plan.tables {
        assert!(
            matches!(t.key, KeyChoice::Unique { .. }),
            "{}: {:?}",
            t.table,
            t.key
        );
        assert!(
            (25..=45).contains(&t.chunks.len()),
            "{}: {}",
            t.table,
            t.chunks.len()
        );
        let counts = check_coverage(client, t).await;
        let ideal = t.estimated_rows as f64 / counts.len() as f64;
        let worst = counts
            .iter()
            .map(|&c| (c as f64 - ideal).abs() / ideal)
            .fold(0.0, f64::max);
        println!(
            "{}: {} chunks, worst deviation {:.0}%",
            t.table,
            counts.len(),
            worst * 100.0
        );
        assert!(worst < 0.8, "{}: unbalanced {counts:?}", t.table);
    }
    let plan = plan_ok(
        client,
        &spec(&["parts.*"], &[], &[], "rows_per_chunk = 2000"),
    )
    .await;
    let names: Vec<String> = plan.tables.iter().map(|t| t.table.display_name()).collect();
    assert_eq!(names, ["parts.u"]);
    let u = &plan.tables[0];
    assert!(matches!(u.key, KeyChoice::Unique { .. }), "{:?}", u.key);
    assert!(!u.own_rows_only);
    assert!((8..=12).contains(&u.chunks.len()), "{:?}", u.chunks.len());
    assert_eq!(check_coverage(client, u).await.iter().sum::<u64>(), 20_000);
}

async fn excludes_and_other_schemas(client: &mut Client) {
    let s = consistent(spec(
        &["public.*", "other.*"],
        &[
            "measurements*",
            "events",
            "textpk",
            "uuidpk",
            "compositepk",
            "weakkeys",
        ],
        &[],
        "rows_per_chunk = 1000",
    ));
    let plan = plan_ok(client, &s).await;
    let names: Vec<String> = plan.tables.iter().map(|t| t.table.display_name()).collect();
    assert_eq!(
        names,
        [
            "other.things".to_string(),
            format!("public.{ODD}"),
            "public.empty_t".into(),
            "public.nopk".into(),
        ]
    );
    assert!(plan.notes.iter().all(|n| !n.contains("skipped partition")));
    // Small chunks under one consistent snapshot: many page ranges, every row once.
    let nopk = table(&plan, "nopk");
    assert_eq!(nopk.key, KeyChoice::Pages);
    assert!(
        (25..=35).contains(&nopk.chunks.len()),
        "{:?}",
        nopk.chunks.len()
    );
    for t in &plan.tables {
        check_coverage(client, t).await;
    }
}

async fn literal_names_and_partitions(client: &mut Client) {
    let odd = r#""Odd ""Name"" Table""#;
    let s = spec(
        &[
            odd,
            "measurements_p2",
            "public.measurements_p3",
            "measurements_p3a",
        ],
        &[],
        &[],
        "rows_per_chunk = 10000",
    );
    let plan = plan_ok(client, &s).await;
    let names: Vec<&str> = plan.tables.iter().map(|t| t.table.name.as_str()).collect();
    assert_eq!(names, [ODD, "measurements_p2", "measurements_p3"]);
    let skipped: Vec<&String> = plan
        .notes
        .iter()
        .filter(|n| n.starts_with("skipped partition"))
        .collect();
    assert_eq!(skipped.len(), 1, "{:?}", plan.notes);
    assert!(skipped[0].contains("public.measurements_p3a"));
    assert!(skipped[0].contains("public.measurements_p3 "));
    let p2 = table(&plan, "measurements_p2");
    assert_eq!(p2.key, integer("id"));
    assert!((3..=5).contains(&p2.chunks.len()), "{:?}", p2.chunks);
    let p3 = table(&plan, "measurements_p3");
    assert_eq!(p3.key, integer("id"));
    assert_eq!(check_coverage(client, p3).await.iter().sum::<u64>(), 30_001);
    for t in &plan.tables {
        check_coverage(client, t).await;
    }
}

async fn key_overrides(client: &mut Client) {
    let s = spec(
        &["textpk", "events", "nopk"],
        &[],
        &[
            ("textpk", "n"),
            ("public.nopk", "a"),
            ("public.unknown", "id"),
        ],
        "rows_per_chunk = 5000",
    );
    // REPEATABLE READ, as a job with a consistent snapshot plans.
    let plan = plan_with(client, &s, IsolationLevel::RepeatableRead).await;
    let textpk = table(&plan, "textpk");
    assert_eq!(textpk.key, integer("n"));
    assert_eq!(
        textpk.chunks.last(),
        Some(&ChunkRange::KeyIsNull { column: "n".into() }),
        "nullable key needs an IS NULL chunk"
    );
    let counts = check_coverage(client, textpk).await;
    assert_eq!(counts.last(), Some(&4_000), "rows with n IS NULL");
    // nopk.a has no NOT NULL constraint (though no NULLs): an IS NULL chunk all the same.
    let nopk = table(&plan, "nopk");
    assert_eq!(nopk.key, integer("a"));
    assert!(matches!(
        nopk.chunks.last(),
        Some(ChunkRange::KeyIsNull { .. })
    ));
    check_coverage(client, nopk).await;
    assert!(
        plan.notes
            .iter()
            .any(|n| n.contains("public.unknown") && n.contains("unused")),
        "{:?}",
        plan.notes
    );
}

async fn byte_targets(client: &mut Client) {
    let plan = plan_ok(
        client,
        &spec(&["events"], &[], &[], "bytes_per_chunk = \"2MiB\""),
    )
    .await;
    let events = table(&plan, "events");
    let expected = events.estimated_bytes.div_ceil(2 << 20) as usize;
    assert!(expected >= 3, "events is {} bytes", events.estimated_bytes);
    assert!(
        events.chunks.len().abs_diff(expected) <= 1,
        "{} chunks for {} bytes",
        events.chunks.len(),
        events.estimated_bytes
    );
    check_coverage(client, events).await;
}

async fn errors(client: &mut Client) {
    let err = plan_err(client, &spec(&["public.*", "public.nope"], &[], &[], "")).await;
    assert!(err.contains("public.nope"), "{err}");

    let err = plan_err(client, &spec(&["nothing_*"], &[], &[], "")).await;
    assert!(err.contains("no table matches"), "{err}");

    let err = plan_err(client, &spec(&["textpk"], &[], &[("textpk", "code")], "")).await;
    assert!(
        err.contains("public.textpk") && err.contains("\"code\"") && err.contains("text"),
        "{err}"
    );

    let err = plan_err(client, &spec(&["events"], &[], &[("events", "nope")], "")).await;
    assert!(
        err.contains("public.events") && err.contains("\"nope\""),
        "{err}"
    );

    // A transform naming a column no selected table has (a typo) would export the data
    // untransformed; one that some selected table has is fine.
    let mut typo = spec(&["events", "nopk"], &[], &[], "");
    typo.transforms = vec![
        transform(&["payload"]),
        transform(&["paylaod", "Weird Col"]),
    ];
    let err = plan_err(client, &typo).await;
    assert!(
        err.contains("transform[1]: column \"paylaod\"")
            && err.contains("transform[1]: column \"Weird Col\"")
            && !err.contains("\"payload\"")
            && err.contains("public.events"),
        "{err}"
    );
    let mut fine = spec(&["events", r#""Odd ""Name"" Table""#], &[], &[], "");
    fine.transforms = vec![transform(&["payload", "Weird Col"])];
    plan_ok(client, &fine).await;

    // statement_timeout is checked by the source itself, before any worker trips on it.
    for (value, ok) in [
        ("2h", true),
        ("90s", true),
        ("2 hours", false),
        ("-", false),
    ] {
        let mut s = spec(&["nopk"], &[], &[], "");
        s.source.statement_timeout = Some(value.to_string());
        if ok {
            plan_ok(client, &s).await;
        } else {
            let err = plan_err(client, &s).await;
            assert!(
                err.contains("source.statement_timeout") && err.contains(value),
                "{value}: {err}"
            );
        }
    }
}

fn transform(columns: &[&str]) -> protocol::spec::TransformSpec {
    protocol::spec::TransformSpec {
        columns: protocol::spec::ColumnSelection::Named(
            columns.iter().map(|c| c.to_string()).collect(),
        ),
        prefix: "x-".into(),
    }
}

/// The histogram fallback on an analyzed table: bounds exist and give balanced chunks.
async fn histogram_points(client: &Client) {
    let events = QualifiedName::new("public", "events");
    let bounds = catalog::histogram_bounds(client, &events, "id")
        .await
        .expect("pg_stats")
        .expect("ANALYZE collected a histogram");
    assert!(bounds.len() >= 50, "{} bounds", bounds.len());
    let (min, max) = catalog::key_min_max(client, &events, "id")
        .await
        .expect("min/max")
        .expect("rows");
    let dist = KeyDistribution::new(min, max, bounds);
    let chunks = chunking::plan_key_chunks("id", Some(&dist), 200_000, 25_000, false);
    assert_eq!(chunks.len(), 8);
    let plan = TablePlan {
        table: events,
        own_rows_only: true,
        columns: vec!["id".into()],
        column_types: vec![],
        key: integer("id"),
        estimated_rows: 200_000,
        estimated_bytes: 0,
        chunks,
    };
    let counts = check_coverage(client, &plan).await;
    assert!(
        counts
            .iter()
            .all(|&c| c.abs_diff(25_000) <= 25_000 * 35 / 100),
        "{counts:?}"
    );
}

// ---- helpers ---------------------------------------------------------------------------------

fn spec(include: &[&str], exclude: &[&str], keys: &[(&str, &str)], chunking: &str) -> ExportSpec {
    let list = |items: &[&str]| {
        items
            .iter()
            .map(|i| toml_string(i))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let keys = keys
        .iter()
        .map(|(t, c)| format!("{} = {}", toml_string(t), toml_string(c)))
        .collect::<Vec<_>>()
        .join(", ");
    let text = format!(
        "kind = \"export\"\nname = \"t\"\n[source]\n[tables]\ninclude = [{}]\nexclude = [{}]\n\
         keys = {{ {keys} }}\n[chunking]\n{chunking}\n[output]\nurl = \"file:///tmp/out/\"\n",
        list(include),
        list(exclude),
    );
    match JobSpec::from_toml(&text) {
        Ok(JobSpec::Export(spec)) => spec,
        Ok(other) => panic!("expected an export spec, got {}", other.kind()),
        Err(e) => panic!("bad test spec: {e}\n{text}"),
    }
}

/// The same spec with `source.snapshot = "consistent"`.
fn consistent(spec: ExportSpec) -> ExportSpec {
    let mut spec = spec;
    spec.source.snapshot = protocol::SnapshotMode::Consistent;
    spec
}

/// A TOML literal string (no escapes), so `"Odd ""Name"" Table"` stays as written.
fn toml_string(s: &str) -> String {
    assert!(!s.contains('\''));
    format!("'{s}'")
}

async fn plan_ok(client: &mut Client, spec: &ExportSpec) -> ExportPlan {
    plan_with(client, spec, IsolationLevel::ReadCommitted).await
}

async fn plan_with(client: &mut Client, spec: &ExportSpec, iso: IsolationLevel) -> ExportPlan {
    let tx = client
        .build_transaction()
        .read_only(true)
        .isolation_level(iso)
        .start()
        .await
        .expect("BEGIN READ ONLY");
    let plan = plan_export(&tx, spec)
        .await
        .unwrap_or_else(|e| panic!("plan failed: {e:#}"));
    tx.rollback().await.expect("rollback");
    plan
}

async fn plan_err(client: &mut Client, spec: &ExportSpec) -> String {
    let tx = client
        .build_transaction()
        .read_only(true)
        .start()
        .await
        .expect("BEGIN READ ONLY");
    let err = match plan_export(&tx, spec).await {
        Ok(plan) => panic!("expected an error, got {plan:?}"),
        Err(e) => format!("{e:#}"),
    };
    tx.rollback().await.expect("rollback");
    err
}

fn table<'a>(plan: &'a ExportPlan, name: &str) -> &'a TablePlan {
    plan.tables
        .iter()
        .find(|t| t.table.name == name)
        .unwrap_or_else(|| panic!("{name} not in plan: {plan:?}"))
}

fn integer(column: &str) -> KeyChoice {
    KeyChoice::Integer {
        column: column.into(),
    }
}

/// The WHERE condition of a chunk: the worker's own, so the test checks what workers run.
fn predicate(range: &ChunkRange) -> String {
    match worker::export::range_predicate(range) {
        p if p.is_empty() => "true".to_string(),
        p => p,
    }
}

/// Counts the rows of each chunk, asserts the sum is the table's row count and that every row
/// matches exactly one chunk. Returns the per-chunk counts.
async fn check_coverage(client: &Client, plan: &TablePlan) -> Vec<u64> {
    assert!(!plan.chunks.is_empty(), "{}: no chunks", plan.table);
    let t = plan.table.quoted();
    let mut counts = Vec::with_capacity(plan.chunks.len());
    for chunk in &plan.chunks {
        let sql = format!("SELECT count(*) FROM {t} WHERE {}", predicate(chunk));
        counts.push(count(client, &sql).await);
    }
    let total = count(client, &format!("SELECT count(*) FROM {t}")).await;
    assert_eq!(
        counts.iter().sum::<u64>(),
        total,
        "{}: chunk counts {counts:?} do not add up to {total}",
        plan.table
    );
    // Stronger than the sum: no row in two chunks and none in zero.
    let matches = plan
        .chunks
        .iter()
        .map(|c| format!("COALESCE(({})::int, 0)", predicate(c)))
        .collect::<Vec<_>>()
        .join(" + ");
    let sql = format!("SELECT count(*) FROM {t} WHERE {matches} <> 1");
    assert_eq!(
        count(client, &sql).await,
        0,
        "{}: rows not in exactly one chunk",
        plan.table
    );
    counts
}

async fn count(client: &Client, sql: &str) -> u64 {
    let row = client
        .query_one(sql, &[])
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
    let n: i64 = row.get(0);
    n as u64
}
