//! The demo's subscription step: another system subscribes to the tenant's loan story after
//! it happened (`startFrom` = the demo's start, so the history is backfilled in order), and
//! a webhook receiver on 127.0.0.1 (played here with axum) verifies each delivery's
//! Standard Webhooks signature with the secret the API handed out.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use serde_json::{json, Value};

use super::client::DemoClient;

/// One request the receiver got: verified or why not, and the CloudEvent.
struct Received {
    verified: Result<(), String>,
    event: Value,
}

/// Create a subscription to everything about loans and payments since `since`, receive
/// it on a local webhook, and print what arrived, in order per aggregate.
pub async fn subscription_step(
    api: &DemoClient,
    since: chrono::DateTime<chrono::Utc>,
    expected: usize,
) -> Result<(), String> {
    println!(
        "\n▶ 15. A servicer subscribes (POST /subscriptions): signed CloudEvents on a webhook"
    );
    let received: Arc<Mutex<Vec<Received>>> = Arc::default();
    let secret: Arc<Mutex<Option<String>>> = Arc::default();
    let app = {
        let (received, secret) = (received.clone(), secret.clone());
        axum::Router::new().route(
            "/hooks",
            post(move |headers: HeaderMap, body: Bytes| {
                let (received, secret) = (received.clone(), secret.clone());
                async move {
                    let key = secret.lock().unwrap_or_else(|p| p.into_inner()).clone();
                    let verified = match key.map(|k| standardwebhooks::Webhook::new(&k)) {
                        Some(Ok(hook)) => hook.verify(&body, &headers).map_err(|e| e.to_string()),
                        Some(Err(e)) => Err(e.to_string()),
                        None => Err("no secret yet".into()),
                    };
                    let status = if verified.is_ok() {
                        StatusCode::OK
                    } else {
                        StatusCode::UNAUTHORIZED
                    };
                    let event = serde_json::from_slice(&body).unwrap_or(Value::Null);
                    received
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .push(Received { verified, event });
                    status
                }
            }),
        )
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(|e| format!("bind the demo receiver: {e}"))?;
    let port = listener.local_addr().map_err(|e| e.to_string())?.port();
    let server = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    let body = json!({
        "name": "servicer",
        "filter": {"eventTypes": ["Loan.*", "Payment.*", "PaymentSchedule.*"]},
        "target": {"type": "webhook", "url": format!("http://127.0.0.1:{port}/hooks")},
        "startFrom": since.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
    });
    let (status, sub) = api.call("POST", "/subscriptions", Some(&body)).await?;
    if status != 201 {
        server.abort();
        return Err(format!("POST /subscriptions: {status} {sub}"));
    }
    *secret.lock().unwrap_or_else(|p| p.into_inner()) = sub["secret"].as_str().map(str::to_string);
    let id = sub["subscriptionId"].as_str().unwrap_or("?").to_string();
    println!(
        "  subscription {id}: filter {}, startFrom {} (history first), secret whsec_… shown once",
        body["filter"], body["startFrom"]
    );
    let started = Instant::now();
    loop {
        let n = received.lock().unwrap_or_else(|p| p.into_inner()).len();
        if n >= expected {
            break;
        }
        if started.elapsed() > Duration::from_secs(90) {
            server.abort();
            return Err(format!(
                "the subscription received {n} of {expected} events in 90 s"
            ));
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    server.abort();
    let got = std::mem::take(&mut *received.lock().unwrap_or_else(|p| p.into_inner()));
    println!(
        "  the receiver verified every signature it got ({} requests):",
        got.len()
    );
    println!(
        "    {:<5} {:<26} {:<22} {:>4}  signature",
        "#", "type", "subject", "seq"
    );
    for (i, r) in got.iter().enumerate() {
        let e = &r.event;
        let seq: u64 = e["sequence"]
            .as_str()
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        println!(
            "    {:<5} {:<26} {:<22} {:>4}  {}",
            i + 1,
            e["type"].as_str().unwrap_or("?"),
            e["subject"].as_str().unwrap_or("?"),
            seq,
            match &r.verified {
                Ok(()) => "verified".to_string(),
                Err(why) => format!("REFUSED: {why}"),
            }
        );
    }
    if got.iter().any(|r| r.verified.is_err()) {
        return Err("a delivery did not verify".into());
    }
    let (_, log) = api
        .call(
            "GET",
            &format!("/subscriptions/{id}/deliveries?limit=3"),
            None,
        )
        .await?;
    for d in log["deliveries"].as_array().into_iter().flatten() {
        println!(
            "  delivery log: {} {} {} in {} ms (webhook-id {})",
            d["outcome"].as_str().unwrap_or("?"),
            d["eventType"].as_str().unwrap_or("?"),
            d["status"],
            d["durationMs"],
            d["webhookId"].as_str().unwrap_or("?")
        );
    }
    Ok(())
}
