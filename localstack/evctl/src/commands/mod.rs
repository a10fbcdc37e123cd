//! Every command, one file per group: [`mod@events`] (publish and the read commands over the
//! HTTP API), [`mod@replay`], [`projections`] (read-model rebuilds over the HTTP API), [`dlq`]
//! and [`handlers`] (direct DynamoDB and SQS commands through [`event_adapters::operator`]),
//! [`subscriptions`] (over the HTTP API).

pub mod dlq;
pub mod events;
pub mod handlers;
pub mod projections;
pub mod replay;
pub mod subscriptions;

use crate::args::{Args, Command};
use crate::context::Ctx;
use crate::error::{Fail, Res};

use dlq::{dlq_list, dlq_purge, dlq_redrive};
use events::{event, events, history, publish, state, trace};
use handlers::{handler_list, handler_stats, handler_switch};
use replay::replay;

/// Run the command the line named.
pub async fn run(ctx: &Ctx, command: &Command, a: &Args) -> Res<()> {
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
        ["projections", "rebuild"] => {
            projections::rebuild(ctx, a.word(0, "projection name")?, a.has("--async")).await
        }
        ["dlq", "list"] => dlq_list(ctx, a).await,
        ["dlq", "redrive"] => dlq_redrive(ctx, a).await,
        ["dlq", "purge"] => dlq_purge(ctx, a).await,
        ["handler", "list"] => handler_list(ctx).await,
        ["handler", switch @ ("enable" | "disable")] => {
            handler_switch(ctx, a.word(0, "handler name")?, *switch == "enable").await
        }
        ["handler", "stats"] => handler_stats(ctx, a).await,
        ["subscriptions", sub] => subscriptions::run(ctx, sub, a).await,
        name => Err(Fail::usage(format!(
            "{} is in the command table but has no code",
            name.join(" ")
        ))),
    }
}
