//! `coordinator verify RESTORE_SPEC`, from the outside: a source with the types whose text
//! forms vary (jsonb key order, timestamptz in several zones, numeric trailing zeros, floats,
//! arrays with NULLs, quotes and newlines) exported as rds-parquet and restored verifies OK —
//! PostgreSQL parses the export's rows on the target, so formatting cannot cause a false
//! difference — and a row changed, deleted or added in the target makes `verify` exit 1 naming
//! the table and the key range.

use pgfleet_tests::*;
use std::path::Path;

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
       CASE WHEN g % 9 = 0 THEN NULL ELSE format('{"b": %s, "a": [1, 2, null], "é": "x\"y"}', g)::jsonb END,
       CASE WHEN g % 7 = 0 THEN NULL
            ELSE (timestamp '2026-03-29 01:30:00' + g * interval '17 minutes') AT TIME ZONE
                 (ARRAY['UTC', 'Europe/Paris', 'America/St_Johns', 'Asia/Kathmandu'])[1 + g % 4] END,
       CASE WHEN g % 5 = 0 THEN NULL ELSE (g / 8.0)::numeric(12,4) END,
       CASE g % 6 WHEN 0 THEN NULL WHEN 1 THEN 0.1 WHEN 2 THEN 1e-300 WHEN 3 THEN -0.0
                  WHEN 4 THEN 'Infinity' ELSE g / 3.0 END,
       CASE WHEN g % 4 = 0 THEN NULL ELSE ARRAY['a' || g, NULL, 'q"u,o', E'l\nf'] END,
       CASE WHEN g % 3 = 0 THEN NULL ELSE E'line\n"quoted", tab\t ' || g END
FROM generate_series(1, 3000) g;
INSERT INTO public.u SELECT g % 50, 'y' || g FROM generate_series(1, 500) g;
ANALYZE;
"#;

fn write(dir: &Path, name: &str, text: &str) -> std::path::PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restore_verifies_ok_and_target_damage_is_named() -> anyhow::Result<()> {
    let source = ScratchDb::create("pgfleet_vr_src_").await?;
    let src = source.client().await?;
    src.batch_execute(DDL).await?;
    src.batch_execute(DATA).await?;
    let target = ScratchDb::create("pgfleet_vr_dst_").await?;
    let dst = target.client().await?;
    dst.batch_execute(DDL).await?;

    let dir = std::env::temp_dir().join(unique("pgfleet-vr-"));
    std::fs::create_dir_all(&dir)?;
    let root = format!("file://{}/export/", dir.display());
    let export = write(
        &dir,
        "export.toml",
        &format!(
            "kind = \"export\"\nname = \"vr\"\n[source]\nurl = \"{}\"\n[tables]\ninclude = [\"public.*\"]\n\
             [chunking]\nrows_per_chunk = 1000\n[output]\nurl = \"{root}\"\nformat = \"rds-parquet\"\n",
            source.url
        ),
    );
    let restore = write(
        &dir,
        "restore.toml",
        &format!(
            "kind = \"restore\"\nname = \"vr\"\n[export]\nurl = \"{root}\"\ndatabase = \"{}\"\n\
             [target]\nurl = \"{}\"\n[split]\nrows_per_task = 700\n",
            source.name, target.url
        ),
    );
    for spec in [&export, &restore] {
        let o = run_coordinator(&["run", spec.to_str().unwrap(), "--workers", "2"]);
        assert!(o.status.success(), "{}", output_text(&o));
    }
    let restore = restore.to_str().unwrap();

    // Clean: every table OK, the text forms notwithstanding.
    let o = run_coordinator(&["verify", restore]);
    assert_eq!(o.status.code(), Some(0), "{}", output_text(&o));
    let out = output_text(&o);
    assert!(
        out.contains("public.t") && out.contains("public.u"),
        "{out}"
    );
    assert!(!out.contains("DIFFERENT"), "{out}");

    // A changed row: DIFFERENT, in the key range that holds id 1501 only.
    dst.batch_execute("UPDATE public.t SET note = note || '!' WHERE id = 1501")
        .await?;
    let o = run_coordinator(&["verify", restore, "--json"]);
    assert_eq!(o.status.code(), Some(1), "{}", output_text(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout)?;
    let t = v["tables"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["table"] == "public.t")
        .unwrap()
        .clone();
    assert_eq!(t["status"], "DIFFERENT", "{t:#}");
    let ranges: Vec<String> = t["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["kind"] == "content")
        .map(|f| f["message"].as_str().unwrap_or_default().to_string())
        .collect();
    assert_eq!(ranges.len(), 1, "{t:#}");
    assert!(holds(&ranges[0], 1501), "{ranges:?}");
    let u = v["tables"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["table"] == "public.u")
        .unwrap();
    assert_eq!(u["status"], "OK", "{u:#}");
    dst.batch_execute("UPDATE public.t SET note = left(note, -1) WHERE id = 1501")
        .await?;
    assert_eq!(run_coordinator(&["verify", restore]).status.code(), Some(0));

    // A deleted row (no key: the whole table) and an added one (past the last bound).
    dst.batch_execute(
        "DELETE FROM public.u WHERE ctid = (SELECT min(ctid) FROM public.u);
         INSERT INTO public.t (id, note) VALUES (99999, 'new')",
    )
    .await?;
    let o = run_coordinator(&["verify", restore]);
    assert_eq!(o.status.code(), Some(1), "{}", output_text(&o));
    let out = output_text(&o);
    let line = |table: &str| {
        out.lines()
            .find(|l| l.contains(table) && (l.starts_with("OK") || l.starts_with("DIFFERENT")))
            .unwrap_or_default()
            .to_string()
    };
    assert!(line("public.t").starts_with("DIFFERENT"), "{out}");
    assert!(line("public.u").starts_with("DIFFERENT"), "{out}");
    assert!(
        out.contains("all rows") && out.contains("target 499"),
        "{out}"
    );
    assert!(out.contains("\"id\" >= "), "{out}");

    let _ = std::fs::remove_dir_all(&dir);
    source.drop().await?;
    target.drop().await?;
    Ok(())
}

/// Whether a range like `"id" >= 1201 AND "id" < 1501` holds `id`.
fn holds(range: &str, id: i64) -> bool {
    let num = |after: &str| -> Option<i64> {
        let rest = range.split(after).nth(1)?;
        rest.trim_start()
            .split(|c: char| !c.is_ascii_digit() && c != '-')
            .next()?
            .parse()
            .ok()
    };
    let lo_ok = num(">= ").is_none_or(|lo| id >= lo);
    let hi_ok = num("< ").is_none_or(|hi| id < hi);
    (range.contains(">=") || range.contains('<')) && lo_ok && hi_ok
}
