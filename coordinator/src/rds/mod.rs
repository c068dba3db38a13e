//! Discovery of an AWS RDS / Aurora snapshot export (Parquet on S3 or in a local folder):
//! what it contains, before anything is loaded.
//!
//! [`discover`] lists the export root, reads `export_info_<id>.json` and every
//! `export_tables_info_<id>_from_<N>_to_<M>.json`, maps the tables of one database to their
//! folders *through the metadata* (`protocol::layout::rds::table_folder`), lists every part file
//! of every batch folder
//! (or of the older flat layout) and reads each file's Parquet footer with ranged reads.
//!
//! Nothing here is fatal except an unreadable root: everything else lands in
//! [`ExportInventory::warnings`] (reported) or [`ExportInventory::problems`] (must stop a
//! restore). The format reference is `docs/rds-export-format.md`.
//!
//! Modules: [`metadata`] (JSON parsing), [`layout`] (objects → tables, batches), [`footers`]
//! (Parquet footers). The assembly steps ([`assemble`], [`apply_footers`]) are pure, so every
//! combination can be tested without I/O.

pub mod export_info;
pub mod footers;
pub mod layout;
pub mod metadata;

pub use footers::{Footer, FooterError};
pub use metadata::{ColumnMapping, ExportInfo};

use anyhow::anyhow;
use bytes::Bytes;
use fleet_io::clients::Clients;
use fleet_io::objects::{self, ObjectInfo};
use futures::stream::{self, StreamExt};
use metadata::{Emptiness, StatusEntry, TableEntry};
use protocol::ident::one_line;
use protocol::layout::rds::{self as rds_layout, database_folder, split_target};
use protocol::{ObjectLocation, S3Options};
use std::collections::{BTreeMap, BTreeSet};

/// What an export holds for one database.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ExportInventory {
    /// The export id, from the metadata file names (or `export_info`).
    pub export_id: Option<String>,
    /// The database that was asked for.
    pub database: String,
    /// `export_info_<id>.json`, parsed tolerantly; `None` (and a warning) if absent or
    /// unreadable.
    pub info: Option<ExportInfo>,
    /// The COMPLETE tables of the requested database, sorted by `schema_and_table`. Tables
    /// whose status is not COMPLETE are left out (a warning names each).
    pub tables: Vec<ExportTable>,
    /// Reported, not fatal: AWS warning entries, tables not exported, oddities.
    pub warnings: Vec<String>,
    /// Must stop a restore: each names the table and file or folder.
    pub problems: Vec<String>,
}

impl ExportInventory {
    /// The table whose metadata target is `<database>.<schema_and_table>`.
    pub fn table(&self, schema_and_table: &str) -> Option<&ExportTable> {
        self.tables
            .iter()
            .find(|t| t.schema_and_table == schema_and_table)
    }

    pub fn total_rows(&self) -> u64 {
        self.tables.iter().map(|t| t.rows).sum()
    }

    pub fn total_files(&self) -> usize {
        self.tables.iter().map(|t| t.files.len()).sum()
    }
}

/// One exported table.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ExportTable {
    /// The raw metadata target, `<db>.<schema>.<table>`.
    pub target: String,
    /// `target` without `<db>.`; may contain more dots than one (ambiguous: resolve it against
    /// the target catalog).
    pub schema_and_table: String,
    pub status: String,
    pub size_gb: Option<f64>,
    /// `tableStatistics`, raw (its fields are undocumented).
    pub statistics: Option<serde_json::Value>,
    /// `schemaMetadata.originalTypeMappings`, in column order (empty if the metadata has none:
    /// a warning says so).
    pub columns: Vec<ColumnMapping>,
    /// The table's folder relative to the export root, e.g. `shop/public.my_table/`; `None`
    /// when nothing lies under it.
    pub folder: Option<String>,
    /// Every part file under the folder, in natural key order.
    pub files: Vec<ParquetFile>,
    /// Every folder holding part files or `_SUCCESS`, in natural order.
    pub batches: Vec<Batch>,
    /// Sum of the footers' row counts.
    pub rows: u64,
}

impl ExportTable {
    pub fn column_names(&self) -> Vec<String> {
        self.columns.iter().map(|c| c.column_name.clone()).collect()
    }
}

/// One Parquet part file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ParquetFile {
    /// Relative to the export root.
    pub key: String,
    pub size: u64,
    /// Rows per row group, in order (empty when the footer could not be read: a problem says
    /// so).
    pub row_groups: Vec<u64>,
    /// Top-level Parquet field names, in schema order.
    pub fields: Vec<String>,
}

