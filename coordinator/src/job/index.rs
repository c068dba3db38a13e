//! What the engine asks of a job on every result — which chunks are due, which tables are ready
//! to finalize, whether the job is complete, how many chunks are in each state — kept up to
//! date by the job's own transitions, so that each answer costs what it returns rather than a
//! scan of every chunk and table (a scan per result made a 10,000-table job quadratic).
//!
//! It is derived data: [`JobIndex::build`] computes it from the tables and chunks, and
//! [`JobIndex::chunk_changed`] / [`JobIndex::table_finalized`] move it along with them.

use super::{ChunkCounts, ChunkRun, ChunkState, TableRun};
use std::collections::BTreeSet;

/// What the index counts of one chunk, taken before and after a transition.
#[derive(Debug, Clone, Copy)]
pub struct Tally {
    table_idx: u32,
    state: ChunkState,
    rows: u64,
    bytes: u64,
}

impl Tally {
    pub fn of(chunk: &ChunkRun) -> Self {
        Self {
            table_idx: chunk.table_idx,
            state: chunk.state,
            rows: chunk.rows,
            bytes: chunk.bytes,
        }
    }
}

#[derive(Debug, Clone, Default)]
pub struct JobIndex {
    /// Positions in `chunks` of each table's chunks, in plan order.
    table_chunks: Vec<Vec<u32>>,
    /// Chunks of each table that are not done.
    undone: Vec<u32>,
    /// Dependencies of each table not finalized yet; a table's chunks are due only at zero. A
    /// dependency on a table the job does not have never clears (as before: never due).
    waiting_on: Vec<u32>,
    /// The tables that depend on each table.
    dependents: Vec<Vec<u32>>,
    /// Pending chunks whose table waits on nothing, in plan order (backoff not considered).
    ready: BTreeSet<u32>,
    /// Queued chunks (published, no result yet), in plan order.
    queued: BTreeSet<u32>,
    /// Tables with every chunk done that are not finalized.
    finalizable: BTreeSet<u32>,
    unfinalized: usize,
    counts: ChunkCounts,
}

/// Derived from the job's data, so two jobs with equal data have equal indexes: comparing it
/// would only compare the data twice.
impl PartialEq for JobIndex {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl JobIndex {
    pub fn build(tables: &[TableRun], chunks: &[ChunkRun]) -> Self {
        let n = tables.len();
        let mut index = JobIndex {
            table_chunks: vec![Vec::new(); n],
            undone: vec![0; n],
            waiting_on: vec![0; n],
            dependents: vec![Vec::new(); n],
            ..Default::default()
        };
        for (t, table) in tables.iter().enumerate() {
            if !table.finalized {
                index.unfinalized += 1;
            }
            for &d in &table.depends_on {
                match tables.get(d as usize) {
                    Some(dep) if dep.finalized => {}
                    Some(_) => {
                        index.waiting_on[t] += 1;
                        index.dependents[d as usize].push(t as u32);
                    }
                    None => index.waiting_on[t] += 1,
                }
            }
        }
        for (pos, chunk) in chunks.iter().enumerate() {
            let t = chunk.table_idx as usize;
            if let Some(list) = index.table_chunks.get_mut(t) {
                list.push(pos as u32);
                if chunk.state != ChunkState::Done {
                    index.undone[t] += 1;
                }
            }
            index.add(pos as u32, Tally::of(chunk), 1);
        }
        for (t, table) in tables.iter().enumerate() {
            if !table.finalized && index.undone[t] == 0 {
                index.finalizable.insert(t as u32);
            }
        }
        index
    }

    /// Count `chunk` (at position `pos`) in (`sign` = 1) or out of (-1) the counters and sets.
    fn add(&mut self, pos: u32, chunk: Tally, sign: i64) {
        let c = &mut self.counts;
        let slot = match chunk.state {
            ChunkState::Pending => &mut c.pending,
            ChunkState::Queued => &mut c.queued,
            ChunkState::Done => &mut c.done,
            ChunkState::Failed => &mut c.failed,
        };
        *slot = slot.wrapping_add_signed(sign);
        c.rows = c
            .rows
            .wrapping_add_signed(sign.wrapping_mul(chunk.rows as i64));
        c.bytes = c
            .bytes
            .wrapping_add_signed(sign.wrapping_mul(chunk.bytes as i64));
        let table_ready = self
            .waiting_on
            .get(chunk.table_idx as usize)
            .is_some_and(|&w| w == 0);
        let set = match chunk.state {
            ChunkState::Pending if table_ready => Some(&mut self.ready),
            ChunkState::Queued => Some(&mut self.queued),
            _ => None,
        };
        if let Some(set) = set {
            if sign > 0 {
                set.insert(pos);
            } else {
                set.remove(&pos);
            }
        }
    }

    /// The chunk at `pos` changed from `before` to `after` (state, rows, bytes).
    pub fn chunk_changed(&mut self, pos: u32, before: Tally, after: Tally, tables: &[TableRun]) {
        self.add(pos, before, -1);
        self.add(pos, after, 1);
        let t = after.table_idx as usize;
        let (was_done, is_done) = (
            before.state == ChunkState::Done,
            after.state == ChunkState::Done,
        );
        if was_done == is_done {
            return;
        }
        let Some(undone) = self.undone.get_mut(t) else {
            return;
        };
        if is_done {
            *undone = undone.saturating_sub(1);
        } else {
            *undone += 1;
        }
        let finalized = tables.get(t).is_some_and(|t| t.finalized);
        if *undone == 0 && !finalized {
            self.finalizable.insert(t as u32);
        } else {
            self.finalizable.remove(&(t as u32));
        }
    }

    /// Table `t` was just finalized: it no longer counts, and tables waiting on it may become
    /// ready, their pending chunks due.
    pub fn table_finalized(&mut self, t: u32, chunks: &[ChunkRun]) {
        self.finalizable.remove(&t);
        self.unfinalized = self.unfinalized.saturating_sub(1);
        let dependents = self.dependents.get(t as usize).cloned().unwrap_or_default();
        for d in dependents {
            let Some(w) = self.waiting_on.get_mut(d as usize) else {
                continue;
            };
            *w = w.saturating_sub(1);
            if *w == 0 {
                for &pos in &self.table_chunks[d as usize] {
                    if chunks
                        .get(pos as usize)
                        .is_some_and(|c| c.state == ChunkState::Pending)
                    {
                        self.ready.insert(pos);
                    }
                }
            }
        }
    }

    pub fn counts(&self) -> ChunkCounts {
        self.counts
    }

    /// Positions of the table's chunks, in plan order.
    pub fn table_chunks(&self, t: u32) -> &[u32] {
        self.table_chunks
            .get(t as usize)
            .map(Vec::as_slice)
            .unwrap_or(&[])
    }

    /// Pending chunks of ready tables, in plan order.
    pub fn ready(&self) -> impl Iterator<Item = u32> + '_ {
        self.ready.iter().copied()
    }

    /// Queued chunks, in plan order.
    pub fn queued(&self) -> impl Iterator<Item = u32> + '_ {
        self.queued.iter().copied()
    }

    pub fn finalizable(&self) -> impl Iterator<Item = u32> + '_ {
        self.finalizable.iter().copied()
    }

    pub fn all_finalized(&self) -> bool {
        self.unfinalized == 0
    }
}
