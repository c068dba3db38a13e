//! `coordinator submit`: hand a job to `serve` through the state database.

use super::wait::wait_for;
use super::{load_spec, new_job_id};
use crate::job::JobState;
use crate::store::PgStore;
use anyhow::Result;
use std::path::Path;
use std::process::ExitCode;

pub async fn run(path: &Path, wait: bool, verify: bool, state_url: &str) -> Result<ExitCode> {
    let spec = load_spec(path)?;
    let store = PgStore::open(state_url).await?;
    let id = new_job_id();
    store.submit(&id, &spec).await?;
    crate::outln!("{id}");
    if !store.serve_running().await? {
        crate::errln!("warning: no `coordinator serve` is running against this state database; the job waits until one starts");
    }
    if !wait && !verify {
        return Ok(ExitCode::SUCCESS);
    }
    let code = wait_for(&store, &id).await?;
    if !verify || store.job_state(&id).await?.as_deref() != Some(JobState::Succeeded.as_str()) {
        return Ok(code);
    }
    if super::verify::after_job(&id, &spec).await {
        return Ok(code);
    }
    store
        .set_job_state(
            &id,
            JobState::Failed,
            Some("coordinator verify found differences after the job (see its report)"),
        )
        .await?;
    Ok(ExitCode::FAILURE)
}
