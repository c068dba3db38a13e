//! The AWS RDS snapshot-export layout: what pgfleet's `rds-parquet` format writes and what a
//! restore reads (see `docs/rds-export-format.md`).
//!
//! ```text
//! <export root = [prefix/]<export_id>/>
//!   export_info_<export_id>.json
//!   export_tables_info_<export_id>_from_<N>_to_<M>.json
//!   <database>/<schema>.<table>/1/part-<NNNNN>-<uuid>-c000.gz.parquet
//!   <database>/<schema>.<table>/1/_manifest.json   (pgfleet's proof, not AWS's; readers skip it)
//!   <database>/<schema>.<table>/1/_SUCCESS
//! ```
//!
//! Every key here is relative to the export root. Folder names replace `\` `` ` `` `"` and space
//! with `_` as AWS does (and `/`, which AWS never meets because it skips such tables), so they
//! are not identifiers: readers map folders to tables through the metadata, never the other way.

use super::SUCCESS;
use crate::ident::QualifiedName;
use crate::location::ObjectLocation;

/// The one batch folder pgfleet writes: its chunks are key ranges read in parallel, which is
/// when AWS writes a single `1/` folder too.
pub const BATCH_FOLDER: &str = "1";

/// A path component as AWS writes it: `\` `` ` `` `"` and space become `_`; so does `/`, which
/// would otherwise add a folder level (a raw `/` would nest one table's folder inside
/// another's). `.` is kept, so `path_component("schema.table")` is the folder of that metadata
/// name. Not reversible.
pub fn path_component(name: &str) -> String {
    name.chars()
        .map(|c| match c {
            '\\' | '`' | '"' | ' ' | '/' => '_',
            c => c,
        })
        .collect()
}

/// `schema.table` with `\` `` ` `` `"` space (and `/`) replaced by `_`.
pub fn folder_name(table: &QualifiedName) -> String {
    format!(
        "{}.{}",
        path_component(&table.schema),
        path_component(&table.name)
    )
}

/// The folder of `database` relative to the export root: `<database>/`.
pub fn database_folder(database: &str) -> String {
    format!("{}/", path_component(database))
}

/// The folder of a table named `schema_and_table` in the metadata (the [`target`] without its
/// database; it may hold more dots than one): `<database>/<schema>.<table>/`.
pub fn table_folder(database: &str, schema_and_table: &str) -> String {
    format!(
        "{}{}/",
        database_folder(database),
        path_component(schema_and_table)
    )
}

/// `<database>/<schema>.<table>/1/`: everything pgfleet writes of one table.
pub fn table_prefix(database: &str, table: &QualifiedName) -> String {
    format!(
        "{}{BATCH_FOLDER}/",
        table_folder(database, &table.display_name())
    )
}

/// `<database>/<folder>/1/part-<seq:05>-<uuid>-c000.gz.parquet`. The uuid is derived from the
/// job and the table, so a re-run of a chunk overwrites its object instead of adding one.
pub fn part_key(database: &str, table: &QualifiedName, seq: u32, job_id: &str) -> String {
    format!(
        "{}part-{seq:05}-{}-c000.gz.parquet",
        table_prefix(database, table),
        part_uuid(job_id, table)
    )
}

/// `<database>/<folder>/1/_manifest.json`: pgfleet's manifest of the table (what
/// `coordinator verify` checks), written before `_SUCCESS`. AWS writes none.
pub fn manifest_key(database: &str, table: &QualifiedName) -> String {
    format!("{}{}", table_prefix(database, table), super::MANIFEST)
}

/// `<database>/<folder>/1/_SUCCESS`.
pub fn success_key(database: &str, table: &QualifiedName) -> String {
    format!("{}{SUCCESS}", table_prefix(database, table))
}

/// A version-4-shaped uuid (what Spark writes), hyphenated lower-case hex, whose bits come
/// from a stable hash of the job id and the table: the same inputs give the same uuid on every
/// machine and every Rust version.
pub fn part_uuid(job_id: &str, table: &QualifiedName) -> String {
    let mut h = Fnv128::new();
    for part in [job_id, &table.schema, &table.name] {
        h.write(part.as_bytes());
        // Separator that cannot occur in the parts' lengths: length-prefix each part.
        h.write(&(part.len() as u64).to_le_bytes());
    }
    let mut b = h.0.to_be_bytes();
    // RFC 4122 variant and version 4, as `uuid::Builder::from_random_bytes` sets them.
    b[8] = (b[8] & 0x3f) | 0x80;
    b[6] = (b[6] & 0x0f) | 0x40;
    let mut out = String::with_capacity(36);
    for (i, byte) in b.iter().enumerate() {
        if matches!(i, 4 | 6 | 8 | 10) {
            out.push('-');
        }
        out.push_str(&format!("{byte:02x}"));
    }
    out
}

/// FNV-1a, 128 bits: tiny, fixed by its specification.
struct Fnv128(u128);

