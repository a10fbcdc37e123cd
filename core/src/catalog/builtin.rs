//! The built-in event types: the catalog's data. A new built-in type is one more
//! [`CATALOG`] entry here (see the `spec!` macro for the defaults).

use serde_json::{Map, Value};

use super::types::{EventSpec, CLIENT, DELIVERY, OPERATOR};
use crate::error::CoreError;
use crate::schema::{
    opt, req, FieldKind, FieldSpec, DATE, DATETIME, ID, MONEY, POSITIVE_MONEY, TEXT,
};

/// Names the seeds use for the same thing; the canonical name is stored.
pub const ALIASES: &[(&str, &str)] = &[
    ("Payment.ScheduleCreated", "PaymentSchedule.Generated"),
    ("Compliance.DocumentGenerated", "Document.Generated"),
    ("Compliance.DocGenerated", "Document.Generated"),
];

const AMORTIZATION: FieldKind = FieldKind::OneOf(&["amortized", "interest_only"]);
const FREQUENCY: FieldKind = FieldKind::OneOf(&["monthly", "quarterly", "maturity"]);
const TERM: FieldKind = FieldKind::Integer { min: 1, max: 600 };
const INSTALLMENT_NO: FieldKind = FieldKind::Integer { min: 1, max: 600 };
const COUNT: FieldKind = FieldKind::Integer {
    min: 0,
    max: 1_000_000,
};
/// At most this many event ids in one `Ops.DeadLetters*` event (an operation on more is
/// recorded as several events), so every Ops event fits the 256 KB event limit.
pub const MAX_OPS_IDS: usize = 1000;
const INSPECTION_RESULT: FieldKind = FieldKind::OneOf(&["passed", "failed"]);
/// Payment methods of `Payment.Received` v2.
pub const PAYMENT_METHODS: &[&str] = &["ach", "wire", "check", "card", "cash", "other"];

/// One installment of a payment schedule.
pub const INSTALLMENT: &[FieldSpec] = &[
    req("number", INSTALLMENT_NO),
    req("dueDate", DATE),
    req("principal", MONEY),
    req("interest", MONEY),
    req("total", MONEY),
    req("balance", MONEY),
];

/// How a payment was split (`fees` when it paid late fees).
pub const ALLOCATION: &[FieldSpec] = &[
    req("interest", MONEY),
    req("principal", MONEY),
    opt("fees", MONEY),
];

/// What a payment paid on one installment.
pub const INSTALLMENT_PAID: &[FieldSpec] = &[
    req("number", INSTALLMENT_NO),
    req("interest", MONEY),
    req("principal", MONEY),
    opt("fee", MONEY),
];

/// A payment's whole split, before or after a reallocation.
pub const SPLIT: &[FieldSpec] = &[
    req("interest", MONEY),
    req("principal", MONEY),
    req("fees", MONEY),
    req("held", MONEY),
    req(
        "installments",
        FieldKind::List {
            item: INSTALLMENT_PAID,
            max: 600,
        },
    ),
];

/// Days after a due date before an unpaid installment is late (`gracePeriodDays`).
pub const DEFAULT_GRACE_DAYS: u32 = 15;
/// Days past due at which a loan defaults (`defaultAfterDays`).
pub const DEFAULT_DEFAULT_AFTER_DAYS: u32 = 90;

/// `Loan.Created`'s `loanType`: a construction loan is funded in part and drawn on.
pub const LOAN_TYPES: &[&str] = &["term", "construction"];
const GRACE_DAYS: FieldKind = FieldKind::Integer { min: 0, max: 365 };
const DEFAULT_DAYS: FieldKind = FieldKind::Integer { min: 1, max: 3650 };
const DAYS: FieldKind = FieldKind::Integer {
    min: 0,
    max: 100_000,
};

macro_rules! spec {
    (@later) => { &[] };
    (@later $e:expr) => { $e };
    (@check) => { None };
    (@check $e:expr) => { Some($e) };
    (@producers) => { &[CLIENT] };
    (@producers $e:expr) => { $e };
    ($ty:literal, $domain:literal, $agg:literal, $id:literal, $desc:literal, [$($f:expr),* $(,)?]
        $(, later = $later:expr)? $(, check = $check:expr)? $(, producers = $producers:expr)? $(,)?) => {
        EventSpec {
            event_type: $ty,
            domain: $domain,
            aggregate_type: $agg,
            aggregate_id_field: $id,
            description: $desc,
            fields: &[$($f),*],
            later_versions: spec!(@later $($later)?),
            check: spec!(@check $($check)?),
            producers: spec!(@producers $($producers)?),
        }
    };
}

