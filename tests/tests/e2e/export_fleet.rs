//! Export end to end through the real fleet: `coordinator serve` + two `worker` processes over
//! RabbitMQ into the S3-compatible server; and the same job through `coordinator run` into
//! `file://`. Every row is compared with the source.

use pgfleet_tests::export_check::{check_table, Objects};
use pgfleet_tests::fixtures::{create_export_source, export_source_checks};
use pgfleet_tests::procs::Fleet;
use pgfleet_tests::*;
use std::time::Instant;

const BIG_ROWS: u64 = 1_000_000;

fn spec(source_url: &str, output: &str, format: &str) -> String {
    format!(
        r#"
kind = "export"
name = "e2e"

[source]
url = "{source_url}"
max_in_flight = 3
application_name = "pgfleet-e2e"

[tables]
include = ["public.*"]

[chunking]
rows_per_chunk = 150000

[output]
url = "{output}"
format = "{format}"
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
async fn export_through_rabbitmq_to_s3_matches_source() -> anyhow::Result<()> {
    let source = ScratchDb::create("pgfleet_e2e_src_").await?;
    let state = ScratchDb::create("pgfleet_e2e_state_").await?;
    let src = source.client().await?;
    create_export_source(&src, BIG_ROWS).await?;

    let s3 = s3_client().await;
    let bucket = unique("e2e-");
    create_bucket(&s3, &bucket).await?;

    let fleet = Fleet::start(&state.url, 2, 2);
    let dir = tempdir();
    let spec_path = dir.join("export.toml");
    std::fs::write(
        &spec_path,
        spec(&source.url, &format!("s3://{bucket}/exports/"), "csv"),
    )?;

    let started = Instant::now();
    let (code, stdout, stderr) =
        fleet.coordinator(&["submit", spec_path.to_str().unwrap(), "--verify"]);
    assert_eq!(
        code,
        0,
        "submit --verify failed\nstdout: {stdout}\nstderr: {stderr}\ncoordinator: {}",
        fleet.coordinator.logs()
    );
    let job_id = stdout.lines().next().unwrap_or_default().trim().to_string();
    assert!(stdout.contains("table(s) OK"), "{stdout}");
    eprintln!(
        "fleet export of {BIG_ROWS} rows took {:?}",
        started.elapsed()
    );

    let objects = Objects::S3 { client: s3, bucket };
    let mut total = 0;
    for t in export_source_checks() {
        total += check_table(&objects, "exports/", &src, &t, "x-", false).await?;
    }
    assert_eq!(total as u64, BIG_ROWS + 30_000 + 1_000);

    // The job verifies by its id too (its spec from the state database), source included.
    let (code, out, err) = fleet.coordinator(&["verify", &job_id, "--source"]);
    assert_eq!(code, 0, "verify {job_id} --source: {out}{err}");

    // Both workers took part, and status reports the finished job.
    let (code, out, _) = fleet.coordinator(&["status", &job_id, "--json"]);
    assert_eq!(code, 0);
    let status: serde_json::Value = serde_json::from_str(&out)?;
    assert_eq!(status["job"]["state"], "succeeded");
    assert_eq!(status["job"]["rows"].as_u64(), Some(total as u64));
    assert_eq!(status["job"]["chunks_failed"].as_u64(), Some(0));
    let workers_used = workers_that_ran(&state).await?;
    assert_eq!(workers_used, 2, "both workers should have exported chunks");

    drop(fleet);
    source.drop().await?;
    state.drop().await?;
    Ok(())
}

async fn workers_that_ran(state: &ScratchDb) -> anyhow::Result<i64> {
    let c = state.client().await?;
    Ok(c.query_one(
        "SELECT count(DISTINCT worker) FROM pgfleet.results WHERE outcome = 'succeeded'",
        &[],
    )
    .await?
    .get(0))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn same_job_with_coordinator_run_into_files() -> anyhow::Result<()> {
    let source = ScratchDb::create("pgfleet_e2e_run_").await?;
    let src = source.client().await?;
    create_export_source(&src, BIG_ROWS).await?;
    let dir = tempdir();
    let out = dir.join("out");
    for format in ["csv", "csv.gz"] {
        let spec_path = dir.join(format!("export-{format}.toml"));
        let root = out.join(format);
        std::fs::write(
            &spec_path,
            spec(&source.url, &format!("file://{}/", root.display()), format),
        )?;
        let output = std::process::Command::new(bin("coordinator"))
            .args(["run", spec_path.to_str().unwrap(), "--workers", "3"])
            .output()?;
        assert!(
            output.status.success(),
            "coordinator run failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        let objects = Objects::File { root };
        for t in export_source_checks() {
            check_table(&objects, "", &src, &t, "x-", format == "csv.gz").await?;
        }
    }
    source.drop().await?;
    Ok(())
}

/// Legacy (non-partition) inheritance: a SELECT on the parent also returns its children's
/// rows, so exporting parent and children would write the children's rows twice. Each table
/// exports its own rows (`FROM ONLY`, as pg_dump does), chunked by key and by pages; a
/// partitioned table still exports its partitions' rows once, through the parent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inheritance_parents_export_only_their_own_rows() -> anyhow::Result<()> {
    use pgfleet_tests::export_check::TableCheck;
    let source = ScratchDb::create("pgfleet_e2e_inherit_").await?;
    let src = source.client().await?;
    src.batch_execute(
        "CREATE TABLE animals (id bigint PRIMARY KEY, name text);
         CREATE TABLE dogs (breed text) INHERITS (animals);
         CREATE TABLE logs (line text);                       -- no key: page ranges
         CREATE TABLE app_logs (app text) INHERITS (logs);
         CREATE TABLE parts (id bigint, v int) PARTITION BY RANGE (id);
         CREATE TABLE parts_a PARTITION OF parts FOR VALUES FROM (0) TO (5000);
         CREATE TABLE parts_b PARTITION OF parts FOR VALUES FROM (5000) TO (MAXVALUE);
         INSERT INTO animals SELECT g, 'animal ' || g FROM generate_series(1, 3000) g;
         INSERT INTO dogs SELECT g, 'dog ' || g, 'breed ' || (g % 7) FROM generate_series(3001, 5000) g;
         INSERT INTO logs SELECT 'log ' || g FROM generate_series(1, 4000) g;
         INSERT INTO app_logs SELECT 'app log ' || g, 'app' FROM generate_series(1, 1500) g;
         INSERT INTO parts SELECT g, g % 3 FROM generate_series(1, 9000) g;
         ANALYZE;",
    )
    .await?;
    let dir = tempdir();
    let root = dir.join("out");
    let spec_path = dir.join("export.toml");
    std::fs::write(
        &spec_path,
        spec(&source.url, &format!("file://{}/", root.display()), "csv")
            .replace("rows_per_chunk = 150000", "rows_per_chunk = 1000"),
    )?;
    let output = std::process::Command::new(bin("coordinator"))
        .args(["run", spec_path.to_str().unwrap(), "--workers", "2"])
        .output()?;
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "coordinator run failed: {stderr}");
    let objects = Objects::File { root };
    let checks = [
        (
            "public.animals",
            "SELECT id, name FROM ONLY animals",
            vec!["id", "name"],
        ),
        (
            "public.dogs",
            "SELECT id, name, breed FROM dogs",
            vec!["id", "name", "breed"],
        ),
        ("public.logs", "SELECT line FROM ONLY logs", vec!["line"]),
        (
            "public.app_logs",
            "SELECT line, app FROM app_logs",
            vec!["line", "app"],
        ),
        ("public.parts", "SELECT id, v FROM parts", vec!["id", "v"]),
    ];
    let mut total = 0;
    for (folder, select, columns) in checks {
        total += check_table(
            &objects,
            "",
            &src,
            &TableCheck {
                folder,
                select: select.into(),
                columns,
            },
            "x-",
            false,
        )
        .await?;
    }
    assert_eq!(total, 3000 + 2000 + 4000 + 1500 + 9000, "rows exported");
    assert!(
        !objects
            .list("")
            .await?
            .iter()
            .any(|k| k.starts_with("public.parts_")),
        "partitions are exported through their parent only"
    );
    source.drop().await?;
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

fn tempdir() -> std::path::PathBuf {
    let d = std::env::temp_dir().join(unique("pgfleet-e2e-"));
    std::fs::create_dir_all(&d).expect("temp dir");
    d
}
