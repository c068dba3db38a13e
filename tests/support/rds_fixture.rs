//! A builder of AWS RDS / Aurora snapshot-export fixtures (GZIP Parquet plus the metadata JSON),
//! able to produce every variant of `docs/rds-export-format.md`: several batch
//! folders, partition batch folders, the older flat layout, split tables-info files, AWS warning
//! entries, empty tables (a batch folder with only `_SUCCESS`, or no folder at all),
//! `_`-substituted folder names, part-number gaps, missing `_SUCCESS`, corrupt Parquet files,
//! Spark side files, tables that are not COMPLETE, Pascal-case keys and integers written as
//! strings or floats.
//!
//! ```no_run
//! use pgfleet_tests::rds_fixture::*;
//! let columns = vec![FixtureColumn::bigint("id"), FixtureColumn::text("name")];
//! // Two batch folders: `1/` with files of 100 and 50 rows, `2/` with one of 10 rows.
//! let t = FixtureTable::generated("public", "orders", columns, &[&[100, 50], &[10]]);
//! let opts = FixtureOptions::new("exp-1", "shop");
//! let written = write_export(std::path::Path::new("/tmp/x"), &opts, &[t]).unwrap();
//! // The export lives in /tmp/x/exp-1/; written.files lists every part file with its rows.
//! ```

use anyhow::{bail, Context, Result};
use arrow::array::{
    new_null_array, ArrayRef, BinaryArray, BooleanArray, Float32Array, Float64Array, Int16Array,
    Int32Array, Int64Array, StringArray,
};
use arrow::datatypes::{DataType, Field, Schema};
use arrow::record_batch::RecordBatch;
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, GzipLevel};
use parquet::file::properties::WriterProperties;
use protocol::layout::{rds as rds_layout, SUCCESS};
use protocol::RdsType;
use serde_json::{json, Map, Value};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// How the metadata JSON spells its keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum KeyCase {
    /// `perTableStatus`, `tableStatistics` (what AWS writes).
    #[default]
    Camel,
    /// `PerTableStatus`, `TableStatistics`.
    Pascal,
    /// `pertablestatus`.
    Lower,
}

/// How the metadata JSON writes the integer fields (`originalCharMaxLength`,
/// `originalNumPrecision`, `originalDateTimePrecision`, `percentProgress`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum IntStyle {
    #[default]
    Number,
    /// `"255"`
    String,
    /// `255.0`
    Float,
}

/// One column: its name, its PostgreSQL `information_schema.columns.data_type` (what AWS
/// writes as `originalType`) and the Arrow type of its Parquet field.
#[derive(Debug, Clone, PartialEq)]
pub struct FixtureColumn {
    pub name: String,
    pub data_type: String,
    pub arrow_type: DataType,
    pub char_max_length: Option<i64>,
    pub num_precision: Option<i64>,
    pub datetime_precision: Option<i64>,
}

impl FixtureColumn {
    pub fn new(name: &str, data_type: &str, arrow_type: DataType) -> Self {
        Self {
            name: name.into(),
            data_type: data_type.into(),
            arrow_type,
            char_max_length: None,
            num_precision: None,
            datetime_precision: None,
        }
    }
    pub fn bigint(name: &str) -> Self {
        Self {
            num_precision: Some(64),
            ..Self::new(name, "bigint", DataType::Int64)
        }
    }
    pub fn integer(name: &str) -> Self {
        Self {
            num_precision: Some(32),
            ..Self::new(name, "integer", DataType::Int32)
        }
    }
    pub fn smallint(name: &str) -> Self {
        Self {
            num_precision: Some(16),
            ..Self::new(name, "smallint", DataType::Int16)
        }
    }
    pub fn double(name: &str) -> Self {
        Self {
            num_precision: Some(53),
            ..Self::new(name, "double precision", DataType::Float64)
        }
    }
    pub fn boolean(name: &str) -> Self {
        Self::new(name, "boolean", DataType::Boolean)
    }
    pub fn text(name: &str) -> Self {
        Self::new(name, "text", DataType::Utf8)
    }
    pub fn varchar(name: &str, len: i64) -> Self {
        Self {
            char_max_length: Some(len),
            ..Self::new(name, "character varying", DataType::Utf8)
        }
    }
    pub fn bytea(name: &str) -> Self {
        Self::new(name, "bytea", DataType::Binary)
    }
    /// Any type AWS exports as text (numeric, timestamptz, uuid, jsonb, arrays …):
    /// `FixtureColumn::as_text("at", "timestamp with time zone")`.
    pub fn as_text(name: &str, data_type: &str) -> Self {
        Self::new(name, data_type, DataType::Utf8)
    }

