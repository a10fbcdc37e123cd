//! Which events a subscription receives: a filter in the style of EventBridge event
//! patterns, parsed once ([`Filter::parse`]) into a compiled form that matches an
//! [`EventEnvelope`] without allocating.
//!
//! ```json
//! {
//!   "eventTypes": ["Loan.Funded", "Payment.*"],
//!   "domains": ["loan", "payment"],
//!   "aggregateTypes": ["Loan"],
//!   "payload": {
//!     "amount": [{"numeric": [">", 0, "<=", "5000.00"]}],
//!     "method": ["ACH", "WIRE"],
//!     "borrower": {"tier": [{"anything-but": "gold"}]}
//!   },
//!   "metadata": {"source": [{"prefix": "servicer-"}], "causationId": [{"exists": false}]}
//! }
//! ```
//!
//! Every part is optional; an absent part matches everything. Within a list the entries are
//! alternatives (any of them); the parts and the fields are all required together. A field's
//! conditions are a list of: an exact value (string, number, boolean, null), `{"prefix":
//! "text"}`, `{"numeric": [op, bound, (op, bound)]}` with op one of `=`, `<`, `<=`, `>`,
//! `>=`, `{"exists": true|false}` and `{"anything-but": value | [values] | {"prefix":
//! "text"}}`. A single condition may be written without the list. An object that is not a
//! condition selects nested payload fields. When the event's field is an array, the
//! condition matches if any element does (as in EventBridge).
//!
//! Money travels as decimal strings ("100.00"), so numeric conditions compare exact decimals
//! ([`Decimal`]) and accept a number or a decimal string on either side: a float is never
//! involved. Exact values compare strings as strings (so `"100.00"` does not equal `"100.0"`)
//! and numbers by value.

use std::str::FromStr;

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::envelope::EventEnvelope;
use crate::error::CoreError;
use crate::money::decimal_from_json;

/// A filter that cannot be parsed: the core's one error type, always with the `field` path
/// of the offending part (`filter.payload.amount`, ...).
pub type FilterError = CoreError;

/// At most this many conditions in one filter, counting every list entry: matching is
/// linear in it and it is checked against every event of the tenant.
pub const MAX_CONDITIONS: usize = 256;
/// Deepest nesting of payload fields.
pub const MAX_DEPTH: usize = 8;
/// Longest string in a filter (a value, a prefix, a field name).
pub const MAX_TEXT: usize = 256;

/// The field path prefix of every error: the filter is the `filter` of a subscription.
const ROOT: &str = "filter";

/// A parsed, compiled subscription filter. Serialises back to the JSON it was parsed from,
/// and deserialises by parsing (so a stored filter is re-validated when it is read).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "Value", into = "Value")]
pub struct Filter {
    /// Exact event types; empty with no prefixes means any type.
    event_types: Vec<String>,
    /// `Loan.*` is kept as `Loan.`: an event type starting with it matches.
    event_type_prefixes: Vec<String>,
    domains: Vec<String>,
    aggregate_types: Vec<String>,
    payload: Vec<FieldRule>,
    metadata: Vec<MetadataRule>,
    /// The JSON the filter was parsed from, returned when it is shown or stored.
    source: Value,
}

/// The conditions on one payload field (a path of object keys from the payload root).
#[derive(Debug, Clone, PartialEq)]
struct FieldRule {
    path: Vec<String>,
    any_of: Vec<Condition>,
}

/// The conditions on one metadata field.
#[derive(Debug, Clone, PartialEq)]
struct MetadataRule {
    field: MetadataField,
    any_of: Vec<Condition>,
}

/// The metadata fields a filter may test (the envelope's metadata is a fixed struct).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum MetadataField {
    UserId,
    CorrelationId,
    CausationId,
    Source,
    TenantId,
    Principal,
}

