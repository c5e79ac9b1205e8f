//! What real senders put on the wire decodes and parses: `logger` (util-linux) over TCP with
//! octet counting and with newline framing, through a real socket on loopback.

use std::io::Read;
use std::net::TcpListener;
use std::process::Command;

use bytes::BytesMut;
use logplex::{FrameDecoder, parse_syslog};

/// Runs `logger` with `args` against a listener and returns what it sent.
fn capture(args: &[&str], message: &str) -> Vec<u8> {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
    let port = listener
        .local_addr()
        .expect("local address")
        .port()
        .to_string();
    let sender = std::thread::spawn({
        let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        let message = message.to_owned();
        move || {
            Command::new("logger")
                .args(&args)
                .args([
                    "--tcp",
                    "-n",
                    "127.0.0.1",
                    "-P",
                    &port,
                    "-t",
                    "web.1",
                    &message,
                ])
                .status()
        }
    });
    let (mut conn, _) = listener.accept().expect("logger connects");
    conn.set_read_timeout(Some(std::time::Duration::from_secs(5)))
        .expect("timeout");
    let mut bytes = Vec::new();
    conn.read_to_end(&mut bytes).expect("read what logger sent");
    let status = sender
        .join()
        .expect("logger thread")
        .expect("logger runs (util-linux's logger)");
    assert!(status.success());
    bytes
}

fn frames(bytes: &[u8]) -> Vec<bytes::Bytes> {
    let mut d = FrameDecoder::default();
    let mut buf = BytesMut::from(bytes);
    let mut out = Vec::new();
    while let Some(frame) = d.decode_eof(&mut buf) {
        out.push(frame.expect("a well-formed frame"));
    }
    out
}

#[test]
fn logger_rfc5424_octet_counted() {
    let wire = capture(
        &["--rfc5424", "--octet-count"],
        "at=info msg=\"hello from logger\"",
    );
    assert!(
        wire.first().is_some_and(u8::is_ascii_digit),
        "octet counted: {:?}",
        String::from_utf8_lossy(&wire)
    );
    let frames = frames(&wire);
    assert_eq!(frames.len(), 1);
    let m = parse_syslog(&frames[0]).expect("logger's RFC 5424");
    assert_eq!(m.app_name.as_deref(), Some(&b"web.1"[..]));
    assert!(
        m.structured_data
            .as_deref()
            .is_some_and(|sd| sd.starts_with(b"[timeQuality "))
    );
    assert_eq!(&m.msg[..], b"at=info msg=\"hello from logger\"");
    assert!(m.timestamp.is_some());
}

#[test]
fn logger_rfc5424_newline_framed() {
    let wire = capture(&["--rfc5424"], "second line");
    let frames = frames(&wire);
    assert_eq!(frames.len(), 1, "{:?}", String::from_utf8_lossy(&wire));
    let m = parse_syslog(&frames[0]).expect("logger's RFC 5424");
    assert_eq!(&m.msg[..], b"second line");
}
