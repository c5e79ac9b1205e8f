//! RFC 6587 framing of syslog over a stream: octet counting (`LEN SP MSG`) and newline
//! delimiting (`MSG LF`), told apart frame by frame: a frame that starts with a digit is
//! octet-counted, one that starts with `<` runs to the next newline.
//!
//! The decoder is sans-I/O: feed it a buffer as bytes arrive, take frames out. Every frame it
//! cannot return is an error the caller counts, and it carries on where the framing allows:
//! - a frame over the maximum (default 64 KiB) is skipped whole (its length is known, or it
//!   runs to the next newline) and reported once — never split, never cut;
//! - a bad length (`12x`, `0`, more digits than the maximum needs) or a frame that starts with
//!   neither a digit nor `<` loses the stream's framing: the decoder skips to the next newline
//!   and starts again there;
//! - at the end of the stream, a partial frame is reported as truncated — except a newline
//!   frame, which may end with the stream instead of a newline.
//!
//! Newlines and carriage returns between frames are skipped (some senders end octet-counted
//! frames with one).

use bytes::{Buf, Bytes, BytesMut};

/// The default largest frame: 64 KiB (Logplex's 10 KB split broke structured lines).
pub const DEFAULT_MAX_FRAME: usize = 64 * 1024;

/// A frame the decoder could not return.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// A frame longer than the maximum; it was skipped whole.
    #[error("frame of {len} bytes is over the maximum of {max}")]
    TooLarge {
        /// Its length (for a newline frame: at least this long).
        len: usize,
        /// The maximum.
        max: usize,
    },
    /// An octet count that is not a number, or too large to be a frame (over 64 times the
    /// maximum, and over 16 MiB): framing resumes after the next newline.
    #[error("bad octet count")]
    BadLength,
    /// A frame that starts with neither a digit nor `<`.
    #[error("frame starts with neither an octet count nor '<'")]
    Garbage,
    /// The stream ended inside an octet-counted frame.
    #[error("stream ended inside a frame ({len} bytes of it)")]
    Truncated {
        /// How much of it had arrived, its octet count included.
        len: usize,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// Between frames.
    Start,
    /// Skipping `remaining` bytes of an octet-counted frame that is too large.
    SkipCounted { remaining: usize },
    /// Skipping to the next newline after lost framing.
    SkipLine,
    /// Skipping a newline frame that is too large, `seen` bytes of it so far; reported when
    /// its newline (or the end of the stream) comes, with its whole length.
    SkipLongLine { seen: usize },
}

/// Splits a byte stream into syslog frames.
#[derive(Clone, Debug)]
pub struct FrameDecoder {
    max_frame: usize,
    state: State,
}

impl Default for FrameDecoder {
    fn default() -> Self {
        FrameDecoder::new(DEFAULT_MAX_FRAME)
    }
}

impl FrameDecoder {
    /// A decoder refusing frames over `max_frame` bytes.
    pub fn new(max_frame: usize) -> Self {
        FrameDecoder {
            max_frame: max_frame.max(1),
            state: State::Start,
        }
    }

    /// The next frame or error from `buf`, consuming what it used; `None` when `buf` holds no
    /// complete frame yet (feed more and call again).
    pub fn decode(&mut self, buf: &mut BytesMut) -> Option<Result<Bytes, FrameError>> {
        loop {
            match self.state {
                State::SkipCounted { remaining } => {
                    let n = remaining.min(buf.len());
                    buf.advance(n);
                    if n < remaining {
                        self.state = State::SkipCounted {
                            remaining: remaining - n,
                        };
                        return None;
                    }
                    self.state = State::Start;
                }
                State::SkipLongLine { seen } => match memchr_newline(buf) {
                    Some(i) => {
                        buf.advance(i + 1);
                        self.state = State::Start;
                        return Some(Err(FrameError::TooLarge {
                            len: seen + i,
                            max: self.max_frame,
                        }));
                    }
                    None => {
                        self.state = State::SkipLongLine {
                            seen: seen + buf.len(),
                        };
                        buf.clear();
                        return None;
                    }
                },
                State::SkipLine => match memchr_newline(buf) {
                    Some(i) => {
                        buf.advance(i + 1);
                        self.state = State::Start;
                    }
                    None => {
                        buf.clear();
                        return None;
                    }
                },
                State::Start => {
                    let skip = buf
                        .iter()
                        .take_while(|&&b| b == b'\n' || b == b'\r')
                        .count();
                    buf.advance(skip);
                    let first = *buf.first()?;
                    return match first {
                        b'1'..=b'9' => self.counted(buf),
                        b'<' => self.line(buf),
                        _ => {
                            self.state = State::SkipLine;
                            Some(Err(FrameError::Garbage))
                        }
                    };
                }
            }
        }
    }

