//! Verify an export against its manifests, reading every object back:
//!
//! - each object a `_manifest.json` lists exists, with the manifest's size and CRC32C (the
//!   object streamed, never held whole), and holds the manifest's row count, recounted from
//!   its bytes;
//! - nothing else lies in a table's folder: parts no manifest lists are stale (an earlier run's,
//!   reported apart, not failures) unless this job's own part names say they are extra;
//! - with a source, each part's rows are read again with the COPY the manifest records (READ
//!   ONLY) and fingerprinted: equal only when the source has not changed since the export.
//!
//! Objects are checked `window` at a time (the source's `max_in_flight` when it is read).

use super::object_scan;
use super::report::{Finding, FindingKind, Report, TableReport};
use crate::commands::progress::Progress;
use anyhow::{anyhow, Result};
use fleet_io::clients::Clients;
use fleet_io::objects::ObjectInfo;
use futures::StreamExt;
use protocol::layout::{MANIFEST, SUCCESS};
use protocol::proof::RowFingerprint;
use protocol::{ObjectLocation, OutputFormat, PgConn, QualifiedName, S3Options};
use serde::Deserialize;
use std::collections::{BTreeMap, HashMap};

/// Manifests read at once.
const MANIFEST_READS: usize = 16;

/// What to verify.
pub struct ExportCheck<'a> {
    /// The export's output location (`[output] url`).
    pub location: ObjectLocation,
    pub s3: &'a S3Options,
    /// `--source`: read the source again and compare fingerprints.
    pub source: Option<PgConn>,
    /// Objects checked at once.
    pub window: usize,
}

/// `_manifest.json`, as far as verification reads it.
#[derive(Debug, Deserialize)]
struct Manifest {
    job_id: String,
    table: QualifiedName,
    format: OutputFormat,
    #[serde(default = "yes")]
    header: bool,
    rows: u64,
    objects: Vec<ManifestObject>,
}

fn yes() -> bool {
    true
}

#[derive(Debug, Deserialize)]
struct ManifestObject {
    /// The full key (S3) or the path relative to the output (file).
    key: String,
    rows: u64,
    bytes: u64,
    #[serde(default)]
    crc32c: Option<String>,
    #[serde(default)]
    fingerprint: Option<RowFingerprint>,
    #[serde(default)]
    source_query: Option<String>,
}

/// One table's manifest and where it lies.
struct TableManifest {
    /// The folder the manifest is in, relative to the location.
    folder: String,
    manifest: Manifest,
}

pub async fn verify(ctx: &Clients, check: &ExportCheck<'_>) -> Result<Report> {
    let url = check.location.to_string();
    let listing = fleet_io::objects::list(ctx, &check.location, check.s3, "")
        .await
        .map_err(|e| anyhow!("listing {url}: {e}"))?;
    let manifest_keys: Vec<&ObjectInfo> = listing
        .iter()
        .filter(|o| file_name(&o.key) == MANIFEST)
        .collect();
    if manifest_keys.is_empty() {
        return Err(anyhow!(
            "no {MANIFEST} under {url}: not an export pgfleet finished (an AWS snapshot export \
             has none: restore it, then verify the restore spec)"
        ));
    }
    let mut reports = Vec::new();
    let mut manifests = Vec::new();
    let read = futures::stream::iter(manifest_keys)
        .map(|o| async move {
            let folder = o.key[..o.key.len() - MANIFEST.len()].to_string();
            let parsed = fleet_io::objects::get(ctx, &check.location, check.s3, &o.key)
                .await
                .map_err(|e| e.to_string())
                .and_then(|b| serde_json::from_slice::<Manifest>(&b).map_err(|e| e.to_string()));
            (folder, parsed)
        })
        .buffer_unordered(MANIFEST_READS)
        .collect::<Vec<_>>()
        .await;
    for (folder, parsed) in read {
        match parsed {
            Ok(manifest) => manifests.push(TableManifest { folder, manifest }),
            Err(e) => reports.push(TableReport::unreadable(
                folder.clone(),
                format!("{folder}{MANIFEST} cannot be read: {e}"),
            )),
        }
    }

    // Full key → listed size, for the manifests' keys.
    let sizes: HashMap<String, u64> = listing
        .iter()
        .map(|o| (check.location.key(&o.key), o.size))
        .collect();
    let work: Vec<(usize, usize)> = manifests
        .iter()
        .enumerate()
        .flat_map(|(t, m)| (0..m.manifest.objects.len()).map(move |o| (t, o)))
        .collect();
    let total = work.len() as u64;
    let mut progress = Progress::counting("verify", "parts");
    let mut per_table: BTreeMap<usize, (u64, Vec<Finding>)> = BTreeMap::new();
    let mut done = 0u64;
    let (mut rows_seen, mut bytes_seen) = (0u64, 0u64);
    let mut checks = futures::stream::iter(work)
        .map(|(t, o)| {
            let m = &manifests[t];
            let sizes = &sizes;
            async move { (t, check_object(ctx, check, m, o, sizes).await) }
        })
        .buffer_unordered(check.window.max(1));
    while let Some((t, (rows, bytes, findings))) = checks.next().await {
        let entry = per_table.entry(t).or_default();
        entry.0 += rows;
        entry.1.extend(findings);
        done += 1;
        rows_seen += rows;
        bytes_seen += bytes;
        progress.update(done, total, rows_seen, bytes_seen);
    }
    progress.finish();

    for (t, m) in manifests.iter().enumerate() {
        let (rows, mut findings) = per_table.remove(&t).unwrap_or_default();
        let (stale, extra) = unlisted(&listing, &check.location, m);
        findings.extend(extra);
        findings.sort_by(|a, b| a.message.cmp(&b.message));
        let mut report = TableReport::new(
            m.manifest.table.display_name(),
            rows,
            Some(m.manifest.rows),
            findings,
        );
        report.stale = stale;
        reports.push(report);
    }
    reports.extend(folders_without_manifest(&listing, &manifests));
    Ok(Report::new("export", url, reports))
}

