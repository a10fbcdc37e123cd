//! The compliance domain: closing documents when a loan is funded, reviews when a
//! borrower fails KYC or is flagged.

use serde_json::json;

use super::{loan_before, DomainHandler, HandlerInput};
use crate::domain::Domain;
use crate::envelope::{derived_id, EventEnvelope, FollowOn};
use crate::error::CoreError;
use crate::state::LoanState;

/// The closing documents generated when `CLOSING_DOCUMENTS` is not set.
pub const DEFAULT_CLOSING_DOCUMENTS: &[&str] =
    &["promissory_note", "deed_of_trust", "closing_disclosure"];

const NAME: &str = "compliance";

/// `Loan.Funded` -> one `Document.Generated` per closing document (the list is
/// configuration); `Borrower.KYCFailed` / `Borrower.Flagged` -> `Compliance.ReviewOpened`.
pub struct ComplianceHandler {
    documents: Vec<String>,
}

impl ComplianceHandler {
    pub fn new(documents: Vec<String>) -> Self {
        ComplianceHandler { documents }
    }

    /// The document types generated on funding.
    pub fn documents(&self) -> impl Iterator<Item = &str> {
        self.documents.iter().map(String::as_str)
    }
}

impl Default for ComplianceHandler {
    /// The handler with the default closing documents.
    fn default() -> Self {
        ComplianceHandler::new(
            DEFAULT_CLOSING_DOCUMENTS
                .iter()
                .map(|d| d.to_string())
                .collect(),
        )
    }
}

impl DomainHandler for ComplianceHandler {
    fn name(&self) -> &'static str {
        NAME
    }

    fn domain(&self) -> Domain {
        Domain::Compliance
    }

    fn subscriptions(&self) -> &'static [&'static str] {
        &["Loan.Funded", "Borrower.KYCFailed", "Borrower.Flagged"]
    }

    fn handle(&self, input: &HandlerInput<'_>) -> Result<Vec<FollowOn>, CoreError> {
        let e = input.event;
        match e.event_type.as_str() {
            "Loan.Funded" => Ok(self.closing_documents(e, &loan_before(input))),
            "Borrower.KYCFailed" | "Borrower.Flagged" => Ok(vec![review(e)]),
            _ => Ok(Vec::new()),
        }
    }
}

impl ComplianceHandler {
    fn closing_documents(&self, e: &EventEnvelope, loan: &LoanState) -> Vec<FollowOn> {
        self.documents()
            .map(|doc| {
                let id = derived_id(&[NAME, "document", &e.event_id.to_string(), doc]);
                let mut payload = json!({"documentId": id, "type": doc, "loanId": e.aggregate_id});
                if let Some(b) = &loan.borrower_id {
                    payload["borrowerId"] = json!(b);
                }
                FollowOn {
                    event_type: "Document.Generated",
                    aggregate_type: "Document",
                    aggregate_id: id.to_string(),
                    payload,
                }
            })
            .collect()
    }
}

fn review(e: &EventEnvelope) -> FollowOn {
    let id = derived_id(&[NAME, "review", &e.event_id.to_string()]);
    let why = match e.event_type.as_str() {
        "Borrower.KYCFailed" => "KYC failed",
        _ => "flagged",
    };
    let reason = format!(
        "{why}: {}",
        e.payload_str("reason").unwrap_or("no reason given")
    );
    FollowOn {
        event_type: "Compliance.ReviewOpened",
        aggregate_type: "ComplianceReview",
        aggregate_id: id.to_string(),
        payload: json!({"reviewId": id, "borrowerId": e.aggregate_id, "reason": reason,
            "trigger": e.event_type}),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::Value;

    use super::*;
    use crate::handlers::testkit::given;

    /// The funding's eventId, so follow-ons can be checked for their causation.
    const FUNDING: &str = "00000000-0000-4000-8000-000000000001";

    fn created() -> Value {
        json!({"eventType": "Loan.Created", "aggregateType": "Loan", "aggregateId": "L1",
            "payload": {"loanId": "L1", "borrowerId": "B1", "amount": "1000", "interestRate": "5",
                "termMonths": 12, "amortization": "amortized", "paymentFrequency": "monthly"}})
    }

    fn funded() -> Value {
        json!({"eventId": FUNDING, "eventType": "Loan.Funded", "aggregateType": "Loan",
            "aggregateId": "L1",
            "payload": {"loanId": "L1", "fundedAmount": "1000", "fundedAt": "2026-01-10T00:00:00Z"}})
    }

    /// One `Document.Generated` of the borrower's loan per document type, caused by the funding.
    fn documents(types: &[&str]) -> Vec<Value> {
        types
            .iter()
            .map(|t| {
                json!({"eventType": "Document.Generated", "aggregateType": "Document",
                    "payload": {"type": t, "loanId": "L1", "borrowerId": "B1"},
                    "metadata": {"causationId": FUNDING}})
            })
            .collect()
    }

    #[test]
    fn funding_generates_the_configured_closing_documents() {
        given([created()])
            .when(&ComplianceHandler::default(), funded())
            .then(documents(DEFAULT_CLOSING_DOCUMENTS));
        given([created()])
            .when(
                &ComplianceHandler::new(vec!["flood_certificate".into()]),
                funded(),
            )
            .then(documents(&["flood_certificate"]));
    }

    #[test]
    fn kyc_failures_and_flags_open_reviews() {
        for (t, why) in [
            ("Borrower.KYCFailed", "KYC failed"),
            ("Borrower.Flagged", "flagged"),
        ] {
            given([])
                .when(
                    &ComplianceHandler::default(),
                    json!({"eventType": t, "aggregateType": "Borrower", "aggregateId": "B1",
                        "payload": {"borrowerId": "B1", "reason": "sanctions list match"}}),
                )
                .then([json!({"eventType": "Compliance.ReviewOpened",
                    "aggregateType": "ComplianceReview",
                    "payload": {"borrowerId": "B1", "reason": format!("{why}: sanctions list match"),
                        "trigger": t}})]);
        }
    }
}
