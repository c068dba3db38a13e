//! A job in memory: its plan and the state of every chunk, with the pure transitions the engine
//! applies. Persistence and messaging live elsewhere; this module is unit-tested on its own.

use crate::export::plan::TablePlan;
use crate::restore::target::{ForeignKey, OwnedSequence, SecondaryIndex};
use protocol::layout;
use protocol::proof::PartProof;
use protocol::spec::{ExportSpec, RestoreSpec};
use protocol::{
    parse_task_id, ChunkRange, JobSpec, Outcome, OutputFormat, QualifiedName, RestoreColumn,
    ResultEnvelope, RowGroupRange,
};
use serde::{Deserialize, Serialize};
use std::time::{Duration, SystemTime};

mod index;
use index::{JobIndex, Tally};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobState {
    Submitted,
    Running,
    Succeeded,
    Failed,
    Cancelling,
    Cancelled,
}

impl JobState {
    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Submitted => "submitted",
            JobState::Running => "running",
            JobState::Succeeded => "succeeded",
            JobState::Failed => "failed",
            JobState::Cancelling => "cancelling",
            JobState::Cancelled => "cancelled",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "submitted" => JobState::Submitted,
            "running" => JobState::Running,
            "succeeded" => JobState::Succeeded,
            "failed" => JobState::Failed,
            "cancelling" => JobState::Cancelling,
            "cancelled" => JobState::Cancelled,
            _ => return None,
        })
    }
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            JobState::Succeeded | JobState::Failed | JobState::Cancelled
        )
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChunkState {
    /// Waiting to be published (first time or for a retry after `not_before`).
    Pending,
    /// Published; a worker has it or will get it.
    Queued,
    Done,
    Failed,
}

impl ChunkState {
    pub fn as_str(self) -> &'static str {
        match self {
            ChunkState::Pending => "pending",
            ChunkState::Queued => "queued",
            ChunkState::Done => "done",
            ChunkState::Failed => "failed",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "pending" => ChunkState::Pending,
            "queued" => ChunkState::Queued,
            "done" => ChunkState::Done,
            "failed" => ChunkState::Failed,
            _ => return None,
        })
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct ChunkRun {
    pub id: u32,
    pub table_idx: u32,
    /// Position within its table: the `part-NNNNN` number.
    pub seq: u32,
    pub work: ChunkWork,
    pub state: ChunkState,
    /// Attempt of the last publish (0 = never published).
    pub attempt: u32,
    pub rows: u64,
    pub bytes: u64,
    /// Export parts: checksum and fingerprint, as the worker reported them.
    pub proof: PartProof,
    pub worker: Option<String>,
    pub last_error: Option<String>,
    pub not_before: Option<SystemTime>,
}

/// What one chunk does: an id range to export, or a piece of a Parquet file to load.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ChunkWork {
    Export(ChunkRange),
    Restore(FilePiece),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FilePiece {
    /// Key relative to the export root.
    pub key: String,
    pub size: u64,
    pub row_groups: Option<RowGroupRange>,
    /// Rows the Parquet footer promises for this piece.
    pub rows: u64,
}

/// What one table of a job is.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum TableWork {
    Export(TablePlan),
    Restore(RestoreTable),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RestoreTable {
    pub table: QualifiedName,
    pub columns: Vec<RestoreColumn>,
    /// Rows in the export (Parquet footers) for this table.
    pub expected_rows: u64,
    pub wave: u32,
    /// Only rows matching this condition load (an extension's configuration table: its
    /// `pg_extension_config_dump` filter), so fewer than `expected_rows` may.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filter: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct TableRun {
    pub work: TableWork,
    /// Export: manifest written. Restore: row count verified.
    pub finalized: bool,
    /// Tables that must be finalized before this one's chunks are published (restore waves).
    pub depends_on: Vec<u32>,
}

impl TableRun {
    pub fn name(&self) -> &QualifiedName {
        match &self.work {
            TableWork::Export(p) => &p.table,
            TableWork::Restore(r) => &r.table,
        }
    }
}

