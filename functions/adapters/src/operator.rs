//! Operator actions, each recorded as an `Ops.*` event on the tenant's `Ops` stream
//! (aggregate `Ops/<tenant>`) with the operator's principal, and their HTTP routes.
//!
//! | route | scope | answer |
//! |---|---|---|
//! | `GET /dead-letters?domain=` | `ops:dead-letters` | `{"deadLetters": [{"domain", "queue", "count", "messages"}]}`: the caller's tenant's messages only |
//! | `POST /dead-letters/{domain}/redrive` | `ops:dead-letters` | body `{"all": true}` or `{"eventIds": [...]}`; `{"redriven", "eventIds"}` |
//! | `POST /dead-letters/{domain}/purge` | `ops:dead-letters` | body as redrive; `{"purged", "eventIds"}` |
//! | `GET /handlers` | `ops:handlers` | `{"handlers": [{"handler", "domain", "enabled", "subscriptions"}]}` |
//! | `PUT /handlers/{handler}` | `ops:handlers` | body `{"enabled": bool}`; `{"handler", "enabled"}` |
//!
//! A tenant's dead-letter operations see and touch only messages whose event is the
//! tenant's (never PurgeQueue). Handler switches are platform-wide (`H#<handler>`): the
//! `ops:handlers` scope is for platform operators; the switch is recorded on the caller's
//! tenant's `Ops` stream. The functions here are what evctl's direct commands call too, so
//! an action is recorded however it is taken; without a tenant (a platform operator's
//! direct command) each affected tenant's stream gets the record of its messages, and
//! what belongs to no tenant is recorded under [`PLATFORM_TENANT`].

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::{Path, Query, Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use chrono::Utc;
use lending_events::catalog::{Catalog, MAX_OPS_IDS, OPERATOR};
use lending_events::envelope::{NewEvent, WriteContext};
use lending_events::{Domain, EventEnvelope};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::api::ApiError;
use crate::auth::Principal;
use crate::deadletters::{self, DeadLetter};
use crate::error::AdapterError;
use crate::ledger::{DynamoLedger, Ledger};
use crate::query::Ops;
use crate::store::{DynamoStore, EventStore};

/// The tenant whose `Ops` stream records platform actions that belong to no tenant.
pub const PLATFORM_TENANT: &str = "_platform";

/// Who acts: the tenant it acts for (`None`: a platform operator acting on every tenant)
/// and the principal recorded on the `Ops` event.
#[derive(Debug, Clone, Copy)]
pub struct Actor<'a> {
    pub tenant: Option<&'a str>,
    pub principal: &'a str,
}

impl Actor<'_> {
    /// Whether this actor may see or touch a dead letter.
    fn owns(&self, letter: &DeadLetter) -> bool {
        self.tenant
            .is_none_or(|t| letter.tenant.as_deref() == Some(t))
    }
}

/// Append one `Ops.*` event to `tenant`'s `Ops` stream, as `principal`.
pub async fn record(
    store: &DynamoStore,
    tenant: &str,
    principal: &str,
    event_type: &str,
    mut payload: Value,
) -> Result<EventEnvelope, AdapterError> {
    payload["tenantId"] = json!(tenant);
    let raw = json!({"eventType": event_type, "aggregateType": "Ops", "aggregateId": tenant,
        "payload": payload, "metadata": {"source": "operator"}});
    let now = Utc::now();
    let ctx = WriteContext {
        tenant_id: tenant,
        now,
        principal,
        producer: OPERATOR,
    };
    let event = NewEvent::from_value_in(Catalog::builtin(), raw, &ctx, &mut uuid::Uuid::new_v4)?;
    let appended = store.append(vec![event], now).await?;
    appended
        .events()
        .first()
        .cloned()
        .ok_or_else(|| AdapterError::Decode("the store returned no event".into()))
}

/// The name of a queue from its URL (the last path segment).
fn queue_name(url: &str) -> &str {
    url.rsplit('/').next().unwrap_or(url)
}

