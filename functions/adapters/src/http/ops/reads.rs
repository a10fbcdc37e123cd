//! The read routes of single events and of one type in a time window:
//!
//! | route | answer |
//! |---|---|
//! | `GET /events/{eventId}` | the stored envelope (404 when this tenant has no such event) |
//! | `GET /events?type=&from=&to=&limit=&cursor=` | `{"events", "cursor"}`: one type in a recordedAt window, from the `byType` index (never a scan), oldest first |
//!
//! All reads are tenant-scoped: every index key starts with the caller's tenant.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use axum::extract::rejection::PathRejection;
use axum::extract::{Path, Query, Request, State};
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::{DateTime, Datelike, SubsecRound, Utc};
use lending_events::envelope::format_time;
use lending_events::schema::is_safe_id;
use serde_json::json;

use super::Ops;
use crate::http::auth::tenant_of;
use crate::http::cursor::{invalid_cursor, Key};
use crate::http::error::ApiError;
use crate::http::request::path_params;
use crate::store::indexes::{events_by_type, Window};
use crate::store::layout::{attr, index, str_of, type_key as type_key_of};
use crate::store::DynamoStore;

/// An RFC 3339 time, in UTC at the millisecond precision `recordedAt` is stored with.
fn time_param(field: &str, v: &str) -> Result<DateTime<Utc>, ApiError> {
    let t = DateTime::parse_from_rfc3339(v)
        .map_err(|_| ApiError::bad(field, "must be an RFC 3339 time, e.g. 2026-03-01T00:00:00Z"))?
        .with_timezone(&Utc);
    // Stored times are compared as text, which sorts right only for four-digit years.
    if !(0..=9999).contains(&t.year()) {
        return Err(ApiError::bad(
            field,
            "must fall in the years 0000 to 9999 (UTC)",
        ));
    }
    Ok(t.trunc_subsecs(3))
}

/// A recordedAt window (inclusive) from optional `from` and `to` (RFC 3339); an open end
/// takes every time. A window that ends before it starts is 400 on `to` (DynamoDB refuses
/// a reversed `BETWEEN`).
pub fn parse_window(from: Option<&str>, to: Option<&str>) -> Result<Window, ApiError> {
    let from = from.map(|v| time_param("from", v)).transpose()?;
    let to = to.map(|v| time_param("to", v)).transpose()?;
    if let (Some(f), Some(t)) = (from, to) {
        if t < f {
            return Err(ApiError::bad(
                "to",
                format!(
                    "the window is reversed: to ({}) is before from ({})",
                    format_time(&t),
                    format_time(&f)
                ),
            ));
        }
    }
    let window = Window::between(from.as_ref(), to.as_ref());
    // The stored forms keep the text in time order; never let DynamoDB be the judge.
    if window.is_reversed() {
        return Err(ApiError::bad(
            "to",
            "the window is reversed: to is before from",
        ));
    }
    Ok(window)
}

pub(crate) async fn get_event(
    State(ops): State<Arc<Ops>>,
    path: Result<Path<String>, PathRejection>,
    req: Request,
) -> Result<Response, ApiError> {
    let tenant = tenant_of(req.headers(), req.extensions(), ops.tenant_source)?;
    let event_id = path_params(path)?;
    let id =
        uuid::Uuid::parse_str(&event_id).map_err(|_| ApiError::bad("eventId", "must be a UUID"))?;
    let store = DynamoStore::new(ops.dynamodb.clone(), &ops.config.table);
    match store.get_event(&tenant, &id).await? {
        Some(e) => Ok(Json(e).into_response()),
        None => Err(ApiError::not_found(format!("no event {id}"))),
    }
}

/// What a `byType` cursor is bound to: the tenant, the type and the window.
fn by_type_query<'a>(tenant: &'a str, event_type: &'a str, window: &'a Window) -> [&'a str; 5] {
    [index::BY_TYPE, tenant, event_type, &window.from, &window.to]
}

