//! The queue port: what the functions do to SQS messages, apart from how.
//!
//! - [`DomainQueue`]: what a domain function's batch runner does to the messages of its own
//!   queue: dead-letter one with its reason, change the visibility of failed ones (the
//!   backoff), delete handled ones (what the event source mapping does after a batch; the
//!   local runner plays it).
//! - [`Publisher`]: what dispatch needs to publish events to the domain queues.
//!
//! Adapters: [`sqs`] (the AWS SDK) and [`memory`] (an in-process FIFO queue with its DLQ,
//! for unit tests of the runner without LocalStack).

use std::future::Future;
use std::time::Duration;

use crate::error::AdapterError;

pub mod memory;
pub mod sqs;

pub use memory::MemoryQueue;
pub use sqs::{QueuePublisher, SqsDomainQueue};

/// One message for a FIFO queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutgoingMessage {
    pub body: String,
    /// MessageGroupId: one group per aggregate keeps its events in order.
    pub group: String,
    /// MessageDeduplicationId: the eventId (plus a replay marker when replaying).
    pub dedup: String,
    pub event_type: String,
}

/// A message the runner gives up on, with why: what its domain's DLQ receives. The
/// attributes go on the dead letter as message attributes of the same names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetter {
    /// The message body as received (`(empty body)` for an empty one).
    pub body: String,
    /// The source message's group (`unknown` without one).
    pub group: String,
    /// Deduplication id: the source message's id.
    pub dedup: String,
    /// `failureReason`: at most 1,000 characters.
    pub reason: String,
    /// `failureClass`: always `permanent` from the runner (transient failures are retried
    /// and reach the DLQ through the queue's redrive policy, without a reason).
    pub class: &'static str,
    /// `receiveCount`: SQS's ApproximateReceiveCount of the failing receive.
    pub receive_count: String,
    /// `failedAt`: RFC 3339 time of the failure.
    pub failed_at: String,
}

impl DeadLetter {
    /// The longest `failureReason` kept.
    pub const MAX_REASON_CHARS: usize = 1000;
}

/// A message to wait before its next receive: its receipt handle and how long.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VisibilityChange {
    pub receipt_handle: String,
    pub delay: Duration,
}

/// What the batch runner (and the mapping that feeds it) does to its domain's queue.
pub trait DomainQueue: Send + Sync {
    /// Put a permanently failing message on the domain's DLQ, with its reason.
    fn dead_letter(
        &self,
        letter: DeadLetter,
    ) -> impl Future<Output = Result<(), AdapterError>> + Send;
    /// Keep received messages invisible for their delay (SQS takes whole seconds: the
    /// delay is rounded up, never shortened).
    fn change_visibility(
        &self,
        changes: &[VisibilityChange],
    ) -> impl Future<Output = Result<(), AdapterError>> + Send;
    /// Delete handled messages by receipt handle; returns the handles that were not deleted
    /// (e.g. expired while the batch ran: those messages come back).
    fn delete(
        &self,
        receipt_handles: &[String],
    ) -> impl Future<Output = Result<Vec<String>, AdapterError>> + Send;
}

/// Publishing to the domain queues.
pub trait Publisher: Send + Sync {
    /// Send in order; returns the indices (into `messages`) that were not accepted. An
    /// error means the whole send failed.
    fn send(
        &self,
        queue_url: &str,
        messages: &[OutgoingMessage],
    ) -> impl Future<Output = Result<Vec<usize>, AdapterError>> + Send;
}

/// Whole seconds SQS takes for a visibility delay: rounded up, at most 12 hours.
pub fn visibility_seconds(delay: Duration) -> i32 {
    delay.as_millis().div_ceil(1000).min(43_200) as i32
}
