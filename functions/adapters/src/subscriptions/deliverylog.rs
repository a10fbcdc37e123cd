//! The delivery log: every attempt to deliver an event to a subscription (status, latency,
//! error), per subscription (`GET /subscriptions/{id}/deliveries`) and per event (beside
//! the handlers in `GET /correlations/{id}`); and the circuit items of targets.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue};
use chrono::{DateTime, Utc};
use lending_events::envelope::format_time;
use lending_events::EventEnvelope;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use uuid::Uuid;

use crate::error::{classify, AdapterError};
use crate::http::cursor::CursorKey;
use crate::http::error::ApiError;
use crate::ledger::RECORD_TTL;
use crate::store::layout::{attempt_sk, attempts_pk, delivery_pk, subscription_sk};

type Item = HashMap<String, AttributeValue>;

fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

fn n(v: impl ToString) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

fn str_of<'a>(item: &'a Item, k: &str) -> Option<&'a str> {
    item.get(k).and_then(|v| v.as_s().ok()).map(String::as_str)
}

fn num_of(item: &Item, k: &str) -> Option<u64> {
    item.get(k)
        .and_then(|v| v.as_n().ok())
        .and_then(|v| v.parse().ok())
}

/// How one attempt ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum AttemptOutcome {
    Delivered,
    /// Failed; it will be tried again.
    Retrying,
    /// Failed for good: in the subscription's dead letters.
    DeadLettered,
}

impl AttemptOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            AttemptOutcome::Delivered => "DELIVERED",
            AttemptOutcome::Retrying => "RETRYING",
            AttemptOutcome::DeadLettered => "DEAD_LETTERED",
        }
    }
}

/// One attempt, as logged.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Attempt {
    pub subscription_id: Uuid,
    pub event_id: Uuid,
    pub event_type: String,
    pub aggregate_type: String,
    pub aggregate_id: String,
    pub sequence: u64,
    pub correlation_id: String,
    pub outcome: AttemptOutcome,
    /// The HTTP status of a webhook's answer (none for a network error or an SQS target).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    pub duration_ms: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The `webhook-id` (the eventId: the same on every retry).
    pub webhook_id: String,
    pub at: DateTime<Utc>,
}

impl Attempt {
    pub fn of(
        subscription: &Uuid,
        event: &EventEnvelope,
        outcome: AttemptOutcome,
        at: DateTime<Utc>,
    ) -> Attempt {
        Attempt {
            subscription_id: *subscription,
            event_id: event.event_id,
            event_type: event.event_type.clone(),
            aggregate_type: event.aggregate_type.clone(),
            aggregate_id: event.aggregate_id.clone(),
            sequence: event.sequence,
            correlation_id: event.metadata.correlation_id.clone(),
            outcome,
            status: None,
            duration_ms: 0,
            error: None,
            webhook_id: event.event_id.to_string(),
            at,
        }
    }
}

/// What a logged attempt tells the delivery function.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Logged {
    /// Attempts of this event to this subscription that count toward the retry limit.
    pub counted_attempts: u32,
    /// This attempt ended the delivery for the first time (delivered or dead-lettered).
    pub first_finish: bool,
}

#[derive(Clone)]
pub struct DeliveryLog {
    client: aws_sdk_dynamodb::Client,
    table: String,
    cursor_key: CursorKey,
}

impl DeliveryLog {
    pub fn new(
        client: aws_sdk_dynamodb::Client,
        table: impl Into<String>,
        cursor_key: CursorKey,
    ) -> DeliveryLog {
        DeliveryLog {
            client,
            table: table.into(),
            cursor_key,
        }
    }

    pub fn client(&self) -> &aws_sdk_dynamodb::Client {
        &self.client
    }

    pub fn table(&self) -> &str {
        &self.table
    }

