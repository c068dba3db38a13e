//! Logging setup shared by both binaries: human-readable on a terminal, JSON when asked.

use std::sync::OnceLock;
use tracing_subscriber::EnvFilter;

/// The format [`init`] set up, for [`fatal`].
static FORMAT: OnceLock<LogFormat> = OnceLock::new();

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// What a process logs unless `RUST_LOG` or -v/-q say otherwise.
pub const DEFAULT_FILTER: &str = "info,tokio_postgres=warn,lapin=warn";

/// For a command whose report is its output (`coordinator check`): warnings and errors only,
/// and none from lapin, which logs a refused AMQP login as errors the report already shows.
pub const QUIET_FILTER: &str = "warn,tokio_postgres=warn,lapin=off";

/// Set up logging on stderr. `verbosity` (from -v/-q: 1 debug, 2 trace, -1 warn, -2 error,
/// -3 off) wins over `RUST_LOG`, which wins over `default_filter`. An invalid `RUST_LOG` is an
/// error, not a silent fallback.
pub fn init(format: LogFormat, verbosity: Option<i8>, default_filter: &str) -> Result<(), String> {
    let _ = FORMAT.set(format);
    let filter = match verbosity {
        Some(v) => EnvFilter::new(match v {
            i8::MIN..=-3 => "off",
            -2 => "error",
            -1 => "warn",
            0 => default_filter,
            1 => "debug,tokio_postgres=info,lapin=info,h2=info,hyper=info,rustls=info",
            _ => "trace",
        }),
        None => match std::env::var("RUST_LOG") {
            Ok(v) if !v.trim().is_empty() => EnvFilter::builder()
                .parse(&v)
                .map_err(|e| format!("RUST_LOG={v:?} is not a log filter ({e}); e.g. RUST_LOG=info,pgfleet_worker=debug"))?,
            _ => EnvFilter::new(default_filter),
        },
    };
    // Colours only on a terminal: journald, `docker logs` and files get plain text.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
    Ok(())
}

/// Report the error that ends the process: `error: …` on stderr, or with `--log-format json`
/// one JSON log line like every other, so log pipelines see why the process stopped. Never
/// panics (a closed stderr loses the message).
pub fn fatal(message: &str) {
    // Through the JSON formatter, with timestamp and level as the other lines have; plain
    // text when a filter (`RUST_LOG=off`) would swallow it.
    if FORMAT.get() == Some(&LogFormat::Json) && tracing::enabled!(tracing::Level::ERROR) {
        tracing::error!(fatal = true, "{message}");
    } else {
        use std::io::Write;
        let _ = writeln!(std::io::stderr().lock(), "error: {message}");
    }
}

/// A stable, non-secret name for this process: `host-pid`.
pub fn process_name() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "worker".into());
    format!("{host}-{}", std::process::id())
}
