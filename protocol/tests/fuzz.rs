//! Bounded, reproducible fuzzing of the protocol's parsers on stable Rust (proptest, fixed
//! seed, no failure files): the job-spec parser (`JobSpec::from_toml`, `ByteSize::parse`) and
//! the message decoder (`TaskEnvelope::decode`, `ResultEnvelope::decode`).
//!
//! For each: arbitrary input never panics; mutations of valid inputs never panic; every error
//! is clear one-line text of bounded length; valid values round-trip.
//!
//! Cases per property default to a few thousand and can be changed with `PROPTEST_CASES`; the
//! seed is fixed (override with `PROPTEST_RNG_SEED`), so a failure reproduces on every run.
//!
//! The worker's decode path (`worker/src/consumer.rs`, `handle`) is a direct call of
//! `TaskEnvelope::decode`: an `Err` is logged with its `Display` and the delivery rejected to
//! the dead-letter queue, so what is checked here is what the worker sees.
//!
//! The strategies and mutations are pgfleet-tests' shared ones (`tests/support/strategies.rs`).

use pgfleet_tests::strategies::{
    apply, assert_one_line, config, edits, evil_value, json_mutation, mutate,
};
use proptest::prelude::*;
use protocol::message::{DecodeError, MAX_DECODE_ERROR_CHARS};
use protocol::size::ByteSize;
use protocol::spec::MAX_PROBLEM_CHARS;
use protocol::*;
use serde_json::{json, Value};

/// This file's fixed proptest seed.
const SEED: u64 = 0x7067_666c_6565_7431;

const EXPORT_TOML: &str = include_str!("../../deploy/examples/export.toml");
const RESTORE_TOML: &str = include_str!("../../deploy/examples/restore.toml");

/// The example with its documented, commented-out prefix transform switched on.
fn export_toml_with_prefix() -> String {
    let block = "# [[transform]]\n# columns = \"*\"\n# prefix = \"x-\"\n";
    assert!(
        EXPORT_TOML.contains(block),
        "the example's prefix transform"
    );
    EXPORT_TOML.replace(block, &block.replace("# ", ""))
}

// ---------------------------------------------------------------------------------------------
// What a clear error looks like.

/// The job-spec rule (see `JobSpec::from_toml`): one problem per line, each line clear and
/// bounded, none reported twice.
fn assert_spec_error(msg: &str) {
    assert!(!msg.is_empty(), "empty job-spec error");
    let mut seen = std::collections::HashSet::new();
    for line in msg.split('\n') {
        assert_one_line("job spec", line, MAX_PROBLEM_CHARS);
        assert!(seen.insert(line), "reported twice: {line:?} in {msg:?}");
    }
}

fn assert_decode_error(e: &DecodeError) {
    assert_one_line("decode", &format!("{e}"), MAX_DECODE_ERROR_CHARS);
}

fn spec(text: &str) -> Option<JobSpec> {
    match JobSpec::from_toml(text) {
        Ok(s) => Some(s),
        Err(e) => {
            assert_spec_error(&e);
            None
        }
    }
}

fn decode_both(body: &[u8]) {
    if let Err(e) = TaskEnvelope::decode(body) {
        assert_decode_error(&e);
    }
    if let Err(e) = ResultEnvelope::decode(body) {
        assert_decode_error(&e);
    }
}

const TOML_PIECES: &[&str] = &[
    "[",
    "]",
    "[[",
    "]]",
    "{",
    "}",
    "\"",
    "'",
    "'''",
    "\"\"\"",
    "=",
    ",",
    ".",
    "#",
    "\n",
    "\r\n",
    "\\",
    "\\u",
    "\\U0010FFFF",
    "\u{0}",
    "\u{feff}",
    "é",
    "\u{202e}",
    "-1",
    "0",
    "-0",
    "1.5",
    "1e400",
    "nan",
    "-inf",
    "0x7fffffffffffffff",
    "9223372036854775807",
    "-9223372036854775808",
    "99999999999999999999999",
    "true",
    "1979-05-27T07:32:00Z",
    "\"18446744073709551616\"",
    "\"99999999999999999999999GiB\"",
    "\"17179869184GiB\"",
    "\"-5MiB\"",
    "\"1e30\"",
    "\"5 parsecs\"",
    "\"\"",
    "\"...\"",
    "\"1.5.5MiB\"",
    "\"_\"",
    "\"\u{0663}MiB\"",
    "\"５MiB\"",
    "[[transform]]\ncolumns = 7\nprefix = \"\"\n",
    "[[transform]]\ncolumns = [\"a\"]\nprefix = \"p\"\n",
    "[[transform]]\n",
    "kind = \"restore\"\n",
    "kind = \"export\"\n",
    "[output]\n",
    "[source]\n",
    "[tables]\nkeys = { \"a.b.c\" = \"x\" }\n",
    "include = [\"a.b.c\", '\"x', '\"\"']\n",
    "part_size",
    "bytes_per_chunk",
    "rows_per_chunk",
    "max_in_flight",
    "url",
    "include",
    "s3 = { endpoint = 1 }",
    "format = \"rds-parquet\"",
    "password=x",
    "postgresql://u:pw@h/db",
    "s3://",
    "file://relative",
    "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[",
    "{a={a={a={a={a={a={a={a={a={a={a={a={a={a={a={a=1}}}}}}}}}}}}}}}}",
];

