//! Read models: pure folds from a loan's history to the query items screens and reports
//! read, so nobody has to fold one aggregate at a time to list loans.
//!
//! - [`LoanSummary`]: one item per loan (status, borrower, fund, amounts, next due, days
//!   past due, delinquency, last event), taken from [`LoanState`], the fold the state route
//!   and the handlers use: outstanding principal, the next installment, days past due, late
//!   fees owed and money held for refund are the fold's, never computed again here.
//! - [`FundPortfolio`]: per-fund totals over the fund's loan summaries ([`portfolio`]).
//!
//! [`crate::handlers::projection::LoanSummaryProjection`] is the handler that keeps the
//! summaries current: it subscribes to every event type of the loan stream like any handler
//! (its own queue, the same runner and idempotency), emits no follow-ons, and returns the
//! summary to write. Each summary carries the stream sequence it was folded at (`version`);
//! the store writes it only over an older one, so a rebuild from history and live updates
//! can run at the same time.

use std::collections::BTreeMap;
use std::sync::LazyLock;

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

use crate::catalog::CATALOG;
use crate::envelope::EventEnvelope;
use crate::money::Money;
use crate::state::loan::Delinquency;
use crate::state::{LoanState, LoanStatus};

/// The projections that can be rebuilt, by name (`POST /projections/{name}/rebuild`).
pub const PROJECTIONS: &[&str] = &[LOAN_SUMMARY];

/// The loan summary projection's name (also its handler's name).
pub const LOAN_SUMMARY: &str = "loan-summary";

/// Every built-in event type of the loan stream (aggregate `Loan`), from the catalog: any
/// of them changes the summary's last event, and a type added later is included by itself.
pub fn loan_stream_types() -> &'static [&'static str] {
    static TYPES: LazyLock<Vec<&'static str>> = LazyLock::new(|| {
        CATALOG
            .iter()
            .filter(|s| s.aggregate_type == "Loan")
            .map(|s| s.event_type)
            .collect()
    });
    &TYPES
}

/// The statuses a summary can have, as the `status` filter spells them.
pub const STATUSES: &[&str] = &["created", "approved", "funded", "paid_off", "defaulted"];

/// One loan as the list routes show it. Money is exact decimal text.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LoanSummary {
    pub tenant_id: String,
    pub loan_id: String,
    pub status: LoanStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub borrower_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fund_id: Option<String>,
    /// The amount the loan was created for.
    pub amount: Money,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub funded_amount: Option<Money>,
    pub outstanding_principal: Money,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_due: Option<NextDue>,
    /// Days the oldest installment with interest or principal unpaid is past due on the
    /// last event's date ([`LoanState::days_past_due`]).
    pub days_past_due: u32,
    /// The loan's late policy applied to those days (grace period, default after N days).
    pub delinquency: Delinquency,
    /// Past the grace period: `delinquency` is not `current`.
    pub delinquent: bool,
    /// Late fees assessed and not yet paid.
    pub fees_owed: Money,
    /// Received money not applied to the loan (over-payments held), owed back.
    pub refunds_due: Money,
    pub last_event: LastEvent,
    /// The loan stream's sequence this summary was folded at.
    pub version: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NextDue {
    pub installment: u32,
    pub due_date: NaiveDate,
    /// Interest and principal owed on it.
    pub amount: Money,
    /// Its unpaid late fee.
    pub fee: Money,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LastEvent {
    pub event_id: String,
    pub event_type: String,
    pub occurred_at: String,
    pub sequence: u64,
}

/// The summary of a loan stream (in sequence order, upcast); `None` for an empty history
/// or one that never created the loan.
pub fn loan_summary(history: &[EventEnvelope]) -> Option<LoanSummary> {
    summarise(&LoanState::fold(history), history.last()?)
}

/// The summary of a loan folded up to and including `last`, its latest event.
pub fn summarise(state: &LoanState, last: &EventEnvelope) -> Option<LoanSummary> {
    let terms = state.terms.as_ref()?;
    let as_of = last.occurred_at.date_naive();
    let days_past_due = state.days_past_due(as_of);
    let delinquency = state.late_policy().delinquency(days_past_due);
    Some(LoanSummary {
        tenant_id: last.metadata.tenant_id.clone(),
        loan_id: last.aggregate_id.clone(),
        status: state.status,
        borrower_id: state.borrower_id.clone(),
        fund_id: terms.fund_id.clone(),
        amount: terms.amount,
        funded_amount: state.funded_amount,
        outstanding_principal: state.outstanding_principal,
        next_due: state.next_due().map(|d| NextDue {
            installment: d.number,
            due_date: d.due_date,
            amount: d.amount(),
            fee: d.fee,
        }),
        days_past_due: u32::try_from(days_past_due).unwrap_or(u32::MAX),
        delinquency,
        delinquent: delinquency != Delinquency::Current,
        fees_owed: state.fees_owed(),
        refunds_due: state.held,
        last_event: LastEvent {
            event_id: last.event_id.to_string(),
            event_type: last.event_type.clone(),
            occurred_at: crate::envelope::format_time(&last.occurred_at),
            sequence: last.sequence,
        },
        version: last.sequence,
    })
}

/// Totals over one fund's loans. Money is exact decimal text.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct FundPortfolio {
    pub fund_id: String,
    pub loans: u64,
    /// Loans per status.
    pub by_status: BTreeMap<String, u64>,
    /// Sum of the loans' amounts.
    pub committed: Money,
    /// Sum of what was funded.
    pub funded: Money,
    pub outstanding_principal: Money,
    pub delinquent_loans: u64,
    pub delinquent_principal: Money,
}

/// The portfolio of `fund_id` from its loans' summaries.
pub fn portfolio<'a>(
    fund_id: &str,
    loans: impl IntoIterator<Item = &'a LoanSummary>,
) -> FundPortfolio {
    let mut p = FundPortfolio {
        fund_id: fund_id.to_string(),
        ..FundPortfolio::default()
    };
    for l in loans {
        p.loans += 1;
        *p.by_status
            .entry(l.status.as_str().to_string())
            .or_default() += 1;
        p.committed += l.amount;
        p.funded += l.funded_amount.unwrap_or_default();
        p.outstanding_principal += l.outstanding_principal;
        if l.delinquent {
            p.delinquent_loans += 1;
            p.delinquent_principal += l.outstanding_principal;
        }
    }
    p
}

#[cfg(test)]
mod tests;
