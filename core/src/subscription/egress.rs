//! Which webhook targets may be called: the guard against server-side request forgery.
//!
//! Every address is classified ([`classify`]); only public addresses are called unless the
//! [`EgressPolicy`] allows more. The check runs when a subscription is created (the URL,
//! and an address written in it) and again on every connection (each address DNS answers:
//! an answer can change between the two). Plain `http` goes only to an allowed non-public
//! address (the local runner's loopback receiver), never across a network.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::error::CoreError;

use super::target::TargetUrl;

/// What kind of address this is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AddressClass {
    /// Routable on the internet.
    Public,
    /// 127.0.0.0/8, ::1.
    Loopback,
    /// RFC 1918 (10/8, 172.16/12, 192.168/16), unique-local fc00::/7, site-local fec0::/10,
    /// local-use NAT64 64:ff9b:1::/48.
    Private,
    /// Carrier-grade NAT, 100.64.0.0/10.
    SharedAddressSpace,
    /// 169.254.0.0/16 (the cloud metadata service 169.254.169.254 among them), fe80::/10.
    LinkLocal,
    /// 224.0.0.0/4, ff00::/8.
    Multicast,
    /// 0.0.0.0/8, ::.
    Unspecified,
    /// 192.0.2/24, 198.51.100/24, 203.0.113/24, 2001:db8::/32, 3fff::/20.
    Documentation,
    /// Everything else that is not routable: 240/4, broadcast, 192.0.0/24, benchmarking
    /// 198.18/15, 192.88.99/24, IETF 2001::/23 (Teredo too), discard 100::/64, unallocated
    /// IPv6 outside 2000::/3.
    Reserved,
}

impl AddressClass {
    pub const ALL: [AddressClass; 9] = [
        AddressClass::Public,
        AddressClass::Loopback,
        AddressClass::Private,
        AddressClass::SharedAddressSpace,
        AddressClass::LinkLocal,
        AddressClass::Multicast,
        AddressClass::Unspecified,
        AddressClass::Documentation,
        AddressClass::Reserved,
    ];

    /// The name used in the allow-list configuration.
    pub fn name(self) -> &'static str {
        match self {
            AddressClass::Public => "public",
            AddressClass::Loopback => "loopback",
            AddressClass::Private => "private",
            AddressClass::SharedAddressSpace => "shared",
            AddressClass::LinkLocal => "link-local",
            AddressClass::Multicast => "multicast",
            AddressClass::Unspecified => "unspecified",
            AddressClass::Documentation => "documentation",
            AddressClass::Reserved => "reserved",
        }
    }

    fn describe(self) -> &'static str {
        match self {
            AddressClass::Public => "a public address",
            AddressClass::Loopback => "a loopback address",
            AddressClass::Private => "a private network address",
            AddressClass::SharedAddressSpace => "a carrier-grade NAT address",
            AddressClass::LinkLocal => {
                "a link-local address (the range of the cloud metadata service)"
            }
            AddressClass::Multicast => "a multicast address",
            AddressClass::Unspecified => "an unspecified address",
            AddressClass::Documentation => "a documentation address",
            AddressClass::Reserved => "a reserved address",
        }
    }
}

/// Classify an address. IPv6 forms that carry an IPv4 address (IPv4-mapped, IPv4-compatible,
/// NAT64 64:ff9b::/96, 6to4 2002::/16) are classified by the IPv4 address they reach.
pub fn classify(ip: IpAddr) -> AddressClass {
    match ip {
        IpAddr::V4(v4) => classify_v4(v4),
        IpAddr::V6(v6) => classify_v6(v6),
    }
}

fn classify_v4(ip: Ipv4Addr) -> AddressClass {
    let [a, b, c, _] = ip.octets();
    match (a, b, c) {
        (0, _, _) => AddressClass::Unspecified,
        (127, _, _) => AddressClass::Loopback,
        (10, _, _) | (172, 16..=31, _) | (192, 168, _) => AddressClass::Private,
        (100, 64..=127, _) => AddressClass::SharedAddressSpace,
        (169, 254, _) => AddressClass::LinkLocal,
        (192, 0, 2) | (198, 51, 100) | (203, 0, 113) => AddressClass::Documentation,
        (192, 0, 0) | (192, 88, 99) | (198, 18..=19, _) => AddressClass::Reserved,
        (224..=239, _, _) => AddressClass::Multicast,
        (240..=255, _, _) => AddressClass::Reserved,
        _ => AddressClass::Public,
    }
}

