//! The in-memory [`EventStore`], [`MemoryStore`], with the same semantics as the DynamoDB
//! one, for benchmarks and tests that must not touch the network (its twin for processing
//! records is [`crate::ledger::memory::MemoryLedger`]).
//!
//! - Append: all or nothing; per-aggregate sequences 1, 2, 3, ... without gaps; an
//!   `expectedSequence` that does not match is a sequence conflict; an eventId is stored
//!   once per tenant (its guard keeps the fingerprint): an exact resend of a whole request
//!   returns the original envelopes, a reused eventId with other content (or a request only
//!   partly stored) is an eventId conflict. `recordedAt` is cut to milliseconds, as stored.
//!
//! Every port counts the AWS calls its DynamoDB twin would make for the same work
//! ([`CallCounts`]), so an in-process run can report calls per message too.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use lending_events::envelope::StreamId;
use lending_events::projections::LoanSummary;
use lending_events::{EventEnvelope, NewEvent};

use super::layout::{guard_pk, stream_pk};
use super::{page_window, Appended, EventStore, Page};
use crate::error::AdapterError;

/// AWS calls the DynamoDB implementation would have made for the same work.
#[derive(Debug, Default)]
pub struct CallCounts {
    /// `Query` (stream heads on append, history reads).
    pub query: AtomicU64,
    /// `TransactWriteItems` (appends).
    pub transact_write: AtomicU64,
    /// `BatchGetItem` (resolving a resend).
    pub batch_get: AtomicU64,
    /// `UpdateItem` (claim, complete, fail, statistics).
    pub update: AtomicU64,
    /// `GetItem` (handler switches, a lost claim).
    pub get: AtomicU64,
}

impl CallCounts {
    pub(crate) fn bump(c: &AtomicU64) {
        c.fetch_add(1, Ordering::Relaxed);
    }

    /// `(operation, count)` pairs, non-zero only.
    pub fn snapshot(&self) -> Vec<(&'static str, u64)> {
        [
            ("Query", &self.query),
            ("TransactWriteItems", &self.transact_write),
            ("BatchGetItem", &self.batch_get),
            ("UpdateItem", &self.update),
            ("GetItem", &self.get),
        ]
        .into_iter()
        .map(|(k, v)| (k, v.load(Ordering::Relaxed)))
        .filter(|(_, v)| *v > 0)
        .collect()
    }

    pub fn total(&self) -> u64 {
        self.snapshot().iter().map(|(_, v)| v).sum()
    }

    pub fn reset(&self) {
        for c in [
            &self.query,
            &self.transact_write,
            &self.batch_get,
            &self.update,
            &self.get,
        ] {
            c.store(0, Ordering::Relaxed);
        }
    }
}

struct Guard {
    fingerprint: String,
    stream: String,
    sequence: u64,
}

#[derive(Default)]
struct Tables {
    /// stream pk -> events in sequence order (index = sequence - 1).
    streams: HashMap<String, Vec<EventEnvelope>>,
    /// guard pk -> guard.
    guards: HashMap<String, Guard>,
    /// (tenant, loan id) -> the loan's summary.
    loan_summaries: HashMap<(String, String), LoanSummary>,
}

impl Tables {
    /// Store `events` at `sequences`: the events move into their envelopes, which are
    /// returned; the table keeps a copy.
    fn store(
        &mut self,
        events: Vec<NewEvent>,
        sequences: Vec<u64>,
        now: DateTime<Utc>,
    ) -> Vec<EventEnvelope> {
        let mut stored = Vec::with_capacity(events.len());
        for (mut new, sequence) in events.into_iter().zip(sequences) {
            let pk = stream_pk(&new.stream());
            let fingerprint = std::mem::take(&mut new.fingerprint);
            let env = new.into_envelope(sequence, now);
            self.guards.insert(
                guard_pk(&env.metadata.tenant_id, &env.event_id),
                Guard {
                    fingerprint,
                    stream: pk.clone(),
                    sequence,
                },
            );
            self.streams.entry(pk).or_default().push(env.clone());
            stored.push(env);
        }
        stored
    }
}

