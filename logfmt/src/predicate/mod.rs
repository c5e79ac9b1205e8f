//! Filters over logfmt lines: `status>=500 service>1s`, shared by `paas logfmt --where`, tail
//! sessions and queries.
//!
//! # Grammar
//!
//! ```text
//! expr    = and *( ("or" / "||") and )
//! and     = unary *( ["and" / "&&"] unary )      ; side by side means "and"
//! unary   = ("not" / "!") unary / "(" expr ")" / term
//! term    = phrase / key [op value]              ; a bare key: the key is present
//! phrase  = DQUOTE *(escaped byte) DQUOTE        ; standing alone: full text
//! op      = "=" / "!=" / ">=" / "<=" / ">" / "<" / "~" / "!~"
//! value   = DQUOTE *(escaped byte) DQUOTE / 1*(any byte but space and ")")
//! key     = 1*(any byte but space, "=", "!", "<", ">", "~", "(", ")", DQUOTE)
//! ```
//!
//! # Meaning
//!
//! A term holds when **some** pair of the line with that key satisfies it (keys may repeat).
//! - `k=v`: the value equals `v`, as bytes after unescaping, or as quantities (`service=1s`
//!   holds for `service=1000ms`). An unquoted `v` with `*` is a glob: `path=/api/*`.
//! - `k>v`, `k>=v`, `k<v`, `k<=v`: compare as numbers with units (`service>1s`,
//!   `bytes>1MB`, `status>=500`); a plain number compares with a size as bytes. When neither
//!   side is a number they compare as bytes (ISO timestamps: `time>2026-11-21T12:00`); a number
//!   against a word, or a duration against a size, never holds.
//! - `k~v`: the value contains `v`.
//! - `k!=v`, `k!~v`: the key is present and no value of it equals (contains) `v`. To include
//!   lines without the key, write `not k=v`.
//! - `k` alone: the key is present; `!k`: it is not.
//! - `"timeout"`, `"connection reset"` (a quoted term standing alone): the message contains
//!   the word or phrase, ASCII case-insensitively, at word boundaries (`"time"` does not hold
//!   for `timeout`; a boundary is checked only where the phrase begins or ends with a letter,
//!   digit or `_`). An empty phrase `""` holds for every line.
//!
//! # Attributes
//!
//! [`Predicate::matches`] reads every key from the line's logfmt pairs.
//! [`Predicate::matches_line`] first asks the line's [`Attributes`] (a query's `source`,
//! `process`, `dyno`): a key the attributes know is compared with the attribute's one value
//! instead of the message's pairs, with the same operators; a bare key holds when the
//! attribute is not empty. Where [`Attributes::matches_by_type`] says so, `k=v` also holds for
//! a value `v.N` (`dyno=web` holds for `web.1` and `web.12`, not for `webhook.1`; `dyno=web.1`
//! only for `web.1`).

mod eval;
mod literals;
mod parse;
mod view;

use crate::units::Quantity;

pub use parse::PredicateError;
pub use view::{CompareTerm, Term, TermKind, Terms, contains_text, is_word_byte};

/// A parsed filter; see the module docs for the grammar.
///
/// ```
/// let p: logfmt::Predicate = "status>=500 service>1s".parse().unwrap();
/// assert!(p.matches(b"at=error status=503 service=30001ms"));
/// assert!(!p.matches(b"at=info status=200 service=12ms"));
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct Predicate {
    expr: Expr,
}

impl Predicate {
    /// How deep `(`, `not` and `!` may nest before the text is refused.
    pub const MAX_DEPTH: usize = parse::MAX_DEPTH;
    /// The longest filter text read, in bytes.
    pub const MAX_LEN: usize = parse::MAX_LEN;
}

#[derive(Clone, Debug, PartialEq)]
enum Expr {
    And(Vec<Expr>),
    Or(Vec<Expr>),
    Not(Box<Expr>),
    Present(Vec<u8>),
    Compare(Compare),
    /// A word or phrase of the message, ASCII lower case.
    Text(Vec<u8>),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Op {
    Eq,
    Ne,
    Gt,
    Ge,
    Lt,
    Le,
    Contains,
    NotContains,
}

#[derive(Clone, Debug, PartialEq)]
struct Compare {
    key: Vec<u8>,
    op: Op,
    /// The value to compare with, unescaped.
    text: Vec<u8>,
    /// The value as a number with units, if it is one.
    quantity: Option<Quantity>,
    /// An unquoted value with `*`.
    glob: bool,
}

/// The attributes of a line besides its message (its source and process, say), which a
/// filter names as keys when it is evaluated with [`Predicate::matches_line`].
///
/// ```
/// struct Router;
/// impl logfmt::Attributes for Router {
///     fn attribute(&self, key: &[u8]) -> Option<&[u8]> {
///         match key {
///             b"source" => Some(b"paas"),
///             b"process" | b"dyno" => Some(b"web.2"),
///             _ => None,
///         }
///     }
///     fn matches_by_type(&self, key: &[u8]) -> bool {
///         key == b"dyno"
///     }
/// }
/// let p: logfmt::Predicate = "source=paas dyno=web status>=500".parse().unwrap();
/// assert!(p.matches_line(b"status=503", &Router));
/// assert!(!p.matches(b"status=503"), "without attributes, `source` is a logfmt key");
/// ```
pub trait Attributes {
    /// The value of the attribute `key`, or `None` when `key` is no attribute (then the
    /// message's logfmt pairs are read).
    fn attribute(&self, key: &[u8]) -> Option<&[u8]>;

    /// Whether `key=v` also holds for the value `v.N` (a dyno type for each of its dynos).
    fn matches_by_type(&self, key: &[u8]) -> bool {
        let _ = key;
        false
    }
}

/// No attributes: every key is a logfmt key of the line.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoAttributes;

impl Attributes for NoAttributes {
    fn attribute(&self, _key: &[u8]) -> Option<&[u8]> {
        None
    }
}

impl Predicate {
    /// Whether `line` satisfies the predicate, every key read from its logfmt pairs.
    pub fn matches(&self, line: &[u8]) -> bool {
        self.expr.matches(line, &NoAttributes)
    }

    /// Whether a line with this `message` and these attributes satisfies the predicate: keys
    /// that `attrs` knows are its attributes, the others the message's logfmt pairs.
    pub fn matches_line(&self, message: &[u8], attrs: &dyn Attributes) -> bool {
        self.expr.matches(message, attrs)
    }

    /// Byte strings the message of every line this predicate holds on contains (keys for
    /// which `is_attribute` says yes are the line's attributes, not in its message): a cheap
    /// first test before `matches_line`. Longest first, without repeats; empty when nothing
    /// is certain.
    pub fn required_literals(&self, is_attribute: &dyn Fn(&[u8]) -> bool) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        self.expr.literals(is_attribute, &mut out);
        out.sort_by(|a, b| b.len().cmp(&a.len()).then_with(|| a.cmp(b)));
        out.dedup();
        out
    }
}

impl std::str::FromStr for Predicate {
    type Err = PredicateError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        parse::parse(s).map(|expr| Predicate { expr })
    }
}
