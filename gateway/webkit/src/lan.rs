//! Who may reach the web app: by default only peers on the local network
//! (loopback, RFC 1918, link-local, IPv6 unique-local), so a hub that ends
//! up with a public address or a forwarded port still serves no one
//! outside the home.

use std::net::IpAddr;

/// Whether `ip` is on a local network.
pub fn is_local(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.is_loopback() || v4.is_private() || v4.is_link_local(),
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_local(IpAddr::V4(v4));
            }
            let first = v6.segments()[0];
            v6.is_loopback()
                // fc00::/7 unique local, fe80::/10 link local
                || (first & 0xfe00) == 0xfc00
                || (first & 0xffc0) == 0xfe80
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn home_networks_are_local_and_the_internet_is_not() {
        for local in [
            "127.0.0.1",
            "10.1.2.3",
            "172.20.0.9",
            "192.168.1.20",
            "169.254.3.4",
            "::1",
            "fd12:3456::1",
            "fe80::1",
            "::ffff:192.168.0.7",
        ] {
            assert!(is_local(local.parse().unwrap()), "{local}");
        }
        for remote in [
            "8.8.8.8",
            "100.64.0.1",
            "172.32.0.1",
            "2001:db8::1",
            "::ffff:8.8.8.8",
        ] {
            assert!(!is_local(remote.parse().unwrap()), "{remote}");
        }
    }
}
