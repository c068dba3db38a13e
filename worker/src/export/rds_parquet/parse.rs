//! PostgreSQL's COPY CSV output → one value per field, pushed into the batch's [`Columns`].

use super::builders::Columns;
use fleet_io::error::TaskError;
use memchr::{memchr, memchr2};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Before the first byte of a field.
    FieldStart,
    /// Inside an unquoted field: ends at `,` or LF.
    Unquoted,
    /// Inside a quoted field.
    Quoted,
    /// Just after a `"` inside a quoted field: `""` is an escaped quote, `,`/LF end the field.
    QuoteSeen,
}

/// Streaming parser of PostgreSQL's CSV output (`,` delimiter, `"` quote and escape, LF record
/// ends, NULL = empty unquoted field). A field is handed over as a slice of the input whenever it
/// lies whole in one input piece without `""` escapes (always, in practice: COPY sends a row per
/// message); otherwise its bytes are gathered in a reused scratch buffer.
#[derive(Debug)]
pub(super) struct Parser {
    state: State,
    col: usize,
    /// Start of the current field's bytes not yet moved to `scratch`, in the current input.
    seg: usize,
    /// In `QuoteSeen`: where that quote is in the current input (0 if it was in an earlier one).
    quote_at: usize,
    /// The current field's earlier bytes are in `scratch`.
    spilled: bool,
    scratch: Vec<u8>,
}

impl Parser {
    pub(super) fn new() -> Self {
        Self {
            state: State::FieldStart,
            col: 0,
            seg: 0,
            quote_at: 0,
            spilled: false,
            scratch: Vec::new(),
        }
    }

    fn spill(&mut self, bytes: &[u8]) {
        if !self.spilled {
            self.scratch.clear();
            self.spilled = true;
        }
        self.scratch.extend_from_slice(bytes);
    }

    /// Parse `input` into `cols`. Stops right after a record that fills the batch; returns how
    /// many bytes were consumed (all of them unless the batch is full).
    pub(super) fn feed(&mut self, input: &[u8], cols: &mut Columns) -> Result<usize, TaskError> {
        let len = input.len();
        let mut i = 0;
        self.seg = 0;
        self.quote_at = 0;
        while i < len {
            match self.state {
                State::FieldStart => match input[i] {
                    b',' => {
                        cols.push(self.col, None)?;
                        self.col += 1;
                        i += 1;
                    }
                    b'\n' => {
                        cols.push(self.col, None)?;
                        i += 1;
                        if self.end_record(cols)? {
                            return Ok(i);
                        }
                    }
                    b'"' => {
                        i += 1;
                        self.seg = i;
                        self.spilled = false;
                        self.state = State::Quoted;
                    }
                    _ => {
                        self.seg = i;
                        self.spilled = false;
                        self.state = State::Unquoted;
                    }
                },
                State::Unquoted => match memchr2(b',', b'\n', &input[i..]) {
                    None => i = len,
                    Some(off) => {
                        let end = i + off;
                        i = end + 1;
                        if self.end_field(input, end, input[end], cols)? {
                            return Ok(i);
                        }
                    }
                },
                State::Quoted => match memchr(b'"', &input[i..]) {
                    None => i = len,
                    Some(off) => {
                        self.quote_at = i + off;
                        self.state = State::QuoteSeen;
                        i = self.quote_at + 1;
                    }
                },
                State::QuoteSeen => match input[i] {
                    b'"' => {
                        // `""`: keep one quote, continue the quoted field.
                        let (seg, quote_at) = (self.seg, self.quote_at);
                        self.spill(&input[seg..quote_at]);
                        self.scratch.push(b'"');
                        i += 1;
                        self.seg = i;
                        self.state = State::Quoted;
                    }
                    b @ (b',' | b'\n') => {
                        let end = self.quote_at;
                        i += 1;
                        if self.end_field(input, end, b, cols)? {
                            return Ok(i);
                        }
                    }
                    other => {
                        return Err(TaskError::fatal(format!(
                            "malformed COPY output: byte {other:#04x} after a closing quote in \
                             column {:?}",
                            cols.name(self.col)
                        )))
                    }
                },
            }
        }
        // The input ended inside a field: keep what we have of it.
        match self.state {
            State::FieldStart => {}
            State::Unquoted | State::Quoted => {
                let seg = self.seg;
                self.spill(&input[seg..len]);
            }
            State::QuoteSeen => {
                let (seg, quote_at) = (self.seg, self.quote_at);
                self.spill(&input[seg..quote_at.max(seg)]);
            }
        }
        Ok(len)
    }

    /// The field ending at `end` (exclusive) is complete; `delimiter` is `,` or LF.
    /// Returns true when the record ended and filled the batch.
    fn end_field(
        &mut self,
        input: &[u8],
        end: usize,
        delimiter: u8,
        cols: &mut Columns,
    ) -> Result<bool, TaskError> {
        let col = self.col;
        if self.spilled {
            self.scratch.extend_from_slice(&input[self.seg..end]);
            cols.push(col, Some(&self.scratch))?;
        } else {
            cols.push(col, Some(&input[self.seg..end]))?;
        }
        self.state = State::FieldStart;
        if delimiter == b'\n' {
            self.end_record(cols)
        } else {
            self.col += 1;
            Ok(false)
        }
    }

    fn end_record(&mut self, cols: &mut Columns) -> Result<bool, TaskError> {
        if self.col + 1 != cols.len() {
            return Err(TaskError::fatal(format!(
                "malformed COPY output: a record has {} fields, expected {}",
                self.col + 1,
                cols.len()
            )));
        }
        self.col = 0;
        self.state = State::FieldStart;
        Ok(cols.end_row())
    }

    pub(super) fn at_record_boundary(&self) -> bool {
        self.state == State::FieldStart && self.col == 0
    }
}
