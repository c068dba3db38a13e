//! Where the engine records every job transition. `serve` keeps them in PostgreSQL (a restarted
//! coordinator continues where it stopped; `submit`, `status` and `cancel` read them there);
//! `run` and the engine's own tests keep them in memory.

mod memory;
mod pg;

pub use memory::MemoryStore;
pub use pg::{db_message, JobSummary, PgStore, StateDbStatus, TableSummary};

use crate::broker::DeadLetter;
use crate::job::{ChunkRun, JobRun, JobState};
use anyhow::Result;
use protocol::ResultEnvelope;

/// The engine's state store: one variant per place state can live.
pub enum StateStore {
    Postgres(Box<PgStore>),
    Memory(MemoryStore),
}

impl StateStore {
    /// A freshly planned job: its tables and chunks, all at once.
    pub async fn save_plan(&self, job: &JobRun) -> Result<()> {
        match self {
            StateStore::Postgres(s) => s.save_plan(job).await,
            StateStore::Memory(m) => m.save_plan(job),
        }
    }

    /// The job's state and error.
    pub async fn save_job(&self, job: &JobRun) -> Result<()> {
        self.set_job_state(&job.id, job.state, job.error.as_deref())
            .await
    }

    pub async fn set_job_state(
        &self,
        id: &str,
        state: JobState,
        error: Option<&str>,
    ) -> Result<()> {
        match self {
            StateStore::Postgres(s) => s.set_job_state(id, state, error).await,
            StateStore::Memory(m) => m.set_job_state(id, state, error),
        }
    }

    pub async fn save_chunk(&self, job_id: &str, chunk: &ChunkRun) -> Result<()> {
        match self {
            StateStore::Postgres(s) => s.save_chunk(job_id, chunk).await,
            StateStore::Memory(m) => m.save_chunk(job_id, chunk),
        }
    }

    /// Every result received, applied or not (`applied` says what it did).
    pub async fn record_result(&self, result: &ResultEnvelope, applied: &str) -> Result<()> {
        match self {
            StateStore::Postgres(s) => s.record_result(result, applied).await,
            StateStore::Memory(m) => m.record_result(result, applied),
        }
    }

    /// A task RabbitMQ gave up on (its job and task when the body could be read).
    pub async fn record_dead_letter(&self, letter: &DeadLetter) -> Result<()> {
        let job_id = letter.task.as_ref().map(|t| t.job_id.as_str());
        match self {
            StateStore::Postgres(s) => {
                let task_id = letter.task.as_ref().map(|t| t.task_id.as_str());
                s.record_dead_letter(&letter.reason, job_id, task_id, &letter.preview)
                    .await
            }
            StateStore::Memory(m) => m.record_dead_letter(&letter.reason, job_id),
        }
    }

    pub async fn mark_finalized(&self, job_id: &str, table_idx: u32) -> Result<()> {
        match self {
            StateStore::Postgres(s) => s.mark_finalized(job_id, table_idx).await,
            StateStore::Memory(m) => m.mark_finalized(job_id, table_idx),
        }
    }

    /// A restore's bookkeeping (what it changed on the target, whether it is put back).
    pub async fn save_restore_state(&self, job: &JobRun) -> Result<()> {
        match self {
            StateStore::Postgres(s) => s.save_restore_state(job).await,
            StateStore::Memory(m) => m.save_restore_state(job),
        }
    }

    /// Jobs a restarted coordinator must continue.
    pub async fn load_active(&self) -> Result<Vec<JobRun>> {
        match self {
            StateStore::Postgres(s) => s.load_active().await,
            StateStore::Memory(m) => Ok(m.load_active()),
        }
    }
}
