//! The lending rules one by one (draws, every dollar received, grace and delinquency,
//! effective dates, the payoff quote, funding gates), and a property over random
//! histories of payments, reversals, draws, late-job runs and backdated payments.

use std::str::FromStr;

use chrono::{DateTime, Days, NaiveDate, Utc};
use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::Index;
use serde_json::{json, Value};

use super::loan::{Delinquency, LoanState, LoanStatus};
use super::snapshot::{self, Folded};
use super::tests::check;
use super::DrawState;
use super::{document_at, StateAt};
use crate::envelope::EventEnvelope;
use crate::handlers::compliance::ComplianceHandler;
use crate::handlers::draw::DrawHandler;
use crate::handlers::payment::{PaymentApplication, PaymentHandler};
use crate::handlers::testkit::{deliver, run, stored, stream};
use crate::handlers::{loan_before, DomainHandler, HandlerInput};
use crate::money::Money;

fn m(s: &str) -> Money {
    Money::from_str(s).unwrap()
}

fn day(s: &str) -> NaiveDate {
    NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
}

fn created(loan_type: &str, amount: &str, extra: Value) -> Value {
    let mut payload = json!({"loanId": "L1", "borrowerId": "B1", "amount": amount,
        "interestRate": "7.5", "termMonths": 12, "amortization": "amortized",
        "paymentFrequency": "monthly", "loanType": loan_type});
    for (k, v) in extra.as_object().unwrap() {
        payload[k] = v.clone();
    }
    json!({"eventType": "Loan.Created", "aggregateType": "Loan", "aggregateId": "L1",
        "payload": payload})
}

fn funded(amount: &str) -> Value {
    json!({"eventType": "Loan.Funded", "aggregateType": "Loan", "aggregateId": "L1",
        "payload": {"loanId": "L1", "fundedAmount": amount, "fundedAt": "2026-01-31T09:00:00Z"}})
}

fn received(id: &str, amount: Money, on: NaiveDate) -> Value {
    json!({"eventType": "Payment.Received", "aggregateType": "Loan", "aggregateId": "L1",
        "payload": {"paymentId": id, "loanId": "L1", "amount": amount, "method": "wire",
            "receivedAt": format!("{on}T12:00:00Z")}})
}

fn types(out: &[EventEnvelope]) -> Vec<&str> {
    out.iter().map(|e| e.event_type.as_str()).collect()
}

fn of<'a>(out: &'a [EventEnvelope], t: &str) -> Vec<&'a EventEnvelope> {
    out.iter().filter(|e| e.event_type == t).collect()
}

/// A $100,000 term loan at 7.5 % over 12 months funded on Jan 31 (the seed's), schedule
/// stored, with `extra` terms.
fn term_loan(extra: Value) -> Vec<EventEnvelope> {
    let mut h = Vec::new();
    stored(&mut h, created("term", "100000.00", extra));
    stored(&mut h, funded("100000.00"));
    run(&PaymentHandler, &mut h, &[]).unwrap();
    h
}

/// A draw approved and disbursed on `on`, as the draw workflow records it on both streams,
/// and the schedule handler's answer to `Draw.Disbursed`.
fn disburse(
    h: &mut Vec<EventEnvelope>,
    draw: &str,
    amount: Money,
    on: NaiveDate,
) -> Vec<EventEnvelope> {
    let at = format!("{on}T10:00:00Z");
    stored(
        h,
        json!({"eventType": "Loan.DrawSubmitted", "aggregateType": "Loan", "aggregateId": "L1",
            "occurredAt": at, "payload": {"loanId": "L1", "drawId": draw, "amount": amount}}),
    );
    stored(
        h,
        json!({"eventType": "Loan.DrawDisbursed", "aggregateType": "Loan", "aggregateId": "L1",
            "payload": {"loanId": "L1", "drawId": draw, "amount": amount, "disbursedAt": at}}),
    );
    stored(
        h,
        json!({"eventType": "Draw.Disbursed", "aggregateType": "Draw", "aggregateId": draw,
            "payload": {"drawId": draw, "loanId": "L1", "amount": amount, "disbursedAt": at}}),
    );
    let related = stream(h, "Loan", "L1");
    run(&PaymentHandler, h, &related).unwrap()
}

/// Store what the daily job decides on `as_of`; returns it.
fn late_run(h: &mut Vec<EventEnvelope>, as_of: NaiveDate) -> Vec<EventEnvelope> {
    let loan = stream(h, "Loan", "L1");
    let now = Utc::now();
    let new = crate::late::late_events(&loan, as_of, now).unwrap();
    let mut seq = loan.last().map_or(0, |e| e.sequence);
    new.into_iter()
        .map(|e| {
            seq += 1;
            let e = e.into_envelope(seq, now);
            h.push(e.clone());
            e
        })
        .collect()
}

fn principals(payments: &Value) -> Vec<(u64, Money)> {
    payments
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["number"].as_u64().unwrap(),
                m(p["principal"].as_str().unwrap()),
            )
        })
        .collect()
}

// ---------------------------------------------------------------------------------------
// Rule 1: draws

