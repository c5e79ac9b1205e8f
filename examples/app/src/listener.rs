//! The accept loop, and the two ways a route can break it on purpose: stop listening
//! (`/unlisten`: connects are refused, H21) or stop accepting with a full queue
//! (`/stall-accept`: connects hang, H19). Connections already accepted carry on either way.

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::{mpsc, oneshot};

use crate::events::{self, AcceptFailed};

/// How many connections `/stall-accept` opens to its own port at most; the queue of a listener
/// with backlog 1 is full after two on Linux.
const STALL_CONNECTIONS: usize = 8;
/// How long one of those connects may take before the queue counts as full.
const STALL_CONNECT_TIMEOUT: Duration = Duration::from_millis(100);

/// Changes the accept loop's listener from a route; each call returns once the change is made.
#[derive(Clone, Debug)]
pub(crate) struct ListenerControl(mpsc::Sender<Command>);

#[derive(Debug)]
struct Command {
    change: Change,
    done: oneshot::Sender<io::Result<()>>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Change {
    Unlisten,
    StallAccept,
}

impl ListenerControl {
    /// Closes the listener: connects to the port are refused from now on.
    pub(crate) async fn unlisten(&self) -> io::Result<()> {
        self.send(Change::Unlisten).await
    }

    /// Replaces the listener with one that never accepts and whose queue is full: connects
    /// to the port hang from now on.
    pub(crate) async fn stall_accept(&self) -> io::Result<()> {
        self.send(Change::StallAccept).await
    }

    async fn send(&self, change: Change) -> io::Result<()> {
        let stopped = || io::Error::other("the accept loop has stopped");
        let (done, result) = oneshot::channel();
        self.0
            .send(Command { change, done })
            .await
            .map_err(|_| stopped())?;
        result.await.map_err(|_| stopped())?
    }
}

/// What listens on the port.
#[derive(Debug)]
enum Accepting {
    Open(TcpListener),
    Closed,
    /// Held only to keep its sockets open.
    Stalled {
        _kept: StalledListener,
    },
}

/// A listener that never accepts, with connections of our own filling its queue.
#[derive(Debug)]
struct StalledListener {
    _listener: TcpListener,
    _held: Vec<TcpStream>,
}

/// The accept loop, changed through its [`ListenerControl`].
#[derive(Debug)]
pub(crate) struct AcceptLoop {
    listener: TcpListener,
    addr: SocketAddr,
    commands: mpsc::Receiver<Command>,
}

impl AcceptLoop {
    /// The loop for `listener`, bound to `addr`, and the handle that changes it.
    pub(crate) fn new(listener: TcpListener, addr: SocketAddr) -> (Self, ListenerControl) {
        let (control, commands) = mpsc::channel(4);
        (
            Self {
                listener,
                addr,
                commands,
            },
            ListenerControl(control),
        )
    }

    /// Hands each accepted connection to `on_accept`, for ever: once the listener is closed
    /// or stalled it goes on taking changes, so the process lives on.
    pub(crate) async fn run(mut self, on_accept: impl Fn(TcpStream)) {
        let mut state = Accepting::Open(self.listener);
        loop {
            let command = match &state {
                Accepting::Open(listener) => tokio::select! {
                    accepted = listener.accept() => {
                        match accepted {
                            Ok((stream, _)) => on_accept(stream),
                            Err(error) => {
                                // Out of descriptors, or a connection reset while queued.
                                let _ = events::emit(&AcceptFailed { error: &error });
                                tokio::time::sleep(Duration::from_millis(50)).await;
                            }
                        }
                        continue;
                    }
                    command = self.commands.recv() => command,
                },
                Accepting::Closed | Accepting::Stalled { .. } => self.commands.recv().await,
            };
            let Some(Command { change, done }) = command else {
                // Every control handle is gone: nothing can change the listener any more.
                return std::future::pending().await;
            };
            let (next, result) = apply(state, change, self.addr).await;
            state = next;
            let _ = done.send(result);
        }
    }
}

async fn apply(state: Accepting, change: Change, addr: SocketAddr) -> (Accepting, io::Result<()>) {
    match (change, state) {
        // Dropping the old state closes whatever listened.
        (Change::Unlisten, _) => (Accepting::Closed, Ok(())),
        (Change::StallAccept, stalled @ Accepting::Stalled { .. }) => (stalled, Ok(())),
        (Change::StallAccept, old) => {
            drop(old);
            match StalledListener::start(addr).await {
                Ok(stalled) => (Accepting::Stalled { _kept: stalled }, Ok(())),
                Err(error) => (Accepting::Closed, Err(error)),
            }
        }
    }
}

impl StalledListener {
    /// Listens on `addr` with backlog 1, then connects to it until a connect hangs: the
    /// kernel drops SYNs to a listener whose accept queue is full, so later connects hang.
    async fn start(addr: SocketAddr) -> io::Result<Self> {
        let socket = if addr.is_ipv4() {
            TcpSocket::new_v4()?
        } else {
            TcpSocket::new_v6()?
        };
        socket.set_reuseaddr(true)?;
        socket.bind(addr)?;
        let listener = socket.listen(1)?;
        let mut held = Vec::new();
        for _ in 0..STALL_CONNECTIONS {
            match tokio::time::timeout(STALL_CONNECT_TIMEOUT, TcpStream::connect(addr)).await {
                Ok(Ok(stream)) => held.push(stream),
                Ok(Err(error)) => return Err(error),
                Err(_elapsed) => break,
            }
        }
        Ok(Self {
            _listener: listener,
            _held: held,
        })
    }
}
