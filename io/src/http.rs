//! A tiny HTTP endpoint for `/metrics`, `/healthz` and `/readyz`, shared by workers and the
//! coordinator.
//!
//! Nothing here changes state: every route only reads. `/metrics` can require a bearer token
//! (`--metrics-token-file`), and must when the endpoint listens on a non-loopback address unless
//! the operator opts out with `--metrics-public`. `/healthz` and `/readyz` stay open so that
//! load balancers and orchestrators can probe without credentials (they say "ok" or "ready",
//! nothing else).

use http_body_util::Full;
use hyper::body::Bytes;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use prometheus::{Encoder, TextEncoder};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use tokio::net::TcpListener;

/// Who may read `/metrics`.
#[derive(Clone, Default)]
pub enum MetricsAccess {
    /// Anyone who can connect.
    #[default]
    Open,
    /// Only requests with `Authorization: Bearer <token>`.
    Token(Arc<[u8]>),
}

impl std::fmt::Debug for MetricsAccess {
    // Never print the token.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            MetricsAccess::Open => f.write_str("Open"),
            MetricsAccess::Token(_) => f.write_str("Token(***)"),
        }
    }
}

/// The metrics-endpoint access flags, shared by `worker` and `coordinator serve`.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct MetricsAuthArgs {
    /// File holding a bearer token (surrounding whitespace ignored). When set, /metrics answers
    /// 401 unless the request carries `Authorization: Bearer <token>` (Prometheus:
    /// `authorization: { credentials_file: ... }`); /healthz and /readyz stay open. Required
    /// when --metrics-addr is not a loopback address, unless --metrics-public is given.
    #[arg(long, env = "PGFLEET_METRICS_TOKEN_FILE", value_name = "PATH")]
    pub metrics_token_file: Option<PathBuf>,
    /// Allow serving /metrics without a token on a non-loopback --metrics-addr (e.g. inside a
    /// container network, or behind a firewall/security group that admits only Prometheus).
    #[arg(long, env = "PGFLEET_METRICS_PUBLIC")]
    pub metrics_public: bool,
}

impl MetricsAuthArgs {
    /// Decide the access rule for an endpoint on `addr`; the error is one line for the user.
    pub fn access(&self, addr: SocketAddr) -> Result<MetricsAccess, String> {
        if let Some(path) = &self.metrics_token_file {
            let text = std::fs::read(path)
                .map_err(|e| format!("cannot read --metrics-token-file {}: {e}", path.display()))?;
            let token = text.trim_ascii();
            if token.is_empty() {
                return Err(format!(
                    "--metrics-token-file {} is empty: put a bearer token in it",
                    path.display()
                ));
            }
            if token.iter().any(|b| b.is_ascii_control() || *b == b' ') {
                return Err(format!(
                    "--metrics-token-file {}: the token must be one word of visible characters",
                    path.display()
                ));
            }
            return Ok(MetricsAccess::Token(Arc::from(token)));
        }
        if addr.ip().is_loopback() || self.metrics_public {
            return Ok(MetricsAccess::Open);
        }
        Err(format!(
            "--metrics-addr {addr} is not a loopback address: set --metrics-token-file \
             (PGFLEET_METRICS_TOKEN_FILE) so /metrics requires a bearer token, or pass \
             --metrics-public (PGFLEET_METRICS_PUBLIC=true) to serve it without one"
        ))
    }
}

/// Bind now (so a bad address fails at startup) and serve in the background, open to anyone
/// who can connect.
pub async fn spawn(addr: SocketAddr, ready: Arc<AtomicBool>) -> std::io::Result<SocketAddr> {
    spawn_with_access(addr, ready, MetricsAccess::Open).await
}

