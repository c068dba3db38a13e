//! Worker integration tests against real PostgreSQL and the S3-compatible server, one module
//! per area, linked into one test binary (each binary links arrow, parquet and the AWS SDK).
//! Filter with `cargo test -p pgfleet-worker --test it -- NAME`.

mod common;
mod export_chunk;
mod export_rds_parquet;
mod restore_file;
mod source_read_only;
mod transform_throughput;
