//! The draw domain (seed 000's aggregation pattern):
//!
//! ```text
//! Draw.Requested ──> Inspection.Scheduled
//! Inspection.Completed (client) ──> Draw.Inspected
//!     failed ──> Draw.Rejected
//!     passed ──> Loan.DrawSubmitted (on the loan's stream)
//! Loan.DrawSubmitted ──> Draw.Approved (min(requested, amount - committed)) or Draw.Rejected
//! Draw.Approved ──> Draw.Disbursed + Loan.DrawDisbursed
//! ```
//!
//! The approval is decided on the loan's stream (see [`crate::catalog`] and
//! [`LoanState::decide_draw`]): serialized per loan, deterministic on re-runs.

use chrono::Days;
use serde_json::json;

use super::{draw_before, event_date, loan_before, rejected, DomainHandler, HandlerInput};
use crate::domain::Domain;
use crate::envelope::{derived_id, format_time, EventEnvelope, FollowOn};
use crate::error::CoreError;
use crate::money::Money;
use crate::state::loan::DrawDecision;
use crate::state::{DrawState, DrawStatus, LoanState};

/// Days from a draw request to its inspection.
pub const INSPECTION_AFTER_DAYS: u64 = 3;

pub struct DrawHandler;

const NAME: &str = "draw-workflow";

impl DomainHandler for DrawHandler {
    fn name(&self) -> &'static str {
        NAME
    }

    fn domain(&self) -> Domain {
        Domain::Draw
    }

    fn subscriptions(&self) -> &'static [&'static str] {
        &[
            "Draw.Requested",
            "Inspection.Completed",
            "Loan.DrawSubmitted",
            "Draw.Approved",
        ]
    }

    /// Disbursal checks the loan's commitment for the draw.
    fn related(&self, event: &EventEnvelope) -> Option<(&'static str, String)> {
        match event.event_type.as_str() {
            "Draw.Approved" => event.payload_str("loanId").map(|l| ("Loan", l.to_string())),
            _ => None,
        }
    }

    fn handle(&self, input: &HandlerInput<'_>) -> Result<Vec<FollowOn>, CoreError> {
        let e = input.event;
        match e.event_type.as_str() {
            "Draw.Requested" => requested(e, &draw_before(input)),
            "Inspection.Completed" => inspected(e, &draw_before(input)),
            "Loan.DrawSubmitted" => decide(e, &loan_before(input)),
            "Draw.Approved" => disburse(e, &LoanState::fold(input.related)),
            _ => Ok(Vec::new()),
        }
    }
}

fn on_draw(draw_id: &str, event_type: &'static str, payload: serde_json::Value) -> FollowOn {
    FollowOn {
        event_type,
        aggregate_type: "Draw",
        aggregate_id: draw_id.to_string(),
        payload: payload.into(),
    }
}

fn on_loan(loan_id: &str, event_type: &'static str, payload: serde_json::Value) -> FollowOn {
    FollowOn {
        event_type,
        aggregate_type: "Loan",
        aggregate_id: loan_id.to_string(),
        payload: payload.into(),
    }
}

fn requested(e: &EventEnvelope, draw: &DrawState) -> Result<Vec<FollowOn>, CoreError> {
    if draw.status != DrawStatus::Unknown {
        return Err(rejected(format!(
            "draw {} was already requested",
            e.aggregate_id
        )));
    }
    let inspection = derived_id(&[NAME, "inspection", &e.event_id.to_string()]);
    let on = event_date(e) + Days::new(INSPECTION_AFTER_DAYS);
    Ok(vec![on_draw(
        &e.aggregate_id,
        "Inspection.Scheduled",
        json!({"inspectionId": inspection, "drawId": e.aggregate_id, "scheduledFor": on.to_string()}),
    )])
}