    /// What AWS writes as `expectedExportedType`.
    pub fn expected_exported_type(&self) -> &'static str {
        let kind = match self.arrow_type {
            DataType::Int64 => RdsType::Int64,
            DataType::Int32 | DataType::Int16 | DataType::Int8 => RdsType::Int32,
            DataType::Float64 => RdsType::Float64,
            DataType::Float32 => RdsType::Float32,
            DataType::Boolean => RdsType::Boolean,
            DataType::Binary | DataType::LargeBinary => RdsType::Binary,
            _ => RdsType::Text,
        };
        kind.exported_type()
    }
}

/// One table of the export.
#[derive(Debug, Clone)]
pub struct FixtureTable {
    /// Default: the export's database.
    pub database: Option<String>,
    pub schema: String,
    pub table: String,
    /// The metadata's `originalTypeMappings`. The Parquet fields come from the record batches'
    /// own schemas, so a batch with other fields makes metadata and files disagree.
    pub columns: Vec<FixtureColumn>,
    /// Batch folder → part files, one record batch per file. An empty inner vector is a batch
    /// folder with only `_SUCCESS` (an empty table); an empty outer vector writes no folder.
    pub batches: Vec<Vec<RecordBatch>>,
    /// Batch folder names instead of `1`, `2` …; may contain `/` (e.g. partition folders
    /// `part_a/1`).
    pub batch_names: Option<Vec<String>>,
    /// Part files directly in the table folder (the older layout), with `_SUCCESS` there.
    /// Default: the export's `flat_layout`. Only the first batch is used.
    pub flat: Option<bool>,
    /// Indexes into `batches` whose folder gets no `_SUCCESS`.
    pub omit_success: Vec<usize>,
    /// (batch, file) indexes of part files to truncate after writing (corrupt footer).
    pub corrupt_files: Vec<(usize, usize)>,
    /// Rows per row group (default: one row group per file).
    pub row_group_rows: Option<usize>,
    /// Default `COMPLETE`.
    pub status: String,
    /// False: files are written but the metadata does not list the table.
    pub in_metadata: bool,
    /// False: the table element has no `schemaMetadata`.
    pub column_metadata: bool,
    /// Default: the bytes written, in GB.
    pub size_gb: Option<f64>,
    /// Default: extraction times and a `partitioningInfo` object.
    pub table_statistics: Option<Value>,
    /// Extra objects (relative path, bytes) written under the table folder: `.crc` files,
    /// stray files, a `_temporary/` leftover …
    pub extra_objects: Vec<(String, Vec<u8>)>,
}

impl FixtureTable {
    pub fn new(schema: &str, table: &str, columns: Vec<FixtureColumn>) -> Self {
        Self {
            database: None,
            schema: schema.into(),
            table: table.into(),
            columns,
            batches: Vec::new(),
            batch_names: None,
            flat: None,
            omit_success: Vec::new(),
            corrupt_files: Vec::new(),
            row_group_rows: None,
            status: "COMPLETE".into(),
            in_metadata: true,
            column_metadata: true,
            size_gb: None,
            table_statistics: None,
            extra_objects: Vec::new(),
        }
    }

    /// A table whose files hold generated rows: `files[b][f]` rows in file `f` of batch folder
    /// `b`. Values are deterministic and unique across the table (see [`sample_batch`]).
    pub fn generated(
        schema: &str,
        table: &str,
        columns: Vec<FixtureColumn>,
        files: &[&[usize]],
    ) -> Self {
        let mut t = Self::new(schema, table, columns);
        let mut start = 0i64;
        for batch in files {
            let mut out = Vec::new();
            for &rows in *batch {
                out.push(sample_batch(&t.columns, start, rows));
                start += rows as i64;
            }
            t.batches.push(out);
        }
        t
    }

