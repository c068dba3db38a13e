//! Splitting a table into chunks of similar row counts. Pure functions, no I/O: the catalog
//! module gathers the numbers (row estimates, page counts, key quantile points) and these
//! functions turn them into [`ChunkRange`]s.
//!
//! Integer keys are split at equal-count quantiles of the key's distribution, not at equal
//! strides of `min..max`: real ids are skewed (bulk loads, gaps, sequences restarted at a
//! billion), and strides then put most rows in one chunk. Every plan covers the whole key space:
//! the first chunk has no lower bound and the last no upper bound, so rows inserted after
//! planning (or missed by the sample) are still exported exactly once.

use protocol::spec::ChunkTarget;
use protocol::{ChunkRange, KeyColumn};

/// Sample points wanted per expected chunk. Between two boundaries that are `m` sample points
/// apart lies a share of rows whose relative error is about `1/sqrt(m)`: 50 points keep a chunk
/// within roughly ±14% (one standard deviation) of its target.
pub const SAMPLE_POINTS_PER_CHUNK: u64 = 50;
/// Never plan from fewer points than this when sampling (small chunk counts still deserve a
/// decent sample: 2000 points cost almost nothing to read).
pub const MIN_SAMPLE_POINTS: u64 = 2_000;
/// Upper bound on the sample, in pages read and in keys sent back to the coordinator.
pub const MAX_SAMPLE_POINTS: u64 = 100_000;
/// More chunks than this for one table is almost surely a mistaken chunk size; the planner clamps
/// to it (and says so) rather than building millions of tasks.
pub const MAX_CHUNKS_PER_TABLE: u64 = 1_000_000;

/// What is known about the distribution of an integer key's non-null values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyDistribution {
    /// Smallest and largest key (`SELECT min(k), max(k)`).
    pub min: i64,
    pub max: i64,
    /// Sorted points that each stand for an equal share of the rows: a random sample of keys,
    /// every key, or `pg_stats.histogram_bounds`. May be empty (then only min/max are known and
    /// the split degrades to strides).
    pub points: Vec<i64>,
}

impl KeyDistribution {
    /// Sorts the points and widens min/max to include them (a sample taken in another
    /// statement may have seen a key that min/max did not).
    pub fn new(min: i64, max: i64, mut points: Vec<i64>) -> Self {
        points.sort_unstable();
        let min = points.first().map_or(min, |&p| p.min(min));
        let max = points.last().map_or(max, |&p| p.max(max));
        Self { min, max, points }
    }

    /// The empirical distribution as a piecewise-linear CDF: min, the points, max. Linear
    /// interpolation between neighbouring points assumes keys are spread evenly between them,
    /// which is the best guess a sample allows (and exactly right for a dense key).
    fn cdf_points(&self) -> Vec<i64> {
        let mut cdf = Vec::with_capacity(self.points.len() + 2);
        cdf.push(self.min);
        cdf.extend_from_slice(&self.points);
        cdf.push(self.max);
        cdf
    }
}

/// How many chunks a table of `estimated_rows` needs: at least one (an empty table still gets a
/// chunk, so its export is a header-only file rather than nothing).
pub fn chunk_count(estimated_rows: u64, rows_per_chunk: u64) -> u64 {
    estimated_rows
        .div_ceil(rows_per_chunk.max(1))
        .clamp(1, MAX_CHUNKS_PER_TABLE)
}

/// Rows per chunk for a chunking target. A byte target is converted with the table's average
/// bytes per row; with no rows to measure, any value works since the table gets one chunk.
pub fn rows_per_chunk(target: ChunkTarget, estimated_rows: u64, estimated_bytes: u64) -> u64 {
    match target {
        ChunkTarget::Rows(rows) => rows.max(1),
        ChunkTarget::Bytes(_) if estimated_rows == 0 || estimated_bytes == 0 => u64::MAX,
        ChunkTarget::Bytes(bytes) => {
            // Rounded up, so the chunk count is ceil(table bytes / target), not one more.
            let bytes_per_row = estimated_bytes as f64 / estimated_rows as f64;
            ((bytes as f64 / bytes_per_row).ceil() as u64).max(1)
        }
    }
}

/// Chunk boundaries at equal-count quantiles of the key distribution. Returns at most
/// `chunks - 1` values, strictly increasing, each in `(min, max]`: a boundary at or below the
/// minimum would make an empty first chunk. Quantiles that land on the same key (a heavy value,
/// or fewer distinct keys than chunks) collapse into one boundary, so such a value is never
/// split and the plan simply has fewer chunks.
pub fn quantile_boundaries(dist: &KeyDistribution, chunks: u64) -> Vec<i64> {
    if chunks <= 1 || dist.min >= dist.max {
        return Vec::new();
    }
    let cdf = dist.cdf_points();
    let fractions = (1..chunks).map(|i| i as f64 / chunks as f64);
    strictly_increasing_within(fractions.map(|f| quantile(&cdf, f)), dist.min, dist.max)
}

