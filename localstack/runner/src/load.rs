//! `local-runner load`: end to end on LocalStack, measured.
//!
//! Provisions a table and queues of its own (`--prefix`, default `load-<random>`), starts
//! the parts `serve` runs ([`crate::system`]) on a free port, publishes `--events` events
//! over `--aggregates` loans through the HTTP API (`--concurrency` clients, `--batch` events
//! per request; per loan `Loan.Created`, `Loan.Approved`, `Loan.Funded`, then
//! `Payment.Received`), and waits until every (event, subscribed handler) pair has a
//! COMPLETED processing record (`P#<tenant>#<eventId>#<handler>`, read with BatchGetItem).
//! Prints throughput, publish-to-handled latency (the last subscribed handler's
//! `completedAt` minus the client's clock just before the POST: one machine, one clock),
//! and the AWS calls of each part: each part has its own counting clients
//! (`Clients::counting_as`: ingest, dispatch, handlers with their event source mapping,
//! stream reads), so the calls are attributed without running the parts one after another.
//! Then deletes what it created, unless `--keep`.
//!
//! `--ceiling` then replays the same AWS calls per event (the mix just measured) directly
//! against LocalStack, without our code, with as many concurrent callers as the system had,
//! and reports what the emulator itself reaches for them.
//!
//! `--json` prints machine-readable `LOAD`, `CALLS` (and `CEILING`) lines.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_sdk_dynamodb::types::{AttributeValue, Put, TransactWriteItem};
use aws_sdk_sqs::types::{
    DeleteMessageBatchRequestEntry, QueueAttributeName, SendMessageBatchRequestEntry,
};
use bytes::Bytes;
use chrono::{DateTime, Utc};
use event_adapters::config::capacity::Capacity;
use event_adapters::config::{self, CallCounter, Clients};
use event_adapters::store::layout::{attr, batch_get_pks, kind, record_pk, stream_pk, Read};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::TokioExecutor;
use lending_events::envelope::StreamId;
use lending_events::handlers;
use lending_events::routing::RoutingTable;
use lending_events::Domain;
use serde_json::{json, Value};

use crate::provision::{self, Provisioned};
use crate::{pollers, settings, system};

mod ceiling;
mod report;

use ceiling::ceiling;
use report::{round3, Measured};

/// The labels of the counting client sets, one per part.
const INGEST: &str = "ingest";
const DISPATCH: &str = "dispatch";
const HANDLERS: &str = "handlers";
/// The read model's runner, counted apart from the domain handlers.
const PROJECTION: &str = "projection";
const STREAM: &str = "stream";
const CEILING: &str = "ceiling";

/// A payment's amount: small enough that 900 payments never pay off the loan (a payoff
/// would add `Loan.PaidOff` and a notification, and an over-payment would dead-letter).
const PAYMENT: &str = "100.00";
const LOAN_AMOUNT: &str = "100000.00";
const MAX_EVENTS_PER_LOAN: usize = 900;

pub struct Options {
    events: usize,
    aggregates: usize,
    batch: usize,
    concurrency: usize,
    prefix: String,
    json: bool,
    keep: bool,
    ceiling: bool,
    timeout: Duration,
}

