//! Restore one Parquet file (or a range of its row groups) into one table.
//!
//! ```text
//! ranged reads (reader) → Arrow batches, one row group at a time → COPY text (copy_text)
//!   → COPY "schema"."table" ("cols") FROM STDIN, in ONE transaction with the piece's ledger row
//! ```
//!
//! The transaction first claims the piece in the ledger (see [`ledger`]); a piece already
//! recorded there is not loaded again, so a redelivered task is a no-op. The selected row
//! groups' footer count is checked against the task's `expected_rows` before COPY starts, and
//! the COPY's row count (its command tag) after it ends; a mismatch rolls everything back. Any
//! failure rolls back the rows and the ledger row together: nothing is ever half-loaded.
//!
//! Memory per task: one row group's column chunks (as the Parquet reader fetches them), one
//! Arrow batch of [`reader::BATCH_ROWS`] rows, and about 1 MiB of COPY text (`FLUSH_BYTES`).

pub mod copy_text;
use fleet_io::ledger;
pub mod reader;

use crate::export::ChunkStats;
use arrow::array::ArrayRef;
use bytes::BytesMut;
use copy_text::{decode_dictionary, RowEncoder};
use fleet_io::clients::Clients;
use fleet_io::error::{pg_error, TaskError};
use fleet_io::pg::session::Session;
use fleet_io::sink::object_url;
use futures::{SinkExt, StreamExt};
use protocol::{quote_ident, RestoreFile};
use reader::ObjectReader;
use std::pin::pin;
use std::sync::atomic::Ordering;

/// COPY data is sent in chunks of about this size.
const FLUSH_BYTES: usize = 1024 * 1024;

/// Run one restore task. Errors name the table, the object and the row groups, and say
/// whether a retry can help.
pub async fn restore_file(ctx: &Clients, task: &RestoreFile) -> Result<ChunkStats, TaskError> {
    let url = object_url(&task.object.location, &task.object.key);
    let table = task.table.display_name();
    let groups = match task.row_groups {
        Some(r) => format!(" (row groups {}..{})", r.start, r.end),
        None => String::new(),
    };
    let started = std::time::Instant::now();
    let result = run(ctx, task).await;
    match &result {
        Ok(stats) => tracing::debug!(
            table = %table,
            object = %url,
            rows = stats.rows,
            bytes = stats.bytes,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "restored file"
        ),
        Err(e) => tracing::debug!(table = %table, object = %url, error = %e, "restore failed"),
    }
    result.map_err(|e| e.context(format_args!("restoring {table} from {url}{groups}")))
}

async fn run(ctx: &Clients, task: &RestoreFile) -> Result<ChunkStats, TaskError> {
    if task.columns.is_empty() {
        return Err(TaskError::fatal(
            "the task lists no columns to load; re-plan the restore",
        ));
    }
    let copy = copy_statement(task);
    let export = task.ledger.export.as_str();
    let piece = task.ledger.piece.as_str();

    let mut session = begin(ctx, task).await?;
    let claimed = match ledger::claim(session.client(), export, piece, &task.table).await {
        Ok(claimed) => claimed,
        Err(e) => {
            session.rollback().await;
            return Err(ledger_error(&e));
        }
    };
    if !claimed {
        let loaded = match ledger::loaded_piece(session.client(), export, piece).await {
            Ok(loaded) => loaded,
            Err(e) => {
                session.rollback().await;
                return Err(ledger_error(&e));
            }
        };
        commit(session).await?;
        return already_loaded(task, loaded);
    }

    let reader = ObjectReader::new(ctx, &task.object);
    let bytes_read = reader.bytes_read();
    let rows = match load(&session, task, &copy, reader).await {
        Ok(rows) => rows,
        Err(e) => {
            session.rollback().await;
            return Err(e);
        }
    };
    let rows_ok = match task.filter {
        None => rows == task.expected_rows,
        Some(_) => rows <= task.expected_rows,
    };
    if !rows_ok {
        session.rollback().await;
        return Err(TaskError::fatal(format!(
            "COPY loaded {rows} rows from {} but the task expects {} (the Parquet footer's count \
             when the restore was planned); rolled back, nothing loaded. The file changed since \
             planning, or the export is inconsistent: re-plan the restore",
            task.object.key, task.expected_rows
        )));
    }
    if let Err(e) = ledger::record_rows(session.client(), export, piece, rows).await {
        session.rollback().await;
        return Err(ledger_error(&e));
    }
    commit(session).await?;
    Ok(ChunkStats {
        rows,
        bytes: bytes_read.load(Ordering::Relaxed),
        ..ChunkStats::default()
    })
}

