//! Encoders between the CSV byte stream and the object: plain CSV or one continuous gzip
//! stream, cut into part-sized pieces so the sink can upload while the source keeps streaming.
//!
//! Callers append CSV to `input()`, call `encode()`, and take `next_part()` while one is ready.
//! For plain CSV `input()` *is* the output buffer, so nothing is copied twice.

use bytes::{BufMut, Bytes, BytesMut};
use flate2::write::GzEncoder;
use flate2::Compression;
use protocol::OutputFormat;
use std::io::{self, Write};

pub struct Encoder {
    kind: Kind,
    part_size: usize,
}

enum Kind {
    Plain {
        out: BytesMut,
    },
    Gzip {
        /// Uncompressed CSV waiting for `encode()`.
        staging: BytesMut,
        /// Writes compressed bytes into its inner `BytesMut`, from which parts are cut.
        /// Boxed: the compressor state is large and this enum lives per chunk.
        gz: Box<GzEncoder<bytes::buf::Writer<BytesMut>>>,
    },
}

impl Encoder {
    pub fn new(format: OutputFormat, gzip_level: u32, part_size: u64) -> Self {
        // A part never exceeds what fits in memory; clamp to something addressable.
        let part_size = usize::try_from(part_size.max(1)).unwrap_or(usize::MAX);
        let initial = part_size.saturating_add(64 * 1024).min(64 << 20);
        let kind = match format {
            // rds-parquet never reaches this encoder: export::encoder routes it to its own.
            OutputFormat::Csv | OutputFormat::RdsParquet => Kind::Plain {
                out: BytesMut::with_capacity(initial),
            },
            OutputFormat::CsvGz => Kind::Gzip {
                staging: BytesMut::with_capacity(1 << 20),
                gz: Box::new(GzEncoder::new(
                    BytesMut::with_capacity(initial).writer(),
                    Compression::new(gzip_level.min(9)),
                )),
            },
        };
        Self { kind, part_size }
    }

    /// Where to append uncompressed CSV.
    pub fn input(&mut self) -> &mut BytesMut {
        match &mut self.kind {
            Kind::Plain { out } => out,
            Kind::Gzip { staging, .. } => staging,
        }
    }

    /// Encode what was appended to `input()`.
    pub fn encode(&mut self) -> io::Result<()> {
        if let Kind::Gzip { staging, gz } = &mut self.kind {
            gz.write_all(staging)?;
            staging.clear();
        }
        Ok(())
    }

    /// A full part, if the encoded output has reached the part size.
    pub fn next_part(&mut self) -> Option<Bytes> {
        let part_size = self.part_size;
        let out = self.output();
        if out.len() < part_size {
            return None;
        }
        let part = out.split_to(part_size).freeze();
        // One allocation per part for the rest, instead of regrowing from small.
        out.reserve(part_size);
        Some(part)
    }

    /// Flush the encoder and return the remaining output as parts (the last may be smaller;
    /// none if the object is empty).
    pub fn finish(mut self) -> io::Result<Vec<Bytes>> {
        self.encode()?;
        let part_size = self.part_size;
        let mut rest = match self.kind {
            Kind::Plain { out } => out,
            Kind::Gzip { gz, .. } => gz.finish()?.into_inner(),
        };
        let mut parts = Vec::new();
        while rest.len() > part_size {
            parts.push(rest.split_to(part_size).freeze());
        }
        if !rest.is_empty() {
            parts.push(rest.freeze());
        }
        Ok(parts)
    }

    fn output(&mut self) -> &mut BytesMut {
        match &mut self.kind {
            Kind::Plain { out } => out,
            Kind::Gzip { gz, .. } => gz.get_mut().get_mut(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use flate2::read::MultiGzDecoder;
    use std::io::Read;

    fn run(format: OutputFormat, part_size: u64, chunks: &[&[u8]]) -> Vec<Bytes> {
        let mut enc = Encoder::new(format, 6, part_size);
        let mut parts = Vec::new();
        for c in chunks {
            enc.input().extend_from_slice(c);
            enc.encode().unwrap();
            while let Some(p) = enc.next_part() {
                parts.push(p);
            }
        }
        parts.extend(enc.finish().unwrap());
        parts
    }

    fn data() -> Vec<u8> {
        (0..20_000u32)
            .map(|i| format!("{i},value-{}\n", i.wrapping_mul(2654435761)))
            .collect::<String>()
            .into_bytes()
    }

    #[test]
    fn plain_parts_are_exact_and_concatenate() {
        let d = data();
        let chunks: Vec<&[u8]> = d.chunks(777).collect();
        let parts = run(OutputFormat::Csv, 10_000, &chunks);
        assert!(parts.len() > 2);
        for p in &parts[..parts.len() - 1] {
            assert_eq!(p.len(), 10_000);
        }
        assert!(parts.last().unwrap().len() <= 10_000);
        assert_eq!(parts.concat(), d);
    }

    #[test]
    fn gzip_is_one_stream_across_parts() {
        let d = data();
        let chunks: Vec<&[u8]> = d.chunks(4096).collect();
        let parts = run(OutputFormat::CsvGz, 4096, &chunks);
        assert!(parts.len() > 2, "{} parts", parts.len());
        for p in &parts[..parts.len() - 1] {
            assert_eq!(p.len(), 4096);
        }
        let all = parts.concat();
        // A single member: the plain (non-multi) decoder reads everything.
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(&all[..])
            .read_to_end(&mut out)
            .unwrap();
        assert_eq!(out, d);
        let mut again = Vec::new();
        MultiGzDecoder::new(&all[..])
            .read_to_end(&mut again)
            .unwrap();
        assert_eq!(again, d);
    }

    #[test]
    fn empty_input() {
        assert!(run(OutputFormat::Csv, 100, &[]).is_empty());
        let gz = run(OutputFormat::CsvGz, 100, &[]).concat();
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(&gz[..])
            .read_to_end(&mut out)
            .unwrap();
        assert!(out.is_empty());
    }
}
