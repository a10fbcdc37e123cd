//! Where a subscription's events go ([`Target`]) and in which shape ([`Format`]).
//!
//! Only the syntax is checked here. Whether a webhook's host may be called (public address,
//! https) is the egress policy's decision ([`super::egress`]), made at creation and again
//! when the connection is opened.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::CoreError;

/// Longest target URL.
pub const MAX_URL_LEN: usize = 2048;

/// A subscription's destination.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "camelCase")]
pub enum Target {
    /// An HTTP endpoint that receives one signed POST per event.
    Webhook { url: String },
    /// Another team's SQS queue, by its queue URL.
    #[serde(rename_all = "camelCase")]
    Sqs { queue_url: String },
}

impl Target {
    /// Parse `{"type": "webhook", "url": ...}` or `{"type": "sqs", "queueUrl": ...}`.
    /// Errors name the field: `target`, `target.type`, `target.url`, `target.queueUrl`.
    pub fn parse(raw: &Value) -> Result<Target, CoreError> {
        let Value::Object(obj) = raw else {
            return Err(CoreError::invalid(
                "target",
                "the target must be a JSON object",
            ));
        };
        let kind = match obj.get("type") {
            Some(Value::String(s)) => s.as_str(),
            Some(_) => {
                return Err(CoreError::invalid(
                    "target.type",
                    "expected \"webhook\" or \"sqs\"",
                ))
            }
            None => {
                return Err(CoreError::invalid(
                    "target.type",
                    "required: \"webhook\" or \"sqs\"",
                ))
            }
        };
        let (url_key, target): (&str, fn(String) -> Target) = match kind {
            "webhook" => ("url", |url| Target::Webhook { url }),
            "sqs" => ("queueUrl", |queue_url| Target::Sqs { queue_url }),
            _ => {
                return Err(CoreError::invalid(
                    "target.type",
                    "expected \"webhook\" or \"sqs\"",
                ))
            }
        };
        if let Some(extra) = obj.keys().find(|k| *k != "type" && *k != url_key) {
            return Err(CoreError::invalid(
                format!("target.{extra}"),
                format!("unknown field for a {kind} target; it has type and {url_key}"),
            ));
        }
        let field = format!("target.{url_key}");
        let url = match obj.get(url_key) {
            Some(Value::String(s)) => s,
            Some(_) => return Err(CoreError::invalid(field, "expected a URL string")),
            None => return Err(CoreError::invalid(field, "required")),
        };
        TargetUrl::parse(url).map_err(|message| CoreError::invalid(field, message))?;
        Ok(target(url.clone()))
    }

    /// The webhook URL, when this is a webhook.
    pub fn webhook_url(&self) -> Option<&str> {
        match self {
            Target::Webhook { url } => Some(url),
            Target::Sqs { .. } => None,
        }
    }
}

/// The parts of an absolute http(s) URL the egress policy needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetUrl {
    pub https: bool,
    /// Lower-case host name, or an IP literal without brackets.
    pub host: String,
    pub port: u16,
}

impl TargetUrl {
    /// Parse an absolute `http://` or `https://` URL with a host. User names and passwords
    /// in the URL are refused (they hide the real host from a reader: `https://bank@evil`).
    pub fn parse(url: &str) -> Result<TargetUrl, String> {
        if url.len() > MAX_URL_LEN {
            return Err(format!("a URL has at most {MAX_URL_LEN} characters"));
        }
        let uri: http::Uri = url.parse().map_err(|e| format!("not a valid URL: {e}"))?;
        let https = match uri.scheme_str() {
            Some("https") => true,
            Some("http") => false,
            Some(other) => return Err(format!("scheme {other:?} is not allowed: use https")),
            None => return Err("expected an absolute URL such as https://example.com/hook".into()),
        };
        let authority = uri
            .authority()
            .ok_or("expected an absolute URL such as https://example.com/hook")?;
        if authority.as_str().contains('@') {
            return Err("a URL with a user name or password is not allowed".into());
        }
        let host = authority.host();
        let host = host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(host)
            .to_ascii_lowercase();
        if host.is_empty() {
            return Err("the URL has no host".into());
        }
        let port = authority.port_u16().unwrap_or(if https { 443 } else { 80 });
        Ok(TargetUrl { https, host, port })
    }

    /// The host as an IP address, when the URL names one directly.
    pub fn ip(&self) -> Option<std::net::IpAddr> {
        self.host.parse().ok()
    }
}

/// The body shape of a delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Format {
    /// A CloudEvents 1.0 structured-mode JSON document (the default).
    #[default]
    Cloudevents,
    /// The stored event envelope as it is.
    Envelope,
}

