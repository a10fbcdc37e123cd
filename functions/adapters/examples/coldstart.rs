//! Cold start and footprint of release bootstraps under a minimal Lambda Runtime API
//! emulator: process start to the first answered invocation, time to the first
//! `/invocation/next` (initialisation done), peak RSS (`VmHWM`) and the binary size; the
//! median of `--runs` starts (default 20) per function.
//!
//! ```sh
//! cargo build --release -p ingest -p dispatch -p payment-handler
//! cargo run -p event-adapters --example coldstart -- target/release/ingest target/release/dispatch target/release/payment-handler
//! ```
//!
//! Each function gets an invocation it answers without a network call (so the figure is
//! the process's own cost, not the emulator's): ingest a `POST /events` that fails
//! validation (400), dispatch a stream batch with one MODIFY record, a domain handler an
//! empty SQS batch. SDK clients are built (lazily: no call before the first event),
//! credentials and region come from the environment, as on Lambda.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

fn event_for(name: &str) -> String {
    if name.contains("ingest") {
        serde_json::json!({
            "version": "2.0", "routeKey": "POST /events", "rawPath": "/events", "rawQueryString": "",
            "headers": {"content-type": "application/json", "x-tenant-id": "bench"},
            "requestContext": {"accountId": "000000000000", "apiId": "bench", "domainName": "localhost",
                "domainPrefix": "localhost", "http": {"method": "POST", "path": "/events", "protocol": "HTTP/1.1",
                "sourceIp": "127.0.0.1", "userAgent": "coldstart"}, "requestId": "r-1", "routeKey": "POST /events",
                "stage": "$default", "time": "01/Mar/2026:10:00:00 +0000", "timeEpoch": 1772359200000u64,
                "authorizer": {"lambda": {"tenantId": "bench"}}},
            "body": "{\"eventType\": \"Loan.Funded\", \"aggregateType\": \"Loan\", \"aggregateId\": \"L-1\", \"payload\": {}}",
            "isBase64Encoded": false
        })
        .to_string()
    } else if name.contains("dispatch") {
        serde_json::json!({"Records": [{"eventID": "1", "eventName": "MODIFY", "eventVersion": "1.1",
            "eventSource": "aws:dynamodb", "awsRegion": "us-east-1",
            "dynamodb": {"ApproximateCreationDateTime": 1772359200.0, "Keys": {"pk": {"S": "x"}, "sk": {"N": "0"}},
                "NewImage": {"pk": {"S": "x"}, "sk": {"N": "0"}, "kind": {"S": "processing"}},
                "SequenceNumber": "100", "SizeBytes": 10, "StreamViewType": "NEW_IMAGE"},
            "eventSourceARN": "arn:aws:dynamodb:us-east-1:000000000000:table/t/stream/2026"}]})
        .to_string()
    } else {
        r#"{"Records": []}"#.to_string()
    }
}

struct Request {
    method: String,
    path: String,
}

fn read_request(r: &mut BufReader<TcpStream>) -> Option<Request> {
    let mut line = String::new();
    if r.read_line(&mut line).ok()? == 0 {
        return None;
    }
    let mut parts = line.split_whitespace();
    let method = parts.next()?.to_string();
    let path = parts.next()?.to_string();
    let mut len = 0usize;
    loop {
        let mut h = String::new();
        r.read_line(&mut h).ok()?;
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            if k.eq_ignore_ascii_case("content-length") {
                len = v.trim().parse().unwrap_or(0);
            }
        }
    }
    let mut body = vec![0; len];
    r.read_exact(&mut body).ok()?;
    Some(Request { method, path })
}

#[derive(Debug)]
enum Seen {
    Next(Instant),
    Answered(Instant, bool),
}

