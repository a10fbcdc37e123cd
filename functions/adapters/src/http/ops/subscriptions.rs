//! The subscription routes (scope `subscriptions:admin`), tenant-scoped:
//!
//! | route | answer |
//! |---|---|
//! | `POST /subscriptions` | 201: the subscription and, this once, its `secret` (`whsec_...`) |
//! | `GET /subscriptions` | `{"subscriptions": [...]}` |
//! | `GET /subscriptions/{id}` | the subscription |
//! | `PATCH /subscriptions/{id}` | `name`, `filter`, `target`, `format`, `status` (`active`/`paused`); the new subscription |
//! | `DELETE /subscriptions/{id}` | `{"subscriptionId", "deleted": true}` |
//! | `POST /subscriptions/{id}/rotate-secret` | `{"subscriptionId", "secret", "previousValidUntil"}` |
//! | `GET /subscriptions/{id}/deliveries?limit=&cursor=` | `{"deliveries": [...], "cursor"}`: attempts, newest first |
//!
//! Every change is a `Subscription.*` event stored with the subscription item in one
//! transaction. Bad input is 400 with the `field`, nothing stored.

use std::sync::Arc;

use axum::extract::rejection::PathRejection;
use axum::extract::{Path, Query, Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::{Duration as TimeDelta, Utc};
use lending_events::envelope::format_time;
use serde_json::{json, Value};

use crate::config::{Clients, Config};
use crate::error::AdapterError;
use crate::http::auth::{admitted, tenant_of, TenantSource};
use crate::http::error::ApiError;
use crate::http::request::{json_body, path_params};
use crate::queue::{OutgoingMessage, Publisher, QueuePublisher};
use crate::store::DynamoStore;
use crate::subscriptions::circuit::{self, Circuits};
use crate::subscriptions::deliverylog::DeliveryLog;
use crate::subscriptions::egress::{self, EgressPolicy};
use crate::subscriptions::matching::{DeliveryKind, DeliveryMessage};
use crate::subscriptions::model::{self, CreateRequest, PatchRequest, Status, Subscription};
use crate::subscriptions::repo::{StoredSubscription, SubscriptionStore};
use crate::subscriptions::secrets::{SecretBox, SigningSecret};
use crate::subscriptions::SubscriptionSettings;

/// Largest request body of these routes.
const MAX_BODY: usize = 64 * 1024;

/// What the routes need.
#[derive(Clone)]
pub struct SubscriptionsApi {
    pub subscriptions: SubscriptionStore,
    pub secrets: SecretBox,
    pub publisher: QueuePublisher,
    pub log: DeliveryLog,
    pub settings: SubscriptionSettings,
    pub egress: EgressPolicy,
    pub tenant_source: TenantSource,
}

/// What the routes need; `egress` decides which webhook targets are allowed.
pub fn api(
    config: &Config,
    clients: &Clients,
    tenant_source: TenantSource,
    egress: EgressPolicy,
) -> SubscriptionsApi {
    SubscriptionsApi {
        subscriptions: SubscriptionStore::new(DynamoStore::new(
            clients.dynamodb.clone(),
            &config.table,
        )),
        secrets: SecretBox::new(clients.kms.clone(), config.subscriptions.key_id.clone()),
        publisher: QueuePublisher::new(clients.sqs.clone()),
        log: DeliveryLog::new(
            clients.dynamodb.clone(),
            &config.table,
            config.cursor_key.clone(),
        ),
        settings: config.subscriptions.clone(),
        egress,
        tenant_source,
    }
}

/// The subscription as the API shows it, with its circuit and backfill where there is one.
pub fn view(stored: &StoredSubscription) -> Value {
    let mut v = json!(stored.subscription);
    if stored.subscription.start_from.is_some() {
        v["backfill"] = json!({
            "liveFrom": stored.live_from.map(|t| format_time(&t)),
            "sent": stored.backfill_sent,
            "finished": stored.backfill_finished,
            "done": stored.backfill_done(),
        });
    }
    v
}

async fn body(req: Request) -> Result<Value, ApiError> {
    json_body::<Value>(req, MAX_BODY, "a JSON object").await
}

fn conflict() -> ApiError {
    ApiError::new(
        StatusCode::CONFLICT,
        "conflict",
        "the subscription changed meanwhile; read it again and retry",
        None,
    )
}

fn stored_error(e: AdapterError) -> ApiError {
    match e {
        AdapterError::SequenceConflict { .. } | AdapterError::StreamContended { .. } => conflict(),
        other => unavailable_if_unconfigured(other),
    }
}

/// A deployment without the delivery queue or the secrets key answers 503 (the
/// subscriptions part is not available there), not 500.
fn unavailable_if_unconfigured(e: AdapterError) -> ApiError {
    match e {
        AdapterError::Config(m) => {
            tracing::error!(error = %m, "subscriptions are not configured");
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                "subscriptions are not configured on this deployment",
                None,
            )
        }
        other => other.into(),
    }
}

