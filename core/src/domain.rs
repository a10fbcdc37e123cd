//! The domains the handlers serve: one queue pair (and one function) per domain.
//!
//! A closed set, so a domain is written as [`Domain::Payment`] and a misspelt one does not
//! compile. Text (an environment variable, a route, a CLI flag) becomes a [`Domain`] through
//! [`str::parse`], which names the known domains when it refuses. The text form
//! ([`Domain::as_str`], also the JSON form) is what queue names, variables and routes carry,
//! e.g. `lendingos-payment.fifo`, `QUEUE_URL_PAYMENT`, `/dead-letters/payment/redrive`.
//!
//! These are the handlers' domains, not the catalog's: an event's `domain` (e.g. `loan`,
//! `borrower`, or a custom type's) says where the type belongs, and stays text.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::CoreError;

/// A handler domain. Declared in alphabetical order, so sorting by domain sorts by name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Domain {
    Compliance,
    Draw,
    Fund,
    Notification,
    Payment,
    /// The read models' queue (no business handler; see [`crate::projections`]).
    Projection,
}

impl Domain {
    /// Every domain, in alphabetical order.
    pub const ALL: [Domain; 6] = [
        Domain::Compliance,
        Domain::Draw,
        Domain::Fund,
        Domain::Notification,
        Domain::Payment,
        Domain::Projection,
    ];

    /// The text form: lower case, as in queue names and routes.
    pub const fn as_str(self) -> &'static str {
        match self {
            Domain::Compliance => "compliance",
            Domain::Draw => "draw",
            Domain::Fund => "fund",
            Domain::Notification => "notification",
            Domain::Payment => "payment",
            Domain::Projection => "projection",
        }
    }

    /// The known domains as `a, b, c`, for messages that refuse an unknown one.
    pub fn names() -> String {
        Domain::ALL.map(Domain::as_str).join(", ")
    }
}

impl fmt::Display for Domain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Domain {
    type Err = CoreError;

    /// The domain named `s` exactly (lower case). The error's field is `domain`; callers
    /// that read it from elsewhere re-field it (a variable, a path segment).
    fn from_str(s: &str) -> Result<Domain, CoreError> {
        Domain::ALL
            .into_iter()
            .find(|d| d.as_str() == s)
            .ok_or_else(|| {
                CoreError::invalid(
                    "domain",
                    format!("unknown domain {s:?}; domains: {}", Domain::names()),
                )
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorCode;

    #[test]
    fn text_form_round_trips_and_sorts_like_the_names() {
        for d in Domain::ALL {
            assert_eq!(d.as_str().parse::<Domain>(), Ok(d));
            assert_eq!(d.to_string(), d.as_str());
            assert_eq!(serde_json::to_value(d).unwrap(), d.as_str());
            assert_eq!(
                serde_json::from_value::<Domain>(d.as_str().into()).unwrap(),
                d
            );
        }
        let mut by_name = Domain::ALL;
        by_name.sort_by_key(|d| d.as_str());
        assert_eq!(by_name, Domain::ALL);
        let mut sorted = Domain::ALL;
        sorted.sort();
        assert_eq!(sorted, Domain::ALL);
    }

    #[test]
    fn unknown_domains_are_refused_with_the_known_ones() {
        for bad in ["paymnt", "Payment", "", " payment", "loan"] {
            let Err(CoreError::Invalid {
                code,
                message,
                field,
            }) = bad.parse::<Domain>()
            else {
                panic!("{bad:?} parsed");
            };
            assert_eq!(code, ErrorCode::ValidationFailed);
            assert_eq!(field.as_deref(), Some("domain"));
            assert_eq!(
                message,
                format!(
                    "unknown domain {bad:?}; domains: compliance, draw, fund, notification, payment, projection"
                )
            );
        }
    }
}
