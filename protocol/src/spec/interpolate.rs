//! Environment variables in job specs, in Vector's and Compose's syntax, so that a nightly job
//! can say `url = "s3://b/exports/${RUN_DATE}/"` without a templating step:
//!
//! | written           | becomes                                                       |
//! |-------------------|---------------------------------------------------------------|
//! | `${VAR}`          | VAR's value; an error when VAR is unset                       |
//! | `${VAR:-default}` | `default` when VAR is unset or empty (`${VAR:-}`: may be empty) |
//! | `${VAR-default}`  | `default` only when VAR is unset                              |
//! | `${VAR:?message}` | an error saying `message` when VAR is unset or empty          |
//! | `${VAR?message}`  | an error saying `message` when VAR is unset                   |
//! | `$$`              | a literal `$`                                                 |
//!
//! A default may itself hold `${…}`. Any other `$` is an error (a spec is strict: `$HOME` must
//! not silently stay `$HOME`). Only string values are rewritten, never keys, and the result is
//! written back as a TOML string, so a value cannot break out of its quotes; the spec's other
//! checks (e.g. the refusal of a password in a URL) apply to the result.

use super::document::{entries, line_column};
use super::problems::Problem;

/// `text` with every string value interpolated from `env`, and the problems found: a value
/// that has one is left as written (so the spec's other problems can still be reported).
pub fn interpolate(text: &str, env: &dyn Fn(&str) -> Option<String>) -> (String, Vec<Problem>) {
    if !text.contains('$') {
        return (text.to_string(), Vec::new());
    }
    // Not valid TOML: leave the text to the parser, which names the syntax error.
    let Some(entries) = entries(text) else {
        return (text.to_string(), Vec::new());
    };
    let mut edits = Vec::new();
    let mut problems = Vec::new();
    for e in &entries {
        let (Some(s), Some(span)) = (&e.string, &e.value) else {
            continue;
        };
        if !s.contains('$') {
            continue;
        }
        match expand(s, env) {
            Ok(v) => edits.push((span.clone(), toml_string(&v))),
            Err(message) => {
                let (line, column) = line_column(text, span.start);
                problems.push(Problem {
                    line: Some(line),
                    column: Some(column),
                    key: Some(e.path.clone()),
                    message,
                });
            }
        }
    }
    let mut out = text.to_string();
    // From the end, so earlier ranges stay valid.
    edits.sort_by_key(|(span, _)| std::cmp::Reverse(span.start));
    for (span, with) in edits {
        out.replace_range(span, &with);
    }
    (out, problems)
}

/// One string value expanded.
fn expand(s: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<String, String> {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        if let Some(r) = after.strip_prefix('$') {
            out.push('$');
            rest = r;
        } else if let Some(body) = after.strip_prefix('{') {
            let end = closing_brace(body).ok_or_else(|| {
                "an unclosed `${`: write ${NAME}, or $$ for a literal $".to_string()
            })?;
            out.push_str(&variable(&body[..end], env)?);
            rest = &body[end + 1..];
        } else {
            let name: String = after
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            return Err(if name.is_empty() {
                "a lone `$`: write $$ for a literal $, or ${NAME} for a variable".to_string()
            } else {
                format!("`${name}` is not interpolated: write ${{{name}}}, or $$ for a literal $")
            });
        }
    }
    out.push_str(rest);
    Ok(out)
}

/// The index of the `}` that closes a `${`, counting nested `${…}` in defaults.
fn closing_brace(body: &str) -> Option<usize> {
    let bytes = body.as_bytes();
    let mut depth = 0usize;
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'$' if bytes.get(i + 1) == Some(&b'$') => i += 1,
            b'$' if bytes.get(i + 1) == Some(&b'{') => {
                depth += 1;
                i += 1;
            }
            b'}' if depth == 0 => return Some(i),
            b'}' => depth -= 1,
            _ => {}
        }
        i += 1;
    }
    None
}

