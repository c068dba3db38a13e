//! Exporting tables while another session updates them, as a replica's tables always are. Each
//! UPDATE writes a new tuple version on a later page, so chunks by page range (`ctid`) read under
//! separate snapshots see a row twice (read, moved, read again) or not at all. Tables with a
//! uuid, text or composite primary key and one with no unique key at all are exported with the
//! default per-chunk snapshots and many small chunks while every row is updated over and over:
//! every row must be in the export exactly once.

use futures::FutureExt;
use pgfleet_tests::csvcheck::{self, Row};
use pgfleet_tests::*;
use protocol::QualifiedName;
use std::collections::HashMap;
use std::panic::AssertUnwindSafe;
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

const ROWS: i64 = 30_000;

/// (table, columns, how many leading columns identify a row).
const TABLES: &[(&str, &str, usize)] = &[
    (
        "uuid_pk",
        "id uuid PRIMARY KEY DEFAULT gen_random_uuid(), v int NOT NULL",
        1,
    ),
    ("text_pk", "id text PRIMARY KEY, v int NOT NULL", 1),
    (
        "composite_pk",
        "a int NOT NULL, b text NOT NULL, v int NOT NULL, PRIMARY KEY (a, b)",
        2,
    ),
    ("no_key", "id int, v int NOT NULL", 1),
];

async fn create_source(client: &tokio_postgres::Client) -> anyhow::Result<()> {
    // fillfactor 100 and no autovacuum: full pages, so an updated row moves to a later page.
    let mut sql = String::new();
    for (name, columns, _) in TABLES {
        sql.push_str(&format!(
            "CREATE TABLE {name} ({columns}) WITH (fillfactor = 100, autovacuum_enabled = off);"
        ));
    }
    sql.push_str(&format!(
        "INSERT INTO uuid_pk (v) SELECT g FROM generate_series(1, {ROWS}) g;
         INSERT INTO text_pk SELECT md5(g::text), g FROM generate_series(1, {ROWS}) g;
         INSERT INTO composite_pk SELECT g % 7, md5(g::text), g FROM generate_series(1, {ROWS}) g;
         INSERT INTO no_key SELECT g, g FROM generate_series(1, {ROWS}) g;
         ANALYZE;"
    ));
    client.batch_execute(&sql).await?;
    Ok(())
}

/// Updates random rows of every table until `stop`: each round touches 2% of each table.
async fn update_until(url: String, stop: Arc<AtomicBool>, rounds: Arc<AtomicU64>) {
    let client = connect(&url).await.expect("updater connects");
    let sql: String = TABLES
        .iter()
        .map(|(name, _, _)| {
            format!(
                "UPDATE {name} SET v = v + 1 WHERE ctid = ANY (ARRAY(
                   SELECT ctid FROM {name} TABLESAMPLE BERNOULLI (2)));"
            )
        })
        .collect();
    while !stop.load(Ordering::Relaxed) {
        client.batch_execute(&sql).await.expect("concurrent UPDATE");
        rounds.fetch_add(1, Ordering::Relaxed);
    }
}

fn export_spec(source: &str, output: &Path, snapshot: &str, include: &str) -> String {
    format!(
        r#"kind = "export"
name = "concurrent-updates"
[source]
url = "{source}"
max_in_flight = 2
snapshot = "{snapshot}"
[tables]
include = ["{include}"]
[chunking]
rows_per_chunk = 1000
[output]
url = "file://{}/"
format = "csv"
"#,
        output.display()
    )
}

