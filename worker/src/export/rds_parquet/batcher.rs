//! CSV in, raw batches out: the parser feeding the batch's builders.

use super::builders::{Columns, RawBatch};
use super::columns::{arrow_schema, ColumnSpec};
use super::parse::Parser;
use super::{BATCH_BYTES, BATCH_ROWS};
use arrow::datatypes::SchemaRef;
use fleet_io::error::TaskError;

/// CSV in, raw batches out.
pub struct Batcher {
    parser: Parser,
    columns: Columns,
    schema: SchemaRef,
    rows: u64,
}

impl Batcher {
    pub fn new(specs: &[ColumnSpec]) -> Self {
        Self::with_limits(specs, BATCH_ROWS, BATCH_BYTES)
    }

    pub fn with_limits(specs: &[ColumnSpec], max_rows: usize, max_bytes: usize) -> Self {
        Self {
            parser: Parser::new(),
            columns: Columns::new(specs.into(), max_rows, max_bytes),
            schema: arrow_schema(specs),
            rows: 0,
        }
    }

    pub fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    /// Parse CSV bytes; returns how many were consumed. Less than all of them means the batch
    /// is full: take it, then feed the rest.
    pub fn feed(&mut self, input: &[u8]) -> Result<usize, TaskError> {
        let before = self.columns.rows;
        let n = self.parser.feed(input, &mut self.columns)?;
        self.rows += (self.columns.rows - before) as u64;
        Ok(n)
    }

    pub fn is_full(&self) -> bool {
        self.columns.is_full()
    }

    pub fn buffered_rows(&self) -> usize {
        self.columns.rows
    }

    pub fn take(&mut self) -> RawBatch {
        self.columns.take()
    }

    /// Complete records parsed so far.
    pub fn rows(&self) -> u64 {
        self.rows
    }

    /// Check that the input ended on a record boundary.
    pub fn finish(&self) -> Result<u64, TaskError> {
        if self.parser.at_record_boundary() {
            Ok(self.rows)
        } else {
            Err(TaskError::retryable(format!(
                "COPY output ended in the middle of a record (after {} complete rows)",
                self.rows
            )))
        }
    }
}
