//! Dead-letter queue tools: list, redrive, purge.
//!
//! - **list** peeks at every message of a DLQ (receive with a short visibility timeout,
//!   then visibility back to 0, so nothing is consumed) and says, for each, the event, the
//!   handler and the failure reason: the runner's `failureReason` attribute when it
//!   dead-lettered the message itself, else (SQS moved it after maxReceiveCount) the last
//!   error of the event's FAILED processing records.
//! - **redrive** sends messages back to their source queue (same group, a fresh dedup id
//!   `<eventId>:redrive:<uuid>`, attribute `redrive`), then deletes them from the DLQ.
//!   FAILED processing records are claimable again, so the handlers run again.
//! - **purge** deletes the messages a selection picks (all of them, or one tenant's).
//!
//! Redrive and purge are reached only through [`super`] (the HTTP routes and
//! `evctl dlq` alike), which picks per tenant and records each action as an `Ops.*` event.
//!
//! FIFO note: while a message of a group is in flight SQS hands out no later message of
//! that group, so a single listing shows at most the first ten messages of each group.

use std::collections::HashMap;

use aws_sdk_sqs::types::{
    ChangeMessageVisibilityBatchRequestEntry, DeleteMessageBatchRequestEntry,
    MessageAttributeValue, MessageSystemAttributeName,
};
use serde::Serialize;
use serde_json::Value;

use lending_events::Domain;

use crate::error::{classify, AdapterError};
use crate::store::layout::{attr, batch_get_pks, event_records_prefix, record_pk, str_of, Read};
use crate::topology::subscribers;

/// One dead letter, as listed.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DeadLetter {
    pub domain: Domain,
    pub message_id: String,
    #[serde(skip)]
    pub receipt_handle: String,
    pub group: String,
    pub event_id: Option<String>,
    pub event_type: Option<String>,
    pub aggregate: Option<String>,
    pub tenant: Option<String>,
    pub handler: Option<String>,
    pub reason: String,
    /// `runner` (the runner dead-lettered it with a reason) or `maxReceiveCount` (SQS moved it).
    pub moved_by: String,
    pub failure_class: Option<String>,
    pub receive_count: Option<String>,
    pub failed_at: Option<String>,
    pub source_queue: Option<String>,
    #[serde(skip)]
    pub body: String,
    #[serde(skip)]
    pub attributes: HashMap<String, String>,
}

/// How long a listing hides messages (they are made visible again at once afterwards).
const PEEK_VISIBILITY_SECS: i32 = 20;

/// Receive every message of the queue (up to `max`), hidden for a short time. The caller
/// must release or delete them.
async fn receive_all(
    sqs: &aws_sdk_sqs::Client,
    url: &str,
    domain: Domain,
    max: usize,
) -> Result<Vec<DeadLetter>, AdapterError> {
    let mut out: Vec<DeadLetter> = Vec::new();
    let mut empty_polls = 0;
    while out.len() < max && empty_polls < 2 {
        let res = sqs
            .receive_message()
            .queue_url(url)
            .max_number_of_messages(10)
            .visibility_timeout(PEEK_VISIBILITY_SECS)
            .wait_time_seconds(if empty_polls == 0 { 0 } else { 1 })
            .message_attribute_names("All")
            .message_system_attribute_names(MessageSystemAttributeName::All)
            .send()
            .await
            .map_err(|e| classify("ReceiveMessage(DLQ)", e))?;
        let msgs = res.messages();
        if msgs.is_empty() {
            empty_polls += 1;
            continue;
        }
        empty_polls = 0;
        for m in msgs {
            let attributes: HashMap<String, String> = m
                .message_attributes()
                .map(|a| {
                    a.iter()
                        .filter_map(|(k, v)| v.string_value().map(|s| (k.clone(), s.to_string())))
                        .collect()
                })
                .unwrap_or_default();
            let sys = m.attributes();
            let sys_get = |k: MessageSystemAttributeName| sys.and_then(|a| a.get(&k)).cloned();
            let body = m.body().unwrap_or("").to_string();
            let env: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
            let get = |p: &str| env.pointer(p).and_then(Value::as_str).map(str::to_string);
            let reason_attr = attributes.get("failureReason").cloned();
            // The runner's reasons read "<handler>: <error>".
            let handler = reason_attr.as_deref().and_then(|r| {
                let h = r.split(": ").next()?;
                lending_events::handlers::all()
                    .iter()
                    .any(|x| x.name() == h)
                    .then(|| h.to_string())
            });
            out.push(DeadLetter {
                domain,
                message_id: m.message_id().unwrap_or("").to_string(),
                receipt_handle: m.receipt_handle().unwrap_or("").to_string(),
                group: sys_get(MessageSystemAttributeName::MessageGroupId).unwrap_or_default(),
                event_id: get("/eventId"),
                event_type: get("/eventType"),
                aggregate: get("/aggregateType")
                    .zip(get("/aggregateId"))
                    .map(|(t, i)| format!("{t}/{i}")),
                tenant: get("/metadata/tenantId"),
                handler,
                moved_by: if reason_attr.is_some() {
                    "runner".into()
                } else {
                    "maxReceiveCount".into()
                },
                reason: reason_attr.unwrap_or_default(),
                failure_class: attributes.get("failureClass").cloned(),
                receive_count: attributes
                    .get("receiveCount")
                    .cloned()
                    .or_else(|| sys_get(MessageSystemAttributeName::ApproximateReceiveCount)),
                failed_at: attributes.get("failedAt").cloned(),
                source_queue: attributes.get("sourceQueue").cloned(),
                body,
                attributes,
            });
        }
    }
    Ok(out)
}

