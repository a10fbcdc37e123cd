//! `projections rebuild <name>`: `POST /projections/{name}/rebuild`.

use crate::context::{out, Ctx};
use crate::error::Res;

pub async fn rebuild(ctx: &Ctx, name: &str) -> Res<()> {
    let path = format!("/projections/{name}/rebuild");
    let (_, r) = ctx.api.send("POST", &path, None).await?;
    out(ctx, &r, |o| {
        outln!(
            o,
            "rebuilt {}: folded {} loans, wrote {} items (the others were as new already); recorded as {}",
            r["projection"].as_str().unwrap_or(name),
            r["loans"],
            r["written"],
            r["opsEventId"].as_str().unwrap_or("?")
        );
    })
}
