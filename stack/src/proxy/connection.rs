//! One client connection, served by hyper (HTTP/1.1, or HTTP/2 after its preface or ALPN)
//! under the proxy's clocks: the first request head must arrive within the header timeout of
//! the accept (a TLS handshake included), each later HTTP/1.1 head within the header timeout
//! of its first byte, and a connection with no request in flight is closed after the
//! keep-alive timeout. `Activity` is what the connection's reads (`Watched`), its requests
//! (`InFlight`, held by the response body: `Tracked`) and its watchdog share.

use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};
use std::time::Duration;

use http::Version;
use http_body::{Body, Frame, SizeHint};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::Notify;
use tokio::time::Instant;

use crate::proxy::raw_head::{HeadCapture, RawHead};
use crate::proxy::stats::ConnectionSlot;

/// Why the watchdog closes a connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Expiry {
    /// A request head (or the TLS handshake) took longer than the header timeout.
    HeaderTimeout,
    /// No request came within the keep-alive timeout.
    KeepAliveTimeout,
}

/// What a connection's reads, requests and watchdog share.
#[derive(Debug)]
pub struct Activity {
    start: Instant,
    slot: ConnectionSlot,
    header_timeout: Duration,
    keepalive_timeout: Duration,
    requests: AtomicU64,
    in_flight: AtomicU64,
    /// HTTP/2: bytes between requests are frames (pings, window updates), not a head.
    multiplexed: AtomicBool,
    /// 1 + milliseconds from `start` to the first byte of a head being read; 0: none.
    head_started: AtomicU64,
    /// Milliseconds from `start` to the last response's end.
    idle_since: AtomicU64,
    changed: Notify,
    /// The first bytes of the head being read (read while no request is in flight).
    head: Mutex<HeadCapture>,
}

impl Activity {
    /// A connection just accepted, holding `slot`.
    pub fn new(
        slot: ConnectionSlot,
        header_timeout: Duration,
        keepalive_timeout: Duration,
    ) -> Self {
        Activity {
            start: Instant::now(),
            slot,
            header_timeout,
            keepalive_timeout,
            requests: AtomicU64::new(0),
            in_flight: AtomicU64::new(0),
            multiplexed: AtomicBool::new(false),
            head_started: AtomicU64::new(0),
            idle_since: AtomicU64::new(0),
            changed: Notify::new(),
            head: Mutex::default(),
        }
    }

    /// The connection's place under its listener's caps, and its counters.
    pub fn slot(&self) -> &ConnectionSlot {
        &self.slot
    }

    /// When the first request head is due (the end of a TLS handshake is due before).
    pub fn first_head_due(&self) -> Instant {
        self.start + self.header_timeout
    }

    /// The header timeout.
    pub fn header_timeout(&self) -> Duration {
        self.header_timeout
    }

    fn millis(&self) -> u64 {
        u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX - 1)
    }

    fn head(&self) -> MutexGuard<'_, HeadCapture> {
        self.head.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Gives `f` what is known of the head being read (or just read), scanned leniently.
    pub fn with_head<T>(&self, f: impl FnOnce(&RawHead<'_>) -> T) -> T {
        let head = self.head();
        f(&RawHead::scan(head.bytes()))
    }

    /// `read` came from the client: between requests, it is (the start of) a head, kept for
    /// `with_head`, and its first byte starts the head's clock.
    fn bytes_read(&self, read: &[u8]) {
        if self.in_flight.load(Ordering::SeqCst) == 0 && !self.multiplexed.load(Ordering::SeqCst) {
            self.head().push(read);
        }
        if self.head_started.load(Ordering::SeqCst) == 0
            && self.in_flight.load(Ordering::SeqCst) == 0
            && self.requests.load(Ordering::SeqCst) > 0
            && !self.multiplexed.load(Ordering::SeqCst)
        {
            self.head_started.store(self.millis() + 1, Ordering::SeqCst);
            self.changed.notify_one();
        }
    }

    /// A request's head has been read; the request is in flight until the returned guard is
    /// dropped (with the response's body). The watchdog is not woken: a deadline it sleeps
    /// towards is checked again when it comes.
    pub fn request_started(self: &Arc<Self>, version: Version) -> InFlight {
        self.in_flight.fetch_add(1, Ordering::SeqCst);
        self.requests.fetch_add(1, Ordering::SeqCst);
        self.head_started.store(0, Ordering::SeqCst);
        self.head().clear();
        if version == Version::HTTP_2 {
            self.multiplexed.store(true, Ordering::SeqCst);
        }
        self.slot.first_head_read();
        InFlight(self.clone())
    }

    /// When the connection is due to be closed, and why; `None` while a request is in flight.
    fn deadline(&self) -> Option<(Instant, Expiry)> {
        if self.in_flight.load(Ordering::SeqCst) > 0 {
            return None;
        }
        if self.requests.load(Ordering::SeqCst) == 0 {
            return Some((self.first_head_due(), Expiry::HeaderTimeout));
        }
        let at = |ms: u64| self.start + Duration::from_millis(ms);
        Some(match self.head_started.load(Ordering::SeqCst) {
            0 => (
                at(self.idle_since.load(Ordering::SeqCst)) + self.keepalive_timeout,
                Expiry::KeepAliveTimeout,
            ),
            started => (at(started - 1) + self.header_timeout, Expiry::HeaderTimeout),
        })
    }

    /// Resolves when the connection is due to be closed.
    pub async fn expired(&self) -> Expiry {
        loop {
            let changed = self.changed.notified();
            match self.deadline() {
                None => changed.await,
                Some((at, why)) if at <= Instant::now() => return why,
                Some((at, _)) => {
                    tokio::select! {
                        () = tokio::time::sleep_until(at) => {}
                        () = changed => {}
                    }
                }
            }
        }
    }
}

