//! Watching and finding jobs, from the outside:
//! - every `--json` document (`status`, `status JOB`, `plan` of an export and of a restore) has
//!   `"version": 1` and the documented shapes, never a Rust enum's (`{"Integer": {…}}`);
//! - `status --state` / `--limit` filter the list; a bad state is a usage error (exit 2);
//! - `status --watch` (no terminal) prints the list again only when it changed, and ends once no
//!   job is submitted or running;
//! - `wait JOB` and `status --watch JOB` follow a job submitted earlier and exit with its
//!   outcome: 0 succeeded, 1 failed or cancelled; an unknown job is an error (exit 1).

use pgfleet_tests::procs::Fleet;
use pgfleet_tests::rds_fixture::{write_export, FixtureColumn, FixtureOptions, FixtureTable};
use pgfleet_tests::*;
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

fn tempdir() -> PathBuf {
    let d = std::env::temp_dir().join(unique("pgfleet-cli-status-"));
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// `coordinator ARGS` with this state database, no terminal anywhere.
fn coordinator(args: &[&str], state_url: &str) -> Output {
    Command::new(bin("coordinator"))
        .args(args)
        .env("PGFLEET_STATE_URL", state_url)
        .env_remove("PGFLEET_LOG_FORMAT")
        .stdin(Stdio::null())
        .output()
        .expect("run coordinator")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Run, expect `code`, parse stdout as JSON.
fn json_of(args: &[&str], state_url: &str, code: i32) -> Value {
    let out = coordinator(args, state_url);
    assert_eq!(
        out.status.code(),
        Some(code),
        "{args:?}\nstdout: {}\nstderr: {}",
        text(&out.stdout),
        text(&out.stderr)
    );
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{args:?}: not JSON ({e}): {}", text(&out.stdout)))
}

/// Fails on the shape serde gives an externally tagged enum: an object with exactly one key
/// whose name starts with an upper-case letter (`{"Integer": {"column": "id"}}`).
fn assert_no_enum_shapes(v: &Value, path: &str) {
    match v {
        Value::Object(m) => {
            if let (1, Some(k)) = (m.len(), m.keys().next()) {
                assert!(
                    !k.starts_with(|c: char| c.is_uppercase()),
                    "{path}: a Rust enum shape {{{k:?}: …}} in {v}"
                );
            }
            for (k, x) in m {
                assert_no_enum_shapes(x, &format!("{path}.{k}"));
            }
        }
        Value::Array(a) => {
            for (i, x) in a.iter().enumerate() {
                assert_no_enum_shapes(x, &format!("{path}[{i}]"));
            }
        }
        _ => {}
    }
}

/// Version 1, and no enum shapes anywhere.
fn assert_versioned(doc: &Value, what: &str) {
    assert_eq!(doc["version"], 1, "{what}: {doc}");
    assert_no_enum_shapes(doc, what);
}

fn table<'a>(doc: &'a Value, name: &str) -> &'a Value {
    doc["tables"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|t| t["table"] == name)
        .unwrap_or_else(|| panic!("no table {name} in {doc}"))
}

fn kinds(chunks: &Value) -> BTreeSet<String> {
    chunks
        .as_array()
        .into_iter()
        .flatten()
        .map(|c| c["kind"].as_str().unwrap_or("?").to_string())
        .collect()
}

fn export_spec(dir: &Path, source_url: &str, rows_per_chunk: u64) -> PathBuf {
    let path = dir.join(format!("{}.toml", unique("export-")));
    std::fs::write(
        &path,
        format!(
            "kind = \"export\"\nname = \"cli-status\"\n[source]\nurl = \"{source_url}\"\n\
             [tables]\ninclude = [\"public.*\"]\n[chunking]\nrows_per_chunk = {rows_per_chunk}\n\
             [output]\nurl = \"file://{}/out/\"\n",
            dir.display()
        ),
    )
    .unwrap();
    path
}

fn submit(spec: &Path, state_url: &str) -> String {
    let out = coordinator(&["submit", spec.to_str().unwrap()], state_url);
    assert!(out.status.success(), "submit: {}", text(&out.stderr));
    text(&out.stdout).trim().to_string()
}

