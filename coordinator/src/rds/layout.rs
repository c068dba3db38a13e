//! Which objects of `<database>/` belong to which table: folders are found from the metadata
//! (`protocol::layout::rds::table_folder` of each table), never parsed back into identifiers.
//! Inside a table folder every `*.parquet` counts, at any depth (batch folders `1/`, `2/` …,
//! partition batch folders, or the older flat layout), and `_SUCCESS` marks the folder it sits
//! in. Pure.

use super::{Batch, Notes};
use fleet_io::objects::ObjectInfo;
use protocol::layout::SUCCESS;
use std::cmp::Ordering;
use std::collections::{BTreeMap, HashMap};

/// A table of the metadata claiming a folder.
#[derive(Debug, Clone)]
pub struct FolderClaim {
    /// The metadata target, for messages.
    pub target: String,
    /// The folder key relative to the export root: `<database>/<schema>.<table>/`
    /// (`protocol::layout::rds::table_folder`).
    pub folder: String,
    /// False for tables that will not be restored (not COMPLETE): their folder is claimed (it
    /// is no orphan and it can collide) but its contents are not checked.
    pub check: bool,
}

/// What was found for one claim.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FolderContents {
    /// True when at least one object lies under the folder.
    pub exists: bool,
    /// True when another table maps to the same folder: its files cannot be attributed, so
    /// `files` and `batches` are left empty (a problem names both tables).
    pub ambiguous: bool,
    /// Part files, in natural key order.
    pub files: Vec<ObjectInfo>,
    /// Every folder holding part files or `_SUCCESS`, in natural order.
    pub batches: Vec<Batch>,
}

/// Keep at most this many examples in one message.
const EXAMPLES: usize = 3;

/// Split the listing of `<database>/` between the claims. `objects` are keys relative to the
/// export root; objects outside `db_folder` are ignored. Returns one entry per claim, in order.
pub fn assign(
    db_folder: &str,
    objects: &[ObjectInfo],
    claims: &[FolderClaim],
    require_success: bool,
    notes: &mut Notes,
) -> Vec<FolderContents> {
    let mut out = vec![FolderContents::default(); claims.len()];

    // Folder → claim indexes; two or more claims for one folder is ambiguous.
    let mut by_folder: HashMap<&str, Vec<usize>> = HashMap::new();
    for (i, c) in claims.iter().enumerate() {
        by_folder.entry(c.folder.as_str()).or_default().push(i);
    }
    let mut collisions: Vec<(&str, &Vec<usize>)> = by_folder
        .iter()
        .filter(|(_, v)| v.len() > 1)
        .map(|(f, v)| (*f, v))
        .collect();
    collisions.sort();
    for (folder, idx) in collisions {
        let names: Vec<String> = idx
            .iter()
            .map(|&i| format!("{:?}", claims[i].target))
            .collect();
        let msg = format!(
            "tables {} all map to folder {folder} (AWS replaces \\ ` \" and space with _ in \
             folder names): their files cannot be told apart",
            names.join(" and ")
        );
        if idx.iter().any(|&i| claims[i].check) {
            notes.problem(msg);
        } else {
            notes.warn(msg);
        }
        for &i in idx {
            out[i].ambiguous = true;
        }
    }

    // Group objects by their first path segment under the database folder.
    let mut groups: BTreeMap<&str, Vec<&ObjectInfo>> = BTreeMap::new();
    let mut stray: Vec<&str> = Vec::new();
    for o in objects {
        let Some(rel) = o.key.strip_prefix(db_folder) else {
            continue;
        };
        match rel.split_once('/') {
            Some((seg, _)) if !seg.is_empty() => groups.entry(seg).or_default().push(o),
            _ if rel.is_empty() || is_ignorable(rel) => {}
            _ => stray.push(&o.key),
        }
    }
    if !stray.is_empty() {
        notes.warn(format!(
            "{} unexpected object(s) directly in {db_folder} ignored, e.g. {}",
            stray.len(),
            examples(&stray)
        ));
    }

    for (seg, objs) in groups {
        let folder = format!("{db_folder}{seg}/");
        let Some(idx) = by_folder.get(folder.as_str()) else {
            let parts = objs.iter().filter(|o| is_part_file(&o.key)).count();
            notes.warn(format!(
                "folder {folder} ({parts} part file(s)) belongs to no table of the metadata: \
                 ignored"
            ));
            continue;
        };
        for &i in idx {
            out[i].exists = true;
        }
        if idx.len() > 1 {
            continue;
        }
        let i = idx[0];
        let c = &claims[i];
        out[i] = scan_folder(&c.target, &folder, &objs, c.check, require_success, notes);
    }
    out
}

