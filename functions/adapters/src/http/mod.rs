//! The HTTP API: one axum router, the same on Lambda (`lambda_http`) and in the local runner
//! (`axum::serve`).
//!
//! | file | what |
//! |---|---|
//! | [`api`] | the router: every route, the 404/405 answers and the scope middleware |
//! | [`events`] | publish, an aggregate's history and state (over any [`crate::store::EventStore`]) |
//! | [`payoff`] | a loan's payoff quote on a date |
//! | [`ops`] | operator routes: reads by id and type, trace, replay, dead letters, handlers |
//! | [`stream`] | the live event stream (Server-Sent Events, resumable with `Last-Event-ID`) |
//! | [`console`] | the operator console's pages, embedded in the binary (not API routes: no scope) |
//! | [`read_models`] | the loan list, fund portfolios and read-model rebuilds |
//! | [`auth`] | the caller's tenant and [`auth::Principal`], and the scope middleware |
//! | [`scopes`] | the OAuth scopes and the one table of routes to the scope each needs |
//! | [`cursor`] | signed pagination cursors |
//! | [`openapi`] | the OpenAPI document served at `GET /openapi.json` |
//! | [`request`] | path parameters, small JSON bodies, aggregate streams |
//! | [`stage`] | the API Gateway stage taken off the path (and given back to the console) |
//! | [`lambda`] | the router on Lambda: API Gateway events read once, answered in their shape |
//! | [`error`] | the one error shape `{"error": {"code", "message", "field"}}` |

pub mod api;
pub mod auth;
pub mod console;
pub mod cursor;
pub mod error;
pub mod events;
pub mod lambda;
pub mod openapi;
pub mod ops;
pub mod payoff;
pub mod read_models;
pub mod request;
pub mod scopes;
pub mod stage;
pub mod stream;

pub use api::router;
pub use error::ApiError;
