//! Address ranges in configuration: a single address (`63.32.31.5`) or a CIDR (`10.0.0.0/8`).

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use ipnet::IpNet;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpRange(IpNet);

impl IpRange {
    pub fn contains(&self, address: IpAddr) -> bool {
        self.0.contains(&canonical(address))
    }
}

/// An IPv4 client seen through a dual-stack socket arrives as `::ffff:a.b.c.d`; compare it as
/// the IPv4 address it is, so `allowed_ips = ["63.32.31.5"]` works on either kind of socket.
pub fn canonical(address: IpAddr) -> IpAddr {
    match address {
        IpAddr::V6(v6) => v6
            .to_ipv4_mapped()
            .map(IpAddr::V4)
            .unwrap_or(IpAddr::V6(v6)),
        v4 => v4,
    }
}

impl FromStr for IpRange {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        if let Ok(net) = text.parse::<IpNet>() {
            return Ok(IpRange(net.trunc()));
        }
        text.parse::<IpAddr>()
            .map(|address| IpRange(IpNet::from(address)))
            .map_err(|_| format!("`{text}` is neither an IP address nor a CIDR range"))
    }
}

impl fmt::Display for IpRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl Serialize for IpRange {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for IpRange {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn single_address_and_cidr_both_parse_and_match() {
        let single: IpRange = "63.32.31.5".parse().unwrap();
        let range: IpRange = "10.0.0.0/8".parse().unwrap();
        assert!(single.contains("63.32.31.5".parse().unwrap()));
        assert!(!single.contains("63.32.31.6".parse().unwrap()));
        assert!(range.contains("10.200.1.1".parse().unwrap()));
        assert!(!range.contains("11.0.0.1".parse().unwrap()));
    }

    #[test]
    fn ipv4_mapped_ipv6_peer_matches_ipv4_range() {
        let single: IpRange = "63.32.31.5".parse().unwrap();
        assert!(single.contains("::ffff:63.32.31.5".parse().unwrap()));
    }

    #[test]
    fn garbage_is_refused_with_the_value() {
        let error = "not-an-ip".parse::<IpRange>().unwrap_err();
        assert!(error.contains("not-an-ip"));
    }
}
