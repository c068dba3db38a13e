//! Durable job state in PostgreSQL (schema `pgfleet` in the state database). `coordinator serve`
//! writes every transition here, so a restarted coordinator continues where it stopped;
//! `submit`, `status` and `cancel` talk to the fleet only through these tables.

use crate::job::{
    ChunkRun, ChunkState, ExportJob, JobKind, JobRun, JobState, RestoreJob, TableRun, TableWork,
};
use anyhow::{anyhow, bail, Context, Result};
use deadpool_postgres::Pool;
use fleet_io::pg::PgTls;
use protocol::spec::redact_url;
use protocol::{JobSpec, Outcome, ResultEnvelope};
use std::time::SystemTime;

const MIGRATION: &str = r#"
CREATE SCHEMA IF NOT EXISTS pgfleet;
CREATE TABLE IF NOT EXISTS pgfleet.jobs (
    id           text PRIMARY KEY,
    name         text NOT NULL,
    kind         text NOT NULL,
    spec         jsonb NOT NULL,
    state        text NOT NULL,
    snapshot     text,
    notes        jsonb NOT NULL DEFAULT '[]',
    error        text,
    submitted_at timestamptz NOT NULL DEFAULT now(),
    started_at   timestamptz,
    finished_at  timestamptz,
    updated_at   timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE IF NOT EXISTS pgfleet.job_tables (
    job_id           text NOT NULL REFERENCES pgfleet.jobs(id) ON DELETE CASCADE,
    table_idx        int NOT NULL,
    plan             jsonb NOT NULL,
    finalized        boolean NOT NULL DEFAULT false,
    depends_on       int[] NOT NULL DEFAULT '{}',
    PRIMARY KEY (job_id, table_idx)
);
-- Restore bookkeeping (constraints dropped before loading, to put back).
ALTER TABLE pgfleet.jobs ADD COLUMN IF NOT EXISTS restore_state jsonb;
ALTER TABLE pgfleet.jobs ADD COLUMN IF NOT EXISTS source_database text;
ALTER TABLE pgfleet.job_tables ADD COLUMN IF NOT EXISTS finalized boolean NOT NULL DEFAULT false;
ALTER TABLE pgfleet.job_tables ADD COLUMN IF NOT EXISTS depends_on int[] NOT NULL DEFAULT '{}';
CREATE TABLE IF NOT EXISTS pgfleet.chunks (
    job_id     text NOT NULL REFERENCES pgfleet.jobs(id) ON DELETE CASCADE,
    chunk_id   int NOT NULL,
    table_idx  int NOT NULL,
    seq        int NOT NULL,
    range      jsonb NOT NULL,
    state      text NOT NULL,
    attempt    int NOT NULL DEFAULT 0,
    rows       bigint NOT NULL DEFAULT 0,
    bytes      bigint NOT NULL DEFAULT 0,
    worker     text,
    last_error text,
    not_before timestamptz,
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (job_id, chunk_id)
);
-- Every result received, applied or not: the audit trail of attempts and duplicates.
CREATE TABLE IF NOT EXISTS pgfleet.results (
    id          bigserial PRIMARY KEY,
    job_id      text NOT NULL,
    task_id     text NOT NULL,
    attempt     int NOT NULL,
    worker      text NOT NULL,
    outcome     text NOT NULL,
    applied     text NOT NULL,
    rows        bigint,
    bytes       bigint,
    error       text,
    received_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS results_job_idx ON pgfleet.results (job_id);
CREATE TABLE IF NOT EXISTS pgfleet.dead_letters (
    id          bigserial PRIMARY KEY,
    reason      text NOT NULL,
    job_id      text,
    task_id     text,
    preview     text NOT NULL,
    received_at timestamptz NOT NULL DEFAULT now()
);
"#;

/// Arbitrary constant: serialises migrations and marks the one running `serve`.
const MIGRATION_LOCK: i64 = 0x7067_666c_6565_7401;
const SERVE_LOCK: i64 = 0x7067_666c_6565_7402;

#[derive(Clone)]
pub struct PgStore {
    pool: Pool,
    /// For the session that LISTENs (it cannot come from the pool: it must stay open).
    listen_config: (tokio_postgres::Config, PgTls),
}

/// `NOTIFY` channel: the payload is a job id, sent when a job is submitted, asked to cancel,
/// or changes state. Waiters re-read at once instead of on their next poll; polling stays the
/// fallback, so a lost notification only costs latency.
pub const JOBS_CHANNEL: &str = "pgfleet_jobs";

/// A one-line summary of a job for `status`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct JobSummary {
    pub id: String,
    pub name: String,
    pub kind: String,
    pub state: String,
    pub error: Option<String>,
    pub chunks_total: i64,
    pub chunks_done: i64,
    pub chunks_queued: i64,
    pub chunks_failed: i64,
    pub rows: i64,
    pub bytes: i64,
    pub dead_letters: i64,
    pub duplicate_results: i64,
    pub notes: Vec<String>,
}

/// Per-table progress for `status JOB`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct TableSummary {
    pub table: String,
    pub chunks_total: i64,
    pub chunks_done: i64,
    pub chunks_queued: i64,
    pub chunks_failed: i64,
    pub rows: i64,
    pub bytes: i64,
    pub last_error: Option<String>,
    /// Restore: rows the export's Parquet footers promise for this table.
    pub expected_rows: Option<i64>,
}

