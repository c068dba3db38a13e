//! The target's own record of what pgfleet changed in it, so that any later run, in any mode,
//! after any crash, can put it back.
//!
//! Before a restore drops a foreign key or an index, it writes the object's full definition to
//! `pgfleet_restore.pending_changes` in the same transaction as the DROP. Putting the object back
//! deletes the row (a foreign key re-added NOT VALID whose data does not hold yet stays recorded,
//! in state `not_valid`). The target database, not a process's memory, is the source of truth.
//!
//! A running job holds a session-level advisory lock on its id for as long as it may have
//! changes out; a repair skips the changes of a job whose lock is held (it is alive, and will put
//! them back itself), so two jobs into one target never undo each other's work. A process that
//! dies drops its session, and with it the lock.

use crate::restore::target::{ForeignKey, SecondaryIndex};
use anyhow::{anyhow, Context, Result};
use futures::StreamExt;
use protocol::{PgConn, QualifiedName};
use tokio_postgres::{Client, GenericClient};

pub const CHANGES_DDL: &str = "\
CREATE SCHEMA IF NOT EXISTS pgfleet_restore;
CREATE TABLE IF NOT EXISTS pgfleet_restore.pending_changes (
    kind text NOT NULL CHECK (kind IN ('foreign_key', 'index')),
    table_schema text NOT NULL,
    table_name text NOT NULL,
    -- constraint name (unquoted), or the index's qualified, quoted name
    name text NOT NULL,
    -- pg_get_constraintdef (without NOT VALID) or pg_get_indexdef
    definition text NOT NULL,
    -- the foreign key was valid before: it must be validated again
    validate boolean NOT NULL DEFAULT true,
    state text NOT NULL DEFAULT 'dropped' CHECK (state IN ('dropped', 'not_valid')),
    job_id text NOT NULL,
    recorded_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (kind, table_schema, table_name, name)
);
";

/// One recorded change: an object pgfleet dropped (or re-added NOT VALID) and must put back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    pub kind: ChangeKind,
    pub table: QualifiedName,
    pub name: String,
    pub definition: String,
    pub validate: bool,
    pub not_valid: bool,
    pub job_id: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeKind {
    ForeignKey,
    Index,
}

impl ChangeKind {
    fn as_str(self) -> &'static str {
        match self {
            ChangeKind::ForeignKey => "foreign_key",
            ChangeKind::Index => "index",
        }
    }
}

impl Change {
    pub fn from_fk(job_id: &str, fk: &ForeignKey) -> Self {
        Change {
            kind: ChangeKind::ForeignKey,
            table: fk.table.clone(),
            name: fk.name.clone(),
            definition: fk.definition.clone(),
            validate: fk.validated,
            not_valid: false,
            job_id: job_id.to_string(),
        }
    }

    pub fn from_index(job_id: &str, ix: &SecondaryIndex) -> Self {
        Change {
            kind: ChangeKind::Index,
            table: ix.table.clone(),
            name: ix.name.clone(),
            definition: ix.definition.clone(),
            validate: false,
            not_valid: false,
            job_id: job_id.to_string(),
        }
    }

    /// For messages: `foreign key orders_customer_fk on public.orders`.
    pub fn describe(&self) -> String {
        match self.kind {
            ChangeKind::ForeignKey => {
                format!("foreign key {} on {}", self.name, self.table.display_name())
            }
            ChangeKind::Index => format!("index {} on {}", self.name, self.table.display_name()),
        }
    }

    fn same_object(&self, other: &Change) -> bool {
        self.kind == other.kind && self.table == other.table && self.name == other.name
    }
}

/// What putting changes back achieved.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Repair {
    /// Put back in full (indexes rebuilt, foreign keys re-added and valid).
    pub restored: Vec<String>,
    /// Still recorded: re-added NOT VALID (the data does not hold yet), or held by a live job.
    pub pending: Vec<String>,
}