async fn load(
    api: &SubscriptionsApi,
    tenant: &str,
    raw_id: &str,
) -> Result<StoredSubscription, ApiError> {
    let id = model::parse_id(raw_id)?;
    api.subscriptions
        .get(tenant, &id)
        .await?
        .ok_or_else(|| model::not_found(raw_id))
}

pub(crate) async fn create(
    State(api): State<Arc<SubscriptionsApi>>,
    req: Request,
) -> Result<Response, ApiError> {
    let tenant = tenant_of(req.headers(), req.extensions(), api.tenant_source)?;
    let principal = admitted(&req)?.subject;
    let now = Utc::now();
    let request = CreateRequest::parse(&body(req).await?, now)?;
    egress::check_at_creation(&api.egress, &request.target).await?;
    let secret = SigningSecret::generate()?;
    let id = uuid::Uuid::new_v4();
    let sealed = api
        .secrets
        .seal(&tenant, &id.to_string(), &secret)
        .await
        .map_err(unavailable_if_unconfigured)?;
    let subscription = Subscription {
        subscription_id: id,
        tenant_id: tenant.clone(),
        name: request.name,
        filter: request.filter,
        target: request.target,
        format: request.format,
        status: Status::Active,
        start_from: request.start_from,
        created_at: now,
        updated_at: now,
        version: 1,
    };
    // A backfilled subscription goes live for events recorded after every dispatcher's
    // cache has seen it; the backfill covers everything up to then.
    let live_from = request
        .start_from
        .map(|_| now + TimeDelta::from_std(api.settings.backfill_grace).unwrap_or_default());
    let stored = StoredSubscription {
        subscription,
        secret: sealed,
        previous_secret: None,
        live_from,
        backfill_sent: None,
        backfill_finished: 0,
    };
    api.subscriptions
        .create(&stored, &principal)
        .await
        .map_err(stored_error)?;
    if stored.subscription.start_from.is_some() {
        start_backfill(&api, &stored).await?;
    }
    let mut v = view(&stored);
    v["secret"] = json!(secret.expose());
    Ok((StatusCode::CREATED, Json(v)).into_response())
}

/// Queue the control message that makes the delivery function backfill the subscription.
pub async fn start_backfill(
    api: &SubscriptionsApi,
    stored: &StoredSubscription,
) -> Result<(), ApiError> {
    let Some(queue) = api.settings.delivery_queue_url.as_deref() else {
        return Err(unavailable_if_unconfigured(AdapterError::Config(
            "no delivery queue configured".into(),
        )));
    };
    let sub = &stored.subscription;
    let message = DeliveryMessage {
        subscription_id: sub.subscription_id,
        tenant_id: sub.tenant_id.clone(),
        kind: DeliveryKind::StartBackfill,
        event: None,
    };
    let out = OutgoingMessage {
        body: serde_json::to_string(&message).map_err(|e| AdapterError::Decode(e.to_string()))?,
        group: format!("{}#backfill", sub.subscription_id),
        dedup: format!("{}:backfill", sub.subscription_id),
        event_type: "Subscription.Backfill".into(),
    };
    let failed = api.publisher.send(queue, &[out]).await?;
    if !failed.is_empty() {
        return Err(AdapterError::Transient("the backfill could not be queued".into()).into());
    }
    Ok(())
}

pub(crate) async fn list(
    State(api): State<Arc<SubscriptionsApi>>,
    req: Request,
) -> Result<Response, ApiError> {
    let tenant = tenant_of(req.headers(), req.extensions(), api.tenant_source)?;
    let subs: Vec<Value> = api
        .subscriptions
        .list(&tenant)
        .await?
        .iter()
        .map(view)
        .collect();
    Ok(Json(json!({"subscriptions": subs})).into_response())
}

pub(crate) async fn show(
    State(api): State<Arc<SubscriptionsApi>>,
    path: Result<Path<String>, PathRejection>,
    req: Request,
) -> Result<Response, ApiError> {
    let tenant = tenant_of(req.headers(), req.extensions(), api.tenant_source)?;
    let stored = load(&api, &tenant, &path_params(path)?).await?;
    let mut v = view(&stored);
    let circuits = Circuits::new(
        api.log.client().clone(),
        api.log.table(),
        circuit::config_from_env(),
    );
    let (state, _) = circuits
        .load(&tenant, model::address(&stored.subscription.target))
        .await?;
    v["circuit"] = circuit::view(&state, &circuits.config);
    Ok(Json(v).into_response())
}

