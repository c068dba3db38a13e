//! `coordinator`: plan pgfleet jobs, publish their tasks, track them to completion.

use clap::{Parser, Subcommand};
use coordinator::commands;
use fleet_io::logging::{self, LogFormat};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

/// pgfleet moves PostgreSQL tables to S3 (export) with a fleet of workers fed by RabbitMQ.
///
/// Quick tour:
///   coordinator plan export.toml            show tables and chunks, touch nothing
///   coordinator run export.toml --workers 4 one process, no RabbitMQ needed
///   coordinator serve                       long-running: drives submitted jobs
///   coordinator submit export.toml --wait   hand a job to `serve`, watch it finish
///   coordinator status [JOB]                jobs, or one job's tables and chunks
///   coordinator cancel JOB
///
/// Passwords never go in job specs: each process reads PGPASSWORD, ~/.pgpass or the variable
/// named by `source.password_env`; S3 credentials come from the AWS default chain.
#[derive(Parser, Debug)]
#[command(version, about, long_about, verbatim_doc_comment)]
struct Cli {
    #[arg(long, global = true, env = "PGFLEET_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(clap::Args, Debug, Clone)]
struct StateArgs {
    /// PostgreSQL URL of the coordinator's state database (`serve` creates it if missing).
    #[arg(
        long,
        env = "PGFLEET_STATE_URL",
        default_value = "postgresql://postgres@127.0.0.1:5432/pgfleet_state",
        hide_env_values = true
    )]
    state_url: String,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run submitted jobs: plan, publish tasks to RabbitMQ, collect results. Restart-safe.
    Serve {
        #[command(flatten)]
        state: StateArgs,
        #[command(flatten)]
        amqp: fleet_io::amqp::AmqpArgs,
        /// Seconds a published task may go without a result before it is published again as
        /// the next attempt (a worker that hangs while its broker connection lives). Set it
        /// above your slowest chunk; 0 never republishes.
        #[arg(
            long,
            env = "PGFLEET_TASK_STALL_TIMEOUT",
            default_value_t = 3600,
            value_name = "SECONDS"
        )]
        task_stall_timeout: u64,
        /// Queue-name namespace; workers must use the same one.
        #[arg(long, env = "PGFLEET_NAMESPACE", default_value = protocol::topology::DEFAULT_NAMESPACE)]
        namespace: String,
        /// Address for /metrics and /healthz (loopback by default; any other address needs
        /// --metrics-token-file or --metrics-public).
        #[arg(long, env = "PGFLEET_METRICS_ADDR", default_value = "127.0.0.1:9180")]
        metrics_addr: SocketAddr,
        #[command(flatten)]
        metrics_auth: fleet_io::http::MetricsAuthArgs,
        /// Publish the task backlog to CloudWatch (metric pgfleet/TaskBacklog, dimension
        /// Namespace) for the Auto Scaling policy in deploy/aws. AWS credentials and region
        /// come from the default chain.
        #[arg(long, env = "PGFLEET_CLOUDWATCH_BACKLOG")]
        cloudwatch_backlog: bool,
        /// Seconds between CloudWatch datapoints.
        #[arg(long, env = "PGFLEET_CLOUDWATCH_INTERVAL", default_value_t = 60)]
        cloudwatch_interval: u64,
        /// Custom CloudWatch endpoint (a VPC endpoint, or an emulator).
        #[arg(long, env = "PGFLEET_CLOUDWATCH_ENDPOINT")]
        cloudwatch_endpoint: Option<String>,
        /// RabbitMQ management API, for unacknowledged task counts (AMQP reports only ready
        /// ones): http://127.0.0.1:15672, or Amazon MQ's https://b-….mq.REGION.amazonaws.com.
        /// Credentials from this URL, else the AMQP URL's (the user needs the `monitoring`
        /// tag). Without it, unacknowledged = tasks published without a result yet, minus ready.
        #[arg(long, env = "PGFLEET_RABBITMQ_API_URL", hide_env_values = true)]
        rabbitmq_api_url: Option<String>,
    },
    /// Submit a job spec (TOML) to `coordinator serve`; prints the job id.
    Submit {
        spec: PathBuf,
        /// Wait for the job to finish, showing progress; exit 0 only if it succeeded.
        #[arg(long)]
        wait: bool,
        #[command(flatten)]
        state: StateArgs,
    },
    /// Show recent jobs, or one job's tables: chunks done / in flight / failed, rows, bytes.
    Status {
        job: Option<String>,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        state: StateArgs,
    },
    /// Stop a job: nothing more is published; tasks already queued finish and are ignored.
    Cancel {
        job: String,
        #[command(flatten)]
        state: StateArgs,
    },
    /// Run a job in this process with in-process workers (no RabbitMQ, no state database).
    Run {
        spec: PathBuf,
        /// Workers (concurrent chunks) in this process; the source's max_in_flight still applies.
        #[arg(long, env = "PGFLEET_WORKERS", default_value_t = 4)]
        workers: usize,
        /// On SIGINT/SIGTERM: seconds the running pieces get to finish before they are aborted
        /// (rolled back); then a restore puts back what it dropped and the process exits.
        #[arg(
            long,
            env = "PGFLEET_STOP_TIMEOUT",
            default_value_t = 30,
            value_name = "SECONDS"
        )]
        stop_timeout: u64,
    },
    /// Put back what interrupted restores left changed in a target (foreign keys and indexes
    /// they dropped, recorded in its pgfleet_restore.pending_changes), without loading anything.
    /// Changes of a restore still running are left to it. Exit 0 when nothing is left pending.
    Repair {
        /// A restore job spec whose [target] to repair (or use --target).
        #[arg(required_unless_present = "target", conflicts_with = "target")]
        spec: Option<PathBuf>,
        /// Target database URL, postgresql://user@host:port/db (password from PGPASSWORD or
        /// ~/.pgpass, never in the URL).
        #[arg(long, value_name = "URL")]
        target: Option<String>,
        /// Only list what is pending; change nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// Check that this machine reaches everything a job spec needs, one line per check: the
    /// state database, RabbitMQ (and its management API when given), the source (export) or
    /// the target (restore), and the object store (export: put and delete one small object
    /// under the output prefix; restore: read the export's metadata). Creates nothing else.
    /// Exit 0 when no check failed, 1 when one did.
    #[command(
        after_help = "Example:\n  coordinator check export.toml\n  coordinator check restore.toml --local"
    )]
    Check {
        /// The job spec (TOML) whose connections to check.
        spec: PathBuf,
        /// Only what `coordinator run` needs: the source/target and the object store (no state
        /// database, no RabbitMQ).
        #[arg(long)]
        local: bool,
        /// Seconds each check may take (the export's listing three times this).
        #[arg(
            long,
            env = "PGFLEET_CHECK_TIMEOUT",
            default_value_t = 10,
            value_name = "SECONDS"
        )]
        timeout: u64,
        #[command(flatten)]
        state: StateArgs,
        #[command(flatten)]
        amqp: fleet_io::amqp::AmqpArgs,
        /// RabbitMQ management API to check too (one GET of its overview), as given to
        /// `serve`: http://127.0.0.1:15672. Credentials from this URL, else the AMQP URL's.
        #[arg(long, env = "PGFLEET_RABBITMQ_API_URL", hide_env_values = true)]
        rabbitmq_api_url: Option<String>,
    },
    /// Plan a job and print its tables and chunks without running anything.
    Plan {
        spec: PathBuf,
        #[arg(long)]
        json: bool,
    },
}

