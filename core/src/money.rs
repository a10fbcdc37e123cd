//! Exact money and rates.
//!
//! Money is a [`rust_decimal::Decimal`] in cents precision, never a float. On the wire it is
//! a string with exactly two decimals (`"100000.00"`). A JSON number is accepted on input:
//! serde_json hands it over as an f64, and its shortest round-trip decimal form is exactly the
//! number the client wrote whenever that has at most 15 significant digits, which every
//! amount up to 9,999,999,999,999.99 does; larger numbers must be sent as strings.
//! More than two decimals (after dropping trailing zeros) is a validation error.
//!
//! Rounding rule everywhere: half away from zero, to the cent ([`round_cents`]).
//!
//! An amount has at most [`MONEY_INTEGER_DIGITS`] digits before the point (below a
//! quadrillion). A loan's sums (payments, interest, fees, held excess) then stay far inside
//! `Decimal`'s range, whatever the history holds: a fold never overflows.

use std::fmt;
use std::str::FromStr;

use rust_decimal::{Decimal, RoundingStrategy};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;

/// The largest number of significant digits an f64 carries exactly through its shortest
/// decimal representation.
const F64_EXACT_DIGITS: usize = 15;

/// Digits before the point an amount may have: 999,999,999,999,999.99 at most.
pub const MONEY_INTEGER_DIGITS: u32 = 15;

/// Whether an amount has at most [`MONEY_INTEGER_DIGITS`] digits before the point.
pub fn within_money_range(d: Decimal) -> bool {
    d.abs() < Decimal::from(10u64.pow(MONEY_INTEGER_DIGITS))
}

/// Round to the cent, half away from zero (2.345 -> 2.35, -2.345 -> -2.35).
pub fn round_cents(d: Decimal) -> Decimal {
    let mut r = d.round_dp_with_strategy(2, RoundingStrategy::MidpointAwayFromZero);
    r.rescale(2);
    r
}

/// Parse a JSON value (string or number) into an exact decimal with at most `max_dp`
/// decimals. The error is a human message without the field name.
pub fn decimal_from_json(v: &Value, max_dp: u32) -> Result<Decimal, String> {
    let d = match v {
        Value::String(s) => parse_decimal_text(s)?,
        Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                Decimal::from(i)
            } else if let Some(u) = n.as_u64() {
                Decimal::from(u)
            } else {
                let f = n.as_f64().ok_or("not a finite number")?;
                let text = format!("{f}");
                let digits = text.chars().filter(|c| c.is_ascii_digit()).count();
                if digits > F64_EXACT_DIGITS {
                    return Err(format!(
                        "number {text} has more than {F64_EXACT_DIGITS} significant digits; send it as a string"
                    ));
                }
                parse_decimal_text(&text)?
            }
        }
        _ => return Err("expected a decimal string such as \"100.00\" or a number".into()),
    };
    if d.normalize().scale() > max_dp {
        return Err(format!("{d} has more than {max_dp} decimals"));
    }
    Ok(d)
}

fn parse_decimal_text(s: &str) -> Result<Decimal, String> {
    let ok_chars = !s.is_empty()
        && s.chars()
            .enumerate()
            .all(|(i, c)| c.is_ascii_digit() || c == '.' || (i == 0 && c == '-'));
    if !ok_chars {
        return Err(format!("{s:?} is not a plain decimal number"));
    }
    Decimal::from_str_exact(s).map_err(|e| format!("{s:?} is not a decimal number: {e}"))
}

/// An exact amount of money in cents precision.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Money(Decimal);

impl Money {
    pub const ZERO: Money = Money(Decimal::ZERO);

    /// Build from a decimal, rounding half away from zero to the cent.
    pub fn round(d: Decimal) -> Money {
        Money(round_cents(d))
    }

    /// Whole cents, exact.
    pub fn from_cents(cents: i64) -> Money {
        Money(Decimal::new(cents, 2))
    }

