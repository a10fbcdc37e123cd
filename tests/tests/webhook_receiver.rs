//! Our webhook sender against the independent receiver (tests/receiver/receiver.py, which
//! verifies Standard Webhooks signatures with the reference Python library): signatures,
//! secret rotation, timestamps and every way the receiver can answer. No LocalStack needed.

use std::time::Duration;

use chrono::{DateTime, Utc};
use event_adapters::webhooks::{
    delivery_body, generate_secret, webhook_id, Attempt, Delivery, DeliveryBody, SendOutcome,
    Signer, WebhookSender,
};
use integration_tests::{Receiver, ReceiverMode};
use lending_events::subscription::{EgressPolicy, Format};
use lending_events::EventEnvelope;
use serde_json::json;

fn envelope(sequence: u64) -> EventEnvelope {
    serde_json::from_value(json!({
        "eventId": uuid::Uuid::new_v4(),
        "eventType": "Payment.Received",
        "eventVersion": 2,
        "domain": "payment",
        "aggregateType": "Loan",
        "aggregateId": "L-77",
        "sequence": sequence,
        "occurredAt": "2026-03-01T10:00:00Z",
        "recordedAt": "2026-03-01T10:00:00.123Z",
        "payload": {"paymentId": format!("P-{sequence}"), "loanId": "L-77", "amount": "1250.00", "method": "ACH", "memo": "déjà vu ✓"},
        "metadata": {"correlationId": "corr-77", "tenantId": "acme"}
    }))
    .expect("an envelope")
}

/// A receiver, our sender (local runner policy) and one event's CloudEvents body.
struct Pair {
    receiver: Receiver,
    sender: WebhookSender,
    body: DeliveryBody,
}

impl Pair {
    async fn start(receiver_secrets: &[&str]) -> Pair {
        Pair {
            receiver: Receiver::start(receiver_secrets).await,
            sender: WebhookSender::new(EgressPolicy::local_runner()).expect("sender"),
            body: delivery_body(&envelope(1), Format::Cloudevents).expect("body"),
        }
    }

    /// Send the body to `path` as message `id`, signed with `secrets`, now.
    async fn post(&self, path: &str, id: &str, secrets: &[&str]) -> Attempt {
        self.post_with(&self.sender, path, id, &self.body, secrets, Utc::now())
            .await
    }

    async fn post_with(
        &self,
        sender: &WebhookSender,
        path: &str,
        id: &str,
        body: &DeliveryBody,
        secrets: &[&str],
        timestamp: DateTime<Utc>,
    ) -> Attempt {
        let signer = Signer::new(secrets).expect("secrets");
        let url = self.receiver.url(path);
        let delivery = Delivery {
            url: &url,
            webhook_id: id,
            body,
            signer: &signer,
            timestamp,
        };
        sender.send(&delivery).await
    }

    /// Whether each request received so far verified.
    async fn verified(&self) -> Vec<bool> {
        let requests = self.receiver.requests().await;
        requests.iter().map(|r| r.verified).collect()
    }
}

#[tokio::test]
async fn the_receiver_verifies_our_cloudevents_deliveries() {
    let secret = generate_secret().expect("a secret");
    let pair = Pair::start(&[&secret]).await;
    let events: Vec<EventEnvelope> = (1..=5).map(envelope).collect();
    for event in &events {
        let body = delivery_body(event, Format::Cloudevents).expect("body");
        let id = webhook_id("sub-1", &event.event_id);
        let attempt = pair
            .post_with(
                &pair.sender,
                "/hooks/lending",
                &id,
                &body,
                &[&secret],
                Utc::now(),
            )
            .await;
        assert_eq!(attempt.outcome, SendOutcome::Delivered { status: 200 });
    }
    let received = pair.receiver.requests().await;
    assert_eq!(received.len(), events.len());
    for (request, event) in received.iter().zip(&events) {
        assert!(request.verified, "not verified: {:?}", request.error);
        assert_eq!(request.path, "/hooks/lending");
        let id = webhook_id("sub-1", &event.event_id);
        assert_eq!(request.header("webhook-id"), Some(id.as_str()));
        let content_type = request.header("content-type");
        assert_eq!(
            content_type,
            Some("application/cloudevents+json; charset=utf-8")
        );
        let ce = &request.json;
        assert_eq!(ce["specversion"], "1.0");
        assert_eq!(ce["id"], event.event_id.to_string());
        assert_eq!(ce["type"], "Payment.Received");
        assert_eq!(ce["subject"], "Loan/L-77");
        assert_eq!(ce["data"], *event.payload);
        let sequence = ce["sequence"].as_str().and_then(|s| s.parse::<u64>().ok());
        assert_eq!(sequence, Some(event.sequence));
    }
    // The envelope format is signed the same way.
    let body = delivery_body(&events[0], Format::Envelope).expect("body");
    let attempt = pair
        .post_with(
            &pair.sender,
            "/env",
            "sub-2_x",
            &body,
            &[&secret],
            Utc::now(),
        )
        .await;
    assert_eq!(attempt.outcome, SendOutcome::Delivered { status: 200 });
    let last = pair.receiver.requests().await.pop().expect("a request");
    assert!(last.verified);
    assert_eq!(last.json["eventId"], events[0].event_id.to_string());
}