impl Options {
    pub fn from_args(args: &[String]) -> Result<Options, String> {
        let num = |name: &str, default: usize| -> Result<usize, String> {
            match crate::flag(args, name) {
                None => Ok(default),
                Some(v) => v
                    .parse()
                    .map_err(|_| format!("{name} takes a whole number, not {v:?}")),
            }
        };
        let has = |f: &str| args.iter().any(|a| a == f);
        const VALUED: &[&str] = &[
            "--events",
            "--aggregates",
            "--batch",
            "--concurrency",
            "--prefix",
            "--timeout",
        ];
        const SWITCHES: &[&str] = &["--json", "--keep", "--ceiling"];
        // A typo (or --help) must not start a 5-minute run with the defaults.
        let mut rest = args.iter().skip(1);
        while let Some(a) = rest.next() {
            if VALUED.contains(&a.as_str()) {
                rest.next();
            } else if !SWITCHES.contains(&a.as_str()) {
                return Err(format!(
                    "load: unknown argument {a:?}; usage: load [--events N] [--aggregates M] \
                     [--batch 1-25] [--concurrency C] [--prefix P] [--timeout SECS] [--json] \
                     [--keep] [--ceiling]"
                ));
            }
        }
        let o = Options {
            events: num("--events", 400)?,
            aggregates: num("--aggregates", 20)?,
            batch: num("--batch", 1)?,
            concurrency: num("--concurrency", 4)?,
            prefix: crate::flag(args, "--prefix").unwrap_or_else(|| {
                format!("load-{}", &uuid::Uuid::new_v4().simple().to_string()[..8])
            }),
            json: has("--json"),
            keep: has("--keep"),
            ceiling: has("--ceiling"),
            timeout: Duration::from_secs(num("--timeout", 300)? as u64),
        };
        if o.events == 0 || o.aggregates == 0 || o.concurrency == 0 {
            return Err("--events, --aggregates and --concurrency must be at least 1".into());
        }
        if !(1..=25).contains(&o.batch) {
            return Err("--batch must be 1 to 25 (events per request)".into());
        }
        if o.events.div_ceil(o.aggregates) > MAX_EVENTS_PER_LOAN {
            return Err(format!(
                "at most {MAX_EVENTS_PER_LOAN} events per aggregate: raise --aggregates"
            ));
        }
        Ok(o)
    }
}

pub async fn run(opts: Options) -> Result<(), String> {
    let sdk = config::aws_config().await;
    // The load generator's own calls (provisioning, polling for completion) are not counted.
    let plain = Clients {
        dynamodb: aws_sdk_dynamodb::Client::new(&sdk),
        sqs: aws_sdk_sqs::Client::new(&sdk),
        kms: aws_sdk_kms::Client::new(&sdk),
    };
    let resources = provision::provision(&plain, &opts.prefix).await?;
    let result = measure(&opts, &sdk, &plain, &resources).await;
    if opts.keep {
        eprintln!("load: kept table and queues of prefix {}", opts.prefix);
    } else {
        provision::teardown(&plain, &opts.prefix).await?;
    }
    result
}

/// One published event.
struct Published {
    event_id: String,
    event_type: String,
    stream_pk: String,
    domain_routes: usize,
    at: DateTime<Utc>,
    envelope: String,
}

async fn measure(
    opts: &Options,
    sdk: &config::SdkConfig,
    plain: &Clients,
    resources: &Provisioned,
) -> Result<(), String> {
    let config = system::config(resources)?;
    event_adapters::functions::handler_config_from_env().map_err(|e| e.to_string())?;
    let listener = tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0)))
        .await
        .map_err(|e| format!("bind: {e}"))?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    let router = system::api_router(&config, &Clients::counting_as(sdk, INGEST))?;
    let mut tasks = tokio::task::JoinSet::new();
    tasks.spawn(async move {
        if let Err(e) = axum::serve(listener, router).await {
            tracing::error!(error = %e, "load: API server stopped");
        }
    });
    let streams = aws_sdk_dynamodbstreams::Client::from_conf(
        aws_sdk_dynamodbstreams::config::Builder::from(sdk)
            .interceptor(CallCounter::labelled(STREAM))
            .build(),
    );
    let handler_clients = Clients::counting_as(sdk, HANDLERS);
    system::spawn_stream_poller(
        &mut tasks,
        streams,
        resources,
        &config,
        &Clients::counting_as(sdk, DISPATCH),
    );
    let projection_clients = Clients::counting_as(sdk, PROJECTION);
    system::spawn_queue_pollers_with(&mut tasks, resources, &config, |domain| {
        if domain == Domain::Projection {
            projection_clients.clone()
        } else {
            handler_clients.clone()
        }
    });
    let outcome = drive(opts, plain, resources, &config.table, addr).await;
    tasks.abort_all();
    let (load, published) = outcome?;
    if opts.ceiling {
        let c = ceiling(opts, sdk, resources, &load, &published).await?;
        c.print(opts.json, &load);
    }
    if load.lost > 0 || load.dead_lettered > 0 {
        return Err(format!(
            "{} of {} handler executions did not complete, {} messages dead-lettered",
            load.lost, load.expected, load.dead_lettered
        ));
    }
    Ok(())
}

