//! The notification domain: tell people what happened.

use serde_json::json;

use super::{before, DomainHandler, HandlerInput};
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
        let borrower_of = |history: &[EventEnvelope]| {
            LoanState::fold(history)
                .borrower_id
                .unwrap_or_else(|| "loan-servicing".to_string())
        };
        let (channel, recipient, template) = match e.event_type.as_str() {
            "Loan.Funded" => ("email", borrower_of(before(input)), "loan-funded"),
            "Loan.PaidOff" => ("email", borrower_of(before(input)), "loan-paid-off"),
            "Payment.Late" => ("email", borrower_of(before(input)), "payment-late"),
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
                "template": template, "subjectId": e.aggregate_id}),
        }])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::handlers::testkit::{run, stored, stream};

    #[test]
    fn borrowers_and_the_compliance_team_are_told() {
        let mut h = Vec::new();
        stored(
            &mut h,
            json!({"eventType": "Loan.Created", "aggregateType": "Loan", "aggregateId": "L1",
            "payload": {"loanId": "L1", "borrowerId": "B7", "amount": "1000", "interestRate": "5",
                "termMonths": 12, "amortization": "amortized", "paymentFrequency": "monthly"}}),
        );
        stored(
            &mut h,
            json!({"eventType": "Loan.Funded", "aggregateType": "Loan", "aggregateId": "L1",
            "payload": {"loanId": "L1", "fundedAmount": "1000", "fundedAt": "2026-01-10T00:00:00Z"}}),
        );
        let n = run(&NotificationHandler, &mut h, &[]).unwrap();
        assert_eq!(n[0].payload["recipient"], "B7");
        assert_eq!(n[0].payload["template"], "loan-funded");

        stored(
            &mut h,
            json!({"eventType": "Draw.Rejected", "aggregateType": "Draw", "aggregateId": "D1",
            "payload": {"drawId": "D1", "loanId": "L1", "reason": "x", "rejectedBy": "U"}}),
        );
        let event = h.last().unwrap().clone();
        assert_eq!(
            NotificationHandler.related(&event),
            Some(("Loan", "L1".into()))
        );
        let loan = stream(&h, "Loan", "L1");
        let n = run(&NotificationHandler, &mut h, &loan).unwrap();
        assert_eq!(n[0].payload["recipient"], "B7");

        stored(
            &mut h,
            json!({"eventType": "Borrower.KYCFailed", "aggregateType": "Borrower", "aggregateId": "B7",
            "payload": {"borrowerId": "B7", "reason": "document mismatch"}}),
        );
        let n = run(&NotificationHandler, &mut h, &[]).unwrap();
        assert_eq!(n[0].payload["recipient"], COMPLIANCE_TEAM);
        assert_eq!(n[0].payload["channel"], "inbox");
        assert_eq!(n[0].payload["subjectId"], "B7");
    }
}
