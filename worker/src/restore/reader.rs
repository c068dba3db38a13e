//! Streaming one Parquet object with ranged reads: an [`AsyncFileReader`] over
//! [`fleet_io::objects::get_range`] (S3 or a local folder), the footer in one read of the object's
//! tail (its size is known from the listing), column chunks of one row group at a time with
//! nearby ranges coalesced into one request.
//!
//! Errors from the object store keep their classification (they travel through the Parquet
//! reader as `ParquetError::External(TaskError)`); anything else the reader reports means the
//! file is corrupt or not Parquet, which no retry fixes. A panic inside the Parquet decoder on a
//! malformed file is turned into such an error too.

use arrow::record_batch::RecordBatch;
use bytes::Bytes;
use fleet_io::clients::Clients;
use fleet_io::error::{io_error, TaskError};
use fleet_io::objects::get_range;
use futures::future::BoxFuture;
use futures::{FutureExt, Stream, StreamExt, TryStreamExt};
use parquet::arrow::arrow_reader::ArrowReaderOptions;
use parquet::arrow::async_reader::{AsyncFileReader, ParquetRecordBatchStream};
use parquet::arrow::{ParquetRecordBatchStreamBuilder, ProjectionMask};
use parquet::errors::ParquetError;
use parquet::file::metadata::{ParquetMetaData, ParquetMetaDataReader};
use protocol::{ObjectLocation, ObjectRef, RestoreColumn, RowGroupRange};
use std::ops::Range;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

/// First read of a file: its last 64 KiB, which holds the whole footer of typical files.
const FOOTER_PREFETCH: usize = 64 * 1024;
/// Ranges closer than this are fetched in one request (the gap is read and dropped).
const COALESCE_GAP: u64 = 1024 * 1024;
/// Ranged requests in flight for one row group.
const FETCH_CONCURRENCY: usize = 8;
/// Rows per Arrow batch.
pub const BATCH_ROWS: usize = 8192;

/// Ranged reads of one object, counting the bytes read.
#[derive(Clone)]
pub struct ObjectReader {
    ctx: Clients,
    object: Arc<ObjectRef>,
    bytes_read: Arc<AtomicU64>,
    /// The object's last bytes, read with the footer: data ranges inside it (a small file's
    /// whole content, the end of the last row group) are served from here, not read again.
    tail: Option<(u64, Bytes)>,
}

impl ObjectReader {
    pub fn new(ctx: &Clients, object: &ObjectRef) -> Self {
        Self {
            ctx: ctx.clone(),
            object: Arc::new(object.clone()),
            bytes_read: Arc::new(AtomicU64::new(0)),
            tail: None,
        }
    }

    /// A counter of the bytes read so far (shared with every clone).
    pub fn bytes_read(&self) -> Arc<AtomicU64> {
        self.bytes_read.clone()
    }

    /// For a local file, compare its size with the listing's now, so a file that changed since
    /// planning gets a precise error rather than a confusing read failure. (On S3 a short
    /// object shows up as a short read, see `fetch`.)
    async fn check_size(&self) -> Result<(), TaskError> {
        let o = &self.object;
        let ObjectLocation::File { root } = &o.location else {
            return Ok(());
        };
        let path = fleet_io::sink::file::resolve(root, &o.key)?;
        let meta = tokio::fs::metadata(&path).await.map_err(|e| {
            let err = io_error(format_args!("reading {}", path.display()), &e);
            if e.kind() == std::io::ErrorKind::NotFound {
                TaskError::fatal(format!("{}; re-plan the restore", err.message))
            } else {
                err
            }
        })?;
        if meta.len() != o.size {
            return Err(TaskError::fatal(format!(
                "the file is {} bytes but was {} bytes when the restore was planned (was it \
                 replaced or truncated?); re-plan the restore",
                meta.len(),
                o.size
            )));
        }
        Ok(())
    }

