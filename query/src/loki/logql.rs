//! The LogQL subset the Loki API reads, parsed with bounds: at most [`MAX_LEN`] bytes,
//! [`MAX_DEPTH`] nested parentheses, [`MAX_STAGES`] pipeline stages, [`MAX_MATCHERS`]
//! matchers, regular expressions of at most [`MAX_REGEX_LEN`] bytes compiled within
//! [`REGEX_SIZE_LIMIT`]. Anything else is a [`LogqlError`] that names what was wrong and
//! where, which the API answers with 400.
//!
//! ```text
//! expr     = log / range / vector
//! log      = "{" matcher *("," matcher) "}" *stage
//! matcher  = label ("=" / "!=") string
//! stage    = ("|=" / "!=" / "|~" / "!~") string
//!          / "|" "logfmt" / "|" "unwrap" label / "|" "unwrap" conv "(" label ")"
//!          / "|" labelexpr
//! labelexpr= and *("or" and);  and = unary *(("and" / ",") unary);  unary = "(" labelexpr ")" / cmp
//! cmp      = label ("=" / "==" / "!=" / ">" / ">=" / "<" / "<=") (string / number)
//! range    = rangefn "(" [number ","] log "[" duration "]" ")" [grouping]
//! rangefn  = count_over_time / rate / sum_over_time / avg_over_time / min_over_time
//!          / max_over_time / quantile_over_time
//! vector   = vecop [grouping] "(" [number ","] (range / vector) ")" [grouping]
//! vecop    = sum / avg / min / max / count / topk / bottomk
//! grouping = "by" "(" label *("," label) ")"
//! ```

use regex::Regex;

/// The longest query read, in bytes.
pub const MAX_LEN: usize = 16 * 1024;
/// How deep parentheses (aggregations, label filter groups) may nest.
pub const MAX_DEPTH: usize = 16;
/// The most stages after a selector.
pub const MAX_STAGES: usize = 32;
/// The most matchers in a selector, and labels in a `by`.
pub const MAX_MATCHERS: usize = 16;
/// The longest regular expression, in bytes.
pub const MAX_REGEX_LEN: usize = 1024;
/// The most memory a compiled regular expression may take.
pub const REGEX_SIZE_LIMIT: usize = 1 << 20;
/// The largest `k` of `topk`/`bottomk`.
pub const MAX_K: usize = 10_000;
/// The longest range: 30 days.
pub const MAX_RANGE_MS: i64 = 30 * 86_400 * 1000;

/// Why a query does not read: the byte offset and what was expected.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("parse error at byte {at}: {message}")]
pub struct LogqlError {
    /// Where, in bytes from the start.
    pub at: usize,
    /// What was wrong.
    pub message: String,
}

/// A stream matcher's operator.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MatchOp {
    Eq,
    Ne,
}

/// `label="value"` in a selector.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Matcher {
    pub label: String,
    pub op: MatchOp,
    pub value: String,
}

/// A line filter.
#[derive(Clone, Debug)]
pub enum LineFilter {
    /// `|= "text"`.
    Contains(String),
    /// `!= "text"`.
    NotContains(String),
    /// `|~ "re"` (`true`) or `!~ "re"` (`false`).
    Regex(Regex, bool),
}

/// A label filter's comparison.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CmpOp {
    Eq,
    Ne,
    Gt,
    Ge,
    Lt,
    Le,
}

/// A label filter's value: a string, or a number as written (`500`, `1s`, `20MB`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LabelValue {
    Text(String),
    Number(String),
}

/// A label filter expression.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LabelExpr {
    And(Vec<LabelExpr>),
    Or(Vec<LabelExpr>),
    Cmp {
        label: String,
        op: CmpOp,
        value: LabelValue,
    },
}

/// How `unwrap` reads a value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Conversion {
    /// As the query engine reads it: durations in ms, sizes in bytes.
    Plain,
    /// `duration(k)`, `duration_seconds(k)`: a duration, in seconds.
    Seconds,
    /// `bytes(k)`: a size, in bytes.
    Bytes,
}

/// `| unwrap k`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Unwrap {
    pub label: String,
    pub conversion: Conversion,
}

/// A stage after the selector.
#[derive(Clone, Debug)]
pub enum Stage {
    Line(LineFilter),
    Logfmt,
    Label(LabelExpr),
    Unwrap(Unwrap),
}

