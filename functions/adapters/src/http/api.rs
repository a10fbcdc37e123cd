//! The HTTP API as one axum [`Router`]: every route is registered here (a test holds this
//! file to the OpenAPI document), each answered by a handler of [`super::events`] or
//! [`super::ops`], behind the scope middleware ([`super::auth::require_scope`]).
//!
//! On Lambda, [`super::lambda::run`] serves it behind API Gateway (REST v1 or HTTP API
//! v2 payloads alike); locally, `axum::serve` serves the very same router.

use std::sync::Arc;

use axum::http::StatusCode;
use axum::routing::{get, post, put};
use axum::Router;
use lending_events::catalog::Catalog;
use lending_events::ingest::Limits;

use super::auth::{require_scope, TenantSource};
use super::error::{method_not_allowed, ApiError};
use super::events::{self, Api};
use super::ops::{dead_letters, handlers, reads, replay, subscriptions, trace, Ops};
use super::payoff;
use super::stream::{self, StreamSettings};
use crate::config::{Clients, Config};
use crate::store::{DynamoStore, EventStore};
use crate::subscriptions::egress::EgressPolicy;

/// The whole HTTP API over the events table; `catalog` is what ingest accepts; webhook
/// targets of subscriptions as `WEBHOOK_EGRESS_ALLOW` allows (a bad value stops the
/// function at start: `run_ingest` checks it first).
pub fn router(config: &Config, clients: &Clients, catalog: Catalog) -> Router {
    let egress = crate::subscriptions::egress::policy_from_env().unwrap_or_default();
    router_with_egress(config, clients, catalog, egress)
}

/// [`router`] with the webhook targets that `egress` allows.
pub fn router_with_egress(
    config: &Config,
    clients: &Clients,
    catalog: Catalog,
    egress: EgressPolicy,
) -> Router {
    let tenant_source = if config.tenant_from_header {
        TenantSource::Header
    } else {
        TenantSource::Authorizer
    };
    let ops = Ops {
        dynamodb: clients.dynamodb.clone(),
        sqs: clients.sqs.clone(),
        config: config.clone(),
        tenant_source,
    };
    events_router(Api {
        store: DynamoStore::new(clients.dynamodb.clone(), &config.table),
        limits: Limits::default(),
        tenant_source,
        catalog,
    })
    .merge(stream_router(ops.clone(), StreamSettings::from_env()))
    .merge(ops_router(ops))
    .merge(subscriptions_router(subscriptions::api(
        config,
        clients,
        tenant_source,
        egress,
    )))
    // After the merges: it applies to the routes registered so far.
    .method_not_allowed_fallback(method_not_allowed)
    // Every route answers to its entry in the scope table (unmatched paths still get 404).
    .route_layer(axum::middleware::from_fn_with_state(
        tenant_source,
        require_scope,
    ))
    // The console's pages hold no data (their script calls the routes above with the
    // caller's identity), so they are merged after the scope layer.
    .merge(super::console::router())
}

/// The live stream, with how it polls.
fn stream_router(ops: Ops, settings: StreamSettings) -> Router {
    Router::new()
        .route("/events/stream", get(stream::get_stream))
        .with_state((Arc::new(ops), settings))
}

/// The event routes over any event store, and the 404 of every unknown route.
pub fn events_router<S: EventStore + 'static>(api: Api<S>) -> Router {
    Router::new()
        .route("/events", post(events::post_events::<S>))
        .route(
            "/aggregates/{aggregate_type}/{aggregate_id}/events",
            get(events::get_history::<S>),
        )
        .route(
            "/aggregates/{aggregate_type}/{aggregate_id}/state",
            get(events::get_state::<S>),
        )
        .route("/loans/{loan_id}/payoff", get(payoff::get_payoff::<S>))
        .fallback(|| async {
            ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such route", None)
        })
        .with_state(Arc::new(api))
}

/// The operator routes: reads, trace, replay, dead letters, handlers, the read models, and
/// the document.
fn ops_router(ops: Ops) -> Router {
    Router::new()
        .route("/events/{event_id}", get(reads::get_event))
        .route("/events", get(reads::list_events))
        .route(
            "/correlations/{correlation_id}",
            get(trace::get_correlation),
        )
        .route("/replay", post(replay::post_replay))
        .route("/openapi.json", get(super::openapi::serve))
        .route("/dead-letters", get(dead_letters::get_dead_letters))
        .route(
            "/dead-letters/{domain}/redrive",
            post(dead_letters::post_redrive),
        )
        .route(
            "/dead-letters/{domain}/purge",
            post(dead_letters::post_purge),
        )
        .route("/handlers", get(handlers::get_handlers))
        .route("/handlers/{handler}", put(handlers::put_handler))
        .route("/handlers/{handler}/stats", get(handlers::get_stats))
        .route("/loans", get(super::read_models::list))
        .route(
            "/funds/{fund_id}/portfolio",
            get(super::read_models::portfolio),
        )
        .route(
            "/projections/{name}/rebuild",
            post(super::read_models::rebuild),
        )
        .route(
            "/projections/{name}/rebuilds/{job_id}",
            get(super::read_models::rebuild_job),
        )
        .with_state(Arc::new(ops))
}

/// The subscription routes (scope `subscriptions:admin`).
fn subscriptions_router(api: subscriptions::SubscriptionsApi) -> Router {
    Router::new()
        .route(
            "/subscriptions",
            post(subscriptions::create).get(subscriptions::list),
        )
        .route(
            "/subscriptions/{id}",
            get(subscriptions::show)
                .patch(subscriptions::patch)
                .delete(subscriptions::delete),
        )
        .route(
            "/subscriptions/{id}/rotate-secret",
            post(subscriptions::rotate),
        )
        .route(
            "/subscriptions/{id}/deliveries",
            get(subscriptions::deliveries),
        )
        .with_state(Arc::new(api))
}
