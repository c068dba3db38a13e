//! S3 objects. An object that fits in one part is a single PutObject; a bigger one is a
//! multipart upload with at most `window` parts uploading at once (each on its own task, so
//! uploads progress while the source keeps streaming). `write_part` waits when the window is
//! full, which bounds memory at about part_size * (window + 1). Failure or drop before finish
//! aborts the upload so no parts linger (and bill).

use crate::error::{s3_error, TaskError};
use aws_sdk_s3::error::ProvideErrorMetadata;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{ChecksumAlgorithm, ChecksumType, CompletedMultipartUpload, CompletedPart};
use aws_sdk_s3::Client;
use bytes::Bytes;
use protocol::proof::ObjectChecksum;
use std::sync::OnceLock;
use tokio::task::JoinSet;

/// Where each UploadPart's latency is observed: the worker's histogram, set once at startup
/// ([`observe_part_seconds`]); unset (the coordinator's small writes), nothing is observed.
static PART_SECONDS: OnceLock<prometheus::Histogram> = OnceLock::new();

/// Observe every UploadPart's latency in `histogram` from now on (the first call wins).
pub fn observe_part_seconds(histogram: prometheus::Histogram) {
    let _ = PART_SECONDS.set(histogram);
}

pub struct S3Writer {
    client: Client,
    bucket: String,
    key: String,
    content_type: String,
    window: usize,
    /// The first part and its CRC32C, held back until a second one shows the object needs
    /// multipart.
    first: Option<(Bytes, ObjectChecksum)>,
    /// Send CRC32Cs for the server to check (per part, and the whole object's at the end).
    checksums: bool,
    /// Of every part so far: the full-object checksum multipart completion states.
    whole: ObjectChecksum,
    upload_id: Option<String>,
    next_part_number: i32,
    in_flight: JoinSet<Result<CompletedPart, TaskError>>,
    done: Vec<CompletedPart>,
    bytes: u64,
    /// Finished or aborted: nothing for `Drop` to clean up.
    settled: bool,
    /// Stored as the object's `pgfleet-task` metadata (see export::written).
    task_id: Option<String>,
}

impl S3Writer {
    pub fn new(
        client: Client,
        bucket: String,
        key: String,
        content_type: String,
        window: usize,
    ) -> Self {
        Self {
            client,
            bucket,
            key,
            content_type,
            window: window.max(1),
            first: None,
            checksums: true,
            whole: ObjectChecksum::default(),
            upload_id: None,
            next_part_number: 1,
            in_flight: JoinSet::new(),
            done: Vec::new(),
            bytes: 0,
            settled: false,
            task_id: None,
        }
    }

    /// Tag the object with the task that writes it.
    pub fn with_task_id(mut self, task_id: Option<&str>) -> Self {
        self.task_id = task_id.map(str::to_string);
        self
    }

    /// Whether to send checksums (S3Options::checksums).
    pub fn with_checksums(mut self, on: bool) -> Self {
        self.checksums = on;
        self
    }

    /// The header value for `crc`, when checksums are on.
    fn checksum(&self, crc: ObjectChecksum) -> Option<String> {
        self.checksums.then(|| crc.to_base64())
    }

    fn metadata(&self) -> Option<std::collections::HashMap<String, String>> {
        let id = self.task_id.clone()?;
        Some([(super::TASK_METADATA.to_string(), id)].into())
    }

    pub fn url(&self) -> String {
        format!("s3://{}/{}", self.bucket, self.key)
    }

    /// Append `part`, whose CRC32C is `crc`.
    pub async fn write_part(&mut self, part: Bytes, crc: ObjectChecksum) -> Result<(), TaskError> {
        self.bytes += part.len() as u64;
        if self.upload_id.is_none() {
            match self.first.take() {
                None => {
                    self.first = Some((part, crc));
                    return Ok(());
                }
                Some((first, first_crc)) => {
                    self.start_multipart().await?;
                    self.upload(first, first_crc).await?;
                }
            }
        }
        self.upload(part, crc).await
    }

