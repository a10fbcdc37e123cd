//! Event-sourced aggregate state: a pure fold over an aggregate's history.

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::envelope::EventEnvelope;
use crate::money::{Money, Rate};
use crate::schedule::{Amortization, Frequency, Installment, LoanTerms};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum LoanStatus {
    #[default]
    Unknown,
    Created,
    Approved,
    Funded,
    PaidOff,
    Defaulted,
}

/// The loan's terms as the loan events set them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LoanTermsView {
    pub amount: Money,
    pub interest_rate: Rate,
    pub term_months: u32,
    pub amortization: Amortization,
    pub payment_frequency: Frequency,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fund_id: Option<String>,
}

/// The folded state of a `Loan` aggregate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct LoanState {
    pub loan_id: String,
    pub borrower_id: Option<String>,
    pub status: LoanStatus,
    pub terms: Option<LoanTermsView>,
    pub funded_amount: Option<Money>,
    pub funded_on: Option<NaiveDate>,
    pub schedule_id: Option<String>,
    #[serde(skip)]
    pub schedule: Vec<Installment>,
}

impl LoanState {
    /// Fold a loan's history (in sequence order).
    pub fn fold(history: &[EventEnvelope]) -> LoanState {
        history.iter().fold(LoanState::default(), |mut s, e| {
            s.apply(e);
            s
        })
    }

    /// Apply one event. Unknown or malformed payloads are skipped: stored events were
    /// validated on the way in, so this only happens across schema versions.
    pub fn apply(&mut self, e: &EventEnvelope) {
        let p = &e.payload;
        match e.event_type.as_str() {
            "Loan.Created" => {
                self.loan_id = e.aggregate_id.clone();
                self.borrower_id = str_field(p, "borrowerId");
                self.status = LoanStatus::Created;
                self.terms = serde_json::from_value(p.clone()).ok();
            }
            "Loan.Approved" => self.status = LoanStatus::Approved,
            "Loan.Funded" => {
                self.status = LoanStatus::Funded;
                self.funded_amount = field(p, "fundedAmount");
                self.funded_on = str_field(p, "fundedAt")
                    .and_then(|s| DateTime::parse_from_rfc3339(&s).ok())
                    .map(|d| d.with_timezone(&Utc).date_naive());
            }
            "PaymentSchedule.Generated" => {
                self.schedule_id = str_field(p, "scheduleId");
                self.schedule = field(p, "payments").unwrap_or_default();
            }
            "Loan.PaidOff" => self.status = LoanStatus::PaidOff,
            "Loan.Defaulted" => self.status = LoanStatus::Defaulted,
            _ => {}
        }
    }

    /// The terms a schedule is computed from: funded amount as principal.
    pub fn schedule_terms(&self, principal: Money) -> Option<LoanTerms> {
        let t = self.terms.as_ref()?;
        Some(LoanTerms {
            principal,
            rate: t.interest_rate,
            term_months: t.term_months,
            amortization: t.amortization,
            frequency: t.payment_frequency,
        })
    }
}

fn str_field(p: &Value, name: &str) -> Option<String> {
    p.get(name).and_then(Value::as_str).map(str::to_string)
}

fn field<T: serde::de::DeserializeOwned>(p: &Value, name: &str) -> Option<T> {
    p.get(name)
        .and_then(|v| serde_json::from_value(v.clone()).ok())
}
