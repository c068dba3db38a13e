//! The engine drives jobs of every kind the same way: plans them, publishes due chunks through
//! a per-database window, applies results (retries with backoff, stalls, dead letters),
//! finalizes tables, finishes jobs and puts back what failed ones changed. What a step means
//! for a kind is that kind's module, reached through [`kinds`]. It is the same for `serve`
//! (RabbitMQ, state in PostgreSQL) and `run` (in-process queue, state in memory).

pub mod kinds;

use crate::broker::{AmqpBroker, DeadLetter};
use crate::job::{Applied, JobRun, JobState, RetryPolicy};
use crate::restore::changes::Repair;
use crate::store::StateStore;
use anyhow::{anyhow, Result};
use fleet_io::clients::Clients;
use kinds::{Finalized, Finished};
use protocol::{JobSpec, Outcome, ResultEnvelope, TaskEnvelope, MESSAGE_VERSION};
use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant, SystemTime};
use tokio::sync::mpsc;

pub enum Publisher {
    Local(mpsc::UnboundedSender<TaskEnvelope>),
    Amqp(AmqpBroker),
}

impl Publisher {
    async fn publish(&self, task: &TaskEnvelope) -> Result<()> {
        match self {
            Publisher::Local(tx) => tx
                .send(task.clone())
                .map_err(|_| anyhow!("in-process workers stopped")),
            Publisher::Amqp(b) => b.publish(task).await,
        }
    }
}

pub struct Engine {
    store: StateStore,
    publisher: Publisher,
    ctx: Clients,
    retry: RetryPolicy,
    jobs: BTreeMap<String, JobRun>,
    /// The session each job holds open while it needs it ([`kinds::needs_session`]): an
    /// export's snapshot transaction (`snapshot = "consistent"`), a restore's lock on its
    /// target while its changes are out (a repair by anyone else leaves them alone).
    sessions: HashMap<String, tokio_postgres::Client>,
    /// What undoing each failed or cancelled job put back, and what it left pending.
    undo_reports: HashMap<String, Repair>,
    /// A task with no result this long after its publish is published again as a new attempt
    /// (`--task-stall-timeout`); `None`: never.
    stall_timeout: Option<Duration>,
    /// When each queued chunk was published (in memory: after a restart, from the resume).
    queued_since: HashMap<(String, u32), Instant>,
}

impl Engine {
    pub fn new(store: StateStore, publisher: Publisher, ctx: Clients) -> Self {
        Self {
            store,
            publisher,
            ctx,
            retry: RetryPolicy::default(),
            jobs: BTreeMap::new(),
            sessions: HashMap::new(),
            undo_reports: HashMap::new(),
            stall_timeout: None,
            queued_since: HashMap::new(),
        }
    }

