use chrono::NaiveDate;
use serde_json::{json, Value};

use super::*;
use crate::handlers::testkit::given;

fn loan_created(id: &str, fund: &str, amount: &str) -> Value {
    json!({"eventType": "Loan.Created", "aggregateType": "Loan", "aggregateId": id,
        "occurredAt": "2026-01-02T00:00:00Z",
        "payload": {"loanId": id, "borrowerId": "B1", "amount": amount, "interestRate": "12",
            "termMonths": 12, "amortization": "amortized", "paymentFrequency": "monthly",
            "fundId": fund}})
}

fn loan_funded(id: &str, amount: &str) -> Value {
    json!({"eventType": "Loan.Funded", "aggregateType": "Loan", "aggregateId": id,
        "occurredAt": "2026-01-10T00:00:00Z",
        "payload": {"loanId": id, "fundedAmount": amount, "fundedAt": "2026-01-10T00:00:00Z"}})
}

fn payment(id: &str, payment_id: &str, amount: &str, at: &str) -> Value {
    json!({"eventType": "Payment.Received", "aggregateType": "Loan", "aggregateId": id,
        "occurredAt": at,
        "eventVersion": 2,
        "payload": {"loanId": id, "paymentId": payment_id, "amount": amount, "receivedAt": at,
            "paymentMethod": "ach"}})
}

#[test]
fn a_funded_loan_is_current_until_its_first_due_date_passes() {
    let g = given([
        loan_created("L1", "F1", "12000"),
        loan_funded("L1", "12000"),
    ]);
    let s = loan_summary(g.history()).unwrap();
    assert_eq!(s.status, LoanStatus::Funded);
    assert_eq!(s.tenant_id, crate::handlers::testkit::TENANT);
    assert_eq!(
        (s.loan_id.as_str(), s.fund_id.as_deref()),
        ("L1", Some("F1"))
    );
    assert_eq!(s.borrower_id.as_deref(), Some("B1"));
    assert_eq!(s.outstanding_principal, "12000.00".parse().unwrap());
    assert_eq!(s.funded_amount, Some("12000".parse().unwrap()));
    let next = s.next_due.clone().unwrap();
    assert_eq!(next.installment, 1);
    assert_eq!(next.due_date.to_string(), "2026-02-10");
    assert_eq!((s.days_past_due, s.delinquent), (0, false));
    assert_eq!(s.version, 2);
    assert_eq!(s.last_event.event_type, "Loan.Funded");

    // A payment 20 days after the first due date, too small to cover it: 20 days past due.
    let g = g.and(payment("L1", "P1", "10.00", "2026-03-02T00:00:00Z"));
    let s = loan_summary(g.history()).unwrap();
    assert_eq!((s.days_past_due, s.delinquent), (20, true));
    assert_eq!(s.last_event.event_type, "Payment.Received");
    assert_eq!(s.version, 3);
}

#[test]
fn no_summary_without_a_created_loan() {
    assert!(loan_summary(&[]).is_none());
    let g = given([loan_funded("L9", "100")]);
    assert!(loan_summary(g.history()).is_none());
}

#[test]
fn portfolio_totals_are_exact_sums() {
    let a = given([
        loan_created("L1", "F1", "1000.10"),
        loan_funded("L1", "1000.10"),
    ]);
    let b = given([loan_created("L2", "F1", "2000.20")]);
    let c = given([
        loan_created("L3", "F1", "0.30"),
        loan_funded("L3", "0.30"),
        payment("L3", "P1", "0.01", "2026-04-01T00:00:00Z"),
    ]);
    let loans: Vec<LoanSummary> = [a, b, c]
        .iter()
        .map(|g| loan_summary(g.history()).unwrap())
        .collect();
    let p = portfolio("F1", &loans);
    assert_eq!(p.loans, 3);
    assert_eq!(p.committed.to_string(), "3000.60");
    assert_eq!(p.funded.to_string(), "1000.40");
    let outstanding: Money = loans.iter().map(|l| l.outstanding_principal).sum();
    assert_eq!(p.outstanding_principal, outstanding);
    assert_eq!(p.by_status.get("funded"), Some(&2));
    assert_eq!(p.by_status.get("created"), Some(&1));
    assert_eq!(p.delinquent_loans, 1);
    assert_eq!(p.delinquent_principal, loans[2].outstanding_principal);
    // Serialised as exact decimal text.
    let v = serde_json::to_value(&p).unwrap();
    assert_eq!(v["committed"], "3000.60");
}

