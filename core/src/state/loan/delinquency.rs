//! Grace, late fees, delinquency and the payoff quote.
//!
//! - An installment is late once it is unpaid (interest or principal) past its due date
//!   plus the grace period (`gracePeriodDays`, default 15). Its late fee is
//!   `lateFeePercent` (default 5) of the installment's total, rounded half away from zero
//!   to the cent, then raised to `lateFeeMinimum` and cut to `lateFeeMaximum` when given.
//! - The loan's delinquency follows the days past due of its oldest unpaid installment:
//!   `current` (up to the grace period), `delinquent` (more), `seriously_delinquent` (60
//!   days or more), `defaulted` (`defaultAfterDays`, default 90).
//! - The payoff quote on a date: outstanding principal, billed unpaid interest (of the
//!   installments due on or before it), interest accrued since the later of the funding
//!   date and the last due date on or before it at a per diem of principal × rate / 100 /
//!   365 over the actual days (rounded once, at the end; interest already paid ahead on
//!   the installment that period belongs to is deducted, so it is never paid twice),
//!   unpaid fees, minus money held.

use chrono::NaiveDate;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use super::{LoanState, DEFAULT_DEFAULT_AFTER_DAYS, DEFAULT_GRACE_DAYS};
use crate::money::{Money, Rate};

/// Days past due from which a delinquent loan is seriously delinquent.
pub const SERIOUSLY_DELINQUENT_DAYS: i64 = 60;

/// How a loan's lateness is judged (from `Loan.Created`, with the defaults).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LatePolicy {
    pub grace_days: u32,
    pub fee_percent: Rate,
    pub fee_minimum: Option<Money>,
    pub fee_maximum: Option<Money>,
    pub default_after_days: u32,
}

impl LatePolicy {
    /// The late fee of an installment whose total (interest + principal) is `total`.
    pub fn fee(&self, total: Money) -> Money {
        let mut fee =
            Money::round(total.amount() * self.fee_percent.percent() / Decimal::from(100));
        if let Some(min) = self.fee_minimum {
            fee = fee.max(min);
        }
        if let Some(max) = self.fee_maximum {
            fee = fee.min(max);
        }
        fee
    }

    /// The delinquency of a loan whose oldest unpaid installment is `days` past due.
    pub fn delinquency(&self, days: i64) -> Delinquency {
        if days >= i64::from(self.default_after_days) {
            Delinquency::Defaulted
        } else if days >= SERIOUSLY_DELINQUENT_DAYS && days > i64::from(self.grace_days) {
            Delinquency::SeriouslyDelinquent
        } else if days > i64::from(self.grace_days) {
            Delinquency::Delinquent
        } else {
            Delinquency::Current
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Delinquency {
    #[default]
    Current,
    Delinquent,
    SeriouslyDelinquent,
    Defaulted,
}

impl Delinquency {
    pub fn as_str(self) -> &'static str {
        match self {
            Delinquency::Current => "current",
            Delinquency::Delinquent => "delinquent",
            Delinquency::SeriouslyDelinquent => "seriously_delinquent",
            Delinquency::Defaulted => "defaulted",
        }
    }

    pub fn parse(s: &str) -> Option<Delinquency> {
        [
            Delinquency::Current,
            Delinquency::Delinquent,
            Delinquency::SeriouslyDelinquent,
            Delinquency::Defaulted,
        ]
        .into_iter()
        .find(|d| d.as_str() == s)
    }
}

/// `GET /loans/{loanId}/payoff?on=<date>`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PayoffQuote {
    pub loan_id: String,
    pub principal: Money,
    pub billed_interest: Money,
    pub accrued_interest: Money,
    pub fees: Money,
    pub excess_held: Money,
    pub total: Money,
    /// principal × rate / 100 / 365, unrounded, as a decimal string.
    pub per_diem: String,
    /// The date interest accrues from.
    pub accrued_from: Option<NaiveDate>,
    pub good_through: NaiveDate,
}

impl LoanState {
    /// The loan's lateness rules.
    pub fn late_policy(&self) -> LatePolicy {
        let t = self.terms.as_ref();
        LatePolicy {
            grace_days: t
                .and_then(|t| t.grace_period_days)
                .unwrap_or(DEFAULT_GRACE_DAYS),
            fee_percent: t
                .and_then(|t| t.late_fee_percent)
                .unwrap_or(Rate::from_percent(Decimal::from(5))),
            fee_minimum: t.and_then(|t| t.late_fee_minimum),
            fee_maximum: t.and_then(|t| t.late_fee_maximum),
            default_after_days: t
                .and_then(|t| t.default_after_days)
                .unwrap_or(DEFAULT_DEFAULT_AFTER_DAYS),
        }
    }

