//! # event-adapters: the AWS side of the backbone
//!
//! Thin adapters around the pure `lending-events` core, shared by every Lambda function and
//! by the local runner:
//! - [`store`]: the event store port and its DynamoDB and in-memory adapters (append with
//!   per-aggregate sequence and idempotent eventIds; reads); [`store::layout`] is the one
//!   place that knows the table's keys and items.
//! - [`ledger`]: processing records, handler switches and statistics (port, DynamoDB and
//!   in-memory adapters).
//! - [`publisher`]: SQS FIFO publishing, batched.
//! - [`dispatch`]: DynamoDB stream records to domain queues (the routing table from core).
//! - [`runner`]: the generic SQS batch runner every domain function uses.
//! - [`api`]: the HTTP API as one axum `Router`, served by `lambda_http` on Lambda and by
//!   `axum::serve` in the local runner, so local routes are the Lambda's routes.
//! - [`query`], [`replay`], [`openapi`]: read and trace routes, replay, the OpenAPI document;
//!   [`cursor`]: their signed pagination cursors;
//!   [`deadletters`] and [`stats`]: DLQ tools and handler statistics for `evctl`.
//! - [`stream`]: the live event stream (Server-Sent Events, resumable with `Last-Event-ID`);
//!   [`console`]: the operator console in the browser, embedded in the binary.
//! - [`config`] and [`telemetry`]: environment, AWS clients and JSON logs.

pub mod api;
pub mod auth;
pub mod config;
pub mod console;
pub mod cursor;
pub mod deadletters;
pub mod dispatch;
pub mod error;
pub mod functions;
pub mod ledger;
pub mod metrics;
pub mod openapi;
pub mod operator;
pub mod publisher;
pub mod query;
pub mod replay;
pub mod runner;
pub mod scopes;
pub mod stats;
pub mod store;
pub mod stream;
pub mod telemetry;
pub mod topology;

pub use error::AdapterError;
