//! Subscriptions in the event table: each change writes the subscription item and its
//! `Subscription.*` event in one transaction, so the item and the history never disagree
//! and a failed request stores nothing.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::{AttributeValue, Put, TransactWriteItem};
use chrono::{DateTime, Utc};
use lending_events::catalog::{Catalog, OPERATOR};
use lending_events::envelope::{format_time, NewEvent, WriteContext};
use lending_events::EventEnvelope;
use serde_json::{json, Value};
use uuid::Uuid;

use super::model::Subscription;
use crate::error::{classify, AdapterError};
use crate::store::layout::{subscription_sk, subscriptions_pk};
use crate::store::DynamoStore;

type Item = HashMap<String, AttributeValue>;

fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

fn n(v: u64) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

fn str_of<'a>(item: &'a Item, k: &str) -> Option<&'a str> {
    item.get(k).and_then(|v| v.as_s().ok()).map(String::as_str)
}

/// A subscription item: the subscription and its encrypted signing secrets.
#[derive(Debug, Clone)]
pub struct StoredSubscription {
    pub subscription: Subscription,
    /// The current secret's ciphertext.
    pub secret: String,
    /// After a rotation: the previous secret's ciphertext and until when it still signs.
    pub previous_secret: Option<(String, DateTime<Utc>)>,
    /// The end of the backfill window (`startFrom` subscriptions): live delivery covers
    /// events recorded after it.
    pub live_from: Option<DateTime<Utc>>,
    /// Backfill progress: messages sent, and delivered (or dead-lettered); `None` before
    /// the backfill ran.
    pub backfill_sent: Option<u64>,
    pub backfill_finished: u64,
}

impl StoredSubscription {
    /// Whether every backfilled message reached its end, so live ones may go.
    pub fn backfill_done(&self) -> bool {
        match (self.subscription.start_from, self.backfill_sent) {
            (None, _) => true,
            (Some(_), None) => false,
            (Some(_), Some(sent)) => self.backfill_finished >= sent,
        }
    }

    /// The condition that the item is as read: at `version`, with the backfill counters
    /// this copy holds (they change without a version bump).
    fn unchanged_since_read(&self, version: u64) -> (String, Item) {
        let mut values = HashMap::from([
            (":v".to_string(), n(version)),
            (":finished".to_string(), n(self.backfill_finished)),
        ]);
        let finished = if self.backfill_finished == 0 {
            "(attribute_not_exists(backfillFinished) OR backfillFinished = :finished)"
        } else {
            "backfillFinished = :finished"
        };
        let sent = match self.backfill_sent {
            Some(sent) => {
                values.insert(":sent".into(), n(sent));
                "backfillSent = :sent"
            }
            None => "attribute_not_exists(backfillSent)",
        };
        (format!("version = :v AND {finished} AND {sent}"), values)
    }

    fn item(&self) -> Result<Item, AdapterError> {
        let sub = &self.subscription;
        let body = serde_json::to_string(sub).map_err(|e| AdapterError::Decode(e.to_string()))?;
        let mut item = HashMap::from([
            ("pk".into(), s(subscriptions_pk(&sub.tenant_id))),
            ("sk".into(), n(subscription_sk(&sub.subscription_id))),
            ("kind".into(), s("subscription")),
            ("subscription".into(), s(body)),
            ("secret".into(), s(&self.secret)),
            ("version".into(), n(sub.version)),
            ("backfillFinished".into(), n(self.backfill_finished)),
        ]);
        if let Some((cipher, until)) = &self.previous_secret {
            item.insert("previousSecret".into(), s(cipher));
            item.insert("previousValidUntil".into(), s(format_time(until)));
        }
        if let Some(t) = &self.live_from {
            item.insert("liveFrom".into(), s(format_time(t)));
        }
        if let Some(sent) = self.backfill_sent {
            item.insert("backfillSent".into(), n(sent));
        }
        Ok(item)
    }

    pub fn from_item(item: &Item) -> Result<StoredSubscription, AdapterError> {
        let subscription: Subscription = serde_json::from_str(
            str_of(item, "subscription")
                .ok_or_else(|| AdapterError::Decode("subscription item without body".into()))?,
        )
        .map_err(|e| AdapterError::Decode(format!("subscription item: {e}")))?;
        let time = |k: &str| {
            str_of(item, k)
                .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
                .map(|t| t.with_timezone(&Utc))
        };
        let num = |k: &str| {
            item.get(k)
                .and_then(|v| v.as_n().ok())
                .and_then(|v| v.parse::<u64>().ok())
        };
        Ok(StoredSubscription {
            secret: str_of(item, "secret").unwrap_or_default().to_string(),
            previous_secret: str_of(item, "previousSecret")
                .zip(time("previousValidUntil"))
                .map(|(c, t)| (c.to_string(), t)),
            live_from: time("liveFrom"),
            backfill_sent: num("backfillSent"),
            backfill_finished: num("backfillFinished").unwrap_or(0),
            subscription,
        })
    }
}

