//! `evctl subscriptions ...`: manage subscriptions of other systems through the HTTP API
//! (scope `subscriptions:admin`).

use serde_json::{json, Value};

use super::events::{enc, read_json};
use crate::args::Args;
use crate::context::{out, Ctx};
use crate::error::{Fail, Res};

/// Run one `subscriptions` command (`words` is the command name after `subscriptions`).
pub async fn run(ctx: &Ctx, sub: &str, a: &Args) -> Res<()> {
    match sub {
        "create" => create(ctx, a).await,
        "list" => list(ctx).await,
        "show" => show(ctx, a.word(0, "subscription id")?).await,
        "pause" => {
            patch(
                ctx,
                a.word(0, "subscription id")?,
                json!({"status": "paused"}),
            )
            .await
        }
        "resume" => {
            patch(
                ctx,
                a.word(0, "subscription id")?,
                json!({"status": "active"}),
            )
            .await
        }
        "delete" => delete(ctx, a.word(0, "subscription id")?).await,
        "rotate-secret" => rotate(ctx, a.word(0, "subscription id")?).await,
        "deliveries" => deliveries(ctx, a.word(0, "subscription id")?, a).await,
        other => Err(Fail::usage(format!(
            "subscriptions {other}: no such command"
        ))),
    }
}

fn summary(s: &Value) -> String {
    let target = &s["target"];
    let to = target["url"]
        .as_str()
        .or_else(|| target["queueUrl"].as_str())
        .unwrap_or("?");
    format!(
        "{}  {:<7} {:<11} {}  -> {} {}",
        s["subscriptionId"].as_str().unwrap_or("?"),
        s["status"].as_str().unwrap_or("?"),
        s["format"].as_str().unwrap_or("?"),
        s["name"].as_str().unwrap_or("?"),
        target["type"].as_str().unwrap_or("?"),
        to
    )
}

async fn create(ctx: &Ctx, a: &Args) -> Res<()> {
    let name = a
        .flag("--name")
        .ok_or_else(|| Fail::usage("subscriptions create needs --name"))?;
    let filter = match a.flag("--filter") {
        Some(f) if f.trim_start().starts_with('{') => serde_json::from_str(f)
            .map_err(|e| Fail::usage(format!("--filter is not JSON: {e}")))?,
        Some(file) => read_json(file)?,
        None => json!({}),
    };
    let target = match (a.flag("--url"), a.flag("--queue-url")) {
        (Some(url), None) => json!({"type": "webhook", "url": url}),
        (None, Some(q)) => json!({"type": "sqs", "queueUrl": q}),
        _ => {
            return Err(Fail::usage(
                "give --url (webhook) or --queue-url (SQS), one of them",
            ))
        }
    };
    let mut body = json!({"name": name, "filter": filter, "target": target});
    if let Some(f) = a.flag("--format") {
        body["format"] = json!(f);
    }
    if let Some(t) = a.flag("--start-from") {
        body["startFrom"] = json!(t);
    }
    let (_, s) = ctx.api.send("POST", "/subscriptions", Some(&body)).await?;
    out(ctx, &s, |o| {
        outln!(o, "created {}", summary(&s));
        outln!(
            o,
            "signing secret (shown once): {}",
            s["secret"].as_str().unwrap_or("?")
        );
    })
}

async fn list(ctx: &Ctx) -> Res<()> {
    let (_, r) = ctx.api.send("GET", "/subscriptions", None).await?;
    out(ctx, &r, |o| {
        let subs = r["subscriptions"].as_array().cloned().unwrap_or_default();
        if subs.is_empty() {
            outln!(o, "no subscriptions");
        }
        for s in &subs {
            outln!(o, "{}", summary(s));
        }
    })
}

async fn show(ctx: &Ctx, id: &str) -> Res<()> {
    let (_, s) = ctx
        .api
        .send("GET", &format!("/subscriptions/{}", enc(id)), None)
        .await?;
    out(ctx, &s, |o| {
        outln!(o, "{}", summary(&s));
        outln!(o, "filter: {}", s["filter"]);
        outln!(
            o,
            "circuit: {} ({} failures in a row)",
            s["circuit"]["state"].as_str().unwrap_or("closed"),
            s["circuit"]["consecutiveFailures"]
        );
        if !s["backfill"].is_null() {
            outln!(o, "backfill: {}", s["backfill"]);
        }
    })
}

async fn patch(ctx: &Ctx, id: &str, body: Value) -> Res<()> {
    let (_, s) = ctx
        .api
        .send("PATCH", &format!("/subscriptions/{}", enc(id)), Some(&body))
        .await?;
    out(ctx, &s, |o| outln!(o, "{}", summary(&s)))
}

async fn delete(ctx: &Ctx, id: &str) -> Res<()> {
    let (_, r) = ctx
        .api
        .send("DELETE", &format!("/subscriptions/{}", enc(id)), None)
        .await?;
    out(ctx, &r, |o| outln!(o, "deleted {id}"))
}

async fn rotate(ctx: &Ctx, id: &str) -> Res<()> {
    let (_, r) = ctx
        .api
        .send(
            "POST",
            &format!("/subscriptions/{}/rotate-secret", enc(id)),
            Some(&json!({})),
        )
        .await?;
    out(ctx, &r, |o| {
        outln!(
            o,
            "new signing secret (shown once): {}",
            r["secret"].as_str().unwrap_or("?")
        );
        outln!(
            o,
            "the previous secret also signs until {}",
            r["previousValidUntil"].as_str().unwrap_or("?")
        );
    })
}

async fn deliveries(ctx: &Ctx, id: &str, a: &Args) -> Res<()> {
    let mut query = Vec::new();
    if let Some(l) = a.flag("--limit") {
        query.push(format!("limit={}", enc(l)));
    }
    if let Some(c) = a.flag("--cursor") {
        query.push(format!("cursor={}", enc(c)));
    }
    let q = if query.is_empty() {
        String::new()
    } else {
        format!("?{}", query.join("&"))
    };
    let (_, r) = ctx
        .api
        .send(
            "GET",
            &format!("/subscriptions/{}/deliveries{q}", enc(id)),
            None,
        )
        .await?;
    out(ctx, &r, |o| {
        for d in r["deliveries"].as_array().into_iter().flatten() {
            outln!(
                o,
                "{}  {:<13} {:>4} {:>5} ms  {:<26} {}/{} #{}{}",
                d["at"].as_str().unwrap_or("?"),
                d["outcome"].as_str().unwrap_or("?"),
                d["status"]
                    .as_u64()
                    .map(|s| s.to_string())
                    .unwrap_or_else(|| "-".into()),
                d["durationMs"],
                d["eventType"].as_str().unwrap_or("?"),
                d["aggregateType"].as_str().unwrap_or("?"),
                d["aggregateId"].as_str().unwrap_or("?"),
                d["sequence"],
                d["error"]
                    .as_str()
                    .map(|e| format!("  {e}"))
                    .unwrap_or_default()
            );
        }
        if let Some(c) = r["cursor"].as_str() {
            outln!(o, "more: --cursor {c}");
        }
    })
}
