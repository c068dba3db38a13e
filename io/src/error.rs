//! The one error type a task reports, and the classification of PostgreSQL and S3 errors into
//! retryable (try again later, maybe elsewhere) and fatal (retrying cannot help).

use aws_sdk_s3::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use std::fmt;
use tokio_postgres::error::SqlState;

/// A failed task: one human-readable line plus whether the coordinator should retry it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskError {
    pub message: String,
    pub retryable: bool,
}

impl TaskError {
    pub fn retryable(msg: impl Into<String>) -> Self {
        Self {
            message: msg.into(),
            retryable: true,
        }
    }

    pub fn fatal(msg: impl Into<String>) -> Self {
        Self {
            message: msg.into(),
            retryable: false,
        }
    }

    /// Prefix the message with where it happened, keeping the classification.
    pub fn context(self, what: impl fmt::Display) -> Self {
        Self {
            message: format!("{what}: {}", self.message),
            retryable: self.retryable,
        }
    }
}

impl fmt::Display for TaskError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for TaskError {}

/// Classify a PostgreSQL error. Server errors go by SQLSTATE; anything without one is a
/// connection or protocol problem, which a later attempt (maybe on a fresh connection) can fix.
pub fn pg_error(err: &tokio_postgres::Error) -> TaskError {
    let Some(db) = err.as_db_error() else {
        let msg = format!("PostgreSQL connection error: {}", chain(err));
        // An untrusted or mismatched server certificate stays so on every retry.
        let tls_permanent = std::error::Error::source(err)
            .and_then(|s| s.downcast_ref::<crate::pg::tls::HandshakeError>())
            .is_some_and(|h| h.is_permanent());
        return if tls_permanent {
            TaskError::fatal(msg)
        } else {
            TaskError::retryable(msg)
        };
    };
    let mut msg = format!(
        "PostgreSQL {} {}: {}",
        db.severity(),
        db.code().code(),
        db.message()
    );
    if let Some(detail) = db.detail() {
        msg.push_str(&format!(" (detail: {detail})"));
    }
    if let Some(hint) = db.hint() {
        msg.push_str(&format!(" (hint: {hint})"));
    }
    if sqlstate_is_retryable(db.code()) {
        TaskError::retryable(msg)
    } else {
        TaskError::fatal(msg)
    }
}

/// Transient conditions: connection loss, conflicts with recovery or other transactions,
/// cancellation (statement_timeout, a DBA) and shutdowns, resource exhaustion.
fn sqlstate_is_retryable(code: &SqlState) -> bool {
    let c = code.code();
    // Class 08 connection exception, 40 transaction rollback (40001 serialization failure,
    // 40P01 deadlock), 53 insufficient resources (too many connections, disk full), 58 system
    // error (I/O), XX internal error.
    if ["08", "40", "53", "58", "XX"]
        .iter()
        .any(|class| c.starts_with(class))
    {
        return true;
    }
    // 57014 query_canceled, 57P01..57P03 admin/crash shutdown and cannot_connect_now,
    // 55P03 lock_not_available.
    matches!(c, "57014" | "57P01" | "57P02" | "57P03" | "55P03")
}

/// Classify a pool checkout failure.
pub fn pool_error(err: &deadpool_postgres::PoolError) -> TaskError {
    use deadpool_postgres::PoolError;
    match err {
        PoolError::Backend(e) => pg_error(e),
        PoolError::Timeout(_) => TaskError::retryable(format!("PostgreSQL pool: {err}")),
        other => TaskError::retryable(format!("PostgreSQL pool: {other}")),
    }
}

/// S3 error codes that retrying cannot fix: wrong bucket, wrong credentials, bad request.
const S3_FATAL_CODES: &[&str] = &[
    "NoSuchBucket",
    "AccessDenied",
    "AllAccessDisabled",
    "InvalidAccessKeyId",
    "SignatureDoesNotMatch",
    "InvalidBucketName",
    "AccountProblem",
    "EntityTooSmall",
    "EntityTooLarge",
    "InvalidPart",
    "InvalidPartOrder",
    "InvalidArgument",
    "KMS.DisabledException",
];

/// S3 error codes that are transient even when the status code says otherwise.
const S3_RETRYABLE_CODES: &[&str] = &[
    // The body arrived damaged (its checksum did not match): sending it again can help.
    "BadDigest",
    "SlowDown",
    "Throttling",
    "ThrottlingException",
    "RequestTimeout",
    "RequestTimeTooSkewed",
    "InternalError",
    "ServiceUnavailable",
    "OperationAborted",
    "RequestLimitExceeded",
    // The multipart upload is gone: aborted meanwhile (a lifecycle rule), or completed by an
    // earlier attempt of the same CompleteMultipartUpload whose response was lost. Either
    // way a new attempt of the chunk starts a new upload.
    "NoSuchUpload",
];

