//! pgfleet coordinator: plans jobs, publishes tasks through a window, tracks results.

pub mod broker;
pub mod catalog;
pub mod chunking;
pub mod cloudwatch;
pub mod commands;
pub mod engine;
pub mod job;
pub mod metrics;
pub mod output;
pub mod plan;
pub mod queue_stats;
pub mod rabbitmq_api;
pub mod rds;
pub mod rds_export;
pub mod restore;
pub mod store;
pub mod target;
pub mod target_changes;
pub mod throughput;
pub mod waves;
