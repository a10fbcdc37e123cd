//! The operator console: a small static front end (HTML, CSS, vanilla JavaScript and SVG;
//! no build step, no external resources) embedded in the binary and served by the same
//! router as the API, under `/console`. Every console page answers the same shell; the
//! script picks the view from the address and calls the JSON routes with the caller's
//! identity (locally `X-Tenant-Id` and `X-Scopes`, on AWS the pasted access token). The pages
//! hold no data, so they need no scope; the data routes they call check theirs.
//!
//! Nothing is read from disk: the only answers are the three embedded files. A path under
//! `/console` answers the shell only when its first segment is one of [`PAGES`]; an unknown
//! page or asset, or a `.`/`..` segment, is the API's JSON 404.

use axum::extract::Path;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

use super::error::ApiError;

const INDEX: &str = include_str!("../../console/index.html");
const SCRIPT: &str = include_str!("../../console/app.js");
const STYLE: &str = include_str!("../../console/app.css");

/// The API Gateway routes (`METHOD path`) that reach the console. They are not API routes
/// (not in [`super::scopes::ROUTES`], not in the OpenAPI document): they carry no data, so
/// the template routes them to the API function without the JWT authorizer, and
/// `tests/tests/infra_template.rs` holds the template to this list.
pub const GATEWAY_ROUTES: &[&str] = &["GET /console", "GET /console/{proxy+}"];

/// The first segment of every console page after `/console/` (the live feed is `/console`).
pub const PAGES: &[&str] = &[
    "events",
    "aggregates",
    "correlations",
    "dead-letters",
    "handlers",
    "subscriptions",
];

/// Only this origin's scripts and styles, no framing: the console runs nothing from elsewhere.
const CSP: &str = "default-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'; form-action 'self'";

fn asset(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CONTENT_SECURITY_POLICY, CSP),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (header::CACHE_CONTROL, "no-cache"),
            (header::REFERRER_POLICY, "no-referrer"),
        ],
        body,
    )
        .into_response()
}

/// The shell, its addresses under the stage prefix (also given to the script as `data-base`).
async fn index(request: axum::extract::Request) -> Response {
    let page = INDEX.replace("{{BASE}}", &super::stage::prefix(request.extensions()));
    let mut response = asset("text/html; charset=utf-8", "");
    *response.body_mut() = axum::body::Body::from(page);
    response
}

fn no_such_page(path: &str) -> Response {
    ApiError::not_found(format!("no console page /console/{path}")).into_response()
}

/// One embedded asset by its exact name; anything else under `/console/assets/` is a 404.
async fn serve_asset(Path(name): Path<String>) -> Response {
    match name.as_str() {
        "app.js" => asset("text/javascript; charset=utf-8", SCRIPT),
        "app.css" => asset("text/css; charset=utf-8", STYLE),
        _ => no_such_page(&format!("assets/{name}")),
    }
}

/// The shell for a page of [`PAGES`] (the script draws it, and says "not found" for an id
/// that does not exist); a JSON 404 for any other path.
async fn page(Path(path): Path<String>, request: axum::extract::Request) -> Response {
    let known = path
        .split('/')
        .next()
        .is_some_and(|first| PAGES.contains(&first));
    let dotted = path
        .split('/')
        .any(|s| s == "." || s == ".." || s.contains('\\'));
    if known && !dotted {
        index(request).await
    } else {
        no_such_page(&path)
    }
}

