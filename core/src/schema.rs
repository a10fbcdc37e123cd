//! Declarative payload schemas.
//!
//! Each event type lists its payload fields with a [`FieldKind`]. One generic validator
//! checks them, reports the exact JSON path of the first problem, and returns the payload
//! normalised (money as `"123.45"`, rates as exact decimal strings), so what is stored is
//! canonical and handlers read it back without re-validating. The same description is
//! exported as JSON Schema for documentation.

use chrono::{DateTime, NaiveDate};
use serde_json::{json, Map, Value};

use crate::error::CoreError;
use crate::money::{
    decimal_from_json, round_cents, within_money_range, Rate, MONEY_INTEGER_DIGITS,
};

/// What a payload field may hold.
#[derive(Debug, Clone, Copy)]
pub enum FieldKind {
    /// Non-empty text up to `max` characters.
    Text {
        max: usize,
    },
    /// An identifier: 1-128 characters of `A-Z a-z 0-9 . _ : -`.
    Id,
    /// Money, at most two decimals; `positive` refuses zero and negatives, otherwise only
    /// negatives are refused.
    Money {
        positive: bool,
    },
    /// An annual percentage rate, 0 to 100, at most six decimals.
    Rate,
    /// A whole number in `min..=max`.
    Integer {
        min: i64,
        max: i64,
    },
    /// One of a fixed set of strings.
    OneOf(&'static [&'static str]),
    /// A calendar date, `YYYY-MM-DD`.
    Date,
    /// An RFC 3339 timestamp.
    DateTime,
    Bool,
    /// Any JSON object (free-form details).
    Object,
    /// A list of objects, each with the given fields; at most `max` items.
    List {
        item: &'static [FieldSpec],
        max: usize,
    },
    /// A nested object with exactly these fields.
    Record(&'static [FieldSpec]),
    /// A list of identifiers (as [`FieldKind::Id`]); at most `max` items.
    IdList {
        max: usize,
    },
}

/// One payload field.
#[derive(Debug, Clone, Copy)]
pub struct FieldSpec {
    pub name: &'static str,
    pub kind: FieldKind,
    pub required: bool,
}

/// A required field.
pub const fn req(name: &'static str, kind: FieldKind) -> FieldSpec {
    FieldSpec {
        name,
        kind,
        required: true,
    }
}

/// An optional field (absent or null).
pub const fn opt(name: &'static str, kind: FieldKind) -> FieldSpec {
    FieldSpec {
        name,
        kind,
        required: false,
    }
}

pub const ID: FieldKind = FieldKind::Id;
pub const TEXT: FieldKind = FieldKind::Text { max: 1000 };
pub const MONEY: FieldKind = FieldKind::Money { positive: false };
pub const POSITIVE_MONEY: FieldKind = FieldKind::Money { positive: true };
pub const DATETIME: FieldKind = FieldKind::DateTime;
pub const DATE: FieldKind = FieldKind::Date;

/// Longest tenant, aggregate and metadata id: they all go into table keys and queue group ids.
pub const MAX_ID_LEN: usize = 128;
/// Longest aggregate type (also part of table keys).
pub const MAX_TYPE_LEN: usize = 64;

/// True for identifiers that are safe in keys, queue group ids and URLs.
pub fn is_safe_id(s: &str, max: usize) -> bool {
    // Without an early exit the loop is vectorised: every event checks several ids.
    !s.is_empty()
        && s.len() <= max
        && s.bytes().fold(true, |safe, b| {
            safe & (b.is_ascii_alphanumeric() | matches!(b, b'.' | b'_' | b':' | b'-'))
        })
}

/// Validate `value` as an object with `fields`; unknown fields are refused so typos surface.
/// Returns the normalised object. `path` is the JSON path used in errors (e.g. `payload`).
pub fn validate_object(
    value: &Value,
    fields: &[FieldSpec],
    path: &str,
) -> Result<Map<String, Value>, CoreError> {
    normalize_object(value.clone(), fields, path)
}