    /// Days past due on `on` of the oldest installment with interest or principal unpaid
    /// (0 when none is past due).
    pub fn days_past_due(&self, on: NaiveDate) -> i64 {
        self.dues()
            .find(|d| !d.amount().is_zero())
            .map_or(0, |d| (on - d.due_date).num_days().max(0))
    }

    /// The delinquency the rules give on `on`.
    pub fn delinquency_on(&self, on: NaiveDate) -> Delinquency {
        self.late_policy().delinquency(self.days_past_due(on))
    }

    /// The payoff quote on `on` (see the module documentation). A loan not active (paid
    /// off, not funded) owes nothing.
    pub fn payoff_quote(&self, on: NaiveDate) -> PayoffQuote {
        let mut q = PayoffQuote {
            loan_id: self.loan_id.clone(),
            principal: Money::ZERO,
            billed_interest: Money::ZERO,
            accrued_interest: Money::ZERO,
            fees: Money::ZERO,
            excess_held: Money::ZERO,
            total: Money::ZERO,
            per_diem: "0".into(),
            accrued_from: None,
            good_through: on,
        };
        let (Some(terms), Some(funded_on)) = (self.terms.as_ref(), self.funded_on) else {
            return q;
        };
        if !self.is_active() {
            return q;
        }
        q.principal = self.outstanding_principal;
        q.billed_interest = self
            .dues()
            .take_while(|d| d.due_date <= on)
            .map(|d| d.interest)
            .sum();
        // Installments before `first_open` are settled, fees included.
        let open = &self.installments[self.first_open.min(self.installments.len())..];
        q.fees = open
            .iter()
            .filter(|i| i.fee > i.fee_paid && i.fee_assessed_on.is_some_and(|d| d <= on))
            .map(|i| i.fee - i.fee_paid)
            .sum();
        // Due dates increase with the installment number.
        let after = self.installments.partition_point(|i| i.due_date <= on);
        let from = after
            .checked_sub(1)
            .map_or(funded_on, |i| self.installments[i].due_date.max(funded_on));
        let days = (on - from).num_days().max(0);
        let rate = terms.interest_rate.percent();
        let (principal, days, year) = (
            q.principal.amount(),
            Decimal::from(days),
            Decimal::from(36_500),
        );
        // No input may panic a fold: a product beyond a decimal's range (the largest amounts
        // over centuries) saturates at a bound the total can still be added to.
        let cap = Decimal::from_i128_with_scale(10i128.pow(27), 0);
        let per_diem = principal.checked_mul(rate).map_or(cap, |p| p / year);
        q.per_diem = per_diem.normalize().to_string();
        q.accrued_from = Some(from);
        // Exact operands, one division last: principal × rate × days / 36,500; past a
        // decimal's range, the rate for the days first.
        let accrued = principal
            .checked_mul(rate)
            .and_then(|p| p.checked_mul(days))
            .map(|p| p / year)
            .or_else(|| {
                rate.checked_mul(days)
                    .and_then(|r| (r / year).checked_mul(principal))
            })
            .map_or(cap, |a| a.min(cap));
        let accrued = Money::round(accrued);
        // Interest of the period already paid ahead (on the first installment due after
        // `on`) is not owed twice.
        let paid_ahead: Money = self
            .installments
            .get(after)
            .map_or(Money::ZERO, |i| i.interest_paid);
        q.accrued_interest = (accrued - paid_ahead).max_zero();
        q.excess_held = Money::ZERO;
        q.total = q.principal + q.billed_interest + q.accrued_interest + q.fees - q.excess_held;
        q
    }
}