/// What the load run measured (for the report and for the ceiling).
struct LoadReport {
    expected: usize,
    lost: usize,
    dead_lettered: u64,
    events_per_sec: f64,
    /// The system's calls per published event, by `label/operation` (idle long polls left
    /// out).
    work_mix: BTreeMap<String, f64>,
    /// Delivered messages per SendMessageBatch call.
    entries_per_send: usize,
}

/// Publish, wait for every handler execution, measure, and print the report.
async fn drive(
    opts: &Options,
    plain: &Clients,
    resources: &Provisioned,
    table: &str,
    addr: SocketAddr,
) -> Result<(LoadReport, Vec<Published>), String> {
    let run = uuid::Uuid::new_v4().simple().to_string();
    let tenant = format!("load-{}", &run[..8]);

    config::reset_call_counts();
    config::capacity::reset_capacity();
    let receives_before = Receives::now();
    let started = Utc::now();
    let (requests, stored) =
        publish_plans(&format!("http://{addr}"), &tenant, plan(opts, &run[..8])).await?;
    let publish_secs = secs_since(started);
    let published = published_events(stored, &tenant)?;

    // Every (event, subscribed handler) pair.
    let mut keys: Vec<(String, usize)> = Vec::new();
    for (i, p) in published.iter().enumerate() {
        for h in subscribers(&p.event_type) {
            keys.push((record_pk(&tenant, &p.event_id, h), i));
        }
    }
    let deadline = Instant::now() + opts.timeout;
    let wait = wait_completed(&plain.dynamodb, table, &keys, deadline).await?;
    let follow_ons = FollowOns::wait(&plain.dynamodb, table, &tenant, &published, deadline).await?;
    // Snapshot the counts once the follow-ons' subscribers (the read model) are done too:
    // later calls are idle polling.
    let counts: BTreeMap<&str, BTreeMap<String, u64>> =
        [INGEST, DISPATCH, HANDLERS, PROJECTION, STREAM]
            .into_iter()
            .map(|l| (l, config::call_counts_for(l)))
            .collect();
    let capacity: BTreeMap<&str, BTreeMap<String, Capacity>> =
        [INGEST, DISPATCH, HANDLERS, PROJECTION]
            .into_iter()
            .map(|l| (l, config::capacity::capacity_for(l)))
            .collect();
    let receives = Receives::now().since(&receives_before);
    let projection_handled = executions_in(
        Domain::Projection,
        published
            .iter()
            .map(|p| p.event_type.as_str())
            .chain(follow_ons.events.iter().map(|(_, t)| t.as_str())),
    );
    let measured = Measured {
        opts,
        started,
        publish_secs,
        requests,
        published: &published,
        keys,
        wait,
        counts,
        capacity,
        projection_handled,
        receives,
        follow_ons,
        dead_lettered: depth(&plain.sqs, resources.queues.iter().map(|q| &q.dlq_url)).await?,
        queued: depth(&plain.sqs, resources.queues.iter().map(|q| &q.queue_url)).await?,
    };
    let report = measured.report();
    measured.print(&report);
    Ok((report, published))
}

/// Handlers subscribed to an event type, by name.
fn subscribers(event_type: &str) -> Vec<&'static str> {
    handlers::all()
        .iter()
        .filter(|h| h.subscriptions().contains(&event_type))
        .map(|h| h.name())
        .collect()
}

/// The executions `types` call for from the handlers of `domain`.
fn executions_in<'a>(domain: Domain, types: impl Iterator<Item = &'a str>) -> usize {
    let handlers = handlers::for_domain(domain, &Default::default());
    types
        .map(|t| {
            handlers
                .iter()
                .filter(|h| h.subscriptions().contains(&t))
                .count()
        })
        .sum()
}

/// The queue pollers' receives that returned messages, and the messages they returned.
struct Receives {
    with_messages: u64,
    messages: u64,
}

impl Receives {
    fn now() -> Receives {
        Receives {
            with_messages: pollers::RECEIVES_WITH_MESSAGES.load(Ordering::Relaxed),
            messages: pollers::MESSAGES_RECEIVED.load(Ordering::Relaxed),
        }
    }

    fn since(&self, before: &Receives) -> Receives {
        Receives {
            with_messages: self.with_messages - before.with_messages,
            messages: self.messages - before.messages,
        }
    }
}

