//! The export's metadata files, parsed tolerantly: `export_info_<id>.json` and every
//! `export_tables_info_<id>_from_<N>_to_<M>.json` (their names are `protocol::layout::rds`'s).
//!
//! AWS does not document their shape (see `docs/rds-export-format.md`), so nothing
//! here trusts it: keys are matched ignoring case and `_`/`-`, integers may be numbers, floats
//! or strings, unknown fields are ignored, and anything odd becomes a note (a warning or a
//! problem) instead of an error. Pure: bytes in, values and notes out.

use super::Notes;
use protocol::ident::one_line;
use serde_json::{Map, Value};

/// The longest error of [`parse_export_info`] and [`parse_tables_info`]: one line.
pub const MAX_ERROR_CHARS: usize = 300;

/// An object key or a name from the metadata as shown in a message: control characters
/// escaped, at most 200 characters (a real `<db>.<schema>.<table>` is at most 191).
fn clip(s: &str) -> String {
    one_line(s, 200)
}

/// A value from the metadata quoted in a message: `{:?}`-escaped, at most 100 characters.
fn quote(s: &str) -> String {
    match s.char_indices().nth(100) {
        None => format!("{s:?}"),
        Some((cut, _)) => format!("{:?}…", &s[..cut]),
    }
}

/// A JSON value quoted in a message (it can be a whole object): at most 60 characters.
fn json_snippet(v: &Value) -> String {
    one_line(&v.to_string(), 60)
}

/// The error for a document that is not JSON.
fn not_json(key: &str, e: &serde_json::Error) -> String {
    one_line(
        &format!("{} is not valid JSON: {e}", clip(key)),
        MAX_ERROR_CHARS,
    )
}

/// `export_info_<id>.json`. Every field is optional: the file is informational, except
/// `status`, which says whether the export task finished.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ExportInfo {
    /// The object key (relative to the export root) it was read from.
    pub key: String,
    pub export_task_identifier: Option<String>,
    pub source_arn: Option<String>,
    pub export_only: Vec<String>,
    pub snapshot_time: Option<String>,
    pub task_start_time: Option<String>,
    pub task_end_time: Option<String>,
    pub s3_bucket: Option<String>,
    pub s3_prefix: Option<String>,
    pub exported_files_path: Option<String>,
    pub iam_role_arn: Option<String>,
    pub kms_key_id: Option<String>,
    /// `COMPLETE` when the export task finished.
    pub status: Option<String>,
    pub percent_progress: Option<f64>,
    pub total_exported_data_in_gb: Option<f64>,
}

/// One column of `schemaMetadata.originalTypeMappings`, in column order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ColumnMapping {
    pub column_name: String,
    /// `information_schema.columns.data_type` of the source column (`ARRAY` and
    /// `USER-DEFINED` lose the real type: resolve it from the target catalog). Empty if absent.
    pub original_type: String,
    /// `int32`, `int64`, `double`, `boolean`, `binary (UTF8)` … Empty if absent.
    pub expected_exported_type: String,
    pub original_char_max_length: Option<i64>,
    pub original_num_precision: Option<i64>,
    pub original_date_time_precision: Option<i64>,
}

/// One element of `perTableStatus`.
#[derive(Debug, Clone, PartialEq)]
pub enum StatusEntry {
    Table(TableEntry),
    /// `warningMessage` + `target`, no `tableStatistics`.
    Warning {
        target: Option<String>,
        message: String,
    },
}

/// A table element of `perTableStatus`.
#[derive(Debug, Clone, PartialEq)]
pub struct TableEntry {
    /// `<database>.<schema>.<table>`; names may contain dots.
    pub target: String,
    /// `COMPLETE` when the table was exported; `None` when the element has none.
    pub status: Option<String>,
    pub size_gb: Option<f64>,
    /// Inner fields are undocumented: kept raw.
    pub table_statistics: Option<Value>,
    pub columns: Vec<ColumnMapping>,
    /// False when the element has no `schemaMetadata.originalTypeMappings` at all.
    pub has_column_metadata: bool,
    /// A `warningMessage` on a table element (kept, reported).
    pub warning_message: Option<String>,
    /// The metadata file it came from.
    pub source: String,
}

impl TableEntry {
    pub fn is_complete(&self) -> bool {
        self.status
            .as_deref()
            .is_some_and(|s| s.trim().eq_ignore_ascii_case("COMPLETE"))
    }

