//! RELP, rsyslog's Reliable Event Logging Protocol: syslog messages a receiver acknowledges
//! one by one, so that a drain knows what was delivered, not only what the kernel took.
//!
//! A frame is `TXNR SP COMMAND SP DATALEN [SP DATA] LF`: a transaction number (1 to
//! 999,999,999, then 1 again), a command (`open`, `syslog`, `close`; the receiver answers each
//! with `rsp`, whose data starts with a three-digit status, `200 OK`), and the data's length.
//! A session opens with `open` (offering `relp_version=0` and `commands=syslog`), sends each
//! message as one `syslog` command, and is done with a batch when every one of its messages
//! has its `200`. A batch cut off midway is sent again whole on a new session (at-least-once,
//! as the receiver may have kept some of it). A response that breaks the grammar, is longer
//! than [`MAX_RESPONSE`], answers a transaction not in flight, or carries a status other than
//! 200 ends the session with an error naming it.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::feed::Batch;

/// The longest response read (the receiver's `open` answer lists its offers; a `rsp` to a
/// message is a few bytes).
pub const MAX_RESPONSE: usize = 64 * 1024;

/// The highest transaction number; the next is 1.
const MAX_TXNR: u32 = 999_999_999;

/// What the session offers in its `open`.
const OFFERS: &str = concat!(
    "relp_version=0\nrelp_software=paas,",
    env!("CARGO_PKG_VERSION"),
    ",https://github.com/\ncommands=syslog"
);

/// An open RELP session over TCP.
#[derive(Debug)]
pub struct Session {
    stream: TcpStream,
    next: u32,
    /// Bytes read past the last whole response.
    buf: Vec<u8>,
}

/// A response: its transaction number, status and text.
#[derive(Debug, PartialEq, Eq)]
struct Response {
    txnr: u32,
    command: String,
    status: Option<u16>,
    text: String,
}

impl Session {
    /// Opens a session on a connected stream: `open`, and the receiver's `200`.
    pub async fn open(stream: TcpStream, timeout: Duration) -> Result<Session, String> {
        let mut session = Session {
            stream,
            next: 1,
            buf: Vec::new(),
        };
        let mut frame = Vec::with_capacity(128);
        let txnr = session.txnr();
        encode(&mut frame, txnr, "open", OFFERS.as_bytes());
        let handshake = async {
            session
                .stream
                .write_all(&frame)
                .await
                .map_err(|e| format!("relp open: {e}"))?;
            let rsp = session.response().await?;
            check(&rsp, txnr)?;
            if !rsp.text.contains("commands=syslog") && rsp.text.contains("commands=") {
                return Err("relp open: the receiver does not take syslog commands".to_owned());
            }
            Ok(())
        };
        match tokio::time::timeout(timeout, handshake).await {
            Ok(Ok(())) => Ok(session),
            Ok(Err(e)) => Err(e),
            Err(_) => Err(format!("relp open: no answer within {timeout:?}")),
        }
    }

    /// Sends every message of the batch as a `syslog` command and waits until each has its
    /// `200` (writing and reading at once, so that neither side's buffer fills).
    pub async fn send(&mut self, batch: &Batch) -> Result<(), String> {
        let mut out = Vec::with_capacity(batch.framed.len() + batch.spans.len() * 24);
        let first = self.next;
        for span in &batch.spans {
            let txnr = self.txnr();
            encode(&mut out, txnr, "syslog", &batch.framed[span.clone()]);
        }
        let count = batch.spans.len();
        let (mut reader, mut writer) = self.stream.split();
        let write = async {
            writer.write_all(&out).await?;
            writer.flush().await
        };
        let buf = &mut self.buf;
        let read = async {
            let mut expect = first;
            for _ in 0..count {
                let rsp = read_response(&mut reader, buf).await?;
                check(&rsp, expect)?;
                expect = following(expect);
            }
            Ok::<(), String>(())
        };
        let (written, read) = tokio::join!(write, read);
        written.map_err(|e| format!("relp send: {e}"))?;
        read
    }

