//! Structured JSON logs (CloudWatch-friendly), level from `RUST_LOG` (default info).
//!
//! `RUST_LOG` is read as a [`Targets`] list (`info`, `warn,event_adapters=debug`): the
//! common directives without `EnvFilter`'s regex engine, which would add to every bootstrap
//! (see BENCHMARKS.md, footprint).

use tracing_subscriber::filter::Targets;
use tracing_subscriber::prelude::*;

fn targets() -> Targets {
    std::env::var("RUST_LOG")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| Targets::new().with_default(tracing::Level::INFO))
}

/// Initialise once per process; later calls are ignored.
pub fn init() {
    let logs = tracing_subscriber::fmt::layer()
        .json()
        .with_current_span(false)
        .with_target(false)
        .without_time();
    let _ = tracing_subscriber::registry()
        .with(logs)
        .with(targets())
        .try_init();
}

/// Human-readable logs for the local runner's terminal.
pub fn init_pretty() {
    let logs = tracing_subscriber::fmt::layer()
        .compact()
        .with_writer(std::io::stderr)
        .with_target(false);
    let _ = tracing_subscriber::registry()
        .with(logs)
        .with(targets())
        .try_init();
}
