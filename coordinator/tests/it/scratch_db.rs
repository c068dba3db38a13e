//! A scratch database for one test on the PostgreSQL at PGFLEET_TEST_PG_URL (default
//! postgresql://postgres@127.0.0.1:5432/postgres): created, handed to the test as a config,
//! dropped afterwards even when the test panics. Fails, never skips, when PostgreSQL is
//! unreachable.

use futures::FutureExt;
use protocol::quote_ident;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::str::FromStr;
use tokio_postgres::{Client, NoTls};

const DEFAULT_URL: &str = "postgresql://postgres@127.0.0.1:5432/postgres";

/// Run `test` on a fresh database named `<prefix><uuid>`, then drop it.
pub async fn with_scratch_db<F, Fut>(prefix: &str, test: F)
where
    F: FnOnce(tokio_postgres::Config) -> Fut,
    Fut: Future<Output = ()>,
{
    let url = std::env::var("PGFLEET_TEST_PG_URL").unwrap_or_else(|_| DEFAULT_URL.into());
    let admin = connect(&url).await;
    let db = format!("{prefix}{}", uuid::Uuid::new_v4().simple());
    admin
        .batch_execute(&format!("CREATE DATABASE {}", quote_ident(&db)))
        .await
        .expect("create scratch database");
    let mut config = tokio_postgres::Config::from_str(&url).expect("PGFLEET_TEST_PG_URL");
    config.dbname(&db);
    let outcome = AssertUnwindSafe(test(config)).catch_unwind().await;
    let drop = format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", quote_ident(&db));
    let dropped = admin.batch_execute(&drop).await;
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
    dropped.expect("drop scratch database");
}

async fn connect(url: &str) -> Client {
    let (client, conn) = tokio_postgres::connect(url, NoTls)
        .await
        .unwrap_or_else(|e| panic!("PostgreSQL at {url} is unreachable: {e}"));
    tokio::spawn(async move {
        let _ = conn.await;
    });
    client
}
