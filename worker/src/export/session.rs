//! One pooled connection inside the chunk's read-only transaction. A connection goes back to
//! the pool only after a clean COMMIT or ROLLBACK; in every other case (broken connection, COPY
//! still streaming, the task cancelled mid-way) it is closed instead, so the pool never hands
//! out a connection in the middle of a transaction.

use super::validate_snapshot_id;
use deadpool_postgres::Object;
use fleet_io::clients::Clients;
use fleet_io::error::{pg_error, TaskError};
use protocol::ExportChunk;

pub struct Session {
    conn: Option<Object>,
    /// A transaction may be open: on drop, close the connection rather than pool it.
    dirty: bool,
}

impl Session {
    /// Check out a connection and open the transaction (importing the snapshot and setting the
    /// statement timeout when the task asks for them).
    pub async fn begin(ctx: &Clients, task: &ExportChunk) -> Result<Self, TaskError> {
        if let Some(id) = &task.snapshot {
            validate_snapshot_id(id)?;
        }
        let conn = ctx.pg(&task.source).await?;
        let mut session = Self {
            conn: Some(conn),
            dirty: true,
        };
        let mut begin = String::from("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY");
        if let Some(id) = &task.snapshot {
            // Must be the first statement of the transaction; ids cannot be bound as parameters.
            begin.push_str(&format!("; SET TRANSACTION SNAPSHOT '{id}'"));
        }
        // Take the transaction's snapshot now, in the same round trip: from then on PostgreSQL
        // refuses `SET TRANSACTION READ WRITE` ("must be set before any query"), so nothing
        // run later in this transaction can make it writable.
        begin.push_str("; SELECT 1");
        if let Err(e) = session.client().batch_execute(&begin).await {
            let err = pg_error(&e);
            session.rollback().await;
            return Err(err);
        }
        if let Some(timeout) = &task.source.statement_timeout {
            let set = "SELECT set_config('statement_timeout', $1, true)";
            if let Err(e) = session.client().execute(set, &[timeout]).await {
                let err = pg_error(&e);
                session.rollback().await;
                return Err(err.context("setting statement_timeout"));
            }
        }
        Ok(session)
    }

    pub fn client(&self) -> &tokio_postgres::Client {
        // `conn` is only taken by consuming methods and Drop.
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

    /// Close the connection instead of returning it to the pool.
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
