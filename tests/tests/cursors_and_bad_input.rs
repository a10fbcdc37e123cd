//! Pagination cursors are signed and bound to their query, and input that once crashed or
//! broke the API (a multi-byte cursor, a reversed window) is a 400 that leaves the process
//! running. Over HTTP against a local runner of its own, on LocalStack.

use std::time::Duration;

use event_adapters::store::layout;
use integration_tests::{Api, RunnerProcess};
use lending_events::envelope::StreamId;
use serde_json::{json, Value};

const SIGNING_KEY: &str = "integration-test-cursor-key-0123456789abcdef";

fn id(p: &str) -> String {
    format!("{p}-{}", &uuid::Uuid::new_v4().simple().to_string()[..12])
}

/// Every page of `query`, following cursors: the sequences seen, and the cursors handed out.
async fn all_pages(api: &Api, query: &str) -> (Vec<u64>, Vec<String>) {
    let mut seqs = Vec::new();
    let mut cursors = Vec::new();
    let mut url = query.to_string();
    loop {
        let r = api.get(&url).await;
        assert_eq!(r.status, 200, "{url}: {}", r.body);
        seqs.extend(
            r.body["events"]
                .as_array()
                .expect("events")
                .iter()
                .map(|e| e["sequence"].as_u64().expect("sequence")),
        );
        match r.body["cursor"].as_str() {
            Some(c) => {
                url = format!("{query}&cursor={c}");
                cursors.push(c.to_string());
            }
            None => return (seqs, cursors),
        }
        assert!(cursors.len() < 20, "too many pages");
    }
}