impl Fnv128 {
    const OFFSET: u128 = 0x6c62272e07bb014262b821756295c58d;
    const PRIME: u128 = 0x0000000001000000000000000000013B;

    fn new() -> Self {
        Self(Self::OFFSET)
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 ^= u128::from(b);
            self.0 = self.0.wrapping_mul(Self::PRIME);
        }
    }
}

/// The export's identifier: the last folder of the export root (`s3://b/exports/run1/` →
/// `run1`); the bucket name when the root is a bucket's top level.
pub fn export_id(root: &ObjectLocation) -> String {
    let last = |path: &str| {
        path.trim_end_matches('/')
            .rsplit('/')
            .next()
            .unwrap_or_default()
            .to_string()
    };
    let id = match root {
        ObjectLocation::S3 { bucket, prefix } => {
            let id = last(prefix);
            if id.is_empty() {
                bucket.clone()
            } else {
                id
            }
        }
        ObjectLocation::File { root } => last(root),
    };
    if id.is_empty() {
        "export".into()
    } else {
        id
    }
}

/// `export_info_<id>.json`.
pub fn export_info_key(export_id: &str) -> String {
    format!("export_info_{export_id}.json")
}

/// `export_info_<id>.json` → `<id>`.
pub fn export_info_id(file_name: &str) -> Option<&str> {
    file_name
        .strip_prefix("export_info_")?
        .strip_suffix(".json")
        .filter(|id| !id.is_empty())
}

/// `export_tables_info_<id>_from_<from>_to_<to>.json`.
pub fn tables_info_key(export_id: &str, from: usize, to: usize) -> String {
    format!("export_tables_info_{export_id}_from_{from}_to_{to}.json")
}

/// The parts of an `export_tables_info_<id>_from_<N>_to_<M>.json` name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TablesInfoName {
    pub export_id: String,
    pub from: u64,
    pub to: u64,
}

/// Parse an `export_tables_info_<id>_from_<N>_to_<M>.json` name (N and M are 1-based,
/// inclusive element indexes, inferred from real file names such as `…_from_1_to_96.json`).
pub fn tables_info_name(file_name: &str) -> Option<TablesInfoName> {
    let rest = file_name
        .strip_prefix("export_tables_info_")?
        .strip_suffix(".json")?;
    let (id, range) = rest.rsplit_once("_from_")?;
    let (from, to) = range.split_once("_to_")?;
    if id.is_empty() {
        return None;
    }
    Some(TablesInfoName {
        export_id: id.to_string(),
        from: from.parse().ok()?,
        to: to.parse().ok()?,
    })
}

/// Whether a top-level file name is a tables-info file, whatever its range suffix looks like.
pub fn is_tables_info(file_name: &str) -> bool {
    file_name.starts_with("export_tables_info_") && file_name.ends_with(".json")
}

/// `<database>.<schema>.<table>`, the `target` of a table in the metadata (ambiguous when names
/// contain dots, as in AWS's own files).
pub fn target(database: &str, table: &QualifiedName) -> String {
    format!("{database}.{}.{}", table.schema, table.name)
}