impl ParquetFile {
    pub fn rows(&self) -> u64 {
        self.row_groups.iter().sum()
    }
}

/// A folder holding part files or a `_SUCCESS` marker: `1/`, `2/` …, a partition's batch
/// folder, or the table folder itself in the older flat layout.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Batch {
    /// Relative to the export root, ending with `/`.
    pub prefix: String,
    pub has_success: bool,
    pub part_files: usize,
}

/// The longest warning or problem. Notes quote names and values from the export (a target
/// alone can be 191 characters), so the bound is wider than for a parse error.
pub const MAX_NOTE_CHARS: usize = 600;

/// Warnings and problems gathered along the way. Each one is one line of at most
/// [`MAX_NOTE_CHARS`] characters: control characters that came from the export's metadata or
/// object keys are escaped, and a note built from absurdly long values is cut off with `…`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Notes {
    pub warnings: Vec<String>,
    pub problems: Vec<String>,
}

impl Notes {
    pub fn warn(&mut self, msg: impl Into<String>) {
        self.warnings.push(one_line(&msg.into(), MAX_NOTE_CHARS));
    }
    pub fn problem(&mut self, msg: impl Into<String>) {
        self.problems.push(one_line(&msg.into(), MAX_NOTE_CHARS));
    }
    pub fn is_empty(&self) -> bool {
        self.warnings.is_empty() && self.problems.is_empty()
    }
}

/// Discover what the export at `root` holds for `database`. Errors only when the root itself
/// cannot be read (or holds no export at all); everything else is a warning or a problem in
/// the inventory.
pub async fn discover(
    ctx: &Clients,
    root: &ObjectLocation,
    s3: &S3Options,
    database: &str,
    require_success: bool,
) -> anyhow::Result<ExportInventory> {
    let mut inventory = discover_metadata(ctx, root, s3, database, require_success).await?;
    let files: Vec<(String, u64)> = inventory
        .tables
        .iter()
        .flat_map(|t| t.files.iter().map(|f| (f.key.clone(), f.size)))
        .collect();
    let results = footers::read_footers(ctx, root, s3, &files).await;
    let by_key: BTreeMap<String, Result<Footer, FooterError>> =
        files.into_iter().map(|(k, _)| k).zip(results).collect();
    apply_footers(&mut inventory, &by_key);
    Ok(inventory)
}

/// [`discover`] without the Parquet footers: the listing and the metadata documents only
/// (`coordinator check`). Files come back with empty `row_groups` and `fields`.
pub async fn discover_metadata(
    ctx: &Clients,
    root: &ObjectLocation,
    s3: &S3Options,
    database: &str,
    require_success: bool,
) -> anyhow::Result<ExportInventory> {
    let db_folder = database_folder(database);
    let (meta, data) = tokio::join!(
        objects::list(ctx, root, s3, "export_"),
        objects::list(ctx, root, s3, &db_folder)
    );
    let meta = meta.map_err(|e| unreadable_root(root, &e.to_string()))?;
    let data = data.map_err(|e| unreadable_root(root, &e.to_string()))?;
    // Only top-level metadata: `export_*/` could be a database folder.
    let meta: Vec<ObjectInfo> = meta.into_iter().filter(|o| !o.key.contains('/')).collect();
    if meta.is_empty() && data.is_empty() {
        return Err(no_export_here(ctx, root, s3, database).await);
    }

    let docs: Vec<(String, Result<Bytes, String>)> = stream::iter(meta.iter())
        .map(|o| async move {
            let got = objects::get(ctx, root, s3, &o.key)
                .await
                .map_err(|e| e.to_string());
            (o.key.clone(), got)
        })
        .buffered(footers::CONCURRENCY)
        .collect()
        .await;

    Ok(assemble(database, &docs, &data, require_success))
}

fn unreadable_root(root: &ObjectLocation, err: &str) -> anyhow::Error {
    let what = match root {
        ObjectLocation::S3 { .. } => {
            "Check the URL (s3://bucket/prefix/<export_id>/: the bucket name and the trailing \
             export id), the region, and the AWS credentials (default chain: AWS_PROFILE, \
             AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, instance role) and that they may \
             s3:ListBucket and s3:GetObject there (and kms:Decrypt for the export's KMS key)"
        }
        ObjectLocation::File { .. } => {
            "Check that the folder exists and is readable, and that the URL is the export's own \
             folder (file:///dir/<export_id>/)"
        }
    };
    anyhow!("cannot read the RDS export at {root}: {err}. {what}")
}

