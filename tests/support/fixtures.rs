//! Source tables with the values that break naive CSV handling.

use anyhow::Result;

/// `big` (sparse bigint key, every awkward value), `nokey` (no integer key),
/// `"Odd ""Name"" Table"` (quoted identifiers), `empty_t` (no rows).
pub async fn create_export_source(client: &tokio_postgres::Client, big_rows: u64) -> Result<()> {
    client
        .batch_execute(&format!(
            r#"
CREATE TABLE big (id bigint PRIMARY KEY, name text, note text, amount numeric(12,2), at timestamptz, tags text[], flag boolean);
INSERT INTO big
SELECT g * 3 + (g % 7),
       CASE g % 10 WHEN 0 THEN NULL WHEN 1 THEN '' WHEN 2 THEN 'has "quotes"' WHEN 3 THEN 'comma, here'
                   WHEN 4 THEN E'multi\nline' WHEN 5 THEN E'tab\there' WHEN 6 THEN 'unicode ✓ 日本語 😀 שלום'
                   WHEN 7 THEN '\.' WHEN 8 THEN E'cr\r\nlf' ELSE 'plain ' || g END,
       CASE WHEN g % 3 = 0 THEN NULL ELSE repeat('n', (g % 50)::int) END,
       CASE WHEN g % 11 = 0 THEN NULL ELSE (g % 100000) / 100.0 END,
       timestamptz '2024-01-01 00:00:00+00' + (g || ' seconds')::interval,
       CASE WHEN g % 5 = 0 THEN NULL ELSE ARRAY['a' || (g % 5), 'b,c', 'd"e'] END,
       CASE WHEN g % 13 = 0 THEN NULL ELSE g % 2 = 0 END
FROM generate_series(1, {big_rows}) g;
CREATE TABLE nokey (line text, n int);
INSERT INTO nokey SELECT CASE WHEN g % 4 = 0 THEN NULL ELSE 'line, "' || g || E'"\n' END, g FROM generate_series(1, 30000) g;
CREATE TABLE "Odd ""Name"" Table" (id int PRIMARY KEY, "Weird Col" text, "select" int);
INSERT INTO "Odd ""Name"" Table" SELECT g, CASE WHEN g % 2 = 0 THEN '' ELSE 'v' || g END, g FROM generate_series(1, 1000) g;
CREATE TABLE empty_t (id int PRIMARY KEY, v text);
ANALYZE;
"#
        ))
        .await?;
    Ok(())
}

/// (folder, select producing text rows, columns) for every table of the export source.
pub fn export_source_checks() -> Vec<crate::export_check::TableCheck<'static>> {
    use crate::export_check::TableCheck;
    vec![
        TableCheck {
            folder: "public.big",
            select: "SELECT id, name, note, amount, at, tags, flag FROM big".into(),
            columns: vec!["id", "name", "note", "amount", "at", "tags", "flag"],
        },
        TableCheck {
            folder: "public.nokey",
            select: "SELECT line, n FROM nokey".into(),
            columns: vec!["line", "n"],
        },
        TableCheck {
            folder: "public.Odd \"Name\" Table",
            select: r#"SELECT id, "Weird Col", "select" FROM "Odd ""Name"" Table""#.into(),
            columns: vec!["id", "Weird Col", "select"],
        },
        TableCheck {
            folder: "public.empty_t",
            select: "SELECT id, v FROM empty_t".into(),
            columns: vec!["id", "v"],
        },
    ]
}
