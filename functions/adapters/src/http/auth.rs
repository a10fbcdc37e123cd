//! Who is calling, and whether they may: the caller's [`Principal`] and the one middleware
//! that holds every route to its scope in [`super::scopes::ROUTES`].
//!
//! - On AWS the principal is the API Gateway authorizer's: the JWT claims `sub` (the
//!   principal), `tenantId` and `scope` (space-separated; the HTTP API's `scopes` list too),
//!   or a Lambda authorizer's context keys `principalId`, `tenantId`, `scope`. The
//!   `X-Tenant-Id`, `X-Principal` and `X-Scopes` headers are ignored there.
//! - Locally (`TENANT_FROM_HEADER`) the headers are the identity: `X-Tenant-Id`,
//!   `X-Principal` (default `local`) and `X-Scopes` (space- or comma-separated; a request
//!   without the header holds every scope, so local clients that predate scopes keep working).
//!
//! [`require_scope`] runs on every routed request: it finds the matched route in the table
//! (a route that is not in the table is refused: the table is the only place a route's
//! access is decided), answers 401 without a tenant and 403 `forbidden` naming the missing
//! scope, and hands the principal to the handler as a request extension.

use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use lambda_http::aws_lambda_events::apigw::ApiGatewayRequestAuthorizer;
use lending_events::schema::is_safe_id;
use serde_json::Value;

use super::error::ApiError;
use super::openapi::normalise;
use super::scopes::{FixedScope, Scope, ROUTES};

/// Where the caller's tenant comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TenantSource {
    /// The API Gateway authorizer (JWT claim or Lambda authorizer context `tenantId`).
    Authorizer,
    /// The `X-Tenant-Id` header: local development only.
    Header,
}

/// The principal of local requests without `X-Principal`.
pub const LOCAL_PRINCIPAL: &str = "local";
/// Longest principal kept (a JWT `sub` is usually a UUID or a client id).
const MAX_PRINCIPAL_LEN: usize = 256;

/// The authenticated caller of one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub tenant: String,
    /// The token's subject (`sub`), stored as `metadata.principal` on what it writes.
    pub subject: String,
    pub scopes: Vec<Scope>,
}

impl Principal {
    pub fn holds(&self, scope: &Scope) -> bool {
        self.scopes.contains(scope)
    }

    /// `events:write`, or `events:write:<domain>` for that domain.
    pub fn may_write(&self, domain: &str) -> bool {
        self.holds(&Scope::EventsWrite)
            || self
                .scopes
                .iter()
                .any(|s| matches!(s, Scope::EventsWriteDomain(d) if d == domain))
    }

    /// Whether the principal may call a route that needs `scope` at all (`POST /events`
    /// also admits per-domain write scopes; each event's domain is checked after parsing).
    fn may_call(&self, scope: FixedScope) -> bool {
        match scope {
            FixedScope::EventsWrite => self
                .scopes
                .iter()
                .any(|s| matches!(s, Scope::EventsWrite | Scope::EventsWriteDomain(_))),
            other => self.holds(&other.scope()),
        }
    }
}

/// A 403 `forbidden` naming the scope the caller lacks.
pub fn forbidden(message: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::FORBIDDEN, "forbidden", message, None)
}

/// The caller's tenant, from the authorizer on AWS or the header locally.
pub fn tenant_of(
    req_headers: &HeaderMap,
    extensions: &http::Extensions,
    source: TenantSource,
) -> Result<String, ApiError> {
    let tenant = match source {
        TenantSource::Header => req_headers
            .get("x-tenant-id")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string),
        TenantSource::Authorizer => authorizer_tenant(extensions),
    };
    match tenant {
        Some(t) if is_safe_id(&t, 64) => Ok(t),
        Some(_) => Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "tenant id is not a valid identifier",
            None,
        )),
        None => Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            match source {
                TenantSource::Header => "missing X-Tenant-Id header",
                TenantSource::Authorizer => "no tenantId in the authorizer context",
            },
            None,
        )),
    }
}

fn authorizer_tenant(ext: &http::Extensions) -> Option<String> {
    let auth = authorizer(ext)?;
    if let Some(Value::String(t)) = auth.fields.get("tenantId") {
        return Some(t.clone());
    }
    let claims = &auth.jwt.as_ref()?.claims;
    claims
        .get("tenantId")
        .or_else(|| claims.get("custom:tenantId"))
        .cloned()
}

/// The principal the scope middleware admitted (it runs before every routed request).
pub fn admitted(req: &Request) -> Result<Principal, ApiError> {
    req.extensions()
        .get::<Principal>()
        .cloned()
        .ok_or_else(|| forbidden("no authenticated principal"))
}

