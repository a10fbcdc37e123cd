//! Upcasting: stored events are never rewritten; readers (handlers, state folds) see every
//! event in its latest payload version.
//!
//! The adapters' batch runner upcasts the event, its history and the related history before
//! a handler sees them, and the state route upcasts before folding. An upcaster is a pure
//! function from one version's payload to the next; [`upcast`] chains them up to the type's
//! [`crate::catalog::EventSpec::latest_version`]. Adding a version = a new schema in the
//! catalog plus one function here (the tests check every step exists and that an upcast
//! payload validates against the newer schema).

use serde_json::{json, Value};

use crate::catalog::{self, PAYMENT_METHODS};
use crate::envelope::EventEnvelope;

/// A step from version `from` to `from + 1` of one event type.
struct Step {
    event_type: &'static str,
    from: u32,
    apply: fn(Value) -> Value,
}

const STEPS: &[Step] = &[Step {
    event_type: "Payment.Received",
    from: 1,
    apply: payment_received_v1_to_v2,
}];

/// The event in the latest version of its type's payload. Events of unknown or custom
/// types, and events already at the latest version, are returned as they are.
pub fn upcast(mut event: EventEnvelope) -> EventEnvelope {
    let Some(spec) = catalog::lookup(&event.event_type) else {
        return event;
    };
    while event.event_version < spec.latest_version() {
        let Some(step) = STEPS
            .iter()
            .find(|s| s.event_type == spec.event_type && s.from == event.event_version)
        else {
            // A missing step is a bug caught by the tests; never loop or guess.
            return event;
        };
        event.payload = (step.apply)(std::mem::take(&mut event.payload).into_value()).into();
        event.event_version += 1;
    }
    event
}

/// v1 `method` is free text ("ACH", "Wire transfer", ...); v2 has `paymentMethod` from a
/// fixed list and keeps the original text in `methodDetail` when it was not exactly a
/// list value.
fn payment_received_v1_to_v2(mut payload: Value) -> Value {
    let Some(obj) = payload.as_object_mut() else {
        return payload;
    };
    let method = obj
        .remove("method")
        .and_then(|m| m.as_str().map(str::to_string))
        .unwrap_or_default();
    let normal = method.trim().to_ascii_lowercase();
    let mapped = match normal.as_str() {
        m if PAYMENT_METHODS.contains(&m) => m,
        "wire transfer" | "fedwire" | "swift" => "wire",
        "cheque" | "echeck" | "e-check" => "check",
        "credit card" | "debit card" | "credit_card" | "debit_card" => "card",
        "ach transfer" | "bank transfer" | "direct debit" => "ach",
        _ => "other",
    };
    obj.insert("paymentMethod".into(), json!(mapped));
    if normal != mapped && !method.trim().is_empty() {
        obj.insert("methodDetail".into(), json!(method));
    }
    payload
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::CATALOG;
    use crate::envelope::{NewEvent, WriteContext};
    use crate::schema::validate_object;
    use chrono::Utc;

    fn stored(raw: Value) -> EventEnvelope {
        let ctx = WriteContext::client("acme", "test", Utc::now());
        NewEvent::from_json(&raw, &ctx, &mut uuid::Uuid::new_v4)
            .unwrap()
            .into_envelope(1, Utc::now())
    }

    fn received(version: u32, payload: Value) -> Value {
        json!({"eventType": "Payment.Received", "eventVersion": version, "aggregateType": "Loan",
            "aggregateId": "L1", "payload": payload})
    }

    #[test]
    fn every_version_step_exists() {
        for s in CATALOG {
            for from in 1..s.latest_version() {
                assert!(
                    STEPS
                        .iter()
                        .any(|st| st.event_type == s.event_type && st.from == from),
                    "{} has no upcaster from v{from}",
                    s.event_type
                );
            }
        }
    }

    /// The upcast event is the stored one with version 2 and `method` mapped to
    /// `paymentMethod` (+ `methodDetail`); id, sequence, times, metadata and every other
    /// payload field are kept. (`upcast` takes the event by value and the store is never
    /// written, so the stored copy cannot change; what is checked is what a reader gets.)
    #[test]
    fn a_v1_payment_reads_as_v2_with_everything_else_kept() {
        let schema = catalog::lookup("Payment.Received")
            .unwrap()
            .schema(2)
            .unwrap();
        for (method, mapped, detail) in [
            ("ACH", "ach", None),
            ("wire", "wire", None),
            (" Card ", "card", None),
            ("Wire transfer", "wire", Some("Wire transfer")),
            ("cheque", "check", Some("cheque")),
            ("Direct Debit", "ach", Some("Direct Debit")),
            ("crypto", "other", Some("crypto")),
        ] {
            let v1 = stored(received(
                1,
                json!({"paymentId": "P1", "loanId": "L1", "amount": "100", "method": method,
                    "receivedAt": "2026-02-28T12:00:00Z"}),
            ));
            let mut expected = v1.clone();
            expected.event_version = 2;
            let payload = expected.payload.as_object_mut().unwrap();
            payload.remove("method");
            payload.insert("paymentMethod".into(), json!(mapped));
            if let Some(detail) = detail {
                payload.insert("methodDetail".into(), json!(detail));
            }

            let v2 = upcast(v1);
            assert_eq!(v2, expected, "method {method:?}");
            // What a v2 reader gets is a valid v2 payload.
            validate_object(&v2.payload, schema, "payload").unwrap();
        }
    }

    #[test]
    fn latest_versions_and_other_types_pass_through() {
        let v2 = stored(received(
            2,
            json!({"paymentId": "P1", "loanId": "L1", "amount": "100", "paymentMethod": "card",
                "receivedAt": "2026-02-28T12:00:00Z"}),
        ));
        assert_eq!(upcast(v2.clone()), v2);
        let funded = stored(json!({"eventType": "Loan.Funded", "aggregateType": "Loan",
            "aggregateId": "L1", "payload": {"loanId": "L1", "fundedAmount": "1", "fundedAt": "2026-01-01T00:00:00Z"}}));
        assert_eq!(upcast(funded.clone()), funded);
    }
}
