//! An event's payload: a JSON value, or the canonical text of one that a handler wrote
//! from typed data through [`Payload::write`], which checked every field against the event
//! type's schema as it wrote it.
//!
//! A checked payload is validated, fingerprinted and stored from its text, with no
//! `serde_json::Value` tree built, checked, walked and dropped in between: for a
//! 360-period schedule that tree is most of the message's work. The text is exactly what
//! the general path would store (`serde_json`'s compact text, keys in order), so nothing
//! downstream can tell the two apart; anything that reads the payload as a value gets it
//! parsed from the text, once.
//!
//! The writer's checks are the schema's own predicates on the text it writes. It only
//! ever says "valid" when the general validator would accept the same value unchanged;
//! whenever it cannot tell (a field it has no typed form for, a key out of order, a value
//! out of range) it hands over the value parsed from what it wrote, and the general
//! validator decides, with its usual errors.

use std::ops::{Deref, DerefMut};
use std::sync::OnceLock;

use chrono::{Datelike, NaiveDate};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;

use crate::canonical::JsonSink;
use crate::catalog::{Catalog, EventSpec};
use crate::money::Money;
use crate::schema::{
    fast_date, is_safe_id, is_valid_canonical_money, FieldKind, FieldSpec, MAX_ID_LEN,
};

/// A payload: a JSON value, or checked canonical text (see the module's documentation).
/// It reads as a [`Value`]; changing it through `&mut` turns it into a value.
#[derive(Clone, Default)]
pub struct Payload {
    /// The value, unless the payload is held as `text`.
    tree: Value,
    text: Option<CheckedText>,
    /// `text` read as a value, on first use.
    parsed: OnceLock<Value>,
}

#[derive(Clone)]
struct CheckedText {
    json: Box<str>,
    /// The type (at version 1) whose schema it was checked against.
    event_type: &'static str,
    /// Its aggregate-id field's value.
    key: Box<str>,
}

impl Payload {
    /// Write a payload of `event_type` (version 1) field by field. Keys are written in
    /// order, as a JSON map holds them.
    pub fn write(
        event_type: &'static str,
        capacity: usize,
        fill: impl FnOnce(&mut Fields),
    ) -> Payload {
        let spec = Catalog::builtin().lookup(event_type);
        let mut out = PayloadText {
            json: String::with_capacity(capacity),
            // A type with cross-field rules is checked on the value.
            valid: spec.is_some_and(|s| s.check.is_none()),
            key_field: spec.map_or("", |s| s.aggregate_id_field),
            key: None,
        };
        let fields = spec.map_or(&[][..], |s| s.fields);
        out.object(fields, true, fill);
        match (out.valid, out.key) {
            (true, Some(key)) => Payload {
                tree: Value::Null,
                text: Some(CheckedText {
                    json: out.json.into(),
                    event_type,
                    key,
                }),
                parsed: OnceLock::new(),
            },
            // What was written, as a value for the general validator. It is JSON written
            // from `str`s: the parse cannot fail.
            _ => serde_json::from_str::<Value>(&out.json)
                .unwrap_or_default()
                .into(),
        }
    }

    /// The payload's aggregate-id field, when it was checked against `spec`'s schema.
    pub(crate) fn checked_key(&self, spec: &EventSpec) -> Option<&str> {
        self.text
            .as_ref()
            .filter(|t| t.event_type == spec.event_type)
            .map(|t| &*t.key)
    }

    /// Whether it is held as checked text (not yet or never a value).
    pub fn is_checked_text(&self) -> bool {
        self.text.is_some()
    }

    /// The value, parsed from the text if it is held as text.
    pub fn into_value(self) -> Value {
        match self.text {
            None => self.tree,
            Some(text) => self.parsed.into_inner().unwrap_or_else(|| text.parse()),
        }
    }

    /// Appends its compact JSON to `out`: `serde_json`'s text of the value, copied when it
    /// is held as text.
    pub fn write_to(&self, out: &mut Vec<u8>) {
        self.write_json(out);
    }

    /// Its compact JSON: the text itself, or the value written.
    pub(crate) fn write_json(&self, w: &mut impl JsonSink) {
        match &self.text {
            Some(text) => w.write(&text.json),
            None => w.write_value(&self.tree),
        }
    }
}

impl CheckedText {
    /// Written by [`Payload::write`] as JSON: the parse cannot fail.
    fn parse(&self) -> Value {
        serde_json::from_str(&self.json).unwrap_or_default()
    }
}

impl From<Value> for Payload {
    fn from(tree: Value) -> Payload {
        Payload {
            tree,
            text: None,
            parsed: OnceLock::new(),
        }
    }
}

impl Deref for Payload {
    type Target = Value;
    fn deref(&self) -> &Value {
        match &self.text {
            None => &self.tree,
            Some(text) => self.parsed.get_or_init(|| text.parse()),
        }
    }
}

impl DerefMut for Payload {
    fn deref_mut(&mut self) -> &mut Value {
        // Once changed, the text no longer says what the value is.
        if let Some(text) = self.text.take() {
            self.tree = std::mem::take(&mut self.parsed)
                .into_inner()
                .unwrap_or_else(|| text.parse());
        }
        &mut self.tree
    }
}

impl PartialEq for Payload {
    fn eq(&self, other: &Payload) -> bool {
        **self == **other
    }
}

impl std::fmt::Debug for Payload {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        (**self).fmt(f)
    }
}

impl Serialize for Payload {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        (**self).serialize(s)
    }
}

impl<'de> Deserialize<'de> for Payload {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Payload, D::Error> {
        Value::deserialize(d).map(Payload::from)
    }
}

