//! Operating it (issue 6): the read and trace routes, the OpenAPI document, replay, the DLQ
//! tools and handler operations, through HTTP and through `evctl` run as a real process,
//! each test against a local runner of its own (own table, queues and port).

use std::time::{Duration, Instant};

use integration_tests::{
    aws, batch_get, evctl, queue_depth, queue_url, take_dead_letter, Api, RunnerProcess,
};
use serde_json::{json, Value};

const WAIT: Duration = Duration::from_secs(180);

fn id(p: &str) -> String {
    format!("{p}-{}", &uuid::Uuid::new_v4().simple().to_string()[..12])
}

fn loan_created(loan: &str, corr: &str) -> Value {
    json!({"eventType": "Loan.Created", "aggregateType": "Loan", "aggregateId": loan,
        "payload": {"loanId": loan, "borrowerId": "B-1", "amount": "100000.00", "interestRate": "7.5",
            "termMonths": 12, "amortization": "amortized", "paymentFrequency": "monthly"},
        "metadata": {"correlationId": corr}})
}

fn loan_funded(loan: &str, corr: &str) -> Value {
    json!({"eventType": "Loan.Funded", "aggregateType": "Loan", "aggregateId": loan,
        "payload": {"loanId": loan, "fundedAmount": "100000.00", "fundedAt": "2026-01-31T09:00:00Z"},
        "metadata": {"correlationId": corr}})
}

