//! Decoding a `POST /events` body: one envelope, or `{"events": [...]}` with 1 to 25 of
//! them, validated all or nothing.

use std::collections::HashSet;

use serde_json::Value;
use uuid::Uuid;

use crate::catalog::Catalog;
use crate::envelope::{NewEvent, WriteContext};
use crate::error::{CoreError, ErrorCode};

/// Limits of one request; API Gateway's own payload limit is 10 MB, ours are tighter.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_body_bytes: usize,
    pub max_event_bytes: usize,
    pub max_events: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_body_bytes: 1024 * 1024,
            // SQS's classic message limit: every stored event must fit one message.
            max_event_bytes: 256 * 1024,
            max_events: 25,
        }
    }
}

/// Validate a request body into new events, in request order.
pub fn parse_body(
    body: &[u8],
    limits: &Limits,
    ctx: &WriteContext<'_>,
    new_id: &mut dyn FnMut() -> Uuid,
) -> Result<Vec<NewEvent>, CoreError> {
    parse_body_in(Catalog::builtin(), body, limits, ctx, new_id)
}

/// [`parse_body`] against a catalog instance (built-in plus custom types).
pub fn parse_body_in(
    catalog: &Catalog,
    body: &[u8],
    limits: &Limits,
    ctx: &WriteContext<'_>,
    new_id: &mut dyn FnMut() -> Uuid,
) -> Result<Vec<NewEvent>, CoreError> {
    if body.len() > limits.max_body_bytes {
        return Err(CoreError::with_code(
            ErrorCode::TooLarge,
            None,
            format!(
                "request body is {} bytes; the limit is {}",
                body.len(),
                limits.max_body_bytes
            ),
        ));
    }
    let value: Value = serde_json::from_slice(body).map_err(|e| {
        CoreError::with_code(
            ErrorCode::MalformedJson,
            None,
            format!("body is not valid JSON: {e}"),
        )
    })?;
    let (raw_events, prefix): (Vec<Value>, bool) = match value {
        Value::Object(mut o) if o.contains_key("events") => match o.remove("events") {
            Some(Value::Array(a)) => {
                if !o.is_empty() {
                    return Err(CoreError::invalid(
                        "",
                        "a batch body has only the field \"events\"",
                    ));
                }
                (a, true)
            }
            _ => return Err(CoreError::invalid("events", "must be a list of events")),
        },
        v @ Value::Object(_) => (vec![v], false),
        _ => {
            return Err(CoreError::with_code(
                ErrorCode::MalformedJson,
                None,
                "body must be an event object or {\"events\": [...]}",
            ))
        }
    };
    if raw_events.is_empty() || raw_events.len() > limits.max_events {
        return Err(CoreError::invalid(
            "events",
            format!("must hold 1 to {} events", limits.max_events),
        ));
    }
    // Re-encoding turns a number like `1e15` (4 bytes) into `1000000000000000.0` (18), so an
    // event can grow up to ~5x its text: only bodies that could reach the limit are measured.
    let measure_events = body.len().saturating_mul(5) > limits.max_event_bytes;

    let mut seen = HashSet::new();
    let mut out = Vec::with_capacity(raw_events.len());
    for (i, raw) in raw_events.into_iter().enumerate() {
        let at = |e: CoreError| {
            if prefix {
                e.at(&format!("events[{i}]"))
            } else {
                e
            }
        };
        if measure_events && serialised_size(&raw) > limits.max_event_bytes {
            return Err(at(CoreError::with_code(
                ErrorCode::TooLarge,
                None,
                format!("event is larger than {} bytes", limits.max_event_bytes),
            )));
        }
        let ev = NewEvent::from_value_in(catalog, raw, ctx, new_id).map_err(at)?;
        if !seen.insert(ev.event_id) {
            return Err(at(CoreError::invalid(
                "eventId",
                "appears twice in this request",
            )));
        }
        out.push(ev);
    }
    Ok(out)
}

