//! One module per CLI subcommand; `main.rs` only parses arguments.

pub mod check;
pub mod json_view;
pub mod plan;
pub mod progress;
pub mod repair;
pub mod run;
pub mod serve;
pub mod status;
pub mod submit;
pub mod validate;
pub mod verify;
pub mod wait;

use anyhow::{Context, Result};
use protocol::JobSpec;
use std::path::Path;

/// Read a job spec file, interpolate `${VAR}` from this process's environment, and check it;
/// errors name the file and every problem in it.
pub fn load_spec(path: &Path) -> Result<JobSpec> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read job spec {}", path.display()))?;
    JobSpec::load(&text, &env_var).map_err(|p| {
        anyhow::anyhow!(
            "job spec {} is invalid:\n{}",
            path.display(),
            protocol::spec::problem_lines(&p)
        )
    })
}

/// A variable of this process's environment, for `${VAR}` in specs (not valid Unicode: unset).
pub fn env_var(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

/// Short random job id, e.g. `j-3f9a1c2b7d`.
pub fn new_job_id() -> String {
    format!("j-{}", &uuid::Uuid::new_v4().simple().to_string()[..10])
}