/// The console's pages and assets (merged into the ingest router outside the scope layer).
pub fn router() -> Router {
    Router::new()
        .route("/console", get(index))
        .route("/console/", get(index))
        .route("/console/assets/{name}", get(serve_asset))
        .route("/console/{*page}", get(page))
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
            "/console/subscriptions",
            "/console/subscriptions/0a4c3f52-7d1e-4b8a-9c61-2f5e8d9b1a04",
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

    /// Only the three embedded files ever answer: an unknown page or asset, and any path that
    /// tries to climb out of `/console`, is the JSON 404, through the whole API router (no
    /// tenant, no scope: as an unauthenticated caller reaches it on AWS).
    #[tokio::test]
    async fn nothing_outside_the_embedded_files_is_served() {
        let router = crate::http::openapi::tests::offline_router();
        for uri in [
            "/console/nope",
            "/console/assets/secret.txt",
            "/console/assets/app.js/x",
            "/console/assets/../../etc/passwd",
            "/console/assets/%2e%2e/%2e%2e/etc/passwd",
            "/console/../events/stream",
            "/console/..%2F..%2Fetc%2Fpasswd",
            "/console/%2e%2e/openapi.json",
            "/console/aggregates/../../../Cargo.toml",
            "/console/events/..%5C..%5Cwindows",
            "/console/./handlers",
            "/console/assets/..%2Fapp.js",
        ] {
            let resp = router
                .clone()
                .oneshot(
                    http::Request::get(uri)
                        .body(axum::body::Body::empty())
                        .unwrap(),
                )
                .await
                .unwrap();
            let status = resp.status().as_u16();
            let body = axum::body::to_bytes(resp.into_body(), 1 << 20)
                .await
                .unwrap();
            let v: serde_json::Value = serde_json::from_slice(&body)
                .unwrap_or_else(|_| panic!("{uri}: not JSON: {}", String::from_utf8_lossy(&body)));
            assert_eq!(
                (status, v["error"]["code"].as_str()),
                (404, Some("not_found")),
                "{uri}: {v}"
            );
        }
    }

    /// Every page the script draws has its first segment in [`PAGES`], and the other way round.
    #[test]
    fn the_pages_the_script_routes_are_the_ones_served() {
        for page in PAGES {
            assert!(
                SCRIPT.contains(&format!("section === \"{page}\"")),
                "app.js routes no {page} page"
            );
        }
        let routed = SCRIPT.matches("section === \"").count();
        assert_eq!(
            routed,
            PAGES.len(),
            "app.js routes pages that are not in PAGES"
        );
    }

    /// Behind a named stage (`/prod/console/...` as API Gateway sends it) the page names its
    /// assets and tells the script the API under `/prod`; locally (no request context), at
    /// the root; and a stage not in the address (a custom domain) adds nothing.
    #[tokio::test]
    async fn behind_a_named_stage_the_page_addresses_everything_under_it() {
        use lambda_http::aws_lambda_events::apigw::ApiGatewayV2httpRequestContext;
        use lambda_http::request::RequestContext;
        let shell = |stage: Option<&str>, full_path: &str| {
            let mut req = http::Request::get("/console/handlers")
                .body(axum::body::Body::empty())
                .unwrap();
            if let Some(stage) = stage {
                let mut context = ApiGatewayV2httpRequestContext::default();
                context.stage = Some(stage.into());
                context.http.path = Some(full_path.into());
                req.extensions_mut()
                    .insert(RequestContext::ApiGatewayV2(context));
            }
            async move {
                let resp = router().oneshot(req).await.unwrap();
                let body = axum::body::to_bytes(resp.into_body(), 1 << 20)
                    .await
                    .unwrap();
                String::from_utf8(body.to_vec()).unwrap()
            }
        };
        let staged = shell(Some("prod"), "/prod/console/handlers").await;
        assert!(staged.contains(r#"data-base="/prod""#), "{staged}");
        assert!(staged.contains(r#"src="/prod/console/assets/app.js""#));
        assert!(staged.contains(r#"href="/prod/console/assets/app.css""#));
        assert!(staged.contains(r#"href="/prod/console/handlers" data-nav="/console/handlers""#));
        for (stage, path) in [
            (None, ""),
            (Some("$default"), "/console/handlers"),
            (Some("prod"), "/console/handlers"),
            (Some("x\"><script>"), "/x\"><script>/console/handlers"),
        ] {
            let page = shell(stage, path).await;
            assert!(page.contains(r#"data-base="""#), "{stage:?} {path}: {page}");
            assert!(page.contains(r#"src="/console/assets/app.js""#));
            assert!(!page.contains("{{BASE}}"));
        }
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