const JSON_PIECES: &[&str] = &[
    "{",
    "}",
    "[",
    "]",
    "\"",
    ":",
    ",",
    "\\",
    "\\u",
    "\\ud800",
    "\\udc00",
    "\\u0000",
    "\\n",
    "null",
    "true",
    "-",
    "-1",
    "0",
    "1e400",
    "-1e400",
    "1.5",
    "18446744073709551616",
    "-9223372036854775809",
    "4294967296",
    "\"version\":2,",
    "\"version\":\"1\",",
    "\u{0}",
    "\u{feff}",
    "é",
    "\"type\":\"nope\"",
    "\"type\":\"restore_file\"",
    "\"status\":\"odd\"",
    "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[",
    "{\"a\":{\"a\":{\"a\":{\"a\":{\"a\":{\"a\":{",
];

// ---------------------------------------------------------------------------------------------
// Job specs.

/// The value of every `key = value` line of `text` (outside comments) replaced by each evil
/// value in turn.
fn value_mutations(text: &str) -> Vec<String> {
    const EVIL: &[&str] = &[
        "-1",
        "0",
        "9223372036854775807",
        "-9223372036854775808",
        "99999999999999999999999",
        "1.5",
        "1e400",
        "nan",
        "true",
        "\"\"",
        "\" \"",
        "\"\\n\"",
        "\"a\\nb\"",
        "\"-5MiB\"",
        "\"18446744073709551615\"",
        "\"18446744073709551616\"",
        "\"99999999999999999999999GiB\"",
        "\"17179869184GiB\"",
        "\"1.5.5\"",
        "\"é\"",
        "[]",
        "[1, \"a\"]",
        "[\"a.b.c\"]",
        "['\"unterminated']",
        "{}",
        "{ x = 1 }",
        "1979-05-27",
        "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]",
    ];
    let long = format!("\"{}\"", "x\\n".repeat(5000));
    let lines: Vec<&str> = text.lines().collect();
    let mut out = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        let Some((key, _)) = line.split_once(" = ") else {
            continue;
        };
        if key.trim_start().starts_with('#') {
            continue;
        }
        for evil in EVIL.iter().copied().chain([long.as_str()]) {
            let mut l = lines.clone();
            let replaced = format!("{key} = {evil}");
            l[i] = &replaced;
            out.push(l.join("\n"));
        }
    }
    out
}

#[test]
fn examples_parse_and_round_trip() {
    for text in [EXPORT_TOML, RESTORE_TOML] {
        let parsed = JobSpec::from_toml(text).unwrap();
        let again = toml::to_string(&parsed).unwrap();
        assert_eq!(JobSpec::from_toml(&again).unwrap(), parsed, "{again}");
        // The coordinator's state store keeps specs as JSON.
        let json = serde_json::to_value(&parsed).unwrap();
        assert_eq!(serde_json::from_value::<JobSpec>(json).unwrap(), parsed);
    }
}

#[test]
fn spec_truncated_at_every_position() {
    let mut errors = 0;
    for text in [EXPORT_TOML, RESTORE_TOML] {
        for (i, _) in text.char_indices() {
            if spec(&text[..i]).is_none() {
                errors += 1;
            }
        }
    }
    // Most prefixes are incomplete specs: the check above really saw errors.
    assert!(errors > 1000, "{errors}");
}

