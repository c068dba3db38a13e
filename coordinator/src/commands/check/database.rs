//! The job's source (export) or target (restore).

use super::*;

/// A database's endpoint as `host:port/db`: never a user or a password.
pub(super) fn pg_endpoint(cfg: &tokio_postgres::Config) -> String {
    let servers = fleet_io::pg::connect::endpoints(cfg);
    match cfg.get_dbname() {
        Some(db) => format!("{servers}/{db}"),
        None => servers,
    }
}

/// The config of `conn` and the label `what host:port/db`; or the failed line.
pub(super) fn pg_target(
    what: &str,
    conn: &PgConn,
) -> std::result::Result<(tokio_postgres::Config, PgTls, String), Line> {
    match fleet_io::pg::pg_config(conn) {
        Ok((cfg, tls)) => {
            let label = format!("{what} {}", pg_endpoint(&cfg));
            Ok((cfg, tls, label))
        }
        Err(e) => Err(Line {
            status: Status::Fail,
            label: what.to_string(),
            detail: e.message,
        }),
    }
}

pub(super) async fn source(spec: &ExportSpec, path: &Path, limit: Duration) -> Line {
    let (cfg, tls, label) = match pg_target("source", &spec.source.conn()) {
        Ok(t) => t,
        Err(line) => return line,
    };
    let fix = format!(
        "check [source] url in {} (or the PG* variables)",
        path.display()
    );
    let check = async {
        let client = match fleet_io::pg::connect(&cfg, &tls).await {
            Ok(c) => c,
            Err(e) => {
                return fail(pg_failure(
                    e.message(),
                    Some(&fleet_io::pg::connect::endpoints(&cfg)),
                    &fix,
                ))
            }
        };
        let txn = match SourceTxn::begin_on(client).await {
            Ok(t) => t,
            Err(e) => return fail(format!("starting a READ ONLY transaction: {e:#}")),
        };
        let row = txn
            .client()
            .query_one(
                "SELECT current_setting('server_version'), pg_is_in_recovery()",
                &[],
            )
            .await;
        let _ = txn.commit().await;
        match row {
            Ok(row) => {
                let version: String = row.get(0);
                let role = if row.get::<_, bool>(1) {
                    "hot standby"
                } else {
                    "primary"
                };
                ok(format!(
                    "read-only session (PostgreSQL {}, {role})",
                    short_version(&version)
                ))
            }
            Err(e) => fail(format!(
                "reading the server version: {}",
                crate::store::db_message(&e)
            )),
        }
    };
    bounded(label, limit, &fix, check).await
}

pub(super) async fn target(spec: &RestoreSpec, path: &Path, limit: Duration) -> Line {
    let (cfg, tls, label) = match pg_target("target", &spec.target.conn()) {
        Ok(t) => t,
        Err(line) => return line,
    };
    let fix = format!("check [target] url in {}", path.display());
    let check = async {
        let client = match fleet_io::pg::connect(&cfg, &tls).await {
            Ok(c) => c,
            Err(e) => {
                return fail(pg_failure(
                    e.message(),
                    Some(&fleet_io::pg::connect::endpoints(&cfg)),
                    &fix,
                ))
            }
        };
        let row = client
            .query_one(
                "SELECT current_setting('server_version'), pg_is_in_recovery(),
                        current_setting('transaction_read_only')",
                &[],
            )
            .await;
        match row {
            Err(e) => fail(format!(
                "reading the server version: {}",
                crate::store::db_message(&e)
            )),
            Ok(row) if row.get::<_, bool>(1) => fail(format!(
                "a hot standby, read-only — a restore loads into the primary; {fix}"
            )),
            Ok(row) if row.get::<_, String>(2) == "on" => fail(format!(
                "sessions here are read-only (default_transaction_read_only is on) — a restore needs a writable database; {fix}"
            )),
            Ok(row) => ok(format!(
                "writable session (PostgreSQL {})",
                short_version(&row.get::<_, String>(0))
            )),
        }
    };
    bounded(label, limit, &fix, check).await
}

/// One line for a failed PostgreSQL connect or query: the cause (without the `host:port: `
/// the label already shows) — what to do.
pub(super) fn pg_failure(text: &str, endpoint: Option<&str>, fix: &str) -> String {
    let cause = match endpoint {
        Some(e) => strip_endpoint(text, e.split('/').next().unwrap_or(e)),
        None => text,
    };
    if let Some(network) = network_cause(cause) {
        return format!("{network} — is PostgreSQL running there? {fix}");
    }
    let advice = if cause.contains("28P01") || cause.contains("password authentication failed") {
        Some("wrong password: set it in PGPASSWORD, ~/.pgpass or the variable password_env names")
    } else if cause.contains("no password") || cause.contains("password missing") {
        Some("the server wants a password: set PGPASSWORD, ~/.pgpass or the spec's password_env")
    } else if cause.contains("3D000") {
        Some("check the database name")
    } else if cause.contains("28000") {
        Some("check the user name, and that the server's pg_hba.conf lets it in from here")
    } else if cause.starts_with("TLS") {
        Some("check sslmode and sslrootcert (in the URL, or PGSSLMODE / PGSSLROOTCERT)")
    } else {
        None
    };
    match advice {
        Some(a) => format!("{cause} — {a}; {fix}"),
        None => format!("{cause} — {fix}"),
    }
}

// ---- object stores -------------------------------------------------------------------------
