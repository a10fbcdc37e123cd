//! The OpenAPI 3 document of the HTTP API (`functions/adapters/openapi.json`), served at
//! `GET /openapi.json`. A test holds it to the router both ways: every route registered in
//! the router's source ([`super::api`]) is documented, and every documented operation
//! answers (is not the router's fallback).

use axum::http::header;
use axum::response::{IntoResponse, Response};

/// The document, as shipped in the repository.
pub const DOCUMENT: &str = include_str!("../../openapi.json");

pub(crate) async fn serve() -> Response {
    ([(header::CONTENT_TYPE, "application/json")], DOCUMENT).into_response()
}

/// `(METHOD, path)` of every operation in the document, path parameters as `{}`.
pub fn documented_operations() -> Vec<(String, String)> {
    let doc: serde_json::Value = serde_json::from_str(DOCUMENT).expect("openapi.json parses");
    let mut out = Vec::new();
    for (path, item) in doc["paths"].as_object().into_iter().flatten() {
        for method in item.as_object().into_iter().flatten().map(|(m, _)| m) {
            if ["get", "post", "put", "patch", "delete"].contains(&method.as_str()) {
                out.push((method.to_ascii_uppercase(), normalise(path)));
            }
        }
    }
    out.sort();
    out
}

/// `/a/{x}/b` and `/a/{aggregate_type}/b` alike become `/a/{}/b`.
pub fn normalise(path: &str) -> String {
    path.split('/')
        .map(|seg| {
            if seg.starts_with('{') && seg.ends_with('}') {
                "{}"
            } else {
                seg
            }
        })
        .collect::<Vec<_>>()
        .join("/")
}

