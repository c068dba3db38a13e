//! The fault suite: real jobs through RabbitMQ with two or more worker processes, broken on
//! purpose while they run, then checked against the source: every row present exactly once
//! (export: every part downloaded and compared; restore: ordered row checksums per table), the
//! job reported as succeeded (or failed, where it must), nothing stray.
//!
//! Scenario numbers follow the README's "Guarantees" section. S3 faults are in faults_s3.rs,
//! the RabbitMQ restart in tests/tests/broker_restart.rs (its own binary: it disturbs every
//! test that talks to RabbitMQ, and cargo runs test binaries one after another).

use pgfleet_tests::procs::{Fleet, Proc};
use pgfleet_tests::scenario::*;
use pgfleet_tests::*;
use protocol::topology::Topology;
use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

/// The fleet's task queue.
fn tasks_queue(namespace: &str) -> String {
    Topology::new(namespace)
        .expect("test namespaces are valid")
        .tasks
}

/// How long a scenario's job may take before the test gives up on it.
const JOB_TIMEOUT: u64 = 240;

/// 1a. `kill -9` a worker while it streams a chunk: RabbitMQ redelivers the unacked task to the
/// other worker, which redoes the chunk from the start under the same key.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_worker_mid_export_chunk() -> anyhow::Result<()> {
    let sc = Scenario::export(
        "kill_exp",
        ExportShape {
            big_rows: 400_000,
            rows_per_chunk: 50_000,
            max_in_flight: 2,
        },
    )
    .await?;
    let mut fleet = Fleet::start(&sc.state.url, 2, 1);
    let submit = sc.submit(JOB_TIMEOUT);
    // Two COPYs at once with two single-slot workers: each worker is mid-chunk.
    sc.wait_for_copies(2, &fleet, Duration::from_secs(120))
        .await?;
    let killed_log_len = fleet.workers[1].logs().len();
    fleet.workers[1].kill();

    let (ok, job, err) = finish_submit(submit).await?;
    assert!(
        ok,
        "job failed after a worker was killed: {err}\ncoordinator: {}",
        fleet.coordinator.logs()
    );
    sc.check_export().await?;
    let status = sc.status(&job)?;
    assert_eq!(status["job"]["state"], "succeeded");
    assert_eq!(status["job"]["chunks_failed"], 0);
    // The killed worker's chunk was redone by w0: every result applied came from a live
    // worker, and w1 reported nothing after the kill.
    let results = sc.results().await?;
    let w1_before_kill = fleet.workers[1].logs()[..killed_log_len]
        .matches("task succeeded")
        .count();
    let from_w1 = results.iter().filter(|r| r.worker == "w1").count();
    assert_eq!(
        from_w1, w1_before_kill,
        "w1 reported results it never logged"
    );
    assert!(
        results.iter().all(|r| r.outcome == "succeeded"),
        "{results:?}"
    );
    drop(fleet);
    sc.drop().await
}

/// 1b. `kill -9` a worker in the middle of a restore file: its COPY transaction dies with the
/// connection, the file is redelivered and loaded whole by the other worker (the ledger row is
/// written in the same transaction as the rows, so a file is in the target once or not at all).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_worker_mid_restore_file() -> anyhow::Result<()> {
    let sc = Scenario::restore("kill_rst", 240_000, 60_000, 60_000, 2).await?;
    let mut fleet = Fleet::start(&sc.state.url, 2, 1);
    let submit = sc.submit(JOB_TIMEOUT);
    sc.wait_for_copies(2, &fleet, Duration::from_secs(120))
        .await?;
    fleet.workers[1].kill();
    let (ok, job, err) = finish_submit(submit).await?;
    assert!(
        ok,
        "restore failed after a worker was killed: {err}\ncoordinator: {}",
        fleet.coordinator.logs()
    );
    sc.check_restore().await?;
    assert_eq!(sc.status(&job)?["job"]["state"], "succeeded");
    drop(fleet);
    sc.drop().await
}

