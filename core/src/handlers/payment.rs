//! The payment domain: schedules (on funding and on term changes) and payment
//! application. The rules are [`LoanState`]'s; these handlers publish their outcome.

use serde_json::json;

use super::{loan_before, rejected, DomainHandler, HandlerInput};
use crate::domain::Domain;
use crate::envelope::{format_time, EventEnvelope, FollowOn};
use crate::error::CoreError;
use crate::state::loan::{PaymentIn, SCHEDULE_HANDLER};

/// `Loan.Funded` -> `PaymentSchedule.Generated`; `Loan.Modified` (new rate or term) ->
/// a regenerated `PaymentSchedule.Generated` that supersedes the current one.
pub struct PaymentHandler;

impl DomainHandler for PaymentHandler {
    fn name(&self) -> &'static str {
        SCHEDULE_HANDLER
    }

    fn domain(&self) -> Domain {
        Domain::Payment
    }

    fn subscriptions(&self) -> &'static [&'static str] {
        &["Loan.Funded", "Loan.Modified"]
    }

    fn priority(&self) -> u32 {
        // Before payment application, when both receive one batch.
        10
    }

    fn handle(&self, input: &HandlerInput<'_>) -> Result<Vec<FollowOn>, CoreError> {
        let loan = loan_before(input);
        let e = input.event;
        match e.event_type.as_str() {
            "Loan.Funded" => {
                if loan.funded_amount.is_some() {
                    return Err(rejected(format!(
                        "loan {} is already funded",
                        e.aggregate_id
                    )));
                }
                let (schedule_id, payments) = loan.schedule_for_funding(e).map_err(rejected)?;
                Ok(vec![schedule(e, schedule_id, None, &payments)])
            }
            "Loan.Modified" => match loan.decide_modification(e).map_err(rejected)? {
                Some(r) => Ok(vec![schedule(
                    e,
                    r.schedule_id,
                    r.supersedes,
                    &r.installments,
                )]),
                None => Ok(Vec::new()),
            },
            _ => Ok(Vec::new()),
        }
    }
}

fn schedule(
    e: &EventEnvelope,
    schedule_id: String,
    supersedes: Option<String>,
    payments: &[crate::schedule::Installment],
) -> FollowOn {
    let mut payload = json!({
        "loanId": e.aggregate_id,
        "scheduleId": schedule_id,
        "totalPayments": payments.len(),
        "payments": payments,
    });
    if let Some(s) = supersedes {
        payload["supersedes"] = json!(s);
    }
    FollowOn {
        event_type: "PaymentSchedule.Generated",
        aggregate_type: "Loan",
        aggregate_id: e.aggregate_id.clone(),
        payload,
    }
}

/// `Payment.Received` -> `Payment.Applied` (+ `Loan.PaidOff` when the principal reaches
/// zero), or a rejection (over the payoff amount, loan not active, duplicate payment id);
/// `Payment.Reversed` is checked (a reversal of a payment never applied, or reversed
/// before, is rejected); the fold undoes the payment.
pub struct PaymentApplication;

