//! The event table's layout: the one place that knows how its items are keyed and shaped.
//! Every reader and writer (the store, the ledger, dispatch, the operator tools, the
//! late-payment job, the load driver and the integration tests) builds keys and reads
//! items through this module.
//!
//! One table, `pk` string + `sk` number:
//!
//! | item | pk | sk | other attributes |
//! |---|---|---|---|
//! | event | `A#<tenant>#<aggregateType>#<aggregateId>` | sequence | `envelope` (the JSON), `kind`=`event`, `eventId`, `eventType`, `tenantId`, `typeKey`, `corrKey`, `recordedAt`, `timeKey` |
//! | snapshot | `A#<tenant>#<aggregateType>#<aggregateId>` | sequence + 0.5 | `kind`=`snapshot`, `seq`, `foldVersion`, `recordedAt` (of event `seq`), `state` (the folded state's stored form, JSON deflated, binary) |
//! | eventId guard | `E#<tenant>#<eventId>` | 0 | `kind`=`eventId`, `streamPk`, `seq`, `fingerprint` |
//! | processing record | `P#<tenant>#<eventId>#<handler>` | 0 | `kind`=`processing`, `status`, `leaseUntil`, `attempts`, `log`, failure details, `expiresAt` ([`crate::ledger`]) |
//! | handler switch | `H#<handler>` | 0 | `kind`=`handlerSwitch`, `enabled` |
//! | daily statistics | `S#<handler>#<YYYY-MM-DD>` | 0 | `kind`=`handlerStats`, counters, histogram buckets `b0..bN` |
//! | subscription | `SUB#<tenant>` | [`subscription_sk`] (from its id) | `kind`=`subscription`, `subscription` (JSON), `secret` (KMS ciphertext), `version`, backfill progress; `deletedAt` on a tombstone ([`crate::subscriptions::repo`]) |
//! | delivery attempt | `DL#<tenant>#<subscriptionId>` | [`attempt_sk`] (time) | `kind`=`deliveryAttempt`, `attempt` (JSON), `expiresAt` |
//! | delivery of one event | `DV#<tenant>#<eventId>` | [`subscription_sk`] | `kind`=`delivery`, `status`, `attempts`, `log`, `expiresAt` ([`crate::subscriptions::deliverylog`]) |
//! | circuit of a target | `CB#<tenant>#<target hash>` | 0 | `kind`=`circuit`, `circuit` (JSON), `version`, `address` ([`crate::subscriptions::circuit`]) |
//! | loan summary (read model) | `R#<tenant>#loan#<loanId>` | 0 | `kind`=`loanSummary`, `summary` (the JSON), `version` (the loan stream's sequence it was folded at), `loanId`, and the keys of the loan indexes it belongs to ([`crate::store::read_models`]) |
//! | read-model rebuild job | `RB#<tenant>#<jobId>` | 0 | `kind`=`rebuildJob`, `job` (the JSON: status, counts, the next page's cursor), `status`, `pages` (pages done; each step is conditioned on it) ([`crate::operator::rebuild`]) |
//!
//! Two keys-only indexes serve the reads by type and by correlation: `byType`
//! (`typeKey` = `<tenant>#<eventType>`, `recordedAt`) and `byCorrelation` (`corrKey` =
//! `<tenant>#<correlationId>`, `recordedAt`); a third, `byTenantTime` (`tenantId`, `timeKey` =
//! `<recordedAt>#<eventId>`), orders a tenant's events for the live stream
//! ([`crate::http::stream`]). Only event items carry their keys.
//! Five sparse keys-only indexes serve the loan list, one per access pattern, each sorted by
//! `loanId`: `loansByTenant` (`lsTenant` = `<tenant>`), `loansByStatus` (`lsStatus` =
//! `<tenant>#<status>`), `loansByBorrower` (`lsBorrower` = `<tenant>#<borrowerId>`),
//! `loansByFund` (`lsFund` = `<tenant>#<fundId>`) and `loansDelinquent` (`lsDelinquent` =
//! `<tenant>`, only on delinquent loans). Only loan summary items carry their keys. Tenant
//! ids never contain `#`, so the first `#` after a prefix ends the tenant.
//!
//! A snapshot lives in its stream's partition at sort key `<sequence>.5` (the sort key is a
//! number, and DynamoDB numbers may have a fraction): just above the event it summarises
//! and below the next, so the query from the head backwards ([`super::EventStore::history_upto`])
//! meets the events after it and then the snapshot, and stops there. Readers of event
//! ranges skip snapshot items (their `kind`); the head of a stream is the integer part of
//! its highest sort key. Snapshot items carry no index keys and are not in the stream's
//! outbox reading ([`event_in_image`] skips them).
//!
//! An append is one `TransactWriteItems`: per event, a put of the event item conditioned on
//! its (stream, sequence) being free, and a put of its eventId guard conditioned on the id
//! being new. So sequences have no gaps or duplicates under concurrency, an eventId is
//! stored once per tenant, and a request is all or nothing. The stream (NEW_IMAGE) of the
//! table is the outbox: dispatch reads event items from it ([`event_in_image`]).

