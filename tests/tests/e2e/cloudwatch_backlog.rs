//! `coordinator serve --cloudwatch-backlog` publishes the task backlog to CloudWatch, the input
//! of the Auto Scaling policy. No CloudWatch is reachable here and moto does not speak the
//! RPCv2-CBOR protocol the current SDK uses, so the endpoint is a loopback recorder that answers
//! like CloudWatch and keeps the request bodies; the tests check what the coordinator sent. The
//! RabbitMQ management API is the local broker's (deploy/local/services.sh enables it on
//! loopback).

use futures::StreamExt;
use pgfleet_tests::procs::Proc;
use pgfleet_tests::*;
use std::io::{BufRead, BufReader, Read, Write};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Requests the recorder saw: (path, body).
type Seen = Arc<Mutex<Vec<(String, Vec<u8>)>>>;

/// Accept requests on loopback, answer each with an empty CBOR map, keep (path, body).
fn recorder() -> (String, Seen) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind loopback");
    let addr = listener.local_addr().expect("local addr");
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let log = log.clone();
            std::thread::spawn(move || {
                let mut reader = BufReader::new(stream);
                loop {
                    let mut request_line = String::new();
                    if reader.read_line(&mut request_line).unwrap_or(0) == 0 {
                        return;
                    }
                    let path = request_line
                        .split_whitespace()
                        .nth(1)
                        .unwrap_or("")
                        .to_string();
                    let mut length = 0usize;
                    loop {
                        let mut h = String::new();
                        if reader.read_line(&mut h).unwrap_or(0) == 0 {
                            return;
                        }
                        if h == "\r\n" {
                            break;
                        }
                        if let Some(v) = h.to_ascii_lowercase().strip_prefix("content-length:") {
                            length = v.trim().parse().unwrap_or(0);
                        }
                    }
                    let mut body = vec![0u8; length];
                    if reader.read_exact(&mut body).is_err() {
                        return;
                    }
                    log.lock().unwrap().push((path, body));
                    let reply = b"HTTP/1.1 200 OK\r\nsmithy-protocol: rpc-v2-cbor\r\ncontent-type: application/cbor\r\ncontent-length: 1\r\n\r\n\xa0";
                    if reader.get_mut().write_all(reply).is_err() {
                        return;
                    }
                }
            });
        }
    });
    (format!("http://{addr}"), seen)
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

/// CBOR float64, as the SDK encodes a datum's value.
fn cbor_f64(v: f64) -> Vec<u8> {
    let mut b = vec![0xfb];
    b.extend_from_slice(&v.to_be_bytes());
    b
}

