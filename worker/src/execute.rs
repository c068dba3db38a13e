//! Run one task envelope and describe the outcome as a result message. Shared by the RabbitMQ
//! consumer and the in-process queue of `coordinator run`.

use crate::metrics::metrics;
use fleet_io::clients::Clients;
use protocol::{Outcome, ResultEnvelope, Task, TaskEnvelope, MESSAGE_VERSION};
use std::time::Instant;

pub async fn execute(ctx: &Clients, envelope: &TaskEnvelope) -> ResultEnvelope {
    let m = metrics();
    let kind = envelope.task.kind();
    m.in_flight.inc();
    m.started.with_label_values(&[kind]).inc();
    let started = Instant::now();
    let (table, key, result) = match &envelope.task {
        Task::ExportChunk(chunk) => (
            chunk.table.display_name(),
            chunk.output.location.key(&chunk.output.key),
            crate::export::export_chunk_as(ctx, chunk, Some(&envelope.task_id)).await,
        ),
        Task::RestoreFile(file) => (
            file.table.display_name(),
            file.object.location.key(&file.object.key),
            crate::restore::restore_file(ctx, file).await,
        ),
    };
    let outcome = match result {
        Ok(stats) => {
            let labels = [table.as_str(), kind];
            m.rows.with_label_values(&labels).inc_by(stats.rows);
            m.bytes.with_label_values(&labels).inc_by(stats.bytes);
            Outcome::Succeeded {
                rows: stats.rows,
                bytes: stats.bytes,
                key,
                proof: stats.proof,
            }
        }
        Err(e) => {
            if let Some(conn) = crate::metrics::connection_error_kind(&e.message) {
                m.connection_errors.with_label_values(&[conn]).inc();
            }
            Outcome::Failed {
                error: e.message,
                retryable: e.retryable,
            }
        }
    };
    m.in_flight.dec();
    m.task_seconds
        .with_label_values(&[kind])
        .observe(started.elapsed().as_secs_f64());
    let label = match &outcome {
        Outcome::Succeeded { .. } => "succeeded",
        Outcome::Failed {
            retryable: true, ..
        } => "retryable",
        Outcome::Failed { .. } => "failed",
    };
    m.tasks.with_label_values(&[kind, label]).inc();
    match &outcome {
        Outcome::Succeeded { rows, bytes, .. } => tracing::info!(
            task = %envelope.task_id, attempt = envelope.attempt, rows, bytes,
            seconds = started.elapsed().as_secs_f64(), "task succeeded"
        ),
        Outcome::Failed { error, retryable } => tracing::warn!(
            task = %envelope.task_id, attempt = envelope.attempt, retryable, %error, "task failed"
        ),
    }
    ResultEnvelope {
        version: MESSAGE_VERSION,
        task_id: envelope.task_id.clone(),
        job_id: envelope.job_id.clone(),
        attempt: envelope.attempt,
        worker: ctx.worker_name().to_string(),
        outcome,
    }
}