#[test]
fn disbursed_draws_add_principal_and_regenerate_the_schedule_after_their_date() {
    let mut h = Vec::new();
    stored(&mut h, created("construction", "1000000.00", json!({})));
    stored(&mut h, funded("400000.00"));
    let first = run(&PaymentHandler, &mut h, &[]).unwrap();
    let mut effective: Vec<(u64, Money)> = principals(&first[0].payload["payments"]);
    // The initial schedule is the one a $400,000 loan has always had.
    let terms = LoanState::fold(&h).schedule_terms(m("400000.00")).unwrap();
    let plain = crate::schedule::generate(&terms, day("2026-01-31")).unwrap();
    assert_eq!(
        serde_json::to_value(&plain).unwrap(),
        first[0].payload["payments"]
    );
    assert_eq!(
        LoanState::fold(&h).available_to_draw(),
        Some(m("600000.00"))
    );

    let mut disbursed = Money::ZERO;
    for (draw, amount, on, kept) in [
        ("D1", m("300000.00"), day("2026-03-15"), 1u64),
        ("D2", m("200000.00"), day("2026-06-30"), 5u64),
    ] {
        let before = LoanState::fold(&stream(&h, "Loan", "L1"));
        let out = disburse(&mut h, draw, amount, on);
        disbursed += amount;
        assert_eq!(types(&out), ["PaymentSchedule.Generated"]);
        let p = &out[0].payload;
        assert_eq!(p["supersedes"], json!(before.schedule_id.clone().unwrap()));
        // Installments due on or before the disbursal are kept; the rest are regenerated.
        let tail = principals(&p["payments"]);
        assert_eq!(tail[0].0, kept + 1, "{draw}");
        assert_eq!(tail.len() as u64, 12 - kept);
        effective.truncate(kept as usize);
        effective.extend(tail);
        let sum: Money = effective.iter().map(|(_, p)| *p).sum();
        assert_eq!(
            sum,
            m("400000.00") + disbursed,
            "{draw}: funded + disbursed"
        );
        // The fold regenerates the same schedule at the same point.
        let loan = LoanState::fold(&stream(&h, "Loan", "L1"));
        assert_eq!(loan.schedule_id.as_deref(), p["scheduleId"].as_str());
        let folded: Vec<(u64, Money)> = loan
            .installments
            .iter()
            .map(|i| (u64::from(i.number), i.principal))
            .collect();
        assert_eq!(folded, effective);
        assert_eq!(loan.outstanding_principal, m("400000.00") + disbursed);
        check(&loan);
    }
    // Interest of the first regenerated installment is on the new balance:
    // (400,000 - installment 1's principal + 300,000) x 7.5 / 1200.
    let loan = LoanState::fold(&stream(&h, "Loan", "L1"));
    let balance = m("700000.00") - loan.installments[0].principal;
    assert_eq!(
        loan.installments[1].interest,
        crate::schedule::period_interest(balance, loan.terms.as_ref().unwrap().interest_rate, 12)
    );
    assert_eq!(loan.available_to_draw(), Some(m("100000.00")));
}

#[test]
fn a_disbursal_after_the_last_installment_cannot_regenerate() {
    let mut h = Vec::new();
    stored(&mut h, created("construction", "1000000.00", json!({})));
    stored(&mut h, funded("400000.00"));
    run(&PaymentHandler, &mut h, &[]).unwrap();
    let loan = LoanState::fold(&h);
    let err = loan
        .decide_disbursal("x", m("1.00"), day("2027-02-01"))
        .unwrap_err();
    assert!(err.contains("cannot regenerate"), "{err}");
}

// ---------------------------------------------------------------------------------------
// Rule 2: every dollar received

#[test]
fn a_payment_on_a_loan_never_funded_is_held_and_refunded_and_its_reversal_withdraws_the_refund() {
    let mut h = Vec::new();
    stored(&mut h, created("term", "1000.00", json!({})));
    stored(&mut h, received("P1", m("50.00"), day("2026-02-01")));
    let out = run(&PaymentApplication, &mut h, &[]).unwrap();
    assert_eq!(types(&out), ["Payment.ExcessHeld", "Refund.Due"]);
    assert!(out[1].payload["reason"]
        .as_str()
        .unwrap()
        .contains("not funded"));
    let loan = LoanState::fold(&h);
    assert_eq!(loan.held, m("50.00"));
    check(&loan);
    // The payment bounces: the refund is withdrawn, nothing is held.
    stored(
        &mut h,
        json!({"eventType": "Payment.Reversed", "aggregateType": "Loan", "aggregateId": "L1",
            "payload": {"paymentId": "P1", "loanId": "L1", "reason": "returned"}}),
    );
    let out = run(&PaymentApplication, &mut h, &[]).unwrap();
    assert_eq!(types(&out), ["Refund.Cancelled"]);
    assert_eq!(out[0].payload["amount"], "50.00");
    assert_eq!(out[0].payload["paymentId"], "P1");
    assert_eq!(LoanState::fold(&h).held, Money::ZERO);
}

