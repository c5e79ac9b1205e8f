//! The PostgreSQL v3 wire protocol as the adapter needs it: the startup packet (with its
//! `SSLRequest`, `GSSENCRequest` and `CancelRequest` forms), tagged message framing with a
//! length limit, and the few messages the adapter writes itself (`ErrorResponse`, auth,
//! `ParameterStatus`, `BackendKeyData`, `ReadyForQuery`).
//!
//! Every length comes from the peer, so each is checked before anything is allocated: a
//! startup packet is at most [`MAX_STARTUP`] bytes, a message at most the configured limit.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt};

/// The largest startup packet (PgBouncer's limit; PostgreSQL's own is 10,000 too).
pub const MAX_STARTUP: usize = 10_000;
/// Protocol 3.0.
pub const PROTOCOL_3_0: u32 = 196_608;
const SSL_REQUEST: u32 = 80_877_103;
const GSSENC_REQUEST: u32 = 80_877_104;
const CANCEL_REQUEST: u32 = 80_877_102;

/// Why bytes from a peer are not a message.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum WireError {
    /// A length field below its own four bytes, or a startup packet of the wrong shape.
    #[error("invalid message length {0}")]
    BadLength(i64),
    /// Longer than the limit.
    #[error("message of {len} bytes is over the {max}-byte limit")]
    TooLong { len: usize, max: usize },
    /// A startup packet with an unknown protocol version.
    #[error("unsupported frontend protocol {0}.{1}")]
    Protocol(u16, u16),
    /// A startup packet whose parameters are not NUL-terminated pairs.
    #[error("malformed startup packet")]
    MalformedStartup,
    /// A message whose body is not what its type says.
    #[error("malformed message: {0}")]
    Malformed(&'static str),
    /// The peer closed the connection inside a message.
    #[error("connection closed inside a message")]
    Truncated,
}

/// The first packet on a client connection.
#[derive(Debug, PartialEq, Eq)]
pub enum Startup {
    /// `SSLRequest`: the client asks for TLS.
    Ssl,
    /// `GSSENCRequest`: the client asks for GSSAPI encryption (always refused).
    GssEnc,
    /// `CancelRequest` for the backend with this process id and secret.
    Cancel { pid: u32, secret: u32 },
    /// `StartupMessage` with its protocol's minor version and its parameters (`user`,
    /// `database`, …), in order.
    Params(u16, Vec<(String, String)>),
}

/// Reads the first packet, or `None` if the peer closed before sending a byte.
pub async fn read_startup<R: AsyncRead + Unpin>(r: &mut R) -> Result<Option<Startup>, ReadError> {
    let mut len = [0u8; 4];
    match r.read(&mut len[..1]).await? {
        0 => return Ok(None),
        _ => r.read_exact(&mut len[1..]).await.map_err(truncated)?,
    };
    let len = u32::from_be_bytes(len) as usize;
    if !(8..=MAX_STARTUP).contains(&len) {
        return Err(if len > MAX_STARTUP {
            WireError::TooLong {
                len,
                max: MAX_STARTUP,
            }
        } else {
            WireError::BadLength(len as i64)
        }
        .into());
    }
    let mut body = vec![0u8; len - 4];
    r.read_exact(&mut body).await.map_err(truncated)?;
    Ok(Some(parse_startup(&body)?))
}

fn truncated(e: std::io::Error) -> ReadError {
    if e.kind() == std::io::ErrorKind::UnexpectedEof {
        ReadError::Wire(WireError::Truncated)
    } else {
        ReadError::Io(e)
    }
}

