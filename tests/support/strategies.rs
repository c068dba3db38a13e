//! Proptest helpers shared by the fuzz tests of the parsers (`protocol/tests/fuzz.rs`: job
//! specs and messages; `coordinator/tests/it/metadata_fuzz.rs`: the RDS export metadata):
//! a reproducible configuration, the one-line message rule, byte-level edits and structural
//! JSON mutations of valid documents, and values that break naive readers.
//!
//! Cases per property default to what each test asks and can be changed with
//! `PROPTEST_CASES`; the seed is fixed (override with `PROPTEST_RNG_SEED`), so a failure
//! reproduces on every run. No failure files are written.

use proptest::prelude::*;
use proptest::test_runner::{Config as ProptestConfig, RngAlgorithm, RngSeed};
use serde_json::{json, Value};

/// `default_cases` cases (or `PROPTEST_CASES`), ChaCha seeded with `seed` (unless
/// `PROPTEST_RNG_SEED` is set), no failure persistence.
pub fn config(default_cases: u32, seed: u64) -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default_cases);
    let default = ProptestConfig::default();
    ProptestConfig {
        cases,
        failure_persistence: None,
        rng_algorithm: RngAlgorithm::ChaCha,
        rng_seed: if std::env::var_os("PROPTEST_RNG_SEED").is_some() {
            default.rng_seed
        } else {
            RngSeed::Fixed(seed)
        },
        ..default
    }
}

/// What a clear message looks like: non-empty, one line, at most `max` characters.
pub fn assert_one_line(what: &str, msg: &str, max: usize) {
    assert!(!msg.trim().is_empty(), "{what}: empty message");
    assert!(
        !msg.contains(['\n', '\r']),
        "{what}: multi-line message: {msg:?}"
    );
    let n = msg.chars().count();
    assert!(n <= max, "{what}: message of {n} chars: {msg:?}");
}

// ---------------------------------------------------------------------------------------------
// Byte-level edits.

/// One edit of a byte string; positions are taken modulo the length.
#[derive(Debug, Clone)]
pub enum Edit {
    Truncate(usize),
    Delete(usize, usize),
    Insert(usize, Vec<u8>),
    Xor(usize, u8),
    Duplicate(usize, usize),
}

pub fn apply(bytes: &mut Vec<u8>, edit: &Edit) {
    let len = bytes.len();
    let at = |i: usize| i % (len + 1);
    match edit {
        Edit::Truncate(i) => bytes.truncate(at(*i)),
        Edit::Delete(i, n) => {
            let s = at(*i);
            let e = (s + n % 64).min(len);
            bytes.drain(s..e);
        }
        Edit::Insert(i, piece) => {
            let s = at(*i);
            bytes.splice(s..s, piece.iter().copied());
        }
        Edit::Xor(i, x) => {
            if len > 0 {
                bytes[i % len] ^= x | 1;
            }
        }
        Edit::Duplicate(i, n) => {
            let s = at(*i);
            let e = (s + n % 256).min(len);
            let piece = bytes[s..e].to_vec();
            bytes.splice(e..e, piece);
        }
    }
}

/// One to five edits; inserted pieces come mostly from `dictionary` (the syntax of the format
/// under test), else random bytes or text.
pub fn edits(dictionary: &'static [&'static str]) -> impl Strategy<Value = Vec<Edit>> {
    let piece = prop_oneof![
        3 => proptest::sample::select(dictionary).prop_map(|s| s.as_bytes().to_vec()),
        1 => proptest::collection::vec(any::<u8>(), 1..8),
        1 => any::<String>().prop_map(String::into_bytes),
    ];
    let edit = prop_oneof![
        1 => any::<usize>().prop_map(Edit::Truncate),
        2 => (any::<usize>(), any::<usize>()).prop_map(|(i, n)| Edit::Delete(i, n)),
        4 => (any::<usize>(), piece).prop_map(|(i, p)| Edit::Insert(i, p)),
        2 => (any::<usize>(), any::<u8>()).prop_map(|(i, x)| Edit::Xor(i, x)),
        1 => (any::<usize>(), any::<usize>()).prop_map(|(i, n)| Edit::Duplicate(i, n)),
    ];
    proptest::collection::vec(edit, 1..6)
}

