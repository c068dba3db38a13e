//! The command line as a user meets it:
//! - output into a pipe its reader closed (`| head -1`) ends the process quietly, no panic;
//! - `status`, `cancel` and `submit` never create a state database or its schema: a mistyped
//!   `--state-url` is an error that says what to do;
//! - a refused connection names the server tried (source, target, state database, RabbitMQ),
//!   never a password;
//! - with `--log-format json` the error that ends a process is a JSON log line.

use pgfleet_tests::procs::Proc;
use pgfleet_tests::rds_fixture::{write_export, FixtureColumn, FixtureOptions, FixtureTable};
use pgfleet_tests::*;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

const PASSWORD: &str = "hunter2-not-for-logs";

fn tempdir() -> PathBuf {
    let d = std::env::temp_dir().join(unique("pgfleet-cli-"));
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn export_spec(dir: &Path, source_url: &str) -> PathBuf {
    let path = dir.join(format!("{}.toml", unique("export-")));
    std::fs::write(
        &path,
        format!(
            "kind = \"export\"\nname = \"cli\"\n[source]\nurl = \"{source_url}\"\n\
             [tables]\ninclude = [\"public.*\"]\n[output]\nurl = \"file://{}/out/\"\n",
            dir.display()
        ),
    )
    .unwrap();
    path
}

fn coordinator(args: &[&str], state_url: &str) -> Output {
    Command::new(bin("coordinator"))
        .args(args)
        .env("PGFLEET_STATE_URL", state_url)
        .env_remove("PGFLEET_LOG_FORMAT")
        .output()
        .expect("run coordinator")
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// A TCP port nothing listens on (bound, then released).
fn closed_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn output_into_a_closed_pipe_ends_quietly() -> anyhow::Result<()> {
    let db = ScratchDb::create("pgfleet_cli_pipe_").await?;
    db.client()
        .await?
        .batch_execute(
            "CREATE TABLE t (id bigint PRIMARY KEY); INSERT INTO t SELECT generate_series(1, 1000)",
        )
        .await?;
    let dir = tempdir();
    let spec = export_spec(&dir, &db.url);
    for json in [true, false] {
        let mut cmd = Command::new(bin("coordinator"));
        cmd.arg("plan").arg(&spec);
        if json {
            cmd.arg("--json");
        }
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()?;
        // The reader is gone before the plan (which reads the source first) prints a byte.
        drop(child.stdout.take());
        let out = child.wait_with_output()?;
        let err = stderr(&out);
        assert!(!err.contains("panicked"), "plan (json {json}): {err}");
        assert!(!err.contains("Broken pipe"), "plan (json {json}): {err}");
        assert_eq!(
            out.status.code(),
            Some(141),
            "plan (json {json}) exits as a tool ended by SIGPIPE: {err}"
        );
    }
    db.drop().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_only_commands_never_create_the_state_database() -> anyhow::Result<()> {
    let dir = tempdir();
    let spec = export_spec(&dir, &db_url("postgres"));
    let spec = spec.to_str().unwrap();
    let commands: [&[&str]; 4] = [
        &["status"],
        &["status", "--json"],
        &["cancel", "j-0000000000"],
        &["submit", spec],
    ];
    let admin = connect(&pg_admin_url()).await?;

    // A database that does not exist stays so.
    let missing = unique("pgfleet_cli_typo_");
    for args in commands {
        let out = coordinator(args, &db_url(&missing));
        let err = stderr(&out);
        assert!(!out.status.success(), "{args:?} succeeded: {err}");
        assert!(
            err.contains(&format!(
                "state database {} does not exist",
                db_url(&missing)
            )) && err.contains("coordinator serve"),
            "{args:?}: {err}"
        );
        let created: bool = admin
            .query_one(
                "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)",
                &[&missing],
            )
            .await?
            .get(0);
        assert!(!created, "{args:?} created database {missing}");
    }

    // A database without the schema stays without it.
    let db = ScratchDb::create("pgfleet_cli_noschema_").await?;
    let c = db.client().await?;
    for args in commands {
        let out = coordinator(args, &db.url);
        let err = stderr(&out);
        assert!(!out.status.success(), "{args:?} succeeded: {err}");
        assert!(
            err.contains("has no pgfleet schema") && err.contains("coordinator serve"),
            "{args:?}: {err}"
        );
        let schema: bool = c
            .query_one("SELECT to_regnamespace('pgfleet') IS NOT NULL", &[])
            .await?
            .get(0);
        assert!(!schema, "{args:?} created the pgfleet schema");
    }
    db.drop().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_connections_name_the_server_tried() -> anyhow::Result<()> {
    set_aws_env();
    let port = closed_port();
    let nowhere = format!("postgresql://postgres:{PASSWORD}@127.0.0.1:{port}/nowhere");
    let endpoint = format!("127.0.0.1:{port}");
    let dir = tempdir();

    // State database.
    let out = coordinator(&["status"], &nowhere);
    let err = stderr(&out);
    assert!(!out.status.success());
    assert!(err.contains(&format!("{endpoint}: ")), "state: {err}");
    assert!(!err.contains(PASSWORD), "state: {err}");

    // Source (its password comes from the environment: specs refuse inline ones).
    let spec = export_spec(&dir, &format!("postgresql://postgres@127.0.0.1:{port}/src"));
    let out = coordinator(&["plan", spec.to_str().unwrap()], &nowhere);
    let err = stderr(&out);
    assert!(!out.status.success());
    assert!(
        err.contains(&format!("connecting to the source: {endpoint}: ")),
        "source: {err}"
    );

    // Target: a valid export on disk, a target nothing listens on.
    let table = FixtureTable::generated("public", "t", vec![FixtureColumn::bigint("id")], &[&[5]]);
    write_export(&dir, &FixtureOptions::new("exp", "shop"), &[table])?;
    let restore = dir.join("restore.toml");
    std::fs::write(
        &restore,
        format!(
            "kind = \"restore\"\nname = \"cli\"\n[export]\nurl = \"file://{}/exp/\"\n\
             database = \"shop\"\n[target]\nurl = \"postgresql://postgres@127.0.0.1:{port}/dst\"\n",
            dir.display()
        ),
    )?;
    let out = coordinator(&["plan", restore.to_str().unwrap()], &nowhere);
    let err = stderr(&out);
    assert!(!out.status.success());
    assert!(
        err.contains(&format!("connecting to the target: {endpoint}: ")),
        "target: {err}"
    );

    // RabbitMQ, from a worker and from `serve` (which retry and log).
    let amqp = format!("amqp://guest:{PASSWORD}@127.0.0.1:{port}/%2f");
    let state = ScratchDb::create("pgfleet_cli_state_").await?;
    let mut worker = Command::new(bin("worker"));
    worker
        .args(["--metrics-addr", "127.0.0.1:0"])
        .env("PGFLEET_AMQP_URL", &amqp);
    let mut serve = Command::new(bin("coordinator"));
    serve
        .args(["serve", "--metrics-addr", "127.0.0.1:0"])
        .env("PGFLEET_STATE_URL", &state.url)
        .env("PGFLEET_AMQP_URL", &amqp)
        .env("PGFLEET_NAMESPACE", unique("pgfleet-test-"));
    let mut procs = [
        Proc::spawn("worker-closed-amqp", worker),
        Proc::spawn("serve-closed-amqp", serve),
    ];
    let wanted = format!("connecting to RabbitMQ at {endpoint}: ");
    let deadline = Instant::now() + Duration::from_secs(30);
    while !procs.iter().all(|p| p.logs().contains(&wanted)) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    for p in &mut procs {
        p.kill();
        let logs = p.logs();
        assert!(logs.contains(&wanted), "{}: {logs}", p.name);
        assert!(!logs.contains(PASSWORD), "{}: {logs}", p.name);
    }
    state.drop().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fatal_errors_follow_the_log_format() -> anyhow::Result<()> {
    let missing = "/nonexistent/pgfleet-cli.toml";
    let runs: [(&str, Vec<&str>, &str); 3] = [
        ("coordinator", vec!["plan", missing], "cannot read job spec"),
        (
            "coordinator",
            vec![
                "status",
                "--state-url",
                "postgresql://postgres@127.0.0.1:1/x",
            ],
            "cannot connect to the state database",
        ),
        (
            "worker",
            vec!["--concurrency", "0"],
            "--concurrency must be at least 1",
        ),
    ];
    for (binary, args, message) in runs {
        let run = |json: bool| {
            let mut cmd = Command::new(bin(binary));
            cmd.args(&args).env_remove("PGFLEET_LOG_FORMAT");
            if json {
                cmd.args(["--log-format", "json"]);
            }
            cmd.output().expect("run")
        };
        let out = run(true);
        assert!(!out.status.success());
        let err = stderr(&out);
        let last = err.lines().last().unwrap_or_default();
        let line: serde_json::Value = serde_json::from_str(last)
            .unwrap_or_else(|e| panic!("{binary} {args:?}: not a JSON line ({e}): {err}"));
        assert_eq!(line["level"], "ERROR", "{last}");
        assert!(
            line["message"]
                .as_str()
                .is_some_and(|m| m.contains(message)),
            "{binary} {args:?}: {last}"
        );
        assert!(line["timestamp"].is_string(), "{last}");

        let out = run(false);
        let err = stderr(&out);
        assert!(
            err.lines()
                .any(|l| l.starts_with("error: ") && l.contains(message)),
            "{binary} {args:?} (text): {err}"
        );
    }
    Ok(())
}

/// A server that accepts the TCP connection and then says nothing (a hung postmaster, a proxy
/// without a backend) ends the attempt after the connect timeout, as libpq does, instead of
/// holding the process forever; the error names the server.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_server_times_out_like_libpq() -> anyhow::Result<()> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    let port = listener.local_addr()?.port();
    // Accept and hold every connection, never writing a byte.
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for s in listener.incoming().flatten() {
            held.push(s);
        }
    });
    let dir = tempdir();
    let spec = export_spec(
        &dir,
        &format!("postgresql://reader@127.0.0.1:{port}/shop?connect_timeout=2"),
    );
    let started = Instant::now();
    let out = coordinator(
        &["plan", spec.to_str().unwrap()],
        "postgresql://postgres@127.0.0.1:1/x",
    );
    let took = started.elapsed();
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(took < Duration::from_secs(15), "took {took:?}");
    let err = stderr(&out);
    assert!(
        err.contains(&format!("127.0.0.1:{port}")) && err.contains("timeout"),
        "{err}"
    );
    Ok(())
}
