//! The circuit breakers of targets, stored: core's pure [`Circuit`] per tenant and target
//! address, in one item of the table (`CB#`) with a version, so every concurrent delivery
//! sees and changes the same state (each change is a conditional write on the version
//! read; a lost race reads again). Closed with no failures costs one read per delivery and
//! no write.

use std::collections::HashMap;
use std::time::Duration;

use aws_sdk_dynamodb::types::AttributeValue;
use chrono::{DateTime, TimeDelta, Utc};
use lending_events::envelope::format_time;
pub use lending_events::subscription::{
    BreakerConfig, BreakerEvent, Circuit, Decision, Transition,
};

use crate::error::{classify, AdapterError};
use crate::store::layout::circuit_pk;

type Item = HashMap<String, AttributeValue>;

fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

fn n(v: impl ToString) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

/// A circuit as read, with its version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Seen(pub Circuit, pub u64);

/// What a delivery may do now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Gate {
    /// Send (the circuit is closed).
    Send,
    /// Send as the one probe of an open circuit.
    Probe,
    /// Wait this long (the circuit is open, or another delivery is probing).
    Wait(Duration),
}

#[derive(Clone)]
pub struct Circuits {
    client: aws_sdk_dynamodb::Client,
    table: String,
    pub config: BreakerConfig,
}

/// How often a change is tried again after losing the race to another delivery.
const RACES: u32 = 8;

impl Circuits {
    pub fn new(
        client: aws_sdk_dynamodb::Client,
        table: impl Into<String>,
        config: BreakerConfig,
    ) -> Circuits {
        Circuits {
            client,
            table: table.into(),
            config,
        }
    }

    /// The circuit and its version (0: never written).
    pub async fn load(&self, tenant: &str, address: &str) -> Result<(Circuit, u64), AdapterError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", s(circuit_pk(tenant, address)))
            .key("sk", n(0))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| classify("GetItem(circuit)", e))?;
        let Some(item) = out.item() else {
            return Ok((Circuit::default(), 0));
        };
        Ok((decode(item)?, version_of(item)))
    }

    /// Write `circuit` if the stored version is still `version`; false when another
    /// delivery changed it first.
    async fn store(
        &self,
        tenant: &str,
        address: &str,
        circuit: &Circuit,
        version: u64,
    ) -> Result<bool, AdapterError> {
        let body =
            serde_json::to_string(circuit).map_err(|e| AdapterError::Decode(e.to_string()))?;
        let mut put = self
            .client
            .put_item()
            .table_name(&self.table)
            .item("pk", s(circuit_pk(tenant, address)))
            .item("sk", n(0))
            .item("kind", s("circuit"))
            .item("circuit", s(body))
            .item("address", s(address))
            .item("version", n(version + 1))
            .item("updatedAt", s(format_time(&Utc::now())));
        put = if version == 0 {
            put.condition_expression("attribute_not_exists(pk)")
        } else {
            put.condition_expression("version = :v")
                .expression_attribute_values(":v", n(version))
        };
        match put.send().await {
            Ok(_) => Ok(true),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|se| se.is_conditional_check_failed_exception()) =>
            {
                Ok(false)
            }
            Err(e) => Err(classify("PutItem(circuit)", e)),
        }
    }

    /// May a delivery to `address` go now? An open circuit past its cool-down lets exactly
    /// one delivery through as the probe. Also the state read (after a probe's claim, the
    /// claimed state), to hand back to [`Circuits::record`].
    pub async fn gate(
        &self,
        tenant: &str,
        address: &str,
        now: DateTime<Utc>,
    ) -> Result<(Gate, Seen), AdapterError> {
        let (circuit, version) = self.load(tenant, address).await?;
        match circuit.decide(&self.config, now) {
            Decision::Send => Ok((Gate::Send, Seen(circuit, version))),
            Decision::Wait { until } => Ok((Gate::Wait(wait(until, now)), Seen(circuit, version))),
            Decision::Probe => {
                let (probing, _) = circuit.apply(&self.config, BreakerEvent::ProbeStarted(now));
                if self.store(tenant, address, &probing, version).await? {
                    Ok((Gate::Probe, Seen(probing, version + 1)))
                } else {
                    Ok((Gate::Wait(Duration::from_secs(1)), Seen(circuit, version)))
                }
            }
        }
    }

    /// Fold in what an attempt did; the transition it made (opened, closed), if any.
    /// `seen`: the state [`Circuits::gate`] read, tried first (a closed circuit without
    /// failures that sees a success costs nothing more).
    pub async fn record(
        &self,
        tenant: &str,
        address: &str,
        event: BreakerEvent,
        seen: Option<Seen>,
    ) -> Result<(Circuit, Option<Transition>), AdapterError> {
        let mut known = seen;
        for _ in 0..RACES {
            let Seen(circuit, version) = match known.take() {
                Some(s) => s,
                None => {
                    let (c, v) = self.load(tenant, address).await?;
                    Seen(c, v)
                }
            };
            let (next, transition) = circuit.apply(&self.config, event);
            if next == circuit || self.store(tenant, address, &next, version).await? {
                return Ok((next, transition));
            }
        }
        Err(AdapterError::Transient(format!(
            "the circuit of {address} changed {RACES} times while this delivery recorded its result"
        )))
    }

    /// When an open circuit lets its next probe through.
    pub fn retry_at(&self, circuit: &Circuit) -> Option<DateTime<Utc>> {
        match circuit {
            Circuit::Open { since, .. } => Some(*since + self.config.cool_down),
            Circuit::HalfOpen { probe_started, .. } => Some(*probe_started + self.config.cool_down),
            Circuit::Closed { .. } => None,
        }
    }
}

