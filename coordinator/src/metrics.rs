//! Coordinator metrics (Prometheus, default registry, served by `/metrics` of `coordinator
//! serve`). Refreshed from the engine's state on every tick, so they are always consistent
//! with it; per-job series disappear when the job leaves the engine, which keeps cardinality
//! bounded by the jobs running now.
//!
//! The pgfleet job is labelled `job_id`, not `job`: Prometheus owns `job` (the scrape job).

use crate::broker::queue_stats::QueueStats;
use crate::job::{ChunkState, JobRun, TableWork};
use crate::throughput::{eta_seconds, Throughput};
use prometheus::{
    register_gauge_vec, register_int_counter_vec, register_int_gauge, register_int_gauge_vec,
    GaugeVec, IntCounterVec, IntGauge, IntGaugeVec,
};
use std::collections::{BTreeSet, HashMap};
use std::sync::{Mutex, OnceLock};
use std::time::Instant;

pub struct CoordinatorMetrics {
    pub jobs: IntGaugeVec,
    pub jobs_finished: IntCounterVec,
    pub job_info: IntGaugeVec,
    pub job_tasks: IntGaugeVec,
    pub job_rows_done: IntGaugeVec,
    pub job_rows_planned: IntGaugeVec,
    pub job_bytes_done: IntGaugeVec,
    pub job_bytes_planned: IntGaugeVec,
    pub job_wave: IntGaugeVec,
    pub job_rows_per_second: GaugeVec,
    pub job_bytes_per_second: GaugeVec,
    pub job_eta_seconds: GaugeVec,
    pub task_queue: IntGaugeVec,
    pub task_queue_consumers: IntGauge,
    pub queue_stats_from_api: IntGauge,
    pub dead_letters: IntGauge,
    pub broker_up: IntGauge,
    /// Job ids that have per-job series now.
    labelled: Mutex<BTreeSet<String>>,
    /// Progress samples per job, for throughput and time left.
    throughput: Mutex<HashMap<String, Throughput>>,
}

pub const JOB_STATES: [&str; 6] = [
    "submitted",
    "running",
    "succeeded",
    "failed",
    "cancelling",
    "cancelled",
];
pub const TASK_STATES: [&str; 4] = ["pending", "queued", "done", "failed"];

