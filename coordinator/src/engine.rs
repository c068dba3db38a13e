//! The engine drives jobs: plans them, publishes due chunks through a per-source window, applies
//! results, writes manifests and finishes jobs. It is the same for `serve` (RabbitMQ, durable
//! state) and `run` (in-process queue, state in memory).

use crate::broker::{AmqpBroker, DeadLetter};
use crate::job::{
    Applied, ChunkRun, ChunkState, ChunkWork, JobRun, JobState, RetryPolicy, TableWork,
};
use crate::plan::{plan_export, TablePlan};
use crate::restore;
use crate::store::PgStore;
use crate::target_changes;
use anyhow::{anyhow, Context, Result};
use protocol::spec::{ExportSpec, RestoreSpec, SnapshotMode};
use protocol::{
    ChunkRange, ColumnExport, ExportChunk, JobSpec, Outcome, OutputFormat, OutputTarget,
    ResultEnvelope, Task, TaskEnvelope, MESSAGE_VERSION,
};
use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant, SystemTime};
use tokio::sync::mpsc;
use worker::context::WorkerContext;

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
    store: Option<PgStore>,
    publisher: Publisher,
    ctx: WorkerContext,
    retry: RetryPolicy,
    jobs: BTreeMap<String, JobRun>,
    /// Transactions holding exported snapshots open, per job (`snapshot = "consistent"`).
    snapshots: HashMap<String, tokio_postgres::Client>,
    /// Sessions holding each restore job's lock on its target while its changes are out
    /// (`target_changes`): a repair by anyone else leaves them alone.
    target_locks: HashMap<String, tokio_postgres::Client>,
    /// What undoing each failed or cancelled restore put back, and what it left pending.
    undo_reports: HashMap<String, target_changes::Repair>,
    /// A task with no result this long after its publish is published again as a new attempt
    /// (`--task-stall-timeout`); `None`: never.
    stall_timeout: Option<Duration>,
    /// When each queued chunk was published (in memory: after a restart, from the resume).
    queued_since: HashMap<(String, u32), Instant>,
}

