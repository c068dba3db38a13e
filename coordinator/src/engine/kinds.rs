//! The engine's one seam to the job kinds: each step of a job's life, handed to the module of
//! the job's kind (`crate::export`, `crate::restore`). A new kind is one more arm in each
//! function here; the engine itself never looks at what kind a job is.

use crate::export;
use crate::job::{ChunkRun, ChunkWork, JobKind, JobRun, JobState, TableWork};
use crate::restore::{self, changes::Repair};
use anyhow::Result;
use fleet_io::clients::Clients;
use protocol::{JobSpec, Task};

/// A planned job, and the session it holds open from the start (an export's snapshot).
pub struct Planned {
    pub job: JobRun,
    pub session: Option<tokio_postgres::Client>,
}

pub async fn plan(ctx: &Clients, id: &str, spec: &JobSpec) -> Result<Planned> {
    match spec {
        JobSpec::Export(e) => {
            let p = export::plan(id, e).await?;
            Ok(Planned {
                job: p.job,
                session: p.snapshot_session,
            })
        }
        JobSpec::Restore(r) => Ok(Planned {
            job: restore::plan(ctx, id, r).await?,
            session: None,
        }),
    }
}

/// Change what must change before loading (a restore's target), once the plan is saved. A
/// session taken on the way (a restore's lock on its target) is put in `hold` even if
/// preparing then fails, so the undo runs under it.
pub async fn prepare(job: &JobRun, hold: &mut Option<tokio_postgres::Client>) -> Result<()> {
    match &job.kind {
        JobKind::Export(_) => Ok(()),
        JobKind::Restore(_) => restore::prepare(job, hold).await,
    }
}

/// A job loaded after a coordinator restart: what it holds again, or why it cannot go on.
pub async fn resume(job: &mut JobRun) -> Result<Option<tokio_postgres::Client>> {
    match &job.kind {
        JobKind::Export(e) => {
            if job.state == JobState::Running && e.snapshot.is_some() {
                // The exporting transaction died with the old process; mixing snapshots would
                // break the consistency the job asked for.
                job.state = JobState::Failed;
                job.error = Some(
                    "the consistent snapshot was lost when the coordinator restarted; submit the job again (finished parts are overwritten)"
                        .into(),
                );
            }
            Ok(None)
        }
        JobKind::Restore(_) => restore::resume(job).await,
    }
}

/// Whether the job still needs the session it holds: an export's snapshot until the job ends,
/// a restore's lock until its changes to the target are put back.
pub fn needs_session(job: &JobRun) -> bool {
    match &job.kind {
        JobKind::Export(_) => !job.state.is_terminal(),
        JobKind::Restore(_) => job.kind.has_changes_out(),
    }
}

/// The task message of one chunk.
pub fn task(job: &JobRun, chunk: &ChunkRun) -> Result<Task> {
    match (
        &job.kind,
        &chunk.work,
        &job.tables[chunk.table_idx as usize].work,
    ) {
        (JobKind::Export(e), ChunkWork::Export(range), TableWork::Export(plan)) => {
            Ok(Task::ExportChunk(export::task(job, e, plan, chunk, range)?))
        }
        (JobKind::Restore(r), ChunkWork::Restore(piece), TableWork::Restore(table)) => Ok(
            Task::RestoreFile(restore::task(job, &r.spec, table, piece)?),
        ),
        _ => anyhow::bail!(
            "job {}: chunk {} does not match its job kind",
            job.id,
            chunk.id
        ),
    }
}

/// What finalizing one table did.
pub enum Finalized {
    Done,
    /// The job fails with this reason.
    JobFails(String),
}

/// Every chunk of the table is done: an export's manifest and `_SUCCESS`, a restore's row check.
pub async fn finalize_table(ctx: &Clients, job: &JobRun, table_idx: u32) -> Result<Finalized> {
    match &job.kind {
        JobKind::Export(_) => {
            export::finalize_table(ctx, job, table_idx).await?;
            Ok(Finalized::Done)
        }
        JobKind::Restore(_) => Ok(match restore::finalize_table(job, table_idx) {
            Ok(()) => Finalized::Done,
            Err(reason) => Finalized::JobFails(reason),
        }),
    }
}

/// What finishing a job did.
pub enum Finished {
    Done,
    /// Done, and what the job changed is put back (`report`).
    PutBack(Repair),
    /// The job fails with this reason.
    JobFails(String),
}

/// Every table is finalized: an export's metadata files, a restore's put-back.
pub async fn finish(ctx: &Clients, job: &JobRun) -> Result<Finished> {
    match &job.kind {
        JobKind::Export(_) => {
            export::finish(ctx, job).await?;
            Ok(Finished::Done)
        }
        JobKind::Restore(_) => Ok(match restore::finish(job).await {
            Ok(report) => Finished::PutBack(report),
            Err(e) => Finished::JobFails(format!("finishing the restore failed: {e:#}")),
        }),
    }
}

/// A job that ended without success and still has changes out: put them back.
pub async fn undo(job: &JobRun) -> Result<Repair> {
    match &job.kind {
        JobKind::Export(_) => Ok(Repair::default()),
        JobKind::Restore(_) => restore::undo(job).await,
    }
}

/// The database a job loads (its window) and the job's cap on chunks in flight against it.
/// Jobs on the same database share one window.
pub fn window(job: &JobRun) -> (String, usize) {
    match &job.kind {
        JobKind::Export(e) => (
            format!(
                "source {}",
                e.spec.source.url.as_deref().unwrap_or("<PG* environment>")
            ),
            e.spec.source.max_in_flight as usize,
        ),
        JobKind::Restore(r) => (
            format!(
                "target {}",
                r.spec.target.url.as_deref().unwrap_or("<PG* environment>")
            ),
            r.spec.target.max_connections as usize,
        ),
    }
}
