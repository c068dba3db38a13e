//! Bounded, reproducible fuzzing of the RDS export metadata parser on stable Rust (proptest,
//! fixed seed, no failure files): `parse_export_info`, `parse_tables_info`, the file-name
//! parsers, and `assemble`, which turns their output (and the listing) into notes.
//!
//! For each: arbitrary bytes never panic; mutations of real-shaped documents (see
//! `docs/rds-export-format.md`) never panic; every error is one line of at most
//! [`MAX_ERROR_CHARS`] characters and every warning or problem one line of at most
//! [`MAX_NOTE_CHARS`]; and generated well-formed metadata, written in every tolerated spelling,
//! parses back to exactly the values it was generated from (the types have no encoder, so this
//! is the round trip).
//!
//! Cases per property default to a few thousand; `PROPTEST_CASES` overrides them and
//! `PROPTEST_RNG_SEED` the fixed seed. The strategies and mutations are pgfleet-tests' shared
//! ones (`tests/support/strategies.rs`).

use bytes::Bytes;
use coordinator::rds::metadata::*;
use coordinator::rds::{assemble, Notes, MAX_NOTE_CHARS};
use fleet_io::objects::ObjectInfo;
use pgfleet_tests::strategies::{
    apply, assert_one_line, config, edits, evil_value, json_mutation, mutate, spell,
};
use proptest::prelude::*;
use protocol::layout::rds::{export_info_id, is_tables_info, table_folder, tables_info_name};
use serde_json::{json, Map, Value};

/// This file's fixed proptest seed.
const SEED: u64 = 0x7264_735f_6d65_7461;

const INFO_KEY: &str = "export_info_shop-export.json";
const TABLES_KEY: &str = "export_tables_info_shop-export_from_1_to_3.json";

fn export_info_doc() -> Value {
    json!({
        "exportTaskIdentifier": "shop-export",
        "sourceArn": "arn:aws:rds:eu-west-1:123456789012:snapshot:rds:shop-2026-11-20",
        "exportOnly": ["shop"],
        "snapshotTime": "Nov 20, 2026 3:04:05 AM",
        "taskStartTime": "Nov 20, 2026 3:10:00 AM",
        "taskEndTime": "Nov 20, 2026 3:40:00 AM",
        "s3Bucket": "my-exports",
        "s3Prefix": "rds",
        "exportedFilesPath": "rds/shop-export",
        "iamRoleArn": "arn:aws:iam::123456789012:role/export",
        "kmsKeyId": "arn:aws:kms:eu-west-1:123456789012:key/0000",
        "status": "COMPLETE",
        "percentProgress": 100,
        "totalExportedDataInGB": 0.0421
    })
}

fn tables_info_doc() -> Value {
    json!({"perTableStatus": [
        {"warningMessage": "The database postgres has no tables", "target": "postgres"},
        {
            "tableStatistics": {"extractionStartTime": "x", "extractionEndTime": "y",
                                "partitioningInfo": {"numberOfPartitions": 1, "numberOfRows": 1200}},
            "schemaMetadata": {"originalTypeMappings": [
                {"columnName": "id", "originalType": "bigint", "expectedExportedType": "int64",
                 "originalCharMaxLength": 0, "originalNumPrecision": 64, "originalDateTimePrecision": 0},
                {"columnName": "name", "originalType": "character varying",
                 "expectedExportedType": "binary (UTF8)", "originalCharMaxLength": "255",
                 "originalNumPrecision": 0.0, "originalDateTimePrecision": 0},
                {"columnName": "tags", "originalType": "ARRAY", "expectedExportedType": "binary (UTF8)",
                 "originalCharMaxLength": 0, "originalNumPrecision": 0, "originalDateTimePrecision": 0}
            ]},
            "status": "COMPLETE", "sizeGB": 0.0123, "target": "shop.public.orders"
        },
        {
            "TableStatistics": {}, "SchemaMetadata": {"OriginalTypeMappings": [
                {"ColumnName": "k", "OriginalType": "USER-DEFINED", "ExpectedExportedType": "binary (UTF8)"}]},
            "Status": "COMPLETE", "SizeGB": "0", "Target": "shop.my.schema.odd table",
            "WarningMessage": "something was truncated"
        },
        {"tableStatistics": {}, "status": "FAILED", "target": "shop.public.skipped"}
    ]})
}

// ---------------------------------------------------------------------------------------------
// The rules.

fn assert_line(what: &str, msg: &str, max: usize) {
    assert_one_line(what, msg, max);
}

fn assert_notes(notes: &Notes) {
    for w in &notes.warnings {
        assert_line("warning", w, MAX_NOTE_CHARS);
    }
    for p in &notes.problems {
        assert_line("problem", p, MAX_NOTE_CHARS);
    }
}