    /// `schema.table`, as in the metadata target.
    pub fn schema_and_table(&self) -> String {
        format!("{}.{}", self.schema, self.table)
    }

    /// Total rows of every part file.
    pub fn rows(&self) -> u64 {
        self.batches
            .iter()
            .flatten()
            .map(|b| b.num_rows() as u64)
            .sum()
    }
}

/// Export-wide options.
#[derive(Debug, Clone)]
pub struct FixtureOptions {
    pub export_id: String,
    pub database: String,
    /// Every table in the older flat layout (no batch folders).
    pub flat_layout: bool,
    /// Number of `export_tables_info_*_from_N_to_M.json` files (at least 1).
    pub split_tables_info: usize,
    /// Part numbers 00000, 00002, 00005 … instead of 00000, 00001 …
    pub part_number_gaps: bool,
    pub key_case: KeyCase,
    pub int_style: IntStyle,
    /// Add the warning element every PostgreSQL export seems to carry for `postgres`.
    pub postgres_warning: bool,
    /// Extra warning elements: (target, message).
    pub warnings: Vec<(String, String)>,
    pub write_export_info: bool,
    /// The export task's `status` (default `COMPLETE`).
    pub export_status: String,
    /// Spark's `.part-….crc` / `._SUCCESS.crc` side files next to every file.
    pub crc_files: bool,
    /// Extra objects (relative path, bytes) at the export root.
    pub root_extra_objects: Vec<(String, Vec<u8>)>,
}

impl FixtureOptions {
    pub fn new(export_id: &str, database: &str) -> Self {
        Self {
            export_id: export_id.into(),
            database: database.into(),
            flat_layout: false,
            split_tables_info: 1,
            part_number_gaps: false,
            key_case: KeyCase::Camel,
            int_style: IntStyle::Number,
            postgres_warning: true,
            warnings: Vec::new(),
            write_export_info: true,
            export_status: "COMPLETE".into(),
            crc_files: false,
            root_extra_objects: Vec::new(),
        }
    }
}

impl Default for FixtureOptions {
    fn default() -> Self {
        Self::new("fixture-export", "fixturedb")
    }
}

