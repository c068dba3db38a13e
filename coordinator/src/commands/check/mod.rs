//! `coordinator check SPEC`: can this machine reach everything the job needs? Like pgcopydb
//! `ping` or Sling `conns test`: it connects, touches as little as it can, and prints one line
//! per check, in a fixed order:
//!
//! 1. the state database (not with `--local`): reachable, and whether `serve` has set it up.
//!    Nothing is created: a reachable server without the database or its schema is OK, with a
//!    note (`serve` creates them when it starts); an unreachable one fails;
//! 2. RabbitMQ (not with `--local`): an AMQP connection and a channel;
//! 3. the RabbitMQ management API, when `--rabbitmq-api-url` is given: one GET of its overview;
//! 4. export: the source, in a READ ONLY transaction as every source session is;
//!    restore: the target, writable and not a hot standby;
//! 5. export: the output, with a write probe (one small object put under the output prefix
//!    and deleted again); restore: the export's metadata (its listing and metadata files, not
//!    the Parquet footers `coordinator plan` reads), with the tables and files found.
//!
//! A line is `OK`, `WARN` (works, but look: e.g. the probe object could not be deleted) or
//! `FAIL` (what failed — what to do). Checks run concurrently, each bounded by `--timeout`
//! (the export listing, which grows with the export, by three times that). Exit 0 when nothing
//! failed (warnings included), 1 when something did, 2 for a bad `--amqp-ca-file` or
//! `--rabbitmq-api-url`. Endpoints show as `host:port/db`: no line carries a password.

mod database;
mod objects;
mod services;
mod text;

// One namespace for the checks: each module uses its siblings' helpers through `super::*`.
use database::*;
use objects::*;
use services::*;
use text::*;

use super::load_spec;
use crate::broker::rabbitmq_api::ManagementApi;
use crate::export::source::SourceTxn;
use crate::rds;
use crate::store::{PgStore, StateDbStatus};
use anyhow::Result;
use bytes::Bytes;
use fleet_io::amqp::{self, AmqpArgs};
use fleet_io::clients::Clients;
use fleet_io::pg::PgTls;
use protocol::spec::{url_endpoint, ExportSpec, RestoreSpec};
use protocol::{JobSpec, ObjectLocation, PgConn};
use std::future::Future;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

/// What `coordinator check` was given on the command line.
pub struct CheckArgs<'a> {
    pub spec: &'a Path,
    /// Only what `coordinator run` needs: skip the state database and RabbitMQ.
    pub local: bool,
    pub state_url: &'a str,
    pub amqp: &'a AmqpArgs,
    pub rabbitmq_api_url: Option<&'a str>,
    /// Bound on each check.
    pub timeout: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Status {
    Ok,
    Warn,
    Fail,
}

/// What one check found: its status and the text after the label.
type Outcome = (Status, String);

/// One line of the report.
struct Line {
    status: Status,
    label: String,
    detail: String,
}

impl Line {
    fn show(&self) -> String {
        let tag = match self.status {
            Status::Ok => "OK",
            Status::Warn => "WARN",
            Status::Fail => "FAIL",
        };
        format!("{tag:<4}  {}: {}", self.label, self.detail)
    }
}

fn ok(detail: impl Into<String>) -> Outcome {
    (Status::Ok, detail.into())
}

fn fail(detail: impl Into<String>) -> Outcome {
    (Status::Fail, detail.into())
}

