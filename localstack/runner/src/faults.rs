//! Fault injection for the delivery tests, installed only by this runner: wrappers around
//! the functions' ports, so the Lambda functions never compile any of it.
//!
//! Settings (unset: no fault):
//! - `FAULT_TRANSIENT_PERCENT`: that share of handler executions fails transiently when it
//!   claims its processing record, or commits its follow-ons (recorded as a transient
//!   failure instead, retried in-process first, like a real blip);
//! - `FAULT_FAIL_RECEIVES`: every handler execution fails while its message's receive
//!   count is at most that, once per receive (the runner's in-process retries of that
//!   receive fail without recording), so SQS redelivers the message after its backoff; a
//!   value of maxReceiveCount or more sends it to the DLQ;
//! - `FAULT_CRASH_AFTER_APPENDS`: the process aborts after that many follow-on appends
//!   (plain appends, or commits that store follow-ons), before the processing record is
//!   completed (claimed handlers) or the message acknowledged;
//! - `FAULT_DISPATCH_SEND_PERCENT`: that share of dispatch's queue sends fails as if SQS
//!   had refused every message of the call.
//!
//! [`FaultyLedger`] learns each message's receive count from [`Faults::note_batch`], which
//! the queue poller calls before it hands a batch to the runner.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_lambda_events::sqs::SqsEvent;
use chrono::{DateTime, Utc};
use event_adapters::config::{Clients, Config};
use event_adapters::dispatch::Dispatcher;
use event_adapters::functions;
use event_adapters::ledger::{
    Attempt, BatchStats, Claim, Commit, Committed, DynamoLedger, FailureClass, Ledger, Work,
};
use event_adapters::queue::{OutgoingMessage, Publisher, QueuePublisher, SqsDomainQueue};
use event_adapters::runner::{BatchRunner, RetryPolicy};
use event_adapters::store::{Appended, DynamoStore, EventStore, History, Page, Upto};
use event_adapters::AdapterError;
use lending_events::envelope::StreamId;
use lending_events::NewEvent;

/// A domain runner as the Lambda function builds it, with the fault wrappers around its
/// store and ledger.
pub type LocalDomainRunner =
    BatchRunner<FaultyStore<DynamoStore>, FaultyLedger<DynamoLedger>, SqsDomainQueue>;

/// Dispatch as the Lambda function builds it, with the fault wrapper around its publisher.
pub type LocalDispatcher = Dispatcher<FaultyPublisher<QueuePublisher>>;

/// [`functions::domain_runner`] with the fault wrappers installed.
pub fn domain_runner(
    domain: event_adapters::functions::Domain,
    config: &Config,
    clients: &Clients,
    faults: &Arc<Faults>,
) -> LocalDomainRunner {
    let store = DynamoStore::new(clients.dynamodb.clone(), &config.table);
    BatchRunner::new(
        FaultyStore::new(store.clone(), faults.clone()),
        FaultyLedger::new(DynamoLedger::over(store), faults.clone()),
        functions::domain_handlers(domain),
        functions::domain_queue(domain, config, clients),
        RetryPolicy::from_env(),
    )
}

/// [`functions::dispatcher`] with the fault wrapper installed.
pub fn dispatcher(config: &Config, clients: &Clients, faults: &Arc<Faults>) -> LocalDispatcher {
    functions::dispatcher_over(
        FaultyPublisher::new(QueuePublisher::new(clients.sqs.clone()), faults.clone()),
        config,
        clients,
    )
}

