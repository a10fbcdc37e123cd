//! The read models end to end: loan summaries kept by the projection function from its own
//! queue, the loan list and fund portfolio routes, and a rebuild from history while events
//! are being published. What the routes answer is checked against what was posted and
//! what the table holds (each loan's stream head), never against the projection's counters.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use event_adapters::store::layout;
use integration_tests::{aws, table, Api};
use serde_json::{json, Value};

const SETTLE: Duration = Duration::from_secs(120);

fn loan_created(loan: &str, borrower: &str, fund: &str, amount_cents: u64) -> Value {
    json!({"eventType": "Loan.Created", "aggregateType": "Loan", "aggregateId": loan,
        "payload": {"loanId": loan, "borrowerId": borrower, "amount": cents(amount_cents),
            "interestRate": "6", "termMonths": 12, "amortization": "amortized",
            "paymentFrequency": "monthly", "fundId": fund}})
}

fn loan_funded(loan: &str, amount_cents: u64) -> Value {
    json!({"eventType": "Loan.Funded", "aggregateType": "Loan", "aggregateId": loan,
        "payload": {"loanId": loan, "fundedAmount": cents(amount_cents), "fundedAt": "2026-01-15T00:00:00Z"}})
}

fn payment(loan: &str, id: &str, amount_cents: u64) -> Value {
    json!({"eventType": "Payment.Received", "aggregateType": "Loan", "aggregateId": loan,
        "eventVersion": 2,
        "payload": {"loanId": loan, "paymentId": id, "amount": cents(amount_cents),
            "receivedAt": "2026-02-15T10:00:00Z", "paymentMethod": "ach"}})
}

/// Exact decimal text of a number of cents.
fn cents(c: u64) -> String {
    format!("{}.{:02}", c / 100, c % 100)
}

async fn publish(api: &Api, body: &Value) {
    let r = api.post("/events", body).await;
    assert_eq!(r.status, 201, "{}", r.body);
}

/// The sequence of the last event of a loan's stream, from the table.
async fn stream_head(api: &Api, loan: &str) -> u64 {
    api.history("Loan", loan)
        .await
        .last()
        .and_then(|e| e["sequence"].as_u64())
        .unwrap_or(0)
}

/// The stored summary item of a loan (the JSON it holds), read from the table.
async fn stored_summary(ddb: &aws_sdk_dynamodb::Client, tenant: &str, loan: &str) -> Option<Value> {
    let out = ddb
        .get_item()
        .table_name(table())
        .set_key(Some(layout::key(layout::loan_summary_pk(tenant, loan), 0)))
        .consistent_read(true)
        .send()
        .await
        .expect("GetItem");
    let item = out.item()?;
    let body = layout::str_of(item, layout::attr::SUMMARY)?;
    Some(serde_json::from_str(body).expect("summary JSON"))
}

