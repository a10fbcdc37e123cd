//! Each domain function's record path on a 10-message SQS batch, with the AWS calls
//! replaced by the in-memory ports ([`event_adapters::store::memory`], [`event_adapters::ledger::memory`]): decode, switch check,
//! idempotency claim, history load, the pure handler, follow-on validation and append,
//! completion, statistics. `cargo bench -p event-adapters --bench handlers [-- filter]`.
//!
//! Every iteration starts from the same seeded store and an empty ledger (that reset is
//! inside the timing and is small: cloning 30-40 envelopes). It also prints the AWS calls
//! the DynamoDB ports would have made per message (`calls/msg`).

#[path = "../../../core/benches/harness.rs"]
mod harness;

use std::time::Duration;

use aws_lambda_events::sqs::{SqsEvent, SqsMessage};
use chrono::{DateTime, Utc};
use event_adapters::ledger::memory::MemoryLedger;
use event_adapters::queue::MemoryQueue;
use event_adapters::runner::{BatchRunner, RetryPolicy};
use event_adapters::store::memory::MemoryStore;
use lending_events::handlers;
use lending_events::{Domain, EventEnvelope, Metadata};
use serde_json::{json, Value};
use uuid::Uuid;

const TENANT: &str = "acme-bank";

fn envelope(
    agg_type: &str,
    agg_id: &str,
    seq: u64,
    event_type: &str,
    domain: &str,
    payload: Value,
) -> EventEnvelope {
    let t0: DateTime<Utc> = "2026-01-31T09:00:00Z".parse().unwrap();
    EventEnvelope {
        event_id: Uuid::new_v5(&Uuid::NAMESPACE_OID, format!("{agg_id}/{seq}").as_bytes()),
        event_type: event_type.into(),
        event_version: 1,
        domain: domain.into(),
        aggregate_type: agg_type.into(),
        aggregate_id: agg_id.into(),
        sequence: seq,
        occurred_at: t0,
        recorded_at: t0,
        payload: payload.into(),
        metadata: Metadata {
            user_id: Some("U-1".into()),
            correlation_id: format!("corr-{agg_id}"),
            causation_id: None,
            source: Some("bench".into()),
            tenant_id: TENANT.into(),
            principal: None,
        },
    }
}

/// A funded loan's history (Created, Approved, Funded), 360 monthly periods.
fn funded_loan(id: &str) -> Vec<EventEnvelope> {
    vec![
        envelope(
            "Loan",
            id,
            1,
            "Loan.Created",
            "loan",
            json!({"loanId": id, "borrowerId": "B-1", "amount": "250000.00", "interestRate": "6.5", "termMonths": 360, "amortization": "amortized", "paymentFrequency": "monthly", "fundId": "F-1"}),
        ),
        envelope(
            "Loan",
            id,
            2,
            "Loan.Approved",
            "loan",
            json!({"loanId": id, "approvedBy": "U-2", "approvedAt": "2026-01-30T09:00:00Z"}),
        ),
        envelope(
            "Loan",
            id,
            3,
            "Loan.Funded",
            "loan",
            json!({"loanId": id, "fundedAmount": "250000.00", "fundedAt": "2026-01-31T09:00:00Z"}),
        ),
    ]
}

fn message(e: &EventEnvelope, i: usize) -> SqsMessage {
    let mut m = SqsMessage::default();
    m.message_id = Some(format!("m-{i}"));
    m.receipt_handle = Some(format!("r-{i}"));
    m.body = Some(serde_json::to_string(e).unwrap());
    m.attributes
        .insert("MessageGroupId".into(), e.stream().message_group());
    m.attributes
        .insert("ApproximateReceiveCount".into(), "1".into());
    m
}

struct Case {
    name: &'static str,
    domain: Domain,
    seed: Vec<EventEnvelope>,
    delivered: Vec<EventEnvelope>,
}

