//! `coordinator submit`: hand a job to `serve` through the state database.

use super::wait::wait_for;
use super::{load_spec, new_job_id};
use crate::store::PgStore;
use anyhow::Result;
use std::path::Path;
use std::process::ExitCode;

pub async fn run(path: &Path, wait: bool, state_url: &str) -> Result<ExitCode> {
    let spec = load_spec(path)?;
    let store = PgStore::open(state_url).await?;
    let id = new_job_id();
    store.submit(&id, &spec).await?;
    crate::outln!("{id}");
    if !store.serve_running().await? {
        crate::errln!("warning: no `coordinator serve` is running against this state database; the job waits until one starts");
    }
    if !wait {
        return Ok(ExitCode::SUCCESS);
    }
    wait_for(&store, &id).await
}
