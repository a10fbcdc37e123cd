//! Every dollar received: allocation in effective-date order, payoff, money held and
//! refunded, reallocation of later payments, rescinded late notices and waived fees.
//!
//! A payment is allocated on its effective date (`receivedAt`) against what the loan owes
//! then: the billed installments' interest (oldest first), then the principal of those due,
//! then their late fees, then the principal of the next one (not due yet), then principal
//! (prepayment). A payment that reaches the payoff quote's total
//! pays the billed interest and principal, the fees, the accrued interest and the whole
//! principal: the loan is paid off and the rest is held and refunded. A payment on a loan
//! paid off (or never funded) is held and refunded whole. So every received dollar is
//! interest, principal, fees or held, exactly once.
//!
//! Payments are booked in effective-date order: one whose date is before already booked
//! payments takes those off the books, is booked, and they are booked again after it; the
//! ones whose split changed are reported ([`PaymentOutcome::reallocated`]). A late notice
//! (or fee) on an installment that is now paid on or before the notice's as-of date is
//! rescinded (waived).

use std::collections::BTreeMap;

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{fingerprint_set, Delinquency, LoanState, LoanStatus, PaidOff};
use crate::money::Money;
use crate::state::{field, str_field};

/// What a payment paid on one installment (a `Payment.Applied` item).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InstallmentPaid {
    pub number: u32,
    pub interest: Money,
    pub principal: Money,
    #[serde(default, skip_serializing_if = "no_money")]
    pub fee: Money,
}

/// How one payment is split. `interest + principal + fees + held = amount`. Every field
/// round-trips through serde (snapshots keep it); the zero and empty ones are left out.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Split {
    /// Installment interest plus accrued interest.
    pub interest: Money,
    /// Installment principal plus prepaid principal.
    pub principal: Money,
    pub fees: Money,
    /// Not applied: held for the borrower and refunded.
    pub held: Money,
    pub installments: Vec<InstallmentPaid>,
    #[serde(default, skip_serializing_if = "no_money")]
    pub prepaid: Money,
    #[serde(default, skip_serializing_if = "no_money")]
    pub accrued_interest: Money,
    /// Why money was held.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub held_reason: Option<String>,
}

/// A payment as the allocation rules applied it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AppliedPayment {
    pub payment_id: String,
    pub amount: Money,
    pub received_at: DateTime<Utc>,
    pub payment_method: Option<String>,
    pub split: Split,
    /// Outstanding principal right after this payment was booked.
    pub remaining_principal: Money,
    pub reversed: bool,
}

impl AppliedPayment {
    /// The effective date.
    pub fn effective(&self) -> NaiveDate {
        self.received_at.date_naive()
    }
}

/// A `Payment.Received` as the rules read it (v2 payload).
#[derive(Debug, Clone, PartialEq)]
pub struct PaymentIn {
    pub payment_id: String,
    pub amount: Money,
    pub received_at: DateTime<Utc>,
    pub payment_method: Option<String>,
}

impl PaymentIn {
    pub fn from_payload(p: &Value) -> Option<PaymentIn> {
        Some(PaymentIn {
            payment_id: str_field(p, "paymentId")?,
            amount: field(p, "amount")?,
            received_at: str_field(p, "receivedAt")
                .and_then(|s| DateTime::parse_from_rfc3339(&s).ok())?
                .with_timezone(&Utc),
            payment_method: str_field(p, "paymentMethod"),
        })
    }
}

/// What booking a payment did: the handler publishes it, the fold derives the same.
#[derive(Debug, Clone, PartialEq)]
pub struct PaymentOutcome {
    pub applied: AppliedPayment,
    /// Later-dated payments whose split changed: (payment id, before, after).
    pub reallocated: Vec<(String, Split, Split)>,
    /// Late notices withdrawn: (scheduleId, installment).
    pub rescinded: Vec<(String, u32)>,
    /// Late fees waived: (installment, amount).
    pub waived: Vec<(u32, Money)>,
    /// Set when this payment (or a reallocated one) paid the loan off.
    pub paid_off: Option<PaidOff>,
    /// A delinquency change the payment brought (from, to).
    pub cured: Option<(Delinquency, Delinquency)>,
}

impl InstallmentPaid {
    fn none(number: u32) -> InstallmentPaid {
        InstallmentPaid {
            number,
            interest: Money::ZERO,
            principal: Money::ZERO,
            fee: Money::ZERO,
        }
    }
}

/// The fee a payment dated `on` owes on an installment: none assessed after that date.
fn owed_fee(d: &super::Due, on: NaiveDate) -> Money {
    match d.fee_assessed_on {
        Some(assessed) if assessed <= on => d.fee,
        _ => Money::ZERO,
    }
}