/// Serve the Runtime API on one connection until it closes.
fn serve(stream: TcpStream, event: String, tx: mpsc::Sender<Seen>) {
    let mut w = stream.try_clone().expect("clone");
    let mut r = BufReader::new(stream);
    let mut served = false;
    while let Some(req) = read_request(&mut r) {
        if req.path.contains("/extension/") {
            // No Extensions API here, as in an emulator without one: the domain functions'
            // shutdown hook is not registered and they run on.
            let _ = w.write_all(b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n");
            continue;
        }
        if req.method == "GET" && req.path.ends_with("/invocation/next") {
            let _ = tx.send(Seen::Next(Instant::now()));
            if served {
                // Later polls: hold the connection (the process is killed meanwhile).
                std::thread::sleep(Duration::from_secs(30));
                return;
            }
            served = true;
            let deadline = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_millis()
                + 30_000;
            let head = format!(
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\nlambda-runtime-aws-request-id: req-1\r\n\
                 lambda-runtime-deadline-ms: {deadline}\r\nlambda-runtime-invoked-function-arn: arn:aws:lambda:us-east-1:000000000000:function:bench\r\n\
                 lambda-runtime-trace-id: Root=1-00000000-000000000000000000000000\r\ncontent-length: {}\r\n\r\n",
                event.len()
            );
            let _ = w.write_all(head.as_bytes());
            let _ = w.write_all(event.as_bytes());
        } else {
            let ok = req.path.ends_with("/response");
            let _ = tx.send(Seen::Answered(Instant::now(), ok));
            let _ = w.write_all(b"HTTP/1.1 202 Accepted\r\ncontent-length: 2\r\n\r\n{}");
        }
    }
}

struct Run {
    first_next_ms: f64,
    answered_ms: f64,
    hwm_kb: u64,
}

fn vm_hwm_kb(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

fn one_start(
    bin: &Path,
    name: &str,
    event: &str,
    extra_env: &[(String, String)],
) -> Result<Run, String> {
    let listener = TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    let (tx, rx) = mpsc::channel();
    let event = event.to_string();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let (event, tx) = (event.clone(), tx.clone());
            std::thread::spawn(move || serve(stream, event, tx));
        }
    });
    let domain = name.trim_end_matches("-handler").to_ascii_uppercase();
    let start = Instant::now();
    let mut child = Command::new(bin)
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .env("AWS_LAMBDA_RUNTIME_API", addr.to_string())
        .env("AWS_LAMBDA_FUNCTION_NAME", name)
        .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128")
        .env("AWS_LAMBDA_LOG_STREAM_NAME", "bench")
        .env("AWS_LAMBDA_LOG_GROUP_NAME", "bench")
        .env("AWS_REGION", "us-east-1")
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .env("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
        .env("EVENTS_TABLE", "bench-events")
        .env(format!("QUEUE_URL_{domain}"), "http://127.0.0.1:9/q")
        .env(format!("DLQ_URL_{domain}"), "http://127.0.0.1:9/dlq")
        .env("RUST_LOG", "warn")
        .envs(extra_env.iter().cloned())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("{}: {e}", bin.display()))?;
    let pid = child.id();
    let mut first_next = None;
    let result = loop {
        match rx.recv_timeout(Duration::from_secs(10)) {
            Ok(Seen::Next(t)) => {
                first_next.get_or_insert(t);
            }
            Ok(Seen::Answered(t, ok)) => {
                let hwm = vm_hwm_kb(pid);
                break if ok {
                    Ok(Run {
                        first_next_ms: first_next
                            .map_or(f64::NAN, |f| (f - start).as_secs_f64() * 1e3),
                        answered_ms: (t - start).as_secs_f64() * 1e3,
                        hwm_kb: hwm,
                    })
                } else {
                    Err(format!("{name}: the invocation answered with an error"))
                };
            }
            Err(_) => break Err(format!("{name}: no answer within 10 s")),
        }
    };
    let _ = child.kill();
    let _ = child.wait();
    result
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut runs = 20usize;
    let mut bins = Vec::new();
    // `--env K=V` (repeatable) adds to the Lambda-like environment, e.g. to compare
    // certificate-store settings.
    let mut extra_env = Vec::new();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        if a == "--runs" {
            runs = it.next().and_then(|v| v.parse().ok()).unwrap_or(20);
        } else if a == "--env" {
            if let Some((k, v)) = it.next().and_then(|kv| kv.split_once('=')) {
                extra_env.push((k.to_string(), v.to_string()));
            }
        } else {
            bins.push(a.clone());
        }
    }
    if bins.is_empty() {
        eprintln!("usage: coldstart [--runs N] [--env K=V]... <bootstrap>...");
        std::process::exit(2);
    }
    println!(
        "{:<22} {:>10} {:>14} {:>16} {:>12} {:>6}",
        "function", "size MiB", "init ms (p50)", "answered ms p50", "RSS MB p50", "runs"
    );
    let mut failed = false;
    for bin in &bins {
        let path = Path::new(bin);
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        let size = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
        let event = event_for(&name);
        let mut results = Vec::new();
        for _ in 0..runs {
            match one_start(path, &name, &event, &extra_env) {
                Ok(r) => results.push(r),
                Err(e) => {
                    eprintln!("{e}");
                    failed = true;
                    break;
                }
            }
        }
        if results.is_empty() {
            continue;
        }
        let init = median(results.iter().map(|r| r.first_next_ms).collect());
        let answered = median(results.iter().map(|r| r.answered_ms).collect());
        let answered_max = results.iter().map(|r| r.answered_ms).fold(0.0, f64::max);
        let rss = median(results.iter().map(|r| r.hwm_kb as f64).collect()) / 1024.0;
        println!(
            "{name:<22} {:>10.2} {init:>14.2} {answered:>16.2} {rss:>12.2} {:>6}",
            size as f64 / 1_048_576.0,
            results.len()
        );
        println!(
            "COLDSTART {{\"function\":\"{name}\",\"bytes\":{size},\"init_ms_p50\":{init:.2},\"answered_ms_p50\":{answered:.2},\"answered_ms_max\":{answered_max:.2},\"rss_mb_p50\":{rss:.2},\"runs\":{}}}",
            results.len()
        );
    }
    if failed {
        std::process::exit(1);
    }
}
