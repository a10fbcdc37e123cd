//! The resources the system needs, as data: one source for local provisioning and for the
//! checks that hold the SAM template to the same shape.

use lending_events::routing::RoutingTable;

/// Partition and sort key of the event-history table.
pub const TABLE_KEYS: (&str, &str) = ("pk", "sk");

/// Global secondary indexes: (name, partition key, sort key). All are string keys.
pub const GSIS: &[(&str, &str, &str)] = &[
    ("byType", "typeKey", "recordedAt"),
    ("byCorrelation", "corrKey", "recordedAt"),
    // The live stream's order: every event of a tenant by `timeKey` = `<recordedAt>#<eventId>`
    // (see `crate::stream`), so events stored in the same millisecond still have one order.
    ("byTenantTime", "tenantId", "timeKey"),
];

/// What the indexes hold: keys only. An `ALL` index copies the ~1 KB envelope, so each
/// index write costs what the event write costs (2 WRU per index per event); a keys-only
/// entry is 1 WRU, and the index's readers fetch envelopes with one BatchGetItem per page
/// (`query::batch_get_keys`). Reads by type or correlation are rare next to writes.
pub const GSI_PROJECTION: &str = "KEYS_ONLY";

/// The stream view the dispatcher reads.
pub const STREAM_VIEW: &str = "NEW_IMAGE";

/// Receives before SQS moves a message to the DLQ.
pub const MAX_RECEIVE_COUNT: u32 = 5;

/// Visibility timeout of the domain queues, seconds (at least 6x the function timeout on AWS).
pub const VISIBILITY_TIMEOUT_SECS: u32 = 180;

/// One domain's queue pair.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueuePair {
    pub domain: &'static str,
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
