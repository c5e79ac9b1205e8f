//! A read-only view of a parsed predicate, for engines that evaluate it their own way: an
//! index answers a term from a column (each distinct value tested once) and falls back to
//! [`Term::matches_line`] for the terms it cannot answer. Every answer a view gives is the
//! one [`Predicate::matches_line`] gives for the same line.

use super::eval::contains_phrase;
use super::{Attributes, Compare, Expr, Op, Predicate};
use crate::pair::Value;

/// One node of a predicate's tree.
#[derive(Clone, Copy, Debug)]
pub struct Term<'a>(&'a Expr);

/// What a [`Term`] is.
#[derive(Clone, Copy, Debug)]
pub enum TermKind<'a> {
    /// Every child holds.
    And(Terms<'a>),
    /// Some child holds.
    Or(Terms<'a>),
    /// The child does not hold.
    Not(Term<'a>),
    /// The key is present (an attribute: not empty).
    Present(&'a [u8]),
    /// A comparison of a key's values.
    Compare(CompareTerm<'a>),
    /// A word or phrase of the message (ASCII lower case), matched case-insensitively at word
    /// boundaries.
    Text(&'a [u8]),
}

/// The children of an `and` or an `or`.
#[derive(Clone, Copy, Debug)]
pub struct Terms<'a>(&'a [Expr]);

impl<'a> Terms<'a> {
    /// The children, in the order written.
    pub fn iter(self) -> impl Iterator<Item = Term<'a>> {
        self.0.iter().map(Term)
    }
}

/// A comparison `key op value`.
#[derive(Clone, Copy, Debug)]
pub struct CompareTerm<'a>(&'a Compare);

impl Predicate {
    /// The root of the predicate's tree.
    pub fn root(&self) -> Term<'_> {
        Term(&self.expr)
    }
}

impl<'a> Term<'a> {
    /// What this node is.
    pub fn kind(self) -> TermKind<'a> {
        match self.0 {
            Expr::And(all) => TermKind::And(Terms(all)),
            Expr::Or(any) => TermKind::Or(Terms(any)),
            Expr::Not(e) => TermKind::Not(Term(e)),
            Expr::Present(key) => TermKind::Present(key),
            Expr::Compare(c) => TermKind::Compare(CompareTerm(c)),
            Expr::Text(phrase) => TermKind::Text(phrase),
        }
    }

    /// Whether this node holds on a line (as [`Predicate::matches_line`]).
    pub fn matches_line(self, message: &[u8], attrs: &dyn Attributes) -> bool {
        self.0.matches(message, attrs)
    }
}

impl<'a> CompareTerm<'a> {
    /// The key compared.
    pub fn key(self) -> &'a [u8] {
        &self.0.key
    }

    /// Whether the comparison holds on a line whose only value for the key is `value`
    /// (unescaped; a bare key reads as empty) — read from the message's pairs.
    pub fn holds_for_value(self, value: &[u8]) -> bool {
        self.0.holds(std::iter::once(Value::plain(value)))
    }

    /// Whether the comparison holds on a line whose attribute `key` is `value`; `by_type` as
    /// [`Attributes::matches_by_type`] says for the key.
    pub fn holds_for_attribute(self, value: &[u8], by_type: bool) -> bool {
        let by_type = by_type && self.0.op == Op::Eq;
        (by_type && self.0.is_type_of(value)) || self.0.holds(std::iter::once(Value::plain(value)))
    }

    /// The one text a value must be, byte for byte, for `key=value` to hold: an `=` with
    /// neither a glob nor a number (`status=503` also holds for `503.0`). `None` otherwise.
    pub fn exact_value(self) -> Option<&'a [u8]> {
        (self.0.op == Op::Eq && !self.0.glob && self.0.quantity.is_none()).then_some(&self.0.text)
    }
}

/// Whether `phrase` (ASCII lower case) occurs in `text` as [`TermKind::Text`] means it.
pub fn contains_text(text: &[u8], phrase: &[u8]) -> bool {
    contains_phrase(text, phrase)
}

/// A byte of a word, as full-text terms see words: an ASCII letter or digit, `_`, or any byte
/// of a non-ASCII character.
pub fn is_word_byte(b: u8) -> bool {
    super::eval::is_word(b)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::NoAttributes;

    #[test]
    fn a_view_answers_as_the_predicate_does() {
        let p: Predicate = r#"status>=500 (path=/a* or not "timeout") dyno=web"#
            .parse()
            .unwrap();
        let TermKind::And(all) = p.root().kind() else {
            panic!("an and at the root");
        };
        let terms: Vec<_> = all.iter().collect();
        assert_eq!(terms.len(), 3);
        let TermKind::Compare(status) = terms[0].kind() else {
            panic!("a comparison");
        };
        assert_eq!(status.key(), b"status");
        assert!(status.holds_for_value(b"503"));
        assert!(!status.holds_for_value(b"200"));
        assert_eq!(status.exact_value(), None);
        let TermKind::Compare(dyno) = terms[2].kind() else {
            panic!("a comparison");
        };
        assert!(dyno.holds_for_attribute(b"web.2", true));
        assert!(!dyno.holds_for_attribute(b"web.2", false));
        assert_eq!(dyno.exact_value(), Some(&b"web"[..]));
        assert!(terms[1].matches_line(b"path=/b", &NoAttributes));
        assert!(!terms[1].matches_line(b"path=/b msg=Timeout", &NoAttributes));
        assert!(contains_text(b"a Timeout.", b"timeout"));
        assert!(!contains_text(b"timeouts", b"timeout"));
        assert!(is_word_byte(b'_') && is_word_byte(0xc3) && !is_word_byte(b'='));
    }
}
