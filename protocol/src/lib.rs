//! The contract between the pgfleet coordinator and its workers.
//!
//! Everything here is plain data plus pure functions: job specs (TOML), task and result
//! messages (JSON, versioned), queue names and object-store locations. No I/O, so both sides
//! and the tests can depend on it without pulling in a runtime.

pub mod ident;
pub mod location;
pub mod message;
pub mod size;
pub mod spec;
pub mod topology;

pub use ident::{quote_ident, quote_literal, QualifiedName};
pub use location::ObjectLocation;
pub use message::{
    ChunkRange, ColumnExport, ColumnType, ExportChunk, KeyColumn, LedgerKey, ObjectRef, Outcome,
    OutputFormat, OutputTarget, PgConn, RestoreColumn, RestoreFile, ResultEnvelope, RowGroupRange,
    S3Options, Task, TaskEnvelope, Transform, MESSAGE_VERSION,
};
pub use spec::{ExportSpec, JobSpec, RestoreSpec, SnapshotMode};
