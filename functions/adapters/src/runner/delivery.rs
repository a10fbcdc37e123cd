//! What the runner reads from an SQS message besides its body: the receive count, the
//! message group, a replay marker; and the dead letter it makes of a message.

use aws_lambda_events::sqs::SqsMessage;
use chrono::Utc;

use crate::queue::DeadLetter;

/// Marks a replayed delivery ([`crate::http::ops::replay`]) as message attributes: `replay` (the
/// replay id), `handlers` (comma-separated: only these run), `rerun` (`true`: run even
/// where the processing record is COMPLETED). Plain deliveries carry none of them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReplayMarker {
    pub replay: Option<String>,
    pub handlers: Option<Vec<String>>,
    pub rerun: bool,
}

impl ReplayMarker {
    pub fn of(msg: &SqsMessage) -> ReplayMarker {
        let get = |k: &str| {
            msg.message_attributes
                .get(k)
                .and_then(|a| a.string_value.clone())
        };
        ReplayMarker {
            replay: get("replay"),
            handlers: get("handlers").map(|l| l.split(',').map(|h| h.trim().to_string()).collect()),
            rerun: get("rerun").is_some_and(|v| v == "true"),
        }
    }

    pub fn wants(&self, handler: &str) -> bool {
        self.handlers
            .as_ref()
            .is_none_or(|hs| hs.iter().any(|h| h == handler))
    }
}

/// What the runner knows of this delivery of a message.
#[derive(Debug, Clone, Copy)]
pub(super) struct Delivery {
    /// Run even where the processing record is COMPLETED (replay with `rerun`).
    pub rerun: bool,
    /// SQS's receive count of the message (logged as the attempt of unclaimed runs).
    pub receives: u32,
}

/// SQS's ApproximateReceiveCount of a message: 1 when missing or unreadable.
pub(super) fn receives(msg: &SqsMessage) -> u32 {
    msg.attributes
        .get("ApproximateReceiveCount")
        .and_then(|c| c.parse().ok())
        .unwrap_or(1)
}

/// The message group (FIFO queues), if any.
pub(super) fn group(msg: &SqsMessage) -> Option<&String> {
    msg.attributes.get("MessageGroupId")
}

/// The dead letter for a message the runner gives up on.
pub(super) fn dead_letter(msg: &SqsMessage, reason: &str) -> DeadLetter {
    DeadLetter {
        body: msg
            .body
            .clone()
            .filter(|b| !b.is_empty())
            .unwrap_or_else(|| "(empty body)".into()),
        group: group(msg).cloned().unwrap_or_else(|| "unknown".into()),
        dedup: msg
            .message_id
            .clone()
            .unwrap_or_else(|| uuid::Uuid::new_v4().to_string()),
        reason: reason.chars().take(DeadLetter::MAX_REASON_CHARS).collect(),
        class: "permanent",
        receive_count: msg
            .attributes
            .get("ApproximateReceiveCount")
            .cloned()
            .unwrap_or_else(|| "1".into()),
        failed_at: lending_events::envelope::format_time(&Utc::now()),
    }
}
