//! A fault-injecting HTTP/1.1 proxy in front of the S3-compatible server.
//!
//! Point a job's `output.s3.endpoint` (or an export root) at [`S3FaultProxy::endpoint`]: every
//! request is read whole and forwarded exactly as it came (method, path and query, every
//! header including `Host`: requests are SigV4-signed for the host the client used, and the
//! server checks the signature), unless the current [`FaultPlan`] picks a fault for it:
//!
//! - [`Fault::InternalError`] / [`Fault::SlowDown`]: an S3-style XML error, HTTP 500 / 503,
//!   without forwarding;
//! - [`Fault::Reset`]: the connection is reset (RST) without a response, without forwarding;
//! - [`Fault::ResetMidResponse`]: the request *is* forwarded (the server acts on it), then the
//!   response is cut: half its body and the connection closed, or, for an empty body, the
//!   connection reset before the head. Only sensible for operations that are safe to repeat
//!   (a lost CreateMultipartUpload response leaves an upload nobody knows about);
//! - [`Fault::Stall`]: nothing is forwarded and nothing answered for
//!   [`FaultPlan::stall_for`] (make it longer than the client's timeouts), then a reset;
//! - [`Fault::StallMidResponse`]: forwarded, then the head and half the body (or, for an empty
//!   body, nothing) and no more for `stall_for`, then a reset. Same caveat as
//!   `ResetMidResponse`.
//!
//! Decisions are reproducible: a request's fate is a hash of the plan's seed, the request's
//! identity (method, key, query and `Range`, without the bucket and upload id, which are
//! random per run) and how many requests with that identity came before. Concurrency does not
//! change which attempt of which part fails. Counters by operation and fault kind, and the
//! multipart uploads the server created, completed and aborted, are in [`S3FaultProxy::stats`].
//! Path-style addressing only (`endpoint/bucket/key`).

use anyhow::{bail, Context, Result};
use bytes::Bytes;
use futures::StreamExt as _;
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context as TaskContext, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;

/// The S3 operation of a request, from its method, path and query.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Op {
    CreateBucket,
    HeadBucket,
    ListObjects,
    ListMultipartUploads,
    DeleteObjects,
    PutObject,
    GetObject,
    HeadObject,
    DeleteObject,
    CreateMultipartUpload,
    UploadPart,
    CompleteMultipartUpload,
    AbortMultipartUpload,
    ListParts,
    Other,
}