#[tokio::test]
async fn a_wrong_secret_or_a_stale_timestamp_does_not_verify() {
    let (ours, theirs) = (generate_secret().unwrap(), generate_secret().unwrap());
    let pair = Pair::start(&[&theirs]).await;
    // The receiver refuses it: a permanent failure for the sender, with the receiver's words.
    match pair.post("/h", "m1", &[&ours]).await.outcome {
        SendOutcome::Permanent {
            status: 401,
            body_excerpt,
        } => {
            assert!(
                body_excerpt.contains("No matching signature"),
                "{body_excerpt}"
            )
        }
        other => panic!("{other:?}"),
    }
    let stale = Utc::now() - chrono::TimeDelta::minutes(10);
    let attempt = pair
        .post_with(&pair.sender, "/h", "m2", &pair.body, &[&theirs], stale)
        .await;
    assert_eq!(attempt.outcome.status(), Some(401));
    let received = pair.receiver.requests().await;
    assert_eq!(pair.verified().await, vec![false, false]);
    assert_eq!(
        received[1].error.as_deref(),
        Some("Message timestamp too old")
    );
}

#[tokio::test]
async fn during_a_rotation_either_secret_verifies() {
    let (old, new) = (generate_secret().unwrap(), generate_secret().unwrap());
    let pair = Pair::start(&[]).await;
    // (the receiver's secret, what the sender signs with, verifies?)
    let steps: [(&str, &[&str], bool); 3] = [
        // During the grace period both sign: a receiver still on the old secret...
        (&old, &[&new, &old], true),
        // ...and one already on the new verify.
        (&new, &[&new, &old], true),
        // After it only the new secret signs: the old one no longer verifies.
        (&old, &[&new], false),
    ];
    for (i, (receiver_secret, signing, verifies)) in steps.iter().enumerate() {
        pair.receiver.set_secrets(&[receiver_secret]).await;
        let attempt = pair.post("/h", &format!("m{i}"), signing).await;
        let expected = if *verifies { 200 } else { 401 };
        assert_eq!(
            attempt.outcome.status(),
            Some(expected),
            "step {i}: {attempt:?}"
        );
    }
    assert_eq!(pair.verified().await, vec![true, true, false]);
}

#[tokio::test]
async fn per_path_secrets_keep_subscriptions_apart() {
    let (a, b) = (generate_secret().unwrap(), generate_secret().unwrap());
    let pair = Pair::start(&[]).await;
    let by_path: [(&str, &[&str]); 2] = [("/a", &[&a]), ("/b", &[&b])];
    pair.receiver.set_secrets_by_path(&[], &by_path).await;
    let mut statuses = Vec::new();
    for path in ["/a", "/b", "/c"] {
        statuses.push(pair.post(path, "m", &[&a]).await.outcome.status());
    }
    assert_eq!(statuses, [Some(200), Some(401), Some(401)]);
    assert_eq!(pair.verified().await, vec![true, false, false]);
}

