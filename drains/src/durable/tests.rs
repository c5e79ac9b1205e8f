use std::collections::VecDeque;
use std::fs;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use proptest::prelude::*;

use super::format::{self, HEADER_LEN};
use super::*;

/// A directory under the system temp dir, removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> TempDir {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let path = std::env::temp_dir().join(format!(
            "durable-queue-test-{}-{}-{nanos}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        fs::create_dir_all(&path).unwrap();
        TempDir(path)
    }

    fn path(&self) -> &Path {
        &self.0
    }

    /// A queue directory inside it (not yet created).
    fn queue(&self) -> PathBuf {
        self.0.join("queue")
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

const BIG: u64 = 1 << 30;

fn record(i: u64) -> Vec<u8> {
    format!("<134>1 2025-01-01T00:00:00Z host app web.1 - record number {i}").into_bytes()
}

fn push_all(q: &mut DurableQueue, records: &[Vec<u8>]) -> u64 {
    let refs: Vec<&[u8]> = records.iter().map(Vec::as_slice).collect();
    q.push(&refs).unwrap()
}

/// The first sequence number and every record after it up to the first gap (all of them,
/// unless damage was cut out), without acknowledging them.
fn peek_all(q: &mut DurableQueue) -> (u64, Vec<Vec<u8>>) {
    let (first, records) = q.peek(usize::MAX, usize::MAX).unwrap();
    (first, records.iter().map(|b| b.to_vec()).collect())
}

fn segment_files(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.ends_with(".seg"))
        .collect();
    names.sort();
    names
}

#[test]
fn crc32_matches_the_standard_check_value() {
    assert_eq!(format::crc32(b"123456789"), 0xCBF4_3926);
    assert_eq!(format::crc32(b""), 0);
    assert_eq!(
        format::crc32_update(format::crc32(b"1234"), b"56789"),
        0xCBF4_3926
    );
}

#[test]
fn segment_names_round_trip() {
    assert_eq!(format::segment_file_name(1), "00000000000000000001.seg");
    assert_eq!(
        format::parse_segment_file_name("00000000000000004711.seg"),
        Some(4711)
    );
    assert_eq!(format::parse_segment_file_name("4711.seg"), None);
    assert_eq!(
        format::parse_segment_file_name("0000000000000000471x.seg"),
        None
    );
    assert_eq!(format::parse_segment_file_name("ack"), None);
}

#[test]
fn push_peek_ack_round_trip_in_order() {
    let tmp = TempDir::new();
    let mut q = DurableQueue::open(&tmp.queue(), BIG).unwrap();
    assert!(q.is_empty());
    assert_eq!(q.peek(10, 1000).unwrap(), (1, vec![]));

    let records: Vec<Vec<u8>> = (1..=5).map(record).collect();
    assert_eq!(push_all(&mut q, &records), 0);
    assert_eq!(q.len(), 5);
    assert_eq!(
        q.bytes(),
        records.iter().map(|r| r.len() as u64).sum::<u64>()
    );

    let (first, got) = q.peek(3, usize::MAX).unwrap();
    assert_eq!(first, 1);
    assert_eq!(got, records[..3]);
    // Peeking again gives the same records: nothing is removed until acknowledged.
    assert_eq!(q.peek(3, usize::MAX).unwrap(), (1, got.clone()));
    q.ack(first + got.len() as u64).unwrap();
    assert_eq!(q.len(), 2);

    let (first, got) = q.peek(100, usize::MAX).unwrap();
    assert_eq!(first, 4);
    assert_eq!(got, records[3..]);
    q.ack(6).unwrap();
    assert!(q.is_empty());
    assert_eq!(q.bytes(), 0);
    assert_eq!(q.peek(10, 10).unwrap(), (6, vec![]));
}

#[test]
fn peek_limits_records_and_bytes_but_gives_at_least_one() {
    let tmp = TempDir::new();
    let mut q = DurableQueue::open(&tmp.queue(), BIG).unwrap();
    q.push(&[b"aaaa", b"bbbb", b"cccc", b"dd"]).unwrap();
    assert_eq!(
        q.peek(0, 0).unwrap(),
        (1, vec![Bytes::from_static(b"aaaa")])
    );
    assert_eq!(q.peek(10, 1).unwrap().1.len(), 1);
    assert_eq!(q.peek(10, 8).unwrap().1.len(), 2);
    assert_eq!(q.peek(10, 11).unwrap().1.len(), 2);
    assert_eq!(q.peek(10, 14).unwrap().1.len(), 4);
    assert_eq!(q.peek(3, 100).unwrap().1.len(), 3);
    // Acknowledging part of what was peeked, and past it.
    q.ack(2).unwrap();
    assert_eq!(
        q.peek(1, 100).unwrap(),
        (2, vec![Bytes::from_static(b"bbbb")])
    );
    q.ack(4).unwrap();
    assert_eq!(
        q.peek(10, 100).unwrap(),
        (4, vec![Bytes::from_static(b"dd")])
    );
    // Acknowledging what does not exist yet changes nothing for later records.
    q.ack(1000).unwrap();
    q.push(&[b"e"]).unwrap();
    assert_eq!(
        q.peek(10, 100).unwrap(),
        (5, vec![Bytes::from_static(b"e")])
    );
}

