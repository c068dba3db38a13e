//! What `coordinator verify` found: per table OK or DIFFERENT, each difference named with the
//! part (export) or key range (restore) it lies in. One shape for export and restore, printed
//! as lines or as versioned JSON.

use serde::Serialize;
use std::fmt::Write as _;

/// The JSON report's shape version.
pub const REPORT_VERSION: u32 = 1;

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub version: u32,
    /// `export` or `restore`.
    pub kind: &'static str,
    /// Where the export lies (`s3://…`, `file://…`).
    pub export: String,
    /// Whether every table matched.
    pub ok: bool,
    pub tables: Vec<TableReport>,
}

impl Report {
    pub fn new(kind: &'static str, export: String, mut tables: Vec<TableReport>) -> Self {
        tables.sort_by(|a, b| a.table.cmp(&b.table));
        Self {
            version: REPORT_VERSION,
            kind,
            export,
            ok: tables.iter().all(|t| t.status == TableStatus::Ok),
            tables,
        }
    }

    /// One line per table (`OK` or `DIFFERENT`, the table, its rows), each finding indented
    /// under it, then a summary line.
    pub fn render(&self) -> String {
        let mut out = String::new();
        for t in &self.tables {
            let _ = writeln!(
                out,
                "{:<9} {}  {} rows{}",
                t.status.as_str(),
                t.table,
                t.rows,
                match t.expected_rows {
                    Some(e) if e != t.rows => format!(" (expected {e})"),
                    _ => String::new(),
                }
            );
            for f in &t.findings {
                let _ = writeln!(out, "    {}: {}", f.kind.as_str(), f.message);
            }
            for s in &t.stale {
                let _ = writeln!(out, "    stale (not a failure): {s}");
            }
        }
        let different = self
            .tables
            .iter()
            .filter(|t| t.status != TableStatus::Ok)
            .count();
        let _ = if different == 0 {
            writeln!(
                out,
                "verify: {} table(s) OK ({} {})",
                self.tables.len(),
                self.kind,
                self.export
            )
        } else {
            writeln!(
                out,
                "verify: {different} of {} table(s) DIFFERENT ({} {})",
                self.tables.len(),
                self.kind,
                self.export
            )
        };
        out
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct TableReport {
    /// `schema.name`.
    pub table: String,
    pub status: TableStatus,
    /// Rows found: recounted from the objects (export) or in the target (restore).
    pub rows: u64,
    /// Rows the manifest (export) or the export's data (restore) says there are.
    pub expected_rows: Option<u64>,
    pub findings: Vec<Finding>,
    /// Objects under the table's folder that no manifest lists but that look like parts of an
    /// earlier run: reported, not failures.
    pub stale: Vec<String>,
}

impl TableReport {
    pub fn new(
        table: String,
        rows: u64,
        expected_rows: Option<u64>,
        findings: Vec<Finding>,
    ) -> Self {
        let status = if findings.is_empty() {
            TableStatus::Ok
        } else {
            TableStatus::Different
        };
        Self {
            table,
            status,
            rows,
            expected_rows,
            findings,
            stale: Vec::new(),
        }
    }

    /// A table that could not be compared at all.
    pub fn unreadable(table: String, message: String) -> Self {
        Self::new(
            table,
            0,
            None,
            vec![Finding {
                kind: FindingKind::Unreadable,
                part: None,
                message,
            }],
        )
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum TableStatus {
    #[serde(rename = "OK")]
    Ok,
    #[serde(rename = "DIFFERENT")]
    Different,
}

impl TableStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ok => "OK",
            Self::Different => "DIFFERENT",
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Finding {
    pub kind: FindingKind,
    /// The object key (export) the finding is about, if one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub part: Option<String>,
    pub message: String,
}

impl Finding {
    pub fn part(kind: FindingKind, part: &str, message: String) -> Self {
        Self {
            kind,
            part: Some(part.to_string()),
            message: format!("{part}: {message}"),
        }
    }
}

/// What kind of difference. JSON and text use [`FindingKind::as_str`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FindingKind {
    /// A manifest lists the object, the store does not have it.
    Missing,
    /// The object's size is not the manifest's.
    Size,
    /// The object's CRC32C is not the manifest's.
    Checksum,
    /// Rows recounted from the object are not the manifest's.
    Rows,
    /// An object under the table's folder that no manifest lists and no earlier run explains.
    Extra,
    /// The source's rows (recomputed fingerprint) are not the ones exported.
    Source,
    /// The target's rows in a key range are not the export's.
    Content,
    /// Something could not be read or compared.
    Unreadable,
}

impl FindingKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Missing => "missing",
            Self::Size => "size",
            Self::Checksum => "checksum",
            Self::Rows => "rows",
            Self::Extra => "extra",
            Self::Source => "source",
            Self::Content => "content",
            Self::Unreadable => "unreadable",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_finding_makes_the_table_and_the_report_different() {
        let ok = TableReport::new("public.a".into(), 3, Some(3), vec![]);
        let bad = TableReport::new(
            "public.b".into(),
            2,
            Some(3),
            vec![Finding::part(
                FindingKind::Rows,
                "public.b/part-00000.csv",
                "2 rows, manifest 3".into(),
            )],
        );
        let r = Report::new("export", "file:///x/".into(), vec![bad, ok]);
        assert!(!r.ok);
        let text = r.render();
        let lines: Vec<&str> = text.lines().collect();
        assert!(
            lines[0].starts_with("OK") && lines[0].contains("public.a"),
            "{text}"
        );
        assert!(
            lines[1].starts_with("DIFFERENT") && lines[1].contains("(expected 3)"),
            "{text}"
        );
        assert!(
            lines[2].contains("rows: public.b/part-00000.csv: 2 rows"),
            "{text}"
        );
        assert!(text.contains("1 of 2 table(s) DIFFERENT"), "{text}");
        let v = serde_json::to_value(&r).unwrap();
        assert_eq!(v["version"], 1);
        assert_eq!(v["tables"][1]["status"], "DIFFERENT");
        assert_eq!(v["tables"][1]["findings"][0]["kind"], "rows");
    }
}
