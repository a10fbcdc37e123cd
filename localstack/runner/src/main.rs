//! # local-runner: API Gateway and the Lambda event source mappings, played locally
//!
//! LocalStack's community build runs no Lambda here (its executor needs Docker), so this
//! process stands in for the AWS glue around the functions, calling the *same* handler code
//! with the *same* `aws_lambda_events` types:
//! - the HTTP API: the ingest function's axum router on 127.0.0.1:3000;
//! - the DynamoDB stream mapping: polls the table's stream and feeds `Dispatcher::handle`;
//! - the SQS mappings: polls each domain queue and feeds `BatchRunner::handle`, deleting
//!   what succeeded and leaving reported failures for redelivery and redrive; the same for
//!   the delivery queue (the delivery function) and the rebuild step queue (the
//!   projection-rebuild function's `RebuildRunner::handle`).
//!
//! Subcommands: `provision` (create table and queues, idempotent, print their names; with
//! `--exports`, print `export` lines of the functions' environment instead), `teardown`
//! (delete them),
//! `serve` (provision, then run everything until Ctrl-C or SIGTERM), `demo` (serve, play
//! the LendingOS story through the HTTP API, print what happened, stop),
//! `late-payments --as-of YYYY-MM-DD [--tenant t]` (run the daily job once) and
//! `catalog [--markdown] [--builtin]` (print the event catalog; needs no AWS), and
//! `load [--events N] [--aggregates M] [--batch B] [--concurrency C] [--prefix p] [--json]
//! [--keep] [--ceiling] [--timeout SECS]` (end-to-end throughput, latency and AWS calls per
//! path on resources of its own, and with `--ceiling` what LocalStack itself reaches for
//! the same calls; see `load.rs`).
//!
//! Custom event types: `CUSTOM_EVENT_TYPES` (a file or the JSON itself), else the bundled
//! example `localstack/runner/custom-event-types.json`.
//!
//! What lives where:
//!
//! | module | what |
//! |---|---|
//! | `main.rs` | the subcommands and `serve` |
//! | [`provision`] | create and delete the table and queues of `event_adapters::topology` |
//! | [`system`] | the parts `serve` and `load` run: the API router, the stream and queue pollers |
//! | [`pollers`] | the event source mappings: stream and SQS records into the Lambda event types |
//! | [`checkpoint`] | where the stream mapping resumes after a restart |
//! | [`settings`] | the runner's `LOCAL_*` settings from the environment |
//! | [`admin`] | local-only routes: the late-payment job on demand, the catalog export |
//! | [`demo`] | the LendingOS story through the HTTP API |
//! | [`load`] | the end-to-end load measurement (`load/report.rs` its report, `load/ceiling.rs` what LocalStack itself reaches) |

mod admin;
mod checkpoint;
mod demo;
mod faults;
mod load;
mod pollers;
mod provision;
mod settings;
mod system;

use std::net::SocketAddr;

use event_adapters::config::Clients;
use event_adapters::functions;

#[tokio::main]
async fn main() {
    event_adapters::telemetry::init_pretty();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let cmd = args.first().map(String::as_str).unwrap_or("serve");
    let port: u16 = flag(&args, "--port")
        .and_then(|p| p.parse().ok())
        .unwrap_or(3000);
    // A separate prefix gives a separate table and queues, so two runners never share work.
    let prefix = flag(&args, "--prefix").unwrap_or_else(|| "lendingos".to_string());
    if cmd == "catalog" {
        let has = |f: &str| args.iter().any(|a| a == f);
        if let Err(e) = admin::print_catalog(has("--markdown"), has("--builtin")) {
            eprintln!("local-runner: {e}");
            std::process::exit(1);
        }
        return;
    }
    if std::env::var("AWS_ENDPOINT_URL").is_err() {
        eprintln!("AWS_ENDPOINT_URL is not set; source localstack/env.sh first");
        std::process::exit(2);
    }
    let clients = Clients::from_env().await;
    let result = match cmd {
        "provision" => provision::provision(&clients, &prefix)
            .await
            .and_then(|r| {
                if args.iter().any(|a| a == "--exports") {
                    shell_exports(&r)
                } else {
                    Ok(serde_json::to_string_pretty(&r.describe()).unwrap_or_default() + "\n")
                }
            })
            .map(|out| print_flushed(&out)),
        "serve" => serve(&clients, &prefix, port, false).await,
        "teardown" => provision::teardown(&clients, &prefix).await,
        "demo" => serve(&clients, &prefix, port, true).await,
        "load" => match load::Options::from_args(&args) {
            Ok(opts) => load::run(opts).await,
            Err(e) => Err(e),
        },
        "late-payments" => {
            admin::run_cli(
                &clients,
                &prefix,
                flag(&args, "--as-of"),
                flag(&args, "--tenant"),
            )
            .await
        }
        other => Err(format!(
            "unknown command {other:?}; use provision, serve, demo, load, late-payments or catalog"
        )),
    };
    if let Err(e) = result {
        eprintln!("local-runner: {e}");
        std::process::exit(1);
    }
}

