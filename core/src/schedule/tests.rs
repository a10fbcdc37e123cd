//! Schedules checked against figures that do not come from this code: a table computed with
//! Python's `decimal` module (`core/scripts/schedule_reference.py`) and [`Exact`], the
//! README's rule in integer cents with big-integer powers. Properties over random loans are
//! proptest properties, so a failure shrinks to a small loan.

use super::*;
use chrono::{Datelike, Days};
use num_bigint::BigInt;
use proptest::prelude::*;
use proptest::sample::Index;
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

fn cents(m: Money) -> i64 {
    let mut d = m.amount();
    d.rescale(2);
    i64::try_from(d.mantissa()).unwrap()
}

/// A rate in millionths of a percent.
fn micro(rate: Rate) -> i64 {
    let mut d = rate.percent() * Decimal::from(1_000_000);
    d.rescale(0);
    i64::try_from(d.mantissa()).unwrap()
}

/// Half away from zero of num/den, for num ≥ 0 and den > 0.
fn round_div(num: &BigInt, den: &BigInt) -> BigInt {
    (num * 2 + den) / (den * 2)
}

fn big(x: i64) -> BigInt {
    BigInt::from(x)
}

/// A loan in integers: principal in cents, annual rate in millionths of a percent (the six
/// decimals a [`Rate`] allows), so the periodic rate is exactly `rate_micro / d()`.
#[derive(Debug, Clone, Copy)]
struct Exact {
    cents: i64,
    rate_micro: i64,
    months: u32,
    per_year: u32,
}

impl Exact {
    fn periods(&self) -> u32 {
        self.months * self.per_year / 12
    }

    /// The periodic rate's denominator: rate/100/per_year = rate_micro / (10^8·per_year).
    fn d(&self) -> BigInt {
        big(100_000_000 * i64::from(self.per_year))
    }

    fn terms(&self, amortization: Amortization) -> LoanTerms {
        let frequency = if self.per_year == 12 {
            Frequency::Monthly
        } else {
            Frequency::Quarterly
        };
        LoanTerms {
            principal: Money::from_cents(self.cents),
            rate: self.rate(),
            term_months: self.months,
            amortization,
            frequency,
        }
    }

    fn rate(&self) -> Rate {
        let text = format!(
            "{}.{:06}",
            self.rate_micro / 1_000_000,
            self.rate_micro % 1_000_000
        );
        Rate::from_str(&text).unwrap()
    }

    /// The exact level payment P·i/(1 − (1+i)^−n) = P·r·(d+r)^n / (d·((d+r)^n − d^n)) as a
    /// fraction (numerator, denominator) of cents; P/n when r = 0.
    fn level_exact(&self) -> (BigInt, BigInt) {
        let n = self.periods();
        if self.rate_micro == 0 {
            return (big(self.cents), big(i64::from(n)));
        }
        let (d, r) = (self.d(), big(self.rate_micro));
        let growth = (&d + &r).pow(n);
        let num = big(self.cents) * &r * &growth;
        let den = &d * (growth - d.pow(n));
        (num, den)
    }

    /// A in cents, rounded half away from zero.
    fn level(&self) -> i64 {
        let (num, den) = self.level_exact();
        i64::try_from(round_div(&num, &den)).unwrap()
    }

    /// round(balance·i) in cents.
    fn interest(&self, balance: i64) -> i64 {
        i64::try_from(round_div(&(big(balance) * self.rate_micro), &self.d())).unwrap()
    }

    /// (principal, interest) per installment: interest = round(balance·i), principal =
    /// A − interest but never more than is owed, the last one takes the rest.
    fn amortized(&self) -> Vec<(i64, i64)> {
        let n = self.periods();
        let a = self.level();
        let mut balance = self.cents;
        (1..=n)
            .map(|k| {
                let interest = self.interest(balance);
                let principal = if k == n {
                    balance
                } else {
                    (a - interest).max(0).min(balance)
                };
                balance -= principal;
                (principal, interest)
            })
            .collect()
    }