/// A startup packet's body (after its length).
pub fn parse_startup(body: &[u8]) -> Result<Startup, WireError> {
    let mut b = body;
    if b.len() < 4 {
        return Err(WireError::BadLength(body.len() as i64 + 4));
    }
    let code = b.get_u32();
    match code {
        SSL_REQUEST if b.is_empty() => return Ok(Startup::Ssl),
        GSSENC_REQUEST if b.is_empty() => return Ok(Startup::GssEnc),
        CANCEL_REQUEST if b.len() == 8 => {
            let pid = b.get_u32();
            let secret = b.get_u32();
            return Ok(Startup::Cancel { pid, secret });
        }
        SSL_REQUEST | GSSENC_REQUEST | CANCEL_REQUEST => {
            return Err(WireError::BadLength(body.len() as i64 + 4));
        }
        _ => {}
    }
    let (major, minor) = ((code >> 16) as u16, code as u16);
    if major != 3 {
        return Err(WireError::Protocol(major, minor));
    }
    let mut params = Vec::new();
    loop {
        let key = cstr(&mut b).ok_or(WireError::MalformedStartup)?;
        if key.is_empty() {
            break;
        }
        let value = cstr(&mut b).ok_or(WireError::MalformedStartup)?;
        params.push((key, value));
    }
    if !b.is_empty() {
        return Err(WireError::MalformedStartup);
    }
    Ok(Startup::Params(minor, params))
}

/// Takes a NUL-terminated string off the front of `b`.
pub fn cstr(b: &mut &[u8]) -> Option<String> {
    let end = memchr::memchr(0, b)?;
    let s = String::from_utf8_lossy(&b[..end]).into_owned();
    *b = &b[end + 1..];
    Some(s)
}

/// The same as [`cstr`] on `Bytes`, without a copy of what follows.
pub fn cstr_bytes(b: &mut Bytes) -> Option<Bytes> {
    let end = memchr::memchr(0, b)?;
    let s = b.split_to(end);
    b.advance(1);
    Some(s)
}

/// Why reading a message failed.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// The bytes were not a message.
    #[error(transparent)]
    Wire(#[from] WireError),
    /// The socket failed.
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// One tagged message, its header included (so it can be forwarded as it came).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Frame {
    /// The message type (`Q`, `P`, `Z`, …).
    pub tag: u8,
    /// Tag, length and body.
    pub raw: Bytes,
}

impl Frame {
    /// The body, after the tag and length.
    pub fn body(&self) -> Bytes {
        self.raw.slice(5..)
    }

    /// A frame of `tag` with `body`.
    pub fn new(tag: u8, body: &[u8]) -> Frame {
        let mut out = BytesMut::with_capacity(body.len() + 5);
        out.put_u8(tag);
        out.put_u32(body.len() as u32 + 4);
        out.put_slice(body);
        Frame {
            tag,
            raw: out.freeze(),
        }
    }
}

/// Takes one whole message off the front of `buf`, or `None` if more bytes are needed.
pub fn try_frame(buf: &mut BytesMut, max: usize) -> Result<Option<Frame>, WireError> {
    if buf.len() < 5 {
        return Ok(None);
    }
    let len = i32::from_be_bytes([buf[1], buf[2], buf[3], buf[4]]);
    if len < 4 {
        return Err(WireError::BadLength(len.into()));
    }
    let total = len as usize + 1;
    if total > max {
        return Err(WireError::TooLong { len: total, max });
    }
    if buf.len() < total {
        buf.reserve(total - buf.len());
        return Ok(None);
    }
    let raw = buf.split_to(total).freeze();
    Ok(Some(Frame { tag: raw[0], raw }))
}

/// Reads more bytes into `buf`; `Ok(false)` at end of stream.
pub async fn fill<R: AsyncRead + Unpin>(r: &mut R, buf: &mut BytesMut) -> std::io::Result<bool> {
    if buf.capacity() - buf.len() < 4096 {
        buf.reserve(8192);
    }
    Ok(r.read_buf(buf).await? > 0)
}

/// Reads one whole message; `Ok(None)` at a clean end of stream between messages.
pub async fn read_frame<R: AsyncRead + Unpin>(
    r: &mut R,
    buf: &mut BytesMut,
    max: usize,
) -> Result<Option<Frame>, ReadError> {
    loop {
        if let Some(f) = try_frame(buf, max)? {
            return Ok(Some(f));
        }
        if !fill(r, buf).await? {
            return if buf.is_empty() {
                Ok(None)
            } else {
                Err(WireError::Truncated.into())
            };
        }
    }
}

