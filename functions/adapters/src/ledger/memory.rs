//! The in-memory [`Ledger`], [`MemoryLedger`], with the same semantics as the DynamoDB one
//! for benchmarks and tests that must not touch the network: claim new / FAILED /
//! IN_PROGRESS with an expired lease; COMPLETED short-circuits; a live lease is busy. It
//! counts the AWS calls its DynamoDB twin would make ([`CallCounts`]).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use chrono::{DateTime, Utc};

use super::{BatchStats, Claim, FailureClass, Ledger, Work};
use crate::error::AdapterError;
use crate::store::memory::CallCounts;

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
#[derive(Default)]
pub struct MemoryLedger {
    records: Mutex<HashMap<String, Record>>,
    switches: Mutex<HashMap<String, bool>>,
    /// Whether [`Ledger::enabled`] counts a `GetItem` (the DynamoDB ledger caches switches
    /// for 2 s, so in steady state it makes about one call per handler per 2 s).
    pub count_switch_reads: bool,
    pub calls: CallCounts,
}

impl MemoryLedger {
    pub fn new() -> Self {
        Self::default()
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

    /// What `complete` and `fail` share: one update that sets the outcome and logs it.
    fn finish(&self, work: Work<'_>, status: Status) {
        CallCounts::bump(&self.calls.update);
        let mut map = self.records.lock().unwrap_or_else(|p| p.into_inner());
        let rec = map.entry(work.pk()).or_insert(Record {
            status,
            attempts: 0,
            log: 0,
        });
        rec.status = status;
        rec.log += 1;
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
        _attempt: u32,
        _duration: Duration,
        _now: DateTime<Utc>,
    ) -> Result<(), AdapterError> {
        self.finish(work, Status::Completed);
        Ok(())
    }

    async fn fail(
        &self,
        work: Work<'_>,
        _attempt: u32,
        _class: FailureClass,
        _message: &str,
        _duration: Duration,
        _now: DateTime<Utc>,
    ) -> Result<(), AdapterError> {
        self.finish(work, Status::Failed);
        Ok(())
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
