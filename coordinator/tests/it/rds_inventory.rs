//! `coordinator::rds::discover` against RDS-export fixtures, in a local folder and on the
//! S3-compatible server (PGFLEET_TEST_S3_ENDPOINT, default http://127.0.0.1:9000, keys
//! pgfleet/pgfleet-secret). Every fixture is discovered both ways and the two inventories must
//! be identical. Fails, never skips, when the S3 server is unreachable.

use coordinator::rds::{self, ExportInventory};
use fleet_io::clients::Clients;
use pgfleet_tests::rds_fixture::{
    sample_batch, write_export, FixtureColumn, FixtureOptions, FixtureTable, IntStyle, KeyCase,
    WrittenExport,
};
use protocol::{ObjectLocation, S3Options};
use std::path::PathBuf;

const DB: &str = "shop";

struct Env {
    ctx: Clients,
    client: aws_sdk_s3::Client,
    bucket: String,
    s3: S3Options,
    dir: PathBuf,
}

impl Env {
    async fn new() -> Env {
        let client = pgfleet_tests::s3_client().await;
        let bucket = pgfleet_tests::unique("rdsinv");
        pgfleet_tests::create_bucket(&client, &bucket)
            .await
            .expect("the S3-compatible server is required (run deploy/local/services.sh)");
        let dir = std::env::temp_dir().join(pgfleet_tests::unique("pgfleet-rds-inventory-"));
        std::fs::create_dir_all(&dir).unwrap();
        Env {
            ctx: Clients::new("rds-inventory-test"),
            client,
            bucket,
            s3: S3Options {
                endpoint: Some(pgfleet_tests::s3_endpoint()),
                region: Some("us-east-1".into()),
                force_path_style: true,
                ..S3Options::default()
            },
            dir,
        }
    }

    fn local_root(&self, export_id: &str) -> ObjectLocation {
        ObjectLocation::File {
            root: self.dir.join(export_id).to_string_lossy().into_owned(),
        }
    }

    fn s3_root(&self, export_id: &str) -> ObjectLocation {
        ObjectLocation::S3 {
            bucket: self.bucket.clone(),
            prefix: format!("exports/{export_id}/"),
        }
    }

    async fn discover(
        &self,
        root: &ObjectLocation,
        database: &str,
        require_success: bool,
    ) -> anyhow::Result<ExportInventory> {
        rds::discover(&self.ctx, root, &self.s3, database, require_success).await
    }

    /// Write the fixture locally, upload it, discover it both ways; the inventories must match.
    async fn export(
        &self,
        opts: &FixtureOptions,
        tables: &[FixtureTable],
        database: &str,
        require_success: bool,
    ) -> (WrittenExport, ExportInventory) {
        let written = write_export(&self.dir, opts, tables).unwrap();
        pgfleet_tests::rds_fixture::upload_dir(
            &self.client,
            &self.bucket,
            &format!("exports/{}/", opts.export_id),
            &written.root,
        )
        .await
        .unwrap();
        let local = self
            .discover(&self.local_root(&opts.export_id), database, require_success)
            .await
            .unwrap();
        let remote = self
            .discover(&self.s3_root(&opts.export_id), database, require_success)
            .await
            .unwrap();
        assert_eq!(local, remote, "local and S3 inventories differ");
        (written, local)
    }

