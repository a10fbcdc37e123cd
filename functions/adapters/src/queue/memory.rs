//! The queue port in memory: one FIFO queue with its DLQ and redrive policy, plus what was
//! published, for unit tests of the batch runner and dispatch without LocalStack.
//!
//! Time does not pass on its own. A received message stays in flight until it is deleted
//! or until [`MemoryQueue::wait_out_visibility`] says its wait is over; the delay the runner
//! asked for is kept on the message ([`QueuedMessage::visibility`]) for tests to read. As
//! on SQS FIFO, a receive hands out a group's messages in order and nothing of a group that
//! has a message in flight; a message received [`MemoryQueue::max_receive_count`] times is
//! moved to the DLQ (without a reason) instead of being received again.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::time::Duration;

use aws_lambda_events::sqs::{SqsBatchResponse, SqsEvent, SqsMessage, SqsMessageAttribute};

use super::{DeadLetter, DomainQueue, OutgoingMessage, Publisher, VisibilityChange};
use crate::error::AdapterError;

/// A message on the queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueuedMessage {
    pub message_id: String,
    pub body: String,
    pub group: String,
    /// Message attributes (string values), e.g. a replay marker.
    pub attributes: HashMap<String, String>,
    /// Receives so far (SQS's ApproximateReceiveCount).
    pub receives: u32,
    /// The receipt handle of the receive it is in flight for; `None` when waiting.
    pub in_flight: Option<String>,
    /// The last visibility delay set on it while in flight.
    pub visibility: Option<Duration>,
}

/// A message on the DLQ.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadMessage {
    pub body: String,
    pub group: String,
    /// What the runner sent with its reason; `None` when the redrive policy moved it.
    pub letter: Option<DeadLetter>,
    /// Receives of the source message when it was moved.
    pub receives: u32,
}

#[derive(Default)]
struct State {
    next_id: u64,
    messages: Vec<QueuedMessage>,
    dead: Vec<DeadMessage>,
    published: Vec<(String, OutgoingMessage)>,
}

/// A FIFO queue, its DLQ and a record of what was published, in memory.
pub struct MemoryQueue {
    state: Mutex<State>,
    /// The redrive policy's maxReceiveCount.
    pub max_receive_count: u32,
    /// Whether a DLQ is configured: without one, dead-lettering fails.
    pub has_dlq: bool,
}

impl Default for MemoryQueue {
    fn default() -> Self {
        MemoryQueue {
            state: Mutex::default(),
            max_receive_count: crate::topology::MAX_RECEIVE_COUNT,
            has_dlq: true,
        }
    }
}

impl MemoryQueue {
    pub fn new() -> Self {
        Self::default()
    }

