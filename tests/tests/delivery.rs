//! Delivery guarantees under faults, each test against a local runner of its own (own table
//! and queues): injected transient failures, receives failed until SQS redelivers or
//! dead-letters, failed dispatch sends, poison events, a process killed mid-batch, handlers
//! switched off and on.
//!
//! The checks read what the system cannot vouch for itself: the eventIds the POSTs
//! returned, the events in the table (a Scan), the streams through the API, the queues and
//! DLQs through the SDK, and the follow-ons each handler must append (from the domain
//! table in the README, not from the system's records). Processing records are read only
//! for when each receive of a message ran.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::{Duration, Instant};

use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_sqs::types::{MessageSystemAttributeName, QueueAttributeName};
use chrono::{DateTime, Utc};
use event_adapters::runner::RetryPolicy;
use event_adapters::store::layout;
use event_adapters::topology::{self, MAX_RECEIVE_COUNT};
use integration_tests::{aws, batch_get, queue_depth, queue_url, scan_events, Api, RunnerProcess};
use lending_events::handlers::compliance::DEFAULT_CLOSING_DOCUMENTS;
use lending_events::Domain;
use serde_json::{json, Value};

fn loan_created(loan: &str, fund: Option<&str>) -> Value {
    let mut e = json!({"eventType": "Loan.Created", "aggregateType": "Loan", "aggregateId": loan,
        "payload": {"loanId": loan, "borrowerId": "B-1", "amount": "12000.00", "interestRate": "6",
            "termMonths": 12, "amortization": "amortized", "paymentFrequency": "monthly"},
        "metadata": {"correlationId": format!("c-{loan}")}});
    if let Some(f) = fund {
        e["payload"]["fundId"] = json!(f);
    }
    e
}

fn loan_funded(loan: &str) -> Value {
    json!({"eventType": "Loan.Funded", "aggregateType": "Loan", "aggregateId": loan,
        "payload": {"loanId": loan, "fundedAmount": "12000.00", "fundedAt": "2026-03-01T10:00:00Z"},
        "metadata": {"correlationId": format!("c-{loan}")}})
}

fn payment(loan: &str, payment: &str) -> Value {
    json!({"eventType": "Payment.Received", "aggregateType": "Loan", "aggregateId": loan,
        "payload": {"paymentId": payment, "loanId": loan, "amount": "10.00", "method": "ach",
            "receivedAt": "2026-04-01T10:00:00Z"},
        "metadata": {"correlationId": format!("c-{loan}")}})
}

fn borrower_flagged(borrower: &str) -> Value {
    json!({"eventType": "Borrower.Flagged", "aggregateType": "Borrower", "aggregateId": borrower,
        "payload": {"borrowerId": borrower, "reason": "manual review"}})
}

fn str_of<'a>(e: &'a Value, field: &str) -> &'a str {
    e[field].as_str().unwrap_or_default()
}

fn handler_domain(handler: &str) -> &'static str {
    lending_events::handlers::all()
        .into_iter()
        .find(|h| h.name() == handler)
        .map(|h| h.domain().as_str())
        .unwrap_or("?")
}

/// Handlers subscribed to an event type, by name.
fn subscribers(event_type: &str) -> Vec<&'static str> {
    lending_events::handlers::all()
        .into_iter()
        .filter(|h| h.subscriptions().contains(&event_type))
        .map(|h| h.name())
        .collect()
}

/// What a test posted, as the POST responses returned it.
#[derive(Default)]
struct Posted {
    /// The stored envelopes the API answered with, in posting order.
    events: Vec<Value>,
    /// Loans created, with their fund.
    loans: HashMap<String, Option<String>>,
}

impl Posted {
    /// Post events in one request (all or nothing) and keep the envelopes returned.
    async fn post(&mut self, api: &Api, events: Vec<Value>) -> Vec<Value> {
        let stored = post_events(api, events).await;
        self.record(&stored);
        stored
    }

    /// Keep envelopes a POST returned.
    fn record(&mut self, stored: &[Value]) {
        for e in stored {
            if e["eventType"] == "Loan.Created" {
                let fund = e["payload"]["fundId"].as_str().map(str::to_string);
                self.loans
                    .insert(str_of(e, "aggregateId").to_string(), fund);
            }
        }
        self.events.extend(stored.iter().cloned());
    }

    fn ids(&self) -> Vec<String> {
        self.events
            .iter()
            .map(|e| str_of(e, "eventId").to_string())
            .collect()
    }