    fn cleanup(self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn cols() -> Vec<FixtureColumn> {
    vec![
        FixtureColumn::bigint("id"),
        FixtureColumn::varchar("name", 40),
        FixtureColumn::as_text("at", "timestamp with time zone"),
        FixtureColumn::boolean("flag"),
    ]
}

fn names(inv: &ExportInventory) -> Vec<&str> {
    inv.tables
        .iter()
        .map(|t| t.schema_and_table.as_str())
        .collect()
}

/// Files, row counts and row groups of `target` match what the fixture wrote.
fn assert_files(inv: &ExportInventory, written: &WrittenExport, target: &str) {
    let t = inv
        .tables
        .iter()
        .find(|t| t.target == target)
        .unwrap_or_else(|| panic!("{target} not in the inventory"));
    let mut want: Vec<_> = written
        .files_of(target)
        .into_iter()
        .map(|f| (f.key.clone(), f.size, f.row_groups.clone()))
        .collect();
    let mut got: Vec<_> = t
        .files
        .iter()
        .map(|f| (f.key.clone(), f.size, f.row_groups.clone()))
        .collect();
    want.sort();
    got.sort();
    assert_eq!(got, want, "files of {target}");
    assert_eq!(t.rows, written.rows_of(target), "rows of {target}");
}

fn assert_has(list: &[String], needle: &str) {
    assert!(
        list.iter().any(|w| w.contains(needle)),
        "no entry contains {needle:?} in {list:#?}"
    );
}

#[tokio::test]
async fn every_layout_variant_is_found() {
    let env = Env::new().await;

    // Several batch folders, several files per folder, several row groups, part-number gaps.
    let mut orders =
        FixtureTable::generated("public", "orders", cols(), &[&[120, 80, 7], &[50], &[1]]);
    orders.row_group_rows = Some(50);
    // A table name with a space, and one with quotes and spaces: `_` in folder names.
    let spaced = FixtureTable::generated("public", "my table", cols(), &[&[10]]);
    let odd = FixtureTable::generated("public", "Odd \"Name\" Table", cols(), &[&[3, 4]]);
    // The older flat layout.
    let mut flat = FixtureTable::generated("sales", "flat_t", cols(), &[&[25, 5]]);
    flat.flat = Some(true);
    // An empty table: a batch folder with only _SUCCESS.
    let empty = FixtureTable::generated("public", "empty_t", cols(), &[&[]]);
    // An empty table without any folder, sizeGB 0.
    let mut no_folder = FixtureTable::new("public", "no_folder", cols());
    no_folder.size_gb = Some(0.0);
    // A partitioned table: one batch folder per partition under the parent's folder.
    let mut parted = FixtureTable::generated("public", "measurements", cols(), &[&[6], &[9, 2]]);
    parted.batch_names = Some(vec!["measurements_p1/1".into(), "measurements_p2/1".into()]);
    // Dots inside names.
    let dotted = FixtureTable::generated("my.schema", "t.x", cols(), &[&[2]]);
    // Not exported by AWS: left out with a warning, whatever its folder holds.
    let mut failed = FixtureTable::generated("public", "failed_t", cols(), &[&[5]]);
    failed.status = "FAILED".into();
    // Another database of the same export: not ours.
    let mut other = FixtureTable::generated("public", "orders", cols(), &[&[4]]);
    other.database = Some("otherdb".into());
    // Spark side files and a stray file.
    let mut stray = FixtureTable::generated("public", "stray", cols(), &[&[1]]);
    stray.extra_objects = vec![("1/notes.txt".into(), b"hello".to_vec())];

    let mut opts = FixtureOptions::new("exp-layouts", DB);
    opts.split_tables_info = 3;
    opts.part_number_gaps = true;
    opts.crc_files = true;
    opts.warnings = vec![(
        "shop.public.a/b".into(),
        "Table name contains '/': skipped".into(),
    )];
    let tables = [
        orders, spaced, odd, flat, empty, no_folder, parted, dotted, failed, other, stray,
    ];
    let (written, inv) = env.export(&opts, &tables, DB, true).await;

    assert_eq!(inv.problems, Vec::<String>::new());
    assert_eq!(inv.export_id.as_deref(), Some("exp-layouts"));
    let info = inv.info.as_ref().expect("export_info parsed");
    assert_eq!(info.status.as_deref(), Some("COMPLETE"));
    assert_eq!(info.percent_progress, Some(100.0));
    assert_eq!(
        written.metadata_files.len(),
        4,
        "{:?}",
        written.metadata_files
    );
    assert_eq!(
        names(&inv),
        [
            "my.schema.t.x",
            "public.Odd \"Name\" Table",
            "public.empty_t",
            "public.measurements",
            "public.my table",
            "public.no_folder",
            "public.orders",
            "public.stray",
            "sales.flat_t",
        ]
    );
    for t in &inv.tables {
        assert_files(&inv, &written, &t.target);
        assert_eq!(t.status, "COMPLETE");
        assert_eq!(
            t.column_names(),
            ["id", "name", "at", "flag"],
            "{}",
            t.target
        );
        for f in &t.files {
            assert_eq!(f.fields, ["id", "name", "at", "flag"], "{}", f.key);
        }
    }

    let orders = inv.table("public.orders").unwrap();
    assert_eq!(orders.folder.as_deref(), Some("shop/public.orders/"));
    assert_eq!(orders.rows, 258);
    assert_eq!(orders.files.len(), 5);
    assert_eq!(orders.files[0].row_groups, vec![50, 50, 20]);
    let parts: Vec<&str> = orders.files[..3]
        .iter()
        .map(|f| &f.key["shop/public.orders/1/".len().."shop/public.orders/1/part-00000".len()])
        .collect();
    assert_eq!(parts, ["part-00000", "part-00002", "part-00005"]);
    let batches: Vec<(&str, bool, usize)> = orders
        .batches
        .iter()
        .map(|b| (b.prefix.as_str(), b.has_success, b.part_files))
        .collect();
    assert_eq!(
        batches,
        [
            ("shop/public.orders/1/", true, 3),
            ("shop/public.orders/2/", true, 1),
            ("shop/public.orders/3/", true, 1)
        ]
    );
    assert_eq!(orders.columns[1].original_type, "character varying");
    assert_eq!(orders.columns[1].expected_exported_type, "binary (UTF8)");
    assert_eq!(orders.columns[1].original_char_max_length, Some(40));
    assert_eq!(orders.columns[0].expected_exported_type, "int64");

    let spaced = inv.table("public.my table").unwrap();
    assert_eq!(spaced.folder.as_deref(), Some("shop/public.my_table/"));
    assert_eq!(spaced.rows, 10);
    let odd = inv.table("public.Odd \"Name\" Table").unwrap();
    assert_eq!(odd.folder.as_deref(), Some("shop/public.Odd__Name__Table/"));
    assert_eq!(odd.rows, 7);

    let flat = inv.table("sales.flat_t").unwrap();
    assert_eq!(flat.rows, 30);
    assert_eq!(flat.batches.len(), 1);
    assert_eq!(flat.batches[0].prefix, "shop/sales.flat_t/");
    assert!(flat.batches[0].has_success);

    let empty = inv.table("public.empty_t").unwrap();
    assert!(empty.files.is_empty());
    assert_eq!(empty.rows, 0);
    assert_eq!(empty.folder.as_deref(), Some("shop/public.empty_t/"));
    assert_eq!(empty.batches.len(), 1);
    assert!(empty.batches[0].has_success && empty.batches[0].part_files == 0);

    let no_folder = inv.table("public.no_folder").unwrap();
    assert_eq!(no_folder.folder, None);
    assert!(no_folder.files.is_empty() && no_folder.batches.is_empty());

    let parted = inv.table("public.measurements").unwrap();
    assert_eq!(parted.rows, 17);
    let prefixes: Vec<&str> = parted.batches.iter().map(|b| b.prefix.as_str()).collect();
    assert_eq!(
        prefixes,
        [
            "shop/public.measurements/measurements_p1/1/",
            "shop/public.measurements/measurements_p2/1/"
        ]
    );
    assert_eq!(
        inv.table("my.schema.t.x").unwrap().folder.as_deref(),
        Some("shop/my.schema.t.x/")
    );

    assert_eq!(
        inv.total_rows(),
        258 + 10 + 7 + 30 + 17 + 2 + 1,
        "the FAILED table and the other database are not counted"
    );
    assert_has(&inv.warnings, "AWS export warning for postgres");
    assert_has(
        &inv.warnings,
        "AWS export warning for shop.public.a/b: Table name contains '/'",
    );
    assert_has(
        &inv.warnings,
        "\"shop.public.failed_t\" has status \"FAILED\"",
    );
    assert_has(
        &inv.warnings,
        "\"shop.public.no_folder\": no part file and no _SUCCESS",
    );
    assert_has(&inv.warnings, "shop/public.stray/1/notes.txt");
    assert_eq!(inv.warnings.len(), 5, "{:#?}", inv.warnings);

    // The other database of the export is discovered on its own.
    let other = env
        .discover(&env.local_root("exp-layouts"), "otherdb", true)
        .await
        .unwrap();
    assert_eq!(names(&other), ["public.orders"]);
    assert_eq!(other.tables[0].rows, 4);
    assert_eq!(
        other.tables[0].folder.as_deref(),
        Some("otherdb/public.orders/")
    );
    env.cleanup();
}

#[tokio::test]
async fn metadata_spellings_are_tolerated() {
    let env = Env::new().await;
    for (i, (case, ints)) in [
        (KeyCase::Pascal, IntStyle::String),
        (KeyCase::Lower, IntStyle::Float),
        (KeyCase::Camel, IntStyle::Float),
    ]
    .into_iter()
    .enumerate()
    {
        let mut opts = FixtureOptions::new(&format!("exp-spelling-{i}"), DB);
        opts.key_case = case;
        opts.int_style = ints;
        opts.split_tables_info = 2;
        let t = FixtureTable::generated("public", "t", cols(), &[&[3], &[4]]);
        let u = FixtureTable::generated("public", "u", cols(), &[&[5]]);
        let (written, inv) = env.export(&opts, &[t, u], DB, true).await;
        assert_eq!(inv.problems, Vec::<String>::new(), "{case:?} {ints:?}");
        assert_eq!(names(&inv), ["public.t", "public.u"]);
        assert_files(&inv, &written, "shop.public.t");
        assert_files(&inv, &written, "shop.public.u");
        let t = inv.table("public.t").unwrap();
        assert_eq!(
            t.columns[1].original_char_max_length,
            Some(40),
            "{case:?} {ints:?}"
        );
        assert_eq!(t.columns[0].original_num_precision, Some(64));
        assert_eq!(inv.info.as_ref().unwrap().percent_progress, Some(100.0));
        assert_eq!(
            inv.warnings,
            ["AWS export warning for postgres: The database postgres has no tables to export"]
        );
    }
    env.cleanup();
}

#[tokio::test]
async fn missing_success_marker() {
    let env = Env::new().await;
    let mut t = FixtureTable::generated("public", "t", cols(), &[&[3], &[4]]);
    t.omit_success = vec![1];
    let opts = FixtureOptions::new("exp-nosuccess", DB);
    let (_, strict) = env.export(&opts, &[t], DB, true).await;
    assert_eq!(strict.problems.len(), 1, "{:#?}", strict.problems);
    assert!(strict.problems[0].starts_with(
        "table \"shop.public.t\": shop/public.t/2/ holds 1 part file(s) but no _SUCCESS"
    ));
    let t = strict.table("public.t").unwrap();
    assert_eq!(t.rows, 7);
    assert!(t.batches[0].has_success && !t.batches[1].has_success);

    let lenient = env
        .discover(&env.s3_root("exp-nosuccess"), DB, false)
        .await
        .unwrap();
    assert!(lenient.problems.is_empty(), "{:#?}", lenient.problems);
    assert_has(
        &lenient.warnings,
        "table \"shop.public.t\": shop/public.t/2/ holds 1 part file(s) but no _SUCCESS",
    );
    env.cleanup();
}

#[tokio::test]
async fn corrupt_and_foreign_files_are_problems() {
    let env = Env::new().await;
    let mut t = FixtureTable::generated("public", "t", cols(), &[&[3, 4, 5]]);
    t.corrupt_files = vec![(0, 1)];
    t.extra_objects = vec![(
        "1/part-00099-00000000-0000-0000-0000-000000000000-c000.gz.parquet".into(),
        b"this is a CSV file, not Parquet\n1,2,3\n".to_vec(),
    )];
    let opts = FixtureOptions::new("exp-corrupt", DB);
    let (written, inv) = env.export(&opts, &[t], DB, true).await;
    let corrupt = &written.files_of("shop.public.t")[1];
    assert!(corrupt.corrupt);
    assert_eq!(inv.problems.len(), 2, "{:#?}", inv.problems);
    assert_has(
        &inv.problems,
        &format!(
            "table \"shop.public.t\": {} is corrupt or not Parquet",
            corrupt.key
        ),
    );
    assert_has(
        &inv.problems,
        "shop/public.t/1/part-00099-00000000-0000-0000-0000-000000000000-c000.gz.parquet is corrupt or not Parquet",
    );
    let t = inv.table("public.t").unwrap();
    assert_eq!(t.files.len(), 4);
    assert_eq!(t.rows, 8, "readable files only");
    env.cleanup();
}

#[tokio::test]
async fn columns_must_agree_with_the_metadata() {
    let env = Env::new().await;
    let mut t = FixtureTable::generated("public", "t", cols(), &[&[3, 4]]);
    // The second file has a renamed column and an extra one.
    let other = vec![
        FixtureColumn::bigint("id"),
        FixtureColumn::text("nom"),
        FixtureColumn::as_text("at", "timestamp with time zone"),
        FixtureColumn::boolean("flag"),
        FixtureColumn::integer("extra"),
    ];
    t.batches[0][1] = sample_batch(&other, 3, 4);
    // Column order differs from the metadata: fine (names, not positions).
    let mut reordered = cols();
    reordered.reverse();
    let mut u = FixtureTable::generated("public", "u", cols(), &[&[2]]);
    u.batches[0][0] = sample_batch(&reordered, 0, 2);
    let opts = FixtureOptions::new("exp-columns", DB);
    let (written, inv) = env.export(&opts, &[t, u], DB, true).await;
    let bad = &written.files_of("shop.public.t")[1].key;
    assert_eq!(
        inv.problems,
        [format!(
            "table \"shop.public.t\": the Parquet fields of {bad} disagree with the columns of \
             the metadata: missing \"name\"; unexpected \"nom\", \"extra\""
        )]
    );
    assert_eq!(
        inv.table("public.u").unwrap().files[0].fields,
        ["flag", "at", "name", "id"]
    );
    env.cleanup();
}

#[tokio::test]
async fn ambiguous_missing_and_orphan_folders() {
    let env = Env::new().await;
    // Two tables, one folder.
    let a = FixtureTable::generated("public", "my table", cols(), &[&[1]]);
    let b = FixtureTable::generated("public", "my_table", cols(), &[&[2]]);
    // Non-empty per metadata, but no files.
    let mut gone = FixtureTable::new("public", "gone", cols());
    gone.size_gb = Some(0.25);
    // Files whose table the metadata does not list.
    let mut orphan = FixtureTable::generated("public", "orphan", cols(), &[&[1]]);
    orphan.in_metadata = false;
    // A batch folder with only _SUCCESS but a metadata row count: files are missing.
    let mut counted = FixtureTable::generated("public", "counted", cols(), &[&[]]);
    counted.table_statistics = Some(serde_json::json!({"numberOfRows": 42}));
    let opts = FixtureOptions::new("exp-ambiguous", DB);
    let (_, inv) = env
        .export(&opts, &[a, b, gone, orphan, counted], DB, true)
        .await;
    assert_eq!(inv.problems.len(), 3, "{:#?}", inv.problems);
    assert_has(
        &inv.problems,
        "tables \"shop.public.my table\" and \"shop.public.my_table\" all map to folder shop/public.my_table/",
    );
    assert_has(&inv.problems, "table \"shop.public.gone\": no part file and no _SUCCESS under shop/public.gone/, but its metadata says sizeGB 0.25");
    assert_has(&inv.problems, "table \"shop.public.counted\": its metadata counts 42 rows but shop/public.counted/ holds no part file");
    assert_has(
        &inv.warnings,
        "folder shop/public.orphan/ (1 part file(s)) belongs to no table",
    );
    let a = inv.table("public.my table").unwrap();
    assert!(
        a.files.is_empty(),
        "ambiguous files are attributed to neither table"
    );
    env.cleanup();
}

#[tokio::test]
async fn export_level_oddities() {
    let env = Env::new().await;
    // No export_info, a FAILED export task is a problem, a wrong database is a problem.
    let mut opts = FixtureOptions::new("exp-noinfo", DB);
    opts.write_export_info = false;
    let t = FixtureTable::generated("public", "t", cols(), &[&[1]]);
    let (_, inv) = env.export(&opts, std::slice::from_ref(&t), DB, true).await;
    assert!(inv.info.is_none());
    assert!(inv.problems.is_empty(), "{:#?}", inv.problems);
    assert_has(&inv.warnings, "no export_info_<id>.json");
    assert_eq!(inv.export_id.as_deref(), Some("exp-noinfo"));

    let mut opts = FixtureOptions::new("exp-failed", DB);
    opts.export_status = "FAILED".into();
    let (_, inv) = env.export(&opts, std::slice::from_ref(&t), DB, true).await;
    assert_has(
        &inv.problems,
        "export_info_exp-failed.json: the export task's status is \"FAILED\"",
    );

    let wrong = env
        .discover(&env.s3_root("exp-failed"), "shpo", true)
        .await
        .unwrap();
    assert_has(
        &wrong.problems,
        "no table of database \"shpo\" in the export metadata (it lists databases: shop)",
    );
    assert!(wrong.tables.is_empty());
    env.cleanup();
}

#[tokio::test]
async fn footers_larger_than_the_first_read() {
    let env = Env::new().await;
    // 200 columns × 20 row groups: the footer is far larger than the 64 KiB tail read.
    let wide: Vec<FixtureColumn> = (0..200)
        .map(|i| FixtureColumn::bigint(&format!("c{i}")))
        .collect();
    let mut t = FixtureTable::generated("public", "wide", wide, &[&[40]]);
    t.row_group_rows = Some(2);
    let opts = FixtureOptions::new("exp-wide", DB);
    let (written, inv) = env.export(&opts, &[t], DB, true).await;
    assert!(inv.problems.is_empty(), "{:#?}", inv.problems);
    let f = &inv.tables[0].files[0];
    assert!(
        f.size > rds::footers::TAIL_BYTES,
        "footer test needs a file over 64 KiB"
    );
    assert_eq!(f.row_groups, vec![2; 20]);
    assert_eq!(f.fields.len(), 200);
    assert_files(&inv, &written, "shop.public.wide");
    env.cleanup();
}

#[tokio::test]
async fn unreadable_roots_are_clear_errors() {
    let env = Env::new().await;
    let opts = FixtureOptions::new("exp-roots", DB);
    let t = FixtureTable::generated("public", "t", cols(), &[&[1]]);
    env.export(&opts, &[t], DB, true).await;

    // A local folder that does not exist.
    let missing = ObjectLocation::File {
        root: env.dir.join("nope").to_string_lossy().into_owned(),
    };
    let e = env
        .discover(&missing, DB, true)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("cannot read the RDS export at file://") && e.contains("nope"),
        "{e}"
    );
    assert!(e.contains("Check that the folder exists"), "{e}");

    // A bucket that does not exist.
    let no_bucket = ObjectLocation::S3 {
        bucket: pgfleet_tests::unique("nobucket"),
        prefix: "exports/exp-roots/".into(),
    };
    let e = env
        .discover(&no_bucket, DB, true)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("cannot read the RDS export at s3://nobucket"),
        "{e}"
    );
    assert!(e.contains("NoSuchBucket"), "{e}");
    assert!(e.contains("credentials") && e.contains("export id"), "{e}");

    // A prefix with nothing under it.
    let e = env
        .discover(&env.s3_root("exp-typo"), DB, true)
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("no RDS export at s3://"), "{e}");
    assert!(e.contains("it is empty or does not exist"), "{e}");

    // The parent of the export (the trailing export id forgotten): the error points at it.
    let parent = ObjectLocation::S3 {
        bucket: env.bucket.clone(),
        prefix: "exports/".into(),
    };
    let e = env
        .discover(&parent, DB, true)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        e.contains(&format!(
            "exports found one level down: s3://{}/exports/exp-roots/",
            env.bucket
        )),
        "{e}"
    );
    let local_parent = ObjectLocation::File {
        root: env.dir.to_string_lossy().into_owned(),
    };
    let e = env
        .discover(&local_parent, DB, true)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("exports found one level down: file://") && e.contains("exp-roots"),
        "{e}"
    );
    env.cleanup();
}
