//! The predicate grammar (see the module docs), written with nom.

use nom::branch::alt;
use nom::bytes::complete::{tag, take, take_while, take_while1};
use nom::character::complete::{char, multispace0};
use nom::combinator::{cut, map, not, opt, peek, recognize, value};
use nom::multi::{many0, many0_count};
use nom::sequence::{delimited, preceded, terminated};
use nom::{IResult, Parser};

use super::{Compare, Expr, Op};
use crate::unescape::unescape;
use crate::units::parse_quantity;

/// Why a predicate did not parse, and where (a 1-based column).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("invalid filter at column {column}: {msg}")]
pub struct PredicateError {
    /// 1-based column of the offending text.
    pub column: usize,
    /// What was expected or found.
    pub msg: String,
}

type Res<'a, T> = IResult<&'a str, T>;

/// How deep `(`, `not` and `!` may nest: the parser recurses once a level, so without a
/// bound a few kilobytes of `((((` would overflow the stack of whatever thread parses it.
pub const MAX_DEPTH: usize = 32;

/// The longest filter text read, in bytes.
pub const MAX_LEN: usize = 16 * 1024;

/// The error a too-deep nesting fails with, told apart from grammar errors by its kind.
fn too_deep(i: &str) -> nom::Err<nom::error::Error<&str>> {
    nom::Err::Failure(nom::error::Error::new(i, nom::error::ErrorKind::TooLarge))
}

fn is_key_char(c: char) -> bool {
    !c.is_whitespace() && !matches!(c, '=' | '!' | '<' | '>' | '~' | '(' | ')' | '"')
}

/// A keyword, not the start of a longer key (`or` but not `order`).
fn keyword<'a>(
    word: &'static str,
) -> impl Parser<&'a str, Output = &'a str, Error = nom::error::Error<&'a str>> {
    terminated(tag(word), not(peek(take_while1(is_key_char))))
}

fn key(i: &str) -> Res<'_, &str> {
    take_while1(is_key_char).parse(i)
}

fn op(i: &str) -> Res<'_, Op> {
    alt((
        value(Op::Ne, tag("!=")),
        value(Op::NotContains, tag("!~")),
        value(Op::Ge, tag(">=")),
        value(Op::Le, tag("<=")),
        value(Op::Eq, tag("=")),
        value(Op::Gt, tag(">")),
        value(Op::Lt, tag("<")),
        value(Op::Contains, tag("~")),
    ))
    .parse(i)
}

/// A value: quoted (escapes as in logfmt) or a bare word. Returns the unescaped bytes and
/// whether it was bare.
fn operand(i: &str) -> Res<'_, (Vec<u8>, bool)> {
    alt((
        map(quoted, |text| (text, false)),
        map(
            preceded(
                not(char('"')),
                take_while1(|c: char| !c.is_whitespace() && c != ')'),
            ),
            |s: &str| (s.as_bytes().to_vec(), true),
        ),
    ))
    .parse(i)
}

/// A quoted text, unescaped.
fn quoted(i: &str) -> Res<'_, Vec<u8>> {
    let escape = recognize((char('\\'), opt(take(1usize))));
    let plain = take_while1(|c| c != '"' && c != '\\');
    map(
        delimited(
            char('"'),
            recognize(many0_count(alt((plain, escape)))),
            char('"'),
        ),
        |s: &str| unescape(s.as_bytes()),
    )
    .parse(i)
}

/// A quoted term standing alone: a word or phrase of the message.
fn phrase(i: &str) -> Res<'_, Expr> {
    map(quoted, |mut text| {
        text.make_ascii_lowercase();
        Expr::Text(text)
    })
    .parse(i)
}

