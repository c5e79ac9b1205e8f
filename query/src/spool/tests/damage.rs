//! Damage: a torn tail is cut at open, garbage anywhere is skipped and counted, and the intact
//! records around it still read.

use std::fs::{self, OpenOptions};
use std::io::{Seek as _, SeekFrom, Write as _};
use std::path::Path;

use super::*;

/// The file offsets where each of the first `n` records of a one-segment app begins.
fn record_starts(spool: &Spool, n: usize) -> Vec<u64> {
    let mut scan = spool.scan_from(APP, Position::default()).unwrap();
    let mut starts = vec![scan.position().0];
    for _ in 0..n {
        scan.next().unwrap().unwrap();
        starts.push(scan.position().0);
    }
    starts
}

fn overwrite(path: &Path, at: u64, bytes: &[u8]) {
    let mut f = OpenOptions::new().write(true).open(path).unwrap();
    f.seek(SeekFrom::Start(at)).unwrap();
    f.write_all(bytes).unwrap();
}

fn only_segment(dir: &Path) -> PathBuf {
    let files = segment_files(&dir.join(APP));
    assert_eq!(files.len(), 1);
    files[0].clone()
}

#[test]
fn a_torn_tail_is_cut_off_at_open_and_counted() {
    let dir = tempfile::tempdir().unwrap();
    let spool = Spool::open(dir.path(), SpoolConfig::default()).unwrap();
    spool.append(APP, &lines(0..10)).unwrap();
    let starts = record_starts(&spool, 10);
    drop(spool);
    let seg = only_segment(dir.path());
    let len = fs::metadata(&seg).unwrap().len();
    assert_eq!(len, starts[10]);
    OpenOptions::new()
        .write(true)
        .open(&seg)
        .unwrap()
        .set_len(len - 5)
        .unwrap();

    let spool = Spool::open(dir.path(), SpoolConfig::default()).unwrap();
    assert_eq!(read_all(&spool, APP), lines(0..9));
    assert_eq!(spool.damaged_records(), 1);
    assert_eq!(fs::metadata(&seg).unwrap().len(), starts[9], "cut back");
    spool.append(APP, &lines(9..12)).unwrap();
    assert_eq!(read_all(&spool, APP), lines(0..12));
    assert_eq!(
        spool.damaged_records(),
        1,
        "nothing damaged is left to skip"
    );
}

#[test]
fn zeros_after_the_last_record_are_cut_off() {
    let dir = tempfile::tempdir().unwrap();
    let spool = Spool::open(dir.path(), SpoolConfig::default()).unwrap();
    spool.append(APP, &lines(0..10)).unwrap();
    drop(spool);
    let seg = only_segment(dir.path());
    let len = fs::metadata(&seg).unwrap().len();
    OpenOptions::new()
        .append(true)
        .open(&seg)
        .unwrap()
        .write_all(&[0; 4096])
        .unwrap();
    let spool = Spool::open(dir.path(), SpoolConfig::default()).unwrap();
    assert_eq!(read_all(&spool, APP), lines(0..10));
    assert_eq!(fs::metadata(&seg).unwrap().len(), len);
}

#[test]
fn garbage_in_a_record_is_skipped_and_the_rest_still_reads() {
    let dir = tempfile::tempdir().unwrap();
    let spool = Spool::open(dir.path(), SpoolConfig::default()).unwrap();
    spool.append(APP, &lines(0..10)).unwrap();
    let starts = record_starts(&spool, 10);
    let seg = only_segment(dir.path());
    overwrite(&seg, starts[5] + 20, &[0xAB; 10]);
    let mut scan = spool.scan(APP, None, None).unwrap();
    let got: Vec<LogLine> = scan.by_ref().map(Result::unwrap).collect();
    let mut expected = lines(0..10);
    expected.remove(5);
    assert_eq!(got, expected);
    assert_eq!(scan.damaged(), 1);
    assert_eq!(spool.damaged_records(), 1);
}

#[test]
fn an_impossible_length_spanning_records_is_one_damaged_stretch() {
    let dir = tempfile::tempdir().unwrap();
    let spool = Spool::open(dir.path(), SpoolConfig::default()).unwrap();
    spool.append(APP, &lines(0..10)).unwrap();
    let starts = record_starts(&spool, 10);
    drop(spool);
    let seg = only_segment(dir.path());
    // Records 3 and 4, and the start of 5, are garbage.
    let span = (starts[5] + 3 - starts[3]) as usize;
    overwrite(&seg, starts[3], &vec![0xFF; span]);
    let spool = Spool::open(dir.path(), SpoolConfig::default()).unwrap();
    assert_eq!(spool.app_stats(APP).unwrap().damaged, 1, "found at open");
    let mut scan = spool.scan(APP, None, None).unwrap();
    let got: Vec<u64> = scan.by_ref().map(|l| l.unwrap().seq - 1).collect();
    assert_eq!(got, vec![0, 1, 2, 6, 7, 8, 9]);
    assert_eq!(scan.damaged(), 1);
    spool.append(APP, &lines(10..11)).unwrap();
    assert_eq!(read_all(&spool, APP).len(), 8, "appends after damage read");
}

#[test]
fn damage_in_a_sealed_segment_is_skipped() {
    let dir = tempfile::tempdir().unwrap();
    let spool = Spool::open(dir.path(), small(4096)).unwrap();
    spool.append(APP, &lines(0..200)).unwrap();
    drop(spool);
    let files = segment_files(&dir.path().join(APP));
    let second = &files[1];
    let len = fs::metadata(second).unwrap().len();
    overwrite(second, len / 2, &[0x5A; 16]);
    let spool = Spool::open(dir.path(), small(4096)).unwrap();
    let got = read_all(&spool, APP);
    assert!(got.len() >= 197 && got.len() < 200, "{} lines", got.len());
    assert_eq!(got.first(), Some(&line(0)));
    assert_eq!(got.last(), Some(&line(199)));
    assert!(got.windows(2).all(|w| w[0].seq < w[1].seq));
    assert_eq!(spool.damaged_records(), 1);
}

#[test]
fn a_torn_segment_header_is_removed_at_open() {
    let dir = tempfile::tempdir().unwrap();
    let spool = Spool::open(dir.path(), SpoolConfig::default()).unwrap();
    spool.append(APP, &lines(0..10)).unwrap();
    let end = spool.app_stats(APP).unwrap().end;
    drop(spool);
    let torn = dir.path().join(APP).join(format::segment_file_name(end));
    fs::write(&torn, b"PAASSP").unwrap();
    let spool = Spool::open(dir.path(), SpoolConfig::default()).unwrap();
    assert_eq!(spool.app_stats(APP).unwrap().lines, 10);
    assert!(!torn.exists());
    spool.append(APP, &lines(10..12)).unwrap();
    assert_eq!(read_all(&spool, APP), lines(0..12));
}

#[test]
fn another_format_version_is_a_clear_error_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let spool = Spool::open(dir.path(), SpoolConfig::default()).unwrap();
    spool.append(APP, &lines(0..3)).unwrap();
    drop(spool);
    let seg = only_segment(dir.path());
    overwrite(&seg, 8, &99u32.to_le_bytes());
    let spool = Spool::open(dir.path(), SpoolConfig::default()).unwrap();
    let err = spool.scan(APP, None, None).unwrap_err();
    assert!(
        matches!(err, SpoolError::Version { found: 99, .. }),
        "{err}"
    );
    assert!(err.to_string().contains(seg.to_str().unwrap()), "{err}");
}