/// Classify an S3 SDK error. `op` names the operation (e.g. "UploadPart").
pub fn s3_error<E>(op: &str, err: &SdkError<E, aws_sdk_s3::config::http::HttpResponse>) -> TaskError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    match err {
        SdkError::ServiceError(service) => {
            let status = service.raw().status().as_u16();
            let code = err.code().unwrap_or("");
            let message = err.message().unwrap_or("");
            let text = format!(
                "S3 {op} failed: {} (HTTP {status}){}",
                if code.is_empty() { "error" } else { code },
                if message.is_empty() {
                    String::new()
                } else {
                    format!(": {message}")
                }
            );
            let retryable = if S3_FATAL_CODES.contains(&code) {
                false
            } else if S3_RETRYABLE_CODES.contains(&code) {
                true
            } else {
                status >= 500 || status == 408 || status == 429
            };
            TaskError {
                message: text,
                retryable,
            }
        }
        SdkError::ConstructionFailure(_) => TaskError::fatal(format!(
            "S3 {op} request could not be built: {}",
            DisplayErrorContext(err)
        )),
        // Timeouts, connection failures, unparseable responses: transient.
        _ => TaskError::retryable(format!("S3 {op} failed: {}", DisplayErrorContext(err))),
    }
}

/// An I/O error on a local file (file:// outputs): retryable unless it is about permissions or
/// a path that cannot exist.
pub fn io_error(what: impl fmt::Display, err: &std::io::Error) -> TaskError {
    use std::io::ErrorKind;
    let msg = format!("{what}: {err}");
    match err.kind() {
        ErrorKind::PermissionDenied
        | ErrorKind::InvalidInput
        | ErrorKind::InvalidFilename
        | ErrorKind::NotADirectory
        | ErrorKind::IsADirectory
        | ErrorKind::ReadOnlyFilesystem => TaskError::fatal(msg),
        _ => TaskError::retryable(msg),
    }
}

/// An error and its sources on one line: tokio-postgres and lapin put the useful part in
/// `source()`.
pub fn chain(err: &dyn std::error::Error) -> String {
    let mut out = err.to_string();
    let mut source = err.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = s.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_sqlstates() {
        for code in [
            "40001", "40P01", "57014", "57P01", "57P02", "57P03", "08006", "53300",
        ] {
            assert!(sqlstate_is_retryable(&SqlState::from_code(code)), "{code}");
        }
        for code in [
            "42P01", "42703", "42501", "22023", "28P01", "3D000", "25006",
        ] {
            assert!(!sqlstate_is_retryable(&SqlState::from_code(code)), "{code}");
        }
    }

    #[test]
    fn classifies_s3_errors() {
        use aws_sdk_s3::config::http::HttpResponse;
        use aws_sdk_s3::error::ErrorMetadata;
        use aws_sdk_s3::operation::put_object::PutObjectError;
        use aws_sdk_s3::primitives::SdkBody;
        let err = |status: u16, code: &str| {
            let meta = ErrorMetadata::builder().code(code).message("msg").build();
            let raw = HttpResponse::new(status.try_into().unwrap(), SdkBody::empty());
            s3_error(
                "PutObject",
                &SdkError::service_error(PutObjectError::generic(meta), raw),
            )
        };
        let e = err(404, "NoSuchBucket");
        assert!(!e.retryable);
        assert_eq!(
            e.message,
            "S3 PutObject failed: NoSuchBucket (HTTP 404): msg"
        );
        assert!(!err(403, "AccessDenied").retryable);
        assert!(!err(400, "EntityTooSmall").retryable);
        assert!(!err(400, "SomethingElse").retryable);
        assert!(err(503, "SlowDown").retryable);
        assert!(err(500, "InternalError").retryable);
        assert!(err(502, "").retryable);
        assert!(err(429, "").retryable);
        assert!(err(400, "RequestTimeout").retryable);
        assert!(err(404, "NoSuchUpload").retryable);
        let timeout: SdkError<PutObjectError, HttpResponse> = SdkError::timeout_error("slow");
        assert!(s3_error("PutObject", &timeout).retryable);
    }

    #[test]
    fn context_keeps_classification() {
        let e = TaskError::fatal("boom").context("export public.t");
        assert_eq!(e.to_string(), "export public.t: boom");
        assert!(!e.retryable);
        assert!(TaskError::retryable("x").context("y").retryable);
    }
}
