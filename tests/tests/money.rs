//! The lending money rules end to end on LocalStack through the local runner: a
//! construction loan drawn twice (balance and regenerated schedules), an over-payment held
//! and refunded (nothing dead-lettered), a loan going delinquent, seriously delinquent and
//! into default across late-job runs and cured by a payment, a backdated payment that
//! rescinds a late notice and reallocates a later payment, and the payoff quote.
//!
//! Each test uses a tenant of its own; expected figures are computed here from the rules
//! (exact decimals), independently of the handlers, and compared with what the table holds.

use std::str::FromStr;
use std::time::Duration;

use integration_tests::{types, Api};
use rust_decimal::Decimal;
use serde_json::{json, Value};

const WAIT: Duration = Duration::from_secs(240);

fn id(prefix: &str) -> String {
    format!(
        "{prefix}-{}",
        &uuid::Uuid::new_v4().simple().to_string()[..12]
    )
}

fn d(v: &Value) -> Decimal {
    Decimal::from_str(v.as_str().unwrap_or_else(|| panic!("not money: {v}"))).unwrap()
}

/// Money as the API writes it: two decimals.
fn money(x: Decimal) -> String {
    let mut x = round(x);
    x.rescale(2);
    x.to_string()
}

/// Half away from zero to the cent.
fn round(x: Decimal) -> Decimal {
    x.round_dp_with_strategy(2, rust_decimal::RoundingStrategy::MidpointAwayFromZero)
}

/// POST one event or a batch; the stored envelopes. The events get their eventIds here, so
/// a request a busy emulator answered with a 5xx (nothing stored) is resent as it was: an
/// exact resend is answered 200 with the stored envelopes.
async fn post(api: &Api, mut body: Value) -> Vec<Value> {
    match body.get_mut("events").and_then(Value::as_array_mut) {
        Some(events) => events
            .iter_mut()
            .for_each(|e| e["eventId"] = json!(uuid::Uuid::new_v4().to_string())),
        None => body["eventId"] = json!(uuid::Uuid::new_v4().to_string()),
    }
    let mut r = api.post("/events", &body).await;
    for _ in 0..5 {
        if r.status < 500 {
            break;
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
        r = api.post("/events", &body).await;
    }
    assert!(
        r.status == 201 || r.status == 200,
        "{body}\n-> {}: {}",
        r.status,
        r.body
    );
    r.body["events"].as_array().cloned().unwrap_or_default()
}

fn count(h: &[Value], event_type: &str) -> usize {
    h.iter().filter(|e| e["eventType"] == event_type).count()
}

fn all_of<'a>(h: &'a [Value], event_type: &str) -> Vec<&'a Value> {
    h.iter().filter(|e| e["eventType"] == event_type).collect()
}

async fn wait_for(api: &Api, t: &str, id: &str, event_type: &str, n: usize) -> Vec<Value> {
    let h = api
        .wait_history(t, id, WAIT, |h| count(h, event_type) >= n)
        .await;
    assert!(
        count(&h, event_type) >= n,
        "{t} {id}: waited for {n} x {event_type}, history is {:?}",
        types(&h)
    );
    h
}

fn loan_created(loan: &str, amount: &str, loan_type: &str) -> Value {
    json!({"eventType": "Loan.Created", "aggregateType": "Loan", "aggregateId": loan,
        "payload": {"loanId": loan, "borrowerId": "B-1", "amount": amount, "interestRate": "7.5",
            "termMonths": 12, "amortization": "amortized", "paymentFrequency": "monthly",
            "loanType": loan_type}})
}

fn loan_funded(loan: &str, amount: &str) -> Value {
    loan_funded_at(loan, amount, "2026-01-31T09:00:00Z")
}

fn loan_funded_at(loan: &str, amount: &str, at: &str) -> Value {
    json!({"eventType": "Loan.Funded", "aggregateType": "Loan", "aggregateId": loan,
        "payload": {"loanId": loan, "fundedAmount": amount, "fundedAt": at}})
}

fn payment(loan: &str, pid: &str, amount: &str, at: &str) -> Value {
    json!({"eventType": "Payment.Received", "eventVersion": 2, "aggregateType": "Loan",
        "aggregateId": loan, "payload": {"paymentId": pid, "loanId": loan, "amount": amount,
            "paymentMethod": "wire", "receivedAt": at}})
}

