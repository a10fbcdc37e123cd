//! The resources the system needs, as data: one source for local provisioning and for the
//! checks that hold the SAM template to the same shape.

use lending_events::routing::RoutingTable;
use lending_events::Domain;

use crate::store::layout::{attr, index};

/// Partition and sort key of the event-history table.
pub const TABLE_KEYS: (&str, &str) = (attr::PK, attr::SK);

/// Global secondary indexes: (name, partition key, sort key). All are string keys.
pub const GSIS: &[(&str, &str, &str)] = &[
    (index::BY_TYPE, attr::TYPE_KEY, attr::RECORDED_AT),
    (index::BY_CORRELATION, attr::CORR_KEY, attr::RECORDED_AT),
    (index::BY_TENANT_TIME, attr::TENANT_ID, attr::TIME_KEY),
    // The read models' loan list, one index per access pattern (sparse: summary items only).
    (
        index::LOANS_BY_TENANT,
        attr::LOANS_TENANT_KEY,
        attr::LOAN_ID,
    ),
    (
        index::LOANS_BY_STATUS,
        attr::LOANS_STATUS_KEY,
        attr::LOAN_ID,
    ),
    (
        index::LOANS_BY_BORROWER,
        attr::LOANS_BORROWER_KEY,
        attr::LOAN_ID,
    ),
    (index::LOANS_BY_FUND, attr::LOANS_FUND_KEY, attr::LOAN_ID),
    (
        index::LOANS_DELINQUENT,
        attr::LOANS_DELINQUENT_KEY,
        attr::LOAN_ID,
    ),
];

/// What the indexes hold: keys only. An `ALL` index copies the ~1 KB envelope, so each
/// index write costs what the event write costs (2 WRU per index per event); a keys-only
/// entry is 1 WRU, and the index's readers fetch envelopes with one BatchGetItem per page
/// (`store::layout::batch_get_keys`). Reads by type or correlation are rare next to writes.
pub const GSI_PROJECTION: &str = "KEYS_ONLY";

/// The stream view the dispatcher reads.
pub const STREAM_VIEW: &str = "NEW_IMAGE";

/// Receives before SQS moves a message to the DLQ.
pub const MAX_RECEIVE_COUNT: u32 = 5;

/// Visibility timeout of the domain queues, seconds (at least 6x the function timeout on AWS).
pub const VISIBILITY_TIMEOUT_SECS: u32 = 180;

/// Receives before SQS moves a delivery message to the subscriptions' dead letters. The
/// delivery function dead-letters failing deliveries itself (it counts attempts); messages
/// that wait (an open circuit, a paused subscription, a backfill) use receives without an
/// attempt, so this is SQS's maximum, a guard against a message that kills the function.
pub const DELIVERY_MAX_RECEIVE_COUNT: u32 = 1000;

/// The delivery queue and the subscriptions' dead letters, e.g. `lendingos-deliveries.fifo`
/// and `lendingos-deliveries-dlq.fifo`.
pub fn delivery_queues(prefix: &str) -> (String, String) {
    (
        format!("{prefix}-deliveries.fifo"),
        format!("{prefix}-deliveries-dlq.fifo"),
    )
}

/// The queue of read-model rebuild steps and its dead letters, e.g.
/// `lendingos-projection-rebuild.fifo` and `lendingos-projection-rebuild-dlq.fifo` (one
/// message group per job, so a job's steps run one at a time and in order).
pub fn rebuild_queues(prefix: &str) -> (String, String) {
    (
        format!("{prefix}-projection-rebuild.fifo"),
        format!("{prefix}-projection-rebuild-dlq.fifo"),
    )
}

/// The alias of the KMS key that encrypts subscriptions' signing secrets.
pub fn subscription_key_alias(prefix: &str) -> String {
    format!("alias/{prefix}-subscriptions")
}

/// One domain's queue pair.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueuePair {
    pub domain: Domain,
    pub queue: String,
    pub dlq: String,
}

/// Queue names for every routed domain, e.g. `lendingos-payment.fifo` and
/// `lendingos-payment-dlq.fifo`.
pub fn queues(prefix: &str) -> Vec<QueuePair> {
    RoutingTable::standard()
        .domains()
        .map(|d| QueuePair {
            domain: d,
            queue: format!("{prefix}-{d}.fifo"),
            dlq: format!("{prefix}-{d}-dlq.fifo"),
        })
        .collect()
}

/// Handlers (name, domain) subscribed to an event type.
pub fn subscribers(event_type: &str) -> Vec<(&'static str, Domain)> {
    let mut hs: Vec<_> = lending_events::handlers::all()
        .into_iter()
        .filter(|h| h.subscriptions().contains(&event_type))
        .collect();
    hs.sort_by_key(|h| (h.domain(), h.priority()));
    hs.into_iter().map(|h| (h.name(), h.domain())).collect()
}
