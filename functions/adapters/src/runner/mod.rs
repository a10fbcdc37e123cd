//! The generic SQS batch runner behind every domain function.
//!
//! For each message, in batch order: decode the envelope, and for every subscribed handler
//! (by priority) that is switched on, run it under the protocol its
//! [`Effects`] call for ([`crate::ledger`]):
//! - follow-ons only (every handler today): load the aggregate's history, call the handler,
//!   then one commit appends its follow-on events (name-based ids) and completes the
//!   processing record together: two DynamoDB calls. A commit that finds the follow-ons or
//!   the completion already there acknowledges: another run won;
//! - outside effects: claim the processing record with a lease first, then load, call,
//!   append, and complete the record.
//!
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
use lending_events::handlers::{BoxedHandler, DomainHandler, Effects, HandlerInput};
use lending_events::state::{Folded, Snapshot, FOLD_VERSION};
use lending_events::upcast::upcast;
use lending_events::{CoreError, EventEnvelope, NewEvent};

use crate::error::AdapterError;
use crate::ledger::{
    Attempt, BatchStats, Claim, Commit, Committed, FailureClass, KnownHeads, Ledger, Work,
    STATS_FLUSH_EVERY,
};
use crate::queue::{DomainQueue, VisibilityChange};
use crate::store::layout::stream_pk;
use crate::store::{Appended, EventStore, History};

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
    heads_seen: HeadsSeen,
    folds_seen: FoldsSeen,
    stats: PendingStats,
}

/// Statistics gathered since the last flush, and when that was.
#[derive(Default)]
struct PendingStats {
    pending: BatchStats,
    last_flush: std::sync::Mutex<Option<Instant>>,
}

impl PendingStats {
    /// Whether the last flush is [`STATS_FLUSH_EVERY`] old (or there was none).
    fn interval_passed(&self) -> bool {
        let last = self.last_flush.lock().unwrap_or_else(|p| p.into_inner());
        last.is_none_or(|at| at.elapsed() >= STATS_FLUSH_EVERY)
    }

    fn flushing_now(&self) {
        *self.last_flush.lock().unwrap_or_else(|p| p.into_inner()) = Some(Instant::now());
    }
}

/// The stream heads this runner read last, by stream: a guess of how far a stream has moved
/// past a message (the queue lags the stream under load), so the history read asks for a
/// first page that reaches back to the message's snapshot. Only sizes reads; never trusted
/// as a head.
#[derive(Default)]
struct HeadsSeen(std::sync::Mutex<HashMap<String, u64>>);

impl HeadsSeen {
    /// Forgotten wholesale past this many streams (a warm runner sees many loans).
    const MAX_STREAMS: usize = 10_000;

    fn expected(&self, pk: &str, sequence: u64) -> u64 {
        let seen = self.0.lock().unwrap_or_else(|p| p.into_inner());
        seen.get(pk).copied().unwrap_or(0).max(sequence)
    }

    fn saw(&self, pk: &str, head: u64) {
        let mut seen = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if seen.len() >= Self::MAX_STREAMS {
            seen.clear();
        }
        seen.insert(pk.to_string(), head);
    }
}

/// The states this runner folded last, by stream, each at the sequence of the message it
/// was folded for: the stream's next message (a queue delivers a stream's events in order)
/// is handled from it and the event the message carries, instead of reading the history
/// again. Events never change, so a state at a sequence never goes stale. Used only where the
/// history is read from the message back: a handler that reads from the head reads anyway,
/// for the head its commit needs.
#[derive(Default)]
struct FoldsSeen(std::sync::Mutex<HashMap<String, (u64, Folded)>>);

impl FoldsSeen {
    /// Forgotten wholesale past this many streams (each entry is a folded state).
    const MAX_STREAMS: usize = 256;

