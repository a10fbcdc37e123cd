//! The one error type of the core. Every rule violation carries a stable machine code, a
//! human message and, where it applies, the JSON path of the offending field, so the HTTP
//! layer can answer `{"error": {"code", "message", "field"}}` without guessing.

use std::fmt;

/// Stable error codes; they are part of the HTTP contract.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    /// The body is not JSON, or not the expected shape.
    MalformedJson,
    /// A field is missing or has a bad value.
    ValidationFailed,
    /// The event type is not in the catalog.
    UnknownEventType,
    /// The aggregate named in the envelope is not the one the catalog fixes.
    AggregateMismatch,
    /// An event or request exceeds a size limit.
    TooLarge,
    /// The writer is not a producer of the event type (a handler-owned type sent by a
    /// client, or a handler appending another handler's decision).
    ProducerNotAllowed,
}

impl ErrorCode {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::MalformedJson => "malformed_json",
            ErrorCode::ValidationFailed => "validation_failed",
            ErrorCode::UnknownEventType => "unknown_event_type",
            ErrorCode::AggregateMismatch => "aggregate_mismatch",
            ErrorCode::TooLarge => "payload_too_large",
            ErrorCode::ProducerNotAllowed => "producer_not_allowed",
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CoreError {
    /// The input breaks a rule of the envelope, the catalog or a payload schema.
    #[error("{message}")]
    Invalid {
        code: ErrorCode,
        message: String,
        field: Option<String>,
    },
    /// A domain handler refused an event on a business rule. Not retried.
    #[error("rejected: {0}")]
    Rejected(String),
    /// Stored data that does not decode as what wrote it (a damaged snapshot part).
    #[error("stored {what}: {problem}")]
    Corrupt {
        what: &'static str,
        problem: &'static str,
    },
}

impl CoreError {
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        CoreError::Invalid {
            code: ErrorCode::ValidationFailed,
            message: message.into(),
            field: Some(field.into()),
        }
    }

    pub fn with_code(code: ErrorCode, field: Option<String>, message: impl Into<String>) -> Self {
        CoreError::Invalid {
            code,
            message: message.into(),
            field,
        }
    }

    /// Prefix the field path, e.g. `payload.amount` becomes `events[2].payload.amount`.
    pub fn at(self, prefix: &str) -> Self {
        match self {
            CoreError::Invalid {
                code,
                message,
                field,
            } => CoreError::Invalid {
                code,
                message,
                field: Some(match field {
                    Some(f) if f.is_empty() => prefix.to_string(),
                    Some(f) if f.starts_with('[') => format!("{prefix}{f}"),
                    Some(f) => format!("{prefix}.{f}"),
                    None => prefix.to_string(),
                }),
            },
            other => other,
        }
    }
}