/// The fault settings and what they need to remember, shared by the wrappers.
#[derive(Debug, Default)]
pub struct Faults {
    transient_percent: u64,
    fail_receives: u32,
    crash_after_appends: Option<u64>,
    dispatch_send_percent: u64,
    appends: AtomicU64,
    /// (handler, eventId) -> receive count of the message last received for it.
    receives: Mutex<HashMap<(&'static str, String), u32>>,
    /// (processing record, receive) pairs already failed by `FAULT_FAIL_RECEIVES`.
    failed_receives: Mutex<HashSet<(String, u32)>>,
}

/// A fault variable: a number, `None` when unset or not a number.
fn setting(var: &str) -> Option<u64> {
    std::env::var(var).ok().and_then(|v| v.parse::<u64>().ok())
}

/// True for about `percent` % of calls.
fn by_chance(percent: u64) -> bool {
    percent > 0 && (uuid::Uuid::new_v4().as_u128() % 100) < percent as u128
}

impl Faults {
    pub fn from_env() -> Arc<Self> {
        Arc::new(Faults {
            transient_percent: setting("FAULT_TRANSIENT_PERCENT").unwrap_or(0).min(100),
            fail_receives: setting("FAULT_FAIL_RECEIVES").map_or(0, |n| n.min(1000) as u32),
            crash_after_appends: setting("FAULT_CRASH_AFTER_APPENDS"),
            dispatch_send_percent: setting("FAULT_DISPATCH_SEND_PERCENT").unwrap_or(0).min(100),
            ..Faults::default()
        })
    }

    /// Remember the receive count of every message of a batch about to be run by
    /// `handlers` (per handler: an event's messages on other domains' queues have receive
    /// counts of their own).
    pub fn note_batch(
        &self,
        batch: &SqsEvent,
        handlers: impl Iterator<Item = &'static str> + Clone,
    ) {
        if self.fail_receives == 0 {
            return;
        }
        let mut receives = self.receives.lock().unwrap_or_else(|p| p.into_inner());
        for m in &batch.records {
            let event_id = m
                .body
                .as_deref()
                .and_then(|b| serde_json::from_str::<serde_json::Value>(b).ok())
                .and_then(|v| v["eventId"].as_str().map(str::to_string));
            let count = m
                .attributes
                .get("ApproximateReceiveCount")
                .and_then(|c| c.parse().ok())
                .unwrap_or(1);
            if let Some(id) = event_id {
                for h in handlers.clone() {
                    receives.insert((h, id.clone()), count);
                }
            }
        }
    }

    fn receives_of(&self, work: &Work<'_>) -> u32 {
        let receives = self.receives.lock().unwrap_or_else(|p| p.into_inner());
        receives
            .get(&(work.handler, work.event.event_id.to_string()))
            .copied()
            .unwrap_or(1)
    }

    /// Whether every execution on this receive of a message is to fail.
    fn fails_receive(&self, receives: u32) -> bool {
        receives <= self.fail_receives
    }

    /// Whether this is the first execution failed on this receive (and remember it).
    fn first_failure_on(&self, work: &Work<'_>, receives: u32) -> bool {
        self.failed_receives
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert((work.pk(), receives))
    }

    fn after_append(&self) {
        let n = self.appends.fetch_add(1, Ordering::SeqCst) + 1;
        if self.crash_after_appends.is_some_and(|limit| n >= limit) {
            eprintln!("FAULT_CRASH_AFTER_APPENDS: aborting after {n} appends");
            std::process::abort();
        }
    }
}

/// An [`EventStore`] that aborts the process after `FAULT_CRASH_AFTER_APPENDS` appends.
pub struct FaultyStore<S> {
    inner: S,
    faults: Arc<Faults>,
}

impl<S> FaultyStore<S> {
    pub fn new(inner: S, faults: Arc<Faults>) -> Self {
        FaultyStore { inner, faults }
    }
}

impl<S: EventStore> EventStore for FaultyStore<S> {
    async fn put_loan_summary(
        &self,
        summary: &lending_events::projections::LoanSummary,
    ) -> Result<bool, AdapterError> {
        self.inner.put_loan_summary(summary).await
    }

    async fn append(
        &self,
        events: Vec<NewEvent>,
        now: DateTime<Utc>,
    ) -> Result<Appended, AdapterError> {
        let result = self.inner.append(events, now).await;
        // Counted as the runner counts a chunk of follow-ons done: stored now or before.
        if matches!(result, Ok(_) | Err(AdapterError::EventIdConflict(_))) {
            self.faults.after_append();
        }
        result
    }

    async fn read_stream(
        &self,
        stream: StreamId<'_>,
        after: u64,
        upto: Option<u64>,
        limit: usize,
    ) -> Result<Page, AdapterError> {
        self.inner.read_stream(stream, after, upto, limit).await
    }

    /// The inner store's read, from its snapshots.
    async fn history_upto(
        &self,
        stream: StreamId<'_>,
        upto: Upto,
    ) -> Result<History, AdapterError> {
        self.inner.history_upto(stream, upto).await
    }

