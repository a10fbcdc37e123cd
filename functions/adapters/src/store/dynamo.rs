//! The DynamoDB event store: one transaction per append (the item layout and the append's
//! guarantees are in [`super::layout`]).

use std::collections::HashMap;
use std::time::Duration;

use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{Put, TransactWriteItem};
use chrono::{DateTime, Utc};
use lending_events::envelope::StreamId;
use lending_events::projections::LoanSummary;
use lending_events::{EventEnvelope, NewEvent};
use uuid::Uuid;

use lending_events::envelope::format_recorded_at;

use super::layout::{
    self, attr, batch_get_keys, decode_event, guard_pk, guarded_event_key, n, s, sequence_of_sk,
    str_of, stream_pk, Item, Read,
};
use super::{
    page_window, Appended, EventStore, History, Page, SnapshotPolicy, Upto, MAX_SNAPSHOT_BYTES,
    OPEN_END,
};
use crate::error::{classify, AdapterError};

/// How many times an append without `expectedSequence` re-reads the head and tries again
/// when another writer took its sequence.
const APPEND_ATTEMPTS: u32 = 12;

#[derive(Clone)]
pub struct DynamoStore {
    client: aws_sdk_dynamodb::Client,
    table: String,
    snapshots: SnapshotPolicy,
    /// Read units consumed by history reads (thousandths), as DynamoDB reports them.
    history_read_milliunits: std::sync::Arc<std::sync::atomic::AtomicU64>,
    reads_to_head: ReadsToHead,
}

/// Histories this store read up to a stream's head when the head was near a snapshot point,
/// by stream: the append that follows such a read (a handler's commit to the stream it read)
/// folds the snapshot from it instead of reading the stream again. An entry serves only an
/// append from exactly its head, and events never change, so it cannot be stale.
#[derive(Clone, Default)]
struct ReadsToHead(std::sync::Arc<std::sync::Mutex<HashMap<String, (u64, History)>>>);

impl ReadsToHead {
    /// Forgotten wholesale past this many streams (each entry holds a folded state).
    const MAX_STREAMS: usize = 64;
    /// How far below a snapshot point a head is "near" it: the follow-ons a handler appends
    /// to the stream it read are one to three events.
    const NEAR: u64 = 3;

    fn keep(&self, pk: String, head: u64, history: History) {
        let mut reads = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if reads.len() >= Self::MAX_STREAMS {
            reads.clear();
        }
        reads.insert(pk, (head, history));
    }

    fn take(&self, pk: &str, head: u64) -> Option<History> {
        let mut reads = self.0.lock().unwrap_or_else(|p| p.into_inner());
        match reads.remove(pk) {
            Some((at, history)) if at == head => Some(history),
            _ => None,
        }
    }
}

impl DynamoStore {
    /// A store on `table`, with the snapshot policy of the environment.
    pub fn new(client: aws_sdk_dynamodb::Client, table: impl Into<String>) -> Self {
        DynamoStore {
            client,
            table: table.into(),
            snapshots: SnapshotPolicy::from_env(),
            history_read_milliunits: Default::default(),
            reads_to_head: ReadsToHead::default(),
        }
    }

    /// Read capacity units the history reads ([`EventStore::history_upto`]) of this store
    /// (and its clones) consumed so far, as DynamoDB reported them.
    pub fn history_read_units(&self) -> f64 {
        self.history_read_milliunits
            .load(std::sync::atomic::Ordering::Relaxed) as f64
            / 1000.0
    }

    /// The same store with another snapshot policy.
    pub fn with_snapshots(mut self, policy: SnapshotPolicy) -> Self {
        self.snapshots = policy;
        self
    }

    pub fn snapshots(&self) -> SnapshotPolicy {
        self.snapshots
    }

    pub fn client(&self) -> &aws_sdk_dynamodb::Client {
        &self.client
    }

    pub fn table(&self) -> &str {
        &self.table
    }

