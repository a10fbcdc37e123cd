//! The `Loan` aggregate: a pure fold over the loan's stream, and the business rules that
//! decide on it.
//!
//! # Money model
//! - Funding sets the outstanding principal to `fundedAmount` and derives the schedule
//!   ([`crate::schedule`]) from the loan's terms; `Loan.Modified` with a new rate or term
//!   regenerates the installments not yet due and not yet paid for the principal they must
//!   carry (see [`LoanState::decide_modification`]).
//! - A construction loan (`loanType: construction`) is funded with an initial advance and
//!   drawn on: a disbursed draw adds its amount to the outstanding principal on its date and
//!   regenerates the installments due after that date ([`LoanState::decide_disbursal`]), so
//!   the principals of the effective schedule always sum to funded + disbursed.
//! - A payment's effective date is its `receivedAt`. Payments are allocated in effective
//!   date order ([`payments`]): one recorded after a later-dated one re-derives the later
//!   allocations. A payment pays the billed installments' interest, oldest first, then
//!   their principal, then their late fees; the rest prepays principal. One that reaches
//!   the payoff quote ([`LoanState::payoff_quote`]) pays the loan off, and what exceeds it
//!   is held and refunded, as is a payment on a loan paid off or never funded.
//! - Delinquency ([`delinquency`]) follows the days past due of the oldest unpaid
//!   installment; the daily job records it (`Loan.StatusChanged`, `Payment.Late`,
//!   `Payment.LateFeeAssessed`, `Loan.Defaulted`), a payment that cures the loan brings it
//!   back to `current`.
//! - `Payment.Reversed` undoes exactly what the payment applied.
//! - Draw approvals are decided on the loan's stream (see [`crate::catalog`]).
//!
//! # Inputs and records
//! The fold derives its money from the loan's *inputs* (`Loan.*` facts, `Payment.Received`,
//! `Payment.Reversed`, `Loan.DrawSubmitted`, `Loan.DrawDisbursed`, and the daily job's
//! `Payment.Late`, `Payment.LateFeeAssessed`, `Loan.StatusChanged`) with the same rules the
//! handlers use. The handlers' outputs (`PaymentSchedule.Generated`, `Payment.Applied`,
//! `Payment.Reallocated`, `Payment.ExcessHeld`, `Refund.Due`, `Payment.LateRescinded`,
//! `Payment.LateFeeWaived`, `Loan.PaidOff`, `Draw.*`) are published records of those
//! decisions. So a payment received before the schedule record landed in the stream (or
//! two payments handled back to back) is allocated exactly as the fold of the full
//! history says. A change of a rule (e.g. the schedule formula) must therefore come with a
//! new event version, like any schema change.

pub mod delinquency;
pub mod fingerprint_set;
pub mod payments;

use std::collections::{BTreeMap, BTreeSet, HashMap};

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::{field, money_field, str_field};
use crate::envelope::{derived_id, format_time, EventEnvelope};
use crate::money::{Money, Rate};
use crate::schedule::{self, Amortization, Frequency, Installment, LoanTerms};

pub use delinquency::{Delinquency, LatePolicy, PayoffQuote};
pub use payments::{
    AppliedPayment, ArchivedPayments, InstallmentPaid, PaymentIn, PaymentOutcome, Split,
};

/// The handler whose name derives schedule ids; the fold derives the same ids.
pub const SCHEDULE_HANDLER: &str = "payment-schedule";
pub use crate::catalog::{DEFAULT_DEFAULT_AFTER_DAYS, DEFAULT_GRACE_DAYS};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum LoanStatus {
    #[default]
    Unknown,
    Created,
    Approved,
    Funded,
    PaidOff,
    Defaulted,
}

