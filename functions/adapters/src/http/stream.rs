//! The live event stream: `GET /events/stream`, Server-Sent Events of a tenant's events as
//! they are stored, filtered like a subscription.
//!
//! **Order and resume.** Events are sent in the order of their *time key*
//! `<recordedAt>#<eventId>` (the sort key of the `byTenantTime` index; see
//! [`crate::store::layout::time_key`]): time first, and the eventId orders events stored in the same
//! millisecond (a batch shares one recordedAt). Each SSE message carries its time key as
//! `id:`, so a client that reconnects with `Last-Event-ID` (EventSource does it by itself)
//! gets exactly the events after the last one it saw: no gap, no duplicate.
//!
//! **Settling.** An event's recordedAt is taken before its transaction commits, and index
//! entries appear a moment later; an event could otherwise show up behind a position
//! already sent. So the stream only sends events whose recordedAt is at least `settle`
//! old ([`StreamSettings`], 3 s by default): that is the stream's delay, and the bound on
//! how long an append (with its retries) may take for the no-gap promise to hold.
//!
//! **Cost.** One Query of the index per poll per connected client (plus one BatchGetItem of
//! the envelopes when something arrived): fine for operator consoles, not for thousands of
//! viewers.
//!
//! **Filters** (query parameters): `types` (comma-separated event types, `Loan.*` for a
//! domain prefix, `*` for all), `aggregateType`, `aggregateId`, `correlationId`; `from`
//! (RFC 3339) starts at a time instead of now when there is no `Last-Event-ID`.
//! `lastEventId` in the query does what the header does, for clients that cannot set it.

use std::collections::{HashMap, VecDeque};
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use aws_sdk_dynamodb::types::AttributeValue;
use axum::extract::{Query, Request, State};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use futures_util::stream::Stream;
use lending_events::envelope::format_recorded_at;
use lending_events::EventEnvelope;

use crate::error::{classify, AdapterError};
use crate::http::auth::tenant_of;
use crate::http::error::ApiError;
use crate::http::ops::Ops;
use crate::store::layout::{
    attr, batch_get_keys, decode_event, index, index_keys, str_of, time_key, Read,
};

/// How the stream polls, from the environment.
///
/// | variable | default | meaning |
/// |---|---|---|
/// | `STREAM_POLL_MS` | 500 | pause between two index queries when nothing new arrived |
/// | `STREAM_SETTLE_MS` | 3000 | only events at least this old are sent (see the module docs) |
/// | `STREAM_MAX_SECONDS` | 600 | a connection ends after this long; the client reconnects with `Last-Event-ID` |
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamSettings {
    pub poll: Duration,
    pub settle: Duration,
    pub max_duration: Duration,
}

impl Default for StreamSettings {
    fn default() -> Self {
        StreamSettings {
            poll: Duration::from_millis(500),
            settle: Duration::from_millis(3000),
            max_duration: Duration::from_secs(600),
        }
    }
}

impl StreamSettings {
    pub fn from_env() -> Self {
        let d = StreamSettings::default();
        let number = |name: &str| {
            std::env::var(name)
                .ok()
                .and_then(|v| v.trim().parse::<u64>().ok())
        };
        StreamSettings {
            poll: number("STREAM_POLL_MS")
                .map_or(d.poll, Duration::from_millis)
                .max(Duration::from_millis(50)),
            settle: number("STREAM_SETTLE_MS").map_or(d.settle, Duration::from_millis),
            max_duration: number("STREAM_MAX_SECONDS")
                .map_or(d.max_duration, Duration::from_secs)
                .max(Duration::from_secs(1)),
        }
    }
}

/// A position in the stream: the time key of the last event sent.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Position(String);

impl Position {
    /// Parse a `Last-Event-ID`: `<recordedAt as stored>#<UUID>`.
    pub fn parse(text: &str) -> Result<Position, ApiError> {
        let bad = || {
            ApiError::bad(
                "Last-Event-ID",
                "must be the id of a message of this stream: <recordedAt>#<eventId>",
            )
        };
        let (time, id) = text.split_once('#').ok_or_else(bad)?;
        let t = DateTime::parse_from_rfc3339(time).map_err(|_| bad())?;
        // Only the stored form (fixed width, UTC, milliseconds) sorts right as text.
        if format_recorded_at(&t.with_timezone(&Utc)) != time {
            return Err(bad());
        }
        uuid::Uuid::parse_str(id).map_err(|_| bad())?;
        Ok(Position(text.to_string()))
    }

