//! Secrets never leave the process that holds them.
//!
//! An export and a restore run through a real fleet (`coordinator serve` + two workers over
//! RabbitMQ) with unique, greppable secrets in every place pgfleet reads them from: the source
//! and target password (`password_env`, and `PGPASSWORD`), an inline password in the state
//! database URL, the AWS secret key and a session token, the RabbitMQ URL's password and the
//! metrics bearer token. Every process logs at `trace`, in text and in JSON. Then none of the
//! secrets may appear in any RabbitMQ message (tasks and results, read off the queues), any row
//! of the state tables, any object written to S3, any log line, any `/metrics` page, or the
//! output of `coordinator submit/status/plan`. URLs shown in errors are redacted.
//!
//! Also: the metrics endpoints refuse to listen on a non-loopback address without a token
//! (unless `--metrics-public`), and with a token answer 401 without it and 200 with it.

use lapin::options::{BasicGetOptions, QueueDeclareOptions};
use pgfleet_tests::fixtures::create_export_source;
use pgfleet_tests::procs::Proc;
use pgfleet_tests::*;
use protocol::topology::Topology;
use protocol::{ResultEnvelope, TaskEnvelope};
use serde_json::Value;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// Environment variable named by the specs' `password_env`.
const PW_VAR: &str = "PGFLEET_TEST_DB_PASSWORD";

/// The secrets of one run, each unique and greppable.
struct Secrets {
    /// Value of `password_env` (source and target).
    db_password: String,
    /// `PGPASSWORD` of every process.
    pgpassword: String,
    /// Inline in the state database URL.
    state_password: String,
    /// What s3s-fs expects (not unique, but distinctive).
    aws_secret: String,
    aws_session_token: String,
    metrics_token: String,
}

impl Secrets {
    fn new() -> Self {
        let u = |p: &str| unique(&format!("{p}X")).replace('-', "");
        Self {
            db_password: u("DbPwSecret"),
            pgpassword: u("PgPasswordSecret"),
            state_password: u("StatePwSecret"),
            aws_secret: "pgfleet-secret".into(),
            aws_session_token: u("SessionTokenSecret"),
            metrics_token: u("MetricsTokenSecret"),
        }
    }

    fn all(&self) -> Vec<(&'static str, &str)> {
        vec![
            ("password_env value", &self.db_password),
            ("PGPASSWORD", &self.pgpassword),
            ("state URL password", &self.state_password),
            ("AWS_SECRET_ACCESS_KEY", &self.aws_secret),
            ("AWS_SESSION_TOKEN", &self.aws_session_token),
            ("metrics token", &self.metrics_token),
            // The RabbitMQ URL's credentials: as a URL, and as the SASL PLAIN response.
            ("RabbitMQ URL password", "guest:guest@"),
            ("RabbitMQ SASL response", "\\0guest\\0guest"),
            ("RabbitMQ SASL response", "\\u{0}guest\\u{0}guest"),
            ("RabbitMQ SASL response", "\\u0000guest\\u0000guest"),
            ("RabbitMQ SASL response", "\0guest\0guest"),
        ]
    }

    /// Environment every pgfleet process of the test gets.
    fn apply(&self, cmd: &mut Command) {
        cmd.env(PW_VAR, &self.db_password)
            .env("PGPASSWORD", &self.pgpassword)
            .env("AWS_ACCESS_KEY_ID", "pgfleet")
            .env("AWS_SECRET_ACCESS_KEY", &self.aws_secret)
            .env("AWS_SESSION_TOKEN", &self.aws_session_token)
            .env("AWS_REGION", "us-east-1")
            .env("RUST_LOG", "trace")
            .env_remove("PGFLEET_LOG_FORMAT");
    }
}

/// Everything searched, as (what, text).
#[derive(Default)]
struct Haystack(Vec<(String, String)>);

impl Haystack {
    fn add(&mut self, what: impl Into<String>, text: impl Into<String>) {
        self.0.push((what.into(), text.into()));
    }

