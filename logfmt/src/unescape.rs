//! Undoing the escapes of a quoted value, leniently: an escape that means nothing is kept as
//! written instead of failing the value.

/// The bytes of a quoted value's body with its escapes undone: `\"`, `\\`, `\/`, `\'`, `\b`,
/// `\f`, `\n`, `\r`, `\t` and `\uXXXX` (UTF-16, surrogate pairs joined; a lone surrogate
/// becomes U+FFFD). Any other backslash, and a `\u` without four hex digits, stays as written.
pub(crate) fn unescape(raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(raw.len());
    let mut i = 0;
    while i < raw.len() {
        let b = raw[i];
        if b != b'\\' {
            out.push(b);
            i += 1;
            continue;
        }
        let Some(&e) = raw.get(i + 1) else {
            out.push(b'\\');
            break;
        };
        let simple = match e {
            b'"' | b'\\' | b'/' | b'\'' => Some(e),
            b'b' => Some(0x08),
            b'f' => Some(0x0c),
            b'n' => Some(b'\n'),
            b'r' => Some(b'\r'),
            b't' => Some(b'\t'),
            _ => None,
        };
        if let Some(c) = simple {
            out.push(c);
            i += 2;
        } else if let Some((c, used)) = (e == b'u').then(|| unicode_escape(&raw[i..])).flatten() {
            let mut buf = [0u8; 4];
            out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
            i += used;
        } else {
            out.push(b'\\');
            i += 1;
        }
    }
    out
}

/// `\uXXXX`, or a surrogate pair `\uD83D\uDE00`, at the start of `s`: the character and how
/// many bytes it took.
fn unicode_escape(s: &[u8]) -> Option<(char, usize)> {
    let first = hex4(s.get(2..6)?)?;
    if !(0xD800..0xE000).contains(&first) {
        return Some((char::from_u32(first)?, 6));
    }
    let second = s
        .get(6..8)
        .filter(|u| *u == b"\\u")
        .and_then(|_| s.get(8..12))
        .and_then(hex4);
    if let Some(second) = second.filter(|c| first < 0xDC00 && (0xDC00..0xE000).contains(c)) {
        let c = 0x10000 + ((first - 0xD800) << 10) + (second - 0xDC00);
        return Some((char::from_u32(c)?, 12));
    }
    Some((char::REPLACEMENT_CHARACTER, 6))
}

fn hex4(s: &[u8]) -> Option<u32> {
    s.iter()
        .try_fold(0u32, |acc, &b| Some(acc * 16 + (b as char).to_digit(16)?))
}

#[cfg(test)]
mod tests {
    use super::unescape;

    #[track_caller]
    fn check(raw: &str, want: &str) {
        assert_eq!(
            String::from_utf8_lossy(&unescape(raw.as_bytes())),
            want,
            "unescape({raw:?})"
        );
    }

    #[test]
    fn simple_escapes() {
        check(r#"a\"b"#, "a\"b");
        check(r"a\\b", "a\\b");
        check(r"\/\'\b\f\n\r\t", "/'\u{8}\u{c}\n\r\t");
    }

    #[test]
    fn unicode_escapes() {
        check(r"\u00e9t\u00E9", "été");
        check(r"\ud83d\ude00", "😀");
        check(r"\ud83d", "\u{fffd}");
        check(r"\ude00x", "\u{fffd}x");
        check(r"\ud83d\u0041", "\u{fffd}A");
    }

    #[test]
    fn meaningless_escapes_stay_as_written() {
        check(r"\x41", r"\x41");
        check(r"\u12", r"\u12");
        check(r"\u12zz", r"\u12zz");
        check("end\\", "end\\");
    }

    #[test]
    fn invalid_utf8_is_kept_as_bytes() {
        assert_eq!(unescape(b"\xff\\n\xfe"), b"\xff\n\xfe");
    }
}