use std::collections::HashMap;
use std::time::Duration;

use aws_sdk_dynamodb::types::{AttributeValue, KeysAndAttributes};
use lending_events::envelope::{format_recorded_at, StreamId};
use lending_events::projections::LoanSummary;
use lending_events::state::{Folded, Snapshot};
use lending_events::EventEnvelope;
use uuid::Uuid;

use crate::error::{classify, AdapterError};

/// One item, or one key, as DynamoDB holds it.
pub type Item = HashMap<String, AttributeValue>;

/// Partition key prefixes, one per item family.
const EVENT_PREFIX: &str = "A#";
const GUARD_PREFIX: &str = "E#";
const RECORD_PREFIX: &str = "P#";
const SWITCH_PREFIX: &str = "H#";
const STATS_PREFIX: &str = "S#";
const SUBSCRIPTION_PREFIX: &str = "SUB#";
const ATTEMPT_PREFIX: &str = "DL#";
const DELIVERY_PREFIX: &str = "DV#";
const CIRCUIT_PREFIX: &str = "CB#";
const READ_MODEL_PREFIX: &str = "R#";
const REBUILD_JOB_PREFIX: &str = "RB#";

/// Attribute names.
pub mod attr {
    pub const PK: &str = "pk";
    pub const SK: &str = "sk";
    /// What an item is (see [`super::kind`]).
    pub const KIND: &str = "kind";
    /// An event item's envelope, as JSON text.
    pub const ENVELOPE: &str = "envelope";
    pub const EVENT_ID: &str = "eventId";
    pub const EVENT_TYPE: &str = "eventType";
    pub const TENANT_ID: &str = "tenantId";
    pub const RECORDED_AT: &str = "recordedAt";
    /// Partition key of the `byType` index.
    pub const TYPE_KEY: &str = "typeKey";
    /// Partition key of the `byCorrelation` index.
    pub const CORR_KEY: &str = "corrKey";
    /// Sort key of the `byTenantTime` index (its partition key is [`TENANT_ID`]).
    pub const TIME_KEY: &str = "timeKey";
    /// A guard's event item: its partition key and sequence.
    pub const STREAM_PK: &str = "streamPk";
    pub const SEQ: &str = "seq";
    /// A guard's fingerprint of the event's content (an exact resend has the same).
    pub const FINGERPRINT: &str = "fingerprint";
    /// A processing record's `IN_PROGRESS`, `COMPLETED` or `FAILED`.
    pub const STATUS: &str = "status";
    pub const HANDLER: &str = "handler";
    /// A handler switch's on/off.
    pub const ENABLED: &str = "enabled";
    /// A snapshot's fold version ([`lending_events::state::FOLD_VERSION`] when written).
    pub const FOLD_VERSION: &str = "foldVersion";
    /// A snapshot's folded state, as JSON text.
    pub const STATE: &str = "state";
    /// A read-model item's JSON.
    pub const SUMMARY: &str = "summary";
    /// The stream sequence a read-model item was folded at (writes only go forward).
    pub const VERSION: &str = "version";
    /// Sort key of the loan indexes.
    pub const LOAN_ID: &str = "loanId";
    /// Partition keys of the loan indexes.
    pub const LOANS_TENANT_KEY: &str = "lsTenant";
    pub const LOANS_STATUS_KEY: &str = "lsStatus";
    pub const LOANS_BORROWER_KEY: &str = "lsBorrower";
    pub const LOANS_FUND_KEY: &str = "lsFund";
    pub const LOANS_DELINQUENT_KEY: &str = "lsDelinquent";
    /// A rebuild job's JSON.
    pub const JOB: &str = "job";
    /// A rebuild job's pages done.
    pub const PAGES: &str = "pages";
}