/// The state database's config and TLS connector (`sslmode` / `sslrootcert` in the URL, or
/// `PGSSLMODE` / `PGSSLROOTCERT`).
fn pg_config(url: &str) -> Result<(tokio_postgres::Config, PgTls)> {
    let (mut cfg, tls) =
        fleet_io::pg::url_config(url, "the state database URL").map_err(|e| anyhow!(e.message))?;
    if cfg.get_password().is_none() {
        if let Ok(pw) = std::env::var("PGPASSWORD") {
            cfg.password(pw);
        }
    }
    if cfg.get_application_name().is_none() {
        cfg.application_name("pgfleet-coordinator");
    }
    Ok((cfg, tls))
}

impl PgStore {
    /// For `serve`: connect, creating the database (if the server allows) and the schema when
    /// missing.
    pub async fn connect(url: &str) -> Result<Self> {
        let (cfg, tls) = pg_config(url)?;
        if let Err(e) = fleet_io::pg::connect(&cfg, &tls).await {
            if !is_missing_database(&e) {
                bail!(
                    "cannot connect to the state database {}: {e}. Set --state-url / PGFLEET_STATE_URL",
                    redact_url(url),
                );
            }
            create_database(&cfg, &tls).await?;
        }
        let store = Self::pooled(cfg, tls)?;
        store.migrate().await?;
        Ok(store)
    }

    /// For `submit`, `status` and `cancel`: a state database `serve` has set up. Creates
    /// nothing, so a mistyped `--state-url` is an error, not a new empty database.
    pub async fn open(url: &str) -> Result<Self> {
        let (cfg, tls) = pg_config(url)?;
        let shown = redact_url(url);
        let client = match fleet_io::pg::connect(&cfg, &tls).await {
            Ok(c) => c,
            Err(e) if is_missing_database(&e) => bail!(
                "the state database {shown} does not exist. `coordinator serve` creates it when it \
                 starts: start it once with this --state-url, or check --state-url / PGFLEET_STATE_URL"
            ),
            Err(e) => bail!(
                "cannot connect to the state database {shown}: {e}. Set --state-url / PGFLEET_STATE_URL"
            ),
        };
        let has_schema: bool = client
            .query_one("SELECT to_regclass('pgfleet.jobs') IS NOT NULL", &[])
            .await
            .with_context(|| format!("reading the state database {shown}"))?
            .get(0);
        if !has_schema {
            bail!(
                "the state database {shown} has no pgfleet schema. `coordinator serve` creates it \
                 when it starts: start it once with this --state-url, or check --state-url / \
                 PGFLEET_STATE_URL"
            );
        }
        Self::pooled(cfg, tls)
    }

    fn pooled(cfg: tokio_postgres::Config, tls: PgTls) -> Result<Self> {
        let listen_config = (cfg.clone(), tls.clone());
        let pool = fleet_io::pg::pool(cfg, tls, 4).context("building the state database pool")?;
        Ok(Self {
            pool,
            listen_config,
        })
    }

