//! In-process benchmarks of the pure core: the ingest path, schedule generation and the
//! loan fold. `cargo bench -p lending-events --bench core_paths [-- filter]`.
//!
//! The ingest path per request: decode the body, validate every envelope and payload,
//! assign the server fields (sequence, recordedAt), and encode what goes over the wire: the
//! DynamoDB item JSON (event item + eventId guard, in the TransactWriteItems shape) and, per
//! subscribed domain, the SQS SendMessageBatch entry.

#[path = "harness.rs"]
mod harness;

// Allocate as the functions do (event-adapters' global allocator).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::hint::black_box;
use std::str::FromStr;

use chrono::{DateTime, Duration, NaiveDate, Utc};
use lending_events::catalog::Catalog;
use lending_events::domain::Domain;
use lending_events::envelope::{format_time, WriteContext};
use lending_events::handlers::{DomainHandler, HandlerInput};
use lending_events::ingest::{parse_body_in, Limits};
use lending_events::routing::RoutingTable;
use lending_events::schedule::{generate, Amortization, Frequency, LoanTerms};
use lending_events::state::LoanState;
use lending_events::{EventEnvelope, Metadata, Money, NewEvent, Rate};
use serde::Serialize;
use serde_json::{json, Value};
use uuid::Uuid;

/// A `Loan.Modified` of about 1 KB serialised (the `changes` object carries the bulk),
/// with client eventId and metadata: the "typical 1 KB event".
fn event_1kb(i: usize) -> Value {
    json!({
        "eventId": Uuid::from_u128(0x5eed_0000_0000_4000_8000_0000_0000_0000 + i as u128),
        "eventType": "Loan.Modified",
        "eventVersion": 1,
        "aggregateType": "Loan",
        "aggregateId": format!("L-BENCH-{:06}", i),
        "occurredAt": "2026-03-01T10:15:30.123Z",
        "payload": {
            "loanId": format!("L-BENCH-{:06}", i),
            "interestRate": "7.25",
            "termMonths": 360,
            "modifiedBy": "U-underwriter-0042",
            "modifiedAt": "2026-03-01T10:15:30Z",
            "changes": {
                "reason": "Rate reduction approved by the credit committee after the annual review of the borrower's financial statements and the property valuation report",
                "previousRate": "7.50",
                "previousTermMonths": 300,
                "approvals": ["U-credit-committee-01", "U-credit-committee-02", "U-risk-officer-07"],
                "ticket": "CHG-2026-000123",
                "notes": "Borrower requested an extension of the term to reduce the monthly payment; collateral coverage remains above policy minimum; no exceptions to policy were granted."
            }
        },
        "metadata": {
            "userId": "U-underwriter-0042",
            "correlationId": format!("corr-{:06}", i),
            "source": "loan-servicing-portal"
        }
    })
}

/// A `Loan.Funded` (about 0.5 KB), routed to four domains (payment, compliance, fund,
/// notification): the "4 subscribers" case of the cost model.
fn event_funded(i: usize) -> Value {
    json!({
        "eventId": Uuid::from_u128(0xf00d_0000_0000_4000_8000_0000_0000_0000 + i as u128),
        "eventType": "Loan.Funded",
        "aggregateType": "Loan",
        "aggregateId": format!("L-FUND-{:06}", i),
        "payload": {"loanId": format!("L-FUND-{:06}", i), "fundedAmount": "250000.00", "fundedAt": "2026-03-01T10:00:00Z"},
        "metadata": {"userId": "U-closer-0007", "correlationId": format!("corr-f-{:06}", i), "source": "closing-desk"}
    })
}

fn body(events: Vec<Value>) -> Vec<u8> {
    if events.len() == 1 {
        serde_json::to_vec(&events[0]).unwrap()
    } else {
        serde_json::to_vec(&json!({ "events": events })).unwrap()
    }
}

/// A DynamoDB string attribute, `{"S": "..."}`, borrowing its text.
#[derive(Serialize)]
struct S<'a> {
    #[serde(rename = "S")]
    s: &'a str,
}

