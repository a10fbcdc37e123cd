//! The live stream (`GET /events/stream`, Server-Sent Events) against the local runner on
//! LocalStack: a reader that disconnects in the middle of a publishing run and reconnects
//! with `Last-Event-ID` sees every published event exactly once, in the stream's order,
//! even where a batch shares one recordedAt across the disconnect.

use std::collections::{BTreeSet, HashSet};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use integration_tests::{api_url, aws, scan_events, table, Api};
use serde_json::{json, Value};

/// One SSE message of the stream: its `id` and the envelope in its `data`.
#[derive(Debug, Clone)]
struct Message {
    id: String,
    event: Value,
}

/// An open stream: reads messages until told to stop (dropping it disconnects).
struct Reader {
    _client: Client<hyper_util::client::legacy::connect::HttpConnector, Full<Bytes>>,
    body: hyper::body::Incoming,
    buffer: String,
}

impl Reader {
    async fn open(tenant: &str, query: &str, last_event_id: Option<&str>) -> Reader {
        let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
        let mut req = http::Request::get(format!("{}/events/stream?{query}", api_url()))
            .header("x-tenant-id", tenant)
            .header("x-scopes", "events:read")
            .header("accept", "text/event-stream");
        if let Some(id) = last_event_id {
            req = req.header("last-event-id", id);
        }
        let resp = client
            .request(req.body(Full::new(Bytes::new())).unwrap())
            .await
            .expect("GET /events/stream (is the local runner up?)");
        assert_eq!(resp.status(), 200, "the stream opens");
        assert_eq!(
            resp.headers()["content-type"].to_str().unwrap(),
            "text/event-stream"
        );
        Reader {
            _client: client,
            body: resp.into_body(),
            buffer: String::new(),
        }
    }

    /// The next message (comments and keep-alives skipped), or None at `deadline`.
    async fn next(&mut self, deadline: Instant) -> Option<Message> {
        loop {
            if let Some(end) = self.buffer.find("\n\n") {
                let block: String = self.buffer.drain(..end + 2).collect();
                let (mut id, mut data) = (None, String::new());
                for line in block.lines() {
                    if let Some(v) = line.strip_prefix("id:") {
                        id = Some(v.trim_start().to_string());
                    } else if let Some(v) = line.strip_prefix("data:") {
                        data.push_str(v.trim_start());
                    }
                }
                if let Some(id) = id {
                    let event = serde_json::from_str(&data).expect("data is an envelope");
                    return Some(Message { id, event });
                }
                continue;
            }
            let left = deadline.checked_duration_since(Instant::now())?;
            let frame = tokio::time::timeout(left, self.body.frame()).await.ok()?;
            let frame = frame.expect("stream open").expect("stream frame");
            if let Ok(data) = frame.into_data() {
                self.buffer
                    .push_str(std::str::from_utf8(&data).expect("UTF-8"));
            }
        }
    }
}

/// A servicing call (the local runner's example custom type: no handler reacts to it).
fn call_logged(loan: &str, minutes: u32) -> Value {
    json!({"eventType": "Servicing.CallLogged", "aggregateType": "Loan", "aggregateId": loan,
        "payload": {"loanId": loan, "calledAt": "2026-03-01T10:00:00Z", "outcome": "reached",
            "minutes": minutes}})
}

const BATCHES: usize = 6;
const PER_BATCH: usize = 20;
/// Where the first reader hangs up: the 7th event of the second batch.
const CUT: usize = PER_BATCH + 7;

