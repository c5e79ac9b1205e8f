//! Where drains may go: `AddressPolicy` refuses the addresses a tenant must not aim a drain at
//! (loopback, private, CGNAT, link-local, unique-local, multicast, broadcast, unspecified,
//! reserved, and the IPv6 forms that carry such an IPv4 address inside: mapped, NAT64, 6to4),
//! unless the operator opened a range (`--drain-allow-net CIDR`). It judges addresses, never
//! spellings: the URL parser (`host.rs`) turns every accepted spelling into one `IpAddr`, and
//! a drain's connection judges every address a name resolves to, at every connect.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

use crate::host::{Host, is_localhost};

/// A range of addresses: `10.0.0.0/8`, `fd00::/8`, or one address (`/32`, `/128`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Cidr {
    /// An IPv4 network and its prefix length (0–32).
    V4 { net: u32, prefix: u8 },
    /// An IPv6 network and its prefix length (0–128).
    V6 { net: u128, prefix: u8 },
}

/// Why a text is not a CIDR range.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CidrError {
    /// The address part is not an IPv4 or IPv6 address.
    #[error("{0:?} is not an IP address (a.b.c.d or an IPv6 address, then /PREFIX)")]
    Address(String),
    /// The prefix length is not a number in range.
    #[error("{0:?}: the prefix length must be 0–32 for IPv4, 0–128 for IPv6")]
    Prefix(String),
    /// Bits past the prefix are set (`10.1.2.3/8`): most likely a typo.
    #[error("{given:?} has bits set past its prefix; did you mean {meant}?")]
    HostBits { given: String, meant: Cidr },
}

const fn v4_mask(prefix: u8) -> u32 {
    if prefix == 0 {
        0
    } else {
        u32::MAX << (32 - prefix)
    }
}

const fn v6_mask(prefix: u8) -> u128 {
    if prefix == 0 {
        0
    } else {
        u128::MAX << (128 - prefix)
    }
}

impl Cidr {
    /// `a.b.c.d/prefix` (the table below; `prefix` ≤ 32 and no host bits).
    const fn v4(a: u8, b: u8, c: u8, d: u8, prefix: u8) -> Cidr {
        let net = u32::from_be_bytes([a, b, c, d]);
        Cidr::V4 {
            net: net & v4_mask(prefix),
            prefix,
        }
    }

    /// An IPv6 range from its first 64 bits as four groups (the table below).
    const fn v6(groups: [u16; 4], prefix: u8) -> Cidr {
        let high = ((groups[0] as u128) << 48)
            | ((groups[1] as u128) << 32)
            | ((groups[2] as u128) << 16)
            | groups[3] as u128;
        Cidr::V6 {
            net: (high << 64) & v6_mask(prefix),
            prefix,
        }
    }

    /// The range of `addr` with `prefix`, which must hold no bits past the prefix.
    pub fn new(addr: IpAddr, prefix: u8) -> Result<Cidr, CidrError> {
        let given = || format!("{addr}/{prefix}");
        let cidr = match addr {
            IpAddr::V4(a) if prefix <= 32 => Cidr::V4 {
                net: u32::from(a) & v4_mask(prefix),
                prefix,
            },
            IpAddr::V6(a) if prefix <= 128 => Cidr::V6 {
                net: u128::from(a) & v6_mask(prefix),
                prefix,
            },
            _ => return Err(CidrError::Prefix(given())),
        };
        if cidr.first() != addr {
            return Err(CidrError::HostBits {
                given: given(),
                meant: cidr,
            });
        }
        Ok(cidr)
    }

    /// The first address of the range.
    pub fn first(&self) -> IpAddr {
        match *self {
            Cidr::V4 { net, .. } => IpAddr::V4(Ipv4Addr::from(net)),
            Cidr::V6 { net, .. } => IpAddr::V6(Ipv6Addr::from(net)),
        }
    }

    /// Whether `ip` is in the range (an IPv4 range holds no IPv6 address, and the reverse).
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (*self, ip) {
            (Cidr::V4 { net, prefix }, IpAddr::V4(a)) => u32::from(a) & v4_mask(prefix) == net,
            (Cidr::V6 { net, prefix }, IpAddr::V6(a)) => u128::from(a) & v6_mask(prefix) == net,
            _ => false,
        }
    }

    /// Whether the two ranges share an address.
    pub fn overlaps(&self, other: &Cidr) -> bool {
        self.contains(other.first()) || other.contains(self.first())
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Cidr::V4 { prefix, .. } | Cidr::V6 { prefix, .. } => {
                write!(f, "{}/{prefix}", self.first())
            }
        }
    }
}

impl FromStr for Cidr {
    type Err = CidrError;

