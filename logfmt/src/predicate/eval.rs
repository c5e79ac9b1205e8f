//! Evaluating a predicate against one line.

use std::cmp::Ordering;

use super::{Compare, Expr, Op};
use crate::pair::Value;
use crate::scan::pairs;
use crate::units::parse_quantity;

impl Expr {
    pub(super) fn matches(&self, line: &[u8]) -> bool {
        match self {
            Expr::And(all) => all.iter().all(|e| e.matches(line)),
            Expr::Or(any) => any.iter().any(|e| e.matches(line)),
            Expr::Not(e) => !e.matches(line),
            Expr::Present(key) => pairs(line).any(|p| p.key == key.as_slice()),
            Expr::Compare(c) => c.matches(line),
        }
    }
}

impl Compare {
    fn matches(&self, line: &[u8]) -> bool {
        let mut values = pairs(line)
            .filter(|p| p.key == self.key.as_slice())
            .map(|p| p.value.unwrap_or(Value::plain(&[])));
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
    use super::glob;
    use crate::Predicate;

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
