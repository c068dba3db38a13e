//! RabbitMQ's management HTTP API, read-only: message counts of one queue. AMQP alone only
//! tells how many messages are *ready*; the unacknowledged ones (taken by a worker, not finished)
//! are known only to the broker's management plugin (self-hosted, or Amazon MQ over HTTPS).
//!
//! One GET per call on a fresh connection: the coordinator asks every few seconds, so pooling is
//! not worth a dependency. Credentials never appear in errors or logs.

use anyhow::{anyhow, bail, Context, Result};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use http_body_util::{BodyExt, Empty, Limited};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use percent_encoding::{percent_decode_str, utf8_percent_encode, NON_ALPHANUMERIC};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use std::sync::Arc;
use std::time::Duration;

/// Bound on one request, connect to last body byte.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// A queue's JSON is a few KiB; anything far larger is not the management API.
const MAX_BODY: usize = 4 << 20;

/// Message counts of a queue as the broker reports them. RabbitMQ refreshes these every
/// `collect_statistics_interval` (5 s by default), so they lag by up to that much.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct QueueCounts {
    pub ready: u64,
    pub unacked: u64,
    pub consumers: u64,
}

#[derive(Clone)]
pub struct ManagementApi {
    scheme_https: bool,
    host: String,
    port: u16,
    /// Path prefix before `/api` (a reverse proxy may mount the API below `/`).
    base_path: String,
    vhost: String,
    authorization: String,
    tls: Option<Arc<rustls::ClientConfig>>,
}

impl std::fmt::Debug for ManagementApi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // No credentials.
        write!(f, "{}", self.describe())
    }
}

impl ManagementApi {
    /// `api_url`: `http(s)://[user:password@]host[:port][/prefix]`. Credentials in it win;
    /// otherwise the AMQP URL's user and password are used (the same account usually has the
    /// `monitoring` tag it needs). The vhost is the AMQP URL's. `extra_ca_pem`: CA certificates
    /// trusted besides the system's (the `--amqp-ca-file`).
    pub fn new(api_url: &str, amqp_url: &str, extra_ca_pem: Option<&str>) -> Result<Self> {
        let api = url::Url::parse(api_url).map_err(|e| {
            anyhow!(
                "--rabbitmq-api-url {}: not a URL: {e}",
                protocol::spec::redact_url(api_url)
            )
        })?;
        let amqp =
            url::Url::parse(amqp_url).map_err(|e| anyhow!("the AMQP URL is not a URL: {e}"))?;
        let scheme_https = match api.scheme() {
            "http" => false,
            "https" => true,
            other => bail!("--rabbitmq-api-url: scheme {other}:// is not http:// or https://"),
        };
        let host = api
            .host_str()
            .filter(|h| !h.is_empty())
            .ok_or_else(|| anyhow!("--rabbitmq-api-url has no host"))?
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string();
        let port = api
            .port_or_known_default()
            .unwrap_or(if scheme_https { 443 } else { 80 }); // URL rules: write :15672 when you mean it
        let (user, password) = if api.username().is_empty() {
            (amqp.username(), amqp.password().unwrap_or(""))
        } else {
            (api.username(), api.password().unwrap_or(""))
        };
        let user = decode(user);
        let password = decode(password);
        // AMQP URI spec: an absent path is vhost "/", otherwise the one segment, percent-decoded.
        let vhost = match amqp.path() {
            "" | "/" => "/".to_string(),
            p => decode(&p[1..]),
        };
        let tls = scheme_https
            .then(|| client_config(extra_ca_pem))
            .transpose()?;
        Ok(Self {
            scheme_https,
            host,
            port,
            base_path: api.path().trim_end_matches('/').to_string(),
            vhost,
            authorization: format!("Basic {}", STANDARD.encode(format!("{user}:{password}"))),
            tls,
        })
    }

    /// The endpoint, safe to log.
    pub fn describe(&self) -> String {
        let scheme = if self.scheme_https { "https" } else { "http" };
        format!("{scheme}://{}:{}{}", self.host, self.port, self.base_path)
    }

