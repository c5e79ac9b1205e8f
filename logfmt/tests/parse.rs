//! The parser on fixed cases: go-logfmt's own vectors, the lenient recoveries the crate docs
//! promise, and every case again at every alignment against the 64-byte blocks of the scanner.

use logfmt::{Pair, pairs, reference};

/// A pair as owned (key, Option<unescaped value>) strings, for comparing.
type Owned = (String, Option<String>);

fn owned(p: &Pair<'_>) -> Owned {
    let lossy = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    (lossy(p.key), p.value.map(|v| lossy(&v.unescaped())))
}

/// Parses `line` with the fast scanner at every alignment (0..=64 leading spaces) and with the
/// reference grammar, checks they agree, and returns the pairs.
#[track_caller]
fn parse(line: &[u8]) -> Vec<Owned> {
    let fast: Vec<_> = pairs(line).map(|p| owned(&p)).collect();
    let slow: Vec<_> = reference::pairs(line).iter().map(owned).collect();
    assert_eq!(
        fast,
        slow,
        "fast vs reference on {:?}",
        String::from_utf8_lossy(line)
    );
    for pad in 1..=64 {
        let mut shifted = vec![b' '; pad];
        shifted.extend_from_slice(line);
        let again: Vec<_> = pairs(&shifted).map(|p| owned(&p)).collect();
        assert_eq!(
            again,
            fast,
            "shifted by {pad}: {:?}",
            String::from_utf8_lossy(line)
        );
    }
    fast
}

fn kv(k: &str, v: Option<&str>) -> Owned {
    (k.to_owned(), v.map(str::to_owned))
}

/// go-logfmt's `TestDecoder_scan` vectors, one record each (go reads `k`, `k=` and `k=""` all
/// as a nil value; here a bare key has no value and the others an empty one).
#[test]
fn go_logfmt_scan_vectors() {
    assert_eq!(parse(b""), []);
    assert_eq!(parse(b"x= "), [kv("x", Some(""))]);
    assert_eq!(parse(b"y="), [kv("y", Some(""))]);
    assert_eq!(parse(b"y"), [kv("y", None)]);
    assert_eq!(parse(b"y=f"), [kv("y", Some("f"))]);
    assert_eq!(parse(b"y=\"\\tf\""), [kv("y", Some("\tf"))]);
    assert_eq!(parse(b"y='t\tf'"), [kv("y", Some("'t")), kv("f'", None)]);
    assert_eq!(parse(b"a=1\n"), [kv("a", Some("1"))]);
    assert_eq!(
        parse("a=1 b=\"bar\" ƒ=2h3s r=\"esc\\t\" d x=sf   ".as_bytes()),
        [
            kv("a", Some("1")),
            kv("b", Some("bar")),
            kv("ƒ", Some("2h3s")),
            kv("r", Some("esc\t")),
            kv("d", None),
            kv("x", Some("sf")),
        ]
    );
    assert_eq!(
        parse(b"y=f  \n\x1e y=g"),
        [kv("y", Some("f")), kv("y", Some("g"))]
    );
    assert_eq!(
        parse(b"y= d y=g"),
        [kv("y", Some("")), kv("d", None), kv("y", Some("g"))]
    );
    assert_eq!(
        parse(b"y=\"f\\n\"y=g"),
        [kv("y", Some("f\n")), kv("y", Some("g"))]
    );
}

#[test]
fn empty_values_and_bare_keys() {
    assert_eq!(
        parse(b"k= k=\"\" debug"),
        [kv("k", Some("")), kv("k", Some("")), kv("debug", None)]
    );
    let quoted: Vec<bool> = pairs(b"a= b=\"\"")
        .map(|p| p.value.unwrap().is_quoted())
        .collect();
    assert_eq!(quoted, [false, true]);
}

#[test]
fn spaces_tabs_and_control_bytes_separate_pairs() {
    assert_eq!(
        parse(b"\t a=1\t\tb=2 \r\n"),
        [kv("a", Some("1")), kv("b", Some("2"))]
    );
    assert_eq!(
        parse(b"a=1\x00b=2\x1fc"),
        [kv("a", Some("1")), kv("b", Some("2")), kv("c", None)]
    );
    assert_eq!(parse(b"   \t\t  "), []);
}

#[test]
fn duplicated_keys_are_all_kept_in_order() {
    assert_eq!(
        parse(b"a=1 a=2 a a=3"),
        [
            kv("a", Some("1")),
            kv("a", Some("2")),
            kv("a", None),
            kv("a", Some("3"))
        ]
    );
}

#[test]
fn lenient_recoveries_the_docs_promise() {
    assert_eq!(parse(b"k=b=ar"), [kv("k", Some("b=ar"))]);
    assert_eq!(
        parse(b"k=b\"ar x=1"),
        [kv("k", Some("b\"ar")), kv("x", Some("1"))]
    );
    assert_eq!(parse(b"k\"ey=bar"), [kv("k\"ey", Some("bar"))]);
    assert_eq!(parse(b"\"k\"=v"), [kv("\"k\"", Some("v"))]);
    assert_eq!(parse(b"=bar"), [kv("", Some("bar"))]);
    assert_eq!(parse(b"a=="), [kv("a", Some("="))]);
    assert_eq!(parse(b"a=\"\\x\""), [kv("a", Some("\\x"))]);
    assert_eq!(parse(b"\x80=v"), [kv("\u{fffd}", Some("v"))]);
}