/// The piece was loaded by an earlier delivery: report what the ledger recorded.
fn already_loaded(
    task: &RestoreFile,
    loaded: Option<ledger::LoadedPiece>,
) -> Result<ChunkStats, TaskError> {
    let Some(loaded) = loaded else {
        // The row vanished between the conflict and the read: someone deleted it meanwhile.
        return Err(TaskError::retryable(
            "the ledger row of this piece disappeared while checking it; retrying",
        ));
    };
    if loaded.table != task.table {
        return Err(TaskError::fatal(format!(
            "the ledger says piece {:?} of export {:?} was loaded into {}, not into this table; \
             two tasks share a ledger key: re-plan the restore",
            task.ledger.piece,
            task.ledger.export,
            loaded.table.display_name()
        )));
    }
    let rows = loaded
        .rows
        .and_then(|r| u64::try_from(r).ok())
        .ok_or_else(|| {
            TaskError::fatal(format!(
                "the ledger row of piece {:?} has no row count; delete it from \
             pgfleet_restore.ledger after checking the table, then retry",
                task.ledger.piece
            ))
        })?;
    Ok(ChunkStats {
        rows,
        ..ChunkStats::default()
    })
}

fn ledger_error(e: &tokio_postgres::Error) -> TaskError {
    let err = pg_error(e);
    let missing = e
        .as_db_error()
        .is_some_and(|d| matches!(d.code().code(), "42P01" | "3F000"));
    if missing {
        err.context(
            "the ledger table pgfleet_restore.ledger is missing in the target \
             (the coordinator creates it at job start; run its DDL, then retry)",
        )
    } else {
        err.context("updating the restore ledger")
    }
}

fn copy_statement(task: &RestoreFile) -> String {
    copy_statement_into(task, &task.table.quoted())
}

/// The piece's COPY into `relation` (quoted SQL): its columns, and its filter if any.
pub fn copy_statement_into(task: &RestoreFile, relation: &str) -> String {
    let cols: Vec<String> = task
        .columns
        .iter()
        .map(|c| quote_ident(&c.target))
        .collect();
    let filter = match &task.filter {
        Some(condition) => format!(" WHERE {condition}"),
        None => String::new(),
    };
    format!(
        "COPY {relation} ({}) FROM STDIN (FORMAT text){filter}",
        cols.join(", ")
    )
}

/// Load the piece of `task` with `copy` (see [`copy_statement_into`]) in `session`, without
/// the ledger: what `coordinator verify` uses to have the target parse an export's rows into a
/// temporary table. Returns the COPY's row count.
pub async fn copy_piece(
    ctx: &Clients,
    session: &Session,
    task: &RestoreFile,
    copy: &str,
) -> Result<u64, TaskError> {
    load(session, task, copy, ObjectReader::new(ctx, &task.object)).await
}

