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
mod tests;
