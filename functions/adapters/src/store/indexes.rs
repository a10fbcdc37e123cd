//! Reads through the table's secondary indexes (`byType`, `byCorrelation`, keys only) and
//! batch reads of whole items, for the operator routes and tools.
//!
//! The indexes hold keys only (see [`crate::topology::GSI_PROJECTION`]): each page of index
//! entries is followed by one BatchGetItem for the envelopes.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::{AttributeValue, KeysAndAttributes};
use chrono::{DateTime, Utc};
use lending_events::envelope::format_recorded_at;
use lending_events::EventEnvelope;

use super::decode_event;
use crate::error::{classify, AdapterError};

type Item = HashMap<String, AttributeValue>;

fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

pub(crate) fn str_of<'a>(item: &'a Item, k: &str) -> Option<&'a str> {
    item.get(k).and_then(|v| v.as_s().ok()).map(String::as_str)
}

pub(crate) fn num_of(item: &Item, k: &str) -> Option<u64> {
    item.get(k)
        .and_then(|v| v.as_n().ok())
        .and_then(|v| v.parse().ok())
}

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
            .index_name("byType")
            .key_condition_expression("typeKey = :k AND recordedAt BETWEEN :from AND :to")
            .expression_attribute_values(":k", s(format!("{tenant}#{event_type}")))
            .expression_attribute_values(":from", s(&window.from))
            .expression_attribute_values(":to", s(&window.to))
            .limit((limit - events.len()) as i32)
            .set_exclusive_start_key(start)
            .send()
            .await
            .map_err(|e| classify("Query(byType)", e))?;
        for item in batch_get_keys(ddb, table, index_keys(out.items())).await? {
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
            .index_name("byCorrelation")
            .key_condition_expression("corrKey = :c")
            .expression_attribute_values(":c", s(format!("{tenant}#{correlation}")))
            .set_exclusive_start_key(start)
            .send()
            .await
            .map_err(|e| classify("Query(byCorrelation)", e))?;
        for item in batch_get_keys(ddb, table, index_keys(res.items())).await? {
            out.push(decode_event(&item)?);
        }
        start = res.last_evaluated_key().cloned();
        if start.is_none() || out.len() >= max {
            out.truncate(max);
            return Ok(out);
        }
    }
}

/// The table keys (pk, sk) of keys-only index entries, in index order.
fn index_keys(items: &[Item]) -> Vec<Item> {
    items
        .iter()
        .map(|i| {
            i.iter()
                .filter(|(k, _)| *k == "pk" || *k == "sk")
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect()
        })
        .collect()
}

/// Items by `pk` (sk 0), in the order asked; missing ones are left out.
pub async fn batch_get_pks(
    ddb: &aws_sdk_dynamodb::Client,
    table: &str,
    pks: &[String],
) -> Result<Vec<Item>, AdapterError> {
    let keys = pks
        .iter()
        .map(|pk| {
            HashMap::from([
                ("pk".to_string(), s(pk.clone())),
                ("sk".to_string(), AttributeValue::N("0".into())),
            ])
        })
        .collect();
    batch_get_keys(ddb, table, keys).await
}

/// Items by full key, 100 keys per BatchGetItem, unprocessed keys retried with backoff;
/// returned in the order of `keys` (BatchGetItem itself answers in any order), missing
/// ones left out.
pub async fn batch_get_keys(
    ddb: &aws_sdk_dynamodb::Client,
    table: &str,
    keys: Vec<Item>,
) -> Result<Vec<Item>, AdapterError> {
    fn key_of(item: &Item) -> Option<(String, String)> {
        let text = |v: &AttributeValue| match v {
            AttributeValue::S(x) | AttributeValue::N(x) => Some(x.clone()),
            _ => None,
        };
        Some((text(item.get("pk")?)?, text(item.get("sk")?)?))
    }
    let mut found: HashMap<(String, String), Item> = HashMap::with_capacity(keys.len());
    for chunk in keys.chunks(100) {
        let mut pending = chunk.to_vec();
        let mut attempt = 0u32;
        while !pending.is_empty() {
            let ka = KeysAndAttributes::builder()
                .set_keys(Some(pending))
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
                tokio::time::sleep(std::time::Duration::from_millis(50 << attempt.min(6))).await;
            }
        }
    }
    Ok(keys
        .iter()
        .filter_map(|k| key_of(k).and_then(|k| found.remove(&k)))
        .collect())
}
