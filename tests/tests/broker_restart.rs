//! Fault scenario 2: RabbitMQ restarts in the middle of a job (export and restore). Workers and
//! the coordinator lose their connections, reconnect with backoff, and the jobs finish exactly:
//! tasks unacknowledged at the restart are redelivered, results not yet recorded are
//! redelivered, and duplicates are ignored by task id.
//!
//! Its own test binary on purpose: restarting the broker disturbs every test that talks to
//! RabbitMQ, and cargo runs test binaries one at a time. The two tests here take a lock so
//! they never overlap either.

use pgfleet_tests::procs::Fleet;
use pgfleet_tests::scenario::*;
use std::process::Command;
use std::time::Duration;

static BROKER: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn rabbitmqctl(args: &[&str]) -> anyhow::Result<()> {
    let out = Command::new("rabbitmqctl").args(args).output()?;
    anyhow::ensure!(
        out.status.success(),
        "rabbitmqctl {}: {}{}",
        args.join(" "),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(())
}

/// Starts the RabbitMQ application again when dropped, so a failing test never leaves the
/// machine's broker stopped.
struct Restart;

impl Restart {
    /// Stop the broker (every connection closes), wait, start it again.
    fn broker(down_for: Duration) -> anyhow::Result<Self> {
        rabbitmqctl(&["stop_app"])?;
        let guard = Restart;
        std::thread::sleep(down_for);
        rabbitmqctl(&["start_app"])?;
        rabbitmqctl(&["await_startup"])?;
        Ok(guard)
    }
}

impl Drop for Restart {
    fn drop(&mut self) {
        let _ = rabbitmqctl(&["start_app"]);
    }
}

async fn restart_mid_job(sc: Scenario) -> anyhow::Result<()> {
    let _one_at_a_time = BROKER.lock().await;
    let fleet = Fleet::start(&sc.state.url, 2, 1);
    let submit = sc.submit(300);
    let state = sc.state.client().await?;
    wait_until("3 tasks done", Duration::from_secs(120), || async {
        Ok(chunks_in_state(&state, "done").await >= 3)
    })
    .await?;
    let _restarted = Restart::broker(Duration::from_secs(3))?;

    let (ok, job, err) = finish_submit(submit).await?;
    assert!(
        ok,
        "{} did not finish after the broker restart: {err}\ncoordinator: {}",
        sc.tag,
        fleet.coordinator.logs()
    );
    for (name, log) in std::iter::once(("coordinator", fleet.coordinator.logs()))
        .chain(fleet.workers.iter().map(|w| (w.name.as_str(), w.logs())))
    {
        assert!(
            log.contains("RabbitMQ connection lost; reconnecting"),
            "{name} never noticed the restart:\n{log}"
        );
    }
    match sc.target {
        Some(_) => sc.check_restore().await?,
        None => {
            sc.check_export().await?;
        }
    }
    assert_eq!(sc.status(&job)?["job"]["state"], "succeeded");
    drop(fleet);
    sc.drop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rabbitmq_restart_mid_export() -> anyhow::Result<()> {
    let sc = Scenario::export(
        "mq_exp",
        ExportShape {
            big_rows: 300_000,
            rows_per_chunk: 15_000,
            max_in_flight: 2,
        },
    )
    .await?;
    restart_mid_job(sc).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rabbitmq_restart_mid_restore() -> anyhow::Result<()> {
    let sc = Scenario::restore("mq_rst", 200_000, 20_000, 20_000, 2).await?;
    restart_mid_job(sc).await
}
