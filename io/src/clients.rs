//! Process-wide state shared by every task a worker runs: PostgreSQL pools (one per distinct
//! source) and S3 clients (one per distinct set of options). Cloning is cheap.

use crate::error::{pool_error, TaskError};
use aws_config::meta::region::RegionProviderChain;
use aws_config::{BehaviorVersion, Region};
use aws_sdk_s3::config::timeout::TimeoutConfig;
use aws_sdk_s3::config::{RequestChecksumCalculation, ResponseChecksumValidation};
use deadpool_postgres::Pool;
use protocol::{PgConn, S3Options};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// Connections per source and process. Deliberately generous: how many chunks run against a
/// source at once is capped fleet-wide by the coordinator, not here.
const POOL_SIZE: usize = 16;
const DEFAULT_REGION: &str = "us-east-1";

/// What makes two sources the same pool. `statement_timeout` is left out: it is applied per
/// transaction, so sources differing only in it share connections.
/// (`PgConn` itself is not `Hash`, and the protocol crate is not ours to change.)
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct PoolKey {
    url: Option<String>,
    password_env: Option<String>,
    application_name: String,
    /// Never share a pool between read-only sources and writable targets.
    read_only: bool,
}

impl From<&PgConn> for PoolKey {
    fn from(c: &PgConn) -> Self {
        Self {
            url: c.url.clone(),
            password_env: c.password_env.clone(),
            application_name: c.application_name.clone(),
            read_only: c.read_only,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct S3Key {
    endpoint: Option<String>,
    region: Option<String>,
    force_path_style: bool,
}

impl From<&S3Options> for S3Key {
    fn from(o: &S3Options) -> Self {
        Self {
            endpoint: o.endpoint.clone(),
            region: o.region.clone(),
            force_path_style: o.force_path_style,
        }
    }
}

#[derive(Clone)]
pub struct Clients {
    inner: Arc<Inner>,
}

struct Inner {
    worker_name: String,
    pools: Mutex<HashMap<PoolKey, Pool>>,
    /// An async mutex: building a client may wait on the credential chain (e.g. instance
    /// metadata), and concurrent first users should share one build.
    s3: tokio::sync::Mutex<HashMap<S3Key, aws_sdk_s3::Client>>,
}

impl Clients {
    pub fn new(worker_name: impl Into<String>) -> Self {
        Self {
            inner: Arc::new(Inner {
                worker_name: worker_name.into(),
                pools: Mutex::new(HashMap::new()),
                s3: tokio::sync::Mutex::new(HashMap::new()),
            }),
        }
    }

    pub fn worker_name(&self) -> &str {
        &self.inner.worker_name
    }

    /// A pooled connection to `conn`. The pool is created on first use; the password is
    /// resolved then, from this process's environment.
    pub async fn pg(&self, conn: &PgConn) -> Result<deadpool_postgres::Object, TaskError> {
        let pool = self.pool(conn)?;
        pool.get().await.map_err(|e| pool_error(&e))
    }

    fn pool(&self, conn: &PgConn) -> Result<Pool, TaskError> {
        let key = PoolKey::from(conn);
        // A poisoned lock only means another task panicked mid-insert; the map is still valid.
        let mut pools = self.inner.pools.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(pool) = pools.get(&key) {
            return Ok(pool.clone());
        }
        let (config, tls) = crate::pg::pg_config(conn)?;
        let pool = crate::pg::pool(config, tls, POOL_SIZE)
            .map_err(|e| TaskError::fatal(format!("creating PostgreSQL pool: {e}")))?;
        pools.insert(key, pool.clone());
        Ok(pool)
    }

    /// An S3 client for `opts`: the default credential chain, the SDK's standard retries
    /// (3 attempts with jittered exponential backoff; `AWS_MAX_ATTEMPTS` / `AWS_RETRY_MODE`
    /// change them), a timeout on every attempt ([`s3_attempt_timeout`]) so that a stalled
    /// request is retried instead of hanging the task, and checksums only where required so
    /// that S3-compatible servers accept our requests.
    pub async fn s3(&self, opts: &S3Options) -> aws_sdk_s3::Client {
        let key = S3Key::from(opts);
        let mut clients = self.inner.s3.lock().await;
        if let Some(client) = clients.get(&key) {
            return client.clone();
        }
        let client = build_s3_client(opts).await;
        clients.insert(key, client.clone());
        client
    }
}

async fn build_s3_client(opts: &S3Options) -> aws_sdk_s3::Client {
    let region = match &opts.region {
        Some(r) => RegionProviderChain::first_try(Region::new(r.clone())),
        None => RegionProviderChain::default_provider().or_else(DEFAULT_REGION),
    };
    let timeouts = TimeoutConfig::builder()
        .connect_timeout(S3_CONNECT_TIMEOUT)
        .operation_attempt_timeout(s3_attempt_timeout())
        .build();
    let mut loader = aws_config::defaults(BehaviorVersion::latest())
        .region(region)
        .timeout_config(timeouts);
    if let Some(endpoint) = &opts.endpoint {
        loader = loader.endpoint_url(endpoint);
    }
    let shared = loader.load().await;
    let config = aws_sdk_s3::config::Builder::from(&shared)
        .force_path_style(opts.force_path_style)
        .request_checksum_calculation(RequestChecksumCalculation::WhenRequired)
        .response_checksum_validation(ResponseChecksumValidation::WhenRequired)
        .build();
    aws_sdk_s3::Client::from_conf(config)
}

/// Establishing a connection to S3 (the SDK's own default).
const S3_CONNECT_TIMEOUT: std::time::Duration = std::time::Duration::from_millis(3100);

/// Default of `--s3-attempt-timeout` / `PGFLEET_S3_ATTEMPT_TIMEOUT`.
pub const DEFAULT_S3_ATTEMPT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(120);

static S3_ATTEMPT_TIMEOUT: std::sync::OnceLock<std::time::Duration> = std::sync::OnceLock::new();

/// Set once at startup from `--s3-attempt-timeout` (see [`crate::cli::CommonArgs`]).
pub fn set_s3_attempt_timeout(timeout: std::time::Duration) {
    let _ = S3_ATTEMPT_TIMEOUT.set(timeout);
}

/// The longest one attempt of an S3 request may take to send its body and receive the
/// response (for an 8 MiB part, 120 s is under 70 KB/s), and the longest a response body being
/// read may go without data. An attempt that takes longer is abandoned and retried like a 5xx.
pub fn s3_attempt_timeout() -> std::time::Duration {
    *S3_ATTEMPT_TIMEOUT.get_or_init(|| DEFAULT_S3_ATTEMPT_TIMEOUT)
}