/// The start key inside a `byType` cursor. The signature already proves the server wrote
/// it for this query; the shape check keeps a key-schema change from reaching DynamoDB.
fn by_type_start(key: Key, type_key: &str) -> Result<Key, ApiError> {
    let expected: HashSet<&str> = [attr::PK, attr::SK, attr::TYPE_KEY, attr::RECORDED_AT].into();
    let keys: HashSet<&str> = key.keys().map(String::as_str).collect();
    if keys != expected || str_of(&key, attr::TYPE_KEY) != Some(type_key) {
        return Err(invalid_cursor());
    }
    Ok(key)
}

pub(crate) async fn list_events(
    State(ops): State<Arc<Ops>>,
    query: Result<Query<HashMap<String, String>>, axum::extract::rejection::QueryRejection>,
    req: Request,
) -> Result<Response, ApiError> {
    let tenant = tenant_of(req.headers(), req.extensions(), ops.tenant_source)?;
    let Query(q) = query.map_err(|e| ApiError::bad("query", e.body_text()))?;
    let event_type = q
        .get("type")
        .filter(|t| !t.is_empty())
        .ok_or_else(|| ApiError::bad("type", "give the event type, e.g. ?type=Loan.Funded"))?;
    if !is_safe_id(event_type, 64) {
        return Err(ApiError::bad("type", "not an event type"));
    }
    let window = parse_window(
        q.get("from").map(String::as_str),
        q.get("to").map(String::as_str),
    )?;
    let limit = match q.get("limit") {
        None => 100,
        Some(v) => v
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=1000).contains(n))
            .ok_or_else(|| ApiError::bad("limit", "must be from 1 to 1000"))?,
    };
    let cursor_query = by_type_query(&tenant, event_type, &window);
    let start = q
        .get("cursor")
        .filter(|c| !c.is_empty())
        .map(|c| {
            let key = ops.config.cursor_key.open(&cursor_query, c)?;
            by_type_start(key, &type_key_of(&tenant, event_type))
        })
        .transpose()?;
    let page = events_by_type(
        &ops.dynamodb,
        &ops.config.table,
        &tenant,
        event_type,
        &window,
        limit,
        start,
    )
    .await?;
    let cursor = page
        .last_key
        .as_ref()
        .map(|k| ops.config.cursor_key.seal(&cursor_query, k));
    Ok(Json(json!({"events": page.events, "cursor": cursor})).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reversed_window_is_refused_on_to() {
        let e = parse_window(
            Some("2336-08-25T00:44:39.3-18:31"),
            Some("0738-01-17T04:43:02.21-09:53"),
        )
        .unwrap_err();
        assert_eq!(
            (e.code, e.field.as_deref()),
            ("validation_failed", Some("to"))
        );
        assert!(e.message.contains("reversed"), "{}", e.message);
    }

    #[test]
    fn windows_keep_their_bounds_in_text_order() {
        let w = parse_window(Some("2026-01-01T00:00:00Z"), Some("2026-01-01T00:00:00.5Z")).unwrap();
        assert_eq!(w.from, "2026-01-01T00:00:00.000Z");
        assert_eq!(w.to, "2026-01-01T00:00:00.500Z");
        for stored in ["2026-01-01T00:00:00.250Z", "2026-01-01T00:00:00.500Z"] {
            assert!(
                w.from.as_str() <= stored && stored <= w.to.as_str(),
                "{stored}"
            );
        }
        let open = parse_window(Some("9999-12-31T23:59:59.999Z"), None).unwrap();
        assert!(open.from <= open.to);
        assert_eq!(
            parse_window(None, Some("0000-01-01T00:00:00Z"))
                .unwrap()
                .from,
            "0000"
        );
        for (from, to, field) in [
            (Some("0000-01-01T00:00:00+01:00"), None, "from"),
            (None, Some("9999-12-31T23:00:00-05:00"), "to"),
            (Some("yesterday"), None, "from"),
            (
                Some("2026-01-01T00:00:01Z"),
                Some("2026-01-01T00:00:00.999Z"),
                "to",
            ),
        ] {
            let e = parse_window(from, to).unwrap_err();
            assert_eq!(e.field.as_deref(), Some(field), "{from:?} {to:?}");
        }
    }
}