    /// The last sequence of a stream (0 for a new aggregate), read consistently.
    async fn head(&self, pk: &str) -> Result<u64, AdapterError> {
        let out = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("pk = :pk")
            .expression_attribute_values(":pk", s(pk))
            .projection_expression("sk")
            .scan_index_forward(false)
            .limit(1)
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| classify("Query(head)", e))?;
        Ok(out.items().first().and_then(sequence_of_sk).unwrap_or(0))
    }

    /// The snapshot item of each stream this append takes past a snapshot point: the state
    /// before the append (from the latest snapshot and its tail: `read` when this attempt
    /// read it up to the head, else read now) with the new events applied. A snapshot that cannot be built is left out (the append goes on; the next
    /// snapshot point tries again).
    async fn snapshot_items(
        &self,
        stored: &[EventEnvelope],
        first_heads: &HashMap<String, u64>,
        mut read: HashMap<String, History>,
    ) -> Vec<Item> {
        let mut out = Vec::new();
        for (pk, old_head) in first_heads {
            let new: Vec<&EventEnvelope> = stored
                .iter()
                .filter(|e| stream_pk(&e.stream()) == *pk)
                .collect();
            let Some(last) = new.last() else { continue };
            if !self
                .snapshots
                .due(&last.aggregate_type, *old_head, last.sequence)
            {
                continue;
            }
            let new: Vec<EventEnvelope> = new.iter().map(|e| (*e).clone()).collect();
            let known = read
                .remove(pk)
                .or_else(|| self.reads_to_head.take(pk, *old_head));
            let mut before = match known {
                Some(history) => Ok(history),
                None => {
                    self.history_upto(last.stream(), Upto::Sequence(*old_head))
                        .await
                }
            };
            // The new events may reach a payment the snapshot read archived: fold the whole
            // history then.
            if let Ok(History {
                snapshot: Some(s), ..
            }) = &before
            {
                if !s.state.folds_exactly(&new) {
                    before =
                        super::whole_history(self, last.stream(), Upto::Sequence(*old_head)).await;
                }
            }
            let before = match before {
                Ok(h) => h,
                Err(e) => {
                    tracing::warn!(stream = %pk, error = %e, "snapshot skipped: history read failed");
                    continue;
                }
            };
            let Some(mut state) = before.folded(&last.aggregate_type) else {
                continue;
            };
            state.apply_all(new);
            let Ok(json) = serde_json::to_string(&state) else {
                continue;
            };
            let stored = layout::deflate_state(&json);
            if stored.len() > MAX_SNAPSHOT_BYTES {
                tracing::warn!(stream = %pk, bytes = stored.len(), "snapshot skipped: too large");
                continue;
            }
            out.push(layout::snapshot_item(
                pk,
                last.sequence,
                &last.recorded_at,
                self.snapshots.fold_version,
                stored,
            ));
        }
        out
    }

    /// One query from the end of `upto` backwards: the events up to `serve` (default: the
    /// end of `upto`) after the latest usable snapshot taken before it (of the policy's fold
    /// version), and the highest sequence met (the head when `upto` is open). Events after
    /// `serve` are read (they lie between the head and the event asked for) but not
    /// returned; `ahead` is how many the caller expects, to size the first page.
    /// When the snapshot cannot serve the events after it (one reaches a payment it
    /// archived: [`Folded::folds_exactly`]) the whole history is read instead.
    async fn read_back(
        &self,
        stream: StreamId<'_>,
        upto: Upto,
        serve: Option<u64>,
        ahead: u64,
    ) -> Result<(History, u64), AdapterError> {
        let (hi, known_at) = match upto {
            Upto::Sequence(s) => (s, None),
            Upto::Latest => (OPEN_END, None),
            Upto::RecordedAt(t) => (OPEN_END, Some(format_recorded_at(&t))),
        };
        let serve = serve.unwrap_or(hi);
        let mut history = History::default();
        let mut highest = 0;
        if hi == 0 || serve == 0 {
            return Ok((history, highest));
        }
        // One page usually reaches the latest snapshot: up to an interval of events after
        // it, the `ahead` events past `serve`, the snapshots among them, and it.
        let every = self.snapshots.every;
        // From an open head, the stream may have moved past the caller's guess since it was
        // made (under load it does, by a few events): half an interval more is cheaper than
        // a second page.
        let ahead = if hi == OPEN_END && serve < hi {
            ahead + every / 2
        } else {
            ahead
        };
        let page = (every + ahead + (every + ahead) / every.max(1) + 3).clamp(10, 1000) as i32;
        let mut start: Option<Item> = None;
        // From an open head near a snapshot point, the events past `serve` are kept too
        // (decided at the first item, the head): see [`ReadsToHead`].
        let mut keep: Option<bool> = None;
        let mut past_serve = Vec::new();
        'pages: loop {
            let out = self
                .client
                .query()
                .table_name(&self.table)
                .key_condition_expression("pk = :pk AND sk <= :hi")
                .expression_attribute_values(":pk", s(stream_pk(&stream)))
                .expression_attribute_values(":hi", n(hi))
                .scan_index_forward(false)
                .limit(page)
                .consistent_read(true)
                .set_exclusive_start_key(start.take())
                .return_consumed_capacity(aws_sdk_dynamodb::types::ReturnConsumedCapacity::Total)
                .send()
                .await
                .map_err(|e| classify("Query(history)", e))?;
            if let Some(units) = out.consumed_capacity().and_then(|c| c.capacity_units()) {
                self.history_read_milliunits.fetch_add(
                    (units * 1000.0).round() as u64,
                    std::sync::atomic::Ordering::Relaxed,
                );
            }
            for item in out.items() {
                let after_known_at = |item: &Item| match (&known_at, layout::recorded_at_of(item)) {
                    (Some(t), Some(at)) => at > t.as_str(),
                    _ => false,
                };
                if after_known_at(item) {
                    continue;
                }
                let sequence = sequence_of_sk(item).unwrap_or(0);
                highest = highest.max(sequence);
                let keep = *keep.get_or_insert_with(|| {
                    hi == OPEN_END
                        && known_at.is_none()
                        && self.snapshots.applies_to(stream.aggregate_type)
                        && (sequence + ReadsToHead::NEAR) / every > sequence / every
                });
                if layout::is_snapshot(item) {
                    // A snapshot at the event asked for or after it cannot serve it; another
                    // fold's snapshot is ignored (its state may not even decode).
                    if sequence >= serve
                        || layout::snapshot_fold_version(item) != Some(self.snapshots.fold_version)
                    {
                        continue;
                    }
                    match layout::decode_snapshot(item) {
                        Ok(snapshot) => {
                            history.snapshot = Some(snapshot);
                            break 'pages;
                        }
                        Err(e) => {
                            tracing::warn!(error = %e, "snapshot ignored");
                            continue;
                        }
                    }
                }
                if sequence <= serve {
                    history.tail.push(decode_event(item)?);
                } else if keep && !layout::is_snapshot(item) {
                    past_serve.push(decode_event(item)?);
                }
            }
            match out.last_evaluated_key() {
                Some(key) => start = Some(key.clone()),
                None => break,
            }
        }
        history.tail.reverse();
        if history
            .snapshot
            .as_ref()
            .is_some_and(|s| !s.state.folds_exactly(&history.tail))
        {
            // An event after the snapshot reaches a payment it archived (rare: a payment
            // dated before the payments it keeps, a reversal of an old one).
            tracing::info!(stream = %stream_pk(&stream), "snapshot cannot serve its tail: reading the whole history");
            let upto = if serve < hi {
                Upto::Sequence(serve)
            } else {
                upto
            };
            return Ok((super::whole_history(self, stream, upto).await?, highest));
        }
        if keep == Some(true) {
            let mut tail = history.tail.clone();
            tail.extend(past_serve.into_iter().rev());
            let to_head = History {
                snapshot: history.snapshot.clone(),
                tail,
            };
            self.reads_to_head
                .keep(stream_pk(&stream), highest, to_head);
        }
        Ok((history, highest))
    }

    fn put(&self, item: Item) -> Result<TransactWriteItem, AdapterError> {
        let put = Put::builder()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(pk)")
            .build()
            .map_err(|e| AdapterError::Aws(e.to_string()))?;
        Ok(TransactWriteItem::builder().put(put).build())
    }

    /// One attempt: read heads (those not `known`), assign sequences, write everything in
    /// one transaction, with `extra` (a processing record's completion, an entity's state
    /// item) after the events.
    async fn try_append(
        &self,
        pending: &mut Pending,
        known: HashMap<String, u64>,
        extra: &[TransactWriteItem],
        attempt: u32,
    ) -> Result<Result<(), Cancelled>, AdapterError> {
        let mut heads = known;
        // Each stream's head before this append: where its snapshot point is measured from.
        let mut first_heads: HashMap<String, u64> = HashMap::new();
        // Histories up to a stream's head read by this attempt.
        let mut read: HashMap<String, History> = HashMap::new();
        for (e, check) in pending.envelopes.iter_mut().zip(&pending.checks) {
            let pk = stream_pk(&e.stream());
            let head = match heads.get(&pk) {
                Some(h) => *h,
                // A retry lost a race with another writer: it reads the stream back to its
                // latest snapshot, not its head alone (one query either way), so a snapshot
                // point it reaches is folded without another read. Snapshots then land at
                // every point even on a busy stream, and readers' first pages reach them.
                None if attempt > 1 && self.snapshots.applies_to(&e.aggregate_type) => {
                    let (history, head) = self.read_back(e.stream(), Upto::Latest, None, 0).await?;
                    read.insert(pk.clone(), history);
                    head
                }
                None => self.head(&pk).await?,
            };
            first_heads.entry(pk.clone()).or_insert(head);
            if let Some(expected) = check.expected_sequence {
                if expected != head {
                    return Ok(Err(Cancelled::Sequence {
                        stream: e.stream().key(),
                        expected,
                        actual: head,
                    }));
                }
            }
            heads.insert(pk, head + 1);
            e.sequence = head + 1;
        }
        let stored = &pending.envelopes;
        let mut items = Vec::with_capacity(stored.len() * 2);
        for (e, check) in stored.iter().zip(&pending.checks) {
            items.push(self.put(layout::event_item(e, e.to_json()))?);
            items.push(self.put(layout::guard_item(e, &check.fingerprint))?);
        }
        let event_items = items.len();
        items.extend(extra.iter().cloned());
        // Snapshots go last, so the event/guard pairs and the extra items keep their
        // positions in the cancellation reasons. They need no condition: their events' puts
        // guard them.
        let conditioned = items.len();
        for item in self.snapshot_items(stored, &first_heads, read).await {
            let put = Put::builder()
                .table_name(&self.table)
                .set_item(Some(item))
                .build()
                .map_err(|e| AdapterError::Aws(e.to_string()))?;
            items.push(TransactWriteItem::builder().put(put).build());
        }
        let result = self
            .client
            .transact_write_items()
            .set_transact_items(Some(items))
            .send()
            .await;
        match result {
            Ok(_) => Ok(Ok(())),
            // A timeout or a dropped connection is transient, not an unknown service error.
            Err(
                err @ (SdkError::TimeoutError(_)
                | SdkError::DispatchFailure(_)
                | SdkError::ResponseError(_)),
            ) => Err(classify("TransactWriteItems", err)),
            Err(err) => match err.into_service_error() {
                TransactWriteItemsError::TransactionCanceledException(tc) => {
                    let reasons: Vec<&str> = tc
                        .cancellation_reasons()
                        .iter()
                        .take(conditioned)
                        .map(|r| r.code().unwrap_or(""))
                        .collect();
                    // Items alternate: event (even index), guard (odd index); then the
                    // caller's extra items.
                    let guard_hit = reasons.iter().enumerate().any(|(i, c)| {
                        i < event_items && i % 2 == 1 && *c == "ConditionalCheckFailed"
                    });
                    let seq_hit = reasons.iter().enumerate().any(|(i, c)| {
                        i < event_items && i % 2 == 0 && *c == "ConditionalCheckFailed"
                    });
                    let extra_hit = reasons
                        .iter()
                        .enumerate()
                        .any(|(i, c)| i >= event_items && *c == "ConditionalCheckFailed");
                    if extra_hit {
                        Ok(Err(Cancelled::Extra))
                    } else if guard_hit {
                        Ok(Err(Cancelled::EventId))
                    } else if seq_hit {
                        let first = stored.first().map(|e| e.stream().key()).unwrap_or_default();
                        // Other writers took the places of the event puts that failed:
                        // each stream's head is at least its old head plus those places
                        // (likely exactly: an append is usually one event), which the next
                        // attempt may take as the heads instead of reading them.
                        let mut guess = first_heads;
                        for (i, code) in reasons.iter().enumerate().take(event_items) {
                            if i % 2 == 0 && *code == "ConditionalCheckFailed" {
                                if let Some(head) =
                                    guess.get_mut(&stream_pk(&stored[i / 2].stream()))
                                {
                                    *head += 1;
                                }
                            }
                        }
                        Ok(Err(Cancelled::Race {
                            stream: first,
                            guess,
                        }))
                    } else {
                        // TransactionConflict and friends: another transaction on these items.
                        Ok(Err(Cancelled::Race {
                            stream: String::new(),
                            guess: HashMap::new(),
                        }))
                    }
                }
                other => Err(classify_service("TransactWriteItems", other)),
            },
        }
    }

    /// After a cancelled write: are all these events already stored with the same content?
    async fn resolve_duplicates(
        &self,
        pending: &Pending,
    ) -> Result<Option<Vec<EventEnvelope>>, AdapterError> {
        if !pending.checks.iter().any(|c| c.client_event_id) {
            return Ok(None);
        }
        let events = &pending.envelopes;
        let keys: Vec<Item> = events
            .iter()
            .map(|e| layout::key(guard_pk(&e.metadata.tenant_id, &e.event_id), 0))
            .collect();
        let guards = self.batch_get(keys).await?;
        let mut found = 0;
        let mut event_keys = Vec::new();
        for (e, check) in events.iter().zip(&pending.checks) {
            let pk = guard_pk(&e.metadata.tenant_id, &e.event_id);
            if let Some(g) = guards
                .iter()
                .find(|g| str_of(g, attr::PK) == Some(pk.as_str()))
            {
                found += 1;
                if str_of(g, attr::FINGERPRINT) != Some(check.fingerprint.as_str()) {
                    return Err(AdapterError::EventIdConflict(format!(
                        "eventId {} was already used for an event with different content",
                        e.event_id
                    )));
                }
                event_keys.push(guarded_event_key(g));
            }
        }
        if found == 0 {
            return Ok(None);
        }
        if found < events.len() {
            return Err(AdapterError::EventIdConflict(format!(
                "{found} of the {} events in this request are already stored; resend exactly the original request, or only new events",
                events.len()
            )));
        }
        let items = self.batch_get(event_keys).await?;
        let mut envelopes: Vec<EventEnvelope> =
            items.iter().map(decode_event).collect::<Result<_, _>>()?;
        // Back in request order.
        envelopes.sort_by_key(|env| events.iter().position(|e| e.event_id == env.event_id));
        Ok(Some(envelopes))
    }

    /// Items by key, read consistently: a resend must see the write that cancelled it.
    async fn batch_get(&self, keys: Vec<Item>) -> Result<Vec<Item>, AdapterError> {
        batch_get_keys(&self.client, &self.table, keys, Read::Consistent).await
    }

    /// One event by id (tenant-scoped).
    pub async fn get_event(
        &self,
        tenant: &str,
        event_id: &Uuid,
    ) -> Result<Option<EventEnvelope>, AdapterError> {
        let guard = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(layout::key(guard_pk(tenant, event_id), 0)))
            .send()
            .await
            .map_err(|e| classify("GetItem(guard)", e))?;
        let Some(g) = guard.item() else {
            return Ok(None);
        };
        let item = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(guarded_event_key(g)))
            .send()
            .await
            .map_err(|e| classify("GetItem(event)", e))?;
        item.item().map(decode_event).transpose()
    }
}