/// Restore bookkeeping that must survive a coordinator restart: what was changed on the target
/// before loading, so it can be put back afterwards (or after a failure).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct RestoreState {
    /// The ledger's name for this export (its root URL).
    pub export: String,
    pub waves: Vec<Vec<u32>>,
    /// Foreign keys inside FK cycles, dropped before loading and re-added after.
    pub dropped_fks: Vec<ForeignKey>,
    /// Secondary indexes dropped before loading (`defer_indexes`) and rebuilt after.
    pub dropped_indexes: Vec<SecondaryIndex>,
    pub sequences: Vec<OwnedSequence>,
    /// Non-empty tables emptied first (`policy.non_empty = "truncate"`).
    pub truncate: Vec<QualifiedName>,
    /// Constraints and indexes have been put back.
    pub restored: bool,
    /// What the job drops is recorded in the target (`pgfleet_restore.pending_changes`); jobs
    /// saved before that existed have only the lists above.
    #[serde(default)]
    pub recorded: bool,
}

/// A job and the state of each of its tables and chunks. Read `tables` and `chunks` freely,
/// but change a chunk's state, rows or bytes and a table's `finalized` only through the
/// methods here ([`JobRun::mark_queued`], [`JobRun::apply`], [`JobRun::requeue`],
/// [`JobRun::replace_chunk`], [`JobRun::mark_finalized`]): they keep the index that makes
/// scheduling cost O(1) per result in step.
#[derive(Debug, Clone, PartialEq)]
pub struct JobRun {
    pub id: String,
    pub kind: JobKind,
    pub state: JobState,
    pub tables: Vec<TableRun>,
    pub chunks: Vec<ChunkRun>,
    pub notes: Vec<String>,
    pub error: Option<String>,
    index: JobIndex,
}

/// What kind of job this is, with what only that kind has.
#[derive(Debug, Clone, PartialEq)]
pub enum JobKind {
    Export(ExportJob),
    Restore(RestoreJob),
}

#[derive(Debug, Clone, PartialEq)]
pub struct ExportJob {
    pub spec: ExportSpec,
    /// The snapshot every chunk imports (`snapshot = "consistent"`).
    pub snapshot: Option<String>,
    /// `current_database()` of the source (the database folder of `rds-parquet`); `None`
    /// until planned.
    pub source_database: Option<String>,
}

impl ExportJob {
    /// A job of `spec`, not planned yet.
    pub fn new(spec: ExportSpec) -> Self {
        Self {
            spec,
            snapshot: None,
            source_database: None,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct RestoreJob {
    pub spec: RestoreSpec,
    /// What the job changes on the target and must put back; `None` until planned (a job
    /// whose planning failed changed nothing).
    pub state: Option<RestoreState>,
}

impl JobKind {
    /// A job of `spec`'s kind, not planned yet.
    pub fn new(spec: JobSpec) -> Self {
        match spec {
            JobSpec::Export(spec) => JobKind::Export(ExportJob::new(spec)),
            JobSpec::Restore(spec) => JobKind::Restore(RestoreJob { spec, state: None }),
        }
    }

    /// `export` or `restore`.
    pub fn as_str(&self) -> &'static str {
        match self {
            JobKind::Export(_) => "export",
            JobKind::Restore(_) => "restore",
        }
    }

    pub fn name(&self) -> &str {
        match self {
            JobKind::Export(e) => &e.spec.name,
            JobKind::Restore(r) => &r.spec.name,
        }
    }

    /// What the job changed is put back (a restore's target).
    pub fn mark_put_back(&mut self) {
        if let JobKind::Restore(RestoreJob {
            state: Some(st), ..
        }) = self
        {
            st.restored = true;
        }
    }

    /// A restore whose changes to the target are not all put back yet.
    pub fn has_changes_out(&self) -> bool {
        matches!(self, JobKind::Restore(RestoreJob { state: Some(st), .. }) if !st.restored)
    }
}

#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    pub max_attempts: u32,
    pub base: Duration,
    pub cap: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 5,
            base: Duration::from_secs(1),
            cap: Duration::from_secs(60),
        }
    }
}

impl RetryPolicy {
    /// Backoff before attempt `next` (2, 3, …): base * 2^(next-2), capped.
    pub fn delay(&self, next: u32) -> Duration {
        let exp = next.saturating_sub(2).min(16);
        self.base.saturating_mul(1 << exp).min(self.cap)
    }
}

