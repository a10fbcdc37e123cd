//! `POST /replay`: send stored events to their domain queues again.
//!
//! Body: `{"aggregateType", "aggregateId"}` (the aggregate's whole history) or
//! `{"eventType", "from", "to"}` (one type in a recordedAt window, from the `byType` index),
//! plus optional `"handlers": [...]` (default: every subscriber), `"dryRun": true` (answer
//! 200 with what would be sent, send nothing) and `"rerun": true` (run handlers again even
//! where they completed; their follow-on ids are deterministic, so nothing is duplicated).
//!
//! Each message is the stored envelope with the same MessageGroupId as dispatch (so order per
//! aggregate holds) and MessageDeduplicationId `<eventId>:replay:<replayId>` (dispatch's
//! id is the bare eventId, so a replay is never swallowed by FIFO deduplication), with the
//! message attributes `replay` = the replay id, `handlers` = the chosen handlers of that
//! domain (when given) and `rerun` = `true` (when asked). The batch runner honours them:
//! without `rerun`, handlers that completed the event before skip it as usual.
//!
//! With `"subscriptions": [ids]` the selected events that a subscription's filter matches
//! go to the delivery queue for it (in its per-aggregate group, so order holds), delivered
//! again even where they were delivered before; alone, nothing goes to the handlers.

use std::collections::BTreeMap;
use std::sync::Arc;

use aws_sdk_sqs::types::{MessageAttributeValue, SendMessageBatchRequestEntry};
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use lending_events::{Domain, EventEnvelope};
use serde::Deserialize;
use serde_json::{json, Value};

use super::reads::parse_window;
use super::Ops;
use crate::error::{classify, AdapterError};
use crate::http::auth::admitted;
use crate::http::error::ApiError;
use crate::http::request::{json_body, stream_of};
use crate::queue::{Publisher, QueuePublisher};
use crate::store::indexes::events_by_type;
use crate::store::{DynamoStore, EventStore};
use crate::subscriptions::matching::{delivery_message, DeliveryKind};
use crate::subscriptions::repo::{StoredSubscription, SubscriptionStore};
use crate::topology::subscribers;

/// At most this many events per replay request; narrow the window for more.
pub const MAX_REPLAY_EVENTS: usize = 1000;

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ReplayRequest {
    pub aggregate_type: Option<String>,
    pub aggregate_id: Option<String>,
    pub event_type: Option<String>,
    pub from: Option<String>,
    pub to: Option<String>,
    pub handlers: Option<Vec<String>>,
    #[serde(default)]
    pub dry_run: bool,
    #[serde(default)]
    pub rerun: bool,
    /// Subscription ids: their matching events are delivered to them again. Alone, only
    /// to them; with `handlers`, to both.
    pub subscriptions: Option<Vec<String>>,
}

/// One message a replay sends (or would send).
#[derive(Debug, Clone)]
pub struct Planned {
    pub event: EventEnvelope,
    pub domain: Domain,
    /// The handlers of that domain that will see it.
    pub handlers: Vec<&'static str>,
}

/// Messages for `events`, in order: one per (event, domain) that has a chosen subscriber.
pub fn plan(events: Vec<EventEnvelope>, chosen: Option<&[String]>) -> Vec<Planned> {
    let mut out = Vec::new();
    for e in events {
        let mut per_domain: BTreeMap<Domain, Vec<&'static str>> = BTreeMap::new();
        for (h, d) in subscribers(&e.event_type) {
            if chosen.is_none_or(|c| c.iter().any(|x| x == h)) {
                per_domain.entry(d).or_default().push(h);
            }
        }
        for (domain, handlers) in per_domain {
            out.push(Planned {
                event: e.clone(),
                domain,
                handlers,
            });
        }
    }
    out
}

fn attr(v: &str) -> Result<MessageAttributeValue, AdapterError> {
    MessageAttributeValue::builder()
        .data_type("String")
        .string_value(v)
        .build()
        .map_err(|e| AdapterError::Aws(e.to_string()))
}

