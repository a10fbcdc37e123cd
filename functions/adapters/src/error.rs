//! The adapters' one error type, and how AWS SDK errors map onto it.

use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use lending_events::CoreError;

#[derive(Debug, thiserror::Error)]
pub enum AdapterError {
    /// Invalid input or a business-rule rejection from the core.
    #[error(transparent)]
    Core(#[from] CoreError),
    /// The aggregate is not at the sequence the writer expected.
    #[error("sequence conflict on {stream}: expected {expected}, found {actual}")]
    SequenceConflict {
        stream: String,
        expected: u64,
        actual: u64,
    },
    /// Every attempt lost the race for the next sequence to other writers of the stream.
    #[error("{stream} is being appended to concurrently: {attempts} attempts lost the race to other writers; retry")]
    StreamContended { stream: String, attempts: u32 },
    /// An eventId was stored before with different content.
    #[error("{0}")]
    EventIdConflict(String),
    #[error("{0}")]
    NotFound(String),
    /// A stored item or message could not be decoded.
    #[error("undecodable: {0}")]
    Decode(String),
    /// Throttling, timeouts, 5xx: worth retrying.
    #[error("transient AWS error: {0}")]
    Transient(String),
    /// Any other AWS failure (bad request, missing resource, access denied).
    #[error("AWS error: {0}")]
    Aws(String),
    #[error("configuration: {0}")]
    Config(String),
}

impl AdapterError {
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            AdapterError::Transient(_)
                | AdapterError::SequenceConflict { .. }
                | AdapterError::StreamContended { .. }
        )
    }
}

const TRANSIENT_CODES: &[&str] = &[
    "ThrottlingException",
    "Throttling",
    "ProvisionedThroughputExceededException",
    "RequestLimitExceeded",
    "InternalServerError",
    "InternalFailure",
    "ServiceUnavailable",
    "TransactionInProgressException",
    "KMSThrottlingException",
];

/// Classify any SDK error: network, timeout and throttling are transient.
pub fn classify<E, R>(op: &str, err: SdkError<E, R>) -> AdapterError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    match &err {
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => {
            AdapterError::Transient(format!(
                "{op}: {}",
                aws_sdk_dynamodb::error::DisplayErrorContext(&err)
            ))
        }
        SdkError::ServiceError(se) => {
            let code = se.err().code().unwrap_or("Unknown");
            let msg = format!("{op}: {code}: {}", se.err().message().unwrap_or(""));
            if TRANSIENT_CODES.contains(&code) {
                AdapterError::Transient(msg)
            } else {
                AdapterError::Aws(msg)
            }
        }
        _ => AdapterError::Aws(format!(
            "{op}: {}",
            aws_sdk_dynamodb::error::DisplayErrorContext(&err)
        )),
    }
}