#[tokio::test]
async fn a_reader_that_reconnects_with_last_event_id_misses_nothing_and_sees_nothing_twice() {
    let api = Api::new_tenant();
    let started = chrono::Utc::now() - chrono::Duration::seconds(1);
    let from = started.to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let query = format!("from={from}&types=Servicing.*");

    // Publish batches of one loan's calls (one recordedAt per batch), half a second apart.
    let publisher = {
        let api = api.clone();
        tokio::spawn(async move {
            let mut ids = Vec::new();
            for batch in 0..BATCHES {
                let events: Vec<Value> = (0..PER_BATCH)
                    .map(|i| call_logged(&format!("L-{batch}"), i as u32))
                    .collect();
                let r = api.post("/events", &json!({ "events": events })).await;
                assert_eq!(r.status, 201, "{:?}", r.body);
                for e in r.body["events"].as_array().unwrap() {
                    ids.push(e["eventId"].as_str().unwrap().to_string());
                }
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            ids
        })
    };

    // The first reader takes CUT messages and hangs up, while the batches are still coming.
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut seen: Vec<Message> = Vec::new();
    {
        let mut first = Reader::open(&api.tenant, &query, None).await;
        while seen.len() < CUT {
            let m = first
                .next(deadline)
                .await
                .expect("the first messages within 120 s");
            seen.push(m);
        }
    }
    let cut = seen.last().unwrap().clone();
    let published = publisher.await.expect("publisher");
    assert_eq!(published.len(), BATCHES * PER_BATCH);

    // The second reader resumes after the last message seen.
    let mut second = Reader::open(&api.tenant, &query, Some(&cut.id)).await;
    while seen.len() < published.len() {
        match second.next(deadline).await {
            Some(m) => seen.push(m),
            None => break,
        }
    }
    // Nothing more comes (a duplicate would show up here).
    let quiet = Instant::now() + Duration::from_secs(5);
    while let Some(m) = second.next(quiet).await {
        seen.push(m);
    }

    // Each message's id is its event's order key, and ids strictly increase.
    for m in &seen {
        let key = format!(
            "{}#{}",
            m.event["recordedAt"].as_str().unwrap(),
            m.event["eventId"].as_str().unwrap()
        );
        assert_eq!(m.id, key, "a message's id is <recordedAt>#<eventId>");
    }
    for pair in seen.windows(2) {
        assert!(
            pair[0].id < pair[1].id,
            "{} then {}",
            pair[0].id,
            pair[1].id
        );
    }
    let ids: Vec<String> = seen
        .iter()
        .map(|m| m.event["eventId"].as_str().unwrap().to_string())
        .collect();
    let unique: HashSet<&String> = ids.iter().collect();
    assert_eq!(unique.len(), ids.len(), "no event twice");
    let published_set: BTreeSet<String> = published.into_iter().collect();
    let streamed_set: BTreeSet<String> = ids.iter().cloned().collect();
    assert_eq!(streamed_set, published_set, "exactly the published events");

    // The same set read from the table itself (a Scan, no index, no API).
    let clients = aws().await;
    let stored: BTreeSet<String> = scan_events(&clients.dynamodb, &table(), &api.tenant)
        .await
        .iter()
        .map(|e| e["eventId"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(streamed_set, stored, "the stream is what the table holds");

    // The cut fell inside a batch: events after it shared its recordedAt and still came.
    let cut_time = cut.event["recordedAt"].as_str().unwrap();
    let after_cut_same_time = seen
        .iter()
        .skip(CUT)
        .filter(|m| m.event["recordedAt"] == cut_time)
        .count();
    assert!(
        after_cut_same_time > 0,
        "some events after the reconnect share the last seen recordedAt {cut_time}"
    );
    println!(
        "stream: {} events, first reader {}, resumed reader {}, {} after the cut in its millisecond",
        ids.len(),
        CUT,
        ids.len() - CUT,
        after_cut_same_time
    );
}

#[tokio::test]
async fn the_stream_refuses_a_bad_resume_point_a_bad_filter_and_a_caller_without_events_read() {
    let api = Api::new_tenant();
    let r = api
        .clone()
        .with_header("last-event-id", "yesterday")
        .get("/events/stream")
        .await;
    assert_eq!(r.status, 400);
    assert_eq!(r.body["error"]["field"], "Last-Event-ID");
    let r = api.get("/events/stream?types=Loan.**").await;
    assert_eq!(r.status, 400);
    assert_eq!(r.body["error"]["field"], "types");
    let r = api
        .clone()
        .with_header("x-scopes", "events:write")
        .get("/events/stream")
        .await;
    assert_eq!(r.status, 403);
    assert!(r.body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("events:read"));
}