impl LoanStatus {
    /// The name used in `Loan.StatusChanged` and the state view.
    pub fn as_str(self) -> &'static str {
        match self {
            LoanStatus::Unknown => "unknown",
            LoanStatus::Created => "created",
            LoanStatus::Approved => "approved",
            LoanStatus::Funded => "funded",
            LoanStatus::PaidOff => "paid_off",
            LoanStatus::Defaulted => "defaulted",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum LoanType {
    /// Funded in full at once; draws are refused.
    #[default]
    Term,
    /// Funded with an initial advance, the rest drawn as construction progresses.
    Construction,
}

/// The loan's terms as the loan events set them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LoanTermsView {
    pub amount: Money,
    pub interest_rate: Rate,
    pub term_months: u32,
    pub amortization: Amortization,
    pub payment_frequency: Frequency,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fund_id: Option<String>,
    #[serde(default)]
    pub loan_type: LoanType,
    #[serde(default)]
    pub grace_period_days: Option<u32>,
    #[serde(default)]
    pub late_fee_percent: Option<Rate>,
    #[serde(default)]
    pub late_fee_minimum: Option<Money>,
    #[serde(default)]
    pub late_fee_maximum: Option<Money>,
    #[serde(default)]
    pub default_after_days: Option<u32>,
}

/// One installment of the current schedule and what has been paid on it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InstallmentState {
    pub number: u32,
    pub due_date: NaiveDate,
    pub principal: Money,
    pub interest: Money,
    pub principal_paid: Money,
    pub interest_paid: Money,
    /// Late fee assessed on this installment (zero when none, or waived).
    pub fee: Money,
    pub fee_paid: Money,
    /// The as-of date of the fee's assessment: a payment dated before it does not owe it.
    pub fee_assessed_on: Option<NaiveDate>,
    /// The effective date of the payment that paid its interest and principal in full.
    pub settled_on: Option<NaiveDate>,
    /// The schedule this installment came from (kept installments keep theirs when a
    /// schedule is regenerated).
    pub schedule_id: String,
}

impl InstallmentState {
    /// Interest, principal and fee paid.
    fn settled(&self) -> bool {
        self.interest_paid >= self.interest
            && self.principal_paid >= self.principal
            && self.fee_paid >= self.fee
    }

    /// Interest and principal paid (what delinquency counts).
    pub fn paid(&self) -> bool {
        self.interest_paid >= self.interest && self.principal_paid >= self.principal
    }

    fn touched(&self) -> bool {
        !self.interest_paid.is_zero() || !self.principal_paid.is_zero()
    }
}

/// What is still owed on one installment.
#[derive(Debug, Clone, PartialEq)]
pub struct Due {
    pub number: u32,
    pub due_date: NaiveDate,
    pub interest: Money,
    pub principal: Money,
    /// Unpaid late fee.
    pub fee: Money,
    /// When the fee was assessed.
    pub fee_assessed_on: Option<NaiveDate>,
    pub schedule_id: String,
}

impl Due {
    /// Interest and principal owed (what `Payment.Late` reports).
    pub fn amount(&self) -> Money {
        self.interest + self.principal
    }
}

/// A regenerated schedule.
#[derive(Debug, Clone, PartialEq)]
pub struct Regeneration {
    pub schedule_id: String,
    pub supersedes: Option<String>,
    pub rate: Rate,
    pub term_months: u32,
    /// Installments from number `m + 1` on; the first `m` are kept.
    pub installments: Vec<Installment>,
}