#[test]
fn fees_are_paid_after_the_interest_and_principal_of_their_installments() {
    let mut h = term_loan(json!({}));
    late_run(&mut h, day("2026-03-20"));
    // Installment 1 (8,675.74) and its fee (433.79); installment 2 is billed too (next).
    stored(&mut h, received("P1", m("9000.00"), day("2026-03-21")));
    let out = run(&PaymentApplication, &mut h, &[]).unwrap();
    let a = &of(&out, "Payment.Applied")[0].payload;
    // 625.00 + 574.68 interest (1 and 2), 8050.74 principal of 1, then nothing left for
    // 2's principal... interest of both first, principal oldest first, fees last.
    assert_eq!(a["allocation"]["interest"], json!("1199.68"));
    assert_eq!(a["allocation"]["principal"], json!("7800.32"));
    assert!(a["allocation"].get("fees").is_none());
    stored(&mut h, received("P2", m("1000.00"), day("2026-03-22")));
    let out = run(&PaymentApplication, &mut h, &[]).unwrap();
    let a = &of(&out, "Payment.Applied")[0].payload;
    // 250.42 finishes installment 1's principal, then its fee, then 315.79 of installment
    // 2's principal (not due yet: paid ahead).
    assert_eq!(a["allocation"]["fees"], json!("433.79"));
    assert_eq!(a["allocation"]["principal"], json!("566.21"));
    assert_eq!(a["installments"][0]["fee"], json!("433.79"));
    check(&LoanState::fold(&h));
    let loan = LoanState::fold(&h);
    assert_eq!(loan.installments[0].fee_paid, m("433.79"));
}

// ---------------------------------------------------------------------------------------
// Rule 3: grace, fees, delinquency, default

#[test]
fn late_fees_follow_the_percent_the_minimum_and_the_maximum() {
    let loan = LoanState::fold(&term_loan(json!({})));
    let policy = loan.late_policy();
    assert_eq!(policy.grace_days, 15);
    assert_eq!(policy.default_after_days, 90);
    // 5 % of 8,675.74 = 433.787: half away from zero to the cent.
    assert_eq!(policy.fee(m("8675.74")), m("433.79"));
    assert_eq!(policy.fee(m("0.30")), m("0.02"), "0.015 rounds up");
    let loan = LoanState::fold(&term_loan(json!({"lateFeePercent": "4",
        "lateFeeMinimum": "25.00", "lateFeeMaximum": "100.00", "gracePeriodDays": 10,
        "defaultAfterDays": 120})));
    let policy = loan.late_policy();
    assert_eq!(policy.fee(m("100.00")), m("25.00"));
    assert_eq!(policy.fee(m("1000.00")), m("40.00"));
    assert_eq!(policy.fee(m("8675.74")), m("100.00"));
    assert_eq!(policy.delinquency(10), Delinquency::Current);
    assert_eq!(policy.delinquency(11), Delinquency::Delinquent);
    assert_eq!(policy.delinquency(60), Delinquency::SeriouslyDelinquent);
    assert_eq!(policy.delinquency(119), Delinquency::SeriouslyDelinquent);
    assert_eq!(policy.delinquency(120), Delinquency::Defaulted);
}

#[test]
fn the_catalog_refuses_inconsistent_late_terms() {
    let check = crate::catalog::lookup("Loan.Created")
        .unwrap()
        .check
        .unwrap();
    let mut p = created(
        "term",
        "1000",
        json!({"lateFeeMinimum": "50", "lateFeeMaximum": "10"}),
    )["payload"]
        .clone();
    assert!(check(p.as_object().unwrap()).is_err());
    p["lateFeeMaximum"] = json!("60");
    assert!(check(p.as_object().unwrap()).is_ok());
    p["gracePeriodDays"] = json!(30);
    p["defaultAfterDays"] = json!(30);
    assert!(check(p.as_object().unwrap()).is_err());
}

#[test]
fn a_loan_goes_delinquent_seriously_delinquent_defaulted_and_is_cured() {
    let mut h = term_loan(json!({}));
    // Installment 1 is due Feb 28: within the grace period nothing happens.
    assert!(
        late_run(&mut h, day("2026-03-15")).is_empty(),
        "15 days: grace"
    );
    let run1 = late_run(&mut h, day("2026-03-16"));
    assert_eq!(
        types(&run1),
        [
            "Payment.Late",
            "Payment.LateFeeAssessed",
            "Loan.StatusChanged"
        ]
    );
    assert_eq!(run1[0].payload["daysLate"], 16);
    assert_eq!(run1[1].payload["amount"], "433.79");
    assert_eq!(
        (&run1[2].payload["fromStatus"], &run1[2].payload["toStatus"]),
        (&json!("current"), &json!("delinquent"))
    );
    assert_eq!(
        run1[2].metadata.principal.as_deref(),
        Some("job:late-payments")
    );
    // The same day again: nothing new.
    assert!(late_run(&mut h, day("2026-03-16")).is_empty());
    // 60 days past due (Apr 29): seriously delinquent, and installment 2 is late too.
    let run2 = late_run(&mut h, day("2026-04-29"));
    let status = of(&run2, "Loan.StatusChanged");
    assert_eq!(status[0].payload["toStatus"], "seriously_delinquent");
    assert_eq!(status[0].payload["daysPastDue"], 60);
    assert_eq!(of(&run2, "Payment.Late")[0].payload["installment"], 2);
    // 90 days (May 29): default, once.
    let run3 = late_run(&mut h, day("2026-05-29"));
    assert_eq!(of(&run3, "Loan.Defaulted").len(), 1);
    assert_eq!(
        of(&run3, "Loan.StatusChanged")[0].payload["toStatus"],
        "defaulted"
    );
    let loan = LoanState::fold(&h);
    assert_eq!(loan.status, LoanStatus::Defaulted);
    assert_eq!(loan.delinquency, Delinquency::Defaulted);
    assert!(of(&late_run(&mut h, day("2026-06-30")), "Loan.StatusChanged").is_empty());
    let loan = LoanState::fold(&h);
    // A payment of everything past due (5 installments, 4 fees) and the interest of the
    // next installment (billed first, with the others' interest) cures it.
    let owed: Money = loan
        .dues()
        .take_while(|d| d.due_date <= day("2026-06-30"))
        .map(|d| d.amount() + d.fee)
        .sum::<Money>()
        + loan.installments[5].interest;
    stored(&mut h, received("P1", owed, day("2026-07-01")));
    let out = run(&PaymentApplication, &mut h, &[]).unwrap();
    let cured = of(&out, "Loan.StatusChanged");
    assert_eq!(
        (
            &cured[0].payload["fromStatus"],
            &cured[0].payload["toStatus"]
        ),
        (&json!("defaulted"), &json!("current"))
    );
    let loan = LoanState::fold(&h);
    assert_eq!(loan.status, LoanStatus::Funded);
    assert_eq!(loan.delinquency, Delinquency::Current);
    assert_eq!(loan.paid_fees, m("1735.16"), "four fees of 433.79");
    check(&loan);
}

