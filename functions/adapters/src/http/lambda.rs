//! The router on Lambda: API Gateway events in, API Gateway answers out.
//!
//! `lambda_http::run` reads every event by trying the REST API (v1) shape first and the
//! HTTP API (v2) shape after it, so an HTTP API request, the template's, is parsed twice
//! (the first parse fails only at its end, on the missing `httpMethod`). [`ApiGatewayRequest`]
//! parses a v2 event once; anything else is read exactly as `lambda_http` reads it. What the
//! router receives is `lambda_http`'s own conversion.
//!
//! That conversion panics on a few inputs (it unwraps the URL it builds from the host and the
//! path, the URI with the query appended, and a base64 body), and a panic aborts the instance.
//! Events are made safe for it first: a query or path is percent-encoded where a URI may not
//! hold its bytes (the same parameters once decoded), and an event whose host or base64 body
//! cannot be read is refused with an error.

use aws_lambda_events::apigw::ApiGatewayV2httpRequest;
use lambda_http::request::LambdaRequest;
use lambda_http::{IntoResponse, Request};
use lambda_runtime::{Diagnostic, Error, LambdaEvent};
use serde::de::{Deserializer, Error as _};
use serde::Deserialize;
use serde_json::value::RawValue;

/// An API Gateway event, HTTP API (payload 2.0) or REST API (1.0), as `lambda_http` reads it.
#[derive(Debug)]
pub struct ApiGatewayRequest(pub LambdaRequest);

impl<'de> Deserialize<'de> for ApiGatewayRequest {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw = <Box<RawValue>>::deserialize(deserializer)?;
        let text = raw.get();
        // An event that reads as v2 and says so is one; only then is the first parse kept
        // (a v1 event may read as v2 too, without the version). A REST API event pays one
        // parse more than in lambda_http; the template's HTTP API events one parse less.
        let read = match serde_json::from_str::<ApiGatewayV2httpRequest>(text) {
            Ok(v2) if v2.version.as_deref() == Some("2.0") => LambdaRequest::ApiGatewayV2(v2),
            _ => serde_json::from_str(text).map_err(D::Error::custom)?,
        };
        made_safe(read).map(Self).map_err(D::Error::custom)
    }
}

/// `event` with what `lambda_http`'s conversion would panic on mended, or refused.
fn made_safe(mut event: LambdaRequest) -> Result<LambdaRequest, String> {
    match &mut event {
        LambdaRequest::ApiGatewayV2(e) => {
            e.raw_path = e.raw_path.take().map(rooted);
            e.raw_query_string = e.raw_query_string.take().map(|q| uri_safe(&q));
            readable_host(&e.headers, e.request_context.domain_name.as_deref())?;
            readable_body(e.is_base64_encoded, e.body.as_deref())?;
        }
        LambdaRequest::ApiGatewayV1(e) => {
            // The query is written from the parsed parameters, encoded.
            e.path = e.path.take().map(rooted);
            readable_host(&e.headers, e.request_context.domain_name.as_deref())?;
            readable_body(e.is_base64_encoded, e.body.as_deref())?;
        }
        // Other origins are not enabled in this build.
        _ => {}
    }
    Ok(event)
}

/// A path that starts at the root: appended to the host, anything else would read as part
/// of the authority (`:x` as a port).
fn rooted(path: String) -> String {
    if path.is_empty() || path.starts_with('/') {
        path
    } else {
        format!("/{path}")
    }
}

/// `text` with every byte a URI may not hold in a path or query percent-encoded (RFC 3986:
/// unreserved, sub-delims, `:@/?` and well-formed `%XX` stay). Decoding gives the same text,
/// so the parameters read from it are unchanged.
fn uri_safe(text: &str) -> String {
    let bytes = text.as_bytes();
    let escape_at = |i: usize| {
        let b = bytes[i];
        let kept = b.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=:@/?".contains(&b);
        let escape = b == b'%'
            && bytes
                .get(i + 1..i + 3)
                .is_some_and(|h| h.iter().all(u8::is_ascii_hexdigit));
        !(kept || escape)
    };
    if !(0..bytes.len()).any(escape_at) {
        return text.to_string();
    }
    let mut out = String::with_capacity(text.len() + 16);
    for (i, &b) in bytes.iter().enumerate() {
        if escape_at(i) {
            out.push_str(&format!("%{b:02X}"));
        } else {
            out.push(char::from(b));
        }
    }
    out
}

