//! `coordinator status` and `coordinator cancel`.

use crate::store::PgStore;
use anyhow::Result;
use std::process::ExitCode;

pub async fn run(job: Option<&str>, json: bool, state_url: &str) -> Result<ExitCode> {
    let store = PgStore::open(state_url).await?;
    match job {
        None => {
            let jobs = store.list_jobs(50).await?;
            let orphans = store.orphan_dead_letters().await?;
            if json {
                let orphans: Vec<_> = orphans
                    .iter()
                    .map(|(r, p)| serde_json::json!({"reason": r, "preview": p}))
                    .collect();
                crate::outln!(
                    "{}",
                    serde_json::to_string_pretty(
                        &serde_json::json!({"jobs": jobs, "unparseable_dead_letters": orphans})
                    )?
                );
                return Ok(ExitCode::SUCCESS);
            }
            crate::outln!(
                "{:<14} {:<20} {:<11} {:>13} {:>8} {:>12} {:>10}",
                "JOB",
                "NAME",
                "STATE",
                "CHUNKS",
                "FAILED",
                "ROWS",
                "MIB"
            );
            for j in &jobs {
                crate::outln!(
                    "{:<14} {:<20} {:<11} {:>13} {:>8} {:>12} {:>10.1}",
                    j.id,
                    truncate(&j.name, 20),
                    j.state,
                    format!("{}/{}", j.chunks_done, j.chunks_total),
                    j.chunks_failed,
                    j.rows,
                    j.bytes as f64 / 1048576.0
                );
            }
            if !orphans.is_empty() {
                crate::outln!(
                    "\n{} unreadable message(s) in the dead-letter queue history:",
                    orphans.len()
                );
                for (reason, preview) in &orphans {
                    crate::outln!("  [{reason}] {}", truncate(preview, 100));
                }
            }
        }
        Some(id) => {
            let Some(s) = store.job_summary(id).await? else {
                anyhow::bail!("no job {id}; `coordinator status` lists jobs");
            };
            let tables = store.table_summaries(id).await?;
            if json {
                crate::outln!(
                    "{}",
                    serde_json::to_string_pretty(&serde_json::json!({"job": s, "tables": tables}))?
                );
                return Ok(ExitCode::SUCCESS);
            }
            crate::outln!("job {} ({}) {}: {}", s.id, s.name, s.kind, s.state);
            if let Some(e) = &s.error {
                crate::outln!("error: {e}");
            }
            crate::outln!(
                "chunks: {} done, {} in flight, {} failed, {} total; {} rows, {:.1} MiB",
                s.chunks_done,
                s.chunks_queued,
                s.chunks_failed,
                s.chunks_total,
                s.rows,
                s.bytes as f64 / 1048576.0
            );
            if s.dead_letters > 0 || s.duplicate_results > 0 {
                crate::outln!(
                    "dead letters: {}, duplicate/stale results ignored: {}",
                    s.dead_letters,
                    s.duplicate_results
                );
            }
            for n in &s.notes {
                crate::outln!("note: {n}");
            }
            crate::outln!(
                "\n{:<40} {:>9} {:>9} {:>7} {:>12} {:>12} {:>10}",
                "TABLE",
                "DONE",
                "IN FLIGHT",
                "FAILED",
                "ROWS",
                "EXPECTED",
                "MIB"
            );
            for t in &tables {
                crate::outln!(
                    "{:<40} {:>9} {:>9} {:>7} {:>12} {:>12} {:>10.1}",
                    truncate(&t.table, 40),
                    format!("{}/{}", t.chunks_done, t.chunks_total),
                    t.chunks_queued,
                    t.chunks_failed,
                    t.rows,
                    t.expected_rows
                        .map(|r| r.to_string())
                        .unwrap_or_else(|| "-".into()),
                    t.bytes as f64 / 1048576.0
                );
                if t.chunks_failed > 0 {
                    if let Some(e) = &t.last_error {
                        crate::outln!("    last error: {e}");
                    }
                }
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn cancel(job: &str, state_url: &str) -> Result<ExitCode> {
    let store = PgStore::open(state_url).await?;
    let state = store.request_cancel(job).await?;
    crate::outln!("job {job}: {state}");
    Ok(ExitCode::SUCCESS)
}

fn truncate(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        let mut t: String = s.chars().take(n.saturating_sub(1)).collect();
        t.push('…');
        t
    }
}
