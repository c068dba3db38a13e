//! `coordinator verify`: proof, after the fact, that a job's data is what it should be.
//!
//! - an export ([`export`]): every part its manifests list, read back (size, CRC32C, rows),
//!   nothing unexplained beside them, and with `--source` the source's rows fingerprinted again;
//! - a restore ([`restore`]): per table, the target's rows against the export's, compared by
//!   PostgreSQL on the target, per key range.
//!
//! Both give one [`report::Report`]: per table OK or DIFFERENT, with what differs and where.

pub mod export;
mod object_scan;
pub mod report;
pub mod restore;

use anyhow::{anyhow, Result};
use fleet_io::clients::Clients;
use protocol::JobSpec;
use report::Report;

/// What to verify beyond the spec itself.
#[derive(Debug, Clone, Copy, Default)]
pub struct Options {
    /// Export: read the source again and compare each part's fingerprint.
    pub source: bool,
}

/// Verify what `spec` produced: an export's output, or a restore's target against its export.
pub async fn verify(ctx: &Clients, spec: &JobSpec, options: Options) -> Result<Report> {
    match spec {
        JobSpec::Export(e) => {
            let check = export::ExportCheck {
                location: e.output.location().map_err(|m| anyhow!(m))?,
                s3: &e.output.s3,
                source: options.source.then(|| e.source.conn()),
                window: usize::try_from(e.source.max_in_flight).unwrap_or(1),
            };
            export::verify(ctx, &check).await
        }
        JobSpec::Restore(r) => {
            if options.source {
                return Err(anyhow!(
                    "--source applies to exports (a restore is compared with its export)"
                ));
            }
            let connections = usize::try_from(r.target.max_connections).unwrap_or(1);
            restore::verify(ctx, r, connections).await
        }
    }
}