// ---------------------------------------------------------------------------------------
// Rule 4: effective dates

#[test]
fn a_backdated_payment_rescinds_the_late_notice_and_reallocates_a_later_payment() {
    let mut h = term_loan(json!({}));
    // Mar 20: installment 1 (due Feb 28) is 20 days late: notice, fee, delinquent.
    assert_eq!(late_run(&mut h, day("2026-03-20")).len(), 3);
    // Mar 25: installment 1 and the interest of 2 (billed with it) cure the loan
    // (installment 2 is not due).
    stored(&mut h, received("P2", m("9250.42"), day("2026-03-25")));
    let out = run(&PaymentApplication, &mut h, &[]).unwrap();
    assert_eq!(
        of(&out, "Loan.StatusChanged")[0].payload["toStatus"],
        "current"
    );
    let p2_before = of(&out, "Payment.Applied")[0].payload.clone();
    assert_eq!(p2_before["installments"][0]["number"], 1);
    assert_eq!(p2_before["installments"][1]["interest"], "574.68");
    let known_before = Utc::now();
    std::thread::sleep(std::time::Duration::from_millis(5));
    // The bank file arrives late: a payment received on Feb 27.
    stored(&mut h, received("P1", m("8675.74"), day("2026-02-27")));
    let out = run(&PaymentApplication, &mut h, &[]).unwrap();
    assert_eq!(
        types(&out),
        [
            "Payment.Applied",
            "Payment.Reallocated",
            "Payment.LateRescinded",
            "Payment.LateFeeWaived"
        ]
    );
    assert_eq!(out[0].payload["installments"][0]["number"], 1);
    assert_eq!(out[0].payload["effectiveDate"], "2026-02-27");
    let r = &out[1].payload;
    assert_eq!(r["paymentId"], "P2");
    assert_eq!(r["causePaymentId"], "P1");
    let numbers = |split: &Value| -> Vec<u64> {
        split["installments"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["number"].as_u64().unwrap())
            .collect()
    };
    assert_eq!(numbers(&r["before"]), [1, 2]);
    assert_eq!(
        numbers(&r["after"]),
        [2],
        "installment 2; the fee of 1 is waived"
    );
    let parts = |split: &Value| -> Money {
        ["interest", "principal", "fees", "held"]
            .iter()
            .map(|k| m(split[*k].as_str().unwrap()))
            .sum()
    };
    assert_eq!(parts(&r["before"]), m("9250.42"));
    assert_eq!(parts(&r["after"]), m("9250.42"));
    assert_eq!(r["after"]["installments"][0]["principal"], "8101.06");
    assert_eq!(r["after"]["principal"], "8675.74", "574.68 of it prepaid");
    assert_eq!(out[2].payload["installment"], 1);
    assert_eq!(out[3].payload["amount"], "433.79");
    let loan = LoanState::fold(&h);
    assert!(loan.late_reported.is_empty());
    assert_eq!(loan.installments[0].fee, Money::ZERO);
    assert_eq!(loan.next_due().unwrap().number, 3);
    assert!(loan.installments[1].paid());
    check(&loan);
    // What we believe now about Mar 21: installment 1 was paid, nothing late.
    let as_of = document_at(
        h.clone(),
        StateAt {
            as_of: Some(day("2026-03-21")),
            known_at: None,
        },
    )
    .unwrap();
    assert_eq!(as_of["state"]["lateInstallments"], json!([]));
    assert_eq!(as_of["state"]["outstandingPrincipal"], "91949.26");
    assert_eq!(as_of["asOf"], "2026-03-21");
    // What the books said before P1 was recorded: installment 1 late, paid by P2, its fee
    // owed.
    let known = document_at(
        h.clone(),
        StateAt {
            as_of: None,
            known_at: Some(known_before),
        },
    )
    .unwrap();
    assert_eq!(known["state"]["lateInstallments"], json!([1]));
    assert_eq!(known["state"]["feesOwed"], "433.79");
    assert_eq!(known["state"]["outstandingPrincipal"], "91949.26");
    assert!(document_at(
        h,
        StateAt {
            as_of: None,
            known_at: Some(DateTime::<Utc>::MIN_UTC),
        }
    )
    .is_none());
}

// ---------------------------------------------------------------------------------------
// Rule 5: the payoff quote

