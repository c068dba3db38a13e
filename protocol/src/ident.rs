//! PostgreSQL identifiers: quoting for SQL, parsing of user-written `schema.table` names and
//! table patterns with `*`/`?` globs.

use serde::{Deserialize, Serialize};
use std::fmt;

/// Quote an identifier for SQL: always double-quoted, inner quotes doubled. Quoting every
/// identifier (even plain ones) is what makes a table name in a job spec unable to inject SQL.
pub fn quote_ident(name: &str) -> String {
    let mut out = String::with_capacity(name.len() + 2);
    out.push('"');
    for c in name.chars() {
        if c == '"' {
            out.push('"');
        }
        out.push(c);
    }
    out.push('"');
    out
}

/// Quote a string literal for SQL, as PostgreSQL's `quote_literal` does: quotes doubled, and
/// with a backslash the `E'…'` form with backslashes doubled, so the value is the same whatever
/// `standard_conforming_strings` says. For values that cannot be bound as parameters (in COPY).
pub fn quote_literal(value: &str) -> String {
    let escape = value.contains('\\');
    let mut out = String::with_capacity(value.len() + 3);
    if escape {
        out.push('E');
    }
    out.push('\'');
    for c in value.chars() {
        if c == '\'' || (escape && c == '\\') {
            out.push(c);
        }
        out.push(c);
    }
    out.push('\'');
    out
}

/// A schema-qualified relation name, stored unquoted (exactly as in `pg_class.relname`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct QualifiedName {
    pub schema: String,
    pub name: String,
}

impl QualifiedName {
    pub fn new(schema: impl Into<String>, name: impl Into<String>) -> Self {
        Self {
            schema: schema.into(),
            name: name.into(),
        }
    }

    /// `"schema"."name"`, safe to splice into SQL.
    pub fn quoted(&self) -> String {
        format!("{}.{}", quote_ident(&self.schema), quote_ident(&self.name))
    }

    /// `schema.name` as used in object keys and messages for humans (not for SQL).
    pub fn display_name(&self) -> String {
        format!("{}.{}", self.schema, self.name)
    }

    /// Parse a user-written name: `table`, `schema.table`, `"Odd ""Name"" Table"`,
    /// `public."Mixed.Case"`. Unquoted parts fold to lower case as PostgreSQL does; a missing
    /// schema means `public`.
    pub fn parse(input: &str) -> Result<Self, IdentError> {
        let parts = split_name(input)?;
        let mut plain = parts.into_iter().map(|p| p.text);
        match (plain.next(), plain.next()) {
            (Some(name), None) => Ok(Self::new("public", name)),
            (Some(schema), Some(name)) => Ok(Self::new(schema, name)),
            _ => Err(IdentError(format!("empty table name {}", shown(input)))),
        }
    }
}

impl fmt::Display for QualifiedName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.quoted())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct IdentError(pub String);

/// At most this many characters of user input are echoed in one error message.
pub const ECHO_CHARS: usize = 60;

/// User input as echoed in an error message: quoted and escaped like `{:?}` (so it is always
/// one line), and clipped to [`ECHO_CHARS`] characters (`…` marks the cut) so that a huge
/// value cannot make a huge message.
pub fn shown(input: &str) -> String {
    match input.char_indices().nth(ECHO_CHARS) {
        None => format!("{input:?}"),
        Some((cut, _)) => format!("{:?}…", &input[..cut]),
    }
}

/// `text` made into one line of at most `max_chars` characters: every control character
/// (newlines included) is escaped, and the end is cut off with `…` if too long. For messages
/// built by other code (a parser's error) that may quote input verbatim.
pub fn one_line(text: &str, max_chars: usize) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        if c.is_control() {
            escaped.extend(c.escape_default());
        } else {
            escaped.push(c);
        }
    }
    match escaped.char_indices().nth(max_chars) {
        None => escaped,
        Some(_) => {
            let keep = max_chars.saturating_sub(1);
            let cut = escaped
                .char_indices()
                .nth(keep)
                .map_or(escaped.len(), |(i, _)| i);
            escaped.truncate(cut);
            escaped.push('…');
            escaped
        }
    }
}

/// One dot-separated part of a name as the user wrote it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct NamePart {
    text: String,
    quoted: bool,
}

/// Split `a."b.c"` into parts, honouring double quotes (`""` is a literal quote).
fn split_name(input: &str) -> Result<Vec<NamePart>, IdentError> {
    let input = input.trim();
    let mut parts = Vec::new();
    let mut chars = input.chars().peekable();
    loop {
        let mut text = String::new();
        let quoted = chars.peek() == Some(&'"');
        if quoted {
            chars.next();
            loop {
                match chars.next() {
                    Some('"') if chars.peek() == Some(&'"') => {
                        chars.next();
                        text.push('"');
                    }
                    Some('"') => break,
                    Some(c) => text.push(c),
                    None => {
                        return Err(IdentError(format!(
                            "unterminated quote in {}",
                            shown(input)
                        )))
                    }
                }
            }
        } else {
            while let Some(&c) = chars.peek() {
                if c == '.' {
                    break;
                }
                if c == '"' {
                    return Err(IdentError(format!(
                        "unexpected quote inside an unquoted name in {}",
                        shown(input)
                    )));
                }
                text.extend(c.to_lowercase());
                chars.next();
            }
            text = text.trim().to_string();
        }
        if text.is_empty() {
            return Err(IdentError(format!("empty name part in {}", shown(input))));
        }
        parts.push(NamePart { text, quoted });
        match chars.next() {
            None => break,
            Some('.') => continue,
            Some(c) => {
                return Err(IdentError(format!(
                    "unexpected {c:?} after a quoted name in {}",
                    shown(input)
                )))
            }
        }
    }
    if parts.len() > 2 {
        return Err(IdentError(format!(
            "{} has more than two parts; write schema.table (quote names that contain dots)",
            shown(input)
        )));
    }
    Ok(parts)
}