/// PostgreSQL's `ErrorResponse` (or, with `notice`, `NoticeResponse`).
pub fn error_response(severity: &str, code: &str, message: &str) -> Bytes {
    let mut body = BytesMut::new();
    for (field, value) in [
        (b'S', severity),
        (b'V', severity),
        (b'C', code),
        (b'M', message),
    ] {
        body.put_u8(field);
        body.put_slice(value.as_bytes());
        body.put_u8(0);
    }
    body.put_u8(0);
    Frame::new(b'E', &body).raw
}

/// The fields of an `ErrorResponse` or `NoticeResponse`: severity, code and message.
pub fn error_fields(body: &[u8]) -> (String, String, String) {
    let (mut severity, mut code, mut message) = (String::new(), String::new(), String::new());
    let mut b = body;
    while let Some((&field, rest)) = b.split_first() {
        if field == 0 {
            break;
        }
        b = rest;
        let Some(value) = cstr(&mut b) else { break };
        match field {
            b'V' => severity = value,
            b'S' if severity.is_empty() => severity = value,
            b'C' => code = value,
            b'M' => message = value,
            _ => {}
        }
    }
    (severity, code, message)
}

/// `Authentication*` with its code and data.
pub fn auth(code: u32, data: &[u8]) -> Bytes {
    let mut body = BytesMut::with_capacity(4 + data.len());
    body.put_u32(code);
    body.put_slice(data);
    Frame::new(b'R', &body).raw
}

/// `ParameterStatus`.
pub fn parameter_status(key: &str, value: &str) -> Bytes {
    let mut body = BytesMut::new();
    body.put_slice(key.as_bytes());
    body.put_u8(0);
    body.put_slice(value.as_bytes());
    body.put_u8(0);
    Frame::new(b'S', &body).raw
}

/// `BackendKeyData`.
pub fn backend_key(pid: u32, secret: u32) -> Bytes {
    let mut body = [0u8; 8];
    body[..4].copy_from_slice(&pid.to_be_bytes());
    body[4..].copy_from_slice(&secret.to_be_bytes());
    Frame::new(b'K', &body).raw
}

/// `ReadyForQuery` with a transaction status (`I`, `T` or `E`).
pub fn ready(status: u8) -> Bytes {
    Frame::new(b'Z', &[status]).raw
}

/// A `StartupMessage` with `params`.
pub fn startup_message(params: &[(&str, &str)]) -> Bytes {
    let mut body = BytesMut::new();
    body.put_u32(PROTOCOL_3_0);
    for (k, v) in params {
        body.put_slice(k.as_bytes());
        body.put_u8(0);
        body.put_slice(v.as_bytes());
        body.put_u8(0);
    }
    body.put_u8(0);
    let mut out = BytesMut::with_capacity(body.len() + 4);
    out.put_u32(body.len() as u32 + 4);
    out.put_slice(&body);
    out.freeze()
}

/// `NegotiateProtocolVersion`: the adapter speaks 3.0, and none of the `_pq_.` options named.
pub fn negotiate_protocol(options: &[&str]) -> Bytes {
    let mut body = BytesMut::new();
    body.put_u32(PROTOCOL_3_0);
    body.put_u32(options.len() as u32);
    for o in options {
        body.put_slice(o.as_bytes());
        body.put_u8(0);
    }
    Frame::new(b'v', &body).raw
}

/// A `CancelRequest` for a backend.
pub fn cancel_request(pid: u32, secret: u32) -> [u8; 16] {
    let mut out = [0u8; 16];
    out[..4].copy_from_slice(&16u32.to_be_bytes());
    out[4..8].copy_from_slice(&CANCEL_REQUEST.to_be_bytes());
    out[8..12].copy_from_slice(&pid.to_be_bytes());
    out[12..].copy_from_slice(&secret.to_be_bytes());
    out
}

/// A simple `Query`.
pub fn query(sql: &str) -> Bytes {
    let mut body = Vec::with_capacity(sql.len() + 1);
    body.extend_from_slice(sql.as_bytes());
    body.push(0);
    Frame::new(b'Q', &body).raw
}

