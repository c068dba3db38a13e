//! The AWS RDS snapshot-export layout for pgfleet's `rds-parquet` format: object keys and the
//! metadata documents, as pure functions (the engine does the I/O).
//!
//! ```text
//! <export root = [prefix/]<export_id>/>
//!   export_info_<export_id>.json
//!   export_tables_info_<export_id>_from_<N>_to_<M>.json
//!   <database>/<schema>.<table>/1/part-<NNNNN>-<uuid>-c000.gz.parquet
//!   <database>/<schema>.<table>/1/_SUCCESS
//! ```
//!
//! Every key here is relative to the export root. Folder names replace `\` `` ` `` `"` and space
//! with `_` as AWS does (and `/`, which AWS never meets because it skips such tables), so they
//! are not identifiers: readers map folders to tables through the metadata.
//! The metadata shapes follow the reference in `docs/rds-export-format.md`; AWS does
//! not document them, so field names follow parsers of real exports.

use protocol::{ColumnType, ObjectLocation, QualifiedName};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::time::{SystemTime, UNIX_EPOCH};

/// The one batch folder pgfleet writes: its chunks are key ranges read in parallel, which is
/// when AWS writes a single `1/` folder too.
pub const BATCH_FOLDER: &str = "1";

/// Tables per `export_tables_info_*` file when the engine splits them.
pub const TABLES_PER_INFO_FILE: usize = 100;

const BYTES_PER_GB: f64 = (1u64 << 30) as f64;

/// A path component as AWS writes it: `\` `` ` `` `"` and space become `_`; so does `/`, which
/// would otherwise add a folder level.
fn path_component(name: &str) -> String {
    name.chars()
        .map(|c| match c {
            '\\' | '`' | '"' | ' ' | '/' => '_',
            c => c,
        })
        .collect()
}

/// `schema.table` with `\` `` ` `` `"` space (and `/`) replaced by `_`.
pub fn folder_name(table: &QualifiedName) -> String {
    format!(
        "{}.{}",
        path_component(&table.schema),
        path_component(&table.name)
    )
}

/// `<database>/<schema>.<table>/1/`: everything of one table.
pub fn table_prefix(database: &str, table: &QualifiedName) -> String {
    format!(
        "{}/{}/{BATCH_FOLDER}/",
        path_component(database),
        folder_name(table)
    )
}

/// `<database>/<folder>/1/part-<seq:05>-<uuid>-c000.gz.parquet`. The uuid is derived from the
/// job and the table, so a re-run of a chunk overwrites its object instead of adding one.
pub fn part_key(database: &str, table: &QualifiedName, seq: u32, job_id: &str) -> String {
    format!(
        "{}part-{seq:05}-{}-c000.gz.parquet",
        table_prefix(database, table),
        part_uuid(job_id, table)
    )
}

/// `<database>/<folder>/1/_SUCCESS`.
pub fn success_key(database: &str, table: &QualifiedName) -> String {
    format!("{}_SUCCESS", table_prefix(database, table))
}

/// A version-4-shaped uuid (what Spark writes) whose bits come from a stable hash of the job id
/// and the table: the same inputs give the same uuid on every machine and every Rust version.
pub fn part_uuid(job_id: &str, table: &QualifiedName) -> uuid::Uuid {
    let mut h = Fnv128::new();
    for part in [job_id, &table.schema, &table.name] {
        h.write(part.as_bytes());
        // Separator that cannot occur in the parts' lengths: length-prefix each part.
        h.write(&(part.len() as u64).to_le_bytes());
    }
    uuid::Builder::from_random_bytes(h.0.to_be_bytes()).into_uuid()
}

/// FNV-1a, 128 bits: tiny, fixed by its specification.
struct Fnv128(u128);

impl Fnv128 {
    const OFFSET: u128 = 0x6c62272e07bb014262b821756295c58d;
    const PRIME: u128 = 0x0000000001000000000000000000013B;

    fn new() -> Self {
        Self(Self::OFFSET)
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 ^= u128::from(b);
            self.0 = self.0.wrapping_mul(Self::PRIME);
        }
    }
}