impl Op {
    fn classify(method: &Method, path: &str, query: &[(String, String)]) -> Op {
        let has = |k: &str| query.iter().any(|(n, _)| n == k);
        let object = path
            .trim_start_matches('/')
            .split_once('/')
            .is_some_and(|(_, key)| !key.is_empty());
        match (method.as_str(), object) {
            ("PUT", false) => Op::CreateBucket,
            ("HEAD", false) => Op::HeadBucket,
            ("GET", false) if has("uploads") => Op::ListMultipartUploads,
            ("GET", false) => Op::ListObjects,
            ("POST", false) if has("delete") => Op::DeleteObjects,
            ("PUT", true) if has("uploadId") && has("partNumber") => Op::UploadPart,
            ("PUT", true) => Op::PutObject,
            ("POST", true) if has("uploads") => Op::CreateMultipartUpload,
            ("POST", true) if has("uploadId") => Op::CompleteMultipartUpload,
            ("DELETE", true) if has("uploadId") => Op::AbortMultipartUpload,
            ("DELETE", true) => Op::DeleteObject,
            ("GET", true) if has("uploadId") => Op::ListParts,
            ("GET", true) => Op::GetObject,
            ("HEAD", true) => Op::HeadObject,
            _ => Op::Other,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Fault {
    /// HTTP 500 `InternalError`, not forwarded.
    InternalError,
    /// HTTP 503 `SlowDown`, not forwarded.
    SlowDown,
    /// Connection reset without a response, not forwarded.
    Reset,
    /// Forwarded, then the response is cut (half the body, or no head at all).
    ResetMidResponse,
    /// Not forwarded; nothing for `stall_for`, then a reset.
    Stall,
    /// Forwarded; half the body (or nothing, for an empty one), then nothing for `stall_for`,
    /// then a reset.
    StallMidResponse,
    /// Forwarded with one byte of the request body flipped, as a bad NIC or middlebox would:
    /// the signature still holds (payloads are UNSIGNED-PAYLOAD), so only a checksum the
    /// server checks can catch it. Not in [`ALL_FAULTS`].
    CorruptBody,
}

pub const ALL_FAULTS: [Fault; 6] = [
    Fault::InternalError,
    Fault::SlowDown,
    Fault::Reset,
    Fault::ResetMidResponse,
    Fault::Stall,
    Fault::StallMidResponse,
];

/// One way to fail: `fault` with `probability`, for requests whose operation is in `ops`
/// (every operation when `ops` is empty).
#[derive(Debug, Clone)]
pub struct Rule {
    pub fault: Fault,
    pub probability: f64,
    pub ops: Vec<Op>,
    /// Only requests whose object key contains this (every key when `None`).
    pub key_contains: Option<String>,
}

/// What to do to requests. Rules are tried in order against one roll in [0, 1): the
/// probabilities of the rules matching a request add up (keep the sum at most 1).
#[derive(Debug, Clone)]
pub struct FaultPlan {
    pub seed: u64,
    pub rules: Vec<Rule>,
    pub stall_for: Duration,
}

impl FaultPlan {
    /// No faults: every request is forwarded untouched.
    pub fn none() -> Self {
        Self::seeded(0)
    }

    pub fn seeded(seed: u64) -> Self {
        Self {
            seed,
            rules: Vec::new(),
            stall_for: Duration::from_secs(30),
        }
    }

    /// Add a rule (`ops` empty: every operation).
    pub fn rule(mut self, fault: Fault, probability: f64, ops: &[Op]) -> Self {
        self.rules.push(Rule {
            fault,
            probability,
            ops: ops.to_vec(),
            key_contains: None,
        });
        self
    }

    /// [`FaultPlan::rule`] for objects whose key contains `needle` only.
    pub fn rule_for_keys(
        mut self,
        fault: Fault,
        probability: f64,
        ops: &[Op],
        needle: &str,
    ) -> Self {
        self = self.rule(fault, probability, ops);
        if let Some(r) = self.rules.last_mut() {
            r.key_contains = Some(needle.to_string());
        }
        self
    }

    pub fn stall_for(mut self, d: Duration) -> Self {
        self.stall_for = d;
        self
    }

    fn pick(&self, op: Op, key: &str, roll: f64) -> Option<Fault> {
        let mut acc = 0.0;
        for r in &self.rules {
            let key_ok = r.key_contains.as_deref().is_none_or(|k| key.contains(k));
            if (r.ops.is_empty() || r.ops.contains(&op)) && key_ok {
                acc += r.probability;
                if roll < acc {
                    return Some(r.fault);
                }
            }
        }
        None
    }
}

/// A multipart upload the server created (seen in a CreateMultipartUpload response).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Upload {
    pub bucket: String,
    /// The object key, decoded.
    pub key: String,
    pub upload_id: String,
}

/// What went through the proxy.
#[derive(Debug, Clone, Default)]
pub struct Stats {
    /// Requests received, by operation (faulted or not).
    pub requests: BTreeMap<Op, u64>,
    /// Faults injected, by operation and kind.
    pub faults: BTreeMap<(Op, Fault), u64>,
    /// Requests forwarded to the server, and its answers by status code.
    pub forwarded: u64,
    pub statuses: BTreeMap<u16, u64>,
    /// Multipart uploads the server created.
    pub uploads_created: Vec<Upload>,
    /// Upload ids the server completed or aborted (a 2xx answer, even one the client never saw).
    pub uploads_settled: BTreeSet<String>,
}

impl Stats {
    pub fn requests_total(&self) -> u64 {
        self.requests.values().sum()
    }

    pub fn requests_of(&self, op: Op) -> u64 {
        self.requests.get(&op).copied().unwrap_or(0)
    }

    pub fn faults_total(&self) -> u64 {
        self.faults.values().sum()
    }

    pub fn faults_of(&self, fault: Fault) -> u64 {
        self.faults
            .iter()
            .filter(|((_, f), _)| *f == fault)
            .map(|(_, n)| n)
            .sum()
    }

    pub fn faults_on(&self, op: Op) -> u64 {
        self.faults
            .iter()
            .filter(|((o, _), _)| *o == op)
            .map(|(_, n)| n)
            .sum()
    }

    /// Uploads created and neither completed nor aborted: parts the bucket still bills.
    pub fn open_uploads(&self) -> Vec<Upload> {
        self.uploads_created
            .iter()
            .filter(|u| !self.uploads_settled.contains(&u.upload_id))
            .cloned()
            .collect()
    }

    /// One line per operation: requests and faults by kind, for test logs.
    pub fn summary(&self) -> String {
        let mut out = format!(
            "{} requests, {} faults, {} forwarded, statuses {:?}, uploads created {} / open {}",
            self.requests_total(),
            self.faults_total(),
            self.forwarded,
            self.statuses,
            self.uploads_created.len(),
            self.open_uploads().len()
        );
        for (op, n) in &self.requests {
            let faults: Vec<String> = ALL_FAULTS
                .iter()
                .filter_map(|f| {
                    self.faults
                        .get(&(*op, *f))
                        .map(|count| format!("{f:?} {count}"))
                })
                .collect();
            out.push_str(&format!("\n  {op:?}: {n} requests; {}", faults.join(", ")));
        }
        out
    }
}

struct State {
    plan: FaultPlan,
    /// Requests seen per identity: the ordinal that, with the seed, decides a request's fate.
    seen: HashMap<String, u64>,
    stats: Stats,
}

struct Shared {
    upstream: String,
    state: Mutex<State>,
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The proxy; stops (and drops every connection it holds) when dropped.
pub struct S3FaultProxy {
    addr: std::net::SocketAddr,
    shared: Arc<Shared>,
    accept: tokio::task::JoinHandle<()>,
}

impl S3FaultProxy {
    /// Listen on 127.0.0.1 (a free port) and forward to `upstream` (`http://host:port`).
    pub async fn start(upstream: &str) -> Result<Self> {
        let Some(hostport) = upstream.strip_prefix("http://") else {
            bail!("the fault proxy forwards to http:// endpoints only, not {upstream}");
        };
        let hostport = hostport.trim_end_matches('/').to_string();
        // Fail now, not on the first request, if the server is not there.
        TcpStream::connect(&hostport).await.with_context(|| {
            format!(
                "the S3-compatible server at {upstream} is required (run deploy/local/services.sh)"
            )
        })?;
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            upstream: hostport,
            state: Mutex::new(State {
                plan: FaultPlan::none(),
                seen: HashMap::new(),
                stats: Stats::default(),
            }),
        });
        let accept = tokio::spawn(accept_loop(listener, shared.clone()));
        Ok(Self {
            addr,
            shared,
            accept,
        })
    }

    /// `http://127.0.0.1:PORT`, for `output.s3.endpoint`.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Replace the fault plan; takes effect for requests arriving from now on.
    pub fn set_plan(&self, plan: FaultPlan) {
        self.shared.lock().plan = plan;
    }

    /// Stop injecting faults (stalls already under way run out).
    pub fn faults_off(&self) {
        self.set_plan(FaultPlan::none());
    }

    pub fn stats(&self) -> Stats {
        self.shared.lock().stats.clone()
    }
}

impl Drop for S3FaultProxy {
    fn drop(&mut self) {
        // The accept task owns every connection task: aborting it drops them all.
        self.accept.abort();
    }
}

async fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    let mut conns = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else { continue };
                let _ = stream.set_nodelay(true);
                conns.spawn(serve(stream, shared.clone()));
            }
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
        }
    }
}