/// [`validate_object`] on an owned value: normalises in place, so a valid payload is not
/// copied (the ingest hot path owns what it decoded).
pub fn normalize_object(
    value: Value,
    fields: &[FieldSpec],
    path: &str,
) -> Result<Map<String, Value>, CoreError> {
    normalize_with(value, fields, path, Checks::Fast)
}

/// [`normalize_object`] without the fast paths for values already in canonical form: the
/// reference the fast paths are held equal to (same result, same error, same bytes).
#[doc(hidden)]
pub fn normalize_object_reference(
    value: Value,
    fields: &[FieldSpec],
    path: &str,
) -> Result<Map<String, Value>, CoreError> {
    normalize_with(value, fields, path, Checks::Reference)
}

fn normalize_with(
    value: Value,
    fields: &[FieldSpec],
    path: &str,
    checks: Checks,
) -> Result<Map<String, Value>, CoreError> {
    let Value::Object(mut obj) = value else {
        return Err(CoreError::invalid(path, "must be a JSON object"));
    };
    check_object(&mut obj, fields, &FieldPath::Root(path), checks)?;
    Ok(obj)
}

/// Whether a value already in its canonical text (money as `"123.45"`, a date as
/// `"2026-03-01"`, as every handler and the stored form write it) is checked by its shape
/// alone, or always through the general parse (decimal parse, round, re-format).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Checks {
    Fast,
    Reference,
}

/// Longest integer part the money fast path takes: the longest an amount may have, so the
/// general parse would accept every such string unchanged.
const FAST_MONEY_INT_DIGITS: usize = crate::money::MONEY_INTEGER_DIGITS as usize;

/// True when `s` is non-negative money in canonical form: no sign, no leading zero, two
/// decimals (`"0.05"`, `"250000.00"`). For these the general path (parse, round to cents,
/// format) returns `s` itself, so it can be kept as it is.
fn is_canonical_money(s: &str) -> bool {
    let b = s.as_bytes();
    let Some(int_len) = b.len().checked_sub(3) else {
        return false;
    };
    let (int, frac) = b.split_at(int_len);
    (1..=FAST_MONEY_INT_DIGITS).contains(&int.len())
        && int.iter().all(u8::is_ascii_digit)
        && (int[0] != b'0' || int.len() == 1)
        && frac[0] == b'.'
        && frac[1].is_ascii_digit()
        && frac[2].is_ascii_digit()
}

/// Money already in canonical text that the general path accepts unchanged.
pub(crate) fn is_valid_canonical_money(s: &str, positive: bool) -> bool {
    is_canonical_money(s) && !(positive && s == "0.00")
}

/// A date of exactly the shape `YYYY-MM-DD` (four-digit year): `Some(valid)` when it has
/// that shape, `None` when only the general parser can tell.
pub(crate) fn fast_date(s: &str) -> Option<bool> {
    let b = s.as_bytes();
    let digits = |r: std::ops::Range<usize>| b[r].iter().all(u8::is_ascii_digit);
    if b.len() != 10
        || b[4] != b'-'
        || b[7] != b'-'
        || !digits(0..4)
        || !digits(5..7)
        || !digits(8..10)
    {
        return None;
    }
    let num =
        |r: std::ops::Range<usize>| b[r].iter().fold(0u32, |n, d| n * 10 + u32::from(d - b'0'));
    Some(NaiveDate::from_ymd_opt(num(0..4) as i32, num(5..7), num(8..10)).is_some())
}

/// Where a field is, formatted only when an error is reported: valid input allocates no
/// path strings.
enum FieldPath<'a> {
    Root(&'a str),
    Field(&'a FieldPath<'a>, &'a str),
    Index(&'a FieldPath<'a>, usize),
}

impl std::fmt::Display for FieldPath<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FieldPath::Root(p) => f.write_str(p),
            FieldPath::Field(parent, name) => write!(f, "{parent}.{name}"),
            FieldPath::Index(parent, i) => write!(f, "{parent}[{i}]"),
        }
    }
}