/// Post every worker's requests at once (each worker's in order): how many requests, and
/// each stored envelope with the time just before its request was sent.
///
/// Per worker, its loans' events interleaved; each loan belongs to one worker, so its
/// events are posted in order (the handlers need Created before Funded).
async fn publish_plans(
    base: &str,
    tenant: &str,
    plans: Vec<Vec<Value>>,
) -> Result<(usize, Stored), String> {
    let http: Client<HttpConnector, Full<Bytes>> =
        Client::builder(TokioExecutor::new()).build_http();
    let mut workers = tokio::task::JoinSet::new();
    for requests in plans {
        let (http, base, tenant) = (http.clone(), base.to_string(), tenant.to_string());
        workers.spawn(async move { publish_all(&http, &base, &tenant, requests).await });
    }
    let mut published: Stored = Vec::new();
    let mut requests = 0;
    while let Some(r) = workers.join_next().await {
        let (n, stored) = r.map_err(|e| format!("publishing client: {e}"))??;
        requests += n;
        published.extend(stored);
    }
    Ok((requests, published))
}

/// The stored envelopes as [`Published`] events.
fn published_events(stored: Stored, tenant: &str) -> Result<Vec<Published>, String> {
    let routing = RoutingTable::standard();
    stored
        .into_iter()
        .map(|(at, e)| {
            let field = |k: &str| {
                e[k].as_str()
                    .map(str::to_string)
                    .ok_or_else(|| format!("stored envelope without {k}: {e}"))
            };
            let event_type = field("eventType")?;
            let (aggregate_type, aggregate_id) = (field("aggregateType")?, field("aggregateId")?);
            Ok(Published {
                event_id: field("eventId")?,
                stream_pk: stream_pk(&StreamId {
                    tenant_id: tenant,
                    aggregate_type: &aggregate_type,
                    aggregate_id: &aggregate_id,
                }),
                domain_routes: routing.domains_for(&event_type).count(),
                event_type,
                at,
                envelope: e.to_string(),
            })
        })
        .collect()
}

/// The follow-on events the handlers appended (before they completed), and the
/// executions of their own subscribers.
struct FollowOns {
    /// (eventId, eventType) of each.
    events: Vec<(String, String)>,
    /// Handler executions they call for.
    expected: usize,
    /// Those completed before the deadline.
    completed: usize,
    /// Messages dispatch delivered for them.
    routes: usize,
    /// Every event item of the run's tenant, published and follow-on.
    stored: usize,
}

impl FollowOns {
    async fn wait(
        ddb: &aws_sdk_dynamodb::Client,
        table: &str,
        tenant: &str,
        published: &[Published],
        deadline: Instant,
    ) -> Result<FollowOns, String> {
        let stored = stored_events(ddb, table, tenant).await?;
        let stored_count = stored.len();
        let events: Vec<(String, String)> = stored
            .into_iter()
            .filter(|(id, _)| !published.iter().any(|p| &p.event_id == id))
            .collect();
        let keys: Vec<(String, usize)> = events
            .iter()
            .flat_map(|(id, ty)| subscribers(ty).into_iter().map(move |h| (id, h)))
            .map(|(id, h)| (record_pk(tenant, id, h), 0))
            .collect();
        let completed = if keys.is_empty() {
            0
        } else {
            wait_completed(ddb, table, &keys, deadline)
                .await?
                .completed
                .len()
        };
        let routing = RoutingTable::standard();
        let routes = events
            .iter()
            .map(|(_, ty)| routing.domains_for(ty).count())
            .sum();
        Ok(FollowOns {
            expected: keys.len(),
            events,
            completed,
            routes,
            stored: stored_count,
        })
    }
}

