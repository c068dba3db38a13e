//! Real services for the worker's integration tests: a scratch PostgreSQL database per test
//! and a scratch bucket on an S3-compatible server. Missing services fail the test.

#![allow(dead_code)]

use aws_sdk_s3::Client;
use fleet_io::clients::Clients;
use protocol::{
    ChunkRange, ColumnExport, ExportChunk, ObjectLocation, OutputFormat, OutputTarget, PgConn,
    QualifiedName, S3Options, Transform,
};
use std::sync::Once;
use tokio_postgres::NoTls;

pub const MIN_PART: u64 = 5 * 1024 * 1024;

/// Defaults for the test environment, set only where the variable is unset.
pub fn init_env() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        for (k, v) in [
            (
                "PGFLEET_TEST_PG_URL",
                "postgresql://postgres@127.0.0.1:5432/postgres",
            ),
            ("PGFLEET_TEST_S3_ENDPOINT", "http://127.0.0.1:9000"),
            ("AWS_ACCESS_KEY_ID", "pgfleet"),
            ("AWS_SECRET_ACCESS_KEY", "pgfleet-secret"),
            ("AWS_REGION", "us-east-1"),
            ("AWS_EC2_METADATA_DISABLED", "true"),
        ] {
            if std::env::var_os(k).is_none() {
                std::env::set_var(k, v);
            }
        }
    });
}

fn env(name: &str) -> String {
    init_env();
    std::env::var(name).unwrap_or_default()
}

pub fn random_suffix() -> String {
    format!("{:012x}", rand::random::<u64>() & 0xffff_ffff_ffff)
}

/// A scratch database, dropped (with FORCE, closing pooled connections) when this is dropped,
/// even if the test panicked.
pub struct ScratchDb {
    pub name: String,
    pub url: String,
    pub client: tokio_postgres::Client,
}

async fn connect(url: &str) -> tokio_postgres::Client {
    let (client, conn) = tokio_postgres::connect(url, NoTls)
        .await
        .unwrap_or_else(|e| panic!("PostgreSQL at {url} is required for this test: {e}"));
    tokio::spawn(async move {
        let _ = conn.await;
    });
    client
}

fn url_with_db(admin_url: &str, db: &str) -> String {
    let mut u = url::Url::parse(admin_url).expect("PGFLEET_TEST_PG_URL is a URL");
    u.set_path(&format!("/{db}"));
    u.to_string()
}

impl ScratchDb {
    pub async fn create() -> Self {
        let admin_url = env("PGFLEET_TEST_PG_URL");
        let admin = connect(&admin_url).await;
        let name = format!("pgfleet_wtest_{}", random_suffix());
        admin
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .await
            .expect("create scratch database");
        let url = url_with_db(&admin_url, &name);
        let client = connect(&url).await;
        Self { name, url, client }
    }

    pub fn source(&self) -> PgConn {
        PgConn {
            url: Some(self.url.clone()),
            password_env: None,
            application_name: "pgfleet-worker-test".into(),
            statement_timeout: None,
            read_only: true,
        }
    }
}

impl Drop for ScratchDb {
    fn drop(&mut self) {
        let admin_url = env("PGFLEET_TEST_PG_URL");
        let name = self.name.clone();
        // Our own runtime on a thread: Drop cannot await, and may run during a panic.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async {
                if let Ok((client, conn)) = tokio_postgres::connect(&admin_url, NoTls).await {
                    tokio::spawn(async move {
                        let _ = conn.await;
                    });
                    let _ = client
                        .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                        .await;
                }
            })
        })
        .join();
    }
}

pub fn s3_options() -> S3Options {
    S3Options {
        endpoint: Some(env("PGFLEET_TEST_S3_ENDPOINT")),
        region: None,
        force_path_style: true,
        ..S3Options::default()
    }
}

/// A fresh bucket on the S3-compatible server.
pub async fn create_bucket(client: &Client) -> String {
    let bucket = format!("pgfleet-wtest-{}", random_suffix());
    client
        .create_bucket()
        .bucket(&bucket)
        .send()
        .await
        .unwrap_or_else(|e| {
            panic!(
                "S3-compatible server at {} is required for this test: {}",
                env("PGFLEET_TEST_S3_ENDPOINT"),
                aws_sdk_s3::error::DisplayErrorContext(&e)
            )
        });
    bucket
}

