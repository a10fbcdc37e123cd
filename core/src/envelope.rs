//! The event envelope: what a client sends ([`NewEvent`], after validation) and what is
//! stored and delivered ([`EventEnvelope`]).
//!
//! A client sets eventType, aggregateType/Id, payload and optionally eventId, eventVersion,
//! occurredAt, metadata and expectedSequence. The server sets domain (from the catalog),
//! sequence (from the store), recordedAt, metadata.tenantId (from the caller's identity) and
//! defaults correlationId to the eventId. Follow-on events of handlers are built through the
//! same path ([`NewEvent::follow_on`]), so they are validated like anything a client sends.

use chrono::{DateTime, Datelike, SecondsFormat, Timelike, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use sha1::Sha1;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::canonical::{HashWriter, JsonSink};
use crate::catalog::{self, Catalog, EventSpec};
use crate::error::{CoreError, ErrorCode};
use crate::payload::Payload;
use crate::schema::{is_safe_id, normalize_object, MAX_ID_LEN, MAX_TYPE_LEN};

/// A stored event, exactly as it is written to the history table and delivered to handlers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EventEnvelope {
    pub event_id: Uuid,
    pub event_type: String,
    pub event_version: u32,
    pub domain: String,
    pub aggregate_type: String,
    pub aggregate_id: String,
    pub sequence: u64,
    #[serde(with = "rfc3339")]
    pub occurred_at: DateTime<Utc>,
    #[serde(with = "rfc3339_millis")]
    pub recorded_at: DateTime<Utc>,
    pub payload: Payload,
    pub metadata: Metadata,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Metadata {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
    pub correlation_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub causation_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    pub tenant_id: String,
    /// Who wrote it, set by the server: the authenticated caller of the HTTP API (the
    /// token's `sub`), `handler:<name>` for a handler's follow-on, `job:<name>` for a
    /// scheduled job. Absent on events stored before principals were recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub principal: Option<String>,
}

impl EventEnvelope {
    /// The key of this event's stream: one tenant's one aggregate.
    pub fn stream(&self) -> StreamId<'_> {
        StreamId {
            tenant_id: &self.metadata.tenant_id,
            aggregate_type: &self.aggregate_type,
            aggregate_id: &self.aggregate_id,
        }
    }

    pub fn payload_str(&self, field: &str) -> Option<&str> {
        self.payload.get(field).and_then(Value::as_str)
    }

    /// The stored text: what the history table holds and queues and the API carry, the
    /// same bytes as `serde_json::to_string` (property-tested), written by hand because
    /// every event is written so at least once. The buffer starts at a typical envelope's
    /// size, so most are written without growing it.
    pub fn to_json(&self) -> String {
        const TYPICAL_ENVELOPE: usize = 1024;
        let mut out = String::with_capacity(TYPICAL_ENVELOPE);
        let w = &mut out;
        w.write("{\"eventId\":");
        w.write_uuid(self.event_id);
        w.write(",\"eventType\":");
        w.write_str(&self.event_type);
        w.write(",\"eventVersion\":");
        w.write_u64(self.event_version.into());
        w.write(",\"domain\":");
        w.write_str(&self.domain);
        w.write(",\"aggregateType\":");
        w.write_str(&self.aggregate_type);
        w.write(",\"aggregateId\":");
        w.write_str(&self.aggregate_id);
        w.write(",\"sequence\":");
        w.write_u64(self.sequence);
        w.write(",\"occurredAt\":");
        w.write_str(TimeText::new(&self.occurred_at, SecondsFormat::AutoSi).as_str());
        w.write(",\"recordedAt\":");
        w.write_str(TimeText::new(&self.recorded_at, SecondsFormat::Millis).as_str());
        w.write(",\"payload\":");
        self.payload.write_json(w);
        w.write(",\"metadata\":");
        self.metadata.write_json(w);
        w.write("}");
        out
    }
}

impl Metadata {
    /// As serde writes it: fields in declaration order, absent options left out.
    fn write_json(&self, w: &mut impl JsonSink) {
        w.write("{");
        if let Some(user) = &self.user_id {
            w.write("\"userId\":");
            w.write_str(user);
            w.write(",");
        }
        w.write("\"correlationId\":");
        w.write_str(&self.correlation_id);
        for (key, value) in [
            (",\"causationId\":", self.causation_id.as_deref()),
            (",\"source\":", self.source.as_deref()),
            (",\"tenantId\":", Some(&self.tenant_id)),
            (",\"principal\":", self.principal.as_deref()),
        ] {
            if let Some(v) = value {
                w.write(key);
                w.write_str(v);
            }
        }
        w.write("}");
    }
}

/// Identifies one aggregate's stream within a tenant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct StreamId<'a> {
    pub tenant_id: &'a str,
    pub aggregate_type: &'a str,
    pub aggregate_id: &'a str,
}

impl StreamId<'_> {
    /// `tenant#Type#id`; unambiguous because none of the parts may contain `#`.
    pub fn key(&self) -> String {
        format!(
            "{}#{}#{}",
            self.tenant_id, self.aggregate_type, self.aggregate_id
        )
    }

    /// An SQS FIFO MessageGroupId (at most 128 characters): the key itself when it fits,
    /// else a hash of it. One group per aggregate keeps delivery in sequence order.
    pub fn message_group(&self) -> String {
        let key = self.key();
        if key.len() <= 128 {
            key
        } else {
            format!("h:{}", hex(&Sha256::digest(key.as_bytes())))
        }
    }
}

/// A validated event that is not stored yet: everything but `sequence` and `recordedAt`.
#[derive(Debug, Clone, PartialEq)]
pub struct NewEvent {
    pub event_id: Uuid,
    /// The client chose the eventId, so a resend must be recognised as one.
    pub client_event_id: bool,
    pub event_type: String,
    pub event_version: u32,
    pub domain: String,
    pub aggregate_type: String,
    pub aggregate_id: String,
    pub occurred_at: DateTime<Utc>,
    pub payload: Payload,
    pub metadata: Metadata,
    /// The aggregate's last sequence the client expects before this event (0: new aggregate).
    pub expected_sequence: Option<u64>,
    /// SHA-256 of the client-supplied content: equal fingerprints mean "the same event".
    pub fingerprint: String,
}

