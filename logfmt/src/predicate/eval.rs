//! Evaluating a predicate against one line.

use std::cmp::Ordering;

use super::{Attributes, Compare, Expr, Op};
use crate::pair::Value;
use crate::scan::pairs;
use crate::units::parse_quantity;

impl Expr {
    pub(super) fn matches(&self, line: &[u8], attrs: &dyn Attributes) -> bool {
        match self {
            Expr::And(all) => all.iter().all(|e| e.matches(line, attrs)),
            Expr::Or(any) => any.iter().any(|e| e.matches(line, attrs)),
            Expr::Not(e) => !e.matches(line, attrs),
            Expr::Present(key) => match attrs.attribute(key) {
                Some(value) => !value.is_empty(),
                None => pairs(line).any(|p| p.key == key.as_slice()),
            },
            Expr::Compare(c) => match attrs.attribute(&c.key) {
                Some(value) => {
                    let by_type = c.op == Op::Eq && attrs.matches_by_type(&c.key);
                    (by_type && c.is_type_of(value))
                        || c.holds(std::iter::once(Value::plain(value)))
                }
                None => c.holds(
                    pairs(line)
                        .filter(|p| p.key == c.key.as_slice())
                        .map(|p| p.value.unwrap_or(Value::plain(&[]))),
                ),
            },
            Expr::Text(phrase) => contains_phrase(line, phrase),
        }
    }
}

impl Compare {
    /// Whether some of `values` satisfies the comparison (for `!=`, `!~`: there is a value
    /// and none equals or contains the operand).
    pub(super) fn holds<'a>(&self, mut values: impl Iterator<Item = Value<'a>>) -> bool {
        match self.op {
            Op::Ne => {
                let mut present = false;
                for v in values {
                    present = true;
                    if self.equals(&v) {
                        return false;
                    }
                }
                present
            }
            Op::NotContains => {
                let mut present = false;
                for v in values {
                    present = true;
                    if contains(&v.unescaped(), &self.text) {
                        return false;
                    }
                }
                present
            }
            Op::Eq => values.any(|v| self.equals(&v)),
            Op::Contains => values.any(|v| contains(&v.unescaped(), &self.text)),
            Op::Gt => values.any(|v| self.order(&v) == Some(Ordering::Greater)),
            Op::Ge => {
                values.any(|v| matches!(self.order(&v), Some(Ordering::Greater | Ordering::Equal)))
            }
            Op::Lt => values.any(|v| self.order(&v) == Some(Ordering::Less)),
            Op::Le => {
                values.any(|v| matches!(self.order(&v), Some(Ordering::Less | Ordering::Equal)))
            }
        }
    }

    /// `value` is `TEXT.N`: one process of the type this compares with (`web.1` for `web`).
    pub(super) fn is_type_of(&self, value: &[u8]) -> bool {
        !self.glob
            && !self.text.is_empty()
            && value.starts_with(&self.text)
            && value.get(self.text.len()) == Some(&b'.')
    }

    fn equals(&self, v: &Value<'_>) -> bool {
        let bytes = v.unescaped();
        if self.glob {
            return glob(&self.text, &bytes);
        }
        if *bytes == *self.text {
            return true;
        }
        self.order(v) == Some(Ordering::Equal)
    }

    /// How the line's value orders against the predicate's, when they can be compared.
    fn order(&self, v: &Value<'_>) -> Option<Ordering> {
        let bytes = v.unescaped();
        match (parse_quantity(&bytes), self.quantity) {
            (Some(a), Some(b)) => {
                let (a, b) = a.comparable(b)?;
                a.partial_cmp(&b)
            }
            (None, None) => Some(bytes.as_ref().cmp(self.text.as_slice())),
            _ => None,
        }
    }
}

/// Whether `phrase` (ASCII lower case) occurs in `text`, ignoring ASCII case, with a word
/// boundary on each side where the phrase's end is a word byte.
pub(super) fn contains_phrase(text: &[u8], phrase: &[u8]) -> bool {
    let Some((&first, _)) = phrase.split_first() else {
        return true;
    };
    let n = phrase.len();
    let edge_start = is_word(first);
    let edge_end = phrase.last().is_some_and(|&b| is_word(b));
    let mut at = 0;
    // The phrase is lower case: its first byte is found in either case with memchr2.
    let upper = first.to_ascii_uppercase();
    while let Some(offset) = text
        .get(at..)
        .and_then(|rest| memchr::memchr2(first, upper, rest))
    {
        let start = at + offset;
        at = start + 1;
        let Some(window) = text.get(start..start + n) else {
            return false;
        };
        if !window.eq_ignore_ascii_case(phrase) {
            continue;
        }
        let before_ok =
            !edge_start || start == 0 || !text.get(start - 1).is_some_and(|&b| is_word(b));
        let after_ok = !edge_end || !text.get(start + n).is_some_and(|&b| is_word(b));
        if before_ok && after_ok {
            return true;
        }
    }
    false
}

