//! Drain URLs: `syslog://` (TCP), `syslog+tls://`, `syslog+udp://`, `https://`, and `http://`
//! only for loopback or when the operator allows it. Default ports as Logplex's: 601 for
//! syslog (TCP, TLS), 514 for UDP, 443/80 for HTTP(S). The host is read strictly
//! (`host.rs`); whether a drain may go there is the address policy's to say (`policy.rs`).

use std::fmt;

use crate::host::{Host, is_localhost};

/// How a drain is reached.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scheme {
    /// RFC 5424 over TCP, RFC 6587 octet counting.
    Syslog,
    /// The same over TLS (RFC 5425).
    SyslogTls,
    /// One datagram per message (RFC 5426).
    SyslogUdp,
    /// `application/logplex-1` batches over HTTPS.
    Https,
    /// The same over plain HTTP (loopback, or allowed by the operator).
    Http,
    /// Syslog messages over RELP (rsyslog's acknowledged protocol), TCP.
    Relp,
}

impl Scheme {
    /// Whether the receiver acknowledges what it took (a 2xx, a RELP `200`): what was sent
    /// is then `delivered` as well.
    pub fn acknowledges(self) -> bool {
        matches!(self, Scheme::Https | Scheme::Http | Scheme::Relp)
    }
}

/// A parsed drain URL.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DrainUrl {
    /// As given.
    pub raw: String,
    /// How to reach it.
    pub scheme: Scheme,
    /// Host name or address (IPv6 without brackets).
    pub host: String,
    /// Port.
    pub port: u16,
    /// Path and query, for HTTP(S) (`/` when none).
    pub path: String,
    /// The host, read: an address or a name.
    target: Host,
}

/// Why a URL is not a drain.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct UrlError(pub String);

impl fmt::Display for DrainUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.raw)
    }
}

fn is_loopback(host: &Host) -> bool {
    match host {
        Host::Ip(std::net::IpAddr::V6(v6)) => v6
            .to_ipv4_mapped()
            .map_or(v6.is_loopback(), |v4| v4.is_loopback()),
        Host::Ip(ip) => ip.is_loopback(),
        Host::Name(name) => is_localhost(name),
    }
}

