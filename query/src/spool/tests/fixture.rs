//! The frozen fixture of format version 1: a spool written once and committed, which every
//! build must read the same way.

use super::*;

fn fixture_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/spool-v1")
}

/// Two sealed segments and an open one (segments of 512 bytes).
fn fixture_lines() -> Vec<LogLine> {
    let mut l = lines(0..12);
    l[1].message = Bytes::from_static(b"binary \x00\xff message");
    l[2].process = Bytes::new();
    l
}

const FIXTURE_SEGMENT: u64 = 512;

/// Rewrites the fixture; only when the format version changes (and a new fixture directory
/// is made for it): `cargo test -p query -- --ignored write_spool_v1_fixture`.
#[test]
#[ignore = "rewrites the frozen fixture"]
fn write_spool_v1_fixture() {
    let dir = fixture_dir();
    let _ = fs::remove_dir_all(&dir);
    let spool = Spool::open(&dir, small(FIXTURE_SEGMENT)).unwrap();
    spool.append(APP, &fixture_lines()).unwrap();
    spool.sync().unwrap();
    drop(spool);
    fs::remove_file(dir.join("lock")).unwrap();
}

#[test]
fn the_v1_fixture_reads_as_written() {
    let tmp = tempfile::tempdir().unwrap();
    let src = fixture_dir().join(APP);
    let dst = tmp.path().join(APP);
    fs::create_dir(&dst).unwrap();
    let files = segment_files(&src);
    assert_eq!(files.len(), 3, "two sealed segments and an open one");
    for f in &files {
        fs::copy(f, dst.join(f.file_name().unwrap())).unwrap();
    }
    let spool = Spool::open(tmp.path(), small(FIXTURE_SEGMENT)).unwrap();
    let mut expected = fixture_lines();
    for l in &mut expected {
        l.app = AppName::from("shop");
    }
    assert_eq!(read_all(&spool, APP), expected);
    let stats = spool.app_stats(APP).unwrap();
    assert_eq!((stats.lines, stats.segments, stats.damaged), (12, 3, 0));
    assert_eq!(spool.damaged_records(), 0);
    let first = fs::read(&files[0]).unwrap();
    assert_eq!(&first[..8], b"PAASSPOL");
    assert_eq!(first[8..12], FORMAT_VERSION.to_le_bytes());
}
