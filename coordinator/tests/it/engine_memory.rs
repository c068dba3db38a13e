//! The engine on its own, with no PostgreSQL, RabbitMQ or S3: state in a `MemoryStore`, tasks
//! on an in-process channel, results made up here, output under a temporary `file://` folder.
//! What it checks is the engine's own logic: the publish window, retries with backoff, dead
//! letters, finalizing tables (manifest, `_SUCCESS`), finishing, and continuing a job from the
//! store after a "restart".

use coordinator::broker::DeadLetter;
use coordinator::engine::{Engine, Publisher};
use coordinator::export::plan::{KeyChoice, TablePlan};
use coordinator::job::{ChunkState, ExportJob, JobRun, JobState, RetryPolicy};
use coordinator::store::{MemoryStore, StateStore};
use fleet_io::clients::Clients;
use protocol::{
    ChunkRange, JobSpec, Outcome, QualifiedName, ResultEnvelope, Task, TaskEnvelope,
    MESSAGE_VERSION,
};
use std::path::Path;
use std::time::Duration;
use tokio::sync::mpsc;

/// An export of two tables (3 and 1 chunks) to `dir`, as planning would have left it.
fn planned_job(id: &str, dir: &Path, max_in_flight: u32) -> JobRun {
    let toml = format!(
        "kind = \"export\"\nname = \"mem\"\n[source]\nmax_in_flight = {max_in_flight}\n\
         [tables]\ninclude = [\"public.*\"]\n[output]\nurl = \"file://{}/\"\n",
        dir.display()
    );
    let JobSpec::Export(spec) = JobSpec::from_toml(&toml).expect("valid spec") else {
        panic!("an export spec")
    };
    let plan = |name: &str, chunks: usize| TablePlan {
        table: QualifiedName::new("public", name),
        columns: vec!["id".into()],
        column_types: Vec::new(),
        key: KeyChoice::Integer {
            column: "id".into(),
        },
        own_rows_only: true,
        estimated_rows: 100,
        estimated_bytes: 1000,
        chunks: (0..chunks)
            .map(|i| ChunkRange::Key {
                column: "id".into(),
                lo: (i > 0).then_some(i as i64 * 10),
                hi: (i + 1 < chunks).then_some((i as i64 + 1) * 10),
            })
            .collect(),
    };
    let mut export = ExportJob::new(spec);
    export.source_database = Some("db".into());
    JobRun::for_export(
        id.into(),
        export,
        vec![plan("a", 3), plan("b", 1)],
        Vec::new(),
    )
}

/// An engine on `store` that has taken up every active job in it, as `serve` does at start.
async fn new_engine(
    store: &MemoryStore,
) -> anyhow::Result<(Engine, mpsc::UnboundedReceiver<TaskEnvelope>)> {
    let (tx, rx) = mpsc::unbounded_channel();
    let retry = RetryPolicy {
        max_attempts: 3,
        base: Duration::ZERO,
        cap: Duration::ZERO,
    };
    let mut engine = Engine::new(
        StateStore::Memory(store.clone()),
        Publisher::Local(tx),
        Clients::new("engine-test"),
    )
    .with_retry(retry);
    for job in store.load_active() {
        engine.resume(job).await?;
    }
    Ok((engine, rx))
}

fn drain(rx: &mut mpsc::UnboundedReceiver<TaskEnvelope>) -> Vec<TaskEnvelope> {
    std::iter::from_fn(|| rx.try_recv().ok()).collect()
}

fn result(task: &TaskEnvelope, outcome: Outcome) -> ResultEnvelope {
    ResultEnvelope {
        version: MESSAGE_VERSION,
        task_id: task.task_id.clone(),
        job_id: task.job_id.clone(),
        attempt: task.attempt,
        worker: "w1".into(),
        outcome,
    }
}

fn succeeded(task: &TaskEnvelope, rows: u64) -> Outcome {
    let Task::ExportChunk(chunk) = &task.task else {
        panic!("an export task")
    };
    Outcome::Succeeded {
        rows,
        bytes: rows * 10,
        key: chunk.output.key.clone(),
        proof: Default::default(),
    }
}

