//! The restore target's catalog: tables, columns, partitions, foreign keys, owned sequences and
//! secondary indexes. Read once at planning; names come back unquoted and are always quoted
//! when spliced into SQL.

use anyhow::{Context, Result};
use protocol::QualifiedName;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use tokio_postgres::types::Oid;
use tokio_postgres::GenericClient;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetColumn {
    pub name: String,
    pub typname: String,
    /// `format_type()`, for messages.
    pub type_display: String,
    /// Stored generated columns cannot be in a COPY column list.
    pub generated: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetTable {
    pub oid: Oid,
    pub name: QualifiedName,
    pub partitioned: bool,
    /// Parent, grandparent … for a partition.
    pub ancestors: Vec<QualifiedName>,
    pub columns: Vec<TargetColumn>,
    /// The extension this table belongs to (`CREATE EXTENSION` made it), if any.
    pub extension: Option<ExtensionTable>,
}

/// A table an extension owns (`pg_depend` deptype `e`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExtensionTable {
    pub extension: String,
    /// Marked as configuration (`pg_extension_config_dump`): `Some(filter)` where the filter
    /// (a `WHERE` condition, empty for "every row") selects the rows users added, which pg_dump
    /// dumps. `None`: the extension's own data only.
    pub config_filter: Option<String>,
}

/// A foreign key as declared (top-level constraints only; partitions inherit them).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ForeignKey {
    pub name: String,
    pub table: QualifiedName,
    pub referenced: QualifiedName,
    /// `pg_get_constraintdef` without a trailing `NOT VALID`: enough to re-create it.
    pub definition: String,
    /// Valid in the target before the restore (a NOT VALID key is put back NOT VALID).
    #[serde(default = "valid_by_default")]
    pub validated: bool,
}

