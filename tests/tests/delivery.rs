//! Delivery guarantees under faults (issue 4), each against a local runner of its own with
//! its own table and queues: injected transient failures and poison events, a process
//! killed mid-batch, handlers switched off and on.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use aws_sdk_dynamodb::types::AttributeValue;
use integration_tests::{
    aws, batch_get, correlation_events, queue_depth, queue_url, Api, RunnerProcess,
};
use serde_json::{json, Value};

fn loan_created(loan: &str) -> Value {
    json!({"eventType": "Loan.Created", "aggregateType": "Loan", "aggregateId": loan,
        "payload": {"loanId": loan, "borrowerId": "B-1", "amount": "12000.00", "interestRate": "6",
            "termMonths": 12, "amortization": "amortized", "paymentFrequency": "monthly"},
        "metadata": {"correlationId": format!("c-{loan}")}})
}

fn loan_funded(loan: &str) -> Value {
    json!({"eventType": "Loan.Funded", "aggregateType": "Loan", "aggregateId": loan,
        "payload": {"loanId": loan, "fundedAmount": "12000.00", "fundedAt": "2026-03-01T10:00:00Z"},
        "metadata": {"correlationId": format!("c-{loan}")}})
}

fn domain_of(handler: &str) -> &'static str {
    lending_events::handlers::all()
        .into_iter()
        .find(|h| h.name() == handler)
        .map(|h| h.domain())
        .unwrap_or("?")
}

/// (sequence, completedAt) of one processing record.
type Completion = (u64, chrono::DateTime<chrono::Utc>);

/// Handlers subscribed to an event type, by name.
fn subscribers(event_type: &str) -> Vec<&'static str> {
    lending_events::handlers::all()
        .into_iter()
        .filter(|h| h.subscriptions().contains(&event_type))
        .map(|h| h.name())
        .collect()
}

fn attr<'a>(item: &'a HashMap<String, AttributeValue>, k: &str) -> Option<&'a str> {
    item.get(k).and_then(|v| v.as_s().ok()).map(String::as_str)
}

