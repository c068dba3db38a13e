//! Verify a restore: does each target table hold exactly the rows of the export?
//!
//! The comparison has PostgreSQL parse both sides, so type formatting (jsonb key order, time
//! zones, numeric scale, float digits) cannot cause false differences: every piece of the
//! export is loaded, as the restore loads it (same columns, same filter), into a temporary
//! table shaped `LIKE` the target table, inside one transaction on the target that is rolled
//! back at the end (nothing is left behind). Both sides are then digested by the same query:
//! per key range, the row count and the sum of `hashtextextended(ROW(columns)::text, 0)`.
//! One piece at a time is held (the temporary table is emptied between pieces), so memory and
//! temporary space stay bounded by the largest piece, whatever the table's size.
//!
//! Key ranges: a table with a single-column primary key is cut into [`RANGES`] ranges at its
//! deciles (read from the target), so a difference is reported with the key range it lies in;
//! any other table is one range.

use super::report::{Finding, FindingKind, Report, TableReport};
use crate::commands::progress::Progress;
use crate::job::{ChunkWork, JobRun, RestoreTable, TableWork};
use crate::restore;
use anyhow::{anyhow, Context, Result};
use fleet_io::clients::Clients;
use fleet_io::pg::session::Session;
use futures::StreamExt;
use protocol::spec::{NonEmptyPolicy, RestoreSpec};
use protocol::{quote_ident, quote_literal};
use std::collections::BTreeMap;

/// Key ranges per table (at most: fewer when the key has fewer distinct values).
pub const RANGES: usize = 10;

/// The temporary table the export's rows are parsed into.
const SCRATCH: &str = "pg_temp.pgfleet_verify";

/// Row count and hash sum of one key range.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Digest {
    rows: u64,
    sum: i128,
}

/// Compare every table of the restore `spec` against its export, at most `connections`
/// tables at once (each holds one target session).
pub async fn verify(ctx: &Clients, spec: &RestoreSpec, connections: usize) -> Result<Report> {
    // Planned as a restore would be, except that full target tables are expected here: no
    // table may be skipped for holding rows.
    let mut planned_as = spec.clone();
    planned_as.policy.non_empty = NonEmptyPolicy::Truncate;
    let plan = restore::inspect(ctx, "verify", &planned_as).await?;
    for p in &plan.problems {
        crate::errln!("verify: note: {p}");
    }
    let job = plan.job;
    let tables: Vec<(u32, &RestoreTable)> = job
        .tables
        .iter()
        .enumerate()
        .filter_map(|(i, t)| match &t.work {
            TableWork::Restore(r) => Some((i as u32, r)),
            TableWork::Export(_) => None,
        })
        .collect();
    let total = tables.len() as u64;
    let mut progress = Progress::counting("verify", "tables");
    let mut checks = futures::stream::iter(tables)
        .map(|(idx, table)| {
            let job = &job;
            async move {
                verify_table(ctx, job, spec, idx, table)
                    .await
                    .unwrap_or_else(|e| {
                        TableReport::unreadable(table.table.display_name(), format!("{e:#}"))
                    })
            }
        })
        .buffer_unordered(connections.max(1));
    let mut reports = Vec::new();
    let mut rows = 0;
    while let Some(report) = checks.next().await {
        rows += report.rows;
        reports.push(report);
        progress.update(reports.len() as u64, total, rows, 0);
    }
    progress.finish();
    Ok(Report::new("restore", spec.export.url.clone(), reports))
}

async fn verify_table(
    ctx: &Clients,
    job: &JobRun,
    spec: &RestoreSpec,
    idx: u32,
    table: &RestoreTable,
) -> Result<TableReport> {
    let conn = ctx
        .pg(&spec.target.conn())
        .await
        .map_err(|e| anyhow!(e.message))?;
    // Read-write only for the temporary table: rolled back at the end, like every digest.
    let mut session = Session::begin(conn, "BEGIN")
        .await
        .map_err(|e| anyhow!(e.message))?;
    let result = compare(ctx, &session, job, spec, idx, table).await;
    session.rollback().await;
    result
}

