//! The payment domain: schedules (on funding and on term changes) and payment
//! application. The rules are [`LoanState`]'s; these handlers publish their outcome.

use serde_json::json;

use super::{before, rejected, DomainHandler, HandlerInput};
use crate::domain::Domain;
use crate::envelope::{format_time, EventEnvelope, FollowOn};
use crate::error::CoreError;
use crate::state::loan::{PaymentIn, SCHEDULE_HANDLER};
use crate::state::LoanState;

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
        let loan = LoanState::fold(before(input));
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
        let loan = LoanState::fold(before(input));
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
    use crate::envelope::NewEvent;
    use crate::handlers::testkit::{run, stored};
    use crate::money::Money;
    use crate::state::LoanStatus;
    use chrono::Utc;
    use serde_json::Value;
    use std::str::FromStr;

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

    fn m(s: &str) -> Money {
        Money::from_str(s).unwrap()
    }

    /// A funded $100,000 loan at 7.5 % over 12 months (seed 001), schedule stored.
    fn funded_loan() -> Vec<crate::envelope::EventEnvelope> {
        let mut h = Vec::new();
        stored(&mut h, created("L1", "100000.00", "7.5", 12, "monthly"));
        stored(&mut h, funded("L1", "100000.00", "2026-01-31T09:00:00Z"));
        run(&PaymentHandler, &mut h, &[]).unwrap();
        h
    }

    #[test]
    fn funding_produces_a_valid_schedule_follow_on() {
        let h = funded_loan();
        let schedule = h.last().unwrap();
        assert_eq!(schedule.event_type, "PaymentSchedule.Generated");
        assert_eq!(schedule.payload["totalPayments"], json!(12));
        assert_eq!(schedule.payload["payments"][0]["total"], json!("8675.74"));
        assert_eq!(
            schedule.payload["payments"][0]["dueDate"],
            json!("2026-02-28")
        );
        let funded = &h[1];
        assert_eq!(
            schedule.metadata.causation_id,
            Some(funded.event_id.to_string())
        );
        assert_eq!(
            schedule.metadata.correlation_id,
            funded.metadata.correlation_id
        );
        // Running again gives the same event id and content.
        let input = |h: &[crate::envelope::EventEnvelope]| {
            PaymentHandler
                .handle(&HandlerInput {
                    event: funded,
                    history: &h[..2],
                    related: &[],
                })
                .unwrap()
        };
        let (a, b) = (input(&h), input(&h));
        let f = NewEvent::follow_on(funded, PaymentHandler.name(), 0, a[0].clone(), Utc::now())
            .unwrap();
        let g = NewEvent::follow_on(funded, PaymentHandler.name(), 0, b[0].clone(), Utc::now())
            .unwrap();
        assert_eq!((f.event_id, &f.fingerprint), (g.event_id, &g.fingerprint));
        // The fold derives the same schedule id.
        assert_eq!(
            LoanState::fold(&h).schedule_id.as_deref(),
            schedule.payload["scheduleId"].as_str()
        );
    }

    #[test]
    fn funding_an_unknown_or_funded_loan_is_a_business_rejection() {
        let mut h = Vec::new();
        stored(&mut h, funded("L2", "10.00", "2026-01-31T09:00:00Z"));
        assert!(matches!(
            run(&PaymentHandler, &mut h, &[]),
            Err(CoreError::Rejected(_))
        ));
        let mut h = funded_loan();
        stored(&mut h, funded("L1", "10.00", "2026-03-31T09:00:00Z"));
        assert!(
            matches!(run(&PaymentHandler, &mut h, &[]), Err(CoreError::Rejected(m)) if m.contains("already funded"))
        );
    }

    #[test]
    fn payments_pay_interest_then_principal_then_prepay() {
        let mut h = funded_loan();
        // The first installment exactly.
        stored(
            &mut h,
            received("L1", "P1", "8675.74", "2026-02-27T12:00:00Z"),
        );
        let out = run(&PaymentApplication, &mut h, &[]).unwrap();
        assert_eq!(out.len(), 1);
        let p = &out[0].payload;
        assert_eq!(
            p["allocation"],
            json!({"interest": "625.00", "principal": "8050.74"})
        );
        assert_eq!(p["remainingPrincipal"], json!("91949.26"));
        assert_eq!(p["prepaidPrincipal"], json!("0.00"));
        assert_eq!(p["paymentMethod"], json!("ach"), "read as v2");
        // A partial payment on installment 2 pays its interest first.
        stored(
            &mut h,
            received("L1", "P2", "1000.00", "2026-03-30T12:00:00Z"),
        );
        let p = &run(&PaymentApplication, &mut h, &[]).unwrap()[0].payload;
        assert_eq!(p["allocation"]["interest"], json!("574.68"));
        assert_eq!(p["allocation"]["principal"], json!("425.32"));
        // Late on 2 and 3 (May 15): interest of both first, then principal oldest first,
        // the excess prepays principal.
        stored(
            &mut h,
            received("L1", "P3", "30000.00", "2026-05-15T12:00:00Z"),
        );
        let p = run(&PaymentApplication, &mut h, &[]).unwrap()[0]
            .payload
            .clone();
        let loan = LoanState::fold(&h);
        let inst = &p["installments"];
        assert_eq!(inst[0]["number"], json!(2));
        assert_eq!(inst[0]["interest"], json!("0.00"));
        assert_eq!(inst[1]["number"], json!(3));
        assert!(m(p["prepaidPrincipal"].as_str().unwrap()) > Money::ZERO);
        assert_eq!(
            loan.outstanding_principal,
            m(p["remainingPrincipal"].as_str().unwrap())
        );
        assert_eq!(
            loan.paid_principal + loan.outstanding_principal,
            m("100000.00")
        );
        // Installment 4 was billed too (the next one after May 15); 5 is still due in full
        // as scheduled (a prepayment shortens the loan, it does not skip installments).
        let next = loan.next_due().unwrap();
        let five = &loan.installments[4];
        assert_eq!(
            (next.number, next.amount()),
            (5, five.interest + five.principal)
        );
    }

    #[test]
    fn paying_the_payoff_amount_pays_the_loan_off_and_more_is_refused() {
        let mut h = funded_loan();
        let on = chrono::NaiveDate::from_ymd_opt(2026, 2, 15).unwrap();
        let payoff = LoanState::fold(&h).payoff_amount(on);
        assert_eq!(
            payoff,
            m("100625.00"),
            "principal + the first installment's interest"
        );
        stored(
            &mut h,
            received("L1", "P9", "100625.01", "2026-02-15T00:00:00Z"),
        );
        let err = run(&PaymentApplication, &mut h, &[]).unwrap_err();
        assert!(
            matches!(&err, CoreError::Rejected(m) if m.contains("above the payoff amount of 100625.00")),
            "{err:?}"
        );
        stored(
            &mut h,
            received("L1", "P10", "100625.00", "2026-02-15T00:00:00Z"),
        );
        let out = run(&PaymentApplication, &mut h, &[]).unwrap();
        assert_eq!(out.len(), 2);
        assert_eq!(out[1].event_type, "Loan.PaidOff");
        assert_eq!(out[1].payload["finalPaymentId"], json!("P10"));
        let loan = LoanState::fold(&h);
        assert_eq!(loan.status, LoanStatus::PaidOff);
        assert_eq!(loan.refused_payments, 1);
        // Anything after payoff is refused.
        stored(
            &mut h,
            received("L1", "P11", "1.00", "2026-02-16T00:00:00Z"),
        );
        assert!(run(&PaymentApplication, &mut h, &[]).is_err());
    }

    #[test]
    fn a_reversal_undoes_the_payment_and_reopens_a_paid_off_loan() {
        let mut h = funded_loan();
        let before = LoanState::fold(&h);
        stored(
            &mut h,
            received("L1", "P1", "8675.74", "2026-02-27T12:00:00Z"),
        );
        run(&PaymentApplication, &mut h, &[]).unwrap();
        stored(&mut h, reversed("L1", "P1"));
        assert!(run(&PaymentApplication, &mut h, &[]).unwrap().is_empty());
        let after = LoanState::fold(&h);
        assert_eq!(after.outstanding_principal, before.outstanding_principal);
        assert_eq!(after.installments, before.installments);
        assert_eq!(after.next_due(), before.next_due());
        // Twice, or for an unknown payment: rejected.
        stored(&mut h, reversed("L1", "P1"));
        assert!(
            matches!(run(&PaymentApplication, &mut h, &[]), Err(CoreError::Rejected(m)) if m.contains("already reversed"))
        );
        stored(&mut h, reversed("L1", "P404"));
        assert!(
            matches!(run(&PaymentApplication, &mut h, &[]), Err(CoreError::Rejected(m)) if m.contains("never applied"))
        );
        // Pay off, reverse the final payment: funded again, everything owed again.
        stored(
            &mut h,
            received("L1", "P2", "100625.00", "2026-02-15T00:00:00Z"),
        );
        run(&PaymentApplication, &mut h, &[]).unwrap();
        assert_eq!(LoanState::fold(&h).status, LoanStatus::PaidOff);
        stored(&mut h, reversed("L1", "P2"));
        run(&PaymentApplication, &mut h, &[]).unwrap();
        let loan = LoanState::fold(&h);
        assert_eq!(loan.status, LoanStatus::Funded);
        assert_eq!(loan.outstanding_principal, m("100000.00"));
        assert!(loan.paid_off.is_none());
    }

    #[test]
    fn a_payment_before_the_schedule_record_lands_is_allocated_the_same() {
        // Payment.Received stored right after Loan.Funded, before the schedule record.
        let mut h = Vec::new();
        stored(&mut h, created("L1", "100000.00", "7.5", 12, "monthly"));
        stored(&mut h, funded("L1", "100000.00", "2026-01-31T09:00:00Z"));
        stored(
            &mut h,
            received("L1", "P1", "8675.74", "2026-02-27T12:00:00Z"),
        );
        let p = &run(&PaymentApplication, &mut h, &[]).unwrap()[0].payload;
        assert_eq!(
            p["allocation"],
            json!({"interest": "625.00", "principal": "8050.74"})
        );
    }

    #[test]
    fn a_modification_regenerates_the_rest_of_the_schedule() {
        let mut h = funded_loan();
        stored(
            &mut h,
            received("L1", "P1", "8675.74", "2026-02-27T12:00:00Z"),
        );
        run(&PaymentApplication, &mut h, &[]).unwrap();
        let old = LoanState::fold(&h);
        stored(
            &mut h,
            json!({"eventType": "Loan.Modified", "aggregateType": "Loan", "aggregateId": "L1",
                "payload": {"loanId": "L1", "interestRate": "6", "termMonths": 24, "modifiedBy": "U1",
                    "modifiedAt": "2026-03-10T00:00:00Z"}}),
        );
        let out = run(&PaymentHandler, &mut h, &[]).unwrap();
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
        let loan = LoanState::fold(&h);
        assert_eq!(loan.schedule_id.as_deref(), p["scheduleId"].as_str());
        assert_eq!(loan.installments.len(), 24);
        assert_eq!(loan.terms.as_ref().unwrap().term_months, 24);
        assert_eq!(loan.next_due().unwrap().number, 2);
        // Only a note changed: no new schedule.
        stored(
            &mut h,
            json!({"eventType": "Loan.Modified", "aggregateType": "Loan", "aggregateId": "L1",
                "payload": {"loanId": "L1", "changes": {"note": "x"}, "modifiedBy": "U1"}}),
        );
        assert!(run(&PaymentHandler, &mut h, &[]).unwrap().is_empty());
        // A term that ends before the next installment is rejected.
        stored(
            &mut h,
            json!({"eventType": "Loan.Modified", "aggregateType": "Loan", "aggregateId": "L1",
                "payload": {"loanId": "L1", "termMonths": 1, "modifiedBy": "U1", "modifiedAt": "2026-03-10T00:00:00Z"}}),
        );
        assert!(matches!(
            run(&PaymentHandler, &mut h, &[]),
            Err(CoreError::Rejected(_))
        ));
    }
}
