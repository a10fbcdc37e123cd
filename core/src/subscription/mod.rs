//! Subscriptions of other systems to the event stream: which events they receive
//! ([`Filter`]), where they go ([`Target`]) and in which shape ([`Format`]); and the rules
//! of delivering to them: which targets may be called ([`egress`]), when a failed delivery
//! is retried ([`retry`]) and when a failing target is left alone ([`breaker`]). Pure rules
//! only; storing subscriptions and sending deliveries live in the adapters.

pub mod breaker;
pub mod egress;
pub mod filter;
pub mod retry;
pub mod target;

pub use breaker::{BreakerConfig, BreakerEvent, Circuit, Decision, Transition};
pub use egress::{classify, AddressClass, EgressPolicy};
pub use filter::{Filter, FilterError};
pub use retry::{AttemptOutcome, RetryPolicy, Verdict};
pub use target::{Format, Target, TargetUrl};