/// A funded $100,000 term loan at 7.5 % over 12 months (funded 2026-01-31), schedule stored.
async fn term_loan(api: &Api) -> String {
    let loan = id("L");
    post(
        api,
        json!({"events": [loan_created(&loan, "100000.00", "term"), loan_funded(&loan, "100000.00")]}),
    )
    .await;
    wait_for(api, "Loan", &loan, "PaymentSchedule.Generated", 1).await;
    loan
}

async fn state(api: &Api, loan: &str, query: &str) -> Value {
    let r = api
        .get(&format!("/aggregates/Loan/{loan}/state{query}"))
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    r.body
}

async fn late_job(api: &Api, as_of: &str) -> Value {
    let r = api
        .post("/admin/late-payments", &json!({ "asOf": as_of }))
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["errors"], json!([]), "{}", r.body);
    r.body
}

/// A draw through request, inspection (passed) and decision; returns the draw's history
/// once it is disbursed.
async fn draw(api: &Api, loan: &str, amount: &str) -> Vec<Value> {
    let d = id("D");
    post(
        api,
        json!({"eventType": "Draw.Requested", "aggregateType": "Draw", "aggregateId": d,
            "payload": {"drawId": d, "loanId": loan, "amount": amount}}),
    )
    .await;
    let h = wait_for(api, "Draw", &d, "Inspection.Scheduled", 1).await;
    let scheduled = all_of(&h, "Inspection.Scheduled")[0].clone();
    post(
        api,
        json!({"eventType": "Inspection.Completed", "aggregateType": "Draw", "aggregateId": d,
            "payload": {"inspectionId": scheduled["payload"]["inspectionId"], "drawId": d,
                "result": "passed"}}),
    )
    .await;
    let h = api
        .wait_history("Draw", &d, WAIT, |h| {
            count(h, "Draw.Disbursed") + count(h, "Draw.Rejected") >= 1
        })
        .await;
    assert_eq!(count(&h, "Draw.Disbursed"), 1, "{:?}", types(&h));
    h
}

/// The effective schedule of a loan's history: each `PaymentSchedule.Generated` replaces
/// the installments from its first number on. (number, due date, principal) per installment.
fn effective_schedule(h: &[Value]) -> Vec<(u64, String, Decimal)> {
    let mut out: Vec<(u64, String, Decimal)> = Vec::new();
    for s in all_of(h, "PaymentSchedule.Generated") {
        let payments = s["payload"]["payments"].as_array().unwrap();
        let first = payments[0]["number"].as_u64().unwrap();
        out.truncate(first as usize - 1);
        out.extend(payments.iter().map(|p| {
            (
                p["number"].as_u64().unwrap(),
                p["dueDate"].as_str().unwrap().to_string(),
                d(&p["principal"]),
            )
        }));
    }
    out
}

