//! Source catalog introspection for export planning: which tables a job selects, their columns,
//! their key, their size, and where an integer key's values lie.
//!
//! Everything here only reads, so it runs on a hot-standby replica inside the caller's READ ONLY
//! transaction. Catalog lookups are parameterized by oid or name; table and column names reach
//! SQL text only through `QualifiedName::quoted` / `quote_ident`.

use crate::export::chunking::{self, SamplePlan};
use anyhow::{bail, Context, Result};
use futures::TryStreamExt;
use protocol::{quote_ident, ColumnType, KeyColumn, QualifiedName, TableFilter};
use std::collections::{BTreeMap, HashMap, HashSet};
use tokio_postgres::types::{ToSql, Type};
use tokio_postgres::GenericClient;

/// Tables estimated below this many rows may be read whole to find exact key quantiles when a
/// sample is not good enough (reading 200k integers is cheaper than a bad plan).
pub const FULL_SCAN_MAX_ROWS: u64 = 200_000;

/// Seed for `TABLESAMPLE ... REPEATABLE`, so the same table yields the same plan.
const SAMPLE_SEED: i32 = 42;

/// Pages read to count the rows of a table that has never been analyzed (8 MiB at most).
const COUNT_SAMPLE_PAGES: u64 = 1_000;

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

/// One exportable column.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Column {
    pub name: String,
    pub attnum: i16,
    pub type_oid: u32,
    /// `format_type` output, for messages.
    pub type_name: String,
    /// The type's schema and `typname`, for casts that must not depend on `search_path`.
    pub type_ref: QualifiedName,
    pub not_null: bool,
    /// What typed export formats (`rds-parquet`) need: `pg_type.typname` and the
    /// `information_schema.columns` view of the column.
    pub pg_type: ColumnType,
}

impl Column {
    pub fn is_integer(&self) -> bool {
        [Type::INT2.oid(), Type::INT4.oid(), Type::INT8.oid()].contains(&self.type_oid)
    }
}

/// Columns in attnum order, without system and dropped columns (generated columns are kept:
/// they can be read), with their types as `information_schema.columns` describes them (what RDS
/// writes as `originalType`, e.g. `ARRAY`, `USER-DEFINED`). The view only lists columns the user
/// has some privilege on; for any other, `data_type` falls back to `format_type` and the sizes
/// are unknown.
pub async fn columns<C: GenericClient + Sync>(client: &C, oid: u32) -> Result<Vec<Column>> {
    // Joined by the table's own names so the view's filters use pg_class's name index.
    let rows = client
        .query(
            "SELECT a.attname::text, a.attnum, a.atttypid, format_type(a.atttypid, a.atttypmod),
                    a.attnotnull, t.typname::text,
                    COALESCE(ic.data_type::text, format_type(a.atttypid, NULL)),
                    ic.character_maximum_length::int4, ic.numeric_precision::int4,
                    ic.datetime_precision::int4, tn.nspname::text
               FROM pg_attribute a
               JOIN pg_type t ON t.oid = a.atttypid
               JOIN pg_namespace tn ON tn.oid = t.typnamespace
               JOIN pg_class cl ON cl.oid = a.attrelid
               JOIN pg_namespace n ON n.oid = cl.relnamespace
               LEFT JOIN information_schema.columns ic
                 ON ic.table_schema = n.nspname AND ic.table_name = cl.relname
                AND ic.ordinal_position = a.attnum
              WHERE a.attrelid = $1::oid AND a.attnum > 0 AND NOT a.attisdropped
              ORDER BY a.attnum",
            &[&oid],
        )
        .await
        .context("reading columns from pg_attribute and information_schema.columns")?;
    rows.iter()
        .map(|row| {
            Ok(Column {
                name: row.try_get(0)?,
                attnum: row.try_get(1)?,
                type_oid: row.try_get(2)?,
                type_name: row.try_get(3)?,
                type_ref: QualifiedName::new(
                    row.try_get::<_, String>(10)?,
                    row.try_get::<_, String>(5)?,
                ),
                not_null: row.try_get(4)?,
                pg_type: ColumnType {
                    typname: row.try_get(5)?,
                    data_type: row.try_get(6)?,
                    char_max_length: row.try_get(7)?,
                    numeric_precision: row.try_get(8)?,
                    datetime_precision: row.try_get(9)?,
                },
            })
        })
        .collect()
}

/// `current_database()`: the database an export reads (the first folder of the RDS layout).
pub async fn current_database<C: GenericClient + Sync>(client: &C) -> Result<String> {
    let row = client
        .query_one("SELECT current_database()::text", &[])
        .await
        .context("reading current_database()")?;
    Ok(row.try_get(0)?)
}

/// A unique btree key whose columns are all NOT NULL: every row has exactly one, distinct value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UniqueKey {
    pub primary: bool,
    /// attnums, in index order.
    pub columns: Vec<i16>,
}