// The producers of handler-owned types: each handler's name (see `crate::handlers`).
const PAYMENT_SCHEDULE: &[&str] = &["payment-schedule"];
const PAYMENT_APPLICATION: &[&str] = &["payment-application"];
const DRAW_WORKFLOW: &[&str] = &["draw-workflow"];
const COMPLIANCE: &[&str] = &["compliance"];
const FUND_ALLOCATION: &[&str] = &["fund-allocation"];
const NOTIFICATIONS: &[&str] = &["notifications"];
// The late-payment job, by name like the handlers (its tests check it is `crate::late::JOB`).
const LATE_PAYMENTS: &[&str] = &["late-payments"];
const CLIENT_OR_LATE_PAYMENTS: &[&str] = &[CLIENT, "late-payments"];
// Every status change of a loan: services, the schedule handler (approved, funded), payment
// application (paid off, reopened, cured) and the late-payment job (delinquency, default).
const STATUS_CHANGERS: &[&str] = &[
    CLIENT,
    "payment-schedule",
    "payment-application",
    "late-payments",
];
const OPERATOR_ACTION: &[&str] = &[OPERATOR];
const DELIVERY_FUNCTION: &[&str] = &[DELIVERY];
const SUBSCRIPTION_STATUS: FieldKind = FieldKind::OneOf(&["active", "paused"]);
const SUBSCRIPTION_FORMAT: FieldKind = FieldKind::OneOf(&["cloudevents", "envelope"]);

