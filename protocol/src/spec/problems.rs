//! Every problem in a job spec at once, each with its line, column and key path.
//!
//! The TOML parser stops at the first type or unknown-key error. To report the rest in the
//! same run, a problem's key/value pair (or table) is blanked out — replaced by spaces, so every
//! other offset and line stays where it was — and the text parsed again; "missing field"
//! errors caused by a removal are not reported twice. A syntax error ends the search (the rest
//! of the text cannot be read reliably). When the text then parses, the spec's own checks run
//! too, except on keys that were removed.

use super::document::{entries, join, line_column, Entry};
use super::JobSpec;
use crate::ident::{one_line, shown};
use serde::{Deserialize, Serialize};
use std::ops::Range;

/// The longest line of a job-spec error.
pub const MAX_PROBLEM_CHARS: usize = 300;

/// TOML problems reported before giving up (each costs one more parse of a small file).
const MAX_TOML_PROBLEMS: usize = 50;

/// One problem in a job spec.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Problem {
    pub line: Option<usize>,
    pub column: Option<usize>,
    /// Key path, e.g. `output.part_size` or `tables.include[1]`.
    pub key: Option<String>,
    pub message: String,
}

impl std::fmt::Display for Problem {
    /// One line: `line L, column C: key.path: message`, escaped and clipped.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut s = String::new();
        match (self.line, self.column) {
            (Some(l), Some(c)) => s.push_str(&format!("line {l}, column {c}: ")),
            (Some(l), None) => s.push_str(&format!("line {l}: ")),
            _ => {}
        }
        if let Some(k) = &self.key {
            s.push_str(k);
            s.push_str(": ");
        }
        s.push_str(&self.message);
        f.write_str(&one_line(&s, MAX_PROBLEM_CHARS))
    }
}

/// Every line one problem (see [`Problem`]'s `Display`).
pub fn lines(problems: &[Problem]) -> String {
    let lines: Vec<String> = problems.iter().map(Problem::to_string).collect();
    lines.join("\n")
}

/// Parse `text` as a spec and check it: the spec, or every problem found.
pub fn check(text: &str) -> Result<JobSpec, Vec<Problem>> {
    let mut text = text.to_string();
    let mut problems = Vec::new();
    let mut removed: Vec<String> = Vec::new();
    let spec = loop {
        let error = match parse(&text) {
            Ok(spec) => break Some(spec),
            Err(e) => e,
        };
        let Parse::Toml(e) = error else {
            let Parse::Kind(p) = error else {
                unreachable!()
            };
            problems.push(p);
            break None;
        };
        let found = entries(&text);
        let entry = found
            .as_deref()
            .and_then(|all| e.span().and_then(|s| keyed_entry_at(&text, all, s.start)));
        let missing = missing_field(&e).map(|f| {
            let table = entry
                .filter(|en| is_table(&text, en))
                .map(|en| en.path.as_str());
            join(table.unwrap_or(""), f)
        });
        // What a removal caused: a missing field it removed, or a complaint about the table
        // or enum that held it (`{ x = … }` emptied: "wanted exactly 1 element").
        let key = entry.map(|en| en.path.as_str());
        let cascade = missing.as_ref().is_some_and(|m| removed.contains(m))
            || missing.is_none() && key.is_some_and(|k| removed.iter().any(|r| is_under(r, k)));
        if !cascade {
            problems.push(match &missing {
                // Where the table is (none for the top level), and the key that must be there.
                Some(path) => {
                    let table = entry.filter(|en| is_table(&text, en));
                    let at = table
                        .and_then(|t| t.value.as_ref())
                        .map(|v| line_column(&text, v.start));
                    Problem {
                        line: at.map(|a| a.0),
                        column: at.map(|a| a.1),
                        key: Some(path.clone()),
                        message: "missing; this key is required".into(),
                    }
                }
                None => from_toml(&text, &e, entry),
            });
        }
        // Recover: remove the pair (or, for a missing field, its whole table) and go on.
        let target = match &missing {
            Some(_) => entry.filter(|en| is_table(&text, en)),
            None => entry,
        };
        match target.and_then(|en| pair_range(en).map(|r| (en.path.clone(), r))) {
            Some((path, range)) if problems.len() < MAX_TOML_PROBLEMS => {
                let next = blank_out(&text, range);
                // A removal that breaks the syntax (a pair inside an inline table that then
                // ends in a comma) would report a problem the user did not write: stop.
                if entries(&next).is_none() {
                    break None;
                }
                text = next;
                removed.push(path);
            }
            _ => break None,
        }
    };
    if let Some(spec) = &spec {
        let entries = entries(&text).unwrap_or_default();
        for p in spec.problems() {
            let problem = with_position(&text, &entries, p);
            let under_removed = problem
                .key
                .as_deref()
                .is_some_and(|k| removed.iter().any(|r| is_under(k, r)));
            if !under_removed {
                problems.push(problem);
            }
        }
    }
    match spec {
        Some(spec) if problems.is_empty() => Ok(spec),
        _ => {
            sort(&mut problems);
            Err(problems)
        }
    }
}

