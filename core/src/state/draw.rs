//! The `Draw` aggregate: a construction draw from request through inspection to
//! disbursal (or rejection).

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::{field, str_field};
use crate::envelope::{format_time, EventEnvelope};
use crate::money::Money;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum DrawStatus {
    #[default]
    Unknown,
    Requested,
    InspectionScheduled,
    Inspected,
    Approved,
    Rejected,
    Disbursed,
}

impl DrawStatus {
    /// Approved, rejected or disbursed: the inspection step is over.
    pub fn is_decided(self) -> bool {
        matches!(
            self,
            DrawStatus::Approved | DrawStatus::Rejected | DrawStatus::Disbursed
        )
    }
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct DrawState {
    pub draw_id: String,
    pub loan_id: Option<String>,
    pub status: DrawStatus,
    pub requested: Option<Money>,
    pub inspection_id: Option<String>,
    pub scheduled_for: Option<NaiveDate>,
    pub inspection_result: Option<String>,
    pub approved: Option<Money>,
    pub disbursed: Option<Money>,
    pub disbursed_at: Option<DateTime<Utc>>,
    pub rejection_reason: Option<String>,
    pub version: u64,
}

impl DrawState {
    pub fn fold(history: &[EventEnvelope]) -> DrawState {
        let mut s = DrawState::default();
        for e in history {
            s.apply(e);
        }
        s
    }

    pub fn apply(&mut self, e: &EventEnvelope) {
        self.version = e.sequence;
        let p = &e.payload;
        match e.event_type.as_str() {
            "Draw.Requested" if self.status == DrawStatus::Unknown => {
                self.draw_id = e.aggregate_id.clone();
                self.loan_id = str_field(p, "loanId");
                self.requested = field(p, "amount");
                self.status = DrawStatus::Requested;
            }
            "Inspection.Scheduled" => {
                self.inspection_id = str_field(p, "inspectionId");
                self.scheduled_for = field(p, "scheduledFor");
                if self.status == DrawStatus::Requested {
                    self.status = DrawStatus::InspectionScheduled;
                }
            }
            "Inspection.Completed" | "Draw.Inspected" => {
                self.inspection_result = str_field(p, "result");
                if e.event_type == "Draw.Inspected" && !self.status.is_decided() {
                    self.status = DrawStatus::Inspected;
                }
            }
            "Draw.Approved" if !self.status.is_decided() => {
                self.approved = field(p, "approvedAmount");
                self.status = DrawStatus::Approved;
            }
            "Draw.Rejected" if !self.status.is_decided() => {
                self.rejection_reason = str_field(p, "reason");
                self.status = DrawStatus::Rejected;
            }
            "Draw.Disbursed" if self.status != DrawStatus::Disbursed => {
                self.disbursed = field(p, "amount");
                self.disbursed_at = field(p, "disbursedAt");
                self.status = DrawStatus::Disbursed;
            }
            _ => {}
        }
    }

    pub fn view(&self) -> Value {
        json!({
            "drawId": self.draw_id,
            "loanId": self.loan_id,
            "status": self.status,
            "requestedAmount": self.requested,
            "inspection": self.inspection_id.as_ref().map(|id| json!({
                "inspectionId": id,
                "scheduledFor": self.scheduled_for.map(|d| d.to_string()),
                "result": self.inspection_result,
            })),
            "approvedAmount": self.approved,
            "disbursedAmount": self.disbursed,
            "disbursedAt": self.disbursed_at.as_ref().map(format_time),
            "rejectionReason": self.rejection_reason,
        })
    }
}