/// Who is writing, and when: the server's part of every new event.
#[derive(Debug, Clone)]
pub struct WriteContext<'a> {
    pub tenant_id: &'a str,
    pub now: DateTime<Utc>,
    /// Stored as `metadata.principal`.
    pub principal: &'a str,
    /// Which producer is writing ([`catalog::CLIENT`], a handler, a job, an operator
    /// action): a type whose catalog entry does not name it is refused.
    pub producer: &'a str,
}

impl<'a> WriteContext<'a> {
    /// A service publishing over HTTP as `principal`.
    pub fn client(tenant_id: &'a str, principal: &'a str, now: DateTime<Utc>) -> Self {
        WriteContext {
            tenant_id,
            now,
            principal,
            producer: catalog::CLIENT,
        }
    }
}

/// The principal of a handler's follow-on events.
pub fn handler_principal(handler: &str) -> String {
    ["handler:", handler].concat()
}

impl NewEvent {
    /// Validate one client event (a JSON object). `new_id` supplies an eventId when the
    /// client gave none. Errors carry the field path relative to the event.
    pub fn from_json(
        raw: &Value,
        ctx: &WriteContext<'_>,
        new_id: &mut dyn FnMut() -> Uuid,
    ) -> Result<NewEvent, CoreError> {
        Self::from_json_in(Catalog::builtin(), raw, ctx, new_id)
    }

    /// [`NewEvent::from_json`] against a catalog instance (built-in plus custom types).
    pub fn from_json_in(
        catalog: &Catalog,
        raw: &Value,
        ctx: &WriteContext<'_>,
        new_id: &mut dyn FnMut() -> Uuid,
    ) -> Result<NewEvent, CoreError> {
        Self::from_value_in(catalog, raw.clone(), ctx, new_id)
    }

    /// [`NewEvent::from_json_in`] on an owned value: the payload is validated and
    /// normalised in place and moved into the event, never copied.
    ///
    /// The checks run in a fixed order (the first problem is the one reported): the
    /// envelope's fields, the type and who may publish it, the ids and version, the
    /// aggregate, the time, the payload, then the client's metadata.
    pub fn from_value_in(
        catalog: &Catalog,
        raw: Value,
        ctx: &WriteContext<'_>,
        new_id: &mut dyn FnMut() -> Uuid,
    ) -> Result<NewEvent, CoreError> {
        let mut obj = known_fields(raw)?;
        // Taken out now (the checks below borrow the rest), validated in the same order.
        let payload_raw = obj.remove("payload");
        let spec = publishable_spec(catalog, &obj, ctx)?;
        let (event_id, client_event_id) = parse_event_id(&obj, new_id)?;
        let event_version = parse_event_version(&obj, spec)?;
        let (aggregate_type, aggregate_id) = parse_aggregate(&obj, spec)?;
        let occurred_at = parse_occurred_at(&obj)?;
        let payload = parse_payload(payload_raw, spec, event_version, aggregate_id)?;
        let client_meta = parse_metadata(obj.get("metadata"))?;
        let expected_sequence = parse_expected_sequence(&obj)?;

        let occurred_text = occurred_at.map(|d| TimeText::new(&d, SecondsFormat::AutoSi));
        let fingerprint = Fingerprinted {
            aggregate_id,
            aggregate_type,
            event_id,
            event_type: spec.event_type,
            event_version,
            metadata: FingerprintedMetadata::Client(&client_meta),
            occurred_at: occurred_text.as_ref().map(TimeText::as_str),
            payload: &payload,
        }
        .digest();
        Ok(NewEvent {
            event_id,
            client_event_id,
            event_type: spec.event_type.to_string(),
            event_version,
            domain: spec.domain.to_string(),
            aggregate_type: aggregate_type.to_string(),
            aggregate_id: aggregate_id.to_string(),
            occurred_at: occurred_at.unwrap_or(ctx.now),
            payload,
            metadata: server_metadata(&client_meta, event_id, ctx),
            expected_sequence,
            fingerprint,
        })
    }

    /// Build a handler's follow-on event. Its eventId is derived from the handler, the
    /// source event and the follow-on's position, so a handler that runs twice for the same
    /// event produces the same ids and the store keeps one copy. Correlation is inherited,
    /// causation is the source event.
    ///
    /// Validated like anything a client sends (a handler bug must not store an invalid
    /// event), with the same checks in the same order and the same errors as
    /// [`NewEvent::from_value_in`] on the event written out as a client's JSON, but without
    /// writing it out and reading it back: the eventId, `occurredAt` and the metadata's
    /// shape are made here, so only what a handler decides is checked (type and producer,
    /// aggregate, payload, the metadata's values). The tests hold it equal to that path
    /// (`follow_ons_equal_the_client_path`).
    pub fn follow_on(
        source: &EventEnvelope,
        handler: &str,
        index: usize,
        follow: FollowOn,
        now: DateTime<Utc>,
    ) -> Result<NewEvent, CoreError> {
        let event_id = follow_on_id(handler, source.event_id, index);
        let principal = handler_principal(handler);
        let ctx = WriteContext {
            tenant_id: &source.metadata.tenant_id,
            now,
            principal: &principal,
            // A handler may append only the types it decides.
            producer: handler,
        };
        let event_type = follow.event_type;
        let mut causation = [0; uuid::fmt::Hyphenated::LENGTH];
        let client_meta = FollowOnMetadata::new(source, handler, &mut causation);
        let checked = (|| {
            let spec = publishable_spec_of(Catalog::builtin(), event_type, &ctx)?;
            check_aggregate_type(follow.aggregate_type)?;
            check_aggregate(follow.aggregate_type, &follow.aggregate_id, spec)?;
            // No eventVersion is given: version 1. A payload checked against this type's
            // schema as the handler wrote it needs only its aggregate id compared.
            let payload = match follow.payload.checked_key(spec) {
                Some(key) if key == follow.aggregate_id => follow.payload,
                Some(_) => return Err(aggregate_mismatch(spec)),
                None => parse_payload(
                    Some(follow.payload.into_value()),
                    spec,
                    1,
                    &follow.aggregate_id,
                )?,
            };
            client_meta.check()?;
            Ok((spec, payload))
        })();
        let (spec, payload) =
            checked.map_err(|e: CoreError| e.at(&format!("followOn[{handler}:{event_type}]")))?;
        // Derived from the source, not the clock, so a re-run is byte-identical.
        let occurred_at = source.occurred_at;
        let fingerprint = Fingerprinted {
            aggregate_id: &follow.aggregate_id,
            aggregate_type: follow.aggregate_type,
            event_id,
            event_type: spec.event_type,
            event_version: 1,
            metadata: FingerprintedMetadata::FollowOn(&client_meta),
            occurred_at: Some(TimeText::new(&occurred_at, SecondsFormat::AutoSi).as_str()),
            payload: &payload,
        }
        .digest();
        let metadata = client_meta.into_stored(&source.metadata.tenant_id, principal);
        Ok(NewEvent {
            event_id,
            client_event_id: true,
            event_type: spec.event_type.to_string(),
            event_version: 1,
            domain: spec.domain.to_string(),
            aggregate_type: follow.aggregate_type.to_string(),
            metadata,
            aggregate_id: follow.aggregate_id,
            occurred_at,
            payload,
            expected_sequence: None,
            fingerprint,
        })
    }

