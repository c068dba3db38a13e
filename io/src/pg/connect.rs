//! Opening sessions: the one way pgfleet connects to PostgreSQL (single sessions, a session
//! that LISTENs, and pools), with TLS applied ([`super::tls`]) and failures described in one
//! line that names every server tried and never a credential.

use super::tls::{HandshakeError, PgTls, PgTlsStream, SslMode, TlsSettings};
use std::fmt;
use tokio::task::JoinHandle;
use tokio_postgres::config::Host;
use tokio_postgres::{Client, Socket};

/// A failed connect, as one line, with the server's error kept for callers that look at its
/// SQLSTATE.
#[derive(Debug)]
pub struct ConnectError {
    /// One line: what failed (TLS, the server's refusal with its SQLSTATE, the network).
    pub message: String,
    source: tokio_postgres::Error,
}

impl ConnectError {
    pub fn message(&self) -> &str {
        &self.message
    }

    pub fn db_error(&self) -> Option<&tokio_postgres::error::DbError> {
        self.source.as_db_error()
    }

    pub fn into_inner(self) -> tokio_postgres::Error {
        self.source
    }
}

impl fmt::Display for ConnectError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for ConnectError {}

/// Describe a connect failure in one line (passwords are never part of it).
pub fn describe_connect_error(e: &tokio_postgres::Error, settings: &TlsSettings) -> String {
    let mode = settings.mode;
    if let Some(db) = e.as_db_error() {
        let mut msg = format!("{}: {}", db.code().code(), db.message());
        if db.code() == &tokio_postgres::error::SqlState::INVALID_AUTHORIZATION_SPECIFICATION
            && db.message().contains("no encryption")
        {
            msg.push_str(&format!(
                " (sslmode={mode}: the server accepts only TLS connections from here)"
            ));
        }
        return msg;
    }
    let source = std::error::Error::source(e);
    if let Some(h) = source.and_then(|s| s.downcast_ref::<HandshakeError>()) {
        return format!("TLS: {h}");
    }
    let mut text = e.to_string();
    let mut next = source;
    while let Some(s) = next {
        text.push_str(&format!(": {s}"));
        next = s.source();
    }
    if text.contains("server does not support TLS") {
        return format!("TLS: the server does not support TLS but sslmode={mode}");
    }
    text
}

/// Open a session with `tls` applied: the one way pgfleet connects to PostgreSQL. The
/// connection is driven by a spawned task, whose handle is returned.
pub async fn connect_raw(
    config: &tokio_postgres::Config,
    tls: &PgTls,
) -> Result<(Client, JoinHandle<()>), tokio_postgres::Error> {
    let (client, conn) = connect_undriven(config, tls).await?;
    Ok((client, spawn_connection(conn)))
}

/// [`connect_raw`] whose driver forwards `NOTIFY` payloads (for `LISTEN`) to the returned
/// receiver; it closes when the connection does.
pub async fn connect_listening(
    config: &tokio_postgres::Config,
    tls: &PgTls,
) -> Result<(Client, tokio::sync::mpsc::UnboundedReceiver<String>), tokio_postgres::Error> {
    let (client, mut conn) = connect_undriven(config, tls).await?;
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        let mut messages = futures::stream::poll_fn(move |cx| conn.poll_message(cx));
        while let Some(message) = futures::StreamExt::next(&mut messages).await {
            match message {
                Ok(tokio_postgres::AsyncMessage::Notification(n)) => {
                    if tx.send(n.payload().to_string()).is_err() {
                        break;
                    }
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(error = %e, "PostgreSQL connection closed with an error");
                    break;
                }
            }
        }
    });
    Ok((client, rx))
}