impl DynamoStore {
    /// Append events together with other items of the table in one transaction, once (no
    /// retry): the events of an entity whose state item is written with them (a
    /// subscription and its `Subscription.*` event). Any failed condition, of an event's
    /// sequence (give `expectedSequence`) or of an extra item, is
    /// [`AdapterError::SequenceConflict`]: the entity changed meanwhile, nothing is written.
    pub async fn append_with(
        &self,
        events: Vec<NewEvent>,
        extra: Vec<TransactWriteItem>,
        now: DateTime<Utc>,
    ) -> Result<Vec<EventEnvelope>, AdapterError> {
        let stream = events.first().map(|e| e.stream().key()).unwrap_or_default();
        let mut pending = Pending::new(events, now);
        match self
            .try_append(&mut pending, HashMap::new(), &extra, 1)
            .await?
        {
            Ok(()) => Ok(pending.envelopes),
            Err(Cancelled::EventId) => Err(AdapterError::EventIdConflict(
                "an eventId of this request is already stored".into(),
            )),
            Err(Cancelled::Sequence {
                expected, actual, ..
            }) => Err(AdapterError::SequenceConflict {
                stream,
                expected,
                actual,
            }),
            Err(_) => Err(AdapterError::SequenceConflict {
                stream,
                expected: 0,
                actual: 0,
            }),
        }
    }
}