/// A request in flight on a connection, until dropped.
#[derive(Debug)]
pub struct InFlight(Arc<Activity>);

impl Drop for InFlight {
    fn drop(&mut self) {
        let activity = &self.0;
        activity
            .idle_since
            .store(activity.millis(), Ordering::SeqCst);
        activity.head_started.store(0, Ordering::SeqCst);
        // The last request done: the keep-alive clock starts.
        if activity.in_flight.fetch_sub(1, Ordering::SeqCst) == 1 {
            activity.changed.notify_one();
        }
    }
}

/// A response body that holds its request's `InFlight` until it is done.
#[derive(Debug)]
pub struct Tracked<B> {
    inner: B,
    _in_flight: InFlight,
}

impl<B> Tracked<B> {
    /// `inner`, holding `in_flight`.
    pub fn new(inner: B, in_flight: InFlight) -> Self {
        Tracked {
            inner,
            _in_flight: in_flight,
        }
    }
}

impl<B: Body + Unpin> Body for Tracked<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<B::Data>, B::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// A client's stream, telling its `Activity` of every read.
#[derive(Debug)]
pub struct Watched<I> {
    inner: I,
    activity: Arc<Activity>,
}

impl<I> Watched<I> {
    /// `inner`, watched by `activity`.
    pub fn new(inner: I, activity: Arc<Activity>) -> Self {
        Watched { inner, activity }
    }
}

impl<I: AsyncRead + Unpin> AsyncRead for Watched<I> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(polled, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.activity.bytes_read(&buf.filled()[before..]);
        }
        polled
    }
}

impl<I: AsyncWrite + Unpin> AsyncWrite for Watched<I> {
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
        bufs: &[std::io::IoSlice<'_>],
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
    use crate::proxy::stats::ProxyStats;

    fn activity(header_ms: u64, keepalive_ms: u64) -> Arc<Activity> {
        let stats = ProxyStats::default();
        let slot = stats.listener(false).admit(10, 10).unwrap();
        Arc::new(Activity::new(
            slot,
            Duration::from_millis(header_ms),
            Duration::from_millis(keepalive_ms),
        ))
    }

    #[tokio::test]
    async fn the_first_head_is_due_a_header_timeout_after_the_accept() {
        let a = activity(20, 60_000);
        assert_eq!(a.expired().await, Expiry::HeaderTimeout);
    }

    #[tokio::test]
    async fn a_busy_connection_is_never_due_and_idles_out_after() {
        let a = activity(20, 20);
        let in_flight = a.request_started(Version::HTTP_11);
        let waiting = tokio::spawn({
            let a = a.clone();
            async move { a.expired().await }
        });
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(!waiting.is_finished(), "a request in flight was cut off");
        drop(in_flight);
        assert_eq!(waiting.await.unwrap(), Expiry::KeepAliveTimeout);
    }

    #[test]
    fn the_head_being_read_is_kept_and_bodies_are_not() {
        let a = activity(60_000, 60_000);
        a.bytes_read(b"POST / HTTP/1.1\r\nContent-Le");
        a.bytes_read(b"ngth: 1\r\n\r\n");
        assert!(a.with_head(|h| h.content_length));
        let in_flight = a.request_started(Version::HTTP_11);
        // A body, or a head pipelined behind it, is not kept while the request is in flight.
        a.bytes_read(b"GET /pipelined HTTP/1.1\r\n");
        assert!(a.with_head(|h| h.method.is_empty()));
        drop(in_flight);
        a.bytes_read(b"GET /next HTTP/1.1\r\n");
        assert_eq!(a.with_head(|h| h.target.to_vec()), b"/next");
    }

    #[tokio::test]
    async fn a_later_head_is_due_a_header_timeout_after_its_first_byte() {
        let a = activity(20, 60_000);
        drop(a.request_started(Version::HTTP_11));
        a.bytes_read(b"G");
        assert_eq!(a.expired().await, Expiry::HeaderTimeout);
        // HTTP/2 frames between requests are no head.
        let h2 = activity(20, 40);
        drop(h2.request_started(Version::HTTP_2));
        h2.bytes_read(b"\0");
        assert_eq!(h2.expired().await, Expiry::KeepAliveTimeout);
    }
}
