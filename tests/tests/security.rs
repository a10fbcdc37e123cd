//! Trust over HTTP on LocalStack: who may publish each type (producers), who may call each
//! route (scopes), the principal stored on what a caller writes, operator actions recorded
//! as `Ops.*` events, and tenants that see nothing of each other through any route.
//!
//! Needs LocalStack and a local runner (`API_URL`, `EVENTS_TABLE`), like the other files.

use std::time::{Duration, Instant};

use event_adapters::http::scopes::{Scope, ROUTES};
use integration_tests::{aws, queue_url, Api};
use lending_events::catalog::CATALOG;
use serde_json::{json, Value};

const WAIT: Duration = Duration::from_secs(60);

fn id(prefix: &str) -> String {
    format!(
        "{prefix}-{}",
        &uuid::Uuid::new_v4().simple().to_string()[..12]
    )
}

fn loan_created(loan: &str) -> Value {
    json!({"eventType": "Loan.Created", "aggregateType": "Loan", "aggregateId": loan,
        "payload": {"loanId": loan, "borrowerId": "B-1", "amount": "100000.00", "interestRate": "7.5",
            "termMonths": 12, "amortization": "amortized", "paymentFrequency": "monthly"}})
}

fn loan_funded(loan: &str) -> Value {
    json!({"eventType": "Loan.Funded", "aggregateType": "Loan", "aggregateId": loan,
        "payload": {"loanId": loan, "fundedAmount": "100000.00", "fundedAt": "2026-01-31T09:00:00Z"},
        "metadata": {"userId": "officer-7", "correlationId": format!("corr-{loan}")}})
}

fn payment(loan: &str, pid: &str, amount: &str) -> Value {
    json!({"eventType": "Payment.Received", "aggregateType": "Loan", "aggregateId": loan,
        "payload": {"paymentId": pid, "loanId": loan, "amount": amount, "method": "ACH",
            "receivedAt": "2026-02-27T12:00:00Z"}})
}

fn error_of(body: &Value) -> (Value, Value) {
    (
        body["error"]["code"].clone(),
        body["error"]["field"].clone(),
    )
}

/// Poll an aggregate's history until it holds `n` events of `event_type`.
async fn wait_for(api: &Api, t: &str, id: &str, event_type: &str, n: usize) -> Vec<Value> {
    let h = api
        .wait_history(t, id, WAIT, |h| {
            h.iter().filter(|e| e["eventType"] == event_type).count() >= n
        })
        .await;
    let got = h.iter().filter(|e| e["eventType"] == event_type).count();
    assert!(got >= n, "{n} {event_type} on {t}/{id}, got {got}");
    h
}

#[tokio::test]
async fn each_handler_owned_type_is_refused_and_nothing_is_stored() {
    let api = Api::new_tenant();
    let owned: Vec<_> = CATALOG.iter().filter(|s| !s.client_may_publish()).collect();
    assert!(owned.len() >= 15, "{} handler-owned types", owned.len());
    for spec in owned {
        let agg = id("X");
        let forged = json!({"eventType": spec.event_type, "aggregateType": spec.aggregate_type,
            "aggregateId": agg, "payload": {spec.aggregate_id_field: agg}});
        // Alone, and fourth in a batch after three valid events of a client type.
        let r = api.post("/events", &forged).await;
        assert_eq!(r.status, 403, "{}: {}", spec.event_type, r.body);
        assert_eq!(
            error_of(&r.body),
            (json!("producer_not_allowed"), json!("eventType")),
            "{}",
            spec.event_type
        );
        let loans: Vec<String> = (0..3).map(|_| id("L")).collect();
        let batch = json!({"events": [loan_created(&loans[0]), loan_created(&loans[1]),
            loan_created(&loans[2]), forged]});
        let r = api.post("/events", &batch).await;
        assert_eq!(r.status, 403, "{}: {}", spec.event_type, r.body);
        assert_eq!(
            error_of(&r.body),
            (json!("producer_not_allowed"), json!("events[3].eventType"))
        );
        // Nothing of either request was stored.
        assert!(api.history(spec.aggregate_type, &agg).await.is_empty());
        for l in &loans {
            assert!(api.history("Loan", l).await.is_empty(), "{l}");
        }
    }
}

