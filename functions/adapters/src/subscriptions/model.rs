//! What a subscription is, and the requests that create and change one, validated with the
//! `field` that is wrong.

use chrono::{DateTime, Utc};
use lending_events::envelope::format_time;
use lending_events::schema::is_safe_id;
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use uuid::Uuid;

pub use lending_events::subscription::{Filter, Format, Target};

use crate::http::error::ApiError;

/// Longest subscription name.
pub const MAX_NAME_CHARS: usize = 128;

/// A target's address: the URL or the queue URL. Circuit breakers are per address.
pub fn address(target: &Target) -> &str {
    match target {
        Target::Webhook { url } => url,
        Target::Sqs { queue_url } => queue_url,
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    #[default]
    Active,
    /// Its deliveries wait in the queue (matched events included) until it is resumed.
    Paused,
}

/// A stored subscription, as the API shows it (never with its secret).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Subscription {
    pub subscription_id: Uuid,
    pub tenant_id: String,
    pub name: String,
    pub filter: Filter,
    pub target: Target,
    pub format: Format,
    pub status: Status,
    /// `None`: from creation on; else history recorded from then on was backfilled first.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_from: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// Changes so far (1 after creation): each change is conditioned on the version read.
    pub version: u64,
}

impl Subscription {
    pub fn is_active(&self) -> bool {
        self.status == Status::Active
    }

    /// The payload of its `Subscription.Created` event.
    pub fn created_payload(&self) -> Value {
        let mut p = json!({
            "subscriptionId": self.subscription_id.to_string(),
            "name": self.name,
            "filter": self.filter.as_json(),
            "target": self.target,
            "format": self.format,
            "status": self.status,
        });
        if let Some(t) = &self.start_from {
            p["startFrom"] = json!(format_time(t));
        }
        p
    }
}

/// The body of `POST /subscriptions`.
#[derive(Debug, Clone, PartialEq)]
pub struct CreateRequest {
    pub name: String,
    pub filter: Filter,
    pub target: Target,
    pub format: Format,
    pub start_from: Option<DateTime<Utc>>,
}

/// The body of `PATCH /subscriptions/{id}`: only what is given changes.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct PatchRequest {
    pub name: Option<String>,
    pub filter: Option<Filter>,
    pub target: Option<Target>,
    pub format: Option<Format>,
    pub status: Option<Status>,
}

impl PatchRequest {
    pub fn is_empty(&self) -> bool {
        *self == PatchRequest::default()
    }

    /// The changed fields as the `changes` of `Subscription.Updated`.
    pub fn changes(&self) -> Value {
        let mut c = Map::new();
        if let Some(n) = &self.name {
            c.insert("name".into(), json!(n));
        }
        if let Some(f) = &self.filter {
            c.insert("filter".into(), f.as_json().clone());
        }
        if let Some(t) = &self.target {
            c.insert("target".into(), json!(t));
        }
        if let Some(f) = &self.format {
            c.insert("format".into(), json!(f));
        }
        if let Some(s) = &self.status {
            c.insert("status".into(), json!(s));
        }
        Value::Object(c)
    }

    pub fn apply(&self, s: &mut Subscription) {
        if let Some(n) = &self.name {
            s.name = n.clone();
        }
        if let Some(f) = &self.filter {
            s.filter = f.clone();
        }
        if let Some(t) = &self.target {
            s.target = t.clone();
        }
        if let Some(f) = self.format {
            s.format = f;
        }
        if let Some(st) = self.status {
            s.status = st;
        }
    }
}

fn object<'a>(v: &'a Value, field: &str) -> Result<&'a Map<String, Value>, ApiError> {
    v.as_object()
        .ok_or_else(|| ApiError::bad(field, "must be an object"))
}

fn refuse_unknown(obj: &Map<String, Value>, known: &[&str], prefix: &str) -> Result<(), ApiError> {
    match obj.keys().find(|k| !known.contains(&k.as_str())) {
        Some(k) => Err(ApiError::bad(
            &format!("{prefix}{k}"),
            format!("unknown field; expected one of {}", known.join(", ")),
        )),
        None => Ok(()),
    }
}

fn parse_name(v: &Value) -> Result<String, ApiError> {
    match v.as_str().map(str::trim) {
        Some(n) if !n.is_empty() && n.chars().count() <= MAX_NAME_CHARS => Ok(n.to_string()),
        _ => Err(ApiError::bad(
            "name",
            format!("must be a non-empty string of at most {MAX_NAME_CHARS} characters"),
        )),
    }
}

/// A target's shape (its address is checked by the egress policy).
pub fn parse_target(v: &Value) -> Result<Target, ApiError> {
    Ok(Target::parse(v)?)
}

fn parse_format(v: &Value) -> Result<Format, ApiError> {
    Ok(Format::parse(Some(v))?)
}

fn parse_filter(v: &Value) -> Result<Filter, ApiError> {
    Ok(Filter::parse(v)?)
}