/// What was written.
#[derive(Debug, Clone)]
pub struct WrittenExport {
    /// The export root: `<dir>/<export_id>`.
    pub root: PathBuf,
    /// Every part file, in write order.
    pub files: Vec<WrittenFile>,
    /// Every metadata file (relative to the root).
    pub metadata_files: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WrittenFile {
    /// The metadata target `<db>.<schema>.<table>`.
    pub target: String,
    /// Relative to the export root.
    pub key: String,
    pub rows: u64,
    pub row_groups: Vec<u64>,
    pub size: u64,
    /// Truncated on purpose.
    pub corrupt: bool,
}

impl WrittenExport {
    /// The part files of one table (by metadata target).
    pub fn files_of(&self, target: &str) -> Vec<&WrittenFile> {
        self.files.iter().filter(|f| f.target == target).collect()
    }
    /// Rows of the readable part files of one table.
    pub fn rows_of(&self, target: &str) -> u64 {
        self.files_of(target)
            .iter()
            .filter(|f| !f.corrupt)
            .map(|f| f.rows)
            .sum()
    }
}

/// Deterministic rows `start..start+rows` for `columns`: integers count up from `start`, text
/// is `<column>-<n>`, every 7th value of a text, binary, float or boolean column is NULL, and
/// every 11th text value is the empty string.
pub fn sample_batch(columns: &[FixtureColumn], start: i64, rows: usize) -> RecordBatch {
    let ns: Vec<i64> = (start..start + rows as i64).collect();
    let null = |n: i64| n % 7 == 6;
    let mut fields = Vec::new();
    let mut arrays: Vec<ArrayRef> = Vec::new();
    for c in columns {
        let a: ArrayRef = match &c.arrow_type {
            DataType::Int64 => Arc::new(Int64Array::from_iter_values(ns.iter().copied())),
            DataType::Int32 => Arc::new(Int32Array::from_iter_values(ns.iter().map(|&n| n as i32))),
            DataType::Int16 => Arc::new(Int16Array::from_iter_values(
                ns.iter().map(|&n| (n % 30000) as i16),
            )),
            DataType::Float64 => Arc::new(Float64Array::from_iter(
                ns.iter().map(|&n| (!null(n)).then_some(n as f64 * 0.5)),
            )),
            DataType::Float32 => Arc::new(Float32Array::from_iter(
                ns.iter().map(|&n| (!null(n)).then_some(n as f32 * 0.5)),
            )),
            DataType::Boolean => Arc::new(BooleanArray::from_iter(
                ns.iter().map(|&n| (!null(n)).then_some(n % 2 == 0)),
            )),
            DataType::Utf8 => Arc::new(StringArray::from_iter(ns.iter().map(|&n| {
                (!null(n)).then(|| {
                    if n % 11 == 10 {
                        String::new()
                    } else {
                        format!("{}-{n}", c.name)
                    }
                })
            }))),
            DataType::Binary => Arc::new(BinaryArray::from_iter(
                ns.iter()
                    .map(|&n| (!null(n)).then(|| n.to_le_bytes().to_vec())),
            )),
            other => new_null_array(other, rows),
        };
        fields.push(Field::new(&c.name, c.arrow_type.clone(), true));
        arrays.push(a);
    }
    let schema = Arc::new(Schema::new(fields));
    if arrays.is_empty() {
        return RecordBatch::new_empty(schema);
    }
    RecordBatch::try_new(schema, arrays).expect("sample batch matches its schema")
}

/// GZIP Parquet bytes of `batch`, in row groups of `row_group_rows`.
pub fn parquet_bytes(batch: &RecordBatch, row_group_rows: Option<usize>) -> Result<Vec<u8>> {
    let props = WriterProperties::builder()
        .set_compression(Compression::GZIP(GzipLevel::default()))
        .set_max_row_group_row_count(row_group_rows.or(Some(1024 * 1024)))
        .set_created_by("parquet-mr version 1.10.1 (pgfleet fixture)".into())
        .build();
    let mut buf = Vec::new();
    let mut w = ArrowWriter::try_new(&mut buf, batch.schema(), Some(props))?;
    w.write(batch)?;
    w.close()?;
    Ok(buf)
}

/// Rows per row group that `parquet_bytes` produces for `rows` rows.
fn row_group_split(rows: u64, per_group: Option<usize>) -> Vec<u64> {
    let per = per_group.unwrap_or(1024 * 1024).max(1) as u64;
    let mut out = Vec::new();
    let mut left = rows;
    while left > 0 {
        out.push(left.min(per));
        left -= left.min(per);
    }
    out
}

/// Write an export into `<dir>/<export_id>/`. Returns what was written.
pub fn write_export(
    dir: &Path,
    opts: &FixtureOptions,
    tables: &[FixtureTable],
) -> Result<WrittenExport> {
    if opts.split_tables_info == 0 {
        bail!("split_tables_info must be at least 1");
    }
    let root = dir.join(&opts.export_id);
    std::fs::create_dir_all(&root).with_context(|| format!("creating {}", root.display()))?;
    let mut written = WrittenExport {
        root: root.clone(),
        files: Vec::new(),
        metadata_files: Vec::new(),
    };
    let mut elements: Vec<Value> = Vec::new();
    if opts.postgres_warning {
        elements.push(json!({
            "warningMessage": "The database postgres has no tables to export",
            "target": "postgres"
        }));
    }
    for (target, message) in &opts.warnings {
        elements.push(json!({"warningMessage": message, "target": target}));
    }
    let mut total_bytes = 0u64;
    for t in tables {
        let db = t.database.as_deref().unwrap_or(&opts.database);
        let target = format!("{db}.{}", t.schema_and_table());
        let folder = rds_layout::table_folder(db, &t.schema_and_table());
        let flat = t.flat.unwrap_or(opts.flat_layout);
        let mut bytes = 0u64;
        let batches: Vec<&Vec<RecordBatch>> = if flat {
            t.batches.iter().take(1).collect()
        } else {
            t.batches.iter().collect()
        };
        for (bi, files) in batches.iter().enumerate() {
            let batch_folder = if flat {
                folder.clone()
            } else {
                let name = t
                    .batch_names
                    .as_ref()
                    .and_then(|n| n.get(bi).cloned())
                    .unwrap_or_else(|| (bi + 1).to_string());
                format!("{folder}{}/", name.trim_matches('/'))
            };
            // One uuid per batch folder, like one Spark job.
            let uuid = uuid::Uuid::new_v4();
            for (fi, batch) in files.iter().enumerate() {
                let part = if opts.part_number_gaps {
                    fi * (fi + 3) / 2
                } else {
                    fi
                };
                let key = format!("{batch_folder}part-{part:05}-{uuid}-c000.gz.parquet");
                let mut data = parquet_bytes(batch, t.row_group_rows)?;
                let corrupt = t.corrupt_files.contains(&(bi, fi));
                if corrupt {
                    data.truncate(data.len() / 2);
                }
                bytes += data.len() as u64;
                put(&root, &key, &data)?;
                if opts.crc_files {
                    let crc_key =
                        format!("{batch_folder}.part-{part:05}-{uuid}-c000.gz.parquet.crc");
                    put(&root, &crc_key, b"crc\0")?;
                }
                written.files.push(WrittenFile {
                    target: target.clone(),
                    key,
                    rows: batch.num_rows() as u64,
                    row_groups: row_group_split(batch.num_rows() as u64, t.row_group_rows),
                    size: data.len() as u64,
                    corrupt,
                });
            }
            if !t.omit_success.contains(&bi) {
                put(&root, &format!("{batch_folder}{SUCCESS}"), b"")?;
                if opts.crc_files {
                    put(&root, &format!("{batch_folder}._SUCCESS.crc"), b"crc\0")?;
                }
            }
        }
        for (rel, data) in &t.extra_objects {
            put(&root, &format!("{folder}{rel}"), data)?;
        }
        total_bytes += bytes;
        if !t.in_metadata {
            continue;
        }
        let mut element = Map::new();
        element.insert(
            "tableStatistics".into(),
            t.table_statistics.clone().unwrap_or_else(|| {
                json!({
                    "extractionStartTime": "2026-01-01T00:00:00.000Z",
                    "extractionEndTime": "2026-01-01T00:01:00.000Z",
                    "partitioningInfo": {
                        "numberOfPartitions": t.batches.len(),
                        "numberOfCompletedPartitions": t.batches.len()
                    }
                })
            }),
        );
        if t.column_metadata {
            let mappings: Vec<Value> = t
                .columns
                .iter()
                .map(|c| {
                    json!({
                        "columnName": c.name,
                        "originalType": c.data_type,
                        "expectedExportedType": c.expected_exported_type(),
                        "originalCharMaxLength": int(opts.int_style, c.char_max_length.unwrap_or(0)),
                        "originalNumPrecision": int(opts.int_style, c.num_precision.unwrap_or(0)),
                        "originalDateTimePrecision": int(opts.int_style, c.datetime_precision.unwrap_or(0)),
                    })
                })
                .collect();
            element.insert(
                "schemaMetadata".into(),
                json!({ "originalTypeMappings": mappings }),
            );
        }
        element.insert("status".into(), json!(t.status));
        element.insert(
            "sizeGB".into(),
            json!(t.size_gb.unwrap_or(bytes as f64 / 1e9)),
        );
        element.insert("target".into(), json!(target));
        elements.push(Value::Object(element));
    }

    // Tables-info files: the elements split as evenly as possible, 1-based inclusive ranges.
    let n = opts.split_tables_info.min(elements.len().max(1));
    let per = elements.len().div_ceil(n).max(1);
    let mut from = 1usize;
    let chunks: Vec<&[Value]> = if elements.is_empty() {
        vec![&[]]
    } else {
        elements.chunks(per).collect()
    };
    for chunk in chunks {
        let to = from + chunk.len().max(1) - 1;
        let name = rds_layout::tables_info_key(&opts.export_id, from, to);
        let doc = rename_keys(&json!({ "perTableStatus": chunk }), opts.key_case);
        put(&root, &name, serde_json::to_string_pretty(&doc)?.as_bytes())?;
        written.metadata_files.push(name);
        from = to + 1;
    }

    if opts.write_export_info {
        let info = json!({
            "exportTaskIdentifier": opts.export_id,
            "sourceArn": "arn:aws:rds:us-east-1:123456789012:cluster-snapshot:fixture-snapshot",
            "exportOnly": [],
            "snapshotTime": "Jan 1, 2026 00:00:00 AM",
            "taskStartTime": "Jan 1, 2026 00:05:00 AM",
            "taskEndTime": "Jan 1, 2026 00:25:00 AM",
            "s3Bucket": "fixture-bucket",
            "s3Prefix": "",
            "exportedFilesPath": format!("fixture-bucket/{}", opts.export_id),
            "iamRoleArn": "arn:aws:iam::123456789012:role/export-role",
            "kmsKeyId": "arn:aws:kms:us-east-1:123456789012:key/fixture",
            "status": opts.export_status,
            "percentProgress": int(opts.int_style, 100),
            "totalExportedDataInGB": total_bytes as f64 / 1e9,
        });
        let name = rds_layout::export_info_key(&opts.export_id);
        let doc = rename_keys(&info, opts.key_case);
        put(&root, &name, serde_json::to_string_pretty(&doc)?.as_bytes())?;
        written.metadata_files.push(name);
    }
    for (rel, data) in &opts.root_extra_objects {
        put(&root, rel, data)?;
    }
    Ok(written)
}

fn int(style: IntStyle, v: i64) -> Value {
    match style {
        IntStyle::Number => json!(v),
        IntStyle::String => json!(v.to_string()),
        IntStyle::Float => json!(v as f64),
    }
}

/// Re-spell every object key of `v`.
pub fn rename_keys(v: &Value, case: KeyCase) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.iter()
                .map(|(k, v)| {
                    let k = match case {
                        KeyCase::Camel => k.clone(),
                        KeyCase::Pascal => {
                            let mut c = k.chars();
                            c.next()
                                .map(|f| f.to_uppercase().chain(c).collect())
                                .unwrap_or_default()
                        }
                        KeyCase::Lower => k.to_lowercase(),
                    };
                    (k, rename_keys(v, case))
                })
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.iter().map(|v| rename_keys(v, case)).collect()),
        other => other.clone(),
    }
}