#[test]
fn spec_every_value_replaced_by_bad_values() {
    let mut errors = 0;
    let mut total = 0;
    for text in [EXPORT_TOML, RESTORE_TOML] {
        for mutated in value_mutations(text) {
            total += 1;
            if spec(&mutated).is_none() {
                errors += 1;
            }
        }
    }
    assert!(total > 300 && errors > total / 2, "{errors} of {total}");
}

#[test]
fn spec_deep_nesting_is_an_error_not_a_stack_overflow() {
    for depth in [100, 1_000, 100_000] {
        let arrays = format!(
            "{}\n[chunking]\nx = {}{}\n",
            EXPORT_TOML.replace("[chunking]", "[c0]"),
            "[".repeat(depth),
            "]".repeat(depth)
        );
        assert!(spec(&arrays).is_none());
        let tables = format!("x = {}1{}", "{a=".repeat(depth), "}".repeat(depth));
        assert!(spec(&tables).is_none());
        let dotted = format!("{} = 1", vec!["a"; depth].join("."));
        assert!(spec(&dotted).is_none());
    }
}

#[test]
fn spec_errors_name_the_problem() {
    let with = |from: &str, to: &str| {
        assert!(EXPORT_TOML.contains(from), "{from}");
        JobSpec::from_toml(&EXPORT_TOML.replacen(from, to, 1)).unwrap_err()
    };
    // Overflow is an error, not a silent clamp to u64::MAX.
    let e = with(
        "part_size = \"16MiB\"",
        "part_size = \"99999999999999999999999GiB\"",
    );
    assert!(e.contains("too large"), "{e}");
    let e = with("part_size = \"16MiB\"", "part_size = \"17179869184GiB\"");
    assert!(e.contains("too large"), "{e}");
    let e = with("part_size = \"16MiB\"", "part_size = -5");
    assert!(e.contains("negative"), "{e}");
    assert_eq!(
        e,
        "line 28, column 13: output.part_size: size -5 is negative"
    );
    let e = with("max_in_flight = 4", "max_in_flight = \"four\"");
    assert!(
        e.starts_with("line 13, column 17: source.max_in_flight: invalid type: string"),
        "{e}"
    );
    let e = with("kind = \"export\"", "kind = \"exprot\"");
    assert_eq!(
        e,
        "line 4, column 8: kind: expected \"export\" or \"restore\", not \"exprot\""
    );
    // The TOML parser's own message is a multi-line snippet: ours is one line with the place.
    let e = with("[tables]", "[tables");
    assert!(
        e.starts_with("line 16, column ") && !e.contains('\n'),
        "{e}"
    );
    let e = with("max_in_flight", "max_inflight");
    assert!(
        e.contains("unknown field `max_inflight`") && e.starts_with("line 13, "),
        "{e}"
    );
    let prefixed = export_toml_with_prefix();
    let e =
        JobSpec::from_toml(&prefixed.replacen("columns = \"*\"", "columns = 5", 1)).unwrap_err();
    assert_eq!(
        e,
        "line 36, column 11: transform[0].columns: invalid type: integer `5`, expected \"*\" or a list of column names"
    );
    let e = with("snapshot = \"per-chunk\"", "snapshot = \"a\\nb\"");
    assert!(e.contains("unknown variant `a\\nb`"), "{e}");
    let e = with("[tables]", "[tables");
    assert_eq!(
        e,
        "line 16, column 8: invalid table header; expected `.`, `]`"
    );
    let e = with("kind = \"export\"", "");
    assert_eq!(
        e,
        "kind: missing; write kind = \"export\" or kind = \"restore\""
    );
    let e = JobSpec::from_toml("kind = 5").unwrap_err();
    assert!(e.ends_with("not a TOML integer"), "{e}");
    // A long bad value is echoed clipped.
    let long = format!("s3x://{}", "y".repeat(10_000));
    let e = with("s3://my-bucket/exports/2026-11-21/", &long);
    assert!(
        e.contains("output.url") && e.contains('…') && e.len() < 300,
        "{e}"
    );
    // Several problems: one line each.
    let e = JobSpec::from_toml(
        &EXPORT_TOML
            .replace("max_in_flight = 4", "max_in_flight = 0")
            .replace("parts_in_flight = 2", "parts_in_flight = 0")
            .replace("\"public.audit_*\"", "\"a.\\nb.c\""),
    )
    .unwrap_err();
    assert_eq!(e.lines().count(), 3, "{e}");
    assert_spec_error(&e);
}

