//! Export one chunk: `COPY (SELECT cols FROM t WHERE range) TO STDOUT (FORMAT csv)` in a
//! READ ONLY repeatable-read transaction → header + per-field transform → encoder → sink; or,
//! for `rds-parquet`, → typed Arrow batches → gzip Parquet → sink (see [`parquet`]).
//!
//! Memory per chunk is bounded by the encoder's current part plus the sink's window, whatever
//! the table size. Either the whole object appears, or nothing (the sink aborts on any error).

pub mod parquet;
pub mod source;
mod sql;
pub mod written;

use crate::context::WorkerContext;
use crate::encode::Encoder;
use crate::error::{io_error, pg_error, TaskError};
use crate::sink::{object_url, ObjectWriter, WriterOptions};
use crate::transform::{header_row, CsvTransformer};
use bytes::Bytes;
use futures::Stream;
use protocol::{ExportChunk, OutputFormat};
use std::future::poll_fn;
use std::pin::{pin, Pin};
use std::task::Poll;

pub use sql::{copy_query, range_predicate, validate_snapshot_id};

/// Stop draining already-buffered COPY data after this much: hands parts to the sink sooner
/// and bounds the CPU time between awaits (gzip runs inline at ~70 MB/s, so ~4 ms).
const BATCH_BYTES: usize = 256 * 1024;
const MIN_PART_SIZE: u64 = protocol::spec::MIN_PART_SIZE;
const MAX_PART_SIZE: u64 = 5 << 30;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ChunkStats {
    /// Data rows (the header row is not counted).
    pub rows: u64,
    /// Bytes of the object as stored (after gzip).
    pub bytes: u64,
}

/// Run one export task. Errors name the table and the object and say whether a retry can help.
pub async fn export_chunk(
    ctx: &WorkerContext,
    task: &ExportChunk,
) -> Result<ChunkStats, TaskError> {
    export_chunk_as(ctx, task, None).await
}

/// [`export_chunk`] on behalf of task `task_id`: the object is tagged with it, and an object
/// this task already wrote (a duplicate delivery) is reported, not written again.
pub async fn export_chunk_as(
    ctx: &WorkerContext,
    task: &ExportChunk,
    task_id: Option<&str>,
) -> Result<ChunkStats, TaskError> {
    let url = object_url(&task.output.location, &task.output.key);
    let table = task.table.display_name();
    let started = std::time::Instant::now();
    let result = run(ctx, task, task_id).await;
    match &result {
        Ok(stats) => tracing::debug!(
            table = %table,
            object = %url,
            rows = stats.rows,
            bytes = stats.bytes,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "exported chunk"
        ),
        Err(e) => tracing::debug!(table = %table, object = %url, error = %e, "chunk failed"),
    }
    result.map_err(|e| e.context(format_args!("exporting {table} to {url}")))
}

async fn run(
    ctx: &WorkerContext,
    task: &ExportChunk,
    task_id: Option<&str>,
) -> Result<ChunkStats, TaskError> {
    // Everything that can be checked without I/O first: a bad task never opens anything.
    let query = copy_query(task)?;
    if let Some(id) = &task.snapshot {
        validate_snapshot_id(id)?;
    }
    check_part_size(task)?;
    // rds-parquet: typed columns, checked here too (no object is opened for a bad task).
    let parquet_columns = match task.output.format {
        OutputFormat::RdsParquet => Some(parquet::prepare(task)?),
        OutputFormat::Csv | OutputFormat::CsvGz => None,
    };
    if let Some(id) = task_id {
        if let Some(stats) = written::already_written(ctx, task, id).await? {
            tracing::info!(
                task = id,
                rows = stats.rows,
                "part already written by an earlier delivery of this task; not exporting it again"
            );
            return Ok(stats);
        }
    }
    let parts_in_flight = usize::try_from(task.output.parts_in_flight.max(1)).unwrap_or(1);
    let mut writer = ObjectWriter::open(
        ctx,
        &task.output.location,
        &task.output.key,
        &WriterOptions {
            s3: &task.output.s3,
            content_type: task.output.format.content_type(),
            parts_in_flight,
            task_id,
        },
    )
    .await?;
    let streamed = match &parquet_columns {
        Some(columns) => parquet::stream_chunk(ctx, task, columns, &query, &mut writer).await,
        None => stream_chunk(ctx, task, &query, &mut writer).await,
    };
    match streamed {
        Ok(rows) => {
            let bytes = writer.finish().await?;
            Ok(ChunkStats { rows, bytes })
        }
        Err(e) => {
            writer.abort().await;
            Err(e)
        }
    }
}

/// S3 refuses parts under 5 MiB (except the last) and over 5 GiB; say so before uploading
/// anything rather than after streaming the whole chunk.
fn check_part_size(task: &ExportChunk) -> Result<(), TaskError> {
    let size = task.output.part_size;
    let is_s3 = matches!(task.output.location, protocol::ObjectLocation::S3 { .. });
    if size == 0 {
        return Err(TaskError::fatal("output part_size must be positive"));
    }
    if is_s3 && !(MIN_PART_SIZE..=MAX_PART_SIZE).contains(&size) {
        return Err(TaskError::fatal(format!(
            "output part_size {size} is outside S3's limits (5 MiB to 5 GiB)"
        )));
    }
    Ok(())
}