#[test]
fn sequence_numbers_continue_across_reopen() {
    let tmp = TempDir::new();
    let dir = tmp.queue();
    let mut q = DurableQueue::open(&dir, BIG).unwrap();
    push_all(&mut q, &[record(1), record(2), record(3)]);
    q.sync().unwrap();
    drop(q);

    let mut q = DurableQueue::open(&dir, BIG).unwrap();
    assert_eq!(peek_all(&mut q), (1, vec![record(1), record(2), record(3)]));
    push_all(&mut q, &[record(4)]);
    q.ack(4).unwrap();
    assert_eq!(peek_all(&mut q), (4, vec![record(4)]));
    q.ack(5).unwrap();
    q.sync().unwrap();
    drop(q);

    // Everything acknowledged: the next record still gets the next number.
    let mut q = DurableQueue::open(&dir, BIG).unwrap();
    assert!(q.is_empty());
    assert_eq!(q.peek(1, 1).unwrap(), (5, vec![]));
    push_all(&mut q, &[record(5)]);
    assert_eq!(peek_all(&mut q), (5, vec![record(5)]));
}

#[test]
fn reopen_keeps_unacked_and_does_not_redeliver_acked() {
    let tmp = TempDir::new();
    let dir = tmp.queue();
    let records: Vec<Vec<u8>> = (1..=6).map(record).collect();
    let mut q = DurableQueue::open(&dir, BIG).unwrap();
    push_all(&mut q, &records);
    q.ack(3).unwrap();
    q.sync().unwrap();
    q.crash();

    let mut q = DurableQueue::open(&dir, BIG).unwrap();
    assert_eq!(q.len(), 4);
    assert_eq!(peek_all(&mut q), (3, records[2..].to_vec()));

    // An acknowledgement after the last sync is lost in a crash: redelivered (at least once).
    q.ack(5).unwrap();
    q.crash();
    let mut q = DurableQueue::open(&dir, BIG).unwrap();
    assert_eq!(peek_all(&mut q), (3, records[2..].to_vec()));

    // ... but not on a clean close (drop syncs).
    q.ack(5).unwrap();
    drop(q);
    let mut q = DurableQueue::open(&dir, BIG).unwrap();
    assert_eq!(peek_all(&mut q), (5, records[4..].to_vec()));
    assert_eq!(q.dropped_total(), 0);
}

#[test]
fn pushes_sync_when_the_last_sync_is_old() {
    let tmp = TempDir::new();
    let mut q = DurableQueue::open(&tmp.queue(), BIG).unwrap();
    // The clock set by hand, so that a busy machine cannot make the first push late.
    q.last_sync = Instant::now() + Duration::from_secs(3600);
    q.push(&[b"one"]).unwrap();
    assert!(
        q.unsynced,
        "a push within SYNC_INTERVAL of the last sync does not fsync"
    );
    q.last_sync = Instant::now()
        .checked_sub(SYNC_INTERVAL)
        .unwrap_or_else(Instant::now);
    q.push(&[b"two"]).unwrap();
    assert!(
        q.unsynced,
        "a push one SYNC_INTERVAL after the last sync leaves it to the caller's timer"
    );
    q.last_sync = Instant::now()
        .checked_sub(2 * SYNC_INTERVAL)
        .unwrap_or_else(Instant::now);
    q.push(&[b"two"]).unwrap();
    assert!(!q.unsynced, "a push when the timer is late fsyncs");
    q.push(&[b"three"]).unwrap();
    assert!(q.unsynced);
    q.sync().unwrap();
    assert!(!q.unsynced);
    assert_eq!(q.persisted_head, Some(1));
}

/// The bytes of a single-segment queue holding `records`, and where each record ends.
fn written_segment(records: &[Vec<u8>]) -> (Vec<u8>, Vec<u64>) {
    let tmp = TempDir::new();
    let dir = tmp.queue();
    let mut q = DurableQueue::open(&dir, BIG).unwrap();
    push_all(&mut q, records);
    drop(q);
    let bytes = fs::read(dir.join(format::segment_file_name(1))).unwrap();
    let mut ends = Vec::new();
    let mut end = HEADER_LEN;
    for r in records {
        end += format::FRAME_OVERHEAD + r.len() as u64;
        ends.push(end);
    }
    assert_eq!(end, bytes.len() as u64);
    (bytes, ends)
}

#[test]
fn a_torn_last_record_is_cut_off_at_every_possible_length() {
    let records: Vec<Vec<u8>> = vec![record(1), b"".to_vec(), record(3), b"x".to_vec(), record(5)];
    let (bytes, ends) = written_segment(&records);
    for cut in 0..=bytes.len() {
        let tmp = TempDir::new();
        let dir = tmp.queue();
        fs::create_dir_all(&dir).unwrap();
        let seg = dir.join(format::segment_file_name(1));
        fs::write(&seg, &bytes[..cut]).unwrap();

        let mut q = DurableQueue::open(&dir, BIG).unwrap();
        let complete = ends.iter().filter(|&&e| e <= cut as u64).count();
        assert_eq!(q.len(), complete as u64, "cut at {cut}");
        assert_eq!(
            q.dropped_total(),
            0,
            "a torn write is not a loss: cut at {cut}"
        );
        assert_eq!(
            peek_all(&mut q),
            (1, records[..complete].to_vec()),
            "cut at {cut}"
        );
        let valid = if complete == 0 {
            HEADER_LEN
        } else {
            ends[complete - 1]
        };
        assert_eq!(fs::metadata(&seg).unwrap().len(), valid, "cut at {cut}");
        // New records follow on, numbered after the complete ones.
        q.push(&[b"after"]).unwrap();
        q.ack(complete as u64 + 1).unwrap();
        assert_eq!(
            q.peek(10, 1000).unwrap(),
            (complete as u64 + 1, vec![Bytes::from_static(b"after")]),
            "cut at {cut}"
        );
        drop(q);
        let mut q = DurableQueue::open(&dir, BIG).unwrap();
        assert_eq!(q.peek(10, 1000).unwrap().1.len(), 1);
    }
}

