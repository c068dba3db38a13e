//! The transformer against two independent oracles: a naive per-value reimplementation (exact
//! bytes) and the `csv` crate (values), with the input split at every possible place.

use super::*;
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};

type Row = Vec<Option<String>>;

/// Values PostgreSQL must quote, escape or leave alone, NULL and the empty string included.
const NASTY: &[Option<&str>] = &[
    None,
    Some(""),
    Some("plain"),
    Some("a,b"),
    Some("say \"hi\""),
    Some("\""),
    Some("\"\""),
    Some("line1\nline2"),
    Some("cr\rlf\r\n"),
    Some("tab\there"),
    Some("ünïcødé ✓ 日本語"),
    Some("\\."),
    Some("\\"),
    Some("."),
    Some(" lead"),
    Some("trail "),
    Some(","),
    Some("\n"),
    Some("x\"y,z\nw"),
    Some("NULL"),
];

/// How PostgreSQL's COPY TO (FORMAT csv) writes one value.
fn pg_field(out: &mut Vec<u8>, value: Option<&str>) {
    let Some(v) = value else { return };
    let quote = v.is_empty() || v == "\\." || v.bytes().any(|b| b",\"\r\n".contains(&b));
    write_field(out, v, quote);
}

fn write_field(out: &mut Vec<u8>, v: &str, quote: bool) {
    if quote {
        out.push(b'"');
        out.extend_from_slice(v.replace('"', "\"\"").as_bytes());
        out.push(b'"');
    } else {
        out.extend_from_slice(v.as_bytes());
    }
}

fn pg_csv(rows: &[Row]) -> Vec<u8> {
    let mut out = Vec::new();
    for row in rows {
        for (i, v) in row.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            pg_field(&mut out, v.as_deref());
        }
        out.push(b'\n');
    }
    out
}

/// The naive oracle: rebuild every value and apply the documented quoting rule (a value keeps
/// its quoting; a prefixed one is also quoted when the prefix needs it).
fn expected_bytes(rows: &[Row], prefixes: &[Option<&str>]) -> Vec<u8> {
    let mut out = Vec::new();
    for row in rows {
        for (i, v) in row.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            match (
                v,
                prefixes.get(i).copied().flatten().filter(|p| !p.is_empty()),
            ) {
                (None, _) => {}
                (Some(v), None) => pg_field(&mut out, Some(v)),
                (Some(v), Some(p)) => {
                    let was_quoted =
                        v.is_empty() || v == "\\." || v.bytes().any(|b| b",\"\r\n".contains(&b));
                    let prefix_quotes = p == "\\" || p.bytes().any(|b| b",\"\r\n".contains(&b));
                    write_field(&mut out, &format!("{p}{v}"), was_quoted || prefix_quotes);
                }
            }
        }
        out.push(b'\n');
    }
    out
}

fn transforms(prefixes: &[Option<&str>]) -> Vec<Option<Transform>> {
    prefixes
        .iter()
        .map(|p| {
            p.map(|v| Transform::Prefix {
                value: v.to_string(),
            })
        })
        .collect()
}

fn transformer(prefixes: &[Option<&str>]) -> CsvTransformer {
    let t = transforms(prefixes);
    CsvTransformer::new(t.iter().map(Option::as_ref))
}

/// Feed `input` in the given pieces and return (output, rows).
fn run(prefixes: &[Option<&str>], pieces: &[&[u8]]) -> (Vec<u8>, u64) {
    let mut t = transformer(prefixes);
    let mut out = BytesMut::new();
    for piece in pieces {
        t.feed(piece, &mut out);
    }
    let rows = t.finish().expect("input ends on a record boundary");
    (out.to_vec(), rows)
}

fn parse(bytes: &[u8]) -> Vec<Vec<String>> {
    csv::ReaderBuilder::new()
        .has_headers(false)
        .from_reader(bytes)
        .records()
        .map(|r| r.expect("valid CSV").iter().map(str::to_string).collect())
        .collect()
}

/// The `csv` crate's view: prefixed columns read back as prefix + value, NULL as empty (and so
/// distinct from "" which reads back as the bare prefix); other columns unchanged.
fn check_values(rows: &[Row], prefixes: &[Option<&str>], output: &[u8]) {
    let parsed = parse(output);
    assert_eq!(parsed.len(), rows.len());
    for (got, want) in parsed.iter().zip(rows) {
        assert_eq!(got.len(), want.len());
        for (i, (g, w)) in got.iter().zip(want).enumerate() {
            let p = prefixes.get(i).copied().flatten().unwrap_or("");
            match w {
                None => assert_eq!(g, "", "NULL must stay empty in column {i}"),
                Some(w) if p.is_empty() => assert_eq!(g, w),
                Some(w) => assert_eq!(g, &format!("{p}{w}")),
            }
        }
    }
}

/// Every row of a small table made of all nasty values, rotated across columns.
fn nasty_rows(columns: usize) -> Vec<Row> {
    (0..NASTY.len())
        .map(|r| {
            (0..columns)
                .map(|c| NASTY[(r + c * 3) % NASTY.len()].map(str::to_string))
                .collect()
        })
        .collect()
}

const CONFIGS: &[&[Option<&str>]] = &[
    &[Some("x-"), Some("x-"), Some("x-")],
    &[None, None, None],
    &[None, Some("x-"), None],
    &[Some("x-"), None, None],
    &[None, None, Some("pré-")],
    &[Some("a,\"b"), Some("\\"), Some("\n")],
    &[Some(""), Some("\""), None],
];