/// In the order of the text; problems without a line (a missing key) last.
pub fn sort(problems: &mut [Problem]) {
    problems.sort_by_key(|p| (p.line.is_none(), p.line, p.column));
}

enum Parse {
    Toml(toml::de::Error),
    Kind(Problem),
}

/// One strict parse, without the spec's own checks.
fn parse(text: &str) -> Result<JobSpec, Parse> {
    // Not `toml::from_str::<JobSpec>`: serde buffers an internally tagged enum, and the TOML
    // parser then reports type errors without line or key ("invalid type: string, expected
    // u32" — where?). So: find `kind`, blank that pair out (same byte offsets for everything
    // else) and parse the rest as the spec it names.
    #[derive(Deserialize)]
    struct Kind {
        kind: Option<toml::Spanned<toml::Value>>,
    }
    let kind = toml::from_str::<Kind>(text)
        .map_err(Parse::Toml)?
        .kind
        .ok_or_else(|| {
            Parse::Kind(Problem {
                line: None,
                column: None,
                key: Some("kind".into()),
                message: "missing; write kind = \"export\" or kind = \"restore\"".into(),
            })
        })?;
    let span = kind.span();
    let start = text.as_bytes()[..span.start]
        .iter()
        .rposition(|&b| b == b'\n')
        .map_or(0, |i| i + 1);
    let rest = blank_out(text, start..span.end);
    match kind.get_ref().as_str() {
        Some("export") => toml::from_str(&rest).map(JobSpec::Export),
        Some("restore") => toml::from_str(&rest).map(JobSpec::Restore),
        _ => {
            let (line, column) = line_column(text, span.start);
            return Err(Parse::Kind(Problem {
                line: Some(line),
                column: Some(column),
                key: Some("kind".into()),
                message: format!(
                    "expected \"export\" or \"restore\", not {}",
                    match kind.get_ref() {
                        toml::Value::String(s) => shown(s),
                        other => format!("a TOML {}", other.type_str()),
                    }
                ),
            }));
        }
    }
    .map_err(Parse::Toml)
}

/// The TOML parser's error as a problem. Its own `Display` is a multi-line snippet of the
/// source with a caret; here it is a position, a key path and a one-line message.
fn from_toml(text: &str, e: &toml::de::Error, entry: Option<&Entry>) -> Problem {
    // Without a span, the key path is only in the `in `a.b`` line of the multi-line Display.
    let keys_line = || {
        e.to_string().lines().rev().find_map(|l| {
            let keys = l.strip_prefix("in `")?.strip_suffix('`')?;
            (!keys.is_empty()).then(|| keys.to_string())
        })
    };
    let at = e.span().map(|s| line_column(text, s.start));
    // Syntax errors have a second line ("invalid table header\nexpected `.`, `]`"); other
    // line breaks are the input's own (`unknown variant `a\nb``): Display escapes those.
    let message = e.message().trim().replace("\nexpected ", "; expected ");
    Problem {
        line: at.map(|a| a.0),
        column: at.map(|a| a.1),
        key: entry.map(|en| en.path.clone()).or_else(keys_line),
        message: if message.is_empty() {
            "invalid TOML".into()
        } else {
            message
        },
    }
}

