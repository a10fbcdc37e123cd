//! Property tests: what reaches a function from outside (HTTP requests, SQS messages and
//! their attributes, DynamoDB stream records, cursors) is refused with an error, never a
//! panic (release builds abort on one, killing the Lambda instance), and never a 500.
//! No LocalStack: the HTTP API runs over the in-memory store, and the read routes that
//! query DynamoDB get a client whose endpoint refuses connections (503, never reached by
//! input that validation refuses).

use std::sync::OnceLock;
use std::time::Duration;

use aws_lambda_events::dynamodb::EventRecord;
use aws_lambda_events::sqs::SqsEvent;
use axum::body::Body;
use event_adapters::config::{Clients, Config};
use event_adapters::dispatch::event_of;
use event_adapters::http::cursor::CursorKey;
use event_adapters::http::ops::reads::parse_window;
use event_adapters::ledger::memory::MemoryLedger;
use event_adapters::queue::MemoryQueue;
use event_adapters::runner::{BatchRunner, RetryPolicy};
use event_adapters::store::memory::MemoryStore;
use event_adapters::subscriptions::delivery::DeliveryRunner;
use event_adapters::subscriptions::egress::EgressPolicy;
use event_adapters::webhooks::sender::WebhookSender;
use lending_events::catalog::Catalog;
use lending_events::handlers;
use lending_events::routing::RoutingTable;
use lending_events::EventEnvelope;
use proptest::prelude::*;
use serde_json::{json, Value};
use tower::ServiceExt;

fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a tokio runtime")
    })
}

/// AWS clients whose endpoint refuses every connection, without retries: a request that
/// gets past validation answers 503 at once. Built from explicit settings (no environment,
/// no credential or region discovery), so nothing but the loopback address is contacted.
fn unreachable_clients() -> Clients {
    use aws_sdk_dynamodb::config::{BehaviorVersion, Credentials, Region};
    use aws_smithy_http_client::tls::{self, rustls_provider::CryptoMode};
    let http = aws_smithy_http_client::Builder::new()
        .tls_provider(tls::Provider::Rustls(CryptoMode::Ring))
        .build_https();
    let credentials = Credentials::new("test", "test", None, None, "static");
    let no_retries = aws_sdk_dynamodb::config::retry::RetryConfig::disabled();
    const NOWHERE: &str = "http://127.0.0.1:9";
    Clients {
        dynamodb: aws_sdk_dynamodb::Client::from_conf(
            aws_sdk_dynamodb::Config::builder()
                .behavior_version(BehaviorVersion::latest())
                .region(Region::new("us-east-1"))
                .credentials_provider(credentials.clone())
                .endpoint_url(NOWHERE)
                .http_client(http.clone())
                .retry_config(no_retries.clone())
                .build(),
        ),
        sqs: aws_sdk_sqs::Client::from_conf(
            aws_sdk_sqs::Config::builder()
                .behavior_version(BehaviorVersion::latest())
                .region(Region::new("us-east-1"))
                .credentials_provider(credentials.clone())
                .endpoint_url(NOWHERE)
                .http_client(http.clone())
                .retry_config(no_retries.clone())
                .build(),
        ),
        kms: aws_sdk_kms::Client::from_conf(
            aws_sdk_kms::Config::builder()
                .behavior_version(BehaviorVersion::latest())
                .region(Region::new("us-east-1"))
                .credentials_provider(credentials)
                .endpoint_url(NOWHERE)
                .http_client(http)
                .retry_config(no_retries)
                .build(),
        ),
    }
}

/// The configuration of the offline tests: the unreachable table, no queues.
fn offline_config() -> Config {
    Config {
        table: "t".into(),
        queues: Default::default(),
        tenant_from_header: true,
        cursor_key: CursorKey::development(),
        subscriptions: Default::default(),
        rebuild: Default::default(),
    }
}

/// The HTTP API as the ingest function serves it, over the unreachable table.
fn router() -> axum::Router {
    event_adapters::functions::ingest_router(
        &offline_config(),
        &unreachable_clients(),
        Catalog::default(),
    )
}

