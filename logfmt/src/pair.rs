//! The borrowed output of the parser: a key and, unless the key stood bare, its value.

use std::borrow::Cow;
use std::fmt;

use crate::unescape::unescape;
use crate::units::{self, Quantity};

/// One `key=value` pair (or a bare `key`) of a line, borrowed from the line.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Pair<'a> {
    /// The key's bytes, exactly as written. Never contains whitespace or `=`; may be empty
    /// when the line had `=value` with no key (a lenient recovery, see the crate docs).
    pub key: &'a [u8],
    /// `None` for a bare key (`debug`), `Some` for `key=`, `key=""` and every other value.
    pub value: Option<Value<'a>>,
}

impl<'a> Pair<'a> {
    /// The key as text, if it is valid UTF-8.
    pub fn key_str(&self) -> Option<&'a str> {
        std::str::from_utf8(self.key).ok()
    }

    /// The unescaped value, with a bare key read as an empty value.
    pub fn value_bytes(&self) -> Cow<'a, [u8]> {
        match &self.value {
            Some(v) => v.unescaped(),
            None => Cow::Borrowed(&[]),
        }
    }
}

impl fmt::Debug for Pair<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", String::from_utf8_lossy(self.key))?;
        if let Some(v) = &self.value {
            write!(f, "={v:?}")?;
        }
        Ok(())
    }
}

const QUOTED: u8 = 1;
const ESCAPED: u8 = 2;
const UNTERMINATED: u8 = 4;

/// A value as written in the line: its raw bytes (without the surrounding quotes) and how it
/// was written. Unescaping happens only when asked, and borrows when there is nothing to undo.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Value<'a> {
    raw: &'a [u8],
    flags: u8,
}

impl<'a> Value<'a> {
    /// An unquoted value.
    pub(crate) const fn plain(raw: &'a [u8]) -> Self {
        Value { raw, flags: 0 }
    }

    /// A quoted value: `escaped` when a backslash occurs in it, `terminated` when its closing
    /// quote was found.
    pub(crate) const fn quoted(raw: &'a [u8], escaped: bool, terminated: bool) -> Self {
        let mut flags = QUOTED;
        if escaped {
            flags |= ESCAPED;
        }
        if !terminated {
            flags |= UNTERMINATED;
        }
        Value { raw, flags }
    }

    /// The bytes between the quotes (or the whole unquoted value), escapes left as written.
    pub fn raw(&self) -> &'a [u8] {
        self.raw
    }

    /// Whether the value was written in double quotes.
    pub fn is_quoted(&self) -> bool {
        self.flags & QUOTED != 0
    }

    /// Whether a quoted value ran to the end of the line without its closing quote.
    pub fn is_unterminated(&self) -> bool {
        self.flags & UNTERMINATED != 0
    }

    /// Whether the value is empty (`k=` or `k=""`).
    pub fn is_empty(&self) -> bool {
        self.raw.is_empty()
    }

    /// The value with escapes undone (`\"`, `\\`, `\/`, `\'`, `\b`, `\f`, `\n`, `\r`, `\t`,
    /// `\uXXXX`); borrowed unless the value is quoted and holds a backslash.
    pub fn unescaped(&self) -> Cow<'a, [u8]> {
        if self.flags & ESCAPED != 0 {
            Cow::Owned(unescape(self.raw))
        } else {
            Cow::Borrowed(self.raw)
        }
    }

    /// The unescaped value as text, if it is valid UTF-8.
    pub fn as_str(&self) -> Option<Cow<'a, str>> {
        match self.unescaped() {
            Cow::Borrowed(b) => std::str::from_utf8(b).ok().map(Cow::Borrowed),
            Cow::Owned(b) => String::from_utf8(b).ok().map(Cow::Owned),
        }
    }

    /// The unescaped value as text, invalid UTF-8 replaced by U+FFFD.
    pub fn to_str_lossy(&self) -> Cow<'a, str> {
        match self.unescaped() {
            Cow::Borrowed(b) => String::from_utf8_lossy(b),
            Cow::Owned(b) => Cow::Owned(String::from_utf8_lossy(&b).into_owned()),
        }
    }

    /// A decimal integer, with an optional sign: `200`, `-3`.
    pub fn as_i64(&self) -> Option<i64> {
        units::parse_i64(&self.unescaped())
    }

    /// A decimal number: `1.5`, `-2`, `1e3`.
    pub fn as_f64(&self) -> Option<f64> {
        units::parse_f64(&self.unescaped())
    }

    /// `true`/`false` (also `t`/`f`, `1`/`0`, `yes`/`no`, `on`/`off`, any case).
    pub fn as_bool(&self) -> Option<bool> {
        units::parse_bool(&self.unescaped())
    }

    /// A duration with units: `12ms`, `1.5s`, `3m` (minutes), `1h30m`, `250us`/`250µs`, `9ns`;
    /// `None` for a negative one or one too long for [`std::time::Duration`].
    pub fn as_duration(&self) -> Option<std::time::Duration> {
        match units::parse_quantity(&self.unescaped())? {
            // None for a negative duration or one too long for `Duration` (2^64 s and up).
            Quantity::Duration(s) => std::time::Duration::try_from_secs_f64(s).ok(),
            _ => None,
        }
    }

    /// A size in bytes: `512`, `512B`, `212MB` (SI: `kB`, `MB`, `GB`, `TB`) or `4MiB` (binary:
    /// `KiB`, `MiB`, `GiB`, `TiB`), `100bytes`. A plain number counts as bytes.
    pub fn as_bytes(&self) -> Option<f64> {
        match units::parse_quantity(&self.unescaped())? {
            Quantity::Bytes(b) => Some(b),
            Quantity::Number(n) => Some(n),
            _ => None,
        }
    }

    /// The value as a number with its unit: see [`Quantity`].
    pub fn quantity(&self) -> Option<Quantity> {
        units::parse_quantity(&self.unescaped())
    }
}

impl fmt::Debug for Value<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.to_str_lossy())?;
        if self.is_unterminated() {
            write!(f, "(unterminated)")?;
        }
        Ok(())
    }
}