/// An [`EventStore`] in memory. A clone is a handle on the same tables and counters (the
/// [`MemoryLedger`](crate::ledger::memory::MemoryLedger) commits follow-ons through one).
#[derive(Default, Clone)]
pub struct MemoryStore {
    tables: Arc<Mutex<Tables>>,
    pub calls: Arc<CallCounts>,
}

impl MemoryStore {
    pub fn new() -> Self {
        Self::default()
    }

    /// Store events as they are (sequences included), e.g. to seed a history.
    pub fn seed(&self, events: impl IntoIterator<Item = EventEnvelope>) {
        let mut t = self.tables.lock().unwrap_or_else(|p| p.into_inner());
        for e in events {
            let pk = stream_pk(&e.stream());
            t.guards.insert(
                guard_pk(&e.metadata.tenant_id, &e.event_id),
                Guard {
                    fingerprint: String::new(),
                    stream: pk.clone(),
                    sequence: e.sequence,
                },
            );
            let s = t.streams.entry(pk).or_default();
            debug_assert_eq!(s.len() as u64 + 1, e.sequence, "seed in sequence order");
            s.push(e);
        }
    }

    /// How many events are stored, over all streams.
    pub fn len(&self) -> usize {
        let t = self.tables.lock().unwrap_or_else(|p| p.into_inner());
        t.streams.values().map(Vec::len).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Every stored loan summary, in no particular order.
    pub fn loan_summaries(&self) -> Vec<LoanSummary> {
        let t = self.tables.lock().unwrap_or_else(|p| p.into_inner());
        t.loan_summaries.values().cloned().collect()
    }

    /// Drop every event and guard (keeps the counters).
    pub fn clear(&self) {
        *self.tables.lock().unwrap_or_else(|p| p.into_inner()) = Tables::default();
    }
}

impl MemoryStore {
    /// The follow-on part of a commit: append `events` unless one of their eventIds is
    /// stored (`None`: another run won), counting one `TransactWriteItems` either way and
    /// one `Query` per stream whose head is not `known`.
    pub(crate) fn append_follow_ons(
        &self,
        events: Vec<NewEvent>,
        now: DateTime<Utc>,
        known: &HashMap<String, u64>,
    ) -> Option<Vec<EventEnvelope>> {
        let now = DateTime::from_timestamp_millis(now.timestamp_millis()).unwrap_or(now);
        let mut t = self.tables.lock().unwrap_or_else(|p| p.into_inner());
        let mut heads: HashMap<String, u64> = HashMap::new();
        let mut sequences = Vec::with_capacity(events.len());
        for e in &events {
            let pk = stream_pk(&e.stream());
            let actual = t.streams.get(&pk).map_or(0, |s| s.len() as u64);
            let head = match heads.get(&pk) {
                Some(h) => *h,
                None => {
                    if known.get(&pk) != Some(&actual) {
                        // Not known, or stale (DynamoStore loses a race and re-reads).
                        CallCounts::bump(&self.calls.query);
                    }
                    actual
                }
            };
            heads.insert(pk, head + 1);
            sequences.push(head + 1);
        }
        CallCounts::bump(&self.calls.transact_write);
        let guard_hit = events.iter().any(|e| {
            t.guards
                .contains_key(&guard_pk(&e.metadata.tenant_id, &e.event_id))
        });
        if guard_hit {
            return None;
        }
        Some(t.store(events, sequences, now))
    }
}

impl EventStore for MemoryStore {
    async fn put_loan_summary(&self, summary: &LoanSummary) -> Result<bool, AdapterError> {
        CallCounts::bump(&self.calls.update);
        let mut t = self.tables.lock().unwrap_or_else(|p| p.into_inner());
        let key = (summary.tenant_id.clone(), summary.loan_id.clone());
        match t.loan_summaries.get(&key) {
            Some(stored) if stored.version >= summary.version => Ok(false),
            _ => {
                t.loan_summaries.insert(key, summary.clone());
                Ok(true)
            }
        }
    }

