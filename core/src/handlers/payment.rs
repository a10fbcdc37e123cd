//! The payment domain: schedules on funding.

use serde_json::json;

use super::{DomainHandler, HandlerInput};
use crate::envelope::{derived_id, EventEnvelope, FollowOn};
use crate::error::CoreError;
use crate::money::Money;
use crate::schedule;
use crate::state::LoanState;

pub struct PaymentHandler;

impl DomainHandler for PaymentHandler {
    fn name(&self) -> &'static str {
        "payment-schedule"
    }

    fn domain(&self) -> &'static str {
        "payment"
    }

    fn subscriptions(&self) -> &'static [&'static str] {
        &["Loan.Funded"]
    }

    fn handle(&self, input: &HandlerInput<'_>) -> Result<Vec<FollowOn>, CoreError> {
        match input.event.event_type.as_str() {
            "Loan.Funded" => on_funded(self.name(), input.event, input.history),
            _ => Ok(Vec::new()),
        }
    }
}

fn on_funded(
    handler: &str,
    event: &EventEnvelope,
    history: &[EventEnvelope],
) -> Result<Vec<FollowOn>, CoreError> {
    let loan = LoanState::fold(history);
    let funded: Money = loan
        .funded_amount
        .ok_or_else(|| CoreError::Rejected("Loan.Funded has no fundedAmount".into()))?;
    let start = loan
        .funded_on
        .ok_or_else(|| CoreError::Rejected("Loan.Funded has no fundedAt".into()))?;
    let terms = loan.schedule_terms(funded).ok_or_else(|| {
        CoreError::Rejected(format!(
            "loan {} was funded but never created",
            event.aggregate_id
        ))
    })?;
    let payments =
        schedule::generate(&terms, start).map_err(|e| CoreError::Rejected(e.to_string()))?;
    let schedule_id = derived_id(&[handler, "schedule", &event.event_id.to_string()]);
    Ok(vec![FollowOn {
        event_type: "PaymentSchedule.Generated",
        aggregate_type: "Loan",
        aggregate_id: event.aggregate_id.clone(),
        payload: json!({
            "loanId": event.aggregate_id,
            "scheduleId": schedule_id,
            "totalPayments": payments.len(),
            "payments": payments,
        }),
    }])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::envelope::{NewEvent, WriteContext};
    use chrono::Utc;
    use serde_json::Value;

    fn stored(history: &mut Vec<EventEnvelope>, raw: Value) -> EventEnvelope {
        let ctx = WriteContext {
            tenant_id: "acme",
            now: Utc::now(),
        };
        let e = NewEvent::from_json(&raw, &ctx, &mut uuid::Uuid::new_v4)
            .unwrap()
            .into_envelope(history.len() as u64 + 1, Utc::now());
        history.push(e.clone());
        e
    }

    #[test]
    fn funding_produces_a_valid_schedule_follow_on() {
        let mut h = Vec::new();
        stored(
            &mut h,
            json!({"eventType": "Loan.Created", "aggregateType": "Loan", "aggregateId": "L1",
            "payload": {"loanId": "L1", "borrowerId": "B1", "amount": "100000.00", "interestRate": "7.5",
                        "termMonths": 12, "amortization": "amortized", "paymentFrequency": "monthly"}}),
        );
        let funded = stored(
            &mut h,
            json!({"eventType": "Loan.Funded", "aggregateType": "Loan", "aggregateId": "L1",
            "payload": {"loanId": "L1", "fundedAmount": "100000.00", "fundedAt": "2026-01-31T09:00:00Z"}}),
        );
        let out = PaymentHandler
            .handle(&HandlerInput {
                event: &funded,
                history: &h,
                related: &[],
            })
            .unwrap();
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].payload["totalPayments"], json!(12));
        assert_eq!(out[0].payload["payments"][0]["total"], json!("8675.74"));
        assert_eq!(
            out[0].payload["payments"][0]["dueDate"],
            json!("2026-02-28")
        );
        // The follow-on passes the catalog's own validation, with causation and correlation.
        let f =
            NewEvent::follow_on(&funded, PaymentHandler.name(), 0, &out[0], Utc::now()).unwrap();
        assert_eq!(f.metadata.causation_id, Some(funded.event_id.to_string()));
        assert_eq!(f.metadata.correlation_id, funded.metadata.correlation_id);
        // Running again gives the same event id and content.
        let again = PaymentHandler
            .handle(&HandlerInput {
                event: &funded,
                history: &h,
                related: &[],
            })
            .unwrap();
        let g =
            NewEvent::follow_on(&funded, PaymentHandler.name(), 0, &again[0], Utc::now()).unwrap();
        assert_eq!((f.event_id, &f.fingerprint), (g.event_id, &g.fingerprint));
    }

    #[test]
    fn funding_an_unknown_loan_is_a_business_rejection() {
        let mut h = Vec::new();
        let funded = stored(
            &mut h,
            json!({"eventType": "Loan.Funded", "aggregateType": "Loan", "aggregateId": "L2",
            "payload": {"loanId": "L2", "fundedAmount": "10.00", "fundedAt": "2026-01-31T09:00:00Z"}}),
        );
        assert!(matches!(
            PaymentHandler.handle(&HandlerInput {
                event: &funded,
                history: &h,
                related: &[]
            }),
            Err(CoreError::Rejected(_))
        ));
    }
}
