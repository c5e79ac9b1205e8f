//! An app's dictionary of one column: every distinct value the column has held, each with an
//! id (1, 2, …; 0 is "absent"), so that rows keep small ids and a filter tests each distinct
//! value once. Append-only on disk; the ids of a dictionary never change.
//!
//! File `dict/<column>`: records back to back, each `length u32, bytes, crc u32` (CRC-32 of
//! the length and the bytes). At open a torn last record (a crash while appending) is cut
//! off; a damaged one elsewhere is an error naming the file (`paas index:rebuild`).

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{Read as _, Write as _};
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};

use super::IndexError;
use super::bloom::{Bloom, hash_word, words};
use crate::exec::extract::number_of;

/// The longest value a dictionary keeps: a longer one is not kept in the column (the row
/// reads it from its line).
pub(crate) const MAX_VALUE: usize = 4096;

/// One column's dictionary.
#[derive(Debug)]
pub(crate) struct Dict {
    path: PathBuf,
    values: Vec<Box<[u8]>>,
    /// Each value as the number it aggregates as (NaN: not a number).
    numbers: Vec<f64>,
    ids: HashMap<Box<[u8]>, u32>,
    /// Records not yet written.
    pending: Vec<u8>,
    /// Bytes of the file that are intact records.
    written: u64,
    max_values: usize,
    /// What `memory_of` its values sums to.
    memory: u64,
    /// The words of its values, so that a full-text term skips a dictionary that cannot hold
    /// it without testing each value.
    words: Bloom,
    /// Words added to `words`, and how many it was sized for (it is rebuilt 4× larger past
    /// that).
    word_count: usize,
    word_capacity: usize,
}

impl Dict {
    /// Opens (or creates) the dictionary at `path`, keeping at most `max_values` values.
    pub(crate) fn open(path: &Path, max_values: usize) -> Result<Dict, IndexError> {
        let io = |e| IndexError::io(path, e);
        let mut bytes = Vec::new();
        match File::open(path) {
            Ok(mut f) => {
                f.read_to_end(&mut bytes).map_err(io)?;
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io(e)),
        }
        let mut dict = Dict {
            path: path.to_owned(),
            values: Vec::new(),
            numbers: Vec::new(),
            ids: HashMap::new(),
            pending: Vec::new(),
            written: 0,
            max_values,
            memory: 0,
            words: Bloom::with_capacity(WORDS_AT_FIRST),
            word_count: 0,
            word_capacity: WORDS_AT_FIRST,
        };
        let mut at = 0usize;
        while let Some(len_bytes) = bytes.get(at..at + 4) {
            let len = u32::from_le_bytes(len_bytes.try_into().unwrap_or_default()) as usize;
            let Some(record) = bytes.get(at..at + 4 + len + 4) else {
                break; // torn: cut off below
            };
            let (body, crc) = record.split_at(4 + len);
            let crc = u32::from_le_bytes(crc.try_into().unwrap_or_default());
            if len > MAX_VALUE || crc32fast::hash(body) != crc {
                return Err(IndexError::corrupt(
                    path,
                    format!("damaged record at offset {at}"),
                ));
            }
            dict.remember(&body[4..]);
            at += record.len();
        }
        dict.written = at as u64;
        if at < bytes.len() {
            let f = OpenOptions::new().write(true).open(path).map_err(io)?;
            f.set_len(dict.written).map_err(io)?;
        }
        Ok(dict)
    }

    fn remember(&mut self, value: &[u8]) -> u32 {
        let id = self.values.len() as u32 + 1;
        self.memory += memory_of(value);
        for w in words(value) {
            self.words.insert(hash_word(w));
            self.word_count += 1;
        }
        if self.word_count > self.word_capacity {
            self.word_capacity = self.word_count * 4;
            self.words = Bloom::with_capacity(self.word_capacity);
            for v in &self.values {
                words(v).for_each(|w| self.words.insert(hash_word(w)));
            }
        }
        self.values.push(value.into());
        self.numbers.push(number_of(value).unwrap_or(f64::NAN));
        self.ids.insert(value.into(), id);
        id
    }

    /// The id of `value`, added if new, taking its memory from `room`; `None` when the
    /// dictionary is full, the value too long or `room` too small.
    pub(crate) fn id_or_add(&mut self, value: &[u8], room: &mut u64) -> Option<u32> {
        if let Some(&id) = self.ids.get(value) {
            return Some(id);
        }
        let cost = memory_of(value);
        if self.values.len() >= self.max_values || value.len() > MAX_VALUE || cost > *room {
            return None;
        }
        *room -= cost;
        let len = value.len() as u32;
        let start = self.pending.len();
        self.pending.extend_from_slice(&len.to_le_bytes());
        self.pending.extend_from_slice(value);
        let crc = crc32fast::hash(&self.pending[start..]);
        self.pending.extend_from_slice(&crc.to_le_bytes());
        Some(self.remember(value))
    }