fn check_object(
    obj: &mut Map<String, Value>,
    fields: &[FieldSpec],
    path: &FieldPath<'_>,
    checks: Checks,
) -> Result<(), CoreError> {
    if let Some(unknown) = obj.keys().find(|k| !fields.iter().any(|f| f.name == *k)) {
        let allowed: Vec<&str> = fields.iter().map(|f| f.name).collect();
        return Err(CoreError::invalid(
            format!("{path}.{unknown}"),
            format!("unknown field; allowed: {}", allowed.join(", ")),
        ));
    }
    for f in fields {
        let at = FieldPath::Field(path, f.name);
        match obj.get_mut(f.name) {
            Some(Value::Null) | None if f.required => {
                return Err(CoreError::invalid(at.to_string(), "is required"))
            }
            // An optional null is the same as absent: the stored payload leaves it out.
            Some(Value::Null) => {
                obj.remove(f.name);
            }
            None => {}
            Some(v) => check_field(v, f.kind, &at, checks)?,
        }
    }
    Ok(())
}

fn check_field(
    v: &mut Value,
    kind: FieldKind,
    at: &FieldPath<'_>,
    checks: Checks,
) -> Result<(), CoreError> {
    let bad = |msg: String| CoreError::invalid(at.to_string(), msg);
    match kind {
        FieldKind::Text { max } => match v.as_str() {
            Some(s) if !s.trim().is_empty() && s.chars().count() <= max => Ok(()),
            Some(_) => Err(bad(format!(
                "must be non-empty text of at most {max} characters"
            ))),
            None => Err(bad("must be a string".into())),
        },
        FieldKind::Id => match v.as_str() {
            Some(s) if is_safe_id(s, MAX_ID_LEN) => Ok(()),
            _ => Err(bad(
                "must be an identifier of 1-128 characters from A-Z a-z 0-9 . _ : -".into(),
            )),
        },
        FieldKind::Money { positive } => {
            if checks == Checks::Fast {
                if let Value::String(s) = v {
                    if is_valid_canonical_money(s, positive) {
                        return Ok(());
                    }
                }
            }
            let d = decimal_from_json(v, 2).map_err(bad)?;
            if d.is_sign_negative() && !d.is_zero() {
                return Err(bad("must not be negative".into()));
            }
            if !within_money_range(round_cents(d)) {
                return Err(bad(format!(
                    "must be below 10^{MONEY_INTEGER_DIGITS} ({MONEY_INTEGER_DIGITS} digits before the point)"
                )));
            }
            if positive && d.is_zero() {
                return Err(bad("must be greater than zero".into()));
            }
            *v = Value::String(round_cents(d).to_string());
            Ok(())
        }
        FieldKind::Rate => {
            let d = decimal_from_json(v, Rate::MAX_DECIMALS).map_err(bad)?;
            if d.is_sign_negative() || d > rust_decimal::Decimal::from(100) {
                return Err(bad("must be a percentage between 0 and 100".into()));
            }
            *v = Value::String(d.normalize().to_string());
            Ok(())
        }
        FieldKind::Integer { min, max } => match v.as_i64() {
            Some(i) if (min..=max).contains(&i) => Ok(()),
            _ => Err(bad(format!("must be a whole number from {min} to {max}"))),
        },
        FieldKind::OneOf(options) => match v.as_str() {
            Some(s) if options.contains(&s) => Ok(()),
            _ => Err(bad(format!("must be one of: {}", options.join(", ")))),
        },
        FieldKind::Date if checks == Checks::Fast => match v.as_str().and_then(fast_date) {
            Some(true) => Ok(()),
            Some(false) => Err(bad("must be a date YYYY-MM-DD".into())),
            None => check_field(v, kind, at, Checks::Reference),
        },
        FieldKind::Date => match v.as_str().map(|s| NaiveDate::parse_from_str(s, "%Y-%m-%d")) {
            Some(Ok(_)) => Ok(()),
            _ => Err(bad("must be a date YYYY-MM-DD".into())),
        },
        FieldKind::DateTime => match v.as_str().map(DateTime::parse_from_rfc3339) {
            Some(Ok(_)) => Ok(()),
            _ => Err(bad("must be an RFC 3339 timestamp".into())),
        },
        FieldKind::Bool => match v {
            Value::Bool(_) => Ok(()),
            _ => Err(bad("must be true or false".into())),
        },
        FieldKind::Object => match v {
            Value::Object(_) => Ok(()),
            _ => Err(bad("must be a JSON object".into())),
        },
        FieldKind::List { item, max } => {
            let items = v
                .as_array_mut()
                .ok_or_else(|| bad("must be a list".into()))?;
            if items.len() > max {
                return Err(bad(format!("must have at most {max} items")));
            }
            for (i, it) in items.iter_mut().enumerate() {
                let at = FieldPath::Index(at, i);
                match it {
                    Value::Object(m) => check_object(m, item, &at, checks)?,
                    _ => return Err(CoreError::invalid(at.to_string(), "must be a JSON object")),
                }
            }
            Ok(())
        }
        FieldKind::Record(fields) => match v {
            Value::Object(m) => check_object(m, fields, at, checks),
            _ => Err(bad("must be a JSON object".into())),
        },
        FieldKind::IdList { max } => {
            let items = v.as_array().ok_or_else(|| bad("must be a list".into()))?;
            if items.len() > max {
                return Err(bad(format!("must have at most {max} items")));
            }
            for (i, it) in items.iter().enumerate() {
                if !it.as_str().is_some_and(|s| is_safe_id(s, MAX_ID_LEN)) {
                    return Err(CoreError::invalid(
                        FieldPath::Index(at, i).to_string(),
                        "must be an identifier of 1-128 characters from A-Z a-z 0-9 . _ : -",
                    ));
                }
            }
            Ok(())
        }
    }
}

