//! The routing table: which domain queue receives which event types.
//!
//! It is derived from the handlers themselves ([`crate::handlers::all`]): a domain's queue
//! receives an event type when any handler of that domain subscribes to it. Adding a
//! subscription is one line in the handler; dispatch, provisioning and the SAM template
//! follow from it.

use crate::domain::Domain;
use crate::handlers::DomainHandler;

/// Per-domain subscriptions, in a stable order.
#[derive(Debug, Clone)]
pub struct RoutingTable {
    routes: Vec<Route>,
}

#[derive(Debug, Clone)]
pub struct Route {
    pub domain: Domain,
    pub event_types: Vec<&'static str>,
}

impl RoutingTable {
    pub fn from_handlers<H: AsRef<dyn DomainHandler>>(handlers: &[H]) -> RoutingTable {
        let mut routes: Vec<Route> = Vec::new();
        for h in handlers.iter().map(AsRef::as_ref) {
            let route = match routes.iter_mut().find(|r| r.domain == h.domain()) {
                Some(r) => r,
                None => {
                    routes.push(Route {
                        domain: h.domain(),
                        event_types: Vec::new(),
                    });
                    routes.last_mut().expect("just pushed")
                }
            };
            for t in h.subscriptions() {
                if !route.event_types.contains(t) {
                    route.event_types.push(t);
                }
            }
        }
        RoutingTable { routes }
    }

    /// The standard table of all built-in handlers.
    pub fn standard() -> RoutingTable {
        RoutingTable::from_handlers(&crate::handlers::all())
    }

    /// Domains (queues) that receive `event_type`.
    pub fn domains_for<'a>(&'a self, event_type: &'a str) -> impl Iterator<Item = Domain> + 'a {
        self.routes
            .iter()
            .filter(move |r| r.event_types.contains(&event_type))
            .map(|r| r.domain)
    }

    /// Every domain that has a queue.
    pub fn domains(&self) -> impl Iterator<Item = Domain> + '_ {
        self.routes.iter().map(|r| r.domain)
    }

    pub fn routes(&self) -> &[Route] {
        &self.routes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loan_funded_goes_to_payment() {
        let t = RoutingTable::standard();
        assert!(t.domains_for("Loan.Funded").any(|d| d == Domain::Payment));
        assert_eq!(t.domains_for("Loan.Exploded").count(), 0);
    }

    #[test]
    fn each_domain_has_its_queue_and_the_chain_reaction_fans_out() {
        let t = RoutingTable::standard();
        let domains: Vec<_> = t.domains().map(Domain::as_str).collect();
        assert_eq!(
            domains,
            [
                "payment",
                "draw",
                "compliance",
                "fund",
                "notification",
                "projection"
            ]
        );
        let to = |ty: &str| t.domains_for(ty).map(Domain::as_str).collect::<Vec<_>>();
        assert_eq!(
            to("Loan.Funded"),
            [
                "payment",
                "compliance",
                "fund",
                "notification",
                "projection"
            ]
        );
        assert_eq!(to("Borrower.KYCFailed"), ["compliance", "notification"]);
        assert_eq!(to("Borrower.Flagged"), ["compliance", "notification"]);
        assert_eq!(to("Loan.DrawSubmitted"), ["draw", "projection"]);
        assert_eq!(to("Payment.Received"), ["payment", "projection"]);
        // Records no handler reacts to are queued only for the read models.
        assert_eq!(to("Payment.Applied"), ["projection"]);
        assert!(to("Borrower.Created").is_empty());
    }

    #[test]
    fn every_subscribed_type_is_in_the_catalog() {
        for r in RoutingTable::standard().routes() {
            for t in &r.event_types {
                assert!(
                    crate::catalog::lookup(t).is_some(),
                    "{t} routed to {} but not cataloged",
                    r.domain
                );
            }
        }
    }
}
