//! Folds on histories of 1 to 10,000 events, and properties of the payment rules.

use std::str::FromStr;
use std::time::Instant;

use chrono::{Days, NaiveDate, Utc};
use serde_json::{json, Value};

use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::Index;
use proptest::strategy::ValueTree;
use proptest::test_runner::TestRunner;

use super::*;
use crate::handlers::payment::{PaymentApplication, PaymentHandler};
use crate::handlers::testkit::{run, stored};
use crate::handlers::DomainHandler;
use crate::money::Money;
use crate::state::loan::AppliedPayment;

fn m(s: &str) -> Money {
    Money::from_str(s).unwrap()
}

fn created(loan: &str, amount: &str, rate: &str, n: u32, amort: &str, freq: &str) -> Value {
    json!({"eventType": "Loan.Created", "aggregateType": "Loan", "aggregateId": loan,
        "payload": {"loanId": loan, "borrowerId": "B1", "amount": amount, "interestRate": rate,
            "termMonths": n, "amortization": amort, "paymentFrequency": freq}})
}

fn funded(loan: &str, amount: &str, at: &str) -> Value {
    json!({"eventType": "Loan.Funded", "aggregateType": "Loan", "aggregateId": loan,
        "payload": {"loanId": loan, "fundedAmount": amount, "fundedAt": at}})
}

fn received(loan: &str, id: &str, amount: Money, on: NaiveDate) -> Value {
    json!({"eventType": "Payment.Received", "aggregateType": "Loan", "aggregateId": loan,
        "payload": {"paymentId": id, "loanId": loan, "amount": amount, "method": "wire",
            "receivedAt": format!("{on}T12:00:00Z")}})
}

fn reversed(loan: &str, id: &str) -> Value {
    json!({"eventType": "Payment.Reversed", "aggregateType": "Loan", "aggregateId": loan,
        "payload": {"paymentId": id, "loanId": loan, "reason": "returned"}})
}

/// One step of a random payment history.
#[derive(Debug, Clone)]
enum Step {
    /// Reverse one of the payments applied so far.
    Reverse(Index),
    /// A payment `days` after the previous step: the payoff amount, a cent above it, or a
    /// part of it.
    Pay { days: u64, kind: PayKind },
}

#[derive(Debug, Clone, Copy)]
enum PayKind {
    Payoff,
    AbovePayoff,
    Part(Index),
}

fn any_step(max_days: u64) -> impl Strategy<Value = Step> {
    let kind = prop_oneof![
        1 => Just(PayKind::Payoff),
        1 => Just(PayKind::AbovePayoff),
        2 => any::<Index>().prop_map(PayKind::Part),
    ];
    prop_oneof![
        1 => any::<Index>().prop_map(Step::Reverse),
        9 => (0..max_days, kind).prop_map(|(days, kind)| Step::Pay { days, kind }),
    ]
}

/// The money invariants of a loan: principal paid + outstanding = funded + disbursed;
/// every received dollar (of payments not reversed) is in exactly one of interest,
/// principal, fees, held (and refunded); the totals are the payments' sums; nothing is
/// paid beyond what an installment owes.
pub(crate) fn check(l: &LoanState) {
    let funded = l.funded_amount.unwrap_or_default();
    if l.funded_amount.is_some() {
        assert_eq!(
            l.paid_principal + l.outstanding_principal,
            funded + l.draws_disbursed
        );
    }
    assert!(!l.outstanding_principal.is_negative());
    assert!(!l.paid_interest.is_negative());
    let live: Vec<_> = l.payments.iter().filter(|p| !p.reversed).collect();
    let sum = |f: fn(&AppliedPayment) -> Money| live.iter().map(|p| f(p)).sum::<Money>();
    assert_eq!(sum(|p| p.split.principal), l.paid_principal);
    assert_eq!(sum(|p| p.split.interest), l.paid_interest);
    assert_eq!(sum(|p| p.split.fees), l.paid_fees);
    assert_eq!(sum(|p| p.split.held), l.held);
    for p in &live {
        let s = &p.split;
        assert_eq!(
            s.interest + s.principal + s.fees + s.held,
            p.amount,
            "{}",
            p.payment_id
        );
        for part in [s.interest, s.principal, s.fees, s.held, s.prepaid] {
            assert!(!part.is_negative(), "{p:?}");
        }
    }
    for i in &l.installments {
        assert!(
            i.interest_paid <= i.interest && !i.interest_paid.is_negative(),
            "{i:?}"
        );
        assert!(
            i.principal_paid <= i.principal && !i.principal_paid.is_negative(),
            "{i:?}"
        );
        assert!(i.fee_paid <= i.fee && !i.fee_paid.is_negative(), "{i:?}");
    }
    if l.funded_amount.is_some() {
        assert_eq!(
            l.status == LoanStatus::PaidOff,
            l.outstanding_principal.is_zero()
        );
    }
}

