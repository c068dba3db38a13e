//! Planning a restore: the export's inventory against the target's catalog → the tables to
//! load (partitions loaded once), their columns matched by name, the foreign-key waves and the
//! pieces (files, or runs of row groups), with every problem and warning found. Only reads.

use super::changes::{self};
use super::connect;
use super::target::{self, ExtensionTable, ForeignKey, TargetCatalog, TargetTable};
use super::waves::{plan_waves, FkEdge};
use crate::job::{
    ChunkWork, FilePiece, JobKind, JobRun, RestoreJob, RestoreState, RestoreTable, TableRun,
    TableWork,
};
use crate::rds::{self, ExportTable};
use anyhow::{anyhow, Result};
use fleet_io::clients::Clients;
use protocol::spec::{NonEmptyPolicy, RestoreSpec};
use protocol::{QualifiedName, RdsType, RestoreColumn, RowGroupRange, TableFilter};
use std::collections::{BTreeMap, HashMap};

/// A planned restore and everything found wrong on the way. Problems stop the job before
/// anything loads; warnings are reported.
pub struct RestorePlan {
    pub job: JobRun,
    pub problems: Vec<String>,
    pub warnings: Vec<String>,
}

struct Selected<'a> {
    export: &'a ExportTable,
    target: &'a TargetTable,
}

