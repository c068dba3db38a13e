//! The task backlog, sampled on every coordinator tick: messages ready and unacknowledged on the
//! task queue, its consumers, and the dead-letter depth. Feeds `/metrics` and the CloudWatch
//! backlog that Auto Scaling tracks.
//!
//! AMQP only reports *ready* messages. Unacknowledged ones (a worker holds them) come from the
//! management API when `--rabbitmq-api-url` is set; otherwise they are estimated as the tasks
//! this coordinator published and has no result for, minus the ready ones — exact while this
//! coordinator is the only publisher on its namespace, which is how pgfleet runs.

use crate::broker::rabbitmq_api::{ManagementApi, QueueCounts};
use crate::broker::AmqpBroker;
use protocol::topology::Topology;
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueStats {
    pub ready: u64,
    pub unacked: u64,
    pub consumers: u64,
    pub dead_letters: u64,
    /// Ready/unacked/consumers came from the management API (else: AMQP plus the estimate).
    pub from_api: bool,
}

impl QueueStats {
    /// Work the fleet has been given and not finished: what a worker fleet should scale on.
    pub fn backlog(&self) -> u64 {
        self.ready + self.unacked
    }
}

/// Unacknowledged tasks without the management API: published without a result yet, minus
/// those still ready.
pub fn estimated_unacked(ready: u64, published_unfinished: u64) -> u64 {
    published_unfinished.saturating_sub(ready)
}

pub struct QueueMonitor {
    broker: AmqpBroker,
    api: Option<ManagementApi>,
    topology: Topology,
    /// RabbitMQ refreshes its counts every 5 s by default: asking more often gains nothing.
    api_every: Duration,
    last_api: Option<(Instant, QueueCounts)>,
    api_failing: bool,
}

impl QueueMonitor {
    pub fn new(broker: AmqpBroker, api: Option<ManagementApi>, topology: Topology) -> Self {
        Self {
            broker,
            api,
            topology,
            api_every: Duration::from_secs(2),
            last_api: None,
            api_failing: false,
        }
    }

    /// One sample; `None` when not connected to RabbitMQ. `published_unfinished`: tasks the
    /// engine published and has no result for (the metrics refresh counts them).
    pub async fn sample(&mut self, published_unfinished: u64) -> Option<QueueStats> {
        let amqp = self.broker.depths().await?;
        let api = self.api_counts().await;
        let (ready, unacked, consumers) = match api {
            Some(c) => (c.ready, c.unacked, c.consumers),
            None => {
                let ready = u64::from(amqp.ready);
                let unacked = estimated_unacked(ready, published_unfinished);
                (ready, unacked, u64::from(amqp.consumers))
            }
        };
        Some(QueueStats {
            ready,
            unacked,
            consumers,
            dead_letters: u64::from(amqp.dead_letters),
            from_api: api.is_some(),
        })
    }

    /// The task queue's counts from the management API, at most every `api_every`; `None`
    /// when not configured or failing (logged once per failure spell).
    async fn api_counts(&mut self) -> Option<QueueCounts> {
        let api = self.api.as_ref()?;
        if let Some((at, counts)) = self.last_api {
            if at.elapsed() < self.api_every {
                return Some(counts);
            }
        }
        match api.queue(&self.topology.tasks).await {
            Ok(counts) => {
                if self.api_failing {
                    tracing::info!(api = %api.describe(), "RabbitMQ management API answers again");
                }
                self.api_failing = false;
                self.last_api = Some((Instant::now(), counts));
                Some(counts)
            }
            Err(e) => {
                if !self.api_failing {
                    tracing::warn!(error = %format!("{e:#}"), "RabbitMQ management API failed; unacknowledged tasks are estimated until it answers");
                }
                self.api_failing = true;
                self.last_api = None;
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_estimate_counts_published_tasks_not_ready_as_unacked() {
        // 3 published, 1 still in the queue: 2 are held by workers.
        assert_eq!(estimated_unacked(1, 3), 2);
        // Ready tasks the engine no longer tracks (a cancelled job's) never make it negative.
        assert_eq!(estimated_unacked(5, 2), 0);
        let s = QueueStats {
            ready: 1,
            unacked: 2,
            consumers: 2,
            dead_letters: 0,
            from_api: false,
        };
        assert_eq!(s.backlog(), 3);
    }
}