#[test]
fn a_history_of_one_event() {
    let mut h = Vec::new();
    stored(
        &mut h,
        created("L1", "250000", "6.25", 360, "amortized", "monthly"),
    );
    let doc = document(h.clone()).unwrap();
    assert_eq!(doc["aggregateType"], "Loan");
    assert_eq!(doc["version"], 1);
    let s = &doc["state"];
    assert_eq!(s["status"], "created");
    assert_eq!(s["terms"]["amount"], "250000.00");
    assert_eq!(s["terms"]["interestRate"], "6.25");
    assert_eq!(s["outstandingPrincipal"], "0.00");
    assert_eq!(s["nextDue"], Value::Null);
    assert!(document(Vec::new()).is_none());
}

#[test]
fn a_history_of_ten_thousand_events() {
    // Per step: a reversal one time in twenty (when there is a payment to reverse), else a
    // payment of $1,000 to $100,000 0-2 days after the last. Drawn once from proptest's
    // deterministic generator: a case this large is not worth shrinking.
    let step = (0u8..20, any::<Index>(), 0u64..3, 100_000i64..10_000_000);
    let steps = vec(step, 9_998)
        .new_tree(&mut TestRunner::deterministic())
        .unwrap()
        .current();
    let mut h = Vec::with_capacity(10_000);
    stored(
        &mut h,
        created("L1", "900000000", "5", 600, "amortized", "monthly"),
    );
    stored(&mut h, funded("L1", "900000000", "2026-01-31T09:00:00Z"));
    let start = NaiveDate::from_ymd_opt(2026, 2, 1).unwrap();
    let mut paid: Vec<String> = Vec::new();
    let mut day = 0u64;
    for (roll, which, days, cents) in steps {
        if roll == 0 && !paid.is_empty() {
            let id = paid.remove(which.index(paid.len()));
            stored(&mut h, reversed("L1", &id));
        } else {
            day += days;
            let id = format!("P{}", h.len());
            stored(
                &mut h,
                received("L1", &id, Money::from_cents(cents), start + Days::new(day)),
            );
            paid.push(id);
        }
    }
    assert_eq!(h.len(), 10_000);
    let t = Instant::now();
    let l = LoanState::fold(&h);
    let took = t.elapsed();
    assert_eq!(l.version, 9_999 + 1);
    check(&l);
    assert!(l.payments.len() > 9_000);
    assert!(l.payments.iter().any(|p| p.reversed));
    // The view of the whole history, through the public entry point.
    let doc = document(h).unwrap();
    assert_eq!(doc["version"], 10_000);
    assert_eq!(
        doc["state"]["outstandingPrincipal"],
        json!(l.outstanding_principal)
    );
    eprintln!("fold of 10,000 events: {took:?}");
    assert!(took.as_secs() < 20, "fold of 10,000 events took {took:?}");
}