/// A delivery message with a hostile event.
fn delivery_body() -> impl Strategy<Value = String> {
    (
        edge_text(),
        hostile_payload(),
        prop_oneof![
            Just("live"),
            Just("backfill"),
            Just("replay"),
            Just("startbackfill")
        ],
    )
        .prop_map(|(tenant, payload, kind)| {
            json!({"subscriptionId": "6f1f0f6e-0000-4000-8000-000000000002", "tenantId": tenant,
                "kind": kind, "event": envelope("Loan.Funded", ("Loan", "L-1"), 3, payload)})
            .to_string()
        })
}

/// Text at the edges: multi-byte characters, percent signs, huge numbers, odd times.
fn edge_text() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("aéa".to_string()),
        Just("😀".repeat(40)),
        Just("%".to_string()),
        Just("%FF".to_string()),
        Just("18446744073709551616".to_string()),
        Just("18446744073709551615".to_string()),
        Just("-1".to_string()),
        Just("1e400".to_string()),
        Just("79228162514264337593543950335".to_string()),
        Just("2336-08-25T00:44:39.3-18:31".to_string()),
        Just("0738-01-17T04:43:02.21-09:53".to_string()),
        Just("0000-01-01T00:00:00+23:59".to_string()),
        Just("9999-12-31T23:59:59.999999999-23:59".to_string()),
        Just("Loan.Funded".to_string()),
        Just("x".repeat(3000)),
        ".{0,40}",
    ]
}

/// Percent-encodes every byte outside the unreserved set, so any text makes a valid URI.
fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// A segment: encoded text, or raw percent sequences that do not decode to UTF-8.
fn segment() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => edge_text().prop_map(|s| encode(&s)),
        1 => Just("%FF%FE".to_string()),
        1 => Just("%C3".to_string()),
        1 => Just("Loan".to_string()),
        1 => Just("6f1f0f6e-0000-4000-8000-000000000002".to_string()),
    ]
}

fn request() -> impl Strategy<Value = (String, String, String, Vec<u8>, Option<String>)> {
    let path = prop_oneof![
        segment().prop_map(|e| format!("/events/{e}")),
        Just("/events".to_string()),
        (segment(), segment()).prop_map(|(t, i)| format!("/aggregates/{t}/{i}/events")),
        (segment(), segment()).prop_map(|(t, i)| format!("/aggregates/{t}/{i}/state")),
        segment().prop_map(|c| format!("/correlations/{c}")),
        segment().prop_map(|l| format!("/loans/{l}/payoff")),
        Just("/loans".to_string()),
        segment().prop_map(|f| format!("/funds/{f}/portfolio")),
        segment().prop_map(|p| format!("/projections/{p}/rebuild")),
        (segment(), segment()).prop_map(|(p, j)| format!("/projections/{p}/rebuilds/{j}")),
        segment().prop_map(|j| format!("/projections/loan-summary/rebuilds/{j}")),
        Just("/replay".to_string()),
        Just("/subscriptions".to_string()),
        segment().prop_map(|s| format!("/subscriptions/{s}")),
        segment().prop_map(|s| format!("/subscriptions/{s}/deliveries")),
        segment().prop_map(|s| format!("/subscriptions/{s}/rotate-secret")),
        segment().prop_map(|s| format!("/{s}")),
    ];
    let param = prop_oneof![
        Just("type".to_string()),
        Just("from".to_string()),
        Just("to".to_string()),
        Just("limit".to_string()),
        Just("cursor".to_string()),
        Just("after".to_string()),
        Just("on".to_string()),
        Just("asOf".to_string()),
        Just("knownAt".to_string()),
        Just("status".to_string()),
        Just("borrowerId".to_string()),
        Just("fundId".to_string()),
        Just("delinquent".to_string()),
        edge_text(),
    ];
    let query = prop::collection::vec((param, prop_oneof![segment(), Just("%".to_string())]), 0..5)
        .prop_map(|kv| {
            kv.iter()
                .map(|(k, v)| format!("{}={v}", encode(k)))
                .collect::<Vec<_>>()
                .join("&")
        });
    let body = prop_oneof![
        prop::collection::vec(any::<u8>(), 0..200),
        replay_body().prop_map(|v| v.to_string().into_bytes()),
        subscription_body().prop_map(|v| v.to_string().into_bytes()),
    ];
    let tenant = prop_oneof![
        4 => Just(Some("fuzz".to_string())),
        1 => Just(None),
        1 => edge_text().prop_map(Some),
    ];
    (
        prop_oneof![6 => Just("GET"), 3 => Just("POST"), 1 => Just("PUT"), 1 => Just("PATCH"), 1 => Just("DELETE")],
        path,
        query,
        body,
        tenant,
    )
        .prop_map(|(m, p, q, b, t)| (m.to_string(), p, q, b, t))
}

