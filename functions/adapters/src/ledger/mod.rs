//! Processing records, the processing log, handler switches and statistics: the
//! housekeeping that makes handlers idempotent and observable.
//!
//! One processing record per (tenant, handler, eventId), in the event table. Two
//! protocols write it, picked by what the handler's work touches
//! ([`lending_events::handlers::Effects`]):
//! - **follow-ons only** (every handler today): no claim. The runner reads, decides, then
//!   [`Ledger::commit`]s: one `TransactWriteItems` that appends the follow-ons (each
//!   guarded by its name-based eventId) and sets the record COMPLETED, unless it already
//!   is. A cancelled transaction means another run of the message won: nothing is written
//!   twice. With no follow-ons, the conditional completion is written alone.
//! - **outside effects**: the handler **claims** the record with a conditional write
//!   (new, FAILED, or an IN_PROGRESS whose lease, `leaseUntil`, the function's remaining
//!   time, ran out); an IN_PROGRESS record with a live lease means a concurrent duplicate:
//!   the message is retried later, never run twice at once; then it completes the record.
//!
//! Either way a COMPLETED record short-circuits later deliveries of the same event, every
//! execution appends an entry to the record's `log` (outcome, duration, attempt) and counts
//! in `attempts`, and failures keep class, message, count, first and last time.
//!
//! Records carry `expiresAt` (TTL, 30 days): housekeeping only, events never expire.
//!
//! Handler switches and daily statistics (counters and a duration histogram) are items of
//! the same table. Statistics are gathered in the runner and flushed at the end of a batch
//! when the last flush is [`STATS_FLUSH_EVERY`] old or the batch had a failure, on an idle
//! receive when it is that old, and when the instance shuts down: a handler writes them a
//! few times a minute, not once per batch. The keys of all three are in
//! [`crate::store::layout`]. The port is [`Ledger`]; its adapters are
//! [`dynamo::DynamoLedger`] and [`memory::MemoryLedger`].

pub mod dynamo;
pub mod memory;

use std::collections::HashMap;
use std::future::Future;
use std::sync::Mutex;
use std::time::Duration;

use chrono::{DateTime, Utc};
use lending_events::{EventEnvelope, NewEvent};
use serde::Serialize;

use crate::error::AdapterError;
use crate::store::layout::record_pk;

pub use dynamo::DynamoLedger;

/// Upper bounds (ms) of the duration histogram buckets; the last bucket is open.
pub const DURATION_BUCKETS_MS: &[u64] = &[5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000];

/// How often a busy runner flushes its statistics (see the module's comment): each flush is
/// one write per handler, so this bounds what statistics cost per handled message.
pub const STATS_FLUSH_EVERY: Duration = Duration::from_secs(30);

/// How long a COMPLETED record (and its log) is kept.
pub const RECORD_TTL: Duration = Duration::from_secs(30 * 24 * 3600);

/// What a claim found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Claim {
    /// Ours to run; this is attempt number `attempt` (1-based).
    Acquired { attempt: u32 },
    /// Already completed: acknowledge without running.
    AlreadyDone,
    /// Another execution holds a live lease.
    Busy,
}

/// How an execution was admitted, which says how its record counts it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Attempt {
    /// Claimed with a lease: the claim counted it as attempt `n`.
    Claimed(u32),
    /// Not claimed (a handler whose only effects are follow-ons): the write that ends it
    /// counts it, and logs the message's receive count as its attempt.
    Unclaimed { receive: u32 },
}

impl Attempt {
    /// The attempt number written in the log entry.
    pub fn number(self) -> u32 {
        match self {
            Attempt::Claimed(n) => n,
            Attempt::Unclaimed { receive } => receive,
        }
    }
}

/// What a [`Ledger::commit`] did.
#[derive(Debug, Clone, PartialEq)]
pub enum Committed {
    /// The follow-ons are stored (these envelopes) and the record is COMPLETED.
    Now(Vec<EventEnvelope>),
    /// The follow-ons or the completion were there already: another run of the same
    /// message won, and nothing was written.
    AlreadyDone,
}

/// Stream heads a runner has just read: stream partition key -> last sequence.
pub type KnownHeads = HashMap<String, u64>;

/// What [`Ledger::commit`] writes for one handled message: its follow-ons, and how the run
/// went for the record.
#[derive(Debug)]
pub struct Commit {
    pub follow_ons: Vec<NewEvent>,
    /// Heads of the streams the runner has read: their head reads are saved.
    pub known: KnownHeads,
    pub attempt: Attempt,
    /// The message asks for another execution of a COMPLETED record.
    pub rerun: bool,
    pub duration: Duration,
    pub now: DateTime<Utc>,
}

/// Failure classes, as recorded and reported.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FailureClass {
    Transient,
    Permanent,
}

impl FailureClass {
    pub fn as_str(self) -> &'static str {
        match self {
            FailureClass::Transient => "transient",
            FailureClass::Permanent => "permanent",
        }
    }
}

/// Identifies one handler's work on one event.
#[derive(Debug, Clone, Copy)]
pub struct Work<'a> {
    pub handler: &'static str,
    pub event: &'a EventEnvelope,
}

impl Work<'_> {
    pub fn pk(&self) -> String {
        record_pk(
            &self.event.metadata.tenant_id,
            &self.event.event_id.to_string(),
            self.handler,
        )
    }
}

