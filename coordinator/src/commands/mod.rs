//! One module per CLI subcommand; `main.rs` only parses arguments.

pub mod check;
pub mod plan;
pub mod progress;
pub mod repair;
pub mod run;
pub mod serve;
pub mod status;
pub mod submit;

use anyhow::{Context, Result};
use protocol::JobSpec;
use std::path::Path;

/// Read and validate a job spec file; errors name the file and every problem in it.
pub fn load_spec(path: &Path) -> Result<JobSpec> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read job spec {}", path.display()))?;
    JobSpec::from_toml(&text)
        .map_err(|e| anyhow::anyhow!("job spec {} is invalid:\n{e}", path.display()))
}

/// Short random job id, e.g. `j-3f9a1c2b7d`.
pub fn new_job_id() -> String {
    format!("j-{}", &uuid::Uuid::new_v4().simple().to_string()[..10])
}
