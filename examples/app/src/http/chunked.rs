//! A chunked request body decoded as it arrives (RFC 9112 section 7.1), without I/O: fed
//! whatever bytes have come, it consumes what it can and says when the body is complete.

use bytes::{Buf, BytesMut};

use crate::error::RequestError;

/// The longest chunk-size line (with extensions) or trailer line.
const MAX_LINE: usize = 4096;
/// The most trailer bytes read (and dropped).
const MAX_TRAILERS: usize = 64 * 1024;

/// Decodes one chunked body, fed by [`ChunkedDecoder::decode`] as bytes arrive.
#[derive(Debug)]
pub(crate) struct ChunkedDecoder {
    state: State,
    body: Vec<u8>,
    max_body: usize,
    trailer_bytes: usize,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// Before a chunk-size line.
    Size,
    /// Inside a chunk's data, with this many bytes to go.
    Data(usize),
    /// After a chunk's data, before its CRLF.
    DataEnd,
    /// After the last chunk: trailer lines up to an empty line.
    Trailers,
}

impl ChunkedDecoder {
    /// A decoder refusing bodies over `max_body` bytes.
    pub(crate) fn new(max_body: usize) -> Self {
        Self {
            state: State::Size,
            body: Vec::new(),
            max_body,
            trailer_bytes: 0,
        }
    }

    /// Consumes what it can of `buf`: the body once its last byte (the end of the trailers)
    /// is consumed, `None` while more is needed. Bytes after the body stay in `buf`.
    pub(crate) fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Vec<u8>>, RequestError> {
        loop {
            match self.state {
                State::Size => {
                    let Some(line) = take_line(buf)? else {
                        return Ok(None);
                    };
                    let size = parse_size(&line)?;
                    if size > self.max_body - self.body.len() {
                        return Err(RequestError::BodyTooLarge);
                    }
                    self.state = if size == 0 {
                        State::Trailers
                    } else {
                        State::Data(size)
                    };
                }
                State::Data(left) => {
                    if buf.is_empty() {
                        return Ok(None);
                    }
                    let n = left.min(buf.len());
                    self.body.extend_from_slice(&buf[..n]);
                    buf.advance(n);
                    self.state = if n == left {
                        State::DataEnd
                    } else {
                        State::Data(left - n)
                    };
                }
                State::DataEnd => {
                    if buf.len() < 2 {
                        return Ok(None);
                    }
                    if buf[..2] != *b"\r\n" {
                        return Err(RequestError::BadChunk("chunk data not followed by CRLF"));
                    }
                    buf.advance(2);
                    self.state = State::Size;
                }
                State::Trailers => {
                    let Some(line) = take_line(buf)? else {
                        return Ok(None);
                    };
                    if line.is_empty() {
                        self.state = State::Size;
                        return Ok(Some(std::mem::take(&mut self.body)));
                    }
                    self.trailer_bytes += line.len();
                    if self.trailer_bytes > MAX_TRAILERS {
                        return Err(RequestError::BadChunk("trailers too long"));
                    }
                }
            }
        }
    }
}

/// Takes one CRLF-ended line off `buf`, without the CRLF; `None` until it is complete.
fn take_line(buf: &mut BytesMut) -> Result<Option<BytesMut>, RequestError> {
    let Some(end) = buf.iter().take(MAX_LINE + 2).position(|&b| b == b'\n') else {
        if buf.len() > MAX_LINE + 1 {
            return Err(RequestError::BadChunk("line too long"));
        }
        return Ok(None);
    };
    if end == 0 || buf[end - 1] != b'\r' {
        return Err(RequestError::BadChunk("line not ended by CRLF"));
    }
    let mut line = buf.split_to(end + 1);
    line.truncate(end - 1);
    Ok(Some(line))
}

/// A chunk-size line: hex digits, then optional whitespace and `;extensions`, ignored.
fn parse_size(line: &[u8]) -> Result<usize, RequestError> {
    let digits = line
        .split(|&b| b == b';')
        .next()
        .unwrap_or_default()
        .trim_ascii_end();
    if digits.is_empty() || digits.len() > 15 || !digits.iter().all(u8::is_ascii_hexdigit) {
        return Err(RequestError::BadChunk("bad chunk size"));
    }
    std::str::from_utf8(digits)
        .ok()
        .and_then(|hex| usize::from_str_radix(hex, 16).ok())
        .ok_or(RequestError::BadChunk("bad chunk size"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const BODY: &[u8] =
        b"5\r\nhello\r\n1;name=value\r\n \r\nA  \r\n0123456789\r\n0\r\nTrailer: x\r\n\r\nNEXT";

    /// Feeds `pieces` one by one; the body and what is left of the buffer.
    fn feed(pieces: &[&[u8]], max_body: usize) -> Result<(Option<Vec<u8>>, Vec<u8>), RequestError> {
        let mut decoder = ChunkedDecoder::new(max_body);
        let mut buf = BytesMut::new();
        for (i, piece) in pieces.iter().enumerate() {
            buf.extend_from_slice(piece);
            if let Some(body) = decoder.decode(&mut buf)? {
                let rest = [&buf[..], &pieces[i + 1..].concat()].concat();
                return Ok((Some(body), rest));
            }
        }
        Ok((None, buf.to_vec()))
    }

    #[test]
    fn whole_input() {
        let (body, rest) = feed(&[BODY], 1024).unwrap();
        assert_eq!(body.unwrap(), b"hello 0123456789");
        assert_eq!(rest, b"NEXT");
    }

    #[test]
    fn input_split_at_each_byte() {
        for i in 0..=BODY.len() {
            let (body, rest) = feed(&[&BODY[..i], &BODY[i..]], 1024).unwrap();
            assert_eq!(
                body.as_deref(),
                Some(&b"hello 0123456789"[..]),
                "split at {i}"
            );
            assert_eq!(rest, b"NEXT", "split at {i}");
        }
    }

    #[test]
    fn input_byte_by_byte() {
        let bytes: Vec<&[u8]> = BODY.chunks(1).collect();
        let (body, rest) = feed(&bytes, 1024).unwrap();
        assert_eq!(body.unwrap(), b"hello 0123456789");
        assert_eq!(rest, b"NEXT");
    }

    #[test]
    fn incomplete_is_none() {
        let (body, _) = feed(&[&BODY[..BODY.len() - "\r\nNEXT".len()]], 1024).unwrap();
        assert_eq!(body, None);
    }

    #[test]
    fn the_empty_body() {
        assert_eq!(feed(&[b"0\r\n\r\n"], 0).unwrap().0.unwrap(), b"");
    }

    #[test]
    fn broken_bodies_are_errors() {
        for bad in [
            &b"x\r\n"[..],
            b"\r\n",
            b"+5\r\nhello\r\n",
            b"5\nhello\r\n",
            b"5\r\nhelloXX",
            b"fffffffffffffffff\r\n",
        ] {
            assert!(
                matches!(feed(&[bad], 1024), Err(RequestError::BadChunk(_))),
                "{bad:?}"
            );
        }
        let long_line = [&b"5;"[..], &[b'x'; MAX_LINE]].concat();
        assert!(matches!(
            feed(&[&long_line], 1024),
            Err(RequestError::BadChunk(_))
        ));
    }

    #[test]
    fn a_body_over_the_limit_is_refused_before_its_data() {
        assert!(matches!(
            feed(&[b"5\r\n"], 4),
            Err(RequestError::BodyTooLarge)
        ));
        assert!(matches!(
            feed(&[b"3\r\nabc\r\n2\r\n"], 4),
            Err(RequestError::BodyTooLarge)
        ));
    }
}
