//! Snapshots: an aggregate's folded state at a sequence, so a read folds only the events
//! after it (the tail) instead of the whole history.
//!
//! Only aggregates whose fold is incremental and whose histories grow long are
//! snapshotted ([`Folded`]: loans and draws); the others are folded from their (short)
//! history. A snapshot names the [`FOLD_VERSION`] that produced it: when a fold changes
//! what it derives, raise the constant and every older snapshot is ignored (the state is
//! re-folded from the events, and new snapshots are written as the streams grow).

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::{DrawState, LoanState};
use crate::envelope::EventEnvelope;

/// The version of the folds in this crate. Raise it whenever a fold (or the state it keeps)
/// changes, so snapshots written by the old fold are not read by the new one.
/// (2: the fold with late fees, delinquency and reallocated payments.)
pub const FOLD_VERSION: u32 = 2;

/// The folded state of an aggregate with an incremental fold.
// One value per history read, never held in bulk: boxing the loan would buy nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "aggregateType", content = "state")]
pub enum Folded {
    Loan(LoanState),
    Draw(DrawState),
}

impl Folded {
    /// The empty state of an aggregate type, `None` when the type is not snapshotted.
    pub fn empty(aggregate_type: &str) -> Option<Folded> {
        match aggregate_type {
            "Loan" => Some(Folded::Loan(LoanState::default())),
            "Draw" => Some(Folded::Draw(DrawState::default())),
            _ => None,
        }
    }

    /// Whether an aggregate type's state is snapshotted.
    pub fn is_snapshotted(aggregate_type: &str) -> bool {
        Folded::empty(aggregate_type).is_some()
    }

    /// Apply one event (in its latest version: upcast it first).
    pub fn apply(&mut self, e: &EventEnvelope) {
        match self {
            Folded::Loan(s) => s.apply(e),
            Folded::Draw(s) => s.apply(e),
        }
    }

    /// Upcast and apply events in sequence order.
    pub fn apply_all(&mut self, events: impl IntoIterator<Item = EventEnvelope>) {
        for e in events {
            self.apply(&crate::upcast::upcast(e));
        }
    }

    /// The sequence of the last event applied (0 when none).
    pub fn sequence(&self) -> u64 {
        match self {
            Folded::Loan(s) => s.version,
            Folded::Draw(s) => s.version,
        }
    }

    /// The state as JSON (what [`super::view`] gives for the same history).
    pub fn view(&self) -> Value {
        match self {
            Folded::Loan(s) => s.view(),
            Folded::Draw(s) => s.view(),
        }
    }
}

/// A snapshot as stored: the state at `sequence`, by fold `fold_version`.
#[derive(Debug, Clone, PartialEq)]
pub struct Snapshot {
    pub fold_version: u32,
    pub sequence: u64,
    pub state: Folded,
}

/// The state document of an aggregate from an optional snapshot and the events after it
/// (the same document [`super::document`] gives for the whole history). `None` when there
/// is neither.
pub fn document_from(
    aggregate_type: &str,
    aggregate_id: &str,
    snapshot: Option<Folded>,
    tail: Vec<EventEnvelope>,
) -> Option<Value> {
    let Some(mut state) = snapshot.or_else(|| Folded::empty(aggregate_type)) else {
        return super::document(tail);
    };
    state.apply_all(tail);
    if state.sequence() == 0 {
        return None;
    }
    Some(json!({
        "aggregateType": aggregate_type,
        "aggregateId": aggregate_id,
        "version": state.sequence(),
        "state": state.view(),
    }))
}
