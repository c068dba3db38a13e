//! The state database, RabbitMQ and its management API.

use super::*;

pub(super) const STATE_FIX: &str = "set --state-url / PGFLEET_STATE_URL";

pub(super) async fn state_db(url: &str, limit: Duration) -> Line {
    let endpoint = fleet_io::pg::url_config(url, "the state database URL")
        .ok()
        .map(|(cfg, _)| pg_endpoint(&cfg));
    let label = match &endpoint {
        Some(e) => format!("state database {e}"),
        None => "state database".to_string(),
    };
    let check = async {
        match PgStore::probe(url).await {
            Ok(StateDbStatus::Ready { server_version }) => {
                ok(format!(
                    "pgfleet schema present (PostgreSQL {})",
                    short_version(&server_version)
                ))
            }
            Ok(StateDbStatus::NoSchema { server_version }) => ok(format!(
                "reachable (PostgreSQL {}); no pgfleet schema yet: `coordinator serve` creates it when it starts",
                short_version(&server_version)
            )),
            Ok(StateDbStatus::NoDatabase) => ok(
                "reachable; the database does not exist yet: `coordinator serve` creates it when it starts (its role needs CREATEDB)",
            ),
            Err(e) => fail(pg_failure(
                &format!("{e:#}"),
                endpoint.as_deref(),
                STATE_FIX,
            )),
        }
    };
    bounded(label, limit, STATE_FIX, check).await
}

// ---- RabbitMQ ------------------------------------------------------------------------------

pub(super) const AMQP_FIX: &str = "set --amqp-url / PGFLEET_AMQP_URL";
pub(super) const API_FIX: &str = "set --rabbitmq-api-url / PGFLEET_RABBITMQ_API_URL";

pub(super) async fn rabbitmq(url: &str, limit: Duration) -> Line {
    let label = format!("rabbitmq {}", url_endpoint(url));
    let check = async {
        let conn = match amqp::connect(url, "pgfleet-check").await {
            Ok(c) => c,
            Err(e) => return fail(amqp_failure(&fleet_io::error::chain(&e))),
        };
        let outcome = match conn.create_channel().await {
            Ok(_) => ok("connected, channel opened"),
            Err(e) => fail(amqp_failure(&fleet_io::error::chain(&e))),
        };
        let _ = conn.close(200, "coordinator check done".into()).await;
        outcome
    };
    bounded(label, limit, AMQP_FIX, check).await
}

pub(super) fn amqp_failure(text: &str) -> String {
    if let Some(cause) = network_cause(text) {
        return format!("{cause} — is RabbitMQ running there? {AMQP_FIX}");
    }
    // The broker's own words come last: "… NOT_ALLOWED - vhost x not found".
    let said = |code: &str| {
        text.rsplit_once(&format!("{code} - "))
            .map(|(_, rest)| rest.trim_end_matches('.').to_string())
    };
    if text.contains("ACCESS_REFUSED") {
        return format!(
            "login refused (ACCESS_REFUSED) — check the user and password in the URL; {AMQP_FIX}"
        );
    }
    if let Some(reason) = said("NOT_ALLOWED") {
        return format!(
            "{reason} (NOT_ALLOWED) — check the vhost (the URL's path) and the user's permissions on it; {AMQP_FIX}"
        );
    }
    format!("{text} — {AMQP_FIX}")
}

pub(super) async fn management_api(api: &ManagementApi, limit: Duration) -> Line {
    let shown = api.describe();
    let label = format!("rabbitmq api {shown}");
    let check = async {
        match api.overview().await {
            Ok(version) => ok(format!("answered (RabbitMQ {version})")),
            Err(e) => {
                let text = format!("{e:#}");
                let text = strip_endpoint(&text, &shown);
                match network_cause(text) {
                    Some(cause) => fail(format!(
                        "{cause} — is the management plugin enabled there? {API_FIX}"
                    )),
                    None => fail(format!("{text} — {API_FIX}")),
                }
            }
        }
    };
    bounded(label, limit, API_FIX, check).await
}

// ---- source and target ---------------------------------------------------------------------
