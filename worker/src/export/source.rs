//! The chunk's source transaction: REPEATABLE READ, READ ONLY, optionally on the job's
//! exported snapshot, with the source's statement timeout. The transaction's snapshot is taken
//! in the same round trip as BEGIN, so nothing run later in it can make it writable.

use super::validate_snapshot_id;
use fleet_io::clients::Clients;
use fleet_io::error::TaskError;
use fleet_io::pg::session::Session;
use protocol::{ExportChunk, PgConn};

/// Check out a connection to the task's source and open its read-only transaction (importing
/// the snapshot and setting the statement timeout when the task asks for them).
pub async fn begin(ctx: &Clients, task: &ExportChunk) -> Result<Session, TaskError> {
    begin_on(ctx, &task.source, task.snapshot.as_deref()).await
}

/// [`begin`] on `source`, with `snapshot` if given.
pub async fn begin_on(
    ctx: &Clients,
    source: &PgConn,
    snapshot: Option<&str>,
) -> Result<Session, TaskError> {
    if let Some(id) = snapshot {
        validate_snapshot_id(id)?;
    }
    let conn = ctx.pg(source).await?;
    let mut begin = String::from("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY");
    if let Some(id) = snapshot {
        // Must be the first statement of the transaction; ids cannot be bound as parameters.
        begin.push_str(&format!("; SET TRANSACTION SNAPSHOT '{id}'"));
    }
    // Take the transaction's snapshot now, in the same round trip: from then on PostgreSQL
    // refuses `SET TRANSACTION READ WRITE` ("must be set before any query"), so nothing
    // run later in this transaction can make it writable.
    begin.push_str("; SELECT 1");
    let mut session = Session::begin(conn, &begin).await?;
    session
        .set_statement_timeout(source.statement_timeout.as_deref())
        .await?;
    Ok(session)
}
