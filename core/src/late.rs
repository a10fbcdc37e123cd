//! Late payments: what the daily job emits for one loan on an as-of date.
//!
//! For a funded loan, every installment due *before* the as-of date with something still
//! owed (see [`LoanState::dues`]) that has no `Payment.Late` yet gets one:
//! `{loanId, installment, daysLate, amountDue, scheduleId, dueDate, asOf}`.
//!
//! Never twice for one installment: the eventId is a name-based UUID of (tenant, loan,
//! schedule, installment), so the store's eventId guard refuses a second copy even when two
//! runs race (the job treats "already stored" and "eventId conflict" as done), and a later
//! run skips installments whose `Payment.Late` is already in the loan's history.

use chrono::{DateTime, NaiveDate, Utc};
use serde_json::json;
use uuid::Uuid;

use crate::envelope::{derived_id, EventEnvelope, NewEvent, WriteContext};
use crate::error::CoreError;
use crate::state::LoanState;

/// The job's name: `metadata.source` of its events and part of their ids.
pub const JOB: &str = "late-payments";

/// The eventId of the `Payment.Late` of one installment.
pub fn late_event_id(tenant: &str, loan_id: &str, schedule_id: &str, installment: u32) -> Uuid {
    derived_id(&[JOB, tenant, loan_id, schedule_id, &installment.to_string()])
}

/// The `Payment.Late` events to append for a loan's (upcast) history on `as_of`.
pub fn late_events(
    history: &[EventEnvelope],
    as_of: NaiveDate,
    now: DateTime<Utc>,
) -> Result<Vec<NewEvent>, CoreError> {
    let Some(first) = history.first() else {
        return Ok(Vec::new());
    };
    let tenant = &first.metadata.tenant_id;
    let loan = LoanState::fold(history);
    let principal = format!("job:{JOB}");
    let ctx = WriteContext {
        tenant_id: tenant,
        now,
        principal: &principal,
        producer: JOB,
    };
    loan.overdue(as_of)
        .into_iter()
        .map(|d| {
            let id = late_event_id(tenant, &first.aggregate_id, &d.schedule_id, d.number);
            let raw = json!({
                "eventId": id,
                "eventType": "Payment.Late",
                "aggregateType": "Loan",
                "aggregateId": first.aggregate_id,
                // Derived from the as-of date, so the same run twice is the same event.
                "occurredAt": format!("{as_of}T00:00:00Z"),
                "payload": {
                    "loanId": first.aggregate_id,
                    "installment": d.number,
                    "daysLate": (as_of - d.due_date).num_days(),
                    "amountDue": d.amount(),
                    "scheduleId": d.schedule_id,
                    "dueDate": d.due_date.to_string(),
                    "asOf": as_of.to_string(),
                },
                "metadata": {"correlationId": format!("{JOB}-{as_of}"), "source": JOB},
            });
            NewEvent::from_json(&raw, &ctx, &mut || id)
        })
        .collect()
}