pub async fn run(args: CheckArgs<'_>) -> Result<ExitCode> {
    let spec = load_spec(args.spec)?;
    // RabbitMQ's settings matter only when it is checked.
    let ca_pem = match (!args.local).then(|| args.amqp.apply()).transpose() {
        Ok(pem) => pem.flatten(),
        Err(e) => return Ok(usage_error(&format!("{e:#}"))),
    };
    let api = match args
        .rabbitmq_api_url
        .filter(|_| !args.local)
        .map(|u| ManagementApi::new(u, &args.amqp.amqp_url, ca_pem.as_deref()))
        .transpose()
    {
        Ok(api) => api,
        Err(e) => return Ok(usage_error(&format!("{e:#}"))),
    };
    let ctx = Clients::new("coordinator-check");
    let limit = args.timeout.max(Duration::from_secs(1));
    let fleet = async {
        if args.local {
            return Vec::new();
        }
        let (state, broker, api) = tokio::join!(
            state_db(args.state_url, limit),
            rabbitmq(&args.amqp.amqp_url, limit),
            async {
                match &api {
                    Some(api) => Some(management_api(api, limit).await),
                    None => None,
                }
            }
        );
        [Some(state), Some(broker), api]
            .into_iter()
            .flatten()
            .collect()
    };
    let data = async {
        match &spec {
            JobSpec::Export(e) => {
                let (a, b) = tokio::join!(source(e, args.spec, limit), output(&ctx, e, limit));
                vec![a, b]
            }
            JobSpec::Restore(r) => {
                let (a, b) = tokio::join!(target(r, args.spec, limit), export(&ctx, r, limit));
                vec![a, b]
            }
        }
    };
    let (fleet, data) = tokio::join!(fleet, data);
    let lines: Vec<Line> = fleet.into_iter().chain(data).collect();
    Ok(report(&lines))
}

fn usage_error(message: &str) -> ExitCode {
    fleet_io::logging::fatal(message);
    ExitCode::from(2)
}

/// Print the lines and the verdict; the exit code.
fn report(lines: &[Line]) -> ExitCode {
    for line in lines {
        crate::outln!("{}", line.show());
    }
    let count = |s: Status| lines.iter().filter(|l| l.status == s).count();
    let (failed, warned) = (count(Status::Fail), count(Status::Warn));
    if failed > 0 {
        crate::errln!("error: {failed} of {} check(s) failed", lines.len());
        return ExitCode::FAILURE;
    }
    match warned {
        0 => crate::outln!("all {} check(s) passed", lines.len()),
        w => crate::outln!("all {} check(s) passed, {w} with a warning", lines.len()),
    }
    ExitCode::SUCCESS
}

/// Run one check under `limit`; a check that takes longer fails with `on_timeout` as advice.
async fn bounded(
    label: String,
    limit: Duration,
    on_timeout: &str,
    check: impl Future<Output = Outcome>,
) -> Line {
    let (status, detail) = match tokio::time::timeout(limit, check).await {
        Ok(outcome) => outcome,
        Err(_) => fail(format!(
            "no answer within {}s — is a firewall dropping the connection? {on_timeout}",
            limit.as_secs()
        )),
    };
    Line {
        status,
        label,
        detail,
    }
}

// ---- state database ------------------------------------------------------------------------

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn network_failures_read_in_a_few_words() {
        assert_eq!(
            network_cause("IO error: Connection refused (os error 111)"),
            Some("connection refused")
        );
        assert_eq!(
            network_cause("failed to lookup address information: Name or service not known"),
            Some("host name not found")
        );
        assert_eq!(network_cause("ACCESS_REFUSED - Login was refused"), None);
    }

    #[test]
    fn postgres_failures_drop_the_endpoint_and_say_what_to_do() {
        let line = pg_failure(
            "127.0.0.1:5433: error connecting to server: Connection refused (os error 111)",
            Some("127.0.0.1:5433"),
            STATE_FIX,
        );
        assert_eq!(
            line,
            "connection refused — is PostgreSQL running there? set --state-url / PGFLEET_STATE_URL"
        );
        let line = pg_failure(
            "127.0.0.1:5432: 3D000: database \"nope\" does not exist",
            Some("127.0.0.1:5432"),
            "check [source] url",
        );
        assert_eq!(
            line,
            "3D000: database \"nope\" does not exist — check the database name; check [source] url"
        );
    }

    #[test]
    fn object_store_advice_follows_the_error_code() {
        let s3 = ObjectLocation::S3 {
            bucket: "b".into(),
            prefix: "p/".into(),
        };
        assert!(
            object_store_advice(&s3, "S3 PutObject failed: NoSuchBucket (HTTP 404)")
                .contains("bucket b does not exist")
        );
        assert!(
            object_store_advice(&s3, "S3 PutObject failed: SignatureDoesNotMatch (HTTP 403)")
                .contains("AWS credentials")
        );
    }
}
