//! Domain handlers: pure functions from an event and its aggregate's history to follow-on
//! events, or a [`CoreError::Rejected`] when a business rule refuses the event.
//!
//! A handler never sees SQS, DynamoDB or a clock it did not get as an argument. The generic
//! SQS batch runner in the adapters decodes messages, loads the history, calls
//! [`DomainHandler::handle`] and appends what it returns.
//!
//! | handler (name) | domain | reacts to | emits |
//! |---|---|---|---|
//! | [`payment::PaymentHandler`] (`payment-schedule`) | payment | `Loan.Funded`, `Loan.Modified` | `PaymentSchedule.Generated` |
//! | [`payment::PaymentApplication`] (`payment-application`) | payment | `Payment.Received`, `Payment.Reversed` | `Payment.Applied`, `Loan.PaidOff`; rejects over-payments and bad reversals |
//! | [`draw::DrawHandler`] (`draw-workflow`) | draw | `Draw.Requested`, `Inspection.Completed`, `Loan.DrawSubmitted`, `Draw.Approved` | `Inspection.Scheduled`, `Draw.Inspected`, `Loan.DrawSubmitted`, `Draw.Approved`/`Draw.Rejected`, `Draw.Disbursed`, `Loan.DrawDisbursed` |
//! | [`compliance::ComplianceHandler`] (`compliance`) | compliance | `Loan.Funded`, `Borrower.KYCFailed`, `Borrower.Flagged` | `Document.Generated` per closing document (configurable), `Compliance.ReviewOpened` |
//! | [`fund::FundHandler`] (`fund-allocation`) | fund | `Loan.Funded` | `Fund.CapitalAllocated` (loans with a fundId) |
//! | [`notification::NotificationHandler`] (`notifications`) | notification | `Loan.Funded`, `Loan.PaidOff`, `Payment.Late`, `Draw.Rejected`, `Draw.Disbursed`, `Borrower.KYCFailed`, `Borrower.Flagged` | `Notification.Sent` |
//!
//! Follow-on content is derived from the source event and histories only (times from the
//! source event, ids from [`crate::envelope::derived_id`]), so a re-run is identical.

pub mod compliance;
pub mod draw;
pub mod fund;
pub mod notification;
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
    /// [`DomainHandler::related`] when the related aggregate is named in the event's own
    /// history rather than in the event (e.g. a loan's borrower, set by `Loan.Created`).
    /// The runner calls this one; the default asks [`DomainHandler::related`].
    fn related_in(
        &self,
        event: &EventEnvelope,
        _history: &[EventEnvelope],
    ) -> Option<(&'static str, String)> {
        self.related(event)
    }
    /// React to an event: follow-on events to append, or a rejection (not retried).
    fn handle(&self, input: &HandlerInput<'_>) -> Result<Vec<FollowOn>, CoreError>;
}

/// Settings of the handlers that have any (read from the environment by the adapters).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HandlerConfig {
    /// Document types the compliance handler generates when a loan is funded
    /// (`CLOSING_DOCUMENTS`, comma-separated).
    pub closing_documents: Vec<String>,
}

impl Default for HandlerConfig {
    fn default() -> Self {
        HandlerConfig {
            closing_documents: compliance::DEFAULT_CLOSING_DOCUMENTS
                .iter()
                .map(|d| d.to_string())
                .collect(),
        }
    }
}

impl HandlerConfig {
    /// Parse a comma-separated closing document list (each an identifier).
    pub fn with_closing_documents(mut self, list: &str) -> Result<Self, CoreError> {
        let docs: Vec<String> = list
            .split(',')
            .map(str::trim)
            .filter(|d| !d.is_empty())
            .map(str::to_string)
            .collect();
        if let Some(bad) = docs.iter().find(|d| !crate::schema::is_safe_id(d, 64)) {
            return Err(CoreError::invalid(
                "CLOSING_DOCUMENTS",
                format!("{bad:?} is not a document type (A-Z a-z 0-9 . _ : -)"),
            ));
        }
        self.closing_documents = docs;
        Ok(self)
    }
}

/// Every built-in handler, with the default configuration. The routing table derives
/// from this list (configuration never changes subscriptions).
pub fn all() -> Vec<&'static dyn DomainHandler> {
    vec![
        &payment::PaymentHandler,
        &payment::PaymentApplication,
        &draw::DrawHandler,
        &compliance::DEFAULT,
        &fund::FundHandler,
        &notification::NotificationHandler,
    ]
}

/// Handlers of one domain.
pub fn for_domain(domain: &str) -> Vec<&'static dyn DomainHandler> {
    all().into_iter().filter(|h| h.domain() == domain).collect()
}

