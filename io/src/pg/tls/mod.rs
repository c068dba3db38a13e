//! TLS for PostgreSQL connections, with libpq's `sslmode` semantics, over rustls.
//!
//! | sslmode | encrypted | certificate checked |
//! |---|---|---|
//! | `disable` | never | - |
//! | `allow` | only if the server refuses a plain session | chain, if a root certificate file is known |
//! | `prefer` (default) | if the server supports TLS | chain, if a root certificate file is known |
//! | `require` | always | chain, if a root certificate file is known (as libpq) |
//! | `verify-ca` | always | chain against the root certificates |
//! | `verify-full` | always | chain, and the host name (or IP) against the certificate's names |
//!
//! The root certificates come from `sslrootcert` (URL), else `PGSSLROOTCERT`, else
//! `~/.postgresql/root.crt` when that file exists. `sslrootcert=system` means the system trust
//! store (and, as in libpq, only goes with `verify-full`). Unlike libpq, which fails, the
//! `verify-*` modes without any root certificate file fall back to the system trust store.
//!
//! Unix-socket connections never use TLS (PostgreSQL does not offer it there), as in libpq.
//! Client certificates (`sslcert`, `sslkey`) and channel binding are not supported.

mod verify;

use rustls::client::danger::ServerCertVerifier;
use rustls::client::WebPkiServerVerifier;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{CertificateError, ClientConfig, RootCertStore};
use std::fmt;
use std::future::Future;
use std::io;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::str::FromStr;
use std::sync::Arc;
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_postgres::tls::{ChannelBinding, MakeTlsConnect, TlsConnect, TlsStream};
use tokio_postgres::Socket;
use verify::{ChainOnly, NoVerification};

/// libpq's `sslmode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SslMode {
    Disable,
    Allow,
    Prefer,
    Require,
    VerifyCa,
    VerifyFull,
}

impl SslMode {
    pub fn as_str(self) -> &'static str {
        match self {
            SslMode::Disable => "disable",
            SslMode::Allow => "allow",
            SslMode::Prefer => "prefer",
            SslMode::Require => "require",
            SslMode::VerifyCa => "verify-ca",
            SslMode::VerifyFull => "verify-full",
        }
    }
}

impl fmt::Display for SslMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for SslMode {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        Ok(match s {
            "disable" => SslMode::Disable,
            "allow" => SslMode::Allow,
            "prefer" => SslMode::Prefer,
            "require" => SslMode::Require,
            "verify-ca" => SslMode::VerifyCa,
            "verify-full" => SslMode::VerifyFull,
            other => {
                return Err(format!(
                    "unknown sslmode {other:?} (use disable, allow, prefer, require, verify-ca or verify-full)"
                ))
            }
        })
    }
}

/// Where the trusted root certificates come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RootCert {
    /// A PEM file with one or more CA certificates.
    File(PathBuf),
    /// The system trust store (`SSL_CERT_FILE` / `SSL_CERT_DIR`, else the OS's).
    System,
}

impl fmt::Display for RootCert {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RootCert::File(p) => write!(f, "{}", p.display()),
            RootCert::System => f.write_str("the system trust store"),
        }
    }
}

/// The TLS part of a connection's settings, resolved from the URL and the environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsSettings {
    pub mode: SslMode,
    /// The roots the server certificate is checked against; `None`: not checked.
    pub root_cert: Option<RootCert>,
}

impl Default for TlsSettings {
    /// libpq's default: `prefer`, no verification.
    fn default() -> Self {
        Self {
            mode: SslMode::Prefer,
            root_cert: None,
        }
    }
}

