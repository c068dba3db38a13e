//! `coordinator plan`: show what a job would do without doing it. Export: tables, keys and
//! chunks (reads only the source catalog). Restore: waves, tables and files, and every problem
//! found between the export and the target (reads only).

use super::{json_view, load_spec};
use crate::export::plan::plan_export_logged;
use crate::export::source::SourceTxn;
use crate::job::{ChunkWork, TableWork};
use crate::restore;
use anyhow::{anyhow, Result};
use fleet_io::clients::Clients;
use protocol::spec::{ExportSpec, RestoreSpec};
use protocol::JobSpec;
use std::path::Path;
use std::process::ExitCode;

pub async fn run(path: &Path, json: bool) -> Result<ExitCode> {
    match load_spec(path)? {
        JobSpec::Export(spec) => export(&spec, json).await,
        JobSpec::Restore(spec) => restore(&spec, json).await,
    }
}

async fn export(spec: &ExportSpec, json: bool) -> Result<ExitCode> {
    let txn = SourceTxn::begin(spec).await?;
    let plan = plan_export_logged(txn.client(), spec).await?;
    txn.commit().await?;
    let location = spec.output.location().map_err(|e| anyhow!(e))?;
    if json {
        let view = json_view::ExportPlanView::new(
            &spec.name,
            location.to_string(),
            spec.output.format,
            &plan,
        );
        crate::outln!("{}", serde_json::to_string_pretty(&view)?);
        return Ok(ExitCode::SUCCESS);
    }
    crate::outln!(
        "export {:?}: {} table(s) → {location}",
        spec.name,
        plan.tables.len()
    );
    for t in &plan.tables {
        let key = t.key.describe();
        crate::outln!(
            "  {:<40} {:>6} chunk(s)  ~{} rows  ~{} MiB  {}",
            t.table.display_name(),
            t.chunks.len(),
            t.estimated_rows,
            t.estimated_bytes / (1024 * 1024),
            key
        );
    }
    for n in &plan.notes {
        crate::outln!("  note: {n}");
    }
    Ok(ExitCode::SUCCESS)
}

async fn restore(spec: &RestoreSpec, json: bool) -> Result<ExitCode> {
    let ctx = Clients::new("coordinator-plan");
    let plan = restore::inspect(&ctx, "plan", spec).await?;
    let job = &plan.job;
    let ok = plan.problems.is_empty();
    if json {
        let view = json_view::RestorePlanView::new(spec, job, &plan.warnings, &plan.problems);
        crate::outln!("{}", serde_json::to_string_pretty(&view)?);
        return Ok(if ok {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        });
    }
    crate::outln!(
        "restore {:?}: {} table(s) from {} (database {:?})",
        spec.name,
        job.tables.len(),
        spec.export.url,
        spec.export.database
    );
    let st = job.restore_state().cloned().unwrap_or_default();
    for (w, members) in st.waves.iter().enumerate() {
        crate::outln!("wave {}:", w + 1);
        for &t in members {
            let table = &job.tables[t as usize];
            let TableWork::Restore(r) = &table.work else {
                continue;
            };
            let files: std::collections::BTreeSet<&str> = job
                .table_chunks(t)
                .filter_map(|c| match &c.work {
                    ChunkWork::Restore(p) => Some(p.key.as_str()),
                    ChunkWork::Export(_) => None,
                })
                .collect();
            crate::outln!(
                "  {:<40} {:>10} rows  {:>4} file(s)  {:>4} task(s)",
                r.table.display_name(),
                r.expected_rows,
                files.len(),
                job.table_chunks(t).count()
            );
        }
    }
    if !st.dropped_indexes.is_empty() {
        crate::outln!(
            "  {} secondary index(es) dropped during the load and rebuilt after",
            st.dropped_indexes.len()
        );
    }
    if !st.sequences.is_empty() {
        crate::outln!(
            "  {} sequence(s) set past the loaded maxima at the end",
            st.sequences.len()
        );
    }
    for n in &job.notes {
        crate::outln!("note: {n}");
    }
    for w in &plan.warnings {
        crate::outln!("warning: {w}");
    }
    for p in &plan.problems {
        crate::outln!("problem: {p}");
    }
    if ok {
        crate::outln!("no problems found");
        Ok(ExitCode::SUCCESS)
    } else {
        // The problems are the report (stdout); the verdict goes where errors go.
        crate::errln!(
            "error: {} problem(s): a restore would stop before loading anything",
            plan.problems.len()
        );
        Ok(ExitCode::FAILURE)
    }
}