/// The root lists nothing useful: say what is there instead (other exports one level down,
/// other folders), so the user can fix the URL.
async fn no_export_here(
    ctx: &Clients,
    root: &ObjectLocation,
    s3: &S3Options,
    database: &str,
) -> anyhow::Error {
    let (folders, exports) = probe(ctx, root, s3).await;
    let mut msg = format!(
        "no RDS export at {root}: found no export_info_*.json, no export_tables_info_*.json and \
         no {} folder. The URL must be the export's own folder, ending with the export id \
         (…/<export_id>/)",
        database_folder(database)
    );
    if !exports.is_empty() {
        let urls: Vec<String> = exports.iter().map(|id| root.join(id).to_string()).collect();
        msg.push_str(&format!(
            "; exports found one level down: {}",
            urls.join(", ")
        ));
    } else if !folders.is_empty() {
        msg.push_str(&format!(
            "; it holds these folders: {} (is {database:?} the right database?)",
            folders.join(", ")
        ));
    } else {
        msg.push_str("; it is empty or does not exist");
    }
    anyhow!(msg)
}

/// Bounded look at the root: its sub-folders (at most 50) and which of them (at most 20
/// checked) hold an `export_info_*.json`.
async fn probe(ctx: &Clients, root: &ObjectLocation, s3: &S3Options) -> (Vec<String>, Vec<String>) {
    const MAX_FOLDERS: usize = 50;
    const MAX_CHECKED: usize = 20;
    let mut folders = Vec::new();
    let mut exports = Vec::new();
    match root {
        ObjectLocation::S3 { bucket, prefix } => {
            let client = ctx.s3(s3).await;
            let Ok(out) = client
                .list_objects_v2()
                .bucket(bucket)
                .prefix(prefix)
                .delimiter("/")
                .max_keys(1000)
                .send()
                .await
            else {
                return (folders, exports);
            };
            for p in out.common_prefixes() {
                if let Some(rel) = p.prefix().and_then(|p| p.strip_prefix(prefix.as_str())) {
                    folders.push(rel.to_string());
                }
            }
            folders.truncate(MAX_FOLDERS);
            for f in folders.iter().take(MAX_CHECKED) {
                let found = client
                    .list_objects_v2()
                    .bucket(bucket)
                    .prefix(format!("{prefix}{f}export_info_"))
                    .max_keys(1)
                    .send()
                    .await
                    .is_ok_and(|o| o.key_count().unwrap_or(0) > 0 || !o.contents().is_empty());
                if found {
                    exports.push(f.clone());
                }
            }
        }
        ObjectLocation::File { root } => {
            let Ok(mut rd) = tokio::fs::read_dir(root).await else {
                return (folders, exports);
            };
            while let Ok(Some(e)) = rd.next_entry().await {
                if e.file_type().await.is_ok_and(|t| t.is_dir()) {
                    folders.push(format!("{}/", e.file_name().to_string_lossy()));
                }
                if folders.len() >= MAX_FOLDERS {
                    break;
                }
            }
            folders.sort();
            for f in folders.iter().take(MAX_CHECKED) {
                let Ok(mut rd) = tokio::fs::read_dir(format!("{root}/{f}")).await else {
                    continue;
                };
                while let Ok(Some(e)) = rd.next_entry().await {
                    if rds_layout::export_info_id(&e.file_name().to_string_lossy()).is_some() {
                        exports.push(f.clone());
                        break;
                    }
                }
            }
        }
    }
    (folders, exports)
}