/// Stream the chunk into `writer` (all parts written, not yet finished); returns the row count.
async fn stream_chunk(
    ctx: &WorkerContext,
    task: &ExportChunk,
    query: &str,
    writer: &mut ObjectWriter,
) -> Result<u64, TaskError> {
    let out = &task.output;
    let mut encoder = Encoder::new(out.format, out.gzip_level, out.part_size);
    encoder
        .input()
        .extend_from_slice(&header_row(task.columns.iter().map(|c| c.name.as_str())));
    let mut transformer = CsvTransformer::new(task.columns.iter().map(|c| c.transform.as_ref()));

    let mut session = source::begin(ctx, task).await?;
    let stream = match session.client().copy_out(query).await {
        Ok(s) => s,
        Err(e) => {
            session.rollback().await;
            return Err(pg_error(&e));
        }
    };
    let mut stream = pin!(stream);
    loop {
        let waited = std::time::Instant::now();
        let batch = next_batch(stream.as_mut(), &mut transformer, &mut encoder).await;
        crate::metrics::phase("export", "source", waited);
        let ended = match batch {
            Ok(ended) => ended,
            Err(e) => {
                // The server ended the COPY with an error: the connection itself is fine.
                session.rollback().await;
                return Err(pg_error(&e));
            }
        };
        let waited = std::time::Instant::now();
        let emitted = emit_full_parts(&mut encoder, writer).await;
        crate::metrics::phase("export", "upload", waited);
        if let Err(e) = emitted {
            // The COPY may still be streaming; closing the connection is cheaper than
            // draining the rest of the chunk just to return it to the pool.
            session.discard();
            return Err(e);
        }
        if ended {
            break;
        }
    }
    let rows = match transformer.finish() {
        Ok(rows) => rows,
        Err(e) => {
            session.discard();
            return Err(TaskError::retryable(e));
        }
    };
    session.commit().await?;

    let parts = encoder
        .finish()
        .map_err(|e| io_error("finishing the encoder", &e))?;
    for part in parts {
        writer.write_part(part).await?;
    }
    Ok(rows)
}

/// Process every COPY message that is already buffered (up to `BATCH_BYTES`), waiting only
/// when none is. Returns true at the end of the COPY.
async fn next_batch<S>(
    mut stream: Pin<&mut S>,
    transformer: &mut CsvTransformer,
    encoder: &mut Encoder,
) -> Result<bool, tokio_postgres::Error>
where
    S: Stream<Item = Result<Bytes, tokio_postgres::Error>>,
{
    let mut taken = 0usize;
    poll_fn(|cx| loop {
        match stream.as_mut().poll_next(cx) {
            Poll::Ready(Some(Ok(data))) => {
                transformer.feed(&data, encoder.input());
                taken += data.len();
                if taken >= BATCH_BYTES {
                    return Poll::Ready(Ok(false));
                }
            }
            Poll::Ready(Some(Err(e))) => return Poll::Ready(Err(e)),
            Poll::Ready(None) => return Poll::Ready(Ok(true)),
            Poll::Pending if taken > 0 => return Poll::Ready(Ok(false)),
            Poll::Pending => return Poll::Pending,
        }
    })
    .await
}

async fn emit_full_parts(
    encoder: &mut Encoder,
    writer: &mut ObjectWriter,
) -> Result<(), TaskError> {
    encoder.encode().map_err(|e| io_error("compressing", &e))?;
    while let Some(part) = encoder.next_part() {
        writer.write_part(part).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use protocol::{
        ChunkRange, ColumnExport, ObjectLocation, OutputFormat, OutputTarget, PgConn,
        QualifiedName, S3Options,
    };

    fn task(location: ObjectLocation, part_size: u64) -> ExportChunk {
        ExportChunk {
            source: PgConn::default(),
            snapshot: None,
            table: QualifiedName::new("public", "t"),
            only: true,
            columns: vec![ColumnExport {
                name: "id".into(),
                transform: None,
                pg_type: None,
            }],
            range: ChunkRange::All,
            output: OutputTarget {
                location,
                key: "k".into(),
                format: OutputFormat::Csv,
                gzip_level: 6,
                part_size,
                parts_in_flight: 2,
                s3: S3Options::default(),
            },
        }
    }

    #[test]
    fn part_size_limits() {
        let s3 = ObjectLocation::S3 {
            bucket: "b".into(),
            prefix: String::new(),
        };
        let file = ObjectLocation::File {
            root: "/tmp".into(),
        };
        assert!(check_part_size(&task(s3.clone(), MIN_PART_SIZE)).is_ok());
        assert!(
            !check_part_size(&task(s3.clone(), 1 << 20))
                .unwrap_err()
                .retryable
        );
        assert!(check_part_size(&task(s3, 6 << 30)).is_err());
        assert!(check_part_size(&task(file.clone(), 1 << 20)).is_ok());
        assert!(check_part_size(&task(file, 0)).is_err());
    }
}