/// A draw decided on the loan.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DrawCommitment {
    pub draw_id: String,
    pub requested: Money,
    pub decision: DrawDecision,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum DrawDecision {
    Approved(Money),
    Rejected(String),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PaidOff {
    pub final_payment_id: String,
    pub paid_off_at: DateTime<Utc>,
}

/// The folded state of a `Loan` aggregate. It round-trips through serde whole (private
/// fields included): a snapshot stores it ([`super::snapshot`]).
#[serde_with::serde_as]
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct LoanState {
    pub loan_id: String,
    pub borrower_id: Option<String>,
    pub status: LoanStatus,
    pub approved: bool,
    pub terms: Option<LoanTermsView>,
    pub funded_amount: Option<Money>,
    pub funded_at: Option<DateTime<Utc>>,
    pub funded_on: Option<NaiveDate>,
    pub outstanding_principal: Money,
    pub paid_principal: Money,
    /// Installment interest and accrued (per diem) interest paid.
    pub paid_interest: Money,
    pub paid_fees: Money,
    /// Received money not applied to the loan, owed back to the borrower.
    pub held: Money,
    pub schedule_id: Option<String>,
    pub installments: Vec<InstallmentState>,
    /// Index of the first installment not settled (all before it are).
    pub(crate) first_open: usize,
    pub payments: Vec<AppliedPayment>,
    /// Where each payment id is in `payments` (rebuilt when a snapshot is read).
    #[serde(skip)]
    pub(crate) payment_index: HashMap<String, usize>,
    /// The payments a snapshot left out (only their count and a fingerprint of their ids
    /// are kept: see [`crate::state::snapshot`]); empty in a fold of the whole history.
    #[serde(default)]
    pub(crate) archived: ArchivedPayments,
    /// The latest effective date of a payment booked (reversed ones included).
    pub(crate) latest_effective: Option<NaiveDate>,
    /// Payment.Received events the rules refused (unreadable, or a duplicate payment id).
    pub refused_payments: u32,
    pub draws: Vec<DrawCommitment>,
    pub draws_committed: Money,
    pub draws_disbursed: Money,
    disbursed_draws: BTreeSet<String>,
    pub paid_off: Option<PaidOff>,
    /// (scheduleId, installment) with a standing Payment.Late, and its as-of date.
    // JSON object keys are strings: maps keyed by a pair are stored as a list of pairs.
    #[serde_as(as = "Vec<(_, _)>")]
    pub late_reported: BTreeMap<(String, u32), NaiveDate>,
    /// (scheduleId, installment) with a late fee assessed (waived ones included), and the
    /// as-of date of the assessment.
    #[serde_as(as = "Vec<(_, _)>")]
    pub fees_assessed: BTreeMap<(String, u32), NaiveDate>,
    /// Delinquency as the daily job (and curing payments) recorded it.
    pub delinquency: Delinquency,
    /// The as-of date of the last delinquency record.
    pub delinquency_as_of: Option<NaiveDate>,
    pub version: u64,
}

impl LoanState {
    /// Fold a loan's history (in sequence order, upcast).
    pub fn fold(history: &[EventEnvelope]) -> LoanState {
        let mut s = LoanState::default();
        for e in history {
            s.apply(e);
        }
        s
    }

    /// Apply one event. Events the rules refuse change nothing (their handler sent them to
    /// the DLQ with the reason).
    pub fn apply(&mut self, e: &EventEnvelope) {
        self.version = e.sequence;
        let p = &e.payload;
        match e.event_type.as_str() {
            "Loan.Created" if self.status == LoanStatus::Unknown => {
                self.loan_id = e.aggregate_id.clone();
                self.borrower_id = str_field(p, "borrowerId");
                self.status = LoanStatus::Created;
                self.terms = Deserialize::deserialize(&**p).ok();
            }
            "Loan.Approved" => {
                self.approved = true;
                if self.status == LoanStatus::Created {
                    self.status = LoanStatus::Approved
                }
            }
            "Loan.Funded" if self.funded_amount.is_none() => self.apply_funded(e),
            "Loan.Modified" => match self.decide_modification(e) {
                Ok(Some(r)) => self.apply_regeneration(r),
                Ok(None) => self.update_terms(p),
                Err(_) => {}
            },
            "Payment.Received" => match PaymentIn::from_payload(p) {
                Some(pay) if self.check_payment(&pay).is_ok() => {
                    self.settle(&pay);
                }
                _ => self.refused_payments += 1,
            },
            "Payment.Reversed" => {
                if let Some(i) =
                    str_field(p, "paymentId").and_then(|id| self.decide_reversal(&id).ok())
                {
                    self.apply_reversal(i);
                }
            }
            "Payment.Late" => {
                if let Some(n) = p.get("installment").and_then(Value::as_u64) {
                    if let Some(key) = self.installment_key(p, n as u32) {
                        let as_of = field(p, "asOf").unwrap_or(e.occurred_at.date_naive());
                        self.late_reported.insert(key, as_of);
                    }
                }
            }
            "Payment.LateFeeAssessed" => {
                let n = p.get("installment").and_then(Value::as_u64).unwrap_or(0) as u32;
                if let Some(key) = self.installment_key(p, n) {
                    let as_of = field(p, "asOf").unwrap_or(e.occurred_at.date_naive());
                    if let std::collections::btree_map::Entry::Vacant(fee) =
                        self.fees_assessed.entry(key)
                    {
                        fee.insert(as_of);
                        if let Some(i) = self.installments.get_mut(n as usize - 1) {
                            i.fee += money_field(p, "amount");
                            i.fee_assessed_on = Some(as_of);
                            self.first_open = self.first_open.min(n as usize - 1);
                        }
                    }
                }
            }
            "Loan.StatusChanged" => {
                let to = str_field(p, "toStatus").unwrap_or_default();
                if let Some(d) = Delinquency::parse(&to) {
                    self.record_delinquency(d, field(p, "asOf"));
                }
            }
            "Loan.PaidOff" => {
                // Our own record repeats a payoff the fold already derived; a client's (a
                // settlement, a write-off) closes the loan as it stands.
                let final_id = str_field(p, "finalPaymentId").unwrap_or_default();
                if !self.payment_index.contains_key(&final_id) && self.paid_off.is_none() {
                    self.status = LoanStatus::PaidOff;
                    self.paid_off = Some(PaidOff {
                        final_payment_id: final_id,
                        paid_off_at: field(p, "paidOffAt").unwrap_or(e.occurred_at),
                    });
                }
            }
            "Loan.Defaulted" => self.record_delinquency(
                Delinquency::Defaulted,
                field::<DateTime<Utc>>(p, "defaultedAt").map(|d| d.date_naive()),
            ),
            "Loan.DrawSubmitted" => {
                let (Some(draw_id), Some(amount)) = (str_field(p, "drawId"), field(p, "amount"))
                else {
                    return;
                };
                if let Some(decision) =
                    self.decide_draw(&draw_id, amount, e.occurred_at.date_naive())
                {
                    if let DrawDecision::Approved(a) = &decision {
                        self.draws_committed += *a;
                    }
                    self.draws.push(DrawCommitment {
                        draw_id,
                        requested: amount,
                        decision,
                    });
                }
            }
            "Loan.DrawDisbursed" => self.apply_disbursal(e),
            _ => {}
        }
    }

    /// The (scheduleId, installment) a late record names; the current installment's
    /// schedule when it names none.
    fn installment_key(&self, p: &Value, n: u32) -> Option<(String, u32)> {
        if n == 0 {
            return None;
        }
        str_field(p, "scheduleId")
            .or_else(|| {
                self.installments
                    .get(n as usize - 1)
                    .map(|i| i.schedule_id.clone())
            })
            .map(|s| (s, n))
    }

    /// A delinquency record: the loan's delinquency, and default as its status.
    fn record_delinquency(&mut self, d: Delinquency, as_of: Option<NaiveDate>) {
        if !self.is_active() {
            return;
        }
        self.delinquency = d;
        if as_of.is_some() {
            self.delinquency_as_of = as_of;
        }
        self.status = if d == Delinquency::Defaulted {
            LoanStatus::Defaulted
        } else {
            LoanStatus::Funded
        };
    }

    fn apply_funded(&mut self, e: &EventEnvelope) {
        let p = &e.payload;
        let Some(amount) = field::<Money>(p, "fundedAmount") else {
            return;
        };
        let at: Option<DateTime<Utc>> = field(p, "fundedAt");
        self.funded_amount = Some(amount);
        self.funded_at = at;
        self.funded_on = at.map(|d| d.date_naive());
        self.outstanding_principal = amount;
        if self.status != LoanStatus::Unknown {
            self.status = LoanStatus::Funded;
        }
        if let Ok((id, installments)) = self.schedule_for_funding(e) {
            self.installments = installments
                .into_iter()
                .map(|i| installment_state(i, &id))
                .collect();
            self.schedule_id = Some(id);
            self.first_open = 0;
        }
    }

    /// The schedule a `Loan.Funded` event gives this loan (state before the event, or
    /// after it: only the terms are read), or why there is none.
    pub fn schedule_for_funding(
        &self,
        funded: &EventEnvelope,
    ) -> Result<(String, Vec<Installment>), String> {
        let p = &funded.payload;
        let amount: Money =
            field(p, "fundedAmount").ok_or("Loan.Funded has no valid fundedAmount")?;
        let start = field::<DateTime<Utc>>(p, "fundedAt")
            .ok_or("Loan.Funded has no valid fundedAt")?
            .date_naive();
        let terms = self
            .schedule_terms(amount)
            .ok_or_else(|| format!("loan {} was funded but never created", funded.aggregate_id))?;
        let installments = schedule::generate(&terms, start).map_err(|e| e.to_string())?;
        let id = derived_id(&[SCHEDULE_HANDLER, "schedule", &funded.event_id.to_string()]);
        Ok((id.to_string(), installments))
    }

    /// The terms a schedule is computed from, with `principal`.
    pub fn schedule_terms(&self, principal: Money) -> Option<LoanTerms> {
        let t = self.terms.as_ref()?;
        Some(LoanTerms {
            principal,
            rate: t.interest_rate,
            term_months: t.term_months,
            amortization: t.amortization,
            frequency: t.payment_frequency,
        })
    }

    fn update_terms(&mut self, p: &Value) {
        if let Some(t) = self.terms.as_mut() {
            if let Some(r) = field(p, "interestRate") {
                t.interest_rate = r;
            }
            if let Some(n) = field(p, "termMonths") {
                t.term_months = n;
            }
        }
    }

    /// Funded and not paid off (payments apply, installments can be late).
    pub fn is_active(&self) -> bool {
        matches!(self.status, LoanStatus::Funded | LoanStatus::Defaulted)
    }

    /// The loan type (`term` unless `Loan.Created` said otherwise).
    pub fn loan_type(&self) -> LoanType {
        self.terms.as_ref().map(|t| t.loan_type).unwrap_or_default()
    }

    /// What is still owed, installment by installment, oldest first. An installment's
    /// principal is capped by the outstanding principal not already owed by earlier
    /// installments (prepayments), and nothing is owed once that is used up.
    pub fn dues(&self) -> Dues<'_> {
        Dues {
            installments: if self.is_active() {
                &self.installments[self.first_open.min(self.installments.len())..]
            } else {
                &[]
            },
            budget: self.outstanding_principal,
        }
    }

    /// The installments a payment received on `on` is billed against: the unpaid ones due
    /// on or before `on`, plus the next one.
    pub fn billed(&self, on: NaiveDate) -> Vec<Due> {
        let mut out = Vec::new();
        for d in self.dues() {
            let later = d.due_date > on;
            out.push(d);
            if later {
                break;
            }
        }
        out
    }

    /// The next installment with something owed.
    pub fn next_due(&self) -> Option<Due> {
        self.dues().next()
    }

    /// Late fees assessed and still owed (the `feesOwed` of the state view).
    pub fn fees_owed(&self) -> Money {
        self.dues().map(|d| d.fee).sum()
    }

    /// What pays the loan off on `on` (the payoff quote's total).
    pub fn payoff_amount(&self, on: NaiveDate) -> Money {
        self.payoff_quote(on).total
    }

    /// What a `Loan.Modified` does: `Ok(Some(_))` regenerates the schedule, `Ok(None)` only
    /// changes terms (nothing funded yet, no rate or term given, or nothing left to
    /// reschedule), `Err` refuses it.
    ///
    /// Regeneration keeps installments 1..m, where m is the last installment due on or
    /// before the modification date or already (partly) paid, and re-amortizes the
    /// outstanding principal they do not owe over the periods m+1.. of the new term, with
    /// the new rate, due dates still counted from the funding date.
    pub fn decide_modification(&self, e: &EventEnvelope) -> Result<Option<Regeneration>, String> {
        let p = &e.payload;
        let new_rate: Option<Rate> = field(p, "interestRate");
        let new_term: Option<u32> = field(p, "termMonths");
        if new_rate.is_none() && new_term.is_none() {
            return Ok(None);
        }
        let terms = self
            .terms
            .as_ref()
            .ok_or_else(|| format!("loan {} was never created", e.aggregate_id))?;
        let rate = new_rate.unwrap_or(terms.interest_rate);
        let term = new_term.unwrap_or(terms.term_months);
        schedule::periods(terms.payment_frequency, term).map_err(|e| e.to_string())?;
        match self.status {
            LoanStatus::PaidOff => return Err(format!("loan {} is paid off", self.loan_id)),
            LoanStatus::Funded | LoanStatus::Defaulted => {}
            _ => return Ok(None),
        }
        let anchor = self.funded_on.ok_or("the loan has no funding date")?;
        let effective = field::<DateTime<Utc>>(p, "modifiedAt")
            .unwrap_or(e.occurred_at)
            .date_naive();
        let kept = self
            .installments
            .iter()
            .filter(|i| i.due_date <= effective || i.touched())
            .map(|i| i.number)
            .max()
            .unwrap_or(0);
        let owed_by_kept: Money = self
            .dues()
            .take_while(|d| d.number <= kept)
            .map(|d| d.principal)
            .sum();
        let principal = self.outstanding_principal - owed_by_kept;
        if principal.is_zero() || principal.is_negative() {
            return Ok(None);
        }
        let new_terms = LoanTerms {
            principal,
            rate,
            term_months: term,
            amortization: terms.amortization,
            frequency: terms.payment_frequency,
        };
        let installments = schedule::generate_tail(&new_terms, anchor, kept)
            .map_err(|err| format!("cannot regenerate the schedule: {err}"))?;
        Ok(Some(Regeneration {
            schedule_id: derived_id(&[SCHEDULE_HANDLER, "schedule", &e.event_id.to_string()])
                .to_string(),
            supersedes: self.schedule_id.clone(),
            rate,
            term_months: term,
            installments,
        }))
    }

    /// The schedule after a draw of `amount` disbursed on `on` (the state before the
    /// disbursal; `disbursal_id` is the eventId of its `Loan.DrawDisbursed`).
    ///
    /// Installments due on or before `on` are kept as they are; those due after it are
    /// regenerated with the schedule rules, at the loan's rate, over that many remaining
    /// installments, on funded + disbursed (this draw included) − the principal of the kept
    /// installments. So the principals of the effective schedule sum to funded + disbursed.
    pub fn decide_disbursal(
        &self,
        disbursal_id: &str,
        amount: Money,
        on: NaiveDate,
    ) -> Result<Regeneration, String> {
        let terms = self
            .terms
            .as_ref()
            .ok_or_else(|| format!("loan {} was never created", self.loan_id))?;
        let (funded, anchor) = match (self.funded_amount, self.funded_on) {
            (Some(f), Some(a)) if self.is_active() => (f, a),
            _ => {
                return Err(format!(
                    "loan {} is not an active funded loan",
                    self.loan_id
                ))
            }
        };
        let kept: Vec<&InstallmentState> = self
            .installments
            .iter()
            .filter(|i| i.due_date <= on)
            .collect();
        let kept_principal: Money = kept.iter().map(|i| i.principal).sum();
        let principal = funded + self.draws_disbursed + amount - kept_principal;
        let new_terms = LoanTerms {
            principal,
            rate: terms.interest_rate,
            term_months: terms.term_months,
            amortization: terms.amortization,
            frequency: terms.payment_frequency,
        };
        let installments =
            schedule::generate_tail(&new_terms, anchor, kept.len() as u32).map_err(|err| {
                format!("cannot regenerate the schedule after the draw disbursed on {on}: {err}")
            })?;
        Ok(Regeneration {
            schedule_id: derived_id(&[SCHEDULE_HANDLER, "schedule", disbursal_id]).to_string(),
            supersedes: self.schedule_id.clone(),
            rate: terms.interest_rate,
            term_months: terms.term_months,
            installments,
        })
    }

    fn apply_disbursal(&mut self, e: &EventEnvelope) {
        let p = &e.payload;
        let Some(draw_id) = str_field(p, "drawId") else {
            return;
        };
        if self.disbursed_draws.contains(&draw_id) {
            return;
        }
        let amount = money_field(p, "amount");
        let on = field::<DateTime<Utc>>(p, "disbursedAt")
            .unwrap_or(e.occurred_at)
            .date_naive();
        let regeneration = self.decide_disbursal(&e.event_id.to_string(), amount, on);
        self.disbursed_draws.insert(draw_id);
        self.draws_disbursed += amount;
        if self.is_active() {
            self.outstanding_principal += amount;
            if let Ok(r) = regeneration {
                self.apply_regeneration(r);
            }
        }
    }

    /// Replace the installments from the regeneration's first number on. What was already
    /// paid on a replaced installment stays paid on its successor of the same number.
    fn apply_regeneration(&mut self, r: Regeneration) {
        if let Some(t) = self.terms.as_mut() {
            t.interest_rate = r.rate;
            t.term_months = r.term_months;
        }
        let keep = r
            .installments
            .first()
            .map_or(self.installments.len(), |i| i.number as usize - 1);
        let replaced = self
            .installments
            .split_off(keep.min(self.installments.len()));
        self.installments
            .extend(r.installments.into_iter().map(|i| {
                let mut new = installment_state(i, &r.schedule_id);
                if let Some(old) = replaced.iter().find(|o| o.number == new.number) {
                    new.interest_paid = old.interest_paid;
                    new.principal_paid = old.principal_paid;
                    new.fee = old.fee;
                    new.fee_paid = old.fee_paid;
                    new.fee_assessed_on = old.fee_assessed_on;
                    new.settled_on = if new.paid() { old.settled_on } else { None };
                }
                new
            }));
        self.first_open = self.first_open.min(keep);
        self.schedule_id = Some(r.schedule_id);
    }

    /// The decision on a draw submitted to this loan, `None` when the draw was decided
    /// before (a repeat changes nothing).
    ///
    /// Only a funded construction loan is drawn on; available to draw = amount −
    /// fundedAmount − the draws approved before; a draw above that is rejected, and so is
    /// one decided on `on` when no installment is due after that date (the disbursed money
    /// would have no installment left to carry it).
    pub fn decide_draw(
        &self,
        draw_id: &str,
        requested: Money,
        on: NaiveDate,
    ) -> Option<DrawDecision> {
        if self.draws.iter().any(|d| d.draw_id == draw_id) {
            return None;
        }
        let id = &self.loan_id;
        Some(match (self.status, &self.terms) {
            (LoanStatus::Funded, Some(t)) if t.loan_type == LoanType::Term => {
                DrawDecision::Rejected(format!(
                    "loan {id} is a term loan: only construction loans are drawn on"
                ))
            }
            (LoanStatus::Funded, Some(_))
                if self.installments.last().is_some_and(|i| i.due_date <= on) =>
            {
                DrawDecision::Rejected(format!(
                    "loan {id} has no installment due after {on}: nothing left to draw into"
                ))
            }
            (LoanStatus::Funded, Some(_)) => {
                let available = self.available_to_draw().unwrap_or(Money::ZERO);
                if requested > available {
                    DrawDecision::Rejected(format!(
                        "draw of {requested} is above the {available} available on loan {id} (amount − funded − approved draws)"
                    ))
                } else {
                    DrawDecision::Approved(requested)
                }
            }
            (LoanStatus::Unknown, _) | (_, None) => {
                DrawDecision::Rejected("the loan does not exist".into())
            }
            (LoanStatus::PaidOff, _) => DrawDecision::Rejected(format!("loan {id} is paid off")),
            (LoanStatus::Defaulted, _) => {
                DrawDecision::Rejected(format!("loan {id} is in default"))
            }
            _ => DrawDecision::Rejected(format!("loan {id} is not funded yet")),
        })
    }

    /// amount − fundedAmount − approved draws, for a construction loan.
    pub fn available_to_draw(&self) -> Option<Money> {
        let t = self.terms.as_ref()?;
        if t.loan_type != LoanType::Construction {
            return None;
        }
        Some(
            (t.amount - self.funded_amount.unwrap_or(Money::ZERO) - self.draws_committed)
                .max_zero(),
        )
    }

    /// The commitment of a draw, if the loan decided it.
    pub fn draw(&self, draw_id: &str) -> Option<&DrawCommitment> {
        self.draws.iter().find(|d| d.draw_id == draw_id)
    }

    /// The state as JSON (the `state` of the state route).
    pub fn view(&self) -> Value {
        let t = self.terms.as_ref();
        let next = self.next_due().map(|d| {
            json!({"installment": d.number, "dueDate": d.due_date.to_string(),
                "interest": d.interest, "principal": d.principal, "amount": d.amount()})
        });
        let applied =
            self.payments.iter().filter(|p| !p.reversed).count() + self.archived.applied as usize;
        let reversed =
            self.payments.len() + self.archived.reversed as usize + self.archived.applied as usize
                - applied;
        let approved = self
            .draws
            .iter()
            .filter(|d| matches!(d.decision, DrawDecision::Approved(_)))
            .count();
        let policy = self.late_policy();
        let fees_owed = self.fees_owed();
        json!({
            "loanId": self.loan_id,
            "borrowerId": self.borrower_id,
            "fundId": t.and_then(|t| t.fund_id.clone()),
            "loanType": self.loan_type(),
            "status": self.status,
            "delinquency": self.delinquency,
            "terms": t.map(|t| json!({
                "amount": t.amount, "interestRate": t.interest_rate, "termMonths": t.term_months,
                "amortization": t.amortization, "paymentFrequency": t.payment_frequency,
                "gracePeriodDays": policy.grace_days, "lateFeePercent": policy.fee_percent,
                "lateFeeMinimum": policy.fee_minimum, "lateFeeMaximum": policy.fee_maximum,
                "defaultAfterDays": policy.default_after_days})),
            "fundedAmount": self.funded_amount,
            "fundedAt": self.funded_at.as_ref().map(format_time),
            "outstandingPrincipal": self.outstanding_principal,
            "paidPrincipal": self.paid_principal,
            "paidInterest": self.paid_interest,
            "paidFees": self.paid_fees,
            "feesOwed": fees_owed,
            "refundsDue": self.held,
            "scheduleId": self.schedule_id,
            "installments": self.installments.len(),
            "installmentsSettled": self.installments.iter().filter(|i| i.settled()).count(),
            "nextDue": next,
            "payments": {
                "applied": applied,
                "reversed": reversed,
                "refused": self.refused_payments,
            },
            "lateInstallments": self.late_reported.keys().map(|(_, n)| n).collect::<BTreeSet<_>>(),
            "draws": {
                "approved": approved,
                "rejected": self.draws.len() - approved,
                "committed": self.draws_committed,
                "undrawn": t.map(|t| (t.amount - self.draws_committed).max_zero()),
                "availableToDraw": self.available_to_draw(),
            },
            "disbursedDrawsTotal": self.draws_disbursed,
            "paidOff": self.status == LoanStatus::PaidOff,
            "paidOffAt": self.paid_off.as_ref().map(|p| format_time(&p.paid_off_at)),
            "finalPaymentId": self.paid_off.as_ref().map(|p| p.final_payment_id.clone()),
        })
    }
}

