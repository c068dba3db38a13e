//! RabbitMQ names shared by the coordinator and workers. Everyone declares the same topology
//! with the same arguments, so whoever starts first creates it and the rest are no-ops.
//!
//! Names live under a namespace (default `pgfleet`) so several fleets, or parallel test runs,
//! can share one broker without consuming each other's messages.

/// After this many deliveries RabbitMQ dead-letters a task (a worker crashing on it each time).
pub const TASK_DELIVERY_LIMIT: i64 = 5;

pub const DEFAULT_NAMESPACE: &str = "pgfleet";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Topology {
    /// The namespace the names below live under.
    pub namespace: String,
    /// Durable quorum queue of tasks; workers consume it.
    pub tasks: String,
    /// Durable quorum queue of results; the coordinator consumes it.
    pub results: String,
    /// Dead-letter exchange (fanout) for rejected or over-delivered tasks.
    pub dead_letter_exchange: String,
    /// Queue bound to the dead-letter exchange; the coordinator records what lands there.
    pub dead_letters: String,
}

impl Topology {
    pub fn new(namespace: &str) -> Result<Self, String> {
        if namespace.is_empty()
            || namespace.len() > 200
            || !namespace
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'))
        {
            return Err(format!(
                "namespace {namespace:?}: use 1-200 characters from a-z, 0-9, '.', '-', '_'"
            ));
        }
        Ok(Self {
            namespace: namespace.to_string(),
            tasks: format!("{namespace}.tasks"),
            results: format!("{namespace}.results"),
            dead_letter_exchange: format!("{namespace}.dlx"),
            dead_letters: format!("{namespace}.dead"),
        })
    }
}

impl Default for Topology {
    fn default() -> Self {
        Self::new(DEFAULT_NAMESPACE).expect("default namespace is valid")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        let t = Topology::default();
        assert_eq!(t.tasks, "pgfleet.tasks");
        assert_eq!(t.dead_letters, "pgfleet.dead");
        assert!(Topology::new("a b").is_err());
        assert!(Topology::new("").is_err());
        assert_eq!(Topology::new("test-1").unwrap().results, "test-1.results");
    }
}
