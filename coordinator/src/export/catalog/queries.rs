//! Counts the statements export planning sends to the source, so that the set-based property
//! (a handful of catalog queries per phase, whatever the number of tables) can be logged and
//! tested. The count lives in a task-local: planning runs as one sequence of awaits in one task,
//! and concurrent plans (tests, several jobs) each see their own.

use std::cell::Cell;
use std::future::Future;

tokio::task_local! {
    static ISSUED: Cell<u64>;
}

/// Record one statement sent (a no-op outside [`counted`]).
pub fn note() {
    let _ = ISSUED.try_with(|n| n.set(n.get() + 1));
}

/// Run `f`, returning its output and the number of statements it sent through this module's
/// callers.
pub async fn counted<F: Future>(f: F) -> (F::Output, u64) {
    ISSUED
        .scope(Cell::new(0), async {
            let out = f.await;
            (out, ISSUED.with(Cell::get))
        })
        .await
}
