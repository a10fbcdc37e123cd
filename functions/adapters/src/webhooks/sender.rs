//! Sends one signed delivery to a webhook and reports how it went.
//!
//! The egress policy is applied twice: to the URL before anything is sent (an address
//! written in it, plain http), and inside the connector to every address a host name
//! resolves to, right before connecting, so a DNS answer that changed since the
//! subscription was created (DNS rebinding) cannot reach a refused address. Redirects are
//! never followed. Every attempt has a deadline (5 s by default) covering the connection,
//! the answer and the read of a short excerpt of its body.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use chrono::{DateTime, Utc};
use http_body_util::{BodyExt, Full};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::dns::Name;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use lending_events::subscription::breaker::BreakerEvent;
use lending_events::subscription::retry::{
    is_retryable_status, AttemptOutcome, RetryPolicy, Verdict,
};
use lending_events::subscription::{EgressPolicy, TargetUrl};

use super::signing::{Signer, HEADER_ID, HEADER_SIGNATURE, HEADER_TIMESTAMP};
use super::DeliveryBody;
use crate::error::AdapterError;

/// The deadline of one attempt unless configured otherwise.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);

/// The most of a response body kept for the delivery log and dead letters.
pub const BODY_EXCERPT_BYTES: usize = 1024;

const USER_AGENT: &str = concat!("lending-events-webhooks/", env!("CARGO_PKG_VERSION"));

/// One delivery attempt to send.
#[derive(Debug, Clone, Copy)]
pub struct Delivery<'a> {
    pub url: &'a str,
    /// Stable across retries ([`super::signing::webhook_id`]).
    pub webhook_id: &'a str,
    pub body: &'a DeliveryBody,
    pub signer: &'a Signer,
    /// The attempt's time, sent as `webhook-timestamp` (receivers refuse old ones, so it is
    /// the time of this attempt, not of the first).
    pub timestamp: DateTime<Utc>,
}

/// How an attempt went, and how long it took.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attempt {
    pub outcome: SendOutcome,
    pub latency: Duration,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SendOutcome {
    /// A 2xx answer.
    Delivered { status: u16 },
    /// A 5xx, 408 or 429: worth another attempt, not sooner than `retry_after` if given.
    RetryLater {
        status: u16,
        retry_after: Option<String>,
        body_excerpt: String,
    },
    /// Any other answer (4xx, 3xx, ...): never retried.
    Permanent { status: u16, body_excerpt: String },
    /// No answer: time-out, DNS failure, refused or reset connection, TLS failure.
    NetworkError { message: String, timed_out: bool },
    /// The egress policy forbids this target (now): nothing was sent.
    Refused { reason: String },
}

impl SendOutcome {
    /// What to do next under `policy` after attempt number `attempt` (1 for the first).
    pub fn verdict(
        &self,
        policy: &RetryPolicy,
        attempt: u32,
        now: DateTime<Utc>,
        random: u64,
    ) -> Verdict {
        match self {
            SendOutcome::Delivered { .. } => Verdict::Delivered,
            SendOutcome::RetryLater {
                status,
                retry_after,
                ..
            } => policy.verdict(
                attempt,
                AttemptOutcome::Answered {
                    status: *status,
                    retry_after: retry_after.as_deref(),
                },
                now,
                random,
            ),
            SendOutcome::NetworkError { .. } => {
                policy.verdict(attempt, AttemptOutcome::NoAnswer, now, random)
            }
            SendOutcome::Permanent { .. } | SendOutcome::Refused { .. } => Verdict::Permanent,
        }
    }

    /// What this attempt tells the target's circuit breaker: an answer that is not a
    /// retryable failure shows a working endpoint; a refused target was never contacted.
    pub fn breaker_event(&self, at: DateTime<Utc>) -> Option<BreakerEvent> {
        match self {
            SendOutcome::Delivered { .. } | SendOutcome::Permanent { .. } => {
                Some(BreakerEvent::Succeeded)
            }
            SendOutcome::RetryLater { .. } | SendOutcome::NetworkError { .. } => {
                Some(BreakerEvent::Failed(at))
            }
            SendOutcome::Refused { .. } => None,
        }
    }