#[test]
fn byte_sizes_are_exact_and_never_overflow() {
    assert_eq!(ByteSize::parse("18446744073709551615").unwrap().0, u64::MAX);
    assert_eq!(
        ByteSize::parse("9007199254740993").unwrap().0,
        9_007_199_254_740_993
    );
    assert!(ByteSize::parse("18446744073709551616").is_err());
    assert!(ByteSize::parse("17179869184GiB").is_err());
    assert!(ByteSize::parse("16000000000GiB").unwrap().0 > 0);
    assert!(ByteSize::parse("1e30").is_err());
    assert!(ByteSize::parse("99999999999999999999.5GiB").is_err());
    assert!(ByteSize::parse("-5MiB").is_err());
    assert!(ByteSize::parse("").is_err());
    assert!(ByteSize::parse(".").is_err());
    assert_eq!(ByteSize::parse("0.5KiB").unwrap().0, 512);
}

proptest! {
    #![proptest_config(config(3000, SEED))]

    #[test]
    fn spec_arbitrary_text_never_panics(text in any::<String>()) {
        spec(&text);
    }

    #[test]
    fn spec_arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        spec(&String::from_utf8_lossy(&bytes));
    }

    #[test]
    fn spec_mutated_examples_never_panic(
        restore in any::<bool>(),
        edits in edits(TOML_PIECES),
    ) {
        let mut bytes = if restore { RESTORE_TOML } else { EXPORT_TOML }.as_bytes().to_vec();
        for e in &edits {
            apply(&mut bytes, e);
        }
        spec(&String::from_utf8_lossy(&bytes));
    }

    #[test]
    fn byte_size_never_panics_and_errors_are_one_line(text in any::<String>()) {
        if let Err(e) = ByteSize::parse(&text) {
            assert_one_line("size", &e, 300);
        }
    }

    #[test]
    fn byte_size_round_trips(n in any::<u64>(), unit in proptest::sample::select(
        &[("", 1u64), ("B", 1), ("KiB", 1024), ("kb", 1000), ("MiB", 1 << 20), ("GB", 1_000_000_000),
          ("GiB", 1 << 30)][..])) {
        prop_assert_eq!(ByteSize::parse(&n.to_string()).unwrap(), ByteSize(n));
        prop_assert_eq!(ByteSize::parse(&ByteSize(n).to_string()).unwrap(), ByteSize(n));
        let text = format!("{n} {}", unit.0);
        match n.checked_mul(unit.1) {
            Some(b) => prop_assert_eq!(ByteSize::parse(&text).unwrap(), ByteSize(b)),
            None => prop_assert!(ByteSize::parse(&text).unwrap_err().contains("too large")),
        }
    }

    #[test]
    fn export_specs_round_trip(
        name in "\\PC{1,40}",
        max_in_flight in 1u32..,
        rows in 1u64..=(i64::MAX as u64),
        part_mib in 5u64..=5120,
        level in 0u32..=9,
        prefix in any::<String>(),
        include in proptest::collection::vec("[a-z_]{1,10}\\.[a-z_*?]{1,10}", 1..4),
    ) {
        let Some(JobSpec::Export(mut e)) = spec(&export_toml_with_prefix()) else { unreachable!() };
        prop_assume!(!name.trim().is_empty());
        e.name = name;
        e.source.max_in_flight = max_in_flight;
        e.chunking.rows_per_chunk = Some(rows);
        e.output.part_size = ByteSize(part_mib << 20);
        e.output.gzip_level = level;
        e.transforms[0].prefix = prefix;
        e.tables.include = include;
        let parsed = JobSpec::Export(e);
        let text = toml::to_string(&parsed).unwrap();
        prop_assert_eq!(JobSpec::from_toml(&text).unwrap(), parsed);
    }
}

// ---------------------------------------------------------------------------------------------
// Messages.

fn opt<T: std::fmt::Debug + Clone>(
    s: impl Strategy<Value = T>,
) -> impl Strategy<Value = Option<T>> {
    proptest::option::of(s)
}

fn pg_conn() -> impl Strategy<Value = PgConn> {
    (
        opt(any::<String>()),
        opt(any::<String>()),
        any::<String>(),
        opt(any::<String>()),
        any::<bool>(),
    )
        .prop_map(
            |(url, password_env, application_name, statement_timeout, read_only)| PgConn {
                url,
                password_env,
                application_name,
                statement_timeout,
                read_only,
            },
        )
}