#[tokio::test]
async fn a_construction_loan_draws_twice_and_its_schedule_follows() {
    let api = Api::new_tenant();
    let loan = id("L");
    // $1,000,000 construction loan, $400,000 advanced at closing two months ago (draws are
    // disbursed today, when they are approved, so the schedule must still run then).
    let funded_at = (chrono::Utc::now() - chrono::Months::new(2))
        .format("%Y-%m-%dT09:00:00Z")
        .to_string();
    post(
        &api,
        json!({"events": [loan_created(&loan, "1000000.00", "construction"),
            loan_funded_at(&loan, "400000.00", &funded_at)]}),
    )
    .await;
    let h = wait_for(&api, "Loan", &loan, "PaymentSchedule.Generated", 1).await;
    let first = effective_schedule(&h);
    assert_eq!(first.len(), 12);
    let sum: Decimal = first.iter().map(|i| i.2).sum();
    assert_eq!(money(sum), "400000.00");
    let s = state(&api, &loan, "").await["state"].clone();
    assert_eq!(s["loanType"], "construction");
    assert_eq!(s["draws"]["availableToDraw"], "600000.00");

    // Two draws; each disbursal adds to the balance and regenerates the schedule after
    // its date (the draw handler disburses on the approval's time, so the date is read
    // from the Draw.Disbursed event).
    let mut disbursed = Decimal::ZERO;
    for (n, amount) in [(2usize, "250000.00"), (3, "150000.00")] {
        let dh = draw(&api, &loan, amount).await;
        let event = all_of(&dh, "Draw.Disbursed")[0].clone();
        assert_eq!(event["payload"]["amount"], amount);
        disbursed += d(&event["payload"]["amount"]);
        let on = &event["payload"]["disbursedAt"].as_str().unwrap()[..10];
        let h = wait_for(&api, "Loan", &loan, "PaymentSchedule.Generated", n).await;
        let schedules = all_of(&h, "PaymentSchedule.Generated");
        let (before, latest) = (schedules[n - 2], schedules[n - 1]);
        assert_eq!(
            latest["payload"]["supersedes"],
            before["payload"]["scheduleId"]
        );
        assert_eq!(latest["metadata"]["causationId"], event["eventId"]);
        // Kept: the installments due on or before the disbursal date.
        let kept = effective_schedule(
            &h[..h
                .iter()
                .position(|e| e["eventId"] == latest["eventId"])
                .unwrap()],
        )
        .iter()
        .filter(|i| i.1.as_str() <= on)
        .count() as u64;
        assert_eq!(
            latest["payload"]["payments"][0]["number"].as_u64().unwrap(),
            kept + 1,
            "regenerated after the {kept} installments due by {on}"
        );
        let schedule = effective_schedule(&h);
        assert_eq!(schedule.len(), 12);
        let sum: Decimal = schedule.iter().map(|i| i.2).sum();
        assert_eq!(
            money(sum),
            money(Decimal::from(400_000) + disbursed),
            "principals = funded + disbursed"
        );
        let s = state(&api, &loan, "").await["state"].clone();
        assert_eq!(
            d(&s["outstandingPrincipal"]),
            Decimal::from(400_000) + disbursed
        );
        assert_eq!(d(&s["disbursedDrawsTotal"]), disbursed);
        assert_eq!(s["scheduleId"], latest["payload"]["scheduleId"]);
    }
    let s = state(&api, &loan, "").await["state"].clone();
    assert_eq!(s["draws"]["availableToDraw"], "200000.00");
    // A draw above what is available is rejected with the reason.
    let d3 = id("D");
    post(
        &api,
        json!({"eventType": "Draw.Requested", "aggregateType": "Draw", "aggregateId": d3,
            "payload": {"drawId": d3, "loanId": loan, "amount": "300000.00"}}),
    )
    .await;
    let h = wait_for(&api, "Draw", &d3, "Inspection.Scheduled", 1).await;
    let insp = all_of(&h, "Inspection.Scheduled")[0]["payload"]["inspectionId"].clone();
    post(
        &api,
        json!({"eventType": "Inspection.Completed", "aggregateType": "Draw", "aggregateId": d3,
            "payload": {"inspectionId": insp, "drawId": d3, "result": "passed"}}),
    )
    .await;
    let h = wait_for(&api, "Draw", &d3, "Draw.Rejected", 1).await;
    let reason = all_of(&h, "Draw.Rejected")[0]["payload"]["reason"].clone();
    assert!(
        reason
            .as_str()
            .unwrap()
            .contains("above the 200000.00 available"),
        "{reason}"
    );
}