/// `export` lines for every variable the functions read, so that
/// `eval "$(local-runner provision --prefix p --exports)"` sets a shell up to run them
/// (under cargo-lambda, say) against these resources. The names come from
/// `Config::to_env`, the inverse of what the functions read, and the AWS settings are this
/// process's own (`localstack/env.sh`). The tenant comes from the API Gateway authorizer, as
/// on AWS: cargo-lambda hands the functions API Gateway events, not bare HTTP.
fn shell_exports(resources: &provision::Provisioned) -> Result<String, String> {
    use event_adapters::config::{ENDPOINT_URL_VAR, SDK_VARS};
    let mut config = system::config(resources)?;
    config.tenant_from_header = false;
    let mut vars = config.to_env();
    for name in std::iter::once(&ENDPOINT_URL_VAR).chain(SDK_VARS) {
        if let Ok(value) = std::env::var(name) {
            vars.push((name.to_string(), value));
        }
    }
    Ok(vars
        .iter()
        .map(|(name, value)| format!("export {name}={}\n", shell_quote(value)))
        .collect())
}

/// A value as one single-quoted shell word.
fn shell_quote(value: &str) -> String {
    format!("'{}'", value.replace('\'', r"'\''"))
}

/// Write to stdout and flush, so the output is complete (newline included) before the
/// next log line on a shared terminal.
fn print_flushed(text: &str) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(text.as_bytes());
    let _ = out.flush();
}

fn flag(args: &[String], name: &str) -> Option<String> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .cloned()
}

/// Serve the API and the event source mappings; with `demo`, play the story against them
/// and stop when it is done.
async fn serve(clients: &Clients, prefix: &str, port: u16, demo: bool) -> Result<(), String> {
    // A cursor key that is too short stops the runner before it provisions anything.
    event_adapters::http::cursor::CursorKey::from_env().map_err(|e| e.to_string())?;
    let resources = provision::provision(clients, prefix).await?;
    let config = system::config(&resources)?;
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| format!("bind {addr}: {e}"))?;
    functions::handler_config_from_env().map_err(|e| e.to_string())?;
    let router = system::api_router(&config, clients)?;

    let mut tasks = tokio::task::JoinSet::new();
    let streams = aws_sdk_dynamodbstreams::Client::new(&event_adapters::config::aws_config().await);
    system::spawn_stream_poller(&mut tasks, streams, &resources, &config, clients);
    system::spawn_queue_pollers(&mut tasks, &resources, &config, clients);
    system::spawn_delivery_pollers(&mut tasks, &resources, &config, clients)?;
    system::spawn_rebuild_pollers(&mut tasks, &resources, &config, clients)?;
    tracing::info!(%addr, table = %resources.table, domains = resources.queues.len(), "local runner ready");
    println!("local-runner: serving http://{addr} (tenant from X-Tenant-Id)");
    let server = axum::serve(listener, router).with_graceful_shutdown(shutdown_signal());
    let base = format!("http://{addr}");
    let outcome = if demo {
        tokio::select! {
            r = server => r.map_err(|e| e.to_string()),
            r = demo::play(&base, clients, &config) => r,
        }
    } else {
        server.await.map_err(|e| e.to_string())
    };
    tasks.abort_all();
    outcome?;
    tracing::info!("local runner stopped");
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(s) => s,
        Err(_) => return ctrl_c.await.unwrap_or(()),
    };
    tokio::select! {
        _ = ctrl_c => {},
        _ = term.recv() => {},
    }
}