    /// `ADDRESS/PREFIX` or one `ADDRESS`; the address in its standard form only (dotted
    /// decimal without leading zeros, or IPv6 without brackets or zone).
    fn from_str(s: &str) -> Result<Cidr, CidrError> {
        let (addr, prefix) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let addr: IpAddr = addr.parse().map_err(|_| CidrError::Address(s.to_owned()))?;
        let prefix = match prefix {
            None if addr.is_ipv4() => 32,
            None => 128,
            Some(p) if !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) && p.len() <= 3 => {
                p.parse().map_err(|_| CidrError::Prefix(s.to_owned()))?
            }
            Some(_) => return Err(CidrError::Prefix(s.to_owned())),
        };
        Cidr::new(addr, prefix)
    }
}

/// What kind of address a refused one is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Special {
    Unspecified,
    Loopback,
    Private,
    SharedCgnat,
    LinkLocal,
    UniqueLocal,
    SiteLocal,
    Multicast,
    Broadcast,
    Reserved,
    Documentation,
    Benchmarking,
    Ipv4Compatible,
    Nat64LocalUse,
    Teredo,
    Discard,
}

impl Special {
    /// Its name as a metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            Special::Unspecified => "unspecified",
            Special::Loopback => "loopback",
            Special::Private => "private",
            Special::SharedCgnat => "cgnat",
            Special::LinkLocal => "link_local",
            Special::UniqueLocal => "unique_local",
            Special::SiteLocal => "site_local",
            Special::Multicast => "multicast",
            Special::Broadcast => "broadcast",
            Special::Reserved => "reserved",
            Special::Documentation => "documentation",
            Special::Benchmarking => "benchmarking",
            Special::Ipv4Compatible => "ipv4_compatible",
            Special::Nat64LocalUse => "nat64_local",
            Special::Teredo => "teredo",
            Special::Discard => "discard",
        }
    }

    fn describe(self) -> &'static str {
        match self {
            Special::Unspecified => "an unspecified (\"this network\")",
            Special::Loopback => "a loopback",
            Special::Private => "a private",
            Special::SharedCgnat => "a shared (carrier-grade NAT)",
            Special::LinkLocal => "a link-local",
            Special::UniqueLocal => "a unique-local",
            Special::SiteLocal => "a site-local",
            Special::Multicast => "a multicast",
            Special::Broadcast => "the broadcast",
            Special::Reserved => "a reserved",
            Special::Documentation => "a documentation",
            Special::Benchmarking => "a benchmarking",
            Special::Ipv4Compatible => "an IPv4-compatible IPv6",
            Special::Nat64LocalUse => "a local-use NAT64",
            Special::Teredo => "a Teredo",
            Special::Discard => "a discard-only",
        }
    }
}

const LOOPBACK_V4: Cidr = Cidr::v4(127, 0, 0, 0, 8);
const LOOPBACK_V6: Cidr = Cidr::V6 {
    net: 1,
    prefix: 128,
};

/// The IPv4 ranges refused by default, most specific first.
const REFUSED_V4: &[(Cidr, Special)] = &[
    (Cidr::v4(255, 255, 255, 255, 32), Special::Broadcast),
    (Cidr::v4(0, 0, 0, 0, 8), Special::Unspecified),
    (Cidr::v4(10, 0, 0, 0, 8), Special::Private),
    (Cidr::v4(100, 64, 0, 0, 10), Special::SharedCgnat),
    (LOOPBACK_V4, Special::Loopback),
    (Cidr::v4(169, 254, 0, 0, 16), Special::LinkLocal),
    (Cidr::v4(172, 16, 0, 0, 12), Special::Private),
    (Cidr::v4(192, 0, 0, 0, 24), Special::Reserved),
    (Cidr::v4(192, 0, 2, 0, 24), Special::Documentation),
    (Cidr::v4(192, 88, 99, 0, 24), Special::Reserved),
    (Cidr::v4(192, 168, 0, 0, 16), Special::Private),
    (Cidr::v4(198, 18, 0, 0, 15), Special::Benchmarking),
    (Cidr::v4(198, 51, 100, 0, 24), Special::Documentation),
    (Cidr::v4(203, 0, 113, 0, 24), Special::Documentation),
    (Cidr::v4(224, 0, 0, 0, 4), Special::Multicast),
    (Cidr::v4(240, 0, 0, 0, 4), Special::Reserved),
];

