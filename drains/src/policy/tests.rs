//! Every spelling of every refused range, through the host parser and the policy, and the
//! CIDR ranges an operator writes.

use super::*;

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn cidr(s: &str) -> Cidr {
    s.parse().unwrap()
}

/// What the policy says of a URL's host written as `spelling` (brackets for IPv6).
fn judge(policy: &AddressPolicy, spelling: &str) -> Result<(), String> {
    let (host, bracketed) = match spelling.strip_prefix('[') {
        Some(v6) => (v6.trim_end_matches(']'), true),
        None => (spelling, false),
    };
    let host = Host::parse(host, bracketed).map_err(str::to_owned)?;
    policy.check_host(&host).map_err(|r| r.to_string())
}

#[test]
fn every_internal_range_is_refused_by_default() {
    let policy = AddressPolicy::default();
    for (addr, kind) in [
        ("127.0.0.1", "loopback"),
        ("127.255.255.254", "loopback"),
        ("10.0.0.1", "private"),
        ("172.16.0.1", "private"),
        ("172.31.255.255", "private"),
        ("192.168.1.1", "private"),
        ("100.64.0.1", "carrier-grade NAT"),
        ("100.127.255.255", "carrier-grade NAT"),
        ("169.254.169.254", "link-local"),
        ("224.0.0.1", "multicast"),
        ("239.255.255.250", "multicast"),
        ("255.255.255.255", "broadcast"),
        ("0.0.0.0", "unspecified"),
        ("0.1.2.3", "unspecified"),
        ("240.0.0.1", "reserved"),
        ("::", "unspecified"),
        ("::1", "loopback"),
        ("fe80::1", "link-local"),
        ("febf::1", "link-local"),
        ("fc00::1", "unique-local"),
        ("fd00::1", "unique-local"),
        ("ff02::1", "multicast"),
        ("::ffff:169.254.169.254", "link-local"),
        ("::ffff:127.0.0.1", "loopback"),
        ("::ffff:10.0.0.1", "private"),
        ("::ffff:0:10.0.0.1", "private"),
        ("::127.0.0.1", "IPv4-compatible"),
        ("64:ff9b::10.0.0.1", "private"),
        ("64:ff9b::169.254.169.254", "link-local"),
        ("64:ff9b:1::1", "NAT64"),
        ("2002:7f00:1::1", "loopback"),
        ("2002:a9fe:a9fe::", "link-local"),
        ("2002:c0a8:101::1", "private"),
        ("2001::1", "Teredo"),
    ] {
        let refusal = policy.check(ip(addr)).unwrap_err();
        let text = refusal.to_string();
        assert!(text.contains(kind), "{addr}: {text}");
        assert!(text.contains("--drain-allow-net"), "{addr}: {text}");
        assert!(!policy.allows(ip(addr)));
    }
}

#[test]
fn public_addresses_are_allowed() {
    let policy = AddressPolicy::default();
    for addr in [
        "8.8.8.8",
        "1.1.1.1",
        "172.15.255.255",
        "172.32.0.0",
        "100.63.255.255",
        "100.128.0.0",
        "169.253.255.255",
        "11.0.0.0",
        "223.255.255.255",
        "2606:4700:4700::1111",
        "::ffff:8.8.8.8",
        "64:ff9b::8.8.8.8",
        "2002:808:808::1",
    ] {
        assert_eq!(policy.check(ip(addr)), Ok(()), "{addr}");
    }
}

#[test]
fn every_spelling_of_an_internal_address_is_refused() {
    let policy = AddressPolicy::default();
    for spelling in [
        "169.254.169.254",
        "10.0.0.1",
        "[::ffff:169.254.169.254]",
        "[::ffff:a9fe:a9fe]",
        "[0:0:0:0:0:ffff:7f00:1]",
        "[fd00::1]",
        "[FD00::1]",
        "[::1]",
        "[0::1]",
        "[::]",
        "0.0.0.0",
        "0x7f000001",
        "2130706433",
        "0177.0.0.1",
        "127.1",
        "127.0.0.1.",
        "0x7f.1",
        "017700000001",
        "localhost",
        "LOCALHOST",
        "localhost.",
        "db.localhost",
        "[64:ff9b::7f00:1]",
        "[2002:7f00:1::]",
    ] {
        assert!(judge(&policy, spelling).is_err(), "{spelling} was allowed");
    }
}

#[test]
fn names_wait_for_their_resolution() {
    let policy = AddressPolicy::default();
    for name in ["logs.example.com", "localhost.example.com", "a.b"] {
        assert_eq!(judge(&policy, name), Ok(()), "{name}");
    }
}

