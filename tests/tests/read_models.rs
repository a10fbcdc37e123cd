//! The read models end to end: loan summaries kept by the projection function from its own
//! queue, the loan list and fund portfolio routes, and a rebuild from history while events
//! are being published. What the routes answer is checked against what was posted and
//! what the table holds (each loan's stored stream, read from DynamoDB and folded here),
//! never against the projection's counters.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::NaiveDate;
use event_adapters::store::layout::{self, Read};
use event_adapters::topology;
use integration_tests::{aws, prefix, queue_depth, queue_url, table, Api, RunnerProcess};
use lending_events::envelope::StreamId;
use serde_json::{json, Value};

/// How long the projection may take to catch up once publishing stops.
const SETTLE: Duration = Duration::from_secs(300);

fn loan_created(loan: &str, borrower: &str, fund: &str, amount_cents: u64) -> Value {
    json!({"eventType": "Loan.Created", "aggregateType": "Loan", "aggregateId": loan,
        "occurredAt": "2026-01-05T09:00:00Z",
        "payload": {"loanId": loan, "borrowerId": borrower, "amount": cents(amount_cents),
            "interestRate": "6", "termMonths": 12, "amortization": "amortized",
            "paymentFrequency": "monthly", "fundId": fund}})
}

fn loan_funded(loan: &str, amount_cents: u64) -> Value {
    json!({"eventType": "Loan.Funded", "aggregateType": "Loan", "aggregateId": loan,
        "occurredAt": "2026-01-15T09:00:00Z",
        "payload": {"loanId": loan, "fundedAmount": cents(amount_cents), "fundedAt": "2026-01-15T09:00:00Z"}})
}

/// A payment received (and published) at `at`.
fn payment(loan: &str, id: &str, amount_cents: u64, at: &str) -> Value {
    json!({"eventType": "Payment.Received", "aggregateType": "Loan", "aggregateId": loan,
        "eventVersion": 2, "occurredAt": at,
        "payload": {"loanId": loan, "paymentId": id, "amount": cents(amount_cents),
            "receivedAt": at, "paymentMethod": "ach"}})
}

/// Exact decimal text of a number of cents.
fn cents(c: u64) -> String {
    format!("{}.{:02}", c / 100, c % 100)
}

async fn publish(api: &Api, body: &Value) {
    let r = api.post("/events", body).await;
    assert_eq!(r.status, 201, "{}", r.body);
}

/// A loan created and funded, in one request.
async fn publish_funded_loan(api: &Api, loan: &str, borrower: &str, fund: &str, amount: u64) {
    publish(
        api,
        &json!({"events": [loan_created(loan, borrower, fund, amount), loan_funded(loan, amount)]}),
    )
    .await;
}

/// A loan's stored stream, read from the table (not through the API), upcast as the
/// handlers read it.
async fn stored_history(
    ddb: &aws_sdk_dynamodb::Client,
    tenant: &str,
    loan: &str,
) -> Vec<lending_events::EventEnvelope> {
    stored_history_in(ddb, &table(), tenant, loan).await
}

/// [`stored_history`] in `table`.
async fn stored_history_in(
    ddb: &aws_sdk_dynamodb::Client,
    table: &str,
    tenant: &str,
    loan: &str,
) -> Vec<lending_events::EventEnvelope> {
    let pk = layout::stream_pk(&StreamId {
        tenant_id: tenant,
        aggregate_type: "Loan",
        aggregate_id: loan,
    });
    let mut out = Vec::new();
    let mut start = None;
    loop {
        let page = ddb
            .query()
            .table_name(table)
            .key_condition_expression("#pk = :pk")
            .expression_attribute_names("#pk", layout::attr::PK)
            .expression_attribute_values(":pk", layout::s(&pk))
            .consistent_read(true)
            .set_exclusive_start_key(start)
            .send()
            .await
            .expect("Query(history)");
        // The stream's partition also holds its snapshots, between the events.
        for item in page.items().iter().filter(|i| !layout::is_snapshot(i)) {
            let e = layout::decode_event(item).expect("a stored event");
            out.push(lending_events::upcast::upcast(e));
        }
        start = page.last_evaluated_key().cloned();
        if start.is_none() {
            return out;
        }
    }
}

/// What the summary of a loan must be: the fold of its stored history, computed here.
async fn folded(ddb: &aws_sdk_dynamodb::Client, tenant: &str, loan: &str) -> Value {
    folded_in(ddb, &table(), tenant, loan).await
}