    async fn append(
        &self,
        events: Vec<NewEvent>,
        now: DateTime<Utc>,
    ) -> Result<Appended, AdapterError> {
        if events.is_empty() {
            return Ok(Appended::Stored(Vec::new()));
        }
        let now = DateTime::from_timestamp_millis(now.timestamp_millis()).unwrap_or(now);
        let mut t = self.tables.lock().unwrap_or_else(|p| p.into_inner());
        // Heads: one Query per distinct stream, as DynamoStore does.
        let mut heads: HashMap<String, u64> = HashMap::new();
        let mut sequences = Vec::with_capacity(events.len());
        let mut sequence_conflict = None;
        for e in &events {
            let pk = stream_pk(&e.stream());
            let head = match heads.get(&pk) {
                Some(h) => *h,
                None => {
                    CallCounts::bump(&self.calls.query);
                    t.streams.get(&pk).map_or(0, |s| s.len() as u64)
                }
            };
            if let Some(expected) = e.expected_sequence {
                if expected != head && sequence_conflict.is_none() {
                    sequence_conflict = Some((e.stream().key(), expected, head));
                }
            }
            heads.insert(pk, head + 1);
            sequences.push(head + 1);
        }
        let guard_hit = events.iter().any(|e| {
            t.guards
                .contains_key(&guard_pk(&e.metadata.tenant_id, &e.event_id))
        });
        if sequence_conflict.is_none() && !guard_hit {
            CallCounts::bump(&self.calls.transact_write);
            return Ok(Appended::Stored(t.store(events, sequences, now)));
        }
        if sequence_conflict.is_none() {
            // The transaction is tried, and cancelled by a guard.
            CallCounts::bump(&self.calls.transact_write);
        }
        // A resend of stored events wins over any other conflict.
        if events.iter().any(|e| e.client_event_id) {
            CallCounts::bump(&self.calls.batch_get);
            let mut found = Vec::new();
            for e in &events {
                if let Some(g) = t.guards.get(&guard_pk(&e.metadata.tenant_id, &e.event_id)) {
                    if g.fingerprint != e.fingerprint {
                        return Err(AdapterError::EventIdConflict(format!(
                            "eventId {} was already used for an event with different content",
                            e.event_id
                        )));
                    }
                    found.push((g.stream.clone(), g.sequence));
                }
            }
            if !found.is_empty() && found.len() < events.len() {
                return Err(AdapterError::EventIdConflict(format!(
                    "{} of the {} events in this request are already stored; resend exactly the original request, or only new events",
                    found.len(),
                    events.len()
                )));
            }
            if !found.is_empty() {
                CallCounts::bump(&self.calls.batch_get);
                let envelopes = found
                    .iter()
                    .filter_map(|(s, seq)| {
                        t.streams
                            .get(s)
                            .and_then(|v| v.get(*seq as usize - 1))
                            .cloned()
                    })
                    .collect();
                return Ok(Appended::AlreadyStored(envelopes));
            }
        }
        match sequence_conflict {
            Some((stream, expected, actual)) => Err(AdapterError::SequenceConflict {
                stream,
                expected,
                actual,
            }),
            None => Err(AdapterError::EventIdConflict(
                "an eventId of this request is already stored".into(),
            )),
        }
    }

    async fn read_stream(
        &self,
        stream: StreamId<'_>,
        after: u64,
        upto: Option<u64>,
        limit: usize,
    ) -> Result<Page, AdapterError> {
        let Some((upto, limit)) = page_window(after, upto, limit) else {
            return Ok(Page::default());
        };
        CallCounts::bump(&self.calls.query);
        let t = self.tables.lock().unwrap_or_else(|p| p.into_inner());
        let all = t
            .streams
            .get(&stream_pk(&stream))
            .map(Vec::as_slice)
            .unwrap_or_default();
        let end = (upto.min(all.len() as u64)) as usize;
        let start = (after as usize).min(end);
        let take = (end - start).min(limit);
        let events = all[start..start + take].to_vec();
        let next = match events.last() {
            Some(last) if take == limit && last.sequence < upto && (start + take) < end => {
                Some(last.sequence)
            }
            _ => None,
        };
        Ok(Page { events, next })
    }
}
