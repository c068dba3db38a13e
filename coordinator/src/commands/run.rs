//! `coordinator run`: one process, in-process workers, no RabbitMQ and no state database.
//!
//! SIGINT or SIGTERM stops it cleanly: no new pieces start, the running ones get
//! `stop_timeout` to finish (then they are aborted, and PostgreSQL rolls back their COPY), a
//! restore puts back what it dropped, and the process exits non-zero saying what it put back and
//! what is still pending. A second signal exits at once: what a restore dropped is recorded in the
//! target, so the next restore into it, or `coordinator repair`, puts it back.

use super::load_spec;
use super::new_job_id;
use super::progress::Progress;
use crate::engine::{Engine, Publisher};
use crate::job::{JobRun, JobState};
use crate::store::{MemoryStore, StateStore};
use anyhow::Result;
use fleet_io::clients::Clients;
use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;
use tokio::sync::mpsc;

/// Undo attempts after an interruption before leaving the rest to the durable record.
const UNDO_ATTEMPTS: u32 = 3;

pub async fn run(
    path: &Path,
    workers: usize,
    stop_timeout: Duration,
    verify: bool,
) -> Result<ExitCode> {
    let spec = load_spec(path)?;
    let verify_spec = verify.then(|| spec.clone());
    let id = new_job_id();
    let ctx = Clients::new("local");
    let (results_tx, mut results) = mpsc::unbounded_channel();
    let mut fleet = worker::local::spawn_workers(ctx.clone(), workers, results_tx);
    let mut engine = Engine::new(
        StateStore::Memory(MemoryStore::new()),
        Publisher::Local(fleet.tasks.clone()),
        ctx,
    );
    let mut signals = Signals::new()?;
    let interrupted = tokio::select! {
        r = engine.start_job(&id, spec) => { r?; None }
        s = signals.next() => Some(s),
    };
    let mut progress = Progress::new(&id);
    let mut tick = tokio::time::interval(Duration::from_millis(200));
    let interrupted = match interrupted {
        Some(s) => Some(s),
        None => loop {
            engine.pump().await?;
            let job = engine
                .job(&id)
                .expect("the job stays in the engine until it ends");
            let c = job.counts();
            progress.update(c.done, job.chunks.len() as u64, c.rows, c.bytes);
            if job.state.is_terminal() {
                break None;
            }
            tokio::select! {
                Some(r) = results.recv() => engine.on_result(&r).await?,
                _ = tick.tick() => {}
                s = signals.next() => break Some(s),
            }
        },
    };
    progress.finish();
    if let Some(signal) = interrupted {
        return stop(
            &mut engine,
            &mut fleet,
            &mut results,
            &mut signals,
            &id,
            signal,
            stop_timeout,
        )
        .await;
    }
    let job = engine.job(&id).expect("job present");
    let c = job.counts();
    match job.state {
        JobState::Succeeded => {
            let destination = match &job.kind {
                crate::job::JobKind::Export(e) => e.spec.output.url.clone(),
                crate::job::JobKind::Restore(r) => r
                    .spec
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
            match verify_spec {
                Some(spec) if !super::verify::after_job(&id, &spec).await => Ok(ExitCode::FAILURE),
                _ => Ok(ExitCode::SUCCESS),
            }
        }
        _ => {
            crate::errln!(
                "job {id} {}: {}",
                job.state.as_str(),
                job.error.as_deref().unwrap_or("no reason recorded")
            );
            if job.restore_state().is_some() {
                crate::errln!("{}", undo_summary(&engine, job));
            }
            Ok(ExitCode::FAILURE)
        }
    }
}

/// After a signal: stop the workers, take the results they still produced, cancel the job and
/// (restore) put back what it changed. Exits 130 after SIGINT, 143 after SIGTERM.
async fn stop(
    engine: &mut Engine,
    fleet: &mut worker::local::LocalWorkers,
    results: &mut mpsc::UnboundedReceiver<protocol::ResultEnvelope>,
    signals: &mut Signals,
    id: &str,
    signal: Signal,
    stop_timeout: Duration,
) -> Result<ExitCode> {
    crate::errln!(
        "{}: stopping job {id}: no new pieces start; waiting up to {} s for the running ones (a second signal exits at once)",
        signal.name(),
        stop_timeout.as_secs()
    );
    let aborted = tokio::select! {
        n = fleet.stop(stop_timeout) => n,
        s = signals.next() => return Ok(exit_now(id, s)),
    };
    if aborted > 0 {
        crate::errln!("{aborted} running piece(s) aborted (rolled back; a re-run does them again)");
    }
    while let Ok(r) = results.try_recv() {
        engine.on_result(&r).await?;
    }
    if engine.job(id).is_some_and(|j| !j.state.is_terminal()) {
        engine.cancel(id).await?;
    }
    let Some(job) = engine.job(id) else {
        return Ok(signal.exit_code());
    };
    let c = job.counts();
    if job.restore_state().is_some() {
        for attempt in 1..=UNDO_ATTEMPTS {
            let pumped = tokio::select! {
                r = engine.pump() => r,
                s = signals.next() => return Ok(exit_now(id, s)),
            };
            if let Err(e) = pumped {
                crate::errln!("putting the target back, attempt {attempt}: {e:#}");
            }
            if engine.undo_report(id).is_some() {
                break;
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }
    let job = engine.job(id).expect("job present");
    crate::errln!(
        "job {id} interrupted by {} after {} of {} piece(s) ({} rows); {}",
        signal.name(),
        c.done,
        job.chunks.len(),
        c.rows,
        if job.restore_state().is_some() {
            "running the same restore again resumes it (loaded pieces are skipped)"
        } else {
            "running it again redoes it (finished parts are overwritten)"
        }
    );
    if job.restore_state().is_some() {
        crate::errln!("{}", undo_summary(engine, job));
    }
    Ok(signal.exit_code())
}

/// What undoing a failed or interrupted restore put back and left pending.
fn undo_summary(engine: &Engine, job: &JobRun) -> String {
    match engine.undo_report(&job.id) {
        Some(report) => format!("target: {}", report.summary()),
        None => "target: what this restore dropped could not be put back now; it is recorded in the target (pgfleet_restore.pending_changes): `coordinator repair` or the next restore into it puts it back".into(),
    }
}

fn exit_now(id: &str, s: Signal) -> ExitCode {
    crate::errln!(
        "{} again: exiting now; whatever job {id} dropped in a restore target is recorded there (pgfleet_restore.pending_changes): `coordinator repair` or the next restore into it puts it back",
        s.name()
    );
    s.exit_code()
}

#[derive(Debug, Clone, Copy)]
enum Signal {
    Interrupt,
    Terminate,
}

impl Signal {
    fn name(self) -> &'static str {
        match self {
            Signal::Interrupt => "SIGINT",
            Signal::Terminate => "SIGTERM",
        }
    }

    /// 128 + the signal's number, as shells report a process a signal ended.
    fn exit_code(self) -> ExitCode {
        match self {
            Signal::Interrupt => ExitCode::from(130),
            Signal::Terminate => ExitCode::from(143),
        }
    }
}

struct Signals {
    int: tokio::signal::unix::Signal,
    term: tokio::signal::unix::Signal,
}

impl Signals {
    fn new() -> Result<Self> {
        use tokio::signal::unix::{signal, SignalKind};
        Ok(Self {
            int: signal(SignalKind::interrupt())?,
            term: signal(SignalKind::terminate())?,
        })
    }

    async fn next(&mut self) -> Signal {
        tokio::select! {
            _ = self.int.recv() => Signal::Interrupt,
            _ = self.term.recv() => Signal::Terminate,
        }
    }
}