/// Every exported row of a table, read back from its parts.
fn exported_rows(root: &Path, table: &str) -> anyhow::Result<Vec<Row>> {
    let folder = protocol::layout::csv::table_folder(&QualifiedName::new("public", table));
    let dir = root.join(folder.trim_end_matches('/'));
    let mut rows = Vec::new();
    let mut parts = 0;
    for entry in std::fs::read_dir(&dir)? {
        let path = entry?.path();
        let name = path.file_name().unwrap_or_default().to_string_lossy();
        if name.starts_with("part-") {
            parts += 1;
            // Every part starts with the header row.
            rows.extend(csvcheck::parse(&std::fs::read(&path)?)?.into_iter().skip(1));
        }
    }
    println!("{table}: {parts} part(s)");
    Ok(rows)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rows_updated_during_an_export_are_exported_exactly_once() -> anyhow::Result<()> {
    let source = ScratchDb::create("pgfleet_upd_src_").await?;
    let dir = std::env::temp_dir().join(unique("pgfleet-upd-"));
    // The scratch database and files go even when an assertion fails.
    let outcome = AssertUnwindSafe(check_exports(&source, &dir))
        .catch_unwind()
        .await;
    let _ = std::fs::remove_dir_all(&dir);
    source.drop().await?;
    match outcome {
        Ok(result) => result,
        Err(panic) => std::panic::resume_unwind(panic),
    }
}

async fn check_exports(source: &ScratchDb, dir: &Path) -> anyhow::Result<()> {
    let src = source.client().await?;
    create_source(&src).await?;

    // Per-chunk snapshots (the default): keyed tables by key ranges, the keyless one whole.
    let (plan, failures) = export_while_updating(
        source,
        &src,
        &dir.join("per-chunk"),
        "per-chunk",
        "public.*",
        TABLES,
    )
    .await?;
    assert!(failures.is_empty(), "{failures:#?}");
    for (table, strategy) in [
        ("uuid_pk", "unique key (\"id\")"),
        ("text_pk", "unique key (\"id\")"),
        ("composite_pk", "unique key (\"a\", \"b\")"),
        ("no_key", "whole table"),
    ] {
        let line = plan
            .lines()
            .find(|l| l.contains(&format!("public.{table} ")));
        assert!(
            line.is_some_and(|l| l.contains(strategy)),
            "{table} should be split by {strategy}:\n{plan}"
        );
    }
    // One consistent snapshot for the whole job: the keyless table by page ranges.
    let keyless = &TABLES[3..];
    let (plan, failures) = export_while_updating(
        source,
        &src,
        &dir.join("consistent"),
        "consistent",
        "no_key",
        keyless,
    )
    .await?;
    assert!(failures.is_empty(), "{failures:#?}");
    assert!(plan.contains("heap pages"), "{plan}");
    Ok(())
}

/// Plans and runs an export of `include` into `dir` while every table is being updated, and
/// returns the plan's text and, per table, what was not exported exactly once.
async fn export_while_updating(
    source: &ScratchDb,
    src: &tokio_postgres::Client,
    dir: &Path,
    snapshot: &str,
    include: &str,
    tables: &[(&str, &str, usize)],
) -> anyhow::Result<(String, Vec<String>)> {
    let out = dir.join("out");
    std::fs::create_dir_all(&out)?;
    let spec = dir.join("export.toml");
    std::fs::write(&spec, export_spec(&source.url, &out, snapshot, include))?;

    let plan = Command::new(bin("coordinator"))
        .args(["plan", spec.to_str().unwrap()])
        .output()?;
    let plan_text = String::from_utf8_lossy(&plan.stdout).into_owned();
    assert!(plan.status.success(), "plan: {plan_text}");
    println!("{plan_text}");

    let stop = Arc::new(AtomicBool::new(false));
    let rounds = Arc::new(AtomicU64::new(0));
    let updater = tokio::spawn(update_until(
        source.url.clone(),
        stop.clone(),
        rounds.clone(),
    ));
    // Let the updates start before the first chunk is read.
    while rounds.load(Ordering::Relaxed) == 0 {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let spec_path = spec.clone();
    let run = tokio::task::spawn_blocking(move || {
        Command::new(bin("coordinator"))
            .args(["run", spec_path.to_str().unwrap(), "--workers", "2"])
            .output()
    })
    .await??;
    stop.store(true, Ordering::Relaxed);
    updater.await?;
    let log = format!(
        "{}{}",
        String::from_utf8_lossy(&run.stdout),
        String::from_utf8_lossy(&run.stderr)
    );
    assert!(run.status.success(), "run: {log}");
    let rounds = rounds.load(Ordering::Relaxed);
    println!("{snapshot}: {rounds} update rounds during the export");
    assert!(rounds >= 2, "the updates must overlap the export");

    let mut failures = Vec::new();
    for (table, _, id_columns) in tables {
        let rows = exported_rows(&out, table)?;
        let mut seen: HashMap<Vec<Option<String>>, u32> = HashMap::new();
        for row in &rows {
            *seen.entry(row[..*id_columns].to_vec()).or_default() += 1;
        }
        let twice = seen.values().filter(|&&n| n > 1).count();
        let ids = if *id_columns == 2 {
            "a::text, b"
        } else {
            "id::text"
        };
        let source_ids = csvcheck::source_rows(src, &format!("SELECT {ids} FROM {table}")).await?;
        let missing = source_ids
            .iter()
            .filter(|id| !seen.contains_key(*id))
            .count();
        println!(
            "{snapshot} {table}: {} rows exported, {} distinct, {twice} twice, {missing} missing",
            rows.len(),
            seen.len()
        );
        if rows.len() as i64 != ROWS || twice > 0 || missing > 0 || seen.len() != source_ids.len() {
            failures.push(format!(
                "{snapshot} {table}: {} rows exported for {ROWS}: {twice} rows twice, {missing} missing",
                rows.len()
            ));
        }
    }
    Ok((plan_text, failures))
}
