//! The coordinator's side of RabbitMQ: publishes tasks with confirms, consumes results and dead
//! letters, and reconnects with backoff. Each inbound message is acked only after the engine has
//! recorded it, so a coordinator crash redelivers rather than loses results.

pub mod cloudwatch;
pub mod queue_stats;
pub mod rabbitmq_api;

use fleet_io::amqp;
use futures::StreamExt;
use lapin::message::Delivery;
use lapin::options::BasicConsumeOptions;
use lapin::types::{AMQPValue, FieldTable};
use lapin::Channel;
use protocol::topology::Topology;
use protocol::{ResultEnvelope, TaskEnvelope};
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot, Mutex};
use tokio_util::sync::CancellationToken;

/// Something for the engine to record, with a channel to say "recorded, ack it".
pub enum Inbound {
    /// The sender says whether the message was recorded (false: recording failed).
    Result(ResultEnvelope, oneshot::Sender<bool>),
    DeadLetter(Box<DeadLetter>, oneshot::Sender<bool>),
}

#[derive(Debug, Clone)]
pub struct DeadLetter {
    /// RabbitMQ's x-death reason (`rejected`, `delivery_limit`, …).
    pub reason: String,
    /// The task, when the body could be read.
    pub task: Option<TaskEnvelope>,
    /// The first bytes of the body, for humans (tasks carry no secrets).
    pub preview: String,
}

#[derive(Clone)]
pub struct AmqpBroker {
    publish: Arc<Mutex<Option<Channel>>>,
    topology: Topology,
}

impl AmqpBroker {
    /// Start the connection supervisor; inbound messages arrive on `inbound`.
    pub fn spawn(
        url: String,
        topology: Topology,
        inbound: mpsc::Sender<Inbound>,
        shutdown: CancellationToken,
    ) -> Self {
        let broker = Self {
            publish: Arc::new(Mutex::new(None)),
            topology: topology.clone(),
        };
        let slot = broker.publish.clone();
        tokio::spawn(async move {
            let mut reconnect = amqp::Reconnect::default();
            while !shutdown.is_cancelled() {
                let started = std::time::Instant::now();
                let result = session(&url, &topology, &slot, &inbound, &shutdown).await;
                *slot.lock().await = None;
                match result {
                    Ok(()) => break,
                    Err(e) => {
                        let wait = reconnect.after_failure(started);
                        tracing::warn!(error = %e, retry_in = ?wait, "RabbitMQ connection lost; reconnecting");
                        if !amqp::Reconnect::pause(wait, &shutdown).await {
                            break;
                        }
                    }
                }
            }
        });
        broker
    }

    pub async fn publish(&self, task: &TaskEnvelope) -> anyhow::Result<()> {
        let channel = self
            .publish
            .lock()
            .await
            .clone()
            .ok_or_else(|| anyhow::anyhow!("not connected to RabbitMQ"))?;
        amqp::publish_confirmed(&channel, &self.topology.tasks, &task.encode()).await
    }

    pub async fn connected(&self) -> bool {
        self.publish.lock().await.is_some()
    }

    /// What AMQP tells of the queues, when connected.
    pub async fn depths(&self) -> Option<AmqpDepths> {
        let channel = self.publish.lock().await.clone()?;
        let (ready, consumers) = amqp::queue_depth(&channel, &self.topology.tasks)
            .await
            .ok()?;
        let (dead_letters, _) = amqp::queue_depth(&channel, &self.topology.dead_letters)
            .await
            .ok()?;
        Some(AmqpDepths {
            ready,
            consumers,
            dead_letters,
        })
    }
}

/// Task queue: messages ready and consumers; dead-letter queue: messages ready.
#[derive(Debug, Clone, Copy)]
pub struct AmqpDepths {
    pub ready: u32,
    pub consumers: u32,
    pub dead_letters: u32,
}

