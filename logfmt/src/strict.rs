//! Strict checking: whether a line is logfmt as go-logfmt (the reference decoder) reads it,
//! with go-logfmt's error messages and positions. The parser itself never fails; this tells
//! a caller when it had to recover.

use std::fmt;

/// Why a line is not strict logfmt, and where (a 1-based byte position, as go-logfmt reports).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub struct SyntaxError {
    /// What is wrong: `unexpected '='`, `unexpected '"'`, `unterminated quoted value`,
    /// `invalid quoted value` or `invalid key`.
    pub msg: &'static str,
    /// The 1-based byte position go-logfmt reports for it.
    pub pos: usize,
}

impl fmt::Display for SyntaxError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "logfmt syntax error at pos {}: {}", self.pos, self.msg)
    }
}

fn err(msg: &'static str, index: usize) -> SyntaxError {
    SyntaxError {
        msg,
        pos: index + 1,
    }
}

/// Checks `line` against go-logfmt's grammar: `Ok` exactly when go-logfmt decodes it without
/// error (for a line under go's 64 KiB scanner limit). Where this fails, [`crate::pairs`] still
/// reads the line, as the crate docs describe.
///
/// ```
/// assert!(logfmt::validate(b"at=info msg=\"hello world\"").is_ok());
/// assert_eq!(logfmt::validate(b"k=b=ar").unwrap_err().to_string(),
///            "logfmt syntax error at pos 4: unexpected '='");
/// ```
pub fn validate(line: &[u8]) -> Result<(), SyntaxError> {
    let mut i = 0;
    let n = line.len();
    while i < n {
        if line[i] <= b' ' {
            i += 1;
            continue;
        }
        // key
        let start = i;
        while i < n && line[i] > b' ' && line[i] != b'=' {
            if line[i] == b'"' {
                return Err(err("unexpected '\"'", i));
            }
            i += 1;
        }
        check_key(&line[start..i], i)?;
        if i >= n || line[i] != b'=' {
            continue;
        }
        if i == start {
            return Err(err("unexpected '='", i));
        }
        i += 1;
        if i >= n || line[i] <= b' ' {
            continue;
        }
        if line[i] == b'"' {
            i = quoted_end(line, i)?;
            continue;
        }
        while i < n && line[i] > b' ' {
            match line[i] {
                b'=' => return Err(err("unexpected '='", i)),
                b'"' => return Err(err("unexpected '\"'", i)),
                _ => i += 1,
            }
        }
    }
    Ok(())
}

/// A key with bytes above ASCII must be UTF-8 without U+FFFD, as go-logfmt requires.
fn check_key(key: &[u8], end: usize) -> Result<(), SyntaxError> {
    if key.is_ascii() {
        return Ok(());
    }
    match std::str::from_utf8(key) {
        Ok(s) if !s.contains(char::REPLACEMENT_CHARACTER) => Ok(()),
        _ => Err(err("invalid key", end)),
    }
}

/// The index after the closing quote of the quoted value opening at `open`.
fn quoted_end(line: &[u8], open: usize) -> Result<usize, SyntaxError> {
    let mut i = open + 1;
    let mut escaped = false;
    while i < line.len() {
        match line[i] {
            b'\\' => {
                escaped = true;
                i += 2;
            }
            b'"' => {
                if escaped && !escapes_are_valid(&line[open + 1..i]) {
                    return Err(err("invalid quoted value", i + 1));
                }
                return Ok(i + 1);
            }
            _ => i += 1,
        }
    }
    Err(err("unterminated quoted value", line.len()))
}

/// go-logfmt unquotes a value with escapes as JSON does: every escape must be known and no
/// control byte may stand unescaped.
fn escapes_are_valid(body: &[u8]) -> bool {
    let mut i = 0;
    while i < body.len() {
        match body[i] {
            b'\\' => match body.get(i + 1) {
                Some(b'"' | b'\\' | b'/' | b'\'' | b'b' | b'f' | b'n' | b'r' | b't') => i += 2,
                Some(b'u') => {
                    let hex = body.get(i + 2..i + 6);
                    if !hex.is_some_and(|h| h.iter().all(u8::is_ascii_hexdigit)) {
                        return false;
                    }
                    i += 6;
                }
                _ => return false,
            },
            c if c < b' ' => return false,
            _ => i += 1,
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    /// go-logfmt's own error vectors (decode_test.go, `TestDecoder_errors`), one line each.
    #[test]
    fn go_logfmt_error_vectors() {
        let cases: &[(&[u8], &str, usize)] = &[
            (b"=bar", "unexpected '='", 1),
            (b"\"k\"=bar", "unexpected '\"'", 1),
            (b"k\"ey=bar", "unexpected '\"'", 2),
            (b"k=b\"ar", "unexpected '\"'", 4),
            (b"k=b =ar", "unexpected '='", 5),
            (b"a==", "unexpected '='", 3),
            (b"k=b=ar", "unexpected '='", 4),
            (b"a=\"1", "unterminated quoted value", 5),
            (b"a=\"1\\", "unterminated quoted value", 6),
            (b"a=\"\\t1", "unterminated quoted value", 7),
            (b"a=\"\\u1\"", "invalid quoted value", 8),
            ("a\u{fffd}=bar".as_bytes(), "invalid key", 5),
            (b"\x80=bar", "invalid key", 2),
            (b"\x80", "invalid key", 2),
        ];
        for &(line, msg, pos) in cases {
            assert_eq!(
                validate(line),
                Err(SyntaxError { msg, pos }),
                "{:?}",
                String::from_utf8_lossy(line)
            );
        }
    }

    #[test]
    fn valid_lines() {
        for line in [
            &b""[..],
            b"x= ",
            b"y",
            b"y=\"\\tf\"",
            "a=1 b=\"bar\" ƒ=2h3s r=\"esc\\t\" d x=sf   ".as_bytes(),
            b"y=\"f\\n\"y=g",
            b"k=\\",
            b"y=f  \x1e y=g",
        ] {
            assert_eq!(
                validate(line),
                Ok(()),
                "{:?}",
                String::from_utf8_lossy(line)
            );
        }
    }
}
