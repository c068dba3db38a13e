//! Task and result messages. JSON on the wire, with a `version` field checked before anything
//! else so that a fleet running mixed versions rejects (dead-letters) what it cannot read instead
//! of misreading it. No message ever carries a secret: credentials are resolved by each process
//! from its own environment.

use crate::ident::{one_line, QualifiedName};
use crate::location::ObjectLocation;
use serde::{Deserialize, Serialize};

/// Bump when a change is not backward compatible.
pub const MESSAGE_VERSION: u32 = 1;

/// The id of the task for chunk `chunk` of job `job_id`: `<job>/<chunk>`, stable across
/// attempts (results are deduplicated by it).
pub fn task_id(job_id: &str, chunk: u32) -> String {
    format!("{job_id}/{chunk}")
}

/// `<job>/<chunk>` → (job, chunk). The job id may itself contain `/`: the chunk is after the
/// last one.
pub fn parse_task_id(task_id: &str) -> Option<(&str, u32)> {
    let (job, chunk) = task_id.rsplit_once('/')?;
    Some((job, chunk.parse().ok()?))
}

/// One unit of work on the task queue.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskEnvelope {
    pub version: u32,
    /// Stable across attempts: `<job>/<chunk>` ([`task_id`]). Results are deduplicated by it.
    pub task_id: String,
    pub job_id: String,
    /// 1 for the first publish; a retry after a reported failure is published with attempt + 1.
    pub attempt: u32,
    pub task: Task,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Task {
    ExportChunk(ExportChunk),
    RestoreFile(RestoreFile),
}

impl Task {
    /// Low-cardinality name for metrics and logs.
    pub fn kind(&self) -> &'static str {
        match self {
            Task::ExportChunk(_) => "export",
            Task::RestoreFile(_) => "restore",
        }
    }
}

/// Load one Parquet file (or a range of its row groups) into one target table, in one
/// transaction that also records it in the target's ledger, so a redelivered task is a no-op.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RestoreFile {
    /// The target database; `read_only` is false.
    pub target: PgConn,
    pub table: QualifiedName,
    /// The COPY column list, in order, each with the Parquet field it comes from.
    pub columns: Vec<RestoreColumn>,
    pub object: ObjectRef,
    /// Half-open range of row groups; `None` means the whole file.
    pub row_groups: Option<RowGroupRange>,
    /// Identity of this piece in the ledger: stable across jobs that restore the same export.
    pub ledger: LedgerKey,
    /// Rows the Parquet footer promises for this piece; a mismatch fails the task.
    pub expected_rows: u64,
    /// Load only the rows for which this SQL condition (from the target's own catalog: an
    /// extension's configuration-table filter) holds, as `COPY … FROM STDIN WHERE`. Then the
    /// COPY may load fewer rows than `expected_rows`, never more.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filter: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RestoreColumn {
    /// Field name in the Parquet schema.
    pub source: String,
    /// Column name in the target table.
    pub target: String,
}

/// One object in an object store.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectRef {
    pub location: ObjectLocation,
    /// Key relative to `location`.
    pub key: String,
    pub size: u64,
    pub s3: S3Options,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RowGroupRange {
    pub start: u32,
    pub end: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LedgerKey {
    /// The export's identity (its root URL).
    pub export: String,
    /// The object key plus row-group range, e.g. `db/public.t/1/part-00000-….gz.parquet#0-4`.
    pub piece: String,
}

/// How a process reaches a PostgreSQL database: an export's source or a restore's target. The
/// password is never here: each process reads the environment variable named by
/// `password_env`, then `PGPASSWORD`, then `~/.pgpass`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct PgConn {
    /// `postgresql://user@host:port/db?options` without a password; `None` means the worker's
    /// own `PG*` environment variables.
    pub url: Option<String>,
    pub password_env: Option<String>,
    pub application_name: String,
    /// A PostgreSQL interval string such as `30min`; applied with `set_config`, never spliced.
    pub statement_timeout: Option<String>,
    /// Every session on this connection is read-only (`default_transaction_read_only`).
    /// True for export sources, which pgfleet must never write to; false for restore targets.
    #[serde(default = "read_only_default")]
    pub read_only: bool,
}

fn read_only_default() -> bool {
    true
}