    /// Ends the session with `close` (best effort: the receiver's answer is not awaited long).
    pub async fn close(mut self) {
        let mut frame = Vec::with_capacity(16);
        let txnr = self.txnr();
        encode(&mut frame, txnr, "close", b"");
        if self.stream.write_all(&frame).await.is_ok() {
            let _ = tokio::time::timeout(Duration::from_millis(500), self.response()).await;
        }
        let _ = self.stream.shutdown().await;
    }

    fn txnr(&mut self) -> u32 {
        let txnr = self.next;
        self.next = following(txnr);
        txnr
    }

    async fn response(&mut self) -> Result<Response, String> {
        read_response(&mut self.stream, &mut self.buf).await
    }
}

fn following(txnr: u32) -> u32 {
    if txnr >= MAX_TXNR { 1 } else { txnr + 1 }
}

/// One frame: `TXNR SP COMMAND SP DATALEN [SP DATA] LF`.
fn encode(out: &mut Vec<u8>, txnr: u32, command: &str, data: &[u8]) {
    out.extend_from_slice(format!("{txnr} {command} {}", data.len()).as_bytes());
    if !data.is_empty() {
        out.push(b' ');
        out.extend_from_slice(data);
    }
    out.push(b'\n');
}

/// A `rsp` to `txnr` with status 200, or why not.
fn check(rsp: &Response, txnr: u32) -> Result<(), String> {
    if rsp.command == "serverclose" {
        return Err("relp: the receiver closed the session".to_owned());
    }
    if rsp.command != "rsp" {
        return Err(format!(
            "relp: the receiver sent {:?}, not a response",
            rsp.command
        ));
    }
    if rsp.txnr != txnr {
        return Err(format!(
            "relp: a response to transaction {}, expected {txnr}",
            rsp.txnr
        ));
    }
    match rsp.status {
        Some(200) => Ok(()),
        Some(status) => Err(format!("relp: the receiver answered {status} {}", rsp.text)),
        None => Err("relp: a response without a status".to_owned()),
    }
}

/// Reads until `buf` holds a whole frame, and takes it.
async fn read_response<R: tokio::io::AsyncRead + Unpin>(
    reader: &mut R,
    buf: &mut Vec<u8>,
) -> Result<Response, String> {
    loop {
        match parse(buf)? {
            Some((rsp, used)) => {
                buf.drain(..used);
                return Ok(rsp);
            }
            None => {
                let mut chunk = [0u8; 4096];
                let n = reader
                    .read(&mut chunk)
                    .await
                    .map_err(|e| format!("relp read: {e}"))?;
                if n == 0 {
                    return Err("relp: the receiver closed the connection".to_owned());
                }
                buf.extend_from_slice(&chunk[..n]);
            }
        }
    }
}

