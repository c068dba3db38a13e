//! End-to-end tests, one module per scenario, linked into a single test binary: each binary
//! links arrow, parquet and the AWS SDK, so one binary instead of many saves minutes of
//! linking and gigabytes of disk. Filter with `cargo test -p pgfleet-tests --test e2e -- NAME`.

mod cli;
mod cli_check;
mod cli_help;
mod cli_status;
mod cli_validate;
mod cloudwatch_backlog;
mod concurrent_updates;
mod deploy_files;
mod export_fleet;
mod faults;
mod faults_s3;
mod frozen_worker;
mod identifiers;
mod observability;
mod restore_extensions;
mod restore_interrupted;
mod restore_roundtrip;
mod restore_variants;
mod scale_in;
mod secrets;
mod tls;
mod verify_export;
mod verify_restore;
