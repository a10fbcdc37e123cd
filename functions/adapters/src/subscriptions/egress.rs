//! Which webhook targets may be called (server-side request forgery): on AWS only `https`
//! URLs whose host resolves to public addresses; loopback, private, link-local, metadata
//! (169.254.169.254) and the other special ranges are refused at creation and again when
//! the connection is opened (a DNS answer can change). An explicit allow-list is
//! configuration: `WEBHOOK_ALLOW_CIDRS` (comma-separated `addr/len`) and
//! `WEBHOOK_ALLOW_HTTP=1`; the local runner allows loopback, `http` included, by default.

use std::net::IpAddr;

use lending_events::subscription::{Target, TargetUrl};

use crate::api::ApiError;

/// An allowed address range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    pub addr: IpAddr,
    pub len: u8,
}

impl Cidr {
    pub fn parse(text: &str) -> Option<Cidr> {
        let (a, l) = text.trim().split_once('/').unwrap_or((text.trim(), ""));
        let addr: IpAddr = a.parse().ok()?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let len = if l.is_empty() { max } else { l.parse().ok()? };
        (len <= max).then_some(Cidr { addr, len })
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX.checked_shl(32 - self.len as u32).unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX.checked_shl(128 - self.len as u32).unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

/// Whether an address is on the public internet (not loopback, private, link-local,
/// shared, documentation, multicast, unspecified or reserved).
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            !(v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_multicast()
                || v4.is_documentation()
                || o[0] == 0
                || (o[0] == 100 && (64..128).contains(&o[1]))
                || (o[0] == 192 && o[1] == 0 && o[2] == 0)
                || (o[0] == 198 && (18..20).contains(&o[1]))
                || o[0] >= 240)
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_public(IpAddr::V4(v4));
            }
            let s = v6.segments();
            !(v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (s[0] & 0xfe00) == 0xfc00
                || (s[0] & 0xffc0) == 0xfe80
                || s[0] == 0x2001 && s[1] == 0x0db8
                || s[0] == 0x64 && s[1] == 0xff9b)
        }
    }
}

/// The egress rules of webhook targets.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EgressPolicy {
    /// Plain `http://` allowed (local runs only).
    pub allow_http: bool,
    /// Non-public ranges allowed anyway.
    pub allowed: Vec<Cidr>,
}

impl EgressPolicy {
    /// From `WEBHOOK_ALLOW_HTTP` and `WEBHOOK_ALLOW_CIDRS`; unset: public https only.
    pub fn from_env() -> EgressPolicy {
        EgressPolicy {
            allow_http: std::env::var("WEBHOOK_ALLOW_HTTP").is_ok_and(|v| v == "1"),
            allowed: std::env::var("WEBHOOK_ALLOW_CIDRS")
                .unwrap_or_default()
                .split(',')
                .filter(|c| !c.trim().is_empty())
                .filter_map(Cidr::parse)
                .collect(),
        }
    }

    /// The local runner's policy: [`EgressPolicy::from_env`] when either variable is set,
    /// else [`EgressPolicy::local`].
    pub fn local_default() -> EgressPolicy {
        let set = |k: &str| std::env::var(k).is_ok_and(|v| !v.is_empty());
        if set("WEBHOOK_ALLOW_HTTP") || set("WEBHOOK_ALLOW_CIDRS") {
            EgressPolicy::from_env()
        } else {
            EgressPolicy::local()
        }
    }

    /// The local runner's default: loopback, `http` included.
    pub fn local() -> EgressPolicy {
        EgressPolicy {
            allow_http: true,
            allowed: vec![
                Cidr::parse("127.0.0.0/8").expect("valid"),
                Cidr::parse("::1/128").expect("valid"),
            ],
        }
    }

    pub fn allows_ip(&self, ip: IpAddr) -> bool {
        is_public(ip) || self.allowed.iter().any(|c| c.contains(ip))
    }

    /// Check a URL and every address its host resolves to now.
    pub async fn check_url(&self, url: &str) -> Result<(), String> {
        let parsed = TargetUrl::parse(url)?;
        if !parsed.https && !self.allow_http {
            return Err("only https targets are allowed".into());
        }
        let addrs: Vec<IpAddr> = match parsed.ip() {
            Some(ip) => vec![ip],
            None => tokio::net::lookup_host((parsed.host.as_str(), parsed.port))
                .await
                .map_err(|e| format!("the host does not resolve: {e}"))?
                .map(|a| a.ip())
                .collect(),
        };
        if addrs.is_empty() {
            return Err("the host does not resolve".into());
        }
        match addrs.iter().find(|ip| !self.allows_ip(**ip)) {
            Some(ip) => Err(format!(
                "the target resolves to {ip}, a loopback, private, link-local or otherwise non-public address"
            )),
            None => Ok(()),
        }
    }

    /// 400 on `target.url` for a webhook this policy refuses.
    pub async fn check_at_creation(&self, target: &Target) -> Result<(), ApiError> {
        match target {
            Target::Webhook { url } => self
                .check_url(url)
                .await
                .map_err(|m| ApiError::bad("target.url", m)),
            Target::Sqs { .. } => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn special_ranges_are_not_public() {
        for a in ["127.0.0.1", "10.1.2.3", "172.16.0.1", "192.168.1.1", "169.254.169.254",
            "100.64.0.1", "0.0.0.0", "::1", "fe80::1", "fd00::1", "::ffff:10.0.0.1"] {
            assert!(!is_public(a.parse().unwrap()), "{a}");
        }
        for a in ["8.8.8.8", "2606:4700::1111"] {
            assert!(is_public(a.parse().unwrap()), "{a}");
        }
        let local = EgressPolicy::local();
        assert!(local.allows_ip("127.0.0.1".parse().unwrap()));
        assert!(!local.allows_ip("169.254.169.254".parse().unwrap()));
        assert!(!EgressPolicy::default().allows_ip("127.0.0.1".parse().unwrap()));
    }

    #[tokio::test]
    async fn metadata_and_private_targets_are_refused() {
        let p = EgressPolicy::default();
        assert!(p.check_url("https://169.254.169.254/latest").await.is_err());
        assert!(p.check_url("https://10.0.0.5/hook").await.is_err());
        assert!(p.check_url("http://8.8.8.8/hook").await.is_err());
        assert!(p.check_url("https://8.8.8.8/hook").await.is_ok());
        assert!(EgressPolicy::local().check_url("http://127.0.0.1:9/h").await.is_ok());
    }
}
