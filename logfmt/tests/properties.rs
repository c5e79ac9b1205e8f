//! Properties over generated input: the fast scanner agrees with the reference grammar on every
//! input, the encoder round-trips, and canonical form is a fixed point.

use logfmt::{Encoder, canonicalize, pairs, reference, validate};
use proptest::prelude::*;

/// Bytes biased toward what matters to the grammar: separators, `=`, quotes, backslashes,
/// escape letters, UTF-8 and invalid UTF-8.
fn hostile_bytes(max: usize) -> impl Strategy<Value = Vec<u8>> {
    let byte = prop_oneof![
        4 => prop::sample::select(b"ab=\" \\\tun0fxE".to_vec()),
        1 => any::<u8>(),
        1 => prop::sample::select(vec![0u8, 0x1e, 0x20, b'\n', 0x7f, 0x80, 0xc3, 0xa9, 0xff]),
    ];
    prop::collection::vec(byte, 0..max)
}

type Owned = (Vec<u8>, Option<Vec<u8>>);

/// The pairs `for_each_pair` visits.
fn visited(line: &[u8]) -> Vec<logfmt::Pair<'_>> {
    let mut out = Vec::new();
    logfmt::for_each_pair(line, |p| out.push(p));
    out
}

fn owned_pairs(line: &[u8]) -> Vec<Owned> {
    pairs(line)
        .map(|p| (p.key.to_vec(), p.value.map(|v| v.unescaped().into_owned())))
        .collect()
}

fn valid_key() -> impl Strategy<Value = Vec<u8>> {
    "[a-zA-Z0-9_.#/:ƒé-]{1,12}".prop_map(String::into_bytes)
}

fn any_value() -> impl Strategy<Value = Option<Vec<u8>>> {
    prop::option::weighted(0.9, prop_oneof![hostile_bytes(40), any::<Vec<u8>>()])
}

/// Lines of the common shape (no backslash, quotes only around values), with tokens long
/// enough to cross 64-byte blocks.
fn common_lines() -> impl Strategy<Value = Vec<u8>> {
    let value = prop_oneof![
        Just(None),
        "[a-z0-9./:?_-]{0,90}".prop_map(|v| Some(v.into_bytes())),
        "[a-zA-Z0-9 ./:=_-]{0,150}".prop_map(|v| Some(format!("\"{v}\"").into_bytes())),
    ];
    let pair = ("[a-z_.#]{1,70}", value);
    let sep = prop::sample::select(vec![&b" "[..], b"  ", b"\t", b" \t "]);
    (prop::collection::vec((pair, sep), 0..10), 0usize..70).prop_map(|(pairs, lead)| {
        let mut line = vec![b' '; lead];
        for ((key, value), sep) in pairs {
            line.extend_from_slice(key.as_bytes());
            if let Some(v) = value {
                line.push(b'=');
                line.extend_from_slice(&v);
            }
            line.extend_from_slice(sep);
        }
        line
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 4096, ..ProptestConfig::default() })]

    #[test]
    fn common_lines_agree_with_reference_wherever_they_end(line in common_lines(), cut in 0usize..400) {
        let fast: Vec<_> = pairs(&line).collect();
        prop_assert_eq!(&fast, &reference::pairs(&line));
        prop_assert_eq!(visited(&line), fast);
        // The same line ending anywhere, so that its end falls at every place in a block.
        let cut = &line[..cut.min(line.len())];
        let fast: Vec<_> = pairs(cut).collect();
        prop_assert_eq!(&fast, &reference::pairs(cut));
        prop_assert_eq!(visited(cut), fast);
    }

    #[test]
    fn fast_scanner_agrees_with_reference(line in hostile_bytes(300)) {
        let fast: Vec<_> = pairs(&line).collect();
        prop_assert_eq!(&fast, &reference::pairs(&line));
        prop_assert_eq!(visited(&line), fast);
    }

    #[test]
    fn fast_scanner_agrees_with_reference_on_any_bytes(line in any::<Vec<u8>>()) {
        let fast: Vec<_> = pairs(&line).collect();
        prop_assert_eq!(&fast, &reference::pairs(&line));
        prop_assert_eq!(visited(&line), fast);
    }

    #[test]
    fn parse_of_encode_is_identity(input in prop::collection::vec((valid_key(), any_value()), 0..12)) {
        let mut line = Vec::new();
        let mut enc = Encoder::new(&mut line);
        for (k, v) in &input {
            enc.pair(k, v.as_deref()).expect("valid key");
        }
        prop_assert_eq!(owned_pairs(&line), input);
        prop_assert_eq!(validate(&line), Ok(()), "encoder output is strict logfmt: {:?}", String::from_utf8_lossy(&line));
    }

    #[test]
    fn canonical_form_is_a_fixed_point(line in hostile_bytes(200)) {
        let once = canonicalize(&line);
        prop_assert_eq!(canonicalize(&once), once.clone());
        prop_assert_eq!(validate(&once), Ok(()));
    }

    #[test]
    fn validate_never_panics_and_strict_lines_have_no_unterminated_values(line in hostile_bytes(200)) {
        if validate(&line).is_ok() {
            prop_assert!(pairs(&line).all(|p| !p.value.is_some_and(|v| v.is_unterminated())));
        }
    }
}

/// A filter of a few comparisons joined by `and`/`or`/`not`, over the keys and values the
/// lines below use.
fn small_filter() -> impl Strategy<Value = String> {
    let term = (
        prop::sample::select(vec!["a", "b", "status", "path", "source"]),
        prop::sample::select(vec!["=", "!=", "~", ">", "<=", ""]),
        prop::sample::select(vec!["1", "503", "/x", "\"a b\"", "x*", "\"q\\\"\"", "5e2"]),
    )
        .prop_map(|(k, op, v)| {
            if op.is_empty() {
                k.to_owned()
            } else {
                format!("{k}{op}{v}")
            }
        });
    prop::collection::vec(
        (term, prop::sample::select(vec![" ", " or ", " and not "])),
        1..4,
    )
    .prop_map(|parts| {
        let mut out = String::new();
        for (i, (t, join)) in parts.iter().enumerate() {
            if i > 0 {
                out.push_str(join);
            }
            out.push_str(t);
        }
        out
    })
}

/// A line of pairs over the same keys, values written bare, quoted or escaped.
fn small_line() -> impl Strategy<Value = Vec<u8>> {
    let pair = (
        prop::sample::select(vec!["a", "b", "status", "path", "other"]),
        prop::sample::select(vec![
            "1",
            "1.0",
            "503",
            "503.0",
            "/x",
            "/xy",
            "\"a b\"",
            "\"q\\\"\"",
            "500",
            "",
            "x1",
        ]),
    )
        .prop_map(|(k, v)| format!("{k}={v}"));
    prop::collection::vec(pair, 0..6).prop_map(|p| p.join(" ").into_bytes())
}

proptest! {
    /// The literal prefilter never rules out a line the predicate holds on.
    #[test]
    fn required_literals_are_in_every_matching_line(filter in small_filter(), line in small_line()) {
        let Ok(p) = filter.parse::<logfmt::Predicate>() else { return Ok(()) };
        if p.matches(&line) {
            for literal in p.required_literals(&|k: &[u8]| k == b"source") {
                prop_assert!(
                    memchr::memmem::find(&line, &literal).is_some(),
                    "{filter:?} holds on {:?} without {:?}",
                    String::from_utf8_lossy(&line),
                    String::from_utf8_lossy(&literal)
                );
            }
        }
    }
}
