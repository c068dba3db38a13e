//! End-to-end verification of an export: every table's manifest, every part, every row.

use crate::csvcheck::{self, Row};
use anyhow::{bail, Context, Result};
use std::path::PathBuf;

/// Where the export landed.
pub enum Objects {
    S3 {
        client: aws_sdk_s3::Client,
        bucket: String,
    },
    File {
        root: PathBuf,
    },
}

impl Objects {
    pub async fn get(&self, key: &str) -> Result<Vec<u8>> {
        match self {
            Objects::S3 { client, bucket } => crate::get_object(client, bucket, key).await,
            Objects::File { root } => {
                std::fs::read(root.join(key)).with_context(|| format!("reading {key}"))
            }
        }
    }

    /// Every key under `prefix`, sorted.
    pub async fn list(&self, prefix: &str) -> Result<Vec<String>> {
        match self {
            Objects::S3 { client, bucket } => crate::list_keys(client, bucket, prefix).await,
            Objects::File { root } => {
                let mut out = Vec::new();
                walk(root, root, &mut out)?;
                out.retain(|k| k.starts_with(prefix));
                out.sort();
                Ok(out)
            }
        }
    }
}

fn walk(root: &std::path::Path, dir: &std::path::Path, out: &mut Vec<String>) -> Result<()> {
    for e in std::fs::read_dir(dir)? {
        let p = e?.path();
        if p.is_dir() {
            walk(root, &p, out)?;
        } else {
            out.push(p.strip_prefix(root)?.to_string_lossy().into_owned());
        }
    }
    Ok(())
}

pub struct TableCheck<'a> {
    /// Folder name under the export prefix, e.g. `public.big`.
    pub folder: &'a str,
    /// Query producing the source rows as text, columns in table order.
    pub select: String,
    pub columns: Vec<&'a str>,
}

/// Check one table: manifest present with `_SUCCESS`, no stray objects, header row in every
/// part, and the rows (prefix removed) equal to the source exactly: none missing, none twice.
pub async fn check_table(
    objects: &Objects,
    prefix: &str,
    source: &tokio_postgres::Client,
    t: &TableCheck<'_>,
    value_prefix: &str,
    gzip: bool,
) -> Result<usize> {
    let folder = format!("{prefix}{}/", t.folder);
    let manifest: serde_json::Value =
        serde_json::from_slice(&objects.get(&format!("{folder}_manifest.json")).await?)
            .context("manifest is not JSON")?;
    objects.get(&format!("{folder}_SUCCESS")).await?;
    let listed = objects.list(&folder).await?;
    let mut expected: Vec<String> = manifest["objects"]
        .as_array()
        .context("manifest.objects")?
        .iter()
        .map(|o| o["key"].as_str().unwrap_or_default().to_string())
        .collect();
    expected.push(format!("{folder}_SUCCESS"));
    expected.push(format!("{folder}_manifest.json"));
    expected.sort();
    if listed != expected {
        bail!(
            "{}: objects {listed:?} differ from the manifest's {expected:?}",
            t.folder
        );
    }
    let mut exported: Vec<Row> = Vec::new();
    let mut manifest_rows = 0u64;
    for o in manifest["objects"].as_array().into_iter().flatten() {
        let key = o["key"].as_str().unwrap_or_default();
        let mut data = objects.get(key).await?;
        if o["bytes"].as_u64() != Some(data.len() as u64) {
            bail!(
                "{key}: manifest says {} bytes, object has {}",
                o["bytes"],
                data.len()
            );
        }
        // The proof the manifest records: CRC32C of the object as stored, and a fingerprint
        // of as many rows as the part holds (none when a redelivered task found its part
        // already written and did not read the source again).
        let crc = format!("{:08x}", crc32c::crc32c(&data));
        if o["crc32c"].as_str() != Some(crc.as_str()) {
            bail!("{key}: manifest crc32c {}, object's {crc}", o["crc32c"]);
        }
        if !o["fingerprint"].is_null() && o["fingerprint"]["rows"] != o["rows"] {
            bail!(
                "{key}: fingerprint {} for {} rows",
                o["fingerprint"],
                o["rows"]
            );
        }
        if !o["source_query"]
            .as_str()
            .is_some_and(|q| q.starts_with("COPY (SELECT "))
        {
            bail!("{key}: no source_query");
        }
        if gzip {
            let mut out = Vec::new();
            std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&data[..]), &mut out)?;
            data = out;
        }
        let mut rows = csvcheck::parse(&data).with_context(|| format!("parsing {key}"))?;
        if rows.is_empty() {
            bail!("{key}: no header row");
        }
        let header = rows.remove(0);
        let want: Vec<Option<String>> = t.columns.iter().map(|c| Some(c.to_string())).collect();
        if header != want {
            bail!("{key}: header {header:?}, expected {want:?}");
        }
        if o["rows"].as_u64() != Some(rows.len() as u64) {
            bail!(
                "{key}: manifest says {} rows, object has {}",
                o["rows"],
                rows.len()
            );
        }
        manifest_rows += rows.len() as u64;
        exported.extend(rows);
    }
    if manifest["rows"].as_u64() != Some(manifest_rows) {
        bail!(
            "{}: manifest total rows {} != sum of parts {manifest_rows}",
            t.folder,
            manifest["rows"]
        );
    }
    csvcheck::strip_prefix(&mut exported, value_prefix)?;
    let source_rows = csvcheck::source_rows(source, &t.select).await?;
    let n = exported.len();
    csvcheck::assert_same_rows(t.folder, exported, source_rows);
    Ok(n)
}