impl Engine {
    pub fn new(store: Option<PgStore>, publisher: Publisher, ctx: WorkerContext) -> Self {
        Self {
            store,
            publisher,
            ctx,
            retry: RetryPolicy::default(),
            jobs: BTreeMap::new(),
            snapshots: HashMap::new(),
            target_locks: HashMap::new(),
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

    /// What undoing a failed or cancelled restore put back and left pending, once it ran.
    pub fn undo_report(&self, id: &str) -> Option<&target_changes::Repair> {
        self.undo_reports.get(id)
    }

    pub fn has_running_jobs(&self) -> bool {
        self.jobs.values().any(|j| j.state == JobState::Running)
    }

    /// Plan a submitted job and make it runnable. A planning error fails the job (with the
    /// reason) rather than the coordinator.
    pub async fn start_job(&mut self, id: &str, spec: JobSpec) -> Result<()> {
        tracing::info!(job = id, name = %spec.name(), kind = spec.kind(), "planning job");
        let planned = match &spec {
            JobSpec::Export(e) => self.plan(id, e.clone()).await,
            JobSpec::Restore(r) => self
                .repair_target(id, r)
                .await
                .and(restore::plan(&self.ctx, id, r).await)
                .and_then(|p| {
                    if p.problems.is_empty() {
                        Ok(p.job)
                    } else {
                        Err(anyhow!(
                            "the export and the target disagree; nothing was loaded:\n  {}",
                            p.problems.join("\n  ")
                        ))
                    }
                }),
        };
        let mut job = match planned {
            Ok(job) => job,
            Err(e) => {
                let job = JobRun::failed(id.to_string(), spec, format!("planning failed: {e:#}"));
                tracing::error!(job = id, error = %format!("{e:#}"), "planning failed");
                if let Some(store) = &self.store {
                    store.save_job(&job).await?;
                }
                self.jobs.insert(id.to_string(), job);
                return Ok(());
            }
        };
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
        if let Some(store) = &self.store {
            store.save_plan(&job).await?;
        }
        if let Some(spec) = job.restore_spec() {
            let prepared = match target_changes::hold_job_lock(&spec.target.conn(), id).await {
                Ok(lock) => {
                    self.target_locks.insert(id.to_string(), lock);
                    restore::prepare(&job).await
                }
                Err(e) => Err(e),
            };
            if let Err(e) = prepared {
                job.state = JobState::Failed;
                job.error = Some(format!("preparing the target failed: {e:#}"));
                tracing::error!(job = id, error = %format!("{e:#}"), "preparing the target failed");
                if let Some(store) = &self.store {
                    store.save_job(&job).await?;
                }
            }
        }
        self.jobs.insert(id.to_string(), job);
        Ok(())
    }

    /// Before a restore plans: put back what earlier restores into the same target left
    /// pending (a crash, a kill, a lost machine), so the plan sees the target's real schema.
    async fn repair_target(&self, id: &str, spec: &RestoreSpec) -> Result<()> {
        let report = target_changes::repair(
            &spec.target.conn(),
            (spec.target.max_connections as usize).clamp(1, 8),
            false,
        )
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

    async fn plan(&mut self, id: &str, spec: ExportSpec) -> Result<JobRun> {
        let (cfg, tls) =
            worker::pg::pg_config(&spec.source.conn()).map_err(|e| anyhow!(e.message))?;
        let client = worker::pg::connect(&cfg, &tls)
            .await
            .map_err(|e| anyhow!("connecting to the source: {e}"))?;
        client
            .batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
            .await?;
        let snapshot = match spec.source.snapshot {
            SnapshotMode::Consistent => Some(
                client
                    .query_one("SELECT pg_export_snapshot()", &[])
                    .await
                    .context("exporting a snapshot (is the source a hot standby older than PostgreSQL 10?)")?
                    .get::<_, String>(0),
            ),
            SnapshotMode::PerChunk => None,
        };
        let plan = plan_export(&client, &spec).await?;
        let database = plan.database.clone();
        let mut job = JobRun::export(id.to_string(), spec, plan.tables, plan.notes);
        job.source_database = Some(database);
        job.snapshot = snapshot;
        if job.snapshot.is_some() {
            // The transaction must stay open for workers to import its snapshot.
            self.snapshots.insert(id.to_string(), client);
        } else {
            client.batch_execute("COMMIT").await?;
        }
        Ok(job)
    }

    /// Continue a job loaded from the state store after a restart.
    pub async fn resume(&mut self, mut job: JobRun) -> Result<()> {
        if job.state == JobState::Running && job.snapshot.is_some() && job.export_spec().is_some() {
            // The exporting transaction died with the old process; mixing snapshots would break
            // the consistency the job asked for.
            job.state = JobState::Failed;
            job.error = Some(
                "the consistent snapshot was lost when the coordinator restarted; submit the job again (finished parts are overwritten)"
                    .into(),
            );
            if let Some(store) = &self.store {
                store.save_job(&job).await?;
            }
        }
        if let (Some(spec), Some(st)) = (job.restore_spec(), job.restore.as_ref()) {
            if !st.restored {
                // Ours again: nobody else may put these changes back while we load.
                let lock = target_changes::hold_job_lock(&spec.target.conn(), &job.id).await?;
                self.target_locks.insert(job.id.clone(), lock);
            }
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
        if let Some(store) = &self.store {
            store.set_job_state(id, JobState::Cancelled, None).await?;
        }
        self.snapshots.remove(id);
        Ok(())
    }

    /// Finalize finished tables, finish complete jobs, undo what failed restores changed, and
    /// publish what is due.
    pub async fn pump(&mut self) -> Result<()> {
        self.requeue_stalled().await?;
        self.finalize_tables().await?;
        self.finish_jobs().await?;
        self.undo_failed_restores().await?;
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
            for c in job.chunks.iter().filter(|c| c.state == ChunkState::Queued) {
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
            let c = &mut job.chunks[chunk as usize];
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
            c.state = ChunkState::Pending;
            c.not_before = None;
            if let Some(store) = &self.store {
                store.save_chunk(&id, c).await?;
            }
        }
        Ok(())
    }

    async fn publish_due(&mut self) -> Result<()> {
        let now = SystemTime::now();
        // The fleet-wide cap is per database: jobs on the same source or target share it.
        let mut in_flight: HashMap<String, usize> = HashMap::new();
        let mut cap: HashMap<String, usize> = HashMap::new();
        for job in self.jobs.values().filter(|j| j.state == JobState::Running) {
            let (key, limit) = window(&job.spec);
            *in_flight.entry(key.clone()).or_default() += job.in_flight();
            let c = cap.entry(key).or_insert(usize::MAX);
            *c = (*c).min(limit);
        }
        let ids: Vec<String> = self.jobs.keys().cloned().collect();
        for id in ids {
            let (key, _) = window(&self.jobs[&id].spec);
            let room = cap
                .get(&key)
                .copied()
                .unwrap_or(0)
                .saturating_sub(in_flight.get(&key).copied().unwrap_or(0));
            if room == 0 {
                continue;
            }
            let due = self.jobs[&id].due(now, room);
            for chunk in due {
                let job = &self.jobs[&id];
                let attempt = job.chunks[chunk as usize].attempt + 1;
                let task = build_task(job, &job.chunks[chunk as usize], attempt)?;
                self.publisher
                    .publish(&task)
                    .await
                    .with_context(|| format!("publishing {}", task.task_id))?;
                let job = self.jobs.get_mut(&id).expect("job exists");
                job.mark_queued(chunk, attempt);
                self.queued_since
                    .insert((id.clone(), chunk), std::time::Instant::now());
                *in_flight.entry(key.clone()).or_default() += 1;
                if let Some(store) = &self.store {
                    store.save_chunk(&id, &job.chunks[chunk as usize]).await?;
                }
            }
        }
        Ok(())
    }

    /// Export: write the table's manifest. Restore: check the loaded rows against the export.
    async fn finalize_tables(&mut self) -> Result<()> {
        let ids: Vec<String> = self.jobs.keys().cloned().collect();
        for id in ids {
            if self.jobs[&id].state != JobState::Running {
                continue;
            }
            for t in self.jobs[&id].tables_ready_to_finalize() {
                let job = &self.jobs[&id];
                let table = job.tables[t as usize].name().display_name();
                match &job.tables[t as usize].work {
                    TableWork::Export(_) => self.write_table_markers(&id, t).await?,
                    TableWork::Restore(r) => {
                        let loaded = job.table_rows(t);
                        let complete = match r.filter {
                            None => loaded == r.expected_rows,
                            Some(_) => loaded <= r.expected_rows,
                        };
                        if !complete {
                            let error = format!(
                                "table {table}: loaded {loaded} rows but the export has {}",
                                r.expected_rows
                            );
                            self.fail_job(&id, error).await?;
                            break;
                        }
                    }
                }
                if let Some(store) = &self.store {
                    store.mark_finalized(&id, t).await?;
                }
                let job = self.jobs.get_mut(&id).expect("job exists");
                job.tables[t as usize].finalized = true;
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
            self.write_export_metadata(&id).await?;
            let job = &self.jobs[&id];
            if job.restore.is_some() {
                match restore::finish(job).await {
                    Ok(report) => {
                        for p in &report.pending {
                            tracing::warn!(job = %id, "still pending in the target: {p}");
                        }
                    }
                    Err(e) => {
                        self.fail_job(&id, format!("finishing the restore failed: {e:#}"))
                            .await?;
                        continue;
                    }
                }
                self.target_locks.remove(&id);
                let job = self.jobs.get_mut(&id).expect("job exists");
                if let Some(r) = job.restore.as_mut() {
                    r.restored = true;
                }
                if let Some(store) = &self.store {
                    store.save_restore_state(job).await?;
                }
            }
            let job = self.jobs.get_mut(&id).expect("job exists");
            job.state = JobState::Succeeded;
            let c = job.counts();
            tracing::info!(job = %id, rows = c.rows, bytes = c.bytes, "job succeeded");
            if let Some(store) = &self.store {
                store.save_job(job).await?;
            }
            self.snapshots.remove(&id);
        }
        Ok(())
    }

    /// A failed or cancelled restore puts back the constraints and indexes it dropped.
    async fn undo_failed_restores(&mut self) -> Result<()> {
        let ids: Vec<String> = self
            .jobs
            .iter()
            .filter(|(_, j)| {
                j.state.is_terminal()
                    && j.state != JobState::Succeeded
                    && j.restore.as_ref().is_some_and(|r| !r.restored)
            })
            .map(|(id, _)| id.clone())
            .collect();
        for id in ids {
            let report = match restore::undo(&self.jobs[&id]).await {
                Ok(report) => report,
                Err(e) => {
                    tracing::warn!(job = %id, error = %format!("{e:#}"), "could not yet restore the target's constraints; will retry");
                    continue;
                }
            };
            self.target_locks.remove(&id);
            for p in &report.pending {
                tracing::warn!(job = %id, "still pending in the target: {p}");
            }
            self.undo_reports.insert(id.clone(), report);
            let job = self.jobs.get_mut(&id).expect("job exists");
            if let Some(r) = job.restore.as_mut() {
                r.restored = true;
            }
            if let Some(store) = &self.store {
                store.save_restore_state(job).await?;
            }
            tracing::info!(job = %id, "constraints and indexes of the target put back");
        }
        Ok(())
    }

    async fn fail_job(&mut self, id: &str, error: String) -> Result<()> {
        let job = self.jobs.get_mut(id).expect("job exists");
        tracing::error!(job = id, %error, "job failed");
        job.state = JobState::Failed;
        job.error = Some(error);
        if let Some(store) = &self.store {
            store.save_job(job).await?;
        }
        self.snapshots.remove(id);
        Ok(())
    }

    /// CSV: `_manifest.json` (every object with rows and bytes, the columns, the job), then
    /// `_SUCCESS`, so a reader that sees `_SUCCESS` can trust the manifest. rds-parquet: the
    /// batch folder's `_SUCCESS`, as AWS writes it.
    async fn write_table_markers(&self, id: &str, table_idx: u32) -> Result<()> {
        let job = &self.jobs[id];
        let Some(spec) = job.export_spec() else {
            return Ok(());
        };
        let location = spec.output.location().map_err(|e| anyhow!(e))?;
        let files: Vec<(String, Vec<u8>, &str)> = if spec.output.format == OutputFormat::RdsParquet
        {
            vec![(job.success_key(table_idx), Vec::new(), "text/plain")]
        } else {
            vec![
                (
                    job.manifest_key(table_idx),
                    serde_json::to_vec_pretty(&job.manifest(table_idx))?,
                    "application/json",
                ),
                (job.success_key(table_idx), Vec::new(), "text/plain"),
            ]
        };
        for (key, body, content_type) in files {
            worker::sink::put_object(
                &self.ctx,
                &location,
                &spec.output.s3,
                &key,
                body.into(),
                content_type,
            )
            .await
            .map_err(|e| anyhow!("job {id}: writing {key}: {}", e.message))?;
        }
        Ok(())
    }

    /// rds-parquet: the export's metadata files, written last like AWS does.
    async fn write_export_metadata(&self, id: &str) -> Result<()> {
        let job = &self.jobs[id];
        let Some(spec) = job.export_spec() else {
            return Ok(());
        };
        if spec.output.format != OutputFormat::RdsParquet {
            return Ok(());
        }
        let root = spec.output.location().map_err(|e| anyhow!(e))?;
        let database = job.source_database.as_deref().unwrap_or("postgres");
        let export_id = protocol::layout::rds::export_id(&root);
        let now = SystemTime::now();
        let plans: Vec<(u32, &TablePlan)> = job
            .tables
            .iter()
            .enumerate()
            .filter_map(|(i, t)| match &t.work {
                TableWork::Export(p) => Some((i as u32, p)),
                TableWork::Restore(_) => None,
            })
            .collect();
        let infos: Vec<crate::rds_export::TableInfo> = plans
            .iter()
            .map(|(i, p)| crate::rds_export::TableInfo {
                table: &p.table,
                columns: &p.columns,
                column_types: &p.column_types,
                size_bytes: job.table_chunks(*i).map(|c| c.bytes).sum(),
                rows: job.table_rows(*i),
                chunks: job.table_chunks(*i).count() as u32,
                extraction_start: None,
                extraction_end: Some(now),
            })
            .collect();
        let export_only: Vec<String> = plans
            .iter()
            .map(|(_, p)| protocol::layout::rds::target(database, &p.table))
            .collect();
        let info = crate::rds_export::export_info_json(&crate::rds_export::ExportInfo {
            job_id: id,
            database,
            root: &root,
            export_only: &export_only,
            snapshot_time: now,
            task_start: now,
            task_end: now,
            total_bytes: job.counts().bytes,
        });
        let mut files = crate::rds_export::tables_info_files(
            &export_id,
            database,
            &infos,
            crate::rds_export::TABLES_PER_INFO_FILE,
        );
        files.push((protocol::layout::rds::export_info_key(&export_id), info));
        for (key, doc) in files {
            worker::sink::put_object(
                &self.ctx,
                &root,
                &spec.output.s3,
                &key,
                serde_json::to_vec_pretty(&doc)?.into(),
                "application/json",
            )
            .await
            .map_err(|e| anyhow!("job {id}: writing {key}: {}", e.message))?;
        }
        Ok(())
    }

    pub async fn on_result(&mut self, result: &ResultEnvelope) -> Result<()> {
        let applied = match self.jobs.get_mut(&result.job_id) {
            Some(job) => job.apply(result, SystemTime::now(), &self.retry),
            None => Applied::Ignored("unknown or finished job"),
        };
        if let Some(store) = &self.store {
            store
                .record_result(result, &applied_label(&applied))
                .await?;
        }
        let Some(job) = self.jobs.get(&result.job_id) else {
            return Ok(());
        };
        match applied {
            Applied::Ignored(why) => {
                tracing::debug!(task = %result.task_id, attempt = result.attempt, why, "result ignored")
            }
            Applied::Done { chunk } | Applied::Retry { chunk, .. } => {
                if let Some(store) = &self.store {
                    store
                        .save_chunk(&job.id, &job.chunks[chunk as usize])
                        .await?;
                }
            }
            Applied::Failed { chunk } => {
                tracing::error!(job = %job.id, error = job.error.as_deref().unwrap_or(""), "job failed");
                if let Some(store) = &self.store {
                    store
                        .save_chunk(&job.id, &job.chunks[chunk as usize])
                        .await?;
                    store.save_job(job).await?;
                }
                self.snapshots.remove(&result.job_id);
            }
        }
        Ok(())
    }

    /// A task RabbitMQ gave up on (rejected as unreadable, or redelivered past the limit because
    /// workers kept dying on it) fails its chunk: retrying it would crash more workers.
    pub async fn on_dead_letter(&mut self, letter: &DeadLetter) -> Result<()> {
        tracing::warn!(reason = %letter.reason, task = letter.task.as_ref().map(|t| t.task_id.as_str()), "dead letter");
        if let Some(store) = &self.store {
            store
                .record_dead_letter(
                    &letter.reason,
                    letter.task.as_ref().map(|t| t.job_id.as_str()),
                    letter.task.as_ref().map(|t| t.task_id.as_str()),
                    &letter.preview,
                )
                .await?;
        }
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
            .filter(|(_, j)| j.state.is_terminal() && j.restore.as_ref().is_none_or(|r| r.restored))
            .map(|(id, _)| id.clone())
            .collect();
        done.into_iter()
            .filter_map(|id| {
                self.snapshots.remove(&id);
                self.target_locks.remove(&id);
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

/// The database a job loads (window key) and the job's cap on chunks in flight against it.
/// Jobs on the same database share one window.
fn window(spec: &JobSpec) -> (String, usize) {
    match spec {
        JobSpec::Export(e) => (
            format!(
                "source {}",
                e.source.url.as_deref().unwrap_or("<PG* environment>")
            ),
            e.source.max_in_flight as usize,
        ),
        JobSpec::Restore(r) => (
            format!(
                "target {}",
                r.target.url.as_deref().unwrap_or("<PG* environment>")
            ),
            r.target.max_connections as usize,
        ),
    }
}

pub fn build_task(job: &JobRun, chunk: &ChunkRun, attempt: u32) -> Result<TaskEnvelope> {
    let task = match (
        &job.spec,
        &chunk.work,
        &job.tables[chunk.table_idx as usize].work,
    ) {
        (JobSpec::Export(spec), ChunkWork::Export(range), TableWork::Export(plan)) => {
            Task::ExportChunk(export_task(job, spec, plan, chunk, range)?)
        }
        (JobSpec::Restore(spec), ChunkWork::Restore(piece), TableWork::Restore(table)) => {
            Task::RestoreFile(restore::task(job, spec, table, piece)?)
        }
        _ => anyhow::bail!(
            "job {}: chunk {} does not match its job kind",
            job.id,
            chunk.id
        ),
    };
    Ok(TaskEnvelope {
        version: MESSAGE_VERSION,
        task_id: protocol::task_id(&job.id, chunk.id),
        job_id: job.id.clone(),
        attempt,
        task,
    })
}

fn export_task(
    job: &JobRun,
    spec: &ExportSpec,
    plan: &TablePlan,
    chunk: &ChunkRun,
    range: &ChunkRange,
) -> Result<ExportChunk> {
    let location = spec.output.location().map_err(|e| anyhow!(e))?;
    Ok(ExportChunk {
        source: spec.source.conn(),
        snapshot: job.snapshot.clone(),
        table: plan.table.clone(),
        only: plan.own_rows_only,
        columns: plan
            .columns
            .iter()
            .enumerate()
            .map(|(i, c)| ColumnExport {
                name: c.clone(),
                transform: spec.transform_for(c),
                pg_type: plan.column_types.get(i).cloned(),
            })
            .collect(),
        range: range.clone(),
        output: OutputTarget {
            location,
            key: job.part_key(chunk),
            format: spec.output.format,
            gzip_level: spec.output.gzip_level,
            part_size: spec.output.part_size.0,
            parts_in_flight: spec.output.parts_in_flight,
            s3: spec.output.s3.clone(),
        },
    })
}
