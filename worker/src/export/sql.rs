//! The SQL of an export chunk. Identifiers always go through `quote_ident`; integer bounds are
//! rendered here, text bounds through `quote_literal` (COPY takes no parameters); the snapshot
//! id is checked against a strict pattern before being spliced.

use fleet_io::error::TaskError;
use protocol::{quote_ident, quote_literal, ChunkRange, ExportChunk, KeyColumn};

/// The form of the COPY stream an encoder reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CopyFormat {
    /// `FORMAT csv`: `,` delimiter, `"` quote, NULL as an empty unquoted field, LF record ends.
    Csv,
}

impl CopyFormat {
    fn option(self) -> &'static str {
        match self {
            Self::Csv => "csv",
        }
    }
}

/// `COPY (SELECT "a", "b" FROM "s"."t" WHERE ...) TO STDOUT (FORMAT csv)`.
pub fn copy_query(task: &ExportChunk) -> Result<String, TaskError> {
    copy_query_as(task, CopyFormat::Csv)
}

/// [`copy_query`] with the stream in `format`.
pub fn copy_query_as(task: &ExportChunk, format: CopyFormat) -> Result<String, TaskError> {
    if task.columns.is_empty() {
        return Err(TaskError::fatal("the task lists no columns to export"));
    }
    let columns = task
        .columns
        .iter()
        .map(|c| quote_ident(&c.name))
        .collect::<Vec<_>>()
        .join(", ");
    if let ChunkRange::Tuple { columns, lo, hi } = &task.range {
        let arity_ok =
            |b: &Option<Vec<String>>| b.as_ref().is_none_or(|b| b.len() == columns.len());
        if columns.is_empty() || !arity_ok(lo) || !arity_ok(hi) {
            return Err(TaskError::fatal(
                "the task's key range has bounds that do not match its key columns",
            ));
        }
    }
    let predicate = range_predicate(&task.range);
    let filter = if predicate.is_empty() {
        String::new()
    } else {
        format!(" WHERE {predicate}")
    };
    let only = if task.only { "ONLY " } else { "" };
    Ok(format!(
        "COPY (SELECT {columns} FROM {only}{}{filter}) TO STDOUT (FORMAT {})",
        task.table.quoted(),
        format.option()
    ))
}

/// The WHERE condition of a range, empty for the whole table.
pub fn range_predicate(range: &ChunkRange) -> String {
    let mut conds = Vec::with_capacity(2);
    match range {
        ChunkRange::All => {}
        ChunkRange::Key { column, lo, hi } => {
            let col = quote_ident(column);
            // Quoted bigint literals: `-9223372036854775808` unquoted would parse as numeric
            // (and defeat the index); a bigint compares with any integer key via the index.
            if let Some(lo) = lo {
                conds.push(format!("{col} >= '{lo}'::bigint"));
            }
            if let Some(hi) = hi {
                conds.push(format!("{col} < '{hi}'::bigint"));
            }
        }
        ChunkRange::KeyIsNull { column } => conds.push(format!("{} IS NULL", quote_ident(column))),
        ChunkRange::Pages { lo, hi } => {
            if let Some(lo) = lo {
                conds.push(format!("ctid >= '({lo},0)'::tid"));
            }
            if let Some(hi) = hi {
                conds.push(format!("ctid < '({hi},0)'::tid"));
            }
        }
        ChunkRange::Tuple { columns, lo, hi } => {
            // A row comparison, `(a, b) >= (x, y)`: lexicographic, and a btree index on (a, b)
            // serves it. With one column the parentheses are just grouping.
            let cols = columns
                .iter()
                .map(|c| quote_ident(&c.name))
                .collect::<Vec<_>>()
                .join(", ");
            if let Some(lo) = lo {
                conds.push(format!("({cols}) >= ({})", tuple_values(columns, lo)));
            }
            if let Some(hi) = hi {
                conds.push(format!("({cols}) < ({})", tuple_values(columns, hi)));
            }
        }
    }
    conds.join(" AND ")
}

