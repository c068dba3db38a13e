//! `serve` and `submit --wait` learn of job changes through LISTEN/NOTIFY on the state database
//! rather than on their next poll: a submit, a cancel and a state change each notify.

use coordinator::job::JobState;
use coordinator::store::PgStore;
use pgfleet_tests::ScratchDb;
use protocol::JobSpec;
use std::time::Duration;

async fn next(rx: &mut tokio::sync::mpsc::UnboundedReceiver<String>) -> Option<String> {
    tokio::time::timeout(Duration::from_secs(5), rx.recv())
        .await
        .ok()
        .flatten()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn submit_cancel_and_state_changes_notify_watchers() -> anyhow::Result<()> {
    let db = ScratchDb::create("pgfleet_notify_").await?;
    let store = PgStore::connect(&db.url).await?;
    let mut changes = store.watch_jobs().await;
    let spec = JobSpec::from_toml(
        "kind = \"export\"\nname = \"n\"\n[source]\n[tables]\ninclude = [\"public.*\"]\n\
         [output]\nurl = \"file:///tmp/pgfleet-notify/\"\n",
    )
    .map_err(anyhow::Error::msg)?;

    store.submit("j-notify-a", &spec).await?;
    assert_eq!(next(&mut changes).await.as_deref(), Some("j-notify-a"));
    // Not started yet: cancelled at once, and said so.
    assert_eq!(store.request_cancel("j-notify-a").await?, "cancelled");
    assert_eq!(next(&mut changes).await.as_deref(), Some("j-notify-a"));

    store.submit("j-notify-b", &spec).await?;
    assert_eq!(next(&mut changes).await.as_deref(), Some("j-notify-b"));
    store
        .set_job_state("j-notify-b", JobState::Failed, Some("test"))
        .await?;
    assert_eq!(next(&mut changes).await.as_deref(), Some("j-notify-b"));

    drop(store);
    db.drop().await?;
    Ok(())
}