/// What one `${…}` (without its braces) stands for.
fn variable(inner: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<String, String> {
    let name_len = inner
        .char_indices()
        .find(|(_, c)| !(c.is_ascii_alphanumeric() || *c == '_'))
        .map_or(inner.len(), |(i, _)| i);
    let (name, op) = inner.split_at(name_len);
    if name.is_empty() || name.starts_with(|c: char| c.is_ascii_digit()) {
        return Err(format!(
            "`${{{inner}}}`: a variable name is letters, digits and _, not starting with a digit"
        ));
    }
    let value = env(name);
    let empty = value.as_deref().is_none_or(str::is_empty);
    let (operator, word) = [":-", "-", ":?", "?"]
        .iter()
        .find_map(|o| op.strip_prefix(o).map(|w| (*o, w)))
        .unwrap_or(("", op));
    match operator {
        "" if !op.is_empty() => Err(format!(
            "`${{{inner}}}`: after the name comes `}}`, `:-default`, `-default`, `:?message` or `?message`"
        )),
        "" => value.ok_or_else(|| {
            format!("${{{name}}} is not set (write ${{{name}:-default}} for a default, ${{{name}:-}} to allow an empty value)")
        }),
        ":-" if empty => expand(word, env),
        "-" if value.is_none() => expand(word, env),
        ":?" if empty => Err(required(name, word, "is not set or empty")),
        "?" if value.is_none() => Err(required(name, word, "is not set")),
        _ => Ok(value.unwrap_or_default()),
    }
}

fn required(name: &str, message: &str, what: &str) -> String {
    if message.is_empty() {
        format!("${{{name}}} {what}")
    } else {
        format!("${{{name}}} {what}: {message}")
    }
}

/// `s` as a one-line TOML basic string.
fn toml_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if c.is_control() => out.push_str(&format!("\\u{:04X}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        match name {
            "RUN_DATE" => Some("2026-12-03".into()),
            "EMPTY" => Some(String::new()),
            "QUOTE" => Some("a\"b\\c\nd".into()),
            "NESTED" => Some("${RUN_DATE}".into()),
            _ => None,
        }
    }

    fn one(s: &str) -> Result<String, String> {
        expand(s, &env)
    }

    #[test]
    fn forms() {
        assert_eq!(one("s3://b/${RUN_DATE}/").unwrap(), "s3://b/2026-12-03/");
        assert_eq!(one("${EMPTY}").unwrap(), "");
        assert_eq!(one("${UNSET:-d}").unwrap(), "d");
        assert_eq!(one("${EMPTY:-d}").unwrap(), "d");
        assert_eq!(one("${EMPTY-d}").unwrap(), "");
        assert_eq!(one("${UNSET-d}").unwrap(), "d");
        assert_eq!(one("${UNSET:-}").unwrap(), "");
        assert_eq!(one("${RUN_DATE:-d}").unwrap(), "2026-12-03");
        assert_eq!(one("${UNSET:-x-${RUN_DATE}}").unwrap(), "x-2026-12-03");
        assert_eq!(one("${UNSET:-a:-b}").unwrap(), "a:-b");
        assert_eq!(
            one("price $$5, $${RUN_DATE}").unwrap(),
            "price $5, ${RUN_DATE}"
        );
        // A value is not expanded again.
        assert_eq!(one("${NESTED}").unwrap(), "${RUN_DATE}");
        assert_eq!(one("${RUN_DATE?m}").unwrap(), "2026-12-03");
        assert_eq!(one("${EMPTY?m}").unwrap(), "");
    }

    #[test]
    fn errors() {
        let e = one("${UNSET}").unwrap_err();
        assert!(e.starts_with("${UNSET} is not set"), "{e}");
        assert_eq!(
            one("${EMPTY:?say when}").unwrap_err(),
            "${EMPTY} is not set or empty: say when"
        );
        assert_eq!(one("${UNSET?}").unwrap_err(), "${UNSET} is not set");
        assert!(one("$HOME/x").unwrap_err().contains("write ${HOME}"));
        assert!(one("5$").unwrap_err().contains("a lone `$`"));
        assert!(one("${RUN_DATE").unwrap_err().contains("unclosed"));
        assert!(one("${}").unwrap_err().contains("variable name"));
        assert!(one("${1A}").unwrap_err().contains("variable name"));
        assert!(one("${A B}").unwrap_err().contains("after the name"));
        assert!(one("${UNSET:-${ALSO_UNSET}}")
            .unwrap_err()
            .contains("ALSO_UNSET"));
    }

    #[test]
    fn rewrites_string_values_only_and_keeps_lines() {
        let text = "kind = \"export\" # $ in a comment\n[a]\nq = '${QUOTE}'\nlist = [\"${RUN_DATE}\", { k = \"${UNSET:-d}\" }]\nn = 5\n";
        let (out, problems) = interpolate(text, &env);
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(out.lines().count(), text.lines().count());
        let v: toml::Table = toml::from_str(&out).unwrap();
        assert_eq!(v["a"]["q"].as_str(), Some("a\"b\\c\nd"));
        assert_eq!(v["a"]["list"][0].as_str(), Some("2026-12-03"));
        assert_eq!(v["a"]["list"][1]["k"].as_str(), Some("d"));
        assert!(out.contains("# $ in a comment"));
    }

    #[test]
    fn every_problem_with_its_key_and_line() {
        let text = "kind = \"export\"\n[a]\nx = \"${NOPE}\"\ny = [\"ok\", \"$oops\"]\n";
        let (out, p) = interpolate(text, &env);
        assert_eq!(out, text, "values with a problem stay as written");
        assert_eq!(p.len(), 2);
        assert_eq!((p[0].line, p[0].key.as_deref()), (Some(3), Some("a.x")));
        assert_eq!((p[1].line, p[1].key.as_deref()), (Some(4), Some("a.y[1]")));
        assert!(
            p[0].to_string()
                .starts_with("line 3, column 5: a.x: ${NOPE} is not set"),
            "{}",
            p[0]
        );
    }
}