type ProxyBody = UnsyncBoxBody<Bytes, std::io::Error>;
type BoxError = Box<dyn std::error::Error + Send + Sync>;

async fn serve(stream: TcpStream, shared: Arc<Shared>) {
    let reset = Arc::new(AtomicBool::new(false));
    let io = TokioIo::new(ResetOnDrop {
        stream,
        reset: reset.clone(),
    });
    let service = hyper::service::service_fn(move |req| handle(shared.clone(), reset.clone(), req));
    // An error here is usually an injected fault (the service failed on purpose).
    let _ = hyper::server::conn::http1::Builder::new()
        .serve_connection(io, service)
        .await;
}

/// What a request is, for faults and bookkeeping.
struct Target {
    op: Op,
    bucket: String,
    /// Decoded object key ("" for bucket requests).
    key: String,
    upload_id: Option<String>,
    /// Stable across runs: no bucket name, no upload id.
    identity: String,
}

impl Target {
    fn of(req: &hyper::http::request::Parts) -> Self {
        let path = req.uri.path();
        let query: Vec<(String, String)> = req
            .uri
            .query()
            .unwrap_or("")
            .split('&')
            .filter(|p| !p.is_empty())
            .map(|p| match p.split_once('=') {
                Some((k, v)) => (decode(k), decode(v)),
                None => (decode(p), String::new()),
            })
            .collect();
        let op = Op::classify(&req.method, path, &query);
        let (bucket, key) = path
            .trim_start_matches('/')
            .split_once('/')
            .unwrap_or((path.trim_start_matches('/'), ""));
        let upload_id = query
            .iter()
            .find(|(k, _)| k == "uploadId")
            .map(|(_, v)| v.clone());
        let mut stable: Vec<String> = query
            .iter()
            .filter(|(k, _)| k != "uploadId" && k != "x-id")
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        stable.sort();
        let range = req
            .headers
            .get(hyper::header::RANGE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        Self {
            op,
            bucket: decode(bucket),
            key: decode(key),
            upload_id,
            identity: without_uuids(&format!(
                "{} /{key}?{} {range}",
                req.method,
                stable.join("&")
            )),
        }
    }
}

async fn handle(
    shared: Arc<Shared>,
    reset: Arc<AtomicBool>,
    req: Request<Incoming>,
) -> Result<Response<ProxyBody>, BoxError> {
    let (parts, body) = req.into_parts();
    // Whole requests: the decision, and the forwarding, need all of it.
    let body = body.collect().await?.to_bytes();
    let target = Target::of(&parts);
    let (fault, stall_for) = decide(&shared, &target);
    match fault {
        Some(Fault::InternalError) => {
            return Ok(s3_error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "InternalError",
                "We encountered an internal error. Please try again.",
                parts.uri.path(),
            ))
        }
        Some(Fault::SlowDown) => {
            return Ok(s3_error(
                StatusCode::SERVICE_UNAVAILABLE,
                "SlowDown",
                "Please reduce your request rate.",
                parts.uri.path(),
            ))
        }
        Some(Fault::Reset) => {
            reset.store(true, Ordering::Relaxed);
            return Err("injected fault: connection reset".into());
        }
        Some(Fault::Stall) => {
            tokio::time::sleep(stall_for).await;
            reset.store(true, Ordering::Relaxed);
            return Err("injected fault: stalled, then reset".into());
        }
        Some(Fault::ResetMidResponse | Fault::StallMidResponse | Fault::CorruptBody) | None => {}
    }
    let body = if fault == Some(Fault::CorruptBody) && !body.is_empty() {
        let mut damaged = body.to_vec();
        let middle = damaged.len() / 2;
        damaged[middle] ^= 0x20;
        Bytes::from(damaged)
    } else {
        body
    };

