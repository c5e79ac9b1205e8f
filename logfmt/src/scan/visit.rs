//! Internal iteration: [`for_each_pair`] visits every pair of a line. For a line of one chunk
//! (under 256 bytes) and the common shape, it first finds where every token starts and ends
//! (`tokens`), then reads each pair on its own: no step waits on the pair before, so the
//! processor overlaps them. Other lines go through the seek-by-seek iterator.

use std::mem::MaybeUninit;

use super::masks::Masks;
use super::tokens::{self, Carry};
use super::{WORDS, pairs};
use crate::pair::{Pair, Value};

/// At most 128 tokens fit in a chunk (each takes a byte and a space), plus the 8 places
/// `flatten` may write past the last.
const SLOTS: usize = 64 * WORDS / 2 + 64;

/// Calls `visit` with every pair of `line`, in order: the same pairs as [`pairs`], faster.
///
/// ```
/// let mut keys = Vec::new();
/// logfmt::for_each_pair(b"at=info status=200 debug", |p| keys.push(p.key));
/// assert_eq!(keys, [&b"at"[..], b"status", b"debug"]);
/// ```
#[inline]
pub fn for_each_pair<'a>(line: &'a [u8], mut visit: impl FnMut(Pair<'a>)) {
    if line.len() < 64 * WORDS && visit_short(line, &mut visit) {
        return;
    }
    // A `for` loop takes pairs with `next`: this does not come back here through `for_each`.
    for p in pairs(line) {
        visit(p);
    }
}

/// The indexed path with the best instructions the processor has; false (having visited
/// nothing) for a line of another shape.
#[inline]
fn visit_short<'a>(line: &'a [u8], visit: &mut impl FnMut(Pair<'a>)) -> bool {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx512vbmi2")
        && std::arch::is_x86_feature_detected!("avx512bw")
    {
        // SAFETY: the processor has AVX-512BW and AVX-512 VBMI2, as `x86::visit` requires.
        #[allow(unsafe_code)]
        return unsafe { x86::visit(line, visit) };
    }
    let mut masks = [Masks::PAST_END; WORDS + 1];
    Masks::load_run(line, 0, &mut masks);
    visit_indexed(line, &masks, visit)
}

/// Visits the pairs of a one-chunk line of the common shape; false (having visited nothing)
/// for another shape.
#[inline(always)]
fn visit_indexed<'a>(
    line: &'a [u8],
    masks: &[Masks; WORDS + 1],
    visit: &mut impl FnMut(Pair<'a>),
) -> bool {
    visit_indexed_with(line, masks, visit, flatten)
}

/// `visit_indexed` with a way to list a word's set bits.
#[inline(always)]
fn visit_indexed_with<'a>(
    line: &'a [u8],
    masks: &[Masks; WORDS + 1],
    visit: &mut impl FnMut(Pair<'a>),
    flatten: impl Fn(u64, usize, &mut [MaybeUninit<u8>; SLOTS], usize) -> usize,
) -> bool {
    let mut starts = [MaybeUninit::<u8>::uninit(); SLOTS];
    let mut ends = [MaybeUninit::<u8>::uninit(); SLOTS];
    let mut carry = Carry::START;
    let (mut n_starts, mut n_ends) = (0, 0);
    for (i, m) in masks[..WORDS].iter().enumerate() {
        let Some(t) = tokens::tokens(m, &mut carry) else {
            return false;
        };
        n_starts += flatten(t.starts, 64 * i, &mut starts, n_starts);
        n_ends += flatten(t.ends, 64 * i, &mut ends, n_ends);
    }
    // A quoted value still open at the end is the general scanner's to read.
    if carry.in_quote() || n_starts != n_ends {
        return false;
    }
    let key_stop: [u64; WORDS + 1] = masks.map(|m| m.key_stop);
    for i in 0..n_starts {
        // SAFETY: `flatten` wrote the first `n_starts` places of `starts` and `n_ends` (equal)
        // of `ends`.
        #[allow(unsafe_code)]
        let (start, end) = unsafe {
            (
                usize::from(starts[i].assume_init()),
                usize::from(ends[i].assume_init()),
            )
        };
        // The token holds no space, so its key ends at its `=` or at its end.
        let word = start >> 6;
        let bits =
            ((u128::from(key_stop[word + 1]) << 64) | u128::from(key_stop[word])) >> (start & 63);
        let key_end = if bits != 0 {
            (start + bits.trailing_zeros() as usize).min(end)
        } else {
            // A key longer than the two blocks read at once.
            line[start..end]
                .iter()
                .position(|&b| b == b'=')
                .map_or(end, |i| start + i)
        };
        if key_end == end {
            visit(Pair {
                key: &line[start..end],
                value: None,
            });
            continue;
        }
        let value_start = key_end + 1;
        // In an indexed line a value that opens with a quote closes with one just before `end`.
        let value = if line.get(value_start) == Some(&b'"') {
            Value::quoted(&line[value_start + 1..end - 1], false, true)
        } else {
            Value::plain(&line[value_start..end])
        };
        visit(Pair {
            key: &line[start..key_end],
            value: Some(value),
        });
    }
    true
}

