//! The generic SQS batch runner behind every domain function.
//!
//! For each message, in batch order: decode the envelope, load the aggregate's history up to
//! the event, call every subscribed pure handler, and append their follow-on events (with
//! deterministic ids, so a re-run appends nothing new). Outcomes:
//! - success: the message is acknowledged;
//! - transient failure (throttling, timeouts, a sequence race): reported in
//!   `batchItemFailures`, so SQS redelivers it and, after maxReceiveCount, moves it to the DLQ;
//! - permanent failure (undecodable message, business-rule rejection, invalid follow-on): sent
//!   to the domain's DLQ at once with its reason, then acknowledged. Never looped.
//!
//! On FIFO queues a failure fails every later message of the same group in the batch, so
//! no event of an aggregate is handled before an earlier one.

use std::collections::HashSet;

use aws_lambda_events::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent, SqsMessage};
use aws_sdk_sqs::types::MessageAttributeValue;
use chrono::Utc;
use lending_events::envelope::StreamId;
use lending_events::handlers::{DomainHandler, HandlerInput};
use lending_events::upcast::upcast;
use lending_events::{CoreError, EventEnvelope, NewEvent};

use crate::error::{classify, AdapterError};
use crate::store::EventStore;

/// Where permanently failing messages go, with their reason.
#[derive(Clone)]
pub struct DeadLetters {
    pub client: aws_sdk_sqs::Client,
    pub dlq_url: String,
}

pub struct BatchRunner<S> {
    store: S,
    handlers: Vec<&'static dyn DomainHandler>,
    dead_letters: Option<DeadLetters>,
}

/// What happened to one message.
#[derive(Debug, PartialEq)]
pub enum Outcome {
    Done,
    /// Left on the queue for a retry.
    Retry(String),
    /// Moved to the DLQ with this reason.
    DeadLettered(String),
}

impl<S: EventStore> BatchRunner<S> {
    pub fn new(
        store: S,
        handlers: Vec<&'static dyn DomainHandler>,
        dead_letters: Option<DeadLetters>,
    ) -> Self {
        BatchRunner {
            store,
            handlers,
            dead_letters,
        }
    }

    pub fn store(&self) -> &S {
        &self.store
    }

    pub async fn handle(&self, event: SqsEvent) -> SqsBatchResponse {
        let mut failed_groups: HashSet<String> = HashSet::new();
        let mut response = SqsBatchResponse::default();
        for msg in &event.records {
            let id = msg.message_id.clone().unwrap_or_default();
            let group = msg.attributes.get("MessageGroupId").cloned();
            let outcome = match &group {
                Some(g) if failed_groups.contains(g) => {
                    Outcome::Retry("an earlier message of this group failed".into())
                }
                _ => self.process(msg).await,
            };
            if let Outcome::Retry(why) = &outcome {
                tracing::warn!(message_id = %id, reason = %why, "message left for retry");
                if let Some(g) = group {
                    failed_groups.insert(g);
                }
                let mut f = BatchItemFailure::default();
                f.item_identifier = id;
                response.batch_item_failures.push(f);
            }
        }
        response
    }

    /// Process one message to an outcome; never panics, never loses the message.
    pub async fn process(&self, msg: &SqsMessage) -> Outcome {
        let body = msg.body.as_deref().unwrap_or("");
        let result = match serde_json::from_str::<EventEnvelope>(body) {
            Ok(event) => self.run_handlers(&upcast(event)).await,
            Err(e) => Err(AdapterError::Decode(format!(
                "message body is not an event envelope: {e}"
            ))),
        };
        match result {
            Ok(()) => Outcome::Done,
            Err(e) if e.is_transient() => Outcome::Retry(e.to_string()),
            Err(e) => {
                let reason = e.to_string();
                match self.dead_letter(msg, &reason).await {
                    Ok(()) => Outcome::DeadLettered(reason),
                    Err(dl) => Outcome::Retry(format!("{reason}; and the DLQ send failed: {dl}")),
                }
            }
        }
    }

    async fn run_handlers(&self, event: &EventEnvelope) -> Result<(), AdapterError> {
        let subscribed: Vec<_> = self
            .handlers
            .iter()
            .filter(|h| h.subscriptions().contains(&event.event_type.as_str()))
            .collect();
        if subscribed.is_empty() {
            return Ok(());
        }
        let history = self
            .store
            .history_until(event.stream(), event.sequence)
            .await?;
        if history.last().map(|e| e.event_id) != Some(event.event_id) {
            // The store must hold what the stream delivered; if not, wait for it.
            return Err(AdapterError::Transient(format!(
                "event {} not found at sequence {} of its stream",
                event.event_id, event.sequence
            )));
        }
        let now = Utc::now();
        for h in subscribed {
            let started = std::time::Instant::now();
            let related = match h.related(event) {
                Some((aggregate_type, aggregate_id)) => {
                    let stream = StreamId {
                        tenant_id: &event.metadata.tenant_id,
                        aggregate_type,
                        aggregate_id: &aggregate_id,
                    };
                    let related = self.store.history_until(stream, u64::MAX / 2).await?;
                    related.into_iter().map(upcast).collect()
                }
                None => Vec::new(),
            };
            let input = HandlerInput {
                event,
                history: &history,
                related: &related,
            };
            let follow_ons = h.handle(&input).map_err(AdapterError::Core)?;
            let new_events = follow_ons
                .iter()
                .enumerate()
                .map(|(i, f)| NewEvent::follow_on(event, h.name(), i, f, now))
                .collect::<Result<Vec<_>, CoreError>>()?;
            for chunk in new_events.chunks(25) {
                self.store.append(chunk.to_vec(), now).await?;
            }
            tracing::info!(handler = h.name(), event_id = %event.event_id, event_type = %event.event_type,
                correlation_id = %event.metadata.correlation_id, follow_ons = new_events.len(),
                duration_ms = started.elapsed().as_secs_f64() * 1000.0, "handled");
        }
        Ok(())
    }

    async fn dead_letter(&self, msg: &SqsMessage, reason: &str) -> Result<(), AdapterError> {
        let Some(dl) = &self.dead_letters else {
            return Err(AdapterError::Config("no DLQ configured".into()));
        };
        tracing::error!(message_id = ?msg.message_id, %reason, "dead-lettering message");
        let attr = |v: &str| {
            MessageAttributeValue::builder()
                .data_type("String")
                .string_value(v)
                .build()
                .map_err(|e| AdapterError::Aws(e.to_string()))
        };
        let group = msg
            .attributes
            .get("MessageGroupId")
            .cloned()
            .unwrap_or_else(|| "unknown".into());
        let dedup = msg
            .message_id
            .clone()
            .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
        let truncated: String = reason.chars().take(1000).collect();
        dl.client
            .send_message()
            .queue_url(&dl.dlq_url)
            .message_body(
                msg.body
                    .clone()
                    .filter(|b| !b.is_empty())
                    .unwrap_or_else(|| "(empty body)".into()),
            )
            .message_group_id(group)
            .message_deduplication_id(dedup)
            .message_attributes("failureReason", attr(&truncated)?)
            .message_attributes("failureClass", attr("permanent")?)
            .send()
            .await
            .map_err(|e| classify("SendMessage(DLQ)", e))?;
        Ok(())
    }
}
