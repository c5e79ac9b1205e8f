//! A zero-copy logfmt parser and encoder: the pairs of a line as borrowed slices, typed values
//! with units, l2met metrics, and the filter language the router's tools share.
//!
//! ```
//! let line = br#"at=info method=GET path="/api/items?x=1" service=37ms status=200 debug"#;
//! let mut pairs = logfmt::pairs(line);
//! let first = pairs.next().unwrap();
//! assert_eq!((first.key, first.value.unwrap().raw()), (&b"at"[..], &b"info"[..]));
//! assert_eq!(logfmt::get(line, b"path").unwrap().raw(), b"/api/items?x=1");
//! assert_eq!(logfmt::get(line, b"status").unwrap().as_i64(), Some(200));
//!
//! let slow: logfmt::Predicate = "service>30ms status<500".parse().unwrap();
//! assert!(slow.matches(line));
//!
//! // The fastest way to see every pair: internal iteration.
//! let mut n = 0;
//! logfmt::for_each_pair(line, |_| n += 1);
//! assert_eq!(n, 6);
//! ```
//!
//! # Grammar
//!
//! A line is bytes, not text: invalid UTF-8 is carried through untouched.
//!
//! ```text
//! line     = *(space / pair)
//! space    = %x00-20                      ; space, tab, newline and every control byte
//! pair     = key ["=" value]              ; no "=": a bare key (`debug`), value None
//! key      = *(any byte but space and "=")
//! value    = quoted / unquoted
//! quoted   = DQUOTE *(escape / plain) [DQUOTE]
//! escape   = "\" [any byte]
//! plain    = any byte but DQUOTE and "\"
//! unquoted = *(any byte but space)        ; may be empty: `k=` and `k=""` are empty values
//! ```
//!
//! A quoted value ends at its closing quote, and the next pair may start right after it
//! (`a="x"b=y` is two pairs, as in go-logfmt). Escapes are undone only when asked for
//! ([`Value::unescaped`]): `\"`, `\\`, `\/`, `\'`, `\b`, `\f`, `\n`, `\r`, `\t`, `\uXXXX`
//! (surrogate pairs joined, a lone surrogate read as U+FFFD).
//!
//! # Where go-logfmt fails, we recover
//!
//! Every line go-logfmt accepts gives the same pairs here (tested against go-logfmt itself).
//! Where go-logfmt stops with a syntax error, the parser reads on, and [`validate`] reports
//! the error go-logfmt would:
//!
//! | input | go-logfmt | here |
//! |---|---|---|
//! | `k=b=ar`, `k=b"ar` | unexpected `=` / `"` | the value is `b=ar` / `b"ar`: an unquoted value runs to the next space |
//! | `k"ey=bar`, `"k"=v` | unexpected `"` | the key is `k"ey` / `"k"`: a key runs to the next space or `=` |
//! | `=bar` | unexpected `=` | a pair with an empty key and the value `bar` |
//! | `msg="no end` | unterminated quoted value | the value is `no end`, marked [`Value::is_unterminated`] |
//! | `a="\x"` | invalid quoted value | the unknown escape stays as written: `\x` |
//! | `\x80=v` | invalid key | the key is the byte `\x80` |
//!
//! Duplicated keys are all kept, in order. The encoder writes only strict logfmt, and
//! [`canonicalize`] turns any line into it.

#![warn(missing_docs)]

#[doc(hidden)]
pub mod corpus;
mod encode;
mod l2met;
mod pair;
mod predicate;
pub mod reference;
mod scan;
mod strict;
mod unescape;
mod units;

pub use encode::{EncodeError, Encoder, canonicalize, is_valid_key};
pub use l2met::{Metric, MetricError, MetricKind, Metrics, metrics};
pub use pair::{Pair, Value};
pub use predicate::{
    Attributes, CompareTerm, NoAttributes, Predicate, PredicateError, Term, TermKind, Terms,
    contains_text, is_word_byte,
};
pub use scan::{Pairs, for_each_pair, get, pairs};
pub use strict::{SyntaxError, validate};
pub use units::{Quantity, parse_duration, parse_quantity};