pub fn metrics() -> &'static CoordinatorMetrics {
    static M: OnceLock<CoordinatorMetrics> = OnceLock::new();
    M.get_or_init(|| {
        fleet_io::build_info::register_process_collector();
        let gauge_vec = |name: &str, help: &str, labels: &[&str]| {
            register_int_gauge_vec!(name, help, labels).expect("metric registers once")
        };
        let float_gauge_vec = |name: &str, help: &str| {
            register_gauge_vec!(name, help, &["job_id"]).expect("metric registers once")
        };
        let m = CoordinatorMetrics {
            jobs: gauge_vec(
                "pgfleet_coordinator_jobs",
                "Jobs this coordinator drives now, by state.",
                &["state"],
            ),
            jobs_finished: register_int_counter_vec!(
                "pgfleet_coordinator_jobs_finished_total",
                "Jobs that reached a final state, by kind and state (succeeded, failed, cancelled).",
                &["kind", "state"]
            )
            .expect("metric registers once"),
            job_info: gauge_vec(
                "pgfleet_coordinator_job_info",
                "1 for every job the coordinator drives now, with its kind and state.",
                &["job_id", "kind", "state"],
            ),
            job_tasks: gauge_vec(
                "pgfleet_coordinator_job_tasks",
                "Tasks (chunks or files) of a job, by state: pending (not published yet), queued \
                 (published, in flight), done, failed.",
                &["job_id", "state"],
            ),
            job_rows_done: gauge_vec(
                "pgfleet_coordinator_job_rows_done",
                "Rows moved by the finished tasks of a job.",
                &["job_id"],
            ),
            job_rows_planned: gauge_vec(
                "pgfleet_coordinator_job_rows_planned",
                "Rows a job expects to move (export: planner estimate; restore: rows in the \
                 export's Parquet footers).",
                &["job_id"],
            ),
            job_bytes_done: gauge_vec(
                "pgfleet_coordinator_job_bytes_done",
                "Bytes written by the finished tasks of a job.",
                &["job_id"],
            ),
            job_bytes_planned: gauge_vec(
                "pgfleet_coordinator_job_bytes_planned",
                "Bytes a job expects to move (export: table size estimate; restore: Parquet \
                 bytes to read).",
                &["job_id"],
            ),
            job_wave: gauge_vec(
                "pgfleet_coordinator_job_wave",
                "Restore: the lowest wave with tables not finished yet (0 for exports).",
                &["job_id"],
            ),
            job_rows_per_second: float_gauge_vec(
                "pgfleet_coordinator_job_rows_per_second",
                "Rows per second finished by a job's tasks over the last minute.",
            ),
            job_bytes_per_second: float_gauge_vec(
                "pgfleet_coordinator_job_bytes_per_second",
                "Bytes per second written by a job's finished tasks over the last minute.",
            ),
            job_eta_seconds: float_gauge_vec(
                "pgfleet_coordinator_job_eta_seconds",
                "Estimated seconds until a job is done, at its average pace so far (by rows \
                 against the plan, by tasks once rows pass the plan's estimate). Absent until \
                 the job has made progress.",
            ),
            task_queue: gauge_vec(
                "pgfleet_coordinator_task_queue_messages",
                "Messages on the task queue: ready (no worker has taken them) and unacked (a \
                 worker holds them). ready + unacked is the backlog to scale on.",
                &["state"],
            ),
            task_queue_consumers: register_int_gauge!(
                "pgfleet_coordinator_task_queue_consumers",
                "Consumers (worker task slots' channels) on the task queue."
            )
            .expect("metric registers once"),
            queue_stats_from_api: register_int_gauge!(
                "pgfleet_coordinator_queue_stats_from_api",
                "1 when the task-queue counts come from the RabbitMQ management API; 0 when \
                 unacked is estimated (tasks published without a result, minus ready)."
            )
            .expect("metric registers once"),
            dead_letters: register_int_gauge!(
                "pgfleet_coordinator_dead_letter_messages",
                "Messages in the dead-letter queue."
            )
            .expect("metric registers once"),
            broker_up: register_int_gauge!(
                "pgfleet_coordinator_broker_up",
                "1 when the coordinator is connected to RabbitMQ."
            )
            .expect("metric registers once"),
            labelled: Mutex::new(BTreeSet::new()),
            throughput: Mutex::new(HashMap::new()),
        };
        for state in JOB_STATES {
            m.jobs.with_label_values(&[state]);
        }
        for state in ["ready", "unacked"] {
            m.task_queue.with_label_values(&[state]);
        }
        for kind in ["export", "restore"] {
            for state in ["succeeded", "failed", "cancelled"] {
                m.jobs_finished.with_label_values(&[kind, state]);
            }
        }
        m
    })
}

