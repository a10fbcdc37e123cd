//! `replay`: `POST /replay`, dry run or not.

use serde_json::json;

use super::events::{joined, split_aggregate};
use crate::args::Args;
use crate::context::{out, Ctx};
use crate::error::{Fail, Res};

pub async fn replay(ctx: &Ctx, a: &Args) -> Res<()> {
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
    let subs = a.all("--subscriptions");
    if !subs.is_empty() {
        body["subscriptions"] = json!(subs);
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
