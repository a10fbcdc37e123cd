//! The validator's fast paths (money and dates already in canonical text are checked by
//! their shape, not re-parsed and re-formatted) against the general path they stand in
//! for: the same values accepted, the same errors for the rest, byte-identical normalised
//! payloads, over what the handlers produce and over arbitrary text in those fields.

use proptest::prelude::*;
use serde_json::{json, Value};

use super::payment::{PaymentApplication, PaymentHandler};
use super::testkit::{given, Given};
use super::{DomainHandler, HandlerInput};
use crate::catalog;
use crate::envelope::{EventEnvelope, NewEvent};
use crate::schema::{
    normalize_object, normalize_object_reference, req, FieldSpec, DATE, MONEY, POSITIVE_MONEY,
};

/// Both paths on `payload`: equal results (value or error), equal bytes.
fn same_as_reference(payload: &Value, fields: &[FieldSpec]) -> Result<(), TestCaseError> {
    let fast = normalize_object(payload.clone(), fields, "payload");
    let reference = normalize_object_reference(payload.clone(), fields, "payload");
    prop_assert_eq!(&fast, &reference);
    if let (Ok(f), Ok(r)) = (&fast, &reference) {
        prop_assert_eq!(
            serde_json::to_vec(f).unwrap(),
            serde_json::to_vec(r).unwrap()
        );
    }
    Ok(())
}

const ONE_MONEY: &[FieldSpec] = &[req("x", MONEY)];
const ONE_POSITIVE: &[FieldSpec] = &[req("x", POSITIVE_MONEY)];
const ONE_DATE: &[FieldSpec] = &[req("x", DATE)];

/// Text near the canonical forms (where the fast paths decide) and anything else.
fn field_text() -> impl Strategy<Value = String> {
    prop_oneof![
        "-?[0-9]{1,24}\\.[0-9]{2}",
        "-?0{0,3}[0-9]{0,30}(\\.[0-9]{0,4})?",
        "[0-9 .+-]{0,12}",
        "[0-9]{4}-[0-9]{2}-[0-9]{2}",
        "[+-]?[0-9]{3,6}-[0-1][0-9]-[0-3][0-9]",
        "[0-9]{4}-[0-9]{1,2}-[0-9]{1,2}( |T)?",
        any::<String>(),
    ]
}

fn created(loan: &str, amount: &str, rate: &str, n: u32, freq: &str) -> Value {
    json!({"eventType": "Loan.Created", "aggregateType": "Loan", "aggregateId": loan,
        "payload": {"loanId": loan, "borrowerId": "B1", "amount": amount, "interestRate": rate,
            "termMonths": n, "amortization": "amortized", "paymentFrequency": freq}})
}

fn funded(loan: &str, amount: &str, at: &str) -> Value {
    json!({"eventType": "Loan.Funded", "aggregateType": "Loan", "aggregateId": loan,
        "payload": {"loanId": loan, "fundedAmount": amount, "fundedAt": at}})
}

fn received(loan: &str, id: &str, amount: &str, at: &str) -> Value {
    json!({"eventType": "Payment.Received", "aggregateType": "Loan", "aggregateId": loan,
        "payload": {"paymentId": id, "loanId": loan, "amount": amount, "method": "ACH", "receivedAt": at}})
}

/// What `h` asks to append for the last event of `scenario`, before any validation.
fn raw_follow_ons(h: &dyn DomainHandler, scenario: &Given) -> Vec<crate::envelope::FollowOn> {
    let event = scenario.last();
    let own: Vec<EventEnvelope> = scenario.stream(&event.aggregate_type, &event.aggregate_id);
    h.handle(&HandlerInput {
        prior: None,
        event,
        history: &own,
        related: &[],
    })
    .unwrap_or_default()
}

