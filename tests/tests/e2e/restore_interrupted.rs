//! A restore interrupted mid-load never leaves the target without its foreign keys or indexes:
//! SIGTERM puts them back before exiting; after SIGKILL (no chance to clean up) the next run, or
//! `coordinator repair` alone, puts them back from the target's own record. Foreign keys and
//! indexes are compared with the source by name and definition; re-runs must also end with
//! identical data and every key valid.

use pgfleet_tests::procs::Proc;
use pgfleet_tests::scenario::{checksums, export_rds_parquet, wait_until};
use pgfleet_tests::*;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

/// A two-table FK cycle (`a` ↔ `b`, so the cycle keys are dropped during any load), a child with
/// an ordinary (deferred) key, and secondary indexes (`defer_indexes`).
const SCHEMA: &str = r#"
CREATE TABLE a (id bigint PRIMARY KEY, b_id bigint, note text);
CREATE TABLE b (id bigint PRIMARY KEY, a_id bigint NOT NULL REFERENCES a(id), note text);
ALTER TABLE a ADD CONSTRAINT a_b_fk FOREIGN KEY (b_id) REFERENCES b(id);
CREATE TABLE c (id bigint PRIMARY KEY, a_id bigint NOT NULL, payload text,
                CONSTRAINT "c → a" FOREIGN KEY (a_id) REFERENCES a(id) ON DELETE CASCADE);
CREATE INDEX c_a_id ON c (a_id);
CREATE INDEX "c payload" ON c (lower(payload)) WHERE payload IS NOT NULL;
CREATE INDEX b_note ON b (note);
"#;

const TABLES: &[&str] = &["a", "b", "c"];
const ROWS: u64 = 150_000;

struct Interrupted {
    source: ScratchDb,
    target: ScratchDb,
    dir: PathBuf,
    spec: PathBuf,
    app: String,
}

impl Interrupted {
    async fn new(tag: &str) -> anyhow::Result<Self> {
        set_aws_env();
        let source = ScratchDb::create(&format!("pgfleet_{tag}_src_")).await?;
        let src = source.client().await?;
        src.batch_execute(SCHEMA).await?;
        src.batch_execute(&format!(
            "INSERT INTO a SELECT g, NULL, repeat('a', 40) || g FROM generate_series(1, {ROWS}) g;
             INSERT INTO b SELECT g, 1 + (g::bigint * 7919) % {ROWS}, 'b' || (g % 100) FROM generate_series(1, {ROWS}) g;
             UPDATE a SET b_id = 1 + (id * 31) % {ROWS} WHERE id % 3 = 0;
             INSERT INTO c SELECT g, 1 + (g::bigint * 104729) % {ROWS}, CASE WHEN g % 4 = 0 THEN NULL ELSE 'P' || g END
             FROM generate_series(1, {ROWS}) g;
             ANALYZE;"
        ))
        .await?;
        let target = ScratchDb::create(&format!("pgfleet_{tag}_dst_")).await?;
        target.client().await?.batch_execute(SCHEMA).await?;

        let s3 = s3_client().await;
        let bucket = unique(&format!("{}-", tag.replace('_', "-")));
        create_bucket(&s3, &bucket).await?;
        let dir = std::env::temp_dir().join(unique(&format!("pgfleet-{tag}-")));
        std::fs::create_dir_all(&dir)?;
        let root = format!("s3://{bucket}/rds/{tag}/");
        let endpoint = s3_endpoint();
        export_rds_parquet(&dir, tag, &source.url, &root, 10_000)?;
        let app = unique(&format!("pgfleet-{tag}-"));
        let spec = dir.join("restore.toml");
        std::fs::write(
            &spec,
            format!(
                r#"kind = "restore"
name = "{tag}"
[export]
url = "{root}"
database = "{db}"
s3 = {{ endpoint = "{endpoint}", force_path_style = true }}
[target]
url = "{dst}"
max_connections = 2
application_name = "{app}"
[split]
rows_per_task = 10000
[policy]
defer_indexes = true
"#,
                db = source.name,
                dst = target.url
            ),
        )?;
        Ok(Self {
            source,
            target,
            dir,
            spec,
            app,
        })
    }

