//! The event catalog: every event type the backbone accepts, with its domain, the aggregate
//! whose stream it belongs to, and its payload schema per version.
//!
//! # Aggregates (whose stream an event is appended to)
//!
//! | aggregateType (id field) | event types |
//! |---|---|
//! | `Loan` (loanId) | `Loan.*`, `PaymentSchedule.*`, `Payment.*`: one ordered stream per loan, so a payment is always folded after the funding and schedule it depends on |
//! | `Draw` (drawId) | `Draw.*`, `Inspection.*` |
//! | `Borrower` (borrowerId) | `Borrower.*` |
//! | `Fund` (fundId) | `Fund.*`, `CapitalCall.*`, `Distribution.*` |
//! | `Commitment` (commitmentId) | `Commitment.*` |
//! | `Document`, `Filing`, `License`, `ComplianceReview` | compliance records, one stream each |
//! | `Notification` (notificationId) | `Notification.*` |
//!
//! Handlers write their own records on their own aggregates (a compliance review on
//! `ComplianceReview`, not on the borrower's stream), so a client's stream only changes when
//! the client or the aggregate's own domain writes to it.
//!
//! # Draws against a loan
//!
//! Approving a draw needs "loan amount minus what is already drawn", a fact of the *loan*.
//! To decide it without races and deterministically, the decision is taken on the loan's
//! stream: when a draw passes inspection the draw handler appends `Loan.DrawSubmitted` to the
//! loan; the draw handler receives that event in the loan's message group (so one loan's draw
//! decisions are serialized) with the loan's history up to it, and approves
//! `min(requested, amount - committed)` or rejects. "Committed" is the sum of earlier approved
//! draws of the loan, replayed from the earlier `Loan.DrawSubmitted` events, so two draws
//! approved moments apart never over-commit the loan, and a re-run decides the same. When
//! the approved draw is disbursed, `Loan.DrawDisbursed` records it on the loan as well (the
//! loan state's disbursed draws total).
//!
//! # Versions
//!
//! `eventVersion` selects the payload schema ([`EventSpec::schema`]); ingest validates a v2
//! payload against the v2 schema. Stored events are never rewritten: readers see every event
//! in its latest version through [`crate::upcast`]. Versioned today: `Payment.Received` v2
//! (`paymentMethod` from a fixed list instead of the free-text `method`).
//!
//! # Custom types
//!
//! Teams add types without editing the built-in entries: [`Catalog::with_custom_json`] parses a JSON
//! document (see [`custom`]) into a catalog instance that ingest uses; custom payloads
//! are validated by the same validator as the built-in ones.
//!
//! # Where things are
//!
//! - `types.rs`: what an entry is ([`EventSpec`]) and the producers that are not handlers
//!   ([`CLIENT`], [`OPERATOR`]).
//! - `builtin.rs`: the data, every built-in entry ([`CATALOG`]) and the [`ALIASES`].
//! - [`custom`]: custom types parsed from a JSON document.
//! - `export.rs`: the catalog as JSON ([`export`]) and as a Markdown table.
//! - this file: the lookups and [`Catalog`], the built-in plus custom types that ingest
//!   validates against.

mod builtin;
pub mod custom;
mod export;
mod types;

pub use builtin::{
    ALIASES, ALLOCATION, CATALOG, DEFAULT_DEFAULT_AFTER_DAYS, DEFAULT_GRACE_DAYS, INSTALLMENT,
    INSTALLMENT_PAID, LOAN_TYPES, MAX_OPS_IDS, PAYMENT_METHODS, SPLIT,
};
pub use export::export;
pub use types::{EventSpec, PayloadCheck, CLIENT, DELIVERY, OPERATOR};

use crate::error::CoreError;

/// The canonical name of an event type (resolving aliases).
pub fn canonical(event_type: &str) -> &str {
    ALIASES
        .iter()
        .find(|(alias, _)| *alias == event_type)
        .map(|(_, canonical)| *canonical)
        .unwrap_or(event_type)
}

