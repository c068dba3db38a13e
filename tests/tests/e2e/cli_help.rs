//! Help that teaches, from the outside:
//! - the top-level help names both jobs; every subcommand's help has an example;
//! - every environment variable the binaries' code reads appears in their `--help`, and a bad
//!   value of one (PGFLEET_S3_ATTEMPT_TIMEOUT, RUST_LOG) is an error (exit 2), not a warning;
//! - `completions bash|zsh|fish` and `man` for both binaries;
//! - `-q` / `-v` change what is logged.

use pgfleet_tests::procs::strip_ansi;
use pgfleet_tests::*;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn run(binary: &str, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(bin(binary));
    cmd.args(args)
        .env_remove("PGFLEET_LOG_FORMAT")
        .env_remove("RUST_LOG");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("run binary")
}

fn out(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn err(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

const COORDINATOR_COMMANDS: &[&str] = &[
    "serve",
    "submit",
    "status",
    "wait",
    "cancel",
    "check",
    "run",
    "repair",
    "validate",
    "plan",
    "completions",
    "man",
];

/// `--help` of the binary and of each of its subcommands, concatenated.
fn all_help(binary: &str, commands: &[&str]) -> String {
    let mut text = out(&run(binary, &["--help"], &[]));
    for c in commands {
        let o = run(binary, &[c, "--help"], &[]);
        assert_eq!(o.status.code(), Some(0), "{binary} {c} --help: {}", err(&o));
        let help = out(&o);
        assert!(
            help.contains("Example"),
            "{binary} {c} --help has no example:\n{help}"
        );
        text.push_str(&help);
    }
    text
}

#[test]
fn help_names_both_jobs_and_every_command_has_an_example() {
    for flag in ["-h", "--help"] {
        let help = out(&run("coordinator", &[flag], &[]));
        let lower = help.to_lowercase();
        assert!(
            lower.contains("export") && lower.contains("restore"),
            "{help}"
        );
        for c in COORDINATOR_COMMANDS {
            assert!(
                help.contains(&format!("  {c} ")),
                "{c} missing from:\n{help}"
            );
        }
    }
    all_help("coordinator", COORDINATOR_COMMANDS);
    let worker = all_help("worker", &["completions", "man"]);
    assert!(worker.contains("Example"), "{worker}");
}

/// Environment variable names read by production code under `dirs` (tests cut off), except
/// in the files `skip`.
fn env_names_read(dirs: &[&str], skip: &[&str]) -> BTreeSet<String> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let skip: Vec<PathBuf> = skip.iter().map(|s| root.join(s)).collect();
    let mut names = BTreeSet::new();
    for d in dirs {
        for f in rust_files(&root.join(d))
            .into_iter()
            .filter(|f| !skip.contains(f))
        {
            let text = std::fs::read_to_string(&f).unwrap();
            let code = text.split("#[cfg(test)]").next().unwrap_or_default();
            for pat in ["env = \"", "env::var(\"", "env::var_os(\"", "env(\""] {
                for piece in code.split(pat).skip(1) {
                    let name: String = piece
                        .chars()
                        .take_while(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || *c == '_')
                        .collect();
                    if name.len() > 2 && piece[name.len()..].starts_with('"') {
                        names.insert(name);
                    }
                }
            }
        }
    }
    names
}

fn rust_files(dir: &Path) -> Vec<PathBuf> {
    if dir.is_file() {
        return vec![dir.to_path_buf()];
    }
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(rust_files(&p));
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
    out
}

#[test]
fn every_environment_variable_read_is_in_help() {
    let coordinator = all_help("coordinator", COORDINATOR_COMMANDS);
    let worker = all_help("worker", &["completions", "man"]);
    // What both binaries run (the coordinator embeds workers for `run`), and each one's own.
    let shared = env_names_read(
        &["io/src", "protocol/src", "worker/src"],
        &["worker/src/main.rs"],
    );
    let own = env_names_read(&["coordinator/src"], &[]);
    let worker_own = env_names_read(&["worker/src/main.rs"], &[]);
    // The scan finds what it should (so an empty scan cannot pass).
    for n in [
        "PGFLEET_S3_ATTEMPT_TIMEOUT",
        "PGPASSWORD",
        "PGHOST",
        "PGFLEET_AMQP_URL",
    ] {
        assert!(shared.contains(n), "{n} not found by the scan: {shared:?}");
    }
    assert!(own.contains("PGFLEET_STATE_URL"), "{own:?}");
    let mut missing = Vec::new();
    for n in shared.iter().chain(&own) {
        if !coordinator.contains(n.as_str()) {
            missing.push(format!("coordinator: {n}"));
        }
    }
    for n in shared.iter().chain(&worker_own) {
        if !worker.contains(n.as_str()) {
            missing.push(format!("worker: {n}"));
        }
    }
    assert!(worker_own.contains("PGFLEET_CONCURRENCY"), "{worker_own:?}");
    assert!(missing.is_empty(), "not in --help: {missing:?}");
    for help in [&coordinator, &worker] {
        assert!(help.contains("RUST_LOG") && help.contains("PGFLEET_S3_ATTEMPT_TIMEOUT"));
    }
}

#[test]
fn a_bad_environment_value_is_an_error() {
    let spec = std::env::temp_dir()
        .join(unique("pgfleet-env-"))
        .with_extension("toml");
    std::fs::write(&spec, "kind = \"export\"\n").unwrap();
    let spec = spec.to_str().unwrap();
    for binary in ["coordinator", "worker"] {
        let args: &[&str] = if binary == "coordinator" {
            &["validate", spec]
        } else {
            // Fails before it connects anywhere.
            &["--amqp-url", "amqp://127.0.0.1:1/%2f"]
        };
        let o = run(binary, args, &[("PGFLEET_S3_ATTEMPT_TIMEOUT", "soon")]);
        assert_eq!(o.status.code(), Some(2), "{binary}: {}", err(&o));
        assert!(
            err(&o).contains("PGFLEET_S3_ATTEMPT_TIMEOUT"),
            "{}",
            err(&o)
        );
        let o = run(binary, args, &[("PGFLEET_S3_ATTEMPT_TIMEOUT", "0")]);
        assert_eq!(o.status.code(), Some(2), "{binary}: {}", err(&o));
        let o = run(binary, args, &[("RUST_LOG", "info,worker=loud")]);
        assert_eq!(o.status.code(), Some(2), "{binary}: {}", err(&o));
        assert!(
            err(&o).contains("RUST_LOG=\"info,worker=loud\" is not a log filter"),
            "{}",
            err(&o)
        );
    }
    // A good value is taken.
    let o = run(
        "coordinator",
        &["validate", spec],
        &[("PGFLEET_S3_ATTEMPT_TIMEOUT", "2.5"), ("RUST_LOG", "warn")],
    );
    assert_eq!(o.status.code(), Some(78), "{}", err(&o));
}

#[test]
fn completions_and_man_pages() {
    for binary in ["coordinator", "worker"] {
        for shell in ["bash", "zsh", "fish"] {
            let o = run(binary, &["completions", shell], &[]);
            assert_eq!(o.status.code(), Some(0), "{binary} {shell}: {}", err(&o));
            let script = out(&o);
            assert!(
                script.contains("completions") && script.contains("log-format"),
                "{binary} {shell}"
            );
            assert!(
                script.contains(binary),
                "{binary} {shell}: names the binary"
            );
        }
        // The bash script is valid bash, and completes the subcommands.
        let script = out(&run(binary, &["completions", "bash"], &[]));
        let path = std::env::temp_dir().join(unique("pgfleet-completion-"));
        std::fs::write(&path, &script).unwrap();
        let check = Command::new("bash").arg("-n").arg(&path).output().unwrap();
        assert!(
            check.status.success(),
            "{}",
            String::from_utf8_lossy(&check.stderr)
        );
        let man = out(&run(binary, &["man"], &[]));
        assert!(
            man.contains(&format!(".TH {binary} 1")),
            "{}",
            &man[..man.len().min(300)]
        );
        assert!(man.contains("completions"));
    }
    let script = out(&run("coordinator", &["completions", "bash"], &[]));
    assert!(script.contains("validate") && script.contains("repair"));
    assert_eq!(
        run("coordinator", &["completions", "tcsh"], &[])
            .status
            .code(),
        Some(2)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quiet_and_verbose_change_the_log() -> anyhow::Result<()> {
    let db = ScratchDb::create("pgfleet_verbosity_").await?;
    db.client()
        .await?
        .batch_execute(
            "CREATE TABLE t (id bigint PRIMARY KEY); INSERT INTO t SELECT generate_series(1, 10)",
        )
        .await?;
    let dir = std::env::temp_dir().join(unique("pgfleet-verbosity-"));
    std::fs::create_dir_all(&dir)?;
    let spec = dir.join("spec.toml");
    std::fs::write(
        &spec,
        format!(
            "kind = \"export\"\nname = \"v\"\n[source]\nurl = \"{}\"\n[tables]\ninclude = [\"public.t\"]\n\
             [output]\nurl = \"file://{}/out/\"\n",
            db.url,
            dir.display()
        ),
    )?;
    let spec = spec.to_str().unwrap();
    let levels = |args: &[&str]| {
        let mut a = args.to_vec();
        a.extend(["run", spec, "--workers", "1"]);
        let o = run("coordinator", &a, &[]);
        assert!(o.status.success(), "{a:?}: {}", err(&o));
        let e = strip_ansi(&err(&o));
        ["TRACE", "DEBUG", " INFO", " WARN"].map(|l| e.lines().any(|x| x.contains(l)))
    };
    let [_, debug, info, _] = levels(&[]);
    assert!(info && !debug, "default: info, no debug");
    let [_, _, info, _] = levels(&["-q"]);
    assert!(!info, "-q: no info lines");
    let [_, debug, _, _] = levels(&["-v"]);
    assert!(debug, "-v: debug lines");
    // RUST_LOG works when no flag is given; a flag wins over it.
    let o = run(
        "coordinator",
        &["run", spec, "--workers", "1"],
        &[("RUST_LOG", "warn")],
    );
    assert!(!strip_ansi(&err(&o)).contains(" INFO"), "{}", err(&o));
    let o = run(
        "coordinator",
        &["-v", "run", spec, "--workers", "1"],
        &[("RUST_LOG", "warn")],
    );
    assert!(strip_ansi(&err(&o)).contains("DEBUG"), "{}", err(&o));
    assert_eq!(
        run("coordinator", &["-v", "-q", "validate", spec], &[])
            .status
            .code(),
        Some(2)
    );
    db.drop().await?;
    Ok(())
}