/// The host the conversion builds its URL from (the `Host` header, else the API's domain)
/// must make one, with the scheme it takes from `X-Forwarded-Proto`.
fn readable_host(headers: &http::HeaderMap, domain: Option<&str>) -> Result<(), String> {
    let text = |name| headers.get(name).and_then(|v| v.to_str().ok());
    let Some(host) = text(http::header::HOST).or(domain) else {
        return Ok(());
    };
    let scheme = text(http::HeaderName::from_static("x-forwarded-proto")).unwrap_or("https");
    let origin = format!("{scheme}://{host}/");
    // An instance serves one API: its requests name the same host, checked once.
    thread_local!(static LAST_GOOD: std::cell::RefCell<String> = const { std::cell::RefCell::new(String::new()) });
    if LAST_GOOD.with_borrow(|last| *last == origin) {
        return Ok(());
    }
    let url = url::Url::parse(&origin)
        .map_err(|e| format!("the event's host {host:?} makes no URL: {e}"))?;
    http::Uri::try_from(url.as_str())
        .map_err(|e| format!("the event's host {host:?} makes no URI: {e}"))?;
    LAST_GOOD.set(origin);
    Ok(())
}

/// A body marked base64 must be base64.
fn readable_body(base64: bool, body: Option<&str>) -> Result<(), String> {
    use base64::Engine;
    match body {
        Some(b) if base64 => base64::engine::general_purpose::STANDARD
            .decode(b)
            .map(|_| ())
            .map_err(|e| format!("the event's body is marked base64 but is not: {e}")),
        _ => Ok(()),
    }
}

impl ApiGatewayRequest {
    /// The request the router receives.
    pub fn into_request(self) -> Request {
        self.0.into()
    }
}