impl MetadataField {
    const ALL: [(&'static str, MetadataField); 6] = [
        ("userId", MetadataField::UserId),
        ("correlationId", MetadataField::CorrelationId),
        ("causationId", MetadataField::CausationId),
        ("source", MetadataField::Source),
        ("tenantId", MetadataField::TenantId),
        ("principal", MetadataField::Principal),
    ];

    fn from_name(name: &str) -> Option<MetadataField> {
        Self::ALL.iter().find(|(n, _)| *n == name).map(|(_, f)| *f)
    }

    fn read(self, event: &EventEnvelope) -> Option<&str> {
        let m = &event.metadata;
        match self {
            MetadataField::UserId => m.user_id.as_deref(),
            MetadataField::CorrelationId => Some(&m.correlation_id),
            MetadataField::CausationId => m.causation_id.as_deref(),
            MetadataField::Source => m.source.as_deref(),
            MetadataField::TenantId => Some(&m.tenant_id),
            MetadataField::Principal => m.principal.as_deref(),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Condition {
    /// Equal to this scalar: strings as strings, numbers by value.
    Exact(Scalar),
    Prefix(String),
    /// Every bound holds (one or two of them).
    Numeric(Vec<(Comparison, Decimal)>),
    Exists(bool),
    /// Present and equal to none of these.
    AnythingBut(Vec<Scalar>),
    /// Present, a string, and not starting with this.
    AnythingButPrefix(String),
}

#[derive(Debug, Clone, PartialEq)]
enum Scalar {
    Text(String),
    Number(Decimal),
    Bool(bool),
    Null,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Comparison {
    Equal,
    Less,
    LessOrEqual,
    Greater,
    GreaterOrEqual,
}

impl Comparison {
    fn parse(op: &str) -> Option<Comparison> {
        Some(match op {
            "=" => Comparison::Equal,
            "<" => Comparison::Less,
            "<=" => Comparison::LessOrEqual,
            ">" => Comparison::Greater,
            ">=" => Comparison::GreaterOrEqual,
            _ => return None,
        })
    }

    fn holds(self, value: Decimal, bound: Decimal) -> bool {
        match self {
            Comparison::Equal => value == bound,
            Comparison::Less => value < bound,
            Comparison::LessOrEqual => value <= bound,
            Comparison::Greater => value > bound,
            Comparison::GreaterOrEqual => value >= bound,
        }
    }

    fn is_lower_bound(self) -> bool {
        matches!(self, Comparison::Greater | Comparison::GreaterOrEqual)
    }

    fn is_upper_bound(self) -> bool {
        matches!(self, Comparison::Less | Comparison::LessOrEqual)
    }
}

/// The operator keys of a condition object.
const OPERATORS: &[&str] = &["prefix", "numeric", "exists", "anything-but"];

impl Filter {
    /// A filter that matches every event (`{}`).
    pub fn match_all() -> Filter {
        Filter {
            event_types: Vec::new(),
            event_type_prefixes: Vec::new(),
            domains: Vec::new(),
            aggregate_types: Vec::new(),
            payload: Vec::new(),
            metadata: Vec::new(),
            source: Value::Object(Map::new()),
        }
    }

    /// Parse and compile a filter. Errors name the field (`filter.eventTypes[1]`,
    /// `filter.payload.amount`, ...) and say what is wrong.
    pub fn parse(raw: &Value) -> Result<Filter, FilterError> {
        let Value::Object(obj) = raw else {
            return Err(CoreError::invalid(ROOT, "the filter must be a JSON object"));
        };
        let mut filter = Filter::match_all();
        let mut budget = Budget(MAX_CONDITIONS);
        for (key, value) in obj {
            let field = format!("{ROOT}.{key}");
            match key.as_str() {
                "eventTypes" => {
                    let types = string_list(value, &field, &mut budget)?;
                    for (i, text) in types.into_iter().enumerate() {
                        let at = format!("{field}[{i}]");
                        if let Some(domain) = text.strip_suffix(".*") {
                            if !is_pascal(domain) {
                                return Err(CoreError::invalid(
                                    at,
                                    format!("{text:?} is not an event type pattern: expected Domain.* such as \"Loan.*\""),
                                ));
                            }
                            filter.event_type_prefixes.push(format!("{domain}."));
                        } else if crate::catalog::is_event_type_name(text) {
                            filter.event_types.push(text.to_string());
                        } else {
                            return Err(CoreError::invalid(
                                at,
                                format!("{text:?} is not an event type: expected Domain.Action such as \"Loan.Funded\", or Domain.*"),
                            ));
                        }
                    }
                }
                "domains" => {
                    filter.domains = plain_names(value, &field, &mut budget)?;
                }
                "aggregateTypes" => {
                    filter.aggregate_types = plain_names(value, &field, &mut budget)?;
                }
                "payload" => {
                    let Value::Object(fields) = value else {
                        return Err(CoreError::invalid(
                            field,
                            "expected an object of payload field conditions",
                        ));
                    };
                    let mut path = Vec::new();
                    payload_rules(fields, &field, &mut path, &mut filter.payload, &mut budget)?;
                }
                "metadata" => {
                    let Value::Object(fields) = value else {
                        return Err(CoreError::invalid(
                            field,
                            "expected an object of metadata field conditions",
                        ));
                    };
                    for (name, conditions) in fields {
                        let at = format!("{field}.{name}");
                        let Some(which) = MetadataField::from_name(name) else {
                            let known: Vec<&str> =
                                MetadataField::ALL.iter().map(|(n, _)| *n).collect();
                            return Err(CoreError::invalid(
                                at,
                                format!("unknown metadata field; known: {}", known.join(", ")),
                            ));
                        };
                        let any_of = conditions_of(conditions, &at, &mut budget)?;
                        filter.metadata.push(MetadataRule {
                            field: which,
                            any_of,
                        });
                    }
                }
                _ => {
                    return Err(CoreError::invalid(
                        field,
                        "unknown filter field; known: eventTypes, domains, aggregateTypes, payload, metadata",
                    ))
                }
            }
        }
        filter.source = raw.clone();
        Ok(filter)
    }

    /// The JSON this filter was parsed from.
    pub fn as_json(&self) -> &Value {
        &self.source
    }

    /// Does `event` pass the filter? Allocates nothing.
    pub fn matches(&self, event: &EventEnvelope) -> bool {
        let type_ok = (self.event_types.is_empty() && self.event_type_prefixes.is_empty())
            || self.event_types.contains(&event.event_type)
            || self
                .event_type_prefixes
                .iter()
                .any(|p| event.event_type.starts_with(p.as_str()));
        type_ok
            && one_of(&self.domains, &event.domain)
            && one_of(&self.aggregate_types, &event.aggregate_type)
            && self.metadata.iter().all(|rule| {
                let value = rule.field.read(event);
                rule.any_of.iter().any(|c| c.matches_text(value))
            })
            && self.payload.iter().all(|rule| {
                let value = lookup(&event.payload, &rule.path);
                rule.any_of.iter().any(|c| c.matches_value(value))
            })
    }
}

impl TryFrom<Value> for Filter {
    type Error = FilterError;

    fn try_from(value: Value) -> Result<Filter, FilterError> {
        Filter::parse(&value)
    }
}

impl From<Filter> for Value {
    fn from(filter: Filter) -> Value {
        filter.source
    }
}

fn one_of(allowed: &[String], actual: &str) -> bool {
    allowed.is_empty() || allowed.iter().any(|a| a == actual)
}

fn lookup<'a>(root: &'a Value, path: &[String]) -> Option<&'a Value> {
    path.iter().try_fold(root, |v, key| v.get(key.as_str()))
}

fn is_pascal(s: &str) -> bool {
    s.len() <= 64
        && s.starts_with(|c: char| c.is_ascii_uppercase())
        && s.chars().all(|c| c.is_ascii_alphanumeric())
}

/// Counts down the conditions a filter may still hold.
struct Budget(usize);

impl Budget {
    fn take(&mut self, field: &str) -> Result<(), FilterError> {
        self.0 = self.0.checked_sub(1).ok_or_else(|| {
            CoreError::invalid(
                field,
                format!("a filter holds at most {MAX_CONDITIONS} conditions"),
            )
        })?;
        Ok(())
    }
}

/// A non-empty list of non-empty strings (or one string written alone).
fn string_list<'v>(
    value: &'v Value,
    field: &str,
    budget: &mut Budget,
) -> Result<Vec<&'v str>, FilterError> {
    let items: &'v [Value] = match value {
        Value::Array(items) if items.is_empty() => {
            return Err(CoreError::invalid(
                field,
                "an empty list matches nothing; leave the field out to match everything",
            ))
        }
        Value::Array(items) => items,
        Value::String(_) => std::slice::from_ref(value),
        _ => return Err(CoreError::invalid(field, "expected a list of strings")),
    };
    items
        .iter()
        .enumerate()
        .map(|(i, item)| {
            let at = format!("{field}[{i}]");
            budget.take(&at)?;
            match item {
                Value::String(s) if !s.is_empty() && s.len() <= MAX_TEXT => Ok(s.as_str()),
                _ => Err(CoreError::invalid(
                    at,
                    format!("expected a non-empty string of at most {MAX_TEXT} characters"),
                )),
            }
        })
        .collect()
}