#[tokio::test]
async fn follow_ons_are_appended_with_the_handler_as_principal() {
    let api = Api::new_tenant().with_header("x-principal", "svc-origination");
    let loan = id("L");
    let r = api
        .post(
            "/events",
            &json!({"events": [loan_created(&loan), loan_funded(&loan)]}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let h = wait_for(&api, "Loan", &loan, "PaymentSchedule.Generated", 1).await;
    let funded = h.iter().find(|e| e["eventType"] == "Loan.Funded").unwrap();
    assert_eq!(funded["metadata"]["principal"], "svc-origination");
    assert_eq!(funded["metadata"]["userId"], "officer-7");
    let schedule = h
        .iter()
        .find(|e| e["eventType"] == "PaymentSchedule.Generated")
        .unwrap();
    assert_eq!(
        schedule["metadata"]["principal"],
        "handler:payment-schedule"
    );
    // The handler keeps the client's "on behalf of" user.
    assert_eq!(schedule["metadata"]["userId"], "officer-7");
    // A payment is applied by its handler, with the handler as principal.
    let r = api.post("/events", &payment(&loan, "P1", "8675.74")).await;
    assert_eq!(r.status, 201, "{}", r.body);
    let h = wait_for(&api, "Loan", &loan, "Payment.Applied", 1).await;
    let applied = h
        .iter()
        .find(|e| e["eventType"] == "Payment.Applied")
        .unwrap();
    assert_eq!(
        applied["metadata"]["principal"],
        "handler:payment-application"
    );
}

#[tokio::test]
async fn the_principal_is_stored_and_cannot_be_set_by_the_client() {
    let api = Api::new_tenant();
    let loan = id("L");
    let mut forged = loan_created(&loan);
    forged["metadata"] = json!({"principal": "someone-else", "userId": "u-1"});
    let r = api.post("/events", &forged).await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert_eq!(
        error_of(&r.body),
        (json!("validation_failed"), json!("metadata.principal"))
    );
    assert!(api.history("Loan", &loan).await.is_empty());
    // Without X-Principal a local caller is `local`; with it, the header's value.
    let r = api.post("/events", &loan_created(&loan)).await;
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(r.body["events"][0]["metadata"]["principal"], "local");
    let named = api.clone().with_header("x-principal", "svc-7");
    let r = named.post("/events", &loan_funded(&loan)).await;
    assert_eq!(r.status, 201, "{}", r.body);
    let stored = api.history("Loan", &loan).await;
    let principals: Vec<&Value> = stored.iter().map(|e| &e["metadata"]["principal"]).collect();
    assert_eq!(principals, [&json!("local"), &json!("svc-7")]);
}

#[tokio::test]
async fn each_route_refuses_a_caller_without_its_scope() {
    let tenant = Api::new_tenant();
    for r in ROUTES {
        let Some(needed) = r.scope else { continue };
        // Every scope but the one the route needs.
        let others: Vec<String> = Scope::FIXED
            .iter()
            .filter(|s| **s != needed.scope())
            .map(|s| s.to_string())
            .collect();
        let api = tenant.clone().with_header("x-scopes", &others.join(" "));
        let path = r
            .path
            .split('/')
            .map(|s| if s.starts_with('{') { "x1" } else { s })
            .collect::<Vec<_>>()
            .join("/");
        let body = match (r.method, r.path) {
            ("POST", "/events") => loan_created(&id("L")),
            ("PUT", _) => json!({"enabled": false}),
            _ => json!({"all": true}),
        };
        let reply = api
            .raw(
                r.method,
                &path,
                Some(body.to_string().into_bytes()),
                Some("application/json"),
                true,
            )
            .await;
        assert_eq!(reply.status, 403, "{} {path}: {}", r.method, reply.body);
        assert_eq!(reply.body["error"]["code"], "forbidden");
        let message = reply.body["error"]["message"].as_str().unwrap_or_default();
        assert!(
            message.contains(&needed.scope().to_string()),
            "{} {path}: {message}",
            r.method
        );
    }
    // Per-domain write scopes: a payment service may publish payment types only.
    let payments = tenant
        .clone()
        .with_header("x-scopes", "events:write:payment events:read");
    let loan = id("L");
    let r = payments.post("/events", &loan_created(&loan)).await;
    assert_eq!(r.status, 403, "{}", r.body);
    assert_eq!(error_of(&r.body), (json!("forbidden"), json!("eventType")));
    assert!(r.body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("events:write:loan"));
    let batch = json!({"events": [payment(&loan, "P1", "10.00"), loan_created(&loan)]});
    let r = payments.post("/events", &batch).await;
    assert_eq!(
        error_of(&r.body),
        (json!("forbidden"), json!("events[1].eventType"))
    );
    assert!(payments.history("Loan", &loan).await.is_empty());
    let r = payments
        .post("/events", &payment(&loan, "P1", "10.00"))
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    // No X-Scopes at all: every scope, as before scopes existed.
    let r = tenant.post("/events", &loan_created(&id("L"))).await;
    assert_eq!(r.status, 201, "{}", r.body);
}

/// Wait until the tenant's dead-letter listing of `domain` holds `event_id`.
async fn wait_dead_letter(api: &Api, domain: &str, event_id: &str) -> Value {
    let start = Instant::now();
    loop {
        let r = api.get(&format!("/dead-letters?domain={domain}")).await;
        assert_eq!(r.status, 200, "{}", r.body);
        let found = r.body["deadLetters"][0]["messages"]
            .as_array()
            .and_then(|m| m.iter().find(|l| l["eventId"] == event_id).cloned());
        if let Some(l) = found {
            return l;
        }
        assert!(
            start.elapsed() < WAIT,
            "{event_id} never reached the {domain} DLQ"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

#[tokio::test]
async fn operator_actions_are_ops_events_and_tenants_see_nothing_of_each_other() {
    let a = Api::new_tenant().with_header("x-principal", "ops-alice");
    let b = Api::new_tenant().with_header("x-principal", "ops-bob");
    let loan = id("L");
    let r = a
        .post(
            "/events",
            &json!({"events": [loan_created(&loan), loan_funded(&loan)]}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let funded_id = r.body["events"][1]["eventId"].as_str().unwrap().to_string();
    wait_for(&a, "Loan", &loan, "PaymentSchedule.Generated", 1).await;

    // Replay: a dry run is not recorded; a real one is, with selection, handlers, counts.
    let replay = json!({"aggregateType": "Loan", "aggregateId": loan,
        "handlers": ["payment-schedule"]});
    let mut dry = replay.clone();
    dry["dryRun"] = json!(true);
    let r = a.post("/replay", &dry).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(integration_tests::events_of_type(&a, "Ops.ReplayRequested")
        .await
        .is_empty());
    let r = a.post("/replay", &replay).await;
    assert_eq!(r.status, 202, "{}", r.body);
    let replay_id = r.body["replayId"].clone();
    let sent = r.body["sent"].clone();
    let recorded = integration_tests::events_of_type(&a, "Ops.ReplayRequested").await;
    assert_eq!(recorded.len(), 1, "{recorded:?}");
    let rec = &recorded[0];
    assert_eq!(rec["metadata"]["principal"], "ops-alice");
    assert_eq!(rec["aggregateType"], "Ops");
    assert_eq!(rec["aggregateId"], json!(a.tenant));
    assert_eq!(rec["payload"]["replayId"], replay_id);
    assert_eq!(rec["payload"]["selection"]["aggregateId"], json!(loan));
    assert_eq!(rec["payload"]["handlers"], json!(["payment-schedule"]));
    let stored = a.history("Loan", &loan).await.len();
    assert_eq!(rec["payload"]["events"], json!(stored));
    assert_eq!(rec["payload"]["sent"], sent);
    // B replaying A's loan finds nothing of it (and records nothing of A's).
    let r = b.post("/replay", &replay).await;
    assert_eq!(
        (r.status, r.body["events"].clone()),
        (202, json!(0)),
        "{}",
        r.body
    );

    // Handler switches: off and on again, each recorded with the principal.
    for enabled in [false, true] {
        let r = a
            .raw(
                "PUT",
                "/handlers/notifications",
                Some(json!({ "enabled": enabled }).to_string().into_bytes()),
                Some("application/json"),
                true,
            )
            .await;
        assert_eq!(r.status, 200, "{}", r.body);
        assert_eq!(r.body["enabled"], enabled);
    }
    let switched = integration_tests::events_of_type(&a, "Ops.HandlerSwitched").await;
    let states: Vec<(Value, Value)> = switched
        .iter()
        .map(|e| {
            (
                e["payload"]["enabled"].clone(),
                e["metadata"]["principal"].clone(),
            )
        })
        .collect();
    assert_eq!(
        states,
        [
            (json!(false), json!("ops-alice")),
            (json!(true), json!("ops-alice"))
        ]
    );

    // A dead letter of A's: a payment above the payoff amount is refused by its handler.
    let r = a
        .post("/events", &payment(&loan, "P-OVER", "500000.00"))
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let over_id = r.body["events"][0]["eventId"].as_str().unwrap().to_string();
    let letter = wait_dead_letter(&a, "payment", &over_id).await;
    assert_eq!(letter["tenant"], json!(a.tenant));
    // B sees none of it, and B's redrive and purge of "everything" touch none of it.
    let r = b.get("/dead-letters").await;
    assert_eq!(r.status, 200, "{}", r.body);
    for d in r.body["deadLetters"].as_array().unwrap() {
        for m in d["messages"].as_array().unwrap() {
            assert_eq!(m["tenant"], json!(b.tenant), "B sees {m}");
        }
    }
    for action in ["redrive", "purge"] {
        let r = b
            .post(
                &format!("/dead-letters/payment/{action}"),
                &json!({"all": true}),
            )
            .await;
        assert_eq!(r.status, 200, "{}", r.body);
        assert_eq!(r.body["eventIds"], json!([]), "B {action}: {}", r.body);
    }
    wait_dead_letter(&a, "payment", &over_id).await;

    // A redrives it (the handler refuses it again: back in the DLQ), then purges it.
    let r = a
        .post(
            "/dead-letters/payment/redrive",
            &json!({ "eventIds": [over_id] }),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["eventIds"], json!([over_id]));
    wait_dead_letter(&a, "payment", &over_id).await;
    let r = a
        .post(
            "/dead-letters/payment/purge",
            &json!({ "eventIds": [over_id] }),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["eventIds"], json!([over_id]));
    // Independently: the DLQ no longer holds it.
    let clients = aws().await;
    let dlq = queue_url(
        &clients.sqs,
        &format!("{}-payment-dlq.fifo", integration_tests::prefix()),
    )
    .await;
    assert!(
        !integration_tests::event_ids_on(&clients.sqs, &dlq, 1)
            .await
            .contains(&over_id),
        "the purged letter is still in the DLQ"
    );
    for (t, key) in [
        ("Ops.DeadLettersRedriven", "redriven"),
        ("Ops.DeadLettersPurged", "purged"),
    ] {
        let recorded = integration_tests::events_of_type(&a, t).await;
        assert_eq!(recorded.len(), 1, "{t} ({key}): {recorded:?}");
        let p = &recorded[0]["payload"];
        assert_eq!(p["eventIds"], json!([over_id]), "{t}");
        assert_eq!(p["domain"], "payment");
        assert_eq!(p["count"], 1);
        assert_eq!(recorded[0]["metadata"]["principal"], "ops-alice");
    }

    // B reads nothing of A's through any read route, and no Ops event of A's.
    assert!(b.history("Loan", &loan).await.is_empty());
    assert_eq!(
        b.get(&format!("/aggregates/Loan/{loan}/state"))
            .await
            .status,
        404
    );
    assert_eq!(b.get(&format!("/events/{funded_id}")).await.status, 404);
    let r = b.get(&format!("/correlations/corr-{loan}")).await;
    assert!(
        r.status == 404 || r.body["eventCount"] == 0,
        "{}: {}",
        r.status,
        r.body
    );
    assert!(integration_tests::events_of_type(&b, "Loan.Funded")
        .await
        .is_empty());
    // B's own actions are on B's stream (its replay of nothing, recorded as B's); nothing of
    // A's. B's redrive and purge touched no letter, so they recorded nothing.
    let b_replays = integration_tests::events_of_type(&b, "Ops.ReplayRequested").await;
    assert_eq!(b_replays.len(), 1, "{b_replays:?}");
    assert_eq!(b_replays[0]["metadata"]["principal"], "ops-bob");
    assert_eq!(b_replays[0]["metadata"]["tenantId"], json!(b.tenant));
    assert_eq!(b_replays[0]["payload"]["events"], 0);
    for t in [
        "Ops.HandlerSwitched",
        "Ops.DeadLettersRedriven",
        "Ops.DeadLettersPurged",
    ] {
        assert!(
            integration_tests::events_of_type(&b, t).await.is_empty(),
            "B sees {t}"
        );
    }
    // And A reads its own.
    assert_eq!(a.get(&format!("/events/{funded_id}")).await.status, 200);
}