/// A subscription body: names, filters, targets (IP literals only: no DNS in a property
/// test) and formats at the edges.
fn subscription_body() -> impl Strategy<Value = Value> {
    let filter = prop_oneof![
        Just(json!({})),
        Just(
            json!({"eventTypes": ["Loan.*"], "payload": {"amount": [{"numeric": [">", "1e400"]}]}})
        ),
        edge_text().prop_map(|t| json!({"eventTypes": [t]})),
        edge_text().prop_map(|t| json!({"payload": {t: [{"prefix": 1}]}})),
        edge_text()
            .prop_map(|t| json!({"metadata": {"source": [{"anything-but": {"prefix": t}}]}})),
    ];
    let target = prop_oneof![
        Just(json!({"type": "webhook", "url": "http://127.0.0.1:9/h"})),
        Just(json!({"type": "webhook", "url": "https://169.254.169.254/"})),
        edge_text().prop_map(|u| json!({"type": "webhook", "url": u})),
        edge_text().prop_map(|u| json!({"type": "sqs", "queueUrl": u})),
        edge_text().prop_map(|t| json!({"type": t})),
    ];
    (
        prop::option::of(edge_text()),
        filter,
        target,
        prop::option::of(edge_text()),
        prop::option::of(edge_text()),
    )
        .prop_map(|(name, filter, target, format, start)| {
            json!({"name": name, "filter": filter, "target": target, "format": format,
                "startFrom": start, "status": format})
        })
}

fn replay_body() -> impl Strategy<Value = Value> {
    (
        prop::option::of(edge_text()),
        prop::option::of(edge_text()),
        prop::option::of(edge_text()),
        prop::option::of(prop::collection::vec(edge_text(), 0..3)),
    )
        .prop_map(|(event_type, from, to, handlers)| {
            json!({"eventType": event_type, "from": from, "to": to, "handlers": handlers,
                "dryRun": true})
        })
}

/// A loan event envelope as handlers receive it, with any payload.
fn envelope(event_type: &str, aggregate: (&str, &str), sequence: u64, payload: Value) -> Value {
    json!({"eventId": uuid::Uuid::new_v4(), "eventType": event_type, "eventVersion": 1,
        "domain": "loan", "aggregateType": aggregate.0, "aggregateId": aggregate.1,
        "sequence": sequence, "occurredAt": "2026-01-31T09:00:00.000Z",
        "recordedAt": "2026-01-31T09:00:00.000Z", "payload": payload,
        "metadata": {"correlationId": "c", "tenantId": "t"}})
}

/// A payload whose fields are the ones handlers read, each with an edge value.
fn hostile_payload() -> impl Strategy<Value = Value> {
    let value = prop_oneof![
        edge_text().prop_map(Value::String),
        any::<i64>().prop_map(|n| json!(n)),
        any::<u64>().prop_map(|n| json!(n)),
        any::<f64>().prop_map(|f| json!(f)),
        Just(json!("100000.00")),
        Just(json!("0")),
        Just(json!("100")),
        Just(json!(600)),
        Just(json!(4_000_000_000u64)),
        Just(json!("monthly")),
        Just(json!("quarterly")),
        Just(json!("maturity")),
        Just(json!("amortized")),
        Just(json!("interest_only")),
        Just(json!("2026-01-31")),
        Just(json!("9999-12-31")),
        Just(json!(null)),
        Just(json!([])),
    ];
    let names = prop::sample::select(vec![
        "principal",
        "amount",
        "fundedAmount",
        "interestRate",
        "termMonths",
        "paymentFrequency",
        "amortizationType",
        "fundedAt",
        "firstPaymentDate",
        "requestedAmount",
        "approvedAmount",
        "paymentId",
        "installment",
        "dueDate",
        "result",
        "inspectionId",
        "fundId",
        "borrowerId",
        "method",
        "receivedAt",
    ]);
    prop::collection::btree_map(names, value, 0..12).prop_map(|m| {
        let mut p: serde_json::Map<String, Value> =
            m.into_iter().map(|(k, v)| (k.to_string(), v)).collect();
        p.insert("loanId".into(), json!("L-1"));
        p.insert("drawId".into(), json!("D-1"));
        Value::Object(p)
    })
}

