//! Job specs as users write them (TOML). Parsing is strict (unknown keys are errors, so typos
//! do not silently fall back to defaults) and validation collects every problem at once.

mod document;
pub mod interpolate;
mod problems;

pub use problems::{lines as problem_lines, Problem, MAX_PROBLEM_CHARS};

use crate::ident::{shown, QualifiedName, TablePattern};
use crate::location::ObjectLocation;
use crate::message::{OutputFormat, PgConn, S3Options, Transform};
use crate::select::TableFilter;
use crate::size::ByteSize;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum JobSpec {
    Export(ExportSpec),
    Restore(RestoreSpec),
}

impl JobSpec {
    /// Parse and check a TOML job spec; the error lists every problem found, one per line.
    ///
    /// The rule for these errors (the CLI prints them under "job spec <file> is invalid:"):
    /// every line is one problem (see [`Problem`]), non-empty, at most [`MAX_PROBLEM_CHARS`]
    /// characters, never echoing more than a clipped, escaped piece of the input.
    pub fn from_toml(text: &str) -> Result<Self, String> {
        problems::check(text).map_err(|p| problems::lines(&p))
    }

    /// A spec file's text as the CLI reads it: `${VAR}` interpolated from `env` (see
    /// [`interpolate`]), then parsed and checked; the error holds every problem found.
    pub fn load(text: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<Self, Vec<Problem>> {
        let (text, mut problems) = interpolate::interpolate(text, env);
        match problems::check(&text) {
            Ok(spec) if problems.is_empty() => Ok(spec),
            Ok(_) => Err(problems),
            Err(more) => {
                // A value left uninterpolated may fail its own check too: report it once.
                let bad: Vec<Option<String>> = problems.iter().map(|p| p.key.clone()).collect();
                problems.extend(more.into_iter().filter(|p| !bad.contains(&p.key)));
                problems::sort(&mut problems);
                Err(problems)
            }
        }
    }

    /// The spec's own checks (after parsing), each `key.path: message`.
    pub(crate) fn problems(&self) -> Vec<String> {
        match self {
            JobSpec::Export(e) => e.problems(),
            JobSpec::Restore(r) => r.problems(),
        }
    }

    pub fn name(&self) -> &str {
        match self {
            JobSpec::Export(e) => &e.name,
            JobSpec::Restore(r) => &r.name,
        }
    }

    pub fn kind(&self) -> &'static str {
        match self {
            JobSpec::Export(_) => "export",
            JobSpec::Restore(_) => "restore",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExportSpec {
    /// A human name for status output; the job id is generated.
    pub name: String,
    pub source: SourceSpec,
    pub tables: TablesSpec,
    #[serde(default)]
    pub chunking: ChunkingSpec,
    pub output: OutputSpec,
    #[serde(default, rename = "transform")]
    pub transforms: Vec<TransformSpec>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceSpec {
    /// `postgresql://user@host:port/db`, without a password. Omit to use `PG*` variables.
    pub url: Option<String>,
    /// Name of an environment variable holding the password (read by each process).
    pub password_env: Option<String>,
    #[serde(default = "default_application_name")]
    pub application_name: String,
    /// e.g. `"30min"`; bounds every COPY on the source.
    pub statement_timeout: Option<String>,
    /// Chunks in flight against this source across the whole fleet.
    #[serde(default = "default_max_in_flight")]
    pub max_in_flight: u32,
    #[serde(default)]
    pub snapshot: SnapshotMode,
}

fn default_application_name() -> String {
    "pgfleet".into()
}
fn default_max_in_flight() -> u32 {
    4
}

impl SourceSpec {
    pub fn conn(&self) -> PgConn {
        PgConn {
            url: self.url.clone(),
            password_env: self.password_env.clone(),
            application_name: self.application_name.clone(),
            statement_timeout: self.statement_timeout.clone(),
            read_only: true,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SnapshotMode {
    /// Each chunk reads its own snapshot: no long transaction on the source.
    #[default]
    PerChunk,
    /// Every chunk reads one snapshot exported by the coordinator.
    Consistent,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TablesSpec {
    /// Names or globs: `public.*`, `sales.orders`, `"Odd ""Name"" Table"`.
    pub include: Vec<String>,
    #[serde(default)]
    pub exclude: Vec<String>,
    /// Integer key column per table (`"schema.table" = "column"`); default: a single-column
    /// integer unique key, else any unique key over NOT NULL columns, else heap page ranges
    /// under a consistent snapshot or the whole table in one chunk.
    #[serde(default)]
    pub keys: BTreeMap<String, String>,
}

impl TablesSpec {
    pub fn include_patterns(&self) -> Result<Vec<TablePattern>, String> {
        parse_patterns("tables.include", &self.include)
    }
    pub fn exclude_patterns(&self) -> Result<Vec<TablePattern>, String> {
        parse_patterns("tables.exclude", &self.exclude)
    }
    /// The selection `include` minus `exclude`.
    pub fn filter(&self) -> Result<TableFilter, String> {
        Ok(TableFilter::new(
            self.include_patterns()?,
            self.exclude_patterns()?,
        ))
    }
    pub fn key_overrides(&self) -> Result<BTreeMap<QualifiedName, String>, String> {
        self.keys
            .iter()
            .map(|(t, c)| {
                QualifiedName::parse(t)
                    .map(|q| (q, c.clone()))
                    .map_err(|e| format!("tables.keys: {e}"))
            })
            .collect()
    }
}

fn parse_patterns(key: &str, items: &[String]) -> Result<Vec<TablePattern>, String> {
    items
        .iter()
        .enumerate()
        .map(|(i, p)| {
            TablePattern::parse(p)
                .map_err(|e| format!("{key}[{i}]: table pattern {}: {e}", shown(p)))
        })
        .collect()
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct ChunkingSpec {
    pub rows_per_chunk: Option<u64>,
    pub bytes_per_chunk: Option<ByteSize>,
}

pub const DEFAULT_ROWS_PER_CHUNK: u64 = 1_000_000;

/// What the planner aims for in each chunk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChunkTarget {
    Rows(u64),
    Bytes(u64),
}

impl ChunkingSpec {
    pub fn target(&self) -> ChunkTarget {
        match (self.rows_per_chunk, self.bytes_per_chunk) {
            (_, Some(b)) => ChunkTarget::Bytes(b.0),
            (Some(r), None) => ChunkTarget::Rows(r),
            (None, None) => ChunkTarget::Rows(DEFAULT_ROWS_PER_CHUNK),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutputSpec {
    /// `s3://bucket/prefix/` or `file:///dir/`.
    pub url: String,
    #[serde(default = "default_format")]
    pub format: OutputFormat,
    #[serde(default = "default_gzip_level")]
    pub gzip_level: u32,
    /// Multipart part size; S3 needs at least 5 MiB.
    #[serde(default = "default_part_size")]
    pub part_size: ByteSize,
    /// Parts uploading at once per chunk; memory per chunk is about part_size * (this + 1).
    #[serde(default = "default_parts_in_flight")]
    pub parts_in_flight: u32,
    #[serde(default)]
    pub s3: S3Options,
}

fn default_format() -> OutputFormat {
    OutputFormat::Csv
}
fn default_gzip_level() -> u32 {
    6
}
fn default_part_size() -> ByteSize {
    ByteSize(8 * ByteSize::MIB)
}
fn default_parts_in_flight() -> u32 {
    2
}

pub const MIN_PART_SIZE: u64 = 5 * 1024 * 1024;

impl OutputSpec {
    pub fn location(&self) -> Result<ObjectLocation, String> {
        ObjectLocation::parse(&self.url)
    }
}

/// `[[transform]]`: a rewrite for some or all columns. A column named explicitly by a
/// transform uses that one; otherwise the `columns = "*"` transform applies, if any.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TransformSpec {
    #[serde(default)]
    pub columns: ColumnSelection,
    pub prefix: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Default)]
#[serde(untagged)]
pub enum ColumnSelection {
    #[default]
    #[serde(skip)]
    All,
    Star(String),
    Named(Vec<String>),
}

/// By hand rather than `untagged`, whose only error is "data did not match any variant".
impl<'de> Deserialize<'de> for ColumnSelection {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = ColumnSelection;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("\"*\" or a list of column names")
            }
            fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<ColumnSelection, E> {
                Ok(ColumnSelection::Star(s.to_string()))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<ColumnSelection, A::Error> {
                let mut names = Vec::new();
                while let Some(name) = seq.next_element::<String>()? {
                    names.push(name);
                }
                Ok(ColumnSelection::Named(names))
            }
        }
        d.deserialize_any(V)
    }
}

impl TransformSpec {
    fn is_all(&self) -> bool {
        matches!(&self.columns, ColumnSelection::All)
            || matches!(&self.columns, ColumnSelection::Star(s) if s == "*")
    }

    pub fn transform(&self) -> Transform {
        Transform::Prefix {
            value: self.prefix.clone(),
        }
    }
}

impl ExportSpec {
    /// The transform for one column, or `None`.
    pub fn transform_for(&self, column: &str) -> Option<Transform> {
        let named = self.transforms.iter().find(
            |t| matches!(&t.columns, ColumnSelection::Named(cols) if cols.iter().any(|c| c == column)),
        );
        named
            .or_else(|| self.transforms.iter().find(|t| t.is_all()))
            .map(TransformSpec::transform)
    }

    pub fn problems(&self) -> Vec<String> {
        let mut p = Vec::new();
        if self.name.trim().is_empty() {
            p.push("name: must not be empty".to_string());
        }
        if let Some(url) = &self.source.url {
            if let Err(e) = check_source_url(url) {
                p.push(format!("source.url: {e}"));
            }
        }
        if self.source.max_in_flight == 0 {
            p.push("source.max_in_flight: must be at least 1".into());
        }
        if self.source.application_name.len() > 63 {
            p.push("source.application_name: at most 63 bytes".into());
        }
        if self.tables.include.is_empty() {
            p.push(
                "tables.include: name at least one table or pattern, e.g. [\"public.*\"]".into(),
            );
        }
        for e in [
            self.tables.include_patterns().err(),
            self.tables.exclude_patterns().err(),
            self.tables.key_overrides().err(),
        ]
        .into_iter()
        .flatten()
        {
            p.push(e);
        }
        if self.chunking.rows_per_chunk.is_some() && self.chunking.bytes_per_chunk.is_some() {
            p.push("chunking: set rows_per_chunk or bytes_per_chunk, not both".into());
        }
        if self.chunking.rows_per_chunk == Some(0)
            || self.chunking.bytes_per_chunk.map(|b| b.0) == Some(0)
        {
            p.push("chunking: chunk size must be positive".into());
        }
        if let Err(e) = self.output.location() {
            p.push(format!("output.url: {e}"));
        }
        if self.output.part_size.0 < MIN_PART_SIZE {
            p.push(format!(
                "output.part_size: {} is below the S3 minimum of 5MiB",
                self.output.part_size
            ));
        }
        if self.output.part_size.0 > 5 * 1024 * ByteSize::MIB {
            p.push("output.part_size: at most 5GiB".into());
        }
        if self.output.parts_in_flight == 0 {
            p.push("output.parts_in_flight: must be at least 1".into());
        }
        if self.output.gzip_level > 9 {
            p.push("output.gzip_level: 0 to 9".into());
        }
        for (i, t) in self.transforms.iter().enumerate() {
            match &t.columns {
                ColumnSelection::Star(s) if s != "*" => p.push(format!(
                    "transform[{i}].columns: write \"*\" or a list of column names, not {}",
                    shown(s)
                )),
                ColumnSelection::Named(v) if v.is_empty() => {
                    p.push(format!("transform[{i}].columns: empty list"))
                }
                _ => {}
            }
        }
        if self.output.format == OutputFormat::RdsParquet && !self.transforms.is_empty() {
            p.push("transform: not supported with format \"rds-parquet\" (it keeps native column types)".into());
        }
        if self.transforms.iter().filter(|t| t.is_all()).count() > 1 {
            p.push("transform: only one transform may apply to all columns".into());
        }
        p
    }
}

/// `kind = "restore"`: load an RDS/Aurora snapshot export (or pgfleet's `rds-parquet` export)
/// into an existing database whose schema was loaded beforehand.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RestoreSpec {
    pub name: String,
    pub export: ExportSourceSpec,
    pub target: TargetSpec,
    #[serde(default)]
    pub tables: RestoreTablesSpec,
    #[serde(default)]
    pub policy: RestorePolicy,
    #[serde(default)]
    pub split: SplitSpec,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExportSourceSpec {
    /// The export root: `s3://bucket/prefix/<export_id>/` or `file:///dir/<export_id>/`.
    pub url: String,
    /// The database name inside the export (the first folder level).
    pub database: String,
    /// Require a `_SUCCESS` marker in every folder holding part files.
    #[serde(default = "yes")]
    pub require_success: bool,
    #[serde(default)]
    pub s3: S3Options,
}

fn yes() -> bool {
    true
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TargetSpec {
    /// `postgresql://user@host:port/db`, without a password. Omit to use `PG*` variables.
    pub url: Option<String>,
    pub password_env: Option<String>,
    #[serde(default = "default_application_name")]
    pub application_name: String,
    pub statement_timeout: Option<String>,
    /// COPYs at once into the target across the whole fleet.
    #[serde(default = "default_max_in_flight")]
    pub max_connections: u32,
}

impl TargetSpec {
    pub fn conn(&self) -> PgConn {
        PgConn {
            url: self.url.clone(),
            password_env: self.password_env.clone(),
            application_name: self.application_name.clone(),
            statement_timeout: self.statement_timeout.clone(),
            read_only: false,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RestoreTablesSpec {
    /// Target tables to load, as names or globs (default: every table in the export).
    #[serde(default = "all_tables")]
    pub include: Vec<String>,
    #[serde(default)]
    pub exclude: Vec<String>,
}

fn all_tables() -> Vec<String> {
    vec!["*.*".into()]
}

impl Default for RestoreTablesSpec {
    fn default() -> Self {
        Self {
            include: all_tables(),
            exclude: Vec::new(),
        }
    }
}

impl RestoreTablesSpec {
    pub fn include_patterns(&self) -> Result<Vec<TablePattern>, String> {
        parse_patterns("tables.include", &self.include)
    }
    pub fn exclude_patterns(&self) -> Result<Vec<TablePattern>, String> {
        parse_patterns("tables.exclude", &self.exclude)
    }
    /// The selection `include` minus `exclude`.
    pub fn filter(&self) -> Result<TableFilter, String> {
        Ok(TableFilter::new(
            self.include_patterns()?,
            self.exclude_patterns()?,
        ))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NonEmptyPolicy {
    /// A target table that already has rows (not from this export) is a planning error.
    #[default]
    Fail,
    /// Leave such tables alone and load the others.
    Skip,
    /// Empty them first (`TRUNCATE`).
    Truncate,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RestorePolicy {
    #[serde(default)]
    pub non_empty: NonEmptyPolicy,
    /// Drop secondary (non-constraint) indexes before loading and rebuild them after.
    #[serde(default)]
    pub defer_indexes: bool,
    /// Drop the foreign keys between loaded tables before loading, and re-add them NOT VALID +
    /// VALIDATE after: one set-based check per key instead of a trigger call per row (the
    /// cost pg_restore avoids with --disable-triggers, which needs a superuser). Foreign keys
    /// inside cycles are always handled this way.
    #[serde(default = "yes")]
    pub defer_foreign_keys: bool,
    /// Set sequences and identities past the loaded maxima at the end.
    #[serde(default = "yes")]
    pub reset_sequences: bool,
}

impl Default for RestorePolicy {
    fn default() -> Self {
        Self {
            non_empty: NonEmptyPolicy::Fail,
            defer_indexes: false,
            defer_foreign_keys: true,
            reset_sequences: true,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SplitSpec {
    /// A file with more rows than this is split into tasks of whole row groups.
    #[serde(default = "default_rows_per_task")]
    pub rows_per_task: u64,
}

fn default_rows_per_task() -> u64 {
    2_000_000
}

impl Default for SplitSpec {
    fn default() -> Self {
        Self {
            rows_per_task: default_rows_per_task(),
        }
    }
}

impl RestoreSpec {
    pub fn problems(&self) -> Vec<String> {
        let mut p = Vec::new();
        if self.name.trim().is_empty() {
            p.push("name: must not be empty".to_string());
        }
        if let Err(e) = ObjectLocation::parse(&self.export.url) {
            p.push(format!("export.url: {e}"));
        }
        if self.export.database.is_empty() || self.export.database.contains('/') {
            p.push(
                "export.database: the database folder name inside the export, e.g. \"shop\"".into(),
            );
        }
        if let Some(url) = &self.target.url {
            if let Err(e) = check_source_url(url) {
                p.push(format!("target.url: {e}"));
            }
        }
        if self.target.max_connections == 0 {
            p.push("target.max_connections: must be at least 1".into());
        }
        if self.tables.include.is_empty() {
            p.push("tables.include: name at least one table or pattern".into());
        }
        for e in [
            self.tables.include_patterns().err(),
            self.tables.exclude_patterns().err(),
        ]
        .into_iter()
        .flatten()
        {
            p.push(e);
        }
        if self.split.rows_per_task == 0 {
            p.push("split.rows_per_task: must be positive".into());
        }
        p
    }

    pub fn export_location(&self) -> Result<ObjectLocation, String> {
        ObjectLocation::parse(&self.export.url)
    }
}

/// A source URL must parse and must not carry a password.
pub fn check_source_url(url: &str) -> Result<(), String> {
    let parsed = url::Url::parse(url).map_err(|e| format!("not a URL ({e})"))?;
    if !matches!(parsed.scheme(), "postgres" | "postgresql") {
        return Err("must start with postgresql://".into());
    }
    if parsed.password().is_some() {
        return Err(
            "contains a password; remove it and set PGPASSWORD, ~/.pgpass or source.password_env on each machine"
                .into(),
        );
    }
    if parsed.query_pairs().any(|(k, _)| k == "password") {
        return Err(
            "contains a password parameter; use PGPASSWORD, ~/.pgpass or source.password_env"
                .into(),
        );
    }
    Ok(())
}

/// A URL safe to show: any password replaced by `***`.
pub fn redact_url(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) => {
            if u.password().is_some() {
                let _ = u.set_password(Some("***"));
            }
            let pairs: Vec<(String, String)> = u
                .query_pairs()
                .map(|(k, v)| {
                    let v = if k == "password" {
                        "***".into()
                    } else {
                        v.into_owned()
                    };
                    (k.into_owned(), v)
                })
                .collect();
            if !pairs.is_empty() {
                u.query_pairs_mut().clear().extend_pairs(pairs);
            }
            u.to_string()
        }
        Err(_) => "<unparseable url>".into(),
    }
}

/// `host:port` of a URL, for errors that say which server was tried: no user, no password,
/// no path. Ports missing from the URL are the scheme's (amqp 5672, amqps 5671, PostgreSQL
/// 5432, http 80, https 443).
pub fn url_endpoint(url: &str) -> String {
    let Ok(u) = url::Url::parse(url) else {
        return "<unparseable url>".into();
    };
    let port = u.port_or_known_default().or(match u.scheme() {
        "amqp" => Some(5672),
        "amqps" => Some(5671),
        "postgres" | "postgresql" => Some(5432),
        _ => None,
    });
    let host = match u.host() {
        Some(url::Host::Ipv6(a)) => format!("[{a}]"),
        Some(h) => h.to_string(),
        None => "?".into(),
    };
    match port {
        Some(p) => format!("{host}:{p}"),
        None => host,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXAMPLE: &str = r#"
kind = "export"
name = "orders"

[source]
url = "postgresql://reader@127.0.0.1:5432/shop"
snapshot = "consistent"
max_in_flight = 3

[tables]
include = ["public.*", '"Odd ""Name"" Table"']
exclude = ["public.audit_*"]
keys = { "public.events" = "event_id" }

[chunking]
bytes_per_chunk = "256MiB"

[output]
url = "s3://bucket/exports/"
format = "csv.gz"
part_size = "16MiB"
s3 = { endpoint = "http://127.0.0.1:9000", force_path_style = true }

[[transform]]
columns = "*"
prefix = "x-"

[[transform]]
columns = ["email"]
prefix = "mail-"
"#;

    #[test]
    fn parses_example() {
        let JobSpec::Export(e) = JobSpec::from_toml(EXAMPLE).unwrap() else {
            panic!("export spec expected")
        };
        assert_eq!(e.source.snapshot, SnapshotMode::Consistent);
        assert_eq!(e.chunking.target(), ChunkTarget::Bytes(256 << 20));
        assert_eq!(e.output.format, OutputFormat::CsvGz);
        assert_eq!(
            e.transform_for("email"),
            Some(Transform::Prefix {
                value: "mail-".into()
            })
        );
        assert_eq!(
            e.transform_for("id"),
            Some(Transform::Prefix { value: "x-".into() })
        );
        assert_eq!(e.tables.include_patterns().unwrap().len(), 2);
    }

    #[test]
    fn reports_every_problem() {
        let bad = EXAMPLE
            .replace("reader@", "reader:secret@")
            .replace("16MiB", "1MiB")
            .replace("s3://bucket/exports/", "ftp://x");
        let err = JobSpec::from_toml(&bad).unwrap_err();
        assert!(err.contains("contains a password"), "{err}");
        assert!(
            !err.contains("secret"),
            "error must not echo the password: {err}"
        );
        assert!(err.contains("part_size"), "{err}");
        assert!(err.contains("output.url"), "{err}");
    }

    #[test]
    fn rejects_unknown_keys() {
        let err =
            JobSpec::from_toml(&EXAMPLE.replace("max_in_flight", "max_inflight")).unwrap_err();
        assert!(err.contains("max_inflight"), "{err}");
    }

    #[test]
    fn redacts() {
        assert_eq!(
            redact_url("postgresql://u:pw@h/db"),
            "postgresql://u:***@h/db"
        );
        assert!(!redact_url("postgresql://u@h/db?password=pw").contains("pw"));
    }
}

#[cfg(test)]
mod example_tests {
    /// The example shipped to users must stay valid.
    #[test]
    fn shipped_example_parses() {
        let text = include_str!("../../../deploy/examples/export.toml");
        super::JobSpec::from_toml(text).unwrap();
        let text = include_str!("../../../deploy/examples/restore.toml");
        let super::JobSpec::Restore(r) = super::JobSpec::from_toml(text).unwrap() else {
            panic!("restore spec expected")
        };
        assert_eq!(r.policy.non_empty, super::NonEmptyPolicy::Fail);
        assert!(r.policy.reset_sequences);
        assert!(!r.target.conn().read_only);
    }

    /// The first export spec in the README, the one users copy.
    fn readme_export_spec() -> &'static str {
        let readme = include_str!("../../../README.md");
        let section = &readme[readme.find("## Export: a job spec").unwrap()..];
        let start = section.find("```toml\n").unwrap() + "```toml\n".len();
        let len = section[start..].find("```").unwrap();
        &section[start..start + len]
    }

    /// Copied as is, a shipped spec must not alter data or skip TLS checks; the prefix
    /// transform stays one uncomment away, and still works once uncommented.
    #[test]
    fn specs_users_copy_are_safe_and_the_prefix_is_one_uncomment_away() {
        let shipped = [
            (
                "deploy/examples/export.toml",
                include_str!("../../../deploy/examples/export.toml"),
            ),
            ("README.md", readme_export_spec()),
        ];
        for (name, text) in shipped {
            let super::JobSpec::Export(e) = super::JobSpec::from_toml(text).unwrap() else {
                panic!("{name}: export spec expected")
            };
            assert!(e.transforms.is_empty(), "{name}: an active transform");
            let url = e.source.url.as_deref().unwrap_or_default();
            assert!(url.contains("sslmode=verify-full"), "{name}: {url}");
            assert!(!text.contains("sslmode=disable"), "{name}");

            let block = "# [[transform]]\n# columns = \"*\"\n# prefix = \"x-\"\n";
            assert!(
                text.contains(block),
                "{name}: the commented prefix transform"
            );
            let uncommented = text.replace(block, &block.replace("# ", ""));
            let super::JobSpec::Export(e) = super::JobSpec::from_toml(&uncommented).unwrap() else {
                panic!("{name}: export spec expected")
            };
            assert_eq!(e.transforms.len(), 1, "{name}: {uncommented}");
            let t = e.transform_for("any_column");
            assert!(
                matches!(&t, Some(super::Transform::Prefix { value }) if value == "x-"),
                "{name}: {t:?}"
            );
        }
    }

    /// The documented `gzip_level` range is the one the spec accepts.
    #[test]
    fn gzip_level_range_matches_the_docs() {
        let example = include_str!("../../../deploy/examples/export.toml");
        assert!(example.contains("gzip_level = 0..9, default 6"));
        assert!(include_str!("../../../README.md").contains("`gzip_level` 0–9 (6)"));
        let with = |level: u32| {
            example.replace(
                "format = \"csv\"",
                &format!("format = \"csv.gz\"\ngzip_level = {level}"),
            )
        };
        for ok in [0, 9] {
            super::JobSpec::from_toml(&with(ok)).unwrap();
        }
        assert!(super::JobSpec::from_toml(&with(10)).is_err());
        let super::JobSpec::Export(e) =
            super::JobSpec::from_toml(&example.replace("format = \"csv\"", "format = \"csv.gz\""))
                .unwrap()
        else {
            panic!()
        };
        assert_eq!(e.output.gzip_level, 6);
    }

    #[test]
    fn url_endpoint_is_host_and_port_only() {
        use super::url_endpoint;
        assert_eq!(
            url_endpoint("amqp://guest:secret@mq.example/%2f"),
            "mq.example:5672"
        );
        assert_eq!(
            url_endpoint("amqps://u:p@b-1.mq.aws:5671"),
            "b-1.mq.aws:5671"
        );
        assert_eq!(url_endpoint("amqp://u:p@127.0.0.1:1/%2f"), "127.0.0.1:1");
        assert_eq!(url_endpoint("postgresql://u:p@[::1]/db"), "[::1]:5432");
        assert_eq!(url_endpoint("not a url"), "<unparseable url>");
    }
}
