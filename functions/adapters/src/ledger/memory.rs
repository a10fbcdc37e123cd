//! The in-memory [`Ledger`], [`MemoryLedger`], with the same semantics as the DynamoDB one
//! for benchmarks and tests that must not touch the network: claim new / FAILED /
//! IN_PROGRESS with an expired lease; COMPLETED short-circuits; a live lease is busy. It
//! counts the AWS calls its DynamoDB twin would make ([`CallCounts`]).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use chrono::{DateTime, Utc};

use super::{Attempt, BatchStats, Claim, Commit, Committed, FailureClass, Ledger, Work};
use crate::error::AdapterError;
use crate::store::memory::{CallCounts, MemoryStore};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Status {
    InProgress { lease_until_ms: i64 },
    Completed,
    Failed,
}

#[derive(Debug, Clone)]
struct Record {
    status: Status,
    attempts: u32,
    log: usize,
}

/// A [`Ledger`] in memory. Handlers are on unless switched off with [`Self::set_enabled`].
/// Its commits append follow-ons to the [`MemoryStore`] it was made [`over`](Self::over).
#[derive(Default)]
pub struct MemoryLedger {
    store: MemoryStore,
    records: Mutex<HashMap<String, Record>>,
    switches: Mutex<HashMap<String, bool>>,
    /// Whether [`Ledger::enabled`] counts a `GetItem` (the DynamoDB ledger caches switches
    /// for 2 s, so in steady state it makes about one call per handler per 2 s).
    pub count_switch_reads: bool,
    pub calls: CallCounts,
}

impl MemoryLedger {
    /// A ledger with an event store of its own (for tests of the ledger alone).
    pub fn new() -> Self {
        Self::default()
    }

    /// A ledger whose commits append to `store` (a handle on the same tables).
    pub fn over(store: &MemoryStore) -> Self {
        MemoryLedger {
            store: store.clone(),
            ..Self::default()
        }
    }

    /// How many executions a record counts, and how many log entries it holds.
    pub fn executions(&self, work: Work<'_>) -> Option<(u32, usize)> {
        let r = self.records.lock().unwrap_or_else(|p| p.into_inner());
        r.get(&work.pk()).map(|r| (r.attempts, r.log))
    }

    pub fn set_enabled(&self, handler: &str, enabled: bool) {
        self.switches
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(handler.to_string(), enabled);
    }

