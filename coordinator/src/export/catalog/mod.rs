//! Source catalog introspection for export planning: which tables a job selects, their columns,
//! their key, their size, and where an integer key's values lie.
//!
//! Everything here only reads, so it runs on a hot-standby replica inside the caller's READ ONLY
//! transaction. Catalog lookups are parameterized by oid or name; table and column names reach
//! SQL text only through `QualifiedName::quoted` / `quote_ident`.
//!
//! Catalog reads are set-based: one statement per kind of fact for all selected tables
//! ([`columns_of`], [`unique_keys_of`], [`table_sizes`]), never one per table, so planning
//! costs the same per table at 10 tables or 100,000. What stays per table is reading the data
//! of a table that splits into several chunks (min/max, a key sample): proportional to the
//! data, not to the catalog. Every statement is counted ([`queries`]).

mod columns;
mod keys;
pub mod queries;
mod sizes;
mod unlocked;

pub use columns::{columns_of, Column};
pub use keys::{unique_keys_of, UniqueKey};
pub use sizes::{rows_from_stats, table_sizes, TableSize};

use crate::export::chunking::{self, SamplePlan};
use anyhow::{bail, Context, Result};
use futures::TryStreamExt;
use protocol::{quote_ident, KeyColumn, QualifiedName, TableFilter};
use std::collections::{BTreeMap, HashMap, HashSet};
use tokio_postgres::types::ToSql;
use tokio_postgres::GenericClient;

/// Tables estimated below this many rows may be read whole to find exact key quantiles when a
/// sample is not good enough (reading 200k integers is cheaper than a bad plan).
pub const FULL_SCAN_MAX_ROWS: u64 = 200_000;

/// Seed for `TABLESAMPLE ... REPEATABLE`, so the same table yields the same plan.
const SAMPLE_SEED: i32 = 42;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RelKind {
    /// `relkind = 'r'`.
    Table,
    /// `relkind = 'p'`: a partitioned table, whose rows live in its partitions.
    Partitioned,
}

/// A table that the job could export.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Relation {
    pub oid: u32,
    pub name: QualifiedName,
    pub kind: RelKind,
    /// The partitioned table this is a partition of, if any.
    pub partition_of: Option<u32>,
    /// An ordinary table with inheritance children (whose rows a plain SELECT also returns).
    pub has_inheritance_children: bool,
}

/// The tables a job exports, sorted by name, and what the planner wants the user to know.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Selection {
    pub tables: Vec<Relation>,
    pub notes: Vec<String>,
}

