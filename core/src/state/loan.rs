//! The `Loan` aggregate: a pure fold over the loan's stream, and the business rules that
//! decide on it.
//!
//! # Money model
//! - Funding sets the outstanding principal to `fundedAmount` and derives the schedule
//!   ([`crate::schedule`]) from the loan's terms; `Loan.Modified` with a new rate or term
//!   regenerates the installments not yet due and not yet paid for the principal they must
//!   carry (see [`LoanState::decide_modification`]).
//! - A payment received on day *d* is *billed* against the unpaid installments due on or
//!   before *d* plus the next one (a payment ahead of a due date is for that installment).
//!   It pays the billed installments' interest, oldest first, then their principal, oldest
//!   first; the rest prepays principal (it lowers the outstanding principal; later
//!   installments stay due as scheduled, and the loan ends earlier).
//! - Payoff amount on *d* = billed unpaid interest + outstanding principal. A payment above
//!   it is refused (a business-rule failure). Reaching zero pays the loan off.
//! - `Payment.Reversed` undoes exactly what the payment applied.
//! - Draw approvals are decided on the loan's stream (see [`crate::catalog`]): an approved
//!   draw commits `min(requested, amount - committed)` of the loan amount.
//!
//! # Inputs and records
//! The fold derives its money from the loan's *inputs* (`Loan.*` facts, `Payment.Received`,
//! `Payment.Reversed`, `Loan.DrawSubmitted`) with the same rules the handlers use. The
//! handlers' outputs (`PaymentSchedule.Generated`, `Payment.Applied`, `Loan.PaidOff`,
//! `Draw.*`) are published records of those decisions. So a payment received before the
//! schedule record landed in the stream (or two payments handled back to back) is
//! allocated exactly as the fold of the full history says. A change of a rule (e.g. the
//! schedule formula) must therefore come with a new event version, like any schema change.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::{field, money_field, str_field};
use crate::envelope::{derived_id, format_time, EventEnvelope};
use crate::money::{Money, Rate};
use crate::schedule::{self, Amortization, Frequency, Installment, LoanTerms};

/// The handler whose name derives schedule ids; the fold derives the same ids.
pub const SCHEDULE_HANDLER: &str = "payment-schedule";

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
    /// The schedule this installment came from (kept installments keep theirs when a
    /// schedule is regenerated).
    pub schedule_id: String,
}

impl InstallmentState {
    fn settled(&self) -> bool {
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
    pub schedule_id: String,
}

impl Due {
    pub fn amount(&self) -> Money {
        self.interest + self.principal
    }
}

/// What a payment paid on one installment (a `Payment.Applied` item).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InstallmentPaid {
    pub number: u32,
    pub interest: Money,
    pub principal: Money,
}

/// A payment as the allocation rules applied it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AppliedPayment {
    pub payment_id: String,
    pub amount: Money,
    pub received_at: DateTime<Utc>,
    pub interest: Money,
    /// Installment principal plus prepaid principal.
    pub principal: Money,
    pub prepaid: Money,
    pub installments: Vec<InstallmentPaid>,
    /// Outstanding principal right after this payment.
    pub remaining_principal: Money,
    pub payment_method: Option<String>,
    pub reversed: bool,
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