    /// The amount in whole cents when it is not negative and holds no fraction of a cent:
    /// every stored amount. Amounts are kept at two decimals (`round`, `from_cents`, and
    /// sums of those), so the rescale is rarely needed.
    fn plain_cents(self) -> Option<i128> {
        let mut d = self.0;
        if d.scale() != 2 {
            d.rescale(2);
        }
        let cents = d.mantissa();
        (d.scale() == 2 && cents >= 0 && !d.is_sign_negative()).then_some(cents)
    }

    /// Room for any amount [`Money::plain_text`] writes: the 39 digits of `i128::MAX`, the
    /// point and two decimals.
    pub(crate) const TEXT_LEN: usize = 44;

    /// The text of a non-negative amount at two places (the common case: a schedule writes
    /// 1,440 amounts), the same as `Display`, assembled in `buf` on the stack: `collect_str`
    /// would go through the formatting machinery into a temporary `String`.
    pub(crate) fn plain_text(self, buf: &mut [u8; Money::TEXT_LEN]) -> Option<&str> {
        let cents = self.plain_cents()?;
        let mut whole = itoa::Buffer::new();
        // In 64 bits when it fits (every amount validation admits): dividing 128-bit
        // integers is a call into the runtime.
        let (whole, fraction) = match u64::try_from(cents) {
            Ok(c) => (whole.format(c / 100).as_bytes(), (c % 100) as u8),
            Err(_) => (whole.format(cents / 100).as_bytes(), (cents % 100) as u8),
        };
        buf[..whole.len()].copy_from_slice(whole);
        buf[whole.len()..whole.len() + 3].copy_from_slice(&[
            b'.',
            b'0' + fraction / 10,
            b'0' + fraction % 10,
        ]);
        std::str::from_utf8(&buf[..whole.len() + 3]).ok()
    }

    pub fn amount(self) -> Decimal {
        self.0
    }

    pub fn is_zero(self) -> bool {
        self.0.is_zero()
    }

    pub fn is_negative(self) -> bool {
        self.0.is_sign_negative() && !self.0.is_zero()
    }

    /// Zero for negative amounts.
    pub fn max_zero(self) -> Money {
        if self.is_negative() {
            Money::ZERO
        } else {
            self
        }
    }

    pub fn min(self, other: Money) -> Money {
        if self <= other {
            self
        } else {
            other
        }
    }

    pub fn max(self, other: Money) -> Money {
        if self >= other {
            self
        } else {
            other
        }
    }
}

impl std::ops::Add for Money {
    type Output = Money;
    fn add(self, rhs: Money) -> Money {
        Money(self.0 + rhs.0)
    }
}

impl std::ops::Sub for Money {
    type Output = Money;
    fn sub(self, rhs: Money) -> Money {
        Money(self.0 - rhs.0)
    }
}

impl std::ops::AddAssign for Money {
    fn add_assign(&mut self, rhs: Money) {
        self.0 += rhs.0;
    }
}

impl std::ops::SubAssign for Money {
    fn sub_assign(&mut self, rhs: Money) {
        self.0 -= rhs.0;
    }
}

impl std::iter::Sum for Money {
    fn sum<I: Iterator<Item = Money>>(iter: I) -> Money {
        iter.fold(Money::ZERO, |a, b| a + b)
    }
}

impl fmt::Display for Money {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The common case written from the integer of cents (a schedule writes thousands
        // of amounts): the same text as `Decimal`'s own formatting, which the rest uses.
        if let Some(cents) = self.plain_cents() {
            return write!(f, "{}.{:02}", cents / 100, cents % 100);
        }
        let mut d = self.0;
        d.rescale(2);
        write!(f, "{d}")
    }
}

impl FromStr for Money {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        decimal_from_json(&Value::String(s.to_string()), 2).map(Money)
    }
}

impl Serialize for Money {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.plain_text(&mut [0; Money::TEXT_LEN]) {
            Some(text) => s.serialize_str(text),
            None => s.collect_str(self),
        }
    }
}

impl<'de> Deserialize<'de> for Money {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = Value::deserialize(d)?;
        decimal_from_json(&v, 2)
            .map(Money)
            .map_err(serde::de::Error::custom)
    }
}

/// An annual interest rate in percent ("7.5" is 7.5 %), exact, at most 6 decimals.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct Rate(Decimal);

impl Rate {
    pub const MAX_DECIMALS: u32 = 6;