/// `domains` and `aggregateTypes`: plain identifiers.
fn plain_names(
    value: &Value,
    field: &str,
    budget: &mut Budget,
) -> Result<Vec<String>, FilterError> {
    let mut names = Vec::new();
    for (i, text) in string_list(value, field, budget)?.into_iter().enumerate() {
        if !crate::schema::is_safe_id(text, crate::schema::MAX_TYPE_LEN) {
            return Err(CoreError::invalid(
                format!("{field}[{i}]"),
                format!("{text:?} is not a name: letters, digits, '.', '_', ':' and '-' only"),
            ));
        }
        names.push(text.to_string());
    }
    Ok(names)
}

/// Walk a `payload` object: a key whose value is conditions becomes a rule, a key whose
/// value is a plain object (no operator) selects nested fields.
fn payload_rules(
    fields: &Map<String, Value>,
    field: &str,
    path: &mut Vec<String>,
    rules: &mut Vec<FieldRule>,
    budget: &mut Budget,
) -> Result<(), FilterError> {
    if fields.is_empty() {
        return Err(CoreError::invalid(
            field,
            "an empty object tests nothing; leave it out",
        ));
    }
    for (key, value) in fields {
        let at = format!("{field}.{key}");
        if key.is_empty() || key.len() > MAX_TEXT {
            return Err(CoreError::invalid(
                at,
                format!("a field name has 1 to {MAX_TEXT} characters"),
            ));
        }
        path.push(key.clone());
        match value {
            Value::Object(nested) if !is_operator_object(nested) => {
                if path.len() >= MAX_DEPTH {
                    return Err(CoreError::invalid(
                        at,
                        format!("payload fields nest at most {MAX_DEPTH} levels deep"),
                    ));
                }
                payload_rules(nested, &at, path, rules, budget)?;
            }
            _ => {
                let any_of = conditions_of(value, &at, budget)?;
                rules.push(FieldRule {
                    path: path.clone(),
                    any_of,
                });
            }
        }
        path.pop();
    }
    Ok(())
}

