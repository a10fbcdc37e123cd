//! Small folds: borrowers, funds, and a summary for every other aggregate.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{json, Value};

use super::{money_field, str_field};
use crate::envelope::{format_time, EventEnvelope};
use crate::money::Money;

/// A borrower: KYC status and flags.
pub fn borrower(history: &[EventEnvelope]) -> Value {
    let (mut kind, mut name, mut kyc, mut kyc_reason) = (None, None, "pending", None);
    let mut flags: Vec<String> = Vec::new();
    for e in history {
        let p = &e.payload;
        match e.event_type.as_str() {
            "Borrower.Created" => {
                kind = str_field(p, "type");
                name = str_field(p, "name");
            }
            "Borrower.KYCApproved" => {
                kyc = "approved";
                kyc_reason = None;
            }
            "Borrower.KYCFailed" => {
                kyc = "failed";
                kyc_reason = str_field(p, "reason");
            }
            "Borrower.Flagged" => flags.extend(str_field(p, "reason")),
            _ => {}
        }
    }
    json!({
        "borrowerId": history.first().map(|e| e.aggregate_id.clone()),
        "type": kind,
        "name": name,
        "kyc": kyc,
        "kycFailureReason": kyc_reason,
        "flagged": !flags.is_empty(),
        "flags": flags,
    })
}

/// A fund: capital allocated to loans, capital called.
pub fn fund(history: &[EventEnvelope]) -> Value {
    let (mut name, mut structure) = (None, None);
    let (mut allocated, mut called) = (Money::ZERO, Money::ZERO);
    let mut loans = BTreeSet::new();
    let mut distributions = 0;
    for e in history {
        let p = &e.payload;
        match e.event_type.as_str() {
            "Fund.Created" => {
                name = str_field(p, "name");
                structure = str_field(p, "structure");
            }
            "Fund.CapitalAllocated" => {
                allocated += money_field(p, "amount");
                loans.extend(str_field(p, "loanId"));
            }
            "CapitalCall.Issued" => called += money_field(p, "amount"),
            "Distribution.Calculated" => distributions += 1,
            _ => {}
        }
    }
    json!({
        "fundId": history.first().map(|e| e.aggregate_id.clone()),
        "name": name,
        "structure": structure,
        "capitalAllocated": allocated,
        "loans": loans,
        "capitalCalled": called,
        "distributions": distributions,
    })
}

/// Any other aggregate: how many events of which types, and the last one.
pub fn summary(history: &[EventEnvelope]) -> Value {
    let mut counts: BTreeMap<&str, u64> = BTreeMap::new();
    for e in history {
        *counts.entry(e.event_type.as_str()).or_default() += 1;
    }
    let last = history.last();
    json!({
        "events": history.len(),
        "eventTypes": counts,
        "lastEventType": last.map(|e| e.event_type.clone()),
        "lastOccurredAt": last.map(|e| format_time(&e.occurred_at)),
        "lastPayload": last.map(|e| e.payload.clone()),
    })
}