#[test]
fn unterminated_quotes_run_to_the_end_of_the_line() {
    assert_eq!(
        parse(b"a=1 msg=\"no end b=2"),
        [kv("a", Some("1")), kv("msg", Some("no end b=2"))]
    );
    assert_eq!(parse(b"a=\"1\\"), [kv("a", Some("1\\"))]);
    assert_eq!(parse(b"a=\"\\\""), [kv("a", Some("\""))]);
    let v = pairs(b"msg=\"open").next().unwrap().value.unwrap();
    assert!(v.is_unterminated());
    assert!(
        !pairs(b"msg=\"closed\"")
            .next()
            .unwrap()
            .value
            .unwrap()
            .is_unterminated()
    );
}

#[test]
fn escapes_are_undone_only_when_asked() {
    let v = pairs(br#"m="say \"hi\"\n\u00e9""#)
        .next()
        .unwrap()
        .value
        .unwrap();
    assert_eq!(v.raw(), br#"say \"hi\"\n\u00e9"#);
    assert_eq!(v.as_str().unwrap(), "say \"hi\"\n\u{e9}");
    let plain = pairs(b"m=\"no escapes\"").next().unwrap().value.unwrap();
    assert!(matches!(plain.unescaped(), std::borrow::Cow::Borrowed(_)));
}

#[test]
fn invalid_utf8_is_kept_as_bytes() {
    let p = pairs(b"k\xff=v\xfe m=\"\xc3(\"").collect::<Vec<_>>();
    assert_eq!(p[0].key, b"k\xff");
    assert_eq!(p[0].value.unwrap().raw(), b"v\xfe");
    assert_eq!(p[1].value.unwrap().raw(), b"\xc3(");
    assert_eq!(p[0].key_str(), None);
    parse(b"k\xff=v\xfe m=\"\xc3(\"");
}

#[test]
fn very_long_lines() {
    let mut line = Vec::new();
    for i in 0..20_000 {
        line.extend_from_slice(
            format!("key{i}=\"value {i} with \\\"escapes\\\"\" bare{i} ").as_bytes(),
        );
    }
    let got = parse(&line);
    assert_eq!(got.len(), 40_000);
    assert_eq!(
        got[39_998],
        kv("key19999", Some("value 19999 with \"escapes\""))
    );

    let huge_value = format!("k=\"{}\"", "x".repeat(1 << 20));
    assert_eq!(
        parse(huge_value.as_bytes())[0].1.as_ref().map(String::len),
        Some(1 << 20)
    );
}

#[test]
fn quoted_values_across_block_boundaries() {
    for len in 0..200 {
        let body: String = (0..len)
            .map(|i| if i % 7 == 3 { ' ' } else { 'x' })
            .collect();
        let line = format!("a=1 msg=\"{body}\\\"{body}\" z=9");
        let got = parse(line.as_bytes());
        assert_eq!(got[1], kv("msg", Some(&format!("{body}\"{body}"))));
        assert_eq!(got[2], kv("z", Some("9")));
    }
}

#[test]
fn typed_access() {
    use std::time::Duration;
    let line =
        b"status=503 service=30001ms took=1.5s wait=3m mem=212MB buf=4KiB ok=true ratio=0.25";
    let v = |k: &[u8]| logfmt::get(line, k).unwrap();
    assert_eq!(v(b"status").as_i64(), Some(503));
    assert_eq!(
        v(b"service").as_duration(),
        Some(Duration::from_millis(30001))
    );
    assert_eq!(v(b"took").as_duration(), Some(Duration::from_millis(1500)));
    assert_eq!(v(b"wait").as_duration(), Some(Duration::from_secs(180)));
    assert_eq!(v(b"mem").as_bytes(), Some(212e6));
    assert_eq!(v(b"buf").as_bytes(), Some(4096.0));
    assert_eq!(v(b"ok").as_bool(), Some(true));
    assert_eq!(v(b"ratio").as_f64(), Some(0.25));
    assert_eq!(v(b"status").as_duration(), None);
}

/// Found by the fuzz target: `=7777777777777777h` panicked in `Duration::from_secs_f64`.
#[test]
fn as_duration_of_a_huge_value_is_none_not_a_panic() {
    for line in [
        &b"=7777777777777777h"[..],
        b"k=99999999999999999999s",
        b"k=5124095576030431h",
        b"k=-1s",
    ] {
        assert_eq!(
            pairs(line).next().unwrap().value.unwrap().as_duration(),
            None,
            "{line:?}"
        );
    }
    assert!(
        pairs(b"k=5124095576030h")
            .next()
            .unwrap()
            .value
            .unwrap()
            .as_duration()
            .is_some()
    );
}

#[test]
fn count_and_for_each_agree_with_next_fresh_or_not() {
    for line in [
        &b"at=info method=GET path=\"/a b\" status=200 debug"[..],
        b"k=\"esc \\\" aped\" x=1 y",
        b"",
        b"   ",
    ] {
        let all: Vec<_> = pairs(line).collect();
        assert_eq!(pairs(line).count(), all.len());
        let mut it = pairs(line);
        if it.next().is_some() {
            assert_eq!(it.count(), all.len() - 1);
            let mut rest = Vec::new();
            let mut it = pairs(line);
            it.next();
            it.for_each(|p| rest.push(p));
            assert_eq!(rest, all[1..]);
        }
    }
}