#[test]
fn the_payoff_quote_accrues_a_per_diem_from_the_last_due_date() {
    let mut h = term_loan(json!({}));
    let q = LoanState::fold(&h).payoff_quote(day("2026-02-15"));
    assert_eq!(q.principal, m("100000.00"));
    assert_eq!(q.billed_interest, Money::ZERO);
    // 100,000 x 7.5 / 100 / 365 a day over 15 days from funding: 308.219... -> 308.22.
    assert_eq!(q.per_diem, "20.547945205479452054794520548");
    assert_eq!(q.accrued_interest, m("308.22"));
    assert_eq!(q.total, m("100308.22"));
    assert_eq!(q.good_through, day("2026-02-15"));
    // Installment 1 paid on Feb 27; on Mar 10 interest accrues from Feb 28 on 91,949.26:
    // 91,949.26 x 7.5 x 10 / 36,500 = 188.9368... -> 188.94.
    stored(&mut h, received("P1", m("8675.74"), day("2026-02-27")));
    run(&PaymentApplication, &mut h, &[]).unwrap();
    let q = LoanState::fold(&h).payoff_quote(day("2026-03-10"));
    assert_eq!(q.accrued_from, Some(day("2026-02-28")));
    assert_eq!(q.accrued_interest, m("188.94"));
    assert_eq!(q.total, m("92138.20"));
    // Unpaid installment 2 (due Mar 31) is billed on Apr 5, with 5 days accrued after it.
    let q = LoanState::fold(&h).payoff_quote(day("2026-04-05"));
    assert_eq!(q.billed_interest, m("574.68"));
    assert_eq!(q.accrued_from, Some(day("2026-03-31")));
    let doc = super::payoff(h.clone(), day("2026-04-05"))
        .unwrap()
        .unwrap();
    assert_eq!(doc["total"], json!(q.total));
    assert_eq!(doc["goodThrough"], "2026-04-05");
    // Paying the quote pays the loan off, nothing held.
    stored(&mut h, received("P2", q.total, day("2026-04-05")));
    let out = run(&PaymentApplication, &mut h, &[]).unwrap();
    assert!(of(&out, "Refund.Due").is_empty());
    assert_eq!(of(&out, "Loan.PaidOff").len(), 1);
    assert_eq!(
        LoanState::fold(&h).payoff_quote(day("2026-04-06")).total,
        Money::ZERO
    );
}

// ---------------------------------------------------------------------------------------
// Rule 6: funding gates and status changes

#[test]
fn funding_without_approval_or_kyc_opens_a_review() {
    let borrower = |events: &[(&str, &str)]| {
        let mut b = Vec::new();
        for (t, reason) in events {
            let mut payload = json!({"borrowerId": "B1"});
            match *t {
                "Borrower.KYCApproved" => payload["verifiedAt"] = json!("2026-01-01T00:00:00Z"),
                _ => payload["reason"] = json!(reason),
            }
            stored(
                &mut b,
                json!({"eventType": t, "aggregateType": "Borrower", "aggregateId": "B1",
                    "payload": payload}),
            );
        }
        b
    };
    let fund = |approved: bool, b: &[EventEnvelope]| {
        let mut h = Vec::new();
        stored(&mut h, created("term", "1000.00", json!({})));
        if approved {
            stored(
                &mut h,
                json!({"eventType": "Loan.Approved", "aggregateType": "Loan", "aggregateId": "L1",
                    "payload": {"loanId": "L1", "approvedBy": "U1", "approvedAt": "2026-01-30T00:00:00Z"}}),
            );
        }
        stored(&mut h, funded("1000.00"));
        assert_eq!(
            ComplianceHandler::default().related_in(&crate::handlers::HandlerInput {
                event: h.last().unwrap(),
                prior: None,
                history: &h,
                related: &[],
            }),
            Some(("Borrower", "B1".to_string()))
        );
        let out = run(&ComplianceHandler::default(), &mut h, b).unwrap();
        of(&out, "Compliance.ReviewOpened")
            .first()
            .map(|r| r.payload["reason"].as_str().unwrap().to_string())
    };
    let ok = borrower(&[("Borrower.KYCApproved", "")]);
    assert_eq!(fund(true, &ok), None);
    let why = fund(false, &ok).unwrap();
    assert!(why.contains("without Loan.Approved"), "{why}");
    let why = fund(true, &borrower(&[("Borrower.KYCFailed", "expired id")])).unwrap();
    assert!(why.contains("failed KYC: expired id"), "{why}");
    let why = fund(true, &[]).unwrap();
    assert!(why.contains("no KYC approval"), "{why}");
    let why = fund(
        false,
        &borrower(&[
            ("Borrower.KYCApproved", ""),
            ("Borrower.Flagged", "sanctions"),
        ]),
    )
    .unwrap();
    assert!(why.contains("without Loan.Approved") && why.contains("flagged: sanctions"));
}