/// Handlers of one domain with `config`. A configured handler is built once per call and
/// lives for the rest of the process: call this once at start.
pub fn for_domain_with(domain: &str, config: &HandlerConfig) -> Vec<&'static dyn DomainHandler> {
    if *config == HandlerConfig::default() {
        return for_domain(domain);
    }
    all()
        .into_iter()
        .filter(|h| h.domain() == domain)
        .map(|h| -> &'static dyn DomainHandler {
            if h.name() == compliance::DEFAULT.name() {
                Box::leak(Box::new(compliance::ComplianceHandler::new(
                    config.closing_documents.clone(),
                )))
            } else {
                h
            }
        })
        .collect()
}

/// The history before the event (the state the event meets).
pub(crate) fn before<'a>(input: &HandlerInput<'a>) -> &'a [EventEnvelope] {
    match input
        .history
        .iter()
        .rposition(|e| e.event_id == input.event.event_id)
    {
        Some(i) => &input.history[..i],
        None => input.history,
    }
}

pub(crate) fn rejected(why: impl Into<String>) -> CoreError {
    CoreError::Rejected(why.into())
}

/// The date part of the source event's time, for derived dates.
pub(crate) fn event_date(e: &EventEnvelope) -> chrono::NaiveDate {
    e.occurred_at.date_naive()
}

#[cfg(test)]
pub(crate) mod testkit {
    //! Building stored histories for handler tests.
    use chrono::Utc;
    use serde_json::Value;

    use super::{DomainHandler, HandlerInput};
    use crate::envelope::{EventEnvelope, FollowOn, NewEvent, WriteContext};
    use crate::error::CoreError;

    /// Validate and store `raw` at the end of `history` (as the store would).
    pub fn stored(history: &mut Vec<EventEnvelope>, raw: Value) -> EventEnvelope {
        // Histories hold handler-owned types too: written as their producer would.
        let producer = crate::catalog::lookup(raw["eventType"].as_str().unwrap_or(""))
            .map_or(crate::catalog::CLIENT, |s| s.producers[0]);
        let ctx = WriteContext {
            tenant_id: "acme",
            now: Utc::now(),
            principal: "test",
            producer,
        };
        let seq = history
            .iter()
            .rev()
            .find(|e| {
                e.aggregate_type == raw["aggregateType"] && e.aggregate_id == raw["aggregateId"]
            })
            .map_or(1, |e| e.sequence + 1);
        let e = NewEvent::from_json(&raw, &ctx, &mut uuid::Uuid::new_v4)
            .unwrap_or_else(|err| panic!("{err:?}: {raw}"))
            .into_envelope(seq, Utc::now());
        let e = crate::upcast::upcast(e);
        history.push(e.clone());
        e
    }

    /// Run a handler on the last event of `history`, with `related` as its related history,
    /// check every follow-on passes the catalog, and store them in `history`.
    pub fn run(
        h: &dyn DomainHandler,
        history: &mut Vec<EventEnvelope>,
        related: &[EventEnvelope],
    ) -> Result<Vec<EventEnvelope>, CoreError> {
        let event = history.last().unwrap().clone();
        let own: Vec<EventEnvelope> = history
            .iter()
            .filter(|e| e.stream() == event.stream())
            .cloned()
            .collect();
        let out = h.handle(&HandlerInput {
            event: &event,
            history: &own,
            related,
        })?;
        Ok(store_follow_ons(h, &event, &out, history))
    }

    pub fn store_follow_ons(
        h: &dyn DomainHandler,
        source: &EventEnvelope,
        out: &[FollowOn],
        history: &mut Vec<EventEnvelope>,
    ) -> Vec<EventEnvelope> {
        out.iter()
            .enumerate()
            .map(|(i, f)| {
                let n = NewEvent::follow_on(source, h.name(), i, f.clone(), Utc::now())
                    .unwrap_or_else(|e| panic!("{e:?}: {f:?}"));
                let seq = history
                    .iter()
                    .rev()
                    .find(|e| e.stream() == n.stream())
                    .map_or(1, |e| e.sequence + 1);
                let e = n.into_envelope(seq, Utc::now());
                history.push(e.clone());
                e
            })
            .collect()
    }

    /// Events of one aggregate.
    pub fn stream(history: &[EventEnvelope], t: &str, id: &str) -> Vec<EventEnvelope> {
        history
            .iter()
            .filter(|e| e.aggregate_type == t && e.aggregate_id == id)
            .cloned()
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_configuration_replaces_the_document_list() {
        let names: Vec<_> = all().iter().map(|h| h.name()).collect();
        let mut unique = names.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(names.len(), unique.len());
        let config = HandlerConfig::default()
            .with_closing_documents(" promissory_note, flood_certificate ,")
            .unwrap();
        assert_eq!(
            config.closing_documents,
            ["promissory_note", "flood_certificate"]
        );
        assert!(HandlerConfig::default()
            .with_closing_documents("a b")
            .is_err());
        let hs = for_domain_with("compliance", &config);
        assert_eq!(hs.len(), 1);
        assert_eq!(hs[0].name(), "compliance");
        assert_eq!(for_domain_with("payment", &config).len(), 2);
        assert_eq!(
            for_domain_with("compliance", &HandlerConfig::default()).len(),
            1
        );
    }
}