    /// The follow-ons, by type, that the handlers must append for one posted event (the
    /// README's domain table): a funded loan gets one PaymentSchedule.Generated, one
    /// Loan.StatusChanged (created -> funded), one Document.Generated per closing document,
    /// one Compliance.ReviewOpened (these loans are funded without approval or KYC), one
    /// Notification.Sent, and a Fund.CapitalAllocated when it has a fund; a loan funded
    /// without being created is rejected by the payment domain, while compliance and
    /// notifications still react; a payment gets one Payment.Applied (these loans are
    /// never paid off); a flagged borrower gets a Compliance.ReviewOpened and a
    /// Notification.Sent.
    fn expected_follow_ons(&self, e: &Value) -> Vec<(&'static str, usize)> {
        let documents = DEFAULT_CLOSING_DOCUMENTS.len();
        match str_of(e, "eventType") {
            "Loan.Funded" => match self.loans.get(str_of(e, "aggregateId")) {
                Some(fund) => vec![
                    ("PaymentSchedule.Generated", 1),
                    ("Loan.StatusChanged", 1),
                    ("Document.Generated", documents),
                    ("Compliance.ReviewOpened", 1),
                    ("Notification.Sent", 1),
                    ("Fund.CapitalAllocated", usize::from(fund.is_some())),
                ],
                None => vec![
                    ("Document.Generated", documents),
                    ("Compliance.ReviewOpened", 1),
                    ("Notification.Sent", 1),
                ],
            },
            "Payment.Received" => vec![("Payment.Applied", 1)],
            "Borrower.Flagged" => vec![("Compliance.ReviewOpened", 1), ("Notification.Sent", 1)],
            _ => Vec::new(),
        }
    }
}

