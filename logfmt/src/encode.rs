//! Writing logfmt: keys as they are, values quoted and escaped exactly when a reader needs it.

use crate::scan::pairs;

/// Why a pair could not be written.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum EncodeError {
    /// A key must be non-empty UTF-8 without spaces, control bytes, `=`, `"` or U+FFFD:
    /// logfmt has no way to quote a key.
    #[error("invalid logfmt key {0:?}: keys must be non-empty, without spaces, '=' or '\"'")]
    InvalidKey(String),
}

/// Appends pairs to a buffer as one logfmt line (no newline), separated by single spaces.
///
/// ```
/// let mut line = Vec::new();
/// logfmt::Encoder::new(&mut line)
///     .pair(b"at", Some(b"info"))?
///     .pair(b"msg", Some(b"hello world"))?
///     .pair(b"debug", None)?;
/// assert_eq!(line, b"at=info msg=\"hello world\" debug");
/// # Ok::<(), logfmt::EncodeError>(())
/// ```
#[derive(Debug)]
pub struct Encoder<'b> {
    out: &'b mut Vec<u8>,
    empty: bool,
}

impl<'b> Encoder<'b> {
    /// An encoder appending to `out`; a space is written before the first pair if `out` already
    /// holds something.
    pub fn new(out: &'b mut Vec<u8>) -> Self {
        let empty = out.is_empty();
        Encoder { out, empty }
    }

    /// Writes `key=value`, or a bare `key` for `None`. The value is written as raw bytes:
    /// quoted when it has a space, control byte, `=` or `"`; escaped inside
    /// the quotes as JSON strings are. Fails, writing nothing, on an invalid key.
    pub fn pair(&mut self, key: &[u8], value: Option<&[u8]>) -> Result<&mut Self, EncodeError> {
        if !is_valid_key(key) {
            return Err(EncodeError::InvalidKey(
                String::from_utf8_lossy(key).into_owned(),
            ));
        }
        self.write(key, value);
        Ok(self)
    }

    /// Writes the pair with an invalid key repaired: each byte a key cannot hold (and each
    /// invalid UTF-8 sequence) becomes `_`, and an empty key becomes `_`.
    pub fn pair_lossy(&mut self, key: &[u8], value: Option<&[u8]>) -> &mut Self {
        if is_valid_key(key) {
            self.write(key, value);
        } else {
            self.write(repair_key(key).as_bytes(), value);
        }
        self
    }

    fn write(&mut self, key: &[u8], value: Option<&[u8]>) {
        if !self.empty {
            self.out.push(b' ');
        }
        self.empty = false;
        self.out.extend_from_slice(key);
        if let Some(v) = value {
            self.out.push(b'=');
            write_value(self.out, v);
        }
    }
}

/// Whether `key` can be written as a logfmt key (see [`EncodeError::InvalidKey`]).
pub fn is_valid_key(key: &[u8]) -> bool {
    !key.is_empty()
        && key.iter().all(|&b| b > b' ' && b != b'=' && b != b'"')
        && (key.is_ascii()
            || std::str::from_utf8(key).is_ok_and(|s| !s.contains(char::REPLACEMENT_CHARACTER)))
}

fn repair_key(key: &[u8]) -> String {
    let repaired: String = String::from_utf8_lossy(key)
        .chars()
        .map(|c| match c {
            '\u{0}'..=' ' | '=' | '"' | char::REPLACEMENT_CHARACTER => '_',
            c => c,
        })
        .collect();
    if repaired.is_empty() {
        "_".to_owned()
    } else {
        repaired
    }
}

/// Bytes that force quotes around a value: space and control bytes, `=`, `"`.
fn needs_quotes(value: &[u8]) -> bool {
    value.iter().any(|&b| b <= b' ' || b == b'=' || b == b'"')
}

/// Bytes written escaped inside quotes.
fn needs_escape(b: u8) -> bool {
    b < b' ' || b == b'"' || b == b'\\'
}