    /// `coordinator run` of the restore, in the background.
    fn start(&self) -> Proc {
        let mut cmd = Command::new(bin("coordinator"));
        cmd.args(["run", self.spec.to_str().unwrap(), "--workers", "2"]);
        Proc::spawn("restore-run", cmd)
    }

    /// `coordinator run` of the restore to the end: (exit code, output).
    fn run(&self) -> (i32, String) {
        let out = Command::new(bin("coordinator"))
            .args(["run", self.spec.to_str().unwrap(), "--workers", "2"])
            .output()
            .expect("run coordinator");
        (
            out.status.code().unwrap_or(-1),
            format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
        )
    }

    /// Wait until the restore is loading: COPYs running and some pieces already committed.
    async fn wait_mid_load(&self, run: &Proc) -> anyhow::Result<()> {
        let admin = connect(&pg_admin_url()).await?;
        let target = self.target.client().await?;
        wait_until("the restore to be mid-load", Duration::from_secs(120), || async {
            let copies: i64 = admin
                .query_one(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = $1 AND application_name = $2
                       AND state = 'active' AND query ILIKE 'COPY%'",
                    &[&self.target.name, &self.app],
                )
                .await?
                .get(0);
            let loaded = count_if_exists(&target, "pgfleet_restore.ledger").await?;
            anyhow::ensure!(
                loaded < 45,
                "the restore finished before it could be interrupted:\n{}",
                run.logs()
            );
            Ok(copies > 0 && loaded >= 2)
        })
        .await
    }

    async fn drop(self) -> anyhow::Result<()> {
        let _ = std::fs::remove_dir_all(&self.dir);
        self.source.drop().await?;
        self.target.drop().await
    }
}

/// Foreign keys and indexes of `public`: (table, name, definition, valid).
async fn schema_objects(db: &ScratchDb) -> anyhow::Result<Vec<(String, String, String, bool)>> {
    let c = db.client().await?;
    Ok(c.query(
        "SELECT conrelid::regclass::text, conname, pg_get_constraintdef(oid), convalidated
         FROM pg_constraint WHERE connamespace = 'public'::regnamespace AND contype = 'f'
         UNION ALL
         SELECT i.indrelid::regclass::text, ic.relname, pg_get_indexdef(i.indexrelid), i.indisvalid
         FROM pg_index i JOIN pg_class ic ON ic.oid = i.indexrelid
         WHERE ic.relnamespace = 'public'::regnamespace
         ORDER BY 1, 2",
        &[],
    )
    .await?
    .iter()
    .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3)))
    .collect())
}

/// (table, name, definition without NOT VALID): what must exist, valid or not.
fn without_validity(objs: &[(String, String, String, bool)]) -> Vec<(String, String, String)> {
    objs.iter()
        .map(|(t, n, d, _)| {
            (
                t.clone(),
                n.clone(),
                d.trim_end_matches(" NOT VALID").to_string(),
            )
        })
        .collect()
}

async fn pending_changes(db: &ScratchDb) -> anyhow::Result<i64> {
    count_if_exists(&db.client().await?, "pgfleet_restore.pending_changes").await
}

/// Rows of `table`, 0 while it does not exist yet.
async fn count_if_exists(c: &tokio_postgres::Client, table: &str) -> anyhow::Result<i64> {
    let exists: bool = c
        .query_one("SELECT to_regclass($1) IS NOT NULL", &[&table])
        .await?
        .get(0);
    if !exists {
        return Ok(0);
    }
    Ok(c.query_one(&format!("SELECT count(*) FROM {table}"), &[])
        .await?
        .get(0))
}