    /// `range` from the cached tail, if it lies inside it.
    fn cached(&self, range: &Range<u64>) -> Option<Bytes> {
        let (start, tail) = self.tail.as_ref()?;
        if range.start < *start || range.end > start + tail.len() as u64 {
            return None;
        }
        let from = usize::try_from(range.start - start).ok()?;
        let to = usize::try_from(range.end - start).ok()?;
        Some(tail.slice(from..to))
    }

    /// Remember a read that ends at the end of the object (the footer read).
    fn remember_tail(&mut self, range: &Range<u64>, data: &Bytes) {
        if range.end == self.object.size {
            self.tail = Some((range.start, data.clone()));
        }
    }

    async fn fetch(&self, range: Range<u64>) -> Result<Bytes, TaskError> {
        if let Some(hit) = self.cached(&range) {
            return Ok(hit);
        }
        let o = &self.object;
        if range.end > o.size {
            return Err(TaskError::fatal(format!(
                "the Parquet reader asked for bytes {}..{} of an object of {} bytes: the file is \
                 corrupt; re-export it or leave it out of the restore",
                range.start, range.end, o.size
            )));
        }
        let want = range.end - range.start;
        let data = get_range(&self.ctx, &o.location, &o.s3, &o.key, range)
            .await
            .map_err(|e| {
                if e.message.contains("NoSuchKey") {
                    TaskError::fatal(format!(
                        "{}; the object is gone since the restore was planned: re-plan the restore",
                        e.message
                    ))
                } else {
                    e
                }
            })?;
        if data.len() as u64 != want {
            return Err(TaskError::fatal(format!(
                "read {} bytes where {want} were asked for: the object is shorter than the {} \
                 bytes listed when the restore was planned (was it replaced or truncated?); \
                 re-plan the restore",
                data.len(),
                o.size
            )));
        }
        self.bytes_read.fetch_add(want, Ordering::Relaxed);
        Ok(data)
    }
}

fn external(e: TaskError) -> ParquetError {
    ParquetError::External(Box::new(e))
}

impl AsyncFileReader for ObjectReader {
    fn get_bytes(&mut self, range: Range<u64>) -> BoxFuture<'_, parquet::errors::Result<Bytes>> {
        async move {
            let data = self.fetch(range.clone()).await.map_err(external)?;
            self.remember_tail(&range, &data);
            Ok(data)
        }
        .boxed()
    }

    fn get_byte_ranges(
        &mut self,
        ranges: Vec<Range<u64>>,
    ) -> BoxFuture<'_, parquet::errors::Result<Vec<Bytes>>> {
        async move {
            let merged = coalesce(&ranges, COALESCE_GAP);
            let this = &*self;
            let fetched: Vec<Bytes> = futures::stream::iter(merged.iter().cloned())
                .map(|r| this.fetch(r))
                .buffered(FETCH_CONCURRENCY)
                .try_collect()
                .await
                .map_err(external)?;
            ranges
                .iter()
                .map(|r| slice_of(&merged, &fetched, r))
                .collect::<Option<Vec<_>>>()
                .ok_or_else(|| ParquetError::General("coalesced range lookup failed".into()))
        }
        .boxed()
    }

    fn get_metadata<'a>(
        &'a mut self,
        options: Option<&'a ArrowReaderOptions>,
    ) -> BoxFuture<'a, parquet::errors::Result<Arc<ParquetMetaData>>> {
        async move {
            let size = self.object.size;
            let metadata = ParquetMetaDataReader::new()
                .with_metadata_options(options.map(|o| o.metadata_options().clone()))
                .with_prefetch_hint(Some(FOOTER_PREFETCH))
                .load_and_finish(&mut *self, size)
                .await?;
            Ok(Arc::new(metadata))
        }
        .boxed()
    }
}