fn is_operator_object(obj: &Map<String, Value>) -> bool {
    obj.len() == 1 && obj.keys().all(|k| OPERATORS.contains(&k.as_str()))
}

/// A field's conditions: a list of them, or one written alone.
fn conditions_of(
    value: &Value,
    field: &str,
    budget: &mut Budget,
) -> Result<Vec<Condition>, FilterError> {
    match value {
        Value::Array(items) if items.is_empty() => Err(CoreError::invalid(
            field,
            "an empty list matches nothing; leave the field out to match everything",
        )),
        Value::Array(items) => items
            .iter()
            .enumerate()
            .map(|(i, item)| {
                let at = format!("{field}[{i}]");
                budget.take(&at)?;
                condition(item, &at)
            })
            .collect(),
        single => {
            budget.take(field)?;
            Ok(vec![condition(single, field)?])
        }
    }
}

fn condition(value: &Value, field: &str) -> Result<Condition, FilterError> {
    let Value::Object(obj) = value else {
        return Ok(Condition::Exact(scalar(value, field)?));
    };
    let mut entries = obj.iter();
    let (Some((op, arg)), None) = (entries.next(), entries.next()) else {
        return Err(CoreError::invalid(
            field,
            "a condition object has exactly one operator: prefix, numeric, exists or anything-but",
        ));
    };
    let at = format!("{field}.{op}");
    match op.as_str() {
        "prefix" => Ok(Condition::Prefix(prefix_text(arg, &at)?)),
        "numeric" => numeric(arg, &at),
        "exists" => match arg {
            Value::Bool(b) => Ok(Condition::Exists(*b)),
            _ => Err(CoreError::invalid(at, "expected true or false")),
        },
        "anything-but" => match arg {
            Value::Array(items) if items.is_empty() => {
                Err(CoreError::invalid(at, "expected at least one value"))
            }
            Value::Array(items) => items
                .iter()
                .enumerate()
                .map(|(i, v)| scalar(v, &format!("{at}[{i}]")))
                .collect::<Result<_, _>>()
                .map(Condition::AnythingBut),
            Value::Object(inner) => match (inner.len(), inner.get("prefix")) {
                (1, Some(p)) => Ok(Condition::AnythingButPrefix(prefix_text(
                    p,
                    &format!("{at}.prefix"),
                )?)),
                _ => Err(CoreError::invalid(
                    at,
                    "expected a value, a list of values or {\"prefix\": \"text\"}",
                )),
            },
            v => Ok(Condition::AnythingBut(vec![scalar(v, &at)?])),
        },
        _ => Err(CoreError::invalid(
            at,
            "unknown operator; known: prefix, numeric, exists, anything-but",
        )),
    }
}

fn prefix_text(value: &Value, field: &str) -> Result<String, FilterError> {
    match value {
        Value::String(s) if !s.is_empty() && s.len() <= MAX_TEXT => Ok(s.clone()),
        _ => Err(CoreError::invalid(
            field,
            format!("expected a non-empty string of at most {MAX_TEXT} characters"),
        )),
    }
}

fn scalar(value: &Value, field: &str) -> Result<Scalar, FilterError> {
    match value {
        Value::String(s) if s.len() <= MAX_TEXT => Ok(Scalar::Text(s.clone())),
        Value::String(_) => Err(CoreError::invalid(
            field,
            format!("a value has at most {MAX_TEXT} characters"),
        )),
        Value::Number(_) => decimal_from_json(value, 28)
            .map(Scalar::Number)
            .map_err(|e| CoreError::invalid(field, e)),
        Value::Bool(b) => Ok(Scalar::Bool(*b)),
        Value::Null => Ok(Scalar::Null),
        Value::Array(_) | Value::Object(_) => Err(CoreError::invalid(
            field,
            "expected a string, number, boolean or null, or a condition object",
        )),
    }
}