    /// [`NewEvent::follow_on`] the long way: the follow-on written out as a client's
    /// event and validated by [`NewEvent::from_value_in`]. The reference the tests hold
    /// the follow-on path to.
    #[cfg(test)]
    pub(crate) fn follow_on_through_client_path(
        source: &EventEnvelope,
        handler: &str,
        index: usize,
        follow: FollowOn,
        now: DateTime<Utc>,
    ) -> Result<NewEvent, CoreError> {
        let event_id = follow_on_id(handler, source.event_id, index);
        let event_type = follow.event_type;
        let mut raw = Map::new();
        raw.insert("eventId".into(), event_id.to_string().into());
        raw.insert("eventType".into(), event_type.into());
        raw.insert("aggregateType".into(), follow.aggregate_type.into());
        raw.insert("aggregateId".into(), follow.aggregate_id.into());
        raw.insert("occurredAt".into(), format_time(&source.occurred_at).into());
        raw.insert("payload".into(), follow.payload.into_value());
        raw.insert(
            "metadata".into(),
            Value::Object(follow_on_metadata(source, handler)),
        );
        let principal = handler_principal(handler);
        let ctx = WriteContext {
            tenant_id: &source.metadata.tenant_id,
            now,
            principal: &principal,
            producer: handler,
        };
        NewEvent::from_value_in(Catalog::builtin(), Value::Object(raw), &ctx, &mut || {
            event_id
        })
        .map_err(|e| e.at(&format!("followOn[{handler}:{event_type}]")))
    }

    /// The stored form, once the store has assigned a sequence.
    pub fn into_envelope(self, sequence: u64, recorded_at: DateTime<Utc>) -> EventEnvelope {
        EventEnvelope {
            event_id: self.event_id,
            event_type: self.event_type,
            event_version: self.event_version,
            domain: self.domain,
            aggregate_type: self.aggregate_type,
            aggregate_id: self.aggregate_id,
            sequence,
            occurred_at: self.occurred_at,
            recorded_at,
            payload: self.payload,
            metadata: self.metadata,
        }
    }

    pub fn stream(&self) -> StreamId<'_> {
        StreamId {
            tenant_id: &self.metadata.tenant_id,
            aggregate_type: &self.aggregate_type,
            aggregate_id: &self.aggregate_id,
        }
    }
}

/// A follow-on's metadata as a client would send it: the source's correlation and user,
/// the source event as the cause, the handler as the source. Borrowed from the source, not
/// built as a JSON map ([`follow_on_metadata`]), and fingerprinted as that map would be.
struct FollowOnMetadata<'a> {
    causation_id: &'a str,
    correlation_id: &'a str,
    source: &'a str,
    user_id: Option<&'a str>,
}

impl<'a> FollowOnMetadata<'a> {
    /// `causation` holds the source's eventId as text.
    fn new(
        source: &'a EventEnvelope,
        handler: &'a str,
        causation: &'a mut [u8; uuid::fmt::Hyphenated::LENGTH],
    ) -> Self {
        FollowOnMetadata {
            causation_id: source.event_id.hyphenated().encode_lower(causation),
            correlation_id: &source.metadata.correlation_id,
            source: handler,
            user_id: source.metadata.user_id.as_deref(),
        }
    }

    /// The checks a client's metadata gets ([`check_metadata_field`]), in the same order.
    fn check(&self) -> Result<(), CoreError> {
        check_metadata_text("causationId", self.causation_id)?;
        check_metadata_text("correlationId", self.correlation_id)?;
        check_metadata_text("source", self.source)?;
        if let Some(user) = self.user_id {
            check_metadata_text("userId", user)?;
        }
        Ok(())
    }

    /// The JSON of [`follow_on_metadata`]: its keys in the map's (alphabetical) order.
    fn write_canonical(&self, w: &mut HashWriter) {
        w.write("{\"causationId\":");
        w.write_str(self.causation_id);
        w.write(",\"correlationId\":");
        w.write_str(self.correlation_id);
        w.write(",\"source\":");
        w.write_str(self.source);
        if let Some(user) = self.user_id {
            w.write(",\"userId\":");
            w.write_str(user);
        }
        w.write("}");
    }

    /// The stored metadata, as [`server_metadata`] makes it from the client's.
    fn into_stored(self, tenant_id: &str, principal: String) -> Metadata {
        Metadata {
            user_id: self.user_id.map(str::to_string),
            correlation_id: self.correlation_id.to_string(),
            causation_id: Some(self.causation_id.to_string()),
            source: Some(self.source.to_string()),
            tenant_id: tenant_id.to_string(),
            principal: Some(principal),
        }
    }
}

/// [`FollowOnMetadata`] as the JSON map a client would send.
#[cfg(test)]
fn follow_on_metadata(source: &EventEnvelope, handler: &str) -> Map<String, Value> {
    let mut meta = Map::new();
    meta.insert(
        "correlationId".into(),
        source.metadata.correlation_id.clone().into(),
    );
    meta.insert("causationId".into(), source.event_id.to_string().into());
    meta.insert("source".into(), handler.into());
    if let Some(u) = &source.metadata.user_id {
        meta.insert("userId".into(), u.clone().into());
    }
    meta
}

/// What a domain handler asks to be appended.
#[derive(Debug, Clone, PartialEq)]
pub struct FollowOn {
    pub event_type: &'static str,
    pub aggregate_type: &'static str,
    pub aggregate_id: String,
    pub payload: Payload,
}

impl FollowOn {
    /// Whether this follow-on most likely opens a stream of its own: its aggregate id is a
    /// name-based id ([`derived_id`]), which handlers derive from the source event for the
    /// entities it creates (a document, a review, a notification). Only a hint for the
    /// writer, which then skips reading the stream's head: a wrong guess costs one retry.
    pub fn opens_stream(&self) -> bool {
        Uuid::parse_str(&self.aggregate_id)
            .is_ok_and(|id| id.get_version() == Some(uuid::Version::Sha1))
    }
}