/// The whole plan, with every problem and warning found (what `coordinator plan` shows).
/// Only reads, from the export and the target.
pub async fn inspect(ctx: &Clients, id: &str, spec: &RestoreSpec) -> Result<RestorePlan> {
    let root = spec.export_location().map_err(|e| anyhow!(e))?;
    let inventory = rds::discover(
        ctx,
        &root,
        &spec.export.s3,
        &spec.export.database,
        spec.export.require_success,
    )
    .await?;
    let client = connect(spec).await?;
    let catalog = target::load(&client).await?;
    let filter = spec.tables.filter().map_err(|e| anyhow!(e))?;
    let wanted = |name: &QualifiedName| filter.matches(name);

    let mut problems = inventory.problems.clone();
    let mut warnings = inventory.warnings.clone();
    let pending = changes::pending(&client, None).await?;
    if !pending.is_empty() {
        warnings.push(format!(
            "the target has {} change(s) an earlier restore did not put back: a restore job puts them back before it loads (`coordinator repair` does only that):\n    {}",
            pending.len(),
            pending
                .iter()
                .map(|c| format!(
                    "{}{} (job {})",
                    c.describe(),
                    if c.not_valid { ", re-added NOT VALID" } else { ", dropped" },
                    c.job_id
                ))
                .collect::<Vec<_>>()
                .join("\n    ")
        ));
    }
    let mut notes = Vec::new();

    // Export tables → target tables, through the metadata's names (never folder names).
    let mut selected: Vec<Selected> = Vec::new();
    // Each export table under its target name, or the name its metadata spells.
    let mut export_names: Vec<QualifiedName> = Vec::new();
    for t in &inventory.tables {
        match catalog.resolve(&t.schema_and_table) {
            Some(target) if wanted(&target.name) => {
                export_names.push(target.name.clone());
                selected.push(Selected { export: t, target })
            }
            Some(target) => {
                export_names.push(target.name.clone());
                notes.push(format!(
                    "{} excluded by the job's table patterns",
                    target.name.display_name()
                ))
            }
            None => {
                let guess = guess_name(&t.schema_and_table);
                export_names.extend(guess.clone());
                if guess.as_ref().is_some_and(|g| !wanted(g)) {
                    notes.push(format!(
                        "{} excluded by the job's table patterns",
                        t.schema_and_table
                    ));
                } else {
                    problems.push(format!(
                        "export table {} has no table in the target database: load the schema first, or exclude it",
                        t.target
                    ));
                }
            }
        }
    }
    problems.extend(unmatched_patterns(&filter, &export_names));
    drop_duplicate_partitions(&mut selected, &mut notes);

    // Columns, by name.
    let mut columns: Vec<Vec<RestoreColumn>> = Vec::new();
    for s in &selected {
        let (cols, mut found) = match_columns(s.export, s.target);
        problems.append(&mut found);
        columns.push(cols);
    }

    // Tables that already hold rows not loaded from this export.
    let export_name = spec.export.url.clone();
    let ledger_exists: bool = client
        .query_one(
            "SELECT to_regclass('pgfleet_restore.ledger') IS NOT NULL",
            &[],
        )
        .await?
        .get(0);
    let mut truncate = Vec::new();
    let mut skip = vec![false; selected.len()];
    // Which tables already hold rows, all checked at once (an extension's configuration
    // table is checked below, by its filter).
    let names: Vec<&QualifiedName> = selected.iter().map(|s| &s.target.name).collect();
    let non_empty = target::has_rows(&client, &names).await?;
    for (i, s) in selected.iter().enumerate() {
        let name = &s.target.name;
        // A table an extension owns got its rows from CREATE EXTENSION in the target.
        let has_user_rows = match &s.target.extension {
            Some(ExtensionTable {
                extension,
                config_filter: None,
            }) => {
                if non_empty[i] {
                    skip[i] = true;
                    notes.push(format!(
                        "{}: belongs to extension {extension}, whose rows the target already has (CREATE EXTENSION made them): skipped",
                        name.display_name()
                    ));
                }
                continue;
            }
            Some(ExtensionTable {
                extension,
                config_filter: Some(filter),
            }) if !filter.is_empty() => {
                notes.push(format!(
                    "{}: belongs to extension {extension}, which marks it as configuration: only the rows users added (its pg_extension_config_dump filter) are loaded; the extension's own rows stay as the target has them",
                    name.display_name()
                ));
                let user_rows = target::has_rows_where(&client, name, filter).await?;
                if user_rows && spec.policy.non_empty == NonEmptyPolicy::Truncate {
                    problems.push(format!(
                        "target table {} (extension {extension}) already has user-added rows, and policy.non_empty = \"truncate\" would also remove the extension's own rows: delete the user-added rows yourself (DELETE FROM {} WHERE {filter}), or exclude the table",
                        name.display_name(),
                        name.quoted()
                    ));
                    continue;
                }
                user_rows
            }
            _ => non_empty[i],
        };
        if !has_user_rows {
            continue;
        }
        let resumed =
            ledger_exists && fleet_io::ledger::loaded_rows(&client, &export_name, name).await? > 0;
        if resumed {
            notes.push(format!(
                "{}: resuming a restore of this export",
                name.display_name()
            ));
            continue;
        }
        match spec.policy.non_empty {
            NonEmptyPolicy::Fail => problems.push(format!(
                "target table {} is not empty: empty it, or set policy.non_empty = \"skip\" or \"truncate\"",
                name.display_name()
            )),
            NonEmptyPolicy::Skip => {
                skip[i] = true;
                notes.push(format!("{}: not empty, skipped (policy.non_empty = skip)", name.display_name()));
            }
            NonEmptyPolicy::Truncate => truncate.push(name.clone()),
        }
    }
    let (selected, columns): (Vec<Selected>, Vec<Vec<RestoreColumn>>) = selected
        .into_iter()
        .zip(columns)
        .zip(skip)
        .filter(|(_, skip)| !skip)
        .map(|(sc, _)| sc)
        .unzip();

    // Foreign-key waves among the tables being loaded.
    let names: Vec<QualifiedName> = selected.iter().map(|s| s.target.name.clone()).collect();
    let (edges, edge_fks) = fk_edges(&catalog, &names);
    let waves = plan_waves(names.len(), &edges);
    for &e in &waves.cycle_edges {
        let fk = &edge_fks[e];
        notes.push(format!(
            "foreign key {} on {} is part of a cycle: dropped during the load, re-added and validated after",
            fk.name,
            fk.table.display_name()
        ));
    }
    // Tables wait only for what a foreign key checked during the load needs: with deferred
    // keys nothing is checked until the end, so every table can load at once.
    let enforced_edges: Vec<FkEdge> = if spec.policy.defer_foreign_keys {
        Vec::new()
    } else {
        edges.clone()
    };
    let enforced = plan_waves(names.len(), &enforced_edges);
    let dropped_fks: Vec<ForeignKey> = if spec.policy.defer_foreign_keys {
        if edge_fks.len() > waves.cycle_edges.len() {
            notes.push(format!(
                "{} foreign key(s) between loaded tables are deferred: re-added and validated once after the load (policy.defer_foreign_keys)",
                edge_fks.len() - waves.cycle_edges.len()
            ));
        }
        edge_fks.clone()
    } else {
        waves
            .cycle_edges
            .iter()
            .map(|&e| edge_fks[e].clone())
            .collect()
    };

    let mut wave_of = vec![0u32; names.len()];
    for (w, members) in waves.waves.iter().enumerate() {
        for &t in members {
            wave_of[t] = w as u32;
        }
    }
    let mut tables = Vec::new();
    for (i, (s, cols)) in selected.iter().zip(columns).enumerate() {
        let pieces = split_files(s.export, spec.split.rows_per_task);
        tables.push((
            TableRun {
                work: TableWork::Restore(RestoreTable {
                    table: s.target.name.clone(),
                    columns: cols,
                    expected_rows: s.export.rows,
                    wave: wave_of[i],
                    filter: s
                        .target
                        .extension
                        .as_ref()
                        .and_then(|e| e.config_filter.clone())
                        .filter(|f| !f.is_empty()),
                }),
                finalized: false,
                depends_on: enforced.depends_on[i].iter().map(|&d| d as u32).collect(),
            },
            pieces.into_iter().map(ChunkWork::Restore).collect(),
        ));
    }
    let dropped_indexes = if spec.policy.defer_indexes {
        target::secondary_indexes(&client, &names).await?
    } else {
        Vec::new()
    };
    let sequences = if spec.policy.reset_sequences {
        target::owned_sequences(&client, &names).await?
    } else {
        Vec::new()
    };
    let state = RestoreState {
        export: export_name,
        waves: waves
            .waves
            .iter()
            .map(|w| w.iter().map(|&t| t as u32).collect())
            .collect(),
        dropped_fks,
        dropped_indexes,
        sequences,
        truncate,
        restored: false,
        recorded: true,
    };
    let kind = JobKind::Restore(RestoreJob {
        spec: spec.clone(),
        state: Some(state),
    });
    let job = JobRun::of_kind(id.to_string(), kind, tables, notes);
    Ok(RestorePlan {
        job,
        problems,
        warnings,
    })
}

