//! The words of a stage: `p99(service), count by path` is `p99` `(` `service` `)` `,`
//! `count` `by` `path`, each with its byte offset in the whole query.

/// A token's kind and text.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Tok<'a> {
    Word(&'a str),
    Comma,
    Open,
    Close,
}

/// A token and where it starts in the query.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Token<'a> {
    pub tok: Tok<'a>,
    pub at: usize,
}

impl Tok<'_> {
    /// How an error names it.
    pub(crate) fn describe(&self) -> String {
        match self {
            Tok::Word(w) => format!("{w:?}"),
            Tok::Comma => "\",\"".into(),
            Tok::Open => "\"(\"".into(),
            Tok::Close => "\")\"".into(),
        }
    }
}

/// The tokens of `text`, which starts at byte `base` of the query.
pub(crate) fn lex(text: &str, base: usize) -> Vec<Token<'_>> {
    let mut tokens = Vec::new();
    let mut chars = text.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        let tok = match c {
            c if c.is_whitespace() => continue,
            ',' => Tok::Comma,
            '(' => Tok::Open,
            ')' => Tok::Close,
            _ => {
                let mut end = i + c.len_utf8();
                while let Some(&(j, d)) = chars.peek() {
                    if d.is_whitespace() || matches!(d, ',' | '(' | ')') {
                        break;
                    }
                    end = j + d.len_utf8();
                    chars.next();
                }
                Tok::Word(text.get(i..end).unwrap_or(""))
            }
        };
        tokens.push(Token { tok, at: base + i });
    }
    tokens
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_and_punctuation_with_offsets() {
        let t = lex(" p99(service),count by é", 10);
        let toks: Vec<_> = t.iter().map(|t| t.tok).collect();
        assert_eq!(
            toks,
            [
                Tok::Word("p99"),
                Tok::Open,
                Tok::Word("service"),
                Tok::Close,
                Tok::Comma,
                Tok::Word("count"),
                Tok::Word("by"),
                Tok::Word("é"),
            ]
        );
        assert_eq!(t[0].at, 11);
        assert_eq!(t[7].at, 33);
    }
}
