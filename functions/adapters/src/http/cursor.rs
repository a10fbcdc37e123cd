//! Pagination cursors: opaque to clients and tamper-evident.
//!
//! A cursor carries the DynamoDB key where the next page starts, sealed with HMAC-SHA-256
//! over that key *and* the query it belongs to (the listing, the tenant and the query's
//! parameters), encoded base64url without padding. A client can neither hand-craft a key nor
//! carry a cursor to another tenant or another query: a wrong, foreign or garbled cursor is
//! 400 `invalid_cursor`, before anything reaches DynamoDB.
//!
//! The signing key comes from `CURSOR_SIGNING_KEY` (at least [`CursorKey::MIN_LEN`] bytes; a
//! shorter one stops the function at start). Unset, a fixed development key is used: fine
//! locally, where every client is trusted; never on AWS, where the template always sets it.

use std::collections::{BTreeMap, HashMap};
use std::fmt;

use aws_sdk_dynamodb::types::AttributeValue;
use axum::http::StatusCode;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha2::Sha256;

use super::error::ApiError;
use crate::error::AdapterError;

type HmacSha256 = Hmac<Sha256>;

/// The variable holding the cursor signing key (a secret: never exported).
pub const CURSOR_SIGNING_KEY_VAR: &str = "CURSOR_SIGNING_KEY";

/// A DynamoDB key (`ExclusiveStartKey` / `LastEvaluatedKey`).
pub type Key = HashMap<String, AttributeValue>;

/// Bytes of the HMAC-SHA-256 tag at the head of every cursor.
const TAG_LEN: usize = 32;

/// Longer cursors are refused unread: a real one is a few hundred characters.
const MAX_CURSOR_CHARS: usize = 4096;

/// The development key, used when `CURSOR_SIGNING_KEY` is unset. It is public (it is in
/// this file), so cursors signed with it are only as safe as the local runner they come from.
const DEVELOPMENT_KEY: &[u8] = b"lendingos-local-development-cursor-key-not-a-secret";

/// The key cursors are signed with. Its `Debug` never shows the key.
#[derive(Clone)]
pub struct CursorKey {
    secret: Vec<u8>,
    development: bool,
}

impl fmt::Debug for CursorKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CursorKey")
            .field("development", &self.development)
            .finish_non_exhaustive()
    }
}

impl CursorKey {
    /// The shortest key accepted: HMAC-SHA-256's own output size.
    pub const MIN_LEN: usize = 32;

    /// A key of at least [`CursorKey::MIN_LEN`] bytes.
    pub fn new(secret: &[u8]) -> Result<CursorKey, AdapterError> {
        if secret.len() < Self::MIN_LEN {
            return Err(AdapterError::Config(format!(
                "CURSOR_SIGNING_KEY is {} bytes; it must be at least {}",
                secret.len(),
                Self::MIN_LEN
            )));
        }
        Ok(CursorKey {
            secret: secret.to_vec(),
            development: false,
        })
    }

    /// The fixed, public development key (local runs only).
    pub fn development() -> CursorKey {
        CursorKey {
            secret: DEVELOPMENT_KEY.to_vec(),
            development: true,
        }
    }

    /// [`CursorKey::from_setting`] of the process environment.
    pub fn from_env() -> Result<CursorKey, AdapterError> {
        CursorKey::from_setting(std::env::var(CURSOR_SIGNING_KEY_VAR).ok())
    }

    /// The value of `CURSOR_SIGNING_KEY`, or the development key when it is unset or empty.
    pub fn from_setting(value: Option<String>) -> Result<CursorKey, AdapterError> {
        match value {
            Some(v) if !v.is_empty() => CursorKey::new(v.as_bytes()),
            _ => Ok(CursorKey::development()),
        }
    }

    pub fn is_development(&self) -> bool {
        self.development
    }

    fn mac(&self, query: &[&str], payload: &[u8]) -> HmacSha256 {
        // new_from_slice only fails for fixed-size-key MACs; HMAC takes any length.
        let mut mac = HmacSha256::new_from_slice(&self.secret)
            .unwrap_or_else(|_| unreachable!("HMAC accepts keys of any length"));
        // The query as a JSON array is self-delimiting, and JSON text never holds a NUL:
        // no (query, payload) pair can be re-split into another.
        mac.update(json!(query).to_string().as_bytes());
        mac.update(&[0]);
        mac.update(payload);
        mac
    }

    /// The cursor for `key` within `query` (the listing's name, the tenant, and every query
    /// parameter that selects the rows; not the page size).
    pub fn seal(&self, query: &[&str], key: &Key) -> String {
        let payload = key_json(key).to_string().into_bytes();
        let tag = self.mac(query, &payload).finalize().into_bytes();
        let mut token = Vec::with_capacity(TAG_LEN + payload.len());
        token.extend_from_slice(&tag);
        token.extend_from_slice(&payload);
        URL_SAFE_NO_PAD.encode(token)
    }

