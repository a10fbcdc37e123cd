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
//! | [`projection::LoanSummaryProjection`] (`loan-summary`) | projection | every loan-stream event | nothing: returns the loan's summary, which the runner writes ([`crate::projections`]) |
//! | [`notification::NotificationHandler`] (`notifications`) | notification | `Loan.Funded`, `Loan.PaidOff`, `Payment.Late`, `Draw.Rejected`, `Draw.Disbursed`, `Borrower.KYCFailed`, `Borrower.Flagged` | `Notification.Sent` |
//!
//! Follow-on content is derived from the source event and histories only (times from the
//! source event, ids from [`crate::envelope::derived_id`]), so a re-run is identical.

pub mod compliance;
pub mod draw;
pub mod fund;
pub mod notification;
pub mod payment;
pub mod projection;
#[cfg(test)]
pub(crate) mod testkit;

#[cfg(test)]
mod follow_on_checks;

use crate::domain::Domain;
use crate::envelope::{EventEnvelope, FollowOn};
use crate::error::CoreError;
use crate::state::{DrawState, Folded, LoanState};

/// What a handler's work touches, which decides how the runner protects it against a
/// message delivered twice.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Effects {
    /// Its only effect is its follow-on events. They have name-based ids guarded by a
    /// conditional write, so two runs of the same message cannot both append: the runner
    /// needs no claim, and writes the follow-ons and the completed record in one transaction.
    FollowOnsOnly,
    /// It acts outside the event table (a webhook, an email): the runner claims the
    /// processing record with a lease before running it, so it never runs twice at once.
    Outside,
}
use crate::projections::LoanSummary;

/// What a handler sees: the event, its own aggregate's history up to and including the
/// event (so a re-run sees exactly what the first run saw), and the current history of one
/// related aggregate when the handler asks for it (e.g. a draw's loan).
///
/// The history may start after a snapshot: `prior` is then the folded state at a sequence
/// before the event, and `history` only the events after it (the tail). Handlers read
/// their aggregate's state through [`loan_before`] / [`draw_before`], which fold the tail
/// onto `prior`.
#[derive(Debug, Clone, Copy)]
pub struct HandlerInput<'a> {
    pub event: &'a EventEnvelope,
    pub prior: Option<&'a Folded>,
    pub history: &'a [EventEnvelope],
    pub related: &'a [EventEnvelope],
}

