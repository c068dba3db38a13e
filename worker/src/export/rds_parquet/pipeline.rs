//! Parquet encoding and gzip off the async thread: the writer is either idle here or busy with
//! one batch on a blocking thread, overlapping with the parsing of the next batch.

use super::builders::RawBatch;
use super::file::ParquetFile;
use arrow::datatypes::SchemaRef;
use bytes::Bytes;
use fleet_io::error::TaskError;
use tokio::task::JoinHandle;

/// The Parquet writer, either idle here or busy encoding a batch on a blocking thread.
pub(super) enum Pipeline {
    Idle(Box<ParquetFile>),
    Busy(JoinHandle<Result<Box<ParquetFile>, TaskError>>),
    /// Only between taking the state and putting it back.
    Empty,
}

impl Pipeline {
    pub(super) fn new(file: ParquetFile) -> Self {
        Pipeline::Idle(Box::new(file))
    }

    /// Wait for the batch in progress and take the writer back.
    async fn idle(&mut self) -> Result<Box<ParquetFile>, TaskError> {
        match std::mem::replace(self, Pipeline::Empty) {
            Pipeline::Idle(file) => Ok(file),
            Pipeline::Busy(handle) => handle
                .await
                .map_err(|e| TaskError::fatal(format!("the Parquet encoder thread failed: {e}")))?,
            Pipeline::Empty => Err(TaskError::fatal("Parquet writer used after a failure")),
        }
    }

    /// Hand `batch` to the encoder thread; returns the parts the previous batch completed, which
    /// the caller uploads while this one encodes.
    pub(super) async fn submit(
        &mut self,
        batch: RawBatch,
        schema: &SchemaRef,
    ) -> Result<Vec<Bytes>, TaskError> {
        let mut file = self.idle().await?;
        let mut parts = Vec::new();
        while let Some(p) = file.next_part() {
            parts.push(p);
        }
        let schema = schema.clone();
        *self = Pipeline::Busy(tokio::task::spawn_blocking(move || {
            let batch = batch.finish(&schema)?;
            file.write(&batch)?;
            Ok(file)
        }));
        Ok(parts)
    }

    /// Wait for the last batch and write the footer; returns every remaining part.
    pub(super) async fn finish(&mut self) -> Result<Vec<Bytes>, TaskError> {
        let file = self.idle().await?;
        tokio::task::spawn_blocking(move || file.finish())
            .await
            .map_err(|e| TaskError::fatal(format!("the Parquet encoder thread failed: {e}")))?
    }
}
