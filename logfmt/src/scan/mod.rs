//! The fast pair scanner: a block-at-a-time structural scan (see `masks`) driving the grammar
//! of the crate docs. `crate::reference` is the same grammar written plainly; the two are
//! tested against each other on every input.

mod masks;
mod tokens;
mod visit;

use crate::pair::{Pair, Value};
use masks::Masks;
pub use visit::for_each_pair;

/// How many blocks a chunk holds: a router line (about 200 bytes) is one chunk.
const WORDS: usize = 4;

/// Iterates the pairs of one line, borrowing from it. Made by [`pairs`].
#[derive(Clone, Debug)]
pub struct Pairs<'a> {
    line: &'a [u8],
    /// Just past the end of the last pair returned.
    pos: usize,
    /// The start of the chunk `masks` describes (a multiple of 64).
    chunk_start: usize,
    /// The masks of the chunk's blocks and of the block after it, so that any seek within the
    /// chunk can read two blocks at once: a token crossing a block boundary costs no branch.
    chunk: Chunk,
}

/// A chunk's masks, one array per class, so that a seek indexes them by block directly.
#[derive(Clone, Debug)]
struct Chunk {
    ws: [u64; WORDS + 1],
    key_stop: [u64; WORDS + 1],
    quoted_stop: [u64; WORDS + 1],
}

impl Chunk {
    /// The masks of the blocks from `start` on.
    #[inline]
    fn load(line: &[u8], start: usize) -> Chunk {
        let mut masks = [Masks::PAST_END; WORDS + 1];
        Masks::load_run(line, start, &mut masks);
        Chunk {
            ws: masks.map(|m| m.ws),
            key_stop: masks.map(|m| m.key_stop),
            quoted_stop: masks.map(|m| m.quoted_stop),
        }
    }
}

/// The pairs of a line, in order, duplicates kept. Never fails and never allocates: see the
/// crate docs for how malformed input is read.
///
/// ```
/// let keys: Vec<&[u8]> = logfmt::pairs(b"at=info status=200 debug").map(|p| p.key).collect();
/// assert_eq!(keys, [&b"at"[..], b"status", b"debug"]);
/// ```
#[inline]
pub fn pairs(line: &[u8]) -> Pairs<'_> {
    Pairs {
        line,
        pos: 0,
        chunk_start: 0,
        chunk: Chunk::load(line, 0),
    }
}

impl<'a> Pairs<'a> {
    /// What is left of the line, from where the next pair will be looked for.
    pub fn remainder(&self) -> &'a [u8] {
        &self.line[self.pos.min(self.line.len())..]
    }

    /// The first position at or after `from` whose byte is in the set `select` picks out of a
    /// block's masks, or the line's length when there is none.
    #[inline(always)]
    fn seek(&mut self, from: usize, select: impl Fn(&Chunk, usize) -> u64 + Copy) -> usize {
        let rel = from.wrapping_sub(self.chunk_start);
        let word = rel >> 6;
        if word < WORDS {
            let low = select(&self.chunk, word);
            let high = select(&self.chunk, word + 1);
            let hits = ((u128::from(high) << 64) | u128::from(low)) >> (rel & 63);
            if hits != 0 {
                // Bytes past the end read as whitespace: a hit is at most the line's length.
                return from + hits.trailing_zeros() as usize;
            }
        }
        self.seek_far(from, select)
    }

    /// `seek` past what the chunk holds: load chunks from `from` on until a hit or the end.
    #[inline(never)]
    fn seek_far(&mut self, from: usize, select: impl Fn(&Chunk, usize) -> u64) -> usize {
        let len = self.line.len();
        let mut at = from;
        while at < len {
            self.chunk_start = at & !63;
            self.chunk = Chunk::load(self.line, self.chunk_start);
            for i in 0..=WORDS {
                let block = self.chunk_start + 64 * i;
                let hits = select(&self.chunk, i) & (u64::MAX << (at.max(block) - block));
                if hits != 0 {
                    return (block + hits.trailing_zeros() as usize).min(len);
                }
            }
            at = self.chunk_start + 64 * (WORDS + 1);
        }
        len
    }

    #[inline(always)]
    fn quoted_value(&mut self, open: usize) -> Value<'a> {
        let body = open + 1;
        let mut escaped = false;
        let mut at = body;
        loop {
            let end = self.seek(at, |c, w| c.quoted_stop[w]);
            match self.line.get(end) {
                Some(b'"') => {
                    self.pos = end + 1;
                    return Value::quoted(&self.line[body..end], escaped, true);
                }
                Some(_) => {
                    // A backslash: it and the byte after it belong to the value.
                    escaped = true;
                    at = end + 2;
                }
                None => {
                    self.pos = self.line.len();
                    return Value::quoted(&self.line[body..], escaped, false);
                }
            }
        }
    }
}

impl<'a> Iterator for Pairs<'a> {
    type Item = Pair<'a>;

    /// Visits the rest with [`for_each_pair`] when nothing was taken yet.
    fn for_each<F: FnMut(Pair<'a>)>(self, mut f: F) {
        if self.untouched() {
            return for_each_pair(self.line, f);
        }
        // A `for` loop takes pairs with `next`, not `for_each`.
        for p in self {
            f(p);
        }
    }

    fn count(self) -> usize {
        let mut n = 0;
        self.for_each(|_| n += 1);
        n
    }

    #[inline(always)]
    fn next(&mut self) -> Option<Pair<'a>> {
        let line = self.line;
        // `pos` is just past the last pair's end; most pairs are one space apart, so the next
        // key usually starts right there.
        let start = match line.get(self.pos) {
            Some(&b) if b > b' ' => self.pos,
            _ => self.seek(self.pos, |c, w| !c.ws[w]),
        };
        if start >= line.len() {
            self.pos = line.len();
            return None;
        }
        // The key ends at the first space or `=`; an unquoted value at the first space after
        // the key, which is the first space after `start`: both seeks start from `start`.
        let key_end = self.seek(start, |c, w| c.key_stop[w]);
        let space = self.seek(start, |c, w| c.ws[w]);
        let key = &line[start..key_end];
        if line.get(key_end) != Some(&b'=') {
            // A space (or the end of the line) ended the key: step past it.
            self.pos = key_end + 1;
            return Some(Pair { key, value: None });
        }
        let value_start = key_end + 1;
        let value = if line.get(value_start) == Some(&b'"') {
            self.quoted_value(value_start)
        } else {
            self.pos = space + 1;
            Value::plain(&line[value_start..space])
        };
        Some(Pair {
            key,
            value: Some(value),
        })
    }
}

impl Pairs<'_> {
    /// Whether no pair has been taken yet, so that internal iteration may start afresh.
    fn untouched(&self) -> bool {
        self.pos == 0 && self.chunk_start == 0
    }
}

impl std::iter::FusedIterator for Pairs<'_> {}

/// The value of the first pair whose key is `key`; `None` when there is no such pair or the
/// key stands bare.
///
/// ```
/// let v = logfmt::get(b"at=info service=37ms status=200", b"service").unwrap();
/// assert_eq!(v.as_duration(), Some(std::time::Duration::from_millis(37)));
/// ```
#[inline]
pub fn get<'a>(line: &'a [u8], key: &[u8]) -> Option<Value<'a>> {
    pairs(line).find(|p| p.key == key).and_then(|p| p.value)
}