fn classify_v6(ip: Ipv6Addr) -> AddressClass {
    let s = ip.segments();
    if ip.is_unspecified() {
        return AddressClass::Unspecified;
    }
    if ip.is_loopback() {
        return AddressClass::Loopback;
    }
    if let Some(v4) = ip.to_ipv4_mapped() {
        return classify_v4(v4);
    }
    let embedded_low =
        || Ipv4Addr::new((s[6] >> 8) as u8, s[6] as u8, (s[7] >> 8) as u8, s[7] as u8);
    match s {
        // IPv4-compatible (deprecated) ::a.b.c.d.
        [0, 0, 0, 0, 0, 0, _, _] => classify_v4(embedded_low()),
        // NAT64 well-known prefix: reaches the embedded IPv4 address.
        [0x64, 0xff9b, 0, 0, 0, 0, _, _] => classify_v4(embedded_low()),
        [0x64, 0xff9b, 1, ..] => AddressClass::Private,
        // 6to4: the IPv4 address is in bits 16..48.
        [0x2002, hi, lo, ..] => classify_v4(Ipv4Addr::new(
            (hi >> 8) as u8,
            hi as u8,
            (lo >> 8) as u8,
            lo as u8,
        )),
        [0x100, 0, 0, 0, ..] => AddressClass::Reserved,
        [0x2001, 0xdb8, ..] => AddressClass::Documentation,
        [0x2001, 0..=0x1ff, ..] => AddressClass::Reserved,
        [0x3fff, 0..=0x0fff, ..] => AddressClass::Documentation,
        [first, ..] if first & 0xfe00 == 0xfc00 => AddressClass::Private,
        [first, ..] if first & 0xffc0 == 0xfe80 => AddressClass::LinkLocal,
        [first, ..] if first & 0xffc0 == 0xfec0 => AddressClass::Private,
        [first, ..] if first & 0xff00 == 0xff00 => AddressClass::Multicast,
        [first, ..] if first & 0xe000 == 0x2000 => AddressClass::Public,
        _ => AddressClass::Reserved,
    }
}

/// Which targets may be called.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct EgressPolicy {
    /// Non-public address classes that may be called anyway.
    pub allowed: Vec<AddressClass>,
    /// Plain `http` to an allowed non-public address (never to a public one).
    pub allow_http: bool,
}

impl EgressPolicy {
    /// The policy on AWS: https to public addresses only.
    pub fn strict() -> EgressPolicy {
        EgressPolicy::default()
    }

    /// The local runner's default: loopback receivers, over http too.
    pub fn local_runner() -> EgressPolicy {
        EgressPolicy {
            allowed: vec![AddressClass::Loopback],
            allow_http: true,
        }
    }

