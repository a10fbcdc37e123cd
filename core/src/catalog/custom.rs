//! Custom event types from a JSON document, so a team can add types without editing the
//! built-in catalog. The adapters read the document (a file named by `CUSTOM_EVENT_TYPES`,
//! or the JSON itself in that variable); this module only parses text, so the core stays
//! pure.
//!
//! ```json
//! {"eventTypes": [{
//!   "eventType": "Servicing.CallLogged",
//!   "domain": "servicing",
//!   "aggregateType": "Loan",
//!   "aggregateIdField": "loanId",
//!   "description": "A servicing call with the borrower",
//!   "payload": {
//!     "loanId": "id",
//!     "calledAt": "datetime",
//!     "outcome": {"type": "enum", "values": ["reached", "voicemail", "no_answer"]},
//!     "minutes": {"type": "integer", "min": 0, "max": 600, "required": false},
//!     "promisedAmount": {"type": "money", "required": false},
//!     "notes": {"type": "text", "max": 2000, "required": false}
//!   }
//! }]}
//! ```
//!
//! A field is a kind name (required) or an object with `type` and options. Kinds: `text`
//! (`max`, default 1000), `id`, `money`, `positiveMoney`, `rate`, `integer` (`min`, `max`),
//! `enum` (`values`), `date`, `datetime`, `bool`, `object`, `record` (`fields`), `list`
//! (`fields` of each item, `max`, default 100). Money is exact and normalised like the
//! built-in types. Rules: the name is `Domain.Action`, not a built-in type or alias, and
//! listed once; the domain is lower-case; the aggregate id field is a required `id`.
//! Custom types have one payload version, and no built-in handler subscribes to them: they
//! are validated, stored, ordered and readable like every other event.
//!
//! The parsed specs are `'static` (the catalog hands out `&'static EventSpec`), so they are
//! allocated once and kept for the life of the process: build the catalog once at start.

use serde_json::{Map, Value};

use super::types::{EventSpec, CLIENT};
use super::{is_event_type_name, lookup};
use crate::error::CoreError;
use crate::schema::{is_safe_id, FieldKind, FieldSpec, MAX_TYPE_LEN};

const MAX_FIELDS: usize = 100;
const MAX_DEPTH: usize = 4;

/// Parse a custom-types document into event specs.
pub fn parse(json: &str) -> Result<Vec<&'static EventSpec>, CoreError> {
    let doc: Value = serde_json::from_str(json)
        .map_err(|e| bad("", format!("custom event types are not valid JSON: {e}")))?;
    let list = doc
        .get("eventTypes")
        .and_then(Value::as_array)
        .ok_or_else(|| bad("eventTypes", "must be a list of event types"))?;
    let mut out: Vec<&'static EventSpec> = Vec::with_capacity(list.len());
    for (i, t) in list.iter().enumerate() {
        let spec = parse_type(t).map_err(|e| e.at(&format!("eventTypes[{i}]")))?;
        if out.iter().any(|s| s.event_type == spec.event_type) {
            return Err(bad(
                &format!("eventTypes[{i}].eventType"),
                format!("{} is listed twice", spec.event_type),
            ));
        }
        out.push(Box::leak(Box::new(spec)));
    }
    Ok(out)
}

fn bad(field: &str, message: impl Into<String>) -> CoreError {
    CoreError::invalid(field, message)
}

fn leak(s: &str) -> &'static str {
    Box::leak(s.to_string().into_boxed_str())
}

fn text<'a>(obj: &'a Map<String, Value>, key: &str) -> Result<&'a str, CoreError> {
    obj.get(key)
        .and_then(Value::as_str)
        .filter(|s| !s.trim().is_empty())
        .ok_or_else(|| bad(key, "is required (a string)"))
}

