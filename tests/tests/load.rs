//! The load generator end to end (issue 7): a small `local-runner load --json` run on
//! resources of its own must complete every handler execution, lose nothing, dead-letter
//! nothing, report ordered latency percentiles, and show ingest writing once per request.

use integration_tests::RunnerProcess;
use serde_json::Value;

/// The JSON after `tag ` on stdout.
fn line(stdout: &str, tag: &str) -> Value {
    let found = stdout
        .lines()
        .find_map(|l| l.strip_prefix(tag).and_then(|r| r.strip_prefix(' ')))
        .unwrap_or_else(|| panic!("no {tag} line in:\n{stdout}"));
    serde_json::from_str(found).unwrap_or_else(|e| panic!("{tag} line is not JSON ({e}): {found}"))
}

#[test]
fn small_load_completes_everything_and_writes_once_per_append_attempt() {
    let out = std::process::Command::new(RunnerProcess::binary())
        .args([
            "load",
            "--events",
            "40",
            "--aggregates",
            "4",
            "--batch",
            "5",
            "--json",
            "--timeout",
            "240",
        ])
        // No snapshots: an append that writes one also reads the history it folds, which
        // would blur "one head read per attempt" below (tests/tests/snapshots.rs covers them).
        .env("SNAPSHOT_EVERY", "0")
        .stdin(std::process::Stdio::null())
        .output()
        .expect("run local-runner load (build it first: cargo build -p local-runner)");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "load failed ({}):\n{stdout}\n{}",
        out.status,
        stderr
            .lines()
            .filter(|l| !l.starts_with('{'))
            .collect::<Vec<_>>()
            .join("\n")
    );
    let load = line(&stdout, "LOAD");
    let calls = line(&stdout, "CALLS");

    assert_eq!(load["events"], 40, "{load}");
    assert_eq!(load["requests"], 8, "{load}");
    let h = &load["handlerExecutions"];
    // Per loan: loan-summary, the read model, hears every loan event; besides it,
    // Loan.Created has no subscriber, Loan.Approved 1 (payment-schedule records the status
    // change), Loan.Funded 4, each of the 7 payments 1.
    assert_eq!(h["expected"], 4 * (1 + 2 + 5 + 7 * 2), "{load}");
    assert_eq!(h["completed"], h["expected"], "{load}");
    assert_eq!(load["lost"], 0, "{load}");
    assert_eq!(load["deadLettered"], 0, "{load}");

    let lat = &load["latencyMs"];
    let p = |k: &str| lat[k].as_f64().unwrap_or_else(|| panic!("no {k} in {lat}"));
    // Per loan: every event has a subscriber (the read model hears them all).
    assert_eq!(
        lat["n"],
        4 * (1 + 1 + 1 + 7),
        "every event with subscribers has a latency: {lat}"
    );
    assert!(p("p50") > 0.0, "{lat}");
    assert!(
        p("p50") <= p("p95") && p("p95") <= p("p99") && p("p99") <= p("max"),
        "{lat}"
    );

    // Ingest: one write call (a transaction, or a plain put) per append attempt, and one
    // head read per attempt (each request is one loan's). An append that loses a race with a
    // handler's follow-on on the same loan tries again: attempts >= requests.
    let ingest = &calls["counts"]["ingest"];
    let n = |op: &str| ingest[op].as_u64().unwrap_or(0);
    let writes = n("DynamoDB.TransactWriteItems") + n("DynamoDB.PutItem");
    assert!(writes >= 8, "{calls}");
    assert_eq!(
        writes,
        n("DynamoDB.Query"),
        "one write per attempt: {calls}"
    );
    // Every delivered message was received by a mapping (redeliveries only add).
    let received = calls["messagesReceived"].as_u64().unwrap_or(0);
    assert!(
        received >= calls["messages"].as_u64().unwrap_or(u64::MAX),
        "{calls}"
    );
}
