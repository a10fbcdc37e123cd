//! Standard Webhooks signatures (<https://www.standardwebhooks.com>), computed by the
//! `standardwebhooks` crate: `webhook-signature: v1,<base64 HMAC-SHA256 of
//! "<webhook-id>.<webhook-timestamp>.<body>">` with the subscription's `whsec_<base64>` key.
//!
//! While a secret is being rotated both the new and the old one are valid: the header then
//! carries one signature per secret, separated by a space, as the specification allows, so
//! a receiver holding either secret verifies the message.

use base64::Engine;
use standardwebhooks::Webhook;

use crate::error::AdapterError;

/// The Standard Webhooks header names.
pub const HEADER_ID: &str = standardwebhooks::HEADER_WEBHOOK_ID;
pub const HEADER_TIMESTAMP: &str = standardwebhooks::HEADER_WEBHOOK_TIMESTAMP;
pub const HEADER_SIGNATURE: &str = standardwebhooks::HEADER_WEBHOOK_SIGNATURE;

/// The prefix of a secret in its shareable form.
pub const SECRET_PREFIX: &str = "whsec_";

/// Random bytes in a new secret (the specification asks for 24 to 64).
const SECRET_BYTES: usize = 32;

/// A new signing secret, `whsec_<base64 of 32 random bytes>`, from the operating system's
/// random source.
pub fn generate_secret() -> Result<String, AdapterError> {
    let mut key = [0u8; SECRET_BYTES];
    getrandom::fill(&mut key)
        .map_err(|e| AdapterError::Config(format!("no random source for a secret: {e}")))?;
    Ok(format!(
        "{SECRET_PREFIX}{}",
        base64::engine::general_purpose::STANDARD.encode(key)
    ))
}

/// The `webhook-id` of one event's delivery to one subscription: the same on every retry
/// (receivers deduplicate on it), different for two subscriptions that get the same event.
pub fn webhook_id(subscription_id: &str, event_id: &uuid::Uuid) -> String {
    format!("{subscription_id}_{event_id}")
}

/// The keys a delivery is signed with: the current secret, and during a rotation's grace
/// period the previous one.
pub struct Signer {
    keys: Vec<Webhook>,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print key material.
        write!(f, "Signer({} keys)", self.keys.len())
    }
}

impl Signer {
    /// Keys from `whsec_<base64>` secrets (the prefix is optional). At least one.
    pub fn new<S: AsRef<str>>(secrets: &[S]) -> Result<Signer, AdapterError> {
        if secrets.is_empty() {
            return Err(AdapterError::Config(
                "a webhook needs a signing secret".into(),
            ));
        }
        let keys = secrets
            .iter()
            .map(|s| {
                Webhook::new(s.as_ref()).map_err(|e| {
                    AdapterError::Config(format!("a webhook secret is not whsec_<base64>: {e}"))
                })
            })
            .collect::<Result<_, _>>()?;
        Ok(Signer { keys })
    }

    /// The `webhook-signature` value for `body` sent as message `id` at `timestamp` (Unix
    /// seconds): `v1,<sig>` per key, space-separated.
    pub fn signature(&self, id: &str, timestamp: i64, body: &[u8]) -> Result<String, AdapterError> {
        let signatures = self
            .keys
            .iter()
            .map(|key| {
                key.sign(id, timestamp, body)
                    .map_err(|e| AdapterError::Decode(format!("signing webhook {id}: {e}")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(signatures.join(" "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hmac::{Hmac, Mac};
    use sha2::Sha256;

    /// An independent computation from the specification's words, with the workspace's own
    /// HMAC: base64(HMAC-SHA256(key = base64-decoded secret, "id.timestamp.body")).
    fn by_the_spec(secret: &str, id: &str, timestamp: i64, body: &str) -> String {
        let engine = base64::engine::general_purpose::STANDARD;
        let key = engine
            .decode(secret.strip_prefix("whsec_").unwrap())
            .unwrap();
        let mut mac = Hmac::<Sha256>::new_from_slice(&key).unwrap();
        mac.update(format!("{id}.{timestamp}.{body}").as_bytes());
        format!("v1,{}", engine.encode(mac.finalize().into_bytes()))
    }

    #[test]
    fn matches_the_specification_example() {
        // The example in the Standard Webhooks specification.
        let signer = Signer::new(&["whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"]).unwrap();
        let body = r#"{"test": 2432232314}"#;
        let sig = signer
            .signature("msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body.as_bytes())
            .unwrap();
        assert_eq!(sig, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
    }

    #[test]
    fn agrees_with_an_independent_hmac() {
        let secret = generate_secret().unwrap();
        let signer = Signer::new(&[&secret]).unwrap();
        let body = r#"{"specversion":"1.0","id":"e1"}"#;
        let sig = signer
            .signature("sub_e1", 1_780_000_000, body.as_bytes())
            .unwrap();
        assert_eq!(sig, by_the_spec(&secret, "sub_e1", 1_780_000_000, body));
    }

    #[test]
    fn rotation_signs_with_every_secret() {
        let (new, old) = (generate_secret().unwrap(), generate_secret().unwrap());
        let signer = Signer::new(&[&new, &old]).unwrap();
        let sig = signer.signature("m", 1, b"{}").unwrap();
        let parts: Vec<&str> = sig.split(' ').collect();
        assert_eq!(
            parts,
            vec![
                by_the_spec(&new, "m", 1, "{}"),
                by_the_spec(&old, "m", 1, "{}")
            ]
        );
    }

    #[test]
    fn secrets_are_random_and_well_formed() {
        let a = generate_secret().unwrap();
        let b = generate_secret().unwrap();
        assert_ne!(a, b);
        let key = base64::engine::general_purpose::STANDARD
            .decode(a.strip_prefix(SECRET_PREFIX).unwrap())
            .unwrap();
        assert_eq!(key.len(), 32);
    }

    #[test]
    fn bad_secrets_are_refused() {
        assert!(Signer::new::<&str>(&[]).is_err());
        assert!(Signer::new(&["whsec_not base64!"]).is_err());
        assert_eq!(
            format!(
                "{:?}",
                Signer::new(&["whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"]).unwrap()
            ),
            "Signer(1 keys)"
        );
    }

    #[test]
    fn webhook_id_is_stable_per_subscription_and_event() {
        let e = uuid::Uuid::nil();
        assert_eq!(webhook_id("sub1", &e), webhook_id("sub1", &e));
        assert_ne!(webhook_id("sub1", &e), webhook_id("sub2", &e));
    }
}
