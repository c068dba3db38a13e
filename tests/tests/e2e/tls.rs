//! TLS end to end: every libpq sslmode against a private PostgreSQL cluster that accepts TLS
//! connections only, an export over `sslmode=verify-full` with `coordinator run`, and `amqps://`
//! through a TLS-terminating proxy in front of RabbitMQ (library and fleet).

use pgfleet_tests::export_check::{check_table, Objects, TableCheck};
use pgfleet_tests::procs::{Fleet, Proc};
use pgfleet_tests::tls::{Certs, TlsPostgres, TlsProxy};
use pgfleet_tests::*;
use protocol::PgConn;
use std::time::{Duration, Instant};

fn source(url: &str) -> PgConn {
    PgConn {
        url: Some(url.to_string()),
        password_env: None,
        application_name: "pgfleet-tls-test".into(),
        statement_timeout: None,
        read_only: true,
    }
}

/// Connect the way workers and the coordinator do; the error is the one line they report,
/// after the `host:port: ` it names (checked here, removed for the callers).
async fn try_connect(url: &str) -> Result<tokio_postgres::Client, String> {
    let (config, tls) = fleet_io::pg::pg_config(&source(url)).map_err(|e| e.message)?;
    fleet_io::pg::connect(&config, &tls).await.map_err(|e| {
        let e = e.to_string();
        let endpoint = format!("{}: ", fleet_io::pg::connect::endpoints(&config));
        assert!(e.starts_with(&endpoint), "{url}: {e}");
        e[endpoint.len()..].to_string()
    })
}

async fn session_uses_tls(client: &tokio_postgres::Client) -> bool {
    client
        .query_one(
            "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
            &[],
        )
        .await
        .expect("pg_stat_ssl")
        .get(0)
}

