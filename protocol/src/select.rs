//! Which tables a job selects: `tables.include` minus `tables.exclude`, one rule for export
//! (against the source catalog) and restore (against the export's tables).

use crate::ident::{QualifiedName, TablePattern};

/// A job's table selection, compiled from its spec's patterns (see
/// [`TablePattern`]: unquoted parts fold to lower case and may use `*`/`?`, quoted parts match
/// literally, a missing schema means `public`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableFilter {
    include: Vec<TablePattern>,
    exclude: Vec<TablePattern>,
}

/// What a selection misses in a set of names (see [`TableFilter::unmatched`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unmatched<'a> {
    /// Literal `tables.include` names (no glob) that none of the names is: a typo would
    /// otherwise select nothing and succeed.
    pub missing: Vec<&'a TablePattern>,
    /// No name is selected at all.
    pub nothing_selected: bool,
}

impl TableFilter {
    pub fn new(include: Vec<TablePattern>, exclude: Vec<TablePattern>) -> Self {
        Self { include, exclude }
    }

    /// Included and not excluded.
    pub fn matches(&self, table: &QualifiedName) -> bool {
        self.include.iter().any(|p| p.matches(table))
            && !self.exclude.iter().any(|p| p.matches(table))
    }

    /// Check the selection against every name it could select.
    pub fn unmatched<'n, I>(&self, names: I) -> Unmatched<'_>
    where
        I: IntoIterator<Item = &'n QualifiedName>,
        I::IntoIter: Clone,
    {
        let names = names.into_iter();
        let missing = self
            .include
            .iter()
            .filter(|p| p.is_literal() && !names.clone().any(|n| p.matches(n)))
            .collect();
        let nothing_selected = !names.clone().any(|n| self.matches(n));
        Unmatched {
            missing,
            nothing_selected,
        }
    }

    pub fn include(&self) -> &[TablePattern] {
        &self.include
    }

    pub fn exclude(&self) -> &[TablePattern] {
        &self.exclude
    }

    /// `tables.include [a, b] minus tables.exclude [c]`, for messages about a selection.
    pub fn describe(&self) -> String {
        let list = |patterns: &[TablePattern]| {
            patterns
                .iter()
                .map(TablePattern::as_str)
                .collect::<Vec<_>>()
                .join(", ")
        };
        let mut out = format!("tables.include [{}]", list(&self.include));
        if !self.exclude.is_empty() {
            out.push_str(&format!(" minus tables.exclude [{}]", list(&self.exclude)));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn filter(include: &[&str], exclude: &[&str]) -> TableFilter {
        let p = |items: &[&str]| {
            items
                .iter()
                .map(|p| TablePattern::parse(p).unwrap())
                .collect()
        };
        TableFilter::new(p(include), p(exclude))
    }

    #[test]
    fn include_minus_exclude() {
        let f = filter(&["*.*"], &["public.m*"]);
        assert!(f.matches(&QualifiedName::new("public", "orders")));
        assert!(f.matches(&QualifiedName::new("s", "m")));
        assert!(!f.matches(&QualifiedName::new("public", "m_1")));
        let f = filter(&["Orders"], &[]);
        assert!(f.matches(&QualifiedName::new("public", "orders")));
        assert!(!f.matches(&QualifiedName::new("public", "Orders")));
        assert!(!f.matches(&QualifiedName::new("sales", "orders")));
    }

    #[test]
    fn unmatched_literals_and_empty_selections() {
        let names = [
            QualifiedName::new("public", "orders"),
            QualifiedName::new("s", "audit"),
        ];
        let f = filter(&["public.*", "public.nope", "x*"], &[]);
        let u = f.unmatched(&names);
        let missing: Vec<&str> = u.missing.iter().map(|p| p.as_str()).collect();
        assert_eq!(missing, ["public.nope"]);
        assert!(!u.nothing_selected);

        let f = filter(&["x*"], &[]);
        let u = f.unmatched(&names);
        assert!(u.missing.is_empty() && u.nothing_selected);

        // A literal that exists but is excluded is not missing; nothing is selected.
        let f = filter(&["orders"], &["orders"]);
        let u = f.unmatched(&names);
        assert!(u.missing.is_empty() && u.nothing_selected);
        assert_eq!(
            f.describe(),
            "tables.include [orders] minus tables.exclude [orders]"
        );
        assert_eq!(
            filter(&["a", "b.*"], &[]).describe(),
            "tables.include [a, b.*]"
        );

        let none: [QualifiedName; 0] = [];
        let f = filter(&["a"], &[]);
        let u = f.unmatched(&none);
        assert_eq!(u.missing.len(), 1);
        assert!(u.nothing_selected);
    }
}