/// [`folded`] from `table`.
async fn folded_in(ddb: &aws_sdk_dynamodb::Client, table: &str, tenant: &str, loan: &str) -> Value {
    let history = stored_history_in(ddb, table, tenant, loan).await;
    let summary = lending_events::projections::loan_summary(&history).expect("a created loan");
    serde_json::to_value(summary).expect("summary JSON")
}

/// The stored summary items of `loans` (the JSON each holds), read from the table in one
/// strongly consistent batch, by loan.
async fn stored_summaries(
    ddb: &aws_sdk_dynamodb::Client,
    tenant: &str,
    loans: &[String],
) -> BTreeMap<String, Value> {
    stored_summaries_in(ddb, &table(), tenant, loans).await
}

/// [`stored_summaries`] in `table`.
async fn stored_summaries_in(
    ddb: &aws_sdk_dynamodb::Client,
    table: &str,
    tenant: &str,
    loans: &[String],
) -> BTreeMap<String, Value> {
    let mut out = BTreeMap::new();
    for chunk in loans.chunks(100) {
        let pks: Vec<String> = chunk
            .iter()
            .map(|l| layout::loan_summary_pk(tenant, l))
            .collect();
        let items = layout::batch_get_pks(ddb, table, &pks, Read::Consistent)
            .await
            .expect("BatchGetItem(summaries)");
        for item in items {
            let body = layout::str_of(&item, layout::attr::SUMMARY).expect("a summary");
            let v: Value = serde_json::from_str(body).expect("summary JSON");
            out.insert(v["loanId"].as_str().expect("loanId").to_string(), v);
        }
    }
    out
}

/// Messages waiting or in flight on every queue of the runner under test.
async fn queued(sqs: &aws_sdk_sqs::Client) -> BTreeMap<String, (u64, u64)> {
    let mut out = BTreeMap::new();
    for pair in topology::queues(&prefix()) {
        let url = queue_url(sqs, &pair.queue).await;
        out.insert(pair.queue.clone(), queue_depth(sqs, &url).await);
    }
    out
}

