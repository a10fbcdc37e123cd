//! Publishing to SQS FIFO queues, ten messages per call.

use aws_sdk_sqs::types::{MessageAttributeValue, SendMessageBatchRequestEntry};

use crate::error::AdapterError;

/// One message for a FIFO queue.
#[derive(Debug, Clone)]
pub struct OutgoingMessage {
    pub body: String,
    /// MessageGroupId: one group per aggregate keeps its events in order.
    pub group: String,
    /// MessageDeduplicationId: the eventId (plus a replay marker when replaying).
    pub dedup: String,
    pub event_type: String,
}

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

    /// Send in order; returns the indices (into `messages`) that SQS did not accept. An
    /// error means a whole call failed; indices from that call on are reported as failed.
    pub async fn send(
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
                        .message_attributes(
                            "eventType",
                            MessageAttributeValue::builder()
                                .data_type("String")
                                .string_value(&m.event_type)
                                .build()
                                .map_err(|e| AdapterError::Aws(e.to_string()))?,
                        )
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
                    tracing::warn!(queue = queue_url, error = %crate::error::classify("SendMessageBatch", e), "send failed");
                    failed.extend(base..messages.len());
                    break;
                }
            }
        }
        failed.sort_unstable();
        Ok(failed)
    }
}
