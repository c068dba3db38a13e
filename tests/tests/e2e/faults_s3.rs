//! Fault scenario: S3 failing under a running fleet. A fault-injecting proxy
//! (pgfleet_tests::s3_faults) stands between the workers (and the coordinator) and the
//! S3-compatible server, answering requests with 500 InternalError / 503 SlowDown, resetting
//! connections (before forwarding, and after: the response lost or cut short) and stalling past
//! the workers' S3 attempt timeout.
//!
//! - While faults are on, S3 calls retry with backoff (the SDK's retries, then the chunk's task
//!   retries); once they stop, the export completes: every row exactly once, no stray object,
//!   no multipart upload left, and every kind of fault was in fact injected.
//! - UploadPart failing for good: the job fails naming the table and the chunk, every multipart
//!   upload of every attempt is aborted, no part object appears, and nothing stays in flight.
//!
//! Faults are reproducible: `PGFLEET_FAULT_SEED` (else each test's default) seeds the plan, and
//! a request's fate depends on the seed, what it is and how many of the same came before, not on
//! timing.

use pgfleet_tests::export_check::{check_table, Objects};
use pgfleet_tests::fixtures::{create_export_source, export_source_checks};
use pgfleet_tests::procs::{Fleet, Proc};
use pgfleet_tests::s3_faults::{
    assert_no_uploads_left, Fault, FaultPlan, Op, S3FaultProxy, Stats, ALL_FAULTS,
};
use pgfleet_tests::*;
use std::process::Output;
use std::time::{Duration, Instant};

/// Each attempt of an S3 request in the workers and the coordinator (PGFLEET_S3_ATTEMPT_TIMEOUT).
const ATTEMPT_TIMEOUT_SECS: &str = "2";
/// Far longer than the attempt timeout: a stalled request must time out, not wait it out. The
/// jobs must finish well within it (they would not if a stall were waited out).
const STALL: Duration = Duration::from_secs(60);
/// Each job with faults ends within this, or stalls were waited out instead of timed out.
const FAULTY_JOB_WITHIN: Duration = Duration::from_secs(50);
/// The whole job, bounded: `timeout` ends `submit --wait` if the job hangs.
const JOB_TIMEOUT_SECS: u64 = 120;