impl DomainHandler for PaymentApplication {
    fn name(&self) -> &'static str {
        "payment-application"
    }

    fn domain(&self) -> Domain {
        Domain::Payment
    }

    fn subscriptions(&self) -> &'static [&'static str] {
        &["Payment.Received", "Payment.Reversed"]
    }

    fn handle(&self, input: &HandlerInput<'_>) -> Result<Vec<FollowOn>, CoreError> {
        let loan = loan_before(input);
        let e = input.event;
        match e.event_type.as_str() {
            "Payment.Received" => {
                let pay = PaymentIn::from_payload(&e.payload)
                    .ok_or_else(|| rejected("Payment.Received payload is not readable"))?;
                let applied = loan.decide_payment(&pay).map_err(rejected)?;
                let mut payload = json!({
                    "paymentId": applied.payment_id,
                    "loanId": e.aggregate_id,
                    "allocation": {"interest": applied.interest, "principal": applied.principal},
                    "installments": applied.installments,
                    "prepaidPrincipal": applied.prepaid,
                    "remainingPrincipal": applied.remaining_principal,
                });
                if let Some(m) = &applied.payment_method {
                    payload["paymentMethod"] = json!(m);
                }
                let mut out = vec![FollowOn {
                    event_type: "Payment.Applied",
                    aggregate_type: "Loan",
                    aggregate_id: e.aggregate_id.clone(),
                    payload,
                }];
                if applied.remaining_principal.is_zero() {
                    out.push(FollowOn {
                        event_type: "Loan.PaidOff",
                        aggregate_type: "Loan",
                        aggregate_id: e.aggregate_id.clone(),
                        payload: json!({
                            "loanId": e.aggregate_id,
                            "finalPaymentId": applied.payment_id,
                            "paidOffAt": format_time(&applied.received_at),
                        }),
                    });
                }
                Ok(out)
            }
            "Payment.Reversed" => {
                let id = e.payload_str("paymentId").unwrap_or_default();
                loan.decide_reversal(id).map_err(rejected)?;
                Ok(Vec::new())
            }
            _ => Ok(Vec::new()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::envelope::{EventEnvelope, NewEvent};
    use crate::handlers::testkit::{given, Given};
    use crate::money::Money;
    use crate::state::LoanState;
    use crate::state::LoanStatus;
    use chrono::Utc;
    use serde_json::Value;
    use std::str::FromStr;

    /// The funding's eventId, so follow-ons can be checked for their causation.
    const FUNDING: &str = "00000000-0000-4000-8000-000000000001";

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

    fn reversed(loan: &str, id: &str) -> Value {
        json!({"eventType": "Payment.Reversed", "aggregateType": "Loan", "aggregateId": loan,
            "payload": {"paymentId": id, "loanId": loan, "reason": "NSF"}})
    }

    fn modified(payload: Value) -> Value {
        json!({"eventType": "Loan.Modified", "aggregateType": "Loan", "aggregateId": "L1",
            "payload": payload})
    }

    fn applied() -> Value {
        json!({"eventType": "Payment.Applied", "aggregateType": "Loan", "aggregateId": "L1"})
    }

    fn m(s: &str) -> Money {
        Money::from_str(s).unwrap()
    }

    /// A funded $100,000 loan at 7.5 % over 12 months (seed 001), schedule stored.
    fn funded_loan() -> Given {
        given([created("L1", "100000.00", "7.5", 12, "monthly")])
            .when(
                &PaymentHandler,
                funded("L1", "100000.00", "2026-01-31T09:00:00Z"),
            )
            .then([json!({"eventType": "PaymentSchedule.Generated"})])
    }

    #[test]
    fn funding_produces_a_valid_schedule_follow_on() {
        let mut funding = funded("L1", "100000.00", "2026-01-31T09:00:00Z");
        funding["eventId"] = json!(FUNDING);
        let loan = given([created("L1", "100000.00", "7.5", 12, "monthly")])
            .when(&PaymentHandler, funding)
            .then([json!({"eventType": "PaymentSchedule.Generated",
                "aggregateType": "Loan", "aggregateId": "L1",
                "payload": {"totalPayments": 12},
                // Caused by the funding, in its correlation (which defaults to its id).
                "metadata": {"causationId": FUNDING, "correlationId": FUNDING}})]);
        let schedule = loan.last();
        assert_eq!(schedule.payload["payments"][0]["total"], json!("8675.74"));
        assert_eq!(
            schedule.payload["payments"][0]["dueDate"],
            json!("2026-02-28")
        );
        // Running again gives the same event id and content.
        let funded = &loan.history()[1];
        let input = |h: &[EventEnvelope]| {
            PaymentHandler
                .handle(&HandlerInput {
                    prior: None,
                    event: funded,
                    history: &h[..2],
                    related: &[],
                })
                .unwrap()
        };
        let (a, b) = (input(loan.history()), input(loan.history()));
        let f = NewEvent::follow_on(funded, PaymentHandler.name(), 0, a[0].clone(), Utc::now())
            .unwrap();
        let g = NewEvent::follow_on(funded, PaymentHandler.name(), 0, b[0].clone(), Utc::now())
            .unwrap();
        assert_eq!((f.event_id, &f.fingerprint), (g.event_id, &g.fingerprint));
        assert_eq!(f.event_id, schedule.event_id);
        // The fold derives the same schedule id.
        assert_eq!(
            LoanState::fold(loan.history()).schedule_id.as_deref(),
            schedule.payload["scheduleId"].as_str()
        );
    }

    #[test]
    fn funding_an_unknown_or_funded_loan_is_a_business_rejection() {
        given([])
            .when(
                &PaymentHandler,
                funded("L2", "10.00", "2026-01-31T09:00:00Z"),
            )
            .then_rejects("");
        funded_loan()
            .when(
                &PaymentHandler,
                funded("L1", "10.00", "2026-03-31T09:00:00Z"),
            )
            .then_rejects("already funded");
    }

    #[test]
    fn payments_pay_interest_then_principal_then_prepay() {
        let (loan, out) = funded_loan()
            // The first installment exactly.
            .when(
                &PaymentApplication,
                received("L1", "P1", "8675.74", "2026-02-27T12:00:00Z"),
            )
            .then([json!({"eventType": "Payment.Applied", "payload": {
                "allocation": {"interest": "625.00", "principal": "8050.74"},
                "remainingPrincipal": "91949.26",
                "prepaidPrincipal": "0.00",
                // Stored as v1 (`method`), read as v2.
                "paymentMethod": "ach"}})])
            // A partial payment on installment 2 pays its interest first.
            .when(
                &PaymentApplication,
                received("L1", "P2", "1000.00", "2026-03-30T12:00:00Z"),
            )
            .then([json!({"eventType": "Payment.Applied", "payload": {
                "allocation": {"interest": "574.68", "principal": "425.32"}}})])
            // Late on 2 and 3 (May 15): interest of both first, then principal oldest first,
            // the excess prepays principal.
            .when(
                &PaymentApplication,
                received("L1", "P3", "30000.00", "2026-05-15T12:00:00Z"),
            )
            .then_events();
        let p = &out[0].payload;
        let state = LoanState::fold(loan.history());
        let inst = &p["installments"];
        assert_eq!(inst[0]["number"], json!(2));
        assert_eq!(inst[0]["interest"], json!("0.00"));
        assert_eq!(inst[1]["number"], json!(3));
        assert!(m(p["prepaidPrincipal"].as_str().unwrap()) > Money::ZERO);
        assert_eq!(
            state.outstanding_principal,
            m(p["remainingPrincipal"].as_str().unwrap())
        );
        assert_eq!(
            state.paid_principal + state.outstanding_principal,
            m("100000.00")
        );
        // Installment 4 was billed too (the next one after May 15); 5 is still due in full
        // as scheduled (a prepayment shortens the loan, it does not skip installments).
        let next = state.next_due().unwrap();
        let five = &state.installments[4];
        assert_eq!(
            (next.number, next.amount()),
            (5, five.interest + five.principal)
        );
    }

    #[test]
    fn paying_the_payoff_amount_pays_the_loan_off_and_more_is_refused() {
        let loan = funded_loan();
        let on = chrono::NaiveDate::from_ymd_opt(2026, 2, 15).unwrap();
        let payoff = LoanState::fold(loan.history()).payoff_amount(on);
        assert_eq!(
            payoff,
            m("100625.00"),
            "principal + the first installment's interest"
        );
        let loan = loan
            .when(
                &PaymentApplication,
                received("L1", "P9", "100625.01", "2026-02-15T00:00:00Z"),
            )
            .then_rejects("above the payoff amount of 100625.00")
            .when(
                &PaymentApplication,
                received("L1", "P10", "100625.00", "2026-02-15T00:00:00Z"),
            )
            .then([
                applied(),
                json!({"eventType": "Loan.PaidOff", "payload": {"finalPaymentId": "P10"}}),
            ]);
        let state = LoanState::fold(loan.history());
        assert_eq!(state.status, LoanStatus::PaidOff);
        assert_eq!(state.refused_payments, 1);
        // Anything after payoff is refused.
        loan.when(
            &PaymentApplication,
            received("L1", "P11", "1.00", "2026-02-16T00:00:00Z"),
        )
        .then_rejects("");
    }

    #[test]
    fn a_reversal_undoes_the_payment_and_reopens_a_paid_off_loan() {
        let loan = funded_loan();
        let before = LoanState::fold(loan.history());
        let loan = loan
            .when(
                &PaymentApplication,
                received("L1", "P1", "8675.74", "2026-02-27T12:00:00Z"),
            )
            .then([applied()])
            .when(&PaymentApplication, reversed("L1", "P1"))
            .then_nothing();
        let after = LoanState::fold(loan.history());
        assert_eq!(after.outstanding_principal, before.outstanding_principal);
        assert_eq!(after.installments, before.installments);
        assert_eq!(after.next_due(), before.next_due());
        // Twice, or for an unknown payment: rejected.
        let loan = loan
            .when(&PaymentApplication, reversed("L1", "P1"))
            .then_rejects("already reversed")
            .when(&PaymentApplication, reversed("L1", "P404"))
            .then_rejects("never applied")
            // Pay off, reverse the final payment: funded again, everything owed again.
            .when(
                &PaymentApplication,
                received("L1", "P2", "100625.00", "2026-02-15T00:00:00Z"),
            )
            .then([applied(), json!({"eventType": "Loan.PaidOff"})]);
        assert_eq!(LoanState::fold(loan.history()).status, LoanStatus::PaidOff);
        let (loan, _) = loan
            .when(&PaymentApplication, reversed("L1", "P2"))
            .then_events();
        let state = LoanState::fold(loan.history());
        assert_eq!(state.status, LoanStatus::Funded);
        assert_eq!(state.outstanding_principal, m("100000.00"));
        assert!(state.paid_off.is_none());
    }

    #[test]
    fn a_payment_before_the_schedule_record_lands_is_allocated_the_same() {
        // Payment.Received stored right after Loan.Funded, before the schedule record.
        given([
            created("L1", "100000.00", "7.5", 12, "monthly"),
            funded("L1", "100000.00", "2026-01-31T09:00:00Z"),
        ])
        .when(
            &PaymentApplication,
            received("L1", "P1", "8675.74", "2026-02-27T12:00:00Z"),
        )
        .then([json!({"eventType": "Payment.Applied", "payload": {
            "allocation": {"interest": "625.00", "principal": "8050.74"}}})]);
    }

    #[test]
    fn a_modification_regenerates_the_rest_of_the_schedule() {
        let loan = funded_loan()
            .when(
                &PaymentApplication,
                received("L1", "P1", "8675.74", "2026-02-27T12:00:00Z"),
            )
            .then([applied()]);
        let old = LoanState::fold(loan.history());
        let (loan, out) = loan
            .when(
                &PaymentHandler,
                modified(
                    json!({"loanId": "L1", "interestRate": "6", "termMonths": 24,
                    "modifiedBy": "U1", "modifiedAt": "2026-03-10T00:00:00Z"}),
                ),
            )
            .then_events();
        let p = &out[0].payload;
        assert_eq!(p["supersedes"], json!(old.schedule_id.clone().unwrap()));
        assert_ne!(p["scheduleId"], p["supersedes"]);
        // Installment 1 (due Feb 28, paid) is kept; 2..24 carry the outstanding principal.
        assert_eq!(p["totalPayments"], json!(23));
        assert_eq!(p["payments"][0]["number"], json!(2));
        assert_eq!(p["payments"][0]["dueDate"], json!("2026-03-31"));
        assert_eq!(
            p["payments"][0]["interest"],
            json!("459.75"),
            "91949.26 x 6 % / 12"
        );
        assert_eq!(p["payments"][22]["dueDate"], json!("2028-01-31"));
        let principal: Money = p["payments"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| m(x["principal"].as_str().unwrap()))
            .sum();
        assert_eq!(principal, m("91949.26"));
        let state = LoanState::fold(loan.history());
        assert_eq!(state.schedule_id.as_deref(), p["scheduleId"].as_str());
        assert_eq!(state.installments.len(), 24);
        assert_eq!(state.terms.as_ref().unwrap().term_months, 24);
        assert_eq!(state.next_due().unwrap().number, 2);
        loan
            // Only a note changed: no new schedule.
            .when(
                &PaymentHandler,
                modified(json!({"loanId": "L1", "changes": {"note": "x"}, "modifiedBy": "U1"})),
            )
            .then_nothing()
            // A term that ends before the next installment is rejected.
            .when(
                &PaymentHandler,
                modified(json!({"loanId": "L1", "termMonths": 1, "modifiedBy": "U1",
                    "modifiedAt": "2026-03-10T00:00:00Z"})),
            )
            .then_rejects("");
    }
}