/// Both parsers on one document; the rules checked on whatever comes out.
fn parse_both(key: &str, bytes: &[u8]) {
    let mut notes = Notes::default();
    if let Err(e) = parse_export_info(key, bytes, &mut notes) {
        assert_line("parse_export_info", &e, MAX_ERROR_CHARS);
    }
    if let Err(e) = parse_tables_info(key, bytes, &mut notes) {
        assert_line("parse_tables_info", &e, MAX_ERROR_CHARS);
    }
    assert_notes(&notes);
}

/// `assemble` over one export_info and one tables-info document (either may be unreadable),
/// with a listing holding a folder for every target it can find in the tables document.
fn assemble_checked(info: &[u8], tables: &[u8], tables_key: &str) {
    let mut listing = Vec::new();
    if let Ok(Value::Object(root)) = serde_json::from_slice::<Value>(tables) {
        if let Some(Value::Array(items)) = root.get("perTableStatus") {
            for t in items.iter().filter_map(|i| i.get("target")?.as_str()) {
                if let Some(rest) = t.strip_prefix("shop.") {
                    let folder = table_folder("shop", rest);
                    listing.push(ObjectInfo {
                        key: format!("{folder}1/part-00000-u-c000.gz.parquet"),
                        size: 10,
                    });
                    listing.push(ObjectInfo {
                        key: format!("{folder}1/_SUCCESS"),
                        size: 0,
                    });
                }
            }
        }
    }
    listing.push(ObjectInfo {
        key: "shop/stray\nobject".into(),
        size: 1,
    });
    let docs = vec![
        (INFO_KEY.to_string(), Ok(Bytes::copy_from_slice(info))),
        (tables_key.to_string(), Ok(Bytes::copy_from_slice(tables))),
    ];
    let inv = assemble("shop", &docs, &listing, true);
    for w in &inv.warnings {
        assert_line("assemble warning", w, MAX_NOTE_CHARS);
    }
    for p in &inv.problems {
        assert_line("assemble problem", p, MAX_NOTE_CHARS);
    }
}

// ---------------------------------------------------------------------------------------------
// Mutations.

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
    "\\u0000",
    "\\n",
    "null",
    "true",
    "-",
    "-1",
    "1e400",
    "-1e400",
    "1.5",
    "18446744073709551616",
    "-9223372036854775809",
    "\u{0}",
    "\u{feff}",
    "é",
    "\"target\":\"shop.\\n\",",
    "\"tableStatistics\":{},",
    "\"perTableStatus\":3,",
    "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[",
];

/// Values of the metadata that [`evil_value`] adds to its generic ones.
fn metadata_values() -> Vec<Value> {
    vec![
        json!("COMPLETE"),
        json!("shop."),
        json!("shop.public.orders"),
        json!("shop.\n.x"),
        json!({"numberOfRows": "7"}),
        json!({"rowCount": -3, "x": [{"totalRows": 1e300}]}),
        json!({"originalTypeMappings": "no"}),
        json!({"warningMessage": "w\nw"}),
    ]
}

// ---------------------------------------------------------------------------------------------
// Deterministic sweeps.

#[test]
fn real_shaped_documents_parse_cleanly() {
    let mut notes = Notes::default();
    let info = parse_export_info(
        INFO_KEY,
        export_info_doc().to_string().as_bytes(),
        &mut notes,
    )
    .unwrap();
    assert_eq!(info.status.as_deref(), Some("COMPLETE"));
    assert_eq!(info.total_exported_data_in_gb, Some(0.0421));
    let entries = parse_tables_info(
        TABLES_KEY,
        tables_info_doc().to_string().as_bytes(),
        &mut notes,
    )
    .unwrap();
    assert_eq!(entries.len(), 4);
    assert!(notes.is_empty(), "{notes:?}");
}

#[test]
fn truncated_at_every_position() {
    for doc in [export_info_doc(), tables_info_doc()] {
        let text = serde_json::to_vec_pretty(&doc).unwrap();
        for i in 0..text.len() {
            let cut = &text[..i];
            let mut notes = Notes::default();
            let e = parse_tables_info(TABLES_KEY, cut, &mut notes).unwrap_err();
            assert_line("truncated", &e, MAX_ERROR_CHARS);
            let e = parse_export_info(INFO_KEY, cut, &mut notes).unwrap_err();
            assert_line("truncated", &e, MAX_ERROR_CHARS);
        }
    }
}

#[test]
fn deep_nesting_is_an_error_or_tolerated_never_a_stack_overflow() {
    for depth in [100, 126, 127, 128, 129, 1_000, 200_000] {
        let open = "{\"a\":".repeat(depth);
        let close = "}".repeat(depth);
        for body in [
            format!("{open}1{close}"),
            "[".repeat(depth),
            format!(
                "{{\"perTableStatus\":[{{\"target\":\"shop.public.t\",\"status\":\"COMPLETE\",\
                 \"tableStatistics\":{open}{{\"numberOfRows\":3}}{close}}}]}}"
            ),
        ] {
            parse_both(TABLES_KEY, body.as_bytes());
            assemble_checked(body.as_bytes(), body.as_bytes(), TABLES_KEY);
        }
    }
}