/// Check one object of a manifest; returns the rows and bytes read back and what differs.
async fn check_object(
    ctx: &Clients,
    check: &ExportCheck<'_>,
    m: &TableManifest,
    index: usize,
    sizes: &HashMap<String, u64>,
) -> (u64, u64, Vec<Finding>) {
    let manifest = &m.manifest;
    let o = &manifest.objects[index];
    let mut findings = Vec::new();
    let Some(&size) = sizes.get(&o.key) else {
        findings.push(Finding::part(
            FindingKind::Missing,
            &o.key,
            format!(
                "listed in the manifest ({} rows) but not in the store",
                o.rows
            ),
        ));
        return (0, 0, findings);
    };
    if size != o.bytes {
        findings.push(Finding::part(
            FindingKind::Size,
            &o.key,
            format!("{size} bytes, the manifest says {}", o.bytes),
        ));
    }
    let relative = relative_key(&check.location, &o.key);
    let scanned = object_scan::scan(
        ctx,
        &check.location,
        check.s3,
        relative,
        size,
        manifest.format,
        manifest.header,
    )
    .await;
    let (rows, bytes) = match scanned {
        Ok(s) => {
            match o.crc32c.as_deref().map(|c| u32::from_str_radix(c, 16)) {
                Some(Ok(want)) if want != s.crc32c => findings.push(Finding::part(
                    FindingKind::Checksum,
                    &o.key,
                    format!("CRC32C {:08x}, the manifest says {want:08x}", s.crc32c),
                )),
                Some(Err(_)) => findings.push(Finding::part(
                    FindingKind::Unreadable,
                    &o.key,
                    "the manifest's crc32c is not eight hex digits".into(),
                )),
                _ => {}
            }
            if s.rows != o.rows {
                findings.push(Finding::part(
                    FindingKind::Rows,
                    &o.key,
                    format!(
                        "{} rows in the object, the manifest says {}",
                        s.rows, o.rows
                    ),
                ));
            }
            (s.rows, s.bytes)
        }
        Err(e) => {
            findings.push(Finding::part(
                FindingKind::Unreadable,
                &o.key,
                format!("cannot be read back: {e}"),
            ));
            (0, 0)
        }
    };
    if let (Some(source), Some(query), Some(exported)) =
        (&check.source, &o.source_query, o.fingerprint)
    {
        match worker::export::fingerprint_source(ctx, source, manifest.format, query).await {
            Ok(now) if now != exported => findings.push(Finding::part(
                FindingKind::Source,
                &o.key,
                format!(
                    "the source's rows differ from the exported ones: {} rows now, {} exported \
                     (re-read with {query})",
                    now.rows, exported.rows
                ),
            )),
            Ok(_) => {}
            Err(e) => findings.push(Finding::part(
                FindingKind::Unreadable,
                &o.key,
                format!("the source could not be read again: {}", e.message),
            )),
        }
    }
    (rows, bytes, findings)
}

