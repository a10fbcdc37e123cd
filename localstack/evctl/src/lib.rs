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
//!
//! What lives where:
//!
//! | module | what |
//! |---|---|
//! | [`usage`] | the usage text |
//! | [`args`] | the command table and the strict parser |
//! | [`commands`] | every command, one file per group (events, replay, dlq, handlers) |
//! | [`context`] | what commands share: the API client, names, who acts, printing, AWS clients |
//! | [`http_client`] | the JSON client of the HTTP API (HTTP or HTTPS) |
//! | [`render`] | text for people: the trace tree (also used by the local runner's demo) |
//! | [`output`] | stdout and stderr that stop quietly when the reader has gone |
//! | [`error`] | [`error::Fail`], the one error type, and its exit codes |

/// `println!` into a [`output::Text`] (the human output of a command).
macro_rules! outln {
    ($text:expr, $($arg:tt)*) => {
        $text.line(format_args!($($arg)*))
    };
}

pub mod args;
pub mod commands;
pub mod context;
pub mod error;
pub mod http_client;
pub mod output;
pub mod render;
pub mod usage;

use std::process::ExitCode;

use serde_json::json;

use args::{Args, Command};
use context::Ctx;
use error::{Kind, Res};
use http_client::HttpApi;
use usage::USAGE;

/// The whole command line, `raw` without the program name: parse, run, say what went wrong
/// and end with the exit code.
pub async fn main_with(raw: Vec<String>) -> ExitCode {
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
        principal: context::evctl_principal(&args),
        table: args
            .flag("--table")
            .map(str::to_string)
            .unwrap_or_else(|| format!("{prefix}-events")),
        prefix,
    };
    let result = commands::run(&ctx, command, &args).await;
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
    if f.kind == Kind::Usage {
        match command {
            Some(c) => text.push_str(&format!(
                "usage:\n{}\nrun evctl help for every command and option\n",
                c.usage
            )),
            None => text.push_str(&format!("\n{USAGE}")),
        }
    }
    output::stderr(&text);
    ExitCode::from(f.kind.exit_code())
}