/// Requests per worker: each loan's events in order, loans interleaved, `batch` per request.
fn plan(opts: &Options, run: &str) -> Vec<Vec<Value>> {
    let per_loan =
        |i: usize| opts.events / opts.aggregates + usize::from(i < opts.events % opts.aggregates);
    let mut per_worker: Vec<Vec<Value>> = vec![Vec::new(); opts.concurrency];
    let mut loans: Vec<Vec<usize>> = vec![Vec::new(); opts.concurrency];
    for i in 0..opts.aggregates {
        loans[i % opts.concurrency].push(i);
    }
    for (w, mine) in loans.iter().enumerate() {
        let rounds = mine.iter().map(|i| per_loan(*i)).max().unwrap_or(0);
        for r in 0..rounds {
            for &i in mine {
                if r < per_loan(i) {
                    per_worker[w].push(event(&format!("L-{run}-{i}"), r));
                }
            }
        }
    }
    per_worker
        .into_iter()
        .filter(|evs| !evs.is_empty())
        .map(|evs| {
            evs.chunks(opts.batch)
                .map(|c| {
                    if c.len() == 1 {
                        c[0].clone()
                    } else {
                        json!({"events": c})
                    }
                })
                .collect()
        })
        .collect()
}

/// The `n`-th event of a loan (0-based): created, approved, funded, then payments.
fn event(loan: &str, n: usize) -> Value {
    let (event_type, payload) = match n {
        0 => (
            "Loan.Created",
            json!({"loanId": loan, "borrowerId": format!("B-{loan}"), "amount": LOAN_AMOUNT,
                "interestRate": "7.5", "termMonths": 12, "amortization": "amortized",
                "paymentFrequency": "monthly"}),
        ),
        1 => (
            "Loan.Approved",
            json!({"loanId": loan, "approvedBy": "officer-7", "approvedAt": "2026-01-30T15:00:00Z"}),
        ),
        2 => (
            "Loan.Funded",
            json!({"loanId": loan, "fundedAmount": LOAN_AMOUNT, "fundedAt": "2026-01-31T09:00:00Z"}),
        ),
        k => (
            "Payment.Received",
            // Before the first due date: the whole amount is principal.
            json!({"paymentId": format!("P-{loan}-{k}"), "loanId": loan, "amount": PAYMENT,
                "method": "ACH", "receivedAt": "2026-02-15T10:00:00Z"}),
        ),
    };
    json!({"eventType": event_type, "aggregateType": "Loan", "aggregateId": loan,
        "payload": payload, "metadata": {"source": "load", "userId": "load-generator"}})
}

type Stored = Vec<(DateTime<Utc>, Value)>;

/// Post one worker's requests in order; each stored envelope with the time just before its
/// request was sent.
async fn publish_all(
    http: &Client<HttpConnector, Full<Bytes>>,
    base: &str,
    tenant: &str,
    requests: Vec<Value>,
) -> Result<(usize, Stored), String> {
    let mut out = Vec::new();
    let n = requests.len();
    for body in requests {
        let want = body["events"].as_array().map_or(1, Vec::len);
        let req = http::Request::post(format!("{base}/events"))
            .header("x-tenant-id", tenant)
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(body.to_string())))
            .map_err(|e| e.to_string())?;
        let at = Utc::now();
        let resp = http
            .request(req)
            .await
            .map_err(|e| format!("POST /events: {e}"))?;
        let status = resp.status().as_u16();
        let bytes = resp
            .into_body()
            .collect()
            .await
            .map_err(|e| format!("POST /events: reading the answer: {e}"))?
            .to_bytes();
        let answer: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        if status != 201 {
            return Err(format!(
                "POST /events answered {status}: {}",
                String::from_utf8_lossy(&bytes)
            ));
        }
        let stored = answer["events"]
            .as_array()
            .filter(|s| s.len() == want)
            .ok_or_else(|| format!("POST /events: expected {want} stored events, got {answer}"))?;
        out.extend(stored.iter().map(|e| (at, e.clone())));
    }
    Ok((n, out))
}

struct Waited {
    completed: HashMap<String, DateTime<Utc>>,
    /// Records seen FAILED at least once (a retried one may complete later).
    failed: usize,
    /// What was still pending at the deadline, by record status.
    pending_detail: Option<String>,
}

