//! The few I/O steps the forwarding path needs beyond tokio's: writing several buffers whole
//! with as few system calls as the socket allows (a head and the first of its body go out in
//! one `writev`), connecting to a dyno under its timeout, and a stream that gives back bytes
//! already read (a connection handed to hyper after its first bytes showed HTTP/2).

use std::io::IoSlice;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;

use crate::errors::ProxyError;

/// Writes all of `bufs`, in order, vectored where the writer allows. Returns how many bytes
/// were written before an error, with the error.
pub(crate) async fn write_all<W: AsyncWrite + Unpin>(
    w: &mut W,
    bufs: &mut [IoSlice<'_>],
) -> Result<(), (usize, std::io::Error)> {
    let mut bufs = bufs;
    let mut written = 0;
    IoSlice::advance_slices(&mut bufs, 0);
    while !bufs.is_empty() {
        match w.write_vectored(bufs).await {
            Ok(0) => {
                return Err((written, std::io::ErrorKind::WriteZero.into()));
            }
            Ok(n) => {
                written += n;
                IoSlice::advance_slices(&mut bufs, n);
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err((written, e)),
        }
    }
    // TLS holds what is written until flushed (a no-op for TCP).
    w.flush().await.map_err(|e| (written, e))
}

/// Writes `bytes` whole and flushes (TLS streams hold what is written until flushed).
pub(crate) async fn send<W: AsyncWrite + Unpin>(w: &mut W, bytes: &[u8]) -> std::io::Result<()> {
    w.write_all(bytes).await?;
    w.flush().await
}

/// A new connection to the dyno at `addr`, and how long connecting took: H19 past `timeout`,
/// H21 when refused.
pub(crate) async fn connect(
    addr: SocketAddr,
    timeout: Duration,
) -> Result<(TcpStream, Duration), ProxyError> {
    let start = Instant::now();
    match tokio::time::timeout(timeout, TcpStream::connect(addr)).await {
        Ok(Ok(stream)) => {
            let _ = stream.set_nodelay(true);
            Ok((stream, start.elapsed()))
        }
        Ok(Err(e)) if e.kind() == std::io::ErrorKind::TimedOut => {
            Err(ProxyError::BackendConnectTimeout)
        }
        Ok(Err(_)) => Err(ProxyError::BackendConnectionRefused),
        Err(_) => Err(ProxyError::BackendConnectTimeout),
    }
}

/// A stream whose first reads give back `read` (bytes already taken from it).
#[derive(Debug)]
pub(crate) struct Rewind<I> {
    read: Vec<u8>,
    at: usize,
    inner: I,
}

impl<I> Rewind<I> {
    /// `inner`, after which `read` was taken from it.
    pub(crate) fn new(read: Vec<u8>, inner: I) -> Self {
        Rewind { read, at: 0, inner }
    }
}

impl<I: AsyncRead + Unpin> AsyncRead for Rewind<I> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        if self.at < self.read.len() {
            let n = buf.remaining().min(self.read.len() - self.at);
            let at = self.at;
            buf.put_slice(&self.read[at..at + n]);
            self.at += n;
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<I: AsyncWrite + Unpin> AsyncWrite for Rewind<I> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;

    #[tokio::test]
    async fn vectored_writes_go_out_whole_and_in_order() {
        let (mut a, mut b) = tokio::io::duplex(7);
        let writer = tokio::spawn(async move {
            let mut bufs = [
                IoSlice::new(b"head\r\n"),
                IoSlice::new(b""),
                IoSlice::new(b"body"),
            ];
            write_all(&mut a, &mut bufs).await.map_err(|(_, e)| e)
        });
        let mut got = vec![0u8; 10];
        b.read_exact(&mut got).await.unwrap();
        writer.await.unwrap().unwrap();
        assert_eq!(got, b"head\r\nbody");
    }

    #[tokio::test]
    async fn a_rewound_stream_reads_its_taken_bytes_first() {
        let (a, mut b) = tokio::io::duplex(64);
        b.write_all(b" world").await.unwrap();
        drop(b);
        let mut r = Rewind::new(b"hello".to_vec(), a);
        let mut all = String::new();
        r.read_to_string(&mut all).await.unwrap();
        assert_eq!(all, "hello world");
    }
}