    fn add_bytes(&mut self, what: impl Into<String>, bytes: &[u8]) {
        self.add(what, String::from_utf8_lossy(bytes).into_owned());
    }

    /// Every (place, secret) pair where a secret shows up.
    fn leaks(&self, secrets: &Secrets) -> Vec<String> {
        let mut out = Vec::new();
        for (what, text) in &self.0 {
            for (name, secret) in secrets.all() {
                if let Some(i) = text.find(secret) {
                    let start = text[..i]
                        .char_indices()
                        .rev()
                        .nth(120)
                        .map_or(0, |(j, _)| j);
                    let end = (i + secret.len() + 120).min(text.len());
                    let end = (end..=text.len())
                        .find(|e| text.is_char_boundary(*e))
                        .unwrap_or(text.len());
                    out.push(format!("{name} in {what}: …{}…", &text[start..end]));
                }
            }
        }
        out
    }
}

/// `postgresql://user@host/db` with `:password` after the user.
fn with_inline_password(url: &str, password: &str) -> String {
    let (scheme, rest) = url.split_once("://").expect("a URL");
    let (userinfo, host) = rest.split_once('@').expect("the test URL names a user");
    let user = userinfo.split(':').next().unwrap_or(userinfo);
    format!("{scheme}://{user}:{password}@{host}")
}

fn free_ports<const N: usize>() -> [u16; N] {
    let listeners: Vec<TcpListener> = (0..N)
        .map(|_| TcpListener::bind("127.0.0.1:0").expect("bind a free port"))
        .collect();
    std::array::from_fn(|i| listeners[i].local_addr().unwrap().port())
}

/// A plain HTTP/1.0 GET on loopback: (status, body).
fn http_get(port: u16, path: &str, bearer: Option<&str>) -> Option<(u16, String)> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .ok()?;
    let auth = bearer
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    write!(
        stream,
        "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n{auth}\r\n"
    )
    .ok()?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).ok()?;
    let text = String::from_utf8_lossy(&raw);
    let (head, body) = text.split_once("\r\n\r\n")?;
    let status = head.split_whitespace().nth(1)?.parse().ok()?;
    Some((status, body.to_string()))
}

