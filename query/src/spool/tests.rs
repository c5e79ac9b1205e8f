//! Tests of the spool on real files in temporary directories: round trips, rolling, time
//! windows, retention, damage, file modes, resume positions, the frozen fixture.

mod damage;
mod fixture;
mod writer;

use std::fs;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use bytes::Bytes;
use logplex::{AppName, LogLine, Timestamp};

use super::*;

pub(super) const APP: &str = "0b7e6f1c-2b4a-4c1e-9d3f-5a6b7c8d9e0f";
/// 2026-01-01T00:00:00Z in µs.
pub(super) const T0: i64 = 1_767_225_600_000_000;

/// Line `i` of app `shop`: every field differs from line to line; event time `T0 + i` s.
pub(super) fn line(i: u64) -> LogLine {
    line_at(i, T0 + i as i64 * 1_000_000)
}

pub(super) fn line_at(i: u64, time: i64) -> LogLine {
    LogLine {
        received: Timestamp::from_micros(time + 1_500),
        time: Timestamp::from_micros(time),
        app: AppName::from("shop"),
        source: Bytes::from(if i.is_multiple_of(2) { "app" } else { "paas" }),
        process: Bytes::from(format!("web.{}", i % 7)),
        facility: (i % 24) as u8,
        severity: (i % 8) as u8,
        message: Bytes::from(format!(
            "at=info method=GET path=/p/{i} status=200 service={i}ms"
        )),
        seq: i + 1,
    }
}

pub(super) fn lines(range: std::ops::Range<u64>) -> Vec<LogLine> {
    range.map(line).collect()
}

pub(super) fn small(segment_bytes: u64) -> SpoolConfig {
    SpoolConfig {
        segment_bytes,
        ..SpoolConfig::default()
    }
}

pub(super) fn read_all(spool: &Spool, app: &str) -> Vec<LogLine> {
    spool
        .scan(app, None, None)
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

pub(super) fn segment_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "seg"))
        .collect();
    files.sort();
    files
}

#[test]
fn every_field_comes_back_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let spool = Spool::open(dir.path(), SpoolConfig::default()).unwrap();
    let mut written = lines(0..50);
    written[3].message = Bytes::from_static(b"not utf-8 \xff\xfe and \"quotes\"");
    written[4].process = Bytes::new();
    spool.append(APP, &written[..20]).unwrap();
    spool.append(APP, &written[20..]).unwrap();
    assert_eq!(read_all(&spool, APP), written);
    let stats = spool.app_stats(APP).unwrap();
    assert_eq!(stats.lines, 50);
    assert_eq!(stats.segments, 1);
    assert_eq!(stats.oldest, Some(Timestamp::from_micros(T0)));
    assert_eq!(stats.newest, Some(Timestamp::from_micros(T0 + 49_000_000)));
}

#[test]
fn an_app_with_nothing_scans_empty() {
    let dir = tempfile::tempdir().unwrap();
    let spool = Spool::open(dir.path(), SpoolConfig::default()).unwrap();
    assert!(read_all(&spool, APP).is_empty());
    assert_eq!(spool.app_stats(APP).unwrap(), AppSpoolStats::default());
}

#[test]
fn lines_survive_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let written = lines(0..300);
    {
        let spool = Spool::open(dir.path(), small(4096)).unwrap();
        spool.append(APP, &written[..100]).unwrap();
        spool.append(APP, &written[100..]).unwrap();
        spool.sync().unwrap();
    }
    let spool = Spool::open(dir.path(), small(4096)).unwrap();
    assert_eq!(read_all(&spool, APP), written);
    let before = spool.app_stats(APP).unwrap();
    spool.append(APP, &lines(300..310)).unwrap();
    assert_eq!(read_all(&spool, APP), lines(0..310));
    assert_eq!(spool.app_stats(APP).unwrap().lines, before.lines + 10);
}

#[test]
fn segments_roll_at_their_size_and_are_sealed() {
    let dir = tempfile::tempdir().unwrap();
    let spool = Spool::open(dir.path(), small(4096)).unwrap();
    spool.append(APP, &lines(0..400)).unwrap();
    let files = segment_files(&dir.path().join(APP));
    assert!(files.len() > 5, "{} segments", files.len());
    for f in &files {
        assert!(fs::metadata(f).unwrap().len() <= 4096 + format::SEAL_FRAME as u64);
    }
    // Names are base positions: each segment starts where the one before ends.
    let mut expected = 0u64;
    for f in &files {
        let name = f.file_name().unwrap().to_str().unwrap();
        assert_eq!(format::parse_segment_file_name(name), Some(expected));
        expected += fs::metadata(f).unwrap().len();
    }
    assert_eq!(spool.app_stats(APP).unwrap().end, expected);
    drop(spool);
    let spool = Spool::open(dir.path(), small(4096)).unwrap();
    let stats = spool.app_stats(APP).unwrap();
    assert_eq!((stats.lines, stats.segments), (400, files.len()));
    assert_eq!(read_all(&spool, APP), lines(0..400));
}

