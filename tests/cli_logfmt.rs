//! `paas logfmt` end to end: the real binary, real files and pipes.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

fn paas() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_paas"));
    cmd.env_remove("NO_COLOR");
    cmd
}

fn sample() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/sample.log")
}

/// Starts `paas` with `args` and every standard stream piped.
fn spawn(args: &[&str]) -> Child {
    paas()
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start paas")
}

/// Runs `paas` with `args`, feeding `stdin` from a thread so that neither side blocks.
fn run(args: &[&str], stdin: &[u8]) -> Output {
    let mut child = spawn(args);
    let mut pipe = child.stdin.take().expect("stdin");
    let input = stdin.to_vec();
    let writer = std::thread::spawn(move || pipe.write_all(&input));
    let out = child.wait_with_output().expect("paas output");
    writer.join().expect("writer thread").expect("write stdin");
    out
}

fn stdout(o: &Output) -> String {
    String::from_utf8(o.stdout.clone()).expect("utf-8 output")
}

#[test]
fn json_lines_from_a_file() {
    let o = run(&["logfmt", "--json", sample().to_str().unwrap()], b"");
    assert!(o.status.success());
    let out = stdout(&o);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 16);
    assert!(
        lines[0].starts_with(r#"{"at":"info","method":"GET","path":"/","host":"shop.example.com""#)
    );
    assert_eq!(
        lines[6], "State changed from starting to up",
        "text lines pass through"
    );
    assert_eq!(
        lines[12],
        r#"{"level":"info","msg":"said \"hello\" to\tthe queue","queue":"mailers","jobs":"12","debug":true}"#
    );
}

#[test]
fn where_compares_with_units() {
    let o = run(
        &[
            "logfmt",
            "--where",
            "status>=500 service>1s",
            sample().to_str().unwrap(),
        ],
        b"",
    );
    assert!(o.status.success());
    let out = stdout(&o);
    assert_eq!(out.lines().count(), 1);
    assert!(
        out.starts_with("at=error code=H12 desc=\"Request timeout\""),
        "{out}"
    );

    let o = run(
        &["logfmt", "--where", "service>1s"],
        std::fs::read(sample()).unwrap().as_slice(),
    );
    let out = stdout(&o);
    let services: Vec<_> = out
        .lines()
        .map(|l| {
            logfmt::get(l.as_bytes(), b"service")
                .unwrap()
                .raw()
                .to_vec()
        })
        .collect();
    assert_eq!(services, [b"30000ms".to_vec(), b"1203ms".to_vec()]);
}

#[test]
fn stdin_is_the_default_and_dash_reads_it() {
    let input = b"a=1 b=\"x y\"\nnot logfmt at all\n";
    let by_default = run(&["logfmt", "--json"], input);
    let by_dash = run(&["logfmt", "--json", "-"], input);
    assert_eq!(
        stdout(&by_default),
        "{\"a\":\"1\",\"b\":\"x y\"}\nnot logfmt at all\n"
    );
    assert_eq!(by_default.stdout, by_dash.stdout);
}

#[test]
fn repeated_and_bare_keys_in_json() {
    let o = run(&["logfmt", "--json"], b"tag=a tag=b debug tag\n");
    assert_eq!(stdout(&o), "{\"tag\":[\"a\",\"b\",true],\"debug\":true}\n");
}

#[test]
fn colour_on_request_and_never_in_a_pipe_by_default() {
    let piped = run(&["logfmt"], b"at=error code=H12\n");
    assert_eq!(stdout(&piped), "at=error code=H12\n");
    let coloured = run(
        &["logfmt", "--color", "always"],
        b"at=error code=H12\nat=info k=v\n",
    );
    let out = stdout(&coloured);
    let lines: Vec<&str> = out.lines().collect();
    assert!(
        lines[0].starts_with("\x1b[31m"),
        "error line red: {:?}",
        lines[0]
    );
    assert!(
        lines[1].starts_with("\x1b[2mat=\x1b[0m\x1b[1minfo"),
        "keys dim, values bright: {:?}",
        lines[1]
    );
}

#[test]
fn hostile_input_gets_an_answer() {
    let mut input = Vec::new();
    input.extend_from_slice(b"k=\"unterminated\n");
    input.extend_from_slice(b"\xff\xfe=\x80 \"\"\"=== \\\\\\\n");
    input.extend_from_slice(b"\x00\x01\x02\n");
    input.extend_from_slice(format!("big={}\n", "v".repeat(2 << 20)).as_bytes());
    input.extend_from_slice(b"last=1");
    let o = run(&["logfmt", "--json"], &input);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        out.starts_with("k=\"unterminated\n"),
        "not strict logfmt: passed through"
    );
    assert!(out.ends_with("{\"last\":\"1\"}\n"));
    assert_eq!(
        String::from_utf8_lossy(&o.stderr),
        "paas: logfmt: 1 line(s) over 1 MiB passed through unparsed\n",
        "the line too long to parse is counted"
    );
}

#[test]
fn missing_file_is_one_line_and_exit_1() {
    let o = run(&["logfmt", "/nonexistent/app.log"], b"");
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&o.stderr),
        "paas: logfmt: /nonexistent/app.log: No such file or directory (os error 2)\n"
    );
    assert!(o.stdout.is_empty());
}

#[test]
fn a_missing_file_among_others_is_skipped_like_cat_does() {
    let sample = sample();
    let o = run(
        &["logfmt", "/nonexistent/a.log", sample.to_str().unwrap()],
        b"",
    );
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(
        stdout(&o).lines().count(),
        16,
        "the readable file is still printed"
    );
    assert_eq!(
        String::from_utf8_lossy(&o.stderr),
        "paas: logfmt: /nonexistent/a.log: No such file or directory (os error 2)\n"
    );
}

#[test]
fn invalid_filter_is_a_usage_error() {
    let o = run(&["logfmt", "--where", "status>="], b"");
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("invalid filter at column 9: unexpected end of filter"),
        "{err}"
    );
}

#[test]
fn a_closed_pipe_ends_quietly() {
    let mut child = spawn(&["logfmt", "--json"]);
    let mut out = child.stdout.take().expect("stdout");
    let mut first = [0u8; 8];
    let mut stdin = child.stdin.take().expect("stdin");
    let writer = std::thread::spawn(move || {
        let line = b"at=info status=200 service=12ms\n".repeat(1000);
        // The reader goes away early; stop writing when paas does.
        for _ in 0..2000 {
            if stdin.write_all(&line).is_err() {
                break;
            }
        }
    });
    out.read_exact(&mut first).expect("some output");
    drop(out);
    let status = child.wait().expect("paas exits");
    writer.join().expect("writer");
    let mut err = String::new();
    child
        .stderr
        .take()
        .expect("stderr")
        .read_to_string(&mut err)
        .expect("stderr");
    assert!(status.success(), "exit {status:?}, stderr {err:?}");
    assert_eq!(err, "");
}
