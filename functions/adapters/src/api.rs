//! The HTTP API as one axum [`Router`].
//!
//! On Lambda, `lambda_http::run(router)` serves it behind API Gateway (REST v1 or HTTP API
//! v2 payloads alike); locally, `axum::serve` serves the very same router on port 3000.
//! Every error is one JSON shape: `{"error": {"code", "message", "field"}}`.

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, Query, Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::Utc;
use lending_events::catalog::Catalog;
use lending_events::envelope::{StreamId, WriteContext};
use lending_events::ingest::{parse_body_in, Limits};
use lending_events::schema::{is_safe_id, MAX_ID_LEN, MAX_TYPE_LEN};
use lending_events::{CoreError, ErrorCode};
use serde_json::{json, Value};
use uuid::Uuid;

use crate::auth::Principal;
use crate::error::AdapterError;
use crate::store::{Appended, EventStore};

/// Where the caller's tenant comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TenantSource {
    /// The API Gateway authorizer (JWT claim or Lambda authorizer context `tenantId`).
    Authorizer,
    /// The `X-Tenant-Id` header: local development only.
    Header,
}

pub struct Api<S> {
    pub store: S,
    pub limits: Limits,
    pub tenant_source: TenantSource,
    /// The event types ingest accepts: built-in plus custom ones.
    pub catalog: Catalog,
}

/// Build the router over any event store.
pub fn router<S: EventStore + 'static>(api: Api<S>) -> Router {
    Router::new()
        .route("/events", post(post_events::<S>))
        .route(
            "/aggregates/{aggregate_type}/{aggregate_id}/events",
            get(get_history::<S>),
        )
        .route(
            "/aggregates/{aggregate_type}/{aggregate_id}/state",
            get(get_state::<S>),
        )
        .fallback(|| async {
            ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such route", None)
        })
        .with_state(Arc::new(api))
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
}

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

/// The caller's tenant, from the authorizer on AWS or the header locally.
pub fn tenant_of(
    req_headers: &HeaderMap,
    extensions: &http::Extensions,
    source: TenantSource,
) -> Result<String, ApiError> {
    let tenant = match source {
        TenantSource::Header => req_headers
            .get("x-tenant-id")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string),
        TenantSource::Authorizer => authorizer_tenant(extensions),
    };
    match tenant {
        Some(t) if is_safe_id(&t, 64) => Ok(t),
        Some(_) => Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "tenant id is not a valid identifier",
            None,
        )),
        None => Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            match source {
                TenantSource::Header => "missing X-Tenant-Id header",
                TenantSource::Authorizer => "no tenantId in the authorizer context",
            },
            None,
        )),
    }
}

fn authorizer_tenant(ext: &http::Extensions) -> Option<String> {
    let auth = crate::auth::authorizer(ext)?;
    if let Some(Value::String(t)) = auth.fields.get("tenantId") {
        return Some(t.clone());
    }
    let claims = &auth.jwt.as_ref()?.claims;
    claims
        .get("tenantId")
        .or_else(|| claims.get("custom:tenantId"))
        .cloned()
}

fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| {
            v.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase()
        })
        .is_some_and(|m| {
            m == "application/json" || (m.starts_with("application/") && m.ends_with("+json"))
        })
}

