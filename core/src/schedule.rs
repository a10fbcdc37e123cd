//! Payment schedules.
//!
//! Rules (rounding: half away from zero to the cent, see [`crate::money`]):
//! - periodic rate i = rate/100/12 monthly, /4 quarterly; n = termMonths (monthly),
//!   termMonths/3 (quarterly, the term must be a multiple of 3), 1 (maturity);
//! - amortized: level payment A = round(P·i / (1 − (1+i)^−n)), or round(P/n) when i = 0;
//!   each period interest = round(balance·i) and principal = A − interest; the last payment
//!   takes the whole remaining balance, so the principals add up to P exactly;
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
    pub due_date: NaiveDate,
    pub principal: Money,
    pub interest: Money,
    pub total: Money,
    /// Principal still owed after this installment.
    pub balance: Money,
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
    let i = match frequency {
        Frequency::Monthly => rate.periodic(12),
        Frequency::Quarterly => rate.periodic(4),
        Frequency::Maturity => {
            let interest = Money::round(
                principal.amount() * rate.percent() / Decimal::from(100)
                    * Decimal::from(term_months)
                    / Decimal::from(12),
            );
            return Ok(vec![Installment {
                number: 1,
                due_date: due_date(anchor, term_months)?,
                principal,
                interest,
                total: principal + interest,
                balance: Money::ZERO,
            }]);
        }
    };

    let level = match amortization {
        Amortization::Amortized => Some(level_payment(principal, i, periods)?),
        Amortization::InterestOnly => None,
    };
    let mut balance = principal;
    let mut out = Vec::with_capacity(periods as usize);
    for k in 1..=periods {
        let interest = Money::round(balance.amount() * i);
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
mod tests {
    use super::*;
    use std::str::FromStr;

    fn terms(p: &str, rate: &str, n: u32, a: Amortization, f: Frequency) -> LoanTerms {
        LoanTerms {
            principal: Money::from_str(p).unwrap(),
            rate: Rate::from_str(rate).unwrap(),
            term_months: n,
            amortization: a,
            frequency: f,
        }
    }

    fn date(s: &str) -> NaiveDate {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
    }

    #[test]
    fn the_seed_example_pays_8675_74_a_month() {
        let t = terms(
            "100000",
            "7.5",
            12,
            Amortization::Amortized,
            Frequency::Monthly,
        );
        let s = generate(&t, date("2026-01-15")).unwrap();
        assert_eq!(s.len(), 12);
        assert_eq!(s[0].total.to_string(), "8675.74");
        assert_eq!(s[0].interest.to_string(), "625.00");
        assert_eq!(s[0].principal.to_string(), "8050.74");
        let principal: Money = s.iter().map(|x| x.principal).sum();
        assert_eq!(principal.to_string(), "100000.00");
        assert!(s.last().unwrap().balance.is_zero());
    }

    #[test]
    fn due_dates_clamp_to_month_end() {
        let t = terms("1200", "0", 4, Amortization::Amortized, Frequency::Monthly);
        let s = generate(&t, date("2028-01-31")).unwrap();
        let d: Vec<String> = s.iter().map(|x| x.due_date.to_string()).collect();
        assert_eq!(d, ["2028-02-29", "2028-03-31", "2028-04-30", "2028-05-31"]);
        assert!(s.iter().all(|x| x.total.to_string() == "300.00"));
    }

    #[test]
    fn interest_only_and_maturity() {
        let t = terms(
            "120000",
            "6",
            6,
            Amortization::InterestOnly,
            Frequency::Quarterly,
        );
        let s = generate(&t, date("2026-03-01")).unwrap();
        assert_eq!(s.len(), 2);
        assert_eq!(s[0].interest.to_string(), "1800.00");
        assert!(s[0].principal.is_zero());
        assert_eq!(s[1].principal.to_string(), "120000.00");
        assert_eq!(s[1].due_date, date("2026-09-01"));

        let t = terms(
            "50000",
            "8",
            18,
            Amortization::InterestOnly,
            Frequency::Maturity,
        );
        let s = generate(&t, date("2026-03-01")).unwrap();
        assert_eq!(s.len(), 1);
        assert_eq!(s[0].interest.to_string(), "6000.00");
        assert_eq!(s[0].total.to_string(), "56000.00");
        assert_eq!(s[0].due_date, date("2027-09-01"));
    }

    #[test]
    fn quarterly_terms_must_divide_by_three() {
        let t = terms(
            "1000",
            "5",
            10,
            Amortization::Amortized,
            Frequency::Quarterly,
        );
        assert!(generate(&t, date("2026-01-01")).is_err());
    }

    #[test]
    fn the_printed_seed_schedule() {
        let t = terms(
            "100000",
            "7.5",
            12,
            Amortization::Amortized,
            Frequency::Monthly,
        );
        let table = render(&generate(&t, date("2026-01-31")).unwrap());
        println!("$100,000 at 7.5 % over 12 months, funded 2026-01-31:\n{table}");
        assert!(
            table.contains("  1  2026-02-28      8050.74       625.00      8675.74     91949.26")
        );
        assert!(table.contains("sum           100000.00"));
    }

    #[test]
    fn regenerated_tails_continue_the_schedule() {
        let mut next = xorshift(0x1234_5678_9abc_def1);
        for _ in 0..1000 {
            let freq = [Frequency::Monthly, Frequency::Quarterly][next(2) as usize];
            let amort = [Amortization::Amortized, Amortization::InterestOnly][next(2) as usize];
            let n = 3 * (1 + next(120) as u32);
            let t = LoanTerms {
                principal: Money::from_cents(1 + next(10_000_000_000) as i64),
                rate: Rate::from_str(&format!("{}.{}", next(30), next(1000))).unwrap(),
                term_months: n,
                amortization: amort,
                frequency: freq,
            };
            let start = date("2024-01-31") + chrono::Days::new(next(1500));
            let full = generate(&t, start).unwrap();
            let skip = next(full.len() as u64) as u32;
            // The rest of the loan after `skip` installments, at a new rate.
            let rest = if skip == 0 {
                t.principal
            } else {
                full[skip as usize - 1].balance
            };
            if rest.is_zero() {
                continue;
            }
            let tail_terms = LoanTerms {
                principal: rest,
                rate: Rate::from_str(&format!("{}.{}", next(30), next(100))).unwrap(),
                ..t
            };
            let tail = generate_tail(&tail_terms, start, skip).unwrap();
            assert_eq!(tail.len(), full.len() - skip as usize, "{t:?} skip {skip}");
            for (a, b) in tail.iter().zip(&full[skip as usize..]) {
                assert_eq!((a.number, a.due_date), (b.number, b.due_date));
            }
            assert_eq!(tail.iter().map(|x| x.principal).sum::<Money>(), rest);
            assert!(tail
                .iter()
                .all(|x| !x.balance.is_negative() && !x.principal.is_negative()));
            assert!(tail.last().unwrap().balance.is_zero());
        }
        // Nothing left after the last installment; maturity loans have one installment.
        let t = terms("1000", "5", 12, Amortization::Amortized, Frequency::Monthly);
        assert!(generate_tail(&t, date("2026-01-31"), 12).is_err());
        let t = terms(
            "1000",
            "5",
            12,
            Amortization::Amortized,
            Frequency::Maturity,
        );
        assert!(generate_tail(&t, date("2026-01-31"), 1).is_err());
    }

    /// A deterministic xorshift generator: `next(m)` is in `0..m`. Used instead of a
    /// property-testing crate.
    fn xorshift(mut seed: u64) -> impl FnMut(u64) -> u64 {
        move |m| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % m
        }
    }

    /// Thousands of loans across the whole parameter space.
    #[test]
    fn properties_hold_across_many_loans() {
        let mut next = xorshift(0x9e37_79b9_7f4a_7c15);
        for _ in 0..3000 {
            let cents = 1 + next(10_000_000_000) as i64;
            let rate = Decimal::new(next(3_000_000) as i64, 4); // 0 - 300.0000 -> cap below
            let rate = rate.min(Decimal::from(100));
            let freq = [
                Frequency::Monthly,
                Frequency::Quarterly,
                Frequency::Maturity,
            ][next(3) as usize];
            let amort = [Amortization::Amortized, Amortization::InterestOnly][next(2) as usize];
            let mut n = 1 + next(600) as u32;
            if freq == Frequency::Quarterly {
                n = (n / 3).max(1) * 3;
            }
            let t = LoanTerms {
                principal: Money::from_cents(cents),
                rate: Rate::from_str(&rate.to_string()).unwrap(),
                term_months: n,
                amortization: amort,
                frequency: freq,
            };
            let start = date("2024-01-31") + chrono::Days::new(next(2000));
            let s = generate(&t, start).unwrap();
            let sum: Money = s.iter().map(|x| x.principal).sum();
            assert_eq!(sum, t.principal, "{t:?}");
            assert!(
                s.iter()
                    .all(|x| !x.balance.is_negative() && !x.principal.is_negative()),
                "{t:?}"
            );
            assert!(s.iter().all(|x| x.total == x.principal + x.interest));
            assert!(s.last().unwrap().balance.is_zero());
            assert!(s.windows(2).all(|w| w[0].due_date < w[1].due_date));
            let expected_len = match freq {
                Frequency::Monthly => n,
                Frequency::Quarterly => n / 3,
                Frequency::Maturity => 1,
            };
            assert_eq!(s.len() as u32, expected_len);
            for x in &s {
                // Clamped: the due day is the start day, or the month is too short for it.
                use chrono::Datelike;
                let d = x.due_date;
                let last_day = (d + chrono::Days::new(1)).month() != d.month();
                assert!(
                    d.day() == start.day() || (last_day && d.day() < start.day()),
                    "{start} -> {d}"
                );
            }
        }
    }
}