/// 3. `kill -9` the coordinator mid-job and start it again: the job finishes, and no chunk that
/// was recorded as done before the kill runs again. The only chunks that may run twice are
/// those published to RabbitMQ whose "queued" state had not reached the state database when the
/// process died (publish, then save): at most the publishing window (max_in_flight).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_coordinator_mid_job_and_restart() -> anyhow::Result<()> {
    const WINDOW: u32 = 2;
    let sc = Scenario::export(
        "kill_coord",
        ExportShape {
            big_rows: 300_000,
            rows_per_chunk: 10_000,
            max_in_flight: WINDOW,
        },
    )
    .await?;
    let mut fleet = Fleet::start(&sc.state.url, 2, 1);
    let submit = sc.submit(JOB_TIMEOUT);
    let state = sc.state.client().await?;
    wait_until("5 chunks done", Duration::from_secs(120), || async {
        Ok(chunks_in_state(&state, "done").await >= 5)
    })
    .await?;
    fleet.coordinator.kill();
    // The store is frozen now: remember what it says is done.
    let done_before: BTreeSet<i32> = state
        .query(
            "SELECT chunk_id FROM pgfleet.chunks WHERE state = 'done'",
            &[],
        )
        .await?
        .iter()
        .map(|r| r.get(0))
        .collect();
    let total: i64 = state
        .query_one("SELECT count(*) FROM pgfleet.chunks", &[])
        .await?
        .get(0);
    assert!(
        (done_before.len() as i64) < total,
        "the job ended before the coordinator was killed"
    );
    // Workers keep going meanwhile; their results wait in the durable result queue.
    tokio::time::sleep(Duration::from_secs(2)).await;
    fleet.coordinator = Proc::spawn(
        "coordinator-restarted",
        Fleet::serve_cmd(&sc.state.url, &fleet.namespace),
    );

    let (ok, job, err) = finish_submit(submit).await?;
    assert!(
        ok,
        "job did not finish after the coordinator restarted: {err}\ncoordinator: {}",
        fleet.coordinator.logs()
    );
    assert!(
        fleet.coordinator.logs().contains("resuming job"),
        "the restarted coordinator did not resume the job"
    );
    sc.check_export().await?;

    // How many times each chunk ran: one run per attempt (every publish is a new attempt).
    // A result recorded just before the kill but not yet acked is delivered again to the
    // restarted coordinator (at-least-once, ignored as a duplicate): the same attempt, no run.
    let mut attempts: BTreeSet<(i32, i32)> = BTreeSet::new();
    for r in sc.results().await? {
        let (_, chunk) = protocol::parse_task_id(&r.task_id)
            .ok_or_else(|| anyhow::anyhow!("malformed task id {:?}", r.task_id))?;
        attempts.insert((chunk as i32, r.attempt));
    }
    let mut runs: BTreeMap<i32, usize> = BTreeMap::new();
    for (chunk, _) in attempts {
        *runs.entry(chunk).or_default() += 1;
    }
    assert_eq!(runs.len() as i64, total, "every chunk ran: {runs:?}");
    let twice: Vec<i32> = runs
        .iter()
        .filter(|(_, n)| **n > 1)
        .map(|(c, _)| *c)
        .collect();
    for c in &done_before {
        assert_eq!(
            runs[c], 1,
            "chunk {c} was done before the kill and ran again"
        );
    }
    assert!(
        twice.len() <= WINDOW as usize,
        "{} chunks ran twice ({twice:?}); at most the publishing window ({WINDOW}) may",
        twice.len()
    );
    eprintln!(
        "coordinator restart: {} of {total} chunks were done before the kill; {} ran twice ({twice:?})",
        done_before.len(),
        twice.len()
    );
    assert_eq!(sc.status(&job)?["job"]["state"], "succeeded");
    drop(fleet);
    sc.drop().await
}

/// `pg_terminate_backend` on the scenario's running COPYs: waits for one, terminates every
/// COPY running at that moment, and tries again if they all finished in between. Returns how
/// many backends it terminated.
async fn terminate_copies(sc: &Scenario, fleet: &Fleet) -> anyhow::Result<i64> {
    let admin = connect(&pg_admin_url()).await?;
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        sc.wait_for_copies(1, fleet, Duration::from_secs(120))
            .await?;
        let rows = admin
            .query(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
                 WHERE datname = $1 AND application_name = $2 AND state = 'active'
                   AND query ILIKE 'COPY%'",
                &[&sc.copy_db().name, &sc.app],
            )
            .await?;
        let killed = rows.iter().filter(|r| r.get::<_, bool>(0)).count() as i64;
        if killed > 0 {
            return Ok(killed);
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "never caught a COPY to terminate"
        );
    }
}

