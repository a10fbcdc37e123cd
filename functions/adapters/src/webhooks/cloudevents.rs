//! A stored event as a CloudEvents 1.0 event in structured JSON mode, built with the
//! official `cloudevents-sdk` (its `Serialize` writes the structured format).
//!
//! | CloudEvents | from the envelope |
//! |---|---|
//! | `specversion` | `1.0` |
//! | `id` | `eventId` (unique, so `source` + `id` is too) |
//! | `source` | `/lending-events/<domain>` |
//! | `type` | `eventType` (`Loan.Funded`) |
//! | `subject` | `<aggregateType>/<aggregateId>` |
//! | `time` | `occurredAt` |
//! | `datacontenttype` | `application/json` |
//! | `data` | `payload` |
//! | `sequence` | `sequence`, zero-padded to 20 digits (the Sequence extension wants a string that orders lexicographically) |
//! | `eventversion` | `eventVersion` (integer) |
//! | `correlationid`, `causationid`, `tenantid` | `metadata.*` (`causationid` only when set) |
//!
//! Extension names are lower-case letters and digits only, as the specification requires.
//! The crate stays out of the pure core because it brings `url` (with its IDNA tables);
//! the adapters already link it through the AWS SDK.

use cloudevents::{Event, EventBuilder, EventBuilderV10};
use lending_events::EventEnvelope;
use serde_json::{Map, Value};

use crate::error::AdapterError;

/// The media type of a structured-mode CloudEvent (the HTTP `Content-Type`).
pub const CLOUDEVENTS_CONTENT_TYPE: &str = "application/cloudevents+json; charset=utf-8";

/// The prefix of every event's `source`; the domain follows.
pub const SOURCE_PREFIX: &str = "/lending-events";

/// Build the CloudEvent of a stored event.
pub fn to_cloudevent(event: &EventEnvelope) -> Result<Event, AdapterError> {
    let meta = &event.metadata;
    let mut builder = EventBuilderV10::new()
        .id(event.event_id.to_string())
        .source(format!("{SOURCE_PREFIX}/{}", event.domain))
        .ty(event.event_type.as_str())
        .subject(format!("{}/{}", event.aggregate_type, event.aggregate_id))
        .time(event.occurred_at)
        .data("application/json", Value::clone(&event.payload))
        .extension("sequence", format!("{:020}", event.sequence))
        .extension("eventversion", i64::from(event.event_version))
        .extension("correlationid", meta.correlation_id.as_str())
        .extension("tenantid", meta.tenant_id.as_str());
    if let Some(causation) = &meta.causation_id {
        builder = builder.extension("causationid", causation.as_str());
    }
    builder
        .build()
        .map_err(|e| AdapterError::Decode(format!("event {} as a CloudEvent: {e}", event.event_id)))
}

/// The structured-mode JSON body of a stored event: the same bytes every time it is
/// rendered, so a retry resends the identical message. The SDK keeps extensions in a hash
/// map (random order), so the members are re-collected in a fixed order: context attributes,
/// then the rest by name. (serde_json's default map then sorts them by name; with its
/// `preserve_order` feature switched on by any crate, this order is kept instead.)
pub fn cloudevent_json(event: &EventEnvelope) -> Result<Vec<u8>, AdapterError> {
    let as_json = |e: serde_json::Error| {
        AdapterError::Decode(format!("event {} as JSON: {e}", event.event_id))
    };
    let Value::Object(mut members) =
        serde_json::to_value(to_cloudevent(event)?).map_err(as_json)?
    else {
        return Err(AdapterError::Decode(format!(
            "event {} did not serialise as a JSON object",
            event.event_id
        )));
    };
    let mut names: Vec<String> = members.keys().cloned().collect();
    names.sort_by_key(|name| {
        let rank = CONTEXT_ORDER
            .iter()
            .position(|c| c == name)
            .unwrap_or(CONTEXT_ORDER.len());
        (rank, name.clone())
    });
    let ordered: Map<String, Value> = names
        .into_iter()
        .filter_map(|name| members.remove(&name).map(|value| (name, value)))
        .collect();
    serde_json::to_vec(&ordered).map_err(as_json)
}

