//! `GET /correlations/{correlationId}`: the correlation's events as a causal tree, each
//! with its handlers' outcome, duration and attempts. The answer is data; `evctl trace`
//! draws it for people.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use aws_sdk_dynamodb::types::AttributeValue;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, Request, State};
use axum::response::{IntoResponse, Response};
use axum::Json;
use lending_events::{Domain, EventEnvelope};
use serde_json::{json, Value};

use super::Ops;
use crate::error::AdapterError;
use crate::http::auth::tenant_of;
use crate::http::error::ApiError;
use crate::http::request::path_params;
use crate::store::indexes::correlation_events;
use crate::store::layout::{attr, batch_get_pks, num_of, record_pk, str_of, Item, Read};
use crate::topology::subscribers;

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
/// correlation; children follow `causationId`, in recordedAt order. Each node has its
/// handlers' outcomes and its deliveries to subscriptions.
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
    let mut roots: Vec<Value> = children
        .get(&None)
        .map(|v| v.iter().map(|e| node(e, &children, &by_pk, 0)).collect())
        .unwrap_or_default();
    // Deliveries to subscriptions, beside the handlers (one Query per event).
    let mut deliveries: HashMap<String, Vec<Value>> = HashMap::new();
    for e in &events {
        let found =
            crate::subscriptions::deliverylog::deliveries_of_event(ddb, table, tenant, &e.event_id)
                .await?;
        if !found.is_empty() {
            deliveries.insert(e.event_id.to_string(), found);
        }
    }
    fn attach(node: &mut Value, deliveries: &HashMap<String, Vec<Value>>) {
        let id = node["event"]["eventId"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        node["deliveries"] = json!(deliveries.get(&id).cloned().unwrap_or_default());
        if let Some(kids) = node["children"].as_array_mut() {
            for k in kids {
                attach(k, deliveries);
            }
        }
    }
    for r in &mut roots {
        attach(r, &deliveries);
    }
    Ok(Some(json!({
        "correlationId": correlation,
        "eventCount": events.len(),
        "tree": roots,
    })))
}

pub(crate) async fn get_correlation(
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
        None => Err(ApiError::not_found(format!(
            "no events with correlationId {correlation}"
        ))),
    }
}
