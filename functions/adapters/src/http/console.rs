//! The operator console: a small static front end (HTML, CSS, vanilla JavaScript and SVG;
//! no build step, no external resources) embedded in the binary and served by the same
//! router as the API, under `/console`. Every console address answers the same page; the
//! script picks the view from the address and calls the JSON routes with the caller's
//! identity (locally `X-Tenant-Id` and `X-Scopes`, on AWS the pasted access token). The pages
//! hold no data, so they need no scope; the data routes they call check theirs.

use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

const INDEX: &str = include_str!("../../console/index.html");
const SCRIPT: &str = include_str!("../../console/app.js");
const STYLE: &str = include_str!("../../console/app.css");

/// Only this origin's scripts and styles, no framing: the console runs nothing from elsewhere.
const CSP: &str = "default-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'; form-action 'self'";

fn asset(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CONTENT_SECURITY_POLICY, CSP),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
        .into_response()
}

async fn index() -> Response {
    asset("text/html; charset=utf-8", INDEX)
}

/// The console's pages and assets (merged into the ingest router outside the scope layer).
pub fn router() -> Router {
    Router::new()
        .route("/console", get(index))
        .route("/console/", get(index))
        .route("/console/{*page}", get(index))
        .route(
            "/console/assets/app.js",
            get(|| async { asset("text/javascript; charset=utf-8", SCRIPT) }),
        )
        .route(
            "/console/assets/app.css",
            get(|| async { asset("text/css; charset=utf-8", STYLE) }),
        )
}

#[cfg(test)]
mod tests {
    use super::*;
    use tower::ServiceExt;

    async fn get_page(uri: &str) -> (u16, String, String) {
        let resp = router()
            .oneshot(
                http::Request::get(uri)
                    .body(axum::body::Body::empty())
                    .unwrap(),
            )
            .await
            .unwrap();
        let status = resp.status().as_u16();
        let ct = resp.headers()[header::CONTENT_TYPE]
            .to_str()
            .unwrap()
            .to_string();
        let body = axum::body::to_bytes(resp.into_body(), 1 << 20)
            .await
            .unwrap();
        (status, ct, String::from_utf8(body.to_vec()).unwrap())
    }

    #[tokio::test]
    async fn every_console_address_answers_the_page_and_the_assets_their_types() {
        for uri in [
            "/console",
            "/console/",
            "/console/aggregates/Loan/L-1",
            "/console/correlations/c-1",
            "/console/events/0a4c3f52-7d1e-4b8a-9c61-2f5e8d9b1a04",
            "/console/dead-letters",
            "/console/handlers",
        ] {
            let (status, ct, body) = get_page(uri).await;
            assert_eq!(
                (status, ct.as_str()),
                (200, "text/html; charset=utf-8"),
                "{uri}"
            );
            assert!(body.contains("/console/assets/app.js"), "{uri}");
        }
        let (_, ct, js) = get_page("/console/assets/app.js").await;
        assert!(ct.starts_with("text/javascript") && js.contains("readStream"));
        let (_, ct, _) = get_page("/console/assets/app.css").await;
        assert!(ct.starts_with("text/css"));
    }

    /// Works offline: nothing is loaded from another origin.
    #[test]
    fn the_console_loads_nothing_from_elsewhere() {
        for text in [INDEX, SCRIPT, STYLE] {
            for needle in ["http://", "https://", "//cdn", "@import", "fonts.g"] {
                let hits: Vec<&str> = text
                    .lines()
                    .filter(|l| l.contains(needle) && !l.contains("http://www.w3.org/2000/svg"))
                    .collect();
                assert!(hits.is_empty(), "{needle}: {hits:?}");
            }
        }
    }
}