/// Every built-in event type.
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
            opt("loanType", FieldKind::OneOf(LOAN_TYPES)),
            opt("gracePeriodDays", GRACE_DAYS),
            opt("lateFeePercent", FieldKind::Rate),
            opt("lateFeeMinimum", MONEY),
            opt("lateFeeMaximum", MONEY),
            opt("defaultAfterDays", DEFAULT_DAYS),
        ],
        check = loan_terms_are_consistent,
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
        "Loan terms changed; a new rate or term regenerates the schedule",
        [
            req("loanId", ID),
            opt("interestRate", FieldKind::Rate),
            opt("termMonths", TERM),
            opt("changes", FieldKind::Object),
            req("modifiedBy", ID),
            opt("modifiedAt", DATETIME),
        ],
        check = modification_changes_something,
    ),
    spec!(
        "Loan.StatusChanged",
        "loan",
        "Loan",
        "loanId",
        "Loan status changed (lifecycle, or delinquency: current, delinquent, seriously_delinquent, defaulted)",
        [
            req("loanId", ID),
            req("fromStatus", TEXT),
            req("toStatus", TEXT),
            opt("changedBy", ID),
            opt("reason", TEXT),
            opt("daysPastDue", DAYS),
            opt("asOf", DATE),
        ],
        producers = STATUS_CHANGERS,
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
        ],
        producers = PAYMENT_APPLICATION,
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
            opt("daysPastDue", DAYS),
        ],
        producers = CLIENT_OR_LATE_PAYMENTS,
    ),
    spec!(
        "Loan.DrawSubmitted",
        "draw",
        "Loan",
        "loanId",
        "A draw that passed inspection asks for funds of the loan (decided on the loan's stream)",
        [
            req("loanId", ID),
            req("drawId", ID),
            req("amount", POSITIVE_MONEY),
            opt("inspectionId", ID),
        ],
        producers = DRAW_WORKFLOW,
    ),
    spec!(
        "Loan.DrawDisbursed",
        "draw",
        "Loan",
        "loanId",
        "A draw's funds were released (the loan's disbursed draws)",
        [
            req("loanId", ID),
            req("drawId", ID),
            req("amount", POSITIVE_MONEY),
            req("disbursedAt", DATETIME),
        ],
        producers = DRAW_WORKFLOW,
    ),
    // Payment (on the loan's stream)
    spec!(
        "PaymentSchedule.Generated",
        "payment",
        "Loan",
        "loanId",
        "Amortization schedule created (on funding) or regenerated (on Loan.Modified, on a disbursed draw)",
        [
            req("loanId", ID),
            req("scheduleId", ID),
            req("totalPayments", INSTALLMENT_NO),
            req(
                "payments",
                FieldKind::List {
                    item: INSTALLMENT,
                    max: 600
                }
            ),
            opt("supersedes", ID),
        ],
        producers = PAYMENT_SCHEDULE,
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
        ],
        later = &[&[
            req("paymentId", ID),
            req("loanId", ID),
            req("amount", POSITIVE_MONEY),
            req("paymentMethod", FieldKind::OneOf(PAYMENT_METHODS)),
            opt("methodDetail", TEXT),
            req("receivedAt", DATETIME),
        ]],
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
        "Payment allocated to interest, then principal, of the oldest unpaid installments",
        [
            req("paymentId", ID),
            req("loanId", ID),
            req("allocation", FieldKind::Record(ALLOCATION)),
            opt(
                "installments",
                FieldKind::List {
                    item: INSTALLMENT_PAID,
                    max: 600
                }
            ),
            opt("prepaidPrincipal", MONEY),
            req("remainingPrincipal", MONEY),
            opt("paymentMethod", FieldKind::OneOf(PAYMENT_METHODS)),
            opt("accruedInterest", MONEY),
            opt("excessHeld", MONEY),
            opt("effectiveDate", DATE),
        ],
        producers = PAYMENT_APPLICATION,
    ),
    spec!(
        "Payment.ExcessHeld",
        "payment",
        "Loan",
        "loanId",
        "What a payment brought above the payoff amount (or all of it, on a loan paid off or not funded): held for the borrower",
        [
            req("loanId", ID),
            req("paymentId", ID),
            req("amount", POSITIVE_MONEY),
            req("reason", TEXT),
        ],
        producers = PAYMENT_APPLICATION,
    ),
    spec!(
        "Refund.Due",
        "payment",
        "Loan",
        "loanId",
        "Money held for the borrower of a paid-off (or never funded) loan is owed back",
        [
            req("loanId", ID),
            req("paymentId", ID),
            req("amount", POSITIVE_MONEY),
            req("reason", TEXT),
            opt("borrowerId", ID),
        ],
        producers = PAYMENT_APPLICATION,
    ),
    spec!(
        "Refund.Cancelled",
        "payment",
        "Loan",
        "loanId",
        "A refund owed for held money is withdrawn: the payment that brought the money was reversed",
        [
            req("loanId", ID),
            req("paymentId", ID),
            req("amount", POSITIVE_MONEY),
            req("reason", TEXT),
        ],
        producers = PAYMENT_APPLICATION,
    ),
    spec!(
        "Payment.Reallocated",
        "payment",
        "Loan",
        "loanId",
        "A payment's split changed because an earlier-dated payment was recorded after it",
        [
            req("loanId", ID),
            req("paymentId", ID),
            req("causePaymentId", ID),
            req("before", FieldKind::Record(SPLIT)),
            req("after", FieldKind::Record(SPLIT)),
        ],
        producers = PAYMENT_APPLICATION,
    ),
    spec!(
        "Payment.LateRescinded",
        "payment",
        "Loan",
        "loanId",
        "A Payment.Late that an earlier-dated payment would have prevented is withdrawn",
        [
            req("loanId", ID),
            req("installment", INSTALLMENT_NO),
            opt("scheduleId", ID),
            req("causePaymentId", ID),
            req("reason", TEXT),
        ],
        producers = PAYMENT_APPLICATION,
    ),
    spec!(
        "Payment.LateFeeWaived",
        "payment",
        "Loan",
        "loanId",
        "A late fee that an earlier-dated payment would have prevented is waived",
        [
            req("loanId", ID),
            req("installment", INSTALLMENT_NO),
            req("amount", POSITIVE_MONEY),
            req("causePaymentId", ID),
            req("reason", TEXT),
        ],
        producers = PAYMENT_APPLICATION,
    ),
    spec!(
        "Payment.Late",
        "payment",
        "Loan",
        "loanId",
        "Installment past due (daily job)",
        [
            req("loanId", ID),
            req("installment", INSTALLMENT_NO),
            req(
                "daysLate",
                FieldKind::Integer {
                    min: 1,
                    max: 100_000
                }
            ),
            req("amountDue", MONEY),
            opt("scheduleId", ID),
            opt("dueDate", DATE),
            opt("asOf", DATE),
        ],
        producers = LATE_PAYMENTS,
    ),
    spec!(
        "Payment.LateFeeAssessed",
        "payment",
        "Loan",
        "loanId",
        "Late fee of an installment unpaid past its grace period (daily job)",
        [
            req("loanId", ID),
            req("installment", INSTALLMENT_NO),
            req("amount", POSITIVE_MONEY),
            opt("scheduleId", ID),
            opt("dueDate", DATE),
            opt("asOf", DATE),
        ],
        producers = LATE_PAYMENTS,
    ),
    spec!(
        "Payment.Reversed",
        "payment",
        "Loan",
        "loanId",
        "Payment reversed (undoes its application)",
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
        ],
        producers = DRAW_WORKFLOW,
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
            req("result", INSPECTION_RESULT),
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
            req("result", INSPECTION_RESULT),
            opt("loanId", ID),
        ],
        producers = DRAW_WORKFLOW,
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
        ],
        producers = DRAW_WORKFLOW,
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
        ],
        producers = DRAW_WORKFLOW,
    ),
    spec!(
        "Draw.Rejected",
        "draw",
        "Draw",
        "drawId",
        "Draw request denied",
        [
            req("drawId", ID),
            opt("loanId", ID),
            req("reason", TEXT),
            req("rejectedBy", ID),
        ],
        producers = DRAW_WORKFLOW,
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
        ],
        producers = FUND_ALLOCATION,
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
        ],
        producers = COMPLIANCE,
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
        "ComplianceReview",
        "reviewId",
        "Compliance review opened (KYC failure, flag, a loan funded without approval or KYC)",
        [
            req("reviewId", ID),
            req("borrowerId", ID),
            req("reason", TEXT),
            opt("trigger", ID),
            opt("loanId", ID),
        ],
        producers = COMPLIANCE,
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
        ],
        producers = NOTIFICATIONS,
    ),
    // Operator actions, on the tenant's `Ops` stream (aggregateId = the tenant)
    spec!(
        "Ops.ReplayRequested",
        "ops",
        "Ops",
        "tenantId",
        "Stored events were sent to handlers again (POST /replay; dry runs are not recorded)",
        [
            req("tenantId", ID),
            req("replayId", ID),
            req("selection", FieldKind::Object),
            opt("handlers", FieldKind::IdList { max: 64 }),
            opt("subscriptions", FieldKind::IdList { max: 64 }),
            req("rerun", FieldKind::Bool),
            req("events", COUNT),
            req("messages", COUNT),
            req("sent", COUNT),
        ],
        producers = OPERATOR_ACTION,
    ),
    spec!(
        "Ops.DeadLettersRedriven",
        "ops",
        "Ops",
        "tenantId",
        "Dead letters of a domain queue were sent back to it",
        [
            req("tenantId", ID),
            req("domain", ID),
            req("queue", ID),
            req("count", COUNT),
            req("eventIds", FieldKind::IdList { max: MAX_OPS_IDS }),
        ],
        producers = OPERATOR_ACTION,
    ),
    spec!(
        "Ops.DeadLettersPurged",
        "ops",
        "Ops",
        "tenantId",
        "Dead letters of a domain queue were deleted",
        [
            req("tenantId", ID),
            req("domain", ID),
            req("queue", ID),
            req("count", COUNT),
            req("eventIds", FieldKind::IdList { max: MAX_OPS_IDS }),
        ],
        producers = OPERATOR_ACTION,
    ),
    spec!(
        "Ops.HandlerSwitched",
        "ops",
        "Ops",
        "tenantId",
        "A handler was switched on or off (platform-wide)",
        [
            req("tenantId", ID),
            req("handler", ID),
            req("enabled", FieldKind::Bool),
        ],
        producers = OPERATOR_ACTION,
    ),
    // Subscriptions of other systems (webhooks, SQS targets); aggregateId = subscriptionId.
    // The signing secret is never in an event.
    spec!(
        "Subscription.Created",
        "subscription",
        "Subscription",
        "subscriptionId",
        "A subscription was created (POST /subscriptions)",
        [
            req("subscriptionId", ID),
            req("name", TEXT),
            req("filter", FieldKind::Object),
            req("target", FieldKind::Object),
            req("format", SUBSCRIPTION_FORMAT),
            req("status", SUBSCRIPTION_STATUS),
            opt("startFrom", DATETIME),
        ],
        producers = OPERATOR_ACTION,
    ),
    spec!(
        "Subscription.Updated",
        "subscription",
        "Subscription",
        "subscriptionId",
        "A subscription's filter, target, format, name or status changed",
        [req("subscriptionId", ID), req("changes", FieldKind::Object),],
        producers = OPERATOR_ACTION,
    ),
    spec!(
        "Subscription.Deleted",
        "subscription",
        "Subscription",
        "subscriptionId",
        "A subscription was deleted; nothing more is delivered to it",
        [req("subscriptionId", ID)],
        producers = OPERATOR_ACTION,
    ),
    spec!(
        "Subscription.SecretRotated",
        "subscription",
        "Subscription",
        "subscriptionId",
        "A new signing secret was issued; the previous one stays valid until previousValidUntil",
        [
            req("subscriptionId", ID),
            req("previousValidUntil", DATETIME),
        ],
        producers = OPERATOR_ACTION,
    ),
    spec!(
        "Subscription.CircuitOpened",
        "subscription",
        "Subscription",
        "subscriptionId",
        "Deliveries to a target failed too often in a row: they wait until a probe succeeds",
        [
            req("subscriptionId", ID),
            req("target", TEXT),
            req("consecutiveFailures", COUNT),
            req("retryAt", DATETIME),
            opt("lastError", TEXT),
        ],
        producers = DELIVERY_FUNCTION,
    ),
    spec!(
        "Subscription.CircuitClosed",
        "subscription",
        "Subscription",
        "subscriptionId",
        "A probe to a target succeeded: deliveries resume",
        [req("subscriptionId", ID), req("target", TEXT)],
        producers = DELIVERY_FUNCTION,
    ),
    spec!(
        "Ops.ProjectionRebuilt",
        "ops",
        "Ops",
        "tenantId",
        "A read model was re-derived from the event store for the tenant",
        [
            req("tenantId", ID),
            req("projection", ID),
            req("loans", COUNT),
            req("written", COUNT),
        ],
        producers = OPERATOR_ACTION,
    ),
];