/// Reads and writes subscriptions.
#[derive(Clone)]
pub struct SubscriptionStore {
    store: DynamoStore,
}

impl SubscriptionStore {
    pub fn new(store: DynamoStore) -> SubscriptionStore {
        SubscriptionStore { store }
    }

    pub fn events(&self) -> &DynamoStore {
        &self.store
    }

    fn client(&self) -> &aws_sdk_dynamodb::Client {
        self.store.client()
    }

    fn table(&self) -> &str {
        self.store.table()
    }

    /// The `Subscription.*` event of a change, as `principal`. Concurrent changes are
    /// refused by the item's `version` condition; the event goes to the head of the
    /// subscription's stream (the delivery function appends circuit events there too).
    pub fn event(
        sub: &Subscription,
        event_type: &str,
        payload: Value,
        principal: &str,
        producer: &str,
        now: DateTime<Utc>,
    ) -> Result<NewEvent, AdapterError> {
        let id = sub.subscription_id.to_string();
        let raw = json!({"eventType": event_type, "aggregateType": "Subscription",
            "aggregateId": id, "payload": payload, "metadata": {"source": producer}});
        let ctx = WriteContext {
            tenant_id: &sub.tenant_id,
            now,
            principal,
            producer,
        };
        Ok(NewEvent::from_value_in(
            Catalog::builtin(),
            raw,
            &ctx,
            &mut Uuid::new_v4,
        )?)
    }

    fn put(
        &self,
        item: Item,
        condition: &str,
        values: Item,
    ) -> Result<TransactWriteItem, AdapterError> {
        let mut put = Put::builder()
            .table_name(self.table())
            .set_item(Some(item))
            .condition_expression(condition);
        if !values.is_empty() {
            put = put.set_expression_attribute_values(Some(values));
        }
        let put = put.build().map_err(|e| AdapterError::Aws(e.to_string()))?;
        Ok(TransactWriteItem::builder().put(put).build())
    }

    /// Store a new subscription (version 1) with its `Subscription.Created` event.
    pub async fn create(
        &self,
        stored: &StoredSubscription,
        principal: &str,
    ) -> Result<EventEnvelope, AdapterError> {
        let sub = &stored.subscription;
        let event = Self::event(
            sub,
            "Subscription.Created",
            sub.created_payload(),
            principal,
            OPERATOR,
            sub.created_at,
        )?;
        let put = self.put(stored.item()?, "attribute_not_exists(pk)", Item::new())?;
        self.append_one(event, put, sub.created_at).await
    }

    /// Replace a subscription whose stored version is `stored.subscription.version - 1`,
    /// with its event (of the operator, or `producer`).
    pub async fn replace(
        &self,
        stored: &StoredSubscription,
        event_type: &str,
        payload: Value,
        principal: &str,
        producer: &str,
    ) -> Result<EventEnvelope, AdapterError> {
        let sub = &stored.subscription;
        let previous = sub.version.saturating_sub(1);
        let event = Self::event(
            sub,
            event_type,
            payload,
            principal,
            producer,
            sub.updated_at,
        )?;
        let (condition, values) = stored.unchanged_since_read(previous);
        let put = self.put(stored.item()?, &condition, values)?;
        self.append_one(event, put, sub.updated_at).await
    }

    /// Change a subscription with its event. `change` edits the stored subscription and
    /// returns the event's payload; the write lands only if nothing else wrote the item
    /// since it was read (a backfill counts its deliveries on the same item), else the
    /// subscription is read and changed again, a few times. `None`: no such subscription.
    pub async fn modify(
        &self,
        tenant: &str,
        id: &Uuid,
        event_type: &str,
        principal: &str,
        mut change: impl FnMut(&mut StoredSubscription, DateTime<Utc>) -> Value,
    ) -> Result<Option<StoredSubscription>, AdapterError> {
        const ATTEMPTS: usize = 5;
        for attempt in 1..=ATTEMPTS {
            let Some(mut stored) = self.get(tenant, id).await? else {
                return Ok(None);
            };
            let now = Utc::now();
            let payload = change(&mut stored, now);
            stored.subscription.version += 1;
            stored.subscription.updated_at = now;
            match self
                .replace(&stored, event_type, payload, principal, OPERATOR)
                .await
            {
                Ok(_) => return Ok(Some(stored)),
                Err(
                    AdapterError::SequenceConflict { .. } | AdapterError::StreamContended { .. },
                ) if attempt < ATTEMPTS => {}
                Err(e) => return Err(e),
            }
        }
        unreachable!("the last attempt returns")
    }