pub(crate) async fn patch(
    State(api): State<Arc<SubscriptionsApi>>,
    path: Result<Path<String>, PathRejection>,
    req: Request,
) -> Result<Response, ApiError> {
    let tenant = tenant_of(req.headers(), req.extensions(), api.tenant_source)?;
    let principal = admitted(&req)?.subject;
    let raw_id = path_params(path)?;
    let change = PatchRequest::parse(&body(req).await?)?;
    if let Some(t) = &change.target {
        egress::check_at_creation(&api.egress, t).await?;
    }
    let id = model::parse_id(&raw_id)?;
    let stored = api
        .subscriptions
        .modify(
            &tenant,
            &id,
            "Subscription.Updated",
            &principal,
            |stored, _| {
                change.apply(&mut stored.subscription);
                json!({"subscriptionId": id.to_string(), "changes": change.changes()})
            },
        )
        .await
        .map_err(stored_error)?
        .ok_or_else(|| model::not_found(&raw_id))?;
    Ok(Json(view(&stored)).into_response())
}

pub(crate) async fn delete(
    State(api): State<Arc<SubscriptionsApi>>,
    path: Result<Path<String>, PathRejection>,
    req: Request,
) -> Result<Response, ApiError> {
    let tenant = tenant_of(req.headers(), req.extensions(), api.tenant_source)?;
    let principal = admitted(&req)?.subject;
    let stored = load(&api, &tenant, &path_params(path)?).await?;
    api.subscriptions
        .delete(&stored, &principal, Utc::now())
        .await
        .map_err(stored_error)?;
    Ok(
        Json(json!({"subscriptionId": stored.subscription.subscription_id, "deleted": true}))
            .into_response(),
    )
}

pub(crate) async fn rotate(
    State(api): State<Arc<SubscriptionsApi>>,
    path: Result<Path<String>, PathRejection>,
    req: Request,
) -> Result<Response, ApiError> {
    let tenant = tenant_of(req.headers(), req.extensions(), api.tenant_source)?;
    let principal = admitted(&req)?.subject;
    let raw_id = path_params(path)?;
    let id = model::parse_id(&raw_id)?;
    // Sealed once, before the write: a retried write stores the same ciphertext.
    let secret = SigningSecret::generate()?;
    let sealed = api
        .secrets
        .seal(&tenant, &id.to_string(), &secret)
        .await
        .map_err(unavailable_if_unconfigured)?;
    let grace = TimeDelta::from_std(api.settings.rotation_grace).unwrap_or_default();
    let mut until = Utc::now() + grace;
    api.subscriptions
        .modify(
            &tenant,
            &id,
            "Subscription.SecretRotated",
            &principal,
            |stored, now| {
                until = now + grace;
                stored.previous_secret =
                    Some((std::mem::replace(&mut stored.secret, sealed.clone()), until));
                json!({"subscriptionId": id.to_string(), "previousValidUntil": format_time(&until)})
            },
        )
        .await
        .map_err(stored_error)?
        .ok_or_else(|| model::not_found(&raw_id))?;
    Ok(Json(json!({"subscriptionId": id, "secret": secret.expose(),
        "previousValidUntil": format_time(&until)}))
    .into_response())
}

#[derive(Debug, serde::Deserialize)]
pub(crate) struct PageQuery {
    limit: Option<String>,
    cursor: Option<String>,
}

pub(crate) async fn deliveries(
    State(api): State<Arc<SubscriptionsApi>>,
    path: Result<Path<String>, PathRejection>,
    query: Result<Query<PageQuery>, axum::extract::rejection::QueryRejection>,
    req: Request,
) -> Result<Response, ApiError> {
    let tenant = tenant_of(req.headers(), req.extensions(), api.tenant_source)?;
    let stored = load(&api, &tenant, &path_params(path)?).await?;
    let Query(q) = query.map_err(|e| ApiError::bad("", e.body_text()))?;
    let limit = match q.limit.as_deref() {
        None => 50,
        Some(l) => l
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=500).contains(n))
            .ok_or_else(|| ApiError::bad("limit", "must be an integer from 1 to 500"))?,
    };
    let (entries, cursor) = api
        .log
        .attempts(
            &tenant,
            &stored.subscription.subscription_id,
            limit,
            q.cursor.as_deref(),
        )
        .await?;
    Ok(Json(json!({"deliveries": entries, "cursor": cursor})).into_response())
}
