//! Parquet footers read with ranged reads: the tail of the file (which holds the 8-byte
//! footer and, almost always, the whole metadata), then the rest of the metadata only if it is
//! longer. Never the whole file. Many footers are read concurrently. Parsing is parquet's
//! `ParquetMetaDataReader` over the fetched suffix (`try_parse_sized`, `NeedMoreData` when the
//! metadata is longer than the suffix); this module adds the limits and the two reads.

use bytes::{Bytes, BytesMut};
use fleet_io::clients::Clients;
use futures::stream::{self, StreamExt};
use parquet::errors::ParquetError;
use parquet::file::metadata::{FooterTail, ParquetMetaData, ParquetMetaDataReader};
use protocol::{ObjectLocation, S3Options};

/// Bytes read from the end of a file in the first request. Metadata of files written by Spark
/// or arrow-rs with a few dozen columns and row groups fits easily.
pub const TAIL_BYTES: u64 = 64 * 1024;

/// Footer reads in flight at once.
pub const CONCURRENCY: usize = 16;

/// Larger footer metadata is taken for corruption rather than fetched.
pub const MAX_METADATA_BYTES: u64 = 128 * 1024 * 1024;

/// Parquet's 4-byte length + `PAR1`.
const FOOTER_LEN: u64 = 8;
/// `PAR1` at the start plus the footer: the smallest possible Parquet file is longer.
const MIN_FILE_LEN: u64 = 12;

/// What the coordinator needs from a footer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Footer {
    /// Rows in each row group, in order.
    pub row_groups: Vec<u64>,
    /// Top-level field names, in schema order.
    pub fields: Vec<String>,
}

/// Why a footer could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FooterError {
    /// The bytes are not a readable Parquet footer.
    Corrupt(String),
    /// The object store failed (permissions, network, object gone).
    Read(String),
}

impl std::fmt::Display for FooterError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FooterError::Corrupt(m) => write!(f, "is corrupt or not Parquet: {m}"),
            FooterError::Read(m) => write!(f, "could not be read: {m}"),
        }
    }
}

/// The limits pgfleet puts on a footer, from the last 8 bytes of a file of `file_size` bytes:
/// a file long enough to be Parquet, no encryption, metadata of at most
/// [`MAX_METADATA_BYTES`] that fits in the file after its leading `PAR1`. Returns the length
/// of the Thrift-encoded metadata.
pub fn check_footer(last8: &[u8], file_size: u64) -> Result<u64, String> {
    if file_size < MIN_FILE_LEN {
        return Err(format!("{file_size} bytes is too short for a Parquet file"));
    }
    let tail = FooterTail::try_from(last8).map_err(|e| e.to_string())?;
    if tail.is_encrypted_footer() {
        return Err("encrypted footer (PARE): encrypted Parquet is not supported".into());
    }
    let len = tail.metadata_length() as u64;
    if len > MAX_METADATA_BYTES {
        return Err(format!(
            "footer says the metadata is {len} bytes, more than the {MAX_METADATA_BYTES} \
             accepted"
        ));
    }
    if len + FOOTER_LEN + 4 > file_size {
        return Err(format!(
            "footer says the metadata is {len} bytes, but the file is only {file_size} bytes"
        ));
    }
    Ok(len)
}

/// What we keep of decoded metadata.
fn footer_of(meta: &ParquetMetaData) -> Result<Footer, String> {
    let mut row_groups = Vec::with_capacity(meta.num_row_groups());
    for (i, rg) in meta.row_groups().iter().enumerate() {
        let n = u64::try_from(rg.num_rows())
            .map_err(|_| format!("row group {i} has {} rows", rg.num_rows()))?;
        row_groups.push(n);
    }
    let total: u64 = row_groups.iter().sum();
    let declared = meta.file_metadata().num_rows();
    if u64::try_from(declared).ok() != Some(total) {
        return Err(format!(
            "the footer declares {declared} rows but its row groups hold {total}"
        ));
    }
    let fields = meta
        .file_metadata()
        .schema_descr()
        .root_schema()
        .get_fields()
        .iter()
        .map(|f| f.name().to_string())
        .collect();
    Ok(Footer { row_groups, fields })
}

