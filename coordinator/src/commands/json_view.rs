//! What `--json` prints (`status`, `status JOB`, `plan`): output-only views, a documented
//! contract kept apart from the stored formats. Plans and jobs are also stored as JSON in the
//! state database, where their serde shapes must not change; these views may, by version.
//!
//! Rules every document follows:
//! - a top-level `"version"` ([`VERSION`]). Within a version fields may be added, never renamed,
//!   removed or retyped; anything else is a new version.
//! - no Rust enum shapes: one of several variants is an object with a `"kind"` string
//!   (`{"kind": "integer", "column": "id"}`), never `{"Integer": {…}}` or `"Integer"`.
//! - a table is named by its `schema.name` string (`"table"`, also in lists and references, as
//!   the text output shows it); per-table entries also carry `"schema"` and `"name"` apart,
//!   exact for names that contain dots.
//! - counts are numbers; `null` means "not known" or "unbounded", as each field says.

use crate::export::plan::{ExportPlan, KeyChoice, TablePlan};
use crate::job::{ChunkWork, JobRun, TableWork};
use crate::store::{JobSummary, TableSummary};
use protocol::{ChunkRange, OutputFormat, QualifiedName};
use serde::Serialize;

/// The version of every JSON document the coordinator prints.
pub const VERSION: u32 = 1;

/// `coordinator status --json`: the newest jobs (after `--state` / `--limit`), newest first.
#[derive(Debug, Serialize)]
pub struct JobList<'a> {
    pub version: u32,
    pub jobs: Vec<Job<'a>>,
    /// Dead-lettered messages no job could be read from (newest 20).
    pub unparseable_dead_letters: Vec<DeadLetter<'a>>,
}

impl<'a> JobList<'a> {
    pub fn new(jobs: &'a [JobSummary], orphans: &'a [(String, String)]) -> Self {
        Self {
            version: VERSION,
            jobs: jobs.iter().map(Job::from).collect(),
            unparseable_dead_letters: orphans
                .iter()
                .map(|(reason, preview)| DeadLetter { reason, preview })
                .collect(),
        }
    }
}

/// A message the dead-letter queue received that names no job.
#[derive(Debug, Serialize)]
pub struct DeadLetter<'a> {
    /// Why RabbitMQ dead-lettered it (`rejected`, `delivery_limit`, …).
    pub reason: &'a str,
    /// The start of the message body.
    pub preview: &'a str,
}

/// One job, in `status --json` (`jobs[]`) and `status JOB --json` (`job`).
#[derive(Debug, Serialize)]
pub struct Job<'a> {
    pub id: &'a str,
    pub name: &'a str,
    /// `export` or `restore`.
    pub kind: &'a str,
    /// `submitted`, `running`, `cancelling`, `succeeded`, `failed` or `cancelled`.
    pub state: &'a str,
    /// Why it failed or was cancelled; `null` otherwise.
    pub error: Option<&'a str>,
    /// Chunks (export) or pieces (restore) planned; 0 until planned.
    pub chunks_total: i64,
    pub chunks_done: i64,
    /// Published, no result yet (in flight).
    pub chunks_queued: i64,
    pub chunks_failed: i64,
    pub rows: i64,
    pub bytes: i64,
    pub dead_letters: i64,
    /// Results ignored as duplicates or stale attempts.
    pub duplicate_results: i64,
    pub notes: &'a [String],
}

impl<'a> From<&'a JobSummary> for Job<'a> {
    fn from(s: &'a JobSummary) -> Self {
        Self {
            id: &s.id,
            name: &s.name,
            kind: &s.kind,
            state: &s.state,
            error: s.error.as_deref(),
            chunks_total: s.chunks_total,
            chunks_done: s.chunks_done,
            chunks_queued: s.chunks_queued,
            chunks_failed: s.chunks_failed,
            rows: s.rows,
            bytes: s.bytes,
            dead_letters: s.dead_letters,
            duplicate_results: s.duplicate_results,
            notes: &s.notes,
        }
    }
}

/// `coordinator status JOB --json`.
#[derive(Debug, Serialize)]
pub struct JobStatus<'a> {
    pub version: u32,
    pub job: Job<'a>,
    /// In plan order.
    pub tables: Vec<TableStatus<'a>>,
}

impl<'a> JobStatus<'a> {
    pub fn new(job: &'a JobSummary, tables: &'a [TableSummary]) -> Self {
        Self {
            version: VERSION,
            job: Job::from(job),
            tables: tables.iter().map(TableStatus::from).collect(),
        }
    }
}