/// A log query: a selector and its stages.
#[derive(Clone, Debug)]
pub struct LogExpr {
    pub matchers: Vec<Matcher>,
    pub stages: Vec<Stage>,
}

/// A range function.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum RangeFn {
    CountOverTime,
    Rate,
    SumOverTime,
    AvgOverTime,
    MinOverTime,
    MaxOverTime,
    QuantileOverTime(f64),
}

/// A vector aggregation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VecOp {
    Sum,
    Avg,
    Min,
    Max,
    Count,
    Topk(usize),
    Bottomk(usize),
}

/// A parsed query.
#[derive(Clone, Debug)]
pub enum Expr {
    Log(LogExpr),
    Range {
        func: RangeFn,
        log: LogExpr,
        range_ms: i64,
        by: Option<Vec<String>>,
    },
    Vector {
        op: VecOp,
        by: Option<Vec<String>>,
        inner: Box<Expr>,
    },
}

impl RangeFn {
    /// Whether it needs `| unwrap`.
    pub fn unwraps(self) -> bool {
        !matches!(self, RangeFn::CountOverTime | RangeFn::Rate)
    }
}

impl Expr {
    /// Parses `text`.
    pub fn parse(text: &str) -> Result<Expr, LogqlError> {
        if text.len() > MAX_LEN {
            return Err(LogqlError {
                at: MAX_LEN,
                message: format!("the query is longer than {MAX_LEN} bytes"),
            });
        }
        let tokens = lex(text)?;
        let mut p = Parser {
            tokens,
            pos: 0,
            depth: 0,
            end: text.len(),
        };
        let expr = p.expr()?;
        if let Some(t) = p.peek() {
            return Err(p.fail_at(t.at, format!("unexpected {} after the query", t.kind)));
        }
        Ok(expr)
    }
}

#[derive(Clone, Debug, PartialEq)]
enum Kind {
    Punct(&'static str),
    Ident(String),
    Str(String),
    Number(String),
}

impl std::fmt::Display for Kind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Kind::Punct(p) => write!(f, "{p:?}"),
            Kind::Ident(i) => write!(f, "{i:?}"),
            Kind::Str(s) => write!(f, "the string {s:?}"),
            Kind::Number(n) => write!(f, "the number {n}"),
        }
    }
}

#[derive(Clone, Debug)]
struct Token {
    kind: Kind,
    at: usize,
}

const PUNCTS: [&str; 20] = [
    "|=", "|~", "!=", "!~", "=~", "==", ">=", "<=", "{", "}", "(", ")", "[", "]", ",", "=", "|",
    ">", "<", "!",
];

fn lex(text: &str) -> Result<Vec<Token>, LogqlError> {
    let b = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        if c.is_ascii_whitespace() {
            i += 1;
            continue;
        }
        let at = i;
        if c == b'"' || c == b'`' {
            let (s, next) = string(text, i)?;
            out.push(Token {
                kind: Kind::Str(s),
                at,
            });
            i = next;
            continue;
        }
        if c.is_ascii_digit()
            || c == b'.'
            || (c == b'-' && b.get(i + 1).is_some_and(u8::is_ascii_digit))
        {
            let len = 1 + b[i + 1..]
                .iter()
                .take_while(|c| c.is_ascii_alphanumeric() || **c == b'.' || **c == b'_')
                .count();
            out.push(Token {
                kind: Kind::Number(text[i..i + len].to_owned()),
                at,
            });
            i += len;
            continue;
        }
        if c.is_ascii_alphabetic() || c == b'_' {
            let len = b[i..]
                .iter()
                .take_while(|c| c.is_ascii_alphanumeric() || **c == b'_')
                .count();
            out.push(Token {
                kind: Kind::Ident(text[i..i + len].to_owned()),
                at,
            });
            i += len;
            continue;
        }
        let Some(p) = PUNCTS.iter().find(|p| b[i..].starts_with(p.as_bytes())) else {
            let ch = text[i..].chars().next().unwrap_or('?');
            return Err(LogqlError {
                at,
                message: format!("unexpected character {ch:?}"),
            });
        };
        out.push(Token {
            kind: Kind::Punct(p),
            at,
        });
        i += p.len();
    }
    Ok(out)
}