impl Repair {
    pub fn merge(&mut self, other: Repair) {
        self.restored.extend(other.restored);
        self.pending.extend(other.pending);
    }

    /// One paragraph for a user: what was put back and what is still pending.
    pub fn summary(&self) -> String {
        let mut out = String::new();
        if self.restored.is_empty() && self.pending.is_empty() {
            return "nothing was pending".into();
        }
        if !self.restored.is_empty() {
            out.push_str(&format!("put back {}:", self.restored.len()));
            for r in &self.restored {
                out.push_str(&format!("\n  {r}"));
            }
        }
        if !self.pending.is_empty() {
            if !out.is_empty() {
                out.push('\n');
            }
            out.push_str(&format!(
                "still pending {} (recorded in pgfleet_restore.pending_changes; `coordinator repair` or the next restore into this target puts them back):",
                self.pending.len()
            ));
            for p in &self.pending {
                out.push_str(&format!("\n  {p}"));
            }
        }
        out
    }
}

/// Connect to a restore target (writable).
pub async fn connect(conn: &PgConn) -> Result<Client> {
    let (cfg, tls) = fleet_io::pg::pg_config(conn).map_err(|e| anyhow!(e.message))?;
    fleet_io::pg::connect(&cfg, &tls)
        .await
        .map_err(|e| anyhow!("connecting to the target: {e}"))
}

async fn record_table_exists<C: GenericClient + Sync>(client: &C) -> Result<bool> {
    Ok(client
        .query_one(
            "SELECT to_regclass('pgfleet_restore.pending_changes') IS NOT NULL",
            &[],
        )
        .await?
        .get(0))
}

/// Every recorded change (of one job, or of all), oldest first. Read-only: a target without
/// the record table has nothing pending.
pub async fn pending<C: GenericClient + Sync>(
    client: &C,
    job_id: Option<&str>,
) -> Result<Vec<Change>> {
    if !record_table_exists(client).await? {
        return Ok(Vec::new());
    }
    let rows = client
        .query(
            "SELECT kind, table_schema, table_name, name, definition, validate, state = 'not_valid', job_id
             FROM pgfleet_restore.pending_changes
             WHERE $1::text IS NULL OR job_id = $1
             ORDER BY recorded_at, kind DESC, table_schema, table_name, name",
            &[&job_id],
        )
        .await
        .context("reading pgfleet_restore.pending_changes in the target")?;
    Ok(rows
        .iter()
        .map(|r| Change {
            kind: if r.get::<_, &str>(0) == "index" {
                ChangeKind::Index
            } else {
                ChangeKind::ForeignKey
            },
            table: QualifiedName::new(r.get::<_, String>(1), r.get::<_, String>(2)),
            name: r.get(3),
            definition: r.get(4),
            validate: r.get(5),
            not_valid: r.get(6),
            job_id: r.get(7),
        })
        .collect())
}

/// Record each change and make it, in one transaction: the record commits exactly when the
/// DROP does. A change already recorded (an earlier run's, re-added NOT VALID) is taken over by
/// this job and keeps its duty to be validated.
pub async fn record_and_drop(client: &mut Client, changes: &[Change]) -> Result<()> {
    if changes.is_empty() {
        return Ok(());
    }
    client
        .batch_execute(CHANGES_DDL)
        .await
        .context("creating pgfleet_restore.pending_changes in the target")?;
    let tx = client.transaction().await?;
    for c in changes {
        tx.execute(
            "INSERT INTO pgfleet_restore.pending_changes
                 (kind, table_schema, table_name, name, definition, validate, state, job_id)
             VALUES ($1, $2, $3, $4, $5, $6, 'dropped', $7)
             ON CONFLICT (kind, table_schema, table_name, name) DO UPDATE
             SET definition = EXCLUDED.definition, state = 'dropped', job_id = EXCLUDED.job_id,
                 validate = pending_changes.validate OR EXCLUDED.validate, recorded_at = now()",
            &[
                &c.kind.as_str(),
                &c.table.schema,
                &c.table.name,
                &c.name,
                &c.definition,
                &c.validate,
                &c.job_id,
            ],
        )
        .await
        .with_context(|| format!("recording {} before dropping it", c.describe()))?;
        let drop = match c.kind {
            ChangeKind::ForeignKey => format!(
                "ALTER TABLE {} DROP CONSTRAINT {}",
                c.table.quoted(),
                protocol::quote_ident(&c.name)
            ),
            ChangeKind::Index => format!("DROP INDEX {}", c.name),
        };
        tx.batch_execute(&drop)
            .await
            .with_context(|| format!("dropping {}", c.describe()))?;
    }
    tx.commit()
        .await
        .context("committing the dropped objects")?;
    Ok(())
}

