//! Byte classes of a 64-byte block as bit masks, one bit a byte: the structural scan that lets
//! the pair iterator jump from one boundary to the next instead of stepping byte by byte.
//!
//! On x86-64 the block is classified with AVX-512BW where the processor has it (one masked
//! load, also for the line's last, partial block), else AVX2, else SSE2 (every x86-64 has it);
//! elsewhere a byte at a time. All are tested against [`classify_scalar`].

/// Where the bytes that end a token are in one 64-byte block: bit `i` stands for byte `i`.
#[derive(Clone, Copy, Default, Debug, PartialEq, Eq)]
pub(crate) struct Masks {
    /// Bytes `<= 0x20`: space, tab, newline and every other control byte separate pairs.
    pub ws: u64,
    /// What ends a key: whitespace or `=`.
    pub key_stop: u64,
    /// What a quoted value must stop at: `"` or `\`.
    pub quoted_stop: u64,
    /// `\` alone.
    pub backslash: u64,
}

impl Masks {
    /// A block wholly past the end of the line: all whitespace.
    pub const PAST_END: Masks = Masks {
        ws: u64::MAX,
        key_stop: u64::MAX,
        quoted_stop: 0,
        backslash: 0,
    };

    /// The masks of the blocks at `start`, `start + 64`, … into `out`, one a block, with one
    /// choice of instructions for all of them.
    #[inline]
    pub fn load_run(line: &[u8], start: usize, out: &mut [Masks]) {
        #[cfg(target_arch = "x86_64")]
        {
            if std::arch::is_x86_feature_detected!("avx512bw") {
                return x86::run_avx512(line, start, out);
            }
            if std::arch::is_x86_feature_detected!("avx2") {
                return x86::run_avx2(line, start, out);
            }
        }
        run_with(line, start, out, |line, start| {
            load_with(line, start, classify)
        });
    }
}

/// `load_run` with one block loader, inlined into each caller.
#[inline(always)]
fn run_with(line: &[u8], start: usize, out: &mut [Masks], load: impl Fn(&[u8], usize) -> Masks) {
    for (i, m) in out.iter_mut().enumerate() {
        let at = start + 64 * i;
        *m = if at < line.len() {
            load(line, at)
        } else {
            Masks::PAST_END
        };
    }
}

/// Loads a block with a classifier of whole 64-byte arrays, handling the line's last block.
#[inline(always)]
fn load_with(line: &[u8], start: usize, classify: impl Fn(&[u8; 64]) -> Masks) -> Masks {
    let rest = &line[start..];
    if let Some(block) = rest.first_chunk::<64>() {
        return classify(block);
    }
    let n = rest.len();
    if n == 0 {
        return Masks::PAST_END;
    }
    if let Some(tail) = line.last_chunk::<64>() {
        // The block is the end of a line of 64 bytes or more: classify the line's last 64
        // bytes and shift away the ones before `start`.
        let m = classify(tail);
        let shift = 64 - n as u32;
        let past_end = u64::MAX << n;
        return Masks {
            ws: (m.ws >> shift) | past_end,
            key_stop: (m.key_stop >> shift) | past_end,
            quoted_stop: m.quoted_stop >> shift,
            backslash: m.backslash >> shift,
        };
    }
    // A line shorter than 64 bytes: zeros after it are whitespace already.
    let mut buf = [0u8; 64];
    buf[..n].copy_from_slice(rest);
    classify(&buf)
}

/// Classifies 64 bytes with the best instructions every processor of the target has.
#[inline]
pub(crate) fn classify(block: &[u8; 64]) -> Masks {
    #[cfg(target_arch = "x86_64")]
    {
        x86::classify_sse2(block)
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        classify_scalar(block)
    }
}

/// The plain definition every SIMD path is tested against.
#[cfg_attr(target_arch = "x86_64", allow(dead_code))]
pub(crate) fn classify_scalar(block: &[u8; 64]) -> Masks {
    let mut m = Masks::default();
    for (i, &b) in block.iter().enumerate() {
        let bit = 1u64 << i;
        if b <= b' ' {
            m.ws |= bit;
            m.key_stop |= bit;
        }
        match b {
            b'=' => m.key_stop |= bit,
            b'"' => m.quoted_stop |= bit,
            b'\\' => {
                m.quoted_stop |= bit;
                m.backslash |= bit;
            }
            _ => {}
        }
    }
    m
}

/// A block loader under test, by name.
#[cfg(test)]
type Loader = fn(&[u8], usize) -> Masks;