fn write_value(out: &mut Vec<u8>, value: &[u8]) {
    if !needs_quotes(value) {
        out.extend_from_slice(value);
        return;
    }
    out.reserve(value.len() + 2);
    out.push(b'"');
    let mut rest = value;
    // Copy the runs between escapes whole.
    while let Some(at) = rest.iter().position(|&b| needs_escape(b)) {
        out.extend_from_slice(&rest[..at]);
        match rest[at] {
            b'"' => out.extend_from_slice(b"\\\""),
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            b'\t' => out.extend_from_slice(b"\\t"),
            c => {
                const HEX: &[u8; 16] = b"0123456789abcdef";
                out.extend_from_slice(&[
                    b'\\',
                    b'u',
                    b'0',
                    b'0',
                    HEX[usize::from(c >> 4)],
                    HEX[usize::from(c & 15)],
                ]);
            }
        }
        rest = &rest[at + 1..];
    }
    out.extend_from_slice(rest);
    out.push(b'"');
}

/// The canonical form of a line: its pairs as [`crate::pairs`] reads them, written back by the
/// encoder (single spaces, minimal quoting, JSON escapes, invalid keys repaired as
/// [`Encoder::pair_lossy`] does). Canonical lines are strict logfmt, and canonicalizing one
/// again changes nothing.
///
/// ```
/// assert_eq!(logfmt::canonicalize(b"  a=\"1\"   b=x=y  c"), b"a=1 b=\"x=y\" c");
/// ```
pub fn canonicalize(line: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(line.len());
    let mut enc = Encoder::new(&mut out);
    for p in pairs(line) {
        match p.value {
            Some(v) => enc.pair_lossy(p.key, Some(&v.unescaped())),
            None => enc.pair_lossy(p.key, None),
        };
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(key: &[u8], value: Option<&[u8]>) -> Result<String, EncodeError> {
        let mut out = Vec::new();
        Encoder::new(&mut out).pair(key, value)?;
        Ok(String::from_utf8_lossy(&out).into_owned())
    }

    /// go-logfmt's string cases (encode_test.go, `TestEncodeKeyval`).
    #[test]
    fn go_logfmt_encode_vectors() {
        let cases: &[(&[u8], &[u8], &str)] = &[
            (b"k", b"v", "k=v"),
            (b"\\", b"v", "\\=v"),
            (b"k", b"", "k="),
            (b"k", b"<nil>", "k=<nil>"),
            (b"k", b"v v", "k=\"v v\""),
            (b"k", b" ", "k=\" \""),
            (b"k", b"\"", "k=\"\\\"\""),
            (b"k", b"=", "k=\"=\""),
            (b"k", b"\\", "k=\\"),
            (b"k", b"=\\", "k=\"=\\\\\""),
            (b"k", b"\\\"", "k=\"\\\\\\\"\""),
            (b"k", "\u{fffd}\u{0}".as_bytes(), "k=\"\u{fffd}\\u0000\""),
        ];
        for &(k, v, want) in cases {
            assert_eq!(one(k, Some(v)).as_deref(), Ok(want));
        }
    }

    #[test]
    fn invalid_keys_are_refused() {
        for key in [
            &b""[..],
            b"a b",
            b"a=b",
            b"a\"b",
            b"\x80",
            "\u{fffd}".as_bytes(),
            b"a\tb",
        ] {
            assert!(
                matches!(one(key, Some(b"v")), Err(EncodeError::InvalidKey(_))),
                "{key:?}"
            );
        }
    }

    #[test]
    fn bare_keys_and_separators() {
        let mut out = b"prefix".to_vec();
        Encoder::new(&mut out)
            .pair(b"a", None)
            .unwrap()
            .pair(b"b", Some(b"1"))
            .unwrap();
        assert_eq!(out, b"prefix a b=1");
    }

    #[test]
    fn canonical_form() {
        assert_eq!(canonicalize(b"a=\"\\u0041\" b=\"x\\qy\""), b"a=A b=x\\qy");
        assert_eq!(canonicalize(b"=v k\"ey=1 \xff=2"), b"_=v k_ey=1 _=2");
        assert_eq!(
            canonicalize(b"msg=\"unterminated here"),
            b"msg=\"unterminated here\""
        );
        assert_eq!(canonicalize(b"\t\n "), b"");
    }
}
