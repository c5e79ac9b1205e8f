//! One client connection: requests read off it in turn (keep-alive and pipelining), and the
//! writes routes make to it, framed or not.

use std::io;
use std::time::Duration;

use bytes::{Buf, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::error::RequestError;
use crate::http::chunked::ChunkedDecoder;
use crate::http::request::{BodyLength, parse_head};
use crate::http::{Framing, Head, MAX_BODY, Request, Then, Version};

/// How long a closing connection reads (and drops) what the client still sends, so that
/// unread bytes do not turn the close into a reset that destroys the last response.
const LINGER: Duration = Duration::from_millis(500);
/// Bodies up to this size go out in the same write as their head.
const COALESCE: usize = 16 * 1024;

/// A client connection and the bytes read from it but not yet used.
#[derive(Debug)]
pub(crate) struct Conn {
    stream: TcpStream,
    buf: BytesMut,
}

impl Conn {
    pub(crate) fn new(stream: TcpStream) -> Self {
        Self {
            stream,
            buf: BytesMut::with_capacity(8 * 1024),
        }
    }

    /// The next request with its body, or `None` when the client closed the connection
    /// between requests. A request expecting `100 Continue` gets it before its body is read.
    pub(crate) async fn read_request(&mut self) -> Result<Option<Request>, RequestError> {
        let Some(mut request) = self.read_head().await? else {
            return Ok(None);
        };
        let length = match request.body_length()? {
            BodyLength::Length(0) => return Ok(Some(request)),
            BodyLength::Length(n) => Some(
                usize::try_from(n)
                    .ok()
                    .filter(|&n| n <= MAX_BODY)
                    .ok_or(RequestError::BodyTooLarge)?,
            ),
            BodyLength::Chunked => None,
        };
        if request.expects_continue() {
            self.stream
                .write_all(b"HTTP/1.1 100 Continue\r\n\r\n")
                .await?;
        }
        request.body = match length {
            Some(n) => self.read_body(n).await?,
            None => self.read_chunked_body().await?,
        };
        Ok(Some(request))
    }

    async fn read_head(&mut self) -> Result<Option<Request>, RequestError> {
        loop {
            if let Some((request, len)) = parse_head(&self.buf)? {
                self.buf.advance(len);
                return Ok(Some(request));
            }
            if self.fill().await? == 0 {
                return match self.buf.is_empty() {
                    true => Ok(None),
                    false => Err(RequestError::UnexpectedEof),
                };
            }
        }
    }

    async fn read_body(&mut self, len: usize) -> Result<Vec<u8>, RequestError> {
        while self.buf.len() < len {
            if self.fill().await? == 0 {
                return Err(RequestError::UnexpectedEof);
            }
        }
        Ok(self.buf.split_to(len).to_vec())
    }

    async fn read_chunked_body(&mut self) -> Result<Vec<u8>, RequestError> {
        let mut decoder = ChunkedDecoder::new(MAX_BODY);
        loop {
            if let Some(body) = decoder.decode(&mut self.buf)? {
                return Ok(body);
            }
            if self.fill().await? == 0 {
                return Err(RequestError::UnexpectedEof);
            }
        }
    }

    /// Reads more into the buffer: how many bytes came, 0 at the end of the stream.
    async fn fill(&mut self) -> io::Result<usize> {
        self.buf.reserve(8 * 1024);
        self.stream.read_buf(&mut self.buf).await
    }

    /// Writes a response head for `request`: what happens to the connection after its body.
    pub(crate) async fn write_head(
        &mut self,
        request: &Request,
        head: &Head,
        framing: Framing,
    ) -> io::Result<Then> {
        let keep_alive = head.keeps_alive(request.version, request.wants_keep_alive(), framing);
        self.write_all(&head.encode(request.version, keep_alive, framing))
            .await?;
        Ok(if keep_alive {
            Then::KeepAlive
        } else {
            Then::Close
        })
    }

    /// Writes a whole response with a `Content-Length` body (only the head for `HEAD`).
    pub(crate) async fn respond(
        &mut self,
        request: &Request,
        head: &Head,
        body: &[u8],
    ) -> io::Result<Then> {
        let framing = Framing::Length(body.len() as u64);
        let keep_alive = head.keeps_alive(request.version, request.wants_keep_alive(), framing);
        let mut out = head.encode(request.version, keep_alive, framing);
        let body = if request.is_head() { &[][..] } else { body };
        if body.len() <= COALESCE {
            out.extend_from_slice(body);
            self.write_all(&out).await?;
        } else {
            self.write_all(&out).await?;
            self.write_all(body).await?;
        }
        Ok(if keep_alive {
            Then::KeepAlive
        } else {
            Then::Close
        })
    }

    /// Answers a request that could not be read, if anyone is there to read the answer; the
    /// connection closes after it.
    pub(crate) async fn reject(&mut self, error: &RequestError) -> io::Result<()> {
        let Some(status) = error.status() else {
            return Ok(());
        };
        let body = format!("{error}\n");
        let head = Head::new(status)
            .header("Content-Type", "text/plain")
            .close();
        let mut out = head.encode(Version::Http11, false, Framing::Length(body.len() as u64));
        out.extend_from_slice(body.as_bytes());
        self.write_all(&out).await
    }

    pub(crate) async fn write_all(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.stream.write_all(bytes).await
    }

    /// Waits until the client closes the connection (or it breaks), dropping what it sends.
    pub(crate) async fn wait_for_close(&mut self) {
        self.buf.clear();
        while let Ok(n) = self.fill().await {
            if n == 0 {
                return;
            }
            self.buf.clear();
        }
    }

    /// Closes the connection: our side first, then briefly reading what the client still
    /// sends, so the close is a FIN the client reads as the end of the response, not a reset.
    pub(crate) async fn close(mut self) {
        if self.stream.shutdown().await.is_err() {
            return;
        }
        let _ = tokio::time::timeout(LINGER, self.wait_for_close()).await;
    }

    /// The stream and the bytes read off it but not used: the start of what follows the
    /// request (a WebSocket client's first frames).
    pub(crate) fn into_parts(self) -> (TcpStream, Vec<u8>) {
        (self.stream, self.buf.to_vec())
    }
}