/// Decode a footer from `suffix`, the last `suffix.len()` bytes of a file of `file_size`
/// bytes. `Ok(Err(n))` means the metadata starts before the suffix: read the last `n` bytes of
/// the file and call again. Never panics, whatever the bytes.
pub fn decode_suffix(suffix: &Bytes, file_size: u64) -> Result<Result<Footer, u64>, String> {
    if (suffix.len() as u64) < FOOTER_LEN.min(file_size) || suffix.len() as u64 > file_size {
        return Err(format!(
            "read {} bytes of the tail of a {file_size}-byte file",
            suffix.len()
        ));
    }
    check_footer(&suffix[suffix.len() - FOOTER_LEN as usize..], file_size)?;
    // The decoder is not ours: a panic on hostile bytes must not take the coordinator down.
    let parsed = std::panic::catch_unwind(|| {
        let mut reader = ParquetMetaDataReader::new();
        reader.try_parse_sized(suffix, file_size)?;
        reader.finish()
    })
    .map_err(|_| "the Parquet metadata decoder panicked on these bytes".to_string())?;
    match parsed {
        Ok(meta) => footer_of(&meta).map(Ok),
        Err(ParquetError::NeedMoreData(n)) => Ok(Err(n as u64)),
        Err(e) => Err(e.to_string()),
    }
}

/// Read one footer with at most two ranged reads.
pub async fn read_footer(
    ctx: &Clients,
    root: &ObjectLocation,
    s3: &S3Options,
    key: &str,
    size: u64,
) -> Result<Footer, FooterError> {
    if size < MIN_FILE_LEN {
        return Err(FooterError::Corrupt(format!(
            "{size} bytes is too short for a Parquet file"
        )));
    }
    let tail_len = size.min(TAIL_BYTES);
    let tail: Bytes = fleet_io::objects::get_range(ctx, root, s3, key, size - tail_len..size)
        .await
        .map_err(|e| FooterError::Read(e.to_string()))?;
    if tail.len() as u64 != tail_len {
        return Err(FooterError::Read(format!(
            "asked for {tail_len} bytes at the end, got {} (did the object change since it was \
             listed?)",
            tail.len()
        )));
    }
    let needed = match decode_suffix(&tail, size).map_err(FooterError::Corrupt)? {
        Ok(footer) => return Ok(footer),
        Err(needed) => needed,
    };
    // `check_footer` bounded `needed` by the file size.
    let rest = size - needed..size - tail_len;
    let want = rest.end - rest.start;
    let head = fleet_io::objects::get_range(ctx, root, s3, key, rest)
        .await
        .map_err(|e| FooterError::Read(e.to_string()))?;
    if head.len() as u64 != want {
        return Err(FooterError::Read(format!(
            "asked for {want} bytes of metadata, got {}",
            head.len()
        )));
    }
    let mut suffix = BytesMut::with_capacity(head.len() + tail.len());
    suffix.extend_from_slice(&head);
    suffix.extend_from_slice(&tail);
    match decode_suffix(&suffix.freeze(), size).map_err(FooterError::Corrupt)? {
        Ok(footer) => Ok(footer),
        Err(more) => Err(FooterError::Corrupt(format!(
            "the metadata needs the last {more} bytes, more than the {needed} its footer says"
        ))),
    }
}

/// Read the footers of `files` (key, size), [`CONCURRENCY`] at a time. Results come back in
/// the order of `files`.
pub async fn read_footers(
    ctx: &Clients,
    root: &ObjectLocation,
    s3: &S3Options,
    files: &[(String, u64)],
) -> Vec<Result<Footer, FooterError>> {
    let mut out: Vec<(usize, Result<Footer, FooterError>)> = stream::iter(files.iter().enumerate())
        .map(|(i, (key, size))| async move { (i, read_footer(ctx, root, s3, key, *size).await) })
        .buffer_unordered(CONCURRENCY)
        .collect()
        .await;
    out.sort_by_key(|(i, _)| *i);
    out.into_iter().map(|(_, r)| r).collect()
}

/// How a file's fields differ from the expected column names (compared by name, in any
/// order). `None` when they agree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ColumnDiff {
    /// Expected but not in the file.
    pub missing: Vec<String>,
    /// In the file but not expected.
    pub extra: Vec<String>,
}

pub fn compare_columns(expected: &[String], fields: &[String]) -> Option<ColumnDiff> {
    let missing: Vec<String> = expected
        .iter()
        .filter(|c| !fields.contains(c))
        .cloned()
        .collect();
    let extra: Vec<String> = fields
        .iter()
        .filter(|f| !expected.contains(f))
        .cloned()
        .collect();
    (!missing.is_empty() || !extra.is_empty()).then_some(ColumnDiff { missing, extra })
}

