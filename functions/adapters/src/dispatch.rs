//! Dispatch: DynamoDB stream records to the domain queues that subscribe to them.
//!
//! Records arrive in stream order per aggregate. For each inserted event item, the routing
//! table names the domains; messages are grouped per queue and sent ten at a time. If some
//! message cannot be sent, the response names the first record that is not fully delivered,
//! and the event source mapping retries from there (FIFO deduplication on the eventId and
//! handler idempotency absorb the resends).

use std::collections::BTreeMap;

use aws_lambda_events::dynamodb::{Event, EventRecord};
use aws_lambda_events::streams::{DynamoDbBatchItemFailure, DynamoDbEventResponse};
use lending_events::routing::RoutingTable;
use lending_events::EventEnvelope;

use crate::config::Config;
use crate::queue::{OutgoingMessage, Publisher, QueuePublisher};
use crate::subscriptions::matching::SubscriptionMatcher;

/// Dispatch over a [`Publisher`]: SQS in the functions, wrapped with faults by the local
/// runner, in memory in tests.
pub struct Dispatcher<P = QueuePublisher> {
    publisher: P,
    routing: RoutingTable,
    config: Config,
    /// Subscriptions of other systems: the matcher and the delivery queue.
    subscriptions: Option<(SubscriptionMatcher, String)>,
}

/// The event carried by a stream record, if it is a newly inserted event item.
pub fn event_of(record: &EventRecord) -> Option<Result<(String, EventEnvelope), String>> {
    if record.event_name != "INSERT" {
        return None;
    }
    crate::store::layout::event_in_image(&record.change.new_image)
        .map(|decoded| decoded.map_err(|e| e.to_string()))
}

impl<P: Publisher> Dispatcher<P> {
    pub fn new(publisher: P, routing: RoutingTable, config: Config) -> Self {
        Dispatcher {
            publisher,
            routing,
            config,
            subscriptions: None,
        }
    }

    /// Also match every event against the tenants' subscriptions and send the matches to
    /// `delivery_queue_url`.
    pub fn with_subscriptions(
        mut self,
        matcher: SubscriptionMatcher,
        delivery_queue_url: String,
    ) -> Self {
        self.subscriptions = Some((matcher, delivery_queue_url));
        self
    }

    pub async fn handle(&self, event: Event) -> DynamoDbEventResponse {
        // queue url -> (message, index of the record it came from)
        let mut per_queue: BTreeMap<&str, Vec<(OutgoingMessage, usize)>> = BTreeMap::new();
        let mut first_failed: Option<usize> = None;
        for (i, record) in event.records.iter().enumerate() {
            let (body, env) = match event_of(record) {
                None => continue,
                Some(Ok(x)) => x,
                Some(Err(why)) => {
                    // A bad item can never be delivered; skipping it keeps the shard moving.
                    tracing::error!(record = %record.event_id, %why, "skipping undecodable stream record");
                    continue;
                }
            };
            for domain in self.routing.domains_for(&env.event_type) {
                let Some(url) = self.config.queue_url(domain) else {
                    tracing::error!(%domain, event_type = %env.event_type, "no queue configured for domain");
                    first_failed = Some(first_failed.map_or(i, |f| f.min(i)));
                    continue;
                };
                per_queue.entry(url).or_default().push((
                    OutgoingMessage {
                        body: body.clone(),
                        group: env.stream().message_group(),
                        dedup: env.event_id.to_string(),
                        event_type: env.event_type.clone(),
                    },
                    i,
                ));
            }
            if let Some((matcher, url)) = &self.subscriptions {
                match matcher.deliveries(&env).await {
                    Ok(messages) => per_queue
                        .entry(url.as_str())
                        .or_default()
                        .extend(messages.into_iter().map(|m| (m, i))),
                    Err(e) => {
                        tracing::error!(error = %e, event_id = %env.event_id, "subscriptions not matched");
                        first_failed = Some(first_failed.map_or(i, |f| f.min(i)));
                    }
                }
            }
            tracing::info!(event_id = %env.event_id, event_type = %env.event_type,
                correlation_id = %env.metadata.correlation_id, "dispatching");
        }
        for (url, msgs) in &per_queue {
            let (messages, origins): (Vec<OutgoingMessage>, Vec<usize>) =
                msgs.iter().cloned().unzip();
            let failed = match self.publisher.send(url, &messages).await {
                Ok(f) => f,
                Err(e) => {
                    tracing::error!(error = %e, queue = url, "dispatch failed");
                    (0..messages.len()).collect()
                }
            };
            if let Some(&f) = failed.first() {
                let rec = origins[f];
                first_failed = Some(first_failed.map_or(rec, |x| x.min(rec)));
            }
        }
        let sent: usize = per_queue.values().map(Vec::len).sum();
        crate::metrics::Emf::new(&[("Function", "dispatch")])
            .count("EventsDispatched", sent as u64)
            .emit();
        let mut resp = DynamoDbEventResponse::default();
        if let Some(i) = first_failed {
            let mut failure = DynamoDbBatchItemFailure::default();
            failure.item_identifier = event.records[i].change.sequence_number.clone();
            resp.batch_item_failures.push(failure);
        }
        resp
    }
}
