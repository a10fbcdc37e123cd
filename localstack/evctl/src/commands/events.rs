//! `publish`, `history`, `state`, `event`, `events` and `trace`: the HTTP API's event and
//! read routes.

use serde_json::{json, Value};

use crate::args::Args;
use crate::context::{out, Ctx};
use crate::error::{Fail, Res};
use crate::render::trace_tree;

pub(crate) fn pretty(v: &Value) -> String {
    serde_json::to_string_pretty(v).unwrap_or_default()
}

pub(crate) fn line(e: &Value) -> String {
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
pub(crate) fn joined(v: &Value) -> String {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .collect::<Vec<_>>()
                .join(", ")
        })
        .unwrap_or_default()
}

pub(crate) fn split_aggregate(v: &str) -> Res<(String, String)> {
    v.split_once('/')
        .map(|(t, i)| (t.to_string(), i.to_string()))
        .ok_or_else(|| Fail::usage(format!("--aggregate wants Type/Id, got {v:?}")))
}

pub(crate) fn read_json(src: &str) -> Res<Value> {
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

pub async fn publish(ctx: &Ctx, a: &Args) -> Res<()> {
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

pub async fn history(ctx: &Ctx, t: &str, id: &str) -> Res<()> {
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
        return Err(Fail::not_found(format!("{t} {id} has no events")));
    }
    out(ctx, &json!({ "events": all }), |o| {
        outln!(o, "{t} {id}: {} events", all.len());
        for e in &all {
            outln!(o, "  {}", line(e));
        }
    })
}

pub async fn state(ctx: &Ctx, t: &str, id: &str) -> Res<()> {
    let (_, doc) = ctx
        .api
        .send("GET", &format!("/aggregates/{t}/{id}/state"), None)
        .await?;
    out(ctx, &doc, |o| {
        outln!(o, "{t} {id} at version {}", doc["version"]);
        outln!(o, "{}", pretty(&doc["state"]));
    })
}

pub async fn event(ctx: &Ctx, id: &str) -> Res<()> {
    let (_, e) = ctx.api.send("GET", &format!("/events/{id}"), None).await?;
    out(ctx, &e, |o| {
        outln!(o, "{}", line(&e));
        outln!(o, "{}", pretty(&e));
    })
}

pub(crate) fn enc(v: &str) -> String {
    v.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

pub async fn events(ctx: &Ctx, a: &Args) -> Res<()> {
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

pub async fn trace(ctx: &Ctx, corr: &str) -> Res<()> {
    let (_, t) = ctx
        .api
        .send("GET", &format!("/correlations/{}", enc(corr)), None)
        .await?;
    out(ctx, &t, |o| {
        outln!(o, "correlation {corr}: {} events", t["eventCount"]);
        let mut s = String::new();
        trace_tree(
            t["tree"].as_array().map(Vec::as_slice).unwrap_or(&[]),
            "",
            false,
            &mut s,
        );
        o.raw(&s);
    })
}