/// 4a. The source's backend is terminated mid-COPY: the worker reports a retryable failure,
/// the chunk is retried after a backoff, and the export is exact.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn source_backend_terminated_mid_copy() -> anyhow::Result<()> {
    let sc = Scenario::export(
        "term_src",
        ExportShape {
            big_rows: 300_000,
            rows_per_chunk: 60_000,
            max_in_flight: 2,
        },
    )
    .await?;
    let fleet = Fleet::start(&sc.state.url, 2, 1);
    let submit = sc.submit(JOB_TIMEOUT);
    let killed = terminate_copies(&sc, &fleet).await?;
    let (ok, job, err) = finish_submit(submit).await?;
    assert!(ok, "export failed: {err}");
    sc.check_export().await?;
    let results = sc.results().await?;
    let retried = results
        .iter()
        .filter(|r| r.outcome == "retryable" && r.applied.starts_with("retry"))
        .count();
    assert!(
        retried >= 1,
        "no retry recorded after terminating {killed} backend(s): {results:?}"
    );
    assert_eq!(sc.status(&job)?["job"]["state"], "succeeded");
    drop(fleet);
    sc.drop().await
}

/// 4b. The target's backend is terminated mid-COPY of a restore file: the transaction rolls
/// back, the file is retried, the target ends up exact.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn target_backend_terminated_mid_copy() -> anyhow::Result<()> {
    let sc = Scenario::restore("term_dst", 240_000, 60_000, 60_000, 2).await?;
    let fleet = Fleet::start(&sc.state.url, 2, 1);
    let submit = sc.submit(JOB_TIMEOUT);
    let killed = terminate_copies(&sc, &fleet).await?;
    let (ok, job, err) = finish_submit(submit).await?;
    assert!(
        ok,
        "restore failed: {err}\ncoordinator: {}",
        fleet.coordinator.logs()
    );
    sc.check_restore().await?;
    let results = sc.results().await?;
    assert!(
        results
            .iter()
            .any(|r| r.outcome == "retryable" && r.applied.starts_with("retry")),
        "no retry recorded after terminating {killed} backend(s): {results:?}"
    );
    assert_eq!(sc.status(&job)?["job"]["state"], "succeeded");
    drop(fleet);
    sc.drop().await
}

/// Messages in a queue of the fleet's namespace, ready and unacknowledged (rabbitmqctl).
fn queue_messages(queue: &str) -> anyhow::Result<u64> {
    let out = std::process::Command::new("rabbitmqctl")
        .args(["-q", "list_queues", "name", "messages"])
        .output()?;
    anyhow::ensure!(
        out.status.success(),
        "rabbitmqctl list_queues: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let mut parts = line.split_whitespace();
        if parts.next() == Some(queue) {
            return Ok(parts.next().unwrap_or("0").parse()?);
        }
    }
    Ok(0)
}

