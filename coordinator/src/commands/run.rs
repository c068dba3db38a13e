//! `coordinator run`: one process, in-process workers, no RabbitMQ and no state database.

use super::load_spec;
use super::new_job_id;
use super::progress::Progress;
use crate::engine::{Engine, Publisher};
use crate::job::JobState;
use anyhow::Result;
use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;
use tokio::sync::mpsc;
use worker::context::WorkerContext;

pub async fn run(path: &Path, workers: usize) -> Result<ExitCode> {
    let spec = load_spec(path)?;
    let id = new_job_id();
    let ctx = WorkerContext::new("local");
    let (results_tx, mut results) = mpsc::unbounded_channel();
    let (tasks, _workers) = worker::local::spawn_workers(ctx.clone(), workers, results_tx);
    let mut engine = Engine::new(None, Publisher::Local(tasks), ctx);
    engine.start_job(&id, spec).await?;
    let mut progress = Progress::new(&id);
    let mut tick = tokio::time::interval(Duration::from_millis(200));
    loop {
        engine.pump().await?;
        let job = engine
            .job(&id)
            .expect("the job stays in the engine until it ends");
        let c = job.counts();
        progress.update(c.done, job.chunks.len() as u64, c.rows, c.bytes);
        if job.state.is_terminal() {
            break;
        }
        tokio::select! {
            Some(r) = results.recv() => engine.on_result(&r).await?,
            _ = tick.tick() => {}
        }
    }
    progress.finish();
    let job = engine.job(&id).expect("job present");
    let c = job.counts();
    match job.state {
        JobState::Succeeded => {
            let destination = match &job.spec {
                protocol::JobSpec::Export(e) => e.output.url.clone(),
                protocol::JobSpec::Restore(r) => r
                    .target
                    .url
                    .as_deref()
                    .map(protocol::spec::redact_url)
                    .unwrap_or_else(|| "the PG* target".into()),
            };
            for (i, t) in job.tables.iter().enumerate() {
                if let crate::job::TableWork::Restore(r) = &t.work {
                    crate::outln!(
                        "  {:<40} {:>12} rows loaded, {:>12} in the export",
                        r.table.display_name(),
                        job.table_rows(i as u32),
                        r.expected_rows
                    );
                }
            }
            crate::outln!(
                "job {id} succeeded: {} table(s), {} chunk(s), {} rows, {} bytes → {destination}",
                job.tables.len(),
                job.chunks.len(),
                c.rows,
                c.bytes,
            );
            Ok(ExitCode::SUCCESS)
        }
        _ => {
            crate::errln!(
                "job {id} {}: {}",
                job.state.as_str(),
                job.error.as_deref().unwrap_or("no reason recorded")
            );
            Ok(ExitCode::FAILURE)
        }
    }
}