/// JSON Schema (draft 2020-12) of an object with these fields.
pub fn json_schema(fields: &[FieldSpec]) -> Value {
    let props: Map<String, Value> = fields
        .iter()
        .map(|f| (f.name.to_string(), kind_schema(f.kind)))
        .collect();
    let required: Vec<&str> = fields
        .iter()
        .filter(|f| f.required)
        .map(|f| f.name)
        .collect();
    json!({"type": "object", "properties": props, "required": required, "additionalProperties": false})
}

fn kind_schema(kind: FieldKind) -> Value {
    match kind {
        FieldKind::Text { max } => json!({"type": "string", "minLength": 1, "maxLength": max}),
        FieldKind::Id => json!({"type": "string", "pattern": "^[A-Za-z0-9._:-]{1,128}$"}),
        FieldKind::Money { .. } => {
            json!({"type": ["string", "number"], "pattern": "^-?[0-9]{1,15}(\\.[0-9]{1,2})?$", "description": "exact decimal below 10^15, stored as a string with two decimals"})
        }
        FieldKind::Rate => {
            json!({"type": ["string", "number"], "description": "annual percent, 0-100"})
        }
        FieldKind::Integer { min, max } => {
            json!({"type": "integer", "minimum": min, "maximum": max})
        }
        FieldKind::OneOf(options) => json!({"type": "string", "enum": options}),
        FieldKind::Date => json!({"type": "string", "format": "date"}),
        FieldKind::DateTime => json!({"type": "string", "format": "date-time"}),
        FieldKind::Bool => json!({"type": "boolean"}),
        FieldKind::Object => json!({"type": "object"}),
        FieldKind::List { item, max } => {
            json!({"type": "array", "maxItems": max, "items": json_schema(item)})
        }
        FieldKind::Record(fields) => json_schema(fields),
        FieldKind::IdList { max } => {
            json!({"type": "array", "maxItems": max, "items": kind_schema(FieldKind::Id)})
        }
    }
}

/// A short human name of a field kind, for the catalog table.
pub fn kind_name(kind: FieldKind) -> String {
    match kind {
        FieldKind::Text { .. } => "text".into(),
        FieldKind::Id => "id".into(),
        FieldKind::Money { positive: true } => "money>0".into(),
        FieldKind::Money { positive: false } => "money".into(),
        FieldKind::Rate => "rate %".into(),
        FieldKind::Integer { min, max } => format!("int {min}..{max}"),
        FieldKind::OneOf(options) => options.join("\\|"),
        FieldKind::Date => "date".into(),
        FieldKind::DateTime => "datetime".into(),
        FieldKind::Bool => "bool".into(),
        FieldKind::Object => "object".into(),
        FieldKind::List { item, .. } => format!("[{}]", fields_summary(item)),
        FieldKind::Record(fields) => format!("{{{}}}", fields_summary(fields)),
        FieldKind::IdList { .. } => "[id]".into(),
    }
}

