//! Which key a table is split on: the policy. The catalog module only reads what the policy
//! needs (columns, unique keys); this module decides.

use super::catalog::{Column, RelKind, Relation, UniqueKey};
use anyhow::{bail, Result};
use protocol::{quote_ident, KeyColumn};
use serde::{Deserialize, Serialize};

/// How a table is split.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum KeyChoice {
    /// Value ranges of an int2/int4/int8 column.
    Integer { column: String },
    /// Heap page (`ctid`) ranges: a table without a unique key, in a job whose chunks all read
    /// one consistent snapshot (under separate snapshots an UPDATE moves rows between pages).
    Pages,
    /// One chunk: no unique key, and either a partitioned table or per-chunk snapshots.
    Whole,
    /// Ranges of a unique key over NOT NULL columns of any btree-orderable types (uuid, text,
    /// composite), at quantiles of a sample.
    Unique { columns: Vec<KeyColumn> },
}

impl KeyChoice {
    /// How the table is split, for `coordinator plan`.
    pub fn describe(&self) -> String {
        match self {
            KeyChoice::Integer { column } => format!("integer key {}", quote_ident(column)),
            KeyChoice::Unique { columns } => format!(
                "unique key ({}), sampled ranges",
                columns
                    .iter()
                    .map(|c| quote_ident(&c.name))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            KeyChoice::Pages => "heap pages, one consistent snapshot (no unique key)".into(),
            KeyChoice::Whole => "whole table (no unique key to split on)".into(),
        }
    }
}

/// The chosen split key and whether it can be NULL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyPick {
    pub choice: KeyChoice,
    pub nullable: bool,
}

/// Choose how to split a table: the user's key if given (it must be an integer column), else a
/// single-column integer unique key (the primary key preferred), else ranges of any other
/// unique key (uuid, text, composite). A table with no such key is split by heap pages only when
/// all its chunks read one snapshot (`one_snapshot`): under separate snapshots an UPDATE moves a
/// row between pages, so it would be read twice or never. Otherwise, and always for a
/// partitioned table (ctid is per partition), it is one chunk.
pub fn choose_key(
    table: &Relation,
    columns: &[Column],
    unique: &[UniqueKey],
    user_key: Option<&str>,
    one_snapshot: bool,
) -> Result<KeyPick> {
    if let Some(name) = user_key {
        let Some(col) = columns.iter().find(|c| c.name == name) else {
            let integer: Vec<&str> = columns
                .iter()
                .filter(|c| c.is_integer())
                .map(|c| c.name.as_str())
                .collect();
            bail!(
                "tables.keys names column {} of {}, which does not exist (its integer columns: \
                 {}); column names are case-sensitive",
                quote_ident(name),
                table.name.display_name(),
                if integer.is_empty() {
                    "none".to_string()
                } else {
                    integer.join(", ")
                }
            );
        };
        if !col.is_integer() {
            bail!(
                "tables.keys names column {} of {}, which has type {}; a key must be an int2, int4 \
                 or int8 column (or remove the entry to use the default split)",
                quote_ident(name),
                table.name.display_name(),
                col.type_name
            );
        }
        return Ok(KeyPick {
            choice: KeyChoice::Integer {
                column: col.name.clone(),
            },
            nullable: !col.not_null,
        });
    }
    let key_columns = |key: &UniqueKey| -> Option<Vec<&Column>> {
        key.columns
            .iter()
            .map(|&attnum| columns.iter().find(|c| c.attnum == attnum))
            .collect()
    };
    let keys: Vec<Vec<&Column>> = unique.iter().filter_map(key_columns).collect();
    if let Some(col) = keys
        .iter()
        .find(|k| k.len() == 1 && k[0].is_integer())
        .map(|k| k[0])
    {
        return Ok(KeyPick {
            choice: KeyChoice::Integer {
                column: col.name.clone(),
            },
            nullable: !col.not_null,
        });
    }
    if let Some(key) = keys.first() {
        return Ok(KeyPick {
            choice: KeyChoice::Unique {
                columns: key
                    .iter()
                    .map(|c| KeyColumn {
                        name: c.name.clone(),
                        type_name: c.type_ref.clone(),
                    })
                    .collect(),
            },
            nullable: false,
        });
    }
    let choice = match table.kind {
        RelKind::Table if one_snapshot => KeyChoice::Pages,
        _ => KeyChoice::Whole,
    };
    Ok(KeyPick {
        choice,
        nullable: false,
    })
}
