//! Building blocks of the fault suite: a running job (export or restore) against its own
//! scratch databases and bucket, driven by `coordinator submit --wait` in a thread while the test
//! breaks things, and the end-state checks (every row exactly once; ordered checksums).

use crate::export_check::{check_table, Objects};
use crate::fixtures::{create_export_source, export_source_checks};
use crate::procs::Fleet;
use crate::*;
use anyhow::{Context, Result};
use std::path::PathBuf;
use std::process::{Command, Output};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Rows besides `big` in the export fixture (`nokey` + the odd-name table).
pub const EXPORT_FIXTURE_EXTRA_ROWS: u64 = 30_000 + 1_000;

/// A job the test is about to run: its spec on disk, its databases and its bucket.
pub struct Scenario {
    pub tag: String,
    /// Application name of the job's PostgreSQL sessions (source for export, target for
    /// restore), unique per scenario so `pg_stat_activity` can be filtered by it.
    pub app: String,
    pub state: ScratchDb,
    pub source: ScratchDb,
    /// Restore only.
    pub target: Option<ScratchDb>,
    pub s3: aws_sdk_s3::Client,
    pub bucket: String,
    pub dir: PathBuf,
    pub spec: PathBuf,
    /// Export: rows in `big`.
    pub big_rows: u64,
}

/// What an export scenario asks of the job.
pub struct ExportShape {
    pub big_rows: u64,
    pub rows_per_chunk: u64,
    pub max_in_flight: u32,
}

impl Scenario {
    /// An export of the awkward-values fixture (fixtures::create_export_source) to S3 as CSV
    /// with a prefix transform.
    pub async fn export(tag: &str, shape: ExportShape) -> Result<Self> {
        set_aws_env();
        let source = ScratchDb::create(&format!("pgfleet_{tag}_src_")).await?;
        create_export_source(&source.client().await?, shape.big_rows).await?;
        let state = ScratchDb::create(&format!("pgfleet_{tag}_state_")).await?;
        let s3 = s3_client().await;
        let bucket = unique(&format!("{}-", tag.replace('_', "-")));
        create_bucket(&s3, &bucket).await?;
        let app = unique(&format!("pgfleet-{tag}-"));
        let dir = std::env::temp_dir().join(unique(&format!("pgfleet-{tag}-")));
        std::fs::create_dir_all(&dir)?;
        let spec = dir.join("export.toml");
        std::fs::write(
            &spec,
            format!(
                r#"kind = "export"
name = "{tag}"
[source]
url = "{url}"
max_in_flight = {max_in_flight}
application_name = "{app}"
[tables]
include = ["public.*"]
[chunking]
rows_per_chunk = {rows_per_chunk}
[output]
url = "s3://{bucket}/exports/"
format = "csv"
part_size = "5MiB"
s3 = {{ endpoint = "{endpoint}", force_path_style = true }}
[[transform]]
columns = "*"
prefix = "x-"
"#,
                url = source.url,
                max_in_flight = shape.max_in_flight,
                rows_per_chunk = shape.rows_per_chunk,
                endpoint = s3_endpoint(),
            ),
        )?;
        Ok(Self {
            tag: tag.to_string(),
            app,
            state,
            source,
            target: None,
            s3,
            bucket,
            dir,
            spec,
            big_rows: shape.big_rows,
        })
    }