    /// The id of `value`, if the dictionary has it.
    pub(crate) fn id(&self, value: &[u8]) -> Option<u32> {
        self.ids.get(value).copied()
    }

    /// The value of `id`.
    pub(crate) fn value(&self, id: u32) -> Option<&[u8]> {
        self.values
            .get((id as usize).checked_sub(1)?)
            .map(|v| &v[..])
    }

    /// The number of `id` (NaN when it is none).
    pub(crate) fn number(&self, id: u32) -> f64 {
        (id as usize)
            .checked_sub(1)
            .and_then(|i| self.numbers.get(i))
            .copied()
            .unwrap_or(f64::NAN)
    }

    /// Whether some value may hold `word` (lower case) as a word (false: none does).
    pub(crate) fn may_hold_word(&self, word: &[u8]) -> bool {
        self.words.may_contain(hash_word(word))
    }

    /// The memory its values take (about).
    pub(crate) fn memory(&self) -> u64 {
        self.memory
    }

    /// Values kept.
    pub(crate) fn len(&self) -> usize {
        self.values.len()
    }

    /// The values, by id (the first is id 1).
    pub(crate) fn values(&self) -> impl Iterator<Item = &[u8]> {
        self.values.iter().map(|v| &v[..])
    }

    /// Writes and fsyncs the values added since the last flush (before any block that uses
    /// their ids is written).
    pub(crate) fn flush(&mut self) -> Result<(), IndexError> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let io = |e| IndexError::io(&self.path, e);
        let mut f = OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(&self.path)
            .map_err(io)?;
        f.write_all(&self.pending).map_err(io)?;
        f.sync_data().map_err(io)?;
        self.written += self.pending.len() as u64;
        self.pending.clear();
        Ok(())
    }

    /// Bytes on disk.
    pub(crate) fn bytes(&self) -> u64 {
        self.written
    }
}

/// Words a dictionary's word filter is first sized for.
const WORDS_AT_FIRST: usize = 1024;

/// The memory a value takes in a dictionary: its bytes twice (the list and the map, each an
/// allocation), the two boxes, the map's entry and control byte, the number.
fn memory_of(value: &[u8]) -> u64 {
    2 * value.len() as u64 + 96
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_survive_a_reopen_and_a_torn_tail() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("path");
        let mut d = Dict::open(&path, 3).unwrap();
        let mut max = u64::MAX;
        let room = &mut max;
        assert_eq!(d.id_or_add(b"/a", room), Some(1));
        assert_eq!(d.id_or_add(b"12ms", room), Some(2));
        assert_eq!(d.id_or_add(b"/a", room), Some(1));
        d.flush().unwrap();
        assert_eq!(d.id_or_add(b"x", &mut 0), None, "no room");
        assert_eq!(d.id_or_add(b"x", room), Some(3));
        assert_eq!(d.id_or_add(b"full", room), None, "at most 3 values");
        assert_eq!(d.number(2), 12.0);
        assert!(d.number(1).is_nan() && d.number(0).is_nan() && d.number(99).is_nan());
        drop(d);
        // "x" was never flushed; a torn record is cut off.
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(&[9, 0, 0, 0, b'a']).unwrap();
        drop(f);
        let d = Dict::open(&path, 3).unwrap();
        assert_eq!(d.len(), 2);
        assert_eq!(d.value(1), Some(&b"/a"[..]));
        assert_eq!(d.id(b"12ms"), Some(2));
        assert_eq!(d.value(0), None);
        assert_eq!(std::fs::metadata(&path).unwrap().len(), d.bytes());
    }

    #[test]
    fn a_damaged_record_names_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("status");
        let mut d = Dict::open(&path, 10).unwrap();
        d.id_or_add(b"200", &mut { u64::MAX });
        d.id_or_add(b"503", &mut { u64::MAX });
        d.flush().unwrap();
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[5] ^= 1;
        std::fs::write(&path, bytes).unwrap();
        let e = Dict::open(&path, 10).unwrap_err().to_string();
        assert!(
            e.contains("status") && e.contains("damaged record at offset 0"),
            "{e}"
        );
    }
}
