//! Reading an object store: list a prefix, read a whole object, read a byte range. Used by the
//! restore path (Parquet files are read with ranged reads, never whole) and by the coordinator
//! to discover an export's layout. S3 or a local folder, behind one set of functions.

use crate::context::WorkerContext;
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
    ctx: &WorkerContext,
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
            let mut pages = client
                .list_objects_v2()
                .bucket(bucket)
                .prefix(format!("{base}{prefix}"))
                .into_paginator()
                .send();
            let mut out = Vec::new();
            while let Some(page) = pages.next().await {
                let page = page.map_err(|e| s3_error("ListObjectsV2", &e))?;
                for o in page.contents() {
                    let Some(key) = o.key() else { continue };
                    let Some(rel) = key.strip_prefix(base.as_str()) else {
                        continue;
                    };
                    out.push(ObjectInfo {
                        key: rel.to_string(),
                        size: o.size().unwrap_or(0).max(0) as u64,
                    });
                }
            }
            out
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
    ctx: &WorkerContext,
    location: &ObjectLocation,
    s3: &S3Options,
    key: &str,
) -> Result<Bytes, TaskError> {
    read(ctx, location, s3, key, None).await
}

/// Bytes `range` of an object (a Parquet footer, a column chunk).
pub async fn get_range(
    ctx: &WorkerContext,
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
    ctx: &WorkerContext,
    location: &ObjectLocation,
    s3: &S3Options,
    key: &str,
    range: Option<Range<u64>>,
) -> Result<Bytes, TaskError> {
    match location {
        ObjectLocation::S3 { bucket, .. } => {
            let client = ctx.s3(s3).await;
            let mut req = client.get_object().bucket(bucket).key(location.key(key));
            if let Some(r) = &range {
                req = req.range(format!("bytes={}-{}", r.start, r.end - 1));
            }
            let out = req.send().await.map_err(|e| s3_error("GetObject", &e))?;
            let body = out.body.collect().await.map_err(|e| {
                TaskError::retryable(format!("reading s3://{bucket}/{}: {e}", location.key(key)))
            })?;
            Ok(body.into_bytes())
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