impl Default for PgConn {
    /// Read-only unless a restore target explicitly says otherwise.
    fn default() -> Self {
        Self {
            url: None,
            password_env: None,
            application_name: "pgfleet".into(),
            statement_timeout: None,
            read_only: true,
        }
    }
}

/// Export one key range of one table to one object.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExportChunk {
    pub source: PgConn,
    /// An exported snapshot id (`pg_export_snapshot()`) to read from, when the job wants one
    /// consistent snapshot for every chunk.
    pub snapshot: Option<String>,
    pub table: QualifiedName,
    /// Read only the table's own rows (`FROM ONLY`), not those of its legacy inheritance
    /// children, which are tables of their own (as pg_dump does). Never set for partitioned
    /// tables: they hold no rows of their own.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub only: bool,
    pub columns: Vec<ColumnExport>,
    pub range: ChunkRange,
    pub output: OutputTarget,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ColumnExport {
    pub name: String,
    pub transform: Option<Transform>,
    /// Present for typed formats (`rds-parquet`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pg_type: Option<ColumnType>,
}

/// The PostgreSQL type of an exported column, for formats that carry types (`rds-parquet`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ColumnType {
    /// `pg_type.typname` of the column (element type for arrays is not needed: arrays are text).
    pub typname: String,
    /// `information_schema.columns.data_type` (what RDS writes as `originalType`).
    pub data_type: String,
    pub char_max_length: Option<i32>,
    pub numeric_precision: Option<i32>,
    pub datetime_precision: Option<i32>,
}

/// A per-value rewrite applied on the CSV byte stream. NULL is never transformed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Transform {
    Prefix { value: String },
}

/// Which rows of the table a chunk covers. Bounds are half-open and `None` means unbounded, so
/// the chunks of a table cover every possible key even if rows arrive after planning.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "by", rename_all = "snake_case")]
pub enum ChunkRange {
    /// The whole table in one chunk.
    All,
    /// `key >= lo AND key < hi` on an integer column.
    Key {
        column: String,
        lo: Option<i64>,
        hi: Option<i64>,
    },
    /// `key IS NULL`, for a nullable user-chosen key column.
    KeyIsNull { column: String },
    /// `ctid >= '(lo,0)' AND ctid < '(hi,0)'`: heap page ranges (PostgreSQL 14+ scans these as
    /// TID ranges). Exact only when every chunk of the table reads the same snapshot: an UPDATE
    /// moves a row to another page, so separate snapshots may see it twice or never.
    Pages { lo: Option<u32>, hi: Option<u32> },
    /// `(a, b) >= (lo) AND (a, b) < (hi)` on a unique key of any btree-orderable types, bounds
    /// being each column's text form (`'…'::text::type`), so the server's own ordering and
    /// collation decide. Unlike page ranges, a row stays in its range when it is updated.
    Tuple {
        columns: Vec<KeyColumn>,
        lo: Option<Vec<String>>,
        hi: Option<Vec<String>>,
    },
}

/// One column of a [`ChunkRange::Tuple`] key and the type its bounds are cast to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyColumn {
    pub name: String,
    /// The column's type by schema and `pg_type.typname` (e.g. `pg_catalog.uuid`), so the cast
    /// does not depend on the worker's `search_path`.
    pub type_name: QualifiedName,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum OutputFormat {
    #[serde(rename = "csv")]
    Csv,
    #[serde(rename = "csv.gz")]
    CsvGz,
    /// The AWS RDS snapshot-export layout: gzip Parquet plus export metadata files.
    #[serde(rename = "rds-parquet")]
    RdsParquet,
}

impl OutputFormat {
    pub fn extension(self) -> &'static str {
        match self {
            OutputFormat::Csv => "csv",
            OutputFormat::CsvGz => "csv.gz",
            OutputFormat::RdsParquet => "gz.parquet",
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            OutputFormat::Csv => "text/csv",
            OutputFormat::CsvGz => "application/gzip",
            OutputFormat::RdsParquet => "application/vnd.apache.parquet",
        }
    }
}