/// Namespace for name-based (v5) ids of follow-on events and derived entities.
pub const ID_NAMESPACE: Uuid = Uuid::from_u128(0x6c65_6e64_696e_676f_7320_6576_656e_7473);

/// Deterministic id for the `index`-th follow-on of `handler` on `source`: the v5 id of the
/// name `{handler}/{source}/{index}`, hashed with the CPU's SHA instructions where it has
/// them (every follow-on gets one; uuid's own SHA-1 is portable code).
pub fn follow_on_id(handler: &str, source: Uuid, index: usize) -> Uuid {
    // Namespace and name in one buffer on the stack, hashed in one call.
    let mut input = [0; 16 + MAX_HANDLER_NAME + 1 + uuid::fmt::Hyphenated::LENGTH + 1 + 20];
    let mut len = 0;
    let mut push = |part: &[u8]| match input.get_mut(len..len + part.len()) {
        Some(free) => {
            free.copy_from_slice(part);
            len += part.len();
            true
        }
        None => false,
    };
    let fits = push(ID_NAMESPACE.as_bytes())
        && push(handler.as_bytes())
        && push(b"/")
        && push(
            source
                .hyphenated()
                .encode_lower(&mut [0; uuid::fmt::Hyphenated::LENGTH])
                .as_bytes(),
        )
        && push(b"/")
        && push(itoa::Buffer::new().format(index).as_bytes());
    if !fits {
        // A handler name longer than any real one.
        return Uuid::new_v5(
            &ID_NAMESPACE,
            format!("{handler}/{source}/{index}").as_bytes(),
        );
    }
    let digest = Sha1::digest(&input[..len]);
    // A v5 id is the first 16 bytes of the SHA-1 digest with the version and variant set.
    let mut bytes = [0; 16];
    bytes.copy_from_slice(&digest[..16]);
    uuid::Builder::from_sha1_bytes(bytes).into_uuid()
}

/// Longest handler name [`follow_on_id`] hashes without formatting its name.
const MAX_HANDLER_NAME: usize = 64;

/// Deterministic id for a derived entity (a schedule, a document) named by `parts`.
pub fn derived_id(parts: &[&str]) -> Uuid {
    Uuid::new_v5(&ID_NAMESPACE, parts.join("/").as_bytes())
}

// The steps of `NewEvent::from_value_in`, in the order it runs them.

/// The event as a map, refusing fields a client may not send.
fn known_fields(raw: Value) -> Result<Map<String, Value>, CoreError> {
    let Value::Object(obj) = raw else {
        return Err(CoreError::with_code(
            ErrorCode::MalformedJson,
            None,
            "an event must be a JSON object",
        ));
    };
    const ALLOWED: &[&str] = &[
        "eventId",
        "eventType",
        "eventVersion",
        "aggregateType",
        "aggregateId",
        "occurredAt",
        "payload",
        "metadata",
        "expectedSequence",
    ];
    const SERVER_SET: &[&str] = &["domain", "sequence", "recordedAt"];
    if let Some(k) = obj.keys().find(|k| !ALLOWED.contains(&k.as_str())) {
        let why = if SERVER_SET.contains(&k.as_str()) {
            "is set by the server and must not be sent".to_string()
        } else {
            format!("unknown field; allowed: {}", ALLOWED.join(", "))
        };
        return Err(CoreError::invalid(k.clone(), why));
    }
    Ok(obj)
}

/// The catalog entry of `eventType`, if the writing producer may publish it.
fn publishable_spec(
    catalog: &Catalog,
    obj: &Map<String, Value>,
    ctx: &WriteContext<'_>,
) -> Result<&'static EventSpec, CoreError> {
    publishable_spec_of(catalog, req_str(obj, "eventType")?, ctx)
}

/// [`publishable_spec`] on the type name itself.
fn publishable_spec_of(
    catalog: &Catalog,
    event_type: &str,
    ctx: &WriteContext<'_>,
) -> Result<&'static EventSpec, CoreError> {
    if !catalog::is_event_type_name(event_type) {
        return Err(CoreError::invalid(
            "eventType",
            "must be Domain.Action with PascalCase segments, e.g. Loan.Funded",
        ));
    }
    let spec = catalog.lookup(event_type).ok_or_else(|| {
        CoreError::with_code(
            ErrorCode::UnknownEventType,
            Some("eventType".into()),
            format!("{event_type} is not in the event catalog"),
        )
    })?;
    if !spec.produced_by(ctx.producer) {
        let who = if ctx.producer == catalog::CLIENT {
            "a client".to_string()
        } else {
            ctx.producer.to_string()
        };
        return Err(CoreError::with_code(
            ErrorCode::ProducerNotAllowed,
            Some("eventType".into()),
            format!(
                "{} is decided by {} and may not be published by {who}",
                spec.event_type,
                spec.producers.join(", ")
            ),
        ));
    }
    Ok(spec)
}

/// The client's eventId (and `true`), or a new one from `new_id` (and `false`).
fn parse_event_id(
    obj: &Map<String, Value>,
    new_id: &mut dyn FnMut() -> Uuid,
) -> Result<(Uuid, bool), CoreError> {
    match obj.get("eventId") {
        None | Some(Value::Null) => Ok((new_id(), false)),
        Some(Value::String(s)) => Ok((
            Uuid::parse_str(s).map_err(|_| CoreError::invalid("eventId", "must be a UUID"))?,
            true,
        )),
        Some(_) => Err(CoreError::invalid("eventId", "must be a UUID string")),
    }
}

/// `eventVersion`, 1 when absent, one of the versions the type has.
fn parse_event_version(obj: &Map<String, Value>, spec: &EventSpec) -> Result<u32, CoreError> {
    let latest = spec.latest_version();
    let Some(v) = obj.get("eventVersion").filter(|v| !v.is_null()) else {
        return Ok(1);
    };
    v.as_u64()
        .filter(|n| (1..=u64::from(latest)).contains(n))
        .map(|n| n as u32)
        .ok_or_else(|| {
            CoreError::invalid(
                "eventVersion",
                if latest == 1 {
                    format!("{} has only version 1", spec.event_type)
                } else {
                    format!(
                        "{} has versions 1 to {latest}: an integer in that range",
                        spec.event_type
                    )
                },
            )
        })
}