/// A whole frame at the start of `buf` and the bytes it took, `None` when more must come, or
/// the reason it is not RELP.
fn parse(buf: &[u8]) -> Result<Option<(Response, usize)>, String> {
    let bad = |why: &str| Err(format!("relp: a malformed response: {why}"));
    // The header: TXNR SP COMMAND SP DATALEN, each within its bounds.
    let mut fields = [0usize; 3];
    let mut at = 0;
    for (i, (max, what)) in [(9, "transaction number"), (32, "command"), (9, "length")]
        .iter()
        .enumerate()
    {
        let start = at;
        while at < buf.len() && buf[at] != b' ' && buf[at] != b'\n' {
            at += 1;
            if at - start > *max {
                return bad(&format!("the {what} is too long"));
            }
        }
        if at == buf.len() {
            return Ok(None);
        }
        if at == start {
            return bad(&format!("no {what}"));
        }
        fields[i] = at;
        // DATALEN may end the header with LF (no data); the others are followed by SP.
        if i < 2 && buf[at] != b' ' {
            return bad(&format!("the {what} ends the frame"));
        }
        at += 1;
    }
    let txnr_text = &buf[..fields[0]];
    let command = &buf[fields[0] + 1..fields[1]];
    let len_text = &buf[fields[1] + 1..fields[2]];
    let digits = |b: &[u8]| -> Option<usize> {
        b.iter().all(u8::is_ascii_digit).then_some(())?;
        std::str::from_utf8(b).ok()?.parse().ok()
    };
    let Some(txnr) = digits(txnr_text).and_then(|t| u32::try_from(t).ok()) else {
        return bad("the transaction number is not a number");
    };
    if !command.iter().all(u8::is_ascii_alphabetic) {
        return bad("the command is not letters");
    }
    let Some(len) = digits(len_text) else {
        return bad("the length is not a number");
    };
    if len > MAX_RESPONSE {
        return bad(&format!("{len} bytes of data, past {MAX_RESPONSE}"));
    }
    let header_end = fields[2];
    let (data, used) = if len == 0 {
        // `LF` right after DATALEN.
        if buf[header_end] != b'\n' {
            return bad("data after a length of 0");
        }
        (&buf[0..0], header_end + 1)
    } else {
        if buf[header_end] != b' ' {
            return bad("no data after a length");
        }
        let start = header_end + 1;
        if buf.len() < start + len + 1 {
            return Ok(None);
        }
        if buf[start + len] != b'\n' {
            return bad("the frame does not end with LF");
        }
        (&buf[start..start + len], start + len + 1)
    };
    let text = String::from_utf8_lossy(data);
    let (status, text) = match text.get(..3).and_then(|s| s.parse::<u16>().ok()) {
        Some(status) => (Some(status), text[3..].trim().to_owned()),
        None => (None, text.trim().to_owned()),
    };
    let response = Response {
        txnr,
        command: String::from_utf8_lossy(command).into_owned(),
        status,
        text,
    };
    Ok(Some((response, used)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(text: &str) -> Result<Option<(Response, usize)>, String> {
        parse(text.as_bytes())
    }

    #[test]
    fn frames_are_written_as_rsyslog_reads_them() {
        let mut out = Vec::new();
        encode(&mut out, 2, "syslog", b"<190>1 - - - - - hi");
        encode(&mut out, 3, "close", b"");
        assert_eq!(out, b"2 syslog 19 <190>1 - - - - - hi\n3 close 0\n");
        assert_eq!(following(MAX_TXNR), 1);
    }

    #[test]
    fn responses_are_read_whole_and_partial_ones_wait() {
        let (rsp, used) = one("7 rsp 6 200 OK\nmore").unwrap().unwrap();
        assert_eq!(used, 15);
        assert_eq!(
            rsp,
            Response {
                txnr: 7,
                command: "rsp".into(),
                status: Some(200),
                text: "OK".into()
            }
        );
        assert!(check(&rsp, 7).is_ok());
        assert!(check(&rsp, 8).unwrap_err().contains("expected 8"));
        let (close, _) = one("0 serverclose 0\n").unwrap().unwrap();
        assert!(check(&close, 1).unwrap_err().contains("closed"));
        let offers = "200 OK\nrelp_version=0\ncommands=syslog\n";
        let (open, _) = one(&format!("1 rsp {} {offers}\n", offers.len()))
            .unwrap()
            .unwrap();
        assert!(open.text.contains("commands=syslog"));
        for partial in [
            "",
            "7",
            "7 rsp",
            "7 rsp 6",
            "7 rsp 6 200 O",
            "7 rsp 6 200 OK",
        ] {
            assert_eq!(one(partial), Ok(None), "{partial:?}");
        }
    }

    #[test]
    fn a_refusal_or_hostile_response_ends_the_session_with_its_reason() {
        let (rsp, _) = one("2 rsp 21 500 not accepting now\n").unwrap().unwrap();
        assert!(
            check(&rsp, 2)
                .unwrap_err()
                .contains("500 not accepting now")
        );
        for (input, why) in [
            ("x rsp 6 200 OK\n", "not a number"),
            ("1234567890 rsp 6 200 OK\n", "too long"),
            ("1 r$p 6 200 OK\n", "not letters"),
            ("1 rsp 99999999 x\n", "past"),
            ("1 rsp 6 200 OKX\n", "does not end with LF"),
            ("1 rsp 0 x\n", "after a length of 0"),
            ("1\n", "ends the frame"),
            (" rsp 6 200 OK\n", "no transaction number"),
            ("1 rsp -1 x\n", "not a number"),
            (&format!("1 {} 0\n", "a".repeat(40)), "too long"),
        ] {
            let e = one(input).unwrap_err();
            assert!(e.contains(why), "{input:?}: {e}");
        }
        let (no_status, _) = one("3 rsp 2 ok\n").unwrap().unwrap();
        assert!(
            check(&no_status, 3)
                .unwrap_err()
                .contains("without a status")
        );
    }

    /// A receiver in the test: answers `open`, then each message per `answer`, and records
    /// what it was sent.
    async fn receiver(
        answer: &'static str,
    ) -> (std::net::SocketAddr, tokio::task::JoinHandle<Vec<u8>>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let task = tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            let mut got = Vec::new();
            let mut buf = Vec::new();
            loop {
                let mut chunk = [0u8; 4096];
                let n = s.read(&mut chunk).await.unwrap_or(0);
                if n == 0 {
                    return got;
                }
                buf.extend_from_slice(&chunk[..n]);
                while let Ok(Some((frame, used))) = parse(&buf) {
                    got.extend_from_slice(&buf[..used]);
                    buf.drain(..used);
                    let reply = match (frame.command.as_str(), answer) {
                        ("open", _) => format!("{} rsp 6 200 OK\n", frame.txnr),
                        ("close", _) => format!("{} rsp 0\n", frame.txnr),
                        (_, "silent") => continue,
                        (_, "refuse") => format!("{} rsp 8 500 full\n", frame.txnr),
                        _ => format!("{} rsp 6 200 OK\n", frame.txnr),
                    };
                    s.write_all(reply.as_bytes()).await.unwrap();
                }
            }
        });
        (addr, task)
    }

    fn batch(n: usize) -> Batch {
        let mut b = Batch::default();
        for i in 0..n {
            b.push_frame(format!("<190>1 - d.t app web.1 - - n={i}").as_bytes());
        }
        b
    }

    #[tokio::test]
    async fn a_batch_is_done_when_every_message_has_its_200() {
        let (addr, task) = receiver("ok").await;
        let tcp = TcpStream::connect(addr).await.unwrap();
        let mut s = Session::open(tcp, Duration::from_secs(5)).await.unwrap();
        // Larger than a socket buffer of answers, so that writing and reading overlap.
        s.send(&batch(20_000)).await.unwrap();
        s.send(&batch(3)).await.unwrap();
        s.close().await;
        let got = String::from_utf8(task.await.unwrap()).unwrap();
        assert!(got.starts_with("1 open "), "{}", &got[..40]);
        assert!(got.contains("\n20001 syslog 34 <190>1 - d.t app web.1 - - n=19999\n"));
        assert!(
            got.ends_with("20005 close 0\n"),
            "{}",
            &got[got.len() - 40..]
        );
    }

    #[tokio::test]
    async fn a_refused_or_unanswered_batch_is_an_error() {
        let (addr, _task) = receiver("refuse").await;
        let tcp = TcpStream::connect(addr).await.unwrap();
        let mut s = Session::open(tcp, Duration::from_secs(5)).await.unwrap();
        let e = s.send(&batch(2)).await.unwrap_err();
        assert!(e.contains("500 full"), "{e}");

        let (addr, _task) = receiver("silent").await;
        let tcp = TcpStream::connect(addr).await.unwrap();
        let mut s = Session::open(tcp, Duration::from_secs(5)).await.unwrap();
        let unanswered = tokio::time::timeout(Duration::from_millis(300), s.send(&batch(2))).await;
        assert!(unanswered.is_err(), "no 200, so the batch is not done");
    }
}
