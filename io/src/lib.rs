//! pgfleet's shared I/O: everything both binaries use to talk to the outside world, and
//! nothing about what a job means. The coordinator and the worker each build on it; the
//! coordinator depends on the worker crate only to embed workers for `coordinator run`.

pub mod allocator;
pub mod amqp;
pub mod build_info;
pub mod cli;
pub mod clients;
pub mod error;
pub mod http;
pub mod ledger;
pub mod logging;
pub mod objects;
pub mod pg;
pub mod sink;
