//! Which address a request came from, behind proxies: the peer, unless the peer is a
//! trusted hop; then `X-Forwarded-For` read from the right, skipping trusted hops, so the
//! client is the first address no trusted proxy vouches for. The left-most entry is
//! whatever the client wrote and is never believed on its own.

use std::net::IpAddr;
use std::sync::Arc;

use ipnet::IpNet;

/// An IP address or CIDR range from the configuration; `None` when it is neither.
pub fn parse_hop(hop: &str) -> Option<IpNet> {
    let hop = hop.trim();
    hop.parse::<IpNet>()
        .ok()
        .or_else(|| hop.parse::<IpAddr>().ok().map(IpNet::from))
}

/// The proxies allowed to name the client (`server.trusted_proxies`).
#[derive(Debug, Clone, Default)]
pub struct TrustedHops(Arc<Vec<IpNet>>);

impl TrustedHops {
    /// Entries that do not parse are skipped (the configuration check refuses them).
    pub fn new(hops: &[String]) -> Self {
        Self(Arc::new(hops.iter().filter_map(|h| parse_hop(h)).collect()))
    }

    fn trusts(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        self.0.iter().any(|net| net.contains(&ip))
    }

    /// The client of a request from `peer` carrying these `X-Forwarded-For` values.
    pub fn client(&self, peer: IpAddr, forwarded_for: &[&str]) -> IpAddr {
        let mut client = peer;
        if !self.trusts(peer) {
            return client;
        }
        let hops = forwarded_for
            .iter()
            .flat_map(|value| value.split(','))
            .map(str::trim)
            .rev();
        for hop in hops {
            // A hop that is not an address ends the walk: the trusted proxy before it
            // is the last one we can vouch for.
            let Some(ip) = parse_forwarded_ip(hop) else {
                return client;
            };
            client = ip;
            if !self.trusts(ip) {
                return client;
            }
        }
        client
    }
}

/// An `X-Forwarded-For` entry: an address, possibly with a port (`1.2.3.4:5`,
/// `[::1]:5`).
fn parse_forwarded_ip(entry: &str) -> Option<IpAddr> {
    if let Ok(ip) = entry.parse::<IpAddr>() {
        return Some(ip);
    }
    entry
        .parse::<std::net::SocketAddr>()
        .ok()
        .map(|addr| addr.ip())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn an_untrusted_peer_is_the_client_whatever_it_forwards() {
        let hops = TrustedHops::new(&["10.0.0.0/8".to_owned()]);
        assert_eq!(
            hops.client(ip("203.0.113.7"), &["1.1.1.1"]),
            ip("203.0.113.7")
        );
        assert_eq!(
            TrustedHops::default().client(ip("10.0.0.1"), &["1.1.1.1"]),
            ip("10.0.0.1")
        );
    }

    #[test]
    fn the_right_most_untrusted_address_is_the_client_never_the_left_most() {
        let hops = TrustedHops::new(&["10.0.0.0/8".to_owned(), "127.0.0.1".to_owned()]);
        // The client wrote "6.6.6.6" itself; NGINX appended the real peer.
        assert_eq!(
            hops.client(ip("127.0.0.1"), &["6.6.6.6, 198.51.100.4"]),
            ip("198.51.100.4")
        );
        // Two proxies: a load balancer then NGINX, across header lines.
        assert_eq!(
            hops.client(ip("127.0.0.1"), &["6.6.6.6", "198.51.100.4, 10.1.2.3"]),
            ip("198.51.100.4")
        );
        // Every hop trusted: the left-most one reached us.
        assert_eq!(hops.client(ip("127.0.0.1"), &["10.9.9.9"]), ip("10.9.9.9"));
        // No header: the proxy itself.
        assert_eq!(hops.client(ip("127.0.0.1"), &[]), ip("127.0.0.1"));
        // Garbage stops the walk at the last trusted hop.
        assert_eq!(
            hops.client(ip("127.0.0.1"), &["junk, 10.1.2.3"]),
            ip("10.1.2.3")
        );
        assert_eq!(
            hops.client(ip("127.0.0.1"), &["[2001:db8::1]:443"]),
            ip("2001:db8::1")
        );
    }

    #[test]
    fn hops_parse_as_addresses_or_ranges() {
        assert!(parse_hop("127.0.0.1").is_some());
        assert!(parse_hop("10.0.0.0/8").is_some());
        assert!(parse_hop("::1").is_some());
        assert!(parse_hop("localhost").is_none());
        assert!(parse_hop("10.0.0.0/33").is_none());
    }
}
