//! Export one chunk:
//!
//! ```text
//! COPY (SELECT cols FROM t WHERE range) TO STDOUT, in a READ ONLY repeatable-read transaction
//!   (source) → the read loop (stream) → the format's encoder (encoder: csv | rds_parquet)
//!   → parts → the object sink
//! ```
//!
//! Memory per chunk is bounded by the encoder's current part (or batch) plus the sink's window,
//! whatever the table size. Either the whole object appears, or nothing (the sink aborts on
//! any error).

pub mod csv;
pub mod encoder;
pub mod rds_parquet;
pub mod source;
mod sql;
mod stream;
pub mod written;

use encoder::FormatEncoder;
use fleet_io::clients::Clients;
use fleet_io::error::TaskError;
use fleet_io::sink::{object_url, ObjectWriter, WriterOptions};
use protocol::proof::{PartProof, RowFingerprint};
use protocol::ExportChunk;

pub use sql::{copy_query, copy_query_as, range_predicate, validate_snapshot_id, CopyFormat};

const MIN_PART_SIZE: u64 = protocol::spec::MIN_PART_SIZE;
const MAX_PART_SIZE: u64 = 5 << 30;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ChunkStats {
    /// Data rows (the header row is not counted).
    pub rows: u64,
    /// Bytes of the object as stored (after gzip).
    pub bytes: u64,
    /// The object's checksum and the source rows' fingerprint.
    pub proof: PartProof,
}

/// The COPY a task runs on its source: what its rows' fingerprint covers, and what
/// `coordinator verify --source` runs again to recompute it.
pub fn source_query(task: &ExportChunk) -> Result<String, TaskError> {
    copy_query_as(task, FormatEncoder::copy_format(task.output.format))
}

/// Run `query` — a manifest's `source_query`, the COPY a part's rows were read with — again on
/// `source` as an export of `format` runs it (READ ONLY repeatable read, the format's session
/// settings) and fingerprint the rows, for `coordinator verify --source`. Only a
/// `COPY (SELECT …) TO STDOUT (…)` is run (one statement: COPY goes through the extended
/// protocol), READ ONLY: a manifest is a file in a bucket, not a command.
pub async fn fingerprint_source(
    ctx: &Clients,
    source: &protocol::PgConn,
    format: protocol::OutputFormat,
    query: &str,
) -> Result<RowFingerprint, TaskError> {
    use futures::Stream;
    use std::task::Poll;
    if !(query.starts_with("COPY (SELECT ") && query.contains(") TO STDOUT (FORMAT ")) {
        return Err(TaskError::fatal(
            "the manifest's source_query is not a COPY (SELECT …) TO STDOUT pgfleet wrote",
        ));
    }
    let mut session = source::begin_on(ctx, source, None).await?;
    if let Some((statements, what)) = FormatEncoder::session_settings_of(format) {
        session.setup(statements, what).await?;
    }
    let stream = match session.client().copy_out(query).await {
        Ok(s) => s,
        Err(e) => {
            session.rollback().await;
            return Err(fleet_io::error::pg_error(&e));
        }
    };
    let mut stream = std::pin::pin!(stream);
    let mut fingerprint = RowFingerprint::default();
    // Every buffered row is taken in one poll: no await per row.
    let read = std::future::poll_fn(|cx| loop {
        match stream.as_mut().poll_next(cx) {
            Poll::Ready(Some(Ok(row))) => fingerprint.add_row(&row),
            Poll::Ready(Some(Err(e))) => return Poll::Ready(Err(e)),
            Poll::Ready(None) => return Poll::Ready(Ok(())),
            Poll::Pending => return Poll::Pending,
        }
    })
    .await;
    if let Err(e) = read {
        session.rollback().await;
        return Err(fleet_io::error::pg_error(&e));
    }
    session.commit().await?;
    Ok(fingerprint)
}

/// Run one export task. Errors name the table and the object and say whether a retry can help.
pub async fn export_chunk(ctx: &Clients, task: &ExportChunk) -> Result<ChunkStats, TaskError> {
    export_chunk_as(ctx, task, None).await
}

/// [`export_chunk`] on behalf of task `task_id`: the object is tagged with it, and an object
/// this task already wrote (a duplicate delivery) is reported, not written again.
pub async fn export_chunk_as(
    ctx: &Clients,
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
    ctx: &Clients,
    task: &ExportChunk,
    task_id: Option<&str>,
) -> Result<ChunkStats, TaskError> {
    // Everything that can be checked without I/O first: a bad task never opens anything.
    let query = source_query(task)?;
    if let Some(id) = &task.snapshot {
        validate_snapshot_id(id)?;
    }
    check_part_size(task)?;
    let encoder = FormatEncoder::new(task)?;
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
    let streamed = stream::stream_chunk(ctx, task, &query, encoder, &mut writer).await;
    match streamed {
        Ok((rows, fingerprint)) => {
            let written = writer.finish().await?;
            Ok(ChunkStats {
                rows,
                bytes: written.bytes,
                proof: PartProof {
                    crc32c: Some(written.checksum.value()),
                    fingerprint: Some(fingerprint),
                },
            })
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
