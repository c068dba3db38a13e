//! One gzip Parquet file being written, a row group per batch, cut into upload parts as it
//! grows.

use super::BATCH_ROWS;
use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use bytes::{Bytes, BytesMut};
use fleet_io::error::TaskError;
use parquet::arrow::arrow_writer::ArrowWriterOptions;
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, GzipLevel};
use parquet::file::properties::WriterProperties;
use std::io::{self, Write};

/// The `Write` sink of the Parquet writer; parts are cut from its front. The writer counts its
/// own offsets, so taking bytes out never disturbs the file.
#[derive(Default)]
struct PartSink {
    buf: BytesMut,
}

impl Write for PartSink {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.buf.extend_from_slice(data);
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// One Parquet file being written: a row group per batch, gzip, parts of `part_size` bytes.
pub struct ParquetFile {
    writer: ArrowWriter<PartSink>,
    part_size: usize,
}

impl ParquetFile {
    pub fn new(schema: SchemaRef, gzip_level: u32, part_size: u64) -> Result<Self, TaskError> {
        let level = GzipLevel::try_new(gzip_level.min(9))
            .map_err(|e| TaskError::fatal(format!("gzip level {gzip_level}: {e}")))?;
        let props = WriterProperties::builder()
            .set_compression(Compression::GZIP(level))
            .set_max_row_group_row_count(Some(BATCH_ROWS))
            .build();
        // Like a real export (written by Spark): no embedded Arrow schema, Spark's root name.
        let options = ArrowWriterOptions::new()
            .with_properties(props)
            .with_skip_arrow_metadata(true)
            .with_schema_root("spark_schema".into());
        let writer = ArrowWriter::try_new_with_options(PartSink::default(), schema, options)
            .map_err(|e| TaskError::fatal(format!("creating the Parquet writer: {e}")))?;
        Ok(Self {
            writer,
            part_size: usize::try_from(part_size.max(1)).unwrap_or(usize::MAX),
        })
    }

    /// Write one batch as one row group.
    pub fn write(&mut self, batch: &RecordBatch) -> Result<(), TaskError> {
        let write = |w: &mut ArrowWriter<PartSink>| -> parquet::errors::Result<()> {
            w.write(batch)?;
            w.flush()?;
            w.sync()?;
            Ok(())
        };
        write(&mut self.writer)
            .map_err(|e| TaskError::fatal(format!("writing a Parquet row group: {e}")))
    }

    /// A full part, if the output has reached the part size.
    pub fn next_part(&mut self) -> Option<Bytes> {
        let buf = &mut self.writer.inner_mut().buf;
        (buf.len() >= self.part_size).then(|| buf.split_to(self.part_size).freeze())
    }

    /// Write the footer and return the remaining output as parts (the last may be smaller).
    pub fn finish(mut self) -> Result<Vec<Bytes>, TaskError> {
        self.writer
            .finish()
            .map_err(|e| TaskError::fatal(format!("finishing the Parquet file: {e}")))?;
        let mut parts = Vec::new();
        while let Some(part) = self.next_part() {
            parts.push(part);
        }
        let rest = std::mem::take(&mut self.writer.inner_mut().buf);
        if !rest.is_empty() {
            parts.push(rest.freeze());
        }
        Ok(parts)
    }
}
