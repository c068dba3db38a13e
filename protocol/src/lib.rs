//! The contract between the pgfleet coordinator and its workers.
//!
//! Everything here is plain data plus pure functions: job specs (TOML), task and result
//! messages (JSON, versioned), queue names, object-store locations and the key layouts inside
//! them, the RDS export's type mapping, table selection, and what proves an export part. No I/O, so both sides
//! and the tests can depend on it without pulling in a runtime.

pub mod ident;
pub mod layout;
pub mod location;
pub mod message;
pub mod proof;
pub mod rds_types;
pub mod select;
pub mod size;
pub mod spec;
pub mod topology;

pub use ident::{quote_ident, quote_literal, QualifiedName};
pub use location::ObjectLocation;
pub use message::{parse_task_id, task_id};
pub use message::{
    ChunkRange, ColumnExport, ColumnType, ExportChunk, KeyColumn, LedgerKey, ObjectRef, Outcome,
    OutputFormat, OutputTarget, PgConn, RestoreColumn, RestoreFile, ResultEnvelope, RowGroupRange,
    S3Options, Task, TaskEnvelope, Transform, MESSAGE_VERSION,
};
pub use rds_types::RdsType;
pub use select::TableFilter;
pub use spec::{ExportSpec, JobSpec, RestoreSpec, SnapshotMode};