#[test]
fn every_status_change_is_a_status_changed_event() {
    let mut h = Vec::new();
    stored(&mut h, created("term", "1000.00", json!({})));
    stored(
        &mut h,
        json!({"eventType": "Loan.Approved", "aggregateType": "Loan", "aggregateId": "L1",
            "payload": {"loanId": "L1", "approvedBy": "U1", "approvedAt": "2026-01-30T00:00:00Z"}}),
    );
    let out = run(&PaymentHandler, &mut h, &[]).unwrap();
    assert_eq!(
        (&out[0].payload["fromStatus"], &out[0].payload["toStatus"]),
        (&json!("created"), &json!("approved"))
    );
    stored(&mut h, funded("1000.00"));
    let out = run(&PaymentHandler, &mut h, &[]).unwrap();
    assert_eq!(out[1].payload["toStatus"], "funded");
    let total = LoanState::fold(&h).payoff_amount(day("2026-02-01"));
    stored(&mut h, received("P1", total, day("2026-02-01")));
    let out = run(&PaymentApplication, &mut h, &[]).unwrap();
    assert_eq!(
        of(&out, "Loan.StatusChanged")[0].payload["toStatus"],
        "paid_off"
    );
    stored(
        &mut h,
        json!({"eventType": "Payment.Reversed", "aggregateType": "Loan", "aggregateId": "L1",
            "payload": {"paymentId": "P1", "loanId": "L1", "reason": "NSF"}}),
    );
    let out = run(&PaymentApplication, &mut h, &[]).unwrap();
    assert_eq!(
        (&out[0].payload["fromStatus"], &out[0].payload["toStatus"]),
        (&json!("paid_off"), &json!("funded"))
    );
}

// ---------------------------------------------------------------------------------------
// The invariants over random histories

#[derive(Debug, Clone)]
enum Step {
    /// A payment `days` after the last step (or `back` days before it), a part of the
    /// payoff, the payoff, or above it.
    Pay {
        days: u64,
        back: u64,
        kind: u8,
        part: Index,
    },
    Reverse(Index),
    /// A draw of a share (in percent) of what is available.
    Draw {
        days: u64,
        percent: u8,
    },
    /// The daily job, `days` after the last step.
    Late {
        days: u64,
    },
}

/// The sum of the `amount`s of one event type in a history.
fn sum_of(h: &[EventEnvelope], event_type: &str) -> Money {
    of(h, event_type)
        .iter()
        .map(|e| {
            e.payload["amount"]
                .as_str()
                .and_then(|a| a.parse().ok())
                .unwrap_or(Money::ZERO)
        })
        .sum()
}