/// `(METHOD, path)` of every `.route("path", method(...))` in a Rust source text.
pub fn routes_in_source(src: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut rest = src;
    while let Some(i) = rest.find(".route(") {
        rest = &rest[i + ".route(".len()..];
        let Some(open) = rest.find('"') else { break };
        let after = &rest[open + 1..];
        let Some(close) = after.find('"') else { break };
        let path = &after[..close];
        let tail = after[close + 1..].trim_start_matches([',', ' ', '\n', '\r', '\t']);
        // get(x), post(x), and chained `.post(y)` on the same MethodRouter.
        // The call ends at the next route, or where the router's chain ends.
        let end = [".route(", ".with_state(", ".fallback("]
            .iter()
            .filter_map(|m| tail.find(m))
            .min()
            .unwrap_or(tail.len());
        let call = &tail[..end];
        for m in ["get", "post", "put", "patch", "delete"] {
            let direct = call.starts_with(&format!("{m}("));
            let chained = call.contains(&format!(".{m}("));
            if direct || chained {
                out.push((m.to_ascii_uppercase(), normalise(path)));
            }
        }
    }
    out
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::collections::BTreeSet;

    /// Every route registered in the router's source: `api.rs` registers them all.
    pub(crate) fn router_routes() -> BTreeSet<(String, String)> {
        routes_in_source(include_str!("api.rs"))
            .into_iter()
            .collect()
    }

    #[test]
    fn every_route_is_documented_and_every_documented_route_exists() {
        let routes = router_routes();
        let documented: BTreeSet<_> = documented_operations().into_iter().collect();
        assert!(routes.len() >= 8, "found only {routes:?}");
        let undocumented: Vec<_> = routes.difference(&documented).collect();
        let missing: Vec<_> = documented.difference(&routes).collect();
        assert!(
            undocumented.is_empty(),
            "routes missing from openapi.json: {undocumented:?}"
        );
        assert!(missing.is_empty(), "documented but not routed: {missing:?}");
    }

    /// Each documented operation names the scope the router enforces, and the document's
    /// producers are the catalog's.
    #[test]
    fn the_document_states_the_enforced_scopes_and_the_producers() {
        let doc: serde_json::Value = serde_json::from_str(DOCUMENT).unwrap();
        for r in super::super::scopes::ROUTES {
            let op = &doc["paths"][r.path][r.method.to_ascii_lowercase()];
            assert!(op.is_object(), "{} {} is not documented", r.method, r.path);
            let documented = op["x-required-scope"].as_str();
            let enforced = r.scope.map(|s| s.scope().to_string());
            assert_eq!(documented, enforced.as_deref(), "{} {}", r.method, r.path);
            if r.scope.is_some() {
                assert!(
                    op["responses"]["403"].is_object(),
                    "{} {}",
                    r.method,
                    r.path
                );
            }
        }
        let producers =
            &doc["components"]["schemas"]["NewEvent"]["properties"]["eventType"]["x-producers"];
        let catalog = lending_events::catalog::export();
        let types = catalog["eventTypes"].as_array().unwrap();
        assert_eq!(producers.as_object().unwrap().len(), types.len());
        for t in types {
            let name = t["eventType"].as_str().unwrap();
            assert_eq!(producers[name], t["producers"], "{name}");
        }
    }

    /// The same comparison against the live router: every documented operation is
    /// answered by a route (401 without a tenant, or 200), never by the fallback.
    #[tokio::test]
    async fn every_documented_operation_reaches_a_route() {
        use tower::ServiceExt;
        let router = offline_router();
        for (method, path) in documented_operations() {
            let uri = path.replace("{}", "x1");
            let req = http::Request::builder()
                .method(method.as_str())
                .uri(&uri)
                .header("content-type", "application/json")
                .body(axum::body::Body::from("{}"))
                .unwrap();
            let resp = router.clone().oneshot(req).await.unwrap();
            let status = resp.status().as_u16();
            let body = axum::body::to_bytes(resp.into_body(), 1 << 20)
                .await
                .unwrap();
            let text = String::from_utf8_lossy(&body);
            assert!(
                !text.contains("no such route") && status != 405,
                "{method} {uri}: {status} {text}"
            );
            assert!(
                status == 401 || (status == 200 && path == "/openapi.json"),
                "{method} {uri}: {status} {text}"
            );
        }
        // And the fallback really is what an unknown route gets.
        let req = http::Request::get("/nope")
            .body(axum::body::Body::empty())
            .unwrap();
        let resp = router.oneshot(req).await.unwrap();
        assert_eq!(resp.status().as_u16(), 404);
    }

    /// The ingest router over clients that reach no AWS endpoint (for routing tests that
    /// never get as far as a call).
    pub(crate) fn offline_router() -> axum::Router {
        let ddb = aws_sdk_dynamodb::Client::from_conf(
            aws_sdk_dynamodb::Config::builder()
                .behavior_version(aws_sdk_dynamodb::config::BehaviorVersion::latest())
                .region(aws_sdk_dynamodb::config::Region::new("us-east-1"))
                .build(),
        );
        let sqs = aws_sdk_sqs::Client::from_conf(
            aws_sdk_sqs::Config::builder()
                .behavior_version(aws_sdk_sqs::config::BehaviorVersion::latest())
                .region(aws_sdk_sqs::config::Region::new("us-east-1"))
                .build(),
        );
        let config = crate::config::Config {
            table: "t".into(),
            queues: Default::default(),
            tenant_from_header: true,
            cursor_key: crate::http::cursor::CursorKey::development(),
            subscriptions: Default::default(),
            rebuild: Default::default(),
        };
        let kms = aws_sdk_kms::Client::from_conf(
            aws_sdk_kms::Config::builder()
                .behavior_version(aws_sdk_kms::config::BehaviorVersion::latest())
                .region(aws_sdk_kms::config::Region::new("us-east-1"))
                .build(),
        );
        let clients = crate::config::Clients {
            dynamodb: ddb,
            sqs,
            kms,
        };
        crate::functions::ingest_router(&config, &clients, Default::default())
    }
}
