//! LogQL onto issue 7's query language: a selector and its stages become the filter of a
//! query (`source="paas" process="router" "GET" not "health" status>=500 service>1s`), a range
//! function its aggregating stage (`timechart 60s count by path`, `p99(service) by path`).
//! What the language cannot say (regular expressions) is applied to the lines the filter
//! gives, before the same executor aggregates them.
//!
//! The app comes from the selector's `app="…"` matcher; without one, an app key reads its own
//! app, and an operator key is refused (a query reads one app).

use regex::Regex;

use super::logql::{
    CmpOp, Conversion, LabelExpr, LabelValue, LineFilter, LogExpr, MatchOp, RangeFn, Stage, Unwrap,
};

/// The labels of a stream: the selector's labels.
pub const STREAM_LABELS: [&str; 3] = ["app", "source", "process"];

/// A log query as the engine runs it.
#[derive(Clone, Debug)]
pub struct Plan {
    /// The app it reads.
    pub app: String,
    /// The query language's filter (`*` for every line).
    pub filter: String,
    /// Regular expressions applied to the lines the filter gives: `(re, must_match)`.
    pub regexes: Vec<(Regex, bool)>,
    /// The unwrapped label, for a range function that takes values.
    pub unwrap: Option<Unwrap>,
}

impl Plan {
    /// Whether a line's message passes the regular expressions.
    pub fn passes(&self, message: &str) -> bool {
        self.regexes
            .iter()
            .all(|(re, must)| re.is_match(message) == *must)
    }
}

/// Why a query cannot be planned: a 400 (`Invalid`) or a 403 (`Forbidden`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PlanError {
    Invalid(String),
    Forbidden(String),
}

/// Plans `log` for a caller who may read `allowed` (`None`: every app).
pub fn plan(log: &LogExpr, allowed: Option<&str>) -> Result<Plan, PlanError> {
    let mut app: Option<String> = None;
    let mut terms: Vec<String> = Vec::new();
    for m in &log.matchers {
        match (m.label.as_str(), m.op) {
            ("app", MatchOp::Eq) => {
                if app.as_ref().is_some_and(|a| a != &m.value) {
                    return Err(PlanError::Invalid(
                        "a query reads one app: the selector names two".to_owned(),
                    ));
                }
                app = Some(m.value.clone());
            }
            ("app", MatchOp::Ne) => {
                return Err(PlanError::Invalid(
                    "app != is not supported: a query reads one app, named with app=\"…\""
                        .to_owned(),
                ));
            }
            ("source" | "process" | "dyno", op) => {
                let term = format!("{}={}", m.label, quote(&m.value));
                terms.push(if op == MatchOp::Ne {
                    format!("not {term}")
                } else {
                    term
                });
            }
            (other, _) => {
                return Err(PlanError::Invalid(format!(
                    "the stream label {other:?} does not exist; streams have the labels app, source and process"
                )));
            }
        }
    }
    let app = match (app, allowed) {
        (Some(a), Some(mine)) if a.as_str() != mine => {
            return Err(PlanError::Forbidden(format!(
                "this key may read the app {mine:?} only"
            )));
        }
        (Some(a), _) => a,
        (None, Some(mine)) => mine.to_owned(),
        (None, None) => {
            return Err(PlanError::Invalid(
                "name the app in the selector: {app=\"…\"} (an operator key reads any app, one a query)"
                    .to_owned(),
            ));
        }
    };
    let mut regexes = Vec::new();
    let mut unwrap = None;
    for stage in &log.stages {
        match stage {
            Stage::Line(LineFilter::Contains(s)) => terms.push(quote(s)),
            Stage::Line(LineFilter::NotContains(s)) => terms.push(format!("not {}", quote(s))),
            Stage::Line(LineFilter::Regex(re, must)) => regexes.push((re.clone(), *must)),
            // The engine reads every line's logfmt pairs: `| logfmt` is what it always does.
            Stage::Logfmt => {}
            Stage::Label(e) => terms.push(label_filter(e)),
            Stage::Unwrap(u) => unwrap = Some(u.clone()),
        }
    }
    let filter = if terms.is_empty() {
        "*".to_owned()
    } else {
        terms.join(" ")
    };
    Ok(Plan {
        app,
        filter,
        regexes,
        unwrap,
    })
}