/// Send planned messages to their domain queues, ten per call, in order. Returns how many
/// SQS accepted; an error names the first call that failed.
pub async fn send(
    sqs: &aws_sdk_sqs::Client,
    queue_url: impl Fn(Domain) -> Option<String>,
    planned: &[Planned],
    replay_id: &str,
    explicit_handlers: bool,
    rerun: bool,
) -> Result<usize, AdapterError> {
    let mut per_queue: BTreeMap<String, Vec<&Planned>> = BTreeMap::new();
    for p in planned {
        let url = queue_url(p.domain).ok_or_else(|| {
            AdapterError::Config(format!("no queue configured for domain {}", p.domain))
        })?;
        per_queue.entry(url).or_default().push(p);
    }
    let mut sent = 0;
    for (url, msgs) in per_queue {
        for chunk in msgs.chunks(10) {
            let mut entries = Vec::new();
            for (i, p) in chunk.iter().enumerate() {
                let body = serde_json::to_string(&p.event)
                    .map_err(|e| AdapterError::Decode(e.to_string()))?;
                let mut b = SendMessageBatchRequestEntry::builder()
                    .id(i.to_string())
                    .message_body(body)
                    .message_group_id(p.event.stream().message_group())
                    .message_deduplication_id(format!("{}:replay:{replay_id}", p.event.event_id))
                    .message_attributes("eventType", attr(&p.event.event_type)?)
                    .message_attributes("replay", attr(replay_id)?);
                if explicit_handlers {
                    b = b.message_attributes("handlers", attr(&p.handlers.join(","))?);
                }
                if rerun {
                    b = b.message_attributes("rerun", attr("true")?);
                }
                entries.push(b.build().map_err(|e| AdapterError::Aws(e.to_string()))?);
            }
            let out = sqs
                .send_message_batch()
                .queue_url(&url)
                .set_entries(Some(entries))
                .send()
                .await
                .map_err(|e| classify("SendMessageBatch(replay)", e))?;
            if let Some(f) = out.failed().first() {
                return Err(AdapterError::Transient(format!(
                    "SendMessageBatch(replay): {} of {} messages refused after {sent} sent: {}",
                    out.failed().len(),
                    chunk.len(),
                    f.message().unwrap_or(f.code())
                )));
            }
            sent += out.successful().len();
        }
    }
    Ok(sent)
}

pub(crate) async fn post_replay(
    State(ops): State<Arc<Ops>>,
    req: Request,
) -> Result<Response, ApiError> {
    let principal = admitted(&req)?;
    let tenant = principal.tenant.clone();
    let r: ReplayRequest = json_body(req, 64 * 1024, "a replay request").await?;
    if let Some(hs) = &r.handlers {
        if hs.is_empty() {
            return Err(ApiError::bad(
                "handlers",
                "leave it out for every subscriber, or name at least one",
            ));
        }
        let known: Vec<&str> = lending_events::handlers::all()
            .iter()
            .map(|h| h.name())
            .collect();
        if let Some(u) = hs.iter().find(|h| !known.contains(&h.as_str())) {
            return Err(ApiError::bad(
                "handlers",
                format!("unknown handler {u:?}; known: {}", known.join(", ")),
            ));
        }
    }
    let events = match (&r.aggregate_type, &r.aggregate_id, &r.event_type) {
        (Some(at), Some(id), None) if r.from.is_none() && r.to.is_none() => {
            let stream = stream_of(&tenant, at, id)?;
            let store = DynamoStore::new(ops.dynamodb.clone(), &ops.config.table);
            let h = store.history(stream).await?;
            if h.len() > MAX_REPLAY_EVENTS {
                return Err(ApiError::bad(
                    "aggregateId",
                    format!("over {MAX_REPLAY_EVENTS} events; replay by eventType and a window"),
                ));
            }
            h
        }
        (None, None, Some(et)) => {
            if !lending_events::catalog::is_event_type_name(et) {
                return Err(ApiError::bad(
                    "eventType",
                    "must be Domain.Action with PascalCase segments, e.g. Loan.Funded",
                ));
            }
            let window = parse_window(
                Some(
                    r.from
                        .as_deref()
                        .ok_or_else(|| ApiError::bad("from", "required with eventType"))?,
                ),
                Some(
                    r.to.as_deref()
                        .ok_or_else(|| ApiError::bad("to", "required with eventType"))?,
                ),
            )?;
            let page = events_by_type(
                &ops.dynamodb,
                &ops.config.table,
                &tenant,
                et,
                &window,
                MAX_REPLAY_EVENTS + 1,
                None,
            )
            .await?;
            if page.events.len() > MAX_REPLAY_EVENTS {
                return Err(ApiError::bad(
                    "to",
                    format!("over {MAX_REPLAY_EVENTS} events in the window; narrow it"),
                ));
            }
            page.events
        }
        _ => {
            return Err(ApiError::bad(
                "aggregateType",
                "give either aggregateType and aggregateId, or eventType, from and to",
            ))
        }
    };
    let event_count = events.len();
    let subscriptions = replay_subscriptions(&ops, &tenant, r.subscriptions.as_deref()).await?;
    let deliveries: Vec<(uuid::Uuid, EventEnvelope)> = subscriptions
        .iter()
        .flat_map(|s| {
            events
                .iter()
                .filter(|e| s.subscription.filter.matches(e))
                .map(|e| (s.subscription.subscription_id, e.clone()))
        })
        .collect();
    let planned = if r.subscriptions.is_some() && r.handlers.is_none() {
        Vec::new()
    } else {
        plan(events, r.handlers.as_deref())
    };
    let replay_id = uuid::Uuid::new_v4().to_string();
    let messages: Vec<Value> = planned
        .iter()
        .map(|p| {
            json!({"eventId": p.event.event_id, "eventType": p.event.event_type,
                "aggregateType": p.event.aggregate_type, "aggregateId": p.event.aggregate_id,
                "sequence": p.event.sequence, "domain": p.domain, "handlers": p.handlers})
        })
        .collect();
    let delivery_view: Vec<Value> = deliveries
        .iter()
        .map(|(s, e)| json!({"subscriptionId": s, "eventId": e.event_id, "eventType": e.event_type,
            "aggregateType": e.aggregate_type, "aggregateId": e.aggregate_id, "sequence": e.sequence}))
        .collect();
    let mut answer = json!({"replayId": replay_id, "dryRun": r.dry_run, "rerun": r.rerun,
        "events": event_count, "messages": messages, "deliveries": delivery_view, "sent": 0});
    if r.dry_run {
        return Ok(Json(answer).into_response());
    }
    let sent = send(
        &ops.sqs,
        |d| ops.config.queue_url(d).map(str::to_string),
        &planned,
        &replay_id,
        r.handlers.is_some(),
        r.rerun,
    )
    .await
    .map_err(|e| match e {
        AdapterError::Config(m) => {
            ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", m, None)
        }
        other => other.into(),
    })?;
    let sent = sent + send_deliveries(&ops, &deliveries, &replay_id).await?;
    answer["sent"] = json!(sent);
    // Recorded once sent (a dry run is not an action); the replay id ties record and answer.
    let selection = match &r.event_type {
        Some(et) => json!({"eventType": et, "from": r.from, "to": r.to}),
        None => json!({"aggregateType": r.aggregate_type, "aggregateId": r.aggregate_id}),
    };
    let mut record = json!({"replayId": replay_id, "selection": selection, "rerun": r.rerun,
        "events": event_count, "messages": planned.len(), "sent": sent});
    if let Some(hs) = &r.handlers {
        record["handlers"] = json!(hs);
    }
    if let Some(ids) = &r.subscriptions {
        record["subscriptions"] = json!(ids);
    }
    let store = DynamoStore::new(ops.dynamodb.clone(), &ops.config.table);
    crate::operator::record(
        &store,
        &tenant,
        &principal.subject,
        "Ops.ReplayRequested",
        record,
    )
    .await?;
    tracing::info!(replay_id = %replay_id, events = event_count, sent, rerun = r.rerun, "replay sent");
    Ok((StatusCode::ACCEPTED, Json(answer)).into_response())
}

