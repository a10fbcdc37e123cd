//! Read and trace routes, and the operations router they share with replay and the
//! OpenAPI document:
//!
//! | route | answer |
//! |---|---|
//! | `GET /events/{eventId}` | the stored envelope (404 when this tenant has no such event) |
//! | `GET /events?type=&from=&to=&limit=&cursor=` | `{"events", "cursor"}`: one type in a recordedAt window, from the `byType` index (never a scan), oldest first |
//! | `GET /correlations/{correlationId}` | the correlation's events as a causal tree, each with its handlers' outcome, duration and attempts |
//! | `POST /replay` | see [`crate::replay`] |
//! | `GET /openapi.json` | the OpenAPI 3 document of every route |
//!
//! All reads are tenant-scoped: every index key starts with the caller's tenant.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use aws_sdk_dynamodb::types::AttributeValue;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, Query, Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::{DateTime, Datelike, SubsecRound, Utc};
use lending_events::envelope::{format_recorded_at, format_time};
use lending_events::schema::is_safe_id;
use lending_events::{Domain, EventEnvelope};
use serde_json::{json, Value};

use crate::api::{path_params, tenant_of, ApiError, TenantSource};
use crate::config::Config;
use crate::error::{classify, AdapterError};
use crate::store::layout::{
    attr, batch_get_keys, batch_get_pks, corr_key, decode_event, index, index_keys, num_of,
    record_pk, s, str_of, type_key, Item, Read,
};

/// What the operations routes need: the table, the queues (replay) and the tenant source.
#[derive(Clone)]
pub struct Ops {
    pub dynamodb: aws_sdk_dynamodb::Client,
    pub sqs: aws_sdk_sqs::Client,
    pub config: Config,
    pub tenant_source: TenantSource,
}

/// The read, trace, replay and OpenAPI routes (merged into the ingest router).
pub fn router(ops: Ops) -> Router {
    Router::new()
        .route("/events/{event_id}", get(get_event))
        .route("/events", get(list_events))
        .route("/correlations/{correlation_id}", get(get_correlation))
        .route("/replay", post(crate::replay::post_replay))
        .route("/openapi.json", get(crate::openapi::serve))
        .with_state(Arc::new(ops))
}

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

/// A recordedAt window (inclusive) as the bounds of a `BETWEEN` on the stored text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Window {
    pub from: String,
    pub to: String,
}

impl Window {
    /// From optional `from` and `to` (RFC 3339); an open end takes every time. A window that
    /// ends before it starts is 400 on `to` (DynamoDB refuses a reversed `BETWEEN`).
    pub fn parse(from: Option<&str>, to: Option<&str>) -> Result<Window, ApiError> {
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
        // Stored times have a fixed width (`format_recorded_at`), so text order is time order.
        let window = Window {
            from: from.map_or_else(|| "0000".to_string(), |f| format_recorded_at(&f)),
            to: to.map_or_else(
                || "9999-12-31T23:59:59.999Z".to_string(),
                |t| format_recorded_at(&t),
            ),
        };
        // The forms above keep the text in time order; never let DynamoDB be the judge.
        if window.from > window.to {
            return Err(ApiError::bad(
                "to",
                "the window is reversed: to is before from",
            ));
        }
        Ok(window)
    }
}

async fn get_event(
    State(ops): State<Arc<Ops>>,
    path: Result<Path<String>, PathRejection>,
    req: Request,
) -> Result<Response, ApiError> {
    let tenant = tenant_of(req.headers(), req.extensions(), ops.tenant_source)?;
    let event_id = path_params(path)?;
    let id =
        uuid::Uuid::parse_str(&event_id).map_err(|_| ApiError::bad("eventId", "must be a UUID"))?;
    let store = crate::store::DynamoStore::new(ops.dynamodb.clone(), &ops.config.table);
    match store.get_event(&tenant, &id).await? {
        Some(e) => Ok(Json(e).into_response()),
        None => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("no event {id}"),
            None,
        )),
    }
}

/// A page of one event type in a recordedAt window (inclusive), oldest first.
pub struct TypePage {
    pub events: Vec<EventEnvelope>,
    pub last_key: Option<Item>,
}

