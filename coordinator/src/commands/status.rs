//! `coordinator status` (the job list, one job, `--watch`) and `coordinator cancel`.

use super::json_view;
use crate::job::JobState;
use crate::store::{JobSummary, PgStore};
use anyhow::Result;
use std::io::IsTerminal;
use std::process::ExitCode;
use std::time::Duration;

/// A job state, as `--state` takes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum StateArg {
    /// Waiting for `coordinator serve` to plan it.
    Submitted,
    /// Planned; its tasks are being published and run.
    Running,
    /// Asked to stop; tasks already handed out are still ending.
    Cancelling,
    /// Ended: every chunk done.
    Succeeded,
    /// Ended with an error (`status JOB` shows it).
    Failed,
    /// Ended by `coordinator cancel`.
    Cancelled,
}

impl From<StateArg> for JobState {
    fn from(s: StateArg) -> Self {
        match s {
            StateArg::Submitted => JobState::Submitted,
            StateArg::Running => JobState::Running,
            StateArg::Cancelling => JobState::Cancelling,
            StateArg::Succeeded => JobState::Succeeded,
            StateArg::Failed => JobState::Failed,
            StateArg::Cancelled => JobState::Cancelled,
        }
    }
}

/// `--interval`: seconds, a positive decimal number (`2`, `0.5`).
pub fn parse_interval(s: &str) -> Result<Duration, String> {
    match s.trim().parse::<f64>() {
        Ok(secs) if secs.is_finite() && secs > 0.0 && secs <= 86_400.0 => {
            Ok(Duration::from_secs_f64(secs))
        }
        _ => Err(format!(
            "{s:?} is not a number of seconds between 0 and 86400 (e.g. 2 or 0.5)"
        )),
    }
}

/// What `coordinator status` was asked for.
pub struct Options<'a> {
    /// One job's tables instead of the job list.
    pub job: Option<&'a str>,
    pub json: bool,
    /// List only jobs in these states (all when empty).
    pub states: &'a [StateArg],
    /// List at most this many jobs.
    pub limit: u32,
    /// Refresh until the job (or every job) has ended, the list every so often.
    pub watch: Option<Duration>,
}

pub async fn run(opts: &Options<'_>, state_url: &str) -> Result<ExitCode> {
    if let (Some(id), Some(_)) = (opts.job, opts.watch) {
        // The display of `submit --wait`, and its exit status.
        return super::wait::run(id, state_url).await;
    }
    let store = PgStore::open(state_url).await?;
    let states: Vec<JobState> = opts.states.iter().map(|&s| s.into()).collect();
    match (opts.job, opts.watch) {
        (Some(id), _) => show_job(&store, id, opts.json).await,
        (None, Some(every)) => watch_list(&store, &states, opts.limit, every).await,
        (None, None) => {
            let jobs = store.list_jobs(&states, opts.limit.into()).await?;
            let orphans = store.orphan_dead_letters().await?;
            if opts.json {
                crate::outln!(
                    "{}",
                    serde_json::to_string_pretty(&json_view::JobList::new(&jobs, &orphans))?
                );
            } else {
                crate::outln!("{}", list_text(&jobs, &orphans));
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// Refresh the list every `every` until no job is submitted, running or cancelling: on a
/// terminal redrawn in place, otherwise printed again only when it changed.
async fn watch_list(
    store: &PgStore,
    states: &[JobState],
    limit: u32,
    every: Duration,
) -> Result<ExitCode> {
    let terminal = std::io::stdout().is_terminal();
    let mut shown: Option<String> = None;
    loop {
        // Counted before the list is read, so the last list shown has every job ended.
        let unfinished = store.unfinished_jobs().await?;
        let jobs = store.list_jobs(states, limit.into()).await?;
        let orphans = store.orphan_dead_letters().await?;
        let frame = list_text(&jobs, &orphans);
        if shown.as_deref() != Some(frame.as_str()) {
            if terminal {
                // Home and clear the screen, as watch(1) does.
                crate::outln!(
                    "\x1b[H\x1b[2JEvery {:.1}s until no job is submitted or running (Ctrl-C to stop)\n\n{frame}",
                    every.as_secs_f64()
                );
            } else {
                if shown.is_some() {
                    crate::outln!("");
                }
                crate::outln!("{frame}");
            }
            shown = Some(frame);
        }
        let listed_unfinished = jobs
            .iter()
            .any(|j| JobState::parse(&j.state).is_some_and(|s| !s.is_terminal()));
        if unfinished == 0 && !listed_unfinished {
            crate::errln!("no job is submitted or running");
            return Ok(ExitCode::SUCCESS);
        }
        tokio::time::sleep(every).await;
    }
}

/// The job list as `status` prints it.
fn list_text(jobs: &[JobSummary], orphans: &[(String, String)]) -> String {
    let mut out = format!(
        "{:<14} {:<20} {:<11} {:>13} {:>8} {:>12} {:>10}",
        "JOB", "NAME", "STATE", "CHUNKS", "FAILED", "ROWS", "MIB"
    );
    for j in jobs {
        out.push_str(&format!(
            "\n{:<14} {:<20} {:<11} {:>13} {:>8} {:>12} {:>10.1}",
            j.id,
            truncate(&j.name, 20),
            j.state,
            format!("{}/{}", j.chunks_done, j.chunks_total),
            j.chunks_failed,
            j.rows,
            j.bytes as f64 / 1048576.0
        ));
    }
    if !orphans.is_empty() {
        out.push_str(&format!(
            "\n\n{} unreadable message(s) in the dead-letter queue history:",
            orphans.len()
        ));
        for (reason, preview) in orphans {
            out.push_str(&format!("\n  [{reason}] {}", truncate(preview, 100)));
        }
    }
    out
}

/// `status JOB`: the job and its tables.
async fn show_job(store: &PgStore, id: &str, json: bool) -> Result<ExitCode> {
    let Some(s) = store.job_summary(id).await? else {
        anyhow::bail!("no job {id}; `coordinator status` lists jobs");
    };
    let tables = store.table_summaries(id).await?;
    if json {
        crate::outln!(
            "{}",
            serde_json::to_string_pretty(&json_view::JobStatus::new(&s, &tables))?
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