/// A loan as Loan.Created takes it: amount, rate, term, amortization, frequency.
fn any_loan() -> impl Strategy<Value = (Money, String, u32, &'static str, &'static str)> {
    (
        100_000i64..100_100_000,
        0u32..25,
        0u32..100,
        1u32..=40,
        prop::sample::select(&["amortized", "interest_only"][..]),
        prop::sample::select(&["monthly", "quarterly", "maturity"][..]),
    )
        .prop_map(|(cents, whole, hundredths, quarters, amort, freq)| {
            let rate = format!("{whole}.{hundredths:02}");
            (Money::from_cents(cents), rate, 3 * quarters, amort, freq)
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(150))]

    /// Random loans, payments (some above payoff) and reversals: after every event the
    /// money invariants hold, and handler outputs agree with the fold.
    #[test]
    fn payment_rules_keep_the_books_balanced(
        (amount, rate, n, amort, freq) in any_loan(),
        steps in vec(any_step(60), 40),
    ) {
        let loan = "L1";
        let mut h = Vec::new();
        stored(
            &mut h,
            created(loan, &amount.to_string(), &rate, n, amort, freq),
        );
        stored(
            &mut h,
            funded(loan, &amount.to_string(), "2026-01-31T09:00:00Z"),
        );
        run(&PaymentHandler, &mut h, &[]).unwrap();
        let mut on = NaiveDate::from_ymd_opt(2026, 2, 1).unwrap();
        let mut ids: Vec<String> = Vec::new();
        for (k, step) in steps.into_iter().enumerate() {
            let before = LoanState::fold(&h);
            match step {
                Step::Reverse(which) => {
                    if ids.is_empty() {
                        continue;
                    }
                    let id = ids[which.index(ids.len())].clone();
                    stored(&mut h, reversed(loan, &id));
                    let ok = run(&PaymentApplication, &mut h, &[]).is_ok();
                    prop_assert_eq!(ok, before.decide_reversal(&id).is_ok());
                }
                Step::Pay { days, kind } => {
                    on = on + Days::new(days);
                    let payoff = before.payoff_amount(on);
                    let amount = match kind {
                        PayKind::Payoff => payoff,
                        PayKind::AbovePayoff => payoff + Money::from_cents(1),
                        PayKind::Part(part) => {
                            let payoff_cents = payoff.amount().mantissa().max(2) as usize;
                            Money::from_cents(1 + part.index(payoff_cents) as i64).min(payoff)
                        }
                    }
                    .max(Money::from_cents(1));
                    let id = format!("{loan}-P{k}");
                    stored(&mut h, received(loan, &id, amount, on));
                    // Every payment is booked: applied, or held and refunded.
                    let out = run(&PaymentApplication, &mut h, &[]).unwrap();
                    ids.push(id);
                    let after = LoanState::fold(&h);
                    let of = |t: &str| out.iter().filter(|e| e.event_type == t).count();
                    if let Some(applied) = out.iter().find(|e| e.event_type == "Payment.Applied") {
                        prop_assert_eq!(
                            &applied.payload["remainingPrincipal"],
                            &json!(after.outstanding_principal)
                        );
                    }
                    prop_assert_eq!(
                        of("Loan.PaidOff") == 1,
                        before.status != LoanStatus::PaidOff && after.status == LoanStatus::PaidOff
                    );
                    if matches!(kind, PayKind::Payoff | PayKind::AbovePayoff) && !payoff.is_zero() {
                        prop_assert_eq!(after.status, LoanStatus::PaidOff);
                    }
                    // Held money is refunded, and only on a loan paid off.
                    prop_assert_eq!(of("Payment.ExcessHeld"), of("Refund.Due"));
                    if of("Refund.Due") > 0 {
                        prop_assert_eq!(after.status, LoanStatus::PaidOff);
                    }
                    if matches!(kind, PayKind::AbovePayoff) || before.status == LoanStatus::PaidOff {
                        prop_assert_eq!(of("Refund.Due"), 1);
                    }
                }
            }
            check(&LoanState::fold(&h));
        }
    }
}

#[test]
fn the_fold_does_not_depend_on_where_records_land() {
    // The same inputs with and without the handlers' records interleaved.
    let mut with = Vec::new();
    stored(
        &mut with,
        created("L1", "100000", "7.5", 12, "amortized", "monthly"),
    );
    stored(&mut with, funded("L1", "100000", "2026-01-31T09:00:00Z"));
    let mut without = with.clone();
    run(&PaymentHandler, &mut with, &[]).unwrap();
    let day = |d: u32| NaiveDate::from_ymd_opt(2026, 2, d).unwrap();
    for (i, amount) in ["8675.74", "100.00", "20000.00"].iter().enumerate() {
        let e = received("L1", &format!("P{i}"), m(amount), day(10 + i as u32));
        stored(&mut with, e.clone());
        run(&PaymentApplication, &mut with, &[]).unwrap();
        stored(&mut without, e);
    }
    let (a, b) = (LoanState::fold(&with), LoanState::fold(&without));
    assert_eq!(a.installments, b.installments);
    assert_eq!(a.payments, b.payments);
    assert_eq!(a.outstanding_principal, b.outstanding_principal);
}

