//! Throughput of the CSV transform alone (and of gzip, for scale), on ~200 MB of synthetic
//! PostgreSQL CSV fed one row at a time, as COPY delivers it. A measurement, not a check:
//!
//! cargo test -p pgfleet-worker --release --test it -- transform_throughput --ignored --nocapture

use bytes::BytesMut;
use protocol::{OutputFormat, Transform};
use std::time::Instant;
use worker::encode::Encoder;
use worker::transform::CsvTransformer;

const TARGET_BYTES: usize = 200 * 1000 * 1000;

/// Rows like a typical table: an id, short text, a quoted value with a comma and a doubled
/// quote, a NULL, an empty string, a timestamp and a longer text. Returns data + row ends.
fn synthetic() -> (Vec<u8>, Vec<usize>) {
    let mut data = Vec::with_capacity(TARGET_BYTES + 1024);
    let mut ends = Vec::new();
    let mut i: u64 = 0;
    while data.len() < TARGET_BYTES {
        i += 1;
        let row = format!(
            "{i},user{},\"Smith, \"\"J\"\"\",,\"\",2024-01-{:02} 12:34:56+00,lorem ipsum dolor sit amet {}\n",
            i % 9973,
            1 + i % 28,
            i.wrapping_mul(2654435761) % 1_000_000
        );
        data.extend_from_slice(row.as_bytes());
        ends.push(data.len());
    }
    (data, ends)
}

fn measure(name: &str, prefixes: &[Option<&str>], data: &[u8], ends: &[usize]) -> f64 {
    let transforms: Vec<Option<Transform>> = prefixes
        .iter()
        .map(|p| {
            p.map(|v| Transform::Prefix {
                value: v.to_string(),
            })
        })
        .collect();
    let mut best = f64::MAX;
    for _ in 0..3 {
        let mut t = CsvTransformer::new(transforms.iter().map(Option::as_ref));
        let mut out = BytesMut::with_capacity(16 << 20);
        let started = Instant::now();
        let mut start = 0;
        for &end in ends {
            t.feed(&data[start..end], &mut out);
            start = end;
            if out.len() > 8 << 20 {
                out.clear();
            }
        }
        let secs = started.elapsed().as_secs_f64();
        assert_eq!(t.finish(), Ok(ends.len() as u64));
        best = best.min(secs);
    }
    let mbps = data.len() as f64 / 1e6 / best;
    println!(
        "{name:<28} {mbps:>8.0} MB/s  ({} MB, {} rows)",
        data.len() / 1_000_000,
        ends.len()
    );
    mbps
}

#[test]
#[ignore = "measurement; run in release mode with --ignored --nocapture"]
fn transform_throughput() {
    let (data, ends) = synthetic();
    let x = Some("x-");
    measure("no transform (bulk copy)", &[None; 7], &data, &ends);
    measure(
        "prefix on 2 of 7 columns",
        &[None, x, None, None, None, None, x],
        &data,
        &ends,
    );
    let all = measure("prefix on every column", &[x; 7], &data, &ends);
    measure(
        "prefix needing quotes, all",
        &[Some("a,\"b"); 7],
        &data,
        &ends,
    );
    assert!(all > 0.0);

    // For scale: gzip level 6 on the same bytes, in 1 MiB batches.
    let started = Instant::now();
    let mut enc = Encoder::new(OutputFormat::CsvGz, 6, 8 << 20);
    let mut compressed = 0;
    for chunk in data.chunks(1 << 20) {
        enc.input().extend_from_slice(chunk);
        enc.encode().unwrap();
        while let Some(p) = enc.next_part() {
            compressed += p.len();
        }
    }
    compressed += enc.finish().unwrap().iter().map(|p| p.len()).sum::<usize>();
    let secs = started.elapsed().as_secs_f64();
    println!(
        "{:<28} {:>8.0} MB/s  (ratio {:.2})",
        "gzip level 6 (for scale)",
        data.len() as f64 / 1e6 / secs,
        compressed as f64 / data.len() as f64
    );
}
