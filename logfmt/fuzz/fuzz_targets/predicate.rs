//! Fuzzes the filter language: the input is split at its first 0 byte into filter text (read
//! as lossy UTF-8) and a log line (the rest, or empty when there is no 0 byte). Asserts that
//! parsing the filter never panics and, when it parses, that matching the line never panics.

#![no_main]

use libfuzzer_sys::fuzz_target;
use logfmt::Predicate;

fuzz_target!(|data: &[u8]| {
    let (filter, line) = match data.iter().position(|&b| b == 0) {
        Some(nul) => (&data[..nul], &data[nul + 1..]),
        None => (data, &[][..]),
    };
    let filter = String::from_utf8_lossy(filter);
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