/// Sorted, merged ranges covering `ranges`, merging neighbours at most `gap` bytes apart.
fn coalesce(ranges: &[Range<u64>], gap: u64) -> Vec<Range<u64>> {
    let mut sorted: Vec<Range<u64>> = ranges.iter().filter(|r| r.end > r.start).cloned().collect();
    sorted.sort_by_key(|r| r.start);
    let mut out: Vec<Range<u64>> = Vec::with_capacity(sorted.len());
    for r in sorted {
        match out.last_mut() {
            Some(last) if r.start <= last.end.saturating_add(gap) => {
                last.end = last.end.max(r.end);
            }
            _ => out.push(r),
        }
    }
    out
}

/// The bytes of `want` out of the merged fetches (zero-copy).
fn slice_of(merged: &[Range<u64>], fetched: &[Bytes], want: &Range<u64>) -> Option<Bytes> {
    if want.end <= want.start {
        return Some(Bytes::new());
    }
    let i = merged
        .partition_point(|m| m.start <= want.start)
        .checked_sub(1)?;
    let m = merged.get(i)?;
    if want.end > m.end {
        return None;
    }
    let from = usize::try_from(want.start - m.start).ok()?;
    let to = usize::try_from(want.end - m.start).ok()?;
    fetched
        .get(i)
        .filter(|b| to <= b.len())
        .map(|b| b.slice(from..to))
}

/// A Parquet reader error as a task error: object-store errors keep their classification;
/// everything else is a corrupt or unreadable file.
pub fn parquet_error(e: ParquetError) -> TaskError {
    if let ParquetError::External(inner) = &e {
        if let Some(t) = inner.downcast_ref::<TaskError>() {
            return t.clone();
        }
    }
    TaskError::fatal(format!(
        "the Parquet file is corrupt or unreadable ({e}); re-export it or leave it out of the \
         restore"
    ))
}

fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".into())
}

fn crashed(payload: &(dyn std::any::Any + Send)) -> TaskError {
    TaskError::fatal(format!(
        "the Parquet decoder failed on this file ({}); the file is probably corrupt: re-export \
         it or leave it out of the restore",
        panic_message(payload)
    ))
}

/// The opened file: a stream of record batches plus, for each task column, the index of its
/// field in those batches.
pub struct OpenedFile {
    pub stream: BatchStream,
    /// `columns[i]` (task order) is batch column `positions[i]`.
    pub positions: Vec<usize>,
    /// Row groups in the file.
    pub row_groups: usize,
    /// Rows the footer promises for the selected row groups.
    pub footer_rows: u64,
}

/// Read the footer, check the task against it and start streaming the selected row groups with
/// only the needed fields.
pub async fn open(
    reader: ObjectReader,
    columns: &[RestoreColumn],
    row_groups: Option<RowGroupRange>,
) -> Result<OpenedFile, TaskError> {
    reader.check_size().await?;
    let builder = AssertUnwindSafe(ParquetRecordBatchStreamBuilder::new_with_options(
        reader,
        ArrowReaderOptions::new(),
    ))
    .catch_unwind()
    .await
    .map_err(|p| crashed(p.as_ref()))?
    .map_err(parquet_error)?;

    let total_groups = builder.metadata().num_row_groups();
    let selected: Range<usize> = match row_groups {
        None => 0..total_groups,
        Some(r) => {
            let (start, end) = (r.start as usize, r.end as usize);
            if start > end || end > total_groups {
                return Err(TaskError::fatal(format!(
                    "row groups {start}..{end} are not in the file, which has {total_groups}; \
                     the file changed since the restore was planned: re-plan the restore"
                )));
            }
            start..end
        }
    };
    let footer_rows: u64 = selected
        .clone()
        .filter_map(|i| builder.metadata().row_groups().get(i))
        .map(|g| u64::try_from(g.num_rows()).unwrap_or(0))
        .sum();

    // Map task columns to top-level fields by NAME; the projection keeps only those.
    let schema = builder.schema().clone();
    let mut roots = Vec::with_capacity(columns.len());
    for c in columns {
        match schema.fields().iter().position(|f| f.name() == &c.source) {
            Some(i) => roots.push(i),
            None => {
                let present: Vec<&str> =
                    schema.fields().iter().map(|f| f.name().as_str()).collect();
                return Err(TaskError::fatal(format!(
                    "the Parquet file has no field {:?} (for column {:?}); its fields are {}; \
                     check the export and the column mapping, then re-plan the restore",
                    c.source,
                    c.target,
                    present.join(", ")
                )));
            }
        }
    }
    let mut projected: Vec<usize> = roots.clone();
    projected.sort_unstable();
    projected.dedup();
    // Batches carry the projected fields in file order.
    let positions = roots
        .iter()
        .map(|r| projected.binary_search(r).unwrap_or(0))
        .collect();
    let mask = ProjectionMask::roots(builder.parquet_schema(), projected.iter().copied());

    let stream = builder
        .with_row_groups(selected.collect())
        .with_projection(mask)
        .with_batch_size(BATCH_ROWS)
        .build()
        .map_err(parquet_error)?;
    Ok(OpenedFile {
        stream: BatchStream {
            inner: stream,
            done: false,
        },
        positions,
        row_groups: total_groups,
        footer_rows,
    })
}