    /// The inner store's read, from its snapshots, in one query.
    async fn history_at(
        &self,
        stream: StreamId<'_>,
        sequence: u64,
        head: Option<u64>,
    ) -> Result<(History, Option<u64>), AdapterError> {
        self.inner.history_at(stream, sequence, head).await
    }
}

/// A [`Ledger`] whose claims and commits fail handler executions as
/// `FAULT_TRANSIENT_PERCENT` and `FAULT_FAIL_RECEIVES` say: the record is failed as
/// transient instead, as when the handler's own work fails, and the runner retries as it
/// would then.
pub struct FaultyLedger<L> {
    inner: L,
    faults: Arc<Faults>,
}

impl<L> FaultyLedger<L> {
    pub fn new(inner: L, faults: Arc<Faults>) -> Self {
        FaultyLedger { inner, faults }
    }
}

impl<L: Ledger> FaultyLedger<L> {
    /// The injected failure for this execution, if any: `Err` to fail it without
    /// recording (a quick retry on a receive already failed), `Ok(Some(reason))` to record
    /// it failed.
    fn injected(&self, work: &Work<'_>) -> Result<Option<String>, AdapterError> {
        let receives = self.faults.receives_of(work);
        if self.faults.fails_receive(receives) {
            let reason = format!(
                "injected fault: receive {receives} of at most {} failing",
                self.faults.fail_receives
            );
            if !self.faults.first_failure_on(work, receives) {
                // A quick retry on the same receive: fails without recording, so the
                // record shows one execution per receive.
                return Err(AdapterError::Transient(reason));
            }
            return Ok(Some(reason));
        }
        Ok(by_chance(self.faults.transient_percent).then(|| "injected fault".into()))
    }

    /// Record an execution as failed with `reason`, as the runner records a failed one.
    async fn record_failure(
        &self,
        work: Work<'_>,
        attempt: Attempt,
        now: DateTime<Utc>,
        reason: String,
    ) -> AdapterError {
        if let Err(e) = self
            .inner
            .fail(
                work,
                attempt,
                FailureClass::Transient,
                &reason,
                Duration::ZERO,
                now,
            )
            .await
        {
            return e;
        }
        // Logged as the runner logs a failed execution, so the log reads as it would.
        let event = work.event;
        tracing::warn!(handler = work.handler, event_id = %event.event_id, event_type = %event.event_type,
            correlation_id = %event.metadata.correlation_id, attempt = attempt.number(), class = "transient", error = %reason, "handler failed");
        AdapterError::Transient(reason)
    }

    /// Claim, then record the execution as failed with `reason`; a claim that is not
    /// ours (completed, or busy) is answered as it is.
    async fn claim_and_fail(
        &self,
        work: Work<'_>,
        lease: Duration,
        now: DateTime<Utc>,
        reason: String,
    ) -> Result<Claim, AdapterError> {
        let attempt = match self.inner.claim(work, lease, now).await? {
            Claim::Acquired { attempt } => attempt,
            other => return Ok(other),
        };
        Err(self
            .record_failure(work, Attempt::Claimed(attempt), now, reason)
            .await)
    }
}

impl<L: Ledger> Ledger for FaultyLedger<L> {
    async fn claim(
        &self,
        work: Work<'_>,
        lease: Duration,
        now: DateTime<Utc>,
    ) -> Result<Claim, AdapterError> {
        if let Some(reason) = self.injected(&work)? {
            return self.claim_and_fail(work, lease, now, reason).await;
        }
        self.inner.claim(work, lease, now).await
    }

    async fn complete(
        &self,
        work: Work<'_>,
        attempt: u32,
        duration: Duration,
        now: DateTime<Utc>,
    ) -> Result<(), AdapterError> {
        self.inner.complete(work, attempt, duration, now).await
    }

    async fn commit(&self, work: Work<'_>, commit: Commit) -> Result<Committed, AdapterError> {
        if let Some(reason) = self.injected(&work)? {
            return Err(self
                .record_failure(work, commit.attempt, commit.now, reason)
                .await);
        }
        let appends = !commit.follow_ons.is_empty();
        let committed = self.inner.commit(work, commit).await;
        if appends && committed.is_ok() {
            self.faults.after_append();
        }
        committed
    }