/// `PGFLEET_FAULT_SEED`, else the test's own default (one under which every kind of fault
/// strikes its requests).
fn seed(default: u64) -> u64 {
    std::env::var("PGFLEET_FAULT_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

fn spec(source_url: &str, bucket: &str, endpoint: &str, rows_per_chunk: u64) -> String {
    format!(
        r#"
kind = "export"
name = "s3-faults"

[source]
url = "{source_url}"
max_in_flight = 4
application_name = "pgfleet-s3-faults"

[tables]
include = ["public.*"]

[chunking]
rows_per_chunk = {rows_per_chunk}

[output]
url = "s3://{bucket}/exports/"
format = "csv"
part_size = "5MiB"
parts_in_flight = 2
s3 = {{ endpoint = "{endpoint}", force_path_style = true }}

[[transform]]
columns = "*"
prefix = "x-"
"#
    )
}

/// `coordinator serve` and `workers` workers whose S3 clients (and the coordinator's, which
/// writes the manifests) time out an attempt after ATTEMPT_TIMEOUT_SECS.
fn start_fleet(state_url: &str, workers: usize) -> Fleet {
    set_aws_env();
    let namespace = unique("pgfleet-test-");
    let env = [("PGFLEET_S3_ATTEMPT_TIMEOUT", ATTEMPT_TIMEOUT_SECS)];
    let mut serve = Fleet::serve_cmd(state_url, &namespace);
    serve.envs(env);
    let coordinator = Proc::spawn("coordinator", serve);
    pgfleet_tests::procs::wait_for_state_schema(state_url, &coordinator);
    let workers = (0..workers)
        .map(|i| {
            let mut cmd = Fleet::worker_cmd(&namespace, 2, i);
            cmd.envs(env);
            Proc::spawn(&format!("worker{i}"), cmd)
        })
        .collect();
    Fleet {
        namespace,
        state_url: state_url.to_string(),
        coordinator,
        workers,
    }
}

/// `coordinator submit SPEC --wait` in a thread, bounded by `timeout`.
fn submit(spec: &std::path::Path, state_url: &str) -> std::thread::JoinHandle<Output> {
    let spec = spec.to_path_buf();
    let state_url = state_url.to_string();
    std::thread::spawn(move || {
        std::process::Command::new("timeout")
            .arg(JOB_TIMEOUT_SECS.to_string())
            .arg(bin("coordinator"))
            .args(["submit", spec.to_str().unwrap(), "--wait"])
            .env("PGFLEET_STATE_URL", state_url)
            .output()
            .expect("run coordinator submit")
    })
}

fn tempdir() -> std::path::PathBuf {
    let d = std::env::temp_dir().join(unique("pgfleet-s3faults-"));
    std::fs::create_dir_all(&d).expect("temp dir");
    d
}

fn logs(fleet: &Fleet) -> String {
    let mut out = format!("coordinator:\n{}", fleet.coordinator.logs());
    for w in &fleet.workers {
        out.push_str(&format!("\n{}:\n{}", w.name, w.logs()));
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_faults_are_retried_and_the_export_completes_when_they_stop() -> anyhow::Result<()> {
    const ROWS: u64 = 560_000;
    let started = Instant::now();
    let source = ScratchDb::create("pgfleet_s3f_src_").await?;
    let state = ScratchDb::create("pgfleet_s3f_state_").await?;
    let src = source.client().await?;
    create_export_source(&src, ROWS).await?;
    let s3 = s3_client().await;
    let bucket = unique("s3faults-");
    create_bucket(&s3, &bucket).await?;

    let proxy = S3FaultProxy::start(&s3_endpoint()).await?;
    let seed = seed(5);
    // About one request in four fails; UploadPart, PutObject and GetObject, which are safe to
    // repeat, also lose responses after the server acted on them.
    let plan = FaultPlan::seeded(seed)
        .rule(Fault::InternalError, 0.07, &[])
        .rule(Fault::SlowDown, 0.07, &[])
        .rule(Fault::Reset, 0.06, &[])
        .rule(Fault::Stall, 0.05, &[])
        .rule(
            Fault::ResetMidResponse,
            0.08,
            &[Op::UploadPart, Op::PutObject, Op::GetObject],
        )
        .rule(
            Fault::StallMidResponse,
            0.04,
            &[Op::UploadPart, Op::PutObject, Op::GetObject],
        )
        .stall_for(STALL);
    proxy.set_plan(plan);

    let fleet = start_fleet(&state.url, 2);
    let dir = tempdir();
    let spec_path = dir.join("export.toml");
    // 8 chunks of `big` of ~7 MB each: two parts (5 MiB + the rest) per multipart upload.
    std::fs::write(
        &spec_path,
        spec(&source.url, &bucket, &proxy.endpoint(), 70_000),
    )?;
    let job_started = Instant::now();
    let submit = submit(&spec_path, &state.url);

    // Faults on for at least 8 s and until every kind has struck twice (at most 40 s), then off.
    let enough = |s: &Stats| ALL_FAULTS.iter().all(|f| s.faults_of(*f) >= 2);
    let at_least = Instant::now() + Duration::from_secs(8);
    let deadline = Instant::now() + Duration::from_secs(40);
    while !submit.is_finished()
        && (Instant::now() < at_least || !enough(&proxy.stats()))
        && Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    proxy.faults_off();
    let during = proxy.stats();
    let finished_during_faults = submit.is_finished();
    eprintln!(
        "seed {seed}: faults off after {:?} (job {}):\n{}",
        job_started.elapsed(),
        if finished_during_faults {
            "already finished"
        } else {
            "still running"
        },
        during.summary()
    );

    let output = tokio::task::spawn_blocking(move || submit.join().expect("submit thread")).await?;
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "the export did not complete after the faults stopped\nstdout: {stdout}\nstderr: {}\nproxy: {}\n{}",
        String::from_utf8_lossy(&output.stderr),
        proxy.stats().summary(),
        logs(&fleet)
    );
    let job_id = stdout.trim().to_string();
    let took = job_started.elapsed();
    eprintln!("job took {took:?}");
    assert!(
        took < FAULTY_JOB_WITHIN,
        "the job took {took:?}: stalled requests were waited out, not timed out"
    );

    // The faults really happened: every kind, on the upload path in particular.
    let stats = proxy.stats();
    for f in ALL_FAULTS {
        assert!(
            stats.faults_of(f) >= 1,
            "no {f:?} was injected (seed {seed}): {}",
            stats.summary()
        );
    }
    assert!(stats.faults_on(Op::UploadPart) >= 1, "{}", stats.summary());
    assert!(
        stats.uploads_created.len() >= 8,
        "expected a multipart upload per chunk of `big`: {}",
        stats.summary()
    );

    // Every row exactly once, every object in its manifest and none stray (read directly from
    // the server, not through the proxy).
    let objects = Objects::S3 {
        client: s3.clone(),
        bucket: bucket.clone(),
    };
    let mut total = 0;
    for t in export_source_checks() {
        total += check_table(&objects, "exports/", &src, &t, "x-", false).await?;
    }
    assert_eq!(total as u64, ROWS + 30_000 + 1_000);
    assert_no_uploads_left(&s3, &bucket, &stats).await?;

    let (code, out, _) = fleet.coordinator(&["status", &job_id, "--json"]);
    assert_eq!(code, 0);
    let status: serde_json::Value = serde_json::from_str(&out)?;
    assert_eq!(status["job"]["state"], "succeeded");
    assert_eq!(status["job"]["chunks_failed"].as_u64(), Some(0));

    drop(fleet);
    drop(proxy);
    let _ = std::fs::remove_dir_all(&dir);
    source.drop().await?;
    state.drop().await?;
    eprintln!("test took {:?}", started.elapsed());
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upload_part_failing_for_good_fails_the_job_and_aborts_every_upload() -> anyhow::Result<()>
{
    const ROWS: u64 = 150_000;
    let started = Instant::now();
    let source = ScratchDb::create("pgfleet_s3g_src_").await?;
    let state = ScratchDb::create("pgfleet_s3g_state_").await?;
    let src = source.client().await?;
    create_export_source(&src, ROWS).await?;
    let s3 = s3_client().await;
    let bucket = unique("s3giveup-");
    create_bucket(&s3, &bucket).await?;

    let proxy = S3FaultProxy::start(&s3_endpoint()).await?;
    // Every UploadPart is refused; everything else (AbortMultipartUpload included) goes through.
    proxy.set_plan(FaultPlan::seeded(seed(5)).rule(Fault::SlowDown, 1.0, &[Op::UploadPart]));

    let fleet = start_fleet(&state.url, 2);
    let dir = tempdir();
    let spec_path = dir.join("export.toml");
    // `big` in 2-3 chunks of ~7.5 MB: multipart uploads; the other tables fit in one PUT.
    std::fs::write(
        &spec_path,
        spec(&source.url, &bucket, &proxy.endpoint(), 75_000),
    )?;
    let job_started = Instant::now();
    let output = tokio::task::spawn_blocking({
        let submit = submit(&spec_path, &state.url);
        move || submit.join().expect("submit thread")
    })
    .await?;
    let failed_after = job_started.elapsed();
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    eprintln!("job failed after {failed_after:?}: {stderr}");
    assert_eq!(
        output.status.code(),
        Some(1),
        "submit --wait should report the failed job\nstdout: {stdout}\nstderr: {stderr}\n{}",
        logs(&fleet)
    );
    let job_id = stdout.trim().to_string();
    // The give-up names the table and the chunk, the attempts, and the S3 error.
    for want in [
        "failed: table public.big chunk ",
        "(part-0000",
        "failed after 5 attempts",
        "UploadPart",
        "SlowDown (HTTP 503)",
    ] {
        assert!(stderr.contains(want), "`{want}` not in: {stderr}");
    }
    let (code, out, _) = fleet.coordinator(&["status", &job_id, "--json"]);
    assert_eq!(code, 0);
    let status: serde_json::Value = serde_json::from_str(&out)?;
    assert_eq!(status["job"]["state"], "failed");
    let error = status["job"]["error"].as_str().unwrap_or_default();
    assert!(
        error.contains("table public.big chunk ") && error.contains("UploadPart"),
        "job error: {error}"
    );
    let big = status["tables"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|t| t["table"] == "public.big")
        .unwrap_or_else(|| panic!("no public.big in {out}"));
    assert!(big["chunks_failed"].as_u64() >= Some(1), "{big}");

    // Nothing stays in flight: no task left queued or running, every upload settled.
    let topology =
        protocol::topology::Topology::new(&fleet.namespace).map_err(anyhow::Error::msg)?;
    let conn = lapin::Connection::connect(&amqp_url(), Default::default()).await?;
    let channel = conn.create_channel().await?;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let queued = channel
            .queue_declare(
                topology.tasks.as_str().into(),
                lapin::options::QueueDeclareOptions {
                    passive: true,
                    ..Default::default()
                },
                Default::default(),
            )
            .await?
            .message_count();
        let mut running = 0.0;
        for w in &fleet.workers {
            running += w.metric("pgfleet_worker_tasks_in_flight").await?;
        }
        let stats = proxy.stats();
        if queued == 0 && running == 0.0 && stats.open_uploads().is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "still in flight 30 s after the job failed: {queued} queued, {running} running, open uploads {:?}\n{}",
            stats.open_uploads(),
            logs(&fleet)
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let _ = conn.close(0, "done".into()).await;

    let stats = proxy.stats();
    eprintln!("{}", stats.summary());
    // Five attempts of the failed chunk, each with the SDK's own retries of the part.
    assert!(
        stats.faults_on(Op::UploadPart) >= 5 * 3,
        "{}",
        stats.summary()
    );
    assert!(
        stats.uploads_created.len() >= 5,
        "each attempt starts its own multipart upload: {}",
        stats.summary()
    );
    assert!(
        stats.requests_of(Op::AbortMultipartUpload) >= stats.uploads_created.len() as u64,
        "every upload must be aborted: {}",
        stats.summary()
    );
    assert_eq!(stats.faults_total(), stats.faults_on(Op::UploadPart));
    assert_no_uploads_left(&s3, &bucket, &stats).await?;
    // No part object of `big` appeared (nor its manifest): its parts never uploaded.
    let big_keys = list_keys(&s3, &bucket, "exports/public.big/").await?;
    assert!(
        big_keys.is_empty(),
        "objects of a failed table: {big_keys:?}"
    );

    drop(fleet);
    drop(proxy);
    let _ = std::fs::remove_dir_all(&dir);
    source.drop().await?;
    state.drop().await?;
    eprintln!("test took {:?}", started.elapsed());
    Ok(())
}

/// A restore of an RDS-style Parquet export read from S3 through the proxy while GetObject
/// fails (errors, resets, bodies cut short, stalls): the plan's metadata reads and the ranged
/// Parquet reads retry, and every row arrives exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restore_reads_through_get_faults_load_every_row_once() -> anyhow::Result<()> {
    use pgfleet_tests::rds_fixture::{
        upload_dir, write_export, FixtureColumn, FixtureOptions, FixtureTable,
    };
    let started = Instant::now();
    set_aws_env();
    let columns = || {
        vec![
            FixtureColumn::bigint("id"),
            FixtureColumn::text("name"),
            FixtureColumn::double("score"),
            FixtureColumn::bytea("data"),
        ]
    };
    // Row groups of 250 rows, tasks of 750: every file is several tasks and ranged reads.
    let mut orders =
        FixtureTable::generated("public", "orders", columns(), &[&[1_500; 10], &[1_500; 6]]);
    orders.row_group_rows = Some(250);
    let mut spaced = FixtureTable::generated("public", "my table", columns(), &[&[1_250, 1_250]]);
    spaced.row_group_rows = Some(250);
    let dir = tempdir();
    write_export(
        &dir,
        &FixtureOptions::new("exp-faults", "shop"),
        &[orders, spaced],
    )?;
    let s3 = s3_client().await;
    let bucket = unique("s3getfaults-");
    create_bucket(&s3, &bucket).await?;
    upload_dir(&s3, &bucket, "rds/exp-faults/", &dir.join("exp-faults")).await?;

    let target = ScratchDb::create("pgfleet_s3r_").await?;
    target
        .client()
        .await?
        .batch_execute(
            r#"CREATE TABLE public.orders (id bigint PRIMARY KEY, name text, score double precision, data bytea);
               CREATE TABLE public."my table" (id bigint PRIMARY KEY, name text, score double precision, data bytea);"#,
        )
        .await?;

    let proxy = S3FaultProxy::start(&s3_endpoint()).await?;
    let seed = seed(7);
    let gets = [Op::GetObject];
    proxy.set_plan(
        FaultPlan::seeded(seed)
            .rule(Fault::InternalError, 0.06, &gets)
            .rule(Fault::SlowDown, 0.06, &gets)
            .rule(Fault::Reset, 0.08, &gets)
            .rule(Fault::Stall, 0.05, &gets)
            .rule(Fault::ResetMidResponse, 0.08, &gets)
            .rule(Fault::StallMidResponse, 0.05, &gets)
            .stall_for(STALL),
    );
    let spec = dir.join("restore.toml");
    std::fs::write(
        &spec,
        format!(
            r#"kind = "restore"
name = "s3-get-faults"
[export]
url = "s3://{bucket}/rds/exp-faults/"
database = "shop"
s3 = {{ endpoint = "{endpoint}", force_path_style = true }}
[target]
url = "{target}"
[split]
rows_per_task = 750
"#,
            endpoint = proxy.endpoint(),
            target = target.url,
        ),
    )?;
    let run_started = Instant::now();
    let run = {
        let spec = spec.clone();
        std::thread::spawn(move || {
            std::process::Command::new("timeout")
                .arg(JOB_TIMEOUT_SECS.to_string())
                .arg(bin("coordinator"))
                .args(["run", spec.to_str().unwrap(), "--workers", "2"])
                .env("PGFLEET_S3_ATTEMPT_TIMEOUT", ATTEMPT_TIMEOUT_SECS)
                .output()
                .expect("run coordinator run")
        })
    };
    // Faults on for at least 5 s and until every kind has struck twice (at most 30 s), then off.
    let enough = |s: &Stats| ALL_FAULTS.iter().all(|f| s.faults_of(*f) >= 2);
    let at_least = Instant::now() + Duration::from_secs(5);
    let deadline = Instant::now() + Duration::from_secs(30);
    while !run.is_finished()
        && (Instant::now() < at_least || !enough(&proxy.stats()))
        && Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    proxy.faults_off();
    eprintln!("seed {seed}: faults off after {:?}", started.elapsed());
    let output = tokio::task::spawn_blocking(move || run.join().expect("run thread")).await?;
    let took = run_started.elapsed();
    let stats = proxy.stats();
    eprintln!("{}", stats.summary());
    assert!(
        output.status.success(),
        "the restore did not complete\nstdout: {}\nstderr: {}\nproxy: {}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr),
        stats.summary()
    );
    for f in ALL_FAULTS {
        assert!(
            stats.faults_of(f) >= 1,
            "no {f:?} was injected (seed {seed}): {}",
            stats.summary()
        );
    }
    eprintln!("restore took {took:?}");
    assert!(
        took < FAULTY_JOB_WITHIN,
        "the restore took {took:?}: stalled reads were waited out, not timed out"
    );

    let c = target.client().await?;
    for (table, n) in [("orders", 24_000i64), (r#""my table""#, 2_500)] {
        let row = c
            .query_one(
                &format!("SELECT count(*), count(DISTINCT id), coalesce(sum(id), 0)::bigint, count(name) FROM {table}"),
                &[],
            )
            .await?;
        let (count, distinct, sum, names): (i64, i64, i64, i64) =
            (row.get(0), row.get(1), row.get(2), row.get(3));
        // sample_batch: ids 0..n, NULL name when id % 7 == 6.
        let nulls = (0..n).filter(|i| i % 7 == 6).count() as i64;
        assert_eq!(
            (count, distinct, sum, names),
            (n, n, n * (n - 1) / 2, n - nulls),
            "{table}: (rows, distinct ids, sum of ids, names)"
        );
    }

    drop(proxy);
    let _ = std::fs::remove_dir_all(&dir);
    target.drop().await?;
    eprintln!("test took {:?}", started.elapsed());
    Ok(())
}

/// A body damaged on its way to S3 (one byte flipped, the signature intact): with checksums on
/// (the default) the server rejects it (BadDigest), the worker sends it again and the export
/// comes out exact; with `checksums = false` the damage is stored, and only the manifest's own
/// CRC32C shows it. Parts here fit in one PUT: s3s-fs checks PutObject checksums, and not
/// UploadPart's or a multipart upload's whole-object one (AWS S3 checks all three).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_damaged_in_transit_is_rejected_and_sent_again() -> anyhow::Result<()> {
    set_aws_env();
    let source = ScratchDb::create("pgfleet_s3_corrupt_").await?;
    let src = source.client().await?;
    create_export_source(&src, 4_000).await?;
    let s3 = s3_client().await;
    let proxy = S3FaultProxy::start(&s3_endpoint()).await?;
    let dir = tempdir();
    for checksums in [true, false] {
        let bucket = unique("pgfleet-corrupt-");
        create_bucket(&s3, &bucket).await?;
        proxy.set_plan(FaultPlan::seeded(seed(7)).rule_for_keys(
            Fault::CorruptBody,
            0.5,
            &[Op::PutObject],
            "/part-",
        ));
        let text = spec(&source.url, &bucket, &proxy.endpoint(), 1_000).replace(
            "force_path_style = true }",
            &format!("force_path_style = true, checksums = {checksums} }}"),
        );
        let spec_path = dir.join(format!("corrupt-{checksums}.toml"));
        std::fs::write(&spec_path, text)?;
        let out = std::process::Command::new(bin("coordinator"))
            .args(["run", spec_path.to_str().unwrap(), "--workers", "2"])
            .env("PGFLEET_S3_ATTEMPT_TIMEOUT", ATTEMPT_TIMEOUT_SECS)
            .env_remove("PGFLEET_LOG_FORMAT")
            .output()?;
        let stats = proxy.stats();
        assert!(
            out.status.success(),
            "checksums = {checksums}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            stats.faults_of(Fault::CorruptBody) >= 2,
            "{}",
            stats.summary()
        );
        let objects = Objects::S3 {
            client: s3.clone(),
            bucket: bucket.clone(),
        };
        let mut checked = Vec::new();
        for t in export_source_checks() {
            checked.push(check_table(&objects, "exports/", &src, &t, "x-", false).await);
        }
        if checksums {
            assert!(
                stats.statuses.get(&400).copied().unwrap_or(0)
                    >= stats.faults_of(Fault::CorruptBody),
                "every damaged body refused: {}",
                stats.summary()
            );
            for c in checked {
                c?;
            }
        } else {
            let damage: Vec<String> = checked
                .into_iter()
                .filter_map(|c| c.err().map(|e| e.to_string()))
                .collect();
            assert!(
                damage.iter().any(|e| e.contains("crc32c")),
                "without checksums the damage is stored and the manifest's CRC32C shows it: {damage:?}"
            );
        }
        proxy.set_plan(FaultPlan::none());
    }
    drop(proxy);
    let _ = std::fs::remove_dir_all(&dir);
    source.drop().await?;
    Ok(())
}