fn no_money(m: &Money) -> bool {
    m.is_zero()
}

/// Up to `owed` of what is `left`.
fn take(owed: Money, left: &mut Money) -> Money {
    let x = (*left).min(owed.max_zero());
    *left -= x;
    x
}

impl LoanState {
    /// Whether a payment can be booked at all: refused only when it is a second
    /// `Payment.Received` with the id of a payment already received (an inconsistent
    /// message, not money).
    pub fn check_payment(&self, pay: &PaymentIn) -> Result<(), String> {
        if self.payment_index.contains_key(&pay.payment_id) {
            return Err(format!("payment {} was already received", pay.payment_id));
        }
        Ok(())
    }

    /// What a payment does to this loan (the state is not changed).
    pub fn decide_payment(&self, pay: &PaymentIn) -> Result<PaymentOutcome, String> {
        self.check_payment(pay)?;
        let mut after = self.clone();
        Ok(after.settle(pay))
    }

    /// Book a payment that passed [`LoanState::check_payment`].
    pub(crate) fn settle(&mut self, pay: &PaymentIn) -> PaymentOutcome {
        let was_paid_off = self.paid_off.clone();
        let effective = pay.received_at.date_naive();
        // Payments booked with a later effective date come off the books first.
        let mut later: Vec<usize> = if self.latest_effective.is_some_and(|d| d > effective) {
            (0..self.payments.len())
                .filter(|&i| !self.payments[i].reversed && self.payments[i].effective() > effective)
                .collect()
        } else {
            Vec::new()
        };
        self.latest_effective = Some(
            self.latest_effective
                .map_or(effective, |d| d.max(effective)),
        );
        for &i in later.iter().rev() {
            self.unbook(i);
        }
        let before: BTreeMap<usize, Split> = later
            .iter()
            .map(|&i| (i, self.payments[i].split.clone()))
            .collect();
        let index = self.payments.len();
        self.payment_index.insert(pay.payment_id.clone(), index);
        self.payments.push(AppliedPayment {
            payment_id: pay.payment_id.clone(),
            amount: pay.amount,
            received_at: pay.received_at,
            payment_method: pay.payment_method.clone(),
            split: Split::default(),
            remaining_principal: self.outstanding_principal,
            reversed: false,
        });
        later.sort_by_key(|&i| (self.payments[i].effective(), i));
        let order: Vec<usize> = std::iter::once(index)
            .chain(later.iter().copied())
            .collect();
        for &i in &order {
            self.book(i);
        }
        // Late notices and fees the books now contradict.
        let paid_by = |s: &LoanState, n: u32, as_of: NaiveDate| {
            s.installments
                .get(n as usize - 1)
                .and_then(|i| i.settled_on)
                .is_some_and(|d| d <= as_of)
        };
        let rescinded: Vec<(String, u32)> = self
            .late_reported
            .iter()
            .filter(|((_, n), as_of)| paid_by(self, *n, **as_of))
            .map(|(k, _)| k.clone())
            .collect();
        let mut waived: Vec<(u32, Money)> = Vec::new();
        let to_waive: Vec<u32> = self
            .fees_assessed
            .iter()
            .filter(|((_, n), as_of)| paid_by(self, *n, **as_of))
            .map(|((_, n), _)| *n)
            .filter(|n| !self.installments[*n as usize - 1].fee.is_zero())
            .collect();
        if !to_waive.is_empty() {
            // Fees come off, and the payments that paid them are booked again without them.
            for &i in order.iter().rev() {
                self.unbook(i);
            }
            for n in to_waive {
                let inst = &mut self.installments[n as usize - 1];
                // A fee paid by a payment booked before this one stays paid.
                let amount = inst.fee - inst.fee_paid;
                if amount.is_zero() || amount.is_negative() {
                    continue;
                }
                inst.fee -= amount;
                waived.push((n, amount));
            }
            for &i in &order {
                self.book(i);
            }
        }
        for k in &rescinded {
            self.late_reported.remove(k);
        }
        let reallocated = before
            .into_iter()
            .filter(|(i, old)| self.payments[*i].split != *old)
            .map(|(i, old)| {
                (
                    self.payments[i].payment_id.clone(),
                    old,
                    self.payments[i].split.clone(),
                )
            })
            .collect();
        // A payment that brings the oldest unpaid installment back within the grace period
        // cures the loan; one that shortens the arrears lowers its delinquency.
        let mut cured = None;
        if self.status == LoanStatus::PaidOff && self.delinquency != Delinquency::Current {
            cured = Some((self.delinquency, Delinquency::Current));
            self.delinquency = Delinquency::Current;
        } else if self.is_active() && self.delinquency != Delinquency::Current {
            let on = self
                .delinquency_as_of
                .map_or(effective, |d| d.max(effective));
            let now = self.delinquency_on(on);
            let better = now < self.delinquency
                && (self.delinquency != Delinquency::Defaulted || now == Delinquency::Current);
            if better {
                cured = Some((self.delinquency, now));
                self.delinquency = now;
                self.status = LoanStatus::Funded;
            }
        }
        let paid_off = match (&was_paid_off, &self.paid_off) {
            (None, Some(p)) => Some(p.clone()),
            _ => None,
        };
        PaymentOutcome {
            applied: self.payments[index].clone(),
            reallocated,
            rescinded,
            waived,
            paid_off,
            cured,
        }
    }

