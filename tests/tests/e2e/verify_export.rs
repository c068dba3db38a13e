//! `coordinator verify EXPORT_SPEC`, from the outside: clean exports verify OK in every format
//! (csv, csv.gz, rds-parquet; file:// and S3), and each kind of damage to the objects — deleted,
//! truncated, one byte flipped, a row appended, a part replaced by another chunk's — makes
//! `verify` exit 1 naming the table and the part; a source row changed after the export is
//! caught with `--source`; parts of an earlier run are reported as stale, not failures.

use pgfleet_tests::*;
use std::path::{Path, PathBuf};

const DDL: &str = r#"
CREATE TABLE public.t (
    id bigint PRIMARY KEY, doc jsonb, at timestamptz, amount numeric(12,4), f float8,
    tags text[], note text
);
CREATE TABLE public.u (x int, y text);
"#;

const DATA: &str = r#"
INSERT INTO public.t
SELECT g,
       CASE WHEN g % 9 = 0 THEN NULL ELSE format('{"b": %s, "a": [1, 2, null]}', g)::jsonb END,
       CASE WHEN g % 7 = 0 THEN NULL ELSE timestamptz '2026-03-29 01:30:00+02' + g * interval '17 minutes' END,
       CASE WHEN g % 5 = 0 THEN NULL ELSE (g / 8.0)::numeric(12,4) END,
       CASE g % 4 WHEN 0 THEN NULL WHEN 1 THEN 0.1 WHEN 2 THEN 'Infinity' ELSE g / 3.0 END,
       CASE WHEN g % 4 = 0 THEN NULL ELSE ARRAY['a' || g, NULL, 'q"u,o'] END,
       CASE WHEN g % 3 = 0 THEN NULL ELSE E'line\n"quoted", ' || g END
FROM generate_series(1, 3000) g;
INSERT INTO public.u SELECT g % 50, 'y' || g FROM generate_series(1, 500) g;
ANALYZE;
"#;

fn spec(dir: &Path, name: &str, source: &str, url: &str, format: &str, extra: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(
        &p,
        format!(
            "kind = \"export\"\nname = \"ve\"\n[source]\nurl = \"{source}\"\n[tables]\ninclude = [\"public.*\"]\n\
             [chunking]\nrows_per_chunk = 1000\n[output]\nurl = \"{url}\"\nformat = \"{format}\"\n{extra}"
        ),
    )
    .unwrap();
    p
}

/// The JSON report of `verify ARGS`, with its exit code.
fn verify_json(args: &[&str]) -> (Option<i32>, serde_json::Value, String) {
    let mut all = vec!["verify"];
    all.extend_from_slice(args);
    all.push("--json");
    let o = run_coordinator(&all);
    let v = serde_json::from_slice(&o.stdout).unwrap_or(serde_json::Value::Null);
    (o.status.code(), v, output_text(&o))
}

fn table<'a>(v: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    v["tables"]
        .as_array()
        .and_then(|ts| ts.iter().find(|t| t["table"] == name))
        .unwrap_or(&serde_json::Value::Null)
}

