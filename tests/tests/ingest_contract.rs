//! The ingest contract: status codes, the JSON error shape, idempotent resends, all-or-
//! nothing batches, optimistic concurrency and tenant isolation, against the real stack.

use aws_sdk_dynamodb::types::AttributeValue;
use event_adapters::store::layout;
use integration_tests::{aws, table, Api};
use lending_events::envelope::StreamId;
use serde_json::{json, Value};

fn flagged(b: &str, reason: &str) -> Value {
    json!({"eventType": "Borrower.Flagged", "aggregateType": "Borrower", "aggregateId": b,
        "payload": {"borrowerId": b, "reason": reason}})
}

fn new_id(prefix: &str) -> String {
    format!("{prefix}-{}", uuid::Uuid::new_v4().simple())
}

fn error_of(r: &integration_tests::Reply) -> (&str, Option<&str>) {
    (
        r.body["error"]["code"].as_str().unwrap_or("?"),
        r.body["error"]["field"].as_str(),
    )
}

#[tokio::test]
async fn a_bad_batch_stores_nothing() {
    let api = Api::new_tenant();
    let b = new_id("B");
    let good_id = uuid::Uuid::new_v4();
    let mut good = flagged(&b, "fine");
    good["eventId"] = json!(good_id);
    let mut bad = flagged(&b, "bad");
    bad["payload"]["reason"] = json!(42);
    let r = api.post("/events", &json!({"events": [good, bad]})).await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert_eq!(
        error_of(&r),
        ("validation_failed", Some("events[1].payload.reason"))
    );
    assert!(r.body["error"]["message"]
        .as_str()
        .is_some_and(|m| !m.is_empty()));
    assert!(api.history("Borrower", &b).await.is_empty());

    // Not even the eventId guard of the valid event was written.
    let clients = aws().await;
    let guard = clients
        .dynamodb
        .get_item()
        .table_name(table())
        .set_key(Some(layout::key(
            layout::guard_pk(&api.tenant, &good_id),
            0,
        )))
        .consistent_read(true)
        .send()
        .await
        .expect("GetItem");
    assert!(guard.item().is_none());
    let stream_items = clients
        .dynamodb
        .query()
        .table_name(table())
        .key_condition_expression("pk = :pk")
        .expression_attribute_values(
            ":pk",
            AttributeValue::S(layout::stream_pk(&StreamId {
                tenant_id: &api.tenant,
                aggregate_type: "Borrower",
                aggregate_id: &b,
            })),
        )
        .consistent_read(true)
        .send()
        .await
        .expect("Query");
    assert_eq!(stream_items.count(), 0);
}

#[tokio::test]
async fn errors_have_the_documented_status_and_shape() {
    let api = Api::new_tenant();
    let b = new_id("B");

    let r = api
        .raw(
            "POST",
            "/events",
            Some(flagged(&b, "x").to_string().into_bytes()),
            Some("application/json"),
            false,
        )
        .await;
    assert_eq!((r.status, error_of(&r).0), (401, "unauthorized"));

    let r = api
        .raw(
            "POST",
            "/events",
            Some(b"reason=x".to_vec()),
            Some("application/x-www-form-urlencoded"),
            true,
        )
        .await;
    assert_eq!((r.status, error_of(&r).0), (415, "unsupported_media_type"));

    let r = api
        .raw(
            "POST",
            "/events",
            Some(b"{\"eventType\": ".to_vec()),
            Some("application/json"),
            true,
        )
        .await;
    assert_eq!((r.status, error_of(&r).0), (400, "malformed_json"));

    let mut unknown = flagged(&b, "x");
    unknown["eventType"] = json!("Borrower.Teleported");
    let r = api.post("/events", &unknown).await;
    assert_eq!(
        (r.status, error_of(&r)),
        (400, ("unknown_event_type", Some("eventType")))
    );

    let mut wrong = flagged(&b, "x");
    wrong["aggregateType"] = json!("Loan");
    let r = api.post("/events", &wrong).await;
    assert_eq!((r.status, error_of(&r).0), (400, "aggregate_mismatch"));

    let big = flagged(&b, &"x".repeat(300 * 1024));
    let r = api.post("/events", &big).await;
    assert_eq!((r.status, error_of(&r).0), (413, "payload_too_large"));

    let huge = vec![b' '; 1024 * 1024 + 10];
    let r = api
        .raw(
            "POST",
            "/events",
            Some(huge),
            Some("application/json"),
            true,
        )
        .await;
    assert_eq!((r.status, error_of(&r).0), (413, "payload_too_large"));

    let r = api.get("/nowhere").await;
    assert_eq!((r.status, error_of(&r).0), (404, "not_found"));

    let r = api
        .get(&format!("/aggregates/Borrower/{b}/events?limit=abc"))
        .await;
    assert_eq!(
        (r.status, error_of(&r)),
        (400, ("validation_failed", Some("limit")))
    );

    let r = api
        .raw(
            "GET",
            &format!("/aggregates/Borrower/{b}/events"),
            None,
            None,
            false,
        )
        .await;
    assert_eq!(r.status, 401);

    assert!(
        api.history("Borrower", &b).await.is_empty(),
        "no failed request stored anything"
    );
}

