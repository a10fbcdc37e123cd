//! The event catalog: every event type the backbone accepts, with its domain, the aggregate
//! whose stream it belongs to, and its payload schema.
//!
//! Aggregates: loan, payment and schedule events live on the loan's stream (`Loan`,
//! aggregateId = loanId) so they are ordered with the loan's other events; draw and
//! inspection events on the draw's stream (`Draw`); borrower events on `Borrower`; fund-level
//! money movements on `Fund`; compliance documents on `Document`, filings on `Filing`,
//! licenses on `License`; notifications on `Notification`.

use crate::schema::{
    opt, req, FieldKind, FieldSpec, DATE, DATETIME, ID, MONEY, POSITIVE_MONEY, TEXT,
};

/// One event type.
#[derive(Debug, Clone, Copy)]
pub struct EventSpec {
    pub event_type: &'static str,
    pub domain: &'static str,
    pub aggregate_type: &'static str,
    /// The payload field that must equal the envelope's aggregateId.
    pub aggregate_id_field: &'static str,
    pub description: &'static str,
    pub fields: &'static [FieldSpec],
}

/// Names the seeds use for the same thing; the canonical name is stored.
pub const ALIASES: &[(&str, &str)] = &[
    ("Payment.ScheduleCreated", "PaymentSchedule.Generated"),
    ("Compliance.DocumentGenerated", "Document.Generated"),
    ("Compliance.DocGenerated", "Document.Generated"),
];

const AMORTIZATION: FieldKind = FieldKind::OneOf(&["amortized", "interest_only"]);
const FREQUENCY: FieldKind = FieldKind::OneOf(&["monthly", "quarterly", "maturity"]);
const TERM: FieldKind = FieldKind::Integer { min: 1, max: 600 };

/// One installment of a payment schedule.
pub const INSTALLMENT: &[FieldSpec] = &[
    req("number", FieldKind::Integer { min: 1, max: 600 }),
    req("dueDate", DATE),
    req("principal", MONEY),
    req("interest", MONEY),
    req("total", MONEY),
    req("balance", MONEY),
];

macro_rules! spec {
    ($ty:literal, $domain:literal, $agg:literal, $id:literal, $desc:literal, [$($f:expr),* $(,)?]) => {
        EventSpec {
            event_type: $ty,
            domain: $domain,
            aggregate_type: $agg,
            aggregate_id_field: $id,
            description: $desc,
            fields: &[$($f),*],
        }
    };
}