/// `aggregateType` and `aggregateId`: safe in keys, and the type the catalog fixes.
fn parse_aggregate<'a>(
    obj: &'a Map<String, Value>,
    spec: &EventSpec,
) -> Result<(&'a str, &'a str), CoreError> {
    let aggregate_type = req_str(obj, "aggregateType")?;
    check_aggregate_type(aggregate_type)?;
    let aggregate_id = req_str(obj, "aggregateId")?;
    check_aggregate(aggregate_type, aggregate_id, spec)?;
    Ok((aggregate_type, aggregate_id))
}

fn check_aggregate_type(aggregate_type: &str) -> Result<(), CoreError> {
    if !is_safe_id(aggregate_type, MAX_TYPE_LEN) {
        return Err(CoreError::invalid(
            "aggregateType",
            "must be 1-64 characters from A-Z a-z 0-9 . _ : -",
        ));
    }
    Ok(())
}

/// The aggregate id is safe in keys and the type is the one the catalog fixes (the type
/// itself checked by [`check_aggregate_type`] first).
fn check_aggregate(
    aggregate_type: &str,
    aggregate_id: &str,
    spec: &EventSpec,
) -> Result<(), CoreError> {
    if !is_safe_id(aggregate_id, MAX_ID_LEN) {
        return Err(CoreError::invalid(
            "aggregateId",
            "must be 1-128 characters from A-Z a-z 0-9 . _ : -",
        ));
    }
    if aggregate_type != spec.aggregate_type {
        return Err(CoreError::with_code(
            ErrorCode::AggregateMismatch,
            Some("aggregateType".into()),
            format!(
                "{} events belong to aggregateType {}",
                spec.event_type, spec.aggregate_type
            ),
        ));
    }
    Ok(())
}

/// `occurredAt` when the client gave one.
fn parse_occurred_at(obj: &Map<String, Value>) -> Result<Option<DateTime<Utc>>, CoreError> {
    let Some(v) = obj.get("occurredAt").filter(|v| !v.is_null()) else {
        return Ok(None);
    };
    v.as_str()
        .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
        .map(|d| Some(d.with_timezone(&Utc)))
        .ok_or_else(|| CoreError::invalid("occurredAt", "must be an RFC 3339 timestamp"))
}

/// The payload, validated against the version's schema and the type's cross-field rule,
/// normalised, and carrying the envelope's aggregateId in the type's id field.
fn parse_payload(
    raw: Option<Value>,
    spec: &EventSpec,
    event_version: u32,
    aggregate_id: &str,
) -> Result<Payload, CoreError> {
    let schema = spec.schema(event_version).unwrap_or(spec.fields);
    let payload = match raw {
        None | Some(Value::Null) => return Err(CoreError::invalid("payload", "is required")),
        Some(p) => normalize_object(p, schema, "payload")?,
    };
    if let Some(check) = spec.check {
        check(&payload)?;
    }
    if payload.get(spec.aggregate_id_field).and_then(Value::as_str) != Some(aggregate_id) {
        return Err(aggregate_mismatch(spec));
    }
    Ok(Value::Object(payload).into())
}

fn aggregate_mismatch(spec: &EventSpec) -> CoreError {
    CoreError::with_code(
        ErrorCode::AggregateMismatch,
        Some("aggregateId".into()),
        format!(
            "must equal payload.{} for {} events",
            spec.aggregate_id_field, spec.event_type
        ),
    )
}

fn parse_expected_sequence(obj: &Map<String, Value>) -> Result<Option<u64>, CoreError> {
    match obj.get("expectedSequence") {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v.as_u64().map(Some).ok_or_else(|| {
            CoreError::invalid("expectedSequence", "must be a non-negative integer")
        }),
    }
}

/// The stored metadata: the client's ids, the correlation defaulted to the eventId, and
/// the tenant and principal from the server.
fn server_metadata(
    client_meta: &Map<String, Value>,
    event_id: Uuid,
    ctx: &WriteContext<'_>,
) -> Metadata {
    let text = |key: &str| {
        client_meta
            .get(key)
            .and_then(Value::as_str)
            .map(str::to_string)
    };
    Metadata {
        user_id: text("userId"),
        correlation_id: text("correlationId").unwrap_or_else(|| event_id.to_string()),
        causation_id: text("causationId"),
        source: text("source"),
        tenant_id: ctx.tenant_id.to_string(),
        principal: Some(ctx.principal.to_string()),
    }
}

fn req_str<'a>(obj: &'a Map<String, Value>, field: &str) -> Result<&'a str, CoreError> {
    match obj.get(field) {
        Some(Value::String(s)) => Ok(s),
        None | Some(Value::Null) => Err(CoreError::invalid(field, "is required")),
        Some(_) => Err(CoreError::invalid(field, "must be a string")),
    }
}

fn parse_metadata(v: Option<&Value>) -> Result<Map<String, Value>, CoreError> {
    let obj = match v {
        None | Some(Value::Null) => return Ok(Map::new()),
        Some(Value::Object(o)) => o,
        Some(_) => return Err(CoreError::invalid("metadata", "must be a JSON object")),
    };
    let mut out = Map::new();
    for (k, v) in obj {
        if check_metadata_field(k, v)? {
            out.insert(k.clone(), v.clone());
        }
    }
    Ok(out)
}

/// One field of the client's metadata: `Ok(true)` to keep it, `Ok(false)` for a null.
fn check_metadata_field(k: &str, v: &Value) -> Result<bool, CoreError> {
    match v {
        Value::Null => check_metadata_name(k).map(|()| false),
        Value::String(s) => check_metadata_text(k, s).map(|()| true),
        _ => {
            check_metadata_name(k)?;
            Err(invalid_metadata_text(k))
        }
    }
}

/// A metadata field a client may set.
fn check_metadata_name(k: &str) -> Result<(), CoreError> {
    const FIELDS: &[&str] = &["userId", "correlationId", "causationId", "source"];
    if k == "tenantId" || k == "principal" {
        return Err(CoreError::invalid(
            format!("metadata.{k}"),
            "is set by the server from the caller's identity",
        ));
    }
    if !FIELDS.contains(&k) {
        return Err(CoreError::invalid(
            format!("metadata.{k}"),
            format!("unknown field; allowed: {}", FIELDS.join(", ")),
        ));
    }
    Ok(())
}

