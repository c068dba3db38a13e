//! Graceful scale-in: SIGTERM to one of two workers while it has a chunk in flight.
//! - With the default grace the worker stops taking tasks, finishes the chunk it holds, exits 0,
//!   and the job completes on the other worker with every row exported exactly once.
//! - With `--shutdown-grace 0` it stops taking tasks, puts its unfinished chunk back (unacked,
//!   so RabbitMQ redelivers it), exits 0, and the other worker redoes that chunk: still every
//!   row exactly once, and no chunk fails.

use pgfleet_tests::export_check::{check_table, Objects};
use pgfleet_tests::fixtures::{create_export_source, export_source_checks};
use pgfleet_tests::procs::{Fleet, Proc};
use pgfleet_tests::*;
use std::time::{Duration, Instant};

const ROWS: u64 = 600_000;
const APP: &str = "pgfleet-scale-in";
/// Seconds the terminated worker may take: its shutdown grace (default 300 s) is far longer
/// than one chunk, so the in-flight chunk must finish, not be abandoned.
const EXIT_WITHIN: u64 = 120;

fn spec(source_url: &str, output: &str, rows_per_chunk: u64) -> String {
    format!(
        r#"
kind = "export"
name = "scale-in"

[source]
url = "{source_url}"
max_in_flight = 2
application_name = "{APP}"

[tables]
include = ["public.*"]

[chunking]
rows_per_chunk = {rows_per_chunk}

[output]
url = "{output}"
format = "csv"
part_size = "5MiB"
s3 = {{ endpoint = "{endpoint}", force_path_style = true }}

[[transform]]
columns = "*"
prefix = "x-"
"#,
        endpoint = s3_endpoint()
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_mid_export_finishes_the_chunk_and_loses_nothing() -> anyhow::Result<()> {
    scale_in(Grace::Default).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_after_grace_requeues_the_chunk_and_loses_nothing() -> anyhow::Result<()> {
    scale_in(Grace::Zero).await
}

#[derive(Clone, Copy, PartialEq)]
enum Grace {
    /// 300 s: far longer than a chunk, so the in-flight chunk finishes.
    Default,
    /// `--shutdown-grace 0`: the in-flight chunk is abandoned and goes back to the queue.
    Zero,
}

/// Worker `w0` runs to the end; worker `w1` (the one scaled in) gets SIGTERM mid-export.
async fn scale_in(grace: Grace) -> anyhow::Result<()> {
    let source = ScratchDb::create("pgfleet_scalein_src_").await?;
    let state = ScratchDb::create("pgfleet_scalein_state_").await?;
    let src = source.client().await?;
    create_export_source(&src, ROWS).await?;

    let s3 = s3_client().await;
    let bucket = unique("scalein-");
    create_bucket(&s3, &bucket).await?;

    let mut fleet = Fleet::start(&state.url, 1, 1);
    let mut cmd = Fleet::worker_cmd(&fleet.namespace, 1, 1);
    if grace == Grace::Zero {
        cmd.args(["--shutdown-grace", "0"]);
    }
    fleet.workers.push(Proc::spawn("worker1", cmd));
    // Abandoning needs chunks long enough to be caught mid-way.
    let rows_per_chunk = match grace {
        Grace::Default => 40_000,
        Grace::Zero => 150_000,
    };
    let dir = std::env::temp_dir().join(unique("pgfleet-scalein-"));
    std::fs::create_dir_all(&dir)?;
    let spec_path = dir.join("export.toml");
    std::fs::write(
        &spec_path,
        spec(
            &source.url,
            &format!("s3://{bucket}/exports/"),
            rows_per_chunk,
        ),
    )?;

    // `submit --wait` in a thread, so the test can act while the job runs; `timeout` ends it
    // if a failed assertion leaves it waiting for a job nobody drives any more.
    let submit = {
        let spec = spec_path.clone();
        let state_url = state.url.clone();
        std::thread::spawn(move || {
            std::process::Command::new("timeout")
                .arg("300")
                .arg(bin("coordinator"))
                .args(["submit", spec.to_str().unwrap(), "--wait"])
                .env("PGFLEET_STATE_URL", state_url)
                .output()
                .expect("run coordinator submit")
        })
    };

    // Wait until both workers have finished a chunk and two COPYs are running on the source:
    // with max_in_flight = 2 and --concurrency 1 each worker then holds exactly one chunk.
    let admin = connect(&pg_admin_url()).await?;
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        // With short chunks, also wait until both have finished one (both surely consuming).
        let done_by_both = grace == Grace::Zero
            || fleet
                .workers
                .iter()
                .all(|w| w.logs().contains("task succeeded"));
        let copies: i64 = admin
            .query_one(
                "SELECT count(*) FROM pg_stat_activity
                 WHERE datname = $1 AND application_name = $2 AND state = 'active'
                   AND query ILIKE 'COPY%'",
                &[&source.name, &APP],
            )
            .await?
            .get(0);
        if done_by_both && copies == 2 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the export never had both workers busy (copies: {copies}); coordinator log:\n{}",
            fleet.coordinator.logs()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    let before = fleet.workers[1].logs().len();
    let sigterm_at = Instant::now();
    let code = fleet.workers[1].terminate(EXIT_WITHIN);
    let took = sigterm_at.elapsed();
    let log = fleet.workers[1].logs();
    assert_eq!(
        code,
        Some(0),
        "worker1 did not exit 0 within {EXIT_WITHIN}s of SIGTERM (took {took:?}); log:\n{log}"
    );
    let after = &log[before.min(log.len())..];
    assert!(
        after.contains("shutdown requested: no new tasks"),
        "worker1's log does not say it stopped taking tasks:\n{after}"
    );
    assert!(
        after.contains("worker stopped"),
        "no clean stop in:\n{after}"
    );
    match grace {
        Grace::Default => {
            assert!(
                !after.contains("grace period over"),
                "worker1 abandoned its chunk instead of finishing it:\n{after}"
            );
            // It finished the chunk it held, and took no new one (concurrency 1).
            let finished_after = after.matches("task succeeded").count();
            assert_eq!(
                finished_after, 1,
                "worker1 should finish exactly its one in-flight chunk after SIGTERM:\n{after}"
            );
        }
        Grace::Zero => {
            assert!(
                after.contains("grace period over"),
                "worker1 should have put its unfinished chunk back:\n{after}"
            );
            assert!(
                took < Duration::from_secs(30),
                "worker1 took {took:?} to stop with no grace"
            );
        }
    }

    let output = tokio::task::spawn_blocking(move || submit.join().expect("submit thread")).await?;
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "the job did not complete after scale-in\nstdout: {stdout}\nstderr: {}\ncoordinator: {}\nworker0: {}",
        String::from_utf8_lossy(&output.stderr),
        fleet.coordinator.logs(),
        fleet.workers[0].logs()
    );
    let job_id = stdout.trim().to_string();

    // Every row exactly once, every object listed in its manifest, none stray.
    let objects = Objects::S3 {
        client: s3,
        bucket: bucket.clone(),
    };
    let mut total = 0;
    for t in export_source_checks() {
        total += check_table(&objects, "exports/", &src, &t, "x-", false).await?;
    }
    assert_eq!(total as u64, ROWS + 30_000 + 1_000);

    let (code, out, _) = fleet.coordinator(&["status", &job_id, "--json"]);
    assert_eq!(code, 0);
    let status: serde_json::Value = serde_json::from_str(&out)?;
    assert_eq!(status["job"]["state"], "succeeded");
    assert_eq!(status["job"]["chunks_failed"].as_u64(), Some(0));

    // The rest of the job ran on the other worker, and nothing failed.
    let c = state.client().await?;
    let rows = c
        .query(
            "SELECT worker, outcome, count(*) FROM pgfleet.results GROUP BY 1, 2 ORDER BY 1, 2",
            &[],
        )
        .await?;
    let by: Vec<(String, String, i64)> = rows
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect();
    assert!(
        by.iter().all(|(_, o, _)| o == "succeeded"),
        "results: {by:?}"
    );
    let w1 = by.iter().find(|(w, _, _)| w == "w1").map(|r| r.2);
    let w0 = by.iter().find(|(w, _, _)| w == "w0").map(|r| r.2);
    assert!(
        w0.unwrap_or(0) > w1.unwrap_or(0) && w0.unwrap_or(0) >= 2,
        "expected the remaining worker to finish the job: {by:?}"
    );

    drop(fleet);
    let _ = std::fs::remove_dir_all(&dir);
    source.drop().await?;
    state.drop().await?;
    Ok(())
}