/// What an append that completes a processing record found.
#[derive(Debug, Clone, PartialEq)]
pub enum Completing {
    /// The events are stored and the record completed, in one transaction.
    Stored(Vec<EventEnvelope>),
    /// The record was already completed: another run of the same message won, and nothing
    /// was written.
    AlreadyDone,
    /// The events' ids were already taken (by another run's commit, or by plain appends of
    /// an earlier run that did not complete its record); nothing was written.
    FollowOnsStored,
}

impl DynamoStore {
    /// Append follow-on events and, in the same transaction, `record` (the update that
    /// completes the processing record of the work that produced them). `known` holds
    /// stream heads the caller has just read (stream partition key -> last sequence), so
    /// their `Query(head)` is saved; a stale one loses the race and is re-read.
    pub async fn append_completing(
        &self,
        events: Vec<NewEvent>,
        now: DateTime<Utc>,
        known: HashMap<String, u64>,
        record: &TransactWriteItem,
    ) -> Result<Completing, AdapterError> {
        let mut pending = Pending::new(events, now);
        let mut known = Some(known);
        let mut attempt = 0;
        loop {
            attempt += 1;
            let heads = known.take().unwrap_or_default();
            match self
                .try_append(&mut pending, heads, std::slice::from_ref(record), attempt)
                .await?
            {
                Ok(()) => return Ok(Completing::Stored(pending.envelopes)),
                // Follow-on ids are name-based: a guard that exists means a run of the same
                // message stored them; a record already completed, that another run won.
                Err(Cancelled::EventId) => return Ok(Completing::FollowOnsStored),
                Err(Cancelled::Extra) => return Ok(Completing::AlreadyDone),
                Err(Cancelled::Sequence {
                    stream,
                    expected,
                    actual,
                }) => {
                    return Err(AdapterError::SequenceConflict {
                        stream,
                        expected,
                        actual,
                    })
                }
                Err(Cancelled::Race { stream, .. }) if attempt >= APPEND_ATTEMPTS => {
                    return Err(AdapterError::StreamContended {
                        stream,
                        attempts: attempt,
                    });
                }
                // Follow-ons carry no expected sequence, so a guessed head is safe to try:
                // a wrong one loses again, and the attempt after it reads.
                Err(Cancelled::Race { guess, .. }) if attempt == 1 && !guess.is_empty() => {
                    known = Some(guess);
                }
                Err(Cancelled::Race { .. }) => tokio::time::sleep(backoff(attempt)).await,
            }
        }
    }
}