impl TlsSettings {
    /// Resolve libpq-style: the URL's `sslmode` / `sslrootcert` win over `PGSSLMODE` /
    /// `PGSSLROOTCERT`; `~/.postgresql/root.crt` is used when it exists and nothing else names
    /// a root certificate. Errors name `PGSSLMODE` when the mode came from there; the caller
    /// names the URL.
    pub fn resolve(
        url_mode: Option<&str>,
        url_root: Option<&str>,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Self, String> {
        let env_mode = env("PGSSLMODE").filter(|m| !m.is_empty());
        let from_env = url_mode.is_none() && env_mode.is_some();
        let mode_text = url_mode.map(str::to_string).or(env_mode);
        let root_text = url_root
            .map(str::to_string)
            .or_else(|| env("PGSSLROOTCERT"))
            .filter(|r| !r.is_empty());
        let explicit_system = root_text.as_deref() == Some("system");
        let mode = match &mode_text {
            Some(text) => text.parse::<SslMode>().map_err(|e| {
                if from_env {
                    format!("PGSSLMODE: {e}")
                } else {
                    e
                }
            })?,
            // libpq: sslrootcert=system makes verify-full the default.
            None if explicit_system => SslMode::VerifyFull,
            None => SslMode::Prefer,
        };
        if explicit_system && mode != SslMode::VerifyFull {
            return Err(format!(
                "sslrootcert=system requires sslmode=verify-full, not {mode} (as in libpq)"
            ));
        }
        let root_cert = match root_text {
            Some(r) if r == "system" => Some(RootCert::System),
            Some(path) => Some(RootCert::File(PathBuf::from(path))),
            None => env("HOME")
                .map(|home| Path::new(&home).join(".postgresql").join("root.crt"))
                .filter(|p| p.is_file())
                .map(RootCert::File),
        };
        let root_cert = match mode {
            SslMode::Disable => None,
            SslMode::VerifyCa | SslMode::VerifyFull => Some(root_cert.unwrap_or(RootCert::System)),
            SslMode::Allow | SslMode::Prefer | SslMode::Require => root_cert,
        };
        Ok(Self { mode, root_cert })
    }

    /// Load the root certificates and build the connector. Fails with one line when a root
    /// certificate file is missing or holds no certificate.
    pub fn connector(&self) -> Result<PgTls, String> {
        let rustls = match self.mode {
            SslMode::Disable => None,
            _ => Some(Arc::new(self.client_config()?)),
        };
        Ok(PgTls {
            settings: Arc::new(self.clone()),
            rustls,
        })
    }

    fn client_config(&self) -> Result<ClientConfig, String> {
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let verifier: Arc<dyn ServerCertVerifier> = match &self.root_cert {
            None => Arc::new(NoVerification {
                provider: provider.clone(),
            }),
            Some(root) => {
                let roots = Arc::new(load_roots(root)?);
                let webpki = WebPkiServerVerifier::builder_with_provider(roots, provider.clone())
                    .build()
                    .map_err(|e| format!("sslrootcert {root}: {e}"))?;
                if self.mode == SslMode::VerifyFull {
                    webpki
                } else {
                    Arc::new(ChainOnly { inner: webpki })
                }
            }
        };
        let mut config = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| format!("TLS setup: {e}"))?
            .dangerous()
            .with_custom_certificate_verifier(verifier)
            .with_no_client_auth();
        // What libpq 17 sends; servers before 17 ignore it, 17+ require it for direct TLS.
        config.alpn_protocols = vec![b"postgresql".to_vec()];
        Ok(config)
    }
}

fn load_roots(root: &RootCert) -> Result<RootCertStore, String> {
    let mut store = RootCertStore::empty();
    match root {
        RootCert::File(path) => {
            let pem = std::fs::read(path)
                .map_err(|e| format!("sslrootcert {}: cannot read it: {e}", path.display()))?;
            let certs = CertificateDer::pem_slice_iter(&pem)
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| format!("sslrootcert {}: not valid PEM: {e}", path.display()))?;
            let (added, _ignored) = store.add_parsable_certificates(certs);
            if added == 0 {
                return Err(format!(
                    "sslrootcert {} holds no usable CA certificate",
                    path.display()
                ));
            }
        }
        RootCert::System => {
            let found = rustls_native_certs::load_native_certs();
            store.add_parsable_certificates(found.certs);
            if store.is_empty() {
                return Err(
                    "the system trust store has no CA certificates (set sslrootcert to a CA file)"
                        .to_string(),
                );
            }
        }
    }
    Ok(store)
}

/// The connector for one source: the resolved settings and, unless `disable`, a rustls
/// configuration with the root certificates already loaded. Cheap to clone.
#[derive(Clone)]
pub struct PgTls {
    pub(super) settings: Arc<TlsSettings>,
    rustls: Option<Arc<ClientConfig>>,
}

impl fmt::Debug for PgTls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PgTls")
            .field("settings", &self.settings)
            .finish()
    }
}

