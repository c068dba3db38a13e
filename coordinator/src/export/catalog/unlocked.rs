//! Reading many tables without keeping a lock on each. Every table a statement reads stays
//! locked (AccessShareLock) until the planning transaction ends, and a catalog of thousands of
//! tables (or a partitioned table of thousands of partitions, which `pg_partition_tree` locks)
//! then exhausts the server's lock table ("out of shared memory": it holds about
//! `max_locks_per_transaction` x `max_connections` locks for everyone). Run inside a savepoint
//! that is rolled back, the statement's locks go with it, while the transaction keeps its
//! snapshot: later reads still see the same data. Savepoints are allowed in READ ONLY
//! transactions and on hot standbys.

use super::queries;
use anyhow::{Context, Result};
use std::future::Future;
use tokio_postgres::GenericClient;

const SAVEPOINT: &str = "pgfleet_catalog_read";

/// Run `read` (statements on `client`) inside a savepoint, then roll the savepoint back to
/// release the locks it took. `read`'s error, if any, is returned after the rollback.
pub async fn without_locks<C, F, T>(client: &C, read: F) -> Result<T>
where
    C: GenericClient + Sync,
    F: Future<Output = Result<T>>,
{
    queries::note();
    client
        .batch_execute(&format!("SAVEPOINT {SAVEPOINT}"))
        .await
        .context("opening a savepoint for catalog reads")?;
    let out = read.await;
    queries::note();
    client
        .batch_execute(&format!(
            "ROLLBACK TO SAVEPOINT {SAVEPOINT}; RELEASE SAVEPOINT {SAVEPOINT}"
        ))
        .await
        .context("releasing the locks of catalog reads")?;
    out
}
