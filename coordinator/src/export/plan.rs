//! Export planning: from a job spec and the source catalog to the list of tables to export,
//! each split into chunks of similar row counts. The plan is plain data (printable, storable)
//! and is computed with reads only, so it can run against a hot-standby replica.

use crate::export::catalog::{
    self, Column, KeyPoints, PointSource, RelKind, Relation, TableSize, UniqueKey,
};
use crate::export::chunking::{self, KeyDistribution};
use crate::export::key;
pub use crate::export::key::KeyChoice;
use anyhow::{Context, Result};
use protocol::spec::ChunkTarget;
use protocol::spec::SnapshotMode;
use protocol::{ChunkRange, ColumnType, ExportSpec, QualifiedName};
use serde::{Deserialize, Serialize};
use tokio_postgres::GenericClient;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TablePlan {
    pub table: QualifiedName,
    /// All non-dropped columns in attnum order (generated columns included: they are readable).
    pub columns: Vec<String>,
    /// The type of each column, same order as `columns` (typed formats such as `rds-parquet`
    /// need them). Empty in plans stored before types were recorded.
    #[serde(default)]
    pub column_types: Vec<ColumnType>,
    pub key: KeyChoice,
    /// An ordinary table: its chunks read `FROM ONLY` it, so legacy inheritance children (tables
    /// of their own) are not exported again inside their parent. False for partitioned tables,
    /// and in plans stored before this was recorded (they read parent and children together).
    #[serde(default)]
    pub own_rows_only: bool,
    pub estimated_rows: u64,
    pub estimated_bytes: u64,
    /// Never empty; together they cover every row exactly once.
    pub chunks: Vec<ChunkRange>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExportPlan {
    /// `current_database()` of the source: the first folder of the `rds-parquet` layout. Empty
    /// in plans stored before it was recorded.
    #[serde(default)]
    pub database: String,
    /// Sorted by table name.
    pub tables: Vec<TablePlan>,
    /// Things the user should know (skipped partitions, weak statistics), one line each.
    pub notes: Vec<String>,
}

/// [`plan_export`], logging what it cost: the tables, chunks and statements sent to the source
/// (a handful, whatever the number of tables, plus a few per table that splits) and the time.
pub async fn plan_export_logged<C: GenericClient + Sync>(
    client: &C,
    spec: &ExportSpec,
) -> Result<ExportPlan> {
    let started = std::time::Instant::now();
    let (plan, statements) = catalog::queries::counted(plan_export(client, spec)).await;
    let plan = plan?;
    tracing::info!(
        job = %spec.name,
        tables = plan.tables.len(),
        chunks = plan.tables.iter().map(|t| t.chunks.len()).sum::<usize>(),
        statements,
        seconds = started.elapsed().as_secs_f64(),
        "export planned"
    );
    Ok(plan)
}

/// Plan an export. `client` is already inside a READ ONLY transaction (REPEATABLE READ when the
/// job exports a snapshot).
pub async fn plan_export<C: GenericClient + Sync>(
    client: &C,
    spec: &ExportSpec,
) -> Result<ExportPlan> {
    let filter = spec.tables.filter().map_err(anyhow::Error::msg)?;
    let overrides = spec.tables.key_overrides().map_err(anyhow::Error::msg)?;
    let target = spec.chunking.target();

    let database = catalog::current_database(client).await?;
    check_statement_timeout(client, spec.source.statement_timeout.as_deref()).await?;
    let selection = catalog::resolve_tables(client, &filter).await?;
    let mut notes = selection.notes;
    notes.extend(catalog::unused_key_overrides(&overrides, &selection.tables));

    // The catalog facts of every selected table, one query each for all of them.
    let oids: Vec<u32> = selection.tables.iter().map(|r| r.oid).collect();
    let mut columns = catalog::columns_of(client, &oids).await?;
    let mut unique = catalog::unique_keys_of(client, &oids).await?;
    let sizes = catalog::table_sizes(client, &selection.tables).await?;

    let one_snapshot = spec.source.snapshot == SnapshotMode::Consistent;
    let mut tables = Vec::with_capacity(selection.tables.len());
    for rel in &selection.tables {
        let facts = TableFacts {
            columns: columns.remove(&rel.oid).unwrap_or_default(),
            unique: unique.remove(&rel.oid).unwrap_or_default(),
            size: sizes.get(&rel.oid).copied().unwrap_or_default(),
        };
        let user_key = overrides.get(&rel.name).map(String::as_str);
        let plan = plan_table(
            client,
            rel,
            facts,
            user_key,
            target,
            one_snapshot,
            &mut notes,
        )
        .await
        .with_context(|| format!("planning {}", rel.name.display_name()))?;
        tables.push(plan);
    }
    check_transform_columns(spec, &tables)?;
    Ok(ExportPlan {
        database,
        tables,
        notes,
    })
}

/// Every worker sets `statement_timeout` before its COPY: a value PostgreSQL rejects would fail
/// every task, so ask the source now (a transaction-local setting; the planning queries run
/// under it too).
async fn check_statement_timeout<C: GenericClient + Sync>(
    client: &C,
    timeout: Option<&str>,
) -> Result<()> {
    let Some(timeout) = timeout else {
        return Ok(());
    };
    catalog::queries::note();
    if let Err(e) = client
        .query_one(
            "SELECT set_config('statement_timeout', $1, true)",
            &[&timeout],
        )
        .await
    {
        let reason = e
            .as_db_error()
            .map(|d| d.message().to_string())
            .unwrap_or_else(|| e.to_string());
        anyhow::bail!(
            "source.statement_timeout = {timeout:?}: the source rejects it ({reason}); write e.g. \"2h\", \"30min\" or \"90s\""
        );
    }
    Ok(())
}

/// A transform naming a column that none of the selected tables has would silently export that
/// data untransformed (a typo, a renamed column): refuse the plan instead.
fn check_transform_columns(spec: &ExportSpec, tables: &[TablePlan]) -> Result<()> {
    let mut missing = Vec::new();
    for (i, t) in spec.transforms.iter().enumerate() {
        if let protocol::spec::ColumnSelection::Named(names) = &t.columns {
            for name in names {
                if !tables.iter().any(|p| p.columns.iter().any(|c| c == name)) {
                    missing.push(format!("transform[{i}]: column {name:?}"));
                }
            }
        }
    }
    if missing.is_empty() {
        return Ok(());
    }
    let mut names: Vec<String> = tables
        .iter()
        .take(5)
        .map(|t| t.table.display_name())
        .collect();
    if tables.len() > 5 {
        names.push(format!("and {} more", tables.len() - 5));
    }
    anyhow::bail!(
        "{} not in any selected table ({}); column names are case-sensitive, as in the catalog",
        missing.join(", "),
        if names.is_empty() {
            "none selected".to_string()
        } else {
            names.join(", ")
        }
    )
}

/// What the catalog says of one table, read for all tables at once.
struct TableFacts {
    columns: Vec<Column>,
    unique: Vec<UniqueKey>,
    size: TableSize,
}

/// Plan one table from its catalog facts. Only a table that splits into several chunks reads
/// anything more from the source (its key's distribution): work proportional to its data.
async fn plan_table<C: GenericClient + Sync>(
    client: &C,
    rel: &Relation,
    facts: TableFacts,
    user_key: Option<&str>,
    target: ChunkTarget,
    one_snapshot: bool,
    notes: &mut Vec<String>,
) -> Result<TablePlan> {
    let TableFacts {
        columns,
        unique,
        size,
    } = facts;
    let key = key::choose_key(rel, &columns, &unique, user_key, one_snapshot)?;
    if size.sampled_count {
        notes.push(format!(
            "{} has no usable statistics (never analyzed?); its row count was extrapolated from a sample",
            rel.name.display_name()
        ));
    }
    let rows_per_chunk = chunking::rows_per_chunk(target, size.estimated_rows, size.bytes);
    let wanted = chunking::chunk_count(size.estimated_rows, rows_per_chunk);
    if size.estimated_rows.div_ceil(rows_per_chunk) > wanted {
        notes.push(format!(
            "{}: chunk size too small; using {wanted} chunks",
            rel.name.display_name()
        ));
    }

    let chunks = match &key.choice {
        KeyChoice::Whole => {
            if wanted > 1 && rel.kind == RelKind::Table {
                notes.push(format!(
                    "{}: no unique key over NOT NULL columns, so one chunk: page ranges read \
                     under separate snapshots would export rows updated meanwhile twice or not \
                     at all; add a primary key, or set source.snapshot = \"consistent\" to split \
                     it by pages",
                    rel.name.display_name()
                ));
            }
            vec![ChunkRange::All]
        }
        KeyChoice::Unique { columns } if wanted > 1 => {
            let only = rel.kind == RelKind::Table;
            let plan = chunking::sample_plan(size.estimated_rows, size.pages, wanted);
            let (mut boundaries, sampled) =
                catalog::tuple_boundaries(client, &rel.name, only, columns, Some(&plan), wanted)
                    .await?;
            if !chunking::sample_is_adequate(&plan, sampled as usize, wanted) {
                if size.estimated_rows < catalog::FULL_SCAN_MAX_ROWS {
                    boundaries =
                        catalog::tuple_boundaries(client, &rel.name, only, columns, None, wanted)
                            .await?
                            .0;
                } else {
                    notes.push(format!(
                        "{}: the key sample held only {sampled} rows; chunk sizes may be uneven \
                         (run ANALYZE on the primary)",
                        rel.name.display_name()
                    ));
                }
            }
            chunking::tuple_ranges(columns, boundaries)
        }
        KeyChoice::Unique { .. } => vec![ChunkRange::All],
        KeyChoice::Pages => {
            let pages = u32::try_from(size.pages).context("heap has more than 2^32 pages")?;
            chunking::plan_page_chunks(pages, size.estimated_rows, rows_per_chunk)
        }
        KeyChoice::Integer { column } => {
            let dist = if wanted > 1 {
                key_distribution(client, &rel.name, column, &size, wanted, notes).await?
            } else {
                None // one chunk: no need to look at the key at all
            };
            chunking::plan_key_chunks(
                column,
                dist.as_ref(),
                size.estimated_rows,
                rows_per_chunk,
                key.nullable,
            )
        }
    };
    Ok(TablePlan {
        table: rel.name.clone(),
        column_types: columns.iter().map(|c| c.pg_type.clone()).collect(),
        columns: columns.into_iter().map(|c| c.name).collect(),
        key: key.choice,
        own_rows_only: rel.kind == RelKind::Table,
        estimated_rows: size.estimated_rows,
        estimated_bytes: size.bytes,
        chunks,
    })
}

/// min/max and quantile points of an integer key; `None` when the key has no non-null value.
async fn key_distribution<C: GenericClient + Sync>(
    client: &C,
    table: &QualifiedName,
    column: &str,
    size: &TableSize,
    chunks: u64,
    notes: &mut Vec<String>,
) -> Result<Option<KeyDistribution>> {
    let Some((min, max)) = catalog::key_min_max(client, table, column).await? else {
        return Ok(None);
    };
    let KeyPoints { points, source } =
        catalog::key_points(client, table, column, size, chunks).await?;
    match source {
        PointSource::Sample | PointSource::AllKeys => {}
        PointSource::Histogram => notes.push(format!(
            "{}: chunk boundaries come from ANALYZE statistics (the sample was too small); \
             chunk sizes may be uneven if the table changed since",
            table.display_name()
        )),
        PointSource::MinMaxOnly => notes.push(format!(
            "{}: no usable sample or statistics for {column:?}; chunks are equal strides of \
             {min}..{max} and may be very uneven (run ANALYZE on the primary)",
            table.display_name()
        )),
    }
    Ok(Some(KeyDistribution::new(min, max, points)))
}