/// `lambda_http::run`, with [`ApiGatewayRequest`] reading the events.
pub async fn run<'a, R, S, E>(handler: S) -> Result<(), Error>
where
    S: tower::Service<Request, Response = R, Error = E>,
    S::Future: Send + 'a,
    R: IntoResponse,
    E: std::fmt::Debug + Into<Diagnostic>,
{
    // The adapter `lambda_http::run` wraps the handler in (it answers in the shape of the
    // event's origin), fed the events read above. It is public but hidden from lambda_http's
    // docs: a release that changes it fails this build, not a request.
    lambda_runtime::run(
        tower::ServiceBuilder::new()
            .map_request(|e: LambdaEvent<ApiGatewayRequest>| {
                LambdaEvent::new(e.payload.0, e.context)
            })
            .service(lambda_http::Adapter::from(handler)),
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use lambda_http::RequestExt;

    /// What the router sees of a request.
    fn seen(r: Request) -> String {
        let (parts, body) = r.into_parts();
        let mut headers: Vec<String> = parts
            .headers
            .iter()
            .map(|(k, v)| format!("{k}: {v:?}"))
            .collect();
        headers.sort();
        let req = Request::from_parts(parts, body);
        format!(
            "{} {} {headers:?} {:?} {:?} {:?} {:?}",
            req.method(),
            req.uri(),
            sorted(req.query_string_parameters().iter()),
            sorted(req.path_parameters().iter()),
            // As JSON: the authorizer's fields are a hash map, in no fixed order.
            serde_json::to_value(req.request_context_ref()).unwrap(),
            req.body().as_ref(),
        )
    }

    /// Parameters in a fixed order (they are kept in a hash map).
    fn sorted<'a>(pairs: impl Iterator<Item = (&'a str, &'a str)>) -> Vec<(&'a str, &'a str)> {
        let mut pairs: Vec<_> = pairs.collect();
        pairs.sort();
        pairs
    }

    fn ours(text: &str) -> Result<ApiGatewayRequest, serde_json::Error> {
        serde_json::from_str(text)
    }

    fn lambda_https(text: &str) -> Result<LambdaRequest, serde_json::Error> {
        serde_json::from_str(text)
    }

    #[test]
    fn every_fixture_reaches_the_router_as_lambda_http_delivers_it() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/fixtures");
        let mut read = 0;
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().to_string();
            if !name.starts_with("apigw-") {
                continue;
            }
            let text = std::fs::read_to_string(&path).unwrap();
            let theirs = lambda_https(&text).unwrap();
            let ours = ours(&text).unwrap();
            let v2 = name.starts_with("apigw-v2-");
            assert_eq!(
                matches!(ours.0, LambdaRequest::ApiGatewayV2(_)),
                v2,
                "{name}"
            );
            assert_eq!(seen(ours.into_request()), seen(theirs.into()), "{name}");
            read += 1;
        }
        assert!(read >= 6, "the fixtures were found: {read}");
    }

    #[test]
    fn a_payload_format_1_0_event_is_read_as_v1() {
        // An HTTP API with payload format 1.0 sends the REST shape with "version": "1.0".
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../tests/fixtures/apigw-v1-get-state.json"
        );
        let mut event: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        event["version"] = "1.0".into();
        let text = event.to_string();
        let ours = ours(&text).unwrap();
        assert!(matches!(ours.0, LambdaRequest::ApiGatewayV1(_)));
        assert_eq!(
            seen(ours.into_request()),
            seen(lambda_https(&text).unwrap().into())
        );
    }

    #[test]
    fn what_is_no_api_gateway_event_is_refused_as_lambda_http_refuses_it() {
        for text in [
            r#"{"version": "2.0"}"#,
            r#"{"version": "2.0", "rawPath": 7}"#,
            r#"{"version": 2}"#,
            r#"{"Records": []}"#,
            r#"[]"#,
            r#""2.0""#,
        ] {
            let theirs = lambda_https(text).map(|_| ()).map_err(|e| e.to_string());
            let ours = ours(text).map(|_| ()).map_err(|e| e.to_string());
            assert_eq!(ours, theirs, "{text}");
        }
    }

    /// The HTTP API fixture with `edit` applied, as event text.
    fn v2_event_with(edit: impl FnOnce(&mut serde_json::Value)) -> String {
        fixture_with("apigw-v2-post-events.json", edit)
    }

    /// A fixture with `edit` applied, as event text.
    fn fixture_with(name: &str, edit: impl FnOnce(&mut serde_json::Value)) -> String {
        let path = format!("{}/../../tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
        let mut event: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        edit(&mut event);
        event.to_string()
    }

    /// `fixture` with `edit` applied and the body set: read or refused with an error, and
    /// when read, converted into the router's request (a panic fails the test).
    fn read_and_convert(
        fixture: &str,
        body: Option<String>,
        base64: bool,
        edit: impl FnOnce(&mut serde_json::Value),
    ) {
        let text = fixture_with(fixture, |e| {
            edit(e);
            e["body"] = body.into();
            e["isBase64Encoded"] = base64.into();
        });
        if let Ok(read) = ours(&text) {
            let _ = seen(read.into_request());
        }
    }

    /// What both event shapes carry besides their path and query, holding anything: a
    /// `Host` header, an `X-Forwarded-Proto`, a body and whether it is marked base64.
    fn host_and_body(
    ) -> impl proptest::strategy::Strategy<Value = (Option<String>, Option<String>, Option<String>, bool)>
    {
        (
            proptest::option::of("[a-z0-9.:-]{0,12}|.*"),
            proptest::option::of("https?|.*"),
            proptest::option::of(proptest::prelude::any::<String>()),
            proptest::prelude::any::<bool>(),
        )
    }

    proptest::proptest! {
        /// Any bytes as an event: refused with an error, never a panic, and refused exactly
        /// when lambda_http refuses them.
        #[test]
        fn arbitrary_text_is_refused_not_panicked_on(text in proptest::prelude::any::<String>()) {
            proptest::prop_assert_eq!(ours(&text).is_ok(), lambda_https(&text).is_ok());
        }

        /// An HTTP API event whose path, query, method, headers, host and body hold anything:
        /// read or refused with an error, and when read, converted into the router's request
        /// without a panic.
        #[test]
        fn any_http_api_event_is_read_or_refused_never_panicked_on(
            raw_path in proptest::prelude::any::<String>(),
            query in proptest::prelude::any::<String>(),
            method in "[A-Z]{0,8}|.*",
            headers in proptest::collection::btree_map(".*", ".*", 0..4),
            (host, scheme, body, base64) in host_and_body(),
        ) {
            read_and_convert("apigw-v2-post-events.json", body, base64, |e| {
                e["rawPath"] = raw_path.clone().into();
                e["requestContext"]["http"]["path"] = raw_path.into();
                e["rawQueryString"] = query.into();
                e["requestContext"]["http"]["method"] = method.into();
                let mut headers = serde_json::to_value(&headers).unwrap();
                if let Some(h) = host {
                    headers["host"] = h.into();
                }
                if let Some(s) = scheme {
                    headers["x-forwarded-proto"] = s.into();
                }
                e["headers"] = headers;
            });
        }

        /// A REST API event whose path, query parameters, host and body hold anything: read
        /// or refused with an error, and when read, converted without a panic.
        #[test]
        fn any_rest_api_event_is_read_or_refused_never_panicked_on(
            path in proptest::prelude::any::<String>(),
            query in proptest::collection::hash_map(".*", ".*", 0..3),
            (host, scheme, body, base64) in host_and_body(),
        ) {
            read_and_convert("apigw-v1-get-state.json", body, base64, |e| {
                e["path"] = path.into();
                e["queryStringParameters"] = serde_json::to_value(&query).unwrap();
                let multi: std::collections::HashMap<_, _> =
                    query.iter().map(|(k, v)| (k.clone(), vec![v.clone()])).collect();
                e["multiValueQueryStringParameters"] = serde_json::to_value(multi).unwrap();
                for (name, value) in [("host", host), ("x-forwarded-proto", scheme)] {
                    if let Some(v) = value {
                        e["headers"][name] = v.clone().into();
                        e["multiValueHeaders"][name] = vec![v].into();
                    }
                }
            });
        }

        /// An HTTP API event lambda_http converts (a path and query a URI holds as they are):
        /// handed to the router exactly as lambda_http hands it.
        #[test]
        fn a_convertible_http_api_event_reaches_the_router_as_lambda_http_delivers_it(
            raw_path in "(/[A-Za-z0-9._~!$&'()*+,;=:@%-]{0,12}){0,3}",
            query in "[A-Za-z0-9._~!$&'()*+,;=:@/?-]{0,24}",
            method in "GET|POST|PUT|DELETE|PATCH",
            body in proptest::option::of(".*"),
        ) {
            let text = v2_event_with(|e| {
                e["rawPath"] = raw_path.clone().into();
                e["requestContext"]["http"]["path"] = raw_path.into();
                e["rawQueryString"] = query.into();
                e["requestContext"]["http"]["method"] = method.into();
                e["body"] = body.into();
            });
            let theirs = lambda_https(&text).unwrap();
            proptest::prop_assert_eq!(seen(ours(&text).unwrap().into_request()), seen(theirs.into()));
        }

        /// A query or path percent-encoded for the URI decodes to the text it was.
        #[test]
        fn uri_safe_text_decodes_to_the_same_text(text in proptest::prelude::any::<String>()) {
            let safe = uri_safe(&text);
            let decode = |t: &str| percent_encoding::percent_decode_str(t).collect::<Vec<u8>>();
            proptest::prop_assert_eq!(decode(&safe), decode(&text));
            proptest::prop_assert!(http::Uri::try_from(format!("https://h/?{safe}")).is_ok(), "{}", safe);
            proptest::prop_assert_eq!(uri_safe(&safe), safe.clone());
        }
    }
}