/// Values of the `kind` attribute.
pub mod kind {
    pub const EVENT: &str = "event";
    pub const EVENT_ID_GUARD: &str = "eventId";
    pub const PROCESSING: &str = "processing";
    pub const HANDLER_SWITCH: &str = "handlerSwitch";
    pub const HANDLER_STATS: &str = "handlerStats";
    pub const SNAPSHOT: &str = "snapshot";
    pub const LOAN_SUMMARY: &str = "loanSummary";
    pub const REBUILD_JOB: &str = "rebuildJob";
}

/// The global secondary indexes (keys only; see [`crate::topology::GSIS`]).
pub mod index {
    pub const BY_TYPE: &str = "byType";
    pub const BY_CORRELATION: &str = "byCorrelation";
    /// A tenant's events in (recordedAt, eventId) order: the live stream.
    pub const BY_TENANT_TIME: &str = "byTenantTime";
    pub const LOANS_BY_TENANT: &str = "loansByTenant";
    pub const LOANS_BY_STATUS: &str = "loansByStatus";
    pub const LOANS_BY_BORROWER: &str = "loansByBorrower";
    pub const LOANS_BY_FUND: &str = "loansByFund";
    pub const LOANS_DELINQUENT: &str = "loansDelinquent";
}

/// A string attribute.
pub fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

/// A number attribute.
pub fn n(v: impl ToString) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

/// The text of a string attribute.
pub fn str_of<'a>(item: &'a Item, name: &str) -> Option<&'a str> {
    item.get(name)
        .and_then(|v| v.as_s().ok())
        .map(String::as_str)
}

/// A number attribute that fits a `u64`.
pub fn num_of(item: &Item, name: &str) -> Option<u64> {
    item.get(name)
        .and_then(|v| v.as_n().ok())
        .and_then(|v| v.parse().ok())
}

/// The full key of an item.
pub fn key(pk: impl Into<String>, sk: u64) -> Item {
    HashMap::from([(attr::PK.into(), s(pk)), (attr::SK.into(), n(sk))])
}

// ---- keys --------------------------------------------------------------------------

/// The partition key of a stream's event items.
pub fn stream_pk(stream: &StreamId<'_>) -> String {
    format!("{EVENT_PREFIX}{}", stream.key())
}

/// What every event item partition key of one tenant starts with.
pub fn tenant_streams_prefix(tenant: &str) -> String {
    format!("{EVENT_PREFIX}{tenant}#")
}

/// The aggregate id in an event item's partition key, when the key is of that tenant and
/// aggregate type.
pub fn aggregate_id_in<'a>(pk: &'a str, tenant: &str, aggregate_type: &str) -> Option<&'a str> {
    let stream = StreamId {
        tenant_id: tenant,
        aggregate_type,
        aggregate_id: "",
    };
    pk.strip_prefix(&stream_pk(&stream))
}

/// The partition key of an eventId guard.
pub fn guard_pk(tenant: &str, event_id: &Uuid) -> String {
    format!("{GUARD_PREFIX}{tenant}#{event_id}")
}