#[test]
fn a_flipped_byte_in_the_last_segment_cuts_it_there_and_counts_one() {
    let records: Vec<Vec<u8>> = (1..=5).map(record).collect();
    let (mut bytes, ends) = written_segment(&records);
    // A byte inside the payload of record 3.
    let at = ends[1] + format::FRAME_OVERHEAD + 4;
    bytes[at as usize] ^= 0x20;
    let tmp = TempDir::new();
    let dir = tmp.queue();
    fs::create_dir_all(&dir).unwrap();
    let seg = dir.join(format::segment_file_name(1));
    fs::write(&seg, &bytes).unwrap();

    let mut q = DurableQueue::open(&dir, BIG).unwrap();
    assert_eq!(peek_all(&mut q), (1, records[..2].to_vec()));
    assert_eq!(q.dropped_total(), 1);
    assert_eq!(fs::metadata(&seg).unwrap().len(), ends[1]);
    // Records 4 and 5 are kept, after the gap.
    q.ack(3).unwrap();
    assert_eq!(peek_all(&mut q), (4, records[3..].to_vec()));
    drop(q);
    // The damage is gone for good: a second open finds nothing wrong.
    let q = DurableQueue::open(&dir, BIG).unwrap();
    assert_eq!((q.len(), q.dropped_total()), (2, 0));
}

/// Regression (issue 17): 200 bytes of garbage in the middle of a segment lost every intact
/// record after them, silently.
#[test]
fn garbage_in_the_middle_of_a_segment_loses_only_what_it_covers() {
    let records: Vec<Vec<u8>> = (0..1000u64)
        .map(|i| format!("<134>1 2025-01-01T00:00:00Z host app web.1 - record {i:06}").into_bytes())
        .collect();
    let (mut bytes, ends) = written_segment(&records);
    let frame = (ends[1] - ends[0]) as usize;
    let at = bytes.len() / 2;
    for (i, b) in bytes[at..at + 200].iter_mut().enumerate() {
        *b = (i as u8).wrapping_mul(151).wrapping_add(7);
    }
    // The records the garbage touched.
    let first_hit = ends.iter().position(|&e| e as usize > at).unwrap();
    let last_hit = ends.iter().position(|&e| e as usize >= at + 200).unwrap();
    let hit = (last_hit - first_hit + 1) as u64;
    let tmp = TempDir::new();
    let dir = tmp.queue();
    fs::create_dir_all(&dir).unwrap();
    fs::write(dir.join(format::segment_file_name(1)), &bytes).unwrap();

    let mut q = DurableQueue::open(&dir, BIG).unwrap();
    // Equal-sized records: the estimate is exact.
    assert!(frame > 0);
    assert_eq!(q.dropped_total(), hit);
    assert_eq!(q.len(), 1000 - hit);
    assert_eq!(peek_all(&mut q), (1, records[..first_hit].to_vec()));
    q.ack(first_hit as u64 + 1).unwrap();
    let after = last_hit + 1;
    assert_eq!(
        peek_all(&mut q),
        (after as u64 + 1, records[after..].to_vec())
    );
    // New records follow on after them, and a reopen finds nothing more wrong.
    push_all(&mut q, &[b"next".to_vec()]);
    drop(q);
    let mut q = DurableQueue::open(&dir, BIG).unwrap();
    assert_eq!(q.dropped_total(), 0);
    let (first, got) = peek_all(&mut q);
    assert_eq!(first, after as u64 + 1);
    assert_eq!(got.len(), 1000 - after + 1);
    assert_eq!(got.last().unwrap(), b"next");
}

#[test]
fn a_damaged_length_is_caught_too() {
    let records: Vec<Vec<u8>> = (1..=3).map(record).collect();
    let (mut bytes, ends) = written_segment(&records);
    // The length of record 2 made huge.
    bytes[ends[0] as usize + 3] = 0x7F;
    let tmp = TempDir::new();
    let dir = tmp.queue();
    fs::create_dir_all(&dir).unwrap();
    fs::write(dir.join(format::segment_file_name(1)), &bytes).unwrap();
    let mut q = DurableQueue::open(&dir, BIG).unwrap();
    assert_eq!(peek_all(&mut q), (1, records[..1].to_vec()));
    assert_eq!(q.dropped_total(), 1);
    q.ack(2).unwrap();
    assert_eq!(peek_all(&mut q), (3, records[2..].to_vec()));
}

#[test]
fn a_flipped_byte_in_a_sealed_segment_counts_exactly_what_is_lost() {
    let tmp = TempDir::new();
    let dir = tmp.queue();
    // 10-byte records: two per 64-byte segment ([1, 2], [3, 4], [5, 6]).
    let records: Vec<Vec<u8>> = (0..6)
        .map(|i| format!("record-{i:03}").into_bytes())
        .collect();
    let mut q = DurableQueue::open_with(&dir, BIG, 64).unwrap();
    push_all(&mut q, &records);
    drop(q);
    assert_eq!(
        segment_files(&dir),
        [
            "00000000000000000001.seg",
            "00000000000000000003.seg",
            "00000000000000000005.seg"
        ]
    );
    let seg = dir.join("00000000000000000003.seg");
    let mut bytes = fs::read(&seg).unwrap();
    bytes[HEADER_LEN as usize + 8 + 2] ^= 1;
    fs::write(&seg, &bytes).unwrap();

    let mut q = DurableQueue::open_with(&dir, BIG, 64).unwrap();
    // Record 3 is lost; record 4, intact after it, is kept under its own number.
    assert_eq!(q.dropped_total(), 1);
    assert_eq!(q.len(), 5);
    assert_eq!(q.bytes(), 50);
    // Peek never spans the gap in the sequence numbers.
    assert_eq!(peek_all(&mut q), (1, records[..2].to_vec()));
    q.ack(3).unwrap();
    assert_eq!(peek_all(&mut q), (4, records[3..].to_vec()));
    q.ack(7).unwrap();
    assert!(q.is_empty());
    push_all(&mut q, &[b"next".to_vec()]);
    assert_eq!(peek_all(&mut q), (7, vec![b"next".to_vec()]));
}