pub const CATALOG: &[EventSpec] = &[
    // Loan
    spec!(
        "Loan.Created",
        "loan",
        "Loan",
        "loanId",
        "New loan application submitted",
        [
            req("loanId", ID),
            req("borrowerId", ID),
            req("amount", POSITIVE_MONEY),
            req("interestRate", FieldKind::Rate),
            req("termMonths", TERM),
            req("amortization", AMORTIZATION),
            req("paymentFrequency", FREQUENCY),
            opt("fundId", ID),
        ]
    ),
    spec!(
        "Loan.Approved",
        "loan",
        "Loan",
        "loanId",
        "Loan approved for funding",
        [
            req("loanId", ID),
            req("approvedBy", ID),
            req("approvedAt", DATETIME),
        ]
    ),
    spec!(
        "Loan.Funded",
        "loan",
        "Loan",
        "loanId",
        "Loan funds disbursed",
        [
            req("loanId", ID),
            req("fundedAmount", POSITIVE_MONEY),
            req("fundedAt", DATETIME),
        ]
    ),
    spec!(
        "Loan.Modified",
        "loan",
        "Loan",
        "loanId",
        "Loan terms changed",
        [
            req("loanId", ID),
            opt("interestRate", FieldKind::Rate),
            opt("termMonths", TERM),
            opt("changes", FieldKind::Object),
            req("modifiedBy", ID),
            opt("modifiedAt", DATETIME),
        ]
    ),
    spec!(
        "Loan.StatusChanged",
        "loan",
        "Loan",
        "loanId",
        "Loan status changed",
        [
            req("loanId", ID),
            req("fromStatus", TEXT),
            req("toStatus", TEXT),
            opt("changedBy", ID),
        ]
    ),
    spec!(
        "Loan.PaidOff",
        "loan",
        "Loan",
        "loanId",
        "Loan fully paid",
        [
            req("loanId", ID),
            req("finalPaymentId", ID),
            req("paidOffAt", DATETIME),
        ]
    ),
    spec!(
        "Loan.Defaulted",
        "loan",
        "Loan",
        "loanId",
        "Loan entered default",
        [
            req("loanId", ID),
            req("reason", TEXT),
            req("defaultedAt", DATETIME),
        ]
    ),
    // Payment (on the loan's stream)
    spec!(
        "PaymentSchedule.Generated",
        "payment",
        "Loan",
        "loanId",
        "Amortization schedule created",
        [
            req("loanId", ID),
            req("scheduleId", ID),
            req("totalPayments", FieldKind::Integer { min: 1, max: 600 }),
            req(
                "payments",
                FieldKind::List {
                    item: INSTALLMENT,
                    max: 600
                }
            ),
            opt("supersedes", ID),
        ]
    ),
    spec!(
        "Payment.Scheduled",
        "payment",
        "Loan",
        "loanId",
        "Individual payment scheduled",
        [
            req("loanId", ID),
            req("paymentId", ID),
            req("dueDate", DATE),
            req("amount", POSITIVE_MONEY),
        ]
    ),
    spec!(
        "Payment.Received",
        "payment",
        "Loan",
        "loanId",
        "Payment recorded",
        [
            req("paymentId", ID),
            req("loanId", ID),
            req("amount", POSITIVE_MONEY),
            req("method", TEXT),
            req("receivedAt", DATETIME),
        ]
    ),
    spec!(
        "Payment.Processed",
        "payment",
        "Loan",
        "loanId",
        "Payment processed by the payment provider",
        [
            req("paymentId", ID),
            req("loanId", ID),
            req("amount", POSITIVE_MONEY),
            opt("processedAt", DATETIME),
        ]
    ),
    spec!(
        "Payment.Applied",
        "payment",
        "Loan",
        "loanId",
        "Payment allocated to principal/interest",
        [
            req("paymentId", ID),
            req("loanId", ID),
            req("allocation", FieldKind::Object),
            req("remainingPrincipal", MONEY),
        ]
    ),
    spec!(
        "Payment.Late",
        "payment",
        "Loan",
        "loanId",
        "Payment past due",
        [
            req("loanId", ID),
            req("installment", FieldKind::Integer { min: 1, max: 600 }),
            req(
                "daysLate",
                FieldKind::Integer {
                    min: 1,
                    max: 100_000
                }
            ),
            req("amountDue", MONEY),
        ]
    ),
    spec!(
        "Payment.Reversed",
        "payment",
        "Loan",
        "loanId",
        "Payment reversed",
        [req("paymentId", ID), req("loanId", ID), req("reason", TEXT),]
    ),
    // Draw and inspection (on the draw's stream)
    spec!(
        "Draw.Requested",
        "draw",
        "Draw",
        "drawId",
        "Draw request submitted",
        [
            req("drawId", ID),
            req("loanId", ID),
            req("amount", POSITIVE_MONEY),
        ]
    ),
    spec!(
        "Inspection.Scheduled",
        "draw",
        "Draw",
        "drawId",
        "Inspection scheduled for a draw",
        [
            req("inspectionId", ID),
            req("drawId", ID),
            opt("scheduledFor", DATE),
        ]
    ),
    spec!(
        "Inspection.Completed",
        "draw",
        "Draw",
        "drawId",
        "Inspection completed",
        [
            req("inspectionId", ID),
            req("drawId", ID),
            req("result", FieldKind::OneOf(&["passed", "failed"])),
            opt("notes", TEXT),
        ]
    ),
    spec!(
        "Draw.Inspected",
        "draw",
        "Draw",
        "drawId",
        "Inspection result recorded on the draw",
        [
            req("drawId", ID),
            req("inspectionId", ID),
            req("result", FieldKind::OneOf(&["passed", "failed"])),
        ]
    ),
    spec!(
        "Draw.Approved",
        "draw",
        "Draw",
        "drawId",
        "Draw approved",
        [
            req("drawId", ID),
            opt("loanId", ID),
            req("approvedAmount", POSITIVE_MONEY),
            req("approvedBy", ID),
        ]
    ),
    spec!(
        "Draw.Disbursed",
        "draw",
        "Draw",
        "drawId",
        "Draw funds released",
        [
            req("drawId", ID),
            opt("loanId", ID),
            req("amount", POSITIVE_MONEY),
            req("disbursedAt", DATETIME),
        ]
    ),
    spec!(
        "Draw.Rejected",
        "draw",
        "Draw",
        "drawId",
        "Draw request denied",
        [
            req("drawId", ID),
            req("reason", TEXT),
            req("rejectedBy", ID),
        ]
    ),
    // Borrower
    spec!(
        "Borrower.Created",
        "borrower",
        "Borrower",
        "borrowerId",
        "New borrower added",
        [
            req("borrowerId", ID),
            req("type", FieldKind::OneOf(&["individual", "entity"])),
            opt("name", TEXT),
        ]
    ),
    spec!(
        "Borrower.KYCApproved",
        "borrower",
        "Borrower",
        "borrowerId",
        "KYC verification passed",
        [req("borrowerId", ID), req("verifiedAt", DATETIME),]
    ),
    spec!(
        "Borrower.KYCFailed",
        "borrower",
        "Borrower",
        "borrowerId",
        "KYC verification failed",
        [req("borrowerId", ID), req("reason", TEXT),]
    ),
    spec!(
        "Borrower.Flagged",
        "borrower",
        "Borrower",
        "borrowerId",
        "Borrower flagged for review",
        [req("borrowerId", ID), req("reason", TEXT),]
    ),
    // Fund
    spec!(
        "Fund.Created",
        "fund",
        "Fund",
        "fundId",
        "New fund established",
        [req("fundId", ID), req("name", TEXT), req("structure", TEXT),]
    ),
    spec!(
        "Fund.CapitalAllocated",
        "fund",
        "Fund",
        "fundId",
        "Capital allocated to a loan",
        [
            req("fundId", ID),
            req("loanId", ID),
            req("amount", POSITIVE_MONEY),
            opt("allocatedAt", DATETIME),
        ]
    ),
    spec!(
        "Commitment.Activated",
        "fund",
        "Commitment",
        "commitmentId",
        "Investor commitment active",
        [
            req("commitmentId", ID),
            req("investorId", ID),
            req("amount", POSITIVE_MONEY),
            opt("fundId", ID),
        ]
    ),
    spec!(
        "CapitalCall.Issued",
        "fund",
        "Fund",
        "fundId",
        "Capital call sent to investors",
        [
            req("callId", ID),
            req("fundId", ID),
            req("amount", POSITIVE_MONEY),
        ]
    ),
    spec!(
        "Distribution.Calculated",
        "fund",
        "Fund",
        "fundId",
        "Distribution amounts calculated",
        [
            req("distributionId", ID),
            req("fundId", ID),
            req("amounts", FieldKind::Object),
        ]
    ),
    // Compliance
    spec!(
        "Filing.Due",
        "compliance",
        "Filing",
        "filingId",
        "Regulatory filing due soon",
        [req("filingId", ID), req("dueDate", DATE), req("type", TEXT),]
    ),
    spec!(
        "Document.Generated",
        "compliance",
        "Document",
        "documentId",
        "Compliance document created",
        [
            req("documentId", ID),
            req("type", TEXT),
            opt("loanId", ID),
            opt("borrowerId", ID),
        ]
    ),
    spec!(
        "Document.Signed",
        "compliance",
        "Document",
        "documentId",
        "Document executed",
        [
            req("documentId", ID),
            req("signedBy", ID),
            req("signedAt", DATETIME),
        ]
    ),
    spec!(
        "License.Expiring",
        "compliance",
        "License",
        "licenseId",
        "License expiration approaching",
        [req("licenseId", ID), req("expiresAt", DATETIME),]
    ),
    spec!(
        "Compliance.ReviewOpened",
        "compliance",
        "Borrower",
        "borrowerId",
        "Compliance review opened for a borrower",
        [
            req("borrowerId", ID),
            req("reviewId", ID),
            req("reason", TEXT),
        ]
    ),
    // Notification
    spec!(
        "Notification.Sent",
        "notification",
        "Notification",
        "notificationId",
        "Notification delivered",
        [
            req("notificationId", ID),
            req(
                "channel",
                FieldKind::OneOf(&["email", "sms", "webhook", "inbox"])
            ),
            req("recipient", ID),
            req("template", ID),
            opt("subjectId", ID),
        ]
    ),
];

