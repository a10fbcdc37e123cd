//! # evctl: operate the LendingOS event backbone
//!
//! Talks to the HTTP API (`--api`, `--tenant`, `--token`) for events, and directly to
//! DynamoDB and SQS (the usual AWS credential chain; `AWS_ENDPOINT_URL` for LocalStack) for
//! dead-letter queues and handler switches. Human output by default, `--json` for scripts.
//! Run `evctl help` for the commands.
//!
//! The direct commands go through [`event_adapters::operator`], as the HTTP operator routes
//! do, so a redrive, purge or handler switch is recorded as an `Ops.*` event whichever way
//! it is taken.

mod args;
mod http_client;
mod output;

use std::process::ExitCode;

use event_adapters::deadletters::DeadLetter;
use event_adapters::ledger::DynamoLedger;
use event_adapters::operator::{self, Actor};
use event_adapters::store::DynamoStore;
use event_adapters::AdapterError;
use lending_events::Domain;
use serde_json::{json, Value};

use args::{Args, Command};
use http_client::HttpApi;
use output::Text;

/// `println!` into a [`Text`] (the human output of a command).
macro_rules! outln {
    ($text:expr, $($arg:tt)*) => {
        $text.line(format_args!($($arg)*))
    };
}

const USAGE: &str = "\
evctl: operate the LendingOS event backbone

USAGE: evctl [global options] <command> [arguments]

Events (through the HTTP API):
  publish --file F.json                      publish one event or {\"events\": [...]} from a file ('-' = stdin)
  publish --type T --aggregate Type/Id --payload JSON [--version N] [--correlation C] [--event-id UUID]
  history <AggregateType> <AggregateId>      the aggregate's events in order
  state <AggregateType> <AggregateId>        the folded state
  event <eventId>                            one event
  events --type T [--from RFC3339] [--to RFC3339] [--limit N] [--cursor C]
  trace <correlationId>                      the causal tree with each handler's outcome
  replay --aggregate Type/Id | --type T --from X --to Y
         [--handlers h1,h2] [--rerun] [--dry-run]

Dead letters and handlers (DynamoDB and SQS directly):
  dlq list [--domain D]                      messages in each DLQ with event, handler, reason
  dlq redrive [--domain D] (--all | --event ID ... | --message ID ...) [--principal P]
  dlq purge --domain D --yes [--principal P] delete every message of that DLQ
  handler list                               handlers, domains and switches
  handler enable <name> | handler disable <name> [--principal P]
  handler stats [<name> ...] [--days N] [--day YYYY-MM-DD]

Global options (environment variable in brackets):
  --api URL        HTTP API base [EVCTL_API, default http://127.0.0.1:3000]
  --tenant T       tenant, sent as X-Tenant-Id (local runner) [EVCTL_TENANT]
  --token JWT      bearer token for a deployed API (tenant from its tenantId claim) [EVCTL_TOKEN]
  --prefix P       resource prefix: table P-events, queues P-<domain>[-dlq].fifo
                   [EVCTL_PREFIX, default lendingos; a deployed stage is lendingos-<stage>]
  --table NAME     the events table, instead of P-events
  --dlq-url URL    one DLQ by URL (with --domain), instead of P-<domain>-dlq.fifo
  --source-url URL where dlq redrive sends (with --domain), instead of P-<domain>.fifo
  --json           machine-readable output on stdout

With --tenant, the dlq commands see and touch only that tenant's messages. A redrive, a
purge and a handler switch are recorded as Ops.* events on the tenant's Ops stream (without
--tenant: on each affected tenant's, a switch on _platform's), as principal evctl:<P>
(P from --principal, default $USER). Listing records nothing.

The dlq and handler commands need AWS credentials and a region (AWS_ACCESS_KEY_ID,
AWS_SECRET_ACCESS_KEY or AWS_PROFILE; AWS_REGION), and AWS_ENDPOINT_URL for LocalStack
(`. localstack/env.sh` sets all of them).

Exit codes: 0 ok; 1 the API or AWS refused (4xx/5xx, AWS error); 2 usage error;
3 not found (404, unknown queue or handler); 4 cannot reach the API or AWS;
5 confirmation required (purge without --yes).
";

/// A failure with its exit code.
#[derive(Debug)]
pub struct Fail {
    pub code: u8,
    pub message: String,
    /// The API's error body, printed with --json.
    pub body: Option<Value>,
}

impl Fail {
    pub fn usage(m: impl Into<String>) -> Fail {
        Fail::new(2, m)
    }

    pub fn new(code: u8, m: impl Into<String>) -> Fail {
        Fail {
            code,
            message: m.into(),
            body: None,
        }
    }

    /// Whoever read stdout has gone (`| head -1`): stop, say nothing, exit 0.
    pub fn output_closed() -> Fail {
        Fail::new(0, "")
    }

    fn is_output_closed(&self) -> bool {
        self.code == 0
    }
}

impl From<AdapterError> for Fail {
    fn from(e: AdapterError) -> Fail {
        let m = e.to_string();
        if let Some(cause) = m.split_once("dispatch failure: ").map(|(_, c)| c) {
            // The SDK appends its error's debug dump; the sentence before it says enough.
            let cause = cause.split(" (DispatchFailure(").next().unwrap_or(cause);
            let at = std::env::var("AWS_ENDPOINT_URL")
                .map(|u| format!(" at {u}"))
                .unwrap_or_default();
            return Fail::new(4, format!("cannot reach AWS{at}: {cause}"));
        }
        let code = if e.is_transient() {
            4
        } else if m.contains("NonExistentQueue")
            || m.contains("ResourceNotFound")
            || m.contains("QueueDoesNotExist")
        {
            3
        } else {
            1
        };
        Fail::new(code, m)
    }
}

type Res<T> = Result<T, Fail>;

pub struct Ctx {
    json: bool,
    api: HttpApi,
    prefix: String,
    table: String,
    /// The tenant the direct commands act for (None: a platform operator, every tenant).
    tenant: Option<String>,
    /// The principal the direct commands' `Ops.*` events name.
    principal: String,
}

impl Ctx {
    fn actor(&self) -> Actor<'_> {
        Actor {
            tenant: self.tenant.as_deref(),
            principal: &self.principal,
        }
    }
}

