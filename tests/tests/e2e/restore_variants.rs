//! Restores of hand-built RDS exports, one per layout variant of the reference, and of bad
//! exports: each variant loads every row exactly once; each bad input fails with a message
//! naming the file or table and leaves the target untouched.

use pgfleet_tests::procs::Fleet;
use pgfleet_tests::rds_fixture::{
    upload_dir, write_export, FixtureColumn, FixtureOptions, FixtureTable, IntStyle, KeyCase,
};
use pgfleet_tests::*;
use std::path::{Path, PathBuf};
use std::process::Command;

const TARGET_DDL: &str = r#"
CREATE TABLE public.orders (id bigint PRIMARY KEY, name text, score double precision, data bytea);
CREATE TABLE public."my table" (id bigint PRIMARY KEY, name text, score double precision, data bytea);
CREATE TABLE public.empty_t (id bigint PRIMARY KEY, name text, score double precision, data bytea);
"#;

fn columns() -> Vec<FixtureColumn> {
    vec![
        FixtureColumn::bigint("id"),
        FixtureColumn::text("name"),
        FixtureColumn::double("score"),
        FixtureColumn::bytea("data"),
    ]
}

fn tempdir() -> PathBuf {
    let d = std::env::temp_dir().join(unique("pgfleet-variants-"));
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn restore_spec(dir: &Path, root: &str, database: &str, target: &str, extra: &str) -> PathBuf {
    let path = dir.join(format!("{}.toml", unique("restore-")));
    std::fs::write(
        &path,
        format!(
            r#"kind = "restore"
name = "variant"
[export]
url = "{root}"
database = "{database}"
s3 = {{ endpoint = "{endpoint}", force_path_style = true }}
[target]
url = "{target}"
{extra}
"#,
            endpoint = s3_endpoint()
        ),
    )
    .unwrap();
    path
}

/// `coordinator run` → (exit code, stdout + stderr).
fn run(spec: &Path) -> (i32, String) {
    set_aws_env();
    let out = Command::new(bin("coordinator"))
        .args(["run", spec.to_str().unwrap(), "--workers", "2"])
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

/// (rows, non-null names, empty names, sum of ids) of a target table.
async fn stats(c: &tokio_postgres::Client, table: &str) -> (i64, i64, i64, i64) {
    let r = c
        .query_one(
            &format!("SELECT count(*), count(name), count(*) FILTER (WHERE name = ''), coalesce(sum(id), 0)::bigint FROM {table}"),
            &[],
        )
        .await
        .unwrap();
    (r.get(0), r.get(1), r.get(2), r.get(3))
}

/// What `sample_batch` generates for ids 0..n: NULL name when id % 7 == 6, "" when id % 11 == 10.
fn expected(n: i64) -> (i64, i64, i64, i64) {
    let ids = 0..n;
    let nulls = ids.clone().filter(|i| i % 7 == 6).count() as i64;
    let empty = ids.clone().filter(|i| i % 7 != 6 && i % 11 == 10).count() as i64;
    (n, n - nulls, empty, ids.sum())
}

async fn target_db() -> anyhow::Result<ScratchDb> {
    let db = ScratchDb::create("pgfleet_var_").await?;
    db.client().await?.batch_execute(TARGET_DDL).await?;
    Ok(db)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn layout_variants_restore_every_row_once() -> anyhow::Result<()> {
    let dir = tempdir();
    // Batch folders 1/ and 2/ with part-number gaps, three tables_info files, Pascal-case keys,
    // integers as strings, Spark .crc side files, a warning entry; a table whose name maps to
    // a `_`-substituted folder; an empty table (batch folder with only _SUCCESS).
    let mut opts = FixtureOptions::new("exp-batches", "shop");
    opts.part_number_gaps = true;
    opts.split_tables_info = 3;
    opts.key_case = KeyCase::Pascal;
    opts.int_style = IntStyle::String;
    opts.crc_files = true;
    opts.warnings = vec![(
        "shop.public.skipped/table".into(),
        "Table skipped: '/' in the name".into(),
    )];
    let orders = FixtureTable::generated("public", "orders", columns(), &[&[300, 200], &[150]]);
    let spaced = FixtureTable::generated("public", "my table", columns(), &[&[120]]);
    let mut empty = FixtureTable::new("public", "empty_t", columns());
    empty.batches = vec![vec![]];
    write_export(&dir, &opts, &[orders, spaced, empty])?;

    let db = target_db().await?;
    let root = format!("file://{}/exp-batches/", dir.display());
    let spec = restore_spec(&dir, &root, "shop", &db.url, "[split]\nrows_per_task = 100");
    let (code, out) = run(&spec);
    assert_eq!(code, 0, "{out}");
    let c = db.client().await?;
    assert_eq!(stats(&c, "orders").await, expected(650));
    assert_eq!(stats(&c, r#""my table""#).await.0, 120);
    assert_eq!(stats(&c, "empty_t").await.0, 0);

    // The same export from S3.
    let s3 = s3_client().await;
    let bucket = unique("variants-");
    create_bucket(&s3, &bucket).await?;
    upload_dir(&s3, &bucket, "rds/exp-batches/", &dir.join("exp-batches")).await?;
    let db2 = target_db().await?;
    let spec = restore_spec(
        &dir,
        &format!("s3://{bucket}/rds/exp-batches/"),
        "shop",
        &db2.url,
        "",
    );
    let (code, out) = run(&spec);
    assert_eq!(code, 0, "{out}");
    assert_eq!(stats(&db2.client().await?, "orders").await, expected(650));

    // The older flat layout: part files directly in the table folder.
    let mut flat = FixtureOptions::new("exp-flat", "shop");
    flat.flat_layout = true;
    let orders = FixtureTable::generated("public", "orders", columns(), &[&[400, 100]]);
    write_export(&dir, &flat, &[orders])?;
    let db3 = target_db().await?;
    let spec = restore_spec(
        &dir,
        &format!("file://{}/exp-flat/", dir.display()),
        "shop",
        &db3.url,
        "[tables]\ninclude = [\"public.orders\"]",
    );
    let (code, out) = run(&spec);
    assert_eq!(code, 0, "{out}");
    assert_eq!(stats(&db3.client().await?, "orders").await, expected(500));

    for d in [db, db2, db3] {
        d.drop().await?;
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_exports_fail_clearly_and_load_nothing() -> anyhow::Result<()> {
    let dir = tempdir();
    let db = target_db().await?;
    let c = db.client().await?;

    // A batch folder without _SUCCESS.
    let mut t = FixtureTable::generated("public", "orders", columns(), &[&[50], &[50]]);
    t.omit_success = vec![1];
    write_export(&dir, &FixtureOptions::new("no-success", "shop"), &[t])?;
    let spec = restore_spec(
        &dir,
        &format!("file://{}/no-success/", dir.display()),
        "shop",
        &db.url,
        "",
    );
    let (code, out) = run(&spec);
    assert_ne!(code, 0);
    assert!(out.contains("_SUCCESS") && out.contains("orders"), "{out}");
    assert_eq!(stats(&c, "orders").await.0, 0);

    // A corrupt Parquet file.
    let mut t = FixtureTable::generated("public", "orders", columns(), &[&[50, 50]]);
    t.corrupt_files = vec![(0, 1)];
    let written = write_export(&dir, &FixtureOptions::new("corrupt", "shop"), &[t])?;
    let bad = written
        .files
        .iter()
        .find(|f| f.corrupt)
        .unwrap()
        .key
        .clone();
    let spec = restore_spec(
        &dir,
        &format!("file://{}/corrupt/", dir.display()),
        "shop",
        &db.url,
        "",
    );
    let (code, out) = run(&spec);
    assert_ne!(code, 0);
    assert!(
        out.contains(&bad),
        "the error names the corrupt file {bad}: {out}"
    );
    assert_eq!(stats(&c, "orders").await.0, 0);

    // Metadata that disagrees with the target schema: an extra column, a missing table.
    let mut cols = columns();
    cols.push(FixtureColumn::text("surprise"));
    let t = FixtureTable::generated("public", "orders", cols, &[&[10]]);
    let ghost = FixtureTable::generated("public", "ghost", columns(), &[&[10]]);
    write_export(&dir, &FixtureOptions::new("disagree", "shop"), &[t, ghost])?;
    let spec = restore_spec(
        &dir,
        &format!("file://{}/disagree/", dir.display()),
        "shop",
        &db.url,
        "",
    );
    let (code, out) = run(&spec);
    assert_ne!(code, 0);
    assert!(out.contains("surprise") && out.contains("ghost"), "{out}");
    // `coordinator plan` reports the same problems without loading.
    let plan = Command::new(bin("coordinator"))
        .args(["plan", spec.to_str().unwrap()])
        .output()?;
    assert!(!plan.status.success());
    let plan_out = String::from_utf8_lossy(&plan.stdout);
    assert!(
        plan_out.contains("surprise") && plan_out.contains("ghost"),
        "{plan_out}"
    );
    // Excluding the unknown table and… the extra column cannot be excluded: still a problem.
    assert_eq!(stats(&c, "orders").await.0, 0);

    // tables.include with a typo: a literal name the export lacks, or globs matching nothing,
    // would restore nothing and succeed; both are problems, and nothing loads.
    let t = FixtureTable::generated("public", "orders", columns(), &[&[10]]);
    write_export(&dir, &FixtureOptions::new("typo", "shop"), &[t])?;
    for (include, expected) in [
        ("\"public.ordres\"", "public.ordres"),
        ("\"sales.*\", \"x?\"", "no table of the export matches"),
    ] {
        let spec = restore_spec(
            &dir,
            &format!("file://{}/typo/", dir.display()),
            "shop",
            &db.url,
            &format!("[tables]\ninclude = [{include}]"),
        );
        let (code, out) = run(&spec);
        assert_ne!(code, 0, "include [{include}] must fail: {out}");
        assert!(out.contains(expected), "include [{include}]: {out}");
        assert_eq!(stats(&c, "orders").await.0, 0);
    }

    // An unreadable export root.
    let spec = restore_spec(
        &dir,
        &format!("file://{}/does-not-exist/", dir.display()),
        "shop",
        &db.url,
        "",
    );
    let (code, out) = run(&spec);
    assert_ne!(code, 0);
    assert!(out.contains("does-not-exist"), "{out}");

    db.drop().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn worker_stays_up_after_a_bad_restore() -> anyhow::Result<()> {
    let dir = tempdir();
    let db = target_db().await?;
    let state = ScratchDb::create("pgfleet_var_state_").await?;
    let fleet = Fleet::start(&state.url, 1, 2);

    // Data the target rejects (a NOT NULL column gets NULLs) fails inside the worker.
    db.client()
        .await?
        .batch_execute("ALTER TABLE orders ALTER COLUMN name SET NOT NULL")
        .await?;
    let t = FixtureTable::generated("public", "orders", columns(), &[&[40, 40]]);
    write_export(&dir, &FixtureOptions::new("rejected", "shop"), &[t])?;
    let spec = restore_spec(
        &dir,
        &format!("file://{}/rejected/", dir.display()),
        "shop",
        &db.url,
        "[tables]\ninclude = [\"public.orders\"]",
    );
    let (code, _, err) = fleet.coordinator(&["submit", spec.to_str().unwrap(), "--wait"]);
    assert_ne!(code, 0);
    assert!(err.contains("orders"), "{err}");
    assert_eq!(
        stats(&db.client().await?, "orders").await.0,
        0,
        "nothing half-loaded"
    );

    // The same worker then loads a good export.
    db.client()
        .await?
        .batch_execute("ALTER TABLE orders ALTER COLUMN name DROP NOT NULL")
        .await?;
    let (code, out, err) = fleet.coordinator(&["submit", spec.to_str().unwrap(), "--wait"]);
    assert_eq!(code, 0, "{out}{err}\n{}", fleet.workers[0].logs());
    assert_eq!(stats(&db.client().await?, "orders").await, expected(80));

    drop(fleet);
    db.drop().await?;
    state.drop().await?;
    Ok(())
}

const PARTITIONED_DDL: &str = r#"
CREATE TABLE public.ev (id bigint NOT NULL, name text, score double precision, data bytea) PARTITION BY RANGE (id);
CREATE TABLE public.ev_a PARTITION OF public.ev FOR VALUES FROM (MINVALUE) TO (60);
CREATE TABLE public.ev_b PARTITION OF public.ev FOR VALUES FROM (60) TO (MAXVALUE);
"#;

/// A partitioned table loads each row exactly once whether the export holds the parent's rows,
/// the partitions' rows, or both.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partitioned_tables_load_each_row_once() -> anyhow::Result<()> {
    let dir = tempdir();
    let parent = || FixtureTable::generated("public", "ev", columns(), &[&[60], &[40]]);
    let leaf_a = || FixtureTable::generated("public", "ev_a", columns(), &[&[60]]);
    let leaf_b = || {
        let mut t = FixtureTable::new("public", "ev_b", columns());
        t.batches = vec![vec![pgfleet_tests::rds_fixture::sample_batch(
            &t.columns, 60, 40,
        )]];
        t
    };
    let mut empty_parent = FixtureTable::new("public", "ev", columns());
    empty_parent.batches = vec![vec![]];
    let cases: Vec<(&str, Vec<FixtureTable>)> = vec![
        ("parent-only", vec![parent()]),
        ("leaves-only", vec![leaf_a(), leaf_b()]),
        ("both", vec![parent(), leaf_a(), leaf_b()]),
        (
            "empty-parent-and-leaves",
            vec![empty_parent, leaf_a(), leaf_b()],
        ),
    ];
    for (name, tables) in cases {
        write_export(&dir, &FixtureOptions::new(name, "shop"), &tables)?;
        let db = ScratchDb::create("pgfleet_part_").await?;
        db.client().await?.batch_execute(PARTITIONED_DDL).await?;
        let spec = restore_spec(
            &dir,
            &format!("file://{}/{name}/", dir.display()),
            "shop",
            &db.url,
            "",
        );
        let (code, out) = run(&spec);
        assert_eq!(code, 0, "{name}: {out}");
        let c = db.client().await?;
        assert_eq!(stats(&c, "ev").await, expected(100), "{name}");
        assert_eq!(
            stats(&c, "ev_a").await.0,
            60,
            "{name}: rows routed to their partition"
        );
        db.drop().await?;
    }
    Ok(())
}

/// Foreign keys dropped for a cycle are put back even when the load fails, and validated after
/// a successful one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cycle_foreign_keys_come_back_after_failure_and_success() -> anyhow::Result<()> {
    let dir = tempdir();
    let db = target_db().await?;
    let c = db.client().await?;
    // A self-reference makes `orders` its own FK cycle; NOT NULL makes the first load fail.
    c.batch_execute(
        "ALTER TABLE orders ADD CONSTRAINT orders_self_fk FOREIGN KEY (id) REFERENCES orders (id);
         ALTER TABLE orders ALTER COLUMN name SET NOT NULL;",
    )
    .await?;
    let t = FixtureTable::generated("public", "orders", columns(), &[&[70]]);
    write_export(&dir, &FixtureOptions::new("cycle", "shop"), &[t])?;
    let spec = restore_spec(
        &dir,
        &format!("file://{}/cycle/", dir.display()),
        "shop",
        &db.url,
        "[tables]\ninclude = [\"public.orders\"]",
    );
    let fk = "SELECT convalidated FROM pg_constraint WHERE conname = 'orders_self_fk'";

    let (code, out) = run(&spec);
    assert_ne!(code, 0, "{out}");
    assert!(
        c.query_opt(fk, &[]).await?.is_some(),
        "the dropped foreign key is back after the failure"
    );

    c.batch_execute("ALTER TABLE orders ALTER COLUMN name DROP NOT NULL")
        .await?;
    let (code, out) = run(&spec);
    assert_eq!(code, 0, "{out}");
    assert_eq!(stats(&c, "orders").await, expected(70));
    assert!(
        c.query_one(fk, &[]).await?.get::<_, bool>(0),
        "validated after the load"
    );
    db.drop().await?;
    Ok(())
}
