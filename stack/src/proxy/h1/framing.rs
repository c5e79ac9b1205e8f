//! How far a body being passed on has come, whichever way it is delimited: a length counted
//! down, chunks decoded as they pass (they go on verbatim; the decoder says where the body
//! ends and refuses what two parsers could read differently), or everything until the sender
//! closes.

use crate::proxy::h1::chunked::{ChunkedDecoder, ChunkedError};

/// The rest of a body in transit.
#[derive(Clone, Debug)]
pub(crate) enum Remaining {
    /// This many bytes are still to come.
    Length(u64),
    /// Chunks, decoded as they pass.
    Chunked(ChunkedDecoder),
    /// Everything until the sender closes.
    UntilClose,
}

/// What of some bytes belongs to the body.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Taken {
    /// How many of the bytes are the body's (passed on as they are).
    pub len: usize,
    /// How many of those are data (a chunked body's sizes and line ends are not).
    pub data: u64,
    /// Whether the body ended within them.
    pub done: bool,
}

impl Remaining {
    /// Whether the body has ended (a body delimited by a close has not until it closes).
    pub(crate) fn is_done(&self) -> bool {
        match self {
            Remaining::Length(n) => *n == 0,
            Remaining::Chunked(decoder) => decoder.is_done(),
            Remaining::UntilClose => false,
        }
    }

    /// Takes the body's part of `input`, giving each run of data to `data`.
    pub(crate) fn take(
        &mut self,
        input: &[u8],
        mut data: impl FnMut(&[u8]),
    ) -> Result<Taken, ChunkedError> {
        match self {
            Remaining::Length(left) => {
                let len = usize::try_from(*left)
                    .unwrap_or(usize::MAX)
                    .min(input.len());
                *left -= len as u64;
                data(&input[..len]);
                Ok(Taken {
                    len,
                    data: len as u64,
                    done: *left == 0,
                })
            }
            Remaining::Chunked(decoder) => {
                let mut count = 0u64;
                let decoded = decoder.decode(input, |d| {
                    count += d.len() as u64;
                    data(d);
                })?;
                Ok(Taken {
                    len: decoded.consumed,
                    data: count,
                    done: decoded.done,
                })
            }
            Remaining::UntilClose => {
                data(input);
                Ok(Taken {
                    len: input.len(),
                    data: input.len() as u64,
                    done: false,
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_framing_takes_only_its_body() {
        let mut length = Remaining::Length(5);
        let t = length.take(b"abc", |_| {}).unwrap();
        assert_eq!((t.len, t.data, t.done), (3, 3, false));
        let t = length.take(b"deGET /", |_| {}).unwrap();
        assert_eq!((t.len, t.data, t.done), (2, 2, true));
        assert!(length.is_done());

        let mut chunked = Remaining::Chunked(ChunkedDecoder::default());
        let mut data = Vec::new();
        let t = chunked
            .take(b"3\r\nabc\r\n0\r\n\r\nGET /", |d| data.extend_from_slice(d))
            .unwrap();
        assert_eq!((t.len, t.data, t.done), (13, 3, true));
        assert_eq!(data, b"abc");
        assert!(
            Remaining::Chunked(ChunkedDecoder::default())
                .take(b"zz\r\n", |_| {})
                .is_err()
        );

        let mut until_close = Remaining::UntilClose;
        let t = until_close.take(b"anything", |_| {}).unwrap();
        assert_eq!((t.len, t.done), (8, false));
        assert!(!until_close.is_done());
    }
}
