//! Operator actions, each recorded as an `Ops.*` event on the tenant's `Ops` stream
//! (aggregate `Ops/<tenant>`) with the operator's principal: dead-letter listing, redrive
//! and purge, handler switches, read-model rebuilds, and the record of a replay.
//!
//! A tenant's dead-letter operations see and touch only messages whose event is the
//! tenant's (never PurgeQueue). Handler switches are platform-wide (`H#<handler>`): the
//! `ops:handlers` scope is for platform operators; the switch is recorded on the caller's
//! tenant's `Ops` stream. The HTTP operator routes ([`crate::http::ops`]) and evctl's direct
//! commands both call these functions, so an action is recorded however it is taken;
//! without a tenant (a platform operator's direct command) each affected tenant's stream
//! gets the record of its messages, and what belongs to no tenant is recorded under
//! [`PLATFORM_TENANT`].
//!
//! [`dead_letters`] holds the queue side (peek, redrive, purge) and [`stats`] the handler
//! statistics `evctl handler stats` prints.

pub mod dead_letters;
pub mod rebuild;
pub mod stats;

use std::collections::BTreeMap;

use chrono::Utc;
use lending_events::catalog::{Catalog, MAX_OPS_IDS, OPERATOR};
use lending_events::envelope::{NewEvent, WriteContext};
use lending_events::{Domain, EventEnvelope};
use serde_json::{json, Value};

use self::dead_letters::DeadLetter;
use self::rebuild::{
    fail_job, run_step, start_job, RebuildJob, RebuildPort, RebuildQueue, StepOutcome,
};
use crate::error::AdapterError;
use crate::ledger::DynamoLedger;
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
    pub fn owns(&self, letter: &DeadLetter) -> bool {
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
    payload: Value,
) -> Result<EventEnvelope, AdapterError> {
    record_as(store, tenant, principal, event_type, payload, None).await
}

/// [`record`] under a chosen event id: recording the same action again with the same
/// content stores nothing and answers the first record (the eventId guard), so an action
/// retried after a crash is recorded once.
pub async fn record_once(
    store: &DynamoStore,
    tenant: &str,
    principal: &str,
    event_type: &str,
    payload: Value,
    event_id: uuid::Uuid,
) -> Result<EventEnvelope, AdapterError> {
    record_as(
        store,
        tenant,
        principal,
        event_type,
        payload,
        Some(event_id),
    )
    .await
}

async fn record_as(
    store: &DynamoStore,
    tenant: &str,
    principal: &str,
    event_type: &str,
    mut payload: Value,
    event_id: Option<uuid::Uuid>,
) -> Result<EventEnvelope, AdapterError> {
    payload["tenantId"] = json!(tenant);
    let mut raw = json!({"eventType": event_type, "aggregateType": "Ops", "aggregateId": tenant,
        "payload": payload, "metadata": {"source": "operator"}});
    if let Some(id) = event_id {
        raw["eventId"] = json!(id.to_string());
    }
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
pub fn queue_name(url: &str) -> &str {
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
        dead_letters::list(sqs, store.client(), store.table(), domain, dlq_url, max).await?;
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
    let done = dead_letters::redrive(sqs, domain, dlq_url, source_url, |l| {
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
    let done = dead_letters::purge(sqs, domain, dlq_url, |l| actor.owns(l) && select(l)).await?;
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

/// Re-derive a read model of the actor's tenant from the event store as a job
/// ([`rebuild`]), running its steps here until it is done or `budget` is spent; then, when
/// there is a step `queue`, the next step goes to it and the job carries on there (without
/// one, every step runs here). The job as it stands: `COMPLETED` (recorded as
/// `Ops.ProjectionRebuilt`) or `RUNNING`. Live updates carry on meanwhile.
pub async fn rebuild_projection<P: RebuildPort>(
    port: &P,
    queue: Option<&RebuildQueue>,
    budget: std::time::Duration,
    tenant: &str,
    principal: &str,
    projection: &str,
    page_size: usize,
) -> Result<RebuildJob, AdapterError> {
    let started = std::time::Instant::now();
    let job = start_job(port, tenant, projection, principal, page_size).await?;
    let mut step = job.next_step();
    loop {
        let outcome = match run_step(port, &step).await {
            Ok(o) => o,
            Err(e) => {
                if let Err(f) = fail_job(port, tenant, &job.job_id, &e.to_string()).await {
                    tracing::warn!(job = %job.job_id, error = %f, "rebuild job not marked failed");
                }
                return Err(e);
            }
        };
        match outcome {
            StepOutcome::Done(done) => return Ok(done),
            StepOutcome::Next(next) => match queue {
                Some(q) if started.elapsed() >= budget => {
                    q.send(&next).await?;
                    return port.load_job(tenant, &job.job_id).await?.ok_or_else(|| {
                        AdapterError::NotFound(format!("no rebuild job {}", job.job_id))
                    });
                }
                _ => step = next,
            },
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn letter(tenant: Option<&str>, event_id: &str) -> DeadLetter {
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
        assert_eq!(
            queue_name("http://sqs.us-east-1.localhost:4566/000000000000/p-payment-dlq.fifo"),
            "p-payment-dlq.fifo"
        );
    }
}