    /// A queue whose DLQ is missing from the configuration: the runner cannot dead-letter.
    pub fn without_dlq() -> Self {
        MemoryQueue {
            has_dlq: false,
            ..Self::default()
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Send a message to the queue; returns its message id.
    pub fn push(&self, body: impl Into<String>, group: impl Into<String>) -> String {
        self.push_with(body, group, HashMap::new())
    }

    /// Send a message with message attributes; returns its message id.
    pub fn push_with(
        &self,
        body: impl Into<String>,
        group: impl Into<String>,
        attributes: HashMap<String, String>,
    ) -> String {
        let mut s = self.state();
        s.next_id += 1;
        let message_id = format!("m-{}", s.next_id);
        s.messages.push(QueuedMessage {
            message_id: message_id.clone(),
            body: body.into(),
            group: group.into(),
            attributes,
            receives: 0,
            in_flight: None,
            visibility: None,
        });
        message_id
    }

    /// Receive up to `max` messages as the SQS event source mapping would hand them to a
    /// function: in order, never a group with a message in flight.
    pub fn receive(&self, max: usize) -> SqsEvent {
        let mut s = self.state();
        let State {
            next_id,
            messages,
            dead,
            ..
        } = &mut *s;
        let held: HashSet<String> = messages
            .iter()
            .filter(|m| m.in_flight.is_some())
            .map(|m| m.group.clone())
            .collect();
        let mut records = Vec::new();
        let mut redriven = Vec::new();
        for (i, m) in messages.iter_mut().enumerate() {
            // A group's later messages may come in the same batch, after it.
            if records.len() >= max || held.contains(&m.group) {
                continue;
            }
            if m.receives >= self.max_receive_count {
                redriven.push(i);
                continue;
            }
            *next_id += 1;
            m.receives += 1;
            m.visibility = None;
            let handle = format!("r-{next_id}");
            m.in_flight = Some(handle.clone());
            records.push(sqs_message(m, &handle));
        }
        for i in redriven.into_iter().rev() {
            let m = messages.remove(i);
            dead.push(DeadMessage {
                body: m.body,
                group: m.group,
                letter: None,
                receives: m.receives,
            });
        }
        let mut event = SqsEvent::default();
        event.records = records;
        event
    }

    /// What the event source mapping does with a function's answer: delete every message
    /// of the batch that the answer does not report failed.
    pub async fn acknowledge(&self, batch: &SqsEvent, response: &SqsBatchResponse) {
        let failed: HashSet<&str> = response
            .batch_item_failures
            .iter()
            .map(|f| f.item_identifier.as_str())
            .collect();
        let handles: Vec<String> = batch
            .records
            .iter()
            .filter(|m| !failed.contains(m.message_id.as_deref().unwrap_or_default()))
            .filter_map(|m| m.receipt_handle.clone())
            .collect();
        // In memory a delete never fails.
        let _ = self.delete(&handles).await;
    }

    /// Let every message in flight become visible again, as if its visibility timeout (the
    /// runner's delay, or the receive's own) had passed.
    pub fn wait_out_visibility(&self) {
        for m in &mut self.state().messages {
            m.in_flight = None;
        }
    }

    /// The messages on the queue (waiting or in flight), in order.
    pub fn messages(&self) -> Vec<QueuedMessage> {
        self.state().messages.clone()
    }

    /// One message by id, if it is still on the queue.
    pub fn message(&self, message_id: &str) -> Option<QueuedMessage> {
        self.state()
            .messages
            .iter()
            .find(|m| m.message_id == message_id)
            .cloned()
    }

    /// The DLQ's messages, in the order they arrived.
    pub fn dead_letters(&self) -> Vec<DeadMessage> {
        self.state().dead.clone()
    }

    /// What was published, with the queue URL it went to.
    pub fn published(&self) -> Vec<(String, OutgoingMessage)> {
        self.state().published.clone()
    }
}

fn sqs_message(m: &QueuedMessage, handle: &str) -> SqsMessage {
    let mut msg = SqsMessage::default();
    msg.message_id = Some(m.message_id.clone());
    msg.receipt_handle = Some(handle.to_string());
    msg.body = Some(m.body.clone());
    msg.attributes = HashMap::from([
        (
            "ApproximateReceiveCount".to_string(),
            m.receives.to_string(),
        ),
        ("MessageGroupId".to_string(), m.group.clone()),
    ]);
    msg.message_attributes = m
        .attributes
        .iter()
        .map(|(k, v)| {
            let mut a = SqsMessageAttribute::default();
            a.string_value = Some(v.clone());
            a.data_type = Some("String".into());
            (k.clone(), a)
        })
        .collect();
    msg
}

impl DomainQueue for MemoryQueue {
    async fn dead_letter(&self, letter: DeadLetter) -> Result<(), AdapterError> {
        if !self.has_dlq {
            return Err(AdapterError::Config("no DLQ configured".into()));
        }
        let receives = letter.receive_count.parse().unwrap_or(0);
        self.state().dead.push(DeadMessage {
            body: letter.body.clone(),
            group: letter.group.clone(),
            letter: Some(letter),
            receives,
        });
        Ok(())
    }

    async fn change_visibility(&self, changes: &[VisibilityChange]) -> Result<(), AdapterError> {
        let mut s = self.state();
        for c in changes {
            if let Some(m) = s
                .messages
                .iter_mut()
                .find(|m| m.in_flight.as_deref() == Some(c.receipt_handle.as_str()))
            {
                m.visibility = Some(c.delay);
            }
        }
        Ok(())
    }

    async fn delete(&self, receipt_handles: &[String]) -> Result<Vec<String>, AdapterError> {
        let mut s = self.state();
        let mut left = Vec::new();
        for handle in receipt_handles {
            match s
                .messages
                .iter()
                .position(|m| m.in_flight.as_deref() == Some(handle.as_str()))
            {
                Some(i) => {
                    s.messages.remove(i);
                }
                None => left.push(handle.clone()),
            }
        }
        Ok(left)
    }
}

impl Publisher for MemoryQueue {
    async fn send(
        &self,
        queue_url: &str,
        messages: &[OutgoingMessage],
    ) -> Result<Vec<usize>, AdapterError> {
        self.state()
            .published
            .extend(messages.iter().map(|m| (queue_url.to_string(), m.clone())));
        Ok(Vec::new())
    }
}
