//! What these binaries are: the crate version and the git commit they were built from
//! ("unknown" outside a checkout; see build.rs), and the process-wide Prometheus series both
//! binaries serve.

use std::sync::OnceLock;

pub const VERSION: &str = env!("CARGO_PKG_VERSION");
pub const REVISION: &str = env!("PGFLEET_GIT_REVISION");

/// Process-wide series, for worker and coordinator alike: `pgfleet_build_info{version,revision}`
/// and `process_resident_memory_bytes`, `process_cpu_seconds_total`, `process_open_fds`, ...
/// Registered at most once; a second registration (tests) is ignored.
pub fn register_process_collector() {
    static DONE: OnceLock<()> = OnceLock::new();
    DONE.get_or_init(|| {
        if let Ok(info) = prometheus::register_int_gauge_vec!(
            "pgfleet_build_info",
            "1, labelled with the pgfleet version and the git commit it was built from.",
            &["version", "revision"]
        ) {
            info.with_label_values(&[VERSION, REVISION]).set(1);
        }
        #[cfg(target_os = "linux")]
        let _ = prometheus::register(Box::new(
            prometheus::process_collector::ProcessCollector::for_self(),
        ));
    });
}