    async fn client(&self) -> Result<deadpool_postgres::Object> {
        self.pool
            .get()
            .await
            .map_err(|e| anyhow!("state database unavailable: {e}"))
    }

    async fn migrate(&self) -> Result<()> {
        let mut c = self.client().await?;
        let tx = c.transaction().await?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
            .await?;
        // "already exists, skipping" notices on every start are noise.
        tx.batch_execute("SET LOCAL client_min_messages = warning")
            .await?;
        tx.batch_execute(MIGRATION)
            .await
            .context("creating the pgfleet state schema")?;
        tx.commit().await?;
        Ok(())
    }

    /// Hold a session lock for as long as the returned client lives, so two `serve` processes
    /// never drive the same jobs.
    pub async fn lock_serve(&self) -> Result<deadpool_postgres::Object> {
        let c = self.client().await?;
        let got: bool = c
            .query_one("SELECT pg_try_advisory_lock($1)", &[&SERVE_LOCK])
            .await?
            .get(0);
        if !got {
            bail!("another `coordinator serve` is already running against this state database");
        }
        Ok(c)
    }

    /// Whether some `coordinator serve` holds the serve lock on this state database.
    pub async fn serve_running(&self) -> Result<bool> {
        let c = self.client().await?;
        let (hi, lo) = (SERVE_LOCK >> 32, SERVE_LOCK & 0xffff_ffff);
        Ok(c.query_one(
            "SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND granted
                 AND classid::bigint = $1 AND objid::bigint = $2 AND objsubid = 1)",
            &[&hi, &lo],
        )
        .await?
        .get(0))
    }

    pub async fn submit(&self, id: &str, spec: &JobSpec) -> Result<()> {
        let c = self.client().await?;
        c.execute(
            "INSERT INTO pgfleet.jobs (id, name, kind, spec, state) VALUES ($1, $2, $3, $4, 'submitted')",
            &[&id, &spec.name(), &spec.kind(), &serde_json::to_value(spec)?],
        )
        .await?;
        notify(&c, id).await;
        Ok(())
    }

    /// Job ids from [`JOBS_CHANNEL`], for as long as the receiver lives; returns once the first
    /// LISTEN is in place (or failed). The listening session reconnects after a loss (every
    /// 5 s); meanwhile nothing arrives and callers poll as before.
    pub async fn watch_jobs(&self) -> tokio::sync::mpsc::UnboundedReceiver<String> {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        let (cfg, tls) = self.listen_config.clone();
        let (ready_tx, ready_rx) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(async move {
            let mut ready = Some(ready_tx);
            while !tx.is_closed() {
                let session = match fleet_io::pg::connect::connect_listening(&cfg, &tls).await {
                    Ok((client, ids)) => client
                        .batch_execute(&format!("LISTEN {JOBS_CHANNEL}"))
                        .await
                        .map(|()| (client, ids))
                        .map_err(|e| e.to_string()),
                    Err(e) => Err(e.to_string()),
                };
                if let Some(r) = ready.take() {
                    let _ = r.send(());
                }
                match session {
                    // `_client` keeps the session open while its notifications are read.
                    Ok((_client, mut ids)) => {
                        while let Some(id) = ids.recv().await {
                            if tx.send(id).is_err() {
                                return;
                            }
                        }
                    }
                    Err(e) => tracing::debug!(error = %e, "job notifications unavailable; polling"),
                }
                tokio::time::sleep(std::time::Duration::from_secs(5)).await;
            }
        });
        let _ = tokio::time::timeout(std::time::Duration::from_secs(10), ready_rx).await;
        rx
    }

    pub async fn take_submitted(&self) -> Result<Vec<(String, JobSpec)>> {
        let c = self.client().await?;
        let rows = c
            .query(
                "SELECT id, spec FROM pgfleet.jobs WHERE state = 'submitted' ORDER BY submitted_at, id",
                &[],
            )
            .await?;
        let mut out = Vec::new();
        for r in rows {
            let id: String = r.get(0);
            match serde_json::from_value::<JobSpec>(r.get(1)) {
                Ok(spec) => out.push((id, spec)),
                Err(e) => {
                    self.set_job_state(
                        &id,
                        JobState::Failed,
                        Some(&format!("stored spec is unreadable: {e}")),
                    )
                    .await?;
                }
            }
        }
        Ok(out)
    }

    pub async fn cancel_requests(&self) -> Result<Vec<String>> {
        let c = self.client().await?;
        Ok(c.query(
            "SELECT id FROM pgfleet.jobs WHERE state = 'cancelling'",
            &[],
        )
        .await?
        .iter()
        .map(|r| r.get(0))
        .collect())
    }

    /// Ask for a job to stop. A job not started yet is cancelled at once.
    pub async fn request_cancel(&self, id: &str) -> Result<String> {
        let c = self.client().await?;
        let row = c
            .query_opt(
                "UPDATE pgfleet.jobs SET state = CASE state WHEN 'submitted' THEN 'cancelled' ELSE 'cancelling' END,
                        updated_at = now(),
                        finished_at = CASE state WHEN 'submitted' THEN now() END
                 WHERE id = $1 AND state IN ('submitted', 'running') RETURNING state",
                &[&id],
            )
            .await?;
        notify(&c, id).await;
        match row {
            Some(r) => Ok(r.get(0)),
            None => match self.job_state(id).await? {
                Some(s) => bail!("job {id} is already {s}"),
                None => bail!("no job {id}"),
            },
        }
    }

    pub async fn job_state(&self, id: &str) -> Result<Option<String>> {
        let c = self.client().await?;
        Ok(
            c.query_opt("SELECT state FROM pgfleet.jobs WHERE id = $1", &[&id])
                .await?
                .map(|r| r.get(0)),
        )
    }

    pub async fn set_job_state(
        &self,
        id: &str,
        state: JobState,
        error: Option<&str>,
    ) -> Result<()> {
        let c = self.client().await?;
        c.execute(
            "UPDATE pgfleet.jobs SET state = $2, error = coalesce($3, error), updated_at = now(),
                    finished_at = CASE WHEN $4 THEN now() ELSE finished_at END
             WHERE id = $1",
            &[&id, &state.as_str(), &error, &state.is_terminal()],
        )
        .await?;
        notify(&c, id).await;
        Ok(())
    }

    /// Record a freshly planned job: its tables and chunks, all at once.
    pub async fn save_plan(&self, job: &JobRun) -> Result<()> {
        let mut c = self.client().await?;
        let tx = c.transaction().await?;
        tx.execute(
            "UPDATE pgfleet.jobs SET state = $2, snapshot = $3, notes = $4, restore_state = $5,
                    source_database = $6, started_at = now(), updated_at = now() WHERE id = $1",
            &[
                &job.id,
                &job.state.as_str(),
                &job.export().and_then(|e| e.snapshot.as_deref()),
                &serde_json::to_value(&job.notes)?,
                &job.restore_state().map(serde_json::to_value).transpose()?,
                &job.export().and_then(|e| e.source_database.as_deref()),
            ],
        )
        .await?;
        tx.execute("DELETE FROM pgfleet.chunks WHERE job_id = $1", &[&job.id])
            .await?;
        tx.execute(
            "DELETE FROM pgfleet.job_tables WHERE job_id = $1",
            &[&job.id],
        )
        .await?;
        for (i, t) in job.tables.iter().enumerate() {
            let deps: Vec<i32> = t.depends_on.iter().map(|&d| d as i32).collect();
            tx.execute(
                "INSERT INTO pgfleet.job_tables (job_id, table_idx, plan, finalized, depends_on) VALUES ($1, $2, $3, $4, $5)",
                &[&job.id, &(i as i32), &serde_json::to_value(&t.work)?, &t.finalized, &deps],
            )
            .await?;
        }
        let ids: Vec<i32> = job.chunks.iter().map(|c| c.id as i32).collect();
        let tables: Vec<i32> = job.chunks.iter().map(|c| c.table_idx as i32).collect();
        let seqs: Vec<i32> = job.chunks.iter().map(|c| c.seq as i32).collect();
        let ranges: Vec<serde_json::Value> = job
            .chunks
            .iter()
            .map(|c| serde_json::to_value(&c.work))
            .collect::<Result<_, _>>()?;
        tx.execute(
            "INSERT INTO pgfleet.chunks (job_id, chunk_id, table_idx, seq, range, state)
             SELECT $1, u.id, u.t, u.s, u.r, 'pending'
             FROM unnest($2::int[], $3::int[], $4::int[], $5::jsonb[]) AS u(id, t, s, r)",
            &[&job.id, &ids, &tables, &seqs, &ranges],
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    pub async fn save_chunk(&self, job_id: &str, ch: &ChunkRun) -> Result<()> {
        let c = self.client().await?;
        c.execute(
            "UPDATE pgfleet.chunks SET state = $3, attempt = $4, rows = $5, bytes = $6, worker = $7,
                    last_error = $8, not_before = $9, updated_at = now()
             WHERE job_id = $1 AND chunk_id = $2",
            &[
                &job_id,
                &(ch.id as i32),
                &ch.state.as_str(),
                &(ch.attempt as i32),
                &(ch.rows as i64),
                &(ch.bytes as i64),
                &ch.worker,
                &ch.last_error,
                &ch.not_before,
            ],
        )
        .await?;
        Ok(())
    }

    pub async fn record_result(&self, r: &ResultEnvelope, applied: &str) -> Result<()> {
        let c = self.client().await?;
        let (outcome, rows, bytes, error) = match &r.outcome {
            Outcome::Succeeded { rows, bytes, .. } => {
                ("succeeded", Some(*rows as i64), Some(*bytes as i64), None)
            }
            Outcome::Failed { error, retryable } => (
                if *retryable { "retryable" } else { "failed" },
                None,
                None,
                Some(error.as_str()),
            ),
        };
        c.execute(
            "INSERT INTO pgfleet.results (job_id, task_id, attempt, worker, outcome, applied, rows, bytes, error)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
            &[&r.job_id, &r.task_id, &(r.attempt as i32), &r.worker, &outcome, &applied, &rows, &bytes, &error],
        )
        .await?;
        Ok(())
    }

    pub async fn record_dead_letter(
        &self,
        reason: &str,
        job_id: Option<&str>,
        task_id: Option<&str>,
        preview: &str,
    ) -> Result<()> {
        let c = self.client().await?;
        c.execute(
            "INSERT INTO pgfleet.dead_letters (reason, job_id, task_id, preview) VALUES ($1, $2, $3, $4)",
            &[&reason, &job_id, &task_id, &preview],
        )
        .await?;
        Ok(())
    }

    pub async fn mark_finalized(&self, job_id: &str, table_idx: u32) -> Result<()> {
        let c = self.client().await?;
        c.execute(
            "UPDATE pgfleet.job_tables SET finalized = true WHERE job_id = $1 AND table_idx = $2",
            &[&job_id, &(table_idx as i32)],
        )
        .await?;
        Ok(())
    }

    pub async fn save_restore_state(&self, job: &JobRun) -> Result<()> {
        let c = self.client().await?;
        c.execute(
            "UPDATE pgfleet.jobs SET restore_state = $2, updated_at = now() WHERE id = $1",
            &[
                &job.id,
                &job.restore_state().map(serde_json::to_value).transpose()?,
            ],
        )
        .await?;
        Ok(())
    }

    pub async fn save_job(&self, job: &JobRun) -> Result<()> {
        self.set_job_state(&job.id, job.state, job.error.as_deref())
            .await
    }

    /// Jobs a restarted coordinator must continue.
    pub async fn load_active(&self) -> Result<Vec<JobRun>> {
        let c = self.client().await?;
        let jobs = c
            .query(
                "SELECT id, spec, state, snapshot, notes, error, restore_state, source_database FROM pgfleet.jobs
                 WHERE state IN ('running', 'cancelling')
                    OR (restore_state IS NOT NULL AND NOT (restore_state->>'restored')::boolean)
                 ORDER BY submitted_at, id",
                &[],
            )
            .await?;
        let mut out = Vec::new();
        for j in jobs {
            let id: String = j.get(0);
            let spec: JobSpec = serde_json::from_value(j.get(1))
                .with_context(|| format!("job {id}: stored spec is unreadable"))?;
            let state = JobState::parse(j.get(2)).ok_or_else(|| anyhow!("job {id}: bad state"))?;
            let tables = c
                .query(
                    "SELECT plan, finalized, depends_on FROM pgfleet.job_tables WHERE job_id = $1 ORDER BY table_idx",
                    &[&id],
                )
                .await?
                .into_iter()
                .map(|r| {
                    Ok(TableRun {
                        work: serde_json::from_value::<TableWork>(r.get(0))?,
                        finalized: r.get(1),
                        depends_on: r
                            .get::<_, Vec<i32>>(2)
                            .into_iter()
                            .map(|d| d as u32)
                            .collect(),
                    })
                })
                .collect::<Result<Vec<_>>>()?;
            let chunks = c
                .query(
                    "SELECT chunk_id, table_idx, seq, range, state, attempt, rows, bytes, worker, last_error, not_before
                     FROM pgfleet.chunks WHERE job_id = $1 ORDER BY chunk_id",
                    &[&id],
                )
                .await?
                .into_iter()
                .map(|r| {
                    Ok(ChunkRun {
                        id: r.get::<_, i32>(0) as u32,
                        table_idx: r.get::<_, i32>(1) as u32,
                        seq: r.get::<_, i32>(2) as u32,
                        work: serde_json::from_value(r.get(3))?,
                        state: ChunkState::parse(r.get(4)).ok_or_else(|| anyhow!("bad chunk state"))?,
                        attempt: r.get::<_, i32>(5) as u32,
                        rows: r.get::<_, i64>(6) as u64,
                        bytes: r.get::<_, i64>(7) as u64,
                        worker: r.get(8),
                        last_error: r.get(9),
                        not_before: r.get::<_, Option<SystemTime>>(10),
                    })
                })
                .collect::<Result<Vec<_>>>()?;
            let kind = match spec {
                JobSpec::Export(spec) => JobKind::Export(ExportJob {
                    spec,
                    snapshot: j.get(3),
                    source_database: j.get(7),
                }),
                JobSpec::Restore(spec) => JobKind::Restore(RestoreJob {
                    spec,
                    state: j
                        .get::<_, Option<serde_json::Value>>(6)
                        .map(serde_json::from_value)
                        .transpose()
                        .with_context(|| format!("job {id}: stored restore state is unreadable"))?,
                }),
            };
            out.push(JobRun {
                id,
                kind,
                state,
                tables,
                chunks,
                notes: serde_json::from_value(j.get(4)).unwrap_or_default(),
                error: j.get(5),
            });
        }
        Ok(out)
    }

    const SUMMARY: &'static str = "
        SELECT j.id, j.name, j.kind, j.state, j.error, j.notes,
               count(c.chunk_id), count(*) FILTER (WHERE c.state = 'done'),
               count(*) FILTER (WHERE c.state = 'queued'), count(*) FILTER (WHERE c.state = 'failed'),
               coalesce(sum(c.rows), 0)::bigint, coalesce(sum(c.bytes), 0)::bigint,
               (SELECT count(*) FROM pgfleet.dead_letters d WHERE d.job_id = j.id),
               (SELECT count(*) FROM pgfleet.results r WHERE r.job_id = j.id AND r.applied LIKE 'ignored%')
        FROM pgfleet.jobs j LEFT JOIN pgfleet.chunks c ON c.job_id = j.id";

    fn summary(r: &tokio_postgres::Row) -> JobSummary {
        JobSummary {
            id: r.get(0),
            name: r.get(1),
            kind: r.get(2),
            state: r.get(3),
            error: r.get(4),
            notes: serde_json::from_value(r.get(5)).unwrap_or_default(),
            chunks_total: r.get(6),
            chunks_done: r.get(7),
            chunks_queued: r.get(8),
            chunks_failed: r.get(9),
            rows: r.get(10),
            bytes: r.get(11),
            dead_letters: r.get(12),
            duplicate_results: r.get(13),
        }
    }

    pub async fn list_jobs(&self, limit: i64) -> Result<Vec<JobSummary>> {
        let c = self.client().await?;
        let sql = format!(
            "{} GROUP BY j.id ORDER BY j.submitted_at DESC, j.id LIMIT $1",
            Self::SUMMARY
        );
        Ok(c.query(&sql, &[&limit])
            .await?
            .iter()
            .map(Self::summary)
            .collect())
    }

    pub async fn job_summary(&self, id: &str) -> Result<Option<JobSummary>> {
        let c = self.client().await?;
        let sql = format!("{} WHERE j.id = $1 GROUP BY j.id", Self::SUMMARY);
        Ok(c.query_opt(&sql, &[&id]).await?.as_ref().map(Self::summary))
    }

    pub async fn table_summaries(&self, id: &str) -> Result<Vec<TableSummary>> {
        let c = self.client().await?;
        let rows = c
            .query(
                "SELECT t.plan->'table'->>'schema', t.plan->'table'->>'name',
                        count(c.chunk_id), count(*) FILTER (WHERE c.state = 'done'),
                        count(*) FILTER (WHERE c.state = 'queued'), count(*) FILTER (WHERE c.state = 'failed'),
                        coalesce(sum(c.rows), 0)::bigint, coalesce(sum(c.bytes), 0)::bigint,
                        max(c.last_error), (t.plan->>'expected_rows')::bigint
                 FROM pgfleet.job_tables t
                 LEFT JOIN pgfleet.chunks c ON c.job_id = t.job_id AND c.table_idx = t.table_idx
                 WHERE t.job_id = $1 GROUP BY t.table_idx, t.plan ORDER BY t.table_idx",
                &[&id],
            )
            .await?;
        Ok(rows
            .iter()
            .map(|r| TableSummary {
                table: format!("{}.{}", r.get::<_, String>(0), r.get::<_, String>(1)),
                chunks_total: r.get(2),
                chunks_done: r.get(3),
                chunks_queued: r.get(4),
                chunks_failed: r.get(5),
                rows: r.get(6),
                bytes: r.get(7),
                last_error: r.get(8),
                expected_rows: r.get(9),
            })
            .collect())
    }

    /// Unparseable dead letters (no job), for `status`.
    pub async fn orphan_dead_letters(&self) -> Result<Vec<(String, String)>> {
        let c = self.client().await?;
        Ok(c.query(
            "SELECT reason, preview FROM pgfleet.dead_letters WHERE job_id IS NULL ORDER BY id DESC LIMIT 20",
            &[],
        )
        .await?
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect())
    }
}

async fn create_database(cfg: &tokio_postgres::Config, tls: &PgTls) -> Result<()> {
    let db = cfg.get_dbname().unwrap_or("pgfleet_state").to_string();
    let mut admin = cfg.clone();
    admin.dbname("postgres");
    let client = fleet_io::pg::connect(&admin, tls).await.map_err(|e| {
        anyhow!(
            "state database {db:?} does not exist and the server is unreachable to create it: {e}"
        )
    })?;
    let sql = format!("CREATE DATABASE {}", protocol::quote_ident(&db));
    match client.batch_execute(&sql).await {
        Ok(()) => Ok(()),
        // Another process (a `submit` racing a `serve`) created it first.
        Err(e)
            if e.code() == Some(&tokio_postgres::error::SqlState::DUPLICATE_DATABASE)
                || e.code() == Some(&tokio_postgres::error::SqlState::UNIQUE_VIOLATION) =>
        {
            Ok(())
        }
        Err(e) => Err(anyhow!(
            "state database {db:?} does not exist and could not be created ({}); create it or point --state-url elsewhere",
            db_message(&e)
        )),
    }
}

fn is_missing_database(e: &fleet_io::pg::ConnectError) -> bool {
    e.db_error()
        .is_some_and(|d| d.code() == &tokio_postgres::error::SqlState::INVALID_CATALOG_NAME)
}

/// The server's own message when there is one (tokio-postgres' Display says only "db error").
pub fn db_message(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(d) => format!("{}: {}", d.code().code(), d.message()),
        None => e.to_string(),
    }
}

/// Tell listeners (`serve`, `submit --wait`) that job `id` changed. Best effort: they poll too.
async fn notify(c: &tokio_postgres::Client, id: &str) {
    if let Err(e) = c
        .execute("SELECT pg_notify($1, $2)", &[&JOBS_CHANNEL, &id])
        .await
    {
        tracing::debug!(error = %e, "NOTIFY failed; listeners fall back to polling");
    }
}