fn main() -> ExitCode {
    // `coordinator run` moves data in this process, like a worker.
    fleet_io::allocator::limit_malloc_arenas();
    match tokio::runtime::Runtime::new() {
        Ok(rt) => rt.block_on(run()),
        Err(e) => {
            logging::fatal(&format!("cannot start the async runtime: {e}"));
            ExitCode::FAILURE
        }
    }
}

async fn run() -> ExitCode {
    let cli = Cli::parse();
    // `check` reports every failure in its own lines; library logs would only repeat them.
    let quiet = matches!(cli.command, Command::Check { .. });
    logging::init_with(
        cli.log_format,
        if quiet {
            logging::QUIET_FILTER
        } else {
            logging::DEFAULT_FILTER
        },
    );
    let result = match cli.command {
        Command::Serve {
            state,
            amqp,
            task_stall_timeout,
            namespace,
            metrics_addr,
            metrics_auth,
            cloudwatch_backlog,
            cloudwatch_interval,
            cloudwatch_endpoint,
            rabbitmq_api_url,
        } => {
            let metrics_access = match metrics_auth.access(metrics_addr) {
                Ok(a) => a,
                Err(e) => {
                    logging::fatal(&e.to_string());
                    return ExitCode::from(2);
                }
            };
            let cloudwatch = cloudwatch_backlog.then(|| commands::serve::CloudWatchOptions {
                every: std::time::Duration::from_secs(cloudwatch_interval.max(1)),
                endpoint: cloudwatch_endpoint,
            });
            let ca_pem = match amqp.apply() {
                Ok(pem) => pem,
                Err(e) => {
                    logging::fatal(&e.to_string());
                    return ExitCode::from(2);
                }
            };
            let rabbitmq_api = match rabbitmq_api_url
                .as_deref()
                .map(|u| {
                    coordinator::broker::rabbitmq_api::ManagementApi::new(
                        u,
                        &amqp.amqp_url,
                        ca_pem.as_deref(),
                    )
                })
                .transpose()
            {
                Ok(api) => api,
                Err(e) => {
                    logging::fatal(&format!("{e:#}"));
                    return ExitCode::from(2);
                }
            };
            match protocol::topology::Topology::new(&namespace) {
                Ok(t) => {
                    commands::serve::run(
                        &state.state_url,
                        &amqp.amqp_url,
                        t,
                        (metrics_addr, metrics_access),
                        cloudwatch,
                        rabbitmq_api,
                        (task_stall_timeout > 0)
                            .then(|| std::time::Duration::from_secs(task_stall_timeout)),
                    )
                    .await
                }
                Err(e) => Err(anyhow::anyhow!(e)),
            }
        }
        Command::Submit { spec, wait, state } => {
            commands::submit::run(&spec, wait, &state.state_url).await
        }
        Command::Status { job, json, state } => {
            commands::status::run(job.as_deref(), json, &state.state_url).await
        }
        Command::Cancel { job, state } => commands::status::cancel(&job, &state.state_url).await,
        Command::Run {
            spec,
            workers,
            stop_timeout,
        } => commands::run::run(&spec, workers, std::time::Duration::from_secs(stop_timeout)).await,
        Command::Repair {
            spec,
            target,
            dry_run,
        } => commands::repair::run(spec.as_deref(), target.as_deref(), dry_run).await,
        Command::Plan { spec, json } => commands::plan::run(&spec, json).await,
        Command::Check {
            spec,
            local,
            timeout,
            state,
            amqp,
            rabbitmq_api_url,
        } => {
            commands::check::run(commands::check::CheckArgs {
                spec: &spec,
                local,
                state_url: &state.state_url,
                amqp: &amqp,
                rabbitmq_api_url: rabbitmq_api_url.as_deref(),
                timeout: std::time::Duration::from_secs(timeout),
            })
            .await
        }
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            logging::fatal(&format!("{e:#}"));
            ExitCode::FAILURE
        }
    }
}
