//! The local stream mapping keeps its position across restarts, as the real event source
//! mapping does: a restarted runner on an existing table dispatches only what it had not
//! dispatched before.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use event_adapters::ledger::DynamoLedger;
use integration_tests::{aws, queue_depth, queue_url, RunnerProcess};
use serde_json::{json, Value};

/// Draw.Requested is a client type routed to the draw domain only.
fn draw_requested(draw: &str) -> Value {
    json!({"eventType": "Draw.Requested", "aggregateType": "Draw", "aggregateId": draw,
        "payload": {"drawId": draw, "loanId": format!("L-{draw}"), "amount": "25000.00"}})
}

async fn publish(runner: &RunnerProcess, tenant: &str, draw: &str) -> String {
    let r = runner
        .api(tenant)
        .post("/events", &draw_requested(draw))
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    r.body["events"][0]["eventId"]
        .as_str()
        .expect("eventId")
        .to_string()
}

/// Receive every message on a queue (each stays invisible for the rest of the test, so it
/// is counted once) until `done` holds for the deliveries so far, then for `settle` more:
/// deliveries per eventId.
async fn deliveries(
    sqs: &aws_sdk_sqs::Client,
    url: &str,
    timeout: Duration,
    settle: Duration,
    done: impl Fn(&BTreeMap<String, usize>) -> bool,
) -> BTreeMap<String, usize> {
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    let start = Instant::now();
    let mut done_at: Option<Instant> = None;
    while start.elapsed() < timeout && done_at.is_none_or(|t| t.elapsed() < settle) {
        let out = sqs
            .receive_message()
            .queue_url(url)
            .max_number_of_messages(10)
            .visibility_timeout(600)
            .wait_time_seconds(1)
            .send()
            .await
            .expect("ReceiveMessage");
        for m in out.messages() {
            let body: Value = serde_json::from_str(m.body().unwrap_or("")).unwrap_or(Value::Null);
            let id = body["eventId"].as_str().unwrap_or("?").to_string();
            *seen.entry(id).or_default() += 1;
        }
        if done_at.is_none() && done(&seen) {
            done_at = Some(Instant::now());
        }
    }
    seen
}

#[tokio::test]
async fn a_restarted_runner_does_not_dispatch_stored_events_again() {
    let mut runner = RunnerProcess::start("checkpoint", &[]).await;
    let clients = aws().await;
    // The draw handler is switched off, so its queue keeps what dispatch sends
    // (the local mapping receives nothing while it is off) and the test can count it.
    DynamoLedger::new(clients.dynamodb.clone(), runner.table())
        .set_enabled("draw-workflow", false)
        .await
        .expect("switch the draw handler off");
    // The switch is cached for 2 s by the running pollers.
    tokio::time::sleep(Duration::from_secs(3)).await;

    let tenant = format!("t-{}", runner.prefix);
    let mut earlier = Vec::new();
    for i in 0..3 {
        earlier.push(publish(&runner, &tenant, &format!("D{i}")).await);
    }
    let queue_name = runner.queue_name("draw", false);
    let url = queue_url(&clients.sqs, &queue_name).await;
    let deadline = Instant::now() + Duration::from_secs(60);
    while queue_depth(&clients.sqs, &url).await.0 < earlier.len() as u64 {
        assert!(
            Instant::now() < deadline,
            "the first events never reached the queue"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    // The checkpoint is saved right after the batch's sends return.
    tokio::time::sleep(Duration::from_secs(2)).await;
    runner.stop();

    // A fresh queue of the same name: FIFO deduplication (5 minutes per eventId) would hide
    // a second dispatch from the old one. The restarted runner provisions it again.
    clients
        .sqs
        .delete_queue()
        .queue_url(&url)
        .send()
        .await
        .expect("DeleteQueue");
    runner.spawn(&[]).await;
    let url = queue_url(&clients.sqs, &queue_name).await;
    let later = publish(&runner, &tenant, "D-after-restart").await;

    // The stream keeps order per shard: once the later event is delivered, every earlier
    // record a missing checkpoint would re-read has been dispatched before it.
    let seen = deliveries(
        &clients.sqs,
        &url,
        Duration::from_secs(90),
        Duration::from_secs(3),
        |seen| seen.contains_key(&later),
    )
    .await;
    assert_eq!(
        seen.get(&later),
        Some(&1),
        "the event published after the restart is delivered once: {seen:?}"
    );
    let again: Vec<&String> = earlier.iter().filter(|id| seen.contains_key(*id)).collect();
    assert!(
        again.is_empty(),
        "{} of {} events dispatched before the restart were dispatched again: {seen:?}",
        again.len(),
        earlier.len()
    );
}