/// A metadata field a client may set, holding a safe id.
fn check_metadata_text(k: &str, s: &str) -> Result<(), CoreError> {
    check_metadata_name(k)?;
    if !is_safe_id(s, MAX_ID_LEN) {
        return Err(invalid_metadata_text(k));
    }
    Ok(())
}

fn invalid_metadata_text(k: &str) -> CoreError {
    CoreError::invalid(
        format!("metadata.{k}"),
        "must be 1-128 characters from A-Z a-z 0-9 . _ : -",
    )
}

/// What the fingerprint covers: the client-supplied content after normalisation, as
/// canonical JSON: the bytes of serialising it as a `serde_json::Value` (an object with
/// these keys, in this order, with `metadata` and `payload` key-ordered maps).
struct Fingerprinted<'a> {
    aggregate_id: &'a str,
    aggregate_type: &'a str,
    event_id: Uuid,
    event_type: &'a str,
    event_version: u32,
    metadata: FingerprintedMetadata<'a>,
    occurred_at: Option<&'a str>,
    payload: &'a Payload,
}

/// A client's metadata, or a follow-on's (the same JSON as the map a client would send).
enum FingerprintedMetadata<'a> {
    Client(&'a Map<String, Value>),
    FollowOn(&'a FollowOnMetadata<'a>),
}

impl Fingerprinted<'_> {
    /// SHA-256 of the canonical JSON, in lowercase hex.
    fn digest(&self) -> String {
        let mut w = HashWriter::new();
        w.write("{\"aggregateId\":");
        w.write_str(self.aggregate_id);
        w.write(",\"aggregateType\":");
        w.write_str(self.aggregate_type);
        w.write(",\"eventId\":");
        w.write_uuid(self.event_id);
        w.write(",\"eventType\":");
        w.write_str(self.event_type);
        w.write(",\"eventVersion\":");
        w.write_u64(self.event_version.into());
        w.write(",\"metadata\":");
        match self.metadata {
            FingerprintedMetadata::Client(map) => w.write_object(map),
            FingerprintedMetadata::FollowOn(meta) => meta.write_canonical(&mut w),
        }
        w.write(",\"occurredAt\":");
        match self.occurred_at {
            Some(t) => w.write_str(t),
            None => w.write("null"),
        }
        w.write(",\"payload\":");
        self.payload.write_json(&mut w);
        w.write("}");
        hex(&w.finish())
    }
}

fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut text = Vec::with_capacity(bytes.len() * 2);
    for b in bytes {
        text.extend_from_slice(&[DIGITS[usize::from(b >> 4)], DIGITS[usize::from(b & 0xf)]]);
    }
    // Hex digits are ASCII: always UTF-8 (bytes, not chars: no encoding per digit).
    String::from_utf8(text).unwrap_or_default()
}

/// RFC 3339 in UTC with as many fraction digits as needed, so parse and print round-trip.
pub fn format_time(t: &DateTime<Utc>) -> String {
    TimeText::new(t, SecondsFormat::AutoSi).as_str().to_string()
}

/// RFC 3339 in UTC with exactly three fraction digits: the form `recordedAt` is stored in.
/// A fixed width makes text order time order, which the byType index's range reads rely on
/// (with a variable fraction "...:05Z" would sort after "...:05.250Z").
pub fn format_recorded_at(t: &DateTime<Utc>) -> String {
    TimeText::new(t, SecondsFormat::Millis).as_str().to_string()
}

/// A time as chrono's `to_rfc3339_opts(form, true)` writes it, but for the four-digit years
/// written on the stack: every stored envelope and fingerprint carries two or three times,
/// and chrono's formatter allocates and goes through `fmt`. Held byte-identical to chrono's
/// by a property test.
enum TimeText {
    /// `YYYY-MM-DDTHH:MM:SS[.fraction]Z`, at most 30 bytes.
    Short { buf: [u8; 30], len: usize },
    /// Other years and leap seconds, as chrono writes them.
    Long(String),
}

impl TimeText {
    /// `form` is `AutoSi` (as many fraction digits as needed) or `Millis` (always three);
    /// any other form takes chrono's path.
    fn new(t: &DateTime<Utc>, form: SecondsFormat) -> TimeText {
        // The UTC fields, read once (each accessor of a `DateTime` converts again).
        let t_utc = t.naive_utc();
        let year = t_utc.year();
        let nano = t_utc.nanosecond();
        let digits = match form {
            SecondsFormat::Millis => 3,
            SecondsFormat::AutoSi if nano == 0 => 0,
            SecondsFormat::AutoSi if nano.is_multiple_of(1_000_000) => 3,
            SecondsFormat::AutoSi if nano.is_multiple_of(1_000) => 6,
            SecondsFormat::AutoSi => 9,
            _ => return TimeText::Long(t.to_rfc3339_opts(form, true)),
        };
        if !(0..=9999).contains(&year) || nano >= 1_000_000_000 {
            return TimeText::Long(t.to_rfc3339_opts(form, true));
        }
        let mut buf = *b"0000-00-00T00:00:00.000000000Z";
        let mut put = |end: usize, width: usize, mut n: u32| {
            for b in buf[end - width..end].iter_mut().rev() {
                *b = b'0' + (n % 10) as u8;
                n /= 10;
            }
        };
        put(4, 4, year as u32);
        put(7, 2, t_utc.month());
        put(10, 2, t_utc.day());
        put(13, 2, t_utc.hour());
        put(16, 2, t_utc.minute());
        put(19, 2, t_utc.second());
        // The fraction's leading digits: nanoseconds scaled down to `digits`.
        put(20 + digits, digits, nano / 10u32.pow(9 - digits as u32));
        let len = if digits == 0 { 19 } else { 20 + digits };
        buf[len] = b'Z';
        TimeText::Short { buf, len: len + 1 }
    }

    fn as_str(&self) -> &str {
        match self {
            // ASCII digits and separators: always UTF-8.
            TimeText::Short { buf, len } => std::str::from_utf8(&buf[..*len]).unwrap_or_default(),
            TimeText::Long(s) => s,
        }
    }
}

mod rfc3339_millis {
    use chrono::{DateTime, SecondsFormat, Utc};
    use serde::{Deserializer, Serializer};