fn parse_type(t: &Value) -> Result<EventSpec, CoreError> {
    let obj = t.as_object().ok_or_else(|| bad("", "must be an object"))?;
    const KEYS: &[&str] = &[
        "eventType",
        "domain",
        "aggregateType",
        "aggregateIdField",
        "description",
        "payload",
    ];
    if let Some(k) = obj.keys().find(|k| !KEYS.contains(&k.as_str())) {
        return Err(bad(k, format!("unknown key; allowed: {}", KEYS.join(", "))));
    }
    let event_type = text(obj, "eventType")?;
    if !is_event_type_name(event_type) {
        return Err(bad("eventType", "must be Domain.Action in PascalCase"));
    }
    if lookup(event_type).is_some() {
        return Err(bad(
            "eventType",
            format!("{event_type} is a built-in type or alias"),
        ));
    }
    let domain = text(obj, "domain")?;
    if !is_safe_id(domain, 32) || domain.chars().any(|c| c.is_ascii_uppercase()) {
        return Err(bad("domain", "must be 1-32 lower-case characters"));
    }
    let aggregate_type = text(obj, "aggregateType")?;
    if !is_safe_id(aggregate_type, MAX_TYPE_LEN) {
        return Err(bad(
            "aggregateType",
            "must be 1-64 characters from A-Z a-z 0-9 . _ : -",
        ));
    }
    let id_field = text(obj, "aggregateIdField")?;
    let description = obj
        .get("description")
        .and_then(Value::as_str)
        .unwrap_or("custom event type");
    let payload = obj
        .get("payload")
        .ok_or_else(|| bad("payload", "is required: an object of fields"))?;
    let fields = parse_fields(payload, "payload", 0)?;
    match fields.iter().find(|f| f.name == id_field) {
        Some(f) if f.required && matches!(f.kind, FieldKind::Id) => {}
        _ => {
            return Err(bad(
                "aggregateIdField",
                format!("payload.{id_field} must be a required field of type id"),
            ))
        }
    }
    Ok(EventSpec {
        event_type: leak(event_type),
        domain: leak(domain),
        aggregate_type: leak(aggregate_type),
        aggregate_id_field: leak(id_field),
        description: leak(description),
        fields: Box::leak(fields.into_boxed_slice()),
        later_versions: &[],
        check: None,
        // Custom types are published by services over HTTP.
        producers: &[CLIENT],
    })
}

fn parse_fields(v: &Value, at: &str, depth: usize) -> Result<Vec<FieldSpec>, CoreError> {
    let obj = v
        .as_object()
        .filter(|o| !o.is_empty() && o.len() <= MAX_FIELDS)
        .ok_or_else(|| bad(at, format!("must be an object of 1 to {MAX_FIELDS} fields")))?;
    if depth > MAX_DEPTH {
        return Err(bad(at, format!("nests deeper than {MAX_DEPTH} levels")));
    }
    obj.iter()
        .map(|(name, def)| {
            let here = format!("{at}.{name}");
            if !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') || name.len() > 64 {
                return Err(bad(
                    &here,
                    "field names are 1-64 characters of A-Z a-z 0-9 _",
                ));
            }
            let (kind, required) = parse_kind(def, &here, depth)?;
            Ok(FieldSpec {
                name: leak(name),
                kind,
                required,
            })
        })
        .collect()
}