async fn compare(
    ctx: &Clients,
    session: &Session,
    job: &JobRun,
    spec: &RestoreSpec,
    idx: u32,
    table: &RestoreTable,
) -> Result<TableReport> {
    let client = session.client();
    let target = table.table.quoted();
    client
        .batch_execute(&format!(
            "CREATE TEMP TABLE pgfleet_verify (LIKE {target}) ON COMMIT DROP"
        ))
        .await
        .context("creating the temporary table")?;
    // A partitioned table's rows are in its partitions; any other table's own rows only (a
    // legacy inheritance child is a table of its own).
    let partitioned: bool = client
        .query_one(
            "SELECT relkind = 'p' FROM pg_class WHERE oid = $1::text::regclass",
            &[&target],
        )
        .await
        .context("reading the table's kind")?
        .try_get(0)?;
    let relation = if partitioned {
        target.clone()
    } else {
        format!("ONLY {target}")
    };
    let ranges = KeyRanges::read(client, &relation, &target, table.filter.as_deref()).await?;
    let columns: Vec<String> = table
        .columns
        .iter()
        .map(|c| quote_ident(&c.target))
        .collect();
    let target_digests = digest(
        client,
        &relation,
        &columns,
        &ranges,
        table.filter.as_deref(),
    )
    .await?;

    let mut export_digests: BTreeMap<i32, Digest> = BTreeMap::new();
    for chunk in job.table_chunks(idx) {
        let ChunkWork::Restore(piece) = &chunk.work else {
            continue;
        };
        let task = restore::task(job, spec, table, piece)?;
        client
            .batch_execute(&format!("TRUNCATE {SCRATCH}"))
            .await
            .context("emptying the temporary table")?;
        let copy = worker::restore::copy_statement_into(&task, SCRATCH);
        worker::restore::copy_piece(ctx, session, &task, &copy)
            .await
            .map_err(|e| anyhow!("{}: {}", piece.key, e.message))?;
        // The filter already applied as the rows were copied in.
        for (range, d) in digest(client, SCRATCH, &columns, &ranges, None).await? {
            let e = export_digests.entry(range).or_default();
            e.rows += d.rows;
            e.sum += d.sum;
        }
    }

    let mut findings = Vec::new();
    let all: std::collections::BTreeSet<i32> = target_digests
        .keys()
        .chain(export_digests.keys())
        .copied()
        .collect();
    for range in all {
        let t = target_digests.get(&range).copied().unwrap_or_default();
        let e = export_digests.get(&range).copied().unwrap_or_default();
        if t != e {
            findings.push(Finding {
                kind: FindingKind::Content,
                part: None,
                message: format!(
                    "{}: target {} rows, export {} rows{}",
                    ranges.describe(range),
                    t.rows,
                    e.rows,
                    if t.rows == e.rows {
                        ", contents differ"
                    } else {
                        ""
                    }
                ),
            });
        }
    }
    Ok(TableReport::new(
        table.table.display_name(),
        target_digests.values().map(|d| d.rows).sum(),
        Some(export_digests.values().map(|d| d.rows).sum()),
        findings,
    ))
}

/// Per key range, the row count and hash sum of `relation` (quoted SQL).
async fn digest(
    client: &tokio_postgres::Client,
    relation: &str,
    columns: &[String],
    ranges: &KeyRanges,
    filter: Option<&str>,
) -> Result<BTreeMap<i32, Digest>> {
    let row = columns
        .iter()
        .map(|c| format!("t.{c}"))
        .collect::<Vec<_>>()
        .join(", ");
    let filter = filter.map(|f| format!(" WHERE {f}")).unwrap_or_default();
    let sql = format!(
        "SELECT {} AS range, count(*), sum(hashtextextended(ROW({row})::text, 0)::numeric)::text
           FROM {relation} t{filter} GROUP BY 1",
        ranges.bucket_sql()
    );
    let rows = client
        .query(&sql, &[])
        .await
        .with_context(|| format!("digesting {relation}"))?;
    let mut out = BTreeMap::new();
    for r in rows {
        let range: i32 = r.try_get(0)?;
        let count: i64 = r.try_get(1)?;
        let sum: Option<String> = r.try_get(2)?;
        let sum = sum
            .as_deref()
            .unwrap_or("0")
            .parse::<i128>()
            .context("a hash sum beyond 128 bits")?;
        out.insert(
            range,
            Digest {
                rows: u64::try_from(count).unwrap_or(0),
                sum,
            },
        );
    }
    Ok(out)
}