/// `name: kind` for each field, optional ones with `?`.
pub fn fields_summary(fields: &[FieldSpec]) -> String {
    fields
        .iter()
        .map(|f| {
            format!(
                "{}{}: {}",
                f.name,
                if f.required { "" } else { "?" },
                kind_name(f.kind)
            )
        })
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    const FIELDS: &[FieldSpec] = &[
        req("loanId", ID),
        req("amount", POSITIVE_MONEY),
        opt("note", TEXT),
        req(
            "items",
            FieldKind::List {
                item: &[req("n", FieldKind::Integer { min: 1, max: 9 })],
                max: 3,
            },
        ),
    ];

    #[test]
    fn normalises_money_and_keeps_valid_fields() {
        let v = json!({"loanId": "L-1", "amount": 12.5, "items": [{"n": 1}]});
        let out = validate_object(&v, FIELDS, "payload").unwrap();
        assert_eq!(out["amount"], json!("12.50"));
        assert!(!out.contains_key("note"));
    }

    #[test]
    fn money_has_at_most_fifteen_digits_before_the_point() {
        let amount = |a: Value| {
            let v = json!({"loanId": "L-1", "amount": a, "items": [{"n": 1}]});
            validate_object(&v, FIELDS, "payload")
                .map(|out| out["amount"].clone())
                .map_err(|e| e.to_string())
        };
        for largest in [json!("999999999999999.99"), json!("999999999999999.990")] {
            assert_eq!(amount(largest).unwrap(), json!("999999999999999.99"));
        }
        // A number that large has 16 digits, refused already as more than an f64 carries.
        assert_eq!(
            amount(json!(999_999_999_999_999u64)).unwrap(),
            json!("999999999999999.00")
        );
        for too_large in [
            json!("1000000000000000.00"),
            json!("1000000000000000"),
            json!("79228162514264337593543950335"),
        ] {
            let refused = amount(too_large.clone()).unwrap_err();
            assert!(refused.contains("below 10^15"), "{too_large}: {refused}");
        }
    }

    #[test]
    fn reports_the_path_of_the_first_problem() {
        let field_of = |v: Value| match validate_object(&v, FIELDS, "payload") {
            Err(CoreError::Invalid { field, .. }) => field.unwrap(),
            other => panic!("expected an error, got {other:?}"),
        };
        assert_eq!(
            field_of(json!({"amount": "1", "items": []})),
            "payload.loanId"
        );
        assert_eq!(
            field_of(json!({"loanId": "L", "amount": "0", "items": []})),
            "payload.amount"
        );
        assert_eq!(
            field_of(json!({"loanId": "L", "amount": "1", "items": [{"n": 1}, {"n": 10}]})),
            "payload.items[1].n"
        );
        assert_eq!(
            field_of(json!({"loanId": "L", "amount": "1", "items": [], "typo": 1})),
            "payload.typo"
        );
        assert_eq!(
            field_of(json!({"loanId": "a b", "amount": "1", "items": []})),
            "payload.loanId"
        );
    }

    proptest::proptest! {
        /// The vectorised check decides as the character rule it implements.
        #[test]
        fn safe_ids_are_the_allowed_characters(s in "[A-Za-z0-9._:-]{0,130}|.{0,20}", max in 0usize..140) {
            let by_rule = !s.is_empty()
                && s.len() <= max
                && s.chars().all(|c| c.is_ascii_alphanumeric() || ".:_-".contains(c));
            proptest::prop_assert_eq!(is_safe_id(&s, max), by_rule);
        }
    }

    #[test]
    fn schema_export_lists_required_fields() {
        let s = json_schema(FIELDS);
        assert_eq!(s["required"], json!(["loanId", "amount", "items"]));
        assert_eq!(s["properties"]["items"]["maxItems"], json!(3));
    }
}