async fn post_events<S: EventStore + 'static>(
    State(api): State<Arc<Api<S>>>,
    req: Request,
) -> Result<Response, ApiError> {
    let (parts, body) = req.into_parts();
    // Set by the scope middleware, which admitted the caller to this route.
    let principal = parts
        .extensions
        .get::<Principal>()
        .cloned()
        .ok_or_else(|| crate::auth::forbidden("no authenticated principal"))?;
    let tenant = principal.tenant.as_str();
    if !is_json(&parts.headers) {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "send the body as Content-Type: application/json",
            None,
        ));
    }
    let max = api.limits.max_body_bytes;
    let bytes: Bytes = axum::body::to_bytes(body, max + 1)
        .await
        .map_err(|_| ApiError::body_too_large(max))?;
    let now = Utc::now();
    let ctx = WriteContext::client(tenant, &principal.subject, now);
    let events = parse_body_in(&api.catalog, &bytes, &api.limits, &ctx, &mut Uuid::new_v4)?;
    if let Some((i, e)) = events
        .iter()
        .enumerate()
        .find(|(_, e)| !principal.may_write(&e.domain))
    {
        // Only on this error path: was it a batch (`events[i].eventType`) or one event?
        let batch =
            serde_json::from_slice::<Value>(&bytes).is_ok_and(|v| v.get("events").is_some());
        let field = if batch {
            format!("events[{i}].eventType")
        } else {
            "eventType".to_string()
        };
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            format!(
                "{} is a {} event: publishing it needs the scope events:write or events:write:{}",
                e.event_type, e.domain, e.domain
            ),
            Some(field),
        ));
    }
    let appended = api.store.append(events, now).await?;
    let status = match appended {
        Appended::Stored(_) => StatusCode::CREATED,
        Appended::AlreadyStored(_) => StatusCode::OK,
    };
    crate::metrics::Emf::new(&[("Function", "ingest")])
        .count(
            "EventsIngested",
            match &appended {
                Appended::Stored(e) => e.len() as u64,
                Appended::AlreadyStored(_) => 0,
            },
        )
        .emit();
    for e in appended.events() {
        tracing::info!(event_id = %e.event_id, event_type = %e.event_type, sequence = e.sequence,
            correlation_id = %e.metadata.correlation_id, replayed = (status == StatusCode::OK), "ingested");
    }
    Ok((status, Json(json!({ "events": appended.events() }))).into_response())
}

async fn get_history<S: EventStore + 'static>(
    State(api): State<Arc<Api<S>>>,
    path: Result<Path<(String, String)>, PathRejection>,
    query: Result<Query<HashMap<String, String>>, axum::extract::rejection::QueryRejection>,
    req: Request,
) -> Result<Response, ApiError> {
    let tenant = tenant_of(req.headers(), req.extensions(), api.tenant_source)?;
    let (aggregate_type, aggregate_id) = path_params(path)?;
    let stream = stream_of(&tenant, &aggregate_type, &aggregate_id)?;
    let Query(q) = query.map_err(|e| ApiError::bad("query", e.body_text()))?;
    let after = num_param(&q, "after", 0, u64::MAX)?;
    let limit = num_param(&q, "limit", 100, 1000)? as usize;
    if limit == 0 {
        return Err(ApiError::bad("limit", "must be from 1 to 1000"));
    }
    let page = api.store.read_stream(stream, after, None, limit).await?;
    Ok(Json(json!({"events": page.events, "next": page.next})).into_response())
}

/// `GET /aggregates/{aggregateType}/{aggregateId}/state`: the aggregate's whole history,
/// upcast and folded by the core: `{"aggregateType", "aggregateId", "version", "state"}`.
async fn get_state<S: EventStore + 'static>(
    State(api): State<Arc<Api<S>>>,
    path: Result<Path<(String, String)>, PathRejection>,
    req: Request,
) -> Result<Response, ApiError> {
    let tenant = tenant_of(req.headers(), req.extensions(), api.tenant_source)?;
    let (aggregate_type, aggregate_id) = path_params(path)?;
    let stream = stream_of(&tenant, &aggregate_type, &aggregate_id)?;
    let history = api.store.history(stream).await?;
    let doc = lending_events::state::document(history).ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("{aggregate_type} {aggregate_id} has no events"),
            None,
        )
    })?;
    Ok(Json(doc).into_response())
}

/// A route's path parameters; one that is not UTF-8 once percent-decoded (`%FF`) is 400
/// in the one error shape, not axum's plain-text rejection.
pub(crate) fn path_params<T>(path: Result<Path<T>, PathRejection>) -> Result<T, ApiError> {
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

fn num_param(
    q: &HashMap<String, String>,
    name: &str,
    default: u64,
    max: u64,
) -> Result<u64, ApiError> {
    match q.get(name) {
        None => Ok(default),
        Some(v) => {
            v.parse::<u64>().ok().filter(|n| *n <= max).ok_or_else(|| {
                ApiError::bad(name, format!("must be a whole number from 0 to {max}"))
            })
        }
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