/// The partition key of one handler's processing record of one event.
pub fn record_pk(tenant: &str, event_id: &str, handler: &str) -> String {
    format!("{}{handler}", event_records_prefix(tenant, event_id))
}

/// What the processing records of one event (every handler) start with.
pub fn event_records_prefix(tenant: &str, event_id: &str) -> String {
    format!("{RECORD_PREFIX}{tenant}#{event_id}#")
}

/// The partition key of a handler switch.
pub fn switch_pk(handler: &str) -> String {
    format!("{SWITCH_PREFIX}{handler}")
}

/// Whether a partition key is a handler switch's.
pub fn is_switch_pk(pk: &str) -> bool {
    pk.starts_with(SWITCH_PREFIX)
}

/// The partition key of a handler's statistics of one day (`YYYY-MM-DD`).
pub fn stats_pk(handler: &str, day: &str) -> String {
    format!("{STATS_PREFIX}{handler}#{day}")
}

/// The partition of a tenant's subscriptions: one Query reads them all.
pub fn subscriptions_pk(tenant: &str) -> String {
    format!("{SUBSCRIPTION_PREFIX}{tenant}")
}

/// A subscription's sort key: the id's first 8 bytes as a number (DynamoDB numbers hold
/// 38 digits; a create is conditioned on the key being free).
pub fn subscription_sk(id: &Uuid) -> u64 {
    let b = id.as_bytes();
    u64::from_be_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]])
}

/// The partition of a subscription's delivery attempts (its delivery log).
pub fn attempts_pk(tenant: &str, subscription: &Uuid) -> String {
    format!("{ATTEMPT_PREFIX}{tenant}#{subscription}")
}

/// An attempt's sort key: microseconds since the epoch, times 1000, plus a random
/// tie-breaker, so two attempts of one subscription in the same microsecond both stay.
pub fn attempt_sk(at: chrono::DateTime<chrono::Utc>) -> u64 {
    let micros = at.timestamp_micros().max(0) as u64;
    micros * 1000 + (Uuid::new_v4().as_u128() % 1000) as u64
}

/// The partition of one event's deliveries, one item per subscription ([`subscription_sk`]).
pub fn delivery_pk(tenant: &str, event_id: &Uuid) -> String {
    format!("{DELIVERY_PREFIX}{tenant}#{event_id}")
}

/// The circuit-breaker item of one target address of a tenant.
pub fn circuit_pk(tenant: &str, target_address: &str) -> String {
    format!("{CIRCUIT_PREFIX}{tenant}#{}", target_hash(target_address))
}

