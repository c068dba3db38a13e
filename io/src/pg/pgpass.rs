//! The libpq password file (`~/.pgpass`, or `$PGPASSFILE`):
//! `hostname:port:database:username:password` lines, `*` matching anything in the first four
//! fields, `\:` and `\\` escapes, `#` comments, first match wins.

use std::path::Path;

/// Read the password file, refusing it (as libpq does) when others can read it.
pub(super) fn read_file(path: &Path) -> Option<String> {
    let meta = std::fs::metadata(path).ok()?;
    if !meta.is_file() {
        tracing::warn!(path = %path.display(), "password file is not a plain file; ignoring it");
        return None;
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        if meta.permissions().mode() & 0o077 != 0 {
            tracing::warn!(
                path = %path.display(),
                "password file has group or world access; ignoring it (chmod 0600 it)"
            );
            return None;
        }
    }
    std::fs::read_to_string(path).ok()
}

/// The password of the first entry matching the connection, if any.
pub fn lookup(
    contents: &str,
    host: &str,
    port: &str,
    database: &str,
    user: &str,
) -> Option<String> {
    contents
        .lines()
        .map(|line| line.trim_end_matches('\r'))
        .filter(|line| !line.trim_start().starts_with('#') && !line.trim().is_empty())
        .find_map(|line| {
            let fields = split_fields(line);
            let [h, p, d, u, pw] = fields.as_slice() else {
                return None;
            };
            let matches = |field: &Field, value: &str| field.wildcard || field.text == value;
            (matches(h, host) && matches(p, port) && matches(d, database) && matches(u, user))
                .then(|| pw.text.clone())
        })
}

struct Field {
    text: String,
    /// An unescaped lone `*`: matches anything.
    wildcard: bool,
}

/// Split on unescaped `:`; the fifth field (password) keeps any further colons, as libpq does.
fn split_fields(line: &str) -> Vec<Field> {
    let mut fields = Vec::with_capacity(5);
    let mut text = String::new();
    let mut escaped_any = false;
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                escaped_any = true;
                if let Some(next) = chars.next() {
                    text.push(next);
                }
            }
            ':' if fields.len() < 4 => {
                fields.push(finish_field(std::mem::take(&mut text), escaped_any));
                escaped_any = false;
            }
            c => text.push(c),
        }
    }
    fields.push(finish_field(text, escaped_any));
    fields
}

fn finish_field(text: String, escaped: bool) -> Field {
    Field {
        wildcard: text == "*" && !escaped,
        text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = "\
# a comment
db1.example:5432:shop:reader:first
*:5432:shop:reader:second
db1.example:*:*:admin:with\\:colon\\\\back
host\\:odd:5432:*:*:odd
db2.example:5432:*:reader:has:raw:colons

db3.example:5432:db:reader
";

    #[test]
    fn first_match_wins() {
        assert_eq!(
            lookup(FILE, "db1.example", "5432", "shop", "reader").as_deref(),
            Some("first")
        );
        assert_eq!(
            lookup(FILE, "other", "5432", "shop", "reader").as_deref(),
            Some("second")
        );
    }

    #[test]
    fn wildcards_and_escapes() {
        assert_eq!(
            lookup(FILE, "db1.example", "6543", "any", "admin").as_deref(),
            Some("with:colon\\back")
        );
        assert_eq!(
            lookup(FILE, "host:odd", "5432", "x", "y").as_deref(),
            Some("odd")
        );
        assert_eq!(
            lookup(FILE, "db2.example", "5432", "x", "reader").as_deref(),
            Some("has:raw:colons")
        );
    }

    #[test]
    fn no_match_and_malformed_lines() {
        assert_eq!(lookup(FILE, "nowhere", "5432", "x", "y"), None);
        // The four-field line for db3 is malformed and ignored.
        assert_eq!(lookup(FILE, "db3.example", "5432", "db", "reader"), None);
        // An escaped star is a literal star, not a wildcard.
        assert_eq!(lookup("\\*:*:*:*:pw", "h", "1", "d", "u"), None);
        assert_eq!(
            lookup("\\*:*:*:*:pw", "*", "1", "d", "u").as_deref(),
            Some("pw")
        );
        assert_eq!(lookup("", "h", "1", "d", "u"), None);
    }

    #[test]
    fn crlf_lines() {
        assert_eq!(
            lookup("h:1:d:u:pw\r\n", "h", "1", "d", "u").as_deref(),
            Some("pw")
        );
    }
}
