//! Read one exported object back, streamed in ranged reads (never held whole): its CRC32C as
//! stored and its rows counted from the bytes themselves — CSV records (quote-aware; after
//! gunzip for `csv.gz`), or the row counts of a Parquet file's footer.

use fleet_io::clients::Clients;
use protocol::proof::ObjectChecksum;
use protocol::{ObjectLocation, OutputFormat, S3Options};
use std::io::Write;

/// Bytes per ranged read.
const READ_BYTES: u64 = 8 << 20;

/// What reading an object back found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Scanned {
    pub bytes: u64,
    pub crc32c: u32,
    pub rows: u64,
}

/// Read `key` (`size` bytes, as listed) under `location` and count its rows as `format`
/// (`header`: the first CSV record is a header, not a row).
pub async fn scan(
    ctx: &Clients,
    location: &ObjectLocation,
    s3: &S3Options,
    key: &str,
    size: u64,
    format: OutputFormat,
    header: bool,
) -> Result<Scanned, String> {
    let mut checksum = ObjectChecksum::default();
    let mut counter = RowCounter::new(format);
    let mut offset = 0;
    // The last range read: a Parquet footer is almost always inside it.
    let mut last = bytes::Bytes::new();
    while offset < size {
        let end = size.min(offset + READ_BYTES);
        let bytes = fleet_io::objects::get_range(ctx, location, s3, key, offset..end)
            .await
            .map_err(|e| e.to_string())?;
        if bytes.is_empty() {
            return Err(format!("ends at byte {offset}, listed with {size}"));
        }
        checksum.add(&bytes);
        counter.feed(&bytes)?;
        offset += bytes.len() as u64;
        last = bytes;
    }
    let rows = match counter.finish()? {
        Some(records) => records.saturating_sub(u64::from(header && records > 0)),
        None => {
            let footer = match crate::rds::footers::decode_suffix(&last, offset) {
                Ok(Ok(footer)) => footer,
                // Metadata longer than the last read, or bytes that are not a footer: read it
                // as planning does, for its error messages.
                _ => crate::rds::footers::read_footer(ctx, location, s3, key, size)
                    .await
                    .map_err(|e| format!("its Parquet footer {e}"))?,
            };
            footer.row_groups.iter().sum()
        }
    };
    Ok(Scanned {
        bytes: offset,
        crc32c: checksum.value(),
        rows,
    })
}

/// Counts records as bytes arrive.
enum RowCounter {
    Csv(CsvRecords),
    CsvGz(Box<flate2::write::MultiGzDecoder<CsvRecords>>),
    /// Parquet: rows come from the footer once the bytes are read.
    Parquet,
}

impl RowCounter {
    fn new(format: OutputFormat) -> Self {
        match format {
            OutputFormat::Csv => Self::Csv(CsvRecords::default()),
            OutputFormat::CsvGz => Self::CsvGz(Box::new(flate2::write::MultiGzDecoder::new(
                CsvRecords::default(),
            ))),
            OutputFormat::RdsParquet => Self::Parquet,
        }
    }

    fn feed(&mut self, bytes: &[u8]) -> Result<(), String> {
        match self {
            Self::Csv(c) => c.add(bytes),
            Self::CsvGz(d) => d
                .write_all(bytes)
                .map_err(|e| format!("is not valid gzip: {e}"))?,
            Self::Parquet => {}
        }
        Ok(())
    }

    /// CSV records seen (`None`: Parquet, count from the footer).
    fn finish(self) -> Result<Option<u64>, String> {
        match self {
            Self::Csv(c) => Ok(Some(c.records())),
            Self::CsvGz(d) => d
                .finish()
                .map(|c| Some(c.records()))
                .map_err(|e| format!("is not valid gzip: {e}")),
            Self::Parquet => Ok(None),
        }
    }
}

/// CSV records as PostgreSQL writes them: LF ends a record unless inside quotes (`""` inside
/// quotes toggles twice, so it needs no special case).
#[derive(Debug, Default)]
struct CsvRecords {
    ends: u64,
    in_quotes: bool,
    /// The last byte is not a record end: one more, unterminated, record.
    open: bool,
}

impl CsvRecords {
    fn add(&mut self, bytes: &[u8]) {
        for &b in bytes {
            match b {
                b'"' => self.in_quotes = !self.in_quotes,
                b'\n' if !self.in_quotes => self.ends += 1,
                _ => {}
            }
        }
        if let Some(&last) = bytes.last() {
            self.open = last != b'\n' || self.in_quotes;
        }
    }

    fn records(&self) -> u64 {
        self.ends + u64::from(self.open)
    }
}

impl Write for CsvRecords {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.add(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn count(pieces: &[&[u8]]) -> u64 {
        let mut c = CsvRecords::default();
        for p in pieces {
            c.add(p);
        }
        c.records()
    }

    #[test]
    fn csv_records_respect_quotes_and_any_cut() {
        let text: &[u8] = b"id,note\n1,\"two\nlines\"\n2,\"say \"\"hi\"\"\n\"\n3,\n";
        assert_eq!(count(&[text]), 4);
        for cut in 0..text.len() {
            assert_eq!(count(&[&text[..cut], &text[cut..]]), 4, "cut at {cut}");
        }
        // An extra row appended without its line end still counts.
        assert_eq!(count(&[text, b"4,x"]), 5);
        assert_eq!(count(&[b""]), 0);
    }

    #[test]
    fn gzip_members_are_all_counted() {
        let gz = |s: &[u8]| {
            let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            e.write_all(s).unwrap();
            e.finish().unwrap()
        };
        let mut bytes = gz(b"h\n1\n2\n");
        bytes.extend(gz(b"3\n"));
        let mut c = RowCounter::new(OutputFormat::CsvGz);
        for piece in bytes.chunks(5) {
            c.feed(piece).unwrap();
        }
        assert_eq!(c.finish().unwrap(), Some(4));
        let mut bad = RowCounter::new(OutputFormat::CsvGz);
        assert!(bad.feed(b"not gzip at all").is_err() || bad.finish().is_err());
    }
}
