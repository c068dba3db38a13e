//! What `submit`, `cancel` and `serve` tell each other through the state database: submitted
//! jobs, cancel requests and job states, each change NOTIFYing the waiters.

use super::{notify, PgStore, JOBS_CHANNEL};
use crate::job::JobState;
use anyhow::{bail, Result};
use protocol::JobSpec;

impl PgStore {
    pub async fn submit(&self, id: &str, spec: &JobSpec) -> Result<()> {
        let c = self.client().await?;
        c.execute(
            "INSERT INTO pgfleet.jobs (id, name, kind, spec, state) VALUES ($1, $2, $3, $4, 'submitted')",
            &[&id, &spec.name(), &spec.kind(), &serde_json::to_value(spec)?],
        )
        .await?;
        notify(&c, id).await;
        Ok(())
    }

    /// The spec job `id` was submitted with (`None`: no such job).
    pub async fn job_spec(&self, id: &str) -> Result<Option<JobSpec>> {
        let c = self.client().await?;
        let row = c
            .query_opt("SELECT spec FROM pgfleet.jobs WHERE id = $1", &[&id])
            .await?;
        row.map(|r| Ok(serde_json::from_value(r.get::<_, serde_json::Value>(0))?))
            .transpose()
    }

    /// Job ids from [`JOBS_CHANNEL`], for as long as the receiver lives; returns once the first
    /// LISTEN is in place (or failed). The listening session reconnects after a loss (every
    /// 5 s); meanwhile nothing arrives and callers poll as before.
    pub async fn watch_jobs(&self) -> tokio::sync::mpsc::UnboundedReceiver<String> {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        let (cfg, tls) = self.listen_config.clone();
        let (ready_tx, ready_rx) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(async move {
            let mut ready = Some(ready_tx);
            while !tx.is_closed() {
                let session = match fleet_io::pg::connect::connect_listening(&cfg, &tls).await {
                    Ok((client, ids)) => client
                        .batch_execute(&format!("LISTEN {JOBS_CHANNEL}"))
                        .await
                        .map(|()| (client, ids))
                        .map_err(|e| e.to_string()),
                    Err(e) => Err(e.to_string()),
                };
                if let Some(r) = ready.take() {
                    let _ = r.send(());
                }
                match session {
                    // `_client` keeps the session open while its notifications are read.
                    Ok((_client, mut ids)) => {
                        while let Some(id) = ids.recv().await {
                            if tx.send(id).is_err() {
                                return;
                            }
                        }
                    }
                    Err(e) => tracing::debug!(error = %e, "job notifications unavailable; polling"),
                }
                tokio::time::sleep(std::time::Duration::from_secs(5)).await;
            }
        });
        let _ = tokio::time::timeout(std::time::Duration::from_secs(10), ready_rx).await;
        rx
    }

    pub async fn take_submitted(&self) -> Result<Vec<(String, JobSpec)>> {
        let c = self.client().await?;
        let rows = c
            .query(
                "SELECT id, spec FROM pgfleet.jobs WHERE state = 'submitted' ORDER BY submitted_at, id",
                &[],
            )
            .await?;
        let mut out = Vec::new();
        for r in rows {
            let id: String = r.get(0);
            match serde_json::from_value::<JobSpec>(r.get(1)) {
                Ok(spec) => out.push((id, spec)),
                Err(e) => {
                    self.set_job_state(
                        &id,
                        JobState::Failed,
                        Some(&format!("stored spec is unreadable: {e}")),
                    )
                    .await?;
                }
            }
        }
        Ok(out)
    }

    pub async fn cancel_requests(&self) -> Result<Vec<String>> {
        let c = self.client().await?;
        Ok(c.query(
            "SELECT id FROM pgfleet.jobs WHERE state = 'cancelling'",
            &[],
        )
        .await?
        .iter()
        .map(|r| r.get(0))
        .collect())
    }

    /// Ask for a job to stop. A job not started yet is cancelled at once.
    pub async fn request_cancel(&self, id: &str) -> Result<String> {
        let c = self.client().await?;
        let row = c
            .query_opt(
                "UPDATE pgfleet.jobs SET state = CASE state WHEN 'submitted' THEN 'cancelled' ELSE 'cancelling' END,
                        updated_at = now(),
                        finished_at = CASE state WHEN 'submitted' THEN now() END
                 WHERE id = $1 AND state IN ('submitted', 'running') RETURNING state",
                &[&id],
            )
            .await?;
        notify(&c, id).await;
        match row {
            Some(r) => Ok(r.get(0)),
            None => match self.job_state(id).await? {
                Some(s) => bail!("job {id} is already {s}"),
                None => bail!("no job {id}"),
            },
        }
    }

    pub async fn job_state(&self, id: &str) -> Result<Option<String>> {
        let c = self.client().await?;
        Ok(
            c.query_opt("SELECT state FROM pgfleet.jobs WHERE id = $1", &[&id])
                .await?
                .map(|r| r.get(0)),
        )
    }

    pub async fn set_job_state(
        &self,
        id: &str,
        state: JobState,
        error: Option<&str>,
    ) -> Result<()> {
        let c = self.client().await?;
        c.execute(
            "UPDATE pgfleet.jobs SET state = $2, error = coalesce($3, error), updated_at = now(),
                    finished_at = CASE WHEN $4 THEN now() ELSE finished_at END
             WHERE id = $1",
            &[&id, &state.as_str(), &error, &state.is_terminal()],
        )
        .await?;
        notify(&c, id).await;
        Ok(())
    }
}