/// Writes the positions of the set bits of `bits` (plus `base`) to `out[at..]` and returns how
/// many there were. It writes 8 at a time whatever the count, so that the common block of a
/// few tokens takes no branch that depends on the data; places past the count hold junk.
#[inline(always)]
fn flatten(mut bits: u64, base: usize, out: &mut [MaybeUninit<u8>; SLOTS], at: usize) -> usize {
    let n = bits.count_ones() as usize;
    let mut done = 0;
    loop {
        for j in 0..4 {
            out[(at + done + j).min(SLOTS - 1)] =
                MaybeUninit::new((base + bits.trailing_zeros() as usize) as u8);
            bits &= bits.wrapping_sub(1);
        }
        done += 4;
        if done >= n {
            return n;
        }
    }
}

#[cfg(target_arch = "x86_64")]
#[allow(unsafe_code)]
mod x86 {
    use std::arch::x86_64::*;
    use std::mem::MaybeUninit;

    use super::{Masks, Pair, SLOTS, WORDS};

    /// `for_each_pair`'s indexed path with AVX-512: the chunk classified inline and each
    /// word's token positions written by one `vpcompressb`.
    #[target_feature(enable = "avx512bw,avx512vbmi2")]
    pub(super) unsafe fn visit<'a>(line: &'a [u8], visit: &mut impl FnMut(Pair<'a>)) -> bool {
        let mut masks = [Masks::PAST_END; WORDS + 1];
        super::super::masks::x86::run_avx512_inline(line, 0, &mut masks);
        super::visit_indexed_with(line, &masks, visit, |bits, base, out, at| {
            let iota = _mm512_set_epi8(
                63, 62, 61, 60, 59, 58, 57, 56, 55, 54, 53, 52, 51, 50, 49, 48, 47, 46, 45, 44, 43,
                42, 41, 40, 39, 38, 37, 36, 35, 34, 33, 32, 31, 30, 29, 28, 27, 26, 25, 24, 23, 22,
                21, 20, 19, 18, 17, 16, 15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0,
            );
            let positions = _mm512_add_epi8(iota, _mm512_set1_epi8(base as i8));
            let packed = _mm512_maskz_compress_epi8(bits, positions);
            let dest: &mut [MaybeUninit<u8>] = &mut out[at.min(SLOTS - 64)..];
            debug_assert!(dest.len() >= 64);
            // SAFETY: `dest` holds at least 64 bytes (`at` is at most 128 and `SLOTS` is
            // 192), and an unaligned store needs no alignment.
            unsafe { _mm512_storeu_si512(dest.as_mut_ptr().cast(), packed) };
            bits.count_ones() as usize
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The pairs the portable indexed path visits, or `None` where it declines the line.
    fn portable(line: &[u8]) -> Option<Vec<Pair<'_>>> {
        if line.len() >= 64 * WORDS {
            return None;
        }
        let mut masks = [Masks::PAST_END; WORDS + 1];
        Masks::load_run(line, 0, &mut masks);
        let mut out = Vec::new();
        visit_indexed(line, &masks, &mut |p| out.push(p)).then_some(out)
    }

    fn common_line() -> impl Strategy<Value = Vec<u8>> {
        let value = prop_oneof![
            Just(String::new()),
            "=[a-z0-9./:?_-]{0,90}",
            "=\"[a-zA-Z0-9 ./:=_-]{0,90}\"",
        ];
        (
            prop::collection::vec(("[a-z_.#]{1,80}", value, "[ \t]{1,3}"), 0..8),
            " {0,70}",
        )
            .prop_map(|(pairs, lead)| {
                let mut line = lead.into_bytes();
                for (k, v, sep) in pairs {
                    line.extend_from_slice(k.as_bytes());
                    line.extend_from_slice(v.as_bytes());
                    line.extend_from_slice(sep.as_bytes());
                }
                line
            })
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 4096, ..ProptestConfig::default() })]

        /// The portable path (a byte-at-a-time flatten) is tested on every machine, whichever
        /// path `for_each_pair` takes on it.
        #[test]
        fn portable_indexed_path_agrees_with_pairs(line in common_line(), cut in 0usize..300) {
            let cut = &line[..cut.min(line.len())];
            for l in [&line[..], cut] {
                if let Some(got) = portable(l) {
                    prop_assert_eq!(got, pairs(l).collect::<Vec<_>>());
                }
            }
        }
    }

    #[test]
    fn the_portable_path_takes_common_lines() {
        let line = br#"at=info method=GET path="/a b" host=x dyno=web.1 connect=1ms service=2ms status=200 bytes=5 protocol=https"#;
        assert_eq!(portable(line).map(|p| p.len()), Some(10));
        assert_eq!(
            portable(br#"k="a\"b""#),
            None,
            "an escape goes the general way"
        );
    }
}