fn inspected(e: &EventEnvelope, draw: &DrawState) -> Result<Vec<FollowOn>, CoreError> {
    let id = &e.aggregate_id;
    let loan_id = draw.loan_id.clone().ok_or_else(|| {
        rejected(format!(
            "inspection of draw {id}, which was never requested"
        ))
    })?;
    if draw.status.is_decided() || draw.status == DrawStatus::Inspected {
        return Err(rejected(format!(
            "draw {id} is already {}",
            serde_json::to_value(draw.status)
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_default()
        )));
    }
    let inspection_id = e.payload_str("inspectionId").unwrap_or_default();
    if let Some(scheduled) = &draw.inspection_id {
        if scheduled != inspection_id {
            return Err(rejected(format!(
                "inspection {inspection_id} is not the one scheduled for draw {id} ({scheduled})"
            )));
        }
    }
    let result = e.payload_str("result").unwrap_or("failed");
    let mut out = vec![on_draw(
        id,
        "Draw.Inspected",
        json!({"drawId": id, "inspectionId": inspection_id, "result": result, "loanId": loan_id}),
    )];
    if result == "passed" {
        let amount = draw.requested.unwrap_or(Money::ZERO);
        out.push(on_loan(
            &loan_id,
            "Loan.DrawSubmitted",
            json!({"loanId": loan_id, "drawId": id, "amount": amount, "inspectionId": inspection_id}),
        ));
    } else {
        let notes = e
            .payload_str("notes")
            .map(|n| format!(": {n}"))
            .unwrap_or_default();
        out.push(on_draw(
            id,
            "Draw.Rejected",
            json!({"drawId": id, "loanId": loan_id, "rejectedBy": NAME,
                "reason": format!("inspection {inspection_id} failed{notes}")}),
        ));
    }
    Ok(out)
}

fn decide(e: &EventEnvelope, loan: &LoanState) -> Result<Vec<FollowOn>, CoreError> {
    let p = &e.payload;
    let draw_id = e.payload_str("drawId").unwrap_or_default();
    let amount: Money = serde_json::from_value(p["amount"].clone())
        .map_err(|_| rejected("Loan.DrawSubmitted has no valid amount"))?;
    let Some(decision) = loan.decide_draw(draw_id, amount, event_date(e)) else {
        // Decided before: the first decision stands.
        return Ok(Vec::new());
    };
    let loan_id = &e.aggregate_id;
    Ok(vec![match decision {
        DrawDecision::Approved(approved) => on_draw(
            draw_id,
            "Draw.Approved",
            json!({"drawId": draw_id, "loanId": loan_id, "approvedAmount": approved, "approvedBy": NAME}),
        ),
        DrawDecision::Rejected(reason) => on_draw(
            draw_id,
            "Draw.Rejected",
            json!({"drawId": draw_id, "loanId": loan_id, "reason": reason, "rejectedBy": NAME}),
        ),
    }])
}