/// Record batches of the selected row groups; decoder panics become errors.
pub struct BatchStream {
    inner: ParquetRecordBatchStream<ObjectReader>,
    done: bool,
}

impl BatchStream {
    /// The batches' schema: the projected fields, in file order.
    pub fn schema(&self) -> &arrow::datatypes::SchemaRef {
        self.inner.schema()
    }
}

impl Stream for BatchStream {
    type Item = Result<RecordBatch, TaskError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.done {
            return Poll::Ready(None);
        }
        let polled = std::panic::catch_unwind(AssertUnwindSafe(|| self.inner.poll_next_unpin(cx)));
        match polled {
            Ok(Poll::Ready(Some(Err(e)))) => {
                self.done = true;
                Poll::Ready(Some(Err(parquet_error(e))))
            }
            Ok(Poll::Ready(Some(Ok(batch)))) => Poll::Ready(Some(Ok(batch))),
            Ok(Poll::Ready(None)) => {
                self.done = true;
                Poll::Ready(None)
            }
            Ok(Poll::Pending) => Poll::Pending,
            Err(payload) => {
                self.done = true;
                Poll::Ready(Some(Err(crashed(payload.as_ref()))))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn coalesces_near_ranges_and_slices_back() {
        let ranges = vec![100..200, 0..50, 250..300, 5_000_000..5_000_010, 150..180];
        let merged = coalesce(&ranges, 100);
        assert_eq!(merged, vec![0..300, 5_000_000..5_000_010]);
        let fetched: Vec<Bytes> = merged
            .iter()
            .map(|r| {
                Bytes::from(
                    (r.start..r.end)
                        .map(|i| (i % 251) as u8)
                        .collect::<Vec<_>>(),
                )
            })
            .collect();
        for r in &ranges {
            let got = slice_of(&merged, &fetched, r).unwrap();
            let want: Vec<u8> = (r.start..r.end).map(|i| (i % 251) as u8).collect();
            assert_eq!(&got[..], &want[..], "{r:?}");
        }
        assert_eq!(slice_of(&merged, &fetched, &(290..400)), None);
        assert_eq!(slice_of(&merged, &fetched, &(7..7)), Some(Bytes::new()));
        assert!(coalesce(&[], 10).is_empty());
    }

    #[test]
    fn object_store_errors_keep_their_class() {
        let e = parquet_error(external(TaskError::retryable(
            "S3 GetObject failed: SlowDown",
        )));
        assert!(e.retryable);
        assert_eq!(e.message, "S3 GetObject failed: SlowDown");
        let e = parquet_error(ParquetError::General(
            "Invalid Parquet file. Corrupt footer".into(),
        ));
        assert!(!e.retryable);
        assert!(e.message.contains("Corrupt footer"), "{}", e.message);
    }
}