fn subscribed_type() -> impl Strategy<Value = &'static str> {
    let mut types: Vec<&'static str> = handlers::all()
        .iter()
        .flat_map(|h| h.subscriptions().iter().copied())
        .collect();
    types.sort_unstable();
    types.dedup();
    prop::sample::select(types)
}

fn sqs_event(bodies: Vec<(String, Value)>) -> Option<SqsEvent> {
    let records: Vec<Value> = bodies
        .into_iter()
        .enumerate()
        .map(|(i, (body, attributes))| {
            json!({"messageId": format!("m{i}"), "receiptHandle": format!("r{i}"), "body": body,
                "attributes": attributes, "messageAttributes": {},
                "eventSource": "aws:sqs", "awsRegion": "us-east-1"})
        })
        .collect();
    serde_json::from_value(json!({ "Records": records })).ok()
}

fn message_attributes() -> impl Strategy<Value = Value> {
    (
        prop::option::of(prop_oneof![
            Just("1".to_string()),
            Just("4294967296".to_string()),
            edge_text()
        ]),
        prop::option::of(edge_text()),
    )
        .prop_map(|(count, group)| {
            let mut a = serde_json::Map::new();
            if let Some(c) = count {
                a.insert("ApproximateReceiveCount".into(), json!(c));
            }
            if let Some(g) = group {
                a.insert("MessageGroupId".into(), json!(g));
            }
            Value::Object(a)
        })
}

