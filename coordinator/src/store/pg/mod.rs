//! Durable job state in PostgreSQL (schema `pgfleet` in the state database). `coordinator serve`
//! writes every transition here, so a restarted coordinator continues where it stopped;
//! `submit`, `status` and `cancel` talk to the fleet only through these tables.

mod queue;
mod runs;
mod summary;

pub use summary::{JobSummary, TableSummary};

use anyhow::{anyhow, bail, Context, Result};
use deadpool_postgres::Pool;
use fleet_io::pg::PgTls;
use protocol::spec::redact_url;

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
-- Export parts: the object's CRC32C and the source rows' fingerprint (protocol::proof).
ALTER TABLE pgfleet.chunks ADD COLUMN IF NOT EXISTS proof jsonb;
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

    /// For `coordinator check`: what is at `url`, creating nothing. An error is one line that
    /// starts with the server tried (`host:port: …`) and never shows a password.
    pub async fn probe(url: &str) -> Result<StateDbStatus> {
        let (cfg, tls) = pg_config(url)?;
        let client = match fleet_io::pg::connect(&cfg, &tls).await {
            Ok(c) => c,
            Err(e) if is_missing_database(&e) => return Ok(StateDbStatus::NoDatabase),
            Err(e) => bail!("{e}"),
        };
        let row = client
            .query_one(
                "SELECT to_regclass('pgfleet.jobs') IS NOT NULL, current_setting('server_version')",
                &[],
            )
            .await
            .map_err(|e| anyhow!("reading the state database: {}", db_message(&e)))?;
        Ok(if row.get(0) {
            StateDbStatus::Ready {
                server_version: row.get(1),
            }
        } else {
            StateDbStatus::NoSchema {
                server_version: row.get(1),
            }
        })
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
}

/// What [`PgStore::probe`] found on a reachable server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StateDbStatus {
    /// The database and its pgfleet schema: `submit`, `status` and `cancel` can use it.
    Ready { server_version: String },
    /// The database, without the schema `serve` creates when it starts.
    NoSchema { server_version: String },
    /// No such database; `serve` creates it (if its role may) when it starts.
    NoDatabase,
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