fn installment_state(i: Installment, schedule_id: &str) -> InstallmentState {
    InstallmentState {
        number: i.number,
        due_date: i.due_date,
        principal: i.principal,
        interest: i.interest,
        principal_paid: Money::ZERO,
        interest_paid: Money::ZERO,
        fee: Money::ZERO,
        fee_paid: Money::ZERO,
        fee_assessed_on: None,
        settled_on: None,
        schedule_id: schedule_id.to_string(),
    }
}

/// See [`LoanState::dues`].
pub struct Dues<'a> {
    installments: &'a [InstallmentState],
    budget: Money,
}

impl Iterator for Dues<'_> {
    type Item = Due;

    fn next(&mut self) -> Option<Due> {
        while let Some((i, rest)) = self.installments.split_first() {
            if self.budget.is_zero() || self.budget.is_negative() {
                return None;
            }
            self.installments = rest;
            let interest = (i.interest - i.interest_paid).max_zero();
            let principal = (i.principal - i.principal_paid).max_zero().min(self.budget);
            let fee = (i.fee - i.fee_paid).max_zero();
            self.budget -= principal;
            if interest.is_zero() && principal.is_zero() && fee.is_zero() {
                continue;
            }
            return Some(Due {
                number: i.number,
                due_date: i.due_date,
                interest,
                principal,
                fee,
                fee_assessed_on: i.fee_assessed_on,
                schedule_id: i.schedule_id.clone(),
            });
        }
        None
    }
}
