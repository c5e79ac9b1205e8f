//! The tokens of a whole line found at once with bit arithmetic, for lines of the common shape,
//! so that its pairs can be read without each seek waiting on the one before.
//!
//! Quoted values are found as simdjson finds strings: the prefix XOR of the quote bits is set
//! from an opening quote up to its closing one. That is this crate's grammar only while every
//! quote opens a value right after its key's `=` or closes one before whitespace, no backslash
//! escapes anything, and no pair has a second `=`; [`tokens`] checks exactly that, block by
//! block, and a line that fails is read seek by seek instead.

use super::masks::Masks;

/// The tokens (pairs) of one block as bits.
#[derive(Clone, Copy, Default, Debug, PartialEq, Eq)]
pub(super) struct Tokens {
    /// The first byte of each token.
    pub starts: u64,
    /// The whitespace byte just after each token (past the line's end: the first byte past it).
    pub ends: u64,
}

/// What one block hands the next: the state at its last byte, each as bit 0 of a word.
#[derive(Clone, Copy, Debug)]
pub(super) struct Carry {
    /// All ones when the last byte was inside a quoted value.
    in_quote: u64,
    /// The last byte was whitespace outside quotes (at the line's start: yes).
    ws: u64,
    /// The last byte belonged to a token.
    token: u64,
    /// The last byte belonged to a token that has had its `=`.
    fill: u64,
    /// The last byte was a key's `=`.
    key_end: u64,
    /// The last byte was a closing quote.
    closer: u64,
}

impl Carry {
    /// The state before a line's first byte.
    pub const START: Carry = Carry {
        in_quote: 0,
        ws: 1,
        token: 0,
        fill: 0,
        key_end: 0,
        closer: 0,
    };

    /// Whether the last block ended inside a quoted value.
    pub fn in_quote(&self) -> bool {
        self.in_quote != 0
    }
}

/// Each bit set to the XOR of itself and every bit below it.
#[inline(always)]
fn prefix_xor(mut x: u64) -> u64 {
    x ^= x << 1;
    x ^= x << 2;
    x ^= x << 4;
    x ^= x << 8;
    x ^= x << 16;
    x ^= x << 32;
    x
}

/// The tokens of a block, or `None` when the block has a shape only the seek-by-seek scanner
/// reads: a backslash, a quote that does not open a value right after its key's `=`, a
/// closing quote not followed by whitespace, or a second `=` in a pair.
#[inline(always)]
pub(super) fn tokens(m: &Masks, carry: &mut Carry) -> Option<Tokens> {
    let quote = m.quoted_stop & !m.backslash;
    let inside = prefix_xor(quote) ^ carry.in_quote;
    let openers = quote & inside;
    let closers = quote & !inside;
    let ws = m.ws & !inside;
    let token = !ws;
    let eq = m.key_stop & !m.ws & !inside;
    // Adding a token's `=` bit to its run of token bits carries through the rest of the run,
    // clearing it: the cleared bits are the run from its first `=` on. A second `=` in the run
    // meets the carry and stays set.
    let (sum, carry_a) = token.overflowing_add(eq);
    let (sum, carry_b) = sum.overflowing_add(carry.fill);
    let second_eq = eq & !(token & !sum);
    let bad_open = openers & !((eq << 1) | carry.key_end);
    let bad_close = ((closers << 1) | carry.closer) & !m.ws;
    if m.backslash | second_eq | bad_open | bad_close != 0 {
        return None;
    }
    let found = Tokens {
        starts: token & ((ws << 1) | carry.ws),
        ends: ws & ((token << 1) | carry.token),
    };
    *carry = Carry {
        in_quote: ((inside as i64) >> 63) as u64,
        ws: ws >> 63,
        token: token >> 63,
        fill: u64::from(carry_a | carry_b),
        key_end: eq >> 63,
        closer: closers >> 63,
    };
    Some(found)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scan::masks::classify_scalar;

    fn block(s: &[u8]) -> Masks {
        let mut b = [0u8; 64];
        b[..s.len()].copy_from_slice(s);
        classify_scalar(&b)
    }

    fn bits(positions: &[u32]) -> u64 {
        positions.iter().map(|p| 1u64 << p).sum()
    }

    #[test]
    fn prefix_xor_marks_quoted_runs() {
        assert_eq!(prefix_xor(bits(&[2, 5])), bits(&[2, 3, 4]));
        assert_eq!(prefix_xor(0), 0);
    }

    #[test]
    fn tokens_of_a_simple_block() {
        //                0123456789012345678
        let m = block(b"a=1 b=\"x y\" debug");
        let mut carry = Carry::START;
        let t = tokens(&m, &mut carry).expect("simple");
        assert_eq!(t.starts, bits(&[0, 4, 12]));
        assert_eq!(t.ends, bits(&[3, 11, 17]));
    }

    #[test]
    fn other_shapes_are_refused() {
        for line in [
            &b"a=\"x\\\"y\""[..],
            b"k\"ey=1",
            b"a=b\"c",
            b"a=\"x\"b=1",
            b"a=b=c",
            b"\"q\"",
        ] {
            let mut carry = Carry::START;
            assert_eq!(
                tokens(&block(line), &mut carry),
                None,
                "{:?}",
                String::from_utf8_lossy(line)
            );
        }
    }

    #[test]
    fn a_quote_open_at_a_block_end_is_carried() {
        let mut carry = Carry::START;
        let mut first = [b'x'; 64];
        first[..4].copy_from_slice(b"k=\"a");
        assert!(tokens(&classify_scalar(&first), &mut carry).is_some());
        assert!(carry.in_quote());
        let t = tokens(&block(b"b c\" z=1"), &mut carry).expect("closed in the next block");
        assert_eq!(t.ends, bits(&[4, 8]));
        assert_eq!(t.starts, bits(&[5]));
        assert!(!carry.in_quote());
    }
}