/// A quoted string from `start` (a `"` with Go's escapes, or a raw `` ` `` string); the text
/// and the offset after it.
fn string(text: &str, start: usize) -> Result<(String, usize), LogqlError> {
    let b = text.as_bytes();
    let quote = b[start];
    let unterminated = || LogqlError {
        at: start,
        message: "a string is not closed".to_owned(),
    };
    if quote == b'`' {
        let end = text[start + 1..].find('`').ok_or_else(unterminated)?;
        return Ok((text[start + 1..start + 1 + end].to_owned(), start + end + 2));
    }
    let mut out = String::new();
    let mut chars = text[start + 1..].char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '"' => return Ok((out, start + 1 + i + 1)),
            '\\' => {
                let Some((_, e)) = chars.next() else {
                    return Err(unterminated());
                };
                match e {
                    'n' => out.push('\n'),
                    't' => out.push('\t'),
                    'r' => out.push('\r'),
                    '"' | '\\' | '`' | '\'' => out.push(e),
                    // Regular expressions keep their escapes: `\d`, `\.`.
                    other => {
                        out.push('\\');
                        out.push(other);
                    }
                }
            }
            c => out.push(c),
        }
    }
    Err(unterminated())
}

struct Parser {
    tokens: Vec<Token>,
    pos: usize,
    depth: usize,
    end: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.pos)
    }

    fn peek_kind(&self) -> Option<&Kind> {
        self.peek().map(|t| &t.kind)
    }

    fn at(&self) -> usize {
        self.peek().map_or(self.end, |t| t.at)
    }

    fn fail_at(&self, at: usize, message: impl Into<String>) -> LogqlError {
        LogqlError {
            at,
            message: message.into(),
        }
    }

    fn fail(&self, message: impl Into<String>) -> LogqlError {
        self.fail_at(self.at(), message)
    }

    fn found(&self) -> String {
        self.peek()
            .map_or_else(|| "the end of the query".to_owned(), |t| t.kind.to_string())
    }

    fn is_punct(&self, p: &str) -> bool {
        matches!(self.peek_kind(), Some(Kind::Punct(q)) if *q == p)
    }

    fn eat_punct(&mut self, p: &str) -> bool {
        let yes = self.is_punct(p);
        if yes {
            self.pos += 1;
        }
        yes
    }

    fn expect_punct(&mut self, p: &str) -> Result<(), LogqlError> {
        if self.eat_punct(p) {
            Ok(())
        } else {
            Err(self.fail(format!("expected {p:?}, found {}", self.found())))
        }
    }

    fn ident(&mut self) -> Result<String, LogqlError> {
        match self.peek_kind() {
            Some(Kind::Ident(i)) => {
                let i = i.clone();
                self.pos += 1;
                Ok(i)
            }
            _ => Err(self.fail(format!("expected a label name, found {}", self.found()))),
        }
    }

    fn string(&mut self) -> Result<String, LogqlError> {
        match self.peek_kind() {
            Some(Kind::Str(s)) => {
                let s = s.clone();
                self.pos += 1;
                Ok(s)
            }
            _ => Err(self.fail(format!("expected a quoted string, found {}", self.found()))),
        }
    }

    fn number(&mut self) -> Result<(String, usize), LogqlError> {
        let at = self.at();
        match self.peek_kind() {
            Some(Kind::Number(n)) => {
                let n = n.clone();
                self.pos += 1;
                Ok((n, at))
            }
            _ => Err(self.fail(format!("expected a number, found {}", self.found()))),
        }
    }

    fn enter(&mut self) -> Result<(), LogqlError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(self.fail(format!("nested more than {MAX_DEPTH} deep")));
        }
        Ok(())
    }

    fn expr(&mut self) -> Result<Expr, LogqlError> {
        if self.is_punct("{") {
            return Ok(Expr::Log(self.log()?));
        }
        let at = self.at();
        let name = self.ident().map_err(|_| {
            self.fail(format!(
                "expected a stream selector {{app=\"…\"}} or a function, found {}",
                self.found()
            ))
        })?;
        if let Some(op) = vec_op(&name) {
            return self.vector(op);
        }
        if let Some(func) = range_fn(&name) {
            return self.range(func, at);
        }
        Err(self.fail_at(
            at,
            format!(
                "unknown function {name:?}; supported: count_over_time, rate, sum_over_time, \
                 avg_over_time, min_over_time, max_over_time, quantile_over_time, sum, avg, \
                 min, max, count, topk, bottomk"
            ),
        ))
    }

    fn grouping(&mut self) -> Result<Option<Vec<String>>, LogqlError> {
        if matches!(self.peek_kind(), Some(Kind::Ident(i)) if i == "without") {
            return Err(self.fail("`without` is not supported; use `by (…)`"));
        }
        if !matches!(self.peek_kind(), Some(Kind::Ident(i)) if i == "by") {
            return Ok(None);
        }
        self.pos += 1;
        self.expect_punct("(")?;
        let mut labels = Vec::new();
        if !self.is_punct(")") {
            loop {
                labels.push(self.ident()?);
                if labels.len() > MAX_MATCHERS {
                    return Err(self.fail(format!("more than {MAX_MATCHERS} labels in `by`")));
                }
                if !self.eat_punct(",") {
                    break;
                }
            }
        }
        self.expect_punct(")")?;
        Ok(Some(labels))
    }

    fn vector(&mut self, op: VecOp) -> Result<Expr, LogqlError> {
        let mut by = self.grouping()?;
        self.enter()?;
        self.expect_punct("(")?;
        let op = match op {
            VecOp::Topk(_) | VecOp::Bottomk(_) => {
                let (n, at) = self.number()?;
                let k = n
                    .parse::<usize>()
                    .ok()
                    .filter(|k| (1..=MAX_K).contains(k))
                    .ok_or_else(|| {
                        self.fail_at(at, format!("k must be a whole number from 1 to {MAX_K}"))
                    })?;
                self.expect_punct(",")?;
                if matches!(op, VecOp::Topk(_)) {
                    VecOp::Topk(k)
                } else {
                    VecOp::Bottomk(k)
                }
            }
            op => op,
        };
        let inner_at = self.at();
        let inner = self.expr()?;
        if matches!(inner, Expr::Log(_)) {
            return Err(self.fail_at(
                inner_at,
                "an aggregation takes a range function such as count_over_time({…}[5m]), not log lines",
            ));
        }
        self.expect_punct(")")?;
        self.depth -= 1;
        if by.is_none() {
            by = self.grouping()?;
        }
        Ok(Expr::Vector {
            op,
            by,
            inner: Box::new(inner),
        })
    }

    fn range(&mut self, func: RangeFn, at: usize) -> Result<Expr, LogqlError> {
        self.enter()?;
        self.expect_punct("(")?;
        let func = if let RangeFn::QuantileOverTime(_) = func {
            let (n, q_at) = self.number()?;
            let q = n
                .parse::<f64>()
                .ok()
                .filter(|q| *q > 0.0 && *q <= 1.0)
                .ok_or_else(|| self.fail_at(q_at, "the quantile must be a number in (0, 1]"))?;
            self.expect_punct(",")?;
            RangeFn::QuantileOverTime(q)
        } else {
            func
        };
        if !self.is_punct("{") {
            return Err(self.fail(format!(
                "a range function takes a log query {{…}} [range], found {}",
                self.found()
            )));
        }
        let log = self.log()?;
        self.expect_punct("[")?;
        let (text, d_at) = self.number()?;
        let range_ms = prometheus_duration_ms(&text)
            .filter(|ms| (1000..=MAX_RANGE_MS).contains(ms))
            .ok_or_else(|| {
                self.fail_at(
                    d_at,
                    format!("the range {text:?} is not a duration from 1s to 30d (5m, 1h, 30s)"),
                )
            })?;
        self.expect_punct("]")?;
        self.expect_punct(")")?;
        self.depth -= 1;
        let unwrap = log.stages.iter().any(|s| matches!(s, Stage::Unwrap(_)));
        if func.unwraps() != unwrap {
            return Err(self.fail_at(
                at,
                if unwrap {
                    "count_over_time and rate count lines: drop `| unwrap`"
                } else {
                    "this function needs a value: add `| unwrap LABEL` before the range"
                },
            ));
        }
        let by = self.grouping()?;
        if by.is_some() && !func.unwraps() {
            return Err(self.fail_at(
                at,
                "count_over_time and rate take no `by`; wrap them in sum by (…)",
            ));
        }
        Ok(Expr::Range {
            func,
            log,
            range_ms,
            by,
        })
    }

    fn log(&mut self) -> Result<LogExpr, LogqlError> {
        self.expect_punct("{")?;
        let mut matchers = Vec::new();
        if !self.is_punct("}") {
            loop {
                let label = self.ident()?;
                let op = if self.eat_punct("=") {
                    MatchOp::Eq
                } else if self.eat_punct("!=") {
                    MatchOp::Ne
                } else if self.is_punct("=~") || self.is_punct("!~") {
                    return Err(self.fail(
                        "regular-expression matchers (=~, !~) are not supported in a selector; use = or !=",
                    ));
                } else {
                    return Err(self.fail(format!("expected = or !=, found {}", self.found())));
                };
                let value = self.string()?;
                matchers.push(Matcher { label, op, value });
                if matchers.len() > MAX_MATCHERS {
                    return Err(self.fail(format!("more than {MAX_MATCHERS} matchers")));
                }
                if !self.eat_punct(",") {
                    break;
                }
            }
        }
        self.expect_punct("}")?;
        let mut stages = Vec::new();
        while let Some(stage) = self.stage()? {
            if matches!(stages.last(), Some(Stage::Unwrap(_))) {
                return Err(self.fail("nothing may follow `| unwrap` but the range"));
            }
            stages.push(stage);
            if stages.len() > MAX_STAGES {
                return Err(self.fail(format!("more than {MAX_STAGES} stages")));
            }
        }
        Ok(LogExpr { matchers, stages })
    }

    fn stage(&mut self) -> Result<Option<Stage>, LogqlError> {
        for (p, make) in [("|=", 0u8), ("!=", 1), ("|~", 2), ("!~", 3)] {
            if self.eat_punct(p) {
                let at = self.at();
                let s = self.string()?;
                return Ok(Some(Stage::Line(match make {
                    0 => LineFilter::Contains(s),
                    1 => LineFilter::NotContains(s),
                    _ => LineFilter::Regex(regex(&s).map_err(|m| self.fail_at(at, m))?, make == 2),
                })));
            }
        }
        if !self.eat_punct("|") {
            return Ok(None);
        }
        match self.peek_kind() {
            Some(Kind::Ident(i)) if i == "logfmt" => {
                self.pos += 1;
                if matches!(self.peek_kind(), Some(Kind::Ident(_))) {
                    return Err(self.fail("`| logfmt` takes no parameters here"));
                }
                Ok(Some(Stage::Logfmt))
            }
            Some(Kind::Ident(i)) if i == "unwrap" => {
                self.pos += 1;
                let name = self.ident()?;
                let conversion = match name.as_str() {
                    "duration" | "duration_seconds" => Some(Conversion::Seconds),
                    "bytes" => Some(Conversion::Bytes),
                    _ => None,
                };
                match conversion {
                    Some(conversion) if self.eat_punct("(") => {
                        let label = self.ident()?;
                        self.expect_punct(")")?;
                        Ok(Some(Stage::Unwrap(Unwrap { label, conversion })))
                    }
                    _ => Ok(Some(Stage::Unwrap(Unwrap {
                        label: name,
                        conversion: Conversion::Plain,
                    }))),
                }
            }
            Some(Kind::Ident(i))
                if ["json", "regexp", "pattern", "line_format", "label_format", "unpack", "drop", "keep", "decolorize"]
                    .contains(&i.as_str()) =>
            {
                Err(self.fail(format!(
                    "`| {i}` is not supported; supported stages: |=, !=, |~, !~, | logfmt, label filters, | unwrap"
                )))
            }
            _ => Ok(Some(Stage::Label(self.label_or()?))),
        }
    }

    fn label_or(&mut self) -> Result<LabelExpr, LogqlError> {
        let mut any = vec![self.label_and()?];
        while matches!(self.peek_kind(), Some(Kind::Ident(i)) if i == "or") {
            self.pos += 1;
            any.push(self.label_and()?);
        }
        Ok(if any.len() == 1 {
            any.remove(0)
        } else {
            LabelExpr::Or(any)
        })
    }

    fn label_and(&mut self) -> Result<LabelExpr, LogqlError> {
        let mut all = vec![self.label_unary()?];
        loop {
            let and = matches!(self.peek_kind(), Some(Kind::Ident(i)) if i == "and");
            if and || self.is_punct(",") {
                self.pos += 1;
                all.push(self.label_unary()?);
            } else {
                break;
            }
        }
        Ok(if all.len() == 1 {
            all.remove(0)
        } else {
            LabelExpr::And(all)
        })
    }

    fn label_unary(&mut self) -> Result<LabelExpr, LogqlError> {
        if self.eat_punct("(") {
            self.enter()?;
            let e = self.label_or()?;
            self.expect_punct(")")?;
            self.depth -= 1;
            return Ok(e);
        }
        let label = self.ident()?;
        let op = match self.peek_kind() {
            Some(Kind::Punct("=" | "==")) => CmpOp::Eq,
            Some(Kind::Punct("!=")) => CmpOp::Ne,
            Some(Kind::Punct(">")) => CmpOp::Gt,
            Some(Kind::Punct(">=")) => CmpOp::Ge,
            Some(Kind::Punct("<")) => CmpOp::Lt,
            Some(Kind::Punct("<=")) => CmpOp::Le,
            Some(Kind::Punct("=~" | "!~")) => {
                return Err(
                    self.fail("regular-expression label filters (=~, !~) are not supported")
                );
            }
            _ => {
                return Err(self.fail(format!(
                    "expected a label filter (label = \"v\", label >= 500, label > 1s), found {}",
                    self.found()
                )));
            }
        };
        self.pos += 1;
        let value = match self.peek_kind() {
            Some(Kind::Str(_)) => LabelValue::Text(self.string()?),
            Some(Kind::Number(_)) => {
                let (n, at) = self.number()?;
                if logfmt::parse_quantity(n.as_bytes()).is_none() {
                    return Err(self.fail_at(
                        at,
                        format!("{n:?} is not a number, a duration (1s, 250ms) or a size (20MB)"),
                    ));
                }
                LabelValue::Number(n)
            }
            _ => {
                return Err(self.fail(format!(
                    "expected a quoted string or a number, found {}",
                    self.found()
                )));
            }
        };
        if matches!(value, LabelValue::Text(_)) && !matches!(op, CmpOp::Eq | CmpOp::Ne) {
            return Err(self.fail("compare strings with = or != only"));
        }
        Ok(LabelExpr::Cmp { label, op, value })
    }
}

