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

const STATE_FIX: &str = "set --state-url / PGFLEET_STATE_URL";

async fn state_db(url: &str, limit: Duration) -> Line {
    let endpoint = fleet_io::pg::url_config(url, "the state database URL")
        .ok()
        .map(|(cfg, _)| pg_endpoint(&cfg));
    let label = match &endpoint {
        Some(e) => format!("state database {e}"),
        None => "state database".to_string(),
    };
    let check = async {
        match PgStore::probe(url).await {
            Ok(StateDbStatus::Ready { server_version }) => {
                ok(format!(
                    "pgfleet schema present (PostgreSQL {})",
                    short_version(&server_version)
                ))
            }
            Ok(StateDbStatus::NoSchema { server_version }) => ok(format!(
                "reachable (PostgreSQL {}); no pgfleet schema yet: `coordinator serve` creates it when it starts",
                short_version(&server_version)
            )),
            Ok(StateDbStatus::NoDatabase) => ok(
                "reachable; the database does not exist yet: `coordinator serve` creates it when it starts (its role needs CREATEDB)",
            ),
            Err(e) => fail(pg_failure(
                &format!("{e:#}"),
                endpoint.as_deref(),
                STATE_FIX,
            )),
        }
    };
    bounded(label, limit, STATE_FIX, check).await
}

// ---- RabbitMQ ------------------------------------------------------------------------------

const AMQP_FIX: &str = "set --amqp-url / PGFLEET_AMQP_URL";
const API_FIX: &str = "set --rabbitmq-api-url / PGFLEET_RABBITMQ_API_URL";

async fn rabbitmq(url: &str, limit: Duration) -> Line {
    let label = format!("rabbitmq {}", url_endpoint(url));
    let check = async {
        let conn = match amqp::connect(url, "pgfleet-check").await {
            Ok(c) => c,
            Err(e) => return fail(amqp_failure(&fleet_io::error::chain(&e))),
        };
        let outcome = match conn.create_channel().await {
            Ok(_) => ok("connected, channel opened"),
            Err(e) => fail(amqp_failure(&fleet_io::error::chain(&e))),
        };
        let _ = conn.close(200, "coordinator check done".into()).await;
        outcome
    };
    bounded(label, limit, AMQP_FIX, check).await
}

fn amqp_failure(text: &str) -> String {
    if let Some(cause) = network_cause(text) {
        return format!("{cause} — is RabbitMQ running there? {AMQP_FIX}");
    }
    // The broker's own words come last: "… NOT_ALLOWED - vhost x not found".
    let said = |code: &str| {
        text.rsplit_once(&format!("{code} - "))
            .map(|(_, rest)| rest.trim_end_matches('.').to_string())
    };
    if text.contains("ACCESS_REFUSED") {
        return format!(
            "login refused (ACCESS_REFUSED) — check the user and password in the URL; {AMQP_FIX}"
        );
    }
    if let Some(reason) = said("NOT_ALLOWED") {
        return format!(
            "{reason} (NOT_ALLOWED) — check the vhost (the URL's path) and the user's permissions on it; {AMQP_FIX}"
        );
    }
    format!("{text} — {AMQP_FIX}")
}

async fn management_api(api: &ManagementApi, limit: Duration) -> Line {
    let shown = api.describe();
    let label = format!("rabbitmq api {shown}");
    let check = async {
        match api.overview().await {
            Ok(version) => ok(format!("answered (RabbitMQ {version})")),
            Err(e) => {
                let text = format!("{e:#}");
                let text = strip_endpoint(&text, &shown);
                match network_cause(text) {
                    Some(cause) => fail(format!(
                        "{cause} — is the management plugin enabled there? {API_FIX}"
                    )),
                    None => fail(format!("{text} — {API_FIX}")),
                }
            }
        }
    };
    bounded(label, limit, API_FIX, check).await
}

// ---- source and target ---------------------------------------------------------------------

/// A database's endpoint as `host:port/db`: never a user or a password.
fn pg_endpoint(cfg: &tokio_postgres::Config) -> String {
    let servers = fleet_io::pg::connect::endpoints(cfg);
    match cfg.get_dbname() {
        Some(db) => format!("{servers}/{db}"),
        None => servers,
    }
}

