//! One logfmt line coloured for a terminal: keys dim, values bright; an error line red, a
//! warning yellow (by `at=` or `level=`).

use logfmt::Pair;

const DIM: &[u8] = b"\x1b[2m";
const BRIGHT: &[u8] = b"\x1b[1m";
const RED: &[u8] = b"\x1b[31m";
const YELLOW: &[u8] = b"\x1b[33m";
const RESET: &[u8] = b"\x1b[0m";

/// Appends the coloured rendering of `line` to `out` (no newline). Values are shown as
/// written, quotes and escapes included.
pub fn write_line(out: &mut Vec<u8>, line: &[u8]) {
    let tint = severity_colour(line);
    for (i, p) in logfmt::pairs(line).enumerate() {
        if i > 0 {
            out.push(b' ');
        }
        write_pair(out, &p, tint);
    }
}

fn write_pair(out: &mut Vec<u8>, p: &Pair<'_>, tint: Option<&[u8]>) {
    let tint = tint.unwrap_or_default();
    out.extend_from_slice(tint);
    out.extend_from_slice(DIM);
    out.extend_from_slice(p.key);
    if let Some(v) = &p.value {
        out.push(b'=');
        out.extend_from_slice(RESET);
        out.extend_from_slice(tint);
        out.extend_from_slice(BRIGHT);
        if v.is_quoted() {
            out.push(b'"');
        }
        out.extend_from_slice(v.raw());
        if v.is_quoted() && !v.is_unterminated() {
            out.push(b'"');
        }
    }
    out.extend_from_slice(RESET);
}

/// Red for `at=error`/`level=error` (and `fatal`, `crit`, `panic`), yellow for warnings.
fn severity_colour(line: &[u8]) -> Option<&'static [u8]> {
    let level = logfmt::pairs(line)
        .find(|p| p.key == b"at" || p.key == b"level")?
        .value?;
    let level = level.raw().to_ascii_lowercase();
    match level.as_slice() {
        b"error" | b"err" | b"fatal" | b"crit" | b"critical" | b"panic" | b"emerg" | b"alert" => {
            Some(RED)
        }
        b"warn" | b"warning" => Some(YELLOW),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pretty(line: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        write_line(&mut out, line);
        out
    }

    #[test]
    fn keys_dim_values_bright() {
        assert_eq!(pretty(b"at=info msg=\"a b\" d"), b"\x1b[2mat=\x1b[0m\x1b[1minfo\x1b[0m \x1b[2mmsg=\x1b[0m\x1b[1m\"a b\"\x1b[0m \x1b[2md\x1b[0m".to_vec());
    }

    #[test]
    fn error_lines_are_red() {
        let out = pretty(b"at=error code=H12");
        assert!(out.starts_with(b"\x1b[31m\x1b[2mat=\x1b[0m\x1b[31m\x1b[1merror"));
        assert_eq!(out.windows(RED.len()).filter(|w| *w == RED).count(), 4);
        assert!(pretty(b"level=ERROR x=1").starts_with(RED));
        assert!(pretty(b"level=warn x=1").starts_with(YELLOW));
        assert!(!pretty(b"at=info").starts_with(RED));
    }
}