/// Each follow-on through both paths: the runner's (`NewEvent::follow_on`, fast) stores
/// exactly the reference-normalised payload, and the stored envelope's bytes are those of
/// the envelope with the reference payload.
fn follow_ons_match_reference(
    h: &dyn DomainHandler,
    scenario: &Given,
) -> Result<usize, TestCaseError> {
    let source = scenario.last();
    let out = raw_follow_ons(h, scenario);
    for (i, f) in out.iter().enumerate() {
        let spec = catalog::lookup(f.event_type).expect("a catalog type");
        same_as_reference(&f.payload, spec.fields)?;
        let now = chrono::Utc::now();
        let fast = NewEvent::follow_on(source, h.name(), i, f.clone(), now).unwrap();
        let reference_payload = Value::Object(
            normalize_object_reference(f.payload.clone().into_value(), spec.fields, "payload")
                .unwrap(),
        );
        let mut reference = fast.clone().into_envelope(7, now);
        reference.payload = reference_payload.into();
        let stored = fast.into_envelope(7, now);
        prop_assert_eq!(
            serde_json::to_vec(&stored).unwrap(),
            serde_json::to_vec(&reference).unwrap()
        );
    }
    Ok(out.len())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Any text in a money or date field: accepted or refused alike, same error, same bytes.
    #[test]
    fn money_and_date_fields_decide_as_the_reference(s in field_text()) {
        for fields in [ONE_MONEY, ONE_POSITIVE, ONE_DATE] {
            same_as_reference(&json!({"x": s}), fields)?;
        }
    }

    /// Numbers (not text) in the same fields take the general path in both.
    #[test]
    fn numbers_decide_as_the_reference(n in any::<f64>(), i in any::<i64>()) {
        for fields in [ONE_MONEY, ONE_POSITIVE, ONE_DATE] {
            same_as_reference(&json!({"x": n}), fields)?;
            same_as_reference(&json!({"x": i}), fields)?;
        }
    }

}

proptest! {
    // Up to 600-row schedules through both paths: fewer cases, each is large.
    #![proptest_config(ProptestConfig::with_cases(24))]

    /// Schedules and payment applications of random loans: every follow-on the handlers
    /// produce is stored byte-identical to the reference path.
    #[test]
    fn handler_follow_ons_are_stored_as_the_reference_stores_them(
        cents in 100_000u64..500_000_000,
        rate_bp in 0u32..2_500,
        n in 1u32..=600,
        day in 1u32..=28,
        paid_cents in 1u64..100_000_000,
    ) {
        let amount = format!("{}.{:02}", cents / 100, cents % 100);
        let rate = format!("{}.{:02}", rate_bp / 100, rate_bp % 100);
        let funded_at = format!("2026-01-{day:02}T09:00:00Z");
        let loan = given([created("L1", &amount, &rate, n, "monthly")])
            .and(funded("L1", &amount, &funded_at));
        // The schedule and the loan's status change (created -> funded).
        prop_assert_eq!(follow_ons_match_reference(&PaymentHandler, &loan)?, 2);
        // The same funding with its schedule stored, then a payment on it.
        let (loan, _) = given([created("L1", &amount, &rate, n, "monthly")])
            .when(&PaymentHandler, funded("L1", &amount, &funded_at))
            .then_events();
        let paid = format!("{}.{:02}", paid_cents / 100, paid_cents % 100);
        let loan = loan.and(received("L1", "P1", &paid, "2026-03-01T12:00:00Z"));
        follow_ons_match_reference(&PaymentApplication, &loan)?;
    }

}

proptest! {
    /// A handler bug that writes a non-canonical or invalid amount into a follow-on is
    /// refused (or normalised) exactly as the reference does it.
    #[test]
    fn corrupted_schedules_decide_as_the_reference(row in 0usize..12, field in 0usize..5, s in field_text()) {
        let loan = given([created("L1", "100000.00", "7.5", 12, "monthly")])
            .and(funded("L1", "100000.00", "2026-01-31T09:00:00Z"));
        let mut f = raw_follow_ons(&PaymentHandler, &loan).remove(0);
        let name = ["dueDate", "principal", "interest", "total", "balance"][field];
        f.payload["payments"][row][name] = json!(s);
        let spec = catalog::lookup(f.event_type).unwrap();
        same_as_reference(&f.payload, spec.fields)?;
        let fast = NewEvent::follow_on(loan.last(), PaymentHandler.name(), 0, f.clone(), chrono::Utc::now());
        prop_assert_eq!(fast.is_ok(), normalize_object_reference(f.payload.into_value(), spec.fields, "payload").is_ok());
    }
}