/// `evctl:<who>`: who from --principal, else the login name. The `evctl:` prefix keeps a
/// self-declared name apart from the principals the API authenticates.
fn evctl_principal(a: &Args) -> String {
    let who = a
        .flag("--principal")
        .map(str::to_string)
        .or_else(|| std::env::var("USER").ok())
        .filter(|w| !w.is_empty())
        .unwrap_or_else(|| "unknown".into());
    format!("evctl:{who}")
}

#[tokio::main]
async fn main() -> ExitCode {
    let raw: Vec<String> = std::env::args().skip(1).collect();
    let args = match Args::parse(raw) {
        Ok(a) => a,
        Err(e) => return finish(Err(e.fail), e.json, e.command),
    };
    let json = args.has("--json");
    let Some(command) = args.command.filter(|_| !args.help) else {
        // `evctl help` and `--help` ask for the usage; a bare `evctl` is a usage error.
        return match output::stdout(USAGE) {
            Err(f) if !f.is_output_closed() => finish(Err(f), false, None),
            _ => ExitCode::from(if args.help { 0 } else { 2 }),
        };
    };
    let prefix = args.env_or("--prefix", "EVCTL_PREFIX", "lendingos");
    let tenant = Some(args.env_or("--tenant", "EVCTL_TENANT", "")).filter(|t| !t.is_empty());
    let ctx = Ctx {
        json,
        api: HttpApi::new(
            &args.env_or("--api", "EVCTL_API", "http://127.0.0.1:3000"),
            tenant.clone(),
            Some(args.env_or("--token", "EVCTL_TOKEN", "")).filter(|t| !t.is_empty()),
        ),
        tenant,
        principal: evctl_principal(&args),
        table: args
            .flag("--table")
            .map(str::to_string)
            .unwrap_or_else(|| format!("{prefix}-events")),
        prefix,
    };
    let result = run(&ctx, command, &args).await;
    finish(result, json, Some(command))
}

