//! `--local-ips`: the source addresses load mode's connections are spread over, as k6's
//! option of the same name. One source address has one ephemeral port range (about
//! 28,000 ports on Linux by default), so past that many connections to one server
//! address, more source addresses are needed (on Linux every 127.0.0.x is local).

use std::net::{IpAddr, Ipv4Addr};

/// Most addresses one list may name (a range is expanded).
const MAX_ADDRESSES: u64 = 65_536;

/// Source addresses, in the order connections take them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LocalIps(pub Vec<IpAddr>);

/// Why a `--local-ips` list cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum LocalIpsError {
    #[error("--local-ips: `{0}` is not an IP address")]
    NotAnAddress(String),
    #[error("--local-ips: range `{0}`: ranges are of IPv4 addresses; list IPv6 ones")]
    Ipv6Range(String),
    #[error("--local-ips: range `{0}` ends before it starts")]
    Backwards(String),
    #[error("--local-ips: more than {MAX_ADDRESSES} addresses")]
    TooMany,
    #[error("--local-ips: name at least one address, e.g. 127.0.0.1-127.0.0.4")]
    Empty,
}

/// Parse `A,B,C-D`: addresses and inclusive IPv4 ranges, comma-separated.
pub fn parse(text: &str) -> Result<LocalIps, LocalIpsError> {
    let mut ips = Vec::new();
    for item in text.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        match item.split_once('-') {
            None => ips.push(address(item)?),
            Some((first, last)) => {
                let (first, last) = (ipv4(first, item)?, ipv4(last, item)?);
                let (from, to) = (u32::from(first), u32::from(last));
                if from > to {
                    return Err(LocalIpsError::Backwards(item.to_string()));
                }
                if u64::from(to - from) + ips.len() as u64 >= MAX_ADDRESSES {
                    return Err(LocalIpsError::TooMany);
                }
                ips.extend((from..=to).map(|n| IpAddr::V4(Ipv4Addr::from(n))));
            }
        }
    }
    if ips.is_empty() {
        return Err(LocalIpsError::Empty);
    }
    Ok(LocalIps(ips))
}

fn address(text: &str) -> Result<IpAddr, LocalIpsError> {
    text.trim()
        .parse()
        .map_err(|_| LocalIpsError::NotAnAddress(text.trim().to_string()))
}

fn ipv4(text: &str, range: &str) -> Result<Ipv4Addr, LocalIpsError> {
    match address(text)? {
        IpAddr::V4(ip) => Ok(ip),
        IpAddr::V6(_) => Err(LocalIpsError::Ipv6Range(range.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_and_ranges_expand_in_order() {
        let ips = parse("127.0.0.1-127.0.0.3, ::1,10.0.0.9").unwrap().0;
        let shown: Vec<String> = ips.iter().map(ToString::to_string).collect();
        assert_eq!(
            shown,
            ["127.0.0.1", "127.0.0.2", "127.0.0.3", "::1", "10.0.0.9"]
        );
    }

    #[test]
    fn bad_lists_say_what_is_wrong() {
        for (text, says) in [
            ("", "at least one"),
            ("127.0.0.x", "not an IP address"),
            ("127.0.0.5-127.0.0.1", "ends before"),
            ("::1-::2", "IPv4"),
            ("10.0.0.0-10.255.255.255", "more than"),
        ] {
            let e = parse(text).unwrap_err();
            assert!(e.to_string().contains(says), "{text}: {e}");
        }
    }
}