/// Context attributes in the order of the specification; extensions follow, then data.
const CONTEXT_ORDER: &[&str] = &[
    "specversion",
    "id",
    "source",
    "type",
    "subject",
    "time",
    "datacontenttype",
    "dataschema",
];

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn envelope(causation: Option<&str>) -> EventEnvelope {
        let mut metadata = json!({"correlationId": "corr-1", "tenantId": "acme", "userId": "u1"});
        if let Some(c) = causation {
            metadata["causationId"] = json!(c);
        }
        serde_json::from_value(json!({
            "eventId": "7f1c9d2e-4b5a-4c3d-9e8f-0a1b2c3d4e5f",
            "eventType": "Loan.Funded",
            "eventVersion": 2,
            "domain": "loan",
            "aggregateType": "Loan",
            "aggregateId": "L-1",
            "sequence": 42,
            "occurredAt": "2026-03-01T10:00:00Z",
            "recordedAt": "2026-03-01T10:00:00.123Z",
            "payload": {"loanId": "L-1", "amount": "250000.00"},
            "metadata": metadata
        }))
        .unwrap()
    }

    fn body(event: &EventEnvelope) -> Value {
        serde_json::from_slice(&cloudevent_json(event).unwrap()).unwrap()
    }

    #[test]
    fn has_every_required_attribute_of_the_specification() {
        let ce = body(&envelope(None));
        // CloudEvents 1.0 REQUIRED context attributes: id, source, specversion, type, each a
        // non-empty string.
        for attribute in ["id", "source", "specversion", "type"] {
            let value = ce[attribute].as_str().unwrap_or_default();
            assert!(!value.is_empty(), "{attribute} missing in {ce}");
        }
        assert_eq!(ce["specversion"], "1.0");
        assert_eq!(ce["id"], "7f1c9d2e-4b5a-4c3d-9e8f-0a1b2c3d4e5f");
        assert_eq!(ce["source"], "/lending-events/loan");
        assert_eq!(ce["type"], "Loan.Funded");
    }

    #[test]
    fn optional_attributes_and_data_carry_the_envelope() {
        let ce = body(&envelope(Some("cause-9")));
        assert_eq!(ce["subject"], "Loan/L-1");
        assert_eq!(ce["datacontenttype"], "application/json");
        // Structured JSON mode: a JSON payload is the `data` member as JSON, not a string.
        assert_eq!(ce["data"], json!({"loanId": "L-1", "amount": "250000.00"}));
        let time = chrono::DateTime::parse_from_rfc3339(ce["time"].as_str().unwrap()).unwrap();
        assert_eq!(time.to_rfc3339(), "2026-03-01T10:00:00+00:00");
        assert_eq!(ce["sequence"], "00000000000000000042");
        assert_eq!(ce["eventversion"], 2);
        assert_eq!(ce["correlationid"], "corr-1");
        assert_eq!(ce["causationid"], "cause-9");
        assert_eq!(ce["tenantid"], "acme");
        assert!(body(&envelope(None)).get("causationid").is_none());
    }

    #[test]
    fn extension_names_follow_the_naming_rule() {
        let ce = body(&envelope(Some("c")));
        let context = [
            "id",
            "source",
            "specversion",
            "type",
            "subject",
            "time",
            "datacontenttype",
            "dataschema",
            "data",
            "data_base64",
        ];
        for name in ce
            .as_object()
            .unwrap()
            .keys()
            .filter(|k| !context.contains(&k.as_str()))
        {
            // "CloudEvents attribute names MUST consist of lower-case letters ('a' to 'z') or
            // digits ('0' to '9') from the ASCII character set"; 20 characters or fewer is
            // recommended.
            assert!(
                name.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit()),
                "{name}"
            );
            assert!(name.len() <= 20, "{name}");
        }
    }

    #[test]
    fn sequence_orders_as_text_like_as_numbers() {
        let mut small = envelope(None);
        small.sequence = 9;
        let mut large = envelope(None);
        large.sequence = 10;
        let (a, b) = (body(&small), body(&large));
        assert!(a["sequence"].as_str().unwrap() < b["sequence"].as_str().unwrap());
        large.sequence = u64::MAX;
        assert_eq!(body(&large)["sequence"].as_str().unwrap().len(), 20);
    }

    #[test]
    fn envelope_format_is_the_stored_envelope() {
        use lending_events::subscription::Format;
        let event = envelope(None);
        let body = crate::webhooks::delivery_body(&event, Format::Envelope).unwrap();
        assert_eq!(body.content_type, "application/json");
        let back: EventEnvelope = serde_json::from_slice(&body.bytes).unwrap();
        assert_eq!(back, event);
        let body = crate::webhooks::delivery_body(&event, Format::Cloudevents).unwrap();
        assert_eq!(body.content_type, CLOUDEVENTS_CONTENT_TYPE);
        assert_eq!(body.bytes, cloudevent_json(&event).unwrap());
    }

    #[test]
    fn renders_the_same_bytes_every_time() {
        let event = envelope(Some("c"));
        let first = cloudevent_json(&event).unwrap();
        for _ in 0..20 {
            assert_eq!(cloudevent_json(&event).unwrap(), first);
        }
    }

    #[test]
    fn round_trips_through_the_sdk() {
        let bytes = cloudevent_json(&envelope(None)).unwrap();
        let parsed: Event = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(parsed, to_cloudevent(&envelope(None)).unwrap());
    }
}
