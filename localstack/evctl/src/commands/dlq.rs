//! `dlq list|redrive|purge`: the dead-letter queues, directly through SQS and DynamoDB and
//! [`event_adapters::operator`] (so each redrive or purge is recorded as an `Ops.*` event).

use event_adapters::operator;
use event_adapters::operator::dead_letters::DeadLetter;
use lending_events::Domain;
use serde_json::json;

use crate::args::Args;
use crate::context::{aws, out, Aws, Ctx};
use crate::error::{Fail, Kind, Res};

fn domains() -> Vec<Domain> {
    lending_events::routing::RoutingTable::standard()
        .domains()
        .collect()
}

pub async fn queue_url(aws: &Aws, name: &str) -> Res<String> {
    match aws.sqs.get_queue_url().queue_name(name).send().await {
        Ok(o) => Ok(o.queue_url().unwrap_or_default().to_string()),
        Err(e) => {
            let e = event_adapters::error::classify("GetQueueUrl", e);
            let f: Fail = e.into();
            Err(
                if f.kind == Kind::Refused && f.message.contains("QueueDoesNotExist") {
                    Fail::not_found(format!("no queue {name}"))
                } else {
                    f
                },
            )
        }
    }
}

/// The DLQs to work on: (domain, dlq url).
pub async fn dlqs(ctx: &Ctx, a: &Args, aws: &Aws) -> Res<Vec<(Domain, String)>> {
    let chosen: Vec<Domain> = match a.flag("--domain") {
        Some(d) => vec![d
            .parse::<Domain>()
            .map_err(|e| Fail::not_found(e.to_string()))?],
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

pub async fn dlq_list(ctx: &Ctx, a: &Args) -> Res<()> {
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

pub async fn dlq_redrive(ctx: &Ctx, a: &Args) -> Res<()> {
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
        return Err(Fail::not_found("no matching dead letters"));
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

pub async fn dlq_purge(ctx: &Ctx, a: &Args) -> Res<()> {
    if a.flag("--domain").is_none() {
        return Err(Fail::usage(
            "dlq purge needs --domain D (one DLQ at a time)",
        ));
    }
    if !a.has("--yes") {
        return Err(Fail::new(
            Kind::ConfirmationRequired,
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
