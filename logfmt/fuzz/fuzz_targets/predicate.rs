//! Fuzzes the filter language: the input is split at its first 0 byte into filter text (read
//! as lossy UTF-8) and a log line (the rest, or empty when there is no 0 byte). Asserts that
//! parsing the filter never panics and, when it parses, that matching the line never panics.
//!
//! The first byte, when it is below 0x20, also asks for nesting the fuzzer would seldom reach
//! by mutation alone: its low bits pick an opener (`(`, `!`, `not `, `(!`) and the next two
//! bytes a count of up to 65,535 levels wrapped around the rest; the parser must refuse past
//! its depth bound with an error, never overflow the stack (issue 10).

#![no_main]

use libfuzzer_sys::fuzz_target;
use logfmt::Predicate;

/// The input's filter text, wrapped in deep nesting when the first byte asks for it.
fn filter_text(filter: &[u8]) -> String {
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    let [control, hi, lo, rest @ ..] = filter else {
        return text(filter);
    };
    if *control >= 0x20 {
        return text(filter);
    }
    let levels = usize::from(u16::from_be_bytes([*hi, *lo]));
    let (open, close) = match control & 3 {
        0 => ("(", ")"),
        1 => ("!", ""),
        2 => ("not ", ""),
        _ => ("(!", ")"),
    };
    let inner = text(rest);
    let inner = if inner.trim().is_empty() { "a=1".to_owned() } else { inner };
    format!("{}{inner}{}", open.repeat(levels), close.repeat(levels))
}

fuzz_target!(|data: &[u8]| {
    let (filter, line) = match data.iter().position(|&b| b == 0) {
        Some(nul) => (&data[..nul], &data[nul + 1..]),
        None => (data, &[][..]),
    };
    let filter = filter_text(filter);
    match filter.parse::<Predicate>() {
        Ok(predicate) => {
            let _ = predicate.matches(line);
            let _ = format!("{predicate:?}");
        }
        Err(e) => {
            let _ = e.to_string();
        }
    }
});