/// Record a dead-letter action: per tenant of the letters, at most [`MAX_OPS_IDS`] event
/// ids per event. Nothing is recorded when no letter was touched.
async fn record_letters(
    store: &DynamoStore,
    actor: Actor<'_>,
    event_type: &str,
    domain: Domain,
    dlq_url: &str,
    letters: &[DeadLetter],
) -> Result<(), AdapterError> {
    let mut per_tenant: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for l in letters {
        let tenant = actor
            .tenant
            .or(l.tenant.as_deref())
            .unwrap_or(PLATFORM_TENANT);
        per_tenant
            .entry(tenant)
            .or_default()
            .push(l.event_id.as_deref().unwrap_or(&l.message_id));
    }
    for (tenant, ids) in per_tenant {
        for chunk in ids.chunks(MAX_OPS_IDS) {
            record(
                store,
                tenant,
                actor.principal,
                event_type,
                json!({"domain": domain, "queue": queue_name(dlq_url), "count": chunk.len(),
                    "eventIds": chunk}),
            )
            .await?;
        }
    }
    Ok(())
}

/// The actor's dead letters of one domain's DLQ, without consuming them.
pub async fn list_dead_letters(
    sqs: &aws_sdk_sqs::Client,
    store: &DynamoStore,
    actor: Actor<'_>,
    domain: Domain,
    dlq_url: &str,
    max: usize,
) -> Result<Vec<DeadLetter>, AdapterError> {
    let letters =
        deadletters::list(sqs, store.client(), store.table(), domain, dlq_url, max).await?;
    Ok(letters.into_iter().filter(|l| actor.owns(l)).collect())
}

/// Redrive the actor's dead letters that `select` picks to `source_url`, and record it.
pub async fn redrive_dead_letters(
    sqs: &aws_sdk_sqs::Client,
    store: &DynamoStore,
    actor: Actor<'_>,
    domain: Domain,
    dlq_url: &str,
    source_url: Option<&str>,
    select: impl Fn(&DeadLetter) -> bool,
) -> Result<Vec<DeadLetter>, AdapterError> {
    let done = deadletters::redrive(sqs, domain, dlq_url, source_url, |l| {
        actor.owns(l) && select(l)
    })
    .await?;
    record_letters(
        store,
        actor,
        "Ops.DeadLettersRedriven",
        domain,
        dlq_url,
        &done,
    )
    .await?;
    Ok(done)
}

/// Delete the actor's dead letters that `select` picks, and record it.
pub async fn purge_dead_letters(
    sqs: &aws_sdk_sqs::Client,
    store: &DynamoStore,
    actor: Actor<'_>,
    domain: Domain,
    dlq_url: &str,
    select: impl Fn(&DeadLetter) -> bool,
) -> Result<Vec<DeadLetter>, AdapterError> {
    let done = deadletters::purge(sqs, domain, dlq_url, |l| actor.owns(l) && select(l)).await?;
    record_letters(
        store,
        actor,
        "Ops.DeadLettersPurged",
        domain,
        dlq_url,
        &done,
    )
    .await?;
    Ok(done)
}

/// Switch a handler on or off (platform-wide) and record it.
pub async fn switch_handler(
    ledger: &DynamoLedger,
    store: &DynamoStore,
    actor: Actor<'_>,
    handler: &str,
    enabled: bool,
) -> Result<EventEnvelope, AdapterError> {
    ledger.set_enabled(handler, enabled).await?;
    record(
        store,
        actor.tenant.unwrap_or(PLATFORM_TENANT),
        actor.principal,
        "Ops.HandlerSwitched",
        json!({"handler": handler, "enabled": enabled}),
    )
    .await
}

/// The operator routes (merged into the ingest router).
pub fn router(ops: Arc<Ops>) -> Router {
    Router::new()
        .route("/dead-letters", get(get_dead_letters))
        .route("/dead-letters/{domain}/redrive", post(post_redrive))
        .route("/dead-letters/{domain}/purge", post(post_purge))
        .route("/handlers", get(get_handlers))
        .route("/handlers/{handler}", put(put_handler))
        .with_state(ops)
}

/// The principal the scope middleware admitted (it runs before every routed request).
pub(crate) fn principal(req: &Request) -> Result<Principal, ApiError> {
    req.extensions()
        .get::<Principal>()
        .cloned()
        .ok_or_else(|| crate::auth::forbidden("no authenticated principal"))
}