/// What applying one result did.
#[derive(Debug, Clone, PartialEq)]
pub enum Applied {
    /// A duplicate, a stale attempt, or a result for a finished job: nothing changed.
    Ignored(&'static str),
    Done {
        chunk: u32,
    },
    Retry {
        chunk: u32,
        attempt: u32,
    },
    Failed {
        chunk: u32,
    },
}

impl JobRun {
    /// A new job from its tables, each with its chunks: every chunk pending.
    pub fn new(
        id: String,
        spec: JobSpec,
        tables: Vec<(TableRun, Vec<ChunkWork>)>,
        notes: Vec<String>,
    ) -> Self {
        Self::of_kind(id, JobKind::new(spec), tables, notes)
    }

    /// [`JobRun::new`] with the kind's own state already set.
    pub fn of_kind(
        id: String,
        kind: JobKind,
        tables: Vec<(TableRun, Vec<ChunkWork>)>,
        notes: Vec<String>,
    ) -> Self {
        let mut chunks = Vec::new();
        let mut runs = Vec::with_capacity(tables.len());
        for (t, (table, works)) in tables.into_iter().enumerate() {
            for (seq, work) in works.into_iter().enumerate() {
                chunks.push(ChunkRun {
                    id: chunks.len() as u32,
                    table_idx: t as u32,
                    seq: seq as u32,
                    work,
                    state: ChunkState::Pending,
                    attempt: 0,
                    rows: 0,
                    bytes: 0,
                    proof: PartProof::default(),
                    worker: None,
                    last_error: None,
                    not_before: None,
                });
            }
            runs.push(table);
        }
        Self::from_parts(id, kind, JobState::Running, runs, chunks, notes, None)
    }

    /// A job from its stored parts (chunk ids are their positions in `chunks`).
    pub fn from_parts(
        id: String,
        kind: JobKind,
        state: JobState,
        tables: Vec<TableRun>,
        chunks: Vec<ChunkRun>,
        notes: Vec<String>,
        error: Option<String>,
    ) -> Self {
        let index = JobIndex::build(&tables, &chunks);
        Self {
            id,
            kind,
            state,
            tables,
            chunks,
            notes,
            error,
            index,
        }
    }

    /// Change chunk `pos` with `f`, keeping the index in step.
    fn update_chunk<R>(&mut self, pos: u32, f: impl FnOnce(&mut ChunkRun) -> R) -> Option<R> {
        let chunk = self.chunks.get_mut(pos as usize)?;
        let before = Tally::of(chunk);
        let out = f(chunk);
        let after = Tally::of(chunk);
        self.index.chunk_changed(pos, before, after, &self.tables);
        Some(out)
    }

    /// An export job from its plan.
    pub fn for_export(
        id: String,
        export: ExportJob,
        plans: Vec<TablePlan>,
        notes: Vec<String>,
    ) -> Self {
        let tables = plans
            .into_iter()
            .map(|plan| {
                let works = plan.chunks.iter().cloned().map(ChunkWork::Export).collect();
                let run = TableRun {
                    work: TableWork::Export(plan),
                    finalized: false,
                    depends_on: Vec::new(),
                };
                (run, works)
            })
            .collect();
        Self::of_kind(id, JobKind::Export(export), tables, notes)
    }

    pub fn export(&self) -> Option<&ExportJob> {
        match &self.kind {
            JobKind::Export(e) => Some(e),
            JobKind::Restore(_) => None,
        }
    }

    pub fn restore(&self) -> Option<&RestoreJob> {
        match &self.kind {
            JobKind::Restore(r) => Some(r),
            JobKind::Export(_) => None,
        }
    }

    pub fn export_spec(&self) -> Option<&ExportSpec> {
        self.export().map(|e| &e.spec)
    }

    pub fn restore_spec(&self) -> Option<&RestoreSpec> {
        self.restore().map(|r| &r.spec)
    }

    /// The restore bookkeeping, once planned.
    pub fn restore_state(&self) -> Option<&RestoreState> {
        self.restore().and_then(|r| r.state.as_ref())
    }

    pub fn restore_state_mut(&mut self) -> Option<&mut RestoreState> {
        match &mut self.kind {
            JobKind::Restore(r) => r.state.as_mut(),
            JobKind::Export(_) => None,
        }
    }

    /// A failed job with nothing planned (planning itself failed).
    pub fn failed(id: String, spec: JobSpec, error: String) -> Self {
        let mut job = Self::new(id, spec, Vec::new(), Vec::new());
        job.state = JobState::Failed;
        job.error = Some(error);
        job
    }

