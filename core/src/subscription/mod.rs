//! Subscriptions of other systems to the event stream: which events they receive
//! ([`Filter`]), where they go ([`Target`]) and in which shape ([`Format`]). Pure rules
//! only; storing subscriptions and sending deliveries live in the adapters.

pub mod filter;
pub mod target;

pub use filter::{Filter, FilterError};
pub use target::{Format, Target, TargetUrl};