async fn release(sqs: &aws_sdk_sqs::Client, url: &str, letters: &[&DeadLetter]) {
    for chunk in letters.chunks(10) {
        let entries: Vec<_> = chunk
            .iter()
            .enumerate()
            .filter_map(|(i, d)| {
                ChangeMessageVisibilityBatchRequestEntry::builder()
                    .id(i.to_string())
                    .receipt_handle(&d.receipt_handle)
                    .visibility_timeout(0)
                    .build()
                    .ok()
            })
            .collect();
        if let Err(e) = sqs
            .change_message_visibility_batch()
            .queue_url(url)
            .set_entries(Some(entries))
            .send()
            .await
        {
            tracing::warn!(error = %classify("ChangeMessageVisibilityBatch", e), "could not release DLQ messages");
        }
    }
}

/// Fill in reasons of messages SQS moved (no `failureReason`) from the FAILED processing
/// records of the event's subscribed handlers in that domain.
async fn explain(
    ddb: &aws_sdk_dynamodb::Client,
    table: &str,
    letters: &mut [DeadLetter],
) -> Result<(), AdapterError> {
    let mut pks = Vec::new();
    for d in letters.iter().filter(|d| d.reason.is_empty()) {
        if let (Some(t), Some(id), Some(et)) = (&d.tenant, &d.event_id, &d.event_type) {
            for (h, dom) in subscribers(et) {
                if dom == d.domain {
                    pks.push(record_pk(t, id, h));
                }
            }
        }
    }
    if pks.is_empty() {
        return Ok(());
    }
    let records = batch_get_pks(ddb, table, &pks, Read::Eventual).await?;
    for d in letters.iter_mut().filter(|d| d.reason.is_empty()) {
        let (Some(t), Some(id)) = (&d.tenant, &d.event_id) else {
            d.reason = "(not an event envelope)".into();
            continue;
        };
        let prefix = event_records_prefix(t, id);
        let failed = records.iter().find(|r| {
            str_of(r, attr::PK).is_some_and(|pk| pk.starts_with(&prefix))
                && str_of(r, attr::STATUS) != Some("COMPLETED")
        });
        match failed {
            Some(r) => {
                d.handler = str_of(r, attr::HANDLER).map(str::to_string);
                d.reason = str_of(r, "lastError")
                    .unwrap_or("(failed; no error recorded)")
                    .to_string();
                d.failure_class = str_of(r, "failureClass").map(str::to_string);
            }
            None => d.reason = "(moved after maxReceiveCount; no failed record found)".into(),
        }
    }
    Ok(())
}

/// List a DLQ without consuming it.
pub async fn list(
    sqs: &aws_sdk_sqs::Client,
    ddb: &aws_sdk_dynamodb::Client,
    table: &str,
    domain: Domain,
    dlq_url: &str,
    max: usize,
) -> Result<Vec<DeadLetter>, AdapterError> {
    let mut letters = receive_all(sqs, dlq_url, domain, max).await?;
    release(sqs, dlq_url, &letters.iter().collect::<Vec<_>>()).await;
    explain(ddb, table, &mut letters).await?;
    Ok(letters)
}