fn vec_op(name: &str) -> Option<VecOp> {
    Some(match name {
        "sum" => VecOp::Sum,
        "avg" => VecOp::Avg,
        "min" => VecOp::Min,
        "max" => VecOp::Max,
        "count" => VecOp::Count,
        "topk" => VecOp::Topk(0),
        "bottomk" => VecOp::Bottomk(0),
        _ => return None,
    })
}

fn range_fn(name: &str) -> Option<RangeFn> {
    Some(match name {
        "count_over_time" => RangeFn::CountOverTime,
        "rate" => RangeFn::Rate,
        "sum_over_time" => RangeFn::SumOverTime,
        "avg_over_time" => RangeFn::AvgOverTime,
        "min_over_time" => RangeFn::MinOverTime,
        "max_over_time" => RangeFn::MaxOverTime,
        "quantile_over_time" => RangeFn::QuantileOverTime(0.0),
        _ => return None,
    })
}

/// A regular expression within the bounds.
fn regex(pattern: &str) -> Result<Regex, String> {
    if pattern.len() > MAX_REGEX_LEN {
        return Err(format!(
            "the regular expression is longer than {MAX_REGEX_LEN} bytes"
        ));
    }
    regex::RegexBuilder::new(pattern)
        .size_limit(REGEX_SIZE_LIMIT)
        .dfa_size_limit(REGEX_SIZE_LIMIT)
        .nest_limit(MAX_DEPTH as u32 * 4)
        .build()
        .map_err(|e| format!("the regular expression does not compile: {e}"))
}

/// A Prometheus duration (`5m`, `1h30m`, `250ms`, `1d`, `1w`) in milliseconds.
pub fn prometheus_duration_ms(text: &str) -> Option<i64> {
    let mut rest = text;
    let mut total: i64 = 0;
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 || digits > 12 {
            return None;
        }
        let n: i64 = rest[..digits].parse().ok()?;
        rest = &rest[digits..];
        let (scale, len) = if rest.starts_with("ms") {
            (1, 2)
        } else {
            let unit = rest.chars().next()?;
            let scale = match unit {
                's' => 1000,
                'm' => 60_000,
                'h' => 3_600_000,
                'd' => 86_400_000,
                'w' => 7 * 86_400_000,
                'y' => 365 * 86_400_000,
                _ => return None,
            };
            (scale, 1)
        };
        total = total.checked_add(n.checked_mul(scale)?)?;
        rest = &rest[len..];
    }
    Some(total)
}