/// The contents of one table folder.
fn scan_folder(
    target: &str,
    folder: &str,
    objs: &[&ObjectInfo],
    check: bool,
    require_success: bool,
    notes: &mut Notes,
) -> FolderContents {
    let mut files = Vec::new();
    let mut batches: BTreeMap<String, Batch> = BTreeMap::new();
    let mut unexpected: Vec<&str> = Vec::new();
    let mut hidden: Vec<&str> = Vec::new();
    for o in objs {
        let rel = &o.key[folder.len()..];
        if rel.is_empty() || rel.ends_with('/') {
            continue; // folder marker objects
        }
        let (dir, name) = match rel.rsplit_once('/') {
            Some((d, n)) => (format!("{folder}{d}/"), n),
            None => (folder.to_string(), rel),
        };
        let batch = |batches: &mut BTreeMap<String, Batch>| {
            batches.entry(dir.clone()).or_insert_with(|| Batch {
                prefix: dir.clone(),
                has_success: false,
                part_files: 0,
            });
        };
        // Spark's hidden paths (`_temporary/`, `.x.crc`) are not output; `_SUCCESS` is the
        // one hidden name that means something.
        let hidden_dir = rel
            .split('/')
            .rev()
            .skip(1)
            .any(|c| c.starts_with('_') || c.starts_with('.'));
        if name == SUCCESS && !hidden_dir {
            batch(&mut batches);
            batches.get_mut(&dir).expect("just inserted").has_success = true;
        } else if is_ignorable(name) {
        } else if hidden_dir || name.starts_with('_') || name.starts_with('.') {
            hidden.push(&o.key);
        } else if is_part_file(name) {
            batch(&mut batches);
            batches.get_mut(&dir).expect("just inserted").part_files += 1;
            files.push((*o).clone());
        } else {
            unexpected.push(&o.key);
        }
    }
    if check {
        if !unexpected.is_empty() {
            notes.warn(format!(
                "table {target:?}: {} unexpected object(s) in {folder} ignored, e.g. {}",
                unexpected.len(),
                examples(&unexpected)
            ));
        }
        if !hidden.is_empty() {
            notes.warn(format!(
                "table {target:?}: {} hidden object(s) in {folder} ignored (leftovers of an \
                 interrupted write?), e.g. {}",
                hidden.len(),
                examples(&hidden)
            ));
        }
        for b in batches.values() {
            if b.part_files > 0 && !b.has_success {
                let msg = format!(
                    "table {target:?}: {} holds {} part file(s) but no _SUCCESS marker: the \
                     export of this folder may be incomplete",
                    b.prefix, b.part_files
                );
                if require_success {
                    notes.problem(format!(
                        "{msg} (set require_success = false to load it anyway)"
                    ));
                } else {
                    notes.warn(msg);
                }
            }
        }
    }
    files.sort_by(|a, b| natural_cmp(&a.key, &b.key));
    let mut batches: Vec<Batch> = batches.into_values().collect();
    batches.sort_by(|a, b| natural_cmp(&a.prefix, &b.prefix));
    FolderContents {
        exists: true,
        ambiguous: false,
        files,
        batches,
    }
}

/// A Parquet part file: any name ending in `.parquet` (AWS: "the naming convention is subject
/// to change; read everything inside the table's prefix").
pub fn is_part_file(key: &str) -> bool {
    let name = key.rsplit('/').next().unwrap_or(key);
    name.ends_with(".parquet") && !name.starts_with('.') && !name.starts_with('_')
}

/// Checksums and similar side files that are silently skipped (pgfleet's own manifest too).
fn is_ignorable(name: &str) -> bool {
    name.ends_with(".crc") || name == ".DS_Store" || name == protocol::layout::MANIFEST
}

fn examples(keys: &[&str]) -> String {
    let mut s = keys
        .iter()
        .take(EXAMPLES)
        .map(|k| k.to_string())
        .collect::<Vec<_>>()
        .join(", ");
    if keys.len() > EXAMPLES {
        s.push_str(", …");
    }
    s
}

