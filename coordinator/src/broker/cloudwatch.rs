//! Opt-in: publish the task backlog to CloudWatch so an Auto Scaling target-tracking policy has
//! its input on any RabbitMQ (self-hosted or Amazon MQ). Metric `pgfleet/TaskBacklog` (messages
//! ready + unacknowledged on `<namespace>.tasks`, see `queue_stats`) and `pgfleet/DeadLetters`,
//! dimension `Namespace`; the template in deploy/aws divides TaskBacklog by the group's
//! in-service instances.

use crate::broker::queue_stats::QueueStats;
use aws_sdk_cloudwatch::types::{Dimension, MetricDatum, StandardUnit};
use std::time::Duration;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

pub const METRIC_NAMESPACE: &str = "pgfleet";

pub struct BacklogPublisher {
    /// The latest sample of the serve loop (`None` while RabbitMQ is unreachable).
    pub stats: watch::Receiver<Option<QueueStats>>,
    /// The queue namespace, published as the `Namespace` dimension.
    pub namespace: String,
    pub every: Duration,
    /// A custom endpoint (VPC endpoint, or a local emulator in tests).
    pub endpoint: Option<String>,
}

impl BacklogPublisher {
    pub fn spawn(self, shutdown: CancellationToken) {
        tokio::spawn(async move {
            let mut conf = aws_config::defaults(aws_config::BehaviorVersion::latest());
            if let Some(e) = &self.endpoint {
                conf = conf.endpoint_url(e);
            }
            let client = aws_sdk_cloudwatch::Client::new(&conf.load().await);
            let mut tick = tokio::time::interval(self.every);
            loop {
                tokio::select! {
                    _ = shutdown.cancelled() => break,
                    _ = tick.tick() => {}
                }
                let Some(stats) = *self.stats.borrow() else {
                    continue;
                };
                let datum = |name: &str, value: u64| {
                    MetricDatum::builder()
                        .metric_name(name)
                        .unit(StandardUnit::Count)
                        .value(value as f64)
                        .dimensions(
                            Dimension::builder()
                                .name("Namespace")
                                .value(&self.namespace)
                                .build(),
                        )
                        .build()
                };
                let sent = client
                    .put_metric_data()
                    .namespace(METRIC_NAMESPACE)
                    .metric_data(datum("TaskBacklog", stats.backlog()))
                    .metric_data(datum("DeadLetters", stats.dead_letters))
                    .send()
                    .await;
                if let Err(e) = sent {
                    tracing::warn!(error = %aws_sdk_cloudwatch::error::DisplayErrorContext(&e), "publishing the backlog to CloudWatch failed");
                }
            }
        });
    }
}