fn serialised_size(v: &Value) -> usize {
    // Exact serialised size without allocating the string.
    struct Counter(usize);
    impl std::io::Write for Counter {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0 += b.len();
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut c = Counter(0);
    // Writing a Value to a counter cannot fail.
    let _ = serde_json::to_writer(&mut c, v);
    c.0
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Utc;
    use serde_json::json;

    fn ctx() -> WriteContext<'static> {
        WriteContext::client("acme", "test", Utc::now())
    }

    fn parse(v: Value) -> Result<Vec<NewEvent>, CoreError> {
        parse_body(
            v.to_string().as_bytes(),
            &Limits::default(),
            &ctx(),
            &mut Uuid::new_v4,
        )
    }

    fn funded(loan: &str) -> Value {
        json!({
            "eventType": "Loan.Funded", "aggregateType": "Loan", "aggregateId": loan,
            "payload": {"loanId": loan, "fundedAmount": 100000, "fundedAt": "2026-01-31T10:00:00Z"}
        })
    }

    fn error_of(r: Result<Vec<NewEvent>, CoreError>) -> (ErrorCode, Option<String>) {
        match r {
            Err(CoreError::Invalid { code, field, .. }) => (code, field),
            other => panic!("expected an error, got {other:?}"),
        }
    }

    #[test]
    fn handler_owned_types_are_refused_with_the_path_of_their_event_type() {
        let applied = json!({"eventType": "Payment.Applied", "aggregateType": "Loan",
            "aggregateId": "L-1", "payload": {"paymentId": "P-1", "loanId": "L-1",
            "allocation": {"interest": "1.00", "principal": "2.00"}, "remainingPrincipal": "5.00"}});
        let (code, field) = error_of(parse(applied.clone()));
        assert_eq!(
            (code, field.as_deref()),
            (ErrorCode::ProducerNotAllowed, Some("eventType"))
        );
        let batch = json!({"events": [funded("L-1"), funded("L-2"), funded("L-3"), applied]});
        let (code, field) = error_of(parse(batch));
        assert_eq!(
            (code, field.as_deref()),
            (ErrorCode::ProducerNotAllowed, Some("events[3].eventType"))
        );
        // An alias is resolved first: the canonical type is the one refused.
        let aliased = json!({"eventType": "Compliance.DocGenerated", "aggregateType": "Document",
            "aggregateId": "D-1", "payload": {"documentId": "D-1", "type": "w9"}});
        match parse(aliased) {
            Err(CoreError::Invalid { code, message, .. }) => {
                assert_eq!(code, ErrorCode::ProducerNotAllowed);
                assert!(
                    message.contains("Document.Generated is decided by compliance"),
                    "{message}"
                );
            }
            other => panic!("expected a refusal, got {other:?}"),
        }
        // Every built-in type a client may not publish is refused; the others parse.
        for spec in crate::catalog::CATALOG {
            let refused = matches!(
                parse(
                    json!({"eventType": spec.event_type, "aggregateType": spec.aggregate_type,
                    "aggregateId": "X-1", "payload": {}})
                ),
                Err(CoreError::Invalid {
                    code: ErrorCode::ProducerNotAllowed,
                    ..
                })
            );
            assert_eq!(refused, !spec.client_may_publish(), "{}", spec.event_type);
        }
    }

    #[test]
    fn the_principal_is_the_servers_and_user_id_the_clients() {
        let mut e = funded("L-1");
        e["metadata"] = json!({"userId": "u-7"});
        let evs = parse(e.clone()).unwrap();
        assert_eq!(evs[0].metadata.principal.as_deref(), Some("test"));
        assert_eq!(evs[0].metadata.user_id.as_deref(), Some("u-7"));
        e["metadata"] = json!({"principal": "someone-else"});
        assert_eq!(
            error_of(parse(e)),
            (
                ErrorCode::ValidationFailed,
                Some("metadata.principal".into())
            )
        );
    }

    #[test]
    fn a_single_event_gets_server_fields() {
        let evs = parse(funded("L-1")).unwrap();
        assert_eq!(evs.len(), 1);
        let e = &evs[0];
        assert_eq!(e.domain, "loan");
        assert_eq!(e.event_version, 1);
        assert_eq!(e.metadata.tenant_id, "acme");
        assert_eq!(e.metadata.correlation_id, e.event_id.to_string());
        assert_eq!(e.payload["fundedAmount"], json!("100000.00"));
        assert!(!e.client_event_id);
    }

    #[test]
    fn a_batch_keeps_order_and_reports_the_index_of_a_bad_event() {
        let evs = parse(json!({"events": [funded("L-1"), funded("L-2")]})).unwrap();
        assert_eq!(evs[1].aggregate_id, "L-2");
        let mut bad = funded("L-3");
        bad["payload"]["fundedAmount"] = json!("1.001");
        let (code, field) = error_of(parse(json!({"events": [funded("L-1"), bad]})));
        assert_eq!(code, ErrorCode::ValidationFailed);
        assert_eq!(field.as_deref(), Some("events[1].payload.fundedAmount"));
    }

    #[test]
    fn envelope_rules_are_enforced() {
        let mut e = funded("L-1");
        e["eventType"] = json!("Loan.Exploded");
        assert_eq!(error_of(parse(e)).0, ErrorCode::UnknownEventType);

        let mut e = funded("L-1");
        e["aggregateType"] = json!("Draw");
        assert_eq!(error_of(parse(e)).0, ErrorCode::AggregateMismatch);

        let mut e = funded("L-1");
        e["aggregateId"] = json!("L-2");
        assert_eq!(error_of(parse(e)).0, ErrorCode::AggregateMismatch);

        let mut e = funded("L-1");
        e["sequence"] = json!(3);
        assert_eq!(error_of(parse(e)).1.as_deref(), Some("sequence"));

        let mut e = funded("L-1");
        e["metadata"] = json!({"tenantId": "other"});
        assert_eq!(error_of(parse(e)).1.as_deref(), Some("metadata.tenantId"));

        assert_eq!(
            error_of(parse(json!({"events": []}))).1.as_deref(),
            Some("events")
        );
        assert_eq!(error_of(parse(json!([1]))).0, ErrorCode::MalformedJson);
        let too_many: Vec<Value> = (0..26).map(|i| funded(&format!("L-{i}"))).collect();
        assert_eq!(
            error_of(parse(json!({ "events": too_many }))).1.as_deref(),
            Some("events")
        );
    }

    #[test]
    fn malformed_and_oversized_bodies_are_refused() {
        let r = parse_body(b"{not json", &Limits::default(), &ctx(), &mut Uuid::new_v4);
        assert_eq!(error_of(r).0, ErrorCode::MalformedJson);
        let limits = Limits {
            max_event_bytes: 100,
            ..Limits::default()
        };
        let r = parse_body(
            funded("L-1").to_string().as_bytes(),
            &limits,
            &ctx(),
            &mut Uuid::new_v4,
        );
        assert_eq!(error_of(r).0, ErrorCode::TooLarge);
    }

    #[test]
    fn event_versions_select_the_payload_schema() {
        let received = |version: Value, payload: Value| {
            json!({"eventType": "Payment.Received", "eventVersion": version, "aggregateType": "Loan",
                "aggregateId": "L-1", "payload": payload})
        };
        let v1 = json!({"paymentId": "P1", "loanId": "L-1", "amount": 100, "method": "ACH",
            "receivedAt": "2026-02-28T12:00:00Z"});
        let v2 = json!({"paymentId": "P1", "loanId": "L-1", "amount": 100, "paymentMethod": "ach",
            "receivedAt": "2026-02-28T12:00:00Z"});
        assert_eq!(
            parse(received(json!(1), v1.clone())).unwrap()[0].event_version,
            1
        );
        let e = parse(received(json!(2), v2.clone())).unwrap().remove(0);
        assert_eq!(
            (e.event_version, &e.payload["amount"]),
            (2, &json!("100.00"))
        );
        // A v1 payload sent as v2 is checked against v2, and the other way round.
        assert_eq!(
            error_of(parse(received(json!(2), v1.clone()))).1.as_deref(),
            Some("payload.method")
        );
        assert_eq!(
            error_of(parse(received(json!(1), v2))).1.as_deref(),
            Some("payload.paymentMethod")
        );
        let (code, field) = error_of(parse(received(json!(3), v1.clone())));
        assert_eq!(
            (code, field.as_deref()),
            (ErrorCode::ValidationFailed, Some("eventVersion"))
        );
        let mut f = funded("L-1");
        f["eventVersion"] = json!(2);
        assert_eq!(error_of(parse(f)).1.as_deref(), Some("eventVersion"));
    }

    #[test]
    fn cross_field_rules_are_validation_errors() {
        let loan = json!({"eventType": "Loan.Created", "aggregateType": "Loan", "aggregateId": "L-1",
            "payload": {"loanId": "L-1", "borrowerId": "B-1", "amount": "1000", "interestRate": "5",
                "termMonths": 10, "amortization": "amortized", "paymentFrequency": "quarterly"}});
        let (code, field) = error_of(parse(loan));
        assert_eq!(
            (code, field.as_deref()),
            (ErrorCode::ValidationFailed, Some("payload.termMonths"))
        );
    }

    #[test]
    fn duplicate_event_ids_in_one_request_are_refused() {
        let id = Uuid::new_v4().to_string();
        let mut a = funded("L-1");
        a["eventId"] = json!(id);
        let b = a.clone();
        assert_eq!(
            error_of(parse(json!({"events": [a, b]}))).1.as_deref(),
            Some("events[1].eventId")
        );
    }

    #[test]
    fn fingerprints_match_for_resends_and_differ_for_other_content() {
        let id = Uuid::new_v4().to_string();
        let mut a = funded("L-1");
        a["eventId"] = json!(id);
        let first = parse(a.clone()).unwrap().remove(0);
        let again = parse(a.clone()).unwrap().remove(0);
        assert!(first.client_event_id);
        assert_eq!(first.fingerprint, again.fingerprint);
        // A number and its string form are the same amount.
        a["payload"]["fundedAmount"] = json!("100000.00");
        assert_eq!(parse(a.clone()).unwrap()[0].fingerprint, first.fingerprint);
        a["payload"]["fundedAmount"] = json!("100000.01");
        assert_ne!(parse(a).unwrap()[0].fingerprint, first.fingerprint);
    }
}