async fn connect_undriven(
    config: &tokio_postgres::Config,
    tls: &PgTls,
) -> Result<(Client, tokio_postgres::Connection<Socket, PgTlsStream>), tokio_postgres::Error> {
    use tokio_postgres::config::SslMode as WireMode;
    let mut config = config.clone();
    let unix_only = config.get_hostaddrs().is_empty()
        && !config.get_hosts().is_empty()
        && config
            .get_hosts()
            .iter()
            .all(|h| !matches!(h, Host::Tcp(_)));
    let mode = if unix_only {
        // libpq never asks for TLS on a Unix socket.
        SslMode::Disable
    } else {
        tls.settings.mode
    };
    let wire = match mode {
        SslMode::Disable | SslMode::Allow => WireMode::Disable,
        SslMode::Prefer => WireMode::Prefer,
        SslMode::Require | SslMode::VerifyCa | SslMode::VerifyFull => WireMode::Require,
    };
    config.ssl_mode(wire);
    // tokio-postgres bounds only the TCP connect by `connect_timeout`; libpq bounds the whole
    // connection setup. A server that accepts and then says nothing (a hung postmaster, a
    // proxy with no backend) would otherwise hold a task slot forever.
    let limit = config
        .get_connect_timeout()
        .copied()
        .unwrap_or(super::DEFAULT_CONNECT_TIMEOUT);
    let attempt = |config: tokio_postgres::Config| {
        let tls = tls.clone();
        async move {
            tokio::time::timeout(limit, config.connect(tls))
                .await
                // "timeout waiting for server": the error tokio-postgres itself uses for this.
                .unwrap_or_else(|_| Err(tokio_postgres::Error::__private_api_timeout()))
        }
    };
    match attempt(config.clone()).await {
        Ok(pair) => Ok(pair),
        // libpq's `allow`: plain first; if the server refuses that session, TLS.
        Err(e) if mode == SslMode::Allow && e.as_db_error().is_some() => {
            config.ssl_mode(WireMode::Require);
            attempt(config).await
        }
        Err(e) => Err(e),
    }
}

fn spawn_connection(conn: tokio_postgres::Connection<Socket, PgTlsStream>) -> JoinHandle<()> {
    tokio::spawn(async move {
        if let Err(e) = conn.await {
            tracing::warn!(error = %e, "PostgreSQL connection closed with an error");
        }
    })
}

/// [`connect_raw`] with the error described in one line, after the server(s) tried.
pub async fn connect(config: &tokio_postgres::Config, tls: &PgTls) -> Result<Client, ConnectError> {
    match connect_raw(config, tls).await {
        Ok((client, _driver)) => Ok(client),
        Err(source) => Err(ConnectError {
            message: format!(
                "{}: {}",
                endpoints(config),
                describe_connect_error(&source, &tls.settings)
            ),
            source,
        }),
    }
}

/// The servers `config` names, `host:port` each (no user, no password): which one a refused
/// connection was meant for is the first thing to check.
pub fn endpoints(config: &tokio_postgres::Config) -> String {
    let ports = config.get_ports();
    let port = |i: usize| ports.get(i).or(ports.first()).copied().unwrap_or(5432);
    let addrs = config.get_hostaddrs();
    let hosts = config.get_hosts();
    let shown: Vec<String> = (0..hosts.len().max(addrs.len()))
        .map(|i| {
            let p = port(i);
            match (addrs.get(i), hosts.get(i)) {
                (Some(std::net::IpAddr::V6(a)), _) => format!("[{a}]:{p}"),
                (Some(a), _) => format!("{a}:{p}"),
                (None, Some(Host::Tcp(h))) if h.contains(':') => format!("[{h}]:{p}"),
                (None, Some(Host::Tcp(h))) => format!("{h}:{p}"),
                (None, Some(Host::Unix(dir))) => format!("{}/.s.PGSQL.{p}", dir.display()),
                (None, None) => format!("?:{p}"),
            }
        })
        .collect();
    if shown.is_empty() {
        "no host".into()
    } else {
        shown.join(", ")
    }
}

/// A pool of at most `max_size` sessions, each opened through [`connect_raw`] and checked
/// cheaply before reuse.
pub fn pool(
    config: tokio_postgres::Config,
    tls: PgTls,
    max_size: usize,
) -> Result<deadpool_postgres::Pool, deadpool_postgres::BuildError> {
    let manager = deadpool_postgres::Manager::from_connect(
        config,
        PoolConnect { tls },
        deadpool_postgres::ManagerConfig {
            recycling_method: deadpool_postgres::RecyclingMethod::Fast,
        },
    );
    deadpool_postgres::Pool::builder(manager)
        .max_size(max_size)
        .build()
}

struct PoolConnect {
    tls: PgTls,
}

impl deadpool_postgres::Connect for PoolConnect {
    fn connect(
        &self,
        pg_config: &tokio_postgres::Config,
    ) -> futures::future::BoxFuture<'_, Result<(Client, JoinHandle<()>), tokio_postgres::Error>>
    {
        let config = pg_config.clone();
        Box::pin(async move { connect_raw(&config, &self.tls).await })
    }
}
