//! The `csv` and `csv.gz` formats: a header row, then PostgreSQL's CSV with the per-field
//! transforms applied ([`CsvTransformer`]), plain or as one continuous gzip stream
//! ([`Encoder`]), cut into parts.

use crate::encode::Encoder;
use crate::transform::{header_row, CsvTransformer};
use bytes::Bytes;
use fleet_io::error::{io_error, TaskError};
use protocol::ExportChunk;

pub struct CsvEncoder {
    transformer: CsvTransformer,
    encoder: Encoder,
}

impl CsvEncoder {
    /// The encoder of `task`'s output, with the header row already in it.
    pub fn new(task: &ExportChunk) -> Self {
        let out = &task.output;
        let mut encoder = Encoder::new(out.format, out.gzip_level, out.part_size);
        encoder
            .input()
            .extend_from_slice(&header_row(task.columns.iter().map(|c| c.name.as_str())));
        let transformer = CsvTransformer::new(task.columns.iter().map(|c| c.transform.as_ref()));
        Self {
            transformer,
            encoder,
        }
    }

    /// Transform one piece of COPY output into the encoder's input.
    pub fn feed(&mut self, data: &[u8]) {
        self.transformer.feed(data, self.encoder.input());
    }

    /// Compress what was fed and append every full part.
    pub fn take_parts(&mut self, parts: &mut Vec<Bytes>) -> Result<(), TaskError> {
        self.encoder
            .encode()
            .map_err(|e| io_error("compressing", &e))?;
        while let Some(part) = self.encoder.next_part() {
            parts.push(part);
        }
        Ok(())
    }

    /// Check that the input ended on a record boundary; returns the row count.
    pub fn end_of_input(&self) -> Result<u64, TaskError> {
        self.transformer.finish().map_err(TaskError::retryable)
    }

    /// Flush the encoder; returns every remaining part.
    pub fn finish(self) -> Result<Vec<Bytes>, TaskError> {
        self.encoder
            .finish()
            .map_err(|e| io_error("finishing the encoder", &e))
    }
}
