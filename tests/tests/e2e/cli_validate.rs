//! `coordinator validate` and `${VAR}` in job specs, from the outside:
//! - every spec a user copies (README, deploy/examples) validates;
//! - several TOML type and unknown-key errors come out in one run, each with line and key
//!   path; exit 0 valid, 78 invalid, 2 usage; `--json` is versioned;
//! - validate is offline: specs naming unreachable servers validate at once;
//! - interpolation: unset, empty, default, `:?` message, `$$`, inside arrays and inline
//!   tables; a password still cannot enter a URL this way; `coordinator run` uses it.

use pgfleet_tests::*;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

fn tempdir() -> PathBuf {
    let d = std::env::temp_dir().join(unique("pgfleet-validate-"));
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn write(dir: &Path, text: &str) -> PathBuf {
    let p = dir.join(format!("{}.toml", unique("spec-")));
    std::fs::write(&p, text).unwrap();
    p
}

fn validate(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(bin("coordinator"));
    cmd.arg("validate")
        .args(args)
        .env_remove("PGFLEET_LOG_FORMAT");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("run coordinator validate")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn json(o: &Output) -> Value {
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("{e}: {}", stdout(o)))
}

fn repo_file(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(rel)
}

/// The ```toml blocks of README.md that are job specs.
fn readme_specs() -> Vec<String> {
    let readme = std::fs::read_to_string(repo_file("README.md")).unwrap();
    readme
        .split("```toml\n")
        .skip(1)
        .filter_map(|b| b.split("```").next())
        .filter(|b| b.contains("kind = "))
        .map(str::to_string)
        .collect()
}

const SPEC: &str = r#"kind = "export"
name = "nightly"

[source]
url = "postgresql://reader@192.0.2.1:5432/shop"
max_in_flight = 3

[tables]
include = ["public.*"]

[output]
url = "s3://bucket/exports/"
part_size = "16MiB"
"#;

#[test]
fn specs_users_copy_validate() {
    let dir = tempdir();
    let mut paths: Vec<PathBuf> = [
        "deploy/examples/export.toml",
        "deploy/examples/restore.toml",
    ]
    .iter()
    .map(|p| repo_file(p))
    .collect();
    let readme = readme_specs();
    assert!(readme.len() >= 2, "README's export and restore specs");
    paths.extend(readme.iter().map(|s| write(&dir, s)));
    let args: Vec<&str> = paths.iter().map(|p| p.to_str().unwrap()).collect();
    let started = Instant::now();
    let out = validate(&args, &[]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        stdout(&out),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        stdout(&out).matches(": valid ").count(),
        paths.len(),
        "{}",
        stdout(&out)
    );
    // Offline: the examples name hosts that do not exist here.
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[test]
fn every_problem_at_once_with_line_and_key() {
    let dir = tempdir();
    let bad = SPEC
        .replace("max_in_flight = 3", "max_in_flight = \"three\"\nbogus = 1")
        .replace(
            "part_size = \"16MiB\"",
            "part_sise = \"16MiB\"\ngzip_level = 42",
        )
        .replace(
            "include = [\"public.*\"]",
            "include = [\"public.*\", \"x.y.z.w\"]",
        );
    let path = write(&dir, &bad);
    let out = validate(&[path.to_str().unwrap()], &[]);
    assert_eq!(out.status.code(), Some(78), "{}", stdout(&out));
    let text = stdout(&out);
    for expected in [
        "line 6, column 17: source.max_in_flight: invalid type: string \"three\"",
        "line 7, column 1: source.bogus: unknown field `bogus`",
        "line 14, column 1: output.part_sise: unknown field `part_sise`",
        "line 15, column 1: output.gzip_level: 0 to 9",
        "line 10, column 24: tables.include[1]: table pattern \"x.y.z.w\"",
    ] {
        assert!(text.contains(expected), "{expected:?} in:\n{text}");
    }
    assert!(text.contains("invalid, 5 problems"), "{text}");

    // Once the TOML is right, the spec's own checks, each with its line.
    let bad = SPEC
        .replace("max_in_flight = 3", "max_in_flight = 0")
        .replace(
            "part_size = \"16MiB\"",
            "part_size = \"1MiB\"\ngzip_level = 42",
        );
    let path = write(&dir, &bad);
    let out = validate(&[path.to_str().unwrap(), "--json"], &[]);
    assert_eq!(out.status.code(), Some(78));
    let v = json(&out);
    assert_eq!(v["version"], 1);
    assert_eq!(v["valid"], false);
    let problems = v["specs"][0]["problems"].as_array().unwrap().clone();
    let keys: Vec<(&str, u64)> = problems
        .iter()
        .map(|p| (p["key"].as_str().unwrap(), p["line"].as_u64().unwrap()))
        .collect();
    assert_eq!(
        keys,
        [
            ("source.max_in_flight", 6),
            ("output.part_size", 13),
            ("output.gzip_level", 14)
        ],
        "{problems:#?}"
    );

    // A missing file is an invalid spec too; no spec at all is a usage error.
    let out = validate(&[dir.join("nope.toml").to_str().unwrap()], &[]);
    assert_eq!(out.status.code(), Some(78));
    assert!(
        stdout(&out).contains("cannot read the file"),
        "{}",
        stdout(&out)
    );
    assert_eq!(validate(&[], &[]).status.code(), Some(2));
    assert_eq!(
        validate(&["--no-such-flag", "x"], &[]).status.code(),
        Some(2)
    );
}

#[test]
fn interpolation_from_the_environment() {
    let dir = tempdir();
    let spec = r#"kind = "export"
name = "nightly-${RUN_DATE}"

[source]
url = "postgresql://reader@${PGHOST_UNDER_TEST:-192.0.2.1}:5432/shop"
application_name = "${APP_SUFFIX}"
statement_timeout = "${TIMEOUT-30min}"

[tables]
include = ["${SCHEMA}.*", "sales.$${literal}"]
keys = { "public.events" = "${KEY_COLUMN:-event_id}" }

[output]
url = "s3://bucket/exports/${RUN_DATE}/"
s3 = { endpoint = "${S3_ENDPOINT:-http://127.0.0.1:9000}", force_path_style = true }
"#;
    let path = write(&dir, spec);
    let p = path.to_str().unwrap();
    let base = [
        ("RUN_DATE", "2026-12-03"),
        ("SCHEMA", "public"),
        ("APP_SUFFIX", ""),
    ];
    let out = validate(&[p, "--json"], &base);
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    let s = &json(&out)["specs"][0]["spec"];
    assert_eq!(s["name"], "nightly-2026-12-03");
    assert_eq!(
        s["source"]["url"],
        "postgresql://reader@192.0.2.1:5432/shop"
    );
    assert_eq!(
        s["source"]["application_name"], "",
        "set but empty stays empty"
    );
    assert_eq!(s["source"]["statement_timeout"], "30min");
    assert_eq!(s["tables"]["include"][0], "public.*", "inside an array");
    assert_eq!(s["tables"]["include"][1], "sales.${literal}", "$$ escapes");
    assert_eq!(
        s["tables"]["keys"]["public.events"], "event_id",
        "inside an inline table"
    );
    assert_eq!(s["output"]["url"], "s3://bucket/exports/2026-12-03/");
    assert_eq!(s["output"]["s3"]["endpoint"], "http://127.0.0.1:9000");

    // `-` keeps a set-but-empty value, `:-` does not.
    let mut env = base.to_vec();
    env.extend([("TIMEOUT", ""), ("S3_ENDPOINT", "")]);
    let out = validate(&[p, "--json"], &env);
    let s = &json(&out)["specs"][0]["spec"];
    assert_eq!(s["source"]["statement_timeout"], "");
    assert_eq!(s["output"]["s3"]["endpoint"], "http://127.0.0.1:9000");

    // Unset without a default: an error naming key path and line, every one at once.
    let out = validate(&[p], &[("SCHEMA", "public")]);
    assert_eq!(out.status.code(), Some(78));
    let text = stdout(&out);
    for expected in [
        "line 2, column 8: name: ${RUN_DATE} is not set",
        "line 6, column 20: source.application_name: ${APP_SUFFIX} is not set",
        "line 14, column 7: output.url: ${RUN_DATE} is not set",
    ] {
        assert!(text.contains(expected), "{expected:?} in:\n{text}");
    }
    assert!(text.contains("invalid, 3 problems"), "{text}");

    // `:?` says the user's message; a bare `$NAME` is not silently kept.
    let path = write(
        &dir,
        &SPEC
            .replace(
                "s3://bucket/exports/",
                "s3://${BUCKET:?set BUCKET to the nightly bucket}/x/",
            )
            .replace("name = \"nightly\"", "name = \"$HOME\""),
    );
    let out = validate(&[path.to_str().unwrap()], &[]);
    assert_eq!(out.status.code(), Some(78));
    let text = stdout(&out);
    assert!(
        text.contains(
            "output.url: ${BUCKET} is not set or empty: set BUCKET to the nightly bucket"
        ),
        "{text}"
    );
    assert!(
        text.contains("name: `$HOME` is not interpolated: write ${HOME}"),
        "{text}"
    );

    // A password cannot come in through a variable either, and is never echoed.
    let secret = "s3cr3t-from-env";
    let path = write(
        &dir,
        &SPEC.replace("reader@192.0.2.1", "reader:${DB_PASSWORD}@192.0.2.1"),
    );
    let out = validate(&[path.to_str().unwrap()], &[("DB_PASSWORD", secret)]);
    assert_eq!(out.status.code(), Some(78));
    let text = stdout(&out);
    assert!(text.contains("source.url: contains a password"), "{text}");
    assert!(!text.contains(secret) && !String::from_utf8_lossy(&out.stderr).contains(secret));
}

/// The commands that run jobs read specs the same way: `coordinator run` writes where the
/// interpolated URL says.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_interpolates_the_spec() -> anyhow::Result<()> {
    let db = ScratchDb::create("pgfleet_interp_").await?;
    db.client()
        .await?
        .batch_execute(
            "CREATE TABLE t (id bigint PRIMARY KEY); INSERT INTO t SELECT generate_series(1, 100)",
        )
        .await?;
    let dir = tempdir();
    let spec = write(
        &dir,
        "kind = \"export\"\nname = \"interp\"\n[source]\nurl = \"${SOURCE_URL}\"\n\
         [tables]\ninclude = [\"public.t\"]\n[output]\nurl = \"file://${OUT_DIR}/${RUN_DATE}/\"\n",
    );
    let out = Command::new(bin("coordinator"))
        .args(["run", spec.to_str().unwrap(), "--workers", "1"])
        .env("SOURCE_URL", &db.url)
        .env("OUT_DIR", &dir)
        .env("RUN_DATE", "2026-12-03")
        .env_remove("PGFLEET_LOG_FORMAT")
        .output()?;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let under = dir.join("2026-12-03");
    assert!(
        files(&under).iter().any(|f| f.ends_with("_SUCCESS")),
        "no _SUCCESS under {}: {:?}",
        under.display(),
        files(&dir)
    );
    db.drop().await?;
    Ok(())
}

fn files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(files(&p));
        } else {
            out.push(p);
        }
    }
    out
}