    pub fn serialize<S: Serializer>(t: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(super::TimeText::new(t, SecondsFormat::Millis).as_str())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<DateTime<Utc>, D::Error> {
        super::rfc3339::deserialize(d)
    }
}

mod rfc3339 {
    use chrono::{DateTime, SecondsFormat, Utc};
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(t: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(super::TimeText::new(t, SecondsFormat::AutoSi).as_str())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<DateTime<Utc>, D::Error> {
        let s = String::deserialize(d)?;
        DateTime::parse_from_rfc3339(&s)
            .map(|t| t.with_timezone(&Utc))
            .map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    #[test]
    fn only_a_follow_on_on_a_derived_id_is_taken_to_open_its_stream() {
        let on = |id: String| FollowOn {
            event_type: "Notification.Sent",
            aggregate_type: "Notification",
            aggregate_id: id,
            payload: json!({}).into(),
        };
        assert!(on(derived_id(&["notifications", "e-1"]).to_string()).opens_stream());
        assert!(!on(Uuid::new_v4().to_string()).opens_stream());
        assert!(!on("L-1".into()).opens_stream());
    }

    #[test]
    fn recorded_times_sort_as_text_in_time_order() {
        let base = DateTime::parse_from_rfc3339("2026-01-01T00:00:05Z")
            .unwrap()
            .to_utc();
        let times: Vec<DateTime<Utc>> = [0, 1, 250, 999, 1000]
            .iter()
            .map(|ms| base + chrono::Duration::milliseconds(*ms))
            .collect();
        let texts: Vec<String> = times.iter().map(format_recorded_at).collect();
        assert_eq!(texts[0], "2026-01-01T00:00:05.000Z");
        assert!(texts.windows(2).all(|w| w[0] < w[1]), "{texts:?}");
    }

    #[test]
    fn a_handler_may_append_only_the_types_it_decides() {
        let ctx = WriteContext::client("acme", "svc-1", Utc::now());
        let source = NewEvent::from_json(
            &json!({"eventType": "Payment.Received", "aggregateType": "Loan", "aggregateId": "L-1",
                "payload": {"paymentId": "P-1", "loanId": "L-1", "amount": "5.00",
                    "method": "ach", "receivedAt": "2026-02-01T00:00:00Z"}}),
            &ctx,
            &mut Uuid::new_v4,
        )
        .unwrap()
        .into_envelope(3, Utc::now());
        let applied = FollowOn {
            event_type: "Payment.Applied",
            aggregate_type: "Loan",
            aggregate_id: "L-1".into(),
            payload: json!({"paymentId": "P-1", "loanId": "L-1",
                "allocation": {"interest": "1.00", "principal": "4.00"}, "remainingPrincipal": "5.00"}).into(),
        };
        let own = NewEvent::follow_on(
            &source,
            "payment-application",
            0,
            applied.clone(),
            Utc::now(),
        )
        .unwrap();
        assert_eq!(
            own.metadata.principal.as_deref(),
            Some("handler:payment-application")
        );
        match NewEvent::follow_on(&source, "notifications", 0, applied, Utc::now()) {
            Err(CoreError::Invalid {
                code,
                message,
                field,
            }) => {
                assert_eq!(code, ErrorCode::ProducerNotAllowed);
                assert_eq!(
                    field.as_deref(),
                    Some("followOn[notifications:Payment.Applied].eventType")
                );
                assert!(
                    message.contains("decided by payment-application"),
                    "{message}"
                );
            }
            other => panic!("expected a refusal, got {other:?}"),
        }
    }

    /// Stored eventId guards hold fingerprints: the streamed digest must equal the digest of
    /// the canonical `Value` serialisation it replaced, or resends of older events would be
    /// refused as conflicts.
    #[test]
    fn the_streamed_fingerprint_equals_the_canonical_value_digest() {
        let id = Uuid::from_u128(42);
        let payload = json!({"loanId": "L-1", "fundedAmount": "10.00", "note": "é \"q\""});
        let mut meta = Map::new();
        meta.insert("correlationId".into(), "c-1".into());
        for occurred in [None, Some("2026-01-31T10:00:00Z".to_string())] {
            let canonical = json!({
                "eventId": id, "eventType": "Loan.Funded", "eventVersion": 1,
                "aggregateType": "Loan", "aggregateId": "L-1", "occurredAt": occurred,
                "payload": payload, "metadata": meta,
            });
            let expected = hex(&Sha256::digest(canonical.to_string().as_bytes()));
            let streamed = Fingerprinted {
                aggregate_id: "L-1",
                aggregate_type: "Loan",
                event_id: id,
                event_type: "Loan.Funded",
                event_version: 1,
                metadata: FingerprintedMetadata::Client(&meta),
                occurred_at: occurred.as_deref(),
                payload: &payload.clone().into(),
            }
            .digest();
            assert_eq!(streamed, expected);
        }
    }

    proptest! {
        /// The hand-written canonical JSON is the `Value`'s, for any text in every field
        /// (escapes included), and a follow-on's borrowed metadata is fingerprinted as the
        /// map a client would send: both digests equal the digest of the `Value`.
        #[test]
        fn fingerprints_are_the_digest_of_the_canonical_value(
            id in any::<u128>(),
            [aggregate_id, aggregate_type, event_type, correlation, handler] in any::<[String; 5]>(),
            event_version in any::<u32>(),
            occurred in proptest::option::of(any::<String>()),
            user in proptest::option::of(any::<String>()),
            payload in proptest::collection::btree_map(any::<String>(), any::<String>(), 0..6),
        ) {
            let event_id = Uuid::from_u128(id);
            let payload = Value::Object(payload.into_iter().map(|(k, v)| (k, v.into())).collect());
            let causation = Uuid::from_u128(!id).to_string();
            let follow_on = FollowOnMetadata {
                causation_id: &causation,
                correlation_id: &correlation,
                source: &handler,
                user_id: user.as_deref(),
            };
            let mut client = Map::new();
            client.insert("correlationId".into(), correlation.clone().into());
            client.insert("causationId".into(), causation.clone().into());
            client.insert("source".into(), handler.clone().into());
            if let Some(u) = &user {
                client.insert("userId".into(), u.clone().into());
            }
            let canonical = json!({
                "eventId": event_id, "eventType": event_type, "eventVersion": event_version,
                "aggregateType": aggregate_type, "aggregateId": aggregate_id,
                "occurredAt": occurred, "payload": payload, "metadata": client,
            });
            let expected = hex(&Sha256::digest(canonical.to_string().as_bytes()));
            for metadata in [
                FingerprintedMetadata::Client(&client),
                FingerprintedMetadata::FollowOn(&follow_on),
            ] {
                let digest = Fingerprinted {
                    aggregate_id: &aggregate_id,
                    aggregate_type: &aggregate_type,
                    event_id,
                    event_type: &event_type,
                    event_version,
                    metadata,
                    occurred_at: occurred.as_deref(),
                    payload: &payload.clone().into(),
                }
                .digest();
                prop_assert_eq!(&digest, &expected);
            }
        }
    }

    /// The follow-on's metadata is the map [`follow_on_metadata`] writes, with and without
    /// a user (the map is what the client path validates and stores).
    #[test]
    fn follow_on_metadata_is_the_clients_map() {
        let ctx = WriteContext::client("acme", "svc-1", Utc::now());
        for user in [None, Some("U-7")] {
            let mut raw = json!({"eventType": "Loan.Funded", "aggregateType": "Loan",
                "aggregateId": "L-1", "metadata": {"correlationId": "c-1"},
                "payload": {"loanId": "L-1", "fundedAmount": "10.00",
                    "fundedAt": "2026-01-31T10:00:00Z"}});
            if let Some(u) = user {
                raw["metadata"]["userId"] = json!(u);
            }
            let source = NewEvent::from_json(&raw, &ctx, &mut Uuid::new_v4)
                .unwrap()
                .into_envelope(1, Utc::now());
            let mut causation = [0; uuid::fmt::Hyphenated::LENGTH];
            let borrowed = FollowOnMetadata::new(&source, "compliance", &mut causation);
            let map = follow_on_metadata(&source, "compliance");
            let text = |k: &str| map.get(k).and_then(Value::as_str);
            assert_eq!(text("causationId"), Some(borrowed.causation_id));
            assert_eq!(text("correlationId"), Some(borrowed.correlation_id));
            assert_eq!(text("source"), Some(borrowed.source));
            assert_eq!(text("userId"), borrowed.user_id);
            assert_eq!(map.len(), 3 + usize::from(user.is_some()));
        }
    }

    #[test]
    fn the_stored_text_is_serde_jsons_and_reads_back() {
        let ctx = WriteContext::client("acme", "svc-1", Utc::now());
        let raw = json!({"eventType": "Loan.Funded", "aggregateType": "Loan",
            "aggregateId": "L-1", "payload": {"loanId": "L-1", "fundedAmount": "10.00",
                "fundedAt": "2026-01-31T10:00:00Z"}});
        let small = NewEvent::from_json(&raw, &ctx, &mut Uuid::new_v4)
            .unwrap()
            // Stored times are written to the millisecond.
            .into_envelope(3, "2026-03-01T10:15:31.456Z".parse().unwrap());
        // And one larger than the starting buffer, with text that must be escaped.
        let mut large = small.clone();
        large.payload["note"] = json!("é\"\\\n\u{1}".repeat(400));
        for e in [small, large] {
            let text = e.to_json();
            assert_eq!(text, serde_json::to_string(&e).unwrap());
            assert_eq!(serde_json::from_str::<EventEnvelope>(&text).unwrap(), e);
        }
    }

    proptest! {
        /// Times written on the stack are chrono's text, for any time chrono holds: every
        /// fraction length, leap seconds, years outside 0..=9999.
        #[test]
        fn times_are_written_as_chrono_writes_them(
            secs in prop_oneof![
                0i64..4_000_000_000,
                -62_167_219_200i64..253_402_300_800,
                -8_000_000_000_000i64..8_000_000_000_000,
            ],
            nanos in prop_oneof![
                Just(0u32),
                (0u32..1000).prop_map(|n| n * 1_000_000),
                (0u32..1_000_000).prop_map(|n| n * 1_000),
                0u32..2_000_000_000,
            ],
        ) {
            // Leap seconds exist only in the last second of a minute.
            let secs = if nanos >= 1_000_000_000 { secs - secs.rem_euclid(60) + 59 } else { secs };
            if let Some(t) = DateTime::from_timestamp(secs, nanos) {
                prop_assert_eq!(format_time(&t), t.to_rfc3339_opts(SecondsFormat::AutoSi, true));
                prop_assert_eq!(format_recorded_at(&t), t.to_rfc3339_opts(SecondsFormat::Millis, true));
            }
        }
    }

    proptest! {
        /// The hand-written stored text is serde's, for any envelope: any text in every
        /// field, any payload, any time chrono holds, every optional metadata field.
        #[test]
        fn the_stored_text_is_serde_jsons_for_any_envelope(
            id in any::<u128>(),
            texts in prop::collection::vec(any::<String>(), 4),
            numbers in (any::<u32>(), any::<u64>()),
            times in ((-62_167_219_200i64..253_402_300_800, 0u32..1_000_000_000),
                (-8_000_000_000_000i64..8_000_000_000_000, 0u32..1_000_000_000)),
            payload in crate::canonical::strategies::arbitrary_value(),
            metadata in (any::<String>(), any::<String>(),
                prop::collection::vec(prop::option::of(any::<String>()), 4)),
        ) {
            let time = |(secs, nanos): (i64, u32)| DateTime::from_timestamp(secs, nanos).unwrap_or_default();
            let [event_type, domain, aggregate_type, aggregate_id]: [String; 4] =
                texts.try_into().unwrap();
            let (correlation_id, tenant_id, options) = metadata;
            let [user_id, causation_id, source, principal]: [Option<String>; 4] =
                options.try_into().unwrap();
            let e = EventEnvelope {
                event_id: Uuid::from_u128(id),
                event_type,
                event_version: numbers.0,
                domain,
                aggregate_type,
                aggregate_id,
                sequence: numbers.1,
                occurred_at: time(times.0),
                recorded_at: time(times.1),
                payload: payload.into(),
                metadata: Metadata { user_id, correlation_id, causation_id, source, tenant_id, principal },
            };
            prop_assert_eq!(e.to_json(), serde_json::to_string(&e).unwrap());
        }
    }

    proptest! {
        /// Follow-on ids are the v5 ids of their name, for handler names of any length.
        #[test]
        fn follow_on_ids_are_the_v5_ids_of_their_name(
            handler in "[a-z-]{0,100}|.*",
            source in any::<u128>(),
            index in any::<usize>(),
        ) {
            let source = Uuid::from_u128(source);
            prop_assert_eq!(
                follow_on_id(&handler, source, index),
                Uuid::new_v5(&ID_NAMESPACE, format!("{handler}/{source}/{index}").as_bytes())
            );
        }
    }

    #[test]
    fn hex_is_lowercase_two_digits_per_byte() {
        assert_eq!(hex(&[0x00, 0x0f, 0xa0, 0xff]), "000fa0ff");
    }
}