/// Put `changes` back: rebuild indexes, re-add foreign keys NOT VALID (metadata only), then
/// VALIDATE them in parallel over up to `sessions` connections. Idempotent: what already exists
/// is not created again, and every step updates the record, so a crash anywhere is repaired by
/// running it again. With `must_validate`, a key the data breaks is an error; otherwise it stays
/// NOT VALID and recorded (reported as pending).
pub async fn put_back(
    conn: &PgConn,
    changes: &[Change],
    sessions: usize,
    must_validate: bool,
) -> Result<Repair> {
    let mut report = Repair::default();
    if changes.is_empty() {
        return Ok(report);
    }
    let client = connect(conn).await?;
    let recorded = record_table_exists(&client).await?;
    let mut to_validate = Vec::new();
    for c in changes {
        match c.kind {
            ChangeKind::Index => {
                let exists: bool = client
                    .query_one("SELECT to_regclass($1) IS NOT NULL", &[&c.name])
                    .await?
                    .get(0);
                if !exists {
                    client
                        .batch_execute(&c.definition)
                        .await
                        .with_context(|| format!("rebuilding {}", c.describe()))?;
                }
                if recorded {
                    forget(&client, c).await?;
                }
                report.restored.push(c.describe());
            }
            ChangeKind::ForeignKey => {
                let state: Option<bool> = client
                    .query_opt(
                        "SELECT convalidated FROM pg_constraint WHERE conname = $1 AND conrelid = $2::text::regclass",
                        &[&c.name, &c.table.quoted()],
                    )
                    .await?
                    .map(|r| r.get(0));
                if state.is_none() {
                    client
                        .batch_execute(&format!(
                            "ALTER TABLE {} ADD CONSTRAINT {} {} NOT VALID",
                            c.table.quoted(),
                            protocol::quote_ident(&c.name),
                            c.definition
                        ))
                        .await
                        .with_context(|| format!("re-adding {}", c.describe()))?;
                    if recorded {
                        client
                            .execute(
                                "UPDATE pgfleet_restore.pending_changes SET state = 'not_valid'
                                 WHERE kind = 'foreign_key' AND table_schema = $1 AND table_name = $2 AND name = $3",
                                &[&c.table.schema, &c.table.name, &c.name],
                            )
                            .await?;
                    }
                }
                if c.validate && state != Some(true) {
                    to_validate.push(c);
                } else {
                    if recorded {
                        forget(&client, c).await?;
                    }
                    report.restored.push(c.describe());
                }
            }
        }
    }
    drop(client);
    // Each validation is one set-based check; they share only non-conflicting locks.
    let outcomes: Vec<Result<std::result::Result<String, String>>> =
        futures::stream::iter(to_validate)
            .map(|c| validate(conn, c, recorded))
            .buffer_unordered(sessions.clamp(1, 8))
            .collect()
            .await;
    let mut broken = Vec::new();
    for o in outcomes {
        match o? {
            Ok(done) => report.restored.push(done),
            Err(why) => broken.push(why),
        }
    }
    if must_validate && !broken.is_empty() {
        return Err(anyhow!(
            "{} foreign key(s) do not hold for the loaded data (re-added NOT VALID, still recorded as pending):\n  {}",
            broken.len(),
            broken.join("\n  ")
        ));
    }
    for why in broken {
        tracing::warn!("{why}");
        report.pending.push(why);
    }
    Ok(report)
}