/// The table's unique keys usable for splitting, the primary key first, then by fewest columns:
/// valid, non-partial, expression-free btree indexes over NOT NULL columns with the default
/// operator class and the column's own collation (so the chunk's row comparison orders rows as
/// the index does, and the index serves it).
pub async fn unique_keys<C: GenericClient + Sync>(client: &C, oid: u32) -> Result<Vec<UniqueKey>> {
    let rows = client
        .query(
            "SELECT i.indisprimary, k.cols
               FROM pg_index i
               JOIN pg_class ic ON ic.oid = i.indexrelid
               JOIN pg_am am ON am.oid = ic.relam
               CROSS JOIN LATERAL (
                 SELECT array_agg(u.attnum ORDER BY u.ord)::int2[] AS cols,
                        count(*) = i.indnkeyatts
                          AND bool_and(a.attnotnull AND oc.opcdefault AND u.coll = a.attcollation)
                          AS usable
                   FROM unnest(i.indkey::int2[], i.indclass::oid[], i.indcollation::oid[])
                        WITH ORDINALITY AS u(attnum, opc, coll, ord)
                   JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = u.attnum
                   JOIN pg_opclass oc ON oc.oid = u.opc
                  WHERE u.ord <= i.indnkeyatts
               ) k
              WHERE i.indrelid = $1::oid AND i.indisunique AND i.indisvalid
                AND i.indpred IS NULL AND i.indexprs IS NULL AND am.amname = 'btree' AND k.usable
              ORDER BY i.indisprimary DESC, cardinality(k.cols), ic.relname",
            &[&oid],
        )
        .await
        .context("reading unique keys from pg_index")?;
    rows.iter()
        .map(|row| {
            Ok(UniqueKey {
                primary: row.try_get(0)?,
                columns: row.try_get(1)?,
            })
        })
        .collect()
}

/// Size of a table (summed over the leaf partitions of a partitioned table).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TableSize {
    pub estimated_rows: u64,
    /// Heap plus TOAST (`pg_table_size`), without indexes: what a full read touches.
    pub bytes: u64,
    /// Current heap pages (`pg_relation_size / block_size`), fresher than `relpages`.
    pub pages: u64,
    /// Some leaf had no usable statistics and was too large to count whole: its row count was
    /// extrapolated from a page sample.
    pub sampled_count: bool,
}

/// One heap whose size is known: the table itself or one leaf partition.
struct HeapStats {
    name: QualifiedName,
    reltuples: f64,
    relpages: i64,
    pages: u64,
    bytes: u64,
}

pub async fn table_size<C: GenericClient + Sync>(client: &C, rel: &Relation) -> Result<TableSize> {
    let rows = client
        .query(
            "SELECT n.nspname::text, c.relname::text, c.reltuples::float8, c.relpages::int8,
                    pg_relation_size(c.oid) / current_setting('block_size')::int8,
                    pg_table_size(c.oid)
               FROM pg_class c
               JOIN pg_namespace n ON n.oid = c.relnamespace
              WHERE (c.oid = $1::oid AND c.relkind = 'r')
                 OR c.oid IN (SELECT t.relid FROM pg_partition_tree($1::oid::regclass) t
                               WHERE t.isleaf)",
            &[&rel.oid],
        )
        .await
        .context("reading table sizes from pg_class")?;
    let mut size = TableSize {
        estimated_rows: 0,
        bytes: 0,
        pages: 0,
        sampled_count: false,
    };
    for row in rows {
        let heap = HeapStats {
            name: QualifiedName::new(row.try_get::<_, String>(0)?, row.try_get::<_, String>(1)?),
            reltuples: row.try_get(2)?,
            relpages: row.try_get(3)?,
            pages: non_negative(row.try_get(4)?),
            bytes: non_negative(row.try_get(5)?),
        };
        let rows = match rows_from_stats(heap.reltuples, heap.relpages, heap.pages) {
            Some(rows) => rows,
            None => {
                let (rows, exact) = count_by_sampling(client, &heap.name, heap.pages).await?;
                size.sampled_count |= !exact;
                rows
            }
        };
        size.estimated_rows += rows;
        size.bytes += heap.bytes;
        size.pages += heap.pages;
    }
    Ok(size)
}

fn non_negative(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

/// Row estimate from `pg_class` statistics, scaled to the heap's current size as PostgreSQL's
/// own planner does (rows per page at the last ANALYZE/VACUUM times pages now). `None` when the
/// statistics cannot say: never analyzed (`reltuples = -1`), or analyzed while empty and grown
/// since.
pub fn rows_from_stats(reltuples: f64, relpages: i64, current_pages: u64) -> Option<u64> {
    if current_pages == 0 {
        return Some(0);
    }
    if reltuples >= 0.0 && relpages > 0 {
        let per_page = reltuples / relpages as f64;
        return Some((per_page * current_pages as f64).round() as u64);
    }
    None
}

/// Estimate rows by counting a page sample: at most [`COUNT_SAMPLE_PAGES`] pages are read.
/// Returns the estimate and whether it is exact (the sample was the whole table).
async fn count_by_sampling<C: GenericClient + Sync>(
    client: &C,
    table: &QualifiedName,
    pages: u64,
) -> Result<(u64, bool)> {
    let percent = (100.0 * COUNT_SAMPLE_PAGES as f64 / pages.max(1) as f64).min(100.0);
    let sql = format!(
        "SELECT count(*) FROM {} TABLESAMPLE SYSTEM ($1::float4) REPEATABLE ({SAMPLE_SEED})",
        table.quoted()
    );
    let row = client
        .query_one(&sql, &[&(percent as f32)])
        .await
        .with_context(|| format!("counting a sample of {}", table.display_name()))?;
    let counted = non_negative(row.try_get(0)?);
    if percent >= 100.0 {
        return Ok((counted, true));
    }
    Ok(((counted as f64 * 100.0 / percent).round() as u64, false))
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
