//! The `rds-parquet` format: one chunk as one gzip-compressed Parquet file, typed the way an AWS
//! RDS snapshot export types it.
//!
//! `COPY ... (FORMAT csv)` bytes are parsed by a small streaming state machine straight into
//! Arrow builders (one per column, chosen from the column's `pg_type.typname`); every
//! [`BATCH_ROWS`] rows or [`BATCH_BYTES`] of values the builders become one `RecordBatch`, which
//! parquet's `ArrowWriter` writes as one row group into an in-memory sink. Full parts are cut
//! from that sink and handed to the `ObjectWriter`, so memory stays bounded by about two batches
//! plus a part, whatever the chunk size.
//!
//! Parsing runs on the async task (it is cheap and never waits); Parquet encoding and gzip run
//! on a blocking thread, overlapping with the parsing of the next batch.
//!
//! Types (see the RDS export reference): int2 → INT32 annotated INT(16), int4 → INT32,
//! int8 → INT64, float4 → FLOAT, float8 → DOUBLE, bool → BOOLEAN, bytea → BYTE_ARRAY (raw
//! bytes), everything else → BYTE_ARRAY + STRING holding PostgreSQL's text output. Every column
//! is OPTIONAL; NULL (an empty unquoted CSV field) and "" (`""`) stay distinct.

use super::source;
use crate::error::{pg_error, TaskError};
use crate::sink::ObjectWriter;
use arrow::array::{
    Array, ArrayRef, BinaryArray, BinaryBuilder, BooleanBuilder, Float32Builder, Float64Builder,
    Int16Builder, Int32Builder, Int64Builder, StringArray,
};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use arrow::record_batch::RecordBatch;
use bytes::{Bytes, BytesMut};
use futures::Stream;
use memchr::{memchr, memchr2};
use parquet::arrow::arrow_writer::ArrowWriterOptions;
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, GzipLevel};
use parquet::file::properties::WriterProperties;
use protocol::{ColumnExport, ExportChunk};
use std::future::poll_fn;
use std::io::{self, Write};
use std::pin::{pin, Pin};
use std::sync::Arc;
use std::task::Poll;
use tokio::task::JoinHandle;

/// Rows per record batch, and so per row group.
pub const BATCH_ROWS: usize = 64 * 1024;
/// A batch is also cut when its values reach this many bytes (wide rows).
pub const BATCH_BYTES: usize = 32 << 20;
/// Stop draining already-buffered COPY data after this much, as the CSV path does.
const READ_BYTES: usize = 256 * 1024;

/// Session settings that make PostgreSQL's text output portable and exact: hex bytea (which the
/// decoder expects), shortest-exact floats (exact on every version), ISO dates and
/// postgres-style intervals (parseable whatever the target's DateStyle / IntervalStyle).
/// Local to the chunk's transaction.
const SESSION_SETTINGS: &str = "SELECT set_config('bytea_output', 'hex', true), \
     set_config('extra_float_digits', '3', true), \
     set_config('DateStyle', 'ISO', true), \
     set_config('IntervalStyle', 'postgres', true)";

/// How one column is stored, from its `pg_type.typname`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColumnKind {
    /// int2: INT32 with the INT(16) annotation (Arrow Int16).
    Int16,
    Int32,
    Int64,
    Float32,
    Float64,
    Boolean,
    /// bytea: raw bytes, no STRING annotation.
    Binary,
    /// Everything else: PostgreSQL's text output.
    Text,
}

impl ColumnKind {
    pub fn from_typname(typname: &str) -> Self {
        match typname {
            "int2" => Self::Int16,
            "int4" => Self::Int32,
            "int8" => Self::Int64,
            "float4" => Self::Float32,
            "float8" => Self::Float64,
            "bool" => Self::Boolean,
            "bytea" => Self::Binary,
            _ => Self::Text,
        }
    }

    pub fn data_type(self) -> DataType {
        match self {
            Self::Int16 => DataType::Int16,
            Self::Int32 => DataType::Int32,
            Self::Int64 => DataType::Int64,
            Self::Float32 => DataType::Float32,
            Self::Float64 => DataType::Float64,
            Self::Boolean => DataType::Boolean,
            Self::Binary => DataType::Binary,
            Self::Text => DataType::Utf8,
        }
    }
}