fn assert_invalid_cursor(r: &integration_tests::Reply, what: &str) {
    assert_eq!(
        (
            r.status,
            &r.body["error"]["code"],
            &r.body["error"]["field"]
        ),
        (400, &json!("invalid_cursor"), &json!("cursor")),
        "{what}: {}",
        r.body
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn cursors_are_signed_and_bound_to_their_query_and_bad_input_never_kills_the_runner() {
    let mut runner = RunnerProcess::start("cursors", &[("CURSOR_SIGNING_KEY", SIGNING_KEY)]).await;
    let tenant = id("t");
    let api = runner.api(&tenant);
    let b = id("B");
    let flags: Vec<Value> = (0..5)
        .map(|i| {
            json!({"eventType": "Borrower.Flagged", "aggregateType": "Borrower",
                "aggregateId": b, "payload": {"borrowerId": b, "reason": format!("check {i}")}})
        })
        .collect();
    let posted = api.post("/events", &json!({ "events": flags })).await;
    assert_eq!(posted.status, 201, "{}", posted.body);

    // Following the cursors yields each posted event exactly once.
    let query = "/events?type=Borrower.Flagged&limit=2";
    let (mut seqs, cursors) = all_pages(&api, query).await;
    seqs.sort_unstable();
    assert_eq!(seqs, [1, 2, 3, 4, 5]);
    assert_eq!(cursors.len(), 2, "5 events at 2 a page: two cursors");
    let cursor = &cursors[0];
    assert!(
        cursor
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_'),
        "base64url without padding: {cursor}"
    );

    // The same cursor for another tenant, type or window, or changed by one character.
    let other = runner.api(&id("other"));
    assert_invalid_cursor(
        &other.get(&format!("{query}&cursor={cursor}")).await,
        "another tenant",
    );
    for (q, what) in [
        ("/events?type=Loan.Funded&limit=2", "another type"),
        (
            "/events?type=Borrower.Flagged&limit=2&from=2000-01-01T00:00:00Z",
            "another window",
        ),
    ] {
        assert_invalid_cursor(&api.get(&format!("{q}&cursor={cursor}")).await, what);
    }
    let mut tampered = cursor.clone().into_bytes();
    // A character inside the signature (the first 43 characters encode its 32 bytes).
    tampered[5] = if tampered[5] == b'A' { b'B' } else { b'A' };
    let tampered = String::from_utf8(tampered).expect("ascii");
    assert_invalid_cursor(
        &api.get(&format!("{query}&cursor={tampered}")).await,
        "tampered",
    );
    // The old form, the table key in hex, is no cursor any more.
    let pk = layout::stream_pk(&StreamId {
        tenant_id: &tenant,
        aggregate_type: "Borrower",
        aggregate_id: &b,
    });
    let key = json!({"pk": {"S": pk}, "sk": {"N": "1"},
        "typeKey": {"S": layout::type_key(&tenant, "Borrower.Flagged")},
        "recordedAt": {"S": "2026-01-01T00:00:00Z"}})
    .to_string();
    let hex: String = key.bytes().map(|b| format!("{b:02x}")).collect();
    assert_invalid_cursor(
        &api.get(&format!("{query}&cursor={hex}")).await,
        "hand-made key",
    );

    // Multi-byte cursors (a panic, and with panic = "abort" a dead process, before).
    for c in [
        "a%C3%A9a",
        "%F0%9F%98%80%F0%9F%98%80",
        "%C3%A9",
        "abc%E2%82%AC",
    ] {
        assert_invalid_cursor(&api.get(&format!("{query}&cursor={c}")).await, c);
    }
    assert!(!runner.exited(), "the runner died on a cursor");

    // A reversed window reached DynamoDB as a 500; now it is the client's error.
    let r = api
        .get("/events?type=K&from=2336-08-25T00:44:39.3-18:31&to=0738-01-17T04:43:02.21-09:53")
        .await;
    assert_eq!(
        (
            r.status,
            &r.body["error"]["code"],
            &r.body["error"]["field"]
        ),
        (400, &json!("validation_failed"), &json!("to")),
        "{}",
        r.body
    );
    assert!(
        r.body["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("reversed")),
        "{}",
        r.body
    );
    for (q, field) in [
        ("from=0000-01-01T00:00:00%2B01:00", "from"),
        ("to=9999-12-31T23:00:00-05:00", "to"),
        ("from=2026-01-01T00:00:00Z&to=2026-01-01T00:00:00.500Z", ""),
    ] {
        let r = api.get(&format!("/events?type=Borrower.Flagged&{q}")).await;
        if field.is_empty() {
            assert_eq!(r.status, 200, "{q}: {}", r.body);
        } else {
            assert_eq!(
                (r.status, &r.body["error"]["field"]),
                (400, &json!(field)),
                "{q}: {}",
                r.body
            );
        }
    }
    assert!(!runner.exited(), "the runner died on a window");
    let alive = api.get(query).await;
    assert_eq!(alive.status, 200, "{}", alive.body);

    // Restarted with another key, the runner refuses the cursors of the first.
    runner.stop();
    runner
        .spawn(&[(
            "CURSOR_SIGNING_KEY",
            "another-key-of-at-least-32-bytes-long!",
        )])
        .await;
    assert_invalid_cursor(
        &api.get(&format!("{query}&cursor={cursor}")).await,
        "signed with another key",
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_cursor_key_shorter_than_32_bytes_stops_the_runner_at_start() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port");
    let mut child = std::process::Command::new(RunnerProcess::binary())
        .args([
            "serve",
            "--prefix",
            &id("shortkey"),
            "--port",
            &port.to_string(),
        ])
        .env("CURSOR_SIGNING_KEY", "only-31-bytes-long-0123456789ab")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start local-runner");
    let started = std::time::Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().expect("wait") {
            break s;
        }
        if started.elapsed() > Duration::from_secs(30) {
            let _ = child.kill();
            panic!("the runner started with a 31-byte cursor key");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().expect("stderr"), &mut stderr)
        .expect("stderr");
    assert!(!status.success());
    assert!(
        stderr.contains("CURSOR_SIGNING_KEY is 31 bytes"),
        "{stderr}"
    );
}
