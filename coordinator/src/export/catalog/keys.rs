//! The unique keys usable for splitting, of every selected table, read with one query.

use super::queries;
use anyhow::{Context, Result};
use std::collections::HashMap;
use tokio_postgres::GenericClient;

/// A unique btree key whose columns are all NOT NULL: every row has exactly one, distinct value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UniqueKey {
    pub primary: bool,
    /// attnums, in index order.
    pub columns: Vec<i16>,
}

/// Each table's unique keys usable for splitting (tables without one are absent), the primary
/// key first, then by fewest columns: valid, non-partial, expression-free btree indexes over
/// NOT NULL columns with the default operator class and the column's own collation (so the
/// chunk's row comparison orders rows as the index does, and the index serves it).
pub async fn unique_keys_of<C: GenericClient + Sync>(
    client: &C,
    oids: &[u32],
) -> Result<HashMap<u32, Vec<UniqueKey>>> {
    queries::note();
    let rows = client
        .query(
            "SELECT i.indrelid, i.indisprimary, k.cols
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
              WHERE i.indrelid = ANY($1::oid[]) AND i.indisunique AND i.indisvalid
                AND i.indpred IS NULL AND i.indexprs IS NULL AND am.amname = 'btree' AND k.usable
              ORDER BY i.indrelid, i.indisprimary DESC, cardinality(k.cols), ic.relname",
            &[&oids],
        )
        .await
        .context("reading unique keys from pg_index")?;
    let mut out: HashMap<u32, Vec<UniqueKey>> = HashMap::new();
    for row in &rows {
        let oid: u32 = row.try_get(0)?;
        out.entry(oid).or_default().push(UniqueKey {
            primary: row.try_get(1)?,
            columns: row.try_get(2)?,
        });
    }
    Ok(out)
}