/// A short, stable name of a target address (its SHA-256, 16 hex digits).
pub fn target_hash(address: &str) -> String {
    use sha2::{Digest, Sha256};
    Sha256::digest(address.as_bytes())
        .iter()
        .take(8)
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The `byType` partition key of one tenant's events of one type.
pub fn type_key(tenant: &str, event_type: &str) -> String {
    format!("{tenant}{}", type_key_suffix(event_type))
}

/// What every `byType` key of an event type ends with, whatever the tenant.
pub fn type_key_suffix(event_type: &str) -> String {
    format!("#{event_type}")
}

/// (tenant, event type) of a `byType` key.
pub fn split_type_key(type_key: &str) -> Option<(&str, &str)> {
    type_key.split_once('#')
}

/// The live stream's order key of an event: `<recordedAt>#<eventId>`, the sort key of the
/// `byTenantTime` index. Fixed-width time first, so text order is time order; the eventId
/// orders events stored in the same millisecond.
pub fn time_key(e: &EventEnvelope) -> String {
    format!("{}#{}", format_recorded_at(&e.recorded_at), e.event_id)
}

/// The `byCorrelation` partition key of one tenant's correlation.
pub fn corr_key(tenant: &str, correlation: &str) -> String {
    format!("{tenant}#{correlation}")
}

/// The partition key of a loan's summary item.
pub fn loan_summary_pk(tenant: &str, loan_id: &str) -> String {
    format!("{READ_MODEL_PREFIX}{tenant}#loan#{loan_id}")
}

/// The partition key of a read-model rebuild job.
pub fn rebuild_job_pk(tenant: &str, job_id: &str) -> String {
    format!("{REBUILD_JOB_PREFIX}{tenant}#{job_id}")
}

/// The partition key of a loan index entry: `<tenant>` or `<tenant>#<value>`.
pub fn loan_index_key(tenant: &str, value: Option<&str>) -> String {
    match value {
        Some(v) => format!("{tenant}#{v}"),
        None => tenant.to_string(),
    }
}

// ---- items -------------------------------------------------------------------------

/// The item of a loan summary, with the keys of every loan index it belongs to.
pub fn loan_summary_item(summary: &LoanSummary) -> Result<Item, AdapterError> {
    let tenant = &summary.tenant_id;
    let body = serde_json::to_string(summary)
        .map_err(|e| AdapterError::Decode(format!("loan summary: {e}")))?;
    let mut item = HashMap::from([
        (
            attr::PK.into(),
            s(loan_summary_pk(tenant, &summary.loan_id)),
        ),
        (attr::SK.into(), n(0)),
        (attr::KIND.into(), s(kind::LOAN_SUMMARY)),
        (attr::SUMMARY.into(), s(body)),
        (attr::VERSION.into(), n(summary.version)),
        (attr::TENANT_ID.into(), s(tenant)),
        (attr::LOAN_ID.into(), s(&summary.loan_id)),
        (
            attr::LOANS_TENANT_KEY.into(),
            s(loan_index_key(tenant, None)),
        ),
        (
            attr::LOANS_STATUS_KEY.into(),
            s(loan_index_key(tenant, Some(summary.status.as_str()))),
        ),
    ]);
    if let Some(b) = &summary.borrower_id {
        item.insert(
            attr::LOANS_BORROWER_KEY.into(),
            s(loan_index_key(tenant, Some(b))),
        );
    }
    if let Some(f) = &summary.fund_id {
        item.insert(
            attr::LOANS_FUND_KEY.into(),
            s(loan_index_key(tenant, Some(f))),
        );
    }
    if summary.delinquent {
        item.insert(
            attr::LOANS_DELINQUENT_KEY.into(),
            s(loan_index_key(tenant, None)),
        );
    }
    Ok(item)
}

/// Decode a loan summary item.
pub fn decode_loan_summary(item: &Item) -> Result<LoanSummary, AdapterError> {
    let body = str_of(item, attr::SUMMARY)
        .ok_or_else(|| AdapterError::Decode("loan summary item without summary".into()))?;
    serde_json::from_str(body).map_err(|e| AdapterError::Decode(format!("stored summary: {e}")))
}

/// The item of a stored event; `body` is the envelope as JSON.
pub fn event_item(e: &EventEnvelope, body: String) -> Item {
    let tenant = &e.metadata.tenant_id;
    HashMap::from([
        (attr::PK.into(), s(stream_pk(&e.stream()))),
        (attr::SK.into(), n(e.sequence)),
        (attr::KIND.into(), s(kind::EVENT)),
        (attr::ENVELOPE.into(), s(body)),
        (attr::EVENT_ID.into(), s(e.event_id.to_string())),
        (attr::EVENT_TYPE.into(), s(&e.event_type)),
        (attr::TENANT_ID.into(), s(tenant)),
        (
            attr::RECORDED_AT.into(),
            s(format_recorded_at(&e.recorded_at)),
        ),
        (attr::TIME_KEY.into(), s(time_key(e))),
        (attr::TYPE_KEY.into(), s(type_key(tenant, &e.event_type))),
        (
            attr::CORR_KEY.into(),
            s(corr_key(tenant, &e.metadata.correlation_id)),
        ),
    ])
}

/// The eventId guard of a stored event.
pub fn guard_item(e: &EventEnvelope, fingerprint: &str) -> Item {
    HashMap::from([
        (
            attr::PK.into(),
            s(guard_pk(&e.metadata.tenant_id, &e.event_id)),
        ),
        (attr::SK.into(), n(0)),
        (attr::KIND.into(), s(kind::EVENT_ID_GUARD)),
        (attr::STREAM_PK.into(), s(stream_pk(&e.stream()))),
        (attr::SEQ.into(), n(e.sequence)),
        (attr::FINGERPRINT.into(), s(fingerprint)),
    ])
}

/// The sort key of the snapshot taken at `sequence`: between that event and the next.
pub fn snapshot_sk(sequence: u64) -> AttributeValue {
    AttributeValue::N(format!("{sequence}.5"))
}

/// The sequence a stream item's sort key stands for: the event's, or for a snapshot the
/// event it summarises up to (the integer part).
pub fn sequence_of_sk(item: &Item) -> Option<u64> {
    let text = item.get(attr::SK)?.as_n().ok()?;
    text.split('.').next()?.parse().ok()
}

/// Whether a stream item is a snapshot.
pub fn is_snapshot(item: &Item) -> bool {
    str_of(item, attr::KIND) == Some(kind::SNAPSHOT)
}

/// A snapshot's state as stored: its JSON, deflated (a folded state is repetitive text).
pub fn deflate_state(json: &str) -> Vec<u8> {
    use std::io::Write;
    let mut encoder =
        flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::default());
    // Writing to a Vec cannot fail.
    let _ = encoder.write_all(json.as_bytes());
    encoder.finish().unwrap_or_default()
}

