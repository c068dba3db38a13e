//! TLS fixtures: a throw-away CA and server certificates (made with the `openssl` CLI), a
//! private PostgreSQL cluster that accepts TLS connections only, and a TLS-terminating TCP proxy
//! in front of the local RabbitMQ (for `amqps://`). Everything is removed when the guards drop.

use anyhow::{bail, Context, Result};
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

const PG_BIN: &str = "/usr/lib/postgresql/15/bin";

fn run(cmd: &mut Command) -> Result<()> {
    let out = cmd
        .output()
        .with_context(|| format!("running {:?}", cmd.get_program()))?;
    if !out.status.success() {
        bail!(
            "{:?} failed ({}): {}{}",
            cmd,
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(())
}

/// A free TCP port on 127.0.0.1 (free when asked; the caller binds it right away).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port on 127.0.0.1")
}

/// A certificate and its key, PEM files.
#[derive(Debug, Clone)]
pub struct CertPair {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// Certificates for one test, in a directory of their own.
#[derive(Debug)]
pub struct Certs {
    pub dir: PathBuf,
    /// The CA that signed `server`.
    pub ca: PathBuf,
    /// Another CA, which signed nothing we serve.
    pub other_ca: PathBuf,
    /// Signed by `ca`; SAN DNS:localhost, IP:127.0.0.1.
    pub server: CertPair,
}

impl Certs {
    /// Generate the CAs and the server certificate in `dir` (created if missing).
    pub fn generate(dir: &Path) -> Result<Self> {
        std::fs::create_dir_all(dir)?;
        let ca = make_ca(dir, "ca", "pgfleet test CA")?;
        let other = make_ca(dir, "other-ca", "pgfleet other CA")?;
        let server = make_leaf(
            dir,
            "server",
            &ca,
            "localhost",
            "DNS:localhost,IP:127.0.0.1",
        )?;
        Ok(Self {
            dir: dir.to_path_buf(),
            ca: ca.cert,
            other_ca: other.cert,
            server,
        })
    }
}

fn ec_key_args() -> [&'static str; 4] {
    ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"]
}

fn make_ca(dir: &Path, name: &str, cn: &str) -> Result<CertPair> {
    let pair = CertPair {
        cert: dir.join(format!("{name}.pem")),
        key: dir.join(format!("{name}.key")),
    };
    run(Command::new("openssl")
        .args(["req", "-x509", "-nodes", "-days", "2", "-sha256"])
        .args(ec_key_args())
        .arg("-keyout")
        .arg(&pair.key)
        .arg("-out")
        .arg(&pair.cert)
        .args(["-subj", &format!("/CN={cn}")])
        .args(["-addext", "basicConstraints=critical,CA:TRUE"])
        .args(["-addext", "keyUsage=critical,keyCertSign,cRLSign"]))?;
    Ok(pair)
}

/// A server certificate for `cn` with subjectAltName `san`, signed by `ca`.
pub fn make_leaf(dir: &Path, name: &str, ca: &CertPair, cn: &str, san: &str) -> Result<CertPair> {
    let pair = CertPair {
        cert: dir.join(format!("{name}.pem")),
        key: dir.join(format!("{name}.key")),
    };
    let csr = dir.join(format!("{name}.csr"));
    let ext = dir.join(format!("{name}.ext"));
    std::fs::write(
        &ext,
        format!(
            "subjectAltName={san}\nbasicConstraints=critical,CA:FALSE\n\
             keyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n"
        ),
    )?;
    run(Command::new("openssl")
        .args(["req", "-new", "-nodes"])
        .args(ec_key_args())
        .arg("-keyout")
        .arg(&pair.key)
        .arg("-out")
        .arg(&csr)
        .args(["-subj", &format!("/CN={cn}")]))?;
    run(Command::new("openssl")
        .args(["x509", "-req", "-days", "2", "-sha256", "-CAcreateserial"])
        .arg("-in")
        .arg(&csr)
        .arg("-CA")
        .arg(&ca.cert)
        .arg("-CAkey")
        .arg(&ca.key)
        .arg("-out")
        .arg(&pair.cert)
        .arg("-extfile")
        .arg(&ext))?;
    Ok(pair)
}

/// A private PostgreSQL 15 cluster on 127.0.0.1 that accepts TLS connections only
/// (`hostssl … trust`, `hostnossl … reject`), with its own Unix socket directory. Stopped and
/// deleted on drop.
pub struct TlsPostgres {
    pub port: u16,
    pub certs: Certs,
    root: PathBuf,
    data: PathBuf,
}

impl TlsPostgres {
    pub fn start() -> Result<Self> {
        let root = std::env::temp_dir().join(crate::unique("pgfleet-tls-pg-"));
        std::fs::create_dir_all(&root)?;
        let mut guard = Self {
            port: 0,
            certs: Certs::generate(&root.join("certs"))?,
            data: root.join("data"),
            root,
        };
        let sock = guard.root.join("sock");
        std::fs::create_dir_all(&sock)?;
        run(Command::new("chown")
            .args(["-R", "postgres:postgres"])
            .arg(&guard.root))?;
        run(Command::new("chmod")
            .arg("600")
            .arg(&guard.certs.server.key))?;
        run(Command::new("runuser")
            .args(["-u", "postgres", "--"])
            .arg(format!("{PG_BIN}/initdb"))
            .arg("-D")
            .arg(&guard.data)
            .args(["-A", "trust", "-U", "postgres", "--no-sync", "-E", "UTF8"])
            .current_dir(&guard.root))
        .context("initdb (is PostgreSQL 15 installed? run deploy/local/services.sh)")?;
        std::fs::write(
            guard.data.join("pg_hba.conf"),
            "local all all trust\n\
             hostssl all all 127.0.0.1/32 trust\n\
             hostnossl all all 0.0.0.0/0 reject\n",
        )?;
        let mut last = None;
        // The port is free when picked; another process may take it before the server binds
        // it, so try a few.
        for _ in 0..5 {
            let port = free_port();
            let conf = format!(
                "listen_addresses = '127.0.0.1'\nport = {port}\nunix_socket_directories = '{}'\n\
                 ssl = on\nssl_cert_file = '{}'\nssl_key_file = '{}'\n\
                 fsync = off\nsynchronous_commit = off\nfull_page_writes = off\n\
                 shared_buffers = '32MB'\nmax_connections = 40\n",
                sock.display(),
                guard.certs.server.cert.display(),
                guard.certs.server.key.display()
            );
            std::fs::write(guard.data.join("postgresql.auto.conf"), conf)?;
            match run(Command::new("runuser")
                .args(["-u", "postgres", "--"])
                .arg(format!("{PG_BIN}/pg_ctl"))
                .arg("-D")
                .arg(&guard.data)
                .arg("-l")
                .arg(guard.root.join("server.log"))
                .args(["-w", "-t", "30", "start"])
                .current_dir(&guard.root))
            {
                Ok(()) => {
                    guard.port = port;
                    return Ok(guard);
                }
                Err(e) => last = Some(e),
            }
        }
        let log = std::fs::read_to_string(guard.root.join("server.log")).unwrap_or_default();
        Err(last
            .unwrap()
            .context(format!("starting the TLS cluster; its log:\n{log}")))
    }

    /// A `postgresql://postgres@HOST:PORT/postgres` URL, with `query` (no leading `?`) if any.
    pub fn url(&self, host: &str, query: &str) -> String {
        let mut url = format!("postgresql://postgres@{host}:{}/postgres", self.port);
        if !query.is_empty() {
            url.push('?');
            url.push_str(query);
        }
        url
    }

    pub fn server_log(&self) -> String {
        std::fs::read_to_string(self.root.join("server.log")).unwrap_or_default()
    }
}

impl Drop for TlsPostgres {
    fn drop(&mut self) {
        if self.port != 0 {
            let _ = Command::new("runuser")
                .args(["-u", "postgres", "--"])
                .arg(format!("{PG_BIN}/pg_ctl"))
                .arg("-D")
                .arg(&self.data)
                .args(["-m", "immediate", "-w", "-t", "30", "stop"])
                .current_dir(&self.root)
                .output();
        }
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

/// A TLS-terminating TCP proxy on 127.0.0.1: accepts TLS with `cert`, forwards the plain bytes
/// to `upstream`. Stops (with every connection) on drop.
pub struct TlsProxy {
    pub addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl TlsProxy {
    pub async fn start(cert: &CertPair, upstream: SocketAddr) -> Result<Self> {
        use rustls::pki_types::pem::PemObject;
        use rustls::pki_types::{CertificateDer, PrivateKeyDer};
        let chain = CertificateDer::pem_file_iter(&cert.cert)
            .context("reading the proxy certificate")?
            .collect::<Result<Vec<_>, _>>()?;
        let key = PrivateKeyDer::from_pem_file(&cert.key).context("reading the proxy key")?;
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_no_client_auth()
            .with_single_cert(chain, key)?;
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let task = tokio::spawn(async move {
            let mut conns = tokio::task::JoinSet::new();
            loop {
                let Ok((client, _)) = listener.accept().await else {
                    continue;
                };
                let acceptor = acceptor.clone();
                conns.spawn(async move {
                    let Ok(Ok(mut tls)) =
                        tokio::time::timeout(Duration::from_secs(10), acceptor.accept(client))
                            .await
                    else {
                        return;
                    };
                    let Ok(mut plain) = tokio::net::TcpStream::connect(upstream).await else {
                        return;
                    };
                    let _ = tokio::io::copy_bidirectional(&mut tls, &mut plain).await;
                });
                // Reap finished connections.
                while conns.try_join_next().is_some() {}
            }
        });
        Ok(Self { addr, task })
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }
}

impl Drop for TlsProxy {
    fn drop(&mut self) {
        // Dropping the task's JoinSet aborts every connection it holds.
        self.task.abort();
    }
}