/// Order keys the way a human would: `2/` before `10/`, `part-9` before `part-10`.
pub fn natural_cmp(a: &str, b: &str) -> Ordering {
    let (mut a, mut b) = (a.as_bytes(), b.as_bytes());
    loop {
        match (a.first(), b.first()) {
            (None, None) => return Ordering::Equal,
            (None, Some(_)) => return Ordering::Less,
            (Some(_), None) => return Ordering::Greater,
            (Some(x), Some(y)) if x.is_ascii_digit() && y.is_ascii_digit() => {
                let da = a.iter().take_while(|c| c.is_ascii_digit()).count();
                let db = b.iter().take_while(|c| c.is_ascii_digit()).count();
                let (na, nb) = (&a[..da], &b[..db]);
                let ta = trim_zeros(na);
                let tb = trim_zeros(nb);
                let ord = ta
                    .len()
                    .cmp(&tb.len())
                    .then_with(|| ta.cmp(tb))
                    .then_with(|| na.len().cmp(&nb.len()));
                if ord != Ordering::Equal {
                    return ord;
                }
                a = &a[da..];
                b = &b[db..];
            }
            (Some(x), Some(y)) => {
                if x != y {
                    return x.cmp(y);
                }
                a = &a[1..];
                b = &b[1..];
            }
        }
    }
}