#[test]
fn over_budget_drops_the_oldest_and_counts_them() {
    let tmp = TempDir::new();
    let dir = tmp.queue();
    let mut q = DurableQueue::open_with(&dir, 100, 64).unwrap();
    let records: Vec<Vec<u8>> = (0..15)
        .map(|i| format!("record-{i:03}").into_bytes())
        .collect();
    let mut dropped = 0;
    for r in &records {
        dropped += q.push(&[r]).unwrap();
    }
    assert_eq!(dropped, 5);
    assert_eq!(q.dropped_total(), 5);
    assert_eq!((q.len(), q.bytes()), (10, 100));
    assert_eq!(peek_all(&mut q), (6, records[5..].to_vec()));

    // A batch bigger than the budget keeps its newest records only.
    let batch: Vec<Vec<u8>> = (100..112)
        .map(|i| format!("record-{i:03}").into_bytes())
        .collect();
    assert_eq!(push_all(&mut q, &batch), 12);
    assert_eq!(peek_all(&mut q), (16, batch[2..].to_vec()));

    // A record bigger than the whole budget is dropped alone.
    assert_eq!(q.push(&[&[b'x'; 101]]).unwrap(), 1);
    assert_eq!(q.len(), 10);
    assert_eq!(q.dropped_total(), 5 + 12 + 1);

    // Half a budget's worth drops half.
    assert_eq!(q.push(&[&[b'y'; 50]]).unwrap(), 5);
    assert_eq!(q.peek(1, 100).unwrap().0, 21);
    drop(q);
    let mut q = DurableQueue::open_with(&dir, 100, 64).unwrap();
    assert_eq!((q.len(), q.bytes(), q.dropped_total()), (6, 100, 0));
    assert_eq!(q.peek(1, 100).unwrap().0, 21);
}

#[test]
fn records_over_the_maximum_length_are_dropped() {
    let tmp = TempDir::new();
    let mut q = DurableQueue::open(&tmp.queue(), BIG).unwrap();
    let huge = vec![0u8; format::MAX_RECORD_LEN as usize + 1];
    assert_eq!(q.push(&[b"small", &huge, b"small too"]).unwrap(), 1);
    assert_eq!(q.len(), 2);
}

#[test]
fn segments_roll_and_fully_acked_ones_are_deleted() {
    let tmp = TempDir::new();
    let dir = tmp.queue();
    let mut q = DurableQueue::open_with(&dir, BIG, 64).unwrap();
    let records: Vec<Vec<u8>> = (0..10)
        .map(|i| format!("record-{i:03}").into_bytes())
        .collect();
    push_all(&mut q, &records);
    assert_eq!(segment_files(&dir).len(), 5);

    q.ack(2).unwrap();
    assert_eq!(
        segment_files(&dir).len(),
        5,
        "segment 1 still holds record 2"
    );
    q.ack(3).unwrap();
    assert!(!dir.join("00000000000000000001.seg").exists());
    assert_eq!(segment_files(&dir).len(), 4);
    q.ack(10).unwrap();
    assert_eq!(segment_files(&dir), ["00000000000000000009.seg"]);
    q.ack(11).unwrap();
    assert_eq!(
        segment_files(&dir),
        ["00000000000000000009.seg"],
        "the last segment stays"
    );
    // Once everything in it is acknowledged, the next push starts afresh and deletes it.
    q.push(&[b"next"]).unwrap();
    assert_eq!(segment_files(&dir), ["00000000000000000011.seg"]);
    assert_eq!(
        q.peek(9, 99).unwrap(),
        (11, vec![Bytes::from_static(b"next")])
    );

    // A record larger than a segment gets one of its own.
    q.push(&[&[b'z'; 200], b"tiny"]).unwrap();
    assert_eq!(
        segment_files(&dir),
        [
            "00000000000000000011.seg",
            "00000000000000000012.seg",
            "00000000000000000013.seg"
        ]
    );
    drop(q);
    let mut q = DurableQueue::open_with(&dir, BIG, 64).unwrap();
    let (first, got) = peek_all(&mut q);
    assert_eq!(first, 11);
    assert_eq!(got, [b"next".to_vec(), vec![b'z'; 200], b"tiny".to_vec()]);
}

#[test]
fn budget_drops_delete_whole_segments() {
    let tmp = TempDir::new();
    let dir = tmp.queue();
    let mut q = DurableQueue::open_with(&dir, 40, 64).unwrap();
    let records: Vec<Vec<u8>> = (0..8)
        .map(|i| format!("record-{i:03}").into_bytes())
        .collect();
    assert_eq!(push_all(&mut q, &records[..4]), 0);
    assert_eq!(push_all(&mut q, &records[4..]), 4);
    assert_eq!(peek_all(&mut q), (5, records[4..].to_vec()));
    assert_eq!(
        segment_files(&dir),
        ["00000000000000000005.seg", "00000000000000000007.seg"]
    );
}

