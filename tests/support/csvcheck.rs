//! Reading exported CSV back exactly: a small parser that keeps NULL (empty unquoted field)
//! apart from the empty string (`""`), which general CSV libraries do not.

use anyhow::{bail, Result};

/// One record: `None` is SQL NULL.
pub type Row = Vec<Option<String>>;

pub fn parse(data: &[u8]) -> Result<Vec<Row>> {
    let text = std::str::from_utf8(data)?;
    let mut rows = Vec::new();
    let mut row: Row = Vec::new();
    let mut field = String::new();
    let mut quoted = false;
    let mut chars = text.chars().peekable();
    let mut at_field_start = true;
    let mut in_quotes = false;
    while let Some(c) = chars.next() {
        if in_quotes {
            if c == '"' {
                if chars.peek() == Some(&'"') {
                    chars.next();
                    field.push('"');
                } else {
                    in_quotes = false;
                }
            } else {
                field.push(c);
            }
            continue;
        }
        match c {
            '"' if at_field_start => {
                in_quotes = true;
                quoted = true;
                at_field_start = false;
            }
            '"' => bail!("stray quote inside an unquoted field"),
            ',' => {
                row.push(finish(&mut field, &mut quoted));
                at_field_start = true;
            }
            '\n' => {
                row.push(finish(&mut field, &mut quoted));
                rows.push(std::mem::take(&mut row));
                at_field_start = true;
            }
            '\r' if chars.peek() == Some(&'\n') => {}
            c => {
                field.push(c);
                at_field_start = false;
            }
        }
    }
    if in_quotes {
        bail!("unterminated quoted field");
    }
    if !at_field_start || !row.is_empty() || !field.is_empty() {
        row.push(finish(&mut field, &mut quoted));
        rows.push(row);
    }
    Ok(rows)
}

fn finish(field: &mut String, quoted: &mut bool) -> Option<String> {
    let value = std::mem::take(field);
    let was_quoted = std::mem::replace(quoted, false);
    if value.is_empty() && !was_quoted {
        None
    } else {
        Some(value)
    }
}

/// Remove `prefix` from every non-NULL value; a value without it is an error.
pub fn strip_prefix(rows: &mut [Row], prefix: &str) -> Result<()> {
    for row in rows.iter_mut() {
        for v in row.iter_mut().flatten() {
            match v.strip_prefix(prefix) {
                Some(rest) => *v = rest.to_string(),
                None => bail!("value {v:?} lacks the prefix {prefix:?}"),
            }
        }
    }
    Ok(())
}

/// Every row of `SELECT cols FROM table` as text, NULL as None (PostgreSQL's own text output,
/// which is what COPY CSV writes).
pub async fn source_rows(client: &tokio_postgres::Client, select: &str) -> Result<Vec<Row>> {
    let mut rows = Vec::new();
    for msg in client.simple_query(select).await? {
        if let tokio_postgres::SimpleQueryMessage::Row(r) = msg {
            rows.push((0..r.len()).map(|i| r.get(i).map(str::to_string)).collect());
        }
    }
    Ok(rows)
}

/// Compare as multisets (sorted), reporting missing and duplicated rows precisely.
pub fn assert_same_rows(table: &str, mut exported: Vec<Row>, mut source: Vec<Row>) {
    exported.sort();
    source.sort();
    if exported == source {
        return;
    }
    let dupes = exported.windows(2).filter(|w| w[0] == w[1]).count();
    let first_diff = exported
        .iter()
        .zip(&source)
        .position(|(a, b)| a != b)
        .unwrap_or(exported.len().min(source.len()));
    panic!(
        "{table}: exported {} rows, source has {}; {dupes} duplicated; first difference at sorted row {first_diff}: exported {:?} vs source {:?}",
        exported.len(),
        source.len(),
        exported.get(first_diff),
        source.get(first_diff)
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn null_and_empty_differ() {
        let rows = parse(b"a,b,c\n,\"\",\"x,\"\"y\"\"\nz\"\n").unwrap();
        assert_eq!(
            rows[1],
            vec![None, Some(String::new()), Some("x,\"y\"\nz".into())]
        );
    }
}
