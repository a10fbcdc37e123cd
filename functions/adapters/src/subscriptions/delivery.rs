//! The delivery function: takes messages off the delivery queue (with the same batch loop
//! as the domain runners, [`crate::runner::run_batch`]) and delivers each event to its
//! subscription's target, a signed webhook or another team's SQS queue, in CloudEvents
//! (default) or envelope format.
//!
//! Per message:
//! - the subscription is gone: dropped; paused: it waits;
//! - a live event of a subscription whose backfill has not finished: it waits (history
//!   first, in order);
//! - already delivered (a redelivered message): acknowledged;
//! - the target's circuit is open: it waits for the cool-down (not an attempt, never
//!   dead-lettered); afterwards one delivery probes;
//! - sent: 2xx delivered; 5xx, 408, 429 (after its `Retry-After`) and network errors retry
//!   with exponential backoff and jitter, up to `DELIVERY_MAX_ATTEMPTS` counted attempts;
//!   other 4xx go to the subscription's dead letters at once, with the status and an
//!   excerpt of the answer.
//!
//! Every attempt is logged ([`super::deliverylog`]). The `webhook-id` is the eventId, the
//! same on every retry, so a receiver can deduplicate.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_lambda_events::sqs::{SqsBatchResponse, SqsEvent, SqsMessage};
use aws_sdk_sqs::types::MessageAttributeValue;
use chrono::{DateTime, Utc};
use lending_events::catalog::{Catalog, DELIVERY};
use lending_events::envelope::format_time;
use lending_events::EventEnvelope;
use serde_json::{json, Value};
use uuid::Uuid;

use super::circuit::{BreakerConfig, BreakerEvent, Circuits, Gate, Seen, Transition};
use super::deliverylog::{Attempt, AttemptOutcome as Logged, DeliveryLog};
use super::matching::{delivery_message, DeliveryKind, DeliveryMessage};
use super::model::{self, Status, Target};
use super::repo::{StoredSubscription, SubscriptionStore};
use super::secrets::{SecretBox, SigningSecret};
use crate::error::{classify, AdapterError};
use crate::queue::{Publisher, QueuePublisher, SqsDomainQueue};
use crate::runner::{run_batch, Outcome};
use crate::store::indexes::{events_by_type, Window};
use crate::webhooks::sender::{Attempt as SentAttempt, Delivery, SendOutcome, WebhookSender};
use crate::webhooks::signing::Signer;
use chrono::TimeDelta;
use lending_events::subscription::{AttemptOutcome, RetryPolicy, Verdict};

/// The principal of what the delivery function records.
pub const DELIVERY_PRINCIPAL: &str = "delivery:delivery-handler";

/// Sends webhooks: the HTTP sender ([`WebhookSender`]), or a stand-in in tests.
pub trait WebhookPort: Send + Sync {
    fn post(&self, delivery: Delivery<'_>) -> impl Future<Output = SentAttempt> + Send;
}

impl WebhookPort for WebhookSender {
    async fn post(&self, delivery: Delivery<'_>) -> SentAttempt {
        self.send(&delivery).await
    }
}

/// The webhook sender of the delivery function under `egress` (checked again on every
/// connection), with the per-attempt deadline `DELIVERY_TIMEOUT_MS` (default 5000).
pub fn webhook_sender(egress: super::egress::EgressPolicy) -> Result<WebhookSender, AdapterError> {
    let timeout = std::env::var("DELIVERY_TIMEOUT_MS")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
        .map_or(crate::webhooks::sender::DEFAULT_TIMEOUT, |ms| {
            Duration::from_millis(ms.clamp(100, 30_000))
        });
    Ok(WebhookSender::new(egress)?.with_timeout(timeout))
}

/// Delivery settings from the environment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeliverySettings {
    /// Counted attempts before a failing delivery is dead-lettered
    /// (`DELIVERY_MAX_ATTEMPTS`, default 8).
    pub max_attempts: u32,
    /// Backoff: `DELIVERY_RETRY_BASE_MS` (default 1000), `DELIVERY_RETRY_CAP_MS` (default
    /// 300 000), with jitter, never sooner than a `Retry-After`.
    pub retry: RetryPolicy,
    /// How long a held message (an unfinished backfill) waits before it is looked at again
    /// (`DELIVERY_HOLD_MS`, default 2000).
    pub hold: Duration,
    /// How long a paused subscription's message waits before it is looked at again
    /// (`DELIVERY_PAUSED_HOLD_MS`, default 60 000). Each look is a receive: with the delivery
    /// queue's 1000 receives a pause can last about 16 hours before its deliveries reach
    /// the dead letters (redrive them after resuming).
    pub paused_hold: Duration,
    pub breaker: BreakerConfig,
}