/// `(kind, part)` of every finding of table `name`.
fn findings(v: &serde_json::Value, name: &str) -> Vec<(String, String)> {
    table(v, name)["findings"]
        .as_array()
        .map(|fs| {
            fs.iter()
                .map(|f| {
                    (
                        f["kind"].as_str().unwrap_or_default().to_string(),
                        f["part"].as_str().unwrap_or_default().to_string(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clean_exports_verify_ok_in_every_format() -> anyhow::Result<()> {
    let source = ScratchDb::create("pgfleet_ve_ok_").await?;
    source
        .client()
        .await?
        .batch_execute(&format!("{DDL}{DATA}"))
        .await?;
    let dir = std::env::temp_dir().join(unique("pgfleet-ve-ok-"));
    std::fs::create_dir_all(&dir)?;
    let s3 = s3_client().await;
    let bucket = unique("ve-ok-");
    create_bucket(&s3, &bucket).await?;
    let s3_options = format!(
        "s3 = {{ endpoint = \"{}\", force_path_style = true }}\n",
        s3_endpoint()
    );
    let cases = [
        (
            "csv",
            format!("file://{}/csv/", dir.display()),
            String::new(),
        ),
        ("csv.gz", format!("s3://{bucket}/gz/"), s3_options.clone()),
        (
            "rds-parquet",
            format!("s3://{bucket}/rds/run1/"),
            s3_options,
        ),
    ];
    for (format, url, extra) in &cases {
        let p = spec(
            &dir,
            &format!("{format}.toml"),
            &source.url,
            url,
            format,
            extra,
        );
        let p = p.to_str().unwrap();
        let o = run_coordinator(&["run", p, "--workers", "2", "--verify"]);
        assert!(
            o.status.success(),
            "{format}: run --verify: {}",
            output_text(&o)
        );
        assert!(
            output_text(&o).contains("verify: 2 table(s) OK"),
            "{format}: {}",
            output_text(&o)
        );
        let (code, v, out) = verify_json(&[p, "--source"]);
        assert_eq!(code, Some(0), "{format}: {out}");
        assert_eq!(v["ok"], true, "{format}: {v:#}");
        assert_eq!(table(&v, "public.t")["rows"], 3000, "{format}: {v:#}");
        assert_eq!(table(&v, "public.u")["rows"], 500, "{format}: {v:#}");
        assert_eq!(table(&v, "public.t")["status"], "OK", "{format}: {v:#}");
    }
    let _ = std::fs::remove_dir_all(&dir);
    source.drop().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_kind_of_damage_is_caught_and_named() -> anyhow::Result<()> {
    let source = ScratchDb::create("pgfleet_ve_dmg_").await?;
    let src = source.client().await?;
    src.batch_execute(&format!("{DDL}{DATA}")).await?;
    let dir = std::env::temp_dir().join(unique("pgfleet-ve-dmg-"));
    let out = dir.join("out");
    std::fs::create_dir_all(&out)?;
    let p = spec(
        &dir,
        "csv.toml",
        &source.url,
        &format!("file://{}/", out.display()),
        "csv",
        "",
    );
    let p = p.to_str().unwrap();
    let o = run_coordinator(&["run", p, "--workers", "2"]);
    assert!(o.status.success(), "{}", output_text(&o));
    let (code, _, all) = verify_json(&[p]);
    assert_eq!(code, Some(0), "{all}");

    let folder = out.join("public.t");
    let part = |n: u32| folder.join(format!("part-{n:05}.csv"));
    let key = |n: u32| format!("public.t/part-{n:05}.csv");
    let original = |n: u32| std::fs::read(part(n)).unwrap();
    // Each damage, the finding kinds it must produce, on which part; then undone.
    type Damage<'a> = Box<dyn Fn() + 'a>;
    let (p0, p1, p2) = (original(0), original(1), original(2));
    let cases: Vec<(&str, Damage, &[&str], u32)> = vec![
        (
            "deleted",
            Box::new(|| std::fs::remove_file(part(1)).unwrap()),
            &["missing"],
            1,
        ),
        (
            "truncated",
            Box::new({
                let b = p1.clone();
                move || std::fs::write(part(1), &b[..b.len() / 2]).unwrap()
            }),
            &["size", "checksum", "rows"],
            1,
        ),
        (
            "one byte flipped",
            Box::new({
                let mut b = p2.clone();
                let i = b.len() / 2;
                b[i] ^= 0x01;
                move || std::fs::write(part(2), &b).unwrap()
            }),
            &["checksum"],
            2,
        ),
        (
            "a row appended",
            Box::new({
                let mut b = p0.clone();
                b.extend_from_slice(b"x-9999,,,,,,\n");
                move || std::fs::write(part(0), &b).unwrap()
            }),
            &["size", "checksum", "rows"],
            0,
        ),
        (
            "replaced by another chunk's part",
            Box::new({
                let b = p0.clone();
                move || std::fs::write(part(2), &b).unwrap()
            }),
            &["checksum"],
            2,
        ),
    ];
    for (what, damage, kinds, n) in cases {
        damage();
        let (code, v, all) = verify_json(&[p]);
        assert_eq!(code, Some(1), "{what}: {all}");
        assert_eq!(
            table(&v, "public.t")["status"],
            "DIFFERENT",
            "{what}: {v:#}"
        );
        assert_eq!(table(&v, "public.u")["status"], "OK", "{what}: {v:#}");
        let found = findings(&v, "public.t");
        for kind in kinds {
            assert!(
                found
                    .iter()
                    .any(|(k, part)| k == kind && part.ends_with(&key(n))),
                "{what}: no {kind} finding on {}: {found:?}",
                key(n)
            );
        }
        // The text report names the table and the part too.
        let o = run_coordinator(&["verify", p]);
        assert_eq!(o.status.code(), Some(1));
        let t = output_text(&o);
        assert!(
            t.lines()
                .any(|l| l.starts_with("DIFFERENT") && l.contains("public.t")),
            "{what}: {t}"
        );
        assert!(t.contains(&key(n)), "{what}: {t}");
        for (n, bytes) in [(0, &p0), (1, &p1), (2, &p2)] {
            std::fs::write(part(n), bytes)?;
        }
        let (code, _, all) = verify_json(&[p]);
        assert_eq!(code, Some(0), "after undoing {what}: {all}");
    }

    // A part of an earlier run (this table had more chunks then) is stale, not a failure;
    // any other file in the folder is extra.
    std::fs::write(part(9), b"id\n1\n")?;
    let (code, v, all) = verify_json(&[p]);
    assert_eq!(code, Some(0), "{all}");
    let stale = table(&v, "public.t")["stale"].to_string();
    assert!(stale.contains(&key(9)), "{v:#}");
    std::fs::write(folder.join("notes.txt"), b"hello")?;
    let (code, v, _) = verify_json(&[p]);
    assert_eq!(code, Some(1));
    assert!(
        findings(&v, "public.t")
            .iter()
            .any(|(k, part)| k == "extra" && part.ends_with("public.t/notes.txt")),
        "{v:#}"
    );
    std::fs::remove_file(folder.join("notes.txt"))?;
    std::fs::remove_file(part(9))?;

    // The source changes after the export: only --source sees it, on the part holding the row.
    src.batch_execute("UPDATE public.t SET note = 'changed' WHERE id = 1500")
        .await?;
    let (code, _, all) = verify_json(&[p]);
    assert_eq!(
        code,
        Some(0),
        "without --source the objects are intact: {all}"
    );
    let (code, v, all) = verify_json(&[p, "--source"]);
    assert_eq!(code, Some(1), "{all}");
    let found = findings(&v, "public.t");
    assert_eq!(
        found.iter().filter(|(k, _)| k == "source").count(),
        1,
        "exactly one part holds id 1500: {found:?}"
    );
    assert_eq!(table(&v, "public.u")["status"], "OK", "{v:#}");

    // Usage errors exit 2.
    let o = run_coordinator(&["verify", "/nonexistent/spec.toml"]);
    assert_eq!(o.status.code(), Some(2), "{}", output_text(&o));
    let empty = spec(
        &dir,
        "empty.toml",
        &source.url,
        &format!("file://{}/", dir.join("nothing").display()),
        "csv",
        "",
    );
    std::fs::create_dir_all(dir.join("nothing"))?;
    let o = run_coordinator(&["verify", empty.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2), "{}", output_text(&o));
    assert!(
        output_text(&o).contains("_manifest.json"),
        "{}",
        output_text(&o)
    );

    let _ = std::fs::remove_dir_all(&dir);
    source.drop().await?;
    Ok(())
}