/// Events on their way into the table. They move into their envelopes once; each attempt
/// only assigns their sequences (a deep copy of a large payload per attempt is not free).
struct Pending {
    envelopes: Vec<EventEnvelope>,
    /// What the append checks of each event, in the same order.
    checks: Vec<Check>,
}

struct Check {
    fingerprint: String,
    client_event_id: bool,
    expected_sequence: Option<u64>,
}

impl Pending {
    fn new(events: Vec<NewEvent>, now: DateTime<Utc>) -> Pending {
        // Millisecond precision keeps recordedAt identical across JSON and sort keys.
        let now = DateTime::from_timestamp_millis(now.timestamp_millis()).unwrap_or(now);
        let mut checks = Vec::with_capacity(events.len());
        let envelopes = events
            .into_iter()
            .map(|mut e| {
                checks.push(Check {
                    fingerprint: std::mem::take(&mut e.fingerprint),
                    client_event_id: e.client_event_id,
                    expected_sequence: e.expected_sequence,
                });
                // The sequence is the attempt's to assign.
                e.into_envelope(0, now)
            })
            .collect();
        Pending { envelopes, checks }
    }
}

enum Cancelled {
    Sequence {
        stream: String,
        expected: u64,
        actual: u64,
    },
    Race {
        stream: String,
        /// The heads the attempt assumed, each plus the places other writers took.
        guess: HashMap<String, u64>,
    },
    EventId,
    /// A condition of an item written with the events (a processing record's completion,
    /// or an entity's state item).
    Extra,
}

