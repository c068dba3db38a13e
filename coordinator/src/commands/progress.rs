//! Progress display for `run`, `submit --wait`, `wait` and `status --watch JOB`: a bar on a
//! terminal, otherwise a line at the first update and then every few seconds (CI logs, pipes).

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::IsTerminal;
use std::time::{Duration, Instant};

pub struct Progress {
    bar: Option<ProgressBar>,
    /// What is counted: `chunks`, `parts`, `tables`.
    unit: &'static str,
    /// When the last plain line was printed; `None` before the first.
    last_line: Option<Instant>,
    started: Instant,
}

impl Progress {
    pub fn new(label: &str) -> Self {
        Self::counting(label, "chunks")
    }

    /// A progress display counting `unit`.
    pub fn counting(label: &str, unit: &'static str) -> Self {
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = ProgressBar::with_draw_target(Some(0), ProgressDrawTarget::stderr());
            bar.set_style(
                ProgressStyle::with_template(
                    &format!("{{prefix}} [{{bar:30}}] {{pos}}/{{len}} {unit}  {{msg}}  {{elapsed_precise}} (eta {{eta}})"),
                )
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
            );
            bar.set_prefix(label.to_string());
            bar
        });
        Self {
            bar,
            unit,
            last_line: None,
            started: Instant::now(),
        }
    }

    pub fn update(&mut self, done: u64, total: u64, rows: u64, bytes: u64) {
        let secs = self.started.elapsed().as_secs_f64().max(0.001);
        let msg = format!(
            "{rows} rows, {:.1} MiB, {:.0} rows/s",
            bytes as f64 / 1048576.0,
            rows as f64 / secs
        );
        match &self.bar {
            Some(bar) => {
                bar.set_length(total);
                bar.set_position(done);
                bar.set_message(msg);
            }
            None if self
                .last_line
                .is_none_or(|t| t.elapsed() >= Duration::from_secs(5)) =>
            {
                crate::errln!("progress: {done}/{total} {}, {msg}", self.unit);
                self.last_line = Some(Instant::now());
            }
            None => {}
        }
    }

    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish();
        }
    }
}
