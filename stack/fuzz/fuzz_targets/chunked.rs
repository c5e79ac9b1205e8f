//! Fuzzes the proxy's chunked body decoder (`stack::h1::ChunkedDecoder`) and asserts:
//!
//! - on arbitrary bytes it never panics, never takes more than it is given, and gives the same
//!   data, length and end whether the bytes come whole or split at any point (the first input
//!   byte picks the split);
//! - round trip: the rest of the input cut into chunks (by its own bytes as lengths), encoded
//!   with `stack::h1::encode_chunked` and decoded, gives the chunks' bytes back, ends, and
//!   takes exactly the encoded body, whatever follows it.

#![no_main]

use libfuzzer_sys::fuzz_target;
use stack::h1::{ChunkedDecoder, Decoded, encode_chunked};

fuzz_target!(|input: &[u8]| {
    let Some((&seed, body)) = input.split_first() else {
        return;
    };
    // Whole against split.
    let whole = decode(&[body]);
    let split = usize::from(seed) * body.len() / 255;
    let (a, b) = body.split_at(split.min(body.len()));
    assert_eq!(
        decode(&[a, b]),
        whole,
        "split at {split}: {}",
        body.escape_ascii()
    );
    if let Ok((_, decoded)) = &whole {
        assert!(decoded.consumed <= body.len());
    }

    // Round trip.
    let mut chunks = Vec::new();
    let mut rest = body;
    while let Some((&n, tail)) = rest.split_first() {
        let n = usize::from(n).min(tail.len());
        chunks.push(&tail[..n]);
        rest = &tail[n..];
    }
    let mut encoded = encode_chunked(&chunks);
    let end = encoded.len();
    encoded.extend_from_slice(b"GET / HTTP/1.1\r\n\r\n");
    let (data, decoded) = decode(&[&encoded]).expect("an encoded body decodes");
    assert_eq!(data, chunks.concat());
    assert_eq!(
        decoded,
        Decoded {
            consumed: end,
            done: true
        }
    );
});

/// Decodes `pieces` in turn (stopping at the body's end): the data and what was taken.
fn decode(pieces: &[&[u8]]) -> Result<(Vec<u8>, Decoded), stack::h1::ChunkedError> {
    let mut decoder = ChunkedDecoder::default();
    let mut data = Vec::new();
    let mut total = Decoded {
        consumed: 0,
        done: false,
    };
    for piece in pieces {
        if total.done {
            break;
        }
        let d = decoder.decode(piece, |d| data.extend_from_slice(d))?;
        total = Decoded {
            consumed: total.consumed + d.consumed,
            done: d.done,
        };
    }
    Ok((data, total))
}