fn loan_terms_are_consistent(p: &Map<String, Value>) -> Result<(), CoreError> {
    quarterly_term_divides_by_three(p)?;
    let money = |k: &str| {
        p.get(k)
            .and_then(|v| crate::money::decimal_from_json(v, 2).ok())
    };
    if let (Some(min), Some(max)) = (money("lateFeeMinimum"), money("lateFeeMaximum")) {
        if min > max {
            return Err(CoreError::invalid(
                "payload.lateFeeMaximum",
                "must not be below lateFeeMinimum",
            ));
        }
    }
    let grace = p
        .get("gracePeriodDays")
        .and_then(Value::as_i64)
        .unwrap_or(DEFAULT_GRACE_DAYS.into());
    let default_after = p
        .get("defaultAfterDays")
        .and_then(Value::as_i64)
        .unwrap_or(DEFAULT_DEFAULT_AFTER_DAYS.into());
    if default_after <= grace {
        return Err(CoreError::invalid(
            "payload.defaultAfterDays",
            "must be more than gracePeriodDays",
        ));
    }
    Ok(())
}

fn quarterly_term_divides_by_three(p: &Map<String, Value>) -> Result<(), CoreError> {
    let quarterly = p.get("paymentFrequency").and_then(Value::as_str) == Some("quarterly");
    let term = p.get("termMonths").and_then(Value::as_i64).unwrap_or(0);
    if quarterly && term % 3 != 0 {
        return Err(CoreError::invalid(
            "payload.termMonths",
            "must be a multiple of 3 for quarterly payments",
        ));
    }
    Ok(())
}