#[tokio::test]
async fn resending_the_same_events_is_idempotent_and_reusing_an_id_is_a_conflict() {
    let api = Api::new_tenant();
    let b = new_id("B");
    let mut events = vec![flagged(&b, "one"), flagged(&b, "two")];
    for e in &mut events {
        e["eventId"] = json!(uuid::Uuid::new_v4());
    }
    let body = json!({ "events": events });
    let first = api.post("/events", &body).await;
    assert_eq!(first.status, 201, "{}", first.body);
    let again = api.post("/events", &body).await;
    assert_eq!(again.status, 200, "{}", again.body);
    assert_eq!(
        again.body["events"], first.body["events"],
        "the originally stored envelopes"
    );
    assert_eq!(api.history("Borrower", &b).await.len(), 2);

    let mut changed = events[0].clone();
    changed["payload"]["reason"] = json!("something else");
    let r = api.post("/events", &changed).await;
    assert_eq!((r.status, error_of(&r).0), (409, "event_id_conflict"));
    assert_eq!(api.history("Borrower", &b).await.len(), 2);
}

#[tokio::test]
async fn concurrent_appends_to_one_aggregate_get_gapless_sequences() {
    let api = Api::new_tenant();
    let b = new_id("B");
    let writers: Vec<_> = (0..20)
        .map(|i| {
            let api = api.clone();
            let e = flagged(&b, &format!("writer {i}"));
            tokio::spawn(async move { api.post("/events", &e).await })
        })
        .collect();
    let mut created = 0;
    for w in writers {
        let r = w.await.expect("writer task");
        assert!(
            r.status == 201 || r.status == 409,
            "{} {}",
            r.status,
            r.body
        );
        if r.status == 201 {
            created += 1;
        } else {
            assert_eq!(r.body["error"]["code"], json!("sequence_conflict"));
        }
    }
    let history = api.history("Borrower", &b).await;
    let seqs: Vec<u64> = history
        .iter()
        .map(|e| e["sequence"].as_u64().unwrap())
        .collect();
    assert_eq!(
        seqs,
        (1..=created as u64).collect::<Vec<_>>(),
        "sequences 1..N without gaps or duplicates"
    );
    // Writers without expectedSequence retry internally; under heavy load a few may still
    // give up with 409 (checked above), never leaving a gap.
    assert!(created >= 1, "at least one writer wins");
}

#[tokio::test]
async fn expected_sequence_lets_exactly_one_writer_win() {
    let api = Api::new_tenant();
    let b = new_id("B");
    let writers: Vec<_> = (0..10)
        .map(|i| {
            let api = api.clone();
            let mut e = flagged(&b, &format!("writer {i}"));
            e["expectedSequence"] = json!(0);
            tokio::spawn(async move { api.post("/events", &e).await })
        })
        .collect();
    let mut statuses = Vec::new();
    for w in writers {
        let r = w.await.expect("writer task");
        if r.status == 409 {
            assert_eq!(error_of(&r).0, "sequence_conflict");
        }
        statuses.push(r.status);
    }
    assert_eq!(
        statuses.iter().filter(|s| **s == 201).count(),
        1,
        "{statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|s| **s == 409).count(),
        9,
        "{statuses:?}"
    );
    assert_eq!(api.history("Borrower", &b).await.len(), 1);

    let mut next = flagged(&b, "after");
    next["expectedSequence"] = json!(1);
    assert_eq!(api.post("/events", &next).await.status, 201);
}

#[tokio::test]
async fn one_tenant_never_sees_another_tenants_events() {
    let a = Api::new_tenant();
    let b_tenant = Api::new_tenant();
    let id = new_id("B");
    assert_eq!(a.post("/events", &flagged(&id, "mine")).await.status, 201);
    assert_eq!(a.history("Borrower", &id).await.len(), 1);
    assert!(b_tenant.history("Borrower", &id).await.is_empty());
    // The other tenant's stream of the same aggregate starts at 1 of its own.
    let r = b_tenant.post("/events", &flagged(&id, "theirs")).await;
    assert_eq!(r.body["events"][0]["sequence"], json!(1));
}