#[test]
fn the_projection_handler_emits_nothing_and_returns_the_summary() {
    use crate::handlers::projection::LoanSummaryProjection;
    use crate::handlers::{DomainHandler, HandlerInput};
    let g = given([loan_created("L1", "F1", "500"), loan_funded("L1", "500")]);
    let h = LoanSummaryProjection;
    let input = HandlerInput {
        event: g.last(),
        prior: None,
        history: g.history(),
        related: &[],
    };
    assert!(h.handle(&input).unwrap().is_empty());
    assert_eq!(h.read_model(&input), loan_summary(g.history()));
    // From a snapshot of the first event and the tail: the same summary.
    let snapshot = crate::state::Folded::Loan(LoanState::fold(&g.history()[..1]));
    let from_snapshot = HandlerInput {
        event: g.last(),
        prior: Some(&snapshot),
        history: &g.history()[1..],
        related: &[],
    };
    assert_eq!(h.read_model(&from_snapshot), loan_summary(g.history()));
    assert_eq!(h.domain(), crate::Domain::Projection);
    for t in h.subscriptions() {
        let spec = crate::catalog::lookup(t).unwrap();
        assert_eq!(spec.aggregate_type, "Loan", "{t}");
    }
    for s in STATUSES {
        assert!([
            LoanStatus::Created,
            LoanStatus::Approved,
            LoanStatus::Funded,
            LoanStatus::PaidOff,
            LoanStatus::Defaulted
        ]
        .iter()
        .any(|st| st.as_str() == *s));
    }
}

/// What the daily job decides on `as_of` (run at noon that day), stored in `h`.
fn late_run(h: &mut Vec<crate::envelope::EventEnvelope>, as_of: &str) {
    let as_of: NaiveDate = as_of.parse().unwrap();
    let now = as_of.and_hms_opt(12, 0, 0).unwrap().and_utc();
    let new = crate::late::late_events(h, as_of, now).unwrap();
    let mut seq = h.last().map_or(0, |e| e.sequence);
    for e in new {
        seq += 1;
        h.push(e.into_envelope(seq, now));
    }
}

/// The summary's money and next installment are the state view's, for the same history.
fn assert_agrees_with_the_state_view(h: &[crate::envelope::EventEnvelope]) -> LoanSummary {
    let s = loan_summary(h).unwrap();
    let state = LoanState::fold(h);
    let view = state.view();
    let text = |v: &Value| v.as_str().unwrap().to_string();
    assert_eq!(
        s.outstanding_principal.to_string(),
        text(&view["outstandingPrincipal"])
    );
    assert_eq!(s.fees_owed.to_string(), text(&view["feesOwed"]));
    assert_eq!(s.refunds_due.to_string(), text(&view["refundsDue"]));
    assert_eq!(
        s.next_due.as_ref().map(|d| d.installment),
        view["nextDue"]["installment"].as_u64().map(|n| n as u32)
    );
    assert_eq!(
        s.next_due.as_ref().map(|d| d.amount.to_string()),
        view["nextDue"]["amount"].as_str().map(str::to_string)
    );
    assert_eq!(s.status.as_str(), view["status"]);
    s
}