/// A byte of a word: an ASCII letter or digit, `_`, or any byte of a non-ASCII character.
pub(super) fn is_word(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b >= 0x80
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    needle.is_empty() || haystack.windows(needle.len()).any(|w| w == needle)
}

/// `*` matches any run of bytes, everything else itself.
fn glob(pattern: &[u8], text: &[u8]) -> bool {
    let mut parts = pattern.split(|&b| b == b'*');
    let first = parts.next().unwrap_or_default();
    let Some(mut rest) = text.strip_prefix(first) else {
        return false;
    };
    let parts: Vec<&[u8]> = parts.collect();
    let Some((last, middle)) = parts.split_last() else {
        return rest.is_empty();
    };
    for part in middle.iter().filter(|p| !p.is_empty()) {
        match rest.windows(part.len()).position(|w| w == *part) {
            Some(at) => rest = &rest[at + part.len()..],
            None => return false,
        }
    }
    rest.ends_with(last)
}

#[cfg(test)]
mod tests {
    use super::{contains_phrase, glob};
    use crate::{Attributes, Predicate};

    /// A line's attributes as a query gives them: `dyno` is the process, by type.
    struct Line {
        source: &'static str,
        process: &'static str,
    }

    impl Attributes for Line {
        fn attribute(&self, key: &[u8]) -> Option<&[u8]> {
            match key {
                b"source" => Some(self.source.as_bytes()),
                b"process" | b"dyno" => Some(self.process.as_bytes()),
                _ => None,
            }
        }
        fn matches_by_type(&self, key: &[u8]) -> bool {
            key == b"dyno"
        }
    }

    fn ml(pred: &str, source: &'static str, process: &'static str, message: &str) -> bool {
        let p: Predicate = pred.parse().unwrap_or_else(|e| panic!("{pred}: {e}"));
        p.matches_line(message.as_bytes(), &Line { source, process })
    }

    #[test]
    fn attributes_are_the_line_not_its_pairs() {
        let msg = "source=elsewhere process=x at=info status=200";
        assert!(ml("source=app", "app", "web.1", msg));
        assert!(!ml("source=elsewhere", "app", "web.1", msg));
        assert!(m("source=elsewhere", msg), "--where keeps reading pairs");
        assert!(ml("process=web.1 status=200", "app", "web.1", msg));
        assert!(
            !ml("process=web", "app", "web.1", msg),
            "only dyno matches by type"
        );
        assert!(ml("process=web.*", "app", "web.1", msg), "globs apply");
        assert!(ml("source~pa", "paas", "router", msg));
        assert!(ml("source!=app", "paas", "router", msg));
        assert!(ml("process", "app", "web.1", msg));
        assert!(
            !ml("process", "deploys", "", msg),
            "an empty attribute is absent"
        );
        assert!(ml("not process", "deploys", "", msg));
    }

    #[test]
    fn dyno_is_the_process_by_type() {
        assert!(ml("dyno=web", "app", "web.1", ""));
        assert!(ml("dyno=web", "app", "web.12", ""));
        assert!(ml("dyno=web.1", "app", "web.1", ""));
        assert!(!ml("dyno=web.1", "app", "web.12", ""));
        assert!(!ml("dyno=web", "app", "webhook.1", ""));
        assert!(!ml("dyno=web", "app", "worker.1", ""));
        assert!(ml("dyno!=web", "app", "worker.1", ""));
        assert!(!ml("dyno=", "app", "web.1", ""), "an empty type is no type");
        assert!(ml("dyno=router", "paas", "router", ""));
    }