    pub fn in_flight(&self) -> usize {
        usize::try_from(self.index.counts().queued).unwrap_or(usize::MAX)
    }

    /// Pending chunks whose backoff has passed and whose table waits on no other, in plan
    /// order, at most `limit`. Only pending chunks of ready tables are looked at (the ones in
    /// backoff are at most the chunks that were in flight).
    pub fn due(&self, now: SystemTime, limit: usize) -> Vec<u32> {
        if self.state != JobState::Running {
            return Vec::new();
        }
        self.index
            .ready()
            .filter_map(|pos| self.chunks.get(pos as usize))
            .filter(|c| c.not_before.is_none_or(|t| t <= now))
            .take(limit)
            .map(|c| c.id)
            .collect()
    }

    /// Chunks published and without a result yet, in plan order.
    pub fn queued(&self) -> impl Iterator<Item = &ChunkRun> {
        self.index
            .queued()
            .filter_map(|pos| self.chunks.get(pos as usize))
    }

    /// The chunk was published as attempt `attempt`.
    pub fn mark_queued(&mut self, chunk: u32, attempt: u32) {
        self.update_chunk(chunk, |c| {
            c.state = ChunkState::Queued;
            c.attempt = attempt;
            c.not_before = None;
        });
    }

    /// A queued chunk with no result in time goes back to pending, to be published at once as
    /// its next attempt.
    pub fn requeue(&mut self, chunk: u32) {
        self.update_chunk(chunk, |c| {
            c.state = ChunkState::Pending;
            c.not_before = None;
        });
    }

    /// Put `chunk` in place of the chunk with its id (a store mirroring the engine's copy).
    pub fn replace_chunk(&mut self, chunk: &ChunkRun) {
        self.update_chunk(chunk.id, |c| *c = chunk.clone());
    }

    /// Table `table_idx` is finalized (manifest written, rows checked): tables waiting on it
    /// may start.
    pub fn mark_finalized(&mut self, table_idx: u32) {
        let Some(t) = self.tables.get_mut(table_idx as usize) else {
            return;
        };
        if t.finalized {
            return;
        }
        t.finalized = true;
        self.index.table_finalized(table_idx, &self.chunks);
    }

    /// The database folder of an `rds-parquet` export: the source's `current_database()`.
    /// The deterministic object key of an export chunk (relative to the output location).
    pub fn part_key(&self, chunk: &ChunkRun) -> String {
        let table = self.tables[chunk.table_idx as usize].name();
        match self.export_spec().map(|s| s.output.format) {
            Some(OutputFormat::RdsParquet) => {
                layout::rds::part_key(self.source_database(), table, chunk.seq, &self.id)
            }
            Some(format) => layout::csv::part_key(table, chunk.seq, format.extension()),
            None => layout::csv::part_key(table, chunk.seq, "csv"),
        }
    }

    /// Apply one result. Results are deduplicated by task id: once a chunk is done or failed,
    /// later results for it change nothing, and a failure from an older attempt than the one in
    /// flight is stale.
    pub fn apply(
        &mut self,
        result: &ResultEnvelope,
        now: SystemTime,
        policy: &RetryPolicy,
    ) -> Applied {
        let pos = parse_task_id(&result.task_id).map(|(_, chunk)| chunk);
        let before = pos.and_then(|p| self.chunks.get(p as usize)).map(Tally::of);
        let applied = self.apply_to_chunk(result, now, policy);
        if let (Some(pos), Some(before)) = (pos, before) {
            if let Some(after) = self.chunks.get(pos as usize).map(Tally::of) {
                self.index.chunk_changed(pos, before, after, &self.tables);
            }
        }
        applied
    }