/// A check's `key.path: message` with the line and column of that key, when it is in the text.
fn with_position(text: &str, entries: &[Entry], problem: String) -> Problem {
    let split = problem
        .split_once(": ")
        .filter(|(k, _)| !k.is_empty() && !k.contains(' '));
    let Some((key, message)) = split else {
        return Problem {
            line: None,
            column: None,
            key: None,
            message: problem,
        };
    };
    let at = entries
        .iter()
        .find(|e| e.path == key)
        .and_then(|e| e.key.clone().or_else(|| e.value.clone()))
        .map(|r| line_column(text, r.start));
    Problem {
        line: at.map(|a| a.0),
        column: at.map(|a| a.1),
        key: Some(key.to_string()),
        message: message.to_string(),
    }
}

/// Whether key path `key` is `ancestor` or lies under it.
fn is_under(key: &str, ancestor: &str) -> bool {
    key.strip_prefix(ancestor)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with(['.', '[']))
}

/// `x` of "missing field `x`".
fn missing_field(e: &toml::de::Error) -> Option<&str> {
    e.message()
        .strip_prefix("missing field `")?
        .strip_suffix('`')
}

/// The innermost entry with a key of its own (a pair, a table or one `[[table]]`, not an
/// element of an inline array) whose text holds `offset`.
fn keyed_entry_at<'a>(text: &str, entries: &'a [Entry], offset: usize) -> Option<&'a Entry> {
    entries
        .iter()
        .filter(|e| e.key.is_some() || is_array_table(text, e))
        .filter_map(|e| pair_range(e).map(|r| (e, r)))
        .filter(|(_, r)| r.contains(&offset))
        .min_by_key(|(_, r)| r.len())
        .map(|(e, _)| e)
}

/// A `[table]` (its span starts before its key, at the header), one `[[table]]` or an inline
/// `{ table }`.
fn is_table(text: &str, e: &Entry) -> bool {
    is_array_table(text, e)
        || e.value.as_ref().is_some_and(|v| {
            let s = text.get(v.clone()).unwrap_or_default();
            s.starts_with('{')
                || s.starts_with('[') && e.key.as_ref().is_some_and(|k| k.start > v.start)
        })
}

/// One `[[table]]` of an array of tables: a `[[` header at the start of a line.
fn is_array_table(text: &str, e: &Entry) -> bool {
    e.key.is_none()
        && e.value.as_ref().is_some_and(|v| {
            let before = text.get(..v.start).unwrap_or_default();
            let line_start =
                before.is_empty() || before.trim_end_matches([' ', '\t']).ends_with('\n');
            line_start && text.get(v.clone()).is_some_and(|s| s.starts_with("[["))
        })
}

/// Key and value of an entry: what to blank out to remove it.
fn pair_range(e: &Entry) -> Option<Range<usize>> {
    match (&e.key, &e.value) {
        (Some(k), Some(v)) => Some(k.start.min(v.start)..k.end.max(v.end)),
        (Some(r), None) | (None, Some(r)) => Some(r.clone()),
        (None, None) => None,
    }
}