/// Naive boundaries at equal strides of `min..=max`. Only right for evenly spread keys; the
/// planner uses it as a last resort when nothing better than min/max is known, and the tests
/// use it to show why quantiles are needed.
pub fn stride_boundaries(min: i64, max: i64, chunks: u64) -> Vec<i64> {
    if chunks <= 1 || min >= max {
        return Vec::new();
    }
    // i128: max - min overflows i64 for keys spanning most of the i64 range.
    let width = max as i128 - min as i128 + 1;
    let values = (1..chunks).map(|i| {
        let b = min as i128 + width * i as i128 / chunks as i128;
        b as i64 // within [min, max + 1) since i < chunks; fits because b <= max
    });
    strictly_increasing_within(values, min, max)
}

/// Keeps the values that are in `(min, max]` and larger than the previous kept value.
fn strictly_increasing_within(values: impl Iterator<Item = i64>, min: i64, max: i64) -> Vec<i64> {
    let mut out: Vec<i64> = Vec::new();
    for v in values {
        if v > min && v <= max && out.last().is_none_or(|&last| v > last) {
            out.push(v);
        }
    }
    out
}

/// The key at cumulative fraction `f` of a piecewise-linear CDF through sorted `cdf` points
/// (which must have at least two entries).
fn quantile(cdf: &[i64], f: f64) -> i64 {
    let last = cdf.len() - 1;
    let pos = f.clamp(0.0, 1.0) * last as f64;
    let i = (pos.floor() as usize).min(last);
    if i == last {
        return cdf[last];
    }
    let (lo, hi) = (cdf[i] as i128, cdf[i + 1] as i128);
    // i128 and f64: the gap between two points can exceed i64::MAX.
    let step = ((hi - lo) as f64 * (pos - i as f64)).round() as i128;
    (lo + step).clamp(lo, hi) as i64
}

/// Chunk ranges on `column` from sorted, strictly increasing boundaries: `[-inf, b0)`,
/// `[b0, b1)`, ..., `[bn, +inf)`, plus `column IS NULL` for a nullable key (NULL matches no
/// range). No boundaries means one chunk, the whole table.
pub fn key_ranges(column: &str, boundaries: &[i64], nullable: bool) -> Vec<ChunkRange> {
    if boundaries.is_empty() {
        return vec![ChunkRange::All];
    }
    let mut ranges: Vec<ChunkRange> = open_ranges(boundaries)
        .map(|(lo, hi)| ChunkRange::Key {
            column: column.to_string(),
            lo,
            hi,
        })
        .collect();
    if nullable {
        ranges.push(ChunkRange::KeyIsNull {
            column: column.to_string(),
        });
    }
    ranges
}

/// Plan the chunks of a table split on an integer key. `dist` is `None` when the key has no
/// non-null value (then the table is one chunk, whatever its estimate says).
pub fn plan_key_chunks(
    column: &str,
    dist: Option<&KeyDistribution>,
    estimated_rows: u64,
    rows_per_chunk: u64,
    nullable: bool,
) -> Vec<ChunkRange> {
    let chunks = chunk_count(estimated_rows, rows_per_chunk);
    match dist {
        Some(dist) if chunks > 1 => {
            key_ranges(column, &quantile_boundaries(dist, chunks), nullable)
        }
        _ => vec![ChunkRange::All],
    }
}

/// Plan the chunks of a table split into heap page ranges (`ctid`), for tables without an
/// integer key. `pages` is the current size of the heap in pages. Rows are assumed evenly spread
/// over pages, so the pages are split evenly; the last range is open so that pages added after
/// planning are read too.
pub fn plan_page_chunks(pages: u32, estimated_rows: u64, rows_per_chunk: u64) -> Vec<ChunkRange> {
    let chunks = chunk_count(estimated_rows, rows_per_chunk).min(u64::from(pages));
    if chunks <= 1 {
        return vec![ChunkRange::All];
    }
    let boundaries: Vec<u32> = (1..chunks)
        .map(|i| (u64::from(pages) * i / chunks) as u32)
        .collect();
    open_ranges(&boundaries)
        .map(|(lo, hi)| ChunkRange::Pages { lo, hi })
        .collect()
}