/// The exit code of a result, after saying what went wrong: on stderr, and as a JSON error
/// on stdout with --json; a usage error also shows the command's usage (or all of it).
fn finish(result: Res<()>, json: bool, command: Option<&Command>) -> ExitCode {
    let f = match result {
        Ok(()) => return ExitCode::SUCCESS,
        Err(f) if f.is_output_closed() => return ExitCode::SUCCESS,
        Err(f) => f,
    };
    if json {
        let body = f
            .body
            .clone()
            .unwrap_or_else(|| json!({"error": {"code": "evctl", "message": f.message}}));
        // A closed stdout changes nothing here: the exit code still tells what happened.
        let _ = output::stdout(&format!("{body}\n"));
    }
    let mut text = format!("evctl: {}\n", f.message);
    if f.code == 2 {
        match command {
            Some(c) => text.push_str(&format!(
                "usage:\n{}\nrun evctl help for every command and option\n",
                c.usage
            )),
            None => text.push_str(&format!("\n{USAGE}")),
        }
    }
    output::stderr(&text);
    ExitCode::from(f.code)
}

async fn run(ctx: &Ctx, command: &Command, a: &Args) -> Res<()> {
    match command.name {
        ["publish"] => publish(ctx, a).await,
        ["history"] => {
            history(
                ctx,
                a.word(0, "aggregate type")?,
                a.word(1, "aggregate id")?,
            )
            .await
        }
        ["state"] => {
            state(
                ctx,
                a.word(0, "aggregate type")?,
                a.word(1, "aggregate id")?,
            )
            .await
        }
        ["event"] => event(ctx, a.word(0, "event id")?).await,
        ["events"] => events(ctx, a).await,
        ["trace"] => trace(ctx, a.word(0, "correlation id")?).await,
        ["replay"] => replay(ctx, a).await,
        ["dlq", "list"] => dlq_list(ctx, a).await,
        ["dlq", "redrive"] => dlq_redrive(ctx, a).await,
        ["dlq", "purge"] => dlq_purge(ctx, a).await,
        ["handler", "list"] => handler_list(ctx).await,
        ["handler", switch @ ("enable" | "disable")] => {
            handler_switch(ctx, a.word(0, "handler name")?, *switch == "enable").await
        }
        ["handler", "stats"] => handler_stats(ctx, a).await,
        name => Err(Fail::usage(format!(
            "{} is in the command table but has no code",
            name.join(" ")
        ))),
    }
}

/// Print a command's result: the JSON with --json, else the human text `human` writes.
fn out(ctx: &Ctx, v: &Value, human: impl FnOnce(&mut Text)) -> Res<()> {
    if ctx.json {
        return output::stdout(&format!("{v}\n"));
    }
    let mut text = Text::default();
    human(&mut text);
    output::stdout(text.as_str())
}

fn pretty(v: &Value) -> String {
    serde_json::to_string_pretty(v).unwrap_or_default()
}

fn line(e: &Value) -> String {
    format!(
        "#{:<3} {:<28} {}/{}  {}  {}",
        e["sequence"],
        e["eventType"].as_str().unwrap_or("?"),
        e["aggregateType"].as_str().unwrap_or("?"),
        e["aggregateId"].as_str().unwrap_or("?"),
        e["recordedAt"].as_str().unwrap_or(""),
        e["eventId"].as_str().unwrap_or(""),
    )
}

/// The strings of a JSON list, comma-separated ("" for anything else).
fn joined(v: &Value) -> String {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .collect::<Vec<_>>()
                .join(", ")
        })
        .unwrap_or_default()
}