    /// S = 1 + (1+i) + … + (1+i)^(n−1) = ((d+r)^n − d^n) / (r·d^(n−1)), or n when r = 0,
    /// as a fraction.
    fn compounded_periods(&self, n: u32) -> (BigInt, BigInt) {
        if self.rate_micro == 0 || n == 0 {
            return (big(i64::from(n)), big(1));
        }
        let (d, r) = (self.d(), big(self.rate_micro));
        ((&d + &r).pow(n) - d.pow(n), r * d.pow(n - 1))
    }

    /// The bound on the last payment: each of the n roundings (of A once, of each
    /// interest) is at most half a cent and compounds at (1+i) until the end, so
    /// |last − A| ≤ S_n cents with S_n as in [`Exact::compounded_periods`] (12.4 cents for
    /// 12 months at 7.5 %, $10.54 for 360 months at 6.25 %). Holds while no installment
    /// before the last pays the loan off.
    fn last_within_bound(&self, last_minus_level: i64) -> bool {
        let (s_num, s_den) = self.compounded_periods(self.periods());
        big(last_minus_level.abs()) * s_den <= s_num
    }

    /// Sufficient for no early payoff: the balance before the last installment, exactly
    /// A*/(1+i) without rounding, exceeds the most the roundings can have moved it, S_(n−1)
    /// cents. Then every installment before the last pays exactly A.
    fn no_early_payoff_guaranteed(&self) -> bool {
        let n = self.periods();
        if n == 1 {
            return true;
        }
        let (a_num, a_den) = self.level_exact();
        let (s_num, s_den) = self.compounded_periods(n - 1);
        // A*/(1+i) = a_num·d / (a_den·(d+r)) > s_num/s_den.
        let (d, r) = (self.d(), big(self.rate_micro));
        a_num * &d * s_den > a_den * (d + r) * s_num
    }
}

/// Loans across the whole domain: up to $100 M, 0 to 100 % with up to six decimals,
/// monthly terms of 1 to 600 months and quarterly terms up to 600 months.
fn any_loan() -> impl Strategy<Value = Exact> {
    loans(1, 10_000_000_000, 100_000_000, 600)
}

fn loans(
    min_cents: i64,
    max_cents: i64,
    max_rate_micro: i64,
    max_months: u32,
) -> impl Strategy<Value = Exact> {
    let rate = prop_oneof![
        Just(0i64),
        // Rates as people write them (7.5, 6.25), and any six-decimal rate.
        (0..=max_rate_micro / 10_000).prop_map(|h| h * 10_000),
        0..=max_rate_micro,
    ];
    let amount = prop_oneof![min_cents..=min_cents.max(100_000), min_cents..=max_cents];
    let shape = prop_oneof![
        (1..=max_months).prop_map(|m| (m, 12u32)),
        (1..=max_months / 3).prop_map(|q| (3 * q, 4u32)),
    ];
    (amount, rate, shape).prop_map(|(cents, rate_micro, (months, per_year))| Exact {
        cents,
        rate_micro,
        months,
        per_year,
    })
}

fn any_start() -> impl Strategy<Value = NaiveDate> {
    (0u64..36_500).prop_map(|days| date("2000-01-01") + Days::new(days))
}

/// The due date `months` after `start`, by hand: the same day, or the target month's last
/// day when the month is shorter.
fn expected_due(start: NaiveDate, months: u32) -> NaiveDate {
    let index = start.year() * 12 + start.month0() as i32 + months as i32;
    let (year, month) = (index.div_euclid(12), index.rem_euclid(12) as u32 + 1);
    let next_month = NaiveDate::from_ymd_opt(year + (month == 12) as i32, month % 12 + 1, 1);
    let last_day = (next_month.unwrap() - Days::new(1)).day();
    NaiveDate::from_ymd_opt(year, month, start.day().min(last_day)).unwrap()
}

#[test]
fn the_seed_example_pays_8675_74_a_month_and_8675_77_last() {
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
    assert!(s[..11].iter().all(|x| x.total.to_string() == "8675.74"));
    assert_eq!(s[11].total.to_string(), "8675.77");
    let principal: Money = s.iter().map(|x| x.principal).sum();
    assert_eq!(principal.to_string(), "100000.00");
    assert!(s.last().unwrap().balance.is_zero());
}