    /// At the end of the stream: the last frame (a newline frame may end without its newline),
    /// or the error for what is left.
    pub fn decode_eof(&mut self, buf: &mut BytesMut) -> Option<Result<Bytes, FrameError>> {
        if let Some(found) = self.decode(buf) {
            return Some(found);
        }
        let state = std::mem::replace(&mut self.state, State::Start);
        if state == State::Start && buf.first() == Some(&b'<') {
            // A newline frame ended by the end of the stream.
            let mut frame = buf.split();
            if frame.last() == Some(&b'\r') {
                frame.truncate(frame.len() - 1);
            }
            return Some(Ok(frame.freeze()));
        }
        let len = buf.len();
        buf.clear();
        match state {
            // Reported when it began.
            State::SkipCounted { .. } | State::SkipLine => None,
            State::SkipLongLine { seen } => Some(Err(FrameError::TooLarge {
                len: seen + len,
                max: self.max_frame,
            })),
            State::Start if len == 0 => None,
            State::Start => Some(Err(FrameError::Truncated { len })),
        }
    }

    fn counted(&mut self, buf: &mut BytesMut) -> Option<Result<Bytes, FrameError>> {
        // Counts up to this are frames too large to keep, skipped whole so that framing holds;
        // a larger count is more likely noise than a frame, and resynchronises at a newline.
        let skip_limit = self.max_frame.saturating_mul(64).max(16 << 20);
        let max_digits = skip_limit.to_string().len();
        let digits = buf
            .iter()
            .take(max_digits + 1)
            .take_while(|b| b.is_ascii_digit())
            .count();
        if digits == buf.len() && digits <= max_digits {
            return None; // the count is still arriving
        }
        let len = match (digits <= max_digits, buf.get(digits)) {
            (true, Some(b' ')) => buf[..digits]
                .iter()
                .fold(0usize, |n, &d| n * 10 + usize::from(d - b'0')),
            _ => usize::MAX,
        };
        let len = match len {
            len if len <= skip_limit => len,
            _ => {
                self.state = State::SkipLine;
                return Some(Err(FrameError::BadLength));
            }
        };
        if len > self.max_frame {
            buf.advance(digits + 1);
            self.state = State::SkipCounted { remaining: len };
            return Some(Err(FrameError::TooLarge {
                len,
                max: self.max_frame,
            }));
        }
        if buf.len() < digits + 1 + len {
            buf.reserve(digits + 1 + len - buf.len());
            return None;
        }
        buf.advance(digits + 1);
        Some(Ok(buf.split_to(len).freeze()))
    }

    fn line(&mut self, buf: &mut BytesMut) -> Option<Result<Bytes, FrameError>> {
        match memchr_newline(buf) {
            Some(i) if i > self.max_frame => {
                buf.advance(i + 1);
                Some(Err(FrameError::TooLarge {
                    len: i,
                    max: self.max_frame,
                }))
            }
            Some(i) => {
                let mut frame = buf.split_to(i + 1);
                frame.truncate(if i > 0 && frame[i - 1] == b'\r' {
                    i - 1
                } else {
                    i
                });
                Some(Ok(frame.freeze()))
            }
            None if buf.len() > self.max_frame => {
                self.state = State::SkipLongLine { seen: buf.len() };
                buf.clear();
                None
            }
            None => None,
        }
    }
}

fn memchr_newline(buf: &[u8]) -> Option<usize> {
    buf.iter().position(|&b| b == b'\n')
}

/// Appends `n` in decimal, with no allocation.
pub(crate) fn write_decimal(out: &mut Vec<u8>, mut n: usize) {
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[i..]);
}

