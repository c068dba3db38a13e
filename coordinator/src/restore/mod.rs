//! Restore jobs on the coordinator side, with the entry points the engine calls for every job
//! kind: [`plan`] (export inventory × target catalog → waves and pieces, one task each; any
//! problem refuses the job), [`prepare`] (ledger, truncate, drop cycle foreign keys and
//! deferred indexes, each recorded in the target first), [`finalize_table`] (row check),
//! [`finish`] (put them back, validate, reset sequences) and [`undo`] (after a failure or a
//! cancel). The loading itself is the workers' `RestoreFile` tasks.

pub mod changes;
mod plan;
pub mod target;
pub mod waves;

pub use plan::{inspect, RestorePlan};

use crate::job::{FilePiece, JobRun, RestoreState, RestoreTable, TableWork};
use anyhow::{anyhow, bail, Context, Result};
use changes::{Change, Repair};
use fleet_io::clients::Clients;
use protocol::spec::RestoreSpec;
use protocol::{LedgerKey, ObjectRef, QualifiedName, RestoreFile};

/// Connect to the target (writable, unlike export sources).
pub async fn connect(spec: &RestoreSpec) -> Result<tokio_postgres::Client> {
    changes::connect(&spec.target.conn()).await
}

/// The engine's entry point: put back what earlier restores into the same target left pending
/// (a crash, a kill, a lost machine) so the plan sees the target's real schema, then plan;
/// any problem refuses the job before anything loads.
pub async fn plan(ctx: &Clients, id: &str, spec: &RestoreSpec) -> Result<JobRun> {
    repair_target(id, spec).await?;
    let plan = inspect(ctx, id, spec).await?;
    if !plan.problems.is_empty() {
        bail!(
            "the export and the target disagree; nothing was loaded:\n  {}",
            plan.problems.join("\n  ")
        );
    }
    Ok(plan.job)
}

async fn repair_target(id: &str, spec: &RestoreSpec) -> Result<()> {
    let report = changes::repair(&spec.target.conn(), sessions(spec), false)
        .await
        .context("putting back what an earlier restore left pending in the target")?;
    for r in &report.restored {
        tracing::info!(
            job = id,
            "put back, left pending by an earlier restore: {r}"
        );
    }
    for p in &report.pending {
        tracing::warn!(job = id, "still pending in the target: {p}");
    }
    Ok(())
}

/// The worker task for one piece of one file.
pub fn task(
    job: &JobRun,
    spec: &RestoreSpec,
    table: &RestoreTable,
    piece: &FilePiece,
) -> Result<RestoreFile> {
    let location = spec.export_location().map_err(|e| anyhow!(e))?;
    let export = job
        .restore_state()
        .map(|r| r.export.clone())
        .unwrap_or_else(|| spec.export.url.clone());
    let range = piece
        .row_groups
        .map(|r| format!("#{}-{}", r.start, r.end))
        .unwrap_or_default();
    Ok(RestoreFile {
        target: spec.target.conn(),
        table: table.table.clone(),
        columns: table.columns.clone(),
        object: ObjectRef {
            location,
            key: piece.key.clone(),
            size: piece.size,
            s3: spec.export.s3.clone(),
        },
        row_groups: piece.row_groups,
        ledger: LedgerKey {
            export,
            piece: format!("{}{range}", piece.key),
        },
        expected_rows: piece.rows,
        filter: table.filter.clone(),
    })
}

fn state(job: &JobRun) -> Result<(&RestoreSpec, &RestoreState)> {
    match (job.restore_spec(), job.restore_state()) {
        (Some(s), Some(r)) => Ok((s, r)),
        _ => Err(anyhow!("job {} is not a restore", job.id)),
    }
}

/// Before any load, once the plan is saved: take the job's lock on the target (into `hold`:
/// held for as long as the job's changes are out, so no repair by anyone else undoes them,
/// even if what follows fails), then [`change_target`].
pub async fn prepare(job: &JobRun, hold: &mut Option<tokio_postgres::Client>) -> Result<()> {
    let (spec, _) = state(job)?;
    *hold = Some(changes::hold_job_lock(&spec.target.conn(), &job.id).await?);
    change_target(job).await
}