fn put(root: &Path, rel: &str, data: &[u8]) -> Result<()> {
    let path = root.join(rel);
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("creating {}", parent.display()))?;
    }
    std::fs::write(&path, data).with_context(|| format!("writing {}", path.display()))
}

/// Upload every file under `dir` to `s3://bucket/<prefix><relative path>` (`prefix` empty or
/// ending with `/`; one is added if missing). Returns the number of objects uploaded.
pub async fn upload_dir(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    prefix: &str,
    dir: &Path,
) -> Result<usize> {
    let prefix = if prefix.is_empty() || prefix.ends_with('/') {
        prefix.to_string()
    } else {
        format!("{prefix}/")
    };
    let mut files = Vec::new();
    let mut dirs = vec![dir.to_path_buf()];
    while let Some(d) = dirs.pop() {
        for entry in std::fs::read_dir(&d).with_context(|| format!("listing {}", d.display()))? {
            let path = entry?.path();
            if path.is_dir() {
                dirs.push(path);
            } else {
                files.push(path);
            }
        }
    }
    files.sort();
    let uploads = files.iter().map(|path| {
        let rel = path
            .strip_prefix(dir)
            .expect("walked under dir")
            .to_string_lossy()
            .replace('\\', "/");
        let key = format!("{prefix}{rel}");
        async move {
            let data =
                std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
            s3.put_object()
                .bucket(bucket)
                .key(&key)
                .body(aws_sdk_s3::primitives::ByteStream::from(data))
                .send()
                .await
                .with_context(|| format!("uploading s3://{bucket}/{key}"))?;
            anyhow::Ok(())
        }
    });
    use futures::stream::{self, StreamExt, TryStreamExt};
    stream::iter(uploads)
        .buffer_unordered(16)
        .try_collect::<Vec<()>>()
        .await?;
    Ok(files.len())
}