#[test]
fn a_crash_before_an_ack_is_synced_after_its_segment_is_deleted() {
    let tmp = TempDir::new();
    let dir = tmp.queue();
    let mut q = DurableQueue::open_with(&dir, BIG, 64).unwrap();
    let records: Vec<Vec<u8>> = (0..6)
        .map(|i| format!("record-{i:03}").into_bytes())
        .collect();
    push_all(&mut q, &records);
    q.sync().unwrap();
    q.ack(4).unwrap(); // deletes segment 1, not synced
    q.crash();
    let mut q = DurableQueue::open_with(&dir, BIG, 64).unwrap();
    assert_eq!(peek_all(&mut q), (3, records[2..].to_vec()));
}

#[test]
fn another_version_is_an_error_and_nothing_is_touched() {
    let tmp = TempDir::new();
    let dir = tmp.queue();
    let mut q = DurableQueue::open(&dir, BIG).unwrap();
    push_all(&mut q, &[record(1), record(2)]);
    q.ack(2).unwrap();
    drop(q);

    let seg = dir.join(format::segment_file_name(1));
    let good = fs::read(&seg).unwrap();
    let mut v2 = good.clone();
    v2[8..12].copy_from_slice(&2u32.to_le_bytes());
    v2.truncate(v2.len() - 3); // a torn record, which must not be cut off either
    fs::write(&seg, &v2).unwrap();
    match DurableQueue::open(&dir, BIG) {
        Err(DurableError::Version { path, found }) => {
            assert_eq!((path, found), (seg.clone(), 2));
        }
        other => panic!("expected a version error, got {other:?}"),
    }
    assert_eq!(fs::read(&seg).unwrap(), v2);

    fs::write(&seg, &good).unwrap();
    let ack = dir.join("ack");
    let good_ack = fs::read(&ack).unwrap();
    let mut v7 = good_ack.clone();
    v7[8..12].copy_from_slice(&7u32.to_le_bytes());
    fs::write(&ack, &v7).unwrap();
    assert!(matches!(
        DurableQueue::open(&dir, BIG),
        Err(DurableError::Version { found: 7, .. })
    ));

    let mut bad_magic = good_ack.clone();
    bad_magic[0] = b'X';
    fs::write(&ack, &bad_magic).unwrap();
    assert!(matches!(
        DurableQueue::open(&dir, BIG),
        Err(DurableError::Corrupt { .. })
    ));
    let mut bad_crc = good_ack;
    bad_crc[13] ^= 1;
    fs::write(&ack, &bad_crc).unwrap();
    let err = DurableQueue::open(&dir, BIG).unwrap_err();
    assert!(matches!(err, DurableError::Corrupt { .. }), "{err}");
    assert!(err.to_string().contains("CRC"), "{err}");
}

#[test]
fn a_segment_with_bad_magic_is_corrupt() {
    let tmp = TempDir::new();
    let dir = tmp.queue();
    fs::create_dir_all(&dir).unwrap();
    fs::write(dir.join(format::segment_file_name(1)), [b'?'; 40]).unwrap();
    assert!(matches!(
        DurableQueue::open(&dir, BIG),
        Err(DurableError::Corrupt { offset: 0, .. })
    ));
}

fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt as _;
    fs::metadata(path).unwrap().permissions().mode() & 0o777
}

/// Every file in `dir` with its mode.
fn file_modes(dir: &Path) -> Vec<(String, u32)> {
    let mut modes: Vec<(String, u32)> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap())
        .map(|e| (e.file_name().into_string().unwrap(), mode(&e.path())))
        .collect();
    modes.sort();
    modes
}

#[test]
fn queue_files_are_the_owners_alone() {
    let tmp = TempDir::new();
    let dir = tmp.path().join("drains").join("d1");
    let mut q = DurableQueue::open_with(&dir, BIG, 256).unwrap();
    push_all(&mut q, &(0..20).map(record).collect::<Vec<_>>());
    q.ack(3).unwrap();
    q.sync().unwrap();
    assert_eq!(mode(&dir), 0o700);
    assert_eq!(
        mode(&tmp.path().join("drains")),
        0o700,
        "the directories it made"
    );
    let files = file_modes(&dir);
    assert!(files.iter().any(|(n, _)| n == ACK_FILE), "{files:?}");
    assert!(
        files.iter().filter(|(n, _)| n.ends_with(".seg")).count() > 1,
        "{files:?}"
    );
    assert!(files.iter().all(|(_, m)| *m == 0o600), "{files:?}");
}

#[test]
fn an_older_queue_is_made_private_when_opened() {
    use std::os::unix::fs::PermissionsExt as _;
    let tmp = TempDir::new();
    let dir = tmp.queue();
    let mut q = DurableQueue::open(&dir, BIG).unwrap();
    push_all(&mut q, &[record(1), record(2)]);
    q.ack(2).unwrap();
    drop(q);
    fs::set_permissions(&dir, fs::Permissions::from_mode(0o755)).unwrap();
    for (name, _) in file_modes(&dir) {
        fs::set_permissions(dir.join(name), fs::Permissions::from_mode(0o644)).unwrap();
    }
    let q = DurableQueue::open(&dir, BIG).unwrap();
    assert_eq!(mode(&dir), 0o700);
    let files = file_modes(&dir);
    assert!(files.iter().all(|(_, m)| *m == 0o600), "{files:?}");
    drop(q);
}

#[test]
fn a_directory_is_open_once() {
    let tmp = TempDir::new();
    let dir = tmp.queue();
    let q = DurableQueue::open(&dir, BIG).unwrap();
    match DurableQueue::open(&dir, BIG) {
        Err(DurableError::Io { source, .. }) => assert_eq!(source.kind(), ErrorKind::WouldBlock),
        other => panic!("expected a lock error, got {other:?}"),
    }
    drop(q);
    DurableQueue::open(&dir, BIG).unwrap();
}