/// Jobs saved before `validated` existed only dropped keys that were valid.
fn valid_by_default() -> bool {
    true
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OwnedSequence {
    pub table: QualifiedName,
    pub column: String,
    /// Already quoted (`regclass` output).
    pub sequence: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SecondaryIndex {
    pub table: QualifiedName,
    /// Schema-qualified and quoted, so it means the same whatever the search_path.
    pub name: String,
    pub definition: String,
}

pub struct TargetCatalog {
    pub tables: Vec<TargetTable>,
    pub foreign_keys: Vec<ForeignKey>,
}

impl TargetCatalog {
    pub fn find(&self, name: &QualifiedName) -> Option<&TargetTable> {
        self.tables.iter().find(|t| &t.name == name)
    }

    /// Resolve an RDS `schema.table` string, which may contain dots, against real tables.
    pub fn resolve(&self, schema_and_table: &str) -> Option<&TargetTable> {
        self.tables
            .iter()
            .find(|t| format!("{}.{}", t.name.schema, t.name.name) == schema_and_table)
    }
}

const USER_TABLES: &str = "
    SELECT c.oid, n.nspname, c.relname, c.relkind = 'p'
    FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE c.relkind IN ('r', 'p')
      AND n.nspname NOT IN ('pg_catalog', 'information_schema', 'pgfleet_restore')
      AND n.nspname NOT LIKE 'pg\\_toast%' AND n.nspname NOT LIKE 'pg\\_temp\\_%'
    ORDER BY n.nspname, c.relname";

pub async fn load<C: GenericClient + Sync>(client: &C) -> Result<TargetCatalog> {
    let mut tables: Vec<TargetTable> = client
        .query(USER_TABLES, &[])
        .await?
        .iter()
        .map(|r| TargetTable {
            oid: r.get(0),
            name: QualifiedName::new(r.get::<_, String>(1), r.get::<_, String>(2)),
            partitioned: r.get(3),
            ancestors: Vec::new(),
            columns: Vec::new(),
            extension: None,
        })
        .collect();
    let by_oid: HashMap<Oid, QualifiedName> =
        tables.iter().map(|t| (t.oid, t.name.clone())).collect();
    let index: HashMap<Oid, usize> = tables.iter().enumerate().map(|(i, t)| (t.oid, i)).collect();

    let parents: HashMap<Oid, Oid> = client
        .query(
            "SELECT i.inhrelid, i.inhparent FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid WHERE c.relispartition",
            &[],
        )
        .await?
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    for t in tables.iter_mut() {
        let mut cur = t.oid;
        while let Some(p) = parents.get(&cur) {
            if let Some(name) = by_oid.get(p) {
                t.ancestors.push(name.clone());
            }
            cur = *p;
        }
    }

    let oids: Vec<Oid> = tables.iter().map(|t| t.oid).collect();
    for r in client
        .query(
            "SELECT a.attrelid, a.attname, t.typname, format_type(a.atttypid, a.atttypmod), a.attgenerated <> ''
             FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid
             WHERE a.attrelid = ANY($1) AND a.attnum > 0 AND NOT a.attisdropped
             ORDER BY a.attrelid, a.attnum",
            &[&oids],
        )
        .await?
    {
        if let Some(&i) = index.get(&r.get::<_, Oid>(0)) {
            tables[i].columns.push(TargetColumn {
                name: r.get(1),
                typname: r.get(2),
                type_display: r.get(3),
                generated: r.get(4),
            });
        }
    }

    // Extension member tables, with their configuration filters: one query for all.
    for r in client
        .query(
            "SELECT d.objid, e.extname,
                    array_position(e.extconfig, d.objid) IS NOT NULL,
                    e.extcondition[array_position(e.extconfig, d.objid)]
             FROM pg_depend d JOIN pg_extension e ON e.oid = d.refobjid
             WHERE d.classid = 'pg_class'::regclass AND d.refclassid = 'pg_extension'::regclass
               AND d.deptype = 'e'",
            &[],
        )
        .await?
    {
        if let Some(&i) = index.get(&r.get::<_, Oid>(0)) {
            let config: bool = r.get(2);
            tables[i].extension = Some(ExtensionTable {
                extension: r.get(1),
                config_filter: config.then(|| {
                    config_condition(r.get::<_, Option<String>>(3).as_deref().unwrap_or(""))
                }),
            });
        }
    }

    let foreign_keys = client
        .query(
            "SELECT con.conname, con.conrelid, con.confrelid, pg_get_constraintdef(con.oid), con.convalidated
             FROM pg_constraint con
             WHERE con.contype = 'f' AND con.conparentid = 0
             ORDER BY con.conrelid, con.conname",
            &[],
        )
        .await?
        .iter()
        .filter_map(|r| {
            Some(ForeignKey {
                name: r.get(0),
                table: by_oid.get(&r.get::<_, Oid>(1))?.clone(),
                referenced: by_oid.get(&r.get::<_, Oid>(2))?.clone(),
                definition: strip_not_valid(r.get(3)),
                validated: r.get(4),
            })
        })
        .collect();
    Ok(TargetCatalog {
        tables,
        foreign_keys,
    })
}

/// `pg_extension_config_dump`'s filter is stored as `WHERE cond` (or empty): the condition.
fn config_condition(filter: &str) -> String {
    let f = filter.trim();
    let keyword = f.get(..5).is_some_and(|w| w.eq_ignore_ascii_case("where"))
        && f[5..].starts_with(|c: char| c.is_whitespace() || c == '(');
    if keyword {
        f[5..].trim().to_string()
    } else {
        f.to_string()
    }
}

/// Rows of `table` matching `condition` exist (an extension configuration table's user rows).
pub async fn has_rows_where<C: GenericClient + Sync>(
    client: &C,
    table: &QualifiedName,
    condition: &str,
) -> Result<bool> {
    let sql = format!(
        "SELECT EXISTS (SELECT 1 FROM {} WHERE {condition})",
        table.quoted()
    );
    Ok(client.query_one(&sql, &[]).await?.get(0))
}

/// `pg_get_constraintdef` spells a NOT VALID key's state into its definition; pgfleet adds and
/// validates keys itself, so it keeps the definition alone.
fn strip_not_valid(def: String) -> String {
    match def.strip_suffix(" NOT VALID") {
        Some(d) => d.to_string(),
        None => def,
    }
}

/// Sequences owned by columns of `tables` (serial and identity).
pub async fn owned_sequences<C: GenericClient + Sync>(
    client: &C,
    tables: &[QualifiedName],
) -> Result<Vec<OwnedSequence>> {
    let names: Vec<String> = tables.iter().map(QualifiedName::quoted).collect();
    Ok(client
        .query(
            "SELECT n.nspname, c.relname, a.attname, s.oid::regclass::text
             FROM pg_depend d
             JOIN pg_class s ON s.oid = d.objid AND s.relkind = 'S'
             JOIN pg_class c ON c.oid = d.refobjid
             JOIN pg_namespace n ON n.oid = c.relnamespace
             JOIN pg_attribute a ON a.attrelid = d.refobjid AND a.attnum = d.refobjsubid
             WHERE d.classid = 'pg_class'::regclass AND d.refclassid = 'pg_class'::regclass
               AND d.deptype IN ('a', 'i')
               AND d.refobjid = ANY (SELECT unnest($1::text[])::regclass::oid)
             ORDER BY 1, 2, 3",
            &[&names],
        )
        .await?
        .iter()
        .map(|r| OwnedSequence {
            table: QualifiedName::new(r.get::<_, String>(0), r.get::<_, String>(1)),
            column: r.get(2),
            sequence: r.get(3),
        })
        .collect())
}

/// Indexes of `tables` that back no constraint (so they can be dropped and rebuilt), skipping
/// partitions of partitioned indexes (dropping the parent index drops them).
pub async fn secondary_indexes<C: GenericClient + Sync>(
    client: &C,
    tables: &[QualifiedName],
) -> Result<Vec<SecondaryIndex>> {
    let names: Vec<String> = tables.iter().map(QualifiedName::quoted).collect();
    Ok(client
        .query(
            "SELECT n.nspname, c.relname, format('%I.%I', n.nspname, ic.relname), pg_get_indexdef(i.indexrelid)
             FROM pg_index i
             JOIN pg_class c ON c.oid = i.indrelid
             JOIN pg_class ic ON ic.oid = i.indexrelid
             JOIN pg_namespace n ON n.oid = c.relnamespace
             WHERE i.indrelid = ANY (SELECT unnest($1::text[])::regclass::oid)
               AND NOT EXISTS (SELECT 1 FROM pg_constraint k WHERE k.conindid = i.indexrelid)
               AND NOT EXISTS (SELECT 1 FROM pg_inherits h WHERE h.inhrelid = i.indexrelid)
             ORDER BY 1, 2, 3",
            &[&names],
        )
        .await?
        .iter()
        .map(|r| SecondaryIndex {
            table: QualifiedName::new(r.get::<_, String>(0), r.get::<_, String>(1)),
            name: r.get(2),
            definition: r.get(3),
        })
        .collect())
}

/// Tables whose emptiness one statement checks (a `UNION ALL` of one `EXISTS` each): a few
/// round trips for a 10,000-table restore instead of one per table.
const HAS_ROWS_BATCH: usize = 1_000;

/// Whether each of `tables` holds any row, in `tables` order.
pub async fn has_rows<C: GenericClient + Sync>(
    client: &C,
    tables: &[&QualifiedName],
) -> Result<Vec<bool>> {
    let mut out = vec![false; tables.len()];
    for (b, batch) in tables.chunks(HAS_ROWS_BATCH).enumerate() {
        let sql = batch
            .iter()
            .enumerate()
            .map(|(i, t)| {
                format!(
                    "SELECT {}::int4, EXISTS (SELECT 1 FROM {})",
                    b * HAS_ROWS_BATCH + i,
                    t.quoted()
                )
            })
            .collect::<Vec<_>>()
            .join(" UNION ALL ");
        let rows = client.query(&sql, &[]).await.with_context(|| {
            format!(
                "checking whether {} target table(s) are empty, from {}",
                batch.len(),
                batch.first().map(|t| t.display_name()).unwrap_or_default()
            )
        })?;
        for row in rows {
            let i: i32 = row.try_get(0)?;
            if let Some(slot) = usize::try_from(i).ok().and_then(|i| out.get_mut(i)) {
                *slot = row.try_get(1)?;
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_condition_drops_the_where() {
        assert_eq!(
            config_condition("WHERE NOT (srid BETWEEN 1 AND 2)"),
            "NOT (srid BETWEEN 1 AND 2)"
        );
        assert_eq!(config_condition("  where\nx > 1"), "x > 1");
        assert_eq!(config_condition(""), "");
        assert_eq!(config_condition("wherever = 1"), "wherever = 1");
        assert_eq!(config_condition("WHERE(x)"), "(x)");
    }

    #[test]
    fn not_valid_is_not_part_of_the_definition() {
        assert_eq!(
            strip_not_valid("FOREIGN KEY (a) REFERENCES b(id) NOT VALID".into()),
            "FOREIGN KEY (a) REFERENCES b(id)"
        );
        assert_eq!(
            strip_not_valid("FOREIGN KEY (a) REFERENCES b(id)".into()),
            "FOREIGN KEY (a) REFERENCES b(id)"
        );
    }
}
