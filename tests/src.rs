//! Shared pieces of the integration tests: a small HTTP client for the local API and AWS
//! clients pointed at LocalStack. The tests expect `localstack/run-tests.sh` (or
//! `run-demo.sh --keep`) to have started LocalStack and the local runner.

use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::TokioExecutor;
use serde_json::Value;

/// Base URL of the local API (`API_URL`, default http://127.0.0.1:3000).
pub fn api_url() -> String {
    std::env::var("API_URL").unwrap_or_else(|_| "http://127.0.0.1:3000".into())
}

/// The table the local runner provisions (`EVENTS_TABLE`, default `lendingos-events`;
/// a runner started with `--prefix p` uses `p-events`).
pub fn table() -> String {
    std::env::var("EVENTS_TABLE").unwrap_or_else(|_| "lendingos-events".into())
}

/// A response: status and JSON body (Null when the body is not JSON).
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub body: Value,
}

#[derive(Clone)]
pub struct Api {
    client: Client<HttpConnector, Full<Bytes>>,
    base: String,
    pub tenant: String,
}

impl Api {
    /// A client for a fresh tenant, so tests never see each other's events.
    pub fn new_tenant() -> Api {
        Api::for_tenant(&format!("t-{}", uuid::Uuid::new_v4().simple()))
    }

    pub fn for_tenant(tenant: &str) -> Api {
        Api {
            client: Client::builder(TokioExecutor::new()).build_http(),
            base: api_url(),
            tenant: tenant.to_string(),
        }
    }

    /// Send a request; `tenant` false leaves out the X-Tenant-Id header.
    pub async fn raw(
        &self,
        method: &str,
        path: &str,
        body: Option<Vec<u8>>,
        content_type: Option<&str>,
        tenant: bool,
    ) -> Reply {
        let mut req = http::Request::builder()
            .method(method)
            .uri(format!("{}{}", self.base, path));
        if tenant {
            req = req.header("x-tenant-id", &self.tenant);
        }
        if let Some(ct) = content_type {
            req = req.header("content-type", ct);
        }
        let req = req
            .body(Full::new(Bytes::from(body.unwrap_or_default())))
            .expect("valid request");
        let resp = self
            .client
            .request(req)
            .await
            .unwrap_or_else(|e| panic!("{method} {path}: {e} (is the local runner up?)"));
        let status = resp.status().as_u16();
        let bytes = resp
            .into_body()
            .collect()
            .await
            .expect("response body")
            .to_bytes();
        Reply {
            status,
            body: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        }
    }

    pub async fn post(&self, path: &str, body: &Value) -> Reply {
        self.raw(
            "POST",
            path,
            Some(body.to_string().into_bytes()),
            Some("application/json"),
            true,
        )
        .await
    }

    pub async fn get(&self, path: &str) -> Reply {
        self.raw("GET", path, None, None, true).await
    }

    /// An aggregate's whole history.
    pub async fn history(&self, aggregate_type: &str, id: &str) -> Vec<Value> {
        let r = self
            .get(&format!(
                "/aggregates/{aggregate_type}/{id}/events?limit=1000"
            ))
            .await;
        assert_eq!(r.status, 200, "{:?}", r.body);
        r.body["events"].as_array().cloned().unwrap_or_default()
    }

    /// Poll an aggregate's history until `done` holds or `timeout` passes.
    pub async fn wait_history(
        &self,
        aggregate_type: &str,
        id: &str,
        timeout: Duration,
        done: impl Fn(&[Value]) -> bool,
    ) -> Vec<Value> {
        let start = Instant::now();
        loop {
            let h = self.history(aggregate_type, id).await;
            if done(&h) || start.elapsed() > timeout {
                return h;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

/// AWS clients for LocalStack, from the same environment the functions use.
pub async fn aws() -> event_adapters::config::Clients {
    event_adapters::config::Clients::from_env().await
}

/// Types of a list of envelopes, in order.
pub fn types(events: &[Value]) -> Vec<&str> {
    events
        .iter()
        .map(|e| e["eventType"].as_str().unwrap_or("?"))
        .collect()
}