/// The config of `conn` and the label `what host:port/db`; or the failed line.
fn pg_target(
    what: &str,
    conn: &PgConn,
) -> std::result::Result<(tokio_postgres::Config, PgTls, String), Line> {
    match fleet_io::pg::pg_config(conn) {
        Ok((cfg, tls)) => {
            let label = format!("{what} {}", pg_endpoint(&cfg));
            Ok((cfg, tls, label))
        }
        Err(e) => Err(Line {
            status: Status::Fail,
            label: what.to_string(),
            detail: e.message,
        }),
    }
}

async fn source(spec: &ExportSpec, path: &Path, limit: Duration) -> Line {
    let (cfg, tls, label) = match pg_target("source", &spec.source.conn()) {
        Ok(t) => t,
        Err(line) => return line,
    };
    let fix = format!(
        "check [source] url in {} (or the PG* variables)",
        path.display()
    );
    let check = async {
        let client = match fleet_io::pg::connect(&cfg, &tls).await {
            Ok(c) => c,
            Err(e) => {
                return fail(pg_failure(
                    e.message(),
                    Some(&fleet_io::pg::connect::endpoints(&cfg)),
                    &fix,
                ))
            }
        };
        let txn = match SourceTxn::begin_on(client).await {
            Ok(t) => t,
            Err(e) => return fail(format!("starting a READ ONLY transaction: {e:#}")),
        };
        let row = txn
            .client()
            .query_one(
                "SELECT current_setting('server_version'), pg_is_in_recovery()",
                &[],
            )
            .await;
        let _ = txn.commit().await;
        match row {
            Ok(row) => {
                let version: String = row.get(0);
                let role = if row.get::<_, bool>(1) {
                    "hot standby"
                } else {
                    "primary"
                };
                ok(format!(
                    "read-only session (PostgreSQL {}, {role})",
                    short_version(&version)
                ))
            }
            Err(e) => fail(format!(
                "reading the server version: {}",
                crate::store::db_message(&e)
            )),
        }
    };
    bounded(label, limit, &fix, check).await
}

async fn target(spec: &RestoreSpec, path: &Path, limit: Duration) -> Line {
    let (cfg, tls, label) = match pg_target("target", &spec.target.conn()) {
        Ok(t) => t,
        Err(line) => return line,
    };
    let fix = format!("check [target] url in {}", path.display());
    let check = async {
        let client = match fleet_io::pg::connect(&cfg, &tls).await {
            Ok(c) => c,
            Err(e) => {
                return fail(pg_failure(
                    e.message(),
                    Some(&fleet_io::pg::connect::endpoints(&cfg)),
                    &fix,
                ))
            }
        };
        let row = client
            .query_one(
                "SELECT current_setting('server_version'), pg_is_in_recovery(),
                        current_setting('transaction_read_only')",
                &[],
            )
            .await;
        match row {
            Err(e) => fail(format!(
                "reading the server version: {}",
                crate::store::db_message(&e)
            )),
            Ok(row) if row.get::<_, bool>(1) => fail(format!(
                "a hot standby, read-only — a restore loads into the primary; {fix}"
            )),
            Ok(row) if row.get::<_, String>(2) == "on" => fail(format!(
                "sessions here are read-only (default_transaction_read_only is on) — a restore needs a writable database; {fix}"
            )),
            Ok(row) => ok(format!(
                "writable session (PostgreSQL {})",
                short_version(&row.get::<_, String>(0))
            )),
        }
    };
    bounded(label, limit, &fix, check).await
}

