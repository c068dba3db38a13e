//! `coordinator repair`: put back what interrupted restores left changed in a target, and
//! nothing else. For a user who gives up on a load, or wants the target whole again now.

use super::load_spec;
use crate::restore::changes;
use anyhow::{anyhow, bail, Result};
use protocol::{JobSpec, PgConn};
use std::path::Path;
use std::process::ExitCode;

pub async fn run(spec: Option<&Path>, target: Option<&str>, dry_run: bool) -> Result<ExitCode> {
    let (conn, sessions) = match (spec, target) {
        (Some(path), _) => match load_spec(path)? {
            JobSpec::Restore(r) => (r.target.conn(), r.target.max_connections as usize),
            JobSpec::Export(_) => bail!(
                "{} is an export spec; repair takes a restore spec (its [target]) or --target URL",
                path.display()
            ),
        },
        (None, Some(url)) => {
            protocol::spec::check_source_url(url).map_err(|e| anyhow!("--target {e}"))?;
            let conn = PgConn {
                url: Some(url.to_string()),
                read_only: false,
                application_name: "pgfleet-repair".into(),
                ..PgConn::default()
            };
            (conn, 2)
        }
        (None, None) => bail!("give a restore spec or --target URL"),
    };
    let client = changes::connect(&conn).await?;
    let pending = changes::pending(&client, None).await?;
    drop(client);
    if pending.is_empty() {
        crate::outln!("nothing pending: no restore left a change in this target");
        return Ok(ExitCode::SUCCESS);
    }
    if dry_run {
        crate::outln!("{} change(s) pending:", pending.len());
        for c in &pending {
            crate::outln!(
                "  {} ({}, job {})",
                c.describe(),
                if c.not_valid {
                    "re-added NOT VALID"
                } else {
                    "dropped"
                },
                c.job_id
            );
        }
        return Ok(ExitCode::FAILURE);
    }
    let report = changes::repair(&conn, sessions.clamp(1, 8), false).await?;
    crate::outln!("{}", report.summary());
    Ok(if report.pending.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