/// `(None, b0), (b0, b1), …, (bn, None)`: the ranges between sorted boundaries, the first with
/// no lower bound and the last with no upper bound, so together they cover every value.
fn open_ranges<T: Copy>(boundaries: &[T]) -> impl Iterator<Item = (Option<T>, Option<T>)> + '_ {
    let lows = std::iter::once(None).chain(boundaries.iter().copied().map(Some));
    let highs = boundaries
        .iter()
        .copied()
        .map(Some)
        .chain(std::iter::once(None));
    lows.zip(highs)
}

/// Chunk ranges on a unique key of any types from boundaries in the server's order (each one
/// the text form of every key column): `(-inf, b0)`, `[b0, b1)`, ..., `[bn, +inf)`, so rows
/// inserted outside the sampled keys are still exported exactly once. Boundaries that do not
/// increase (a duplicate) or have the wrong number of values are skipped; none means one chunk.
pub fn tuple_ranges(columns: &[KeyColumn], boundaries: Vec<Vec<String>>) -> Vec<ChunkRange> {
    let mut kept: Vec<Vec<String>> = Vec::with_capacity(boundaries.len());
    for b in boundaries {
        // The server sorted them; equal neighbours would make an empty range.
        if b.len() == columns.len() && kept.last() != Some(&b) {
            kept.push(b);
        }
    }
    if kept.is_empty() || columns.is_empty() {
        return vec![ChunkRange::All];
    }
    (0..=kept.len())
        .map(|i| ChunkRange::Tuple {
            columns: columns.to_vec(),
            lo: i.checked_sub(1).map(|prev| kept[prev].clone()),
            hi: kept.get(i).cloned(),
        })
        .collect()
}

/// How to sample a table's keys: `TABLESAMPLE SYSTEM (percent)`, keeping one row in `stride`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SamplePlan {
    /// Percentage of the table's pages to read, in (0, 100].
    pub percent: f64,
    /// Keep every stride-th row of the sampled pages (1 keeps them all).
    pub stride: u64,
    /// The number of sample points aimed at.
    pub wanted: u64,
}

impl SamplePlan {
    /// True when the sample is every row of the table, so nothing could be more exact.
    pub fn is_exhaustive(&self) -> bool {
        self.percent >= 100.0 && self.stride == 1
    }
}

/// Size a key sample for `chunks` expected chunks of a table of `pages` pages holding
/// `estimated_rows` rows.
///
/// `SYSTEM` sampling picks whole pages, and the rows of one page usually hold neighbouring keys
/// (ids are inserted in order), so a page is one independent observation of the distribution,
/// not `rows_per_page` of them. The fraction is therefore sized so that the wanted number of
/// *pages* is read. When those pages hold more rows than `MAX_SAMPLE_POINTS`, only every
/// stride-th row is kept, which loses little: rows of one page add little information.
pub fn sample_plan(estimated_rows: u64, pages: u64, chunks: u64) -> SamplePlan {
    let wanted = chunks
        .saturating_mul(SAMPLE_POINTS_PER_CHUNK)
        .clamp(MIN_SAMPLE_POINTS, MAX_SAMPLE_POINTS);
    let fraction = (wanted as f64 / pages.max(1) as f64).min(1.0);
    let rows_read = fraction * estimated_rows as f64;
    let stride = (rows_read / MAX_SAMPLE_POINTS as f64).ceil().max(1.0) as u64;
    SamplePlan {
        percent: fraction * 100.0,
        stride,
        wanted,
    }
}