    pub fn percent(self) -> Decimal {
        self.0
    }

    /// A rate of `percent` % (for defaults; parsed rates come through `FromStr`).
    pub fn from_percent(percent: Decimal) -> Rate {
        Rate(percent)
    }

    /// The periodic rate as a fraction: 7.5 % a year over 12 periods is 0.00625.
    pub fn periodic(self, periods_per_year: u32) -> Decimal {
        self.0 / Decimal::from(100) / Decimal::from(periods_per_year)
    }
}

impl FromStr for Rate {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        decimal_from_json(&Value::String(s.to_string()), Rate::MAX_DECIMALS).map(Rate)
    }
}

impl fmt::Display for Rate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0.normalize())
    }
}

impl Serialize for Rate {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Rate {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = Value::deserialize(d)?;
        decimal_from_json(&v, Rate::MAX_DECIMALS)
            .map(Rate)
            .map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn money(v: Value) -> Result<Money, String> {
        decimal_from_json(&v, 2).map(Money)
    }

    #[test]
    fn strings_and_numbers_become_exact_cents() {
        assert_eq!(money(json!("100000.00")).unwrap().to_string(), "100000.00");
        assert_eq!(money(json!(100000)).unwrap().to_string(), "100000.00");
        assert_eq!(money(json!(0.1)).unwrap().to_string(), "0.10");
        assert_eq!(money(json!(1234.56)).unwrap().to_string(), "1234.56");
        assert_eq!(money(json!("12.5")).unwrap().to_string(), "12.50");
        assert_eq!(money(json!("1.230")).unwrap().to_string(), "1.23");
        assert_eq!(
            money(json!(9999999999999.99)).unwrap().to_string(),
            "9999999999999.99"
        );
    }

    #[test]
    fn more_than_two_decimals_and_junk_are_refused() {
        assert!(money(json!("1.005")).is_err());
        assert!(money(json!(1.005)).is_err());
        assert!(money(json!("1e5")).is_err());
        assert!(money(json!(" 1")).is_err());
        assert!(money(json!("")).is_err());
        assert!(money(json!(true)).is_err());
        assert!(money(json!(null)).is_err());
        assert!(money(json!(12345678901234567.0)).is_err());
    }

    #[test]
    fn rounding_is_half_away_from_zero() {
        let d = |s: &str| Decimal::from_str(s).unwrap();
        assert_eq!(round_cents(d("2.345")).to_string(), "2.35");
        assert_eq!(round_cents(d("2.355")).to_string(), "2.36");
        assert_eq!(round_cents(d("-2.345")).to_string(), "-2.35");
        assert_eq!(round_cents(d("2.344999")).to_string(), "2.34");
        assert_eq!(round_cents(d("7")).to_string(), "7.00");
    }

    #[test]
    fn money_round_trips_through_json_as_a_string() {
        let m: Money = serde_json::from_value(json!(42.5)).unwrap();
        assert_eq!(serde_json::to_value(m).unwrap(), json!("42.50"));
    }

    proptest::proptest! {
        /// An amount's text, through `Display` and through serde, is the decimal's own
        /// rounded to cents, whatever scale and sign the decimal holds.
        #[test]
        fn amounts_are_written_as_their_decimal_at_two_places(
            mantissa in proptest::prop_oneof![-100_000i64..100_000, proptest::num::i64::ANY],
            scale in 0u32..=6,
        ) {
            let m = Money(Decimal::new(mantissa, scale));
            let mut d = m.0;
            d.rescale(2);
            proptest::prop_assert_eq!(m.to_string(), d.to_string());
            proptest::prop_assert_eq!(serde_json::to_value(m).unwrap(), json!(d.to_string()));
        }
    }

    #[test]
    fn rates_are_exact_percent() {
        let r: Rate = serde_json::from_value(json!("7.5")).unwrap();
        assert_eq!(r.periodic(12), Decimal::from_str("0.00625").unwrap());
        let r: Rate = serde_json::from_value(json!(7.25)).unwrap();
        assert_eq!(r.to_string(), "7.25");
        assert!(serde_json::from_value::<Rate>(json!("1.1234567")).is_err());
    }
}
