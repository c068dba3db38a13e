//! Observability for real: `promtool` checks the deploy/prometheus files, then a real Prometheus
//! (loopback, 1 s scrapes) watches a `coordinator serve` and two workers during an export, and
//! every PromQL expression of the Grafana dashboard and of the alert rules is evaluated through
//! its HTTP API: each must parse and return series.
//!
//! Needs Debian's `prometheus` package (`prometheus` and `promtool` on PATH):
//! `apt-get install -y --no-install-recommends prometheus`.

use pgfleet_tests::fixtures::create_export_source;
use pgfleet_tests::procs::Proc;
use pgfleet_tests::*;
use serde_json::Value;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// The alerts deploy/prometheus/alerts.yml must define (issue 4).
const REQUIRED_ALERTS: [&str; 5] = [
    "PgfleetJobFailed",
    "PgfleetDeadLetters",
    "PgfleetJobStalled",
    "PgfleetNoWorkers",
    "PgfleetWorkerMemoryHigh",
];

fn deploy(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../deploy")
        .join(path)
}

/// `prometheus` or `promtool`, or a clear failure saying how to install them.
fn tool(name: &str) -> PathBuf {
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join(name))
            .find(|p| p.is_file())
    });
    found.unwrap_or_else(|| {
        panic!(
            "`{name}` is not installed: run `apt-get install -y --no-install-recommends \
             prometheus` (Debian's package ships prometheus and promtool)"
        )
    })
}