/// Whether a sample has enough points to place `chunks - 1` boundaries; a sample far smaller
/// than planned means the statistics that sized it were wrong (a shrunken or bloated table).
pub fn sample_is_adequate(plan: &SamplePlan, points: usize, chunks: u64) -> bool {
    /// Fewer points per chunk than this and a chunk's size is mostly guesswork (±30%+ error).
    const MIN_POINTS_PER_CHUNK: u64 = 10;
    plan.is_exhaustive() || points as u64 >= chunks.saturating_mul(MIN_POINTS_PER_CHUNK)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::{RngExt, SeedableRng};

    // ---- helpers ---------------------------------------------------------------------------

    /// A seeded random sample (without replacement) of `n` keys, sorted.
    fn sample(keys: &[i64], n: usize, seed: u64) -> Vec<i64> {
        let mut rng = StdRng::seed_from_u64(seed);
        let n = n.min(keys.len());
        let mut out: Vec<i64> = rand::seq::index::sample(&mut rng, keys.len(), n)
            .into_iter()
            .map(|i| keys[i])
            .collect();
        out.sort_unstable();
        out
    }

    /// Asserts the ranges partition the whole key space: first unbounded below, last unbounded
    /// above (ignoring a trailing IS NULL chunk), each next range starting where the previous
    /// ended. Together with half-open bounds this means every key is in exactly one range.
    fn assert_partitions_key_space(ranges: &[ChunkRange]) {
        let keyed: Vec<(Option<i64>, Option<i64>)> = ranges
            .iter()
            .filter_map(|r| match r {
                ChunkRange::Key { lo, hi, .. } => Some((*lo, *hi)),
                _ => None,
            })
            .collect();
        if keyed.is_empty() {
            assert_eq!(ranges, [ChunkRange::All]);
            return;
        }
        assert_eq!(keyed.first().unwrap().0, None, "{ranges:?}");
        assert_eq!(keyed.last().unwrap().1, None, "{ranges:?}");
        for pair in keyed.windows(2) {
            assert_eq!(
                pair[0].1, pair[1].0,
                "ranges must be contiguous: {ranges:?}"
            );
            assert!(pair[1].0.is_some(), "{ranges:?}");
        }
        for (lo, hi) in &keyed {
            if let (Some(lo), Some(hi)) = (lo, hi) {
                assert!(lo < hi, "empty range [{lo}, {hi}) in {ranges:?}");
            }
        }
    }

    /// True rows per key range: counts `sorted_keys` in each `[lo, hi)`, and checks that every
    /// key was counted exactly once.
    fn count_per_chunk(sorted_keys: &[i64], ranges: &[ChunkRange]) -> Vec<u64> {
        let counts: Vec<u64> = ranges
            .iter()
            .map(|r| match r {
                ChunkRange::All => sorted_keys.len() as u64,
                ChunkRange::Key { lo, hi, .. } => {
                    let start = lo.map_or(0, |lo| sorted_keys.partition_point(|&k| k < lo));
                    let end = hi.map_or(sorted_keys.len(), |hi| {
                        sorted_keys.partition_point(|&k| k < hi)
                    });
                    end.saturating_sub(start) as u64
                }
                ChunkRange::KeyIsNull { .. } => 0,
                ChunkRange::Pages { .. } | ChunkRange::Tuple { .. } => panic!("not a key range"),
            })
            .collect();
        assert_eq!(
            counts.iter().sum::<u64>(),
            sorted_keys.len() as u64,
            "chunks must cover every key exactly once"
        );
        counts
    }

    /// Largest relative deviation of any chunk from the ideal equal share.
    fn worst_deviation(counts: &[u64], ideal: f64) -> f64 {
        counts
            .iter()
            .map(|&c| (c as f64 - ideal).abs() / ideal)
            .fold(0.0, f64::max)
    }

    /// Runs the quantile planner on a seeded sample of `keys` (which must be sorted) and asserts
    /// every chunk is within `tolerance` of the ideal share. Returns the worst deviation.
    fn check_balanced(name: &str, keys: &[i64], sample_size: usize, chunks: u64, tol: f64) -> f64 {
        let n = keys.len() as u64;
        let rows_per_chunk = n.div_ceil(chunks);
        // A different (but fixed) sample per case, so the cases do not share sample positions.
        let seed = name
            .bytes()
            .fold(7u64, |h, b| h.wrapping_mul(31) ^ u64::from(b));
        let points = sample(keys, sample_size, seed);
        let dist = KeyDistribution::new(keys[0], keys[keys.len() - 1], points);
        let ranges = plan_key_chunks("id", Some(&dist), n, rows_per_chunk, false);
        assert_partitions_key_space(&ranges);
        assert_eq!(ranges.len() as u64, chunks, "{name}: {ranges:?}");
        let counts = count_per_chunk(keys, &ranges);
        let ideal = n as f64 / chunks as f64;
        let worst = worst_deviation(&counts, ideal);
        println!("{name}: worst deviation {:.1}% ({counts:?})", worst * 100.0);
        assert!(
            worst <= tol,
            "{name}: a chunk is {:.1}% off its ideal {ideal} rows (tolerance {:.0}%): {counts:?}",
            worst * 100.0,
            tol * 100.0
        );
        worst
    }

    /// Tolerance for the balance tests that use a 2000+ point sample and 10 chunks, so at least
    /// 200 sample points per chunk. The share of rows between two boundaries that are m sample
    /// points apart has a relative standard deviation of about 1/sqrt(m) (~7% for m = 200), so
    /// ±35% is about five standard deviations: no seed realistically fails it, while the naive
    /// stride split misses it by a wide margin on skewed keys.
    const TOLERANCE: f64 = 0.35;

    fn dense(n: i64) -> Vec<i64> {
        (1..=n).collect()
    }

    /// Ids spaced by 1000, with a few large gaps (deleted ranges).
    fn sparse(n: usize, seed: u64) -> Vec<i64> {
        let mut rng = StdRng::seed_from_u64(seed);
        let mut keys = Vec::with_capacity(n);
        let mut k = 0i64;
        while keys.len() < n {
            k += 1000;
            if rng.random_ratio(1, 5000) {
                k += rng.random_range(1_000_000..50_000_000);
            }
            keys.push(k);
        }
        keys
    }

    /// 90% of the rows in the first 1% of the id range, the rest spread over the other 99%.
    fn skewed_two_tier(n: usize, seed: u64) -> Vec<i64> {
        let mut rng = StdRng::seed_from_u64(seed);
        let range = 10_000_000_000i64;
        let mut keys: Vec<i64> = (0..n)
            .map(|i| {
                if i < n * 9 / 10 {
                    rng.random_range(0..range / 100)
                } else {
                    rng.random_range(range / 100..range)
                }
            })
            .collect();
        keys.sort_unstable();
        keys.dedup();
        keys
    }

    /// Exponentially distributed ids (Zipf-like: density falls off by orders of magnitude).
    fn skewed_exponential(n: usize, seed: u64) -> Vec<i64> {
        let mut rng = StdRng::seed_from_u64(seed);
        let mut keys: Vec<i64> = (0..n)
            .map(|_| {
                let u: f64 = rng.random_range(0.0..1.0);
                (-(1.0 - u).ln() * 1_000_000.0) as i64
            })
            .collect();
        keys.sort_unstable();
        keys
    }

    // ---- balance on synthetic distributions ----------------------------------------------

    #[test]
    fn dense_keys_are_balanced() {
        check_balanced("dense", &dense(200_000), 2_000, 10, TOLERANCE);
    }

    #[test]
    fn sparse_keys_with_gaps_are_balanced() {
        check_balanced("sparse", &sparse(200_000, 1), 2_000, 10, TOLERANCE);
    }

    #[test]
    fn skewed_keys_are_balanced_where_strides_fail() {
        for (name, keys) in [
            ("skewed two-tier", skewed_two_tier(300_000, 2)),
            ("skewed exponential", skewed_exponential(300_000, 3)),
        ] {
            let chunks = 10;
            let quantile_worst = check_balanced(name, &keys, 2_000, chunks, TOLERANCE);

            // The naive split of min..max into equal strides, on the same keys.
            let strides = stride_boundaries(keys[0], keys[keys.len() - 1], chunks);
            let ranges = key_ranges("id", &strides, false);
            assert_partitions_key_space(&ranges);
            let counts = count_per_chunk(&keys, &ranges);
            let ideal = keys.len() as f64 / chunks as f64;
            let stride_worst = worst_deviation(&counts, ideal);
            println!(
                "{name}: stride worst deviation {:.0}% ({counts:?}) vs quantile {:.1}%",
                stride_worst * 100.0,
                quantile_worst * 100.0
            );
            assert!(
                stride_worst > 3.0 * TOLERANCE,
                "{name}: strides were expected to fail the tolerance: {counts:?}"
            );
        }
    }

    #[test]
    fn huge_gap_in_the_middle_is_balanced() {
        let mut keys: Vec<i64> = (1..=100_000).collect();
        keys.extend(1_000_000_000_000i64..1_000_000_100_000);
        check_balanced("huge gap", &keys, 2_000, 10, TOLERANCE);
    }

    #[test]
    fn negative_keys_are_balanced() {
        let keys: Vec<i64> = skewed_exponential(200_000, 4)
            .into_iter()
            .map(|k| -k - 1)
            .rev()
            .collect();
        assert!(keys.windows(2).all(|w| w[0] <= w[1]));
        check_balanced("negative", &keys, 2_000, 10, TOLERANCE);
        check_balanced(
            "-n..n",
            &(-100_000..100_000).collect::<Vec<_>>(),
            2_000,
            10,
            0.35,
        );
    }

    #[test]
    fn extreme_keys_do_not_overflow() {
        let mut rng = StdRng::seed_from_u64(5);
        let mut keys: Vec<i64> = (0..200_000).map(|_| rng.random()).collect();
        keys.extend([i64::MIN, i64::MIN + 1, i64::MAX - 1, i64::MAX]);
        keys.sort_unstable();
        check_balanced("full i64 range", &keys, 2_000, 10, TOLERANCE);

        // Only the two extremes: one boundary, somewhere in between, never an overflow.
        let dist = KeyDistribution::new(i64::MIN, i64::MAX, vec![i64::MIN, i64::MAX]);
        let b = quantile_boundaries(&dist, 2);
        assert_eq!(b.len(), 1);
        let strides = stride_boundaries(i64::MIN, i64::MAX, 4);
        assert_eq!(strides, [i64::MIN / 2, 0, i64::MAX / 2 + 1]);
        let ranges = plan_key_chunks("id", Some(&dist), 4, 1, false);
        assert_partitions_key_space(&ranges);
        count_per_chunk(&[i64::MIN, i64::MAX], &ranges);
    }

    /// With the production sample size (50 points per chunk) and many chunks, each chunk is
    /// within about ±14% (one standard deviation, 1/sqrt(50)); the largest of 100 chunks is
    /// typically 35-50% off. ±60% is over four standard deviations.
    #[test]
    fn many_chunks_with_the_planned_sample_size() {
        let keys = skewed_two_tier(1_000_000, 6);
        let chunks = 100;
        let plan = sample_plan(keys.len() as u64, keys.len() as u64 / 100, chunks);
        assert_eq!(plan.wanted, 5_000);
        check_balanced(
            "skewed, 100 chunks",
            &keys,
            plan.wanted as usize,
            chunks,
            0.60,
        );
    }

    /// Page sampling: rows of a page have neighbouring ids. Reading `wanted` whole pages (as
    /// sample_plan sizes it) and thinning by stride keeps the tolerance; sizing the sample by
    /// rows would read only a handful of pages.
    #[test]
    fn page_clustered_sample_sized_by_pages() {
        let keys = skewed_two_tier(2_000_000, 8);
        let rows_per_page = 100;
        let pages: Vec<&[i64]> = keys.chunks(rows_per_page).collect();
        let chunks = 10;
        let plan = sample_plan(keys.len() as u64, pages.len() as u64, chunks);
        let take_pages = |count: usize, stride: usize| -> Vec<i64> {
            let mut rng = StdRng::seed_from_u64(9);
            let picked = rand::seq::index::sample(&mut rng, pages.len(), count);
            picked
                .into_iter()
                .flat_map(|p| pages[p].iter().copied().step_by(stride))
                .collect()
        };
        let by_pages = (pages.len() as f64 * plan.percent / 100.0).round() as usize;
        assert_eq!(by_pages as u64, plan.wanted);
        let points = take_pages(by_pages, plan.stride as usize);
        assert!(sample_is_adequate(&plan, points.len(), chunks));
        let worst_pages = balance_of(&keys, points, chunks);
        // The same number of rows, but from rows/page times fewer pages.
        let few_pages = take_pages(by_pages / rows_per_page, 1);
        let worst_rows = balance_of(&keys, few_pages, chunks);
        println!(
            "page-clustered: sized by pages {:.1}%, sized by rows {:.1}%",
            worst_pages * 100.0,
            worst_rows * 100.0
        );
        assert!(worst_pages <= TOLERANCE, "{worst_pages}");
    }

    fn balance_of(keys: &[i64], points: Vec<i64>, chunks: u64) -> f64 {
        let dist = KeyDistribution::new(keys[0], keys[keys.len() - 1], points);
        let ranges = key_ranges("id", &quantile_boundaries(&dist, chunks), false);
        let counts = count_per_chunk(keys, &ranges);
        worst_deviation(&counts, keys.len() as f64 / chunks as f64)
    }

    // ---- degenerate tables -----------------------------------------------------------------

    #[test]
    fn single_repeated_value_is_one_chunk() {
        let keys = vec![7i64; 100_000];
        let dist = KeyDistribution::new(7, 7, sample(&keys, 2_000, 1));
        let ranges = plan_key_chunks("id", Some(&dist), 100_000, 10_000, false);
        assert_eq!(ranges, [ChunkRange::All]);
        // Nullable: the single chunk is still the whole table, NULLs included.
        let ranges = plan_key_chunks("id", Some(&dist), 100_000, 10_000, true);
        assert_eq!(ranges, [ChunkRange::All]);
    }

    #[test]
    fn heavy_value_stays_in_one_chunk() {
        // Half the rows share the key 500_000; the rest are dense around it.
        let mut keys: Vec<i64> = (0..100_000).collect();
        keys.extend(std::iter::repeat_n(500_000, 100_000));
        keys.extend(900_000..1_000_000);
        keys.sort_unstable();
        let dist = KeyDistribution::new(0, 999_999, sample(&keys, 4_000, 3));
        let ranges = plan_key_chunks("id", Some(&dist), keys.len() as u64, 30_000, false);
        assert_partitions_key_space(&ranges);
        let counts = count_per_chunk(&keys, &ranges);
        // Fewer chunks than planned (10): the heavy value's quantiles collapsed.
        assert!(ranges.len() < 10, "{ranges:?}");
        let holding_heavy: Vec<&ChunkRange> = ranges
            .iter()
            .filter(|r| {
                matches!(r, ChunkRange::Key { lo, hi, .. }
                if lo.is_none_or(|lo| lo <= 500_000) && hi.is_none_or(|hi| 500_000 < hi))
            })
            .collect();
        assert_eq!(holding_heavy.len(), 1);
        let heavy = ranges.iter().position(|r| r == holding_heavy[0]).unwrap();
        assert!(counts[heavy] >= 100_000, "{counts:?}");
        // Chunks away from the heavy value are still balanced (ideal 30_000). Its neighbours
        // may be small: the quantile before the heavy value's first row can fall just short
        // of it (here 90_000 of the 100_000 keys below it), leaving a remainder chunk.
        for (i, &c) in counts.iter().enumerate() {
            if i.abs_diff(heavy) > 1 {
                assert!(
                    (c as f64 - 30_000.0).abs() / 30_000.0 <= TOLERANCE,
                    "{counts:?}"
                );
            }
        }
    }

    #[test]
    fn tiny_and_empty_tables_get_one_chunk() {
        // Empty: no key at all.
        assert_eq!(
            plan_key_chunks("id", None, 0, 1_000, true),
            [ChunkRange::All]
        );
        // Fits in one chunk.
        let dist = KeyDistribution::new(1, 5, vec![1, 2, 3, 4, 5]);
        assert_eq!(
            plan_key_chunks("id", Some(&dist), 5, 1_000_000, false),
            [ChunkRange::All]
        );
        assert_eq!(plan_page_chunks(0, 0, 10), [ChunkRange::All]);
        assert_eq!(plan_page_chunks(3, 50, 1_000), [ChunkRange::All]);
    }

    #[test]
    fn small_table_with_every_key_as_points() {
        let keys: Vec<i64> = (1..=25).map(|k| k * 3).collect();
        let dist = KeyDistribution::new(3, 75, keys.clone());
        let ranges = plan_key_chunks("id", Some(&dist), 25, 10, true);
        assert_eq!(ranges.len(), 3 + 1, "3 key ranges + IS NULL: {ranges:?}");
        assert_eq!(
            ranges.last(),
            Some(&ChunkRange::KeyIsNull {
                column: "id".into()
            })
        );
        assert_partitions_key_space(&ranges);
        let counts = count_per_chunk(&keys, &ranges);
        assert!(
            counts[..3].iter().all(|&c| (7..=10).contains(&c)),
            "{counts:?}"
        );
    }

    #[test]
    fn tuple_ranges_are_contiguous_and_open_at_both_ends() {
        let cols = vec![KeyColumn {
            name: "id".into(),
            type_name: protocol::QualifiedName::new("pg_catalog", "uuid"),
        }];
        let b = |v: &str| vec![v.to_string()];
        let ranges = tuple_ranges(&cols, vec![b("a"), b("b"), b("b"), vec![], b("c")]);
        type Bound = Option<Vec<String>>;
        let bounds: Vec<(Bound, Bound)> = ranges
            .iter()
            .map(|r| match r {
                ChunkRange::Tuple { lo, hi, .. } => (lo.clone(), hi.clone()),
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(
            bounds,
            [
                (None, Some(b("a"))),
                (Some(b("a")), Some(b("b"))),
                (Some(b("b")), Some(b("c"))),
                (Some(b("c")), None),
            ]
        );
        assert_eq!(tuple_ranges(&cols, Vec::new()), [ChunkRange::All]);
    }

    #[test]
    fn more_chunks_than_distinct_keys() {
        let dist = KeyDistribution::new(1, 3, vec![1, 1, 2, 2, 3, 3]);
        let b = quantile_boundaries(&dist, 100);
        assert_eq!(b, [2, 3]);
    }

    // ---- boundaries, strides, sizes ----------------------------------------------------------

    #[test]
    fn boundaries_are_strictly_increasing_and_inside_the_keys() {
        let dist = KeyDistribution::new(10, 1_000, vec![500, 20, 20, 20, 990, 30]);
        assert_eq!(dist.points, [20, 20, 20, 30, 500, 990]);
        let b = quantile_boundaries(&dist, 50);
        assert!(b.windows(2).all(|w| w[0] < w[1]), "{b:?}");
        assert!(b.iter().all(|&x| x > 10 && x <= 1_000), "{b:?}");
        // Points outside min/max widen them.
        let dist = KeyDistribution::new(10, 20, vec![5, 25]);
        assert_eq!((dist.min, dist.max), (5, 25));
        // Only min/max known: the split degrades to (roughly) strides.
        let dist = KeyDistribution::new(0, 1_000, Vec::new());
        assert_eq!(quantile_boundaries(&dist, 4), [250, 500, 750]);
        assert_eq!(stride_boundaries(0, 999, 4), [250, 500, 750]);
    }

    #[test]
    fn histogram_bounds_as_points() {
        // pg_stats keeps ~101 bounds for equal-frequency buckets; more chunks than buckets
        // interpolate inside the buckets.
        let keys = skewed_exponential(200_000, 11);
        let bounds: Vec<i64> = (0..=100)
            .map(|i| keys[(i * (keys.len() - 1)) / 100])
            .collect();
        let dist = KeyDistribution::new(keys[0], keys[keys.len() - 1], bounds);
        let ranges = plan_key_chunks("id", Some(&dist), 200_000, 20_000, false);
        assert_eq!(ranges.len(), 10);
        let counts = count_per_chunk(&keys, &ranges);
        assert!(
            worst_deviation(&counts, 20_000.0) <= TOLERANCE,
            "{counts:?}"
        );
    }

    #[test]
    fn page_chunks_split_pages_evenly() {
        let ranges = plan_page_chunks(1_000, 100_000, 25_000);
        assert_eq!(
            ranges,
            [
                ChunkRange::Pages {
                    lo: None,
                    hi: Some(250)
                },
                ChunkRange::Pages {
                    lo: Some(250),
                    hi: Some(500)
                },
                ChunkRange::Pages {
                    lo: Some(500),
                    hi: Some(750)
                },
                ChunkRange::Pages {
                    lo: Some(750),
                    hi: None
                },
            ]
        );
        // Never more chunks than pages, and never an empty page range.
        let ranges = plan_page_chunks(3, 1_000_000, 10);
        assert_eq!(ranges.len(), 3);
        let ranges = plan_page_chunks(u32::MAX, u64::MAX / 2, 1_000);
        assert_eq!(ranges.len() as u64, MAX_CHUNKS_PER_TABLE);
    }

    #[test]
    fn chunk_counts_and_byte_targets() {
        assert_eq!(chunk_count(0, 100), 1);
        assert_eq!(chunk_count(100, 100), 1);
        assert_eq!(chunk_count(101, 100), 2);
        assert_eq!(chunk_count(5, 0), 5);
        assert_eq!(chunk_count(u64::MAX, 1), MAX_CHUNKS_PER_TABLE);
        assert_eq!(rows_per_chunk(ChunkTarget::Rows(0), 10, 10), 1);
        // 1 GiB at 100 bytes a row, 64 MiB chunks.
        let rows = rows_per_chunk(ChunkTarget::Bytes(64 << 20), 10_737_418, 1 << 30);
        assert_eq!(rows, 671_089);
        assert_eq!(chunk_count(10_737_418, rows), 16);
        assert_eq!(rows_per_chunk(ChunkTarget::Bytes(1), 0, 0), u64::MAX);
        assert_eq!(rows_per_chunk(ChunkTarget::Bytes(1), 10, 1_000), 1);
    }

    #[test]
    fn sample_sizes() {
        // Few chunks: 2000 pages.
        let p = sample_plan(12_000_000, 150_000, 12);
        assert_eq!(p.wanted, 2_000);
        assert!((p.percent - 100.0 * 2_000.0 / 150_000.0).abs() < 1e-9);
        assert_eq!(p.stride, 2, "2000 pages of 80 rows, thinned to under 100k");
        assert!(!p.is_exhaustive());
        // Small table: read it all.
        let p = sample_plan(50_000, 400, 5);
        assert_eq!((p.percent, p.stride), (100.0, 1));
        assert!(p.is_exhaustive());
        // Huge table: capped.
        let p = sample_plan(2_000_000_000, 20_000_000, 2_000);
        assert_eq!(p.wanted, MAX_SAMPLE_POINTS);
        assert!(p.percent > 0.0 && p.percent < 1.0);
        assert!(!sample_is_adequate(&p, 1_000, 2_000));
        assert!(sample_is_adequate(&p, 90_000, 2_000));
        // No pages known yet (never vacuumed): a full read, sized by rows afterwards.
        let p = sample_plan(1_000, 0, 2);
        assert_eq!(p.percent, 100.0);
    }
}