fn disburse(e: &EventEnvelope, loan: &LoanState) -> Result<Vec<FollowOn>, CoreError> {
    let draw_id = &e.aggregate_id;
    let loan_id = e
        .payload_str("loanId")
        .ok_or_else(|| rejected(format!("Draw.Approved of draw {draw_id} names no loanId")))?;
    let approved: Money = serde_json::from_value(e.payload["approvedAmount"].clone())
        .map_err(|_| rejected("Draw.Approved has no valid approvedAmount"))?;
    // Only what the loan committed is paid out (a client cannot approve around the rule).
    match loan.draw(draw_id).map(|d| &d.decision) {
        Some(DrawDecision::Approved(committed)) if *committed == approved => {}
        Some(DrawDecision::Approved(committed)) => {
            return Err(rejected(format!(
                "draw {draw_id} is approved for {approved} but loan {loan_id} committed {committed}"
            )))
        }
        _ => {
            return Err(rejected(format!(
                "loan {loan_id} has no commitment for draw {draw_id}"
            )))
        }
    }
    let at = format_time(&e.occurred_at);
    Ok(vec![
        on_draw(
            draw_id,
            "Draw.Disbursed",
            json!({"drawId": draw_id, "loanId": loan_id, "amount": approved, "disbursedAt": at}),
        ),
        on_loan(
            loan_id,
            "Loan.DrawDisbursed",
            json!({"loanId": loan_id, "drawId": draw_id, "amount": approved, "disbursedAt": at}),
        ),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::handlers::testkit::{given, Given};
    use serde_json::Value;

    /// A construction loan L1 of `amount`, funded with an initial advance of a fifth of it.
    fn loan(amount: &str) -> Given {
        loan_of(amount, "construction")
    }

    fn loan_of(amount: &str, loan_type: &str) -> Given {
        let advance = Money::round(
            amount.parse::<Money>().unwrap().amount() / rust_decimal::Decimal::from(5),
        );
        // Funded a month ago: the draws are decided now, while installments are to come.
        let funded_at = format!(
            "{}T00:00:00Z",
            (chrono::Utc::now() - chrono::Months::new(1)).date_naive()
        );
        given([
            json!({"eventType": "Loan.Created", "aggregateType": "Loan", "aggregateId": "L1",
                "payload": {"loanId": "L1", "borrowerId": "B1", "amount": amount, "interestRate": "9",
                    "termMonths": 18, "amortization": "interest_only", "paymentFrequency": "monthly",
                    "loanType": loan_type}}),
            json!({"eventType": "Loan.Funded", "aggregateType": "Loan", "aggregateId": "L1",
                "payload": {"loanId": "L1", "fundedAmount": advance, "fundedAt": funded_at}}),
        ])
    }

    fn completed(draw: &str, inspection: &str, result: &str) -> Value {
        json!({"eventType": "Inspection.Completed", "aggregateType": "Draw", "aggregateId": draw,
            "payload": {"inspectionId": inspection, "drawId": draw, "result": result}})
    }

    /// Request a draw on L1: its inspection is scheduled. Returns the inspection's id.
    fn request(g: Given, draw: &str, amount: &str) -> (Given, String) {
        let g = g
            .when(
                &DrawHandler,
                json!({"eventType": "Draw.Requested", "aggregateType": "Draw", "aggregateId": draw,
                    "payload": {"drawId": draw, "loanId": "L1", "amount": amount}}),
            )
            .then([
                json!({"eventType": "Inspection.Scheduled", "aggregateType": "Draw",
                "aggregateId": draw, "payload": {"drawId": draw}}),
            ]);
        let inspection = g.last().payload["inspectionId"]
            .as_str()
            .unwrap()
            .to_string();
        (g, inspection)
    }

    /// Request, inspect (passed), decide on the loan, disburse if approved.
    fn draw_through(g: Given, draw: &str, amount: &str) -> (Given, Value) {
        let (g, inspection) = request(g, draw, amount);
        let g = g
            .when(&DrawHandler, completed(draw, &inspection, "passed"))
            .then([
                json!({"eventType": "Draw.Inspected", "aggregateId": draw}),
                json!({"eventType": "Loan.DrawSubmitted", "aggregateId": "L1"}),
            ]);
        // The loan-stream event comes back to the draw handler in the loan's group: decide.
        let (g, decided) = g
            .when_delivered(&DrawHandler, "Loan.DrawSubmitted")
            .then_events();
        let d = decided[0].clone();
        let g = if d.event_type == "Draw.Approved" {
            g.when_delivered(&DrawHandler, "Draw.Approved").then([
                json!({"eventType": "Draw.Disbursed"}),
                json!({"eventType": "Loan.DrawDisbursed"}),
            ])
        } else {
            g
        };
        (g, json!({"type": d.event_type, "payload": d.payload}))
    }

    #[test]
    fn draws_are_approved_up_to_what_is_available_then_rejected() {
        // $100,000 construction loan, $20,000 advanced: $80,000 available to draw.
        let (g, a) = draw_through(loan("100000.00"), "D1", "60000.00");
        assert_eq!(a["type"], "Draw.Approved");
        assert_eq!(a["payload"]["approvedAmount"], "60000.00");
        let (g, b) = draw_through(g, "D2", "50000.00");
        assert_eq!(b["type"], "Draw.Rejected");
        assert!(
            b["payload"]["reason"]
                .as_str()
                .unwrap()
                .contains("above the 20000.00 available"),
            "{b}"
        );
        let (g, c) = draw_through(g, "D3", "20000.00");
        assert_eq!(c["payload"]["approvedAmount"], "20000.00");
        let (g, d) = draw_through(g, "D4", "0.01");
        assert_eq!(d["type"], "Draw.Rejected");
        let l = LoanState::fold(&g.stream("Loan", "L1"));
        assert_eq!(l.draws_disbursed.to_string(), "80000.00");
        assert_eq!(l.draws_committed.to_string(), "80000.00");
        // Disbursed draws are owed: the advance plus both draws.
        assert_eq!(l.outstanding_principal.to_string(), "100000.00");
        assert_eq!(l.available_to_draw(), Some(Money::ZERO));
        let d2 = DrawState::fold(&g.stream("Draw", "D2"));
        assert_eq!(d2.status, DrawStatus::Rejected);
        let d3 = DrawState::fold(&g.stream("Draw", "D3"));
        assert_eq!(d3.status, DrawStatus::Disbursed);
        assert_eq!(d3.disbursed.unwrap().to_string(), "20000.00");
    }

    #[test]
    fn a_draw_on_a_term_loan_is_rejected() {
        let (_, a) = draw_through(loan_of("100000.00", "term"), "D1", "1000.00");
        assert_eq!(a["type"], "Draw.Rejected");
        assert!(a["payload"]["reason"]
            .as_str()
            .unwrap()
            .contains("term loan"));
    }

    #[test]
    fn a_failed_inspection_rejects_the_draw() {
        let (g, inspection) = request(loan("100000.00"), "D1", "1000.00");
        let (g, out) = g
            .when(&DrawHandler, completed("D1", &inspection, "failed"))
            .then_events();
        assert_eq!(out.len(), 2);
        assert_eq!(out[0].event_type, "Draw.Inspected");
        assert_eq!(out[1].event_type, "Draw.Rejected");
        assert!(out[1].payload["reason"]
            .as_str()
            .unwrap()
            .contains("failed"));
        // Nothing reached the loan.
        assert!(g
            .stream("Loan", "L1")
            .iter()
            .all(|e| e.event_type != "Loan.DrawSubmitted"));
        // A second inspection of a decided draw is refused.
        g.when(&DrawHandler, completed("D1", &inspection, "passed"))
            .then_rejects("draw D1 is already rejected");
    }

    #[test]
    fn bad_inspections_and_unfunded_loans() {
        // Inspection of a draw never requested.
        let g = given([])
            .when(&DrawHandler, completed("D9", "I1", "passed"))
            .then_rejects("never requested");
        // The wrong inspection id.
        let (g, inspection) = request(g, "D1", "1000.00");
        let g = g
            .when(&DrawHandler, completed("D1", "other", "passed"))
            .then_rejects("inspection other is not the one scheduled for draw D1");
        // The loan does not exist: passed inspection, then rejected on the loan's stream.
        g.when(&DrawHandler, completed("D1", &inspection, "passed"))
            .then([
                json!({"eventType": "Draw.Inspected"}),
                json!({"eventType": "Loan.DrawSubmitted"}),
            ])
            .when_delivered(&DrawHandler, "Loan.DrawSubmitted")
            .then([json!({"eventType": "Draw.Rejected", "aggregateId": "D1"})]);
    }

    #[test]
    fn disbursal_needs_the_loans_commitment() {
        let (g, _) = request(loan("100000.00"), "D1", "1000.00");
        // A client posts Draw.Approved directly: the loan never committed it.
        let g = g
            .when(
                &DrawHandler,
                json!({"eventType": "Draw.Approved", "aggregateType": "Draw", "aggregateId": "D1",
                    "payload": {"drawId": "D1", "loanId": "L1", "approvedAmount": "1000.00",
                        "approvedBy": "U1"}}),
            )
            .then_rejects("no commitment");
        // The commitment is read from the loan, the related aggregate.
        assert_eq!(
            DrawHandler.related(g.last()),
            Some(("Loan", "L1".to_string()))
        );
    }
}
