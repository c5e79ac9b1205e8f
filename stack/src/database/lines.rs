//! The adapter's lines in the app's stream, as Heroku Postgres writes them under
//! `app[postgres]`: slow statements (normalised, literals as `$n`, at most 1 KB), errors with
//! their `sql_error_code`, connections and authentication. One type an event; `emit` writes
//! the line (never waiting: a full channel drops it, counted by the router).

use std::time::Duration;

use logplex::Emitter;

/// The process the adapter's statement lines carry: `app[postgres]`.
pub const PROCESS: &str = "postgres";
/// The most bytes of a statement a line carries.
pub const MAX_STATEMENT: usize = 1024;

/// A line the adapter writes.
#[derive(Debug)]
pub enum DatabaseLine<'a> {
    /// A statement slower than `--database-slow-ms`.
    SlowStatement { duration: Duration, sql: &'a str },
    /// An error the server or the adapter sent a client.
    Error {
        code: &'a str,
        severity: &'a str,
        message: &'a str,
    },
    /// A client connected.
    ConnectionReceived { host: String, port: u16 },
    /// A client logged in.
    ConnectionAuthorized { user: &'a str, database: &'a str },
}

impl std::fmt::Display for DatabaseLine<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DatabaseLine::SlowStatement { duration, sql } => write!(
                f,
                "[DATABASE] duration: {:.3} ms  statement: {}",
                duration.as_secs_f64() * 1000.0,
                normalise(sql)
            ),
            DatabaseLine::Error {
                code,
                severity,
                message,
            } => write!(
                f,
                "[DATABASE] sql_error_code = {code} {severity}:  {}",
                one_line(message)
            ),
            DatabaseLine::ConnectionReceived { host, port } => {
                write!(f, "[DATABASE] connection received: host={host} port={port}")
            }
            DatabaseLine::ConnectionAuthorized { user, database } => write!(
                f,
                "[DATABASE] connection authorized: user={user} database={database}"
            ),
        }
    }
}

impl DatabaseLine<'_> {
    /// Writes the line as `app[postgres]`.
    pub fn emit(&self, emitter: &Emitter) {
        let _ = emitter.try_emit(PROCESS, self.to_string());
    }
}

fn one_line(s: &str) -> String {
    truncate(&s.replace(['\n', '\r'], " "), MAX_STATEMENT).to_owned()
}