    let (head, rbody) = match forward(&shared.upstream, Request::from_parts(parts, body)).await {
        Ok(r) => r,
        Err(e) => {
            // The server is gone or broke the connection: pass that on as a reset.
            reset.store(true, Ordering::Relaxed);
            return Err(e);
        }
    };
    observe(&shared, &target, head.status, &rbody);

    if fault == Some(Fault::StallMidResponse) {
        reset.store(true, Ordering::Relaxed);
        if rbody.len() < 2 {
            tokio::time::sleep(stall_for).await;
            return Err("injected fault: response held, then reset".into());
        }
        let half = rbody.slice(..rbody.len() / 2);
        let frames = futures::stream::iter([Ok(Frame::data(half))]).chain(futures::stream::once(
            async move {
                tokio::time::sleep(stall_for).await;
                Err(std::io::Error::other("injected fault: response stalled"))
            },
        ));
        return Ok(Response::from_parts(
            head,
            BodyExt::boxed_unsync(StreamBody::new(frames)),
        ));
    }
    if fault == Some(Fault::ResetMidResponse) {
        if rbody.len() < 2 {
            reset.store(true, Ordering::Relaxed);
            return Err("injected fault: response lost".into());
        }
        // The head (with the full Content-Length) and half the body, a moment for it to
        // reach the client, then the connection closes: a body cut short.
        let half = rbody.slice(..rbody.len() / 2);
        let frames =
            futures::stream::iter([Ok(Frame::data(half))]).chain(futures::stream::once(async {
                tokio::time::sleep(Duration::from_millis(50)).await;
                Err(std::io::Error::other("injected fault: response cut"))
            }));
        return Ok(Response::from_parts(
            head,
            BodyExt::boxed_unsync(StreamBody::new(frames)),
        ));
    }
    Ok(Response::from_parts(head, full(rbody)))
}