/// Query the `byType` index: `typeKey = <tenant>#<type>`, `recordedAt BETWEEN from AND to`.
pub async fn events_by_type(
    ddb: &aws_sdk_dynamodb::Client,
    table: &str,
    tenant: &str,
    event_type: &str,
    window: &Window,
    limit: usize,
    start: Option<Item>,
) -> Result<TypePage, AdapterError> {
    let mut events = Vec::new();
    let mut start = start;
    // A Limit counts items read, so keep going until the page is full or the index ends.
    loop {
        let out = ddb
            .query()
            .table_name(table)
            .index_name(index::BY_TYPE)
            .key_condition_expression("typeKey = :k AND recordedAt BETWEEN :from AND :to")
            .expression_attribute_values(":k", s(type_key(tenant, event_type)))
            .expression_attribute_values(":from", s(&window.from))
            .expression_attribute_values(":to", s(&window.to))
            .limit((limit - events.len()) as i32)
            .set_exclusive_start_key(start)
            .send()
            .await
            .map_err(|e| classify("Query(byType)", e))?;
        for item in batch_get_keys(ddb, table, index_keys(out.items()), Read::Eventual).await? {
            events.push(decode_event(&item)?);
        }
        start = out.last_evaluated_key().cloned();
        if start.is_none() || events.len() >= limit {
            return Ok(TypePage {
                events,
                last_key: start,
            });
        }
    }
}

/// What a `byType` cursor is bound to: the tenant, the type and the window.
fn by_type_query<'a>(tenant: &'a str, event_type: &'a str, window: &'a Window) -> [&'a str; 5] {
    [index::BY_TYPE, tenant, event_type, &window.from, &window.to]
}

/// The start key inside a `byType` cursor. The signature already proves the server wrote
/// it for this query; the shape check keeps a key-schema change from reaching DynamoDB.
fn by_type_start(key: Item, type_key: &str) -> Result<Item, ApiError> {
    let expected: HashSet<&str> = [attr::PK, attr::SK, attr::TYPE_KEY, attr::RECORDED_AT].into();
    let keys: HashSet<&str> = key.keys().map(String::as_str).collect();
    if keys != expected || str_of(&key, attr::TYPE_KEY) != Some(type_key) {
        return Err(crate::cursor::invalid_cursor());
    }
    Ok(key)
}