fn expect_err(result: Result<tokio_postgres::Client, String>, what: &str) -> String {
    match result {
        Ok(_) => panic!("{what}: connected, but it must fail"),
        Err(e) => {
            eprintln!("{what}: {e}");
            assert!(!e.contains('\n'), "{what}: not one line: {e}");
            e
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_postgres_sslmodes_verify_and_fail_clearly() -> anyhow::Result<()> {
    let pg = TlsPostgres::start()?;
    let ca = pg.certs.ca.display().to_string();
    let other_ca = pg.certs.other_ca.display().to_string();

    // Encrypting modes connect, and the session really is TLS.
    for (host, query) in [
        ("127.0.0.1", "sslmode=require".to_string()),
        ("127.0.0.1", "sslmode=prefer".to_string()),
        ("127.0.0.1", String::new()), // libpq's default, prefer
        ("127.0.0.1", "sslmode=allow".to_string()), // plain refused by pg_hba, then TLS
        ("localhost", format!("sslmode=verify-ca&sslrootcert={ca}")),
        ("localhost", format!("sslmode=verify-full&sslrootcert={ca}")),
        ("127.0.0.1", format!("sslmode=verify-full&sslrootcert={ca}")), // IP SAN
        // verify-ca checks the chain only: a name the certificate lacks is fine.
        (
            "not-in-the-san.invalid",
            format!("hostaddr=127.0.0.1&sslmode=verify-ca&sslrootcert={ca}"),
        ),
    ] {
        let url = pg.url(host, &query);
        let client = try_connect(&url)
            .await
            .unwrap_or_else(|e| panic!("{url}: {e}\nserver log:\n{}", pg.server_log()));
        assert!(session_uses_tls(&client).await, "{url}: session not TLS");
    }

    // verify-ca with a CA that did not sign the server certificate.
    let err = expect_err(
        try_connect(&pg.url(
            "localhost",
            &format!("sslmode=verify-ca&sslrootcert={other_ca}"),
        ))
        .await,
        "verify-ca with another CA",
    );
    assert!(
        err.starts_with("TLS: server certificate of localhost not trusted by ")
            && err.contains(&other_ca)
            && err.contains("sslmode=verify-ca"),
        "{err}"
    );
    // require with a root certificate verifies the chain, as libpq.
    let err = expect_err(
        try_connect(&pg.url(
            "localhost",
            &format!("sslmode=require&sslrootcert={other_ca}"),
        ))
        .await,
        "require with another CA",
    );
    assert!(err.contains("not trusted by"), "{err}");

    // verify-full: the host name must be in the certificate (DNS:localhost, IP:127.0.0.1).
    let err = expect_err(
        try_connect(&pg.url(
            "not-in-the-san.invalid",
            &format!("hostaddr=127.0.0.1&sslmode=verify-full&sslrootcert={ca}"),
        ))
        .await,
        "verify-full with a name outside the SAN",
    );
    assert!(
        err.starts_with("TLS: server certificate is not valid for host not-in-the-san.invalid")
            && err.contains("localhost")
            && err.contains("127.0.0.1"),
        "{err}"
    );

    // sslmode=disable: the server refuses plain sessions (hostnossl … reject).
    let err = expect_err(
        try_connect(&pg.url("127.0.0.1", "sslmode=disable")).await,
        "sslmode=disable",
    );
    assert!(
        err.starts_with("28000: pg_hba.conf rejects connection")
            && err.contains("no encryption")
            && err.contains("sslmode=disable"),
        "{err}"
    );

    // The worker's pooled connections go through the same connector.
    let ctx = fleet_io::clients::Clients::new("tls-test");
    let pooled = ctx
        .pg(&source(&pg.url(
            "localhost",
            &format!("sslmode=verify-full&sslrootcert={ca}"),
        )))
        .await
        .map_err(|e| anyhow::anyhow!(e.message))?;
    assert!(session_uses_tls(&pooled).await);
    let err = ctx
        .pg(&source(&pg.url(
            "localhost",
            &format!("sslmode=verify-full&sslrootcert={other_ca}"),
        )))
        .await
        .expect_err("pool with the wrong CA");
    assert!(err.message.contains("not trusted by"), "{}", err.message);
    // An untrusted certificate stays untrusted: the task fails at once, no retries.
    assert!(
        !err.retryable,
        "a certificate error was retryable: {}",
        err.message
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_coordinator_run_exports_over_verify_full() -> anyhow::Result<()> {
    const ROWS: i64 = 40_000;
    let pg = TlsPostgres::start()?;
    let url = pg.url(
        "localhost",
        &format!("sslmode=verify-full&sslrootcert={}", pg.certs.ca.display()),
    );
    // A writable session (sources are read-only) to create the table.
    let (config, tls) = fleet_io::pg::pg_config(&PgConn {
        read_only: false,
        ..source(&url)
    })
    .map_err(|e| anyhow::anyhow!(e.message))?;
    let client = fleet_io::pg::connect(&config, &tls).await?;
    client
        .batch_execute(&format!(
            "CREATE TABLE tls_rows (id bigint PRIMARY KEY, name text);
             INSERT INTO tls_rows SELECT g, 'row ' || g FROM generate_series(1, {ROWS}) g;
             ANALYZE tls_rows;"
        ))
        .await?;
    let dir = std::env::temp_dir().join(unique("pgfleet-tls-run-"));
    std::fs::create_dir_all(&dir)?;
    let out = dir.join("out");
    let spec = dir.join("export.toml");
    std::fs::write(
        &spec,
        format!(
            r#"
kind = "export"
name = "tls-run"

[source]
url = "{url}"
max_in_flight = 2

[tables]
include = ["public.tls_rows"]

[chunking]
rows_per_chunk = 10000

[output]
url = "file://{}/"
format = "csv"
"#,
            out.display()
        ),
    )?;
    let started = Instant::now();
    let output = std::process::Command::new(bin("coordinator"))
        .args(["run", spec.to_str().unwrap(), "--workers", "2"])
        .env_remove("PGSSLMODE")
        .env_remove("PGSSLROOTCERT")
        .output()?;
    assert!(
        output.status.success(),
        "coordinator run over TLS failed: {}\n{}\nserver log:\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr),
        pg.server_log()
    );
    eprintln!("coordinator run over TLS took {:?}", started.elapsed());
    let rows = check_table(
        &Objects::File { root: out },
        "",
        &client,
        &TableCheck {
            folder: "public.tls_rows",
            select: "SELECT id, name FROM tls_rows".into(),
            columns: vec!["id", "name"],
        },
        "",
        false,
    )
    .await?;
    assert_eq!(rows as i64, ROWS);
    let parts = std::fs::read_dir(dir.join("out/public.tls_rows"))?
        .filter(|e| {
            e.as_ref()
                .is_ok_and(|e| e.file_name().to_string_lossy().starts_with("part-"))
        })
        .count();
    assert!(parts >= 2, "expected several chunks, got {parts} parts");

    // The same job with the TLS settings from PGSSLMODE / PGSSLROOTCERT (the URL says
    // nothing) and a CA that does not trust the server: it fails, in one clear line.
    let plain_url = pg.url("localhost", "");
    std::fs::write(
        &spec,
        std::fs::read_to_string(&spec)?.replace(&url, &plain_url),
    )?;
    let output = std::process::Command::new(bin("coordinator"))
        .args(["run", spec.to_str().unwrap(), "--workers", "1"])
        .env("PGSSLMODE", "verify-full")
        .env("PGSSLROOTCERT", &pg.certs.other_ca)
        .output()?;
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "wrong CA must fail: {stderr}");
    assert!(
        stderr.contains(&format!(
            "TLS: server certificate of localhost not trusted by {} (sslmode=verify-full)",
            pg.certs.other_ca.display()
        )),
        "{stderr}"
    );
    std::fs::remove_dir_all(&dir)?;
    Ok(())
}

fn amqps_url(proxy: &TlsProxy, host: &str) -> String {
    format!("amqps://guest:guest@{host}:{}/%2f", proxy.port())
}

async fn rabbit_proxy(certs: &Certs) -> anyhow::Result<TlsProxy> {
    let upstream = std::env::var("PGFLEET_AMQP_URL")
        .ok()
        .and_then(|u| {
            let host = u.split('@').nth(1)?.split('/').next()?.to_string();
            std::net::ToSocketAddrs::to_socket_addrs(&host).ok()?.next()
        })
        .unwrap_or_else(|| "127.0.0.1:5672".parse().unwrap());
    TlsProxy::start(&certs.server, upstream).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_amqps_with_a_private_ca() -> anyhow::Result<()> {
    use lapin::options::{BasicGetOptions, QueueDeleteOptions};
    let dir = std::env::temp_dir().join(unique("pgfleet-tls-amqp-"));
    let certs = Certs::generate(&dir)?;
    let proxy = rabbit_proxy(&certs).await?;
    let url = amqps_url(&proxy, "localhost");
    let ca_pem = fleet_io::amqp::read_ca_file(&certs.ca)?;

    // Without the CA the broker's certificate is not trusted.
    let err = fleet_io::amqp::connect_with_ca(&url, "pgfleet-tls-test", None)
        .await
        .expect_err("amqps without the private CA must fail");
    eprintln!("amqps without the CA: {err}");
    // With the wrong CA neither.
    let other_pem = fleet_io::amqp::read_ca_file(&certs.other_ca)?;
    fleet_io::amqp::connect_with_ca(&url, "pgfleet-tls-test", Some(&other_pem))
        .await
        .expect_err("amqps with another CA must fail");

    // With it: declare, publish with confirm, get the message back.
    let conn = fleet_io::amqp::connect_with_ca(&url, "pgfleet-tls-test", Some(&ca_pem)).await?;
    let channel = fleet_io::amqp::confirm_channel(&conn).await?;
    let queue = unique("pgfleet-tls-q-");
    channel
        .queue_declare(
            queue.as_str().into(),
            lapin::options::QueueDeclareOptions {
                auto_delete: true,
                ..Default::default()
            },
            lapin::types::FieldTable::default(),
        )
        .await?;
    fleet_io::amqp::publish_confirmed(&channel, &queue, b"over amqps").await?;
    let deadline = Instant::now() + Duration::from_secs(10);
    let body = loop {
        if let Some(m) = channel
            .basic_get(queue.as_str().into(), BasicGetOptions { no_ack: true })
            .await?
        {
            break m.delivery.data.clone();
        }
        assert!(Instant::now() < deadline, "message never arrived");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(body, b"over amqps");
    channel
        .queue_delete(queue.as_str().into(), QueueDeleteOptions::default())
        .await?;

    // The process-wide CA (what --amqp-ca-file sets) is used by the plain connect.
    fleet_io::amqp::set_ca_file(&certs.ca)?;
    let conn2 = fleet_io::amqp::connect(&url, "pgfleet-tls-test").await?;
    assert!(conn2.status().connected());
    let _ = conn2.close(200, "bye".into()).await;
    let _ = conn.close(200, "bye".into()).await;
    // A file without a certificate is refused in one line.
    let err = fleet_io::amqp::read_ca_file(&certs.server.key).unwrap_err();
    assert!(
        err.to_string().contains("holds no PEM certificate"),
        "{err}"
    );
    drop(proxy);
    std::fs::remove_dir_all(&dir)?;
    Ok(())
}

/// The binaries' `--amqp-ca-file` / `PGFLEET_AMQP_CA_FILE`: a coordinator and a worker talk
/// through the TLS proxy only, and a job runs to completion.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_fleet_over_amqps() -> anyhow::Result<()> {
    let dir = std::env::temp_dir().join(unique("pgfleet-tls-fleet-"));
    let certs = Certs::generate(&dir)?;
    let proxy = rabbit_proxy(&certs).await?;
    let url = amqps_url(&proxy, "localhost");

    let src = ScratchDb::create("pgfleet_tls_src_").await?;
    let state = ScratchDb::create("pgfleet_tls_state_").await?;
    let client = src.client().await?;
    client
        .batch_execute(
            "CREATE TABLE t (id int PRIMARY KEY, v text);
             INSERT INTO t SELECT g, 'v' || g FROM generate_series(1, 5000) g;",
        )
        .await?;

    set_aws_env();
    let namespace = unique("pgfleet-tls-");
    let mut serve = Fleet::serve_cmd(&state.url, &namespace);
    serve
        .env("PGFLEET_AMQP_URL", &url)
        .env("PGFLEET_AMQP_CA_FILE", &certs.ca);
    let coordinator = Proc::spawn("coordinator-amqps", serve);
    pgfleet_tests::procs::wait_for_state_schema(&state.url, &coordinator);
    let mut work = Fleet::worker_cmd(&namespace, 2, 0);
    work.env("PGFLEET_AMQP_URL", &url)
        .arg("--amqp-ca-file")
        .arg(&certs.ca);
    let worker = Proc::spawn("worker-amqps", work);

    let out = dir.join("out");
    let spec = dir.join("export.toml");
    std::fs::write(
        &spec,
        format!(
            r#"
kind = "export"
name = "amqps"

[source]
url = "{}"

[tables]
include = ["public.t"]

[chunking]
rows_per_chunk = 1000

[output]
url = "file://{}/"
"#,
            src.url,
            out.display()
        ),
    )?;
    let submit = std::process::Command::new(bin("coordinator"))
        .args(["submit", spec.to_str().unwrap(), "--wait"])
        .env("PGFLEET_STATE_URL", &state.url)
        .output()?;
    assert!(
        submit.status.success(),
        "submit --wait over amqps failed: {}\n{}\ncoordinator:\n{}\nworker:\n{}",
        String::from_utf8_lossy(&submit.stdout),
        String::from_utf8_lossy(&submit.stderr),
        coordinator.logs(),
        worker.logs()
    );
    let rows = check_table(
        &Objects::File { root: out },
        "",
        &client,
        &TableCheck {
            folder: "public.t",
            select: "SELECT id, v FROM t".into(),
            columns: vec!["id", "v"],
        },
        "",
        false,
    )
    .await?;
    assert_eq!(rows, 5000);

    drop(worker);
    drop(coordinator);
    drop(proxy);
    src.drop().await?;
    state.drop().await?;
    std::fs::remove_dir_all(&dir)?;
    Ok(())
}
