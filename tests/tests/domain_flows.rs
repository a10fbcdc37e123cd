//! Issue 3's flows, end to end on LocalStack through the local runner: the Loan.Funded
//! chain reaction, payments (allocation, payoff, a refused over-payment in the payment DLQ,
//! reversal), late payments run twice, draws (partial approval, nothing left, a failed
//! inspection), borrower risk events, a loan modification regenerating the schedule, the
//! state route, custom types and event versions at ingest, and an operator route naming an
//! unknown domain.
//!
//! Each test uses a tenant of its own. Handlers run asynchronously, so tests poll the
//! histories (or the byCorrelation index) until the follow-ons arrive.

use std::time::Duration;

use integration_tests::{aws, correlation_events, prefix, table, take_dead_letter, types, Api};
use serde_json::{json, Value};

/// Generous: LocalStack is shared with other suites (fault tests, load tests) in one run.
const WAIT: Duration = Duration::from_secs(240);

fn id(prefix: &str) -> String {
    format!(
        "{prefix}-{}",
        &uuid::Uuid::new_v4().simple().to_string()[..12]
    )
}

/// POST one event or a batch; assert 201 and return the stored envelopes.
async fn post(api: &Api, body: Value) -> Vec<Value> {
    let r = api.post("/events", &body).await;
    assert_eq!(r.status, 201, "{body}\n-> {}", r.body);
    r.body["events"].as_array().cloned().unwrap_or_default()
}

async fn post_one(api: &Api, body: Value) -> Value {
    post(api, body).await.remove(0)
}

fn loan_created(loan: &str, borrower: &str, amount: &str, fund: Option<&str>) -> Value {
    let mut e = json!({"eventType": "Loan.Created", "aggregateType": "Loan", "aggregateId": loan,
        "payload": {"loanId": loan, "borrowerId": borrower, "amount": amount, "interestRate": "7.5",
            "termMonths": 12, "amortization": "amortized", "paymentFrequency": "monthly"}});
    if let Some(f) = fund {
        e["payload"]["fundId"] = json!(f);
    }
    e
}

fn loan_funded(loan: &str, amount: &str, correlation: &str) -> Value {
    json!({"eventType": "Loan.Funded", "aggregateType": "Loan", "aggregateId": loan,
        "payload": {"loanId": loan, "fundedAmount": amount, "fundedAt": "2026-01-31T09:00:00Z"},
        "metadata": {"userId": "officer-7", "correlationId": correlation}})
}

fn payment(loan: &str, pid: &str, amount: &str, at: &str) -> Value {
    json!({"eventType": "Payment.Received", "aggregateType": "Loan", "aggregateId": loan,
        "payload": {"paymentId": pid, "loanId": loan, "amount": amount, "method": "ACH", "receivedAt": at}})
}

/// A funded $100,000 loan at 7.5 % over 12 months (funded 2026-01-31), its schedule stored.
async fn funded_loan(api: &Api) -> (String, Value) {
    let loan = id("L");
    post(
        api,
        json!({"events": [loan_created(&loan, "B-1", "100000.00", None),
            loan_funded(&loan, "100000.00", &format!("corr-{loan}"))]}),
    )
    .await;
    let h = wait_for(api, "Loan", &loan, "PaymentSchedule.Generated", 1).await;
    let schedule = last_of(&h, "PaymentSchedule.Generated");
    (loan, schedule)
}

fn count(h: &[Value], event_type: &str) -> usize {
    h.iter().filter(|e| e["eventType"] == event_type).count()
}

fn last_of(h: &[Value], event_type: &str) -> Value {
    h.iter()
        .rev()
        .find(|e| e["eventType"] == event_type)
        .cloned()
        .unwrap_or_else(|| panic!("no {event_type} in {:?}", types(h)))
}

/// Poll until the aggregate has `n` events of `event_type`.
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

