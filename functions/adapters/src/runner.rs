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

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use aws_lambda_events::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent, SqsMessage};
use aws_sdk_sqs::types::{ChangeMessageVisibilityBatchRequestEntry, MessageAttributeValue};
use chrono::Utc;
use lending_events::envelope::StreamId;
use lending_events::handlers::{BoxedHandler, DomainHandler, HandlerInput};
use lending_events::upcast::upcast;
use lending_events::{CoreError, EventEnvelope, NewEvent};

use crate::error::{classify, AdapterError};
use crate::ledger::{BatchStats, Claim, FailureClass, Ledger, Work};
use crate::store::{Appended, EventStore};

/// Retry timing. Seed 000 asks for 3 quick retries, then delayed ones, then people after 5
/// failures; the defaults give 2 s, 4 s, 8 s, 16 s (each with full jitter) and the DLQ on the
/// 5th receive, where an alarm fires.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    pub base: Duration,
    pub cap: Duration,
    /// How long a message waits while its handler is switched off.
    pub paused: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            base: Duration::from_secs(2),
            cap: Duration::from_secs(300),
            paused: Duration::from_secs(30),
        }
    }
}

impl RetryPolicy {
    /// From `RETRY_BASE_MS`, `RETRY_CAP_MS`, `RETRY_PAUSED_MS` where set.
    pub fn from_env() -> Self {
        let d = RetryPolicy::default();
        let ms = |k: &str, default: Duration| {
            std::env::var(k)
                .ok()
                .and_then(|v| v.parse().ok())
                .map(Duration::from_millis)
                .unwrap_or(default)
        };
        RetryPolicy {
            base: ms("RETRY_BASE_MS", d.base),
            cap: ms("RETRY_CAP_MS", d.cap),
            paused: ms("RETRY_PAUSED_MS", d.paused),
        }
    }

    /// Visibility before the next attempt, after `receives` receives: base·2^(receives-1),
    /// capped, with full jitter (at least a quarter of it, so retries never stampede).
    pub fn delay(&self, receives: u32) -> Duration {
        let exp = self
            .base
            .saturating_mul(1u32 << receives.saturating_sub(1).min(16));
        let ceiling = exp.min(self.cap).as_millis() as u64;
        let jitter = uuid::Uuid::new_v4().as_u128() as u64 % (ceiling / 4 * 3 + 1);
        Duration::from_millis(ceiling / 4 + jitter)
    }
}

/// Attempts of one handler on one message within one invocation.
pub const QUICK_ATTEMPTS: u32 = 3;

/// The queues a domain function works with.
#[derive(Clone)]
pub struct DomainQueueOps {
    pub client: aws_sdk_sqs::Client,
    /// The function's own queue (visibility changes for backoff).
    pub queue_url: Option<String>,
    /// Where permanently failing messages go, with their reason.
    pub dlq_url: Option<String>,
}

/// Test hooks to inject faults into a running function (never set in production):
/// `FAULT_TRANSIENT_PERCENT` fails that share of handler executions with a transient
/// error (retried in-process first, like a real blip); `FAULT_FAIL_RECEIVES` fails every
/// handler execution while its message's receive count is at most that, without
/// in-process retries, so SQS redelivers the message after its backoff (a value of
/// maxReceiveCount or more sends it to the DLQ); `FAULT_CRASH_AFTER_APPENDS` aborts the
/// process after that many follow-on appends, before the processing record is completed
/// or the message acknowledged.
#[derive(Debug, Default)]
pub struct Faults {
    transient_percent: u64,
    fail_receives: u32,
    crash_after_appends: Option<u64>,
    appends: AtomicU64,
}

/// A test-only fault variable: a number, `None` when unset or not a number.
pub(crate) fn fault_setting(var: &str) -> Option<u64> {
    std::env::var(var).ok().and_then(|v| v.parse::<u64>().ok())
}

/// True for about `percent` % of calls.
pub(crate) fn by_chance(percent: u64) -> bool {
    percent > 0 && (uuid::Uuid::new_v4().as_u128() % 100) < percent as u128
}

impl Faults {
    pub fn from_env() -> Self {
        Faults {
            transient_percent: fault_setting("FAULT_TRANSIENT_PERCENT")
                .unwrap_or(0)
                .min(100),
            fail_receives: fault_setting("FAULT_FAIL_RECEIVES").map_or(0, |n| n.min(1000) as u32),
            crash_after_appends: fault_setting("FAULT_CRASH_AFTER_APPENDS"),
            appends: AtomicU64::new(0),
        }
    }

    /// Whether every execution on this receive of a message is to fail.
    fn fails_receive(&self, receives: u32) -> bool {
        receives <= self.fail_receives
    }