    /// The split of `amount` received on `on`, on the books as they stand.
    fn allocate(&self, amount: Money, on: NaiveDate) -> Split {
        let mut split = Split::default();
        if !self.is_active() {
            split.held = amount;
            split.held_reason = Some(match self.status {
                LoanStatus::PaidOff => format!("loan {} is already paid off", self.loan_id),
                _ => format!("loan {} is not funded", self.loan_id),
            });
            return split;
        }
        let mut per: BTreeMap<u32, InstallmentPaid> = BTreeMap::new();
        // The quote is at least the principal: a smaller payment cannot pay the loan off.
        let quote = (amount >= self.outstanding_principal).then(|| self.payoff_quote(on));
        let mut left = amount;
        if let Some(quote) = quote.filter(|q| amount >= q.total) {
            // The payoff: everything due, the fees, the accrued interest, all the principal.
            for d in self.dues() {
                let e = per
                    .entry(d.number)
                    .or_insert_with(|| InstallmentPaid::none(d.number));
                if d.due_date <= on {
                    e.interest = take(d.interest, &mut left);
                    e.principal = take(d.principal, &mut left);
                }
                e.fee = take(owed_fee(&d, on), &mut left);
            }
            split.accrued_interest = take(quote.accrued_interest, &mut left);
            let installment_principal: Money = per.values().map(|p| p.principal).sum();
            split.prepaid = take(
                self.outstanding_principal - installment_principal,
                &mut left,
            );
            split.held = left;
            if !left.is_zero() {
                split.held_reason = Some(format!(
                    "{amount} is above the payoff amount of {} on {on}",
                    quote.total
                ));
            }
        } else {
            let billed = self.billed(on);
            // Interest of every billed installment, then the principal of those due, then
            // their fees, then the principal of the one not due yet (paying ahead).
            for (part, due) in [(0, None), (1, Some(true)), (2, None), (1, Some(false))] {
                for d in &billed {
                    if left.is_zero() {
                        break;
                    }
                    if due.is_some_and(|due| due != (d.due_date <= on)) {
                        continue;
                    }
                    let owed = [d.interest, d.principal, owed_fee(d, on)][part];
                    let x = take(owed, &mut left);
                    if x.is_zero() {
                        continue;
                    }
                    let e = per
                        .entry(d.number)
                        .or_insert_with(|| InstallmentPaid::none(d.number));
                    *[&mut e.interest, &mut e.principal, &mut e.fee][part] += x;
                }
            }
            let installment_principal: Money = per.values().map(|p| p.principal).sum();
            split.prepaid = take(
                self.outstanding_principal - installment_principal,
                &mut left,
            );
            // Only when the principal is used up before the quote is reached (interest
            // accrued past the last installment): the rest is interest.
            split.accrued_interest = left;
        }
        split.installments = per
            .into_values()
            .filter(|p| !(p.interest.is_zero() && p.principal.is_zero() && p.fee.is_zero()))
            .collect();
        split.interest =
            split.installments.iter().map(|p| p.interest).sum::<Money>() + split.accrued_interest;
        split.principal = split
            .installments
            .iter()
            .map(|p| p.principal)
            .sum::<Money>()
            + split.prepaid;
        split.fees = split.installments.iter().map(|p| p.fee).sum();
        split
    }

