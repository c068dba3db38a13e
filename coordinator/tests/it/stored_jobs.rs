//! Jobs saved by an earlier coordinator keep loading. `fixtures/stored_jobs_2188bff.json` holds
//! the state rows (`pgfleet.jobs`, `job_tables`, `chunks`) that the coordinator at commit
//! 2188bff wrote for three finished jobs: a CSV export with a transform, an rds-parquet export
//! and a restore of it with deferred indexes (captured with `coordinator serve` + `submit`).
//! Put back as running jobs, as a crashed coordinator would leave them, today's store must load
//! them into the same jobs: kinds, plans, chunks, keys and the restore's bookkeeping.

use coordinator::engine::build_task;
use coordinator::job::{ChunkState, JobKind, TableWork};
use coordinator::store::PgStore;
use pgfleet_tests::ScratchDb;
use protocol::{OutputFormat, Task};

const FIXTURE: &str = include_str!("../fixtures/stored_jobs_2188bff.json");

#[tokio::test]
async fn jobs_saved_by_the_previous_layout_still_load() -> anyhow::Result<()> {
    let db = ScratchDb::create("pgfleet_stored_").await?;
    let store = PgStore::connect(&db.url).await?;
    let (client, conn) = tokio_postgres::connect(&db.url, tokio_postgres::NoTls).await?;
    tokio::spawn(conn);
    let rows: serde_json::Value = serde_json::from_str(FIXTURE)?;
    for table in ["jobs", "job_tables", "chunks"] {
        // The captured columns only: the others keep their defaults.
        let columns: Vec<String> = rows[table][0]
            .as_object()
            .map(|o| o.keys().map(|k| protocol::quote_ident(k)).collect())
            .unwrap_or_default();
        let columns = columns.join(", ");
        client
            .execute(
                &format!(
                    "INSERT INTO pgfleet.{table} ({columns}) SELECT {columns} \
                     FROM json_populate_recordset(NULL::pgfleet.{table}, $1::text::json)"
                ),
                &[&rows[table].to_string()],
            )
            .await
            .map_err(|e| {
                anyhow::anyhow!(
                    "loading pgfleet.{table}: {}",
                    coordinator::store::db_message(&e)
                )
            })?;
    }
    client
        .execute("UPDATE pgfleet.jobs SET state = 'running'", &[])
        .await?;

    let jobs = store.load_active().await?;
    let names: Vec<&str> = jobs.iter().map(|j| j.kind.name()).collect();
    assert_eq!(names, ["fx-csv", "fx-rds", "fx-restore"]);
    for job in &jobs {
        let chunks = rows["chunks"]
            .as_array()
            .map(|c| c.iter().filter(|c| c["job_id"] == job.id.as_str()).count())
            .unwrap_or(0);
        assert!(chunks > 0, "{}: fixture has chunks", job.id);
        assert_eq!(job.chunks.len(), chunks, "{}", job.id);
        assert_eq!(job.tables.len(), 2, "{}", job.id);
        assert!(job.chunks.iter().all(|c| c.state == ChunkState::Done));
        assert!(job.tables.iter().all(|t| t.finalized));
        // Every chunk still becomes a task of its kind.
        for c in &job.chunks {
            let task = build_task(job, c.id, c.attempt + 1)?;
            match (&job.kind, &task.task) {
                (JobKind::Export(_), Task::ExportChunk(_)) => {}
                (JobKind::Restore(_), Task::RestoreFile(_)) => {}
                (kind, task) => panic!("{}: a {} job made {task:?}", job.id, kind.as_str()),
            }
        }
    }

    let JobKind::Export(csv) = &jobs[0].kind else {
        panic!("fx-csv is an export")
    };
    assert_eq!(csv.spec.output.format, OutputFormat::Csv);
    assert_eq!(csv.source_database.as_deref(), Some("fx_src"));
    assert_eq!(csv.snapshot, None);
    let a_chunks: Vec<String> = jobs[0]
        .chunks
        .iter()
        .filter(|c| c.table_idx == 0)
        .map(|c| jobs[0].part_key(c))
        .collect();
    // The keys the old coordinator wrote (tmp/fx/out/csv/ when captured).
    assert_eq!(
        a_chunks,
        [
            "public.a/part-00000.csv",
            "public.a/part-00001.csv",
            "public.a/part-00002.csv"
        ]
    );
    let TableWork::Export(plan) = &jobs[0].tables[0].work else {
        panic!("an export table")
    };
    assert_eq!(plan.columns, ["id", "v"]);

    let JobKind::Export(rds) = &jobs[1].kind else {
        panic!("fx-rds is an export")
    };
    assert_eq!(rds.spec.output.format, OutputFormat::RdsParquet);
    assert_eq!(
        jobs[1].part_key(&jobs[1].chunks[0]),
        "fx_src/public.a/1/part-00000-1cc986db-090e-4f9d-94e1-6977be9eb249-c000.gz.parquet"
    );

    let JobKind::Restore(restore) = &jobs[2].kind else {
        panic!("fx-restore is a restore")
    };
    let st = restore.state.as_ref().expect("restore bookkeeping loaded");
    assert!(st.restored);
    assert_eq!(st.waves.len(), 2, "a before b: {:?}", st.waves);
    let indexes: Vec<&str> = st.dropped_indexes.iter().map(|i| i.name.as_str()).collect();
    assert!(indexes.iter().any(|n| n.contains("b_note")), "{indexes:?}");
    let TableWork::Restore(t) = &jobs[2].tables[0].work else {
        panic!("a restore table")
    };
    assert_eq!(t.expected_rows, 50);

    drop(client);
    drop(store);
    db.drop().await?;
    Ok(())
}
