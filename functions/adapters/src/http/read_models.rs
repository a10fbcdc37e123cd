//! The read-model routes: lists and totals from the query items the projection keeps
//! ([`crate::store::read_models`]), and their rebuild from history.
//!
//! | route | scope | answer |
//! |---|---|---|
//! | `GET /loans?status=&borrowerId=&fundId=&delinquent=true&limit=&cursor=` | `events:read` | `{"loans": [summary...], "cursor"}` in loanId order, through one index per access pattern |
//! | `GET /funds/{fundId}/portfolio` | `events:read` | the fund's totals (exact decimal text) |
//! | `POST /projections/{name}/rebuild` | `ops:replay` | `200 {"projection", "loans", "written", "opsEventId"}`; recorded as `Ops.ProjectionRebuilt`. With `Prefer: respond-async` (or when the inline budget runs out): `202`, `Location` of the job, the job's view |
//! | `GET /projections/{name}/rebuilds/{jobId}` | `ops:replay` | the job's view: `status` (`RUNNING`, `COMPLETED`, `FAILED`), `loans`, `written`, `pages`, `startedAt`, `finishedAt`, `error` |
//!
//! A rebuild is a job of bounded steps ([`crate::operator::rebuild`]); the synchronous form
//! runs the same steps inline.
//!
//! Everything is tenant-scoped: every index key starts with the caller's tenant.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use lending_events::projections::{PROJECTIONS, STATUSES};
use lending_events::schema::is_safe_id;
use serde_json::json;

use super::ops::Ops;
use crate::http::auth::{admitted, tenant_of};
use crate::http::cursor::{invalid_cursor, Key};
use crate::http::error::ApiError;
use crate::http::request::path_params;
use crate::operator::rebuild::{start_job, DynamoRebuild, RebuildJob, RebuildPort, RebuildQueue};
use crate::operator::{rebuild::fail_job, rebuild_projection};
use crate::store::layout::{attr, str_of};
use crate::store::read_models::{fund_portfolio, list_loans, LoanFilter};
use crate::store::DynamoStore;

/// The query parameters `GET /loans` knows; any other is refused by name.
const LOAN_PARAMS: &[&str] = &[
    "status",
    "borrowerId",
    "fundId",
    "delinquent",
    "limit",
    "cursor",
];

fn id_param(q: &HashMap<String, String>, field: &str) -> Result<Option<String>, ApiError> {
    match q.get(field) {
        None => Ok(None),
        Some(v) if is_safe_id(v, 128) => Ok(Some(v.clone())),
        Some(_) => Err(ApiError::bad(
            field,
            "must be an id of 1 to 128 characters (A-Z a-z 0-9 . _ : -)",
        )),
    }
}

/// The filter of a `GET /loans` query, or a 400 naming the parameter at fault.
pub fn parse_loan_filter(q: &HashMap<String, String>) -> Result<(LoanFilter, usize), ApiError> {
    let mut unknown: Vec<&String> = q
        .keys()
        .filter(|k| !LOAN_PARAMS.contains(&k.as_str()))
        .collect();
    unknown.sort();
    if let Some(k) = unknown.first() {
        return Err(ApiError::bad(
            k,
            format!("unknown parameter; known: {}", LOAN_PARAMS.join(", ")),
        ));
    }
    let status = match q.get("status") {
        None => None,
        Some(s) if STATUSES.contains(&s.as_str()) => Some(s.clone()),
        Some(_) => {
            return Err(ApiError::bad(
                "status",
                format!("must be one of {}", STATUSES.join(", ")),
            ))
        }
    };
    let delinquent = match q.get("delinquent").map(String::as_str) {
        None | Some("false") => false,
        Some("true") => true,
        Some(_) => return Err(ApiError::bad("delinquent", "must be true or false")),
    };
    let limit = match q.get("limit") {
        None => 100,
        Some(v) => v
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=1000).contains(n))
            .ok_or_else(|| ApiError::bad("limit", "must be from 1 to 1000"))?,
    };
    Ok((
        LoanFilter {
            status,
            borrower_id: id_param(q, "borrowerId")?,
            fund_id: id_param(q, "fundId")?,
            delinquent,
        },
        limit,
    ))
}