async fn list_events(
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
    let window = Window::parse(
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
            by_type_start(key, &type_key(&tenant, event_type))
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

/// Every event of a correlation, from the `byCorrelation` index, in recordedAt order.
pub async fn correlation_events(
    ddb: &aws_sdk_dynamodb::Client,
    table: &str,
    tenant: &str,
    correlation: &str,
    max: usize,
) -> Result<Vec<EventEnvelope>, AdapterError> {
    let mut out = Vec::new();
    let mut start = None;
    loop {
        let res = ddb
            .query()
            .table_name(table)
            .index_name(index::BY_CORRELATION)
            .key_condition_expression("corrKey = :c")
            .expression_attribute_values(":c", s(corr_key(tenant, correlation)))
            .set_exclusive_start_key(start)
            .send()
            .await
            .map_err(|e| classify("Query(byCorrelation)", e))?;
        for item in batch_get_keys(ddb, table, index_keys(res.items()), Read::Eventual).await? {
            out.push(decode_event(&item)?);
        }
        start = res.last_evaluated_key().cloned();
        if start.is_none() || out.len() >= max {
            out.truncate(max);
            return Ok(out);
        }
    }
}

/// Handlers (name, domain) subscribed to an event type.
pub fn subscribers(event_type: &str) -> Vec<(&'static str, Domain)> {
    let mut hs: Vec<_> = lending_events::handlers::all()
        .into_iter()
        .filter(|h| h.subscriptions().contains(&event_type))
        .collect();
    hs.sort_by_key(|h| (h.domain(), h.priority()));
    hs.into_iter().map(|h| (h.name(), h.domain())).collect()
}

/// One handler's processing of one event, from its processing record (`PENDING` when
/// there is none yet).
pub fn handler_view(handler: &str, domain: Domain, record: Option<&Item>) -> Value {
    let Some(r) = record else {
        return json!({"handler": handler, "domain": domain, "status": "PENDING", "attempts": 0});
    };
    let mut v = json!({
        "handler": handler,
        "domain": domain,
        "status": str_of(r, "status").unwrap_or("UNKNOWN"),
        "attempts": num_of(r, "attempts").unwrap_or(0),
        "durationMs": num_of(r, "durationMs"),
        "completedAt": str_of(r, "completedAt"),
        "failures": num_of(r, "failures").unwrap_or(0),
    });
    if let Some(e) = str_of(r, "lastError") {
        v["lastError"] = json!(e);
        v["failureClass"] = json!(str_of(r, "failureClass"));
        v["lastFailureAt"] = json!(str_of(r, "lastFailureAt"));
    }
    if let Some(AttributeValue::L(log)) = r.get("log") {
        let entries: Vec<Value> = log
            .iter()
            .filter_map(|e| e.as_m().ok())
            .map(|m| {
                json!({
                    "outcome": str_of(m, "outcome"),
                    "attempt": num_of(m, "attempt"),
                    "durationMs": num_of(m, "durationMs"),
                    "at": str_of(m, "at"),
                    "error": str_of(m, "error"),
                })
            })
            .collect();
        v["log"] = json!(entries);
    }
    v
}

/// The correlation as a causal tree: roots are events without a cause inside the
/// correlation; children follow `causationId`, in recordedAt order.
pub async fn correlation_tree(
    ddb: &aws_sdk_dynamodb::Client,
    table: &str,
    tenant: &str,
    correlation: &str,
) -> Result<Option<Value>, AdapterError> {
    let events = correlation_events(ddb, table, tenant, correlation, 2000).await?;
    if events.is_empty() {
        return Ok(None);
    }
    let mut pks = Vec::new();
    for e in &events {
        for (h, _) in subscribers(&e.event_type) {
            pks.push(record_pk(tenant, &e.event_id.to_string(), h));
        }
    }
    let records = batch_get_pks(ddb, table, &pks, Read::Eventual).await?;
    let by_pk: HashMap<&str, &Item> = records
        .iter()
        .filter_map(|r| str_of(r, attr::PK).map(|pk| (pk, r)))
        .collect();
    let ids: HashSet<String> = events.iter().map(|e| e.event_id.to_string()).collect();
    let mut children: HashMap<Option<String>, Vec<&EventEnvelope>> = HashMap::new();
    for e in &events {
        let parent = e
            .metadata
            .causation_id
            .clone()
            .filter(|c| ids.contains(c) && *c != e.event_id.to_string());
        children.entry(parent).or_default().push(e);
    }
    for list in children.values_mut() {
        list.sort_by_key(|e| (e.recorded_at, e.aggregate_id.clone(), e.sequence));
    }
    fn node(
        e: &EventEnvelope,
        children: &HashMap<Option<String>, Vec<&EventEnvelope>>,
        by_pk: &HashMap<&str, &Item>,
        depth: usize,
    ) -> Value {
        let id = e.event_id.to_string();
        let handlers: Vec<Value> = subscribers(&e.event_type)
            .into_iter()
            .map(|(h, d)| {
                let pk = record_pk(&e.metadata.tenant_id, &id, h);
                handler_view(h, d, by_pk.get(pk.as_str()).copied())
            })
            .collect();
        let kids: Vec<Value> = if depth > 64 {
            Vec::new()
        } else {
            children
                .get(&Some(id.clone()))
                .map(|v| {
                    v.iter()
                        .map(|c| node(c, children, by_pk, depth + 1))
                        .collect()
                })
                .unwrap_or_default()
        };
        json!({"event": e, "handlers": handlers, "children": kids})
    }
    let roots: Vec<Value> = children
        .get(&None)
        .map(|v| v.iter().map(|e| node(e, &children, &by_pk, 0)).collect())
        .unwrap_or_default();
    Ok(Some(json!({
        "correlationId": correlation,
        "eventCount": events.len(),
        "tree": roots,
    })))
}

async fn get_correlation(
    State(ops): State<Arc<Ops>>,
    path: Result<Path<String>, PathRejection>,
    req: Request,
) -> Result<Response, ApiError> {
    let tenant = tenant_of(req.headers(), req.extensions(), ops.tenant_source)?;
    let correlation = path_params(path)?;
    if correlation.is_empty() || correlation.len() > 128 {
        return Err(ApiError::bad("correlationId", "must be 1-128 characters"));
    }
    match correlation_tree(&ops.dynamodb, &ops.config.table, &tenant, &correlation).await? {
        Some(tree) => Ok(Json(tree).into_response()),
        None => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("no events with correlationId {correlation}"),
            None,
        )),
    }
}