    /// The status of a processing record: `IN_PROGRESS`, `COMPLETED` or `FAILED`.
    pub fn status(&self, work: Work<'_>) -> Option<&'static str> {
        let r = self.records.lock().unwrap_or_else(|p| p.into_inner());
        r.get(&work.pk()).map(|r| match r.status {
            Status::InProgress { .. } => "IN_PROGRESS",
            Status::Completed => "COMPLETED",
            Status::Failed => "FAILED",
        })
    }

    /// How many records are COMPLETED.
    pub fn completed(&self) -> usize {
        let r = self.records.lock().unwrap_or_else(|p| p.into_inner());
        r.values().filter(|r| r.status == Status::Completed).count()
    }

    /// Forget every record (keeps switches and counters).
    pub fn clear(&self) {
        self.records
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
    }

    /// What `complete`, `commit` and `fail` share: set the outcome and log it; an
    /// unclaimed execution is counted here.
    fn finish(map: &mut HashMap<String, Record>, work: Work<'_>, status: Status, attempt: Attempt) {
        let rec = map.entry(work.pk()).or_insert(Record {
            status,
            attempts: 0,
            log: 0,
        });
        rec.status = status;
        rec.log += 1;
        if let Attempt::Unclaimed { .. } = attempt {
            rec.attempts += 1;
        }
    }

    fn records(&self) -> std::sync::MutexGuard<'_, HashMap<String, Record>> {
        self.records.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Ledger for MemoryLedger {
    async fn claim(
        &self,
        work: Work<'_>,
        lease: Duration,
        now: DateTime<Utc>,
    ) -> Result<Claim, AdapterError> {
        CallCounts::bump(&self.calls.update);
        let now_ms = now.timestamp_millis();
        let mut map = self.records.lock().unwrap_or_else(|p| p.into_inner());
        let rec = map.entry(work.pk()).or_insert(Record {
            status: Status::Failed,
            attempts: 0,
            log: 0,
        });
        let free = match rec.status {
            Status::Failed => true,
            Status::InProgress { lease_until_ms } => lease_until_ms < now_ms,
            Status::Completed => false,
        };
        if free {
            rec.attempts += 1;
            rec.status = Status::InProgress {
                lease_until_ms: now_ms + lease.as_millis() as i64,
            };
            return Ok(Claim::Acquired {
                attempt: rec.attempts,
            });
        }
        // The conditional write failed: DynamoLedger reads the record to tell why.
        CallCounts::bump(&self.calls.get);
        Ok(if rec.status == Status::Completed {
            Claim::AlreadyDone
        } else {
            Claim::Busy
        })
    }

    async fn complete(
        &self,
        work: Work<'_>,
        attempt: u32,
        _duration: Duration,
        _now: DateTime<Utc>,
    ) -> Result<(), AdapterError> {
        CallCounts::bump(&self.calls.update);
        Self::finish(
            &mut self.records(),
            work,
            Status::Completed,
            Attempt::Claimed(attempt),
        );
        Ok(())
    }

    async fn commit(&self, work: Work<'_>, commit: Commit) -> Result<Committed, AdapterError> {
        // The records stay locked over the whole commit: it is one transaction.
        let mut records = self.records();
        let completed = records
            .get(&work.pk())
            .is_some_and(|r| r.status == Status::Completed);
        let (attempt, rerun) = (commit.attempt, commit.rerun);
        let stored = if commit.follow_ons.is_empty() {
            CallCounts::bump(&self.calls.update);
            Some(Vec::new())
        } else if completed && !rerun {
            // The transaction is tried, and cancelled by the record's condition.
            CallCounts::bump(&self.store.calls.transact_write);
            None
        } else {
            self.store
                .append_follow_ons(commit.follow_ons, commit.now, &commit.known)
        };
        match stored {
            Some(_) if completed && !rerun => Ok(Committed::AlreadyDone),
            Some(stored) => {
                Self::finish(&mut records, work, Status::Completed, attempt);
                Ok(Committed::Now(stored))
            }
            // The follow-ons stand: another run's commit (its record is complete), or plain
            // appends of a run that stopped before completing (complete over them).
            None => {
                if !completed {
                    CallCounts::bump(&self.calls.update);
                    Self::finish(&mut records, work, Status::Completed, attempt);
                }
                Ok(Committed::AlreadyDone)
            }
        }
    }

    async fn fail(
        &self,
        work: Work<'_>,
        attempt: Attempt,
        _class: FailureClass,
        _message: &str,
        _duration: Duration,
        _now: DateTime<Utc>,
    ) -> Result<(), AdapterError> {
        CallCounts::bump(&self.calls.update);
        let mut records = self.records();
        let completed = records
            .get(&work.pk())
            .is_some_and(|r| r.status == Status::Completed);
        // Without a claim, a completion another run wrote stands (a conditional update).
        if !(completed && matches!(attempt, Attempt::Unclaimed { .. })) {
            Self::finish(&mut records, work, Status::Failed, attempt);
        }
        Ok(())
    }

    async fn is_completed(&self, work: Work<'_>) -> Result<bool, AdapterError> {
        CallCounts::bump(&self.calls.get);
        Ok(self.status(work) == Some("COMPLETED"))
    }

    async fn enabled(&self, handler: &str) -> Result<bool, AdapterError> {
        if self.count_switch_reads {
            CallCounts::bump(&self.calls.get);
        }
        Ok(*self
            .switches
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(handler)
            .unwrap_or(&true))
    }

    async fn flush_stats(
        &self,
        stats: &BatchStats,
        _now: DateTime<Utc>,
    ) -> Result<(), AdapterError> {
        // One UpdateItem per handler that ran in the batch.
        for _ in stats.take() {
            CallCounts::bump(&self.calls.update);
        }
        Ok(())
    }
}
