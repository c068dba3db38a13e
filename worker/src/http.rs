//! A tiny HTTP endpoint for `/metrics`, `/healthz` and `/readyz`, shared by workers and the
//! coordinator.

use http_body_util::Full;
use hyper::body::Bytes;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use prometheus::{Encoder, TextEncoder};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use tokio::net::TcpListener;

/// Bind now (so a bad address fails at startup) and serve in the background.
pub async fn spawn(addr: SocketAddr, ready: Arc<AtomicBool>) -> std::io::Result<SocketAddr> {
    let listener = TcpListener::bind(addr).await?;
    let local = listener.local_addr()?;
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let ready = ready.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |req| {
                    let ready = ready.clone();
                    async move { Ok::<_, std::convert::Infallible>(route(&req, &ready)) }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    Ok(local)
}

fn route<B>(req: &Request<B>, ready: &AtomicBool) -> Response<Full<Bytes>> {
    let (status, body, content_type) = match req.uri().path() {
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
    Response::builder()
        .status(status)
        .header("content-type", content_type)
        .body(Full::new(Bytes::from(body)))
        .unwrap_or_else(|_| Response::new(Full::new(Bytes::new())))
}