#[tokio::test]
async fn the_receiver_misbehaves_on_command() {
    let secret = generate_secret().unwrap();
    let pair = Pair::start(&[&secret]).await;
    let receiver = &pair.receiver;
    let id = "sub-9_e1";

    receiver.set_mode(&ReceiverMode::status(410)).await;
    match pair.post("/h", id, &[&secret]).await.outcome {
        SendOutcome::Permanent {
            status: 410,
            body_excerpt,
        } => {
            assert!(body_excerpt.contains("410"))
        }
        other => panic!("{other:?}"),
    }

    let retry_after = Some(Some("3".to_string()));
    let failing = ReceiverMode {
        retry_after,
        ..ReceiverMode::failing(1.0, 1)
    };
    receiver.set_mode(&failing).await;
    match pair.post("/h", id, &[&secret]).await.outcome {
        SendOutcome::RetryLater {
            status: 500,
            retry_after,
            ..
        } => {
            assert_eq!(retry_after.as_deref(), Some("3"))
        }
        other => panic!("{other:?}"),
    }

    // 30 % failures: the share the receiver answered 500 to is about that (seeded).
    receiver.clear().await;
    receiver.set_mode(&ReceiverMode::failing(0.3, 42)).await;
    let sends = 60;
    let mut failed = 0;
    for _ in 0..sends {
        let outcome = pair.post("/h", id, &[&secret]).await.outcome;
        failed += usize::from(matches!(
            outcome,
            SendOutcome::RetryLater { status: 500, .. }
        ));
    }
    let received = receiver.requests().await;
    let answered_500 = received.iter().filter(|r| r.status == 500).count();
    assert_eq!(answered_500, failed, "sender and receiver disagree");
    assert!(
        (6..=30).contains(&failed),
        "{failed} of {sends} failed at a 30 % rate"
    );
    assert!(received
        .iter()
        .all(|r| r.verified && r.header("webhook-id") == Some(id)));
    let share = 100.0 * failed as f64 / sends as f64;
    println!("{failed} of {sends} answered 500 ({share:.0} %)");

    // Down: connections are refused; up again on the same port: delivered.
    receiver.set_mode(&ReceiverMode::normal()).await;
    receiver.down().await;
    let down = pair.post("/h", id, &[&secret]).await;
    let refused = matches!(
        down.outcome,
        SendOutcome::NetworkError {
            timed_out: false,
            ..
        }
    );
    assert!(refused, "{down:?}");
    receiver.up().await;
    let up = pair.post("/h", id, &[&secret]).await;
    assert_eq!(up.outcome, SendOutcome::Delivered { status: 200 });

    // Slow: the sender's deadline ends the attempt.
    let slow = ReceiverMode {
        delay_ms: Some(1500),
        ..ReceiverMode::normal()
    };
    receiver.set_mode(&slow).await;
    let quick = pair.sender.clone().with_timeout(Duration::from_millis(400));
    let late = pair
        .post_with(&quick, "/h", id, &pair.body, &[&secret], Utc::now())
        .await;
    let timed_out = matches!(
        late.outcome,
        SendOutcome::NetworkError {
            timed_out: true,
            ..
        }
    );
    assert!(
        timed_out && late.latency < Duration::from_millis(1500),
        "{late:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_deliveries_are_all_received_once() {
    let secret = generate_secret().unwrap();
    let pair = Pair::start(&[&secret]).await;
    let events: Vec<EventEnvelope> = (1..=60).map(envelope).collect();
    let mut tasks = tokio::task::JoinSet::new();
    for event in events.clone() {
        let (sender, secret) = (pair.sender.clone(), secret.clone());
        let url = pair.receiver.url("/burst");
        tasks.spawn(async move {
            let body = delivery_body(&event, Format::Cloudevents).unwrap();
            let id = webhook_id("sub-burst", &event.event_id);
            let signer = Signer::new(&[&secret]).unwrap();
            let delivery = Delivery {
                url: &url,
                webhook_id: &id,
                body: &body,
                signer: &signer,
                timestamp: Utc::now(),
            };
            sender.send(&delivery).await.outcome
        });
    }
    let mut delivered = 0;
    while let Some(outcome) = tasks.join_next().await {
        assert_eq!(
            outcome.expect("task"),
            SendOutcome::Delivered { status: 200 }
        );
        delivered += 1;
    }
    let received = pair.receiver.requests().await;
    let mut ids: Vec<&str> = received
        .iter()
        .filter_map(|r| r.json["id"].as_str())
        .collect();
    ids.sort_unstable();
    ids.dedup();
    let n = events.len();
    assert_eq!((delivered, received.len(), ids.len()), (n, n, n));
    assert!(received.iter().all(|r| r.verified));
}
