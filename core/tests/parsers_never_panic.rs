//! Property tests: every parser the outside world can reach through the core returns an
//! error on bad input and never panics (release builds abort on a panic, which would kill a
//! Lambda instance). Inputs: arbitrary bytes and text, arbitrary JSON, and schema-shaped
//! events whose values run to the edges of each field's kind, which then go through every
//! subscribed handler and the state folds as a stored history would.

use std::collections::BTreeMap;

use chrono::{TimeZone, Utc};
use lending_events::catalog::{Catalog, EventSpec, CATALOG};
use lending_events::envelope::WriteContext;
use lending_events::handlers::{self, HandlerInput};
use lending_events::ingest::{parse_body, Limits};
use lending_events::schema::{FieldKind, FieldSpec};
use lending_events::upcast::upcast;
use lending_events::{EventEnvelope, NewEvent};
use proptest::prelude::*;
use serde_json::{json, Map, Value};

fn ctx() -> WriteContext<'static> {
    WriteContext::client(
        "t",
        "fuzz",
        Utc.with_ymd_and_hms(2026, 3, 1, 12, 0, 0).unwrap(),
    )
}

fn ids() -> impl FnMut() -> uuid::Uuid {
    let mut n = 0u128;
    move || {
        n += 1;
        uuid::Uuid::from_u128(n)
    }
}

/// Any JSON value, nested a few levels.
fn any_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<u64>().prop_map(|n| json!(n)),
        any::<f64>().prop_map(|f| json!(f)),
        ".{0,40}".prop_map(Value::String),
        edge_text().prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 24, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map(field_name(), inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

fn field_name() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("loanId".to_string()),
        Just("amount".to_string()),
        Just("events".to_string()),
        Just("eventType".to_string()),
        Just("payload".to_string()),
        "[a-zA-Z]{1,12}",
        ".{0,8}",
    ]
}

/// Text at the edges: huge and tiny numbers, odd dates, multi-byte characters.
fn edge_text() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("79228162514264337593543950335".to_string()),
        Just("-79228162514264337593543950335".to_string()),
        Just("99999999999999999999999999.99".to_string()),
        Just("7922816251426433759354395033.5".to_string()),
        Just("1e400".to_string()),
        Just("0.0000000000000000000000000001".to_string()),
        Just("0.01".to_string()),
        Just("-0.00".to_string()),
        Just("NaN".to_string()),
        Just("100.000000".to_string()),
        Just("0000-01-01".to_string()),
        Just("9999-12-31".to_string()),
        Just("2026-02-30".to_string()),
        Just("9999-12-31T23:59:59.999999999+14:00".to_string()),
        Just("0000-01-01T00:00:00-23:59".to_string()),
        Just("aé€😀".to_string()),
        Just("\u{0}".to_string()),
        "[0-9]{1,40}(\\.[0-9]{0,30})?",
    ]
}

