//! The circuit breaker of one target (per tenant and target address), kept in the table so
//! every concurrent delivery sees the same state:
//! - closed: deliveries go; failures in a row are counted, a success resets the count;
//! - after `threshold` failures in a row it opens: deliveries wait in the queue (they are
//!   neither attempted nor dead-lettered) until `retryAt`;
//! - then one delivery claims the probe (half-open); its success closes the circuit, its
//!   failure opens it again for another cool-down.
//!
//! Opening and closing are reported to the caller, which records them as events.

use std::collections::HashMap;
use std::time::Duration;

use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue};
use chrono::{DateTime, Utc};
use lending_events::envelope::format_time;

use super::keys::circuit_pk;
use crate::error::{classify, AdapterError};

type Item = HashMap<String, AttributeValue>;

fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

fn n(v: impl ToString) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

/// Breaker settings: `DELIVERY_BREAKER_THRESHOLD` (default 5 failures in a row) and
/// `DELIVERY_BREAKER_COOLDOWN_MS` (default 30 000).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BreakerSettings {
    pub threshold: u32,
    pub cooldown: Duration,
}

impl Default for BreakerSettings {
    fn default() -> Self {
        BreakerSettings {
            threshold: 5,
            cooldown: Duration::from_secs(30),
        }
    }
}

/// What a delivery may do now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Gate {
    /// Send (the circuit is closed).
    Send,
    /// Send as the probe of an open circuit.
    Probe,
    /// Wait this long; the circuit is open (or another delivery is probing).
    Wait(Duration),
}

/// What a recorded result changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Transition {
    None,
    /// The circuit opened after this many failures in a row; it retries at the time.
    Opened {
        failures: u32,
        retry_at: DateTime<Utc>,
    },
    Closed,
}

#[derive(Clone)]
pub struct Circuits {
    client: aws_sdk_dynamodb::Client,
    table: String,
    pub settings: BreakerSettings,
}

fn time_of(item: &Item, k: &str) -> Option<DateTime<Utc>> {
    item.get(k)
        .and_then(|v| v.as_s().ok())
        .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
        .map(|t| t.with_timezone(&Utc))
}

fn until(t: DateTime<Utc>, now: DateTime<Utc>) -> Duration {
    (t - now).to_std().unwrap_or_default().max(Duration::from_millis(200))
}

impl Circuits {
    pub fn new(client: aws_sdk_dynamodb::Client, table: impl Into<String>, settings: BreakerSettings) -> Circuits {
        Circuits {
            client,
            table: table.into(),
            settings,
        }
    }

