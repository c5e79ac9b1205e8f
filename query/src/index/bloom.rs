//! Token filters: a Bloom filter per chunk of rows over the words of their messages and the
//! `key=value` pairs of the keys kept as no column, so that a full-text term or a request id
//! rules out the chunks that cannot hold it before any of them is decompressed.
//!
//! Hashes are persisted in block files: [`hash`] is FNV-1a (64 bits) finished by SplitMix64's
//! mixer, fixed by the block format's version, never a hasher of the standard library.

/// The 64-bit hash of `bytes` (see the module docs).
#[cfg(test)]
pub(crate) fn hash(bytes: &[u8]) -> u64 {
    hash_parts(&[bytes])
}

/// The hash of parts written one after another, with a 0 byte between.
pub(crate) fn hash_parts(parts: &[&[u8]]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for (i, part) in parts.iter().enumerate() {
        if i > 0 {
            // A 0 byte between parts: FNV-1a of it is just the multiply.
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
        for &b in *part {
            h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
    }
    mix(h)
}

/// The hash of a word, ASCII lower-cased.
pub(crate) fn hash_word(word: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in word {
        h = (h ^ u64::from(b.to_ascii_lowercase())).wrapping_mul(0x0100_0000_01b3);
    }
    mix(h)
}

/// The hash of a pair `key=value` (value unescaped), as the filter keeps it.
pub(crate) fn hash_pair(key: &[u8], value: &[u8]) -> u64 {
    hash_parts(&[b"=", key, value])
}

fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The words of `text` as full-text terms see them: maximal runs of word bytes
/// (`logfmt::is_word_byte`).
pub(crate) fn words(text: &[u8]) -> impl Iterator<Item = &[u8]> {
    text.split(|&b| !logfmt::is_word_byte(b))
        .filter(|w| !w.is_empty())
}

/// The words of `text` with where each starts.
pub(crate) fn words_at(text: &[u8]) -> impl Iterator<Item = (usize, &[u8])> {
    let mut at = 0;
    std::iter::from_fn(move || {
        let rest = text.get(at..)?;
        let start = at + rest.iter().position(|&b| logfmt::is_word_byte(b))?;
        let len = text[start..]
            .iter()
            .position(|&b| !logfmt::is_word_byte(b))
            .unwrap_or(text.len() - start);
        at = start + len;
        Some((start, &text[start..start + len]))
    })
}

/// Bits per distinct token: with [`PROBES`] probes, about 1 % false positives.
const BITS_PER_TOKEN: usize = 10;
/// Bits set per token.
pub(crate) const PROBES: u32 = 7;

/// A Bloom filter over token hashes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Bloom {
    words: Vec<u64>,
}

impl Bloom {
    /// A filter sized for the distinct `hashes`, holding them.
    pub(crate) fn build(hashes: &[u64]) -> Bloom {
        let mut bloom = Bloom::with_capacity(hashes.len());
        hashes.iter().for_each(|&h| bloom.insert(h));
        bloom
    }

    /// An empty filter sized for `tokens` distinct tokens.
    pub(crate) fn with_capacity(tokens: usize) -> Bloom {
        let bits = (tokens * BITS_PER_TOKEN).max(64).next_power_of_two();
        Bloom {
            words: vec![0; bits / 64],
        }
    }

    /// Adds a token.
    pub(crate) fn insert(&mut self, hash: u64) {
        let mask = self.mask();
        for bit in probes(mask, hash) {
            if let Some(w) = self.words.get_mut(bit / 64) {
                *w |= 1 << (bit % 64);
            }
        }
    }

    /// A filter read back from its words (a power of two of them; else `None`).
    pub(crate) fn from_words(words: Vec<u64>) -> Option<Bloom> {
        words.len().is_power_of_two().then_some(Bloom { words })
    }

    pub(crate) fn words(&self) -> &[u64] {
        &self.words
    }

    /// Whether `hash` may have been added (false: it certainly was not).
    pub(crate) fn may_contain(&self, hash: u64) -> bool {
        probes(self.mask(), hash).all(|bit| {
            self.words
                .get(bit / 64)
                .is_some_and(|w| w & (1 << (bit % 64)) != 0)
        })
    }

    fn mask(&self) -> u64 {
        (self.words.len() * 64).saturating_sub(1) as u64
    }
}

/// The bits `hash` sets (double hashing).
fn probes(mask: u64, hash: u64) -> impl Iterator<Item = usize> {
    let (h1, h2) = (hash, (hash >> 32) | 1);
    (0..PROBES).map(move |i| (h1.wrapping_add(u64::from(i).wrapping_mul(h2)) & mask) as usize)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_false_negatives_and_few_false_positives() {
        let hashes: Vec<u64> = (0..5000u32)
            .map(|i| hash(format!("tok{i}").as_bytes()))
            .collect();
        let bloom = Bloom::build(&hashes);
        assert!(hashes.iter().all(|&h| bloom.may_contain(h)));
        let false_positives = (0..10_000u32)
            .filter(|i| bloom.may_contain(hash(format!("other{i}").as_bytes())))
            .count();
        assert!(
            false_positives < 300,
            "{false_positives} false positives in 10,000"
        );
        let back = Bloom::from_words(bloom.words().to_vec()).unwrap();
        assert_eq!(back, bloom);
        assert!(Bloom::from_words(vec![0; 3]).is_none());
    }

    const FROZEN_ABC: u64 = 996_580_060_897_260_808;

    #[test]
    fn words_and_case() {
        let w: Vec<_> = words(b"at=info msg=\"Request timeout\" caf\xc3\xa9=1").collect();
        assert_eq!(
            w,
            [
                &b"at"[..],
                b"info",
                b"msg",
                b"Request",
                b"timeout",
                b"caf\xc3\xa9",
                b"1"
            ]
        );
        let at: Vec<_> = words_at(b" ab=c  d").collect();
        assert_eq!(at, [(1, &b"ab"[..]), (4, b"c"), (7, b"d")]);
        assert_eq!(hash_word(b"TimeOut"), hash_word(b"timeout"));
        assert_ne!(hash_pair(b"a", b"bc"), hash_pair(b"ab", b"c"));
        assert_eq!(hash(b"x"), hash(b"x"), "stable");
        assert_eq!(
            hash(b"abc"),
            FROZEN_ABC,
            "block files keep these hashes: never change them"
        );
    }
}
