//! Snapshots of aggregate state on LocalStack: a long loan answers its state from a
//! snapshot (seen in the table by an independent query), `asOf` and `knownAt` fold from
//! the nearest earlier snapshot, and a fold-version change ignores the old snapshots.
//!
//! Each test starts its own runner with `SNAPSHOT_EVERY=10`, so a short history already
//! holds several snapshots. Expected states are folded here, by the core, from the events
//! the API returns: never from the route under test.

use std::collections::HashMap;
use std::time::Duration;

use aws_sdk_dynamodb::types::AttributeValue;
use event_adapters::store::dynamo::Completing;
use event_adapters::store::{layout, DynamoStore, EventStore, History, SnapshotPolicy};
use integration_tests::{aws, Api, RunnerProcess};
use lending_events::envelope::StreamId;
use lending_events::envelope::WriteContext;
use lending_events::state::document;
use lending_events::{EventEnvelope, NewEvent};
use serde_json::{json, Value};

const EVERY: &str = "10";

fn id(prefix: &str) -> String {
    format!("{prefix}-{}", uuid::Uuid::new_v4().simple())
}

/// The events of a funded loan: created, approved, funded, and what the payment handler
/// adds (the schedule and two status changes).
const FUNDED: usize = 6;

/// Created, approved and funded.
async fn funded_loan(api: &Api, loan: &str) {
    let r = api
        .post(
            "/events",
            &json!({"events": [
                {"eventType": "Loan.Created", "aggregateType": "Loan", "aggregateId": loan,
                    "payload": {"loanId": loan, "borrowerId": "B-1", "amount": "100000.00",
                        "interestRate": "7.5", "termMonths": 120, "amortization": "amortized",
                        "paymentFrequency": "monthly"}},
                {"eventType": "Loan.Approved", "aggregateType": "Loan", "aggregateId": loan,
                    "payload": {"loanId": loan, "approvedBy": "U-9", "approvedAt": "2026-01-30T12:00:00Z"}},
                {"eventType": "Loan.Funded", "aggregateType": "Loan", "aggregateId": loan,
                    "payload": {"loanId": loan, "fundedAmount": "100000.00", "fundedAt": "2026-01-31T09:00:00Z"}}]}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
}

/// `count` payments of 100.00 from day `first` on, ten per request; each gets its
/// `Payment.Applied` from the payment handler.
async fn pay(api: &Api, loan: &str, first: usize, count: usize) {
    let payments: Vec<Value> = (first..first + count)
        .map(|k| {
            let on =
                chrono::NaiveDate::from_ymd_opt(2026, 2, 1).unwrap() + chrono::Days::new(k as u64);
            json!({"eventType": "Payment.Received", "aggregateType": "Loan", "aggregateId": loan,
                "payload": {"paymentId": format!("P{k}"), "loanId": loan, "amount": "100.00",
                    "method": "ACH", "receivedAt": format!("{on}T12:00:00Z")}})
        })
        .collect();
    for chunk in payments.chunks(10) {
        // The payment handler appends to the same stream meanwhile: a 503 (the stream stayed
        // contended through the store's retries) says to retry with backoff, as a client would.
        let mut r = api.post("/events", &json!({ "events": chunk })).await;
        for wait_ms in [500, 1000, 2000, 4000] {
            if r.status != 503 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(wait_ms)).await;
            r = api.post("/events", &json!({ "events": chunk })).await;
        }
        assert_eq!(r.status, 201, "{}", r.body);
    }
}

async fn history_of(api: &Api, loan: &str, len: usize) -> Vec<EventEnvelope> {
    let h = api
        .wait_history("Loan", loan, Duration::from_secs(300), |h| h.len() >= len)
        .await;
    assert_eq!(
        h.len(),
        len,
        "the loan's history did not reach {len} events"
    );
    h.into_iter()
        .map(|e| serde_json::from_value(e).expect("an envelope"))
        .collect()
}

async fn state(api: &Api, loan: &str, query: &str) -> (u16, Value) {
    let r = api
        .get(&format!("/aggregates/Loan/{loan}/state{query}"))
        .await;
    (r.status, r.body)
}

/// The loan's snapshot items, read straight from the table: (sort key text, item).
/// A store on the runner's table with the runner's snapshot policy, its calls counted under
/// `label` (`event_adapters::config::call_counts_for`).
async fn counted_store(runner: &RunnerProcess, label: &'static str) -> DynamoStore {
    let sdk = event_adapters::config::aws_config().await;
    let counted = event_adapters::config::Clients::counting_as(&sdk, label);
    DynamoStore::new(counted.dynamodb.clone(), runner.table()).with_snapshots(SnapshotPolicy {
        every: EVERY.parse().expect("a number"),
        fold_version: lending_events::state::FOLD_VERSION,
    })
}

fn loan_stream<'a>(tenant: &'a str, loan: &'a str) -> StreamId<'a> {
    StreamId {
        tenant_id: tenant,
        aggregate_type: "Loan",
        aggregate_id: loan,
    }
}

async fn snapshot_items(
    ddb: &aws_sdk_dynamodb::Client,
    table: &str,
    tenant: &str,
    loan: &str,
) -> Vec<(String, HashMap<String, AttributeValue>)> {
    let pk = layout::stream_pk(&StreamId {
        tenant_id: tenant,
        aggregate_type: "Loan",
        aggregate_id: loan,
    });
    let out = ddb
        .query()
        .table_name(table)
        .key_condition_expression("pk = :pk")
        .filter_expression("#kind = :snapshot")
        .expression_attribute_names("#kind", layout::attr::KIND)
        .expression_attribute_values(":pk", AttributeValue::S(pk))
        .expression_attribute_values(
            ":snapshot",
            AttributeValue::S(layout::kind::SNAPSHOT.into()),
        )
        .consistent_read(true)
        .send()
        .await
        .expect("Query");
    out.items()
        .iter()
        .map(|i| {
            let sk = i[layout::attr::SK].as_n().expect("a number").clone();
            (sk, i.clone())
        })
        .collect()
}

#[tokio::test]
async fn a_long_loan_answers_state_from_snapshots_and_as_of_any_point() {
    let runner = RunnerProcess::start("snap", &[("SNAPSHOT_EVERY", EVERY)]).await;
    let api = runner.api(&id("t"));
    let ddb = aws().await.dynamodb;
    let loan = id("L");
    funded_loan(&api, &loan).await;
    history_of(&api, &loan, FUNDED).await;
    pay(&api, &loan, 0, 30).await;
    let history = history_of(&api, &loan, FUNDED + 2 * 30).await;

    // The table holds snapshots, each just above the event it summarises.
    let snapshots = snapshot_items(&ddb, &runner.table(), &api.tenant, &loan).await;
    assert!(
        snapshots.len() >= 3,
        "expected a snapshot at least every 10 of 66 events, found {}",
        snapshots.len()
    );
    for (sk, item) in &snapshots {
        let seq = layout::num_of(item, layout::attr::SEQ).expect("seq");
        assert_eq!(sk, &format!("{seq}.5"));
        assert!(seq <= history.len() as u64);
    }

    // The state is the fold of the whole history.
    let (status, now) = state(&api, &loan, "").await;
    assert_eq!(status, 200, "{now}");
    assert_eq!(Some(now), document(history.clone()));

    // asOf a sequence: the fold of the events up to it, before and after snapshots.
    for k in [1usize, 4, 10, 11, 25, 33, 50, 66] {
        let (status, body) = state(&api, &loan, &format!("?asOf={k}")).await;
        assert_eq!(status, 200, "asOf={k}: {body}");
        assert_eq!(Some(body), document(history[..k].to_vec()), "asOf={k}");
    }
    // Beyond the head: the state at the head.
    let (_, beyond) = state(&api, &loan, "?asOf=1000").await;
    assert_eq!(Some(beyond), document(history.clone()));

    // A handler's read of the message at k (the queue behind the stream): the history up
    // to k from the latest snapshot before it, and the head, in one query, whatever
    // snapshots lie between k and the head.
    let store = counted_store(&runner, "snapshots-history-at").await;
    let stream = loan_stream(&api.tenant, &loan);
    let head = history.len() as u64;
    for k in [1u64, 9, 10, 11, 25, 45, head] {
        let queries = || {
            event_adapters::config::call_counts_for("snapshots-history-at")
                .get("DynamoDB.Query")
                .copied()
                .unwrap_or(0)
        };
        let before = queries();
        let (read, read_head) = store
            .history_at(stream, k, Some(head))
            .await
            .expect("a read");
        assert_eq!(queries() - before, 1, "k={k}: one query");
        assert_eq!(read_head, Some(head), "k={k}");
        assert_eq!(read.tail.last().map(|e| e.sequence), Some(k), "k={k}");
        assert!(
            read.snapshot.as_ref().is_none_or(|s| s.sequence < k),
            "k={k}"
        );
        // The state it folds to (as the state route shows it) is the whole history's.
        let folded = read.folded("Loan").expect("a loan").view();
        let whole = History {
            snapshot: None,
            tail: history[..k as usize].to_vec(),
        };
        let whole = whole.folded("Loan").expect("a loan").view();
        assert!(folded == whole, "k={k}: {folded} != {whole}");
        // Without the head (a handler that never appends to the loan): from k back.
        let (from_k, no_head) = store.history_at(stream, k, None).await.expect("a read");
        assert_eq!(no_head, None);
        assert_eq!(
            from_k.tail.last().map(|e| e.sequence),
            Some(k),
            "k={k}, no head"
        );
    }

    // knownAt: the events recorded by then.
    let at = history[32].recorded_at;
    let known: Vec<EventEnvelope> = history
        .iter()
        .filter(|e| e.recorded_at <= at)
        .cloned()
        .collect();
    let (status, body) = state(
        &api,
        &loan,
        &format!(
            "?knownAt={}",
            at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
        ),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    // The answer names the time asked (as without snapshots, `document_at`).
    let mut expected = document(known).expect("events recorded by then");
    expected["knownAt"] = json!(lending_events::envelope::format_time(&at));
    assert_eq!(body, expected);
    let (status, _) = state(&api, &loan, "?knownAt=2000-01-01T00:00:00Z").await;
    assert_eq!(status, 404);

    // asOf an effective date (not all digits) keeps its meaning with snapshots stored: the
    // payments received by then, folded from the whole history.
    let on = chrono::NaiveDate::from_ymd_opt(2026, 2, 10).unwrap();
    let (status, body) = state(&api, &loan, "?asOf=2026-02-10").await;
    assert_eq!(status, 200, "{body}");
    let expected = lending_events::state::document_at(
        history.clone(),
        lending_events::state::StateAt {
            as_of: Some(on),
            known_at: None,
        },
    );
    assert_eq!(Some(body.clone()), expected);
    let head = document(history.clone()).expect("a state");
    assert_ne!(body["state"], head["state"], "later payments are left out");

    // Bad input: 400 with the field named.
    for (query, field) in [
        ("?asOf=0", "asOf"),
        ("?asOf=abc", "asOf"),
        ("?knownAt=yesterday", "knownAt"),
        ("?asOf=3&knownAt=2026-01-01T00:00:00Z", "knownAt"),
    ] {
        let (status, body) = state(&api, &loan, query).await;
        assert_eq!(status, 400, "{query}: {body}");
        assert_eq!(body["error"]["field"], json!(field), "{query}");
    }
}

#[tokio::test]
async fn a_fold_version_change_ignores_old_snapshots() {
    let mut runner = RunnerProcess::start("snapv", &[("SNAPSHOT_EVERY", EVERY)]).await;
    let api = runner.api(&id("t"));
    let ddb = aws().await.dynamodb;
    let loan = id("L");
    funded_loan(&api, &loan).await;
    history_of(&api, &loan, FUNDED).await;
    pay(&api, &loan, 0, 20).await;
    let history = history_of(&api, &loan, FUNDED + 2 * 20).await;

    // Tamper with the latest snapshot: the route must show it (it reads the snapshot,
    // not the events it covers).
    let snapshots = snapshot_items(&ddb, &runner.table(), &api.tenant, &loan).await;
    let (_, latest) = snapshots
        .iter()
        .max_by_key(|(_, i)| layout::num_of(i, layout::attr::SEQ))
        .expect("a snapshot");
    assert_eq!(
        layout::num_of(latest, layout::attr::FOLD_VERSION),
        Some(u64::from(lending_events::state::FOLD_VERSION))
    );
    let mut tampered = latest.clone();
    let Some(AttributeValue::B(stored)) = latest.get(layout::attr::STATE) else {
        panic!("a snapshot state is stored deflated: {latest:?}");
    };
    let mut folded: Value =
        serde_json::from_slice(&layout::inflate_state(stored.as_ref()).expect("deflated"))
            .expect("JSON");
    folded["state"]["loan"]["borrower_id"] = json!("TAMPERED");
    tampered.insert(
        layout::attr::STATE.into(),
        AttributeValue::B(layout::deflate_state(&folded.to_string()).into()),
    );
    ddb.put_item()
        .table_name(runner.table())
        .set_item(Some(tampered))
        .send()
        .await
        .expect("PutItem");
    let (_, read) = state(&api, &loan, "").await;
    assert_eq!(read["state"]["borrowerId"], json!("TAMPERED"), "{read}");

    // Another fold version: the old snapshots are ignored, the state is re-folded.
    runner.stop();
    let next_version = (lending_events::state::FOLD_VERSION + 1).to_string();
    runner
        .spawn(&[("SNAPSHOT_FOLD_VERSION", next_version.as_str())])
        .await;
    let (status, refolded) = state(&api, &loan, "").await;
    assert_eq!(status, 200, "{refolded}");
    assert_eq!(Some(refolded.clone()), document(history.clone()));
    assert_eq!(refolded["state"]["borrowerId"], json!("B-1"));

    // New snapshots are written by the new version, and the handlers keep deciding right.
    pay(&api, &loan, 20, 10).await;
    let history = history_of(&api, &loan, FUNDED + 2 * 30).await;
    let versions: Vec<u64> = snapshot_items(&ddb, &runner.table(), &api.tenant, &loan)
        .await
        .iter()
        .filter_map(|(_, i)| layout::num_of(i, layout::attr::FOLD_VERSION))
        .collect();
    assert!(
        versions.contains(&next_version.parse().unwrap()),
        "{versions:?}"
    );
    let (_, now) = state(&api, &loan, "").await;
    assert_eq!(Some(now), document(history));
}

/// Client-shaped `Payment.Received` events `k` in `range` for `loan`, validated as ingest does.
fn payments(tenant: &str, loan: &str, range: std::ops::Range<usize>) -> Vec<NewEvent> {
    let ctx = WriteContext::client(tenant, "snapshots-test", chrono::Utc::now());
    range
        .map(|k| {
            let on =
                chrono::NaiveDate::from_ymd_opt(2026, 3, 1).unwrap() + chrono::Days::new(k as u64);
            let raw = json!({"eventType": "Payment.Received", "aggregateType": "Loan",
                "aggregateId": loan, "payload": {"paymentId": format!("Q{k}"), "loanId": loan,
                    "amount": "50.00", "method": "ACH", "receivedAt": format!("{on}T12:00:00Z")}});
            NewEvent::from_json(&raw, &ctx, &mut uuid::Uuid::new_v4).expect("a valid payment")
        })
        .collect()
}

#[tokio::test]
async fn a_commit_at_a_snapshot_point_writes_the_snapshot_after_a_read_and_after_a_lost_race() {
    let mut runner = RunnerProcess::start("snapc", &[("SNAPSHOT_EVERY", EVERY)]).await;
    let api = runner.api(&id("t"));
    let ddb = aws().await.dynamodb;
    let loan = id("L");
    funded_loan(&api, &loan).await;
    pay(&api, &loan, 0, 6).await;
    history_of(&api, &loan, FUNDED + 2 * 6).await;
    // From here on only this test writes the stream (no handler answers its appends).
    runner.stop();

    let label = "snapshots-commit";
    let store = counted_store(&runner, label).await;
    let stream = loan_stream(&api.tenant, &loan);
    let pk = layout::stream_pk(&stream);
    let calls = || event_adapters::config::call_counts_for(label);
    let count = |before: &std::collections::BTreeMap<String, u64>, op: &str| {
        calls().get(op).copied().unwrap_or(0) - before.get(op).copied().unwrap_or(0)
    };
    // The processing record a handler's commit completes; here a marker item per commit.
    let record = |n: u32| {
        let put = aws_sdk_dynamodb::types::Put::builder()
            .table_name(runner.table())
            .item("pk", AttributeValue::S(format!("TEST#{loan}#{n}")))
            .item("sk", AttributeValue::N("0".into()))
            .build()
            .expect("a put");
        aws_sdk_dynamodb::types::TransactWriteItem::builder()
            .put(put)
            .build()
    };
    // Each snapshot written equals the fold of the whole history up to its event.
    let check_snapshot_at = |point: u64| {
        let ddb = ddb.clone();
        let (table, tenant, loan) = (runner.table(), api.tenant.clone(), loan.clone());
        async move {
            let snapshots = snapshot_items(&ddb, &table, &tenant, &loan).await;
            let (_, item) = snapshots
                .iter()
                .find(|(sk, _)| *sk == format!("{point}.5"))
                .unwrap_or_else(|| {
                    panic!(
                        "no snapshot at {point}: {:?}",
                        snapshots.iter().map(|(sk, _)| sk).collect::<Vec<_>>()
                    )
                });
            let snapshot = layout::decode_snapshot(item).expect("a snapshot");
            assert_eq!(snapshot.sequence, point);
            snapshot.state.view()
        }
    };
    let whole_at = |point: u64| {
        let store = store.clone();
        async move {
            let whole = store.history(stream).await.expect("the history");
            assert!(whole.len() as u64 >= point);
            History {
                snapshot: None,
                tail: whole[..point as usize].to_vec(),
            }
            .folded("Loan")
            .expect("a loan")
            .view()
        }
    };

    // 1. A handler read the stream from its head (18, near the point at 20) and commits two
    //    events: the snapshot at 20 is folded from that read, with no other query.
    let head = (FUNDED + 2 * 6) as u64;
    let before = calls();
    let (_, read_head) = store
        .history_at(stream, head, Some(head))
        .await
        .expect("a read");
    assert_eq!(read_head, Some(head));
    let stored = store
        .append_completing(
            payments(&api.tenant, &loan, 0..2),
            chrono::Utc::now(),
            HashMap::from([(pk.clone(), head)]),
            &record(1),
        )
        .await
        .expect("a commit");
    assert!(matches!(stored, Completing::Stored(_)));
    assert_eq!(count(&before, "DynamoDB.Query"), 1, "the read only");
    assert_eq!(count(&before, "DynamoDB.TransactWriteItems"), 1);
    assert_eq!(check_snapshot_at(20).await, whole_at(20).await);

    // 2. Other writers appended since the commit's head was read; the commit loses the race
    //    and retries at once with its head moved past the places they took, without a read.
    //    - One event since (27, now 28): its first event's place was taken, not its
    //      second's; the guess (28) lands at 29-30, with the snapshot at 30 folded from one
    //      read, as a commit that read nothing does.
    //    - Three since (35, now 38): both places taken, the guess (37) loses too, and the
    //      next attempt reads the stream back to its snapshot instead of its head alone;
    //      the snapshot at 40 is folded from that read.
    for (others, known, commit, landed, transactions, why) in [
        (
            2..10,
            27,
            10..12,
            [29, 30],
            2,
            "lost once; the snapshot's read",
        ),
        (
            12..20,
            35,
            20..22,
            [39, 40],
            3,
            "lost twice; one read, serving the snapshot too",
        ),
    ] {
        store
            .append(payments(&api.tenant, &loan, others), chrono::Utc::now())
            .await
            .expect("an append");
        let before = calls();
        let stored = store
            .append_completing(
                payments(&api.tenant, &loan, commit),
                chrono::Utc::now(),
                HashMap::from([(pk.clone(), known)]),
                &record(known as u32),
            )
            .await
            .expect("a commit");
        let Completing::Stored(stored) = stored else {
            panic!("not stored")
        };
        let sequences: Vec<u64> = stored.iter().map(|e| e.sequence).collect();
        assert_eq!(sequences, landed);
        assert_eq!(
            count(&before, "DynamoDB.TransactWriteItems"),
            transactions,
            "{why}"
        );
        assert_eq!(count(&before, "DynamoDB.Query"), 1, "{why}");
        assert_eq!(
            check_snapshot_at(landed[1]).await,
            whole_at(landed[1]).await
        );
    }
}