/// The caller of a request, from the authorizer on AWS or the headers locally.
pub fn principal_of(
    headers: &HeaderMap,
    extensions: &http::Extensions,
    source: TenantSource,
) -> Result<Principal, ApiError> {
    let tenant = tenant_of(headers, extensions, source)?;
    let (subject, scopes) = match source {
        TenantSource::Header => {
            let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
            let subject = header("x-principal")
                .map(str::trim)
                .filter(|p| !p.is_empty())
                .unwrap_or(LOCAL_PRINCIPAL)
                .to_string();
            let scopes = match header("x-scopes") {
                None => every_scope(),
                Some(list) => Scope::parse_claim(&list.replace(',', " ")),
            };
            (subject, scopes)
        }
        TenantSource::Authorizer => authorizer_identity(extensions),
    };
    if subject.chars().count() > MAX_PRINCIPAL_LEN || subject.chars().any(char::is_control) {
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "the principal is not a valid identifier",
            None,
        ));
    }
    Ok(Principal {
        tenant,
        subject,
        scopes,
    })
}

/// Every scope that is not per domain: what a local request without `X-Scopes` holds.
pub fn every_scope() -> Vec<Scope> {
    Scope::FIXED.to_vec()
}

pub(crate) fn authorizer(ext: &http::Extensions) -> Option<&ApiGatewayRequestAuthorizer> {
    use lambda_http::request::RequestContext;
    match ext.get::<RequestContext>()? {
        RequestContext::ApiGatewayV1(c) => Some(&c.authorizer),
        RequestContext::ApiGatewayV2(c) => c.authorizer.as_ref(),
        #[allow(unreachable_patterns)]
        _ => None,
    }
}

/// `(subject, scopes)` from the authorizer; an unknown subject is `unknown`, no scopes is
/// an empty list (every scoped route then answers 403).
fn authorizer_identity(ext: &http::Extensions) -> (String, Vec<Scope>) {
    let Some(auth) = authorizer(ext) else {
        return ("unknown".into(), Vec::new());
    };
    let field = |k: &str| match auth.fields.get(k) {
        Some(Value::String(s)) => Some(s.clone()),
        _ => None,
    };
    let claims = auth.jwt.as_ref().map(|j| &j.claims);
    let claim = |k: &str| claims.and_then(|c| c.get(k)).cloned();
    let subject = claim("sub")
        .or_else(|| field("principalId"))
        .or_else(|| field("sub"))
        .unwrap_or_else(|| "unknown".into());
    let mut scopes = Vec::new();
    if let Some(listed) = auth.jwt.as_ref().and_then(|j| j.scopes.as_ref()) {
        scopes.extend(listed.iter().filter_map(|s| Scope::parse(s)));
    }
    for text in [claim("scope"), field("scope")].into_iter().flatten() {
        scopes.extend(Scope::parse_claim(&text));
    }
    scopes.dedup();
    (subject, scopes)
}