#[test]
fn late_payments_are_reported_once_per_installment() {
    let mut h = Vec::new();
    stored(
        &mut h,
        created("L1", "100000", "7.5", 12, "amortized", "monthly"),
    );
    stored(&mut h, funded("L1", "100000", "2026-01-31T09:00:00Z"));
    stored(
        &mut h,
        received(
            "L1",
            "P1",
            m("8675.74"),
            NaiveDate::from_ymd_opt(2026, 2, 27).unwrap(),
        ),
    );
    run(&PaymentApplication, &mut h, &[]).unwrap();
    // Grace of 15 days: on May 16, installment 2 (Mar 31) is 46 days late and 3 (Apr 30)
    // 16; 4 (May 31) is not due.
    let as_of = NaiveDate::from_ymd_opt(2026, 5, 16).unwrap();
    let now = Utc::now();
    let late = crate::late::late_events(&h, as_of, now).unwrap();
    let of = |evs: &[crate::envelope::NewEvent], t: &str| -> Vec<crate::envelope::NewEvent> {
        evs.iter().filter(|e| e.event_type == t).cloned().collect()
    };
    let got: Vec<(Value, Value, Value)> = of(&late, "Payment.Late")
        .iter()
        .map(|e| {
            (
                e.payload["installment"].clone(),
                e.payload["daysLate"].clone(),
                e.payload["amountDue"].clone(),
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            (json!(2), json!(46), json!("8675.74")),
            (json!(3), json!(16), json!("8675.74"))
        ]
    );
    // A 5 % fee each (of 8,675.74: 433.787 rounds to 433.79), one status change.
    let fees: Vec<Value> = of(&late, "Payment.LateFeeAssessed")
        .iter()
        .map(|e| e.payload["amount"].clone())
        .collect();
    assert_eq!(fees, [json!("433.79"), json!("433.79")]);
    let status = of(&late, "Loan.StatusChanged");
    assert_eq!(status.len(), 1);
    assert_eq!(status[0].payload["fromStatus"], "current");
    assert_eq!(status[0].payload["toStatus"], "delinquent");
    assert_eq!(status[0].payload["daysPastDue"], 46);
    // The same run again: the same ids and content (the store keeps one copy).
    let again = crate::late::late_events(&h, as_of, now).unwrap();
    assert_eq!(
        late.iter()
            .map(|e| (e.event_id, &e.fingerprint))
            .collect::<Vec<_>>(),
        again
            .iter()
            .map(|e| (e.event_id, &e.fingerprint))
            .collect::<Vec<_>>()
    );
    // Once stored, a later run reports only what is newly late.
    for e in late {
        let seq = h.len() as u64 + 1;
        h.push(e.into_envelope(seq, now));
    }
    let june = NaiveDate::from_ymd_opt(2026, 6, 16).unwrap();
    let later = crate::late::late_events(&h, june, now).unwrap();
    let late4 = of(&later, "Payment.Late");
    assert_eq!(late4.len(), 1);
    assert_eq!(late4[0].payload["installment"], 4);
    // 77 days past due: seriously delinquent.
    assert_eq!(
        of(&later, "Loan.StatusChanged")[0].payload["toStatus"],
        "seriously_delinquent"
    );
    // Payments make installments current again; a paid-off loan is never late.
    let payoff = LoanState::fold(&h).payoff_amount(june);
    stored(&mut h, received("L1", "P2", payoff, june));
    run(&PaymentApplication, &mut h, &[]).unwrap();
    let loan = LoanState::fold(&h);
    assert_eq!(loan.status, LoanStatus::PaidOff);
    assert_eq!(
        loan.paid_fees,
        m("867.58"),
        "the fees were paid with the payoff"
    );
    assert!(
        crate::late::late_events(&h, NaiveDate::from_ymd_opt(2027, 1, 1).unwrap(), now)
            .unwrap()
            .is_empty()
    );
}

#[test]
fn draw_and_other_views() {
    let mut h = Vec::new();
    stored(
        &mut h,
        json!({"eventType": "Draw.Requested", "aggregateType": "Draw", "aggregateId": "D1",
        "payload": {"drawId": "D1", "loanId": "L1", "amount": "5000"}}),
    );
    let v = view("Draw", &h);
    assert_eq!(v["status"], "requested");
    assert_eq!(v["requestedAmount"], "5000.00");
    let mut b = Vec::new();
    stored(
        &mut b,
        json!({"eventType": "Borrower.KYCFailed", "aggregateType": "Borrower", "aggregateId": "B1",
        "payload": {"borrowerId": "B1", "reason": "expired id"}}),
    );
    assert_eq!(view("Borrower", &b)["kyc"], "failed");
    let mut n = Vec::new();
    stored(
        &mut n,
        json!({"eventType": "License.Expiring", "aggregateType": "License", "aggregateId": "LIC1",
        "payload": {"licenseId": "LIC1", "expiresAt": "2027-01-01T00:00:00Z"}}),
    );
    assert_eq!(view("License", &n)["events"], 1);
}

/// A random loan history: created, funded (with its schedule), then payments (the payoff,
/// above it, or a part) and reversals, each followed by what the payment handler records.
fn random_loan_history(
    (amount, rate, n, amort, freq): (Money, String, u32, &'static str, &'static str),
    steps: Vec<Step>,
) -> Vec<crate::envelope::EventEnvelope> {
    let loan = "L1";
    let mut h = Vec::new();
    stored(
        &mut h,
        created(loan, &amount.to_string(), &rate, n, amort, freq),
    );
    stored(
        &mut h,
        funded(loan, &amount.to_string(), "2026-01-31T09:00:00Z"),
    );
    run(&PaymentHandler, &mut h, &[]).unwrap();
    let mut on = NaiveDate::from_ymd_opt(2026, 2, 1).unwrap();
    let mut ids: Vec<String> = Vec::new();
    for (k, step) in steps.into_iter().enumerate() {
        match step {
            Step::Reverse(which) if !ids.is_empty() => {
                let id = ids[which.index(ids.len())].clone();
                stored(&mut h, reversed(loan, &id));
            }
            Step::Reverse(_) => continue,
            Step::Pay { days, kind } => {
                on = on + Days::new(days);
                let payoff = LoanState::fold(&h).payoff_amount(on);
                let amount = match kind {
                    PayKind::Payoff => payoff,
                    PayKind::AbovePayoff => payoff + Money::from_cents(1),
                    PayKind::Part(part) => {
                        let payoff_cents = payoff.amount().mantissa().max(2) as usize;
                        Money::from_cents(1 + part.index(payoff_cents) as i64).min(payoff)
                    }
                }
                .max(Money::from_cents(1));
                let id = format!("{loan}-P{k}");
                stored(&mut h, received(loan, &id, amount, on));
                ids.push(id);
            }
        }
        // Refusals are part of a history too: the fold must skip them the same way.
        let _ = run(&PaymentApplication, &mut h, &[]);
    }
    h
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(100))]

    /// A snapshot taken anywhere in a random history (stored as JSON and read back, keeping
    /// all the payments whole or only the latest few), plus the events after it, folds to
    /// the same stored state, view and state document as the whole history, unless an
    /// event after it reaches an archived payment (then the reader folds the whole
    /// history); and a handler given the snapshot and the tail meets the same loan and
    /// decides the same.
    #[test]
    fn snapshot_plus_tail_equals_the_full_fold(
        loan in any_loan(),
        steps in vec(any_step(60), 30),
        cut in any::<Index>(),
        few in 0usize..4,
    ) {
        let h = random_loan_history(loan, steps);
        let at = cut.index(h.len() + 1);
        let full = Folded::Loan(LoanState::fold(&h));
        for keep in [snapshot::KEPT_PAYMENTS, few] {
            let taken = Folded::Loan(LoanState::fold(&h[..at]));
            let snapshot = snapshot::through_storage(&taken, keep);
            prop_assert_eq!(snapshot.stored_keeping(keep), taken.stored_keeping(keep));
            prop_assert_eq!(snapshot.view(), taken.view());
            if !snapshot.folds_exactly(&h[at..]) {
                continue;
            }
            let mut resumed = snapshot.clone();
            resumed.apply_all(h[at..].to_vec());
            prop_assert_eq!(resumed.stored_keeping(keep), full.stored_keeping(keep));
            prop_assert_eq!(resumed.view(), full.view());
            let prior = (at > 0).then_some(snapshot.clone());
            prop_assert_eq!(
                snapshot::document_from("Loan", "L1", prior, h[at..].to_vec()),
                document(h.clone())
            );
            // The handler's view of the last event: prior + tail equals the whole history.
            if at < h.len() {
                let event = h.last().unwrap();
                let whole = crate::handlers::HandlerInput {
                    event,
                    prior: None,
                    history: &h,
                    related: &[],
                };
                let split = crate::handlers::HandlerInput {
                    event,
                    prior: Some(&snapshot),
                    history: &h[at..],
                    related: &[],
                };
                prop_assert_eq!(
                    Folded::Loan(crate::handlers::loan_before(&whole)).stored_keeping(keep),
                    Folded::Loan(crate::handlers::loan_before(&split)).stored_keeping(keep)
                );
                prop_assert_eq!(
                    format!("{:?}", PaymentApplication.handle(&whole)),
                    format!("{:?}", PaymentApplication.handle(&split))
                );
            }
        }
    }
}