impl Default for DeliverySettings {
    fn default() -> Self {
        DeliverySettings {
            max_attempts: 8,
            retry: RetryPolicy::default(),
            hold: Duration::from_secs(2),
            paused_hold: Duration::from_secs(60),
            breaker: BreakerConfig::default(),
        }
    }
}

impl DeliverySettings {
    pub fn from_env() -> DeliverySettings {
        let d = DeliverySettings::default();
        let num = |k: &str| std::env::var(k).ok().and_then(|v| v.parse::<i64>().ok());
        let ms = |k: &str, def: TimeDelta| {
            num(k).map_or(def, |v| TimeDelta::milliseconds(v.clamp(1, 86_400_000)))
        };
        DeliverySettings {
            max_attempts: num("DELIVERY_MAX_ATTEMPTS")
                .map_or(d.max_attempts, |n| n.clamp(1, 100) as u32),
            retry: RetryPolicy {
                base_delay: ms("DELIVERY_RETRY_BASE_MS", d.retry.base_delay),
                max_delay: ms("DELIVERY_RETRY_CAP_MS", d.retry.max_delay),
                ..d.retry
            },
            hold: num("DELIVERY_HOLD_MS").map_or(d.hold, |v| {
                Duration::from_millis(v.clamp(1, 43_200_000) as u64)
            }),
            paused_hold: num("DELIVERY_PAUSED_HOLD_MS").map_or(d.paused_hold, |v| {
                Duration::from_millis(v.clamp(1, 43_200_000) as u64)
            }),
            breaker: super::circuit::config_from_env(),
        }
    }

    /// The retry delay after `attempts` failed attempts.
    pub fn backoff(&self, attempts: u32) -> Duration {
        self.retry
            .backoff(attempts.max(1), Uuid::new_v4().as_u128() as u64)
            .to_std()
            .unwrap_or_default()
    }
}

/// A subscription as the delivery function uses it, with its secrets decrypted.
struct Ready {
    stored: StoredSubscription,
    signer: Arc<Signer>,
    at: Instant,
}

pub struct DeliveryRunner<W> {
    subscriptions: SubscriptionStore,
    secrets: SecretBox,
    log: DeliveryLog,
    circuits: Circuits,
    webhooks: W,
    sqs: aws_sdk_sqs::Client,
    publisher: QueuePublisher,
    /// The delivery queue as the batch loop uses it (visibility of retried messages).
    queue: SqsDomainQueue,
    /// The delivery queue (visibility changes, backfill sends) and the dead letters.
    queue_url: Option<String>,
    dlq_url: Option<String>,
    settings: DeliverySettings,
    cache: Mutex<HashMap<(String, Uuid), Arc<Ready>>>,
    cache_ttl: Duration,
}

/// What became of one delivery attempt.
enum Sent {
    Ok {
        status: Option<u16>,
    },
    Retry {
        status: Option<u16>,
        error: String,
        retry_after: Option<String>,
    },
    Permanent {
        status: u16,
        excerpt: String,
    },
}