/// The JSON of a stored snapshot state ([`deflate_state`] undone).
pub fn inflate_state(deflated: &[u8]) -> Result<Vec<u8>, AdapterError> {
    let mut json = Vec::new();
    std::io::Read::read_to_end(&mut flate2::read::DeflateDecoder::new(deflated), &mut json)
        .map_err(|e| AdapterError::Decode(format!("stored snapshot: {e}")))?;
    Ok(json)
}

/// The snapshot item of `state`, the fold of stream `pk` up to its event `sequence`
/// (recorded at `recorded_at`), written by fold `fold_version`; `state` is its JSON
/// deflated ([`deflate_state`]).
pub fn snapshot_item(
    pk: &str,
    sequence: u64,
    recorded_at: &chrono::DateTime<chrono::Utc>,
    fold_version: u32,
    state: Vec<u8>,
) -> Item {
    HashMap::from([
        (attr::PK.into(), s(pk)),
        (attr::SK.into(), snapshot_sk(sequence)),
        (attr::KIND.into(), s(kind::SNAPSHOT)),
        (attr::SEQ.into(), n(sequence)),
        (attr::FOLD_VERSION.into(), n(fold_version)),
        (attr::RECORDED_AT.into(), s(format_recorded_at(recorded_at))),
        (attr::STATE.into(), AttributeValue::B(state.into())),
    ])
}

/// The fold version a snapshot item was written by.
pub fn snapshot_fold_version(item: &Item) -> Option<u32> {
    num_of(item, attr::FOLD_VERSION).and_then(|v| u32::try_from(v).ok())
}

/// The `recordedAt` text of a stream item (an event's, or a snapshot's last event's).
pub fn recorded_at_of(item: &Item) -> Option<&str> {
    str_of(item, attr::RECORDED_AT)
}

/// Decode a snapshot item (check its fold version first: another fold's state may not
/// decode).
pub fn decode_snapshot(item: &Item) -> Result<Snapshot, AdapterError> {
    let bad = |e: String| AdapterError::Decode(format!("stored snapshot: {e}"));
    let state: Folded = match item.get(attr::STATE) {
        Some(AttributeValue::B(deflated)) => {
            serde_json::from_slice(&inflate_state(deflated.as_ref())?)
        }
        _ => serde_json::from_str(str_of(item, attr::STATE).unwrap_or_default()),
    }
    .map_err(|e| bad(e.to_string()))?;
    Ok(Snapshot {
        fold_version: snapshot_fold_version(item).unwrap_or(0),
        sequence: num_of(item, attr::SEQ).unwrap_or(0),
        state,
    })
}