/// Loan L1 created and funded on 2026-01-31 (`amount`, `rate` %, `term` monthly
/// installments, amortized), as stored.
fn funded_loan(amount: &str, rate: &str, term: u32) -> Vec<crate::envelope::EventEnvelope> {
    let mut h = Vec::new();
    stored(
        &mut h,
        created("L1", amount, rate, term, "amortized", "monthly"),
    );
    stored(&mut h, funded("L1", amount, "2026-01-31T09:00:00Z"));
    h
}

/// Day `d` after 2026-02-01.
fn day(d: u64) -> NaiveDate {
    NaiveDate::from_ymd_opt(2026, 2, 1).unwrap() + Days::new(d)
}

/// A loan's snapshot keeps the latest payments whole; an event that reaches an older one
/// (dated before them, reversing or repeating one) is not folded onto it, and the others
/// fold as the whole history does.
#[test]
fn events_reaching_archived_payments_are_folded_from_the_whole_history() {
    let mut h = funded_loan("10000.00", "6", 12);
    for k in 0..6u64 {
        stored(
            &mut h,
            received("L1", &format!("P{k}"), m("100.00"), day(10 * k)),
        );
    }
    let snapshot = snapshot::through_storage(&Folded::Loan(LoanState::fold(&h)), 2);
    let Folded::Loan(loan) = &snapshot else {
        panic!("a loan")
    };
    assert_eq!(
        loan.payments.len(),
        2,
        "the two latest payments are kept whole"
    );
    assert_eq!(snapshot.view()["payments"]["applied"], 6);
    let at = h.len();
    let reaching = [
        received("L1", "late", m("5.00"), day(15)),
        reversed("L1", "P1"),
        received("L1", "P0", m("5.00"), day(60)),
    ];
    for event in reaching {
        let mut longer = h.clone();
        stored(&mut longer, event.clone());
        assert!(!snapshot.folds_exactly(&longer[at..]), "{event}");
    }
    let not_reaching = [
        received("L1", "new", m("5.00"), day(45)),
        reversed("L1", "P5"),
        received("L1", "P4", m("5.00"), day(60)),
    ];
    for event in not_reaching {
        let mut longer = h.clone();
        stored(&mut longer, event.clone());
        let _ = run(&PaymentApplication, &mut longer, &[]);
        assert!(snapshot.folds_exactly(&longer[at..]), "{event}");
        let mut resumed = snapshot.clone();
        resumed.apply_all(longer[at..].to_vec());
        let full = Folded::Loan(LoanState::fold(&longer));
        assert_eq!(resumed.stored_keeping(2), full.stored_keeping(2), "{event}");
        assert_eq!(resumed.view(), full.view(), "{event}");
    }
}

