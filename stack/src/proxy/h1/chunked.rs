//! A streaming decoder of HTTP/1.1's chunked body (RFC 9112 §7.1), for a proxy that passes
//! the body on as it comes: fed whatever bytes have arrived, it says how many of them belong
//! to the body (so that they are forwarded verbatim and what follows is the next message),
//! hands out the data, and refuses what two parsers could read differently: a size that is
//! not hex or overflows, a bare LF or CR where CRLF belongs, data not followed by CRLF, and
//! size lines or trailers past their limits.

use std::fmt;

/// The longest chunk-size line, extensions included.
pub const MAX_SIZE_LINE: usize = 4096;
/// The most bytes of trailer fields.
pub const MAX_TRAILERS: usize = 8 * 1024;

/// Where the decoder is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// Reading a chunk-size line: the size so far, whether a digit was seen, whether white
    /// space followed the digits (then only more of it, `;` or the CR may), whether the
    /// extensions began.
    Size {
        size: u64,
        digits: bool,
        ws: bool,
        ext: bool,
    },
    /// The size line's LF is due (its CR was read).
    SizeLf { size: u64 },
    /// Chunk data, this many bytes left.
    Data(u64),
    /// The CRLF after chunk data: `false` before the CR, `true` after.
    DataEnd(bool),
    /// Trailer fields (or the final CRLF): at the start of a line, or not; after a CR, or not.
    Trailer { line_start: bool, cr: bool },
    /// The body ended.
    Done,
}

/// Why a chunked body is refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChunkedError {
    /// A chunk size that is not hex, is missing, or overflows 64 bits.
    BadSize,
    /// A line that does not end in CRLF, or chunk data not followed by CRLF.
    BadLineEnd,
    /// A chunk-size line longer than [`MAX_SIZE_LINE`].
    SizeLineTooLong,
    /// Trailers longer than [`MAX_TRAILERS`].
    TrailersTooLong,
}

impl fmt::Display for ChunkedError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ChunkedError::BadSize => "invalid chunk size",
            ChunkedError::BadLineEnd => "chunked body line not ending in CRLF",
            ChunkedError::SizeLineTooLong => "chunk-size line too long",
            ChunkedError::TrailersTooLong => "chunked trailers too long",
        })
    }
}

impl std::error::Error for ChunkedError {}

/// What one call to [`ChunkedDecoder::decode`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Decoded {
    /// How many bytes of the input belong to the body (the rest is not the body's).
    pub consumed: usize,
    /// Whether the body ended within them.
    pub done: bool,
}

/// A chunked body's decoder; one per body.
#[derive(Clone, Debug)]
pub struct ChunkedDecoder {
    state: State,
    /// Bytes of the current size line, or of the trailers so far.
    line: usize,
}

impl Default for ChunkedDecoder {
    fn default() -> Self {
        ChunkedDecoder {
            state: State::Size {
                size: 0,
                digits: false,
                ws: false,
                ext: false,
            },
            line: 0,
        }
    }
}

impl ChunkedDecoder {
    /// Whether the body has ended.
    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// Decodes what of `input` belongs to the body, giving each run of chunk data to `data`.
    /// After an error the decoder is not to be used again.
    pub fn decode(
        &mut self,
        input: &[u8],
        mut data: impl FnMut(&[u8]),
    ) -> Result<Decoded, ChunkedError> {
        let mut i = 0;
        while i < input.len() && self.state != State::Done {
            if let State::Data(left) = self.state {
                let n = usize::try_from(left)
                    .unwrap_or(usize::MAX)
                    .min(input.len() - i);
                data(&input[i..i + n]);
                i += n;
                let left = left - n as u64;
                self.state = if left == 0 {
                    State::DataEnd(false)
                } else {
                    State::Data(left)
                };
                continue;
            }
            self.step(input[i])?;
            i += 1;
        }
        Ok(Decoded {
            consumed: i,
            done: self.state == State::Done,
        })
    }

    /// One byte outside chunk data.
    fn step(&mut self, b: u8) -> Result<(), ChunkedError> {
        self.state = match self.state {
            State::Size {
                size,
                digits,
                ws,
                ext,
            } => {
                self.line += 1;
                if self.line > MAX_SIZE_LINE {
                    return Err(ChunkedError::SizeLineTooLong);
                }
                size_line(b, size, digits, ws, ext)?
            }
            State::SizeLf { size } => {
                if b != b'\n' {
                    return Err(ChunkedError::BadLineEnd);
                }
                self.line = 0;
                if size == 0 {
                    State::Trailer {
                        line_start: true,
                        cr: false,
                    }
                } else {
                    State::Data(size)
                }
            }
            State::DataEnd(false) if b == b'\r' => State::DataEnd(true),
            State::DataEnd(true) if b == b'\n' => State::Size {
                size: 0,
                digits: false,
                ws: false,
                ext: false,
            },
            State::DataEnd(_) => return Err(ChunkedError::BadLineEnd),
            State::Trailer { line_start, cr } => {
                self.line += 1;
                if self.line > MAX_TRAILERS {
                    return Err(ChunkedError::TrailersTooLong);
                }
                match (b, cr) {
                    (b'\n', true) if line_start => State::Done,
                    (b'\n', true) => State::Trailer {
                        line_start: true,
                        cr: false,
                    },
                    (b'\r', false) => State::Trailer {
                        line_start,
                        cr: true,
                    },
                    (b'\n' | b'\r', _) | (_, true) => return Err(ChunkedError::BadLineEnd),
                    _ => State::Trailer {
                        line_start: false,
                        cr: false,
                    },
                }
            }
            State::Data(_) | State::Done => self.state,
        };
        Ok(())
    }
}

