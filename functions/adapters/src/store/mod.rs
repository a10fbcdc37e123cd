//! The event store: the [`EventStore`] port, its adapters ([`dynamo::DynamoStore`] on
//! DynamoDB, [`memory::MemoryStore`] in memory) and the table [`layout`] every reader and
//! writer of the event table goes through, and [`read_models`] the read models' queries and rebuilds.

pub mod dynamo;
pub mod indexes;
pub mod layout;
pub mod memory;
pub mod read_models;

use std::future::Future;

use chrono::{DateTime, Utc};
use lending_events::envelope::StreamId;
use lending_events::projections::LoanSummary;
use lending_events::state::{Folded, Snapshot, FOLD_VERSION};
use lending_events::{EventEnvelope, NewEvent};

use crate::error::AdapterError;

pub use dynamo::DynamoStore;

/// What an append did.
#[derive(Debug, Clone, PartialEq)]
pub enum Appended {
    /// Newly stored, in request order.
    Stored(Vec<EventEnvelope>),
    /// Every event was stored before with the same content: the original envelopes.
    AlreadyStored(Vec<EventEnvelope>),
}

impl Appended {
    pub fn events(&self) -> &[EventEnvelope] {
        match self {
            Appended::Stored(e) | Appended::AlreadyStored(e) => e,
        }
    }
}

/// A page of one aggregate's history.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Page {
    pub events: Vec<EventEnvelope>,
    /// The `after` value for the next page, when there may be more.
    pub next: Option<u64>,
}

/// How far a history read goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Upto {
    /// Every event.
    Latest,
    /// Events up to and including this sequence.
    Sequence(u64),
    /// The events recorded at or before this time: the books as they stood then.
    RecordedAt(DateTime<Utc>),
}

/// A history as read from the latest usable snapshot: the snapshot (if any) and the events
/// after it, in order.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct History {
    /// Taken strictly before the last event asked for, so that event is in `tail`.
    pub snapshot: Option<Snapshot>,
    pub tail: Vec<EventEnvelope>,
}

impl History {
    /// The folded state at the end of this history, for a snapshotted aggregate type.
    pub fn folded(self, aggregate_type: &str) -> Option<Folded> {
        let mut state = match self.snapshot {
            Some(s) => s.state,
            None => Folded::empty(aggregate_type)?,
        };
        state.apply_all(self.tail);
        Some(state)
    }
}

/// When snapshots are written, and which ones are read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SnapshotPolicy {
    /// A snapshot is written with the append that takes a stream past a multiple of this
    /// many events (`0`: never).
    pub every: u64,
    /// The fold version written, and the only one read (others are ignored).
    pub fold_version: u32,
}

/// The variable setting [`SnapshotPolicy::every`] (default [`DEFAULT_SNAPSHOT_EVERY`]).
pub const SNAPSHOT_EVERY_VAR: &str = "SNAPSHOT_EVERY";
/// The variable overriding [`SnapshotPolicy::fold_version`] (default the core's
/// [`FOLD_VERSION`]); an operator's way to make every process ignore the stored snapshots.
pub const SNAPSHOT_FOLD_VERSION_VAR: &str = "SNAPSHOT_FOLD_VERSION";
/// Every 10 events: a read then folds at most 10 events after a small snapshot (~1-5 KB
/// deflated), so a message's history read costs about what a 10-event history does at any
/// age; a larger interval makes the tail, not the snapshot, the bulk of the read.
pub const DEFAULT_SNAPSHOT_EVERY: u64 = 10;
/// Snapshots above this many bytes (deflated) are not written (an item holds at most 400 KB).
pub const MAX_SNAPSHOT_BYTES: usize = 350_000;

impl Default for SnapshotPolicy {
    fn default() -> Self {
        SnapshotPolicy {
            every: DEFAULT_SNAPSHOT_EVERY,
            fold_version: FOLD_VERSION,
        }
    }
}

impl SnapshotPolicy {
    /// The policy from the environment; a value that does not parse keeps the default.
    pub fn from_env() -> SnapshotPolicy {
        let default = SnapshotPolicy::default();
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
        let parsed = |name: &str| {
            var(name).and_then(|v| match v.trim().parse::<u64>() {
                Ok(n) => Some(n),
                Err(_) => {
                    tracing::warn!("{name}={v:?} is not a whole number: using the default");
                    None
                }
            })
        };
        SnapshotPolicy {
            every: parsed(SNAPSHOT_EVERY_VAR).unwrap_or(default.every),
            fold_version: parsed(SNAPSHOT_FOLD_VERSION_VAR)
                .and_then(|v| u32::try_from(v).ok())
                .unwrap_or(default.fold_version),
        }
    }

    /// Whether an append taking a stream of `aggregate_type` from `old_head` to `new_head`
    /// writes a snapshot at `new_head`.
    pub fn due(&self, aggregate_type: &str, old_head: u64, new_head: u64) -> bool {
        self.applies_to(aggregate_type) && old_head / self.every < new_head / self.every
    }

    /// Whether streams of `aggregate_type` get snapshots under this policy.
    pub fn applies_to(&self, aggregate_type: &str) -> bool {
        self.every > 0 && Folded::is_snapshotted(aggregate_type)
    }
}

