//! Where encoded parts go: an S3 object (single PUT or multipart upload) or a local file.
//! A writer either finishes (the object appears whole, atomically) or is aborted / dropped
//! (nothing appears and nothing is left behind, best effort).

pub mod file;
mod s3;

use crate::clients::Clients;
use crate::error::TaskError;
use bytes::Bytes;
use protocol::proof::ObjectChecksum;
use protocol::{ObjectLocation, S3Options};

pub use file::FileWriter;
pub use s3::{observe_part_seconds, S3Writer};

/// User metadata key (`x-amz-meta-pgfleet-task`) holding the id of the task that wrote a part.
pub const TASK_METADATA: &str = "pgfleet-task";

/// One object being written, part by part, with the CRC32C of every byte it was given.
pub struct ObjectWriter {
    target: Target,
    checksum: ObjectChecksum,
}

enum Target {
    S3(S3Writer),
    File(FileWriter),
}

/// A finished object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Written {
    pub bytes: u64,
    /// Of the bytes as stored.
    pub checksum: ObjectChecksum,
}

/// How to open a writer.
pub struct WriterOptions<'a> {
    pub s3: &'a S3Options,
    pub content_type: &'a str,
    /// S3 parts uploading at once; `write_part` waits when this many are in flight.
    pub parts_in_flight: usize,
    /// The task writing the object, recorded in its metadata (S3 only).
    pub task_id: Option<&'a str>,
}

impl ObjectWriter {
    /// Open a writer for `key` (relative to `location`).
    pub async fn open(
        ctx: &Clients,
        location: &ObjectLocation,
        key: &str,
        opts: &WriterOptions<'_>,
    ) -> Result<Self, TaskError> {
        let target = match location {
            ObjectLocation::S3 { bucket, .. } => {
                let client = ctx.s3(opts.s3).await;
                Target::S3(
                    S3Writer::new(
                        client,
                        bucket.clone(),
                        location.key(key),
                        opts.content_type.to_string(),
                        opts.parts_in_flight,
                    )
                    .with_task_id(opts.task_id)
                    .with_checksums(opts.s3.checksums),
                )
            }
            ObjectLocation::File { root } => Target::File(FileWriter::create(root, key).await?),
        };
        Ok(Self {
            target,
            checksum: ObjectChecksum::default(),
        })
    }

    /// Append one part. Parts other than the last should be at least the S3 minimum (5 MiB).
    pub async fn write_part(&mut self, part: Bytes) -> Result<(), TaskError> {
        // Hardware CRC32C: ~9 GB/s, a rounding error beside compression and upload. Once per
        // part: S3 gets the part's own, the object's is combined from them.
        let crc = ObjectChecksum::of(&part);
        self.checksum.add_piece(crc, part.len());
        match &mut self.target {
            Target::S3(w) => w.write_part(part, crc).await,
            Target::File(w) => w.write_part(part).await,
        }
    }

    /// Make the object visible. On error nothing is left behind.
    pub async fn finish(self) -> Result<Written, TaskError> {
        let bytes = match self.target {
            Target::S3(w) => w.finish().await?,
            Target::File(w) => w.finish().await?,
        };
        Ok(Written {
            bytes,
            checksum: self.checksum,
        })
    }

    /// Discard everything written so far.
    pub async fn abort(self) {
        match self.target {
            Target::S3(w) => w.abort().await,
            Target::File(w) => w.abort().await,
        }
    }

    /// `s3://bucket/key` or `file:///path`, for messages.
    pub fn url(&self) -> String {
        match &self.target {
            Target::S3(w) => w.url(),
            Target::File(w) => w.url(),
        }
    }
}

/// `s3://bucket/prefix/key` or `file:///root/key`, for messages.
pub fn object_url(location: &ObjectLocation, key: &str) -> String {
    match location {
        ObjectLocation::S3 { bucket, .. } => format!("s3://{bucket}/{}", location.key(key)),
        ObjectLocation::File { root } => format!("file://{}/{key}", root.trim_end_matches('/')),
    }
}

/// Write a small object whole (the coordinator's `_manifest.json` and `_SUCCESS`).
pub async fn put_object(
    ctx: &Clients,
    location: &ObjectLocation,
    s3: &S3Options,
    key: &str,
    body: Bytes,
    content_type: &str,
) -> Result<(), TaskError> {
    let opts = WriterOptions {
        s3,
        content_type,
        parts_in_flight: 1,
        task_id: None,
    };
    let mut writer = ObjectWriter::open(ctx, location, key, &opts).await?;
    if let Err(e) = writer.write_part(body).await {
        writer.abort().await;
        return Err(e);
    }
    writer.finish().await.map(|_| ())
}

/// Delete one object (`coordinator check`'s write probe). A missing object is not an error.
pub async fn delete_object(
    ctx: &Clients,
    location: &ObjectLocation,
    s3: &S3Options,
    key: &str,
) -> Result<(), TaskError> {
    match location {
        ObjectLocation::S3 { bucket, .. } => {
            let client = ctx.s3(s3).await;
            client
                .delete_object()
                .bucket(bucket)
                .key(location.key(key))
                .send()
                .await
                .map(|_| ())
                .map_err(|e| crate::error::s3_error("DeleteObject", &e))
        }
        ObjectLocation::File { root } => {
            let path = file::resolve(root, key)?;
            match tokio::fs::remove_file(&path).await {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(crate::error::io_error(
                    format_args!("removing {}", path.display()),
                    &e,
                )),
                _ => Ok(()),
            }
        }
    }
}
