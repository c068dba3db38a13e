//! Hostile identifiers: a schema and tables and columns whose names hold double quotes,
//! semicolons, spaces, backslashes, dots, `%` and `/`, unicode and reserved words export to CSV
//! with every row exact, and survive an `rds-parquet` export + restore round trip with equal
//! ordered checksums. And a table name or pattern in a job spec never injects SQL: specs whose
//! patterns, key overrides, transforms or settings carry `"; DROP TABLE victim; --` and the like
//! fail with a clear error (or match nothing), and `victim` is untouched.

use pgfleet_tests::export_check::{check_table, Objects, TableCheck};
use pgfleet_tests::*;
use protocol::{quote_ident, QualifiedName};
use std::path::Path;
use std::process::Command;

const SCHEMA: &str = "Odd.Schema; \"q\" \\ ü";

/// (table, columns with their types, primary key column).
struct Table {
    name: &'static str,
    columns: &'static [(&'static str, &'static str)],
    key: Option<&'static str>,
}

const TABLES: &[Table] = &[
    Table {
        name: "select",
        columns: &[
            ("id", "bigint"),
            ("from", "text"),
            ("order", "int"),
            ("user", "text"),
        ],
        key: Some("id"),
    },
    Table {
        name: "Robert'); DROP TABLE students;--",
        columns: &[
            ("id", "int"),
            ("a\"b", "text"),
            ("semi;colon", "text"),
            ("sp ace", "numeric(10,2)"),
        ],
        key: Some("id"),
    },
    Table {
        name: "tab\\le",
        columns: &[("back\\slash", "text"), ("日本語 列", "text")],
        key: None,
    },
    Table {
        name: "日本語 表",
        columns: &[("id", "int"), ("Ümlaut", "text"), ("emoji 😀", "text")],
        key: Some("id"),
    },
    Table {
        name: "a\"b",
        columns: &[("x\"y", "int"), ("%per/cent", "text")],
        key: Some("x\"y"),
    },
    Table {
        name: "MiXeD.Case%/x",
        columns: &[("Id", "int"), ("Value'", "text")],
        key: Some("Id"),
    },
];

const ROWS: i64 = 2500;

fn qualified(table: &str) -> String {
    QualifiedName::new(SCHEMA, table).quoted()
}

