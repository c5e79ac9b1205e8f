//! The bodies on the way through, streamed as they come (nothing is buffered), each watched:
//! the request's for a client that goes quiet (H28) or away (H27), the response's for a dyno
//! that goes quiet mid-response (H15); and the one router line each request gets, written when
//! the response's last byte is sent, on a failure, or, if the client went away first, as H27.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;
use logplex::Emitter;
use tokio::sync::Notify;
use tokio::time::Sleep;

use crate::errors::ProxyError;
use crate::mesh::Lease;
use crate::proxy::cached::Keep;
use crate::proxy::line::RouterLine;

/// The error type of bodies here.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A request's router line, written exactly once.
#[derive(Debug)]
pub struct Recorder {
    line: RouterLine,
    /// When the request went to the dyno (the start of `service=`).
    sent: Option<Instant>,
    emitter: Emitter,
    written: bool,
}

impl Recorder {
    /// A line to be written into `emitter` (the app's `paas` source, process `router`).
    pub fn new(line: RouterLine, emitter: Emitter) -> Self {
        Recorder {
            line,
            sent: None,
            emitter,
            written: false,
        }
    }

    /// The line so far.
    pub fn line_mut(&mut self) -> &mut RouterLine {
        &mut self.line
    }

    /// The request is on its way to `dyno`, after `connect`.
    pub fn sent(&mut self, dyno: &str, connect: Duration, at: Instant) {
        self.line.dyno.clear();
        self.line.dyno.push_str(dyno);
        self.line.connect = Some(connect);
        self.sent = Some(at);
    }

    fn service(&self) -> Option<Duration> {
        self.sent.map(|s| s.elapsed())
    }

    /// The request is answered here (the cache), from `at` (the start of `service=`).
    pub fn served_here(&mut self, at: Instant) {
        self.line.dyno.clear();
        self.line.connect = Some(Duration::ZERO);
        self.sent = Some(at);
    }

    /// The request failed with `error`, but an answer (`status`, `bytes`) was sent all the
    /// same (a stale one from the cache): the line has both.
    pub fn fail_answered(&mut self, error: ProxyError, status: u16, bytes: u64) {
        self.line.error = Some(error);
        self.line.status = status;
        self.line.bytes = bytes;
        self.line.service = self.service();
        self.write();
    }

    /// The response ended well: `status`, `bytes` of body.
    pub fn finish(&mut self, status: u16, bytes: u64) {
        self.line.status = status;
        self.line.bytes = bytes;
        self.line.service = self.service();
        self.write();
    }

    /// The request failed: its line has the failure's code, and `status` (the failure's own
    /// unless a response had already begun).
    pub fn fail(&mut self, error: ProxyError, bytes: u64) {
        self.line.error = Some(error);
        self.line.status = error.status();
        self.line.bytes = bytes;
        if self.line.service.is_none() {
            self.line.service = self.service();
        }
        self.write();
    }

    fn write(&mut self) {
        if !self.written {
            self.written = true;
            let _ = self.emitter.try_emit("router", self.line.to_text());
        }
    }
}

impl Drop for Recorder {
    /// A request whose line was never written lost its client before the end (H27).
    fn drop(&mut self) {
        if !self.written {
            let bytes = self.line.bytes;
            self.fail(ProxyError::ClientInterrupted, bytes);
        }
    }
}

/// What the proxy knows of a request's client side as it is sent on: whether the whole body
/// has been read from the client (the request timeout counts from then, as Heroku's does), and
/// why it failed, if it did (H27, H28).
#[derive(Clone, Debug, Default)]
pub struct ClientSide(Arc<Shared>);

#[derive(Debug, Default)]
struct Shared {
    fault: AtomicU8,
    sent: AtomicBool,
    sent_notify: Notify,
}

impl ClientSide {
    const GONE: u8 = 1;
    const IDLE: u8 = 2;

    /// H27 (the client went away while sending) or H28 (it went quiet), if either happened.
    pub fn fault(&self) -> Option<ProxyError> {
        match self.0.fault.load(Ordering::Acquire) {
            Self::GONE => Some(ProxyError::ClientInterrupted),
            Self::IDLE => Some(ProxyError::ClientIdle),
            _ => None,
        }
    }

    fn set_fault(&self, fault: u8) {
        let _ = self
            .0
            .fault
            .compare_exchange(0, fault, Ordering::AcqRel, Ordering::Acquire);
    }

    fn set_sent(&self) {
        if !self.0.sent.swap(true, Ordering::AcqRel) {
            self.0.sent_notify.notify_waiters();
        }
    }

    /// Resolves once the whole request has been read from the client.
    pub async fn sent(&self) {
        loop {
            let notified = self.0.sent_notify.notified();
            if self.0.sent.load(Ordering::Acquire) {
                return;
            }
            notified.await;
        }
    }
}

/// A rolling idle window: each byte moves it on. The timer is armed only when the body has to
/// wait (a body that is always ready, as most are, costs no timer).
#[derive(Debug)]
struct Idle {
    window: Duration,
    sleep: Option<Pin<Box<Sleep>>>,
}

impl Idle {
    fn new(window: Duration) -> Self {
        Idle {
            window,
            sleep: None,
        }
    }

    /// Bytes came: the window starts again at the next wait.
    fn reset(&mut self) {
        if let Some(sleep) = self.sleep.as_mut() {
            let deadline = tokio::time::Instant::now() + self.window;
            sleep.as_mut().reset(deadline);
        }
    }

    /// The body has to wait: whether the window has passed (the waker is registered if not).
    fn expired(&mut self, cx: &mut Context<'_>) -> bool {
        let window = self.window;
        let sleep = self
            .sleep
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(window)));
        sleep.as_mut().poll(cx).is_ready()
    }
}