    /// Counts of `queue` in the AMQP URL's vhost.
    pub async fn queue(&self, queue: &str) -> Result<QueueCounts> {
        let path = format!(
            "{}/api/queues/{}/{}?columns=messages_ready,messages_unacknowledged,consumers",
            self.base_path,
            utf8_percent_encode(&self.vhost, NON_ALPHANUMERIC),
            utf8_percent_encode(queue, NON_ALPHANUMERIC),
        );
        let (status, body) = self.fetch(&path).await?;
        match status {
            200 => parse_queue(&body).with_context(|| format!("{}: queue {queue}", self.describe())),
            401 => bail!(
                "{} refused the credentials (HTTP 401): the user needs the management or monitoring tag",
                self.describe()
            ),
            404 => bail!(
                "{}: queue {queue} not found in vhost {} (HTTP 404)",
                self.describe(),
                self.vhost
            ),
            s => bail!("{}: HTTP {s} for queue {queue}", self.describe()),
        }
    }

    /// The broker's version, from `GET /api/overview` (`coordinator check`).
    pub async fn overview(&self) -> Result<String> {
        let path = format!(
            "{}/api/overview?columns=rabbitmq_version,management_version",
            self.base_path
        );
        let (status, body) = self.fetch(&path).await?;
        match status {
            200 => {
                let v: serde_json::Value = serde_json::from_slice(&body).with_context(|| {
                    format!(
                        "{}: the answer is not JSON from the management API",
                        self.describe()
                    )
                })?;
                Ok(v.get("rabbitmq_version")
                    .or_else(|| v.get("management_version"))
                    .and_then(serde_json::Value::as_str)
                    .unwrap_or("unknown version")
                    .to_string())
            }
            401 => bail!(
                "{} refused the credentials (HTTP 401): the user needs the management or monitoring tag",
                self.describe()
            ),
            s => bail!("{}: HTTP {s} for /api/overview", self.describe()),
        }
    }

    /// One GET, bounded by [`REQUEST_TIMEOUT`].
    async fn fetch(&self, path_and_query: &str) -> Result<(u16, Bytes)> {
        tokio::time::timeout(REQUEST_TIMEOUT, self.get(path_and_query))
            .await
            .map_err(|_| {
                anyhow!(
                    "{} did not answer within {}s",
                    self.describe(),
                    REQUEST_TIMEOUT.as_secs()
                )
            })?
    }

    async fn get(&self, path_and_query: &str) -> Result<(u16, Bytes)> {
        let tcp = tokio::net::TcpStream::connect((self.host.as_str(), self.port))
            .await
            .with_context(|| format!("cannot connect to {}", self.describe()))?;
        let _ = tcp.set_nodelay(true);
        match &self.tls {
            None => self.exchange(TokioIo::new(tcp), path_and_query).await,
            Some(config) => {
                let name = ServerName::try_from(self.host.clone())
                    .map_err(|e| anyhow!("{}: bad TLS server name: {e}", self.describe()))?;
                let stream = tokio_rustls::TlsConnector::from(config.clone())
                    .connect(name, tcp)
                    .await
                    .with_context(|| format!("TLS handshake with {} failed", self.describe()))?;
                self.exchange(TokioIo::new(stream), path_and_query).await
            }
        }
    }

    async fn exchange<S>(&self, io: TokioIo<S>, path_and_query: &str) -> Result<(u16, Bytes)>
    where
        S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    {
        let (mut sender, conn) = hyper::client::conn::http1::handshake(io).await?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        let host_header =
            if (self.scheme_https && self.port == 443) || (!self.scheme_https && self.port == 80) {
                self.host.clone()
            } else {
                format!("{}:{}", self.host, self.port)
            };
        let request = hyper::Request::get(path_and_query)
            .header(hyper::header::HOST, host_header)
            .header(hyper::header::AUTHORIZATION, &self.authorization)
            .header(hyper::header::ACCEPT, "application/json")
            .body(Empty::<Bytes>::new())?;
        let response = sender.send_request(request).await?;
        let status = response.status().as_u16();
        let body = Limited::new(response.into_body(), MAX_BODY)
            .collect()
            .await
            .map_err(|e| anyhow!("{}: reading the answer: {e}", self.describe()))?
            .to_bytes();
        Ok((status, body))
    }
}