/// The end of a read without an upper bound: beyond any sequence a stream reaches, and still
/// a valid signed 64-bit number for every store.
pub(crate) const OPEN_END: u64 = i64::MAX as u64;

/// The bounds of one page read: `upto` defaulted (open end), `limit` clamped to 1..=1000;
/// `None` when the window `after < sequence <= upto` is empty.
pub fn page_window(after: u64, upto: Option<u64>, limit: usize) -> Option<(u64, usize)> {
    let upto = upto.unwrap_or(OPEN_END);
    (upto > after).then(|| (upto, limit.clamp(1, 1000)))
}

/// The event store port.
pub trait EventStore: Send + Sync {
    /// Append new events (all or nothing), assigning per-aggregate sequences.
    fn append(
        &self,
        events: Vec<NewEvent>,
        now: DateTime<Utc>,
    ) -> impl Future<Output = Result<Appended, AdapterError>> + Send;

    /// Events of a stream with `after < sequence <= upto`, at most `limit`, in order.
    fn read_stream(
        &self,
        stream: StreamId<'_>,
        after: u64,
        upto: Option<u64>,
        limit: usize,
    ) -> impl Future<Output = Result<Page, AdapterError>> + Send;

    /// Write a loan's summary unless the stored one was folded at the same or a later
    /// sequence (so a rebuild never overwrites a newer live update, nor the reverse).
    /// `true` when written.
    fn put_loan_summary(
        &self,
        summary: &LoanSummary,
    ) -> impl Future<Output = Result<bool, AdapterError>> + Send;

    /// The history up to and including `upto`.
    fn history_until(
        &self,
        stream: StreamId<'_>,
        upto: u64,
    ) -> impl Future<Output = Result<Vec<EventEnvelope>, AdapterError>> + Send {
        read_all(self, stream, Some(upto))
    }

    /// The history of a stream up to `upto`, from the latest snapshot (of the policy's fold
    /// version) taken before its last event: one query from the head backwards that stops
    /// at the snapshot. When the snapshot cannot serve the events after it (one reaches a
    /// payment the snapshot archived: [`Folded::folds_exactly`]) the whole history is read
    /// instead. A store without snapshots reads every event.
    fn history_upto(
        &self,
        stream: StreamId<'_>,
        upto: Upto,
    ) -> impl Future<Output = Result<History, AdapterError>> + Send {
        whole_history(self, stream, upto)
    }

    /// What a handler reads for the event at `sequence` of `stream`: the history up to it,
    /// from the latest snapshot before it, and with `head` the stream's head too, in the
    /// same query (from the head backwards, past the events after `sequence`, which are
    /// not returned). `head` is the head the caller expects (at least `sequence`): it sizes
    /// the first page, so a stream that moved on since costs one page, not two.
    fn history_at(
        &self,
        stream: StreamId<'_>,
        sequence: u64,
        head: Option<u64>,
    ) -> impl Future<Output = Result<(History, Option<u64>), AdapterError>> + Send {
        // Up to two reads here (when a snapshot lies past the event); the DynamoDB store
        // makes them one.
        async move {
            if head.is_none() {
                let history = self.history_upto(stream, Upto::Sequence(sequence)).await?;
                return Ok((history, None));
            }
            let mut latest = self.history_upto(stream, Upto::Latest).await?;
            let last = latest.tail.last().map(|e| e.sequence);
            let head = last
                .or(latest.snapshot.as_ref().map(|s| s.sequence))
                .unwrap_or(0);
            if latest
                .snapshot
                .as_ref()
                .is_some_and(|s| s.sequence >= sequence)
            {
                latest = self.history_upto(stream, Upto::Sequence(sequence)).await?;
            }
            latest.tail.retain(|e| e.sequence <= sequence);
            Ok((latest, Some(head)))
        }
    }

    /// The whole history of a stream, in order.
    fn history(
        &self,
        stream: StreamId<'_>,
    ) -> impl Future<Output = Result<Vec<EventEnvelope>, AdapterError>> + Send {
        read_all(self, stream, None)
    }
}

/// The history of a stream up to `upto` read event by event, without a snapshot.
pub(crate) async fn whole_history<S: EventStore + ?Sized>(
    store: &S,
    stream: StreamId<'_>,
    upto: Upto,
) -> Result<History, AdapterError> {
    let events = match upto {
        Upto::Sequence(s) => read_all(store, stream, Some(s)).await?,
        Upto::Latest => read_all(store, stream, None).await?,
        Upto::RecordedAt(t) => {
            let mut all = read_all(store, stream, None).await?;
            all.retain(|e| e.recorded_at <= t);
            all
        }
    };
    Ok(History {
        snapshot: None,
        tail: events,
    })
}

/// Every page of a stream up to `upto` (open end when `None`).
async fn read_all<S: EventStore + ?Sized>(
    store: &S,
    stream: StreamId<'_>,
    upto: Option<u64>,
) -> Result<Vec<EventEnvelope>, AdapterError> {
    let mut out = Vec::new();
    let mut after = 0;
    loop {
        let page = store.read_stream(stream, after, upto, 1000).await?;
        out.extend(page.events);
        match page.next {
            Some(n) => after = n,
            None => return Ok(out),
        }
    }
}