/// Every user table that could be exported (ordinary and partitioned tables outside system and
/// temporary schemas), sorted by name.
pub async fn candidate_relations<C: GenericClient + Sync>(client: &C) -> Result<Vec<Relation>> {
    // relkind is a "char"; cast to text to read it as a string.
    queries::note();
    let rows = client
        .query(
            "SELECT c.oid, n.nspname, c.relname, c.relkind::text, c.relhassubclass,
                    (SELECT i.inhparent FROM pg_inherits i
                      WHERE i.inhrelid = c.oid AND c.relispartition) AS partition_of
               FROM pg_class c
               JOIN pg_namespace n ON n.oid = c.relnamespace
              WHERE c.relkind IN ('r', 'p')
                AND n.nspname NOT IN ('pg_catalog', 'information_schema')
                AND n.nspname NOT LIKE 'pg\\_toast%'
                AND n.nspname NOT LIKE 'pg\\_temp\\_%'
                AND NOT pg_is_other_temp_schema(n.oid)
                AND n.oid <> pg_my_temp_schema()",
            &[],
        )
        .await
        .context("listing tables in pg_class")?;
    let mut out = Vec::with_capacity(rows.len());
    for row in rows {
        let relkind: String = row.try_get(3)?;
        let kind = if relkind == "p" {
            RelKind::Partitioned
        } else {
            RelKind::Table
        };
        out.push(Relation {
            oid: row.try_get(0)?,
            name: QualifiedName::new(row.try_get::<_, String>(1)?, row.try_get::<_, String>(2)?),
            kind,
            partition_of: row.try_get(5)?,
            has_inheritance_children: kind == RelKind::Table && row.try_get::<_, bool>(4)?,
        });
    }
    // Sorted here rather than in SQL so the order does not depend on the database collation.
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

/// Resolve the job's table selection against the source catalog.
pub async fn resolve_tables<C: GenericClient + Sync>(
    client: &C,
    filter: &TableFilter,
) -> Result<Selection> {
    let candidates = candidate_relations(client).await?;
    select_tables(&candidates, filter)
}

/// Pure part of [`resolve_tables`]: match the patterns, then drop partitions whose partitioned
/// ancestor is also selected (querying the ancestor already reads them; exporting both would
/// export their rows twice).
pub fn select_tables(candidates: &[Relation], filter: &TableFilter) -> Result<Selection> {
    let unmatched = filter.unmatched(candidates.iter().map(|c| &c.name));
    if !unmatched.missing.is_empty() {
        let missing: Vec<&str> = unmatched.missing.iter().map(|p| p.as_str()).collect();
        bail!(
            "tables.include names {} that do not exist in the source (or are not tables): {}; \
             check the spelling and schema (unquoted names fold to lower case)",
            if missing.len() == 1 {
                "a table"
            } else {
                "tables"
            },
            missing.join(", ")
        );
    }
    let mut matched: Vec<&Relation> = candidates
        .iter()
        .filter(|c| filter.matches(&c.name))
        .collect();
    matched.sort_by(|a, b| a.name.cmp(&b.name));
    if matched.is_empty() {
        bail!("no table matches {}", filter.describe());
    }

    let by_oid: HashMap<u32, &Relation> = candidates.iter().map(|c| (c.oid, c)).collect();
    let selected: HashSet<u32> = matched.iter().map(|c| c.oid).collect();
    let mut tables = Vec::new();
    let mut notes = Vec::new();
    for rel in matched {
        match topmost_selected_ancestor(rel, &by_oid, &selected) {
            Some(ancestor) => notes.push(format!(
                "skipped partition {}: its partitioned table {} is exported and already includes its rows",
                rel.name.display_name(),
                ancestor.name.display_name()
            )),
            None => {
                if rel.has_inheritance_children {
                    notes.push(format!(
                        "{} has inheritance children: it exports its own rows only (as pg_dump does); the children are tables of their own, exported when selected",
                        rel.name.display_name()
                    ));
                }
                tables.push(rel.clone());
            }
        }
    }
    Ok(Selection { tables, notes })
}

/// The highest partitioned ancestor of `rel` that is also selected, if any.
fn topmost_selected_ancestor<'a>(
    rel: &Relation,
    by_oid: &HashMap<u32, &'a Relation>,
    selected: &HashSet<u32>,
) -> Option<&'a Relation> {
    let mut found = None;
    let mut seen = HashSet::new();
    let mut parent = rel.partition_of;
    // `seen` guards against a cycle, which a consistent catalog never has.
    while let Some(oid) = parent.filter(|&oid| seen.insert(oid)) {
        let Some(ancestor) = by_oid.get(&oid) else {
            break;
        };
        if selected.contains(&oid) {
            found = Some(*ancestor);
        }
        parent = ancestor.partition_of;
    }
    found
}

/// `current_database()`: the database an export reads (the first folder of the RDS layout).
pub async fn current_database<C: GenericClient + Sync>(client: &C) -> Result<String> {
    queries::note();
    let row = client
        .query_one("SELECT current_database()::text", &[])
        .await
        .context("reading current_database()")?;
    Ok(row.try_get(0)?)
}