    /// The HTTP status, when the target answered.
    pub fn status(&self) -> Option<u16> {
        match self {
            SendOutcome::Delivered { status }
            | SendOutcome::RetryLater { status, .. }
            | SendOutcome::Permanent { status, .. } => Some(*status),
            SendOutcome::NetworkError { .. } | SendOutcome::Refused { .. } => None,
        }
    }
}

type Body = Full<Bytes>;

/// The HTTP client of webhook deliveries. Build one per process and share it (it pools
/// connections).
#[derive(Clone)]
pub struct WebhookSender {
    https: Client<HttpsConnector<HttpConnector<GuardedResolver>>, Body>,
    http: Client<HttpConnector<GuardedResolver>, Body>,
    policy: Arc<EgressPolicy>,
    timeout: Duration,
}

impl std::fmt::Debug for WebhookSender {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookSender")
            .field("policy", &self.policy)
            .field("timeout", &self.timeout)
            .finish()
    }
}

impl WebhookSender {
    /// A sender under `policy`, with the system's trusted roots for TLS and the default
    /// deadline.
    pub fn new(policy: EgressPolicy) -> Result<WebhookSender, AdapterError> {
        let policy = Arc::new(policy);
        let connector = |https: bool| {
            let mut c = HttpConnector::new_with_resolver(GuardedResolver {
                policy: policy.clone(),
                https,
            });
            c.set_connect_timeout(Some(DEFAULT_TIMEOUT));
            c.set_nodelay(true);
            c
        };
        let mut tls_inner = connector(true);
        // The TLS connector wraps this one and hands it https URIs.
        tls_inner.enforce_http(false);
        let tls = hyper_rustls::HttpsConnectorBuilder::new()
            .with_native_roots()
            .map_err(|e| AdapterError::Config(format!("no TLS trust roots: {e}")))?
            .https_only()
            .enable_http1()
            .wrap_connector(tls_inner);
        let builder = || Client::builder(TokioExecutor::new());
        Ok(WebhookSender {
            https: builder().build(tls),
            http: builder().build(connector(false)),
            policy,
            timeout: DEFAULT_TIMEOUT,
        })
    }

    /// The same sender with another per-attempt deadline.
    pub fn with_timeout(mut self, timeout: Duration) -> WebhookSender {
        self.timeout = timeout;
        self
    }

    pub fn policy(&self) -> &EgressPolicy {
        &self.policy
    }

    /// Send one attempt. Never fails: every way it can go is an outcome.
    pub async fn send(&self, delivery: &Delivery<'_>) -> Attempt {
        let started = Instant::now();
        let outcome = match tokio::time::timeout(self.timeout, self.attempt(delivery)).await {
            Ok(outcome) => outcome,
            Err(_) => SendOutcome::NetworkError {
                message: format!("no answer within {} ms", self.timeout.as_millis()),
                timed_out: true,
            },
        };
        Attempt {
            outcome,
            latency: started.elapsed(),
        }
    }