/// Stream the selected row groups into COPY; returns the COPY's row count.
async fn load(
    session: &Session,
    task: &RestoreFile,
    copy: &str,
    reader: ObjectReader,
) -> Result<u64, TaskError> {
    // Read the footer and check the columns before COPY starts.
    let opened = reader::open(reader, &task.columns, task.row_groups).await?;
    if opened.footer_rows != task.expected_rows {
        // Fail before loading anything rather than after loading it all.
        return Err(TaskError::fatal(format!(
            "the Parquet footer of {} counts {} rows in the selected row groups but the task \
             expects {}; nothing loaded. The file changed since the restore was planned: \
             re-plan the restore",
            task.object.key, opened.footer_rows, task.expected_rows
        )));
    }
    let names: Vec<&str> = task.columns.iter().map(|c| c.target.as_str()).collect();
    let positions = opened.positions;
    let mut batches = opened.stream;
    // Refuse unsupported types before COPY starts: try the encoder on empty columns.
    let schema = batches.schema().clone();
    let empty = positions
        .iter()
        .map(|&p| match schema.fields().get(p) {
            Some(f) => Ok(arrow::array::new_empty_array(f.data_type())),
            None => Err(TaskError::fatal(
                "the Parquet reader returned fewer columns than asked for",
            )),
        })
        .collect::<Result<Vec<_>, _>>()?;
    let empty = decode_columns(task, &empty)?;
    if let Err(e) = RowEncoder::new(&empty, &names) {
        return Err(unsupported(task, &e));
    }

    let sink = session
        .client()
        .copy_in::<_, bytes::Bytes>(copy)
        .await
        .map_err(|e| copy_error(&e))?;
    let mut sink = pin!(sink);
    let mut buf = BytesMut::with_capacity(FLUSH_BYTES + FLUSH_BYTES / 4);
    // On any early return the sink is dropped unfinished, which aborts the COPY (CopyFail);
    // the caller then rolls the transaction back.
    while let Some(batch) = batches.next().await {
        let batch = batch?;
        let mut arrays: Vec<ArrayRef> = Vec::with_capacity(positions.len());
        for &p in &positions {
            let column = batch.columns().get(p).ok_or_else(|| {
                TaskError::fatal("the Parquet reader returned fewer columns than asked for")
            })?;
            arrays.push(column.clone());
        }
        let arrays = decode_columns(task, &arrays)?;
        let encoder = match RowEncoder::new(&arrays, &names) {
            Ok(encoder) => encoder,
            Err(e) => return Err(unsupported(task, &e)),
        };
        let mut row = 0;
        while row < encoder.rows() {
            row = encoder.encode(row, &mut buf, FLUSH_BYTES);
            if buf.len() >= FLUSH_BYTES {
                let waited = std::time::Instant::now();
                let sent = sink.send(buf.split().freeze()).await;
                crate::metrics::phase("restore", "target", waited);
                sent.map_err(|e| copy_error(&e))?;
            }
        }
    }
    if !buf.is_empty() {
        sink.send(buf.split().freeze())
            .await
            .map_err(|e| copy_error(&e))?;
    }
    sink.as_mut().finish().await.map_err(|e| copy_error(&e))
}

/// A batch's columns (in COPY order) with dictionaries decoded.
fn decode_columns(task: &RestoreFile, arrays: &[ArrayRef]) -> Result<Vec<ArrayRef>, TaskError> {
    arrays
        .iter()
        .zip(&task.columns)
        .map(|(a, c)| {
            decode_dictionary(a).map_err(|e| {
                TaskError::fatal(format!(
                    "decoding the dictionary-encoded Parquet field {:?}: {e}; the file is \
                     probably corrupt: re-export it",
                    c.source
                ))
            })
        })
        .collect()
}

fn unsupported(task: &RestoreFile, e: &copy_text::UnsupportedType) -> TaskError {
    let field = task
        .columns
        .iter()
        .find(|c| c.target == e.column)
        .map(|c| format!(" (Parquet field {:?})", c.source))
        .unwrap_or_default();
    TaskError::fatal(format!("{e}{field}"))
}

/// A failed COPY: the server's error (data it rejects is fatal), plus where in the piece.
fn copy_error(e: &tokio_postgres::Error) -> TaskError {
    let err = pg_error(e);
    let place = e.as_db_error().and_then(|d| d.where_()).map(str::to_string);
    let err = match place {
        Some(place) => TaskError {
            message: format!("{} (at {place})", err.message),
            ..err
        },
        None => err,
    };
    let class = e.as_db_error().map(|d| &d.code().code()[..2]);
    if err.retryable {
        err.context("COPY failed")
    } else if matches!(class, Some("22" | "23")) {
        // Data exceptions and integrity constraint violations.
        err.context(
            "COPY failed: PostgreSQL rejected the data (fix the data or the target table, then \
             retry; nothing was loaded)",
        )
    } else {
        err.context(
            "COPY failed (check that the target table and its columns match the task, then \
             retry; nothing was loaded)",
        )
    }
}

/// Check out a connection to the target and open the load transaction.
async fn begin(ctx: &Clients, task: &RestoreFile) -> Result<Session, TaskError> {
    let conn = ctx.pg(&task.target).await?;
    // Durability comes from COMMIT of the whole piece; losing the last few commits in a
    // crash only means their pieces load again (their ledger rows go with them).
    let begin = "BEGIN; SET LOCAL synchronous_commit = off";
    let mut session = Session::begin(conn, begin)
        .await
        .map_err(|e| e.context("starting the load transaction"))?;
    session
        .set_statement_timeout(task.target.statement_timeout.as_deref())
        .await?;
    Ok(session)
}

async fn commit(session: Session) -> Result<(), TaskError> {
    session
        .commit()
        .await
        .map_err(|e| e.context("committing the load transaction"))
}
