//! Filters over logfmt lines: `status>=500 service>1s`, shared by `paas logfmt --where`, tail
//! sessions and queries.
//!
//! # Grammar
//!
//! ```text
//! expr    = and *( ("or" / "||") and )
//! and     = unary *( ["and" / "&&"] unary )      ; side by side means "and"
//! unary   = ("not" / "!") unary / "(" expr ")" / term
//! term    = key [op value]                       ; a bare key: the key is present
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

mod eval;
mod parse;

use crate::units::Quantity;

pub use parse::PredicateError;

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

impl Predicate {
    /// Whether `line` satisfies the predicate.
    pub fn matches(&self, line: &[u8]) -> bool {
        self.expr.matches(line)
    }
}

impl std::str::FromStr for Predicate {
    type Err = PredicateError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        parse::parse(s).map(|expr| Predicate { expr })
    }
}