/// [`spawn`] with an access rule for `/metrics`.
pub async fn spawn_with_access(
    addr: SocketAddr,
    ready: Arc<AtomicBool>,
    access: MetricsAccess,
) -> std::io::Result<SocketAddr> {
    let listener = TcpListener::bind(addr).await?;
    let local = listener.local_addr()?;
    let access = Arc::new(access);
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let ready = ready.clone();
            let access = access.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |req| {
                    let ready = ready.clone();
                    let access = access.clone();
                    async move { Ok::<_, std::convert::Infallible>(route(&req, &ready, &access)) }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    Ok(local)
}

/// Whether the request carries the token. Compares in constant time: the time taken does not
/// depend on where a wrong token first differs.
fn authorized<B>(req: &Request<B>, access: &MetricsAccess) -> bool {
    let MetricsAccess::Token(want) = access else {
        return true;
    };
    let Some(value) = req.headers().get(hyper::header::AUTHORIZATION) else {
        return false;
    };
    let value = value.as_bytes();
    let Some(split) = value.iter().position(|b| *b == b' ') else {
        return false;
    };
    let (scheme, rest) = value.split_at(split);
    if !scheme.eq_ignore_ascii_case(b"bearer") {
        return false;
    }
    constant_time_eq(rest.trim_ascii(), want)
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    let n = a.len().max(b.len());
    let mut diff = (a.len() ^ b.len()) as u64;
    for i in 0..n {
        let x = a.get(i).copied().unwrap_or(0);
        let y = b.get(i).copied().unwrap_or(0);
        diff |= u64::from(x ^ y);
    }
    std::hint::black_box(diff) == 0
}

fn route<B>(req: &Request<B>, ready: &AtomicBool, access: &MetricsAccess) -> Response<Full<Bytes>> {
    let mut unauthorized = false;
    let (status, body, content_type) = match req.uri().path() {
        "/metrics" if !authorized(req, access) => {
            unauthorized = true;
            (
                StatusCode::UNAUTHORIZED,
                b"unauthorized: send Authorization: Bearer <token>\n".to_vec(),
                "text/plain".into(),
            )
        }
        "/metrics" => {
            let mut buf = Vec::new();
            let encoder = TextEncoder::new();
            let _ = encoder.encode(&prometheus::gather(), &mut buf);
            (StatusCode::OK, buf, encoder.format_type().to_string())
        }
        "/healthz" => (StatusCode::OK, b"ok\n".to_vec(), "text/plain".into()),
        "/readyz" if ready.load(Ordering::Relaxed) => {
            (StatusCode::OK, b"ready\n".to_vec(), "text/plain".into())
        }
        "/readyz" => (
            StatusCode::SERVICE_UNAVAILABLE,
            b"not ready\n".to_vec(),
            "text/plain".into(),
        ),
        _ => (
            StatusCode::NOT_FOUND,
            b"not found\n".to_vec(),
            "text/plain".into(),
        ),
    };
    let mut builder = Response::builder()
        .status(status)
        .header("content-type", content_type);
    if unauthorized {
        builder = builder.header("www-authenticate", "Bearer realm=\"pgfleet metrics\"");
    }
    builder
        .body(Full::new(Bytes::from(body)))
        .unwrap_or_else(|_| Response::new(Full::new(Bytes::new())))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(auth: Option<&str>) -> Request<()> {
        let mut b = Request::builder().uri("/metrics");
        if let Some(a) = auth {
            b = b.header("authorization", a);
        }
        b.body(()).unwrap()
    }

    #[test]
    fn bearer_token_checks() {
        let access = MetricsAccess::Token(Arc::from(&b"s3cret-token"[..]));
        assert!(authorized(&req(Some("Bearer s3cret-token")), &access));
        assert!(authorized(&req(Some("bearer s3cret-token")), &access));
        for bad in [
            None,
            Some("Bearer s3cret-tokem"),
            Some("Bearer s3cret-token-and-more"),
            Some("Bearer s3cret"),
            Some("Bearer "),
            Some("Basic s3cret-token"),
            Some("s3cret-token"),
        ] {
            assert!(!authorized(&req(bad), &access), "{bad:?}");
        }
        assert!(authorized(&req(None), &MetricsAccess::Open));
        let ready = AtomicBool::new(true);
        assert_eq!(
            route(&req(None), &ready, &access).status(),
            StatusCode::UNAUTHORIZED
        );
        let health = Request::builder().uri("/healthz").body(()).unwrap();
        assert_eq!(route(&health, &ready, &access).status(), StatusCode::OK);
        assert_eq!(format!("{access:?}"), "Token(***)");
    }

    #[test]
    fn non_loopback_needs_a_token_or_an_explicit_opt_out() {
        let any: SocketAddr = "0.0.0.0:9181".parse().unwrap();
        let local: SocketAddr = "127.0.0.1:9181".parse().unwrap();
        let v6: SocketAddr = "[::1]:9181".parse().unwrap();
        let args = MetricsAuthArgs::default();
        assert!(matches!(args.access(local), Ok(MetricsAccess::Open)));
        assert!(matches!(args.access(v6), Ok(MetricsAccess::Open)));
        let err = args.access(any).unwrap_err();
        assert!(
            err.contains("--metrics-token-file") && !err.contains('\n'),
            "{err}"
        );
        let public = MetricsAuthArgs {
            metrics_public: true,
            ..Default::default()
        };
        assert!(matches!(public.access(any), Ok(MetricsAccess::Open)));

        let dir = std::env::temp_dir().join(format!("pgfleet-token-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("token");
        std::fs::write(&file, "  tok-123\n").unwrap();
        let with = MetricsAuthArgs {
            metrics_token_file: Some(file.clone()),
            ..Default::default()
        };
        match with.access(any) {
            Ok(MetricsAccess::Token(t)) => assert_eq!(&t[..], b"tok-123"),
            other => panic!("{other:?}"),
        }
        std::fs::write(&file, "\n").unwrap();
        assert!(with.access(local).unwrap_err().contains("empty"));
        std::fs::remove_dir_all(&dir).unwrap();
        let missing = MetricsAuthArgs {
            metrics_token_file: Some(dir.join("nope")),
            ..Default::default()
        };
        assert!(missing.access(local).is_err());
    }
}