/// What a loan list cursor is bound to: the tenant and every filter.
fn loans_query<'a>(tenant: &'a str, f: &'a LoanFilter) -> [&'a str; 6] {
    [
        "loans",
        tenant,
        f.status.as_deref().unwrap_or(""),
        f.borrower_id.as_deref().unwrap_or(""),
        f.fund_id.as_deref().unwrap_or(""),
        if f.delinquent { "delinquent" } else { "" },
    ]
}

/// The start key inside a loan list cursor: the index's key shape and partition. The
/// signature already proves the server wrote it; this keeps a schema change from DynamoDB.
fn loans_start(key: Key, tenant: &str, f: &LoanFilter) -> Result<Key, ApiError> {
    let (_, key_attr, partition) = f.index(tenant);
    let expected: HashSet<&str> = [attr::PK, attr::SK, key_attr, attr::LOAN_ID].into();
    let keys: HashSet<&str> = key.keys().map(String::as_str).collect();
    if keys != expected || str_of(&key, key_attr) != Some(partition.as_str()) {
        return Err(invalid_cursor());
    }
    Ok(key)
}

pub(crate) async fn list(
    State(ops): State<Arc<Ops>>,
    query: Result<Query<HashMap<String, String>>, QueryRejection>,
    req: Request,
) -> Result<Response, ApiError> {
    let tenant = tenant_of(req.headers(), req.extensions(), ops.tenant_source)?;
    let Query(q) = query.map_err(|e| ApiError::bad("query", e.body_text()))?;
    let (filter, limit) = parse_loan_filter(&q)?;
    let cursor_query = loans_query(&tenant, &filter);
    let start = q
        .get("cursor")
        .filter(|c| !c.is_empty())
        .map(|c| {
            let key = ops.config.cursor_key.open(&cursor_query, c)?;
            loans_start(key, &tenant, &filter)
        })
        .transpose()?;
    let page = list_loans(
        &ops.dynamodb,
        &ops.config.table,
        &tenant,
        &filter,
        limit,
        start,
    )
    .await?;
    let cursor = page
        .last_key
        .as_ref()
        .map(|k| ops.config.cursor_key.seal(&cursor_query, k));
    Ok(Json(json!({"loans": page.loans, "cursor": cursor})).into_response())
}

pub(crate) async fn portfolio(
    State(ops): State<Arc<Ops>>,
    path: Result<Path<String>, PathRejection>,
    req: Request,
) -> Result<Response, ApiError> {
    let tenant = tenant_of(req.headers(), req.extensions(), ops.tenant_source)?;
    let fund_id = path_params(path)?;
    if !is_safe_id(&fund_id, 128) {
        return Err(ApiError::bad(
            "fundId",
            "must be an id of 1 to 128 characters (A-Z a-z 0-9 . _ : -)",
        ));
    }
    let p = fund_portfolio(&ops.dynamodb, &ops.config.table, &tenant, &fund_id).await?;
    Ok(Json(p).into_response())
}

/// Whether a request's `Prefer` headers (RFC 7240) ask for `respond-async`.
pub fn prefers_async(headers: &axum::http::HeaderMap) -> bool {
    headers
        .get_all(axum::http::header::HeaderName::from_static("prefer"))
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|p| {
            p.split(';')
                .next()
                .is_some_and(|token| token.trim().eq_ignore_ascii_case("respond-async"))
        })
}

fn known_projection(name: &str) -> Result<(), ApiError> {
    if PROJECTIONS.contains(&name) {
        return Ok(());
    }
    Err(ApiError::not_found(format!(
        "no projection named {name:?}; projections: {}",
        PROJECTIONS.join(", ")
    )))
}

/// Where a job's status is read.
fn job_location(job: &RebuildJob) -> String {
    format!("/projections/{}/rebuilds/{}", job.projection, job.job_id)
}

/// `202 Accepted` for a job that carries on after the answer.
fn accepted(job: &RebuildJob, async_applied: bool) -> Response {
    let mut response = (StatusCode::ACCEPTED, Json(job.view())).into_response();
    let headers = response.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&job_location(job)) {
        headers.insert(axum::http::header::LOCATION, v);
    }
    if async_applied {
        headers.insert(
            axum::http::header::HeaderName::from_static("preference-applied"),
            HeaderValue::from_static("respond-async"),
        );
    }
    response
}