/// One exported column: its name (the Parquet field name, exactly) and kind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ColumnSpec {
    pub name: String,
    pub kind: ColumnKind,
    /// For messages.
    pub typname: String,
}

/// The columns of a task. Every column must carry its type: the coordinator sends them for this
/// format, and guessing would silently change the output.
pub fn column_specs(columns: &[ColumnExport]) -> Result<Vec<ColumnSpec>, TaskError> {
    if columns.is_empty() {
        return Err(TaskError::fatal("the task lists no columns to export"));
    }
    columns
        .iter()
        .map(|c| {
            let ty = c.pg_type.as_ref().ok_or_else(|| {
                TaskError::fatal(format!(
                    "column {:?} has no pg_type: the rds-parquet format needs every column's type \
                     from the coordinator (re-plan the job with a coordinator that sends them)",
                    c.name
                ))
            })?;
            if c.transform.is_some() {
                return Err(TaskError::fatal(format!(
                    "column {:?} has a transform: transforms apply to CSV outputs only, not to \
                     rds-parquet",
                    c.name
                )));
            }
            Ok(ColumnSpec {
                name: c.name.clone(),
                kind: ColumnKind::from_typname(&ty.typname),
                typname: ty.typname.clone(),
            })
        })
        .collect()
}

/// The Arrow schema of the file: field names are the column names exactly, all nullable.
pub fn arrow_schema(columns: &[ColumnSpec]) -> SchemaRef {
    Arc::new(Schema::new(
        columns
            .iter()
            .map(|c| Field::new(c.name.clone(), c.kind.data_type(), true))
            .collect::<Vec<_>>(),
    ))
}

