//! `coordinator serve`: the long-running driver of submitted jobs.

use crate::broker::queue_stats::QueueMonitor;
use crate::broker::rabbitmq_api::ManagementApi;
use crate::broker::{AmqpBroker, Inbound};
use crate::engine::{Engine, Publisher};
use crate::store::PgStore;
use crate::store::StateStore;
use anyhow::Result;
use fleet_io::clients::Clients;
use protocol::topology::Topology;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

pub async fn run(
    state_url: &str,
    amqp_url: &str,
    topology: Topology,
    (metrics_addr, metrics_access): (SocketAddr, fleet_io::http::MetricsAccess),
    cloudwatch: Option<CloudWatchOptions>,
    rabbitmq_api: Option<ManagementApi>,
    stall_timeout: Option<Duration>,
) -> Result<ExitCode> {
    let namespace = topology.namespace.clone();
    let store = PgStore::connect(state_url).await?;
    let _serve_lock = store.lock_serve().await?;
    let ready = Arc::new(AtomicBool::new(false));
    let metrics = crate::metrics::metrics();
    let addr = fleet_io::http::spawn_with_access(metrics_addr, ready.clone(), metrics_access)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {metrics_addr} for metrics: {e}"))?;
    tracing::info!(%addr, "serving /metrics and /healthz");

    let shutdown = CancellationToken::new();
    spawn_signal_handler(shutdown.clone());
    let (tx, mut inbound) = mpsc::channel(64);
    let broker = AmqpBroker::spawn(amqp_url.to_string(), topology.clone(), tx, shutdown.clone());
    if let Some(api) = &rabbitmq_api {
        tracing::info!(api = %api.describe(), "queue counts from the RabbitMQ management API");
    }
    let mut queues = QueueMonitor::new(broker.clone(), rabbitmq_api, topology);
    let (stats_tx, stats_rx) = watch::channel(None);
    if let Some(cw) = cloudwatch {
        crate::broker::cloudwatch::BacklogPublisher {
            stats: stats_rx,
            namespace,
            every: cw.every,
            endpoint: cw.endpoint,
        }
        .spawn(shutdown.clone());
    }
    let mut engine = Engine::new(
        StateStore::Postgres(Box::new(store.clone())),
        Publisher::Amqp(broker.clone()),
        Clients::new("coordinator"),
    )
    .with_stall_timeout(stall_timeout);
    for job in store.load_active().await? {
        engine.resume(job).await?;
    }
    let mut tick = tokio::time::interval(Duration::from_millis(500));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // A submitted or cancelled job is taken up at once, not on the next tick.
    let mut jobs_changed = store.watch_jobs().await;
    let mut last_error = String::new();
    tracing::info!("coordinator ready");
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            Some(msg) = inbound.recv() => {
                receive(&mut engine, msg).await;
                // Whatever else has arrived is applied before pumping once for all of it.
                for _ in 0..MAX_RESULTS_PER_PUMP {
                    match inbound.try_recv() {
                        Ok(msg) => receive(&mut engine, msg).await,
                        Err(_) => break,
                    }
                }
                // A finished chunk frees a slot in its window: fill it now, not on the next tick.
                if let Err(e) = engine.pump().await {
                    tracing::debug!(error = %format!("{e:#}"), "pump after a result failed; the tick retries");
                }
            }
            Some(_) = jobs_changed.recv() => tick.reset_immediately(),
            _ = tick.tick() => {
                ready.store(broker.connected().await, Ordering::Relaxed);
                match step(&store, &mut engine).await {
                    Ok(()) => last_error.clear(),
                    Err(e) => {
                        let msg = format!("{e:#}");
                        if msg != last_error {
                            tracing::warn!(error = %msg, "will retry");
                            last_error = msg;
                        }
                    }
                }
                let published_unfinished = metrics.refresh(engine.jobs());
                let stats = queues.sample(published_unfinished).await;
                metrics.set_queue(stats.as_ref());
                stats_tx.send_replace(stats);
            }
        }
    }
    tracing::info!("coordinator stopped; running jobs continue when it starts again");
    Ok(ExitCode::SUCCESS)
}

/// Results applied between two pumps at most (the result consumer's prefetch).
const MAX_RESULTS_PER_PUMP: usize = 64;

/// Record one inbound message; ack it only once recorded (anything else is redelivered).
async fn receive(engine: &mut Engine, msg: Inbound) {
    let (outcome, done) = match msg {
        Inbound::Result(r, done) => (engine.on_result(&r).await, done),
        Inbound::DeadLetter(d, done) => (engine.on_dead_letter(&d).await, done),
    };
    // Ack only what was recorded; anything else goes back to the queue.
    if let Err(e) = &outcome {
        tracing::warn!(error = %format!("{e:#}"), "could not record a message; it will be redelivered");
    }
    let _ = done.send(outcome.is_ok());
}

/// `--cloudwatch-backlog`: publish the task backlog for Auto Scaling.
pub struct CloudWatchOptions {
    pub every: Duration,
    pub endpoint: Option<String>,
}

async fn step(store: &PgStore, engine: &mut Engine) -> Result<()> {
    for (id, spec) in store.take_submitted().await? {
        engine.start_job(&id, spec).await?;
    }
    for id in store.cancel_requests().await? {
        engine.cancel(&id).await?;
    }
    engine.pump().await?;
    for job in engine.take_finished() {
        crate::metrics::metrics().finished(&job);
    }
    Ok(())
}

fn spawn_signal_handler(shutdown: CancellationToken) {
    tokio::spawn(async move {
        let Ok(mut term) =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        else {
            return;
        };
        tokio::select! {
            _ = term.recv() => {}
            _ = tokio::signal::ctrl_c() => {}
        }
        shutdown.cancel();
    });
}
