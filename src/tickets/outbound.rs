//! Where webhook requests may go. A site admin names the URL, so the server must not become
//! their way into the deployment's own network: loopback, private, link-local, shared,
//! unspecified, multicast and broadcast addresses are refused unless the deployment lists
//! them in `webhook_allowed_networks`.
//!
//! Checked on the address actually connected to: IP literals before the request, names by
//! the HTTP client's resolver (`Guarded`), so a name that resolves to a public address when
//! registered and to 127.0.0.1 at delivery (DNS rebinding) is refused all the same.

use std::net::{IpAddr, SocketAddr};

use crate::config::{Live, Network};

/// Why a request was not sent: the only detail `last_error` gives.
#[derive(Debug, thiserror::Error)]
#[error("refused: private address")]
pub struct PrivateAddress;

/// Whether the server may connect to `ip`.
pub fn permitted(ip: IpAddr, allowed: &[Network]) -> bool {
    let ip = ip.to_canonical();
    if allowed.iter().any(|n| n.contains(ip)) {
        return true;
    }
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            !(v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_multicast()
                || a == 0
                // 100.64.0.0/10, carrier-grade NAT: as internal as a private range.
                || (a == 100 && (64..128).contains(&b)))
        }
        IpAddr::V6(v6) => {
            let first = v6.segments()[0];
            !(v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                // fc00::/7 unique local, fe80::/10 link-local.
                || (first & 0xfe00) == 0xfc00
                || (first & 0xffc0) == 0xfe80)
        }
    }
}

/// Whether the URL names an IP literal the server may not connect to (names are checked
/// when they resolve).
pub fn literal_refused(url: &str, allowed: &[Network]) -> bool {
    let Ok(u) = reqwest::Url::parse(url) else {
        return false;
    };
    // The URL parser has normalised the host: `2130706433` is `127.0.0.1` here.
    let host = u.host_str().unwrap_or_default();
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host.parse::<IpAddr>()
        .is_ok_and(|ip| !permitted(ip, allowed))
}

/// An HTTP client for requests a tenant addressed (webhooks, push services): names resolve to
/// permitted addresses only, no redirects, and no proxy from the environment (it would
/// connect on the receiver's behalf, past that check).
pub fn client(config: &Live, timeout: std::time::Duration) -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(timeout)
        .redirect(reqwest::redirect::Policy::none())
        .dns_resolver(std::sync::Arc::new(Guarded {
            config: config.clone(),
        }))
        .no_proxy()
        .user_agent(concat!("switchboard/", env!("CARGO_PKG_VERSION")))
        .build()
        .expect("the HTTP client builds")
}

/// The HTTP client's resolver: the system's answer, without the addresses it may not use.
pub struct Guarded {
    /// Read per lookup: the allow-list can change on SIGHUP.
    pub config: Live,
}

impl reqwest::dns::Resolve for Guarded {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let config = self.config.clone();
        Box::pin(async move {
            let found: Vec<SocketAddr> =
                tokio::net::lookup_host((name.as_str(), 0)).await?.collect();
            let allowed = config.get().webhook_allowed_networks.clone();
            let usable: Vec<SocketAddr> = found
                .into_iter()
                .filter(|a| permitted(a.ip(), &allowed))
                .collect();
            if usable.is_empty() {
                return Err(Box::new(PrivateAddress) as Box<dyn std::error::Error + Send + Sync>);
            }
            Ok(Box::new(usable.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

/// Whether a failed request failed because of `PrivateAddress`.
pub fn is_refusal(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(c) = cause {
        if c.is::<PrivateAddress>() {
            return true;
        }
        cause = c.source();
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every form the issue tried is refused; public addresses and allowed networks are not.
    #[test]
    fn internal_addresses_are_refused() {
        for url in [
            "http://127.0.0.1/",
            "http://2130706433/",
            "http://0.0.0.0:8080/",
            "http://[::1]/",
            "http://169.254.169.254/latest",
            "http://10.1.2.3/",
            "http://192.168.0.1/",
            "http://172.16.5.5/",
            "http://100.64.0.1/",
            "http://[fd00::1]/",
            "http://[fe80::1]/",
            "http://[::ffff:127.0.0.1]/",
        ] {
            assert!(literal_refused(url, &[]), "{url}");
        }
        assert!(!literal_refused("https://93.184.216.34/hook", &[]));
        assert!(!literal_refused("https://hooks.example.com/x", &[]));
        let lo: Network = "127.0.0.0/8".to_owned().try_into().unwrap();
        assert!(!literal_refused("http://127.0.0.1:9/", &[lo]));
    }
}