/// Wait for a PutMetricData, among requests `since` onwards, with TaskBacklog = `value`.
async fn wait_for_backlog(
    seen: &Seen,
    since: usize,
    namespace: &str,
    value: f64,
    logs: &dyn Fn() -> String,
) {
    let encoded = cbor_f64(value);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let found = seen.lock().unwrap().iter().skip(since).any(|(path, body)| {
            path.ends_with("/PutMetricData")
                && contains(body, b"TaskBacklog")
                && contains(body, b"pgfleet")
                && contains(body, namespace.as_bytes())
                && contains(body, &encoded)
        });
        if found {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "no PutMetricData with TaskBacklog = {value} for namespace {namespace} (requests: {:?})\n{}",
            seen.lock()
                .unwrap()
                .iter()
                .skip(since)
                .map(|(p, b)| (p.clone(), String::from_utf8_lossy(b).into_owned()))
                .collect::<Vec<_>>(),
            logs()
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

fn rabbitmq_api_url() -> String {
    env_or("PGFLEET_TEST_RABBITMQ_API_URL", "http://127.0.0.1:15672")
}

/// The backlog counts tasks workers hold (unacknowledged) as well as ready ones: both in the
/// coordinator's metrics and in the CloudWatch datum. Without the management API the unacked
/// count is the coordinator's estimate; with it, RabbitMQ's own count (a message the coordinator
/// never published shows that the numbers really come from the broker).
async fn backlog_counts_held_tasks(with_api: bool) -> anyhow::Result<()> {
    set_aws_env();
    let (endpoint, seen) = recorder();

    // A job and no workers: the published tasks stay in the queue.
    let source = ScratchDb::create("pgfleet_cw_src_").await?;
    source
        .client()
        .await?
        .batch_execute("CREATE TABLE t (id int PRIMARY KEY); INSERT INTO t SELECT generate_series(1, 5000); ANALYZE t;")
        .await?;
    let state = ScratchDb::create("pgfleet_cw_state_").await?;
    let namespace = unique("pgfleet-cw-");
    let topology = protocol::topology::Topology::new(&namespace).map_err(anyhow::Error::msg)?;
    let mut serve = pgfleet_tests::procs::Fleet::serve_cmd(&state.url, &namespace);
    serve.args([
        "--cloudwatch-backlog",
        "--cloudwatch-interval",
        "1",
        "--cloudwatch-endpoint",
        &endpoint,
    ]);
    if with_api {
        serve.args(["--rabbitmq-api-url", &rabbitmq_api_url()]);
    }
    let coordinator = Proc::spawn("coordinator", serve);
    pgfleet_tests::procs::wait_for_state_schema(&state.url, &coordinator);
    let logs = || coordinator.logs();
    let dir = std::env::temp_dir().join(unique("pgfleet-cw-"));
    std::fs::create_dir_all(&dir)?;
    let spec = dir.join("export.toml");
    std::fs::write(
        &spec,
        format!(
            "kind = \"export\"\nname = \"cw\"\n[source]\nurl = \"{}\"\nmax_in_flight = 3\n[tables]\ninclude = [\"public.t\"]\n[chunking]\nrows_per_chunk = 500\n[output]\nurl = \"file://{}/out/\"\n",
            source.url,
            dir.display()
        ),
    )?;
    let out = Command::new(bin("coordinator"))
        .args(["submit", spec.to_str().unwrap()])
        .env("PGFLEET_STATE_URL", &state.url)
        .output()?;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // The window lets 3 of the 10 chunks out, all ready.
    wait_for_backlog(&seen, 0, &namespace, 3.0, &logs).await;

    // Two busy worker slots: a consumer takes two tasks and holds them unacknowledged.
    let conn = lapin::Connection::connect(&amqp_url(), Default::default()).await?;
    let channel = conn.create_channel().await?;
    channel.basic_qos(2, Default::default()).await?;
    let mut held = channel
        .basic_consume(
            topology.tasks.as_str().into(),
            "pgfleet-test-holder".into(),
            Default::default(),
            Default::default(),
        )
        .await?;
    for _ in 0..2 {
        tokio::time::timeout(Duration::from_secs(10), held.next())
            .await?
            .ok_or_else(|| anyhow::anyhow!("the consumer closed"))??;
    }
    if with_api {
        // Only RabbitMQ knows of this one.
        channel
            .basic_publish(
                "".into(),
                topology.tasks.as_str().into(),
                Default::default(),
                b"not a task of this coordinator",
                lapin::BasicProperties::default(),
            )
            .await?
            .await?;
    }
    let (ready, unacked) = if with_api { (2.0, 2.0) } else { (1.0, 2.0) };
    let since = seen.lock().unwrap().len();

    // RabbitMQ's management counts refresh every 5 s: allow a few rounds.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let now = (
            coordinator
                .metric("pgfleet_coordinator_task_queue_messages{state=\"ready\"}")
                .await?,
            coordinator
                .metric("pgfleet_coordinator_task_queue_messages{state=\"unacked\"}")
                .await?,
            coordinator
                .metric("pgfleet_coordinator_task_queue_consumers")
                .await?,
            coordinator
                .metric("pgfleet_coordinator_queue_stats_from_api")
                .await?,
        );
        if now == (ready, unacked, 1.0, if with_api { 1.0 } else { 0.0 }) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "metrics (ready, unacked, consumers, from_api) = {now:?}, expected ({ready}, {unacked}, 1, {with_api})\n{}",
            coordinator.logs()
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    wait_for_backlog(&seen, since, &namespace, ready + unacked, &logs).await;

    let _ = channel.close(200, "done".into()).await;
    for queue in [&topology.tasks, &topology.results, &topology.dead_letters] {
        let ch = conn.create_channel().await?;
        let _ = ch
            .queue_delete(queue.as_str().into(), Default::default())
            .await;
    }
    let _ = conn.close(200, "done".into()).await;
    drop(coordinator);
    let _ = std::fs::remove_dir_all(&dir);
    source.drop().await?;
    state.drop().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backlog_counts_held_tasks_estimated_without_the_management_api() -> anyhow::Result<()> {
    backlog_counts_held_tasks(false).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backlog_counts_held_tasks_from_the_management_api() -> anyhow::Result<()> {
    backlog_counts_held_tasks(true).await
}