    /// Publish again, as a new attempt, a task with no result `timeout` after its publish.
    pub fn with_stall_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.stall_timeout = timeout;
        self
    }

    pub fn with_retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    pub fn job(&self, id: &str) -> Option<&JobRun> {
        self.jobs.get(id)
    }

    /// Every job the engine drives now (metrics).
    pub fn jobs(&self) -> impl Iterator<Item = &JobRun> {
        self.jobs.values()
    }

    /// What undoing a failed or cancelled job put back and left pending, once it ran.
    pub fn undo_report(&self, id: &str) -> Option<&Repair> {
        self.undo_reports.get(id)
    }

    pub fn has_running_jobs(&self) -> bool {
        self.jobs.values().any(|j| j.state == JobState::Running)
    }

    /// Plan a submitted job and make it runnable. A planning error fails the job (with the
    /// reason) rather than the coordinator.
    pub async fn start_job(&mut self, id: &str, spec: JobSpec) -> Result<()> {
        tracing::info!(job = id, name = %spec.name(), kind = spec.kind(), "planning job");
        let planned = match kinds::plan(&self.ctx, id, &spec).await {
            Ok(planned) => planned,
            Err(e) => {
                let job = JobRun::failed(id.to_string(), spec, format!("planning failed: {e:#}"));
                tracing::error!(job = id, error = %format!("{e:#}"), "planning failed");
                self.store.save_job(&job).await?;
                self.jobs.insert(id.to_string(), job);
                return Ok(());
            }
        };
        let mut job = planned.job;
        let mut session = planned.session;
        tracing::info!(
            job = id,
            tables = job.tables.len(),
            chunks = job.chunks.len(),
            "job planned"
        );
        for note in &job.notes {
            tracing::info!(job = id, "{note}");
        }
        // Persist the plan (and what a restore is about to change on the target) before
        // changing anything, so a crash can always be undone.
        self.store.save_plan(&job).await?;
        if let Err(e) = kinds::prepare(&job, &mut session).await {
            job.state = JobState::Failed;
            job.error = Some(format!("preparing the target failed: {e:#}"));
            tracing::error!(job = id, error = %format!("{e:#}"), "preparing the target failed");
            self.store.save_job(&job).await?;
        }
        if let Some(session) = session {
            self.sessions.insert(id.to_string(), session);
        }
        self.jobs.insert(id.to_string(), job);
        Ok(())
    }

    /// Continue a job loaded from the state store after a restart.
    pub async fn resume(&mut self, mut job: JobRun) -> Result<()> {
        let before = job.state;
        let session = kinds::resume(&mut job).await?;
        if job.state != before {
            self.store.save_job(&job).await?;
        }
        if let Some(session) = session {
            self.sessions.insert(job.id.clone(), session);
        }
        let c = job.counts();
        tracing::info!(job = %job.id, state = job.state.as_str(), done = c.done, queued = c.queued, pending = c.pending, "resuming job");
        self.jobs.insert(job.id.clone(), job);
        Ok(())
    }

    pub async fn cancel(&mut self, id: &str) -> Result<()> {
        if let Some(job) = self.jobs.get_mut(id) {
            if !job.state.is_terminal() {
                job.state = JobState::Cancelled;
                tracing::info!(
                    job = id,
                    "job cancelled; tasks already queued finish and are ignored"
                );
            }
        }
        self.store
            .set_job_state(id, JobState::Cancelled, None)
            .await?;
        self.release_session(id);
        Ok(())
    }

    /// Drop the job's session once the job no longer needs it.
    fn release_session(&mut self, id: &str) {
        if !self.jobs.get(id).is_some_and(kinds::needs_session) {
            self.sessions.remove(id);
        }
    }

    /// Finalize finished tables, finish complete jobs, undo what failed jobs changed, and
    /// publish what is due.
    pub async fn pump(&mut self) -> Result<()> {
        self.requeue_stalled().await?;
        self.finalize_tables().await?;
        self.finish_jobs().await?;
        self.undo_failed().await?;
        self.publish_due().await
    }

    /// A worker that holds a task but never answers (hung, or frozen while its broker
    /// connection lives) must not stall the job: past the stall timeout the chunk is published
    /// again as the next attempt. Whichever attempt succeeds first completes it; the other's
    /// result is ignored, and its effect is idempotent (same object key; the restore ledger).
    async fn requeue_stalled(&mut self) -> Result<()> {
        let Some(timeout) = self.stall_timeout else {
            return Ok(());
        };
        let now = Instant::now();
        let mut stalled = Vec::new();
        for (id, job) in self
            .jobs
            .iter()
            .filter(|(_, j)| j.state == JobState::Running)
        {
            for c in job.queued() {
                let since = *self.queued_since.entry((id.clone(), c.id)).or_insert(now);
                if now.duration_since(since) >= timeout {
                    stalled.push((id.clone(), c.id));
                }
            }
        }
        for (id, chunk) in stalled {
            self.queued_since.remove(&(id.clone(), chunk));
            let job = self.jobs.get_mut(&id).expect("job exists");
            let table = job.tables[job.chunks[chunk as usize].table_idx as usize]
                .name()
                .display_name();
            let c = &job.chunks[chunk as usize];
            if c.attempt >= self.retry.max_attempts {
                let error = format!(
                    "table {table} chunk {chunk} (part-{:05}): no result {} s after attempt {} (--task-stall-timeout), and no attempts left",
                    c.seq,
                    timeout.as_secs(),
                    c.attempt
                );
                self.fail_job(&id, error).await?;
                continue;
            }
            tracing::warn!(
                job = %id, table = %table, chunk, attempt = c.attempt,
                "no result {} s after publishing: publishing the task again as the next attempt (--task-stall-timeout)",
                timeout.as_secs()
            );
            job.requeue(chunk);
            self.store
                .save_chunk(&id, &job.chunks[chunk as usize])
                .await?;
        }
        Ok(())
    }

    async fn publish_due(&mut self) -> Result<()> {
        let now = SystemTime::now();
        // The fleet-wide cap is per database: jobs on the same source or target share it.
        let mut in_flight: HashMap<String, usize> = HashMap::new();
        let mut cap: HashMap<String, usize> = HashMap::new();
        for job in self.jobs.values().filter(|j| j.state == JobState::Running) {
            let (key, limit) = kinds::window(job);
            *in_flight.entry(key.clone()).or_default() += job.in_flight();
            let c = cap.entry(key).or_insert(usize::MAX);
            *c = (*c).min(limit);
        }
        let ids: Vec<String> = self.jobs.keys().cloned().collect();
        for id in ids {
            let (key, _) = kinds::window(&self.jobs[&id]);
            let room = cap
                .get(&key)
                .copied()
                .unwrap_or(0)
                .saturating_sub(in_flight.get(&key).copied().unwrap_or(0));
            if room == 0 {
                continue;
            }
            let due = self.jobs[&id].due(now, room);
            let job = &self.jobs[&id];
            let tasks = due
                .into_iter()
                .map(|chunk| {
                    let attempt = job.chunks[chunk as usize].attempt + 1;
                    Ok((chunk, attempt, build_task(job, chunk, attempt)?))
                })
                .collect::<Result<Vec<_>>>()?;
            // Published together: each publish waits for the broker's confirm (a quorum
            // queue's disk write), so one after the other they would cost one confirm each.
            let published = futures::future::join_all(
                tasks
                    .iter()
                    .map(|(_, _, task)| self.publisher.publish(task)),
            )
            .await;
            let mut first_error = None;
            for ((chunk, attempt, task), outcome) in tasks.iter().zip(published) {
                if let Err(e) = outcome {
                    first_error.get_or_insert(e.context(format!("publishing {}", task.task_id)));
                    continue;
                }
                let job = self.jobs.get_mut(&id).expect("job exists");
                job.mark_queued(*chunk, *attempt);
                self.queued_since
                    .insert((id.clone(), *chunk), std::time::Instant::now());
                *in_flight.entry(key.clone()).or_default() += 1;
                self.store
                    .save_chunk(&id, &job.chunks[*chunk as usize])
                    .await?;
            }
            if let Some(e) = first_error {
                return Err(e);
            }
        }
        Ok(())
    }

    async fn finalize_tables(&mut self) -> Result<()> {
        let ids: Vec<String> = self.jobs.keys().cloned().collect();
        for id in ids {
            if self.jobs[&id].state != JobState::Running {
                continue;
            }
            for t in self.jobs[&id].tables_ready_to_finalize() {
                let job = &self.jobs[&id];
                let table = job.tables[t as usize].name().display_name();
                if let Finalized::JobFails(error) = kinds::finalize_table(&self.ctx, job, t).await?
                {
                    self.fail_job(&id, error).await?;
                    break;
                }
                self.store.mark_finalized(&id, t).await?;
                let job = self.jobs.get_mut(&id).expect("job exists");
                job.mark_finalized(t);
                tracing::info!(job = %id, table = %table, rows = job.table_rows(t), "table complete");
            }
        }
        Ok(())
    }

    async fn finish_jobs(&mut self) -> Result<()> {
        let ids: Vec<String> = self.jobs.keys().cloned().collect();
        for id in ids {
            let job = &self.jobs[&id];
            if job.state != JobState::Running || !job.is_complete() {
                continue;
            }
            match kinds::finish(&self.ctx, job).await? {
                Finished::Done => {}
                Finished::PutBack(report) => {
                    for p in &report.pending {
                        tracing::warn!(job = %id, "still pending in the target: {p}");
                    }
                    self.mark_put_back(&id).await?;
                }
                Finished::JobFails(error) => {
                    self.fail_job(&id, error).await?;
                    continue;
                }
            }
            let job = self.jobs.get_mut(&id).expect("job exists");
            job.state = JobState::Succeeded;
            let c = job.counts();
            tracing::info!(job = %id, rows = c.rows, bytes = c.bytes, "job succeeded");
            self.store.save_job(job).await?;
            self.release_session(&id);
        }
        Ok(())
    }

    /// A job that failed or was cancelled puts back what it changed (a restore's constraints
    /// and indexes).
    async fn undo_failed(&mut self) -> Result<()> {
        let ids: Vec<String> = self
            .jobs
            .iter()
            .filter(|(_, j)| {
                j.state.is_terminal() && j.state != JobState::Succeeded && j.kind.has_changes_out()
            })
            .map(|(id, _)| id.clone())
            .collect();
        for id in ids {
            let report = match kinds::undo(&self.jobs[&id]).await {
                Ok(report) => report,
                Err(e) => {
                    tracing::warn!(job = %id, error = %format!("{e:#}"), "could not yet restore the target's constraints; will retry");
                    continue;
                }
            };
            for p in &report.pending {
                tracing::warn!(job = %id, "still pending in the target: {p}");
            }
            self.undo_reports.insert(id.clone(), report);
            self.mark_put_back(&id).await?;
            tracing::info!(job = %id, "constraints and indexes of the target put back");
        }
        Ok(())
    }

    /// What the job changed is back: record it, and let go of the session guarding it.
    async fn mark_put_back(&mut self, id: &str) -> Result<()> {
        let job = self.jobs.get_mut(id).expect("job exists");
        job.kind.mark_put_back();
        self.store.save_restore_state(job).await?;
        self.release_session(id);
        Ok(())
    }

    async fn fail_job(&mut self, id: &str, error: String) -> Result<()> {
        let job = self.jobs.get_mut(id).expect("job exists");
        tracing::error!(job = id, %error, "job failed");
        job.state = JobState::Failed;
        job.error = Some(error);
        self.store.save_job(job).await?;
        self.release_session(id);
        Ok(())
    }

    pub async fn on_result(&mut self, result: &ResultEnvelope) -> Result<()> {
        let applied = match self.jobs.get_mut(&result.job_id) {
            Some(job) => job.apply(result, SystemTime::now(), &self.retry),
            None => Applied::Ignored("unknown or finished job"),
        };
        self.store
            .record_result(result, &applied_label(&applied))
            .await?;
        let Some(job) = self.jobs.get(&result.job_id) else {
            return Ok(());
        };
        match applied {
            Applied::Ignored(why) => {
                tracing::debug!(task = %result.task_id, attempt = result.attempt, why, "result ignored")
            }
            Applied::Done { chunk } | Applied::Retry { chunk, .. } => {
                self.store
                    .save_chunk(&job.id, &job.chunks[chunk as usize])
                    .await?;
            }
            Applied::Failed { chunk } => {
                tracing::error!(job = %job.id, error = job.error.as_deref().unwrap_or(""), "job failed");
                self.store
                    .save_chunk(&job.id, &job.chunks[chunk as usize])
                    .await?;
                self.store.save_job(job).await?;
                self.release_session(&result.job_id);
            }
        }
        Ok(())
    }

    /// A task RabbitMQ gave up on (rejected as unreadable, or redelivered past the limit because
    /// workers kept dying on it) fails its chunk: retrying it would crash more workers.
    pub async fn on_dead_letter(&mut self, letter: &DeadLetter) -> Result<()> {
        tracing::warn!(reason = %letter.reason, task = letter.task.as_ref().map(|t| t.task_id.as_str()), "dead letter");
        self.store.record_dead_letter(letter).await?;
        if let Some(task) = &letter.task {
            let synthetic = ResultEnvelope {
                version: MESSAGE_VERSION,
                task_id: task.task_id.clone(),
                job_id: task.job_id.clone(),
                attempt: task.attempt,
                worker: "rabbitmq".into(),
                outcome: Outcome::Failed {
                    error: format!(
                        "RabbitMQ dead-lettered the task ({}): workers failed to finish it on every delivery",
                        letter.reason
                    ),
                    retryable: false,
                },
            };
            self.on_result(&synthetic).await?;
        }
        Ok(())
    }

    /// Remove and return jobs that reached a terminal state.
    pub fn take_finished(&mut self) -> Vec<JobRun> {
        let done: Vec<String> = self
            .jobs
            .iter()
            // A failed restore stays until its constraints are put back.
            .filter(|(_, j)| j.state.is_terminal() && !j.kind.has_changes_out())
            .map(|(id, _)| id.clone())
            .collect();
        done.into_iter()
            .filter_map(|id| {
                self.sessions.remove(&id);
                self.queued_since.retain(|(job, _), _| job != &id);
                self.undo_reports.remove(&id);
                self.jobs.remove(&id)
            })
            .collect()
    }
}

fn applied_label(a: &Applied) -> String {
    match a {
        Applied::Ignored(why) => format!("ignored: {why}"),
        Applied::Done { .. } => "done".into(),
        Applied::Retry { attempt, .. } => format!("retry as attempt {attempt}"),
        Applied::Failed { .. } => "failed".into(),
    }
}

/// The message publishing chunk `chunk` of `job` as attempt `attempt`.
pub fn build_task(job: &JobRun, chunk: u32, attempt: u32) -> Result<TaskEnvelope> {
    let task = kinds::task(job, &job.chunks[chunk as usize])?;
    Ok(TaskEnvelope {
        version: MESSAGE_VERSION,
        task_id: protocol::task_id(&job.id, chunk),
        job_id: job.id.clone(),
        attempt,
        task,
    })
}