    fn inject_transient(&self, receives: u32) -> Result<(), AdapterError> {
        if self.fails_receive(receives) {
            return Err(AdapterError::Transient(format!(
                "injected fault: receive {receives} of at most {} failing",
                self.fail_receives
            )));
        }
        if by_chance(self.transient_percent) {
            return Err(AdapterError::Transient("injected fault".into()));
        }
        Ok(())
    }

    fn after_append(&self) {
        let n = self.appends.fetch_add(1, Ordering::SeqCst) + 1;
        if self.crash_after_appends.is_some_and(|limit| n >= limit) {
            eprintln!("FAULT_CRASH_AFTER_APPENDS: aborting after {n} appends");
            std::process::abort();
        }
    }
}

pub struct BatchRunner<S, L> {
    store: S,
    ledger: L,
    handlers: Vec<BoxedHandler>,
    queues: Option<DomainQueueOps>,
    retry: RetryPolicy,
    faults: Faults,
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

/// Marks a replayed delivery ([`crate::http::ops::replay`]) as message attributes: `replay` (the
/// replay id), `handlers` (comma-separated: only these run), `rerun` (`true`: run even
/// where the processing record is COMPLETED). Plain deliveries carry none of them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReplayMarker {
    pub replay: Option<String>,
    pub handlers: Option<Vec<String>>,
    pub rerun: bool,
}

impl ReplayMarker {
    pub fn of(msg: &SqsMessage) -> ReplayMarker {
        let get = |k: &str| {
            msg.message_attributes
                .get(k)
                .and_then(|a| a.string_value.clone())
        };
        ReplayMarker {
            replay: get("replay"),
            handlers: get("handlers").map(|l| l.split(',').map(|h| h.trim().to_string()).collect()),
            rerun: get("rerun").is_some_and(|v| v == "true"),
        }
    }

    pub fn wants(&self, handler: &str) -> bool {
        self.handlers
            .as_ref()
            .is_none_or(|hs| hs.iter().any(|h| h == handler))
    }
}

/// What the runner knows of this delivery of a message.
#[derive(Debug, Clone, Copy)]
struct Delivery {
    /// SQS's ApproximateReceiveCount: 1 on the first receive.
    receives: u32,
    /// Run even where the processing record is COMPLETED (replay with `rerun`).
    rerun: bool,
}

/// The end of one handler's work on one message.
enum Step {
    Done,
    Paused,
    Failed(AdapterError),
}

impl<S: EventStore, L: Ledger> BatchRunner<S, L> {
    pub fn new(
        store: S,
        ledger: L,
        handlers: Vec<BoxedHandler>,
        queues: Option<DomainQueueOps>,
        retry: RetryPolicy,
        faults: Faults,
    ) -> Self {
        BatchRunner {
            store,
            ledger,
            handlers,
            queues,
            retry,
            faults,
        }
    }

    pub fn store(&self) -> &S {
        &self.store
    }

    pub fn ledger(&self) -> &L {
        &self.ledger
    }

    pub fn handlers(&self) -> &[BoxedHandler] {
        &self.handlers
    }

    /// Handle one SQS batch. `deadline` is when the function must have answered; leases on
    /// processing records end there.
    pub async fn handle(&self, event: SqsEvent, lease: Duration) -> SqsBatchResponse {
        let stats = BatchStats::default();
        let mut failed_groups: HashMap<String, Duration> = HashMap::new();
        let mut response = SqsBatchResponse::default();
        let mut visibility: Vec<(String, Duration)> = Vec::new();
        for msg in &event.records {
            let id = msg.message_id.clone().unwrap_or_default();
            let group = msg.attributes.get("MessageGroupId").cloned();
            let outcome = match group.as_ref().and_then(|g| failed_groups.get(g)) {
                Some(delay) => Outcome::Retry {
                    reason: "an earlier message of its group failed".into(),
                    delay: *delay,
                },
                None => self.process(msg, lease, &stats).await,
            };
            if let Outcome::Retry { reason, delay } = &outcome {
                tracing::warn!(message_id = %id, %reason, delay_ms = delay.as_millis() as u64, "message left for retry");
                if let Some(g) = group {
                    failed_groups.entry(g).or_insert(*delay);
                }
                if let Some(handle) = &msg.receipt_handle {
                    visibility.push((handle.clone(), *delay));
                }
                let mut f = BatchItemFailure::default();
                f.item_identifier = id;
                response.batch_item_failures.push(f);
            }
        }
        self.set_visibility(&visibility).await;
        stats.emit_metrics();
        if let Err(e) = self.ledger.flush_stats(&stats, Utc::now()).await {
            tracing::warn!(error = %e, "could not write handler statistics");
        }
        response
    }

