//! Per-field rewrites on PostgreSQL's CSV output, as a streaming state machine over raw bytes.
//!
//! PostgreSQL's `COPY ... (FORMAT csv)` quotes a field only when it contains `,` `"` CR or LF
//! or is exactly `\.`; NULL is an empty unquoted field and the empty string is `""`; records
//! end with LF. Because quoted fields keep their escaping and everything else is copied as is,
//! a prefix only ever needs bytes *inserted* at a field start (and, for an unquoted value whose
//! prefix needs quoting, a closing quote at its end). So the machine copies the input through in
//! runs between insertion points, finding field boundaries with memchr, and never allocates per
//! row. Input may be split anywhere: all state survives between `feed` calls.

use bytes::BytesMut;
use memchr::{memchr, memchr2};
use protocol::Transform;

/// A prefix prepared once: its raw bytes, its quote-escaped bytes, and whether an unquoted
/// value must become quoted once prefixed.
#[derive(Debug, Clone)]
struct Prefix {
    raw: Box<[u8]>,
    escaped: Box<[u8]>,
    force_quote: bool,
}

impl Prefix {
    fn new(value: &str) -> Option<Self> {
        if value.is_empty() {
            return None;
        }
        let raw: Box<[u8]> = value.as_bytes().into();
        let mut escaped = Vec::with_capacity(raw.len());
        for &b in raw.iter() {
            if b == b'"' {
                escaped.push(b'"');
            }
            escaped.push(b);
        }
        // A lone backslash prefix turns the value "." into `\.`, the end-of-data marker,
        // which must be quoted; quoting is always allowed, so quote every such value.
        let force_quote =
            value == "\\" || raw.iter().any(|b| matches!(b, b',' | b'"' | b'\r' | b'\n'));
        Some(Self {
            raw,
            escaped: escaped.into(),
            force_quote,
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Before the first byte of a field.
    FieldStart,
    /// Inside an unquoted field: ends at `,` or LF.
    Unquoted,
    /// Inside a quoted field: ends at a `"` not followed by another `"`.
    Quoted,
    /// Just after a `"` inside a quoted field: `""` is an escaped quote, anything else ends it.
    QuoteSeen,
    /// No column from here to the end of the record has a transform: copy through to the
    /// record's LF, tracking only whether we are inside quotes.
    Tail { in_quotes: bool },
}

/// Streaming CSV field transformer. Create one per chunk; `feed` bytes in any pieces.
#[derive(Debug, Clone)]
pub struct CsvTransformer {
    columns: Vec<Option<Prefix>>,
    /// `tail_from[i]`: no column at index >= i has a transform.
    tail_from: Vec<bool>,
    state: State,
    col: usize,
    /// The current unquoted field was opened with a `"` (prefix needs quoting); close it.
    close_pending: bool,
    /// In `Tail` state: bytes of the current record have been consumed.
    mid_record: bool,
    rows: u64,
}

impl CsvTransformer {
    /// One entry per exported column, in SELECT order.
    pub fn new<'a>(transforms: impl IntoIterator<Item = Option<&'a Transform>>) -> Self {
        let columns: Vec<Option<Prefix>> = transforms
            .into_iter()
            .map(|t| match t {
                Some(Transform::Prefix { value }) => Prefix::new(value),
                None => None,
            })
            .collect();
        let mut tail_from = vec![true; columns.len() + 1];
        for i in (0..columns.len()).rev() {
            tail_from[i] = tail_from[i + 1] && columns[i].is_none();
        }
        let state = if tail_from[0] {
            State::Tail { in_quotes: false }
        } else {
            State::FieldStart
        };
        Self {
            columns,
            tail_from,
            state,
            col: 0,
            close_pending: false,
            mid_record: false,
            rows: 0,
        }
    }

    /// Complete records seen so far.
    pub fn rows(&self) -> u64 {
        self.rows
    }

    /// Transform `input` (any piece of the stream) and append the result to `out`.
    pub fn feed(&mut self, input: &[u8], out: &mut BytesMut) {
        let len = input.len();
        let mut i = 0;
        // input[copied..i] is pending verbatim output, flushed before each insertion.
        let mut copied = 0;
        while i < len {
            match self.state {
                State::FieldStart => {
                    if self.tail_from.get(self.col).copied().unwrap_or(true) {
                        self.state = State::Tail { in_quotes: false };
                        continue;
                    }
                    let prefix = self.columns.get(self.col).and_then(Option::as_ref);
                    match input[i] {
                        b',' => {
                            // NULL: stays an empty unquoted field.
                            self.col += 1;
                            i += 1;
                        }
                        b'\n' => {
                            self.end_record();
                            i += 1;
                        }
                        b'"' => {
                            i += 1;
                            if let Some(p) = prefix {
                                out.extend_from_slice(&input[copied..i]);
                                out.extend_from_slice(&p.escaped);
                                copied = i;
                            }
                            self.state = State::Quoted;
                        }
                        _ => {
                            if let Some(p) = prefix {
                                out.extend_from_slice(&input[copied..i]);
                                if p.force_quote {
                                    out.extend_from_slice(b"\"");
                                    out.extend_from_slice(&p.escaped);
                                    self.close_pending = true;
                                } else {
                                    out.extend_from_slice(&p.raw);
                                }
                                copied = i;
                            }
                            self.state = State::Unquoted;
                        }
                    }
                }
                State::Unquoted => match memchr2(b',', b'\n', &input[i..]) {
                    None => i = len,
                    Some(off) => {
                        let end = i + off;
                        if self.close_pending {
                            out.extend_from_slice(&input[copied..end]);
                            out.extend_from_slice(b"\"");
                            copied = end;
                            self.close_pending = false;
                        }
                        self.end_field(input[end]);
                        i = end + 1;
                    }
                },
                State::Quoted => match memchr(b'"', &input[i..]) {
                    None => i = len,
                    Some(off) => {
                        self.state = State::QuoteSeen;
                        i += off + 1;
                    }
                },
                State::QuoteSeen => match input[i] {
                    b'"' => {
                        self.state = State::Quoted;
                        i += 1;
                    }
                    b @ (b',' | b'\n') => {
                        self.end_field(b);
                        i += 1;
                    }
                    // Not something PostgreSQL writes; keep going without losing data.
                    _ => self.state = State::Unquoted,
                },
                State::Tail { in_quotes } => match memchr2(b'"', b'\n', &input[i..]) {
                    None => {
                        self.mid_record = true;
                        i = len;
                    }
                    Some(off) => {
                        let at = i + off;
                        if input[at] == b'"' {
                            // `""` toggles twice, so parity alone tracks quoting.
                            self.state = State::Tail {
                                in_quotes: !in_quotes,
                            };
                            self.mid_record = true;
                        } else if in_quotes {
                            self.mid_record = true;
                        } else {
                            self.end_record();
                        }
                        i = at + 1;
                    }
                },
            }
        }
        out.extend_from_slice(&input[copied..]);
    }

    /// Check that the stream ended on a record boundary and return the record count.
    pub fn finish(&self) -> Result<u64, String> {
        let at_boundary = match self.state {
            State::FieldStart => self.col == 0,
            State::Tail { in_quotes } => !in_quotes && self.col == 0 && !self.mid_record,
            _ => false,
        };
        if at_boundary {
            Ok(self.rows)
        } else {
            Err(format!(
                "COPY output ended in the middle of a record (after {} complete rows)",
                self.rows
            ))
        }
    }

    fn end_field(&mut self, delimiter: u8) {
        if delimiter == b'\n' {
            self.end_record();
        } else {
            self.col += 1;
            self.state = State::FieldStart;
        }
    }

    fn end_record(&mut self) {
        self.rows += 1;
        self.col = 0;
        self.mid_record = false;
        self.state = if self.tail_from[0] {
            State::Tail { in_quotes: false }
        } else {
            State::FieldStart
        };
    }
}

/// The CSV header row for `names`, quoted as PostgreSQL would quote a value.
pub fn header_row<'a>(names: impl IntoIterator<Item = &'a str>) -> Vec<u8> {
    let mut out = Vec::new();
    for (i, name) in names.into_iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        let needs_quotes = name.is_empty()
            || name == "\\."
            || name
                .bytes()
                .any(|b| matches!(b, b',' | b'"' | b'\r' | b'\n'));
        if needs_quotes {
            out.push(b'"');
            for b in name.bytes() {
                if b == b'"' {
                    out.push(b'"');
                }
                out.push(b);
            }
            out.push(b'"');
        } else {
            out.extend_from_slice(name.as_bytes());
        }
    }
    out.push(b'\n');
    out
}

#[cfg(test)]
mod tests;
