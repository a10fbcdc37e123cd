//! The loan summary projection as a handler: fed by its own queue like every domain, it
//! emits no follow-ons and returns the summary the runner writes (see [`crate::projections`]).

use crate::domain::Domain;
use crate::envelope::FollowOn;
use crate::error::CoreError;
use crate::handlers::{loan_before, DomainHandler, HandlerInput};
use crate::projections::{loan_stream_types, summarise, LoanSummary, LOAN_SUMMARY};

/// The handler that keeps loan summaries current (see the module docs).
#[derive(Debug, Clone, Copy, Default)]
pub struct LoanSummaryProjection;

impl DomainHandler for LoanSummaryProjection {
    fn name(&self) -> &'static str {
        LOAN_SUMMARY
    }

    fn domain(&self) -> Domain {
        Domain::Projection
    }

    fn subscriptions(&self) -> &'static [&'static str] {
        loan_stream_types()
    }

    fn handle(&self, _input: &HandlerInput<'_>) -> Result<Vec<FollowOn>, CoreError> {
        Ok(Vec::new())
    }

    fn keeps_read_model(&self) -> bool {
        true
    }

    fn read_model(&self, input: &HandlerInput<'_>) -> Option<LoanSummary> {
        // From the snapshot (if any) and the tail: the whole loan, not only the tail.
        let mut state = loan_before(input);
        state.apply(input.event);
        summarise(&state, input.event)
    }
}