fn wait(until: DateTime<Utc>, now: DateTime<Utc>) -> Duration {
    (until - now)
        .to_std()
        .unwrap_or_default()
        .max(Duration::from_millis(200))
}

fn decode(item: &Item) -> Result<Circuit, AdapterError> {
    let body = item
        .get("circuit")
        .and_then(|v| v.as_s().ok())
        .ok_or_else(|| AdapterError::Decode("circuit item without circuit".into()))?;
    serde_json::from_str(body).map_err(|e| AdapterError::Decode(format!("circuit item: {e}")))
}

fn version_of(item: &Item) -> u64 {
    item.get("version")
        .and_then(|v| v.as_n().ok())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// The circuit as the API shows it.
pub fn view(circuit: &Circuit, config: &BreakerConfig) -> serde_json::Value {
    let mut v = serde_json::to_value(circuit).unwrap_or_default();
    let retry = match circuit {
        Circuit::Open { since, .. } => Some(*since + config.cool_down),
        Circuit::HalfOpen { probe_started, .. } => Some(*probe_started + config.cool_down),
        Circuit::Closed { .. } => None,
    };
    if let Some(t) = retry {
        v["retryAt"] = serde_json::json!(format_time(&t));
    }
    v
}

/// `DELIVERY_BREAKER_THRESHOLD` (default 5 failures in a row) and
/// `DELIVERY_BREAKER_COOLDOWN_MS` (default 30 000).
pub fn config_from_env() -> BreakerConfig {
    let d = BreakerConfig::default();
    let num = |k: &str| std::env::var(k).ok().and_then(|v| v.parse::<i64>().ok());
    BreakerConfig {
        failure_threshold: num("DELIVERY_BREAKER_THRESHOLD")
            .map_or(d.failure_threshold, |v| v.clamp(1, 1000) as u32),
        cool_down: num("DELIVERY_BREAKER_COOLDOWN_MS").map_or(d.cool_down, |v| {
            TimeDelta::milliseconds(v.clamp(100, 86_400_000))
        }),
    }
}