#[cfg(test)]
mod tests {
    use super::*;

    fn framed(msgs: &[(u8, &[u8])]) -> Vec<u8> {
        msgs.iter()
            .flat_map(|(t, b)| Frame::new(*t, b).raw.to_vec())
            .collect()
    }

    /// Every message comes out whole whether the input arrives at once or split at any byte.
    #[test]
    fn frames_whole_and_split_at_every_byte() {
        let input = framed(&[(b'Q', b"SELECT 1\0"), (b'S', b""), (b'X', b"")]);
        for cut in 0..=input.len() {
            let mut buf = BytesMut::new();
            let mut out = Vec::new();
            for part in [&input[..cut], &input[cut..]] {
                buf.extend_from_slice(part);
                while let Some(f) = try_frame(&mut buf, 1024).unwrap() {
                    out.push(f.tag);
                }
            }
            assert_eq!(out, b"QSX", "cut at {cut}");
            assert!(buf.is_empty());
        }
    }

    #[test]
    fn lengths_are_checked_before_reading() {
        let mut buf = BytesMut::from(&[b'Q', 0, 0, 0, 3][..]);
        assert_eq!(try_frame(&mut buf, 1024), Err(WireError::BadLength(3)));
        let mut buf = BytesMut::from(&[b'Q', 0x7f, 0xff, 0xff, 0xff][..]);
        assert!(matches!(
            try_frame(&mut buf, 1 << 20),
            Err(WireError::TooLong { .. })
        ));
        let mut buf = BytesMut::from(&[b'Q', 0xff, 0xff, 0xff, 0xff][..]);
        assert_eq!(try_frame(&mut buf, 1024), Err(WireError::BadLength(-1)));
    }

    #[test]
    fn startup_forms() {
        let s = startup_message(&[("user", "u"), ("database", "d")]);
        assert_eq!(
            parse_startup(&s[4..]),
            Ok(Startup::Params(
                0,
                vec![("user".into(), "u".into()), ("database".into(), "d".into())]
            ))
        );
        let c = cancel_request(7, 9);
        assert_eq!(
            parse_startup(&c[4..]),
            Ok(Startup::Cancel { pid: 7, secret: 9 })
        );
        assert_eq!(
            parse_startup(&80_877_103u32.to_be_bytes()),
            Ok(Startup::Ssl)
        );
        assert_eq!(parse_startup(&[0, 2, 0, 0]), Err(WireError::Protocol(2, 0)));
        assert_eq!(
            parse_startup(&[0, 3, 0, 0, b'u', b's']),
            Err(WireError::MalformedStartup)
        );
    }

    #[tokio::test]
    async fn startup_limits_and_truncation() {
        let mut big: &[u8] = &[0, 1, 0, 0];
        assert!(matches!(
            read_startup(&mut big).await,
            Err(ReadError::Wire(WireError::TooLong { .. }))
        ));
        let mut cut: &[u8] = &[0, 0, 0, 20, 0, 3];
        assert!(matches!(
            read_startup(&mut cut).await,
            Err(ReadError::Wire(WireError::Truncated))
        ));
        let mut empty: &[u8] = &[];
        assert!(matches!(read_startup(&mut empty).await, Ok(None)));
    }

    proptest::proptest! {
        /// Any bytes: a frame, a need for more, or an error; never a panic, and a frame never
        /// longer than the limit.
        #[test]
        fn any_bytes_frame_or_fail_cleanly(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..64)) {
            let mut buf = BytesMut::from(&bytes[..]);
            while let Ok(Some(f)) = try_frame(&mut buf, 32) {
                proptest::prop_assert!(f.raw.len() <= 32);
            }
            let _ = parse_startup(&bytes);
            let _ = error_fields(&bytes);
        }
    }

    #[test]
    fn error_fields_round_trip() {
        let e = error_response("FATAL", "28P01", "password authentication failed");
        let (s, c, m) = error_fields(&e[5..]);
        assert_eq!(
            (s.as_str(), c.as_str(), m.as_str()),
            ("FATAL", "28P01", "password authentication failed")
        );
    }
}