async fn session(
    url: &str,
    topology: &Topology,
    slot: &Mutex<Option<Channel>>,
    inbound: &mpsc::Sender<Inbound>,
    shutdown: &CancellationToken,
) -> anyhow::Result<()> {
    let conn = amqp::connect(url, "pgfleet-coordinator")
        .await
        .map_err(|e| {
            anyhow::anyhow!(
                "connecting to RabbitMQ at {}: {e}",
                protocol::spec::url_endpoint(url)
            )
        })?;
    let consume = conn.create_channel().await?;
    amqp::declare_topology(&consume, topology).await?;
    consume.basic_qos(64, Default::default()).await?;
    let publish = amqp::confirm_channel(&conn).await?;
    let mut results = consume
        .basic_consume(
            topology.results.as_str().into(),
            "coordinator-results".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await?;
    let mut dead = consume
        .basic_consume(
            topology.dead_letters.as_str().into(),
            "coordinator-dead-letters".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await?;
    *slot.lock().await = Some(publish);
    tracing::info!("connected to RabbitMQ");
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => {
                let _ = conn.close(200, "coordinator shutting down".into()).await;
                return Ok(());
            }
            d = results.next() => {
                let d = d.ok_or_else(|| anyhow::anyhow!("result consumer cancelled"))??;
                forward_result(d, inbound).await?;
            }
            d = dead.next() => {
                let d = d.ok_or_else(|| anyhow::anyhow!("dead-letter consumer cancelled"))??;
                forward_dead_letter(d, inbound).await?;
            }
        }
    }
}

async fn forward_result(d: Delivery, inbound: &mpsc::Sender<Inbound>) -> anyhow::Result<()> {
    match ResultEnvelope::decode(&d.data) {
        Ok(result) => {
            let (tx, rx) = oneshot::channel();
            inbound.send(Inbound::Result(result, tx)).await?;
            // Settled once recorded, without holding up the next delivery: waiting here let
            // one result at a time reach the engine, so every result paid the engine's whole
            // round of store writes and publishes alone. Up to the prefetch (64) results now
            // wait in `inbound`, and the engine applies what has arrived before it pumps.
            tokio::spawn(async move {
                if let Err(e) = settle(&d, rx.await).await {
                    tracing::debug!(error = %e, "ack failed; the result is redelivered and ignored as a duplicate");
                }
            });
            return Ok(());
        }
        Err(e) => tracing::error!(error = %e, "dropping an unreadable result message"),
    }
    d.acker.ack(Default::default()).await?;
    Ok(())
}

/// Ack what the engine recorded. What it failed to record goes back to the queue (after a
/// pause, so a state database that is down is not hammered): left unacked it would sit on
/// this channel until the connection closed. Engine stopping (no answer): left unacked, so
/// RabbitMQ redelivers it when the connection closes.
async fn settle(
    d: &Delivery,
    recorded: Result<bool, oneshot::error::RecvError>,
) -> anyhow::Result<()> {
    match recorded {
        Ok(true) => {
            d.acker.ack(Default::default()).await?;
        }
        Ok(false) => {
            tokio::time::sleep(std::time::Duration::from_secs(1)).await;
            d.acker
                .nack(lapin::options::BasicNackOptions {
                    requeue: true,
                    ..Default::default()
                })
                .await?;
        }
        Err(_) => {}
    }
    Ok(())
}

async fn forward_dead_letter(d: Delivery, inbound: &mpsc::Sender<Inbound>) -> anyhow::Result<()> {
    let letter = DeadLetter {
        reason: death_reason(&d).unwrap_or_else(|| "dead-lettered".into()),
        task: TaskEnvelope::decode(&d.data).ok(),
        preview: String::from_utf8_lossy(&d.data[..d.data.len().min(300)]).into_owned(),
    };
    let (tx, rx) = oneshot::channel();
    inbound
        .send(Inbound::DeadLetter(Box::new(letter), tx))
        .await?;
    settle(&d, rx.await).await
}

/// The `reason` of the first `x-death` entry RabbitMQ attaches to dead-lettered messages.
fn death_reason(d: &Delivery) -> Option<String> {
    let headers = d.properties.headers().as_ref()?;
    let AMQPValue::FieldArray(deaths) = headers.inner().get("x-death")? else {
        return None;
    };
    let AMQPValue::FieldTable(first) = deaths.as_slice().first()? else {
        return None;
    };
    match first.inner().get("reason")? {
        AMQPValue::LongString(s) => Some(s.to_string()),
        AMQPValue::ShortString(s) => Some(s.to_string()),
        _ => None,
    }
}
