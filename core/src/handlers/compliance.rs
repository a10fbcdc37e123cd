//! The compliance domain: closing documents when a loan is funded, reviews when a
//! borrower fails KYC or is flagged, and the funding gates: a `Loan.Funded` for a loan
//! without `Loan.Approved`, or whose borrower failed KYC, is flagged or has no KYC
//! approval, opens a review with the reasons (the funding is a fact; the review is the
//! response).

use serde_json::json;

use super::{loan_before, DomainHandler, HandlerInput};
use crate::domain::Domain;
use crate::envelope::{derived_id, EventEnvelope, FollowOn};
use crate::error::CoreError;
use crate::state::{Folded, LoanState, LoanStatus};

/// The closing documents generated when `CLOSING_DOCUMENTS` is not set.
pub const DEFAULT_CLOSING_DOCUMENTS: &[&str] =
    &["promissory_note", "deed_of_trust", "closing_disclosure"];

const NAME: &str = "compliance";

/// `Loan.Funded` -> one `Document.Generated` per closing document (the list is
/// configuration), and `Compliance.ReviewOpened` when a funding gate fails;
/// `Borrower.KYCFailed` / `Borrower.Flagged` -> `Compliance.ReviewOpened`.
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

    /// The funding gates read the loan's borrower (named by `Loan.Created`).
    fn related_in(&self, input: &HandlerInput<'_>) -> Option<(&'static str, String)> {
        if input.event.event_type != "Loan.Funded" {
            return None;
        }
        // `Loan.Created` sets the borrower; it is in the tail, or folded into the snapshot.
        let created = input
            .history
            .iter()
            .find(|e| e.event_type == "Loan.Created")
            .and_then(|e| e.payload_str("borrowerId"))
            .map(str::to_string);
        let snapshotted = match input.prior {
            Some(Folded::Loan(loan)) => loan.borrower_id.clone(),
            _ => None,
        };
        created.or(snapshotted).map(|b| ("Borrower", b))
    }

    fn handle(&self, input: &HandlerInput<'_>) -> Result<Vec<FollowOn>, CoreError> {
        let e = input.event;
        match e.event_type.as_str() {
            "Loan.Funded" => {
                let loan = loan_before(input);
                let mut out = self.closing_documents(e, &loan);
                out.extend(funding_gate(e, &loan, input.related));
                Ok(out)
            }
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
                    payload: payload.into(),
                }
            })
            .collect()
    }
}

/// Why a funding needs a review, if it does: no `Loan.Approved` before it; a borrower
/// whose KYC failed (and was not approved since), who is flagged, or has no KYC approval.
pub fn funding_gate_reasons(loan: &LoanState, borrower: &[EventEnvelope]) -> Vec<String> {
    let mut reasons = Vec::new();
    let id = &loan.loan_id;
    if !loan.approved || loan.status == LoanStatus::Created {
        reasons.push(format!("loan {id} was funded without Loan.Approved"));
    }
    let b = loan.borrower_id.as_deref().unwrap_or("?");
    let mut kyc: Option<Result<(), String>> = None;
    let mut flags = Vec::new();
    for e in borrower {
        let why = e
            .payload_str("reason")
            .unwrap_or("no reason given")
            .to_string();
        match e.event_type.as_str() {
            "Borrower.KYCApproved" => kyc = Some(Ok(())),
            "Borrower.KYCFailed" => kyc = Some(Err(why)),
            "Borrower.Flagged" => flags.push(why),
            _ => {}
        }
    }
    match kyc {
        Some(Ok(())) => {}
        Some(Err(why)) => reasons.push(format!("borrower {b} failed KYC: {why}")),
        None => reasons.push(format!("borrower {b} has no KYC approval")),
    }
    for why in flags {
        reasons.push(format!("borrower {b} is flagged: {why}"));
    }
    reasons
}

fn funding_gate(
    e: &EventEnvelope,
    loan: &LoanState,
    borrower: &[EventEnvelope],
) -> Option<FollowOn> {
    let reasons = funding_gate_reasons(loan, borrower);
    if reasons.is_empty() {
        return None;
    }
    let id = derived_id(&[NAME, "funding-review", &e.event_id.to_string()]);
    Some(FollowOn {
        event_type: "Compliance.ReviewOpened",
        aggregate_type: "ComplianceReview",
        aggregate_id: id.to_string(),
        payload:
            json!({"reviewId": id, "borrowerId": loan.borrower_id.as_deref().unwrap_or("unknown"),
            "loanId": e.aggregate_id, "reason": reasons.join("; "), "trigger": e.event_type})
            .into(),
    })
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
            "trigger": e.event_type})
        .into(),
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

    fn approved() -> Value {
        json!({"eventType": "Loan.Approved", "aggregateType": "Loan", "aggregateId": "L1",
            "payload": {"loanId": "L1", "approvedBy": "U1", "approvedAt": "2026-01-09T00:00:00Z"}})
    }

    fn kyc_approved() -> Value {
        json!({"eventType": "Borrower.KYCApproved", "aggregateType": "Borrower", "aggregateId": "B1",
            "payload": {"borrowerId": "B1", "verifiedAt": "2026-01-08T00:00:00Z"}})
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
        // An approved loan of a borrower who passed KYC: the documents, no review.
        given([kyc_approved(), created(), approved()])
            .when(&ComplianceHandler::default(), funded())
            .then(documents(DEFAULT_CLOSING_DOCUMENTS));
        given([kyc_approved(), created(), approved()])
            .when(
                &ComplianceHandler::new(vec!["flood_certificate".into()]),
                funded(),
            )
            .then(documents(&["flood_certificate"]));
    }

    #[test]
    fn a_funding_that_fails_a_gate_opens_a_review_with_the_reasons() {
        let mut expected = documents(DEFAULT_CLOSING_DOCUMENTS);
        expected.push(json!({"eventType": "Compliance.ReviewOpened",
            "aggregateType": "ComplianceReview",
            "payload": {"borrowerId": "B1", "loanId": "L1", "trigger": "Loan.Funded",
                "reason": "loan L1 was funded without Loan.Approved; borrower B1 has no KYC approval"},
            "metadata": {"causationId": FUNDING}}));
        given([created()])
            .when(&ComplianceHandler::default(), funded())
            .then(expected);
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