fn not_found(message: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "not_found", message, None)
}

/// The domain a request names (`?domain=` or the path): 400 (field `domain`) with the
/// known domains when there is no such domain.
fn requested_domain(text: &str) -> Result<Domain, ApiError> {
    Ok(text.parse::<Domain>()?)
}

/// `(dlq url, source url)` of a domain with queues configured.
fn domain_queues(ops: &Ops, domain: Domain) -> Result<(&str, &str), ApiError> {
    match (ops.config.dlq_url(domain), ops.config.queue_url(domain)) {
        (Some(dlq), Some(source)) => Ok((dlq, source)),
        _ => Err(not_found(format!(
            "no dead-letter queue for domain {:?}; domains: {}",
            domain.as_str(),
            ops.config
                .queues
                .keys()
                .map(|d| d.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ))),
    }
}

async fn get_dead_letters(
    State(ops): State<Arc<Ops>>,
    query: Result<Query<BTreeMap<String, String>>, axum::extract::rejection::QueryRejection>,
    req: Request,
) -> Result<Response, ApiError> {
    let p = principal(&req)?;
    let Query(q) = query.map_err(|e| ApiError::bad("query", e.body_text()))?;
    let domains: Vec<Domain> = match q.get("domain") {
        Some(d) => {
            let d = requested_domain(d)?;
            domain_queues(&ops, d)?;
            vec![d]
        }
        None => ops.config.queues.keys().copied().collect(),
    };
    let store = DynamoStore::new(ops.dynamodb.clone(), &ops.config.table);
    let actor = Actor {
        tenant: Some(&p.tenant),
        principal: &p.subject,
    };
    let mut out = Vec::new();
    for d in domains {
        let (dlq, _) = domain_queues(&ops, d)?;
        let letters = list_dead_letters(&ops.sqs, &store, actor, d, dlq, 1000).await?;
        out.push(
            json!({"domain": d, "queue": queue_name(dlq), "count": letters.len(),
            "messages": letters}),
        );
    }
    Ok(Json(json!({ "deadLetters": out })).into_response())
}

/// Which dead letters a redrive or purge takes: every one of the tenant's, or these events.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Selection {
    #[serde(default)]
    all: bool,
    event_ids: Option<Vec<String>>,
}

async fn selection(req: Request) -> Result<Selection, ApiError> {
    let s: Selection =
        crate::api::json_body(req, 64 * 1024, "{\"all\": true} or {\"eventIds\": [...]}").await?;
    match (&s.all, &s.event_ids) {
        (true, None) => Ok(s),
        (false, Some(ids)) if !ids.is_empty() => Ok(s),
        _ => Err(ApiError::bad(
            "eventIds",
            "give either \"all\": true or a non-empty \"eventIds\" list",
        )),
    }
}

fn picks(s: &Selection, l: &DeadLetter) -> bool {
    s.all
        || s.event_ids
            .as_ref()
            .is_some_and(|ids| l.event_id.as_ref().is_some_and(|e| ids.contains(e)))
}

fn event_ids(letters: &[DeadLetter]) -> Vec<&str> {
    letters
        .iter()
        .map(|l| l.event_id.as_deref().unwrap_or(&l.message_id))
        .collect()
}

async fn post_redrive(
    State(ops): State<Arc<Ops>>,
    Path(domain): Path<String>,
    req: Request,
) -> Result<Response, ApiError> {
    let p = principal(&req)?;
    let domain = requested_domain(&domain)?;
    let (dlq, source) = domain_queues(&ops, domain)?;
    let sel = selection(req).await?;
    let store = DynamoStore::new(ops.dynamodb.clone(), &ops.config.table);
    let actor = Actor {
        tenant: Some(&p.tenant),
        principal: &p.subject,
    };
    let done = redrive_dead_letters(&ops.sqs, &store, actor, domain, dlq, Some(source), |l| {
        picks(&sel, l)
    })
    .await?;
    Ok(Json(json!({"redriven": done.len(), "eventIds": event_ids(&done)})).into_response())
}