    /// Allocate payment `i` on the books as they stand and book it.
    fn book(&mut self, i: usize) {
        let (amount, on) = (self.payments[i].amount, self.payments[i].effective());
        let split = self.allocate(amount, on);
        for paid in &split.installments {
            if let Some(inst) = self.installments.get_mut(paid.number as usize - 1) {
                inst.interest_paid += paid.interest;
                inst.principal_paid += paid.principal;
                inst.fee_paid += paid.fee;
                if inst.settled_on.is_none() && inst.paid() {
                    inst.settled_on = Some(on);
                }
            }
        }
        self.outstanding_principal -= split.principal;
        self.paid_principal += split.principal;
        self.paid_interest += split.interest;
        self.paid_fees += split.fees;
        self.held += split.held;
        self.advance_first_open();
        if self.is_active() && self.outstanding_principal.is_zero() {
            self.status = LoanStatus::PaidOff;
            self.paid_off = Some(PaidOff {
                final_payment_id: self.payments[i].payment_id.clone(),
                paid_off_at: self.payments[i].received_at,
            });
        }
        let p = &mut self.payments[i];
        p.split = split;
        p.remaining_principal = self.outstanding_principal;
    }

    /// Take payment `i` off the books (its split is kept, to compare).
    fn unbook(&mut self, i: usize) {
        let split = self.payments[i].split.clone();
        for paid in &split.installments {
            if let Some(inst) = self.installments.get_mut(paid.number as usize - 1) {
                inst.interest_paid -= paid.interest;
                inst.principal_paid -= paid.principal;
                inst.fee_paid -= paid.fee;
                if !inst.paid() {
                    inst.settled_on = None;
                }
                self.first_open = self.first_open.min(paid.number as usize - 1);
            }
        }
        self.outstanding_principal += split.principal;
        self.paid_principal -= split.principal;
        self.paid_interest -= split.interest;
        self.paid_fees -= split.fees;
        self.held -= split.held;
        if self.status == LoanStatus::PaidOff && !self.outstanding_principal.is_zero() {
            self.paid_off = None;
            self.status = if self.delinquency == Delinquency::Defaulted {
                LoanStatus::Defaulted
            } else {
                LoanStatus::Funded
            };
        }
    }

    fn advance_first_open(&mut self) {
        while self
            .installments
            .get(self.first_open)
            .is_some_and(super::InstallmentState::settled)
        {
            self.first_open += 1;
        }
    }

    /// The index of the applied payment a reversal undoes, or why it cannot.
    pub fn decide_reversal(&self, payment_id: &str) -> Result<usize, String> {
        match self.payment_index.get(payment_id) {
            None => Err(format!(
                "payment {payment_id} was never received on loan {}",
                self.loan_id
            )),
            Some(&i) if self.payments[i].reversed => {
                Err(format!("payment {payment_id} is already reversed"))
            }
            Some(&i) => Ok(i),
        }
    }

    /// Undo exactly what the payment applied (and what it held: the money never arrived).
    pub(crate) fn apply_reversal(&mut self, index: usize) {
        self.unbook(index);
        self.payments[index].reversed = true;
    }
}

/// The payments a snapshot leaves out of the loan state: the oldest ones (by effective
/// date), which only a payment dated before them, a reversal of one of them or a repeat of
/// one of their ids can touch again. What is kept of them is what the state view counts
/// and what tells such an event apart: their count, the latest effective date among them
/// (the horizon) and a [`FINGERPRINT_BITS`]-bit fingerprint of each id.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ArchivedPayments {
    /// Archived payments not reversed.
    pub applied: u32,
    pub reversed: u32,
    /// The latest effective date of an archived payment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub horizon: Option<NaiveDate>,
    /// The id fingerprints ([`id_fingerprint`]), sorted and distinct; stored as one base64
    /// text of their Golomb-Rice code ([`fingerprint_set`]: about 2 bytes each).
    #[serde(default, skip_serializing_if = "Vec::is_empty", with = "rice_coded")]
    pub ids: Vec<u32>,
}

impl ArchivedPayments {
    pub fn is_empty(&self) -> bool {
        self.applied == 0 && self.reversed == 0
    }

    /// Whether `payment_id` may be one of the archived payments (a fingerprint match:
    /// `false` is certain, `true` may be a collision).
    pub fn may_hold(&self, payment_id: &str) -> bool {
        self.ids.binary_search(&id_fingerprint(payment_id)).is_ok()
    }
}

/// The bits of an archived payment id's fingerprint. A new payment's id matches one of `n`
/// archived fingerprints by chance with probability `n / 2^bits`, and then every read whose
/// tail holds it folds the whole history; each bit more costs `n / 8` bytes on every
/// snapshot read. With reads costing a unit per 4 KB, a whole-history read ~0.5 unit per
/// event and a payment in ~5.5 reads' tails (snapshots every 10 events), the expected units
/// per read are lowest at about `log2(n) + 16` bits: 26 at 1,000 archived payments, 28 at
/// 5,000 (BENCHMARKS.md has the figures). A fixed width cannot grow with `n` (the ids are
/// gone once archived); 28 bits suits the loans that archive thousands of payments, where
/// it matters, and costs young loans a few hundred bytes.
pub const FINGERPRINT_BITS: u32 = 28;

