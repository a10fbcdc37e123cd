//! Which webhook targets may be called (server-side request forgery), applied: the rules
//! are core's [`EgressPolicy`] (public https only, unless an allow-list says more); this
//! module reads the allow-list from configuration and checks a target when a subscription
//! is created or its target changed: the URL, and every address its host resolves to now.
//! The sender checks again on every connection (a DNS answer can change).
//!
//! `WEBHOOK_EGRESS_ALLOW`: a comma-separated allow-list of address classes and `http`
//! (e.g. `loopback,http`); unset or empty on AWS (the template sets nothing). The local
//! runner allows `loopback,http` unless the variable is set.

use std::net::IpAddr;

pub use lending_events::subscription::EgressPolicy;
use lending_events::subscription::{Target, TargetUrl};

use crate::error::AdapterError;
use crate::http::error::ApiError;

/// The variable holding the allow-list.
pub const EGRESS_ALLOW_VAR: &str = "WEBHOOK_EGRESS_ALLOW";

/// The policy of `WEBHOOK_EGRESS_ALLOW` (strict when unset); an unknown entry is an error.
pub fn policy_from_env() -> Result<EgressPolicy, AdapterError> {
    EgressPolicy::from_allow_list(&std::env::var(EGRESS_ALLOW_VAR).unwrap_or_default())
        .map_err(|e| AdapterError::Config(format!("{EGRESS_ALLOW_VAR}: {e}")))
}

/// The local runner's policy: `WEBHOOK_EGRESS_ALLOW` when set, else loopback over http too.
pub fn local_policy() -> Result<EgressPolicy, AdapterError> {
    match std::env::var(EGRESS_ALLOW_VAR) {
        Ok(v) if !v.trim().is_empty() => policy_from_env(),
        _ => Ok(EgressPolicy::local_runner()),
    }
}

/// 400 on `target.url` for a webhook target the policy refuses: its URL, and each address
/// the host resolves to now (a name that does not resolve is refused too).
pub async fn check_at_creation(policy: &EgressPolicy, target: &Target) -> Result<(), ApiError> {
    let Target::Webhook { url } = target else {
        return Ok(());
    };
    const FIELD: &str = "target.url";
    let parsed = TargetUrl::parse(url).map_err(|m| ApiError::bad(FIELD, m))?;
    policy.check_target(&parsed, FIELD)?;
    if parsed.ip().is_some() {
        return Ok(());
    }
    let addrs: Vec<IpAddr> = tokio::net::lookup_host((parsed.host.as_str(), parsed.port))
        .await
        .map_err(|e| ApiError::bad(FIELD, format!("{} does not resolve: {e}", parsed.host)))?
        .map(|a| a.ip())
        .collect();
    if addrs.is_empty() {
        return Err(ApiError::bad(
            FIELD,
            format!("{} does not resolve", parsed.host),
        ));
    }
    for ip in addrs {
        policy
            .check_address(&parsed, ip)
            .map_err(|m| ApiError::bad(FIELD, m))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn target(url: &str) -> Target {
        Target::parse(&json!({"type": "webhook", "url": url})).unwrap()
    }

    #[tokio::test]
    async fn private_and_metadata_targets_are_refused_at_creation() {
        let strict = EgressPolicy::strict();
        for url in [
            "https://169.254.169.254/latest/meta-data",
            "https://10.0.0.5/hook",
            "https://127.0.0.1/hook",
            "https://localhost/hook",
            "http://8.8.8.8/hook",
        ] {
            let e = check_at_creation(&strict, &target(url)).await.unwrap_err();
            assert_eq!(e.field.as_deref(), Some("target.url"), "{url}");
        }
        assert!(check_at_creation(&strict, &target("https://8.8.8.8/hook"))
            .await
            .is_ok());
        let local = EgressPolicy::local_runner();
        assert!(check_at_creation(&local, &target("http://127.0.0.1:9/h"))
            .await
            .is_ok());
        assert!(check_at_creation(&local, &target("http://10.0.0.1/h"))
            .await
            .is_err());
    }
}