/// How a table's rows are cut into ranges: at the deciles of a single-column primary key.
struct KeyRanges {
    /// The key column (quoted) and its type, when the table has such a key.
    key: Option<(String, String)>,
    /// Range boundaries as text, ascending.
    bounds: Vec<String>,
}

impl KeyRanges {
    /// `relation`: the table as `digest` reads it (`ONLY …` or not); `table`: its name.
    async fn read(
        client: &tokio_postgres::Client,
        relation: &str,
        table: &str,
        filter: Option<&str>,
    ) -> Result<Self> {
        let key = client
            .query_opt(
                "SELECT a.attname::text, format_type(a.atttypid, a.atttypmod)
                   FROM pg_index i
                   JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0]
                  WHERE i.indrelid = $1::text::regclass AND i.indisprimary AND i.indnkeyatts = 1",
                &[&table],
            )
            .await
            .context("reading the primary key")?
            .map(|r| -> Result<(String, String)> {
                Ok((quote_ident(&r.try_get::<_, String>(0)?), r.try_get(1)?))
            })
            .transpose()?;
        let Some((column, _)) = &key else {
            return Ok(Self {
                key: None,
                bounds: Vec::new(),
            });
        };
        let fractions: Vec<String> = (1..RANGES)
            .map(|i| format!("{}", i as f64 / RANGES as f64))
            .collect();
        let filter = filter.map(|f| format!(" WHERE {f}")).unwrap_or_default();
        let row = client
            .query_one(
                &format!(
                    "SELECT percentile_disc(ARRAY[{}]::float8[]) WITHIN GROUP (ORDER BY t.{column})::text[]
                       FROM {relation} t{filter}",
                    fractions.join(", "),
                ),
                &[],
            )
            .await
            .context("reading key deciles")?;
        let mut bounds: Vec<String> = row
            .try_get::<_, Option<Vec<Option<String>>>>(0)?
            .unwrap_or_default()
            .into_iter()
            .flatten()
            .collect();
        bounds.dedup();
        Ok(Self { key, bounds })
    }

    /// The SQL of a row's range number: 0 below the first bound, i from bound i on.
    fn bucket_sql(&self) -> String {
        match &self.key {
            Some((column, ty)) if !self.bounds.is_empty() => {
                let bounds: Vec<String> = self.bounds.iter().map(|b| quote_literal(b)).collect();
                format!(
                    "width_bucket(t.{column}, ARRAY[{}]::text[]::{ty}[])",
                    bounds.join(", ")
                )
            }
            _ => "0".into(),
        }
    }

    /// Range `n` in words.
    fn describe(&self, n: i32) -> String {
        let Some((column, _)) = &self.key else {
            return "all rows".into();
        };
        if self.bounds.is_empty() {
            return "all rows".into();
        }
        let i = usize::try_from(n).unwrap_or(0);
        let lo = i.checked_sub(1).and_then(|j| self.bounds.get(j));
        let hi = self.bounds.get(i);
        match (lo, hi) {
            (None, Some(h)) => format!("{column} < {h}"),
            (Some(l), Some(h)) => format!("{column} >= {l} AND {column} < {h}"),
            (Some(l), None) => format!("{column} >= {l}"),
            (None, None) => "all rows".into(),
        }
    }
}
