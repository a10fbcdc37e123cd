//! The HTTP client the main job talks to the API with, as any client would.

use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::TokioExecutor;
use serde_json::Value;

pub struct DemoClient {
    client: Client<HttpConnector, Full<Bytes>>,
    pub base: String,
    pub tenant: String,
}

impl DemoClient {
    pub fn new(base: &str, tenant: &str) -> Self {
        DemoClient {
            client: Client::builder(TokioExecutor::new()).build_http(),
            base: base.into(),
            tenant: tenant.into(),
        }
    }

    pub(crate) async fn call(
        &self,
        method: &str,
        path: &str,
        body: Option<&Value>,
    ) -> Result<(u16, Value), String> {
        let req = http::Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.base))
            .header("x-tenant-id", &self.tenant)
            // Local identity headers (on AWS the JWT's `sub`): stored as metadata.principal.
            .header("x-principal", "loan-officer")
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
    pub async fn publish(&self, event: Value) -> Result<Value, String> {
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

    pub async fn history(&self, aggregate_type: &str, id: &str) -> Result<Vec<Value>, String> {
        let (_, body) = self
            .call(
                "GET",
                &format!("/aggregates/{aggregate_type}/{id}/events?limit=1000"),
                None,
            )
            .await?;
        Ok(body["events"].as_array().cloned().unwrap_or_default())
    }

    pub async fn wait_for(
        &self,
        aggregate_type: &str,
        id: &str,
        event_type: &str,
    ) -> Result<Vec<Value>, String> {
        self.wait_for_n(aggregate_type, id, event_type, 1).await
    }

    /// Wait until the aggregate holds `n` events of `event_type`.
    pub async fn wait_for_n(
        &self,
        aggregate_type: &str,
        id: &str,
        event_type: &str,
        n: usize,
    ) -> Result<Vec<Value>, String> {
        let start = Instant::now();
        loop {
            let h = self.history(aggregate_type, id).await?;
            if h.iter().filter(|e| e["eventType"] == event_type).count() >= n {
                println!(
                    "  ✓ {event_type} arrived after {} ms",
                    start.elapsed().as_millis()
                );
                return Ok(h);
            }
            if start.elapsed() > Duration::from_secs(120) {
                return Err(format!(
                    "{event_type} did not arrive on {aggregate_type}#{id} within 120 s"
                ));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub async fn state(&self, aggregate_type: &str, id: &str) -> Result<Value, String> {
        let (status, body) = self
            .call(
                "GET",
                &format!("/aggregates/{aggregate_type}/{id}/state"),
                None,
            )
            .await?;
        if status != 200 {
            return Err(format!("state of {aggregate_type} {id}: {status} {body}"));
        }
        Ok(body["state"].clone())
    }
}