#[test]
fn oracle_agrees_with_csv_crate_on_input() {
    let rows = nasty_rows(3);
    let input = pg_csv(&rows);
    check_values(&rows, &[], &input);
}

#[test]
fn whole_input_matches_both_oracles() {
    let rows = nasty_rows(3);
    let input = pg_csv(&rows);
    for prefixes in CONFIGS {
        let (out, n) = run(prefixes, &[&input]);
        assert_eq!(n, rows.len() as u64);
        assert_eq!(
            String::from_utf8_lossy(&out),
            String::from_utf8_lossy(&expected_bytes(&rows, prefixes)),
            "prefixes {prefixes:?}"
        );
        check_values(&rows, prefixes, &out);
    }
}

#[test]
fn split_at_every_byte_boundary() {
    let rows = nasty_rows(3);
    let input = pg_csv(&rows);
    for prefixes in CONFIGS {
        let want = expected_bytes(&rows, prefixes);
        for cut in 0..=input.len() {
            let (out, n) = run(prefixes, &[&input[..cut], &input[cut..]]);
            assert_eq!(out, want, "prefixes {prefixes:?}, cut at {cut}");
            assert_eq!(n, rows.len() as u64);
        }
    }
}

#[test]
fn one_byte_at_a_time() {
    let rows = nasty_rows(4);
    let input = pg_csv(&rows);
    let pieces: Vec<&[u8]> = input.chunks(1).collect();
    for prefixes in CONFIGS {
        let (out, n) = run(prefixes, &pieces);
        assert_eq!(
            out,
            expected_bytes(&rows, prefixes),
            "prefixes {prefixes:?}"
        );
        assert_eq!(n, rows.len() as u64);
        check_values(&rows, prefixes, &out);
    }
}

#[test]
fn random_tables_random_splits() {
    let mut rng = StdRng::seed_from_u64(0x009f_1ee7);
    let alphabet: Vec<char> = "ab,\"\r\n\t\\. é✓".chars().collect();
    for round in 0..200 {
        let columns = rng.random_range(2..6);
        let rows: Vec<Row> = (0..rng.random_range(0..40))
            .map(|_| {
                (0..columns)
                    .map(|_| match rng.random_range(0..10) {
                        0 => None,
                        1 => Some(String::new()),
                        2 => Some("\\.".to_string()),
                        _ => Some(
                            (0..rng.random_range(1..12))
                                .map(|_| alphabet[rng.random_range(0..alphabet.len())])
                                .collect(),
                        ),
                    })
                    .collect()
            })
            .collect();
        let prefixes: Vec<Option<&str>> = (0..columns)
            .map(|_| match rng.random_range(0..4) {
                0 => None,
                1 => Some("x-"),
                2 => Some("q\"p,"),
                _ => Some("\\"),
            })
            .collect();
        let input = pg_csv(&rows);
        let mut pieces = Vec::new();
        let mut at = 0;
        while at < input.len() {
            let n = rng.random_range(1..=8.min(input.len() - at));
            pieces.push(&input[at..at + n]);
            at += n;
        }
        let (out, n) = run(&prefixes, &pieces);
        assert_eq!(n, rows.len() as u64, "round {round}");
        assert_eq!(out, expected_bytes(&rows, &prefixes), "round {round}");
        check_values(&rows, &prefixes, &out);
    }
}

#[test]
fn single_column_nulls_are_empty_lines() {
    let rows: Vec<Row> = vec![
        vec![None],
        vec![Some(String::new())],
        vec![Some("v".into())],
    ];
    let input = pg_csv(&rows);
    assert_eq!(input, b"\n\"\"\nv\n");
    let (out, n) = run(&[Some("p")], &[&input]);
    assert_eq!(out, b"\n\"p\"\npv\n");
    assert_eq!(n, 3);
    let (out, n) = run(&[None], &[&input]);
    assert_eq!(out, input);
    assert_eq!(n, 3);
}

#[test]
fn extra_columns_pass_through() {
    // More fields than configured columns: the extras have no transform.
    let (out, n) = run(&[Some("p")], &[b"a,b,\"c,d\"\n"]);
    assert_eq!(out, b"pa,b,\"c,d\"\n");
    assert_eq!(n, 1);
}

#[test]
fn truncated_stream_is_an_error() {
    for prefixes in [&[Some("p"), None][..], &[None, None][..]] {
        for input in [&b"a,b\nc"[..], b"a,\"b\n", b"a,", b"\"a\n"] {
            let mut t = transformer(prefixes);
            let mut out = BytesMut::new();
            t.feed(input, &mut out);
            assert!(t.finish().is_err(), "{prefixes:?} {input:?}");
        }
        let mut t = transformer(prefixes);
        t.feed(b"a,b\n", &mut BytesMut::new());
        assert_eq!(t.finish(), Ok(1));
    }
}

#[test]
fn garbage_never_panics() {
    let mut rng = StdRng::seed_from_u64(7);
    for _ in 0..500 {
        let input: Vec<u8> = (0..rng.random_range(0..64))
            .map(|_| b"a,\"\n\r\\"[rng.random_range(0..6)])
            .collect();
        let mut t = transformer(&[Some("p"), None, Some("\"")]);
        let mut out = BytesMut::new();
        t.feed(&input, &mut out);
        let _ = t.finish();
    }
}

#[test]
fn header_is_quoted_when_needed() {
    assert_eq!(header_row(["id", "name"]), b"id,name\n");
    assert_eq!(
        header_row(["a,b", "say \"x\"", "", "\\.", "é"]),
        "\"a,b\",\"say \"\"x\"\"\",\"\",\"\\.\",é\n".as_bytes()
    );
}
