//! Coordinator integration tests against real PostgreSQL and the S3-compatible server, linked
//! into one test binary. Filter with `cargo test -p pgfleet-coordinator --test it -- NAME`.

mod engine_memory;
mod job_notifications;
mod metadata_fuzz;
mod plan_catalog_scale;
mod plan_export;
mod rds_inventory;
mod scratch_db;
mod stored_jobs;