#[test]
fn late_fees_delinquency_and_held_over_payments_come_from_the_loan_fold() {
    use crate::handlers::payment::{PaymentApplication, PaymentHandler};
    use crate::handlers::testkit::{run, stored};
    let mut h = Vec::new();
    stored(
        &mut h,
        json!({"eventType": "Loan.Created", "aggregateType": "Loan", "aggregateId": "L1",
            "occurredAt": "2026-01-02T00:00:00Z",
            "payload": {"loanId": "L1", "borrowerId": "B1", "amount": "100000.00",
                "interestRate": "7.5", "termMonths": 12, "amortization": "amortized",
                "paymentFrequency": "monthly", "fundId": "F1"}}),
    );
    stored(
        &mut h,
        json!({"eventType": "Loan.Funded", "aggregateType": "Loan", "aggregateId": "L1",
            "occurredAt": "2026-01-31T09:00:00Z",
            "payload": {"loanId": "L1", "fundedAmount": "100000.00",
                "fundedAt": "2026-01-31T09:00:00Z"}}),
    );
    run(&PaymentHandler, &mut h, &[]).unwrap();
    let s = assert_agrees_with_the_state_view(&h);
    assert_eq!((s.days_past_due, s.delinquent), (0, false));
    assert_eq!(
        s.next_due.as_ref().unwrap().due_date.to_string(),
        "2026-02-28"
    );

    // Sixteen days after the first due date the job records the late notice, the fee and
    // the status change: the summary is delinquent and owes the fee.
    late_run(&mut h, "2026-03-16");
    let s = assert_agrees_with_the_state_view(&h);
    assert_eq!(s.last_event.event_type, "Loan.StatusChanged");
    assert_eq!(s.days_past_due, 16);
    assert_eq!(s.delinquency, crate::state::loan::Delinquency::Delinquent);
    assert!(s.delinquent);
    assert_eq!(s.fees_owed.to_string(), "433.79");
    assert_eq!(s.next_due.as_ref().unwrap().fee.to_string(), "433.79");
    assert_eq!(s.version, h.last().unwrap().sequence);

    // A payment of the payoff quote and 100.00 more: paid off, the 100.00 is held.
    let state = LoanState::fold(&h);
    let on: NaiveDate = "2026-03-20".parse().unwrap();
    let amount = state.payoff_amount(on) + "100.00".parse::<Money>().unwrap();
    stored(
        &mut h,
        json!({"eventType": "Payment.Received", "aggregateType": "Loan", "aggregateId": "L1",
            "occurredAt": "2026-03-20T12:00:00Z",
            "payload": {"paymentId": "P1", "loanId": "L1", "amount": amount, "method": "wire",
                "receivedAt": "2026-03-20T12:00:00Z"}}),
    );
    run(&PaymentApplication, &mut h, &[]).unwrap();
    let s = assert_agrees_with_the_state_view(&h);
    assert_eq!(s.status, LoanStatus::PaidOff);
    assert_eq!(s.refunds_due.to_string(), "100.00");
    assert_eq!(s.outstanding_principal, Money::ZERO);
    assert_eq!(
        (s.next_due.is_none(), s.days_past_due, s.delinquent),
        (true, 0, false)
    );
    // Every event the handlers wrote on the loan's stream is one the projection hears.
    for e in &h {
        assert!(
            loan_stream_types().contains(&e.event_type.as_str()),
            "{}",
            e.event_type
        );
    }
}

#[test]
fn the_projection_hears_every_loan_stream_type_of_the_catalog() {
    let types = loan_stream_types();
    for spec in crate::catalog::CATALOG {
        assert_eq!(
            types.contains(&spec.event_type),
            spec.aggregate_type == "Loan",
            "{}",
            spec.event_type
        );
    }
    for t in [
        "Payment.LateFeeAssessed",
        "Payment.ExcessHeld",
        "Refund.Due",
        "Loan.StatusChanged",
    ] {
        assert!(types.contains(&t), "{t}");
    }
}
