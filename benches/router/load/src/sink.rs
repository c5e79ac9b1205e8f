//! `sink`: a syslog receiver that only counts. It accepts TCP connections (any number, at any
//! time), splits what arrives into frames — RFC 6587 octet counting (`LEN SP MSG`), or, for a
//! frame that does not start with a digit, newline framing (`MSG LF`) — and counts them over
//! all connections. It prints `sink listening on ADDR` once bound, then, when it has counted
//! `--expect` frames or heard nothing for `--quiet-secs`, one `result key=value …` line:
//! frames, the time from the first byte received to the end of the last frame, and their rate.
//! Frames of one PRI can be counted apart (`--ignore-pri 172`: the router's own L10 notices,
//! local5.warning, which a drain gets beside the app's lines when its buffer overflowed).

use std::io::{Read as _, Write as _};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;

use crate::frames::unix_micros;

/// Where to listen, and when to stop.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// `HOST:PORT` to listen on (port 0: any free port; the bound address is printed).
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: String,
    /// Stop once this many frames have been counted.
    #[arg(long)]
    expect: Option<u64>,
    /// Stop after this many seconds without a byte, once bytes have come.
    #[arg(long, default_value_t = 10.0)]
    quiet_secs: f64,
    /// Stop after this many seconds if no byte has come at all.
    #[arg(long, default_value_t = 60.0)]
    wait_secs: f64,
    /// Count frames with this PRI (`<N>` at the message's start) apart, as `ignored`, not as
    /// frames.
    #[arg(long)]
    ignore_pri: Option<u16>,
}

/// What every connection's thread adds to. Times are microseconds since `Shared::start`, plus
/// one so that 0 means "not yet".
#[derive(Debug)]
struct Shared {
    start: Instant,
    frames: AtomicU64,
    ignored: AtomicU64,
    bytes: AtomicU64,
    connections: AtomicU64,
    first_byte: AtomicU64,
    last_byte: AtomicU64,
    last_frame: AtomicU64,
    /// Frames whose length prefix was not a number, or that were cut off by a closed
    /// connection.
    malformed: AtomicU64,
    done: AtomicBool,
}

impl Shared {
    fn now(&self) -> u64 {
        u64::try_from(self.start.elapsed().as_micros()).unwrap_or(u64::MAX - 1) + 1
    }
}

/// Splits frames off the front of a byte stream, across reads: reads go into the free end of
/// `buf`, whole frames are counted off its front, and the part of a frame left over moves to
/// the front before the next read.
#[derive(Debug)]
struct Decoder {
    buf: Vec<u8>,
    /// Bytes of `buf` holding data not counted yet.
    filled: usize,
    /// Frames whose length prefix was not a number.
    malformed: u64,
    /// `<PRI>` of the frames to count apart (empty: none).
    ignore: Vec<u8>,
    /// Frames counted apart.
    ignored: u64,
}

/// What the front of `buf` holds.
enum Next {
    /// A whole frame of `len` bytes, its message from `msg` on.
    Frame { len: usize, msg: usize },
    /// Bytes to skip that are no frame: a line end between frames.
    Skip(usize),
    /// Not a whole frame yet.
    More,
}

/// The first frame of `buf`: `LEN SP MSG` when `buf` starts with a digit, otherwise a line.
fn next(buf: &[u8]) -> (Next, bool) {
    match buf.first() {
        None => (Next::More, false),
        Some(b'\n' | b'\r') => (Next::Skip(1), false),
        Some(b'0'..=b'9') => {
            let digits = buf.iter().take_while(|b| b.is_ascii_digit()).count();
            if digits == buf.len() {
                return (Next::More, false);
            }
            if buf[digits] != b' ' || digits > 9 {
                // Not octet counting after all: take the line as it is.
                return (line(buf), true);
            }
            let len: usize = buf[..digits]
                .iter()
                .fold(0, |n, d| n * 10 + usize::from(d - b'0'));
            let whole = digits + 1 + len;
            if buf.len() < whole {
                (Next::More, false)
            } else {
                (
                    Next::Frame {
                        len: whole,
                        msg: digits + 1,
                    },
                    false,
                )
            }
        }
        Some(_) => (line(buf), false),
    }
}