/// The text being written, and whether every field so far passed its schema's check.
struct PayloadText {
    json: String,
    valid: bool,
    key_field: &'static str,
    key: Option<Box<str>>,
}

/// One object of a payload being written: [`Payload::write`]'s root, or a list's item.
pub struct Fields<'w> {
    out: &'w mut PayloadText,
    schema: &'static [FieldSpec],
    root: bool,
    /// Bit `i`: `schema[i]` was written.
    written: u64,
    last: Option<&'static str>,
}

impl PayloadText {
    fn object(&mut self, schema: &'static [FieldSpec], root: bool, fill: impl FnOnce(&mut Fields)) {
        self.valid &= schema.len() <= 64;
        self.json.push('{');
        let mut fields = Fields {
            out: self,
            schema,
            root,
            written: 0,
            last: None,
        };
        fill(&mut fields);
        let required = schema
            .iter()
            .enumerate()
            .filter(|(_, f)| f.required)
            .fold(0u64, |bits, (i, _)| bits | 1 << (i % 64));
        let written = fields.written;
        self.valid &= written & required == required;
        self.json.push('}');
    }
}

impl Fields<'_> {
    /// Starts field `name` and returns its kind if the schema has it and it comes after
    /// the previous key; otherwise the payload is left to the general validator.
    fn key(&mut self, name: &'static str) -> Option<FieldKind> {
        if self.last.is_some() {
            self.out.json.push(',');
        }
        self.out.json.write_str(name);
        self.out.json.push(':');
        let in_order = self.last.is_none_or(|last| last < name);
        self.last = Some(name);
        let found = self.schema.iter().position(|f| f.name == name);
        if let Some(i) = found {
            self.written |= 1 << (i % 64);
        }
        self.out.valid &= in_order && found.is_some();
        found.map(|i| self.schema[i].kind)
    }

    fn check(&mut self, ok: bool) {
        self.out.valid &= ok;
    }

    /// An identifier ([`FieldKind::Id`]).
    pub fn id(&mut self, name: &'static str, id: &str) {
        let kind = self.key(name);
        self.check(matches!(kind, Some(FieldKind::Id)) && is_safe_id(id, MAX_ID_LEN));
        if self.root && name == self.out.key_field {
            self.out.key = Some(id.into());
        }
        self.out.json.write_str(id);
    }

    /// A whole number ([`FieldKind::Integer`]).
    pub fn integer(&mut self, name: &'static str, n: i64) {
        let kind = self.key(name);
        self.check(
            matches!(kind, Some(FieldKind::Integer { min, max }) if (min..=max).contains(&n)),
        );
        self.out.json.write_i64(n);
    }

    /// Money ([`FieldKind::Money`]), at two places.
    pub fn money(&mut self, name: &'static str, amount: Money) {
        let kind = self.key(name);
        let mut buf = [0; Money::TEXT_LEN];
        match amount.plain_text(&mut buf) {
            Some(text) => {
                let valid = match kind {
                    Some(FieldKind::Money { positive }) => is_valid_canonical_money(text, positive),
                    _ => false,
                };
                self.check(valid);
                push_quoted(&mut self.out.json, text);
            }
            // Negative, or more than two places: the general path decides.
            None => {
                self.check(false);
                self.out.json.write_str(&amount.to_string());
            }
        }
    }

    /// A calendar date ([`FieldKind::Date`]).
    pub fn date(&mut self, name: &'static str, date: NaiveDate) {
        let kind = self.key(name);
        match iso_date(&date, &mut [0; 10]) {
            Some(text) => {
                self.check(matches!(kind, Some(FieldKind::Date)) && fast_date(text) == Some(true));
                push_quoted(&mut self.out.json, text);
            }
            None => {
                self.check(false);
                self.out.json.write_str(&date.to_string());
            }
        }
    }

    /// A list of objects ([`FieldKind::List`]), each written by `item`.
    pub fn list<T>(
        &mut self,
        name: &'static str,
        items: &[T],
        mut item: impl FnMut(&mut Fields, &T),
    ) {
        let (schema, max) = match self.key(name) {
            Some(FieldKind::List { item, max }) => (item, max),
            _ => {
                self.check(false);
                (&[][..], usize::MAX)
            }
        };
        self.check(items.len() <= max);
        self.out.json.push('[');
        for (i, it) in items.iter().enumerate() {
            if i > 0 {
                self.out.json.push(',');
            }
            self.out.object(schema, false, |f| item(f, it));
        }
        self.out.json.push(']');
    }
}

/// `text` as a JSON string: digits, points and hyphens, which JSON never escapes.
fn push_quoted(json: &mut String, text: &str) {
    json.reserve(text.len() + 2);
    json.push('"');
    json.push_str(text);
    json.push('"');
}

/// `YYYY-MM-DD` for years 0-9999, the text chrono's `Display` writes, assembled in `buf` on
/// the stack (a schedule writes hundreds of dates).
pub(crate) fn iso_date<'b>(d: &NaiveDate, buf: &'b mut [u8; 10]) -> Option<&'b str> {
    let (year, month, day) = (d.year(), d.month(), d.day());
    let y = u32::try_from(year).ok().filter(|y| *y <= 9999)?;
    let digit = |n: u32| b'0' + (n % 10) as u8;
    *buf = [
        digit(y / 1000),
        digit(y / 100),
        digit(y / 10),
        digit(y),
        b'-',
        digit(month / 10),
        digit(month),
        b'-',
        digit(day / 10),
        digit(day),
    ];
    std::str::from_utf8(buf).ok()
}