impl<W: WebhookPort> DeliveryRunner<W> {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        subscriptions: SubscriptionStore,
        secrets: SecretBox,
        log: DeliveryLog,
        webhooks: W,
        sqs: aws_sdk_sqs::Client,
        queue_url: Option<String>,
        dlq_url: Option<String>,
        settings: DeliverySettings,
    ) -> Self {
        let circuits = Circuits::new(log.client().clone(), log.table(), settings.breaker);
        DeliveryRunner {
            subscriptions,
            secrets,
            log,
            circuits,
            webhooks,
            publisher: QueuePublisher::new(sqs.clone()),
            queue: SqsDomainQueue {
                client: sqs.clone(),
                queue_url: queue_url.clone(),
                dlq_url: dlq_url.clone(),
            },
            sqs,
            queue_url,
            dlq_url,
            settings,
            cache: Mutex::new(HashMap::new()),
            cache_ttl: Duration::from_secs(2),
        }
    }

    /// The delivery queue (deletes of handled messages, as the event source mapping does).
    pub fn queue(&self) -> &SqsDomainQueue {
        &self.queue
    }

    /// Handle one SQS batch of the delivery queue.
    pub async fn handle(&self, event: SqsEvent) -> SqsBatchResponse {
        run_batch(&event, &self.queue, |msg| self.process(msg)).await
    }

    /// The subscription with decrypted secrets, cached briefly (`fresh`: read again).
    async fn ready(
        &self,
        tenant: &str,
        id: &Uuid,
        fresh: bool,
    ) -> Result<Option<Arc<Ready>>, AdapterError> {
        let key = (tenant.to_string(), *id);
        let cached = self
            .cache
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&key)
            .cloned();
        if let Some(r) = &cached {
            if !fresh && r.at.elapsed() < self.cache_ttl {
                return Ok(Some(r.clone()));
            }
        }
        let Some(stored) = self.subscriptions.get(tenant, id).await? else {
            self.cache
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(&key);
            return Ok(None);
        };
        let now = Utc::now();
        let signing = |s: &StoredSubscription| {
            let previous = s
                .previous_secret
                .as_ref()
                .filter(|(_, until)| *until > now)
                .map(|(c, _)| c.clone());
            (s.secret.clone(), previous)
        };
        // The same ciphertexts as cached: no need to ask KMS again.
        let signer = match cached.filter(|c| signing(&c.stored) == signing(&stored)) {
            Some(c) => c.signer.clone(),
            None => {
                let sid = id.to_string();
                let (current, previous) = signing(&stored);
                let mut secrets = vec![self.secrets.open(tenant, &sid, &current).await?];
                if let Some(cipher) = previous {
                    secrets.push(self.secrets.open(tenant, &sid, &cipher).await?);
                }
                let texts: Vec<&str> = secrets.iter().map(SigningSecret::expose).collect();
                Arc::new(Signer::new(&texts)?)
            }
        };
        let ready = Arc::new(Ready {
            stored,
            signer,
            at: Instant::now(),
        });
        self.cache
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(key, ready.clone());
        Ok(Some(ready))
    }

    /// One message to an outcome; never panics, never loses the message.
    pub async fn process(&self, msg: &SqsMessage) -> Outcome {
        let body = msg.body.as_deref().unwrap_or("");
        let message: DeliveryMessage = match serde_json::from_str(body) {
            Ok(m) => m,
            Err(e) => {
                return self
                    .dead_letter(
                        msg,
                        &format!("undecodable delivery message: {e}"),
                        None,
                        None,
                    )
                    .await
            }
        };
        let result = match (&message.kind, &message.event) {
            (DeliveryKind::StartBackfill, _) => self.backfill(&message).await,
            (_, Some(event)) => self.deliver(msg, &message, event).await,
            (_, None) => Ok(self
                .dead_letter(msg, "a delivery message without its event", None, None)
                .await),
        };
        result.unwrap_or_else(|e| Outcome::Retry {
            reason: e.to_string(),
            delay: self.settings.backoff(1),
        })
    }

    async fn deliver(
        &self,
        msg: &SqsMessage,
        message: &DeliveryMessage,
        event: &EventEnvelope,
    ) -> Result<Outcome, AdapterError> {
        let tenant = &message.tenant_id;
        let sub_id = &message.subscription_id;
        if event.metadata.tenant_id != *tenant {
            return Ok(self
                .dead_letter(
                    msg,
                    "the event is not the subscription's tenant's",
                    None,
                    None,
                )
                .await);
        }
        let Some(mut ready) = self.ready(tenant, sub_id, false).await? else {
            tracing::info!(subscription = %sub_id, event_id = %event.event_id, "subscription deleted; delivery dropped");
            return Ok(Outcome::Done);
        };
        if ready.stored.subscription.status == Status::Paused {
            return Ok(hold(
                "the subscription is paused",
                self.settings.paused_hold,
            ));
        }
        if message.kind == DeliveryKind::Live && !ready.stored.backfill_done() {
            // The cached view may be behind: look again before holding.
            ready = match self.ready(tenant, sub_id, true).await? {
                Some(r) => r,
                None => return Ok(Outcome::Done),
            };
            if !ready.stored.backfill_done() {
                return Ok(hold(
                    "the subscription's backfill has not finished",
                    self.settings.hold,
                ));
            }
        }
        // A redelivered message of an event already delivered (a replay delivers again;
        // a first receive cannot have been delivered: SQS deduplicates the sends).
        let receives: u32 = msg
            .attributes
            .get("ApproximateReceiveCount")
            .and_then(|c| c.parse().ok())
            .unwrap_or(1);
        if message.kind != DeliveryKind::Replay
            && receives > 1
            && self.log.delivered(tenant, sub_id, &event.event_id).await?
        {
            return Ok(Outcome::Done);
        }
        let sub = &ready.stored.subscription;
        let address = model::address(&sub.target).to_string();
        let now = Utc::now();
        let (gate, seen) = self.circuits.gate(tenant, &address, now).await?;
        let probe = match gate {
            Gate::Wait(d) => return Ok(hold("the target's circuit is open", d)),
            Gate::Probe => true,
            Gate::Send => false,
        };
        let body = crate::webhooks::delivery_body(event, sub.format)?;
        let webhook_id = crate::webhooks::signing::webhook_id(&sub_id.to_string(), &event.event_id);
        let started = Instant::now();
        let sent = match &sub.target {
            Target::Webhook { url } => {
                let answer = self
                    .webhooks
                    .post(Delivery {
                        url,
                        webhook_id: &webhook_id,
                        body: &body,
                        signer: &ready.signer,
                        timestamp: now,
                    })
                    .await;
                match answer.outcome {
                    SendOutcome::Delivered { status } => Sent::Ok {
                        status: Some(status),
                    },
                    SendOutcome::RetryLater {
                        status,
                        retry_after,
                        body_excerpt,
                    } => Sent::Retry {
                        status: Some(status),
                        error: format!("HTTP {status}: {body_excerpt}"),
                        retry_after,
                    },
                    SendOutcome::Permanent {
                        status,
                        body_excerpt,
                    } => Sent::Permanent {
                        status,
                        excerpt: body_excerpt,
                    },
                    SendOutcome::NetworkError { message, .. } => Sent::Retry {
                        status: None,
                        error: message,
                        retry_after: None,
                    },
                    // The egress policy refuses the target now (its DNS answer changed):
                    // never sent, not the target's failure; it waits like a failure would.
                    SendOutcome::Refused { reason } => Sent::Retry {
                        status: None,
                        error: format!("refused: {reason}"),
                        retry_after: None,
                    },
                }
            }
            Target::Sqs { queue_url } => match self
                .send_sqs(queue_url, event, &body.bytes, body.content_type)
                .await
            {
                Ok(()) => Sent::Ok { status: None },
                Err(e) => Sent::Retry {
                    status: None,
                    error: e.to_string(),
                    retry_after: None,
                },
            },
        };
        let duration_ms = started.elapsed().as_millis() as u64;
        let mut attempt = Attempt::of(sub_id, event, Logged::Delivered, now);
        attempt.webhook_id = webhook_id.clone();
        attempt.duration_ms = duration_ms;
        let metric = |name: &'static str| {
            crate::metrics::Emf::new(&[("Function", "delivery-handler")])
                .count(name, 1)
                .emit();
        };
        match sent {
            Sent::Ok { status } => {
                attempt.status = status;
                let logged = self.log.record(tenant, &attempt, !probe).await?;
                self.after_success(&ready.stored, &address, seen).await;
                if message.kind == DeliveryKind::Backfill && logged.first_finish {
                    self.subscriptions
                        .count_backfill_finished(tenant, sub_id)
                        .await?;
                }
                metric("Delivered");
                Ok(Outcome::Done)
            }
            Sent::Permanent { status, excerpt } => {
                // The target answered: it is up, whatever it thinks of this event.
                self.after_success(&ready.stored, &address, seen).await;
                attempt.outcome = Logged::DeadLettered;
                attempt.status = Some(status);
                attempt.error = Some(format!("HTTP {status}: {excerpt}"));
                let outcome = self
                    .dead_letter(
                        msg,
                        &format!("the target answered {status}"),
                        Some(status),
                        Some(&excerpt),
                    )
                    .await;
                if matches!(outcome, Outcome::DeadLettered(_)) {
                    let logged = self.log.record(tenant, &attempt, !probe).await?;
                    if message.kind == DeliveryKind::Backfill && logged.first_finish {
                        self.subscriptions
                            .count_backfill_finished(tenant, sub_id)
                            .await?;
                    }
                    metric("DeadLettered");
                }
                Ok(outcome)
            }
            Sent::Retry {
                status,
                error,
                retry_after,
            } => {
                attempt.outcome = Logged::Retrying;
                attempt.status = status;
                attempt.error = Some(error.clone());
                metric("DeliveryFailed");
                let (circuit, transition) = self
                    .circuits
                    .record(
                        tenant,
                        &address,
                        BreakerEvent::Failed(Utc::now()),
                        Some(seen),
                    )
                    .await?;
                let logged = self.log.record(tenant, &attempt, !probe).await?;
                let opened = transition == Some(Transition::Opened);
                if opened {
                    let retry_at = self.circuits.retry_at(&circuit).unwrap_or(now);
                    self.record_circuit(&ready.stored, "Subscription.CircuitOpened",
                        json!({"consecutiveFailures": circuit.consecutive_failures(), "retryAt": format_time(&retry_at),
                            "lastError": error.chars().take(900).collect::<String>()}), &address).await;
                    metric("CircuitOpened");
                }
                if !probe && !opened && logged.counted_attempts >= self.settings.max_attempts {
                    let outcome = self
                        .dead_letter(
                            msg,
                            &format!("{} attempts failed; last: {error}", logged.counted_attempts),
                            status,
                            None,
                        )
                        .await;
                    if matches!(outcome, Outcome::DeadLettered(_)) {
                        attempt.outcome = Logged::DeadLettered;
                        self.log.record(tenant, &attempt, false).await?;
                        if message.kind == DeliveryKind::Backfill {
                            self.subscriptions
                                .count_backfill_finished(tenant, sub_id)
                                .await?;
                        }
                    }
                    return Ok(outcome);
                }
                // An open circuit: wait for the probe. Else the backoff, never sooner than the
                // target's Retry-After.
                let delay = match self.circuits.retry_at(&circuit) {
                    Some(at) => (at - Utc::now())
                        .to_std()
                        .unwrap_or_default()
                        .max(Duration::from_millis(200)),
                    None => {
                        let outcome = AttemptOutcome::Answered {
                            status: status.unwrap_or(503),
                            retry_after: retry_after.as_deref(),
                        };
                        match self.settings.retry.verdict(
                            logged.counted_attempts.max(1),
                            outcome,
                            Utc::now(),
                            Uuid::new_v4().as_u128() as u64,
                        ) {
                            Verdict::RetryAfter(d) => d.to_std().unwrap_or_default(),
                            _ => self.settings.backoff(logged.counted_attempts),
                        }
                    }
                };
                Ok(Outcome::Retry {
                    reason: error,
                    delay,
                })
            }
        }
    }

    async fn after_success(&self, stored: &StoredSubscription, address: &str, seen: Seen) {
        match self
            .circuits
            .record(
                &stored.subscription.tenant_id,
                address,
                BreakerEvent::Succeeded,
                Some(seen),
            )
            .await
        {
            Ok((_, Some(Transition::Closed))) => {
                self.record_circuit(stored, "Subscription.CircuitClosed", json!({}), address)
                    .await;
                crate::metrics::Emf::new(&[("Function", "delivery-handler")])
                    .count("CircuitClosed", 1)
                    .emit();
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "could not reset the circuit"),
        }
    }

    /// Record a circuit event on the subscription's stream (best effort: the circuit item
    /// is the truth; a lost event is logged).
    async fn record_circuit(
        &self,
        stored: &StoredSubscription,
        event_type: &str,
        mut payload: Value,
        address: &str,
    ) {
        let sub = &stored.subscription;
        payload["subscriptionId"] = json!(sub.subscription_id.to_string());
        payload["target"] = json!(address.chars().take(900).collect::<String>());
        let raw = json!({"eventType": event_type, "aggregateType": "Subscription",
            "aggregateId": sub.subscription_id.to_string(), "payload": payload,
            "metadata": {"source": DELIVERY}});
        let now = Utc::now();
        let ctx = lending_events::envelope::WriteContext {
            tenant_id: &sub.tenant_id,
            now,
            principal: DELIVERY_PRINCIPAL,
            producer: DELIVERY,
        };
        let appended = match lending_events::envelope::NewEvent::from_value_in(
            Catalog::builtin(),
            raw,
            &ctx,
            &mut Uuid::new_v4,
        ) {
            Ok(e) => {
                crate::store::EventStore::append(self.subscriptions.events(), vec![e], now).await
            }
            Err(e) => Err(e.into()),
        };
        match appended {
            Ok(_) => {
                tracing::warn!(subscription = %sub.subscription_id, event_type, target = address, "circuit changed")
            }
            Err(e) => tracing::error!(error = %e, event_type, "could not record the circuit event"),
        }
    }

    async fn send_sqs(
        &self,
        queue_url: &str,
        event: &EventEnvelope,
        body: &[u8],
        content_type: &str,
    ) -> Result<(), AdapterError> {
        let text = String::from_utf8_lossy(body).into_owned();
        let attr = |v: &str| {
            MessageAttributeValue::builder()
                .data_type("String")
                .string_value(v)
                .build()
                .map_err(|e| AdapterError::Aws(e.to_string()))
        };
        let mut req = self
            .sqs
            .send_message()
            .queue_url(queue_url)
            .message_body(text)
            .message_attributes("contentType", attr(content_type)?)
            .message_attributes("eventType", attr(&event.event_type)?);
        if queue_url.ends_with(".fifo") {
            req = req
                .message_group_id(event.stream().message_group())
                .message_deduplication_id(event.event_id.to_string());
        }
        req.send()
            .await
            .map_err(|e| classify("SendMessage(target)", e))?;
        Ok(())
    }

    /// Move a message to the subscriptions' dead letters with why (and the target's status
    /// and answer when there is one).
    async fn dead_letter(
        &self,
        msg: &SqsMessage,
        reason: &str,
        status: Option<u16>,
        excerpt: Option<&str>,
    ) -> Outcome {
        let Some(dlq) = &self.dlq_url else {
            return Outcome::Retry {
                reason: format!("{reason}; and no dead-letter queue is configured"),
                delay: self.settings.retry.max_delay.to_std().unwrap_or_default(),
            };
        };
        let attr = |v: &str| {
            MessageAttributeValue::builder()
                .data_type("String")
                .string_value(v)
                .build()
                .map_err(|e| AdapterError::Aws(e.to_string()))
        };
        let subscription = serde_json::from_str::<Value>(msg.body.as_deref().unwrap_or(""))
            .ok()
            .and_then(|v| v["subscriptionId"].as_str().map(str::to_string))
            .unwrap_or_else(|| "unknown".into());
        let send = async {
            let mut req = self
                .sqs
                .send_message()
                .queue_url(dlq)
                .message_body(
                    msg.body
                        .clone()
                        .filter(|b| !b.is_empty())
                        .unwrap_or_else(|| "(empty body)".into()),
                )
                .message_group_id(
                    msg.attributes
                        .get("MessageGroupId")
                        .cloned()
                        .unwrap_or_else(|| "unknown".into()),
                )
                .message_deduplication_id(
                    msg.message_id
                        .clone()
                        .unwrap_or_else(|| Uuid::new_v4().to_string()),
                )
                .message_attributes(
                    "failureReason",
                    attr(&reason.chars().take(1000).collect::<String>())?,
                )
                .message_attributes("subscriptionId", attr(&subscription)?)
                .message_attributes("failedAt", attr(&format_time(&Utc::now()))?);
            if let Some(st) = status {
                req = req.message_attributes("status", attr(&st.to_string())?);
            }
            if let Some(x) = excerpt.filter(|x| !x.is_empty()) {
                req = req.message_attributes(
                    "bodyExcerpt",
                    attr(&x.chars().take(1000).collect::<String>())?,
                );
            }
            if let Some(src) = &self.queue_url {
                req = req.message_attributes("sourceQueue", attr(src)?);
            }
            req.send()
                .await
                .map_err(|e| classify("SendMessage(delivery DLQ)", e))?;
            Ok::<(), AdapterError>(())
        };
        match send.await {
            Ok(()) => {
                tracing::error!(message_id = ?msg.message_id, %reason, "delivery dead-lettered");
                Outcome::DeadLettered(reason.to_string())
            }
            Err(e) => Outcome::Retry {
                reason: format!("{reason}; and the dead-letter send failed: {e}"),
                delay: self.settings.backoff(1),
            },
        }
    }

    /// Send the subscription's history from `startFrom` up to its live start, in order per
    /// aggregate, then record how many messages that was.
    async fn backfill(&self, message: &DeliveryMessage) -> Result<Outcome, AdapterError> {
        let tenant = &message.tenant_id;
        let Some(stored) = self
            .subscriptions
            .get(tenant, &message.subscription_id)
            .await?
        else {
            return Ok(Outcome::Done);
        };
        if stored.backfill_sent.is_some() {
            return Ok(Outcome::Done);
        }
        let (Some(from), Some(to)) = (stored.subscription.start_from, stored.live_from) else {
            return Ok(Outcome::Done);
        };
        let now = Utc::now();
        // Wait until every event up to the live start is stored and streamed.
        let ready_at = to + chrono::Duration::seconds(1);
        if ready_at > now {
            return Ok(hold(
                "the backfill waits for its live start",
                (ready_at - now).to_std().unwrap_or_default(),
            ));
        }
        let Some(queue) = &self.queue_url else {
            return Err(AdapterError::Config("no delivery queue configured".into()));
        };
        let events = history(
            self.log.client(),
            self.log.table(),
            tenant,
            &stored,
            from,
            to,
        )
        .await?;
        let messages = events
            .iter()
            .map(|e| delivery_message(&message.subscription_id, e, DeliveryKind::Backfill, None))
            .collect::<Result<Vec<_>, _>>()?;
        let failed = self.publisher.send(queue, &messages).await?;
        if !failed.is_empty() {
            return Err(AdapterError::Transient(format!(
                "{} backfill messages not sent",
                failed.len()
            )));
        }
        self.subscriptions
            .set_backfill_sent(tenant, &message.subscription_id, messages.len() as u64)
            .await?;
        tracing::info!(subscription = %message.subscription_id, events = messages.len(), "backfill sent");
        Ok(Outcome::Done)
    }
}

