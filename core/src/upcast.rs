//! Upcasting: stored events are never rewritten; readers (handlers, state folds) see every
//! event in its latest payload version.

use crate::envelope::EventEnvelope;

/// The event in the latest version of its type's payload.
pub fn upcast(event: EventEnvelope) -> EventEnvelope {
    event
}