/// `"a ""b"""`: a name as a spec pattern part (quoted, so literal and case-sensitive).
fn pattern_part(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// A TOML basic string.
fn toml_str(s: &str) -> String {
    serde_json::to_string(s).unwrap()
}

fn columns_sql(t: &Table) -> String {
    t.columns
        .iter()
        .map(|(c, _)| quote_ident(c))
        .collect::<Vec<_>>()
        .join(", ")
}

async fn create_source(client: &tokio_postgres::Client) -> anyhow::Result<()> {
    let mut sql = format!(
        "CREATE SCHEMA {s};
         CREATE TABLE {s}.students (id int PRIMARY KEY);
         INSERT INTO {s}.students VALUES (1), (2);
         CREATE TABLE public.victim (id int PRIMARY KEY, v text);
         INSERT INTO public.victim SELECT g, 'v' || g FROM generate_series(1, 10) g;",
        s = quote_ident(SCHEMA)
    );
    // Values that are awkward too: quotes, separators, newlines, backslashes, unicode, '', NULL.
    let text = |g: &str, tag: &str| {
        format!(
            "CASE {g} % 9 WHEN 0 THEN NULL WHEN 1 THEN '' WHEN 2 THEN '\"q\"; DROP TABLE victim; --'
             WHEN 3 THEN E'back\\\\slash\\nnew line' WHEN 4 THEN 'ü 日本語 😀' WHEN 5 THEN ' , '
             WHEN 6 THEN E'\\\\.' ELSE '{tag}-' || {g} END"
        )
    };
    for t in TABLES {
        let defs: Vec<String> = t
            .columns
            .iter()
            .map(|(c, ty)| {
                let pk = if Some(*c) == t.key {
                    " PRIMARY KEY"
                } else {
                    ""
                };
                format!("{} {ty}{pk}", quote_ident(c))
            })
            .collect();
        let values: Vec<String> = t
            .columns
            .iter()
            .enumerate()
            .map(|(i, (c, ty))| match *ty {
                "text" => text(&format!("(g + {i})"), &c.replace('\'', "''")),
                "numeric(10,2)" => "CASE WHEN g % 5 = 0 THEN NULL ELSE g / 7.0 END".into(),
                // Keys: sparse, negative too.
                _ if Some(*c) == t.key => "g * 3 - 1000".into(),
                _ => "CASE WHEN g % 4 = 0 THEN NULL ELSE g END".into(),
            })
            .collect();
        sql.push_str(&format!(
            "CREATE TABLE {q} ({defs});
             INSERT INTO {q} ({cols}) SELECT {values} FROM generate_series(1, {ROWS}) g;",
            q = qualified(t.name),
            defs = defs.join(", "),
            cols = columns_sql(t),
            values = values.join(", ")
        ));
    }
    sql.push_str("ANALYZE;");
    client.batch_execute(&sql).await?;
    Ok(())
}

fn coordinator(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(bin("coordinator"))
        .args(args)
        .output()
        .expect("run coordinator");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn export_spec(source: &str, output: &str, format: &str) -> String {
    format!(
        r#"kind = "export"
name = "identifiers"
[source]
url = "{source}"
[tables]
include = [{include}]
exclude = [{exclude}]
[chunking]
rows_per_chunk = 700
[output]
url = "{output}"
format = "{format}"
"#,
        include = toml_str(&format!("{}.*", pattern_part(SCHEMA))),
        exclude = toml_str(&format!("{}.students", pattern_part(SCHEMA))),
    )
}

/// Ordered checksum of a table by the text form of its rows.
async fn checksum(client: &tokio_postgres::Client, table: &str) -> anyhow::Result<(i64, String)> {
    let row = client
        .query_one(
            &format!(
                "SELECT count(*), coalesce(md5(string_agg(x::text, '|' ORDER BY x::text)), '') FROM {} x",
                qualified(table)
            ),
            &[],
        )
        .await?;
    Ok((row.get(0), row.get(1)))
}

fn file_url(dir: &Path) -> String {
    format!("file://{}/", dir.display())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_identifiers_export_exactly_and_round_trip() -> anyhow::Result<()> {
    let source = ScratchDb::create("pgfleet_ident_src_").await?;
    let src = source.client().await?;
    create_source(&src).await?;
    let dir = std::env::temp_dir().join(unique("pgfleet-ident-"));
    std::fs::create_dir_all(&dir)?;

    // CSV to file://, every row compared.
    let csv_dir = dir.join("csv");
    std::fs::create_dir_all(&csv_dir)?;
    let spec = dir.join("export.toml");
    std::fs::write(&spec, export_spec(&source.url, &file_url(&csv_dir), "csv"))?;
    let (code, out, err) = coordinator(&["plan", spec.to_str().unwrap()]);
    assert_eq!(code, 0, "plan: {out}{err}");
    let (code, out, err) = coordinator(&["run", spec.to_str().unwrap(), "--workers", "2"]);
    assert_eq!(code, 0, "run: {out}{err}");
    let objects = Objects::File {
        root: csv_dir.clone(),
    };
    for t in TABLES {
        let folder = protocol::layout::csv::table_folder(&QualifiedName::new(SCHEMA, t.name));
        let folder = folder.trim_end_matches('/');
        let check = TableCheck {
            folder,
            select: format!("SELECT {} FROM {}", columns_sql(t), qualified(t.name)),
            columns: t.columns.iter().map(|(c, _)| *c).collect(),
        };
        let n = check_table(&objects, "", &src, &check, "", false).await?;
        assert_eq!(n as i64, ROWS, "{}", t.name);
    }
    // Only the tables asked for: `students` was excluded, `public` not included.
    let mut folders: Vec<String> = std::fs::read_dir(&csv_dir)?
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    folders.sort();
    assert_eq!(folders.len(), TABLES.len(), "{folders:?}");

    // rds-parquet export, then restore into a schema-only copy; literal patterns this time.
    let target = ScratchDb::create("pgfleet_ident_dst_").await?;
    let dump = Command::new("pg_dump")
        .args(["--schema-only", "--no-owner", &source.url])
        .output()?;
    assert!(
        dump.status.success(),
        "{}",
        String::from_utf8_lossy(&dump.stderr)
    );
    let mut load = Command::new("psql")
        .args(["-X", "-q", "-v", "ON_ERROR_STOP=1", &target.url])
        .stdin(std::process::Stdio::piped())
        .spawn()?;
    std::io::Write::write_all(load.stdin.as_mut().unwrap(), &dump.stdout)?;
    assert!(load.wait()?.success(), "loading the schema failed");
    let rds_dir = dir.join("rds");
    std::fs::create_dir_all(&rds_dir)?;
    let spec = dir.join("export-rds.toml");
    std::fs::write(
        &spec,
        export_spec(&source.url, &file_url(&rds_dir), "rds-parquet"),
    )?;
    let (code, out, err) = coordinator(&["run", spec.to_str().unwrap(), "--workers", "2"]);
    assert_eq!(code, 0, "rds-parquet export: {out}{err}");
    let literal: Vec<String> = TABLES
        .iter()
        .map(|t| {
            toml_str(&format!(
                "{}.{}",
                pattern_part(SCHEMA),
                pattern_part(t.name)
            ))
        })
        .collect();
    let restore = dir.join("restore.toml");
    std::fs::write(
        &restore,
        format!(
            r#"kind = "restore"
name = "identifiers-restore"
[export]
url = "{root}"
database = "{db}"
[target]
url = "{dst}"
[tables]
include = [{include}]
"#,
            root = file_url(&rds_dir),
            db = source.name,
            dst = target.url,
            include = literal.join(", ")
        ),
    )?;
    let (code, out, err) = coordinator(&["plan", restore.to_str().unwrap()]);
    assert_eq!(code, 0, "restore plan: {out}{err}");
    let (code, out, err) = coordinator(&["run", restore.to_str().unwrap(), "--workers", "2"]);
    assert_eq!(code, 0, "restore: {out}{err}");
    let dst = target.client().await?;
    for t in TABLES {
        let want = checksum(&src, t.name).await?;
        assert_eq!(want.0, ROWS);
        assert_eq!(checksum(&dst, t.name).await?, want, "{}", t.name);
    }
    // Nothing else was loaded or dropped.
    let students: i64 = dst
        .query_one(
            &format!("SELECT count(*) FROM {}.students", quote_ident(SCHEMA)),
            &[],
        )
        .await?
        .get(0);
    assert_eq!(students, 0);
    let victims: i64 = dst
        .query_one("SELECT count(*) FROM public.victim", &[])
        .await?
        .get(0);
    assert_eq!(victims, 0);

    let _ = std::fs::remove_dir_all(&dir);
    source.drop().await?;
    target.drop().await?;
    Ok(())
}

/// Rows of `public.victim`; an error if it is gone.
async fn victim_rows(src: &tokio_postgres::Client) -> anyhow::Result<i64> {
    Ok(src
        .query_one("SELECT count(*) FROM public.victim", &[])
        .await?
        .get(0))
}

/// Spec fields that end up near SQL, each with an injection attempt; none may run anything.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spec_names_and_patterns_never_inject_sql() -> anyhow::Result<()> {
    let source = ScratchDb::create("pgfleet_inject_").await?;
    let src = source.client().await?;
    create_source(&src).await?;
    let dir = std::env::temp_dir().join(unique("pgfleet-inject-"));
    std::fs::create_dir_all(&dir)?;
    let out_url = file_url(&dir.join("out"));
    std::fs::create_dir_all(dir.join("out"))?;
    assert_eq!(victim_rows(&src).await?, 10);

    let attacks = [
        r#"x"; DROP TABLE victim; --"#,
        r#"public."victim; DROP TABLE victim; --""#,
        r#"public.victim"; DROP TABLE victim; --"#,
        r#"'; DROP TABLE victim; --"#,
        r#"public.victim; DROP TABLE victim"#,
        r#"public.*; DROP TABLE victim"#,
        r#""public"".""victim"; DROP TABLE victim; --"#,
        r#"public.victim') OR 1=1; DROP TABLE victim; --"#,
        r#"x\"; DROP TABLE victim; --"#,
    ];
    let mut cases: Vec<(String, String)> = Vec::new();
    let base = |include: &str, extra: &str| {
        format!(
            r#"kind = "export"
name = "inject"
[source]
url = "{}"
{extra}
[tables]
include = [{include}]
[output]
url = "{out_url}"
"#,
            source.url
        )
    };
    for a in attacks {
        cases.push((format!("include {a}"), base(&toml_str(a), "")));
        cases.push((
            format!("exclude {a} (include public.victim)"),
            base(
                &format!("\"public.victim\"]\nexclude = [{}", toml_str(a)),
                "",
            ),
        ));
        cases.push((
            format!("key override {a}"),
            base("\"public.victim\"", "")
                + &format!("[tables.keys]\n\"public.victim\" = {}\n", toml_str(a)),
        ));
        cases.push((
            format!("transform column {a}"),
            base("\"public.victim\"", "")
                + &format!(
                    "[[transform]]\ncolumns = [{}]\nprefix = \"x\"\n",
                    toml_str(a)
                ),
        ));
        cases.push((
            format!("statement_timeout {a}"),
            base(
                "\"public.victim\"",
                &format!("statement_timeout = {}", toml_str(a)),
            ),
        ));
        cases.push((
            format!("application_name {a}"),
            base(
                "\"public.victim\"",
                &format!("application_name = {}", toml_str(&a[..a.len().min(60)])),
            ),
        ));
    }
    // Restore side: target table patterns, against a real export of `victim` (restoring into
    // the source itself, where `victim` has rows: a pattern that matched it would be refused
    // as non-empty, but none may match).
    let rds_dir = dir.join("rds");
    std::fs::create_dir_all(&rds_dir)?;
    let rds_spec = dir.join("rds.toml");
    std::fs::write(
        &rds_spec,
        base("\"public.victim\"", "").replace(&out_url, &file_url(&rds_dir))
            + "format = \"rds-parquet\"\n",
    )?;
    let (code, out, err) = coordinator(&["run", rds_spec.to_str().unwrap()]);
    assert_eq!(code, 0, "rds-parquet export of victim: {out}{err}");
    for a in attacks {
        cases.push((
            format!("restore include {a}"),
            format!(
                r#"kind = "restore"
name = "inject"
[export]
url = "{}"
database = "{}"
[target]
url = "{}"
[tables]
include = [{}]
"#,
                file_url(&rds_dir),
                source.name,
                source.url,
                toml_str(a)
            ),
        ));
    }

    let mut outcomes = Vec::new();
    for (i, (what, text)) in cases.iter().enumerate() {
        let spec = dir.join(format!("case-{i}.toml"));
        std::fs::write(&spec, text)?;
        for cmd in ["plan", "run"] {
            let (code, out, err) = coordinator(&[cmd, spec.to_str().unwrap()]);
            assert_eq!(
                victim_rows(&src).await?,
                10,
                "{what}: `coordinator {cmd}` changed or dropped victim\n{out}{err}"
            );
            if what.starts_with("restore include") {
                // A restore pattern that matches no table of the export is refused (it would
                // load nothing and succeed), by plan and by run alike.
                assert_ne!(code, 0, "{what}: {cmd}: {out}{err}");
            }
            if code != 0 {
                // A clear error, not a crash.
                assert!(
                    err.contains("error:") || err.contains("failed"),
                    "{what}: {cmd}: {err}"
                );
                assert!(!err.contains("panicked"), "{what}: {cmd}: {err}");
            }
            outcomes.push(format!("{what} / {cmd}: exit {code}: {}", err.trim()));
        }
    }
    // The attacks in table patterns never match a table: every include case fails (a literal
    // that matches nothing is an error; an unparseable pattern too).
    for line in outcomes.iter().filter(|l| l.starts_with("include ")) {
        assert!(!line.contains(": exit 0:"), "{line}");
    }
    eprintln!("{}", outcomes.join("\n"));
    // The whole schema is as it was.
    let tables: i64 = src
        .query_one(
            "SELECT count(*) FROM pg_class WHERE relkind = 'r' AND relnamespace IN
               ('public'::regnamespace, to_regnamespace($1))",
            &[&quote_ident(SCHEMA)],
        )
        .await?
        .get(0);
    assert_eq!(tables, TABLES.len() as i64 + 2);

    let _ = std::fs::remove_dir_all(&dir);
    source.drop().await?;
    Ok(())
}