#[test]
fn the_operator_opens_ranges() {
    let policy = AddressPolicy::allowing([cidr("127.0.0.0/8"), cidr("10.1.0.0/16")]);
    assert!(policy.allows(ip("127.0.0.1")));
    assert!(policy.allows(ip("127.9.9.9")));
    assert!(
        policy.allows(ip("::ffff:127.0.0.1")),
        "the same destination"
    );
    assert!(policy.allows(ip("10.1.2.3")));
    assert!(!policy.allows(ip("10.2.0.1")));
    assert!(!policy.allows(ip("::1")), "IPv6 loopback is another range");
    assert!(!policy.allows(ip("169.254.169.254")));
    assert_eq!(judge(&policy, "localhost"), Ok(()));
    assert_eq!(judge(&policy, "[::1]").map_err(|_| ()), Err(()));
    let v6 = AddressPolicy::allowing([cidr("::1"), cidr("fd00::/8")]);
    assert!(v6.allows(ip("::1")) && v6.allows(ip("fd12::1")));
    assert!(!v6.allows(ip("127.0.0.1")) && !v6.allows(ip("fe80::1")));
    assert_eq!(judge(&v6, "localhost"), Ok(()), "::1 is a loopback range");
}

#[test]
fn localhost_needs_some_loopback_range_open() {
    let narrow = AddressPolicy::allowing([cidr("127.0.0.2/32")]);
    assert_eq!(judge(&narrow, "localhost"), Ok(()));
    assert!(!narrow.allows(ip("127.0.0.1")), "but not where it leads");
    let elsewhere = AddressPolicy::allowing([cidr("10.0.0.0/8")]);
    let refusal = judge(&elsewhere, "api.localhost").unwrap_err();
    assert!(refusal.contains("api.localhost is a loopback"), "{refusal}");
}

#[test]
fn cidr_ranges_read_strictly() {
    assert_eq!(cidr("10.0.0.0/8").to_string(), "10.0.0.0/8");
    assert_eq!(cidr("127.0.0.1").to_string(), "127.0.0.1/32");
    assert_eq!(cidr("::1").to_string(), "::1/128");
    assert_eq!(cidr("fd00::/8").to_string(), "fd00::/8");
    assert_eq!(cidr("0.0.0.0/0").to_string(), "0.0.0.0/0");
    assert!(cidr("0.0.0.0/0").contains(ip("8.8.8.8")));
    assert!(!cidr("0.0.0.0/0").contains(ip("::1")));
    assert!(cidr("::/0").contains(ip("::1")));
    for (bad, why) in [
        ("10.1.2.3/8", "did you mean 10.0.0.0/8"),
        ("10.0.0.0/33", "prefix length"),
        ("::/129", "prefix length"),
        ("10.0.0.0/", "prefix length"),
        ("10.0.0.0/+8", "prefix length"),
        ("10.0.0.0/08x", "prefix length"),
        ("10/8", "not an IP address"),
        ("0x0a000000/8", "not an IP address"),
        ("[::1]/128", "not an IP address"),
        ("localhost", "not an IP address"),
    ] {
        let e = bad.parse::<Cidr>().unwrap_err().to_string();
        assert!(e.contains(why), "{bad}: {e}");
    }
}

#[test]
fn ranges_overlap() {
    assert!(cidr("127.0.0.0/8").overlaps(&cidr("127.0.0.2/32")));
    assert!(cidr("127.0.0.2/32").overlaps(&cidr("127.0.0.0/8")));
    assert!(cidr("0.0.0.0/0").overlaps(&cidr("127.0.0.0/8")));
    assert!(!cidr("10.0.0.0/8").overlaps(&cidr("127.0.0.0/8")));
    assert!(!cidr("::/0").overlaps(&cidr("127.0.0.0/8")));
}

#[test]
fn embedded_ipv4_addresses() {
    let v6 = |s: &str| s.parse::<Ipv6Addr>().unwrap();
    let v4 = |s: &str| Some(s.parse::<Ipv4Addr>().unwrap());
    assert_eq!(embedded_v4(v6("::ffff:1.2.3.4")), v4("1.2.3.4"));
    assert_eq!(embedded_v4(v6("::ffff:0:1.2.3.4")), v4("1.2.3.4"));
    assert_eq!(embedded_v4(v6("64:ff9b::1.2.3.4")), v4("1.2.3.4"));
    assert_eq!(embedded_v4(v6("2002:102:304:5::6")), v4("1.2.3.4"));
    assert_eq!(embedded_v4(v6("2606:4700::1")), None);
    assert_eq!(embedded_v4(v6("::1")), None);
}
