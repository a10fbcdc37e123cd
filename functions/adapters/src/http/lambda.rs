//! The router on Lambda: API Gateway events in, API Gateway answers out.
//!
//! `lambda_http::run` reads every event by trying the REST API (v1) shape first and the
//! HTTP API (v2) shape after it, so an HTTP API request, the template's, is parsed twice
//! (the first parse fails only at its end, on the missing `httpMethod`). [`ApiGatewayRequest`]
//! parses a v2 event once; anything else is read exactly as `lambda_http` reads it. What the
//! router receives is `lambda_http`'s own conversion.

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
        if let Ok(v2) = serde_json::from_str::<ApiGatewayV2httpRequest>(text) {
            if v2.version.as_deref() == Some("2.0") {
                return Ok(Self(LambdaRequest::ApiGatewayV2(v2)));
            }
        }
        serde_json::from_str(text)
            .map(Self)
            .map_err(D::Error::custom)
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
            req.query_string_parameters(),
            req.path_parameters(),
            // As JSON: the authorizer's fields are a hash map, in no fixed order.
            serde_json::to_value(req.request_context_ref()).unwrap(),
            req.body().as_ref(),
        )
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
}
