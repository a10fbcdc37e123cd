//! The queue port on SQS (AWS SDK): a domain's queue and DLQ, and FIFO publishing ten
//! messages per call.

use aws_sdk_sqs::types::{
    ChangeMessageVisibilityBatchRequestEntry, DeleteMessageBatchRequestEntry,
    MessageAttributeValue, SendMessageBatchRequestEntry,
};

use super::{
    visibility_seconds, DeadLetter, DomainQueue, OutgoingMessage, Publisher, VisibilityChange,
};
use crate::error::{classify, AdapterError};

fn string_attr(v: &str) -> Result<MessageAttributeValue, AdapterError> {
    MessageAttributeValue::builder()
        .data_type("String")
        .string_value(v)
        .build()
        .map_err(|e| AdapterError::Aws(e.to_string()))
}

/// A domain function's queue and DLQ on SQS. Either URL may be missing from the
/// configuration: dead-lettering then fails (the message is retried instead) and visibility
/// changes and deletes do nothing.
#[derive(Clone)]
pub struct SqsDomainQueue {
    pub client: aws_sdk_sqs::Client,
    /// The function's own queue (visibility changes for backoff, deletes).
    pub queue_url: Option<String>,
    /// Where permanently failing messages go, with their reason.
    pub dlq_url: Option<String>,
}

impl DomainQueue for SqsDomainQueue {
    async fn dead_letter(&self, letter: DeadLetter) -> Result<(), AdapterError> {
        let Some(dlq) = &self.dlq_url else {
            return Err(AdapterError::Config("no DLQ configured".into()));
        };
        let mut req = self
            .client
            .send_message()
            .queue_url(dlq)
            .message_body(letter.body)
            .message_group_id(letter.group)
            .message_deduplication_id(letter.dedup)
            .message_attributes("failureReason", string_attr(&letter.reason)?)
            .message_attributes("failureClass", string_attr(letter.class)?)
            .message_attributes("receiveCount", string_attr(&letter.receive_count)?)
            .message_attributes("failedAt", string_attr(&letter.failed_at)?);
        if let Some(src) = &self.queue_url {
            req = req.message_attributes("sourceQueue", string_attr(src)?);
        }
        req.send()
            .await
            .map_err(|e| classify("SendMessage(DLQ)", e))?;
        Ok(())
    }

    async fn change_visibility(&self, changes: &[VisibilityChange]) -> Result<(), AdapterError> {
        let Some(url) = &self.queue_url else {
            return Ok(());
        };
        let mut outcome = Ok(());
        for chunk in changes.chunks(10) {
            let entries: Vec<_> = chunk
                .iter()
                .enumerate()
                .filter_map(|(i, c)| {
                    ChangeMessageVisibilityBatchRequestEntry::builder()
                        .id(i.to_string())
                        .receipt_handle(&c.receipt_handle)
                        .visibility_timeout(visibility_seconds(c.delay))
                        .build()
                        .ok()
                })
                .collect();
            // Every chunk is tried; the last failure is reported.
            if let Err(e) = self
                .client
                .change_message_visibility_batch()
                .queue_url(url)
                .set_entries(Some(entries))
                .send()
                .await
            {
                outcome = Err(classify("ChangeMessageVisibilityBatch", e));
            }
        }
        outcome
    }

    async fn delete(&self, receipt_handles: &[String]) -> Result<Vec<String>, AdapterError> {
        let Some(url) = &self.queue_url else {
            return Ok(Vec::new());
        };
        let mut left = Vec::new();
        for chunk in receipt_handles.chunks(10) {
            let entries: Vec<_> = chunk
                .iter()
                .enumerate()
                .filter_map(|(i, handle)| {
                    DeleteMessageBatchRequestEntry::builder()
                        .id(i.to_string())
                        .receipt_handle(handle)
                        .build()
                        .ok()
                })
                .collect();
            let out = self
                .client
                .delete_message_batch()
                .queue_url(url)
                .set_entries(Some(entries))
                .send()
                .await
                .map_err(|e| classify("DeleteMessageBatch", e))?;
            if let Some(f) = out.failed().first() {
                tracing::warn!(queue = %url, failed = out.failed().len(), reason = ?f.message(), "DeleteMessageBatch left messages on the queue");
            }
            left.extend(
                out.failed()
                    .iter()
                    .filter_map(|f| f.id().parse::<usize>().ok())
                    .filter_map(|i| chunk.get(i).cloned()),
            );
        }
        Ok(left)
    }
}

/// Publishing to SQS FIFO queues, ten messages per call.
#[derive(Clone)]
pub struct QueuePublisher {
    client: aws_sdk_sqs::Client,
}

impl QueuePublisher {
    pub fn new(client: aws_sdk_sqs::Client) -> Self {
        QueuePublisher { client }
    }

    pub fn client(&self) -> &aws_sdk_sqs::Client {
        &self.client
    }
}

impl Publisher for QueuePublisher {
    /// Send in order; returns the indices (into `messages`) that SQS did not accept. An
    /// error means a whole call failed; indices from that call on are reported as failed.
    async fn send(
        &self,
        queue_url: &str,
        messages: &[OutgoingMessage],
    ) -> Result<Vec<usize>, AdapterError> {
        let mut failed = Vec::new();
        for (chunk_no, chunk) in messages.chunks(10).enumerate() {
            let base = chunk_no * 10;
            let entries = chunk
                .iter()
                .enumerate()
                .map(|(i, m)| {
                    SendMessageBatchRequestEntry::builder()
                        .id(i.to_string())
                        .message_body(&m.body)
                        .message_group_id(&m.group)
                        .message_deduplication_id(&m.dedup)
                        .message_attributes("eventType", string_attr(&m.event_type)?)
                        .build()
                        .map_err(|e| AdapterError::Aws(e.to_string()))
                })
                .collect::<Result<Vec<_>, _>>()?;
            let out = self
                .client
                .send_message_batch()
                .queue_url(queue_url)
                .set_entries(Some(entries))
                .send()
                .await;
            match out {
                Ok(out) => failed.extend(
                    out.failed()
                        .iter()
                        .filter_map(|f| f.id().parse::<usize>().ok())
                        .map(|i| base + i),
                ),
                Err(e) => {
                    tracing::warn!(queue = queue_url, error = %classify("SendMessageBatch", e), "send failed");
                    failed.extend(base..messages.len());
                    break;
                }
            }
        }
        failed.sort_unstable();
        Ok(failed)
    }
}