/// A trace tree as text: one line per event, and per handler either a line each (`compact`
/// false) or one bracketed summary (`compact` true). Used by `evctl trace` and the demo.
pub fn render_tree(nodes: &[Value], indent: &str, compact: bool, out: &mut String) {
    for (i, n) in nodes.iter().enumerate() {
        let last = i + 1 == nodes.len();
        let e = &n["event"];
        let id: String = e["eventId"]
            .as_str()
            .unwrap_or("?")
            .chars()
            .take(8)
            .collect();
        let agg = e["aggregateId"].as_str().unwrap_or("?");
        // Derived ids are UUIDs: their first 8 characters are enough on screen.
        let agg = match agg.get(..8) {
            Some(head) if agg.len() == 36 => head,
            _ => agg,
        };
        let mut head = format!(
            "{indent}{} {} {}/{} #{} ({id})",
            if last { "└─" } else { "├─" },
            e["eventType"].as_str().unwrap_or("?"),
            e["aggregateType"].as_str().unwrap_or("?"),
            agg,
            e["sequence"],
        );
        let child_indent = format!("{indent}{}", if last { "   " } else { "│  " });
        let handlers = n["handlers"].as_array().cloned().unwrap_or_default();
        if compact {
            let parts: Vec<String> = handlers
                .iter()
                .map(|h| {
                    let mark = match h["status"].as_str() {
                        Some("COMPLETED") => "✓",
                        Some("FAILED") => "✗",
                        _ => "…",
                    };
                    let d = h["durationMs"]
                        .as_u64()
                        .map(|d| format!(" {d}ms"))
                        .unwrap_or_default();
                    format!("{}{mark}{d}", h["handler"].as_str().unwrap_or("?"))
                })
                .collect();
            if !parts.is_empty() {
                head.push_str(&format!("  [{}]", parts.join(", ")));
            }
            out.push_str(&head);
            out.push('\n');
            for h in handlers
                .iter()
                .filter(|h| h["lastError"].is_string() && h["status"] != "COMPLETED")
            {
                let err: String = h["lastError"]
                    .as_str()
                    .unwrap_or("")
                    .chars()
                    .take(110)
                    .collect();
                out.push_str(&format!(
                    "{child_indent}  ✗ {}: {err}\n",
                    h["handler"].as_str().unwrap_or("?")
                ));
            }
        } else {
            out.push_str(&head);
            out.push('\n');
            for h in &handlers {
                let mut s = format!(
                    "{child_indent}· {:<20} {:<10}",
                    h["handler"].as_str().unwrap_or("?"),
                    h["status"].as_str().unwrap_or("?")
                );
                if let Some(d) = h["durationMs"].as_u64() {
                    s.push_str(&format!(" {d} ms"));
                }
                let attempts = h["attempts"].as_u64().unwrap_or(0);
                if attempts > 0 {
                    s.push_str(&format!(
                        ", {attempts} attempt{}",
                        if attempts == 1 { "" } else { "s" }
                    ));
                }
                if let Some(err) = h["lastError"].as_str() {
                    let err: String = err.chars().take(100).collect();
                    s.push_str(&format!(", last error: {err}"));
                }
                out.push_str(&s);
                out.push('\n');
            }
        }
        render_tree(
            n["children"].as_array().map(Vec::as_slice).unwrap_or(&[]),
            &child_indent,
            compact,
            out,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reversed_window_is_refused_on_to() {
        let e = Window::parse(
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
        let w =
            Window::parse(Some("2026-01-01T00:00:00Z"), Some("2026-01-01T00:00:00.5Z")).unwrap();
        assert_eq!(w.from, "2026-01-01T00:00:00.000Z");
        assert_eq!(w.to, "2026-01-01T00:00:00.500Z");
        for stored in ["2026-01-01T00:00:00.250Z", "2026-01-01T00:00:00.500Z"] {
            assert!(
                w.from.as_str() <= stored && stored <= w.to.as_str(),
                "{stored}"
            );
        }
        let open = Window::parse(Some("9999-12-31T23:59:59.999Z"), None).unwrap();
        assert!(open.from <= open.to);
        assert_eq!(
            Window::parse(None, Some("0000-01-01T00:00:00Z"))
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
            let e = Window::parse(from, to).unwrap_err();
            assert_eq!(e.field.as_deref(), Some(field), "{from:?} {to:?}");
        }
    }
}