fn full(b: Bytes) -> ProxyBody {
    Full::new(b).map_err(|never| match never {}).boxed_unsync()
}

/// Count the request and decide its fate.
fn decide(shared: &Shared, t: &Target) -> (Option<Fault>, Duration) {
    let mut st = shared.lock();
    *st.stats.requests.entry(t.op).or_default() += 1;
    if st.plan.rules.is_empty() {
        return (None, Duration::ZERO);
    }
    let ordinal = {
        let n = st.seen.entry(t.identity.clone()).or_default();
        *n += 1;
        *n
    };
    let h = splitmix64(st.plan.seed ^ fnv1a(t.identity.as_bytes()) ^ splitmix64(ordinal));
    let roll = (h >> 11) as f64 / (1u64 << 53) as f64;
    let fault = st.plan.pick(t.op, &t.key, roll);
    if let Some(f) = fault {
        *st.stats.faults.entry((t.op, f)).or_default() += 1;
    }
    (fault, st.plan.stall_for)
}

/// Bookkeeping of what the server did: statuses, and multipart uploads created and settled.
fn observe(shared: &Shared, t: &Target, status: StatusCode, body: &Bytes) {
    let mut st = shared.lock();
    st.stats.forwarded += 1;
    *st.stats.statuses.entry(status.as_u16()).or_default() += 1;
    if !status.is_success() {
        return;
    }
    match t.op {
        Op::CreateMultipartUpload => {
            if let Some(id) = xml_value(body, "UploadId") {
                st.stats.uploads_created.push(Upload {
                    bucket: t.bucket.clone(),
                    key: t.key.clone(),
                    upload_id: id,
                });
            }
        }
        // CompleteMultipartUpload may fail with a 200 and an <Error> body.
        Op::CompleteMultipartUpload if xml_value(body, "Code").is_some() => {}
        Op::CompleteMultipartUpload | Op::AbortMultipartUpload => {
            if let Some(id) = &t.upload_id {
                st.stats.uploads_settled.insert(id.clone());
            }
        }
        _ => {}
    }
}

async fn forward(
    upstream: &str,
    req: Request<Bytes>,
) -> Result<(hyper::http::response::Parts, Bytes), BoxError> {
    let stream = TcpStream::connect(upstream).await?;
    let _ = stream.set_nodelay(true);
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    // One connection per request: it ends when `sender` is dropped below.
    tokio::spawn(conn);
    let (parts, body) = req.into_parts();
    let resp = sender
        .send_request(Request::from_parts(parts, Full::new(body)))
        .await?;
    let (head, body) = resp.into_parts();
    let body = body.collect().await?.to_bytes();
    Ok((head, body))
}

