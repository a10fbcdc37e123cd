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

use super::{before, event_date, rejected, DomainHandler, HandlerInput};
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

    fn domain(&self) -> &'static str {
        "draw"
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
            "Draw.Requested" => requested(e, &DrawState::fold(before(input))),
            "Inspection.Completed" => inspected(e, &DrawState::fold(before(input))),
            "Loan.DrawSubmitted" => decide(e, &LoanState::fold(before(input))),
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
        payload,
    }
}

fn on_loan(loan_id: &str, event_type: &'static str, payload: serde_json::Value) -> FollowOn {
    FollowOn {
        event_type,
        aggregate_type: "Loan",
        aggregate_id: loan_id.to_string(),
        payload,
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
    use crate::handlers::testkit::{run, stored, stream};
    use serde_json::Value;

    /// A construction loan of `amount`, funded with an initial advance of a fifth of it.
    fn loan(h: &mut Vec<EventEnvelope>, amount: &str) {
        loan_of(h, amount, "construction");
    }

    fn loan_of(h: &mut Vec<EventEnvelope>, amount: &str, loan_type: &str) {
        let advance = Money::round(
            amount.parse::<Money>().unwrap().amount() / rust_decimal::Decimal::from(5),
        );
        stored(
            h,
            json!({"eventType": "Loan.Created", "aggregateType": "Loan", "aggregateId": "L1",
            "payload": {"loanId": "L1", "borrowerId": "B1", "amount": amount, "interestRate": "9",
                "termMonths": 18, "amortization": "interest_only", "paymentFrequency": "monthly",
                "loanType": loan_type}}),
        );
        stored(
            h,
            json!({"eventType": "Loan.Funded", "aggregateType": "Loan", "aggregateId": "L1",
            // A month ago: the draws are decided now, while installments are still to come.
            "payload": {"loanId": "L1", "fundedAmount": advance,
                "fundedAt": format!("{}T00:00:00Z", (chrono::Utc::now() - chrono::Months::new(1)).date_naive())}}),
        );
    }

    fn request(h: &mut Vec<EventEnvelope>, draw: &str, amount: &str) -> String {
        stored(
            h,
            json!({"eventType": "Draw.Requested", "aggregateType": "Draw", "aggregateId": draw,
            "payload": {"drawId": draw, "loanId": "L1", "amount": amount}}),
        );
        let out = run(&DrawHandler, h, &[]).unwrap();
        assert_eq!(out[0].event_type, "Inspection.Scheduled");
        out[0].payload["inspectionId"].as_str().unwrap().to_string()
    }

    fn complete(
        h: &mut Vec<EventEnvelope>,
        draw: &str,
        inspection: &str,
        result: &str,
    ) -> Vec<EventEnvelope> {
        stored(
            h,
            json!({"eventType": "Inspection.Completed", "aggregateType": "Draw", "aggregateId": draw,
            "payload": {"inspectionId": inspection, "drawId": draw, "result": result}}),
        );
        run(&DrawHandler, h, &[]).unwrap()
    }

    /// Request, inspect (passed), decide on the loan, disburse if approved.
    fn draw_through(h: &mut Vec<EventEnvelope>, draw: &str, amount: &str) -> Value {
        let insp = request(h, draw, amount);
        let out = complete(h, draw, &insp, "passed");
        assert_eq!(out[1].event_type, "Loan.DrawSubmitted");
        // The loan-stream event is the last one in `h`: decide.
        let decided = run(&DrawHandler, h, &[]).unwrap();
        let d = decided[0].clone();
        if d.event_type == "Draw.Approved" {
            let related = stream(h, "Loan", "L1");
            let out = run(&DrawHandler, h, &related).unwrap();
            assert_eq!(out[0].event_type, "Draw.Disbursed");
            assert_eq!(out[1].event_type, "Loan.DrawDisbursed");
        }
        json!({"type": d.event_type, "payload": d.payload})
    }

    #[test]
    fn draws_are_approved_up_to_what_is_available_then_rejected() {
        // $100,000 construction loan, $20,000 advanced: $80,000 available to draw.
        let mut h = Vec::new();
        loan(&mut h, "100000.00");
        let a = draw_through(&mut h, "D1", "60000.00");
        assert_eq!(a["type"], "Draw.Approved");
        assert_eq!(a["payload"]["approvedAmount"], "60000.00");
        let b = draw_through(&mut h, "D2", "50000.00");
        assert_eq!(b["type"], "Draw.Rejected");
        assert!(
            b["payload"]["reason"]
                .as_str()
                .unwrap()
                .contains("above the 20000.00 available"),
            "{b}"
        );
        let c = draw_through(&mut h, "D3", "20000.00");
        assert_eq!(c["payload"]["approvedAmount"], "20000.00");
        let d = draw_through(&mut h, "D4", "0.01");
        assert_eq!(d["type"], "Draw.Rejected");
        let l = LoanState::fold(&stream(&h, "Loan", "L1"));
        assert_eq!(l.draws_disbursed.to_string(), "80000.00");
        assert_eq!(l.draws_committed.to_string(), "80000.00");
        // Disbursed draws are owed: the advance plus both draws.
        assert_eq!(l.outstanding_principal.to_string(), "100000.00");
        assert_eq!(l.available_to_draw(), Some(Money::ZERO));
        let d2 = DrawState::fold(&stream(&h, "Draw", "D2"));
        assert_eq!(d2.status, DrawStatus::Rejected);
        let d3 = DrawState::fold(&stream(&h, "Draw", "D3"));
        assert_eq!(d3.status, DrawStatus::Disbursed);
        assert_eq!(d3.disbursed.unwrap().to_string(), "20000.00");
    }

    #[test]
    fn a_draw_on_a_term_loan_is_rejected() {
        let mut h = Vec::new();
        loan_of(&mut h, "100000.00", "term");
        let a = draw_through(&mut h, "D1", "1000.00");
        assert_eq!(a["type"], "Draw.Rejected");
        assert!(a["payload"]["reason"]
            .as_str()
            .unwrap()
            .contains("term loan"));
    }

    #[test]
    fn a_failed_inspection_rejects_the_draw() {
        let mut h = Vec::new();
        loan(&mut h, "100000.00");
        let insp = request(&mut h, "D1", "1000.00");
        let out = complete(&mut h, "D1", &insp, "failed");
        assert_eq!(out[0].event_type, "Draw.Inspected");
        assert_eq!(out[1].event_type, "Draw.Rejected");
        assert!(out[1].payload["reason"]
            .as_str()
            .unwrap()
            .contains("failed"));
        // Nothing reached the loan.
        assert!(stream(&h, "Loan", "L1")
            .iter()
            .all(|e| e.event_type != "Loan.DrawSubmitted"));
        // A second inspection of a decided draw is refused.
        stored(
            &mut h,
            json!({"eventType": "Inspection.Completed", "aggregateType": "Draw", "aggregateId": "D1",
            "payload": {"inspectionId": insp, "drawId": "D1", "result": "passed"}}),
        );
        assert!(run(&DrawHandler, &mut h, &[]).is_err());
    }

    #[test]
    fn bad_inspections_and_unfunded_loans() {
        let mut h = Vec::new();
        // Inspection of a draw never requested.
        stored(
            &mut h,
            json!({"eventType": "Inspection.Completed", "aggregateType": "Draw", "aggregateId": "D9",
            "payload": {"inspectionId": "I1", "drawId": "D9", "result": "passed"}}),
        );
        assert!(
            matches!(run(&DrawHandler, &mut h, &[]), Err(CoreError::Rejected(m)) if m.contains("never requested"))
        );
        // The wrong inspection id.
        let insp = request(&mut h, "D1", "1000.00");
        stored(
            &mut h,
            json!({"eventType": "Inspection.Completed", "aggregateType": "Draw", "aggregateId": "D1",
            "payload": {"inspectionId": "other", "drawId": "D1", "result": "passed"}}),
        );
        assert!(run(&DrawHandler, &mut h, &[]).is_err());
        // The loan does not exist: passed inspection, then rejected on the loan's stream.
        let out = complete(&mut h, "D1", &insp, "passed");
        assert_eq!(out[1].event_type, "Loan.DrawSubmitted");
        let d = run(&DrawHandler, &mut h, &[]).unwrap();
        assert_eq!(d[0].event_type, "Draw.Rejected");
    }

    #[test]
    fn disbursal_needs_the_loans_commitment() {
        let mut h = Vec::new();
        loan(&mut h, "100000.00");
        request(&mut h, "D1", "1000.00");
        // A client posts Draw.Approved directly: the loan never committed it.
        stored(
            &mut h,
            json!({"eventType": "Draw.Approved", "aggregateType": "Draw", "aggregateId": "D1",
            "payload": {"drawId": "D1", "loanId": "L1", "approvedAmount": "1000.00", "approvedBy": "U1"}}),
        );
        let related = stream(&h, "Loan", "L1");
        assert!(
            matches!(run(&DrawHandler, &mut h, &related), Err(CoreError::Rejected(m)) if m.contains("no commitment"))
        );
        assert_eq!(
            DrawHandler.related(h.last().unwrap()),
            Some(("Loan", "L1".to_string()))
        );
    }
}