proptest! {
    /// Money written from its integer of cents is the text `Decimal` itself writes, for
    /// any amount, sign and scale a `Money` can hold.
    #[test]
    fn money_text_is_decimals_text(mantissa in any::<i64>(), scale in 0u32..=6, cents in any::<i64>()) {
        use rust_decimal::Decimal;
        for d in [Decimal::new(mantissa, scale), Decimal::new(cents, 2), -Decimal::new(0, scale)] {
            let m = crate::money::Money::round(d);
            let mut reference = m.amount();
            reference.rescale(2);
            prop_assert_eq!(m.to_string(), reference.to_string());
            prop_assert_eq!(serde_json::to_string(&m).unwrap(), format!("\"{reference}\""));
            prop_assert_eq!(serde_json::to_value(m).unwrap(), serde_json::Value::String(reference.to_string()));
        }
    }
}

/// Real follow-ons to start from: a 12-month schedule and the status change of a funding,
/// a payment application, and what every other handler appends for a funding.
fn sample_follow_ons() -> Vec<(Given, &'static str, crate::envelope::FollowOn)> {
    let funded_loan = given([created("L1", "100000.00", "7.5", 12, "monthly")]).and(funded(
        "L1",
        "100000.00",
        "2026-01-31T09:00:00Z",
    ));
    let (paying, _) = given([created("L1", "100000.00", "7.5", 12, "monthly")])
        .when(
            &PaymentHandler,
            funded("L1", "100000.00", "2026-01-31T09:00:00Z"),
        )
        .then_events();
    let paying = paying.and(received("L1", "P1", "8000.00", "2026-03-01T12:00:00Z"));
    let mut out = Vec::new();
    for h in super::all() {
        let scenario = if h.name() == PaymentApplication.name() {
            &paying
        } else {
            &funded_loan
        };
        for f in raw_follow_ons(h.as_ref(), scenario) {
            out.push((scenario.clone(), h.name(), f));
        }
    }
    out
}

/// Ids as handlers and clients write them, and anything else.
fn id_text() -> impl Strategy<Value = String> {
    prop_oneof![8 => "[A-Za-z0-9:_.-]{1,16}", 1 => "[A-Za-z0-9]{120,130}", 1 => any::<String>()]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// The follow-on path decides every follow-on exactly as the client path it replaced
    /// (written out as a client's event, validated by `NewEvent::from_value_in`): the same
    /// event (ids, fingerprint, normalised payload, metadata) or the same error, for real
    /// follow-ons and for ones a buggy handler could produce (another type, a bad aggregate,
    /// a corrupted or missing payload field, odd source metadata and times).
    #[test]
    fn follow_ons_equal_the_client_path(
        which in any::<prop::sample::Index>(),
        handler in any::<prop::sample::Index>(),
        event_type in prop::option::weighted(0.2, any::<prop::sample::Index>()),
        aggregate_type in prop::option::weighted(0.2, prop_oneof![Just("Loan"), Just("Fund"), Just("bad type!")]),
        aggregate_id in prop::option::weighted(0.2, id_text()),
        corrupt in prop::option::weighted(0.3, (any::<prop::sample::Index>(), prop::option::of(field_text()))),
        seconds in 0i64..4_000_000_000,
        nanos in 0u32..1_000_000_000,
        user in prop::option::of(id_text()),
        correlation in id_text(),
        index in 0usize..30,
    ) {
        let samples = sample_follow_ons();
        let (scenario, own_handler, mut f) = samples[which.index(samples.len())].clone();
        let names: Vec<&'static str> = super::all().iter().map(|h| h.name()).collect();
        // Mostly the handler that decided it; sometimes another one (not its producer).
        let handler_name = if handler.index(4) == 0 { names[handler.index(names.len())] } else { own_handler };
        if let Some(t) = event_type {
            let specs: Vec<&'static str> = catalog::Catalog::builtin().specs().map(|s| s.event_type).collect();
            f.event_type = specs[t.index(specs.len())];
        }
        if let Some(t) = aggregate_type {
            f.aggregate_type = t;
        }
        if let Some(id) = aggregate_id {
            f.aggregate_id = id;
        }
        if let (Some((field, text)), Some(payload)) = (corrupt, f.payload.as_object_mut()) {
            let keys: Vec<String> = payload.keys().cloned().collect();
            let key = &keys[field.index(keys.len())];
            match text {
                Some(t) => { payload.insert(key.clone(), json!(t)); }
                None => { payload.remove(key); }
            }
        }
        let mut source = scenario.last().clone();
        source.occurred_at = chrono::DateTime::from_timestamp(seconds, nanos).unwrap();
        source.metadata.user_id = user;
        source.metadata.correlation_id = correlation;
        let now = chrono::Utc::now();
        let fast = NewEvent::follow_on(&source, handler_name, index, f.clone(), now);
        let reference = NewEvent::follow_on_through_client_path(&source, handler_name, index, f, now);
        prop_assert_eq!(&fast, &reference);
        if let (Ok(fast), Ok(reference)) = (fast, reference) {
            prop_assert_eq!(
                serde_json::to_vec(&fast.into_envelope(9, now)).unwrap(),
                serde_json::to_vec(&reference.into_envelope(9, now)).unwrap()
            );
        }
    }
}

