//! The one transaction an export plans in: READ ONLY and REPEATABLE READ on the source, so the
//! catalog reads agree with each other and nothing is ever written (a hot-standby replica
//! accepts it). With `snapshot = "consistent"` it exports its snapshot, and must stay open for
//! as long as workers import it.

use anyhow::{anyhow, Context, Result};
use protocol::spec::{ExportSpec, SnapshotMode};

/// An open planning transaction on the source.
pub struct SourceTxn {
    client: tokio_postgres::Client,
}

impl SourceTxn {
    pub async fn begin(spec: &ExportSpec) -> Result<Self> {
        let (cfg, tls) =
            fleet_io::pg::pg_config(&spec.source.conn()).map_err(|e| anyhow!(e.message))?;
        let client = fleet_io::pg::connect(&cfg, &tls)
            .await
            .map_err(|e| anyhow!("connecting to the source: {e}"))?;
        Self::begin_on(client).await
    }

    /// Begin the planning transaction on a session already open to the source (one opened
    /// with `spec.source.conn()`, so read-only).
    pub async fn begin_on(client: tokio_postgres::Client) -> Result<Self> {
        client
            .batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
            .await?;
        Ok(Self { client })
    }

    pub fn client(&self) -> &tokio_postgres::Client {
        &self.client
    }

    /// `pg_export_snapshot()` when the job asks for one consistent snapshot.
    pub async fn export_snapshot(&self, mode: SnapshotMode) -> Result<Option<String>> {
        Ok(match mode {
            SnapshotMode::Consistent => Some(
                self.client
                    .query_one("SELECT pg_export_snapshot()", &[])
                    .await
                    .context("exporting a snapshot (is the source a hot standby older than PostgreSQL 10?)")?
                    .get::<_, String>(0),
            ),
            SnapshotMode::PerChunk => None,
        })
    }

    pub async fn commit(self) -> Result<()> {
        self.client.batch_execute("COMMIT").await?;
        Ok(())
    }

    /// The session itself, kept open (its snapshot stays importable until it is dropped).
    pub fn hold(self) -> tokio_postgres::Client {
        self.client
    }
}
