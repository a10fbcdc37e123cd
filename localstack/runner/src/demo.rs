//! The main job: play the LendingOS story through the HTTP API, as a client would, and show
//! what the backbone did with it.

use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::TokioExecutor;
use serde_json::{json, Value};

pub struct DemoClient {
    client: Client<HttpConnector, Full<Bytes>>,
    base: String,
    tenant: String,
}

impl DemoClient {
    pub fn new(base: &str, tenant: &str) -> Self {
        DemoClient {
            client: Client::builder(TokioExecutor::new()).build_http(),
            base: base.into(),
            tenant: tenant.into(),
        }
    }

    async fn call(
        &self,
        method: &str,
        path: &str,
        body: Option<&Value>,
    ) -> Result<(u16, Value), String> {
        let req = http::Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.base))
            .header("x-tenant-id", &self.tenant)
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(
                body.map(Value::to_string).unwrap_or_default(),
            )))
            .map_err(|e| e.to_string())?;
        let resp = self
            .client
            .request(req)
            .await
            .map_err(|e| format!("{method} {path}: {e}"))?;
        let status = resp.status().as_u16();
        let bytes = resp
            .into_body()
            .collect()
            .await
            .map_err(|e| e.to_string())?
            .to_bytes();
        Ok((
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        ))
    }

    /// Publish one event and print one line about it.
    async fn publish(&self, event: Value) -> Result<Value, String> {
        let (status, body) = self.call("POST", "/events", Some(&event)).await?;
        let stored = &body["events"][0];
        if status >= 300 {
            println!(
                "  ✗ {:<28} {status} {}",
                event["eventType"].as_str().unwrap_or("?"),
                body["error"]
            );
            return Err(format!("publish failed with {status}"));
        }
        println!(
            "  → {:<28} {status}  {}#{} seq {}",
            stored["eventType"].as_str().unwrap_or("?"),
            stored["aggregateType"].as_str().unwrap_or("?"),
            stored["aggregateId"].as_str().unwrap_or("?"),
            stored["sequence"]
        );
        Ok(stored.clone())
    }

    async fn history(&self, aggregate_type: &str, id: &str) -> Result<Vec<Value>, String> {
        let (_, body) = self
            .call(
                "GET",
                &format!("/aggregates/{aggregate_type}/{id}/events?limit=1000"),
                None,
            )
            .await?;
        Ok(body["events"].as_array().cloned().unwrap_or_default())
    }

    async fn wait_for(
        &self,
        aggregate_type: &str,
        id: &str,
        event_type: &str,
    ) -> Result<Vec<Value>, String> {
        let start = Instant::now();
        loop {
            let h = self.history(aggregate_type, id).await?;
            if h.iter().any(|e| e["eventType"] == event_type) {
                println!(
                    "  ✓ {event_type} arrived after {} ms",
                    start.elapsed().as_millis()
                );
                return Ok(h);
            }
            if start.elapsed() > Duration::from_secs(60) {
                return Err(format!(
                    "{event_type} did not arrive on {aggregate_type}#{id} within 60 s"
                ));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

pub async fn play(base: &str) -> Result<(), String> {
    let run = uuid::Uuid::new_v4().simple().to_string();
    let short = &run[..8];
    let api = DemoClient::new(base, &format!("demo-{short}"));
    let (borrower, loan) = (format!("B-{short}"), format!("L-{short}"));
    let correlation = format!("onboarding-{short}");
    let meta = json!({"userId": "officer-7", "correlationId": correlation, "source": "demo"});

    println!("\n▶ 1. Borrower onboarding (tenant {})", api.tenant);
    api.publish(json!({"eventType": "Borrower.Created", "aggregateType": "Borrower", "aggregateId": borrower,
        "payload": {"borrowerId": borrower, "type": "individual", "name": "Ada Lovelace"}, "metadata": meta})).await?;
    api.publish(json!({"eventType": "Borrower.KYCApproved", "aggregateType": "Borrower", "aggregateId": borrower,
        "payload": {"borrowerId": borrower, "verifiedAt": "2026-01-20T10:00:00Z"}, "metadata": meta})).await?;

    println!("\n▶ 2. Loan created, approved and funded: $100,000 at 7.5 % over 12 months");
    api.publish(json!({"eventType": "Loan.Created", "aggregateType": "Loan", "aggregateId": loan,
        "payload": {"loanId": loan, "borrowerId": borrower, "amount": "100000.00", "interestRate": "7.5",
            "termMonths": 12, "amortization": "amortized", "paymentFrequency": "monthly"}, "metadata": meta})).await?;
    api.publish(json!({"eventType": "Loan.Approved", "aggregateType": "Loan", "aggregateId": loan,
        "payload": {"loanId": loan, "approvedBy": "officer-7", "approvedAt": "2026-01-30T12:00:00Z"}, "metadata": meta})).await?;
    let funded = api.publish(json!({"eventType": "Loan.Funded", "aggregateType": "Loan", "aggregateId": loan,
        "payload": {"loanId": loan, "fundedAmount": "100000.00", "fundedAt": "2026-01-31T09:00:00Z"}, "metadata": meta})).await?;

    println!("\n▶ 3. The backbone reacts: stream → dispatch → payment queue → payment handler");
    let history = api
        .wait_for("Loan", &loan, "PaymentSchedule.Generated")
        .await?;

    println!("\n▶ 4. The loan's history (GET /aggregates/Loan/{loan}/events)");
    println!(
        "  {:>3}  {:<26} {:<10} {:<18} caused by",
        "seq", "event", "event id", "source"
    );
    for e in &history {
        let caused = e["metadata"]["causationId"].as_str().map(|c| {
            if c == funded["eventId"].as_str().unwrap_or("") {
                format!("Loan.Funded {}", &c[..8])
            } else {
                c[..8.min(c.len())].to_string()
            }
        });
        println!(
            "  {:>3}  {:<26} {:<10} {:<18} {}",
            e["sequence"].to_string(),
            e["eventType"].as_str().unwrap_or("?"),
            &e["eventId"].as_str().unwrap_or("?")[..8],
            e["metadata"]["source"].as_str().unwrap_or("-"),
            caused.unwrap_or_else(|| "-".into())
        );
    }
    if let Some(schedule) = history
        .iter()
        .find(|e| e["eventType"] == "PaymentSchedule.Generated")
    {
        println!(
            "\n▶ 5. The payment schedule ({} payments, correlation {})",
            schedule["payload"]["totalPayments"], schedule["metadata"]["correlationId"]
        );
        println!(
            "  {:>3}  {:<10} {:>12} {:>12} {:>12} {:>12}",
            "#", "due", "principal", "interest", "total", "balance"
        );
        for p in schedule["payload"]["payments"]
            .as_array()
            .into_iter()
            .flatten()
        {
            let s = |k: &str| p[k].as_str().unwrap_or("?").to_string();
            println!(
                "  {:>3}  {:<10} {:>12} {:>12} {:>12} {:>12}",
                p["number"].to_string(),
                s("dueDate"),
                s("principal"),
                s("interest"),
                s("total"),
                s("balance")
            );
        }
    }
    println!("\n✔ demo complete");
    Ok(())
}