/// `[op, bound]` or `[lower-op, bound, upper-op, bound]`.
fn numeric(value: &Value, field: &str) -> Result<Condition, FilterError> {
    let usage = "expected [op, number] or [\">\" or \">=\", number, \"<\" or \"<=\", number]; op is one of =, <, <=, >, >=";
    let Value::Array(items) = value else {
        return Err(CoreError::invalid(field, usage));
    };
    if items.is_empty() || items.len() > 4 || items.len() % 2 != 0 {
        return Err(CoreError::invalid(field, usage));
    }
    let mut bounds = Vec::with_capacity(items.len() / 2);
    for (i, pair) in items.chunks(2).enumerate() {
        let op = pair[0]
            .as_str()
            .and_then(Comparison::parse)
            .ok_or_else(|| {
                CoreError::invalid(
                    format!("{field}[{}]", 2 * i),
                    "expected an operator: =, <, <=, >, >=",
                )
            })?;
        let bound = decimal_from_json(&pair[1], 28)
            .map_err(|e| CoreError::invalid(format!("{field}[{}]", 2 * i + 1), e))?;
        bounds.push((op, bound));
    }
    if let [(low_op, low), (high_op, high)] = bounds[..] {
        if !(low_op.is_lower_bound() && high_op.is_upper_bound()) {
            return Err(CoreError::invalid(
                field,
                "a range is a lower bound (> or >=) followed by an upper bound (< or <=)",
            ));
        }
        if low > high {
            return Err(CoreError::invalid(
                field,
                format!("the range is empty: {low} is above {high}"),
            ));
        }
    }
    Ok(Condition::Numeric(bounds))
}

/// The decimal value of an event field: a JSON number or a decimal string (money). No
/// allocation: integers convert directly, strings parse in place.
fn decimal_of(value: &Value) -> Option<Decimal> {
    match value {
        Value::String(s) => Decimal::from_str_exact(s).ok(),
        Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                Some(Decimal::from(i))
            } else if let Some(u) = n.as_u64() {
                Some(Decimal::from(u))
            } else {
                // A fractional JSON number (money never is one): its shortest decimal form.
                n.as_f64()
                    .and_then(|f| Decimal::from_str(&f.to_string()).ok())
            }
        }
        _ => None,
    }
}

impl Scalar {
    fn equals(&self, value: &Value) -> bool {
        match (self, value) {
            (Scalar::Text(a), Value::String(b)) => a == b,
            (Scalar::Number(a), Value::Number(_)) => decimal_of(value) == Some(*a),
            (Scalar::Bool(a), Value::Bool(b)) => a == b,
            (Scalar::Null, Value::Null) => true,
            _ => false,
        }
    }
}

impl Condition {
    /// Match a payload field (`None`: absent). An array matches when any element does.
    fn matches_value(&self, value: Option<&Value>) -> bool {
        match (self, value) {
            (Condition::Exists(wanted), v) => *wanted == v.is_some_and(|v| !v.is_null()),
            (_, None) => false,
            (_, Some(Value::Array(items))) => items.iter().any(|v| self.matches_one(v)),
            (_, Some(v)) => self.matches_one(v),
        }
    }

    fn matches_one(&self, value: &Value) -> bool {
        match self {
            Condition::Exact(s) => s.equals(value),
            Condition::Prefix(p) => value.as_str().is_some_and(|s| s.starts_with(p.as_str())),
            Condition::Numeric(bounds) => decimal_of(value)
                .is_some_and(|d| bounds.iter().all(|(op, bound)| op.holds(d, *bound))),
            Condition::Exists(wanted) => *wanted != value.is_null(),
            Condition::AnythingBut(values) => {
                !value.is_null() && !values.iter().any(|s| s.equals(value))
            }
            Condition::AnythingButPrefix(p) => {
                value.as_str().is_some_and(|s| !s.starts_with(p.as_str()))
            }
        }
    }