/// Everything but the footers: parse the metadata documents (`docs`: top-level `export_*`
/// objects and their contents, or why they could not be read), map the tables of `database`
/// to the objects listed under its folder (`listing`, keys relative to the export root).
/// Files come back with empty `row_groups`/`fields`; [`apply_footers`] fills them.
pub fn assemble(
    database: &str,
    docs: &[(String, Result<Bytes, String>)],
    listing: &[ObjectInfo],
    require_success: bool,
) -> ExportInventory {
    let mut notes = Notes::default();
    let mut infos = Vec::new();
    let mut tables_docs = Vec::new();
    let mut ids = BTreeSet::new();
    for (key, body) in docs {
        if let Some(id) = rds_layout::export_info_id(key) {
            ids.insert(id.to_string());
            infos.push((key, body));
        } else if rds_layout::is_tables_info(key) {
            match rds_layout::tables_info_name(key) {
                Some(n) => {
                    ids.insert(n.export_id.clone());
                    tables_docs.push((key, body, Some(n)));
                }
                None => {
                    notes.warn(format!(
                        "{key}: unexpected name (expected \
                         export_tables_info_<id>_from_<N>_to_<M>.json); read anyway"
                    ));
                    tables_docs.push((key, body, None));
                }
            }
        } else {
            notes.warn(format!(
                "unexpected object {key} at the export root ignored"
            ));
        }
    }
    if ids.len() > 1 {
        notes.problem(format!(
            "the export root holds the metadata of several exports ({}): point the URL at one \
             export's folder",
            ids.iter().cloned().collect::<Vec<_>>().join(", ")
        ));
    }

    let info = read_info(&infos, &mut notes);
    let entries = read_tables_info(&mut tables_docs, &mut notes);
    let export_id = info
        .as_ref()
        .and_then(|i| i.export_task_identifier.clone())
        .or_else(|| ids.iter().next().cloned());

    // The tables of the requested database, deduplicated.
    let mut mine: Vec<TableEntry> = Vec::new();
    let mut databases = BTreeSet::new();
    let mut any_table = false;
    for entry in entries {
        match entry {
            StatusEntry::Warning { target, message } => notes.warn(format!(
                "AWS export warning for {}: {message}",
                target.as_deref().unwrap_or("(no target)")
            )),
            StatusEntry::Table(t) => {
                any_table = true;
                if split_target(&t.target, database).is_none() {
                    if let Some((db, _)) = t.target.split_once('.') {
                        databases.insert(db.to_string());
                    }
                    continue;
                }
                if let Some(prev) = mine.iter().find(|m| m.target == t.target) {
                    if prev.status == t.status && prev.columns == t.columns {
                        notes.warn(format!(
                            "table {:?} is listed twice ({} and {}); identical, kept once",
                            t.target, prev.source, t.source
                        ));
                    } else {
                        notes.problem(format!(
                            "table {:?} is listed twice with different metadata ({} and {}): \
                             cannot tell which is right",
                            t.target, prev.source, t.source
                        ));
                    }
                    continue;
                }
                mine.push(t);
            }
        }
    }
    if mine.is_empty() && any_table {
        notes.problem(format!(
            "no table of database {database:?} in the export metadata (it lists databases: {}): \
             check the database name",
            databases.into_iter().collect::<Vec<_>>().join(", ")
        ));
    }

    // Folders: every table of the database claims one (COMPLETE or not).
    let db_folder = database_folder(database);
    let claims: Vec<layout::FolderClaim> = mine
        .iter()
        .map(|t| layout::FolderClaim {
            target: t.target.clone(),
            folder: rds_layout::table_folder(
                database,
                split_target(&t.target, database).unwrap_or_default(),
            ),
            check: t.is_complete(),
        })
        .collect();
    let contents = layout::assign(&db_folder, listing, &claims, require_success, &mut notes);

    let mut tables = Vec::new();
    for ((entry, claim), found) in mine.into_iter().zip(claims).zip(contents) {
        let schema_and_table = split_target(&entry.target, database)
            .unwrap_or_default()
            .to_string();
        if let Some(w) = &entry.warning_message {
            notes.warn(format!("AWS export warning for {}: {w}", entry.target));
        }
        if !entry.is_complete() {
            match &entry.status {
                Some(s) => notes.warn(format!(
                    "table {:?} has status {s:?}, not COMPLETE: AWS did not export it; left out",
                    entry.target
                )),
                None => notes.problem(format!(
                    "table {:?} has no status in {}: cannot tell whether it was exported",
                    entry.target, entry.source
                )),
            }
            continue;
        }
        if !entry.has_column_metadata {
            notes.warn(format!(
                "table {:?} has no column metadata (schemaMetadata.originalTypeMappings) in {}: \
                 its files are only checked against each other",
                entry.target, entry.source
            ));
        }
        check_empty(&entry, &claim.folder, &found, &mut notes);
        tables.push(ExportTable {
            schema_and_table,
            status: entry.status.clone().unwrap_or_default(),
            size_gb: entry.size_gb,
            statistics: entry.table_statistics.clone(),
            columns: entry.columns.clone(),
            folder: found.exists.then(|| claim.folder.clone()),
            files: found
                .files
                .iter()
                .map(|o| ParquetFile {
                    key: o.key.clone(),
                    size: o.size,
                    row_groups: Vec::new(),
                    fields: Vec::new(),
                })
                .collect(),
            batches: found.batches,
            rows: 0,
            target: entry.target,
        });
    }
    tables.sort_by(|a, b| a.schema_and_table.cmp(&b.schema_and_table));

    ExportInventory {
        export_id,
        database: database.to_string(),
        info,
        tables,
        warnings: notes.warnings,
        problems: notes.problems,
    }
}