/// Poll the byCorrelation index until `done` holds.
async fn wait_correlation(api: &Api, corr: &str, done: impl Fn(&[Value]) -> bool) -> Vec<Value> {
    let clients = aws().await;
    let start = std::time::Instant::now();
    loop {
        let evs = correlation_events(&clients.dynamodb, &table(), &api.tenant, corr).await;
        if done(&evs) || start.elapsed() > WAIT {
            return evs;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

async fn state(api: &Api, t: &str, id: &str) -> Value {
    let r = api.get(&format!("/aggregates/{t}/{id}/state")).await;
    assert_eq!(r.status, 200, "{}", r.body);
    r.body
}

#[tokio::test]
async fn loan_funded_sets_off_the_chain_reaction() {
    let api = Api::new_tenant();
    let (loan, borrower, fund) = (id("L"), id("B"), id("F"));
    let corr = format!("closing-{loan}");
    post(
        &api,
        json!({"events": [loan_created(&loan, &borrower, "250000.00", Some(&fund)),
        {"eventType": "Loan.Approved", "aggregateType": "Loan", "aggregateId": loan,
            "payload": {"loanId": loan, "approvedBy": "officer-7", "approvedAt": "2026-01-30T12:00:00Z"}}]}),
    )
    .await;
    let funded = post_one(&api, loan_funded(&loan, "250000.00", &corr)).await;
    let funded_id = funded["eventId"].as_str().unwrap().to_string();

    // payment: 1 schedule; compliance: 3 closing documents; fund: 1 allocation;
    // notification: 1 message. All in the funding's correlation.
    let expected = [
        ("PaymentSchedule.Generated", 1),
        ("Document.Generated", 3),
        ("Fund.CapitalAllocated", 1),
        ("Notification.Sent", 1),
    ];
    let evs = wait_correlation(&api, &corr, |evs| {
        expected.iter().all(|(t, n)| count(evs, t) >= *n)
    })
    .await;
    for (t, n) in expected {
        assert_eq!(count(&evs, t), n, "{t} in {:?}", types(&evs));
    }
    let follow_ons: Vec<&Value> = evs
        .iter()
        .filter(|e| e["eventType"] != "Loan.Funded")
        .collect();
    assert_eq!(follow_ons.len(), 6, "{:?}", types(&evs));
    for e in &follow_ons {
        assert_eq!(e["metadata"]["causationId"], json!(funded_id), "{e}");
        assert_eq!(e["metadata"]["correlationId"], json!(corr), "{e}");
        assert_eq!(e["metadata"]["userId"], json!("officer-7"), "{e}");
        assert_eq!(e["metadata"]["tenantId"], json!(api.tenant), "{e}");
    }
    let source = |t: &str| {
        evs.iter()
            .find(|e| e["eventType"] == t)
            .map(|e| e["metadata"]["source"].clone())
            .unwrap()
    };
    assert_eq!(source("PaymentSchedule.Generated"), "payment-schedule");
    assert_eq!(source("Document.Generated"), "compliance");
    assert_eq!(source("Fund.CapitalAllocated"), "fund-allocation");
    assert_eq!(source("Notification.Sent"), "notifications");

    // Each on its own aggregate.
    let docs: Vec<&Value> = evs
        .iter()
        .filter(|e| e["eventType"] == "Document.Generated")
        .collect();
    let mut doc_types: Vec<&str> = docs
        .iter()
        .map(|d| d["payload"]["type"].as_str().unwrap())
        .collect();
    doc_types.sort();
    assert_eq!(
        doc_types,
        ["closing_disclosure", "deed_of_trust", "promissory_note"]
    );
    for d in &docs {
        assert_eq!(d["aggregateType"], "Document");
        assert_eq!(d["payload"]["loanId"], json!(loan));
        assert_eq!(d["payload"]["borrowerId"], json!(borrower));
    }
    let allocation = last_of(&evs, "Fund.CapitalAllocated");
    assert_eq!(allocation["aggregateId"], json!(fund));
    assert_eq!(allocation["payload"]["amount"], "250000.00");
    let note = last_of(&evs, "Notification.Sent");
    assert_eq!(note["payload"]["recipient"], json!(borrower));
    assert_eq!(note["payload"]["template"], "loan-funded");

    // The loan's own stream only gains its schedule; the fund's state shows the allocation.
    let h = api.history("Loan", &loan).await;
    assert_eq!(
        types(&h),
        [
            "Loan.Created",
            "Loan.Approved",
            "Loan.Funded",
            "PaymentSchedule.Generated"
        ]
    );
    let f = state(&api, "Fund", &fund).await;
    assert_eq!(f["state"]["capitalAllocated"], "250000.00");
    assert_eq!(f["state"]["loans"], json!([loan]));
}

#[tokio::test]
async fn payments_are_allocated_refused_above_payoff_reversed_and_pay_the_loan_off() {
    let api = Api::new_tenant();
    let (loan, schedule) = funded_loan(&api).await;
    assert_eq!(schedule["payload"]["payments"][0]["total"], "8675.74");

    // P1, a v1 event (free-text method), pays installment 1 exactly.
    let p1 = post_one(
        &api,
        payment(&loan, "P1", "8675.74", "2026-02-27T12:00:00Z"),
    )
    .await;
    let h = wait_for(&api, "Loan", &loan, "Payment.Applied", 1).await;
    let applied = last_of(&h, "Payment.Applied");
    assert_eq!(applied["metadata"]["causationId"], p1["eventId"]);
    assert_eq!(
        applied["payload"]["allocation"],
        json!({"interest": "625.00", "principal": "8050.74"})
    );
    assert_eq!(applied["payload"]["remainingPrincipal"], "91949.26");
    // The handler read it as v2; the stored event is still v1.
    assert_eq!(applied["payload"]["paymentMethod"], "ach");
    let stored = h.iter().find(|e| e["eventId"] == p1["eventId"]).unwrap();
    assert_eq!(
        (
            stored["eventVersion"].clone(),
            stored["payload"]["method"].clone()
        ),
        (json!(1), json!("ACH"))
    );

    // P2, a v2 event, pays part of installment 2: its interest first.
    let p2 = json!({"eventType": "Payment.Received", "eventVersion": 2, "aggregateType": "Loan",
        "aggregateId": loan, "payload": {"paymentId": "P2", "loanId": loan, "amount": 1000,
            "paymentMethod": "wire", "receivedAt": "2026-03-30T12:00:00Z"}});
    post_one(&api, p2).await;
    let h = wait_for(&api, "Loan", &loan, "Payment.Applied", 2).await;
    let applied = last_of(&h, "Payment.Applied");
    assert_eq!(
        applied["payload"]["allocation"],
        json!({"interest": "574.68", "principal": "425.32"})
    );
    assert_eq!(
        applied["payload"]["installments"],
        json!([{"number": 2, "interest": "574.68", "principal": "425.32"}])
    );

    // P3 is above the payoff amount: refused, recorded in the payment DLQ with its reason,
    // nothing appended.
    let p3 = post_one(
        &api,
        payment(&loan, "P3", "500000.00", "2026-03-30T13:00:00Z"),
    )
    .await;
    let p3_id = p3["eventId"].as_str().unwrap();
    let clients = aws().await;
    let (body, attrs) = take_dead_letter(
        &clients.sqs,
        &format!("{}-payment-dlq.fifo", prefix()),
        p3_id,
        WAIT,
    )
    .await
    .expect("the refused payment in the payment DLQ");
    assert_eq!(body["payload"]["paymentId"], "P3");
    let reason = attrs.get("failureReason").cloned().unwrap_or_default();
    assert!(
        reason.contains("above the payoff amount of 91523.94"),
        "failureReason: {reason:?}"
    );
    assert_eq!(
        attrs.get("failureClass").map(String::as_str),
        Some("permanent")
    );
    let s = state(&api, "Loan", &loan).await;
    assert_eq!(
        s["state"]["payments"],
        json!({"applied": 2, "reversed": 0, "refused": 1})
    );
    assert_eq!(s["state"]["outstandingPrincipal"], "91523.94");
    assert_eq!(
        count(&api.history("Loan", &loan).await, "Payment.Applied"),
        2
    );

    // Reversing P2 undoes it.
    post_one(
        &api,
        json!({"eventType": "Payment.Reversed", "aggregateType": "Loan", "aggregateId": loan,
            "payload": {"paymentId": "P2", "loanId": loan, "reason": "returned: insufficient funds"}}),
    )
    .await;
    let s = state(&api, "Loan", &loan).await;
    assert_eq!(s["state"]["outstandingPrincipal"], "91949.26");
    assert_eq!(s["state"]["paidInterest"], "625.00");
    assert_eq!(s["state"]["payments"]["reversed"], 1);
    assert_eq!(
        s["state"]["nextDue"],
        json!({"installment": 2, "dueDate": "2026-03-31", "interest": "574.68", "principal": "8101.06", "amount": "8675.74"})
    );

    // The payoff amount on Mar 15 (installment 2's interest + principal) pays the loan off.
    post_one(
        &api,
        payment(&loan, "P4", "92523.94", "2026-03-15T10:00:00Z"),
    )
    .await;
    let h = wait_for(&api, "Loan", &loan, "Loan.PaidOff", 1).await;
    let paid_off = last_of(&h, "Loan.PaidOff");
    assert_eq!(paid_off["payload"]["finalPaymentId"], "P4");
    assert_eq!(paid_off["payload"]["paidOffAt"], "2026-03-15T10:00:00Z");
    assert_eq!(
        last_of(&h, "Payment.Applied")["payload"]["remainingPrincipal"],
        "0.00"
    );
    let s = state(&api, "Loan", &loan).await;
    assert_eq!(s["state"]["status"], "paid_off");
    assert_eq!(s["state"]["paidOff"], true);
    assert_eq!(s["state"]["outstandingPrincipal"], "0.00");
    assert_eq!(s["state"]["paidPrincipal"], "100000.00");
    assert_eq!(s["state"]["finalPaymentId"], "P4");
    assert_eq!(s["version"], json!(h.last().unwrap()["sequence"]));
}

#[tokio::test]
async fn the_late_payment_job_run_twice_emits_once() {
    let api = Api::new_tenant();
    let (loan, schedule) = funded_loan(&api).await;
    post_one(
        &api,
        payment(&loan, "P1", "8675.74", "2026-02-27T12:00:00Z"),
    )
    .await;
    wait_for(&api, "Loan", &loan, "Payment.Applied", 1).await;

    // Two runs at once and one after: installments 2 (Mar 31) and 3 (Apr 30) are late on
    // May 10, once each.
    let run = |as_of: &'static str| {
        let api = api.clone();
        async move {
            let r = api
                .post("/admin/late-payments", &json!({ "asOf": as_of }))
                .await;
            assert_eq!(r.status, 200, "{}", r.body);
            r.body
        }
    };
    let (a, b) = tokio::join!(run("2026-05-10"), run("2026-05-10"));
    assert_eq!(a["tenant"], json!(api.tenant));
    assert_eq!(a["loans"], 1);
    let emitted = |r: &Value| r["emitted"].as_u64().unwrap();
    let already = |r: &Value| r["alreadyStored"].as_u64().unwrap();
    assert_eq!(emitted(&a) + emitted(&b), 2, "{a} {b}");
    assert!(already(&a) + already(&b) <= 2);
    let again = run("2026-05-10").await;
    assert_eq!((emitted(&again), already(&again)), (0, 0), "{again}");
    let later = run("2026-05-20").await;
    assert_eq!(emitted(&later), 0, "{later}");

    let h = api.history("Loan", &loan).await;
    let late: Vec<&Value> = h
        .iter()
        .filter(|e| e["eventType"] == "Payment.Late")
        .collect();
    assert_eq!(late.len(), 2, "{:?}", types(&h));
    let schedule_id = &schedule["payload"]["scheduleId"];
    let got: Vec<Value> = late
        .iter()
        .map(|e| {
            assert_eq!(&e["payload"]["scheduleId"], schedule_id);
            assert_eq!(e["metadata"]["source"], "late-payments");
            json!([
                e["payload"]["installment"],
                e["payload"]["daysLate"],
                e["payload"]["amountDue"],
                e["payload"]["dueDate"]
            ])
        })
        .collect();
    assert!(
        got.contains(&json!([2, 40, "8675.74", "2026-03-31"])),
        "{got:?}"
    );
    assert!(
        got.contains(&json!([3, 10, "8675.74", "2026-04-30"])),
        "{got:?}"
    );
    let s = state(&api, "Loan", &loan).await;
    assert_eq!(s["state"]["lateInstallments"], json!([2, 3]));

    // Installment 4 becomes late in June; 2 and 3 are not reported again.
    let june = run("2026-06-02").await;
    assert_eq!(emitted(&june), 1, "{june}");
    let h = api.history("Loan", &loan).await;
    assert_eq!(count(&h, "Payment.Late"), 3);
    // Borrowers hear about each late installment.
    let evs = wait_correlation(&api, "late-payments-2026-05-10", |e| {
        count(e, "Notification.Sent") >= 2
    })
    .await;
    assert_eq!(count(&evs, "Notification.Sent"), 2, "{:?}", types(&evs));
    assert!(evs
        .iter()
        .filter(|e| e["eventType"] == "Notification.Sent")
        .all(|n| n["payload"]["template"] == "payment-late" && n["payload"]["recipient"] == "B-1"));
}

/// Request a draw, complete its inspection, and wait until it is decided (and disbursed
/// when approved). Returns the draw's history.
async fn draw(api: &Api, loan: &str, amount: &str, result: &str) -> (String, Vec<Value>) {
    let d = id("D");
    post_one(
        api,
        json!({"eventType": "Draw.Requested", "aggregateType": "Draw", "aggregateId": d,
            "payload": {"drawId": d, "loanId": loan, "amount": amount}}),
    )
    .await;
    let h = wait_for(api, "Draw", &d, "Inspection.Scheduled", 1).await;
    let scheduled = last_of(&h, "Inspection.Scheduled");
    // The inspector's system continues the draw's workflow (its correlation).
    post_one(
        api,
        json!({"eventType": "Inspection.Completed", "aggregateType": "Draw", "aggregateId": d,
            "payload": {"inspectionId": scheduled["payload"]["inspectionId"], "drawId": d,
                "result": result, "notes": "framing done"},
            "metadata": {"correlationId": scheduled["metadata"]["correlationId"]}}),
    )
    .await;
    let h = api
        .wait_history("Draw", &d, WAIT, |h| {
            count(h, "Draw.Disbursed") + count(h, "Draw.Rejected") >= 1
        })
        .await;
    (d, h)
}

#[tokio::test]
async fn draws_pass_inspection_are_approved_up_to_what_is_left_and_disbursed() {
    let api = Api::new_tenant();
    let (loan, _) = funded_loan(&api).await;

    let (d1, h1) = draw(&api, &loan, "60000.00", "passed").await;
    assert_eq!(
        types(&h1),
        [
            "Draw.Requested",
            "Inspection.Scheduled",
            "Inspection.Completed",
            "Draw.Inspected",
            "Draw.Approved",
            "Draw.Disbursed"
        ]
    );
    let approved = last_of(&h1, "Draw.Approved");
    assert_eq!(approved["payload"]["approvedAmount"], "60000.00");
    let disbursed = last_of(&h1, "Draw.Disbursed");
    assert_eq!(disbursed["payload"]["amount"], "60000.00");
    // The chain: each step caused by the one before, one correlation.
    assert_eq!(disbursed["metadata"]["causationId"], approved["eventId"]);
    assert_eq!(h1[1]["metadata"]["causationId"], h1[0]["eventId"]);
    assert_eq!(h1[3]["metadata"]["causationId"], h1[2]["eventId"]);
    let corr = h1[0]["metadata"]["correlationId"].clone();
    assert!(h1.iter().all(|e| e["metadata"]["correlationId"] == corr));

    // 50,000 requested, 40,000 left: approved for 40,000.
    let (d2, h2) = draw(&api, &loan, "50000.00", "passed").await;
    assert_eq!(
        last_of(&h2, "Draw.Approved")["payload"]["approvedAmount"],
        "40000.00"
    );
    assert_eq!(
        last_of(&h2, "Draw.Disbursed")["payload"]["amount"],
        "40000.00"
    );

    // Nothing left, and a failed inspection: both rejected with their reason.
    let ((_, h3), (_, h4)) = tokio::join!(
        draw(&api, &loan, "10000.00", "passed"),
        draw(&api, &loan, "5000.00", "failed")
    );
    let r3 = last_of(&h3, "Draw.Rejected");
    assert!(
        r3["payload"]["reason"]
            .as_str()
            .unwrap()
            .contains("nothing left to draw"),
        "{r3}"
    );
    assert_eq!(count(&h3, "Draw.Approved"), 0);
    let r4 = last_of(&h4, "Draw.Rejected");
    assert!(
        r4["payload"]["reason"]
            .as_str()
            .unwrap()
            .contains("failed: framing done"),
        "{r4}"
    );
    assert_eq!(
        last_of(&h4, "Draw.Inspected")["payload"]["result"],
        "failed"
    );

    // The loan's stream tracks submissions and disbursals; its state sums them.
    let loan_history = api.history("Loan", &loan).await;
    assert_eq!(count(&loan_history, "Loan.DrawSubmitted"), 3);
    assert_eq!(count(&loan_history, "Loan.DrawDisbursed"), 2);
    let s = state(&api, "Loan", &loan).await["state"].clone();
    assert_eq!(s["disbursedDrawsTotal"], "100000.00");
    assert_eq!(
        s["draws"],
        json!({"approved": 2, "rejected": 1, "committed": "100000.00", "undrawn": "0.00"})
    );
    // The draw's state.
    let s2 = state(&api, "Draw", &d2).await;
    assert_eq!(s2["aggregateType"], "Draw");
    assert_eq!(s2["version"], 6);
    assert_eq!(s2["state"]["status"], "disbursed");
    assert_eq!(s2["state"]["requestedAmount"], "50000.00");
    assert_eq!(s2["state"]["approvedAmount"], "40000.00");
    assert_eq!(s2["state"]["disbursedAmount"], "40000.00");
    assert_eq!(s2["state"]["loanId"], json!(loan));
    assert_eq!(
        state(&api, "Draw", &d1).await["state"]["inspection"]["result"],
        "passed"
    );
}

#[tokio::test]
async fn kyc_failures_and_flags_reach_compliance_and_notification() {
    let api = Api::new_tenant();
    let b = id("B");
    post_one(
        &api,
        json!({"eventType": "Borrower.Created", "aggregateType": "Borrower", "aggregateId": b,
            "payload": {"borrowerId": b, "type": "individual", "name": "Ada Lovelace"}}),
    )
    .await;
    for (event_type, reason) in [
        ("Borrower.KYCFailed", "document mismatch"),
        ("Borrower.Flagged", "sanctions list near-match"),
    ] {
        let corr = id("risk");
        let e = post_one(
            &api,
            json!({"eventType": event_type, "aggregateType": "Borrower", "aggregateId": b,
                "payload": {"borrowerId": b, "reason": reason}, "metadata": {"correlationId": corr}}),
        )
        .await;
        let evs = wait_correlation(&api, &corr, |e| {
            count(e, "Compliance.ReviewOpened") >= 1 && count(e, "Notification.Sent") >= 1
        })
        .await;
        let review = last_of(&evs, "Compliance.ReviewOpened");
        assert_eq!(review["aggregateType"], "ComplianceReview");
        assert_eq!(review["payload"]["borrowerId"], json!(b));
        assert!(review["payload"]["reason"]
            .as_str()
            .unwrap()
            .ends_with(reason));
        assert_eq!(review["payload"]["trigger"], event_type);
        let note = last_of(&evs, "Notification.Sent");
        assert_eq!(note["payload"]["recipient"], "compliance-team");
        assert_eq!(note["payload"]["channel"], "inbox");
        assert_eq!(note["payload"]["subjectId"], json!(b));
        for f in [&review, &note] {
            assert_eq!(f["metadata"]["causationId"], e["eventId"]);
        }
    }
    // The borrower's own stream is the client's: 3 events. Its state shows both.
    let s = state(&api, "Borrower", &b).await;
    assert_eq!(s["version"], 3);
    assert_eq!(s["state"]["kyc"], "failed");
    assert_eq!(s["state"]["kycFailureReason"], "document mismatch");
    assert_eq!(s["state"]["flagged"], true);
}

#[tokio::test]
async fn a_loan_modification_regenerates_the_schedule() {
    let api = Api::new_tenant();
    let (loan, first) = funded_loan(&api).await;
    post_one(
        &api,
        payment(&loan, "P1", "8675.74", "2026-02-27T12:00:00Z"),
    )
    .await;
    wait_for(&api, "Loan", &loan, "Payment.Applied", 1).await;
    let modified = post_one(
        &api,
        json!({"eventType": "Loan.Modified", "aggregateType": "Loan", "aggregateId": loan,
            "payload": {"loanId": loan, "interestRate": "6", "termMonths": 24, "modifiedBy": "officer-7",
                "modifiedAt": "2026-03-10T00:00:00Z", "changes": {"reason": "rate reduction"}}}),
    )
    .await;
    let h = wait_for(&api, "Loan", &loan, "PaymentSchedule.Generated", 2).await;
    let second = last_of(&h, "PaymentSchedule.Generated");
    assert_eq!(second["metadata"]["causationId"], modified["eventId"]);
    let p = &second["payload"];
    assert_eq!(p["supersedes"], first["payload"]["scheduleId"]);
    assert_ne!(p["scheduleId"], first["payload"]["scheduleId"]);
    // Installment 1 (paid) stays; 2..24 re-amortize the outstanding 91,949.26 at 6 %.
    assert_eq!(p["totalPayments"], 23);
    assert_eq!(p["payments"][0]["number"], 2);
    assert_eq!(p["payments"][0]["dueDate"], "2026-03-31");
    assert_eq!(p["payments"][0]["interest"], "459.75");
    assert_eq!(p["payments"][22]["number"], 24);
    assert_eq!(p["payments"][22]["dueDate"], "2028-01-31");
    assert_eq!(p["payments"][22]["balance"], "0.00");

    let s = state(&api, "Loan", &loan).await["state"].clone();
    assert_eq!(s["scheduleId"], p["scheduleId"]);
    assert_eq!(s["terms"]["interestRate"], "6");
    assert_eq!(s["terms"]["termMonths"], 24);
    assert_eq!(s["installments"], 24);
    assert_eq!(s["nextDue"]["installment"], 2);
    assert_eq!(s["nextDue"]["amount"], p["payments"][0]["total"]);
    assert_eq!(s["outstandingPrincipal"], "91949.26");
}

#[tokio::test]
async fn the_state_route_folds_loans_and_draws() {
    let api = Api::new_tenant();
    let loan = id("L");
    let missing = api.get(&format!("/aggregates/Loan/{loan}/state")).await;
    assert_eq!(missing.status, 404);
    assert_eq!(missing.body["error"]["code"], "not_found");
    let bad = api.get("/aggregates/Loan/a%20b/state").await;
    assert_eq!(
        (bad.status, bad.body["error"]["field"].clone()),
        (400, json!("aggregateId"))
    );

    post_one(&api, loan_created(&loan, "B-9", "50000.00", None)).await;
    let s = state(&api, "Loan", &loan).await;
    assert_eq!(
        (
            s["aggregateType"].clone(),
            s["aggregateId"].clone(),
            s["version"].clone()
        ),
        (json!("Loan"), json!(loan), json!(1))
    );
    assert_eq!(s["state"]["status"], "created");
    assert_eq!(s["state"]["terms"]["amount"], "50000.00");
    assert_eq!(s["state"]["outstandingPrincipal"], "0.00");

    post_one(&api, loan_funded(&loan, "50000.00", &format!("c-{loan}"))).await;
    let h = wait_for(&api, "Loan", &loan, "PaymentSchedule.Generated", 1).await;
    let s = state(&api, "Loan", &loan).await;
    assert_eq!(s["version"], json!(h.len()));
    let st = &s["state"];
    assert_eq!(st["status"], "funded");
    assert_eq!(st["fundedAmount"], "50000.00");
    assert_eq!(st["outstandingPrincipal"], "50000.00");
    assert_eq!(
        st["scheduleId"],
        last_of(&h, "PaymentSchedule.Generated")["payload"]["scheduleId"]
    );
    assert_eq!(st["nextDue"]["installment"], 1);
    assert_eq!(st["nextDue"]["dueDate"], "2026-02-28");
    assert_eq!(st["paidOff"], false);
    assert_eq!(st["disbursedDrawsTotal"], "0.00");

    let d = id("D");
    post_one(
        &api,
        json!({"eventType": "Draw.Requested", "aggregateType": "Draw", "aggregateId": d,
            "payload": {"drawId": d, "loanId": loan, "amount": "1200.50"}}),
    )
    .await;
    wait_for(&api, "Draw", &d, "Inspection.Scheduled", 1).await;
    let s = state(&api, "Draw", &d).await;
    assert_eq!(s["version"], 2);
    assert_eq!(s["state"]["status"], "inspection_scheduled");
    assert_eq!(s["state"]["requestedAmount"], "1200.50");
    assert!(s["state"]["inspection"]["inspectionId"].is_string());
}

#[tokio::test]
async fn custom_types_and_event_versions_are_validated_at_ingest() {
    let api = Api::new_tenant();
    let loan = id("L");
    // The local runner's example custom type (localstack/runner/custom-event-types.json).
    let call = |outcome: &str| {
        json!({"eventType": "Servicing.CallLogged", "aggregateType": "Loan", "aggregateId": loan,
            "payload": {"loanId": loan, "calledAt": "2026-03-01T10:00:00Z", "outcome": outcome,
                "promise": {"amount": 250.5, "by": "2026-03-15"}}})
    };
    let stored = post_one(&api, call("reached")).await;
    assert_eq!(stored["domain"], "servicing");
    assert_eq!(stored["payload"]["promise"]["amount"], "250.50");
    let r = api.post("/events", &call("hung_up")).await;
    assert_eq!(r.status, 400);
    assert_eq!(
        (
            r.body["error"]["code"].clone(),
            r.body["error"]["field"].clone()
        ),
        (json!("validation_failed"), json!("payload.outcome"))
    );
    let mut unknown = call("reached");
    unknown["eventType"] = json!("Servicing.CallDropped");
    let r = api.post("/events", &unknown).await;
    assert_eq!(
        (r.status, r.body["error"]["code"].clone()),
        (400, json!("unknown_event_type"))
    );

    // Versions: v3 does not exist; a v1 payload is not a v2 payload.
    let mut v3 = payment(&loan, "P1", "10.00", "2026-03-01T00:00:00Z");
    v3["eventVersion"] = json!(3);
    let r = api.post("/events", &v3).await;
    assert_eq!(
        (r.status, r.body["error"]["field"].clone()),
        (400, json!("eventVersion"))
    );
    v3["eventVersion"] = json!(2);
    let r = api.post("/events", &v3).await;
    assert_eq!(
        (r.status, r.body["error"]["field"].clone()),
        (400, json!("payload.method"))
    );
    // Money: more than two decimals is refused; quarterly terms divide by three.
    let m = loan_created(&id("L"), "B-1", "100.001", None);
    let r = api.post("/events", &m).await;
    assert_eq!(
        (r.status, r.body["error"]["field"].clone()),
        (400, json!("payload.amount"))
    );
    let mut q = loan_created(&id("L"), "B-1", "100.00", None);
    q["payload"]["paymentFrequency"] = json!("quarterly");
    q["payload"]["termMonths"] = json!(10);
    let r = api.post("/events", &q).await;
    assert_eq!(
        (r.status, r.body["error"]["field"].clone()),
        (400, json!("payload.termMonths"))
    );
    // An alias resolves to its canonical name. Every alias names a handler-owned type, which
    // a client may not publish: the refusal names the canonical type, and nothing is stored.
    // (The compliance handler's own documents, stored under the canonical name, are checked
    // in the funding flow above; the alias's storage under its canonical name in the core.)
    let doc = id("DOC");
    let r = api
        .post(
            "/events",
            &json!({"eventType": "Compliance.DocGenerated", "aggregateType": "Document", "aggregateId": doc,
                "payload": {"documentId": doc, "type": "w9"}}),
        )
        .await;
    assert_eq!(
        (
            r.status,
            r.body["error"]["code"].clone(),
            r.body["error"]["field"].clone()
        ),
        (403, json!("producer_not_allowed"), json!("eventType")),
        "{}",
        r.body
    );
    let message = r.body["error"]["message"].as_str().unwrap_or_default();
    assert!(message.starts_with("Document.Generated "), "{message}");
    assert!(api.history("Document", &doc).await.is_empty());
}

/// The operator routes name a handler domain in the path or the query: a misspelt one is
/// refused as a bad request on the `domain` field that lists the known domains.
#[tokio::test]
async fn an_unknown_domain_in_an_operator_route_is_a_bad_request() {
    let api = Api::new_tenant();
    for path in [
        "/dead-letters?domain=paymnt",
        "/dead-letters/paymnt/redrive",
        "/dead-letters/paymnt/purge",
    ] {
        let r = if path.contains('?') {
            api.get(path).await
        } else {
            api.post(path, &json!({"all": true})).await
        };
        let error = &r.body["error"];
        assert_eq!(
            (r.status, error["code"].clone(), error["field"].clone()),
            (400, json!("validation_failed"), json!("domain")),
            "{path}: {}",
            r.body
        );
        let message = error["message"].as_str().unwrap_or_default();
        assert!(
            message.contains("\"paymnt\"") && message.contains("payment"),
            "{path}: {message}"
        );
    }
}