    /// Match a metadata field (always a string when present).
    fn matches_text(&self, value: Option<&str>) -> bool {
        let Some(text) = value else {
            return matches!(self, Condition::Exists(false));
        };
        match self {
            Condition::Exact(Scalar::Text(s)) => s == text,
            Condition::Exact(_) => false,
            Condition::Prefix(p) => text.starts_with(p.as_str()),
            Condition::Numeric(bounds) => Decimal::from_str_exact(text)
                .is_ok_and(|d| bounds.iter().all(|(op, bound)| op.holds(d, *bound))),
            Condition::Exists(wanted) => *wanted,
            Condition::AnythingBut(values) => !values
                .iter()
                .any(|s| matches!(s, Scalar::Text(t) if t == text)),
            Condition::AnythingButPrefix(p) => !text.starts_with(p.as_str()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    fn event(event_type: &str, payload: Value) -> EventEnvelope {
        let domain = event_type.split('.').next().unwrap().to_ascii_lowercase();
        serde_json::from_value(json!({
            "eventId": "7f1c9d2e-4b5a-4c3d-9e8f-0a1b2c3d4e5f",
            "eventType": event_type,
            "eventVersion": 1,
            "domain": domain,
            "aggregateType": "Loan",
            "aggregateId": "L-1",
            "sequence": 3,
            "occurredAt": "2026-03-01T10:00:00Z",
            "recordedAt": "2026-03-01T10:00:00.123Z",
            "payload": payload,
            "metadata": {"correlationId": "c-1", "tenantId": "t1", "source": "servicer-a"}
        }))
        .unwrap()
    }

    fn filter(raw: Value) -> Filter {
        Filter::parse(&raw).unwrap_or_else(|e| panic!("{raw} should parse: {e:?}"))
    }

    fn error_field(raw: Value) -> String {
        match Filter::parse(&raw) {
            Err(CoreError::Invalid { field, .. }) => field.unwrap_or_default(),
            other => panic!("{raw} should be refused, got {other:?}"),
        }
    }

    #[test]
    fn empty_filter_matches_everything() {
        let f = filter(json!({}));
        assert!(f.matches(&event("Loan.Funded", json!({}))));
        assert_eq!(f, Filter::match_all());
    }

    #[test]
    fn event_types_exact_and_domain_wildcard() {
        let f = filter(json!({"eventTypes": ["Loan.Funded", "Payment.*"]}));
        assert!(f.matches(&event("Loan.Funded", json!({}))));
        assert!(f.matches(&event("Payment.Received", json!({}))));
        assert!(f.matches(&event("Payment.Applied", json!({}))));
        assert!(!f.matches(&event("Loan.Created", json!({}))));
        // "Payment.*" is the Payment domain only, not PaymentSchedule.
        assert!(!f.matches(&event("PaymentSchedule.Generated", json!({}))));
    }

    #[test]
    fn domains_and_aggregate_types() {
        let f = filter(json!({"domains": ["loan"], "aggregateTypes": "Loan"}));
        assert!(f.matches(&event("Loan.Funded", json!({}))));
        assert!(!f.matches(&event("Payment.Received", json!({}))));
        let f = filter(json!({"aggregateTypes": ["Fund"]}));
        assert!(!f.matches(&event("Loan.Funded", json!({}))));
    }

    #[test]
    fn exact_values_are_any_of() {
        let f = filter(json!({"payload": {"method": ["ACH", "WIRE"]}}));
        assert!(f.matches(&event("Payment.Received", json!({"method": "ACH"}))));
        assert!(f.matches(&event("Payment.Received", json!({"method": "WIRE"}))));
        assert!(!f.matches(&event("Payment.Received", json!({"method": "CHECK"}))));
        assert!(!f.matches(&event("Payment.Received", json!({}))));
        // A single value without the list.
        let f = filter(json!({"payload": {"method": "ACH", "late": false}}));
        assert!(f.matches(&event(
            "Payment.Received",
            json!({"method": "ACH", "late": false})
        )));
        assert!(!f.matches(&event(
            "Payment.Received",
            json!({"method": "ACH", "late": true})
        )));
    }

    #[test]
    fn exact_numbers_compare_by_value_and_strings_as_strings() {
        let f = filter(json!({"payload": {"termMonths": [12]}}));
        assert!(f.matches(&event("Loan.Created", json!({"termMonths": 12}))));
        assert!(!f.matches(&event("Loan.Created", json!({"termMonths": "12"}))));
        let f = filter(json!({"payload": {"amount": ["100.00"]}}));
        assert!(f.matches(&event("Loan.Created", json!({"amount": "100.00"}))));
        assert!(!f.matches(&event("Loan.Created", json!({"amount": "100.0"}))));
    }

    #[test]
    fn prefix_on_payload_and_metadata() {
        let f = filter(json!({"payload": {"loanId": [{"prefix": "L-"}]},
                               "metadata": {"source": {"prefix": "servicer-"}}}));
        assert!(f.matches(&event("Loan.Funded", json!({"loanId": "L-9"}))));
        assert!(!f.matches(&event("Loan.Funded", json!({"loanId": "X-9"}))));
        assert!(!f.matches(&event("Loan.Funded", json!({"loanId": 9}))));
        let f = filter(json!({"metadata": {"source": [{"prefix": "portal"}]}}));
        assert!(!f.matches(&event("Loan.Funded", json!({}))));
    }

    #[test]
    fn numeric_ranges_on_money_are_exact_decimals() {
        let f = filter(json!({"payload": {"amount": [{"numeric": [">", 0, "<=", "5000.00"]}]}}));
        assert!(f.matches(&event("Payment.Received", json!({"amount": "0.01"}))));
        assert!(f.matches(&event("Payment.Received", json!({"amount": "5000.00"}))));
        assert!(!f.matches(&event("Payment.Received", json!({"amount": "5000.01"}))));
        assert!(!f.matches(&event("Payment.Received", json!({"amount": "0.00"}))));
        assert!(!f.matches(&event("Payment.Received", json!({"amount": "lots"}))));
        // Beyond f64's exact digits the comparison stays exact.
        let f = filter(json!({"payload": {"amount": {"numeric": [">", "9007199254740993.01"]}}}));
        assert!(f.matches(&event(
            "Payment.Received",
            json!({"amount": "9007199254740993.02"})
        )));
        assert!(!f.matches(&event(
            "Payment.Received",
            json!({"amount": "9007199254740993.01"})
        )));
        // 0.1 + 0.2 style: decimal, not binary.
        let f = filter(json!({"payload": {"rate": {"numeric": ["=", 0.3]}}}));
        assert!(f.matches(&event("Loan.Created", json!({"rate": "0.30"}))));
        assert!(f.matches(&event("Loan.Created", json!({"rate": 0.3}))));
    }

    #[test]
    fn numeric_on_plain_numbers() {
        let f = filter(json!({"payload": {"termMonths": {"numeric": [">=", 12, "<", 36]}}}));
        assert!(f.matches(&event("Loan.Created", json!({"termMonths": 12}))));
        assert!(f.matches(&event("Loan.Created", json!({"termMonths": 35}))));
        assert!(!f.matches(&event("Loan.Created", json!({"termMonths": 36}))));
    }

    #[test]
    fn exists_true_and_false() {
        let f = filter(json!({"payload": {"fundId": [{"exists": true}]}}));
        assert!(f.matches(&event("Loan.Created", json!({"fundId": "F1"}))));
        assert!(!f.matches(&event("Loan.Created", json!({}))));
        assert!(!f.matches(&event("Loan.Created", json!({"fundId": null}))));
        let f = filter(json!({"payload": {"fundId": {"exists": false}},
                               "metadata": {"causationId": {"exists": false}}}));
        assert!(f.matches(&event("Loan.Created", json!({}))));
        assert!(!f.matches(&event("Loan.Created", json!({"fundId": "F1"}))));
        let f = filter(json!({"metadata": {"source": {"exists": true}}}));
        assert!(f.matches(&event("Loan.Created", json!({}))));
    }

    #[test]
    fn anything_but_values_and_prefix() {
        let f = filter(json!({"payload": {"method": {"anything-but": ["ACH", "WIRE"]}}}));
        assert!(f.matches(&event("Payment.Received", json!({"method": "CHECK"}))));
        assert!(!f.matches(&event("Payment.Received", json!({"method": "ACH"}))));
        // A missing field is not "anything but": it is nothing.
        assert!(!f.matches(&event("Payment.Received", json!({}))));
        let f = filter(
            json!({"payload": {"loanId": [{"anything-but": {"prefix": "TEST-"}}]},
                               "metadata": {"tenantId": {"anything-but": "t2"}}}),
        );
        assert!(f.matches(&event("Loan.Funded", json!({"loanId": "L-1"}))));
        assert!(!f.matches(&event("Loan.Funded", json!({"loanId": "TEST-1"}))));
    }

    #[test]
    fn nested_payload_fields_and_arrays() {
        let f = filter(json!({"payload": {"borrower": {"address": {"state": ["NY", "NJ"]}}}}));
        assert!(f.matches(&event(
            "Loan.Created",
            json!({"borrower": {"address": {"state": "NJ"}}})
        )));
        assert!(!f.matches(&event(
            "Loan.Created",
            json!({"borrower": {"address": {"state": "CA"}}})
        )));
        assert!(!f.matches(&event("Loan.Created", json!({"borrower": "B1"}))));
        let f = filter(json!({"payload": {"tags": ["priority"]}}));
        assert!(f.matches(&event("Loan.Created", json!({"tags": ["new", "priority"]}))));
        assert!(!f.matches(&event("Loan.Created", json!({"tags": ["new"]}))));
    }

    #[test]
    fn all_parts_must_hold() {
        let f = filter(
            json!({"eventTypes": ["Payment.*"], "payload": {"amount": {"numeric": [">", 100]}},
                               "metadata": {"correlationId": "c-1"}}),
        );
        assert!(f.matches(&event("Payment.Received", json!({"amount": "100.01"}))));
        assert!(!f.matches(&event("Payment.Received", json!({"amount": "99"}))));
        assert!(!f.matches(&event("Loan.Funded", json!({"amount": "101"}))));
    }

    #[test]
    fn errors_name_the_field() {
        assert_eq!(error_field(json!([])), "filter");
        assert_eq!(
            error_field(json!({"eventType": ["Loan.Funded"]})),
            "filter.eventType"
        );
        assert_eq!(error_field(json!({"eventTypes": []})), "filter.eventTypes");
        assert_eq!(
            error_field(json!({"eventTypes": ["Loan.Funded", "loan.*"]})),
            "filter.eventTypes[1]"
        );
        assert_eq!(
            error_field(json!({"eventTypes": ["Loan.Funded", 3]})),
            "filter.eventTypes[1]"
        );
        assert_eq!(
            error_field(json!({"eventTypes": ["*"]})),
            "filter.eventTypes[0]"
        );
        assert_eq!(
            error_field(json!({"domains": ["lo an"]})),
            "filter.domains[0]"
        );
        assert_eq!(error_field(json!({"payload": []})), "filter.payload");
        assert_eq!(
            error_field(json!({"payload": {"amount": []}})),
            "filter.payload.amount"
        );
        assert_eq!(
            error_field(json!({"payload": {"amount": [{"numeric": [">", "ten"]}]}})),
            "filter.payload.amount[0].numeric[1]"
        );
        assert_eq!(
            error_field(json!({"payload": {"amount": {"numeric": ["<", 5, ">", 1]}}})),
            "filter.payload.amount.numeric"
        );
        assert_eq!(
            error_field(json!({"payload": {"amount": {"numeric": [">", 5, "<", 1]}}})),
            "filter.payload.amount.numeric"
        );
        assert_eq!(
            error_field(json!({"payload": {"amount": {"numeric": ["~", 5]}}})),
            "filter.payload.amount.numeric[0]"
        );
        assert_eq!(
            error_field(json!({"payload": {"a": [{"prefix": "x", "exists": true}]}})),
            "filter.payload.a[0]"
        );
        assert_eq!(
            error_field(json!({"payload": {"a": [{"suffix": "x"}]}})),
            "filter.payload.a[0].suffix"
        );
        assert_eq!(
            error_field(json!({"payload": {"a": [{"exists": "yes"}]}})),
            "filter.payload.a[0].exists"
        );
        assert_eq!(
            error_field(json!({"payload": {"a": [[1]]}})),
            "filter.payload.a[0]"
        );
        assert_eq!(
            error_field(json!({"payload": {"a": {"b": {}}}})),
            "filter.payload.a.b"
        );
        assert_eq!(
            error_field(json!({"metadata": {"tenant": "t1"}})),
            "filter.metadata.tenant"
        );
        assert_eq!(
            error_field(json!({"metadata": {"source": {"anything-but": []}}})),
            "filter.metadata.source.anything-but"
        );
    }

    #[test]
    fn limits_are_enforced() {
        let many: Vec<Value> = (0..=MAX_CONDITIONS).map(|i| json!(i)).collect();
        assert_eq!(
            error_field(json!({"payload": {"n": many}})),
            format!("filter.payload.n[{MAX_CONDITIONS}]")
        );
        let mut deep = json!(["x"]);
        for _ in 0..=MAX_DEPTH {
            deep = json!({"k": deep});
        }
        assert!(error_field(json!({"payload": deep})).starts_with("filter.payload.k.k"));
        let long = "x".repeat(MAX_TEXT + 1);
        assert_eq!(
            error_field(json!({"payload": {"a": {"prefix": long}}})),
            "filter.payload.a.prefix"
        );
    }

    #[test]
    fn serialises_to_its_source_and_reparses() {
        let raw = json!({"eventTypes": ["Loan.*"], "payload": {"amount": {"numeric": [">", 0]}}});
        let f = filter(raw.clone());
        assert_eq!(serde_json::to_value(&f).unwrap(), raw);
        let back: Filter = serde_json::from_value(raw).unwrap();
        assert_eq!(back, f);
        assert!(serde_json::from_value::<Filter>(json!({"eventTypes": 1})).is_err());
    }

    fn arbitrary_json() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(|n| json!(n)),
            any::<f64>().prop_map(|f| json!(f)),
            "[a-z*.<>=-]{0,12}".prop_map(Value::String),
            prop_oneof![
                Just("prefix"),
                Just("numeric"),
                Just("exists"),
                Just("anything-but"),
                Just(">"),
                Just("<="),
                Just("="),
                Just("Loan.*"),
                Just("Loan.Funded"),
                Just("1e400"),
                Just("-0.00"),
                Just("79228162514264337593543950336"),
            ]
            .prop_map(|s| Value::String(s.to_string())),
        ];
        leaf.prop_recursive(6, 64, 6, |inner| {
            let key = prop_oneof![
                Just("eventTypes"),
                Just("domains"),
                Just("aggregateTypes"),
                Just("payload"),
                Just("metadata"),
                Just("prefix"),
                Just("numeric"),
                Just("exists"),
                Just("anything-but"),
                Just("amount"),
                Just("source"),
                Just("a"),
            ]
            .prop_map(str::to_string);
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
                prop::collection::btree_map(key, inner, 0..5)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    proptest! {
        /// Whatever a client sends as a filter, parsing answers (Ok or a field error) and a
        /// parsed filter matches events without panicking.
        #[test]
        fn parsing_arbitrary_json_never_panics(raw in arbitrary_json(), payload in arbitrary_json()) {
            match Filter::parse(&raw) {
                Ok(f) => {
                    let _ = f.matches(&event("Payment.Received", payload));
                }
                Err(CoreError::Invalid { field, .. }) => {
                    prop_assert!(field.is_some_and(|f| f.starts_with("filter")));
                }
                Err(other) => prop_assert!(false, "unexpected error {other:?}"),
            }
        }
    }
}