fn hold(reason: &str, delay: Duration) -> Outcome {
    Outcome::Retry {
        reason: reason.to_string(),
        delay,
    }
}

/// The event types a filter can match: its `eventTypes` (patterns expanded over the
/// catalog), or every catalog type.
fn candidate_types(filter: &Value) -> Vec<String> {
    let all: Vec<&str> = Catalog::builtin().specs().map(|s| s.event_type).collect();
    match filter.get("eventTypes").and_then(Value::as_array) {
        None => all.iter().map(|t| t.to_string()).collect(),
        Some(list) => {
            let mut out: Vec<String> = Vec::new();
            for p in list.iter().filter_map(Value::as_str) {
                match p.strip_suffix('*') {
                    Some(prefix) => out.extend(
                        all.iter()
                            .filter(|t| t.starts_with(prefix))
                            .map(|t| t.to_string()),
                    ),
                    None => out.push(p.to_string()),
                }
            }
            out.sort();
            out.dedup();
            out
        }
    }
}

/// The tenant's events the subscription matches, recorded in `[from, to]`, ordered by
/// aggregate and sequence.
async fn history(
    ddb: &aws_sdk_dynamodb::Client,
    table: &str,
    tenant: &str,
    stored: &StoredSubscription,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Result<Vec<EventEnvelope>, AdapterError> {
    let window = Window::between(Some(&from), Some(&to));
    let filter = &stored.subscription.filter;
    let mut events = Vec::new();
    for t in candidate_types(filter.as_json()) {
        let mut start = None;
        loop {
            let page = events_by_type(ddb, table, tenant, &t, &window, 1000, start).await?;
            events.extend(page.events.into_iter().filter(|e| filter.matches(e)));
            start = page.last_key;
            if start.is_none() {
                break;
            }
        }
    }
    events.sort_by(|a, b| {
        (&a.aggregate_type, &a.aggregate_id, a.sequence).cmp(&(
            &b.aggregate_type,
            &b.aggregate_id,
            b.sequence,
        ))
    });
    Ok(events)
}