pub(crate) fn non_negative(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

/// `min(key)` and `max(key)`, or `None` when the key has no non-null value. Index-backed for a
/// primary key.
pub async fn key_min_max<C: GenericClient + Sync>(
    client: &C,
    table: &QualifiedName,
    column: &str,
) -> Result<Option<(i64, i64)>> {
    let col = quote_ident(column);
    let sql = format!(
        "SELECT min({col})::int8, max({col})::int8 FROM {}",
        table.quoted()
    );
    queries::note();
    let row = client
        .query_one(&sql, &[])
        .await
        .with_context(|| format!("reading min/max of {column:?} in {}", table.display_name()))?;
    let min: Option<i64> = row.try_get(0)?;
    let max: Option<i64> = row.try_get(1)?;
    Ok(min.zip(max))
}

/// Non-null keys from a page sample. With `stride > 1` only the rows whose (page + line
/// pointer) is a multiple of stride are kept: deterministic, spread over every sampled page,
/// and computed on the server so the thinned rows never cross the network.
pub async fn sample_keys<C: GenericClient + Sync>(
    client: &C,
    table: &QualifiedName,
    column: &str,
    plan: &SamplePlan,
) -> Result<Vec<i64>> {
    let col = quote_ident(column);
    let percent = plan.percent.clamp(0.000_001, 100.0) as f32;
    let stride = i64::try_from(plan.stride).unwrap_or(i64::MAX);
    let mut sql = format!(
        "SELECT {col}::int8 FROM {} TABLESAMPLE SYSTEM ($1::float4) REPEATABLE ({SAMPLE_SEED}) \
         WHERE {col} IS NOT NULL",
        table.quoted()
    );
    if stride > 1 {
        sql.push_str(" AND ((ctid::text::point)[0] + (ctid::text::point)[1])::int8 % $2::int8 = 0");
        read_keys(client, &sql, &[&percent, &stride]).await
    } else {
        read_keys(client, &sql, &[&percent]).await
    }
    .with_context(|| format!("sampling {column:?} of {}", table.display_name()))
}

/// Every non-null key of a (small) table. Sorted on the coordinator, not with ORDER BY, so the
/// replica does not spill a sort to disk.
pub async fn all_keys<C: GenericClient + Sync>(
    client: &C,
    table: &QualifiedName,
    column: &str,
) -> Result<Vec<i64>> {
    let col = quote_ident(column);
    let sql = format!(
        "SELECT {col}::int8 FROM {} WHERE {col} IS NOT NULL",
        table.quoted()
    );
    read_keys(client, &sql, &[])
        .await
        .with_context(|| format!("reading {column:?} of {}", table.display_name()))
}

/// Stream a one-column int8 result into a vector (no `Vec<Row>` of 100k rows in memory).
async fn read_keys<C: GenericClient + Sync>(
    client: &C,
    sql: &str,
    params: &[&(dyn ToSql + Sync)],
) -> Result<Vec<i64>> {
    queries::note();
    let stream = client.query_raw(sql, params.iter().copied()).await?;
    futures::pin_mut!(stream);
    let mut keys = Vec::new();
    while let Some(row) = stream.try_next().await? {
        keys.push(row.try_get::<_, i64>(0)?);
    }
    Ok(keys)
}

/// `pg_stats.histogram_bounds` of an integer column, if ANALYZE collected it. The inherited
/// row (statistics over the table and its children, the only one a partitioned table has) is
/// preferred since a query on the table reads its children too.
pub async fn histogram_bounds<C: GenericClient + Sync>(
    client: &C,
    table: &QualifiedName,
    column: &str,
) -> Result<Option<Vec<i64>>> {
    queries::note();
    let row = client
        .query_opt(
            "SELECT histogram_bounds::text::int8[]
               FROM pg_stats
              WHERE schemaname = $1 AND tablename = $2 AND attname = $3
                AND histogram_bounds IS NOT NULL
              ORDER BY inherited DESC
              LIMIT 1",
            &[&table.schema, &table.name, &column],
        )
        .await
        .with_context(|| format!("reading pg_stats for {}", table.display_name()))?;
    Ok(match row {
        Some(row) => row.try_get(0)?,
        None => None,
    })
}

/// Where a key's quantile points came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PointSource {
    /// `TABLESAMPLE SYSTEM`.
    Sample,
    /// Every key of a small table.
    AllKeys,
    /// `pg_stats.histogram_bounds` (as fresh as the last ANALYZE).
    Histogram,
    /// Nothing but min/max: the split is by equal strides.
    MinMaxOnly,
}

/// Points describing a key's distribution, for [`chunking::quantile_boundaries`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyPoints {
    pub points: Vec<i64>,
    pub source: PointSource,
}

/// Find quantile points for a key: a page sample sized for `chunks`; if that came back too
/// small, every key of a small table, else the ANALYZE histogram, else nothing (strides).
pub async fn key_points<C: GenericClient + Sync>(
    client: &C,
    table: &QualifiedName,
    column: &str,
    size: &TableSize,
    chunks: u64,
) -> Result<KeyPoints> {
    let plan = chunking::sample_plan(size.estimated_rows, size.pages, chunks);
    let points = sample_keys(client, table, column, &plan).await?;
    if chunking::sample_is_adequate(&plan, points.len(), chunks) {
        return Ok(KeyPoints {
            points,
            source: PointSource::Sample,
        });
    }
    if size.estimated_rows < FULL_SCAN_MAX_ROWS {
        return Ok(KeyPoints {
            points: all_keys(client, table, column).await?,
            source: PointSource::AllKeys,
        });
    }
    match histogram_bounds(client, table, column).await? {
        Some(bounds) if bounds.len() >= 2 => Ok(KeyPoints {
            points: bounds,
            source: PointSource::Histogram,
        }),
        _ => Ok(KeyPoints {
            points: Vec::new(),
            source: PointSource::MinMaxOnly,
        }),
    }
}