/// 6. Chunks that can never succeed: a table dropped mid-job (one job) and SELECT revoked
/// mid-job (another job), while a third, healthy job shares the fleet. The two fail with a
/// message naming the table and the chunk, after no retries (the errors are permanent); the
/// healthy one succeeds exactly; afterwards nothing is left in flight.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn permanent_failures_fail_their_job_only() -> anyhow::Result<()> {
    let shape = || ExportShape {
        big_rows: 120_000,
        rows_per_chunk: 5_000,
        max_in_flight: 1,
    };
    let dropped = Scenario::export("perm_drop", shape()).await?;
    let revoked = Scenario::export("perm_revoke", shape()).await?;
    let healthy = Scenario::export("perm_ok", shape()).await?;
    // The revoke job reads as a plain role, so REVOKE bites (superusers bypass privileges).
    let role = unique("pgfleet_reader_");
    let admin = connect(&pg_admin_url()).await?;
    admin
        .batch_execute(&format!("CREATE ROLE {role} LOGIN"))
        .await?;
    revoked
        .source
        .client()
        .await?
        .batch_execute(&format!(
            "GRANT USAGE ON SCHEMA public TO {role}; GRANT SELECT ON ALL TABLES IN SCHEMA public TO {role};"
        ))
        .await?;
    let spec = std::fs::read_to_string(&revoked.spec)?
        .replace("postgresql://postgres@", &format!("postgresql://{role}@"));
    assert!(spec.contains(&role), "the spec's URL did not change");
    std::fs::write(&revoked.spec, spec)?;

    // All three jobs in one state database and one fleet.
    let fleet = Fleet::start(&healthy.state.url, 2, 1);
    let jobs = [
        submit_spec(&dropped.spec, &healthy.state.url, JOB_TIMEOUT),
        submit_spec(&revoked.spec, &healthy.state.url, JOB_TIMEOUT),
        submit_spec(&healthy.spec, &healthy.state.url, JOB_TIMEOUT),
    ];
    let state = healthy.state.client().await?;
    wait_until(
        "both doomed jobs to finish 2 chunks",
        Duration::from_secs(120),
        || async {
            let Ok(rows) = state
                .query(
                    "SELECT j.name, count(*) FROM pgfleet.chunks c JOIN pgfleet.jobs j ON j.id = c.job_id
                     WHERE c.state = 'done' GROUP BY 1",
                    &[],
                )
                .await
            else {
                return Ok(false); // serve has not created its schema yet
            };
            let done = |name: &str| {
                rows.iter()
                    .find(|r| r.get::<_, String>(0) == name)
                    .map(|r| r.get::<_, i64>(1))
                    .unwrap_or(0)
            };
            Ok(done("perm_drop") >= 2 && done("perm_revoke") >= 2)
        },
    )
    .await?;
    dropped
        .source
        .client()
        .await?
        .batch_execute("DROP TABLE big")
        .await?;
    revoked
        .source
        .client()
        .await?
        .batch_execute(&format!("REVOKE SELECT ON big FROM {role}"))
        .await?;

    let [d, r, h] = jobs;
    let (d_ok, d_job, d_err) = finish_submit(d).await?;
    let (r_ok, r_job, r_err) = finish_submit(r).await?;
    let (h_ok, h_job, h_err) = finish_submit(h).await?;
    assert!(!d_ok, "the job whose table was dropped succeeded");
    assert!(!r_ok, "the job whose SELECT was revoked succeeded");
    assert!(
        h_ok,
        "the healthy job failed: {h_err}\ncoordinator: {}",
        fleet.coordinator.logs()
    );
    for (err, what) in [(&d_err, "does not exist"), (&r_err, "permission denied")] {
        assert!(
            err.contains("table public.big chunk ") && err.contains("(part-"),
            "the error does not name the table and chunk: {err}"
        );
        assert!(err.contains(what), "the error does not say why: {err}");
        assert!(
            !err.contains(" after "),
            "a permanent error was retried: {err}"
        );
    }
    healthy.check_export().await?;

    // Each doomed job: failed, one chunk failed, nothing applied after the failure.
    for job in [&d_job, &r_job] {
        let st = healthy.status(job)?;
        assert_eq!(st["job"]["state"], "failed");
        assert_eq!(st["job"]["chunks_failed"], 1, "{st}");
    }
    assert_eq!(healthy.status(&h_job)?["job"]["state"], "succeeded");

    // Nothing in flight: the tasks already queued for the failed jobs run, are ignored, and the
    // queue drains.
    let tasks = tasks_queue(&fleet.namespace);
    // rabbitmqctl is a whole Erlang VM per call: poll once a second, not in a tight loop.
    let deadline = Instant::now() + Duration::from_secs(60);
    while queue_messages(&tasks)? != 0 {
        anyhow::ensure!(Instant::now() < deadline, "the task queue never drained");
        tokio::time::sleep(Duration::from_secs(1)).await;
    }

    drop(fleet);
    // Databases first: the role holds privileges in one of them.
    for sc in [dropped, revoked, healthy] {
        sc.drop().await?;
    }
    admin
        .batch_execute(&format!("DROP ROLE IF EXISTS {role}"))
        .await?;
    Ok(())
}

