//! `coordinator wait JOB` (and `submit --wait`, `status --watch JOB`): follow one job to its
//! end, with a progress bar on a terminal and plain lines otherwise.

use super::progress::Progress;
use crate::store::PgStore;
use anyhow::Result;
use std::process::ExitCode;
use std::time::Duration;

/// Follow job `id` until it ends: exit 0 if it succeeded, 1 if it failed or was cancelled.
/// An unknown id is an error (exit 1 too, with a message saying so).
pub async fn run(id: &str, state_url: &str) -> Result<ExitCode> {
    let store = PgStore::open(state_url).await?;
    if store.job_state(id).await?.is_none() {
        anyhow::bail!("no job {id} in this state database; `coordinator status` lists jobs");
    }
    wait_for(&store, id).await
}

/// Poll the job until it ends; exit code 0 only for success.
pub async fn wait_for(store: &PgStore, id: &str) -> Result<ExitCode> {
    let mut progress = Progress::new(id);
    let mut waiting_since: Option<std::time::Instant> = None;
    // Woken by job notifications; the sleeps below are the fallback.
    let mut changed = store.watch_jobs().await;
    loop {
        let Some(s) = store.job_summary(id).await? else {
            anyhow::bail!("job {id} disappeared from the state database");
        };
        if s.state != "submitted" {
            progress.update(
                s.chunks_done as u64,
                s.chunks_total as u64,
                s.rows as u64,
                s.bytes as u64,
            );
        }
        match s.state.as_str() {
            "succeeded" => {
                progress.finish();
                crate::errln!(
                    "job {id} succeeded: {} chunk(s), {} rows, {} bytes",
                    s.chunks_total,
                    s.rows,
                    s.bytes
                );
                return Ok(ExitCode::SUCCESS);
            }
            "failed" | "cancelled" => {
                progress.finish();
                crate::errln!(
                    "job {id} {}: {}",
                    s.state,
                    s.error.as_deref().unwrap_or("no reason recorded")
                );
                crate::errln!("see `coordinator status {id}`; fix the cause and submit again (finished parts are overwritten, not duplicated)");
                return Ok(ExitCode::FAILURE);
            }
            "submitted" => {
                // Not picked up yet: say why, every 10 s, instead of a silent 0/0 bar.
                let since = *waiting_since.get_or_insert_with(std::time::Instant::now);
                if since.elapsed() >= Duration::from_secs(10) {
                    waiting_since = Some(std::time::Instant::now());
                    if !store.serve_running().await? {
                        crate::errln!("job {id} is waiting: no `coordinator serve` is running against this state database");
                    }
                }
                sleep_or_change(&mut changed, id, Duration::from_millis(500)).await;
            }
            _ => sleep_or_change(&mut changed, id, Duration::from_millis(250)).await,
        }
    }
}

/// Sleep up to `limit`, or less when job `id` changes.
async fn sleep_or_change(
    changed: &mut tokio::sync::mpsc::UnboundedReceiver<String>,
    id: &str,
    limit: Duration,
) {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        tokio::select! {
            _ = tokio::time::sleep_until(deadline) => return,
            got = changed.recv() => match got {
                Some(changed_id) if changed_id == id => return,
                Some(_) => {}
                None => {
                    tokio::time::sleep_until(deadline).await;
                    return;
                }
            },
        }
    }
}