fn fixture_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/durable-v1")
}

const FIXTURE_RECORDS: [&[u8]; 3] = [
    b"<134>1 2025-01-01T00:00:00.000000+00:00 host app web.1 - first",
    b"<134>1 2025-01-01T00:00:01.000000+00:00 host app web.1 - second",
    b"<134>1 2025-01-01T00:00:02.000000+00:00 host app web.1 - third",
];
const FIXTURE_FILES: [&str; 2] = ["00000000000000000001.seg", "ack"];

/// The fixture's queue: three records, the first acknowledged.
fn write_fixture_queue(dir: &Path) {
    let mut q = DurableQueue::open(dir, BIG).unwrap();
    q.push(&FIXTURE_RECORDS).unwrap();
    q.ack(2).unwrap();
    q.sync().unwrap();
    drop(q);
    fs::remove_file(dir.join("lock")).unwrap();
}

/// Rewrites the fixture; only when the format version changes (and a new fixture directory
/// is made for it): `cargo test -- --ignored write_durable_v1_fixture`.
#[test]
#[ignore = "rewrites the frozen fixture"]
fn write_durable_v1_fixture() {
    let dir = fixture_dir();
    for name in FIXTURE_FILES {
        let _ = fs::remove_file(dir.join(name));
    }
    write_fixture_queue(&dir);
}

#[test]
fn frozen_v1_fixture_reads_back() {
    let tmp = TempDir::new();
    let dir = tmp.queue();
    fs::create_dir_all(&dir).unwrap();
    for name in FIXTURE_FILES {
        fs::copy(fixture_dir().join(name), dir.join(name)).unwrap();
    }
    let mut q = DurableQueue::open(&dir, BIG).unwrap();
    assert_eq!((q.len(), q.dropped_total()), (2, 0));
    assert_eq!(
        q.bytes(),
        (FIXTURE_RECORDS[1].len() + FIXTURE_RECORDS[2].len()) as u64
    );
    let (first, got) = q.peek(10, usize::MAX).unwrap();
    assert_eq!(first, 2);
    assert_eq!(got, FIXTURE_RECORDS[1..]);
    q.push(&[b"fourth"]).unwrap();
    q.ack(4).unwrap();
    assert_eq!(
        q.peek(10, 100).unwrap(),
        (4, vec![Bytes::from_static(b"fourth")])
    );
}

#[test]
fn this_build_writes_the_frozen_v1_fixture_byte_for_byte() {
    let tmp = TempDir::new();
    let dir = tmp.queue();
    write_fixture_queue(&dir);
    let mut names: Vec<String> = fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, FIXTURE_FILES);
    for name in FIXTURE_FILES {
        assert_eq!(
            fs::read(dir.join(name)).unwrap(),
            fs::read(fixture_dir().join(name)).unwrap(),
            "{name}"
        );
    }
}

#[test]
fn leftover_temp_ack_file_is_ignored() {
    let tmp = TempDir::new();
    let dir = tmp.queue();
    let mut q = DurableQueue::open(&dir, BIG).unwrap();
    q.push(&[b"a", b"b"]).unwrap();
    q.ack(2).unwrap();
    drop(q);
    fs::write(dir.join("ack.tmp"), b"half-written").unwrap();
    let mut q = DurableQueue::open(&dir, BIG).unwrap();
    assert_eq!(q.peek(9, 9).unwrap(), (2, vec![Bytes::from_static(b"b")]));
    assert!(!dir.join("ack.tmp").exists());
    assert!(tmp.path().exists());
}

#[test]
fn a_last_segment_cut_inside_its_header_is_restarted() {
    let tmp = TempDir::new();
    let dir = tmp.queue();
    let mut q = DurableQueue::open_with(&dir, BIG, 64).unwrap();
    let records: Vec<Vec<u8>> = (0..3)
        .map(|i| format!("record-{i:03}").into_bytes())
        .collect();
    push_all(&mut q, &records);
    drop(q);
    // Segments [1, 2] and [3]; a crash as segment 3 was being created.
    let seg = dir.join("00000000000000000003.seg");
    let bytes = fs::read(&seg).unwrap();
    fs::write(&seg, &bytes[..7]).unwrap();
    let mut q = DurableQueue::open_with(&dir, BIG, 64).unwrap();
    assert_eq!(peek_all(&mut q), (1, records[..2].to_vec()));
    push_all(&mut q, &[b"new".to_vec()]);
    q.ack(3).unwrap();
    assert_eq!(peek_all(&mut q), (3, vec![b"new".to_vec()]));
}

// --- The model check -------------------------------------------------------------------

#[derive(Debug, Clone)]
enum Op {
    Push(Vec<usize>),
    Peek(usize, usize),
    /// Acknowledge this many records from the head (past the end is fine).
    Ack(u64),
    Sync,
    /// A clean close (drop) and open.
    Reopen,
    /// Dropped without a final sync, and opened.
    Crash,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        5 => prop::collection::vec(0usize..48, 0..6).prop_map(Op::Push),
        3 => (0usize..6, 0usize..120).prop_map(|(r, b)| Op::Peek(r, b)),
        3 => (0u64..8).prop_map(Op::Ack),
        1 => Just(Op::Sync),
        1 => Just(Op::Reopen),
        1 => Just(Op::Crash),
    ]
}