fn cases() -> Vec<Case> {
    let loans: Vec<Vec<EventEnvelope>> = (0..10).map(|i| funded_loan(&format!("L-{i}"))).collect();
    let funded: Vec<EventEnvelope> = loans.iter().map(|h| h[2].clone()).collect();
    let mut with_payment = Vec::new();
    let mut payments = Vec::new();
    for (i, h) in loans.iter().enumerate() {
        let id = format!("L-{i}");
        let p = envelope(
            "Loan",
            &id,
            4,
            "Payment.Received",
            "payment",
            json!({"paymentId": format!("P-{i}"), "loanId": id, "amount": "1580.17", "method": "ach", "receivedAt": "2026-03-01T09:00:00Z"}),
        );
        with_payment.extend(h.iter().cloned());
        with_payment.push(p.clone());
        payments.push(p);
    }
    let draws: Vec<EventEnvelope> = (0..10)
        .map(|i| envelope("Draw", &format!("D-{i}"), 1, "Draw.Requested", "draw", json!({"drawId": format!("D-{i}"), "loanId": format!("L-{i}"), "amount": "10000.00"})))
        .collect();
    let all_loans: Vec<EventEnvelope> = loans.concat();
    vec![
        Case {
            name: "payment-handler (Loan.Funded -> 360-period schedule)",
            domain: Domain::Payment,
            seed: all_loans.clone(),
            delivered: funded.clone(),
        },
        Case {
            name: "payment-handler (Payment.Received -> Payment.Applied)",
            domain: Domain::Payment,
            seed: with_payment,
            delivered: payments,
        },
        Case {
            name: "compliance-handler (Loan.Funded -> 3 documents)",
            domain: Domain::Compliance,
            seed: all_loans.clone(),
            delivered: funded.clone(),
        },
        Case {
            name: "fund-handler (Loan.Funded)",
            domain: Domain::Fund,
            seed: all_loans.clone(),
            delivered: funded.clone(),
        },
        Case {
            name: "notification-handler (Loan.Funded)",
            domain: Domain::Notification,
            seed: all_loans,
            delivered: funded,
        },
        Case {
            name: "draw-handler (Draw.Requested)",
            domain: Domain::Draw,
            seed: draws.clone(),
            delivered: draws,
        },
    ]
}

fn main() {
    let b = harness::Bench::from_args();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    // Batch statistics go out as EMF lines on stderr (stdout on Lambda): run with 2>/dev/null.
    for case in cases() {
        let store = MemoryStore::new();
        let runner = BatchRunner::new(
            store.clone(),
            MemoryLedger::over(&store),
            handlers::for_domain(case.domain, &handlers::HandlerConfig::default()),
            MemoryQueue::without_dlq(),
            RetryPolicy::default(),
        );
        let batch = {
            let mut ev = SqsEvent::default();
            ev.records = case
                .delivered
                .iter()
                .enumerate()
                .map(|(i, e)| message(e, i))
                .collect();
            ev
        };
        let lease = Duration::from_secs(60);
        let run = || {
            runner.store().clear();
            runner.ledger().clear();
            runner.store().seed(case.seed.iter().cloned());
            let resp = rt.block_on(runner.handle(batch.clone(), lease));
            assert!(
                resp.batch_item_failures.is_empty(),
                "{}: {:?}",
                case.name,
                resp.batch_item_failures.len()
            );
        };
        // One checked run for the call counts.
        runner.store().calls.reset();
        runner.ledger().calls.reset();
        run();
        let stored = runner.store().len() - case.seed.len();
        let mut calls = runner.store().calls.snapshot();
        calls.extend(runner.ledger().calls.snapshot());
        let total: u64 = calls.iter().map(|(_, n)| n).sum();
        println!(
            "{}: {} follow-ons per batch; DynamoDB calls per message {:.1} ({})",
            case.name,
            stored,
            total as f64 / 10.0,
            calls
                .iter()
                .map(|(k, v)| format!("{k} {v}"))
                .collect::<Vec<_>>()
                .join(", ")
        );
        println!(
            "BENCHCALLS {{\"name\":\"{}\",\"messages\":10,\"follow_ons\":{stored},\"calls\":{{{}}}}}",
            case.name,
            calls.iter().map(|(k, v)| format!("\"{k}\":{v}")).collect::<Vec<_>>().join(",")
        );
        b.run(&format!("batch of 10/{}", case.name), 10, "msgs", run);
    }
}
