//! What both binaries' command lines share: logging and S3 timeout options, the environment
//! variables read outside clap (listed in `--help`), and shell completions and man pages.

use crate::logging::LogFormat;
use clap::builder::styling::{AnsiColor, Styles};
use std::time::Duration;

/// Options every command of both binaries takes (flattened with `global = true`).
#[derive(clap::Args, Debug, Clone)]
pub struct CommonArgs {
    /// Log format on stderr: text (for people) or json (one object per line, for log
    /// pipelines; the error that ends the process is a JSON line too).
    #[arg(long, global = true, env = "PGFLEET_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    /// More log output: -v debug, -vv trace. Wins over RUST_LOG.
    #[arg(short, long, global = true, action = clap::ArgAction::Count, conflicts_with = "quiet")]
    pub verbose: u8,
    /// Less log output: -q warnings and errors, -qq errors only, -qqq none. Wins over RUST_LOG.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub quiet: u8,
    /// Longest one attempt of an S3 request may take to send its body and get the response,
    /// and longest a response body may go without data; a slower attempt is abandoned and
    /// retried like a 5xx. Raise it for very large parts on slow links. Seconds, in (0, 86400].
    #[arg(
        long,
        global = true,
        env = "PGFLEET_S3_ATTEMPT_TIMEOUT",
        default_value = "120",
        value_name = "SECONDS",
        value_parser = parse_attempt_timeout
    )]
    pub s3_attempt_timeout: Duration,
}

impl CommonArgs {
    /// Set up logging (`default_filter` unless RUST_LOG or -v/-q say otherwise, e.g.
    /// [`crate::logging::DEFAULT_FILTER`]) and the S3 timeout; an error is a bad setting
    /// (exit 2).
    pub fn apply(&self, default_filter: &str) -> Result<(), String> {
        let verbosity = i8::try_from(self.verbose).unwrap_or(i8::MAX)
            - i8::try_from(self.quiet).unwrap_or(i8::MAX);
        let explicit = self.verbose > 0 || self.quiet > 0;
        crate::logging::init(
            self.log_format,
            explicit.then_some(verbosity),
            default_filter,
        )?;
        crate::clients::set_s3_attempt_timeout(self.s3_attempt_timeout);
        Ok(())
    }
}

fn parse_attempt_timeout(s: &str) -> Result<Duration, String> {
    match s.trim().parse::<f64>() {
        Ok(v) if v.is_finite() && v > 0.0 && v <= 86_400.0 => Ok(Duration::from_secs_f64(v)),
        _ => Err(format!(
            "{s:?} is not a number of seconds in (0, 86400] (--s3-attempt-timeout, PGFLEET_S3_ATTEMPT_TIMEOUT)"
        )),
    }
}

/// The environment both binaries read besides their flags' own variables (each flag's
/// variable is shown beside it in `--help`).
pub const ENVIRONMENT: &str = "\
Environment (besides each flag's own variable, shown beside it):
  RUST_LOG                 log filter, e.g. info,pgfleet_worker=debug (default info);
                           -v/-q win over it; an invalid filter is an error
  PGPASSWORD, PGPASSFILE   database passwords (never in specs or URLs); else
                           ~/.pgpass, found through HOME
  PGHOST, PGPORT, PGUSER, PGDATABASE
                           defaults for a source or target without a URL; the user
                           falls back to USER, then LOGNAME
  PGSSLMODE, PGSSLROOTCERT TLS defaults for every PostgreSQL connection
  AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN, AWS_REGION, AWS_PROFILE,
  AWS_ENDPOINT_URL         S3 credentials and region: the AWS default chain (also
                           ~/.aws/config, EC2/ECS roles)
  MALLOC_ARENA_MAX         glibc malloc arenas; unset, pgfleet uses 2 (a smaller RSS)
  HOSTNAME                 part of the default process name when /proc has none
  A job spec's password_env names one more variable, read by each process that connects.";

/// Help colours: the same in both binaries.
pub fn styles() -> Styles {
    Styles::styled()
        .header(AnsiColor::Yellow.on_default().bold())
        .usage(AnsiColor::Yellow.on_default().bold())
        .literal(AnsiColor::Green.on_default())
        .placeholder(AnsiColor::Cyan.on_default())
}

/// Shells `completions` writes scripts for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Shell {
    Bash,
    Zsh,
    Fish,
}

/// Write `cmd`'s completion script for `shell` to stdout.
pub fn write_completions(shell: Shell, cmd: &mut clap::Command) -> std::io::Result<()> {
    let name = cmd.get_name().to_string();
    let mut out = Vec::new();
    match shell {
        Shell::Bash => clap_complete::generate(clap_complete::Shell::Bash, cmd, name, &mut out),
        Shell::Zsh => clap_complete::generate(clap_complete::Shell::Zsh, cmd, name, &mut out),
        Shell::Fish => clap_complete::generate(clap_complete::Shell::Fish, cmd, name, &mut out),
    }
    write_stdout(&out)
}

/// Write `cmd`'s man page (roff) to stdout: `coordinator man > coordinator.1`.
pub fn write_man_page(cmd: clap::Command) -> std::io::Result<()> {
    let mut out = Vec::new();
    clap_mangen::Man::new(cmd).render(&mut out)?;
    write_stdout(&out)
}

/// All of `bytes` to stdout; a reader that went away (`| head`) is not an error.
fn write_stdout(bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    match out.write_all(bytes).and_then(|()| out.flush()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        r => r,
    }
}

/// Every argument of `cmd` and its subcommands has help text, and every subcommand an
/// example (`after_help`): the rule both binaries' tests check.
pub fn undocumented(cmd: &clap::Command) -> Vec<String> {
    let mut missing = Vec::new();
    walk(cmd, cmd.get_name(), true, &mut missing);
    missing
}

fn walk(cmd: &clap::Command, path: &str, top: bool, missing: &mut Vec<String>) {
    for a in cmd.get_arguments() {
        let id = a.get_id().as_str();
        if matches!(id, "help" | "version") {
            continue;
        }
        if a.get_help().is_none() && a.get_long_help().is_none() {
            missing.push(format!("{path}: argument {id} has no help"));
        }
    }
    if !top && cmd.get_after_help().is_none() && cmd.get_after_long_help().is_none() {
        missing.push(format!("{path}: no example (after_help)"));
    }
    for sub in cmd.get_subcommands() {
        if sub.get_name() == "help" {
            continue;
        }
        walk(sub, &format!("{path} {}", sub.get_name()), false, missing);
    }
}
