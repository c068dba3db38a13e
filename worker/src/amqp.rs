//! RabbitMQ connection and topology. Every process declares the same durable topology with the
//! same arguments, so whoever starts first creates it and later declarations are no-ops.

use lapin::options::{
    ConfirmSelectOptions, ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions,
};
use lapin::types::{AMQPValue, FieldTable, LongString, ShortString};
use lapin::{Channel, Connection, ConnectionProperties, ExchangeKind};
use protocol::topology::{Topology, TASK_DELIVERY_LIMIT};

/// Connect with a name RabbitMQ shows in its management UI (never the URL: it may hold a password).
pub async fn connect(url: &str, name: &str) -> lapin::Result<Connection> {
    let options =
        ConnectionProperties::default().with_connection_name(LongString::from(name.to_string()));
    Connection::connect(url, options).await
}

fn quorum_args() -> FieldTable {
    let mut args = FieldTable::default();
    args.insert(
        "x-queue-type".into(),
        AMQPValue::LongString("quorum".into()),
    );
    args
}

/// Declare exchanges and queues. Safe to call from any number of processes at once.
pub async fn declare_topology(channel: &Channel, t: &Topology) -> lapin::Result<()> {
    let durable = QueueDeclareOptions {
        durable: true,
        ..QueueDeclareOptions::default()
    };
    channel
        .exchange_declare(
            t.dead_letter_exchange.as_str().into(),
            ExchangeKind::Fanout,
            ExchangeDeclareOptions {
                durable: true,
                ..ExchangeDeclareOptions::default()
            },
            FieldTable::default(),
        )
        .await?;
    channel
        .queue_declare(t.dead_letters.as_str().into(), durable, quorum_args())
        .await?;
    channel
        .queue_bind(
            t.dead_letters.as_str().into(),
            t.dead_letter_exchange.as_str().into(),
            "".into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await?;

    let mut task_args = quorum_args();
    task_args.insert(
        "x-dead-letter-exchange".into(),
        AMQPValue::LongString(t.dead_letter_exchange.as_str().into()),
    );
    task_args.insert(
        "x-delivery-limit".into(),
        AMQPValue::LongLongInt(TASK_DELIVERY_LIMIT),
    );
    channel
        .queue_declare(t.tasks.as_str().into(), durable, task_args)
        .await?;
    channel
        .queue_declare(t.results.as_str().into(), durable, quorum_args())
        .await?;
    Ok(())
}

/// A channel in confirm mode: every publish is acknowledged by the broker before we rely on it.
pub async fn confirm_channel(conn: &Connection) -> lapin::Result<Channel> {
    let channel = conn.create_channel().await?;
    channel
        .confirm_select(ConfirmSelectOptions::default())
        .await?;
    Ok(channel)
}

/// Publish persistently to a queue through the default exchange, `mandatory` so an unroutable
/// message is an error rather than silently dropped, and wait for the broker's confirm.
pub async fn publish_confirmed(channel: &Channel, queue: &str, body: &[u8]) -> anyhow::Result<()> {
    let props = lapin::BasicProperties::default()
        .with_delivery_mode(2)
        .with_content_type(ShortString::from("application/json"));
    let confirm = channel
        .basic_publish(
            "".into(),
            queue.into(),
            lapin::options::BasicPublishOptions {
                mandatory: true,
                ..Default::default()
            },
            body,
            props,
        )
        .await?
        .await?;
    match confirm {
        lapin::Confirmation::Ack(None) => Ok(()),
        lapin::Confirmation::Ack(Some(_)) => {
            anyhow::bail!("RabbitMQ returned the message as unroutable (queue {queue} missing?)")
        }
        other => anyhow::bail!("RabbitMQ did not confirm the publish to {queue}: {other:?}"),
    }
}

/// Messages ready and unacknowledged in a queue (passive declare: fails if it does not exist).
pub async fn queue_depth(channel: &Channel, queue: &str) -> lapin::Result<u32> {
    let q = channel
        .queue_declare(
            queue.into(),
            QueueDeclareOptions {
                passive: true,
                ..QueueDeclareOptions::default()
            },
            FieldTable::default(),
        )
        .await?;
    Ok(q.message_count())
}

/// Exponential backoff with jitter for reconnect loops: 0.5s, 1s, 2s … capped at 30s.
pub fn backoff(attempt: u32) -> std::time::Duration {
    let base = 500u64.saturating_mul(1u64 << attempt.min(6)).min(30_000);
    let jitter = rand::random::<u64>() % (base / 4 + 1);
    std::time::Duration::from_millis(base + jitter)
}