/// S3 client settings that are not secrets (keys come from the default credential chain).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct S3Options {
    /// Custom endpoint for S3-compatible servers, e.g. `http://127.0.0.1:9000`.
    pub endpoint: Option<String>,
    pub region: Option<String>,
    /// Path-style addressing (`endpoint/bucket/key`), needed by most S3-compatible servers.
    #[serde(default)]
    pub force_path_style: bool,
    /// Send each upload's CRC32C (per part, and of the whole object for multipart uploads) so
    /// the server rejects a body that arrives damaged. Off only for servers that refuse the
    /// checksum headers.
    #[serde(default = "checksums_on")]
    pub checksums: bool,
}

fn checksums_on() -> bool {
    true
}

impl Default for S3Options {
    fn default() -> Self {
        Self {
            endpoint: None,
            region: None,
            force_path_style: false,
            checksums: true,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OutputTarget {
    pub location: ObjectLocation,
    /// Key relative to `location`, deterministic per chunk.
    pub key: String,
    pub format: OutputFormat,
    pub gzip_level: u32,
    pub part_size: u64,
    pub parts_in_flight: u32,
    pub s3: S3Options,
}

/// What a worker reports for one delivery of a task.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResultEnvelope {
    pub version: u32,
    pub task_id: String,
    pub job_id: String,
    pub attempt: u32,
    /// A stable, non-secret worker name (host and pid) for status output.
    pub worker: String,
    pub outcome: Outcome,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum Outcome {
    Succeeded {
        rows: u64,
        bytes: u64,
        key: String,
        /// Export parts: the object's checksum and the rows' fingerprint (absent for restores,
        /// and from workers older than these fields).
        #[serde(default, skip_serializing_if = "crate::proof::PartProof::is_empty")]
        proof: crate::proof::PartProof,
    },
    Failed {
        error: String,
        /// False when retrying cannot help (bad task, missing table); the coordinator then fails
        /// the chunk without spending its retry budget.
        retryable: bool,
    },
}

/// Why a message could not be decoded. Every variant displays as one line of bounded length
/// (at most [`MAX_DECODE_ERROR_CHARS`] characters): the worker logs it and dead-letters the
/// message, the coordinator logs it and drops the result.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// Not JSON at all (syntax error, truncated, not UTF-8).
    #[error("message is not valid JSON: {0}")]
    Json(String),
    /// JSON, and of a supported version, but not the expected message (a missing field, a
    /// wrong type, an unknown task type, a number out of range).
    #[error("message has an invalid shape: {0}")]
    Invalid(String),
    #[error(
        "message version {found} is not supported (this build speaks version {MESSAGE_VERSION})"
    )]
    Version { found: u32 },
    #[error("message has no version field")]
    NoVersion,
}

/// The longest [`DecodeError`] message.
pub const MAX_DECODE_ERROR_CHARS: usize = 300;

impl DecodeError {
    fn from_json(e: serde_json::Error) -> Self {
        // serde_json's messages are one line, except that they may quote input verbatim
        // (`unknown variant `…``): escape and clip, leaving room for the prefix.
        let text = one_line(&e.to_string(), MAX_DECODE_ERROR_CHARS - 40);
        if e.is_data() {
            DecodeError::Invalid(text)
        } else {
            DecodeError::Json(text)
        }
    }
}

fn decode<T: for<'de> Deserialize<'de>>(body: &[u8]) -> Result<T, DecodeError> {
    #[derive(Deserialize)]
    struct Probe {
        version: Option<serde_json::Value>,
    }
    let probe: Probe = serde_json::from_slice(body).map_err(DecodeError::from_json)?;
    match probe.version {
        None | Some(serde_json::Value::Null) => return Err(DecodeError::NoVersion),
        Some(serde_json::Value::Number(n)) => match n.as_u64() {
            Some(v) if v == u64::from(MESSAGE_VERSION) => {}
            Some(v) => {
                return Err(DecodeError::Version {
                    found: u32::try_from(v).unwrap_or(u32::MAX),
                })
            }
            None => {
                return Err(DecodeError::Invalid(format!(
                    "version {} is not a version number",
                    one_line(&n.to_string(), 40)
                )))
            }
        },
        Some(other) => {
            return Err(DecodeError::Invalid(format!(
                "version is {}, not a number",
                json_kind(&other)
            )))
        }
    }
    serde_json::from_slice(body).map_err(DecodeError::from_json)
}

fn json_kind(v: &serde_json::Value) -> &'static str {
    match v {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "an array",
        serde_json::Value::Object(_) => "an object",
    }
}

