//! `coordinator verify SPEC|JOB [--source] [--json]`: exit 0 when every table matches, 1 when
//! one differs, 2 when the verification could not run (bad arguments, unreadable spec, an
//! unreachable store or database).

use crate::store::PgStore;
use crate::verify::{self, report::Report};
use anyhow::Result;
use fleet_io::clients::Clients;
use protocol::JobSpec;
use std::path::Path;
use std::process::ExitCode;

pub struct VerifyArgs<'a> {
    /// A spec file, or the id of a job in the state database.
    pub what: &'a str,
    pub source: bool,
    pub json: bool,
    pub state_url: &'a str,
}

pub async fn run(args: VerifyArgs<'_>) -> Result<ExitCode> {
    let report = match verify_what(&args).await {
        Ok(r) => r,
        Err(e) => {
            crate::errln!("error: {e:#}");
            return Ok(ExitCode::from(2));
        }
    };
    if args.json {
        crate::outln!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        crate::outln!("{}", report.render().trim_end());
    }
    Ok(if report.ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

async fn verify_what(args: &VerifyArgs<'_>) -> Result<Report> {
    let spec = spec_of(args.what, args.state_url).await?;
    let ctx = Clients::new("coordinator-verify");
    verify::verify(
        &ctx,
        &spec,
        verify::Options {
            source: args.source,
        },
    )
    .await
}

/// A spec file if `what` names one; otherwise a job id, whose spec the state database holds.
async fn spec_of(what: &str, state_url: &str) -> Result<JobSpec> {
    let path = Path::new(what);
    if path.exists() || what.ends_with(".toml") {
        return super::load_spec(path);
    }
    let store = PgStore::open(state_url).await?;
    store.job_spec(what).await?.ok_or_else(|| {
        anyhow::anyhow!(
            "{what} is neither a spec file nor a job in the state database (`coordinator status` lists jobs)"
        )
    })
}

/// `run --verify` and `submit --verify`: verify job `id`'s spec after it succeeded, print the
/// report; true when everything matched. A verification that cannot run counts as failed.
pub async fn after_job(id: &str, spec: &JobSpec) -> bool {
    crate::errln!("job {id}: verifying");
    let ctx = Clients::new("coordinator-verify");
    match verify::verify(&ctx, spec, verify::Options::default()).await {
        Ok(report) => {
            crate::outln!("{}", report.render().trim_end());
            if !report.ok {
                crate::errln!("job {id} failed verification: see the DIFFERENT tables above");
            }
            report.ok
        }
        Err(e) => {
            crate::errln!("job {id}: the verification could not run: {e:#}");
            false
        }
    }
}