#[test]
fn promtool_accepts_config_and_rules() {
    let promtool = tool("promtool");
    for config in ["prometheus/prometheus.yml", "prometheus/prometheus-ec2.yml"] {
        let out = Command::new(&promtool)
            .args(["check", "config"])
            .arg(deploy(config))
            .output()
            .expect("run promtool");
        assert!(
            out.status.success(),
            "promtool check config {config}:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let out = Command::new(&promtool)
        .args(["check", "rules"])
        .arg(deploy("prometheus/alerts.yml"))
        .output()
        .expect("run promtool");
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "promtool check rules:\n{text}");
    let rules = std::fs::read_to_string(deploy("prometheus/alerts.yml")).unwrap();
    for alert in REQUIRED_ALERTS {
        assert!(
            rules.contains(&format!("alert: {alert}\n")),
            "{alert} missing"
        );
    }
}

#[test]
fn dashboard_is_provisionable() {
    let dash: Value = serde_json::from_str(
        &std::fs::read_to_string(deploy("grafana/dashboards/pgfleet.json")).unwrap(),
    )
    .expect("dashboard JSON parses");
    assert_eq!(dash["uid"], "pgfleet-fleet");
    let vars = dash["templating"]["list"].as_array().unwrap();
    assert!(vars
        .iter()
        .any(|v| v["name"] == "datasource" && v["type"] == "datasource"));
    // Every panel and query uses the variable, never a fixed datasource uid.
    let mut datasources = Vec::new();
    walk(&dash, &mut |k, v| {
        if k == "datasource" {
            datasources.push(v.clone())
        }
    });
    assert!(!datasources.is_empty());
    for ds in datasources {
        assert_eq!(ds["uid"], "${datasource}", "{ds}");
    }
    let provider =
        std::fs::read_to_string(deploy("grafana/provisioning/dashboards/pgfleet.yml")).unwrap();
    assert!(provider.contains("path: /var/lib/grafana/dashboards"));
    let source =
        std::fs::read_to_string(deploy("grafana/provisioning/datasources/prometheus.yml")).unwrap();
    assert!(source.contains("type: prometheus"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_dashboard_and_alert_query_returns_series_during_an_export() -> anyhow::Result<()> {
    let prometheus_bin = tool("prometheus");
    set_aws_env();
    let source = ScratchDb::create("pgfleet_obs_src_").await?;
    let state = ScratchDb::create("pgfleet_obs_state_").await?;
    let src = source.client().await?;
    create_export_source(&src, 200_000).await?;
    let s3 = s3_client().await;
    let bucket = unique("obs-");
    create_bucket(&s3, &bucket).await?;

    // Known metrics ports: bind port 0, note it, release it, hand it to the process.
    let [coordinator_port, w0_port, w1_port, prom_port] = free_ports();
    let namespace = unique("pgfleet-test-");
    let mut coordinator = Command::new(bin("coordinator"));
    coordinator
        .args(["serve", "--metrics-addr"])
        .arg(format!("127.0.0.1:{coordinator_port}"))
        .env("PGFLEET_STATE_URL", &state.url)
        .env("PGFLEET_AMQP_URL", amqp_url())
        .env("PGFLEET_NAMESPACE", &namespace);
    let coordinator = Proc::spawn("coordinator", coordinator);
    pgfleet_tests::procs::wait_for_state_schema(&state.url, &coordinator);
    // Prometheus with the deploy alert rules and the deploy scrape job names.
    let dir = std::env::temp_dir().join(unique("pgfleet-obs-"));
    std::fs::create_dir_all(&dir)?;
    let config = dir.join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            r#"global:
  scrape_interval: 1s
  scrape_timeout: 900ms
  evaluation_interval: 1s
rule_files:
  - {rules}
scrape_configs:
  - job_name: pgfleet-coordinator
    static_configs:
      - targets: ["127.0.0.1:{coordinator_port}"]
  - job_name: pgfleet-worker
    static_configs:
      - targets: ["127.0.0.1:{w0_port}", "127.0.0.1:{w1_port}"]
"#,
            rules = deploy("prometheus/alerts.yml").canonicalize()?.display()
        ),
    )?;
    let mut cmd = Command::new(prometheus_bin);
    cmd.arg(format!("--config.file={}", config.display()))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.join("data").display()
        ))
        .arg(format!("--web.listen-address=127.0.0.1:{prom_port}"))
        .arg("--log.level=warn");
    let prometheus = Proc::spawn("prometheus", cmd);
    let prom = Prom {
        port: prom_port,
        proc: &prometheus,
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    while prom.get("/-/ready").map(|(s, _)| s) != Some(200) {
        assert!(Instant::now() < deadline, "Prometheus did not become ready");
        std::thread::sleep(Duration::from_millis(200));
    }

    // Static targets reach the scrape loops only after discovery's first update (~5 s).
    let deadline = Instant::now() + Duration::from_secs(30);
    while prom.query("up", None).len() < 3 {
        assert!(
            Instant::now() < deadline,
            "Prometheus never scraped the targets\n{}",
            prometheus.logs()
        );
        std::thread::sleep(Duration::from_millis(250));
    }

    // An export of ~580 chunks on two single-task workers: several seconds of scrapes.
    let spec_path = dir.join("export.toml");
    std::fs::write(
        &spec_path,
        format!(
            r#"
kind = "export"
name = "obs"
[source]
url = "{url}"
max_in_flight = 2
[tables]
include = ["public.*"]
[chunking]
rows_per_chunk = 400
[output]
url = "s3://{bucket}/obs/"
format = "csv"
part_size = "5MiB"
s3 = {{ endpoint = "{endpoint}", force_path_style = true }}
"#,
            url = source.url,
            endpoint = s3_endpoint()
        ),
    )?;
    let out = Command::new(bin("coordinator"))
        .args(["submit", spec_path.to_str().unwrap()])
        .env("PGFLEET_STATE_URL", &state.url)
        .output()?;
    assert!(
        out.status.success(),
        "submit: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let job_id = String::from_utf8_lossy(&out.stdout).trim().to_string();
    // Workers start a few scrapes after the job: backlog with no consumer first, then work.
    std::thread::sleep(Duration::from_secs(3));
    let workers: Vec<Proc> = [w0_port, w1_port]
        .iter()
        .enumerate()
        .map(|(i, port)| {
            let mut cmd = Command::new(bin("worker"));
            cmd.arg("--metrics-addr")
                .arg(format!("127.0.0.1:{port}"))
                .args(["--concurrency", "1", "--name"])
                .arg(format!("w{i}"))
                .env("PGFLEET_AMQP_URL", amqp_url())
                .env("PGFLEET_NAMESPACE", &namespace);
            Proc::spawn(&format!("worker{i}"), cmd)
        })
        .collect();

    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let out = Command::new(bin("coordinator"))
            .args(["status", &job_id, "--json"])
            .env("PGFLEET_STATE_URL", &state.url)
            .output()?;
        let status: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
        let job_state = status["job"]["state"].as_str().unwrap_or("").to_string();
        if job_state == "succeeded" {
            break;
        }
        assert!(
            !["failed", "cancelled"].contains(&job_state.as_str()),
            "the export failed: {status}\n{}",
            coordinator.logs()
        );
        assert!(
            Instant::now() < deadline,
            "the export did not finish: {status}"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    // Two more scrapes after the end (finished-job counters, final worker counters).
    std::thread::sleep(Duration::from_secs(3));

    // Every target was scraped.
    let up = prom.query("up", None);
    assert_eq!(up.len(), 3, "{up:?}");
    for series in &up {
        assert_eq!(series["value"][1], "1", "target down: {series}");
    }

    // The moment to evaluate at: the last scrape that saw the job in the coordinator (raw
    // samples of a range selector; counted in scrapes, not wall time).
    let samples = prom.query("pgfleet_coordinator_job_info[1h]", None);
    assert_eq!(samples.len(), 1, "one job, one state: {samples:?}");
    let points = samples[0]["values"].as_array().cloned().unwrap_or_default();
    assert!(
        points.len() >= 3,
        "the job was seen in fewer than 3 scrapes ({points:?}); the export is too fast to observe"
    );
    let at = points.last().unwrap()[0].as_f64().unwrap();
    let job_series = prom.query("pgfleet_coordinator_job_info", Some(at));
    assert_eq!(job_series.len(), 1, "{job_series:?}");
    assert_eq!(job_series[0]["metric"]["job_id"], job_id.as_str());
    // The coordinator's own pace figures for the job, while it ran.
    let pace = prom.query(
        "max_over_time(pgfleet_coordinator_job_rows_per_second[1h])",
        Some(at),
    );
    let fastest: f64 = pace[0]["value"][1].as_str().unwrap_or("0").parse()?;
    assert!(fastest > 0.0, "no throughput seen for the job: {pace:?}");
    let eta = prom.query("pgfleet_coordinator_job_eta_seconds", Some(at));
    let eta: f64 = eta[0]["value"][1].as_str().unwrap_or("-1").parse()?;
    assert!(
        (0.0..3600.0).contains(&eta),
        "time left at the last scrape: {eta}"
    );
    assert_eq!(
        prom.query("pgfleet_coordinator_job_info", None).len(),
        0,
        "per-job series must go when the job leaves the coordinator"
    );
    let finished = prom.query(
        r#"pgfleet_coordinator_jobs_finished_total{kind="export",state="succeeded"}"#,
        None,
    );
    assert_eq!(finished[0]["value"][1], "1", "{finished:?}");
    let rows = prom.query(
        r#"sum(pgfleet_worker_rows_total{direction="export"})"#,
        None,
    );
    assert_eq!(
        rows[0]["value"][1], "231000",
        "rows counted by the workers: {rows:?}"
    );

    // The dashboard: every expression, with Grafana's interval variables filled in.
    let dash: Value = serde_json::from_str(&std::fs::read_to_string(deploy(
        "grafana/dashboards/pgfleet.json",
    ))?)?;
    let mut exprs = Vec::new();
    walk(&dash, &mut |k, v| {
        if k == "expr" {
            exprs.push(v.as_str().expect("expr is a string").to_string())
        }
    });
    assert!(exprs.len() >= 15, "dashboard queries: {}", exprs.len());
    let mut failures = Vec::new();
    for raw in &exprs {
        let expr = raw
            .replace("$__rate_interval", "1m")
            .replace("$__interval", "15s")
            .replace("$__range", "1h");
        assert!(!expr.contains('$'), "unknown variable in {raw}");
        match prom.try_query(&expr, Some(at)) {
            Err(e) => failures.push(format!("dashboard: {expr}\n    {e}")),
            Ok(r) if r.is_empty() => failures.push(format!("dashboard: {expr}\n    no series")),
            Ok(_) => {}
        }
    }

    // The alert rules as Prometheus loaded them: all healthy, and every condition, without its
    // threshold comparisons, returns series (the full condition must parse; whether it fires
    // depends on the thresholds).
    let deadline = Instant::now() + Duration::from_secs(10);
    let rules = loop {
        let (_, body) = prom.get("/api/v1/rules").expect("rules API");
        let v: Value = serde_json::from_str(&body)?;
        let rules: Vec<Value> = v["data"]["groups"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|g| g["rules"].as_array().unwrap().clone())
            .collect();
        if rules.iter().all(|r| r["health"] == "ok") || Instant::now() > deadline {
            break rules;
        }
        std::thread::sleep(Duration::from_millis(500));
    };
    for name in REQUIRED_ALERTS {
        assert!(rules.iter().any(|r| r["name"] == name), "{name} not loaded");
    }
    for rule in &rules {
        assert_eq!(rule["health"], "ok", "rule not healthy: {rule}");
        let expr = rule["query"].as_str().unwrap();
        if let Err(e) = prom.try_query(expr, Some(at)) {
            failures.push(format!("alert {}: {expr}\n    {e}", rule["name"]));
        }
        let bare = strip_comparisons(expr);
        match prom.try_query(&bare, Some(at)) {
            Err(e) => failures.push(format!("alert {} (bare): {bare}\n    {e}", rule["name"])),
            Ok(r) if r.is_empty() => failures.push(format!(
                "alert {} (bare): {bare}\n    no series",
                rule["name"]
            )),
            Ok(_) => {}
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} queries failed:\n{}",
        failures.len(),
        exprs.len() + 2 * rules.len(),
        failures.join("\n")
    );
    eprintln!(
        "{} dashboard and {} alert expressions evaluated at the job's last scrape",
        exprs.len(),
        rules.len()
    );

    drop(prometheus);
    drop(workers);
    drop(coordinator);
    let _ = std::fs::remove_dir_all(&dir);
    source.drop().await?;
    state.drop().await?;
    Ok(())
}

fn free_ports<const N: usize>() -> [u16; N] {
    // Hold all listeners at once so the ports differ.
    let listeners: Vec<TcpListener> = (0..N)
        .map(|_| TcpListener::bind("127.0.0.1:0").expect("bind a free port"))
        .collect();
    std::array::from_fn(|i| listeners[i].local_addr().unwrap().port())
}

/// Depth-first over a JSON value, calling `f(key, value)` for every object member.
fn walk(v: &Value, f: &mut impl FnMut(&str, &Value)) {
    match v {
        Value::Object(map) => {
            for (k, v) in map {
                f(k, v);
                walk(v, f);
            }
        }
        Value::Array(items) => items.iter().for_each(|v| walk(v, f)),
        _ => {}
    }
}

/// Remove every `<op> [bool] <number>` comparison outside label matchers and strings:
/// `a > 0 and on () b == 1` becomes `a and on () b`.
fn strip_comparisons(expr: &str) -> String {
    let chars: Vec<char> = expr.chars().collect();
    let mut out = String::new();
    let (mut braces, mut quoted) = (0usize, false);
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if quoted {
            out.push(c);
            if c == '\\' && i + 1 < chars.len() {
                out.push(chars[i + 1]);
                i += 1;
            } else if c == '"' {
                quoted = false;
            }
            i += 1;
            continue;
        }
        match c {
            '"' => quoted = true,
            '{' => braces += 1,
            '}' => braces = braces.saturating_sub(1),
            _ => {}
        }
        if braces == 0 && matches!(c, '>' | '<' | '=' | '!') {
            let mut j = i + 1;
            if j < chars.len() && chars[j] == '=' {
                j += 1;
            }
            let op: String = chars[i..j].iter().collect();
            if ["<", ">", "<=", ">=", "==", "!="].contains(&op.as_str()) {
                let mut k = j;
                while k < chars.len() && chars[k].is_whitespace() {
                    k += 1;
                }
                let rest: String = chars[k..].iter().collect();
                if let Some(r) = rest.strip_prefix("bool") {
                    k += 4 + (r.len() - r.trim_start().len());
                }
                let start = k;
                while k < chars.len() && (chars[k].is_ascii_digit() || chars[k] == '.') {
                    k += 1;
                }
                if k > start {
                    i = k;
                    continue;
                }
            }
        }
        out.push(c);
        i += 1;
    }
    out
}

#[test]
fn comparisons_are_stripped_outside_matchers() {
    assert_eq!(
        strip_comparisons(r#"a{x!="1",y=~"a>1"} > 0 and on () sum(b) == bool 1"#),
        r#"a{x!="1",y=~"a>1"}  and on () sum(b) "#
    );
    assert_eq!(strip_comparisons("x / y > 0.85"), "x / y ");
}

struct Prom<'a> {
    port: u16,
    proc: &'a Proc,
}

impl Prom<'_> {
    /// A plain HTTP/1.0 GET on loopback: (status, body).
    fn get(&self, path_and_query: &str) -> Option<(u16, String)> {
        let mut stream = TcpStream::connect(("127.0.0.1", self.port)).ok()?;
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .ok()?;
        write!(
            stream,
            "GET {path_and_query} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n"
        )
        .ok()?;
        let mut raw = Vec::new();
        stream.read_to_end(&mut raw).ok()?;
        let text = String::from_utf8_lossy(&raw);
        let (head, body) = text.split_once("\r\n\r\n")?;
        let status = head.split_whitespace().nth(1)?.parse().ok()?;
        Some((status, body.to_string()))
    }

    fn api(&self, path: &str, params: &[(&str, String)]) -> Result<Value, String> {
        let query: Vec<String> = params
            .iter()
            .map(|(k, v)| format!("{k}={}", encode(v)))
            .collect();
        let (status, body) = self
            .get(&format!("{path}?{}", query.join("&")))
            .ok_or_else(|| format!("no answer from Prometheus\n{}", self.proc.logs()))?;
        let v: Value = serde_json::from_str(&body).map_err(|e| format!("{e}: {body}"))?;
        if status != 200 || v["status"] != "success" {
            return Err(format!("HTTP {status}: {}", v["error"]));
        }
        Ok(v["data"]["result"].clone())
    }

    fn try_query(&self, expr: &str, at: Option<f64>) -> Result<Vec<Value>, String> {
        let mut params = vec![("query", expr.to_string())];
        if let Some(t) = at {
            params.push(("time", format!("{t:.3}")));
        }
        let result = self.api("/api/v1/query", &params)?;
        Ok(result.as_array().cloned().unwrap_or_default())
    }

    fn query(&self, expr: &str, at: Option<f64>) -> Vec<Value> {
        self.try_query(expr, at)
            .unwrap_or_else(|e| panic!("{expr}: {e}"))
    }
}

/// Percent-encode a query parameter value.
fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}