fn modification_changes_something(p: &Map<String, Value>) -> Result<(), CoreError> {
    if ["interestRate", "termMonths", "changes"]
        .iter()
        .all(|k| !p.contains_key(*k))
    {
        return Err(CoreError::invalid(
            "payload",
            "needs at least one of interestRate, termMonths, changes",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::catalog::{export, is_event_type_name, lookup, Catalog};
    use crate::schema::validate_object;

    #[test]
    fn every_entry_is_well_formed() {
        for s in CATALOG {
            assert!(is_event_type_name(s.event_type), "{}", s.event_type);
            for v in 1..=s.latest_version() {
                let fields = s.schema(v).unwrap();
                assert!(
                    fields
                        .iter()
                        .any(|f| f.name == s.aggregate_id_field && f.required),
                    "{} v{v} must require its aggregate id field",
                    s.event_type
                );
            }
            assert!(s.schema(0).is_none() && s.schema(s.latest_version() + 1).is_none());
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
    fn producers_are_clients_handlers_the_job_or_operators() {
        let handlers: Vec<&str> = crate::handlers::all().iter().map(|h| h.name()).collect();
        for s in CATALOG {
            assert!(!s.producers.is_empty(), "{} has no producer", s.event_type);
            for p in s.producers {
                assert!(
                    [CLIENT, OPERATOR, DELIVERY, crate::late::JOB].contains(p)
                        || handlers.contains(p),
                    "{}: unknown producer {p}",
                    s.event_type
                );
            }
            assert_eq!(
                s.event_type.starts_with("Ops.")
                    || (s.event_type.starts_with("Subscription.")
                        && !s.event_type.contains("Circuit")),
                s.produced_by(OPERATOR),
                "{}",
                s.event_type
            );
        }
        // Every handler decides something (its outputs are checked on append: the handler
        // tests store every follow-on through that check); projections write read models.
        for h in handlers
            .iter()
            .filter(|h| !crate::projections::PROJECTIONS.contains(h))
        {
            assert!(
                CATALOG.iter().any(|s| s.produced_by(h)),
                "{h} produces nothing"
            );
        }
        assert!(!lookup("Payment.Applied").unwrap().client_may_publish());
        assert!(lookup("Payment.Received").unwrap().client_may_publish());
        assert!(!lookup("Loan.DrawSubmitted").unwrap().client_may_publish());
        let e = export();
        let late = e["eventTypes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["eventType"] == "Payment.Late")
            .unwrap();
        assert_eq!(late["producers"], json!(["late-payments"]));
        assert!(Catalog::builtin()
            .markdown_table()
            .contains("| `Draw.Approved` | draw | Draw (drawId) | 1 | draw-workflow |"));
    }

    #[test]
    fn the_seed_catalog_is_covered() {
        // Seed 000's catalog and flow patterns, seed 001's list (aliases included).
        let seeds = [
            "Loan.Created",
            "Loan.Approved",
            "Loan.Funded",
            "Loan.Modified",
            "Loan.PaidOff",
            "Loan.Defaulted",
            "Loan.StatusChanged",
            "Payment.Received",
            "Payment.Applied",
            "Payment.Late",
            "Payment.Reversed",
            "Payment.Scheduled",
            "Payment.Processed",
            "Payment.ScheduleCreated",
            "PaymentSchedule.Generated",
            "Draw.Requested",
            "Draw.Approved",
            "Draw.Inspected",
            "Draw.Disbursed",
            "Draw.Rejected",
            "Inspection.Scheduled",
            "Inspection.Completed",
            "Borrower.Created",
            "Borrower.KYCApproved",
            "Borrower.KYCFailed",
            "Borrower.Flagged",
            "Fund.Created",
            "Fund.CapitalAllocated",
            "Commitment.Activated",
            "CapitalCall.Issued",
            "Distribution.Calculated",
            "Filing.Due",
            "Document.Generated",
            "Document.Signed",
            "License.Expiring",
            "Compliance.DocGenerated",
            "Compliance.DocumentGenerated",
            "Notification.Sent",
        ];
        for t in seeds {
            assert!(lookup(t).is_some(), "{t} is missing");
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
    fn payment_received_has_two_versions() {
        let s = lookup("Payment.Received").unwrap();
        assert_eq!(s.latest_version(), 2);
        let v1 = json!({"paymentId": "P1", "loanId": "L1", "amount": "10", "method": "ACH",
            "receivedAt": "2026-02-01T00:00:00Z"});
        let v2 = json!({"paymentId": "P1", "loanId": "L1", "amount": "10", "paymentMethod": "ach",
            "receivedAt": "2026-02-01T00:00:00Z"});
        assert!(validate_object(&v1, s.schema(1).unwrap(), "payload").is_ok());
        assert!(validate_object(&v2, s.schema(1).unwrap(), "payload").is_err());
        assert!(validate_object(&v2, s.schema(2).unwrap(), "payload").is_ok());
        assert!(validate_object(&v1, s.schema(2).unwrap(), "payload").is_err());
    }

    #[test]
    fn cross_field_rules() {
        let created = lookup("Loan.Created").unwrap();
        let mut p = json!({"loanId": "L", "borrowerId": "B", "amount": "1", "interestRate": "1",
            "termMonths": 10, "amortization": "amortized", "paymentFrequency": "quarterly"});
        let check = created.check.unwrap();
        assert!(check(p.as_object().unwrap()).is_err());
        p["termMonths"] = json!(12);
        assert!(check(p.as_object().unwrap()).is_ok());
        let modified = lookup("Loan.Modified").unwrap().check.unwrap();
        assert!(modified(
            json!({"loanId": "L", "modifiedBy": "U"})
                .as_object()
                .unwrap()
        )
        .is_err());
    }
}
