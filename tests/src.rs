//! Shared pieces of the integration tests: a small HTTP client for the local API and AWS
//! clients pointed at LocalStack. The tests expect `localstack/run-tests.sh` (or
//! `run-demo.sh --keep`) to have started LocalStack and the local runner.
//!
//! What lives where: this file holds what several tests share (the API client [`Api`], the
//! AWS clients, reads of the table and queues that check the system independently, the
//! [`RunnerProcess`] for tests that need a runner of their own, the `evctl` binary); each
//! file of `tests/` is one area: `ingest_contract` (publishing), `cursors_and_bad_input`,
//! `security` (scopes and principals), `operations` (reads, trace, replay, dead letters,
//! handler switches), `evctl`, `loan_flow` and `domain_flows` (the handlers end to end),
//! `delivery` and `stream_checkpoint` (the mappings), `lambda_binaries`, `infra_template`
//! (the SAM template against the code) and `load`.

use std::time::{Duration, Instant};

use bytes::Bytes;
use event_adapters::store::layout;
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
    pub headers: http::HeaderMap,
}

#[derive(Clone)]
pub struct Api {
    client: Client<HttpConnector, Full<Bytes>>,
    base: String,
    pub tenant: String,
    /// Sent with every request (`X-Principal`, `X-Scopes`, ...).
    headers: Vec<(String, String)>,
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
            headers: Vec::new(),
        }
    }

    /// The same client, also sending `name: value` with every request.
    pub fn with_header(mut self, name: &str, value: &str) -> Api {
        self.headers.push((name.to_string(), value.to_string()));
        self
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
        for (name, value) in &self.headers {
            req = req.header(name, value);
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
        let headers = resp.headers().clone();
        let bytes = resp
            .into_body()
            .collect()
            .await
            .expect("response body")
            .to_bytes();
        Reply {
            status,
            body: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
            headers,
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

/// A numeric test setting from the environment; unset or unparsable gives the default.
pub fn env_number(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Types of a list of envelopes, in order.
pub fn types(events: &[Value]) -> Vec<&str> {
    events
        .iter()
        .map(|e| e["eventType"].as_str().unwrap_or("?"))
        .collect()
}

/// A local runner of the test's own (own table and queues via `--prefix`, own port), for
/// tests that inject faults or switch handlers off without disturbing other tests.
/// Killed when dropped.
pub struct RunnerProcess {
    child: Option<std::process::Child>,
    pub prefix: String,
    pub port: u16,
    env: Vec<(String, String)>,
}

impl RunnerProcess {
    pub fn binary() -> std::path::PathBuf {
        std::env::var("LOCAL_RUNNER_BIN")
            .map(Into::into)
            .unwrap_or_else(|_| {
                std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                    .join("../target/debug/local-runner")
            })
    }

    /// Start on a free port with a fresh prefix and extra environment; waits until ready.
    pub async fn start(name: &str, env: &[(&str, &str)]) -> RunnerProcess {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("a free port");
        let mut r = RunnerProcess {
            child: None,
            prefix: format!("{name}-{}", &uuid::Uuid::new_v4().simple().to_string()[..8]),
            port,
            env: env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        };
        r.spawn(&[]).await;
        r
    }

    /// (Re)start the process, with `extra` environment on top of the original.
    pub async fn spawn(&mut self, extra: &[(&str, &str)]) {
        // Appended to, so a restarted process keeps the earlier one's log.
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .expect("log file");
        let mut cmd = std::process::Command::new(Self::binary());
        cmd.args([
            "serve",
            "--prefix",
            &self.prefix,
            "--port",
            &self.port.to_string(),
        ])
        .stdin(std::process::Stdio::null())
        .stdout(log.try_clone().expect("log"))
        .stderr(log);
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        for (k, v) in extra {
            cmd.env(k, v);
        }
        self.child = Some(cmd.spawn().expect("start local-runner (build it first)"));
        let api = self.api("probe");
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(60) {
            if let Ok(Ok(_)) = tokio::time::timeout(
                Duration::from_secs(2),
                api.client.request(
                    http::Request::get(format!("{}/aggregates/Probe/p/events", api.base))
                        .header("x-tenant-id", "probe")
                        .body(Full::new(Bytes::new()))
                        .expect("request"),
                ),
            )
            .await
            {
                return;
            }
            if self.exited() {
                panic!("local-runner {} exited at start", self.prefix);
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        panic!("local-runner {} did not become ready", self.prefix);
    }

    /// An API client for a tenant on this runner.
    pub fn api(&self, tenant: &str) -> Api {
        let mut a = Api::for_tenant(tenant);
        a.base = format!("http://127.0.0.1:{}", self.port);
        a
    }

    pub fn table(&self) -> String {
        format!("{}-events", self.prefix)
    }

    /// Where the process writes its logs (stdout and stderr), kept across restarts.
    pub fn log_path(&self) -> std::path::PathBuf {
        std::env::temp_dir().join(format!("{}.log", self.prefix))
    }

    pub fn queue_name(&self, domain: &str, dlq: bool) -> String {
        if dlq {
            format!("{}-{domain}-dlq.fifo", self.prefix)
        } else {
            format!("{}-{domain}.fifo", self.prefix)
        }
    }

    /// True once the process has ended (e.g. after an injected crash).
    pub fn exited(&mut self) -> bool {
        self.child
            .as_mut()
            .is_none_or(|c| matches!(c.try_wait(), Ok(Some(_))))
    }

    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for RunnerProcess {
    /// Stop the process and delete its table and queues (kept when `KEEP_TEST_RESOURCES`
    /// is set, for a post-mortem).
    fn drop(&mut self) {
        self.stop();
        if std::env::var_os("KEEP_TEST_RESOURCES").is_none() {
            let _ = std::process::Command::new(Self::binary())
                .args(["teardown", "--prefix", &self.prefix])
                .stdin(std::process::Stdio::null())
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .status();
        }
    }
}

/// DynamoDB items by partition key (sort key 0), read consistently, in the order asked;
/// missing ones are left out.
pub async fn batch_get(
    ddb: &aws_sdk_dynamodb::Client,
    table: &str,
    pks: &[String],
) -> Vec<std::collections::HashMap<String, aws_sdk_dynamodb::types::AttributeValue>> {
    layout::batch_get_pks(ddb, table, pks, layout::Read::Consistent)
        .await
        .expect("BatchGetItem")
}

/// Every event item of one tenant, read with a Scan of the table (no index, no API), as
/// the stored envelopes. Each envelope's `sequence` is checked against the item's sort key.
pub async fn scan_events(ddb: &aws_sdk_dynamodb::Client, table: &str, tenant: &str) -> Vec<Value> {
    use aws_sdk_dynamodb::types::AttributeValue;
    let mut out = Vec::new();
    let mut start = None;
    loop {
        let page = ddb
            .scan()
            .table_name(table)
            .filter_expression("#kind = :event AND begins_with(pk, :stream)")
            .expression_attribute_names("#kind", layout::attr::KIND)
            .expression_attribute_values(":event", AttributeValue::S(layout::kind::EVENT.into()))
            .expression_attribute_values(
                ":stream",
                AttributeValue::S(layout::tenant_streams_prefix(tenant)),
            )
            .set_exclusive_start_key(start)
            .send()
            .await
            .expect("Scan");
        for item in page.items() {
            let envelope: Value = layout::event_body(item)
                .and_then(|s| serde_json::from_str(s).ok())
                .expect("an event item holds its envelope");
            let sk = item
                .get(layout::attr::SK)
                .and_then(|v| v.as_n().ok())
                .cloned();
            assert_eq!(
                sk.as_deref(),
                Some(envelope["sequence"].to_string().as_str()),
                "sort key and envelope sequence agree"
            );
            out.push(envelope);
        }
        start = page.last_evaluated_key().cloned();
        if start.is_none() {
            return out;
        }
    }
}

/// Every event of one correlation, from the byCorrelation index.
pub async fn correlation_events(
    ddb: &aws_sdk_dynamodb::Client,
    table: &str,
    tenant: &str,
    correlation: &str,
) -> Vec<Value> {
    event_adapters::store::indexes::correlation_events(ddb, table, tenant, correlation, usize::MAX)
        .await
        .expect("Query byCorrelation + BatchGetItem")
        .iter()
        .map(|e| serde_json::to_value(e).expect("envelope as JSON"))
        .collect()
}

/// Messages waiting or in flight on a queue.
pub async fn queue_depth(sqs: &aws_sdk_sqs::Client, url: &str) -> (u64, u64) {
    use aws_sdk_sqs::types::QueueAttributeName as A;
    let out = sqs
        .get_queue_attributes()
        .queue_url(url)
        .attribute_names(A::ApproximateNumberOfMessages)
        .attribute_names(A::ApproximateNumberOfMessagesNotVisible)
        .send()
        .await
        .expect("GetQueueAttributes");
    let get = |k: A| {
        out.attributes()
            .and_then(|a| a.get(&k))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    (
        get(A::ApproximateNumberOfMessages),
        get(A::ApproximateNumberOfMessagesNotVisible),
    )
}

pub async fn queue_url(sqs: &aws_sdk_sqs::Client, name: &str) -> String {
    sqs.get_queue_url()
        .queue_name(name)
        .send()
        .await
        .expect("GetQueueUrl")
        .queue_url()
        .unwrap_or_default()
        .to_string()
}

/// The resource prefix of the runner under test: `QUEUE_PREFIX`, else `EVENTS_TABLE` without
/// its `-events` suffix (a runner started with `--prefix p` uses `p-events`, `p-<domain>.fifo`).
pub fn prefix() -> String {
    std::env::var("QUEUE_PREFIX").unwrap_or_else(|_| {
        let t = table();
        t.strip_suffix("-events").unwrap_or(&t).to_string()
    })
}

/// Wait for the dead letter of one event on a queue (by the envelope's eventId in the
/// body), delete it, and return its body and its message attributes (`failureReason`, ...).
/// Other messages are left on the queue (they reappear after a short visibility timeout).
pub async fn take_dead_letter(
    sqs: &aws_sdk_sqs::Client,
    queue_name: &str,
    event_id: &str,
    timeout: Duration,
) -> Option<(Value, std::collections::HashMap<String, String>)> {
    let url = queue_url(sqs, queue_name).await;
    let start = Instant::now();
    while start.elapsed() < timeout {
        let out = sqs
            .receive_message()
            .queue_url(&url)
            .max_number_of_messages(10)
            .visibility_timeout(2)
            .wait_time_seconds(1)
            .message_attribute_names("All")
            .send()
            .await
            .expect("ReceiveMessage");
        for m in out.messages() {
            let body: Value = serde_json::from_str(m.body().unwrap_or("")).unwrap_or(Value::Null);
            if body["eventId"] != event_id {
                // Not ours: visible again at once, so the test's next read of the queue
                // (a list, a redrive) sees it.
                if let Some(h) = m.receipt_handle() {
                    let _ = sqs
                        .change_message_visibility()
                        .queue_url(&url)
                        .receipt_handle(h)
                        .visibility_timeout(0)
                        .send()
                        .await;
                }
                continue;
            }
            let attrs = m
                .message_attributes()
                .map(|a| {
                    a.iter()
                        .map(|(k, v)| (k.clone(), v.string_value().unwrap_or("").to_string()))
                        .collect()
                })
                .unwrap_or_default();
            if let Some(h) = m.receipt_handle() {
                let _ = sqs
                    .delete_message()
                    .queue_url(&url)
                    .receipt_handle(h)
                    .send()
                    .await;
            }
            return Some((body, attrs));
        }
    }
    None
}

/// The `evctl` binary (`EVCTL_BIN`, default `target/debug/evctl`).
pub fn evctl_bin() -> std::path::PathBuf {
    std::env::var("EVCTL_BIN")
        .map(Into::into)
        .unwrap_or_else(|_| {
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/debug/evctl")
        })
}

/// What an `evctl` run gave: exit code, stdout, stderr, and stdout as JSON (Null if not).
#[derive(Debug, Clone)]
pub struct EvctlRun {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
    pub json: Value,
}

/// An `evctl` command against a runner of the test's own (its API, tenant and resource
/// prefix), with `args` after the global options; stdin closed, stdout and stderr for the
/// caller to choose.
pub fn evctl_command(runner: &RunnerProcess, tenant: &str, args: &[&str]) -> std::process::Command {
    let mut cmd = std::process::Command::new(evctl_bin());
    cmd.args([
        "--api",
        &format!("http://127.0.0.1:{}", runner.port),
        "--tenant",
        tenant,
        "--prefix",
        &runner.prefix,
    ])
    .args(args)
    .stdin(std::process::Stdio::null());
    cmd
}

/// Run `evctl` as a real process against a runner of the test's own (its API, tenant and
/// resource prefix), with `args` after the global options.
pub async fn evctl(runner: &RunnerProcess, tenant: &str, args: &[&str]) -> EvctlRun {
    let mut cmd = evctl_command(runner, tenant, args);
    let out = tokio::task::spawn_blocking(move || {
        cmd.output()
            .expect("run evctl (build it first: cargo build -p evctl)")
    })
    .await
    .expect("evctl thread");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    EvctlRun {
        code: out.status.code().unwrap_or(-1),
        json: serde_json::from_str(stdout.trim()).unwrap_or(Value::Null),
        stdout,
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// The eventIds of every message on a queue, sorted; each message is hidden for
/// `visibility_secs` (a peek when short; for the rest of a test when long).
pub async fn event_ids_on(
    sqs: &aws_sdk_sqs::Client,
    url: &str,
    visibility_secs: i32,
) -> Vec<String> {
    let mut ids = Vec::new();
    let mut empty = 0;
    while empty < 2 {
        let out = sqs
            .receive_message()
            .queue_url(url)
            .max_number_of_messages(10)
            .visibility_timeout(visibility_secs)
            .wait_time_seconds(1)
            .send()
            .await
            .expect("ReceiveMessage");
        if out.messages().is_empty() {
            empty += 1;
        }
        for m in out.messages() {
            let body: Value = serde_json::from_str(m.body().unwrap_or("")).unwrap_or(Value::Null);
            ids.push(body["eventId"].as_str().unwrap_or("?").to_string());
        }
    }
    ids.sort();
    ids
}

/// The tenant's events of one type, all of them (`GET /events?type=` over every time).
pub async fn events_of_type(api: &Api, event_type: &str) -> Vec<Value> {
    let r = api
        .get(&format!(
            "/events?type={event_type}&from=2000-01-01T00:00:00Z&to=2100-01-01T00:00:00Z&limit=1000"
        ))
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    r.body["events"].as_array().cloned().unwrap_or_default()
}

/// The independent webhook receiver (`tests/receiver/receiver.py`): a Python process that
/// verifies every request's Standard Webhooks signature with the reference library from
/// PyPI, records every request, and misbehaves on command ([`ReceiverMode`], [`Receiver::down`]).
/// Killed when dropped.
pub struct Receiver {
    child: std::process::Child,
    /// The port deliveries go to.
    pub hook_port: u16,
    control_port: u16,
    client: Client<HttpConnector, Full<Bytes>>,
}

/// One request the receiver got, as it recorded it.
#[derive(Debug, Clone)]
pub struct ReceivedRequest {
    pub path: String,
    /// Header names in lower case.
    pub headers: std::collections::BTreeMap<String, String>,
    pub body: String,
    /// The body as JSON (Null when it is not JSON).
    pub json: Value,
    /// The signature verified with one of the receiver's secrets (and a fresh timestamp).
    pub verified: bool,
    /// Why it did not verify.
    pub error: Option<String>,
    /// The status the receiver answered.
    pub status: u16,
}

impl ReceivedRequest {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(String::as_str)
    }

    /// Answered with a 2xx: a delivery the receiver accepted.
    pub fn accepted(&self) -> bool {
        (200..300).contains(&self.status)
    }
}

/// How the receiver answers verified requests. Unset fields keep the receiver's current
/// value; [`ReceiverMode::normal`] resets everything.
#[derive(Debug, Clone, Default)]
pub struct ReceiverMode {
    /// Answer 500 to this share of requests (0.0 to 1.0).
    pub fail_rate: Option<f64>,
    /// Answer every request with this status (e.g. 410); `Some(None)` clears it.
    pub status: Option<Option<u16>>,
    /// The `Retry-After` sent with failures; `Some(None)` clears it.
    pub retry_after: Option<Option<String>>,
    /// Wait this long before answering.
    pub delay_ms: Option<u64>,
    /// Reseed the random failures (reproducible runs).
    pub seed: Option<u64>,
}

impl ReceiverMode {
    /// 200 to every verified request, at once.
    pub fn normal() -> ReceiverMode {
        ReceiverMode {
            fail_rate: Some(0.0),
            status: Some(None),
            retry_after: Some(None),
            delay_ms: Some(0),
            seed: None,
        }
    }

    /// 500 to `share` of the requests, reproducibly from `seed`.
    pub fn failing(share: f64, seed: u64) -> ReceiverMode {
        ReceiverMode {
            fail_rate: Some(share),
            seed: Some(seed),
            ..ReceiverMode::normal()
        }
    }

    /// This status to every request.
    pub fn status(status: u16) -> ReceiverMode {
        ReceiverMode {
            status: Some(Some(status)),
            ..ReceiverMode::normal()
        }
    }
}

impl Receiver {
    /// Install the receiver's venv if needed (tests/receiver/install.sh), start it with
    /// these `whsec_` secrets and wait for its ports.
    pub async fn start(secrets: &[&str]) -> Receiver {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("receiver");
        let script = dir.join("install.sh");
        let install = tokio::task::spawn_blocking(move || {
            std::process::Command::new("bash")
                .arg(script)
                .stdin(std::process::Stdio::null())
                .status()
        })
        .await
        .expect("join")
        .expect("run tests/receiver/install.sh");
        assert!(install.success(), "tests/receiver/install.sh failed");
        let log =
            std::env::temp_dir().join(format!("receiver-{}.log", uuid::Uuid::new_v4().simple()));
        let mut cmd = std::process::Command::new(dir.join(".venv/bin/python"));
        cmd.arg(dir.join("receiver.py")).arg("--log").arg(&log);
        for secret in secrets {
            cmd.args(["--secret", secret]);
        }
        let mut child = cmd
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::inherit())
            .spawn()
            .expect("start tests/receiver/receiver.py");
        let stdout = child.stdout.take().expect("receiver stdout");
        let first_line = tokio::task::spawn_blocking(move || {
            let mut line = String::new();
            std::io::BufRead::read_line(&mut std::io::BufReader::new(stdout), &mut line)
                .map(|_| line)
        });
        let line = tokio::time::timeout(Duration::from_secs(30), first_line)
            .await
            .expect("the receiver printed its ports within 30 s")
            .expect("join")
            .expect("read the receiver's ports");
        let ports: Value =
            serde_json::from_str(&line).unwrap_or_else(|e| panic!("receiver said {line:?}: {e}"));
        let port = |name: &str| {
            ports[name]
                .as_u64()
                .and_then(|p| u16::try_from(p).ok())
                .expect("a port")
        };
        Receiver {
            hook_port: port("hook"),
            control_port: port("control"),
            child,
            client: Client::builder(TokioExecutor::new()).build_http(),
        }
    }

    /// The URL of a delivery endpoint on the receiver (`path` starts with `/`).
    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.hook_port)
    }

    async fn control(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let request = http::Request::builder()
            .method(method)
            .uri(format!("http://127.0.0.1:{}{path}", self.control_port))
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(
                body.map(|b| b.to_string()).unwrap_or_default(),
            )))
            .expect("control request");
        let response = self
            .client
            .request(request)
            .await
            .unwrap_or_else(|e| panic!("receiver control {path}: {e}"));
        let status = response.status();
        let bytes = response
            .into_body()
            .collect()
            .await
            .expect("control body")
            .to_bytes();
        let value: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        assert!(
            status.is_success(),
            "receiver control {path}: {status} {value}"
        );
        value
    }

    /// Every request received so far, in arrival order.
    pub async fn requests(&self) -> Vec<ReceivedRequest> {
        let all = self.control("GET", "/requests", None).await;
        all.as_array()
            .expect("a list of requests")
            .iter()
            .map(|r| ReceivedRequest {
                path: r["path"].as_str().unwrap_or_default().to_string(),
                headers: r["headers"]
                    .as_object()
                    .map(|h| {
                        h.iter()
                            .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
                            .collect()
                    })
                    .unwrap_or_default(),
                body: r["body"].as_str().unwrap_or_default().to_string(),
                json: r["json"].clone(),
                verified: r["verified"].as_bool().unwrap_or(false),
                error: r["error"].as_str().map(str::to_string),
                status: r["status"]
                    .as_u64()
                    .and_then(|s| u16::try_from(s).ok())
                    .unwrap_or(0),
            })
            .collect()
    }

    /// Wait until `done` holds for the requests received (polling), or panic after `timeout`.
    pub async fn wait_for(
        &self,
        timeout: Duration,
        done: impl Fn(&[ReceivedRequest]) -> bool,
    ) -> Vec<ReceivedRequest> {
        let start = Instant::now();
        loop {
            let requests = self.requests().await;
            if done(&requests) {
                return requests;
            }
            if start.elapsed() > timeout {
                panic!(
                    "receiver: condition not met within {timeout:?}; {} requests received",
                    requests.len()
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Change how the receiver answers.
    pub async fn set_mode(&self, mode: &ReceiverMode) {
        let mut body = serde_json::Map::new();
        if let Some(rate) = mode.fail_rate {
            body.insert("failRate".into(), rate.into());
        }
        if let Some(status) = mode.status {
            body.insert("status".into(), status.map_or(Value::Null, Value::from));
        }
        if let Some(retry_after) = &mode.retry_after {
            body.insert(
                "retryAfter".into(),
                retry_after.clone().map_or(Value::Null, Value::from),
            );
        }
        if let Some(delay) = mode.delay_ms {
            body.insert("delayMs".into(), delay.into());
        }
        if let Some(seed) = mode.seed {
            body.insert("seed".into(), seed.into());
        }
        self.control("POST", "/mode", Some(Value::Object(body)))
            .await;
    }

    /// Stop accepting connections on the hook port (they are refused) until [`Receiver::up`].
    pub async fn down(&self) {
        self.control("POST", "/down", None).await;
    }

    /// Accept connections on the hook port again (the same port).
    pub async fn up(&self) {
        self.control("POST", "/up", None).await;
    }

    /// Replace the secrets signatures are verified with (e.g. after a rotation), for every
    /// path (and forget any per-path secrets).
    pub async fn set_secrets(&self, secrets: &[&str]) {
        self.control(
            "POST",
            "/secrets",
            Some(serde_json::json!({ "secrets": secrets })),
        )
        .await;
    }

    /// Verify requests to each path with that path's secrets only (one subscription per
    /// path: a delivery signed with another subscription's secret does not verify); other
    /// paths with `secrets`.
    pub async fn set_secrets_by_path(&self, secrets: &[&str], by_path: &[(&str, &[&str])]) {
        let by_path: serde_json::Map<String, Value> = by_path
            .iter()
            .map(|(path, s)| (path.to_string(), serde_json::json!(s)))
            .collect();
        self.control(
            "POST",
            "/secrets",
            Some(serde_json::json!({ "secrets": secrets, "byPath": by_path })),
        )
        .await;
    }

    /// Forget the requests received so far.
    pub async fn clear(&self) {
        self.control("POST", "/clear", None).await;
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