pub(crate) async fn rebuild(
    State(ops): State<Arc<Ops>>,
    path: Result<Path<String>, PathRejection>,
    req: Request,
) -> Result<Response, ApiError> {
    let p = admitted(&req)?;
    let name = path_params(path)?;
    known_projection(&name)?;
    let port = DynamoRebuild::new(DynamoStore::new(ops.dynamodb.clone(), &ops.config.table));
    let settings = &ops.config.rebuild;
    let queue = settings.queue_url.as_ref().map(|url| RebuildQueue {
        client: ops.sqs.clone(),
        queue_url: url.clone(),
    });
    // Without a step queue the preference cannot be honoured (RFC 7240 lets a server
    // ignore it): the rebuild runs inline.
    if let (true, Some(queue)) = (prefers_async(req.headers()), &queue) {
        let job = start_job(&port, &p.tenant, &name, &p.subject, settings.page_size).await?;
        if let Err(e) = queue.send(&job.next_step()).await {
            let _ = fail_job(&port, &p.tenant, &job.job_id, &e.to_string()).await;
            return Err(e.into());
        }
        return Ok(accepted(&job, true));
    }
    let job = rebuild_projection(
        &port,
        queue.as_ref(),
        settings.inline_budget,
        &p.tenant,
        &p.subject,
        &name,
        settings.page_size,
    )
    .await?;
    match &job.ops_event_id {
        Some(ops_event_id) => Ok(Json(
            json!({"projection": name, "loans": job.loans, "written": job.written,
            "opsEventId": ops_event_id}),
        )
        .into_response()),
        // The inline budget ran out: the rest runs on the step queue.
        None => Ok(accepted(&job, false)),
    }
}

pub(crate) async fn rebuild_job(
    State(ops): State<Arc<Ops>>,
    path: Result<Path<(String, String)>, PathRejection>,
    req: Request,
) -> Result<Response, ApiError> {
    let p = admitted(&req)?;
    let (name, job_id) = path_params(path)?;
    known_projection(&name)?;
    let no_job = || ApiError::not_found(format!("no rebuild job {job_id:?} of {name}"));
    // Job ids are UUIDs: anything else names no job (and never reaches the table).
    if uuid::Uuid::parse_str(&job_id).is_err() {
        return Err(no_job());
    }
    let port = DynamoRebuild::new(DynamoStore::new(ops.dynamodb.clone(), &ops.config.table));
    match port.load_job(&p.tenant, &job_id).await? {
        Some(job) if job.projection == name => Ok(Json(job.view()).into_response()),
        _ => Err(no_job()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn field_of(r: Result<(LoanFilter, usize), ApiError>) -> Option<String> {
        r.err().and_then(|e| e.field)
    }

    #[test]
    fn bad_parameters_name_their_field() {
        assert_eq!(
            field_of(parse_loan_filter(&q(&[("status", "late")]))).as_deref(),
            Some("status")
        );
        assert_eq!(
            field_of(parse_loan_filter(&q(&[("delinquent", "yes")]))).as_deref(),
            Some("delinquent")
        );
        assert_eq!(
            field_of(parse_loan_filter(&q(&[("limit", "0")]))).as_deref(),
            Some("limit")
        );
        assert_eq!(
            field_of(parse_loan_filter(&q(&[("fundId", "a b")]))).as_deref(),
            Some("fundId")
        );
        assert_eq!(
            field_of(parse_loan_filter(&q(&[("sort", "x")]))).as_deref(),
            Some("sort")
        );
        let (f, limit) = parse_loan_filter(&q(&[
            ("status", "paid_off"),
            ("delinquent", "true"),
            ("limit", "7"),
        ]))
        .unwrap();
        assert_eq!(
            (f.status.as_deref(), f.delinquent, limit),
            (Some("paid_off"), true, 7)
        );
    }

    #[test]
    fn respond_async_is_found_among_preferences() {
        let prefer = |values: &[&str]| {
            let mut h = axum::http::HeaderMap::new();
            for v in values {
                h.append("prefer", v.parse().unwrap());
            }
            prefers_async(&h)
        };
        assert!(prefer(&["respond-async"]));
        assert!(prefer(&["return=minimal, Respond-Async; wait=10"]));
        assert!(prefer(&["wait=5", "respond-async"]));
        assert!(!prefer(&[]));
        assert!(!prefer(&["return=minimal"]));
        assert!(!prefer(&["respond-asynchronously"]));
    }
}