/// One table's progress in `status JOB --json`.
#[derive(Debug, Serialize)]
pub struct TableStatus<'a> {
    /// `schema.name`.
    pub table: &'a str,
    pub schema: &'a str,
    pub name: &'a str,
    pub chunks_total: i64,
    pub chunks_done: i64,
    pub chunks_queued: i64,
    pub chunks_failed: i64,
    pub rows: i64,
    pub bytes: i64,
    /// The latest error of a failed chunk; `null` if none failed.
    pub last_error: Option<&'a str>,
    /// Restore: rows the export's Parquet footers promise; `null` for an export.
    pub expected_rows: Option<i64>,
}

impl<'a> From<&'a TableSummary> for TableStatus<'a> {
    fn from(t: &'a TableSummary) -> Self {
        Self {
            table: &t.table,
            schema: &t.schema,
            name: &t.name,
            chunks_total: t.chunks_total,
            chunks_done: t.chunks_done,
            chunks_queued: t.chunks_queued,
            chunks_failed: t.chunks_failed,
            rows: t.rows,
            bytes: t.bytes,
            last_error: t.last_error.as_deref(),
            expected_rows: t.expected_rows,
        }
    }
}

/// `coordinator plan EXPORT_SPEC --json`.
#[derive(Debug, Serialize)]
pub struct ExportPlanView<'a> {
    pub version: u32,
    /// Always `export`.
    pub kind: &'static str,
    /// The spec's `name`.
    pub name: &'a str,
    /// `current_database()` of the source.
    pub database: &'a str,
    /// Where the parts go (`s3://bucket/prefix/` or `file:///dir/`).
    pub output: String,
    /// `csv`, `csv.gz` or `rds-parquet`, as in the spec.
    pub format: &'static str,
    /// Sorted by table name.
    pub tables: Vec<ExportTable<'a>>,
    pub notes: &'a [String],
}

impl<'a> ExportPlanView<'a> {
    pub fn new(name: &'a str, output: String, format: OutputFormat, plan: &'a ExportPlan) -> Self {
        Self {
            version: VERSION,
            kind: "export",
            name,
            database: &plan.database,
            output,
            format: format_name(format),
            tables: plan.tables.iter().map(ExportTable::from).collect(),
            notes: &plan.notes,
        }
    }
}

/// The spec's spelling of an output format.
pub fn format_name(format: OutputFormat) -> &'static str {
    match format {
        OutputFormat::Csv => "csv",
        OutputFormat::CsvGz => "csv.gz",
        OutputFormat::RdsParquet => "rds-parquet",
    }
}

/// One table of an export plan.
#[derive(Debug, Serialize)]
pub struct ExportTable<'a> {
    /// `schema.name`.
    pub table: String,
    pub schema: &'a str,
    pub name: &'a str,
    /// Every column exported, in order.
    pub columns: Vec<ExportColumn<'a>>,
    /// How the table is split.
    pub key: Key<'a>,
    /// Read `FROM ONLY` the table (legacy inheritance children export on their own); false for
    /// a partitioned table, read through its parent.
    pub own_rows_only: bool,
    pub estimated_rows: u64,
    pub estimated_bytes: u64,
    /// One entry per part, in part order; together they cover every row once.
    pub chunks: Vec<Chunk<'a>>,
}

impl<'a> From<&'a TablePlan> for ExportTable<'a> {
    fn from(t: &'a TablePlan) -> Self {
        Self {
            table: t.table.display_name(),
            schema: &t.table.schema,
            name: &t.table.name,
            columns: t
                .columns
                .iter()
                .enumerate()
                .map(|(i, name)| {
                    let ty = t.column_types.get(i);
                    ExportColumn {
                        name,
                        typname: ty.map(|t| t.typname.as_str()),
                        data_type: ty.map(|t| t.data_type.as_str()),
                        char_max_length: ty.and_then(|t| t.char_max_length),
                        numeric_precision: ty.and_then(|t| t.numeric_precision),
                        datetime_precision: ty.and_then(|t| t.datetime_precision),
                    }
                })
                .collect(),
            key: Key::from(&t.key),
            own_rows_only: t.own_rows_only,
            estimated_rows: t.estimated_rows,
            estimated_bytes: t.estimated_bytes,
            chunks: t.chunks.iter().map(Chunk::from).collect(),
        }
    }
}

