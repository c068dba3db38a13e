//! `coordinator validate`: check job specs offline — no network, nothing read but the files
//! and the environment variables they name — and report every problem at once.

use protocol::spec::Problem;
use protocol::JobSpec;
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// Exit status of an invalid spec: EX_CONFIG from sysexits.h, as `vector validate` uses.
pub const INVALID: u8 = 78;

/// What `--json` prints (`version` changes only when a field changes meaning or goes away).
#[derive(Serialize)]
struct Report {
    version: u32,
    valid: bool,
    specs: Vec<SpecReport>,
}

#[derive(Serialize)]
struct SpecReport {
    path: PathBuf,
    valid: bool,
    /// `export` or `restore`, when the spec parsed.
    kind: Option<&'static str>,
    name: Option<String>,
    /// The spec as the other commands would read it (`${VAR}` interpolated, defaults filled
    /// in), when valid. A spec never holds a password, so this shows no secret.
    spec: Option<JobSpec>,
    problems: Vec<Problem>,
}

pub fn run(paths: &[PathBuf], json: bool) -> ExitCode {
    let specs: Vec<SpecReport> = paths.iter().map(|p| check(p)).collect();
    let valid = specs.iter().all(|s| s.valid);
    if json {
        let report = Report {
            version: 1,
            valid,
            specs,
        };
        match serde_json::to_string_pretty(&report) {
            Ok(s) => crate::outln!("{s}"),
            Err(e) => crate::errln!("error: {e}"),
        }
    } else {
        for s in &specs {
            print_text(s);
        }
    }
    if valid {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(INVALID)
    }
}

fn check(path: &Path) -> SpecReport {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) => {
            return SpecReport {
                path: path.to_path_buf(),
                valid: false,
                kind: None,
                name: None,
                spec: None,
                problems: vec![Problem {
                    line: None,
                    column: None,
                    key: None,
                    message: format!("cannot read the file: {e}"),
                }],
            }
        }
    };
    match JobSpec::load(&text, &super::env_var) {
        Ok(spec) => SpecReport {
            path: path.to_path_buf(),
            valid: true,
            kind: Some(spec.kind()),
            name: Some(spec.name().to_string()),
            spec: Some(spec),
            problems: Vec::new(),
        },
        Err(problems) => SpecReport {
            path: path.to_path_buf(),
            valid: false,
            kind: None,
            name: None,
            spec: None,
            problems,
        },
    }
}

fn print_text(s: &SpecReport) {
    let path = s.path.display();
    match (s.kind, &s.name) {
        (Some(kind), Some(name)) if s.valid => {
            crate::outln!("{path}: valid {kind} job {name:?}")
        }
        _ => {
            let n = s.problems.len();
            crate::outln!(
                "{path}: invalid, {n} problem{}:",
                if n == 1 { "" } else { "s" }
            );
            for p in &s.problems {
                crate::outln!("  {p}");
            }
        }
    }
}