#[tokio::test]
async fn window_retries_manifests_and_success_without_services() -> anyhow::Result<()> {
    let dir = tempdir("window");
    let store = MemoryStore::new();
    store.save_plan(&planned_job("j1", &dir, 2))?;
    let (mut engine, mut rx) = new_engine(&store).await?;

    // The window: at most max_in_flight = 2 chunks out at once, in plan order.
    engine.pump().await?;
    let first = drain(&mut rx);
    assert_eq!(
        first.iter().map(|t| t.task_id.as_str()).collect::<Vec<_>>(),
        ["j1/0", "j1/1"]
    );
    assert!(first.iter().all(|t| t.attempt == 1));
    engine.pump().await?;
    assert!(drain(&mut rx).is_empty(), "the window is full");

    // A success frees a slot; a duplicate of it changes nothing; a retryable failure is
    // published again as attempt 2 (backoff 0 here).
    engine
        .on_result(&result(&first[0], succeeded(&first[0], 7)))
        .await?;
    engine
        .on_result(&result(&first[0], succeeded(&first[0], 7)))
        .await?;
    let failure = Outcome::Failed {
        error: "connection reset".into(),
        retryable: true,
    };
    engine.on_result(&result(&first[1], failure)).await?;
    engine.pump().await?;
    let second = drain(&mut rx);
    assert_eq!(
        second
            .iter()
            .map(|t| (t.task_id.as_str(), t.attempt))
            .collect::<Vec<_>>(),
        [("j1/1", 2), ("j1/2", 1)]
    );
    for t in &second {
        engine.on_result(&result(t, succeeded(t, 5))).await?;
    }
    engine.pump().await?;
    let last = drain(&mut rx);
    assert_eq!(last.len(), 1);
    assert_eq!(last[0].task_id, "j1/3");
    // Table a is finalized once all three of its chunks are done: its manifest lists them.
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("public.a/_manifest.json"))?)?;
    assert_eq!(manifest["rows"], 17);
    assert_eq!(manifest["objects"].as_array().map(Vec::len), Some(3));
    assert!(dir.join("public.a/_SUCCESS").exists());
    assert!(!dir.join("public.b/_SUCCESS").exists(), "b is not done yet");

    engine
        .on_result(&result(&last[0], succeeded(&last[0], 3)))
        .await?;
    engine.pump().await?;
    assert!(dir.join("public.b/_SUCCESS").exists());
    let job = engine.job("j1").expect("job present");
    assert_eq!(job.state, JobState::Succeeded);
    assert_eq!(job.counts().rows, 20);

    // The store saw every transition: the job's end, each chunk, every result (the duplicate
    // and the retry included, with what applying them did).
    let saved = store.job("j1").expect("saved");
    assert_eq!(saved.state, JobState::Succeeded);
    assert!(saved.chunks.iter().all(|c| c.state == ChunkState::Done));
    assert!(saved.tables.iter().all(|t| t.finalized));
    let applied: Vec<String> = store.results().into_iter().map(|r| r.2).collect();
    assert_eq!(
        applied,
        [
            "done",
            "ignored: chunk already finished",
            "retry as attempt 2",
            "done",
            "done",
            "done"
        ]
    );
    assert_eq!(engine.take_finished().len(), 1);
    std::fs::remove_dir_all(&dir)?;
    Ok(())
}

#[tokio::test]
async fn a_restarted_engine_continues_from_the_store() -> anyhow::Result<()> {
    let dir = tempdir("restart");
    let store = MemoryStore::new();
    store.save_plan(&planned_job("j2", &dir, 8))?;
    let (mut engine, mut rx) = new_engine(&store).await?;
    engine.pump().await?;
    let tasks = drain(&mut rx);
    assert_eq!(tasks.len(), 4);
    engine
        .on_result(&result(&tasks[0], succeeded(&tasks[0], 1)))
        .await?;
    drop(engine);

    // A new engine on the same store: chunk 0 stays done; the three queued ones stay queued
    // (their tasks are still in the queue) and complete the job when their results come.
    let (mut engine, mut rx) = new_engine(&store).await?;
    engine.pump().await?;
    assert!(
        drain(&mut rx).is_empty(),
        "queued chunks are not published twice"
    );
    for t in &tasks[1..] {
        engine.on_result(&result(t, succeeded(t, 1))).await?;
    }
    engine.pump().await?;
    assert_eq!(engine.job("j2").map(|j| j.state), Some(JobState::Succeeded));
    assert!(store.load_active().is_empty());
    std::fs::remove_dir_all(&dir)?;
    Ok(())
}

#[tokio::test]
async fn a_dead_letter_fails_the_job_naming_table_and_chunk() -> anyhow::Result<()> {
    let dir = tempdir("dead");
    let store = MemoryStore::new();
    store.save_plan(&planned_job("j3", &dir, 1))?;
    let (mut engine, mut rx) = new_engine(&store).await?;
    engine.pump().await?;
    let tasks = drain(&mut rx);
    let letter = DeadLetter {
        reason: "delivery_limit".into(),
        task: Some(tasks[0].clone()),
        preview: String::new(),
    };
    engine.on_dead_letter(&letter).await?;
    let job = engine.job("j3").expect("job present");
    assert_eq!(job.state, JobState::Failed);
    let error = job.error.as_deref().unwrap_or("");
    assert!(
        error.contains("public.a")
            && error.contains("part-00000")
            && error.contains("dead-lettered"),
        "{error}"
    );
    assert_eq!(store.job("j3").map(|j| j.state), Some(JobState::Failed));
    assert_eq!(
        store.dead_letters(),
        [("delivery_limit".to_string(), Some("j3".to_string()))]
    );
    engine.pump().await?;
    assert!(
        drain(&mut rx).is_empty(),
        "a failed job publishes nothing more"
    );
    std::fs::remove_dir_all(&dir)?;
    Ok(())
}

fn tempdir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "pgfleet-engine-{name}-{}-{}",
        std::process::id(),
        rand_suffix()
    ));
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

fn rand_suffix() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}