fn read_info(infos: &[(&String, &Result<Bytes, String>)], notes: &mut Notes) -> Option<ExportInfo> {
    let Some((key, body)) = infos.first() else {
        notes.warn(
            "no export_info_<id>.json at the export root: the export task's status is unknown",
        );
        return None;
    };
    let bytes = match body {
        Ok(b) => b,
        Err(e) => {
            notes.warn(format!("{key} could not be read: {e}"));
            return None;
        }
    };
    let info = match metadata::parse_export_info(key, bytes, notes) {
        Ok(i) => i,
        Err(e) => {
            notes.warn(format!("{e}; export status unknown"));
            return None;
        }
    };
    let id = rds_layout::export_info_id(key).unwrap_or_default();
    if let Some(t) = &info.export_task_identifier {
        if t != id {
            notes.warn(format!(
                "{key} names export {t:?}, but its file name says {id:?}"
            ));
        }
    }
    match info.status.as_deref() {
        Some(s) if s.trim().eq_ignore_ascii_case("COMPLETE") => {
            if let Some(p) = info.percent_progress.filter(|p| *p < 100.0) {
                notes.warn(format!("{key}: status COMPLETE but percentProgress {p}"));
            }
        }
        Some(s) => notes.problem(format!(
            "{key}: the export task's status is {s:?}, not COMPLETE: the export is unfinished \
             or failed"
        )),
        None => notes.warn(format!("{key} has no status")),
    }
    Some(info)
}

fn read_tables_info(
    docs: &mut [(
        &String,
        &Result<Bytes, String>,
        Option<rds_layout::TablesInfoName>,
    )],
    notes: &mut Notes,
) -> Vec<StatusEntry> {
    if docs.is_empty() {
        notes.problem(
            "no export_tables_info_<id>_from_<N>_to_<M>.json at the export root: cannot tell \
             which tables the export holds",
        );
        return Vec::new();
    }
    docs.sort_by(|a, b| {
        let r = |n: &Option<rds_layout::TablesInfoName>| n.as_ref().map(|n| (n.from, n.to));
        r(&a.2).cmp(&r(&b.2)).then_with(|| a.0.cmp(b.0))
    });
    // The ranges should tile 1..=M (inferred from real names: 1-based, inclusive).
    let mut next = 1u64;
    for (key, _, name) in docs.iter() {
        if let Some(n) = name {
            if n.from != next {
                notes.warn(format!(
                    "{key} starts at {} where {next} was expected: a tables-info file may be \
                     missing or overlapping",
                    n.from
                ));
            }
            next = n.to.saturating_add(1);
        }
    }
    let mut out = Vec::new();
    for (key, body, _) in docs.iter() {
        match body {
            Ok(bytes) => match metadata::parse_tables_info(key, bytes, notes) {
                Ok(entries) => out.extend(entries),
                Err(e) => notes.problem(format!("{e}: the tables it lists are unknown")),
            },
            Err(e) => notes.problem(format!(
                "{key} could not be read ({e}): the tables it lists are unknown"
            )),
        }
    }
    out
}

/// A table without part files: fine if its folder has `_SUCCESS` or the metadata says it is
/// empty; a problem otherwise.
fn check_empty(
    entry: &TableEntry,
    folder: &str,
    found: &layout::FolderContents,
    notes: &mut Notes,
) {
    if !found.files.is_empty() || found.ambiguous {
        return;
    }
    let marked = found.batches.iter().any(|b| b.has_success);
    let t = &entry.target;
    match (marked, entry.emptiness()) {
        (true, Emptiness::Rows(n)) => notes.problem(format!(
            "table {t:?}: its metadata counts {n} rows but {folder} holds no part file"
        )),
        (true, _) | (false, Emptiness::NoRows) => {}
        (false, Emptiness::ZeroSize) => notes.warn(format!(
            "table {t:?}: no part file and no _SUCCESS under {folder}; treated as empty because \
             its metadata says sizeGB 0"
        )),
        (false, e) => {
            let why = match e {
                Emptiness::Rows(n) => format!("its metadata counts {n} rows"),
                Emptiness::Size(gb) => format!("its metadata says sizeGB {gb}"),
                _ => "its metadata does not say it is empty".into(),
            };
            notes.problem(format!(
                "table {t:?}: no part file and no _SUCCESS under {folder}, but {why}: files are \
                 missing (or the export was copied incompletely)"
            ));
        }
    }
}