/// A stable [`FINGERPRINT_BITS`]-bit fingerprint of a payment id (the first bits of its
/// SHA-256).
pub fn id_fingerprint(payment_id: &str) -> u32 {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(payment_id.as_bytes());
    u32::from_be_bytes([digest[0], digest[1], digest[2], digest[3]]) >> (32 - FINGERPRINT_BITS)
}

/// A sorted set of fingerprints stored as the base64 text of its Golomb-Rice code.
mod rice_coded {
    use base64::engine::general_purpose::STANDARD_NO_PAD;
    use base64::Engine;
    use serde::de::Error as _;
    use serde::ser::Error as _;
    use serde::{Deserialize, Deserializer, Serializer};

    use super::{fingerprint_set, FINGERPRINT_BITS};

    pub fn serialize<S: Serializer>(sorted: &[u32], s: S) -> Result<S::Ok, S::Error> {
        let bytes = fingerprint_set::encode(sorted, FINGERPRINT_BITS).map_err(S::Error::custom)?;
        s.serialize_str(&STANDARD_NO_PAD.encode(bytes))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u32>, D::Error> {
        let text = String::deserialize(d)?;
        let bytes = STANDARD_NO_PAD
            .decode(text.as_bytes())
            .map_err(|e| D::Error::custom(format!("fingerprint set: {e}")))?;
        let (width, ids) = fingerprint_set::decode(&bytes).map_err(D::Error::custom)?;
        if width != FINGERPRINT_BITS {
            return Err(D::Error::custom(format!(
                "fingerprint set: {width}-bit fingerprints, {FINGERPRINT_BITS} expected"
            )));
        }
        Ok(ids)
    }
}

impl LoanState {
    /// Leave all but the `keep` latest payments (by effective date, then booking order) out
    /// of the state: they move to [`ArchivedPayments`]. The state then folds further events
    /// exactly as the whole history does unless one reaches an archived payment, which
    /// [`LoanState::folds_exactly`] tells beforehand.
    pub(crate) fn archive_payments(&mut self, keep: usize) {
        if self.payments.len() <= keep {
            return;
        }
        let mut by_date: Vec<usize> = (0..self.payments.len()).collect();
        by_date.sort_by_key(|&i| (self.payments[i].effective(), i));
        let mut archive = vec![false; self.payments.len()];
        for &i in &by_date[..self.payments.len() - keep] {
            archive[i] = true;
        }
        let archived = &mut self.archived;
        let mut kept = Vec::with_capacity(keep);
        for (p, archive) in std::mem::take(&mut self.payments).into_iter().zip(archive) {
            if !archive {
                kept.push(p);
                continue;
            }
            if p.reversed {
                archived.reversed += 1;
            } else {
                archived.applied += 1;
            }
            archived.horizon = archived.horizon.max(Some(p.effective()));
            archived.ids.push(id_fingerprint(&p.payment_id));
        }
        archived.ids.sort_unstable();
        archived.ids.dedup();
        self.payments = kept;
        self.index_payments();
    }

    /// Rebuild the payment id index from `payments`.
    pub(crate) fn index_payments(&mut self) {
        self.payment_index = self
            .payments
            .iter()
            .enumerate()
            .map(|(i, p)| (p.payment_id.clone(), i))
            .collect();
    }

    /// Whether folding `events` (upcast, in order) onto this state gives what the whole
    /// history gives. Always so when no payment was archived; otherwise not when an event
    /// can reach an archived payment: a payment dated before the archive's horizon (it
    /// would re-book archived ones), a reversal or a repeat of an archived payment id, or a
    /// payoff record naming one. Then the caller folds the whole history instead.
    pub fn folds_exactly(&self, events: &[crate::envelope::EventEnvelope]) -> bool {
        if self.archived.is_empty() {
            return true;
        }
        events.iter().all(|e| {
            let p = &e.payload;
            match e.event_type.as_str() {
                "Payment.Received" => match PaymentIn::from_payload(p) {
                    Some(pay) => {
                        !self.archived.may_hold(&pay.payment_id)
                            && self
                                .archived
                                .horizon
                                .is_none_or(|h| pay.received_at.date_naive() >= h)
                    }
                    None => true,
                },
                "Payment.Reversed" => {
                    str_field(p, "paymentId").is_none_or(|id| !self.archived.may_hold(&id))
                }
                "Loan.PaidOff" => {
                    str_field(p, "finalPaymentId").is_none_or(|id| !self.archived.may_hold(&id))
                }
                _ => true,
            }
        })
    }
}
