//! Reads through the table's secondary indexes (`byType`, `byCorrelation`, keys only) and
//! batch reads of whole items, for the operator routes and tools.
//!
//! The indexes hold keys only (see [`crate::topology::GSI_PROJECTION`]): each page of index
//! entries is followed by one BatchGetItem for the envelopes.

use chrono::{DateTime, Utc};
use lending_events::envelope::format_recorded_at;
use lending_events::EventEnvelope;

use super::layout::{
    batch_get_keys, corr_key, decode_event, index, index_keys, s, type_key, Item, Read,
};
use crate::error::{classify, AdapterError};

/// A recordedAt window (inclusive) as the bounds of a `BETWEEN` on the stored text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Window {
    pub from: String,
    pub to: String,
}

impl Window {
    /// From optional ends at the millisecond precision `recordedAt` is stored with; an open
    /// end takes every time.
    pub fn between(from: Option<&DateTime<Utc>>, to: Option<&DateTime<Utc>>) -> Window {
        // Stored times have a fixed width (`format_recorded_at`), so text order is time order.
        Window {
            from: from.map_or_else(|| "0000".to_string(), format_recorded_at),
            to: to.map_or_else(
                || "9999-12-31T23:59:59.999Z".to_string(),
                format_recorded_at,
            ),
        }
    }

    /// Whether the window ends before it starts (DynamoDB refuses a reversed `BETWEEN`).
    pub fn is_reversed(&self) -> bool {
        self.from > self.to
    }
}

/// A page of one event type in a recordedAt window (inclusive), oldest first.
pub struct TypePage {
    pub events: Vec<EventEnvelope>,
    pub last_key: Option<Item>,
}

/// Query the `byType` index: `typeKey = <tenant>#<type>`, `recordedAt BETWEEN from AND to`.
pub async fn events_by_type(
    ddb: &aws_sdk_dynamodb::Client,
    table: &str,
    tenant: &str,
    event_type: &str,
    window: &Window,
    limit: usize,
    start: Option<Item>,
) -> Result<TypePage, AdapterError> {
    let mut events = Vec::new();
    let mut start = start;
    // A Limit counts items read, so keep going until the page is full or the index ends.
    loop {
        let out = ddb
            .query()
            .table_name(table)
            .index_name(index::BY_TYPE)
            .key_condition_expression("typeKey = :k AND recordedAt BETWEEN :from AND :to")
            .expression_attribute_values(":k", s(type_key(tenant, event_type)))
            .expression_attribute_values(":from", s(&window.from))
            .expression_attribute_values(":to", s(&window.to))
            .limit((limit - events.len()) as i32)
            .set_exclusive_start_key(start)
            .send()
            .await
            .map_err(|e| classify("Query(byType)", e))?;
        for item in batch_get_keys(ddb, table, index_keys(out.items()), Read::Eventual).await? {
            events.push(decode_event(&item)?);
        }
        start = out.last_evaluated_key().cloned();
        if start.is_none() || events.len() >= limit {
            return Ok(TypePage {
                events,
                last_key: start,
            });
        }
    }
}

/// Every event of a correlation, from the `byCorrelation` index, in recordedAt order.
pub async fn correlation_events(
    ddb: &aws_sdk_dynamodb::Client,
    table: &str,
    tenant: &str,
    correlation: &str,
    max: usize,
) -> Result<Vec<EventEnvelope>, AdapterError> {
    let mut out = Vec::new();
    let mut start = None;
    loop {
        let res = ddb
            .query()
            .table_name(table)
            .index_name(index::BY_CORRELATION)
            .key_condition_expression("corrKey = :c")
            .expression_attribute_values(":c", s(corr_key(tenant, correlation)))
            .set_exclusive_start_key(start)
            .send()
            .await
            .map_err(|e| classify("Query(byCorrelation)", e))?;
        for item in batch_get_keys(ddb, table, index_keys(res.items()), Read::Eventual).await? {
            out.push(decode_event(&item)?);
        }
        start = res.last_evaluated_key().cloned();
        if start.is_none() || out.len() >= max {
            out.truncate(max);
            return Ok(out);
        }
    }
}
