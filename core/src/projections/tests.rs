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
        history: g.history(),
        related: &[],
    };
    assert!(h.handle(&input).unwrap().is_empty());
    assert_eq!(h.read_model(&input), loan_summary(g.history()));
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
        .any(|st| status_text(*st) == *s));
    }
}
