//! A drain URL's host, read strictly: an IPv6 address in brackets, an IPv4 address in
//! dotted decimal (four numbers, no leading zeros), or a host name (RFC 1123: at most 253
//! characters, labels of 1–63 letters, digits and hyphens, no hyphen first or last).
//! Anything that looks numeric but is not a dotted-decimal address (`2130706433`,
//! `0x7f000001`, `0177.0.0.1`, `127.1`, `127.0.0.1.`) is refused here, never handed to a
//! resolver, which would read it as an address (`inet_aton`) that the URL does not show.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// A drain's host.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Host {
    /// An address, connected to as it is.
    Ip(IpAddr),
    /// A name, resolved at every connect.
    Name(String),
}

/// The longest host name (RFC 1035, without the root's dot).
pub const MAX_NAME: usize = 253;
/// The longest label.
pub const MAX_LABEL: usize = 63;

/// Whether `name` always means this machine (`localhost`, `*.localhost`; RFC 6761).
pub fn is_localhost(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    name == "localhost" || name.ends_with(".localhost")
}

/// Whether the host's last label starts with a digit: then it is meant as an IPv4 address
/// (no top-level domain starts with one), and must be one in dotted decimal.
fn looks_numeric(host: &str) -> bool {
    let last = match host.strip_suffix('.') {
        Some(rest) => rest.rsplit('.').next(),
        None => host.rsplit('.').next(),
    };
    last.is_some_and(|l| l.starts_with(|c: char| c.is_ascii_digit()))
}

fn check_label(label: &str) -> Result<(), &'static str> {
    if label.is_empty() {
        return Err("the host name has an empty label (a leading, trailing or doubled dot)");
    }
    if label.len() > MAX_LABEL {
        return Err("a label of the host name is longer than 63 characters");
    }
    if !label
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-')
    {
        return Err("the host has characters a host name cannot have (letters, digits, '-')");
    }
    if label.starts_with('-') || label.ends_with('-') {
        return Err("a label of the host name starts or ends with '-'");
    }
    Ok(())
}

impl Host {
    /// Reads a URL's host: `bracketed` when it was written `[…]` (IPv6).
    pub fn parse(host: &str, bracketed: bool) -> Result<Host, &'static str> {
        if bracketed {
            return host
                .parse::<Ipv6Addr>()
                .map(|ip| Host::Ip(IpAddr::V6(ip)))
                .map_err(|_| "the host in brackets is not an IPv6 address");
        }
        if host.is_empty() {
            return Err("no host");
        }
        if host.contains(':') {
            return Err("an IPv6 address must be written in brackets ([::1])");
        }
        if looks_numeric(host) {
            return host
                .parse::<Ipv4Addr>()
                .map(|ip| Host::Ip(IpAddr::V4(ip)))
                .map_err(|_| {
                    "the host looks like an IP address but is not one in the form accepted \
                     (four decimal numbers a.b.c.d, no leading zeros)"
                });
        }
        if host.len() > MAX_NAME {
            return Err("the host name is longer than 253 characters");
        }
        host.split('.').try_for_each(check_label)?;
        Ok(Host::Name(host.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_in_their_one_accepted_form() {
        assert_eq!(
            Host::parse("10.0.0.1", false),
            Ok(Host::Ip("10.0.0.1".parse().unwrap()))
        );
        assert_eq!(
            Host::parse("::ffff:169.254.169.254", true),
            Ok(Host::Ip("::ffff:a9fe:a9fe".parse().unwrap()))
        );
        assert_eq!(
            Host::parse("fd00::1", true),
            Ok(Host::Ip("fd00::1".parse().unwrap()))
        );
    }

    #[test]
    fn other_numeric_spellings_are_refused_not_resolved() {
        for spelling in [
            "2130706433",
            "0x7f000001",
            "0X7F000001",
            "0177.0.0.1",
            "0177.1",
            "127.1",
            "127.0.1",
            "127.0.0.1.",
            "127.000.000.001",
            "0x7f.0.0.1",
            "1.2.3.4.5",
            "256.0.0.1",
            "169.254.43518",
            "example.0x7f",
            "example.123",
            "1e2",
        ] {
            let e = Host::parse(spelling, false).unwrap_err();
            assert!(e.contains("looks like an IP address"), "{spelling}: {e}");
        }
    }

    #[test]
    fn ipv6_only_in_brackets_and_without_zones() {
        assert!(Host::parse("::1", false).unwrap_err().contains("brackets"));
        assert!(Host::parse("fe80::1%eth0", true).is_err());
        assert!(Host::parse("fe80::1%25eth0", true).is_err());
        assert!(Host::parse("example.com", true).is_err());
        assert!(Host::parse("1:2:3:4:5:6:7:8:9", true).is_err());
    }

    #[test]
    fn names_follow_rfc_1123() {
        for good in [
            "logs.example.com",
            "a",
            "xn--bcher-kva.example",
            "a-b.c-d.example",
            "1password.com",
            "LOGS.Example.COM",
        ] {
            assert_eq!(
                Host::parse(good, false),
                Ok(Host::Name(good.to_owned())),
                "{good}"
            );
        }
        let long_label = format!("{}.example.com", "a".repeat(64));
        let label_63 = format!("{}.example.com", "a".repeat(63));
        let too_long = vec!["abcdefghi"; 26].join(".");
        let longest = format!("{}.a", vec!["abcdefghi"; 25].join("."));
        assert_eq!(too_long.len(), 259);
        assert_eq!(longest.len(), 251);
        assert!(Host::parse(&label_63, false).is_ok());
        assert!(Host::parse(&longest, false).is_ok());
        for (bad, why) in [
            (long_label.as_str(), "longer than 63"),
            (too_long.as_str(), "longer than 253"),
            ("example..com", "empty label"),
            (".example.com", "empty label"),
            ("example.com.", "empty label"),
            ("localhost.", "empty label"),
            ("-x.example.com", "starts or ends"),
            ("x-.example.com", "starts or ends"),
            ("bad_host.example", "characters"),
            ("exa$mple.com", "characters"),
            ("bücher.example", "characters"),
            ("", "no host"),
        ] {
            let e = Host::parse(bad, false).unwrap_err();
            assert!(e.contains(why), "{bad}: {e}");
        }
    }

    #[test]
    fn localhost_names() {
        for name in ["localhost", "LocalHost", "a.localhost", "x.y.LOCALHOST"] {
            assert!(is_localhost(name), "{name}");
        }
        for name in ["localhost.example.com", "notlocalhost", "localhostx"] {
            assert!(!is_localhost(name), "{name}");
        }
    }
}