    /// [`JobRun::apply`] on the chunk alone; the caller moves the index along.
    fn apply_to_chunk(
        &mut self,
        result: &ResultEnvelope,
        now: SystemTime,
        policy: &RetryPolicy,
    ) -> Applied {
        if self.state != JobState::Running {
            return Applied::Ignored("job is not running");
        }
        let Some((_, chunk_id)) = parse_task_id(&result.task_id) else {
            return Applied::Ignored("malformed task id");
        };
        let Some(chunk) = self.chunks.get_mut(chunk_id as usize) else {
            return Applied::Ignored("unknown chunk");
        };
        if matches!(chunk.state, ChunkState::Done | ChunkState::Failed) {
            return Applied::Ignored("chunk already finished");
        }
        match &result.outcome {
            // Any attempt's success is complete: the object was written whole under its key.
            Outcome::Succeeded {
                rows, bytes, proof, ..
            } => {
                chunk.state = ChunkState::Done;
                chunk.rows = *rows;
                chunk.bytes = *bytes;
                chunk.proof = *proof;
                chunk.worker = Some(result.worker.clone());
                chunk.last_error = None;
                Applied::Done { chunk: chunk_id }
            }
            Outcome::Failed { .. } if result.attempt < chunk.attempt => {
                Applied::Ignored("stale failure of an earlier attempt")
            }
            Outcome::Failed { .. } if chunk.state == ChunkState::Pending => {
                Applied::Ignored("retry already scheduled")
            }
            Outcome::Failed { error, retryable } => {
                chunk.last_error = Some(error.clone());
                chunk.worker = Some(result.worker.clone());
                if *retryable && chunk.attempt < policy.max_attempts {
                    let next = chunk.attempt + 1;
                    chunk.state = ChunkState::Pending;
                    chunk.not_before = Some(now + policy.delay(next));
                    Applied::Retry {
                        chunk: chunk_id,
                        attempt: next,
                    }
                } else {
                    chunk.state = ChunkState::Failed;
                    let table = self.tables[chunk.table_idx as usize].name();
                    let tries = if *retryable {
                        format!(" after {} attempts", chunk.attempt)
                    } else {
                        String::new()
                    };
                    self.state = JobState::Failed;
                    self.error = Some(format!(
                        "table {} chunk {} (part-{:05}) failed{tries}: {error}",
                        table.display_name(),
                        chunk_id,
                        chunk.seq
                    ));
                    Applied::Failed { chunk: chunk_id }
                }
            }
        }
    }

    /// The table's chunks, in plan order.
    pub fn table_chunks(&self, table_idx: u32) -> impl Iterator<Item = &ChunkRun> {
        self.index
            .table_chunks(table_idx)
            .iter()
            .filter_map(|&pos| self.chunks.get(pos as usize))
    }

    /// Tables whose chunks are all done but which are not finalized yet.
    pub fn tables_ready_to_finalize(&self) -> Vec<u32> {
        self.index.finalizable().collect()
    }

    /// Every table loaded or exported and finalized.
    pub fn is_complete(&self) -> bool {
        self.index.all_finalized()
    }

    /// Rows done for one table.
    pub fn table_rows(&self, table_idx: u32) -> u64 {
        self.table_chunks(table_idx).map(|c| c.rows).sum()
    }

    /// The key of an export table's `_manifest.json`: in the table folder, or in the batch
    /// folder (beside `_SUCCESS`) for rds-parquet.
    pub fn manifest_key(&self, table_idx: u32) -> String {
        let table = self.tables[table_idx as usize].name();
        match self.export_spec().map(|s| s.output.format) {
            Some(OutputFormat::RdsParquet) => {
                layout::rds::manifest_key(self.source_database(), table)
            }
            _ => layout::csv::manifest_key(table),
        }
    }

    /// The key of an export table's `_SUCCESS` marker: in the table folder, or in the batch
    /// folder for rds-parquet.
    pub fn success_key(&self, table_idx: u32) -> String {
        let table = self.tables[table_idx as usize].name();
        match self.export_spec().map(|s| s.output.format) {
            Some(OutputFormat::RdsParquet) => {
                layout::rds::success_key(self.source_database(), table)
            }
            _ => layout::csv::success_key(table),
        }
    }

    /// The database folder of an `rds-parquet` export (`postgres` before planning).
    pub fn source_database(&self) -> &str {
        self.export()
            .and_then(|e| e.source_database.as_deref())
            .unwrap_or("postgres")
    }

