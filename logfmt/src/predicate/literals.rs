//! The byte strings a line must contain for a predicate to hold on it: a test of a few
//! `memmem` calls that rules out most lines of a selective query before any logfmt parsing,
//! as ripgrep looks for a pattern's literals first.
//!
//! Only what is certain is taken: under `and`, each part's literals; a key read from the
//! message (`k=v`, `k>5`, `k`, `k!=v` all need the key's bytes, which logfmt never escapes);
//! a text value compared with `=` or `~` when it has nothing a logfmt value would escape (its
//! bytes then stand in the line, quoted or not). Numbers are left out (`status=503` also holds
//! on `status=503.0`), as are globs, `or`, `not`, the line's attributes (not in the message)
//! and full-text phrases (matched without regard to case).

use super::{Compare, Expr, Op};

impl Expr {
    pub(super) fn literals(&self, is_attribute: &dyn Fn(&[u8]) -> bool, out: &mut Vec<Vec<u8>>) {
        match self {
            Expr::And(all) => all.iter().for_each(|e| e.literals(is_attribute, out)),
            Expr::Or(_) | Expr::Not(_) | Expr::Text(_) => {}
            Expr::Present(key) if !is_attribute(key) => out.push(key.clone()),
            Expr::Present(_) => {}
            Expr::Compare(c) if !is_attribute(&c.key) => {
                out.push(c.key.clone());
                if let Some(text) = c.literal_value() {
                    out.push(text.to_vec());
                }
            }
            Expr::Compare(_) => {}
        }
    }
}

impl Compare {
    /// The value's bytes, when every matching line holds them as they are.
    fn literal_value(&self) -> Option<&[u8]> {
        let verbatim = !self.text.is_empty()
            && self.quantity.is_none()
            && !self.glob
            && !self
                .text
                .iter()
                .any(|&b| b < 0x20 || b == b'"' || b == b'\\' || b == 0x7f);
        (verbatim && matches!(self.op, Op::Eq | Op::Contains)).then_some(&self.text[..])
    }
}

#[cfg(test)]
mod tests {
    use crate::Predicate;

    fn literals(filter: &str) -> Vec<String> {
        let p: Predicate = filter.parse().unwrap();
        p.required_literals(&|k: &[u8]| k == b"source" || k == b"dyno")
            .into_iter()
            .map(|l| String::from_utf8(l).unwrap())
            .collect()
    }

    #[test]
    fn only_what_every_match_must_contain() {
        assert_eq!(
            literals("status=503 path=/healthz"),
            ["/healthz", "status", "path"]
        );
        assert_eq!(
            literals("request_id=c71ad590abc"),
            ["c71ad590abc", "request_id"]
        );
        assert_eq!(
            literals("path~items service>1s"),
            ["service", "items", "path"]
        );
        assert_eq!(literals(r#"msg="a b""#), ["a b", "msg"]);
        for none in [
            "a=1 or b=2",
            "not a=1",
            "source=app",
            "dyno=web",
            r#""timeout""#,
            "path=/api/*",
        ] {
            let got = literals(none);
            assert!(got.iter().all(|l| l == "path"), "{none}: {got:?}");
        }
        assert_eq!(
            literals(r#"msg="say \"hi\"""#),
            ["msg"],
            "escaped values are not verbatim"
        );
        assert_eq!(
            literals("k!=v"),
            ["k"],
            "the key must be there; the value must not"
        );
    }
}
