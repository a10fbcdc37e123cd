//! `handler list|enable|disable|stats`: handler switches (recorded through
//! [`event_adapters::operator`]) and statistics, directly from the table.

use event_adapters::ledger::DynamoLedger;
use event_adapters::operator;
use serde_json::json;

use super::events::joined;
use crate::args::Args;
use crate::context::{aws, out, Ctx};
use crate::error::{Fail, Res};

fn handler_domain(name: &str) -> Res<lending_events::Domain> {
    lending_events::handlers::all()
        .into_iter()
        .find(|h| h.name() == name)
        .map(|h| h.domain())
        .ok_or_else(|| {
            let names: Vec<_> = lending_events::handlers::all()
                .iter()
                .map(|h| h.name())
                .collect();
            Fail::not_found(format!(
                "unknown handler {name:?}; handlers: {}",
                names.join(", ")
            ))
        })
}

pub async fn handler_switch(ctx: &Ctx, name: &str, on: bool) -> Res<()> {
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

pub async fn handler_list(ctx: &Ctx) -> Res<()> {
    let aws = aws(ctx).await?;
    let today = chrono::Utc::now().date_naive();
    let mut rows = Vec::new();
    for h in lending_events::handlers::all() {
        let st = event_adapters::operator::stats::handler_stats(
            &aws.ddb,
            &ctx.table,
            h.name(),
            today,
            1,
        )
        .await?;
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

pub async fn handler_stats(ctx: &Ctx, a: &Args) -> Res<()> {
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
        all.push(
            event_adapters::operator::stats::handler_stats(&aws.ddb, &ctx.table, n, last, days)
                .await?,
        );
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
