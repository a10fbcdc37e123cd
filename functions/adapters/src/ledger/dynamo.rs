//! The DynamoDB ledger: processing records, handler switches and daily statistics as items
//! of the event table (keys in [`crate::store::layout`]).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use aws_sdk_dynamodb::types::{AttributeValue, TransactWriteItem, Update};
use chrono::{DateTime, Utc};

use super::{
    Attempt, BatchStats, Claim, Commit, Committed, FailureClass, Ledger, Work, RECORD_TTL,
};
use crate::error::{classify, AdapterError};
use crate::store::dynamo::Completing;
use crate::store::layout::{self, attr, kind, n, s, stats_pk, switch_pk};
use crate::store::DynamoStore;

/// The DynamoDB ledger, in the event table.
pub struct DynamoLedger {
    client: aws_sdk_dynamodb::Client,
    table: String,
    /// The same table as an event store, for the commits that append follow-ons.
    store: DynamoStore,
    switches: Mutex<Option<(Instant, HashMap<String, bool>)>>,
    /// How long a read of the handler switches is trusted.
    switch_cache: Duration,
}

/// The condition that lets a write stand only over a record no run has completed.
const NOT_COMPLETED: &str = "attribute_not_exists(#st) OR #st <> :done";

impl DynamoLedger {
    pub fn new(client: aws_sdk_dynamodb::Client, table: impl Into<String>) -> Self {
        Self::over(DynamoStore::new(client, table))
    }

    /// The ledger on `store`'s table, committing through it: a runner gives its ledger a
    /// clone of its own store, so a commit folds a snapshot from the history the runner read
    /// (the clones share what the store remembers of its reads).
    pub fn over(store: DynamoStore) -> Self {
        DynamoLedger {
            client: store.client().clone(),
            table: store.table().to_string(),
            store,
            switches: Mutex::new(None),
            switch_cache: Duration::from_secs(2),
        }
    }

    fn log_entry(
        outcome: &str,
        attempt: u32,
        duration: Duration,
        now: DateTime<Utc>,
        error: Option<&str>,
    ) -> AttributeValue {
        let mut m = HashMap::from([
            ("outcome".to_string(), s(outcome)),
            ("attempt".to_string(), n(attempt)),
            ("durationMs".to_string(), n(duration.as_millis())),
            (
                "at".to_string(),
                s(lending_events::envelope::format_time(&now)),
            ),
        ]);
        if let Some(e) = error {
            m.insert("error".into(), s(e.chars().take(500).collect::<String>()));
        }
        AttributeValue::L(vec![AttributeValue::M(m)])
    }

    /// The update that ends an execution without a claim: it also writes what a claim
    /// would have (the record's identity) and counts the execution in `attempts`.
    fn unclaimed(work: Work<'_>, now: DateTime<Utc>) -> RecordUpdate {
        let e = work.event;
        let mut u = RecordUpdate::default();
        u.set.push(
            "#kind = :kind, #handler = :h, eventId = :eid, eventType = :et, tenantId = :t, \
             streamKey = :sk, #seq = :seq, correlationId = :corr, \
             firstSeenAt = if_not_exists(firstSeenAt, :now), expiresAt = :exp"
                .into(),
        );
        u.add.push("attempts :one".into());
        u.name("#kind", attr::KIND)
            .name("#handler", attr::HANDLER)
            .name("#seq", "sequence")
            .value(":kind", s(kind::PROCESSING))
            .value(":h", s(work.handler))
            .value(":eid", s(e.event_id.to_string()))
            .value(":et", s(&e.event_type))
            .value(":t", s(&e.metadata.tenant_id))
            .value(":sk", s(e.stream().key()))
            .value(":seq", n(e.sequence))
            .value(":corr", s(&e.metadata.correlation_id))
            .value(":now", s(lending_events::envelope::format_time(&now)))
            .value(":exp", n(now.timestamp() + RECORD_TTL.as_secs() as i64))
            .value(":one", n(1));
        u
    }

    /// The update that sets a record COMPLETED and logs the execution.
    fn completion(
        work: Work<'_>,
        attempt: Attempt,
        duration: Duration,
        now: DateTime<Utc>,
    ) -> RecordUpdate {
        let mut u = match attempt {
            Attempt::Claimed(_) => RecordUpdate::default(),
            Attempt::Unclaimed { .. } => Self::unclaimed(work, now),
        };
        u.set.push(
            "#st = :done, completedAt = :now, durationMs = :d, completedAttempt = :a, \
             #log = list_append(if_not_exists(#log, :empty), :entry)"
                .into(),
        );
        u.remove.push("leaseUntil".into());
        u.name("#st", attr::STATUS)
            .name("#log", "log")
            .value(":done", s("COMPLETED"))
            .value(":now", s(lending_events::envelope::format_time(&now)))
            .value(":d", n(duration.as_millis()))
            .value(":a", n(attempt.number()))
            .value(":empty", AttributeValue::L(vec![]))
            .value(
                ":entry",
                Self::log_entry("completed", attempt.number(), duration, now, None),
            );
        u
    }

