//! The grammar of the crate docs written plainly with nom, one rule a function. It is the
//! definition the fast scanner in `scan` is tested against (proptest, fuzzing); use
//! [`crate::pairs`] in real code.

use nom::branch::alt;
use nom::bytes::complete::{tag, take, take_while, take_while1};
use nom::combinator::{opt, recognize};
use nom::multi::many0_count;
use nom::sequence::preceded;
use nom::{IResult, Parser};

use crate::pair::{Pair, Value};

fn is_space(b: u8) -> bool {
    b <= b' '
}

/// `space = %x00-20`, any number of them.
fn spaces(i: &[u8]) -> IResult<&[u8], &[u8]> {
    take_while(is_space).parse(i)
}

/// `key = *(any byte but space and "=")`
fn key(i: &[u8]) -> IResult<&[u8], &[u8]> {
    take_while(|b| !is_space(b) && b != b'=').parse(i)
}

/// `quoted = DQUOTE *(escape / plain) [DQUOTE]`, where `escape = "\" [any byte]` and `plain` is
/// any run of bytes but `"` and `\`. A missing closing quote leaves the value unterminated.
fn quoted(i: &[u8]) -> IResult<&[u8], Value<'_>> {
    let (i, _) = tag(&b"\""[..]).parse(i)?;
    let escape = recognize((tag(&b"\\"[..]), opt(take(1usize))));
    let plain = take_while1(|b| b != b'"' && b != b'\\');
    let (i, body) = recognize(many0_count(alt((plain, escape)))).parse(i)?;
    let escaped = body.contains(&b'\\');
    let (i, close) = opt(tag(&b"\""[..])).parse(i)?;
    Ok((i, Value::quoted(body, escaped, close.is_some())))
}

/// `unquoted = *(any byte but space)`
fn unquoted(i: &[u8]) -> IResult<&[u8], Value<'_>> {
    take_while(|b| !is_space(b)).map(Value::plain).parse(i)
}

/// `pair = key ["=" (quoted / unquoted)]`
fn pair(i: &[u8]) -> IResult<&[u8], Pair<'_>> {
    (key, opt(preceded(tag(&b"="[..]), alt((quoted, unquoted)))))
        .map(|(key, value)| Pair { key, value })
        .parse(i)
}

/// `line = *(space / pair)`: every pair of the line, in order.
pub fn pairs(line: &[u8]) -> Vec<Pair<'_>> {
    let mut out = Vec::new();
    let mut rest = line;
    loop {
        let Ok((after_spaces, _)) = spaces(rest) else {
            return out;
        };
        if after_spaces.is_empty() {
            return out;
        }
        match pair(after_spaces) {
            Ok((after, p)) if after.len() < after_spaces.len() => {
                out.push(p);
                rest = after;
            }
            // Unreachable by the grammar (a pair always takes at least one byte that is not
            // space); stop rather than loop.
            _ => return out,
        }
    }
}