/// The export's identifier: the last folder of the export root (`s3://b/exports/run1/` →
/// `run1`); the bucket name when the root is a bucket's top level.
pub fn export_id(root: &ObjectLocation) -> String {
    let last = |path: &str| {
        path.trim_end_matches('/')
            .rsplit('/')
            .next()
            .unwrap_or_default()
            .to_string()
    };
    let id = match root {
        ObjectLocation::S3 { bucket, prefix } => {
            let id = last(prefix);
            if id.is_empty() {
                bucket.clone()
            } else {
                id
            }
        }
        ObjectLocation::File { root } => last(root),
    };
    if id.is_empty() {
        "export".into()
    } else {
        id
    }
}

/// `export_info_<id>.json`.
pub fn export_info_key(export_id: &str) -> String {
    format!("export_info_{export_id}.json")
}

/// `export_tables_info_<id>_from_<from>_to_<to>.json`.
pub fn tables_info_key(export_id: &str, from: usize, to: usize) -> String {
    format!("export_tables_info_{export_id}_from_{from}_to_{to}.json")
}

/// `<database>.<schema>.<table>`, the `target` of a table in the metadata (ambiguous when names
/// contain dots, as in AWS's own files).
pub fn target(database: &str, table: &QualifiedName) -> String {
    format!("{database}.{}.{}", table.schema, table.name)
}

/// The Parquet type a column is exported as, in the metadata's words. Matches the worker's
/// encoder (`worker::export::rds_parquet::ColumnKind`).
pub fn expected_exported_type(ty: &ColumnType) -> &'static str {
    match ty.typname.as_str() {
        "int2" | "int4" => "int32",
        "int8" => "int64",
        "float4" => "float",
        "float8" => "double",
        "bool" => "boolean",
        "bytea" => "binary",
        _ => "binary (UTF8)",
    }
}

/// What `export_info_<id>.json` says about the whole export.
#[derive(Debug, Clone)]
pub struct ExportInfo<'a> {
    /// The job whose export this is (only in the placeholder `sourceArn`).
    pub job_id: &'a str,
    pub database: &'a str,
    /// The export root: `[prefix/]<export_id>/`.
    pub root: &'a ObjectLocation,
    /// `exportOnly`: usually the [`target`] of every exported table.
    pub export_only: &'a [String],
    /// When the data was read (the exported snapshot, or the job start).
    pub snapshot_time: SystemTime,
    pub task_start: SystemTime,
    pub task_end: SystemTime,
    /// Bytes of every part file.
    pub total_bytes: u64,
}

/// The `export_info_<id>.json` document.
pub fn export_info_json(info: &ExportInfo<'_>) -> Value {
    let id = export_id(info.root);
    let (bucket, prefix, files_path) = match info.root {
        ObjectLocation::S3 { bucket, prefix } => {
            let prefix = prefix.trim_end_matches('/');
            // The prefix the export was asked to go under: the root without its last folder.
            let parent = if prefix.is_empty() {
                ""
            } else {
                prefix.rsplit_once('/').map_or("", |(p, _)| p)
            };
            (bucket.clone(), parent.to_string(), prefix.to_string())
        }
        ObjectLocation::File { root } => (String::new(), String::new(), root.clone()),
    };
    json!({
        "exportTaskIdentifier": id,
        "sourceArn": format!("pgfleet:{}:{}", info.job_id, info.database),
        "exportOnly": info.export_only,
        "snapshotTime": rfc3339(info.snapshot_time),
        "taskStartTime": rfc3339(info.task_start),
        "taskEndTime": rfc3339(info.task_end),
        "s3Bucket": bucket,
        "s3Prefix": prefix,
        "exportedFilesPath": files_path,
        "iamRoleArn": "",
        "kmsKeyId": "",
        "status": "COMPLETE",
        "percentProgress": 100,
        "totalExportedDataInGB": info.total_bytes as f64 / BYTES_PER_GB,
    })
}

/// One exported table, for `export_tables_info_*`.
#[derive(Debug, Clone)]
pub struct TableInfo<'a> {
    pub table: &'a QualifiedName,
    /// Column names, in export order.
    pub columns: &'a [String],
    /// Same order as `columns`.
    pub column_types: &'a [ColumnType],
    /// Bytes of the table's part files.
    pub size_bytes: u64,
    pub rows: u64,
    /// Chunks (AWS: partitions) the table was read in; all completed.
    pub chunks: u32,
    pub extraction_start: Option<SystemTime>,
    pub extraction_end: Option<SystemTime>,
}