impl EventStore for DynamoStore {
    async fn append(
        &self,
        events: Vec<NewEvent>,
        now: DateTime<Utc>,
    ) -> Result<Appended, AdapterError> {
        if events.is_empty() {
            return Ok(Appended::Stored(Vec::new()));
        }
        let mut pending = Pending::new(events, now);
        let mut attempt = 0;
        loop {
            attempt += 1;
            let outcome = self
                .try_append(&mut pending, HashMap::new(), &[], attempt)
                .await?;
            let cancelled = match outcome {
                Ok(()) => return Ok(Appended::Stored(pending.envelopes)),
                Err(c) => c,
            };
            // A resend of stored events wins over any other conflict.
            if let Some(existing) = self.resolve_duplicates(&pending).await? {
                return Ok(Appended::AlreadyStored(existing));
            }
            match cancelled {
                Cancelled::Sequence {
                    stream,
                    expected,
                    actual,
                } => {
                    return Err(AdapterError::SequenceConflict {
                        stream,
                        expected,
                        actual,
                    })
                }
                Cancelled::EventId => {
                    return Err(AdapterError::EventIdConflict(
                        "an eventId of this request is already stored".into(),
                    ))
                }
                Cancelled::Extra => {
                    return Err(AdapterError::Aws(
                        "a condition of an item written with the events failed".into(),
                    ))
                }
                // Another writer took the sequence: re-read the head and try again. With an
                // expectedSequence the next attempt reports the conflict precisely.
                Cancelled::Race { stream, .. } if attempt >= APPEND_ATTEMPTS => {
                    return Err(AdapterError::StreamContended {
                        stream,
                        attempts: attempt,
                    });
                }
                Cancelled::Race { .. } => tokio::time::sleep(backoff(attempt)).await,
            }
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
        let out = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("pk = :pk AND sk BETWEEN :lo AND :hi")
            .expression_attribute_values(":pk", s(stream_pk(&stream)))
            .expression_attribute_values(":lo", n(after + 1))
            .expression_attribute_values(":hi", n(upto))
            .scan_index_forward(true)
            .limit(limit as i32)
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| classify("Query(stream)", e))?;
        let events: Vec<EventEnvelope> = out
            .items()
            .iter()
            .filter(|i| !layout::is_snapshot(i))
            .map(decode_event)
            .collect::<Result<_, _>>()?;
        // Snapshot items count toward the limit: the next page starts after the last item
        // read, whichever it was.
        let next = match out.last_evaluated_key().and_then(sequence_of_sk) {
            Some(last) if last < upto => Some(last),
            _ => None,
        };
        Ok(Page { events, next })
    }