/// Delete every object and the bucket itself.
pub async fn delete_bucket(client: &Client, bucket: &str) {
    let listed = client
        .list_objects_v2()
        .bucket(bucket)
        .send()
        .await
        .expect("list objects");
    for obj in listed.contents() {
        if let Some(key) = obj.key() {
            client
                .delete_object()
                .bucket(bucket)
                .key(key)
                .send()
                .await
                .expect("delete object");
        }
    }
    let _ = client.delete_bucket().bucket(bucket).send().await;
}

pub async fn get_object(client: &Client, bucket: &str, key: &str) -> Vec<u8> {
    let out = client
        .get_object()
        .bucket(bucket)
        .key(key)
        .send()
        .await
        .unwrap_or_else(|e| panic!("get {key}: {}", aws_sdk_s3::error::DisplayErrorContext(&e)));
    out.body
        .collect()
        .await
        .expect("read object body")
        .into_bytes()
        .to_vec()
}

pub async fn object_exists(client: &Client, bucket: &str, key: &str) -> bool {
    match client.head_object().bucket(bucket).key(key).send().await {
        Ok(_) => true,
        Err(e) if e.as_service_error().is_some_and(|s| s.is_not_found()) => false,
        Err(e) => panic!("head {key}: {}", aws_sdk_s3::error::DisplayErrorContext(&e)),
    }
}

/// Multipart uploads still pending in `bucket`. Uses ListMultipartUploads; s3s-fs does not
/// implement it, so then fall back to its on-disk upload records for this bucket.
pub async fn pending_uploads(client: &Client, bucket: &str) -> usize {
    match client.list_multipart_uploads().bucket(bucket).send().await {
        Ok(out) => out.uploads().len(),
        Err(e) if e.raw_response().map(|r| r.status().as_u16()) == Some(501) => {
            let root = s3_fs_root();
            let prefix = format!(
                ".bucket-{}.object-",
                base64::Engine::encode(
                    &base64::engine::general_purpose::URL_SAFE_NO_PAD,
                    bucket.as_bytes()
                )
            );
            let entries = std::fs::read_dir(&root).unwrap_or_else(|e| {
                panic!("ListMultipartUploads is not implemented and {root} (PGFLEET_TEST_S3_FS_ROOT) is unreadable: {e}")
            });
            entries
                .flatten()
                .filter(|e| {
                    let name = e.file_name().to_string_lossy().to_string();
                    name.starts_with(&prefix) && name.contains(".upload-")
                })
                .count()
        }
        Err(e) => panic!(
            "ListMultipartUploads: {}",
            aws_sdk_s3::error::DisplayErrorContext(&e)
        ),
    }
}

/// The data folder of the local s3s-fs: `PGFLEET_TEST_S3_FS_ROOT`, else the last argument of
/// the running `s3s-fs` process (services.sh starts it as `s3s-fs ... DATA_DIR`; a checkout may
/// use one that another checkout started).
fn s3_fs_root() -> String {
    if let Ok(root) = std::env::var("PGFLEET_TEST_S3_FS_ROOT") {
        return root;
    }
    let procs = std::fs::read_dir("/proc").into_iter().flatten().flatten();
    for p in procs {
        let Ok(cmdline) = std::fs::read(p.path().join("cmdline")) else {
            continue;
        };
        let args: Vec<String> = cmdline
            .split(|b| *b == 0)
            .filter(|a| !a.is_empty())
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect();
        if args.first().is_some_and(|a| a.ends_with("s3s-fs")) {
            if let Some(root) = args.last() {
                return root.clone();
            }
        }
    }
    panic!("no running s3s-fs found; set PGFLEET_TEST_S3_FS_ROOT to its data folder")
}

pub fn worker_ctx() -> Clients {
    init_env();
    Clients::new("test-worker")
}

/// A task with sensible defaults; tests adjust what they need.
pub fn task(
    source: PgConn,
    table: QualifiedName,
    columns: &[(&str, Option<&str>)],
    range: ChunkRange,
    location: ObjectLocation,
    key: &str,
    format: OutputFormat,
) -> ExportChunk {
    ExportChunk {
        source,
        snapshot: None,
        table,
        only: true,
        columns: columns
            .iter()
            .map(|(name, prefix)| ColumnExport {
                name: name.to_string(),
                transform: prefix.map(|p| Transform::Prefix {
                    value: p.to_string(),
                }),
                pg_type: None,
            })
            .collect(),
        range,
        output: OutputTarget {
            location,
            key: key.to_string(),
            format,
            gzip_level: 6,
            part_size: MIN_PART,
            parts_in_flight: 2,
            s3: s3_options(),
        },
    }
}