/// A job continued after a coordinator restart: its lock again while its changes are out.
pub async fn resume(job: &JobRun) -> Result<Option<tokio_postgres::Client>> {
    match (job.restore_spec(), job.restore_state()) {
        (Some(spec), Some(st)) if !st.restored => Ok(Some(
            changes::hold_job_lock(&spec.target.conn(), &job.id).await?,
        )),
        _ => Ok(None),
    }
}

/// Every piece of a table is loaded: the rows must be the export's (at most, under an
/// extension's configuration filter). `Err` says why the job fails.
pub fn finalize_table(job: &JobRun, table_idx: u32) -> std::result::Result<(), String> {
    let TableWork::Restore(r) = &job.tables[table_idx as usize].work else {
        return Ok(());
    };
    let loaded = job.table_rows(table_idx);
    let complete = match r.filter {
        None => loaded == r.expected_rows,
        Some(_) => loaded <= r.expected_rows,
    };
    if complete {
        Ok(())
    } else {
        Err(format!(
            "table {}: loaded {loaded} rows but the export has {}",
            r.table.display_name(),
            r.expected_rows
        ))
    }
}

/// The ledger, TRUNCATE where the policy says so, then drop cycle (or deferred) foreign keys
/// and deferred indexes, each recorded in the target in the same transaction as its DROP (see
/// [`changes`]).
async fn change_target(job: &JobRun) -> Result<()> {
    let (spec, st) = state(job)?;
    let mut client = connect(spec).await?;
    client
        .batch_execute(fleet_io::ledger::LEDGER_DDL)
        .await
        .context("creating the pgfleet_restore ledger in the target")?;
    if !st.truncate.is_empty() {
        let list: Vec<String> = st.truncate.iter().map(QualifiedName::quoted).collect();
        client
            .batch_execute(&format!("TRUNCATE {}", list.join(", ")))
            .await
            .with_context(|| format!("TRUNCATE {}", list.join(", ")))?;
    }
    changes::record_and_drop(&mut client, &planned_changes(job, st)).await
}

/// What the plan drops, as changes to record.
fn planned_changes(job: &JobRun, st: &RestoreState) -> Vec<Change> {
    st.dropped_fks
        .iter()
        .map(|fk| Change::from_fk(&job.id, fk))
        .chain(
            st.dropped_indexes
                .iter()
                .map(|ix| Change::from_index(&job.id, ix)),
        )
        .collect()
}

/// After every table loaded: rebuild deferred indexes, re-add foreign keys NOT VALID and
/// VALIDATE them (no superuser needed), put back what earlier, dead jobs left pending, and set
/// sequences past the loaded maxima.
pub async fn finish(job: &JobRun) -> Result<Repair> {
    let (spec, st) = state(job)?;
    let mut report = put_back_job(job, true).await?;
    let others = changes::repair(&spec.target.conn(), sessions(spec), false).await?;
    report.merge(others);
    let client = connect(spec).await?;
    for s in &st.sequences {
        let sql = format!(
            "SELECT setval($1::text::regclass, m) FROM (SELECT max({})::bigint AS m FROM {}) x WHERE m IS NOT NULL",
            protocol::quote_ident(&s.column),
            s.table.quoted()
        );
        client
            .execute(&sql, &[&s.sequence])
            .await
            .with_context(|| format!("resetting sequence {}", s.sequence))?;
    }
    Ok(report)
}

/// After a failure or cancel: put constraints and indexes back. Foreign keys are re-added NOT
/// VALID and validated when the partial data allows; otherwise they stay NOT VALID and recorded
/// as pending, for a later run or `coordinator repair`.
pub async fn undo(job: &JobRun) -> Result<Repair> {
    put_back_job(job, false).await
}

/// Put back what this job changed, as the target records it. Jobs planned before the record
/// existed fall back to their plan's lists (put back idempotently).
async fn put_back_job(job: &JobRun, must_validate: bool) -> Result<Repair> {
    let (spec, st) = state(job)?;
    let changes = if st.recorded {
        let client = connect(spec).await?;
        changes::pending(&client, Some(&job.id)).await?
    } else {
        planned_changes(job, st)
    };
    changes::put_back(&spec.target.conn(), &changes, sessions(spec), must_validate).await
}

fn sessions(spec: &RestoreSpec) -> usize {
    (spec.target.max_connections as usize).clamp(1, 8)
}