async fn post_purge(
    State(ops): State<Arc<Ops>>,
    Path(domain): Path<String>,
    req: Request,
) -> Result<Response, ApiError> {
    let p = principal(&req)?;
    let domain = requested_domain(&domain)?;
    let (dlq, _) = domain_queues(&ops, domain)?;
    let sel = selection(req).await?;
    let store = DynamoStore::new(ops.dynamodb.clone(), &ops.config.table);
    let actor = Actor {
        tenant: Some(&p.tenant),
        principal: &p.subject,
    };
    let done = purge_dead_letters(&ops.sqs, &store, actor, domain, dlq, |l| picks(&sel, l)).await?;
    Ok(Json(json!({"purged": done.len(), "eventIds": event_ids(&done)})).into_response())
}

async fn get_handlers(State(ops): State<Arc<Ops>>, req: Request) -> Result<Response, ApiError> {
    principal(&req)?;
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

async fn put_handler(
    State(ops): State<Arc<Ops>>,
    Path(handler): Path<String>,
    req: Request,
) -> Result<Response, ApiError> {
    let p = principal(&req)?;
    let Some(h) = lending_events::handlers::all()
        .into_iter()
        .find(|h| h.name() == handler)
    else {
        return Err(not_found(format!("no handler named {handler:?}")));
    };
    let s: Switch = crate::api::json_body(req, 4096, "{\"enabled\": true|false}").await?;
    let ledger = DynamoLedger::new(ops.dynamodb.clone(), &ops.config.table);
    let store = DynamoStore::new(ops.dynamodb.clone(), &ops.config.table);
    let actor = Actor {
        tenant: Some(&p.tenant),
        principal: &p.subject,
    };
    switch_handler(&ledger, &store, actor, h.name(), s.enabled).await?;
    Ok(Json(json!({"handler": h.name(), "enabled": s.enabled})).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn letter(tenant: Option<&str>, event_id: &str) -> DeadLetter {
        DeadLetter {
            domain: Domain::Payment,
            message_id: format!("m-{event_id}"),
            receipt_handle: String::new(),
            group: String::new(),
            event_id: Some(event_id.into()),
            event_type: None,
            aggregate: None,
            tenant: tenant.map(str::to_string),
            handler: None,
            reason: String::new(),
            moved_by: "runner".into(),
            failure_class: None,
            receive_count: None,
            failed_at: None,
            source_queue: None,
            body: String::new(),
            attributes: Default::default(),
        }
    }

    #[test]
    fn a_route_naming_an_unknown_domain_is_400_on_the_domain_field() {
        assert_eq!(requested_domain("payment").unwrap(), Domain::Payment);
        let e = requested_domain("paymnt").unwrap_err();
        assert_eq!(
            (e.status, e.code, e.field.as_deref()),
            (StatusCode::BAD_REQUEST, "validation_failed", Some("domain"))
        );
        assert!(
            e.message.contains("\"paymnt\"") && e.message.contains("payment"),
            "{}",
            e.message
        );
    }

    #[test]
    fn a_tenant_touches_only_its_own_letters_and_a_platform_operator_all() {
        let a = Actor {
            tenant: Some("acme"),
            principal: "ops-1",
        };
        let platform = Actor {
            tenant: None,
            principal: "evctl:root",
        };
        let mine = letter(Some("acme"), "e1");
        let theirs = letter(Some("other"), "e2");
        let nobodys = letter(None, "e3");
        assert!(a.owns(&mine) && !a.owns(&theirs) && !a.owns(&nobodys));
        assert!(platform.owns(&mine) && platform.owns(&theirs) && platform.owns(&nobodys));
        let some = Selection {
            all: false,
            event_ids: Some(vec!["e2".into()]),
        };
        assert!(picks(&some, &theirs) && !picks(&some, &mine));
        let all = Selection {
            all: true,
            event_ids: None,
        };
        assert!(picks(&all, &mine));
        assert_eq!(
            queue_name("http://sqs.us-east-1.localhost:4566/000000000000/p-payment-dlq.fifo"),
            "p-payment-dlq.fifo"
        );
    }
}
