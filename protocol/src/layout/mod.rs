//! Object key layouts: where every object of an export lies, relative to its output location.
//! [`csv`] is pgfleet's own layout (CSV, CSV.gz and typed Parquet part files with a manifest);
//! [`rds`] is the AWS RDS snapshot-export layout (`rds-parquet`, and what a restore reads).
//!
//! Pure functions and the one owner of each key rule: the coordinator, the workers and the
//! tests all form (and parse) keys here. Keys are deterministic, so a re-run overwrites instead
//! of duplicating.

pub mod csv;
pub mod rds;

/// The manifest of one exported table (every layout): every part with its rows, bytes and
/// proof, the columns, the job.
pub const MANIFEST: &str = "_manifest.json";

/// The empty marker written last into a finished folder (Spark's and AWS's name).
pub const SUCCESS: &str = "_SUCCESS";
