//! # lending-events: the pure core of the LendingOS event backbone
//!
//! Everything here is a plain function over plain data: no AWS SDK, no async runtime, no
//! I/O. The Lambda functions in `functions/` are thin adapters that feed this crate what they
//! read from API Gateway, DynamoDB and SQS, and write back what it returns. Keeping the
//! rules here means they are unit-tested in microseconds and are the same on Lambda, under
//! cargo-lambda and in the LocalStack runner.
//!
//! The parts, in the order an event meets them:
//! - [`ingest`]: decode a `POST /events` body into validated [`envelope::NewEvent`]s.
//! - [`catalog`] and [`schema`]: which event types exist, their domain, aggregate and payload
//!   schema. Payloads are validated field by field and money is normalised ([`money`]).
//! - [`envelope`]: the stored [`envelope::EventEnvelope`] and its server-assigned fields.
//! - [`routing`]: which domain queues receive which event types.
//! - [`handlers`]: the domain handlers, pure functions from an event and the aggregate's
//!   history to follow-on events (or a typed rejection).
//! - [`schedule`] and [`state`]: payment schedules and event-sourced aggregate state.

pub mod catalog;
pub mod domain;
pub mod envelope;
pub mod error;
pub mod handlers;
pub mod ingest;
pub mod late;
pub mod money;
pub mod routing;
pub mod schedule;
pub mod schema;
pub mod state;
pub mod upcast;

pub use domain::Domain;
pub use envelope::{EventEnvelope, Metadata, NewEvent};
pub use error::{CoreError, ErrorCode};
pub use money::{Money, Rate};