/// `text` with `range` replaced by spaces, line breaks kept, so every other offset and line
/// number stays the same.
fn blank_out(text: &str, range: Range<usize>) -> String {
    let end = range.end.min(text.len());
    let mut out = String::with_capacity(text.len());
    for (i, c) in text.char_indices() {
        if (range.start..end).contains(&i) && c != '\n' && c != '\r' {
            out.extend(std::iter::repeat_n(' ', c.len_utf8()));
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"kind = "export"
name = "orders"

[source]
url = "postgresql://reader@127.0.0.1:5432/shop"
max_in_flight = 3

[tables]
include = ["public.*"]

[output]
url = "s3://bucket/exports/"
part_size = "16MiB"
s3 = { endpoint = "http://127.0.0.1:9000", force_path_style = true }
"#;

    fn problems(text: &str) -> Vec<String> {
        check(text)
            .err()
            .unwrap_or_default()
            .iter()
            .map(Problem::to_string)
            .collect()
    }

    #[test]
    fn good_spec_has_none() {
        assert!(check(GOOD).is_ok());
    }

    #[test]
    fn every_type_and_unknown_key_error_in_one_run() {
        let text = GOOD
            .replace("max_in_flight = 3", "max_in_flight = \"three\"\nbogus = 1")
            .replace("part_size = \"16MiB\"", "part_sise = \"16MiB\"")
            .replace("force_path_style = true", "force_path_style = \"yes\"");
        let p = problems(&text);
        assert_eq!(p.len(), 4, "{p:#?}");
        assert!(
            p[0].starts_with("line 6, column 17: source.max_in_flight: invalid type: string"),
            "{}",
            p[0]
        );
        assert!(
            p[1].starts_with("line 7, column 1: source.bogus: unknown field `bogus`"),
            "{}",
            p[1]
        );
        assert!(
            p[2].starts_with("line 14, column 1: output.part_sise: unknown field"),
            "{}",
            p[2]
        );
        assert!(
            p[3].starts_with("line 15, column 63: output.s3.force_path_style: invalid type"),
            "{}",
            p[3]
        );
    }

    #[test]
    fn a_missing_field_is_reported_once_and_the_rest_still_checked() {
        // source.url has a wrong type: its removal must not add "missing field" lines, and
        // the error in [output] after it is still found.
        let text = GOOD
            .replace("name = \"orders\"\n", "")
            .replace("part_size = \"16MiB\"", "part_size = -5");
        let p = problems(&text);
        assert_eq!(p.len(), 2, "{p:#?}");
        assert!(
            p[0].contains("output.part_size: size -5 is negative"),
            "{}",
            p[0]
        );
        assert_eq!(p[1], "name: missing; this key is required");
        let text = GOOD.replace("include = [\"public.*\"]", "exclude = []");
        assert_eq!(
            problems(&text),
            ["line 8, column 1: tables.include: missing; this key is required"]
        );
        let text = GOOD.replace(
            "url = \"postgresql://reader@127.0.0.1:5432/shop\"",
            "url = 5",
        );
        let p = problems(&text);
        assert_eq!(p.len(), 1, "{p:#?}");
        assert!(
            p[0].starts_with("line 5, column 7: source.url: invalid type"),
            "{}",
            p[0]
        );
    }

    #[test]
    fn checks_run_after_type_errors_with_their_lines() {
        let text = GOOD
            .replace("max_in_flight = 3", "max_in_flight = 0")
            .replace("part_size = \"16MiB\"", "part_size = true")
            .replace("include = [\"public.*\"]", "include = []");
        let p = problems(&text);
        assert_eq!(p.len(), 3, "{p:#?}");
        assert_eq!(
            p[0],
            "line 6, column 1: source.max_in_flight: must be at least 1"
        );
        assert!(
            p[1].starts_with("line 9, column 1: tables.include: name at least one"),
            "{}",
            p[1]
        );
        assert!(
            p[2].starts_with("line 13, column 13: output.part_size: "),
            "{}",
            p[2]
        );
    }

    #[test]
    fn problems_in_arrays_of_tables_name_the_element() {
        let text = format!(
            "{GOOD}\n[[transform]]\ncolumns = \"*\"\nprefix = \"x-\"\n\n[[transform]]\ncolumns = [\"email\"]\nprefx = 1\n"
        );
        let p = problems(&text);
        assert_eq!(p.len(), 2, "{p:#?}");
        assert!(
            p[0].starts_with("line 20, column 1: transform[1].prefix: missing"),
            "{}",
            p[0]
        );
        assert!(
            p[1].starts_with("line 22, column 1: transform[1].prefx: unknown field"),
            "{}",
            p[1]
        );
    }

    #[test]
    fn a_syntax_error_ends_the_search() {
        let p = problems(&GOOD.replace("[tables]", "[tables"));
        assert_eq!(
            p,
            ["line 8, column 8: invalid table header; expected `.`, `]`"]
        );
    }
}