impl CoordinatorMetrics {
    /// Set every job gauge from the jobs the engine holds; drop series of jobs it no longer has.
    /// Returns the tasks published and not finished (state `queued`) over all jobs.
    pub fn refresh<'a>(&self, jobs: impl IntoIterator<Item = &'a JobRun>) -> u64 {
        let mut by_state = [0i64; JOB_STATES.len()];
        let mut queued_total = 0u64;
        let mut now = BTreeSet::new();
        let mut labelled = self.labelled.lock().unwrap_or_else(|e| e.into_inner());
        for job in jobs {
            let id = job.id.as_str();
            if let Some(i) = JOB_STATES.iter().position(|s| *s == job.state.as_str()) {
                by_state[i] += 1;
            }
            // A state change: the old info series goes.
            for state in JOB_STATES {
                if state != job.state.as_str() {
                    let _ = self
                        .job_info
                        .remove_label_values(&[id, job.kind.as_str(), state]);
                }
            }
            self.job_info
                .with_label_values(&[id, job.kind.as_str(), job.state.as_str()])
                .set(1);
            let mut tasks = [0i64; TASK_STATES.len()];
            let (mut rows, mut bytes) = (0u64, 0u64);
            for chunk in &job.chunks {
                let i = match chunk.state {
                    ChunkState::Pending => 0,
                    ChunkState::Queued => 1,
                    ChunkState::Done => 2,
                    ChunkState::Failed => 3,
                };
                tasks[i] += 1;
                rows += chunk.rows;
                bytes += chunk.bytes;
            }
            for (state, n) in TASK_STATES.iter().zip(tasks) {
                self.job_tasks.with_label_values(&[id, state]).set(n);
            }
            let (mut rows_planned, mut bytes_planned) = (0u64, 0u64);
            let mut wave = None::<u32>;
            for table in &job.tables {
                match &table.work {
                    TableWork::Export(p) => {
                        rows_planned += p.estimated_rows;
                        bytes_planned += p.estimated_bytes;
                    }
                    TableWork::Restore(r) => {
                        rows_planned += r.expected_rows;
                        if !table.finalized {
                            wave = Some(wave.map_or(r.wave, |w| w.min(r.wave)));
                        }
                    }
                }
            }
            bytes_planned += job
                .chunks
                .iter()
                .filter_map(|c| match &c.work {
                    crate::job::ChunkWork::Restore(f) => Some(f.size),
                    _ => None,
                })
                .sum::<u64>();
            self.job_rows_done.with_label_values(&[id]).set(clamp(rows));
            self.job_bytes_done
                .with_label_values(&[id])
                .set(clamp(bytes));
            self.job_rows_planned
                .with_label_values(&[id])
                .set(clamp(rows_planned));
            self.job_bytes_planned
                .with_label_values(&[id])
                .set(clamp(bytes_planned));
            self.job_wave
                .with_label_values(&[id])
                .set(i64::from(wave.unwrap_or(0)));
            self.set_pace(
                id,
                (rows, bytes, tasks[2] as u64),
                rows_planned.saturating_sub(rows),
                (tasks[0] + tasks[1]) as u64,
            );
            queued_total += tasks[1] as u64;
            now.insert(id.to_string());
        }
        for gone in labelled.difference(&now) {
            self.remove_job(gone);
        }
        *labelled = now;
        for (state, n) in JOB_STATES.iter().zip(by_state) {
            self.jobs.with_label_values(&[state]).set(n);
        }
        queued_total
    }

    /// Throughput and time left of one job from its progress now: (rows, bytes, tasks done).
    fn set_pace(
        &self,
        id: &str,
        (rows, bytes, done): (u64, u64, u64),
        rows_left: u64,
        tasks_left: u64,
    ) {
        let mut all = self.throughput.lock().unwrap_or_else(|e| e.into_inner());
        let t = all.entry(id.to_string()).or_default();
        t.record(Instant::now(), rows, bytes, done);
        match t.recent() {
            Some(r) => {
                self.job_rows_per_second
                    .with_label_values(&[id])
                    .set(r.rows_per_second);
                self.job_bytes_per_second
                    .with_label_values(&[id])
                    .set(r.bytes_per_second);
            }
            None => {
                let _ = self.job_rows_per_second.remove_label_values(&[id]);
                let _ = self.job_bytes_per_second.remove_label_values(&[id]);
            }
        }
        match t
            .overall()
            .and_then(|r| eta_seconds(&r, rows_left, tasks_left))
        {
            Some(eta) => self.job_eta_seconds.with_label_values(&[id]).set(eta),
            None => {
                let _ = self.job_eta_seconds.remove_label_values(&[id]);
            }
        }
    }

    fn remove_job(&self, id: &str) {
        self.throughput
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(id);
        for g in [
            &self.job_rows_per_second,
            &self.job_bytes_per_second,
            &self.job_eta_seconds,
        ] {
            let _ = g.remove_label_values(&[id]);
        }
        for kind in ["export", "restore"] {
            for state in JOB_STATES {
                let _ = self.job_info.remove_label_values(&[id, kind, state]);
            }
        }
        for state in TASK_STATES {
            let _ = self.job_tasks.remove_label_values(&[id, state]);
        }
        for g in [
            &self.job_rows_done,
            &self.job_rows_planned,
            &self.job_bytes_done,
            &self.job_bytes_planned,
            &self.job_wave,
        ] {
            let _ = g.remove_label_values(&[id]);
        }
    }

    /// Count jobs leaving the engine (from `take_finished`).
    pub fn finished(&self, job: &JobRun) {
        if job.state.is_terminal() {
            self.jobs_finished
                .with_label_values(&[job.kind.as_str(), job.state.as_str()])
                .inc();
        }
    }

    /// Queue counts; `None` (not connected) leaves the last values.
    pub fn set_queue(&self, stats: Option<&QueueStats>) {
        self.broker_up.set(i64::from(stats.is_some()));
        if let Some(s) = stats {
            self.task_queue
                .with_label_values(&["ready"])
                .set(clamp(s.ready));
            self.task_queue
                .with_label_values(&["unacked"])
                .set(clamp(s.unacked));
            self.task_queue_consumers.set(clamp(s.consumers));
            self.dead_letters.set(clamp(s.dead_letters));
            self.queue_stats_from_api.set(i64::from(s.from_api));
        }
    }
}