fn line(buf: &[u8]) -> Next {
    match buf.iter().position(|&b| b == b'\n') {
        Some(i) => Next::Frame { len: i + 1, msg: 0 },
        None => Next::More,
    }
}

impl Decoder {
    fn new(ignore_pri: Option<u16>) -> Self {
        Decoder {
            buf: vec![0; 256 * 1024],
            filled: 0,
            malformed: 0,
            ignore: ignore_pri
                .map(|p| format!("<{p}>").into_bytes())
                .unwrap_or_default(),
            ignored: 0,
        }
    }

    /// Where the next read goes (never empty: grows for a frame larger than the buffer).
    fn space(&mut self) -> &mut [u8] {
        if self.filled == self.buf.len() {
            self.buf.resize(self.buf.len() * 2, 0);
        }
        &mut self.buf[self.filled..]
    }

    /// Takes `n` more bytes just read into `space()`; returns the frames they completed (not
    /// counting those counted apart).
    fn filled(&mut self, n: usize) -> u64 {
        self.filled += n;
        let (mut frames, mut at) = (0, 0);
        loop {
            let (next, bad) = next(&self.buf[at..self.filled]);
            match next {
                Next::Frame { len, msg } => {
                    let frame = &self.buf[at + msg..at + len];
                    if !self.ignore.is_empty() && frame.starts_with(&self.ignore) {
                        self.ignored += 1;
                    } else {
                        frames += 1;
                    }
                    self.malformed += u64::from(bad);
                    at += len;
                }
                Next::Skip(k) => at += k,
                Next::More => break,
            }
        }
        self.buf.copy_within(at..self.filled, 0);
        self.filled -= at;
        frames
    }

    /// Counts the frames that `data` completes (as if read).
    #[cfg(test)]
    fn feed(&mut self, mut data: &[u8]) -> u64 {
        let mut frames = 0;
        while !data.is_empty() {
            let space = self.space();
            let n = space.len().min(data.len());
            space[..n].copy_from_slice(&data[..n]);
            data = &data[n..];
            frames += self.filled(n);
        }
        frames
    }
}