fn parse_start_from(v: &Value, now: DateTime<Utc>) -> Result<Option<DateTime<Utc>>, ApiError> {
    let bad = || {
        ApiError::bad(
            "startFrom",
            "must be \"now\" or an RFC 3339 timestamp in the past",
        )
    };
    match v.as_str() {
        Some("now") => Ok(None),
        Some(t) => {
            let at = DateTime::parse_from_rfc3339(t)
                .map_err(|_| bad())?
                .with_timezone(&Utc);
            if at > now {
                return Err(bad());
            }
            Ok(Some(at))
        }
        None => Err(bad()),
    }
}

impl CreateRequest {
    /// Parse and validate a create body; errors name the wrong field.
    pub fn parse(body: &Value, now: DateTime<Utc>) -> Result<CreateRequest, ApiError> {
        let obj = object(body, "")?;
        refuse_unknown(
            obj,
            &["name", "filter", "target", "format", "startFrom"],
            "",
        )?;
        let name = parse_name(obj.get("name").unwrap_or(&Value::Null))?;
        let filter = parse_filter(
            obj.get("filter")
                .ok_or_else(|| ApiError::bad("filter", "is required"))?,
        )?;
        let target = parse_target(
            obj.get("target")
                .ok_or_else(|| ApiError::bad("target", "is required"))?,
        )?;
        let format = obj
            .get("format")
            .map(parse_format)
            .transpose()?
            .unwrap_or_default();
        let start_from = obj
            .get("startFrom")
            .map(|v| parse_start_from(v, now))
            .transpose()?
            .flatten();
        Ok(CreateRequest {
            name,
            filter,
            target,
            format,
            start_from,
        })
    }
}

impl PatchRequest {
    pub fn parse(body: &Value) -> Result<PatchRequest, ApiError> {
        let obj = object(body, "")?;
        refuse_unknown(obj, &["name", "filter", "target", "format", "status"], "")?;
        let mut p = PatchRequest::default();
        if let Some(v) = obj.get("name") {
            p.name = Some(parse_name(v)?);
        }
        if let Some(v) = obj.get("filter") {
            p.filter = Some(parse_filter(v)?);
        }
        if let Some(v) = obj.get("target") {
            p.target = Some(parse_target(v)?);
        }
        if let Some(v) = obj.get("format") {
            p.format = Some(parse_format(v)?);
        }
        if let Some(v) = obj.get("status") {
            p.status = Some(
                serde_json::from_value(v.clone())
                    .map_err(|_| ApiError::bad("status", "must be \"active\" or \"paused\""))?,
            );
        }
        if p.is_empty() {
            return Err(ApiError::bad(
                "",
                "nothing to change: give name, filter, target, format or status",
            ));
        }
        Ok(p)
    }
}

/// A subscription id from a path: a UUID, else 404 (an id that cannot exist is not found).
pub fn parse_id(raw: &str) -> Result<Uuid, ApiError> {
    if !is_safe_id(raw, 64) {
        return Err(not_found(raw));
    }
    Uuid::parse_str(raw).map_err(|_| not_found(raw))
}

pub fn not_found(id: &str) -> ApiError {
    ApiError::new(
        axum::http::StatusCode::NOT_FOUND,
        "not_found",
        format!("no subscription {id}"),
        None,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field(body: Value) -> Option<String> {
        CreateRequest::parse(&body, Utc::now()).unwrap_err().field
    }

    #[test]
    fn create_requests_name_the_wrong_field() {
        let good = json!({"name": "n", "filter": {"eventTypes": ["Loan.*"]},
            "target": {"type": "webhook", "url": "https://example.com/hook"}});
        let parsed = CreateRequest::parse(&good, Utc::now()).unwrap();
        assert_eq!(parsed.format, Format::Cloudevents);
        assert_eq!(parsed.start_from, None);
        let mut b = good.clone();
        b["target"] = json!({"type": "ftp"});
        assert_eq!(field(b).as_deref(), Some("target.type"));
        let mut b = good.clone();
        b["target"] = json!({"type": "webhook"});
        assert_eq!(field(b).as_deref(), Some("target.url"));
        let mut b = good.clone();
        b["format"] = json!("xml");
        assert_eq!(field(b).as_deref(), Some("format"));
        let mut b = good.clone();
        b["startFrom"] = json!("2999-01-01T00:00:00Z");
        assert_eq!(field(b).as_deref(), Some("startFrom"));
        let mut b = good.clone();
        b["color"] = json!(1);
        assert_eq!(field(b).as_deref(), Some("color"));
        let mut b = good.clone();
        b["filter"] = json!({"eventTypes": ["loan"]});
        assert_eq!(field(b).as_deref(), Some("filter.eventTypes[0]"));
        let mut b = good;
        b["name"] = json!("");
        assert_eq!(field(b).as_deref(), Some("name"));
    }

    #[test]
    fn a_patch_changes_only_what_it_names() {
        let p = PatchRequest::parse(&json!({"status": "paused"})).unwrap();
        assert_eq!(p.changes(), json!({"status": "paused"}));
        assert!(PatchRequest::parse(&json!({})).is_err());
        assert_eq!(
            PatchRequest::parse(&json!({"status": "gone"}))
                .unwrap_err()
                .field
                .as_deref(),
            Some("status")
        );
    }
}