/// What the queue should hold.
#[derive(Debug, Default)]
struct Model {
    budget: u64,
    /// (sequence number, payload), oldest first.
    pending: VecDeque<(u64, Vec<u8>)>,
    /// Every record ever given a sequence number.
    history: Vec<(u64, Vec<u8>)>,
    next_seq: u64,
    next_id: u64,
    pushed: u64,
    /// Acknowledged or dropped.
    removed: u64,
    dropped_since_open: u64,
}

impl Model {
    fn payload(&mut self, len: usize) -> Vec<u8> {
        let id = self.next_id;
        self.next_id += 1;
        (0..len)
            .map(|i| (id as u8).wrapping_mul(31).wrapping_add(i as u8))
            .collect()
    }

    fn bytes(&self) -> u64 {
        self.pending.iter().map(|(_, p)| p.len() as u64).sum()
    }

    fn head(&self) -> u64 {
        self.pending.front().map_or(self.next_seq, |(s, _)| *s)
    }

    fn push(&mut self, payloads: &[Vec<u8>]) -> u64 {
        let mut dropped = 0;
        let mut new: VecDeque<&Vec<u8>> = VecDeque::new();
        for p in payloads {
            self.pushed += 1;
            if p.len() as u64 > self.budget {
                dropped += 1;
            } else {
                new.push_back(p);
            }
        }
        let mut total = self.bytes() + new.iter().map(|p| p.len() as u64).sum::<u64>();
        while total > self.budget {
            let len = match self.pending.pop_front() {
                Some((_, p)) => p.len(),
                None => new.pop_front().map_or(0, Vec::len),
            };
            total -= len as u64;
            dropped += 1;
        }
        for p in new {
            self.pending.push_back((self.next_seq, p.clone()));
            self.history.push((self.next_seq, p.clone()));
            self.next_seq += 1;
        }
        self.removed += dropped;
        self.dropped_since_open += dropped;
        dropped
    }

    fn peek(&self, max_records: usize, max_bytes: usize) -> (u64, Vec<Vec<u8>>) {
        let mut out = Vec::new();
        let mut total = 0;
        for (_, p) in &self.pending {
            if out.len() >= max_records.max(1) || (!out.is_empty() && total + p.len() > max_bytes) {
                break;
            }
            total += p.len();
            out.push(p.clone());
        }
        (self.head(), out)
    }

    fn ack(&mut self, upto: u64) {
        while self.pending.front().is_some_and(|(s, _)| *s < upto) {
            self.pending.pop_front();
            self.removed += 1;
        }
    }
}

fn check(q: &mut DurableQueue, m: &Model) {
    assert_eq!(q.len(), m.pending.len() as u64);
    assert_eq!(q.bytes(), m.bytes());
    assert_eq!(q.is_empty(), m.pending.is_empty());
    assert_eq!(q.dropped_total(), m.dropped_since_open);
    assert_eq!(
        m.pushed,
        q.len() + m.removed,
        "len + dropped + acked == pushed"
    );
    assert!(q.bytes() <= m.budget);
}

fn run_model(budget: u64, segment_bytes: u64, ops: Vec<Op>) {
    let tmp = TempDir::new();
    let dir = tmp.queue();
    let mut q = Some(DurableQueue::open_with(&dir, budget, segment_bytes).unwrap());
    let mut m = Model {
        budget,
        next_seq: 1,
        ..Model::default()
    };
    for op in ops {
        let Some(queue) = q.as_mut() else { break };
        match op {
            Op::Push(lens) => {
                let payloads: Vec<Vec<u8>> = lens.iter().map(|&l| m.payload(l)).collect();
                let refs: Vec<&[u8]> = payloads.iter().map(Vec::as_slice).collect();
                let dropped = queue.push(&refs).unwrap();
                assert_eq!(dropped, m.push(&payloads));
            }
            Op::Peek(records, bytes) => {
                let (first, got) = queue.peek(records, bytes).unwrap();
                let got: Vec<Vec<u8>> = got.iter().map(|b| b.to_vec()).collect();
                assert_eq!((first, got), m.peek(records, bytes));
            }
            Op::Ack(n) => {
                let upto = m.head() + n;
                queue.ack(upto).unwrap();
                m.ack(upto);
            }
            Op::Sync => queue.sync().unwrap(),
            Op::Reopen => {
                drop(q.take());
                let mut queue = DurableQueue::open_with(&dir, budget, segment_bytes).unwrap();
                m.dropped_since_open = 0;
                let all = m.peek(usize::MAX, usize::MAX);
                let (first, got) = queue.peek(usize::MAX, usize::MAX).unwrap();
                let got: Vec<Vec<u8>> = got.iter().map(|b| b.to_vec()).collect();
                assert_eq!((first, got), all);
                q = Some(queue);
            }
            Op::Crash => {
                if let Some(queue) = q.take() {
                    queue.crash();
                }
                let mut queue = DurableQueue::open_with(&dir, budget, segment_bytes).unwrap();
                m.dropped_since_open = 0;
                // Records acknowledged or dropped since the last sync may be back; never a gap.
                let (first, got) = queue.peek(usize::MAX, usize::MAX).unwrap();
                assert_eq!(got.len() as u64, queue.len());
                let redropped = queue.dropped_total();
                let start = m
                    .history
                    .iter()
                    .position(|(s, _)| *s == first)
                    .unwrap_or(m.history.len());
                let expected: Vec<(u64, Vec<u8>)> = m.history[start..].to_vec();
                let got: Vec<(u64, Vec<u8>)> =
                    (first..).zip(got.iter().map(|b| b.to_vec())).collect();
                assert_eq!(got, expected, "a contiguous run up to the newest record");
                assert!(
                    got.len() >= m.pending.len(),
                    "nothing unacknowledged is lost"
                );
                // Drops since the last sync were back too, and `open` dropped them again:
                // what it kept is what fits the budget, newest first.
                let back = got.len() as u64 + redropped - m.pending.len() as u64;
                m.removed -= back;
                m.pending = got.into_iter().collect();
                m.removed += redropped;
                m.dropped_since_open = redropped;
                assert!(m.bytes() <= budget);
                if redropped > 0 {
                    let older = &m.history[start - 1].1;
                    assert!(
                        m.bytes() + older.len() as u64 > budget,
                        "only what is over is dropped"
                    );
                }
                q = Some(queue);
            }
        }
        if let Some(queue) = q.as_mut() {
            check(queue, &m);
        }
    }
    // Sequence numbers continue after everything else.
    if let Some(mut queue) = q.take() {
        queue.push(&[b"last"]).unwrap();
        m.push(&[b"last".to_vec()]);
        queue.ack(m.next_seq - 1).unwrap();
        m.ack(m.next_seq - 1);
        let (first, _) = queue.peek(1, 1).unwrap();
        assert_eq!(first, m.head());
    }
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 96,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]
    #[test]
    fn the_queue_behaves_like_its_model(
        budget in prop_oneof![Just(0u64), 1u64..64, 64u64..400, Just(BIG)],
        segment_bytes in prop_oneof![Just(40u64), 64u64..200, Just(SEGMENT_BYTES)],
        ops in prop::collection::vec(op(), 1..40),
    ) {
        run_model(budget, segment_bytes, ops);
    }
}

