//! `coordinator check SPEC` from the outside, against the real services: one line per check
//! (`OK` / `WARN` / `FAIL  label: what failed — what to do`), exit 0 when nothing failed and 1
//! when something did; the write probe leaves nothing behind; no line carries a password.

use pgfleet_tests::rds_fixture::{write_export, FixtureColumn, FixtureOptions, FixtureTable};
use pgfleet_tests::*;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const PASSWORD: &str = "check-hunter2-not-for-output";

fn tempdir() -> PathBuf {
    let d = std::env::temp_dir().join(unique("pgfleet-check-"));
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// A TCP port nothing listens on (bound, then released).
fn closed_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

fn write_spec(dir: &Path, text: &str) -> PathBuf {
    let path = dir.join(format!("{}.toml", unique("spec-")));
    std::fs::write(&path, text).unwrap();
    path
}

fn export_spec(dir: &Path, source_url: &str, output_url: &str) -> PathBuf {
    write_spec(
        dir,
        &format!(
            "kind = \"export\"\nname = \"check\"\n[source]\nurl = \"{source_url}\"\n\
             [tables]\ninclude = [\"public.*\"]\n[output]\nurl = \"{output_url}\"\n\
             s3 = {{ endpoint = \"{}\", force_path_style = true }}\n",
            s3_endpoint()
        ),
    )
}

fn restore_spec(dir: &Path, export_url: &str, target_url: &str) -> PathBuf {
    write_spec(
        dir,
        &format!(
            "kind = \"restore\"\nname = \"check\"\n[export]\nurl = \"{export_url}\"\n\
             database = \"shop\"\n[target]\nurl = \"{target_url}\"\n"
        ),
    )
}

/// `coordinator check SPEC ARGS…` with the AMQP URL and state URL given explicitly.
fn check(spec: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(bin("coordinator"));
    cmd.arg("check")
        .arg(spec)
        .args(args)
        .env_remove("PGFLEET_LOG_FORMAT")
        .env_remove("PGFLEET_RABBITMQ_API_URL")
        .env_remove("PGFLEET_CHECK_TIMEOUT")
        .env_remove("RUST_LOG");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("run coordinator check")
}

struct Report {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl Report {
    fn of(out: Output) -> Self {
        Self {
            code: out.status.code(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// The check lines (the verdict line aside).
    fn lines(&self) -> Vec<&str> {
        self.stdout
            .lines()
            .filter(|l| l.starts_with("OK ") || l.starts_with("WARN ") || l.starts_with("FAIL "))
            .collect()
    }

    /// The one line whose label starts with `label`.
    fn line(&self, label: &str) -> &str {
        let found: Vec<&str> = self
            .lines()
            .into_iter()
            .filter(|l| {
                l.split_once(' ')
                    .is_some_and(|(_, rest)| rest.trim_start().starts_with(label))
            })
            .collect();
        assert_eq!(found.len(), 1, "one {label:?} line in:\n{self}");
        found[0]
    }

    fn assert_no(&self, secret: &str) {
        assert!(
            !self.stdout.contains(secret) && !self.stderr.contains(secret),
            "{secret:?} printed:\n{self}"
        );
    }
}

impl std::fmt::Display for Report {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "exit {:?}\nstdout:\n{}stderr:\n{}",
            self.code, self.stdout, self.stderr
        )
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_export_all_good_and_the_probe_leaves_nothing() -> anyhow::Result<()> {
    set_aws_env();
    let source = ScratchDb::create("pgfleet_check_src_").await?;
    let state = ScratchDb::create("pgfleet_check_state_").await?;
    let s3 = s3_client().await;
    let bucket = unique("pgfleet-check-");
    create_bucket(&s3, &bucket).await?;
    let dir = tempdir();
    let spec = export_spec(
        &dir,
        &source.url,
        &format!("s3://{bucket}/exports/nightly/"),
    );

    let out = Report::of(check(
        &spec,
        &[
            "--state-url",
            &state.url,
            "--amqp-url",
            &amqp_url(),
            "--rabbitmq-api-url",
            "http://127.0.0.1:15672",
        ],
        &[],
    ));
    assert_eq!(out.code, Some(0), "{out}");
    assert_eq!(out.lines().len(), 5, "{out}");
    assert!(out.lines().iter().all(|l| l.starts_with("OK ")), "{out}");
    let state_line = out.line(&format!("state database 127.0.0.1:5432/{}", state.name));
    assert!(
        state_line.contains("no pgfleet schema yet") && state_line.contains("coordinator serve"),
        "{state_line}"
    );
    assert!(out.line("rabbitmq 127.0.0.1:5672").contains("connected"));
    assert!(out
        .line("rabbitmq api http://127.0.0.1:15672")
        .contains("RabbitMQ"));
    assert!(out
        .line(&format!("source 127.0.0.1:5432/{}", source.name))
        .contains("read-only session"));
    assert!(out
        .line(&format!("output s3://{bucket}/exports/nightly/"))
        .contains("wrote and deleted"));
    assert!(out.stdout.contains("all 5 check(s) passed"), "{out}");
    assert_eq!(
        list_keys(&s3, &bucket, "").await?,
        Vec::<String>::new(),
        "the probe is gone"
    );
    // Nothing was created in the state database either.
    let schema: bool = state
        .client()
        .await?
        .query_one("SELECT to_regnamespace('pgfleet') IS NOT NULL", &[])
        .await?
        .get(0);
    assert!(!schema, "check created the pgfleet schema");

    // A file:// output whose folder does not exist yet, with --local: two checks, and the
    // folders the probe needed are gone again.
    let out_dir = dir.join("out/a/b");
    let spec = export_spec(&dir, &source.url, &format!("file://{}/", out_dir.display()));
    let out = Report::of(check(
        &spec,
        &[
            "--local",
            "--state-url",
            "postgresql://postgres@127.0.0.1:1/x",
        ],
        &[],
    ));
    assert_eq!(out.code, Some(0), "{out}");
    assert_eq!(
        out.lines().len(),
        2,
        "--local checks only source and output:\n{out}"
    );
    assert!(out
        .line(&format!("output file://{}/", out_dir.display()))
        .starts_with("OK "));
    assert!(!dir.join("out").exists(), "the probe left folders behind");

    source.drop().await?;
    state.drop().await?;
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_names_a_stopped_rabbitmq_and_says_what_to_do() -> anyhow::Result<()> {
    let source = ScratchDb::create("pgfleet_check_src_").await?;
    let state = ScratchDb::create("pgfleet_check_state_").await?;
    let dir = tempdir();
    let spec = export_spec(&dir, &source.url, &format!("file://{}/out/", dir.display()));
    let port = closed_port();
    let amqp = format!("amqp://guest:{PASSWORD}@127.0.0.1:{port}/%2f");
    let out = Report::of(check(
        &spec,
        &["--state-url", &state.url],
        &[("PGFLEET_AMQP_URL", &amqp)],
    ));
    assert_eq!(out.code, Some(1), "{out}");
    let line = out.line(&format!("rabbitmq 127.0.0.1:{port}"));
    assert!(
        line.starts_with("FAIL ")
            && line.contains("connection refused")
            && line.contains("is RabbitMQ running")
            && line.contains("PGFLEET_AMQP_URL"),
        "{line}"
    );
    // The other checks are still reported, and pass.
    assert_eq!(out.lines().len(), 4, "{out}");
    assert!(out.line("state database").starts_with("OK "), "{out}");
    assert!(out.line("source").starts_with("OK "), "{out}");
    assert!(out.line("output").starts_with("OK "), "{out}");
    assert!(out.stderr.contains("1 of 4 check(s) failed"), "{out}");
    out.assert_no(PASSWORD);

    // Usage errors are clap's exit 2.
    let usage = Command::new(bin("coordinator")).arg("check").output()?;
    assert_eq!(usage.status.code(), Some(2));

    source.drop().await?;
    state.drop().await?;
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_names_the_source_server_and_never_the_password() -> anyhow::Result<()> {
    let dir = tempdir();
    let missing = unique("pgfleet_check_missing_");
    let spec = export_spec(
        &dir,
        &format!("postgresql://postgres@127.0.0.1:5432/{missing}"),
        &format!("file://{}/out/", dir.display()),
    );
    let state_port = closed_port();
    let state_url = format!("postgresql://postgres:{PASSWORD}@127.0.0.1:{state_port}/state");
    let out = Report::of(check(
        &spec,
        &["--amqp-url", &amqp_url()],
        &[("PGPASSWORD", PASSWORD), ("PGFLEET_STATE_URL", &state_url)],
    ));
    assert_eq!(out.code, Some(1), "{out}");
    let line = out.line(&format!("source 127.0.0.1:5432/{missing}"));
    assert!(
        line.starts_with("FAIL ")
            && line.contains("does not exist")
            && line.contains("check the database name"),
        "{line}"
    );
    let line = out.line(&format!("state database 127.0.0.1:{state_port}/state"));
    assert!(
        line.starts_with("FAIL ")
            && line.contains("connection refused")
            && line.contains("PGFLEET_STATE_URL"),
        "{line}"
    );
    assert!(out.line("output").starts_with("OK "), "{out}");
    out.assert_no(PASSWORD);
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_says_why_the_bucket_cannot_be_written() -> anyhow::Result<()> {
    set_aws_env();
    let source = ScratchDb::create("pgfleet_check_src_").await?;
    let s3 = s3_client().await;
    let bucket = unique("pgfleet-check-");
    create_bucket(&s3, &bucket).await?;
    let dir = tempdir();
    let spec = export_spec(&dir, &source.url, &format!("s3://{bucket}/p/"));
    let wrong_secret = "wrong-secret-check-not-for-output";
    let out = Report::of(check(
        &spec,
        &["--local"],
        &[("AWS_SECRET_ACCESS_KEY", wrong_secret)],
    ));
    assert_eq!(out.code, Some(1), "{out}");
    let line = out.line(&format!("output s3://{bucket}/p/"));
    assert!(
        line.starts_with("FAIL ")
            && line.contains("cannot write there")
            && line.contains("SignatureDoesNotMatch")
            && line.contains("AWS credentials"),
        "{line}"
    );
    assert!(out.line("source").starts_with("OK "), "{out}");
    out.assert_no(wrong_secret);
    assert_eq!(list_keys(&s3, &bucket, "").await?, Vec::<String>::new());
    source.drop().await?;
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_restore_from_a_missing_export_says_no_export_there() -> anyhow::Result<()> {
    let target = ScratchDb::create("pgfleet_check_dst_").await?;
    let dir = tempdir();
    let empty = dir.join("empty");
    std::fs::create_dir_all(&empty)?;
    let spec = restore_spec(&dir, &format!("file://{}/", empty.display()), &target.url);
    let out = Report::of(check(&spec, &["--local"], &[]));
    assert_eq!(out.code, Some(1), "{out}");
    let line = out.line(&format!("export file://{}/", empty.display()));
    assert!(
        line.starts_with("FAIL ") && line.contains("no RDS export at"),
        "{line}"
    );
    assert!(out
        .line(&format!("target 127.0.0.1:5432/{}", target.name))
        .contains("writable session"));
    target.drop().await?;
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_restore_all_good_counts_the_export() -> anyhow::Result<()> {
    let target = ScratchDb::create("pgfleet_check_dst_").await?;
    target
        .client()
        .await?
        .batch_execute("CREATE TABLE public.t (id bigint PRIMARY KEY)")
        .await?;
    let state = ScratchDb::create("pgfleet_check_state_").await?;
    let dir = tempdir();
    let table =
        FixtureTable::generated("public", "t", vec![FixtureColumn::bigint("id")], &[&[5, 7]]);
    write_export(&dir, &FixtureOptions::new("exp", "shop"), &[table])?;
    let spec = restore_spec(&dir, &format!("file://{}/exp/", dir.display()), &target.url);
    let out = Report::of(check(
        &spec,
        &["--state-url", &state.url, "--amqp-url", &amqp_url()],
        &[],
    ));
    assert_eq!(out.code, Some(0), "{out}");
    assert_eq!(out.lines().len(), 4, "{out}");
    assert!(out.lines().iter().all(|l| l.starts_with("OK ")), "{out}");
    let line = out.line(&format!("export file://{}/exp/", dir.display()));
    assert!(line.contains("1 table(s), 2 file(s)"), "{line}");
    assert!(out
        .line(&format!("target 127.0.0.1:5432/{}", target.name))
        .contains("writable session"));
    target.drop().await?;
    state.drop().await?;
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_gives_up_on_a_silent_server_within_the_timeout() -> anyhow::Result<()> {
    // Accepts connections, never answers: what a half-dead host or a proxy looks like.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let port = silent.local_addr()?.port();
    let hold = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((s, _)) = silent.accept().await {
            held.push(s);
        }
    });
    let dir = tempdir();
    let spec = export_spec(
        &dir,
        &format!("postgresql://postgres@127.0.0.1:{port}/src?sslmode=disable"),
        &format!("file://{}/out/", dir.display()),
    );
    let started = std::time::Instant::now();
    let out = Report::of(check(&spec, &["--local", "--timeout", "2"], &[]));
    let took = started.elapsed();
    hold.abort();
    assert_eq!(out.code, Some(1), "{out}");
    let line = out.line(&format!("source 127.0.0.1:{port}/src"));
    assert!(
        line.starts_with("FAIL ") && line.contains("no answer within 2s"),
        "{line}"
    );
    assert!(took < std::time::Duration::from_secs(8), "took {took:?}");
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