/// Appends `frame` octet-counted: `LEN SP FRAME`.
pub fn write_octet_counted(out: &mut Vec<u8>, frame: &[u8]) {
    write_decimal(out, frame.len());
    out.push(b' ');
    out.extend_from_slice(frame);
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Every frame and error of `stream`, fed in pieces cut at `cuts`.
    fn decode_all(stream: &[u8], cuts: &[usize], max: usize) -> Vec<Result<Vec<u8>, FrameError>> {
        let mut d = FrameDecoder::new(max);
        let mut buf = BytesMut::new();
        let mut out = Vec::new();
        let mut from = 0;
        for &cut in cuts.iter().chain([stream.len()].iter()) {
            let cut = cut.clamp(from, stream.len());
            buf.extend_from_slice(&stream[from..cut]);
            from = cut;
            while let Some(r) = d.decode(&mut buf) {
                out.push(r.map(|b| b.to_vec()));
            }
        }
        while let Some(r) = d.decode_eof(&mut buf) {
            out.push(r.map(|b| b.to_vec()));
        }
        out
    }

    fn ok(frames: &[&[u8]]) -> Vec<Result<Vec<u8>, FrameError>> {
        frames.iter().map(|f| Ok(f.to_vec())).collect()
    }

    /// A frame of exactly the maximum is accepted and one byte more is refused, octet-counted
    /// and newline-framed, however the stream is cut (issue 17: `>` made `>=` stayed green).
    #[test]
    fn a_frame_of_exactly_max_frame_is_accepted_and_one_more_byte_is_not() {
        let max = 16;
        let exact = vec![b'<'; max];
        let over = vec![b'<'; max + 1];
        let mut counted = Vec::new();
        write_octet_counted(&mut counted, &exact);
        write_octet_counted(&mut counted, &over);
        write_octet_counted(&mut counted, b"<after");
        let newline = [&exact[..], b"\n", &over[..], b"\n<after\n"].concat();
        for stream in [&counted, &newline] {
            let expected = vec![
                Ok(exact.clone()),
                Err(FrameError::TooLarge { len: max + 1, max }),
                Ok(b"<after".to_vec()),
            ];
            assert_eq!(decode_all(stream, &[], max), expected);
            for cut in 0..stream.len() {
                assert_eq!(decode_all(stream, &[cut], max), expected, "cut at {cut}");
            }
        }
    }

    #[test]
    fn octet_counted_and_newline_frames_mixed() {
        let stream = b"11 <13>1 - a b6 <1>1 x\n<13>1 line one\r\n\n<14>1 line two";
        assert_eq!(
            decode_all(stream, &[], 100),
            ok(&[
                b"<13>1 - a b",
                b"<1>1 x",
                b"<13>1 line one",
                b"<14>1 line two"
            ])
        );
    }

    #[test]
    fn a_frame_over_the_maximum_is_skipped_whole_and_reported_once() {
        let mut stream = b"32 <13>1 this frame is way too long".to_vec();
        stream.extend_from_slice(b"5 <1>1x");
        let got = decode_all(&stream, &[3, 10], 20);
        assert_eq!(
            got,
            vec![
                Err(FrameError::TooLarge { len: 32, max: 20 }),
                Ok(b"<1>1x".to_vec())
            ]
        );
        let got = decode_all(b"<13>1 a newline frame too long\n<1>1 ok\n", &[5], 10);
        assert_eq!(
            got,
            vec![
                Err(FrameError::TooLarge { len: 30, max: 10 }),
                Ok(b"<1>1 ok".to_vec())
            ]
        );
    }

    #[test]
    fn bad_lengths_and_garbage_resynchronise_at_the_next_newline() {
        let got = decode_all(
            b"12x <13>1 junk\n3 <1>\x00\x01garbage\n<13>1 fine\n0 <1>\n<2>1 ok",
            &[],
            100,
        );
        assert_eq!(
            got,
            vec![
                Err(FrameError::BadLength),
                Ok(b"<1>".to_vec()),
                Err(FrameError::Garbage),
                Ok(b"<13>1 fine".to_vec()),
                Err(FrameError::Garbage),
                Ok(b"<2>1 ok".to_vec()),
            ]
        );
        assert_eq!(
            decode_all(b"99999999999999999999 <1>", &[], 100)[0],
            Err(FrameError::BadLength)
        );
    }

    #[test]
    fn truncated_at_the_end() {
        assert_eq!(
            decode_all(b"20 <13>1 short", &[], 100),
            vec![Err(FrameError::Truncated { len: 14 })]
        );
        assert_eq!(
            decode_all(b"2", &[], 100),
            vec![Err(FrameError::Truncated { len: 1 })]
        );
    }

    #[test]
    fn writes_octet_counts() {
        let mut out = Vec::new();
        write_octet_counted(&mut out, b"<13>1 hi");
        assert_eq!(out, b"8 <13>1 hi");
    }

    /// A frame that either framing carries: starts with `<`, no newline inside (for newline
    /// framing), any other bytes.
    fn frame() -> impl Strategy<Value = (Vec<u8>, bool)> {
        (
            proptest::collection::vec(
                any::<u8>().prop_filter("no newline", |b| *b != b'\n'),
                0..60,
            ),
            any::<bool>(),
        )
            .prop_map(|(mut body, counted)| {
                body.insert(0, b'<');
                if body.last() == Some(&b'\r') {
                    body.pop();
                }
                (body, counted)
            })
    }

    proptest! {
        #[test]
        fn a_stream_cut_anywhere_decodes_to_the_same_frames(
            frames in proptest::collection::vec(frame(), 0..12),
            cuts in proptest::collection::vec(0usize..800, 0..20),
        ) {
            let mut stream = Vec::new();
            for (f, counted) in &frames {
                if *counted { write_octet_counted(&mut stream, f) } else { stream.extend_from_slice(f); stream.push(b'\n'); }
            }
            let mut cuts = cuts;
            cuts.sort_unstable();
            let want: Vec<_> = frames.iter().map(|(f, _)| Ok(f.clone())).collect();
            prop_assert_eq!(decode_all(&stream, &[], 1000), want.clone());
            prop_assert_eq!(decode_all(&stream, &cuts, 1000), want.clone());
            let every_byte: Vec<usize> = (0..stream.len()).collect();
            prop_assert_eq!(decode_all(&stream, &every_byte, 1000), want);
        }

        #[test]
        fn hostile_streams_never_panic_and_cuts_do_not_matter(
            stream in proptest::collection::vec(prop_oneof![any::<u8>(), Just(b'\n'), Just(b' '), Just(b'<'), Just(b'5')], 0..300),
            cut in 0usize..300,
        ) {
            let whole = decode_all(&stream, &[], 16);
            prop_assert_eq!(decode_all(&stream, &[cut], 16), whole.clone());
            for f in whole.into_iter().flatten() {
                prop_assert!(f.len() <= 16);
            }
        }
    }
}