/// Chunk boundaries on a unique key of any types, as each column's text form: the keys at
/// `chunks - 1` equal-count quantiles of a page sample (or of every row when `plan` is `None`),
/// strictly increasing in the server's own order, and the number of rows sampled. Set-based and
/// read-only: the sample is sorted on the server and only the boundary rows come back.
pub async fn tuple_boundaries<C: GenericClient + Sync>(
    client: &C,
    table: &QualifiedName,
    only: bool,
    columns: &[KeyColumn],
    plan: Option<&SamplePlan>,
    chunks: u64,
) -> Result<(Vec<Vec<String>>, u64)> {
    // Text forms that any session reads back as the same value: ISO dates, round-trip floats.
    queries::note();
    client
        .query_one(
            "SELECT set_config('DateStyle', 'ISO', true), \
                    set_config('IntervalStyle', 'postgres', true), \
                    set_config('extra_float_digits', '3', true)",
            &[],
        )
        .await
        .context("setting DateStyle for key boundaries")?;
    let cols = columns
        .iter()
        .map(|c| quote_ident(&c.name))
        .collect::<Vec<_>>()
        .join(", ");
    let texts = columns
        .iter()
        .map(|c| format!("{}::text", quote_ident(&c.name)))
        .collect::<Vec<_>>()
        .join(", ");
    let only = if only { "ONLY " } else { "" };
    let chunks = i64::try_from(chunks).unwrap_or(i64::MAX);
    let (sample, params): (String, Vec<Box<dyn ToSql + Sync + Send>>) = match plan {
        None => (String::new(), vec![Box::new(chunks)]),
        Some(plan) => {
            let percent = plan.percent.clamp(0.000_001, 100.0) as f32;
            let stride = i64::try_from(plan.stride).unwrap_or(i64::MAX);
            let mut sample = format!(" TABLESAMPLE SYSTEM ($2::float4) REPEATABLE ({SAMPLE_SEED})");
            let mut params: Vec<Box<dyn ToSql + Sync + Send>> =
                vec![Box::new(chunks), Box::new(percent)];
            if stride > 1 {
                sample.push_str(
                    " WHERE ((ctid::text::point)[0] + (ctid::text::point)[1])::int8 % $3::int8 = 0",
                );
                params.push(Box::new(stride));
            }
            (sample, params)
        }
    };
    // Row rn (1-based, of n) starts a chunk when a multiple of n/chunks falls in (rn-1, rn];
    // rn < n leaves the last chunk more than the largest sampled key. The last row comes back
    // too (flagged), for the sample's size.
    let sql = format!(
        "SELECT ARRAY[{texts}], rn = n, n FROM (
           SELECT {cols}, row_number() OVER (ORDER BY {cols}) AS rn, count(*) OVER () AS n
             FROM {only}{}{sample}
         ) s
         WHERE rn = n OR (rn > 1 AND ((rn - 1) * $1::int8) / n < (rn * $1::int8) / n)
         ORDER BY rn",
        table.quoted()
    );
    let params: Vec<&(dyn ToSql + Sync)> = params
        .iter()
        .map(|p| p.as_ref() as &(dyn ToSql + Sync))
        .collect();
    queries::note();
    let rows = client
        .query(&sql, &params)
        .await
        .with_context(|| format!("sampling key boundaries of {}", table.display_name()))?;
    let mut boundaries = Vec::with_capacity(rows.len());
    let mut sampled = 0;
    for row in &rows {
        if row.try_get::<_, bool>(1)? {
            sampled = non_negative(row.try_get(2)?);
        } else {
            boundaries.push(row.try_get::<_, Vec<String>>(0)?);
        }
    }
    Ok((boundaries, sampled))
}

