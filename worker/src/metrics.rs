//! Worker metrics (Prometheus, default registry, served by `/metrics`).
//!
//! Labels stay low-cardinality: `table`, `kind`, `outcome`, `direction`, `phase`; never job
//! ids, chunk ids, task ids or file names. A worker never learns when a job ends, so a series
//! per job would live as long as the process and grow with every job it ever served: per-job
//! figures are the coordinator's (`pgfleet_coordinator_job_*`), which drops them with the job.

use prometheus::{
    register_histogram_vec, register_int_counter_vec, register_int_gauge, HistogramVec,
    IntCounterVec, IntGauge,
};
use std::sync::OnceLock;

pub struct WorkerMetrics {
    /// Tasks taken, by kind (`export`, `restore`).
    pub started: IntCounterVec,
    /// Tasks finished, by kind and outcome (`succeeded`, `failed`, `retryable`).
    pub tasks: IntCounterVec,
    pub rows: IntCounterVec,
    pub bytes: IntCounterVec,
    pub task_seconds: HistogramVec,
    pub in_flight: IntGauge,
    pub dead_lettered: IntCounterVec,
    /// Lost or refused connections, by kind (`amqp`, `postgres`).
    pub connection_errors: IntCounterVec,
    /// The memory this process may use: the cgroup limit, else the machine's RAM.
    pub memory_limit: IntGauge,
    /// Seconds spent waiting on each side of the data path, by kind and phase (`source`: the
    /// COPY out stream; `upload`: the object sink; `target`: the COPY in stream).
    pub phase_seconds: prometheus::CounterVec,
    /// Latency of one S3 UploadPart.
    pub s3_part_seconds: prometheus::Histogram,
}

pub const KINDS: [&str; 2] = ["export", "restore"];
pub const OUTCOMES: [&str; 3] = ["succeeded", "failed", "retryable"];

/// Registered once per process in the default registry, together with the process collector
/// (RSS, CPU, open fds). Every kind/outcome series exists from the start at 0, so `rate()` and
/// alerts see the first increment.
pub fn metrics() -> &'static WorkerMetrics {
    static M: OnceLock<WorkerMetrics> = OnceLock::new();
    M.get_or_init(|| {
        register_process_collector();
        let m = WorkerMetrics {
            started: register_int_counter_vec!(
                "pgfleet_worker_tasks_started_total",
                "Tasks this worker started, by kind (export, restore).",
                &["kind"]
            )
            .expect("metric registers once"),
            tasks: register_int_counter_vec!(
                "pgfleet_worker_tasks_total",
                "Tasks finished, by kind and outcome (succeeded, failed, retryable: the \
                 coordinator retries it).",
                &["kind", "outcome"]
            )
            .expect("metric registers once"),
            rows: register_int_counter_vec!(
                "pgfleet_worker_rows_total",
                "Rows moved, by table and direction (export, restore). Per job: \
                 pgfleet_coordinator_job_rows_done.",
                &["table", "direction"]
            )
            .expect("metric registers once"),
            bytes: register_int_counter_vec!(
                "pgfleet_worker_bytes_total",
                "Bytes written to the sink, by table and direction. Per job: \
                 pgfleet_coordinator_job_bytes_done.",
                &["table", "direction"]
            )
            .expect("metric registers once"),
            task_seconds: register_histogram_vec!(
                "pgfleet_worker_task_duration_seconds",
                "Wall time of one task (one chunk or file), by kind.",
                &["kind"],
                vec![
                    0.1, 0.5, 1.0, 5.0, 15.0, 30.0, 60.0, 300.0, 900.0, 1800.0, 3600.0, 7200.0,
                    14400.0
                ]
            )
            .expect("metric registers once"),
            in_flight: register_int_gauge!(
                "pgfleet_worker_tasks_in_flight",
                "Tasks this worker is executing now."
            )
            .expect("metric registers once"),
            dead_lettered: register_int_counter_vec!(
                "pgfleet_worker_dead_lettered_total",
                "Messages this worker could not parse and sent to the dead-letter queue.",
                &["reason"]
            )
            .expect("metric registers once"),
            connection_errors: register_int_counter_vec!(
                "pgfleet_worker_connection_errors_total",
                "Lost or failed connections, by kind (amqp, postgres).",
                &["kind"]
            )
            .expect("metric registers once"),
            phase_seconds: prometheus::register_counter_vec!(
                "pgfleet_worker_phase_seconds_total",
                "Seconds tasks spent waiting on the source COPY, the upload, or the target COPY.",
                &["kind", "phase"]
            )
            .expect("metric registers once"),
            s3_part_seconds: prometheus::register_histogram!(
                "pgfleet_worker_s3_part_upload_duration_seconds",
                "Latency of one S3 UploadPart request.",
                vec![0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0]
            )
            .expect("metric registers once"),
            memory_limit: register_int_gauge!(
                "pgfleet_worker_memory_limit_bytes",
                "Memory this worker may use: its cgroup limit (memory.max), else the machine's \
                 RAM (MemTotal). Compare with process_resident_memory_bytes."
            )
            .expect("metric registers once"),
        };
        m.memory_limit
            .set(i64::try_from(memory_limit_bytes().unwrap_or(0)).unwrap_or(i64::MAX));
        for kind in KINDS {
            m.started.with_label_values(&[kind]);
            m.task_seconds.with_label_values(&[kind]);
            for outcome in OUTCOMES {
                m.tasks.with_label_values(&[kind, outcome]);
            }
        }
        for kind in ["amqp", "postgres"] {
            m.connection_errors.with_label_values(&[kind]);
        }
        for (kind, phase) in [
            ("export", "source"),
            ("export", "upload"),
            ("restore", "target"),
        ] {
            m.phase_seconds.with_label_values(&[kind, phase]);
        }
        m.dead_lettered.with_label_values(&["unparseable"]);
        fleet_io::sink::observe_part_seconds(m.s3_part_seconds.clone());
        m
    })
}

