//! Reading a request: path parameters, dates in the query, small JSON bodies and aggregate streams, each
//! refused in the one error shape rather than axum's plain-text rejections.

use std::collections::HashMap;

use axum::body::Bytes;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, Request};
use axum::http::StatusCode;
use lending_events::envelope::StreamId;
use lending_events::schema::is_safe_id;
use lending_events::schema::{MAX_ID_LEN, MAX_TYPE_LEN};

use super::error::ApiError;

/// A small JSON body of an operator route: 413 over `max` bytes, 400 `malformed_json` saying
/// what was `expected` when it does not decode.
pub async fn json_body<T: serde::de::DeserializeOwned>(
    req: Request,
    max: usize,
    expected: &str,
) -> Result<T, ApiError> {
    let bytes: Bytes = axum::body::to_bytes(req.into_body(), max)
        .await
        .map_err(|_| ApiError::body_too_large(max))?;
    serde_json::from_slice(&bytes).map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "malformed_json",
            format!("expected {expected}: {e}"),
            None,
        )
    })
}

/// A route's path parameters; one that is not UTF-8 once percent-decoded (`%FF`) is 400
/// in the one error shape, not axum's plain-text rejection.
pub fn path_params<T>(path: Result<Path<T>, PathRejection>) -> Result<T, ApiError> {
    path.map(|Path(p)| p).map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "validation_failed",
            format!("path parameter: {}", e.body_text()),
            Some("path".into()),
        )
    })
}

pub fn stream_of<'a>(
    tenant: &'a str,
    aggregate_type: &'a str,
    aggregate_id: &'a str,
) -> Result<StreamId<'a>, ApiError> {
    if !is_safe_id(aggregate_type, MAX_TYPE_LEN) {
        return Err(ApiError::bad(
            "aggregateType",
            "must be 1-64 characters from A-Z a-z 0-9 . _ : -",
        ));
    }
    if !is_safe_id(aggregate_id, MAX_ID_LEN) {
        return Err(ApiError::bad(
            "aggregateId",
            "must be 1-128 characters from A-Z a-z 0-9 . _ : -",
        ));
    }
    Ok(StreamId {
        tenant_id: tenant,
        aggregate_type,
        aggregate_id,
    })
}

/// A `YYYY-MM-DD` query parameter; 400 with the parameter as `field` when it is not one.
pub(crate) fn date_param(
    q: &HashMap<String, String>,
    name: &str,
) -> Result<Option<chrono::NaiveDate>, ApiError> {
    q.get(name)
        .map(|d| {
            chrono::NaiveDate::parse_from_str(d, "%Y-%m-%d")
                .map_err(|_| ApiError::bad(name, "must be a date YYYY-MM-DD"))
        })
        .transpose()
}
