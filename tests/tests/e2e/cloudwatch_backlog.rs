//! `coordinator serve --cloudwatch-backlog` publishes the task backlog to CloudWatch, the input
//! of the Auto Scaling policy. No CloudWatch is reachable here and moto does not speak the
//! RPCv2-CBOR protocol the current SDK uses, so the endpoint is a loopback recorder that answers
//! like CloudWatch and keeps the request bodies; the test checks what the coordinator sent.

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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backlog_reaches_cloudwatch() -> anyhow::Result<()> {
    set_aws_env();
    let (endpoint, seen) = recorder();

    // A job with no workers: the published tasks stay in the queue.
    let source = ScratchDb::create("pgfleet_cw_src_").await?;
    source
        .client()
        .await?
        .batch_execute("CREATE TABLE t (id int PRIMARY KEY); INSERT INTO t SELECT generate_series(1, 5000); ANALYZE t;")
        .await?;
    let state = ScratchDb::create("pgfleet_cw_state_").await?;
    let namespace = unique("pgfleet-cw-");
    let mut serve = pgfleet_tests::procs::Fleet::serve_cmd(&state.url, &namespace);
    serve.args([
        "--cloudwatch-backlog",
        "--cloudwatch-interval",
        "1",
        "--cloudwatch-endpoint",
        &endpoint,
    ]);
    let coordinator = Proc::spawn("coordinator", serve);
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

    // The window lets 3 of the 10 chunks out: TaskBacklog = 3.0 (CBOR float64 0xfb 40 08 00…).
    let three = [0xfb, 0x40, 0x08, 0, 0, 0, 0, 0, 0];
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let found = seen.lock().unwrap().iter().any(|(path, body)| {
            path.ends_with("/PutMetricData")
                && contains(body, b"TaskBacklog")
                && contains(body, b"pgfleet")
                && contains(body, namespace.as_bytes())
                && contains(body, &three)
        });
        if found {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no PutMetricData with TaskBacklog = 3 for namespace {namespace} (requests: {:?})\n{}",
            seen.lock()
                .unwrap()
                .iter()
                .map(|(p, b)| (p.clone(), String::from_utf8_lossy(b).into_owned()))
                .collect::<Vec<_>>(),
            coordinator.logs()
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    drop(coordinator);
    source.drop().await?;
    state.drop().await?;
    Ok(())
}