fn attr(v: &str) -> Result<MessageAttributeValue, AdapterError> {
    MessageAttributeValue::builder()
        .data_type("String")
        .string_value(v)
        .build()
        .map_err(|e| AdapterError::Aws(e.to_string()))
}

/// Redrive the messages `select` picks (all when it accepts everything) to `source_url`
/// (or each message's `sourceQueue` attribute when `source_url` is None). Returns the
/// redriven letters; the others are released untouched.
pub(crate) async fn redrive(
    sqs: &aws_sdk_sqs::Client,
    domain: Domain,
    dlq_url: &str,
    source_url: Option<&str>,
    select: impl Fn(&DeadLetter) -> bool,
) -> Result<Vec<DeadLetter>, AdapterError> {
    let letters = receive_all(sqs, dlq_url, domain, 10_000).await?;
    let (chosen, rest): (Vec<&DeadLetter>, Vec<&DeadLetter>) =
        letters.iter().partition(|d| select(d));
    release(sqs, dlq_url, &rest).await;
    let redrive_id = uuid::Uuid::new_v4().to_string();
    let mut done = Vec::new();
    let mut failure = None;
    for d in &chosen {
        let Some(target) = source_url.or(d.source_queue.as_deref()) else {
            failure = Some(AdapterError::Config(format!(
                "message {} names no source queue; give one",
                d.message_id
            )));
            break;
        };
        let dedup = format!(
            "{}:redrive:{redrive_id}",
            d.event_id.clone().unwrap_or_else(|| d.message_id.clone())
        );
        let mut req = sqs
            .send_message()
            .queue_url(target)
            .message_body(&d.body)
            .message_group_id(if d.group.is_empty() {
                "redrive"
            } else {
                &d.group
            })
            .message_deduplication_id(dedup)
            .message_attributes("redrive", attr(&redrive_id)?);
        if let Some(et) = &d.event_type {
            req = req.message_attributes("eventType", attr(et)?);
        }
        if let Err(e) = req.send().await {
            failure = Some(classify("SendMessage(redrive)", e));
            break;
        }
        sqs.delete_message()
            .queue_url(dlq_url)
            .receipt_handle(&d.receipt_handle)
            .send()
            .await
            .map_err(|e| classify("DeleteMessage(DLQ)", e))?;
        done.push((*d).clone());
    }
    let left: Vec<&DeadLetter> = chosen
        .iter()
        .filter(|d| !done.iter().any(|x| x.message_id == d.message_id))
        .copied()
        .collect();
    release(sqs, dlq_url, &left).await;
    match failure {
        Some(e) => Err(e),
        None => Ok(done),
    }
}

/// Delete the messages `select` picks and release the others. Never PurgeQueue: it would
/// take every tenant's messages and allows one call per 60 s per queue, while deleting is
/// immediate and can be repeated. Returns the deleted letters.
pub(crate) async fn purge(
    sqs: &aws_sdk_sqs::Client,
    domain: Domain,
    dlq_url: &str,
    select: impl Fn(&DeadLetter) -> bool,
) -> Result<Vec<DeadLetter>, AdapterError> {
    let mut deleted = Vec::new();
    loop {
        // Deleting frees each group for its next messages, so go round until a pass finds
        // nothing more to delete.
        let letters = receive_all(sqs, dlq_url, domain, 1000).await?;
        let (chosen, rest): (Vec<DeadLetter>, Vec<DeadLetter>) =
            letters.into_iter().partition(|d| select(d));
        release(sqs, dlq_url, &rest.iter().collect::<Vec<_>>()).await;
        if chosen.is_empty() {
            return Ok(deleted);
        }
        delete_all(sqs, dlq_url, &chosen).await?;
        deleted.extend(chosen);
    }
}

async fn delete_all(
    sqs: &aws_sdk_sqs::Client,
    dlq_url: &str,
    letters: &[DeadLetter],
) -> Result<(), AdapterError> {
    for chunk in letters.chunks(10) {
        let entries: Vec<_> = chunk
            .iter()
            .enumerate()
            .filter_map(|(i, d)| {
                DeleteMessageBatchRequestEntry::builder()
                    .id(i.to_string())
                    .receipt_handle(&d.receipt_handle)
                    .build()
                    .ok()
            })
            .collect();
        sqs.delete_message_batch()
            .queue_url(dlq_url)
            .set_entries(Some(entries))
            .send()
            .await
            .map_err(|e| classify("DeleteMessageBatch(DLQ)", e))?;
    }
    Ok(())
}
