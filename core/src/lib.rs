//! # lending-events: the pure core of the LendingOS event backbone
//!
//! Everything here is a plain function over plain data: no AWS SDK, no async runtime, no
//! I/O. The Lambda functions in `functions/` are thin adapters that feed this crate what they
//! read from API Gateway, DynamoDB and SQS, and write back what it returns. Keeping the
//! rules here means they are unit-tested in microseconds and are the same on Lambda, under
//! cargo-lambda and in the LocalStack runner.
//!
//! # What lives where
//!
//! Each module uses only the ones below it in this table (tests aside), so there is no
//! import loop: the catalog knows no envelope, and neither knows a handler. An event meets
//! them top down: ingest validates it against the catalog into an envelope, routing sends
//! it to the domains whose handlers subscribe, and a handler folds its history into state.
//!
//! | module | what it holds |
//! |---|---|
//! | [`subscription`] | other systems' subscriptions to stored events: filters (EventBridge-style patterns, matched without allocating), targets and formats, and the rules of delivering to them: egress policy against request forgery, retry backoff, circuit breaker |
//! | [`ingest`] | decoding a `POST /events` body (one event or a batch) into validated [`NewEvent`]s, all or nothing |
//! | [`routing`] | which domain queues receive which event types, derived from the handlers' subscriptions |
//! | [`handlers`] | the domain handlers: pure functions from an event and its history to follow-ons or a rejection (their tests use the given/when/then kit in `handlers/testkit.rs`) |
//! | [`projections`] | read models: loan summaries and fund portfolios folded from a loan's history (the `loan-summary` handler returns them) |
//! | [`late`] | the late-payment job's events for one loan on a date |
//! | [`state`], [`schedule`] | event-sourced aggregate state (folds, and the rules handlers decide with) and payment schedules |
//! | [`domain`] | [`Domain`], the closed set of domains the handlers serve (one queue pair and one function each) |
//! | [`upcast`] | reading a stored event in its latest payload version |
//! | [`envelope`] | [`NewEvent`] (validated, not stored yet), [`EventEnvelope`] (stored), follow-ons with derived ids and times |
//! | [`payload`] | [`Payload`]: an event's payload as a JSON value, or as canonical text a handler wrote from typed data, checked field by field against the schema as it was written |
//! | `canonical.rs` | the canonical JSON that event fingerprints hash (serde_json's text, written faster) |
//! | [`catalog`] | every event type: its domain, aggregate, producers and payload schema per version. `catalog/builtin.rs` is the data, `types.rs` what an entry is, `custom.rs` a team's types from JSON, `export.rs` the JSON and Markdown forms |
//! | [`schema`] | the field kinds and the one validator that checks and normalises payloads; the id length limits |
//! | [`money`] | exact money and rates (decimal, never float) and the rounding rule |
//! | [`error`] | [`CoreError`], the crate's one error type, with the stable [`ErrorCode`]s of the HTTP contract |

mod canonical;
pub mod catalog;
pub mod domain;
pub mod envelope;
pub mod error;
pub mod handlers;
pub mod ingest;
pub mod late;
pub mod money;
pub mod payload;
pub mod projections;
pub mod routing;
pub mod schedule;
pub mod schema;
pub mod state;
pub mod subscription;
pub mod upcast;

pub use domain::Domain;
pub use envelope::{EventEnvelope, Metadata, NewEvent};
pub use error::{CoreError, ErrorCode};
pub use money::{Money, Rate};
pub use payload::Payload;