/// One line for a failed PostgreSQL connect or query: the cause (without the `host:port: `
/// the label already shows) — what to do.
fn pg_failure(text: &str, endpoint: Option<&str>, fix: &str) -> String {
    let cause = match endpoint {
        Some(e) => strip_endpoint(text, e.split('/').next().unwrap_or(e)),
        None => text,
    };
    if let Some(network) = network_cause(cause) {
        return format!("{network} — is PostgreSQL running there? {fix}");
    }
    let advice = if cause.contains("28P01") || cause.contains("password authentication failed") {
        Some("wrong password: set it in PGPASSWORD, ~/.pgpass or the variable password_env names")
    } else if cause.contains("no password") || cause.contains("password missing") {
        Some("the server wants a password: set PGPASSWORD, ~/.pgpass or the spec's password_env")
    } else if cause.contains("3D000") {
        Some("check the database name")
    } else if cause.contains("28000") {
        Some("check the user name, and that the server's pg_hba.conf lets it in from here")
    } else if cause.starts_with("TLS") {
        Some("check sslmode and sslrootcert (in the URL, or PGSSLMODE / PGSSLROOTCERT)")
    } else {
        None
    };
    match advice {
        Some(a) => format!("{cause} — {a}; {fix}"),
        None => format!("{cause} — {fix}"),
    }
}

// ---- object stores -------------------------------------------------------------------------

/// What the write probe writes.
const PROBE_BODY: &[u8] = b"pgfleet check: a write probe, deleted right after it was written\n";

async fn output(ctx: &Clients, spec: &ExportSpec, limit: Duration) -> Line {
    let location = match spec.output.location() {
        Ok(l) => l,
        Err(e) => {
            return Line {
                status: Status::Fail,
                label: "output".into(),
                detail: e,
            }
        }
    };
    let label = format!("output {location}");
    let on_timeout = object_store_advice(&location, "");
    let check = write_probe(ctx, &location, spec);
    bounded(label, limit, &on_timeout, check).await
}

/// Put one small object under the output prefix and delete it again. A file:// output's
/// folders the probe had to create are removed again too.
async fn write_probe(ctx: &Clients, location: &ObjectLocation, spec: &ExportSpec) -> Outcome {
    let key = format!(
        "_pgfleet-check-{}",
        &uuid::Uuid::new_v4().simple().to_string()[..12]
    );
    let created = match location {
        ObjectLocation::File { root } => missing_dirs(Path::new(root)).await,
        ObjectLocation::S3 { .. } => Vec::new(),
    };
    let s3 = &spec.output.s3;
    let put = fleet_io::sink::put_object(
        ctx,
        location,
        s3,
        &key,
        Bytes::from_static(PROBE_BODY),
        "text/plain",
    )
    .await;
    if let Err(e) = put {
        remove_dirs(&created).await;
        return fail(format!(
            "cannot write there: {e} — {}",
            object_store_advice(location, &e.message)
        ));
    }
    let url = fleet_io::sink::object_url(location, &key);
    let deleted = fleet_io::sink::delete_object(ctx, location, s3, &key).await;
    remove_dirs(&created).await;
    match deleted {
        Ok(()) => ok(format!("wrote and deleted a probe object ({key})")),
        Err(e) => (
            Status::Warn,
            format!(
                "writable, but the probe {url} could not be deleted: {e} — delete it by hand (exports themselves never delete objects)"
            ),
        ),
    }
}

/// `dir` and its ancestors that do not exist, deepest first.
async fn missing_dirs(dir: &Path) -> Vec<PathBuf> {
    let mut missing = Vec::new();
    let mut at = Some(dir);
    while let Some(d) = at {
        if d.as_os_str().is_empty() || tokio::fs::try_exists(d).await.unwrap_or(true) {
            break;
        }
        missing.push(d.to_path_buf());
        at = d.parent();
    }
    missing
}

/// Remove folders (deepest first) if they are empty; best effort.
async fn remove_dirs(dirs: &[PathBuf]) {
    for d in dirs {
        if tokio::fs::remove_dir(d).await.is_err() {
            break;
        }
    }
}

/// What to do about a failed object-store request, from its message.
fn object_store_advice(location: &ObjectLocation, message: &str) -> String {
    let ObjectLocation::S3 { bucket, .. } = location else {
        return if message.contains("ermission denied") || message.contains("Read-only") {
            "make the folder writable by this user, or fix [output] url".into()
        } else {
            "check that the folder can be created and written, or fix [output] url".into()
        };
    };
    let credentials = "check the AWS credentials (AWS_PROFILE, AWS_ACCESS_KEY_ID / \
                       AWS_SECRET_ACCESS_KEY, the instance role)";
    if message.contains("NoSuchBucket") {
        format!("bucket {bucket} does not exist: create it, or fix [output] url")
    } else if message.contains("InvalidAccessKeyId")
        || message.contains("SignatureDoesNotMatch")
        || message.to_ascii_lowercase().contains("credential")
    {
        credentials.into()
    } else if message.contains("AccessDenied") || message.contains("AllAccessDisabled") {
        format!("{credentials}; they need s3:PutObject under the prefix (and s3:DeleteObject for this probe)")
    } else if message.contains("PermanentRedirect")
        || message.contains("AuthorizationHeaderMalformed")
    {
        "the bucket is in another region: set [output] s3.region or AWS_REGION".into()
    } else {
        "check the bucket, the region and [output] s3.endpoint, and that this machine reaches S3"
            .into()
    }
}