/// The `perTableStatus` element of one table.
fn table_status(database: &str, t: &TableInfo<'_>) -> Value {
    let mappings: Vec<Value> = t
        .columns
        .iter()
        .zip(t.column_types)
        .map(|(name, ty)| {
            json!({
                "columnName": name,
                "originalType": ty.data_type,
                "expectedExportedType": expected_exported_type(ty),
                "originalCharMaxLength": ty.char_max_length.unwrap_or(0),
                "originalNumPrecision": ty.numeric_precision.unwrap_or(0),
                "originalDateTimePrecision": ty.datetime_precision.unwrap_or(0),
            })
        })
        .collect();
    let mut stats = BTreeMap::new();
    if let Some(start) = t.extraction_start {
        stats.insert("extractionStartTime", json!(rfc3339(start)));
    }
    if let Some(end) = t.extraction_end {
        stats.insert("extractionEndTime", json!(rfc3339(end)));
    }
    stats.insert(
        "partitioningInfo",
        json!({
            "numberOfPartitions": t.chunks,
            "numberOfCompletedPartitions": t.chunks,
        }),
    );
    stats.insert("exportedRows", json!(t.rows));
    json!({
        "target": target(database, t.table),
        "status": "COMPLETE",
        "sizeGB": t.size_bytes as f64 / BYTES_PER_GB,
        "tableStatistics": stats,
        "schemaMetadata": { "originalTypeMappings": mappings },
    })
}

/// The warning AWS adds for the default `postgres` database, when it is not the exported one.
fn postgres_warning(database: &str) -> Option<Value> {
    (database != "postgres").then(|| {
        json!({
            "target": "postgres",
            "warningMessage": "Database postgres was not exported: this export contains only \
                               database ".to_string() + database,
        })
    })
}