/// The re-run ends with identical data, and every key and index of the source, valid.
async fn assert_whole(sc: &Interrupted) -> anyhow::Result<()> {
    let (code, out) = sc.run();
    assert_eq!(code, 0, "the re-run failed:\n{out}");
    let src = sc.source.client().await?;
    let dst = sc.target.client().await?;
    assert_eq!(
        checksums(&src, TABLES).await?,
        checksums(&dst, TABLES).await?
    );
    let want = schema_objects(&sc.source).await?;
    assert_eq!(
        want.len(),
        9,
        "fixture: 3 foreign keys, 6 indexes: {want:?}"
    );
    assert_eq!(schema_objects(&sc.target).await?, want);
    assert_eq!(
        pending_changes(&sc.target).await?,
        0,
        "nothing left pending"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_mid_restore_puts_everything_back_and_a_rerun_completes() -> anyhow::Result<()> {
    let sc = Interrupted::new("rst_term").await?;
    let mut run = sc.start();
    sc.wait_mid_load(&run).await?;
    let logs_before = run.logs();
    let code = run.terminate(90);
    let logs = run.logs();
    assert_eq!(
        code,
        Some(143),
        "SIGTERM must end the run non-zero (128 + 15) after cleaning up:\n{logs}"
    );
    assert!(logs.contains("SIGTERM: stopping job"), "{logs}");
    assert!(logs.contains("put back"), "says what it put back:\n{logs}");
    // Already before any re-run: every foreign key and index exists again (the keys the partial
    // data breaks are NOT VALID and recorded as pending).
    assert_eq!(
        without_validity(&schema_objects(&sc.target).await?),
        without_validity(&schema_objects(&sc.source).await?),
        "after SIGTERM (log before the signal:\n{logs_before})\n{logs}"
    );
    assert_whole(&sc).await?;
    sc.drop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_mid_restore_then_rerun_puts_everything_back() -> anyhow::Result<()> {
    let sc = Interrupted::new("rst_kill").await?;
    let mut run = sc.start();
    sc.wait_mid_load(&run).await?;
    run.kill();
    // The process had no chance: the keys and indexes are gone, but recorded in the target.
    let left = schema_objects(&sc.target).await?;
    assert!(
        left.len() < schema_objects(&sc.source).await?.len(),
        "the load had dropped keys/indexes: {left:?}"
    );
    assert!(pending_changes(&sc.target).await? >= 4);
    // `plan` (read-only) reports them.
    let plan = Command::new(bin("coordinator"))
        .args(["plan", sc.spec.to_str().unwrap()])
        .output()?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&plan.stdout),
        String::from_utf8_lossy(&plan.stderr)
    );
    assert!(
        text.contains("did not put back") && text.contains("a_b_fk"),
        "plan reports pending repairs:\n{text}"
    );
    assert_whole(&sc).await?;
    sc.drop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_mid_restore_then_repair_alone_puts_everything_back() -> anyhow::Result<()> {
    let sc = Interrupted::new("rst_repair").await?;
    let mut run = sc.start();
    sc.wait_mid_load(&run).await?;
    run.kill();
    let loaded_before = checksums(&sc.target.client().await?, TABLES).await?;

    let dry = Command::new(bin("coordinator"))
        .args(["repair", "--target", &sc.target.url, "--dry-run"])
        .output()?;
    let dry_out = String::from_utf8_lossy(&dry.stdout).into_owned();
    assert_eq!(
        dry.status.code(),
        Some(1),
        "dry run with pending changes: {dry_out}"
    );
    assert!(
        dry_out.contains("a_b_fk") && dry_out.contains("c_a_id"),
        "{dry_out}"
    );
    assert!(
        pending_changes(&sc.target).await? >= 4,
        "a dry run changes nothing"
    );

    let out = Command::new(bin("coordinator"))
        .args(["repair", sc.spec.to_str().unwrap()])
        .output()?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("put back"), "{text}");
    assert_eq!(
        without_validity(&schema_objects(&sc.target).await?),
        without_validity(&schema_objects(&sc.source).await?),
        "every key and index is back:\n{text}"
    );
    // Keys the partial data breaks stay NOT VALID and pending; the exit code says so.
    let not_valid = schema_objects(&sc.target)
        .await?
        .iter()
        .filter(|o| !o.3)
        .count() as i64;
    assert_eq!(pending_changes(&sc.target).await?, not_valid, "{text}");
    assert_eq!(
        out.status.code(),
        Some(if not_valid == 0 { 0 } else { 1 }),
        "{text}"
    );
    // Repair loads nothing.
    assert_eq!(
        checksums(&sc.target.client().await?, TABLES).await?,
        loaded_before
    );
    // A second repair finds only what the data still breaks.
    let again = Command::new(bin("coordinator"))
        .args(["repair", "--target", &sc.target.url])
        .output()?;
    assert_eq!(again.status.code(), out.status.code());
    sc.drop().await
}
