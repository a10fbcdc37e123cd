//! The API Gateway stage in the address. Behind an HTTP API's named stage, API Gateway puts
//! the stage in the path it hands the function (`rawPath` `/prod/events`), and lambda_http
//! keeps it (its `AWS_LAMBDA_HTTP_IGNORE_STAGE_IN_PATH` only stops it from adding the stage
//! to REST API paths). [`strip`] takes it off before the router sees the path, so the same
//! routes answer on any stage; [`prefix`] gives it back to the console's page, whose
//! addresses (its assets, the API) the browser resolves under the stage.

use lambda_http::request::RequestContext;

/// `/<stage>` when the request came through a named API Gateway stage and its path carries
/// it; empty locally, on the `$default` stage, or when the address does not carry the stage
/// (a custom domain's API mapping).
pub fn prefix(extensions: &http::Extensions) -> String {
    let (stage, full_path) = match extensions.get::<RequestContext>() {
        Some(RequestContext::ApiGatewayV2(c)) => (c.stage.as_deref(), c.http.path.as_deref()),
        Some(RequestContext::ApiGatewayV1(c)) => (c.stage.as_deref(), c.path.as_deref()),
        _ => (None, None),
    };
    let (Some(stage), Some(full_path)) = (stage, full_path) else {
        return String::new();
    };
    // Stage names are letters, digits, `-` and `_`: nothing to escape where the page names it.
    let named = stage != "$default"
        && !stage.is_empty()
        && stage.len() <= 128
        && stage
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    let prefix = format!("/{stage}");
    let carried = full_path == prefix || full_path.starts_with(&format!("{prefix}/"));
    if named && carried {
        prefix
    } else {
        String::new()
    }
}

/// The request with the stage taken off its path (`/prod/events?x=1` -> `/events?x=1`), when
/// [`prefix`] finds one; the stage stays in the request context for [`prefix`].
pub fn strip<B>(mut req: http::Request<B>) -> http::Request<B> {
    let prefix = prefix(req.extensions());
    if prefix.is_empty() {
        return req;
    }
    let uri = req.uri();
    let Some(rest) = uri.path().strip_prefix(&prefix) else {
        return req;
    };
    if !(rest.is_empty() || rest.starts_with('/')) {
        return req;
    }
    let path = if rest.is_empty() { "/" } else { rest };
    let path_and_query = match uri.query() {
        Some(q) => format!("{path}?{q}"),
        None => path.to_string(),
    };
    let mut parts = uri.clone().into_parts();
    match path_and_query.parse() {
        Ok(pq) => parts.path_and_query = Some(pq),
        Err(_) => return req,
    }
    if let Ok(stripped) = http::Uri::from_parts(parts) {
        *req.uri_mut() = stripped;
    }
    req
}

#[cfg(test)]
mod tests {
    use super::*;
    use lambda_http::aws_lambda_events::apigw::ApiGatewayV2httpRequestContext;

    fn through(stage: Option<&str>, uri: &str) -> http::Request<()> {
        let mut req = http::Request::get(uri).body(()).unwrap();
        if let Some(stage) = stage {
            let mut context = ApiGatewayV2httpRequestContext::default();
            context.stage = Some(stage.into());
            context.http.path = Some(req.uri().path().to_string());
            req.extensions_mut()
                .insert(RequestContext::ApiGatewayV2(context));
        }
        req
    }

    #[test]
    fn a_named_stage_is_taken_off_the_path_and_nothing_else() {
        let cases = [
            (
                Some("prod"),
                "https://api.example/prod/events?limit=2",
                "/events?limit=2",
                "/prod",
            ),
            (Some("prod"), "/prod", "/", "/prod"),
            (
                Some("prod"),
                "/prod/console/handlers",
                "/console/handlers",
                "/prod",
            ),
            // Not carried in the path (a custom domain), or another first segment.
            (Some("prod"), "/events", "/events", ""),
            (Some("prod"), "/production/events", "/production/events", ""),
            (Some("$default"), "/events", "/events", ""),
            (Some("a\"b"), "/a%22b/events", "/a%22b/events", ""),
            (None, "/prod/events", "/prod/events", ""),
        ];
        for (stage, uri, want_path, want_prefix) in cases {
            let req = through(stage, uri);
            assert_eq!(prefix(req.extensions()), want_prefix, "{stage:?} {uri}");
            let stripped = strip(req);
            let got = stripped.uri().path_and_query().unwrap().as_str();
            assert_eq!(got, want_path, "{stage:?} {uri}");
        }
    }
}