#[cfg(target_arch = "x86_64")]
#[allow(unsafe_code)]
pub(crate) mod x86 {
    use super::Masks;
    use std::arch::x86_64::*;

    /// SSE2: four 16-byte loads.
    #[inline]
    pub(super) fn classify_sse2(block: &[u8; 64]) -> Masks {
        // SAFETY: SSE2 is part of the x86-64 baseline: every processor this code runs on has it.
        unsafe { sse2(block) }
    }

    #[target_feature(enable = "sse2")]
    #[inline]
    fn sse2(block: &[u8; 64]) -> Masks {
        let space = _mm_set1_epi8(0x20);
        let eq = _mm_set1_epi8(b'=' as i8);
        let quote = _mm_set1_epi8(b'"' as i8);
        let backslash = _mm_set1_epi8(b'\\' as i8);
        let mut m = Masks::default();
        for i in 0..4 {
            // SAFETY: `block` holds 64 bytes, so the 16 at `16 * i` (i < 4) are in bounds;
            // `_mm_loadu_si128` has no alignment requirement.
            let x = unsafe { _mm_loadu_si128(block.as_ptr().add(16 * i).cast::<__m128i>()) };
            // x <= 0x20 (unsigned) exactly when min(x, 0x20) == x.
            let ws = _mm_cmpeq_epi8(_mm_min_epu8(x, space), x);
            let key_stop = _mm_or_si128(ws, _mm_cmpeq_epi8(x, eq));
            let slash = _mm_cmpeq_epi8(x, backslash);
            let quoted_stop = _mm_or_si128(_mm_cmpeq_epi8(x, quote), slash);
            let bits = |v| u64::from(_mm_movemask_epi8(v) as u16) << (16 * i);
            m.ws |= bits(ws);
            m.key_stop |= bits(key_stop);
            m.quoted_stop |= bits(quoted_stop);
            m.backslash |= bits(slash);
        }
        m
    }

    /// AVX2: two 32-byte loads.
    #[target_feature(enable = "avx2")]
    #[inline]
    fn avx2(block: &[u8; 64]) -> Masks {
        let space = _mm256_set1_epi8(0x20);
        let eq = _mm256_set1_epi8(b'=' as i8);
        let quote = _mm256_set1_epi8(b'"' as i8);
        let backslash = _mm256_set1_epi8(b'\\' as i8);
        let mut m = Masks::default();
        for i in 0..2 {
            // SAFETY: `block` holds 64 bytes, so the 32 at `32 * i` (i < 2) are in bounds;
            // `_mm256_loadu_si256` has no alignment requirement.
            let x = unsafe { _mm256_loadu_si256(block.as_ptr().add(32 * i).cast::<__m256i>()) };
            let ws = _mm256_cmpeq_epi8(_mm256_min_epu8(x, space), x);
            let key_stop = _mm256_or_si256(ws, _mm256_cmpeq_epi8(x, eq));
            let slash = _mm256_cmpeq_epi8(x, backslash);
            let quoted_stop = _mm256_or_si256(_mm256_cmpeq_epi8(x, quote), slash);
            let bits = |v| u64::from(_mm256_movemask_epi8(v) as u32) << (32 * i);
            m.ws |= bits(ws);
            m.key_stop |= bits(key_stop);
            m.quoted_stop |= bits(quoted_stop);
            m.backslash |= bits(slash);
        }
        m
    }

    /// `Masks::load_run` with AVX-512BW inlined. Only called once AVX-512BW was detected.
    pub(super) fn run_avx512(line: &[u8], start: usize, out: &mut [Masks]) {
        debug_assert!(std::arch::is_x86_feature_detected!("avx512bw"));
        // SAFETY: `Masks::load_run` calls this only when the processor has AVX-512BW.
        unsafe { run_avx512_inner(line, start, out) }
    }

    #[target_feature(enable = "avx512bw")]
    fn run_avx512_inner(line: &[u8], start: usize, out: &mut [Masks]) {
        run_avx512_inline(line, start, out);
    }

    /// `Masks::load_run` with AVX-512BW, inlined into callers that enable it themselves.
    #[target_feature(enable = "avx512bw")]
    #[inline]
    pub(crate) fn run_avx512_inline(line: &[u8], start: usize, out: &mut [Masks]) {
        super::run_with(line, start, out, |line, start| avx512(line, start));
    }

