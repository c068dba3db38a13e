//! `worker`: consume pgfleet tasks from RabbitMQ and stream chunks between PostgreSQL and S3.

use clap::{CommandFactory, Parser, Subcommand};
use fleet_io::logging;
use std::net::SocketAddr;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// A stateless pgfleet worker. Run as many as you like on any machine that reaches RabbitMQ,
/// the PostgreSQL sources and the object store. Database passwords come from this machine's
/// environment (PGPASSWORD, ~/.pgpass, or the variable a job names); S3 credentials from the
/// AWS default chain (env, profile, EC2 instance role).
///
/// Without a subcommand it runs until SIGTERM/SIGINT, then finishes or hands back its tasks.
#[derive(Parser, Debug)]
#[command(
    name = "worker",
    version,
    about,
    long_about,
    args_conflicts_with_subcommands = true,
    styles = fleet_io::cli::styles(),
    after_help = "Examples:\n  PGFLEET_AMQP_URL=amqp://pgfleet@mq.internal:5672/%2f worker --concurrency 4\n  worker --metrics-addr 0.0.0.0:9181 --metrics-token-file /etc/pgfleet/metrics-token",
    after_long_help = fleet_io::cli::ENVIRONMENT
)]
struct Args {
    #[command(subcommand)]
    command: Option<Extra>,
    #[command(flatten)]
    common: fleet_io::cli::CommonArgs,
    #[command(flatten)]
    amqp: fleet_io::amqp::AmqpArgs,
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
    metrics_auth: fleet_io::http::MetricsAuthArgs,
    /// Name shown in results and logs (default: host-pid).
    #[arg(long, env = "PGFLEET_WORKER_NAME")]
    name: Option<String>,
    /// Seconds in-flight tasks may keep running after SIGTERM before they go back to the queue.
    #[arg(
        long,
        env = "PGFLEET_SHUTDOWN_GRACE",
        default_value_t = 300,
        value_name = "SECONDS"
    )]
    shutdown_grace: u64,
}

/// What the worker does instead of consuming tasks.
#[derive(Subcommand, Debug)]
enum Extra {
    /// Print a shell completion script: source it, or install it where your shell looks.
    #[command(after_help = "Example:\n  worker completions bash > /etc/bash_completion.d/worker")]
    Completions {
        /// The shell to complete in.
        #[arg(value_enum)]
        shell: fleet_io::cli::Shell,
    },
    /// Print the man page (roff).
    #[command(
        after_help = "Example:\n  worker man > /usr/local/share/man/man1/worker.1 && man worker"
    )]
    Man,
}

fn main() -> std::process::ExitCode {
    fleet_io::allocator::limit_malloc_arenas();
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
    if let Err(e) = args.common.apply(logging::DEFAULT_FILTER) {
        logging::fatal(&e);
        return std::process::ExitCode::from(2);
    }
    if let Some(extra) = args.command {
        let written = match extra {
            Extra::Completions { shell } => {
                fleet_io::cli::write_completions(shell, &mut Args::command())
            }
            Extra::Man => fleet_io::cli::write_man_page(Args::command()),
        };
        return match written {
            Ok(()) => std::process::ExitCode::SUCCESS,
            Err(e) => {
                logging::fatal(&format!("cannot write to stdout: {e}"));
                std::process::ExitCode::FAILURE
            }
        };
    }
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
    if let Err(e) = args.amqp.apply() {
        logging::fatal(&e.to_string());
        return std::process::ExitCode::from(2);
    }
    let name = args.name.clone().unwrap_or_else(logging::process_name);
    let ready = Arc::new(AtomicBool::new(false));
    match fleet_io::http::spawn_with_access(args.metrics_addr, ready.clone(), metrics_access).await
    {
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
    let ctx = fleet_io::clients::Clients::new(name.clone());
    tracing::info!(worker = %name, "worker starting");
    worker::consumer::run(
        worker::consumer::ConsumerConfig {
            amqp_url: args.amqp.amqp_url,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_command_line_is_consistent_and_documented() {
        Args::command().debug_assert();
        let missing = fleet_io::cli::undocumented(&Args::command());
        assert!(missing.is_empty(), "{missing:#?}");
    }
}
