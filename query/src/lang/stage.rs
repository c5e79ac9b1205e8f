//! One pipe stage, parsed from its tokens: `count by path`, `p99(service) by path`,
//! `top 10 path`, `timechart 1m count by code`, `fields a,b`, `sort -count`, `head 10`.

use super::error::Failure;
use super::lex::{Tok, Token, lex};
use super::split::Segment;
use super::{Agg, Aggregate, Func, MAX_LIST, MAX_ROWS, MAX_SPAN_MICROS, Stage};

/// The stage names an unknown one is told.
const KNOWN: &str = "count, count by K, top N K, sum(K), avg(K), min(K), max(K), pNN(K) \
     (a comma list, optionally `by K`), timechart SPAN [AGGS] [by K], fields K,…, \
     sort [-]COLUMN, head N";

/// The tokens of one stage and the position read.
struct Cursor<'a> {
    tokens: Vec<Token<'a>>,
    pos: usize,
    /// The byte offset just past the stage's text (where "end of stage" errors point).
    end: usize,
}

impl<'a> Cursor<'a> {
    fn peek(&self) -> Option<Token<'a>> {
        self.tokens.get(self.pos).copied()
    }

    fn here(&self) -> usize {
        self.peek().map_or(self.end, |t| t.at)
    }

    fn next(&mut self) -> Option<Token<'a>> {
        let t = self.peek();
        self.pos += usize::from(t.is_some());
        t
    }

    fn found(&self) -> String {
        self.peek()
            .map_or_else(|| "the end of the stage".into(), |t| t.tok.describe())
    }

    fn fail<T>(&self, expected: &str) -> Result<T, Failure> {
        Err(Failure::new(
            self.here(),
            format!("expected {expected}, found {}", self.found()),
        ))
    }

    fn word(&mut self, expected: &str) -> Result<&'a str, Failure> {
        match self.peek() {
            Some(Token {
                tok: Tok::Word(w), ..
            }) => {
                self.pos += 1;
                Ok(w)
            }
            _ => self.fail(expected),
        }
    }

    fn eat(&mut self, tok: Tok<'_>) -> bool {
        let hit = self.peek().is_some_and(|t| t.tok == tok);
        self.pos += usize::from(hit);
        hit
    }

    fn want(&mut self, tok: Tok<'_>, expected: &str) -> Result<(), Failure> {
        if self.eat(tok) {
            Ok(())
        } else {
            self.fail(expected)
        }
    }

    fn done(&self) -> Result<(), Failure> {
        match self.peek() {
            None => Ok(()),
            Some(_) => self.fail("the end of the stage"),
        }
    }
}

/// Parses one stage.
pub(super) fn parse_stage(segment: Segment<'_>) -> Result<Stage, Failure> {
    let mut c = Cursor {
        tokens: lex(segment.text, segment.at),
        pos: 0,
        end: segment.at + segment.text.trim_end().len(),
    };
    let Some(first) = c.peek() else {
        return c.fail("a stage");
    };
    let name = match first.tok {
        Tok::Word(w) => w,
        _ => return c.fail("a stage"),
    };
    let stage = match name {
        "top" => {
            c.next();
            let n = rows(&mut c)?;
            Stage::Top(n, keys(&mut c)?)
        }
        "timechart" => {
            c.next();
            timechart(&mut c)?
        }
        "fields" => {
            c.next();
            Stage::Fields(columns(&mut c)?)
        }
        "sort" => {
            c.next();
            sort(&mut c)?
        }
        "head" => {
            c.next();
            Stage::Head(rows(&mut c)?)
        }
        _ if func(name).is_some() => Stage::Aggregate(aggregate(&mut c, None)?),
        _ => {
            return Err(Failure::new(
                first.at,
                format!("unknown stage {name:?}; the stages are {KNOWN}"),
            ));
        }
    };
    c.done()?;
    Ok(stage)
}

/// `N`: a number of rows, 1 to `MAX_ROWS`.
fn rows(c: &mut Cursor<'_>) -> Result<usize, Failure> {
    let at = c.here();
    let expected = format!("a number of rows from 1 to {MAX_ROWS}");
    let w = c.word(&expected)?;
    match w.parse::<usize>() {
        Ok(n) if (1..=MAX_ROWS).contains(&n) => Ok(n),
        _ => Err(Failure::new(
            at,
            format!("expected {expected}, found {w:?}"),
        )),
    }
}

/// `K[,K…]`, at most `MAX_LIST`.
fn keys(c: &mut Cursor<'_>) -> Result<Vec<String>, Failure> {
    let mut keys = vec![c.word("a key")?.to_owned()];
    while c.eat(Tok::Comma) {
        if keys.len() == MAX_LIST {
            return c.fail(&format!("at most {MAX_LIST} keys"));
        }
        keys.push(c.word("a key")?.to_owned());
    }
    Ok(keys)
}

