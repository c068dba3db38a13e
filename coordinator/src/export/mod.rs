//! Export jobs on the coordinator side, with the entry points the engine calls for every job
//! kind: [`plan`] (the source's catalog → tables and key-range chunks), [`task`] (one chunk's
//! message), [`finalize_table`] (its manifest and `_SUCCESS`), [`finish`] (the rds-parquet
//! export's metadata files). Reading and writing the data is the workers' `ExportChunk` tasks.

pub mod catalog;
pub mod chunking;
pub mod key;
pub mod manifest;
pub mod plan;
pub mod source;

use crate::job::{ChunkRun, ExportJob, JobRun, TableWork};
use crate::rds::export_info;
use anyhow::{anyhow, Result};
use fleet_io::clients::Clients;
use plan::{plan_export_logged, TablePlan};
use protocol::layout::rds as rds_layout;
use protocol::spec::ExportSpec;
use protocol::{
    ChunkRange, ColumnExport, ExportChunk, ObjectLocation, OutputFormat, OutputTarget, S3Options,
};
use source::SourceTxn;
use std::time::SystemTime;

/// A planned export, and the source session holding its snapshot open (`snapshot =
/// "consistent"`): workers import the snapshot for as long as it lives.
pub struct Planned {
    pub job: JobRun,
    pub snapshot_session: Option<tokio_postgres::Client>,
}

/// Plan the job in one READ ONLY transaction on the source.
pub async fn plan(id: &str, spec: &ExportSpec) -> Result<Planned> {
    let txn = SourceTxn::begin(spec).await?;
    let snapshot = txn.export_snapshot(spec.source.snapshot).await?;
    let plan = plan_export_logged(txn.client(), spec).await?;
    let export = ExportJob {
        spec: spec.clone(),
        snapshot: snapshot.clone(),
        source_database: Some(plan.database),
    };
    let job = JobRun::for_export(id.to_string(), export, plan.tables, plan.notes);
    let snapshot_session = match snapshot {
        Some(_) => Some(txn.hold()),
        None => {
            txn.commit().await?;
            None
        }
    };
    Ok(Planned {
        job,
        snapshot_session,
    })
}

/// The task message of one chunk.
pub fn task(
    job: &JobRun,
    export: &ExportJob,
    plan: &TablePlan,
    chunk: &ChunkRun,
    range: &ChunkRange,
) -> Result<ExportChunk> {
    let spec = &export.spec;
    let location = spec.output.location().map_err(|e| anyhow!(e))?;
    Ok(ExportChunk {
        source: spec.source.conn(),
        snapshot: export.snapshot.clone(),
        table: plan.table.clone(),
        only: plan.own_rows_only,
        columns: plan
            .columns
            .iter()
            .enumerate()
            .map(|(i, c)| ColumnExport {
                name: c.clone(),
                transform: spec.transform_for(c),
                pg_type: plan.column_types.get(i).cloned(),
            })
            .collect(),
        range: range.clone(),
        output: OutputTarget {
            location,
            key: job.part_key(chunk),
            format: spec.output.format,
            gzip_level: spec.output.gzip_level,
            part_size: spec.output.part_size.0,
            parts_in_flight: spec.output.parts_in_flight,
            s3: spec.output.s3.clone(),
        },
    })
}

/// Every chunk of a table is done: `_manifest.json` (every object with rows, bytes and proof,
/// the columns, the job), then `_SUCCESS`, so a reader that sees `_SUCCESS` can trust the
/// manifest. rds-parquet: both in the batch folder, where AWS writes its `_SUCCESS` (AWS
/// writes no manifest; restores skip it).
pub async fn finalize_table(ctx: &Clients, job: &JobRun, table_idx: u32) -> Result<()> {
    let Some(spec) = job.export_spec() else {
        return Ok(());
    };
    let location = spec.output.location().map_err(|e| anyhow!(e))?;
    let files: [(String, Vec<u8>, &str); 2] = [
        (
            job.manifest_key(table_idx),
            serde_json::to_vec_pretty(&manifest::manifest(job, table_idx)?)?,
            "application/json",
        ),
        (job.success_key(table_idx), Vec::new(), "text/plain"),
    ];
    for (key, body, content_type) in files {
        put(
            ctx,
            &job.id,
            &location,
            &spec.output.s3,
            &key,
            body,
            content_type,
        )
        .await?;
    }
    Ok(())
}

/// Every table is finalized. rds-parquet: the export's metadata files, written last like AWS
/// does. CSV: nothing more.
pub async fn finish(ctx: &Clients, job: &JobRun) -> Result<()> {
    let Some(spec) = job.export_spec() else {
        return Ok(());
    };
    if spec.output.format != OutputFormat::RdsParquet {
        return Ok(());
    }
    let root = spec.output.location().map_err(|e| anyhow!(e))?;
    let database = job.source_database();
    let export_id = rds_layout::export_id(&root);
    let now = SystemTime::now();
    let plans: Vec<(u32, &TablePlan)> = job
        .tables
        .iter()
        .enumerate()
        .filter_map(|(i, t)| match &t.work {
            TableWork::Export(p) => Some((i as u32, p)),
            TableWork::Restore(_) => None,
        })
        .collect();
    let infos: Vec<export_info::TableInfo> = plans
        .iter()
        .map(|(i, p)| export_info::TableInfo {
            table: &p.table,
            columns: &p.columns,
            column_types: &p.column_types,
            size_bytes: job.table_chunks(*i).map(|c| c.bytes).sum(),
            rows: job.table_rows(*i),
            chunks: job.table_chunks(*i).count() as u32,
            extraction_start: None,
            extraction_end: Some(now),
        })
        .collect();
    let export_only: Vec<String> = plans
        .iter()
        .map(|(_, p)| rds_layout::target(database, &p.table))
        .collect();
    let info = export_info::export_info_json(&export_info::ExportInfo {
        job_id: &job.id,
        database,
        root: &root,
        export_only: &export_only,
        snapshot_time: now,
        task_start: now,
        task_end: now,
        total_bytes: job.counts().bytes,
    });
    let mut files = export_info::tables_info_files(
        &export_id,
        database,
        &infos,
        export_info::TABLES_PER_INFO_FILE,
    );
    files.push((rds_layout::export_info_key(&export_id), info));
    for (key, doc) in files {
        let body = serde_json::to_vec_pretty(&doc)?;
        put(
            ctx,
            &job.id,
            &root,
            &spec.output.s3,
            &key,
            body,
            "application/json",
        )
        .await?;
    }
    Ok(())
}

async fn put(
    ctx: &Clients,
    job_id: &str,
    location: &ObjectLocation,
    s3: &S3Options,
    key: &str,
    body: Vec<u8>,
    content_type: &str,
) -> Result<()> {
    fleet_io::sink::put_object(ctx, location, s3, key, body.into(), content_type)
        .await
        .map_err(|e| anyhow!("job {job_id}: writing {key}: {}", e.message))
}
