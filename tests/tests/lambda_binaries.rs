//! The release bootstraps themselves (`target/release/{ingest,dispatch,payment-handler}`,
//! built by `localstack/run-tests.sh`), driven through a small emulator of the Lambda
//! Runtime API written here, with the AWS event fixtures shipped in the aws_lambda_events
//! crate and the project's own (`tests/fixtures/`), against LocalStack resources of their own
//! (`local-runner provision --prefix ...`, no pollers: what the binaries do is all there is).

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue};
use axum::routing::{get, post};
use axum::{Json, Router};
use event_adapters::store::layout;
use integration_tests::{aws, queue_depth, RunnerProcess};
use serde_json::{json, Value};
use tokio::sync::{mpsc, oneshot, Mutex};

/// What the function answered: `Ok(response)` or `Err(error body)`.
type Answer = Result<Value, Value>;

struct Emulator {
    next: Mutex<mpsc::Receiver<(String, String)>>,
    waiting: Mutex<HashMap<String, oneshot::Sender<Answer>>>,
    init_error: Mutex<Option<String>>,
}

async fn next(State(emu): State<Arc<Emulator>>) -> (HeaderMap, String) {
    let (id, body) = emu.next.lock().await.recv().await.unwrap_or_default();
    let mut h = HeaderMap::new();
    let deadline = chrono::Utc::now().timestamp_millis() + 30_000;
    let hv = |v: String| HeaderValue::from_str(&v).expect("header");
    h.insert("lambda-runtime-aws-request-id", hv(id));
    h.insert("lambda-runtime-deadline-ms", hv(deadline.to_string()));
    h.insert(
        "lambda-runtime-invoked-function-arn",
        hv("arn:aws:lambda:us-east-1:000000000000:function:test".into()),
    );
    h.insert(
        "lambda-runtime-trace-id",
        hv("Root=1-00000000-000000000000000000000000".into()),
    );
    h.insert("content-type", hv("application/json".into()));
    (h, body)
}

async fn respond(
    State(emu): State<Arc<Emulator>>,
    Path(id): Path<String>,
    body: String,
) -> &'static str {
    if let Some(tx) = emu.waiting.lock().await.remove(&id) {
        let _ = tx.send(Ok(
            serde_json::from_str(&body).unwrap_or(Value::String(body))
        ));
    }
    "{}"
}

async fn error(
    State(emu): State<Arc<Emulator>>,
    Path(id): Path<String>,
    body: String,
) -> &'static str {
    if let Some(tx) = emu.waiting.lock().await.remove(&id) {
        let _ = tx.send(Err(
            serde_json::from_str(&body).unwrap_or(Value::String(body))
        ));
    }
    "{}"
}

async fn init_error(State(emu): State<Arc<Emulator>>, body: String) -> &'static str {
    *emu.init_error.lock().await = Some(body);
    "{}"
}

async fn register_extension() -> (HeaderMap, Json<Value>) {
    let mut h = HeaderMap::new();
    h.insert(
        "lambda-extension-identifier",
        HeaderValue::from_static("e7a1f0c2-0000-4000-8000-000000000001"),
    );
    (
        h,
        Json(json!({"functionName": "test", "functionVersion": "$LATEST", "handler": "bootstrap"})),
    )
}

/// One function process behind its own runtime API.
struct Function {
    name: String,
    emu: Arc<Emulator>,
    tx: mpsc::Sender<(String, String)>,
    child: std::process::Child,
    log: PathBuf,
}

