//! A block's column of ids and its times, decoded, at the width they were written in: what
//! the column cache keeps and what filters and aggregations read.

use crate::index::bitmap::Bitmap;

/// A column's ids, a row each (0: the key is absent).
#[derive(Debug)]
pub(crate) enum Ids {
    /// No row has the key.
    Absent(usize),
    U8(Vec<u8>),
    U16(Vec<u16>),
    U32(Vec<u32>),
}

impl Ids {
    /// Decodes `rows` ids of `width` bytes from `bytes` (little-endian); `None` when the sizes
    /// disagree.
    pub(crate) fn decode(width: u8, rows: usize, bytes: &[u8]) -> Option<Ids> {
        if bytes.len() != rows * usize::from(width) {
            return None;
        }
        Some(match width {
            0 => Ids::Absent(rows),
            1 => Ids::U8(bytes.to_vec()),
            2 => Ids::U16(
                bytes
                    .chunks_exact(2)
                    .map(|b| u16::from_le_bytes([b[0], b[1]]))
                    .collect(),
            ),
            4 => Ids::U32(
                bytes
                    .chunks_exact(4)
                    .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                    .collect(),
            ),
            _ => return None,
        })
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        match self {
            Ids::Absent(n) => *n,
            Ids::U8(v) => v.len(),
            Ids::U16(v) => v.len(),
            Ids::U32(v) => v.len(),
        }
    }

    /// Row `i`'s id (0 past the end).
    pub(crate) fn get(&self, i: usize) -> u32 {
        match self {
            Ids::Absent(_) => None,
            Ids::U8(v) => v.get(i).map(|&x| u32::from(x)),
            Ids::U16(v) => v.get(i).map(|&x| u32::from(x)),
            Ids::U32(v) => v.get(i).copied(),
        }
        .unwrap_or(0)
    }

    /// The rows whose id `truth` says yes to (ids past its end: no).
    pub(crate) fn select(&self, truth: &[bool]) -> Bitmap {
        let at = |id: usize| truth.get(id).copied().unwrap_or(false);
        match self {
            Ids::Absent(n) => {
                if at(0) {
                    Bitmap::all(*n)
                } else {
                    Bitmap::none(*n)
                }
            }
            Ids::U8(v) => {
                // A full table for one-byte ids: no bounds test in the loop.
                let mut table = [false; 256];
                for (id, t) in table.iter_mut().enumerate() {
                    *t = at(id);
                }
                Bitmap::from_fn(v.len(), |i| table[usize::from(v[i])])
            }
            Ids::U16(v) => Bitmap::from_fn(v.len(), |i| at(usize::from(v[i]))),
            Ids::U32(v) => Bitmap::from_fn(v.len(), |i| at(v[i] as usize)),
        }
    }

    /// The memory it takes.
    pub(crate) fn bytes(&self) -> usize {
        match self {
            Ids::Absent(_) => 0,
            Ids::U8(v) => v.len(),
            Ids::U16(v) => v.len() * 2,
            Ids::U32(v) => v.len() * 4,
        }
    }
}

/// A block's times: µs after `base`, a row each (written as differences from the row
/// before; held as offsets).
#[derive(Debug)]
pub(crate) enum Times {
    U32 { base: i64, deltas: Vec<u32> },
    U64 { base: i64, deltas: Vec<u64> },
}

impl Times {
    pub(crate) fn decode(width: u8, base: i64, rows: usize, bytes: &[u8]) -> Option<Times> {
        if bytes.len() != rows * usize::from(width) {
            return None;
        }
        Some(match width {
            4 => Times::U32 {
                base,
                deltas: bytes
                    .chunks_exact(4)
                    .scan(0u32, |sum, b| {
                        *sum = sum.wrapping_add(u32::from_le_bytes([b[0], b[1], b[2], b[3]]));
                        Some(*sum)
                    })
                    .collect(),
            },
            8 => Times::U64 {
                base,
                deltas: bytes
                    .chunks_exact(8)
                    .scan(0u64, |sum, b| {
                        let mut w = [0u8; 8];
                        w.copy_from_slice(b);
                        *sum = sum.wrapping_add(u64::from_le_bytes(w));
                        Some(*sum)
                    })
                    .collect(),
            },
            _ => return None,
        })
    }

    /// Row `i`'s time, µs since the epoch.
    pub(crate) fn get(&self, i: usize) -> i64 {
        match self {
            Times::U32 { base, deltas } => {
                base.wrapping_add(i64::from(deltas.get(i).copied().unwrap_or(0)))
            }
            Times::U64 { base, deltas } => {
                base.wrapping_add(deltas.get(i).copied().unwrap_or(0) as i64)
            }
        }
    }

    pub(crate) fn bytes(&self) -> usize {
        match self {
            Times::U32 { deltas, .. } => deltas.len() * 4,
            Times::U64 { deltas, .. } => deltas.len() * 8,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_width_reads_and_selects_the_same() {
        let ids = [0u32, 3, 1, 3, 2];
        let truth = [false, true, false, true];
        for width in [1u8, 2, 4] {
            let bytes: Vec<u8> = ids
                .iter()
                .flat_map(|&id| id.to_le_bytes()[..usize::from(width)].to_vec())
                .collect();
            let col = Ids::decode(width, 5, &bytes).unwrap();
            assert_eq!((0..5).map(|i| col.get(i)).collect::<Vec<_>>(), ids);
            assert_eq!(col.select(&truth).ones().collect::<Vec<_>>(), [1, 2, 3]);
            assert_eq!(col.get(99), 0);
            assert_eq!(col.len(), 5);
        }
        assert!(Ids::decode(2, 5, &[0; 9]).is_none());
        assert_eq!(Ids::decode(0, 3, &[]).unwrap().select(&[true]).count(), 3);
        let t = Times::decode(4, 100, 2, &[1, 0, 0, 0, 2, 0, 0, 0]).unwrap();
        assert_eq!((t.get(0), t.get(1)), (101, 103));
    }
}