    /// Log an attempt: an item in the subscription's log, and the event's delivery record
    /// for this subscription updated. `counted`: the attempt counts toward the retry limit
    /// (probes of an open circuit do not).
    pub async fn record(
        &self,
        tenant: &str,
        attempt: &Attempt,
        counted: bool,
    ) -> Result<Logged, AdapterError> {
        let body =
            serde_json::to_string(attempt).map_err(|e| AdapterError::Decode(e.to_string()))?;
        let expires = attempt.at.timestamp() + RECORD_TTL.as_secs() as i64;
        self.client
            .put_item()
            .table_name(&self.table)
            .item("pk", s(attempts_pk(tenant, &attempt.subscription_id)))
            .item("sk", n(attempt_sk(attempt.at)))
            .item("kind", s("deliveryAttempt"))
            .item("attempt", s(body))
            .item("expiresAt", n(expires))
            .send()
            .await
            .map_err(|e| classify("PutItem(delivery attempt)", e))?;
        let mut entry = HashMap::from([
            ("outcome".to_string(), s(attempt.outcome.as_str())),
            ("at".to_string(), s(format_time(&attempt.at))),
            ("durationMs".to_string(), n(attempt.duration_ms)),
        ]);
        if let Some(st) = attempt.status {
            entry.insert("status".into(), n(st));
        }
        if let Some(e) = &attempt.error {
            entry.insert("error".into(), s(e.chars().take(500).collect::<String>()));
        }
        let finished = attempt.outcome != AttemptOutcome::Retrying;
        let mut sets = vec![
            "#kind = :kind",
            "subscriptionId = :sub",
            "#status = :status",
            "durationMs = :d",
            "lastAttemptAt = :at",
            "expiresAt = :exp",
            "#log = list_append(if_not_exists(#log, :empty), :entry)",
        ];
        let mut req = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(delivery_pk(tenant, &attempt.event_id)))
            .key("sk", n(subscription_sk(&attempt.subscription_id)))
            .expression_attribute_names("#kind", "kind")
            .expression_attribute_names("#status", "status")
            .expression_attribute_names("#log", "log")
            .expression_attribute_values(":kind", s("delivery"))
            .expression_attribute_values(":sub", s(attempt.subscription_id.to_string()))
            .expression_attribute_values(":status", s(attempt.outcome.as_str()))
            .expression_attribute_values(":d", n(attempt.duration_ms))
            .expression_attribute_values(":at", s(format_time(&attempt.at)))
            .expression_attribute_values(":exp", n(expires))
            .expression_attribute_values(":empty", AttributeValue::L(vec![]))
            .expression_attribute_values(
                ":entry",
                AttributeValue::L(vec![AttributeValue::M(entry)]),
            )
            .expression_attribute_values(":one", n(1))
            .expression_attribute_values(":counted", n(u8::from(counted)))
            .return_values(ReturnValue::AllOld);
        if let Some(st) = attempt.status {
            sets.push("lastStatus = :ls");
            req = req.expression_attribute_values(":ls", n(st));
        }
        if let Some(e) = &attempt.error {
            sets.push("lastError = :le");
            req =
                req.expression_attribute_values(":le", s(e.chars().take(500).collect::<String>()));
        }
        if finished {
            sets.push("finishedAt = if_not_exists(finishedAt, :at)");
        }
        let update = format!(
            "SET {} ADD attempts :one, countedAttempts :counted",
            sets.join(", ")
        );
        let old = req
            .update_expression(update)
            .send()
            .await
            .map_err(|e| classify("UpdateItem(delivery)", e))?;
        let old = old.attributes().cloned().unwrap_or_default();
        let counted_before = num_of(&old, "countedAttempts").unwrap_or(0) as u32;
        Ok(Logged {
            counted_attempts: counted_before + u32::from(counted),
            first_finish: finished && !old.contains_key("finishedAt"),
        })
    }

    /// Whether the event was already delivered to the subscription (a redelivered message).
    pub async fn delivered(
        &self,
        tenant: &str,
        subscription: &Uuid,
        event_id: &Uuid,
    ) -> Result<bool, AdapterError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", s(delivery_pk(tenant, event_id)))
            .key("sk", n(subscription_sk(subscription)))
            .projection_expression("#status")
            .expression_attribute_names("#status", "status")
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| classify("GetItem(delivery)", e))?;
        Ok(out
            .item()
            .and_then(|i| str_of(i, "status"))
            .is_some_and(|st| st == "DELIVERED" || st == "DEAD_LETTERED"))
    }

    /// A page of a subscription's attempts, newest first, and the cursor of the next page.
    pub async fn attempts(
        &self,
        tenant: &str,
        subscription: &Uuid,
        limit: usize,
        cursor: Option<&str>,
    ) -> Result<(Vec<Value>, Option<String>), ApiError> {
        let sub = subscription.to_string();
        let query = ["deliveries", tenant, sub.as_str()];
        let start = cursor
            .map(|c| self.cursor_key.open(&query, c))
            .transpose()?;
        let pk = attempts_pk(tenant, subscription);
        if let Some(k) = &start {
            if k.get("pk").and_then(|v| v.as_s().ok()) != Some(&pk) {
                return Err(crate::http::cursor::invalid_cursor());
            }
        }
        let out = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("pk = :pk")
            .expression_attribute_values(":pk", s(&pk))
            .scan_index_forward(false)
            .limit(limit as i32)
            .set_exclusive_start_key(start)
            .send()
            .await
            .map_err(|e| ApiError::from(classify("Query(delivery log)", e)))?;
        let entries: Vec<Value> = out
            .items()
            .iter()
            .filter_map(|i| str_of(i, "attempt"))
            .filter_map(|b| serde_json::from_str(b).ok())
            .collect();
        let next = out
            .last_evaluated_key()
            .map(|k| self.cursor_key.seal(&query, &k.clone()));
        Ok((entries, next))
    }
}

/// The deliveries of one event, per subscription (for the correlation tree).
pub async fn deliveries_of_event(
    client: &aws_sdk_dynamodb::Client,
    table: &str,
    tenant: &str,
    event_id: &Uuid,
) -> Result<Vec<Value>, AdapterError> {
    let out = client
        .query()
        .table_name(table)
        .key_condition_expression("pk = :pk")
        .expression_attribute_values(":pk", s(delivery_pk(tenant, event_id)))
        .send()
        .await
        .map_err(|e| classify("Query(deliveries of event)", e))?;
    Ok(out
        .items()
        .iter()
        .map(|i| {
            let log: Vec<Value> = match i.get("log") {
                Some(AttributeValue::L(l)) => l
                    .iter()
                    .filter_map(|e| e.as_m().ok())
                    .map(|m| {
                        json!({"outcome": str_of(m, "outcome"), "at": str_of(m, "at"),
                            "durationMs": num_of(m, "durationMs"), "status": num_of(m, "status"),
                            "error": str_of(m, "error")})
                    })
                    .collect(),
                _ => Vec::new(),
            };
            json!({
                "subscriptionId": str_of(i, "subscriptionId"),
                "status": str_of(i, "status"),
                "attempts": num_of(i, "attempts").unwrap_or(0),
                "lastStatus": num_of(i, "lastStatus"),
                "durationMs": num_of(i, "durationMs"),
                "lastError": str_of(i, "lastError"),
                "log": log,
            })
        })
        .collect())
}