    async fn history_upto(
        &self,
        stream: StreamId<'_>,
        upto: Upto,
    ) -> Result<History, AdapterError> {
        let (history, _) = self.read_back(stream, upto, None, 0).await?;
        Ok(history)
    }

    async fn history_at(
        &self,
        stream: StreamId<'_>,
        sequence: u64,
        head: Option<u64>,
    ) -> Result<(History, Option<u64>), AdapterError> {
        match head {
            None => {
                let (history, _) = self
                    .read_back(stream, Upto::Sequence(sequence), None, 0)
                    .await?;
                Ok((history, None))
            }
            Some(expected) => {
                let ahead = expected.saturating_sub(sequence);
                let (history, head) = self
                    .read_back(stream, Upto::Latest, Some(sequence), ahead)
                    .await?;
                Ok((history, Some(head)))
            }
        }
    }

    async fn put_loan_summary(&self, summary: &LoanSummary) -> Result<bool, AdapterError> {
        let res = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(layout::loan_summary_item(summary)?))
            .condition_expression("attribute_not_exists(pk) OR #v < :v")
            .expression_attribute_names("#v", attr::VERSION)
            .expression_attribute_values(":v", n(summary.version))
            .send()
            .await;
        match res {
            Ok(_) => Ok(true),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|e| e.is_conditional_check_failed_exception()) =>
            {
                Ok(false)
            }
            Err(e) => Err(classify("PutItem(loan summary)", e)),
        }
    }
}

fn classify_service(op: &str, e: TransactWriteItemsError) -> AdapterError {
    use aws_sdk_dynamodb::error::ProvideErrorMetadata;
    let code = e.code().unwrap_or("Unknown").to_string();
    let msg = format!("{op}: {code}: {}", e.message().unwrap_or(""));
    match e {
        TransactWriteItemsError::ProvisionedThroughputExceededException(_)
        | TransactWriteItemsError::ThrottlingException(_)
        | TransactWriteItemsError::RequestLimitExceeded(_)
        | TransactWriteItemsError::InternalServerError(_)
        | TransactWriteItemsError::TransactionInProgressException(_) => {
            AdapterError::Transient(msg)
        }
        _ => AdapterError::Aws(msg),
    }
}

/// Exponential backoff with full jitter, 20 ms base, 1 s cap.
pub fn backoff(attempt: u32) -> Duration {
    let cap = 20u64.saturating_mul(1 << attempt.min(6)).min(1000);
    let jitter = Uuid::new_v4().as_u128() as u64 % (cap + 1);
    Duration::from_millis(jitter.max(5))
}
