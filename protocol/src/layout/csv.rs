//! pgfleet's own layout (CSV, CSV.gz):
//!
//! ```text
//! <output>/
//!   <schema>.<table>/part-<NNNNN>.<extension>
//!   <schema>.<table>/_manifest.json
//!   <schema>.<table>/_SUCCESS
//! ```
//!
//! `%` and `/` in names are percent-encoded, so any table maps to exactly one folder and back.

use super::{MANIFEST, SUCCESS};
use crate::ident::QualifiedName;

/// The folder of one table: `schema.table/`. `%` and `/` are percent-encoded so that any table
/// name maps to exactly one folder and back.
pub fn table_folder(table: &QualifiedName) -> String {
    let mut out = String::with_capacity(table.schema.len() + table.name.len() + 2);
    for (i, part) in [&table.schema, &table.name].into_iter().enumerate() {
        if i > 0 {
            out.push('.');
        }
        for c in part.chars() {
            match c {
                '%' => out.push_str("%25"),
                '/' => out.push_str("%2F"),
                c => out.push(c),
            }
        }
    }
    out.push('/');
    out
}

/// Deterministic key of chunk `seq` of a table: `schema.table/part-00042.csv.gz`.
pub fn part_key(table: &QualifiedName, seq: u32, extension: &str) -> String {
    format!("{}part-{seq:05}.{extension}", table_folder(table))
}

/// `schema.table/_manifest.json`.
pub fn manifest_key(table: &QualifiedName) -> String {
    format!("{}{MANIFEST}", table_folder(table))
}

/// `schema.table/_SUCCESS`, written after the manifest.
pub fn success_key(table: &QualifiedName) -> String {
    format!("{}{SUCCESS}", table_folder(table))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_deterministic_and_reversible() {
        let t = QualifiedName::new("public", "a/b%c");
        assert_eq!(part_key(&t, 7, "csv"), "public.a%2Fb%25c/part-00007.csv");
        let t = QualifiedName::new("public", "t");
        assert_eq!(part_key(&t, 1, "csv"), "public.t/part-00001.csv");
        assert_eq!(manifest_key(&t), "public.t/_manifest.json");
        assert_eq!(success_key(&t), "public.t/_SUCCESS");
    }
}
