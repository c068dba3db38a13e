//! How a worker connects to a source: a `tokio_postgres::Config` built from the task's URL or
//! the libpq `PG*` variables, with the password resolved locally (it never travels in a
//! message), every session read-only, and TLS with libpq's `sslmode` semantics (see [`tls`]).
//! Every PostgreSQL connection pgfleet opens goes through [`connect`] or [`pool`].

pub mod connect;
mod pgpass;
pub mod session;
pub mod tls;

use crate::error::TaskError;
use protocol::PgConn;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;
use tokio_postgres::config::Host;

pub use connect::{connect, describe_connect_error, pool, ConnectError};
pub use pgpass::lookup as pgpass_lookup;
pub use tls::{PgTls, RootCert, SslMode, TlsSettings};

const DEFAULT_PORT: u16 = 5432;
/// Bounds a connect attempt to an unreachable host; libpq waits forever by default, which
/// would pin a task slot.
pub(crate) const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
/// Where libpq builds look for the server socket when no host is given (Debian, then upstream).
const SOCKET_DIRS: &[&str] = &["/var/run/postgresql", "/tmp"];

/// Build the connection config and the TLS connector for `conn` from this process's
/// environment. Root certificates are loaded here, so a missing file fails now, in one line.
pub fn pg_config(conn: &PgConn) -> Result<(tokio_postgres::Config, PgTls), TaskError> {
    let env = |name: &str| std::env::var(name).ok();
    let (config, tls) = build_config(conn, &env, &|port| default_host(port))?;
    Ok((config, tls.connector().map_err(TaskError::fatal)?))
}

/// A config from a bare URL (the coordinator's state database): the URL's parameters and TLS
/// settings, with `PGSSLMODE` / `PGSSLROOTCERT` filling in; no other `PG*` defaults.
/// A libpq `key=value` string is accepted too (its `sslmode` limited to what tokio-postgres
/// parses: disable, prefer, require).
pub fn url_config(url: &str, what: &str) -> Result<(tokio_postgres::Config, PgTls), TaskError> {
    let env = |name: &str| std::env::var(name).ok();
    let (config, tls) = if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        parse_url(url, what, &env)?
    } else {
        // Never echoed: a key=value string may hold a password.
        let config = tokio_postgres::Config::from_str(url)
            .map_err(|e| TaskError::fatal(format!("{what} is invalid: {e}")))?;
        let mode = url
            .contains("sslmode")
            .then(|| match config.get_ssl_mode() {
                tokio_postgres::config::SslMode::Disable => "disable",
                tokio_postgres::config::SslMode::Require => "require",
                _ => "prefer",
            });
        let tls = TlsSettings::resolve(mode, None, &env)
            .map_err(|e| TaskError::fatal(format!("{what}: {e}")))?;
        (config, tls)
    };
    Ok((config, tls.connector().map_err(TaskError::fatal)?))
}

/// `pg_config` with the environment and socket probing injected, for tests.
fn build_config(
    conn: &PgConn,
    env: &dyn Fn(&str) -> Option<String>,
    default_host: &dyn Fn(u16) -> String,
) -> Result<(tokio_postgres::Config, TlsSettings), TaskError> {
    let (mut config, tls) = match &conn.url {
        Some(url) => parse_url(url, "the source URL", env)?,
        None => (
            tokio_postgres::Config::new(),
            TlsSettings::resolve(None, None, env).map_err(TaskError::fatal)?,
        ),
    };

    // libpq semantics: the PG* variables fill whatever the URL left out.
    if config.get_hosts().is_empty() && config.get_hostaddrs().is_empty() {
        match env("PGHOST").filter(|h| !h.is_empty()) {
            Some(hosts) => {
                for h in hosts.split(',') {
                    config.host(h.trim());
                }
            }
            None => {
                let port = first_port(&config, env)?;
                config.host(default_host(port));
            }
        }
    }
    if config.get_ports().is_empty() {
        if let Some(ports) = env("PGPORT").filter(|p| !p.is_empty()) {
            for p in ports.split(',') {
                config.port(parse_port(p)?);
            }
        }
    }
    if config.get_user().is_none() {
        if let Some(user) = env("PGUSER")
            .or_else(|| env("USER"))
            .or_else(|| env("LOGNAME"))
            .filter(|u| !u.is_empty())
        {
            config.user(user);
        }
    }
    if config.get_dbname().is_none() {
        let db = env("PGDATABASE")
            .filter(|d| !d.is_empty())
            .or_else(|| config.get_user().map(str::to_string));
        if let Some(db) = db {
            config.dbname(db);
        }
    }

    if config.get_password().is_none() {
        if let Some(pw) = resolve_password(conn, &config, env) {
            config.password(pw);
        }
    }

    if !conn.application_name.is_empty() {
        config.application_name(&conn.application_name);
    }
    // Belt and braces on top of READ ONLY transactions: a source session can never write.
    if conn.read_only {
        let options = match config.get_options() {
            Some(existing) if !existing.trim().is_empty() => {
                format!("{existing} -c default_transaction_read_only=on")
            }
            _ => "-c default_transaction_read_only=on".to_string(),
        };
        config.options(options);
    }
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(DEFAULT_CONNECT_TIMEOUT);
    }
    Ok((config, tls))
}