/// Fill in the footers read for each file (by key); unreadable footers and columns that
/// disagree with the metadata become problems.
pub fn apply_footers(
    inventory: &mut ExportInventory,
    footers: &BTreeMap<String, Result<Footer, FooterError>>,
) {
    let mut problems = Vec::new();
    for table in &mut inventory.tables {
        let expected = table.column_names();
        // Without column metadata, the first readable file is the reference.
        let mut reference: Option<(String, Vec<String>)> =
            (!expected.is_empty()).then(|| ("the metadata".to_string(), expected.clone()));
        // Column disagreements grouped by difference, so 1000 bad files make one problem.
        let mut mismatches: BTreeMap<(String, String), Vec<String>> = BTreeMap::new();
        for file in &mut table.files {
            match footers.get(&file.key) {
                Some(Ok(f)) => {
                    file.row_groups = f.row_groups.clone();
                    file.fields = f.fields.clone();
                }
                Some(Err(e)) => {
                    problems.push(format!("table {:?}: {} {e}", table.target, file.key));
                    continue;
                }
                None => {
                    problems.push(format!(
                        "table {:?}: {} footer was not read",
                        table.target, file.key
                    ));
                    continue;
                }
            }
            let (source, cols) =
                reference.get_or_insert_with(|| (file.key.clone(), file.fields.clone()));
            if let Some(diff) = footers::compare_columns(cols, &file.fields) {
                mismatches
                    .entry((source.clone(), diff.to_string()))
                    .or_default()
                    .push(file.key.clone());
            }
        }
        for ((source, diff), keys) in mismatches {
            let files = if keys.len() == 1 {
                keys[0].clone()
            } else {
                format!(
                    "{} files ({}{})",
                    keys.len(),
                    keys.iter().take(3).cloned().collect::<Vec<_>>().join(", "),
                    if keys.len() > 3 { ", …" } else { "" }
                )
            };
            problems.push(format!(
                "table {:?}: the Parquet fields of {files} disagree with the columns of {source}: \
                 {diff}",
                table.target
            ));
        }
        table.rows = table.files.iter().map(ParquetFile::rows).sum();
    }
    inventory
        .problems
        .extend(problems.iter().map(|p| one_line(p, MAX_NOTE_CHARS)));
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    fn doc(key: &str, v: Value) -> (String, Result<Bytes, String>) {
        (key.to_string(), Ok(Bytes::from(v.to_string())))
    }

    fn obj(key: &str) -> ObjectInfo {
        ObjectInfo {
            key: key.into(),
            size: 100,
        }
    }

    fn table(target: &str, cols: &[&str]) -> Value {
        json!({
            "tableStatistics": {"extractionStartTime": "x"},
            "schemaMetadata": {"originalTypeMappings": cols.iter().map(|c| json!({
                "columnName": c, "originalType": "text", "expectedExportedType": "binary (UTF8)",
                "originalCharMaxLength": 0, "originalNumPrecision": 0, "originalDateTimePrecision": 0
            })).collect::<Vec<_>>()},
            "status": "COMPLETE", "sizeGB": 0.5, "target": target
        })
    }

    fn info(id: &str) -> (String, Result<Bytes, String>) {
        doc(
            &format!("export_info_{id}.json"),
            json!({"exportTaskIdentifier": id, "status": "COMPLETE", "percentProgress": 100}),
        )
    }

    fn footer(rows: &[u64], fields: &[&str]) -> Result<Footer, FooterError> {
        Ok(Footer {
            row_groups: rows.to_vec(),
            fields: fields.iter().map(|s| s.to_string()).collect(),
        })
    }

    #[test]
    fn split_tables_info_files_dotted_names_and_other_databases() {
        let docs = vec![
            info("e1"),
            doc(
                "export_tables_info_e1_from_3_to_4.json",
                json!({"perTableStatus": [table("shop.my.schema.t.x", &["a"]),
                                          table("other.public.t", &["a"])]}),
            ),
            doc(
                "export_tables_info_e1_from_1_to_2.json",
                json!({"perTableStatus": [
                    {"warningMessage": "no tables", "target": "postgres"},
                    table("shop.public.a", &["id", "v"])]}),
            ),
        ];
        let listing = vec![
            obj("shop/public.a/1/part-00000-u-c000.gz.parquet"),
            obj("shop/public.a/1/_SUCCESS"),
            obj("shop/my.schema.t.x/1/part-00000-u-c000.gz.parquet"),
            obj("shop/my.schema.t.x/1/_SUCCESS"),
        ];
        let inv = assemble("shop", &docs, &listing, true);
        assert_eq!(inv.problems, Vec::<String>::new());
        assert_eq!(inv.export_id.as_deref(), Some("e1"));
        assert_eq!(
            inv.warnings,
            vec!["AWS export warning for postgres: no tables"]
        );
        let names: Vec<_> = inv
            .tables
            .iter()
            .map(|t| t.schema_and_table.as_str())
            .collect();
        assert_eq!(names, ["my.schema.t.x", "public.a"]);
        let a = inv.table("public.a").unwrap();
        assert_eq!(a.folder.as_deref(), Some("shop/public.a/"));
        assert_eq!(a.column_names(), ["id", "v"]);
        assert_eq!(a.files.len(), 1);
        assert_eq!(a.batches.len(), 1);
    }

    #[test]
    fn metadata_gaps_and_missing_files_are_reported() {
        let docs = vec![doc(
            "export_tables_info_e1_from_2_to_3.json",
            json!({"PerTableStatus": [
                table("shop.public.gone", &["a"]),
                {"TableStatistics": {}, "Status": "FAILED", "Target": "shop.public.failed"},
                {"TableStatistics": {}, "Status": "COMPLETE", "SizeGB": 0, "Target": "shop.public.empty"},
                {"TableStatistics": {}, "Target": "shop.public.nostatus"},
            ]}),
        )];
        let listing = vec![obj("shop/public.failed/1/part-00000-u-c000.gz.parquet")];
        let inv = assemble("shop", &docs, &listing, true);
        let w = inv.warnings.join("\n");
        let p = inv.problems.join("\n");
        assert!(w.contains("no export_info"), "{w}");
        assert!(w.contains("starts at 2 where 1 was expected"), "{w}");
        assert!(
            w.contains("\"shop.public.failed\" has status \"FAILED\""),
            "{w}"
        );
        assert!(
            w.contains("\"shop.public.empty\": no part file and no _SUCCESS"),
            "{w}"
        );
        assert!(
            w.contains("\"shop.public.empty\" has no column metadata"),
            "{w}"
        );
        assert!(p.contains("\"shop.public.gone\": no part file"), "{p}");
        assert!(p.contains("sizeGB 0.5"), "{p}");
        assert!(p.contains("\"shop.public.nostatus\" has no status"), "{p}");
        assert!(!p.contains("failed"), "{p}");
        let names: Vec<_> = inv
            .tables
            .iter()
            .map(|t| t.schema_and_table.as_str())
            .collect();
        assert_eq!(names, ["public.empty", "public.gone"]);
        assert_eq!(inv.table("public.empty").unwrap().folder, None);
    }

    #[test]
    fn wrong_database_and_several_exports() {
        let docs = vec![
            info("e1"),
            info("e2"),
            doc(
                "export_tables_info_e1_from_1_to_1.json",
                json!({"perTableStatus": [table("shop.public.a", &["a"])]}),
            ),
        ];
        let inv = assemble("shp", &docs, &[], true);
        let p = inv.problems.join("\n");
        assert!(p.contains("several exports (e1, e2)"), "{p}");
        assert!(
            p.contains("no table of database \"shp\"") && p.contains("shop"),
            "{p}"
        );

        let docs = vec![info("e1")];
        let inv = assemble("shop", &docs, &[], true);
        assert!(
            inv.problems[0].contains("no export_tables_info"),
            "{:?}",
            inv.problems
        );

        let docs = vec![
            doc("export_info_e1.json", json!({"status": "FAILED"})),
            (
                "export_tables_info_e1_from_1_to_1.json".into(),
                Err("AccessDenied".into()),
            ),
        ];
        let inv = assemble("shop", &docs, &[], true);
        let p = inv.problems.join("\n");
        assert!(p.contains("status is \"FAILED\""), "{p}");
        assert!(p.contains("could not be read (AccessDenied)"), "{p}");
    }

    #[test]
    fn duplicate_targets() {
        let docs = vec![
            doc(
                "export_tables_info_e_from_1_to_1.json",
                json!({"perTableStatus": [table("d.s.t", &["a"])]}),
            ),
            doc(
                "export_tables_info_e_from_2_to_3.json",
                json!({"perTableStatus": [table("d.s.t", &["a"]), table("d.s.u", &["a"])]}),
            ),
            doc(
                "export_tables_info_e_from_4_to_4.json",
                json!({"perTableStatus": [table("d.s.u", &["b"])]}),
            ),
        ];
        let listing = vec![
            obj("d/s.t/1/part-0.parquet"),
            obj("d/s.t/1/_SUCCESS"),
            obj("d/s.u/1/part-0.parquet"),
            obj("d/s.u/1/_SUCCESS"),
        ];
        let inv = assemble("d", &docs, &listing, true);
        assert!(inv
            .warnings
            .iter()
            .any(|w| w.contains("\"d.s.t\" is listed twice")));
        assert_eq!(inv.problems.len(), 1);
        assert!(inv.problems[0].contains("\"d.s.u\" is listed twice with different"));
        assert_eq!(inv.tables.len(), 2);
    }

    #[test]
    fn footers_fill_rows_and_check_columns() {
        let docs = vec![
            info("e"),
            doc(
                "export_tables_info_e_from_1_to_2.json",
                json!({"perTableStatus": [table("d.s.t", &["id", "v"]),
                    {"tableStatistics": {}, "status": "COMPLETE", "target": "d.s.nometa"}]}),
            ),
        ];
        let listing: Vec<ObjectInfo> = [
            "d/s.t/1/part-00000-u-c000.gz.parquet",
            "d/s.t/1/part-00001-u-c000.gz.parquet",
            "d/s.t/1/part-00002-u-c000.gz.parquet",
            "d/s.t/1/part-00003-u-c000.gz.parquet",
            "d/s.t/1/_SUCCESS",
            "d/s.nometa/part-00000-u-c000.gz.parquet",
            "d/s.nometa/part-00001-u-c000.gz.parquet",
            "d/s.nometa/_SUCCESS",
        ]
        .into_iter()
        .map(obj)
        .collect();
        let mut inv = assemble("d", &docs, &listing, true);
        assert!(inv.problems.is_empty(), "{:?}", inv.problems);
        let footers: BTreeMap<String, Result<Footer, FooterError>> = [
            (
                "d/s.t/1/part-00000-u-c000.gz.parquet",
                footer(&[10, 5], &["v", "id"]),
            ),
            (
                "d/s.t/1/part-00001-u-c000.gz.parquet",
                footer(&[3], &["id", "w"]),
            ),
            (
                "d/s.t/1/part-00002-u-c000.gz.parquet",
                footer(&[3], &["id", "w"]),
            ),
            (
                "d/s.t/1/part-00003-u-c000.gz.parquet",
                Err(FooterError::Corrupt("Corrupt footer".into())),
            ),
            (
                "d/s.nometa/part-00000-u-c000.gz.parquet",
                footer(&[1], &["x"]),
            ),
            (
                "d/s.nometa/part-00001-u-c000.gz.parquet",
                footer(&[2], &["y"]),
            ),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        apply_footers(&mut inv, &footers);
        let t = inv.table("s.t").unwrap();
        assert_eq!(t.rows, 21);
        assert_eq!(t.files[0].row_groups, vec![10, 5]);
        assert_eq!(inv.table("s.nometa").unwrap().rows, 3);
        let p = inv.problems.join("\n");
        assert_eq!(inv.problems.len(), 3, "{p}");
        assert!(
            p.contains(
                "table \"d.s.t\": d/s.t/1/part-00003-u-c000.gz.parquet is corrupt or not Parquet"
            ),
            "{p}"
        );
        assert!(
            p.contains(
                "the Parquet fields of 2 files (d/s.t/1/part-00001-u-c000.gz.parquet, \
             d/s.t/1/part-00002-u-c000.gz.parquet) disagree with the columns of the metadata: \
             missing \"v\"; unexpected \"w\""
            ),
            "{p}"
        );
        assert!(
            p.contains(
                "d/s.nometa/part-00001-u-c000.gz.parquet disagree with the columns of \
             d/s.nometa/part-00000-u-c000.gz.parquet"
            ),
            "{p}"
        );
    }
}