async fn export(ctx: &Clients, spec: &RestoreSpec, limit: Duration) -> Line {
    let root = match spec.export_location() {
        Ok(l) => l,
        Err(e) => {
            return Line {
                status: Status::Fail,
                label: "export".into(),
                detail: e,
            }
        }
    };
    let label = format!("export {root} (database {:?})", spec.export.database);
    let on_timeout = object_store_advice(&root, "");
    // A listing grows with the export: give it more time than a connect.
    let check = export_metadata(ctx, &root, spec);
    bounded(label, limit * 3, &on_timeout, check).await
}

async fn export_metadata(ctx: &Clients, root: &ObjectLocation, spec: &RestoreSpec) -> Outcome {
    let e = &spec.export;
    let inventory =
        match rds::discover_metadata(ctx, root, &e.s3, &e.database, e.require_success).await {
            Ok(i) => i,
            // These say what to do already.
            Err(err) => return fail(format!("{err:#}")),
        };
    let bytes: u64 = inventory
        .tables
        .iter()
        .flat_map(|t| &t.files)
        .map(|f| f.size)
        .sum();
    let found = format!(
        "{} table(s), {} file(s), {:.1} MiB",
        inventory.tables.len(),
        inventory.total_files(),
        bytes as f64 / 1048576.0
    );
    if let Some(first) = inventory.problems.first() {
        return fail(format!(
            "{found}; {} problem(s), the first: {} — `coordinator plan` lists them all",
            inventory.problems.len(),
            protocol::ident::one_line(first, 300)
        ));
    }
    if inventory.tables.is_empty() {
        return fail(format!(
            "{found}: no exported table of database {:?} — check [export] database",
            e.database
        ));
    }
    let id = inventory
        .export_id
        .as_deref()
        .map(|id| format!("export {id}: "))
        .unwrap_or_default();
    match inventory.warnings.len() {
        0 => ok(format!("{id}{found}")),
        w => ok(format!(
            "{id}{found}; {w} warning(s): `coordinator plan` shows them"
        )),
    }
}

// ---- error text ----------------------------------------------------------------------------

/// `text` without a leading `endpoint: ` or `endpoint ` (the label shows it already).
fn strip_endpoint<'a>(text: &'a str, endpoint: &str) -> &'a str {
    text.strip_prefix(endpoint)
        .and_then(|t| t.strip_prefix(": ").or_else(|| t.strip_prefix(' ')))
        .unwrap_or(text)
}

/// `15.4` of `15.4 (Debian 15.4-1)`.
fn short_version(server_version: &str) -> &str {
    server_version
        .split_whitespace()
        .next()
        .unwrap_or(server_version)
}

/// The usual network failures, in a few words; `None` for anything else.
fn network_cause(text: &str) -> Option<&'static str> {
    let lower = text.to_ascii_lowercase();
    let causes: [(&[&str], &str); 5] = [
        (&["connection refused"], "connection refused"),
        (
            &[
                "failed to lookup address",
                "name or service not known",
                "temporary failure in name resolution",
                "nodename nor servname",
                "no such host",
            ],
            "host name not found",
        ),
        (
            &["no route to host", "network is unreachable"],
            "host unreachable",
        ),
        (&["connection reset"], "connection reset by the server"),
        (
            &["timed out", "did not complete the connection handshake"],
            "timed out",
        ),
    ];
    causes
        .iter()
        .find(|(needles, _)| needles.iter().any(|n| lower.contains(n)))
        .map(|(_, cause)| *cause)
}


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
