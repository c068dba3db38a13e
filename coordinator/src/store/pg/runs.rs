//! What the engine writes as a job runs (its plan, every chunk and result, finalized tables,
//! the restore bookkeeping) and reads back after a restart ([`PgStore::load_active`]).

use super::PgStore;
use crate::job::{
    ChunkRun, ChunkState, ExportJob, JobKind, JobRun, JobState, RestoreJob, TableRun, TableWork,
};
use anyhow::{anyhow, Context, Result};
use protocol::{JobSpec, Outcome, ResultEnvelope};
use std::time::SystemTime;

impl PgStore {
    /// Record a freshly planned job: its tables and chunks, all at once.
    pub async fn save_plan(&self, job: &JobRun) -> Result<()> {
        let mut c = self.client().await?;
        let tx = c.transaction().await?;
        tx.execute(
            "UPDATE pgfleet.jobs SET state = $2, snapshot = $3, notes = $4, restore_state = $5,
                    source_database = $6, started_at = now(), updated_at = now() WHERE id = $1",
            &[
                &job.id,
                &job.state.as_str(),
                &job.export().and_then(|e| e.snapshot.as_deref()),
                &serde_json::to_value(&job.notes)?,
                &job.restore_state().map(serde_json::to_value).transpose()?,
                &job.export().and_then(|e| e.source_database.as_deref()),
            ],
        )
        .await?;
        tx.execute("DELETE FROM pgfleet.chunks WHERE job_id = $1", &[&job.id])
            .await?;
        tx.execute(
            "DELETE FROM pgfleet.job_tables WHERE job_id = $1",
            &[&job.id],
        )
        .await?;
        // One statement for all tables, as for the chunks below: a round trip per table made
        // saving a 10,000-table plan take seconds. `depends_on` travels as text ('{1,2}'),
        // since arrays of arrays cannot be unnested per row.
        let idxs: Vec<i32> = (0..job.tables.len() as i32).collect();
        let plans: Vec<serde_json::Value> = job
            .tables
            .iter()
            .map(|t| serde_json::to_value(&t.work))
            .collect::<Result<_, _>>()?;
        let finalized: Vec<bool> = job.tables.iter().map(|t| t.finalized).collect();
        let deps: Vec<String> = job
            .tables
            .iter()
            .map(|t| {
                let list: Vec<String> = t.depends_on.iter().map(u32::to_string).collect();
                format!("{{{}}}", list.join(","))
            })
            .collect();
        tx.execute(
            "INSERT INTO pgfleet.job_tables (job_id, table_idx, plan, finalized, depends_on)
             SELECT $1, u.i, u.p, u.f, u.d::int[]
             FROM unnest($2::int[], $3::jsonb[], $4::bool[], $5::text[]) AS u(i, p, f, d)",
            &[&job.id, &idxs, &plans, &finalized, &deps],
        )
        .await?;
        let ids: Vec<i32> = job.chunks.iter().map(|c| c.id as i32).collect();
        let tables: Vec<i32> = job.chunks.iter().map(|c| c.table_idx as i32).collect();
        let seqs: Vec<i32> = job.chunks.iter().map(|c| c.seq as i32).collect();
        let ranges: Vec<serde_json::Value> = job
            .chunks
            .iter()
            .map(|c| serde_json::to_value(&c.work))
            .collect::<Result<_, _>>()?;
        tx.execute(
            "INSERT INTO pgfleet.chunks (job_id, chunk_id, table_idx, seq, range, state)
             SELECT $1, u.id, u.t, u.s, u.r, 'pending'
             FROM unnest($2::int[], $3::int[], $4::int[], $5::jsonb[]) AS u(id, t, s, r)",
            &[&job.id, &ids, &tables, &seqs, &ranges],
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    pub async fn save_chunk(&self, job_id: &str, ch: &ChunkRun) -> Result<()> {
        let c = self.client().await?;
        c.execute(
            "UPDATE pgfleet.chunks SET state = $3, attempt = $4, rows = $5, bytes = $6, worker = $7,
                    last_error = $8, not_before = $9, proof = $10, updated_at = now()
             WHERE job_id = $1 AND chunk_id = $2",
            &[
                &job_id,
                &(ch.id as i32),
                &ch.state.as_str(),
                &(ch.attempt as i32),
                &(ch.rows as i64),
                &(ch.bytes as i64),
                &ch.worker,
                &ch.last_error,
                &ch.not_before,
                &(!ch.proof.is_empty())
                    .then(|| serde_json::to_value(ch.proof))
                    .transpose()?,
            ],
        )
        .await?;
        Ok(())
    }

    pub async fn record_result(&self, r: &ResultEnvelope, applied: &str) -> Result<()> {
        let c = self.client().await?;
        let (outcome, rows, bytes, error) = match &r.outcome {
            Outcome::Succeeded { rows, bytes, .. } => {
                ("succeeded", Some(*rows as i64), Some(*bytes as i64), None)
            }
            Outcome::Failed { error, retryable } => (
                if *retryable { "retryable" } else { "failed" },
                None,
                None,
                Some(error.as_str()),
            ),
        };
        c.execute(
            "INSERT INTO pgfleet.results (job_id, task_id, attempt, worker, outcome, applied, rows, bytes, error)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
            &[&r.job_id, &r.task_id, &(r.attempt as i32), &r.worker, &outcome, &applied, &rows, &bytes, &error],
        )
        .await?;
        Ok(())
    }

    pub async fn record_dead_letter(
        &self,
        reason: &str,
        job_id: Option<&str>,
        task_id: Option<&str>,
        preview: &str,
    ) -> Result<()> {
        let c = self.client().await?;
        c.execute(
            "INSERT INTO pgfleet.dead_letters (reason, job_id, task_id, preview) VALUES ($1, $2, $3, $4)",
            &[&reason, &job_id, &task_id, &preview],
        )
        .await?;
        Ok(())
    }

    pub async fn mark_finalized(&self, job_id: &str, table_idx: u32) -> Result<()> {
        let c = self.client().await?;
        c.execute(
            "UPDATE pgfleet.job_tables SET finalized = true WHERE job_id = $1 AND table_idx = $2",
            &[&job_id, &(table_idx as i32)],
        )
        .await?;
        Ok(())
    }

    pub async fn save_restore_state(&self, job: &JobRun) -> Result<()> {
        let c = self.client().await?;
        c.execute(
            "UPDATE pgfleet.jobs SET restore_state = $2, updated_at = now() WHERE id = $1",
            &[
                &job.id,
                &job.restore_state().map(serde_json::to_value).transpose()?,
            ],
        )
        .await?;
        Ok(())
    }

    pub async fn save_job(&self, job: &JobRun) -> Result<()> {
        self.set_job_state(&job.id, job.state, job.error.as_deref())
            .await
    }

    /// Jobs a restarted coordinator must continue.
    pub async fn load_active(&self) -> Result<Vec<JobRun>> {
        let c = self.client().await?;
        let jobs = c
            .query(
                "SELECT id, spec, state, snapshot, notes, error, restore_state, source_database FROM pgfleet.jobs
                 WHERE state IN ('running', 'cancelling')
                    OR (restore_state IS NOT NULL AND NOT (restore_state->>'restored')::boolean)
                 ORDER BY submitted_at, id",
                &[],
            )
            .await?;
        let mut out = Vec::new();
        for j in jobs {
            let id: String = j.get(0);
            let spec: JobSpec = serde_json::from_value(j.get(1))
                .with_context(|| format!("job {id}: stored spec is unreadable"))?;
            let state = JobState::parse(j.get(2)).ok_or_else(|| anyhow!("job {id}: bad state"))?;
            let tables = c
                .query(
                    "SELECT plan, finalized, depends_on FROM pgfleet.job_tables WHERE job_id = $1 ORDER BY table_idx",
                    &[&id],
                )
                .await?
                .into_iter()
                .map(|r| {
                    Ok(TableRun {
                        work: serde_json::from_value::<TableWork>(r.get(0))?,
                        finalized: r.get(1),
                        depends_on: r
                            .get::<_, Vec<i32>>(2)
                            .into_iter()
                            .map(|d| d as u32)
                            .collect(),
                    })
                })
                .collect::<Result<Vec<_>>>()?;
            let chunks = c
                .query(
                    "SELECT chunk_id, table_idx, seq, range, state, attempt, rows, bytes, worker, last_error, not_before, proof
                     FROM pgfleet.chunks WHERE job_id = $1 ORDER BY chunk_id",
                    &[&id],
                )
                .await?
                .into_iter()
                .map(|r| {
                    Ok(ChunkRun {
                        id: r.get::<_, i32>(0) as u32,
                        table_idx: r.get::<_, i32>(1) as u32,
                        seq: r.get::<_, i32>(2) as u32,
                        work: serde_json::from_value(r.get(3))?,
                        state: ChunkState::parse(r.get(4)).ok_or_else(|| anyhow!("bad chunk state"))?,
                        attempt: r.get::<_, i32>(5) as u32,
                        rows: r.get::<_, i64>(6) as u64,
                        bytes: r.get::<_, i64>(7) as u64,
                        worker: r.get(8),
                        last_error: r.get(9),
                        not_before: r.get::<_, Option<SystemTime>>(10),
                        proof: r
                            .get::<_, Option<serde_json::Value>>(11)
                            .map(serde_json::from_value)
                            .transpose()?
                            .unwrap_or_default(),
                    })
                })
                .collect::<Result<Vec<_>>>()?;
            let kind = match spec {
                JobSpec::Export(spec) => JobKind::Export(ExportJob {
                    spec,
                    snapshot: j.get(3),
                    source_database: j.get(7),
                }),
                JobSpec::Restore(spec) => JobKind::Restore(RestoreJob {
                    spec,
                    state: j
                        .get::<_, Option<serde_json::Value>>(6)
                        .map(serde_json::from_value)
                        .transpose()
                        .with_context(|| format!("job {id}: stored restore state is unreadable"))?,
                }),
            };
            out.push(JobRun::from_parts(
                id,
                kind,
                state,
                tables,
                chunks,
                serde_json::from_value(j.get(4)).unwrap_or_default(),
                j.get(5),
            ));
        }
        Ok(out)
    }
}