/// Best guess at `schema.table` for a name missing from the target (only for exclusions).
fn guess_name(schema_and_table: &str) -> Option<QualifiedName> {
    let (schema, table) = schema_and_table.split_once('.')?;
    Some(QualifiedName::new(schema, table))
}

/// As for exports: a literal name in `tables.include` that the export does not hold is a
/// problem (a typo would otherwise restore nothing and succeed), and so is a selection that
/// matches nothing at all.
fn unmatched_patterns(filter: &TableFilter, names: &[QualifiedName]) -> Vec<String> {
    let unmatched = filter.unmatched(names);
    let mut problems: Vec<String> = unmatched
        .missing
        .iter()
        .map(|p| {
            format!(
                "tables.include names {} but the export holds no such table; check the spelling and schema (unquoted names fold to lower case)",
                p.as_str()
            )
        })
        .collect();
    if problems.is_empty() && unmatched.nothing_selected && !names.is_empty() {
        problems.push(format!(
            "no table of the export matches {}",
            filter.describe()
        ));
    }
    problems
}

/// Load each row exactly once: a partitioned table exported with rows is loaded through the
/// parent (rows route to their partitions) and its partitions' own exports are skipped; an
/// exported parent without rows is skipped when its partitions were exported.
fn drop_duplicate_partitions(selected: &mut Vec<Selected>, notes: &mut Vec<String>) {
    let with_rows: Vec<QualifiedName> = selected
        .iter()
        .filter(|s| s.export.rows > 0)
        .map(|s| s.target.name.clone())
        .collect();
    let ancestors_of_selected: Vec<QualifiedName> = selected
        .iter()
        .flat_map(|s| s.target.ancestors.iter().cloned())
        .collect();
    selected.retain(|s| {
        let name = &s.target.name;
        if let Some(a) = s.target.ancestors.iter().find(|a| with_rows.contains(a)) {
            notes.push(format!(
                "{}: skipped, its rows are loaded through the exported partitioned table {}",
                name.display_name(),
                a.display_name()
            ));
            return false;
        }
        if s.target.partitioned && s.export.rows == 0 && ancestors_of_selected.contains(name) {
            notes.push(format!(
                "{}: skipped, the export holds its rows in its partitions",
                name.display_name()
            ));
            return false;
        }
        true
    });
}