/// 7. Poison messages on the task queue: unreadable JSON, an unknown message version and an
/// unknown task kind go to the dead-letter queue; the workers keep consuming (a job submitted
/// afterwards completes); `coordinator status` lists them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn poison_messages_go_to_the_dead_letter_queue() -> anyhow::Result<()> {
    let sc = Scenario::export(
        "poison",
        ExportShape {
            big_rows: 20_000,
            rows_per_chunk: 5_000,
            max_in_flight: 2,
        },
    )
    .await?;
    let fleet = Fleet::start(&sc.state.url, 2, 1);
    let tasks = tasks_queue(&fleet.namespace);
    wait_until(
        "the workers to consume",
        Duration::from_secs(60),
        || async {
            Ok(fleet
                .workers
                .iter()
                .all(|w| w.logs().contains("consuming tasks")))
        },
    )
    .await?;
    let poison: [&[u8]; 3] = [
        b"this is { not json",
        br#"{"version": 99, "task_id": "j:1", "job_id": "j", "attempt": 1, "task": {}}"#,
        br#"{"version": 1, "task_id": "j:1", "job_id": "j", "attempt": 1, "task": {"kind": "format_disk"}}"#,
    ];
    let conn = lapin::Connection::connect(&amqp_url(), Default::default()).await?;
    let channel = conn.create_channel().await?;
    for body in poison {
        channel
            .basic_publish(
                "".into(),
                tasks.as_str().into(),
                Default::default(),
                body,
                lapin::BasicProperties::default().with_delivery_mode(2),
            )
            .await?
            .await?;
    }
    conn.close(200, "done".into()).await?;

    // The workers go on: a real job completes.
    let (ok, job, err) = finish_submit(sc.submit(JOB_TIMEOUT)).await?;
    assert!(ok, "job after poison messages failed: {err}");
    sc.check_export().await?;
    assert_eq!(sc.status(&job)?["job"]["state"], "succeeded");

    // All three reached the dead-letter queue and the coordinator recorded them.
    let state = sc.state.client().await?;
    let recorded = wait_until(
        "3 dead letters recorded",
        Duration::from_secs(60),
        || async {
            let n: i64 = state
                .query_one("SELECT count(*) FROM pgfleet.dead_letters", &[])
                .await?
                .get(0);
            Ok(n == 3)
        },
    )
    .await;
    if let Err(e) = recorded {
        let rows = state
            .query("SELECT reason, preview FROM pgfleet.dead_letters", &[])
            .await?;
        let rows: Vec<(String, String)> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
        anyhow::bail!(
            "{e}: recorded {rows:?}\ncoordinator log:\n{}",
            fleet.coordinator.logs()
        );
    }
    let (code, out, _) = fleet.coordinator(&["status", "--json"]);
    assert_eq!(code, 0);
    let listed: serde_json::Value = serde_json::from_str(&out)?;
    let letters = listed["unparseable_dead_letters"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert_eq!(letters.len(), 3, "{listed}");
    assert!(
        letters.iter().all(|l| l["reason"] == "rejected"),
        "{listed}"
    );
    let (code, text, _) = fleet.coordinator(&["status"]);
    assert_eq!(code, 0);
    assert!(
        text.contains("3 unreadable message(s)") && text.contains("format_disk"),
        "status does not show the poison messages:\n{text}"
    );
    let rejected: usize = fleet
        .workers
        .iter()
        .map(|w| w.logs().matches("unreadable task message").count())
        .sum();
    assert_eq!(rejected, 3);
    drop(fleet);
    sc.drop().await
}

