//! Payment schedules.
//!
//! Rules (rounding: half away from zero to the cent, see [`crate::money`]):
//! - periodic rate i = rate/100/12 monthly, /4 quarterly; n = termMonths (monthly),
//!   termMonths/3 (quarterly, the term must be a multiple of 3), 1 (maturity);
//! - amortized: level payment A = round(P·i / (1 − (1+i)^−n)), or round(P/n) when i = 0;
//!   each period interest = round(balance·i), computed exactly ([`period_interest`]), and
//!   principal = A − interest but never more than is owed; the last payment takes the whole
//!   remaining balance, so the principals add up to P exactly;
//! - interest only: interest each period, all principal with the last payment;
//! - maturity: one payment at the end of the term with
//!   interest = round(P·rate/100·termMonths/12);
//! - due dates: the start date plus k periods in calendar months, clamped to the month's
//!   last day (Jan 31 -> Feb 28/29, Mar 31, ...).

use chrono::{Months, NaiveDate};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::error::CoreError;
use crate::money::{Money, Rate};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Amortization {
    Amortized,
    InterestOnly,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Frequency {
    Monthly,
    Quarterly,
    Maturity,
}

/// What a schedule is computed from.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LoanTerms {
    pub principal: Money,
    pub rate: Rate,
    pub term_months: u32,
    pub amortization: Amortization,
    pub frequency: Frequency,
}

/// One installment, serialised as the `payments` items of `PaymentSchedule.Generated`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Installment {
    pub number: u32,
    #[serde(serialize_with = "date_text")]
    pub due_date: NaiveDate,
    pub principal: Money,
    pub interest: Money,
    pub total: Money,
    /// Principal still owed after this installment.
    pub balance: Money,
}

/// A due date as `YYYY-MM-DD`, the text chrono's `Display` writes, assembled on the stack
/// for years 0-9999 (a schedule serialises hundreds of dates; chrono's own `Serialize` goes
/// through the formatting machinery into a temporary `String`).
pub fn date_text<S: serde::Serializer>(d: &NaiveDate, s: S) -> Result<S::Ok, S::Error> {
    match crate::payload::iso_date(d, &mut [0; 10]) {
        Some(text) => s.serialize_str(text),
        None => s.collect_str(d),
    }
}

/// Compute the installments of a loan starting on `start` (the funding date).
pub fn generate(terms: &LoanTerms, start: NaiveDate) -> Result<Vec<Installment>, CoreError> {
    generate_tail(terms, start, 0)
}

/// Months per period and number of periods of a term.
pub fn periods(frequency: Frequency, term_months: u32) -> Result<(u32, u32), CoreError> {
    if !(1..=600).contains(&term_months) {
        return Err(CoreError::invalid("termMonths", "must be from 1 to 600"));
    }
    match frequency {
        Frequency::Monthly => Ok((1, term_months)),
        Frequency::Quarterly if term_months.is_multiple_of(3) => Ok((3, term_months / 3)),
        Frequency::Quarterly => Err(CoreError::invalid(
            "termMonths",
            "must be a multiple of 3 for quarterly payments",
        )),
        Frequency::Maturity => Ok((term_months, 1)),
    }
}

/// The installments after the first `skip` periods of a loan anchored on `anchor` (its
/// funding date), for `terms.principal` still to amortize over the remaining periods of
/// `terms.term_months`: installment numbers continue at `skip + 1` and due dates stay
/// `anchor + k periods`, so a regenerated schedule (Loan.Modified) keeps the loan's due
/// day. `skip = 0` is the schedule at funding.
pub fn generate_tail(
    terms: &LoanTerms,
    anchor: NaiveDate,
    skip: u32,
) -> Result<Vec<Installment>, CoreError> {
    let LoanTerms {
        principal,
        rate,
        term_months,
        amortization,
        frequency,
    } = *terms;
    if principal.is_negative() || principal.is_zero() {
        return Err(CoreError::invalid("principal", "must be greater than zero"));
    }
    let (months_per_period, total) = periods(frequency, term_months)?;
    if skip >= total {
        return Err(CoreError::invalid(
            "termMonths",
            format!("a term of {term_months} months has no installment after number {skip}"),
        ));
    }
    let periods = total - skip;
    let periods_per_year = match frequency {
        Frequency::Monthly => 12,
        Frequency::Quarterly => 4,
        Frequency::Maturity => {
            // Checked: amounts and rates at the edge of what validation admits must be
            // refused, not overflow (a panic would abort the function).
            let too_large =
                || CoreError::invalid("amount", "too large for its interest to be computed");
            let interest = principal
                .amount()
                .checked_mul(rate.percent())
                .and_then(|x| x.checked_mul(Decimal::from(term_months)))
                .and_then(|x| x.checked_div(Decimal::from(1200)))
                .map(Money::round)
                .ok_or_else(too_large)?;
            let total = principal
                .amount()
                .checked_add(interest.amount())
                .map(Money::round)
                .ok_or_else(too_large)?;
            return Ok(vec![Installment {
                number: 1,
                due_date: due_date(anchor, term_months)?,
                principal,
                interest,
                total,
                balance: Money::ZERO,
            }]);
        }
    };

    let level = match amortization {
        Amortization::Amortized => Some(level_payment(
            principal,
            rate.periodic(periods_per_year),
            periods,
        )?),
        Amortization::InterestOnly => None,
    };
    let mut balance = principal;
    let mut out = Vec::with_capacity(periods as usize);
    for k in 1..=periods {
        let interest = period_interest(balance, rate, periods_per_year);
        let principal_part = if k == periods {
            balance
        } else {
            match level {
                // Never more than what is owed, never negative (tiny loans, big rates).
                Some(a) => (a - interest).min(balance).max_zero(),
                None => Money::ZERO,
            }
        };
        balance -= principal_part;
        out.push(Installment {
            number: skip + k,
            due_date: due_date(anchor, (skip + k) * months_per_period)?,
            principal: principal_part,
            interest,
            total: principal_part + interest,
            balance,
        });
    }
    Ok(out)
}