    async fn read(&self, pk: &str) -> Result<Option<Item>, AdapterError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", s(pk))
            .key("sk", n(0))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| classify("GetItem(circuit)", e))?;
        Ok(out.item().cloned())
    }

    /// May a delivery to `address` go now?
    pub async fn gate(&self, tenant: &str, address: &str, now: DateTime<Utc>) -> Result<Gate, AdapterError> {
        let pk = circuit_pk(tenant, address);
        let Some(item) = self.read(&pk).await? else {
            return Ok(Gate::Send);
        };
        let state = item.get("state").and_then(|v| v.as_s().ok()).map(String::as_str);
        if state != Some("open") {
            return Ok(Gate::Send);
        }
        let retry_at = time_of(&item, "retryAt").unwrap_or(now);
        if retry_at > now {
            return Ok(Gate::Wait(until(retry_at, now)));
        }
        // Claim the probe: push retryAt one cool-down ahead, so nobody else probes meanwhile.
        let next = now + chrono::Duration::from_std(self.settings.cooldown).unwrap_or_default();
        let claimed = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(&pk))
            .key("sk", n(0))
            .update_expression("SET retryAt = :next")
            .condition_expression("#state = :open AND retryAt = :seen")
            .expression_attribute_names("#state", "state")
            .expression_attribute_values(":open", s("open"))
            .expression_attribute_values(":seen", s(format_time(&retry_at)))
            .expression_attribute_values(":next", s(format_time(&next)))
            .send()
            .await;
        match claimed {
            Ok(_) => Ok(Gate::Probe),
            Err(e) if e.as_service_error().is_some_and(|se| se.is_conditional_check_failed_exception()) => {
                Ok(Gate::Wait(Duration::from_secs(1)))
            }
            Err(e) => Err(classify("UpdateItem(circuit probe)", e)),
        }
    }

    /// A delivery reached the target: reset the count, close an open circuit.
    pub async fn succeeded(&self, tenant: &str, address: &str) -> Result<Transition, AdapterError> {
        let pk = circuit_pk(tenant, address);
        let out = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(&pk))
            .key("sk", n(0))
            .update_expression("SET #state = :closed, failures = :zero REMOVE retryAt")
            .condition_expression("attribute_exists(pk) AND (#state = :open OR failures > :zero)")
            .expression_attribute_names("#state", "state")
            .expression_attribute_values(":closed", s("closed"))
            .expression_attribute_values(":open", s("open"))
            .expression_attribute_values(":zero", n(0))
            .return_values(ReturnValue::AllOld)
            .send()
            .await;
        match out {
            Ok(o) => {
                let was_open = o
                    .attributes()
                    .and_then(|a| a.get("state"))
                    .and_then(|v| v.as_s().ok())
                    .is_some_and(|st| st == "open");
                Ok(if was_open { Transition::Closed } else { Transition::None })
            }
            // Nothing to reset: the usual case, one conditional write that changes nothing.
            Err(e) if e.as_service_error().is_some_and(|se| se.is_conditional_check_failed_exception()) => {
                Ok(Transition::None)
            }
            Err(e) => Err(classify("UpdateItem(circuit success)", e)),
        }
    }

    /// A delivery failed in a way that counts against the target (5xx, 408, 429, network).
    pub async fn failed(
        &self,
        tenant: &str,
        address: &str,
        probe: bool,
        now: DateTime<Utc>,
    ) -> Result<Transition, AdapterError> {
        let pk = circuit_pk(tenant, address);
        let retry_at = now + chrono::Duration::from_std(self.settings.cooldown).unwrap_or_default();
        if probe {
            // The probe failed: open for another cool-down (no new event: it stayed open).
            self.client
                .update_item()
                .table_name(&self.table)
                .key("pk", s(&pk))
                .key("sk", n(0))
                .update_expression("SET #state = :open, retryAt = :at ADD failures :one")
                .expression_attribute_names("#state", "state")
                .expression_attribute_values(":open", s("open"))
                .expression_attribute_values(":at", s(format_time(&retry_at)))
                .expression_attribute_values(":one", n(1))
                .send()
                .await
                .map_err(|e| classify("UpdateItem(circuit probe failed)", e))?;
            return Ok(Transition::None);
        }
        let out = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(&pk))
            .key("sk", n(0))
            .update_expression("SET address = :addr, #state = if_not_exists(#state, :closed) ADD failures :one")
            .expression_attribute_names("#state", "state")
            .expression_attribute_values(":addr", s(address))
            .expression_attribute_values(":closed", s("closed"))
            .expression_attribute_values(":one", n(1))
            .return_values(ReturnValue::AllNew)
            .send()
            .await
            .map_err(|e| classify("UpdateItem(circuit failure)", e))?;
        let attrs = out.attributes().cloned().unwrap_or_default();
        let failures: u32 = attrs
            .get("failures")
            .and_then(|v| v.as_n().ok())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        let closed = attrs.get("state").and_then(|v| v.as_s().ok()).is_none_or(|st| st == "closed");
        if !closed || failures < self.settings.threshold {
            return Ok(Transition::None);
        }
        // Exactly one delivery opens it (and records the event).
        let opened = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(&pk))
            .key("sk", n(0))
            .update_expression("SET #state = :open, retryAt = :at, openedAt = :now")
            .condition_expression("#state = :closed")
            .expression_attribute_names("#state", "state")
            .expression_attribute_values(":open", s("open"))
            .expression_attribute_values(":closed", s("closed"))
            .expression_attribute_values(":at", s(format_time(&retry_at)))
            .expression_attribute_values(":now", s(format_time(&now)))
            .send()
            .await;
        match opened {
            Ok(_) => Ok(Transition::Opened { failures, retry_at }),
            Err(e) if e.as_service_error().is_some_and(|se| se.is_conditional_check_failed_exception()) => {
                Ok(Transition::None)
            }
            Err(e) => Err(classify("UpdateItem(circuit open)", e)),
        }
    }
}
