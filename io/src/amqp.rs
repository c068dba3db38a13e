//! RabbitMQ connection and topology. Every process declares the same durable topology with the
//! same arguments, so whoever starts first creates it and later declarations are no-ops.

use lapin::options::{
    ConfirmSelectOptions, ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions,
};
use lapin::tcp::OwnedTLSConfig;
use lapin::types::{AMQPValue, FieldTable, LongString, ShortString};
use lapin::uri::AMQPUri;
use lapin::{Channel, Connection, ConnectionProperties, ExchangeKind};
use protocol::topology::{Topology, TASK_DELIVERY_LIMIT};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::OnceLock;

/// Extra CA certificates (PEM) trusted for `amqps://`, set once at startup from
/// `--amqp-ca-file` / `PGFLEET_AMQP_CA_FILE`.
static CA_PEM: OnceLock<String> = OnceLock::new();

/// Default AMQP heartbeat timeout, seconds. RabbitMQ closes a connection it has heard nothing
/// on for 2–3 times this long (measured; beats go every half timeout) and requeues its unacked
/// tasks, so a frozen worker (SIGSTOP, a hung VM) gives its tasks back within 30–45 s instead
/// of the 2–3 minutes of the broker's 60 s default.
pub const DEFAULT_HEARTBEAT_SECONDS: u16 = 15;

/// The heartbeat this process asks for; 0 leaves it to the broker.
static HEARTBEAT: AtomicU16 = AtomicU16::new(DEFAULT_HEARTBEAT_SECONDS);

/// Set the heartbeat timeout (seconds) of every connection [`connect`] opens from now on;
/// 0 accepts the broker's. A `heartbeat` in the URL's query wins over this.
pub fn set_heartbeat(seconds: u16) {
    HEARTBEAT.store(seconds, Ordering::Relaxed);
}

/// Read a PEM file of CA certificates for `amqps://` connections; fails in one line when it
/// cannot be read or holds no certificate.
pub fn read_ca_file(path: &Path) -> anyhow::Result<String> {
    let pem = std::fs::read_to_string(path)
        .map_err(|e| anyhow::anyhow!("AMQP CA file {}: cannot read it: {e}", path.display()))?;
    if !pem.contains("-----BEGIN CERTIFICATE-----") {
        anyhow::bail!("AMQP CA file {} holds no PEM certificate", path.display());
    }
    Ok(pem)
}

/// Trust the CA certificates in `path` (PEM), besides the system's, for every `amqps://`
/// connection this process opens through [`connect`]. Call once, at startup.
pub fn set_ca_file(path: &Path) -> anyhow::Result<()> {
    let pem = read_ca_file(path)?;
    if CA_PEM.set(pem.clone()).is_err() && CA_PEM.get() != Some(&pem) {
        anyhow::bail!("the AMQP CA file was already set to another one");
    }
    Ok(())
}

/// The RabbitMQ options both binaries take.
#[derive(clap::Args, Debug, Clone)]
pub struct AmqpArgs {
    /// RabbitMQ URL. Keep the password out of shell history: use the environment variable.
    #[arg(
        long,
        env = "PGFLEET_AMQP_URL",
        default_value = "amqp://guest:guest@127.0.0.1:5672/%2f",
        hide_env_values = true
    )]
    pub amqp_url: String,
    /// PEM file of CA certificates trusted for an amqps:// URL (a private CA), besides the
    /// system's.
    #[arg(long, env = "PGFLEET_AMQP_CA_FILE")]
    pub amqp_ca_file: Option<PathBuf>,
    /// AMQP heartbeat timeout, seconds: how long a silent connection lasts before it is
    /// dropped and reopened. RabbitMQ drops a connection it has heard nothing on for 2–3 times
    /// this long and gives a worker's unfinished tasks to other workers, so a frozen worker
    /// (SIGSTOP, a hung VM) holds them 30–45 s at the default. 0 accepts the broker's (60 s on
    /// RabbitMQ: 2–3 minutes). A `heartbeat=N` in the URL's query wins.
    #[arg(long, env = "PGFLEET_AMQP_HEARTBEAT_SECONDS", default_value_t = DEFAULT_HEARTBEAT_SECONDS)]
    pub amqp_heartbeat_seconds: u16,
}