impl PgTls {
    pub fn settings(&self) -> &TlsSettings {
        &self.settings
    }
}

/// A TLS handshake failure, in words.
#[derive(Debug)]
pub struct HandshakeError {
    message: String,
    /// The certificate or the settings are wrong: trying again cannot help.
    permanent: bool,
}

impl HandshakeError {
    fn permanent(message: String) -> Self {
        Self {
            message,
            permanent: true,
        }
    }

    /// True when retrying cannot help (an untrusted or mismatched certificate, bad settings),
    /// as opposed to a connection that broke during the handshake.
    pub fn is_permanent(&self) -> bool {
        self.permanent
    }
}

impl fmt::Display for HandshakeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for HandshakeError {}

impl MakeTlsConnect<Socket> for PgTls {
    type Stream = PgTlsStream;
    type TlsConnect = PgTlsConnect;
    type Error = HandshakeError;

    fn make_tls_connect(&mut self, domain: &str) -> Result<PgTlsConnect, HandshakeError> {
        // Called for every connection, TLS or not (Unix sockets pass ""): errors wait for the
        // handshake.
        Ok(PgTlsConnect {
            domain: domain.to_string(),
            settings: self.settings.clone(),
            rustls: self.rustls.clone(),
        })
    }
}

pub struct PgTlsConnect {
    domain: String,
    settings: Arc<TlsSettings>,
    rustls: Option<Arc<ClientConfig>>,
}

impl TlsConnect<Socket> for PgTlsConnect {
    type Stream = PgTlsStream;
    type Error = HandshakeError;
    type Future = Pin<Box<dyn Future<Output = Result<PgTlsStream, HandshakeError>> + Send>>;

    fn connect(self, stream: Socket) -> Self::Future {
        Box::pin(async move {
            let Some(config) = self.rustls else {
                return Err(HandshakeError::permanent(
                    "TLS requested with sslmode=disable".to_string(),
                ));
            };
            let name = ServerName::try_from(self.domain.clone()).map_err(|_| {
                HandshakeError::permanent(format!(
                    "{:?} is not a valid TLS server name",
                    self.domain
                ))
            })?;
            tokio_rustls::TlsConnector::from(config)
                .connect(name, stream)
                .await
                .map(PgTlsStream)
                .map_err(|e| HandshakeError {
                    message: describe_handshake_error(&e, &self.domain, &self.settings),
                    permanent: is_certificate_error(&e),
                })
        })
    }
}

/// rustls rejected the server's certificate (as opposed to an I/O failure mid-handshake).
fn is_certificate_error(e: &io::Error) -> bool {
    matches!(
        e.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>()),
        Some(rustls::Error::InvalidCertificate(_))
    )
}

fn describe_handshake_error(e: &io::Error, host: &str, settings: &TlsSettings) -> String {
    let mode = settings.mode;
    let roots = settings
        .root_cert
        .as_ref()
        .map(|r| r.to_string())
        .unwrap_or_else(|| "(none)".to_string());
    let Some(tls) = e.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>()) else {
        return format!("handshake with {host} failed: {e}");
    };
    match tls {
        rustls::Error::InvalidCertificate(cert) => match cert {
            CertificateError::UnknownIssuer | CertificateError::BadSignature => {
                format!("server certificate of {host} not trusted by {roots} (sslmode={mode})")
            }
            CertificateError::NotValidForName => {
                format!("server certificate is not valid for host {host} (sslmode={mode})")
            }
            CertificateError::NotValidForNameContext { presented, .. } => format!(
                "server certificate is not valid for host {host}: it names {} (sslmode={mode})",
                if presented.is_empty() {
                    "no name".to_string()
                } else {
                    presented
                        .iter()
                        .map(|n| plain_name(n))
                        .collect::<Vec<_>>()
                        .join(", ")
                }
            ),
            CertificateError::Expired | CertificateError::ExpiredContext { .. } => {
                format!("server certificate of {host} has expired (sslmode={mode})")
            }
            CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
                format!("server certificate of {host} is not valid yet (sslmode={mode})")
            }
            other => format!("server certificate of {host} rejected: {other} (sslmode={mode})"),
        },
        other => format!("handshake with {host} failed: {other} (sslmode={mode})"),
    }
}

