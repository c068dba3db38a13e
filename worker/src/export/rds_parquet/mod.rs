//! The `rds-parquet` format: one chunk as one gzip-compressed Parquet file, typed the way an AWS
//! RDS snapshot export types it.
//!
//! ```text
//! COPY CSV bytes → parse (one value per field) → builders (one Arrow builder per column)
//!   → every BATCH_ROWS rows or BATCH_BYTES of values, a RawBatch
//!   → pipeline (blocking thread: UTF-8 check, RecordBatch, one row group in file) → parts
//! ```
//!
//! `COPY ... (FORMAT csv)` bytes are parsed by a small streaming state machine (`parse`)
//! straight into Arrow builders (`builders`, one per column, chosen from the column's
//! `pg_type.typname`, see `columns`); every [`BATCH_ROWS`] rows or [`BATCH_BYTES`] of values
//! the builders become one `RecordBatch`, which parquet's `ArrowWriter` writes as one row group
//! into an in-memory sink (`file`). Full parts are cut from that sink and handed to the
//! `ObjectWriter`, so memory stays bounded by about two batches plus a part, whatever the chunk
//! size.
//!
//! Parsing runs on the async task (it is cheap and never waits); Parquet encoding and gzip run
//! on a blocking thread (`pipeline`), overlapping with the parsing of the next batch.
//! NULL (an empty unquoted CSV field) and "" (`""`) stay distinct.

mod batcher;
mod builders;
mod columns;
mod file;
mod parse;
mod pipeline;

pub use batcher::Batcher;
pub use builders::RawBatch;
pub use columns::{arrow_schema, column_specs, ColumnKind, ColumnSpec};
pub use file::ParquetFile;

use arrow::datatypes::SchemaRef;
use bytes::Bytes;
use fleet_io::error::TaskError;
use pipeline::Pipeline;

/// Rows per record batch, and so per row group.
pub const BATCH_ROWS: usize = 64 * 1024;
/// A batch is also cut when its values reach this many bytes (wide rows).
pub const BATCH_BYTES: usize = 32 << 20;

/// Session settings that make PostgreSQL's text output portable and exact: hex bytea (which the
/// decoder expects), shortest-exact floats (exact on every version), ISO dates and
/// postgres-style intervals (parseable whatever the target's DateStyle / IntervalStyle).
/// Local to the chunk's transaction.
pub(super) const SESSION_SETTINGS: &str = "SELECT set_config('bytea_output', 'hex', true), \
     set_config('extra_float_digits', '3', true), \
     set_config('DateStyle', 'ISO', true), \
     set_config('IntervalStyle', 'postgres', true)";

/// The export data path's encoder: CSV in on the async task, Parquet parts out of the blocking
/// thread that encodes the previous batch.
pub struct RdsParquetEncoder {
    batcher: Batcher,
    schema: SchemaRef,
    pipeline: Pipeline,
    /// The rest of a COPY message after the record that filled the batch: parsed first, once
    /// that batch is handed to the pipeline.
    leftover: Option<Bytes>,
}

impl RdsParquetEncoder {
    /// Check the task's columns (every one typed, none transformed) and set up the file.
    pub fn new(specs: &[ColumnSpec], gzip_level: u32, part_size: u64) -> Result<Self, TaskError> {
        let batcher = Batcher::new(specs);
        let schema = batcher.schema().clone();
        let file = ParquetFile::new(schema.clone(), gzip_level, part_size)?;
        Ok(Self {
            batcher,
            schema,
            pipeline: Pipeline::new(file),
            leftover: None,
        })
    }

    /// Parse one COPY message. When it fills the batch, the rest is kept for later and
    /// [`is_full`](Self::is_full) says to stop feeding.
    pub fn feed(&mut self, data: Bytes) -> Result<(), TaskError> {
        let n = self.batcher.feed(&data)?;
        if n < data.len() {
            self.leftover = Some(data.slice(n..));
        }
        Ok(())
    }

    /// The batch is full: take the parts before feeding more.
    pub fn is_full(&self) -> bool {
        self.batcher.is_full()
    }

    /// Hand a full batch (or, once the input `ended`, the last one) to the encoder thread, and
    /// append the parts the previous batch completed; then parse what was left over.
    pub async fn take_parts(
        &mut self,
        ended: bool,
        parts: &mut Vec<Bytes>,
    ) -> Result<(), TaskError> {
        if self.batcher.is_full() || (ended && self.batcher.buffered_rows() > 0) {
            parts.extend(
                self.pipeline
                    .submit(self.batcher.take(), &self.schema)
                    .await?,
            );
            if let Some(rest) = self.leftover.take() {
                self.feed(rest)?;
            }
        }
        Ok(())
    }

    /// Check that the input ended on a record boundary; returns the row count.
    pub fn end_of_input(&self) -> Result<u64, TaskError> {
        self.batcher.finish()
    }

    /// Wait for the last batch and write the footer; returns every remaining part.
    pub async fn finish(mut self) -> Result<Vec<Bytes>, TaskError> {
        self.pipeline.finish().await
    }
}

/// The whole encoder, synchronously: CSV in, Parquet parts out. The export path splits it
/// across threads ([`RdsParquetEncoder`]); this is for tests and measurements.
pub struct ParquetEncoder {
    batcher: Batcher,
    file: ParquetFile,
}

impl ParquetEncoder {
    pub fn new(specs: &[ColumnSpec], gzip_level: u32, part_size: u64) -> Result<Self, TaskError> {
        let batcher = Batcher::new(specs);
        let file = ParquetFile::new(batcher.schema().clone(), gzip_level, part_size)?;
        Ok(Self { batcher, file })
    }

    /// Encode a piece of CSV; full parts are appended to `parts`.
    pub fn feed(&mut self, mut input: &[u8], parts: &mut Vec<Bytes>) -> Result<(), TaskError> {
        while !input.is_empty() {
            let n = self.batcher.feed(input)?;
            input = &input[n..];
            if self.batcher.is_full() {
                self.flush_batch(parts)?;
            }
        }
        Ok(())
    }

    fn flush_batch(&mut self, parts: &mut Vec<Bytes>) -> Result<(), TaskError> {
        let batch = self.batcher.take().finish(self.batcher.schema())?;
        self.file.write(&batch)?;
        while let Some(p) = self.file.next_part() {
            parts.push(p);
        }
        Ok(())
    }

    /// Finish the file; returns the row count, and appends the remaining parts.
    pub fn finish(mut self, parts: &mut Vec<Bytes>) -> Result<u64, TaskError> {
        let rows = self.batcher.finish()?;
        if self.batcher.buffered_rows() > 0 {
            self.flush_batch(parts)?;
        }
        parts.extend(self.file.finish()?);
        Ok(rows)
    }
}

#[cfg(test)]
mod tests;
