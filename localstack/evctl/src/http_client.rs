//! A small JSON client for the HTTP API: HTTP for the local runner, HTTPS (rustls with the
//! system roots) for a deployed API Gateway.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::Value;

use crate::error::{Fail, Kind};

type Https = hyper_rustls::HttpsConnector<hyper_util::client::legacy::connect::HttpConnector>;

pub struct HttpApi {
    base: String,
    tenant: Option<String>,
    token: Option<String>,
    client: Option<Client<Https, Full<Bytes>>>,
}

impl HttpApi {
    pub fn new(base: &str, tenant: Option<String>, token: Option<String>) -> HttpApi {
        HttpApi {
            base: base.trim_end_matches('/').to_string(),
            tenant,
            token,
            client: None,
        }
    }

    fn client(&self) -> Result<Client<Https, Full<Bytes>>, Fail> {
        if let Some(c) = &self.client {
            return Ok(c.clone());
        }
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_native_roots()
            .map_err(|e| Fail::unreachable(format!("no TLS roots: {e}")))?
            .https_or_http()
            .enable_http1()
            .build();
        Ok(Client::builder(TokioExecutor::new()).build(https))
    }

    /// Send a request; a 2xx answer's JSON body, or a [`Fail`] with a meaningful code.
    pub async fn send(
        &self,
        method: &str,
        path: &str,
        body: Option<&Value>,
    ) -> Result<(u16, Value), Fail> {
        self.send_with(method, path, body, &[]).await
    }

    /// [`HttpApi::send`] with extra request headers (e.g. `Prefer`).
    pub async fn send_with(
        &self,
        method: &str,
        path: &str,
        body: Option<&Value>,
        headers: &[(&str, &str)],
    ) -> Result<(u16, Value), Fail> {
        if self.tenant.is_none() && self.token.is_none() {
            return Err(Fail::usage(
                "give --tenant (or EVCTL_TENANT) for the local runner, or --token for a deployed API",
            ));
        }
        let url = format!("{}{}", self.base, path);
        let mut req = http::Request::builder().method(method).uri(&url);
        if let Some(t) = &self.tenant {
            req = req.header("x-tenant-id", t);
        }
        if let Some(t) = &self.token {
            req = req.header("authorization", format!("Bearer {t}"));
        }
        if body.is_some() {
            req = req.header("content-type", "application/json");
        }
        for (name, value) in headers {
            req = req.header(*name, *value);
        }
        let req = req
            .body(Full::new(Bytes::from(
                body.map(|b| b.to_string()).unwrap_or_default(),
            )))
            .map_err(|e| Fail::usage(format!("bad request {url}: {e}")))?;
        let resp = tokio::time::timeout(
            std::time::Duration::from_secs(60),
            self.client()?.request(req),
        )
        .await
        .map_err(|_| Fail::unreachable(format!("{method} {url}: timed out")))?
        .map_err(|e| Fail::unreachable(format!("cannot reach {url}: {e}")))?;
        let status = resp.status().as_u16();
        let bytes = resp
            .into_body()
            .collect()
            .await
            .map_err(|e| Fail::unreachable(format!("{method} {url}: {e}")))?
            .to_bytes();
        let value: Value = serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()));
        if (200..300).contains(&status) {
            return Ok((status, value));
        }
        let message = match value["error"]["message"].as_str() {
            Some(m) => format!(
                "{status} {}: {m}{}",
                value["error"]["code"].as_str().unwrap_or(""),
                value["error"]["field"]
                    .as_str()
                    .map(|f| format!(" (field {f})"))
                    .unwrap_or_default()
            ),
            None => format!("{status}: {value}"),
        };
        Err(Fail {
            kind: if status == 404 {
                Kind::NotFound
            } else {
                Kind::Refused
            },
            message,
            body: Some(value),
        })
    }
}
