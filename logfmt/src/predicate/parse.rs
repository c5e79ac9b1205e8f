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
    let escape = recognize((char('\\'), opt(take(1usize))));
    let plain = take_while1(|c| c != '"' && c != '\\');
    let quoted = delimited(
        char('"'),
        recognize(many0_count(alt((plain, escape)))),
        char('"'),
    );
    alt((
        map(quoted, |s: &str| (unescape(s.as_bytes()), false)),
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

fn unary(i: &str) -> Res<'_, Expr> {
    let negation = alt((terminated(keyword("not"), multispace0), tag("!")));
    alt((
        map(preceded(negation, cut(unary)), |e| Expr::Not(Box::new(e))),
        delimited(
            (char('('), multispace0),
            cut(expr),
            cut((multispace0, char(')'))),
        ),
        term,
    ))
    .parse(i)
}

fn and(i: &str) -> Res<'_, Expr> {
    let or_next = peek(alt((keyword("or"), tag("||"))));
    let joiner = opt(terminated(alt((keyword("and"), tag("&&"))), multispace0));
    let next = preceded((multispace0, not(or_next), joiner), unary);
    let (i, (first, rest)) = (unary, many0(next)).parse(i)?;
    Ok((i, flatten(first, rest, Expr::And)))
}

fn expr(i: &str) -> Res<'_, Expr> {
    let separator = (multispace0, alt((keyword("or"), tag("||"))), multispace0);
    let (i, (first, rest)) = (and, many0(preceded(separator, cut(and)))).parse(i)?;
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
    match terminated(expr, multispace0).parse(start) {
        Ok(("", e)) => Ok(e),
        Ok((rest, _)) => Err(PredicateError {
            column: at(rest),
            msg: format!("unexpected {:?}", first_token(rest)),
        }),
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
}
