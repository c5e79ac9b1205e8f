//! The hash of the store's maps: FxHash (rustc's), a multiply and a rotate per 8 bytes,
//! against SipHash's ~20 ns for a short name, paid for every line. Flooding is no concern:
//! app names are made by the operator, and what lines name (families, label values) is
//! capped per app and per metric before it reaches a map, so no tenant can grow a bucket
//! chain past those caps.

use std::hash::{BuildHasherDefault, Hasher};

const SEED: u64 = 0x51_7c_c1_b7_27_22_0a_95;

/// FxHash's hasher.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct FxHasher(u64);

impl FxHasher {
    fn add(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(SEED);
    }
}

impl Hasher for FxHasher {
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.add(u64::from_le_bytes(word));
        }
    }

    fn write_u8(&mut self, i: u8) {
        self.add(u64::from(i));
    }

    fn write_usize(&mut self, i: usize) {
        self.add(i as u64);
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

/// A map hashed with FxHash.
pub(crate) type FxMap<K, V> = std::collections::HashMap<K, V, BuildHasherDefault<FxHasher>>;

/// A map keyed by app name.
pub(crate) type AppMap<V> = FxMap<logplex::AppName, V>;

#[cfg(test)]
mod tests {
    use super::*;
    use std::hash::{BuildHasher, Hash};

    #[test]
    fn equal_names_hash_equal_and_different_ones_differ() {
        let b = BuildHasherDefault::<FxHasher>::default();
        let h = |s: &str| b.hash_one(logplex::AppName::from(s));
        assert_eq!(h("shop"), h("shop"));
        let names = [
            "shop",
            "blog",
            "shop2",
            "a-very-long-app-name-of-many-words",
            "",
        ];
        let mut seen: Vec<u64> = names.iter().map(|n| h(n)).collect();
        seen.sort_unstable();
        seen.dedup();
        assert_eq!(seen.len(), names.len());
        let mut one = FxHasher::default();
        "x".hash(&mut one);
        assert_ne!(one.finish(), 0);
    }
}
