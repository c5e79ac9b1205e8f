//! Fuzzes the parser on arbitrary bytes and asserts, for every input:
//!
//! - the fast scanner (`logfmt::pairs`) yields exactly the pairs of the reference grammar
//!   (`logfmt::reference::pairs`), and stays exhausted once it has returned `None`;
//! - `logfmt::for_each_pair` visits the same pairs, and `pairs(..).count()` counts them;
//! - every `Pair` and `Value` accessor (raw, flags, unescaping, text, the typed readers and the
//!   `Debug` output) and `logfmt::get` run without panicking, and the text readers agree with
//!   `Value::unescaped`;
//! - `canonicalize` is a fixed point (`canonicalize(canonicalize(x)) == canonicalize(x)`) and its
//!   output passes the strict `validate`;
//! - when `validate` accepts the line, no value of it is unterminated;
//! - writing back the pairs whose keys are valid (`is_valid_key`) with `Encoder::pair`, then
//!   parsing the result, gives the same list of (key, unescaped value), a bare key staying bare;
//! - iterating the l2met `metrics` of the line (and their quantities) never panics.

#![no_main]

use std::borrow::Cow;

use libfuzzer_sys::fuzz_target;
use logfmt::{Encoder, Pair, Value};

fuzz_target!(|line: &[u8]| {
    // The fast scanner against the plain grammar.
    let mut iter = logfmt::pairs(line);
    let fast: Vec<Pair<'_>> = iter.by_ref().collect();
    assert!(iter.next().is_none(), "Pairs yielded again after None");
    let reference = logfmt::reference::pairs(line);
    assert_eq!(
        fast,
        reference,
        "fast scanner and reference disagree on \"{}\"",
        line.escape_ascii()
    );

    // Internal iteration (the indexed path for short common lines) visits the same pairs.
    let mut visited = Vec::new();
    logfmt::for_each_pair(line, |p| visited.push(p));
    assert_eq!(
        visited,
        fast,
        "for_each_pair and pairs disagree on \"{}\"",
        line.escape_ascii()
    );
    assert_eq!(logfmt::pairs(line).count(), fast.len());

    // Every accessor, on every pair.
    for pair in &fast {
        exercise(pair);
        let _ = logfmt::get(line, pair.key);
    }

    // Canonical form: strict, and canonical again.
    let canonical = logfmt::canonicalize(line);
    if let Err(e) = logfmt::validate(&canonical) {
        panic!(
            "canonicalize(\"{}\") = \"{}\" is not strict logfmt: {e}",
            line.escape_ascii(),
            canonical.escape_ascii()
        );
    }
    assert_eq!(
        logfmt::canonicalize(&canonical),
        canonical,
        "canonicalize is not a fixed point on \"{}\"",
        line.escape_ascii()
    );

    // A strictly valid line has no unterminated value.
    if logfmt::validate(line).is_ok() {
        for pair in &fast {
            assert!(
                !pair.value.is_some_and(|v| v.is_unterminated()),
                "validate accepted \"{}\" but {pair:?} is unterminated",
                line.escape_ascii()
            );
        }
    }

    // Encode the pairs with valid keys, parse again: same keys and unescaped values.
    let kept: Vec<Unescaped<'_>> = fast
        .iter()
        .filter(|p| logfmt::is_valid_key(p.key))
        .map(unescaped)
        .collect();
    let mut encoded = Vec::new();
    let mut encoder = Encoder::new(&mut encoded);
    for (key, value) in &kept {
        if let Err(e) = encoder.pair(key, value.as_deref()) {
            panic!(
                "Encoder::pair refused \"{}\", which is_valid_key accepts: {e}",
                key.escape_ascii()
            );
        }
    }
    let reparsed: Vec<Unescaped<'_>> = logfmt::pairs(&encoded).map(|p| unescaped(&p)).collect();
    assert_eq!(
        reparsed,
        kept,
        "re-encoding \"{}\" as \"{}\" changed its pairs",
        line.escape_ascii(),
        encoded.escape_ascii()
    );

    // l2met metrics: iterate them all.
    for metric in logfmt::metrics(line) {
        match metric {
            Ok(m) => {
                let _ = m.quantity();
                exercise_value(&m.value);
                if let Some(source) = &m.source {
                    exercise_value(source);
                }
                let _ = format!("{m:?}");
            }
            Err(e) => {
                let _ = e.to_string();
            }
        }
    }
});

/// A pair as the encoder sees it: the key, and the value with escapes undone (`None`: bare key).
type Unescaped<'a> = (&'a [u8], Option<Cow<'a, [u8]>>);

fn unescaped<'a>(pair: &Pair<'a>) -> Unescaped<'a> {
    (pair.key, pair.value.map(|v| v.unescaped()))
}

fn exercise(pair: &Pair<'_>) {
    let _ = pair.key_str();
    let bytes = pair.value_bytes();
    match &pair.value {
        Some(v) => {
            assert_eq!(bytes, v.unescaped());
            exercise_value(v);
        }
        None => assert!(bytes.is_empty()),
    }
    let _ = format!("{pair:?}");
}

fn exercise_value(v: &Value<'_>) {
    let raw = v.raw();
    assert_eq!(v.is_empty(), raw.is_empty());
    if !v.is_quoted() {
        assert!(
            !v.is_unterminated(),
            "an unquoted value is unterminated: {v:?}"
        );
    }
    let unescaped = v.unescaped();
    if !v.is_quoted() || !raw.contains(&b'\\') {
        assert_eq!(
            &*unescaped, raw,
            "unescaping changed a value without escapes"
        );
    }
    match v.as_str() {
        Some(s) => assert_eq!(s.as_bytes(), &*unescaped),
        None => assert!(std::str::from_utf8(&unescaped).is_err()),
    }
    assert_eq!(v.to_str_lossy(), String::from_utf8_lossy(&unescaped));
    let _ = v.as_i64();
    let _ = v.as_f64();
    let _ = v.as_bool();
    let _ = v.as_duration();
    let _ = v.as_bytes();
    if let Some(q) = v.quantity() {
        let _ = q.value();
        let _ = q.comparable(q);
    }
    let _ = format!("{v:?}");
}