    #[test]
    fn phrases_are_full_text() {
        let msg = "at=error desc=\"Connection reset by peer\" timeout_ms=30";
        assert!(m("\"connection reset\"", msg));
        assert!(m("\"RESET\"", msg));
        assert!(
            !m("\"connection re\"", msg),
            "a phrase ends at a word boundary"
        );
        assert!(!m("\"timeout\"", msg), "timeout_ms is one word");
        assert!(m("\"timeout\" or \"peer\"", msg));
        assert!(m("at=error \"by\"", msg));
        assert!(!m("not \"by\"", msg));
        assert!(m("\"\"", ""), "the empty phrase holds for every line");
        assert!(
            !ml("\"web\"", "app", "web.1", "nothing here"),
            "not the attributes"
        );
    }

    #[test]
    fn phrase_boundaries() {
        assert!(contains_phrase(b"a timeout.", b"timeout"));
        assert!(contains_phrase(b"timeout", b"timeout"));
        assert!(!contains_phrase(b"timeouts", b"timeout"));
        assert!(contains_phrase(b"path=/api/x", b"/api"));
        assert!(!contains_phrase(b"path=/api/x", b"/ap"));
        assert!(
            contains_phrase(b"xx/api", b"/api"),
            "no boundary before a non-word byte"
        );
        assert!(!contains_phrase(b"aab", b"ab"));
        assert!(contains_phrase(b"a ab", b"ab"));
        assert!(!contains_phrase(b"a", b"ab"));
    }

    fn m(pred: &str, line: &str) -> bool {
        let p: Predicate = pred.parse().unwrap_or_else(|e| panic!("{pred}: {e}"));
        p.matches(line.as_bytes())
    }

    const ROUTER: &str = r#"at=info method=GET path="/api/v1/items/123?x=1" host=app.example.com request_id=8b1c fwd="10.0.0.1" dyno=web.3 connect=1ms service=37ms status=200 bytes=1532 protocol=https"#;
    const ERROR: &str = r#"at=error code=H12 desc="Request timeout" method=GET path="/slow" dyno=web.1 connect=0ms service=30001ms status=503 bytes=0"#;

    #[test]
    fn numbers_with_units() {
        assert!(m("status>=500 service>1s", ERROR));
        assert!(!m("status>=500 service>1s", ROUTER));
        assert!(m("service<=37ms", ROUTER));
        assert!(m("service=0.037s", ROUTER));
        assert!(m("bytes>1kB", ROUTER));
        assert!(!m("bytes>1MB", ROUTER));
        assert!(m("bytes<1.5KiB", ROUTER));
        assert!(
            !m("service>1MB", ROUTER),
            "a duration never compares with a size"
        );
        assert!(
            !m("status>abc", ROUTER),
            "a number never compares with a word"
        );
    }

    #[test]
    fn strings_globs_and_contains() {
        assert!(m("at=error code=H12", ERROR));
        assert!(m(r#"desc="Request timeout""#, ERROR));
        assert!(m("path=/api/*", ROUTER));
        assert!(m("path=*items*", ROUTER));
        assert!(!m("path=/api/", ROUTER));
        assert!(m("fwd~10.0", ROUTER));
        assert!(m("host!~example.org", ROUTER));
        assert!(m("dyno>web.2", ROUTER), "words order as bytes");
    }

    #[test]
    fn presence_negation_and_boolean_structure() {
        assert!(m("code", ERROR));
        assert!(!m("code", ROUTER));
        assert!(m("!code", ROUTER));
        assert!(m("not code", ROUTER));
        assert!(m("status=200 or code=H12", ERROR));
        assert!(m("status=200 || code=H12", ROUTER));
        assert!(m("(status>=500 or service>30ms) and dyno=web.3", ROUTER));
        assert!(m("at=info && !(status>=500)", ROUTER));
    }

    #[test]
    fn not_equal_needs_the_key() {
        assert!(m("code!=H10", ERROR));
        assert!(!m("code!=H10", ROUTER));
        assert!(m("not code=H10", ROUTER));
    }

    #[test]
    fn repeated_keys_any_value_matches() {
        assert!(m("tag=b", "tag=a tag=b"));
        assert!(!m("tag!=b", "tag=a tag=b"));
        assert!(m("flag=", "flag"), "a bare key reads as empty");
    }

    #[test]
    fn glob_cases() {
        assert!(glob(b"*", b""));
        assert!(glob(b"a*", b"a"));
        assert!(glob(b"*c", b"abc"));
        assert!(glob(b"a*b*c", b"aXbYc"));
        assert!(!glob(b"a*b*c", b"aXcYb"));
        assert!(glob(b"a**c", b"ac"));
        assert!(!glob(b"ab*ba", b"aba"));
    }
}
