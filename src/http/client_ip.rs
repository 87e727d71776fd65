//! The client's address: the peer, or — only when the peer is a trusted proxy — the nearest
//! untrusted hop of `X-Forwarded-For`. A header from anyone else is ignored, since it is forged
//! at will.

use std::net::IpAddr;

use http::HeaderMap;

use crate::config::ip::canonical;
use crate::config::IpRange;

pub fn client_address(
    peer: Option<IpAddr>,
    headers: &HeaderMap,
    trusted_proxies: &[IpRange],
) -> Option<IpAddr> {
    let peer = canonical(peer?);
    let is_trusted = |address: IpAddr| trusted_proxies.iter().any(|range| range.contains(address));
    if !is_trusted(peer) {
        return Some(peer);
    }
    let mut hops = Vec::new();
    for value in headers.get_all("x-forwarded-for") {
        let text = value.to_str().ok()?;
        for hop in text.split(',') {
            hops.push(hop.trim().parse::<IpAddr>().ok().map(canonical));
        }
    }
    // Right to left: each trusted proxy vouches for the hop before it; the first hop that is not
    // a trusted proxy is the client. An unreadable hop means the client cannot be known.
    for hop in hops.into_iter().rev() {
        let hop = hop?;
        if !is_trusted(hop) {
            return Some(hop);
        }
    }
    Some(peer)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn forwarded(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert("x-forwarded-for", value.parse().unwrap());
        headers
    }

    #[test]
    fn header_from_an_untrusted_peer_is_ignored() {
        let trusted = ["10.0.0.1".parse().unwrap()];
        let client = client_address(
            Some("198.51.100.7".parse().unwrap()),
            &forwarded("63.32.31.5"),
            &trusted,
        );
        assert_eq!(client, Some("198.51.100.7".parse().unwrap()));
    }

    #[test]
    fn trusted_proxy_chain_yields_the_first_untrusted_hop() {
        let trusted = ["10.0.0.0/8".parse().unwrap()];
        let client = client_address(
            Some("10.0.0.1".parse().unwrap()),
            &forwarded("1.1.1.1, 63.32.31.5, 10.0.0.2"),
            &trusted,
        );
        assert_eq!(client, Some("63.32.31.5".parse().unwrap()));
    }

    #[test]
    fn garbage_hop_from_a_trusted_proxy_means_unknown() {
        let trusted = ["10.0.0.1".parse().unwrap()];
        let client = client_address(
            Some("10.0.0.1".parse().unwrap()),
            &forwarded("nonsense"),
            &trusted,
        );
        assert_eq!(client, None);
    }
}