/// round(balance·i) with i = rate/100/periods_per_year, computed as
/// round(balance·rate / (100·periods_per_year)): the product is exact and the one division
/// comes last, so an interest of exactly half a cent rounds up. (Multiplying by a periodic
/// rate already cut to 28 digits, 6.25/1200 = 0.0052083…, lands just under the half cent:
/// 219,374.40 at 6.25 % gives 1142.57 instead of 1142.58.)
///
/// In integers (a schedule computes hundreds), the same number as the decimal formula for
/// what validation admits (amounts below 10^15, rates of 0-100 % with six decimals): the
/// decimal quotient is within a unit of its 13th decimal, and an interest that is not
/// exactly a half cent lies at least 1/(2·10^8·periods) of a cent away from one, so both
/// round alike (property-tested). The decimal formula takes what does not fit.
pub fn period_interest(balance: Money, rate: Rate, periods_per_year: u32) -> Money {
    interest_in_cents(balance, rate, periods_per_year)
        .and_then(|cents| i64::try_from(cents).ok())
        .map(Money::from_cents)
        .unwrap_or_else(|| period_interest_decimal(balance, rate, periods_per_year))
}

/// round(balance·rate / (100·periods_per_year)) in whole cents, half away from zero, for a
/// balance and a rate that are not negative; `None` when an intermediate does not fit.
fn interest_in_cents(balance: Money, rate: Rate, periods_per_year: u32) -> Option<i128> {
    let (b, r) = (balance.amount(), rate.percent());
    if b.is_sign_negative() || r.is_sign_negative() || periods_per_year == 0 {
        return None;
    }
    // balance·rate·100 / (10^scales · 100·periods_per_year), in cents.
    let numerator = b.mantissa().checked_mul(r.mantissa())?;
    let denominator = 10i128
        .checked_pow(b.scale() + r.scale())?
        .checked_mul(i128::from(periods_per_year))?;
    let (cents, rest) = (numerator / denominator, numerator % denominator);
    Some(if rest >= denominator - rest {
        cents + 1
    } else {
        cents
    })
}

/// The formula in decimals: the reference [`period_interest`] is held to.
fn period_interest_decimal(balance: Money, rate: Rate, periods_per_year: u32) -> Money {
    Money::round(balance.amount() * rate.percent() / Decimal::from(100 * periods_per_year))
}

/// A = round(P·i·(1+i)^n / ((1+i)^n − 1)), the level payment; P/n when i = 0.
pub fn level_payment(principal: Money, i: Decimal, n: u32) -> Result<Money, CoreError> {
    let p = principal.amount();
    if i.is_zero() {
        return Ok(Money::round(p / Decimal::from(n)));
    }
    let growth = (0..n).try_fold(Decimal::ONE, |acc, _| acc.checked_mul(Decimal::ONE + i));
    let growth =
        growth.ok_or_else(|| CoreError::invalid("interestRate", "too large for this term"))?;
    let a = p
        .checked_mul(i)
        .and_then(|x| x.checked_mul(growth))
        .and_then(|x| x.checked_div(growth - Decimal::ONE))
        .ok_or_else(|| CoreError::invalid("interestRate", "too large for this term"))?;
    Ok(Money::round(a))
}

/// A schedule as a plain-text table (for logs, the demo and notes).
pub fn render(installments: &[Installment]) -> String {
    let mut out = format!(
        "{:>3}  {:<10} {:>12} {:>12} {:>12} {:>12}\n",
        "#", "due", "principal", "interest", "total", "balance"
    );
    for i in installments {
        out.push_str(&format!(
            "{:>3}  {:<10} {:>12} {:>12} {:>12} {:>12}\n",
            i.number,
            i.due_date.to_string(),
            i.principal.to_string(),
            i.interest.to_string(),
            i.total.to_string(),
            i.balance.to_string()
        ));
    }
    let sum = |f: fn(&Installment) -> Money| installments.iter().map(f).sum::<Money>().to_string();
    out.push_str(&format!(
        "{:>3}  {:<10} {:>12} {:>12} {:>12}\n",
        "",
        "sum",
        sum(|i| i.principal),
        sum(|i| i.interest),
        sum(|i| i.total)
    ));
    out
}

pub fn due_date(start: NaiveDate, months: u32) -> Result<NaiveDate, CoreError> {
    // chrono clamps to the last day of the target month.
    start
        .checked_add_months(Months::new(months))
        .ok_or_else(|| CoreError::invalid("fundedAt", "schedule runs past the supported calendar"))
}

#[cfg(test)]
mod tests;