/// The housekeeping port. [`DynamoLedger`] is the real one.
pub trait Ledger: Send + Sync {
    fn claim(
        &self,
        work: Work<'_>,
        lease: Duration,
        now: DateTime<Utc>,
    ) -> impl Future<Output = Result<Claim, AdapterError>> + Send;
    fn complete(
        &self,
        work: Work<'_>,
        attempt: u32,
        duration: Duration,
        now: DateTime<Utc>,
    ) -> impl Future<Output = Result<(), AdapterError>> + Send;
    /// Append the follow-ons and set the record COMPLETED in one transaction (the
    /// protocol without a claim); with no follow-ons, the completion alone. The completion
    /// is conditional on the record not being COMPLETED yet, except on a `rerun`, which
    /// logs another execution.
    fn commit(
        &self,
        work: Work<'_>,
        commit: Commit,
    ) -> impl Future<Output = Result<Committed, AdapterError>> + Send;
    fn fail(
        &self,
        work: Work<'_>,
        attempt: Attempt,
        class: FailureClass,
        message: &str,
        duration: Duration,
        now: DateTime<Utc>,
    ) -> impl Future<Output = Result<(), AdapterError>> + Send;
    /// Whether the work's record is COMPLETED (a consistent read).
    fn is_completed(
        &self,
        work: Work<'_>,
    ) -> impl Future<Output = Result<bool, AdapterError>> + Send;
    /// Whether a handler is switched on (default: on).
    fn enabled(&self, handler: &str) -> impl Future<Output = Result<bool, AdapterError>> + Send;
    fn flush_stats(
        &self,
        stats: &BatchStats,
        now: DateTime<Utc>,
    ) -> impl Future<Output = Result<(), AdapterError>> + Send;
}

/// Per-handler counters gathered over one batch, written once at its end.
#[derive(Debug, Default)]
pub struct BatchStats {
    inner: Mutex<HashMap<&'static str, HandlerCounters>>,
}

#[derive(Debug, Default, Clone)]
pub struct HandlerCounters {
    pub successes: u64,
    pub failures: u64,
    pub retries: u64,
    pub dead_lettered: u64,
    pub last_error: Option<String>,
    pub buckets: Vec<u64>,
    pub durations_ms: Vec<f64>,
    pub lags_ms: Vec<f64>,
}

impl BatchStats {
    pub fn record(
        &self,
        handler: &'static str,
        outcome: Option<FailureClass>,
        duration: Duration,
        lag_ms: i64,
        error: Option<&str>,
    ) {
        let mut map = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let c = map.entry(handler).or_default();
        c.durations_ms.push(duration.as_secs_f64() * 1000.0);
        if outcome.is_none() {
            c.lags_ms.push(lag_ms.max(0) as f64);
        }
        match outcome {
            None => c.successes += 1,
            Some(FailureClass::Transient) => c.retries += 1,
            Some(FailureClass::Permanent) => {
                c.failures += 1;
                c.dead_lettered += 1;
            }
        }
        if let Some(e) = error {
            c.last_error = Some(e.chars().take(500).collect());
        }
        if c.buckets.is_empty() {
            c.buckets = vec![0; DURATION_BUCKETS_MS.len() + 1];
        }
        let ms = duration.as_millis() as u64;
        let i = DURATION_BUCKETS_MS
            .iter()
            .position(|b| ms <= *b)
            .unwrap_or(DURATION_BUCKETS_MS.len());
        c.buckets[i] += 1;
    }

    /// Add another gathering's counters to these.
    pub fn absorb(&self, other: &BatchStats) {
        let other = other.take();
        let mut map = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        for (handler, o) in other {
            let c = map.entry(handler).or_default();
            c.successes += o.successes;
            c.failures += o.failures;
            c.retries += o.retries;
            c.dead_lettered += o.dead_lettered;
            if o.last_error.is_some() {
                c.last_error = o.last_error;
            }
            if c.buckets.len() < o.buckets.len() {
                c.buckets.resize(o.buckets.len(), 0);
            }
            for (b, n) in c.buckets.iter_mut().zip(&o.buckets) {
                *b += n;
            }
            c.durations_ms.extend(o.durations_ms);
            c.lags_ms.extend(o.lags_ms);
        }
    }

    pub fn is_empty(&self) -> bool {
        self.inner
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .is_empty()
    }

    /// Whether any execution gathered here failed (or was left for retry).
    pub fn any_failure(&self) -> bool {
        let map = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        map.values()
            .any(|c| c.failures + c.retries + c.dead_lettered > 0)
    }

    pub fn take(&self) -> HashMap<&'static str, HandlerCounters> {
        std::mem::take(&mut *self.inner.lock().unwrap_or_else(|p| p.into_inner()))
    }

    /// The batch's metrics, one EMF line per handler.
    pub fn emit_metrics(&self) {
        let map = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        for (handler, c) in map.iter() {
            crate::metrics::Emf::new(&[("Handler", handler)])
                .count("EventsProcessed", c.successes)
                .count("HandlerFailures", c.failures)
                .count("HandlerRetries", c.retries)
                .count("EventsDeadLettered", c.dead_lettered)
                .millis("HandlerDuration", &c.durations_ms)
                .millis("HandlerLag", &c.lags_ms)
                .emit();
        }
    }
}
