//! What a catalog entry is: [`EventSpec`], and the producer names that are not handlers.

use serde_json::{Map, Value};

use crate::error::CoreError;
use crate::schema::FieldSpec;

/// A rule across fields that the field schema cannot express (checked after it).
pub type PayloadCheck = fn(&Map<String, Value>) -> Result<(), CoreError>;

/// One event type.
#[derive(Debug, Clone, Copy)]
pub struct EventSpec {
    pub event_type: &'static str,
    pub domain: &'static str,
    pub aggregate_type: &'static str,
    /// The payload field that must equal the envelope's aggregateId.
    pub aggregate_id_field: &'static str,
    pub description: &'static str,
    /// The payload schema of version 1.
    pub fields: &'static [FieldSpec],
    /// The payload schemas of versions 2, 3, ... in order; empty when only v1 exists.
    pub later_versions: &'static [&'static [FieldSpec]],
    /// Cross-field rules, checked on every version.
    pub check: Option<PayloadCheck>,
    /// Who may publish it: [`CLIENT`] (services, over HTTP), or the handlers, job or
    /// operator actions that decide it. Nobody else may append it.
    pub producers: &'static [&'static str],
}

impl EventSpec {
    /// The newest payload version of this type.
    pub fn latest_version(&self) -> u32 {
        1 + self.later_versions.len() as u32
    }

    /// True when `producer` ([`CLIENT`], a handler's name, [`crate::late::JOB`] or
    /// [`OPERATOR`]) may publish this type.
    pub fn produced_by(&self, producer: &str) -> bool {
        self.producers.contains(&producer)
    }

    /// True when services may publish this type over HTTP.
    pub fn client_may_publish(&self) -> bool {
        self.produced_by(CLIENT)
    }

    /// The payload schema of `version`, if it exists.
    pub fn schema(&self, version: u32) -> Option<&'static [FieldSpec]> {
        match version {
            0 => None,
            1 => Some(self.fields),
            v => self.later_versions.get(v as usize - 2).copied(),
        }
    }
}

/// The producer of types services publish over HTTP.
pub const CLIENT: &str = "client";
/// The producer of `Ops.*` events: the operator actions (replay, dead letters, handler
/// switches), recorded by the server on behalf of the operator's principal.
pub const OPERATOR: &str = "operator";
/// The producer of the circuit-breaker events of subscriptions: the delivery function,
/// which opens and closes a target's circuit.
pub const DELIVERY: &str = "delivery";