/// The subscriptions a replay names, each the caller's tenant's (else 400 on
/// `subscriptions`).
async fn replay_subscriptions(
    ops: &Ops,
    tenant: &str,
    ids: Option<&[String]>,
) -> Result<Vec<StoredSubscription>, ApiError> {
    let Some(ids) = ids else {
        return Ok(Vec::new());
    };
    if ids.is_empty() || ids.len() > 64 {
        return Err(ApiError::bad(
            "subscriptions",
            "leave it out, or name 1 to 64 subscription ids",
        ));
    }
    let store = SubscriptionStore::new(DynamoStore::new(ops.dynamodb.clone(), &ops.config.table));
    let mut out = Vec::new();
    for (i, raw) in ids.iter().enumerate() {
        let unknown = || {
            ApiError::bad(
                &format!("subscriptions[{i}]"),
                format!("no subscription {raw}"),
            )
        };
        let id = uuid::Uuid::parse_str(raw).map_err(|_| unknown())?;
        out.push(store.get(tenant, &id).await?.ok_or_else(unknown)?);
    }
    Ok(out)
}

/// Send replayed deliveries to the delivery queue; how many SQS accepted.
async fn send_deliveries(
    ops: &Ops,
    deliveries: &[(uuid::Uuid, EventEnvelope)],
    replay_id: &str,
) -> Result<usize, ApiError> {
    if deliveries.is_empty() {
        return Ok(0);
    }
    let Some(url) = ops.config.subscriptions.delivery_queue_url.as_deref() else {
        return Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "no delivery queue configured",
            None,
        ));
    };
    let messages = deliveries
        .iter()
        .map(|(s, e)| delivery_message(s, e, DeliveryKind::Replay, Some(replay_id)))
        .collect::<Result<Vec<_>, _>>()?;
    let failed = QueuePublisher::new(ops.sqs.clone())
        .send(url, &messages)
        .await?;
    if !failed.is_empty() {
        return Err(AdapterError::Transient(format!(
            "{} of {} replayed deliveries were not queued",
            failed.len(),
            messages.len()
        ))
        .into());
    }
    Ok(messages.len())
}
