//! pgfleet worker: stateless executor of tasks. Each task streams one chunk between PostgreSQL
//! and an object store. `coordinator run` embeds this library with an in-process queue; the
//! `worker` binary feeds it from RabbitMQ.

pub mod allocator;
pub mod context;
pub mod encode;
pub mod error;
pub mod export;
pub mod pg;
/// [`pg::session`](pg_session): lives in `pg/session.rs` with the rest of the PostgreSQL I/O,
/// declared here because `pg.rs` is moving to the shared I/O crate (it becomes `pg::session`
/// there).
#[path = "pg/session.rs"]
pub mod pg_session;
pub mod sink;
pub mod transform;

pub mod amqp;
pub mod consumer;
pub mod execute;
pub mod http;
pub mod local;
pub mod logging;
pub mod metrics;
pub mod objects;
pub mod restore;