fn parse_kind(def: &Value, at: &str, depth: usize) -> Result<(FieldKind, bool), CoreError> {
    let (ty, opts) = match def {
        Value::String(s) => (s.as_str(), Map::new()),
        Value::Object(o) => (
            o.get("type")
                .and_then(Value::as_str)
                .ok_or_else(|| bad(&format!("{at}.type"), "is required"))?,
            o.clone(),
        ),
        _ => return Err(bad(at, "must be a kind name or an object with \"type\"")),
    };
    let required = match opts.get("required") {
        None => true,
        Some(Value::Bool(b)) => *b,
        Some(_) => return Err(bad(&format!("{at}.required"), "must be true or false")),
    };
    let int = |k: &str, default: Option<i64>| -> Result<i64, CoreError> {
        match opts.get(k) {
            None => default.ok_or_else(|| bad(&format!("{at}.{k}"), "is required")),
            Some(v) => v
                .as_i64()
                .ok_or_else(|| bad(&format!("{at}.{k}"), "must be a whole number")),
        }
    };
    let size = |k: &str, default: i64, max: i64| -> Result<usize, CoreError> {
        let n = int(k, Some(default))?;
        if !(1..=max).contains(&n) {
            return Err(bad(
                &format!("{at}.{k}"),
                format!("must be from 1 to {max}"),
            ));
        }
        Ok(n as usize)
    };
    let kind = match ty {
        "text" => FieldKind::Text {
            max: size("max", 1000, 100_000)?,
        },
        "id" => FieldKind::Id,
        "money" => FieldKind::Money { positive: false },
        "positiveMoney" => FieldKind::Money { positive: true },
        "rate" => FieldKind::Rate,
        "integer" => {
            let (min, max) = (int("min", Some(i64::MIN))?, int("max", Some(i64::MAX))?);
            if min > max {
                return Err(bad(at, "min must not exceed max"));
            }
            FieldKind::Integer { min, max }
        }
        "enum" => {
            let values: Vec<&'static str> = opts
                .get("values")
                .and_then(Value::as_array)
                .filter(|a| !a.is_empty())
                .ok_or_else(|| bad(&format!("{at}.values"), "must be a non-empty list"))?
                .iter()
                .map(|v| {
                    v.as_str()
                        .map(leak)
                        .ok_or_else(|| bad(&format!("{at}.values"), "must be strings"))
                })
                .collect::<Result<_, _>>()?;
            FieldKind::OneOf(Box::leak(values.into_boxed_slice()))
        }
        "date" => FieldKind::Date,
        "datetime" => FieldKind::DateTime,
        "bool" => FieldKind::Bool,
        "object" => FieldKind::Object,
        "record" => {
            let fields = opts
                .get("fields")
                .ok_or_else(|| bad(&format!("{at}.fields"), "is required"))?;
            let fields = parse_fields(fields, &format!("{at}.fields"), depth + 1)?;
            FieldKind::Record(Box::leak(fields.into_boxed_slice()))
        }
        "list" => {
            let fields = opts
                .get("fields")
                .ok_or_else(|| bad(&format!("{at}.fields"), "is required"))?;
            let item = parse_fields(fields, &format!("{at}.fields"), depth + 1)?;
            FieldKind::List {
                item: Box::leak(item.into_boxed_slice()),
                max: size("max", 100, 10_000)?,
            }
        }
        other => {
            return Err(bad(
                &format!("{at}.type"),
                format!("unknown kind {other:?}; use text, id, money, positiveMoney, rate, integer, enum, date, datetime, bool, object, record, list"),
            ))
        }
    };
    Ok((kind, required))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::Catalog;
    use crate::envelope::{NewEvent, WriteContext};
    use crate::error::ErrorCode;
    use chrono::Utc;
    use serde_json::json;

    const DOC: &str = r#"{"eventTypes": [{
        "eventType": "Servicing.CallLogged", "domain": "servicing", "aggregateType": "Loan",
        "aggregateIdField": "loanId", "description": "A servicing call",
        "payload": {
            "loanId": "id",
            "calledAt": "datetime",
            "outcome": {"type": "enum", "values": ["reached", "voicemail"]},
            "minutes": {"type": "integer", "min": 0, "max": 600, "required": false},
            "promisedAmount": {"type": "money", "required": false},
            "promise": {"type": "record", "required": false, "fields": {"amount": "positiveMoney", "by": "date"}}
        }}]}"#;

    fn post(catalog: &Catalog, raw: Value) -> Result<NewEvent, CoreError> {
        let ctx = WriteContext::client("acme", "test", Utc::now());
        NewEvent::from_json_in(catalog, &raw, &ctx, &mut uuid::Uuid::new_v4)
    }

    fn call(payload: Value) -> Value {
        json!({"eventType": "Servicing.CallLogged", "aggregateType": "Loan", "aggregateId": "L-1",
            "payload": payload})
    }

    #[test]
    fn custom_types_are_validated_like_built_in_ones() {
        let catalog = Catalog::with_custom_json(DOC).unwrap();
        let ok = post(
            &catalog,
            call(
                json!({"loanId": "L-1", "calledAt": "2026-03-01T10:00:00Z", "outcome": "reached",
                "promisedAmount": 250.5, "promise": {"amount": "250.50", "by": "2026-03-15"}}),
            ),
        )
        .unwrap();
        assert_eq!(ok.domain, "servicing");
        assert_eq!(ok.payload["promisedAmount"], json!("250.50"));

        let field_of = |payload: Value| match post(&catalog, call(payload)) {
            Err(CoreError::Invalid { field, .. }) => field.unwrap_or_default(),
            other => panic!("expected an error, got {other:?}"),
        };
        assert_eq!(
            field_of(json!({"loanId": "L-1", "calledAt": "x", "outcome": "reached"})),
            "payload.calledAt"
        );
        assert_eq!(
            field_of(
                json!({"loanId": "L-1", "calledAt": "2026-03-01T10:00:00Z", "outcome": "hung_up"})
            ),
            "payload.outcome"
        );
        assert_eq!(
            field_of(
                json!({"loanId": "L-1", "calledAt": "2026-03-01T10:00:00Z", "outcome": "reached",
                "promisedAmount": "1.001"})
            ),
            "payload.promisedAmount"
        );
        assert_eq!(
            field_of(
                json!({"loanId": "L-1", "calledAt": "2026-03-01T10:00:00Z", "outcome": "reached",
                "promise": {"amount": "0", "by": "2026-03-15"}})
            ),
            "payload.promise.amount"
        );
        // Without the custom catalog, the type is unknown.
        match post(
            Catalog::builtin(),
            call(
                json!({"loanId": "L-1", "calledAt": "2026-03-01T10:00:00Z", "outcome": "reached"}),
            ),
        ) {
            Err(CoreError::Invalid { code, .. }) => assert_eq!(code, ErrorCode::UnknownEventType),
            other => panic!("{other:?}"),
        }
        // Built-in types still work, and the export lists the custom type.
        assert!(catalog.lookup("Loan.Funded").is_some());
        assert!(catalog.markdown_table().contains("Servicing.CallLogged"));
        assert_eq!(
            catalog.export()["eventTypes"]
                .as_array()
                .unwrap()
                .last()
                .unwrap()["custom"],
            json!(true)
        );
    }

    #[test]
    fn bad_documents_are_refused_with_the_place_of_the_problem() {
        let field_of = |doc: Value| match Catalog::with_custom_json(&doc.to_string()) {
            Err(CoreError::Invalid { field, .. }) => field.unwrap_or_default(),
            Ok(_) => panic!("accepted {doc}"),
            Err(e) => panic!("{e:?}"),
        };
        let base = || {
            json!({"eventType": "Servicing.CallLogged", "domain": "servicing", "aggregateType": "Loan",
                "aggregateIdField": "loanId", "payload": {"loanId": "id"}})
        };
        let mut t = base();
        t["eventType"] = json!("Loan.Funded");
        assert_eq!(
            field_of(json!({"eventTypes": [t]})),
            "eventTypes[0].eventType"
        );
        let mut t = base();
        t["eventType"] = json!("servicing.call");
        assert_eq!(
            field_of(json!({"eventTypes": [t]})),
            "eventTypes[0].eventType"
        );
        let mut t = base();
        t["aggregateIdField"] = json!("callId");
        assert_eq!(
            field_of(json!({"eventTypes": [t]})),
            "eventTypes[0].aggregateIdField"
        );
        let mut t = base();
        t["payload"]["x"] = json!({"type": "float"});
        assert_eq!(
            field_of(json!({"eventTypes": [t]})),
            "eventTypes[0].payload.x.type"
        );
        let mut t = base();
        t["payload"]["x"] = json!({"type": "enum", "values": []});
        assert_eq!(
            field_of(json!({"eventTypes": [t]})),
            "eventTypes[0].payload.x.values"
        );
        assert_eq!(
            field_of(json!({"eventTypes": [base(), base()]})),
            "eventTypes[1].eventType"
        );
        assert!(Catalog::with_custom_json("not json").is_err());
        assert!(Catalog::with_custom_json(r#"{"eventTypes": []}"#)
            .unwrap()
            .custom()
            .is_empty());
    }
}
