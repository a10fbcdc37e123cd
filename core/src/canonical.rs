//! Compact JSON written by hand: the canonical text fingerprints are taken over, written
//! straight into SHA-256, and the stored text of an envelope, written into a buffer.
//!
//! The text is exactly what `serde_json` writes for the same value (compact, map keys in
//! the map's order): property tests hold the two equal. It is written by hand because
//! every event goes through it twice: a string that needs no escape (nearly all: ids,
//! amounts, times) is copied whole after one pass that the compiler vectorises, where
//! `serde_json` inspects it byte by byte, and integers are written on the stack. Strings
//! that do need escaping and floats are written by `serde_json` itself.

use serde_json::{Map, Number, Value};
use sha2::{Digest, Sha256};
use uuid::Uuid;

/// Where compact JSON goes: a hash ([`HashWriter`]) or a buffer (`String`, `Vec<u8>`). The
/// sink takes text, so a `String` of JSON needs no check that it is UTF-8; the provided
/// methods write JSON.
pub(crate) trait JsonSink {
    fn write(&mut self, text: &str);

    /// A JSON string of `s`, with its quotes.
    #[inline]
    fn write_str(&mut self, s: &str) {
        if needs_escape(s.as_bytes()) {
            self.write_escaped(s);
        } else {
            self.write("\"");
            self.write(s);
            self.write("\"");
        }
    }

    /// Rare: serde_json's own escapes. Writing a `str` cannot fail.
    #[inline(never)]
    fn write_escaped(&mut self, s: &str) {
        self.write(&serde_json::to_string(s).unwrap_or_default());
    }

    /// `v` as compact JSON.
    fn write_value(&mut self, v: &Value) {
        match v {
            Value::String(s) => self.write_str(s),
            Value::Object(map) => self.write_object(map),
            Value::Array(items) => {
                self.write("[");
                for (i, v) in items.iter().enumerate() {
                    if i > 0 {
                        self.write(",");
                    }
                    self.write_value(v);
                }
                self.write("]");
            }
            Value::Number(n) => self.write_number(n),
            Value::Bool(true) => self.write("true"),
            Value::Bool(false) => self.write("false"),
            Value::Null => self.write("null"),
        }
    }

    /// An unsigned integer, written on the stack.
    #[inline]
    fn write_u64(&mut self, n: u64) {
        self.write(itoa::Buffer::new().format(n));
    }

    /// A signed integer, written on the stack.
    #[inline]
    fn write_i64(&mut self, n: i64) {
        self.write(itoa::Buffer::new().format(n));
    }

    /// A uuid as a JSON string, lowercase and hyphenated (serde's form of `Uuid`).
    #[inline]
    fn write_uuid(&mut self, id: Uuid) {
        self.write_str(
            id.hyphenated()
                .encode_lower(&mut [0; uuid::fmt::Hyphenated::LENGTH]),
        );
    }

    /// Integers on the stack; floats in serde_json's own text (ryu's shortest form).
    fn write_number(&mut self, n: &Number) {
        if let Some(u) = n.as_u64() {
            self.write_u64(u);
        } else if let Some(i) = n.as_i64() {
            self.write_i64(i);
        } else {
            self.write(&n.to_string());
        }
    }

    /// `map` as a compact JSON object, keys in the map's order.
    fn write_object(&mut self, map: &Map<String, Value>) {
        self.write("{");
        for (i, (k, v)) in map.iter().enumerate() {
            if i > 0 {
                self.write(",");
            }
            self.write_str(k);
            self.write(":");
            self.write_value(v);
        }
        self.write("}");
    }
}

impl JsonSink for String {
    #[inline]
    fn write(&mut self, text: &str) {
        self.push_str(text);
    }
}

impl JsonSink for Vec<u8> {
    #[inline]
    fn write(&mut self, text: &str) {
        self.extend_from_slice(text.as_bytes());
    }
}