/// `COLUMN[,COLUMN…]`: keys, or columns named as written (`p99(service)`).
fn columns(c: &mut Cursor<'_>) -> Result<Vec<String>, Failure> {
    let mut names = vec![column(c)?];
    while c.eat(Tok::Comma) {
        if names.len() == MAX_LIST {
            return c.fail(&format!("at most {MAX_LIST} columns"));
        }
        names.push(column(c)?);
    }
    Ok(names)
}

/// `WORD` or `WORD(KEY)`.
fn column(c: &mut Cursor<'_>) -> Result<String, Failure> {
    let name = c.word("a column")?;
    if !c.eat(Tok::Open) {
        return Ok(name.to_owned());
    }
    let key = c.word("a key")?;
    c.want(Tok::Close, "\")\"")?;
    Ok(format!("{name}({key})"))
}

/// The function an aggregate's name calls: `count`, `sum`, …, `p99`, `p99.9`.
fn func(name: &str) -> Option<Func> {
    Some(match name {
        "count" => Func::Count,
        "sum" => Func::Sum,
        "avg" => Func::Avg,
        "min" => Func::Min,
        "max" => Func::Max,
        _ => {
            let pct: f64 = name.strip_prefix('p')?.parse().ok()?;
            if !(pct > 0.0 && pct <= 100.0) || name.contains(['e', 'E', '+', '-']) {
                return None;
            }
            Func::Percentile(pct / 100.0)
        }
    })
}

/// `AGG[, AGG…] [by K[,K…]]`; `span` for a timechart.
fn aggregate(c: &mut Cursor<'_>, span: Option<i64>) -> Result<Aggregate, Failure> {
    let mut aggs = vec![agg(c)?];
    while c.eat(Tok::Comma) {
        if aggs.len() == MAX_LIST {
            return c.fail(&format!("at most {MAX_LIST} aggregates"));
        }
        aggs.push(agg(c)?);
    }
    let by = by(c)?;
    Ok(Aggregate { aggs, by, span })
}

fn by(c: &mut Cursor<'_>) -> Result<Vec<String>, Failure> {
    match c.peek().map(|t| t.tok) {
        None => Ok(Vec::new()),
        Some(Tok::Word("by")) => {
            c.next();
            keys(c)
        }
        Some(_) => c.fail("\",\", \"by\" or the end of the stage"),
    }
}

/// `count` or `FUNC(KEY)`.
fn agg(c: &mut Cursor<'_>) -> Result<Agg, Failure> {
    let at = c.here();
    let expected = "an aggregate: count, sum(K), avg(K), min(K), max(K) or pNN(K)";
    let name = c.word(expected)?;
    let Some(func) = func(name) else {
        return Err(Failure::new(
            at,
            format!("expected {expected}, found {name:?}"),
        ));
    };
    if func == Func::Count {
        return Ok(Agg {
            func,
            key: String::new(),
            name: name.to_owned(),
        });
    }
    c.want(Tok::Open, &format!("\"(\" after {name}"))?;
    let key = c.word("a key")?.to_owned();
    c.want(Tok::Close, "\")\"")?;
    Ok(Agg {
        func,
        name: format!("{name}({key})"),
        key,
    })
}

/// `SPAN [AGGS] [by K]`.
fn timechart(c: &mut Cursor<'_>) -> Result<Stage, Failure> {
    let at = c.here();
    let expected = "a span such as 30s, 1m, 1h or 1d";
    let text = c.word(expected)?;
    let span = span_micros(text)
        .ok_or_else(|| Failure::new(at, format!("expected {expected}, found {text:?}")))?;
    let aggregate = match c.peek().map(|t| t.tok) {
        None | Some(Tok::Word("by")) => Aggregate {
            aggs: vec![Agg {
                func: Func::Count,
                key: String::new(),
                name: "count".into(),
            }],
            by: by(c)?,
            span: Some(span),
        },
        Some(_) => aggregate(c, Some(span))?,
    };
    Ok(Stage::Aggregate(aggregate))
}

/// A span in microseconds: at least a second, at most `MAX_SPAN_MICROS`.
fn span_micros(text: &str) -> Option<i64> {
    let seconds = match text.strip_suffix('d') {
        Some(days) => days.parse::<f64>().ok()? * 86_400.0,
        None => logfmt::parse_duration(text)?,
    };
    let micros = (seconds * 1e6).round();
    (micros >= 1e6 && micros <= MAX_SPAN_MICROS as f64).then_some(micros as i64)
}

/// `[-]COLUMN`, the column named as written: `count`, `-p99(service)`, `path`.
fn sort(c: &mut Cursor<'_>) -> Result<Stage, Failure> {
    let at = c.here();
    let written = column(c)?;
    let (descending, column) = match written.strip_prefix('-') {
        Some(rest) => (true, rest.to_owned()),
        None => (false, written),
    };
    if column.is_empty() || column.starts_with('(') {
        return Err(Failure::new(at, "expected a column after \"-\""));
    }
    Ok(Stage::Sort {
        column,
        descending,
        at,
    })
}