/// Look up a built-in event type (or one of its aliases).
pub fn lookup(event_type: &str) -> Option<&'static EventSpec> {
    let name = canonical(event_type);
    CATALOG.iter().find(|s| s.event_type == name)
}

/// Whether `producer` (a handler's name) may produce events of some type on aggregates of
/// `aggregate_type`: a handler that may not never moves that stream's head.
pub fn produces_on(producer: &str, aggregate_type: &str) -> bool {
    CATALOG
        .iter()
        .any(|s| s.aggregate_type == aggregate_type && s.produced_by(producer))
}

/// True when `s` is `Domain.Action` with PascalCase segments.
pub fn is_event_type_name(s: &str) -> bool {
    // On bytes: every allowed character is ASCII (no byte of a wider character passes).
    let mut parts = s.as_bytes().split(|b| *b == b'.');
    let pascal = |p: Option<&[u8]>| {
        p.is_some_and(|p| {
            p.len() <= 64
                && p.first().is_some_and(u8::is_ascii_uppercase)
                && p.iter().all(u8::is_ascii_alphanumeric)
        })
    };
    pascal(parts.next()) && pascal(parts.next()) && parts.next().is_none()
}

/// A catalog instance: the built-in types plus a team's custom types. Ingest validates
/// against one; handlers and folds only know the built-in ones.
#[derive(Debug, Clone, Default)]
pub struct Catalog {
    custom: Vec<&'static EventSpec>,
}

static BUILTIN: Catalog = Catalog { custom: Vec::new() };

impl Catalog {
    /// The built-in types only.
    pub fn builtin() -> &'static Catalog {
        &BUILTIN
    }

    /// The built-in types plus the custom types described by `json` (see [`custom`]).
    /// The custom specs live for the rest of the process: build a catalog once at start.
    pub fn with_custom_json(json: &str) -> Result<Catalog, CoreError> {
        Ok(Catalog {
            custom: custom::parse(json)?,
        })
    }

    /// Look up a type (or alias) among built-in and custom types.
    pub fn lookup(&self, event_type: &str) -> Option<&'static EventSpec> {
        lookup(event_type).or_else(|| {
            self.custom
                .iter()
                .copied()
                .find(|s| s.event_type == event_type)
        })
    }

    /// Every type, built-in first.
    pub fn specs(&self) -> impl Iterator<Item = &'static EventSpec> + '_ {
        CATALOG.iter().chain(self.custom.iter().copied())
    }

    /// The custom types of this catalog.
    pub fn custom(&self) -> &[&'static EventSpec] {
        &self.custom
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_type_names_are_domain_dot_action() {
        assert!(is_event_type_name("Loan.Funded"));
        assert!(is_event_type_name("PaymentSchedule.Generated"));
        assert!(!is_event_type_name("loan.funded"));
        assert!(!is_event_type_name("LoanFunded"));
        assert!(!is_event_type_name("Loan.Funded.Twice"));
        assert!(!is_event_type_name("LOAN_CREATED"));
        assert!(!is_event_type_name("Loan."));
    }

    proptest::proptest! {
        /// The check on bytes decides as the same rule on characters.
        #[test]
        fn event_type_names_are_checked_as_characters(
            s in proptest::prop_oneof!["[A-Za-z0-9.]{0,70}", "[A-Z][a-zé0-9_ ]{0,8}\\.[A-Zé][a-z0-9]{0,8}", ".*"],
        ) {
            let pascal = |p: &str| {
                p.len() <= 64
                    && p.starts_with(|c: char| c.is_ascii_uppercase())
                    && p.chars().all(|c| c.is_ascii_alphanumeric())
            };
            let parts: Vec<&str> = s.split('.').collect();
            let by_chars = parts.len() == 2 && parts.iter().all(|p| pascal(p));
            proptest::prop_assert_eq!(is_event_type_name(&s), by_chars);
        }
    }
}