/// SHA-256 of what is written to it, fed to the hash in blocks of the buffer's size: the
/// writer sends many tiny pieces (a quote, a key, a colon). The buffer is small because it
/// is zeroed for every fingerprint.
pub(crate) struct HashWriter {
    sha: Sha256,
    buf: [u8; 256],
    len: usize,
}

impl HashWriter {
    pub(crate) fn new() -> Self {
        HashWriter {
            sha: Sha256::new(),
            buf: [0; 256],
            len: 0,
        }
    }

    #[inline(never)]
    fn flush_and_write(&mut self, bytes: &[u8]) {
        self.sha.update(&self.buf[..self.len]);
        self.len = 0;
        if bytes.len() > self.buf.len() {
            self.sha.update(bytes);
        } else {
            self.buf[..bytes.len()].copy_from_slice(bytes);
            self.len = bytes.len();
        }
    }

    pub(crate) fn finish(mut self) -> [u8; 32] {
        self.sha.update(&self.buf[..self.len]);
        self.sha.finalize().into()
    }
}

impl JsonSink for HashWriter {
    /// Inlined, so the many short literal pieces are copied without a call.
    #[inline]
    fn write(&mut self, text: &str) {
        let bytes = text.as_bytes();
        match self.buf.get_mut(self.len..self.len + bytes.len()) {
            Some(free) => {
                free.copy_from_slice(bytes);
                self.len += bytes.len();
            }
            None => self.flush_and_write(bytes),
        }
    }
}

/// Whether serde_json would escape any byte of `s`: a quote, a backslash or a control
/// character. Without an early exit for long strings, so the loop is vectorised; short
/// ones (keys, amounts, dates) byte by byte, where the vector loop's setup costs more.
#[inline]
fn needs_escape(s: &[u8]) -> bool {
    let escaped = |b: u8| (b < 0x20) | (b == b'"') | (b == b'\\');
    if s.len() < 16 {
        s.iter().any(|&b| escaped(b))
    } else {
        s.iter().fold(false, |any, &b| any | escaped(b))
    }
}

#[cfg(test)]
mod tests {
    use super::strategies::arbitrary_value;
    use super::*;
    use proptest::prelude::*;

    /// The digest of `v` through the writer (strings longer than its buffer included).
    fn digest_of(v: &Value) -> Vec<u8> {
        let mut w = HashWriter::new();
        w.write_value(v);
        w.finish().to_vec()
    }

    proptest! {
        /// The hashed bytes are serde_json's compact text of the same value.
        #[test]
        fn the_canonical_text_is_serde_jsons(v in arbitrary_value()) {
            let expected: [u8; 32] = Sha256::digest(serde_json::to_vec(&v).unwrap()).into();
            prop_assert_eq!(digest_of(&v), expected.to_vec());
        }
    }

    #[test]
    fn escapes_are_found_anywhere_in_a_string() {
        for bad in [b'"', b'\\', b'\n', 0, 0x1f] {
            for at in [0, 1, 15, 16, 31, 32, 63, 99] {
                let mut s = vec![b'a'; 100];
                s[at] = bad;
                assert!(needs_escape(&s), "{bad} at {at}");
            }
        }
        assert!(!needs_escape("plain text, é and ~ included".as_bytes()));
    }
}

/// Strategies the property tests of the writers share.
#[cfg(test)]
pub(crate) mod strategies {
    use proptest::prelude::*;
    use serde_json::Value;

    /// Any JSON value: every scalar kind, strings that need escaping, strings longer than
    /// the hash's buffer, nesting.
    pub(crate) fn arbitrary_value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::from),
            any::<u64>().prop_map(Value::from),
            any::<f64>().prop_map(Value::from),
            any::<String>().prop_map(Value::String),
            "[ -~]{0,40}".prop_map(Value::String),
            "[\"\\\\\u{0}-\u{1f}a-z\u{7f}-\u{ff}]{0,12}".prop_map(Value::String),
            "[a-z0-9]{1200,1500}".prop_map(Value::String),
        ];
        leaf.prop_recursive(4, 64, 8, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..8).prop_map(Value::Array),
                prop::collection::btree_map(any::<String>(), inner, 0..8)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }
}