/// A value for one field: mostly of its kind (so the event passes validation and reaches the
/// handlers), at the kind's edges, sometimes anything at all.
fn value_of(kind: FieldKind, ids: &'static [&'static str]) -> BoxedStrategy<Value> {
    let typed: BoxedStrategy<Value> = match kind {
        FieldKind::Text { max } => prop_oneof![
            ".{1,20}".prop_map(Value::String),
            Just(Value::String("x".repeat(max))),
        ]
        .boxed(),
        FieldKind::Id => prop::sample::select(ids).prop_map(|s| json!(s)).boxed(),
        FieldKind::Money { .. } => prop_oneof![
            4 => (1u64..=u64::MAX, 0u32..100).prop_map(|(n, c)| json!(format!("{n}.{c:02}"))),
            4 => (1u64..10_000_000, 0u32..100).prop_map(|(n, c)| json!(format!("{n}.{c:02}"))),
            2 => (1u64..1_000_000_000).prop_map(|n| json!(n)),
            1 => Just(json!("999999999999999999999999.99")),
            1 => Just(json!("79228162514264337593543950.33")),
            1 => Just(json!("0.01")),
            1 => Just(json!("0")),
        ]
        .boxed(),
        FieldKind::Rate => prop_oneof![
            (0u32..=100, 0u32..1_000_000).prop_map(|(n, f)| json!(format!("{n}.{f:06}"))),
            Just(json!("100")),
            Just(json!("0")),
            Just(json!("0.000001")),
        ]
        .boxed(),
        FieldKind::Integer { min, max } => prop_oneof![min..=max, Just(min), Just(max)]
            .prop_map(|n| json!(n))
            .boxed(),
        FieldKind::OneOf(values) => prop::sample::select(values).prop_map(|s| json!(s)).boxed(),
        FieldKind::Date => prop_oneof![
            (0i32..=9999, 1u32..=12, 1u32..=28)
                .prop_map(|(y, m, d)| json!(format!("{y:04}-{m:02}-{d:02}"))),
            Just(json!("2026-01-31")),
            Just(json!("9999-12-31")),
        ]
        .boxed(),
        FieldKind::DateTime => prop_oneof![
            (0i32..=9999, 1u32..=12, 1u32..=28)
                .prop_map(|(y, m, d)| json!(format!("{y:04}-{m:02}-{d:02}T00:00:00Z"))),
            Just(json!("9999-12-31T23:59:59.999999999+14:00")),
            Just(json!("0000-01-01T00:00:00-23:59")),
        ]
        .boxed(),
        FieldKind::Bool => any::<bool>().prop_map(Value::Bool).boxed(),
        FieldKind::Object => any_json().boxed(),
        FieldKind::List { item, max } => {
            prop::collection::vec(record_of(item, ids), 0..=max.min(4))
                .prop_map(Value::Array)
                .boxed()
        }
        FieldKind::Record(fields) => record_of(fields, ids).boxed(),
        FieldKind::IdList { max } => {
            prop::collection::vec(prop::sample::select(ids), 0..=max.min(4))
                .prop_map(|v| json!(v))
                .boxed()
        }
    };
    prop_oneof![40 => typed, 1 => any_json(), 1 => edge_text().prop_map(Value::String)].boxed()
}