impl Function {
    async fn start(name: &str, env: &[(String, String)]) -> Function {
        let dir = std::env::var("LAMBDA_BIN_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|_| {
                std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/release")
            });
        let bin = dir.join(name);
        assert!(
            bin.exists(),
            "{} is missing: build the bootstraps first (cargo build --release -p ingest -p dispatch -p payment-handler; localstack/run-tests.sh does)",
            bin.display()
        );
        let (tx, rx) = mpsc::channel(16);
        let emu = Arc::new(Emulator {
            next: Mutex::new(rx),
            waiting: Mutex::new(HashMap::new()),
            init_error: Mutex::new(None),
        });
        let app = Router::new()
            .route("/2018-06-01/runtime/invocation/next", get(next))
            .route(
                "/2018-06-01/runtime/invocation/{id}/response",
                post(respond),
            )
            .route("/2018-06-01/runtime/invocation/{id}/error", post(error))
            .route("/2018-06-01/runtime/init/error", post(init_error))
            // The Extensions API, as far as a function registering an internal extension
            // uses it: Lambda then sends the process SIGTERM before shutting it down.
            .route("/2020-01-01/extension/register", post(register_extension))
            .route(
                "/2020-01-01/extension/event/next",
                get(std::future::pending::<()>),
            )
            .with_state(emu.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        let log = std::env::temp_dir().join(format!(
            "lambda-{name}-{}.log",
            uuid::Uuid::new_v4().simple()
        ));
        let file = std::fs::File::create(&log).unwrap();
        let mut cmd = std::process::Command::new(&bin);
        cmd.env("AWS_LAMBDA_RUNTIME_API", addr.to_string())
            .env("AWS_LAMBDA_FUNCTION_NAME", name)
            .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "256")
            .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
            .env("AWS_LAMBDA_LOG_GROUP_NAME", format!("/aws/lambda/{name}"))
            .env("AWS_LAMBDA_LOG_STREAM_NAME", "test")
            .env("AWS_LAMBDA_INITIALIZATION_TYPE", "on-demand")
            .env("_HANDLER", "bootstrap")
            .env("RUST_LOG", "info")
            // As in infra/template.yaml: REST v1 paths carry the stage (`/prod/...`).
            .env("AWS_LAMBDA_HTTP_IGNORE_STAGE_IN_PATH", "true")
            .stdin(std::process::Stdio::null())
            .stdout(file.try_clone().unwrap())
            .stderr(file);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let child = cmd.spawn().expect("start the bootstrap");
        Function {
            name: name.into(),
            emu,
            tx,
            child,
            log,
        }
    }

    async fn invoke(&self, event: &Value) -> Answer {
        let id = uuid::Uuid::new_v4().to_string();
        let (tx, rx) = oneshot::channel();
        self.emu.waiting.lock().await.insert(id.clone(), tx);
        self.tx.send((id, event.to_string())).await.unwrap();
        match tokio::time::timeout(Duration::from_secs(90), rx).await {
            Ok(Ok(a)) => a,
            _ => panic!(
                "{} did not answer (init error: {:?}); log:\n{}",
                self.name,
                self.emu.init_error.lock().await,
                self.logs()
            ),
        }
    }

    fn logs(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// SIGTERM, as Lambda sends it before shutting an instance down, and the exit status.
    async fn terminate(&mut self) -> std::process::ExitStatus {
        let pid = self.child.id().to_string();
        let sent = std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("kill");
        assert!(sent.success());
        for _ in 0..100 {
            if let Some(status) = self.child.try_wait().expect("the process's status") {
                return status;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!(
            "{} did not exit on SIGTERM; log:\n{}",
            self.name,
            self.logs()
        );
    }
}

impl Drop for Function {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A fixture shipped in the aws_lambda_events crate source.
fn aws_fixture(name: &str) -> Value {
    let home = std::env::var("CARGO_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|_| PathBuf::from(std::env::var("HOME").unwrap()).join(".cargo"));
    let src = home.join("registry/src");
    for index in std::fs::read_dir(&src).expect("cargo registry sources") {
        let dir = index.unwrap().path();
        let mut versions: Vec<PathBuf> = std::fs::read_dir(&dir)
            .unwrap()
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with("aws_lambda_events-1."))
            })
            .collect();
        versions.sort();
        if let Some(v) = versions.last() {
            let text = std::fs::read_to_string(v.join("src/fixtures").join(name)).expect("fixture");
            return serde_json::from_str(&text).unwrap();
        }
    }
    panic!(
        "aws_lambda_events sources not found under {}",
        src.display()
    );
}

/// A project fixture from tests/fixtures, its tenant and loan replaced.
fn fixture(name: &str, tenant: &str, loan: &str) -> Value {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures")
        .join(name);
    let text = std::fs::read_to_string(path).unwrap();
    serde_json::from_str(
        &text
            .replace("demo-fixture", tenant)
            .replace("L-FIXTURE-1", loan),
    )
    .unwrap()
}

fn body_of(resp: &Value) -> Value {
    serde_json::from_str(resp["body"].as_str().unwrap_or("null")).unwrap_or(Value::Null)
}

#[tokio::test]
async fn release_bootstraps_answer_aws_events_through_the_runtime_api() {
    let prefix = format!("bins-{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
    let out = std::process::Command::new(RunnerProcess::binary())
        .args(["provision", "--prefix", &prefix])
        .output()
        .expect("local-runner provision");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let resources: Value =
        serde_json::from_slice(&out.stdout).expect("provision prints its resources");
    struct Teardown(String);
    impl Drop for Teardown {
        fn drop(&mut self) {
            let _ = std::process::Command::new(RunnerProcess::binary())
                .args(["teardown", "--prefix", &self.0])
                .output();
        }
    }
    let _teardown = Teardown(prefix.clone());
    let mut env = vec![(
        "EVENTS_TABLE".to_string(),
        resources["table"].as_str().unwrap().to_string(),
    )];
    let mut payment = (String::new(), String::new());
    for q in resources["queues"].as_array().unwrap() {
        let d = q["domain"].as_str().unwrap();
        let (url, dlq) = (
            q["queueUrl"].as_str().unwrap(),
            q["dlqUrl"].as_str().unwrap(),
        );
        env.push((format!("QUEUE_URL_{}", d.to_ascii_uppercase()), url.into()));
        env.push((format!("DLQ_URL_{}", d.to_ascii_uppercase()), dlq.into()));
        if d == "payment" {
            payment = (url.to_string(), dlq.to_string());
        }
    }
    let tenant = format!("t-{}", &uuid::Uuid::new_v4().simple().to_string()[..12]);
    let loan = format!("L-{}", &uuid::Uuid::new_v4().simple().to_string()[..12]);

    // ingest: API Gateway v2 (JWT claim tenantId) and v1 (Lambda authorizer) requests.
    let ingest = Function::start("ingest", &env).await;
    let r = ingest
        .invoke(&fixture("apigw-v2-post-events.json", &tenant, &loan))
        .await
        .expect("ingest answers");
    assert_eq!(r["statusCode"], 201, "{r}");
    let stored = body_of(&r)["events"].as_array().cloned().unwrap();
    assert_eq!(stored.len(), 2);
    assert_eq!(stored[1]["metadata"]["tenantId"], json!(tenant));
    assert_eq!(stored[1]["sequence"], 2);
    // The principal is the token's subject.
    assert_eq!(stored[1]["metadata"]["principal"], "user-1");
    let r = ingest
        .invoke(&fixture("apigw-v2-post-events.json", &tenant, &loan))
        .await
        .unwrap();
    assert_eq!(r["statusCode"], 200, "an exact resend: {r}");
    let r = ingest
        .invoke(&fixture("apigw-v2-get-history.json", &tenant, &loan))
        .await
        .unwrap();
    assert_eq!(
        (
            r["statusCode"].clone(),
            body_of(&r)["events"].as_array().map(Vec::len)
        ),
        (json!(200), Some(2)),
        "{r}"
    );
    // On a named stage API Gateway puts it in the path (`/prod/aggregates/...`): the same
    // route answers.
    let mut staged = fixture("apigw-v2-get-history.json", &tenant, &loan);
    for at in ["/rawPath", "/requestContext/http/path"] {
        let path = staged
            .pointer(at)
            .and_then(Value::as_str)
            .unwrap()
            .to_string();
        *staged.pointer_mut(at).unwrap() = json!(format!("/prod{path}"));
    }
    staged["requestContext"]["stage"] = json!("prod");
    let r = ingest.invoke(&staged).await.unwrap();
    assert_eq!(
        (
            r["statusCode"].clone(),
            body_of(&r)["events"].as_array().map(Vec::len)
        ),
        (json!(200), Some(2)),
        "on the prod stage: {r}"
    );
    let r = ingest
        .invoke(&fixture("apigw-v1-get-state.json", &tenant, &loan))
        .await
        .unwrap();
    assert_eq!(r["statusCode"], 200, "{r}");
    assert_eq!(body_of(&r)["aggregateId"], json!(loan));
    // The crate's own fixtures: routes we do not have, answered in the one error shape.
    for name in [
        "example-apigw-v2-request-jwt-authorizer.json",
        "example-apigw-request.json",
    ] {
        let r = ingest.invoke(&aws_fixture(name)).await.unwrap();
        assert_eq!(r["statusCode"], 404, "{name}: {r}");
        assert_eq!(body_of(&r)["error"]["code"], "not_found", "{name}: {r}");
    }
    // A v2 request without the tenant claim is refused.
    let mut no_tenant = fixture("apigw-v2-post-events.json", &tenant, &loan);
    no_tenant["requestContext"]["authorizer"]["jwt"]["claims"] = json!({"sub": "user-1"});
    let r = ingest.invoke(&no_tenant).await.unwrap();
    assert_eq!(r["statusCode"], 401, "{r}");
    // A token without the route's scope is refused, and the local headers do not count.
    let mut no_scope = fixture("apigw-v2-post-events.json", &tenant, &loan);
    no_scope["requestContext"]["authorizer"]["jwt"]["claims"]["scope"] = json!("events:read");
    no_scope["headers"]["x-scopes"] = json!("events:write");
    let r = ingest.invoke(&no_scope).await.unwrap();
    assert_eq!(r["statusCode"], 403, "{r}");
    assert_eq!(body_of(&r)["error"]["code"], "forbidden", "{r}");
    // The console's pages, as the template routes them: no authorizer, on the named stage
    // (`/prod/...`): the shell names its assets under the stage and the assets answer.
    let console = |path: &str| {
        let mut e = fixture("apigw-v2-get-history.json", &tenant, &loan);
        e["rawPath"] = json!(format!("/prod{path}"));
        e["rawQueryString"] = json!("");
        e["queryStringParameters"] = json!({});
        e["routeKey"] = json!("GET /console/{proxy+}");
        e["requestContext"]["routeKey"] = json!("GET /console/{proxy+}");
        e["requestContext"]["stage"] = json!("prod");
        e["requestContext"]["http"]["path"] = json!(format!("/prod{path}"));
        e["requestContext"]
            .as_object_mut()
            .unwrap()
            .remove("authorizer");
        e
    };
    let r = ingest.invoke(&console("/console/handlers")).await.unwrap();
    assert_eq!(r["statusCode"], 200, "{r}");
    let shell = r["body"].as_str().unwrap_or_default();
    assert!(
        shell.contains(r#"src="/prod/console/assets/app.js""#)
            && shell.contains(r#"data-base="/prod""#),
        "{shell}"
    );
    let r = ingest
        .invoke(&console("/console/assets/app.js"))
        .await
        .unwrap();
    assert_eq!(r["statusCode"], 200, "{r}");
    // A path climbing out of the console reaches no data: lambda_http resolves `..` (the
    // router then sees `/events`), and a data route without the authorizer's claims (the
    // console's routes have no authorizer) is refused.
    let r = ingest.invoke(&console("/console/../events")).await.unwrap();
    let code = body_of(&r)["error"]["code"].clone();
    assert!(
        (r["statusCode"] == 401 && code == "unauthorized")
            || (r["statusCode"] == 404 && code == "not_found"),
        "{r}"
    );
    assert!(
        ingest.logs().contains("\"EventsIngested\":2"),
        "no EMF line:\n{}",
        ingest.logs()
    );

    // dispatch: the crate's stream fixture (no event items: nothing to do), then a stream
    // record of the stored Loan.Funded, which lands on the payment queue.
    let dispatch = Function::start("dispatch", &env).await;
    let r = dispatch
        .invoke(&aws_fixture("example-dynamodb-event.json"))
        .await
        .expect("dispatch answers");
    assert_eq!(r["batchItemFailures"], json!([]), "{r}");
    let mut stream = fixture("dynamodb-stream-loan-funded.json", &tenant, &loan);
    stream["Records"][0]["dynamodb"]["NewImage"]["envelope"]["S"] = json!(stored[1].to_string());
    let r = dispatch.invoke(&stream).await.unwrap();
    assert_eq!(r["batchItemFailures"], json!([]), "{r}");
    let clients = aws().await;
    assert_eq!(
        queue_depth(&clients.sqs, &payment.0).await.0,
        1,
        "{}",
        dispatch.logs()
    );

    // payment-handler: the crate's SQS fixture (not an envelope: dead-lettered, acknowledged),
    // then the stored Loan.Funded, which appends the schedule and the status change.
    let mut handler = Function::start("payment-handler", &env).await;
    let r = handler
        .invoke(&aws_fixture("example-sqs-event.json"))
        .await
        .expect("handler answers");
    assert_eq!(r, json!({"batchItemFailures": []}), "{}", handler.logs());
    assert!(
        queue_depth(&clients.sqs, &payment.1).await.0 >= 1,
        "{}",
        handler.logs()
    );
    let mut sqs = fixture("sqs-loan-funded.json", &tenant, &loan);
    sqs["Records"][0]["body"] = json!(stored[1].to_string());
    let r = handler.invoke(&sqs).await.unwrap();
    assert_eq!(r, json!({"batchItemFailures": []}), "{}", handler.logs());
    let r = ingest
        .invoke(&fixture("apigw-v2-get-history.json", &tenant, &loan))
        .await
        .unwrap();
    let types: Vec<Value> = body_of(&r)["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["eventType"].clone())
        .collect();
    assert_eq!(
        types,
        [
            json!("Loan.Created"),
            json!("Loan.Funded"),
            json!("PaymentSchedule.Generated"),
            json!("Loan.StatusChanged")
        ]
    );
    // Logs on Lambda are JSON lines.
    let line = handler
        .logs()
        .lines()
        .find(|l| l.contains("\"handled\""))
        .map(str::to_string)
        .unwrap_or_default();
    let parsed: Value = serde_json::from_str(&line).unwrap_or(Value::Null);
    assert!(
        parsed.is_object(),
        "not a JSON log line: {line:?}\n{}",
        handler.logs()
    );

    // Statistics: the first batch of an instance writes them at once; a batch within the
    // next seconds is gathered, and written when Lambda shuts the instance down (SIGTERM).
    let table = resources["table"].as_str().unwrap().to_string();
    let stats = |handler: &'static str| {
        let (ddb, table) = (clients.dynamodb.clone(), table.clone());
        async move {
            let day = chrono::Utc::now().format("%Y-%m-%d").to_string();
            let item = ddb
                .get_item()
                .table_name(table)
                .set_key(Some(layout::key(layout::stats_pk(handler, &day), 0)))
                .consistent_read(true)
                .send()
                .await
                .expect("GetItem")
                .item()
                .cloned();
            item.and_then(|i| i.get("successes").and_then(|v| v.as_n().ok()).cloned())
                .map(|n| n.parse::<u64>().expect("a count"))
        }
    };
    assert_eq!(
        stats("payment-schedule").await,
        Some(1),
        "{}",
        handler.logs()
    );
    let mut post = fixture("apigw-v2-post-events.json", &tenant, &loan);
    post["body"] = json!(json!({"events": [{
        "eventType": "Payment.Received", "aggregateType": "Loan", "aggregateId": loan,
        "payload": {"paymentId": "P-1", "loanId": loan, "amount": "900.00", "method": "ACH",
            "receivedAt": "2026-03-01T12:00:00Z"}}]})
    .to_string());
    let r = ingest.invoke(&post).await.unwrap();
    assert_eq!(r["statusCode"], 201, "{r}");
    let payment_received = body_of(&r)["events"][0].clone();
    let mut sqs = fixture("sqs-loan-funded.json", &tenant, &loan);
    sqs["Records"][0]["body"] = json!(payment_received.to_string());
    let r = handler.invoke(&sqs).await.unwrap();
    assert_eq!(r, json!({"batchItemFailures": []}), "{}", handler.logs());
    assert_eq!(
        stats("payment-application").await,
        None,
        "gathered, not yet written: {}",
        handler.logs()
    );
    let status = handler.terminate().await;
    assert!(status.success(), "{status:?}: {}", handler.logs());
    assert_eq!(
        stats("payment-application").await,
        Some(1),
        "written on shutdown: {}",
        handler.logs()
    );
}
