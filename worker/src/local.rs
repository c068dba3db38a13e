//! In-process task queue for `coordinator run`: the same `execute` as the RabbitMQ consumer, fed
//! by a channel instead of a broker.

use crate::context::WorkerContext;
use crate::execute::execute;
use protocol::{ResultEnvelope, TaskEnvelope};
use std::sync::Arc;
use tokio::sync::{mpsc, Mutex};
use tokio::task::JoinSet;

/// Start `workers` executors. Tasks sent on the returned sender are run and their results sent
/// on `results`. Dropping the sender stops the executors once the queue is drained.
pub fn spawn_workers(
    ctx: WorkerContext,
    workers: usize,
    results: mpsc::UnboundedSender<ResultEnvelope>,
) -> (mpsc::UnboundedSender<TaskEnvelope>, JoinSet<()>) {
    let (tx, rx) = mpsc::unbounded_channel::<TaskEnvelope>();
    let rx = Arc::new(Mutex::new(rx));
    let mut set = JoinSet::new();
    for _ in 0..workers.max(1) {
        let (ctx, rx, results) = (ctx.clone(), rx.clone(), results.clone());
        set.spawn(async move {
            loop {
                let next = rx.lock().await.recv().await;
                let Some(task) = next else { break };
                if results.send(execute(&ctx, &task).await).is_err() {
                    break;
                }
            }
        });
    }
    (tx, set)
}