fn split_aggregate(v: &str) -> Res<(String, String)> {
    v.split_once('/')
        .map(|(t, i)| (t.to_string(), i.to_string()))
        .ok_or_else(|| Fail::usage(format!("--aggregate wants Type/Id, got {v:?}")))
}

fn read_json(src: &str) -> Res<Value> {
    let text = if src == "-" {
        std::io::read_to_string(std::io::stdin()).map_err(|e| Fail::usage(e.to_string()))?
    } else if let Some(path) = src.strip_prefix('@') {
        std::fs::read_to_string(path).map_err(|e| Fail::usage(format!("{path}: {e}")))?
    } else {
        src.to_string()
    };
    serde_json::from_str(&text).map_err(|e| Fail::usage(format!("not JSON: {e}")))
}

/// The flags of `publish` that build an event on the command line (not with --file).
const EVENT_FLAGS: &[&str] = &[
    "--type",
    "--aggregate",
    "--payload",
    "--version",
    "--correlation",
    "--event-id",
];

async fn publish(ctx: &Ctx, a: &Args) -> Res<()> {
    let body = if let Some(f) = a.flag("--file") {
        if let Some(k) = EVENT_FLAGS.iter().find(|k| a.flag(k).is_some()) {
            return Err(Fail::usage(format!(
                "publish --file takes the whole event from the file, not {k}"
            )));
        }
        if f == "-" {
            read_json("-")?
        } else {
            read_json(&format!("@{f}"))?
        }
    } else {
        let t = a.flag("--type").ok_or_else(|| {
            Fail::usage("publish needs --file, or --type, --aggregate and --payload")
        })?;
        let (at, id) = split_aggregate(
            a.flag("--aggregate")
                .ok_or_else(|| Fail::usage("publish needs --aggregate Type/Id"))?,
        )?;
        let payload = read_json(
            a.flag("--payload")
                .ok_or_else(|| Fail::usage("publish needs --payload"))?,
        )?;
        let mut e =
            json!({"eventType": t, "aggregateType": at, "aggregateId": id, "payload": payload});
        if let Some(v) = a.flag("--version") {
            let v: u32 = v.parse().ok().filter(|v| *v >= 1).ok_or_else(|| {
                Fail::usage(format!("--version wants a whole number >= 1, got {v:?}"))
            })?;
            e["eventVersion"] = json!(v);
        }
        if let Some(c) = a.flag("--correlation") {
            e["metadata"] = json!({ "correlationId": c });
        }
        if let Some(i) = a.flag("--event-id") {
            e["eventId"] = json!(i);
        }
        e
    };
    let (status, reply) = ctx.api.send("POST", "/events", Some(&body)).await?;
    out(ctx, &reply, |o| {
        let what = if status == 201 {
            "stored"
        } else {
            "already stored"
        };
        for e in reply["events"].as_array().into_iter().flatten() {
            outln!(o, "{what} {}", line(e));
        }
    })
}

async fn history(ctx: &Ctx, t: &str, id: &str) -> Res<()> {
    let mut all = Vec::new();
    let mut after = 0u64;
    loop {
        let (_, page) = ctx
            .api
            .send(
                "GET",
                &format!("/aggregates/{t}/{id}/events?after={after}&limit=1000"),
                None,
            )
            .await?;
        all.extend(page["events"].as_array().cloned().unwrap_or_default());
        match page["next"].as_u64() {
            Some(n) => after = n,
            None => break,
        }
    }
    if all.is_empty() && !ctx.json {
        return Err(Fail::new(3, format!("{t} {id} has no events")));
    }
    out(ctx, &json!({ "events": all }), |o| {
        outln!(o, "{t} {id}: {} events", all.len());
        for e in &all {
            outln!(o, "  {}", line(e));
        }
    })
}

async fn state(ctx: &Ctx, t: &str, id: &str) -> Res<()> {
    let (_, doc) = ctx
        .api
        .send("GET", &format!("/aggregates/{t}/{id}/state"), None)
        .await?;
    out(ctx, &doc, |o| {
        outln!(o, "{t} {id} at version {}", doc["version"]);
        outln!(o, "{}", pretty(&doc["state"]));
    })
}

