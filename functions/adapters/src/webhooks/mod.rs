//! Deliveries to other systems' endpoints: the body of a delivery in the subscription's
//! format ([`delivery_body`], CloudEvents by default: [`cloudevents`]), its Standard
//! Webhooks signature ([`signing`]) and the HTTP client that sends it under the egress
//! policy ([`sender`]).

pub mod cloudevents;
pub mod sender;
pub mod signing;

use lending_events::subscription::Format;
use lending_events::EventEnvelope;

use crate::error::AdapterError;

pub use self::cloudevents::{cloudevent_json, to_cloudevent, CLOUDEVENTS_CONTENT_TYPE};
pub use sender::{Attempt, Delivery, SendOutcome, WebhookSender, DEFAULT_TIMEOUT};
pub use signing::{generate_secret, webhook_id, Signer};

/// The media type of a delivery in the `envelope` format.
pub const ENVELOPE_CONTENT_TYPE: &str = "application/json";

/// What is sent for one event: the exact bytes that are signed, and their media type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryBody {
    pub content_type: &'static str,
    pub bytes: Vec<u8>,
}

/// The body of `event` in `format`: a structured-mode CloudEvent, or the stored envelope.
pub fn delivery_body(event: &EventEnvelope, format: Format) -> Result<DeliveryBody, AdapterError> {
    match format {
        Format::Cloudevents => Ok(DeliveryBody {
            content_type: CLOUDEVENTS_CONTENT_TYPE,
            bytes: cloudevent_json(event)?,
        }),
        Format::Envelope => Ok(DeliveryBody {
            content_type: ENVELOPE_CONTENT_TYPE,
            bytes: serde_json::to_vec(event).map_err(|e| {
                AdapterError::Decode(format!("event {} as JSON: {e}", event.event_id))
            })?,
        }),
    }
}
