//! Issue 2's walking skeleton, end to end: HTTP -> table -> stream -> dispatch -> queue ->
//! payment handler -> follow-on event in the same history.

use std::time::Duration;

use integration_tests::{types, Api};
use serde_json::{json, Value};

fn loan_created(loan: &str) -> Value {
    json!({"eventType": "Loan.Created", "aggregateType": "Loan", "aggregateId": loan,
        "payload": {"loanId": loan, "borrowerId": "B-1", "amount": "100000.00", "interestRate": "7.5",
            "termMonths": 12, "amortization": "amortized", "paymentFrequency": "monthly"}})
}

#[tokio::test]
async fn funding_a_loan_generates_its_schedule_in_the_same_history() {
    let api = Api::new_tenant();
    let loan = format!("L-{}", uuid::Uuid::new_v4().simple());
    let created = api.post("/events", &loan_created(&loan)).await;
    assert_eq!(created.status, 201, "{}", created.body);
    let approved = api
        .post("/events", &json!({"eventType": "Loan.Approved", "aggregateType": "Loan", "aggregateId": loan,
            "payload": {"loanId": loan, "approvedBy": "U-9", "approvedAt": "2026-01-30T12:00:00Z"}}))
        .await;
    assert_eq!(approved.status, 201, "{}", approved.body);
    // The approval is a status change: the schedule handler records it.
    let history = api
        .wait_history("Loan", &loan, Duration::from_secs(60), |h| h.len() >= 3)
        .await;
    assert_eq!(history[2]["eventType"], json!("Loan.StatusChanged"));
    assert_eq!(
        (
            &history[2]["payload"]["fromStatus"],
            &history[2]["payload"]["toStatus"]
        ),
        (&json!("created"), &json!("approved"))
    );
    let funded = api
        .post(
            "/events",
            &json!({"eventType": "Loan.Funded", "aggregateType": "Loan", "aggregateId": loan,
            "payload": {"loanId": loan, "fundedAmount": 100000, "fundedAt": "2026-01-31T09:00:00Z"},
            "metadata": {"userId": "U-9", "correlationId": format!("corr-{loan}")}}),
        )
        .await;
    assert_eq!(funded.status, 201, "{}", funded.body);
    let funded = &funded.body["events"][0];
    assert_eq!(funded["sequence"], json!(4));
    assert_eq!(funded["domain"], json!("loan"));
    assert_eq!(funded["payload"]["fundedAmount"], json!("100000.00"));
    assert_eq!(funded["metadata"]["tenantId"], json!(api.tenant));

    let history = api
        .wait_history("Loan", &loan, Duration::from_secs(60), |h| h.len() >= 6)
        .await;
    assert_eq!(
        types(&history),
        [
            "Loan.Created",
            "Loan.Approved",
            "Loan.StatusChanged",
            "Loan.Funded",
            "PaymentSchedule.Generated",
            "Loan.StatusChanged"
        ]
    );
    let seqs: Vec<u64> = history
        .iter()
        .map(|e| e["sequence"].as_u64().unwrap())
        .collect();
    assert_eq!(seqs, [1, 2, 3, 4, 5, 6]);
    assert_eq!(history[5]["payload"]["toStatus"], json!("funded"));
    let schedule = &history[4];
    assert_eq!(schedule["metadata"]["causationId"], funded["eventId"]);
    assert_eq!(
        schedule["metadata"]["correlationId"],
        json!(format!("corr-{loan}"))
    );
    assert_eq!(schedule["metadata"]["source"], json!("payment-schedule"));
    assert_eq!(schedule["payload"]["totalPayments"], json!(12));
    assert_eq!(
        schedule["payload"]["payments"][0]["total"],
        json!("8675.74")
    );
    assert_eq!(
        schedule["payload"]["payments"][0]["dueDate"],
        json!("2026-02-28")
    );
    assert_eq!(
        schedule["payload"]["payments"][11]["balance"],
        json!("0.00")
    );

    // Exactly one schedule, even though the stream may deliver more than once.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(api.history("Loan", &loan).await.len(), 6);
}

#[tokio::test]
async fn history_pages_in_sequence_order() {
    let api = Api::new_tenant();
    let b = format!("B-{}", uuid::Uuid::new_v4().simple());
    let events: Vec<Value> = (0..7)
        .map(|i| {
            json!({"eventType": "Borrower.Flagged", "aggregateType": "Borrower", "aggregateId": b,
            "payload": {"borrowerId": b, "reason": format!("check {i}")}})
        })
        .collect();
    let r = api.post("/events", &json!({ "events": events })).await;
    assert_eq!(r.status, 201, "{}", r.body);
    let page1 = api
        .get(&format!("/aggregates/Borrower/{b}/events?limit=3"))
        .await;
    assert_eq!(page1.status, 200);
    let seqs = |r: &integration_tests::Reply| -> Vec<u64> {
        r.body["events"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["sequence"].as_u64().unwrap())
            .collect()
    };
    assert_eq!(seqs(&page1), [1, 2, 3]);
    assert_eq!(page1.body["next"], json!(3));
    let page2 = api
        .get(&format!("/aggregates/Borrower/{b}/events?after=3&limit=3"))
        .await;
    assert_eq!(seqs(&page2), [4, 5, 6]);
    let page3 = api
        .get(&format!("/aggregates/Borrower/{b}/events?after=6&limit=3"))
        .await;
    assert_eq!(seqs(&page3), [7]);
    assert_eq!(page3.body["next"], Value::Null);
    assert_eq!(
        page3.body["events"][0]["payload"]["reason"],
        json!("check 6")
    );
}
