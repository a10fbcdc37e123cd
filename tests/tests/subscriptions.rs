//! Subscriptions of other systems, end to end on LocalStack: the HTTP API creates them, the
//! runner's dispatch matches stored events, its delivery mapping sends them to an
//! independent webhook receiver on 127.0.0.1 (`tests/receiver/receiver.py`, which verifies
//! every Standard Webhooks signature with the reference library) or to another team's SQS
//! queue.
//!
//! What a test expects is computed from independent reads (the events stored in the table,
//! the requests the receiver recorded, the messages on the queues), never from the
//! system's own counters. Each test runs its own local runner with short retry and breaker
//! timings, so the whole file stays within a few minutes.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::{Duration, Instant};

use integration_tests::{
    aws, queue_url, scan_events, Api, ReceivedRequest, Receiver, ReceiverMode, RunnerProcess,
};
use serde_json::{json, Value};

/// Retry, hold, cache and breaker timings short enough for tests.
const FAST: &[(&str, &str)] = &[
    ("SUBSCRIPTION_CACHE_MS", "300"),
    ("DELIVERY_RETRY_BASE_MS", "200"),
    ("DELIVERY_RETRY_CAP_MS", "1000"),
    ("DELIVERY_HOLD_MS", "500"),
    ("DELIVERY_PAUSED_HOLD_MS", "500"),
    ("DELIVERY_MAX_ATTEMPTS", "25"),
    ("DELIVERY_TIMEOUT_MS", "2000"),
    ("DELIVERY_BREAKER_THRESHOLD", "3"),
    ("DELIVERY_BREAKER_COOLDOWN_MS", "2000"),
    ("LOCAL_STREAM_BATCH_WINDOW_MS", "100"),
];

/// A secret the receiver starts with before a subscription hands out its real one.
const PLACEHOLDER_SECRET: &str = "whsec_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=";

async fn runner(name: &str) -> RunnerProcess {
    RunnerProcess::start(name, FAST).await
}

fn tenant() -> String {
    format!("t-{}", uuid::Uuid::new_v4().simple())
}

fn flagged(borrower: &str, reason: &str) -> Value {
    json!({"eventType": "Borrower.Flagged", "aggregateType": "Borrower", "aggregateId": borrower,
        "payload": {"borrowerId": borrower, "reason": reason}})
}

fn loan_created(loan: &str) -> Value {
    json!({"eventType": "Loan.Created", "aggregateType": "Loan", "aggregateId": loan,
        "payload": {"loanId": loan, "borrowerId": "B-1", "amount": "12000.00", "interestRate": "6",
            "termMonths": 12, "amortization": "amortized", "paymentFrequency": "monthly"}})
}

fn payment(loan: &str, id: &str, amount: &str) -> Value {
    json!({"eventType": "Payment.Received", "aggregateType": "Loan", "aggregateId": loan,
        "payload": {"paymentId": id, "loanId": loan, "amount": amount, "method": "ach",
            "receivedAt": "2026-04-01T10:00:00Z"}})
}