fn location() -> impl Strategy<Value = ObjectLocation> {
    prop_oneof![
        (any::<String>(), any::<String>())
            .prop_map(|(bucket, prefix)| ObjectLocation::S3 { bucket, prefix }),
        any::<String>().prop_map(|root| ObjectLocation::File { root }),
    ]
}

fn s3_options() -> impl Strategy<Value = S3Options> {
    (
        opt(any::<String>()),
        opt(any::<String>()),
        any::<bool>(),
        any::<bool>(),
    )
        .prop_map(
            |(endpoint, region, force_path_style, checksums)| S3Options {
                endpoint,
                region,
                force_path_style,
                checksums,
            },
        )
}

fn table() -> impl Strategy<Value = QualifiedName> {
    (any::<String>(), any::<String>()).prop_map(|(s, n)| QualifiedName::new(s, n))
}

fn export_chunk() -> impl Strategy<Value = Task> {
    let column = (
        any::<String>(),
        opt(any::<String>().prop_map(|value| Transform::Prefix { value })),
        opt((
            any::<String>(),
            any::<String>(),
            opt(any::<i32>()),
            opt(any::<i32>()),
            opt(any::<i32>()),
        )
            .prop_map(|(typname, data_type, c, n, d)| ColumnType {
                typname,
                data_type,
                char_max_length: c,
                numeric_precision: n,
                datetime_precision: d,
            })),
    )
        .prop_map(|(name, transform, pg_type)| ColumnExport {
            name,
            transform,
            pg_type,
        });
    let range = prop_oneof![
        Just(ChunkRange::All),
        (any::<String>(), opt(any::<i64>()), opt(any::<i64>()))
            .prop_map(|(column, lo, hi)| ChunkRange::Key { column, lo, hi }),
        any::<String>().prop_map(|column| ChunkRange::KeyIsNull { column }),
        (opt(any::<u32>()), opt(any::<u32>())).prop_map(|(lo, hi)| ChunkRange::Pages { lo, hi }),
    ];
    let output = (
        location(),
        any::<String>(),
        proptest::sample::select(
            &[
                OutputFormat::Csv,
                OutputFormat::CsvGz,
                OutputFormat::RdsParquet,
            ][..],
        ),
        any::<u32>(),
        any::<u64>(),
        any::<u32>(),
        s3_options(),
    )
        .prop_map(
            |(location, key, format, gzip_level, part_size, parts_in_flight, s3)| OutputTarget {
                location,
                key,
                format,
                gzip_level,
                part_size,
                parts_in_flight,
                s3,
            },
        );
    (
        pg_conn(),
        opt(any::<String>()),
        table(),
        proptest::collection::vec(column, 0..4),
        range,
        output,
    )
        .prop_map(|(source, snapshot, table, columns, range, output)| {
            Task::ExportChunk(ExportChunk {
                source,
                snapshot,
                table,
                // Both serialized forms (the field is omitted when false).
                only: columns.len() % 2 == 0,
                columns,
                range,
                output,
            })
        })
}

fn restore_file() -> impl Strategy<Value = Task> {
    let column = (any::<String>(), any::<String>())
        .prop_map(|(source, target)| RestoreColumn { source, target });
    let object = (location(), any::<String>(), any::<u64>(), s3_options()).prop_map(
        |(location, key, size, s3)| ObjectRef {
            location,
            key,
            size,
            s3,
        },
    );
    (
        pg_conn(),
        table(),
        proptest::collection::vec(column, 0..4),
        object,
        opt((any::<u32>(), any::<u32>()).prop_map(|(start, end)| RowGroupRange { start, end })),
        (any::<String>(), any::<String>()).prop_map(|(export, piece)| LedgerKey { export, piece }),
        any::<u64>(),
    )
        .prop_map(
            |(target, table, columns, object, row_groups, ledger, expected_rows)| {
                Task::RestoreFile(RestoreFile {
                    target,
                    table,
                    columns,
                    object,
                    row_groups,
                    ledger,
                    expected_rows,
                    filter: None,
                })
            },
        )
}

fn task_envelope() -> impl Strategy<Value = TaskEnvelope> {
    (
        any::<String>(),
        any::<String>(),
        any::<u32>(),
        prop_oneof![export_chunk(), restore_file()],
    )
        .prop_map(|(task_id, job_id, attempt, task)| TaskEnvelope {
            version: MESSAGE_VERSION,
            task_id,
            job_id,
            attempt,
            task,
        })
}