    async fn fail(
        &self,
        work: Work<'_>,
        attempt: Attempt,
        class: FailureClass,
        message: &str,
        duration: Duration,
        now: DateTime<Utc>,
    ) -> Result<(), AdapterError> {
        self.inner
            .fail(work, attempt, class, message, duration, now)
            .await
    }

    async fn is_completed(&self, work: Work<'_>) -> Result<bool, AdapterError> {
        self.inner.is_completed(work).await
    }

    async fn enabled(&self, handler: &str) -> Result<bool, AdapterError> {
        self.inner.enabled(handler).await
    }

    async fn flush_stats(
        &self,
        stats: &BatchStats,
        now: DateTime<Utc>,
    ) -> Result<(), AdapterError> {
        self.inner.flush_stats(stats, now).await
    }
}

/// A [`Publisher`] that fails `FAULT_DISPATCH_SEND_PERCENT` of its sends.
pub struct FaultyPublisher<P> {
    inner: P,
    faults: Arc<Faults>,
}

impl<P> FaultyPublisher<P> {
    pub fn new(inner: P, faults: Arc<Faults>) -> Self {
        FaultyPublisher { inner, faults }
    }
}

impl<P: Publisher> Publisher for FaultyPublisher<P> {
    async fn send(
        &self,
        queue_url: &str,
        messages: &[OutgoingMessage],
    ) -> Result<Vec<usize>, AdapterError> {
        if by_chance(self.faults.dispatch_send_percent) {
            return Err(AdapterError::Transient(
                "injected fault: send failed".into(),
            ));
        }
        self.inner.send(queue_url, messages).await
    }
}

#[cfg(test)]
mod tests {
    use event_adapters::ledger::memory::MemoryLedger;
    use lending_events::EventEnvelope;

    use super::*;

    fn event() -> EventEnvelope {
        serde_json::from_value(serde_json::json!({
            "eventId": "7f1c2a34-5b6d-4e8f-9a0b-1c2d3e4f5a6b", "eventType": "Loan.Funded",
            "eventVersion": 1, "domain": "loan", "aggregateType": "Loan", "aggregateId": "L-1",
            "sequence": 2, "occurredAt": "2026-03-01T10:00:00Z", "recordedAt": "2026-03-01T10:00:00Z",
            "payload": {}, "metadata": {"correlationId": "c-1", "tenantId": "t-1"}
        }))
        .expect("an envelope")
    }

    /// A batch of one message carrying `e` on its `receives`-th receive.
    fn batch(e: &EventEnvelope, receives: u32) -> SqsEvent {
        let mut m = aws_lambda_events::sqs::SqsMessage::default();
        m.body = Some(serde_json::to_string(e).expect("serialises"));
        m.attributes
            .insert("ApproximateReceiveCount".into(), receives.to_string());
        let mut b = SqsEvent::default();
        b.records = vec![m];
        b
    }

    #[tokio::test]
    async fn failing_receives_fail_one_execution_per_receive_and_only_the_first_n() {
        let faults = Arc::new(Faults {
            fail_receives: 2,
            ..Faults::default()
        });
        let ledger = FaultyLedger::new(MemoryLedger::new(), faults.clone());
        let e = event();
        let work = Work {
            handler: "payment-schedule",
            event: &e,
        };
        let lease = Duration::from_secs(60);
        for receive in 1..=2 {
            faults.note_batch(&batch(&e, receive), [work.handler].into_iter());
            // The first execution is claimed and recorded failed; quick retries on the
            // same receive fail before claiming.
            for _ in 0..3 {
                let claim = ledger.claim(work, lease, Utc::now()).await;
                assert!(claim.is_err_and(|e| e.is_transient()), "receive {receive}");
            }
            assert_eq!(ledger.inner.status(work), Some("FAILED"));
        }
        faults.note_batch(&batch(&e, 3), [work.handler].into_iter());
        let claim = ledger.claim(work, lease, Utc::now()).await;
        assert!(
            matches!(claim, Ok(Claim::Acquired { attempt: 3 })),
            "{claim:?}"
        );
    }
}