/// One installment as a test writes it: any number, date and amounts, in or out of what
/// the schema admits.
#[derive(Debug, Clone)]
struct Row {
    number: i64,
    due: chrono::NaiveDate,
    amounts: [crate::money::Money; 4],
}

fn money() -> impl Strategy<Value = crate::money::Money> {
    use crate::money::Money;
    use rust_decimal::Decimal;
    prop_oneof![
        8 => (0i64..100_000_000_000).prop_map(Money::from_cents),
        1 => any::<i64>().prop_map(Money::from_cents),
        1 => (any::<i64>(), 0u32..=6).prop_map(|(m, scale)| Money::round(Decimal::new(m, scale))),
        1 => Just(Money::ZERO),
    ]
}

fn row() -> impl Strategy<Value = Row> {
    (
        prop_oneof![8 => 1i64..=600, 1 => any::<i64>(), 1 => -1i64..=1, 1 => 600i64..=601],
        prop_oneof![
            8 => 0i32..40_000,
            1 => -800_000i32..3_000_000,
        ],
        [money(), money(), money(), money()],
    )
        .prop_map(|(number, days, amounts)| Row {
            number,
            due: chrono::NaiveDate::from_ymd_opt(2026, 1, 1)
                .and_then(|d| d.checked_add_signed(chrono::Duration::days(days.into())))
                .unwrap_or_default(),
            amounts,
        })
}