/// Key overrides that name no exported table: likely typos, worth a note.
pub fn unused_key_overrides(
    overrides: &BTreeMap<QualifiedName, String>,
    tables: &[Relation],
) -> Vec<String> {
    overrides
        .keys()
        .filter(|name| !tables.iter().any(|t| &t.name == *name))
        .map(|name| {
            format!(
                "tables.keys entry for {} is unused: that table is not exported",
                name.display_name()
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::export::key::{choose_key, KeyChoice, KeyPick};
    use protocol::ident::TablePattern;
    use protocol::ColumnType;
    use tokio_postgres::types::Type;

    fn rel(oid: u32, name: &str, kind: RelKind, partition_of: Option<u32>) -> Relation {
        Relation {
            oid,
            name: QualifiedName::parse(name).unwrap(),
            kind,
            partition_of,
            has_inheritance_children: false,
        }
    }

    fn patterns(items: &[&str]) -> Vec<TablePattern> {
        items
            .iter()
            .map(|p| TablePattern::parse(p).unwrap())
            .collect()
    }

    fn select_tables(
        candidates: &[Relation],
        include: &[TablePattern],
        exclude: &[TablePattern],
    ) -> Result<Selection> {
        super::select_tables(
            candidates,
            &TableFilter::new(include.to_vec(), exclude.to_vec()),
        )
    }

    fn names(sel: &Selection) -> Vec<String> {
        sel.tables.iter().map(|t| t.name.display_name()).collect()
    }

    /// m (partitioned) ← m_1, m_2, m_3 (partitioned) ← m_3a, m_3b; plus orders and s.audit.
    fn catalog() -> Vec<Relation> {
        use RelKind::*;
        vec![
            rel(10, "public.orders", Table, None),
            rel(20, "public.m", Partitioned, None),
            rel(21, "public.m_1", Table, Some(20)),
            rel(22, "public.m_2", Table, Some(20)),
            rel(23, "public.m_3", Partitioned, Some(20)),
            rel(24, "public.m_3a", Table, Some(23)),
            rel(25, "public.m_3b", Table, Some(23)),
            rel(30, "s.audit", Table, None),
        ]
    }

    #[test]
    fn globs_excludes_and_sorting() {
        let sel =
            select_tables(&catalog(), &patterns(&["*.*"]), &patterns(&["public.m*"])).unwrap();
        assert_eq!(names(&sel), ["public.orders", "s.audit"]);
        assert!(sel.notes.is_empty());
    }

    #[test]
    fn partitioned_parent_is_exported_once() {
        let sel = select_tables(&catalog(), &patterns(&["public.*"]), &[]).unwrap();
        assert_eq!(names(&sel), ["public.m", "public.orders"]);
        assert_eq!(sel.notes.len(), 5, "{:?}", sel.notes);
        assert!(sel
            .notes
            .iter()
            .all(|n| n.contains("partitioned table public.m ")));
        assert!(sel.notes.iter().any(|n| n.contains("public.m_3b")));
    }

    #[test]
    fn partitions_without_their_root() {
        // A partition alone is exported on its own.
        let sel = select_tables(&catalog(), &patterns(&["m_2"]), &[]).unwrap();
        assert_eq!(names(&sel), ["public.m_2"]);
        // A mid-level partitioned table takes its own partitions but not its siblings.
        let sel = select_tables(&catalog(), &patterns(&["m_3*", "m_1"]), &[]).unwrap();
        assert_eq!(names(&sel), ["public.m_1", "public.m_3"]);
        assert_eq!(sel.notes.len(), 2);
        assert!(sel.notes[0].contains("public.m_3a") && sel.notes[0].contains("public.m_3 "));
        // Root excluded: its partitions are exported on their own.
        let sel = select_tables(&catalog(), &patterns(&["public.m*"]), &patterns(&["m"])).unwrap();
        assert_eq!(names(&sel), ["public.m_1", "public.m_2", "public.m_3"]);
    }

    #[test]
    fn missing_literal_and_empty_selection_are_errors() {
        let err = select_tables(&catalog(), &patterns(&["public.*", "public.nope"]), &[])
            .unwrap_err()
            .to_string();
        assert!(err.contains("public.nope"), "{err}");
        // A glob that matches nothing is fine as long as something else matches.
        assert!(select_tables(&catalog(), &patterns(&["orders", "x*"]), &[]).is_ok());
        let err = select_tables(&catalog(), &patterns(&["x*"]), &[])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("no table matches") && err.contains("x*"),
            "{err}"
        );
        let err = select_tables(&catalog(), &patterns(&["orders"]), &patterns(&["orders"]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("tables.exclude"), "{err}");
    }

    fn col(name: &str, attnum: i16, ty: Type, not_null: bool) -> Column {
        Column {
            name: name.into(),
            attnum,
            type_oid: ty.oid(),
            type_name: ty.name().into(),
            type_ref: QualifiedName::new("pg_catalog", ty.name()),
            not_null,
            pg_type: ColumnType {
                typname: ty.name().into(),
                data_type: ty.name().into(),
                char_max_length: None,
                numeric_precision: None,
                datetime_precision: None,
            },
        }
    }

    fn key(primary: bool, columns: &[i16]) -> UniqueKey {
        UniqueKey {
            primary,
            columns: columns.to_vec(),
        }
    }

    #[test]
    fn key_choice() {
        let t = rel(1, "public.t", RelKind::Table, None);
        let p = rel(2, "public.p", RelKind::Partitioned, None);
        let cols = [
            col("id", 1, Type::INT8, true),
            col("code", 2, Type::TEXT, true),
            col("n", 3, Type::INT4, false),
            col("u", 4, Type::UUID, true),
        ];
        let integer = |c: &str| KeyChoice::Integer { column: c.into() };
        let unique = |names: &[&str]| KeyChoice::Unique {
            columns: names
                .iter()
                .map(|n| {
                    let c = cols.iter().find(|c| c.name == *n).unwrap();
                    KeyColumn {
                        name: c.name.clone(),
                        type_name: c.type_ref.clone(),
                    }
                })
                .collect(),
        };
        assert_eq!(
            choose_key(&t, &cols, &[key(true, &[1])], None, false).unwrap(),
            KeyPick {
                choice: integer("id"),
                nullable: false
            }
        );
        // A text primary key: its ranges, for ordinary and partitioned tables alike.
        for table in [&t, &p] {
            assert_eq!(
                choose_key(table, &cols, &[key(true, &[2])], None, false)
                    .unwrap()
                    .choice,
                unique(&["code"])
            );
        }
        // An integer unique key is cheaper to split on than a uuid primary key.
        assert_eq!(
            choose_key(&t, &cols, &[key(true, &[4]), key(false, &[1])], None, false)
                .unwrap()
                .choice,
            integer("id")
        );
        // Composite, in index order.
        assert_eq!(
            choose_key(&t, &cols, &[key(true, &[4, 2])], None, false)
                .unwrap()
                .choice,
            unique(&["u", "code"])
        );
        // No unique key: pages only under one snapshot; partitioned tables are whole.
        assert_eq!(
            choose_key(&t, &cols, &[], None, false).unwrap().choice,
            KeyChoice::Whole
        );
        assert_eq!(
            choose_key(&t, &cols, &[], None, true).unwrap().choice,
            KeyChoice::Pages
        );
        assert_eq!(
            choose_key(&p, &cols, &[], None, true).unwrap().choice,
            KeyChoice::Whole
        );
        // User key wins, and may be nullable.
        assert_eq!(
            choose_key(&t, &cols, &[key(true, &[1])], Some("n"), false).unwrap(),
            KeyPick {
                choice: integer("n"),
                nullable: true
            }
        );
        let err = choose_key(&t, &cols, &[], Some("code"), false)
            .unwrap_err()
            .to_string();
        assert!(err.contains("public.t") && err.contains("\"code\"") && err.contains("text"));
        let err = choose_key(&t, &cols, &[], Some("ID"), false)
            .unwrap_err()
            .to_string();
        assert!(err.contains("\"ID\"") && err.contains("id, n"), "{err}");
    }

    #[test]
    fn row_estimates_from_stats() {
        assert_eq!(rows_from_stats(-1.0, 0, 0), Some(0));
        assert_eq!(rows_from_stats(-1.0, 0, 10), None);
        assert_eq!(rows_from_stats(0.0, 0, 10), None);
        assert_eq!(rows_from_stats(1_000.0, 10, 10), Some(1_000));
        // Grown to twice its analyzed size.
        assert_eq!(rows_from_stats(1_000.0, 10, 20), Some(2_000));
        // Truncated since.
        assert_eq!(rows_from_stats(1_000.0, 10, 0), Some(0));
    }

    #[test]
    fn unused_overrides_are_noted() {
        let tables = vec![rel(1, "public.t", RelKind::Table, None)];
        let mut o = BTreeMap::new();
        o.insert(QualifiedName::new("public", "t"), "id".to_string());
        o.insert(QualifiedName::new("public", "typo"), "id".to_string());
        let notes = unused_key_overrides(&o, &tables);
        assert_eq!(notes.len(), 1);
        assert!(notes[0].contains("public.typo"));
    }
}