/// Parse a `postgresql://` URL. `sslmode` and `sslrootcert` are taken out and resolved here
/// (tokio-postgres knows neither `allow` nor the `verify-*` modes nor `sslrootcert`); `what`
/// names the URL in errors, which show it redacted.
fn parse_url(
    url: &str,
    what: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<(tokio_postgres::Config, TlsSettings), TaskError> {
    let shown = protocol::spec::redact_url(url);
    let parsed = url::Url::parse(url)
        .map_err(|e| TaskError::fatal(format!("{what} {shown} is not a valid URL: {e}")))?;
    let mut mode = None;
    let mut root = None;
    for (k, v) in parsed.query_pairs() {
        match &*k {
            "sslmode" => mode = Some(v.to_string()),
            "sslrootcert" => root = Some(v.to_string()),
            _ => {}
        }
    }
    let tls = TlsSettings::resolve(mode.as_deref(), root.as_deref(), env)
        .map_err(|e| TaskError::fatal(format!("{what} {shown}: {e}")))?;
    // The other parameters are kept byte for byte: re-encoding them would turn spaces into
    // `+`, which tokio-postgres does not decode.
    let mut cleaned = parsed.clone();
    if let Some(query) = parsed.query() {
        let kept: Vec<&str> = query
            .split('&')
            .filter(|pair| {
                let key = pair.split('=').next().unwrap_or_default();
                url::form_urlencoded::parse(key.as_bytes())
                    .next()
                    .is_none_or(|(k, _)| k != "sslmode" && k != "sslrootcert")
            })
            .collect();
        cleaned.set_query((!kept.is_empty()).then(|| kept.join("&")).as_deref());
    }
    let config = tokio_postgres::Config::from_str(cleaned.as_str())
        .map_err(|e| TaskError::fatal(format!("{what} {shown}: {e}")))?;
    Ok((config, tls))
}

fn parse_port(text: &str) -> Result<u16, TaskError> {
    text.trim()
        .parse()
        .map_err(|_| TaskError::fatal(format!("invalid PostgreSQL port {text:?}")))
}

fn first_port(
    config: &tokio_postgres::Config,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<u16, TaskError> {
    if let Some(p) = config.get_ports().first() {
        return Ok(*p);
    }
    match env("PGPORT").filter(|p| !p.is_empty()) {
        Some(ports) => parse_port(ports.split(',').next().unwrap_or_default()),
        None => Ok(DEFAULT_PORT),
    }
}

/// libpq's default: the local socket if one is listening, else localhost over TCP.
fn default_host(port: u16) -> String {
    SOCKET_DIRS
        .iter()
        .find(|dir| Path::new(dir).join(format!(".s.PGSQL.{port}")).exists())
        .map(|dir| dir.to_string())
        .unwrap_or_else(|| "localhost".to_string())
}

/// `password_env`, then `PGPASSWORD`, then the password file. Values are never logged.
fn resolve_password(
    conn: &PgConn,
    config: &tokio_postgres::Config,
    env: &dyn Fn(&str) -> Option<String>,
) -> Option<String> {
    if let Some(var) = &conn.password_env {
        match env(var) {
            Some(pw) => return Some(pw),
            None => tracing::warn!(
                variable = %var,
                "source.password_env names an unset variable; trying PGPASSWORD and the password file"
            ),
        }
    }
    if let Some(pw) = env("PGPASSWORD") {
        return Some(pw);
    }
    let file = env("PGPASSFILE")
        .map(PathBuf::from)
        .or_else(|| env("HOME").map(|h| Path::new(&h).join(".pgpass")))?;
    let contents = pgpass::read_file(&file)?;
    let host = match config.get_hosts().first() {
        Some(Host::Tcp(h)) => h.clone(),
        // libpq matches socket connections against "localhost".
        Some(Host::Unix(_)) => "localhost".to_string(),
        None => config
            .get_hostaddrs()
            .first()
            .map(|a| a.to_string())
            .unwrap_or_else(|| "localhost".to_string()),
    };
    let port = config
        .get_ports()
        .first()
        .copied()
        .unwrap_or(DEFAULT_PORT)
        .to_string();
    let user = config.get_user()?;
    let db = config.get_dbname().unwrap_or(user);
    pgpass::lookup(&contents, &host, &port, db, user)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn conn(url: Option<&str>) -> PgConn {
        PgConn {
            url: url.map(str::to_string),
            password_env: None,
            application_name: "pgfleet-test".into(),
            statement_timeout: None,
            read_only: true,
        }
    }

    fn build(conn: &PgConn, vars: &[(&str, &str)]) -> Result<tokio_postgres::Config, TaskError> {
        build_tls(conn, vars).map(|(c, _)| c)
    }

    fn build_tls(
        conn: &PgConn,
        vars: &[(&str, &str)],
    ) -> Result<(tokio_postgres::Config, TlsSettings), TaskError> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        build_config(conn, &|k| map.get(k).cloned(), &|_| "localhost".into())
    }

    #[test]
    fn url_wins_and_session_is_read_only() {
        let c = build(
            &conn(Some("postgresql://reader@db.example:6432/shop?sslmode=disable&options=-c%20work_mem%3D64MB")),
            &[("PGHOST", "ignored"), ("PGUSER", "ignored")],
        )
        .unwrap();
        assert_eq!(c.get_hosts(), &[Host::Tcp("db.example".into())]);
        assert_eq!(c.get_ports(), &[6432]);
        assert_eq!(c.get_user(), Some("reader"));
        assert_eq!(c.get_dbname(), Some("shop"));
        assert_eq!(c.get_application_name(), Some("pgfleet-test"));
        assert_eq!(
            c.get_options(),
            Some("-c work_mem=64MB -c default_transaction_read_only=on")
        );
        assert_eq!(c.get_password(), None);
    }

    #[test]
    fn env_defaults_like_libpq() {
        let c = build(&conn(None), &[("USER", "alice")]).unwrap();
        assert_eq!(c.get_hosts(), &[Host::Tcp("localhost".into())]);
        assert_eq!(c.get_user(), Some("alice"));
        assert_eq!(c.get_dbname(), Some("alice"));
        assert_eq!(c.get_options(), Some("-c default_transaction_read_only=on"));

        let c = build(
            &conn(None),
            &[
                ("PGHOST", "/var/run/postgresql"),
                ("PGPORT", "5433"),
                ("PGUSER", "bob"),
                ("PGDATABASE", "sales"),
                ("USER", "alice"),
            ],
        )
        .unwrap();
        assert_eq!(
            c.get_hosts(),
            &[Host::Unix(PathBuf::from("/var/run/postgresql"))]
        );
        assert_eq!(c.get_ports(), &[5433]);
        assert_eq!(c.get_user(), Some("bob"));
        assert_eq!(c.get_dbname(), Some("sales"));
    }

    #[test]
    fn password_order() {
        let mut cn = conn(Some("postgresql://u@h/db"));
        cn.password_env = Some("MY_PW".into());
        let c = build(&cn, &[("MY_PW", "one"), ("PGPASSWORD", "two")]).unwrap();
        assert_eq!(c.get_password(), Some(&b"one"[..]));
        // An unset password_env falls through to PGPASSWORD.
        let c = build(&cn, &[("PGPASSWORD", "two")]).unwrap();
        assert_eq!(c.get_password(), Some(&b"two"[..]));
    }

    #[test]
    fn password_from_pgpass_file() {
        let dir = std::env::temp_dir().join(format!("pgfleet-pgpass-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("pgpass");
        std::fs::write(
            &file,
            "# comment\nh:5432:other:u:nope\nh:*:db:u:s\\:ecret\n",
        )
        .unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
        }
        let path = file.to_string_lossy().to_string();
        let c = build(&conn(Some("postgresql://u@h/db")), &[("PGPASSFILE", &path)]).unwrap();
        assert_eq!(c.get_password(), Some(&b"s:ecret"[..]));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn tls_settings_come_from_the_url_then_the_environment() {
        // The URL's sslmode and sslrootcert are resolved and removed; the rest is kept.
        let (c, tls) = build_tls(
            &conn(Some(
                "postgresql://u@h/db?sslmode=verify-full&sslrootcert=/etc/ca.pem&connect_timeout=7",
            )),
            &[("PGSSLMODE", "disable")],
        )
        .unwrap();
        assert_eq!(tls.mode, SslMode::VerifyFull);
        assert_eq!(tls.root_cert, Some(RootCert::File("/etc/ca.pem".into())));
        assert_eq!(c.get_connect_timeout(), Some(&Duration::from_secs(7)));
        // No URL: PGSSLMODE / PGSSLROOTCERT, like libpq.
        let (_, tls) = build_tls(
            &conn(None),
            &[("PGSSLMODE", "verify-ca"), ("PGSSLROOTCERT", "/ca.pem")],
        )
        .unwrap();
        assert_eq!(tls.mode, SslMode::VerifyCa);
        assert_eq!(tls.root_cert, Some(RootCert::File("/ca.pem".into())));
        // allow is accepted (tokio-postgres alone rejects it).
        let (_, tls) = build_tls(&conn(Some("postgresql://u@h/db?sslmode=allow")), &[]).unwrap();
        assert_eq!(tls.mode, SslMode::Allow);
        // Nothing said: prefer, as libpq.
        let (_, tls) = build_tls(
            &conn(Some("postgresql://u@h/db")),
            &[("HOME", "/nonexistent")],
        )
        .unwrap();
        assert_eq!(tls, TlsSettings::default());
    }

    #[test]
    fn bad_tls_settings_are_fatal_one_liners_without_the_password() {
        let err = build(
            &conn(Some("postgresql://u:hunter2@h/db?sslmode=verify-fuul")),
            &[],
        )
        .unwrap_err();
        assert!(!err.retryable);
        assert!(
            err.message.contains("unknown sslmode \"verify-fuul\""),
            "{}",
            err.message
        );
        assert!(!err.message.contains("hunter2"), "{}", err.message);
        assert!(
            err.message.starts_with(
                "the source URL postgresql://u:***@h/db?sslmode=verify-fuul: unknown sslmode"
            ),
            "{}",
            err.message
        );
        assert!(!err.message.contains('\n'));
        let err = build(&conn(None), &[("PGSSLMODE", "yes")]).unwrap_err();
        assert!(err.message.contains("PGSSLMODE"), "{}", err.message);
        // A root certificate that cannot be read fails when the connector is built.
        let err = pg_config(&conn(Some(
            "postgresql://u@h/db?sslmode=verify-ca&sslrootcert=/nonexistent/ca.pem",
        )))
        .unwrap_err();
        assert!(!err.retryable);
        assert!(
            err.message
                .contains("sslrootcert /nonexistent/ca.pem: cannot read it"),
            "{}",
            err.message
        );
    }

    #[test]
    fn state_url_may_be_a_key_value_string() {
        let (c, tls) = url_config(
            "host=127.0.0.1 user=u dbname=state sslmode=disable",
            "the state database URL",
        )
        .unwrap();
        assert_eq!(c.get_dbname(), Some("state"));
        assert_eq!(tls.settings().mode, SslMode::Disable);
        let err =
            url_config("host=h password=hunter2 bogus=1", "the state database URL").unwrap_err();
        assert!(!err.message.contains("hunter2"), "{}", err.message);
        let (_, tls) = url_config(
            "postgresql://u@h/state?sslmode=require",
            "the state database URL",
        )
        .unwrap();
        assert_eq!(tls.settings().mode, SslMode::Require);
    }

    #[test]
    fn bad_url_is_fatal_and_redacted() {
        let err = build(&conn(Some("postgresql://u:hunter2@h:notaport/db")), &[]).unwrap_err();
        assert!(!err.retryable);
        assert!(!err.message.contains("hunter2"), "{}", err.message);
    }
}
