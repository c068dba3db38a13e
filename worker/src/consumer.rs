//! The worker's RabbitMQ loop: consume tasks with prefetch = concurrency, run each, publish its
//! result with a confirm, then ack. A broken connection is retried with backoff; a message that
//! cannot be parsed is rejected to the dead-letter queue and the worker keeps going.

use crate::execute::execute;
use crate::metrics::metrics;
use fleet_io::amqp;
use fleet_io::clients::Clients;
use futures::StreamExt;
use lapin::options::{BasicConsumeOptions, BasicNackOptions, BasicQosOptions, BasicRejectOptions};
use lapin::types::FieldTable;
use lapin::{message::Delivery, Channel};
use protocol::topology::Topology;
use protocol::TaskEnvelope;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

pub struct ConsumerConfig {
    pub amqp_url: String,
    pub topology: Topology,
    pub concurrency: u16,
    /// How long in-flight tasks may run after shutdown is requested before they are abandoned
    /// (unacked, so RabbitMQ redelivers them to another worker).
    pub shutdown_grace: Duration,
}

/// Run until `shutdown` is cancelled. Returns only on shutdown.
pub async fn run(
    cfg: ConsumerConfig,
    ctx: Clients,
    ready: Arc<AtomicBool>,
    shutdown: CancellationToken,
) {
    let mut reconnect = amqp::Reconnect::default();
    while !shutdown.is_cancelled() {
        let started = std::time::Instant::now();
        match session(&cfg, &ctx, &ready, &shutdown).await {
            Ok(()) => break,
            Err(e) => {
                ready.store(false, Ordering::Relaxed);
                metrics()
                    .connection_errors
                    .with_label_values(&["amqp"])
                    .inc();
                let wait = reconnect.after_failure(started);
                tracing::warn!(error = %e, retry_in = ?wait, "RabbitMQ connection lost; reconnecting");
                if !amqp::Reconnect::pause(wait, &shutdown).await {
                    break;
                }
            }
        }
    }
    ready.store(false, Ordering::Relaxed);
}

/// One connection's lifetime. Ok(()) means a clean shutdown.
async fn session(
    cfg: &ConsumerConfig,
    ctx: &Clients,
    ready: &AtomicBool,
    shutdown: &CancellationToken,
) -> anyhow::Result<()> {
    let conn = amqp::connect(
        &cfg.amqp_url,
        &format!("pgfleet-worker {}", ctx.worker_name()),
    )
    .await
    .map_err(|e| {
        anyhow::anyhow!(
            "connecting to RabbitMQ at {}: {e}",
            protocol::spec::url_endpoint(&cfg.amqp_url)
        )
    })?;
    let consume_channel = conn.create_channel().await?;
    amqp::declare_topology(&consume_channel, &cfg.topology).await?;
    consume_channel
        .basic_qos(cfg.concurrency, BasicQosOptions::default())
        .await?;
    let publish_channel = amqp::confirm_channel(&conn).await?;
    let mut consumer = consume_channel
        .basic_consume(
            cfg.topology.tasks.as_str().into(),
            format!("worker-{}", ctx.worker_name()).into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await?;
    ready.store(true, Ordering::Relaxed);
    tracing::info!(concurrency = cfg.concurrency, "consuming tasks");

    let mut running: JoinSet<()> = JoinSet::new();
    let outcome = loop {
        tokio::select! {
            _ = shutdown.cancelled() => break Ok(()),
            Some(_) = running.join_next(), if !running.is_empty() => {}
            delivery = consumer.next() => match delivery {
                Some(Ok(delivery)) => {
                    let ctx = ctx.clone();
                    let publish = publish_channel.clone();
                    let results = cfg.topology.results.clone();
                    running.spawn(async move { handle(&ctx, &publish, &results, delivery).await });
                }
                Some(Err(e)) => break Err(anyhow::Error::from(e)),
                None => break Err(anyhow::anyhow!("the broker cancelled the consumer")),
            },
        }
    };
    ready.store(false, Ordering::Relaxed);
    if outcome.is_ok() {
        // Stop receiving, let in-flight tasks finish within the grace period.
        let _ = consume_channel
            .basic_cancel(consumer.tag(), Default::default())
            .await;
        let drained = tokio::time::timeout(cfg.shutdown_grace, async {
            while running.join_next().await.is_some() {}
        })
        .await;
        if drained.is_err() {
            tracing::warn!(
                abandoned = running.len(),
                "shutdown grace period over; unfinished tasks go back to the queue"
            );
            running.abort_all();
        }
        let _ = conn.close(200, "worker shutting down".into()).await;
    }
    outcome
}

/// Parse, run, report, ack. Never panics: every failure ends in ack, nack or reject.
async fn handle(ctx: &Clients, publish: &Channel, results: &str, delivery: Delivery) {
    let envelope = match TaskEnvelope::decode(&delivery.data) {
        Ok(e) => e,
        Err(e) => {
            tracing::error!(error = %e, "unreadable task message; sending it to the dead-letter queue");
            metrics()
                .dead_lettered
                .with_label_values(&["unparseable"])
                .inc();
            let _ = delivery
                .acker
                .reject(BasicRejectOptions { requeue: false })
                .await;
            return;
        }
    };
    let result = execute(ctx, &envelope).await;
    if let Err(e) = amqp::publish_confirmed(publish, results, &result.encode()).await {
        // Without a recorded result the task must run again: put it back.
        tracing::warn!(task = %envelope.task_id, error = %e, "could not publish the result; requeueing the task");
        let _ = delivery
            .acker
            .nack(BasicNackOptions {
                requeue: true,
                ..Default::default()
            })
            .await;
        return;
    }
    match delivery.acker.ack(Default::default()).await {
        Ok(_) => {}
        Err(e) => tracing::warn!(task = %envelope.task_id, error = %e,
            "ack failed; the broker will redeliver and the duplicate result will be ignored"),
    }
}
