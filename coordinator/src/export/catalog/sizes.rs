//! The size of every selected table (summed over the leaves of a partitioned table): one query
//! for every heap's statistics and size, then batched counts of the heaps whose statistics
//! cannot say.

use super::unlocked::without_locks;
use super::{non_negative, queries, RelKind, Relation, SAMPLE_SEED};
use anyhow::{Context, Result};
use protocol::QualifiedName;
use std::collections::HashMap;
use tokio_postgres::types::ToSql;
use tokio_postgres::GenericClient;

/// Pages read to count the rows of a table that has never been analyzed (8 MiB at most).
const COUNT_SAMPLE_PAGES: u64 = 1_000;

/// Heaps counted per statement (a `UNION ALL` of one `count(*)` each): large enough that a
/// catalog of thousands of never-analyzed tables costs a few round trips, small enough that
/// the statement plans quickly.
const COUNT_BATCH: usize = 1_000;

/// Size of a table (summed over the leaf partitions of a partitioned table).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
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

/// One heap whose size is known: an ordinary table itself or one leaf partition.
struct HeapStats {
    /// The selected table it counts towards.
    root: u32,
    name: QualifiedName,
    reltuples: f64,
    relpages: i64,
    pages: u64,
    bytes: u64,
}

/// The size of each table in `rels` (one without any heap, such as a partitioned table with
/// no partitions, is absent: its size is zero).
pub async fn table_sizes<C: GenericClient + Sync>(
    client: &C,
    rels: &[Relation],
) -> Result<HashMap<u32, TableSize>> {
    let heaps = without_locks(client, heap_stats(client, rels)).await?;
    let mut sizes: HashMap<u32, TableSize> = HashMap::with_capacity(rels.len());
    let mut uncounted = Vec::new();
    for heap in &heaps {
        let size = sizes.entry(heap.root).or_default();
        size.bytes += heap.bytes;
        size.pages += heap.pages;
        match rows_from_stats(heap.reltuples, heap.relpages, heap.pages) {
            Some(rows) => size.estimated_rows += rows,
            None => uncounted.push(heap),
        }
    }
    for batch in uncounted.chunks(COUNT_BATCH) {
        let counts = without_locks(client, count_by_sampling(client, batch)).await?;
        for (heap, (rows, exact)) in batch.iter().zip(counts) {
            let size = sizes.entry(heap.root).or_default();
            size.estimated_rows += rows;
            size.sampled_count |= !exact;
        }
    }
    Ok(sizes)
}

/// Statistics and current size of every heap of `rels`: an ordinary table is its own heap, a
/// partitioned table's are its leaf partitions (`pg_partition_tree`, called once per
/// partitioned table: an `OR` over it in the filter would scan `pg_class` once per table).
async fn heap_stats<C: GenericClient + Sync>(
    client: &C,
    rels: &[Relation],
) -> Result<Vec<HeapStats>> {
    let (tables, partitioned): (Vec<&Relation>, Vec<&Relation>) =
        rels.iter().partition(|r| r.kind == RelKind::Table);
    let tables: Vec<u32> = tables.iter().map(|r| r.oid).collect();
    let partitioned: Vec<u32> = partitioned.iter().map(|r| r.oid).collect();
    queries::note();
    let rows = client
        .query(
            "WITH heaps(root, heap) AS (
               SELECT t.oid, t.oid FROM unnest($1::oid[]) AS t(oid)
               UNION ALL
               SELECT p.oid, l.relid
                 FROM unnest($2::oid[]) AS p(oid)
                 CROSS JOIN LATERAL pg_partition_tree(p.oid::regclass) l
                WHERE l.isleaf
             )
             SELECT h.root, n.nspname::text, c.relname::text, c.reltuples::float8,
                    c.relpages::int8,
                    pg_relation_size(c.oid) / current_setting('block_size')::int8,
                    pg_table_size(c.oid)
               FROM heaps h
               JOIN pg_class c ON c.oid = h.heap
               JOIN pg_namespace n ON n.oid = c.relnamespace",
            &[&tables, &partitioned],
        )
        .await
        .context("reading table sizes from pg_class")?;
    rows.iter()
        .map(|row| {
            Ok(HeapStats {
                root: row.try_get(0)?,
                name: QualifiedName::new(
                    row.try_get::<_, String>(1)?,
                    row.try_get::<_, String>(2)?,
                ),
                reltuples: row.try_get(3)?,
                relpages: row.try_get(4)?,
                pages: non_negative(row.try_get(5)?),
                bytes: non_negative(row.try_get(6)?),
            })
        })
        .collect()
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

/// The share of a heap of `pages` pages that [`COUNT_SAMPLE_PAGES`] is, in percent.
fn count_percent(pages: u64) -> f64 {
    (100.0 * COUNT_SAMPLE_PAGES as f64 / pages.max(1) as f64).min(100.0)
}

/// Estimate the rows of each heap by counting a page sample (at most [`COUNT_SAMPLE_PAGES`]
/// pages each), in one statement for the whole batch. Returns, in `heaps` order, each estimate
/// and whether it is exact (the sample was the whole heap).
async fn count_by_sampling<C: GenericClient + Sync>(
    client: &C,
    heaps: &[&HeapStats],
) -> Result<Vec<(u64, bool)>> {
    let percents: Vec<f64> = heaps.iter().map(|h| count_percent(h.pages)).collect();
    let sample: Vec<f32> = percents.iter().map(|&p| p as f32).collect();
    let sql = heaps
        .iter()
        .enumerate()
        .map(|(i, h)| {
            format!(
                "SELECT {i}::int4, count(*) FROM {} TABLESAMPLE SYSTEM (${}::float4) REPEATABLE ({SAMPLE_SEED})",
                h.name.quoted(),
                i + 1
            )
        })
        .collect::<Vec<_>>()
        .join(" UNION ALL ");
    let params: Vec<&(dyn ToSql + Sync)> =
        sample.iter().map(|p| p as &(dyn ToSql + Sync)).collect();
    queries::note();
    // PostgreSQL's own message names the table that failed (permissions, a lock timeout).
    let rows = client.query(&sql, &params).await.with_context(|| {
        format!(
            "counting a sample of {} table(s) without statistics, from {}",
            heaps.len(),
            heaps
                .first()
                .map(|h| h.name.display_name())
                .unwrap_or_default()
        )
    })?;
    let mut counted = vec![0u64; heaps.len()];
    for row in &rows {
        let i: i32 = row.try_get(0)?;
        if let Some(slot) = usize::try_from(i).ok().and_then(|i| counted.get_mut(i)) {
            *slot = non_negative(row.try_get(1)?);
        }
    }
    Ok(counted
        .into_iter()
        .zip(&percents)
        .map(|(n, &percent)| {
            if percent >= 100.0 {
                (n, true)
            } else {
                ((n as f64 * 100.0 / percent).round() as u64, false)
            }
        })
        .collect())
}
