//! `GET /loans/{loanId}/payoff?on=YYYY-MM-DD`: the payoff quote of a loan on a date (see
//! [`lending_events::state::loan::PayoffQuote`]), folded from the loan's history.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;

use super::auth::tenant_of;
use super::error::ApiError;
use super::events::Api;
use super::request::{date_param, path_params, stream_of};
use crate::store::EventStore;

pub(crate) async fn get_payoff<S: EventStore + 'static>(
    State(api): State<Arc<Api<S>>>,
    path: Result<Path<String>, PathRejection>,
    query: Result<Query<HashMap<String, String>>, QueryRejection>,
    req: Request,
) -> Result<Response, ApiError> {
    let tenant = tenant_of(req.headers(), req.extensions(), api.tenant_source)?;
    let loan_id = path_params(path)?;
    let stream = stream_of(&tenant, "Loan", &loan_id).map_err(|_| {
        ApiError::bad(
            "loanId",
            "must be 1-128 characters from A-Z a-z 0-9 . _ : -",
        )
    })?;
    let Query(q) = query.map_err(|e| ApiError::bad("query", e.body_text()))?;
    let on =
        date_param(&q, "on")?.ok_or_else(|| ApiError::bad("on", "is required (YYYY-MM-DD)"))?;
    let history = api.store.history(stream).await?;
    match lending_events::state::payoff(history, on) {
        None => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("Loan {loan_id} has no events"),
            None,
        )),
        Some(Err(why)) => Err(ApiError::bad("loanId", why)),
        Some(Ok(quote)) => Ok(Json(quote).into_response()),
    }
}