/// Wait until the endpoint on `port` answers.
fn wait_http(port: u16, proc: &Proc) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while http_get(port, "/healthz", None).is_none() {
        assert!(
            Instant::now() < deadline,
            "{} never served /healthz on {port}\n{}",
            proc.name,
            proc.logs()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

struct Run {
    secrets: Secrets,
    namespace: String,
    state_url: String,
    token_file: PathBuf,
    /// Every process started, kept so their logs can be searched at the end.
    procs: Vec<Proc>,
    hay: Haystack,
}

impl Run {
    fn coordinator_cmd(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(bin("coordinator"));
        cmd.args(args).env("PGFLEET_STATE_URL", &self.state_url);
        self.secrets.apply(&mut cmd);
        cmd
    }

    /// `coordinator serve` logging at trace, with a metrics token; returns its metrics port.
    fn start_coordinator(&mut self, json: bool) -> u16 {
        let [port] = free_ports();
        let mut cmd = self.coordinator_cmd(&["serve", "--metrics-addr"]);
        cmd.arg(format!("127.0.0.1:{port}"))
            .arg("--metrics-token-file")
            .arg(&self.token_file)
            .env("PGFLEET_AMQP_URL", amqp_url())
            .env("PGFLEET_NAMESPACE", &self.namespace);
        if json {
            cmd.args(["--log-format", "json"]);
        }
        let n = self.procs.len();
        let p = Proc::spawn(&format!("coordinator-{n}"), cmd);
        wait_http(port, &p);
        self.procs.push(p);
        port
    }

    /// Two workers (text and JSON logs; the first with a metrics token); returns their ports.
    fn start_workers(&mut self) -> Vec<(usize, u16, bool)> {
        let ports: [u16; 2] = free_ports();
        let mut out = Vec::new();
        for (i, port) in ports.into_iter().enumerate() {
            let mut cmd = Command::new(bin("worker"));
            cmd.arg("--metrics-addr")
                .arg(format!("127.0.0.1:{port}"))
                .args(["--concurrency", "2", "--name"])
                .arg(format!("w{i}"))
                .env("PGFLEET_AMQP_URL", amqp_url())
                .env("PGFLEET_NAMESPACE", &self.namespace);
            self.secrets.apply(&mut cmd);
            let with_token = i == 0;
            if with_token {
                cmd.arg("--metrics-token-file").arg(&self.token_file);
            } else {
                cmd.env("PGFLEET_LOG_FORMAT", "json");
            }
            let n = self.procs.len();
            let p = Proc::spawn(&format!("worker-{n}"), cmd);
            wait_http(port, &p);
            self.procs.push(p);
            out.push((self.procs.len() - 1, port, with_token));
        }
        out
    }

    /// Scrape `/metrics` (checking the token rules when it has one) into the haystack.
    fn scrape(&mut self, what: &str, port: u16, with_token: bool) {
        if with_token {
            let (status, _) = http_get(port, "/metrics", None).expect("metrics endpoint");
            assert_eq!(status, 401, "{what}: /metrics without the token");
            let (status, _) =
                http_get(port, "/metrics", Some("wrong-token")).expect("metrics endpoint");
            assert_eq!(status, 401, "{what}: /metrics with a wrong token");
        }
        let token = with_token.then_some(self.secrets.metrics_token.as_str());
        let (status, body) = http_get(port, "/metrics", token).expect("metrics endpoint");
        assert_eq!(status, 200, "{what}: /metrics: {body}");
        assert!(body.contains("pgfleet_"), "{what}: no pgfleet metrics");
        self.hay.add(format!("/metrics of {what}"), body);
    }

    fn run_cli(&mut self, args: &[&str]) -> (i32, String, String) {
        let out = self
            .coordinator_cmd(args)
            .output()
            .expect("run coordinator");
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        self.hay
            .add(format!("stdout of coordinator {args:?}"), stdout.clone());
        self.hay
            .add(format!("stderr of coordinator {args:?}"), stderr.clone());
        (out.status.code().unwrap_or(-1), stdout, stderr)
    }

    fn job_state(&mut self, job: &str) -> String {
        let (_, out, _) = self.run_cli(&["status", job, "--json"]);
        let v: Value = serde_json::from_str(&out).unwrap_or(Value::Null);
        v["job"]["state"].as_str().unwrap_or("").to_string()
    }

    fn logs(&self) -> String {
        self.procs
            .iter()
            .map(|p| format!("---- {} ----\n{}", p.name, p.logs()))
            .collect()
    }

    /// One job through the fleet, every message captured on the way:
    ///  1. a coordinator (no workers yet) plans it and publishes every task: they wait in the
    ///     task queue and are read with basic_get, then put back;
    ///  2. the coordinator stops; two workers run the tasks and their results wait in the
    ///     result queue, read the same way; the workers stop;
    ///  3. a new coordinator records the results and finishes the job.
    async fn job_through_the_fleet(
        &mut self,
        spec: &Path,
        coordinator_port: u16,
        next_json: bool,
    ) -> anyhow::Result<(String, u16)> {
        let (code, out, err) = self.run_cli(&["submit", spec.to_str().unwrap()]);
        assert_eq!(code, 0, "submit failed: {out}{err}");
        let job = out.trim().to_string();
        let state = connect(&self.state_url).await?;
        let topology = Topology::new(&self.namespace).unwrap();
        let amqp = lapin::Connection::connect(&amqp_url(), Default::default()).await?;

        // 1. Every chunk published.
        let deadline = Instant::now() + Duration::from_secs(120);
        let total = loop {
            let row = state
                .query_one(
                    "SELECT count(*) FILTER (WHERE state = 'queued'), count(*)
                       FROM pgfleet.chunks WHERE job_id = $1",
                    &[&job],
                )
                .await?;
            let (queued, total): (i64, i64) = (row.get(0), row.get(1));
            if total > 0 && queued == total {
                break total as u32;
            }
            assert!(
                Instant::now() < deadline,
                "job {job} never published all its tasks ({queued}/{total})\n{}",
                self.logs()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        };
        let tasks = take_all(&amqp, &topology.tasks, total).await?;
        for body in &tasks {
            let t = TaskEnvelope::decode(body).expect("a task message");
            assert_eq!(t.job_id, job);
            // The name of the password variable travels; its value must not.
            assert!(
                String::from_utf8_lossy(body).contains(PW_VAR),
                "task {} does not name {PW_VAR}: the capture is not what the test thinks",
                t.task_id
            );
            self.hay
                .add_bytes(format!("task message {}", t.task_id), body);
        }
        self.hay.add(
            format!("tasks of {job}"),
            format!("{} tasks captured", tasks.len()),
        );
        self.scrape("coordinator", coordinator_port, true);
        let last = self.procs.len() - 1;
        assert_eq!(self.procs[last].terminate(30), Some(0), "coordinator exit");

        // 2. Workers run every task; the results wait for the next coordinator.
        let workers = self.start_workers();
        let deadline = Instant::now() + Duration::from_secs(180);
        loop {
            let depth = depth(&amqp, &topology.results).await?;
            if depth >= total {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "only {depth} of {total} results arrived\n{}",
                self.logs()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let results = take_all(&amqp, &topology.results, total).await?;
        for body in &results {
            let r = ResultEnvelope::decode(body).expect("a result message");
            assert!(
                matches!(r.outcome, protocol::Outcome::Succeeded { .. }),
                "task {} failed: {:?}",
                r.task_id,
                r.outcome
            );
            self.hay
                .add_bytes(format!("result message {}", r.task_id), body);
        }
        for (i, port, with_token) in &workers {
            let name = self.procs[*i].name.clone();
            self.scrape(&name, *port, *with_token);
        }
        for (i, _, _) in workers {
            assert_eq!(self.procs[i].terminate(30), Some(0), "worker exit");
        }
        amqp.close(200, "done".into()).await?;

        // 3. A new coordinator records the results and finishes the job.
        let port = self.start_coordinator(next_json);
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let s = self.job_state(&job);
            if s == "succeeded" {
                break;
            }
            assert!(
                !["failed", "cancelled"].contains(&s.as_str()) && Instant::now() < deadline,
                "job {job} is {s}\n{}",
                self.logs()
            );
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
        self.scrape("coordinator", port, true);
        Ok((job, port))
    }
}

async fn depth(amqp: &lapin::Connection, queue: &str) -> anyhow::Result<u32> {
    let ch = amqp.create_channel().await?;
    let q = ch
        .queue_declare(
            queue.into(),
            QueueDeclareOptions {
                passive: true,
                ..Default::default()
            },
            Default::default(),
        )
        .await?;
    let _ = ch.close(200, "done".into()).await;
    Ok(q.message_count())
}

/// Read `n` messages without consuming them: basic_get on one channel, and closing the channel
/// returns them all to the queue.
async fn take_all(amqp: &lapin::Connection, queue: &str, n: u32) -> anyhow::Result<Vec<Vec<u8>>> {
    let ch = amqp.create_channel().await?;
    let mut bodies = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while bodies.len() < n as usize {
        match ch
            .basic_get(queue.into(), BasicGetOptions { no_ack: false })
            .await?
        {
            Some(msg) => bodies.push(msg.delivery.data.clone()),
            None => {
                anyhow::ensure!(
                    Instant::now() < deadline,
                    "{queue}: {} of {n} messages",
                    bodies.len()
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
    ch.close(200, "put them back".into()).await?;
    Ok(bodies)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_reaches_messages_state_logs_metrics_or_output() -> anyhow::Result<()> {
    set_aws_env();
    let secrets = Secrets::new();
    // The search itself finds what it looks for.
    let mut probe = Haystack::default();
    probe.add("probe", format!("x{}y", secrets.db_password));
    assert_eq!(probe.leaks(&secrets).len(), 1);

    let source = ScratchDb::create("pgfleet_sec_src_").await?;
    let target = ScratchDb::create("pgfleet_sec_dst_").await?;
    let state_db = ScratchDb::create("pgfleet_sec_state_").await?;
    let src = source.client().await?;
    create_export_source(&src, 6000).await?;
    let dump = Command::new("pg_dump")
        .args(["--schema-only", "--no-owner", &source.url])
        .output()?;
    assert!(
        dump.status.success(),
        "{}",
        String::from_utf8_lossy(&dump.stderr)
    );
    let mut load = Command::new("psql")
        .args(["-X", "-q", "-v", "ON_ERROR_STOP=1", &target.url])
        .stdin(std::process::Stdio::piped())
        .spawn()?;
    load.stdin.as_mut().unwrap().write_all(&dump.stdout)?;
    assert!(
        load.wait()?.success(),
        "loading the schema into the target failed"
    );

    let s3 = s3_client().await;
    let bucket = unique("sec-");
    create_bucket(&s3, &bucket).await?;
    let dir = std::env::temp_dir().join(unique("pgfleet-sec-"));
    std::fs::create_dir_all(&dir)?;
    let token_file = dir.join("metrics-token");
    std::fs::write(&token_file, format!("{}\n", secrets.metrics_token))?;

    let endpoint = s3_endpoint();
    let root = format!("s3://{bucket}/rds/sec-export/");
    let export = dir.join("export.toml");
    std::fs::write(
        &export,
        format!(
            r#"kind = "export"
name = "secrets-export"
[source]
url = "{src}"
password_env = "{PW_VAR}"
max_in_flight = 64
[tables]
include = ["public.*"]
[chunking]
rows_per_chunk = 2000
[output]
url = "{root}"
format = "rds-parquet"
part_size = "5MiB"
s3 = {{ endpoint = "{endpoint}", force_path_style = true }}
"#,
            src = source.url
        ),
    )?;
    let restore = dir.join("restore.toml");
    std::fs::write(
        &restore,
        format!(
            r#"kind = "restore"
name = "secrets-restore"
[export]
url = "{root}"
database = "{db}"
s3 = {{ endpoint = "{endpoint}", force_path_style = true }}
[target]
url = "{dst}"
password_env = "{PW_VAR}"
max_connections = 64
"#,
            db = source.name,
            dst = target.url
        ),
    )?;

    let mut run = Run {
        namespace: unique("pgfleet-test-"),
        state_url: with_inline_password(&state_db.url, &secrets.state_password),
        secrets,
        token_file,
        procs: Vec::new(),
        hay: Haystack::default(),
    };

    // Plans read the source and the target with the password.
    let (code, out, err) = run.run_cli(&["plan", export.to_str().unwrap()]);
    assert_eq!(code, 0, "plan export: {out}{err}");
    let port = run.start_coordinator(false);
    let (export_job, port) = run.job_through_the_fleet(&export, port, true).await?;
    let (code, out, err) = run.run_cli(&["plan", restore.to_str().unwrap()]);
    assert_eq!(code, 0, "plan restore: {out}{err}");
    let (restore_job, _) = run.job_through_the_fleet(&restore, port, false).await?;

    // The data really went through.
    let count = |c: tokio_postgres::Row| c.get::<_, i64>(0);
    let dst = target.client().await?;
    assert_eq!(
        count(src.query_one("SELECT count(*) FROM big", &[]).await?),
        count(dst.query_one("SELECT count(*) FROM big", &[]).await?)
    );

    // Status, text and JSON, for the list and for each job.
    for job in [export_job.as_str(), restore_job.as_str()] {
        let (code, out, _) = run.run_cli(&["status", job]);
        assert_eq!(code, 0);
        assert!(out.contains("succeeded"), "{out}");
        let (code, _, _) = run.run_cli(&["status", job, "--json"]);
        assert_eq!(code, 0);
    }
    run.run_cli(&["status"]);
    run.run_cli(&["status", "--json"]);

    // Every row of every state table.
    let state = connect(&state_db.url).await?;
    let tables: Vec<String> = state
        .query(
            "SELECT table_name::text FROM information_schema.tables WHERE table_schema = 'pgfleet'",
            &[],
        )
        .await?
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert!(tables.len() >= 5, "state tables: {tables:?}");
    for t in &tables {
        let rows = state
            .query(
                &format!("SELECT t::text FROM pgfleet.{} t", protocol::quote_ident(t)),
                &[],
            )
            .await?;
        let text: Vec<String> = rows.iter().map(|r| r.get(0)).collect();
        run.hay
            .add(format!("state table pgfleet.{t}"), text.join("\n"));
    }
    // The specs are stored, with the name of the password variable but not its value.
    let spec_rows = state
        .query_one(
            "SELECT count(*) FROM pgfleet.jobs WHERE spec::text LIKE '%' || $1 || '%'",
            &[&PW_VAR],
        )
        .await?;
    assert_eq!(count(spec_rows), 2);

    // Every object written to S3 (metadata, manifests, Parquet).
    let keys = list_keys(&s3, &bucket, "").await?;
    assert!(keys.iter().any(|k| k.ends_with(".json")), "{keys:?}");
    for k in &keys {
        let body = get_object(&s3, &bucket, k).await?;
        run.hay.add_bytes(format!("s3://{bucket}/{k}"), &body);
    }

    // Every log, once the processes have stopped. They really logged at trace, in both formats.
    let last = run.procs.len() - 1;
    run.procs[last].terminate(30);
    let mut saw_json = false;
    for p in &run.procs {
        let logs = p.logs();
        assert!(
            logs.contains("TRACE") || logs.contains("\"level\":\"TRACE\""),
            "{} did not log at trace",
            p.name
        );
        saw_json |= logs.contains("\"level\":\"TRACE\"");
        run.hay.add(format!("log of {}", p.name), logs);
    }
    assert!(saw_json, "no process logged JSON");

    // URLs in errors are redacted: a state database that cannot be reached, and job specs
    // with passwords in their URLs.
    let bad_state = with_inline_password(
        "postgresql://postgres@127.0.0.1:1/nowhere",
        &run.secrets.state_password,
    );
    let out = Command::new(bin("coordinator"))
        .args(["status"])
        .env("PGFLEET_STATE_URL", &bad_state)
        .output()?;
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!out.status.success());
    assert!(
        err.contains("postgresql://postgres:***@127.0.0.1:1/nowhere"),
        "the error shows the redacted URL: {err}"
    );
    run.hay
        .add("status with an unreachable state database", err);
    for (i, url) in [
        with_inline_password(&source.url, &run.secrets.db_password),
        format!("{}?password={}", source.url, run.secrets.db_password),
    ]
    .iter()
    .enumerate()
    {
        let spec = dir.join(format!("inline-{i}.toml"));
        std::fs::write(
            &spec,
            std::fs::read_to_string(&export)?.replace(&source.url, url),
        )?;
        for cmd in ["plan", "submit", "run"] {
            let (code, _, err) = run.run_cli(&[cmd, spec.to_str().unwrap()]);
            assert_ne!(code, 0, "{cmd} accepted a spec with a password in its URL");
            assert!(err.contains("password"), "{cmd}: {err}");
        }
    }
    // RabbitMQ URLs with a password, unreachable: the processes retry and log, never the URL.
    let amqp_secret = format!("amqp://guest:{}@127.0.0.1:1/%2f", run.secrets.db_password);
    let mut worker = Command::new(bin("worker"));
    worker
        .args(["--metrics-addr", "127.0.0.1:0"])
        .env("PGFLEET_AMQP_URL", &amqp_secret);
    run.secrets.apply(&mut worker);
    let mut serve = run.coordinator_cmd(&["serve", "--metrics-addr", "127.0.0.1:0"]);
    serve
        .env("PGFLEET_AMQP_URL", &amqp_secret)
        .env("PGFLEET_NAMESPACE", unique("pgfleet-test-"));
    let mut w = Proc::spawn("worker-bad-amqp", worker);
    let mut c = Proc::spawn("coordinator-bad-amqp", serve);
    std::thread::sleep(Duration::from_secs(4));
    w.terminate(10);
    c.terminate(10);
    for p in [&w, &c] {
        let logs = p.logs();
        assert!(
            logs.contains("RabbitMQ"),
            "{}: no RabbitMQ error logged: {logs}",
            p.name
        );
        run.hay.add(format!("log of {}", p.name), logs);
    }

    // --help shows which variables a flag reads, never their values (the documented default
    // RabbitMQ URL, with RabbitMQ's well-known default account, is not a secret).
    let default_amqp = "amqp://guest:guest@127.0.0.1:5672/%2f";
    for args in [vec!["serve", "--help"], vec!["status", "--help"]] {
        let out = run
            .coordinator_cmd(&args)
            .env("PGFLEET_AMQP_URL", &amqp_secret)
            .output()?;
        run.hay.add(
            format!("coordinator {args:?}"),
            String::from_utf8_lossy(&out.stdout).replace(default_amqp, "<default>"),
        );
    }
    let mut help = Command::new(bin("worker"));
    help.arg("--help").env("PGFLEET_AMQP_URL", &amqp_secret);
    run.secrets.apply(&mut help);
    run.hay.add(
        "worker --help",
        String::from_utf8_lossy(&help.output()?.stdout).replace(default_amqp, "<default>"),
    );

    let leaks = run.hay.leaks(&run.secrets);
    assert!(
        leaks.is_empty(),
        "{} leak(s):\n{}",
        leaks.len(),
        leaks.join("\n\n")
    );
    eprintln!(
        "searched {} texts ({} bytes) for {} secrets",
        run.hay.0.len(),
        run.hay.0.iter().map(|(_, t)| t.len()).sum::<usize>(),
        run.secrets.all().len()
    );

    drop(run);
    let _ = std::fs::remove_dir_all(&dir);
    source.drop().await?;
    target.drop().await?;
    state_db.drop().await?;
    Ok(())
}

/// `worker` or `coordinator serve` with the given metrics arguments.
fn metrics_cmd(binary: &str, state_url: &str, args: &[&str]) -> Command {
    let mut cmd = Command::new(bin(binary));
    if binary == "coordinator" {
        cmd.arg("serve");
    }
    cmd.args(args)
        .env("PGFLEET_STATE_URL", state_url)
        .env("PGFLEET_AMQP_URL", amqp_url())
        .env("PGFLEET_NAMESPACE", unique("pgfleet-test-"))
        .env_remove("PGFLEET_METRICS_TOKEN_FILE")
        .env_remove("PGFLEET_METRICS_PUBLIC");
    cmd
}

/// Run to completion within `secs` (killed otherwise): (exit code, stderr).
fn run_briefly(mut cmd: Command, secs: u64) -> (Option<i32>, String) {
    let log = std::env::temp_dir().join(unique("pgfleet-brief-"));
    let file = std::fs::File::create(&log).unwrap();
    let mut child = cmd
        .stdout(std::process::Stdio::null())
        .stderr(file)
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(secs);
    let code = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status.code();
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let err = std::fs::read_to_string(&log).unwrap_or_default();
    let _ = std::fs::remove_file(&log);
    (code, err)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_endpoints_are_loopback_by_default_and_need_a_token_elsewhere() -> anyhow::Result<()>
{
    // The defaults are loopback.
    for (binary, args, default) in [
        ("worker", vec![], "127.0.0.1:9181"),
        ("coordinator", vec!["serve"], "127.0.0.1:9180"),
    ] {
        let out = Command::new(bin(binary))
            .args(&args)
            .arg("--help")
            .output()?;
        // Help wraps to the terminal: compare with line breaks and indents flattened.
        let help = String::from_utf8_lossy(&out.stdout)
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ");
        assert!(
            help.contains(&format!("[default: {default}]")),
            "{binary}: {help}"
        );
        assert!(help.contains("--metrics-token-file") && help.contains("--metrics-public"));
    }

    // A non-loopback address without a token: refused at once, with one line saying what to
    // do (before touching the state database, which here does not exist).
    let nowhere = "postgresql://postgres@127.0.0.1:1/nowhere";
    for binary in ["worker", "coordinator"] {
        let (code, err) = run_briefly(
            metrics_cmd(binary, nowhere, &["--metrics-addr", "0.0.0.0:0"]),
            10,
        );
        assert_eq!(code, Some(2), "{binary}: {err}");
        assert_eq!(err.trim().lines().count(), 1, "{binary}: {err}");
        assert!(
            err.contains("not a loopback address")
                && err.contains("--metrics-token-file")
                && err.contains("--metrics-public"),
            "{binary}: {err}"
        );
    }

    let dir = std::env::temp_dir().join(unique("pgfleet-metrics-token-"));
    std::fs::create_dir_all(&dir)?;
    let token = unique("tok");
    let file = dir.join("token");
    std::fs::write(&file, format!("{token}\n"))?;
    let empty = dir.join("empty");
    std::fs::write(&empty, "\n")?;
    let mut cmd = metrics_cmd("worker", nowhere, &["--metrics-addr", "0.0.0.0:0"]);
    cmd.env("PGFLEET_METRICS_TOKEN_FILE", &empty);
    let (code, err) = run_briefly(cmd, 10);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("empty"), "{err}");

    // On 0.0.0.0 with a token: 401 without it or with a wrong one, 200 with it; probes stay
    // open. With --metrics-public: no token needed.
    let state = ScratchDb::create("pgfleet_metrics_state_").await?;
    for (binary, auth) in [
        ("worker", Some(&file)),
        ("worker", None),
        ("coordinator", Some(&file)),
    ] {
        let [port] = free_ports();
        let addr = format!("0.0.0.0:{port}");
        let mut cmd = metrics_cmd(binary, &state.url, &["--metrics-addr", &addr]);
        match auth {
            Some(f) => {
                cmd.arg("--metrics-token-file").arg(f);
            }
            None => {
                cmd.env("PGFLEET_METRICS_PUBLIC", "true");
            }
        }
        let p = Proc::spawn(&format!("{binary}-metrics"), cmd);
        wait_http(port, &p);
        let metrics = |bearer: Option<&str>| http_get(port, "/metrics", bearer).unwrap();
        match auth {
            Some(_) => {
                let (status, body) = metrics(None);
                assert_eq!(status, 401, "{binary}: {body}");
                assert!(!body.contains("pgfleet_"));
                assert_eq!(metrics(Some("wrong")).0, 401);
                assert_eq!(metrics(Some(&format!("{token}x"))).0, 401);
                let (status, body) = metrics(Some(&token));
                assert_eq!(status, 200, "{binary}: {body}");
                assert!(body.contains("pgfleet_"), "{body}");
            }
            None => assert_eq!(metrics(None).0, 200),
        }
        assert_eq!(http_get(port, "/healthz", None).unwrap().0, 200);
        assert!(!p.logs().contains(&token), "{binary} logged the token");
        drop(p);
    }
    let _ = std::fs::remove_dir_all(&dir);
    state.drop().await?;
    Ok(())
}
