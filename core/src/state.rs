//! Event-sourced aggregate state: pure folds over an aggregate's history.
//!
//! - [`loan::LoanState`]: status, terms, funding, the installment ledger, payments, draws.
//!   It also holds the rules that *decide* (payment allocation, reversal, schedule
//!   regeneration, draw approval): the handlers call the same functions on the history
//!   before the event, so what a handler publishes and what the fold derives cannot
//!   disagree, whatever order the records land in the stream.
//! - [`draw::DrawState`], and small folds for borrowers and funds ([`others`]); any other
//!   aggregate gets a generic summary.
//!
//! Folds read every event in its latest version: callers upcast first
//! ([`crate::upcast::upcast`]; [`document`] does it itself).

pub mod draw;
pub mod loan;
pub mod others;
pub mod snapshot;

use serde_json::{json, Value};

use crate::envelope::EventEnvelope;

pub use draw::{DrawState, DrawStatus};
pub use loan::{LoanState, LoanStatus, LoanTermsView};
pub use snapshot::{Folded, Snapshot, FOLD_VERSION};

/// The state document of `GET /aggregates/{type}/{id}/state`:
/// `{"aggregateType", "aggregateId", "version": <last sequence>, "state": {...}}`.
/// `None` for an empty history. Events are upcast before folding.
pub fn document(history: Vec<EventEnvelope>) -> Option<Value> {
    let last = history.last()?;
    let (aggregate_type, aggregate_id, version) = (
        last.aggregate_type.clone(),
        last.aggregate_id.clone(),
        last.sequence,
    );
    let history: Vec<EventEnvelope> = history.into_iter().map(crate::upcast::upcast).collect();
    Some(json!({
        "aggregateType": aggregate_type,
        "aggregateId": aggregate_id,
        "version": version,
        "state": view(&aggregate_type, &history),
    }))
}

/// What the state route answers for `?asOf=` and `?knownAt=`.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct StateAt {
    /// Only events effective on or before this date: a payment by its `receivedAt`, a
    /// funding by its `fundedAt`, a disbursal by its `disbursedAt`, a job record by its
    /// `asOf`, ... Events without a date of their own (the loan's terms, the handlers'
    /// records of a decision) are kept: what they say follows from the dated ones.
    pub as_of: Option<chrono::NaiveDate>,
    /// Only events recorded at or before this time: the books as they stood then.
    pub known_at: Option<chrono::DateTime<chrono::Utc>>,
}

/// The payload fields that date an event (see [`StateAt::as_of`]).
const EFFECTIVE_FIELDS: &[&str] = &[
    "receivedAt",
    "fundedAt",
    "disbursedAt",
    "modifiedAt",
    "approvedAt",
    "defaultedAt",
    "paidOffAt",
];

/// The date an event takes effect, when its payload gives one.
pub fn effective_date(e: &EventEnvelope) -> Option<chrono::NaiveDate> {
    let p = &e.payload;
    for name in EFFECTIVE_FIELDS {
        if let Some(t) = field::<chrono::DateTime<chrono::Utc>>(p, name) {
            return Some(t.date_naive());
        }
    }
    field::<chrono::NaiveDate>(p, "asOf").or_else(|| field(p, "effectiveDate"))
}

/// [`document`] of the part of `history` that [`StateAt`] selects; `None` when nothing is.
pub fn document_at(history: Vec<EventEnvelope>, at: StateAt) -> Option<Value> {
    let history: Vec<EventEnvelope> = history
        .into_iter()
        .filter(|e| at.known_at.is_none_or(|t| e.recorded_at <= t))
        .filter(|e| {
            at.as_of
                .is_none_or(|d| effective_date(e).is_none_or(|e| e <= d))
        })
        .collect();
    let mut doc = document(history)?;
    if let Some(d) = at.as_of {
        doc["asOf"] = json!(d.to_string());
    }
    if let Some(t) = at.known_at {
        doc["knownAt"] = json!(crate::envelope::format_time(&t));
    }
    Some(doc)
}

/// The payoff quote of a loan's history on `on` (see [`LoanState::payoff_quote`]), or why
/// there is none: `None` for an empty history, `Err` for a loan never funded.
pub fn payoff(history: Vec<EventEnvelope>, on: chrono::NaiveDate) -> Option<Result<Value, String>> {
    let first = history.first()?;
    let id = first.aggregate_id.clone();
    let history: Vec<EventEnvelope> = history.into_iter().map(crate::upcast::upcast).collect();
    let loan = LoanState::fold(&history);
    if loan.funded_amount.is_none() {
        return Some(Err(format!("loan {id} is not funded")));
    }
    Some(Ok(
        serde_json::to_value(loan.payoff_quote(on)).unwrap_or_default()
    ))
}

/// The folded state of an (upcast) history, as JSON.
pub fn view(aggregate_type: &str, history: &[EventEnvelope]) -> Value {
    match aggregate_type {
        "Loan" => LoanState::fold(history).view(),
        "Draw" => DrawState::fold(history).view(),
        "Borrower" => others::borrower(history),
        "Fund" => others::fund(history),
        _ => others::summary(history),
    }
}

pub(crate) fn str_field(p: &Value, name: &str) -> Option<String> {
    p.get(name).and_then(Value::as_str).map(str::to_string)
}

pub(crate) fn field<T: serde::de::DeserializeOwned>(p: &Value, name: &str) -> Option<T> {
    p.get(name)
        .and_then(|v| serde_json::from_value(v.clone()).ok())
}

pub(crate) fn money_field(p: &Value, name: &str) -> crate::money::Money {
    field(p, name).unwrap_or_default()
}

#[cfg(test)]
mod money_tests;
#[cfg(test)]
mod tests;