pub use fleet_io::build_info::{register_process_collector, REVISION, VERSION};

/// cgroup v2 `memory.max` (v1 `memory.limit_in_bytes`) when it is a number, else `MemTotal`.
pub fn memory_limit_bytes() -> Option<u64> {
    let total = std::fs::read_to_string("/proc/meminfo").ok().and_then(|s| {
        s.lines()
            .find_map(|l| l.strip_prefix("MemTotal:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .map(|kb| kb * 1024)
    });
    let cgroup = [
        "/sys/fs/cgroup/memory.max",
        "/sys/fs/cgroup/memory/memory.limit_in_bytes",
    ]
    .iter()
    .find_map(|p| std::fs::read_to_string(p).ok()?.trim().parse::<u64>().ok());
    match (cgroup, total) {
        // v1 reports "no limit" as a huge number: the machine's RAM is the real bound.
        (Some(c), Some(t)) => Some(c.min(t)),
        (c, t) => c.or(t),
    }
}

/// The kind of connection a task error message describes, if it is a connection error.
pub fn connection_error_kind(message: &str) -> Option<&'static str> {
    if message.contains("PostgreSQL connection error") || message.contains("PostgreSQL pool") {
        Some("postgres")
    } else {
        None
    }
}

/// Add the time since `started` to a data-path phase.
pub fn phase(kind: &str, phase: &str, started: std::time::Instant) {
    metrics()
        .phase_seconds
        .with_label_values(&[kind, phase])
        .inc_by(started.elapsed().as_secs_f64());
}

#[cfg(test)]
mod tests {
    use super::*;
    use prometheus::{Encoder, TextEncoder};

    #[test]
    fn names_follow_prometheus_conventions_and_labels_stay_small() {
        let m = metrics();
        m.rows.with_label_values(&["public.t", "export"]).inc_by(3);
        let mut buf = Vec::new();
        TextEncoder::new()
            .encode(&prometheus::gather(), &mut buf)
            .unwrap();
        let text = String::from_utf8(buf).unwrap();
        for family in prometheus::gather() {
            let name = family.name();
            assert!(
                name.starts_with("pgfleet_") || name.starts_with("process_"),
                "{name}"
            );
            for metric in family.get_metric() {
                for label in metric.get_label() {
                    assert!(
                        [
                            "table",
                            "kind",
                            "outcome",
                            "direction",
                            "state",
                            "reason",
                            "phase",
                            "version",
                            "revision",
                            "le"
                        ]
                        .contains(&label.name()),
                        "{name} has label {}",
                        label.name()
                    );
                }
            }
        }
        assert!(text.contains("pgfleet_worker_tasks_started_total{kind=\"export\"} 0"));
        assert!(
            text.contains(&format!(
                "pgfleet_build_info{{revision=\"{REVISION}\",version=\"{VERSION}\"}} 1"
            )),
            "{text}"
        );
        assert!(text
            .contains("pgfleet_worker_task_duration_seconds_bucket{kind=\"export\",le=\"14400\"}"));
        #[cfg(target_os = "linux")]
        {
            assert!(text.contains("process_resident_memory_bytes"), "{text}");
            assert!(m.memory_limit.get() > 0);
        }
    }

    #[test]
    fn connection_errors_are_recognised() {
        assert_eq!(
            connection_error_kind("export public.t: PostgreSQL connection error: reset"),
            Some("postgres")
        );
        assert_eq!(
            connection_error_kind("PostgreSQL ERROR 42P01: no such table"),
            None
        );
    }
}
