//! Local-only operations: the late-payment job on demand (`POST /admin/late-payments`, and
//! the `late-payments` subcommand) and the catalog export. On AWS the job runs on its
//! schedule; this route exists only in the local runner, never in the Lambda's router.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use chrono::{NaiveDate, Utc};
use event_adapters::config::Clients;
use late_payments::{parse_input, Job};
use lending_events::catalog::Catalog;
use serde_json::{json, Value};

/// The example custom types the local runner loads when `CUSTOM_EVENT_TYPES` is unset.
pub const EXAMPLE_CUSTOM_TYPES: &str = include_str!("../custom-event-types.json");

/// The catalog ingest uses here: `CUSTOM_EVENT_TYPES`, else the bundled example.
pub fn catalog() -> Result<Catalog, String> {
    match event_adapters::functions::catalog_from_env().map_err(|e| e.to_string())? {
        Some(c) => Ok(c),
        None => Catalog::with_custom_json(EXAMPLE_CUSTOM_TYPES)
            .map_err(|e| format!("bundled custom-event-types.json: {e}")),
    }
}

/// `POST /admin/late-payments` with `{"asOf": "YYYY-MM-DD"}` (default today): runs the job
/// for the caller's tenant (`X-Tenant-Id`, or `"tenant"` in the body), or for every tenant
/// when neither is given. Answers the run's report.
pub fn router(job: Job) -> Router {
    Router::new()
        .route("/admin/late-payments", post(late_payments))
        .with_state(job)
}

async fn late_payments(
    State(job): State<Job>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let input: Value = if body.is_empty() {
        json!({})
    } else {
        match serde_json::from_slice(&body) {
            Ok(v) => v,
            Err(e) => return error(StatusCode::BAD_REQUEST, "malformed_json", &e.to_string()),
        }
    };
    let (as_of, tenant) = match parse_input(&input, Utc::now().date_naive()) {
        Ok(x) => x,
        Err(e) => return error(StatusCode::BAD_REQUEST, "validation_failed", &e),
    };
    let tenant = tenant.or_else(|| {
        headers
            .get("x-tenant-id")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    });
    match job.run(as_of, tenant.as_deref()).await {
        Ok(report) => Json(report).into_response(),
        Err(e) => error(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            &e.to_string(),
        ),
    }
}

fn error(status: StatusCode, code: &str, message: &str) -> Response {
    (
        status,
        Json(json!({"error": {"code": code, "message": message}})),
    )
        .into_response()
}

/// `local-runner late-payments --as-of YYYY-MM-DD [--tenant t] [--prefix p]`.
pub async fn run_cli(
    clients: &Clients,
    prefix: &str,
    as_of: Option<String>,
    tenant: Option<String>,
) -> Result<(), String> {
    let as_of = match as_of {
        Some(d) => NaiveDate::parse_from_str(&d, "%Y-%m-%d")
            .map_err(|_| format!("--as-of {d:?} is not a date YYYY-MM-DD"))?,
        None => Utc::now().date_naive(),
    };
    let job = Job::new(clients, &format!("{prefix}-events"));
    let report = job
        .run(as_of, tenant.as_deref())
        .await
        .map_err(|e| e.to_string())?;
    println!(
        "{}",
        serde_json::to_string_pretty(&report).unwrap_or_default()
    );
    if report.errors.is_empty() {
        Ok(())
    } else {
        Err(format!("{} loans failed", report.errors.len()))
    }
}

/// `local-runner catalog [--markdown] [--builtin]`: the catalog ingest accepts here
/// (built-in plus the custom types in effect), or the built-in types only.
pub fn print_catalog(markdown: bool, builtin: bool) -> Result<(), String> {
    let c = if builtin {
        Catalog::default()
    } else {
        catalog()?
    };
    if markdown {
        print!("{}", c.markdown_table());
    } else {
        println!(
            "{}",
            serde_json::to_string_pretty(&c.export()).unwrap_or_default()
        );
    }
    Ok(())
}
