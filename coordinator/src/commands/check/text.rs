//! Error text made short: what failed, without the endpoint the line already names.

/// `text` without a leading `endpoint: ` or `endpoint ` (the label shows it already).
pub(super) fn strip_endpoint<'a>(text: &'a str, endpoint: &str) -> &'a str {
    text.strip_prefix(endpoint)
        .and_then(|t| t.strip_prefix(": ").or_else(|| t.strip_prefix(' ')))
        .unwrap_or(text)
}

/// `15.4` of `15.4 (Debian 15.4-1)`.
pub(super) fn short_version(server_version: &str) -> &str {
    server_version
        .split_whitespace()
        .next()
        .unwrap_or(server_version)
}

/// The usual network failures, in a few words; `None` for anything else.
pub(super) fn network_cause(text: &str) -> Option<&'static str> {
    let lower = text.to_ascii_lowercase();
    let causes: [(&[&str], &str); 5] = [
        (&["connection refused"], "connection refused"),
        (
            &[
                "failed to lookup address",
                "name or service not known",
                "temporary failure in name resolution",
                "nodename nor servname",
                "no such host",
            ],
            "host name not found",
        ),
        (
            &["no route to host", "network is unreachable"],
            "host unreachable",
        ),
        (&["connection reset"], "connection reset by the server"),
        (
            &["timed out", "did not complete the connection handshake"],
            "timed out",
        ),
    ];
    causes
        .iter()
        .find(|(needles, _)| needles.iter().any(|n| lower.contains(n)))
        .map(|(_, cause)| *cause)
}