/// VALIDATE one re-added key: `Ok(Ok(description))` when valid (record deleted), `Ok(Err(why))`
/// when the data breaks it (record kept as `not_valid`).
async fn validate(
    conn: &PgConn,
    c: &Change,
    recorded: bool,
) -> Result<std::result::Result<String, String>> {
    let client = connect(conn).await?;
    let validated = client
        .batch_execute(&format!(
            "ALTER TABLE {} VALIDATE CONSTRAINT {}",
            c.table.quoted(),
            protocol::quote_ident(&c.name)
        ))
        .await;
    match validated {
        Ok(()) => {
            if recorded {
                forget(&client, c).await?;
            }
            Ok(Ok(c.describe()))
        }
        Err(e) => Ok(Err(format!(
            "{}: re-added NOT VALID, the data does not satisfy it yet ({})",
            c.describe(),
            crate::store::db_message(&e)
        ))),
    }
}

async fn forget(client: &Client, c: &Change) -> Result<()> {
    client
        .execute(
            "DELETE FROM pgfleet_restore.pending_changes
             WHERE kind = $1 AND table_schema = $2 AND table_name = $3 AND name = $4",
            &[&c.kind.as_str(), &c.table.schema, &c.table.name, &c.name],
        )
        .await
        .with_context(|| format!("clearing the record of {}", c.describe()))?;
    Ok(())
}

/// `changes` plus those in `more` that name other objects (a job's own plan lists, for jobs
/// whose record predates the record table).
pub fn union(mut changes: Vec<Change>, more: Vec<Change>) -> Vec<Change> {
    for m in more {
        if !changes.iter().any(|c| c.same_object(&m)) {
            changes.push(m);
        }
    }
    changes
}

/// The advisory-lock key of a job's changes: held by the process running the job.
const LOCK_KEY: &str = "hashtextextended('pgfleet_restore:' || $1, 0)";

/// Hold job `job_id`'s lock on a session of its own, for as long as the returned client lives.
pub async fn hold_job_lock(conn: &PgConn, job_id: &str) -> Result<Client> {
    let client = connect(conn).await?;
    client
        .execute(&format!("SELECT pg_advisory_lock({LOCK_KEY})"), &[&job_id])
        .await
        .context("taking the job's lock on the target")?;
    Ok(client)
}

/// Put back everything recorded in the target by jobs that are no longer running (no live
/// session holds their lock). What a live job changed is left to it, and reported as pending.
pub async fn repair(conn: &PgConn, sessions: usize, must_validate: bool) -> Result<Repair> {
    let client = connect(conn).await?;
    let all = pending(&client, None).await?;
    let mut report = Repair::default();
    let mut jobs: Vec<&str> = all.iter().map(|c| c.job_id.as_str()).collect();
    jobs.dedup();
    jobs.sort_unstable();
    jobs.dedup();
    for job in jobs {
        let mine: Vec<Change> = all.iter().filter(|c| c.job_id == job).cloned().collect();
        let got: bool = client
            .query_one(&format!("SELECT pg_try_advisory_lock({LOCK_KEY})"), &[&job])
            .await?
            .get(0);
        if !got {
            report.pending.extend(mine.iter().map(|c| {
                format!(
                    "{}: held by job {job}, which is still running",
                    c.describe()
                )
            }));
            continue;
        }
        let done = put_back(conn, &mine, sessions, must_validate).await;
        client
            .execute(&format!("SELECT pg_advisory_unlock({LOCK_KEY})"), &[&job])
            .await?;
        report.merge(done?);
    }
    Ok(report)
}
