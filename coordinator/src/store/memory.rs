//! Job state in this process's memory: what `coordinator run` keeps (its job ends with the
//! process) and what the engine's tests inspect. It mirrors the PostgreSQL store's semantics:
//! a saved plan, then per-chunk, per-table and per-job updates, and an audit of every result.

use crate::job::{ChunkRun, JobRun, JobState};
use anyhow::{anyhow, Result};
use protocol::ResultEnvelope;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

#[derive(Clone, Default)]
pub struct MemoryStore {
    inner: Arc<Mutex<Inner>>,
}

#[derive(Default)]
struct Inner {
    jobs: BTreeMap<String, JobRun>,
    /// (task id, attempt, what applying it did), in arrival order.
    results: Vec<(String, u32, String)>,
    /// (reason, job id), in arrival order.
    dead_letters: Vec<(String, Option<String>)>,
}

impl MemoryStore {
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A poisoned lock only means a panicking test thread; the maps are still whole.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn with_job(&self, id: &str, f: impl FnOnce(&mut JobRun)) -> Result<()> {
        let mut inner = self.lock();
        let job = inner
            .jobs
            .get_mut(id)
            .ok_or_else(|| anyhow!("job {id} has no saved plan"))?;
        f(job);
        Ok(())
    }

    pub fn save_plan(&self, job: &JobRun) -> Result<()> {
        self.lock().jobs.insert(job.id.clone(), job.clone());
        Ok(())
    }

    pub fn set_job_state(&self, id: &str, state: JobState, error: Option<&str>) -> Result<()> {
        let mut inner = self.lock();
        // A job whose planning failed is saved by its state alone, like `submit` + a state
        // change in PostgreSQL; there is nothing else to keep of it.
        let Some(job) = inner.jobs.get_mut(id) else {
            return Ok(());
        };
        job.state = state;
        job.error = error.map(str::to_string);
        Ok(())
    }

    pub fn save_chunk(&self, job_id: &str, chunk: &ChunkRun) -> Result<()> {
        self.with_job(job_id, |job| job.replace_chunk(chunk))
    }

    pub fn record_result(&self, result: &ResultEnvelope, applied: &str) -> Result<()> {
        self.lock()
            .results
            .push((result.task_id.clone(), result.attempt, applied.to_string()));
        Ok(())
    }

    pub fn record_dead_letter(&self, reason: &str, job_id: Option<&str>) -> Result<()> {
        self.lock()
            .dead_letters
            .push((reason.to_string(), job_id.map(str::to_string)));
        Ok(())
    }

    pub fn mark_finalized(&self, job_id: &str, table_idx: u32) -> Result<()> {
        self.with_job(job_id, |job| job.mark_finalized(table_idx))
    }

    pub fn save_restore_state(&self, saved: &JobRun) -> Result<()> {
        let state = saved.restore_state().cloned();
        self.with_job(&saved.id, |job| {
            if let (Some(to), Some(from)) = (job.restore_state_mut(), state) {
                *to = from;
            }
        })
    }

    /// Jobs that would be continued after a restart: running, or a restore whose changes to
    /// the target are not all put back (the PostgreSQL store's rule).
    pub fn load_active(&self) -> Vec<JobRun> {
        self.lock()
            .jobs
            .values()
            .filter(|j| {
                matches!(j.state, JobState::Running | JobState::Cancelling)
                    || j.kind.has_changes_out()
            })
            .cloned()
            .collect()
    }

    /// The job as last saved.
    pub fn job(&self, id: &str) -> Option<JobRun> {
        self.lock().jobs.get(id).cloned()
    }

    /// Every result recorded: (task id, attempt, what applying it did).
    pub fn results(&self) -> Vec<(String, u32, String)> {
        self.lock().results.clone()
    }

    /// Every dead letter recorded: (reason, job id).
    pub fn dead_letters(&self) -> Vec<(String, Option<String>)> {
        self.lock().dead_letters.clone()
    }
}
