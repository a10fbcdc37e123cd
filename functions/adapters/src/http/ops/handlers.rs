//! The handler routes (scope `ops:handlers`): handler switches are platform-wide and
//! recorded through [`crate::operator::switch_handler`].
//!
//! | route | answer |
//! |---|---|
//! | `GET /handlers` | `{"handlers": [{"handler", "domain", "enabled", "subscriptions"}]}` |
//! | `PUT /handlers/{handler}` | body `{"enabled": bool}`; `{"handler", "enabled"}` |
//! | `GET /handlers/{handler}/stats?days=N&day=YYYY-MM-DD` | the handler's daily statistics summed over the days ([`crate::operator::stats`]) and `bucketBoundsMs` |

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::{NaiveDate, Utc};
use serde::Deserialize;
use serde_json::json;

use super::Ops;
use crate::http::auth::admitted;
use crate::http::error::ApiError;
use crate::http::request::{json_body, path_params};
use crate::ledger::DURATION_BUCKETS_MS;
use crate::ledger::{DynamoLedger, Ledger};
use crate::operator::stats::handler_stats;
use crate::operator::{switch_handler, Actor};
use crate::store::DynamoStore;

pub(crate) async fn get_handlers(
    State(ops): State<Arc<Ops>>,
    req: Request,
) -> Result<Response, ApiError> {
    admitted(&req)?;
    let ledger = DynamoLedger::new(ops.dynamodb.clone(), &ops.config.table);
    let mut rows = Vec::new();
    for h in lending_events::handlers::all() {
        let enabled = ledger.enabled(h.name()).await?;
        rows.push(
            json!({"handler": h.name(), "domain": h.domain(), "enabled": enabled,
            "subscriptions": h.subscriptions()}),
        );
    }
    Ok(Json(json!({ "handlers": rows })).into_response())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Switch {
    enabled: bool,
}

pub(crate) async fn put_handler(
    State(ops): State<Arc<Ops>>,
    Path(handler): Path<String>,
    req: Request,
) -> Result<Response, ApiError> {
    let p = admitted(&req)?;
    let Some(h) = lending_events::handlers::all()
        .into_iter()
        .find(|h| h.name() == handler)
    else {
        return Err(ApiError::not_found(format!("no handler named {handler:?}")));
    };
    let s: Switch = json_body(req, 4096, "{\"enabled\": true|false}").await?;
    let ledger = DynamoLedger::new(ops.dynamodb.clone(), &ops.config.table);
    let store = DynamoStore::new(ops.dynamodb.clone(), &ops.config.table);
    let actor = Actor {
        tenant: Some(&p.tenant),
        principal: &p.subject,
    };
    switch_handler(&ledger, &store, actor, h.name(), s.enabled).await?;
    Ok(Json(json!({"handler": h.name(), "enabled": s.enabled})).into_response())
}

/// `{..HandlerStats, "bucketBoundsMs"}` of the `days` (1-90, default 7) ending with `day`
/// (default today, UTC), as `evctl handler stats`.
pub(crate) async fn get_stats(
    State(ops): State<Arc<Ops>>,
    path: Result<Path<String>, PathRejection>,
    query: Result<Query<HashMap<String, String>>, QueryRejection>,
    req: Request,
) -> Result<Response, ApiError> {
    admitted(&req)?;
    let handler = path_params(path)?;
    if !lending_events::handlers::all()
        .iter()
        .any(|h| h.name() == handler)
    {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("no handler named {handler:?}"),
            None,
        ));
    }
    let Query(q) = query.map_err(|e| ApiError::bad("query", e.body_text()))?;
    let days = match q.get("days") {
        None => 7,
        Some(v) => v
            .parse::<u32>()
            .ok()
            .filter(|d| (1..=90).contains(d))
            .ok_or_else(|| ApiError::bad("days", "must be from 1 to 90"))?,
    };
    let last = match q.get("day") {
        None => Utc::now().date_naive(),
        Some(v) => NaiveDate::parse_from_str(v, "%Y-%m-%d")
            .map_err(|_| ApiError::bad("day", "must be a date, YYYY-MM-DD"))?,
    };
    let stats = handler_stats(&ops.dynamodb, &ops.config.table, &handler, last, days).await?;
    let mut doc = serde_json::to_value(&stats)
        .map_err(|e| ApiError::from(crate::error::AdapterError::Decode(e.to_string())))?;
    doc["bucketBoundsMs"] = json!(DURATION_BUCKETS_MS);
    Ok(Json(doc).into_response())
}