impl DrainUrl {
    /// Reads a drain URL; `allow_http` permits `http://` to any host.
    pub fn parse(raw: &str, allow_http: bool) -> Result<DrainUrl, UrlError> {
        let bad = |why: &str| UrlError(format!("{raw:?} is not a drain URL: {why}"));
        if raw.len() > 2048 || raw.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(bad("too long, or has spaces or control characters"));
        }
        let (scheme, rest) = raw.split_once("://").ok_or_else(|| bad("no scheme"))?;
        let (scheme, default_port) = match scheme.to_ascii_lowercase().as_str() {
            "syslog" | "syslog+tcp" => (Scheme::Syslog, 601),
            "syslog+tls" => (Scheme::SyslogTls, 6514),
            "syslog+udp" => (Scheme::SyslogUdp, 514),
            "https" => (Scheme::Https, 443),
            "http" => (Scheme::Http, 80),
            // rsyslog's documentation listens for RELP on 20514; there is no registered port.
            "relp" => (Scheme::Relp, 20514),
            other => {
                return Err(bad(&format!(
                    "scheme {other:?}; use syslog://, syslog+tls://, syslog+udp://, relp:// or https://"
                )));
            }
        };
        let (authority, path) = match rest.find(['/', '?']) {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, ""),
        };
        if authority.contains('@') {
            return Err(bad("credentials in the URL are not supported here"));
        }
        let (host, port, bracketed) = if let Some(v6) = authority.strip_prefix('[') {
            let (host, after) = v6.split_once(']').ok_or_else(|| bad("unclosed '['"))?;
            match after {
                "" => (host, None, true),
                _ => match after.strip_prefix(':') {
                    Some(port) => (host, Some(port), true),
                    None => return Err(bad("something follows ']' that is not a port")),
                },
            }
        } else {
            match authority.split_once(':') {
                Some((h, p)) if !p.contains(':') => (h, Some(p), false),
                Some(_) => return Err(bad("an IPv6 address must be written in brackets ([::1])")),
                None => (authority, None, false),
            }
        };
        let target = Host::parse(host, bracketed).map_err(bad)?;
        let port = match port {
            None => default_port,
            Some(p) => match p.parse::<u16>() {
                Ok(p) if p > 0 => p,
                _ => return Err(bad("the port is not a number from 1 to 65535")),
            },
        };
        if scheme == Scheme::Http && !allow_http && !is_loopback(&target) {
            return Err(bad(
                "http:// is allowed only to loopback; use https:// (or the operator's --drain-allow-http)",
            ));
        }
        let is_syslog = matches!(
            scheme,
            Scheme::Syslog | Scheme::SyslogTls | Scheme::SyslogUdp | Scheme::Relp
        );
        if is_syslog && !path.is_empty() && path != "/" {
            return Err(bad("a syslog drain has no path"));
        }
        Ok(DrainUrl {
            raw: raw.to_owned(),
            scheme,
            host: host.to_owned(),
            port,
            path: if path.is_empty() || path.starts_with('?') {
                format!("/{path}")
            } else {
                path.to_owned()
            },
            target,
        })
    }

    /// The host, read: an address (connected to as it is) or a name (resolved at each
    /// connect).
    pub fn target(&self) -> &Host {
        &self.target
    }

    /// Whether it is reached over TLS.
    pub fn tls(&self) -> bool {
        matches!(self.scheme, Scheme::SyslogTls | Scheme::Https)
    }

    /// `host:port` (IPv6 in brackets).
    pub fn authority(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }

    /// Whether the query asks for gzip bodies (`?gzip=true`), for HTTP(S) drains.
    pub fn gzip(&self) -> bool {
        self.path
            .split_once('?')
            .is_some_and(|(_, q)| q.split('&').any(|kv| kv == "gzip=true" || kv == "gzip=1"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schemes_and_default_ports() {
        let u = DrainUrl::parse("syslog://logs.example.com", false).unwrap();
        assert_eq!((u.scheme, u.port), (Scheme::Syslog, 601));
        let u = DrainUrl::parse("syslog+tls://logs.example.com:6514", false).unwrap();
        assert_eq!((u.scheme, u.port, u.tls()), (Scheme::SyslogTls, 6514, true));
        let u = DrainUrl::parse("syslog+udp://10.0.0.1", false).unwrap();
        assert_eq!((u.scheme, u.port), (Scheme::SyslogUdp, 514));
        let u = DrainUrl::parse("https://user.example/logs?gzip=true", false).unwrap();
        assert_eq!(
            (u.port, u.path.as_str(), u.gzip()),
            (443, "/logs?gzip=true", true)
        );
        let u = DrainUrl::parse("http://127.0.0.1:8080", false).unwrap();
        assert_eq!((u.scheme, u.path.as_str()), (Scheme::Http, "/"));
        let u = DrainUrl::parse("syslog://[::1]:1514", false).unwrap();
        assert_eq!(
            (u.host.as_str(), u.authority()),
            ("::1", "[::1]:1514".to_owned())
        );
    }

    #[test]
    fn malformed_urls_say_why() {
        for (bad, why) in [
            ("logs.example.com", "no scheme"),
            ("ftp://x", "scheme"),
            ("syslog://", "no host"),
            ("syslog://x:0", "port"),
            ("syslog://x:99999", "port"),
            ("syslog://x/path", "no path"),
            ("http://example.com", "loopback"),
            ("https://user:pw@example.com", "credentials"),
            ("https://exa mple.com", "spaces"),
            ("syslog://ex\u{0}ample", "control"),
            ("syslog://[::1", "unclosed"),
            ("syslog://a/b", "no path"),
            ("https://bad_host!", "host"),
            ("syslog://0x7f000001:601", "looks like an IP address"),
            ("syslog://2130706433", "looks like an IP address"),
            ("syslog://0177.0.0.1", "looks like an IP address"),
            ("syslog://127.1:601", "looks like an IP address"),
            ("syslog://::1", "brackets"),
            ("syslog://fe80::1:601", "brackets"),
            ("syslog://[::1]x", "not a port"),
            ("syslog://[fe80::1%25eth0]", "not an IPv6 address"),
            ("https://a..example.com/", "empty label"),
            ("https://-a.example.com/", "starts or ends"),
        ] {
            let e = DrainUrl::parse(bad, false).unwrap_err();
            assert!(e.0.contains(why), "{bad}: {e}");
        }
        assert!(DrainUrl::parse("http://example.com", true).is_ok());
    }

    #[test]
    fn the_host_is_read_once() {
        let u = DrainUrl::parse("syslog://[::ffff:169.254.169.254]:601", false).unwrap();
        assert_eq!(
            u.target(),
            &Host::Ip("::ffff:169.254.169.254".parse().unwrap())
        );
        let u = DrainUrl::parse("https://Logs.Example.com/x", false).unwrap();
        assert_eq!(u.target(), &Host::Name("Logs.Example.com".into()));
        assert!(DrainUrl::parse("http://[::ffff:127.0.0.1]:80", false).is_ok());
        assert!(DrainUrl::parse("http://api.localhost:80", false).is_ok());
    }
}