fn record_of(fields: &'static [FieldSpec], ids: &'static [&'static str]) -> BoxedStrategy<Value> {
    let parts: Vec<BoxedStrategy<Option<(String, Value)>>> = fields
        .iter()
        .map(|f| {
            let name = f.name.to_string();
            let v = value_of(f.kind, ids).prop_map(move |v| Some((name.clone(), v)));
            if f.required {
                prop_oneof![60 => v, 1 => Just(None)].boxed()
            } else {
                prop_oneof![v, Just(None)].boxed()
            }
        })
        .collect();
    parts
        .prop_map(|kv| Value::Object(kv.into_iter().flatten().collect::<Map<_, _>>()))
        .boxed()
}

/// The ids every generated event draws from, so events meet on the same aggregates.
const IDS: &[&str] = &["L-1", "D-1", "B-1", "F-1", "I-1", "S-1"];

/// The id fields that name an aggregate, and the one id each mostly takes, so that events
/// of one generated history meet on the same loan and draw.
const SHARED_IDS: &[(&str, &str)] = &[("loanId", "L-1"), ("drawId", "D-1"), ("borrowerId", "B-1")];

/// One event of a catalog type with a schema-shaped payload of the given version.
fn event_of(spec: &'static EventSpec) -> BoxedStrategy<Value> {
    let versions = 1 + spec.later_versions.len() as u32;
    (1..=versions)
        .prop_flat_map(move |v| {
            let fields = spec.schema(v).unwrap_or(spec.fields);
            (Just(v), record_of(fields, IDS), prop::bool::weighted(0.9))
        })
        .prop_map(move |(version, mut payload, shared)| {
            if let (Value::Object(p), true) = (&mut payload, shared) {
                for (field, id) in SHARED_IDS {
                    if let Some(v) = p.get_mut(*field) {
                        *v = json!(id);
                    }
                }
            }
            let id = payload
                .get(spec.aggregate_id_field)
                .cloned()
                .unwrap_or(json!("L-1"));
            if let Value::Object(p) = &mut payload {
                p.insert(spec.aggregate_id_field.into(), id.clone());
            }
            json!({"eventType": spec.event_type, "eventVersion": version,
                "aggregateType": spec.aggregate_type, "aggregateId": id, "payload": payload})
        })
        .boxed()
}

fn any_catalog_event() -> BoxedStrategy<Value> {
    prop::sample::select((0..CATALOG.len()).collect::<Vec<_>>())
        .prop_flat_map(|i| event_of(&CATALOG[i]))
        .boxed()
}

/// Store `events` as a history would be (per stream, in order), then run every subscribed
/// handler on each with the history up to it and its related stream, and fold each stream.
fn run_everything(events: Vec<NewEvent>) {
    let mut streams: BTreeMap<(String, String), Vec<EventEnvelope>> = BTreeMap::new();
    let mut stored = Vec::new();
    for (n, e) in events.into_iter().enumerate() {
        let key = (e.aggregate_type.clone(), e.aggregate_id.clone());
        let history = streams.entry(key).or_default();
        let at = Utc.with_ymd_and_hms(2026, 3, 1, 12, 0, 0).unwrap()
            + chrono::Duration::seconds(n as i64);
        let env = upcast(e.into_envelope(history.len() as u64 + 1, at));
        history.push(env.clone());
        stored.push(env);
    }
    let all = handlers::all();
    for event in &stored {
        let key = (event.aggregate_type.clone(), event.aggregate_id.clone());
        let history: Vec<EventEnvelope> = streams[&key]
            .iter()
            .take_while(|e| e.sequence <= event.sequence)
            .cloned()
            .collect();
        for h in all
            .iter()
            .filter(|h| h.subscriptions().contains(&event.event_type.as_str()))
        {
            let related = h
                .related(event)
                .and_then(|(t, id)| streams.get(&(t.to_string(), id)).cloned())
                .unwrap_or_default();
            let input = HandlerInput {
                prior: None,
                event,
                history: &history,
                related: &related,
            };
            if let Ok(follow_ons) = h.handle(&input) {
                for (i, f) in follow_ons.into_iter().enumerate() {
                    let _ = NewEvent::follow_on(event, h.name(), i, f, Utc::now());
                }
            }
        }
    }
    for history in streams.into_values() {
        let _ = lending_events::state::document(history);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn request_bodies_of_arbitrary_bytes_are_refused_not_panicked_on(body in prop::collection::vec(any::<u8>(), 0..512)) {
        let _ = parse_body(&body, &Limits::default(), &ctx(), &mut ids());
    }

    #[test]
    fn request_bodies_of_arbitrary_text_are_refused_not_panicked_on(body in ".{0,300}") {
        let object = body.trim_start().starts_with('{');
        let refused = parse_body(body.as_bytes(), &Limits::default(), &ctx(), &mut ids()).is_err();
        prop_assert!(refused || object, "accepted {:?}", body);
    }

    #[test]
    fn arbitrary_json_events_and_batches_never_panic(v in any_json(), batch in prop::collection::vec(any_json(), 0..30)) {
        let mut next = ids();
        let _ = NewEvent::from_value_in(Catalog::builtin(), v.clone(), &ctx(), &mut next);
        let body = json!({"events": batch}).to_string();
        let _ = parse_body(body.as_bytes(), &Limits::default(), &ctx(), &mut next);
        let _ = serde_json::from_value::<EventEnvelope>(v).map(upcast);
    }

    #[test]
    fn stored_envelopes_of_arbitrary_text_are_refused_not_panicked_on(text in ".{0,300}") {
        let _ = serde_json::from_str::<EventEnvelope>(&text).map(upcast);
    }

    #[test]
    fn custom_type_documents_of_arbitrary_text_never_panic(text in ".{0,300}") {
        let _ = Catalog::with_custom_json(&text);
    }

    #[test]
    fn custom_type_documents_of_arbitrary_shape_never_panic(
        name in prop_oneof![Just("Servicing.CallLogged".to_string()), "[A-Z][a-z]{0,6}\\.[A-Z][a-z]{0,6}", ".{0,12}"],
        domain in prop_oneof![Just("servicing".to_string()), ".{0,8}"],
        fields in prop::collection::btree_map(field_name(), any_json(), 0..6),
        kinds in prop::collection::vec(prop_oneof![
            Just(json!("id")), Just(json!("text")), Just(json!("money")), Just(json!("integer")),
            Just(json!({"type": "integer", "min": i64::MAX, "max": i64::MIN})),
            Just(json!({"type": "text", "max": u64::MAX})),
            Just(json!({"type": "list", "max": 0, "fields": {"a": {"type": "list", "fields": {"b": {"type": "record", "fields": {"c": {"type": "list", "fields": {"d": "id"}}}}}}}})),
            Just(json!({"type": "enum", "values": []})),
            Just(json!({"type": "enum", "values": [1, null]})),
            any_json(),
        ], 0..6),
    ) {
        let mut payload: Map<String, Value> = fields.into_iter().collect();
        for (i, k) in kinds.into_iter().enumerate() {
            payload.insert(format!("f{i}"), k);
        }
        payload.insert("loanId".into(), json!("id"));
        let doc = json!({"eventTypes": [{"eventType": name, "domain": domain, "aggregateType": "Loan",
            "aggregateIdField": "loanId", "payload": payload}]});
        if let Ok(catalog) = Catalog::with_custom_json(&doc.to_string()) {
            // A type that loads must then validate events without panicking.
            let ev = json!({"eventType": name, "aggregateType": "Loan", "aggregateId": "L-1",
                "payload": {"loanId": "L-1", "f0": "1.00", "f1": 1}});
            let _ = NewEvent::from_value_in(&catalog, ev, &ctx(), &mut ids());
        }
    }

    #[test]
    fn schema_shaped_events_never_panic_ingest_handlers_or_folds(
        events in prop::collection::vec(any_catalog_event(), 1..12)
    ) {
        let mut next = ids();
        let mut accepted = Vec::new();
        for e in events {
            let _ = serde_json::from_value::<EventEnvelope>(e.clone());
            if let Ok(ev) = NewEvent::from_value_in(Catalog::builtin(), e, &ctx(), &mut next) {
                accepted.push(ev);
            }
        }
        run_everything(accepted);
    }

    #[test]
    fn loan_histories_at_the_edges_never_panic_handlers_or_folds(
        created in event_of(CATALOG.iter().find(|s| s.event_type == "Loan.Created").unwrap()),
        later in prop::collection::vec(prop::sample::select(vec![
            "Loan.Funded", "Loan.Modified", "Payment.Received", "Payment.Reversed",
            "Loan.DrawSubmitted", "Draw.Requested", "Draw.Approved", "Loan.PaidOff", "Payment.Late",
        ]), 1..8)
        .prop_flat_map(|types| types.into_iter()
            .map(|t| event_of(CATALOG.iter().find(|s| s.event_type == t).unwrap()))
            .collect::<Vec<_>>()),
    ) {
        let mut next = ids();
        let accepted: Vec<NewEvent> = std::iter::once(created)
            .chain(later)
            .filter_map(|e| NewEvent::from_value_in(Catalog::builtin(), e, &ctx(), &mut next).ok())
            .collect();
        run_everything(accepted);
    }
}
