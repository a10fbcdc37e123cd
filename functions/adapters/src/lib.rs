//! # event-adapters: the AWS side of the backbone
//!
//! Thin adapters around the pure `lending-events` core, shared by every Lambda function and
//! by the local runner. What lives where:
//!
//! | module | what |
//! |---|---|
//! | [`store`] | the event store port and its DynamoDB and in-memory adapters (append with per-aggregate sequence and idempotent eventIds; reads); [`store::layout`] is the one place that knows the table's keys, attributes and items; [`store::indexes`] the `byType`/`byCorrelation` index reads |
//! | [`ledger`] | processing records, handler switches and daily statistics in the same table (port, DynamoDB and in-memory adapters) |
//! | [`queue`] | the queue port (dead letters, visibility, deletes, publishing) with its SQS and in-memory adapters |
//! | [`dispatch`] | DynamoDB stream records to domain queues (the routing table from core) |
//! | [`runner`] | the generic SQS batch runner every domain function uses, over the store, ledger and queue ports |
//! | [`http`] | the HTTP API as one axum router: event routes, operator routes, the live event stream, scopes, cursors, OpenAPI; the operator console's pages |
//! | [`operator`] | operator actions recorded as `Ops.*` events (HTTP routes and `evctl` call them); dead-letter queue tools, handler statistics |
//! | [`subscriptions`] | subscriptions of other systems: model, store, KMS-sealed secrets, dispatch matching, the delivery function's runner, circuits, the delivery log, the egress policy |
//! | [`webhooks`] | what a subscription's delivery sends: CloudEvents 1.0 or envelope bodies, Standard Webhooks signatures and secrets, the HTTP sender that re-checks the egress policy on every connection |
//! | [`functions`] | the wiring of each Lambda function, so every `main.rs` is one call |
//! | [`topology`] | the resources (table, indexes, queues) as data, and which handlers take an event type |
//! | [`config`], [`telemetry`], [`metrics`] | environment and AWS clients, JSON logs, EMF metrics |
//! | [`error`] | [`AdapterError`], the crate's one error type |

pub mod config;
pub mod dispatch;
pub mod error;
pub mod functions;
pub mod http;
pub mod ledger;
pub mod metrics;
pub mod operator;
pub mod queue;
pub mod runner;
pub mod store;
pub mod subscriptions;
pub mod telemetry;
pub mod topology;
pub mod webhooks;

pub use error::AdapterError;

/// Every function allocates through mimalloc: events are trees of small strings and maps,
/// which it allocates and frees faster than the system allocator (BENCHMARKS.md, cold
/// start and footprint). Without transparent huge pages its memory is touched page by
/// page, so a fresh instance's peak RSS stays within half a megabyte of glibc's.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;