    /// The history of `event`'s stream up to it, when the state just before it is kept and
    /// folding `event` onto it gives what the whole history gives.
    fn history_to(&self, event: &EventEnvelope) -> Option<History> {
        let pk = stream_pk(&event.stream());
        let (at, state) = self
            .0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&pk)?;
        if at + 1 != event.sequence || !state.folds_exactly(std::slice::from_ref(event)) {
            return None;
        }
        Some(History {
            snapshot: Some(Snapshot {
                fold_version: FOLD_VERSION,
                sequence: at,
                state,
            }),
            tail: vec![event.clone()],
        })
    }

    /// Keep the state `history` (read for `event`) folds to, for a snapshotted stream.
    fn keep(&self, event: &EventEnvelope, history: History) {
        let Some(state) = history.folded(&event.aggregate_type) else {
            return;
        };
        let mut folds = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if folds.len() >= Self::MAX_STREAMS {
            folds.clear();
        }
        folds.insert(stream_pk(&event.stream()), (event.sequence, state));
    }
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
            heads_seen: HeadsSeen::default(),
            folds_seen: FoldsSeen::default(),
            stats: PendingStats::default(),
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
        let superseded = if self.handlers.iter().any(|h| h.keeps_read_model()) {
            summaries_superseded(&event.records)
        } else {
            Default::default()
        };
        let response = run_batch(&event, &self.queue, |msg| {
            let summary_superseded = msg
                .message_id
                .as_deref()
                .is_some_and(|id| superseded.contains(id));
            self.process(msg, lease, &stats, summary_superseded)
        })
        .await;
        stats.emit_metrics();
        let failed = stats.any_failure();
        self.stats.pending.absorb(&stats);
        if failed || self.stats.interval_passed() {
            self.flush_stats().await;
        }
        response
    }

    /// For a runner whose queue was found empty: write the statistics gathered if the last
    /// flush is [`STATS_FLUSH_EVERY`] old. Bursts of traffic are then written at the rate a
    /// busy runner writes them, within an interval and an idle receive of their end.
    pub async fn flush_stats_when_due(&self) {
        if self.stats.interval_passed() {
            self.flush_stats().await;
        }
    }

    /// Write the statistics gathered since the last flush (the runner calls it itself every
    /// [`STATS_FLUSH_EVERY`] while busy; call it when the instance shuts down).
    pub async fn flush_stats(&self) {
        if self.stats.pending.is_empty() {
            return;
        }
        self.stats.flushing_now();
        if let Err(e) = self
            .ledger
            .flush_stats(&self.stats.pending, Utc::now())
            .await
        {
            tracing::warn!(error = %e, "could not write handler statistics");
        }
    }

    /// Process one message to an outcome; never panics, never loses the message.
    /// `summary_superseded`: the batch holds the stream's next event, whose read model
    /// summary (a fold of the whole stream) covers this one's: it is not written.
    pub async fn process(
        &self,
        msg: &SqsMessage,
        lease: Duration,
        stats: &BatchStats,
        summary_superseded: bool,
    ) -> Outcome {
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
            receives,
        };
        let mut reads = Reads {
            with_head: subscribed
                .iter()
                .any(|h| h.appends_to(&event.aggregate_type)),
            summary_superseded,
            ..Reads::default()
        };
        let mut paused = false;
        let mut outcome = Outcome::Done;
        for h in subscribed {
            match self
                .run_one(h.as_ref(), &event, &mut reads, lease, stats, delivery)
                .await
            {
                Step::Done => {}
                Step::Paused => paused = true,
                Step::Failed(e) if e.is_transient() => {
                    outcome = Outcome::Retry {
                        reason: format!("{}: {e}", h.name()),
                        delay: self.retry.delay(receives),
                    };
                    break;
                }
                Step::Failed(e) => {
                    outcome = self.give_up(msg, &format!("{}: {e}", h.name())).await;
                    break;
                }
            }
        }
        if paused && outcome == Outcome::Done {
            outcome = Outcome::Retry {
                reason: "a subscribed handler is switched off".into(),
                delay: self.retry.paused,
            };
        }
        // What was read holds whatever the handlers did with it.
        if let (false, Some(history)) = (reads.with_head, reads.history.take()) {
            self.folds_seen.keep(&event, history);
        }
        outcome
    }

    /// Run one handler with up to [`QUICK_ATTEMPTS`] attempts in this invocation (seed 000's
    /// immediate retries): a transient blip then costs no receive, and on a FIFO queue it
    /// does not hold back the rest of the aggregate's messages in the batch.
    async fn run_one(
        &self,
        h: &dyn DomainHandler,
        event: &EventEnvelope,
        reads: &mut Reads,
        lease: Duration,
        stats: &BatchStats,
        delivery: Delivery,
    ) -> Step {
        let started = Instant::now();
        let mut attempt = 1;
        loop {
            let step = match h.effects() {
                Effects::FollowOnsOnly => {
                    self.run_committing(h, event, reads, stats, delivery).await
                }
                Effects::Outside => {
                    self.run_claimed(h, event, reads, lease, stats, delivery)
                        .await
                }
            };
            let retry = matches!(&step, Step::Failed(e) if e.is_transient());
            let pause = Duration::from_millis(50 << attempt);
            if !retry || attempt >= QUICK_ATTEMPTS || started.elapsed() + pause * 4 > lease {
                return step;
            }
            attempt += 1;
            tokio::time::sleep(pause).await;
        }
    }

    /// The protocol for handlers whose only effects are their follow-ons: read, decide,
    /// commit (follow-ons and COMPLETED record in one transaction).
    async fn run_committing(
        &self,
        h: &dyn DomainHandler,
        event: &EventEnvelope,
        reads: &mut Reads,
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
        let attempt = Attempt::Unclaimed {
            receive: delivery.receives,
        };
        // A message received again (its visibility ran out while a slow run went on, or an
        // earlier receive failed) looks at its record first: a completed one is acknowledged
        // for one read, without reading the history and deciding again.
        if delivery.receives > 1 && !delivery.rerun {
            match self.ledger.is_completed(work).await {
                Ok(true) => {
                    reads.heads.clear();
                    tracing::info!(handler = h.name(), event_id = %event.event_id, "already processed; skipping");
                    return Step::Done;
                }
                Ok(false) => {}
                Err(e) => return Step::Failed(e),
            }
        }
        let started = Instant::now();
        let decided = self.decide(h, event, reads).await;
        let now = Utc::now();
        let lag_ms = (now - event.recorded_at).num_milliseconds();
        let mut follow_ons = match decided {
            Ok(f) => f,
            Err(e) => {
                return self
                    .failed(h, work, attempt, e, started.elapsed(), stats)
                    .await
            }
        };
        // A transaction holds at most 100 items (two per event, one for the record): the
        // follow-ons beyond the last 25 go first in plain appends, which a re-run repeats
        // harmlessly (their ids are name-based). An explicit re-run (replay with `rerun`)
        // appends them all that way, so its execution is logged even where the first run's
        // follow-ons stand.
        let last = if delivery.rerun {
            follow_ons.len()
        } else {
            follow_ons.len().saturating_sub(25)
        };
        let last_chunk = follow_ons.split_off(last);
        if let Err(e) = self.append_all(h, event, follow_ons, now).await {
            return self
                .failed(h, work, attempt, e, started.elapsed(), stats)
                .await;
        }
        let count = last_chunk.len();
        let elapsed = started.elapsed();
        let committed = self
            .ledger
            .commit(
                work,
                Commit {
                    follow_ons: last_chunk,
                    known: reads.heads.clone(),
                    attempt,
                    rerun: delivery.rerun,
                    duration: elapsed,
                    now,
                },
            )
            .await;
        match committed {
            Ok(Committed::Now(stored)) => {
                reads.stored(&stored);
                stats.record(h.name(), None, elapsed, lag_ms, None);
                tracing::info!(handler = h.name(), event_id = %event.event_id, event_type = %event.event_type,
                    correlation_id = %event.metadata.correlation_id, attempt = attempt.number(), follow_ons = count,
                    duration_ms = elapsed.as_secs_f64() * 1000.0, lag_ms, "handled");
                Step::Done
            }
            Ok(Committed::AlreadyDone) => {
                // Its follow-ons may have moved the stream on.
                reads.heads.clear();
                tracing::info!(handler = h.name(), event_id = %event.event_id, "already processed; skipping");
                Step::Done
            }
            // Nothing was written; the retry decides again.
            Err(e) => Step::Failed(e),
        }
    }

    /// The protocol for handlers with effects outside the table: claim with a lease, run,
    /// append, complete.
    async fn run_claimed(
        &self,
        h: &dyn DomainHandler,
        event: &EventEnvelope,
        reads: &mut Reads,
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
        let now = Utc::now();
        let result = match self.decide(h, event, reads).await {
            Ok(follow_ons) => {
                let count = follow_ons.len();
                self.append_all(h, event, follow_ons, now)
                    .await
                    .map(|()| count)
            }
            Err(e) => Err(e),
        };
        let elapsed = started.elapsed();
        let now = Utc::now();
        let lag_ms = (now - event.recorded_at).num_milliseconds();
        match result {
            Ok(follow_ons) => {
                // Appends move stream heads this message's other handlers may have read.
                reads.heads.clear();
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
                self.failed(h, work, Attempt::Claimed(attempt), e, elapsed, stats)
                    .await
            }
        }
    }

    /// Record a failed execution (class, message, count) and end the step with it.
    async fn failed(
        &self,
        h: &dyn DomainHandler,
        work: Work<'_>,
        attempt: Attempt,
        e: AdapterError,
        elapsed: Duration,
        stats: &BatchStats,
    ) -> Step {
        let event = work.event;
        let now = Utc::now();
        let lag_ms = (now - event.recorded_at).num_milliseconds();
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
            correlation_id = %event.metadata.correlation_id, attempt = attempt.number(), class = class.as_str(), error = %message, "handler failed");
        Step::Failed(e)
    }

    /// Load what the handler reads (once per message) and call it: its follow-on events.
    async fn decide(
        &self,
        h: &dyn DomainHandler,
        event: &EventEnvelope,
        reads: &mut Reads,
    ) -> Result<Vec<NewEvent>, AdapterError> {
        if reads.history.is_none() && !reads.with_head {
            reads.history = self.folds_seen.history_to(event);
        }
        if reads.history.is_none() {
            // One query. A handler that appends to the event's own stream reads from the
            // head (which saves its commit a head read) back to the latest snapshot before
            // the event; the others read from the event back.
            let pk = stream_pk(&event.stream());
            let expected_head = reads
                .with_head
                .then(|| self.heads_seen.expected(&pk, event.sequence));
            let (mut loaded, head) = self
                .store
                .history_at(event.stream(), event.sequence, expected_head)
                .await?;
            if let Some(head) = head {
                self.heads_seen.saw(&pk, head);
                reads.heads.insert(pk, head);
            }
            loaded.tail = loaded.tail.into_iter().map(upcast).collect();
            if loaded.tail.last().map(|e| e.event_id) != Some(event.event_id) {
                // The store must hold what the stream delivered; if not, wait for it.
                return Err(AdapterError::Transient(format!(
                    "event {} not found at sequence {} of its stream",
                    event.event_id, event.sequence
                )));
            }
            reads.history = Some(loaded);
        }
        let (prior, history) = match reads.history.as_ref() {
            Some(h) => (h.snapshot.as_ref().map(|s| &s.state), h.tail.as_slice()),
            None => (None, &[][..]),
        };
        let mut input = HandlerInput {
            event,
            prior,
            history,
            related: &[],
        };
        let related: Vec<EventEnvelope> = match h.related_in(&input) {
            Some((aggregate_type, aggregate_id)) => {
                let stream = StreamId {
                    tenant_id: &event.metadata.tenant_id,
                    aggregate_type,
                    aggregate_id: &aggregate_id,
                };
                let related: Vec<EventEnvelope> = self
                    .store
                    .history(stream)
                    .await?
                    .into_iter()
                    .map(upcast)
                    .collect();
                reads
                    .heads
                    .insert(stream_pk(&stream), related.last().map_or(0, |e| e.sequence));
                related
            }
            None => Vec::new(),
        };
        input.related = &related;
        let follow_ons = h.handle(&input)?;
        if let (Some(summary), false) = (h.read_model(&input), reads.summary_superseded) {
            // Version-guarded: a re-run, a replay or a rebuild never moves it backwards.
            self.store.put_loan_summary(&summary).await?;
        }
        for f in follow_ons.iter().filter(|f| f.opens_stream()) {
            // A stream this follow-on opens has no head to read; a wrong guess only fails
            // the commit's sequence condition, and the retry reads the head.
            let stream = StreamId {
                tenant_id: &event.metadata.tenant_id,
                aggregate_type: f.aggregate_type,
                aggregate_id: &f.aggregate_id,
            };
            reads.heads.entry(stream_pk(&stream)).or_insert(0);
        }
        let now = Utc::now();
        Ok(follow_ons
            .into_iter()
            .enumerate()
            .map(|(i, f)| NewEvent::follow_on(event, h.name(), i, f, now))
            .collect::<Result<Vec<_>, CoreError>>()?)
    }

    /// Append follow-ons with plain appends, 25 at a time (the API's own batch limit).
    async fn append_all(
        &self,
        h: &dyn DomainHandler,
        event: &EventEnvelope,
        follow_ons: Vec<NewEvent>,
        now: chrono::DateTime<Utc>,
    ) -> Result<(), AdapterError> {
        // Moved, not copied.
        let mut pending = follow_ons.into_iter();
        loop {
            let chunk: Vec<NewEvent> = pending.by_ref().take(25).collect();
            if chunk.is_empty() {
                return Ok(());
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

/// What the handlers of one message have read, shared between them: the aggregate's
/// history up to the event (from its latest snapshot before it), and the stream heads seen
/// (kept current with their commits).
#[derive(Default)]
struct Reads {
    /// Whether a handler of the message may append to the event's own stream: the history
    /// read then goes from the head.
    with_head: bool,
    history: Option<History>,
    heads: KnownHeads,
    /// The read model summary this message would write is superseded by a later one in its
    /// batch ([`summaries_superseded`]).
    summary_superseded: bool,
}

/// The messages of a batch whose stream's next event is in the same batch, both plain
/// deliveries (no replay marker): the later event's read model summary, a fold of the whole
/// stream up to it, covers the earlier one's, so only the later is written (one write for a
/// stream's run of events in a batch instead of one each). If the later message fails, it is
/// retried and writes it then; until then the summary trails by that event.
fn summaries_superseded(records: &[SqsMessage]) -> std::collections::HashSet<&str> {
    #[derive(serde::Deserialize, PartialEq, Eq, Hash)]
    #[serde(rename_all = "camelCase")]
    struct Position {
        metadata: Tenant,
        aggregate_type: String,
        aggregate_id: String,
        sequence: u64,
    }
    #[derive(serde::Deserialize, PartialEq, Eq, Hash)]
    #[serde(rename_all = "camelCase")]
    struct Tenant {
        tenant_id: String,
    }
    let positions: Vec<(&SqsMessage, Position)> = records
        .iter()
        .filter(|msg| ReplayMarker::of(msg).replay.is_none())
        .filter_map(|msg| Some((msg, serde_json::from_str(msg.body.as_deref()?).ok()?)))
        .collect();
    let delivered: std::collections::HashSet<&Position> =
        positions.iter().map(|(_, p)| p).collect();
    positions
        .iter()
        .filter(|(_, p)| {
            let next = Position {
                metadata: Tenant {
                    tenant_id: p.metadata.tenant_id.clone(),
                },
                aggregate_type: p.aggregate_type.clone(),
                aggregate_id: p.aggregate_id.clone(),
                sequence: p.sequence + 1,
            };
            delivered.contains(&next)
        })
        .filter_map(|(msg, _)| msg.message_id.as_deref())
        .collect()
}

impl Reads {
    /// Follow-ons just stored moved their streams' heads.
    fn stored(&mut self, events: &[EventEnvelope]) {
        for e in events {
            let head = self.heads.entry(stream_pk(&e.stream())).or_default();
            *head = (*head).max(e.sequence);
        }
    }
}