    /// Delete a subscription (expected at `stored`'s version) with its
    /// `Subscription.Deleted` event. The item stays as a tombstone without its secrets (no
    /// role may delete items of the table); reads no longer see it.
    pub async fn delete(
        &self,
        stored: &StoredSubscription,
        principal: &str,
        now: DateTime<Utc>,
    ) -> Result<EventEnvelope, AdapterError> {
        let sub = &stored.subscription;
        let event = Self::event(
            sub,
            "Subscription.Deleted",
            json!({"subscriptionId": sub.subscription_id.to_string()}),
            principal,
            OPERATOR,
            now,
        )?;
        let mut tombstone = stored.clone();
        tombstone.secret = String::new();
        tombstone.previous_secret = None;
        tombstone.subscription.version += 1;
        let mut item = tombstone.item()?;
        item.insert("deletedAt".into(), s(format_time(&now)));
        let put = self.put(
            item,
            "version = :v",
            HashMap::from([(":v".into(), n(sub.version))]),
        )?;
        self.append_one(event, put, now).await
    }

    /// Append one event with the subscription item's write, in one transaction: the change
    /// and its record land together or not at all.
    async fn append_one(
        &self,
        event: NewEvent,
        put: TransactWriteItem,
        now: DateTime<Utc>,
    ) -> Result<EventEnvelope, AdapterError> {
        let mut events = self.store.append_with(vec![event], vec![put], now).await?;
        events
            .pop()
            .ok_or_else(|| AdapterError::Decode("the store returned no event".into()))
    }

    /// One subscription of a tenant.
    pub async fn get(
        &self,
        tenant: &str,
        id: &Uuid,
    ) -> Result<Option<StoredSubscription>, AdapterError> {
        let out = self
            .client()
            .get_item()
            .table_name(self.table())
            .key("pk", s(subscriptions_pk(tenant)))
            .key("sk", n(subscription_sk(id)))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| classify("GetItem(subscription)", e))?;
        match out.item().filter(|i| !i.contains_key("deletedAt")) {
            Some(item) => {
                let stored = StoredSubscription::from_item(item)?;
                // The key is derived from the id: make sure it is this one.
                Ok((stored.subscription.subscription_id == *id).then_some(stored))
            }
            None => Ok(None),
        }
    }

    /// Every subscription of a tenant (one partition), in key order.
    pub async fn list(&self, tenant: &str) -> Result<Vec<StoredSubscription>, AdapterError> {
        let mut out = Vec::new();
        let mut start: Option<Item> = None;
        loop {
            let page = self
                .client()
                .query()
                .table_name(self.table())
                .key_condition_expression("pk = :pk")
                .expression_attribute_values(":pk", s(subscriptions_pk(tenant)))
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(|e| classify("Query(subscriptions)", e))?;
            for item in page.items().iter().filter(|i| !i.contains_key("deletedAt")) {
                out.push(StoredSubscription::from_item(item)?);
            }
            start = page.last_evaluated_key().cloned();
            if start.is_none() {
                return Ok(out);
            }
        }
    }

    /// Record how many messages a backfill sent (once).
    pub async fn set_backfill_sent(
        &self,
        tenant: &str,
        id: &Uuid,
        sent: u64,
    ) -> Result<(), AdapterError> {
        let r = self
            .client()
            .update_item()
            .table_name(self.table())
            .key("pk", s(subscriptions_pk(tenant)))
            .key("sk", n(subscription_sk(id)))
            .update_expression("SET backfillSent = :n")
            .condition_expression("attribute_exists(pk) AND attribute_not_exists(backfillSent)")
            .expression_attribute_values(":n", n(sent))
            .send()
            .await;
        match r {
            Ok(_) => Ok(()),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|se| se.is_conditional_check_failed_exception()) =>
            {
                Ok(())
            }
            Err(e) => Err(classify("UpdateItem(backfillSent)", e)),
        }
    }

    /// Count one backfilled message as finished (delivered or dead-lettered).
    pub async fn count_backfill_finished(
        &self,
        tenant: &str,
        id: &Uuid,
    ) -> Result<(), AdapterError> {
        let r = self
            .client()
            .update_item()
            .table_name(self.table())
            .key("pk", s(subscriptions_pk(tenant)))
            .key("sk", n(subscription_sk(id)))
            .update_expression("ADD backfillFinished :one")
            .condition_expression("attribute_exists(pk)")
            .expression_attribute_values(":one", n(1))
            .send()
            .await;
        match r {
            Ok(_) => Ok(()),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|se| se.is_conditional_check_failed_exception()) =>
            {
                Ok(())
            }
            Err(e) => Err(classify("UpdateItem(backfillFinished)", e)),
        }
    }
}
