//! The generic SQS batch runner behind every domain function.
//!
//! For each message, in batch order: decode the envelope, and for every subscribed handler
//! (by priority) that is switched on: claim its processing record ([`crate::ledger`]), load
//! the aggregate's history up to the event, call the pure handler, append its follow-on
//! events (deterministic ids, so a re-run appends nothing new), complete the record.
//! Outcomes:
//! - done: every subscribed handler completed (now or before); the message is acknowledged;
//! - transient failure (throttling, timeouts, a concurrent duplicate, a disabled handler):
//!   reported in `batchItemFailures` with its visibility set from the receive count
//!   (exponential backoff with full jitter), so SQS redelivers it later and, after
//!   maxReceiveCount, moves it to the DLQ;
//! - permanent failure (undecodable message, business-rule rejection, invalid follow-on):
//!   sent to the domain's DLQ at once with its reason, then acknowledged. Never looped.
//!
//! On FIFO queues a failure fails every later message of the same group in the batch (with
//! the same visibility), so no event of an aggregate is handled before an earlier one.
//!
//! The runner works through three ports: the [`EventStore`], the [`Ledger`] (processing
//! records, switches, statistics) and its [`DomainQueue`] (dead letters, visibility). The
//! Lambda functions give it the DynamoDB and SQS adapters; the unit tests the in-memory
//! ones; the local runner wraps the AWS ones to inject faults.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use aws_lambda_events::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent, SqsMessage};
use chrono::Utc;
use lending_events::envelope::StreamId;
use lending_events::handlers::{BoxedHandler, DomainHandler, HandlerInput};
use lending_events::upcast::upcast;
use lending_events::{CoreError, EventEnvelope, NewEvent};

use crate::error::AdapterError;
use crate::ledger::{BatchStats, Claim, FailureClass, Ledger, Work};
use crate::queue::{DomainQueue, VisibilityChange};
use crate::store::{Appended, EventStore};

mod delivery;
mod retry;
#[cfg(test)]
mod tests;

use delivery::Delivery;
pub use delivery::ReplayMarker;
pub use retry::{RetryPolicy, QUICK_ATTEMPTS};

pub struct BatchRunner<S, L, Q> {
    store: S,
    ledger: L,
    handlers: Vec<BoxedHandler>,
    queue: Q,
    retry: RetryPolicy,
}

/// What happened to one message.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Done,
    /// Left on the queue; visible again after the delay.
    Retry {
        reason: String,
        delay: Duration,
    },
    /// Moved to the DLQ with this reason.
    DeadLettered(String),
}

/// The end of one handler's work on one message.
enum Step {
    Done,
    Paused,
    Failed(AdapterError),
}