/// The state after byte `b` of a chunk-size line read so far as `size`, `digits`, `ws`, `ext`.
fn size_line(b: u8, size: u64, digits: bool, ws: bool, ext: bool) -> Result<State, ChunkedError> {
    let next = |ws, ext| State::Size {
        size,
        digits,
        ws,
        ext,
    };
    Ok(match b {
        b'\r' if digits => State::SizeLf { size },
        b'\n' | b'\r' => return Err(ChunkedError::BadLineEnd),
        _ if ext => next(ws, ext),
        b';' if digits => next(ws, true),
        b' ' | b'\t' if digits => next(true, false),
        _ if ws => return Err(ChunkedError::BadSize),
        _ => {
            let d = (b as char).to_digit(16).ok_or(ChunkedError::BadSize)?;
            let size = size
                .checked_mul(16)
                .and_then(|s| s.checked_add(u64::from(d)))
                .ok_or(ChunkedError::BadSize)?;
            State::Size {
                size,
                digits: true,
                ws,
                ext,
            }
        }
    })
}

/// `chunks` as a chunked body (each non-empty one a chunk, then the last chunk).
pub fn encode(chunks: &[&[u8]]) -> Vec<u8> {
    let mut out = Vec::new();
    for chunk in chunks.iter().filter(|c| !c.is_empty()) {
        out.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
        out.extend_from_slice(chunk);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"0\r\n\r\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Decodes `body` whole and split at every byte; both give the same data, length and end.
    fn decode_all(body: &[u8]) -> Result<(Vec<u8>, usize), ChunkedError> {
        let mut whole = Vec::new();
        let mut decoder = ChunkedDecoder::default();
        let result = decoder
            .decode(body, |d| whole.extend_from_slice(d))
            .map(|d| (whole.clone(), d.consumed, d.done));
        for split in 0..=body.len() {
            let mut data = Vec::new();
            let mut decoder = ChunkedDecoder::default();
            let split_result = decoder
                .decode(&body[..split], |d| data.extend_from_slice(d))
                .and_then(|first| {
                    let rest = if first.done {
                        first
                    } else {
                        let second =
                            decoder.decode(&body[split..], |d| data.extend_from_slice(d))?;
                        Decoded {
                            consumed: first.consumed + second.consumed,
                            done: second.done,
                        }
                    };
                    Ok((data.clone(), rest.consumed, rest.done))
                });
            assert_eq!(split_result, result, "split at {split}");
        }
        let (data, consumed, done) = result?;
        assert!(done, "not done: {}", body.escape_ascii());
        Ok((data, consumed))
    }

    #[test]
    fn bodies_decode_and_stop_at_their_end() {
        let body = b"5 ;a\r\nhello\r\n1;ext=\"a\"\r\n \r\n0\r\nX-Trailer: 1\r\n\r\nGET / HTTP/1.1";
        let end = body.len() - b"GET / HTTP/1.1".len();
        assert_eq!(decode_all(body), Ok((b"hello ".to_vec(), end)));
        assert_eq!(decode_all(b"0\r\n\r\n"), Ok((Vec::new(), 5)));
        assert_eq!(
            decode_all(b"A\r\n0123456789\r\n0\r\n\r\n").map(|r| r.0.len()),
            Ok(10)
        );
        let chunks: [&[u8]; 3] = [b"abc", b"", &[0u8; 300]];
        let encoded = encode(&chunks);
        assert_eq!(decode_all(&encoded).map(|r| r.0), Ok(chunks.concat()));
    }

    #[test]
    fn what_two_parsers_could_read_differently_is_refused() {
        let cases: [(&[u8], ChunkedError); 9] = [
            (b"1 2\r\n", ChunkedError::BadSize),
            (b"x\r\n", ChunkedError::BadSize),
            (b"\r\n", ChunkedError::BadLineEnd),
            (b";ext\r\n", ChunkedError::BadSize),
            (b"5\nhello\r\n0\r\n\r\n", ChunkedError::BadLineEnd),
            (b"5\r\nhello\n0\r\n\r\n", ChunkedError::BadLineEnd),
            (b"5\r\nhelloXX0\r\n\r\n", ChunkedError::BadLineEnd),
            (b"0\r\nX: 1\n\r\n", ChunkedError::BadLineEnd),
            (b"10000000000000000\r\n", ChunkedError::BadSize),
        ];
        for (body, error) in cases {
            let mut decoder = ChunkedDecoder::default();
            assert_eq!(
                decoder.decode(body, |_| {}),
                Err(error),
                "{}",
                body.escape_ascii()
            );
        }
        let long = format!("1;{}\r\n", "e".repeat(MAX_SIZE_LINE));
        assert_eq!(
            ChunkedDecoder::default().decode(long.as_bytes(), |_| {}),
            Err(ChunkedError::SizeLineTooLong)
        );
        let trailers = format!("0\r\nX: {}\r\n\r\n", "t".repeat(MAX_TRAILERS));
        assert_eq!(
            ChunkedDecoder::default().decode(trailers.as_bytes(), |_| {}),
            Err(ChunkedError::TrailersTooLong)
        );
    }
}
