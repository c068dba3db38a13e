//! Reading an object store: list a prefix, read a whole object, read a byte range. Used by the
//! restore path (Parquet files are read with ranged reads, never whole) and by the coordinator
//! to discover an export's layout. S3 or a local folder, behind one set of functions.

use crate::clients::Clients;
use crate::error::{io_error, s3_error, TaskError};
use crate::sink::file::resolve;
use bytes::Bytes;
use protocol::{ObjectLocation, S3Options};
use std::ops::Range;
use std::path::Path;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectInfo {
    /// Relative to the location (for S3: without the location's prefix).
    pub key: String,
    pub size: u64,
}

/// Every object under `prefix` (relative to `location`), sorted by key.
pub async fn list(
    ctx: &Clients,
    location: &ObjectLocation,
    s3: &S3Options,
    prefix: &str,
) -> Result<Vec<ObjectInfo>, TaskError> {
    let mut out = match location {
        ObjectLocation::S3 {
            bucket,
            prefix: base,
        } => {
            let client = ctx.s3(s3).await;
            let mut round = 1;
            loop {
                match list_s3(&client, bucket, base, prefix).await {
                    Ok(out) => break out,
                    Err(e) if e.retryable && round < READ_ROUNDS => {
                        tracing::debug!(error = %e, round, "retrying an S3 listing");
                        tokio::time::sleep(READ_ROUND_PAUSE * round).await;
                        round += 1;
                    }
                    Err(e) => return Err(e),
                }
            }
        }
        ObjectLocation::File { root } => {
            let root = Path::new(root);
            let meta = tokio::fs::metadata(root)
                .await
                .map_err(|e| permanent(io_error(format_args!("reading {}", root.display()), &e)))?;
            if !meta.is_dir() {
                return Err(TaskError::fatal(format!(
                    "{} is not a directory",
                    root.display()
                )));
            }
            let root = root.to_path_buf();
            let prefix = prefix.to_string();
            tokio::task::spawn_blocking(move || walk(&root, &prefix))
                .await
                .map_err(|e| TaskError::retryable(format!("listing files: {e}")))??
        }
    };
    out.sort_by(|a, b| a.key.cmp(&b.key));
    Ok(out)
}

fn walk(root: &Path, prefix: &str) -> Result<Vec<ObjectInfo>, TaskError> {
    let mut out = Vec::new();
    let mut dirs = vec![root.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        let entries = std::fs::read_dir(&dir)
            .map_err(|e| io_error(format_args!("listing {}", dir.display()), &e))?;
        for entry in entries {
            let entry =
                entry.map_err(|e| io_error(format_args!("listing {}", dir.display()), &e))?;
            let path = entry.path();
            let ty = entry
                .file_type()
                .map_err(|e| io_error(format_args!("reading {}", path.display()), &e))?;
            if ty.is_dir() {
                dirs.push(path);
            } else if ty.is_file() {
                let Ok(rel) = path.strip_prefix(root) else {
                    continue;
                };
                let key = rel.to_string_lossy().into_owned();
                if key.starts_with(prefix) {
                    let size = entry.metadata().map(|m| m.len()).unwrap_or(0);
                    out.push(ObjectInfo { key, size });
                }
            }
        }
    }
    Ok(out)
}

/// A whole (small) object: metadata files, manifests.
pub async fn get(
    ctx: &Clients,
    location: &ObjectLocation,
    s3: &S3Options,
    key: &str,
) -> Result<Bytes, TaskError> {
    read(ctx, location, s3, key, None).await
}

/// Bytes `range` of an object (a Parquet footer, a column chunk).
pub async fn get_range(
    ctx: &Clients,
    location: &ObjectLocation,
    s3: &S3Options,
    key: &str,
    range: Range<u64>,
) -> Result<Bytes, TaskError> {
    if range.start >= range.end {
        return Ok(Bytes::new());
    }
    read(ctx, location, s3, key, Some(range)).await
}

async fn read(
    ctx: &Clients,
    location: &ObjectLocation,
    s3: &S3Options,
    key: &str,
    range: Option<Range<u64>>,
) -> Result<Bytes, TaskError> {
    match location {
        ObjectLocation::S3 { bucket, .. } => {
            let client = ctx.s3(s3).await;
            let key = location.key(key);
            let mut round = 1;
            loop {
                match get_s3(&client, bucket, &key, range.as_ref()).await {
                    Ok(bytes) => return Ok(bytes),
                    Err(e) if e.retryable && round < READ_ROUNDS => {
                        tracing::debug!(error = %e, round, "retrying an S3 read");
                        tokio::time::sleep(READ_ROUND_PAUSE * round).await;
                        round += 1;
                    }
                    Err(e) => return Err(e),
                }
            }
        }
        ObjectLocation::File { root } => {
            let path = resolve(root, key)?;
            let range = range.clone();
            tokio::task::spawn_blocking(move || read_file(&path, range))
                .await
                .map_err(|e| TaskError::retryable(format!("reading a file: {e}")))?
        }
    }
}