fn clamp(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::export::plan::{KeyChoice, TablePlan};
    use protocol::{ChunkRange, QualifiedName};

    fn job(id: &str, chunks: usize, estimated_rows: u64) -> JobRun {
        let spec = match protocol::JobSpec::from_toml(
            "kind = \"export\"\nname = \"t\"\n[source]\n[tables]\ninclude = [\"public.*\"]\n\
             [output]\nurl = \"file:///tmp/x/\"\n",
        )
        .unwrap()
        {
            protocol::JobSpec::Export(e) => e,
            protocol::JobSpec::Restore(_) => unreachable!("export spec above"),
        };
        let plan = TablePlan {
            table: QualifiedName::new("public", "t"),
            columns: vec!["id".into()],
            column_types: Vec::new(),
            key: KeyChoice::Pages,
            own_rows_only: true,
            estimated_rows,
            estimated_bytes: 100,
            chunks: (0..chunks)
                .map(|_| ChunkRange::Pages { lo: None, hi: None })
                .collect(),
        };
        JobRun::for_export(
            id.into(),
            crate::job::ExportJob::new(spec),
            vec![plan],
            vec![],
        )
    }

    #[test]
    fn per_job_series_follow_the_engine_and_go_with_the_job() {
        let m = metrics();
        let mut a = job("metrics-a", 3, 30);
        a.chunks[0].state = ChunkState::Done;
        a.chunks[0].rows = 10;
        a.chunks[1].state = ChunkState::Queued;
        let b = job("metrics-b", 1, 5);
        m.refresh([&a, &b]);
        assert_eq!(
            m.job_tasks.with_label_values(&["metrics-a", "done"]).get(),
            1
        );
        assert_eq!(
            m.job_tasks
                .with_label_values(&["metrics-a", "queued"])
                .get(),
            1
        );
        assert_eq!(
            m.job_tasks
                .with_label_values(&["metrics-a", "pending"])
                .get(),
            1
        );
        assert_eq!(m.job_rows_done.with_label_values(&["metrics-a"]).get(), 10);
        assert_eq!(
            m.job_rows_planned.with_label_values(&["metrics-a"]).get(),
            30
        );
        assert_eq!(
            m.job_bytes_planned.with_label_values(&["metrics-a"]).get(),
            100
        );

        // b leaves the engine: none of its series remain; a's stay.
        m.refresh([&a]);
        let text = {
            use prometheus::Encoder;
            let mut buf = Vec::new();
            prometheus::TextEncoder::new()
                .encode(&prometheus::gather(), &mut buf)
                .unwrap();
            String::from_utf8(buf).unwrap()
        };
        assert!(!text.contains("metrics-b"), "{text}");
        assert!(
            text.contains(r#"pgfleet_coordinator_job_tasks{job_id="metrics-a",state="done"} 1"#)
        );
        assert!(text.contains(r#"pgfleet_coordinator_jobs{state="failed"} 0"#));
        assert!(text.contains(
            r#"pgfleet_coordinator_jobs_finished_total{kind="restore",state="failed"} 0"#
        ));
        assert!(text.contains(&format!(
            r#"pgfleet_build_info{{revision="{}",version="{}"}} 1"#,
            fleet_io::build_info::REVISION,
            fleet_io::build_info::VERSION
        )));
        m.refresh([]);
    }
}
