//! Tenants' text made safe for a terminal. A message, a source or a group key is whatever a
//! tenant sent; printed raw, an escape sequence moves the reader's cursor, writes their
//! clipboard (OSC 52) or retitles the window, and an embedded newline starts a line that looks
//! like another source's (`\n2026-… paas[router]: …`). Every place that prints tenant text for
//! people (`paas logs`, `paas query`'s text) goes through [`printable`].

use std::borrow::Cow;
use std::fmt::Write as _;

fn is_unsafe(c: char) -> bool {
    (c.is_control() && c != '\t') || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// `text` with control characters (C0 but tab, DEL, C1) and the bidirectional overrides
/// written as escapes (`\n`, `\r`, `\x1b`, `\u{202e}`); borrowed as it is when it has none.
pub fn printable(text: &str) -> Cow<'_, str> {
    if !text.contains(is_unsafe) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            c if is_unsafe(c) && (c as u32) < 0x100 => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c if is_unsafe(c) => {
                let _ = write!(out, "\\u{{{:x}}}", c as u32);
            }
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tenant_text_cannot_drive_the_terminal() {
        assert!(matches!(
            printable("at=info status=200\tok ünï"),
            Cow::Borrowed(_)
        ));
        assert_eq!(
            printable("a\x1b]52;c;ZXZpbA==\x07b"),
            "a\\x1b]52;c;ZXZpbA==\\x07b",
            "OSC 52 clipboard write"
        );
        assert_eq!(
            printable("ok\n2026-11-21T12:00:00+00:00 paas[router]: forged\r"),
            "ok\\n2026-11-21T12:00:00+00:00 paas[router]: forged\\r"
        );
        assert_eq!(
            printable("\u{9b}31m \u{202e}txt.exe"),
            "\\x9b31m \\u{202e}txt.exe"
        );
        assert_eq!(printable("del\x7f"), "del\\x7f");
    }
}