/// The canonical name of an event type (resolving aliases).
pub fn canonical(event_type: &str) -> &str {
    ALIASES
        .iter()
        .find(|(alias, _)| *alias == event_type)
        .map(|(_, canonical)| *canonical)
        .unwrap_or(event_type)
}

/// Look up an event type (or one of its aliases).
pub fn lookup(event_type: &str) -> Option<&'static EventSpec> {
    let name = canonical(event_type);
    CATALOG.iter().find(|s| s.event_type == name)
}

/// True when `s` is `Domain.Action` with PascalCase segments.
pub fn is_event_type_name(s: &str) -> bool {
    let mut parts = s.split('.');
    let pascal = |p: Option<&str>| {
        p.is_some_and(|p| {
            p.len() <= 64
                && p.starts_with(|c: char| c.is_ascii_uppercase())
                && p.chars().all(|c| c.is_ascii_alphanumeric())
        })
    };
    pascal(parts.next()) && pascal(parts.next()) && parts.next().is_none()
}

/// The catalog as JSON: one entry per type with its JSON Schema.
pub fn export() -> serde_json::Value {
    let types: Vec<serde_json::Value> = CATALOG
        .iter()
        .map(|s| {
            serde_json::json!({
                "eventType": s.event_type,
                "domain": s.domain,
                "aggregateType": s.aggregate_type,
                "aggregateIdField": s.aggregate_id_field,
                "description": s.description,
                "payloadSchema": crate::schema::json_schema(s.fields),
            })
        })
        .collect();
    serde_json::json!({ "eventTypes": types, "aliases": ALIASES })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_entry_is_well_formed() {
        for s in CATALOG {
            assert!(is_event_type_name(s.event_type), "{}", s.event_type);
            assert!(
                s.fields
                    .iter()
                    .any(|f| f.name == s.aggregate_id_field && f.required),
                "{} must require its aggregate id field",
                s.event_type
            );
            assert_eq!(
                CATALOG
                    .iter()
                    .filter(|o| o.event_type == s.event_type)
                    .count(),
                1,
                "{} is listed twice",
                s.event_type
            );
        }
    }

    #[test]
    fn aliases_resolve_to_entries() {
        assert_eq!(
            lookup("Payment.ScheduleCreated").unwrap().event_type,
            "PaymentSchedule.Generated"
        );
        assert!(lookup("Loan.Exploded").is_none());
    }

    #[test]
    fn event_type_names_are_domain_dot_action() {
        assert!(is_event_type_name("Loan.Funded"));
        assert!(is_event_type_name("PaymentSchedule.Generated"));
        assert!(!is_event_type_name("loan.funded"));
        assert!(!is_event_type_name("LoanFunded"));
        assert!(!is_event_type_name("Loan.Funded.Twice"));
        assert!(!is_event_type_name("LOAN_CREATED"));
        assert!(!is_event_type_name("Loan."));
    }
}
