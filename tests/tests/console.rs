//! The console in a real headless Chromium (Debian's `chromium` and `chromium-driver`,
//! installed by `localstack/install-browser.sh`), driven through chromedriver against the
//! local runner on LocalStack. What the pages show is checked against independent reads:
//! the events the test posted and what the table itself holds.
//!
//! Screenshots of every page go to `target/console-screenshots/`.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use integration_tests::{api_url, aws, scan_events, table, Api, Receiver, ReceiverMode};
use serde_json::{json, Value};

/// How long a page may take to show what the test waits for: generous, for LocalStack on a
/// busy machine (on an idle one each wait takes a few seconds).
const WAIT: Duration = Duration::from_secs(180);

/// chromedriver on a free port, stopped when dropped.
struct Driver {
    child: Child,
    port: u16,
}

impl Driver {
    fn start() -> Driver {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("a free port");
        let child = Command::new(std::env::var("CHROMEDRIVER").unwrap_or("chromedriver".into()))
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver (install it with: bash localstack/install-browser.sh)");
        Driver { child, port }
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn browser(driver: &Driver) -> Client {
    let caps: serde_json::Map<String, Value> = serde_json::from_value(json!({
        "goog:chromeOptions": {
            "binary": std::env::var("CHROMIUM").unwrap_or("/usr/bin/chromium".into()),
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--window-size=1280,900", "--lang=en-US"]
        }
    }))
    .unwrap();
    let url = format!("http://127.0.0.1:{}", driver.port);
    let start = Instant::now();
    loop {
        match ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
            .capabilities(caps.clone())
            .connect(&url)
            .await
        {
            Ok(c) => return c,
            Err(e) if start.elapsed() < Duration::from_secs(20) => {
                let _ = e;
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(e) => panic!("cannot start a Chromium session through chromedriver: {e}"),
        }
    }
}

fn screenshots() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/console-screenshots");
    std::fs::create_dir_all(&dir).expect("screenshot folder");
    dir
}

async fn shot(c: &Client, name: &str) {
    let png = c.screenshot().await.expect("screenshot");
    std::fs::write(screenshots().join(format!("{name}.png")), png).expect("write screenshot");
}

/// Wait until `css` matches an element (the page renders asynchronously).
async fn wait_for(c: &Client, css: &str) -> fantoccini::elements::Element {
    c.wait()
        .at_most(WAIT)
        .every(Duration::from_millis(250))
        .for_element(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("{css} did not appear within {WAIT:?}: {e}"))
}

/// Evaluate a script until it returns true.
async fn wait_until(c: &Client, what: &str, script: &str) {
    wait_until_reloading(c, what, script, None).await
}

/// Evaluate a script until it returns true, reloading the page every `reload` if given.
async fn wait_until_reloading(c: &Client, what: &str, script: &str, reload: Option<Duration>) {
    let start = Instant::now();
    let mut loaded = Instant::now();
    loop {
        let v = c.execute(script, vec![]).await.expect("script");
        if v == json!(true) {
            return;
        }
        if start.elapsed() > WAIT {
            shot(c, &format!("failed-{}", what.replace(' ', "-"))).await;
            panic!("{what}: not within {WAIT:?} (screenshot in target/console-screenshots)");
        }
        if reload.is_some_and(|r| loaded.elapsed() > r) {
            c.refresh().await.expect("reload");
            loaded = Instant::now();
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

/// The text of the element `css` names (it must be on the page).
async fn text_of(c: &Client, css: &str) -> String {
    c.find(Locator::Css(css))
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

fn console(path: &str, tenant: &str, extra: &str) -> String {
    // `scopes=` (empty) resets a scope set earlier in the same tab: every scope again.
    format!("{}{path}?tenant={tenant}&scopes={extra}", api_url())
}

fn loan_events(loan: &str, corr: &str) -> Value {
    json!({"events": [
        {"eventType": "Loan.Created", "aggregateType": "Loan", "aggregateId": loan,
         "payload": {"loanId": loan, "borrowerId": "B-1", "amount": "100000.00", "interestRate": "7.5",
            "termMonths": 12, "amortization": "amortized", "paymentFrequency": "monthly"},
         "metadata": {"correlationId": corr}},
        {"eventType": "Loan.Funded", "aggregateType": "Loan", "aggregateId": loan,
         "payload": {"loanId": loan, "fundedAmount": "100000.00", "fundedAt": "2026-01-31T09:00:00Z"},
         "metadata": {"correlationId": corr}}
    ]})
}

#[tokio::test]
async fn the_console_shows_the_feed_the_schedule_the_graph_and_redrives_a_dead_letter() {
    let tenant = format!(
        "console-{}",
        &uuid::Uuid::new_v4().simple().to_string()[..8]
    );
    let api = Api::for_tenant(&tenant);
    let driver = Driver::start();
    let c = browser(&driver).await;
    let test_started = Instant::now();

    // 1. The live feed shows an event published while the page is open.
    c.goto(&console("/console", &tenant, "")).await.unwrap();
    wait_until(
        &c,
        "the feed connects",
        "return document.getElementById('feed-status')?.textContent === 'live'",
    )
    .await;
    let loan = "L-console";
    let corr = format!("corr-{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
    // Timed from the request: under load the answer itself can come after the feed shows it.
    let published = Instant::now();
    let r = api.post("/events", &loan_events(loan, &corr)).await;
    assert_eq!(r.status, 201, "{}", r.body);
    let funded_id = r.body["events"][1]["eventId"].as_str().unwrap().to_string();
    wait_for(&c, &format!("#feed tr[data-event-id='{funded_id}']")).await;
    let feed_delay = published.elapsed();
    let row = c
        .find(Locator::Css(&format!(
            "#feed tr[data-event-id='{funded_id}']"
        )))
        .await
        .unwrap();
    let text = row.text().await.unwrap();
    assert!(
        text.contains("Loan.Funded") && text.contains(&format!("Loan/{loan}")),
        "{text}"
    );
    // Each row links to its aggregate and correlation.
    let links: Vec<String> = {
        let mut out = Vec::new();
        for a in row.find_all(Locator::Css("a")).await.unwrap() {
            out.push(a.attr("href").await.unwrap().unwrap_or_default());
        }
        out
    };
    assert!(
        links
            .iter()
            .any(|h| h.starts_with(&format!("/console/aggregates/Loan/{loan}"))),
        "{links:?}"
    );
    assert!(
        links
            .iter()
            .any(|h| h.starts_with(&format!("/console/correlations/{corr}"))),
        "{links:?}"
    );
    assert!(
        feed_delay < Duration::from_secs(20),
        "the feed took {feed_delay:?}"
    );
    shot(&c, "feed").await;

    // 2. The correlation graph: the Loan.Funded chain, every handler green once done.
    c.goto(&console(
        &format!("/console/correlations/{corr}"),
        &tenant,
        "",
    ))
    .await
    .unwrap();
    wait_for(&c, "#causal-graph .node[data-event-type='Loan.Funded']").await;
    // The page refreshes itself while anything is pending; expect the whole chain.
    let clients = aws().await;
    let expected_chain = [
        "Loan.Created",
        "Loan.Funded",
        "PaymentSchedule.Generated",
        "Document.Generated",
        "Notification.Sent",
    ];
    let start = Instant::now();
    let stored_in_correlation = loop {
        let stored: Vec<Value> = scan_events(&clients.dynamodb, &table(), &tenant)
            .await
            .into_iter()
            .filter(|e| e["metadata"]["correlationId"] == json!(corr))
            .collect();
        let types: Vec<&str> = stored
            .iter()
            .map(|e| e["eventType"].as_str().unwrap())
            .collect();
        // 3 closing documents, the schedule and the funding notice follow the funding.
        if expected_chain.iter().all(|t| types.contains(t)) && stored.len() >= 7 {
            break stored;
        }
        assert!(
            start.elapsed() < WAIT,
            "the chain was not stored: {types:?}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    wait_until_reloading(
        &c,
        "every node of the chain drawn and every handler completed",
        &format!(
            "const nodes = document.querySelectorAll('#causal-graph .node');
             const hs = [...document.querySelectorAll('#causal-graph .handler')];
             return nodes.length === {} && hs.length > 0 && hs.every(h => h.dataset.status === 'COMPLETED');",
            stored_in_correlation.len()
        ),
        Some(Duration::from_secs(10)),
    )
    .await;
    let colours = c
        .execute(
            "return [...document.querySelectorAll('#causal-graph .handler circle')].map(c => c.getAttribute('fill'))",
            vec![],
        )
        .await
        .unwrap();
    let colours: Vec<String> = serde_json::from_value(colours).unwrap();
    assert!(!colours.is_empty());
    assert!(
        colours.iter().all(|c| c == "#1a7f37"),
        "every handler green: {colours:?}"
    );
    let funded_node = c
        .find(Locator::Css(
            "#causal-graph .node[data-event-type='Loan.Funded']",
        ))
        .await
        .unwrap();
    let funded_handlers = funded_node
        .find_all(Locator::Css(".handler"))
        .await
        .unwrap()
        .len();
    assert!(
        funded_handlers >= 3,
        "Loan.Funded has its handlers drawn ({funded_handlers})"
    );
    shot(&c, "correlation").await;

    // 3. The loan page: the schedule chart with one bar per installment (12 monthly).
    c.goto(&console(
        &format!("/console/aggregates/Loan/{loan}"),
        &tenant,
        "",
    ))
    .await
    .unwrap();
    let chart = wait_for(&c, "#schedule-chart").await;
    let bars = c
        .find_all(Locator::Css("#schedule-chart g.installment"))
        .await
        .unwrap()
        .len();
    let schedule = stored_in_correlation
        .iter()
        .find(|e| e["eventType"] == "PaymentSchedule.Generated")
        .expect("the stored schedule");
    let stored_installments = schedule["payload"]["payments"].as_array().unwrap().len();
    assert_eq!(stored_installments, 12);
    assert_eq!(bars, stored_installments, "one bar per installment");
    assert_eq!(
        chart.attr("data-installments").await.unwrap().as_deref(),
        Some("12")
    );
    assert!(c
        .find(Locator::Css("#schedule-chart polyline.balance"))
        .await
        .is_ok());
    shot(&c, "loan").await;

    // 4. One event.
    c.goto(&console(
        &format!("/console/events/{funded_id}"),
        &tenant,
        "",
    ))
    .await
    .unwrap();
    let envelope = wait_for(&c, "#envelope").await.text().await.unwrap();
    assert!(envelope.contains(&funded_id) && envelope.contains("Loan.Funded"));
    shot(&c, "event").await;

    // 5. A poison event (the reversal of a payment never received) is dead-lettered; redrive
    // it from the page.
    let r = api
        .post(
            "/events",
            &json!({"eventType": "Payment.Reversed", "aggregateType": "Loan", "aggregateId": loan,
                "payload": {"paymentId": "P-never-received", "loanId": loan,
                    "reason": "returned: account closed"}}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let poison = r.body["events"][0]["eventId"].as_str().unwrap().to_string();
    // Wait through the API until the runner has dead-lettered it (a listing peeks at the queue,
    // so the page is opened once, not reloaded while a listing may still be running).
    let start = Instant::now();
    loop {
        let r = api.get("/dead-letters?domain=payment").await;
        if r.body.to_string().contains(&poison) {
            break;
        }
        assert!(
            start.elapsed() < WAIT,
            "the poison event was not dead-lettered: {}",
            r.body
        );
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    c.goto(&console("/console/dead-letters", &tenant, ""))
        .await
        .unwrap();
    let row_css = format!("section[data-domain='payment'] tr[data-event-id='{poison}']");
    wait_for(&c, &row_css).await;
    let row = c.find(Locator::Css(&row_css)).await.unwrap();
    let row_text = row.text().await.unwrap();
    assert!(row_text.contains("payment-application"), "{row_text}");
    row.find(Locator::Css("input[type=checkbox]"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    shot(&c, "dead-letters").await;
    c.find(Locator::Css(
        "section[data-domain='payment'] button[data-action='redrive-selected']",
    ))
    .await
    .unwrap()
    .click()
    .await
    .unwrap();
    wait_until(
        &c,
        "the page reports the redrive",
        "return (document.getElementById('action-result')?.textContent || '').startsWith('Redriven: 1')",
    )
    .await;
    // Independently: the redrive is recorded as an Ops event naming the poison event.
    let start = Instant::now();
    loop {
        let ops: Vec<Value> = scan_events(&clients.dynamodb, &table(), &tenant)
            .await
            .into_iter()
            .filter(|e| e["eventType"] == "Ops.DeadLettersRedriven")
            .collect();
        if ops
            .iter()
            .any(|e| e["payload"].to_string().contains(&poison))
        {
            break;
        }
        assert!(
            start.elapsed() < WAIT,
            "no Ops.DeadLettersRedriven for {poison}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }

    // 6. Handlers: switches and statistics.
    c.goto(&console("/console/handlers", &tenant, ""))
        .await
        .unwrap();
    wait_for(
        &c,
        "#handlers tr[data-handler='payment-schedule'] svg.histogram",
    )
    .await;
    shot(&c, "handlers").await;

    // 7. Without the ops scopes the buttons are disabled and say why.
    c.goto(&console("/console/dead-letters", &tenant, "events:read"))
        .await
        .unwrap();
    let button = wait_for(&c, "#redrive-all").await;
    assert!(!button.is_enabled().await.unwrap(), "redrive is disabled");
    let reason = text_of(&c, "#scope-reason").await;
    assert!(reason.contains("ops:dead-letters"), "{reason}");
    shot(&c, "dead-letters-without-scope").await;
    c.goto(&console("/console/handlers", &tenant, "events:read"))
        .await
        .unwrap();
    let switch = wait_for(&c, "#switch-disabled").await;
    assert!(!switch.is_enabled().await.unwrap());
    let reason = text_of(&c, "#scope-reason").await;
    assert!(reason.contains("ops:handlers"), "{reason}");

    c.close().await.unwrap();
    println!(
        "console: feed showed the event {:.1} s after it was sent; {} events in the graph, all handlers green ({} runs); {} installments drawn; dead letter {} redriven; whole test {:.1} s",
        feed_delay.as_secs_f64(),
        stored_in_correlation.len(),
        colours.len(),
        bars,
        &poison[..8],
        test_started.elapsed().as_secs_f64()
    );
}

/// An access token as an operator pastes it on AWS (unsigned here: locally the runner takes
/// the tenant from `X-Tenant-Id`, and the page reads the claims only to show who is signed in
/// and which buttons the scopes allow).
fn token(claims: &Value) -> String {
    use base64::Engine;
    let b64 = |v: &Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string());
    format!(
        "{}.{}.unsigned",
        b64(&json!({"alg": "none", "typ": "JWT"})),
        b64(claims)
    )
}

/// A webhook the receiver really got, as the page's delivery log shows it; pause from the
/// page; a 401 asks for a token, and a token without the scope leaves the buttons disabled.
#[tokio::test]
async fn the_subscriptions_page_shows_a_delivery_the_receiver_got() {
    let tenant = format!(
        "console-{}",
        &uuid::Uuid::new_v4().simple().to_string()[..8]
    );
    let api = Api::for_tenant(&tenant);
    // Any secret until the subscription hands out its own.
    let receiver = Receiver::start(&["whsec_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="]).await;
    let r = api
        .post(
            "/subscriptions",
            &json!({"name": "servicer", "filter": {"eventTypes": ["Borrower.Flagged"]},
                "target": {"type": "webhook", "url": receiver.url("/servicer")}}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let sub = r.body["subscriptionId"].as_str().unwrap().to_string();
    receiver
        .set_secrets(&[r.body["secret"].as_str().unwrap()])
        .await;
    // Dispatch sees a new subscription within its cache time (SUBSCRIPTION_CACHE_MS, 2 s).
    tokio::time::sleep(Duration::from_millis(2500)).await;
    // The first attempt is refused (503, retried), the next one taken.
    receiver.set_mode(&ReceiverMode::status(503)).await;
    let r = api
        .post(
            "/events",
            &json!({"eventType": "Borrower.Flagged", "aggregateType": "Borrower", "aggregateId": "B-console",
                "payload": {"borrowerId": "B-console", "reason": "manual review"}}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let event = r.body["events"][0]["eventId"].as_str().unwrap().to_string();
    // Independently: the receiver refused it once, then got it, signed, and answered 2xx.
    let webhook_id = format!("{sub}_{event}");
    receiver
        .wait_for(WAIT, |rs| {
            rs.iter()
                .any(|r| r.header("webhook-id") == Some(webhook_id.as_str()) && r.status == 503)
        })
        .await;
    receiver.set_mode(&ReceiverMode::normal()).await;
    let got = receiver
        .wait_for(WAIT, |rs| {
            rs.iter()
                .any(|r| r.header("webhook-id") == Some(webhook_id.as_str()) && r.accepted())
        })
        .await;
    let received = got
        .iter()
        .find(|r| r.header("webhook-id") == Some(webhook_id.as_str()) && r.accepted())
        .unwrap();
    assert!(received.verified, "signature: {:?}", received.error);
    assert_eq!(received.path, "/servicer");
    let answered = received.status;
    // Every answer the receiver gave this event, oldest first: what the log must show.
    let answers: Vec<u16> = got
        .iter()
        .filter(|r| r.header("webhook-id") == Some(webhook_id.as_str()))
        .map(|r| r.status)
        .collect();

    let driver = Driver::start();
    let c = browser(&driver).await;

    // 1. The list: target, filter, status and circuit of the subscription.
    c.goto(&console("/console/subscriptions", &tenant, ""))
        .await
        .unwrap();
    let row_css = format!("#subscriptions tr[data-subscription-id='{sub}']");
    let row = wait_for(&c, &format!("{row_css} [data-circuit]")).await;
    // One refusal is below the breaker's threshold (5 in a row): closed, whether or not the
    // success has reset the count yet.
    assert_eq!(
        row.attr("data-circuit").await.unwrap().as_deref(),
        Some("closed"),
        "{}",
        row.text().await.unwrap()
    );
    let row_text = c
        .find(Locator::Css(&row_css))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for shown in [
        "servicer",
        receiver.url("/servicer").as_str(),
        "Borrower.Flagged",
        "active",
    ] {
        assert!(row_text.contains(shown), "{shown} in {row_text}");
    }
    shot(&c, "subscriptions").await;

    // 2. The detail page's delivery log: the delivery the receiver got, its status code and
    // outcome (the log is written once the answer is in: reload until it shows).
    c.find(Locator::Css(&format!("{row_css} a")))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let delivery_css = format!("#deliveries tr[data-event-id='{event}'][data-outcome='DELIVERED']");
    wait_until_reloading(
        &c,
        "the delivery in the log",
        &format!("return document.querySelector(\"{delivery_css}\") !== null"),
        Some(Duration::from_secs(5)),
    )
    .await;
    let delivery = c.find(Locator::Css(&delivery_css)).await.unwrap();
    assert_eq!(
        delivery.attr("data-status-code").await.unwrap().as_deref(),
        Some(answered.to_string().as_str()),
        "the status code the receiver answered"
    );
    let delivery_text = delivery.text().await.unwrap();
    assert!(
        delivery_text.contains("Borrower.Flagged") && delivery_text.contains(" ms"),
        "{delivery_text}"
    );
    // The log's rows of this event, oldest first: one per answer the receiver gave, with its
    // status code, numbered 1, 2, ...; the last delivered, the ones before retried.
    let logged = c
        .execute(
            &format!(
                "return [...document.querySelectorAll(\"#deliveries tr[data-event-id='{event}']\")].reverse()
                   .map(r => [Number(r.dataset.statusCode), r.dataset.outcome, Number(r.children[3].textContent)])"
            ),
            vec![],
        )
        .await
        .unwrap();
    let logged: Vec<(u16, String, usize)> = serde_json::from_value(logged).unwrap();
    let want: Vec<(u16, String, usize)> = answers
        .iter()
        .enumerate()
        .map(|(i, status)| {
            let outcome = if i + 1 == answers.len() {
                "DELIVERED"
            } else {
                "RETRYING"
            };
            (*status, outcome.to_string(), i + 1)
        })
        .collect();
    assert_eq!(logged, want, "the log against the receiver's answers");
    shot(&c, "subscription").await;

    // 3. Pause from the page: the page shows it, and a Subscription.Updated by the caller
    // says so in the table.
    c.find(Locator::Css("#subscription button[data-action='pause']"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_for(&c, "#subscription [data-status='paused']").await;
    let clients = aws().await;
    let start = Instant::now();
    loop {
        let paused = scan_events(&clients.dynamodb, &table(), &tenant)
            .await
            .into_iter()
            .any(|e| {
                e["eventType"] == "Subscription.Updated"
                    && e["payload"]["subscriptionId"] == json!(sub)
                    && e["payload"]["changes"]["status"] == "paused"
            });
        if paused {
            break;
        }
        assert!(
            start.elapsed() < WAIT,
            "no Subscription.Updated pausing {sub}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }

    // 4. The API says 401 (here: a tenant that is not an identifier): the page asks for a
    // token. The token pasted has no subscriptions:admin: the page names who is signed in,
    // and the buttons are disabled with the reason.
    // The live stream refused (401) asks for a token too.
    c.goto(&format!(
        "{}/console?tenant=not%20a%20tenant&scopes=",
        api_url()
    ))
    .await
    .unwrap();
    wait_for(&c, "#sign-in #sign-in-token").await;
    let status = text_of(&c, "#feed-status").await;
    assert!(status.starts_with("refused: 401"), "{status}");
    c.goto(&format!(
        "{}/console/subscriptions?tenant=not%20a%20tenant&scopes=",
        api_url()
    ))
    .await
    .unwrap();
    let field = wait_for(&c, "#sign-in #sign-in-token").await;
    shot(&c, "sign-in").await;
    field
        .send_keys(&token(&json!({"sub": "ops-anna", "tenantId": tenant,
            "scope": "events:read ops:handlers", "exp": chrono::Utc::now().timestamp() + 3600})))
        .await
        .unwrap();
    c.find(Locator::Css("#sign-in button[type=submit]"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let button = wait_for(&c, "#pause-disabled").await;
    assert!(!button.is_enabled().await.unwrap(), "pause is disabled");
    let reason = text_of(&c, "#scope-reason").await;
    assert!(
        reason.contains("subscriptions:admin") && reason.contains("events:read ops:handlers"),
        "{reason}"
    );
    let who = text_of(&c, "#who").await;
    assert!(who.contains("ops-anna") && who.contains(&tenant), "{who}");
    shot(&c, "subscriptions-without-scope").await;
    c.find(Locator::Css("#sign-out"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    c.close().await.unwrap();
    println!(
        "console subscriptions: event {} to subscription {}: the receiver answered {answers:?}, the log shows {} attempts",
        &event[..8],
        &sub[..8],
        logged.len()
    );
}