/// Rounds of an S3 read or listing, each with the SDK's own retries: the SDK retries a
/// request, but not a body that breaks off or stalls after the response head, and the
/// coordinator's planning reads have no task retry behind them.
const READ_ROUNDS: u32 = 3;
const READ_ROUND_PAUSE: std::time::Duration = std::time::Duration::from_millis(500);

async fn list_s3(
    client: &aws_sdk_s3::Client,
    bucket: &str,
    base: &str,
    prefix: &str,
) -> Result<Vec<ObjectInfo>, TaskError> {
    let mut pages = client
        .list_objects_v2()
        .bucket(bucket)
        .prefix(format!("{base}{prefix}"))
        .into_paginator()
        .send();
    let mut out = Vec::new();
    while let Some(page) = pages.next().await {
        let page = page.map_err(|e| {
            s3_error("ListObjectsV2", &e)
                .context(format_args!("listing s3://{bucket}/{base}{prefix}"))
        })?;
        for o in page.contents() {
            let Some(key) = o.key() else { continue };
            let Some(rel) = key.strip_prefix(base) else {
                continue;
            };
            out.push(ObjectInfo {
                key: rel.to_string(),
                size: o.size().unwrap_or(0).max(0) as u64,
            });
        }
    }
    Ok(out)
}

/// One GetObject, body included. Every wait for more of the body is bounded by the S3 attempt
/// timeout: the SDK's own timeouts end at the response head.
async fn get_s3(
    client: &aws_sdk_s3::Client,
    bucket: &str,
    key: &str,
    range: Option<&Range<u64>>,
) -> Result<Bytes, TaskError> {
    let url = || format!("s3://{bucket}/{key}");
    let mut req = client.get_object().bucket(bucket).key(key);
    if let Some(r) = range {
        req = req.range(format!("bytes={}-{}", r.start, r.end - 1));
    }
    let out = req
        .send()
        .await
        .map_err(|e| s3_error("GetObject", &e).context(url()))?;
    let expected = out.content_length.and_then(|n| usize::try_from(n).ok());
    let idle = crate::clients::s3_attempt_timeout();
    let mut body = out.body;
    let mut buf = bytes::BytesMut::with_capacity(expected.unwrap_or(0));
    loop {
        match tokio::time::timeout(idle, body.next()).await {
            Err(_) => {
                return Err(TaskError::retryable(format!(
                    "reading {}: no data for {idle:?} ({} bytes read)",
                    url(),
                    buf.len()
                )))
            }
            Ok(None) => break,
            Ok(Some(Err(e))) => {
                return Err(TaskError::retryable(format!(
                    "reading {}: {}",
                    url(),
                    aws_sdk_s3::error::DisplayErrorContext(&e)
                )))
            }
            Ok(Some(Ok(data))) => buf.extend_from_slice(&data),
        }
    }
    if let Some(n) = expected.filter(|&n| n != buf.len()) {
        return Err(TaskError::retryable(format!(
            "reading {}: got {} of {n} bytes",
            url(),
            buf.len()
        )));
    }
    Ok(buf.freeze())
}

fn read_file(path: &Path, range: Option<Range<u64>>) -> Result<Bytes, TaskError> {
    use std::io::{Read, Seek, SeekFrom};
    let what = || format!("reading {}", path.display());
    let mut f = std::fs::File::open(path).map_err(|e| permanent(io_error(what(), &e)))?;
    match range {
        None => {
            let mut buf = Vec::new();
            f.read_to_end(&mut buf).map_err(|e| io_error(what(), &e))?;
            Ok(buf.into())
        }
        Some(r) => {
            f.seek(SeekFrom::Start(r.start))
                .map_err(|e| io_error(what(), &e))?;
            let mut buf = vec![0u8; (r.end - r.start) as usize];
            f.read_exact(&mut buf).map_err(|e| io_error(what(), &e))?;
            Ok(buf.into())
        }
    }
}

/// A missing file or folder does not appear by retrying.
fn permanent(e: TaskError) -> TaskError {
    TaskError {
        retryable: false,
        ..e
    }
}
