//! Where subscriptions and their delivery records live in the event table (next to the
//! event items, `pk` string + `sk` number):
//!
//! | item | pk | sk |
//! |---|---|---|
//! | subscription | `SUB#<tenant>` | [`subscription_sk`] (from the id) |
//! | delivery attempt (log) | `DL#<tenant>#<subscriptionId>` | [`attempt_sk`] (time, newest last) |
//! | delivery of one event | `DV#<tenant>#<eventId>` | [`subscription_sk`] |
//! | circuit of one target | `CB#<tenant>#<target hash>` | 0 |
//!
//! One partition per tenant holds its subscriptions, so dispatch reads a tenant's set with
//! one Query (then caches it briefly).

use sha2::{Digest, Sha256};
use uuid::Uuid;

pub fn subscriptions_pk(tenant: &str) -> String {
    format!("SUB#{tenant}")
}

/// A subscription's sort key: the id's first 8 bytes as a number (DynamoDB numbers hold
/// 38 digits; a create is conditioned on the key being free).
pub fn subscription_sk(id: &Uuid) -> u64 {
    let b = id.as_bytes();
    u64::from_be_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]])
}

pub fn attempts_pk(tenant: &str, subscription: &Uuid) -> String {
    format!("DL#{tenant}#{subscription}")
}

/// An attempt's sort key: microseconds since the epoch, times 1000, plus a random
/// tie-breaker, so two attempts of one subscription in the same microsecond both stay.
pub fn attempt_sk(at: chrono::DateTime<chrono::Utc>) -> u64 {
    let micros = at.timestamp_micros().max(0) as u64;
    micros * 1000 + (Uuid::new_v4().as_u128() % 1000) as u64
}

pub fn delivery_pk(tenant: &str, event_id: &Uuid) -> String {
    format!("DV#{tenant}#{event_id}")
}

pub fn circuit_pk(tenant: &str, target_address: &str) -> String {
    format!("CB#{tenant}#{}", target_hash(target_address))
}

/// A short, stable name of a target address (its SHA-256, 16 hex digits).
pub fn target_hash(address: &str) -> String {
    Sha256::digest(address.as_bytes())
        .iter()
        .take(8)
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_stable_and_ordered_in_time() {
        let id = Uuid::parse_str("00000000-0000-0001-ffff-ffffffffffff").unwrap();
        assert_eq!(subscription_sk(&id), 1);
        let t = chrono::Utc::now();
        assert!(attempt_sk(t) < attempt_sk(t + chrono::Duration::microseconds(1)));
        assert_eq!(target_hash("https://a"), target_hash("https://a"));
        assert_eq!(target_hash("https://a").len(), 16);
    }
}