    pub async fn finish(mut self) -> Result<u64, TaskError> {
        let result = match self.upload_id.clone() {
            None => self.put_whole().await,
            Some(id) => self.complete(&id).await,
        };
        match result {
            Ok(()) => {
                self.settled = true;
                Ok(self.bytes)
            }
            Err(e) => {
                self.abort_inner().await;
                Err(e)
            }
        }
    }

    pub async fn abort(mut self) {
        self.abort_inner().await;
    }

    async fn put_whole(&mut self) -> Result<(), TaskError> {
        let (body, crc) = self.first.take().unwrap_or_default();
        self.client
            .put_object()
            .bucket(&self.bucket)
            .key(&self.key)
            .content_type(&self.content_type)
            .set_metadata(self.metadata())
            .set_checksum_crc32_c(self.checksum(crc))
            .body(ByteStream::from(body))
            .customize()
            .disable_payload_signing()
            .send()
            .await
            .map_err(|e| s3_error("PutObject", &e).context(self.url()))?;
        Ok(())
    }

    async fn start_multipart(&mut self) -> Result<(), TaskError> {
        let out = self
            .client
            .create_multipart_upload()
            .bucket(&self.bucket)
            .key(&self.key)
            .content_type(&self.content_type)
            .set_metadata(self.metadata())
            .set_checksum_algorithm(self.checksums.then_some(ChecksumAlgorithm::Crc32C))
            .set_checksum_type(self.checksums.then_some(ChecksumType::FullObject))
            .send()
            .await
            .map_err(|e| s3_error("CreateMultipartUpload", &e).context(self.url()))?;
        let id = out.upload_id.ok_or_else(|| {
            TaskError::retryable(format!(
                "{}: CreateMultipartUpload returned no upload id",
                self.url()
            ))
        })?;
        self.upload_id = Some(id);
        Ok(())
    }

    /// Start uploading one part, first waiting for a free slot in the window.
    async fn upload(&mut self, part: Bytes, crc: ObjectChecksum) -> Result<(), TaskError> {
        // Surface failures of finished uploads early rather than after streaming everything.
        while let Some(joined) = self.in_flight.try_join_next() {
            self.collect(joined)?;
        }
        while self.in_flight.len() >= self.window {
            if let Some(joined) = self.in_flight.join_next().await {
                self.collect(joined)?;
            }
        }
        let Some(upload_id) = self.upload_id.clone() else {
            return Err(TaskError::fatal(format!(
                "{}: part upload without a multipart upload (bug)",
                self.url()
            )));
        };
        let number = self.next_part_number;
        self.next_part_number += 1;
        self.whole.add_piece(crc, part.len());
        let checksum = self.checksum(crc);
        let request = self
            .client
            .upload_part()
            .bucket(&self.bucket)
            .key(&self.key)
            .upload_id(upload_id)
            .part_number(number)
            .set_checksum_crc32_c(checksum.clone())
            .body(ByteStream::from(part))
            // UNSIGNED-PAYLOAD, as the AWS Java SDK does over HTTPS: SHA-256 of every byte
            // would cost more CPU than the whole transform; TLS protects the payload.
            .customize()
            .disable_payload_signing();
        let url = self.url();
        self.in_flight.spawn(async move {
            let sent = std::time::Instant::now();
            let out = request.send().await;
            if let Some(h) = PART_SECONDS.get() {
                h.observe(sent.elapsed().as_secs_f64());
            }
            let out = out.map_err(|e| {
                s3_error("UploadPart", &e).context(format!("{url} (part {number})"))
            })?;
            let etag = out.e_tag.ok_or_else(|| {
                TaskError::retryable(format!("{url}: UploadPart {number} returned no ETag"))
            })?;
            Ok(CompletedPart::builder()
                .part_number(number)
                .e_tag(etag)
                .set_checksum_crc32_c(checksum)
                .build())
        });
        Ok(())
    }

    fn collect(
        &mut self,
        joined: Result<Result<CompletedPart, TaskError>, tokio::task::JoinError>,
    ) -> Result<(), TaskError> {
        match joined {
            Ok(Ok(part)) => {
                self.done.push(part);
                Ok(())
            }
            Ok(Err(e)) => Err(e),
            Err(e) => Err(TaskError::retryable(format!(
                "{}: part upload task failed: {e}",
                self.url()
            ))),
        }
    }