/// Post events in one request (all or nothing); the stored envelopes the API returned.
/// The events get their eventIds here, so a request that failed on a busy emulator (5xx,
/// nothing stored) can be resent as it was: an exact resend is answered with the stored
/// envelopes.
async fn post_events(api: &Api, mut events: Vec<Value>) -> Vec<Value> {
    let count = events.len();
    for e in &mut events {
        e["eventId"] = json!(uuid::Uuid::new_v4().to_string());
    }
    let body = json!({ "events": events });
    let mut r = api.post("/events", &body).await;
    for _ in 0..3 {
        if r.status < 500 {
            break;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
        r = api.post("/events", &body).await;
    }
    assert!(
        r.status == 201 || r.status == 200,
        "{}: {}",
        r.status,
        r.body
    );
    let stored = r.body["events"].as_array().cloned().unwrap_or_default();
    assert_eq!(stored.len(), count, "one envelope per posted event");
    stored
}

/// The table's events checked against what was posted.
#[derive(Debug, Default)]
struct Audit {
    posted: usize,
    stored: usize,
    /// Posted eventIds the table does not hold.
    lost: Vec<String>,
    /// EventIds the table holds more than once.
    stored_twice: Vec<String>,
    expected_follow_ons: usize,
    follow_ons: usize,
    /// "<cause> <type>: expected n, found m" where fewer were found.
    missing: Vec<String>,
    /// More than expected, or follow-ons of events nobody posted.
    unexpected: Vec<String>,
    /// A second follow-on of the same (causationId, eventType, aggregateId), whatever its payload.
    duplicated: usize,
    streams: usize,
    /// Streams whose sequences are not 1..n.
    gaps: Vec<String>,
    /// Follow-ons checked for order against their causes' sequences.
    ordered_pairs: usize,
    out_of_order: Vec<String>,
    /// Each stream's eventIds in sequence order, keyed "Type/id".
    stream_ids: BTreeMap<String, Vec<String>>,
}

impl Audit {
    fn assert_clean(&self) {
        assert!(self.lost.is_empty(), "lost: {:?}", self.lost);
        assert!(
            self.stored_twice.is_empty(),
            "stored twice: {:?}",
            self.stored_twice
        );
        assert!(self.missing.is_empty(), "missing: {:?}", self.missing);
        assert!(
            self.unexpected.is_empty(),
            "unexpected: {:?}",
            self.unexpected
        );
        assert_eq!(self.duplicated, 0, "duplicated follow-ons");
        assert_eq!(self.follow_ons, self.expected_follow_ons);
        assert_eq!(self.stored, self.posted + self.follow_ons);
        assert!(self.gaps.is_empty(), "gaps: {:?}", self.gaps);
        assert!(
            self.out_of_order.is_empty(),
            "out of order: {:?}",
            self.out_of_order
        );
    }

    fn summary(&self) -> String {
        format!(
            "{} posted, {} stored ({} follow-ons of {} expected), lost {}, stored twice {}, \
             duplicated {}, missing {}, unexpected {}, {} streams ({} with gaps), \
             {} follow-ons in cause order ({} not)",
            self.posted,
            self.stored,
            self.follow_ons,
            self.expected_follow_ons,
            self.lost.len(),
            self.stored_twice.len(),
            self.duplicated,
            self.missing.len(),
            self.unexpected.len(),
            self.streams,
            self.gaps.len(),
            self.ordered_pairs,
            self.out_of_order.len()
        )
    }
}

/// Read the tenant's events from the table and hold them to what was posted.
async fn audit(table: &str, tenant: &str, posted: &Posted) -> Audit {
    let clients = aws().await;
    let stored = scan_events(&clients.dynamodb, table, tenant).await;
    let mut a = Audit {
        posted: posted.events.len(),
        stored: stored.len(),
        ..Audit::default()
    };

    // Each returned eventId stored exactly once.
    let mut copies: HashMap<&str, usize> = HashMap::new();
    for e in &stored {
        *copies.entry(str_of(e, "eventId")).or_default() += 1;
    }
    for id in posted.ids() {
        if !copies.contains_key(id.as_str()) {
            a.lost.push(id);
        }
    }
    a.stored_twice = copies
        .iter()
        .filter(|(_, n)| **n > 1)
        .map(|(id, _)| id.to_string())
        .collect();

    // Follow-ons: per cause and type as many as the handlers must append, each
    // (cause, type, aggregate) once.
    let mut per_key: HashMap<(&str, &str, &str), usize> = HashMap::new();
    let mut per_cause_type: HashMap<(&str, &str), usize> = HashMap::new();
    for e in &stored {
        let Some(cause) = e["metadata"]["causationId"].as_str() else {
            continue;
        };
        a.follow_ons += 1;
        let ty = str_of(e, "eventType");
        *per_key
            .entry((cause, ty, str_of(e, "aggregateId")))
            .or_default() += 1;
        *per_cause_type.entry((cause, ty)).or_default() += 1;
    }
    a.duplicated = per_key.values().map(|n| n - 1).sum();
    let mut expected: HashMap<(&str, &str), usize> = HashMap::new();
    for e in &posted.events {
        for (ty, n) in posted.expected_follow_ons(e) {
            expected.insert((str_of(e, "eventId"), ty), n);
            a.expected_follow_ons += n;
        }
    }
    for ((cause, ty), n) in &expected {
        let found = per_cause_type.get(&(*cause, *ty)).copied().unwrap_or(0);
        if found < *n {
            a.missing
                .push(format!("{cause} {ty}: expected {n}, found {found}"));
        }
    }
    for ((cause, ty), found) in &per_cause_type {
        let n = expected.get(&(*cause, *ty)).copied().unwrap_or(0);
        if *found > n {
            a.unexpected
                .push(format!("{cause} {ty}: expected {n}, found {found}"));
        }
    }

    // Streams: sequences 1..n; within a stream, the follow-ons one domain appended for the
    // events of one cause stream come in the order of their causes.
    let by_id: HashMap<&str, &Value> = stored.iter().map(|e| (str_of(e, "eventId"), e)).collect();
    let stream_of = |e: &Value| {
        format!(
            "{}/{}",
            str_of(e, "aggregateType"),
            str_of(e, "aggregateId")
        )
    };
    let mut streams: BTreeMap<String, Vec<&Value>> = BTreeMap::new();
    for e in &stored {
        streams.entry(stream_of(e)).or_default().push(e);
    }
    a.streams = streams.len();
    for (stream, events) in &mut streams {
        events.sort_by_key(|e| e["sequence"].as_u64().unwrap_or(0));
        let seqs: Vec<u64> = events
            .iter()
            .map(|e| e["sequence"].as_u64().unwrap_or(0))
            .collect();
        if seqs != (1..=events.len() as u64).collect::<Vec<_>>() {
            a.gaps.push(format!("{stream}: {seqs:?}"));
        }
        a.stream_ids.insert(
            stream.clone(),
            events
                .iter()
                .map(|e| str_of(e, "eventId").to_string())
                .collect(),
        );
        let mut last_cause: HashMap<(String, &str), (u64, u64)> = HashMap::new();
        for e in events.iter() {
            let Some(cause) = e["metadata"]["causationId"]
                .as_str()
                .and_then(|c| by_id.get(c))
            else {
                continue;
            };
            let (seq, cause_seq) = (
                e["sequence"].as_u64().unwrap_or(0),
                cause["sequence"].as_u64().unwrap_or(0),
            );
            let cause_stream = stream_of(cause);
            if cause_stream == *stream && cause_seq >= seq {
                a.out_of_order
                    .push(format!("{stream}: #{seq} caused by the later #{cause_seq}"));
            }
            let domain = handler_domain(e["metadata"]["source"].as_str().unwrap_or_default());
            if let Some((prev_seq, prev_cause)) = last_cause.get(&(cause_stream.clone(), domain)) {
                a.ordered_pairs += 1;
                if cause_seq < *prev_cause {
                    a.out_of_order.push(format!(
                        "{stream}: #{seq} (cause {cause_stream} #{cause_seq}) after #{prev_seq} (cause #{prev_cause})"
                    ));
                }
            }
            last_cause.insert((cause_stream, domain), (seq, cause_seq));
        }
    }
    a
}

/// The domain queues of a runner (not the DLQs), by URL.
async fn domain_queue_urls(runner: &RunnerProcess) -> Vec<String> {
    let clients = aws().await;
    let mut urls = Vec::new();
    for pair in topology::queues(&runner.prefix) {
        urls.push(queue_url(&clients.sqs, &pair.queue).await);
    }
    urls
}

/// Wait until every follow-on the posted events call for is stored and every domain queue
/// is empty (nothing waiting, nothing in flight) on two reads in a row; the audit then.
async fn settle(runner: &RunnerProcess, posted: &Posted, tenant: &str, timeout: Duration) -> Audit {
    let clients = aws().await;
    let urls = domain_queue_urls(runner).await;
    let deadline = Instant::now() + timeout;
    let mut quiet = 0;
    loop {
        let mut busy = Vec::new();
        for url in &urls {
            let depth = queue_depth(&clients.sqs, url).await;
            if depth != (0, 0) {
                busy.push(format!("{url}: {depth:?}"));
            }
        }
        let a = audit(&runner.table(), tenant, posted).await;
        if busy.is_empty() && a.missing.is_empty() {
            quiet += 1;
            if quiet >= 2 {
                return a;
            }
        } else {
            quiet = 0;
        }
        assert!(
            Instant::now() < deadline,
            "not settled after {timeout:?}: queues {busy:?}; {} follow-ons missing, e.g. {:?}",
            a.missing.len(),
            a.missing.iter().take(3).collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
}

/// The API's view of each stream (GET .../events) is the table's.
async fn assert_api_agrees(api: &Api, audit: &Audit, aggregate_type: &str, ids: &[String]) {
    for id in ids {
        let from_api: Vec<String> = api
            .history(aggregate_type, id)
            .await
            .iter()
            .map(|e| str_of(e, "eventId").to_string())
            .collect();
        assert_eq!(
            Some(&from_api),
            audit.stream_ids.get(&format!("{aggregate_type}/{id}")),
            "{aggregate_type}/{id}: the API and the table disagree"
        );
    }
}

/// Lines of a runner's log that contain every one of `parts`.
fn log_lines(runner: &RunnerProcess, parts: &[&str]) -> usize {
    std::fs::read_to_string(runner.log_path())
        .unwrap_or_default()
        .lines()
        .filter(|l| parts.iter().all(|p| l.contains(p)))
        .count()
}

/// One execution in a processing record's log: its outcome, when it ended, and when the
/// handler's own work on it started (the end less its duration).
#[derive(Debug, Clone)]
struct Execution {
    outcome: String,
    at: DateTime<Utc>,
    started: DateTime<Utc>,
}

/// The log of the processing record of one handler on one event.
async fn executions(table: &str, tenant: &str, event_id: &str, handler: &str) -> Vec<Execution> {
    let clients = aws().await;
    let pk = layout::record_pk(tenant, event_id, handler);
    let items = batch_get(&clients.dynamodb, table, &[pk]).await;
    let Some(AttributeValue::L(log)) = items.first().and_then(|i| i.get("log")) else {
        return Vec::new();
    };
    log.iter()
        .filter_map(|entry| {
            let m = entry.as_m().ok()?;
            let text = |k: &str| m.get(k).and_then(|v| v.as_s().ok()).cloned();
            let at = DateTime::parse_from_rfc3339(&text("at")?).ok()?.to_utc();
            let duration_ms = m.get("durationMs")?.as_n().ok()?.parse().ok()?;
            Some(Execution {
                outcome: text("outcome")?,
                at,
                started: at - chrono::Duration::milliseconds(duration_ms),
            })
        })
        .collect()
}

/// How long after a failed execution on receive `k` the next one may start: at least
/// the policy's shortest delay (a quarter of base·2^(k-1), capped), at most its longest
/// (rounded up to the whole seconds SQS takes) plus [`RECEIVE_SLACK`].
fn backoff_bounds(policy: &RetryPolicy, k: u32) -> (Duration, Duration) {
    let ceiling = policy.base.saturating_mul(1 << (k - 1)).min(policy.cap);
    let whole_secs = Duration::from_secs(ceiling.as_millis().div_ceil(1000) as u64);
    (ceiling / 4, whole_secs + RECEIVE_SLACK)
}

/// Time from a message's becoming visible to the end of its next execution: LocalStack
/// checks visibility about once a second, the poller long-polls for a second, and on a
/// shared 2-core machine each LocalStack call of a receive and claim can take a second or
/// more (8.8 s were seen for a 1 s delay under load). So the upper bound only catches a
/// runaway backoff; the lower bound is the policy's own. The tests set the receive's own visibility (the batch
/// timeout) to 120 s, so a backoff that was never set shows as a gap far beyond this.
const RECEIVE_SLACK: Duration = Duration::from_secs(25);

/// Check the gaps between consecutive executions (receive k failed, receive k+1 ran)
/// against the policy; returns the gaps.
fn assert_backoff(policy: &RetryPolicy, what: &str, log: &[Execution]) -> Vec<Duration> {
    let mut gaps = Vec::new();
    for (k, pair) in log.windows(2).enumerate() {
        assert_eq!(pair[0].outcome, "transient", "{what}: {log:?}");
        let gap = (pair[1].started - pair[0].at).to_std().unwrap_or_default();
        let (min, max) = backoff_bounds(policy, k as u32 + 1);
        assert!(
            gap >= min && gap <= max,
            "{what}: receive {} came {gap:?} after receive {}, policy allows {min:?}..{max:?}: {log:?}",
            k + 2,
            k + 1
        );
        gaps.push(gap);
    }
    gaps
}

async fn queue_arn(sqs: &aws_sdk_sqs::Client, url: &str) -> String {
    sqs.get_queue_attributes()
        .queue_url(url)
        .attribute_names(QueueAttributeName::QueueArn)
        .send()
        .await
        .expect("GetQueueAttributes")
        .attributes()
        .and_then(|a| a.get(&QueueAttributeName::QueueArn))
        .cloned()
        .unwrap_or_default()
}

/// A message read straight from a queue: body, system attributes, message attributes.
struct Received {
    body: Value,
    system: HashMap<String, String>,
    attributes: HashMap<String, String>,
}

/// Receive (and leave invisible for a minute) every message on a queue until `want` of
/// them are in hand or `timeout` passes.
async fn receive_all(
    sqs: &aws_sdk_sqs::Client,
    url: &str,
    want: usize,
    timeout: Duration,
) -> Vec<Received> {
    let deadline = Instant::now() + timeout;
    let mut out: Vec<Received> = Vec::new();
    while out.len() < want && Instant::now() < deadline {
        let page = sqs
            .receive_message()
            .queue_url(url)
            .max_number_of_messages(10)
            .visibility_timeout(60)
            .wait_time_seconds(1)
            .message_system_attribute_names(MessageSystemAttributeName::All)
            .message_attribute_names("All")
            .send()
            .await
            .expect("ReceiveMessage");
        for m in page.messages() {
            out.push(Received {
                body: serde_json::from_str(m.body().unwrap_or("")).unwrap_or(Value::Null),
                system: m
                    .attributes()
                    .map(|a| {
                        a.iter()
                            .map(|(k, v)| (k.as_str().to_string(), v.clone()))
                            .collect()
                    })
                    .unwrap_or_default(),
                attributes: m
                    .message_attributes()
                    .map(|a| {
                        a.iter()
                            .map(|(k, v)| (k.clone(), v.string_value().unwrap_or("").to_string()))
                            .collect()
                    })
                    .unwrap_or_default(),
            });
        }
    }
    out
}

#[tokio::test]
async fn a_handler_killed_mid_batch_and_restarted_leaves_the_same_end_state() {
    // Crash after the second follow-on append: effects stored, record not completed, batch
    // not acknowledged. The restarted process must finish every domain's work without
    // duplicates.
    let mut runner = RunnerProcess::start(
        "crash",
        &[
            ("LOCAL_BATCH_TIMEOUT_SECS", "4"),
            ("FAULT_CRASH_AFTER_APPENDS", "2"),
        ],
    )
    .await;
    let api = runner.api("crash-tenant");
    let loans: Vec<String> = (0..6).map(|i| format!("L{i}")).collect();
    // One request: the process is about to die, its API with it.
    let events: Vec<Value> = loans
        .iter()
        .enumerate()
        .flat_map(|(i, l)| {
            [
                loan_created(l, (i % 2 == 0).then_some("F-1")),
                loan_funded(l),
            ]
        })
        .collect();
    let mut posted = Posted::default();
    posted.post(&api, events).await;
    let start = Instant::now();
    while !runner.exited() {
        assert!(
            start.elapsed() < Duration::from_secs(90),
            "the injected crash never happened"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // The crashed batch's messages come back after 4 s; the restarted process's own batches
    // get longer, so a slow emulator does not hand them out twice.
    runner
        .spawn(&[
            ("FAULT_CRASH_AFTER_APPENDS", ""),
            ("LOCAL_BATCH_TIMEOUT_SECS", "120"),
        ])
        .await;
    let api = runner.api("crash-tenant");
    let audit = settle(&runner, &posted, &api.tenant, Duration::from_secs(180)).await;
    println!("crash: {}", audit.summary());
    audit.assert_clean();
    assert_api_agrees(&api, &audit, "Loan", &loans).await;
    assert!(
        log_lines(&runner, &["FAULT_CRASH_AFTER_APPENDS: aborting"]) >= 1,
        "the process crashed"
    );
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
            &json!({"events": [loan_created(&loan, None), loan_funded(&loan)]})
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
    let schedules = |h: &[Value]| {
        h.iter()
            .filter(|e| e["eventType"] == "PaymentSchedule.Generated")
            .count()
    };
    assert_eq!(schedules(&api.history("Loan", &loan).await), 0);
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

/// Every receive of a message fails twice: SQS redelivers it after the runner's backoff,
/// and the later events of its aggregate wait for it.
#[tokio::test]
async fn redelivered_messages_back_off_within_the_policy_and_hold_their_aggregate() {
    let runner = RunnerProcess::start(
        "backoff",
        &[
            ("FAULT_FAIL_RECEIVES", "2"),
            ("LOCAL_BATCH_TIMEOUT_SECS", "120"),
        ],
    )
    .await;
    let policy = RetryPolicy::from_env();
    let api = runner.api("backoff-tenant");
    let table = runner.table();
    let mut posted = Posted::default();
    // One loan, so each queue holds one message group: a receive gap is then the backoff
    // and the emulator's latency, not time spent waiting behind other groups' batches.
    let loans: Vec<String> = vec!["L0".into()];
    for (i, loan) in loans.iter().enumerate() {
        // One request: the loan's messages reach the payment queue in one send.
        let mut events = vec![
            loan_created(loan, (i == 0).then_some("F-1")),
            loan_funded(loan),
        ];
        events.extend((0..3).map(|k| payment(loan, &format!("P{i}-{k}"))));
        posted.post(&api, events).await;
    }
    let audit = settle(&runner, &posted, &api.tenant, Duration::from_secs(180)).await;
    println!("backoff: {}", audit.summary());
    audit.assert_clean();
    assert_api_agrees(&api, &audit, "Loan", &loans).await;

    let mut gaps = Vec::new();
    let mut held = 0;
    for funded in posted
        .events
        .iter()
        .filter(|e| e["eventType"] == "Loan.Funded")
    {
        let id = str_of(funded, "eventId");
        // Each subscribed handler failed on receives 1 and 2 and completed on receive 3, on
        // the first of the loan's messages in its queue: the later ones of the group are
        // received with it and held, so their receives are spent waiting (the loan summary
        // hears Loan.Created first).
        for h in subscribers("Loan.Funded") {
            let first = posted
                .events
                .iter()
                .find(|e| {
                    e["aggregateId"] == funded["aggregateId"]
                        && subscribers(e["eventType"].as_str().unwrap_or_default()).contains(&h)
                })
                .expect("the funding at least");
            let first_id = str_of(first, "eventId");
            let log = executions(&table, &api.tenant, first_id, h).await;
            let outcomes: Vec<&str> = log.iter().map(|x| x.outcome.as_str()).collect();
            assert_eq!(
                outcomes,
                ["transient", "transient", "completed"],
                "{h} on {first_id}"
            );
            gaps.extend(assert_backoff(&policy, &format!("{h} on {first_id}"), &log));
        }
        // The loan's payments were held behind it: none ran (not even to fail) before the
        // funding's payment handler completed.
        let funding_done = executions(&table, &api.tenant, id, "payment-schedule").await[2].at;
        for p in posted.events.iter().filter(|e| {
            e["eventType"] == "Payment.Received" && e["aggregateId"] == funded["aggregateId"]
        }) {
            let pid = str_of(p, "eventId");
            let log = executions(&table, &api.tenant, pid, "payment-application").await;
            assert_eq!(
                log.last().map(|x| x.outcome.as_str()),
                Some("completed"),
                "payment {pid}: {log:?}"
            );
            assert!(
                log.iter().all(|x| x.started >= funding_done),
                "payment {pid} ran before its loan's funding completed at {funding_done}: {log:?}"
            );
            held += 1;
        }
    }
    let seconds = |g: Option<&Duration>| g.map_or(0.0, Duration::as_secs_f64);
    let (shortest, longest) = (seconds(gaps.iter().min()), seconds(gaps.iter().max()));
    println!(
        "backoff: {} redelivery gaps within the policy (shortest {shortest:.1} s, longest {longest:.1} s), {held} later messages held behind their loan's funding",
        gaps.len()
    );
    assert_eq!(gaps.len(), 2 * subscribers("Loan.Funded").len());
    assert_eq!(held, 3);
}

/// A message whose every receive fails is moved to the DLQ by SQS after maxReceiveCount
/// receives, each one later than the last by the policy's backoff.
#[tokio::test]
async fn a_message_that_keeps_failing_reaches_the_dlq_after_max_receive_count() {
    let runner = RunnerProcess::start(
        "dead",
        &[
            ("FAULT_FAIL_RECEIVES", "1000"),
            ("RETRY_BASE_MS", "1000"),
            ("LOCAL_BATCH_TIMEOUT_SECS", "120"),
        ],
    )
    .await;
    let policy = RetryPolicy {
        base: Duration::from_secs(1),
        ..RetryPolicy::from_env()
    };
    let api = runner.api("dead-tenant");
    let clients = aws().await;
    let mut posted = Posted::default();
    posted
        .post(&api, vec![borrower_flagged("B-1"), borrower_flagged("B-2")])
        .await;
    let ids: HashSet<String> = posted.ids().into_iter().collect();

    let mut checked = 0;
    let mut gaps_after: Vec<Vec<Duration>> = vec![Vec::new(); MAX_RECEIVE_COUNT as usize - 1];
    for h in subscribers("Borrower.Flagged") {
        let domain = handler_domain(h);
        let source = queue_url(&clients.sqs, &runner.queue_name(domain, false)).await;
        let dlq = queue_url(&clients.sqs, &runner.queue_name(domain, true)).await;
        let dead = receive_all(&clients.sqs, &dlq, ids.len(), Duration::from_secs(120)).await;
        let dead_ids: HashSet<String> = dead
            .iter()
            .map(|m| str_of(&m.body, "eventId").to_string())
            .collect();
        assert_eq!(dead_ids, ids, "{domain} DLQ holds both events");
        let source_arn = queue_arn(&clients.sqs, &source).await;
        for m in &dead {
            let id = str_of(&m.body, "eventId");
            // SQS keeps the source queue's receive count; this receive adds one.
            assert_eq!(
                m.system.get("ApproximateReceiveCount").map(String::as_str),
                Some((MAX_RECEIVE_COUNT + 1).to_string().as_str()),
                "{id}: {:?}",
                m.system
            );
            assert_eq!(m.system.get("DeadLetterQueueSourceArn"), Some(&source_arn));
            // Moved by SQS's redrive policy, not dead-lettered by the runner with a reason.
            assert!(
                !m.attributes.contains_key("failureReason"),
                "{:?}",
                m.attributes
            );
            let log = executions(&runner.table(), &api.tenant, id, h).await;
            assert_eq!(
                log.len(),
                MAX_RECEIVE_COUNT as usize,
                "{h} on {id}: {log:?}"
            );
            for (k, gap) in assert_backoff(&policy, &format!("{h} on {id}"), &log)
                .into_iter()
                .enumerate()
            {
                gaps_after[k].push(gap);
            }
            assert!(log.iter().all(|x| x.outcome == "transient"), "{log:?}");
            let sent: i64 = m
                .system
                .get("SentTimestamp")
                .and_then(|t| t.parse().ok())
                .unwrap_or(i64::MAX);
            assert!(
                log[0].at.timestamp_millis() >= sent,
                "the first receive follows the send"
            );
            checked += 1;
        }
        assert_eq!(
            queue_depth(&clients.sqs, &source).await,
            (0, 0),
            "{domain} queue empty"
        );
    }
    let audit = audit(&runner.table(), &api.tenant, &posted).await;
    assert_eq!(
        audit.lost.len() + audit.follow_ons,
        0,
        "nothing appended for them"
    );
    println!(
        "dead letters: {checked} messages moved to their DLQ after {MAX_RECEIVE_COUNT} failed receives each; gaps after receive 1..4 (shortest..longest): {}",
        gaps_after
            .iter()
            .map(|g| format!(
                "{:.1}..{:.1} s",
                g.iter().min().map_or(0.0, Duration::as_secs_f64),
                g.iter().max().map_or(0.0, Duration::as_secs_f64)
            ))
            .collect::<Vec<_>>()
            .join(", ")
    );
    assert_eq!(checked, ids.len() * subscribers("Borrower.Flagged").len());
}

/// A third of dispatch's queue sends fail: dispatch reports the record, the stream is read
/// again from it, and every event still reaches each of its handlers once.
#[tokio::test]
async fn a_failed_dispatch_send_is_retried_from_the_stream_and_nothing_is_lost() {
    // A long batch timeout: on a busy emulator a batch can outlast 30 s, and its messages
    // would come back while it still runs.
    let runner = RunnerProcess::start(
        "dispatch",
        &[
            ("FAULT_DISPATCH_SEND_PERCENT", "30"),
            ("LOCAL_BATCH_TIMEOUT_SECS", "120"),
        ],
    )
    .await;
    let api = runner.api("dispatch-tenant");
    let mut posted = Posted::default();
    let loans: Vec<String> = (0..10).map(|i| format!("L{i}")).collect();
    for (i, loan) in loans.iter().enumerate() {
        posted
            .post(
                &api,
                vec![
                    loan_created(loan, (i % 3 == 0).then_some("F-1")),
                    loan_funded(loan),
                    payment(loan, &format!("P{i}-0")),
                    payment(loan, &format!("P{i}-1")),
                ],
            )
            .await;
    }
    posted
        .post(
            &api,
            (0..5)
                .map(|i| borrower_flagged(&format!("B-{i}")))
                .collect(),
        )
        .await;
    let audit = settle(&runner, &posted, &api.tenant, Duration::from_secs(240)).await;
    let failed_sends = log_lines(&runner, &["injected fault: send failed"]);
    let rereads = log_lines(&runner, &["dispatch reported a failure; retrying from it"]);
    println!(
        "dispatch: {}; {failed_sends} queue sends failed, the stream read again {rereads} times",
        audit.summary()
    );
    audit.assert_clean();
    assert_api_agrees(&api, &audit, "Loan", &loans).await;
    assert!(failed_sends > 0 && rereads > 0, "the fault was active");
}

/// The fault storm: 20 events per loan plus 3 poison events; every message's first receive
/// fails (so SQS redelivers it after the backoff), handlers fail transiently on ~10 % of
/// the other executions, and a tenth of dispatch's queue sends fail. `STORM_LOANS` loans
/// (default 10: 203 events, ~450 handler executions, about 9 minutes on this shared 2-core
/// machine under load, where LocalStack handles ~25-30 executions a minute);
/// `STORM_LOANS=50` is the 1,000-event storm.
#[tokio::test]
async fn every_event_is_handled_exactly_once_in_order_under_transient_faults_and_poison() {
    let runner = RunnerProcess::start(
        "storm",
        &[
            ("FAULT_TRANSIENT_PERCENT", "10"),
            ("FAULT_FAIL_RECEIVES", "1"),
            ("FAULT_DISPATCH_SEND_PERCENT", "10"),
            ("RETRY_BASE_MS", "500"),
            ("RETRY_CAP_MS", "2000"),
            ("LOCAL_BATCH_TIMEOUT_SECS", "120"),
            // Four receivers per queue: many loans (message groups) are handled at once.
            ("LOCAL_QUEUE_CONCURRENCY", "4"),
        ],
    )
    .await;
    let api = runner.api("storm-tenant");
    let clients = aws().await;
    let mut posted = Posted::default();

    // Loans of 20 events each: created (every other one with one of five funds, so fund
    // streams take appends from several loans at once), funded (four handlers), 18
    // payments (one handler each).
    let loan_count = integration_tests::env_number("STORM_LOANS", 10);
    let loans: Vec<String> = (0..loan_count).map(|i| format!("L{i}")).collect();
    // Five loans are posted side by side, each one's events in order, five a request: a
    // 20-event transaction can outlast the SDK's timeouts on a busy emulator.
    let mut posting = tokio::task::JoinSet::new();
    let slots = std::sync::Arc::new(tokio::sync::Semaphore::new(5));
    for (i, loan) in loans.iter().enumerate() {
        let fund = format!("F-{}", i % 5);
        let mut events = vec![
            loan_created(loan, (i % 2 == 0).then_some(fund.as_str())),
            loan_funded(loan),
        ];
        events.extend((0..18).map(|k| payment(loan, &format!("P{i}-{k}"))));
        let (api, slots) = (api.clone(), slots.clone());
        posting.spawn(async move {
            let _slot = slots.acquire().await.expect("semaphore open");
            let mut stored = Vec::new();
            for chunk in events.chunks(5) {
                stored.extend(post_events(&api, chunk.to_vec()).await);
            }
            stored
        });
    }
    while let Some(stored) = posting.join_next().await {
        posted.record(&stored.expect("posting task"));
    }
    // Poison: funding loans that were never created is a business-rule rejection.
    let mut poison = HashSet::new();
    for i in 0..3 {
        let stored = posted
            .post(&api, vec![loan_funded(&format!("GHOST{i}"))])
            .await;
        poison.insert(str_of(&stored[0], "eventId").to_string());
    }
    assert_eq!(posted.events.len(), loans.len() * 20 + poison.len());

    let started = Instant::now();
    let audit = settle(&runner, &posted, &api.tenant, Duration::from_secs(900)).await;
    let settled_after = started.elapsed().as_secs();
    audit.assert_clean();
    assert_api_agrees(&api, &audit, "Loan", &loans).await;

    // Exactly the poison events are in the payment DLQ, with their reason; the other DLQs
    // are empty.
    let mut dead_lettered = 0;
    for pair in topology::queues(&runner.prefix) {
        let dlq = queue_url(&clients.sqs, &pair.dlq).await;
        let want = if pair.domain == Domain::Payment {
            poison.len()
        } else {
            0
        };
        let dead = receive_all(&clients.sqs, &dlq, want, Duration::from_secs(10)).await;
        let ids: HashSet<String> = dead
            .iter()
            .map(|m| str_of(&m.body, "eventId").to_string())
            .collect();
        if pair.domain == Domain::Payment {
            assert_eq!(ids, poison, "exactly the poison events are dead-lettered");
            for m in &dead {
                let reason = m
                    .attributes
                    .get("failureReason")
                    .map(String::as_str)
                    .unwrap_or("");
                assert!(reason.contains("never created"), "{reason}");
            }
        } else {
            assert_eq!(
                queue_depth(&clients.sqs, &dlq).await,
                (0, 0),
                "{} empty",
                pair.dlq
            );
        }
        dead_lettered += dead.len();
    }

    // The faults were really injected: counted in the runner's own log.
    let redelivered = log_lines(&runner, &["handler failed", "injected fault: receive"]);
    let retried = log_lines(&runner, &["handler failed", "injected fault"]) - redelivered;
    let failed_sends = log_lines(&runner, &["injected fault: send failed"]);
    println!(
        "storm: settled after {settled_after} s; {}; {dead_lettered} dead-lettered; faults: {redelivered} failed receives redelivered by SQS, {retried} transient failures retried in-process, {failed_sends} failed queue sends",
        audit.summary()
    );
    assert!(
        redelivered > 0 && retried > 0 && failed_sends > 0,
        "every fault was active"
    );
}
