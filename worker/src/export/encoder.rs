//! One encoder per output format, behind one interface, so the export read loop
//! ([`super::stream`]) is the same whatever the format:
//!
//! - [`FormatEncoder::feed`] one COPY message (no await, no allocation per row);
//! - [`FormatEncoder::is_full`]: stop reading until the parts are taken;
//! - [`FormatEncoder::take_parts`]: the finished parts, ready for the sink;
//! - [`FormatEncoder::end_of_input`]: the COPY ended on a record boundary → the row count;
//! - [`FormatEncoder::finish`]: the remaining parts.
//!
//! What differs per format (the COPY stream's form, settings it needs in the source
//! transaction, a header) stays here too. A new format is one more variant.

use super::csv::CsvEncoder;
use super::rds_parquet::{self, RdsParquetEncoder};
use super::sql::CopyFormat;
use bytes::Bytes;
use fleet_io::error::TaskError;
use protocol::{ExportChunk, OutputFormat};

pub enum FormatEncoder {
    /// `csv` and `csv.gz`: transformed CSV, plain or gzip.
    Csv(CsvEncoder),
    /// `rds-parquet`: typed Arrow batches → gzip Parquet, encoded off the async thread.
    RdsParquet(Box<RdsParquetEncoder>),
}

impl FormatEncoder {
    /// The COPY stream `format` reads.
    pub fn copy_format(format: OutputFormat) -> CopyFormat {
        match format {
            OutputFormat::Csv | OutputFormat::CsvGz | OutputFormat::RdsParquet => CopyFormat::Csv,
        }
    }

    /// The encoder of `task`'s output. Checks what can be checked without I/O (rds-parquet:
    /// every column typed, none transformed), so a bad task opens nothing.
    pub fn new(task: &ExportChunk) -> Result<Self, TaskError> {
        let out = &task.output;
        Ok(match out.format {
            OutputFormat::Csv | OutputFormat::CsvGz => Self::Csv(CsvEncoder::new(task)),
            OutputFormat::RdsParquet => {
                let specs = rds_parquet::column_specs(&task.columns)?;
                Self::RdsParquet(Box::new(RdsParquetEncoder::new(
                    &specs,
                    out.gzip_level,
                    out.part_size,
                )?))
            }
        })
    }

    /// Statements to run in the source transaction before COPY, and what they do (for errors).
    pub fn session_settings(&self) -> Option<(&'static str, &'static str)> {
        Self::session_settings_of(match self {
            Self::Csv(_) => OutputFormat::Csv,
            Self::RdsParquet(_) => OutputFormat::RdsParquet,
        })
    }

    /// [`FormatEncoder::session_settings`] of `format`'s encoder.
    pub fn session_settings_of(format: OutputFormat) -> Option<(&'static str, &'static str)> {
        match format {
            OutputFormat::Csv | OutputFormat::CsvGz => None,
            OutputFormat::RdsParquet => Some((
                rds_parquet::SESSION_SETTINGS,
                "setting bytea_output, extra_float_digits, DateStyle",
            )),
        }
    }

    /// Encode one COPY message (a row, as PostgreSQL sends them; any piece works).
    #[inline]
    pub fn feed(&mut self, data: Bytes) -> Result<(), TaskError> {
        match self {
            Self::Csv(e) => {
                e.feed(&data);
                Ok(())
            }
            Self::RdsParquet(e) => e.feed(data),
        }
    }

    /// Take the parts before feeding more.
    #[inline]
    pub fn is_full(&self) -> bool {
        match self {
            Self::Csv(_) => false,
            Self::RdsParquet(e) => e.is_full(),
        }
    }

    /// Append the parts that are complete (`ended`: the COPY is over, flush what is pending
    /// except the file's end).
    pub async fn take_parts(
        &mut self,
        ended: bool,
        parts: &mut Vec<Bytes>,
    ) -> Result<(), TaskError> {
        match self {
            Self::Csv(e) => e.take_parts(parts),
            Self::RdsParquet(e) => e.take_parts(ended, parts).await,
        }
    }

    /// Check that the COPY ended on a record boundary; returns the row count.
    pub fn end_of_input(&self) -> Result<u64, TaskError> {
        match self {
            Self::Csv(e) => e.end_of_input(),
            Self::RdsParquet(e) => e.end_of_input(),
        }
    }

    /// End the object; returns every remaining part (the last may be smaller).
    pub async fn finish(self) -> Result<Vec<Bytes>, TaskError> {
        match self {
            Self::Csv(e) => e.finish(),
            Self::RdsParquet(e) => e.finish().await,
        }
    }
}