    /// Just before every event recorded at or after `t`.
    pub fn before_time(t: &DateTime<Utc>) -> Position {
        // '#' sorts before every character of a UUID, so this is before `<t>#<any id>`.
        Position(format!("{}#", format_recorded_at(t)))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Which events a stream sends: a subscription-like filter.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StreamFilter {
    /// Exact types, `Domain.*` prefixes or `*`; empty means every type.
    pub types: Vec<String>,
    pub aggregate_type: Option<String>,
    pub aggregate_id: Option<String>,
    pub correlation_id: Option<String>,
}

impl StreamFilter {
    /// From the query parameters; a malformed pattern is 400 on `types`.
    pub fn from_query(q: &HashMap<String, String>) -> Result<StreamFilter, ApiError> {
        let mut types = Vec::new();
        for t in q
            .get("types")
            .map(String::as_str)
            .unwrap_or("")
            .split(',')
            .map(str::trim)
            .filter(|t| !t.is_empty())
        {
            let name = t.strip_suffix(".*").unwrap_or(t);
            let ok =
                t == "*" || (lending_events::schema::is_safe_id(name, 64) && !name.contains('*'));
            if !ok {
                return Err(ApiError::bad(
                    "types",
                    format!("{t:?} is not an event type, a `Domain.*` pattern or `*`"),
                ));
            }
            types.push(t.to_string());
        }
        if types.len() > 50 {
            return Err(ApiError::bad("types", "at most 50 patterns"));
        }
        let id_param = |name: &str, max: usize| -> Result<Option<String>, ApiError> {
            match q.get(name).filter(|v| !v.is_empty()) {
                None => Ok(None),
                Some(v) if lending_events::schema::is_safe_id(v, max) => Ok(Some(v.clone())),
                Some(_) => Err(ApiError::bad(
                    name,
                    format!("must be 1-{max} characters from A-Z a-z 0-9 . _ : -"),
                )),
            }
        };
        let correlation_id = match q.get("correlationId").filter(|v| !v.is_empty()) {
            None => None,
            Some(c) if c.len() <= 128 => Some(c.clone()),
            Some(_) => return Err(ApiError::bad("correlationId", "must be 1-128 characters")),
        };
        Ok(StreamFilter {
            types,
            aggregate_type: id_param("aggregateType", 64)?,
            aggregate_id: id_param("aggregateId", 128)?,
            correlation_id,
        })
    }

    pub fn matches(&self, e: &EventEnvelope) -> bool {
        let type_ok = self.types.is_empty()
            || self.types.iter().any(|p| match p.strip_suffix('*') {
                Some(prefix) => e.event_type.starts_with(prefix),
                None => *p == e.event_type,
            });
        type_ok
            && self
                .aggregate_type
                .as_ref()
                .is_none_or(|t| *t == e.aggregate_type)
            && self
                .aggregate_id
                .as_ref()
                .is_none_or(|i| *i == e.aggregate_id)
            && self
                .correlation_id
                .as_ref()
                .is_none_or(|c| *c == e.metadata.correlation_id)
    }
}

/// One poll: the settled events after `after`, in order, at most `limit` index entries.
/// Returns the events and the position of the last index entry read (events the filter
/// drops still move the position on).
pub async fn poll_once(
    ddb: &aws_sdk_dynamodb::Client,
    table: &str,
    tenant: &str,
    after: &Position,
    settled_until: &DateTime<Utc>,
    limit: i32,
) -> Result<(Vec<EventEnvelope>, Option<Position>), AdapterError> {
    // '~' sorts after every character of a UUID: every event of that millisecond.
    let hi = format!("{}#~", format_recorded_at(settled_until));
    if after.as_str() >= hi.as_str() {
        return Ok((Vec::new(), None));
    }
    let out = ddb
        .query()
        .table_name(table)
        .index_name(index::BY_TENANT_TIME)
        .key_condition_expression("#tenant = :t AND #time BETWEEN :lo AND :hi")
        .expression_attribute_names("#tenant", attr::TENANT_ID)
        .expression_attribute_names("#time", attr::TIME_KEY)
        .expression_attribute_values(":t", AttributeValue::S(tenant.to_string()))
        .expression_attribute_values(":lo", AttributeValue::S(after.as_str().to_string()))
        .expression_attribute_values(":hi", AttributeValue::S(hi))
        .limit(limit)
        .send()
        .await
        .map_err(|e| classify("Query(byTenantTime)", e))?;
    // BETWEEN is inclusive: the entry at `after` itself was sent already.
    let entries: Vec<_> = out
        .items()
        .iter()
        .filter(|i| str_of(i, attr::TIME_KEY).is_some_and(|k| k > after.as_str()))
        .collect();
    let last = entries
        .last()
        .and_then(|i| str_of(i, attr::TIME_KEY))
        .map(|k| Position(k.to_string()));
    let entries: Vec<_> = entries.into_iter().cloned().collect();
    let keys = index_keys(&entries);
    let mut events = Vec::with_capacity(entries.len());
    // Consistent: an entry whose item a stale read missed would be a gap in the stream.
    for item in batch_get_keys(ddb, table, keys, Read::Consistent).await? {
        events.push(decode_event(&item)?);
    }
    if events.len() != entries.len() {
        // Not moving on: the next poll reads the same entries again.
        return Err(AdapterError::Transient(format!(
            "{} of {} indexed events not readable yet",
            entries.len() - events.len(),
            entries.len()
        )));
    }
    // The index order, by the same key (the batch read keeps it; sorting makes it explicit).
    events.sort_by_key(time_key);
    Ok((events, last))
}

struct Cursor {
    ops: Arc<Ops>,
    settings: StreamSettings,
    tenant: String,
    filter: StreamFilter,
    position: Position,
    pending: VecDeque<EventEnvelope>,
    ends_at: tokio::time::Instant,
    failures: u32,
}

/// The SSE stream: polls the index, sends each matching event with its time key as `id`.
fn event_stream(cursor: Cursor) -> impl Stream<Item = Result<Event, Infallible>> + Send {
    futures_util::stream::unfold(cursor, |mut c| async move {
        loop {
            if let Some(e) = c.pending.pop_front() {
                let event = Event::default()
                    .id(time_key(&e))
                    .event("event")
                    .json_data(&e)
                    .unwrap_or_else(|_| Event::default().comment("unencodable event"));
                return Some((Ok(event), c));
            }
            if tokio::time::Instant::now() >= c.ends_at {
                return None;
            }
            let settled =
                Utc::now() - chrono::Duration::from_std(c.settings.settle).unwrap_or_default();
            match poll_once(
                &c.ops.dynamodb,
                &c.ops.config.table,
                &c.tenant,
                &c.position,
                &settled,
                100,
            )
            .await
            {
                Ok((events, last)) => {
                    c.failures = 0;
                    let got_entries = last.is_some();
                    if let Some(p) = last {
                        c.position = p;
                    }
                    c.pending
                        .extend(events.into_iter().filter(|e| c.filter.matches(e)));
                    if !got_entries {
                        tokio::time::sleep(c.settings.poll).await;
                    }
                }
                Err(e) => {
                    // The client keeps its connection; the next poll tries again.
                    c.failures += 1;
                    tracing::warn!(error = %e, tenant = %c.tenant, "live stream poll failed");
                    tokio::time::sleep(c.settings.poll * c.failures.min(10)).await;
                }
            }
        }
    })
}

/// `GET /events/stream` (registered in [`super::api`]).
pub(crate) async fn get_stream(
    State((ops, settings)): State<(Arc<Ops>, StreamSettings)>,
    query: Result<Query<HashMap<String, String>>, axum::extract::rejection::QueryRejection>,
    req: Request,
) -> Result<Response, ApiError> {
    let tenant = tenant_of(req.headers(), req.extensions(), ops.tenant_source)?;
    let Query(q) = query.map_err(|e| ApiError::bad("query", e.body_text()))?;
    let filter = StreamFilter::from_query(&q)?;
    let last_event_id = req
        .headers()
        .get("last-event-id")
        .map(|v| {
            v.to_str()
                .map(str::to_string)
                .map_err(|_| ApiError::bad("Last-Event-ID", "must be ASCII"))
        })
        .transpose()?
        .or_else(|| q.get("lastEventId").cloned())
        .filter(|v| !v.is_empty());
    let position = match (last_event_id, q.get("from").filter(|v| !v.is_empty())) {
        (Some(id), _) => Position::parse(&id)?,
        (None, Some(from)) => {
            let window = crate::http::ops::reads::parse_window(Some(from), None)?;
            Position(format!("{}#", window.from))
        }
        (None, None) => Position::before_time(&Utc::now()),
    };
    let cursor = Cursor {
        ops,
        settings,
        tenant,
        filter,
        position,
        pending: VecDeque::new(),
        ends_at: tokio::time::Instant::now() + settings.max_duration,
        failures: 0,
    };
    let sse = Sse::new(event_stream(cursor)).keep_alive(KeepAlive::default());
    // Proxies must not buffer the stream.
    Ok((
        [
            (http::header::CACHE_CONTROL, "no-cache"),
            (http::HeaderName::from_static("x-accel-buffering"), "no"),
        ],
        sse,
    )
        .into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_are_the_stored_time_key_and_nothing_else() {
        let ok = "2026-03-01T10:00:00.123Z#0a4c3f52-7d1e-4b8a-9c61-2f5e8d9b1a04";
        assert_eq!(Position::parse(ok).unwrap().as_str(), ok);
        for bad in [
            "",
            "2026-03-01T10:00:00.123Z",
            "2026-03-01T10:00:00Z#0a4c3f52-7d1e-4b8a-9c61-2f5e8d9b1a04",
            "2026-03-01T11:00:00.123+01:00#0a4c3f52-7d1e-4b8a-9c61-2f5e8d9b1a04",
            "2026-03-01T10:00:00.123Z#nope",
        ] {
            assert_eq!(
                Position::parse(bad).unwrap_err().code,
                "validation_failed",
                "{bad}"
            );
        }
        let t = DateTime::parse_from_rfc3339("2026-03-01T10:00:00.123Z")
            .unwrap()
            .with_timezone(&Utc);
        let before = Position::before_time(&t);
        assert!(before.as_str() < ok && before.as_str() > "2026-03-01T10:00:00.122Z#~");
    }

    #[test]
    fn filters_match_types_wildcards_aggregates_and_correlations() {
        let q = |pairs: &[(&str, &str)]| {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<HashMap<_, _>>()
        };
        let e: EventEnvelope = serde_json::from_value(serde_json::json!({
            "eventId": "0a4c3f52-7d1e-4b8a-9c61-2f5e8d9b1a04", "eventType": "Loan.Funded",
            "eventVersion": 1, "domain": "loan", "aggregateType": "Loan",
            "aggregateId": "L-1", "sequence": 2, "occurredAt": "2026-03-01T10:00:00Z",
            "recordedAt": "2026-03-01T10:00:00.123Z", "payload": {},
            "metadata": {"correlationId": "c-1", "tenantId": "acme"}
        }))
        .unwrap();
        for (params, expected) in [
            (q(&[]), true),
            (q(&[("types", "Loan.*")]), true),
            (q(&[("types", "Payment.*, Loan.Funded")]), true),
            (q(&[("types", "*")]), true),
            (q(&[("types", "Loan.Created")]), false),
            (q(&[("types", "Lo.*")]), false),
            (
                q(&[("aggregateType", "Loan"), ("aggregateId", "L-1")]),
                true,
            ),
            (q(&[("aggregateId", "L-2")]), false),
            (q(&[("correlationId", "c-1")]), true),
            (q(&[("correlationId", "c-2")]), false),
        ] {
            let f = StreamFilter::from_query(&params).unwrap();
            assert_eq!(f.matches(&e), expected, "{params:?}");
        }
        for bad in ["Loan.**", "a b", "*.Funded"] {
            let err = StreamFilter::from_query(&q(&[("types", bad)])).unwrap_err();
            assert_eq!(err.field.as_deref(), Some("types"), "{bad}");
        }
    }
}