impl Format {
    /// Parse the optional `format` field; absent means [`Format::Cloudevents`].
    pub fn parse(raw: Option<&Value>) -> Result<Format, CoreError> {
        match raw {
            None => Ok(Format::Cloudevents),
            Some(Value::String(s)) if s == "cloudevents" => Ok(Format::Cloudevents),
            Some(Value::String(s)) if s == "envelope" => Ok(Format::Envelope),
            Some(_) => Err(CoreError::invalid(
                "format",
                "expected \"cloudevents\" (the default) or \"envelope\"",
            )),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Format::Cloudevents => "cloudevents",
            Format::Envelope => "envelope",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn field_of(r: Result<Target, CoreError>) -> String {
        match r {
            Err(CoreError::Invalid { field, .. }) => field.unwrap_or_default(),
            other => panic!("expected an error, got {other:?}"),
        }
    }

    #[test]
    fn parses_webhook_and_sqs_targets() {
        let t = Target::parse(&json!({"type": "webhook", "url": "https://hooks.example.com/in"}))
            .unwrap();
        assert_eq!(t.webhook_url(), Some("https://hooks.example.com/in"));
        assert_eq!(
            serde_json::to_value(&t).unwrap(),
            json!({"type": "webhook", "url": "https://hooks.example.com/in"})
        );
        let q = "http://sqs.us-east-1.localhost.localstack.cloud:4566/000000000000/other-team";
        let t = Target::parse(&json!({"type": "sqs", "queueUrl": q})).unwrap();
        assert_eq!(
            t,
            Target::Sqs {
                queue_url: q.into()
            }
        );
        assert_eq!(
            serde_json::to_value(&t).unwrap(),
            json!({"type": "sqs", "queueUrl": q})
        );
        let back: Target = serde_json::from_value(json!({"type": "sqs", "queueUrl": q})).unwrap();
        assert_eq!(back, t);
    }

    #[test]
    fn target_errors_name_the_field() {
        assert_eq!(field_of(Target::parse(&json!("https://x"))), "target");
        assert_eq!(
            field_of(Target::parse(&json!({"url": "https://x"}))),
            "target.type"
        );
        assert_eq!(
            field_of(Target::parse(&json!({"type": "email"}))),
            "target.type"
        );
        assert_eq!(
            field_of(Target::parse(&json!({"type": "webhook"}))),
            "target.url"
        );
        assert_eq!(
            field_of(Target::parse(&json!({"type": "webhook", "url": 5}))),
            "target.url"
        );
        assert_eq!(
            field_of(Target::parse(
                &json!({"type": "webhook", "url": "ftp://x/y"})
            )),
            "target.url"
        );
        assert_eq!(
            field_of(Target::parse(
                &json!({"type": "webhook", "url": "/relative"})
            )),
            "target.url"
        );
        assert_eq!(
            field_of(Target::parse(
                &json!({"type": "webhook", "url": "https://a@b.com/"})
            )),
            "target.url"
        );
        assert_eq!(
            field_of(Target::parse(
                &json!({"type": "webhook", "url": "https://x", "queueUrl": "y"})
            )),
            "target.queueUrl"
        );
        assert_eq!(
            field_of(Target::parse(&json!({"type": "sqs", "url": "https://x"}))),
            "target.url"
        );
        let long = format!("https://x.com/{}", "a".repeat(MAX_URL_LEN));
        assert_eq!(
            field_of(Target::parse(&json!({"type": "webhook", "url": long}))),
            "target.url"
        );
    }

    #[test]
    fn target_url_parts() {
        let u = TargetUrl::parse("https://Hooks.Example.com/x?y=1").unwrap();
        assert_eq!(
            u,
            TargetUrl {
                https: true,
                host: "hooks.example.com".into(),
                port: 443
            }
        );
        let u = TargetUrl::parse("http://127.0.0.1:9000/hook").unwrap();
        assert_eq!(
            (u.https, u.port, u.ip()),
            (false, 9000, Some("127.0.0.1".parse().unwrap()))
        );
        let u = TargetUrl::parse("http://[::1]:8080/").unwrap();
        assert_eq!(u.ip(), Some("::1".parse().unwrap()));
        assert!(TargetUrl::parse("https://exa mple.com/").is_err());
    }

    #[test]
    fn format_defaults_to_cloudevents() {
        assert_eq!(Format::parse(None).unwrap(), Format::Cloudevents);
        assert_eq!(
            Format::parse(Some(&json!("envelope"))).unwrap(),
            Format::Envelope
        );
        assert_eq!(
            Format::parse(Some(&json!("cloudevents"))).unwrap(),
            Format::Cloudevents
        );
        assert!(
            matches!(Format::parse(Some(&json!("xml"))), Err(CoreError::Invalid { field: Some(f), .. }) if f == "format")
        );
        assert_eq!(
            serde_json::to_value(Format::Envelope).unwrap(),
            json!("envelope")
        );
    }

    proptest::proptest! {
        /// Targets and formats from the outside never panic the parser.
        #[test]
        fn parsing_arbitrary_targets_never_panics(
            kind in proptest::prop_oneof![proptest::strategy::Just("webhook".to_string()), proptest::strategy::Just("sqs".to_string()), ".{0,8}"],
            url in proptest::prop_oneof![".{0,80}", "(https?|ftp)://[a-z0-9.:@\\[\\]%-]{0,30}(/.{0,10})?"],
            key in proptest::prop_oneof![proptest::strategy::Just("url".to_string()), proptest::strategy::Just("queueUrl".to_string()), ".{0,6}"],
        ) {
            let _ = Target::parse(&json!({"type": kind, key.clone(): url}));
            let _ = Target::parse(&json!({"type": kind, key: 1}));
            if let Ok(parsed) = TargetUrl::parse(&url) {
                proptest::prop_assert!(!parsed.host.is_empty());
            }
            let _ = Format::parse(Some(&json!(url)));
        }
    }
}
