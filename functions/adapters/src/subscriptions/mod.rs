//! Subscriptions of other systems: stored per tenant in the event table, managed over HTTP
//! (`crate::http::ops::subscriptions`), matched by dispatch ([`matching`]) and delivered by the delivery function
//! ([`delivery`]) to webhooks (signed, CloudEvents by default) or SQS queues, with a
//! circuit breaker per target and every attempt logged ([`deliverylog`]).
//!
//! | setting | meaning |
//! |---|---|
//! | `DELIVERY_QUEUE_URL`, `DELIVERY_DLQ_URL` | the delivery FIFO queue and the subscriptions' dead letters |
//! | `SUBSCRIPTION_KEY_ID` | the KMS key that encrypts signing secrets |
//! | `SUBSCRIPTION_CACHE_MS` | how long dispatch keeps a tenant's compiled filters (default 2000) |
//! | `SECRET_ROTATION_GRACE_SECS` | how long a rotated secret still signs (default 86400) |
//! | `WEBHOOK_ALLOW_HTTP`, `WEBHOOK_ALLOW_CIDRS` | the egress allow-list ([`egress`]) |
//! | `DELIVERY_*` | timeouts, retries and the breaker ([`delivery::DeliverySettings`]) |

pub mod circuit;
pub mod delivery;
pub mod deliverylog;
pub mod egress;
pub mod matching;
pub mod model;
pub mod repo;
pub mod secrets;

use std::time::Duration;

/// Where deliveries go and how long things last.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SubscriptionSettings {
    pub delivery_queue_url: Option<String>,
    pub delivery_dlq_url: Option<String>,
    pub key_id: Option<String>,
    /// How long a rotated secret stays valid.
    pub rotation_grace: Duration,
    /// From a backfilled subscription's creation to its live start: longer than dispatch's
    /// cache, so every dispatcher knows the subscription before its live events arrive.
    pub backfill_grace: Duration,
}

pub const DELIVERY_QUEUE_URL_VAR: &str = "DELIVERY_QUEUE_URL";
pub const DELIVERY_DLQ_URL_VAR: &str = "DELIVERY_DLQ_URL";
pub const SUBSCRIPTION_KEY_ID_VAR: &str = "SUBSCRIPTION_KEY_ID";

impl SubscriptionSettings {
    pub fn from_lookup(var: impl Fn(&str) -> Option<String>) -> SubscriptionSettings {
        let set = |k: &str| var(k).filter(|v| !v.is_empty());
        let secs =
            |k: &str, d: u64| Duration::from_secs(var(k).and_then(|v| v.parse().ok()).unwrap_or(d));
        let cache = Duration::from_millis(
            var("SUBSCRIPTION_CACHE_MS")
                .and_then(|v| v.parse().ok())
                .unwrap_or(2000),
        );
        SubscriptionSettings {
            delivery_queue_url: set(DELIVERY_QUEUE_URL_VAR),
            delivery_dlq_url: set(DELIVERY_DLQ_URL_VAR),
            key_id: set(SUBSCRIPTION_KEY_ID_VAR),
            rotation_grace: secs("SECRET_ROTATION_GRACE_SECS", 86_400),
            backfill_grace: cache * 2 + Duration::from_secs(1),
        }
    }

    /// The variables [`SubscriptionSettings::from_lookup`] reads back (only those set).
    pub fn to_env(&self) -> Vec<(String, String)> {
        [
            (DELIVERY_QUEUE_URL_VAR, &self.delivery_queue_url),
            (DELIVERY_DLQ_URL_VAR, &self.delivery_dlq_url),
            (SUBSCRIPTION_KEY_ID_VAR, &self.key_id),
        ]
        .into_iter()
        .filter_map(|(k, v)| v.as_ref().map(|v| (k.to_string(), v.clone())))
        .collect()
    }
}