fn listed_ids(doc: &Value) -> Vec<String> {
    doc["jobs"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|j| j["id"].as_str().unwrap_or("?").to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plan_json_is_versioned_with_documented_shapes() -> anyhow::Result<()> {
    let source = ScratchDb::create("pgfleet_status_plan_src_").await?;
    source
        .client()
        .await?
        .batch_execute(
            "CREATE TABLE items (id bigint PRIMARY KEY, v text);
             INSERT INTO items SELECT g, 'v' || g FROM generate_series(1, 2000) g;
             CREATE TABLE notes (body text);
             INSERT INTO notes SELECT 'n' || g FROM generate_series(1, 10) g;
             CREATE TABLE tokens (id uuid PRIMARY KEY);
             INSERT INTO tokens SELECT gen_random_uuid() FROM generate_series(1, 2000);
             ANALYZE",
        )
        .await?;
    let dir = tempdir();
    // Export: no state database involved.
    let spec = export_spec(&dir, &source.url, 500);
    let nowhere = "postgresql://postgres@127.0.0.1:1/unused";
    let plan = json_of(&["plan", spec.to_str().unwrap(), "--json"], nowhere, 0);
    assert_versioned(&plan, "export plan");
    assert_eq!(plan["kind"], "export", "{plan}");
    assert_eq!(plan["format"], "csv", "{plan}");
    assert_eq!(plan["database"], source.name.as_str(), "{plan}");

    let items = table(&plan, "public.items");
    assert_eq!(
        (&items["schema"], &items["name"]),
        (&json!("public"), &json!("items"))
    );
    assert_eq!(items["key"], json!({"kind": "integer", "column": "id"}));
    let chunks = items["chunks"].as_array().cloned().unwrap_or_default();
    assert!(chunks.len() >= 2, "{items}");
    assert_eq!(
        kinds(&items["chunks"]),
        BTreeSet::from(["integer_range".into()])
    );
    assert_eq!(chunks[0]["column"], "id");
    assert!(
        chunks[0]["lo"].is_null() && chunks[chunks.len() - 1]["hi"].is_null(),
        "{items}"
    );
    assert_eq!(items["columns"][0]["name"], "id");
    assert_eq!(items["columns"][0]["typname"], "int8");
    assert_eq!(items["columns"][0]["data_type"], "bigint");

    let notes = table(&plan, "public.notes");
    assert_eq!(notes["key"], json!({"kind": "whole"}));
    assert_eq!(notes["chunks"], json!([{"kind": "all"}]));

    let tokens = table(&plan, "public.tokens");
    assert_eq!(
        tokens["key"],
        json!({"kind": "unique", "columns": [{"name": "id", "type": "pg_catalog.uuid"}]})
    );
    assert!(
        kinds(&tokens["chunks"])
            .iter()
            .all(|k| k == "unique_range" || k == "all"),
        "{tokens}"
    );

    // Restore: `c` references `t`; `u` is in the export but not in the target (a problem).
    let fixture = vec![
        FixtureTable::generated("public", "t", vec![FixtureColumn::bigint("id")], &[&[3]]),
        FixtureTable::generated(
            "public",
            "c",
            vec![FixtureColumn::bigint("id"), FixtureColumn::bigint("t_id")],
            &[&[2]],
        ),
        FixtureTable::generated("public", "u", vec![FixtureColumn::bigint("id")], &[&[1]]),
    ];
    write_export(&dir, &FixtureOptions::new("exp", "shop"), &fixture)?;
    let target = ScratchDb::create("pgfleet_status_plan_dst_").await?;
    target
        .client()
        .await?
        .batch_execute(
            "CREATE TABLE t (id bigint PRIMARY KEY);
             CREATE TABLE c (id bigint PRIMARY KEY, t_id bigint REFERENCES t)",
        )
        .await?;
    let restore_spec = |exclude: &str| -> anyhow::Result<PathBuf> {
        let path = dir.join(format!("{}.toml", unique("restore-")));
        std::fs::write(
            &path,
            format!(
                "kind = \"restore\"\nname = \"cli-status\"\n[export]\nurl = \"file://{}/exp/\"\n\
                 database = \"shop\"\n[target]\nurl = \"{}\"\n[tables]\ninclude = [\"*.*\"]\n\
                 exclude = [{exclude}]\n",
                dir.display(),
                target.url
            ),
        )?;
        Ok(path)
    };
    let with_problem = restore_spec("")?;
    let plan = json_of(
        &["plan", with_problem.to_str().unwrap(), "--json"],
        nowhere,
        1,
    );
    assert_versioned(&plan, "restore plan with a problem");
    assert_eq!(plan["kind"], "restore", "{plan}");
    assert_eq!(plan["ok"], false, "{plan}");
    assert!(
        plan["problems"].as_array().is_some_and(|p| p
            .iter()
            .any(|p| p.as_str().is_some_and(|p| p.contains("public.u")))),
        "{plan}"
    );

    let clean = restore_spec("\"public.u\"")?;
    let plan = json_of(&["plan", clean.to_str().unwrap(), "--json"], nowhere, 0);
    assert_versioned(&plan, "restore plan");
    assert_eq!(plan["ok"], true, "{plan}");
    assert_eq!(plan["database"], "shop", "{plan}");
    assert_eq!(plan["waves"], json!([["public.t"], ["public.c"]]), "{plan}");
    let t = table(&plan, "public.t");
    assert_eq!(t["wave"], 1, "{t}");
    assert_eq!(t["expected_rows"], 3, "{t}");
    assert_eq!(t["columns"], json!([{"name": "id", "source": "id"}]), "{t}");
    assert_eq!((&t["files"], &t["tasks"]), (&json!(1), &json!(1)), "{t}");
    let c = table(&plan, "public.c");
    assert_eq!(c["wave"], 2, "{c}");
    // Deferred foreign keys (the default): nothing waits, the key is dropped and put back.
    assert_eq!(c["waits_for"], json!([]), "{c}");
    let fks = plan["dropped_foreign_keys"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert_eq!(fks.len(), 1, "{plan}");
    assert_eq!(
        (&fks[0]["table"], &fks[0]["referenced"]),
        (&json!("public.c"), &json!("public.t"))
    );

    source.drop().await?;
    target.drop().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_filters_by_state_and_limit_and_watches_the_list() -> anyhow::Result<()> {
    let state = ScratchDb::create("pgfleet_status_filters_").await?;
    // `serve` sets up the state database, then goes: the jobs stay as submitted.
    let mut fleet = Fleet::start(&state.url, 0, 1);
    fleet.coordinator.kill();
    let url = state.url.as_str();
    let dir = tempdir();
    let spec = export_spec(&dir, &db_url("never_planned"), 1000);
    let ids: Vec<String> = (0..4).map(|_| submit(&spec, url)).collect();
    let (a, b, c, d) = (
        ids[0].as_str(),
        ids[1].as_str(),
        ids[2].as_str(),
        ids[3].as_str(),
    );
    for id in [b, d] {
        let out = coordinator(&["cancel", id], url);
        assert!(out.status.success(), "cancel: {}", text(&out.stderr));
    }

    let all = json_of(&["status", "--json"], url, 0);
    assert_versioned(&all, "status --json");
    assert_eq!(listed_ids(&all), [d, c, b, a], "newest first: {all}");
    assert_eq!(all["unparseable_dead_letters"], json!([]));
    let listed = |filters: &[&str]| {
        let mut args = vec!["status", "--json"];
        args.extend_from_slice(filters);
        listed_ids(&json_of(&args, url, 0))
    };
    assert_eq!(listed(&["--state", "submitted"]), [c, a]);
    assert_eq!(listed(&["--state", "cancelled"]), [d, b]);
    assert_eq!(listed(&["--state", "running,failed"]), Vec::<String>::new());
    assert_eq!(
        listed(&["--state", "submitted", "--state", "cancelled"]).len(),
        4
    );
    assert_eq!(
        listed(&["--state", "submitted,cancelled", "--limit", "3"]),
        [d, c, b]
    );
    assert_eq!(listed(&["--limit", "1"]), [d]);

    let out = coordinator(&["status", "--state", "cancelled"], url);
    let shown = text(&out.stdout);
    assert!(out.status.success());
    assert!(shown.contains(b) && shown.contains(d), "{shown}");
    assert!(!shown.contains(a) && !shown.contains(c), "{shown}");

    let one = json_of(&["status", a, "--json"], url, 0);
    assert_versioned(&one, "status JOB --json");
    assert_eq!(one["job"]["id"], a);
    assert_eq!(one["job"]["state"], "submitted");
    assert_eq!(one["tables"], json!([]));

    // Usage errors: exit 2, the valid values named.
    for args in [
        &["status", "--state", "bogus"][..],
        &["status", "--state", "running,done"],
        &["status", a, "--state", "running"],
        &["status", a, "--limit", "1"],
        &["status", "--limit", "0"],
        &["status", "--watch", "--json"],
        &["status", "--interval", "1"],
    ] {
        let out = coordinator(args, url);
        assert_eq!(
            out.status.code(),
            Some(2),
            "{args:?}: {}",
            text(&out.stderr)
        );
    }
    let err = text(&coordinator(&["status", "--state", "bogus"], url).stderr);
    assert!(
        err.contains("submitted") && err.contains("cancelled"),
        "the valid states are named: {err}"
    );

    // A cancelled job and an unknown one, waited for: exit 1 with the reason.
    let out = coordinator(&["wait", b], url);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains(&format!("job {b} cancelled")),
        "{}",
        text(&out.stderr)
    );
    let out = coordinator(&["wait", "j-0000000000"], url);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("no job j-0000000000"),
        "{}",
        text(&out.stderr)
    );

    // The watched list: printed again only when it changed, over until every job has ended.
    let watch = Command::new(bin("coordinator"))
        .args(["status", "--watch", "--interval", "0.2"])
        .env("PGFLEET_STATE_URL", url)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    for id in [a, c] {
        let out = coordinator(&["cancel", id], url);
        assert!(out.status.success(), "cancel: {}", text(&out.stderr));
    }
    let started = Instant::now();
    let out = tokio::task::spawn_blocking(move || watch.wait_with_output()).await??;
    assert!(started.elapsed() < Duration::from_secs(20));
    let (shown, err) = (text(&out.stdout), text(&out.stderr));
    assert_eq!(out.status.code(), Some(0), "{shown}\n{err}");
    assert!(
        !shown.contains('\u{1b}'),
        "no terminal, no escape codes: {shown:?}"
    );
    let frames: Vec<&str> = shown.split("\n\n").collect();
    // One frame with two jobs submitted, maybe one with one, one with none: never a repeat,
    // though the list was read every 0.2 s.
    assert!((2..=3).contains(&frames.len()), "{shown}");
    assert!(frames[0].contains("submitted"), "{shown}");
    let last = frames[frames.len() - 1];
    assert!(
        !last.contains("submitted") && last.matches("cancelled").count() == 4,
        "{shown}"
    );
    assert!(err.contains("no job is submitted or running"), "{err}");

    drop(fleet);
    state.drop().await?;
    Ok(())
}

/// A source with one small table, and a fleet of one worker.
async fn small_export() -> anyhow::Result<(ScratchDb, ScratchDb, Fleet, PathBuf)> {
    let source = ScratchDb::create("pgfleet_status_src_").await?;
    source
        .client()
        .await?
        .batch_execute(
            "CREATE TABLE items (id bigint PRIMARY KEY, v text);
             INSERT INTO items SELECT g, 'v' || g FROM generate_series(1, 3000) g; ANALYZE",
        )
        .await?;
    let state = ScratchDb::create("pgfleet_status_state_").await?;
    let fleet = Fleet::start(&state.url, 1, 2);
    let dir = tempdir();
    Ok((source, state, fleet, dir))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wait_exits_with_the_outcome_of_a_job_submitted_earlier() -> anyhow::Result<()> {
    let (source, state, fleet, dir) = small_export().await?;
    let url = state.url.as_str();
    let id = submit(&export_spec(&dir, &source.url, 1000), url);
    let out = coordinator(&["wait", &id], url);
    let err = text(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{err}\ncoordinator: {}",
        fleet.coordinator.logs()
    );
    assert!(err.contains(&format!("job {id} succeeded")), "{err}");
    assert!(out.stdout.is_empty(), "progress goes to stderr");

    let status = json_of(&["status", &id, "--json"], url, 0);
    assert_versioned(&status, "status JOB --json");
    assert_eq!(status["job"]["state"], "succeeded");
    assert_eq!(status["job"]["kind"], "export");
    assert_eq!(status["job"]["rows"], 3000);
    let items = table(&status, "public.items");
    assert_eq!(
        (&items["schema"], &items["name"]),
        (&json!("public"), &json!("items"))
    );
    assert_eq!(items["chunks_failed"], 0);
    assert!(items["expected_rows"].is_null(), "{items}");
    assert_versioned(&json_of(&["status", "--json"], url, 0), "status --json");

    // A job that fails (its source does not exist): exit 1, and why.
    let failing = submit(&export_spec(&dir, &db_url(&unique("missing_")), 1000), url);
    let out = coordinator(&["wait", &failing], url);
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains(&format!("job {failing} failed")), "{err}");

    drop(fleet);
    source.drop().await?;
    state.drop().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watching_a_job_without_a_terminal_prints_plain_lines() -> anyhow::Result<()> {
    let (source, state, fleet, dir) = small_export().await?;
    let url = state.url.as_str();
    let id = submit(&export_spec(&dir, &source.url, 500), url);
    let out = coordinator(&["status", "--watch", &id], url);
    let err = text(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{err}\ncoordinator: {}",
        fleet.coordinator.logs()
    );
    assert!(
        !err.contains('\u{1b}') && !err.contains('\r'),
        "plain lines: {err:?}"
    );
    let progress: Vec<&str> = err
        .lines()
        .filter(|l| l.starts_with("progress: "))
        .collect();
    assert!(
        !progress.is_empty() && progress.iter().all(|l| l.contains(" chunks, ")),
        "{err}"
    );
    assert!(
        err.lines()
            .last()
            .is_some_and(|l| l.starts_with(&format!("job {id} succeeded: "))),
        "{err}"
    );

    let failing = submit(&export_spec(&dir, &db_url(&unique("missing_")), 500), url);
    let out = coordinator(&["status", "--watch", &failing], url);
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains(&format!("job {failing} failed")), "{err}");
    // An unknown job is an error too, not an endless wait.
    let out = coordinator(&["status", "--watch", "j-0000000000"], url);
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("no job j-0000000000"), "{err}");

    drop(fleet);
    source.drop().await?;
    state.drop().await?;
    Ok(())
}
