//! Differential test against go-logfmt itself (Debian's `golang-github-go-logfmt-logfmt-dev`,
//! installed by `scripts/test`): on the generated corpus and on hostile lines, every line
//! go-logfmt accepts gives the same pairs here, and every line it rejects is rejected by
//! `logfmt::validate` with the same message and position.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use logfmt::corpus::{Corpus, Mix};

const GO_LOGFMT_SRC: &str = "/usr/share/gocode/src/github.com/go-logfmt/logfmt";

/// Builds the Go decoder of `tests/go-logfmt/main.go`.
fn build_go_decoder() -> PathBuf {
    assert!(
        Path::new(GO_LOGFMT_SRC).is_dir() && Command::new("go").arg("version").output().is_ok(),
        "go and go-logfmt are needed: run scripts/test, or apt-get install golang-go golang-github-go-logfmt-logfmt-dev"
    );
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("go-logfmt");
    std::fs::create_dir_all(&dir).expect("temp dir");
    let bin = dir.join("decode");
    let status = Command::new("go")
        .args(["build", "-o"])
        .arg(&bin)
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/go-logfmt/main.go"))
        .env("GOPATH", "/usr/share/gocode")
        .env("GO111MODULE", "off")
        .env("GOCACHE", dir.join("cache"))
        .status()
        .expect("run go build");
    assert!(status.success(), "go build failed");
    bin
}

/// go-logfmt's answer for each line.
fn go_decode(bin: &Path, lines: &[Vec<u8>]) -> Vec<String> {
    let mut child = Command::new(bin)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("start decoder");
    let mut input = Vec::new();
    for l in lines {
        input.extend_from_slice(l);
        input.push(b'\n');
    }
    let mut stdin = child.stdin.take().expect("stdin");
    let writer = std::thread::spawn(move || stdin.write_all(&input));
    let out = child.wait_with_output().expect("decoder output");
    writer
        .join()
        .expect("writer thread")
        .expect("write to decoder");
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).expect("decoder prints ASCII");
    let answers: Vec<String> = text.lines().map(str::to_owned).collect();
    assert_eq!(answers.len(), lines.len(), "one answer per line");
    answers
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Our answer in the decoder's format. go-logfmt replaces invalid UTF-8 with U+FFFD in quoted
/// values that it unescapes; we keep the bytes, so such values are compared after the same
/// replacement.
fn ours(line: &[u8]) -> String {
    if let Err(e) = logfmt::validate(line) {
        return format!("ERR {} {}", e.pos, e.msg);
    }
    let mut s = String::from("OK");
    for p in logfmt::pairs(line) {
        let value = match p.value {
            None => Vec::new(),
            Some(v) if v.raw().contains(&b'\\') && v.is_quoted() => {
                String::from_utf8_lossy(&v.unescaped())
                    .into_owned()
                    .into_bytes()
            }
            Some(v) => v.unescaped().into_owned(),
        };
        s.push_str(&format!(" {}={}", hex(p.key), hex(&value)));
    }
    s
}

fn compare(lines: &[Vec<u8>]) -> (usize, usize) {
    let bin = build_go_decoder();
    let answers = go_decode(&bin, lines);
    let mut accepted = 0;
    for (line, go) in lines.iter().zip(&answers) {
        assert_eq!(&ours(line), go, "line {:?}", String::from_utf8_lossy(line));
        accepted += usize::from(go.starts_with("OK"));
    }
    (accepted, lines.len() - accepted)
}

#[test]
fn generated_corpus_matches_go_logfmt() {
    let text = Corpus::new(Mix::Platform, 11).lines(20_000);
    let lines: Vec<Vec<u8>> = text.lines().map(|l| l.as_bytes().to_vec()).collect();
    let (accepted, rejected) = compare(&lines);
    assert_eq!((accepted, rejected), (20_000, 0));
}

/// Lines of bytes that matter to the grammar (no newline or carriage return: go's line scanner
/// eats those), from a fixed seed so that a failure reproduces.
fn hostile_lines(n: usize, seed: u64) -> Vec<Vec<u8>> {
    const ALPHABET: &[&[u8]] = &[
        b"a",
        b"b",
        b"k",
        b"=",
        b"\"",
        b"\\",
        b" ",
        b"\t",
        b"u",
        b"0",
        b"f",
        b"n",
        b"\\u00e9",
        b"\\ud83d\\ude00",
        b"\\\"",
        b"\x00",
        b"\x1e",
        "é".as_bytes(),
        "ƒ".as_bytes(),
        b"\xff",
        b"\x80",
        b"=\"",
        b"\" ",
        "\u{fffd}".as_bytes(),
    ];
    let mut state = seed | 1;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    (0..n)
        .map(|_| {
            let len = (next() % 40) as usize;
            (0..len)
                .flat_map(|_| {
                    ALPHABET[(next() % ALPHABET.len() as u64) as usize]
                        .iter()
                        .copied()
                })
                .collect()
        })
        .collect()
}

#[test]
fn hostile_lines_match_go_logfmt_or_fail_the_same_way() {
    let lines = hostile_lines(50_000, 0x5eed);
    let (accepted, rejected) = compare(&lines);
    // Both outcomes must be well represented for the test to mean something.
    assert!(
        accepted > 2_000 && rejected > 2_000,
        "accepted {accepted}, rejected {rejected}"
    );
}