    async fn attempt(&self, delivery: &Delivery<'_>) -> SendOutcome {
        let url = match TargetUrl::parse(delivery.url) {
            Ok(url) => url,
            Err(reason) => return SendOutcome::Refused { reason },
        };
        if let Err(e) = self.policy.check_target(&url, "url") {
            return SendOutcome::Refused {
                reason: e.to_string(),
            };
        }
        let timestamp = delivery.timestamp.timestamp();
        let signature =
            match delivery
                .signer
                .signature(delivery.webhook_id, timestamp, &delivery.body.bytes)
            {
                Ok(signature) => signature,
                Err(e) => {
                    return SendOutcome::Refused {
                        reason: e.to_string(),
                    }
                }
            };
        let request = http::Request::post(delivery.url)
            .header(http::header::CONTENT_TYPE, delivery.body.content_type)
            .header(http::header::USER_AGENT, USER_AGENT)
            .header(HEADER_ID, delivery.webhook_id)
            .header(HEADER_TIMESTAMP, timestamp.to_string())
            .header(HEADER_SIGNATURE, signature)
            .body(Full::new(Bytes::from(delivery.body.bytes.clone())));
        let request = match request {
            Ok(request) => request,
            Err(e) => {
                return SendOutcome::Refused {
                    reason: format!("cannot build the request: {e}"),
                }
            }
        };
        let response = if url.https {
            self.https.request(request).await
        } else {
            self.http.request(request).await
        };
        let response = match response {
            Ok(response) => response,
            Err(e) => return network_outcome(&e),
        };
        let status = response.status().as_u16();
        if (200..300).contains(&status) {
            return SendOutcome::Delivered { status };
        }
        let retry_after = response
            .headers()
            .get(http::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let body_excerpt = excerpt(response.into_body()).await;
        if is_retryable_status(status) {
            SendOutcome::RetryLater {
                status,
                retry_after,
                body_excerpt,
            }
        } else {
            SendOutcome::Permanent {
                status,
                body_excerpt,
            }
        }
    }
}

/// A connection failure: an egress refusal from the resolver, or a network error. The
/// whole chain of causes is kept (hyper's top-level message alone says little).
fn network_outcome(error: &hyper_util::client::legacy::Error) -> SendOutcome {
    let mut message = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        if let Some(io) = cause.downcast_ref::<io::Error>() {
            if io.kind() == io::ErrorKind::PermissionDenied {
                return SendOutcome::Refused {
                    reason: io.to_string(),
                };
            }
        }
        message.push_str(": ");
        message.push_str(&cause.to_string());
        source = cause.source();
    }
    SendOutcome::NetworkError {
        message,
        timed_out: false,
    }
}

/// The first [`BODY_EXCERPT_BYTES`] of a response body, as text; the rest is not read.
async fn excerpt(mut body: hyper::body::Incoming) -> String {
    let mut kept = Vec::new();
    while kept.len() < BODY_EXCERPT_BYTES {
        match body.frame().await {
            Some(Ok(frame)) => {
                if let Some(data) = frame.data_ref() {
                    let room = BODY_EXCERPT_BYTES - kept.len();
                    kept.extend_from_slice(&data[..data.len().min(room)]);
                }
            }
            Some(Err(_)) | None => break,
        }
    }
    let mut text = String::from_utf8_lossy(&kept).into_owned();
    if kept.len() == BODY_EXCERPT_BYTES {
        // The cut may have split a character: drop a trailing replacement character.
        text = text.trim_end_matches('\u{fffd}').to_string();
    }
    text
}

/// Resolves host names with the system resolver and refuses the whole answer when any
/// address in it is forbidden by the egress policy (an answer mixing a public address with
/// 169.254.169.254 is an attack, not a choice).
#[derive(Clone)]
struct GuardedResolver {
    policy: Arc<EgressPolicy>,
    https: bool,
}