/// A column of an exported table; type fields are `null` when not known.
#[derive(Debug, Serialize)]
pub struct ExportColumn<'a> {
    pub name: &'a str,
    /// `pg_type.typname` (`int8`, `text`, …).
    pub typname: Option<&'a str>,
    /// `information_schema.columns.data_type` (`bigint`, `character varying`, …).
    pub data_type: Option<&'a str>,
    pub char_max_length: Option<i32>,
    pub numeric_precision: Option<i32>,
    pub datetime_precision: Option<i32>,
}

/// How a table is split, by `"kind"`:
/// - `{"kind": "integer", "column": "id"}`: value ranges of an integer column;
/// - `{"kind": "unique", "columns": [{"name": "id", "type": "pg_catalog.uuid"}]}`: row-value
///   ranges of a unique key of any types, at sampled quantiles;
/// - `{"kind": "pages"}`: heap page (`ctid`) ranges, one consistent snapshot;
/// - `{"kind": "whole"}`: one chunk (no key to split on).
#[derive(Debug, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Key<'a> {
    Integer { column: &'a str },
    Unique { columns: Vec<KeyColumn<'a>> },
    Pages,
    Whole,
}

impl<'a> From<&'a KeyChoice> for Key<'a> {
    fn from(k: &'a KeyChoice) -> Self {
        match k {
            KeyChoice::Integer { column } => Key::Integer { column },
            KeyChoice::Unique { columns } => Key::Unique {
                columns: columns
                    .iter()
                    .map(|c| KeyColumn {
                        name: &c.name,
                        type_name: c.type_name.display_name(),
                    })
                    .collect(),
            },
            KeyChoice::Pages => Key::Pages,
            KeyChoice::Whole => Key::Whole,
        }
    }
}

/// One column of a unique key.
#[derive(Debug, Serialize)]
pub struct KeyColumn<'a> {
    pub name: &'a str,
    /// The type its bounds are cast to, `schema.typname`.
    #[serde(rename = "type")]
    pub type_name: String,
}

/// Which rows one chunk reads, by `"kind"`. Ranges are half-open (`lo` included, `hi` not);
/// a `null` bound is unbounded, so the first and last chunks also take rows added after
/// planning:
/// - `{"kind": "all"}`: the whole table;
/// - `{"kind": "integer_range", "column": "id", "lo": 1, "hi": 5000}`;
/// - `{"kind": "key_is_null", "column": "id"}`: the rows whose (nullable) key is NULL;
/// - `{"kind": "page_range", "lo": 0, "hi": 128}`: heap pages;
/// - `{"kind": "unique_range", "columns": ["a", "b"], "lo": ["1", "x"], "hi": null}`: row
///   values of a unique key, each bound one text value per column.
#[derive(Debug, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Chunk<'a> {
    All,
    IntegerRange {
        column: &'a str,
        lo: Option<i64>,
        hi: Option<i64>,
    },
    KeyIsNull {
        column: &'a str,
    },
    PageRange {
        lo: Option<u32>,
        hi: Option<u32>,
    },
    UniqueRange {
        columns: Vec<&'a str>,
        lo: Option<&'a [String]>,
        hi: Option<&'a [String]>,
    },
}

impl<'a> From<&'a ChunkRange> for Chunk<'a> {
    fn from(c: &'a ChunkRange) -> Self {
        match c {
            ChunkRange::All => Chunk::All,
            ChunkRange::Key { column, lo, hi } => Chunk::IntegerRange {
                column,
                lo: *lo,
                hi: *hi,
            },
            ChunkRange::KeyIsNull { column } => Chunk::KeyIsNull { column },
            ChunkRange::Pages { lo, hi } => Chunk::PageRange { lo: *lo, hi: *hi },
            ChunkRange::Tuple { columns, lo, hi } => Chunk::UniqueRange {
                columns: columns.iter().map(|c| c.name.as_str()).collect(),
                lo: lo.as_deref(),
                hi: hi.as_deref(),
            },
        }
    }
}