/// A table pattern from a job spec: `public.*`, `sales.order_?`, `"Odd ""Name"" Table"`.
/// Unquoted parts may use `*` and `?`; quoted parts match literally.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TablePattern {
    schema: NamePart,
    name: NamePart,
    source: String,
}

impl TablePattern {
    pub fn parse(input: &str) -> Result<Self, IdentError> {
        let mut parts = split_name(input)?;
        let name = parts.pop().expect("split_name returns at least one part");
        let schema = parts.pop().unwrap_or(NamePart {
            text: "public".into(),
            quoted: true,
        });
        Ok(Self {
            schema,
            name,
            source: input.to_string(),
        })
    }

    pub fn matches(&self, table: &QualifiedName) -> bool {
        part_matches(&self.schema, &table.schema) && part_matches(&self.name, &table.name)
    }

    /// True when the pattern names exactly one table (no globs), so a miss is an error.
    pub fn is_literal(&self) -> bool {
        [&self.schema, &self.name]
            .iter()
            .all(|p| p.quoted || !p.text.contains(['*', '?']))
    }

    pub fn as_str(&self) -> &str {
        &self.source
    }
}

fn part_matches(pattern: &NamePart, text: &str) -> bool {
    if pattern.quoted {
        pattern.text == text
    } else {
        glob_match(&pattern.text, text)
    }
}

/// `*` matches any run of characters, `?` exactly one character (not one byte: `caf?` matches
/// `café`); everything else literally. Runs once per table at planning, so collecting is fine.
fn glob_match(pattern: &str, text: &str) -> bool {
    let pattern: Vec<char> = pattern.chars().collect();
    let text: Vec<char> = text.chars().collect();
    let (mut p, mut t) = (0, 0);
    let (mut star_p, mut star_t) = (None, 0);
    while t < text.len() {
        if p < pattern.len() && (pattern[p] == '?' || pattern[p] == text[t]) {
            p += 1;
            t += 1;
        } else if p < pattern.len() && pattern[p] == '*' {
            star_p = Some(p);
            star_t = t;
            p += 1;
        } else if let Some(sp) = star_p {
            p = sp + 1;
            star_t += 1;
            t = star_t;
        } else {
            return false;
        }
    }
    pattern[p..].iter().all(|&c| c == '*')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literals() {
        assert_eq!(quote_literal("a'b"), "'a''b'");
        assert_eq!(quote_literal(r"x\'; --"), r"E'x\\''; --'");
        assert_eq!(quote_literal(""), "''");
    }

    #[test]
    fn quotes_every_identifier() {
        assert_eq!(quote_ident("plain"), "\"plain\"");
        assert_eq!(
            quote_ident("Odd \"Name\" Table"),
            "\"Odd \"\"Name\"\" Table\""
        );
        assert_eq!(
            quote_ident("x\"; DROP TABLE t; --"),
            "\"x\"\"; DROP TABLE t; --\""
        );
    }

    #[test]
    fn parses_names() {
        assert_eq!(
            QualifiedName::parse("Orders").unwrap(),
            QualifiedName::new("public", "orders")
        );
        assert_eq!(
            QualifiedName::parse("Sales.\"Mixed.Case\"").unwrap(),
            QualifiedName::new("sales", "Mixed.Case")
        );
        assert_eq!(
            QualifiedName::parse("\"Odd \"\"Name\"\" Table\"").unwrap(),
            QualifiedName::new("public", "Odd \"Name\" Table")
        );
        assert!(QualifiedName::parse("a.b.c").is_err());
        assert!(QualifiedName::parse("\"open").is_err());
        assert!(QualifiedName::parse("").is_err());
        assert!(QualifiedName::parse("a.").is_err());
    }

    #[test]
    fn patterns_glob_unquoted_parts_only() {
        let p = TablePattern::parse("public.*").unwrap();
        assert!(p.matches(&QualifiedName::new("public", "orders")));
        assert!(p.matches(&QualifiedName::new("public", "Odd \"Name\" Table")));
        assert!(!p.matches(&QualifiedName::new("sales", "orders")));
        assert!(!p.is_literal());

        let q = TablePattern::parse("\"a*\"").unwrap();
        assert!(q.matches(&QualifiedName::new("public", "a*")));
        assert!(!q.matches(&QualifiedName::new("public", "ab")));
        assert!(q.is_literal());

        let r = TablePattern::parse("s?.order_*").unwrap();
        assert!(r.matches(&QualifiedName::new("s1", "order_items")));
        assert!(!r.matches(&QualifiedName::new("s12", "order_items")));
    }

    #[test]
    fn glob_edge_cases() {
        assert!(glob_match("*", ""));
        assert!(glob_match("a*b*c", "aXXbYYc"));
        assert!(!glob_match("a*b", "aXXc"));
        assert!(glob_match("**x", "x"));
    }

    #[test]
    fn question_mark_is_one_character_not_one_byte() {
        let p = TablePattern::parse("caf?").unwrap();
        assert!(p.matches(&QualifiedName::new("public", "café")));
        assert!(p.matches(&QualifiedName::new("public", "cafe")));
        assert!(!p.matches(&QualifiedName::new("public", "cafés")));
        assert!(glob_match("??", "日本"));
        assert!(!glob_match("?", "日本"));
        assert!(glob_match("*é?", "crème_brûlée_étés"));
    }
}