#[test]
fn messages_quote_values_escaped_and_clipped() {
    let long = "t".repeat(10_000);
    let doc = json!({"perTableStatus": [
        {"tableStatistics": {}, "status": "COMPLETE", "target": format!("shop.a\nb.{long}"),
         "sizeGB": {"deep": [long.clone()]},
         "schemaMetadata": {"originalTypeMappings": [
             {"columnName": format!("c\n{long}"), "originalCharMaxLength": long.clone(),
              "originalNumPrecision": 1e300}]}}
    ]});
    let mut notes = Notes::default();
    let entries = parse_tables_info(TABLES_KEY, doc.to_string().as_bytes(), &mut notes).unwrap();
    // Values are kept whole; only the messages are clipped.
    match &entries[0] {
        StatusEntry::Table(t) => assert_eq!(t.target.len(), 10_009),
        other => panic!("{other:?}"),
    }
    assert_notes(&notes);
    assert!(
        notes
            .warnings
            .iter()
            .any(|w| w.contains("1e300 is not an integer")),
        "{notes:?}"
    );
    assert!(
        notes
            .warnings
            .iter()
            .any(|w| w.contains("sizeGB: {\"deep\"")),
        "{notes:?}"
    );
    let e = parse_tables_info(&format!("x\n{long}"), b"{", &mut notes).unwrap_err();
    assert!(
        e.starts_with("x\\n") && e.contains("is not valid JSON"),
        "{e}"
    );
    assert_line("error", &e, MAX_ERROR_CHARS);

    // Through assemble, AWS warnings and targets with line breaks stay on one line.
    let tables = json!({"perTableStatus": [
        {"warningMessage": "first line\nsecond line", "target": "post\ngres"},
        {"tableStatistics": {}, "status": "FAILED\nREALLY", "target": "shop.public.x\ny"}
    ]});
    let docs = vec![(TABLES_KEY.to_string(), Ok(Bytes::from(tables.to_string())))];
    let inv = assemble("shop", &docs, &[], true);
    assert!(
        inv.warnings
            .iter()
            .any(|w| w.contains("first line\\nsecond line")),
        "{:?}",
        inv.warnings
    );
    for n in inv.warnings.iter().chain(&inv.problems) {
        assert_line("assemble", n, MAX_NOTE_CHARS);
    }
}

// ---------------------------------------------------------------------------------------------
// Generated, well-formed metadata in every tolerated spelling parses to what was generated.

#[derive(Debug, Clone)]
struct GenColumn {
    name: String,
    original_type: String,
    exported: String,
    ints: [Option<i32>; 3],
    styles: [u8; 3],
}

#[derive(Debug, Clone)]
struct GenTable {
    target: String,
    complete: bool,
    size_gb: Option<f64>,
    columns: Vec<GenColumn>,
}

fn gen_column() -> impl Strategy<Value = GenColumn> {
    (
        any::<String>(),
        proptest::sample::select(
            &[
                "bigint",
                "integer",
                "text",
                "ARRAY",
                "USER-DEFINED",
                "numeric",
            ][..],
        ),
        proptest::sample::select(&["int64", "int32", "double", "boolean", "binary (UTF8)"][..]),
        proptest::array::uniform3(proptest::option::of(any::<i32>())),
        proptest::array::uniform3(any::<u8>()),
    )
        .prop_map(|(name, t, e, ints, styles)| GenColumn {
            name,
            original_type: t.into(),
            exported: e.into(),
            ints,
            styles,
        })
}

fn gen_table() -> impl Strategy<Value = GenTable> {
    (
        "[^.]{1,20}",
        any::<String>(),
        any::<bool>(),
        proptest::option::of((0u32..1_000_000_000).prop_map(|n| f64::from(n) / 1024.0)),
        proptest::collection::vec(gen_column(), 0..5),
    )
        .prop_map(|(schema, table, complete, size_gb, columns)| GenTable {
            target: format!("shop.{schema}.{table}"),
            complete,
            size_gb,
            columns,
        })
}

/// An integer as a number, a string, a float or a padded string.
fn int_json(v: i32, style: u8) -> Value {
    match style % 4 {
        0 => json!(v),
        1 => json!(v.to_string()),
        2 => json!(f64::from(v)),
        _ => json!(format!(" {v}.0 ")),
    }
}

