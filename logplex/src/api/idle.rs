//! Idle API connections are closed. A connection with no request in progress that has read
//! and written nothing for the idle timeout reads as ended, and hyper closes it: HTTP/1.1
//! before its first request (which hyper's header timeout does not cover) or between
//! requests, HTTP/2 with no stream open. A request in progress is never idle, however quiet:
//! its body has its own deadline, and a log session's stream its keep-alive and `tail_max`.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body as HttpBody, Frame, SizeHint};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

use crate::api::response::Body;

/// What a connection's requests and its IO share: how many requests are in progress, when the
/// last one ended, and whether the connection was closed for idling.
#[derive(Debug)]
pub(crate) struct Activity {
    base: Instant,
    busy: AtomicUsize,
    /// Milliseconds from `base` to the end of the last request.
    done_ms: AtomicU64,
    expired: AtomicBool,
}

impl Activity {
    pub(crate) fn new() -> Arc<Self> {
        Arc::new(Activity {
            base: Instant::now(),
            busy: AtomicUsize::new(0),
            done_ms: AtomicU64::new(0),
            expired: AtomicBool::new(false),
        })
    }

    /// A request begins; it is in progress until the guard drops (with its response body).
    pub(crate) fn enter(self: &Arc<Self>) -> Busy {
        self.busy.fetch_add(1, Ordering::AcqRel);
        Busy(self.clone())
    }

    /// Whether the connection was closed for idling.
    pub(crate) fn expired(&self) -> bool {
        self.expired.load(Ordering::Relaxed)
    }

    fn last_done(&self) -> Instant {
        self.base + Duration::from_millis(self.done_ms.load(Ordering::Acquire))
    }
}

/// A request in progress.
#[derive(Debug)]
pub(crate) struct Busy(Arc<Activity>);

impl Drop for Busy {
    fn drop(&mut self) {
        let ms = self.0.base.elapsed().as_millis() as u64;
        self.0.done_ms.fetch_max(ms, Ordering::AcqRel);
        self.0.busy.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A response body that keeps its request in progress until hyper is done with it.
pub(crate) fn guarded(body: Body, busy: Busy) -> Body {
    http_body_util::BodyExt::boxed(Guarded { body, _busy: busy })
}

struct Guarded {
    body: Body,
    _busy: Busy,
}

impl HttpBody for Guarded {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

/// A connection's IO that ends (reads as EOF) once idle for `timeout`.
pub(crate) struct IdleIo<S> {
    inner: S,
    activity: Arc<Activity>,
    timeout: Duration,
    last_io: Instant,
    sleep: Pin<Box<Sleep>>,
}

impl<S> IdleIo<S> {
    pub(crate) fn new(inner: S, activity: Arc<Activity>, timeout: Duration) -> Self {
        let now = Instant::now();
        IdleIo {
            inner,
            activity,
            timeout,
            last_io: now,
            sleep: Box::pin(tokio::time::sleep_until(now + timeout)),
        }
    }

    /// Whether the connection has been idle for the timeout; if not, arms the timer to look
    /// again (at the idle deadline, or a timeout from now while a request is in progress).
    fn idle_expired(&mut self, cx: &mut Context<'_>) -> bool {
        let now = Instant::now();
        let deadline = if self.activity.busy.load(Ordering::Acquire) > 0 {
            now + self.timeout
        } else {
            let since = self.last_io.max(self.activity.last_done());
            if since + self.timeout <= now {
                self.activity.expired.store(true, Ordering::Relaxed);
                return true;
            }
            since + self.timeout
        };
        if self.sleep.deadline() != deadline {
            self.sleep.as_mut().reset(deadline);
        }
        if self.sleep.as_mut().poll(cx).is_ready() {
            cx.waker().wake_by_ref();
        }
        false
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for IdleIo<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        match Pin::new(&mut this.inner).poll_read(cx, buf) {
            Poll::Ready(r) => {
                if buf.filled().len() > before {
                    this.last_io = Instant::now();
                }
                Poll::Ready(r)
            }
            // Idle too long: read as the end of the connection.
            Poll::Pending if this.idle_expired(cx) => Poll::Ready(Ok(())),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for IdleIo<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let r = Pin::new(&mut this.inner).poll_write(cx, buf);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            this.last_io = Instant::now();
        }
        r
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let r = Pin::new(&mut this.inner).poll_write_vectored(cx, bufs);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            this.last_io = Instant::now();
        }
        r
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    }

    #[test]
    fn an_idle_connection_reads_as_ended() {
        runtime().block_on(async {
            let (a, _b) = tokio::io::duplex(64);
            let activity = Activity::new();
            let mut io = IdleIo::new(a, activity.clone(), Duration::from_millis(50));
            let mut buf = [0u8; 8];
            assert_eq!(io.read(&mut buf).await.unwrap(), 0);
            assert!(activity.expired());
        });
    }

    #[test]
    fn a_request_in_progress_is_never_idle() {
        runtime().block_on(async {
            let (a, mut b) = tokio::io::duplex(64);
            let activity = Activity::new();
            let mut io = IdleIo::new(a, activity.clone(), Duration::from_millis(30));
            let busy = activity.enter();
            let mut buf = [0u8; 8];
            let read = tokio::time::timeout(Duration::from_millis(200), io.read(&mut buf));
            assert!(read.await.is_err(), "still waiting after many timeouts");
            // Once it ends, the timeout counts from its end.
            drop(busy);
            b.write_all(b"x").await.unwrap();
            assert_eq!(io.read(&mut buf).await.unwrap(), 1);
            assert_eq!(io.read(&mut buf).await.unwrap(), 0);
            assert!(activity.expired());
        });
    }
}
