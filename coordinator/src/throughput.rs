//! Per-job throughput and time left, from the job's progress sampled on every coordinator tick.
//! Throughput is over the last minute (it reacts to the fleet growing or shrinking); the time
//! left uses the average since the coordinator started watching the job, which stays steady
//! when chunks finish in bursts.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// Rates under this much history are noise.
const MIN_SPAN: Duration = Duration::from_secs(2);
pub const WINDOW: Duration = Duration::from_secs(60);

#[derive(Debug, Clone, Copy)]
struct Sample {
    at: Instant,
    rows: u64,
    bytes: u64,
    tasks_done: u64,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rates {
    pub rows_per_second: f64,
    pub bytes_per_second: f64,
    pub tasks_per_second: f64,
}

#[derive(Debug, Default)]
pub struct Throughput {
    first: Option<Sample>,
    recent: VecDeque<Sample>,
}

impl Throughput {
    pub fn record(&mut self, at: Instant, rows: u64, bytes: u64, tasks_done: u64) {
        let s = Sample {
            at,
            rows,
            bytes,
            tasks_done,
        };
        self.first.get_or_insert(s);
        self.recent.push_back(s);
        // Keep one sample at or before the window's start, so the window is always covered.
        while self.recent.len() > 2 && at.duration_since(self.recent[1].at) >= WINDOW {
            self.recent.pop_front();
        }
    }

    /// Over the last minute (or as much of it as was seen).
    pub fn recent(&self) -> Option<Rates> {
        rates(self.recent.front()?, self.recent.back()?)
    }

    /// Since the first sample.
    pub fn overall(&self) -> Option<Rates> {
        rates(self.first.as_ref()?, self.recent.back()?)
    }
}

fn rates(from: &Sample, to: &Sample) -> Option<Rates> {
    let span = to.at.checked_duration_since(from.at)?;
    if span < MIN_SPAN {
        return None;
    }
    let per_second = |a: u64, b: u64| b.saturating_sub(a) as f64 / span.as_secs_f64();
    Some(Rates {
        rows_per_second: per_second(from.rows, to.rows),
        bytes_per_second: per_second(from.bytes, to.bytes),
        tasks_per_second: per_second(from.tasks_done, to.tasks_done),
    })
}

/// Seconds until the job is done at `rates`: by rows while the plan's row count is ahead, by
/// tasks once rows pass it (an export's plan is an estimate). `None` while nothing moves.
pub fn eta_seconds(rates: &Rates, rows_left: u64, tasks_left: u64) -> Option<f64> {
    if tasks_left == 0 {
        return Some(0.0);
    }
    if rows_left > 0 && rates.rows_per_second > 0.0 {
        return Some(rows_left as f64 / rates.rows_per_second);
    }
    (rates.tasks_per_second > 0.0).then(|| tasks_left as f64 / rates.tasks_per_second)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recent_rate_covers_the_last_minute_and_overall_the_whole_run() {
        let t0 = Instant::now();
        let mut t = Throughput::default();
        assert_eq!(t.recent(), None);
        t.record(t0, 0, 0, 0);
        t.record(t0 + Duration::from_secs(1), 10, 100, 0);
        assert_eq!(t.recent(), None, "under two seconds of history");
        // 1,000 rows/s for 2 minutes, then 100 rows/s for 90 s.
        for s in 1..=120u64 {
            t.record(t0 + Duration::from_secs(s), s * 1000, s * 10_000, s / 10);
        }
        for s in 121..=210u64 {
            t.record(
                t0 + Duration::from_secs(s),
                120_000 + (s - 120) * 100,
                1_200_000 + (s - 120) * 1000,
                12 + (s - 120) / 30,
            );
        }
        let recent = t.recent().unwrap();
        assert!((recent.rows_per_second - 100.0).abs() < 1.0, "{recent:?}");
        assert!(
            (recent.bytes_per_second - 1000.0).abs() < 10.0,
            "{recent:?}"
        );
        let overall = t.overall().unwrap();
        let expected = (120_000.0 + 9_000.0) / 210.0;
        assert!(
            (overall.rows_per_second - expected).abs() < 1.0,
            "{overall:?}"
        );
        assert!(
            t.recent.len() <= 62,
            "the window keeps about a minute of samples"
        );
    }

    #[test]
    fn eta_by_rows_then_by_tasks_and_unknown_when_idle() {
        let r = Rates {
            rows_per_second: 100.0,
            bytes_per_second: 0.0,
            tasks_per_second: 0.5,
        };
        assert_eq!(eta_seconds(&r, 1_000, 4), Some(10.0));
        // The plan's row estimate is used up but 4 tasks remain: by tasks.
        assert_eq!(eta_seconds(&r, 0, 4), Some(8.0));
        assert_eq!(eta_seconds(&r, 0, 0), Some(0.0));
        let idle = Rates {
            rows_per_second: 0.0,
            bytes_per_second: 0.0,
            tasks_per_second: 0.0,
        };
        assert_eq!(eta_seconds(&idle, 1_000, 4), None);
    }
}