/// One `export_tables_info_*` document: every table of `tables`, plus the `postgres` warning.
pub fn tables_info_json(database: &str, tables: &[TableInfo<'_>]) -> Value {
    tables_info_document(database, tables, true)
}

fn tables_info_document(database: &str, tables: &[TableInfo<'_>], warnings: bool) -> Value {
    let mut status: Vec<Value> = tables.iter().map(|t| table_status(database, t)).collect();
    if warnings {
        status.extend(postgres_warning(database));
    }
    json!({ "perTableStatus": status })
}

/// All `export_tables_info_*` files of an export, `per_file` tables each (1-based inclusive
/// ranges in the names, the warning in the first file): `(key, document)` pairs.
pub fn tables_info_files(
    export_id: &str,
    database: &str,
    tables: &[TableInfo<'_>],
    per_file: usize,
) -> Vec<(String, Value)> {
    if tables.is_empty() {
        return vec![(
            tables_info_key(export_id, 0, 0),
            tables_info_document(database, &[], true),
        )];
    }
    tables
        .chunks(per_file.max(1))
        .enumerate()
        .map(|(i, group)| {
            let from = i * per_file.max(1) + 1;
            let to = from + group.len() - 1;
            (
                tables_info_key(export_id, from, to),
                tables_info_document(database, group, i == 0),
            )
        })
        .collect()
}

/// Problems of this layout for a set of tables, one line each: names whose folder is not
/// their name, and tables that would share a folder (their files would mix for a reader that
/// walks folders).
pub fn layout_notes(database: &str, tables: &[QualifiedName]) -> Vec<String> {
    let mut notes = Vec::new();
    if database.contains('/') {
        notes.push(format!(
            "database name {database:?} contains '/': its folder is {:?}",
            path_component(database)
        ));
    }
    let mut by_folder: BTreeMap<String, Vec<&QualifiedName>> = BTreeMap::new();
    for t in tables {
        if t.schema.contains('/') || t.name.contains('/') {
            notes.push(format!(
                "{} has '/' in its name (AWS skips such tables); its folder is {}",
                t.display_name(),
                folder_name(t)
            ));
        }
        by_folder.entry(folder_name(t)).or_default().push(t);
    }
    for (folder, names) in by_folder {
        if names.len() > 1 {
            let list: Vec<String> = names.iter().map(|t| t.display_name()).collect();
            notes.push(format!(
                "tables {} share the folder {folder}: tell them apart by the metadata, not by folder",
                list.join(", ")
            ));
        }
    }
    notes
}

/// `2024-01-15T10:30:00.123Z` (UTC, milliseconds).
pub fn rfc3339(t: SystemTime) -> String {
    let since = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = since.as_secs();
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (y, m, d) = civil_from_days(days as i64);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        since.subsec_millis()
    )
}

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian (H. Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn ty(typname: &str, data_type: &str) -> ColumnType {
        ColumnType {
            typname: typname.into(),
            data_type: data_type.into(),
            char_max_length: None,
            numeric_precision: None,
            datetime_precision: None,
        }
    }

    #[test]
    fn keys() {
        let t = QualifiedName::new("sales", "Odd \"Name\" `T`\\x/y");
        assert_eq!(folder_name(&t), "sales.Odd__Name___T__x_y");
        assert_eq!(
            success_key("my db", &t),
            "my_db/sales.Odd__Name___T__x_y/1/_SUCCESS"
        );
        let k = part_key("shop", &QualifiedName::new("public", "orders"), 7, "job-1");
        let re = k
            .strip_prefix("shop/public.orders/1/part-00007-")
            .and_then(|r| r.strip_suffix("-c000.gz.parquet"))
            .unwrap_or_else(|| panic!("{k}"));
        let u = uuid::Uuid::parse_str(re).unwrap();
        assert_eq!(u.get_version_num(), 4);
        assert_eq!(u.hyphenated().to_string(), re);
        // Deterministic per (job, table); different otherwise; the sequence number is separate.
        let orders = QualifiedName::new("public", "orders");
        assert_eq!(part_uuid("job-1", &orders), part_uuid("job-1", &orders));
        assert_ne!(part_uuid("job-2", &orders), part_uuid("job-1", &orders));
        assert_ne!(
            part_uuid("job-1", &QualifiedName::new("public", "order")),
            part_uuid("job-1", &orders)
        );
        assert_ne!(
            part_uuid("job-1", &QualifiedName::new("publico", "rders")),
            part_uuid("job-1", &orders)
        );
        assert_eq!(k, part_key("shop", &orders, 7, "job-1"));
        assert_eq!(part_key("shop", &orders, 123_456, "j").len(), k.len() + 1);
        assert_eq!(export_info_key("run1"), "export_info_run1.json");
        assert_eq!(
            tables_info_key("run1", 1, 20),
            "export_tables_info_run1_from_1_to_20.json"
        );
    }

    #[test]
    fn uuid_is_pinned() {
        // A fixed value: changing the hash would orphan the objects of earlier runs.
        assert_eq!(
            part_uuid("job-1", &QualifiedName::new("public", "orders")).to_string(),
            PINNED_UUID
        );
    }
    const PINNED_UUID: &str = "06ecc0f9-b670-411a-8081-7232f55d33a7";

    #[test]
    fn fnv_matches_the_published_vector() {
        let mut h = Fnv128::new();
        h.write(b"a");
        assert_eq!(h.0, 0xd228cb696f1a8caf78912b704e4a8964);
    }

    #[test]
    fn export_ids() {
        let s3 = |b: &str, p: &str| ObjectLocation::S3 {
            bucket: b.into(),
            prefix: p.into(),
        };
        assert_eq!(export_id(&s3("b", "exports/run1/")), "run1");
        assert_eq!(export_id(&s3("b", "run1/")), "run1");
        assert_eq!(export_id(&s3("b", "")), "b");
        let file = |r: &str| ObjectLocation::File { root: r.into() };
        assert_eq!(export_id(&file("/tmp/x/run2")), "run2");
        assert_eq!(export_id(&file("/")), "export");
    }

    #[test]
    fn export_info_document() {
        let root = ObjectLocation::S3 {
            bucket: "bkt".into(),
            prefix: "exports/nightly/run-7/".into(),
        };
        let t0 = UNIX_EPOCH + Duration::from_millis(1_705_314_600_123);
        let only = vec!["shop.public.orders".to_string()];
        let doc = export_info_json(&ExportInfo {
            job_id: "j1",
            database: "shop",
            root: &root,
            export_only: &only,
            snapshot_time: t0,
            task_start: t0,
            task_end: t0 + Duration::from_secs(61),
            total_bytes: 3 << 29,
        });
        assert_eq!(doc["exportTaskIdentifier"], "run-7");
        assert_eq!(doc["sourceArn"], "pgfleet:j1:shop");
        assert_eq!(doc["exportOnly"], json!(["shop.public.orders"]));
        assert_eq!(doc["snapshotTime"], "2024-01-15T10:30:00.123Z");
        assert_eq!(doc["taskEndTime"], "2024-01-15T10:31:01.123Z");
        assert_eq!(doc["s3Bucket"], "bkt");
        assert_eq!(doc["s3Prefix"], "exports/nightly");
        assert_eq!(doc["exportedFilesPath"], "exports/nightly/run-7");
        assert_eq!(doc["status"], "COMPLETE");
        assert_eq!(doc["percentProgress"], 100);
        assert_eq!(doc["totalExportedDataInGB"], 1.5);
        for key in ["iamRoleArn", "kmsKeyId"] {
            assert!(doc[key].is_string(), "{key}");
        }
        // No prefix: s3Prefix is "".
        let bare = ObjectLocation::S3 {
            bucket: "bkt".into(),
            prefix: "run-8/".into(),
        };
        let doc = export_info_json(&ExportInfo {
            root: &bare,
            ..ExportInfo {
                job_id: "j1",
                database: "shop",
                root: &root,
                export_only: &[],
                snapshot_time: t0,
                task_start: t0,
                task_end: t0,
                total_bytes: 0,
            }
        });
        assert_eq!(doc["s3Prefix"], "");
        assert_eq!(doc["exportTaskIdentifier"], "run-8");
        assert_eq!(doc["totalExportedDataInGB"], 0.0);
    }

    fn sample_types() -> (Vec<String>, Vec<ColumnType>) {
        let mut varchar = ty("varchar", "character varying");
        varchar.char_max_length = Some(40);
        let mut int = ty("int4", "integer");
        int.numeric_precision = Some(32);
        let mut ts = ty("timestamptz", "timestamp with time zone");
        ts.datetime_precision = Some(6);
        let cols = [
            ("id", int),
            ("small", ty("int2", "smallint")),
            ("big", ty("int8", "bigint")),
            ("r", ty("float4", "real")),
            ("d", ty("float8", "double precision")),
            ("ok", ty("bool", "boolean")),
            ("raw", ty("bytea", "bytea")),
            ("name", varchar),
            ("at", ts),
            ("tags", ty("_int4", "ARRAY")),
            ("mood", ty("mood", "USER-DEFINED")),
        ];
        cols.into_iter().map(|(n, t)| (n.to_string(), t)).unzip()
    }

    #[test]
    fn tables_info_document() {
        let (names, types) = sample_types();
        let t = QualifiedName::new("public", "Odd Table");
        let t0 = UNIX_EPOCH + Duration::from_secs(1_705_314_600);
        let info = TableInfo {
            table: &t,
            columns: &names,
            column_types: &types,
            size_bytes: 1 << 29,
            rows: 1234,
            chunks: 3,
            extraction_start: Some(t0),
            extraction_end: None,
        };
        let doc = tables_info_json("shop", std::slice::from_ref(&info));
        let status = doc["perTableStatus"].as_array().unwrap();
        assert_eq!(status.len(), 2);
        let table = &status[0];
        assert_eq!(table["target"], "shop.public.Odd Table");
        assert_eq!(table["status"], "COMPLETE");
        assert_eq!(table["sizeGB"], 0.5);
        assert_eq!(
            table["tableStatistics"]["extractionStartTime"],
            "2024-01-15T10:30:00.000Z"
        );
        assert!(table["tableStatistics"].get("extractionEndTime").is_none());
        assert_eq!(
            table["tableStatistics"]["partitioningInfo"]["numberOfCompletedPartitions"],
            3
        );
        let mappings = table["schemaMetadata"]["originalTypeMappings"]
            .as_array()
            .unwrap();
        let got: Vec<(&str, &str, &str)> = mappings
            .iter()
            .map(|m| {
                (
                    m["columnName"].as_str().unwrap(),
                    m["originalType"].as_str().unwrap(),
                    m["expectedExportedType"].as_str().unwrap(),
                )
            })
            .collect();
        assert_eq!(
            got,
            [
                ("id", "integer", "int32"),
                ("small", "smallint", "int32"),
                ("big", "bigint", "int64"),
                ("r", "real", "float"),
                ("d", "double precision", "double"),
                ("ok", "boolean", "boolean"),
                ("raw", "bytea", "binary"),
                ("name", "character varying", "binary (UTF8)"),
                ("at", "timestamp with time zone", "binary (UTF8)"),
                ("tags", "ARRAY", "binary (UTF8)"),
                ("mood", "USER-DEFINED", "binary (UTF8)"),
            ]
        );
        assert_eq!(mappings[0]["originalNumPrecision"], 32);
        assert_eq!(mappings[0]["originalCharMaxLength"], 0);
        assert_eq!(mappings[7]["originalCharMaxLength"], 40);
        assert_eq!(mappings[8]["originalDateTimePrecision"], 6);
        let warning = &status[1];
        assert_eq!(warning["target"], "postgres");
        assert!(warning["warningMessage"].is_string());
        assert!(warning.get("tableStatistics").is_none());

        // Exporting the postgres database itself: no warning about it.
        let doc = tables_info_json("postgres", std::slice::from_ref(&info));
        assert_eq!(doc["perTableStatus"].as_array().unwrap().len(), 1);
    }

    #[test]
    fn tables_info_split_into_files() {
        let (names, types) = sample_types();
        let tables: Vec<QualifiedName> = (0..5)
            .map(|i| QualifiedName::new("public", format!("t{i}")))
            .collect();
        let infos: Vec<TableInfo> = tables
            .iter()
            .map(|t| TableInfo {
                table: t,
                columns: &names,
                column_types: &types,
                size_bytes: 0,
                rows: 0,
                chunks: 1,
                extraction_start: None,
                extraction_end: None,
            })
            .collect();
        let files = tables_info_files("x", "db", &infos, 2);
        let keys: Vec<&str> = files.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(
            keys,
            [
                "export_tables_info_x_from_1_to_2.json",
                "export_tables_info_x_from_3_to_4.json",
                "export_tables_info_x_from_5_to_5.json",
            ]
        );
        let lens: Vec<usize> = files
            .iter()
            .map(|(_, d)| d["perTableStatus"].as_array().unwrap().len())
            .collect();
        assert_eq!(lens, [3, 2, 1], "the warning goes in the first file only");
        let empty = tables_info_files("x", "db", &[], 2);
        assert_eq!(empty.len(), 1);
        assert_eq!(empty[0].0, "export_tables_info_x_from_0_to_0.json");
    }

    #[test]
    fn layout_problems_are_noted() {
        let tables = [
            QualifiedName::new("public", "a b"),
            QualifiedName::new("public", "a_b"),
            QualifiedName::new("public", "x/y"),
            QualifiedName::new("public", "fine"),
        ];
        let notes = layout_notes("db", &tables);
        assert_eq!(notes.len(), 2, "{notes:?}");
        assert!(notes
            .iter()
            .any(|n| n.contains("x/y") && n.contains("public.x_y")));
        assert!(notes
            .iter()
            .any(|n| n.contains("public.a b, public.a_b") && n.contains("public.a_b")));
        assert!(layout_notes("db", &tables[3..]).is_empty());
    }

    #[test]
    fn timestamps() {
        assert_eq!(rfc3339(UNIX_EPOCH), "1970-01-01T00:00:00.000Z");
        let leap = UNIX_EPOCH + Duration::from_secs(951_825_600); // 2000-02-29T12:00:00Z
        assert_eq!(rfc3339(leap), "2000-02-29T12:00:00.000Z");
        let end = UNIX_EPOCH + Duration::from_millis(4_102_444_799_999);
        assert_eq!(rfc3339(end), "2099-12-31T23:59:59.999Z");
    }
}