fn result_envelope() -> impl Strategy<Value = ResultEnvelope> {
    let outcome = prop_oneof![
        (
            any::<u64>(),
            any::<u64>(),
            any::<String>(),
            any::<Option<u32>>(),
            any::<Option<(u64, u64)>>()
        )
            .prop_map(
                |(rows, bytes, key, crc32c, fingerprint)| Outcome::Succeeded {
                    rows,
                    bytes,
                    key,
                    proof: protocol::proof::PartProof {
                        crc32c,
                        fingerprint: fingerprint
                            .map(|(rows, sum)| protocol::proof::RowFingerprint { rows, sum }),
                    },
                }
            ),
        (any::<String>(), any::<bool>())
            .prop_map(|(error, retryable)| Outcome::Failed { error, retryable }),
    ];
    (
        any::<String>(),
        any::<String>(),
        any::<u32>(),
        any::<String>(),
        outcome,
    )
        .prop_map(
            |(task_id, job_id, attempt, worker, outcome)| ResultEnvelope {
                version: MESSAGE_VERSION,
                task_id,
                job_id,
                attempt,
                worker,
                outcome,
            },
        )
}

/// Values of the message format that [`evil_value`] adds to its generic ones.
fn message_values() -> Vec<Value> {
    vec![
        json!({"type": "nope"}),
        json!({"type": "restore_file"}),
        json!({"status": "failed"}),
        json!({"scheme": "gs"}),
        json!({"by": "key", "column": 1}),
    ]
}

#[test]
fn messages_truncated_at_every_position() {
    let task = TaskEnvelope {
        version: MESSAGE_VERSION,
        task_id: "j-1/0".into(),
        job_id: "j-1".into(),
        attempt: 1,
        task: Task::ExportChunk(ExportChunk {
            source: PgConn::default(),
            snapshot: Some("00000003-0000001B-1".into()),
            table: QualifiedName::new("public", "orders"),
            only: true,
            columns: vec![ColumnExport {
                name: "id".into(),
                transform: Some(Transform::Prefix { value: "x-".into() }),
                pg_type: None,
            }],
            range: ChunkRange::Key {
                column: "id".into(),
                lo: Some(-5),
                hi: Some(i64::MAX),
            },
            output: OutputTarget {
                location: ObjectLocation::parse("s3://b/p/").unwrap(),
                key: "public.orders/part-00000.csv.gz".into(),
                format: OutputFormat::CsvGz,
                gzip_level: 6,
                part_size: 8 << 20,
                parts_in_flight: 2,
                s3: S3Options::default(),
            },
        }),
    };
    let result = ResultEnvelope {
        version: MESSAGE_VERSION,
        task_id: "j-1/0".into(),
        job_id: "j-1".into(),
        attempt: 1,
        worker: "host-1:42".into(),
        outcome: Outcome::Failed {
            error: "relation \"orders\" does not exist".into(),
            retryable: false,
        },
    };
    for body in [task.encode(), result.encode()] {
        for i in 0..body.len() {
            let cut = &body[..i];
            assert!(TaskEnvelope::decode(cut).is_err());
            assert!(ResultEnvelope::decode(cut).is_err());
            decode_both(cut);
        }
    }
}

#[test]
fn deep_nesting_is_an_error_not_a_stack_overflow() {
    for depth in [127, 128, 129, 1_000, 1_000_000] {
        let open = "[".repeat(depth);
        let close = "]".repeat(depth);
        for body in [
            format!("{open}{close}"),
            open.clone(),
            format!("{{\"version\":{open}1{close}}}"),
            format!("{{\"version\":1,\"task\":{open}{close}}}"),
            format!(
                "{{\"version\":1,\"x\":{}1{}}}",
                "{\"a\":".repeat(depth),
                "}".repeat(depth)
            ),
        ] {
            assert!(TaskEnvelope::decode(body.as_bytes()).is_err());
            decode_both(body.as_bytes());
        }
    }
}