/// The key of the event item a guard points at.
pub fn guarded_event_key(guard: &Item) -> Item {
    key(
        str_of(guard, attr::STREAM_PK).unwrap_or_default(),
        num_of(guard, attr::SEQ).unwrap_or(0),
    )
}

/// The envelope JSON of an event item.
pub fn event_body(item: &Item) -> Option<&str> {
    str_of(item, attr::ENVELOPE)
}

/// Decode an event item back into its envelope.
pub fn decode_event(item: &Item) -> Result<EventEnvelope, AdapterError> {
    decode_body(event_body(item))
}

fn decode_body(body: Option<&str>) -> Result<EventEnvelope, AdapterError> {
    let body = body.ok_or_else(|| AdapterError::Decode("event item without envelope".into()))?;
    serde_json::from_str(body).map_err(|e| AdapterError::Decode(format!("stored envelope: {e}")))
}

/// The event of a table stream image (the envelope JSON and the envelope), if the image is
/// of an event item; other items (guards, records, switches) are `None`.
pub fn event_in_image(
    image: &serde_dynamo::Item,
) -> Option<Result<(String, EventEnvelope), AdapterError>> {
    match image.get(attr::KIND) {
        Some(serde_dynamo::AttributeValue::S(k)) if k == kind::EVENT => {}
        _ => return None,
    }
    let body = match image.get(attr::ENVELOPE) {
        Some(serde_dynamo::AttributeValue::S(body)) => Some(body.as_str()),
        _ => None,
    };
    Some(decode_body(body).map(|e| (body.unwrap_or_default().to_string(), e)))
}

/// The table keys (pk, sk) of keys-only index entries, in index order.
pub fn index_keys(items: &[Item]) -> Vec<Item> {
    items
        .iter()
        .map(|i| {
            i.iter()
                .filter(|(k, _)| *k == attr::PK || *k == attr::SK)
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect()
        })
        .collect()
}

// ---- batch reads -------------------------------------------------------------------

/// How a batch read reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Read {
    /// Sees every write acknowledged before it (twice the read units).
    Consistent,
    Eventual,
}

/// Items by `pk` (sk 0), in the order asked; missing ones are left out.
pub async fn batch_get_pks(
    ddb: &aws_sdk_dynamodb::Client,
    table: &str,
    pks: &[String],
    read: Read,
) -> Result<Vec<Item>, AdapterError> {
    let keys = pks.iter().map(|pk| key(pk.clone(), 0)).collect();
    batch_get_keys(ddb, table, keys, read).await
}