/// Poll the processing records until all are COMPLETED or the deadline passes.
async fn wait_completed(
    ddb: &aws_sdk_dynamodb::Client,
    table: &str,
    keys: &[(String, usize)],
    deadline: Instant,
) -> Result<Waited, String> {
    let mut pending: Vec<String> = keys.iter().map(|(pk, _)| pk.clone()).collect();
    let mut completed = HashMap::new();
    let mut failed = std::collections::HashSet::new();
    loop {
        let mut status: HashMap<String, String> = HashMap::new();
        for chunk in pending.chunks(100) {
            let items = match batch_get_pks(ddb, table, chunk, Read::Eventual).await {
                Ok(items) => items,
                // The emulator, busy with the run, may time a read out: poll again.
                Err(e) if e.is_transient() && Instant::now() < deadline => {
                    tracing::warn!(error = %e, "record poll failed; polling again");
                    continue;
                }
                Err(e) => return Err(e.to_string()),
            };
            for item in items {
                let (Some(pk), Some(st)) = (str_attr(&item, "pk"), str_attr(&item, "status"))
                else {
                    continue;
                };
                if st == "COMPLETED" {
                    let at = str_attr(&item, "completedAt")
                        .ok_or_else(|| format!("{pk}: COMPLETED without completedAt"))?;
                    let at = DateTime::parse_from_rfc3339(at)
                        .map_err(|e| format!("{pk}: completedAt {at:?}: {e}"))?;
                    completed.insert(pk.to_string(), at.with_timezone(&Utc));
                } else if st == "FAILED" {
                    failed.insert(pk.to_string());
                }
                status.insert(pk.to_string(), st.to_string());
            }
        }
        pending.retain(|pk| !completed.contains_key(pk));
        if pending.is_empty() || Instant::now() > deadline {
            let pending_detail = (!pending.is_empty()).then(|| {
                let mut by: BTreeMap<&str, usize> = BTreeMap::new();
                for pk in &pending {
                    *by.entry(status.get(pk).map_or("no record", String::as_str))
                        .or_default() += 1;
                }
                format!(
                    "{} pending by record status: {by:?}; first: {}",
                    pending.len(),
                    pending[0]
                )
            });
            return Ok(Waited {
                completed,
                failed: failed.len(),
                pending_detail,
            });
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

type Item = HashMap<String, AttributeValue>;

fn str_attr<'a>(item: &'a Item, k: &str) -> Option<&'a str> {
    item.get(k).and_then(|v| v.as_s().ok()).map(String::as_str)
}

/// (eventId, eventType) of every event item of the tenant (the run's own table: a scan).
async fn stored_events(
    ddb: &aws_sdk_dynamodb::Client,
    table: &str,
    tenant: &str,
) -> Result<Vec<(String, String)>, String> {
    let mut out = Vec::new();
    let mut start = None;
    loop {
        let res = ddb
            .scan()
            .table_name(table)
            .filter_expression("#k = :event AND tenantId = :t")
            .projection_expression("eventId, eventType")
            .expression_attribute_names("#k", attr::KIND)
            .expression_attribute_values(":event", AttributeValue::S(kind::EVENT.into()))
            .expression_attribute_values(":t", AttributeValue::S(tenant.into()))
            .set_exclusive_start_key(start)
            .send()
            .await
            .map_err(|e| format!("Scan: {}", aws_sdk_dynamodb::error::DisplayErrorContext(&e)))?;
        for item in res.items() {
            if let (Some(id), Some(ty)) = (str_attr(item, "eventId"), str_attr(item, "eventType")) {
                out.push((id.to_string(), ty.to_string()));
            }
        }
        start = res.last_evaluated_key().cloned();
        if start.is_none() {
            return Ok(out);
        }
    }
}

/// Messages waiting or in flight on the queues.
async fn depth<'a>(
    sqs: &aws_sdk_sqs::Client,
    urls: impl IntoIterator<Item = &'a String>,
) -> Result<u64, String> {
    let mut total = 0;
    for url in urls {
        let attrs = crate::provision::queue_attributes(
            sqs,
            url,
            &[
                QueueAttributeName::ApproximateNumberOfMessages,
                QueueAttributeName::ApproximateNumberOfMessagesNotVisible,
            ],
        )
        .await?;
        for v in attrs.values() {
            total += v
                .parse::<u64>()
                .map_err(|_| format!("{url}: queue depth {v:?} is not a number"))?;
        }
    }
    Ok(total)
}

fn secs_since(t: DateTime<Utc>) -> f64 {
    (Utc::now() - t).num_microseconds().unwrap_or(0) as f64 / 1e6
}