/// Objects in the manifest's folder that it does not list: part-shaped ones of another run
/// are stale (not failures); anything else — a part named as this job names its own, any
/// other file — is an extra finding.
fn unlisted(
    listing: &[ObjectInfo],
    location: &ObjectLocation,
    m: &TableManifest,
) -> (Vec<String>, Vec<Finding>) {
    let listed: std::collections::HashSet<&str> =
        m.manifest.objects.iter().map(|o| o.key.as_str()).collect();
    let own_uuid = protocol::layout::rds::part_uuid(&m.manifest.job_id, &m.manifest.table);
    let (mut stale, mut extra) = (Vec::new(), Vec::new());
    for o in under(listing, &m.folder) {
        let rest = &o.key[m.folder.len()..];
        let full = location.key(&o.key);
        if rest == MANIFEST || rest == SUCCESS || listed.contains(full.as_str()) {
            continue;
        }
        let ours = m.manifest.format == OutputFormat::RdsParquet && rest.contains(&own_uuid);
        if is_part(rest, m.manifest.format) && !ours {
            stale.push(format!("{full} ({} bytes)", o.size));
        } else {
            extra.push(Finding::part(
                FindingKind::Extra,
                &full,
                format!(
                    "{} bytes in the table's folder that the manifest does not list",
                    o.size
                ),
            ));
        }
    }
    (stale, extra)
}

/// Folders holding parts but no manifest, and inside no manifest's folder: a table whose
/// export did not finish, reported as DIFFERENT under the folder's name.
fn folders_without_manifest(
    listing: &[ObjectInfo],
    manifests: &[TableManifest],
) -> Vec<TableReport> {
    let covered: std::collections::HashSet<&str> =
        manifests.iter().map(|m| m.folder.as_str()).collect();
    // A folder is covered when it, or a folder above it, holds a manifest.
    let is_covered = |folder: &str| {
        folder
            .match_indices('/')
            .any(|(i, _)| covered.contains(&folder[..=i]))
    };
    let any_format = [
        OutputFormat::Csv,
        OutputFormat::CsvGz,
        OutputFormat::RdsParquet,
    ];
    let mut folders: BTreeMap<String, u64> = BTreeMap::new();
    for o in listing {
        let name = file_name(&o.key);
        let folder = &o.key[..o.key.len() - name.len()];
        if any_format.iter().any(|f| is_part(name, *f)) && !is_covered(folder) {
            *folders.entry(folder.to_string()).or_default() += 1;
        }
    }
    folders
        .into_iter()
        .map(|(folder, parts)| {
            TableReport::new(
                folder.clone(),
                0,
                None,
                vec![Finding::part(
                    FindingKind::Missing,
                    &format!("{folder}{MANIFEST}"),
                    format!(
                        "not found, though the folder holds {parts} part(s): the table's \
                         export did not finish"
                    ),
                )],
            )
        })
        .collect()
}

/// Whether `name` (a key's last component) is named like a part of `format`.
fn is_part(name: &str, format: OutputFormat) -> bool {
    match format {
        OutputFormat::Csv | OutputFormat::CsvGz => {
            !name.contains('/')
                && name
                    .strip_prefix("part-")
                    .and_then(|rest| rest.strip_suffix(format.extension()))
                    .is_some_and(|rest| rest.ends_with('.'))
        }
        OutputFormat::RdsParquet => crate::rds::layout::is_part_file(name),
    }
}

/// The objects of `listing` (sorted by key, as `objects::list` returns it) under `prefix`:
/// found by binary search, so checking every table's folder stays linear in the listing.
fn under<'l>(listing: &'l [ObjectInfo], prefix: &str) -> &'l [ObjectInfo] {
    let start = listing.partition_point(|o| o.key.as_str() < prefix);
    let len = listing[start..]
        .iter()
        .take_while(|o| o.key.starts_with(prefix))
        .count();
    &listing[start..start + len]
}

fn file_name(key: &str) -> &str {
    key.rsplit('/').next().unwrap_or(key)
}

/// A manifest's key relative to the location (S3 manifests hold full keys).
fn relative_key<'k>(location: &ObjectLocation, key: &'k str) -> &'k str {
    match location {
        ObjectLocation::S3 { prefix, .. } => key.strip_prefix(prefix.as_str()).unwrap_or(key),
        ObjectLocation::File { .. } => key,
    }
}