/// rustls shows presented names as `DnsName("db.example")` / `IpAddress(10.0.0.1)`.
fn plain_name(name: &str) -> &str {
    name.strip_prefix("DnsName(\"")
        .and_then(|n| n.strip_suffix("\")"))
        .or_else(|| {
            name.strip_prefix("IpAddress(")
                .and_then(|n| n.strip_suffix(')'))
        })
        .unwrap_or(name)
}

/// A TLS session with the server.
pub struct PgTlsStream(tokio_rustls::client::TlsStream<Socket>);

impl AsyncRead for PgTlsStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl AsyncWrite for PgTlsStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.0.is_write_vectored()
    }
}

impl TlsStream for PgTlsStream {
    fn channel_binding(&self) -> ChannelBinding {
        // SCRAM channel binding (tls-server-end-point) is not offered; SCRAM without it works
        // with every server that does not demand channel_binding=require.
        ChannelBinding::none()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pg::connect::{connect, endpoints};
    use std::collections::HashMap;

    fn resolve(
        mode: Option<&str>,
        root: Option<&str>,
        vars: &[(&str, &str)],
    ) -> Result<TlsSettings, String> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        TlsSettings::resolve(mode, root, &|k| map.get(k).cloned())
    }

    #[test]
    fn modes_parse_like_libpq() {
        for (text, mode) in [
            ("disable", SslMode::Disable),
            ("allow", SslMode::Allow),
            ("prefer", SslMode::Prefer),
            ("require", SslMode::Require),
            ("verify-ca", SslMode::VerifyCa),
            ("verify-full", SslMode::VerifyFull),
        ] {
            assert_eq!(text.parse::<SslMode>(), Ok(mode));
            assert_eq!(mode.as_str(), text);
        }
        let err = resolve(Some("verify_full"), None, &[]).unwrap_err();
        assert!(err.starts_with("unknown sslmode \"verify_full\""), "{err}");
        let err = resolve(None, None, &[("PGSSLMODE", "on")]).unwrap_err();
        assert!(err.starts_with("PGSSLMODE: unknown sslmode"), "{err}");
    }

    #[test]
    fn defaults_and_precedence() {
        // Nothing said: prefer, no verification (HOME without .postgresql/root.crt).
        let s = resolve(None, None, &[("HOME", "/nonexistent")]).unwrap();
        assert_eq!(s, TlsSettings::default());
        // URL beats the environment, for both the mode and the root certificate.
        let s = resolve(
            Some("verify-ca"),
            Some("/url/ca.pem"),
            &[("PGSSLMODE", "disable"), ("PGSSLROOTCERT", "/env/ca.pem")],
        )
        .unwrap();
        assert_eq!(s.mode, SslMode::VerifyCa);
        assert_eq!(s.root_cert, Some(RootCert::File("/url/ca.pem".into())));
        // The environment fills what the URL left out.
        let s = resolve(
            None,
            None,
            &[
                ("PGSSLMODE", "verify-full"),
                ("PGSSLROOTCERT", "/env/ca.pem"),
            ],
        )
        .unwrap();
        assert_eq!(s.mode, SslMode::VerifyFull);
        assert_eq!(s.root_cert, Some(RootCert::File("/env/ca.pem".into())));
    }

    #[test]
    fn verification_follows_the_root_certificate() {
        // require without a root certificate: encrypted, not verified.
        let s = resolve(Some("require"), None, &[]).unwrap();
        assert_eq!(s.root_cert, None);
        // require with one: the chain is verified, as libpq does.
        let s = resolve(Some("require"), Some("/ca.pem"), &[]).unwrap();
        assert_eq!(s.root_cert, Some(RootCert::File("/ca.pem".into())));
        // verify-* without one: the system trust store.
        let s = resolve(Some("verify-full"), None, &[]).unwrap();
        assert_eq!(s.root_cert, Some(RootCert::System));
        // disable ignores the root certificate.
        let s = resolve(Some("disable"), Some("/ca.pem"), &[]).unwrap();
        assert_eq!(s.root_cert, None);
    }