/// Map export columns to target columns by name. Generated target columns are left out of
/// the COPY (they cannot be written); anything else missing on either side is a problem.
fn match_columns(export: &ExportTable, target: &TargetTable) -> (Vec<RestoreColumn>, Vec<String>) {
    let mut problems = Vec::new();
    let table = target.name.display_name();
    let export_names: Vec<String> = if !export.columns.is_empty() {
        export
            .columns
            .iter()
            .map(|c| c.column_name.clone())
            .collect()
    } else {
        export
            .files
            .first()
            .map(|f| f.fields.clone())
            .unwrap_or_default()
    };
    let by_name: HashMap<&str, &target::TargetColumn> = target
        .columns
        .iter()
        .map(|c| (c.name.as_str(), c))
        .collect();
    let mut cols = Vec::new();
    for name in &export_names {
        match by_name.get(name.as_str()) {
            Some(c) if c.generated => {}
            Some(c) => {
                if let Some(p) = type_problem(export, name, c) {
                    problems.push(format!("{table}.{name}: {p}"));
                }
                cols.push(RestoreColumn {
                    source: name.clone(),
                    target: name.clone(),
                });
            }
            None => problems.push(format!(
                "{table}: the export has column {name:?}, the target table does not"
            )),
        }
    }
    for c in &target.columns {
        if !c.generated && !export_names.contains(&c.name) {
            problems.push(format!(
                "{table}: target column {:?} ({}) is not in the export",
                c.name, c.type_display
            ));
        }
    }
    (cols, problems)
}

/// Values that PostgreSQL cannot parse into the target type, judged from the export metadata.
fn type_problem(
    export: &ExportTable,
    column: &str,
    target: &target::TargetColumn,
) -> Option<String> {
    let exported = export
        .columns
        .iter()
        .find(|c| c.column_name == column)?
        .expected_exported_type
        .to_ascii_lowercase();
    let kind = RdsType::from_exported_type(&exported)?;
    let is_bytea = target.typname == "bytea";
    if kind == RdsType::Binary && !is_bytea {
        return Some(format!(
            "exported as raw binary but the target type is {}",
            target.type_display
        ));
    }
    let numeric_target = matches!(
        target.typname.as_str(),
        "int2" | "int4" | "int8" | "float4" | "float8" | "numeric" | "money" | "oid"
    );
    if kind == RdsType::Boolean && numeric_target {
        return Some(format!(
            "exported as boolean but the target type is {}",
            target.type_display
        ));
    }
    if kind.is_numeric() && (is_bytea || target.typname == "bool") {
        return Some(format!(
            "exported as {exported} but the target type is {}",
            target.type_display
        ));
    }
    None
}

/// FK edges among the loaded tables (by index), with the constraint behind each edge.
/// A foreign key on or to a partition is attributed to the loaded table that holds it.
fn fk_edges(catalog: &TargetCatalog, names: &[QualifiedName]) -> (Vec<FkEdge>, Vec<ForeignKey>) {
    let index: BTreeMap<&QualifiedName, usize> =
        names.iter().enumerate().map(|(i, n)| (n, i)).collect();
    let owner = |t: &QualifiedName| -> Option<usize> {
        if let Some(&i) = index.get(t) {
            return Some(i);
        }
        // A partition's rows load through an ancestor, or a parent's through its partitions.
        catalog
            .find(t)
            .and_then(|tt| tt.ancestors.iter().find_map(|a| index.get(a).copied()))
    };
    let mut edges = Vec::new();
    let mut fks = Vec::new();
    for fk in &catalog.foreign_keys {
        if let (Some(a), Some(b)) = (owner(&fk.table), owner(&fk.referenced)) {
            edges.push(FkEdge {
                referencing: a,
                referenced: b,
            });
            fks.push(fk.clone());
        }
    }
    (edges, fks)
}

/// One task per file, or per run of whole row groups when a file holds more than
/// `rows_per_task` rows.
fn split_files(export: &ExportTable, rows_per_task: u64) -> Vec<FilePiece> {
    let mut pieces = Vec::new();
    for f in &export.files {
        let total: u64 = f.row_groups.iter().sum();
        if total <= rows_per_task || f.row_groups.len() <= 1 {
            pieces.push(FilePiece {
                key: f.key.clone(),
                size: f.size,
                row_groups: None,
                rows: total,
            });
            continue;
        }
        let mut start = 0usize;
        let mut rows = 0u64;
        for (i, &n) in f.row_groups.iter().enumerate() {
            rows += n;
            let last = i + 1 == f.row_groups.len();
            if rows >= rows_per_task || last {
                pieces.push(FilePiece {
                    key: f.key.clone(),
                    size: f.size,
                    row_groups: Some(RowGroupRange {
                        start: start as u32,
                        end: (i + 1) as u32,
                    }),
                    rows,
                });
                start = i + 1;
                rows = 0;
            }
        }
    }
    pieces
}