/// `<database>.<rest>` → `<rest>` (the [`target`] without its database; `None` for another
/// database's target).
pub fn split_target<'a>(target: &'a str, database: &str) -> Option<&'a str> {
    target
        .strip_prefix(database)?
        .strip_prefix('.')
        .filter(|r| !r.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys() {
        let t = QualifiedName::new("sales", "Odd \"Name\" `T`\\x/y");
        assert_eq!(folder_name(&t), "sales.Odd__Name___T__x_y");
        assert_eq!(
            success_key("my db", &t),
            "my_db/sales.Odd__Name___T__x_y/1/_SUCCESS"
        );
        assert_eq!(
            manifest_key("my db", &t),
            "my_db/sales.Odd__Name___T__x_y/1/_manifest.json"
        );
        let k = part_key("shop", &QualifiedName::new("public", "orders"), 7, "job-1");
        let re = k
            .strip_prefix("shop/public.orders/1/part-00007-")
            .and_then(|r| r.strip_suffix("-c000.gz.parquet"))
            .unwrap_or_else(|| panic!("{k}"));
        let u = uuid::Uuid::parse_str(re).unwrap();
        assert_eq!(u.get_version_num(), 4);
        assert_eq!(u.hyphenated().to_string(), re);
        // Deterministic per (job, table); different otherwise; the sequence number is separate.
        let orders = QualifiedName::new("public", "orders");
        assert_eq!(part_uuid("job-1", &orders), part_uuid("job-1", &orders));
        assert_ne!(part_uuid("job-2", &orders), part_uuid("job-1", &orders));
        assert_ne!(
            part_uuid("job-1", &QualifiedName::new("public", "order")),
            part_uuid("job-1", &orders)
        );
        assert_ne!(
            part_uuid("job-1", &QualifiedName::new("publico", "rders")),
            part_uuid("job-1", &orders)
        );
        assert_eq!(k, part_key("shop", &orders, 7, "job-1"));
        assert_eq!(part_key("shop", &orders, 123_456, "j").len(), k.len() + 1);
        assert_eq!(export_info_key("run1"), "export_info_run1.json");
        assert_eq!(
            tables_info_key("run1", 1, 20),
            "export_tables_info_run1_from_1_to_20.json"
        );
        assert_eq!(target("shop", &orders), "shop.public.orders");
        assert_eq!(
            split_target("shop.public.orders", "shop"),
            Some("public.orders")
        );
        assert_eq!(split_target("shopx.public.orders", "shop"), None);
        assert_eq!(split_target("shop.", "shop"), None);
    }

    #[test]
    fn uuid_is_pinned() {
        // A fixed value: changing the hash would orphan the objects of earlier runs.
        assert_eq!(
            part_uuid("job-1", &QualifiedName::new("public", "orders")),
            PINNED_UUID
        );
    }
    const PINNED_UUID: &str = "06ecc0f9-b670-411a-8081-7232f55d33a7";

    #[test]
    fn uuid_bits_are_what_the_uuid_crate_sets() {
        for job in ["", "j", "job-1", "a much longer job id than usual"] {
            let t = QualifiedName::new("s", job);
            let mut h = Fnv128::new();
            for part in [job, &t.schema, &t.name] {
                h.write(part.as_bytes());
                h.write(&(part.len() as u64).to_le_bytes());
            }
            let want = uuid::Builder::from_random_bytes(h.0.to_be_bytes()).into_uuid();
            assert_eq!(part_uuid(job, &t), want.to_string());
        }
    }

    #[test]
    fn fnv_matches_the_published_vector() {
        let mut h = Fnv128::new();
        h.write(b"a");
        assert_eq!(h.0, 0xd228cb696f1a8caf78912b704e4a8964);
    }

    #[test]
    fn folder_names_substitute_awkward_characters() {
        assert_eq!(path_component("public.my table"), "public.my_table");
        assert_eq!(
            path_component(r#"public.Odd "Name" Table"#),
            "public.Odd__Name__Table"
        );
        assert_eq!(path_component("a\\b`c"), "a_b_c");
        assert_eq!(path_component("sch.em.a.t.able"), "sch.em.a.t.able");
        assert_eq!(path_component("ünï.cödé"), "ünï.cödé");
        assert_eq!(path_component("public.a/b%c"), "public.a_b%c");
        assert_eq!(database_folder("my db"), "my_db/");
        assert_eq!(table_folder("shop", "my.schema.t x"), "shop/my.schema.t_x/");
        // The writer's folder of a table is the reader's folder of its metadata name.
        let t = QualifiedName::new("a b", "c\"d");
        assert_eq!(
            table_prefix("db", &t),
            format!("{}{BATCH_FOLDER}/", table_folder("db", &t.display_name()))
        );
        assert_eq!(table_prefix("db", &t), "db/a_b.c_d/1/");
    }

    #[test]
    fn export_ids() {
        let s3 = |b: &str, p: &str| ObjectLocation::S3 {
            bucket: b.into(),
            prefix: p.into(),
        };
        assert_eq!(export_id(&s3("b", "exports/run1/")), "run1");
        assert_eq!(export_id(&s3("b", "run1/")), "run1");
        assert_eq!(export_id(&s3("b", "")), "b");
        let file = |r: &str| ObjectLocation::File { root: r.into() };
        assert_eq!(export_id(&file("/tmp/x/run2")), "run2");
        assert_eq!(export_id(&file("/")), "export");
    }

    #[test]
    fn file_names() {
        assert_eq!(export_info_id("export_info_my-exp.json"), Some("my-exp"));
        assert_eq!(export_info_id("export_info_.json"), None);
        assert_eq!(
            export_info_id("export_tables_info_x_from_1_to_2.json"),
            None
        );
        assert_eq!(export_info_id(&export_info_key("run1")), Some("run1"));
        assert_eq!(
            tables_info_name("export_tables_info_folio-db-export_from_1_to_6.json"),
            Some(TablesInfoName {
                export_id: "folio-db-export".into(),
                from: 1,
                to: 6
            })
        );
        // An id containing "_from_" still splits on the last one.
        assert_eq!(
            tables_info_name("export_tables_info_a_from_b_from_7_to_9.json")
                .unwrap()
                .export_id,
            "a_from_b"
        );
        assert_eq!(tables_info_name("export_tables_info_x.json"), None);
        assert_eq!(
            tables_info_name(&tables_info_key("e", 3, 4)),
            Some(TablesInfoName {
                export_id: "e".into(),
                from: 3,
                to: 4
            })
        );
        assert!(is_tables_info("export_tables_info_x.json"));
        assert!(!is_tables_info("export_info_x.json"));
    }
}
