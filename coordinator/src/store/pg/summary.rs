//! What `status` reads: one-line job summaries and per-table progress.

use super::PgStore;
use crate::job::JobState;
use anyhow::Result;

/// A one-line summary of a job for `status` (what `--json` prints is
/// `commands::json_view::Job`, built from this).
#[derive(Debug, Clone)]
pub struct JobSummary {
    pub id: String,
    pub name: String,
    pub kind: String,
    pub state: String,
    pub error: Option<String>,
    pub chunks_total: i64,
    pub chunks_done: i64,
    pub chunks_queued: i64,
    pub chunks_failed: i64,
    pub rows: i64,
    pub bytes: i64,
    pub dead_letters: i64,
    pub duplicate_results: i64,
    pub notes: Vec<String>,
}

/// Per-table progress for `status JOB`.
#[derive(Debug, Clone)]
pub struct TableSummary {
    /// `schema.name`, for people.
    pub table: String,
    pub schema: String,
    pub name: String,
    pub chunks_total: i64,
    pub chunks_done: i64,
    pub chunks_queued: i64,
    pub chunks_failed: i64,
    pub rows: i64,
    pub bytes: i64,
    pub last_error: Option<String>,
    /// Restore: rows the export's Parquet footers promise for this table.
    pub expected_rows: Option<i64>,
}

impl PgStore {
    const SUMMARY: &'static str = "
        SELECT j.id, j.name, j.kind, j.state, j.error, j.notes,
               count(c.chunk_id), count(*) FILTER (WHERE c.state = 'done'),
               count(*) FILTER (WHERE c.state = 'queued'), count(*) FILTER (WHERE c.state = 'failed'),
               coalesce(sum(c.rows), 0)::bigint, coalesce(sum(c.bytes), 0)::bigint,
               (SELECT count(*) FROM pgfleet.dead_letters d WHERE d.job_id = j.id),
               (SELECT count(*) FROM pgfleet.results r WHERE r.job_id = j.id AND r.applied LIKE 'ignored%')
        FROM pgfleet.jobs j LEFT JOIN pgfleet.chunks c ON c.job_id = j.id";

    fn summary(r: &tokio_postgres::Row) -> JobSummary {
        JobSummary {
            id: r.get(0),
            name: r.get(1),
            kind: r.get(2),
            state: r.get(3),
            error: r.get(4),
            notes: serde_json::from_value(r.get(5)).unwrap_or_default(),
            chunks_total: r.get(6),
            chunks_done: r.get(7),
            chunks_queued: r.get(8),
            chunks_failed: r.get(9),
            rows: r.get(10),
            bytes: r.get(11),
            dead_letters: r.get(12),
            duplicate_results: r.get(13),
        }
    }

    /// The newest `limit` jobs whose state is one of `states` (any state when empty), newest
    /// first.
    pub async fn list_jobs(&self, states: &[JobState], limit: i64) -> Result<Vec<JobSummary>> {
        let c = self.client().await?;
        let states: Vec<&str> = states.iter().map(|s| s.as_str()).collect();
        let sql = format!(
            "{} WHERE cardinality($1::text[]) = 0 OR j.state = ANY($1::text[])
             GROUP BY j.id ORDER BY j.submitted_at DESC, j.id LIMIT $2",
            Self::SUMMARY
        );
        Ok(c.query(&sql, &[&states, &limit])
            .await?
            .iter()
            .map(Self::summary)
            .collect())
    }

    /// Jobs not finished yet: submitted, running or cancelling.
    pub async fn unfinished_jobs(&self) -> Result<i64> {
        let c = self.client().await?;
        Ok(c.query_one(
            "SELECT count(*) FROM pgfleet.jobs WHERE state IN ('submitted', 'running', 'cancelling')",
            &[],
        )
        .await?
        .get(0))
    }

    pub async fn job_summary(&self, id: &str) -> Result<Option<JobSummary>> {
        let c = self.client().await?;
        let sql = format!("{} WHERE j.id = $1 GROUP BY j.id", Self::SUMMARY);
        Ok(c.query_opt(&sql, &[&id]).await?.as_ref().map(Self::summary))
    }

    pub async fn table_summaries(&self, id: &str) -> Result<Vec<TableSummary>> {
        let c = self.client().await?;
        let rows = c
            .query(
                "SELECT t.plan->'table'->>'schema', t.plan->'table'->>'name',
                        count(c.chunk_id), count(*) FILTER (WHERE c.state = 'done'),
                        count(*) FILTER (WHERE c.state = 'queued'), count(*) FILTER (WHERE c.state = 'failed'),
                        coalesce(sum(c.rows), 0)::bigint, coalesce(sum(c.bytes), 0)::bigint,
                        max(c.last_error), (t.plan->>'expected_rows')::bigint
                 FROM pgfleet.job_tables t
                 LEFT JOIN pgfleet.chunks c ON c.job_id = t.job_id AND c.table_idx = t.table_idx
                 WHERE t.job_id = $1 GROUP BY t.table_idx, t.plan ORDER BY t.table_idx",
                &[&id],
            )
            .await?;
        Ok(rows
            .iter()
            .map(|r| TableSummary {
                table: format!("{}.{}", r.get::<_, String>(0), r.get::<_, String>(1)),
                schema: r.get(0),
                name: r.get(1),
                chunks_total: r.get(2),
                chunks_done: r.get(3),
                chunks_queued: r.get(4),
                chunks_failed: r.get(5),
                rows: r.get(6),
                bytes: r.get(7),
                last_error: r.get(8),
                expected_rows: r.get(9),
            })
            .collect())
    }

    /// Unparseable dead letters (no job), for `status`.
    pub async fn orphan_dead_letters(&self) -> Result<Vec<(String, String)>> {
        let c = self.client().await?;
        Ok(c.query(
            "SELECT reason, preview FROM pgfleet.dead_letters WHERE job_id IS NULL ORDER BY id DESC LIMIT 20",
            &[],
        )
        .await?
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect())
    }
}
