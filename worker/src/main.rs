//! `worker`: consume pgfleet tasks from RabbitMQ and stream chunks between PostgreSQL and S3.

use clap::Parser;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use worker::logging::{self, LogFormat};

/// A stateless pgfleet worker. Run as many as you like on any machine that reaches RabbitMQ,
/// the PostgreSQL sources and the object store. Database passwords come from this machine's
/// environment (PGPASSWORD, ~/.pgpass, or the variable a job names); S3 credentials from the
/// AWS default chain (env, profile, EC2 instance role).
#[derive(Parser, Debug)]
#[command(version, about, long_about)]
struct Args {
    /// RabbitMQ URL. Keep the password out of shell history: use the environment variable.
    #[arg(
        long,
        env = "PGFLEET_AMQP_URL",
        default_value = "amqp://guest:guest@127.0.0.1:5672/%2f",
        hide_env_values = true
    )]
    amqp_url: String,
    /// PEM file of CA certificates trusted for an amqps:// URL (a private CA), besides the
    /// system's.
    #[arg(long, env = "PGFLEET_AMQP_CA_FILE")]
    amqp_ca_file: Option<PathBuf>,
    /// AMQP heartbeat timeout, seconds. RabbitMQ drops a connection it has heard nothing on
    /// for 2–3 times this long and gives its unfinished tasks to other workers, so a frozen
    /// worker (SIGSTOP, a hung VM) holds them 30–45 s at the default. 0 accepts the broker's
    /// (60 s on RabbitMQ: 2–3 minutes). A `heartbeat=N` in the URL's query wins.
    #[arg(long, env = "PGFLEET_AMQP_HEARTBEAT_SECONDS", default_value_t = worker::amqp::DEFAULT_HEARTBEAT_SECONDS)]
    amqp_heartbeat_seconds: u16,
    /// Queue-name namespace; must match the coordinator's.
    #[arg(long, env = "PGFLEET_NAMESPACE", default_value = protocol::topology::DEFAULT_NAMESPACE)]
    namespace: String,
    /// Tasks run at once (also the RabbitMQ prefetch). Each export task holds about
    /// part_size * (parts_in_flight + 1) bytes of memory.
    #[arg(long, env = "PGFLEET_CONCURRENCY", default_value_t = 2)]
    concurrency: u16,
    /// Address for /metrics, /healthz and /readyz (loopback by default; any other address
    /// needs --metrics-token-file or --metrics-public).
    #[arg(long, env = "PGFLEET_METRICS_ADDR", default_value = "127.0.0.1:9181")]
    metrics_addr: SocketAddr,
    #[command(flatten)]
    metrics_auth: worker::http::MetricsAuthArgs,
    /// Name shown in results and logs (default: host-pid).
    #[arg(long, env = "PGFLEET_WORKER_NAME")]
    name: Option<String>,
    /// Seconds in-flight tasks may keep running after SIGTERM before they go back to the queue.
    #[arg(long, env = "PGFLEET_SHUTDOWN_GRACE", default_value_t = 300)]
    shutdown_grace: u64,
    #[arg(long, env = "PGFLEET_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
}

fn main() -> std::process::ExitCode {
    worker::allocator::limit_malloc_arenas();
    match tokio::runtime::Runtime::new() {
        Ok(rt) => rt.block_on(run()),
        Err(e) => {
            logging::fatal(&format!("cannot start the async runtime: {e}"));
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run() -> std::process::ExitCode {
    let args = Args::parse();
    logging::init(args.log_format);
    if args.concurrency == 0 {
        logging::fatal("--concurrency must be at least 1");
        return std::process::ExitCode::from(2);
    }
    let topology = match protocol::topology::Topology::new(&args.namespace) {
        Ok(t) => t,
        Err(e) => {
            logging::fatal(&format!("--namespace {e}"));
            return std::process::ExitCode::from(2);
        }
    };
    let metrics_access = match args.metrics_auth.access(args.metrics_addr) {
        Ok(a) => a,
        Err(e) => {
            logging::fatal(&e.to_string());
            return std::process::ExitCode::from(2);
        }
    };
    if let Some(path) = &args.amqp_ca_file {
        if let Err(e) = worker::amqp::set_ca_file(path) {
            logging::fatal(&format!("--amqp-ca-file: {e}"));
            return std::process::ExitCode::from(2);
        }
    }
    worker::amqp::set_heartbeat(args.amqp_heartbeat_seconds);
    let name = args.name.clone().unwrap_or_else(logging::process_name);
    let ready = Arc::new(AtomicBool::new(false));
    match worker::http::spawn_with_access(args.metrics_addr, ready.clone(), metrics_access).await {
        Ok(addr) => tracing::info!(%addr, "serving /metrics, /healthz, /readyz"),
        Err(e) => {
            logging::fatal(&format!(
                "cannot listen on {} for metrics: {e}",
                args.metrics_addr
            ));
            return std::process::ExitCode::from(2);
        }
    }
    worker::metrics::metrics();
    let shutdown = CancellationToken::new();
    spawn_signal_handler(shutdown.clone());
    let ctx = worker::context::WorkerContext::new(name.clone());
    tracing::info!(worker = %name, "worker starting");
    worker::consumer::run(
        worker::consumer::ConsumerConfig {
            amqp_url: args.amqp_url,
            topology,
            concurrency: args.concurrency,
            shutdown_grace: Duration::from_secs(args.shutdown_grace),
        },
        ctx,
        ready,
        shutdown,
    )
    .await;
    tracing::info!("worker stopped");
    std::process::ExitCode::SUCCESS
}

fn spawn_signal_handler(shutdown: CancellationToken) {
    tokio::spawn(async move {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => return,
            };
        tokio::select! {
            _ = term.recv() => {}
            _ = tokio::signal::ctrl_c() => {}
        }
        tracing::info!("shutdown requested: no new tasks; finishing the ones in flight");
        shutdown.cancel();
    });
}