/// `coordinator plan RESTORE_SPEC --json`.
#[derive(Debug, Serialize)]
pub struct RestorePlanView<'a> {
    pub version: u32,
    /// Always `restore`.
    pub kind: &'static str,
    /// The spec's `name`.
    pub name: &'a str,
    /// No problems: a restore would load (the exit status is 0 too).
    pub ok: bool,
    /// The export root (`export.url`) and the database folder in it.
    pub export: &'a str,
    pub database: &'a str,
    /// In plan order.
    pub tables: Vec<RestoreTable<'a>>,
    /// `waves[0]` loads first: the `schema.name` of each table per wave.
    pub waves: Vec<Vec<String>>,
    /// Foreign keys dropped before loading and put back after (FK cycles; every key between
    /// loaded tables with `defer_foreign_keys`).
    pub dropped_foreign_keys: Vec<ForeignKey<'a>>,
    /// Secondary indexes dropped during the load and rebuilt after (`defer_indexes`).
    pub dropped_indexes: Vec<Index<'a>>,
    /// Sequences set past the loaded maxima at the end.
    pub sequences: Vec<Sequence<'a>>,
    /// Non-empty tables emptied first (`non_empty = "truncate"`), `schema.name`.
    pub truncate: Vec<String>,
    pub notes: &'a [String],
    pub warnings: &'a [String],
    /// Each stops the restore before anything loads.
    pub problems: &'a [String],
}

impl<'a> RestorePlanView<'a> {
    pub fn new(
        spec: &'a protocol::spec::RestoreSpec,
        job: &'a JobRun,
        warnings: &'a [String],
        problems: &'a [String],
    ) -> Self {
        let state = job.restore_state();
        let table_name = |t: u32| {
            job.tables
                .get(t as usize)
                .map(|t| t.name().display_name())
                .unwrap_or_default()
        };
        Self {
            version: VERSION,
            kind: "restore",
            name: &spec.name,
            ok: problems.is_empty(),
            export: &spec.export.url,
            database: &spec.export.database,
            tables: job
                .tables
                .iter()
                .enumerate()
                .filter_map(|(i, t)| match &t.work {
                    TableWork::Restore(r) => {
                        let pieces = || job.table_chunks(i as u32);
                        let files: std::collections::BTreeSet<&str> = pieces()
                            .filter_map(|c| match &c.work {
                                ChunkWork::Restore(p) => Some(p.key.as_str()),
                                ChunkWork::Export(_) => None,
                            })
                            .collect();
                        Some(RestoreTable {
                            table: r.table.display_name(),
                            schema: &r.table.schema,
                            name: &r.table.name,
                            wave: r.wave + 1,
                            waits_for: t.depends_on.iter().map(|&d| table_name(d)).collect(),
                            expected_rows: r.expected_rows,
                            columns: r
                                .columns
                                .iter()
                                .map(|c| RestoreColumn {
                                    name: &c.target,
                                    source: &c.source,
                                })
                                .collect(),
                            files: files.len(),
                            tasks: pieces().count(),
                            filter: r.filter.as_deref(),
                        })
                    }
                    TableWork::Export(_) => None,
                })
                .collect(),
            waves: state
                .map(|s| {
                    s.waves
                        .iter()
                        .map(|w| w.iter().map(|&t| table_name(t)).collect())
                        .collect()
                })
                .unwrap_or_default(),
            dropped_foreign_keys: state
                .map(|s| {
                    s.dropped_fks
                        .iter()
                        .map(|k| ForeignKey {
                            name: &k.name,
                            table: k.table.display_name(),
                            referenced: k.referenced.display_name(),
                            definition: &k.definition,
                            validated: k.validated,
                        })
                        .collect()
                })
                .unwrap_or_default(),
            dropped_indexes: state
                .map(|s| {
                    s.dropped_indexes
                        .iter()
                        .map(|i| Index {
                            table: i.table.display_name(),
                            name: &i.name,
                            definition: &i.definition,
                        })
                        .collect()
                })
                .unwrap_or_default(),
            sequences: state
                .map(|s| {
                    s.sequences
                        .iter()
                        .map(|q| Sequence {
                            table: q.table.display_name(),
                            column: &q.column,
                            sequence: &q.sequence,
                        })
                        .collect()
                })
                .unwrap_or_default(),
            truncate: state
                .map(|s| s.truncate.iter().map(QualifiedName::display_name).collect())
                .unwrap_or_default(),
            notes: &job.notes,
            warnings,
            problems,
        }
    }
}