fn num(item: &HashMap<String, AttributeValue>, k: &str) -> u64 {
    item.get(k)
        .and_then(|v| v.as_n().ok())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// Processing records of (event, handler) pairs, keyed by pk.
async fn records(
    table: &str,
    tenant: &str,
    pairs: &[(String, &'static str)],
) -> HashMap<String, HashMap<String, AttributeValue>> {
    let clients = aws().await;
    let pks: Vec<String> = pairs
        .iter()
        .map(|(e, h)| format!("P#{tenant}#{e}#{h}"))
        .collect();
    batch_get(&clients.dynamodb, table, &pks)
        .await
        .into_iter()
        .filter_map(|i| attr(&i, "pk").map(str::to_string).map(|pk| (pk, i.clone())))
        .collect()
}

async fn schedules(api: &Api, loan: &str) -> usize {
    api.history("Loan", loan)
        .await
        .iter()
        .filter(|e| e["eventType"] == "PaymentSchedule.Generated")
        .count()
}

#[tokio::test]
async fn a_handler_killed_mid_batch_and_restarted_leaves_the_same_end_state() {
    // Crash after the second follow-on append: effects stored, record not completed, batch
    // not acknowledged. The restarted process must finish the work without duplicates.
    let mut runner = RunnerProcess::start(
        "crash",
        &[
            ("LOCAL_BATCH_TIMEOUT_SECS", "4"),
            ("FAULT_CRASH_AFTER_APPENDS", "2"),
        ],
    )
    .await;
    let api = runner.api("crash-tenant");
    let loans: Vec<String> = (0..6).map(|i| format!("L{i}-{}", runner.prefix)).collect();
    // One request: the process is about to die, its API with it.
    let events: Vec<Value> = loans
        .iter()
        .flat_map(|l| [loan_created(l), loan_funded(l)])
        .collect();
    let r = api.post("/events", &json!({ "events": events })).await;
    assert_eq!(r.status, 201, "{}", r.body);
    let start = Instant::now();
    while !runner.exited() {
        assert!(
            start.elapsed() < Duration::from_secs(90),
            "the injected crash never happened"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    runner.spawn(&[("FAULT_CRASH_AFTER_APPENDS", "")]).await;
    let api = runner.api("crash-tenant");
    for loan in &loans {
        let h = api
            .wait_history("Loan", loan, Duration::from_secs(120), |h| h.len() >= 3)
            .await;
        assert_eq!(h.len(), 3, "{loan}: {:?}", integration_tests::types(&h));
        assert_eq!(
            schedules(&api, loan).await,
            1,
            "{loan} has exactly one schedule"
        );
    }
    // Every Loan.Funded ends with one COMPLETED record of the payment handler.
    let mut pairs = Vec::new();
    for loan in &loans {
        let funded = api.history("Loan", loan).await[1]["eventId"]
            .as_str()
            .unwrap()
            .to_string();
        pairs.push((funded, "payment-schedule"));
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let recs = records(&runner.table(), &api.tenant, &pairs).await;
        let done = recs
            .values()
            .filter(|r| attr(r, "status") == Some("COMPLETED"))
            .count();
        if done == pairs.len() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{done} of {} records completed",
            pairs.len()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let clients = aws().await;
    let url = queue_url(&clients.sqs, &runner.queue_name("payment", false)).await;
    let deadline = Instant::now() + Duration::from_secs(60);
    while queue_depth(&clients.sqs, &url).await != (0, 0) {
        assert!(Instant::now() < deadline, "payment queue not drained");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

#[tokio::test]
async fn a_switched_off_handler_keeps_its_messages_until_switched_on() {
    let runner = RunnerProcess::start("switch", &[]).await;
    let clients = aws().await;
    let ledger =
        event_adapters::ledger::DynamoLedger::new(clients.dynamodb.clone(), runner.table());
    ledger
        .set_enabled("payment-schedule", false)
        .await
        .expect("switch off");
    // Switches are cached for 2 s by each function instance.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let api = runner.api("switch-tenant");
    let loan = format!("L-{}", runner.prefix);
    assert_eq!(
        api.post(
            "/events",
            &json!({"events": [loan_created(&loan), loan_funded(&loan)]})
        )
        .await
        .status,
        201
    );

    // Dispatched to the payment queue, but not handled while off.
    let url = queue_url(&clients.sqs, &runner.queue_name("payment", false)).await;
    let start = Instant::now();
    let depth = |d: (u64, u64)| d.0 + d.1;
    while depth(queue_depth(&clients.sqs, &url).await) == 0 {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "Loan.Funded never reached the payment queue"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(schedules(&api, &loan).await, 0);
    // Other payment handlers ran; the message stays on the queue (waiting or in flight).
    assert!(
        depth(queue_depth(&clients.sqs, &url).await) >= 1,
        "the message waits on the queue"
    );

    ledger
        .set_enabled("payment-schedule", true)
        .await
        .expect("switch on");
    let h = api
        .wait_history("Loan", &loan, Duration::from_secs(60), |h| h.len() >= 3)
        .await;
    assert_eq!(integration_tests::types(&h)[2], "PaymentSchedule.Generated");
}

/// The fault storm: 1,000 events across 50 aggregates plus 3 poison events, handlers failing transiently on
/// ~10 % of executions, and a few poison events.
#[tokio::test]
async fn every_event_is_handled_exactly_once_in_order_under_transient_faults_and_poison() {
    let runner = RunnerProcess::start(
        "storm",
        &[
            ("FAULT_TRANSIENT_PERCENT", "10"),
            ("RETRY_BASE_MS", "500"),
            ("RETRY_CAP_MS", "2000"),
            ("LOCAL_BATCH_TIMEOUT_SECS", "120"),
        ],
    )
    .await;
    let api = runner.api("storm-tenant");
    let clients = aws().await;
    let table = runner.table();

    // 50 loans, 20 events each: created, funded (four handlers), 18 payments (one handler
    // each); correlation = the loan.
    let mut originals: Vec<Value> = Vec::new();
    let mut correlations = Vec::new();
    for i in 0..50 {
        let loan = format!("L{i}");
        let corr = json!({"correlationId": format!("c-{loan}")});
        let mut evs = vec![loan_created(&loan), loan_funded(&loan)];
        for k in 0..18 {
            evs.push(json!({"eventType": "Payment.Received", "aggregateType": "Loan", "aggregateId": loan,
                "payload": {"paymentId": format!("P{i}-{k}"), "loanId": loan, "amount": "10.00", "method": "ach",
                    "receivedAt": "2026-04-01T10:00:00Z"}, "metadata": corr}));
        }
        correlations.push(format!("c-{loan}"));
        originals.extend(post_all(&api, evs).await);
    }
    // Poison: funding loans that were never created is a business-rule rejection.
    let mut poison = HashSet::new();
    for i in 0..3 {
        let loan = format!("GHOST{i}");
        let mut e = loan_funded(&loan);
        e["metadata"] = json!({"correlationId": "c-ghosts"});
        let stored = post_all(&api, vec![e]).await;
        poison.insert(stored[0]["eventId"].as_str().unwrap().to_string());
    }
    correlations.push("c-ghosts".into());
    assert!(originals.len() >= 1000, "{} events", originals.len());

    let started = Instant::now();
    // Wait until every event of these correlations (follow-ons included) has a COMPLETED
    // record for each subscribed handler, and the poison ones are FAILED.
    let deadline = Instant::now() + Duration::from_secs(1200);
    let (all_events, recs, pairs) = loop {
        let mut all_events = Vec::new();
        for c in &correlations {
            all_events.extend(correlation_events(&clients.dynamodb, &table, &api.tenant, c).await);
        }
        let pairs: Vec<(String, &'static str)> = all_events
            .iter()
            .flat_map(|e| {
                let id = e["eventId"].as_str().unwrap_or_default().to_string();
                subscribers(e["eventType"].as_str().unwrap_or_default())
                    .into_iter()
                    .map(move |h| (id.clone(), h))
            })
            .collect();
        let recs = records(&table, &api.tenant, &pairs).await;
        let settled = pairs.iter().filter(|(e, h)| {
            let status = recs
                .get(&format!("P#{}#{e}#{h}", api.tenant))
                .and_then(|r| attr(r, "status"));
            match (poison.contains(e), *h, domain_of(h)) {
                (true, "payment-schedule", _) => status != Some("FAILED"),
                // The rest of the payment domain waits with the message in the DLQ.
                (true, _, "payment") => false,
                _ => status != Some("COMPLETED"),
            }
        });
        let pending = settled.count();
        if pending == 0 {
            println!("storm settled after {} s", started.elapsed().as_secs());
            break (all_events, recs, pairs);
        }
        assert!(
            Instant::now() < deadline,
            "not settled: {pending} of {} pairs pending",
            pairs.len()
        );
        tokio::time::sleep(Duration::from_secs(3)).await;
    };

    // No follow-on twice: the same content from the same cause would be a duplicate.
    let mut seen = HashSet::new();
    let mut duplicated = 0;
    for e in all_events
        .iter()
        .filter(|e| e["metadata"]["causationId"].is_string())
    {
        let key = (
            e["metadata"]["causationId"].to_string(),
            e["eventType"].to_string(),
            e["aggregateId"].to_string(),
            e["payload"].to_string(),
        );
        if !seen.insert(key) {
            duplicated += 1;
        }
    }
    assert_eq!(duplicated, 0);

    // Per aggregate and handler, completion order equals sequence order.
    let mut by_stream: HashMap<(String, &str), Vec<Completion>> = HashMap::new();
    for (e, h) in &pairs {
        if poison.contains(e) {
            continue;
        }
        let r = &recs[&format!("P#{}#{e}#{h}", api.tenant)];
        let at = chrono::DateTime::parse_from_rfc3339(attr(r, "completedAt").unwrap())
            .unwrap()
            .to_utc();
        by_stream
            .entry((attr(r, "streamKey").unwrap().to_string(), *h))
            .or_default()
            .push((num(r, "sequence"), at));
    }
    for ((stream, h), mut v) in by_stream {
        v.sort_by_key(|(seq, _)| *seq);
        assert!(
            v.windows(2).all(|w| w[0].1 <= w[1].1),
            "{h} handled {stream} out of order: {v:?}"
        );
    }

    // Poison events are in the payment DLQ with their reason; every other queue is empty.
    let dlq = queue_url(&clients.sqs, &runner.queue_name("payment", true)).await;
    let mut dead = HashMap::new();
    for _ in 0..10 {
        let out = clients
            .sqs
            .receive_message()
            .queue_url(&dlq)
            .max_number_of_messages(10)
            .message_attribute_names("All")
            .visibility_timeout(30)
            .send()
            .await
            .unwrap();
        for m in out.messages() {
            let body: Value = serde_json::from_str(m.body().unwrap_or("{}")).unwrap();
            let reason = m
                .message_attributes()
                .and_then(|a| a.get("failureReason"))
                .and_then(|v| v.string_value())
                .unwrap_or("")
                .to_string();
            dead.insert(body["eventId"].as_str().unwrap_or("").to_string(), reason);
        }
        if dead.len() >= poison.len() {
            break;
        }
    }
    assert_eq!(
        dead.keys().cloned().collect::<HashSet<_>>(),
        poison,
        "exactly the poison events are dead-lettered"
    );
    assert!(
        dead.values().all(|r| r.contains("never created")),
        "{dead:?}"
    );
    for pair in event_adapters::topology::queues(&runner.prefix) {
        let url = queue_url(&clients.sqs, &pair.queue).await;
        assert_eq!(
            queue_depth(&clients.sqs, &url).await,
            (0, 0),
            "{} drained",
            pair.queue
        );
        if pair.domain != "payment" {
            let url = queue_url(&clients.sqs, &pair.dlq).await;
            assert_eq!(
                queue_depth(&clients.sqs, &url).await.0,
                0,
                "{} empty",
                pair.dlq
            );
        }
    }

    let injected: u64 = recs
        .values()
        .filter(|r| attr(r, "lastError").is_some_and(|e| e.contains("injected")))
        .map(|r| num(r, "failures"))
        .sum();
    let attempts: u64 = recs.values().map(|r| num(r, "attempts")).sum();
    println!(
        "storm: {} events ({} published, {} follow-ons), {} handler executions, {} attempts, {} injected transient failures, {} dead-lettered, lost 0, duplicated {duplicated}",
        all_events.len(),
        originals.len() + poison.len(),
        all_events.len() - originals.len() - poison.len(),
        pairs.len(),
        attempts,
        injected,
        dead.len()
    );
    assert!(injected > 0, "the fault injection was active");
}

async fn post_all(api: &Api, events: Vec<Value>) -> Vec<Value> {
    let r = api.post("/events", &json!({ "events": events })).await;
    assert_eq!(r.status, 201, "{}", r.body);
    r.body["events"].as_array().cloned().unwrap_or_default()
}