fn batch_runner(store: MemoryStore) -> BatchRunner<MemoryStore, MemoryLedger, MemoryQueue> {
    BatchRunner::new(
        store.clone(),
        MemoryLedger::over(&store),
        handlers::all(),
        MemoryQueue::without_dlq(),
        RetryPolicy {
            base: Duration::from_millis(1),
            cap: Duration::from_millis(2),
            paused: Duration::from_millis(1),
        },
    )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn http_requests_never_panic_and_never_answer_500((method, path, query, body, tenant) in request()) {
        static ROUTER: OnceLock<axum::Router> = OnceLock::new();
        let router = ROUTER.get_or_init(router).clone();
        let uri = if query.is_empty() { path } else { format!("{path}?{query}") };
        let mut req = http::Request::builder().method(method.as_str()).uri(&uri)
            .header("content-type", "application/json");
        if let Some(t) = tenant.as_deref().and_then(|t| http::HeaderValue::from_str(t).ok()) {
            req = req.header("x-tenant-id", t);
        }
        // Half the requests (by the body's length) prefer an asynchronous answer.
        if body.len() % 2 == 1 {
            req = req.header("prefer", "respond-async; wait=1");
        }
        let Ok(req) = req.body(Body::from(body)) else { return Ok(()) };
        let (status, content_type, text) = runtime().block_on(async {
            let resp = router.oneshot(req).await.expect("the router is infallible");
            let status = resp.status().as_u16();
            let ct = resp.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
            let bytes = axum::body::to_bytes(resp.into_body(), 1 << 22).await.unwrap_or_default();
            (status, ct, String::from_utf8_lossy(&bytes).into_owned())
        });
        prop_assert!(status != 500, "{method} {uri}: {status} {text}");
        if status >= 400 {
            prop_assert!(content_type.starts_with("application/json"), "{method} {uri}: {status} {content_type} {text}");
            let v: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
            prop_assert!(v["error"]["code"].is_string(), "{method} {uri}: {status} {text}");
        }
    }

    #[test]
    fn cursors_of_arbitrary_text_are_invalid_cursor(cursor in prop_oneof![
        edge_text(),
        "[A-Za-z0-9_-]{0,200}",
        prop::collection::vec(any::<u8>(), 0..200).prop_map(|b| {
            use base64::Engine;
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b)
        }),
    ]) {
        let e = CursorKey::development()
            .open(&["byType", "t", "Loan.Funded", "0000", "9999"], &cursor)
            .unwrap_err();
        prop_assert_eq!((e.code, e.field.as_deref()), ("invalid_cursor", Some("cursor")));
    }

    #[test]
    fn windows_of_arbitrary_text_parse_or_are_400(from in prop::option::of(edge_text()), to in prop::option::of(edge_text())) {
        match parse_window(from.as_deref(), to.as_deref()) {
            Ok(w) => prop_assert!(w.from <= w.to, "{w:?}"),
            Err(e) => prop_assert_eq!(e.status.as_u16(), 400),
        }
    }

    #[test]
    fn sqs_messages_of_arbitrary_bodies_and_attributes_never_panic(
        messages in prop::collection::vec((prop_oneof![".{0,200}", edge_text()], message_attributes()), 1..6)
    ) {
        let Some(event) = sqs_event(messages) else { return Ok(()) };
        let runner = batch_runner(MemoryStore::new());
        let resp = runtime().block_on(runner.handle(event.clone(), Duration::from_secs(5)));
        // No DLQ here: an undecodable message must stay on the queue, never vanish.
        prop_assert_eq!(resp.batch_item_failures.len(), event.records.len());
    }

    #[test]
    fn delivery_messages_of_arbitrary_bodies_never_panic(
        messages in prop::collection::vec((prop_oneof![".{0,200}", edge_text(), delivery_body()], message_attributes()), 1..4)
    ) {
        let Some(event) = sqs_event(messages) else { return Ok(()) };
        static RUNNER: OnceLock<DeliveryRunner<WebhookSender>> = OnceLock::new();
        let runner = RUNNER.get_or_init(|| {
            let config = offline_config();
            let sender = WebhookSender::new(EgressPolicy::strict()).expect("a sender");
            event_adapters::functions::delivery_runner(&config, &unreachable_clients(), sender)
        });
        let resp = runtime().block_on(runner.handle(event.clone()));
        // Nothing reachable: every message stays on the queue, none vanishes.
        prop_assert_eq!(resp.batch_item_failures.len(), event.records.len());
    }

    #[test]
    fn rebuild_step_messages_of_arbitrary_bodies_never_panic(
        messages in prop::collection::vec((prop_oneof![
            ".{0,200}",
            edge_text(),
            (edge_text(), edge_text(), any::<i64>()).prop_map(|(t, j, p)| json!({"tenant": t, "jobId": j, "page": p}).to_string()),
        ], message_attributes()), 1..4)
    ) {
        let Some(event) = sqs_event(messages) else { return Ok(()) };
        static RUNNER: OnceLock<event_adapters::operator::rebuild::RebuildRunner> = OnceLock::new();
        let runner = RUNNER.get_or_init(|| {
            let mut config = offline_config();
            config.rebuild.queue_url = Some("http://127.0.0.1:9/q.fifo".into());
            config.rebuild.dlq_url = Some("http://127.0.0.1:9/dlq.fifo".into());
            event_adapters::functions::rebuild_runner(&config, &unreachable_clients()).expect("a runner")
        });
        let resp = runtime().block_on(runner.handle(event.clone()));
        // Nothing reachable (not the job, not the dead letters): every message stays.
        prop_assert_eq!(resp.batch_item_failures.len(), event.records.len());
    }

    #[test]
    fn forged_sqs_messages_with_hostile_payloads_never_panic_handlers(
        created in hostile_payload(),
        event_type in subscribed_type(),
        payload in hostile_payload(),
        attributes in message_attributes(),
        replay in prop::option::of((".{0,20}", prop::collection::vec(edge_text(), 0..3), any::<bool>())),
    ) {
        // The message's stream already holds the event (the runner checks), after a
        // Loan.Created with its own hostile terms when it is on the loan's stream.
        let on_loan = lending_events::catalog::lookup(event_type).is_none_or(|s| s.aggregate_type == "Loan");
        let aggregate = if on_loan { ("Loan", "L-1") } else { ("Draw", "D-1") };
        let loan_created: EventEnvelope = serde_json::from_value(envelope("Loan.Created", ("Loan", "L-1"), 1, created)).unwrap();
        let sequence = if on_loan { 2 } else { 1 };
        let body = envelope(event_type, aggregate, sequence, payload);
        let event: EventEnvelope = serde_json::from_value(body.clone()).unwrap();
        let store = MemoryStore::new();
        store.seed([loan_created, event]);
        let Some(mut sqs) = sqs_event(vec![(body.to_string(), attributes)]) else { return Ok(()) };
        if let Some((id, handlers, rerun)) = replay {
            let attrs = &mut sqs.records[0].message_attributes;
            for (k, v) in [("replay", id), ("handlers", handlers.join(",")), ("rerun", rerun.to_string())] {
                let a: aws_lambda_events::sqs::SqsMessageAttribute =
                    serde_json::from_value(json!({"stringValue": v, "dataType": "String",
                        "stringListValues": [], "binaryListValues": []})).unwrap();
                attrs.insert(k.to_string(), a);
            }
        }
        let runner = batch_runner(store);
        let _ = runtime().block_on(runner.handle(sqs, Duration::from_secs(5)));
    }

    #[test]
    fn stream_records_of_arbitrary_shape_never_panic_dispatch(
        name in prop_oneof![Just("INSERT".to_string()), Just("MODIFY".to_string()), ".{0,8}"],
        kind in prop_oneof![Just(json!({"S": "event"})), Just(json!({"N": "1"})), Just(json!({"S": "é"}))],
        envelope_text in prop_oneof![
            ".{0,200}",
            edge_text(),
            hostile_payload().prop_map(|p| envelope("Loan.Funded", ("Loan", "L-1"), 1, p).to_string()),
            (".{0,40}", edge_text()).prop_map(|(t, id)| envelope(&t, ("Loan", &id), 1, json!({})).to_string()),
        ],
        extra in prop::collection::btree_map("[a-z]{1,8}", prop_oneof![
            Just(json!({"S": "x"})), Just(json!({"N": "1e400"})), Just(json!({"B": "AA=="})),
            Just(json!({"M": {}})), Just(json!({"NULL": true})), Just(json!({"X": 1})),
        ], 0..4),
    ) {
        let mut image: serde_json::Map<String, Value> = extra.into_iter().collect();
        image.insert("kind".into(), kind);
        image.insert("envelope".into(), json!({"S": envelope_text}));
        let record = json!({"eventID": "1", "eventName": name, "eventSource": "aws:dynamodb",
            "awsRegion": "us-east-1", "dynamodb": {"Keys": {}, "NewImage": image,
            "SequenceNumber": "1", "SizeBytes": 1, "StreamViewType": "NEW_IMAGE"}});
        let Ok(record) = serde_json::from_value::<EventRecord>(record) else { return Ok(()) };
        if let Some(Ok((_, env))) = event_of(&record) {
            // What dispatch does with a decoded event before sending it.
            let _ = RoutingTable::standard().domains_for(&env.event_type);
            let _ = env.stream().message_group();
        }
    }
}

#[test]
fn http_fuzzing_reaches_past_validation() {
    // The 503 of the unreachable table proves requests get that far (the property above
    // would pass vacuously if every request stopped at the tenant check).
    let router = router();
    let resp = runtime().block_on(async {
        router
            .oneshot(
                http::Request::get("/events?type=Loan.Funded")
                    .header("x-tenant-id", "fuzz")
                    .body(Body::empty())
                    .unwrap(),
            )
            .await
            .unwrap()
    });
    assert_eq!(resp.status().as_u16(), 503);
}