    /// What the metadata says about the table's rows, for a table without part files.
    pub fn emptiness(&self) -> Emptiness {
        if let Some(stats) = &self.table_statistics {
            let mut counts = Vec::new();
            row_counts(stats, &mut counts);
            if !counts.is_empty() {
                let rows = counts.iter().copied().max().unwrap_or(0);
                return if rows == 0 {
                    Emptiness::NoRows
                } else {
                    Emptiness::Rows(rows)
                };
            }
        }
        match self.size_gb {
            Some(0.0) => Emptiness::ZeroSize,
            Some(gb) => Emptiness::Size(gb),
            None => Emptiness::Unknown,
        }
    }
}

/// Whether a table is empty according to its metadata.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Emptiness {
    /// A row count in `tableStatistics` says 0.
    NoRows,
    /// A row count in `tableStatistics` says this many.
    Rows(i64),
    /// No row count, but `sizeGB` is 0.
    ZeroSize,
    /// No row count; `sizeGB` is this (an empty table can still have a size: dead tuples).
    Size(f64),
    Unknown,
}

/// Integers under keys that look like row counts (`numberOfRows`, `rowCount`, `totalRows` …),
/// anywhere inside `tableStatistics`. The inner fields are undocumented: this is a heuristic.
fn row_counts(v: &Value, out: &mut Vec<i64>) {
    match v {
        Value::Object(map) => {
            for (k, v) in map {
                let n = norm(k);
                if (n.contains("rows") || n.ends_with("rowcount") || n == "numrows")
                    && !v.is_object()
                    && !v.is_array()
                {
                    if let Ok(Some(i)) = int_value(v) {
                        out.push(i);
                    }
                } else {
                    row_counts(v, out);
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|i| row_counts(i, out)),
        _ => {}
    }
}

/// Parse `export_info_<id>.json`. Malformed JSON is an `Err`; odd fields are warnings.
pub fn parse_export_info(key: &str, bytes: &[u8], notes: &mut Notes) -> Result<ExportInfo, String> {
    let root: Value = serde_json::from_slice(bytes).map_err(|e| not_json(key, &e))?;
    let Value::Object(obj) = root else {
        return Err(format!("{}: expected a JSON object", clip(key)));
    };
    let s = |name: &str| field(&obj, name).and_then(string_value);
    let f = |name: &str, notes: &mut Notes| match field(&obj, name) {
        None => None,
        Some(v) => match float_value(v) {
            Ok(x) => x,
            Err(e) => {
                notes.warn(format!("{}: {name}: {e}", clip(key)));
                None
            }
        },
    };
    let export_only = match field(&obj, "exportOnly") {
        Some(Value::Array(items)) => items.iter().filter_map(string_value).collect(),
        Some(v) => string_value(v).into_iter().collect(),
        None => Vec::new(),
    };
    Ok(ExportInfo {
        key: key.to_string(),
        export_task_identifier: s("exportTaskIdentifier"),
        source_arn: s("sourceArn"),
        export_only,
        snapshot_time: s("snapshotTime"),
        task_start_time: s("taskStartTime"),
        task_end_time: s("taskEndTime"),
        s3_bucket: s("s3Bucket"),
        s3_prefix: s("s3Prefix"),
        exported_files_path: s("exportedFilesPath"),
        iam_role_arn: s("iamRoleArn"),
        kms_key_id: s("kmsKeyId"),
        status: s("status"),
        percent_progress: f("percentProgress", notes),
        total_exported_data_in_gb: f("totalExportedDataInGB", notes),
    })
}

/// Parse one `export_tables_info_*.json`. Malformed JSON or a missing `perTableStatus` is an
/// `Err` (the caller makes it a problem: tables may be missing); odd elements are notes.
pub fn parse_tables_info(
    key: &str,
    bytes: &[u8],
    notes: &mut Notes,
) -> Result<Vec<StatusEntry>, String> {
    let root: Value = serde_json::from_slice(bytes).map_err(|e| not_json(key, &e))?;
    let shown_key = clip(key);
    let items = match &root {
        Value::Object(obj) => match field(obj, "perTableStatus") {
            Some(Value::Array(items)) => items,
            Some(_) => return Err(format!("{shown_key}: perTableStatus is not an array")),
            None => return Err(format!("{shown_key}: no perTableStatus array")),
        },
        // Tolerate a bare array of elements.
        Value::Array(items) => items,
        _ => {
            return Err(format!(
                "{shown_key}: expected a JSON object with perTableStatus"
            ))
        }
    };
    let source = key;
    let key = shown_key.as_str();
    let mut out = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let at = format!("{key}: perTableStatus[{i}]");
        let Value::Object(obj) = item else {
            notes.warn(format!("{at} is not an object; ignored"));
            continue;
        };
        let target = field(obj, "target").and_then(string_value);
        let warning = field(obj, "warningMessage").and_then(string_value);
        let stats = field(obj, "tableStatistics").cloned();
        if let (Some(message), None) = (&warning, &stats) {
            out.push(StatusEntry::Warning {
                target,
                message: message.clone(),
            });
            continue;
        }
        let Some(target) = target.filter(|t| !t.is_empty()) else {
            notes.problem(format!(
                "{at} describes a table but has no target: cannot tell which table it is"
            ));
            continue;
        };
        let at = format!("{key}: {}", clip(&target));
        let size_gb = match field(obj, "sizeGB") {
            None => None,
            Some(v) => float_value(v).unwrap_or_else(|e| {
                notes.warn(format!("{at}: sizeGB: {e}"));
                None
            }),
        };
        let mappings = field(obj, "schemaMetadata").and_then(|m| match m {
            Value::Object(m) => field(m, "originalTypeMappings"),
            _ => None,
        });
        let (columns, has_column_metadata) = match mappings {
            Some(Value::Array(cols)) => (parse_columns(&at, cols, notes), true),
            Some(_) => {
                notes.warn(format!(
                    "{at}: schemaMetadata.originalTypeMappings is not an array"
                ));
                (Vec::new(), false)
            }
            None => (Vec::new(), false),
        };
        out.push(StatusEntry::Table(TableEntry {
            target,
            status: field(obj, "status").and_then(string_value),
            size_gb,
            table_statistics: stats,
            columns,
            has_column_metadata,
            warning_message: warning,
            source: source.to_string(),
        }));
    }
    Ok(out)
}

fn parse_columns(at: &str, cols: &[Value], notes: &mut Notes) -> Vec<ColumnMapping> {
    let mut out = Vec::with_capacity(cols.len());
    for (i, c) in cols.iter().enumerate() {
        let Value::Object(obj) = c else {
            notes.problem(format!(
                "{at}: originalTypeMappings[{i}] is not an object: the column list is unreliable"
            ));
            continue;
        };
        let Some(name) = field(obj, "columnName").and_then(string_value) else {
            notes.problem(format!(
                "{at}: originalTypeMappings[{i}] has no columnName: the column list is unreliable"
            ));
            continue;
        };
        let text = |k: &str, notes: &mut Notes| match field(obj, k).and_then(string_value) {
            Some(s) => s,
            None => {
                notes.warn(format!("{at}: column {} has no {k}", quote(&name)));
                String::new()
            }
        };
        let int = |k: &str, notes: &mut Notes| match field(obj, k) {
            None => None,
            Some(v) => int_value(v).unwrap_or_else(|e| {
                notes.warn(format!("{at}: column {}: {k}: {e}", quote(&name)));
                None
            }),
        };
        out.push(ColumnMapping {
            original_type: text("originalType", notes),
            expected_exported_type: text("expectedExportedType", notes),
            original_char_max_length: int("originalCharMaxLength", notes),
            original_num_precision: int("originalNumPrecision", notes),
            original_date_time_precision: int("originalDateTimePrecision", notes),
            column_name: name,
        });
    }
    out
}

/// A key as compared: lowercase, without `_` and `-`.
fn norm(k: &str) -> String {
    k.chars()
        .filter(|c| *c != '_' && *c != '-')
        .flat_map(char::to_lowercase)
        .collect()
}

/// `obj[name]`, matching the key exactly first, then ignoring case, `_` and `-`. A JSON `null`
/// counts as absent.
pub fn field<'a>(obj: &'a Map<String, Value>, name: &str) -> Option<&'a Value> {
    let v = obj.get(name).or_else(|| {
        let want = norm(name);
        obj.iter().find(|(k, _)| norm(k) == want).map(|(_, v)| v)
    })?;
    (!v.is_null()).then_some(v)
}