fn term(i: &str) -> Res<'_, Expr> {
    let (i, k) = key(i)?;
    let (i, found) = opt(op).parse(i)?;
    let Some(op) = found else {
        return Ok((i, Expr::Present(k.as_bytes().to_vec())));
    };
    // `k=` and `k!=` compare with the empty value; every other operator needs an operand.
    let empty_ok = matches!(op, Op::Eq | Op::Ne)
        && i.chars()
            .next()
            .is_none_or(|c| c.is_whitespace() || c == ')');
    let (i, (text, bare)) = if empty_ok {
        (i, (Vec::new(), false))
    } else {
        cut(operand).parse(i)?
    };
    let quantity = parse_quantity(&text);
    let glob = bare && op == Op::Eq && text.contains(&b'*');
    Ok((
        i,
        Expr::Compare(Compare {
            key: k.as_bytes().to_vec(),
            op,
            text,
            quantity,
            glob,
        }),
    ))
}

/// `depth` counts the `(`, `not` and `!` this unary stands inside.
fn unary(i: &str, depth: usize) -> Res<'_, Expr> {
    if depth >= MAX_DEPTH {
        return Err(too_deep(i));
    }
    let negation = alt((terminated(keyword("not"), multispace0), tag("!")));
    alt((
        map(preceded(negation, cut(|i| unary(i, depth + 1))), |e| {
            Expr::Not(Box::new(e))
        }),
        delimited(
            (char('('), multispace0),
            cut(|i| expr(i, depth + 1)),
            cut((multispace0, char(')'))),
        ),
        phrase,
        term,
    ))
    .parse(i)
}

fn and(i: &str, depth: usize) -> Res<'_, Expr> {
    let or_next = peek(alt((keyword("or"), tag("||"))));
    let joiner = opt(terminated(alt((keyword("and"), tag("&&"))), multispace0));
    let next = preceded((multispace0, not(or_next), joiner), |i| unary(i, depth));
    let (i, (first, rest)) = (|i| unary(i, depth), many0(next)).parse(i)?;
    Ok((i, flatten(first, rest, Expr::And)))
}

fn expr(i: &str, depth: usize) -> Res<'_, Expr> {
    let separator = (multispace0, alt((keyword("or"), tag("||"))), multispace0);
    let (i, (first, rest)) = (
        |i| and(i, depth),
        many0(preceded(separator, cut(|i| and(i, depth)))),
    )
        .parse(i)?;
    Ok((i, flatten(first, rest, Expr::Or)))
}

fn flatten(first: Expr, mut rest: Vec<Expr>, join: fn(Vec<Expr>) -> Expr) -> Expr {
    if rest.is_empty() {
        return first;
    }
    rest.insert(0, first);
    join(rest)
}

pub(super) fn parse(s: &str) -> Result<Expr, PredicateError> {
    let at = |rest: &str| s.len() - rest.len() + 1;
    if s.len() > MAX_LEN {
        return Err(PredicateError {
            column: MAX_LEN + 1,
            msg: format!("the filter is longer than {MAX_LEN} bytes"),
        });
    }
    let mut trimmed = take_while::<_, _, nom::error::Error<&str>>(char::is_whitespace);
    let (start, _) = trimmed.parse(s).map_err(|_| PredicateError {
        column: 1,
        msg: "empty filter".into(),
    })?;
    if start.is_empty() {
        return Err(PredicateError {
            column: 1,
            msg: "empty filter".into(),
        });
    }
    match terminated(|i| expr(i, 0), multispace0).parse(start) {
        Ok(("", e)) => Ok(e),
        Ok((rest, _)) => Err(PredicateError {
            column: at(rest),
            msg: format!("unexpected {:?}", first_token(rest)),
        }),
        Err(nom::Err::Failure(e)) if e.code == nom::error::ErrorKind::TooLarge => {
            Err(PredicateError {
                column: at(e.input),
                msg: format!("nested more than {MAX_DEPTH} levels deep"),
            })
        }
        Err(nom::Err::Error(e) | nom::Err::Failure(e)) => {
            let msg = if e.input.is_empty() {
                "unexpected end of filter".to_owned()
            } else {
                format!("unexpected {:?}", first_token(e.input))
            };
            Err(PredicateError {
                column: at(e.input),
                msg,
            })
        }
        Err(nom::Err::Incomplete(_)) => Err(PredicateError {
            column: s.len() + 1,
            msg: "unexpected end of filter".into(),
        }),
    }
}

