//! Secrets: made from a UUID, known by their SHA-256 digest, compared in constant time.
//!
//! API keys are stored as digests only, so a copy of `registry.json` hands out no working
//! key. Ingest tokens are kept whole (they are shown to the app's key holders, as Logplex
//! shows them), but every look-up goes through a digest and a constant-time comparison, so no
//! secret is ever compared byte by byte against a guess.

use std::fmt;

/// A secret's SHA-256 digest.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct Digest([u8; 32]);

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Digest({}…)", &self.to_hex()[..8])
    }
}

impl Digest {
    /// The digest of `secret`.
    pub(crate) fn of(secret: &[u8]) -> Digest {
        let d = ring::digest::digest(&ring::digest::SHA256, secret);
        let mut out = [0u8; 32];
        out.copy_from_slice(d.as_ref());
        Digest(out)
    }

    /// Lowercase hex, as the file keeps it.
    pub(crate) fn to_hex(self) -> String {
        use std::fmt::Write as _;
        self.0.iter().fold(String::with_capacity(64), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
    }

    /// Reads 64 hex digits.
    pub(crate) fn from_hex(hex: &str) -> Option<Digest> {
        let bytes = hex.as_bytes();
        if bytes.len() != 64 {
            return None;
        }
        let mut out = [0u8; 32];
        for (o, pair) in out.iter_mut().zip(bytes.chunks_exact(2)) {
            let s = std::str::from_utf8(pair).ok()?;
            *o = u8::from_str_radix(s, 16).ok()?;
        }
        Some(Digest(out))
    }
}

/// A secret's SHA-256 digest in lowercase hex: how a cluster's store keys tokens.
pub fn token_digest(secret: &str) -> String {
    Digest::of(secret.as_bytes()).to_hex()
}

/// A new secret: `prefix` and a random UUID (122 random bits).
pub(crate) fn new_secret(prefix: &str) -> String {
    format!("{prefix}{}", uuid::Uuid::new_v4())
}

/// Whether `a` and `b` are equal, in time that depends on their lengths only.
pub(crate) fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The last four characters of a secret: enough to tell keys apart in a list.
pub(crate) fn hint(secret: &str) -> String {
    let start = secret.char_indices().rev().nth(3).map_or(0, |(i, _)| i);
    secret[start..].to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digests_round_trip_through_hex() {
        let d = Digest::of(b"k.secret");
        assert_eq!(Digest::from_hex(&d.to_hex()), Some(d));
        assert_eq!(
            Digest::of(b"").to_hex(),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        for bad in ["", "zz", &"g".repeat(64), &"a".repeat(63)] {
            assert_eq!(Digest::from_hex(bad), None, "{bad}");
        }
    }

    #[test]
    fn comparison_and_hints() {
        assert!(constant_time_eq(b"t.abc", b"t.abc"));
        assert!(!constant_time_eq(b"t.abc", b"t.abd"));
        assert!(!constant_time_eq(b"t.abc", b"t.ab"));
        assert_eq!(hint("k.0123456789"), "6789");
        assert_eq!(hint("ab"), "ab");
        assert_eq!(hint("k.ünïcode"), "code");
    }
}