impl AmqpArgs {
    /// Make the heartbeat and the CA file this process's (every [`connect`] from now on).
    /// Returns the CA file's PEM, if one was given; the error names the flag.
    pub fn apply(&self) -> anyhow::Result<Option<String>> {
        set_heartbeat(self.amqp_heartbeat_seconds);
        let Some(path) = &self.amqp_ca_file else {
            return Ok(None);
        };
        set_ca_file(path).map_err(|e| anyhow::anyhow!("--amqp-ca-file: {e}"))?;
        Ok(CA_PEM.get().cloned())
    }
}

/// Connect with a name RabbitMQ shows in its management UI (never the URL: it may hold a password).
/// `amqps://` URLs use TLS, verified against the system's roots plus the CA file, if set.
pub async fn connect(url: &str, name: &str) -> lapin::Result<Connection> {
    connect_with_ca(url, name, CA_PEM.get().map(String::as_str)).await
}

/// [`connect`] with explicit extra CA certificates (PEM) for `amqps://`.
pub async fn connect_with_ca(
    url: &str,
    name: &str,
    ca_pem: Option<&str>,
) -> lapin::Result<Connection> {
    // The parser's message may quote the whole URL, password included: say only what is wrong.
    let mut uri: AMQPUri = url.parse().map_err(|_: String| {
        lapin::Error::from(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "the RabbitMQ URL is not a valid amqp:// or amqps:// URL",
        ))
    })?;
    if uri.query.heartbeat.is_none() {
        let seconds = HEARTBEAT.load(Ordering::Relaxed);
        // Zero in the handshake means "whatever the broker proposes" (lapin follows it).
        uri.query.heartbeat = Some(seconds);
    }
    let options =
        ConnectionProperties::default().with_connection_name(LongString::from(name.to_string()));
    let tls = OwnedTLSConfig {
        identity: None,
        cert_chain: ca_pem.map(str::to_string),
    };
    // A broker that accepts TCP but never answers the handshake (overloaded, half-started)
    // would otherwise hold the caller forever instead of letting it back off and retry.
    let connect =
        Connection::connect_uri_with_config(uri, options, tls, lapin::runtime::default_runtime()?);
    match tokio::time::timeout(CONNECT_TIMEOUT, connect).await {
        Ok(result) => result,
        Err(_) => Err(lapin::Error::from(std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            format!(
                "RabbitMQ did not complete the connection handshake within {}s",
                CONNECT_TIMEOUT.as_secs()
            ),
        ))),
    }
}

/// A connection that lived this long was healthy: reconnect loops start their backoff afresh.
pub const HEALTHY_SESSION: std::time::Duration = std::time::Duration::from_secs(30);

/// The wait between a reconnect loop's sessions: [`backoff`] over consecutive failures, afresh
/// after a session that lived [`HEALTHY_SESSION`].
#[derive(Debug, Default)]
pub struct Reconnect {
    failures: u32,
}

impl Reconnect {
    /// A session that started at `started` just failed: wait this long (or until shutdown,
    /// [`Reconnect::pause`]) before the next one.
    pub fn after_failure(&mut self, started: std::time::Instant) -> std::time::Duration {
        if started.elapsed() >= HEALTHY_SESSION {
            self.failures = 0;
        }
        let wait = backoff(self.failures);
        self.failures = self.failures.saturating_add(1);
        wait
    }

    /// Sleep `wait`; `false` when `shutdown` came first.
    pub async fn pause(
        wait: std::time::Duration,
        shutdown: &tokio_util::sync::CancellationToken,
    ) -> bool {
        tokio::select! {
            _ = tokio::time::sleep(wait) => true,
            _ = shutdown.cancelled() => false,
        }
    }
}

/// Bound on opening a connection, TCP and AMQP handshake included.
const CONNECT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

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

/// (messages ready, consumers) of a queue, by passive declare (fails if it does not exist).
/// AMQP does not report unacknowledged messages; see the coordinator's `rabbitmq_api`.
pub async fn queue_depth(channel: &Channel, queue: &str) -> lapin::Result<(u32, u32)> {
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
    Ok((q.message_count(), q.consumer_count()))
}

/// Exponential backoff with jitter for reconnect loops: 0.5s, 1s, 2s … capped at 30s.
pub fn backoff(attempt: u32) -> std::time::Duration {
    let base = 500u64.saturating_mul(1u64 << attempt.min(6)).min(30_000);
    let jitter = rand::random::<u64>() % (base / 4 + 1);
    std::time::Duration::from_millis(base + jitter)
}