    /// The `UpdateItem` of a processing record with `u` (its condition included).
    fn record_update(
        &self,
        work: Work<'_>,
        u: RecordUpdate,
    ) -> aws_sdk_dynamodb::operation::update_item::builders::UpdateItemFluentBuilder {
        self.client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(layout::key(work.pk(), 0)))
            .update_expression(u.expression())
            .set_condition_expression(u.condition)
            .set_expression_attribute_names(Some(u.names))
            .set_expression_attribute_values(Some(u.values))
    }

    /// Complete a record with no events written alongside: `AlreadyDone` when its
    /// condition finds another run's completion.
    async fn complete_alone(
        &self,
        work: Work<'_>,
        u: RecordUpdate,
    ) -> Result<Committed, AdapterError> {
        let res = self.record_update(work, u).send().await;
        match res {
            Ok(_) => Ok(Committed::Now(Vec::new())),
            Err(err)
                if err
                    .as_service_error()
                    .is_some_and(|e| e.is_conditional_check_failed_exception()) =>
            {
                Ok(Committed::AlreadyDone)
            }
            Err(err) => Err(classify("UpdateItem(complete)", err)),
        }
    }

    /// Switch a handler on or off (takes effect within the cache period, no redeploy).
    pub async fn set_enabled(&self, handler: &str, enabled: bool) -> Result<(), AdapterError> {
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(layout::key(switch_pk(handler), 0)))
            .item(attr::KIND, s(kind::HANDLER_SWITCH))
            .item(attr::ENABLED, AttributeValue::Bool(enabled))
            .send()
            .await
            .map_err(|e| classify("PutItem(switch)", e))?;
        *self.switches.lock().unwrap_or_else(|p| p.into_inner()) = None;
        Ok(())
    }

    async fn load_switch(&self, handler: &str) -> Result<bool, AdapterError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(layout::key(switch_pk(handler), 0)))
            .send()
            .await
            .map_err(|e| classify("GetItem(switch)", e))?;
        Ok(out
            .item()
            .and_then(|i| i.get(attr::ENABLED))
            .and_then(|v| v.as_bool().ok())
            .copied()
            .unwrap_or(true))
    }
}

