//! Shared helpers for the end-to-end tests: scratch databases, the S3-compatible server,
//! spawning the real `coordinator` and `worker` binaries, and reading exported CSV back.
//!
//! Services come from the environment (`deploy/local/env.sh` sets them), with local defaults.
//! A test fails, never skips, when a service is missing.

pub mod csvcheck;
pub mod export_check;
pub mod fixtures;
pub mod procs;
pub mod rds_fixture;
pub mod s3_faults;
pub mod scenario;
pub mod strategies;
pub mod tls;

use anyhow::{Context, Result};
use std::path::PathBuf;

pub fn env_or(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.to_string())
}

/// Admin URL of the test PostgreSQL server (database `postgres`).
pub fn pg_admin_url() -> String {
    env_or(
        "PGFLEET_TEST_PG_URL",
        "postgresql://postgres@127.0.0.1:5432/postgres",
    )
}

pub fn amqp_url() -> String {
    env_or("PGFLEET_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/%2f")
}

pub fn s3_endpoint() -> String {
    env_or("PGFLEET_TEST_S3_ENDPOINT", "http://127.0.0.1:9000")
}

/// Make the AWS SDK (ours and the child processes') talk to the local S3-compatible server.
pub fn set_aws_env() {
    for (k, v) in [
        ("AWS_ACCESS_KEY_ID", "pgfleet"),
        ("AWS_SECRET_ACCESS_KEY", "pgfleet-secret"),
        ("AWS_REGION", "us-east-1"),
    ] {
        if std::env::var(k).is_err() {
            // Tests set these once, before spawning anything.
            unsafe { std::env::set_var(k, v) };
        }
    }
}

/// A unique lowercase suffix for database, bucket and namespace names.
pub fn unique(prefix: &str) -> String {
    format!(
        "{prefix}{}",
        &uuid::Uuid::new_v4().simple().to_string()[..12]
    )
}

/// Connect to a database on the test server; fails loudly if PostgreSQL is not there.
pub async fn connect(url: &str) -> Result<tokio_postgres::Client> {
    let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .with_context(|| {
            format!("PostgreSQL at {url} is required (run deploy/local/services.sh)")
        })?;
    tokio::spawn(conn);
    Ok(client)
}

/// A scratch database, dropped when the test calls `drop`.
pub struct ScratchDb {
    pub name: String,
    pub url: String,
}

impl ScratchDb {
    pub async fn create(prefix: &str) -> Result<Self> {
        let name = unique(prefix);
        let admin = connect(&pg_admin_url()).await?;
        admin
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .await?;
        let url = db_url(&name);
        Ok(Self { name, url })
    }

    pub async fn client(&self) -> Result<tokio_postgres::Client> {
        connect(&self.url).await
    }

    pub async fn drop(self) -> Result<()> {
        let admin = connect(&pg_admin_url()).await?;
        admin
            .batch_execute(&format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                self.name
            ))
            .await?;
        Ok(())
    }
}

/// The admin URL with another database name.
pub fn db_url(db: &str) -> String {
    let admin = pg_admin_url();
    match admin.rsplit_once('/') {
        Some((base, tail)) => {
            let query = tail
                .split_once('?')
                .map(|(_, q)| format!("?{q}"))
                .unwrap_or_default();
            format!("{base}/{db}{query}")
        }
        None => admin,
    }
}

pub async fn s3_client() -> aws_sdk_s3::Client {
    set_aws_env();
    let conf = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .endpoint_url(s3_endpoint())
        .region(aws_config::Region::new("us-east-1"))
        .load()
        .await;
    let s3 = aws_sdk_s3::config::Builder::from(&conf)
        .force_path_style(true)
        .request_checksum_calculation(aws_sdk_s3::config::RequestChecksumCalculation::WhenRequired)
        .response_checksum_validation(aws_sdk_s3::config::ResponseChecksumValidation::WhenRequired)
        .build();
    aws_sdk_s3::Client::from_conf(s3)
}

pub async fn create_bucket(s3: &aws_sdk_s3::Client, bucket: &str) -> Result<()> {
    s3.create_bucket()
        .bucket(bucket)
        .send()
        .await
        .with_context(|| {
            format!(
                "creating bucket {bucket} on the S3-compatible server at {} (run deploy/local/services.sh)",
                s3_endpoint()
            )
        })?;
    Ok(())
}

pub async fn list_keys(s3: &aws_sdk_s3::Client, bucket: &str, prefix: &str) -> Result<Vec<String>> {
    let mut keys = Vec::new();
    let mut pages = s3
        .list_objects_v2()
        .bucket(bucket)
        .prefix(prefix)
        .into_paginator()
        .send();
    while let Some(page) = pages.next().await {
        for o in page?.contents() {
            if let Some(k) = o.key() {
                keys.push(k.to_string());
            }
        }
    }
    keys.sort();
    Ok(keys)
}

pub async fn get_object(s3: &aws_sdk_s3::Client, bucket: &str, key: &str) -> Result<Vec<u8>> {
    let out = s3
        .get_object()
        .bucket(bucket)
        .key(key)
        .send()
        .await
        .with_context(|| format!("GET s3://{bucket}/{key}"))?;
    Ok(out.body.collect().await?.into_bytes().to_vec())
}

/// Where cargo put the workspace binaries (next to this test's own executable).
pub fn bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    let dir = exe
        .parent()
        .and_then(|d| d.parent())
        .expect("target/<profile>/deps");
    let path = dir.join(name);
    assert!(
        path.exists(),
        "{} is missing: run `cargo build --workspace --bins` before the tests (deploy/local/test.sh does)",
        path.display()
    );
    path
}

/// Run `coordinator ARGS` with the test's AWS settings and text logs; wait for it.
pub fn run_coordinator(args: &[&str]) -> std::process::Output {
    set_aws_env();
    std::process::Command::new(bin("coordinator"))
        .args(args)
        .env_remove("PGFLEET_LOG_FORMAT")
        .output()
        .expect("run coordinator")
}

/// A finished command's stdout then stderr, as text (for assertion messages and searches).
pub fn output_text(o: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}