fn any_step() -> impl Strategy<Value = Step> {
    prop_oneof![
        6 => (0u64..40, 0u64..3, 0u8..10, any::<Index>())
            .prop_map(|(days, back, kind, part)| Step::Pay { days, back: if back == 0 { 30 } else { 0 }, kind, part }),
        1 => any::<Index>().prop_map(Step::Reverse),
        2 => (0u64..40, 1u8..=100).prop_map(|(days, percent)| Step::Draw { days, percent }),
        2 => (1u64..60).prop_map(|days| Step::Late { days }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// After any sequence of payments (some backdated, some above payoff), reversals,
    /// draws and late runs: principal paid + outstanding = funded + disbursed, and every
    /// received dollar is in exactly one of interest, principal, fees, held (refunded).
    #[test]
    fn the_books_balance_after_payments_reversals_draws_and_late_runs(
        steps in vec(any_step(), 30),
    ) {
        let mut h = Vec::new();
        stored(&mut h, created("construction", "500000.00", json!({"gracePeriodDays": 10})));
        stored(&mut h, funded("200000.00"));
        run(&PaymentHandler, &mut h, &[]).unwrap();
        let mut on = day("2026-02-01");
        let mut ids: Vec<String> = Vec::new();
        let mut received_total = Money::ZERO;
        for (k, step) in steps.into_iter().enumerate() {
            let loan = LoanState::fold(&stream(&h, "Loan", "L1"));
            match step {
                Step::Pay { days, back, kind, part } => {
                    on = on + Days::new(days);
                    let date = on - Days::new(back);
                    let payoff = loan.payoff_amount(date);
                    let amount = match kind {
                        0 => payoff,
                        1 => payoff + Money::from_cents(1 + part.index(100_000) as i64),
                        _ => Money::from_cents(1 + part.index(3_000_000) as i64),
                    }
                    .max(Money::from_cents(1));
                    let id = format!("P{k}");
                    stored(&mut h, received(&id, amount, date));
                    let out = run(&PaymentApplication, &mut h, &[]).unwrap();
                    prop_assert_eq!(of(&out, "Payment.ExcessHeld").len(), of(&out, "Refund.Due").len());
                    ids.push(id);
                    received_total += amount;
                }
                Step::Reverse(which) => {
                    if ids.is_empty() {
                        continue;
                    }
                    let id = ids[which.index(ids.len())].clone();
                    stored(
                        &mut h,
                        json!({"eventType": "Payment.Reversed", "aggregateType": "Loan", "aggregateId": "L1",
                            "payload": {"paymentId": id, "loanId": "L1", "reason": "returned"}}),
                    );
                    let ok = run(&PaymentApplication, &mut h, &[]).is_ok();
                    prop_assert_eq!(ok, loan.decide_reversal(&id).is_ok());
                    if ok {
                        let p = &loan.payments[loan.decide_reversal(&id).unwrap()];
                        received_total -= p.amount;
                    }
                }
                Step::Draw { days, percent } => {
                    on = on + Days::new(days);
                    let available = loan.available_to_draw().unwrap_or_default();
                    let amount = Money::round(available.amount() * rust_decimal::Decimal::from(percent) / rust_decimal::Decimal::from(100));
                    if !loan.is_active() || amount.is_zero() {
                        continue;
                    }
                    let draw = format!("D{k}");
                    let at = format!("{on}T10:00:00Z");
                    stored(
                        &mut h,
                        json!({"eventType": "Loan.DrawSubmitted", "aggregateType": "Loan", "aggregateId": "L1",
                            "occurredAt": at, "payload": {"loanId": "L1", "drawId": draw, "amount": amount}}),
                    );
                    stored(
                        &mut h,
                        json!({"eventType": "Loan.DrawDisbursed", "aggregateType": "Loan", "aggregateId": "L1",
                            "payload": {"loanId": "L1", "drawId": draw, "amount": amount, "disbursedAt": at}}),
                    );
                }
                Step::Late { days } => {
                    on = on + Days::new(days);
                    late_run(&mut h, on);
                }
            }
            let loan = LoanState::fold(&stream(&h, "Loan", "L1"));
            check(&loan);
            // Every dollar received (and not reversed) is booked somewhere, once.
            let booked = loan.paid_interest + loan.paid_principal + loan.paid_fees + loan.held;
            prop_assert_eq!(booked, received_total);
            // What is owed back is what is held: refunds due less refunds cancelled.
            let owed = sum_of(&h, "Refund.Due") - sum_of(&h, "Refund.Cancelled");
            prop_assert_eq!(owed, loan.held);
            prop_assert_eq!(
                loan.paid_principal + loan.outstanding_principal,
                m("200000.00") + loan.draws_disbursed
            );
        }
    }
}

// ---------------------------------------------------------------------------------------
// Snapshots of everything the loan and draw folds keep

/// A draw through the draw workflow on `on`: requested, inspection scheduled and passed,
/// decided on the loan, disbursed when approved, and the schedule regenerated; whatever
/// the handlers answer (a rejection too) is stored as the system would.
fn draw_workflow(h: &mut Vec<EventEnvelope>, draw: &str, amount: Money, on: NaiveDate) {
    let at = format!("{on}T10:00:00Z");
    stored(
        h,
        json!({"eventType": "Draw.Requested", "aggregateType": "Draw", "aggregateId": draw,
            "occurredAt": at, "payload": {"drawId": draw, "loanId": "L1", "amount": amount}}),
    );
    let _ = deliver(&DrawHandler, h, "Draw.Requested");
    let inspection = stream(h, "Draw", draw)
        .iter()
        .find_map(|e| e.payload_str("inspectionId").map(str::to_string));
    let Some(inspection) = inspection else { return };
    stored(
        h,
        json!({"eventType": "Inspection.Completed", "aggregateType": "Draw", "aggregateId": draw,
            "occurredAt": at, "payload": {"inspectionId": inspection, "drawId": draw, "result": "passed"}}),
    );
    let _ = deliver(&DrawHandler, h, "Inspection.Completed");
    let _ = deliver(&DrawHandler, h, "Loan.DrawSubmitted");
    if stream(h, "Draw", draw)
        .iter()
        .any(|e| e.event_type == "Draw.Approved")
    {
        let _ = deliver(&DrawHandler, h, "Draw.Approved");
        let _ = deliver(&PaymentHandler, h, "Draw.Disbursed");
    }
}

/// A random construction loan's life across its streams, with everything its fold keeps:
/// payments (some backdated: reallocations, rescinded notices, waived fees; some above the
/// payoff: money held), reversals, draws through the workflow (schedule regenerations) and
/// daily late-job runs (notices, fees, delinquency and default).
fn random_books(steps: Vec<Step>) -> Vec<EventEnvelope> {
    let mut h = Vec::new();
    stored(
        &mut h,
        created(
            "construction",
            "500000.00",
            json!({"gracePeriodDays": 10, "lateFeePercent": "5", "lateFeeMinimum": "25.00",
                "defaultAfterDays": 90}),
        ),
    );
    stored(&mut h, funded("200000.00"));
    run(&PaymentHandler, &mut h, &[]).unwrap();
    let mut on = day("2026-02-01");
    let mut ids: Vec<String> = Vec::new();
    for (k, step) in steps.into_iter().enumerate() {
        let loan = LoanState::fold(&stream(&h, "Loan", "L1"));
        match step {
            Step::Pay {
                days,
                back,
                kind,
                part,
            } => {
                on = on + Days::new(days);
                let date = on - Days::new(back);
                let payoff = loan.payoff_amount(date);
                let amount = match kind {
                    0 => payoff,
                    1 => payoff + Money::from_cents(1 + part.index(100_000) as i64),
                    _ => Money::from_cents(1 + part.index(3_000_000) as i64),
                }
                .max(Money::from_cents(1));
                let id = format!("P{k}");
                stored(&mut h, received(&id, amount, date));
                let _ = run(&PaymentApplication, &mut h, &[]);
                ids.push(id);
            }
            Step::Reverse(which) if !ids.is_empty() => {
                let id = ids[which.index(ids.len())].clone();
                stored(
                    &mut h,
                    json!({"eventType": "Payment.Reversed", "aggregateType": "Loan", "aggregateId": "L1",
                        "payload": {"paymentId": id, "loanId": "L1", "reason": "returned"}}),
                );
                let _ = run(&PaymentApplication, &mut h, &[]);
            }
            Step::Reverse(_) => {}
            Step::Draw { days, percent } => {
                on = on + Days::new(days);
                let available = loan.available_to_draw().unwrap_or_default();
                let amount = Money::round(
                    available.amount() * rust_decimal::Decimal::from(percent)
                        / rust_decimal::Decimal::from(100),
                )
                .max(Money::from_cents(1));
                draw_workflow(&mut h, &format!("D{k}"), amount, on);
            }
            Step::Late { days } => {
                on = on + Days::new(days);
                late_run(&mut h, on);
            }
        }
    }
    h
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// A snapshot of the loan taken anywhere in a random life (stored as JSON and read
    /// back, keeping all the payments whole or only the latest few), plus the events after
    /// it, folds to the same stored state, view and state document as the whole history
    /// unless an event after it reaches an archived payment (backdated behind the kept
    /// payments, a reversal of an archived one: the reader then folds the whole history);
    /// a handler given the snapshot and the tail meets the same loan, decides the same and
    /// names the same related aggregate; and the same holds for every draw's stream.
    #[test]
    fn snapshot_plus_tail_equals_the_full_fold_of_loans_and_draws(
        steps in vec(any_step(), 30),
        cut in any::<Index>(),
        draw_cut in any::<Index>(),
        few in 0usize..4,
    ) {
        let all = random_books(steps);
        let h = stream(&all, "Loan", "L1");
        let at = cut.index(h.len() + 1);
        let full = Folded::Loan(LoanState::fold(&h));
        for keep in [snapshot::KEPT_PAYMENTS, few] {
            let taken = Folded::Loan(LoanState::fold(&h[..at]));
            let snapshot = snapshot::through_storage(&taken, keep);
            prop_assert_eq!(snapshot.stored_keeping(keep), taken.stored_keeping(keep));
            if snapshot.folds_exactly(&h[at..]) {
                let mut resumed = snapshot.clone();
                resumed.apply_all(h[at..].to_vec());
                prop_assert_eq!(resumed.stored_keeping(keep), full.stored_keeping(keep));
                prop_assert_eq!(resumed.view(), full.view());
                let prior = (at > 0).then_some(snapshot.clone());
                prop_assert_eq!(
                    snapshot::document_from("Loan", "L1", prior, h[at..].to_vec()),
                    super::document(h.clone())
                );
            }
            // Every event after the cut that the snapshot serves meets the same loan from
            // the snapshot and the tail.
            for (i, event) in h.iter().enumerate().skip(at) {
                if !snapshot.folds_exactly(&h[at..=i]) {
                    break;
                }
                let whole = HandlerInput { event, prior: None, history: &h[..=i], related: &[] };
                let split = HandlerInput {
                    event,
                    prior: Some(&snapshot),
                    history: &h[at..=i],
                    related: &[],
                };
                prop_assert_eq!(
                    Folded::Loan(loan_before(&whole)).stored_keeping(keep),
                    Folded::Loan(loan_before(&split)).stored_keeping(keep)
                );
                for handler in crate::handlers::all() {
                    if handler.subscriptions().contains(&event.event_type.as_str()) {
                        prop_assert_eq!(
                            format!("{:?}", handler.handle(&whole)),
                            format!("{:?}", handler.handle(&split))
                        );
                    }
                }
                let compliance = ComplianceHandler::default();
                prop_assert_eq!(compliance.related_in(&whole), compliance.related_in(&split));
            }
        }
        // The draws' streams, each cut somewhere.
        let draws: std::collections::BTreeSet<String> = all
            .iter()
            .filter(|e| e.aggregate_type == "Draw")
            .map(|e| e.aggregate_id.clone())
            .collect();
        for draw in draws {
            let d = stream(&all, "Draw", &draw);
            let at = draw_cut.index(d.len() + 1);
            let mut resumed =
                snapshot::through_storage(&Folded::Draw(DrawState::fold(&d[..at])), 0);
            resumed.apply_all(d[at..].to_vec());
            prop_assert_eq!(&resumed, &Folded::Draw(DrawState::fold(&d)));
            prop_assert_eq!(resumed.view(), super::view("Draw", &d));
        }
    }
}

/// The first snapshot test above would pass on an empty history: this one holds it to
/// lives that reach what the fold keeps (fees, notices, delinquency, draws, reallocation).
#[test]
fn random_books_reach_every_part_of_the_loan_state() {
    use proptest::strategy::ValueTree;
    let mut runner = proptest::test_runner::TestRunner::deterministic();
    let mut index = || any::<Index>().new_tree(&mut runner).unwrap().current();
    let steps = (0..40)
        .map(|k| match k % 5 {
            0 => Step::Late { days: 45 },
            1 => Step::Draw {
                days: 3,
                percent: 30,
            },
            2 => Step::Pay {
                days: 5,
                back: 30,
                kind: 2,
                part: index(),
            },
            3 => Step::Late { days: 50 },
            _ => Step::Reverse(index()),
        })
        .collect();
    let all = random_books(steps);
    let loan = LoanState::fold(&stream(&all, "Loan", "L1"));
    assert!(!loan.payments.is_empty(), "payments");
    assert!(loan.payments.iter().any(|p| p.reversed), "a reversal");
    assert!(!loan.draws.is_empty(), "draws");
    assert!(
        !loan.late_reported.is_empty() || !loan.fees_assessed.is_empty(),
        "late notices or fees"
    );
    assert_ne!(loan.delinquency, Delinquency::default(), "delinquency");
    assert!(
        all.iter().any(|e| e.event_type == "Draw.Disbursed"),
        "a disbursed draw"
    );
}