    /// Process one message to an outcome; never panics, never loses the message.
    pub async fn process(&self, msg: &SqsMessage, lease: Duration, stats: &BatchStats) -> Outcome {
        let receives: u32 = msg
            .attributes
            .get("ApproximateReceiveCount")
            .and_then(|c| c.parse().ok())
            .unwrap_or(1);
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
            receives,
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
        // A receive the fault hook fails gets one attempt, so SQS really redelivers it.
        let attempts = if self.faults.fails_receive(delivery.receives) {
            1
        } else {
            QUICK_ATTEMPTS
        };
        let mut attempt = 1;
        loop {
            let step = self
                .run_once(h, event, history, lease, stats, delivery)
                .await;
            let retry = matches!(&step, Step::Failed(e) if e.is_transient());
            let pause = Duration::from_millis(50 << attempt);
            if !retry || attempt >= attempts || started.elapsed() + pause * 4 > lease {
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
        let result = self.execute(h, event, history, delivery.receives).await;
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
        receives: u32,
    ) -> Result<usize, AdapterError> {
        self.faults.inject_transient(receives)?;
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
        let related = match h.related(event) {
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
            self.faults.after_append();
        }
        Ok(count)
    }

    async fn give_up(&self, msg: &SqsMessage, reason: &str) -> Outcome {
        match self.dead_letter(msg, reason).await {
            Ok(()) => Outcome::DeadLettered(reason.to_string()),
            Err(dl) => Outcome::Retry {
                reason: format!("{reason}; and the DLQ send failed: {dl}"),
                delay: self.retry.delay(1),
            },
        }
    }

    async fn dead_letter(&self, msg: &SqsMessage, reason: &str) -> Result<(), AdapterError> {
        let (Some(q), Some(dlq)) = (
            &self.queues,
            self.queues.as_ref().and_then(|q| q.dlq_url.as_deref()),
        ) else {
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
        let receives = msg
            .attributes
            .get("ApproximateReceiveCount")
            .cloned()
            .unwrap_or_else(|| "1".into());
        let body = msg
            .body
            .clone()
            .filter(|b| !b.is_empty())
            .unwrap_or_else(|| "(empty body)".into());
        let mut req = q
            .client
            .send_message()
            .queue_url(dlq)
            .message_body(body)
            .message_group_id(group)
            .message_deduplication_id(dedup)
            .message_attributes("failureReason", attr(&truncated)?)
            .message_attributes("failureClass", attr("permanent")?)
            .message_attributes("receiveCount", attr(&receives)?)
            .message_attributes(
                "failedAt",
                attr(&lending_events::envelope::format_time(&Utc::now()))?,
            );
        if let Some(src) = &q.queue_url {
            req = req.message_attributes("sourceQueue", attr(src)?);
        }
        req.send()
            .await
            .map_err(|e| classify("SendMessage(DLQ)", e))?;
        Ok(())
    }

    async fn set_visibility(&self, changes: &[(String, Duration)]) {
        let Some(q) = &self.queues else { return };
        let Some(url) = &q.queue_url else { return };
        for chunk in changes.chunks(10) {
            let entries: Vec<_> = chunk
                .iter()
                .enumerate()
                .filter_map(|(i, (handle, delay))| {
                    ChangeMessageVisibilityBatchRequestEntry::builder()
                        .id(i.to_string())
                        .receipt_handle(handle)
                        // Whole seconds, rounded up: never shorter than the policy's delay.
                        .visibility_timeout(delay.as_millis().div_ceil(1000).min(43_200) as i32)
                        .build()
                        .ok()
                })
                .collect();
            if let Err(e) = q
                .client
                .change_message_visibility_batch()
                .queue_url(url)
                .set_entries(Some(entries))
                .send()
                .await
            {
                tracing::warn!(error = %classify("ChangeMessageVisibilityBatch", e), "could not set retry delays");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_stay_between_a_quarter_and_all_of_the_capped_exponential() {
        let policy = RetryPolicy {
            base: Duration::from_secs(2),
            cap: Duration::from_secs(10),
            paused: Duration::from_secs(30),
        };
        for (receives, ceiling) in [(1, 2_000), (2, 4_000), (3, 8_000), (4, 10_000), (9, 10_000)] {
            for _ in 0..200 {
                let d = policy.delay(receives).as_millis() as u64;
                assert!(
                    (ceiling / 4..=ceiling).contains(&d),
                    "receive {receives}: {d} ms"
                );
            }
        }
    }

    #[test]
    fn failing_receives_fail_only_the_first_n() {
        let faults = Faults {
            fail_receives: 2,
            ..Faults::default()
        };
        assert!(faults.inject_transient(1).is_err());
        assert!(faults.inject_transient(2).is_err_and(|e| e.is_transient()));
        assert!(faults.inject_transient(3).is_ok());
        assert!(Faults::default().inject_transient(1).is_ok());
    }
}