/// `'v1'::text::"s"."t1", …`: each bound in its text form, read by the column type's own input
/// function. The literal's collation is the default one, so the column's collation governs the
/// comparison, as it does the key's index.
fn tuple_values(columns: &[KeyColumn], values: &[String]) -> String {
    columns
        .iter()
        .zip(values)
        .map(|(c, v)| format!("{}::text::{}", quote_literal(v), c.type_name.quoted()))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Snapshot ids from `pg_export_snapshot()` look like `00000003-0000001B-1`.
pub fn validate_snapshot_id(id: &str) -> Result<(), TaskError> {
    if !id.is_empty() && id.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-') {
        Ok(())
    } else {
        Err(TaskError::fatal(format!(
            "invalid snapshot id {id:?}: expected hex digits and dashes as returned by pg_export_snapshot()"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use protocol::{
        ColumnExport, ObjectLocation, OutputFormat, OutputTarget, PgConn, QualifiedName, S3Options,
    };

    fn task(range: ChunkRange, columns: &[&str]) -> ExportChunk {
        ExportChunk {
            source: PgConn::default(),
            snapshot: None,
            table: QualifiedName::new("sales", "Odd \"T\""),
            only: true,
            columns: columns
                .iter()
                .map(|c| ColumnExport {
                    name: c.to_string(),
                    transform: None,
                    pg_type: None,
                })
                .collect(),
            range,
            output: OutputTarget {
                location: ObjectLocation::File {
                    root: "/tmp".into(),
                },
                key: "k".into(),
                format: OutputFormat::Csv,
                gzip_level: 6,
                part_size: 5 << 20,
                parts_in_flight: 2,
                s3: S3Options::default(),
            },
        }
    }

    #[test]
    fn renders_ranges() {
        let mut t = task(ChunkRange::All, &["id", "a\"b"]);
        assert_eq!(
            copy_query(&t).unwrap(),
            "COPY (SELECT \"id\", \"a\"\"b\" FROM ONLY \"sales\".\"Odd \"\"T\"\"\") TO STDOUT (FORMAT csv)"
        );
        // A partitioned table: its rows live in its partitions.
        t.only = false;
        assert_eq!(
            copy_query(&t).unwrap(),
            "COPY (SELECT \"id\", \"a\"\"b\" FROM \"sales\".\"Odd \"\"T\"\"\") TO STDOUT (FORMAT csv)"
        );
        let key = |lo, hi| {
            range_predicate(&ChunkRange::Key {
                column: "id".into(),
                lo,
                hi,
            })
        };
        assert_eq!(
            key(Some(1), Some(100)),
            "\"id\" >= '1'::bigint AND \"id\" < '100'::bigint"
        );
        assert_eq!(key(None, Some(-5)), "\"id\" < '-5'::bigint");
        assert_eq!(
            key(Some(i64::MIN), None),
            "\"id\" >= '-9223372036854775808'::bigint"
        );
        assert_eq!(key(None, None), "");
        assert_eq!(
            range_predicate(&ChunkRange::KeyIsNull {
                column: "k\"; --".into()
            }),
            "\"k\"\"; --\" IS NULL"
        );
        assert_eq!(
            range_predicate(&ChunkRange::Pages {
                lo: Some(10),
                hi: Some(20)
            }),
            "ctid >= '(10,0)'::tid AND ctid < '(20,0)'::tid"
        );
        assert_eq!(
            range_predicate(&ChunkRange::Pages { lo: None, hi: None }),
            ""
        );
    }

    #[test]
    fn renders_tuple_ranges() {
        let columns = vec![
            KeyColumn {
                name: "a\"b".into(),
                type_name: QualifiedName::new("pg_catalog", "int4"),
            },
            KeyColumn {
                name: "c".into(),
                type_name: QualifiedName::new("my schema", "T"),
            },
        ];
        let range = ChunkRange::Tuple {
            columns: columns.clone(),
            lo: Some(vec!["1".into(), "it's".into()]),
            hi: Some(vec!["2".into(), "back\\slash".into()]),
        };
        assert_eq!(
            range_predicate(&range),
            "(\"a\"\"b\", \"c\") >= ('1'::text::\"pg_catalog\".\"int4\", 'it''s'::text::\"my schema\".\"T\") \
             AND (\"a\"\"b\", \"c\") < ('2'::text::\"pg_catalog\".\"int4\", E'back\\\\slash'::text::\"my schema\".\"T\")"
        );
        let open = ChunkRange::Tuple {
            columns: columns.clone(),
            lo: None,
            hi: None,
        };
        assert_eq!(range_predicate(&open), "");
        // Bounds that do not match the key are refused, not rendered.
        let bad = ChunkRange::Tuple {
            columns,
            lo: Some(vec!["1".into()]),
            hi: None,
        };
        assert!(!copy_query(&task(bad, &["a"])).unwrap_err().retryable);
    }

    #[test]
    fn refuses_empty_column_list() {
        assert!(
            !copy_query(&task(ChunkRange::All, &[]))
                .unwrap_err()
                .retryable
        );
    }

    #[test]
    fn snapshot_ids() {
        assert!(validate_snapshot_id("00000003-0000001B-1").is_ok());
        for bad in [
            "",
            "1'; DROP TABLE t; --",
            "abc def",
            "00000003-0000001B-1'",
        ] {
            assert!(!validate_snapshot_id(bad).unwrap_err().retryable, "{bad}");
        }
    }
}