// ---- CSV parsing ------------------------------------------------------------------------------

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
struct Parser {
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
    fn new() -> Self {
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
    fn feed(&mut self, input: &[u8], cols: &mut Columns) -> Result<usize, TaskError> {
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

    fn at_record_boundary(&self) -> bool {
        self.state == State::FieldStart && self.col == 0
    }
}

// ---- Arrow builders ---------------------------------------------------------------------------

enum Builder {
    Int16(Int16Builder),
    Int32(Int32Builder),
    Int64(Int64Builder),
    Float32(Float32Builder),
    Float64(Float64Builder),
    Boolean(BooleanBuilder),
    Binary(BinaryBuilder),
    /// Text is gathered as bytes and validated as UTF-8 once per batch.
    Text(BinaryBuilder),
}

impl Builder {
    fn new(kind: ColumnKind) -> Self {
        let n = BATCH_ROWS;
        match kind {
            ColumnKind::Int16 => Self::Int16(Int16Builder::with_capacity(n)),
            ColumnKind::Int32 => Self::Int32(Int32Builder::with_capacity(n)),
            ColumnKind::Int64 => Self::Int64(Int64Builder::with_capacity(n)),
            ColumnKind::Float32 => Self::Float32(Float32Builder::with_capacity(n)),
            ColumnKind::Float64 => Self::Float64(Float64Builder::with_capacity(n)),
            ColumnKind::Boolean => Self::Boolean(BooleanBuilder::with_capacity(n)),
            ColumnKind::Binary => Self::Binary(BinaryBuilder::with_capacity(n, 1 << 20)),
            ColumnKind::Text => Self::Text(BinaryBuilder::with_capacity(n, 1 << 20)),
        }
    }

    /// Append one value; `Err(())` when it is not valid text for the column's type.
    fn push(&mut self, value: Option<&[u8]>) -> Result<(), ()> {
        let Some(v) = value else {
            match self {
                Self::Int16(b) => b.append_null(),
                Self::Int32(b) => b.append_null(),
                Self::Int64(b) => b.append_null(),
                Self::Float32(b) => b.append_null(),
                Self::Float64(b) => b.append_null(),
                Self::Boolean(b) => b.append_null(),
                Self::Binary(b) | Self::Text(b) => b.append_null(),
            }
            return Ok(());
        };
        match self {
            Self::Text(b) => b.append_value(v),
            Self::Int64(b) => b.append_value(parse_i64(v).ok_or(())?),
            Self::Int32(b) => {
                b.append_value(parse_i64(v).and_then(|n| i32::try_from(n).ok()).ok_or(())?)
            }
            Self::Int16(b) => {
                b.append_value(parse_i64(v).and_then(|n| i16::try_from(n).ok()).ok_or(())?)
            }
            Self::Float64(b) => b.append_value(parse_float::<f64>(v).ok_or(())?),
            Self::Float32(b) => b.append_value(parse_float::<f32>(v).ok_or(())?),
            Self::Boolean(b) => b.append_value(match v {
                b"t" => true,
                b"f" => false,
                _ => return Err(()),
            }),
            Self::Binary(b) => decode_bytea(v, b)?,
        }
        Ok(())
    }

    /// The batch so far as an array (text still as bytes: see [`RawBatch::finish`]).
    fn finish(&mut self) -> ArrayRef {
        match self {
            Self::Int16(b) => Arc::new(b.finish()),
            Self::Int32(b) => Arc::new(b.finish()),
            Self::Int64(b) => Arc::new(b.finish()),
            Self::Float32(b) => Arc::new(b.finish()),
            Self::Float64(b) => Arc::new(b.finish()),
            Self::Boolean(b) => Arc::new(b.finish()),
            Self::Binary(b) | Self::Text(b) => Arc::new(b.finish()),
        }
    }
}

/// `[+-]digits` as PostgreSQL prints integers; `None` on anything else or on overflow.
fn parse_i64(b: &[u8]) -> Option<i64> {
    let (negative, digits) = match b.first()? {
        b'-' => (true, &b[1..]),
        b'+' => (false, &b[1..]),
        _ => (false, b),
    };
    if digits.is_empty() {
        return None;
    }
    // Accumulate negatively so that i64::MIN parses.
    let mut n: i64 = 0;
    for &c in digits {
        let d = c.wrapping_sub(b'0');
        if d > 9 {
            return None;
        }
        n = n.checked_mul(10)?.checked_sub(i64::from(d))?;
    }
    if negative {
        Some(n)
    } else {
        n.checked_neg()
    }
}

/// Rust's float parser is correctly rounded and accepts PostgreSQL's `NaN`, `Infinity` and
/// `-Infinity`, so shortest-exact output parses back to the same bits.
fn parse_float<T: std::str::FromStr>(b: &[u8]) -> Option<T> {
    std::str::from_utf8(b).ok()?.parse().ok()
}

/// `\x0a1b...` (bytea_output = hex) into raw bytes, written straight into the builder.
fn decode_bytea(v: &[u8], b: &mut BinaryBuilder) -> Result<(), ()> {
    let hex = v.strip_prefix(b"\\x").ok_or(())?;
    if hex.len() % 2 != 0 {
        return Err(());
    }
    let mut buf = [0u8; 4096];
    for piece in hex.chunks(buf.len() * 2) {
        let n = piece.len() / 2;
        for (k, out) in buf[..n].iter_mut().enumerate() {
            let hi = HEX[usize::from(piece[2 * k])];
            let lo = HEX[usize::from(piece[2 * k + 1])];
            if (hi | lo) & 0x80 != 0 {
                return Err(());
            }
            *out = (hi << 4) | lo;
        }
        // Writing into a BinaryBuilder extends the current value; it cannot fail.
        b.write_all(&buf[..n]).map_err(|_| ())?;
    }
    b.append_value(b"");
    Ok(())
}

/// Hex digit values; 0xff for anything else.
static HEX: [u8; 256] = {
    let mut t = [0xffu8; 256];
    let mut i = 0;
    while i < 10 {
        t[b'0' as usize + i] = i as u8;
        i += 1;
    }
    let mut i = 0;
    while i < 6 {
        t[b'a' as usize + i] = 10 + i as u8;
        t[b'A' as usize + i] = 10 + i as u8;
        i += 1;
    }
    t
};

/// The builders of the batch being filled.
struct Columns {
    specs: Arc<[ColumnSpec]>,
    builders: Vec<Builder>,
    rows: usize,
    bytes: usize,
    max_rows: usize,
    max_bytes: usize,
}

impl Columns {
    fn new(specs: Arc<[ColumnSpec]>, max_rows: usize, max_bytes: usize) -> Self {
        let builders = specs.iter().map(|c| Builder::new(c.kind)).collect();
        Self {
            specs,
            builders,
            rows: 0,
            bytes: 0,
            max_rows: max_rows.max(1),
            max_bytes: max_bytes.max(1),
        }
    }

    fn len(&self) -> usize {
        self.builders.len()
    }

    fn name(&self, col: usize) -> &str {
        self.specs.get(col).map_or("?", |c| c.name.as_str())
    }

    fn push(&mut self, col: usize, value: Option<&[u8]>) -> Result<(), TaskError> {
        let Some(builder) = self.builders.get_mut(col) else {
            return Err(TaskError::fatal(format!(
                "malformed COPY output: a record has more than {} fields",
                self.specs.len()
            )));
        };
        self.bytes += value.map_or(1, |v| v.len() + 1);
        builder.push(value).map_err(|()| {
            let spec = &self.specs[col];
            let v = value.unwrap_or_default();
            let shown = String::from_utf8_lossy(&v[..v.len().min(40)]);
            TaskError::fatal(format!(
                "column {:?} ({}): PostgreSQL printed {shown:?}{}, which is not a valid {} value \
                 (did the column's type change after the job was planned?)",
                spec.name,
                spec.typname,
                if v.len() > 40 { "..." } else { "" },
                spec.typname
            ))
        })
    }

    /// Count a complete record; true when the batch is full.
    fn end_row(&mut self) -> bool {
        self.rows += 1;
        self.is_full()
    }

    fn is_full(&self) -> bool {
        self.rows >= self.max_rows || self.bytes >= self.max_bytes
    }

    fn take(&mut self) -> RawBatch {
        let arrays = self.builders.iter_mut().map(Builder::finish).collect();
        let rows = std::mem::take(&mut self.rows);
        self.bytes = 0;
        RawBatch { arrays, rows }
    }
}

/// A batch whose text columns are still unchecked bytes: [`RawBatch::finish`] validates them
/// (off the async thread) and builds the record batch.
pub struct RawBatch {
    arrays: Vec<ArrayRef>,
    rows: usize,
}

impl RawBatch {
    pub fn rows(&self) -> usize {
        self.rows
    }

    pub fn finish(self, schema: &SchemaRef) -> Result<RecordBatch, TaskError> {
        let mut arrays = Vec::with_capacity(self.arrays.len());
        for (array, field) in self.arrays.into_iter().zip(schema.fields()) {
            if field.data_type() == &DataType::Utf8 {
                let bytes = array
                    .as_any()
                    .downcast_ref::<BinaryArray>()
                    .ok_or_else(|| TaskError::fatal("text column built as non-bytes (bug)"))?
                    .clone();
                let text = StringArray::try_from_binary(bytes).map_err(|e| {
                    TaskError::fatal(format!(
                        "column {:?}: PostgreSQL sent text that is not UTF-8 ({e})",
                        field.name()
                    ))
                })?;
                arrays.push(Arc::new(text) as ArrayRef);
            } else {
                arrays.push(array);
            }
        }
        RecordBatch::try_new(schema.clone(), arrays)
            .map_err(|e| TaskError::fatal(format!("building a record batch: {e}")))
    }
}

/// CSV in, raw batches out.
pub struct Batcher {
    parser: Parser,
    columns: Columns,
    schema: SchemaRef,
    rows: u64,
}

impl Batcher {
    pub fn new(specs: &[ColumnSpec]) -> Self {
        Self::with_limits(specs, BATCH_ROWS, BATCH_BYTES)
    }

    pub fn with_limits(specs: &[ColumnSpec], max_rows: usize, max_bytes: usize) -> Self {
        Self {
            parser: Parser::new(),
            columns: Columns::new(specs.into(), max_rows, max_bytes),
            schema: arrow_schema(specs),
            rows: 0,
        }
    }

    pub fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    /// Parse CSV bytes; returns how many were consumed. Less than all of them means the batch
    /// is full: take it, then feed the rest.
    pub fn feed(&mut self, input: &[u8]) -> Result<usize, TaskError> {
        let before = self.columns.rows;
        let n = self.parser.feed(input, &mut self.columns)?;
        self.rows += (self.columns.rows - before) as u64;
        Ok(n)
    }

    pub fn is_full(&self) -> bool {
        self.columns.is_full()
    }

    pub fn buffered_rows(&self) -> usize {
        self.columns.rows
    }

    pub fn take(&mut self) -> RawBatch {
        self.columns.take()
    }

    /// Complete records parsed so far.
    pub fn rows(&self) -> u64 {
        self.rows
    }

    /// Check that the input ended on a record boundary.
    pub fn finish(&self) -> Result<u64, TaskError> {
        if self.parser.at_record_boundary() {
            Ok(self.rows)
        } else {
            Err(TaskError::retryable(format!(
                "COPY output ended in the middle of a record (after {} complete rows)",
                self.rows
            )))
        }
    }
}

// ---- Parquet file -----------------------------------------------------------------------------

/// The `Write` sink of the Parquet writer; parts are cut from its front. The writer counts its
/// own offsets, so taking bytes out never disturbs the file.
#[derive(Default)]
struct PartSink {
    buf: BytesMut,
}

impl Write for PartSink {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.buf.extend_from_slice(data);
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// One Parquet file being written: a row group per batch, gzip, parts of `part_size` bytes.
pub struct ParquetFile {
    writer: ArrowWriter<PartSink>,
    part_size: usize,
}

impl ParquetFile {
    pub fn new(schema: SchemaRef, gzip_level: u32, part_size: u64) -> Result<Self, TaskError> {
        let level = GzipLevel::try_new(gzip_level.min(9))
            .map_err(|e| TaskError::fatal(format!("gzip level {gzip_level}: {e}")))?;
        let props = WriterProperties::builder()
            .set_compression(Compression::GZIP(level))
            .set_max_row_group_row_count(Some(BATCH_ROWS))
            .build();
        // Like a real export (written by Spark): no embedded Arrow schema, Spark's root name.
        let options = ArrowWriterOptions::new()
            .with_properties(props)
            .with_skip_arrow_metadata(true)
            .with_schema_root("spark_schema".into());
        let writer = ArrowWriter::try_new_with_options(PartSink::default(), schema, options)
            .map_err(|e| TaskError::fatal(format!("creating the Parquet writer: {e}")))?;
        Ok(Self {
            writer,
            part_size: usize::try_from(part_size.max(1)).unwrap_or(usize::MAX),
        })
    }

    /// Write one batch as one row group.
    pub fn write(&mut self, batch: &RecordBatch) -> Result<(), TaskError> {
        let write = |w: &mut ArrowWriter<PartSink>| -> parquet::errors::Result<()> {
            w.write(batch)?;
            w.flush()?;
            w.sync()?;
            Ok(())
        };
        write(&mut self.writer)
            .map_err(|e| TaskError::fatal(format!("writing a Parquet row group: {e}")))
    }

    /// A full part, if the output has reached the part size.
    pub fn next_part(&mut self) -> Option<Bytes> {
        let buf = &mut self.writer.inner_mut().buf;
        (buf.len() >= self.part_size).then(|| buf.split_to(self.part_size).freeze())
    }

    /// Write the footer and return the remaining output as parts (the last may be smaller).
    pub fn finish(mut self) -> Result<Vec<Bytes>, TaskError> {
        self.writer
            .finish()
            .map_err(|e| TaskError::fatal(format!("finishing the Parquet file: {e}")))?;
        let mut parts = Vec::new();
        while let Some(part) = self.next_part() {
            parts.push(part);
        }
        let rest = std::mem::take(&mut self.writer.inner_mut().buf);
        if !rest.is_empty() {
            parts.push(rest.freeze());
        }
        Ok(parts)
    }
}

/// The whole encoder, synchronously: CSV in, Parquet parts out. The export path splits it
/// across threads; this is for tests and measurements.
pub struct ParquetEncoder {
    batcher: Batcher,
    file: ParquetFile,
}

impl ParquetEncoder {
    pub fn new(specs: &[ColumnSpec], gzip_level: u32, part_size: u64) -> Result<Self, TaskError> {
        let batcher = Batcher::new(specs);
        let file = ParquetFile::new(batcher.schema().clone(), gzip_level, part_size)?;
        Ok(Self { batcher, file })
    }

    /// Encode a piece of CSV; full parts are appended to `parts`.
    pub fn feed(&mut self, mut input: &[u8], parts: &mut Vec<Bytes>) -> Result<(), TaskError> {
        while !input.is_empty() {
            let n = self.batcher.feed(input)?;
            input = &input[n..];
            if self.batcher.is_full() {
                self.flush_batch(parts)?;
            }
        }
        Ok(())
    }

    fn flush_batch(&mut self, parts: &mut Vec<Bytes>) -> Result<(), TaskError> {
        let batch = self.batcher.take().finish(self.batcher.schema())?;
        self.file.write(&batch)?;
        while let Some(p) = self.file.next_part() {
            parts.push(p);
        }
        Ok(())
    }

    /// Finish the file; returns the row count, and appends the remaining parts.
    pub fn finish(mut self, parts: &mut Vec<Bytes>) -> Result<u64, TaskError> {
        let rows = self.batcher.finish()?;
        if self.batcher.buffered_rows() > 0 {
            self.flush_batch(parts)?;
        }
        parts.extend(self.file.finish()?);
        Ok(rows)
    }
}

// ---- The export data path ---------------------------------------------------------------------

/// The Parquet writer, either idle here or busy encoding a batch on a blocking thread.
enum Pipeline {
    Idle(Box<ParquetFile>),
    Busy(JoinHandle<Result<Box<ParquetFile>, TaskError>>),
    /// Only between taking the state and putting it back.
    Empty,
}

impl Pipeline {
    /// Wait for the batch in progress and take the writer back.
    async fn idle(&mut self) -> Result<Box<ParquetFile>, TaskError> {
        match std::mem::replace(self, Pipeline::Empty) {
            Pipeline::Idle(file) => Ok(file),
            Pipeline::Busy(handle) => handle
                .await
                .map_err(|e| TaskError::fatal(format!("the Parquet encoder thread failed: {e}")))?,
            Pipeline::Empty => Err(TaskError::fatal("Parquet writer used after a failure")),
        }
    }

    /// Hand `batch` to the encoder thread; returns the parts the previous batch completed, which
    /// the caller uploads while this one encodes.
    async fn submit(
        &mut self,
        batch: RawBatch,
        schema: &SchemaRef,
    ) -> Result<Vec<Bytes>, TaskError> {
        let mut file = self.idle().await?;
        let mut parts = Vec::new();
        while let Some(p) = file.next_part() {
            parts.push(p);
        }
        let schema = schema.clone();
        *self = Pipeline::Busy(tokio::task::spawn_blocking(move || {
            let batch = batch.finish(&schema)?;
            file.write(&batch)?;
            Ok(file)
        }));
        Ok(parts)
    }

    /// Wait for the last batch and write the footer; returns every remaining part.
    async fn finish(&mut self) -> Result<Vec<Bytes>, TaskError> {
        let file = self.idle().await?;
        tokio::task::spawn_blocking(move || file.finish())
            .await
            .map_err(|e| TaskError::fatal(format!("the Parquet encoder thread failed: {e}")))?
    }
}

/// Check the task and build its columns before anything is opened.
pub(super) fn prepare(task: &ExportChunk) -> Result<Vec<ColumnSpec>, TaskError> {
    column_specs(&task.columns)
}

/// Stream the chunk into `writer` as one Parquet file (all parts written, not yet finished);
/// returns the row count.
pub(super) async fn stream_chunk(
    ctx: &crate::context::WorkerContext,
    task: &ExportChunk,
    specs: &[ColumnSpec],
    query: &str,
    writer: &mut ObjectWriter,
) -> Result<u64, TaskError> {
    let mut batcher = Batcher::new(specs);
    let schema = batcher.schema().clone();
    let file = ParquetFile::new(
        schema.clone(),
        task.output.gzip_level,
        task.output.part_size,
    )?;
    let mut pipeline = Pipeline::Idle(Box::new(file));

    let mut session = source::begin(ctx, task).await?;
    if let Err(e) = session.client().batch_execute(SESSION_SETTINGS).await {
        let err = pg_error(&e).context("setting bytea_output, extra_float_digits, DateStyle");
        session.rollback().await;
        return Err(err);
    }
    let stream = match session.client().copy_out(query).await {
        Ok(s) => s,
        Err(e) => {
            session.rollback().await;
            return Err(pg_error(&e));
        }
    };
    let mut stream = pin!(stream);
    let mut leftover: Option<Bytes> = None;
    loop {
        let ended = match read_some(stream.as_mut(), &mut batcher, &mut leftover).await {
            Ok(ended) => ended,
            Err(ReadError::Pg(e)) => {
                // The server ended the COPY with an error: the connection itself is fine.
                session.rollback().await;
                return Err(pg_error(&e));
            }
            Err(ReadError::Data(e)) => {
                session.discard();
                return Err(e);
            }
        };
        if batcher.is_full() || (ended && batcher.buffered_rows() > 0) {
            let submitted = pipeline.submit(batcher.take(), &schema).await;
            let uploaded = match submitted {
                Ok(parts) => upload(writer, parts).await,
                Err(e) => Err(e),
            };
            if let Err(e) = uploaded {
                // The COPY may still be streaming: close rather than drain the connection.
                session.discard();
                return Err(e);
            }
        }
        if ended {
            break;
        }
    }
    let rows = match batcher.finish() {
        Ok(rows) => rows,
        Err(e) => {
            session.discard();
            return Err(e);
        }
    };
    session.commit().await?;
    upload(writer, pipeline.finish().await?).await?;
    Ok(rows)
}

async fn upload(writer: &mut ObjectWriter, parts: Vec<Bytes>) -> Result<(), TaskError> {
    for part in parts {
        writer.write_part(part).await?;
    }
    Ok(())
}

enum ReadError {
    Pg(tokio_postgres::Error),
    Data(TaskError),
}

/// Parse every COPY message that is already buffered (up to `READ_BYTES`), waiting only when
/// none is; stop early when the batch is full (the rest of that message is kept in `leftover`).
/// Returns true at the end of the COPY.
async fn read_some<S>(
    mut stream: Pin<&mut S>,
    batcher: &mut Batcher,
    leftover: &mut Option<Bytes>,
) -> Result<bool, ReadError>
where
    S: Stream<Item = Result<Bytes, tokio_postgres::Error>>,
{
    if let Some(data) = leftover.take() {
        let n = batcher.feed(&data).map_err(ReadError::Data)?;
        if n < data.len() {
            *leftover = Some(data.slice(n..));
        }
        if batcher.is_full() {
            return Ok(false);
        }
    }
    let mut taken = 0usize;
    poll_fn(|cx| loop {
        match stream.as_mut().poll_next(cx) {
            Poll::Ready(Some(Ok(data))) => {
                let n = batcher.feed(&data).map_err(ReadError::Data)?;
                if n < data.len() {
                    *leftover = Some(data.slice(n..));
                }
                taken += data.len();
                if batcher.is_full() || taken >= READ_BYTES {
                    return Poll::Ready(Ok(false));
                }
            }
            Poll::Ready(Some(Err(e))) => return Poll::Ready(Err(ReadError::Pg(e))),
            Poll::Ready(None) => return Poll::Ready(Ok(true)),
            Poll::Pending if taken > 0 => return Poll::Ready(Ok(false)),
            Poll::Pending => return Poll::Pending,
        }
    })
    .await
}

#[cfg(test)]
mod tests;