fn s3_error(status: StatusCode, code: &str, message: &str, resource: &str) -> Response<ProxyBody> {
    let body = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>{code}</Code><Message>{message}</Message><Resource>{resource}</Resource><RequestId>pgfleet-fault-proxy</RequestId></Error>"
    );
    Response::builder()
        .status(status)
        .header(hyper::header::CONTENT_TYPE, "application/xml")
        .header(hyper::header::CONTENT_LENGTH, body.len())
        .header("x-amz-request-id", "pgfleet-fault-proxy")
        .body(full(Bytes::from(body)))
        .expect("a valid response")
}

/// The text of the first `<tag>…</tag>` in an XML body.
fn xml_value(body: &[u8], tag: &str) -> Option<String> {
    let text = std::str::from_utf8(body).ok()?;
    let open = format!("<{tag}>");
    let start = text.find(&open)? + open.len();
    let end = start + text[start..].find(&format!("</{tag}>"))?;
    Some(text[start..end].to_string())
}

/// Percent-decoding of a path segment or query component.
fn decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    let hex = |c: u8| (c as char).to_digit(16);
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            if let (Some(hi), Some(lo)) = (hex(b[i + 1]), hex(b[i + 2])) {
                out.push((hi * 16 + lo) as u8);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// `s` with every UUID (as in Spark's part file names, random per run) replaced by `<uuid>`.
fn without_uuids(s: &str) -> String {
    const SHAPE: [usize; 5] = [8, 4, 4, 4, 12];
    let b = s.as_bytes();
    let uuid_at = |i: usize| {
        let mut j = i;
        for (n, len) in SHAPE.iter().enumerate() {
            if n > 0 {
                if b.get(j) != Some(&b'-') {
                    return false;
                }
                j += 1;
            }
            for _ in 0..*len {
                if !b.get(j).is_some_and(u8::is_ascii_hexdigit) {
                    return false;
                }
                j += 1;
            }
        }
        true
    };
    let mut out = String::with_capacity(s.len());
    let mut i = 0;
    while i < b.len() {
        if uuid_at(i) {
            out.push_str("<uuid>");
            i += 36;
        } else {
            let c = s[i..].chars().next().expect("in bounds");
            out.push(c);
            i += c.len_utf8();
        }
    }
    out
}

fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// A TCP stream that is reset (RST, not FIN) when dropped after a fault asked for it.
struct ResetOnDrop {
    stream: TcpStream,
    reset: Arc<AtomicBool>,
}

impl Drop for ResetOnDrop {
    fn drop(&mut self) {
        if self.reset.load(Ordering::Relaxed) {
            let _ = self.stream.set_zero_linger();
        }
    }
}

impl AsyncRead for ResetOnDrop {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for ResetOnDrop {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(
        mut self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }
}

/// Check, against the server itself (not through the proxy), that no multipart upload is left
/// in `bucket`: ListMultipartUploads where the server has it; and, for every upload the proxy
/// saw created, that the proxy saw it completed or aborted and that the server lists no parts
/// for it (servers answer NoSuchUpload; s3s-fs, which has no ListMultipartUploads, an empty list).
pub async fn assert_no_uploads_left(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    stats: &Stats,
) -> Result<()> {
    use aws_sdk_s3::error::ProvideErrorMetadata;
    match s3.list_multipart_uploads().bucket(bucket).send().await {
        Ok(out) => {
            let left: Vec<String> = out
                .uploads()
                .iter()
                .map(|u| {
                    format!(
                        "{} ({})",
                        u.key().unwrap_or(""),
                        u.upload_id().unwrap_or("")
                    )
                })
                .collect();
            if !left.is_empty() {
                bail!("multipart uploads left in {bucket}: {left:?}");
            }
        }
        Err(e) if e.code() == Some("NotImplemented") => {}
        Err(e) => bail!(
            "ListMultipartUploads on {bucket}: {}",
            aws_sdk_s3::error::DisplayErrorContext(&e)
        ),
    }
    let open = stats.open_uploads();
    if !open.is_empty() {
        bail!(
            "{} of {} multipart uploads were never completed or aborted: {open:?}",
            open.len(),
            stats.uploads_created.len()
        );
    }
    for u in stats.uploads_created.iter().filter(|u| u.bucket == bucket) {
        match s3
            .list_parts()
            .bucket(&u.bucket)
            .key(&u.key)
            .upload_id(&u.upload_id)
            .send()
            .await
        {
            Ok(out) if out.parts().is_empty() => {}
            Ok(out) => bail!(
                "upload {} of {} still has {} parts",
                u.upload_id,
                u.key,
                out.parts().len()
            ),
            Err(e) if e.code() == Some("NoSuchUpload") => {}
            Err(e) => bail!(
                "ListParts {} of {}: {}",
                u.upload_id,
                u.key,
                aws_sdk_s3::error::DisplayErrorContext(&e)
            ),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn op(method: &str, path: &str, query: &str) -> Op {
        let q: Vec<(String, String)> = query
            .split('&')
            .filter(|p| !p.is_empty())
            .map(|p| match p.split_once('=') {
                Some((k, v)) => (k.to_string(), v.to_string()),
                None => (p.to_string(), String::new()),
            })
            .collect();
        Op::classify(&method.parse().unwrap(), path, &q)
    }

    #[test]
    fn classifies_operations() {
        assert_eq!(op("PUT", "/b", ""), Op::CreateBucket);
        assert_eq!(op("GET", "/b", "list-type=2&prefix=x"), Op::ListObjects);
        assert_eq!(op("GET", "/b", "uploads"), Op::ListMultipartUploads);
        assert_eq!(op("PUT", "/b/k/x.csv", "x-id=PutObject"), Op::PutObject);
        assert_eq!(op("POST", "/b/k", "uploads"), Op::CreateMultipartUpload);
        assert_eq!(
            op("PUT", "/b/k", "partNumber=2&uploadId=u&x-id=UploadPart"),
            Op::UploadPart
        );
        assert_eq!(
            op("POST", "/b/k", "uploadId=u"),
            Op::CompleteMultipartUpload
        );
        assert_eq!(op("DELETE", "/b/k", "uploadId=u"), Op::AbortMultipartUpload);
        assert_eq!(op("GET", "/b/k", "uploadId=u"), Op::ListParts);
        assert_eq!(op("GET", "/b/k", "x-id=GetObject"), Op::GetObject);
        assert_eq!(op("HEAD", "/b/k", ""), Op::HeadObject);
    }

    #[test]
    fn plans_pick_by_cumulative_probability() {
        let plan = FaultPlan::seeded(1).rule(Fault::SlowDown, 0.1, &[]).rule(
            Fault::Reset,
            0.2,
            &[Op::UploadPart],
        );
        assert_eq!(plan.pick(Op::UploadPart, "k", 0.05), Some(Fault::SlowDown));
        assert_eq!(plan.pick(Op::UploadPart, "k", 0.25), Some(Fault::Reset));
        assert_eq!(plan.pick(Op::UploadPart, "k", 0.35), None);
        assert_eq!(plan.pick(Op::GetObject, "k", 0.15), None);
        let parts = FaultPlan::seeded(1).rule_for_keys(Fault::CorruptBody, 0.5, &[], "/part-");
        assert_eq!(
            parts.pick(Op::PutObject, "t/part-00001.csv", 0.1),
            Some(Fault::CorruptBody)
        );
        assert_eq!(parts.pick(Op::PutObject, "t/_manifest.json", 0.1), None);
    }

    #[test]
    fn identities_leave_out_uuids() {
        assert_eq!(
            without_uuids(
                "GET /x/part-00001-c47aaf98-5c00-4b76-8564-74683822a46c-c000.gz.parquet? ✓"
            ),
            "GET /x/part-00001-<uuid>-c000.gz.parquet? ✓"
        );
        assert_eq!(without_uuids("c47aaf98-5c00"), "c47aaf98-5c00");
    }

    #[test]
    fn decodes_percent_escapes() {
        assert_eq!(decode("public.Odd%20%22Name%22"), "public.Odd \"Name\"");
        assert_eq!(decode("a%2"), "a%2");
        assert_eq!(
            xml_value(b"<X><UploadId>abc</UploadId></X>", "UploadId").as_deref(),
            Some("abc")
        );
    }
}