/// A DynamoDB number attribute, `{"N": "..."}`.
#[derive(Serialize)]
struct N<'a> {
    #[serde(rename = "N")]
    n: &'a str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct EventItem<'a> {
    pk: S<'a>,
    sk: N<'a>,
    kind: S<'a>,
    envelope: S<'a>,
    event_id: S<'a>,
    event_type: S<'a>,
    tenant_id: S<'a>,
    recorded_at: S<'a>,
    type_key: S<'a>,
    corr_key: S<'a>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct GuardItem<'a> {
    pk: S<'a>,
    sk: N<'a>,
    kind: S<'a>,
    stream_pk: S<'a>,
    seq: N<'a>,
    fingerprint: S<'a>,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct Put<'a, T> {
    table_name: &'a str,
    condition_expression: &'a str,
    item: T,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct SqsEntry<'a> {
    id: usize,
    message_body: &'a str,
    message_group_id: &'a str,
    message_deduplication_id: &'a str,
    queue_url: &'a str,
}

/// The event item and guard as `TransactWriteItems` JSON (what goes on the wire), encoded
/// from borrowed parts: the envelope string is written, never copied into a tree.
fn encode_item(e: &EventEnvelope, envelope: &str, fingerprint: &str, out: &mut Vec<u8>) {
    let tenant = &e.metadata.tenant_id;
    let stream_pk = format!("A#{}", e.stream().key());
    let seq = e.sequence.to_string();
    let event_id = e.event_id.to_string();
    let item = EventItem {
        pk: S { s: &stream_pk },
        sk: N { n: &seq },
        kind: S { s: "event" },
        envelope: S { s: envelope },
        event_id: S { s: &event_id },
        event_type: S { s: &e.event_type },
        tenant_id: S { s: tenant },
        recorded_at: S {
            s: &format_time(&e.recorded_at),
        },
        type_key: S {
            s: &format!("{tenant}#{}", e.event_type),
        },
        corr_key: S {
            s: &format!("{tenant}#{}", e.metadata.correlation_id),
        },
    };
    let guard_pk = format!("E#{tenant}#{event_id}");
    let guard = GuardItem {
        pk: S { s: &guard_pk },
        sk: N { n: "0" },
        kind: S { s: "eventId" },
        stream_pk: S { s: &stream_pk },
        seq: N { n: &seq },
        fingerprint: S { s: fingerprint },
    };
    serde_json::to_writer(&mut *out, &put(item)).unwrap();
    serde_json::to_writer(&mut *out, &put(guard)).unwrap();
}

/// A conditional Put of a new item, as in `TransactWriteItems`.
fn put<T>(item: T) -> Put<'static, T> {
    Put {
        table_name: "lendingos-events",
        condition_expression: "attribute_not_exists(pk)",
        item,
    }
}

/// One SendMessageBatch entry per subscribed domain (dispatch reuses the stored envelope).
fn encode_routes(
    routing: &RoutingTable,
    e: &EventEnvelope,
    envelope: &str,
    out: &mut Vec<u8>,
) -> usize {
    let group = e.stream().message_group();
    let dedup = e.event_id.to_string();
    let mut n = 0;
    for domain in routing.domains_for(&e.event_type) {
        let entry = SqsEntry {
            id: n,
            message_body: envelope,
            message_group_id: &group,
            message_deduplication_id: &dedup,
            queue_url: domain.as_str(),
        };
        serde_json::to_writer(&mut *out, &entry).unwrap();
        n += 1;
    }
    n
}

/// The whole ingest path for one request; returns bytes encoded (so nothing is optimised away).
fn ingest(catalog: &Catalog, routing: &RoutingTable, body: &[u8], now: DateTime<Utc>) -> usize {
    let ctx = WriteContext::client("acme-bank", "bench", now);
    let mut id = 0u128;
    let mut new_id = || {
        id += 1;
        Uuid::from_u128(id)
    };
    let events: Vec<NewEvent> =
        parse_body_in(catalog, body, &Limits::default(), &ctx, &mut new_id).expect("valid body");
    let mut out = Vec::with_capacity(body.len() * 8);
    for (i, e) in events.into_iter().enumerate() {
        let fingerprint = e.fingerprint.clone();
        let env = e.into_envelope(i as u64 + 1, now);
        let envelope = serde_json::to_string(&env).unwrap();
        encode_item(&env, &envelope, &fingerprint, &mut out);
        encode_routes(routing, &env, &envelope, &mut out);
    }
    out.len()
}

fn loan_history(n: usize) -> Vec<EventEnvelope> {
    let t0: DateTime<Utc> = "2026-01-01T00:00:00Z".parse().unwrap();
    let mk = |seq: usize, event_type: &str, payload: Value| EventEnvelope {
        event_id: Uuid::from_u128(seq as u128 + 1),
        event_type: event_type.into(),
        event_version: 1,
        domain: "loan".into(),
        aggregate_type: "Loan".into(),
        aggregate_id: "L-FOLD-1".into(),
        sequence: seq as u64,
        occurred_at: t0 + Duration::minutes(seq as i64),
        recorded_at: t0 + Duration::minutes(seq as i64),
        payload: payload.into(),
        metadata: Metadata {
            user_id: None,
            correlation_id: "corr".into(),
            causation_id: None,
            source: None,
            tenant_id: "acme-bank".into(),
            principal: None,
        },
    };
    let mut h = vec![
        mk(
            1,
            "Loan.Created",
            json!({"loanId": "L-FOLD-1", "borrowerId": "B-1", "amount": "50000000.00", "interestRate": "6.5", "termMonths": 600, "amortization": "amortized", "paymentFrequency": "monthly"}),
        ),
        mk(
            2,
            "Loan.Approved",
            json!({"loanId": "L-FOLD-1", "approvedBy": "U-1", "approvedAt": "2026-01-01T00:01:00Z"}),
        ),
        mk(
            3,
            "Loan.Funded",
            json!({"loanId": "L-FOLD-1", "fundedAmount": "50000000.00", "fundedAt": "2026-01-01T00:02:00Z"}),
        ),
    ];
    // Small payments, far below the installment, so the loan stays open all the way.
    for seq in 4..=n {
        h.push(mk(seq, "Payment.Received", json!({"paymentId": format!("P-{seq}"), "loanId": "L-FOLD-1", "amount": "125.00", "method": "ach", "receivedAt": "2026-02-01T00:00:00Z"})));
    }
    h
}

/// A stored event of a loan (as the store hands it to handlers).
fn stored_event(seq: u64, event_type: &str, payload: Value) -> EventEnvelope {
    let t0: DateTime<Utc> = "2026-01-31T09:00:00Z".parse().unwrap();
    EventEnvelope {
        event_id: Uuid::from_u128(0xbe9c_0000_0000_4000_8000_0000_0000_0000 + seq as u128),
        event_type: event_type.into(),
        event_version: 1,
        domain: "loan".into(),
        aggregate_type: "Loan".into(),
        aggregate_id: "L-H-1".into(),
        sequence: seq,
        occurred_at: t0,
        recorded_at: t0,
        payload: payload.into(),
        metadata: Metadata {
            user_id: Some("U-1".into()),
            correlation_id: "corr-h-1".into(),
            causation_id: None,
            source: None,
            tenant_id: "acme-bank".into(),
            principal: Some("bench".into()),
        },
    }
}

/// A loan created and funded (a `months`-period schedule), the funding last.
fn funded_history(months: u32) -> Vec<EventEnvelope> {
    vec![
        stored_event(
            1,
            "Loan.Created",
            json!({"loanId": "L-H-1", "borrowerId": "B-1", "amount": "250000.00", "interestRate": "6.5", "termMonths": months, "amortization": "amortized", "paymentFrequency": "monthly", "fundId": "F-1"}),
        ),
        stored_event(
            2,
            "Loan.Approved",
            json!({"loanId": "L-H-1", "approvedBy": "U-1", "approvedAt": "2026-01-30T09:00:00Z"}),
        ),
        stored_event(
            3,
            "Loan.Funded",
            json!({"loanId": "L-H-1", "fundedAmount": "250000.00", "fundedAt": "2026-01-31T09:00:00Z"}),
        ),
    ]
}

/// Per handled message, the three costs the handler targets compare: the decision alone,
/// the decision plus one serialisation of its output (the floor), and what the runner
/// does (decision, each follow-on built and validated through the catalog, its stored
/// envelope serialised once).
fn handler_paths(b: &harness::Bench, name: &str, h: &dyn DomainHandler, history: &[EventEnvelope]) {
    let input = HandlerInput {
        prior: None,
        event: history.last().unwrap(),
        history,
        related: &[],
    };
    assert!(
        !h.handle(&input).unwrap().is_empty(),
        "{name}: no follow-ons"
    );
    b.run(&format!("handler/{name}: decision"), 1, "msgs", || {
        h.handle(black_box(&input)).unwrap()
    });
    b.run(
        &format!("handler/{name}: decision + one serialisation"),
        1,
        "msgs",
        || {
            let out = h.handle(black_box(&input)).unwrap();
            out.iter()
                .map(|f| {
                    // Into a buffer as large as the envelope's, as the validated row's, by
                    // serde_json; a payload the handler wrote as text is that text.
                    let mut text = Vec::with_capacity(1024);
                    if f.payload.is_checked_text() {
                        f.payload.write_to(&mut text);
                    } else {
                        serde_json::to_writer(&mut text, &*f.payload).unwrap();
                    }
                    text.len()
                })
                .sum::<usize>()
        },
    );
    let now: DateTime<Utc> = "2026-03-01T10:15:31.456Z".parse().unwrap();
    b.run(
        &format!("handler/{name}: decision + validated follow-ons, serialised"),
        1,
        "msgs",
        || {
            let out = h.handle(black_box(&input)).unwrap();
            let mut n = 0;
            for (i, f) in out.into_iter().enumerate() {
                let e = NewEvent::follow_on(input.event, h.name(), i, f, now).unwrap();
                n += e.into_envelope(4, now).to_json().len();
            }
            n
        },
    );
}

fn main() {
    let b = harness::Bench::from_args();
    let catalog = Catalog::builtin();
    let routing = RoutingTable::standard();
    let now: DateTime<Utc> = "2026-03-01T10:15:31.456Z".parse().unwrap();

    let one = body(vec![event_1kb(0)]);
    let many = body((0..25).map(event_1kb).collect());
    let funded_one = body(vec![event_funded(0)]);
    let funded_many = body((0..25).map(event_funded).collect());
    eprintln!(
        "bodies: 1x Loan.Modified {} B, 25x {} B; 1x Loan.Funded {} B, 25x {} B",
        one.len(),
        many.len(),
        funded_one.len(),
        funded_many.len()
    );
    b.run(
        "ingest/1-event request (1 KB, 1 route)",
        1,
        "events",
        || ingest(catalog, &routing, &one, now),
    );
    b.run(
        "ingest/25-event request (1 KB, 1 route)",
        25,
        "events",
        || ingest(catalog, &routing, &many, now),
    );
    b.run(
        "ingest/1-event request (Loan.Funded, 4 routes)",
        1,
        "events",
        || ingest(catalog, &routing, &funded_one, now),
    );
    b.run(
        "ingest/25-event request (Loan.Funded, 4 routes)",
        25,
        "events",
        || ingest(catalog, &routing, &funded_many, now),
    );
    // The parts, to see where the time goes.
    let ctx = WriteContext::client("acme-bank", "bench", now);
    b.run(
        "ingest.part/decode+validate 25 (parse_body_in)",
        25,
        "events",
        || {
            let mut new_id = Uuid::nil;
            parse_body_in(catalog, &many, &Limits::default(), &ctx, &mut new_id).unwrap()
        },
    );
    b.run(
        "ingest.part/json decode only 25 (serde_json::Value)",
        25,
        "events",
        || serde_json::from_slice::<Value>(&many).unwrap(),
    );

    let start = NaiveDate::from_ymd_opt(2026, 1, 31).unwrap();
    for months in [12u32, 360, 600] {
        let terms = LoanTerms {
            principal: Money::from_str("100000.00").unwrap(),
            rate: Rate::from_str("7.5").unwrap(),
            term_months: months,
            amortization: Amortization::Amortized,
            frequency: Frequency::Monthly,
        };
        b.run(
            &format!("schedule/generate {months} periods"),
            1,
            "schedules",
            || generate(black_box(&terms), start).unwrap(),
        );
    }

    let handlers = lending_events::handlers::all();
    let by_name = |n: &str| handlers.iter().find(|h| h.name() == n).unwrap().as_ref();
    let schedule_handler = by_name(lending_events::state::loan::SCHEDULE_HANDLER);
    for months in [12u32, 360] {
        handler_paths(
            &b,
            &format!("schedule {months}"),
            schedule_handler,
            &funded_history(months),
        );
    }
    // A payment on the funded loan with its 360-period schedule stored.
    let mut paying = funded_history(360);
    let funding = paying.last().unwrap().clone();
    let schedule = schedule_handler
        .handle(&HandlerInput {
            prior: None,
            event: &funding,
            history: &paying,
            related: &[],
        })
        .unwrap()
        .remove(0);
    let schedule =
        NewEvent::follow_on(&funding, schedule_handler.name(), 0, schedule, now).unwrap();
    paying.push(schedule.into_envelope(4, now));
    paying.push(stored_event(5, "Payment.Received", json!({"paymentId": "P-1", "loanId": "L-H-1", "amount": "1580.17", "method": "ach", "receivedAt": "2026-03-01T09:00:00Z"})));
    handler_paths(
        &b,
        "payment application",
        by_name("payment-application"),
        &paying,
    );
    // The read model (the projection domain) writes a summary, not follow-ons.
    for h in &handlers {
        if !matches!(h.domain(), Domain::Payment | Domain::Projection)
            && h.subscriptions().contains(&"Loan.Funded")
        {
            handler_paths(
                &b,
                &format!("{} (Loan.Funded)", h.name()),
                h.as_ref(),
                &funded_history(360),
            );
        }
    }

    let history = loan_history(10_000);
    let folded = LoanState::fold(&history);
    assert_eq!(folded.version, 10_000);
    b.run("fold/loan with 10,000 events", 10_000, "events", || {
        LoanState::fold(black_box(&history))
    });
}