/// Resident set size of a process, from /proc.
fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// 9. Load: one job of more than 2,000 chunks on 4 workers with 2 slots each (8 slots) and a
/// cap of 3 COPYs on the source. Sampled throughout: the source never sees more than 3 COPYs of
/// the job, the task queue never holds more than the window, and the coordinator's memory does
/// not grow with the number of chunks processed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_thousand_chunks_stay_within_the_caps() -> anyhow::Result<()> {
    const CAP: u32 = 3;
    let sc = Scenario::export(
        "load",
        ExportShape {
            big_rows: 220_000,
            rows_per_chunk: 100,
            max_in_flight: CAP,
        },
    )
    .await?;
    let fleet = Fleet::start(&sc.state.url, 4, 2);
    let tasks = tasks_queue(&fleet.namespace);
    let submit = sc.submit(JOB_TIMEOUT);
    let state = sc.state.client().await?;
    let conn = lapin::Connection::connect(&amqp_url(), Default::default()).await?;
    let channel = conn.create_channel().await?;

    let started = Instant::now();
    let (mut max_copies, mut max_ready, mut max_queued, mut samples) = (0i64, 0u32, 0i64, 0u64);
    // (chunks done, coordinator RSS in KiB)
    let mut rss: Vec<(i64, u64)> = Vec::new();
    let mut total = 0i64;
    while !submit.is_finished() {
        max_copies = max_copies.max(sc.active_copies(&sc.source).await?);
        if let Ok(q) = channel
            .queue_declare(
                tasks.as_str().into(),
                lapin::options::QueueDeclareOptions {
                    passive: true,
                    ..Default::default()
                },
                Default::default(),
            )
            .await
        {
            max_ready = max_ready.max(q.message_count());
        }
        max_queued = max_queued.max(chunks_in_state(&state, "queued").await);
        samples += 1;
        if samples % 25 == 0 {
            let row = state
                .query_one(
                    "SELECT count(*) FILTER (WHERE state = 'done'), count(*) FROM pgfleet.chunks",
                    &[],
                )
                .await?;
            total = row.get(1);
            if let Some(kib) = rss_kib(fleet.coordinator.pid()) {
                rss.push((row.get(0), kib));
            }
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let (ok, job, err) = finish_submit(submit).await?;
    assert!(
        ok,
        "load job failed: {err}\ncoordinator: {}",
        fleet.coordinator.logs()
    );
    let elapsed = started.elapsed();
    let status = sc.status(&job)?;
    let chunks = status["job"]["chunks_total"].as_i64().unwrap_or(0);
    assert!(chunks >= 2000, "only {chunks} chunks planned");
    assert!(total == 0 || total == chunks);
    sc.check_export().await?;

    assert!(samples > 100, "too few samples ({samples})");
    assert!(
        max_copies <= CAP as i64,
        "the source saw {max_copies} concurrent COPYs; the cap is {CAP}"
    );
    // 100-row COPYs last a few milliseconds: sampling sees some, rarely two at once. The
    // coordinator's own accounting is exact: chunks it has in flight never exceed the cap.
    assert!(max_copies >= 1, "sampling never saw a COPY");
    assert!(
        max_queued <= CAP as i64 && max_queued >= 2,
        "chunks in flight peaked at {max_queued}; the cap is {CAP}"
    );
    assert!(
        max_ready <= CAP,
        "the task queue held {max_ready} ready tasks; the window is {CAP}"
    );
    // Memory: compare the coordinator once the job is well under way (a quarter done, caches
    // and pools warm) with the rest of the run.
    let quarter = rss
        .iter()
        .find(|(done, _)| *done >= chunks / 4)
        .map(|r| r.1)
        .unwrap_or(0);
    let peak = rss.iter().map(|r| r.1).max().unwrap_or(0);
    eprintln!(
        "load: {chunks} chunks in {elapsed:?}; max COPYs seen {max_copies}/{CAP}; max in flight {max_queued}; max ready tasks {max_ready}; coordinator RSS {} MiB at 25% → peak {} MiB ({} samples)",
        quarter / 1024,
        peak / 1024,
        rss.len()
    );
    assert!(
        quarter > 0 && rss.len() >= 4,
        "too few memory samples: {rss:?}"
    );
    assert!(
        peak <= quarter + 16 * 1024,
        "coordinator memory grew from {quarter} KiB to {peak} KiB during the job: {rss:?}"
    );
    drop(fleet);
    sc.drop().await
}

/// Take the first task the coordinator publishes, without running it: `basic_get`, keep the
/// body, and put the message back (nack with requeue) for a worker to run.
async fn capture_first_task(namespace: &str) -> anyhow::Result<Vec<u8>> {
    let tasks = tasks_queue(namespace);
    let conn = lapin::Connection::connect(&amqp_url(), Default::default()).await?;
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        // A fresh channel each time: a get on a queue not declared yet closes the channel.
        let attempt = async {
            let channel = conn.create_channel().await?;
            let Some(msg) = channel
                .basic_get(tasks.as_str().into(), Default::default())
                .await?
            else {
                return anyhow::Ok(None);
            };
            let body = msg.delivery.data.clone();
            msg.delivery
                .acker
                .nack(lapin::options::BasicNackOptions {
                    requeue: true,
                    ..Default::default()
                })
                .await?;
            Ok(Some(body))
        };
        if let Ok(Some(body)) = attempt.await {
            // Channels closed by failed gets make close() complain; the connection goes anyway.
            let _ = conn.close(200, "done".into()).await;
            return Ok(body);
        }
        anyhow::ensure!(Instant::now() < deadline, "no task was published");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Publish a task body to the fleet's task queue by hand.
async fn publish_task(namespace: &str, body: &[u8]) -> anyhow::Result<()> {
    let conn = lapin::Connection::connect(&amqp_url(), Default::default()).await?;
    let channel = conn.create_channel().await?;
    channel.confirm_select(Default::default()).await?;
    channel
        .basic_publish(
            "".into(),
            tasks_queue(namespace).as_str().into(),
            Default::default(),
            body,
            lapin::BasicProperties::default().with_delivery_mode(2),
        )
        .await?
        .await?;
    conn.close(200, "done".into()).await?;
    Ok(())
}

/// Every object of the bucket: key → (bytes, last modified).
async fn snapshot_objects(sc: &Scenario) -> anyhow::Result<BTreeMap<String, (Vec<u8>, String)>> {
    let mut out = BTreeMap::new();
    for key in list_keys(&sc.s3, &sc.bucket, "").await? {
        let head = sc
            .s3
            .head_object()
            .bucket(&sc.bucket)
            .key(&key)
            .send()
            .await?;
        let modified = head
            .last_modified()
            .map(|t| t.to_string())
            .unwrap_or_default();
        out.insert(
            key.clone(),
            (get_object(&sc.s3, &sc.bucket, &key).await?, modified),
        );
    }
    Ok(out)
}

/// Wait until the coordinator recorded `n` results for `task_id`; returns their `applied`.
async fn wait_for_results(sc: &Scenario, task_id: &str, n: usize) -> anyhow::Result<Vec<String>> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let applied: Vec<String> = sc
            .results()
            .await?
            .into_iter()
            .filter(|r| r.task_id == task_id)
            .map(|r| r.applied)
            .collect();
        if applied.len() >= n {
            return Ok(applied);
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "{n} results for {task_id} never arrived: {applied:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// 8. A finished task delivered again (published by hand after the job succeeded) changes
/// nothing: the export's objects keep their bytes and are not rewritten (the worker sees the
/// part already written by this task and reports it without reading the source), and the
/// restore's ledger skips the file; the coordinator records the duplicate result and ignores it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duplicate_delivery_of_finished_tasks_changes_nothing() -> anyhow::Result<()> {
    for sc in [
        Scenario::export(
            "dup_exp",
            ExportShape {
                big_rows: 60_000,
                rows_per_chunk: 10_000,
                max_in_flight: 2,
            },
        )
        .await?,
        Scenario::restore("dup_rst", 40_000, 10_000, 10_000, 2).await?,
    ] {
        let mut fleet = Fleet::start(&sc.state.url, 0, 1);
        let submit = sc.submit(JOB_TIMEOUT);
        let body = capture_first_task(&fleet.namespace).await?;
        let task: serde_json::Value = serde_json::from_slice(&body)?;
        let task_id = task["task_id"].as_str().unwrap_or_default().to_string();
        for i in 0..2 {
            fleet.workers.push(Proc::spawn(
                &format!("worker{i}"),
                Fleet::worker_cmd(&fleet.namespace, 1, i),
            ));
        }
        let (ok, job, err) = finish_submit(submit).await?;
        assert!(ok, "{} failed: {err}", sc.tag);
        let before_objects = snapshot_objects(&sc).await?;
        let before_rows = match &sc.target {
            Some(t) => checksums(&t.client().await?, &["accounts", "entries"]).await?,
            None => Vec::new(),
        };

        publish_task(&fleet.namespace, &body).await?;
        let applied = wait_for_results(&sc, &task_id, 2).await?;
        assert_eq!(applied[0], "done", "{applied:?}");
        assert!(
            applied[1].starts_with("ignored"),
            "the duplicate's result was applied: {applied:?}"
        );
        assert_eq!(
            snapshot_objects(&sc).await?,
            before_objects,
            "{}: the duplicate changed the bucket",
            sc.tag
        );
        match &sc.target {
            Some(t) => {
                assert_eq!(
                    checksums(&t.client().await?, &["accounts", "entries"]).await?,
                    before_rows
                );
                sc.check_restore().await?;
            }
            None => {
                sc.check_export().await?;
                assert!(
                    fleet
                        .workers
                        .iter()
                        .any(|w| w.logs().contains("not exporting it again")),
                    "no worker recognised the part as already written"
                );
            }
        }
        let st = sc.status(&job)?;
        assert_eq!(st["job"]["state"], "succeeded");
        drop(fleet);
        sc.drop().await?;
    }
    Ok(())
}
