//! The one error shape of the HTTP API: `{"error": {"code", "message", "field"}}`, and the
//! single place an [`AdapterError`] or a core validation error becomes a status and a code.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use lending_events::{CoreError, ErrorCode};
use serde_json::{json, Value};

use crate::error::AdapterError;

/// An HTTP error in the one JSON shape.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    pub field: Option<String>,
}

impl ApiError {
    pub fn new(
        status: StatusCode,
        code: &'static str,
        message: impl Into<String>,
        field: Option<String>,
    ) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
            field,
        }
    }

    /// 413 `payload_too_large` for a body over `max` bytes.
    pub fn body_too_large(max: usize) -> Self {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            format!("request body is over {max} bytes"),
            None,
        )
    }

    /// 400 `validation_failed` on `field`.
    pub fn bad(field: &str, message: impl Into<String>) -> Self {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "validation_failed",
            message,
            Some(field.into()),
        )
    }

    /// 404 `not_found`.
    pub fn not_found(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::NOT_FOUND, "not_found", message, None)
    }
}

/// 405 in the one error shape (axum's own has an empty body) for a route that exists
/// with other methods.
pub async fn method_not_allowed(method: http::Method) -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        format!("this route does not answer {method}"),
        None,
    )
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut body = json!({"code": self.code, "message": self.message});
        if let Some(f) = self.field.filter(|f| !f.is_empty()) {
            body["field"] = Value::String(f);
        }
        (self.status, Json(json!({ "error": body }))).into_response()
    }
}

impl From<AdapterError> for ApiError {
    fn from(e: AdapterError) -> Self {
        match e {
            AdapterError::Core(CoreError::Invalid {
                code,
                message,
                field,
            }) => {
                let status = match code {
                    ErrorCode::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
                    ErrorCode::ProducerNotAllowed => StatusCode::FORBIDDEN,
                    _ => StatusCode::BAD_REQUEST,
                };
                ApiError::new(status, code.as_str(), message, field)
            }
            AdapterError::Core(CoreError::Rejected(m)) => {
                ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "rejected", m, None)
            }
            e @ AdapterError::SequenceConflict { .. } => ApiError::new(
                StatusCode::CONFLICT,
                "sequence_conflict",
                e.to_string(),
                Some("expectedSequence".into()),
            ),
            // Same status and code as a sequence conflict (clients retry both), no field: the
            // request did not name a sequence.
            e @ AdapterError::StreamContended { .. } => ApiError::new(
                StatusCode::CONFLICT,
                "sequence_conflict",
                e.to_string(),
                None,
            ),
            AdapterError::EventIdConflict(m) => ApiError::new(
                StatusCode::CONFLICT,
                "event_id_conflict",
                m,
                Some("eventId".into()),
            ),
            AdapterError::NotFound(m) => ApiError::new(StatusCode::NOT_FOUND, "not_found", m, None),
            e @ AdapterError::Transient(_) => {
                tracing::warn!(error = %e, "transient failure");
                ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "unavailable",
                    "the event store is busy; retry with backoff",
                    None,
                )
            }
            e => {
                tracing::error!(error = %e, "internal error");
                ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal",
                    "internal error; nothing was stored",
                    None,
                )
            }
        }
    }
}

impl From<CoreError> for ApiError {
    fn from(e: CoreError) -> Self {
        AdapterError::Core(e).into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn losing_every_append_race_is_a_retryable_409_that_says_so() {
        let e = AdapterError::StreamContended {
            stream: "acme#Loan#L-1".into(),
            attempts: 12,
        };
        assert!(e.is_transient());
        let api = ApiError::from(e);
        assert_eq!(api.status, StatusCode::CONFLICT);
        assert_eq!(api.code, "sequence_conflict");
        assert_eq!(api.field, None);
        assert!(api.message.contains("12 attempts"), "{}", api.message);
        assert!(!api.message.contains("expected 0"), "{}", api.message);
    }
}
