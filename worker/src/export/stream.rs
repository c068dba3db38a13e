//! The export read loop, the same for every format:
//!
//! ```text
//! COPY stream → a batch of buffered messages (up to BATCH_BYTES) → encoder → parts → sink
//! ```
//!
//! It waits on PostgreSQL only when no message is buffered, hands parts to the sink after each
//! batch (whose window gives the backpressure), and on any error leaves the connection in a
//! state the pool can trust: rolled back when the server ended the COPY, closed when it may
//! still be streaming.

use super::encoder::FormatEncoder;
use super::source;
use bytes::Bytes;
use fleet_io::clients::Clients;
use fleet_io::error::{pg_error, TaskError};
use fleet_io::sink::ObjectWriter;
use futures::Stream;
use protocol::proof::RowFingerprint;
use protocol::ExportChunk;
use std::future::poll_fn;
use std::pin::{pin, Pin};
use std::task::Poll;
use std::time::Instant;

/// Stop draining already-buffered COPY data after this much: hands parts to the sink sooner
/// and bounds the CPU time between awaits (gzip runs inline at ~70 MB/s, so ~4 ms).
const BATCH_BYTES: usize = 256 * 1024;

/// Stream the chunk through `encoder` into `writer` (all parts written, not yet finished);
/// returns the row count and the fingerprint of the rows as the source sent them.
pub(super) async fn stream_chunk(
    ctx: &Clients,
    task: &ExportChunk,
    query: &str,
    mut encoder: FormatEncoder,
    writer: &mut ObjectWriter,
) -> Result<(u64, RowFingerprint), TaskError> {
    let mut session = source::begin(ctx, task).await?;
    if let Some((statements, what)) = encoder.session_settings() {
        session.setup(statements, what).await?;
    }
    let stream = match session.client().copy_out(query).await {
        Ok(s) => s,
        Err(e) => {
            session.rollback().await;
            return Err(pg_error(&e));
        }
    };
    let mut stream = pin!(stream);
    let mut parts = Vec::new();
    let mut fingerprint = RowFingerprint::default();
    loop {
        let waited = Instant::now();
        let batch = read_batch(stream.as_mut(), &mut encoder, &mut fingerprint).await;
        crate::metrics::phase("export", "source", waited);
        let ended = match batch {
            Ok(ended) => ended,
            Err(ReadError::Pg(e)) => {
                // The server ended the COPY with an error: the connection itself is fine.
                session.rollback().await;
                return Err(pg_error(&e));
            }
            Err(ReadError::Data(e)) => {
                session.discard();
                return Err(e);
            }
        };
        let waited = Instant::now();
        let emitted = emit_parts(&mut encoder, ended, &mut parts, writer).await;
        crate::metrics::phase("export", "upload", waited);
        if let Err(e) = emitted {
            // The COPY may still be streaming; closing the connection is cheaper than
            // draining the rest of the chunk just to return it to the pool.
            session.discard();
            return Err(e);
        }
        if ended {
            break;
        }
    }
    let rows = match encoder.end_of_input() {
        Ok(rows) => rows,
        Err(e) => {
            session.discard();
            return Err(e);
        }
    };
    session.commit().await?;
    for part in encoder.finish().await? {
        writer.write_part(part).await?;
    }
    Ok((rows, fingerprint))
}

enum ReadError {
    /// The server ended the COPY with an error.
    Pg(tokio_postgres::Error),
    /// The data cannot be encoded.
    Data(TaskError),
}

/// Feed every COPY message that is already buffered (up to `BATCH_BYTES`) to the encoder and
/// the fingerprint (one message is one row), waiting only when none is; stop early when the
/// encoder is full. Returns true at the end of the COPY.
async fn read_batch<S>(
    mut stream: Pin<&mut S>,
    encoder: &mut FormatEncoder,
    fingerprint: &mut RowFingerprint,
) -> Result<bool, ReadError>
where
    S: Stream<Item = Result<Bytes, tokio_postgres::Error>>,
{
    if encoder.is_full() {
        return Ok(false);
    }
    let mut taken = 0usize;
    poll_fn(|cx| loop {
        match stream.as_mut().poll_next(cx) {
            Poll::Ready(Some(Ok(data))) => {
                taken += data.len();
                fingerprint.add_row(&data);
                encoder.feed(data).map_err(ReadError::Data)?;
                if encoder.is_full() || taken >= BATCH_BYTES {
                    return Poll::Ready(Ok(false));
                }
            }
            Poll::Ready(Some(Err(e))) => return Poll::Ready(Err(ReadError::Pg(e))),
            Poll::Ready(None) => return Poll::Ready(Ok(true)),
            Poll::Pending if taken > 0 => return Poll::Ready(Ok(false)),
            Poll::Pending => return Poll::Pending,
        }
    })
    .await
}

/// Take the encoder's finished parts and hand them to the sink.
async fn emit_parts(
    encoder: &mut FormatEncoder,
    ended: bool,
    parts: &mut Vec<Bytes>,
    writer: &mut ObjectWriter,
) -> Result<(), TaskError> {
    encoder.take_parts(ended, parts).await?;
    for part in parts.drain(..) {
        writer.write_part(part).await?;
    }
    Ok(())
}
