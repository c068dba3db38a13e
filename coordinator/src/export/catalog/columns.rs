//! The exportable columns of every selected table, read with one query for all of them.

use super::queries;
use anyhow::{Context, Result};
use protocol::{ColumnType, QualifiedName};
use std::collections::HashMap;
use tokio_postgres::types::Type;
use tokio_postgres::GenericClient;

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

/// The columns of each table in `oids` (tables without any column are absent), in attnum
/// order, without system and dropped columns (generated columns are kept: they can be read),
/// with their types as `information_schema.columns` describes them (what RDS writes as
/// `originalType`, e.g. `ARRAY`, `USER-DEFINED`). The view only lists columns the user has some
/// privilege on; for any other, `data_type` falls back to `format_type` and the sizes are
/// unknown.
///
/// One query whatever the number of tables: the view is read once, restricted to the
/// selected tables' schemas and hash-joined (joined per column instead, its SQL-function
/// columns cost a nested loop per row).
pub async fn columns_of<C: GenericClient + Sync>(
    client: &C,
    oids: &[u32],
) -> Result<HashMap<u32, Vec<Column>>> {
    queries::note();
    let rows = client
        .query(
            "WITH rels AS MATERIALIZED (
               SELECT cl.oid, n.nspname, cl.relname
                 FROM pg_class cl JOIN pg_namespace n ON n.oid = cl.relnamespace
                WHERE cl.oid = ANY($1::oid[])
             ), ic AS MATERIALIZED (
               SELECT table_schema::name AS table_schema, table_name::name AS table_name,
                      ordinal_position::int2 AS attnum, data_type::text AS data_type,
                      character_maximum_length::int4 AS char_max_length,
                      numeric_precision::int4 AS numeric_precision,
                      datetime_precision::int4 AS datetime_precision
                 FROM information_schema.columns
                WHERE table_schema::name IN (SELECT nspname FROM rels)
             )
             SELECT a.attrelid, a.attname::text, a.attnum, a.atttypid,
                    format_type(a.atttypid, a.atttypmod), a.attnotnull, t.typname::text,
                    COALESCE(ic.data_type, format_type(a.atttypid, NULL)),
                    ic.char_max_length, ic.numeric_precision, ic.datetime_precision,
                    tn.nspname::text
               FROM rels r
               JOIN pg_attribute a ON a.attrelid = r.oid
               JOIN pg_type t ON t.oid = a.atttypid
               JOIN pg_namespace tn ON tn.oid = t.typnamespace
               LEFT JOIN ic ON ic.table_schema = r.nspname AND ic.table_name = r.relname
                           AND ic.attnum = a.attnum
              WHERE a.attnum > 0 AND NOT a.attisdropped
              ORDER BY a.attrelid, a.attnum",
            &[&oids],
        )
        .await
        .context("reading columns from pg_attribute and information_schema.columns")?;
    let mut out: HashMap<u32, Vec<Column>> = HashMap::new();
    for row in &rows {
        let oid: u32 = row.try_get(0)?;
        out.entry(oid).or_default().push(Column {
            name: row.try_get(1)?,
            attnum: row.try_get(2)?,
            type_oid: row.try_get(3)?,
            type_name: row.try_get(4)?,
            type_ref: QualifiedName::new(
                row.try_get::<_, String>(11)?,
                row.try_get::<_, String>(6)?,
            ),
            not_null: row.try_get(5)?,
            pg_type: ColumnType {
                typname: row.try_get(6)?,
                data_type: row.try_get(7)?,
                char_max_length: row.try_get(8)?,
                numeric_precision: row.try_get(9)?,
                datetime_precision: row.try_get(10)?,
            },
        });
    }
    Ok(out)
}
