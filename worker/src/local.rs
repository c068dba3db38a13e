//! In-process task queue for `coordinator run`: the same `execute` as the RabbitMQ consumer, fed
//! by a channel instead of a broker.

use crate::execute::execute;
use fleet_io::clients::Clients;
use protocol::{ResultEnvelope, TaskEnvelope};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, Mutex};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

/// In-process executors. Tasks sent on `tasks` are run and their results sent on the results
/// channel given to [`spawn_workers`].
pub struct LocalWorkers {
    pub tasks: mpsc::UnboundedSender<TaskEnvelope>,
    set: JoinSet<()>,
    stop: CancellationToken,
    running: Arc<AtomicUsize>,
}

/// Start `workers` executors. Dropping the returned sender stops them once the queue is drained.
pub fn spawn_workers(
    ctx: Clients,
    workers: usize,
    results: mpsc::UnboundedSender<ResultEnvelope>,
) -> LocalWorkers {
    let (tx, rx) = mpsc::unbounded_channel::<TaskEnvelope>();
    let rx = Arc::new(Mutex::new(rx));
    let stop = CancellationToken::new();
    let running = Arc::new(AtomicUsize::new(0));
    let mut set = JoinSet::new();
    for _ in 0..workers.max(1) {
        let (ctx, rx, results) = (ctx.clone(), rx.clone(), results.clone());
        let (stop, running) = (stop.clone(), running.clone());
        set.spawn(async move {
            loop {
                let next = tokio::select! {
                    t = async { rx.lock().await.recv().await } => t,
                    _ = stop.cancelled() => None,
                };
                let Some(task) = next else { break };
                running.fetch_add(1, Ordering::SeqCst);
                let result = execute(&ctx, &task).await;
                running.fetch_sub(1, Ordering::SeqCst);
                if results.send(result).is_err() || stop.is_cancelled() {
                    break;
                }
            }
        });
    }
    LocalWorkers {
        tasks: tx,
        set,
        stop,
        running,
    }
}

impl LocalWorkers {
    /// Start no new task; let the running ones finish for up to `deadline`, then abort them
    /// (their connections close, so PostgreSQL rolls back an unfinished COPY). Returns how many
    /// were aborted.
    pub async fn stop(&mut self, deadline: Duration) -> usize {
        self.stop.cancel();
        let until = tokio::time::Instant::now() + deadline;
        while self.running.load(Ordering::SeqCst) > 0 && tokio::time::Instant::now() < until {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let aborted = self.running.load(Ordering::SeqCst);
        self.set.abort_all();
        while self.set.join_next().await.is_some() {}
        aborted
    }
}
