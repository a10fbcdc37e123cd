//! The handler routes (scope `ops:handlers`): handler switches are platform-wide and
//! recorded through [`crate::operator::switch_handler`].
//!
//! | route | answer |
//! |---|---|
//! | `GET /handlers` | `{"handlers": [{"handler", "domain", "enabled", "subscriptions"}]}` |
//! | `PUT /handlers/{handler}` | body `{"enabled": bool}`; `{"handler", "enabled"}` |

use std::sync::Arc;

use axum::extract::{Path, Request, State};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::json;

use super::Ops;
use crate::http::auth::admitted;
use crate::http::error::ApiError;
use crate::http::request::json_body;
use crate::ledger::{DynamoLedger, Ledger};
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
