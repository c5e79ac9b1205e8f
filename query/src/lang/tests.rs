//! The language: what parses to what, and the errors with their columns.

use super::*;

fn q(text: &str) -> Query {
    Query::parse(text).unwrap_or_else(|e| panic!("{text}:\n{e}"))
}

fn err(text: &str) -> QueryError {
    match Query::parse(text) {
        Ok(q) => panic!("{text} parsed: {q:?}"),
        Err(e) => e,
    }
}

#[test]
fn a_filter_alone_gives_lines() {
    let query = q("status>=500 service>1s");
    assert!(query.filter.is_some());
    assert!(!query.is_aggregation());
    assert_eq!(query.columns(), None);
    assert_eq!(q("").filter, None);
    assert_eq!(q("  *  ").filter, None);
    assert_eq!(q("| count").filter, None);
    assert_eq!(q("* | count").filter, None);
    assert!(
        q(r#""connection reset" or code=H12 || code=H13"#)
            .filter
            .is_some()
    );
}

#[test]
fn count_and_count_by() {
    assert_eq!(q("a=1 | count").columns().unwrap(), ["count"]);
    let query = q("a=1 | count by path, status");
    assert_eq!(query.columns().unwrap(), ["path", "status", "count"]);
    let agg = query.aggregate.unwrap();
    assert_eq!(agg.by, ["path", "status"]);
    assert_eq!(agg.aggs[0].func, Func::Count);
}

#[test]
fn aggregate_lists_name_their_columns_as_written() {
    let query = q(
        "| count, sum(bytes),avg(service), min(service), max(bytes), p50(service), p99.9(service), p100(x) by dyno",
    );
    assert_eq!(
        query.columns().unwrap(),
        [
            "dyno",
            "count",
            "sum(bytes)",
            "avg(service)",
            "min(service)",
            "max(bytes)",
            "p50(service)",
            "p99.9(service)",
            "p100(x)"
        ]
    );
    let aggs = query.aggregate.unwrap().aggs;
    assert_eq!(aggs[6].func, Func::Percentile(99.9 / 100.0));
    assert_eq!(aggs[1].key, "bytes");
    assert_eq!(q("| p99( service )").columns().unwrap(), ["p99(service)"]);
}

#[test]
fn top_is_count_sorted_and_cut() {
    let query = q("| top 5 path");
    assert_eq!(query.columns().unwrap(), ["path", "count"]);
    assert_eq!(
        query.after,
        [
            TableStage::Sort {
                column: "count".into(),
                descending: true
            },
            TableStage::Head(5)
        ]
    );
}

#[test]
fn timechart_spans_and_defaults() {
    let query = q("code=H12 or code=H13 | timechart 1m count by code");
    let agg = query.aggregate.as_ref().unwrap();
    assert_eq!(agg.span, Some(60_000_000));
    assert_eq!(query.columns().unwrap(), ["time", "code", "count"]);
    assert_eq!(q("| timechart 30s").columns().unwrap(), ["time", "count"]);
    assert_eq!(
        q("| timechart 1h by dyno").columns().unwrap(),
        ["time", "dyno", "count"]
    );
    let p = q("| timechart 1d p99(service), max(service)");
    assert_eq!(p.aggregate.as_ref().unwrap().span, Some(86_400_000_000));
    assert_eq!(
        p.columns().unwrap(),
        ["time", "p99(service)", "max(service)"]
    );
    assert_eq!(
        q("| timechart 1h30m").aggregate.unwrap().span,
        Some(5_400_000_000)
    );
    assert_eq!(err("| timechart 10ms").column, 13);
    assert_eq!(err("| timechart").column, 12);
}

#[test]
fn sort_head_fields_after_the_table() {
    let query = q(
        "| p50(service),p99(service) by path | sort -p99(service) | head 10 | fields path,p99(service)",
    );
    assert_eq!(
        query.after,
        [
            TableStage::Sort {
                column: "p99(service)".into(),
                descending: true
            },
            TableStage::Head(10),
            TableStage::Fields(vec!["path".into(), "p99(service)".into()]),
        ]
    );
    assert_eq!(query.columns().unwrap(), ["path", "p99(service)"]);
    assert_eq!(q("| count by path | sort path").after.len(), 1);
}

#[test]
fn head_and_fields_on_lines() {
    let query = q("status=503 | fields path, status | head 3");
    assert_eq!(
        query.before,
        [
            LineStage::Fields(vec!["path".into(), "status".into()]),
            LineStage::Head(3)
        ]
    );
    assert_eq!(q("| head 100 | count").before, [LineStage::Head(100)]);
}

#[test]
fn parse_errors_point_at_the_column_with_a_caret() {
    let e = err("status>=500 | count by");
    assert_eq!(e.column, 23);
    assert_eq!(
        e.to_string(),
        "status>=500 | count by\n                      ^ column 23: expected a key, found the end of the stage"
    );
    let e = err("status>= | count");
    assert_eq!(e.column, 9, "the filter's own error, at its column: {e}");
    let e = err("| p99 service");
    assert_eq!(
        (e.column, e.message.as_str()),
        (7, "expected \"(\" after p99, found \"service\"")
    );
    assert_eq!(
        err("| head ten").message,
        "expected a number of rows from 1 to 100000, found \"ten\""
    );
    assert_eq!(err("| head 0").column, 8);
    assert_eq!(err("| head 100001").column, 8);
    assert_eq!(err("| count by path extra").column, 17);
    assert_eq!(
        err("| count path").message,
        "expected \",\", \"by\" or the end of the stage, found \"path\""
    );
    assert_eq!(
        err("a=1 |").message,
        "expected a stage, found the end of the stage"
    );
    assert_eq!(
        err("| sum(bytes").message,
        "expected \")\", found the end of the stage"
    );
    assert_eq!(err("| p0(x)").column, 3);
    assert_eq!(err("| p101(x)").column, 3);
}

#[test]
fn an_unknown_stage_lists_the_known_ones() {
    let e = err("status>=500 | cuont by path");
    assert_eq!(e.column, 15);
    assert!(
        e.message
            .starts_with("unknown stage \"cuont\"; the stages are count, count by K, top N K"),
        "{e}"
    );
    for stage in [
        "timechart SPAN",
        "fields K",
        "sort [-]COLUMN",
        "head N",
        "pNN(K)",
    ] {
        assert!(e.message.contains(stage), "{stage}: {e}");
    }
}

#[test]
fn stages_in_the_wrong_place() {
    assert!(
        err("| sort -count")
            .message
            .starts_with("sort orders a table")
    );
    assert_eq!(err("| count | count by a").column, 11);
    assert_eq!(
        err("| count | top 3 a").message,
        "one aggregation a query: this is a second"
    );
    assert_eq!(
        err("| fields a | count").message,
        "fields comes after the aggregation, not before"
    );
    let e = err("| count by path | sort -p99(service)");
    assert_eq!(e.column, 24);
    assert_eq!(
        e.message,
        "no column \"p99(service)\"; the columns are path, count"
    );
    assert!(
        err("| count by a | fields b")
            .message
            .starts_with("no column \"b\"")
    );
    assert!(err("| count, count").message.contains("named twice"));
    assert!(err("| count by count").message.contains("named twice"));
}

#[test]
fn bounds() {
    let long = format!("a={}", "x".repeat(MAX_QUERY_LEN));
    assert!(err(&long).message.contains("longer than"));
    let many = format!("*{}", " | head 1".repeat(MAX_STAGES + 1));
    assert!(err(&many).message.contains("stages"));
    let keys = (0..=MAX_LIST)
        .map(|i| format!("k{i}"))
        .collect::<Vec<_>>()
        .join(",");
    assert!(
        err(&format!("| count by {keys}"))
            .message
            .contains("at most")
    );
    let deep = format!("{}a=1{} | count", "(".repeat(100), ")".repeat(100));
    assert!(err(&deep).message.contains("nested"));
}

proptest::proptest! {
    #[test]
    fn parsing_never_panics(text in "\\PC{0,80}") {
        if let Err(e) = Query::parse(&text) {
            let _ = e.to_string();
            proptest::prop_assert!(e.column >= 1 && e.column <= text.chars().count() + 1, "{e:?}");
        }
    }

    #[test]
    fn parsing_pipeline_shaped_text_never_panics(
        parts in proptest::collection::vec("[a-z0-9()=<>,\\-\"*| ]{0,12}|count|by|top|head|sort|timechart|fields|p99\\(s\\)", 0..12)
    ) {
        let text = parts.join(" ");
        if let Err(e) = Query::parse(&text) {
            proptest::prop_assert!(e.column >= 1 && e.column <= text.chars().count() + 1, "{text}: {e:?}");
        }
    }
}
