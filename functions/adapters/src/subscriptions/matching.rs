//! Dispatch's side of subscriptions: which stored events go to which subscription.
//!
//! Each tenant's active subscriptions are read with one Query and their compiled filters
//! kept for a short while ([`SubscriptionMatcher::ttl`], `SUBSCRIPTION_CACHE_MS`, default
//! 2 s), so matching costs no table read per event. A subscription created or changed is
//! seen by dispatch within that time.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use lending_events::EventEnvelope;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::model::Filter;
use super::repo::SubscriptionStore;
use crate::error::AdapterError;
use crate::queue::OutgoingMessage;

/// Why a delivery message was sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DeliveryKind {
    /// A stored event, from the table's stream.
    Live,
    /// History before the subscription's live start (`startFrom`).
    Backfill,
    /// `POST /replay` with `subscriptions`.
    Replay,
    /// The control message that starts a subscription's backfill.
    StartBackfill,
}

/// The body of a message on the delivery queue.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeliveryMessage {
    pub subscription_id: Uuid,
    pub tenant_id: String,
    pub kind: DeliveryKind,
    /// The event to deliver (absent on a control message).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event: Option<EventEnvelope>,
}

/// FIFO group of a subscription's deliveries of one aggregate: one aggregate's events stay
/// in order, and a failing aggregate holds back only its own. Backfilled history travels in
/// groups of its own (live deliveries wait for it to finish, see the delivery function).
pub fn delivery_group(subscription: &Uuid, event: &EventEnvelope, kind: DeliveryKind) -> String {
    let stream = event.stream().key();
    let tag = if kind == DeliveryKind::Backfill {
        "#b"
    } else {
        ""
    };
    let group = format!("{subscription}#{stream}{tag}");
    if group.len() <= 128 {
        group
    } else {
        format!(
            "{subscription}#h{}{tag}",
            crate::store::layout::target_hash(&stream)
        )
    }
}

/// The delivery message of one event for one subscription. The deduplication id is the
/// subscription and the eventId, so the same match sent twice (a stream batch retried) is
/// queued once; a replay adds its id.
pub fn delivery_message(
    subscription: &Uuid,
    event: &EventEnvelope,
    kind: DeliveryKind,
    replay: Option<&str>,
) -> Result<OutgoingMessage, AdapterError> {
    let body = DeliveryMessage {
        subscription_id: *subscription,
        tenant_id: event.metadata.tenant_id.clone(),
        kind,
        event: Some(event.clone()),
    };
    let dedup = match replay {
        Some(r) => format!(
            "{subscription}:{}:{}",
            event.event_id,
            crate::store::layout::target_hash(r)
        ),
        None => format!("{subscription}:{}", event.event_id),
    };
    Ok(OutgoingMessage {
        body: serde_json::to_string(&body).map_err(|e| AdapterError::Decode(e.to_string()))?,
        group: delivery_group(subscription, event, kind),
        dedup,
        event_type: event.event_type.clone(),
    })
}

/// A subscription as dispatch sees it (active or paused; deleted ones are gone).
#[derive(Debug, Clone)]
pub struct ActiveSubscription {
    pub id: Uuid,
    pub filter: Filter,
    /// Events recorded at or before this are not sent live (the backfill covers them).
    pub live_from: Option<DateTime<Utc>>,
}

impl ActiveSubscription {
    pub fn wants(&self, event: &EventEnvelope) -> bool {
        self.live_from.is_none_or(|t| event.recorded_at > t) && self.filter.matches(event)
    }
}

type Cached = (Instant, Arc<Vec<ActiveSubscription>>);

pub struct SubscriptionMatcher {
    subscriptions: SubscriptionStore,
    ttl: Duration,
    cache: Mutex<HashMap<String, Cached>>,
}

impl SubscriptionMatcher {
    pub fn new(subscriptions: SubscriptionStore, ttl: Duration) -> SubscriptionMatcher {
        SubscriptionMatcher {
            subscriptions,
            ttl,
            cache: Mutex::new(HashMap::new()),
        }
    }

    /// `SUBSCRIPTION_CACHE_MS` (default 2000).
    pub fn ttl_from_env() -> Duration {
        Duration::from_millis(
            std::env::var("SUBSCRIPTION_CACHE_MS")
                .ok()
                .and_then(|v| v.parse().ok())
                .unwrap_or(2000),
        )
    }

    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// The tenant's active subscriptions, from the cache when it is fresh.
    pub async fn active(&self, tenant: &str) -> Result<Arc<Vec<ActiveSubscription>>, AdapterError> {
        if let Some((at, subs)) = self
            .cache
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(tenant)
        {
            if at.elapsed() < self.ttl {
                return Ok(subs.clone());
            }
        }
        let subs: Vec<ActiveSubscription> = self
            .subscriptions
            .list(tenant)
            .await?
            .into_iter()
            // Paused ones too: their deliveries wait in the queue until they resume.
            .map(|s| ActiveSubscription {
                id: s.subscription.subscription_id,
                filter: s.subscription.filter,
                live_from: s.live_from.or(Some(s.subscription.created_at)),
            })
            .collect();
        let subs = Arc::new(subs);
        self.cache
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(tenant.to_string(), (Instant::now(), subs.clone()));
        Ok(subs)
    }

    /// The delivery messages of one event: one per matching active subscription.
    pub async fn deliveries(
        &self,
        event: &EventEnvelope,
    ) -> Result<Vec<OutgoingMessage>, AdapterError> {
        let subs = self.active(&event.metadata.tenant_id).await?;
        subs.iter()
            .filter(|s| s.wants(event))
            .map(|s| delivery_message(&s.id, event, DeliveryKind::Live, None))
            .collect()
    }
}