#[tokio::test]
async fn an_over_payment_pays_the_loan_off_and_the_excess_is_refunded() {
    let api = Api::new_tenant();
    let loan = term_loan(&api).await;
    // On Feb 15 the loan owes its principal and 15 days of interest since funding.
    let accrued = round(
        Decimal::from(100_000) * Decimal::from_str("7.5").unwrap() * Decimal::from(15)
            / Decimal::from(36_500),
    );
    let payoff = Decimal::from(100_000) + accrued;
    let paid = Decimal::from(101_000);
    post(
        &api,
        payment(&loan, "P1", &money(paid), "2026-02-15T12:00:00Z"),
    )
    .await;
    let h = wait_for(&api, "Loan", &loan, "Refund.Due", 1).await;
    let h = if count(&h, "Loan.PaidOff") == 0 {
        wait_for(&api, "Loan", &loan, "Loan.PaidOff", 1).await
    } else {
        h
    };
    let applied = all_of(&h, "Payment.Applied")[0];
    assert_eq!(applied["payload"]["allocation"]["principal"], "100000.00");
    assert_eq!(applied["payload"]["allocation"]["interest"], money(accrued));
    assert_eq!(applied["payload"]["remainingPrincipal"], "0.00");
    let held = all_of(&h, "Payment.ExcessHeld")[0];
    let refund = all_of(&h, "Refund.Due")[0];
    assert_eq!(held["payload"]["amount"], money(paid - payoff));
    assert_eq!(refund["payload"]["amount"], money(paid - payoff));
    assert_eq!(refund["payload"]["paymentId"], "P1");
    assert_eq!(refund["payload"]["borrowerId"], "B-1");
    // Every dollar: applied + held = received.
    assert_eq!(
        d(&applied["payload"]["allocation"]["principal"])
            + d(&applied["payload"]["allocation"]["interest"])
            + d(&held["payload"]["amount"]),
        paid
    );
    assert_eq!(
        all_of(&h, "Loan.PaidOff")[0]["payload"]["finalPaymentId"],
        "P1"
    );

    // A payment on the paid-off loan is held and refunded whole.
    post(&api, payment(&loan, "P2", "250.00", "2026-02-20T12:00:00Z")).await;
    let h = wait_for(&api, "Loan", &loan, "Refund.Due", 2).await;
    let refund = all_of(&h, "Refund.Due")[1];
    assert_eq!(refund["payload"]["amount"], "250.00");
    assert!(refund["payload"]["reason"]
        .as_str()
        .unwrap()
        .contains("already paid off"));
    let s = state(&api, &loan, "").await["state"].clone();
    assert_eq!(s["status"], "paid_off");
    assert_eq!(d(&s["refundsDue"]), paid - payoff + Decimal::from(250));
    // Nothing of this tenant in the payment DLQ.
    let r = api.get("/dead-letters?domain=payment").await;
    assert_eq!(r.status, 200, "{}", r.body);
    let letters = r.body["deadLetters"][0]["messages"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert!(letters.is_empty(), "{letters:?}");
}

#[tokio::test]
async fn a_loan_goes_delinquent_then_into_default_and_is_cured() {
    let api = Api::new_tenant();
    let loan = term_loan(&api).await;
    // Installment 1 is due Feb 28; the grace period is 15 days.
    let r = late_job(&api, "2026-03-15").await;
    assert_eq!(r["emitted"], 0, "{r}");
    let steps = [
        ("2026-03-16", "delinquent", 16),
        ("2026-04-29", "seriously_delinquent", 60),
        ("2026-05-29", "defaulted", 90),
    ];
    for (n, (as_of, to, days)) in steps.iter().enumerate() {
        let r = late_job(&api, as_of).await;
        assert_eq!(r["statusChanges"], 1, "{as_of}: {r}");
        let h = wait_for(&api, "Loan", &loan, "Loan.StatusChanged", n + 2).await;
        let changes: Vec<&Value> = all_of(&h, "Loan.StatusChanged")
            .into_iter()
            .filter(|e| e["metadata"]["source"] == "late-payments")
            .collect();
        let last = changes.last().unwrap();
        assert_eq!(last["payload"]["toStatus"], *to, "{as_of}");
        assert_eq!(last["payload"]["daysPastDue"], *days, "{as_of}");
        let from = if n == 0 { "current" } else { steps[n - 1].1 };
        assert_eq!(last["payload"]["fromStatus"], from);
        let s = state(&api, &loan, "").await["state"].clone();
        assert_eq!(s["delinquency"], *to);
    }
    let h = api.history("Loan", &loan).await;
    assert_eq!(count(&h, "Loan.Defaulted"), 1);
    assert_eq!(state(&api, &loan, "").await["state"]["status"], "defaulted");
    // Fees: 5 % of each late installment's total (8,675.74 -> 433.79), one per notice.
    let fees = all_of(&h, "Payment.LateFeeAssessed");
    assert_eq!(fees.len(), count(&h, "Payment.Late"));
    let fee = round(Decimal::from_str("8675.74").unwrap() * Decimal::from(5) / Decimal::from(100));
    assert!(fees.iter().all(|f| d(&f["payload"]["amount"]) == fee));
    // Another run: no new status change while defaulted.
    assert_eq!(late_job(&api, "2026-05-30").await["statusChanges"], 0);

    // The borrower pays everything past due on Jun 1 (installments 1-4 with their fees,
    // read from the schedule and the fee events) plus installment 5's interest, which the
    // allocation takes first with the others': cured.
    let schedule = all_of(&h, "PaymentSchedule.Generated")[0]["payload"]["payments"].clone();
    let installments = schedule.as_array().unwrap();
    let owed: Decimal = installments[..4]
        .iter()
        .map(|i| d(&i["total"]))
        .sum::<Decimal>()
        + fees
            .iter()
            .map(|f| d(&f["payload"]["amount"]))
            .sum::<Decimal>()
        + d(&installments[4]["interest"]);
    post(
        &api,
        payment(&loan, "P1", &money(owed), "2026-06-01T12:00:00Z"),
    )
    .await;
    let h = wait_for(&api, "Loan", &loan, "Loan.StatusChanged", 5).await;
    let cure = all_of(&h, "Loan.StatusChanged").last().cloned().unwrap();
    assert_eq!(cure["metadata"]["source"], "payment-application");
    assert_eq!(
        (&cure["payload"]["fromStatus"], &cure["payload"]["toStatus"]),
        (&json!("defaulted"), &json!("current"))
    );
    let s = state(&api, &loan, "").await["state"].clone();
    assert_eq!(s["status"], "funded");
    assert_eq!(s["delinquency"], "current");
    assert_eq!(s["feesOwed"], "0.00");
    assert_eq!(
        d(&s["paidFees"]),
        fees.iter()
            .map(|f| d(&f["payload"]["amount"]))
            .sum::<Decimal>()
    );
}

#[tokio::test]
async fn a_backdated_payment_rescinds_a_late_notice_and_reallocates_a_later_payment() {
    let api = Api::new_tenant();
    let loan = term_loan(&api).await;
    // Mar 20: installment 1 (Feb 28) is 20 days late.
    let r = late_job(&api, "2026-03-20").await;
    assert_eq!(
        (r["lateNotices"].clone(), r["feesAssessed"].clone()),
        (json!(1), json!(1))
    );
    let h = wait_for(&api, "Loan", &loan, "Payment.LateFeeAssessed", 1).await;
    let fee = all_of(&h, "Payment.LateFeeAssessed")[0]["payload"]["amount"].clone();
    // Mar 25: P2 pays installment 1 and the interest of 2.
    post(
        &api,
        payment(&loan, "P2", "9250.42", "2026-03-25T12:00:00Z"),
    )
    .await;
    let h = wait_for(&api, "Loan", &loan, "Payment.Applied", 1).await;
    let p2 = all_of(&h, "Payment.Applied")[0].clone();
    assert_eq!(p2["payload"]["installments"][0]["number"], 1);
    let before_backdating = state(&api, &loan, "").await;
    tokio::time::sleep(Duration::from_millis(20)).await;
    let known_at = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    tokio::time::sleep(Duration::from_millis(20)).await;

    // The bank file arrives late: P1, received on Feb 27, recorded now.
    post(
        &api,
        payment(&loan, "P1", "8675.74", "2026-02-27T12:00:00Z"),
    )
    .await;
    let h = wait_for(&api, "Loan", &loan, "Payment.LateRescinded", 1).await;
    let h = if count(&h, "Payment.Reallocated") == 0 || count(&h, "Payment.LateFeeWaived") == 0 {
        api.wait_history("Loan", &loan, WAIT, |h| {
            count(h, "Payment.Reallocated") >= 1 && count(h, "Payment.LateFeeWaived") >= 1
        })
        .await
    } else {
        h
    };
    let p1 = all_of(&h, "Payment.Applied")
        .into_iter()
        .find(|e| e["payload"]["paymentId"] == "P1")
        .cloned()
        .unwrap();
    assert_eq!(p1["payload"]["effectiveDate"], "2026-02-27");
    assert_eq!(p1["payload"]["installments"][0]["number"], 1);
    assert_eq!(
        p1["payload"]["allocation"],
        json!({"interest": "625.00", "principal": "8050.74"})
    );
    let r = all_of(&h, "Payment.Reallocated")[0];
    assert_eq!(r["payload"]["paymentId"], "P2");
    assert_eq!(r["payload"]["causePaymentId"], "P1");
    assert_eq!(
        r["payload"]["before"]["installments"],
        p2["payload"]["installments"]
    );
    assert_eq!(r["payload"]["after"]["installments"][0]["number"], 2);
    // The same dollars, split anew.
    let total = |split: &Value| {
        ["interest", "principal", "fees", "held"]
            .iter()
            .map(|k| d(&split[*k]))
            .sum::<Decimal>()
    };
    assert_eq!(money(total(&r["payload"]["before"])), "9250.42");
    assert_eq!(money(total(&r["payload"]["after"])), "9250.42");
    let rescinded = all_of(&h, "Payment.LateRescinded")[0];
    assert_eq!(rescinded["payload"]["installment"], 1);
    assert_eq!(rescinded["payload"]["causePaymentId"], "P1");
    let waived = all_of(&h, "Payment.LateFeeWaived")[0];
    assert_eq!(waived["payload"]["amount"], fee);

    // Now: nothing late, installments 1 and 2 paid.
    let s = state(&api, &loan, "").await["state"].clone();
    assert_eq!(s["lateInstallments"], json!([]));
    assert_eq!(s["nextDue"]["installment"], 3);
    assert_eq!(s["feesOwed"], "0.00");
    // As of Mar 21 (by effective date): P1 only, nothing late.
    let as_of = state(&api, &loan, "?asOf=2026-03-21").await;
    assert_eq!(as_of["state"]["lateInstallments"], json!([]));
    assert_eq!(as_of["state"]["outstandingPrincipal"], "91949.26");
    // As the books stood before P1 was recorded: installment 1 late, its fee owed.
    let known = state(&api, &loan, &format!("?knownAt={known_at}")).await;
    assert_eq!(known["state"]["lateInstallments"], json!([1]));
    assert_eq!(known["state"], before_backdating["state"]);
    assert_eq!(known["knownAt"].as_str().unwrap(), known_at);
    // Clear 400s.
    let bad = api
        .get(&format!("/aggregates/Loan/{loan}/state?asOf=21-03-2026"))
        .await;
    assert_eq!(
        (bad.status, bad.body["error"]["field"].clone()),
        (400, json!("asOf"))
    );
    let bad = api
        .get(&format!("/aggregates/Loan/{loan}/state?knownAt=yesterday"))
        .await;
    assert_eq!(
        (bad.status, bad.body["error"]["field"].clone()),
        (400, json!("knownAt"))
    );
}

#[tokio::test]
async fn the_payoff_quote_accrues_per_diem_interest() {
    let api = Api::new_tenant();
    let loan = term_loan(&api).await;
    post(
        &api,
        payment(&loan, "P1", "8675.74", "2026-02-27T12:00:00Z"),
    )
    .await;
    wait_for(&api, "Loan", &loan, "Payment.Applied", 1).await;
    // On Apr 10: principal 91,949.26; installment 2 (Mar 31) billed and unpaid; 10 days of
    // interest since Mar 31 at 91,949.26 x 7.5 / 100 / 365 a day.
    let r = api
        .get(&format!("/loans/{loan}/payoff?on=2026-04-10"))
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let q = &r.body;
    let principal = Decimal::from_str("91949.26").unwrap();
    let rate = Decimal::from_str("7.5").unwrap();
    let per_diem = principal * rate / Decimal::from(36_500);
    let accrued = round(principal * rate * Decimal::from(10) / Decimal::from(36_500));
    let billed = round(principal * rate / Decimal::from(1200));
    assert_eq!(q["principal"], "91949.26");
    assert_eq!(q["billedInterest"], money(billed));
    assert_eq!(q["accruedInterest"], money(accrued));
    assert_eq!(q["fees"], "0.00");
    assert_eq!(q["excessHeld"], "0.00");
    assert_eq!(q["total"], money(principal + billed + accrued));
    assert_eq!(
        Decimal::from_str(q["perDiem"].as_str().unwrap()).unwrap(),
        per_diem.normalize()
    );
    assert_eq!(q["goodThrough"], "2026-04-10");
    assert_eq!(q["accruedFrom"], "2026-03-31");
    // Paying the quote pays the loan off, nothing refunded.
    post(
        &api,
        payment(
            &loan,
            "P2",
            q["total"].as_str().unwrap(),
            "2026-04-10T12:00:00Z",
        ),
    )
    .await;
    let h = wait_for(&api, "Loan", &loan, "Loan.PaidOff", 1).await;
    assert_eq!(count(&h, "Refund.Due"), 0);
    // Clear 400s, 404 for a loan without events.
    for (query, field) in [("", "on"), ("?on=2026-13-01", "on"), ("?on=soon", "on")] {
        let r = api.get(&format!("/loans/{loan}/payoff{query}")).await;
        assert_eq!(
            (r.status, r.body["error"]["field"].clone()),
            (400, json!(field)),
            "{query}: {}",
            r.body
        );
    }
    let r = api.get("/loans/a%20b/payoff?on=2026-04-10").await;
    assert_eq!(
        (r.status, r.body["error"]["field"].clone()),
        (400, json!("loanId"))
    );
    let r = api
        .get(&format!("/loans/{}/payoff?on=2026-04-10", id("L")))
        .await;
    assert_eq!(r.status, 404, "{}", r.body);
    // A loan never funded: 400 on the loan.
    let unfunded = id("L");
    post(&api, loan_created(&unfunded, "5000.00", "term")).await;
    let r = api
        .get(&format!("/loans/{unfunded}/payoff?on=2026-04-10"))
        .await;
    assert_eq!(
        (r.status, r.body["error"]["field"].clone()),
        (400, json!("loanId"))
    );
}