/// The stored loan does not grow with the schedule (it is derived when read) nor with the
/// payments (only the latest are kept whole).
#[test]
fn a_stored_loan_stays_small_as_it_ages() {
    let mut h = funded_loan("300000.00", "6.5", 360);
    let size = |h: &[crate::envelope::EventEnvelope]| {
        serde_json::to_string(&Folded::Loan(LoanState::fold(h)))
            .unwrap()
            .len()
    };
    let funded_size = size(&h);
    let whole = serde_json::to_string(&LoanState::fold(&h)).unwrap().len();
    assert!(funded_size * 20 < whole, "{funded_size} against {whole}");
    let mut sizes = Vec::new();
    for k in 0..1000u64 {
        stored(
            &mut h,
            received("L1", &format!("P{k}"), m("10.00"), day(k / 4)),
        );
        if [10, 100, 1000].contains(&(k + 1)) {
            sizes.push(size(&h));
        }
    }
    // Past the kept payments only the archived ones' fingerprints grow: about 2.5 bytes
    // each at 1,000 payments (a Golomb-Rice code of 28-bit numbers), in base64 text.
    assert!(sizes[2] < sizes[1] + 900 * 4, "{funded_size} {sizes:?}");
    let whole_aged = serde_json::to_string(&LoanState::fold(&h)).unwrap().len();
    assert!(sizes[2] * 20 < whole_aged, "{sizes:?} against {whole_aged}");
}