    async fn complete(&mut self, upload_id: &str) -> Result<(), TaskError> {
        if let Some((last, crc)) = self.first.take() {
            // Unreachable in practice (multipart starts with the first part); stay correct.
            self.upload(last, crc).await?;
        }
        while let Some(joined) = self.in_flight.join_next().await {
            self.collect(joined)?;
        }
        let mut parts = std::mem::take(&mut self.done);
        parts.sort_by_key(|p| p.part_number);
        self.client
            .complete_multipart_upload()
            .bucket(&self.bucket)
            .key(&self.key)
            .upload_id(upload_id)
            .set_checksum_crc32_c(self.checksum(self.whole))
            .set_checksum_type(self.checksums.then_some(ChecksumType::FullObject))
            .multipart_upload(
                CompletedMultipartUpload::builder()
                    .set_parts(Some(parts))
                    .build(),
            )
            .send()
            .await
            .map_err(|e| s3_error("CompleteMultipartUpload", &e).context(self.url()))?;
        Ok(())
    }

    /// Stop in-flight parts first (a part finishing after the abort would resurrect storage),
    /// then abort the upload. Best effort: failures are logged, not returned.
    async fn abort_inner(&mut self) {
        self.settled = true;
        self.first = None;
        self.in_flight.abort_all();
        while self.in_flight.join_next().await.is_some() {}
        if let Some(id) = self.upload_id.take() {
            abort_upload(&self.client, &self.bucket, &self.key, &id).await;
        }
    }
}

/// Rounds of AbortMultipartUpload (each with the SDK's own retries) before giving up: an upload
/// left behind bills its parts until a lifecycle rule removes it, so it is worth more than
/// the SDK's few quick attempts when S3 is having trouble — the very time uploads fail.
const ABORT_ROUNDS: u32 = 3;
const ABORT_ROUND_PAUSE: std::time::Duration = std::time::Duration::from_secs(1);

async fn abort_upload(client: &Client, bucket: &str, key: &str, upload_id: &str) {
    let mut round = 1;
    loop {
        let result = client
            .abort_multipart_upload()
            .bucket(bucket)
            .key(key)
            .upload_id(upload_id)
            .send()
            .await;
        let error = match result {
            Ok(_) => {
                tracing::debug!(bucket, key, "aborted multipart upload");
                return;
            }
            // Gone already: nothing left to bill.
            Err(e) if e.code() == Some("NoSuchUpload") => {
                tracing::debug!(bucket, key, "multipart upload already gone");
                return;
            }
            Err(e) => s3_error("AbortMultipartUpload", &e),
        };
        if !error.retryable || round >= ABORT_ROUNDS {
            tracing::warn!(
                bucket,
                key,
                upload_id,
                error = %error,
                "could not abort a multipart upload; a bucket lifecycle rule for incomplete uploads will clean it up"
            );
            return;
        }
        tracing::debug!(bucket, key, error = %error, round, "aborting a multipart upload failed; trying again");
        tokio::time::sleep(ABORT_ROUND_PAUSE * round).await;
        round += 1;
    }
}

impl Drop for S3Writer {
    fn drop(&mut self) {
        if self.settled {
            return;
        }
        // Dropped mid-upload (task cancelled or a panic upstream). The JoinSet aborts its
        // part uploads on drop; abort the upload itself in the background if we still can.
        let Some(id) = self.upload_id.take() else {
            return;
        };
        match tokio::runtime::Handle::try_current() {
            Ok(handle) => {
                let (client, bucket, key) =
                    (self.client.clone(), self.bucket.clone(), self.key.clone());
                handle.spawn(async move { abort_upload(&client, &bucket, &key, &id).await });
            }
            Err(_) => tracing::warn!(
                bucket = %self.bucket,
                key = %self.key,
                "multipart upload left incomplete: no runtime to abort it from"
            ),
        }
    }
}
