//! A fixed-size set of row numbers of one block, as bits: what a filter selects.

/// Rows `0..len` of a block, each in or out.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Bitmap {
    words: Vec<u64>,
    len: usize,
}

impl Bitmap {
    /// No row.
    pub(crate) fn none(len: usize) -> Self {
        Bitmap {
            words: vec![0; len.div_ceil(64)],
            len,
        }
    }

    /// Every row.
    pub(crate) fn all(len: usize) -> Self {
        let mut b = Bitmap {
            words: vec![u64::MAX; len.div_ceil(64)],
            len,
        };
        b.trim();
        b
    }

    /// The rows `i` for which `f(i)` holds.
    pub(crate) fn from_fn(len: usize, mut f: impl FnMut(usize) -> bool) -> Self {
        let mut words = vec![0u64; len.div_ceil(64)];
        for (w, word) in words.iter_mut().enumerate() {
            let base = w * 64;
            let end = (base + 64).min(len);
            let mut bits = 0u64;
            for i in base..end {
                bits |= u64::from(f(i)) << (i - base);
            }
            *word = bits;
        }
        Bitmap { words, len }
    }

    /// Clears the bits past `len` in the last word.
    fn trim(&mut self) {
        let tail = self.len % 64;
        if tail != 0
            && let Some(last) = self.words.last_mut()
        {
            *last &= (1u64 << tail) - 1;
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.len
    }

    pub(crate) fn set(&mut self, i: usize) {
        if let Some(w) = self.words.get_mut(i / 64) {
            *w |= 1 << (i % 64);
        }
    }

    #[cfg(test)]
    pub(crate) fn get(&self, i: usize) -> bool {
        self.words
            .get(i / 64)
            .is_some_and(|w| w & (1 << (i % 64)) != 0)
    }

    pub(crate) fn and(&mut self, other: &Bitmap) {
        self.words
            .iter_mut()
            .zip(&other.words)
            .for_each(|(a, b)| *a &= b);
    }

    pub(crate) fn or(&mut self, other: &Bitmap) {
        self.words
            .iter_mut()
            .zip(&other.words)
            .for_each(|(a, b)| *a |= b);
    }

    pub(crate) fn not(&mut self) {
        self.words.iter_mut().for_each(|w| *w = !*w);
        self.trim();
    }

    /// Clears rows `from..to`.
    pub(crate) fn clear_range(&mut self, from: usize, to: usize) {
        for i in from..to.min(self.len) {
            if let Some(w) = self.words.get_mut(i / 64) {
                *w &= !(1 << (i % 64));
            }
        }
    }

    pub(crate) fn count(&self) -> usize {
        self.words.iter().map(|w| w.count_ones() as usize).sum()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.words.iter().all(|&w| w == 0)
    }

    /// Whether any row in `from..to` is in.
    #[cfg(test)]
    pub(crate) fn any_in(&self, from: usize, to: usize) -> bool {
        (from..to.min(self.len)).any(|i| self.get(i))
    }

    /// The rows in, in order.
    pub(crate) fn ones(&self) -> impl Iterator<Item = usize> + '_ {
        self.words.iter().enumerate().flat_map(|(w, &word)| {
            let mut bits = word;
            std::iter::from_fn(move || {
                if bits == 0 {
                    return None;
                }
                let i = bits.trailing_zeros() as usize;
                bits &= bits - 1;
                Some(w * 64 + i)
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_algebra_on_rows() {
        let mut a = Bitmap::from_fn(130, |i| i % 3 == 0);
        let b = Bitmap::from_fn(130, |i| i % 2 == 0);
        assert_eq!(a.count(), 44);
        let mut c = a.clone();
        c.and(&b);
        assert_eq!(c.ones().collect::<Vec<_>>().len(), 22);
        assert!(c.ones().all(|i| i % 6 == 0));
        a.or(&b);
        assert_eq!(
            a.count(),
            130 - Bitmap::from_fn(130, |i| i % 2 != 0 && i % 3 != 0).count()
        );
        let mut all = Bitmap::all(130);
        assert_eq!(all.count(), 130);
        all.not();
        assert!(all.is_empty());
        let mut n = Bitmap::none(70);
        n.set(69);
        assert!(n.get(69) && !n.get(68) && n.any_in(60, 70) && !n.any_in(0, 69));
        n.clear_range(0, 70);
        assert!(n.is_empty());
        assert_eq!(n.len(), 70);
    }
}