/// The archived payments' fingerprints are stored as one base64 text of their code; a
/// stored loan whose text is not such a code (corrupt, or of another width) is refused
/// with an error (the reader then folds the history), never a panic.
#[test]
fn corrupt_archived_fingerprints_are_refused_not_panicked_on() {
    let mut h = funded_loan("10000.00", "6", 12);
    for k in 0..40u64 {
        stored(&mut h, received("L1", &format!("P{k}"), m("1.00"), day(k)));
    }
    let taken = Folded::Loan(LoanState::fold(&h));
    let stored_json = serde_json::to_value(taken.stored_keeping(4)).unwrap();
    let ids = &stored_json["state"]["loan"]["archived"]["ids"];
    let text = ids.as_str().expect("the fingerprints are one text");
    // Fewer than the 28 bits of each fingerprint as they are (6 bits a base64 character).
    assert!(
        text.len() < 36 * 28 / 6,
        "{} characters for 36 ids",
        text.len()
    );
    let read = |ids: Value| {
        let mut doc = stored_json.clone();
        doc["state"]["loan"]["archived"]["ids"] = ids;
        serde_json::from_value::<Folded>(doc)
    };
    let back = read(ids.clone()).unwrap();
    assert_eq!(back.stored_keeping(4), taken.stored_keeping(4));
    let Folded::Loan(loan) = &back else {
        panic!("a loan")
    };
    assert!((0..40).all(|k| loan.archived.may_hold(&format!("P{k}")) == (k < 36)));
    // 24-bit fingerprints of the same ids: a code of another width.
    let other_width = {
        use base64::Engine;
        let narrow: Vec<u32> = loan.archived.ids.iter().map(|f| f >> 4).collect();
        let bytes = loan::fingerprint_set::encode(&narrow, 24).unwrap();
        base64::engine::general_purpose::STANDARD_NO_PAD.encode(bytes)
    };
    let mut cut = text.to_string();
    cut.truncate(text.len() - 3);
    for bad in [
        json!(other_width),
        json!(cut),
        json!("not base64!"),
        json!(""),
        json!([1, 2, 3]),
        json!(7),
    ] {
        assert!(read(bad.clone()).is_err(), "{bad}");
    }
}

#[test]
fn snapshots_are_kept_only_for_loans_and_draws() {
    assert!(Folded::is_snapshotted("Loan"));
    assert!(Folded::is_snapshotted("Draw"));
    assert!(!Folded::is_snapshotted("Borrower"));
    assert_eq!(
        snapshot::document_from("Loan", "L1", None, Vec::new()),
        None
    );
}
