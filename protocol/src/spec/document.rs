//! Where things sit in a job spec's text: every key path with the byte ranges of its key and
//! value. Errors use it to name a key path and a line, interpolation to rewrite string values
//! in place, and the problem collector to blank out a pair it has already reported.

use std::ops::Range;
use toml_edit::{ImDocument, Item, Table, Value};

/// One key (or array element) of the document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// `output.s3.endpoint`, `tables.include[1]`, `transform[0].prefix`,
    /// `tables.keys."public.events"`.
    pub path: String,
    /// The key as written (none for array elements and `[[array]]` tables).
    pub key: Option<Range<usize>>,
    /// The value (for a `[table]`, its header).
    pub value: Option<Range<usize>>,
    /// The decoded value, when it is a string.
    pub string: Option<String>,
}

/// Every entry of `text` in document order, or `None` when it is not valid TOML (the parser
/// then reports the syntax error itself).
pub fn entries(text: &str) -> Option<Vec<Entry>> {
    let doc = ImDocument::parse(text).ok()?;
    let mut out = Vec::new();
    table(doc.as_table(), "", &mut out);
    Some(out)
}

/// `key` appended to `prefix` as a key path: bare when TOML allows it, else quoted.
pub fn join(prefix: &str, key: &str) -> String {
    let bare = !key.is_empty()
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    let key = if bare {
        key.to_string()
    } else {
        format!("{key:?}")
    };
    if prefix.is_empty() {
        key
    } else {
        format!("{prefix}.{key}")
    }
}

fn table(t: &Table, prefix: &str, out: &mut Vec<Entry>) {
    for (k, i) in t.iter() {
        let key = t.key(k).and_then(|k| k.span());
        item(i, join(prefix, k), key, out);
    }
}

fn item(i: &Item, path: String, key: Option<Range<usize>>, out: &mut Vec<Entry>) {
    match i {
        Item::None => {}
        Item::Value(v) => value(v, path, key, out),
        Item::Table(t) => {
            out.push(Entry {
                path: path.clone(),
                key,
                value: t.span(),
                string: None,
            });
            table(t, &path, out);
        }
        Item::ArrayOfTables(a) => {
            out.push(Entry {
                path: path.clone(),
                key,
                value: a.span(),
                string: None,
            });
            for (n, t) in a.iter().enumerate() {
                let path = format!("{path}[{n}]");
                out.push(Entry {
                    path: path.clone(),
                    key: None,
                    value: t.span(),
                    string: None,
                });
                table(t, &path, out);
            }
        }
    }
}

fn value(v: &Value, path: String, key: Option<Range<usize>>, out: &mut Vec<Entry>) {
    out.push(Entry {
        path: path.clone(),
        key,
        value: v.span(),
        string: v.as_str().map(str::to_owned),
    });
    match v {
        Value::Array(a) => {
            for (n, e) in a.iter().enumerate() {
                value(e, format!("{path}[{n}]"), None, out);
            }
        }
        Value::InlineTable(t) => {
            for (k, e) in t.iter() {
                let key = t.key(k).and_then(|k| k.span());
                value(e, join(&path, k), key, out);
            }
        }
        _ => {}
    }
}

/// Line and column (both from 1; columns count characters) of a byte offset.
pub fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let (mut line, mut column) = (1, 1);
    for (_, c) in text.char_indices().take_while(|(i, _)| *i < offset) {
        if c == '\n' {
            line += 1;
            column = 1;
        } else {
            column += 1;
        }
    }
    (line, column)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_and_spans() {
        let text = "kind = \"export\"\n[tables]\ninclude = [\"a\", 'b']\nkeys = { \"p.t\" = \"id\" }\n[[transform]]\nprefix = \"x-\"\n";
        let e = entries(text).unwrap();
        let paths: Vec<&str> = e.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "kind",
                "tables",
                "tables.include",
                "tables.include[0]",
                "tables.include[1]",
                "tables.keys",
                "tables.keys.\"p.t\"",
                "transform",
                "transform[0]",
                "transform[0].prefix"
            ]
        );
        let b = e.iter().find(|e| e.path == "tables.include[1]").unwrap();
        assert_eq!(&text[b.value.clone().unwrap()], "'b'");
        assert_eq!(b.string.as_deref(), Some("b"));
        let k = e.iter().find(|e| e.path == "transform[0].prefix").unwrap();
        assert_eq!(&text[k.key.clone().unwrap()], "prefix");
        assert_eq!(line_column(text, k.key.clone().unwrap().start), (6, 1));
        assert!(entries("a = [").is_none());
    }
}