/// One table of a restore plan.
#[derive(Debug, Serialize)]
pub struct RestoreTable<'a> {
    /// `schema.name` in the target.
    pub table: String,
    pub schema: &'a str,
    pub name: &'a str,
    /// Its foreign-key wave, numbered as the text output's `wave N:`: 1 holds the tables that
    /// reference no other loaded table, wave N+1 references wave N at most.
    pub wave: u32,
    /// The tables (`schema.name`) that must finish loading before this one starts: the waves
    /// before it with `defer_foreign_keys = false`, none with the default (keys are checked
    /// once, at the end).
    pub waits_for: Vec<String>,
    /// Rows the export's Parquet footers hold for it.
    pub expected_rows: u64,
    /// The COPY column list, in order.
    pub columns: Vec<RestoreColumn<'a>>,
    /// Parquet files, and tasks (a big file is split into several, by row groups).
    pub files: usize,
    pub tasks: usize,
    /// Only rows matching this SQL condition load (an extension's configuration table); `null`
    /// for every row.
    pub filter: Option<&'a str>,
}

/// A column loaded: its name in the target and the Parquet field it comes from.
#[derive(Debug, Serialize)]
pub struct RestoreColumn<'a> {
    pub name: &'a str,
    pub source: &'a str,
}

#[derive(Debug, Serialize)]
pub struct ForeignKey<'a> {
    pub name: &'a str,
    /// The referencing table, `schema.name`.
    pub table: String,
    pub referenced: String,
    /// `pg_get_constraintdef`, as put back.
    pub definition: &'a str,
    /// Valid before the restore (a `NOT VALID` key is put back `NOT VALID`).
    pub validated: bool,
}

#[derive(Debug, Serialize)]
pub struct Index<'a> {
    pub table: String,
    /// Schema-qualified and quoted.
    pub name: &'a str,
    /// `pg_get_indexdef`, as rebuilt.
    pub definition: &'a str,
}

#[derive(Debug, Serialize)]
pub struct Sequence<'a> {
    pub table: String,
    pub column: &'a str,
    /// Quoted, as `regclass` prints it.
    pub sequence: &'a str,
}

#[cfg(test)]
mod tests {
    use super::*;
    use protocol::KeyColumn as StoredKeyColumn;
    use serde_json::json;

    fn json<T: Serialize>(v: &T) -> serde_json::Value {
        serde_json::to_value(v).expect("views serialize")
    }

    #[test]
    fn keys_are_tagged_by_kind() {
        let integer = KeyChoice::Integer {
            column: "id".into(),
        };
        assert_eq!(
            json(&Key::from(&integer)),
            json!({"kind": "integer", "column": "id"})
        );
        let unique = KeyChoice::Unique {
            columns: vec![StoredKeyColumn {
                name: "u".into(),
                type_name: QualifiedName::new("pg_catalog", "uuid"),
            }],
        };
        assert_eq!(
            json(&Key::from(&unique)),
            json!({"kind": "unique", "columns": [{"name": "u", "type": "pg_catalog.uuid"}]})
        );
        assert_eq!(
            json(&Key::from(&KeyChoice::Pages)),
            json!({"kind": "pages"})
        );
        assert_eq!(
            json(&Key::from(&KeyChoice::Whole)),
            json!({"kind": "whole"})
        );
    }

    #[test]
    fn chunks_are_tagged_by_kind() {
        let cases = [
            (ChunkRange::All, json!({"kind": "all"})),
            (
                ChunkRange::Key {
                    column: "id".into(),
                    lo: None,
                    hi: Some(10),
                },
                json!({"kind": "integer_range", "column": "id", "lo": null, "hi": 10}),
            ),
            (
                ChunkRange::KeyIsNull {
                    column: "id".into(),
                },
                json!({"kind": "key_is_null", "column": "id"}),
            ),
            (
                ChunkRange::Pages {
                    lo: Some(3),
                    hi: None,
                },
                json!({"kind": "page_range", "lo": 3, "hi": null}),
            ),
            (
                ChunkRange::Tuple {
                    columns: vec![StoredKeyColumn {
                        name: "a".into(),
                        type_name: QualifiedName::new("pg_catalog", "text"),
                    }],
                    lo: Some(vec!["x".into()]),
                    hi: None,
                },
                json!({"kind": "unique_range", "columns": ["a"], "lo": ["x"], "hi": null}),
            ),
        ];
        for (stored, shown) in cases {
            assert_eq!(json(&Chunk::from(&stored)), shown, "{stored:?}");
        }
    }

    #[test]
    fn formats_are_the_spec_spelling() {
        for f in [
            OutputFormat::Csv,
            OutputFormat::CsvGz,
            OutputFormat::RdsParquet,
        ] {
            assert_eq!(json(&f), json!(format_name(f)));
        }
    }
}