    /// A restore: a source with a parent and a child table (FK), exported as `rds-parquet` to
    /// S3 by `coordinator run` (in process), and a target with the same schema, empty. The
    /// restore job loads `rows_per_task` rows per task, at most `max_connections` at once.
    pub async fn restore(
        tag: &str,
        rows: u64,
        rows_per_file: u64,
        rows_per_task: u64,
        max_connections: u32,
    ) -> Result<Self> {
        set_aws_env();
        let source = ScratchDb::create(&format!("pgfleet_{tag}_src_")).await?;
        let schema = r#"
CREATE TABLE accounts (id bigint PRIMARY KEY, name text NOT NULL, balance numeric(14,2), opened timestamptz, tags text[], flags jsonb);
CREATE TABLE entries (id bigint PRIMARY KEY, account_id bigint NOT NULL REFERENCES accounts(id), amount numeric(14,2), memo text);
"#;
        let src = source.client().await?;
        src.batch_execute(schema).await?;
        src.batch_execute(&format!(
            r#"
INSERT INTO accounts
SELECT g, 'account ' || g || CASE WHEN g % 7 = 0 THEN E' "quoted", \n multi' ELSE '' END,
       CASE WHEN g % 11 = 0 THEN NULL ELSE (g % 100000) / 100.0 END,
       timestamptz '2020-01-01 00:00:00+00' + (g || ' minutes')::interval,
       CASE WHEN g % 5 = 0 THEN NULL ELSE ARRAY['t' || (g % 5), 'x,y'] END,
       CASE WHEN g % 3 = 0 THEN NULL ELSE jsonb_build_object('g', g, 's', 'v' || g) END
FROM generate_series(1, {rows}) g;
INSERT INTO entries SELECT g, 1 + (g * 7919) % {rows}, (g % 1000) / 10.0, 'memo ' || g
FROM generate_series(1, {entries}) g;
ANALYZE;
"#,
            entries = rows / 2
        ))
        .await?;
        let target = ScratchDb::create(&format!("pgfleet_{tag}_dst_")).await?;
        target.client().await?.batch_execute(schema).await?;

        let state = ScratchDb::create(&format!("pgfleet_{tag}_state_")).await?;
        let s3 = s3_client().await;
        let bucket = unique(&format!("{}-", tag.replace('_', "-")));
        create_bucket(&s3, &bucket).await?;
        let app = unique(&format!("pgfleet-{tag}-"));
        let dir = std::env::temp_dir().join(unique(&format!("pgfleet-{tag}-")));
        std::fs::create_dir_all(&dir)?;
        let root = format!("s3://{bucket}/rds/{tag}/");
        let endpoint = s3_endpoint();
        export_rds_parquet(&dir, tag, &source.url, &root, rows_per_file)?;
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
max_connections = {max_connections}
application_name = "{app}"
[split]
rows_per_task = {rows_per_task}
"#,
                db = source.name,
                dst = target.url
            ),
        )?;
        Ok(Self {
            tag: tag.to_string(),
            app,
            state,
            source,
            target: Some(target),
            s3,
            bucket,
            dir,
            spec,
            big_rows: 0,
        })
    }

    /// `coordinator submit <spec> --wait` in a thread, so the test can act while the job runs;
    /// `timeout` ends it if a failed assertion leaves it waiting for a job nobody drives.
    pub fn submit(&self, timeout_secs: u64) -> JoinHandle<Output> {
        submit_spec(&self.spec, &self.state.url, timeout_secs)
    }

    /// Sessions of this job doing COPY right now (`db` is the source or the target).
    pub async fn active_copies(&self, db: &ScratchDb) -> Result<i64> {
        let admin = connect(&pg_admin_url()).await?;
        Ok(admin
            .query_one(
                "SELECT count(*) FROM pg_stat_activity
                 WHERE datname = $1 AND application_name = $2 AND state = 'active'
                   AND query ILIKE 'COPY%'",
                &[&db.name, &self.app],
            )
            .await?
            .get(0))
    }

    /// The database the job's COPYs run against.
    pub fn copy_db(&self) -> &ScratchDb {
        self.target.as_ref().unwrap_or(&self.source)
    }

    /// Wait until at least `n` COPYs of this job run at once (so every worker holds a task).
    pub async fn wait_for_copies(&self, n: i64, fleet: &Fleet, within: Duration) -> Result<()> {
        let deadline = Instant::now() + within;
        loop {
            if self.active_copies(self.copy_db()).await? >= n {
                return Ok(());
            }
            anyhow::ensure!(
                Instant::now() < deadline,
                "the job never had {n} COPYs running at once; coordinator log:\n{}",
                fleet.coordinator.logs()
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Export: every table's parts hold the source rows exactly once, manifests agree, no
    /// stray objects. Returns the total row count.
    pub async fn check_export(&self) -> Result<u64> {
        let objects = Objects::S3 {
            client: self.s3.clone(),
            bucket: self.bucket.clone(),
        };
        let src = self.source.client().await?;
        let mut total = 0u64;
        for t in export_source_checks() {
            total += check_table(&objects, "exports/", &src, &t, "x-", false).await? as u64;
        }
        anyhow::ensure!(
            total == self.big_rows + EXPORT_FIXTURE_EXTRA_ROWS,
            "exported {total} rows, the source has {}",
            self.big_rows + EXPORT_FIXTURE_EXTRA_ROWS
        );
        Ok(total)
    }

    /// Restore: per table, row count and an md5 of all rows in order are equal in source and
    /// target.
    pub async fn check_restore(&self) -> Result<()> {
        let target = self.target.as_ref().context("not a restore scenario")?;
        let src = checksums(&self.source.client().await?, &["accounts", "entries"]).await?;
        let dst = checksums(&target.client().await?, &["accounts", "entries"]).await?;
        anyhow::ensure!(src == dst, "source {src:?} != target {dst:?}");
        Ok(())
    }

    /// `coordinator status JOB --json` of this scenario's state database.
    pub fn status(&self, job: &str) -> Result<serde_json::Value> {
        let out = Command::new(bin("coordinator"))
            .args(["status", job, "--json"])
            .env("PGFLEET_STATE_URL", &self.state.url)
            .output()?;
        anyhow::ensure!(
            out.status.success(),
            "status failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Ok(serde_json::from_slice(&out.stdout)?)
    }

    /// Rows of `pgfleet.results`: (task id, attempt, worker, outcome, applied), in arrival order.
    pub async fn results(&self) -> Result<Vec<ResultRow>> {
        let c = self.state.client().await?;
        Ok(c.query(
            "SELECT task_id, attempt, worker, outcome, applied FROM pgfleet.results ORDER BY id",
            &[],
        )
        .await?
        .iter()
        .map(|r| ResultRow {
            task_id: r.get(0),
            attempt: r.get(1),
            worker: r.get(2),
            outcome: r.get(3),
            applied: r.get(4),
        })
        .collect())
    }

    pub async fn drop(self) -> Result<()> {
        let _ = std::fs::remove_dir_all(&self.dir);
        self.source.drop().await?;
        self.state.drop().await?;
        if let Some(t) = self.target {
            t.drop().await?;
        }
        Ok(())
    }
}

#[derive(Debug, Clone)]
pub struct ResultRow {
    pub task_id: String,
    pub attempt: i32,
    pub worker: String,
    pub outcome: String,
    pub applied: String,
}

/// Export every `public` table of `source_url` to `root` as `rds-parquet`, `rows_per_chunk` rows
/// a file, with `coordinator run` (in process): the export a restore test starts from.
pub fn export_rds_parquet(
    dir: &std::path::Path,
    tag: &str,
    source_url: &str,
    root: &str,
    rows_per_chunk: u64,
) -> Result<()> {
    let export = dir.join(format!("{tag}-export.toml"));
    std::fs::write(
        &export,
        format!(
            r#"kind = "export"
name = "{tag}-export"
[source]
url = "{source_url}"
[tables]
include = ["public.*"]
[chunking]
rows_per_chunk = {rows_per_chunk}
[output]
url = "{root}"
format = "rds-parquet"
s3 = {{ endpoint = "{endpoint}", force_path_style = true }}
"#,
            endpoint = s3_endpoint()
        ),
    )?;
    let out = Command::new(bin("coordinator"))
        .args(["run", export.to_str().unwrap(), "--workers", "2"])
        .output()?;
    anyhow::ensure!(
        out.status.success(),
        "exporting {source_url} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(())
}

pub fn submit_spec(
    spec: &std::path::Path,
    state_url: &str,
    timeout_secs: u64,
) -> JoinHandle<Output> {
    let spec = spec.to_path_buf();
    let state_url = state_url.to_string();
    std::thread::spawn(move || {
        Command::new("timeout")
            .arg(timeout_secs.to_string())
            .arg(bin("coordinator"))
            .args(["submit", spec.to_str().unwrap(), "--wait"])
            .env("PGFLEET_STATE_URL", state_url)
            .output()
            .expect("run coordinator submit")
    })
}

/// Join a `submit --wait` thread and return (success, job id, stderr).
pub async fn finish_submit(submit: JoinHandle<Output>) -> Result<(bool, String, String)> {
    let out = tokio::task::spawn_blocking(move || submit.join().expect("submit thread")).await?;
    Ok((
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).trim().to_string(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    ))
}

/// Per table: (name, rows, md5 of the rows' text forms in order).
pub async fn checksums(
    client: &tokio_postgres::Client,
    tables: &[&str],
) -> Result<Vec<(String, i64, String)>> {
    let mut out = Vec::new();
    for t in tables {
        let row = client
            .query_one(
                &format!(
                    "SELECT count(*), coalesce(md5(string_agg(x::text, '|' ORDER BY x::text)), '') FROM {t} x"
                ),
                &[],
            )
            .await?;
        out.push((t.to_string(), row.get(0), row.get(1)));
    }
    Ok(out)
}

/// `SELECT count(*)` of chunks in `state` (0 while `serve` has not created its schema yet).
pub async fn chunks_in_state(client: &tokio_postgres::Client, state: &str) -> i64 {
    client
        .query_one(
            "SELECT count(*) FROM pgfleet.chunks WHERE state = $1",
            &[&state],
        )
        .await
        .map(|r| r.get(0))
        .unwrap_or(0)
}

/// Wait until `f` holds, polling every 20 ms; fail with `what` after `within`.
pub async fn wait_until<F, Fut>(what: &str, within: Duration, mut f: F) -> Result<()>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<bool>>,
{
    let deadline = Instant::now() + within;
    loop {
        if f().await? {
            return Ok(());
        }
        anyhow::ensure!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