fn serve(mut socket: TcpStream, shared: &Shared, expect: Option<u64>, ignore_pri: Option<u16>) {
    shared.connections.fetch_add(1, Ordering::Relaxed);
    let mut decoder = Decoder::new(ignore_pri);
    loop {
        let n = match socket.read(decoder.space()) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        let now = shared.now();
        let _ = shared
            .first_byte
            .compare_exchange(0, now, Ordering::Relaxed, Ordering::Relaxed);
        shared.last_byte.fetch_max(now, Ordering::Relaxed);
        shared.bytes.fetch_add(n as u64, Ordering::Relaxed);
        let ignored = decoder.ignored;
        let frames = decoder.filled(n);
        if decoder.ignored > ignored {
            shared
                .ignored
                .fetch_add(decoder.ignored - ignored, Ordering::Relaxed);
        }
        if frames > 0 {
            shared.last_frame.fetch_max(now, Ordering::Relaxed);
            let total = shared.frames.fetch_add(frames, Ordering::Relaxed) + frames;
            if expect.is_some_and(|e| total >= e) {
                shared.done.store(true, Ordering::Release);
            }
        }
    }
    // A frame cut off by the close is not counted, but noted.
    let cut = u64::from(decoder.filled > 0);
    shared
        .malformed
        .fetch_add(decoder.malformed + cut, Ordering::Relaxed);
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let quiet = Duration::try_from_secs_f64(args.quiet_secs)
        .context("--quiet-secs must be a number of seconds")?;
    let wait = Duration::try_from_secs_f64(args.wait_secs)
        .context("--wait-secs must be a number of seconds")?;
    let listener =
        TcpListener::bind(&args.listen).with_context(|| format!("binding {}", args.listen))?;
    let addr = listener.local_addr()?;
    let shared = Arc::new(Shared {
        start: Instant::now(),
        frames: AtomicU64::new(0),
        ignored: AtomicU64::new(0),
        bytes: AtomicU64::new(0),
        connections: AtomicU64::new(0),
        first_byte: AtomicU64::new(0),
        last_byte: AtomicU64::new(0),
        last_frame: AtomicU64::new(0),
        malformed: AtomicU64::new(0),
        done: AtomicBool::new(false),
    });
    let start_unix = unix_micros();
    {
        let mut out = std::io::stdout().lock();
        writeln!(out, "sink listening on {addr}")?;
        out.flush()?;
    }

    let accepting = shared.clone();
    let (expect, ignore_pri) = (args.expect, args.ignore_pri);
    std::thread::spawn(move || {
        for socket in listener.incoming() {
            let Ok(socket) = socket else { continue };
            let shared = accepting.clone();
            std::thread::spawn(move || serve(socket, &shared, expect, ignore_pri));
        }
    });

    let timed_out = loop {
        std::thread::sleep(Duration::from_millis(5));
        if shared.done.load(Ordering::Acquire) {
            break false;
        }
        let heard = shared.last_byte.load(Ordering::Relaxed);
        let elapsed = shared.start.elapsed();
        let silent = elapsed.saturating_sub(Duration::from_micros(heard.saturating_sub(1)));
        if silent >= if heard == 0 { wait } else { quiet } {
            break true;
        }
    };

    let frames = shared.frames.load(Ordering::Relaxed);
    let first = shared.first_byte.load(Ordering::Relaxed);
    let last = shared.last_frame.load(Ordering::Relaxed);
    let secs = if first > 0 && last >= first {
        (last - first) as f64 / 1e6
    } else {
        0.0
    };
    let rate = if secs > 0.0 {
        frames as f64 / secs
    } else {
        0.0
    };
    // Absolute times (Unix µs), for a script to measure from its own sender's first byte.
    let at = |t: u64| {
        if t == 0 {
            0
        } else {
            start_unix + (t - 1) as i64
        }
    };
    println!(
        "result frames={frames} first_byte_to_last_frame_s={secs:.3} frames_per_sec={rate:.0} ignored={} bytes={} connections={} malformed={} first_byte_unix_us={} last_frame_unix_us={} stopped_by={}",
        shared.ignored.load(Ordering::Relaxed),
        shared.bytes.load(Ordering::Relaxed),
        shared.connections.load(Ordering::Relaxed),
        shared.malformed.load(Ordering::Relaxed),
        at(first),
        at(last),
        if timed_out { "quiet" } else { "expect" },
    );
    std::io::stdout().flush()?;
    // The connections' threads may still be blocked in reads: end the process with them.
    std::process::exit(0);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn count(chunks: &[&[u8]]) -> (u64, u64, usize) {
        let mut d = Decoder::new(None);
        let frames = chunks.iter().map(|c| d.feed(c)).sum();
        (frames, d.malformed, d.filled)
    }

    #[test]
    fn octet_counted_frames_across_reads() {
        let s: &[u8] = b"5 hello11 hello world3 abc";
        assert_eq!(count(&[s]), (3, 0, 0));
        // Split at every position.
        for i in 0..s.len() {
            assert_eq!(count(&[&s[..i], &s[i..]]), (3, 0, 0), "split at {i}");
        }
        // One byte at a time.
        let bytes: Vec<&[u8]> = s.chunks(1).collect();
        assert_eq!(count(&bytes), (3, 0, 0));
        // A frame not complete yet stays pending.
        assert_eq!(count(&[b"5 hel"]), (0, 0, 5));
    }

    #[test]
    fn newline_framing_and_stray_line_ends() {
        assert_eq!(count(&[b"<13>1 a\n<13>1 b\r\n<13>1 c"]), (2, 0, 7));
        // rsyslog may end an octet-counted frame with a line end outside the count.
        assert_eq!(count(&[b"4 abcd\n4 efgh\n", b"\n2 ij"]), (3, 0, 0));
        // Mixed.
        assert_eq!(count(&[b"3 abc<1>x\n", b"2 de"]), (3, 0, 0));
    }

    #[test]
    fn a_digit_that_is_no_length_is_a_line() {
        assert_eq!(count(&[b"12x is a line\n1 a"]), (2, 1, 0));
        // A frame larger than the buffer.
        let big = format!("{} {}", 300_000, "x".repeat(300_000));
        assert_eq!(count(&[big.as_bytes(), b"1 a"]), (2, 0, 0));
    }

    #[test]
    fn frames_of_one_pri_counted_apart() {
        let mut d = Decoder::new(Some(172));
        let frames = d.feed(b"8 <158>1 a10 <172>1 L10\n<172>1 x\n<1720>1 y\n");
        assert_eq!((frames, d.ignored), (2, 2));
    }
}
