//! pgfleet worker: stateless executor of tasks. Each task streams one chunk between PostgreSQL
//! and an object store. `coordinator run` embeds this library with an in-process queue; the
//! `worker` binary feeds it from RabbitMQ. Connections, object I/O, AMQP, HTTP and logging are
//! `fleet_io`'s.

pub mod consumer;
pub mod encode;
pub mod execute;
pub mod export;
pub mod local;
pub mod metrics;
pub mod restore;
pub mod transform;