/// A string, or a number/bool written as text.
pub fn string_value(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// An integer written as a number, an integral float (`255.0`) or a string (`"255"`,
/// `"255.0"`). `null` and `""` are `None`.
pub fn int_value(v: &Value) -> Result<Option<i64>, String> {
    fn from_f64(f: f64) -> Result<i64, String> {
        if f.is_finite() && f.fract() == 0.0 && f.abs() < 9.0e18 {
            Ok(f as i64)
        } else {
            // `{:?}` writes 1e300 as `1e300`, where `{}` writes 301 digits.
            Err(format!("{f:?} is not an integer"))
        }
    }
    match v {
        Value::Null => Ok(None),
        Value::Number(n) => match n.as_i64() {
            Some(i) => Ok(Some(i)),
            None => from_f64(n.as_f64().unwrap_or(f64::NAN)).map(Some),
        },
        Value::String(s) => {
            let t = s.trim();
            if t.is_empty() || t.eq_ignore_ascii_case("null") {
                return Ok(None);
            }
            match t.parse::<i64>() {
                Ok(i) => Ok(Some(i)),
                Err(_) => match t.parse::<f64>() {
                    Ok(f) => from_f64(f).map(Some),
                    Err(_) => Err(format!("{} is not an integer", quote(s))),
                },
            }
        }
        other => Err(format!("{} is not an integer", json_snippet(other))),
    }
}

/// A number written as a number or a string. `null` and `""` are `None`.
pub fn float_value(v: &Value) -> Result<Option<f64>, String> {
    match v {
        Value::Null => Ok(None),
        Value::Number(n) => Ok(n.as_f64()),
        Value::String(s) => {
            let t = s.trim();
            if t.is_empty() || t.eq_ignore_ascii_case("null") {
                return Ok(None);
            }
            t.parse::<f64>()
                .map(Some)
                .map_err(|_| format!("{} is not a number", quote(s)))
        }
        other => Err(format!("{} is not a number", json_snippet(other))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn tables(v: Value) -> (Vec<StatusEntry>, Notes) {
        let mut notes = Notes::default();
        let out = parse_tables_info("t.json", v.to_string().as_bytes(), &mut notes).unwrap();
        (out, notes)
    }

    fn table(e: &StatusEntry) -> &TableEntry {
        match e {
            StatusEntry::Table(t) => t,
            other => panic!("expected a table, got {other:?}"),
        }
    }

    #[test]
    fn parses_camel_case_tables_info() {
        let (entries, notes) = tables(json!({
            "perTableStatus": [
                {"warningMessage": "The database postgres has no tables", "target": "postgres"},
                {"tableStatistics": {"extractionStartTime": "x"},
                 "schemaMetadata": {"originalTypeMappings": [
                    {"columnName": "id", "originalType": "bigint", "expectedExportedType": "int64",
                     "originalCharMaxLength": 0, "originalNumPrecision": 64, "originalDateTimePrecision": 0},
                    {"columnName": "name", "originalType": "character varying",
                     "expectedExportedType": "binary (UTF8)", "originalCharMaxLength": 255,
                     "originalNumPrecision": 0, "originalDateTimePrecision": 0}]},
                 "status": "COMPLETE", "sizeGB": 0.0123, "target": "shop.public.orders"}
            ]
        }));
        assert!(notes.is_empty(), "{notes:?}");
        assert_eq!(
            entries[0],
            StatusEntry::Warning {
                target: Some("postgres".into()),
                message: "The database postgres has no tables".into()
            }
        );
        let t = table(&entries[1]);
        assert_eq!(t.target, "shop.public.orders");
        assert!(t.is_complete());
        assert_eq!(t.size_gb, Some(0.0123));
        assert_eq!(t.columns.len(), 2);
        assert_eq!(t.columns[0].column_name, "id");
        assert_eq!(t.columns[0].original_num_precision, Some(64));
        assert_eq!(t.columns[1].expected_exported_type, "binary (UTF8)");
        assert_eq!(t.columns[1].original_char_max_length, Some(255));
        assert_eq!(t.source, "t.json");
    }

    #[test]
    fn key_case_is_ignored() {
        for (pts, ts, sm, otm, cn) in [
            (
                "PerTableStatus",
                "TableStatistics",
                "SchemaMetadata",
                "OriginalTypeMappings",
                "ColumnName",
            ),
            (
                "pertablestatus",
                "tablestatistics",
                "schemametadata",
                "originaltypemappings",
                "columnname",
            ),
            (
                "PER_TABLE_STATUS",
                "table_statistics",
                "schema_metadata",
                "original_type_mappings",
                "column_name",
            ),
        ] {
            let v = json!({ pts: [
                {ts: {}, sm: {otm: [{cn: "a", "OriginalType": "text", "ORIGINALCHARMAXLENGTH": "10"}]},
                 "Status": "COMPLETE", "Target": "d.s.t", "SizeGB": "1.5"},
                {"WarningMessage": "w", "TARGET": "postgres"}
            ]});
            let (entries, _) = tables(v);
            let t = table(&entries[0]);
            assert_eq!(t.target, "d.s.t");
            assert!(t.is_complete());
            assert_eq!(t.size_gb, Some(1.5));
            assert_eq!(t.columns[0].column_name, "a", "{pts}");
            assert_eq!(t.columns[0].original_type, "text");
            assert_eq!(t.columns[0].original_char_max_length, Some(10));
            assert!(matches!(&entries[1], StatusEntry::Warning { message, .. } if message == "w"));
        }
    }

    #[test]
    fn integers_tolerate_strings_and_floats() {
        assert_eq!(int_value(&json!(5)).unwrap(), Some(5));
        assert_eq!(int_value(&json!(5.0)).unwrap(), Some(5));
        assert_eq!(int_value(&json!("5")).unwrap(), Some(5));
        assert_eq!(int_value(&json!(" 5 ")).unwrap(), Some(5));
        assert_eq!(int_value(&json!("5.0")).unwrap(), Some(5));
        assert_eq!(int_value(&json!("-3")).unwrap(), Some(-3));
        assert_eq!(int_value(&json!("")).unwrap(), None);
        assert_eq!(int_value(&json!(null)).unwrap(), None);
        assert!(int_value(&json!(5.5)).is_err());
        assert!(int_value(&json!("abc")).is_err());
        assert!(int_value(&json!(true)).is_err());
        assert!(int_value(&json!(1e300)).is_err());
        assert_eq!(float_value(&json!("0.25")).unwrap(), Some(0.25));
        assert_eq!(float_value(&json!(3)).unwrap(), Some(3.0));

        let (entries, notes) = tables(json!({"perTableStatus": [
            {"tableStatistics": {}, "status": "COMPLETE", "target": "d.s.t",
             "schemaMetadata": {"originalTypeMappings": [
                {"columnName": "a", "originalType": "numeric", "expectedExportedType": "binary (UTF8)",
                 "originalCharMaxLength": "0", "originalNumPrecision": 12.0, "originalDateTimePrecision": "6.0"},
                {"columnName": "b", "originalType": "text", "expectedExportedType": "binary (UTF8)",
                 "originalCharMaxLength": "lots"}]}}
        ]}));
        let t = table(&entries[0]);
        assert_eq!(t.columns[0].original_char_max_length, Some(0));
        assert_eq!(t.columns[0].original_num_precision, Some(12));
        assert_eq!(t.columns[0].original_date_time_precision, Some(6));
        assert_eq!(t.columns[1].original_char_max_length, None);
        assert_eq!(notes.problems, Vec::<String>::new());
        assert_eq!(notes.warnings.len(), 1);
        assert!(notes.warnings[0].contains("\"b\"") && notes.warnings[0].contains("lots"));
    }

    #[test]
    fn statuses_and_odd_elements() {
        let (entries, notes) = tables(json!({"perTableStatus": [
            {"tableStatistics": {}, "status": "FAILED", "target": "d.s.failed"},
            {"tableStatistics": {}, "target": "d.s.nostatus"},
            {"tableStatistics": {}, "status": "complete", "target": "d.s.lower",
             "warningMessage": "truncated something"},
            {"tableStatistics": {}, "status": "COMPLETE"},
            "junk",
            {"warningMessage": "no target at all"}
        ]}));
        assert_eq!(entries.len(), 4);
        assert!(!table(&entries[0]).is_complete());
        assert!(!table(&entries[1]).is_complete());
        assert_eq!(table(&entries[1]).status, None);
        assert!(!table(&entries[1]).has_column_metadata);
        assert!(table(&entries[2]).is_complete());
        assert_eq!(
            table(&entries[2]).warning_message.as_deref(),
            Some("truncated something")
        );
        assert_eq!(
            entries[3],
            StatusEntry::Warning {
                target: None,
                message: "no target at all".into()
            }
        );
        assert_eq!(notes.problems.len(), 1, "{notes:?}");
        assert!(notes.problems[0].contains("perTableStatus[3]"));
        assert_eq!(notes.warnings.len(), 1);
        assert!(notes.warnings[0].contains("perTableStatus[4]"));
    }

    #[test]
    fn dotted_targets_are_kept_whole() {
        let (entries, _) = tables(json!({"perTableStatus": [
            {"tableStatistics": {}, "status": "COMPLETE", "target": "shop.my.schema.my.table"}
        ]}));
        assert_eq!(table(&entries[0]).target, "shop.my.schema.my.table");
    }

    #[test]
    fn bad_documents_are_errors() {
        let mut notes = Notes::default();
        assert!(parse_tables_info("x.json", b"{not json", &mut notes)
            .unwrap_err()
            .contains("x.json is not valid JSON"));
        assert!(parse_tables_info("x.json", b"{\"other\": []}", &mut notes)
            .unwrap_err()
            .contains("no perTableStatus"));
        assert!(parse_tables_info("x.json", b"{\"perTableStatus\": 3}", &mut notes).is_err());
        // A bare array is accepted.
        let bare = json!([{"tableStatistics": {}, "status": "COMPLETE", "target": "d.s.t"}]);
        assert_eq!(
            parse_tables_info("x.json", bare.to_string().as_bytes(), &mut notes)
                .unwrap()
                .len(),
            1
        );
    }

    #[test]
    fn parses_export_info() {
        let mut notes = Notes::default();
        let v = json!({
            "exportTaskIdentifier": "exp-1", "sourceArn": "arn:aws:rds:us-east-1:1:snapshot:s",
            "exportOnly": ["shop"], "snapshotTime": "2024-01-01", "taskStartTime": "a",
            "taskEndTime": "b", "s3Bucket": "bk", "s3Prefix": "", "exportedFilesPath": "bk/exp-1",
            "iamRoleArn": "arn:role", "kmsKeyId": "arn:kms", "status": "COMPLETE",
            "percentProgress": 100, "totalExportedDataInGB": 0.0042
        });
        let info = parse_export_info(
            "export_info_exp-1.json",
            v.to_string().as_bytes(),
            &mut notes,
        )
        .unwrap();
        assert!(notes.is_empty());
        assert_eq!(info.export_task_identifier.as_deref(), Some("exp-1"));
        assert_eq!(info.export_only, vec!["shop".to_string()]);
        assert_eq!(info.s3_prefix.as_deref(), Some(""));
        assert_eq!(info.status.as_deref(), Some("COMPLETE"));
        assert_eq!(info.percent_progress, Some(100.0));
        assert_eq!(info.total_exported_data_in_gb, Some(0.0042));

        let pascal = json!({"ExportTaskIdentifier": "e", "Status": "FAILED",
                            "PercentProgress": "40", "TotalExportedDataInGB": "1.5", "Extra": 1});
        let info = parse_export_info("k", pascal.to_string().as_bytes(), &mut notes).unwrap();
        assert_eq!(info.export_task_identifier.as_deref(), Some("e"));
        assert_eq!(info.status.as_deref(), Some("FAILED"));
        assert_eq!(info.percent_progress, Some(40.0));
        assert_eq!(info.total_exported_data_in_gb, Some(1.5));
        assert!(parse_export_info("k", b"[]", &mut notes).is_err());
        assert!(parse_export_info("k", b"nope", &mut notes).is_err());
    }

    #[test]
    fn emptiness_from_metadata() {
        let entry = |stats: Value, size: Option<f64>| TableEntry {
            target: "d.s.t".into(),
            status: Some("COMPLETE".into()),
            size_gb: size,
            table_statistics: Some(stats),
            columns: vec![],
            has_column_metadata: false,
            warning_message: None,
            source: String::new(),
        };
        assert_eq!(
            entry(json!({"numberOfRows": 0}), Some(1.0)).emptiness(),
            Emptiness::NoRows
        );
        assert_eq!(
            entry(json!({"x": {"rowCount": "12"}}), Some(0.0)).emptiness(),
            Emptiness::Rows(12)
        );
        assert_eq!(entry(json!({}), Some(0.0)).emptiness(), Emptiness::ZeroSize);
        assert_eq!(
            entry(json!({}), Some(0.1)).emptiness(),
            Emptiness::Size(0.1)
        );
        assert_eq!(entry(json!({}), None).emptiness(), Emptiness::Unknown);
    }
}