impl Ledger for DynamoLedger {
    async fn claim(
        &self,
        work: Work<'_>,
        lease: Duration,
        now: DateTime<Utc>,
    ) -> Result<Claim, AdapterError> {
        let now_ms = now.timestamp_millis();
        let e = work.event;
        let res = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(layout::key(work.pk(), 0)))
            .update_expression(
                "SET #st = :ip, leaseUntil = :lease, attempts = if_not_exists(attempts, :zero) + :one, \
                 #kind = :kind, #handler = :h, eventId = :eid, eventType = :et, tenantId = :t, \
                 streamKey = :sk, #seq = :seq, correlationId = :corr, firstSeenAt = if_not_exists(firstSeenAt, :now), \
                 expiresAt = :exp",
            )
            .condition_expression("attribute_not_exists(pk) OR #st = :failed OR (#st = :ip AND leaseUntil < :nowms)")
            .expression_attribute_names("#st", attr::STATUS)
            .expression_attribute_names("#seq", "sequence")
            .expression_attribute_names("#kind", attr::KIND)
            .expression_attribute_names("#handler", attr::HANDLER)
            .expression_attribute_values(":ip", s("IN_PROGRESS"))
            .expression_attribute_values(":failed", s("FAILED"))
            .expression_attribute_values(":lease", n(now_ms + lease.as_millis() as i64))
            .expression_attribute_values(":nowms", n(now_ms))
            .expression_attribute_values(":zero", n(0))
            .expression_attribute_values(":one", n(1))
            .expression_attribute_values(":kind", s(kind::PROCESSING))
            .expression_attribute_values(":h", s(work.handler))
            .expression_attribute_values(":eid", s(e.event_id.to_string()))
            .expression_attribute_values(":et", s(&e.event_type))
            .expression_attribute_values(":t", s(&e.metadata.tenant_id))
            .expression_attribute_values(":sk", s(e.stream().key()))
            .expression_attribute_values(":seq", n(e.sequence))
            .expression_attribute_values(":corr", s(&e.metadata.correlation_id))
            .expression_attribute_values(":now", s(lending_events::envelope::format_time(&now)))
            .expression_attribute_values(":exp", n(now.timestamp() + RECORD_TTL.as_secs() as i64))
            .return_values(aws_sdk_dynamodb::types::ReturnValue::UpdatedNew)
            .send()
            .await;
        match res {
            Ok(out) => {
                let attempt = out
                    .attributes()
                    .and_then(|a| a.get("attempts"))
                    .and_then(|v| v.as_n().ok())
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(1);
                Ok(Claim::Acquired { attempt })
            }
            Err(err) => {
                let conditional = err
                    .as_service_error()
                    .is_some_and(|e| e.is_conditional_check_failed_exception());
                if !conditional {
                    return Err(classify("UpdateItem(claim)", err));
                }
                Ok(if self.is_completed(work).await? {
                    Claim::AlreadyDone
                } else {
                    Claim::Busy
                })
            }
        }
    }

    async fn complete(
        &self,
        work: Work<'_>,
        attempt: u32,
        duration: Duration,
        now: DateTime<Utc>,
    ) -> Result<(), AdapterError> {
        let u = Self::completion(work, Attempt::Claimed(attempt), duration, now);
        self.record_update(work, u)
            .send()
            .await
            .map_err(|e| classify("UpdateItem(complete)", e))?;
        Ok(())
    }

    async fn commit(&self, work: Work<'_>, commit: Commit) -> Result<Committed, AdapterError> {
        let mut u = Self::completion(work, commit.attempt, commit.duration, commit.now);
        if !commit.rerun {
            // Another run's completion stands: its log entry is not written twice.
            u.condition = Some(NOT_COMPLETED.into());
        }
        if commit.follow_ons.is_empty() {
            return self.complete_alone(work, u).await;
        }
        let update = Update::builder()
            .table_name(&self.table)
            .set_key(Some(layout::key(work.pk(), 0)))
            .update_expression(u.expression())
            .set_condition_expression(u.condition.clone())
            .set_expression_attribute_names(Some(u.names.clone()))
            .set_expression_attribute_values(Some(u.values.clone()))
            .build()
            .map_err(|e| AdapterError::Aws(e.to_string()))?;
        let record = TransactWriteItem::builder().update(update).build();
        match self
            .store
            .append_completing(commit.follow_ons, commit.now, commit.known, &record)
            .await?
        {
            Completing::Stored(stored) => Ok(Committed::Now(stored)),
            Completing::AlreadyDone => Ok(Committed::AlreadyDone),
            // The follow-ons stand. If another run's commit stored them its record is
            // complete and this update finds it so; if plain appends of an earlier run did
            // (one that stopped before completing), this completes the record over them.
            Completing::FollowOnsStored => match self.complete_alone(work, u).await? {
                Committed::Now(_) | Committed::AlreadyDone => Ok(Committed::AlreadyDone),
            },
        }
    }

    async fn fail(
        &self,
        work: Work<'_>,
        attempt: Attempt,
        class: FailureClass,
        message: &str,
        duration: Duration,
        now: DateTime<Utc>,
    ) -> Result<(), AdapterError> {
        let mut u = match attempt {
            Attempt::Claimed(_) => RecordUpdate::default(),
            Attempt::Unclaimed { .. } => Self::unclaimed(work, now),
        };
        u.set.push(
            "#st = :failed, failureClass = :c, lastError = :m, lastFailureAt = :now, \
             firstFailureAt = if_not_exists(firstFailureAt, :now), \
             #log = list_append(if_not_exists(#log, :empty), :entry)"
                .into(),
        );
        u.add.push("failures :one".into());
        u.remove.push("leaseUntil".into());
        u.name("#st", attr::STATUS)
            .name("#log", "log")
            .value(":failed", s("FAILED"))
            .value(":c", s(class.as_str()))
            .value(":m", s(message.chars().take(1000).collect::<String>()))
            .value(":now", s(lending_events::envelope::format_time(&now)))
            .value(":one", n(1))
            .value(":empty", AttributeValue::L(vec![]))
            .value(
                ":entry",
                Self::log_entry(
                    class.as_str(),
                    attempt.number(),
                    duration,
                    now,
                    Some(message),
                ),
            );
        if let Attempt::Unclaimed { .. } = attempt {
            // Without a claim, a failing run may meet a record another run completed: the
            // completion stands.
            u.condition = Some(NOT_COMPLETED.into());
            u.value(":done", s("COMPLETED"));
        }
        let res = self.record_update(work, u).send().await;
        match res {
            Ok(_) => Ok(()),
            Err(err)
                if err
                    .as_service_error()
                    .is_some_and(|e| e.is_conditional_check_failed_exception()) =>
            {
                Ok(())
            }
            Err(err) => Err(classify("UpdateItem(fail)", err)),
        }
    }

    async fn is_completed(&self, work: Work<'_>) -> Result<bool, AdapterError> {
        let cur = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(layout::key(work.pk(), 0)))
            .consistent_read(true)
            .projection_expression("#st")
            .expression_attribute_names("#st", attr::STATUS)
            .send()
            .await
            .map_err(|e| classify("GetItem(record)", e))?;
        let status = cur
            .item()
            .and_then(|i| i.get(attr::STATUS))
            .and_then(|v| v.as_s().ok());
        Ok(status.is_some_and(|s| s == "COMPLETED"))
    }

    async fn enabled(&self, handler: &str) -> Result<bool, AdapterError> {
        if let Some((at, map)) = &*self.switches.lock().unwrap_or_else(|p| p.into_inner()) {
            if at.elapsed() < self.switch_cache {
                if let Some(v) = map.get(handler) {
                    return Ok(*v);
                }
            }
        }
        let v = self.load_switch(handler).await?;
        let mut guard = self.switches.lock().unwrap_or_else(|p| p.into_inner());
        match &mut *guard {
            Some((at, map)) if at.elapsed() < self.switch_cache => {
                map.insert(handler.to_string(), v);
            }
            _ => *guard = Some((Instant::now(), HashMap::from([(handler.to_string(), v)]))),
        }
        Ok(v)
    }

    async fn flush_stats(
        &self,
        stats: &BatchStats,
        now: DateTime<Utc>,
    ) -> Result<(), AdapterError> {
        let day = now.format("%Y-%m-%d").to_string();
        for (handler, c) in stats.take() {
            let mut expr =
                "SET #kind = :kind, #handler = :h, #day = :day, expiresAt = :exp".to_string();
            if c.last_error.is_some() {
                expr.push_str(", lastError = :le, lastErrorAt = :now");
            }
            let mut adds = vec![
                "successes :s".to_string(),
                "failures :f".into(),
                "retries :r".into(),
                "deadLettered :dl".into(),
            ];
            for (i, count) in c.buckets.iter().enumerate() {
                if *count > 0 {
                    adds.push(format!("b{i} :b{i}"));
                }
            }
            expr.push_str(" ADD ");
            expr.push_str(&adds.join(", "));
            let mut req = self
                .client
                .update_item()
                .table_name(&self.table)
                .set_key(Some(layout::key(stats_pk(handler, &day), 0)))
                .update_expression(expr)
                .expression_attribute_names("#day", "day")
                .expression_attribute_names("#kind", attr::KIND)
                .expression_attribute_names("#handler", attr::HANDLER)
                .expression_attribute_values(":kind", s(kind::HANDLER_STATS))
                .expression_attribute_values(":h", s(handler))
                .expression_attribute_values(":day", s(&day))
                .expression_attribute_values(":exp", n(now.timestamp() + 90 * 24 * 3600))
                .expression_attribute_values(":s", n(c.successes))
                .expression_attribute_values(":f", n(c.failures))
                .expression_attribute_values(":r", n(c.retries))
                .expression_attribute_values(":dl", n(c.dead_lettered));
            for (i, count) in c.buckets.iter().enumerate() {
                if *count > 0 {
                    req = req.expression_attribute_values(format!(":b{i}"), n(count));
                }
            }
            if let Some(le) = &c.last_error {
                req = req
                    .expression_attribute_values(":le", s(le))
                    .expression_attribute_values(
                        ":now",
                        s(lending_events::envelope::format_time(&now)),
                    );
            }
            req.send()
                .await
                .map_err(|e| classify("UpdateItem(stats)", e))?;
        }
        Ok(())
    }
}

/// An update expression of a processing record, built in parts so the two protocols share
/// them; the same text serves an `UpdateItem` and a transaction's `Update`.
#[derive(Default)]
struct RecordUpdate {
    set: Vec<String>,
    add: Vec<String>,
    remove: Vec<String>,
    condition: Option<String>,
    names: HashMap<String, String>,
    values: HashMap<String, AttributeValue>,
}

impl RecordUpdate {
    fn name(&mut self, placeholder: &str, name: &str) -> &mut Self {
        self.names.insert(placeholder.into(), name.into());
        self
    }

    fn value(&mut self, placeholder: &str, value: AttributeValue) -> &mut Self {
        self.values.insert(placeholder.into(), value);
        self
    }

    fn expression(&self) -> String {
        let mut expr = format!("SET {}", self.set.join(", "));
        if !self.add.is_empty() {
            expr.push_str(&format!(" ADD {}", self.add.join(", ")));
        }
        if !self.remove.is_empty() {
            expr.push_str(&format!(" REMOVE {}", self.remove.join(", ")));
        }
        expr
    }
}