/// (principal, rate, termMonths, periods a year, A, first interest, last total, interest
/// sum, (installment, interest) of the first exact half-cent interest or (0, "")), printed
/// by `python3 core/scripts/schedule_reference.py` (Python `decimal`, 60 digits, half up).
type ReferenceCase = (
    &'static str,
    &'static str,
    u32,
    u32,
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    (u32, &'static str),
);

#[rustfmt::skip]
const PYTHON_REFERENCE: &[ReferenceCase] = &[
    ("100000", "7.5", 12, 12, "8675.74", "625.00", "8675.77", "4108.91", (0, "")),
    ("250000", "6.25", 360, 12, "1539.29", "1302.08", "1542.60", "304147.71", (100, "1142.58")),
    ("1234.56", "19.99", 24, 12, "62.83", "20.57", "62.78", "273.31", (0, "")),
    ("5000000", "4.125", 300, 12, "26738.16", "17187.50", "26737.36", "3021447.20", (0, "")),
    ("999999.99", "0.5", 600, 12, "1884.02", "416.67", "1881.80", "130409.79", (0, "")),
    ("10000", "0", 7, 12, "1428.57", "0.00", "1428.58", "0.00", (0, "")),
    ("1", "5", 12, 12, "0.09", "0.00", "0.01", "0.00", (0, "")),
    ("75000", "12", 60, 4, "5041.18", "2250.00", "5041.12", "25823.54", (7, "1708.37")),
    ("300000", "8.875", 120, 4, "11391.79", "6656.25", "11391.58", "155671.39", (0, "")),
    ("150000", "29.999999", 36, 4, "19391.67", "11250.00", "19391.74", "82700.11", (0, "")),
];

#[test]
fn level_payments_match_the_python_reference() {
    for &(p, rate, months, per_year, level, first_interest, last, interest_sum, half) in
        PYTHON_REFERENCE
    {
        let freq = if per_year == 12 {
            Frequency::Monthly
        } else {
            Frequency::Quarterly
        };
        let t = terms(p, rate, months, Amortization::Amortized, freq);
        let case = format!("{p} at {rate} % over {months} months, {per_year} a year");
        let s = generate(&t, date("2026-01-31")).unwrap();
        let n = s.len();
        assert_eq!(n as u32, months * per_year / 12, "{case}");
        assert_eq!(
            level_payment(t.principal, t.rate.periodic(per_year), n as u32)
                .unwrap()
                .to_string(),
            level,
            "{case}"
        );
        assert!(
            s[..n - 1].iter().all(|x| x.total.to_string() == level),
            "{case}"
        );
        assert_eq!(s[0].interest.to_string(), first_interest, "{case}");
        assert_eq!(s[n - 1].total.to_string(), last, "{case}");
        let interest: Money = s.iter().map(|x| x.interest).sum();
        assert_eq!(interest.to_string(), interest_sum, "{case}");
        if half.0 > 0 {
            assert_eq!(
                s[half.0 as usize - 1].interest.to_string(),
                half.1,
                "{case}"
            );
        }

        // The integer reference agrees with Python on the same figures.
        let exact = Exact {
            cents: cents(t.principal),
            rate_micro: micro(t.rate),
            months,
            per_year,
        };
        let rows = exact.amortized();
        let money = |c: i64| Money::from_cents(c).to_string();
        assert_eq!(money(exact.level()), level, "{case}");
        let (lp, li) = rows[n - 1];
        assert_eq!(money(lp + li), last, "{case}");
        assert_eq!(
            money(rows.iter().map(|r| r.1).sum()),
            interest_sum,
            "{case}"
        );
        assert!(exact.last_within_bound(cents(s[n - 1].total) - exact.level()));
    }
}

#[test]
fn an_exact_half_cent_of_interest_rounds_up() {
    // 250,000 at 6.25 %: installment 100 is due on 219,374.40, and 219,374.40 × 6.25/1200
    // is 1142.575 exactly.
    let t = terms(
        "250000",
        "6.25",
        360,
        Amortization::Amortized,
        Frequency::Monthly,
    );
    let s = generate(&t, date("2026-01-31")).unwrap();
    assert_eq!(s[98].balance.to_string(), "219374.40");
    assert_eq!(s[99].interest.to_string(), "1142.58");
    assert_eq!(
        period_interest(
            Money::from_str("219374.40").unwrap(),
            Rate::from_str("6.25").unwrap(),
            12
        )
        .to_string(),
        "1142.58"
    );
}

/// Every balance in a band around the half-cent example, at every rate of 0.01 to 30.00 %,
/// monthly and quarterly, against exact integer arithmetic; the band holds many exact half
/// cents (counted, and they must be there for the scan to mean anything).
#[test]
fn interest_matches_exact_arithmetic_on_a_grid_with_half_cents() {
    let mut checked = 0u32;
    let mut half_cents = 0u32;
    for per_year in [12u32, 4] {
        for hundredths in 1..=3000i64 {
            let exact = Exact {
                cents: 0,
                rate_micro: hundredths * 10_000,
                months: 12,
                per_year,
            };
            let rate = exact.rate();
            let twice_d = i128::from(200_000_000 * i64::from(per_year));
            for balance in 21_937_340..21_937_540i64 {
                let got = period_interest(Money::from_cents(balance), rate, per_year);
                assert_eq!(
                    cents(got),
                    exact.interest(balance),
                    "{balance} cents at {rate} %, {per_year} a year"
                );
                checked += 1;
                let twice = 2 * i128::from(balance) * i128::from(exact.rate_micro);
                if twice % twice_d == twice_d / 2 {
                    half_cents += 1;
                }
            }
        }
    }
    eprintln!("{checked} interest figures checked, {half_cents} exact half cents among them");
    assert!(half_cents > 100, "only {half_cents} half cents in the grid");
}

#[test]
fn due_dates_clamp_to_month_end() {
    let t = terms("1200", "0", 4, Amortization::Amortized, Frequency::Monthly);
    let s = generate(&t, date("2028-01-31")).unwrap();
    let d: Vec<String> = s.iter().map(|x| x.due_date.to_string()).collect();
    assert_eq!(d, ["2028-02-29", "2028-03-31", "2028-04-30", "2028-05-31"]);
    assert!(s.iter().all(|x| x.total.to_string() == "300.00"));
}

/// "Never more than is owed": a loan whose rounded level payment outruns it is paid off
/// before its term and the installments after that are zero. $3.00 over 600 months at 0 %:
/// A = round(0.005) = 0.01, so installment 300 pays it off.
#[test]
fn a_loan_can_be_paid_off_before_its_term() {
    let t = terms("3", "0", 600, Amortization::Amortized, Frequency::Monthly);
    let s = generate(&t, date("2026-01-31")).unwrap();
    assert!(s[..300].iter().all(|x| x.total.to_string() == "0.01"));
    assert!(s[299].balance.is_zero());
    assert!(s[300..].iter().all(|x| x.total.is_zero()));
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
    assert!(table.contains("  1  2026-02-28      8050.74       625.00      8675.74     91949.26"));
    assert!(table.contains("sum           100000.00"));
}

#[test]
fn nothing_follows_the_last_installment() {
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

proptest! {
    /// Amortized schedules over the whole domain:
    /// - principals add up to P, balances step down by each principal and never go
    ///   negative, total = principal + interest;
    /// - interest = round(balance·i) exactly, the level payment is the exact
    ///   P·i/(1 − (1+i)^−n) rounded, and the whole schedule is the integer reference's;
    /// - every installment before the last pays A, unless it pays the loan off (then the
    ///   rest are zero); with no early payoff the last is within S_n cents of A.
    #[test]
    fn amortized_schedules_follow_the_rule(loan in any_loan(), start in any_start()) {
        let t = loan.terms(Amortization::Amortized);
        let s = generate(&t, start).unwrap();
        let n = loan.periods() as usize;
        let a = loan.level();
        prop_assert_eq!(s.len(), n);
        let i = t.rate.periodic(loan.per_year);
        prop_assert_eq!(cents(level_payment(t.principal, i, n as u32).unwrap()), a);
        prop_assert_eq!(s.iter().map(|x| x.principal).sum::<Money>(), t.principal);

        let mut before = loan.cents;
        let mut paid_off_early = false;
        for (k, x) in s.iter().enumerate() {
            let (principal, interest) = (cents(x.principal), cents(x.interest));
            prop_assert_eq!(interest, loan.interest(before), "installment {}", k + 1);
            prop_assert_eq!(x.total, x.principal + x.interest);
            prop_assert!(principal >= 0 && cents(x.balance) >= 0);
            prop_assert_eq!(cents(x.balance), before - principal);
            if k + 1 < n {
                if paid_off_early {
                    prop_assert!(x.total.is_zero(), "installment {} after payoff", k + 1);
                } else if cents(x.total) != a {
                    prop_assert_eq!(principal, before, "installment {} is not A", k + 1);
                }
                paid_off_early |= x.balance.is_zero();
            }
            before = cents(x.balance);
        }
        prop_assert_eq!(before, 0);
        if !paid_off_early {
            let last = cents(s[n - 1].total);
            prop_assert!(loan.last_within_bound(last - a), "last {} vs A {}", last, a);
        }
        let reference: Vec<(i64, i64)> =
            s.iter().map(|x| (cents(x.principal), cents(x.interest))).collect();
        prop_assert_eq!(reference, loan.amortized());
    }

    /// Loans of $10,000 to $100 M at up to 12 % over up to 30 years, whenever the exact
    /// margin rules out an early payoff (nearly always): every installment but the last
    /// pays A, and the last is within S_n cents of it.
    #[test]
    fn ordinary_loans_pay_the_level_payment_until_the_last(
        loan in loans(1_000_000, 10_000_000_000, 12_000_000, 360),
    ) {
        prop_assume!(loan.no_early_payoff_guaranteed());
        let s = generate(&loan.terms(Amortization::Amortized), date("2026-01-31")).unwrap();
        let a = loan.level();
        let n = s.len();
        for x in &s[..n - 1] {
            prop_assert_eq!(cents(x.total), a, "installment {}", x.number);
        }
        prop_assert!(loan.last_within_bound(cents(s[n - 1].total) - a));
    }

    /// Interest only: round(P·i) every period, all principal at the end.
    #[test]
    fn interest_only_pays_interest_then_principal(loan in any_loan()) {
        let s = generate(&loan.terms(Amortization::InterestOnly), date("2026-01-31")).unwrap();
        let n = s.len();
        prop_assert_eq!(n as u32, loan.periods());
        for x in &s {
            prop_assert_eq!(cents(x.interest), loan.interest(loan.cents));
            let principal = if x.number as usize == n { loan.cents } else { 0 };
            prop_assert_eq!(cents(x.principal), principal);
        }
    }

    /// Maturity: one payment, interest = round(P·rate/100·termMonths/12).
    #[test]
    fn maturity_is_one_payment(loan in any_loan()) {
        let t = LoanTerms { frequency: Frequency::Maturity, ..loan.terms(Amortization::InterestOnly) };
        let s = generate(&t, date("2026-01-31")).unwrap();
        prop_assert_eq!(s.len(), 1);
        let interest = round_div(
            &(big(loan.cents) * loan.rate_micro * i64::from(loan.months)),
            &big(100_000_000 * 12),
        );
        prop_assert_eq!(big(cents(s[0].interest)), interest);
        prop_assert_eq!(s[0].principal, t.principal);
        prop_assert_eq!(s[0].due_date, expected_due(date("2026-01-31"), loan.months));
    }

    /// Due dates: start + k periods in calendar months, clamped to the month's end, so
    /// strictly increasing.
    #[test]
    fn due_dates_are_monotone_and_clamped(loan in any_loan(), start in any_start()) {
        let s = generate(&loan.terms(Amortization::InterestOnly), start).unwrap();
        let months_per_period = 12 / loan.per_year;
        for x in &s {
            prop_assert_eq!(x.due_date, expected_due(start, x.number * months_per_period));
        }
        prop_assert!(s.windows(2).all(|w| w[0].due_date < w[1].due_date));
    }

    /// The integer computation is the decimal formula's number, to the representation,
    /// for what validation admits: amounts below 10^15, rates of 0-100 % with up to six
    /// decimals; and any number of periods a year up to 366.
    #[test]
    fn period_interest_in_integers_is_the_decimal_formulas(
        balance in prop_oneof![0i64..=100_000_000, 0i64..=99_999_999_999_999_999],
        rate in (0u32..=6).prop_flat_map(|scale| (0..=100 * 10i64.pow(scale), Just(scale))),
        per_year in prop_oneof![Just(12u32), Just(4), Just(1), 1u32..=366],
    ) {
        let balance = Money::from_cents(balance);
        let rate = Rate::from_percent(Decimal::new(rate.0, rate.1));
        let got = period_interest(balance, rate, per_year);
        let reference = super::period_interest_decimal(balance, rate, per_year);
        prop_assert_eq!(got, reference);
        prop_assert_eq!(got.to_string(), reference.to_string());
        prop_assert_eq!(got.amount().scale(), reference.amount().scale());
    }

    /// round(balance·i) against exact arithmetic for any balance and six-decimal rate.
    #[test]
    fn period_interest_is_exact(balance in 0i64..=10_000_000_000, loan in any_loan()) {
        let got = period_interest(Money::from_cents(balance), loan.rate(), loan.per_year);
        prop_assert_eq!(cents(got), loan.interest(balance));
    }

    /// A schedule regenerated after `skip` installments at a new rate keeps the numbers
    /// and due dates of the original and amortizes exactly what was left.
    #[test]
    fn regenerated_tails_continue_the_schedule(
        loan in any_loan(),
        amortized in any::<bool>(),
        start in any_start(),
        skip in any::<Index>(),
        new_rate in 0i64..=30_000_000,
    ) {
        let amortization =
            if amortized { Amortization::Amortized } else { Amortization::InterestOnly };
        let t = loan.terms(amortization);
        let full = generate(&t, start).unwrap();
        let skip = skip.index(full.len());
        let rest = if skip == 0 { t.principal } else { full[skip - 1].balance };
        prop_assume!(!rest.is_zero());
        let tail_terms = LoanTerms {
            principal: rest,
            rate: Exact { rate_micro: new_rate, ..loan }.rate(),
            ..t
        };
        let tail = generate_tail(&tail_terms, start, skip as u32).unwrap();
        prop_assert_eq!(tail.len(), full.len() - skip);
        for (a, b) in tail.iter().zip(&full[skip..]) {
            prop_assert_eq!((a.number, a.due_date), (b.number, b.due_date));
        }
        prop_assert_eq!(tail.iter().map(|x| x.principal).sum::<Money>(), rest);
        prop_assert!(tail.iter().all(|x| !x.balance.is_negative() && !x.principal.is_negative()));
        prop_assert!(tail.last().unwrap().balance.is_zero());
    }
}

proptest! {
    /// A due date is written as chrono writes it, into JSON text and into a `Value`, for any
    /// date chrono can hold (the years outside 0-9999 take chrono's own path).
    #[test]
    fn due_dates_are_written_as_chrono_writes_them(days in any::<i32>()) {
        let date = NaiveDate::from_num_days_from_ce_opt(days % 3_000_000)
            .unwrap_or(NaiveDate::MIN);
        let mut reference = serde_json::Serializer::new(Vec::new());
        chrono::NaiveDate::serialize(&date, &mut reference).unwrap();
        let mut fast = serde_json::Serializer::new(Vec::new());
        date_text(&date, &mut fast).unwrap();
        prop_assert_eq!(fast.into_inner(), reference.into_inner());
        prop_assert_eq!(
            date_text(&date, serde_json::value::Serializer).unwrap(),
            serde_json::to_value(date).unwrap()
        );
    }
}