/// POST, retried while the API answers 503 (a busy emulator: clients retry 503 with
/// backoff, as the API asks).
async fn post_retrying(api: &Api, path: &str, body: &Value) -> integration_tests::Reply {
    let start = Instant::now();
    loop {
        let r = api.post(path, body).await;
        if r.status != 503 || start.elapsed() > Duration::from_secs(90) {
            return r;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Post events (1 to 25) and return the stored envelopes (a retried request carries the
/// same eventIds, so it is stored once).
async fn post(api: &Api, events: Vec<Value>) -> Vec<Value> {
    let events: Vec<Value> = events
        .into_iter()
        .map(|mut e| {
            e["eventId"] = json!(uuid::Uuid::new_v4().to_string());
            e
        })
        .collect();
    let r = post_retrying(api, "/events", &json!({ "events": events })).await;
    assert!(
        r.status == 201 || r.status == 200,
        "{} {}",
        r.status,
        r.body
    );
    r.body["events"].as_array().cloned().unwrap_or_default()
}

/// Create a subscription; its id and its secret. Not retried: a 503 may come after the
/// write committed, and a second create would be a second subscription.
async fn subscribe(api: &Api, body: Value) -> (String, String) {
    let r = api.post("/subscriptions", &body).await;
    assert_eq!(r.status, 201, "{}", r.body);
    let id = r.body["subscriptionId"]
        .as_str()
        .expect("an id")
        .to_string();
    let secret = r.body["secret"].as_str().expect("a secret").to_string();
    assert!(secret.starts_with("whsec_"), "{secret}");
    (id, secret)
}

/// Subscribe a receiver path to `Borrower.Flagged`, hand the receiver the secret, and give
/// dispatch's filter cache time to see the subscription; the subscription's id.
async fn subscribe_flagged(api: &Api, receiver: &Receiver, name: &str, path: &str) -> String {
    let body = webhook(
        name,
        &receiver.url(path),
        json!({"eventTypes": ["Borrower.Flagged"]}),
    );
    let (id, secret) = subscribe(api, body).await;
    receiver.set_secrets(&[&secret]).await;
    tokio::time::sleep(Duration::from_millis(800)).await;
    id
}

fn webhook(name: &str, url: &str, filter: Value) -> Value {
    json!({"name": name, "filter": filter, "target": {"type": "webhook", "url": url}})
}

/// The eventId a request carried (CloudEvents `id`, or the envelope's `eventId`).
fn event_id_of(r: &ReceivedRequest) -> String {
    r.json["id"]
        .as_str()
        .or_else(|| r.json["eventId"].as_str())
        .unwrap_or_default()
        .to_string()
}

/// The eventIds accepted (2xx) on one receiver path, once each.
fn accepted_ids(requests: &[ReceivedRequest], path: &str) -> BTreeSet<String> {
    requests
        .iter()
        .filter(|r| r.path == path && r.accepted())
        .map(event_id_of)
        .collect()
}

/// Every request was signed correctly, and all requests of one event to one subscription
/// (one receiver path) carry one `webhook-id` and one body: retries are the same message.
fn assert_signed_and_stable(requests: &[ReceivedRequest]) {
    let mut per_event: HashMap<(String, String), (String, String)> = HashMap::new();
    for r in requests {
        assert!(
            r.verified,
            "an unverified request: {:?} {:?}",
            r.error, r.headers
        );
        let id = r.header("webhook-id").expect("webhook-id").to_string();
        let seen = per_event
            .entry((r.path.clone(), event_id_of(r)))
            .or_insert_with(|| (id.clone(), r.body.clone()));
        assert_eq!(seen.0, id, "one event, two webhook-ids");
        assert_eq!(seen.1, r.body, "one event, two bodies");
    }
    // And two events never share a webhook-id.
    let ids: BTreeSet<&String> = per_event.values().map(|(id, _)| id).collect();
    assert_eq!(ids.len(), per_event.len(), "two events share a webhook-id");
}

/// Per aggregate (the CloudEvents `subject`), the sequences in the order the receiver first
/// accepted them; and a check that no event was ever sent before the previous one of its
/// aggregate had been accepted.
fn accepted_order(requests: &[ReceivedRequest], path: &str) -> BTreeMap<String, Vec<u64>> {
    let mut order: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    for r in requests.iter().filter(|r| r.path == path) {
        let subject = r.json["subject"].as_str().unwrap_or_default().to_string();
        let seq: u64 = r.json["sequence"]
            .as_str()
            .and_then(|s| s.parse().ok())
            .expect("the sequence extension");
        let done = order.entry(subject.clone()).or_default();
        let last = done.last().copied().unwrap_or(0);
        assert!(
            seq <= last + 1,
            "{subject}: sequence {seq} was sent before {} was accepted",
            last + 1
        );
        if r.accepted() && seq == last + 1 {
            done.push(seq);
        }
    }
    order
}

/// Messages on a queue with their attributes, without consuming them (visible again at once).
async fn peek(sqs: &aws_sdk_sqs::Client, url: &str) -> Vec<(Value, HashMap<String, String>)> {
    let mut out = Vec::new();
    let mut handles = Vec::new();
    for _ in 0..3 {
        let got = sqs
            .receive_message()
            .queue_url(url)
            .max_number_of_messages(10)
            .visibility_timeout(5)
            .wait_time_seconds(1)
            .message_attribute_names("All")
            .send()
            .await
            .expect("ReceiveMessage");
        for m in got.messages() {
            let body = serde_json::from_str(m.body().unwrap_or("")).unwrap_or(Value::Null);
            let attrs = m
                .message_attributes()
                .map(|a| {
                    a.iter()
                        .map(|(k, v)| (k.clone(), v.string_value().unwrap_or("").to_string()))
                        .collect()
                })
                .unwrap_or_default();
            out.push((body, attrs));
            handles.extend(m.receipt_handle().map(str::to_string));
        }
    }
    for h in handles {
        let _ = sqs
            .change_message_visibility()
            .queue_url(url)
            .receipt_handle(h)
            .visibility_timeout(0)
            .send()
            .await;
    }
    out
}

fn dead_letters_of<'a>(
    letters: &'a [(Value, HashMap<String, String>)],
    subscription: &str,
) -> Vec<&'a (Value, HashMap<String, String>)> {
    letters
        .iter()
        .filter(|(_, a)| a.get("subscriptionId").map(String::as_str) == Some(subscription))
        .collect()
}

/// A request with a JSON body (or none for `Value::Null`).
async fn send(api: &Api, method: &str, path: &str, body: &Value) -> integration_tests::Reply {
    let bytes = (!body.is_null()).then(|| body.to_string().into_bytes());
    api.raw(method, path, bytes, Some("application/json"), true)
        .await
}

async fn wait_until<F: std::future::Future<Output = bool>>(
    timeout: Duration,
    what: &str,
    mut check: impl FnMut() -> F,
) {
    let start = Instant::now();
    while !check().await {
        assert!(start.elapsed() < timeout, "not within {timeout:?}: {what}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn filters_deliver_exactly_the_matching_events_signed_as_cloudevents() {
    let runner = runner("subs-filter").await;
    let api = runner.api(&tenant());
    let receiver = Receiver::start(&[PLACEHOLDER_SECRET]).await;
    let (a, sa) = subscribe(
        &api,
        webhook(
            "flags",
            &receiver.url("/a"),
            json!({"eventTypes": ["Borrower.Flagged"]}),
        ),
    )
    .await;
    let (_, sb) = subscribe(
        &api,
        webhook(
            "payments",
            &receiver.url("/b"),
            json!({"eventTypes": ["Payment.*"]}),
        ),
    )
    .await;
    let (_, sc) = subscribe(
        &api,
        webhook(
            "fraud",
            &receiver.url("/c"),
            json!({"eventTypes": ["Borrower.Flagged"], "payload": {"reason": [{"prefix": "fraud"}]}}),
        ),
    )
    .await;
    let mut big = webhook(
        "big payments, envelopes",
        &receiver.url("/d"),
        json!({"eventTypes": ["Payment.Received"], "payload": {"amount": [{"numeric": [">=", "100.00"]}]}}),
    );
    big["format"] = json!("envelope");
    let (_, sd) = subscribe(&api, big).await;
    receiver.set_secrets(&[&sa, &sb, &sc, &sd]).await;
    // Dispatch sees new subscriptions within its cache time.
    tokio::time::sleep(Duration::from_millis(800)).await;

    let loan = format!("L-{}", uuid::Uuid::new_v4().simple());
    post(&api, vec![loan_created(&loan)]).await;
    post(
        &api,
        vec![
            flagged("B-1", "fraud suspected"),
            flagged("B-2", "late twice"),
            flagged("B-3", "fraud ring"),
            payment(&loan, "P-1", "50.00"),
            payment(&loan, "P-2", "150.00"),
        ],
    )
    .await;

    // What each filter should match, from the events stored in the table (the handlers'
    // follow-ons included): read once the posted events have arrived and the handlers
    // have had time to append theirs.
    receiver
        .wait_for(Duration::from_secs(180), |rs| {
            rs.iter().filter(|r| r.path == "/a" && r.accepted()).count() >= 3
        })
        .await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let (ddb, table) = (aws().await.dynamodb, runner.table());
    let stored = scan_events(&ddb, &table, &api.tenant).await;
    let ids = |pred: &dyn Fn(&Value) -> bool| -> BTreeSet<String> {
        stored
            .iter()
            .filter(|e| pred(e))
            .map(|e| e["eventId"].as_str().unwrap().to_string())
            .collect()
    };
    let want: BTreeMap<&str, BTreeSet<String>> = BTreeMap::from([
        ("/a", ids(&|e| e["eventType"] == "Borrower.Flagged")),
        (
            "/b",
            ids(&|e| e["eventType"].as_str().unwrap().starts_with("Payment.")),
        ),
        (
            "/c",
            ids(&|e| {
                e["eventType"] == "Borrower.Flagged"
                    && e["payload"]["reason"]
                        .as_str()
                        .unwrap()
                        .starts_with("fraud")
            }),
        ),
        (
            "/d",
            ids(&|e| e["eventType"] == "Payment.Received" && e["payload"]["amount"] == "150.00"),
        ),
    ]);
    assert_eq!(want["/a"].len(), 3);
    assert_eq!(want["/c"].len(), 2);
    assert_eq!(want["/d"].len(), 1);
    assert!(want["/b"].len() >= 2, "payments: {:?}", want["/b"]);

    let requests = receiver
        .wait_for(Duration::from_secs(180), |rs| {
            want.iter()
                .all(|(path, ids)| accepted_ids(rs, path) == *ids)
        })
        .await;
    // No other event arrives afterwards (a redelivery of the same one, with the same
    // webhook-id, may: delivery is at least once).
    tokio::time::sleep(Duration::from_secs(2)).await;
    let requests_after = receiver.requests().await;
    assert!(requests_after.len() >= requests.len());
    assert_signed_and_stable(&requests_after);
    for (path, ids) in &want {
        assert_eq!(&accepted_ids(&requests_after, path), ids, "{path}");
    }

    // CloudEvents 1.0, structured mode, by default; the envelope when asked.
    let ce = requests_after.iter().find(|r| r.path == "/a").unwrap();
    let event = stored
        .iter()
        .find(|e| e["eventId"] == ce.json["id"])
        .unwrap();
    assert!(ce
        .header("content-type")
        .unwrap()
        .starts_with("application/cloudevents+json"));
    assert_eq!(ce.json["specversion"], "1.0");
    assert_eq!(ce.json["type"], event["eventType"]);
    assert_eq!(
        ce.json["subject"],
        json!(format!(
            "Borrower/{}",
            event["aggregateId"].as_str().unwrap()
        ))
    );
    assert_eq!(ce.json["data"], event["payload"]);
    assert_eq!(ce.json["tenantid"], json!(api.tenant));
    assert_eq!(ce.json["correlationid"], event["metadata"]["correlationId"]);
    let env = requests_after.iter().find(|r| r.path == "/d").unwrap();
    assert_eq!(env.header("content-type"), Some("application/json"));
    assert_eq!(env.json["eventType"], "Payment.Received");
    assert_eq!(env.json["payload"]["amount"], "150.00");

    // The delivery log shows each delivered attempt of a subscription.
    let log = api.get(&format!("/subscriptions/{a}/deliveries")).await;
    assert_eq!(log.status, 200, "{}", log.body);
    let delivered: BTreeSet<String> = log.body["deliveries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|d| d["outcome"] == "DELIVERED")
        .map(|d| d["eventId"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(delivered, want["/a"]);
}

#[tokio::test]
async fn per_aggregate_order_holds_while_the_receiver_fails_at_random() {
    let runner = runner("subs-order").await;
    let api = runner.api(&tenant());
    let receiver = Receiver::start(&[PLACEHOLDER_SECRET]).await;
    receiver.set_mode(&ReceiverMode::failing(0.3, 42)).await;
    let _ = subscribe_flagged(&api, &receiver, "ordered", "/o").await;

    let (aggregates, per_aggregate) = (4, 6);
    let borrowers: Vec<String> = (0..aggregates)
        .map(|i| format!("B-{i}-{}", uuid::Uuid::new_v4().simple()))
        .collect();
    let mut posted = BTreeSet::new();
    for round in 0..per_aggregate {
        let events = borrowers
            .iter()
            .map(|b| flagged(b, &format!("round {round}")))
            .collect();
        for e in post(&api, events).await {
            posted.insert(e["eventId"].as_str().unwrap().to_string());
        }
    }
    let requests = receiver
        .wait_for(Duration::from_secs(180), |rs| {
            accepted_ids(rs, "/o") == posted
        })
        .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let requests = {
        let later = receiver.requests().await;
        assert!(later.len() >= requests.len());
        later
    };
    assert_signed_and_stable(&requests);
    let order = accepted_order(&requests, "/o");
    assert_eq!(order.len(), aggregates);
    for (subject, seqs) in &order {
        assert_eq!(
            seqs,
            &(1..=per_aggregate as u64).collect::<Vec<_>>(),
            "{subject}"
        );
    }
    let failed = requests.iter().filter(|r| r.status == 500).count();
    assert!(
        failed > 0,
        "the receiver never failed: the test proved nothing"
    );
    println!(
        "{} events, {} requests, {failed} answered 500, every aggregate in order",
        posted.len(),
        requests.len()
    );
}

#[tokio::test]
async fn a_receiver_down_opens_the_circuit_and_recovery_drains_the_backlog_in_order() {
    let runner = runner("subs-breaker").await;
    let api = runner.api(&tenant());
    let receiver = Receiver::start(&[PLACEHOLDER_SECRET]).await;
    let id = subscribe_flagged(&api, &receiver, "breaker", "/down").await;
    receiver.down().await;

    let borrowers: Vec<String> = (0..3)
        .map(|i| format!("B-{i}-{}", uuid::Uuid::new_v4().simple()))
        .collect();
    let mut posted = BTreeSet::new();
    for round in 0..4 {
        let events = borrowers
            .iter()
            .map(|b| flagged(b, &format!("r{round}")))
            .collect();
        for e in post(&api, events).await {
            posted.insert(e["eventId"].as_str().unwrap().to_string());
        }
    }
    // The circuit opens: recorded as an event on the subscription's stream.
    let circuit_events = |api: Api, id: String| async move {
        api.history("Subscription", &id)
            .await
            .iter()
            .map(|e| e["eventType"].as_str().unwrap_or_default().to_string())
            .collect::<Vec<_>>()
    };
    wait_until(
        Duration::from_secs(120),
        "Subscription.CircuitOpened",
        || {
            let (api, id) = (api.clone(), id.clone());
            async move {
                circuit_events(api, id)
                    .await
                    .contains(&"Subscription.CircuitOpened".to_string())
            }
        },
    )
    .await;
    let shown = api.get(&format!("/subscriptions/{id}")).await;
    assert_eq!(shown.body["circuit"]["state"], "open", "{}", shown.body);
    // Down for several cool-downs: deliveries wait, nothing is dead-lettered.
    tokio::time::sleep(Duration::from_secs(6)).await;
    let sqs = aws().await.sqs;
    let dlq = queue_url(&sqs, &format!("{}-deliveries-dlq.fifo", runner.prefix)).await;
    assert!(dead_letters_of(&peek(&sqs, &dlq).await, &id).is_empty());

    receiver.up().await;
    let requests = receiver
        .wait_for(Duration::from_secs(180), |rs| {
            accepted_ids(rs, "/down") == posted
        })
        .await;
    assert_signed_and_stable(&requests);
    for (subject, seqs) in accepted_order(&requests, "/down") {
        assert_eq!(seqs, vec![1, 2, 3, 4], "{subject}");
    }
    wait_until(
        Duration::from_secs(20),
        "Subscription.CircuitClosed",
        || {
            let (api, id) = (api.clone(), id.clone());
            async move {
                circuit_events(api, id)
                    .await
                    .contains(&"Subscription.CircuitClosed".to_string())
            }
        },
    )
    .await;
    assert!(dead_letters_of(&peek(&sqs, &dlq).await, &id).is_empty());
}

#[tokio::test]
async fn a_410_goes_to_the_dead_letters_with_its_status_and_is_not_retried() {
    let runner = runner("subs-410").await;
    let api = runner.api(&tenant());
    let receiver = Receiver::start(&[PLACEHOLDER_SECRET]).await;
    receiver.set_mode(&ReceiverMode::status(410)).await;
    let id = subscribe_flagged(&api, &receiver, "gone", "/gone").await;
    let event = post(&api, vec![flagged("B-gone", "gone")]).await.remove(0);
    let event_id = event["eventId"].as_str().unwrap().to_string();

    let sqs = aws().await.sqs;
    let dlq = queue_url(&sqs, &format!("{}-deliveries-dlq.fifo", runner.prefix)).await;
    let start = Instant::now();
    let letter = loop {
        let letters = peek(&sqs, &dlq).await;
        if let Some(l) = dead_letters_of(&letters, &id).first() {
            break (*l).clone();
        }
        assert!(start.elapsed() < Duration::from_secs(120), "no dead letter");
    };
    assert_eq!(letter.1.get("status").map(String::as_str), Some("410"));
    assert!(letter.1.contains_key("bodyExcerpt"), "{:?}", letter.1);
    assert_eq!(letter.0["event"]["eventId"], json!(event_id));
    // Sent once, never retried.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let requests = receiver.requests().await;
    assert_eq!(requests.len(), 1, "a 410 is permanent");
    assert_eq!(requests[0].status, 410);
    let log = api.get(&format!("/subscriptions/{id}/deliveries")).await;
    let entry = &log.body["deliveries"][0];
    assert_eq!(entry["outcome"], "DEAD_LETTERED", "{}", log.body);
    assert_eq!(entry["status"], 410);
}

#[tokio::test]
async fn a_backfill_from_start_from_delivers_history_in_order_then_live_events() {
    let runner = runner("subs-backfill").await;
    let api = runner.api(&tenant());
    let borrowers: Vec<String> = (0..2)
        .map(|i| format!("B-{i}-{}", uuid::Uuid::new_v4().simple()))
        .collect();
    // Before the window: never delivered.
    let early = post(
        &api,
        borrowers.iter().map(|b| flagged(b, "too early")).collect(),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let start_from = chrono::Utc::now();
    tokio::time::sleep(Duration::from_millis(50)).await;
    let mut history = BTreeSet::new();
    for round in 0..3 {
        let events = borrowers
            .iter()
            .map(|b| flagged(b, &format!("h{round}")))
            .collect();
        for e in post(&api, events).await {
            history.insert(e["eventId"].as_str().unwrap().to_string());
        }
    }
    let receiver = Receiver::start(&[PLACEHOLDER_SECRET]).await;
    let mut body = webhook(
        "backfill",
        &receiver.url("/bf"),
        json!({"eventTypes": ["Borrower.Flagged"]}),
    );
    body["startFrom"] = json!(start_from.to_rfc3339_opts(chrono::SecondsFormat::Millis, true));
    let (_, secret) = subscribe(&api, body).await;
    receiver.set_secrets(&[&secret]).await;
    // Live events right away, while the backfill has not run yet.
    let mut live = BTreeSet::new();
    for round in 0..2 {
        let events = borrowers
            .iter()
            .map(|b| flagged(b, &format!("l{round}")))
            .collect();
        for e in post(&api, events).await {
            live.insert(e["eventId"].as_str().unwrap().to_string());
        }
        tokio::time::sleep(Duration::from_millis(700)).await;
    }
    let all: BTreeSet<String> = history.union(&live).cloned().collect();
    let requests = receiver
        .wait_for(Duration::from_secs(180), |rs| {
            accepted_ids(rs, "/bf") == all
        })
        .await;
    assert_signed_and_stable(&requests);
    // Per borrower: sequences 2..=6 (1 is before startFrom), history before live.
    for (subject, seqs) in accepted_order_from(&requests, "/bf", 2) {
        assert_eq!(seqs, vec![2, 3, 4, 5, 6], "{subject}");
    }
    let early_ids: BTreeSet<&str> = early.iter().filter_map(|e| e["eventId"].as_str()).collect();
    assert!(requests
        .iter()
        .all(|r| !early_ids.contains(event_id_of(r).as_str())));
}

/// Like [`accepted_order`], for aggregates whose first delivered sequence is `first`.
fn accepted_order_from(
    requests: &[ReceivedRequest],
    path: &str,
    first: u64,
) -> BTreeMap<String, Vec<u64>> {
    let mut order: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    for r in requests.iter().filter(|r| r.path == path) {
        let subject = r.json["subject"].as_str().unwrap_or_default().to_string();
        let seq: u64 = r.json["sequence"]
            .as_str()
            .and_then(|s| s.parse().ok())
            .unwrap();
        let done = order.entry(subject.clone()).or_default();
        let next = done.last().map_or(first, |l| l + 1);
        assert!(
            seq <= next,
            "{subject}: {seq} sent before {next} was accepted"
        );
        if r.accepted() && seq == next {
            done.push(seq);
        }
    }
    order
}

#[tokio::test]
async fn private_and_metadata_targets_are_refused_and_nothing_is_stored() {
    let runner = runner("subs-ssrf").await;
    let api = runner.api(&tenant());
    for url in [
        "http://169.254.169.254/latest/meta-data/",
        "https://10.0.0.7/hook",
        "https://192.168.1.20/hook",
        "http://[fd00::1]/hook",
        "ftp://127.0.0.1/hook",
    ] {
        let r = api
            .post("/subscriptions", &webhook("bad", url, json!({})))
            .await;
        assert_eq!(r.status, 400, "{url}: {}", r.body);
        assert_eq!(r.body["error"]["field"], "target.url", "{url}: {}", r.body);
    }
    // Bad filters name their field.
    let r = api
        .post(
            "/subscriptions",
            &webhook(
                "bad filter",
                "http://127.0.0.1:9/h",
                json!({"eventTypes": ["loan funded"]}),
            ),
        )
        .await;
    assert_eq!(r.status, 400);
    assert_eq!(
        r.body["error"]["field"], "filter.eventTypes[0]",
        "{}",
        r.body
    );
    // Nothing was stored: no subscription, no Subscription.Created event.
    let list = api.get("/subscriptions").await;
    assert_eq!(list.body["subscriptions"], json!([]));
    let stored = scan_events(&aws().await.dynamodb, &runner.table(), &api.tenant).await;
    assert!(stored.is_empty(), "{stored:?}");
    // The local runner allows loopback receivers (documented).
    let ok = api
        .post(
            "/subscriptions",
            &webhook("local", "http://127.0.0.1:9/h", json!({})),
        )
        .await;
    assert_eq!(ok.status, 201, "{}", ok.body);
}

#[tokio::test]
async fn another_teams_sqs_queue_receives_cloudevents() {
    let runner = runner("subs-sqs").await;
    let api = runner.api(&tenant());
    let sqs = aws().await.sqs;
    let name = format!("{}-other-team", runner.prefix);
    let url = sqs
        .create_queue()
        .queue_name(&name)
        .send()
        .await
        .expect("CreateQueue")
        .queue_url()
        .unwrap()
        .to_string();
    let (_, _) = subscribe(
        &api,
        json!({"name": "servicer", "filter": {"eventTypes": ["Borrower.*"]},
            "target": {"type": "sqs", "queueUrl": url}}),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(800)).await;
    let posted: BTreeSet<String> = post(
        &api,
        vec![
            flagged("B-q1", "a"),
            flagged("B-q2", "b"),
            flagged("B-q1", "c"),
        ],
    )
    .await
    .iter()
    .map(|e| e["eventId"].as_str().unwrap().to_string())
    .collect();
    let mut got = BTreeMap::new();
    let start = Instant::now();
    while got.len() < posted.len() && start.elapsed() < Duration::from_secs(120) {
        let out = sqs
            .receive_message()
            .queue_url(&url)
            .max_number_of_messages(10)
            .wait_time_seconds(1)
            .send()
            .await
            .expect("ReceiveMessage");
        for m in out.messages() {
            let ce: Value = serde_json::from_str(m.body().unwrap_or("")).expect("JSON");
            got.insert(ce["id"].as_str().unwrap_or_default().to_string(), ce);
        }
    }
    let _ = sqs.delete_queue().queue_url(&url).send().await;
    assert_eq!(got.keys().cloned().collect::<BTreeSet<_>>(), posted);
    for ce in got.values() {
        assert_eq!(ce["specversion"], "1.0");
        assert_eq!(ce["type"], "Borrower.Flagged");
        assert_eq!(ce["source"], "/lending-events/borrower");
        assert_eq!(ce["tenantid"], json!(api.tenant));
    }
}

#[tokio::test]
async fn subscriptions_are_managed_over_http_recorded_as_events_and_replayed() {
    let runner = runner("subs-admin").await;
    let api = runner.api(&tenant());
    let receiver = Receiver::start(&[PLACEHOLDER_SECRET]).await;
    let (id, old_secret) = subscribe(
        &api,
        webhook(
            "admin",
            &receiver.url("/m"),
            json!({"eventTypes": ["Borrower.Flagged"]}),
        ),
    )
    .await;
    // The secret is shown once: never in reads.
    let shown = api.get(&format!("/subscriptions/{id}")).await;
    assert_eq!(shown.status, 200);
    assert!(shown.body.get("secret").is_none(), "{}", shown.body);
    assert_eq!(shown.body["status"], "active");
    assert_eq!(
        api.get("/subscriptions").await.body["subscriptions"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    // Another tenant sees nothing of it.
    let other = runner.api(&tenant());
    assert_eq!(other.get(&format!("/subscriptions/{id}")).await.status, 404);
    assert_eq!(api.get("/subscriptions/not-a-uuid").await.status, 404);
    // Without the scope: 403.
    let plain = runner
        .api(&api.tenant)
        .with_header("x-scopes", "events:read");
    assert_eq!(plain.get("/subscriptions").await.status, 403);

    // Pause: nothing goes out; resume: what waited goes.
    let paused = send(
        &api,
        "PATCH",
        &format!("/subscriptions/{id}"),
        &json!({"status": "paused"}),
    )
    .await;
    assert_eq!(paused.status, 200, "{}", paused.body);
    assert_eq!(paused.body["status"], "paused");
    tokio::time::sleep(Duration::from_millis(800)).await;
    receiver.set_secrets(&[&old_secret]).await;
    let first = post(&api, vec![flagged("B-m", "while paused")])
        .await
        .remove(0);
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(
        receiver.requests().await.is_empty(),
        "delivered while paused"
    );
    let resumed = send(
        &api,
        "PATCH",
        &format!("/subscriptions/{id}"),
        &json!({"status": "active"}),
    )
    .await;
    assert_eq!(resumed.status, 200);
    receiver
        .wait_for(Duration::from_secs(120), |rs| {
            rs.iter().any(|r| r.accepted())
        })
        .await;
    // A bad patch names its field and changes nothing.
    let bad = send(
        &api,
        "PATCH",
        &format!("/subscriptions/{id}"),
        &json!({"format": "xml"}),
    )
    .await;
    assert_eq!(bad.status, 400);
    assert_eq!(bad.body["error"]["field"], "format");

    // Rotation: the new secret is returned once; during the grace period a receiver holding
    // only the old secret, or only the new one, verifies.
    let rotated = api
        .post(&format!("/subscriptions/{id}/rotate-secret"), &json!({}))
        .await;
    assert_eq!(rotated.status, 200, "{}", rotated.body);
    let new_secret = rotated.body["secret"].as_str().unwrap().to_string();
    assert_ne!(new_secret, old_secret);
    receiver.set_secrets(&[&old_secret]).await;
    receiver.clear().await;
    // The delivery function caches the subscription briefly.
    tokio::time::sleep(Duration::from_secs(3)).await;
    post(&api, vec![flagged("B-m", "after rotation")]).await;
    let rs = receiver
        .wait_for(Duration::from_secs(120), |rs| {
            rs.iter().any(|r| r.accepted())
        })
        .await;
    let signature = rs[0].header("webhook-signature").unwrap().to_string();
    assert_eq!(
        signature.split(' ').count(),
        2,
        "both secrets sign: {signature}"
    );
    receiver.set_secrets(&[&new_secret]).await;
    receiver.clear().await;

    // Replay to the subscription: delivered again, with the same webhook-id.
    let replay = api
        .post(
            "/replay",
            &json!({"aggregateType": "Borrower", "aggregateId": "B-m", "subscriptions": [id]}),
        )
        .await;
    assert_eq!(replay.status, 202, "{}", replay.body);
    assert_eq!(replay.body["messages"], json!([]), "no handler messages");
    let rs = receiver
        .wait_for(Duration::from_secs(120), |rs| {
            accepted_ids(rs, "/m").contains(first["eventId"].as_str().unwrap())
        })
        .await;
    assert!(rs.iter().all(|r| r.verified));

    // The delivery log pages with signed cursors; a cursor of another query is refused.
    let page = api
        .get(&format!("/subscriptions/{id}/deliveries?limit=1"))
        .await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert_eq!(page.body["deliveries"].as_array().unwrap().len(), 1);
    let cursor = page.body["cursor"]
        .as_str()
        .expect("a next page")
        .to_string();
    let next = api
        .get(&format!(
            "/subscriptions/{id}/deliveries?limit=1&cursor={cursor}"
        ))
        .await;
    assert_eq!(next.status, 200, "{}", next.body);
    assert_ne!(next.body["deliveries"][0], page.body["deliveries"][0]);
    let foreign = other
        .get(&format!("/subscriptions/{id}/deliveries?cursor={cursor}"))
        .await;
    assert_eq!(foreign.status, 404);

    // Delete: gone from reads, nothing more delivered.
    let deleted = send(
        &api,
        "DELETE",
        &format!("/subscriptions/{id}"),
        &Value::Null,
    )
    .await;
    assert_eq!(deleted.status, 200, "{}", deleted.body);
    assert_eq!(api.get(&format!("/subscriptions/{id}")).await.status, 404);

    // Every change is an event on the subscription's stream, by the caller.
    let history = api.history("Subscription", &id).await;
    let types: Vec<&str> = history
        .iter()
        .map(|e| e["eventType"].as_str().unwrap())
        .collect();
    assert_eq!(
        types,
        [
            "Subscription.Created",
            "Subscription.Updated",
            "Subscription.Updated",
            "Subscription.SecretRotated",
            "Subscription.Deleted"
        ]
    );
    assert!(
        history.iter().all(|e| !e.to_string().contains("whsec_")),
        "a secret in an event"
    );

    // The deliveries show beside the handlers in the correlation tree.
    let corr = first["metadata"]["correlationId"].as_str().unwrap();
    let tree = api.get(&format!("/correlations/{corr}")).await;
    assert_eq!(tree.status, 200);
    let deliveries = &tree.body["tree"][0]["deliveries"];
    assert_eq!(deliveries[0]["subscriptionId"], json!(id), "{}", tree.body);
    assert_eq!(deliveries[0]["status"], "DELIVERED");
}

#[tokio::test]
async fn a_change_never_overwrites_backfill_progress_counted_after_it_was_read() {
    use aws_sdk_dynamodb::types::AttributeValue;
    use event_adapters::store::layout::{subscription_sk, subscriptions_pk};
    use event_adapters::store::DynamoStore;
    use event_adapters::subscriptions::repo::SubscriptionStore;

    let runner = runner("subs-race").await;
    let api = runner.api(&tenant());
    let receiver = Receiver::start(&[PLACEHOLDER_SECRET]).await;
    let id = subscribe_flagged(&api, &receiver, "race", "/race").await;
    let uuid: uuid::Uuid = id.parse().expect("a uuid");
    let ddb = integration_tests::aws().await.dynamodb;
    let repo = SubscriptionStore::new(DynamoStore::new(ddb.clone(), runner.table()));
    let finished = || async {
        let item = ddb
            .get_item()
            .table_name(runner.table())
            .key("pk", AttributeValue::S(subscriptions_pk(&api.tenant)))
            .key("sk", AttributeValue::N(subscription_sk(&uuid).to_string()))
            .consistent_read(true)
            .send()
            .await
            .expect("GetItem");
        item.item().and_then(|i| i.get("backfillFinished")).cloned()
    };

    // A copy read before a delivery is counted on the item...
    let mut stale = repo
        .get(&api.tenant, &uuid)
        .await
        .expect("read")
        .expect("stored");
    repo.count_backfill_finished(&api.tenant, &uuid)
        .await
        .expect("counted");
    let counted = finished().await;
    assert_eq!(counted, Some(AttributeValue::N("1".into())));
    // ...cannot be written back over it,
    stale.subscription.version += 1;
    let refused = repo
        .replace(
            &stale,
            "Subscription.Updated",
            json!({}),
            "test",
            lending_events::catalog::OPERATOR,
        )
        .await;
    assert!(refused.is_err(), "a stale copy was written");
    assert_eq!(finished().await, counted);
    // and a change over HTTP (read, change, write) keeps the count.
    let patched = send(
        &api,
        "PATCH",
        &format!("/subscriptions/{id}"),
        &json!({"name": "renamed"}),
    )
    .await;
    assert_eq!(patched.status, 200, "{}", patched.body);
    assert_eq!(finished().await, counted);
    let shown = api.get(&format!("/subscriptions/{id}")).await;
    assert_eq!(shown.body["name"], "renamed", "{}", shown.body);
}