/// Wait until the queues are empty and every loan's stored summary is at its stream head,
/// twice in a row (the handlers' follow-ons may still land); the summaries by loan.
async fn settled(api: &Api, loans: &[String]) -> BTreeMap<String, Value> {
    let clients = aws().await;
    let start = Instant::now();
    let mut stable = 0;
    loop {
        let queues = queued(&clients.sqs).await;
        let busy: Vec<_> = queues.iter().filter(|(_, d)| **d != (0, 0)).collect();
        let summaries = stored_summaries(&clients.dynamodb, &api.tenant, loans).await;
        let mut behind = Vec::new();
        for loan in loans {
            let head = stored_history(&clients.dynamodb, &api.tenant, loan)
                .await
                .last()
                .map_or(0, |e| e.sequence);
            let version = summaries.get(loan).and_then(|s| s["version"].as_u64());
            if version != Some(head) {
                behind.push((loan.clone(), head, version));
            }
        }
        stable = if behind.is_empty() && busy.is_empty() {
            stable + 1
        } else {
            0
        };
        if stable >= 2 {
            return summaries;
        }
        assert!(
            start.elapsed() < SETTLE,
            "after {SETTLE:?}: summaries behind their streams {behind:?}, queues {busy:?}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Every page of a loan list query, following the cursors; also how many pages.
async fn all_pages(api: &Api, query: &str) -> (Vec<Value>, usize) {
    let mut out = Vec::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let path = match &cursor {
            Some(c) => format!("/loans?{query}&cursor={c}"),
            None => format!("/loans?{query}"),
        };
        let r = api.get(&path).await;
        assert_eq!(r.status, 200, "{path}: {}", r.body);
        pages += 1;
        out.extend(r.body["loans"].as_array().cloned().unwrap_or_default());
        match r.body["cursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => return (out, pages),
        }
    }
}

async fn listed(api: &Api, query: &str) -> Vec<Value> {
    all_pages(api, query).await.0
}

fn ids(loans: &[Value]) -> Vec<&str> {
    loans
        .iter()
        .map(|l| l["loanId"].as_str().unwrap_or("?"))
        .collect()
}

#[tokio::test]
async fn loan_list_filters_pages_and_portfolio_follow_the_events() {
    let api = Api::new_tenant();
    let ddb = aws().await.dynamodb;
    let run = uuid::Uuid::new_v4().simple().to_string();
    let fund = format!("F-{}", &run[..8]);
    // (loan, borrower, amount in cents, funded?), in loanId order.
    let plan = [
        (format!("L-{run}-a"), "B-1", 1_000_010u64, true),
        (format!("L-{run}-b"), "B-2", 2_000_020, true),
        (format!("L-{run}-c"), "B-1", 300_003, false),
    ];
    for (loan, borrower, amount, funded) in &plan {
        if *funded {
            publish_funded_loan(&api, loan, borrower, &fund, *amount).await;
        } else {
            publish(&api, &loan_created(loan, borrower, &fund, *amount)).await;
        }
    }
    let (a, b, c) = (&plan[0].0, &plan[1].0, &plan[2].0);
    // Loan b pays 10.00 (less than a month's interest) on March 20, after its first due date
    // and the 15-day grace period: it is delinquent from then on.
    let paid_on = "2026-03-20";
    publish(
        &api,
        &payment(b, "P-b-1", 1_000, &format!("{paid_on}T10:00:00Z")),
    )
    .await;
    let loans: Vec<String> = plan.iter().map(|p| p.0.clone()).collect();
    let live = settled(&api, &loans).await;

    // Every loan of the fund, in loanId order, one per page.
    let (by_fund, pages) = all_pages(&api, &format!("fundId={fund}&limit=1")).await;
    assert_eq!(
        ids(&by_fund),
        loans.iter().map(String::as_str).collect::<Vec<_>>()
    );
    assert!(pages >= 3, "{pages} pages of one");
    for ((loan, borrower, amount, funded), l) in plan.iter().zip(&by_fund) {
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
        let history = stored_history(&ddb, &api.tenant, loan).await;
        let last = history.last().expect("a stored event");
        assert_eq!(l["version"].as_u64(), Some(last.sequence), "{loan}");
        assert_eq!(
            l["lastEvent"]["eventId"],
            json!(last.event_id.to_string()),
            "{loan}"
        );
        assert_eq!(l, &live[loan], "{loan}: the route answers the stored item");
        assert_eq!(
            l,
            &folded(&ddb, &api.tenant, loan).await,
            "{loan}: the fold of the stored history"
        );
    }
    // Loan b's days past due, from its stored schedule's first due date and the payment's.
    let schedule = stored_history(&ddb, &api.tenant, b)
        .await
        .into_iter()
        .find(|e| e.event_type == "PaymentSchedule.Generated")
        .expect("b's schedule");
    let first_due: NaiveDate = schedule.payload["payments"][0]["dueDate"]
        .as_str()
        .and_then(|d| d.parse().ok())
        .expect("a due date");
    let days = (paid_on.parse::<NaiveDate>().unwrap() - first_due).num_days();
    assert!(days > 15 && days < 60, "{days}");
    assert_eq!(live[b]["daysPastDue"], json!(days), "{}", live[b]);
    assert_eq!(live[b]["delinquency"], json!("delinquent"));
    assert_eq!(live[b]["delinquent"], json!(true));
    assert_eq!(live[a]["delinquent"], json!(false), "{}", live[a]);
    assert_eq!(live[a]["daysPastDue"], json!(0));
    assert_eq!(
        live[b]["lastEvent"]["occurredAt"]
            .as_str()
            .map(|t| &t[..10]),
        Some(paid_on)
    );

    // Each access pattern through its index, and their combinations.
    let cases: &[(String, Vec<&str>)] = &[
        (String::new(), vec![a, b, c]),
        ("delinquent=false".into(), vec![a, b, c]),
        (format!("fundId={fund}&status=funded"), vec![a, b]),
        (format!("fundId={fund}&status=created"), vec![c]),
        ("borrowerId=B-1".into(), vec![a, c]),
        ("borrowerId=B-1&status=created".into(), vec![c]),
        (
            format!("borrowerId=B-1&fundId={fund}&status=funded"),
            vec![a],
        ),
        ("status=created".into(), vec![c]),
        ("status=funded".into(), vec![a, b]),
        ("status=paid_off".into(), vec![]),
        ("delinquent=true".into(), vec![b]),
        (format!("delinquent=true&fundId={fund}"), vec![b]),
        ("delinquent=true&status=funded".into(), vec![b]),
        ("delinquent=true&borrowerId=B-1".into(), vec![]),
        ("borrowerId=B-2&delinquent=true".into(), vec![b]),
        ("fundId=F-none".into(), vec![]),
    ];
    for (query, want) in cases {
        for limit in ["", "&limit=1"] {
            let q = format!("{query}{limit}");
            let got = listed(&api, q.trim_start_matches('&')).await;
            assert_eq!(ids(&got), *want, "GET /loans?{q}");
            for l in &got {
                assert_eq!(l, &live[l["loanId"].as_str().unwrap()], "{q}");
            }
        }
    }
    println!(
        "{} filter combinations, each in one page and in pages of one",
        cases.len()
    );

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
    assert_eq!(p.body["delinquentLoans"], json!(1));
    assert_eq!(p.body["delinquentPrincipal"], json!(cents(plan[1].2)));
    println!(
        "fund {fund}: {} loans, committed {}, funded {}, delinquent {} ({})",
        p.body["loans"],
        p.body["committed"],
        p.body["funded"],
        p.body["delinquentLoans"],
        p.body["delinquentPrincipal"]
    );

    // Tenant-scoped: another tenant sees nothing of it.
    let other = Api::new_tenant();
    assert!(listed(&other, &format!("fundId={fund}")).await.is_empty());
    assert!(listed(&other, "").await.is_empty());
    let op = other.get(&format!("/funds/{fund}/portfolio")).await;
    assert_eq!(op.body["loans"], json!(0), "{}", op.body);

    // Bad input: 400 with the field at fault, and cursors bound to their query.
    for (query, field) in [
        ("status=late", "status"),
        ("status=", "status"),
        ("delinquent=yes", "delinquent"),
        ("limit=0", "limit"),
        ("limit=1001", "limit"),
        ("limit=x", "limit"),
        ("fundId=a%20b", "fundId"),
        ("borrowerId=", "borrowerId"),
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

    // The read routes need events:read: a caller with other scopes only is refused.
    let without = api
        .clone()
        .with_header("X-Scopes", "ops:replay ops:handlers");
    for path in ["/loans".to_string(), format!("/funds/{fund}/portfolio")] {
        let r = without.get(&path).await;
        assert_eq!(r.status, 403, "{path}: {}", r.body);
    }
    let reader = api.clone().with_header("X-Scopes", "events:read");
    assert_eq!(reader.get("/loans").await.status, 200);
}

/// What the publisher did: every loan it created (with its borrower and amount), and when
/// each of its requests was answered.
/// Live traffic until `stop`: new loans of `fund`, payments on existing ones (now and then
/// one above the payoff: paid off, the rest held for refund); every answer's time noted.
fn live_traffic(
    api: &Api,
    fund: &str,
    run: &str,
    published: &Arc<Mutex<Published>>,
    stop: &Arc<AtomicBool>,
) -> tokio::task::JoinHandle<()> {
    let (api, fund, run) = (api.clone(), fund.to_string(), run.to_string());
    let (published, stop) = (published.clone(), stop.clone());
    tokio::spawn(async move {
        let mut k = 0u64;
        while !stop.load(Ordering::SeqCst) {
            if k.is_multiple_of(3) {
                let i = 100 + k;
                let loan = format!("L-{run}-{i:03}");
                let (borrower, amount) = (format!("B-{}", i % 3), 50_000 + k * 1_001);
                publish_funded_loan(&api, &loan, &borrower, &fund, amount).await;
                published
                    .lock()
                    .unwrap()
                    .loans
                    .push((loan, borrower, amount));
            } else {
                let (loan, amount) = {
                    let p = published.lock().unwrap();
                    let (loan, _, amount) = &p.loans[(k as usize * 5) % p.loans.len()];
                    (loan.clone(), *amount)
                };
                let paid = if k % 7 == 5 { amount * 2 } else { 1_000 + k };
                let day = 1 + k % 28;
                let at = format!("2026-02-{day:02}T10:00:00Z");
                publish(&api, &payment(&loan, &format!("P-{k}"), paid, &at)).await;
            }
            published.lock().unwrap().answered.push(Instant::now());
            k += 1;
        }
    })
}

#[derive(Default)]
struct Published {
    loans: Vec<(String, String, u64)>,
    answered: Vec<Instant>,
}

#[tokio::test]
async fn a_rebuild_during_live_traffic_equals_the_fold_of_every_history() {
    let api = Api::new_tenant();
    let ddb = aws().await.dynamodb;
    let run = uuid::Uuid::new_v4().simple().to_string();
    let fund = format!("F-{}", &run[..8]);
    let published = Arc::new(Mutex::new(Published::default()));
    // Loans that exist before the rebuild starts.
    for i in 0..8u64 {
        let loan = format!("L-{run}-{i:03}");
        let (borrower, amount) = (format!("B-{}", i % 3), 100_000 * (i + 1));
        publish_funded_loan(&api, &loan, &borrower, &fund, amount).await;
        published
            .lock()
            .unwrap()
            .loans
            .push((loan, borrower, amount));
    }

    let stop = Arc::new(AtomicBool::new(false));
    let traffic = live_traffic(&api, &fund, &run, &published, &stop);

    // Summaries read while the traffic and the rebuild run: each loan's versions, in the
    // order read.
    let watch = {
        let (tenant, published, stop) = (api.tenant.clone(), published.clone(), stop.clone());
        let ddb = ddb.clone();
        tokio::spawn(async move {
            let mut seen: BTreeMap<String, Vec<u64>> = BTreeMap::new();
            while !stop.load(Ordering::SeqCst) {
                let loans: Vec<String> = {
                    let p = published.lock().unwrap();
                    p.loans.iter().map(|l| l.0.clone()).collect()
                };
                for (loan, s) in stored_summaries(&ddb, &tenant, &loans).await {
                    let v = s["version"].as_u64().expect("a version");
                    seen.entry(loan).or_default().push(v);
                }
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
            seen
        })
    };

    let answered = || published.lock().unwrap().answered.len();
    let wait_for_answers = |n: usize| async move {
        let start = Instant::now();
        while answered() < n {
            assert!(start.elapsed() < SETTLE, "the publisher is stuck");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    wait_for_answers(3).await;
    let ops = api.clone().with_header("X-Scopes", "ops:replay");
    let began = Instant::now();
    let during = ops
        .post("/projections/loan-summary/rebuild", &json!({}))
        .await;
    let ended = Instant::now();
    assert_eq!(during.status, 200, "{}", during.body);
    // Publishing goes on after the rebuild answered, then stops.
    let after = answered();
    wait_for_answers(after + 3).await;
    stop.store(true, Ordering::SeqCst);
    traffic.await.expect("the publisher");
    let seen = watch.await.expect("the watcher");
    let (loans, answered_during, requests) = {
        let p = published.lock().unwrap();
        let during = p
            .answered
            .iter()
            .filter(|t| **t > began && **t < ended)
            .count();
        (p.loans.clone(), during, p.answered.len())
    };
    assert!(
        answered_during >= 1,
        "no publish was answered during the rebuild ({:?})",
        ended - began
    );
    let folded_during = during.body["loans"].as_u64().unwrap_or(0);
    assert!(folded_during >= 8, "{}", during.body);

    // Once the traffic stopped and the queues drained: every published loan has a summary
    // at its stream head, equal to the fold of its stored history computed here.
    let names: Vec<String> = loans.iter().map(|l| l.0.clone()).collect();
    let live = settled(&api, &names).await;
    assert_eq!(
        live.keys().cloned().collect::<BTreeSet<_>>(),
        names.iter().cloned().collect::<BTreeSet<_>>(),
        "a loan without its summary"
    );
    let mut paid_off = 0;
    for (loan, borrower, amount) in &loans {
        let s = &live[loan];
        assert_eq!(s, &folded(&ddb, &api.tenant, loan).await, "{loan}");
        // What was posted, independently of any fold.
        assert_eq!(s["borrowerId"], json!(borrower), "{loan}");
        assert_eq!(s["fundId"], json!(fund), "{loan}");
        assert_eq!(s["amount"], json!(cents(*amount)), "{loan}");
        assert_eq!(s["fundedAmount"], json!(cents(*amount)), "{loan}");
        let history = stored_history(&ddb, &api.tenant, loan).await;
        assert_eq!(s["version"], json!(history.len()), "{loan}");
        let last = history.last().expect("events");
        assert_eq!(s["lastEvent"]["eventId"], json!(last.event_id.to_string()));
        if s["status"] == json!("paid_off") {
            paid_off += 1;
            assert_eq!(s["outstandingPrincipal"], json!("0.00"), "{loan}");
            assert_ne!(s["refundsDue"], json!("0.00"), "{loan}: the excess is held");
        }
    }
    // Nothing moved backwards: every loan's versions, in the order read, never decrease.
    let mut reads = 0;
    for (loan, versions) in &seen {
        reads += versions.len();
        assert!(
            versions.windows(2).all(|w| w[0] <= w[1]),
            "{loan} moved backwards: {versions:?}"
        );
    }
    // The routes answer the same items (nothing lost, nothing extra).
    let (routed, pages) = all_pages(&api, &format!("fundId={fund}&limit=5")).await;
    let mut sorted = names.clone();
    sorted.sort();
    assert_eq!(
        ids(&routed),
        sorted.iter().map(String::as_str).collect::<Vec<_>>()
    );
    for l in &routed {
        assert_eq!(l, &live[l["loanId"].as_str().unwrap()]);
    }
    let p = api.get(&format!("/funds/{fund}/portfolio")).await;
    let committed: u64 = loans.iter().map(|l| l.2).sum();
    assert_eq!(p.body["loans"], json!(loans.len()), "{}", p.body);
    assert_eq!(p.body["committed"], json!(cents(committed)), "{}", p.body);
    assert_eq!(p.body["funded"], json!(cents(committed)), "{}", p.body);
    let outstanding: rust_decimal::Decimal = live
        .values()
        .map(|s| {
            s["outstandingPrincipal"]
                .as_str()
                .unwrap()
                .parse::<rust_decimal::Decimal>()
                .unwrap()
        })
        .sum();
    assert_eq!(
        p.body["outstandingPrincipal"]
            .as_str()
            .map(|s| s.parse::<rust_decimal::Decimal>().unwrap()),
        Some(outstanding)
    );
    println!(
        "{requests} requests published {} loans ({paid_off} paid off); {answered_during} answered during the {:?} rebuild, which folded {folded_during} loans; {reads} summary reads, none backwards; {} loans listed in {pages} pages",
        loans.len(),
        ended - began,
        routed.len()
    );

    // Drop every item and rebuild from history alone: the live items come back.
    for loan in &names {
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
    assert!(stored_summaries(&ddb, &api.tenant, &names).await.is_empty());
    let r = ops
        .post("/projections/loan-summary/rebuild", &json!({}))
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["loans"], json!(names.len()), "{}", r.body);
    assert_eq!(r.body["written"], json!(names.len()), "{}", r.body);
    assert_eq!(
        stored_summaries(&ddb, &api.tenant, &names).await,
        live,
        "rebuilt differs from live"
    );
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
    assert_eq!(recorded[1]["payload"]["written"], json!(names.len()));
    println!(
        "rebuilt {} loans after dropping their items; the second rebuild wrote {}",
        r.body["written"], again.body["written"]
    );

    // An unknown projection is 404, and the rebuild needs ops:replay.
    let unknown = ops.post("/projections/nope/rebuild", &json!({})).await;
    assert_eq!(unknown.status, 404, "{}", unknown.body);
    let reader = api.clone().with_header("X-Scopes", "events:read");
    let refused = reader
        .post("/projections/loan-summary/rebuild", &json!({}))
        .await;
    assert_eq!(refused.status, 403, "{}", refused.body);
}

/// Loans per rebuild step, as the runner under test was started with
/// (`PROJECTION_REBUILD_PAGE_SIZE`, the runner's default 100 when unset).
fn rebuild_page_size() -> usize {
    integration_tests::env_number("PROJECTION_REBUILD_PAGE_SIZE", 100)
}

#[tokio::test]
async fn an_async_rebuild_runs_page_by_page_during_live_traffic_and_equals_every_fold() {
    let api = Api::new_tenant();
    let ddb = aws().await.dynamodb;
    let run = uuid::Uuid::new_v4().simple().to_string();
    let fund = format!("F-{}", &run[..8]);
    let published = Arc::new(Mutex::new(Published::default()));
    // More loans than two pages hold before the job starts: it needs three steps at least.
    let page_size = rebuild_page_size();
    let before = 2 * page_size + 1;
    for i in 0..before {
        let loan = format!("L-{run}-{i:03}");
        let (borrower, amount) = (format!("B-{}", i % 3), 100_000 * (i as u64 + 1));
        publish_funded_loan(&api, &loan, &borrower, &fund, amount).await;
        published
            .lock()
            .unwrap()
            .loans
            .push((loan, borrower, amount));
    }
    let stop = Arc::new(AtomicBool::new(false));
    let traffic = live_traffic(&api, &fund, &run, &published, &stop);

    let ops = api
        .clone()
        .with_header("X-Scopes", "ops:replay")
        .with_header("X-Principal", "ops-rebuilder");
    let started = ops
        .clone()
        .with_header("Prefer", "respond-async")
        .post("/projections/loan-summary/rebuild", &json!({}))
        .await;
    assert_eq!(started.status, 202, "{}", started.body);
    let job_id = started.body["jobId"].as_str().expect("a jobId").to_string();
    let location = started
        .headers
        .get("location")
        .and_then(|v| v.to_str().ok())
        .expect("a Location")
        .to_string();
    assert_eq!(
        location,
        format!("/projections/loan-summary/rebuilds/{job_id}")
    );
    assert_eq!(started.body["status"], json!("RUNNING"), "{}", started.body);
    assert_eq!(started.body["projection"], json!("loan-summary"));
    assert_eq!(
        started
            .headers
            .get("preference-applied")
            .and_then(|v| v.to_str().ok()),
        Some("respond-async")
    );

    // Poll the job while the traffic goes on, until it is no longer running.
    let began = Instant::now();
    let mut polls = Vec::new();
    let done = loop {
        let r = ops.get(&location).await;
        assert_eq!(r.status, 200, "{}", r.body);
        polls.push((r.body["status"].clone(), r.body["pages"].as_u64()));
        if r.body["status"] != json!("RUNNING") {
            break r.body;
        }
        assert!(began.elapsed() < SETTLE, "still running: {}", r.body);
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let took = began.elapsed();
    assert_eq!(done["status"], json!("COMPLETED"), "{done}");
    let answered_during = published
        .lock()
        .unwrap()
        .answered
        .iter()
        .filter(|t| **t > began)
        .count();
    stop.store(true, Ordering::SeqCst);
    traffic.await.expect("the publisher");
    assert!(answered_during >= 1, "no publish answered during the job");

    // Every loan created before the start was folded: at least that many, over pages of
    // the configured size.
    let folded_loans = done["loans"].as_u64().expect("loans") as usize;
    let pages = done["pages"].as_u64().expect("pages") as usize;
    assert!(folded_loans >= before, "{done}");
    assert!(pages > 1, "{done}");
    assert_eq!(pages, folded_loans / page_size + 1, "{done}");
    // The pages done never went backwards while polled.
    let seen_pages: Vec<u64> = polls.iter().filter_map(|p| p.1).collect();
    assert!(seen_pages.windows(2).all(|w| w[0] <= w[1]), "{polls:?}");
    assert!(
        done["startedAt"].is_string() && done["finishedAt"].is_string(),
        "{done}"
    );
    assert!(done.get("error").is_none(), "{done}");

    // Once the traffic stopped and the queues drained: each summary is the fold of its
    // stored history.
    let loans = published.lock().unwrap().loans.clone();
    let names: Vec<String> = loans.iter().map(|l| l.0.clone()).collect();
    let live = settled(&api, &names).await;
    for (loan, borrower, amount) in &loans {
        assert_eq!(live[loan], folded(&ddb, &api.tenant, loan).await, "{loan}");
        assert_eq!(live[loan]["borrowerId"], json!(borrower), "{loan}");
        assert_eq!(live[loan]["amount"], json!(cents(*amount)), "{loan}");
    }

    // Drop the items of the loans made before the job, and rebuild them asynchronously from
    // history alone: the live items come back, written by the job.
    let dropped: Vec<String> = names[..before].to_vec();
    for loan in &dropped {
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
    assert!(stored_summaries(&ddb, &api.tenant, &dropped)
        .await
        .is_empty());
    let again = ops
        .clone()
        .with_header("Prefer", "respond-async")
        .post("/projections/loan-summary/rebuild", &json!({}))
        .await;
    assert_eq!(again.status, 202, "{}", again.body);
    let again_location = format!(
        "/projections/loan-summary/rebuilds/{}",
        again.body["jobId"].as_str().expect("a jobId")
    );
    let start = Instant::now();
    let second = loop {
        let r = ops.get(&again_location).await;
        if r.body["status"] != json!("RUNNING") {
            break r.body;
        }
        assert!(start.elapsed() < SETTLE, "still running: {}", r.body);
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(second["status"], json!("COMPLETED"), "{second}");
    assert_eq!(second["loans"], json!(names.len()), "{second}");
    assert_eq!(second["written"], json!(dropped.len()), "{second}");
    assert_eq!(
        stored_summaries(&ddb, &api.tenant, &names).await,
        live,
        "rebuilt differs from live"
    );

    // Each job is recorded once, with who started it and what it counted.
    let recorded: Vec<Value> = api
        .history("Ops", &api.tenant)
        .await
        .into_iter()
        .filter(|e| e["eventType"] == json!("Ops.ProjectionRebuilt"))
        .collect();
    assert_eq!(recorded.len(), 2, "{recorded:?}");
    assert_eq!(recorded[0]["eventId"], done["opsEventId"]);
    assert_eq!(recorded[1]["eventId"], second["opsEventId"]);
    for r in &recorded {
        assert_eq!(r["metadata"]["principal"], json!("ops-rebuilder"), "{r}");
    }
    assert_eq!(recorded[1]["payload"]["written"], json!(dropped.len()));
    println!(
        "{} loans before the job, pages of {page_size}: {pages} pages, {folded_loans} loans folded in {took:?} while {answered_during} publishes were answered; the rebuild after dropping {} items wrote {}",
        before,
        dropped.len(),
        second["written"]
    );

    // Another tenant never sees the job; unknown jobs and projections are 404; the route
    // needs ops:replay.
    let other = Api::new_tenant().with_header("X-Scopes", "ops:replay");
    let r = other.get(&location).await;
    assert_eq!(r.status, 404, "{}", r.body);
    assert_eq!(r.body["error"]["code"], json!("not_found"), "{}", r.body);
    let unknown = uuid::Uuid::new_v4();
    for path in [
        format!("/projections/loan-summary/rebuilds/{unknown}"),
        "/projections/loan-summary/rebuilds/not-a-job".to_string(),
        format!("/projections/nope/rebuilds/{job_id}"),
    ] {
        let r = ops.get(&path).await;
        assert_eq!(r.status, 404, "{path}: {}", r.body);
        assert!(r.body["error"]["message"].is_string(), "{path}: {}", r.body);
    }
    let reader = api.clone().with_header("X-Scopes", "events:read");
    assert_eq!(reader.get(&location).await.status, 403);
    let refused = reader
        .clone()
        .with_header("Prefer", "respond-async")
        .post("/projections/loan-summary/rebuild", &json!({}))
        .await;
    assert_eq!(refused.status, 403, "{}", refused.body);
    let unknown_view = ops
        .clone()
        .with_header("Prefer", "respond-async")
        .post("/projections/nope/rebuild", &json!({}))
        .await;
    assert_eq!(unknown_view.status, 404, "{}", unknown_view.body);
}

#[tokio::test]
async fn a_synchronous_rebuild_past_its_budget_hands_the_rest_to_the_step_queue() {
    // No inline budget and two loans a page: the route runs one step, sends the next to the
    // step queue and answers 202 without having been asked to.
    let runner = RunnerProcess::start(
        "rbinline",
        &[
            ("PROJECTION_REBUILD_INLINE_SECS", "0"),
            ("PROJECTION_REBUILD_PAGE_SIZE", "2"),
        ],
    )
    .await;
    let run = uuid::Uuid::new_v4().simple().to_string();
    let api = runner.api(&format!("t-{}", &run[..8]));
    let ddb = aws().await.dynamodb;
    let fund = format!("F-{}", &run[..8]);
    let loans: Vec<String> = (0..5).map(|i| format!("L-{run}-{i}")).collect();
    for (i, loan) in loans.iter().enumerate() {
        publish_funded_loan(&api, loan, "B-1", &fund, 100_000 * (i as u64 + 1)).await;
    }
    // Live summaries first, each at its stream's head; then dropped, so only the job can
    // bring them back.
    let start = Instant::now();
    loop {
        let summaries = stored_summaries_in(&ddb, &runner.table(), &api.tenant, &loans).await;
        let mut at_heads = summaries.len() == loans.len();
        for loan in &loans {
            let history = stored_history_in(&ddb, &runner.table(), &api.tenant, loan).await;
            let head = history.last().map(|e| e.sequence);
            at_heads &= summaries.get(loan).and_then(|s| s["version"].as_u64()) == head;
        }
        if at_heads {
            break;
        }
        assert!(
            start.elapsed() < SETTLE,
            "summaries not live: {summaries:?}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    for loan in &loans {
        ddb.delete_item()
            .table_name(runner.table())
            .set_key(Some(layout::key(
                layout::loan_summary_pk(&api.tenant, loan),
                0,
            )))
            .send()
            .await
            .expect("DeleteItem(summary)");
    }

    let ops = api.clone().with_header("X-Scopes", "ops:replay");
    let r = ops
        .post("/projections/loan-summary/rebuild", &json!({}))
        .await;
    assert_eq!(r.status, 202, "{}", r.body);
    assert!(
        r.headers.get("preference-applied").is_none(),
        "none was asked"
    );
    assert_eq!(r.body["status"], json!("RUNNING"), "{}", r.body);
    assert!(
        r.body["pages"].as_u64() >= Some(1),
        "a step ran inline: {}",
        r.body
    );
    let location = r
        .headers
        .get("location")
        .and_then(|v| v.to_str().ok())
        .expect("a Location")
        .to_string();
    let start = Instant::now();
    let done = loop {
        let r = ops.get(&location).await;
        assert_eq!(r.status, 200, "{}", r.body);
        if r.body["status"] != json!("RUNNING") {
            break r.body;
        }
        assert!(start.elapsed() < SETTLE, "still running: {}", r.body);
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(done["status"], json!("COMPLETED"), "{done}");
    assert_eq!(done["loans"], json!(loans.len()), "{done}");
    assert_eq!(done["pages"], json!(loans.len() / 2 + 1), "{done}");
    assert!(done["opsEventId"].is_string(), "{done}");
    // The steps on the queue wrote the rest: every summary is back, the fold of its history.
    let rebuilt = stored_summaries_in(&ddb, &runner.table(), &api.tenant, &loans).await;
    for loan in &loans {
        let expected = folded_in(&ddb, &runner.table(), &api.tenant, loan).await;
        assert_eq!(rebuilt.get(loan), Some(&expected), "{loan}");
    }
}