/// The batch loop every SQS consumer shares (the domain runners and the delivery function,
/// [`crate::subscriptions::delivery`]): messages in batch order, each to an [`Outcome`] by
/// `process`; on FIFO queues a message left for retry fails every later message of its
/// group in the batch (with the same delay), so nothing of a group overtakes an earlier
/// message. Messages left for retry are reported in `batchItemFailures` and kept invisible
/// for their delay on `queue`.
pub async fn run_batch<'a, Q, F, Fut>(
    event: &'a SqsEvent,
    queue: &Q,
    mut process: F,
) -> SqsBatchResponse
where
    Q: DomainQueue,
    F: FnMut(&'a SqsMessage) -> Fut,
    Fut: std::future::Future<Output = Outcome>,
{
    let mut failed_groups: HashMap<String, Duration> = HashMap::new();
    let mut response = SqsBatchResponse::default();
    let mut visibility: Vec<VisibilityChange> = Vec::new();
    for msg in &event.records {
        let id = msg.message_id.clone().unwrap_or_default();
        let group = delivery::group(msg).cloned();
        let outcome = match group.as_ref().and_then(|g| failed_groups.get(g)) {
            Some(delay) => Outcome::Retry {
                reason: "an earlier message of its group failed".into(),
                delay: *delay,
            },
            None => process(msg).await,
        };
        if let Outcome::Retry { reason, delay } = &outcome {
            tracing::warn!(message_id = %id, %reason, delay_ms = delay.as_millis() as u64, "message left for retry");
            if let Some(g) = group {
                failed_groups.entry(g).or_insert(*delay);
            }
            if let Some(handle) = &msg.receipt_handle {
                visibility.push(VisibilityChange {
                    receipt_handle: handle.clone(),
                    delay: *delay,
                });
            }
            let mut f = BatchItemFailure::default();
            f.item_identifier = id;
            response.batch_item_failures.push(f);
        }
    }
    if !visibility.is_empty() {
        if let Err(e) = queue.change_visibility(&visibility).await {
            tracing::warn!(error = %e, "could not set retry delays");
        }
    }
    response
}

impl<S: EventStore, L: Ledger, Q: DomainQueue> BatchRunner<S, L, Q> {
    pub fn new(
        store: S,
        ledger: L,
        handlers: Vec<BoxedHandler>,
        queue: Q,
        retry: RetryPolicy,
    ) -> Self {
        BatchRunner {
            store,
            ledger,
            handlers,
            queue,
            retry,
        }
    }

    pub fn store(&self) -> &S {
        &self.store
    }

    pub fn ledger(&self) -> &L {
        &self.ledger
    }

    pub fn queue(&self) -> &Q {
        &self.queue
    }

    pub fn handlers(&self) -> &[BoxedHandler] {
        &self.handlers
    }

    /// Handle one SQS batch. `deadline` is when the function must have answered; leases on
    /// processing records end there.
    pub async fn handle(&self, event: SqsEvent, lease: Duration) -> SqsBatchResponse {
        let stats = BatchStats::default();
        let response = run_batch(&event, &self.queue, |msg| self.process(msg, lease, &stats)).await;
        stats.emit_metrics();
        if let Err(e) = self.ledger.flush_stats(&stats, Utc::now()).await {
            tracing::warn!(error = %e, "could not write handler statistics");
        }
        response
    }

    /// Process one message to an outcome; never panics, never loses the message.
    pub async fn process(&self, msg: &SqsMessage, lease: Duration, stats: &BatchStats) -> Outcome {
        let receives = delivery::receives(msg);
        let body = msg.body.as_deref().unwrap_or("");
        let event = match serde_json::from_str::<EventEnvelope>(body) {
            Ok(e) => upcast(e),
            Err(e) => {
                return self
                    .give_up(
                        msg,
                        &format!("undecodable: message body is not an event envelope: {e}"),
                    )
                    .await
            }
        };
        let marker = ReplayMarker::of(msg);
        let mut subscribed: Vec<_> = self
            .handlers
            .iter()
            .filter(|h| h.subscriptions().contains(&event.event_type.as_str()))
            .filter(|h| marker.wants(h.name()))
            .collect();
        if let Some(id) = &marker.replay {
            tracing::info!(replay_id = %id, rerun = marker.rerun, event_id = %event.event_id, "replayed delivery");
        }
        subscribed.sort_by_key(|h| h.priority());
        let delivery = Delivery {
            rerun: marker.rerun,
        };
        let mut history: Option<Vec<EventEnvelope>> = None;
        let mut paused = false;
        for h in subscribed {
            match self
                .run_one(h.as_ref(), &event, &mut history, lease, stats, delivery)
                .await
            {
                Step::Done => {}
                Step::Paused => paused = true,
                Step::Failed(e) if e.is_transient() => {
                    return Outcome::Retry {
                        reason: format!("{}: {e}", h.name()),
                        delay: self.retry.delay(receives),
                    }
                }
                Step::Failed(e) => return self.give_up(msg, &format!("{}: {e}", h.name())).await,
            }
        }
        if paused {
            return Outcome::Retry {
                reason: "a subscribed handler is switched off".into(),
                delay: self.retry.paused,
            };
        }
        Outcome::Done
    }

    /// Run one handler with up to [`QUICK_ATTEMPTS`] attempts in this invocation (seed 000's
    /// immediate retries): a transient blip then costs no receive, and on a FIFO queue it
    /// does not hold back the rest of the aggregate's messages in the batch.
    async fn run_one(
        &self,
        h: &dyn DomainHandler,
        event: &EventEnvelope,
        history: &mut Option<Vec<EventEnvelope>>,
        lease: Duration,
        stats: &BatchStats,
        delivery: Delivery,
    ) -> Step {
        let started = Instant::now();
        let mut attempt = 1;
        loop {
            let step = self
                .run_once(h, event, history, lease, stats, delivery)
                .await;
            let retry = matches!(&step, Step::Failed(e) if e.is_transient());
            let pause = Duration::from_millis(50 << attempt);
            if !retry || attempt >= QUICK_ATTEMPTS || started.elapsed() + pause * 4 > lease {
                return step;
            }
            attempt += 1;
            tokio::time::sleep(pause).await;
        }
    }

    async fn run_once(
        &self,
        h: &dyn DomainHandler,
        event: &EventEnvelope,
        history: &mut Option<Vec<EventEnvelope>>,
        lease: Duration,
        stats: &BatchStats,
        delivery: Delivery,
    ) -> Step {
        match self.ledger.enabled(h.name()).await {
            Ok(true) => {}
            Ok(false) => return Step::Paused,
            Err(e) => return Step::Failed(e),
        }
        let work = Work {
            handler: h.name(),
            event,
        };
        let attempt = match self.ledger.claim(work, lease, Utc::now()).await {
            Ok(Claim::Acquired { attempt }) => attempt,
            // An explicit re-run (replay with `rerun`): run again on the completed record;
            // follow-on ids are deterministic, so the store keeps the first run's events.
            Ok(Claim::AlreadyDone) if delivery.rerun => 0,
            Ok(Claim::AlreadyDone) => {
                tracing::info!(handler = h.name(), event_id = %event.event_id, "already processed; skipping");
                return Step::Done;
            }
            Ok(Claim::Busy) => {
                return Step::Failed(AdapterError::Transient(
                    "another execution holds this event".into(),
                ))
            }
            Err(e) => return Step::Failed(e),
        };
        let started = Instant::now();
        let result = self.execute(h, event, history).await;
        let elapsed = started.elapsed();
        let now = Utc::now();
        let lag_ms = (now - event.recorded_at).num_milliseconds();
        match result {
            Ok(follow_ons) => {
                if let Err(e) = self.ledger.complete(work, attempt, elapsed, now).await {
                    // The effects are stored; the retry will find them and complete.
                    return Step::Failed(e);
                }
                stats.record(h.name(), None, elapsed, lag_ms, None);
                tracing::info!(handler = h.name(), event_id = %event.event_id, event_type = %event.event_type,
                    correlation_id = %event.metadata.correlation_id, attempt, follow_ons,
                    duration_ms = elapsed.as_secs_f64() * 1000.0, lag_ms, "handled");
                Step::Done
            }
            Err(e) => {
                let class = if e.is_transient() {
                    FailureClass::Transient
                } else {
                    FailureClass::Permanent
                };
                let message = e.to_string();
                stats.record(h.name(), Some(class), elapsed, lag_ms, Some(&message));
                if let Err(le) = self
                    .ledger
                    .fail(work, attempt, class, &message, elapsed, now)
                    .await
                {
                    tracing::warn!(error = %le, "could not record the failure");
                }
                tracing::warn!(handler = h.name(), event_id = %event.event_id, event_type = %event.event_type,
                    correlation_id = %event.metadata.correlation_id, attempt, class = class.as_str(), error = %message, "handler failed");
                Step::Failed(e)
            }
        }
    }

    /// Run a handler and store its follow-ons; returns how many it produced.
    async fn execute(
        &self,
        h: &dyn DomainHandler,
        event: &EventEnvelope,
        history: &mut Option<Vec<EventEnvelope>>,
    ) -> Result<usize, AdapterError> {
        if history.is_none() {
            let loaded: Vec<EventEnvelope> = self
                .store
                .history_until(event.stream(), event.sequence)
                .await?
                .into_iter()
                .map(upcast)
                .collect();
            if loaded.last().map(|e| e.event_id) != Some(event.event_id) {
                // The store must hold what the stream delivered; if not, wait for it.
                return Err(AdapterError::Transient(format!(
                    "event {} not found at sequence {} of its stream",
                    event.event_id, event.sequence
                )));
            }
            *history = Some(loaded);
        }
        let history = history.as_deref().unwrap_or_default();
        let related = match h.related_in(event, history) {
            Some((aggregate_type, aggregate_id)) => {
                let stream = StreamId {
                    tenant_id: &event.metadata.tenant_id,
                    aggregate_type,
                    aggregate_id: &aggregate_id,
                };
                self.store
                    .history(stream)
                    .await?
                    .into_iter()
                    .map(upcast)
                    .collect()
            }
            None => Vec::new(),
        };
        let input = HandlerInput {
            event,
            history,
            related: &related,
        };
        let follow_ons = h.handle(&input)?;
        if let Some(summary) = h.read_model(&input) {
            // Version-guarded: a re-run, a replay or a rebuild never moves it backwards.
            self.store.put_loan_summary(&summary).await?;
        }
        let now = Utc::now();
        let new_events = follow_ons
            .into_iter()
            .enumerate()
            .map(|(i, f)| NewEvent::follow_on(event, h.name(), i, f, now))
            .collect::<Result<Vec<_>, CoreError>>()?;
        let count = new_events.len();
        // Appended 25 at a time, the API's own batch limit; moved, not copied.
        let mut pending = new_events.into_iter();
        loop {
            let chunk: Vec<NewEvent> = pending.by_ref().take(25).collect();
            if chunk.is_empty() {
                break;
            }
            match self.store.append(chunk, now).await {
                Ok(Appended::Stored(_)) | Ok(Appended::AlreadyStored(_)) => {}
                // A re-run whose inputs moved on (a related aggregate changed) produces other
                // content under the same deterministic ids: the first run's effects stand.
                Err(AdapterError::EventIdConflict(m)) => {
                    tracing::info!(handler = h.name(), event_id = %event.event_id, %m, "follow-ons already stored by an earlier run")
                }
                Err(e) => return Err(e),
            }
        }
        Ok(count)
    }

    async fn give_up(&self, msg: &SqsMessage, reason: &str) -> Outcome {
        tracing::error!(message_id = ?msg.message_id, %reason, "dead-lettering message");
        match self
            .queue
            .dead_letter(delivery::dead_letter(msg, reason))
            .await
        {
            Ok(()) => Outcome::DeadLettered(reason.to_string()),
            Err(dl) => Outcome::Retry {
                reason: format!("{reason}; and the DLQ send failed: {dl}"),
                delay: self.retry.delay(1),
            },
        }
    }
}