// ---------------------------------------------------------------------------------------------
// JSON mutations.

/// JSON values that break naive readers, whatever the document: nulls, extreme and fractional
/// numbers, empty, numeric-looking and control-character strings, a
/// long string, empty and mixed containers. `extra` adds values of the format under test;
/// random scalars and nesting within and past serde_json's recursion limit of 128 (arrays, and
/// objects around a row count) come on top.
pub fn evil_value(extra: Vec<Value>) -> impl Strategy<Value = Value> {
    let mut values = vec![
        Value::Null,
        json!(true),
        json!(-1),
        json!(0),
        json!(2),
        json!(u32::MAX as u64 + 1),
        json!(u64::MAX),
        json!(i64::MIN),
        json!(1.5),
        json!(1e300),
        json!(-1e-300),
        json!(-0.0),
        json!(""),
        json!("1"),
        json!("null"),
        json!(" 12 "),
        json!("1e400"),
        json!("9223372036854775808"),
        json!("a\nb\r\u{0}\"`"),
        json!("x".repeat(10_000)),
        json!([]),
        json!([1, "a", null]),
        json!([1, "a", null, {}]),
        json!({}),
    ];
    values.extend(extra);
    let weight = values.len() as u32;
    prop_oneof![
        weight => proptest::sample::select(values),
        1 => any::<i64>().prop_map(|n| json!(n)),
        1 => any::<u64>().prop_map(|n| json!(n)),
        1 => any::<f64>().prop_map(|f| json!(f)),
        1 => any::<String>().prop_map(Value::String),
        1 => (1usize..200).prop_map(|d| (0..d).fold(json!(1), |v, _| json!([v]))),
        1 => (1usize..140).prop_map(|d| (0..d).fold(json!({"rows": 1}), |v, _| json!({"a": v}))),
    ]
}

/// What to do at the node a mutation's path leads to.
#[derive(Debug, Clone)]
pub enum JsonOp {
    Replace(Value),
    /// Remove the node from its parent (the root becomes `null`).
    Remove,
    /// Add a key the format does not know (wrapping a non-object node in an object).
    AddUnknownKey(String),
    WrapInArray,
    /// Respell the node's key in its parent object ([`spell`]).
    RenameKey(u8),
}

/// A path (each step picks a child by index, modulo the number of children) and an operation.
pub fn json_mutation(
    evil: impl Strategy<Value = Value>,
) -> impl Strategy<Value = (Vec<usize>, JsonOp)> {
    let op = prop_oneof![
        6 => evil.prop_map(JsonOp::Replace),
        2 => Just(JsonOp::Remove),
        1 => "[a-z_]{1,12}".prop_map(JsonOp::AddUnknownKey),
        1 => Just(JsonOp::WrapInArray),
        2 => any::<u8>().prop_map(JsonOp::RenameKey),
    ];
    (proptest::collection::vec(any::<usize>(), 0..6), op)
}