fn truncate(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

fn is_ident(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_' || c == b'$' || c >= 0x80
}

/// A statement with its literals (strings, numbers, dollar-quoted bodies) replaced by `$n`,
/// whitespace runs collapsed, cut at [`MAX_STATEMENT`] bytes.
pub fn normalise(sql: &str) -> String {
    let b = sql.as_bytes();
    // Numbering starts past the statement's own highest parameter.
    let mut n = max_param(b);
    let mut out: Vec<u8> = Vec::with_capacity(b.len().min(MAX_STATEMENT + 8));
    let mut i = 0;
    let mut param = |out: &mut Vec<u8>| {
        n += 1;
        out.extend_from_slice(format!("${n}").as_bytes());
    };
    while i < b.len() && out.len() <= MAX_STATEMENT {
        let c = b[i];
        let prev = out.last().copied().unwrap_or(b' ');
        match c {
            b'\'' => {
                // A prefix letter (E'…', B'…', X'…', N'…') belongs to the literal.
                let escapes =
                    matches!(prev, b'E' | b'e') && out.len() >= 2 && !is_ident(out[out.len() - 2]);
                if matches!(prev, b'E' | b'e' | b'B' | b'b' | b'X' | b'x' | b'N' | b'n')
                    && (out.len() < 2 || !is_ident(out[out.len() - 2]))
                {
                    out.pop();
                }
                i += 1;
                while i < b.len() {
                    if escapes && b[i] == b'\\' {
                        i += 2;
                        continue;
                    }
                    if b[i] == b'\'' {
                        if b.get(i + 1) == Some(&b'\'') {
                            i += 2;
                            continue;
                        }
                        break;
                    }
                    i += 1;
                }
                i += 1;
                param(&mut out);
            }
            b'$' if !is_ident(prev) => {
                let tag_end = b[i + 1..]
                    .iter()
                    .position(|c| !(c.is_ascii_alphanumeric() || *c == b'_'))
                    .map(|p| i + 1 + p);
                match tag_end {
                    Some(end)
                        if b[end] == b'$'
                            && !b[i + 1..end].first().is_some_and(u8::is_ascii_digit) =>
                    {
                        let tag = &b[i..=end];
                        let body = end + 1;
                        let close = b[body..]
                            .windows(tag.len())
                            .position(|w| w == tag)
                            .map_or(b.len(), |p| body + p + tag.len());
                        i = close;
                        param(&mut out);
                    }
                    _ => {
                        out.push(c);
                        i += 1;
                    }
                }
            }
            b'0'..=b'9' if !is_ident(prev) => {
                while i < b.len()
                    && (b[i].is_ascii_digit()
                        || b[i] == b'.'
                        || ((b[i] == b'e' || b[i] == b'E') && i + 1 < b.len()))
                {
                    if (b[i] == b'e' || b[i] == b'E') && matches!(b.get(i + 1), Some(b'-' | b'+')) {
                        i += 1;
                    }
                    i += 1;
                }
                param(&mut out);
            }
            b'"' => {
                let end = b[i + 1..]
                    .iter()
                    .position(|c| *c == b'"')
                    .map_or(b.len(), |p| i + p + 2);
                out.extend_from_slice(&b[i..end]);
                i = end;
            }
            b'-' if b.get(i + 1) == Some(&b'-') => {
                let end = b[i..]
                    .iter()
                    .position(|c| *c == b'\n')
                    .map_or(b.len(), |p| i + p);
                out.extend_from_slice(&b[i..end]);
                i = end;
            }
            c if c.is_ascii_whitespace() => {
                if prev != b' ' && !out.is_empty() {
                    out.push(b' ');
                }
                i += 1;
            }
            _ => {
                out.push(c);
                i += 1;
            }
        }
    }
    while out.last() == Some(&b' ') {
        out.pop();
    }
    let s = String::from_utf8_lossy(&out);
    truncate(&s, MAX_STATEMENT).to_owned()
}

fn max_param(b: &[u8]) -> u32 {
    let mut max = 0u32;
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'$' {
            let digits = b[i + 1..].iter().take_while(|c| c.is_ascii_digit()).count();
            if digits > 0 && digits < 6 {
                let v = b[i + 1..i + 1 + digits]
                    .iter()
                    .fold(0u32, |a, d| a * 10 + u32::from(d - b'0'));
                max = max.max(v);
            }
            i += digits;
        }
        i += 1;
    }
    max
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literals_become_parameters() {
        for (sql, want) in [
            ("SELECT 1", "SELECT $1"),
            (
                "select * from t where a = 'x''y' and b=42 and c = 1.5e-3",
                "select * from t where a = $1 and b=$2 and c = $3",
            ),
            ("SELECT E'a\\'b', x'ff', t1.c2", "SELECT $1, $2, t1.c2"),
            ("SELECT $1, 'a'", "SELECT $1, $2"),
            ("SELECT $$it's$$ || $f$x$f$", "SELECT $1 || $2"),
            (
                "SELECT \"col 1\"  FROM\n\tt -- 5\n",
                "SELECT \"col 1\" FROM t -- 5",
            ),
            ("SELECT pg_sleep(2.2)", "SELECT pg_sleep($1)"),
            ("SELECT 'unterminated", "SELECT $1"),
            ("SELECT $", "SELECT $"),
        ] {
            assert_eq!(normalise(sql), want, "{sql}");
        }
    }

    #[test]
    fn long_statements_are_cut_at_one_kilobyte() {
        let sql = format!("SELECT '{}', ééé{}", "x".repeat(3000), "é".repeat(2000));
        let n = normalise(&sql);
        assert!(n.len() <= MAX_STATEMENT, "{}", n.len());
        assert!(n.starts_with("SELECT $1, ééé"));
    }

    proptest::proptest! {
        /// Any text normalises without a panic, within the limit.
        #[test]
        fn any_statement_normalises(sql in "\\PC{0,300}") {
            proptest::prop_assert!(normalise(&sql).len() <= MAX_STATEMENT);
        }
    }

    #[test]
    fn line_forms() {
        let slow = DatabaseLine::SlowStatement {
            duration: Duration::from_micros(2_201_002),
            sql: "SELECT pg_sleep(2.2)",
        };
        assert_eq!(
            slow.to_string(),
            "[DATABASE] duration: 2201.002 ms  statement: SELECT pg_sleep($1)"
        );
        let err = DatabaseLine::Error {
            code: "28P01",
            severity: "FATAL",
            message: "password authentication failed for user \"u1\"",
        };
        assert_eq!(
            err.to_string(),
            "[DATABASE] sql_error_code = 28P01 FATAL:  password authentication failed for user \"u1\""
        );
    }
}
