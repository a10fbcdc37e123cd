//! Who may call what: the OAuth scopes of the HTTP API and the one table of routes to the
//! scope each needs.
//!
//! The router enforces [`ROUTES`]; the SAM template declares the same scopes per route
//! (`AuthorizationScopes`) and `tests/tests/infra_template.rs` holds the two to this table.
//! Paths are written as in the OpenAPI document and API Gateway (`{aggregateType}`).

use std::fmt;

/// An OAuth scope of this API.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Scope {
    /// Publish events of any client-produced type.
    EventsWrite,
    /// Publish events of one domain's client-produced types (`events:write:<domain>`).
    EventsWriteDomain(String),
    /// Read histories, state, single events, type windows and correlations.
    EventsRead,
    /// Replay stored events to handlers; rebuild read models from them.
    OpsReplay,
    /// List, redrive and purge dead letters.
    OpsDeadLetters,
    /// List handlers, switch them on and off, read their statistics.
    OpsHandlers,
    /// Create, change, delete subscriptions of other systems and read their deliveries.
    SubscriptionsAdmin,
}

impl Scope {
    /// Every scope that is not per domain, as written in a token.
    pub const FIXED: [Scope; 6] = [
        Scope::EventsWrite,
        Scope::EventsRead,
        Scope::OpsReplay,
        Scope::OpsDeadLetters,
        Scope::OpsHandlers,
        Scope::SubscriptionsAdmin,
    ];

    /// Parse one scope as written in a token (`events:write:payment`); `None` for a scope
    /// this API does not define (tokens may carry other APIs' scopes: they are ignored).
    pub fn parse(s: &str) -> Option<Scope> {
        Some(match s {
            "events:write" => Scope::EventsWrite,
            "events:read" => Scope::EventsRead,
            "ops:replay" => Scope::OpsReplay,
            "ops:dead-letters" => Scope::OpsDeadLetters,
            "ops:handlers" => Scope::OpsHandlers,
            "subscriptions:admin" => Scope::SubscriptionsAdmin,
            other => {
                let domain = other.strip_prefix("events:write:")?;
                if domain.is_empty() || !domain.bytes().all(|b| b.is_ascii_lowercase()) {
                    return None;
                }
                Scope::EventsWriteDomain(domain.to_string())
            }
        })
    }

    /// A space-separated scope claim (the OAuth `scope` form) as a set; unknown entries are
    /// dropped.
    pub fn parse_claim(claim: &str) -> Vec<Scope> {
        claim.split_whitespace().filter_map(Scope::parse).collect()
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Scope::EventsWrite => f.write_str("events:write"),
            Scope::EventsWriteDomain(d) => write!(f, "events:write:{d}"),
            Scope::EventsRead => f.write_str("events:read"),
            Scope::OpsReplay => f.write_str("ops:replay"),
            Scope::OpsDeadLetters => f.write_str("ops:dead-letters"),
            Scope::OpsHandlers => f.write_str("ops:handlers"),
            Scope::SubscriptionsAdmin => f.write_str("subscriptions:admin"),
        }
    }
}

/// One route of the HTTP API and the scope it needs (`None`: public, no token needed).
#[derive(Debug, Clone, Copy)]
pub struct RouteScope {
    pub method: &'static str,
    /// OpenAPI / API Gateway form: `/events/{eventId}`.
    pub path: &'static str,
    /// `POST /events` also accepts `events:write:<domain>` for the domains of the posted
    /// types (checked per event, after parsing).
    pub scope: Option<FixedScope>,
}

/// The scopes a route can name in the table (per-domain write scopes are per event, not
/// per route).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FixedScope {
    EventsWrite,
    EventsRead,
    OpsReplay,
    OpsDeadLetters,
    OpsHandlers,
    SubscriptionsAdmin,
}

impl FixedScope {
    pub fn scope(self) -> Scope {
        match self {
            FixedScope::EventsWrite => Scope::EventsWrite,
            FixedScope::EventsRead => Scope::EventsRead,
            FixedScope::OpsReplay => Scope::OpsReplay,
            FixedScope::OpsDeadLetters => Scope::OpsDeadLetters,
            FixedScope::OpsHandlers => Scope::OpsHandlers,
            FixedScope::SubscriptionsAdmin => Scope::SubscriptionsAdmin,
        }
    }
}