#[test]
fn a_time_window_opens_only_the_segments_it_needs() {
    let dir = tempfile::tempdir().unwrap();
    let spool = Spool::open(dir.path(), small(4096)).unwrap();
    spool.append(APP, &lines(0..400)).unwrap();
    let segments = spool.app_stats(APP).unwrap().segments as u64;
    let since = Timestamp::from_micros(T0 + 390_000_000);
    let opened = spool.segments_opened();
    let got: Vec<LogLine> = spool
        .scan(APP, Some(since), None)
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(got, lines(390..400));
    let opened = spool.segments_opened() - opened;
    assert!(opened <= 2 && opened < segments, "{opened} of {segments}");

    let until = Timestamp::from_micros(T0 + 5_000_000);
    let got: Vec<LogLine> = spool
        .scan(APP, None, Some(until))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(got, lines(0..5), "until is exclusive");
}

#[test]
fn the_window_is_on_event_time_and_order_is_arrival() {
    let dir = tempfile::tempdir().unwrap();
    let spool = Spool::open(dir.path(), SpoolConfig::default()).unwrap();
    let written = vec![
        line_at(0, T0 + 30),
        line_at(1, T0 + 10),
        line_at(2, T0 + 20),
    ];
    spool.append(APP, &written).unwrap();
    let got: Vec<u64> = spool
        .scan(APP, Some(Timestamp::from_micros(T0 + 15)), None)
        .unwrap()
        .map(|l| l.unwrap().seq)
        .collect();
    assert_eq!(got, vec![1, 3]);
}

#[test]
fn a_scan_resumes_from_its_position_without_gap_or_repeat() {
    let dir = tempfile::tempdir().unwrap();
    let spool = Spool::open(dir.path(), small(4096)).unwrap();
    spool.append(APP, &lines(0..200)).unwrap();
    let mut scan = spool.scan_from(APP, Position::default()).unwrap();
    let first: Vec<LogLine> = scan.by_ref().take(77).map(Result::unwrap).collect();
    let at = scan.position();
    drop(scan);
    spool.append(APP, &lines(200..210)).unwrap();
    let rest: Vec<LogLine> = spool
        .scan_from(APP, at)
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(first, lines(0..77));
    assert_eq!(rest, lines(77..210));
    let mut all = spool.scan(APP, None, None).unwrap();
    all.by_ref().for_each(drop);
    assert_eq!(all.position().0, spool.app_stats(APP).unwrap().end);
}

#[test]
fn retention_by_bytes_deletes_the_oldest_segments() {
    let dir = tempfile::tempdir().unwrap();
    let config = SpoolConfig {
        max_bytes_per_app: 16 * 1024,
        segment_bytes: 4096,
        ..SpoolConfig::default()
    };
    let spool = Spool::open(dir.path(), config).unwrap();
    for i in 0..20 {
        spool.append(APP, &lines(i * 50..(i + 1) * 50)).unwrap();
    }
    let stats = spool.app_stats(APP).unwrap();
    assert!(stats.bytes <= 16 * 1024, "{} bytes kept", stats.bytes);
    let kept = read_all(&spool, APP);
    assert_eq!(kept.len() as u64, stats.lines);
    let first = kept.first().unwrap().seq - 1;
    assert!(first > 0);
    assert_eq!(
        kept,
        lines(first..1000),
        "the newest lines are kept, in order"
    );
}

#[test]
fn retention_by_age_deletes_old_segments_and_positions_go_on() {
    let dir = tempfile::tempdir().unwrap();
    let config = SpoolConfig {
        max_age: Duration::from_secs(3600),
        ..small(4096)
    };
    let spool = Spool::open(dir.path(), config).unwrap();
    spool.append(APP, &lines(0..300)).unwrap();
    let end = spool.app_stats(APP).unwrap().end;
    // An hour after line 200 was received: lines up to 200 are due, whole segments only.
    let now = Timestamp::from_micros(T0 + 200_000_000 + 3_600_000_000);
    spool.enforce_retention(now).unwrap();
    let kept = read_all(&spool, APP);
    let first = kept.first().unwrap().seq - 1;
    assert!(first > 100 && first <= 200, "kept from {first}");
    assert_eq!(kept, lines(first..300));

    // Everything due: the app keeps an empty segment, and its positions continue.
    spool
        .enforce_retention(Timestamp::from_micros(T0 + 10 * 3_600_000_000))
        .unwrap();
    assert!(read_all(&spool, APP).is_empty());
    let stats = spool.app_stats(APP).unwrap();
    assert_eq!((stats.lines, stats.segments), (0, 1));
    assert!(stats.end > end);
    spool.append(APP, &lines(300..301)).unwrap();
    assert_eq!(read_all(&spool, APP), lines(300..301));
}

