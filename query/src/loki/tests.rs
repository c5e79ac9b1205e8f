//! The LogQL reader: each construct, and malformed, oversized and hostile input refused
//! with a message and a place, never a panic.

use super::logql::*;
use super::{answer_json, parse_step, parse_time};
use crate::loki::eval::{Answer, At, Series, Stream};

fn parses(q: &str) -> Expr {
    Expr::parse(q).unwrap_or_else(|e| panic!("{q}: {e}"))
}

fn fails(q: &str) -> LogqlError {
    match Expr::parse(q) {
        Ok(e) => panic!("{q} parsed: {e:?}"),
        Err(e) => e,
    }
}

#[test]
fn selectors_line_filters_logfmt_and_label_filters() {
    let Expr::Log(l) = parses(
        r#"{app="shop", source="paas",process!="web.1"} |= "GET" != `health` |~ "5\d\d" !~ "^x" | logfmt | status >= 500 and service > 1s or method == "POST" | path != "/a""#,
    ) else {
        panic!("a log query")
    };
    assert_eq!(l.matchers.len(), 3);
    assert_eq!(l.matchers[2].op, MatchOp::Ne);
    assert_eq!(l.stages.len(), 7);
    assert!(matches!(&l.stages[0], Stage::Line(LineFilter::Contains(s)) if s == "GET"));
    assert!(matches!(&l.stages[1], Stage::Line(LineFilter::NotContains(s)) if s == "health"));
    assert!(
        matches!(&l.stages[2], Stage::Line(LineFilter::Regex(re, true)) if re.is_match("status 503") && !re.is_match("200"))
    );
    assert!(matches!(
        &l.stages[3],
        Stage::Line(LineFilter::Regex(_, false))
    ));
    assert!(matches!(&l.stages[4], Stage::Logfmt));
    let Stage::Label(LabelExpr::Or(any)) = &l.stages[5] else {
        panic!("{:?}", l.stages[5]);
    };
    assert_eq!(
        any[0],
        LabelExpr::And(vec![
            LabelExpr::Cmp {
                label: "status".into(),
                op: CmpOp::Ge,
                value: LabelValue::Number("500".into())
            },
            LabelExpr::Cmp {
                label: "service".into(),
                op: CmpOp::Gt,
                value: LabelValue::Number("1s".into())
            },
        ])
    );
    assert!(matches!(parses("{}"), Expr::Log(l) if l.matchers.is_empty()));
}