fn table_json(t: &GenTable, case: u8) -> Value {
    let k = |key: &str| spell(key, case % 4);
    let mut cols = Vec::new();
    for c in &t.columns {
        let mut m = Map::new();
        m.insert(k("columnName"), json!(c.name));
        m.insert(k("originalType"), json!(c.original_type));
        m.insert(k("expectedExportedType"), json!(c.exported));
        for ((name, v), style) in [
            "originalCharMaxLength",
            "originalNumPrecision",
            "originalDateTimePrecision",
        ]
        .iter()
        .zip(c.ints)
        .zip(c.styles)
        {
            m.insert(k(name), v.map_or(Value::Null, |v| int_json(v, style)));
        }
        cols.push(Value::Object(m));
    }
    let mut sm = Map::new();
    sm.insert(k("originalTypeMappings"), Value::Array(cols));
    let mut m = Map::new();
    m.insert(k("tableStatistics"), json!({}));
    m.insert(k("schemaMetadata"), Value::Object(sm));
    m.insert(
        k("status"),
        json!(if t.complete { "COMPLETE" } else { "FAILED" }),
    );
    if let Some(gb) = t.size_gb {
        m.insert(k("sizeGB"), json!(gb));
    }
    m.insert(k("target"), json!(t.target));
    Value::Object(m)
}

proptest! {
    #![proptest_config(config(3000, SEED))]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        parse_both(TABLES_KEY, &bytes);
        assemble_checked(&bytes, &bytes, TABLES_KEY);
    }

    #[test]
    fn file_names_never_panic(name in any::<String>()) {
        let _ = export_info_id(&name);
        let _ = is_tables_info(&name);
        if let Some(n) = tables_info_name(&name) {
            prop_assert!(!n.export_id.is_empty());
            prop_assert_eq!(
                tables_info_name(&format!(
                    "export_tables_info_{}_from_{}_to_{}.json", n.export_id, n.from, n.to
                )),
                Some(n)
            );
        }
    }

    #[test]
    fn mutated_documents_never_panic(
        mutations in proptest::collection::vec(json_mutation(evil_value(metadata_values())), 1..4),
        byte_edits in proptest::option::weighted(0.3, edits(JSON_PIECES)),
        odd_key in proptest::option::weighted(0.1, any::<String>()),
    ) {
        let mut info = export_info_doc();
        let mut tables = tables_info_doc();
        for (path, op) in &mutations {
            mutate(&mut info, path, op);
            mutate(&mut tables, path, op);
        }
        let mut info = serde_json::to_vec(&info).unwrap();
        let mut tables = serde_json::to_vec(&tables).unwrap();
        for e in byte_edits.iter().flatten() {
            apply(&mut info, e);
            apply(&mut tables, e);
        }
        let key = odd_key.unwrap_or_else(|| TABLES_KEY.to_string());
        parse_both(&key, &info);
        parse_both(&key, &tables);
        assemble_checked(&info, &tables, &key);
    }

    #[test]
    fn generated_metadata_parses_to_what_it_says(
        tables in proptest::collection::vec(gen_table(), 0..6),
        case in any::<u8>(),
        bare_array in proptest::bool::weighted(0.1),
    ) {
        let elements: Vec<Value> = tables.iter().map(|t| table_json(t, case)).collect();
        let doc = if bare_array {
            Value::Array(elements)
        } else {
            let mut m = Map::new();
            m.insert(spell("perTableStatus", case % 4), Value::Array(elements));
            Value::Object(m)
        };
        let mut notes = Notes::default();
        let entries = parse_tables_info(TABLES_KEY, doc.to_string().as_bytes(), &mut notes).unwrap();
        prop_assert!(notes.is_empty(), "{:?}", notes);
        prop_assert_eq!(entries.len(), tables.len());
        for (e, t) in entries.iter().zip(&tables) {
            let StatusEntry::Table(e) = e else { panic!("{e:?}") };
            prop_assert_eq!(&e.target, &t.target);
            prop_assert_eq!(e.is_complete(), t.complete);
            // serde_json without its `float_roundtrip` feature may read a float 1 ULP off
            // (900722.5322265625 comes back as …624): harmless for sizeGB, so not exact here.
            match (e.size_gb, t.size_gb) {
                (Some(a), Some(b)) => prop_assert!((a - b).abs() <= b.abs() * 1e-15, "{} {}", a, b),
                (a, b) => prop_assert_eq!(a, b),
            }
            prop_assert!(e.has_column_metadata);
            prop_assert_eq!(e.source.as_str(), TABLES_KEY);
            let want: Vec<ColumnMapping> = t.columns.iter().map(|c| ColumnMapping {
                column_name: c.name.clone(),
                original_type: c.original_type.clone(),
                expected_exported_type: c.exported.clone(),
                original_char_max_length: c.ints[0].map(i64::from),
                original_num_precision: c.ints[1].map(i64::from),
                original_date_time_precision: c.ints[2].map(i64::from),
            }).collect();
            prop_assert_eq!(&e.columns, &want);
        }
    }
}