    /// The key of a cursor sealed by [`CursorKey::seal`] for the same `query` with this
    /// key; anything else is 400 `invalid_cursor` (field `cursor`).
    pub fn open(&self, query: &[&str], cursor: &str) -> Result<Key, ApiError> {
        if cursor.len() > MAX_CURSOR_CHARS {
            return Err(invalid_cursor());
        }
        let token = URL_SAFE_NO_PAD
            .decode(cursor)
            .map_err(|_| invalid_cursor())?;
        if token.len() < TAG_LEN {
            return Err(invalid_cursor());
        }
        let (tag, payload) = token.split_at(TAG_LEN);
        // Constant-time comparison: the answer's timing says nothing about the right tag.
        self.mac(query, payload)
            .verify_slice(tag)
            .map_err(|_| invalid_cursor())?;
        key_from_json(payload).ok_or_else(invalid_cursor)
    }
}

/// 400 `invalid_cursor`: the one answer for every cursor that is not this query's.
pub fn invalid_cursor() -> ApiError {
    ApiError::new(
        StatusCode::BAD_REQUEST,
        "invalid_cursor",
        "not a cursor from a previous page of this query",
        Some("cursor".into()),
    )
}

/// A key as JSON in DynamoDB's own typed form (`{"pk": {"S": ...}, "sk": {"N": ...}}`);
/// keys only ever hold strings and numbers.
pub(crate) fn key_json(key: &Key) -> Value {
    let map: BTreeMap<&str, Value> = key
        .iter()
        .filter_map(|(k, v)| match v {
            AttributeValue::S(x) => Some((k.as_str(), json!({ "S": x }))),
            AttributeValue::N(x) => Some((k.as_str(), json!({ "N": x }))),
            _ => None,
        })
        .collect();
    json!(map)
}

/// A key back from [`key_json`]'s form; `None` for anything else.
pub(crate) fn key_from_value(value: &Value) -> Option<Key> {
    key_from_json(&serde_json::to_vec(value).ok()?)
}

fn key_from_json(payload: &[u8]) -> Option<Key> {
    let map: BTreeMap<String, BTreeMap<String, String>> = serde_json::from_slice(payload).ok()?;
    map.into_iter()
        .map(|(k, v)| {
            let value = match (v.get("S"), v.get("N"), v.len()) {
                (Some(x), None, 1) => AttributeValue::S(x.clone()),
                (None, Some(x), 1) => AttributeValue::N(x.clone()),
                _ => return None,
            };
            Some((k, value))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> Key {
        HashMap::from([
            (
                "pk".into(),
                AttributeValue::S(crate::store::layout::stream_pk(
                    &lending_events::envelope::StreamId {
                        tenant_id: "t",
                        aggregate_type: "Loan",
                        aggregate_id: "L-1",
                    },
                )),
            ),
            ("sk".into(), AttributeValue::N("3".into())),
            ("typeKey".into(), AttributeValue::S("t#Loan.Funded".into())),
            (
                "recordedAt".into(),
                AttributeValue::S("2026-01-01T00:00:00.000Z".into()),
            ),
        ])
    }

    const QUERY: [&str; 5] = ["byType", "t", "Loan.Funded", "0000", "9999"];

    #[test]
    fn a_cursor_opens_only_for_its_own_query_and_key() {
        let k = CursorKey::development();
        let c = k.seal(&QUERY, &key());
        assert_eq!(k.open(&QUERY, &c).unwrap(), key());
        assert!(c
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
        for other in [
            ["byType", "other", "Loan.Funded", "0000", "9999"],
            ["byType", "t", "Loan.Created", "0000", "9999"],
            ["byType", "t", "Loan.Funded", "0001", "9999"],
            ["byType", "t", "Loan.Funded", "0000", "9998"],
            ["other", "t", "Loan.Funded", "0000", "9999"],
        ] {
            assert_eq!(k.open(&other, &c).unwrap_err().code, "invalid_cursor");
        }
        let stranger = CursorKey::new(&[7u8; 32]).unwrap();
        assert_eq!(
            stranger.open(&QUERY, &c).unwrap_err().field.as_deref(),
            Some("cursor")
        );
    }

    #[test]
    fn a_tampered_cursor_is_refused() {
        let k = CursorKey::development();
        let mut token = URL_SAFE_NO_PAD.decode(k.seal(&QUERY, &key())).unwrap();
        let last = token.len() - 2;
        token[last] ^= 1; // one bit of the key's JSON
        assert!(k.open(&QUERY, &URL_SAFE_NO_PAD.encode(&token)).is_err());
        // The old hex form, a multi-byte text and an empty token: all 400.
        for garbage in [
            "abcd",
            "aéa",
            "",
            "zz",
            "=",
            &"A".repeat(MAX_CURSOR_CHARS + 1),
        ] {
            assert_eq!(
                k.open(&QUERY, garbage).unwrap_err().code,
                "invalid_cursor",
                "{garbage}"
            );
        }
    }

    #[test]
    fn short_keys_are_refused_and_debug_hides_the_key() {
        assert!(CursorKey::new(&[1u8; 31]).is_err());
        let k = CursorKey::new(b"0123456789abcdef0123456789abcdef").unwrap();
        assert!(!k.is_development());
        assert!(!format!("{k:?}").contains("0123"));
    }
}