const fn route(method: &'static str, path: &'static str, scope: FixedScope) -> RouteScope {
    RouteScope {
        method,
        path,
        scope: Some(scope),
    }
}

/// Every route of the deployed HTTP API and the scope it needs.
pub const ROUTES: &[RouteScope] = &[
    route("POST", "/events", FixedScope::EventsWrite),
    route("GET", "/events", FixedScope::EventsRead),
    route("GET", "/events/{eventId}", FixedScope::EventsRead),
    route("GET", "/events/stream", FixedScope::EventsRead),
    route(
        "GET",
        "/aggregates/{aggregateType}/{aggregateId}/events",
        FixedScope::EventsRead,
    ),
    route(
        "GET",
        "/aggregates/{aggregateType}/{aggregateId}/state",
        FixedScope::EventsRead,
    ),
    route("GET", "/loans/{loanId}/payoff", FixedScope::EventsRead),
    route(
        "GET",
        "/correlations/{correlationId}",
        FixedScope::EventsRead,
    ),
    route("POST", "/replay", FixedScope::OpsReplay),
    route("GET", "/dead-letters", FixedScope::OpsDeadLetters),
    route(
        "POST",
        "/dead-letters/{domain}/redrive",
        FixedScope::OpsDeadLetters,
    ),
    route(
        "POST",
        "/dead-letters/{domain}/purge",
        FixedScope::OpsDeadLetters,
    ),
    route("GET", "/handlers", FixedScope::OpsHandlers),
    route("PUT", "/handlers/{handler}", FixedScope::OpsHandlers),
    route("GET", "/handlers/{handler}/stats", FixedScope::OpsHandlers),
    route("POST", "/subscriptions", FixedScope::SubscriptionsAdmin),
    route("GET", "/subscriptions", FixedScope::SubscriptionsAdmin),
    route(
        "GET",
        "/subscriptions/{subscriptionId}",
        FixedScope::SubscriptionsAdmin,
    ),
    route(
        "PATCH",
        "/subscriptions/{subscriptionId}",
        FixedScope::SubscriptionsAdmin,
    ),
    route(
        "DELETE",
        "/subscriptions/{subscriptionId}",
        FixedScope::SubscriptionsAdmin,
    ),
    route(
        "POST",
        "/subscriptions/{subscriptionId}/rotate-secret",
        FixedScope::SubscriptionsAdmin,
    ),
    route(
        "GET",
        "/subscriptions/{subscriptionId}/deliveries",
        FixedScope::SubscriptionsAdmin,
    ),
    route("GET", "/loans", FixedScope::EventsRead),
    route("GET", "/funds/{fundId}/portfolio", FixedScope::EventsRead),
    // A rebuild re-derives from stored events, like a replay re-sends them.
    route("POST", "/projections/{name}/rebuild", FixedScope::OpsReplay),
    route(
        "GET",
        "/projections/{name}/rebuilds/{jobId}",
        FixedScope::OpsReplay,
    ),
    RouteScope {
        method: "GET",
        path: "/openapi.json",
        scope: None,
    },
];

/// The scope a route needs, looked up by method and OpenAPI path.
pub fn scope_of(method: &str, path: &str) -> Option<&'static RouteScope> {
    ROUTES
        .iter()
        .find(|r| r.method.eq_ignore_ascii_case(method) && r.path == path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_round_trip_through_their_written_form() {
        for s in Scope::FIXED {
            assert_eq!(Scope::parse(&s.to_string()), Some(s));
        }
        let d = Scope::parse("events:write:payment").unwrap();
        assert_eq!(d, Scope::EventsWriteDomain("payment".into()));
        assert_eq!(d.to_string(), "events:write:payment");
        for bad in ["", "events", "events:write:", "events:write:Pay", "admin"] {
            assert_eq!(Scope::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn every_route_is_listed_once() {
        let mut seen = std::collections::HashSet::new();
        for r in ROUTES {
            assert!(seen.insert((r.method, r.path)), "{} {}", r.method, r.path);
        }
        assert!(scope_of("post", "/replay").is_some());
    }
}
