//! `coordinator`: plan pgfleet jobs, publish their tasks, track them to completion.

use clap::{CommandFactory, Parser, Subcommand};
use coordinator::commands;
use fleet_io::logging;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

/// pgfleet moves PostgreSQL tables between a database and S3 with a fleet of workers fed by
/// RabbitMQ: export (tables to CSV or Parquet on S3) and restore (an RDS/Aurora snapshot
/// export, or pgfleet's own, into an existing database, in foreign-key order).
///
/// Quick tour:
///   coordinator validate job.toml           check a spec offline, every problem at once
///   coordinator check job.toml              reach every server and bucket the job needs?
///   coordinator plan job.toml               show tables and chunks (or waves), touch nothing
///   coordinator run job.toml --workers 4    one process, no RabbitMQ needed
///   coordinator serve                       long-running: drives submitted jobs
///   coordinator submit job.toml --wait      hand a job to `serve`, watch it finish
///   coordinator status [JOB] [--watch]      jobs, or one job's tables and chunks
///   coordinator wait JOB                    follow a job submitted earlier; exit 0 if it succeeded
///   coordinator cancel JOB
///   coordinator repair restore.toml         put back what an interrupted restore dropped
///
/// Passwords never go in job specs: each process reads PGPASSWORD, ~/.pgpass or the variable
/// named by `source.password_env`; S3 credentials come from the AWS default chain.
#[derive(Parser, Debug)]
#[command(
    name = "coordinator",
    version,
    about = "Export PostgreSQL tables to S3, and restore RDS snapshot exports or pgfleet's own into PostgreSQL, with a RabbitMQ-fed worker fleet.",
    long_about,
    verbatim_doc_comment,
    styles = fleet_io::cli::styles(),
    after_long_help = fleet_io::cli::ENVIRONMENT
)]
struct Cli {
    #[command(flatten)]
    common: fleet_io::cli::CommonArgs,
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
    #[command(
        after_help = "Example:\n  PGFLEET_AMQP_URL=amqp://pgfleet@mq.internal:5672/%2f coordinator serve --rabbitmq-api-url http://mq.internal:15672"
    )]
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
    #[command(
        after_help = "Examples:\n  coordinator submit export.toml --wait\n  JOB=$(coordinator submit restore.toml) && coordinator status \"$JOB\""
    )]
    Submit {
        /// Job spec (TOML); `${VAR}` in its values is taken from this environment.
        spec: PathBuf,
        /// Wait for the job to finish, showing progress; exit 0 only if it succeeded.
        #[arg(long)]
        wait: bool,
        /// Wait (implies --wait), then run `coordinator verify` on the job: a difference fails
        /// the job (state failed, exit 1).
        #[arg(long)]
        verify: bool,
        #[command(flatten)]
        state: StateArgs,
    },
    /// Show recent jobs, or one job's tables: chunks done / in flight / failed, rows, bytes.
    ///
    /// With --watch: JOB is followed until it ends, as `submit --wait` shows it (exit 0 if it
    /// succeeded, 1 if it failed or was cancelled); the list is refreshed until no job is
    /// submitted or running. --json prints a versioned document ("version": 1; see README).
    #[command(after_help = "Examples:\n  \
        coordinator status\n  \
        coordinator status --state running,failed --limit 10\n  \
        coordinator status j-3f9a1c2b7d --json\n  \
        coordinator status --watch j-3f9a1c2b7d\n  \
        coordinator status --watch --interval 5")]
    Status {
        /// A job id (`j-…`, as `submit` printed it): show that job and its tables.
        job: Option<String>,
        /// Print JSON instead of a table (a document with "version": 1).
        #[arg(long, conflicts_with = "watch")]
        json: bool,
        /// List only jobs in this state; repeat the flag or separate states with commas.
        #[arg(
            long = "state",
            value_name = "STATE",
            value_enum,
            value_delimiter = ',',
            conflicts_with = "job"
        )]
        states: Vec<commands::status::StateArg>,
        /// List at most N jobs, the newest first.
        #[arg(
            long,
            value_name = "N",
            default_value_t = 50,
            value_parser = clap::value_parser!(u32).range(1..),
            conflicts_with = "job"
        )]
        limit: u32,
        /// Keep refreshing: JOB until it ends (its outcome is the exit status), the list until
        /// no job is submitted or running.
        #[arg(long)]
        watch: bool,
        /// Seconds between refreshes of the watched list (a watched job follows its changes).
        #[arg(
            long,
            value_name = "SECONDS",
            default_value = "2",
            value_parser = commands::status::parse_interval,
            requires = "watch"
        )]
        interval: std::time::Duration,
        #[command(flatten)]
        state: StateArgs,
    },
    /// Wait for a job submitted earlier to end, showing its progress as `submit --wait` does.
    ///
    /// Exit status: 0 the job succeeded; 1 it failed or was cancelled, or there is no such job
    /// (or the state database cannot be read; the message says which).
    #[command(after_help = "Examples:\n  \
        id=$(coordinator submit export.toml)\n  \
        coordinator wait \"$id\" && echo exported")]
    Wait {
        /// The job id `submit` printed (`coordinator status` lists them).
        job: String,
        #[command(flatten)]
        state: StateArgs,
    },
    /// Stop a job: nothing more is published; tasks already queued finish and are ignored.
    #[command(after_help = "Example:\n  coordinator cancel j-3f9a1c2b7d")]
    Cancel {
        /// The job id (`j-…`).
        job: String,
        #[command(flatten)]
        state: StateArgs,
    },
    /// Run a job in this process with in-process workers (no RabbitMQ, no state database).
    #[command(
        after_help = "Examples:\n  coordinator run export.toml --workers 4\n  RUN_DATE=$(date +%F) coordinator run nightly.toml   # url = \"s3://b/${RUN_DATE}/\""
    )]
    Run {
        /// Job spec (TOML); `${VAR}` in its values is taken from this environment.
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
        /// After the job succeeds, run `coordinator verify` on it: a difference fails the run
        /// (exit 1).
        #[arg(long)]
        verify: bool,
    },
    /// Put back what interrupted restores left changed in a target, loading nothing.
    ///
    /// The foreign keys and indexes they dropped are recorded in the target's
    /// pgfleet_restore.pending_changes before they are dropped. Changes of a restore still
    /// running are left to it. Exit 0 when nothing is left pending.
    #[command(
        after_help = "Examples:\n  coordinator repair restore.toml --dry-run\n  coordinator repair --target postgresql://admin@db.internal:5432/shop"
    )]
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
    /// Check that this machine reaches everything a job spec needs.
    ///
    /// One line per check: the state database, RabbitMQ (and its management API when given), the source (export) or
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
    /// Check job specs offline, every problem at once.
    ///
    /// No network: TOML syntax, types, unknown keys, values and `${VAR}` interpolation, each
    /// problem with its line and key path. Exit 0 when every spec is valid, 78 when one is
    /// not, 2 on a usage error.
    #[command(
        after_help = "Examples:\n  coordinator validate export.toml\n  coordinator validate deploy/examples/*.toml --json"
    )]
    Validate {
        /// Job spec files (TOML).
        #[arg(required = true, value_name = "SPEC")]
        specs: Vec<PathBuf>,
        /// Print one JSON report: {"version": 1, "valid": …, "specs": [{"path", "valid",
        /// "kind", "name", "spec" (as read, ${VAR} interpolated), "problems": [{"line",
        /// "column", "key", "message"}]}]}.
        #[arg(long)]
        json: bool,
    },
    /// Prove a finished job's data: per table OK or DIFFERENT, and what differs where.
    ///
    /// Export: every part its `_manifest.json` lists is read back (streamed) and checked for
    /// size, CRC32C and row count; objects no manifest lists are reported (parts of an earlier
    /// run as stale, not failures). With --source, each part's rows are read again from the
    /// source (READ ONLY, the COPY the manifest records, at most [source] max_in_flight at
    /// once) and their fingerprint compared: meaningful only if the source has not changed
    /// since (a consistent-snapshot export of a quiet replica, or a static table).
    ///
    /// Restore: per table, the target's rows against the export's, compared by PostgreSQL on
    /// the target (the export's rows are parsed there, into a temporary table, a piece at a
    /// time), so text forms such as jsonb key order or time zones cannot differ falsely; a
    /// difference is named by its primary-key range. At most [target] max_connections at once.
    ///
    /// Exit 0 when everything matches, 1 when something differs, 2 when the verification
    /// could not run.
    #[command(
        after_help = "Examples:\n  coordinator verify export.toml\n  coordinator verify export.toml --source\n  coordinator verify restore.toml --json | jq '.tables[] | select(.status != \"OK\")'\n  coordinator verify j-3f9a1c2b7d"
    )]
    Verify {
        /// A job spec (TOML), or the id of a job in the state database (`j-…`).
        #[arg(value_name = "SPEC|JOB")]
        what: String,
        /// Export: also read the source again and compare each part's fingerprint.
        #[arg(long)]
        source: bool,
        /// Print one JSON report: {"version": 1, "kind", "export", "ok", "tables": [{"table",
        /// "status" (OK|DIFFERENT), "rows", "expected_rows", "findings": [{"kind", "part",
        /// "message"}], "stale"}]}.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        state: StateArgs,
    },
    /// Show what a job would do, without doing it.
    ///
    /// Export: tables, keys and chunks (reads the source catalog only). Restore: waves, tables
    /// and files, and every problem found between the export and the target (reads only).
    #[command(
        after_help = "Examples:\n  coordinator plan export.toml\n  coordinator plan restore.toml --json | jq '.waves'"
    )]
    Plan {
        /// Job spec (TOML); `${VAR}` in its values is taken from this environment.
        spec: PathBuf,
        /// Print the plan as JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Print a shell completion script: source it, or install it where your shell looks.
    #[command(
        after_help = "Examples:\n  coordinator completions bash > /etc/bash_completion.d/coordinator\n  coordinator completions zsh > \"${fpath[1]}/_coordinator\"\n  coordinator completions fish > ~/.config/fish/completions/coordinator.fish"
    )]
    Completions {
        /// The shell to complete in.
        #[arg(value_enum)]
        shell: fleet_io::cli::Shell,
    },
    /// Print the man page (roff).
    #[command(
        after_help = "Example:\n  coordinator man > /usr/local/share/man/man1/coordinator.1 && man coordinator"
    )]
    Man,
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
    let default_filter = if matches!(cli.command, Command::Check { .. } | Command::Verify { .. }) {
        logging::QUIET_FILTER
    } else {
        logging::DEFAULT_FILTER
    };
    if let Err(e) = cli.common.apply(default_filter) {
        logging::fatal(&e);
        return ExitCode::from(2);
    }
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
        Command::Submit {
            spec,
            wait,
            verify,
            state,
        } => commands::submit::run(&spec, wait, verify, &state.state_url).await,
        Command::Status {
            job,
            json,
            states,
            limit,
            watch,
            interval,
            state,
        } => {
            let opts = commands::status::Options {
                job: job.as_deref(),
                json,
                states: &states,
                limit,
                watch: watch.then_some(interval),
            };
            commands::status::run(&opts, &state.state_url).await
        }
        Command::Wait { job, state } => commands::wait::run(&job, &state.state_url).await,
        Command::Cancel { job, state } => commands::status::cancel(&job, &state.state_url).await,
        Command::Run {
            spec,
            workers,
            stop_timeout,
            verify,
        } => {
            commands::run::run(
                &spec,
                workers,
                std::time::Duration::from_secs(stop_timeout),
                verify,
            )
            .await
        }
        Command::Repair {
            spec,
            target,
            dry_run,
        } => commands::repair::run(spec.as_deref(), target.as_deref(), dry_run).await,
        Command::Plan { spec, json } => commands::plan::run(&spec, json).await,
        Command::Verify {
            what,
            source,
            json,
            state,
        } => {
            commands::verify::run(commands::verify::VerifyArgs {
                what: &what,
                source,
                json,
                state_url: &state.state_url,
            })
            .await
        }
        Command::Validate { specs, json } => Ok(commands::validate::run(&specs, json)),
        Command::Completions { shell } => {
            let mut cmd = Cli::command();
            fleet_io::cli::write_completions(shell, &mut cmd)
                .map(|()| ExitCode::SUCCESS)
                .map_err(Into::into)
        }
        Command::Man => fleet_io::cli::write_man_page(Cli::command())
            .map(|()| ExitCode::SUCCESS)
            .map_err(Into::into),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_command_line_is_consistent_and_documented() {
        Cli::command().debug_assert();
        let missing = fleet_io::cli::undocumented(&Cli::command());
        assert!(missing.is_empty(), "{missing:#?}");
    }
}
