//! One pooled PostgreSQL connection inside one transaction. The connection goes back to the
//! pool only after a clean COMMIT or ROLLBACK; in every other case (broken connection, a COPY
//! still streaming, the task cancelled mid-way, an explicit [`Session::discard`]) it is closed
//! instead, which makes the server roll back, so the pool never hands out a connection in the
//! middle of a transaction.
//!
//! What the transaction is for (READ ONLY with an imported snapshot for an export, target
//! settings for a restore) is the caller's: it passes its own `BEGIN ...` batch.

use crate::error::{pg_error, TaskError};
use deadpool_postgres::Object;

pub struct Session {
    conn: Option<Object>,
    /// A transaction may be open: on drop, close the connection rather than pool it.
    dirty: bool,
}

impl Session {
    /// Open the transaction on `conn` with `begin`: one batch of statements, the first of which
    /// is `BEGIN ...`. On failure the transaction is rolled back (best effort) and PostgreSQL's
    /// error returned as it is.
    pub async fn begin(conn: Object, begin: &str) -> Result<Self, TaskError> {
        let mut session = Self {
            conn: Some(conn),
            dirty: true,
        };
        if let Err(e) = session.client().batch_execute(begin).await {
            let err = pg_error(&e);
            session.rollback().await;
            return Err(err);
        }
        Ok(session)
    }

    /// Set `statement_timeout` for the rest of the transaction (nothing when `None`). On
    /// failure the transaction is rolled back (best effort).
    pub async fn set_statement_timeout(&mut self, timeout: Option<&str>) -> Result<(), TaskError> {
        let Some(timeout) = timeout else {
            return Ok(());
        };
        let set = "SELECT set_config('statement_timeout', $1, true)";
        if let Err(e) = self.client().execute(set, &[&timeout]).await {
            let err = pg_error(&e);
            self.rollback().await;
            return Err(err.context("setting statement_timeout"));
        }
        Ok(())
    }

    /// Run `statements` in the transaction; on failure roll back (best effort) and return
    /// PostgreSQL's error with `what` as its context.
    pub async fn setup(&mut self, statements: &str, what: &str) -> Result<(), TaskError> {
        if let Err(e) = self.client().batch_execute(statements).await {
            let err = pg_error(&e).context(what);
            self.rollback().await;
            return Err(err);
        }
        Ok(())
    }

    pub fn client(&self) -> &tokio_postgres::Client {
        // `conn` is only taken by Drop.
        self.conn
            .as_ref()
            .map(|c| &***c)
            .unwrap_or_else(|| unreachable!("session used after release"))
    }

    pub async fn commit(mut self) -> Result<(), TaskError> {
        match self.client().batch_execute("COMMIT").await {
            Ok(()) => {
                self.dirty = false;
                Ok(())
            }
            Err(e) => Err(pg_error(&e)),
        }
    }

    /// Best effort: the caller is already reporting the real error.
    pub async fn rollback(&mut self) {
        if self.client().is_closed() {
            return;
        }
        if self.client().batch_execute("ROLLBACK").await.is_ok() {
            self.dirty = false;
        }
    }

    /// Close the connection instead of returning it to the pool (a COPY may still be
    /// streaming: closing is cheaper than draining it).
    pub fn discard(mut self) {
        self.dirty = true;
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        if let Some(conn) = self.conn.take() {
            if self.dirty || conn.is_closed() {
                // Detach from the pool; dropping the client closes the connection.
                drop(Object::take(conn));
            }
        }
    }
}