/// The IPv6 ranges refused by default (those carrying an IPv4 address are judged by it).
const REFUSED_V6: &[(Cidr, Special)] = &[
    (Cidr::v6([0, 0, 0, 0], 128), Special::Unspecified),
    (LOOPBACK_V6, Special::Loopback),
    (Cidr::v6([0, 0, 0, 0], 96), Special::Ipv4Compatible),
    (Cidr::v6([0x64, 0xff9b, 1, 0], 48), Special::Nat64LocalUse),
    (Cidr::v6([0x100, 0, 0, 0], 64), Special::Discard),
    (Cidr::v6([0x2001, 0, 0, 0], 32), Special::Teredo),
    (Cidr::v6([0x2001, 0xdb8, 0, 0], 32), Special::Documentation),
    (Cidr::v6([0xfc00, 0, 0, 0], 7), Special::UniqueLocal),
    (Cidr::v6([0xfe80, 0, 0, 0], 10), Special::LinkLocal),
    (Cidr::v6([0xfec0, 0, 0, 0], 10), Special::SiteLocal),
    (Cidr::v6([0xff00, 0, 0, 0], 8), Special::Multicast),
];

/// The IPv4 address an IPv6 address stands for, where it carries one: IPv4-mapped
/// (`::ffff:a.b.c.d`), IPv4-translated (`::ffff:0:a.b.c.d`), NAT64 (`64:ff9b::a.b.c.d`) and
/// 6to4 (`2002:AABB:CCDD::/48`). A connection to one of these reaches that IPv4 address.
pub fn embedded_v4(ip: Ipv6Addr) -> Option<Ipv4Addr> {
    let bits = u128::from(ip);
    let low32 = Ipv4Addr::from(bits as u32);
    let segments = ip.segments();
    if let Some(v4) = ip.to_ipv4_mapped() {
        Some(v4)
    } else if bits >> 32 == 0xffff_0000 || bits >> 32 == 0x0064_ff9b_0000_0000_0000_0000 {
        Some(low32)
    } else if segments[0] == 0x2002 {
        Some(Ipv4Addr::from((bits >> 80) as u32))
    } else {
        None
    }
}

/// Why the policy refuses a destination.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{target} is {} address ({range}), which drains may not reach unless the operator allows it (--drain-allow-net)", .special.describe())]
pub struct Refusal {
    /// The destination as it was written or resolved (`localhost`, `::ffff:10.0.0.1`).
    pub target: String,
    /// What kind of address it is.
    pub special: Special,
    /// The refused range it is in.
    pub range: Cidr,
}

/// The address policy: refuse internal addresses, but for the ranges the operator allows.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AddressPolicy {
    allowed: Vec<Cidr>,
}

impl AddressPolicy {
    /// The loopback ranges, `127.0.0.0/8` and `::1/128` (`paas up` opens them: one machine).
    pub const LOOPBACK: [Cidr; 2] = [LOOPBACK_V4, LOOPBACK_V6];

    /// The default policy, with `allowed` ranges opened.
    pub fn allowing(allowed: impl IntoIterator<Item = Cidr>) -> AddressPolicy {
        AddressPolicy {
            allowed: allowed.into_iter().collect(),
        }
    }

    /// Opens one more range.
    pub fn allow(&mut self, range: Cidr) {
        if !self.allowed.contains(&range) {
            self.allowed.push(range);
        }
    }

    /// The ranges the operator opened.
    pub fn allowed(&self) -> &[Cidr] {
        &self.allowed
    }

    /// Whether a drain may connect to `ip`.
    pub fn allows(&self, ip: IpAddr) -> bool {
        self.check(ip).is_ok()
    }

    /// `Ok` if a drain may connect to `ip`, else why not.
    pub fn check(&self, ip: IpAddr) -> Result<(), Refusal> {
        self.judge(ip, &ip.to_string())
    }

    fn judge(&self, ip: IpAddr, target: &str) -> Result<(), Refusal> {
        if self.allowed.iter().any(|r| r.contains(ip)) {
            return Ok(());
        }
        let table = match ip {
            IpAddr::V4(_) => REFUSED_V4,
            IpAddr::V6(v6) => match embedded_v4(v6) {
                Some(v4) => return self.judge(IpAddr::V4(v4), &format!("{target} ({v4})")),
                None => REFUSED_V6,
            },
        };
        match table.iter().find(|(range, _)| range.contains(ip)) {
            Some(&(range, special)) => Err(Refusal {
                target: target.to_owned(),
                special,
                range,
            }),
            None => Ok(()),
        }
    }

    /// What can be judged of a drain's host before connecting: an address, and the names that
    /// always mean loopback (`localhost`, `*.localhost`: allowed only where the operator opened
    /// some loopback range; where they lead is judged again at every connect, as for any name).
    pub fn check_host(&self, host: &Host) -> Result<(), Refusal> {
        match host {
            Host::Ip(ip) => self.check(*ip),
            Host::Name(name) if is_localhost(name) => {
                let loopback = AddressPolicy::LOOPBACK;
                if self
                    .allowed
                    .iter()
                    .any(|a| loopback.iter().any(|l| a.overlaps(l)))
                {
                    return Ok(());
                }
                Err(Refusal {
                    target: name.clone(),
                    special: Special::Loopback,
                    range: loopback[0],
                })
            }
            Host::Name(_) => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests;