impl tower::Service<Name> for GuardedResolver {
    type Response = std::vec::IntoIter<SocketAddr>;
    type Error = io::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, io::Error>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), io::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, name: Name) -> Self::Future {
        let policy = self.policy.clone();
        let https = self.https;
        Box::pin(async move {
            let host = name.as_str().to_string();
            let addresses: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            if addresses.is_empty() {
                return Err(io::Error::new(
                    io::ErrorKind::NotFound,
                    format!("{host} has no address"),
                ));
            }
            let url = TargetUrl {
                https,
                host,
                port: 0,
            };
            for address in &addresses {
                policy
                    .check_address(&url, address.ip())
                    .map_err(|reason| io::Error::new(io::ErrorKind::PermissionDenied, reason))?;
            }
            Ok(addresses.into_iter())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::extract::State;
    use axum::http::{HeaderMap, StatusCode};
    use axum::response::IntoResponse;
    use axum::routing::post;
    use std::str::FromStr;
    use std::sync::Mutex;

    const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

    #[derive(Default)]
    struct Seen {
        requests: Mutex<Vec<(HeaderMap, Vec<u8>)>>,
    }

    /// A receiver on 127.0.0.1: `/ok` 204, `/busy` 503 + Retry-After, `/gone` 410 with a
    /// long body, `/slow` answers after 2 s, `/moved` 302.
    async fn receiver() -> (String, Arc<Seen>) {
        let seen = Arc::new(Seen::default());
        async fn record(
            State(seen): State<Arc<Seen>>,
            headers: HeaderMap,
            body: Bytes,
        ) -> StatusCode {
            seen.requests.lock().unwrap().push((headers, body.to_vec()));
            StatusCode::NO_CONTENT
        }
        let app = axum::Router::new()
            .route("/ok", post(record))
            .route(
                "/busy",
                post(|| async {
                    (
                        StatusCode::SERVICE_UNAVAILABLE,
                        [("retry-after", "7")],
                        "try later",
                    )
                }),
            )
            .route(
                "/gone",
                post(|| async {
                    (StatusCode::GONE, "é".repeat(2 * BODY_EXCERPT_BYTES)).into_response()
                }),
            )
            .route(
                "/slow",
                post(|| async {
                    tokio::time::sleep(Duration::from_secs(2)).await;
                    StatusCode::OK
                }),
            )
            .route(
                "/moved",
                post(|| async { (StatusCode::FOUND, [("location", "http://169.254.169.254/")]) }),
            )
            .with_state(seen.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        (base, seen)
    }

    fn body() -> DeliveryBody {
        DeliveryBody {
            content_type: "application/cloudevents+json; charset=utf-8",
            bytes: br#"{"id":"e1"}"#.to_vec(),
        }
    }

    async fn send(sender: &WebhookSender, url: &str) -> Attempt {
        let signer = Signer::new(&[SECRET]).unwrap();
        let body = body();
        let delivery = Delivery {
            url,
            webhook_id: "sub_e1",
            body: &body,
            signer: &signer,
            timestamp: Utc::now(),
        };
        sender.send(&delivery).await
    }

    #[tokio::test]
    async fn delivers_a_signed_request() {
        let (base, seen) = receiver().await;
        let sender = WebhookSender::new(EgressPolicy::local_runner()).unwrap();
        let attempt = send(&sender, &format!("{base}/ok")).await;
        assert_eq!(attempt.outcome, SendOutcome::Delivered { status: 204 });
        assert!(attempt.latency > Duration::ZERO);
        let requests = seen.requests.lock().unwrap();
        let (headers, bytes) = &requests[0];
        assert_eq!(bytes, &body().bytes);
        assert_eq!(headers["webhook-id"], "sub_e1");
        assert_eq!(
            headers["content-type"],
            "application/cloudevents+json; charset=utf-8"
        );
        // The receiver's side of the specification, by the crate (the independent check is
        // the Python receiver in the integration tests).
        let webhook = standardwebhooks::Webhook::new(SECRET).unwrap();
        webhook.verify(bytes, headers).expect("signature verifies");
    }

    #[tokio::test]
    async fn classifies_answers() {
        let (base, _) = receiver().await;
        let sender = WebhookSender::new(EgressPolicy::local_runner()).unwrap();
        match send(&sender, &format!("{base}/busy")).await.outcome {
            SendOutcome::RetryLater {
                status,
                retry_after,
                body_excerpt,
            } => {
                assert_eq!(
                    (status, retry_after.as_deref(), body_excerpt.as_str()),
                    (503, Some("7"), "try later")
                );
            }
            other => panic!("{other:?}"),
        }
        match send(&sender, &format!("{base}/gone")).await.outcome {
            SendOutcome::Permanent {
                status,
                body_excerpt,
            } => {
                assert_eq!(status, 410);
                assert!(
                    body_excerpt.len() <= BODY_EXCERPT_BYTES
                        && body_excerpt.len() >= BODY_EXCERPT_BYTES - 4
                );
                assert!(body_excerpt.chars().all(|c| c == 'é'));
            }
            other => panic!("{other:?}"),
        }
        // Redirects are not followed.
        assert_eq!(
            send(&sender, &format!("{base}/moved"))
                .await
                .outcome
                .status(),
            Some(302)
        );
    }

    #[tokio::test]
    async fn times_out_and_reports_connection_errors() {
        let (base, _) = receiver().await;
        let sender = WebhookSender::new(EgressPolicy::local_runner())
            .unwrap()
            .with_timeout(Duration::from_millis(300));
        let attempt = send(&sender, &format!("{base}/slow")).await;
        assert!(
            matches!(
                attempt.outcome,
                SendOutcome::NetworkError {
                    timed_out: true,
                    ..
                }
            ),
            "{attempt:?}"
        );
        assert!(
            attempt.latency >= Duration::from_millis(300)
                && attempt.latency < Duration::from_secs(2)
        );
        // A port nobody listens on.
        let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = closed.local_addr().unwrap().port();
        drop(closed);
        let attempt = send(&sender, &format!("http://127.0.0.1:{port}/x")).await;
        assert!(
            matches!(&attempt.outcome, SendOutcome::NetworkError { timed_out: false, message } if !message.is_empty()),
            "{attempt:?}"
        );
    }

    #[tokio::test]
    async fn refuses_what_the_policy_forbids_without_sending() {
        let (base, seen) = receiver().await;
        let strict = WebhookSender::new(EgressPolicy::strict()).unwrap();
        for url in [
            format!("{base}/ok"),
            base.replace("127.0.0.1", "localhost") + "/ok",
            "https://127.0.0.1:1/x".into(),
            "https://169.254.169.254/latest".into(),
            "ftp://x/y".into(),
        ] {
            let attempt = send(&strict, &url).await;
            assert!(
                matches!(attempt.outcome, SendOutcome::Refused { .. }),
                "{url}: {attempt:?}"
            );
        }
        let local = WebhookSender::new(EgressPolicy::local_runner()).unwrap();
        for url in [
            "http://10.0.0.1/x",
            "http://8.8.8.8/x",
            "http://example.com/x",
        ] {
            let attempt = send(&local, url).await;
            assert!(
                matches!(attempt.outcome, SendOutcome::Refused { .. }),
                "{url}: {attempt:?}"
            );
        }
        assert!(seen.requests.lock().unwrap().is_empty());
    }

    #[tokio::test]
    async fn the_resolver_refuses_names_that_resolve_to_forbidden_addresses() {
        use tower::Service;
        let mut strict = GuardedResolver {
            policy: Arc::new(EgressPolicy::strict()),
            https: true,
        };
        let err = strict
            .call(Name::from_str("localhost").unwrap())
            .await
            .unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::PermissionDenied);
        assert!(err.to_string().contains("loopback"), "{err}");
        let mut local = GuardedResolver {
            policy: Arc::new(EgressPolicy::local_runner()),
            https: false,
        };
        let addresses: Vec<SocketAddr> = local
            .call(Name::from_str("localhost").unwrap())
            .await
            .unwrap()
            .collect();
        assert!(addresses.iter().all(|a| a.ip().is_loopback()));
        // Through the whole client: a loopback name over http in the local runner.
        let (base, seen) = receiver().await;
        let sender = WebhookSender::new(EgressPolicy::local_runner()).unwrap();
        let attempt = send(&sender, &(base.replace("127.0.0.1", "localhost") + "/ok")).await;
        assert_eq!(attempt.outcome, SendOutcome::Delivered { status: 204 });
        assert_eq!(seen.requests.lock().unwrap().len(), 1);
    }

    #[test]
    fn outcomes_feed_retry_and_breaker() {
        let now = Utc::now();
        let policy = RetryPolicy::default();
        let busy = SendOutcome::RetryLater {
            status: 429,
            retry_after: Some("30".into()),
            body_excerpt: String::new(),
        };
        assert_eq!(
            busy.verdict(&policy, 1, now, 0),
            Verdict::RetryAfter(chrono::TimeDelta::seconds(30))
        );
        assert_eq!(busy.breaker_event(now), Some(BreakerEvent::Failed(now)));
        let gone = SendOutcome::Permanent {
            status: 410,
            body_excerpt: "bye".into(),
        };
        assert_eq!(gone.verdict(&policy, 1, now, 0), Verdict::Permanent);
        assert_eq!(gone.breaker_event(now), Some(BreakerEvent::Succeeded));
        let refused = SendOutcome::Refused {
            reason: "no".into(),
        };
        assert_eq!(refused.verdict(&policy, 1, now, 0), Verdict::Permanent);
        assert_eq!(refused.breaker_event(now), None);
        let down = SendOutcome::NetworkError {
            message: "reset".into(),
            timed_out: false,
        };
        assert!(matches!(
            down.verdict(&policy, 2, now, 0),
            Verdict::RetryAfter(_)
        ));
    }
}