/// The counts from a `GET /api/queues/{vhost}/{name}` answer. A queue RabbitMQ has not sampled
/// yet (just declared) has no count fields: that is zero, not an error.
pub fn parse_queue(body: &[u8]) -> Result<QueueCounts> {
    let v: serde_json::Value =
        serde_json::from_slice(body).context("the answer is not JSON from the management API")?;
    if !v.is_object() {
        bail!("the answer is not a queue object");
    }
    let count = |k: &str| v.get(k).and_then(serde_json::Value::as_u64).unwrap_or(0);
    Ok(QueueCounts {
        ready: count("messages_ready"),
        unacked: count("messages_unacknowledged"),
        consumers: count("consumers"),
    })
}

fn decode(s: &str) -> String {
    percent_decode_str(s).decode_utf8_lossy().into_owned()
}

fn client_config(extra_ca_pem: Option<&str>) -> Result<Arc<rustls::ClientConfig>> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add_parsable_certificates(rustls_native_certs::load_native_certs().certs);
    if let Some(pem) = extra_ca_pem {
        let certs = CertificateDer::pem_slice_iter(pem.as_bytes())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| anyhow!("the AMQP CA file is not valid PEM: {e}"))?;
        roots.add_parsable_certificates(certs);
    }
    if roots.is_empty() {
        bail!("no CA certificates to verify the RabbitMQ management API with (system store empty; set --amqp-ca-file)");
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| anyhow!("TLS setup: {e}"))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_come_from_the_api_url_first_then_the_amqp_url() {
        let a = ManagementApi::new(
            "http://127.0.0.1:15672",
            "amqp://fleet:s%3Acret@mq:5672/%2f",
            None,
        )
        .unwrap();
        assert_eq!(
            a.authorization,
            "Basic ZmxlZXQ6czpjcmV0" // fleet:s:cret
        );
        assert_eq!(a.vhost, "/");
        let b = ManagementApi::new(
            "http://mon:pw@mq.internal:8080/rabbit/",
            "amqp://fleet:x@mq/prod",
            None,
        )
        .unwrap();
        assert_eq!(
            b.authorization,
            "Basic bW9uOnB3" // mon:pw
        );
        assert_eq!((b.host.as_str(), b.port), ("mq.internal", 8080));
        assert_eq!(b.base_path, "/rabbit");
        assert_eq!(b.vhost, "prod");
        let c = ManagementApi::new(
            "https://b-1.mq.eu-west-1.amazonaws.com",
            "amqps://u:p@h",
            None,
        )
        .unwrap();
        assert_eq!(c.port, 443);
        assert_eq!(c.vhost, "/");
    }

    #[test]
    fn nothing_secret_in_describe_or_debug() {
        let a = ManagementApi::new(
            "http://mon:hunter2@mq:15672",
            "amqp://u:other-secret@h",
            None,
        )
        .unwrap();
        for shown in [a.describe(), format!("{a:?}")] {
            assert!(
                !shown.contains("hunter2") && !shown.contains("other-secret"),
                "{shown}"
            );
        }
        let err = ManagementApi::new("ftp://mon:hunter2@mq", "amqp://h", None).unwrap_err();
        assert!(!format!("{err:#}").contains("hunter2"), "{err:#}");
    }

    #[test]
    fn parses_counts_and_treats_unsampled_queues_as_empty() {
        let q = parse_queue(
            br#"{"messages_ready":7,"messages_unacknowledged":3,"consumers":2,"name":"x"}"#,
        )
        .unwrap();
        assert_eq!(
            q,
            QueueCounts {
                ready: 7,
                unacked: 3,
                consumers: 2
            }
        );
        assert_eq!(parse_queue(b"{}").unwrap(), QueueCounts::default());
        assert!(parse_queue(b"<html>").is_err());
        assert!(parse_queue(b"[]").is_err());
    }
}