/// Walk down `path` and apply `op` there (a walk stops early at a leaf or empty container).
pub fn mutate(v: &mut Value, path: &[usize], op: &JsonOp) {
    // Resolve the path read-only, as JSON-pointer tokens.
    let mut tokens: Vec<String> = Vec::new();
    let mut node = &*v;
    for &step in path {
        node = match node {
            Value::Object(map) if !map.is_empty() => {
                let (k, child) = map.iter().nth(step % map.len()).unwrap();
                tokens.push(k.clone());
                child
            }
            Value::Array(items) if !items.is_empty() => {
                let i = step % items.len();
                tokens.push(i.to_string());
                &items[i]
            }
            _ => break,
        };
    }
    let pointer = |tokens: &[String]| -> String {
        tokens
            .iter()
            .map(|t| format!("/{}", t.replace('~', "~0").replace('/', "~1")))
            .collect()
    };
    if let Some(last) = tokens.last() {
        let parent = v
            .pointer_mut(&pointer(&tokens[..tokens.len() - 1]))
            .unwrap();
        match (parent, op) {
            (Value::Object(map), JsonOp::Remove) => {
                map.remove(last);
                return;
            }
            (Value::Array(items), JsonOp::Remove) => {
                items.remove(last.parse::<usize>().unwrap());
                return;
            }
            (Value::Object(map), JsonOp::RenameKey(how)) => {
                if let Some(x) = map.remove(last) {
                    map.insert(spell(last, *how), x);
                }
                return;
            }
            (_, JsonOp::RenameKey(_)) => return,
            _ => {}
        }
    }
    let node = v.pointer_mut(&pointer(&tokens)).unwrap();
    match op {
        JsonOp::Replace(x) => *node = x.clone(),
        JsonOp::Remove => *node = Value::Null,
        JsonOp::AddUnknownKey(k) => {
            if let Value::Object(map) = node {
                map.insert(k.clone(), json!(1));
            } else {
                let mut map = serde_json::Map::new();
                map.insert(k.clone(), node.take());
                *node = Value::Object(map);
            }
        }
        JsonOp::WrapInArray => *node = json!([node.take()]),
        JsonOp::RenameKey(_) => {}
    }
}

/// A camelCase key in one of the spellings tolerant readers accept (`how % 5`: 0 as is,
/// 1 Capitalized, 2 lowercase, 3 snake_case), or a wrong one (4).
pub fn spell(key: &str, how: u8) -> String {
    match how % 5 {
        0 => key.to_string(),
        1 => {
            let mut c = key.chars();
            c.next()
                .map(|f| f.to_uppercase().chain(c).collect())
                .unwrap_or_default()
        }
        2 => key.to_lowercase(),
        3 => {
            let mut out = String::new();
            for c in key.chars() {
                if c.is_uppercase() && !out.is_empty() {
                    out.push('_');
                }
                out.extend(c.to_lowercase());
            }
            out
        }
        _ => format!("{key}X"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mutations_reach_what_the_path_names() {
        let doc = json!({"a": {"bC": [1, 2]}});
        let mut v = doc.clone();
        mutate(&mut v, &[0, 0, 1], &JsonOp::Remove);
        assert_eq!(v, json!({"a": {"bC": [1]}}));
        let mut v = doc.clone();
        mutate(&mut v, &[0, 0], &JsonOp::RenameKey(3));
        assert_eq!(v, json!({"a": {"b_c": [1, 2]}}));
        let mut v = doc.clone();
        mutate(&mut v, &[0], &JsonOp::WrapInArray);
        assert_eq!(v, json!({"a": [{"bC": [1, 2]}]}));
        let mut v = doc.clone();
        mutate(&mut v, &[], &JsonOp::Replace(json!(3)));
        assert_eq!(v, json!(3));
        let mut v = doc;
        mutate(&mut v, &[0, 0, 0, 9], &JsonOp::AddUnknownKey("k".into()));
        assert_eq!(v, json!({"a": {"bC": [{"k": 1}, 2]}}));
        assert_eq!(spell("perTableStatus", 1), "PerTableStatus");
        assert_eq!(spell("perTableStatus", 3), "per_table_status");
    }

    #[test]
    fn edits_stay_in_bounds() {
        let mut b = b"abc".to_vec();
        apply(&mut b, &Edit::Duplicate(1, 1));
        assert_eq!(b, b"abbc");
        apply(&mut b, &Edit::Delete(7, 70));
        assert_eq!(b, b"ab");
        let mut empty = Vec::new();
        for e in [Edit::Xor(3, 1), Edit::Truncate(9), Edit::Duplicate(5, 5)] {
            apply(&mut empty, &e);
        }
        assert!(empty.is_empty());
    }
}
