//! A part already written by this very task (an earlier delivery of it: RabbitMQ redelivered
//! it after a lost ack, or someone published it again). Such an object carries the task id in
//! its `pgfleet-task` metadata; the worker reports it (rows counted from the object itself)
//! instead of exporting again. So a finished part is never rewritten by a duplicate, and a live
//! source cannot make it disagree with the manifest that already counted it.
//!
//! Only S3 outputs are recognised: local files carry no metadata, and `coordinator run`, the
//! only thing that writes them, never delivers a task twice.

use super::ChunkStats;
use aws_sdk_s3::error::DisplayErrorContext;
use fleet_io::clients::Clients;
use fleet_io::error::TaskError;
use memchr::memchr2_iter;
use parquet::file::metadata::ParquetMetaDataReader;
use protocol::proof::{ObjectChecksum, PartProof};
use protocol::{ExportChunk, ObjectLocation, OutputFormat};
use std::io::Write;

pub use fleet_io::sink::TASK_METADATA;

/// `Some(stats)` when the task's object exists and was written by `task_id`.
pub async fn already_written(
    ctx: &Clients,
    task: &ExportChunk,
    task_id: &str,
) -> Result<Option<ChunkStats>, TaskError> {
    let ObjectLocation::S3 { bucket, .. } = &task.output.location else {
        return Ok(None);
    };
    let client = ctx.s3(&task.output.s3).await;
    let key = task.output.location.key(&task.output.key);
    let head = match client.head_object().bucket(bucket).key(&key).send().await {
        Ok(h) => h,
        Err(e) if e.as_service_error().is_some_and(|s| s.is_not_found()) => return Ok(None),
        Err(e) => {
            return Err(TaskError::retryable(format!(
                "checking for an earlier copy of the part: {}",
                DisplayErrorContext(e)
            )))
        }
    };
    let writer = head
        .metadata()
        .and_then(|m| m.get(TASK_METADATA))
        .map(String::as_str);
    if writer != Some(task_id) {
        return Ok(None);
    }
    let bytes = u64::try_from(head.content_length().unwrap_or(0)).unwrap_or(0);
    // The source was not read this time: no fingerprint. A CSV part is read whole anyway, so
    // its checksum comes along; a Parquet part's footer alone gives its rows.
    let (rows, crc32c) = match task.output.format {
        OutputFormat::RdsParquet => (parquet_rows(ctx, task, bytes).await?, None),
        OutputFormat::Csv => csv_rows(&client, bucket, &key, false).await?,
        OutputFormat::CsvGz => csv_rows(&client, bucket, &key, true).await?,
    };
    Ok(Some(ChunkStats {
        rows,
        bytes,
        proof: PartProof {
            crc32c,
            fingerprint: None,
        },
    }))
}

fn read_error(e: impl std::fmt::Display) -> TaskError {
    TaskError::retryable(format!("reading the earlier copy of the part: {e}"))
}

/// Data rows of a CSV part (header excluded) and the part's checksum, streamed: the object is
/// never held whole.
async fn csv_rows(
    client: &aws_sdk_s3::Client,
    bucket: &str,
    key: &str,
    gzip: bool,
) -> Result<(u64, Option<u32>), TaskError> {
    let out = client
        .get_object()
        .bucket(bucket)
        .key(key)
        .send()
        .await
        .map_err(|e| read_error(DisplayErrorContext(e)))?;
    let mut body = out.body;
    let mut counter = RecordCounter::default();
    let mut gunzip = gzip.then(|| flate2::write::MultiGzDecoder::new(RecordCounter::default()));
    // The SDK's timeouts end at the response head: bound every wait for more of the body.
    let idle = fleet_io::clients::s3_attempt_timeout();
    let mut checksum = ObjectChecksum::default();
    loop {
        let next = tokio::time::timeout(idle, body.try_next())
            .await
            .map_err(|_| read_error(format_args!("no data for {idle:?}")))?;
        let Some(chunk) = next.map_err(read_error)? else {
            break;
        };
        checksum.add(&chunk);
        match &mut gunzip {
            Some(d) => d.write_all(&chunk).map_err(read_error)?,
            None => counter.feed(&chunk),
        }
    }
    if let Some(d) = gunzip {
        counter = d.finish().map_err(read_error)?;
    }
    // Every record, the header included, ends with a newline outside quotes.
    Ok((counter.records.saturating_sub(1), Some(checksum.value())))
}

/// Counts CSV records: newlines outside quoted fields. A doubled quote inside a quoted field
/// toggles the state twice, so it needs no special case.
#[derive(Default)]
struct RecordCounter {
    records: u64,
    in_quotes: bool,
}

impl RecordCounter {
    fn feed(&mut self, data: &[u8]) {
        for i in memchr2_iter(b'"', b'\n', data) {
            if data[i] == b'"' {
                self.in_quotes = !self.in_quotes;
            } else if !self.in_quotes {
                self.records += 1;
            }
        }
    }
}

impl Write for RecordCounter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.feed(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Rows of a Parquet part, from its footer (two small ranged reads).
async fn parquet_rows(ctx: &Clients, task: &ExportChunk, size: u64) -> Result<u64, TaskError> {
    let range = |start: u64, end: u64| {
        fleet_io::objects::get_range(
            ctx,
            &task.output.location,
            &task.output.s3,
            &task.output.key,
            start..end,
        )
    };
    if size < 12 {
        return Err(read_error("object too small to be Parquet"));
    }
    let tail = range(size - 8, size).await?;
    if tail.len() != 8 || &tail[4..] != b"PAR1" {
        return Err(read_error("no Parquet footer"));
    }
    let len = u64::from(u32::from_le_bytes([tail[0], tail[1], tail[2], tail[3]]));
    if len + 8 > size {
        return Err(read_error("Parquet footer length out of range"));
    }
    let footer = range(size - 8 - len, size - 8).await?;
    let meta = ParquetMetaDataReader::decode_metadata(&footer).map_err(read_error)?;
    Ok(u64::try_from(meta.file_metadata().num_rows()).unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use super::RecordCounter;

    #[test]
    fn counts_records_not_newlines_in_quotes() {
        let csv = b"id,note\n1,\"two\nlines\"\n2,\"say \"\"hi\"\"\n\"\n3,\n";
        for split in 0..csv.len() {
            let mut c = RecordCounter::default();
            c.feed(&csv[..split]);
            c.feed(&csv[split..]);
            assert_eq!(c.records, 4, "split at {split}");
        }
    }
}