    #[test]
    fn default_root_crt_is_used_when_present() {
        let home = std::env::temp_dir().join(format!("pgfleet-tls-home-{}", std::process::id()));
        std::fs::create_dir_all(home.join(".postgresql")).unwrap();
        let root = home.join(".postgresql/root.crt");
        std::fs::write(&root, "not read at resolve time").unwrap();
        let home_s = home.to_string_lossy().to_string();
        let s = resolve(Some("verify-ca"), None, &[("HOME", &home_s)]).unwrap();
        assert_eq!(s.root_cert, Some(RootCert::File(root.clone())));
        let s = resolve(Some("require"), None, &[("HOME", &home_s)]).unwrap();
        assert_eq!(s.root_cert, Some(RootCert::File(root)));
        std::fs::remove_dir_all(&home).unwrap();
    }

    #[test]
    fn sslrootcert_system_means_verify_full() {
        let s = resolve(None, Some("system"), &[]).unwrap();
        assert_eq!(s.mode, SslMode::VerifyFull);
        assert_eq!(s.root_cert, Some(RootCert::System));
        let err = resolve(Some("require"), Some("system"), &[]).unwrap_err();
        assert!(err.contains("verify-full"), "{err}");
    }

    #[test]
    fn presented_names_are_shown_plainly() {
        assert_eq!(plain_name("DnsName(\"db.example\")"), "db.example");
        assert_eq!(plain_name("IpAddress(127.0.0.1)"), "127.0.0.1");
        assert_eq!(plain_name("odd"), "odd");
    }

    /// A server that answers the SSLRequest with 'N' (no TLS), as one with ssl=off does.
    async fn no_tls_server() -> u16 {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = listener.accept().await {
                let mut request = [0u8; 8];
                if s.read_exact(&mut request).await.is_ok() {
                    let _ = s.write_all(b"N").await;
                }
            }
        });
        port
    }

    #[tokio::test]
    async fn require_against_a_server_without_tls_fails_clearly() {
        let port = no_tls_server().await;
        let config: tokio_postgres::Config = format!("postgresql://u@127.0.0.1:{port}/db")
            .parse()
            .unwrap();
        let tls = resolve(Some("require"), None, &[])
            .unwrap()
            .connector()
            .unwrap();
        let err = connect(&config, &tls).await.unwrap_err();
        assert_eq!(
            err.to_string(),
            format!("127.0.0.1:{port}: TLS: the server does not support TLS but sslmode=require")
        );
        let tls = resolve(Some("verify-full"), Some("system"), &[])
            .unwrap()
            .connector()
            .unwrap();
        let err = connect(&config, &tls).await.unwrap_err();
        assert!(err.to_string().ends_with("sslmode=verify-full"), "{err}");
    }

    #[test]
    fn unreadable_root_certificate_is_one_clear_line() {
        let s = resolve(Some("verify-ca"), Some("/nonexistent/ca.pem"), &[]).unwrap();
        let err = s.connector().unwrap_err();
        assert!(
            err.starts_with("sslrootcert /nonexistent/ca.pem: cannot read it"),
            "{err}"
        );
        assert!(!err.contains('\n'));
        let dir = std::env::temp_dir().join(format!("pgfleet-tls-bad-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("empty.pem");
        std::fs::write(&file, "no certificate here\n").unwrap();
        let s = resolve(Some("verify-full"), Some(file.to_str().unwrap()), &[]).unwrap();
        let err = s.connector().unwrap_err();
        assert!(err.contains("holds no usable CA certificate"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
        // Modes that verify nothing load nothing.
        assert!(resolve(Some("require"), None, &[])
            .unwrap()
            .connector()
            .is_ok());
    }

    #[test]
    fn endpoints_name_every_server_without_credentials() {
        let cfg = |url: &str| url.parse::<tokio_postgres::Config>().unwrap();
        assert_eq!(
            endpoints(&cfg("postgresql://u:secret@db.example:6543/x")),
            "db.example:6543"
        );
        // A URL gives each host its own port; one `port=` applies to every host.
        assert_eq!(endpoints(&cfg("postgresql://u@h1,h2:7/x")), "h1:5432, h2:7");
        assert_eq!(endpoints(&cfg("host=h1,h2 port=7 user=u")), "h1:7, h2:7");
        assert_eq!(endpoints(&cfg("postgresql://u@h1:1,h2:2/x")), "h1:1, h2:2");
        assert_eq!(endpoints(&cfg("postgresql://u@[::1]/x")), "[::1]:5432");
        assert_eq!(
            endpoints(&cfg("host=/run/postgresql user=u")),
            "/run/postgresql/.s.PGSQL.5432"
        );
    }
}