fn first_token(s: &str) -> &str {
    s.split_whitespace().next().unwrap_or(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(s: &str) -> String {
        parse(s).unwrap_err().to_string()
    }

    #[test]
    fn structure() {
        let e = parse("a=1 b>2 or not c").unwrap();
        let Expr::Or(parts) = e else { panic!("{e:?}") };
        assert!(matches!(&parts[0], Expr::And(v) if v.len() == 2));
        assert!(matches!(&parts[1], Expr::Not(_)));
        assert!(
            matches!(parse("order=1").unwrap(), Expr::Compare(_)),
            "a key may start with a keyword"
        );
        assert!(matches!(
            parse("measure#db.latency>20ms").unwrap(),
            Expr::Compare(_)
        ));
    }

    #[test]
    fn a_quoted_term_alone_is_a_phrase() {
        assert_eq!(
            parse(r#""Connection Reset""#).unwrap(),
            Expr::Text(b"connection reset".to_vec())
        );
        let e = parse(r#"status>=500 "timeout" or not "a \"q\"""#).unwrap();
        let Expr::Or(parts) = e else { panic!("{e:?}") };
        assert!(matches!(&parts[0], Expr::And(v) if v[1] == Expr::Text(b"timeout".to_vec())));
        let quoted = Expr::Text(br#"a "q""#.to_vec());
        assert_eq!(parts[1], Expr::Not(Box::new(quoted)));
        assert!(parse(r#""k"=v"#).is_err(), "a phrase is no key");
        assert!(parse(r#""open"#).is_err());
    }

    #[test]
    fn errors_say_where() {
        assert_eq!(
            err("status>="),
            "invalid filter at column 9: unexpected end of filter"
        );
        assert_eq!(
            err("(status=1"),
            "invalid filter at column 10: unexpected end of filter"
        );
        assert_eq!(err("a=1 )"), "invalid filter at column 5: unexpected \")\"");
        assert_eq!(err("   "), "invalid filter at column 1: empty filter");
        assert_eq!(
            err("a=\"open"),
            "invalid filter at column 3: unexpected \"\\\"open\""
        );
        assert!(parse("a or").is_err());
        assert!(parse("not").is_err());
    }

    /// Regression: 2,000 `(` or 5,000 `!` overflowed the stack (issue 10) and took the router
    /// down with it. Run on a small thread stack, so a lost bound fails here, not by luck.
    #[test]
    fn deep_nesting_is_an_error_not_a_stack_overflow() {
        let deep = std::thread::Builder::new()
            .stack_size(1 << 20)
            .spawn(|| {
                let parens = format!("{}a=1{}", "(".repeat(2000), ")".repeat(2000));
                let bangs = format!("{}a", "!".repeat(5000));
                let nots = format!("{}a", "not ".repeat(3000));
                let mixed = format!("{}a", "(!".repeat(1500));
                [parens, bangs, nots, mixed].map(|f| err(&f))
            })
            .unwrap()
            .join()
            .unwrap();
        for e in deep {
            assert!(
                e.contains(&format!("nested more than {MAX_DEPTH} levels deep")),
                "{e}"
            );
        }
        let just = format!(
            "{}a=1{}",
            "(".repeat(MAX_DEPTH - 1),
            ")".repeat(MAX_DEPTH - 1)
        );
        assert!(parse(&just).is_ok(), "{MAX_DEPTH} levels still parse");
        assert!(parse(&format!("{}a", "!".repeat(MAX_DEPTH - 1))).is_ok());
        let long = format!("a={}", "x".repeat(MAX_LEN));
        assert_eq!(
            err(&long),
            format!(
                "invalid filter at column {}: the filter is longer than {MAX_LEN} bytes",
                MAX_LEN + 1
            )
        );
    }
}
