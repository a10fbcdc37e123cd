//! The daily job: what it records for one loan on an as-of date.
//!
//! For a funded loan (see [`crate::state::loan::delinquency`] for the rules):
//! - every installment unpaid past its due date plus the grace period with no
//!   `Payment.Late` yet gets one, `{loanId, installment, daysLate, amountDue, scheduleId,
//!   dueDate, asOf}`, with its `Payment.LateFeeAssessed` (once per installment);
//! - when the delinquency the days past due of the oldest unpaid installment give differs
//!   from the recorded one, one `Loan.StatusChanged` (from, to, reason, daysPastDue), and
//!   `Loan.Defaulted` when it reaches `defaulted`. Only a payment takes a loan out of
//!   default.
//!
//! Never twice: every eventId is name-based, of (tenant, loan, schedule, installment) for
//! a late notice or fee, of (tenant, loan, the loan's version, new status) for a status
//! change, so the store's eventId guard refuses a second copy even when two runs race (the
//! job treats "already stored" and "eventId conflict" as done), and a later run skips what
//! the loan's history already holds.

use chrono::{DateTime, NaiveDate, Utc};
use serde_json::{json, Value};
use uuid::Uuid;

use crate::envelope::{derived_id, EventEnvelope, NewEvent, WriteContext};
use crate::error::CoreError;
use crate::state::loan::Delinquency;
use crate::state::LoanState;

/// The job's name: `metadata.source` of its events and part of their ids.
pub const JOB: &str = "late-payments";

/// The eventId of the `Payment.Late` of one installment.
pub fn late_event_id(tenant: &str, loan_id: &str, schedule_id: &str, installment: u32) -> Uuid {
    derived_id(&[JOB, tenant, loan_id, schedule_id, &installment.to_string()])
}

/// What the job records on one loan on an as-of date (before it is written).
#[derive(Debug, Clone, PartialEq)]
pub struct LateRun {
    /// (scheduleId, installment, due date, days late, amount due, fee) per newly late
    /// installment; the fee is `None` when one was assessed before.
    pub late: Vec<LateInstallment>,
    /// (from, to, days past due) when the delinquency changes.
    pub status: Option<(Delinquency, Delinquency, i64)>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct LateInstallment {
    pub schedule_id: String,
    pub number: u32,
    pub due_date: NaiveDate,
    pub days_late: i64,
    pub amount_due: crate::money::Money,
    pub fee: Option<crate::money::Money>,
}

impl LoanState {
    /// What the daily job decides on `as_of`.
    pub fn decide_late_run(&self, as_of: NaiveDate) -> LateRun {
        let mut run = LateRun {
            late: Vec::new(),
            status: None,
        };
        if !self.is_active() {
            return run;
        }
        let policy = self.late_policy();
        for d in self.dues() {
            let days_late = (as_of - d.due_date).num_days();
            if days_late <= i64::from(policy.grace_days) {
                break;
            }
            let key = (d.schedule_id.clone(), d.number);
            if d.amount().is_zero() || self.late_reported.contains_key(&key) {
                continue;
            }
            let fee = match self.fees_assessed.contains_key(&key) {
                true => None,
                false => {
                    let i = &self.installments[d.number as usize - 1];
                    Some(policy.fee(i.interest + i.principal)).filter(|f| !f.is_zero())
                }
            };
            run.late.push(LateInstallment {
                schedule_id: d.schedule_id,
                number: d.number,
                due_date: d.due_date,
                days_late,
                amount_due: d.interest + d.principal,
                fee,
            });
        }
        let days = self.days_past_due(as_of);
        let target = policy.delinquency(days);
        // Only a payment cures a default.
        if target != self.delinquency && self.delinquency != Delinquency::Defaulted {
            run.status = Some((self.delinquency, target, days));
        }
        run
    }
}

/// The events to append for a loan's (upcast) history on `as_of`.
pub fn late_events(
    history: &[EventEnvelope],
    as_of: NaiveDate,
    now: DateTime<Utc>,
) -> Result<Vec<NewEvent>, CoreError> {
    let Some(first) = history.first() else {
        return Ok(Vec::new());
    };
    let tenant = &first.metadata.tenant_id;
    let loan_id = &first.aggregate_id;
    let loan = LoanState::fold(history);
    let run = loan.decide_late_run(as_of);
    let principal = format!("job:{JOB}");
    let ctx = WriteContext {
        tenant_id: tenant,
        now,
        principal: &principal,
        producer: JOB,
    };
    // Derived from the as-of date, so the same run twice is the same event.
    let event = |id: Uuid, event_type: &str, payload: Value| {
        let raw = json!({
            "eventId": id,
            "eventType": event_type,
            "aggregateType": "Loan",
            "aggregateId": loan_id,
            "occurredAt": format!("{as_of}T00:00:00Z"),
            "payload": payload,
            "metadata": {"correlationId": format!("{JOB}-{as_of}"), "source": JOB},
        });
        NewEvent::from_json(&raw, &ctx, &mut || id)
    };
    let mut out = Vec::new();
    for l in &run.late {
        let n = l.number.to_string();
        out.push(event(
            late_event_id(tenant, loan_id, &l.schedule_id, l.number),
            "Payment.Late",
            json!({
                "loanId": loan_id,
                "installment": l.number,
                "daysLate": l.days_late,
                "amountDue": l.amount_due,
                "scheduleId": l.schedule_id,
                "dueDate": l.due_date.to_string(),
                "asOf": as_of.to_string(),
            }),
        )?);
        if let Some(fee) = l.fee {
            out.push(event(
                derived_id(&[JOB, tenant, loan_id, "fee", &l.schedule_id, &n]),
                "Payment.LateFeeAssessed",
                json!({
                    "loanId": loan_id,
                    "installment": l.number,
                    "amount": fee,
                    "scheduleId": l.schedule_id,
                    "dueDate": l.due_date.to_string(),
                    "asOf": as_of.to_string(),
                }),
            )?);
        }
    }
    if let Some((from, to, days)) = run.status {
        let version = loan.version.to_string();
        let reason = format!(
            "oldest unpaid installment {days} days past due on {as_of} (grace {} days, default at {})",
            loan.late_policy().grace_days,
            loan.late_policy().default_after_days
        );
        out.push(event(
            derived_id(&[JOB, tenant, loan_id, "status", &version, to.as_str()]),
            "Loan.StatusChanged",
            json!({
                "loanId": loan_id,
                "fromStatus": from.as_str(),
                "toStatus": to.as_str(),
                "reason": reason,
                "daysPastDue": days,
                "asOf": as_of.to_string(),
                "changedBy": JOB,
            }),
        )?);
        if to == Delinquency::Defaulted {
            out.push(event(
                derived_id(&[JOB, tenant, loan_id, "defaulted", &version]),
                "Loan.Defaulted",
                json!({
                    "loanId": loan_id,
                    "reason": reason,
                    "defaultedAt": format!("{as_of}T00:00:00Z"),
                    "daysPastDue": days,
                }),
            )?);
        }
    }
    Ok(out)
}