async fn event(ctx: &Ctx, id: &str) -> Res<()> {
    let (_, e) = ctx.api.send("GET", &format!("/events/{id}"), None).await?;
    out(ctx, &e, |o| {
        outln!(o, "{}", line(&e));
        outln!(o, "{}", pretty(&e));
    })
}

fn enc(v: &str) -> String {
    v.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

async fn events(ctx: &Ctx, a: &Args) -> Res<()> {
    let t = a
        .flag("--type")
        .ok_or_else(|| Fail::usage("events needs --type"))?;
    let mut q = format!("/events?type={}", enc(t));
    for k in ["from", "to", "limit", "cursor"] {
        if let Some(v) = a.flag(&format!("--{k}")) {
            q.push_str(&format!("&{k}={}", enc(v)));
        }
    }
    let (_, page) = ctx.api.send("GET", &q, None).await?;
    out(ctx, &page, |o| {
        for e in page["events"].as_array().into_iter().flatten() {
            outln!(o, "{}", line(e));
        }
        if let Some(c) = page["cursor"].as_str() {
            outln!(o, "(more: --cursor {c})");
        }
    })
}

async fn trace(ctx: &Ctx, corr: &str) -> Res<()> {
    let (_, t) = ctx
        .api
        .send("GET", &format!("/correlations/{}", enc(corr)), None)
        .await?;
    out(ctx, &t, |o| {
        outln!(o, "correlation {corr}: {} events", t["eventCount"]);
        let mut s = String::new();
        event_adapters::query::render_tree(
            t["tree"].as_array().map(Vec::as_slice).unwrap_or(&[]),
            "",
            false,
            &mut s,
        );
        o.raw(&s);
    })
}

async fn replay(ctx: &Ctx, a: &Args) -> Res<()> {
    let mut body = json!({"dryRun": a.has("--dry-run"), "rerun": a.has("--rerun")});
    if let Some(agg) = a.flag("--aggregate") {
        let (t, id) = split_aggregate(agg)?;
        body["aggregateType"] = json!(t);
        body["aggregateId"] = json!(id);
    } else if let Some(t) = a.flag("--type") {
        body["eventType"] = json!(t);
        body["from"] = json!(a
            .flag("--from")
            .ok_or_else(|| Fail::usage("replay --type needs --from"))?);
        body["to"] = json!(a
            .flag("--to")
            .ok_or_else(|| Fail::usage("replay --type needs --to"))?);
    } else {
        return Err(Fail::usage(
            "replay needs --aggregate Type/Id, or --type T --from X --to Y",
        ));
    }
    let hs = a.all("--handlers");
    if !hs.is_empty() {
        body["handlers"] = json!(hs);
    }
    let (_, r) = ctx.api.send("POST", "/replay", Some(&body)).await?;
    out(ctx, &r, |o| {
        let msgs = r["messages"].as_array().cloned().unwrap_or_default();
        if r["dryRun"] == json!(true) {
            outln!(
                o,
                "dry run {}: would send {} messages for {} events (nothing sent)",
                r["replayId"].as_str().unwrap_or(""),
                msgs.len(),
                r["events"]
            );
        } else {
            outln!(
                o,
                "replay {}: sent {} messages for {} events{}",
                r["replayId"].as_str().unwrap_or(""),
                r["sent"],
                r["events"],
                if r["rerun"] == json!(true) {
                    " (handlers re-run)"
                } else {
                    ""
                }
            );
        }
        for m in &msgs {
            outln!(
                o,
                "  {:<28} {}/{} #{}  -> {} [{}]",
                m["eventType"].as_str().unwrap_or("?"),
                m["aggregateType"].as_str().unwrap_or("?"),
                m["aggregateId"].as_str().unwrap_or("?"),
                m["sequence"],
                m["domain"].as_str().unwrap_or("?"),
                joined(&m["handlers"])
            );
        }
    })
}

struct Aws {
    ddb: aws_sdk_dynamodb::Client,
    sqs: aws_sdk_sqs::Client,
    /// The events table, where the `Ops.*` records go.
    store: DynamoStore,
}

/// The AWS clients, once the configuration has what a call needs. Without credentials or a
/// region the SDK would fail on the first call with a long dump about the instance metadata
/// service (its last resort for credentials); one sentence naming the variables helps more.
async fn aws(ctx: &Ctx) -> Res<Aws> {
    use aws_sdk_sqs::config::ProvideCredentials;
    let sdk = event_adapters::config::aws_config().await;
    let credentials = match sdk.credentials_provider() {
        Some(p) => p.provide_credentials().await.is_ok(),
        None => false,
    };
    let region = sdk.region().is_some();
    let missing = match (credentials, region) {
        (true, true) => None,
        (false, true) => Some((
            "credentials",
            "AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or AWS_PROFILE",
        )),
        (true, false) => Some(("region", "AWS_REGION")),
        (false, false) => Some((
            "credentials or region",
            "AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or AWS_PROFILE, AWS_REGION",
        )),
    };
    if let Some((what, set)) = missing {
        return Err(Fail::new(
            4,
            format!(
                "no AWS {what}: set {set}, and AWS_ENDPOINT_URL for LocalStack (`. localstack/env.sh`)"
            ),
        ));
    }
    let ddb = aws_sdk_dynamodb::Client::new(&sdk);
    Ok(Aws {
        store: DynamoStore::new(ddb.clone(), &ctx.table),
        ddb,
        sqs: aws_sdk_sqs::Client::new(&sdk),
    })
}

fn domains() -> Vec<Domain> {
    lending_events::routing::RoutingTable::standard()
        .domains()
        .collect()
}

async fn queue_url(aws: &Aws, name: &str) -> Res<String> {
    match aws.sqs.get_queue_url().queue_name(name).send().await {
        Ok(o) => Ok(o.queue_url().unwrap_or_default().to_string()),
        Err(e) => {
            let e = event_adapters::error::classify("GetQueueUrl", e);
            let f: Fail = e.into();
            Err(if f.code == 1 && f.message.contains("QueueDoesNotExist") {
                Fail::new(3, format!("no queue {name}"))
            } else {
                f
            })
        }
    }
}

/// The DLQs to work on: (domain, dlq url).
async fn dlqs(ctx: &Ctx, a: &Args, aws: &Aws) -> Res<Vec<(Domain, String)>> {
    let chosen: Vec<Domain> = match a.flag("--domain") {
        Some(d) => vec![d
            .parse::<Domain>()
            .map_err(|e| Fail::new(3, e.to_string()))?],
        None if a.flag("--dlq-url").is_some() => {
            return Err(Fail::usage("--dlq-url needs --domain"));
        }
        None => domains(),
    };
    let mut out = Vec::new();
    for d in chosen {
        let url = match a.flag("--dlq-url") {
            Some(u) => u.to_string(),
            None => queue_url(aws, &format!("{}-{d}-dlq.fifo", ctx.prefix)).await?,
        };
        out.push((d, url));
    }
    Ok(out)
}

fn letter_line(d: &DeadLetter) -> String {
    format!(
        "  {} {} {} handler={} receives={} moved by {}\n      reason: {}",
        d.event_id.as_deref().unwrap_or("(no event id)"),
        d.event_type.as_deref().unwrap_or("?"),
        d.aggregate.as_deref().unwrap_or("?"),
        d.handler.as_deref().unwrap_or("?"),
        d.receive_count.as_deref().unwrap_or("?"),
        d.moved_by,
        d.reason
    )
}

async fn dlq_list(ctx: &Ctx, a: &Args) -> Res<()> {
    let aws = aws(ctx).await?;
    let mut all = Vec::new();
    for (d, url) in dlqs(ctx, a, &aws).await? {
        let letters =
            operator::list_dead_letters(&aws.sqs, &aws.store, ctx.actor(), d, &url, 1000).await?;
        all.push((d, url, letters));
    }
    let v = json!({"dlqs": all.iter().map(|(d, url, l)| json!({"domain": d, "queueUrl": url, "count": l.len(), "messages": l})).collect::<Vec<_>>()});
    out(ctx, &v, |o| {
        for (d, _, letters) in &all {
            outln!(
                o,
                "{d} DLQ: {} message{}",
                letters.len(),
                if letters.len() == 1 { "" } else { "s" }
            );
            for l in letters {
                outln!(o, "{}", letter_line(l));
            }
        }
    })
}

async fn dlq_redrive(ctx: &Ctx, a: &Args) -> Res<()> {
    let events = a.all("--event");
    let messages = a.all("--message");
    if !a.has("--all") && events.is_empty() && messages.is_empty() {
        return Err(Fail::usage(
            "dlq redrive needs --all, --event ID or --message ID",
        ));
    }
    let aws = aws(ctx).await?;
    let mut redriven = Vec::new();
    for (d, url) in dlqs(ctx, a, &aws).await? {
        let source = match a.flag("--source-url") {
            Some(u) => u.to_string(),
            None => queue_url(&aws, &format!("{}-{d}.fifo", ctx.prefix)).await?,
        };
        let pick = |l: &DeadLetter| {
            a.has("--all")
                || l.event_id.as_ref().is_some_and(|e| events.contains(e))
                || messages.contains(&l.message_id)
        };
        let done = operator::redrive_dead_letters(
            &aws.sqs,
            &aws.store,
            ctx.actor(),
            d,
            &url,
            Some(&source),
            pick,
        )
        .await?;
        redriven.extend(done);
    }
    if redriven.is_empty() && !a.has("--all") {
        return Err(Fail::new(3, "no matching dead letters"));
    }
    let v = json!({"redriven": redriven.len(), "messages": redriven});
    out(ctx, &v, |o| {
        outln!(
            o,
            "redrove {} message{}",
            redriven.len(),
            if redriven.len() == 1 { "" } else { "s" }
        );
        for l in &redriven {
            outln!(o, "{}", letter_line(l));
        }
    })
}

async fn dlq_purge(ctx: &Ctx, a: &Args) -> Res<()> {
    if a.flag("--domain").is_none() {
        return Err(Fail::usage(
            "dlq purge needs --domain D (one DLQ at a time)",
        ));
    }
    if !a.has("--yes") {
        return Err(Fail::new(
            5,
            "dlq purge deletes every message of the DLQ; add --yes to confirm",
        ));
    }
    let aws = aws(ctx).await?;
    let mut n = 0;
    for (d, url) in dlqs(ctx, a, &aws).await? {
        n += operator::purge_dead_letters(&aws.sqs, &aws.store, ctx.actor(), d, &url, |_| true)
            .await?
            .len();
    }
    out(ctx, &json!({ "purged": n }), |o| {
        outln!(o, "purged {n} messages");
    })
}

fn handler_domain(name: &str) -> Res<Domain> {
    lending_events::handlers::all()
        .into_iter()
        .find(|h| h.name() == name)
        .map(|h| h.domain())
        .ok_or_else(|| {
            let names: Vec<_> = lending_events::handlers::all()
                .iter()
                .map(|h| h.name())
                .collect();
            Fail::new(
                3,
                format!("unknown handler {name:?}; handlers: {}", names.join(", ")),
            )
        })
}

async fn handler_switch(ctx: &Ctx, name: &str, on: bool) -> Res<()> {
    handler_domain(name)?;
    let aws = aws(ctx).await?;
    let ledger = DynamoLedger::new(aws.ddb.clone(), &ctx.table);
    operator::switch_handler(&ledger, &aws.store, ctx.actor(), name, on).await?;
    let word = if on { "enabled" } else { "disabled" };
    out(ctx, &json!({"handler": name, "enabled": on}), |o| {
        outln!(
            o,
            "{name} {word} (running functions notice within a few seconds)"
        );
    })
}

async fn handler_list(ctx: &Ctx) -> Res<()> {
    let aws = aws(ctx).await?;
    let today = chrono::Utc::now().date_naive();
    let mut rows = Vec::new();
    for h in lending_events::handlers::all() {
        let st =
            event_adapters::stats::handler_stats(&aws.ddb, &ctx.table, h.name(), today, 1).await?;
        rows.push(json!({"handler": h.name(), "domain": h.domain(), "enabled": st.enabled, "subscriptions": h.subscriptions()}));
    }
    out(ctx, &json!({ "handlers": rows }), |o| {
        for r in &rows {
            outln!(
                o,
                "{:<22} {:<13} {:<9} {}",
                r["handler"].as_str().unwrap_or(""),
                r["domain"].as_str().unwrap_or(""),
                if r["enabled"] == json!(true) {
                    "on"
                } else {
                    "OFF"
                },
                joined(&r["subscriptions"])
            );
        }
    })
}

async fn handler_stats(ctx: &Ctx, a: &Args) -> Res<()> {
    let names: Vec<String> = if !a.words.is_empty() {
        a.words.clone()
    } else {
        lending_events::handlers::all()
            .iter()
            .map(|h| h.name().to_string())
            .collect()
    };
    for n in &names {
        handler_domain(n)?;
    }
    let last = match a.flag("--day") {
        Some(d) => chrono::NaiveDate::parse_from_str(d, "%Y-%m-%d")
            .map_err(|_| Fail::usage("--day wants YYYY-MM-DD"))?,
        None => chrono::Utc::now().date_naive(),
    };
    let days: u32 = a
        .flag("--days")
        .map(|d| {
            d.parse()
                .ok()
                .filter(|n| (1..=90).contains(n))
                .ok_or_else(|| Fail::usage("--days wants 1-90"))
        })
        .transpose()?
        .unwrap_or(1);
    let aws = aws(ctx).await?;
    let mut all = Vec::new();
    for n in &names {
        all.push(event_adapters::stats::handler_stats(&aws.ddb, &ctx.table, n, last, days).await?);
    }
    let v = json!({ "stats": all });
    out(ctx, &v, |o| {
        let first = all
            .first()
            .and_then(|s| s.days.first())
            .cloned()
            .unwrap_or_default();
        outln!(
            o,
            "handler statistics {first} .. {last}  (durations: bucket upper bounds)"
        );
        outln!(
            o,
            "{:<22} {:>3} {:>15} {:>16} {:>14} {:>18} {:>8} {:>8} {:>8}",
            "handler",
            "on",
            "EventsProcessed",
            "HandlerFailures",
            "HandlerRetries",
            "EventsDeadLettered",
            "p50",
            "p90",
            "p99"
        );
        let ms = |v: Option<u64>, any: bool| match (v, any) {
            (Some(v), _) => format!("≤{v}ms"),
            (None, true) => ">10s".to_string(),
            (None, false) => "-".to_string(),
        };
        for s in &all {
            let any = s.buckets.iter().sum::<u64>() > 0;
            outln!(
                o,
                "{:<22} {:>3} {:>15} {:>16} {:>14} {:>18} {:>8} {:>8} {:>8}",
                s.handler,
                if s.enabled { "on" } else { "OFF" },
                s.successes,
                s.failures,
                s.retries,
                s.dead_lettered,
                ms(s.p50_ms, any),
                ms(s.p90_ms, any),
                ms(s.p99_ms, any)
            );
            if let Some(e) = &s.last_error {
                let e: String = e.chars().take(120).collect();
                outln!(
                    o,
                    "{:<22}     last error ({}): {e}",
                    "",
                    s.last_error_at.as_deref().unwrap_or("?")
                );
            }
        }
    })
}