/// A label filter in the query language (same precedence: `and` binds tighter than `or`).
fn label_filter(e: &LabelExpr) -> String {
    match e {
        LabelExpr::And(all) => format!(
            "({})",
            all.iter()
                .map(label_filter)
                .collect::<Vec<_>>()
                .join(" and ")
        ),
        LabelExpr::Or(any) => format!(
            "({})",
            any.iter()
                .map(label_filter)
                .collect::<Vec<_>>()
                .join(" or ")
        ),
        LabelExpr::Cmp { label, op, value } => {
            let value = match value {
                LabelValue::Text(t) => quote(t),
                LabelValue::Number(n) => n.clone(),
            };
            match op {
                // LogQL's `!=` holds on a line without the label, as `not k=v` does.
                CmpOp::Ne => format!("not {label}={value}"),
                CmpOp::Eq => format!("{label}={value}"),
                CmpOp::Gt => format!("{label}>{value}"),
                CmpOp::Ge => format!("{label}>={value}"),
                CmpOp::Lt => format!("{label}<{value}"),
                CmpOp::Le => format!("{label}<={value}"),
            }
        }
    }
}

/// A quoted string of the query language.
pub fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// The aggregate a range function computes per bucket, in the query language, and the column
/// it makes.
pub fn aggregate(func: RangeFn, unwrap: Option<&Unwrap>) -> String {
    let key = unwrap.map_or("", |u| u.label.as_str());
    match func {
        RangeFn::CountOverTime | RangeFn::Rate => "count".to_owned(),
        RangeFn::SumOverTime => format!("sum({key})"),
        RangeFn::AvgOverTime => format!("avg({key})"),
        RangeFn::MinOverTime => format!("min({key})"),
        RangeFn::MaxOverTime => format!("max({key})"),
        RangeFn::QuantileOverTime(q) => {
            let pct = format!("{:.4}", q * 100.0);
            let pct = pct.trim_end_matches('0').trim_end_matches('.');
            format!("p{pct}({key})")
        }
    }
}

/// The engine's value in the unit `unwrap` asks for: durations come in ms.
pub fn convert(value: f64, unwrap: Option<&Unwrap>) -> f64 {
    match unwrap.map(|u| u.conversion) {
        Some(Conversion::Seconds) => value / 1000.0,
        _ => value,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::loki::logql::Expr;

    fn planned(q: &str, allowed: Option<&str>) -> Result<Plan, PlanError> {
        let Ok(Expr::Log(log)) = Expr::parse(q) else {
            panic!("{q} is a log query");
        };
        plan(&log, allowed)
    }

    #[test]
    fn selectors_and_filters_become_the_query_languages_filter() {
        let p = planned(
            r#"{app="shop", source="paas", process="router"} |= "GET" != "health" | logfmt | status >= 500 and service > 1s or path = "/a\"b""#,
            None,
        )
        .unwrap();
        assert_eq!(p.app, "shop");
        assert_eq!(
            p.filter,
            r#"source="paas" process="router" "GET" not "health" ((status>=500 and service>1s) or path="/a\"b")"#
        );
        assert!(crate::Query::parse(&p.filter).is_ok(), "{}", p.filter);
        let p = planned(r#"{app="shop", process!="web.1"} | method != "GET""#, None).unwrap();
        assert_eq!(p.filter, r#"not process="web.1" not method="GET""#);
        assert!(crate::Query::parse(&p.filter).is_ok());
        assert_eq!(planned(r#"{app="shop"}"#, None).unwrap().filter, "*");
    }

    #[test]
    fn the_app_is_the_keys_or_named_and_never_another() {
        assert_eq!(planned("{}", Some("shop")).unwrap().app, "shop");
        assert_eq!(
            planned(r#"{source="app"}"#, Some("shop")).unwrap().app,
            "shop"
        );
        assert!(matches!(
            planned(r#"{app="bank"}"#, Some("shop")),
            Err(PlanError::Forbidden(_))
        ));
        assert!(matches!(
            planned(r#"{source="app"}"#, None),
            Err(PlanError::Invalid(m)) if m.contains("name the app")
        ));
        assert!(matches!(
            planned(r#"{app="a", app="b"}"#, None),
            Err(PlanError::Invalid(_))
        ));
        assert!(matches!(
            planned(r#"{app="a", host="x"}"#, None),
            Err(PlanError::Invalid(m)) if m.contains("\"host\"")
        ));
    }

    #[test]
    fn aggregates_name_the_engines_columns() {
        let u = Unwrap {
            label: "service".into(),
            conversion: Conversion::Seconds,
        };
        assert_eq!(
            aggregate(RangeFn::QuantileOverTime(0.99), Some(&u)),
            "p99(service)"
        );
        assert_eq!(
            aggregate(RangeFn::QuantileOverTime(0.999), Some(&u)),
            "p99.9(service)"
        );
        assert_eq!(
            aggregate(RangeFn::QuantileOverTime(0.5), Some(&u)),
            "p50(service)"
        );
        assert_eq!(aggregate(RangeFn::Rate, None), "count");
        assert_eq!(convert(1500.0, Some(&u)), 1.5);
        for q in ["p99(service)", "p99.9(service)", "sum(bytes)"] {
            assert!(crate::Query::parse(&format!("* | {q} by path")).is_ok());
        }
    }
}