fn disk_usage(dir: &Path) -> u64 {
    fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap())
        .filter(|e| e.file_name().to_string_lossy().ends_with(".seg"))
        .map(|e| e.metadata().unwrap().len())
        .sum()
}

/// Regression (issue 17): the budget counted payload only, and a segment grew to 8 MiB with
/// its acknowledged records on disk, so a 1 MB budget used up to 7 MB. Now the segment files
/// stay within the budget whatever the receiver does.
#[test]
fn the_budget_bounds_the_bytes_on_disk() {
    let tmp = TempDir::new();
    let dir = tmp.queue();
    let budget = 1_000_000;
    let mut q = DurableQueue::open(&dir, budget).unwrap();
    let record = [b'x'; 100];
    let batch: Vec<&[u8]> = vec![&record[..]; 200];
    let mut most = 0;
    // A receiver that keeps up, but always has a few records in flight: the acknowledged
    // ones sat in the one segment until it reached 8 MiB.
    for _ in 0..500 {
        q.push(&batch).unwrap();
        let (first, records) = q.peek(usize::MAX, usize::MAX).unwrap();
        q.ack(first + records.len() as u64 - 10).unwrap();
        most = most.max(disk_usage(&dir));
    }
    assert!(
        most <= budget,
        "{most} bytes on disk for a budget of {budget}"
    );
    assert_eq!(
        q.dropped_total(),
        0,
        "nothing dropped while the receiver keeps up"
    );
    // A receiver that is down: records pile up to the budget, on disk, and no further.
    for _ in 0..100 {
        q.push(&batch).unwrap();
        most = most.max(disk_usage(&dir));
        assert_eq!(q.disk_bytes(), disk_usage(&dir));
    }
    assert!(
        most <= budget,
        "{most} bytes on disk for a budget of {budget}"
    );
    assert!(q.dropped_total() > 0);
    // Everything pushed is kept, acknowledged, or counted.
    let (_, kept) = peek_all(&mut q);
    assert_eq!(kept.len() as u64, q.len());
    assert_eq!(
        q.len() + q.dropped_total() + (500 * 200 - 10),
        600 * 200,
        "kept + dropped + acknowledged = pushed"
    );
    // Reopened with a smaller budget: the disk is brought within it at once.
    drop(q);
    let q = DurableQueue::open(&dir, budget / 4).unwrap();
    assert!(disk_usage(&dir) <= budget / 4);
    assert!(q.dropped_total() > 0);
}

#[test]
fn a_sync_begun_runs_outside_the_queue_and_records_written_meanwhile_wait_for_the_next() {
    let tmp = TempDir::new();
    let mut q = DurableQueue::open(&tmp.queue(), BIG).unwrap();
    q.last_sync = Instant::now() + Duration::from_secs(3600);
    q.push(&[b"one", b"two"]).unwrap();
    let pending = q.begin_sync().unwrap().expect("data to fsync");
    assert!(!q.unsynced);
    // Written while the fsync runs: the next sync's.
    q.push(&[b"three"]).unwrap();
    assert!(q.unsynced);
    q.ack(2).unwrap();
    let done = std::thread::spawn(move || pending.run()).join().unwrap();
    q.finish_sync(done).unwrap();
    assert_eq!(
        q.persisted_head,
        Some(2),
        "the acknowledged position is persisted"
    );
    assert!(q.unsynced);
    // A failed fsync leaves its data to the next sync.
    let pending = q.begin_sync().unwrap().expect("data to fsync");
    let failed = Err(DurableError::Io {
        path: tmp.queue(),
        source: std::io::Error::other("EIO"),
    });
    drop(pending);
    assert!(q.finish_sync(failed).is_err());
    assert!(q.unsynced);
    // Nothing written since: nothing to fsync.
    q.sync().unwrap();
    assert!(q.begin_sync().unwrap().is_none());
    // Everything pushed survives a crash (the queue dropped without its final sync).
    q.sync_on_drop = false;
    drop(q);
    let mut q = DurableQueue::open(&tmp.queue(), BIG).unwrap();
    assert_eq!(
        peek_all(&mut q),
        (2, vec![b"two".to_vec(), b"three".to_vec()])
    );
}
