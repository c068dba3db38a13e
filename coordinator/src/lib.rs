//! pgfleet coordinator: plans jobs, publishes tasks through a window, tracks results.
//!
//! - `engine`: drives any job (start, resume, cancel, the publish window, results, retries)
//!   through the entry points every job kind has (`export`, `restore`).
//! - `export`, `restore`: one module per job kind: plan, prepare, finalize a table, finish, undo.
//! - `rds`: the RDS snapshot-export format, read (discovery, metadata, footers) and written.
//! - `job`, `store`: a job in memory and where its state is kept.
//! - `broker`: RabbitMQ (publisher, backlog, management API) and the CloudWatch backlog.
//! - `commands`, `output`, `metrics`, `throughput`: the CLI and what it reports.

pub mod broker;
pub mod commands;
pub mod engine;
pub mod export;
pub mod job;
pub mod metrics;
pub mod output;
pub mod rds;
pub mod restore;
pub mod store;
pub mod throughput;
pub mod verify;
