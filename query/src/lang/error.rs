//! `QueryError`: what was wrong with a query, and where, told with a caret under the text.

use std::fmt;

/// Why a query did not parse: the 1-based column (in characters) and what was expected.
/// `Display` writes two lines: the query, then a caret under the column and the message.
///
/// ```text
/// status>=500 | cuont by path
///               ^ column 15: unknown stage "cuont"; the stages are count, …
/// ```
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub struct QueryError {
    /// 1-based column of the offending text, counted in characters.
    pub column: usize,
    /// What was expected or found.
    pub message: String,
    /// The query as given (with control characters shown as spaces).
    pub query: String,
}

impl QueryError {
    /// An error at byte offset `at` of `query`.
    pub(crate) fn at(query: &str, at: usize, message: impl Into<String>) -> Self {
        let at = at.min(query.len());
        let prefix = query.get(..at).unwrap_or(query);
        QueryError {
            column: prefix.chars().count() + 1,
            message: message.into(),
            query: query
                .chars()
                .map(|c| if c.is_control() { ' ' } else { c })
                .collect(),
        }
    }
}

impl fmt::Display for QueryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "{}", self.query)?;
        let pad = self.column.saturating_sub(1);
        write!(f, "{:pad$}^ column {}: {}", "", self.column, self.message)
    }
}

/// A parse failure at a byte offset of the whole query, turned into a `QueryError` at the top.
#[derive(Debug)]
pub(crate) struct Failure {
    pub at: usize,
    pub message: String,
}

impl Failure {
    pub(crate) fn new(at: usize, message: impl Into<String>) -> Self {
        Failure {
            at,
            message: message.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caret_under_the_column_in_characters() {
        let e = QueryError::at("é | x", 5, "unknown stage \"x\"");
        assert_eq!(e.column, 5);
        assert_eq!(e.to_string(), "é | x\n    ^ column 5: unknown stage \"x\"");
        let e = QueryError::at("a\tb", 99, "end");
        assert_eq!(e.to_string(), "a b\n   ^ column 4: end");
    }
}