    /// Chunks in each state, and the rows and bytes done (kept as the chunks change).
    pub fn counts(&self) -> ChunkCounts {
        self.index.counts()
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ChunkCounts {
    pub pending: u64,
    pub queued: u64,
    pub done: u64,
    pub failed: u64,
    pub rows: u64,
    pub bytes: u64,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::export::plan::KeyChoice;
    use protocol::{task_id, QualifiedName, MESSAGE_VERSION};

    fn spec() -> ExportSpec {
        let toml = r#"
kind = "export"
name = "t"
[source]
[tables]
include = ["public.*"]
[output]
url = "file:///tmp/x/"
"#;
        match protocol::JobSpec::from_toml(toml).unwrap() {
            protocol::JobSpec::Export(e) => e,
            protocol::JobSpec::Restore(_) => unreachable!("export spec above"),
        }
    }

    /// `public.<name>` cut into `chunks` unbounded page ranges.
    fn pages_plan(name: &str, chunks: usize) -> TablePlan {
        TablePlan {
            table: QualifiedName::new("public", name),
            own_rows_only: true,
            columns: vec!["id".into()],
            column_types: Vec::new(),
            key: KeyChoice::Pages,
            estimated_rows: 0,
            estimated_bytes: 0,
            chunks: (0..chunks)
                .map(|_| ChunkRange::Pages { lo: None, hi: None })
                .collect(),
        }
    }

    fn job(chunks: usize) -> JobRun {
        let plan = pages_plan("t", chunks);
        JobRun::for_export("j1".into(), ExportJob::new(spec()), vec![plan], vec![])
    }

    fn result(chunk: u32, attempt: u32, outcome: Outcome) -> ResultEnvelope {
        ResultEnvelope {
            version: MESSAGE_VERSION,
            task_id: task_id("j1", chunk),
            job_id: "j1".into(),
            attempt,
            worker: "w".into(),
            outcome,
        }
    }

    fn ok(rows: u64) -> Outcome {
        let mut fingerprint = protocol::proof::RowFingerprint::default();
        for r in 0..rows {
            fingerprint.add_row(format!("{r}\n").as_bytes());
        }
        Outcome::Succeeded {
            rows,
            bytes: 10,
            key: "k".into(),
            proof: PartProof {
                crc32c: Some(0xabcd_0000 + rows as u32),
                fingerprint: Some(fingerprint),
            },
        }
    }

    fn fail(retryable: bool) -> Outcome {
        Outcome::Failed {
            error: "boom".into(),
            retryable,
        }
    }

    #[test]
    fn duplicate_results_count_once() {
        let mut j = job(2);
        let now = SystemTime::now();
        let p = RetryPolicy::default();
        j.mark_queued(0, 1);
        assert_eq!(
            j.apply(&result(0, 1, ok(5)), now, &p),
            Applied::Done { chunk: 0 }
        );
        assert!(matches!(
            j.apply(&result(0, 1, ok(5)), now, &p),
            Applied::Ignored(_)
        ));
        assert!(matches!(
            j.apply(&result(0, 1, fail(true)), now, &p),
            Applied::Ignored(_)
        ));
        assert_eq!(j.counts().rows, 5);
        assert_eq!(j.counts().done, 1);
    }

    #[test]
    fn retries_with_backoff_then_fails_naming_table_and_chunk() {
        let mut j = job(1);
        let p = RetryPolicy {
            max_attempts: 3,
            ..Default::default()
        };
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1000);
        j.mark_queued(0, 1);
        assert_eq!(
            j.apply(&result(0, 1, fail(true)), t0, &p),
            Applied::Retry {
                chunk: 0,
                attempt: 2
            }
        );
        assert!(j.due(t0, 10).is_empty(), "backoff must delay the retry");
        assert_eq!(j.due(t0 + Duration::from_secs(1), 10), vec![0]);
        j.mark_queued(0, 2);
        // A late failure from attempt 1 is stale.
        assert!(matches!(
            j.apply(&result(0, 1, fail(true)), t0, &p),
            Applied::Ignored(_)
        ));
        assert_eq!(
            j.apply(&result(0, 2, fail(true)), t0, &p),
            Applied::Retry {
                chunk: 0,
                attempt: 3
            }
        );
        assert_eq!(j.chunks[0].not_before, Some(t0 + Duration::from_secs(2)));
        j.mark_queued(0, 3);
        assert_eq!(
            j.apply(&result(0, 3, fail(true)), t0, &p),
            Applied::Failed { chunk: 0 }
        );
        assert_eq!(j.state, JobState::Failed);
        let err = j.error.unwrap();
        assert!(
            err.contains("public.t")
                && err.contains("part-00000")
                && err.contains("after 3 attempts"),
            "{err}"
        );
    }

    #[test]
    fn fatal_failure_skips_retries() {
        let mut j = job(2);
        j.mark_queued(1, 1);
        let applied = j.apply(
            &result(1, 1, fail(false)),
            SystemTime::now(),
            &RetryPolicy::default(),
        );
        assert_eq!(applied, Applied::Failed { chunk: 1 });
        assert!(
            j.due(SystemTime::now(), 10).is_empty(),
            "a failed job publishes nothing"
        );
    }

    #[test]
    fn late_success_of_an_earlier_attempt_completes_the_chunk() {
        let mut j = job(1);
        let p = RetryPolicy::default();
        j.mark_queued(0, 1);
        j.apply(&result(0, 1, fail(true)), SystemTime::now(), &p);
        j.mark_queued(0, 2);
        assert_eq!(
            j.apply(&result(0, 1, ok(3)), SystemTime::now(), &p),
            Applied::Done { chunk: 0 }
        );
    }

    #[test]
    fn manifest_waits_for_every_chunk() {
        let mut j = job(2);
        let p = RetryPolicy::default();
        j.mark_queued(0, 1);
        j.mark_queued(1, 1);
        j.apply(&result(0, 1, ok(1)), SystemTime::now(), &p);
        assert!(j.tables_ready_to_finalize().is_empty());
        j.apply(&result(1, 1, ok(2)), SystemTime::now(), &p);
        assert_eq!(j.tables_ready_to_finalize(), vec![0]);
        let m = crate::export::manifest::manifest(&j, 0).unwrap();
        assert_eq!(m["rows"], 3);
        assert_eq!(m["objects"][1]["key"], "public.t/part-00001.csv");
        // Each part's proof as the worker reported it, the COPY it ran, and the table's
        // fingerprint as the sum of its parts'.
        assert_eq!(m["objects"][0]["crc32c"], "abcd0001");
        assert_eq!(m["objects"][1]["fingerprint"]["rows"], 2);
        let q = m["objects"][1]["source_query"].as_str().unwrap();
        assert!(
            q.starts_with("COPY (SELECT") && q.ends_with("TO STDOUT (FORMAT csv)"),
            "{q}"
        );
        let Outcome::Succeeded { proof: p1, .. } = ok(1) else {
            unreachable!()
        };
        let Outcome::Succeeded { proof: p2, .. } = ok(2) else {
            unreachable!()
        };
        let both = p1.fingerprint.unwrap().combine(p2.fingerprint.unwrap());
        assert_eq!(m["fingerprint"], serde_json::to_value(both).unwrap());
        assert_eq!(m["proof"]["object_checksum"], "crc32c");
        assert_eq!(j.manifest_key(0), "public.t/_manifest.json");
        assert_eq!(j.success_key(0), "public.t/_SUCCESS");
    }

    /// Tables a (3 chunks), b (2 chunks, waits for a) and c (no chunks), as a restore's waves
    /// would have them.
    fn waves_job() -> JobRun {
        let plan = pages_plan;
        let mut j = JobRun::for_export(
            "j1".into(),
            ExportJob::new(spec()),
            vec![plan("a", 3), plan("b", 2), plan("c", 0)],
            vec![],
        );
        j.tables[1].depends_on = vec![0];
        // Rebuilt from its parts, as a store loads it.
        JobRun::from_parts(
            j.id.clone(),
            j.kind.clone(),
            j.state,
            j.tables.clone(),
            j.chunks.clone(),
            j.notes.clone(),
            None,
        )
    }

    /// What the index answers, computed by scanning every chunk and table (the old way).
    fn scan(j: &JobRun, now: SystemTime) -> (ChunkCounts, Vec<u32>, Vec<u32>, Vec<u32>, bool) {
        let mut c = ChunkCounts::default();
        for ch in &j.chunks {
            match ch.state {
                ChunkState::Pending => c.pending += 1,
                ChunkState::Queued => c.queued += 1,
                ChunkState::Done => c.done += 1,
                ChunkState::Failed => c.failed += 1,
            }
            c.rows += ch.rows;
            c.bytes += ch.bytes;
        }
        let ready = |t: u32| {
            j.tables[t as usize]
                .depends_on
                .iter()
                .all(|&d| j.tables.get(d as usize).is_some_and(|d| d.finalized))
        };
        let due = j
            .chunks
            .iter()
            .filter(|c| c.state == ChunkState::Pending && c.not_before.is_none_or(|t| t <= now))
            .filter(|c| ready(c.table_idx))
            .map(|c| c.id)
            .collect();
        let queued = j
            .chunks
            .iter()
            .filter(|c| c.state == ChunkState::Queued)
            .map(|c| c.id)
            .collect();
        let finalizable = (0..j.tables.len() as u32)
            .filter(|&t| !j.tables[t as usize].finalized)
            .filter(|&t| {
                j.chunks
                    .iter()
                    .filter(|c| c.table_idx == t)
                    .all(|c| c.state == ChunkState::Done)
            })
            .collect();
        let complete = j.tables.iter().all(|t| t.finalized);
        (c, due, queued, finalizable, complete)
    }

    fn indexed(j: &JobRun, now: SystemTime) -> (ChunkCounts, Vec<u32>, Vec<u32>, Vec<u32>, bool) {
        (
            j.counts(),
            j.due(now, usize::MAX),
            j.queued().map(|c| c.id).collect(),
            j.tables_ready_to_finalize(),
            j.is_complete(),
        )
    }

    /// Through any sequence of transitions (a deterministic pseudo-random walk), the index
    /// answers what a scan of every chunk and table would.
    #[test]
    fn index_agrees_with_a_full_scan() {
        let p = RetryPolicy {
            max_attempts: u32::MAX,
            base: Duration::ZERO,
            cap: Duration::ZERO,
        };
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1000);
        for seed in 0..20u64 {
            let mut j = waves_job();
            let mut x = seed;
            assert_eq!(indexed(&j, now), scan(&j, now), "seed {seed}, fresh");
            for step in 0..300 {
                x = x
                    .wrapping_mul(6_364_136_223_846_793_005)
                    .wrapping_add(1_442_695_040_888_963_407);
                let r = (x >> 33) as u32;
                let chunk = (r / 7) % j.chunks.len() as u32;
                let attempt = j.chunks[chunk as usize].attempt;
                match r % 7 {
                    0 | 1 => {
                        if j.chunks[chunk as usize].state == ChunkState::Pending {
                            j.mark_queued(chunk, attempt + 1);
                        }
                    }
                    2 => {
                        j.apply(&result(chunk, attempt, ok(u64::from(r % 5))), now, &p);
                    }
                    3 => {
                        j.apply(&result(chunk, attempt, fail(true)), now, &p);
                    }
                    4 => {
                        if j.chunks[chunk as usize].state == ChunkState::Queued {
                            j.requeue(chunk);
                        }
                    }
                    5 => {
                        let mut c = j.chunks[chunk as usize].clone();
                        c.rows += 1;
                        j.replace_chunk(&c);
                    }
                    _ => {
                        if let Some(&t) = j.tables_ready_to_finalize().first() {
                            j.mark_finalized(t);
                        }
                    }
                }
                assert_eq!(indexed(&j, now), scan(&j, now), "seed {seed}, step {step}");
            }
        }
    }

    #[test]
    fn a_waiting_table_starts_when_its_dependency_is_finalized() {
        let mut j = waves_job();
        let p = RetryPolicy::default();
        let now = SystemTime::now();
        // c has no chunks: ready to finalize at once. b waits for a.
        assert_eq!(j.tables_ready_to_finalize(), vec![2]);
        assert_eq!(j.due(now, 10), vec![0, 1, 2]);
        for c in 0..3 {
            j.mark_queued(c, 1);
            j.apply(&result(c, 1, ok(1)), now, &p);
        }
        assert!(j.due(now, 10).is_empty(), "b waits until a is finalized");
        assert_eq!(j.tables_ready_to_finalize(), vec![0, 2]);
        j.mark_finalized(0);
        assert_eq!(j.due(now, 10), vec![3, 4]);
        assert_eq!(j.due(now, 1), vec![3]);
        assert!(!j.is_complete());
        j.mark_finalized(2);
        for c in 3..5 {
            j.mark_queued(c, 1);
            j.apply(&result(c, 1, ok(1)), now, &p);
        }
        j.mark_finalized(1);
        assert!(j.is_complete());
        assert_eq!(j.counts().rows, 5);
    }
}