#[test]
fn decode_errors_say_what_is_wrong() {
    let e = TaskEnvelope::decode(b"{\"version\":1,\"task\":{\"type\":\"a\\nb\"}}").unwrap_err();
    assert!(matches!(e, DecodeError::Invalid(_)), "{e:?}");
    let text = e.to_string();
    assert!(
        text.contains("unknown variant") && !text.contains('\n'),
        "{text}"
    );
    let long = format!(
        "{{\"version\":1,\"task\":{{\"type\":\"{}\"}}}}",
        "y".repeat(100_000)
    );
    let text = TaskEnvelope::decode(long.as_bytes())
        .unwrap_err()
        .to_string();
    assert!(text.len() < 1000 && text.ends_with('…'), "{text}");
    assert!(matches!(
        TaskEnvelope::decode(b"{\"version\":1"),
        Err(DecodeError::Json(_))
    ));
    assert!(matches!(
        TaskEnvelope::decode(b"{\"version\":-1}"),
        Err(DecodeError::Invalid(_))
    ));
    assert!(matches!(
        TaskEnvelope::decode(b"{\"version\":1.0}"),
        Err(DecodeError::Invalid(_))
    ));
    assert!(matches!(
        TaskEnvelope::decode(b"{\"version\":null}"),
        Err(DecodeError::NoVersion)
    ));
    assert_eq!(
        ResultEnvelope::decode(b"{\"version\":18446744073709551615}"),
        Err(DecodeError::Version { found: u32::MAX })
    );
}

proptest! {
    #![proptest_config(config(3000, SEED))]

    #[test]
    fn decode_arbitrary_bytes_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        decode_both(&bytes);
    }

    #[test]
    fn decode_arbitrary_json_never_panics(
        v in evil_value(message_values()),
        version in evil_value(message_values()),
    ) {
        let mut doc = json!({"version": version, "task_id": v.clone(), "task": v.clone()});
        decode_both(&serde_json::to_vec(&doc).unwrap());
        doc["version"] = json!(MESSAGE_VERSION);
        decode_both(&serde_json::to_vec(&doc).unwrap());
        decode_both(&serde_json::to_vec(&v).unwrap());
    }

    #[test]
    fn task_messages_round_trip(t in task_envelope()) {
        prop_assert_eq!(TaskEnvelope::decode(&t.encode()).unwrap(), t);
    }

    #[test]
    fn result_messages_round_trip(r in result_envelope()) {
        prop_assert_eq!(ResultEnvelope::decode(&r.encode()).unwrap(), r);
    }

    #[test]
    fn other_versions_are_rejected_as_such(t in task_envelope(), version in any::<u64>()) {
        prop_assume!(version != u64::from(MESSAGE_VERSION));
        let mut v: Value = serde_json::from_slice(&t.encode()).unwrap();
        v["version"] = json!(version);
        let found = u32::try_from(version).unwrap_or(u32::MAX);
        prop_assert_eq!(
            TaskEnvelope::decode(&serde_json::to_vec(&v).unwrap()),
            Err(DecodeError::Version { found })
        );
    }

    #[test]
    fn mutated_task_messages_never_panic(
        t in task_envelope(),
        mutations in proptest::collection::vec(json_mutation(evil_value(message_values())), 1..4),
        edits in proptest::option::weighted(0.3, edits(JSON_PIECES)),
    ) {
        let mut v: Value = serde_json::from_slice(&t.encode()).unwrap();
        for (path, op) in &mutations {
            mutate(&mut v, path, op);
        }
        let mut body = serde_json::to_vec(&v).unwrap();
        for e in edits.iter().flatten() {
            apply(&mut body, e);
        }
        match TaskEnvelope::decode(&body) {
            // Whatever is accepted is a well-formed message that encodes and decodes again.
            Ok(ok) => prop_assert_eq!(TaskEnvelope::decode(&ok.encode()).unwrap(), ok),
            Err(e) => assert_decode_error(&e),
        }
    }

    #[test]
    fn mutated_result_messages_never_panic(
        r in result_envelope(),
        mutations in proptest::collection::vec(json_mutation(evil_value(message_values())), 1..4),
        edits in proptest::option::weighted(0.3, edits(JSON_PIECES)),
    ) {
        let mut v: Value = serde_json::from_slice(&r.encode()).unwrap();
        for (path, op) in &mutations {
            mutate(&mut v, path, op);
        }
        let mut body = serde_json::to_vec(&v).unwrap();
        for e in edits.iter().flatten() {
            apply(&mut body, e);
        }
        match ResultEnvelope::decode(&body) {
            Ok(ok) => prop_assert_eq!(ResultEnvelope::decode(&ok.encode()).unwrap(), ok),
            Err(e) => assert_decode_error(&e),
        }
    }
}