/// Items by full key, 100 keys per BatchGetItem, unprocessed keys retried with backoff;
/// returned in the order of `keys` (BatchGetItem itself answers in any order), missing
/// ones left out.
pub async fn batch_get_keys(
    ddb: &aws_sdk_dynamodb::Client,
    table: &str,
    keys: Vec<Item>,
    read: Read,
) -> Result<Vec<Item>, AdapterError> {
    fn key_of(item: &Item) -> Option<(String, String)> {
        let text = |v: &AttributeValue| match v {
            AttributeValue::S(x) | AttributeValue::N(x) => Some(x.clone()),
            _ => None,
        };
        Some((text(item.get(attr::PK)?)?, text(item.get(attr::SK)?)?))
    }
    let mut found: HashMap<(String, String), Item> = HashMap::with_capacity(keys.len());
    for chunk in keys.chunks(100) {
        let mut pending = chunk.to_vec();
        let mut attempt = 0u32;
        while !pending.is_empty() {
            let ka = KeysAndAttributes::builder()
                .set_keys(Some(pending))
                .consistent_read(read == Read::Consistent)
                .build()
                .map_err(|e| AdapterError::Aws(e.to_string()))?;
            let res = ddb
                .batch_get_item()
                .request_items(table, ka)
                .send()
                .await
                .map_err(|e| classify("BatchGetItem", e))?;
            for item in res
                .responses()
                .and_then(|r| r.get(table))
                .into_iter()
                .flatten()
            {
                if let Some(k) = key_of(item) {
                    found.insert(k, item.clone());
                }
            }
            pending = res
                .unprocessed_keys()
                .and_then(|u| u.get(table))
                .map(|k| k.keys().to_vec())
                .unwrap_or_default();
            attempt += 1;
            if !pending.is_empty() {
                tokio::time::sleep(Duration::from_millis(50 << attempt.min(6))).await;
            }
        }
    }
    Ok(keys
        .iter()
        .filter_map(|k| key_of(k).and_then(|k| found.remove(&k)))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stream() -> StreamId<'static> {
        StreamId {
            tenant_id: "t",
            aggregate_type: "Loan",
            aggregate_id: "L-1",
        }
    }

    #[test]
    fn subscription_keys_are_stable_and_attempts_ordered_in_time() {
        let id = Uuid::parse_str("00000000-0000-0001-ffff-ffffffffffff").unwrap();
        assert_eq!(subscription_sk(&id), 1);
        let t = chrono::Utc::now();
        assert!(attempt_sk(t) < attempt_sk(t + chrono::Duration::microseconds(1)));
        assert_eq!(target_hash("https://a"), target_hash("https://a"));
        assert_eq!(target_hash("https://a").len(), 16);
        assert!(circuit_pk("t", "https://a").starts_with(CIRCUIT_PREFIX));
    }

    #[test]
    fn keys_read_back() {
        let pk = stream_pk(&stream());
        assert_eq!(aggregate_id_in(&pk, "t", "Loan"), Some("L-1"));
        assert_eq!(aggregate_id_in(&pk, "t", "Borrower"), None);
        assert_eq!(aggregate_id_in(&pk, "u", "Loan"), None);
        assert!(pk.starts_with(&tenant_streams_prefix("t")));
        assert!(!pk.starts_with(&tenant_streams_prefix("")));
        assert!(record_pk("t", "e", "h").starts_with(&event_records_prefix("t", "e")));
        assert!(is_switch_pk(&switch_pk("h")));
        assert!(!is_switch_pk(&stats_pk("h", "2026-01-01")));
        assert_eq!(
            split_type_key(&type_key("t", "Loan.Funded")),
            Some(("t", "Loan.Funded"))
        );
        assert!(type_key("t", "Loan.Funded").ends_with(&type_key_suffix("Loan.Funded")));
    }

    #[test]
    fn every_family_has_its_own_prefix() {
        let pks = [
            stream_pk(&stream()),
            guard_pk("t", &Uuid::nil()),
            record_pk("t", "e", "h"),
            switch_pk("h"),
            stats_pk("h", "2026-01-01"),
            loan_summary_pk("t", "L-1"),
            rebuild_job_pk("t", "j"),
        ];
        let families: std::collections::BTreeSet<&str> = pks
            .iter()
            .map(|pk| &pk[..pk.find('#').unwrap_or(0)])
            .collect();
        assert_eq!(families.len(), pks.len(), "{pks:?}");
    }

    #[test]
    fn a_snapshot_sorts_between_its_event_and_the_next() {
        let now = chrono::Utc::now();
        let state = serde_json::to_string(&Folded::empty("Loan").unwrap()).unwrap();
        let item = snapshot_item("A#t#Loan#L-1", 50, &now, 1, deflate_state(&state));
        let sk: f64 = item[attr::SK].as_n().unwrap().parse().unwrap();
        assert!(50.0 < sk && sk < 51.0);
        assert_eq!(sequence_of_sk(&item), Some(50));
        assert!(is_snapshot(&item));
        assert_eq!(sequence_of_sk(&key("x", 7)), Some(7));
        let snapshot = decode_snapshot(&item).unwrap();
        assert_eq!((snapshot.fold_version, snapshot.sequence), (1, 50));
    }

    #[test]
    fn an_item_without_an_envelope_is_a_decode_error() {
        let item = key("x", 1);
        assert!(matches!(decode_event(&item), Err(AdapterError::Decode(_))));
    }
}