    /// Parse an allow-list such as `loopback,http` (class names of [`AddressClass::name`]
    /// and `http`; empty: [`EgressPolicy::strict`]). The error names the unknown entry.
    pub fn from_allow_list(list: &str) -> Result<EgressPolicy, String> {
        let mut policy = EgressPolicy::strict();
        for entry in list.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            if entry == "http" {
                policy.allow_http = true;
            } else if let Some(class) = AddressClass::ALL
                .into_iter()
                .find(|c| c.name() == entry && *c != AddressClass::Public)
            {
                if !policy.allowed.contains(&class) {
                    policy.allowed.push(class);
                }
            } else {
                let names: Vec<&str> = AddressClass::ALL[1..].iter().map(|c| c.name()).collect();
                return Err(format!(
                    "unknown egress allow-list entry {entry:?}; known: http, {}",
                    names.join(", ")
                ));
            }
        }
        Ok(policy)
    }

    /// May a connection to `ip` for this URL be opened? Checked on every connection, for
    /// each address the name resolved to. The error says why not.
    pub fn check_address(&self, url: &TargetUrl, ip: IpAddr) -> Result<(), String> {
        let class = classify(ip);
        let allowed = class == AddressClass::Public || self.allowed.contains(&class);
        if !allowed {
            return Err(format!(
                "{} resolves to {ip}, {}; webhooks go to public addresses only",
                url.host,
                class.describe()
            ));
        }
        let http_allowed = self.allow_http && class != AddressClass::Public;
        if !(url.https || http_allowed) {
            return Err(format!("plain http to {ip} is not allowed; use https"));
        }
        Ok(())
    }

    /// The check when a subscription is created or its target changed: the scheme, and the
    /// address when the URL names one (`localhost` counts as loopback). A host name is
    /// checked again at connect time, on what it resolves to. Errors carry `field` (e.g.
    /// `target.url`).
    pub fn check_target(&self, url: &TargetUrl, field: &str) -> Result<(), CoreError> {
        let ip = url.ip().or_else(|| {
            let localhost = url.host == "localhost" || url.host.ends_with(".localhost");
            localhost.then_some(IpAddr::V4(Ipv4Addr::LOCALHOST))
        });
        match ip {
            Some(ip) => self.check_address(url, ip),
            // A name: plain http could reach anything the name resolves to later.
            None if !url.https => Err(format!(
                "plain http is allowed only to an allowed local address such as 127.0.0.1; use https for {}",
                url.host
            )),
            None => Ok(()),
        }
        .map_err(|message| CoreError::invalid(field, message))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn class(s: &str) -> AddressClass {
        classify(s.parse().unwrap())
    }

    #[test]
    fn classifies_ipv4() {
        for (ip, expected) in [
            ("8.8.8.8", AddressClass::Public),
            ("52.94.236.248", AddressClass::Public),
            ("127.0.0.1", AddressClass::Loopback),
            ("127.255.0.9", AddressClass::Loopback),
            ("10.0.0.1", AddressClass::Private),
            ("172.16.0.1", AddressClass::Private),
            ("172.31.255.255", AddressClass::Private),
            ("172.32.0.1", AddressClass::Public),
            ("192.168.1.1", AddressClass::Private),
            ("100.64.0.1", AddressClass::SharedAddressSpace),
            ("100.127.255.255", AddressClass::SharedAddressSpace),
            ("100.128.0.1", AddressClass::Public),
            ("169.254.169.254", AddressClass::LinkLocal),
            ("169.254.170.2", AddressClass::LinkLocal),
            ("0.0.0.0", AddressClass::Unspecified),
            ("0.1.2.3", AddressClass::Unspecified),
            ("224.0.0.1", AddressClass::Multicast),
            ("239.255.255.250", AddressClass::Multicast),
            ("255.255.255.255", AddressClass::Reserved),
            ("240.0.0.1", AddressClass::Reserved),
            ("192.0.0.171", AddressClass::Reserved),
            ("198.18.0.1", AddressClass::Reserved),
            ("192.0.2.10", AddressClass::Documentation),
            ("198.51.100.7", AddressClass::Documentation),
            ("203.0.113.1", AddressClass::Documentation),
        ] {
            assert_eq!(class(ip), expected, "{ip}");
        }
    }

    #[test]
    fn classifies_ipv6_including_embedded_ipv4() {
        for (ip, expected) in [
            ("2606:4700:4700::1111", AddressClass::Public),
            ("::1", AddressClass::Loopback),
            ("::", AddressClass::Unspecified),
            ("fd00:ec2::254", AddressClass::Private),
            ("fc00::1", AddressClass::Private),
            ("fec0::1", AddressClass::Private),
            ("fe80::1", AddressClass::LinkLocal),
            ("ff02::1", AddressClass::Multicast),
            ("2001:db8::1", AddressClass::Documentation),
            ("3fff::1", AddressClass::Documentation),
            ("2001:0:4136:e378::1", AddressClass::Reserved),
            ("100::1", AddressClass::Reserved),
            ("4000::1", AddressClass::Reserved),
            // IPv4-mapped and friends reach the IPv4 address inside.
            ("::ffff:127.0.0.1", AddressClass::Loopback),
            ("::ffff:169.254.169.254", AddressClass::LinkLocal),
            ("::ffff:8.8.8.8", AddressClass::Public),
            ("::10.0.0.1", AddressClass::Private),
            ("64:ff9b::a9fe:a9fe", AddressClass::LinkLocal),
            ("64:ff9b::808:808", AddressClass::Public),
            ("64:ff9b:1::1", AddressClass::Private),
            ("2002:7f00:1::1", AddressClass::Loopback),
            ("2002:0808:0808::1", AddressClass::Public),
        ] {
            assert_eq!(class(ip), expected, "{ip}");
        }
    }

    fn url(s: &str) -> TargetUrl {
        TargetUrl::parse(s).unwrap()
    }

    #[test]
    fn strict_policy_allows_https_to_public_only() {
        let p = EgressPolicy::strict();
        let u = url("https://hooks.example.com/x");
        assert!(p.check_target(&u, "target.url").is_ok());
        assert!(p
            .check_address(&u, "93.184.216.34".parse().unwrap())
            .is_ok());
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "169.254.169.254",
            "::ffff:10.0.0.1",
            "fd00::1",
            "0.0.0.0",
        ] {
            assert!(p.check_address(&u, ip.parse().unwrap()).is_err(), "{ip}");
        }
        for refused in [
            "http://hooks.example.com/x",
            "https://127.0.0.1/x",
            "https://localhost:8443/x",
            "https://169.254.169.254/latest/meta-data",
            "https://[::1]/x",
            "https://[::ffff:192.168.0.1]/x",
            "http://8.8.8.8/x",
        ] {
            let err = p.check_target(&url(refused), "target.url").unwrap_err();
            assert!(
                matches!(&err, CoreError::Invalid { field: Some(f), .. } if f == "target.url"),
                "{refused}: {err:?}"
            );
        }
    }

    #[test]
    fn local_runner_allows_loopback_over_http_only_there() {
        let p = EgressPolicy::local_runner();
        assert!(p
            .check_target(&url("http://127.0.0.1:9000/hook"), "target.url")
            .is_ok());
        assert!(p
            .check_target(&url("http://localhost:9000/hook"), "target.url")
            .is_ok());
        assert!(p
            .check_target(&url("https://[::1]:9000/hook"), "target.url")
            .is_ok());
        // Still no private or metadata addresses, and no plain http across a network.
        assert!(p
            .check_target(&url("http://10.0.0.5/hook"), "target.url")
            .is_err());
        assert!(p
            .check_target(&url("http://169.254.169.254/"), "target.url")
            .is_err());
        assert!(p
            .check_target(&url("http://hooks.example.com/"), "target.url")
            .is_err());
        let named = url("http://receiver.test:9000/");
        assert!(p.check_address(&named, "8.8.8.8".parse().unwrap()).is_err());
        assert!(p
            .check_address(&named, "127.0.0.1".parse().unwrap())
            .is_ok());
    }

    #[test]
    fn allow_list_parsing() {
        assert_eq!(
            EgressPolicy::from_allow_list("").unwrap(),
            EgressPolicy::strict()
        );
        assert_eq!(
            EgressPolicy::from_allow_list("loopback, http").unwrap(),
            EgressPolicy::local_runner()
        );
        let p = EgressPolicy::from_allow_list("private,loopback,private").unwrap();
        assert_eq!(
            p.allowed,
            vec![AddressClass::Private, AddressClass::Loopback]
        );
        assert!(!p.allow_http);
        assert!(EgressPolicy::from_allow_list("everything")
            .unwrap_err()
            .contains("everything"));
        assert!(EgressPolicy::from_allow_list("public").is_err());
    }

    proptest::proptest! {
        /// Every address classifies, every allow-list parses or says why, and the checks
        /// answer for any URL and address.
        #[test]
        fn classifying_and_checking_never_panics(v4 in proptest::num::u32::ANY, v6 in proptest::num::u128::ANY, list in ".{0,40}", https in proptest::bool::ANY) {
            let url = TargetUrl { https, host: "h.example".into(), port: 443 };
            for ip in [IpAddr::V4(Ipv4Addr::from(v4)), IpAddr::V6(Ipv6Addr::from(v6)), IpAddr::V6(Ipv4Addr::from(v4).to_ipv6_mapped())] {
                let class = classify(ip);
                let strict = EgressPolicy::strict().check_address(&url, ip);
                proptest::prop_assert_eq!(strict.is_ok(), https && class == AddressClass::Public);
                let _ = EgressPolicy::local_runner().check_address(&url, ip);
            }
            // An IPv4-mapped address is the IPv4 address.
            proptest::prop_assert_eq!(classify(IpAddr::V6(Ipv4Addr::from(v4).to_ipv6_mapped())), classify(IpAddr::V4(Ipv4Addr::from(v4))));
            let _ = EgressPolicy::from_allow_list(&list);
        }
    }
}
