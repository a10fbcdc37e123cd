//! The notification domain: tell people what happened.

use serde_json::json;

use super::{loan_before, DomainHandler, HandlerInput};
use crate::domain::Domain;
use crate::envelope::{derived_id, EventEnvelope, FollowOn};
use crate::error::CoreError;
use crate::state::LoanState;

/// Who hears about borrower risk events.
pub const COMPLIANCE_TEAM: &str = "compliance-team";

/// One `Notification.Sent` per event: borrowers by email about their loan (funded, paid
/// off, late installment) and their draws (disbursed, rejected); the compliance team in
/// its inbox about failed KYC checks and flags.
pub struct NotificationHandler;

const NAME: &str = "notifications";

impl DomainHandler for NotificationHandler {
    fn name(&self) -> &'static str {
        NAME
    }

    fn domain(&self) -> Domain {
        Domain::Notification
    }

    fn subscriptions(&self) -> &'static [&'static str] {
        &[
            "Loan.Funded",
            "Loan.PaidOff",
            "Payment.Late",
            "Draw.Disbursed",
            "Draw.Rejected",
            "Borrower.KYCFailed",
            "Borrower.Flagged",
        ]
    }

    /// A draw's borrower is on its loan.
    fn related(&self, event: &EventEnvelope) -> Option<(&'static str, String)> {
        if event.aggregate_type == "Draw" {
            return event.payload_str("loanId").map(|l| ("Loan", l.to_string()));
        }
        None
    }

    fn handle(&self, input: &HandlerInput<'_>) -> Result<Vec<FollowOn>, CoreError> {
        let e = input.event;
        let borrower = |loan: LoanState| {
            loan.borrower_id
                .unwrap_or_else(|| "loan-servicing".to_string())
        };
        let borrower_of = |history: &[EventEnvelope]| borrower(LoanState::fold(history));
        let (channel, recipient, template) = match e.event_type.as_str() {
            "Loan.Funded" => ("email", borrower(loan_before(input)), "loan-funded"),
            "Loan.PaidOff" => ("email", borrower(loan_before(input)), "loan-paid-off"),
            "Payment.Late" => ("email", borrower(loan_before(input)), "payment-late"),
            "Draw.Disbursed" => ("email", borrower_of(input.related), "draw-disbursed"),
            "Draw.Rejected" => ("email", borrower_of(input.related), "draw-rejected"),
            "Borrower.KYCFailed" => ("inbox", COMPLIANCE_TEAM.into(), "borrower-kyc-failed"),
            "Borrower.Flagged" => ("inbox", COMPLIANCE_TEAM.into(), "borrower-flagged"),
            _ => return Ok(Vec::new()),
        };
        let id = derived_id(&[NAME, &e.event_id.to_string()]);
        Ok(vec![FollowOn {
            event_type: "Notification.Sent",
            aggregate_type: "Notification",
            aggregate_id: id.to_string(),
            payload: json!({"notificationId": id, "channel": channel, "recipient": recipient,
                "template": template, "subjectId": e.aggregate_id})
            .into(),
        }])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::handlers::testkit::given;

    fn sent(channel: &str, recipient: &str, template: &str, subject: &str) -> serde_json::Value {
        json!({"eventType": "Notification.Sent", "aggregateType": "Notification",
            "payload": {"channel": channel, "recipient": recipient, "template": template,
                "subjectId": subject}})
    }

    #[test]
    fn borrowers_and_the_compliance_team_are_told() {
        let rejected = json!({"eventType": "Draw.Rejected", "aggregateType": "Draw",
            "aggregateId": "D1",
            "payload": {"drawId": "D1", "loanId": "L1", "reason": "x", "rejectedBy": "U"}});
        let scenario = given([json!({"eventType": "Loan.Created", "aggregateType": "Loan",
            "aggregateId": "L1",
            "payload": {"loanId": "L1", "borrowerId": "B7", "amount": "1000", "interestRate": "5",
                "termMonths": 12, "amortization": "amortized", "paymentFrequency": "monthly"}})])
        .when(
            &NotificationHandler,
            json!({"eventType": "Loan.Funded", "aggregateType": "Loan", "aggregateId": "L1",
                "payload": {"loanId": "L1", "fundedAmount": "1000", "fundedAt": "2026-01-10T00:00:00Z"}}),
        )
        .then([sent("email", "B7", "loan-funded", "L1")]);
        // A draw's borrower is read from its loan, the related aggregate.
        let scenario = scenario.and(rejected);
        assert_eq!(
            NotificationHandler.related(scenario.last()),
            Some(("Loan", "L1".into()))
        );
        scenario
            .when_delivered(&NotificationHandler, "Draw.Rejected")
            .then([sent("email", "B7", "draw-rejected", "D1")])
            .when(
                &NotificationHandler,
                json!({"eventType": "Borrower.KYCFailed", "aggregateType": "Borrower",
                    "aggregateId": "B7", "payload": {"borrowerId": "B7", "reason": "document mismatch"}}),
            )
            .then([sent("inbox", COMPLIANCE_TEAM, "borrower-kyc-failed", "B7")]);
    }
}