pub trait DomainHandler: Send + Sync {
    /// Unique name, used for idempotency records and follow-on ids.
    fn name(&self) -> &'static str;
    /// The domain whose queue feeds this handler.
    fn domain(&self) -> Domain;
    /// Event types this handler receives.
    fn subscriptions(&self) -> &'static [&'static str];
    /// Order among the handlers of one domain that receive the same event (lower first).
    fn priority(&self) -> u32 {
        100
    }
    /// What the handler's work touches (default: only its follow-on events).
    fn effects(&self) -> Effects {
        Effects::FollowOnsOnly
    }
    /// Whether this handler may append follow-ons to a stream of `aggregate_type` (from the
    /// catalog's producers): the runner reads the head of the event's own stream only then.
    fn appends_to(&self, aggregate_type: &str) -> bool {
        crate::catalog::produces_on(self.name(), aggregate_type)
    }
    /// Another aggregate (type, id) whose current history this handler reads for `event`.
    fn related(&self, _event: &EventEnvelope) -> Option<(&'static str, String)> {
        None
    }
    /// [`DomainHandler::related`] when the related aggregate is named in the event's own
    /// history rather than in the event (e.g. a loan's borrower, set by `Loan.Created`):
    /// `input` is what `handle` will get, without `related`, so the history may be a
    /// snapshot (`prior`) and its tail. The runner calls this one; the default asks
    /// [`DomainHandler::related`].
    fn related_in(&self, input: &HandlerInput<'_>) -> Option<(&'static str, String)> {
        self.related(input.event)
    }
    /// React to an event: follow-on events to append, or a rejection (not retried).
    fn handle(&self, input: &HandlerInput<'_>) -> Result<Vec<FollowOn>, CoreError>;
    /// A read-model item to write for the event (projections only): the runner stores it,
    /// guarded by its version, before completing the record.
    fn read_model(&self, _input: &HandlerInput<'_>) -> Option<LoanSummary> {
        None
    }
    /// Whether [`DomainHandler::read_model`] gives items (a projection), each a fold of the
    /// whole stream up to its event: a later one then covers an earlier one.
    fn keeps_read_model(&self) -> bool {
        false
    }
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

/// A handler as the runner holds it: owned, so a configured one needs no `'static` copy.
pub type BoxedHandler = Box<dyn DomainHandler>;

/// Every built-in handler, built with `config`. The routing table derives from this list
/// (configuration never changes subscriptions).
pub fn all_with(config: &HandlerConfig) -> Vec<BoxedHandler> {
    vec![
        Box::new(payment::PaymentHandler),
        Box::new(payment::PaymentApplication),
        Box::new(draw::DrawHandler),
        Box::new(compliance::ComplianceHandler::new(
            config.closing_documents.clone(),
        )),
        Box::new(fund::FundHandler),
        Box::new(notification::NotificationHandler),
        Box::new(projection::LoanSummaryProjection),
    ]
}

/// Every built-in handler, with the default configuration.
pub fn all() -> Vec<BoxedHandler> {
    all_with(&HandlerConfig::default())
}

/// The handlers of one domain, built with `config`: what one domain function runs.
pub fn for_domain(domain: Domain, config: &HandlerConfig) -> Vec<BoxedHandler> {
    all_with(config)
        .into_iter()
        .filter(|h| h.domain() == domain)
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

/// The loan state the event meets: `prior` (a snapshot, if any) plus the tail before it.
pub fn loan_before(input: &HandlerInput<'_>) -> LoanState {
    let mut state = match input.prior {
        Some(Folded::Loan(s)) => s.clone(),
        _ => LoanState::default(),
    };
    before(input).iter().for_each(|e| state.apply(e));
    state
}

/// The draw state the event meets: `prior` (a snapshot, if any) plus the tail before it.
pub fn draw_before(input: &HandlerInput<'_>) -> DrawState {
    let mut state = match input.prior {
        Some(Folded::Draw(s)) => s.clone(),
        _ => DrawState::default(),
    };
    before(input).iter().for_each(|e| state.apply(e));
    state
}

pub(crate) fn rejected(why: impl Into<String>) -> CoreError {
    CoreError::Rejected(why.into())
}

/// The date part of the source event's time, for derived dates.
pub(crate) fn event_date(e: &EventEnvelope) -> chrono::NaiveDate {
    e.occurred_at.date_naive()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

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
        let hs = for_domain(Domain::Compliance, &config);
        assert_eq!(hs.len(), 1);
        assert_eq!(hs[0].name(), "compliance");
        assert_eq!(for_domain(Domain::Payment, &config).len(), 2);
        assert_eq!(
            for_domain(Domain::Compliance, &HandlerConfig::default()).len(),
            1
        );
        // The configured handler generates the configured documents.
        let document = |t: &str| json!({"eventType": "Document.Generated", "payload": {"type": t}});
        testkit::given([json!({"eventType": "Loan.Created", "aggregateType": "Loan",
            "aggregateId": "L1",
            "payload": {"loanId": "L1", "borrowerId": "B1", "amount": "1000", "interestRate": "5",
                "termMonths": 12, "amortization": "amortized", "paymentFrequency": "monthly"}})])
        .when(
            hs[0].as_ref(),
            json!({"eventType": "Loan.Funded", "aggregateType": "Loan", "aggregateId": "L1",
                "payload": {"loanId": "L1", "fundedAmount": "1000", "fundedAt": "2026-01-10T00:00:00Z"}}),
        )
        .then([
            document("promissory_note"),
            document("flood_certificate"),
            // Funded without approval or KYC: the funding gates open a review.
            json!({"eventType": "Compliance.ReviewOpened"}),
        ]);
    }

    #[test]
    fn every_handler_serves_its_domain_only() {
        for d in Domain::ALL {
            let hs = for_domain(d, &HandlerConfig::default());
            assert!(!hs.is_empty(), "{d}");
            assert!(hs.iter().all(|h| h.domain() == d), "{d}");
        }
        let total: usize = Domain::ALL
            .iter()
            .map(|d| for_domain(*d, &HandlerConfig::default()).len())
            .sum();
        assert_eq!(total, all().len());
    }
}
