//! Splitting a query at its pipes: `FILTER | STAGE | STAGE`.
//!
//! A `|` outside double quotes separates stages; `||` is the filter's `or` and stays in the
//! filter. A value that holds a `|` is quoted: `path="/a|b"`.

/// One piece of the query: its text and the byte offset where it starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Segment<'a> {
    pub text: &'a str,
    pub at: usize,
}

/// The filter and the stages, in order. There is always a first segment (the filter, maybe
/// empty).
pub(crate) fn split(query: &str) -> Vec<Segment<'_>> {
    let bytes = query.as_bytes();
    let (mut segments, mut start, mut i, mut quoted) = (Vec::new(), 0, 0, false);
    while let Some(&b) = bytes.get(i) {
        match b {
            b'\\' if quoted => i += 1,
            b'"' => quoted = !quoted,
            b'|' if !quoted && bytes.get(i + 1) == Some(&b'|') => i += 1,
            b'|' if !quoted => {
                segments.push(segment(query, start, i));
                start = i + 1;
            }
            _ => {}
        }
        i += 1;
    }
    segments.push(segment(query, start, query.len()));
    segments
}

fn segment(query: &str, start: usize, end: usize) -> Segment<'_> {
    Segment {
        text: query.get(start..end).unwrap_or(""),
        at: start,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(q: &str) -> Vec<&str> {
        split(q).iter().map(|s| s.text).collect()
    }

    #[test]
    fn pipes_outside_quotes_and_not_or() {
        assert_eq!(texts("a=1 | count"), ["a=1 ", " count"]);
        assert_eq!(texts("a=1 || b=2 | head 3"), ["a=1 || b=2 ", " head 3"]);
        assert_eq!(texts(r#"p="x|y" | count"#), [r#"p="x|y" "#, " count"]);
        assert_eq!(texts(r#"p="\"|" | count"#), [r#"p="\"|" "#, " count"]);
        assert_eq!(texts("| count"), ["", " count"]);
        assert_eq!(texts(""), [""]);
        assert_eq!(split("ab|cd")[1].at, 3);
    }
}