/// How the test writes the payload: as the schedule handler does, or with a key out of
/// order, an unknown key, a required key left out, or the wrong kind for a field.
#[derive(Debug, Clone, Copy)]
enum Shape {
    AsTheHandler,
    OutOfOrder,
    Unknown,
    Missing,
    WrongKind,
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// A schedule payload written as text by `Payload::write` decides exactly as the same
    /// payload built as a JSON value and validated by the client path: the same event
    /// (fingerprint included) or the same error, and the same stored bytes. Whatever the
    /// writer's checks accept is the general validator's unchanged value.
    #[test]
    fn a_payload_written_as_text_decides_as_its_value(
        loan_id in prop_oneof![8 => Just("L1".to_string()), 1 => id_text()],
        aggregate_id in prop_oneof![8 => Just("L1".to_string()), 1 => id_text()],
        schedule_id in id_text(),
        supersedes in prop::option::of(id_text()),
        rows in prop_oneof![8 => prop::collection::vec(row(), 0..4), 1 => row().prop_map(|r| vec![r; 601])],
        total in prop_oneof![8 => 1i64..=600, 1 => any::<i64>()],
        shape in prop_oneof![
            8 => Just(Shape::AsTheHandler),
            1 => Just(Shape::OutOfOrder),
            1 => Just(Shape::Unknown),
            1 => Just(Shape::Missing),
            1 => Just(Shape::WrongKind),
        ],
    ) {
        use crate::payload::Payload;
        let written = Payload::write("PaymentSchedule.Generated", 64, |p| {
            if let Shape::OutOfOrder = shape {
                p.integer("totalPayments", total);
            }
            p.id("loanId", &loan_id);
            p.list("payments", &rows, |w, r: &Row| {
                let [balance, interest, principal, amount] = r.amounts;
                w.money("balance", balance);
                w.date("dueDate", r.due);
                w.money("interest", interest);
                if !matches!(shape, Shape::Missing) {
                    w.integer("number", r.number);
                }
                w.money("principal", principal);
                w.money("total", amount);
            });
            if let Shape::WrongKind = shape {
                p.integer("scheduleId", 7);
            } else {
                p.id("scheduleId", &schedule_id);
            }
            if let Some(s) = &supersedes {
                p.id("supersedes", s);
            }
            if let Shape::Unknown = shape {
                p.id("supersedesX", "S");
            }
            if !matches!(shape, Shape::OutOfOrder) {
                p.integer("totalPayments", total);
            }
        });
        // The same payload built as a value, the way a JSON client would send it.
        let payments: Vec<Value> = rows.iter().map(|r| {
            let [balance, interest, principal, amount] = r.amounts;
            let mut row = json!({"balance": balance.to_string(), "dueDate": r.due.to_string(),
                "interest": interest.to_string(), "principal": principal.to_string(),
                "total": amount.to_string()});
            if !matches!(shape, Shape::Missing) {
                row["number"] = json!(r.number);
            }
            row
        }).collect();
        let mut value = json!({"loanId": loan_id, "payments": payments,
            "scheduleId": schedule_id, "totalPayments": total});
        if let Some(s) = &supersedes {
            value["supersedes"] = json!(s);
        }
        if let Shape::WrongKind = shape {
            value["scheduleId"] = json!(7);
        }
        if let Shape::Unknown = shape {
            value["supersedesX"] = json!("S");
        }
        prop_assert_eq!(&*written, &value);

        let loan = given([created("L1", "100000.00", "7.5", 12, "monthly")])
            .and(funded("L1", "100000.00", "2026-01-31T09:00:00Z"));
        let follow = |payload: Payload| crate::envelope::FollowOn {
            event_type: "PaymentSchedule.Generated",
            aggregate_type: "Loan",
            aggregate_id: aggregate_id.clone(),
            payload,
        };
        let now = chrono::Utc::now();
        let checked = written.is_checked_text();
        let fast = NewEvent::follow_on(loan.last(), PaymentHandler.name(), 0, follow(written), now);
        let reference = NewEvent::follow_on_through_client_path(
            loan.last(), PaymentHandler.name(), 0, follow(value.into()), now);
        prop_assert_eq!(&fast, &reference);
        if checked {
            prop_assert!(reference.is_ok() || aggregate_id != loan_id, "checked but refused: {:?}", reference);
        }
        if let (Ok(fast), Ok(reference)) = (fast, reference) {
            prop_assert_eq!(
                fast.into_envelope(9, now).to_json(),
                reference.into_envelope(9, now).to_json()
            );
        }
    }
}

/// The schedule handler's payloads take the text path: what the property test above
/// holds equal to the client path is what the handler stores.
#[test]
fn the_schedule_handler_writes_its_payload_as_checked_text() {
    let loan = given([created("L1", "100000.00", "7.5", 360, "monthly")]).and(funded(
        "L1",
        "100000.00",
        "2026-01-31T09:00:00Z",
    ));
    let out = raw_follow_ons(&PaymentHandler, &loan);
    let schedule = out
        .iter()
        .find(|f| f.event_type == "PaymentSchedule.Generated")
        .expect("a schedule");
    assert!(schedule.payload.is_checked_text());
    assert_eq!(
        schedule.payload["payments"].as_array().map(Vec::len),
        Some(360)
    );
}
