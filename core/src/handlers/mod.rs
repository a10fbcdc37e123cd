//! Domain handlers: pure functions from an event and its aggregate's history to follow-on
//! events, or a [`CoreError::Rejected`] when a business rule refuses the event.
//!
//! A handler never sees SQS, DynamoDB or a clock it did not get as an argument. The generic
//! SQS batch runner in the adapters decodes messages, loads the history, calls
//! [`DomainHandler::handle`] and appends what it returns.

pub mod payment;

use crate::envelope::{EventEnvelope, FollowOn};
use crate::error::CoreError;

/// What a handler sees: the event, its own aggregate's history up to and including the
/// event (so a re-run sees exactly what the first run saw), and the current history of one
/// related aggregate when the handler asks for it (e.g. a draw's loan).
#[derive(Debug, Clone, Copy)]
pub struct HandlerInput<'a> {
    pub event: &'a EventEnvelope,
    pub history: &'a [EventEnvelope],
    pub related: &'a [EventEnvelope],
}

pub trait DomainHandler: Send + Sync {
    /// Unique name, used for idempotency records and follow-on ids.
    fn name(&self) -> &'static str;
    /// The domain whose queue feeds this handler.
    fn domain(&self) -> &'static str;
    /// Event types this handler receives.
    fn subscriptions(&self) -> &'static [&'static str];
    /// Order among the handlers of one domain that receive the same event (lower first).
    fn priority(&self) -> u32 {
        100
    }
    /// Another aggregate (type, id) whose current history this handler reads for `event`.
    fn related(&self, _event: &EventEnvelope) -> Option<(&'static str, String)> {
        None
    }
    /// React to an event: follow-on events to append, or a rejection (not retried).
    fn handle(&self, input: &HandlerInput<'_>) -> Result<Vec<FollowOn>, CoreError>;
}

/// Every built-in handler.
pub fn all() -> Vec<&'static dyn DomainHandler> {
    vec![&payment::PaymentHandler]
}

/// Handlers of one domain.
pub fn for_domain(domain: &str) -> Vec<&'static dyn DomainHandler> {
    all().into_iter().filter(|h| h.domain() == domain).collect()
}