use std::future::Future as _;

/// The client's request body on its way to the dyno.
#[derive(Debug)]
pub struct RequestBody {
    inner: Option<Incoming>,
    idle: Idle,
    client: ClientSide,
}

impl RequestBody {
    /// Watches `inner`, which may be quiet for `idle` at most.
    pub fn new(inner: Incoming, idle: Duration, client: ClientSide) -> Self {
        if inner.is_end_stream() {
            client.set_sent();
        }
        RequestBody {
            inner: Some(inner),
            idle: Idle::new(idle),
            client,
        }
    }
}

impl Body for RequestBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        let Some(inner) = this.inner.as_mut() else {
            return Poll::Ready(None);
        };
        match Pin::new(&mut *inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                this.idle.reset();
                if inner.is_end_stream() {
                    this.client.set_sent();
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => {
                this.client.set_fault(ClientSide::GONE);
                Poll::Ready(Some(Err(e.into())))
            }
            Poll::Ready(None) => {
                this.client.set_sent();
                Poll::Ready(None)
            }
            Poll::Pending => {
                if this.idle.expired(cx) {
                    this.client.set_fault(ClientSide::IDLE);
                    return Poll::Ready(Some(Err(
                        "the client sent nothing within the idle window".into(),
                    )));
                }
                Poll::Pending
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.as_ref().is_none_or(|b| b.is_end_stream())
    }

    fn size_hint(&self) -> SizeHint {
        self.inner
            .as_ref()
            .map_or_else(|| SizeHint::with_exact(0), |b| b.size_hint())
    }
}

/// A response on its way to the client: the dyno's body, watched, or the proxy's own.
#[derive(Debug)]
pub struct ResponseBody {
    kind: Kind,
}

// One per response, moved once: boxing the common variant would cost an allocation a request.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
enum Kind {
    Full(Option<Bytes>),
    Dyno {
        inner: Incoming,
        idle: Idle,
        status: u16,
        bytes: u64,
        recorder: Option<Recorder>,
        /// The dyno's in-flight slot, held until the body ends.
        _lease: Lease,
        /// The HTTP cache's copy, kept as the body passes.
        keep: Option<Keep>,
    },
}

impl ResponseBody {
    /// The proxy's own body.
    pub fn full(bytes: impl Into<Bytes>) -> Self {
        ResponseBody {
            kind: Kind::Full(Some(bytes.into())),
        }
    }

    /// The dyno's body with status `status`; the request's line is written when it ends.
    pub fn dyno(
        inner: Incoming,
        idle: Duration,
        status: u16,
        recorder: Recorder,
        lease: Lease,
        keep: Option<Keep>,
    ) -> Self {
        let mut recorder = Some(recorder);
        // An empty body (204, HEAD, Content-Length: 0) may never be polled.
        let mut keep = keep;
        if inner.is_end_stream() {
            if let Some(r) = recorder.as_mut() {
                r.finish(status, 0);
            }
            if let Some(k) = keep.take() {
                k.finish();
            }
        }
        ResponseBody {
            kind: Kind::Dyno {
                inner,
                idle: Idle::new(idle),
                status,
                bytes: 0,
                recorder,
                _lease: lease,
                keep,
            },
        }
    }
}

impl Body for ResponseBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        match &mut self.kind {
            Kind::Full(bytes) => Poll::Ready(bytes.take().map(|b| Ok(Frame::data(b)))),
            Kind::Dyno {
                inner,
                idle,
                status,
                bytes,
                recorder,
                keep,
                ..
            } => {
                let polled = Pin::new(&mut *inner).poll_frame(cx);
                let Poll::Ready(frame) = polled else {
                    if idle.expired(cx) {
                        if let Some(mut r) = recorder.take() {
                            r.fail(ProxyError::IdleConnection, *bytes);
                        }
                        return Poll::Ready(Some(Err(
                            "the dyno sent nothing within the idle window".into(),
                        )));
                    }
                    return Poll::Pending;
                };
                match frame {
                    Some(Ok(frame)) => {
                        idle.reset();
                        if let Some(data) = frame.data_ref() {
                            *bytes += data.len() as u64;
                            if let Some(k) = keep.as_mut() {
                                k.push(data);
                            }
                        }
                        // A body of known length is done with its last byte: HTTP/1 stops
                        // polling there.
                        if inner.is_end_stream() {
                            if let Some(mut r) = recorder.take() {
                                r.finish(*status, *bytes);
                            }
                            if let Some(k) = keep.take() {
                                k.finish();
                            }
                        }
                        Poll::Ready(Some(Ok(frame)))
                    }
                    Some(Err(e)) => {
                        if let Some(mut r) = recorder.take() {
                            r.fail(ProxyError::ConnectionClosedWithoutResponse, *bytes);
                        }
                        Poll::Ready(Some(Err(e.into())))
                    }
                    None => {
                        if let Some(mut r) = recorder.take() {
                            r.finish(*status, *bytes);
                        }
                        if let Some(k) = keep.take() {
                            k.finish();
                        }
                        Poll::Ready(None)
                    }
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        // A dyno's body reports its end by returning `None` (so that its line is written).
        matches!(&self.kind, Kind::Full(None))
    }

    fn size_hint(&self) -> SizeHint {
        match &self.kind {
            Kind::Full(b) => SizeHint::with_exact(b.as_ref().map_or(0, |b| b.len() as u64)),
            Kind::Dyno { inner, .. } => inner.size_hint(),
        }
    }
}

impl Drop for ResponseBody {
    /// A body dropped before its end: the client went away; its line says how far it got.
    fn drop(&mut self) {
        if let Kind::Dyno {
            bytes,
            recorder: Some(r),
            ..
        } = &mut self.kind
        {
            r.line.bytes = *bytes;
        }
    }
}