/// Wait until every loan's stored summary is at its stream head (twice in a row: the
/// handlers' follow-ons may still land), and return the summaries by loan.
async fn settled(api: &Api, loans: &[String]) -> BTreeMap<String, Value> {
    let ddb = aws().await.dynamodb;
    let start = Instant::now();
    let mut stable = 0;
    loop {
        let mut out = BTreeMap::new();
        let mut behind = Vec::new();
        for loan in loans {
            let head = stream_head(api, loan).await;
            let s = stored_summary(&ddb, &api.tenant, loan).await;
            if s.as_ref().and_then(|s| s["version"].as_u64()) != Some(head) {
                behind.push((loan.clone(), head, s.map(|s| s["version"].clone())));
            }
            out.insert(
                loan.clone(),
                stored_summary(&ddb, &api.tenant, loan)
                    .await
                    .unwrap_or(Value::Null),
            );
        }
        stable = if behind.is_empty() { stable + 1 } else { 0 };
        if stable >= 2 {
            return out;
        }
        assert!(
            start.elapsed() < SETTLE,
            "summaries behind their streams: {behind:?}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Every page of a loan list query, following the cursors.
async fn all_pages(api: &Api, query: &str) -> Vec<Value> {
    let mut out = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/loans?{query}&cursor={c}"),
            None => format!("/loans?{query}"),
        };
        let r = api.get(&path).await;
        assert_eq!(r.status, 200, "{path}: {}", r.body);
        out.extend(r.body["loans"].as_array().cloned().unwrap_or_default());
        match r.body["cursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => return out,
        }
    }
}

fn ids(loans: &[Value]) -> Vec<&str> {
    loans
        .iter()
        .map(|l| l["loanId"].as_str().unwrap_or("?"))
        .collect()
}

#[tokio::test]
async fn loan_list_and_portfolio_follow_the_events() {
    let api = Api::new_tenant();
    let run = uuid::Uuid::new_v4().simple().to_string();
    let fund = format!("F-{}", &run[..8]);
    // (loan, borrower, amount in cents, funded?)
    let plan = [
        (format!("L-{run}-a"), "B-1", 1_000_010u64, true),
        (format!("L-{run}-b"), "B-2", 2_000_020, true),
        (format!("L-{run}-c"), "B-1", 300_003, false),
    ];
    for (loan, borrower, amount, funded) in &plan {
        publish(&api, &loan_created(loan, borrower, &fund, *amount)).await;
        if *funded {
            publish(&api, &loan_funded(loan, *amount)).await;
        }
    }
    let loans: Vec<String> = plan.iter().map(|p| p.0.clone()).collect();
    let live = settled(&api, &loans).await;

    // Every loan of the fund, in loanId order, one per page.
    let listed = all_pages(&api, &format!("fundId={fund}&limit=1")).await;
    assert_eq!(
        ids(&listed),
        loans.iter().map(String::as_str).collect::<Vec<_>>()
    );
    for ((loan, borrower, amount, funded), l) in plan.iter().zip(&listed) {
        assert_eq!(l["borrowerId"], json!(borrower), "{loan}");
        assert_eq!(l["fundId"], json!(fund), "{loan}");
        assert_eq!(l["amount"], json!(cents(*amount)), "{loan}");
        let want = if *funded { "funded" } else { "created" };
        assert_eq!(l["status"], json!(want), "{loan}");
        let outstanding = if *funded {
            cents(*amount)
        } else {
            "0.00".into()
        };
        assert_eq!(l["outstandingPrincipal"], json!(outstanding), "{loan}");
        assert_eq!(
            l["version"].as_u64(),
            Some(stream_head(&api, loan).await),
            "{loan}"
        );
        assert_eq!(l, &live[loan], "the route answers the stored item");
    }
    // Each access pattern through its index.
    let funded = all_pages(&api, &format!("fundId={fund}&status=funded")).await;
    assert_eq!(ids(&funded), [loans[0].as_str(), loans[1].as_str()]);
    let by_borrower: Vec<Value> = all_pages(&api, "borrowerId=B-1")
        .await
        .into_iter()
        .filter(|l| l["fundId"] == json!(fund))
        .collect();
    assert_eq!(ids(&by_borrower), [loans[0].as_str(), loans[2].as_str()]);
    let created = all_pages(&api, "status=created").await;
    assert_eq!(ids(&created), [loans[2].as_str()]);
    assert!(all_pages(&api, "delinquent=true").await.is_empty());
    assert_eq!(all_pages(&api, "").await.len(), 3);

    // The portfolio: exact sums of what was posted.
    let p = api.get(&format!("/funds/{fund}/portfolio")).await;
    assert_eq!(p.status, 200, "{}", p.body);
    let committed: u64 = plan.iter().map(|p| p.2).sum();
    let funded_total: u64 = plan.iter().filter(|p| p.3).map(|p| p.2).sum();
    assert_eq!(p.body["loans"], json!(3));
    assert_eq!(p.body["committed"], json!(cents(committed)));
    assert_eq!(p.body["funded"], json!(cents(funded_total)));
    assert_eq!(p.body["outstandingPrincipal"], json!(cents(funded_total)));
    assert_eq!(p.body["byStatus"], json!({"created": 1, "funded": 2}));
    println!(
        "fund {fund}: {} loans, committed {}, funded {}",
        p.body["loans"], p.body["committed"], p.body["funded"]
    );

    // Tenant-scoped: another tenant sees nothing of it.
    let other = Api::new_tenant();
    assert!(all_pages(&other, &format!("fundId={fund}"))
        .await
        .is_empty());
    let op = other.get(&format!("/funds/{fund}/portfolio")).await;
    assert_eq!(op.body["loans"], json!(0), "{}", op.body);

    // Bad input: 400 with the field at fault, and cursors bound to their query.
    for (query, field) in [
        ("status=late", "status"),
        ("delinquent=yes", "delinquent"),
        ("limit=0", "limit"),
        ("limit=1001", "limit"),
        ("fundId=a%20b", "fundId"),
        ("sort=amount", "sort"),
        ("cursor=not-a-cursor", "cursor"),
    ] {
        let r = api.get(&format!("/loans?{query}")).await;
        assert_eq!(r.status, 400, "{query}: {}", r.body);
        assert_eq!(
            r.body["error"]["field"],
            json!(field),
            "{query}: {}",
            r.body
        );
    }
    let first = api.get(&format!("/loans?fundId={fund}&limit=1")).await;
    let cursor = first.body["cursor"].as_str().expect("a cursor").to_string();
    let moved = api
        .get(&format!("/loans?status=funded&limit=1&cursor={cursor}"))
        .await;
    assert_eq!(moved.status, 400, "{}", moved.body);
    assert_eq!(moved.body["error"]["code"], json!("invalid_cursor"));
    let foreign = other
        .get(&format!("/loans?fundId={fund}&limit=1&cursor={cursor}"))
        .await;
    assert_eq!(foreign.status, 400, "{}", foreign.body);
    let bad_fund = api.get("/funds/a%20b/portfolio").await;
    assert_eq!(bad_fund.status, 400, "{}", bad_fund.body);
    assert_eq!(bad_fund.body["error"]["field"], json!("fundId"));
}

#[tokio::test]
async fn a_rebuild_during_live_traffic_equals_the_live_items() {
    let api = Api::new_tenant();
    let run = uuid::Uuid::new_v4().simple().to_string();
    let fund = format!("F-{}", &run[..8]);
    let loans: Vec<String> = (0..6).map(|i| format!("L-{run}-{i}")).collect();
    for (i, loan) in loans.iter().enumerate() {
        let amount = 100_000 * (i as u64 + 1);
        publish(&api, &loan_created(loan, &format!("B-{i}"), &fund, amount)).await;
        publish(&api, &loan_funded(loan, amount)).await;
    }
    // Live traffic: payments on every loan while the rebuild runs.
    let traffic = {
        let api = api.clone();
        let loans = loans.clone();
        tokio::spawn(async move {
            for round in 0..3 {
                for loan in &loans {
                    publish(
                        &api,
                        &payment(loan, &format!("P-{round}-{loan}"), 1_000 + round),
                    )
                    .await;
                }
            }
        })
    };
    let ops = api.clone().with_header("X-Scopes", "ops:replay");
    let during = ops
        .post("/projections/loan-summary/rebuild", &json!({}))
        .await;
    assert_eq!(during.status, 200, "{}", during.body);
    traffic.await.expect("the publisher");
    let live = settled(&api, &loans).await;

    // Every summary is at its stream head: the rebuild moved none of them backwards.
    // Now drop them and rebuild from history alone: the same items come back.
    let ddb = aws().await.dynamodb;
    for loan in &loans {
        ddb.delete_item()
            .table_name(table())
            .set_key(Some(layout::key(
                layout::loan_summary_pk(&api.tenant, loan),
                0,
            )))
            .send()
            .await
            .expect("DeleteItem");
    }
    let r = ops
        .post("/projections/loan-summary/rebuild", &json!({}))
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["loans"], json!(loans.len()), "{}", r.body);
    assert_eq!(r.body["written"], json!(loans.len()), "{}", r.body);
    for loan in &loans {
        let rebuilt = stored_summary(&ddb, &api.tenant, loan).await;
        assert_eq!(
            rebuilt.as_ref(),
            Some(&live[loan]),
            "{loan}: rebuilt differs from live"
        );
    }
    // A second rebuild finds every item current and writes nothing.
    let again = ops
        .post("/projections/loan-summary/rebuild", &json!({}))
        .await;
    assert_eq!(again.body["written"], json!(0), "{}", again.body);

    // Each rebuild is recorded as an operator action on the tenant's Ops stream.
    let recorded: Vec<Value> = api
        .history("Ops", &api.tenant)
        .await
        .into_iter()
        .filter(|e| e["eventType"] == json!("Ops.ProjectionRebuilt"))
        .collect();
    assert_eq!(recorded.len(), 3);
    assert_eq!(recorded[1]["payload"]["projection"], json!("loan-summary"));
    assert_eq!(recorded[1]["payload"]["written"], json!(loans.len()));
    println!(
        "rebuilt {} loans during traffic, {} after dropping them, {} the second time",
        during.body["loans"], r.body["written"], again.body["written"]
    );

    // An unknown projection is 404, and the rebuild needs an ops scope.
    let unknown = ops.post("/projections/nope/rebuild", &json!({})).await;
    assert_eq!(unknown.status, 404, "{}", unknown.body);
    let reader = api.clone().with_header("X-Scopes", "events:read");
    let refused = reader
        .post("/projections/loan-summary/rebuild", &json!({}))
        .await;
    assert_eq!(refused.status, 403, "{}", refused.body);
}