#[test]
fn range_and_vector_functions() {
    let Expr::Vector { op, by, inner } =
        parses(r#"sum by (path) (count_over_time({app="shop"} | logfmt [5m]))"#)
    else {
        panic!()
    };
    assert_eq!(op, VecOp::Sum);
    assert_eq!(by, Some(vec!["path".to_owned()]));
    assert!(matches!(
        *inner,
        Expr::Range {
            func: RangeFn::CountOverTime,
            range_ms: 300_000,
            ..
        }
    ));
    // `by` after the parentheses, as Grafana writes it too.
    assert!(matches!(
        parses(r#"sum(rate({app="shop"}[1m])) by (process)"#),
        Expr::Vector { by: Some(b), .. } if b == ["process"]
    ));
    let Expr::Vector {
        op: VecOp::Topk(5),
        inner,
        ..
    } = parses(r#"topk(5, sum by (path) (count_over_time({app="shop"}[1h])))"#)
    else {
        panic!()
    };
    assert!(matches!(*inner, Expr::Vector { op: VecOp::Sum, .. }));
    let Expr::Range {
        func,
        log,
        by,
        range_ms,
    } = parses(
        r#"quantile_over_time(0.99, {app="shop"} | logfmt | unwrap duration(service) [5m]) by (path)"#,
    )
    else {
        panic!()
    };
    assert_eq!(func, RangeFn::QuantileOverTime(0.99));
    assert_eq!(range_ms, 300_000);
    assert_eq!(by, Some(vec!["path".to_owned()]));
    assert!(matches!(
        log.stages.last(),
        Some(Stage::Unwrap(Unwrap { label, conversion: Conversion::Seconds })) if label == "service"
    ));
    assert!(matches!(
        parses(r#"sum_over_time({app="a"} | unwrap bytes [30s])"#),
        Expr::Range {
            func: RangeFn::SumOverTime,
            ..
        }
    ));
}

#[test]
fn malformed_queries_say_what_and_where() {
    for (q, needle) in [
        ("", "expected a stream selector"),
        ("{app=\"a\"", "expected \"}\""),
        ("{app=~\"a.*\"}", "not supported in a selector"),
        ("{app=\"a\"} | json", "`| json` is not supported"),
        ("{app=\"a\"} |= ", "expected a quoted string"),
        ("{app=\"a\"} |= \"open", "not closed"),
        ("count_over_time({app=\"a\"}[5x])", "not a duration"),
        ("count_over_time({app=\"a\"}[0s])", "not a duration"),
        ("count_over_time({app=\"a\"}[90d])", "not a duration"),
        (
            "count_over_time({app=\"a\"}[99999999999999999m])",
            "not a duration",
        ),
        ("rate({app=\"a\"} | unwrap x [5m])", "drop `| unwrap`"),
        ("sum_over_time({app=\"a\"}[5m])", "add `| unwrap"),
        (
            "quantile_over_time(1.5, {app=\"a\"} | unwrap x [5m])",
            "(0, 1]",
        ),
        ("topk(0, count_over_time({app=\"a\"}[5m]))", "k must be"),
        (
            "topk(x, count_over_time({app=\"a\"}[5m]))",
            "expected a number",
        ),
        ("sum({app=\"a\"})", "range function"),
        (
            "sum without (a) (count_over_time({app=\"a\"}[5m]))",
            "without",
        ),
        ("histogram_quantile(0.9, x)", "unknown function"),
        (
            "{app=\"a\"} | status >= \"x\"",
            "compare strings with = or !=",
        ),
        ("{app=\"a\"} | status >= 5q", "not a number"),
        ("{app=\"a\"} | status =~ \"5..\"", "not supported"),
        ("{app=\"a\"} extra", "unexpected"),
        ("{app=\"a\"} # comment", "unexpected character"),
        ("{app=\"a\"} | unwrap x | logfmt", "nothing may follow"),
    ] {
        let e = fails(q);
        assert!(e.to_string().contains(needle), "{q}: {e}");
        assert!(e.at <= q.len(), "{q}: {e:?}");
    }
}

#[test]
fn hostile_input_is_bounded() {
    // Deep nesting.
    let deep = format!(
        "{}count_over_time({{app=\"a\"}}[5m]){}",
        "sum(".repeat(100),
        ")".repeat(100)
    );
    assert!(fails(&deep).to_string().contains("nested more than"));
    let deep_labels = format!(
        "{{app=\"a\"}} | {}status=1{}",
        "(".repeat(1000),
        ")".repeat(1000)
    );
    assert!(fails(&deep_labels).to_string().contains("nested more than"));
    // Oversized.
    let long = format!("{{app=\"a\"}} |= \"{}\"", "x".repeat(MAX_LEN));
    assert!(fails(&long).to_string().contains("longer than"));
    // Huge and explosive regular expressions.
    let huge = format!("{{app=\"a\"}} |~ \"{}\"", "a".repeat(MAX_REGEX_LEN + 1));
    assert!(fails(&huge).to_string().contains("longer than"));
    let explosive = r#"{app="a"} |~ "(\w{100}){100}""#;
    assert!(
        fails(explosive).to_string().contains("does not compile"),
        "{}",
        fails(explosive)
    );
    let nested_re = format!(
        "{{app=\"a\"}} |~ \"{}a{}\"",
        "(".repeat(300),
        ")".repeat(300)
    );
    assert!(fails(&nested_re).to_string().contains("does not compile"));
    // Too many matchers, stages, labels.
    let matchers = (0..=MAX_MATCHERS)
        .map(|i| format!("source=\"{i}\""))
        .collect::<Vec<_>>()
        .join(",");
    assert!(
        fails(&format!("{{{matchers}}}"))
            .to_string()
            .contains("matchers")
    );
    let stages = "|= \"x\" ".repeat(MAX_STAGES + 1);
    assert!(
        fails(&format!("{{app=\"a\"}} {stages}"))
            .to_string()
            .contains("stages")
    );
    // Every prefix of a valid query is refused or read, never a panic.
    let q = r#"topk(3, sum by (path) (rate({app="shop", source="paas"} |= "GET" |~ "a+" | logfmt | status >= 500 [5m])))"#;
    for i in 0..=q.len() {
        if q.is_char_boundary(i) {
            let _ = Expr::parse(&q[..i]);
        }
    }
    for junk in [
        "\u{0}",
        "{\u{202e}}",
        "{app=\"\u{1F600}\"} |= \"é\"",
        "))))",
        "[[[",
        "{{{{",
    ] {
        let _ = Expr::parse(junk);
    }
}

#[test]
fn times_and_steps_read_as_loki_sends_them() {
    assert_eq!(parse_time("1700000000"), Some(1_700_000_000_000));
    assert_eq!(parse_time("1700000000123456789"), Some(1_700_000_000_123));
    assert_eq!(parse_time("1700000000.5"), Some(1_700_000_000_500));
    assert_eq!(parse_time("2023-11-14T22:13:20Z"), Some(1_700_000_000_000));
    assert_eq!(parse_time("yesterday"), None);
    assert_eq!(parse_time("1e300"), None);
    assert_eq!(parse_step("15s"), Some(15_000));
    assert_eq!(parse_step("1m30s"), Some(90_000));
    assert_eq!(parse_step("60"), Some(60_000));
    assert_eq!(parse_step("0.5"), Some(500));
    assert_eq!(parse_step("-1"), None);
    assert_eq!(parse_step("0s"), None);
    assert_eq!(parse_step("0"), None);
    assert_eq!(parse_step("5parsecs"), None);
    assert_eq!(prometheus_duration_ms("1d"), Some(86_400_000));
    assert_eq!(prometheus_duration_ms("250ms"), Some(250));
    assert_eq!(prometheus_duration_ms(""), None);
}

#[test]
fn answers_have_the_loki_http_api_shapes() {
    let labels = |pairs: &[(&str, &str)]| {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    };
    let streams = Answer::Streams(vec![Stream {
        labels: labels(&[("app", "shop"), ("source", "app"), ("process", "web.1")]),
        values: vec![(1_700_000_000_123_456_000, "hello".to_owned())],
    }]);
    assert_eq!(
        answer_json(&streams, At::Instant { time: 0 }),
        serde_json::json!({"resultType": "streams", "stats": {}, "result": [
            {"stream": {"app": "shop", "process": "web.1", "source": "app"},
             "values": [["1700000000123456000", "hello"]]}
        ]})
    );
    let series = Series {
        labels: labels(&[("path", "/a")]),
        points: [(1_700_000_000_000, 3.0), (1_700_000_060_500, 0.25)]
            .into_iter()
            .collect(),
    };
    assert_eq!(
        answer_json(
            &Answer::Matrix(vec![series.clone()]),
            At::Instant { time: 0 }
        ),
        serde_json::json!({"resultType": "matrix", "stats": {}, "result": [
            {"metric": {"path": "/a"}, "values": [[1700000000, "3"], [1700000060.5, "0.25"]]}
        ]})
    );
    assert_eq!(
        answer_json(
            &Answer::Vector(vec![series]),
            At::Instant {
                time: 1_700_000_100_000
            }
        ),
        serde_json::json!({"resultType": "vector", "stats": {}, "result": [
            {"metric": {"path": "/a"}, "value": [1700000100, "0.25"]}
        ]})
    );
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(2000))]

    /// Any sequence of LogQL's own tokens is read or refused with a place inside it, and a
    /// query that reads translates into a filter the query language reads too.
    #[test]
    fn token_soup_is_read_or_refused_never_a_panic(
        tokens in proptest::collection::vec(proptest::sample::select(vec![
            "{", "}", "(", ")", "[", "]", ",", "=", "!=", "=~", "|=", "|~", "!~", "|", ">", ">=",
            "<", "==", "app", "source", "\"shop\"", "\"a|b\"", "`x`", "5m", "1s", "0.99", "500",
            "logfmt", "unwrap", "duration", "status", "service", "sum", "by", "topk", "rate",
            "count_over_time", "quantile_over_time", "and", "or", "\"(\"", "\"\\\\\"", " ",
        ]), 0..40)
    ) {
        let q = tokens.concat();
        match Expr::parse(&q) {
            Err(e) => proptest::prop_assert!(e.at <= q.len(), "{q:?}: {e:?}"),
            Ok(Expr::Log(log)) => {
                if let Ok(plan) = super::translate::plan(&log, Some("shop")) {
                    proptest::prop_assert!(
                        crate::Query::parse(&plan.filter).is_ok(),
                        "{q:?} → {:?}",
                        plan.filter
                    );
                }
            }
            Ok(_) => {}
        }
    }
}

/// A LogQL string literal of `s`.
fn logql_string(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(1000))]

    /// Selectors and filters with any text in their strings (quotes, backslashes, pipes,
    /// operators) translate into a filter the query language reads: a string never escapes
    /// its quotes.
    #[test]
    fn any_strings_survive_the_translation(
        source in "[a-z \"\\\\|()=<>~!*]{0,12}",
        contains in "[a-zA-Z0-9 \"\\\\|()=<>~!*/.-]{0,16}",
        method in "[A-Z \"\\\\|()]{0,8}",
        negate in proptest::bool::ANY,
    ) {
        let q = format!(
            "{{app=\"shop\", source{}{}}} |= {} | logfmt | status >= 500 and method = {}",
            if negate { "!=" } else { "=" },
            logql_string(&source),
            logql_string(&contains),
            logql_string(&method),
        );
        let Ok(Expr::Log(log)) = Expr::parse(&q) else {
            return Err(proptest::test_runner::TestCaseError::fail(format!("{q:?} does not read")));
        };
        let plan = super::translate::plan(&log, None).map_err(|e| {
            proptest::test_runner::TestCaseError::fail(format!("{q:?}: {e:?}"))
        })?;
        proptest::prop_assert!(crate::Query::parse(&plan.filter).is_ok(), "{q:?} → {:?}", plan.filter);
    }
}