fn trim_zeros(d: &[u8]) -> &[u8] {
    let n = d.iter().take_while(|&&c| c == b'0').count();
    &d[n..]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn obj(key: &str) -> ObjectInfo {
        ObjectInfo {
            key: key.into(),
            size: 10,
        }
    }

    fn claim(target: &str, folder: &str) -> FolderClaim {
        FolderClaim {
            target: target.into(),
            folder: folder.into(),
            check: true,
        }
    }

    fn keys(c: &FolderContents) -> Vec<&str> {
        c.files.iter().map(|f| f.key.as_str()).collect()
    }

    #[test]
    fn batch_folders_flat_layout_and_gaps() {
        let objects: Vec<ObjectInfo> = [
            "db/public.a/1/part-00000-u-c000.gz.parquet",
            "db/public.a/1/part-00003-u-c000.gz.parquet",
            "db/public.a/1/_SUCCESS",
            "db/public.a/1/.part-00000-u-c000.gz.parquet.crc",
            "db/public.a/10/part-00000-v-c000.gz.parquet",
            "db/public.a/10/_SUCCESS",
            "db/public.a/2/part-00000-w-c000.gz.parquet",
            "db/public.a/2/_SUCCESS",
            "db/public.flat/part-00000-x-c000.gz.parquet",
            "db/public.flat/part-00001-x-c000.gz.parquet",
            "db/public.flat/_SUCCESS",
            "db/public.empty/1/_SUCCESS",
            "db/public.part/p1/1/part-00000-y-c000.gz.parquet",
            "db/public.part/p1/1/_SUCCESS",
            "db/public.part/p2/1/part-00000-z-c000.gz.parquet",
            "db/public.part/p2/1/_SUCCESS",
        ]
        .into_iter()
        .map(obj)
        .collect();
        let claims = [
            claim("db.public.a", "db/public.a/"),
            claim("db.public.flat", "db/public.flat/"),
            claim("db.public.empty", "db/public.empty/"),
            claim("db.public.part", "db/public.part/"),
            claim("db.public.none", "db/public.none/"),
        ];
        let mut notes = Notes::default();
        let out = assign("db/", &objects, &claims, true, &mut notes);
        assert!(notes.is_empty(), "{notes:?}");
        assert_eq!(
            keys(&out[0]),
            [
                "db/public.a/1/part-00000-u-c000.gz.parquet",
                "db/public.a/1/part-00003-u-c000.gz.parquet",
                "db/public.a/2/part-00000-w-c000.gz.parquet",
                "db/public.a/10/part-00000-v-c000.gz.parquet",
            ]
        );
        let prefixes: Vec<_> = out[0].batches.iter().map(|b| b.prefix.as_str()).collect();
        assert_eq!(
            prefixes,
            ["db/public.a/1/", "db/public.a/2/", "db/public.a/10/"]
        );
        assert!(out[0].batches.iter().all(|b| b.has_success));
        assert_eq!(out[0].batches[0].part_files, 2);

        assert_eq!(out[1].files.len(), 2);
        assert_eq!(
            out[1].batches,
            vec![Batch {
                prefix: "db/public.flat/".into(),
                has_success: true,
                part_files: 2
            }]
        );
        assert!(out[2].exists && out[2].files.is_empty());
        assert_eq!(out[2].batches.len(), 1);
        assert!(out[2].batches[0].has_success && out[2].batches[0].part_files == 0);
        assert_eq!(out[3].files.len(), 2);
        assert_eq!(out[3].batches[1].prefix, "db/public.part/p2/1/");
        assert!(!out[4].exists);
    }

    #[test]
    fn missing_success_orphans_and_oddities() {
        let objects: Vec<ObjectInfo> = [
            "db/public.a/1/part-00000-u-c000.gz.parquet",
            "db/public.a/2/part-00000-u-c000.gz.parquet",
            "db/public.a/2/_SUCCESS",
            "db/public.a/1/notes.txt",
            "db/public.a/_temporary/0/part-00000-u-c000.gz.parquet",
            "db/public.orphan/1/part-00000-u-c000.gz.parquet",
            "db/readme.txt",
            "other/public.a/1/part-00000-u-c000.gz.parquet",
        ]
        .into_iter()
        .map(obj)
        .collect();
        let claims = [claim("db.public.a", "db/public.a/")];
        let mut notes = Notes::default();
        let out = assign("db/", &objects, &claims, true, &mut notes);
        assert_eq!(out[0].files.len(), 2);
        assert_eq!(notes.problems.len(), 1, "{notes:?}");
        assert!(notes.problems[0].starts_with(
            "table \"db.public.a\": db/public.a/1/ holds 1 part file(s) but no _SUCCESS"
        ));
        let w = notes.warnings.join("\n");
        assert!(w.contains("db/readme.txt"), "{w}");
        assert!(w.contains("db/public.a/1/notes.txt"), "{w}");
        assert!(w.contains("_temporary"), "{w}");
        assert!(
            w.contains("folder db/public.orphan/ (1 part file(s)) belongs to no table"),
            "{w}"
        );

        // Without require_success the missing marker is a warning.
        let mut notes = Notes::default();
        assign("db/", &objects, &claims, false, &mut notes);
        assert!(notes.problems.is_empty());
        assert!(notes.warnings.iter().any(|w| w.contains("no _SUCCESS")));
    }

    #[test]
    fn colliding_folders_are_a_problem() {
        let objects = vec![obj("db/public.my_table/1/part-00000-u-c000.gz.parquet")];
        let claims = [
            claim("db.public.my table", "db/public.my_table/"),
            claim("db.public.my_table", "db/public.my_table/"),
            claim("db.public.other", "db/public.other/"),
        ];
        let mut notes = Notes::default();
        let out = assign("db/", &objects, &claims, true, &mut notes);
        assert_eq!(notes.problems.len(), 1);
        assert!(notes.problems[0].contains("\"db.public.my table\" and \"db.public.my_table\""));
        assert!(out[0].ambiguous && out[1].ambiguous && !out[2].ambiguous);
        assert!(out[0].exists && out[0].files.is_empty());
    }

    #[test]
    fn unchecked_claims_are_quiet() {
        let objects = vec![obj("db/public.failed/1/part-00000-u-c000.gz.parquet")];
        let claims = [FolderClaim {
            check: false,
            ..claim("db.public.failed", "db/public.failed/")
        }];
        let mut notes = Notes::default();
        let out = assign("db/", &objects, &claims, true, &mut notes);
        assert!(notes.is_empty(), "{notes:?}");
        assert_eq!(out[0].files.len(), 1);
    }

    #[test]
    fn natural_order() {
        let mut v = vec!["a/10/", "a/2/", "a/1/", "a/01/", "b", "a/x"];
        v.sort_by(|a, b| natural_cmp(a, b));
        assert_eq!(v, ["a/1/", "a/01/", "a/2/", "a/10/", "a/x", "b"]);
        assert!(is_part_file("x/part-00000-u-c000.gz.parquet"));
        assert!(is_part_file("x/anything.parquet"));
        assert!(!is_part_file("x/.part-0.parquet"));
        assert!(!is_part_file("x/part-0.parquet.crc"));
    }
}