/// The folded state of a `Loan` aggregate.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct LoanState {
    pub loan_id: String,
    pub borrower_id: Option<String>,
    pub status: LoanStatus,
    pub terms: Option<LoanTermsView>,
    pub funded_amount: Option<Money>,
    pub funded_at: Option<DateTime<Utc>>,
    pub funded_on: Option<NaiveDate>,
    pub outstanding_principal: Money,
    pub paid_principal: Money,
    pub paid_interest: Money,
    pub schedule_id: Option<String>,
    pub installments: Vec<InstallmentState>,
    /// Index of the first installment not settled (all before it are).
    first_open: usize,
    pub payments: Vec<AppliedPayment>,
    payment_index: HashMap<String, usize>,
    /// Payment.Received events the rules refused (over payoff, duplicates, ...).
    pub refused_payments: u32,
    pub draws: Vec<DrawCommitment>,
    pub draws_committed: Money,
    pub draws_disbursed: Money,
    disbursed_draws: BTreeSet<String>,
    pub paid_off: Option<PaidOff>,
    /// (scheduleId, installment) pairs with a Payment.Late.
    pub late_reported: BTreeSet<(String, u32)>,
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
                self.terms = serde_json::from_value(p.clone()).ok();
            }
            "Loan.Approved" if self.status == LoanStatus::Created => {
                self.status = LoanStatus::Approved
            }
            "Loan.Funded" if self.funded_amount.is_none() => self.apply_funded(e),
            "Loan.Modified" => match self.decide_modification(e) {
                Ok(Some(r)) => self.apply_regeneration(r),
                Ok(None) => self.update_terms(p),
                Err(_) => {}
            },
            "Payment.Received" => match PaymentIn::from_payload(p)
                .ok_or_else(String::new)
                .and_then(|pay| self.decide_payment(&pay))
            {
                Ok(applied) => self.apply_payment(applied),
                Err(_) => self.refused_payments += 1,
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
                    let schedule = str_field(p, "scheduleId").or_else(|| {
                        self.installments
                            .get(n as usize - 1)
                            .map(|i| i.schedule_id.clone())
                    });
                    if let Some(s) = schedule {
                        self.late_reported.insert((s, n as u32));
                    }
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
            "Loan.Defaulted" if self.status == LoanStatus::Funded => {
                self.status = LoanStatus::Defaulted
            }
            "Loan.DrawSubmitted" => {
                let (Some(draw_id), Some(amount)) = (str_field(p, "drawId"), field(p, "amount"))
                else {
                    return;
                };
                if let Some(decision) = self.decide_draw(&draw_id, amount) {
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
            "Loan.DrawDisbursed" => {
                if let Some(d) = str_field(p, "drawId") {
                    if self.disbursed_draws.insert(d) {
                        self.draws_disbursed += money_field(p, "amount");
                    }
                }
            }
            _ => {}
        }
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

    fn is_active(&self) -> bool {
        matches!(self.status, LoanStatus::Funded | LoanStatus::Defaulted)
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

    /// Interest billed on `on` plus the outstanding principal.
    pub fn payoff_amount(&self, on: NaiveDate) -> Money {
        self.billed(on).iter().map(|d| d.interest).sum::<Money>() + self.outstanding_principal
    }

    /// Allocate a payment, or say why it is refused.
    pub fn decide_payment(&self, pay: &PaymentIn) -> Result<AppliedPayment, String> {
        match self.status {
            LoanStatus::Funded | LoanStatus::Defaulted => {}
            LoanStatus::PaidOff => {
                return Err(format!("loan {} is already paid off", self.loan_id))
            }
            _ => {
                return Err(format!(
                    "loan {} is not funded",
                    if self.loan_id.is_empty() {
                        "?"
                    } else {
                        &self.loan_id
                    }
                ))
            }
        }
        if self.payment_index.contains_key(&pay.payment_id) {
            return Err(format!("payment {} was already received", pay.payment_id));
        }
        let on = pay.received_at.date_naive();
        let billed = self.billed(on);
        let payoff = billed.iter().map(|d| d.interest).sum::<Money>() + self.outstanding_principal;
        if pay.amount > payoff {
            return Err(format!(
                "payment {} of {} is above the payoff amount of {} on {on}",
                pay.payment_id, pay.amount, payoff
            ));
        }
        let mut left = pay.amount;
        let mut per: BTreeMap<u32, InstallmentPaid> = BTreeMap::new();
        let mut take = |number: u32, owed: Money, interest: bool, left: &mut Money| {
            let x = (*left).min(owed);
            if x.is_zero() {
                return;
            }
            *left -= x;
            let e = per.entry(number).or_insert(InstallmentPaid {
                number,
                interest: Money::ZERO,
                principal: Money::ZERO,
            });
            if interest {
                e.interest += x;
            } else {
                e.principal += x;
            }
        };
        for d in &billed {
            take(d.number, d.interest, true, &mut left);
        }
        for d in &billed {
            take(d.number, d.principal, false, &mut left);
        }
        let installments: Vec<InstallmentPaid> = per.into_values().collect();
        let interest: Money = installments.iter().map(|i| i.interest).sum();
        let principal: Money = installments.iter().map(|i| i.principal).sum::<Money>() + left;
        Ok(AppliedPayment {
            payment_id: pay.payment_id.clone(),
            amount: pay.amount,
            received_at: pay.received_at,
            interest,
            principal,
            prepaid: left,
            installments,
            remaining_principal: self.outstanding_principal - principal,
            payment_method: pay.payment_method.clone(),
            reversed: false,
        })
    }

    fn apply_payment(&mut self, ap: AppliedPayment) {
        for paid in &ap.installments {
            if let Some(i) = self.installments.get_mut(paid.number as usize - 1) {
                i.interest_paid += paid.interest;
                i.principal_paid += paid.principal;
            }
        }
        self.outstanding_principal -= ap.principal;
        self.paid_principal += ap.principal;
        self.paid_interest += ap.interest;
        while self
            .installments
            .get(self.first_open)
            .is_some_and(InstallmentState::settled)
        {
            self.first_open += 1;
        }
        if self.outstanding_principal.is_zero() {
            self.status = LoanStatus::PaidOff;
            self.paid_off = Some(PaidOff {
                final_payment_id: ap.payment_id.clone(),
                paid_off_at: ap.received_at,
            });
        }
        self.payment_index
            .insert(ap.payment_id.clone(), self.payments.len());
        self.payments.push(ap);
    }

    /// The index of the applied payment a reversal undoes, or why it cannot.
    pub fn decide_reversal(&self, payment_id: &str) -> Result<usize, String> {
        match self.payment_index.get(payment_id) {
            None => Err(format!(
                "payment {payment_id} was never applied to loan {}",
                self.loan_id
            )),
            Some(&i) if self.payments[i].reversed => {
                Err(format!("payment {payment_id} is already reversed"))
            }
            Some(&i) => Ok(i),
        }
    }

    fn apply_reversal(&mut self, index: usize) {
        let ap = &mut self.payments[index];
        ap.reversed = true;
        for paid in &ap.installments {
            if let Some(i) = self.installments.get_mut(paid.number as usize - 1) {
                i.interest_paid -= paid.interest;
                i.principal_paid -= paid.principal;
                self.first_open = self.first_open.min(paid.number as usize - 1);
            }
        }
        self.outstanding_principal += ap.principal;
        self.paid_principal -= ap.principal;
        self.paid_interest -= ap.interest;
        if self.status == LoanStatus::PaidOff && !self.outstanding_principal.is_zero() {
            self.status = LoanStatus::Funded;
            self.paid_off = None;
        }
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

    fn apply_regeneration(&mut self, r: Regeneration) {
        if let Some(t) = self.terms.as_mut() {
            t.interest_rate = r.rate;
            t.term_months = r.term_months;
        }
        let keep = r
            .installments
            .first()
            .map_or(self.installments.len(), |i| i.number as usize - 1);
        self.installments.truncate(keep);
        self.installments.extend(
            r.installments
                .into_iter()
                .map(|i| installment_state(i, &r.schedule_id)),
        );
        self.first_open = self.first_open.min(keep);
        self.schedule_id = Some(r.schedule_id);
    }

    /// The decision on a draw submitted to this loan, `None` when the draw was decided
    /// before (a repeat changes nothing).
    pub fn decide_draw(&self, draw_id: &str, requested: Money) -> Option<DrawDecision> {
        if self.draws.iter().any(|d| d.draw_id == draw_id) {
            return None;
        }
        let id = &self.loan_id;
        Some(match (self.status, &self.terms) {
            (LoanStatus::Funded, Some(t)) => {
                let available = t.amount - self.draws_committed;
                if available.is_zero() || available.is_negative() {
                    DrawDecision::Rejected(format!(
                        "nothing left to draw on loan {id}: {} of its {} is committed to earlier draws",
                        self.draws_committed, t.amount
                    ))
                } else {
                    DrawDecision::Approved(requested.min(available))
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

    /// The commitment of a draw, if the loan decided it.
    pub fn draw(&self, draw_id: &str) -> Option<&DrawCommitment> {
        self.draws.iter().find(|d| d.draw_id == draw_id)
    }

    /// Installments due before `as_of` with something still owed, not reported late yet.
    pub fn overdue(&self, as_of: NaiveDate) -> Vec<Due> {
        if self.status != LoanStatus::Funded {
            return Vec::new();
        }
        self.dues()
            .take_while(|d| d.due_date < as_of)
            .filter(|d| {
                !self
                    .late_reported
                    .contains(&(d.schedule_id.clone(), d.number))
            })
            .collect()
    }

    /// The state as JSON (the `state` of the state route).
    pub fn view(&self) -> Value {
        let t = self.terms.as_ref();
        let next = self.next_due().map(|d| {
            json!({"installment": d.number, "dueDate": d.due_date.to_string(),
                "interest": d.interest, "principal": d.principal, "amount": d.amount()})
        });
        let applied = self.payments.iter().filter(|p| !p.reversed).count();
        let approved = self
            .draws
            .iter()
            .filter(|d| matches!(d.decision, DrawDecision::Approved(_)))
            .count();
        json!({
            "loanId": self.loan_id,
            "borrowerId": self.borrower_id,
            "fundId": t.and_then(|t| t.fund_id.clone()),
            "status": self.status,
            "terms": t.map(|t| json!({
                "amount": t.amount, "interestRate": t.interest_rate, "termMonths": t.term_months,
                "amortization": t.amortization, "paymentFrequency": t.payment_frequency})),
            "fundedAmount": self.funded_amount,
            "fundedAt": self.funded_at.as_ref().map(format_time),
            "outstandingPrincipal": self.outstanding_principal,
            "paidPrincipal": self.paid_principal,
            "paidInterest": self.paid_interest,
            "scheduleId": self.schedule_id,
            "installments": self.installments.len(),
            "installmentsSettled": self.installments.iter().filter(|i| i.settled()).count(),
            "nextDue": next,
            "payments": {
                "applied": applied,
                "reversed": self.payments.len() - applied,
                "refused": self.refused_payments,
            },
            "lateInstallments": self.late_reported.iter().map(|(_, n)| n).collect::<BTreeSet<_>>(),
            "draws": {
                "approved": approved,
                "rejected": self.draws.len() - approved,
                "committed": self.draws_committed,
                "undrawn": t.map(|t| (t.amount - self.draws_committed).max_zero()),
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
            self.budget -= principal;
            if interest.is_zero() && principal.is_zero() {
                continue;
            }
            return Some(Due {
                number: i.number,
                due_date: i.due_date,
                interest,
                principal,
                schedule_id: i.schedule_id.clone(),
            });
        }
        None
    }
}