    /// `Masks::load_run` with AVX2 inlined. Only called once AVX2 was detected.
    pub(super) fn run_avx2(line: &[u8], start: usize, out: &mut [Masks]) {
        debug_assert!(std::arch::is_x86_feature_detected!("avx2"));
        // SAFETY: `Masks::load_run` calls this only when the processor has AVX2.
        unsafe { run_avx2_inner(line, start, out) }
    }

    #[target_feature(enable = "avx2")]
    fn run_avx2_inner(line: &[u8], start: usize, out: &mut [Masks]) {
        super::run_with(line, start, out, |line, start| {
            super::load_with(line, start, |b| avx2(b))
        });
    }

    /// AVX-512BW: one masked load reads exactly the bytes of the block that are in the line, so
    /// the last block needs no copy.
    #[target_feature(enable = "avx512bw")]
    #[inline]
    fn avx512(line: &[u8], start: usize) -> Masks {
        let rest = &line[start.min(line.len())..];
        let n = rest.len().min(64);
        let valid: u64 = if n == 64 { u64::MAX } else { (1u64 << n) - 1 };
        // SAFETY: the mask selects only the first `n` bytes of `rest`, all in bounds; masked-off
        // bytes are neither read nor able to fault, and read as zero.
        let x = unsafe { _mm512_maskz_loadu_epi8(valid, rest.as_ptr().cast::<i8>()) };
        let ws = _mm512_cmple_epu8_mask(x, _mm512_set1_epi8(0x20)) | !valid;
        let eq = _mm512_cmpeq_epi8_mask(x, _mm512_set1_epi8(b'=' as i8));
        let quote = _mm512_cmpeq_epi8_mask(x, _mm512_set1_epi8(b'"' as i8));
        let backslash = _mm512_cmpeq_epi8_mask(x, _mm512_set1_epi8(b'\\' as i8));
        Masks {
            ws,
            key_stop: ws | eq,
            quoted_stop: quote | backslash,
            backslash,
        }
    }

    #[cfg(test)]
    use super::Loader;

    /// One block through a run loader.
    #[cfg(test)]
    fn one(line: &[u8], start: usize, run: fn(&[u8], usize, &mut [Masks])) -> Masks {
        let mut m = [Masks::default()];
        run(line, start, &mut m);
        m[0]
    }

    #[cfg(test)]
    pub(super) fn available() -> Vec<(&'static str, Loader)> {
        let mut v: Vec<(&'static str, Loader)> =
            vec![("sse2", |l, s| super::load_with(l, s, classify_sse2))];
        if std::arch::is_x86_feature_detected!("avx2") {
            v.push(("avx2", |l, s| one(l, s, run_avx2)));
        }
        if std::arch::is_x86_feature_detected!("avx512bw") {
            v.push(("avx512bw", |l, s| one(l, s, run_avx512)));
        }
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Every loader this processor can run, by name.
    fn loaders() -> Vec<(&'static str, Loader)> {
        #[cfg(target_arch = "x86_64")]
        let mut v = x86::available();
        #[cfg(not(target_arch = "x86_64"))]
        let mut v: Vec<(&'static str, Loader)> = Vec::new();
        v.push(("scalar", |l, s| load_with(l, s, classify_scalar)));
        v.push(("dispatch", |l, s| {
            let mut m = [Masks::default()];
            Masks::load_run(l, s, &mut m);
            m[0]
        }));
        v
    }

    /// The definition: the block padded with zeros (whitespace) past the end of the line.
    fn expected(line: &[u8], start: usize) -> Masks {
        let mut padded = line[start..].to_vec();
        padded.resize(padded.len().max(64), 0);
        let block: [u8; 64] = padded[..64].try_into().expect("64 bytes");
        let mut m = classify_scalar(&block);
        if start == line.len() {
            m.key_stop = u64::MAX;
        }
        m
    }

    proptest! {
        #[test]
        fn every_loader_matches_the_definition(
            line in proptest::collection::vec(prop_oneof![any::<u8>(), prop::sample::select(b" =\"\\\t".to_vec())], 0..200),
            start in 0usize..200,
        ) {
            let start = start.min(line.len());
            let want = expected(&line, start);
            for (name, load) in loaders() {
                prop_assert_eq!(load(&line, start), want, "{}", name);
            }
        }
    }

    #[test]
    fn every_control_byte_and_space_is_whitespace() {
        let mut block = [b'a'; 64];
        for (i, b) in (0u8..=0x20).enumerate() {
            block[i] = b;
        }
        block[40] = 0x7f;
        block[41] = 0xff;
        for (name, load) in loaders() {
            assert_eq!(load(&block, 0).ws, (1u64 << 33) - 1, "{name}");
        }
    }
}
