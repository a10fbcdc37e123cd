//! `evctl` as a user meets it, run as a real process: a reader that stops early, missing AWS
//! configuration, strict flags and `--version`, the ready-made event files in
//! `localstack/events/`, and the README's "Operating it: evctl" block run line by line.

use std::collections::HashMap;
use std::io::BufRead;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};

use aws_sdk_dynamodb::types::AttributeValue;
use event_adapters::store::layout;
use integration_tests::{aws, evctl, evctl_bin, evctl_command, Api, RunnerProcess};
use lending_events::envelope::StreamId;
use serde_json::{json, Value};

fn id(p: &str) -> String {
    format!("{p}-{}", &uuid::Uuid::new_v4().simple().to_string()[..12])
}

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the repository holds tests/")
        .to_path_buf()
}

/// What a user's shell accepts from a process whose reader went away: exit 0, or death by
/// SIGPIPE (status 141 in a shell). A panic is exit 101.
fn ended_quietly(status: ExitStatus, stderr: &str) -> bool {
    let status_ok = status.code() == Some(0) || status.signal() == Some(13);
    status_ok && stderr.is_empty()
}

/// Run `cmd` with stdout a pipe whose reader is closed after `lines` lines (0: before the
/// process starts, so its first write fails). Returns the lines read, the exit status and
/// stderr.
fn run_with_reader_closing_after(
    mut cmd: std::process::Command,
    lines: usize,
) -> (Vec<String>, ExitStatus, String) {
    let (reader, writer) = std::io::pipe().expect("a pipe");
    let mut reader = Some(reader);
    if lines == 0 {
        reader = None;
    }
    let child = cmd
        .stdout(writer)
        .stderr(Stdio::piped())
        .spawn()
        .expect("run evctl (build it first: cargo build -p evctl)");
    // The Command keeps its copy of the write end; drop it so only the child writes.
    drop(cmd);
    let mut read = Vec::new();
    if let Some(r) = reader.take() {
        let mut r = std::io::BufReader::new(r);
        for _ in 0..lines {
            let mut l = String::new();
            if r.read_line(&mut l).expect("read a line") == 0 {
                break;
            }
            read.push(l);
        }
        // `r` (the only read end) is dropped here: the rest of evctl's output has nowhere to go.
    }
    let out = child.wait_with_output().expect("wait for evctl");
    (
        read,
        out.status,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test]
async fn a_reader_that_stops_early_ends_evctl_quietly() {
    let runner = RunnerProcess::start("evctl-pipe", &[]).await;
    let tenant = id("t");
    let api = runner.api(&tenant);
    let fund = id("F");
    let corr = id("corr");
    // A distribution with thousands of amounts: `evctl event` prints it as pretty JSON of
    // far more than a pipe holds (64 KiB), so a reader that leaves after one line makes
    // the later writes fail for sure.
    let amounts: serde_json::Map<String, Value> = (0..4000)
        .map(|i| (format!("investor-{i:05}"), json!(format!("{}.25", 100 + i))))
        .collect();
    let r = api
        .post(
            "/events",
            &json!({"events": [
                {"eventType": "Fund.Created", "aggregateType": "Fund", "aggregateId": fund,
                 "payload": {"fundId": fund, "name": "Fund I", "structure": "LP"},
                 "metadata": {"correlationId": corr}},
                {"eventType": "Distribution.Calculated", "aggregateType": "Fund", "aggregateId": fund,
                 "payload": {"distributionId": id("D"), "fundId": fund, "amounts": amounts},
                 "metadata": {"correlationId": corr}}]}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let big_event = r.body["events"][1]["eventId"].as_str().unwrap().to_string();
    let full = evctl(&runner, &tenant, &["event", &big_event]).await;
    assert_eq!(full.code, 0, "{full:?}");
    assert!(
        full.stdout.len() > 2 * 65536,
        "the output must overflow a pipe (64 KiB) twice over: {} bytes",
        full.stdout.len()
    );

    // Closed after the first line, several times: the first line arrives, the rest
    // meets a closed pipe.
    for round in 0..5 {
        for args in [
            vec!["event", big_event.as_str()],
            vec!["history", "Fund", fund.as_str()],
            vec!["trace", corr.as_str()],
        ] {
            let (read, status, stderr) =
                run_with_reader_closing_after(evctl_command(&runner, &tenant, &args), 1);
            assert_eq!(read.len(), 1, "round {round} {args:?}: {read:?}");
            assert!(
                ended_quietly(status, &stderr),
                "round {round} {args:?}: {status:?} {stderr}"
            );
        }
    }
    let (read, _, _) =
        run_with_reader_closing_after(evctl_command(&runner, &tenant, &["event", &big_event]), 1);
    assert!(read[0].contains("Distribution.Calculated"), "{read:?}");

    // Closed before the first write: every command and output form stops quietly.
    for args in [
        vec!["event", big_event.as_str()],
        vec!["history", "Fund", fund.as_str()],
        vec!["--json", "history", "Fund", fund.as_str()],
        vec!["trace", corr.as_str()],
        vec!["help"],
    ] {
        let (_, status, stderr) =
            run_with_reader_closing_after(evctl_command(&runner, &tenant, &args), 0);
        assert!(
            ended_quietly(status, &stderr),
            "{args:?}: {status:?} {stderr}"
        );
    }
    // A failure still tells by its exit code when nobody reads stdout.
    let missing = uuid::Uuid::new_v4().to_string();
    let (_, status, stderr) = run_with_reader_closing_after(
        evctl_command(&runner, &tenant, &["--json", "event", &missing]),
        0,
    );
    assert_eq!(status.code(), Some(3), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[tokio::test]
async fn without_aws_configuration_evctl_says_what_to_set() {
    let home = std::env::temp_dir().join(id("evctl-empty-home"));
    std::fs::create_dir_all(&home).unwrap();
    // No credentials anywhere: no variables, no ~/.aws files, no instance metadata.
    let run = |args: &[&str], env: &[(&str, &str)]| {
        let out = std::process::Command::new(evctl_bin())
            .args(args)
            .env_clear()
            .env("HOME", &home)
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .output()
            .expect("run evctl");
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let region = [("AWS_REGION", "us-east-1")];
    for args in [
        vec!["dlq", "list"],
        vec!["dlq", "redrive", "--domain", "payment", "--all"],
        vec!["dlq", "purge", "--domain", "payment", "--yes"],
        vec!["handler", "list"],
        vec!["handler", "disable", "notifications"],
        vec!["handler", "stats"],
    ] {
        let (code, stdout, stderr) = run(&args, &region);
        assert_eq!(code, Some(4), "{args:?}: {stderr}");
        assert_eq!(
            stderr,
            "evctl: no AWS credentials: set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or AWS_PROFILE, \
             and AWS_ENDPOINT_URL for LocalStack (`. localstack/env.sh`)\n",
            "{args:?}"
        );
        assert!(stdout.is_empty(), "{args:?}: {stdout}");
    }
    let creds = [
        ("AWS_ACCESS_KEY_ID", "test"),
        ("AWS_SECRET_ACCESS_KEY", "test"),
    ];
    let (code, _, stderr) = run(&["handler", "list"], &creds);
    assert_eq!(code, Some(4), "{stderr}");
    assert!(
        stderr.starts_with("evctl: no AWS region: set AWS_REGION") && stderr.lines().count() == 1,
        "{stderr}"
    );
    let (code, stdout, stderr) = run(&["--json", "dlq", "list"], &[]);
    assert_eq!(code, Some(4), "{stderr}");
    assert!(
        stderr.starts_with("evctl: no AWS credentials or region"),
        "{stderr}"
    );
    let v: Value = serde_json::from_str(stdout.trim()).expect("a JSON error on stdout");
    assert!(v["error"]["message"]
        .as_str()
        .is_some_and(|m| m.contains("AWS_ENDPOINT_URL")));
    let _ = std::fs::remove_dir_all(&home);
}

/// One item of the events table, read from the table itself.
async fn table_item(table: &str, pk: &str, sk: u64) -> Option<HashMap<String, AttributeValue>> {
    aws()
        .await
        .dynamodb
        .get_item()
        .table_name(table)
        .key("pk", AttributeValue::S(pk.to_string()))
        .key("sk", AttributeValue::N(sk.to_string()))
        .consistent_read(true)
        .send()
        .await
        .expect("GetItem")
        .item()
        .cloned()
}

/// The stored envelope of one event of a loan, from the table.
async fn stored_envelope(table: &str, tenant: &str, loan: &str, sequence: u64) -> Option<Value> {
    let stream = StreamId {
        tenant_id: tenant,
        aggregate_type: "Loan",
        aggregate_id: loan,
    };
    let item = table_item(table, &layout::stream_pk(&stream), sequence).await?;
    serde_json::from_str(layout::event_body(&item)?).ok()
}

#[tokio::test]
async fn publish_version_and_strict_flags() {
    let runner = RunnerProcess::start("evctl-flags", &[]).await;
    let tenant = id("t");
    let loan = id("L");
    let aggregate = format!("Loan/{loan}");
    let v2_payment = json!({"paymentId": "P-1", "loanId": loan, "amount": "1200.00",
        "paymentMethod": "wire", "receivedAt": "2026-02-27T15:00:00Z"})
    .to_string();
    let publish = |extra: &[&str]| {
        let mut args = vec![
            "--json",
            "publish",
            "--type",
            "Payment.Received",
            "--aggregate",
            &aggregate,
            "--payload",
            &v2_payment,
        ];
        args.extend_from_slice(extra);
        args.into_iter().map(str::to_string).collect::<Vec<_>>()
    };
    let run = |args: Vec<String>| {
        let runner = &runner;
        let tenant = &tenant;
        async move {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            evctl(runner, tenant, &args).await
        }
    };

    // Refused before anything is sent: a misspelt flag, a flag of another command, a word
    // too many, a bad version. Each shows the usage and exits 2.
    for (extra, says) in [
        (vec!["--verison", "2"], "unknown option --verison"),
        (vec!["--rerun"], "publish does not take --rerun"),
        (
            vec!["--domain", "payment"],
            "publish does not take --domain",
        ),
        (vec!["extra"], "unexpected argument"),
        (vec!["--version", "0"], "--version wants a whole number"),
        (vec!["--version", "two"], "--version wants a whole number"),
        (
            vec!["--file", "x.json"],
            "publish --file takes the whole event",
        ),
    ] {
        let r = run(publish(&extra)).await;
        assert_eq!(r.code, 2, "{extra:?}: {r:?}");
        assert!(r.stderr.contains(says), "{extra:?}: {}", r.stderr);
        assert!(
            r.stderr.contains("usage:") && r.stderr.contains("publish --type T"),
            "{extra:?}: {}",
            r.stderr
        );
        assert_eq!(
            r.json["error"]["message"]
                .as_str()
                .map(|m| m.contains(says)),
            Some(true),
            "{r:?}"
        );
    }
    for args in [
        vec!["history", "Loan", &loan, "--type", "Loan.Funded"],
        vec!["trace", "c-1", "--yes"],
        vec!["dlq", "list", "--all"],
        vec!["handler", "list", "--days", "7"],
        vec![
            "events",
            "--type",
            "Loan.Funded",
            "--form",
            "2026-01-01T00:00:00Z",
        ],
    ] {
        let r = evctl(&runner, &tenant, &args).await;
        assert_eq!(r.code, 2, "{args:?}: {r:?}");
        assert!(r.stderr.contains("usage:"), "{args:?}: {}", r.stderr);
    }
    let r = evctl(&runner, &tenant, &["--bogus", "history", "Loan", &loan]).await;
    assert!(
        r.code == 2 && r.stderr.contains("unknown option --bogus"),
        "{r:?}"
    );
    // Nothing of the refused lines was stored.
    assert!(runner.api(&tenant).history("Loan", &loan).await.is_empty());

    // Without --version the event is version 1, whose schema has `method`, not
    // `paymentMethod`: the API refuses it.
    let r = run(publish(&[])).await;
    assert_eq!(
        (r.code, r.json["error"]["code"].clone()),
        (1, json!("validation_failed")),
        "{r:?}"
    );
    // With --version 2 it is stored as version 2, as the table shows.
    let r = run(publish(&["--version", "2"])).await;
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(r.json["events"][0]["eventVersion"], json!(2), "{r:?}");
    let stored = stored_envelope(&runner.table(), &tenant, &loan, 1)
        .await
        .expect("the stored event");
    assert_eq!(
        (
            stored["eventVersion"].clone(),
            stored["payload"]["paymentMethod"].clone()
        ),
        (json!(2), json!("wire")),
        "{stored}"
    );
    let r = evctl(&runner, &tenant, &["--json", "history", "Loan", &loan]).await;
    assert_eq!(r.json["events"].as_array().map(Vec::len), Some(1), "{r:?}");
}

/// The event files shipped for the README and for trying things out.
fn event_files() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(repo_root().join("localstack/events"))
        .expect("localstack/events")
        .map(|e| e.expect("a directory entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    files
}

#[tokio::test]
async fn every_event_file_is_accepted() {
    let runner = RunnerProcess::start("evctl-files", &[]).await;
    let files = event_files();
    assert!(files.len() >= 4, "{files:?}");
    for file in &files {
        let body: Value = serde_json::from_str(&std::fs::read_to_string(file).unwrap())
            .unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        let sent = body["events"].as_array().map_or(1, Vec::len);
        // Each file on its own tenant: every one must hold up alone.
        let api: Api = runner.api(&id("t"));
        let first = api.post("/events", &body).await;
        assert_eq!(first.status, 201, "{}: {}", file.display(), first.body);
        assert_eq!(
            first.body["events"].as_array().map(Vec::len),
            Some(sent),
            "{}",
            file.display()
        );
        // The files carry their eventIds, so posting one again is an exact resend.
        let again = api.post("/events", &body).await;
        assert_eq!(again.status, 200, "{}: {}", file.display(), again.body);
        let stored = &first.body["events"][0];
        let history = api
            .history(
                stored["aggregateType"].as_str().unwrap(),
                stored["aggregateId"].as_str().unwrap(),
            )
            .await;
        assert!(
            history.iter().any(|e| e["eventId"] == stored["eventId"]),
            "{}",
            file.display()
        );
    }
}

/// The lines of the README's first shell block under "## Operating it: evctl".
fn readme_evctl_lines() -> Vec<String> {
    let readme = std::fs::read_to_string(repo_root().join("README.md")).expect("README.md");
    let section = readme
        .split_once("## Operating it: evctl")
        .expect("the README's evctl section")
        .1;
    let block = section
        .split_once("```sh\n")
        .expect("a sh block in the evctl section")
        .1;
    let block = block.split_once("```").expect("the end of the block").0;
    block.lines().map(str::to_string).collect()
}

/// A line without its single-quoted strings and its trailing comment: what a shell parses.
fn shell_code(line: &str) -> String {
    let mut code = String::new();
    let mut quoted = false;
    for c in line.chars() {
        match c {
            '\'' => quoted = !quoted,
            '#' if !quoted && (code.is_empty() || code.ends_with(' ')) => break,
            c if !quoted => code.push(c),
            _ => {}
        }
    }
    code
}

#[tokio::test]
async fn the_readme_evctl_block_runs_as_written() {
    let lines = readme_evctl_lines();
    // Every shipped event file is shown, and each line is one command: `|` (a pipeline to a
    // shell) only inside quotes or comments.
    for file in event_files() {
        let name = file.file_name().unwrap().to_string_lossy().into_owned();
        assert!(
            lines
                .iter()
                .any(|l| l.contains(&format!("localstack/events/{name}"))),
            "{name} is not in the README block"
        );
    }
    for l in &lines {
        assert!(
            !shell_code(l).contains('|'),
            "a pipeline in the README block: {l}"
        );
    }

    let runner = RunnerProcess::start("evctl-readme", &[]).await;
    // The build line is what the test run has already done (`cargo build` from inside a
    // test could rebuild with other features); every other line runs as it stands.
    assert_eq!(lines[0], "cargo build -p evctl", "{lines:#?}");
    let mut script = String::from(
        "set -e\nshopt -s expand_aliases\n\
         trap 'echo \"README line failed with $?: $BASH_COMMAND\" >&2' ERR\n",
    );
    for l in &lines[1..] {
        script.push_str(l);
        script.push('\n');
    }
    let path = std::env::temp_dir().join(format!("{}.sh", runner.prefix));
    std::fs::write(&path, &script).unwrap();
    let out = tokio::task::spawn_blocking({
        let port = runner.port;
        let prefix = runner.prefix.clone();
        move || {
            std::process::Command::new("bash")
                .arg(&path)
                .current_dir(repo_root())
                // The runner under test instead of the default one on port 3000.
                .env("EVCTL_API", format!("http://127.0.0.1:{port}"))
                .env("EVCTL_PREFIX", prefix)
                .env_remove("EVCTL_TENANT")
                .env_remove("EVCTL_TOKEN")
                .stdin(Stdio::null())
                .output()
                .expect("bash")
        }
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "{:?}\n--- stdout\n{stdout}\n--- stderr\n{stderr}",
        out.status
    );
    assert!(!stderr.contains("panicked"), "{stderr}");

    // What the lines did, read back independently: the README's tenant holds the loans of
    // the files and the payment published with --version 2.
    let api = runner.api("acme");
    let l1 = api.history("Loan", "L-1").await;
    let received: Vec<&Value> = l1
        .iter()
        .filter(|e| e["eventType"] == "Payment.Received")
        .collect();
    assert_eq!(received.len(), 2, "{l1:#?}");
    assert!(
        received.iter().all(|e| e["eventVersion"] == json!(2)),
        "{received:#?}"
    );
    let l2 = api.history("Loan", "L-2").await;
    assert!(
        l2.iter().any(|e| e["eventType"] == "Loan.Funded"),
        "{l2:#?}"
    );
    // The block's rebuild folded both loans of the tenant and was recorded as such.
    let rebuilt: Vec<Value> = api
        .history("Ops", "acme")
        .await
        .into_iter()
        .filter(|e| e["eventType"] == "Ops.ProjectionRebuilt")
        .collect();
    assert_eq!(rebuilt.len(), 1, "{rebuilt:#?}");
    assert_eq!(rebuilt[0]["payload"]["projection"], json!("loan-summary"));
    assert_eq!(rebuilt[0]["payload"]["loans"], json!(2), "{rebuilt:#?}");
    // The handler the block switched off is on again: its switch item says so.
    let switch = table_item(&runner.table(), &layout::switch_pk("notifications"), 0)
        .await
        .expect("the switch item the block wrote");
    assert_eq!(
        switch.get("enabled").and_then(|v| v.as_bool().ok()),
        Some(&true),
        "{switch:?}"
    );
}

/// `(eventIds, principal)` of each `Ops.*` event of a type on a tenant's stream.
async fn recorded(api: &Api, event_type: &str) -> Vec<(Value, Value)> {
    integration_tests::events_of_type(api, event_type)
        .await
        .iter()
        .map(|e| {
            assert_eq!(e["metadata"]["tenantId"], json!(api.tenant), "{e}");
            (
                e["payload"]["eventIds"].clone(),
                e["metadata"]["principal"].clone(),
            )
        })
        .collect()
}

/// Put a dead letter of `tenant`'s on a DLQ as the runner would (envelope body, the
/// handler's reason as an attribute); returns its eventId.
async fn inject_dead_letter(sqs: &aws_sdk_sqs::Client, dlq_url: &str, tenant: &str) -> String {
    use aws_sdk_sqs::types::MessageAttributeValue;
    let event_id = uuid::Uuid::new_v4().to_string();
    let loan = id("L");
    let body = json!({"eventId": event_id, "eventType": "Payment.Received", "eventVersion": 1,
        "aggregateType": "Loan", "aggregateId": loan, "sequence": 2,
        "payload": {"paymentId": "P-1", "loanId": loan, "amount": "10.00", "method": "ACH",
            "receivedAt": "2026-03-30T13:00:00Z"},
        "metadata": {"tenantId": tenant, "correlationId": id("corr")}});
    let reason = MessageAttributeValue::builder()
        .data_type("String")
        .string_value("payment-application: refused by the test")
        .build()
        .unwrap();
    sqs.send_message()
        .queue_url(dlq_url)
        .message_body(body.to_string())
        .message_group_id(format!("{tenant}#Loan#{loan}"))
        .message_deduplication_id(&event_id)
        .message_attributes("failureReason", reason)
        .send()
        .await
        .expect("SendMessage to the DLQ");
    event_id
}

#[tokio::test]
async fn direct_dlq_and_handler_commands_are_recorded_with_the_evctl_principal() {
    let runner = RunnerProcess::start("evctl-ops", &[]).await;
    let clients = aws().await;
    let dlq = integration_tests::queue_url(&clients.sqs, &runner.queue_name("payment", true)).await;
    // Redriven letters go to a queue of the test's own, so no handler takes them back and
    // the queue shows what was sent.
    let target = clients
        .sqs
        .create_queue()
        .queue_name(format!("{}-redrive-target.fifo", runner.prefix))
        .attributes(aws_sdk_sqs::types::QueueAttributeName::FifoQueue, "true")
        .send()
        .await
        .expect("CreateQueue")
        .queue_url()
        .unwrap()
        .to_string();
    let (a, b) = (runner.api(&id("ta")), runner.api(&id("tb")));
    let a1 = inject_dead_letter(&clients.sqs, &dlq, &a.tenant).await;
    let b1 = inject_dead_letter(&clients.sqs, &dlq, &b.tenant).await;
    let user = std::env::var("USER")
        .ok()
        .filter(|u| !u.is_empty())
        .unwrap_or_else(|| "unknown".into());
    let default_principal = json!(format!("evctl:{user}"));
    // evctl without --tenant: a platform operator.
    let platform = |args: &[&str]| {
        let mut cmd = std::process::Command::new(evctl_bin());
        cmd.args(["--api", &format!("http://127.0.0.1:{}", runner.port)])
            .args(["--prefix", &runner.prefix])
            .args(args)
            .env_remove("EVCTL_TENANT")
            .stdin(Stdio::null());
        async move {
            let out = tokio::task::spawn_blocking(move || cmd.output().expect("run evctl"))
                .await
                .unwrap();
            let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
            (
                out.status.code(),
                serde_json::from_str::<Value>(stdout.trim()).unwrap_or(Value::Null),
                String::from_utf8_lossy(&out.stderr).into_owned(),
            )
        }
    };
    let listed = |v: &Value| -> Vec<String> {
        let mut ids: Vec<String> = v["dlqs"][0]["messages"]
            .as_array()
            .unwrap_or_else(|| panic!("{v}"))
            .iter()
            .map(|m| m["eventId"].as_str().unwrap_or("?").to_string())
            .collect();
        ids.sort();
        ids
    };
    let mut both = vec![a1.clone(), b1.clone()];
    both.sort();

    // Listing: with --tenant only that tenant's letters, without every one; nothing recorded.
    let r = evctl(
        &runner,
        &a.tenant,
        &["--json", "dlq", "list", "--domain", "payment"],
    )
    .await;
    assert_eq!((r.code, listed(&r.json)), (0, vec![a1.clone()]), "{r:?}");
    let (code, v, stderr) = platform(&["--json", "dlq", "list", "--domain", "payment"]).await;
    assert_eq!((code, listed(&v)), (Some(0), both.clone()), "{stderr}");

    // Refused or matching nothing: exit codes as before, nothing done, nothing recorded.
    let r = evctl(&runner, &a.tenant, &["dlq", "purge", "--domain", "payment"]).await;
    assert_eq!(r.code, 5, "{r:?}");
    let r = evctl(
        &runner,
        &a.tenant,
        &["dlq", "redrive", "--domain", "payment", "--event", &b1],
    )
    .await;
    assert_eq!(r.code, 3, "a's redrive of b's letter: {r:?}");
    let r = evctl(
        &runner,
        &a.tenant,
        &["dlq", "redrive", "--domain", "payment", "--principal", "x"],
    )
    .await;
    assert_eq!(r.code, 2, "{r:?}");

    // A's redrive of "everything" takes A's letter only, recorded on A's stream as evctl:$USER.
    let r = evctl(
        &runner,
        &a.tenant,
        &[
            "--json",
            "dlq",
            "redrive",
            "--domain",
            "payment",
            "--all",
            "--source-url",
            &target,
        ],
    )
    .await;
    assert_eq!((r.code, r.json["redriven"].clone()), (0, json!(1)), "{r:?}");
    assert_eq!(
        integration_tests::event_ids_on(&clients.sqs, &target, 30).await,
        vec![a1.clone()]
    );
    assert_eq!(
        recorded(&a, "Ops.DeadLettersRedriven").await,
        [(json!([a1]), default_principal.clone())]
    );
    assert!(recorded(&b, "Ops.DeadLettersRedriven").await.is_empty());

    // A platform purge (no --tenant) takes every letter and records each tenant's on its
    // own stream, as the principal given.
    let a2 = inject_dead_letter(&clients.sqs, &dlq, &a.tenant).await;
    let (code, v, stderr) = platform(&[
        "--json",
        "dlq",
        "purge",
        "--domain",
        "payment",
        "--yes",
        "--principal",
        "ops-carol",
    ])
    .await;
    assert_eq!(
        (code, v["purged"].clone()),
        (Some(0), json!(2)),
        "{v} {stderr}"
    );
    assert!(
        integration_tests::event_ids_on(&clients.sqs, &dlq, 30)
            .await
            .is_empty(),
        "the DLQ is empty"
    );
    let carol = json!("evctl:ops-carol");
    assert_eq!(
        recorded(&a, "Ops.DeadLettersPurged").await,
        [(json!([a2]), carol.clone())]
    );
    assert_eq!(
        recorded(&b, "Ops.DeadLettersPurged").await,
        [(json!([b1]), carol.clone())]
    );

    // Handler switches: with --tenant on that tenant's stream, without on _platform's; the
    // switch item is what the commands set.
    for (args, enabled) in [
        (
            vec![
                "handler",
                "disable",
                "notifications",
                "--principal",
                "ops-carol",
            ],
            false,
        ),
        (vec!["handler", "enable", "notifications"], true),
    ] {
        let r = evctl(&runner, &a.tenant, &args).await;
        assert_eq!(r.code, 0, "{args:?}: {r:?}");
        let switch = table_item(&runner.table(), &layout::switch_pk("notifications"), 0)
            .await
            .expect("the switch item");
        assert_eq!(
            switch.get("enabled").and_then(|v| v.as_bool().ok()),
            Some(&enabled)
        );
    }
    let (code, _, stderr) = platform(&["handler", "disable", "fund-allocation"]).await;
    assert_eq!(code, Some(0), "{stderr}");
    let switches = |events: Vec<Value>| -> Vec<(Value, Value, Value)> {
        events
            .iter()
            .map(|e| {
                (
                    e["payload"]["handler"].clone(),
                    e["payload"]["enabled"].clone(),
                    e["metadata"]["principal"].clone(),
                )
            })
            .collect()
    };
    assert_eq!(
        switches(integration_tests::events_of_type(&a, "Ops.HandlerSwitched").await),
        [
            (json!("notifications"), json!(false), carol.clone()),
            (
                json!("notifications"),
                json!(true),
                default_principal.clone()
            ),
        ]
    );
    assert_eq!(
        switches(
            integration_tests::events_of_type(&runner.api("_platform"), "Ops.HandlerSwitched")
                .await
        ),
        [(
            json!("fund-allocation"),
            json!(false),
            default_principal.clone()
        )]
    );
    // B did nothing and took part in no switch or redrive: its stream has none; listing,
    // the refused purge and the redrives that matched nothing recorded nothing for A.
    assert!(integration_tests::events_of_type(&b, "Ops.HandlerSwitched")
        .await
        .is_empty());
    assert_eq!(recorded(&a, "Ops.DeadLettersRedriven").await.len(), 1);
    assert_eq!(recorded(&a, "Ops.DeadLettersPurged").await.len(), 1);
    let _ = clients.sqs.delete_queue().queue_url(&target).send().await;
}
