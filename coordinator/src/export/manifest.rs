//! `_manifest.json` of an exported table (every format): every part with its rows, bytes and proof (the
//! object's CRC32C, the source rows' fingerprint and the COPY that read them), the columns and
//! the job. Written before `_SUCCESS`, so a reader that sees `_SUCCESS` can trust it;
//! `coordinator verify` checks an export against it.

use crate::job::{ChunkWork, JobRun, TableWork};
use anyhow::{anyhow, Result};
use protocol::proof::{RowFingerprint, OBJECT_CHECKSUM_ALGORITHM, ROW_FINGERPRINT_ALGORITHM};
use protocol::OutputFormat;
use serde_json::{json, Value};

/// The manifest of export table `table_idx` (all its chunks done).
pub fn manifest(job: &JobRun, table_idx: u32) -> Result<Value> {
    let t = &job.tables[table_idx as usize];
    let TableWork::Export(plan) = &t.work else {
        return Err(anyhow!(
            "table {} is not an export table",
            t.name().display_name()
        ));
    };
    let export = job
        .export()
        .ok_or_else(|| anyhow!("job {} is not an export", job.id))?;
    let spec = &export.spec;
    let location = spec.output.location().map_err(|e| anyhow!(e))?;
    let mut objects = Vec::new();
    // The table's fingerprint, when every part has one.
    let mut table_fingerprint = Some(RowFingerprint::default());
    for c in job.table_chunks(table_idx) {
        let ChunkWork::Export(range) = &c.work else {
            continue;
        };
        let task = super::task(job, export, plan, c, range)?;
        let query = worker::export::source_query(&task).map_err(|e| anyhow!(e.message))?;
        table_fingerprint = table_fingerprint
            .zip(c.proof.fingerprint)
            .map(|(a, b)| a.combine(b));
        let mut object = json!({
            "key": location.key(&job.part_key(c)),
            "rows": c.rows,
            "bytes": c.bytes,
            "source_query": query,
        });
        if let Some(crc) = c.proof.crc32c {
            object["crc32c"] = json!(format!("{crc:08x}"));
        }
        if let Some(f) = c.proof.fingerprint {
            object["fingerprint"] = serde_json::to_value(f)?;
        }
        objects.push(object);
    }
    let mut manifest = json!({
        "pgfleet_manifest_version": 1,
        "job_id": job.id,
        "job_name": spec.name,
        "table": { "schema": plan.table.schema, "name": plan.table.name },
        "format": spec.output.format,
        "header": spec.output.format != OutputFormat::RdsParquet,
        "columns": plan.columns,
        "rows": job.table_chunks(table_idx).map(|c| c.rows).sum::<u64>(),
        "bytes": job.table_chunks(table_idx).map(|c| c.bytes).sum::<u64>(),
        "proof": {
            "object_checksum": OBJECT_CHECKSUM_ALGORITHM,
            "row_fingerprint": ROW_FINGERPRINT_ALGORITHM,
        },
        "objects": objects,
    });
    if let Some(f) = table_fingerprint {
        manifest["fingerprint"] = serde_json::to_value(f)?;
    }
    Ok(manifest)
}