/// The middleware: the matched route's entry in [`ROUTES`], the caller and its scopes.
pub async fn require_scope(
    State(source): State<TenantSource>,
    matched: Option<MatchedPath>,
    mut req: Request,
    next: Next,
) -> Response {
    let method = req.method().as_str().to_string();
    let Some(path) = matched.map(|m| normalise(m.as_str())) else {
        return forbidden("this route has no entry in the scope table").into_response();
    };
    let Some(entry) = ROUTES
        .iter()
        .find(|r| r.method.eq_ignore_ascii_case(&method) && normalise(r.path) == path)
    else {
        // A listed path called with another method: the router's 405 answers it.
        if ROUTES.iter().any(|r| normalise(r.path) == path) {
            return next.run(req).await;
        }
        return forbidden(format!(
            "{method} {path} has no entry in the scope table; refused"
        ))
        .into_response();
    };
    let Some(needed) = entry.scope else {
        return next.run(req).await;
    };
    let principal = match principal_of(req.headers(), req.extensions(), source) {
        Ok(p) => p,
        Err(e) => return e.into_response(),
    };
    if !principal.may_call(needed) {
        let also = if needed == FixedScope::EventsWrite {
            " (or events:write:<domain> for the domains of the posted types)"
        } else {
            ""
        };
        return forbidden(format!(
            "{method} {} needs the scope {}{also}",
            entry.path,
            needed.scope()
        ))
        .into_response();
    }
    req.extensions_mut().insert(principal);
    next.run(req).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn local(headers: &[(&str, &str)]) -> Result<Principal, ApiError> {
        let mut h = HeaderMap::new();
        for (k, v) in headers {
            h.insert(
                http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        principal_of(&h, &http::Extensions::new(), TenantSource::Header)
    }

    #[test]
    fn local_headers_name_the_principal_and_its_scopes() {
        let all = local(&[("x-tenant-id", "acme")]).unwrap();
        assert_eq!(all.subject, LOCAL_PRINCIPAL);
        assert_eq!(all.scopes, every_scope());
        let p = local(&[
            ("x-tenant-id", "acme"),
            ("x-principal", "svc-payments"),
            ("x-scopes", "events:write:payment, events:read nonsense"),
        ])
        .unwrap();
        assert_eq!(p.subject, "svc-payments");
        assert!(p.may_write("payment") && !p.may_write("loan"));
        assert!(p.may_call(FixedScope::EventsWrite) && p.may_call(FixedScope::EventsRead));
        assert!(!p.may_call(FixedScope::OpsReplay));
        let none = local(&[("x-tenant-id", "acme"), ("x-scopes", "")]).unwrap();
        assert!(none.scopes.is_empty());
        assert_eq!(local(&[]).unwrap_err().status, StatusCode::UNAUTHORIZED);
    }

    /// The router's routes and the scope table are the same list, both ways.
    #[test]
    fn every_routed_path_has_an_entry_in_the_scope_table() {
        use std::collections::BTreeSet;
        let routed = crate::http::openapi::tests::router_routes();
        let table: BTreeSet<(String, String)> = ROUTES
            .iter()
            .map(|r| (r.method.to_string(), normalise(r.path)))
            .collect();
        let unlisted: Vec<_> = routed.difference(&table).collect();
        let unrouted: Vec<_> = table.difference(&routed).collect();
        assert!(
            unlisted.is_empty(),
            "routes without a scope entry: {unlisted:?}"
        );
        assert!(
            unrouted.is_empty(),
            "scope entries without a route: {unrouted:?}"
        );
    }

    /// Through the real router: each route refuses a caller that holds every scope but
    /// its own (403 naming it), before touching any AWS resource.
    #[tokio::test]
    async fn each_route_refuses_a_caller_without_its_scope() {
        use tower::ServiceExt;
        let router = crate::http::openapi::tests::offline_router();
        for r in ROUTES {
            let uri = normalise(r.path).replace("{}", "x1");
            let Some(needed) = r.scope else { continue };
            let others: Vec<String> = Scope::FIXED
                .iter()
                .filter(|s| **s != needed.scope())
                .map(|s| s.to_string())
                .collect();
            let req = http::Request::builder()
                .method(r.method)
                .uri(&uri)
                .header("content-type", "application/json")
                .header("x-tenant-id", "acme")
                .header("x-scopes", others.join(" "))
                .body(axum::body::Body::from("{}"))
                .unwrap();
            let resp = router.clone().oneshot(req).await.unwrap();
            let status = resp.status();
            let body = axum::body::to_bytes(resp.into_body(), 1 << 20)
                .await
                .unwrap();
            let v: Value = serde_json::from_slice(&body).unwrap();
            assert_eq!(status, StatusCode::FORBIDDEN, "{} {uri}: {v}", r.method);
            assert_eq!(v["error"]["code"], "forbidden", "{v}");
            let message = v["error"]["message"].as_str().unwrap();
            assert!(
                message.contains(&needed.scope().to_string()),
                "{} {uri}: {message}",
                r.method
            );
        }
    }

    #[test]
    fn the_authorizers_claims_are_the_identity_on_aws() {
        use lambda_http::request::RequestContext;
        let ctx: lambda_http::aws_lambda_events::apigw::ApiGatewayV2httpRequestContext =
            serde_json::from_value(serde_json::json!({
                "accountId": "1", "apiId": "a", "domainName": "d", "domainPrefix": "d",
                "http": {"method": "POST", "path": "/events", "protocol": "HTTP/1.1",
                    "sourceIp": "1.1.1.1", "userAgent": "t"},
                "requestId": "r", "routeKey": "$default", "stage": "$default",
                "time": "t", "timeEpoch": 0,
                "authorizer": {"jwt": {"claims": {"sub": "user-9", "tenantId": "acme",
                    "scope": "events:read ops:replay"}, "scopes": ["events:write:draw"]}}
            }))
            .unwrap();
        let mut ext = http::Extensions::new();
        ext.insert(RequestContext::ApiGatewayV2(ctx));
        // Local headers are ignored on AWS.
        let mut h = HeaderMap::new();
        h.insert("x-scopes", "events:write".parse().unwrap());
        h.insert("x-principal", "forged".parse().unwrap());
        let p = principal_of(&h, &ext, TenantSource::Authorizer).unwrap();
        assert_eq!((p.tenant.as_str(), p.subject.as_str()), ("acme", "user-9"));
        assert!(p.holds(&Scope::EventsRead) && p.holds(&Scope::OpsReplay));
        assert!(p.may_write("draw") && !p.may_write("loan"));
        assert!(!p.holds(&Scope::EventsWrite));
    }
}