/// Create and fund a loan; wait until every handler of Loan.Funded completed.
async fn funded_loan(api: &Api, corr: &str) -> (String, Vec<Value>) {
    let loan = id("L");
    let r = api
        .post(
            "/events",
            &json!({"events": [loan_created(&loan, corr), loan_funded(&loan, corr)]}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let stored = r.body["events"].as_array().cloned().unwrap();
    wait_handlers_done(api, corr, "Loan.Funded").await;
    (loan, stored)
}

/// Poll the trace until every handler of the events of `event_type` is COMPLETED.
async fn wait_handlers_done(api: &Api, corr: &str, event_type: &str) -> Value {
    let start = Instant::now();
    loop {
        let t = api.get(&format!("/correlations/{corr}")).await;
        if t.status == 200 {
            let nodes = flatten(&t.body["tree"]);
            let done = nodes
                .iter()
                .filter(|n| n["event"]["eventType"] == event_type)
                .all(|n| {
                    n["handlers"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .all(|h| h["status"] == "COMPLETED")
                })
                && nodes.iter().any(|n| n["event"]["eventType"] == event_type)
                && nodes
                    .iter()
                    .any(|n| n["event"]["eventType"] == "PaymentSchedule.Generated");
            if done {
                return t.body;
            }
        }
        assert!(
            start.elapsed() < WAIT,
            "handlers of {event_type} not done: {}",
            t.body
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

fn flatten(tree: &Value) -> Vec<Value> {
    let mut out = Vec::new();
    for n in tree.as_array().into_iter().flatten() {
        out.push(n.clone());
        out.extend(flatten(&n["children"]));
    }
    out
}

#[tokio::test]
async fn read_and_trace_routes_openapi_and_evctl_reads() {
    let runner = RunnerProcess::start("ops-read", &[]).await;
    let tenant = id("t");
    let api = runner.api(&tenant);
    let corr = id("corr");

    // Publish through evctl: flags, then a file.
    let loan = id("L");
    let payload = loan_created(&loan, &corr)["payload"].to_string();
    let r = evctl(
        &runner,
        &tenant,
        &[
            "--json",
            "publish",
            "--type",
            "Loan.Created",
            "--aggregate",
            &format!("Loan/{loan}"),
            "--payload",
            &payload,
            "--correlation",
            &corr,
        ],
    )
    .await;
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(r.json["events"][0]["sequence"], 1);
    let file = std::env::temp_dir().join(format!("{loan}-funded.json"));
    std::fs::write(&file, loan_funded(&loan, &corr).to_string()).unwrap();
    let r = evctl(
        &runner,
        &tenant,
        &["publish", "--file", file.to_str().unwrap()],
    )
    .await;
    assert_eq!(r.code, 0, "{r:?}");
    assert!(
        r.stdout.contains("stored #2") && r.stdout.contains("Loan.Funded"),
        "{}",
        r.stdout
    );
    let tree = wait_handlers_done(&api, &corr, "Loan.Funded").await;

    // The causal tree: Loan.Created and Loan.Funded are roots; the schedule hangs under
    // Loan.Funded, and each handler of Loan.Funded says how it went.
    assert_eq!(tree["correlationId"], json!(corr));
    let roots: Vec<&str> = tree["tree"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["event"]["eventType"].as_str().unwrap())
        .collect();
    assert_eq!(roots, ["Loan.Created", "Loan.Funded"]);
    let funded = &tree["tree"][1];
    let kids: Vec<&str> = funded["children"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["event"]["eventType"].as_str().unwrap())
        .collect();
    assert!(kids.contains(&"PaymentSchedule.Generated"), "{kids:?}");
    let handlers: Vec<&str> = funded["handlers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["handler"].as_str().unwrap())
        .collect();
    for h in [
        "payment-schedule",
        "compliance",
        "fund-allocation",
        "notifications",
    ] {
        assert!(handlers.contains(&h), "{handlers:?}");
    }
    let ps = funded["handlers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|h| h["handler"] == "payment-schedule")
        .unwrap();
    assert_eq!(ps["status"], "COMPLETED");
    assert_eq!(ps["attempts"], 1);
    assert!(ps["durationMs"].is_u64(), "{ps}");
    assert_eq!(ps["log"].as_array().unwrap().len(), 1);
    let funded_id = funded["event"]["eventId"].as_str().unwrap().to_string();
    assert_eq!(api.get("/correlations/nope-nothing").await.status, 404);

    // GET /events/{id}: tenant-scoped.
    let r = api.get(&format!("/events/{funded_id}")).await;
    assert_eq!(
        (r.status, r.body["eventType"].clone()),
        (200, json!("Loan.Funded"))
    );
    assert_eq!(
        runner
            .api("someone-else")
            .get(&format!("/events/{funded_id}"))
            .await
            .status,
        404
    );
    let r = api.get("/events/not-a-uuid").await;
    assert_eq!(
        (r.status, r.body["error"]["field"].clone()),
        (400, json!("eventId"))
    );
    let r = api
        .raw("GET", &format!("/events/{funded_id}"), None, None, false)
        .await;
    assert_eq!(
        (r.status, r.body["error"]["code"].clone()),
        (401, json!("unauthorized"))
    );

    // GET /events?type=: a window, pages with an opaque cursor.
    let b = id("B");
    let flags: Vec<Value> = (0..5)
        .map(|i| {
            json!({"eventType": "Borrower.Flagged", "aggregateType": "Borrower",
        "aggregateId": b, "payload": {"borrowerId": b, "reason": format!("check {i}")}})
        })
        .collect();
    assert_eq!(
        api.post("/events", &json!({ "events": flags }))
            .await
            .status,
        201
    );
    let p1 = api.get("/events?type=Borrower.Flagged&limit=3").await;
    assert_eq!(p1.status, 200, "{}", p1.body);
    assert_eq!(p1.body["events"].as_array().unwrap().len(), 3);
    let cursor = p1.body["cursor"].as_str().expect("a cursor").to_string();
    let p2 = api
        .get(&format!(
            "/events?type=Borrower.Flagged&limit=3&cursor={cursor}"
        ))
        .await;
    assert_eq!(p2.status, 200, "{}", p2.body);
    // One request, one recordedAt: the index orders them arbitrarily, but each comes once.
    let mut seqs: Vec<u64> = p1.body["events"]
        .as_array()
        .unwrap()
        .iter()
        .chain(p2.body["events"].as_array().unwrap())
        .map(|e| e["sequence"].as_u64().unwrap())
        .collect();
    seqs.sort_unstable();
    assert_eq!(seqs, [1, 2, 3, 4, 5]);
    let r = api
        .get("/events?type=Loan.Funded&from=2000-01-01T00:00:00Z&to=2999-01-01T00:00:00Z")
        .await;
    assert_eq!(r.body["events"].as_array().unwrap().len(), 1);
    let r = api
        .get("/events?type=Loan.Funded&to=2001-01-01T00:00:00Z")
        .await;
    assert_eq!(r.body["events"], json!([]));
    assert_eq!(
        runner
            .api("someone-else")
            .get("/events?type=Loan.Funded")
            .await
            .body["events"],
        json!([])
    );
    for (q, field) in [
        ("", "type"),
        ("?type=Loan.Funded&from=yesterday", "from"),
        ("?type=Loan.Funded&limit=0", "limit"),
        ("?type=Loan.Funded&cursor=abcd", "cursor"),
        (&format!("?type=Loan.Created&cursor={cursor}"), "cursor"),
    ] {
        let r = api.get(&format!("/events{q}")).await;
        assert_eq!(
            (r.status, r.body["error"]["field"].clone()),
            (400, json!(field)),
            "{q}: {}",
            r.body
        );
    }

    // The OpenAPI document is served.
    let r = api.raw("GET", "/openapi.json", None, None, false).await;
    assert_eq!((r.status, r.body["openapi"].clone()), (200, json!("3.0.3")));
    assert!(r.body["paths"]["/correlations/{correlationId}"]["get"].is_object());

    // evctl reads: history, state, event, events, trace.
    let r = evctl(&runner, &tenant, &["history", "Loan", &loan]).await;
    assert_eq!(r.code, 0, "{r:?}");
    assert!(
        r.stdout.contains("PaymentSchedule.Generated"),
        "{}",
        r.stdout
    );
    let r = evctl(&runner, &tenant, &["--json", "state", "Loan", &loan]).await;
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(r.json["aggregateId"], json!(loan));
    let r = evctl(&runner, &tenant, &["event", &funded_id]).await;
    assert!(r.code == 0 && r.stdout.contains("Loan.Funded"), "{r:?}");
    let r = evctl(
        &runner,
        &tenant,
        &[
            "--json",
            "events",
            "--type",
            "Borrower.Flagged",
            "--limit",
            "2",
        ],
    )
    .await;
    assert_eq!(
        (r.code, r.json["events"].as_array().map(Vec::len)),
        (0, Some(2)),
        "{r:?}"
    );
    let r = evctl(&runner, &tenant, &["trace", &corr]).await;
    assert_eq!(r.code, 0, "{r:?}");
    assert!(
        r.stdout.contains("└─ Loan.Funded")
            && r.stdout.contains("PaymentSchedule.Generated")
            && r.stdout.contains("payment-schedule")
            && r.stdout.contains("COMPLETED"),
        "{}",
        r.stdout
    );

    // Exit codes.
    let r = evctl(
        &runner,
        &tenant,
        &["event", &uuid::Uuid::new_v4().to_string()],
    )
    .await;
    assert_eq!(r.code, 3, "{r:?}");
    let r = evctl(&runner, &tenant, &["--json", "events"]).await;
    assert_eq!(r.code, 2, "{r:?}");
    let r = evctl(
        &runner,
        &tenant,
        &[
            "--json",
            "events",
            "--type",
            "Loan.Funded",
            "--from",
            "nope",
        ],
    )
    .await;
    assert_eq!(
        (r.code, r.json["error"]["field"].clone()),
        (1, json!("from")),
        "{r:?}"
    );
    let r = evctl(&runner, &tenant, &["frobnicate"]).await;
    assert_eq!(r.code, 2, "{r:?}");
    let r = evctl(
        &runner,
        &tenant,
        &["--api", "http://127.0.0.1:9", "trace", &corr],
    )
    .await;
    assert_eq!(r.code, 4, "{r:?}");
}

async fn record(
    runner: &RunnerProcess,
    tenant: &str,
    event_id: &str,
    handler: &str,
) -> std::collections::HashMap<String, aws_sdk_dynamodb::types::AttributeValue> {
    let clients = aws().await;
    let pk = event_adapters::store::layout::record_pk(tenant, event_id, handler);
    batch_get(&clients.dynamodb, &runner.table(), &[pk])
        .await
        .pop()
        .expect("processing record")
}

fn log_len(
    r: &std::collections::HashMap<String, aws_sdk_dynamodb::types::AttributeValue>,
) -> usize {
    r.get("log")
        .and_then(|l| l.as_l().ok())
        .map(Vec::len)
        .unwrap_or(0)
}

#[tokio::test]
async fn replay_is_marked_idempotent_unless_rerun_and_dry_run_sends_nothing() {
    let runner = RunnerProcess::start("ops-replay", &[]).await;
    let tenant = id("t");
    let api = runner.api(&tenant);
    let corr = id("corr");
    let (loan, stored) = funded_loan(&api, &corr).await;
    let funded_id = stored[1]["eventId"].as_str().unwrap().to_string();
    let history_len = api.history("Loan", &loan).await.len();
    let clients = aws().await;
    let payment_q = queue_url(&clients.sqs, &runner.queue_name("payment", false)).await;
    let drained = || async {
        let start = Instant::now();
        while queue_depth(&clients.sqs, &payment_q).await != (0, 0) {
            assert!(start.elapsed() < WAIT, "payment queue not drained");
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    };

    // Dry run: what would be sent, nothing sent.
    let r = api
        .post(
            "/replay",
            &json!({"aggregateType": "Loan", "aggregateId": loan, "dryRun": true}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        (r.body["dryRun"].clone(), r.body["sent"].clone()),
        (json!(true), json!(0))
    );
    let msgs = r.body["messages"].as_array().unwrap();
    assert!(
        msgs.iter().any(|m| m["eventId"] == json!(funded_id)
            && m["domain"] == "payment"
            && m["handlers"]
                .as_array()
                .unwrap()
                .contains(&json!("payment-schedule"))),
        "{msgs:?}"
    );
    assert_eq!(queue_depth(&clients.sqs, &payment_q).await, (0, 0));

    // A replay without rerun: delivered (marked), every handler skips, nothing appended.
    let r = api.post("/replay", &json!({"aggregateType": "Loan", "aggregateId": loan, "handlers": ["payment-schedule"]})).await;
    assert_eq!(r.status, 202, "{}", r.body);
    assert_eq!(r.body["sent"], 1, "{}", r.body);
    drained().await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(
        log_len(&record(&runner, &tenant, &funded_id, "payment-schedule").await),
        1
    );
    assert_eq!(api.history("Loan", &loan).await.len(), history_len);

    // With rerun: the handler runs again (a second log entry), its follow-on ids are the
    // same, so the history does not grow; other handlers of the domain are untouched.
    let r = evctl(
        &runner,
        &tenant,
        &[
            "--json",
            "replay",
            "--aggregate",
            &format!("Loan/{loan}"),
            "--handlers",
            "payment-schedule",
            "--rerun",
        ],
    )
    .await;
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(r.json["sent"], 1, "{r:?}");
    let start = Instant::now();
    while log_len(&record(&runner, &tenant, &funded_id, "payment-schedule").await) < 2 {
        assert!(start.elapsed() < WAIT, "the rerun did not run");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let rec = record(&runner, &tenant, &funded_id, "payment-schedule").await;
    assert_eq!(
        rec.get("status")
            .and_then(|s| s.as_s().ok())
            .map(String::as_str),
        Some("COMPLETED")
    );
    drained().await;
    assert_eq!(api.history("Loan", &loan).await.len(), history_len);

    // By type and window, through evctl, dry run and human output.
    let r = evctl(
        &runner,
        &tenant,
        &[
            "replay",
            "--type",
            "Loan.Funded",
            "--from",
            "2000-01-01T00:00:00Z",
            "--to",
            "2999-01-01T00:00:00Z",
            "--dry-run",
        ],
    )
    .await;
    assert_eq!(r.code, 0, "{r:?}");
    // One per domain that hears Loan.Funded: payment, compliance, fund, notification and
    // the read models' projection.
    assert!(
        r.stdout.contains("would send 5 messages for 1 events"),
        "{}",
        r.stdout
    );

    // Validation.
    for (body, field) in [
        (json!({}), "aggregateType"),
        (
            json!({"aggregateType": "Loan", "aggregateId": loan, "handlers": ["nobody"]}),
            "handlers",
        ),
        (
            json!({"eventType": "Loan.Funded", "from": "2000-01-01T00:00:00Z"}),
            "to",
        ),
    ] {
        let r = api.post("/replay", &body).await;
        assert_eq!(
            (r.status, r.body["error"]["field"].clone()),
            (400, json!(field)),
            "{body}: {}",
            r.body
        );
    }
    let r = api
        .post(
            "/replay",
            &json!({"aggregateType": "Loan", "aggregateId": loan, "bogus": 1}),
        )
        .await;
    assert_eq!(
        (r.status, r.body["error"]["code"].clone()),
        (400, json!("malformed_json"))
    );
    let r = evctl(&runner, &tenant, &["replay"]).await;
    assert_eq!(r.code, 2, "{r:?}");
}

#[tokio::test]
async fn dlq_list_redrive_purge_and_handler_operations_through_evctl() {
    let runner = RunnerProcess::start("ops-dlq", &[]).await;
    let tenant = id("t");
    let api = runner.api(&tenant);
    let corr = id("corr");
    let (loan, _) = funded_loan(&api, &corr).await;
    // The reversal of a payment never received: a poison message (an over-payment is
    // money, held and refunded; this is an inconsistency), dead-lettered with its reason.
    let pay = |pid: &str| {
        json!({"eventType": "Payment.Reversed", "aggregateType": "Loan", "aggregateId": loan,
        "payload": {"paymentId": pid, "loanId": loan, "reason": "returned: account closed"}})
    };
    let r = api.post("/events", &pay("P3")).await;
    assert_eq!(r.status, 201, "{}", r.body);
    let p3 = r.body["events"][0]["eventId"].as_str().unwrap().to_string();
    let list = |args: Vec<&'static str>| {
        let runner = &runner;
        let tenant = &tenant;
        async move { evctl(runner, tenant, &args).await }
    };
    let start = Instant::now();
    let letter = loop {
        let r = list(vec!["--json", "dlq", "list", "--domain", "payment"]).await;
        assert_eq!(r.code, 0, "{r:?}");
        if let Some(m) = r.json["dlqs"][0]["messages"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["eventId"] == json!(p3))
        {
            break m.clone();
        }
        assert!(start.elapsed() < WAIT, "P3 not in the payment DLQ");
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    assert_eq!(letter["handler"], "payment-application", "{letter}");
    assert_eq!(letter["movedBy"], "runner");
    assert_eq!(letter["eventType"], "Payment.Reversed");
    assert!(
        letter["reason"]
            .as_str()
            .unwrap()
            .contains("never received"),
        "{letter}"
    );
    // Listing consumed nothing: it is there again at once, in human form too.
    let r = list(vec!["dlq", "list"]).await;
    assert!(
        r.code == 0 && r.stdout.contains(&p3) && r.stdout.contains("payment DLQ: 1 message"),
        "{r:?}"
    );

    // P4 as SQS would move it after maxReceiveCount (no reason attribute): the reason comes
    // from the FAILED processing record.
    let r = api.post("/events", &pay("P4")).await;
    let p4 = r.body["events"][0]["eventId"].as_str().unwrap().to_string();
    let clients = aws().await;
    let (body, _) = take_dead_letter(&clients.sqs, &runner.queue_name("payment", true), &p4, WAIT)
        .await
        .expect("P4 dead-lettered");
    let dlq = queue_url(&clients.sqs, &runner.queue_name("payment", true)).await;
    clients
        .sqs
        .send_message()
        .queue_url(&dlq)
        .message_body(body.to_string())
        .message_group_id("moved-by-sqs")
        .message_deduplication_id(format!("{p4}-moved"))
        .send()
        .await
        .unwrap();
    let r = list(vec!["--json", "dlq", "list", "--domain", "payment"]).await;
    let msgs = r.json["dlqs"][0]["messages"].as_array().unwrap().clone();
    let moved = msgs
        .iter()
        .find(|m| m["eventId"] == json!(p4))
        .unwrap_or_else(|| panic!("{msgs:?}"));
    assert_eq!(moved["movedBy"], "maxReceiveCount");
    assert_eq!(moved["handler"], "payment-application");
    assert!(
        moved["reason"].as_str().unwrap().contains("never received"),
        "{moved}"
    );

    // Redrive P3: back to the payment queue, handled again (it fails again: a second
    // failure on its record) and dead-lettered again.
    let r = evctl(
        &runner,
        &tenant,
        &[
            "--json", "dlq", "redrive", "--domain", "payment", "--event", &p3,
        ],
    )
    .await;
    assert_eq!((r.code, r.json["redriven"].clone()), (0, json!(1)), "{r:?}");
    let start = Instant::now();
    loop {
        let rec = record(&runner, &tenant, &p3, "payment-application").await;
        let failures = rec
            .get("failures")
            .and_then(|v| v.as_n().ok())
            .and_then(|n| n.parse::<u64>().ok())
            .unwrap_or(0);
        if failures >= 2 {
            break;
        }
        assert!(start.elapsed() < WAIT, "redriven P3 was not handled again");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let r = evctl(
        &runner,
        &tenant,
        &[
            "dlq",
            "redrive",
            "--domain",
            "payment",
            "--event",
            &uuid::Uuid::new_v4().to_string(),
        ],
    )
    .await;
    assert_eq!(r.code, 3, "{r:?}");
    let r = evctl(&runner, &tenant, &["dlq", "redrive", "--domain", "payment"]).await;
    assert_eq!(r.code, 2, "{r:?}");

    // Wait for the redriven P3 to be back in the DLQ.
    let start = Instant::now();
    while queue_depth(&clients.sqs, &dlq).await.0 < 2 {
        assert!(start.elapsed() < WAIT, "P3 not back in the DLQ");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }

    // Handler statistics from the daily items (written at once after a failure, and when
    // the poller finds its queue empty).
    let start = Instant::now();
    let r = loop {
        let r = evctl(
            &runner,
            &tenant,
            &[
                "--json",
                "handler",
                "stats",
                "payment-application",
                "payment-schedule",
            ],
        )
        .await;
        assert_eq!(r.code, 0, "{r:?}");
        if r.json["stats"][0]["failures"].as_u64().unwrap_or(0) >= 3 || start.elapsed() > WAIT {
            break r;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    let pa = &r.json["stats"][0];
    assert!(
        pa["failures"].as_u64().unwrap() >= 3 && pa["deadLettered"].as_u64().unwrap() >= 3,
        "{pa}"
    );
    assert!(
        pa["lastError"].as_str().unwrap().contains("never received"),
        "{pa}"
    );
    let ps = &r.json["stats"][1];
    assert!(
        ps["successes"].as_u64().unwrap() >= 1 && ps["p50Ms"].is_u64(),
        "{ps}"
    );
    let r = evctl(&runner, &tenant, &["handler", "stats"]).await;
    assert!(
        r.code == 0
            && r.stdout.contains("EventsDeadLettered")
            && r.stdout.contains("fund-allocation"),
        "{r:?}"
    );

    // Switches.
    let r = evctl(&runner, &tenant, &["handler", "disable", "notifications"]).await;
    assert_eq!(r.code, 0, "{r:?}");
    let r = evctl(&runner, &tenant, &["--json", "handler", "list"]).await;
    let n = r.json["handlers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|h| h["handler"] == "notifications")
        .cloned()
        .unwrap();
    assert_eq!(n["enabled"], false);
    let r = evctl(&runner, &tenant, &["handler", "enable", "notifications"]).await;
    assert_eq!(r.code, 0, "{r:?}");
    let r = evctl(&runner, &tenant, &["--json", "handler", "list"]).await;
    assert!(
        r.json["handlers"]
            .as_array()
            .unwrap()
            .iter()
            .all(|h| h["enabled"] == true),
        "{}",
        r.stdout
    );
    let r = evctl(&runner, &tenant, &["handler", "disable", "nobody"]).await;
    assert_eq!(r.code, 3, "{r:?}");

    // Purge: refused without --yes, then done.
    let r = evctl(&runner, &tenant, &["dlq", "purge", "--domain", "payment"]).await;
    assert_eq!(r.code, 5, "{r:?}");
    let r = evctl(
        &runner,
        &tenant,
        &["--json", "dlq", "purge", "--domain", "payment", "--yes"],
    )
    .await;
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.json["purged"].as_u64().unwrap() >= 2, "{r:?}");
    let r = list(vec!["--json", "dlq", "list", "--domain", "payment"]).await;
    assert_eq!(r.json["dlqs"][0]["count"], 0, "{r:?}");
}
