//! `projections rebuild <name> [--async]`: `POST /projections/{name}/rebuild`; with
//! `--async` the request prefers an asynchronous answer (`Prefer: respond-async`), and the
//! job is polled (`GET /projections/{name}/rebuilds/{jobId}`) until it is done, its
//! progress printed. A synchronous rebuild whose time budget ran out (a 202) is polled
//! the same way.

use std::time::Duration;

use serde_json::Value;

use crate::context::{out, Ctx};
use crate::error::{Fail, Res};
use crate::output;

/// How often a running job is asked for its progress.
const POLL: Duration = Duration::from_secs(1);

pub async fn rebuild(ctx: &Ctx, name: &str, prefer_async: bool) -> Res<()> {
    let path = format!("/projections/{name}/rebuild");
    let headers: &[(&str, &str)] = if prefer_async {
        &[("prefer", "respond-async")]
    } else {
        &[]
    };
    let (status, r) = ctx.api.send_with("POST", &path, None, headers).await?;
    if status == 202 {
        let job = poll(ctx, name, &r).await?;
        return out(ctx, &job, |o| {
            outln!(
                o,
                "rebuilt {name}: job {} folded {} loans in {} pages, wrote {} items (the others were as new already); recorded as {}",
                job["jobId"].as_str().unwrap_or("?"),
                job["loans"],
                job["pages"],
                job["written"],
                job["opsEventId"].as_str().unwrap_or("?")
            );
        });
    }
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

/// Poll a started job until it is no longer running; the job as it ended. A failed job
/// is an error naming its reason.
async fn poll(ctx: &Ctx, name: &str, started: &Value) -> Res<Value> {
    let job_id = started["jobId"]
        .as_str()
        .ok_or_else(|| Fail::unreachable(format!("202 without a jobId: {started}")))?;
    let path = format!("/projections/{name}/rebuilds/{job_id}");
    if !ctx.json {
        output::stdout(&format!("job {job_id} started; polling {path}\n"))?;
    }
    let mut last_pages = None;
    loop {
        let (_, job) = ctx.api.send("GET", &path, None).await?;
        match job["status"].as_str() {
            Some("RUNNING") => {
                let pages = job["pages"].as_u64();
                if !ctx.json && pages != last_pages {
                    output::stdout(&format!(
                        "job {job_id}: RUNNING, {} pages, {} loans folded, {} written\n",
                        job["pages"], job["loans"], job["written"]
                    ))?;
                    last_pages = pages;
                }
                tokio::time::sleep(POLL).await;
            }
            Some("COMPLETED") => return Ok(job),
            _ => {
                return Err(Fail {
                    kind: crate::error::Kind::Refused,
                    message: format!(
                        "rebuild job {job_id} {}: {}",
                        job["status"].as_str().unwrap_or("?"),
                        job["error"].as_str().unwrap_or("no reason given")
                    ),
                    body: Some(job),
                })
            }
        }
    }
}