impl TaskEnvelope {
    pub fn decode(body: &[u8]) -> Result<Self, DecodeError> {
        decode(body)
    }
    pub fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("task messages always serialize")
    }
}

impl ResultEnvelope {
    pub fn decode(body: &[u8]) -> Result<Self, DecodeError> {
        decode(body)
    }
    pub fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("result messages always serialize")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn task_ids_round_trip() {
        assert_eq!(task_id("j1", 7), "j1/7");
        assert_eq!(
            parse_task_id(&task_id("job/with/slash", 7)),
            Some(("job/with/slash", 7))
        );
        assert_eq!(parse_task_id("nope"), None);
        assert_eq!(parse_task_id("j/x"), None);
    }

    fn sample() -> TaskEnvelope {
        TaskEnvelope {
            version: MESSAGE_VERSION,
            task_id: "j1/3".into(),
            job_id: "j1".into(),
            attempt: 1,
            task: Task::ExportChunk(ExportChunk {
                source: PgConn {
                    url: Some("postgresql://u@h/db".into()),
                    password_env: Some("PW".into()),
                    application_name: "pgfleet".into(),
                    statement_timeout: None,
                    read_only: true,
                },
                snapshot: None,
                table: QualifiedName::new("public", "t"),
                only: true,
                columns: vec![ColumnExport {
                    name: "a".into(),
                    transform: Some(Transform::Prefix { value: "x-".into() }),
                    pg_type: None,
                }],
                range: ChunkRange::Key {
                    column: "id".into(),
                    lo: Some(1),
                    hi: None,
                },
                output: OutputTarget {
                    location: ObjectLocation::S3 {
                        bucket: "b".into(),
                        prefix: "p/".into(),
                    },
                    key: "public.t/part-00003.csv".into(),
                    format: OutputFormat::Csv,
                    gzip_level: 6,
                    part_size: 8 << 20,
                    parts_in_flight: 2,
                    s3: S3Options::default(),
                },
            }),
        }
    }

    #[test]
    fn round_trips() {
        let t = sample();
        assert_eq!(TaskEnvelope::decode(&t.encode()).unwrap(), t);
        let mut t = sample();
        if let Task::ExportChunk(c) = &mut t.task {
            c.range = ChunkRange::Tuple {
                columns: vec![KeyColumn {
                    name: "id".into(),
                    type_name: QualifiedName::new("pg_catalog", "uuid"),
                }],
                lo: None,
                hi: Some(vec!["8f0e…".into()]),
            };
        }
        assert_eq!(TaskEnvelope::decode(&t.encode()).unwrap(), t);
    }

    /// Ranges as older coordinators wrote them still decode.
    #[test]
    fn older_ranges_decode() {
        let r: ChunkRange = serde_json::from_str(r#"{"by":"pages","lo":3,"hi":null}"#).unwrap();
        assert_eq!(
            r,
            ChunkRange::Pages {
                lo: Some(3),
                hi: None
            }
        );
        let r: ChunkRange =
            serde_json::from_str(r#"{"by":"key","column":"id","lo":null,"hi":5}"#).unwrap();
        assert!(matches!(r, ChunkRange::Key { hi: Some(5), .. }));
    }

    #[test]
    fn rejects_bad_messages_with_clear_errors() {
        assert!(matches!(
            TaskEnvelope::decode(b"not json"),
            Err(DecodeError::Json(_))
        ));
        assert_eq!(
            TaskEnvelope::decode(b"{\"task_id\":\"x\"}"),
            Err(DecodeError::NoVersion)
        );
        assert_eq!(
            TaskEnvelope::decode(b"{\"version\":99}"),
            Err(DecodeError::Version { found: 99 })
        );
        assert!(matches!(
            TaskEnvelope::decode(b"{\"version\":1,\"task\":{\"type\":\"nope\"}}"),
            Err(DecodeError::Invalid(_))
        ));
        assert!(matches!(
            TaskEnvelope::decode(b"{\"version\":\"1\"}"),
            Err(DecodeError::Invalid(_))
        ));
        assert_eq!(
            TaskEnvelope::decode(b"{\"version\":4294967296}"),
            Err(DecodeError::Version { found: u32::MAX })
        );
    }
}
