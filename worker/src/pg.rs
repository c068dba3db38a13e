//! How a worker connects to a source: a `tokio_postgres::Config` built from the task's URL or
//! the libpq `PG*` variables, with the password resolved locally (it never travels in a
//! message), every session read-only, and no TLS yet.

mod pgpass;

use crate::error::TaskError;
use protocol::PgConn;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;
use tokio_postgres::config::{Host, SslMode};

pub use pgpass::lookup as pgpass_lookup;

const DEFAULT_PORT: u16 = 5432;
/// Bounds a connect attempt to an unreachable host; libpq waits forever by default, which
/// would pin a task slot.
const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
/// Where libpq builds look for the server socket when no host is given (Debian, then upstream).
const SOCKET_DIRS: &[&str] = &["/var/run/postgresql", "/tmp"];

/// Build the connection config for `conn` from this process's environment.
pub fn pg_config(conn: &PgConn) -> Result<tokio_postgres::Config, TaskError> {
    let env = |name: &str| std::env::var(name).ok();
    build_config(conn, &env, &|port| default_host(port))
}

/// `pg_config` with the environment and socket probing injected, for tests.
fn build_config(
    conn: &PgConn,
    env: &dyn Fn(&str) -> Option<String>,
    default_host: &dyn Fn(u16) -> String,
) -> Result<tokio_postgres::Config, TaskError> {
    let mut config = match &conn.url {
        Some(url) => parse_url(url)?,
        None => tokio_postgres::Config::new(),
    };
    check_env_sslmode(env)?;

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
    config.ssl_mode(SslMode::Disable);
    Ok(config)
}

/// Parse a `postgresql://` URL. TLS modes are checked first because tokio-postgres rejects the
/// `verify-*` values with an unhelpful "invalid value for option sslmode".
fn parse_url(url: &str) -> Result<tokio_postgres::Config, TaskError> {
    let parsed = url::Url::parse(url)
        .map_err(|e| TaskError::fatal(format!("source URL is not a valid URL: {e}")))?;
    for (k, v) in parsed.query_pairs() {
        if k == "sslmode" {
            check_sslmode(&v, "the source URL")?;
        }
    }
    // Drop sslmode (we always connect without TLS, and tokio-postgres rejects `allow`). The
    // other parameters are kept byte for byte: re-encoding them would turn spaces into `+`,
    // which tokio-postgres does not decode.
    let mut cleaned = parsed.clone();
    if let Some(query) = parsed.query() {
        let kept: Vec<&str> = query
            .split('&')
            .filter(|pair| {
                let key = pair.split('=').next().unwrap_or_default();
                url::form_urlencoded::parse(key.as_bytes())
                    .next()
                    .is_none_or(|(k, _)| k != "sslmode")
            })
            .collect();
        cleaned.set_query((!kept.is_empty()).then(|| kept.join("&")).as_deref());
    }
    tokio_postgres::Config::from_str(cleaned.as_str()).map_err(|e| {
        TaskError::fatal(format!(
            "source URL {}: {e}",
            protocol::spec::redact_url(url)
        ))
    })
}

fn check_env_sslmode(env: &dyn Fn(&str) -> Option<String>) -> Result<(), TaskError> {
    match env("PGSSLMODE") {
        Some(mode) => check_sslmode(&mode, "PGSSLMODE"),
        None => Ok(()),
    }
}

fn check_sslmode(mode: &str, origin: &str) -> Result<(), TaskError> {
    match mode {
        "" | "disable" | "allow" | "prefer" => Ok(()),
        "require" | "verify-ca" | "verify-full" => Err(TaskError::fatal(format!(
            "{origin} asks for sslmode={mode}, but pgfleet does not support TLS connections yet; \
             use sslmode=disable or prefer (or a TLS-terminating proxy such as PgBouncer)"
        ))),
        other => Err(TaskError::fatal(format!(
            "{origin} has an unknown sslmode {other:?}"
        ))),
    }
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
    fn tls_modes_are_refused_clearly() {
        for mode in ["require", "verify-ca", "verify-full"] {
            let err = build(
                &conn(Some(&format!("postgresql://u@h/db?sslmode={mode}"))),
                &[],
            )
            .unwrap_err();
            assert!(!err.retryable);
            assert!(err.message.contains("TLS"), "{}", err.message);
        }
        assert!(build(&conn(None), &[("PGSSLMODE", "require")]).is_err());
        let c = build(&conn(Some("postgresql://u@h/db?sslmode=prefer")), &[]).unwrap();
        assert_eq!(c.get_ssl_mode(), SslMode::Disable);
    }

    #[test]
    fn bad_url_is_fatal_and_redacted() {
        let err = build(&conn(Some("postgresql://u:hunter2@h:notaport/db")), &[]).unwrap_err();
        assert!(!err.retryable);
        assert!(!err.message.contains("hunter2"), "{}", err.message);
    }
}