impl std::fmt::Display for ColumnDiff {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let list = |v: &[String]| {
            v.iter()
                .map(|c| format!("{c:?}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        match (self.missing.is_empty(), self.extra.is_empty()) {
            (false, false) => write!(
                f,
                "missing {}; unexpected {}",
                list(&self.missing),
                list(&self.extra)
            ),
            (false, true) => write!(f, "missing {}", list(&self.missing)),
            _ => write!(f, "unexpected {}", list(&self.extra)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{ArrayRef, Int64Array, StringArray};
    use arrow::record_batch::RecordBatch;
    use parquet::arrow::ArrowWriter;
    use parquet::file::properties::WriterProperties;
    use std::sync::Arc;

    fn parquet_bytes(rows: i64, group: usize) -> Vec<u8> {
        let ids: ArrayRef = Arc::new(Int64Array::from_iter_values(0..rows));
        let names: ArrayRef = Arc::new(StringArray::from_iter_values(
            (0..rows).map(|i| format!("n{i}")),
        ));
        let batch = RecordBatch::try_from_iter([("id", ids), ("my name", names)]).unwrap();
        let props = WriterProperties::builder()
            .set_max_row_group_row_count(Some(group))
            .build();
        let mut buf = Vec::new();
        let mut w = ArrowWriter::try_new(&mut buf, batch.schema(), Some(props)).unwrap();
        w.write(&batch).unwrap();
        w.close().unwrap();
        buf
    }

    fn suffix(file: &[u8], n: usize) -> Bytes {
        Bytes::copy_from_slice(&file[file.len() - n..])
    }

    #[test]
    fn decodes_from_the_tail() {
        let file = parquet_bytes(25, 10);
        let size = file.len() as u64;
        let footer = decode_suffix(&Bytes::from(file.clone()), size)
            .unwrap()
            .unwrap();
        assert_eq!(footer.row_groups, vec![10, 10, 5]);
        assert_eq!(footer.fields, vec!["id".to_string(), "my name".to_string()]);

        // A tail too short for the metadata asks for more, then decodes the longer suffix.
        let needed = decode_suffix(&suffix(&file, 20), size)
            .unwrap()
            .unwrap_err();
        assert!(needed > 20 && needed < size, "{needed}");
        let again = decode_suffix(&suffix(&file, needed as usize), size).unwrap();
        assert_eq!(again.unwrap(), footer);
    }

    #[test]
    fn corrupt_files_are_errors() {
        let file = parquet_bytes(5, 10);
        let size = file.len() as u64;
        assert!(
            decode_suffix(&Bytes::from_static(b"not parquet at all"), 18)
                .unwrap_err()
                .contains("Corrupt footer")
        );
        assert!(check_footer(b"PAR1", 4).unwrap_err().contains("too short"));
        let mut huge = (u32::MAX).to_le_bytes().to_vec();
        huge.extend_from_slice(b"PAR1");
        assert!(check_footer(&huge, 1 << 40)
            .unwrap_err()
            .contains("accepted"));
        // A length pointing before the start of the file.
        let mut bad = file.clone();
        let n = bad.len();
        bad[n - 8..n - 4].copy_from_slice(&(n as u32).to_le_bytes());
        assert!(decode_suffix(&Bytes::from(bad), size)
            .unwrap_err()
            .contains("only"));
        // Garbage metadata with a valid trailer.
        let mut garbage = vec![0xffu8; 100];
        garbage.extend_from_slice(&50u32.to_le_bytes());
        garbage.extend_from_slice(b"PAR1");
        let len = garbage.len() as u64;
        assert!(decode_suffix(&Bytes::from(garbage), len).is_err());
        // Truncated file: the trailer is gone.
        assert!(decode_suffix(&Bytes::copy_from_slice(&file[..file.len() - 3]), size - 3).is_err());
        // Encrypted footers are refused by name.
        let mut pare = file.clone();
        pare[n - 4..].copy_from_slice(b"PARE");
        assert!(decode_suffix(&Bytes::from(pare), size)
            .unwrap_err()
            .contains("encrypted"));
    }

    #[test]
    fn compares_columns_by_name() {
        let s = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(compare_columns(&s(&["a", "b"]), &s(&["b", "a"])), None);
        let d = compare_columns(&s(&["a", "b"]), &s(&["a", "c"])).unwrap();
        assert_eq!(d.missing, s(&["b"]));
        assert_eq!(d.extra, s(&["c"]));
        assert_eq!(d.to_string(), "missing \"b\"; unexpected \"c\"");
    }
}