#[test]
fn a_removed_app_loses_its_files_and_is_not_written_again() {
    let dir = tempfile::tempdir().unwrap();
    let spool = Spool::open(dir.path(), SpoolConfig::default()).unwrap();
    spool.append(APP, &lines(0..10)).unwrap();
    spool.append("other-app", &lines(0..3)).unwrap();
    spool.remove_app(APP).unwrap();
    assert!(!dir.path().join(APP).exists());
    assert!(matches!(
        spool.append(APP, &lines(10..11)),
        Err(SpoolError::Removed(_))
    ));
    assert!(!dir.path().join(APP).exists());
    assert_eq!(spool.app_ids().unwrap(), vec!["other-app".to_owned()]);
    assert_eq!(read_all(&spool, "other-app").len(), 3);
}

#[test]
fn files_are_0600_and_directories_0700() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("spool");
    let spool = Spool::open(&root, small(4096)).unwrap();
    spool.append(APP, &lines(0..200)).unwrap();
    let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&root), 0o700);
    assert_eq!(mode(&root.join(APP)), 0o700);
    assert_eq!(mode(&root.join("lock")), 0o600);
    let files = segment_files(&root.join(APP));
    assert!(files.len() > 1);
    for f in files {
        assert_eq!(mode(&f), 0o600, "{}", f.display());
    }
}

#[test]
fn app_ids_that_are_not_words_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let spool = Spool::open(dir.path(), SpoolConfig::default()).unwrap();
    for bad in ["", "..", "a/b", "../x", "a b", &"x".repeat(65)] {
        assert!(
            matches!(
                spool.append(bad, &lines(0..1)),
                Err(SpoolError::BadAppId(_))
            ),
            "{bad:?}"
        );
    }
}

#[test]
fn a_directory_has_one_spool_open_at_a_time() {
    let dir = tempfile::tempdir().unwrap();
    let spool = Spool::open(dir.path(), SpoolConfig::default()).unwrap();
    assert!(matches!(
        Spool::open(dir.path(), SpoolConfig::default()),
        Err(SpoolError::Locked(_))
    ));
    drop(spool);
    Spool::open(dir.path(), SpoolConfig::default()).unwrap();
}

/// One quick measurement of scan speed (no assertion on time):
/// `cargo test -p query --release -- --ignored --nocapture measure_scan_speed`.
#[test]
#[ignore = "a measurement, not a check"]
fn measure_scan_speed() {
    let dir = tempfile::tempdir().unwrap();
    let spool = Spool::open(dir.path(), SpoolConfig::default()).unwrap();
    let n = 1_000_000u64;
    for chunk in (0..n).step_by(10_000) {
        spool.append(APP, &lines(chunk..chunk + 10_000)).unwrap();
    }
    let bytes = spool.app_stats(APP).unwrap().bytes;
    for _ in 0..3 {
        let start = std::time::Instant::now();
        let mut count = 0u64;
        let mut msg = 0usize;
        for l in spool.scan(APP, None, None).unwrap() {
            msg += l.unwrap().message.len();
            count += 1;
        }
        let s = start.elapsed().as_secs_f64();
        println!(
            "scanned {count} lines ({bytes} bytes, {msg} message bytes) in {s:.3}s: \
             {:.0} lines/s, {:.0} MB/s",
            count as f64 / s,
            bytes as f64 / s / 1e6
        );
        assert_eq!(count, n);
    }
}

#[test]
fn released_lines_go_with_their_segments_and_positions_go_on() {
    let dir = tempfile::tempdir().unwrap();
    let spool = Spool::open(dir.path(), small(64 << 20)).unwrap();
    spool.append(APP, &lines(0..20_000)).unwrap();
    let mut scan = spool.scan_from(APP, Position::default()).unwrap();
    let half: Vec<LogLine> = scan.by_ref().take(10_000).map(Result::unwrap).collect();
    let middle = scan.position();
    drop(scan);
    assert_eq!(half.len(), 10_000);
    // Half of the one segment being written is covered: nothing goes.
    assert_eq!(spool.release_through(APP, middle).unwrap(), 0);
    assert_eq!(read_all(&spool, APP).len(), 20_000);
    // All of it (past a MiB) is: it is sealed, a new one started, and it goes.
    let end = Position(spool.app_stats(APP).unwrap().end);
    assert_eq!(spool.release_through(APP, end).unwrap(), 1);
    let stats = spool.app_stats(APP).unwrap();
    assert_eq!((stats.lines, stats.segments), (0, 1), "{stats:?}");
    assert!(stats.end >= end.0);
    spool.append(APP, &lines(20_000..20_010)).unwrap();
    let rest: Vec<LogLine> = spool
        .scan_from(APP, end)
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(rest, lines(20_000..20_010));
}
