//! One proxy thread's keep-alive connections to dynos. Each thread owns its pool (no lock, no
//! task per connection): a connection is taken for one exchange and given back when the
//! exchange left it clean (the whole response read, the dyno keeping it open). A connection
//! idle past its time, or that the dyno closed (or sent something unasked) while it waited,
//! is dropped when found; at most `per_dyno` wait for each dyno.

use std::cell::RefCell;
use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tokio::net::TcpStream;

/// Idle connections to dynos, by address.
#[derive(Debug)]
pub(crate) struct Pool {
    /// Oldest first (each is given back later than the one before it).
    idle: RefCell<HashMap<SocketAddr, VecDeque<Idle>>>,
    per_dyno: usize,
    idle_for: Duration,
}

#[derive(Debug)]
struct Idle {
    stream: TcpStream,
    since: Instant,
}

impl Pool {
    /// A pool keeping at most `per_dyno` connections to each dyno, each for `idle_for`.
    pub(crate) fn new(per_dyno: usize, idle_for: Duration) -> Self {
        Pool {
            idle: RefCell::default(),
            per_dyno,
            idle_for,
        }
    }

    /// A connection to `addr` that is still open and quiet, the most recently used first.
    pub(crate) fn take(&self, addr: SocketAddr) -> Option<TcpStream> {
        let mut idle = self.idle.borrow_mut();
        let waiting = idle.get_mut(&addr)?;
        while let Some(Idle { stream, since }) = waiting.pop_back() {
            if since.elapsed() >= self.idle_for {
                continue;
            }
            // Quiet: nothing to read (and not closed). Readiness is known without a system
            // call unless the socket has had an event since the last read ended short.
            match stream.try_read(&mut [0u8; 1]) {
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return Some(stream),
                _ => continue,
            }
        }
        None
    }

    /// Gives back a connection to `addr` after a clean exchange.
    pub(crate) fn give_back(&self, addr: SocketAddr, stream: TcpStream) {
        let mut idle = self.idle.borrow_mut();
        let waiting = idle.entry(addr).or_default();
        // The oldest are dropped first: those idle too long, then over the cap (one look at
        // the clock: they are in the order they were given back).
        let now = Instant::now();
        while waiting
            .front()
            .is_some_and(|c| now.duration_since(c.since) >= self.idle_for)
        {
            waiting.pop_front();
        }
        if waiting.len() >= self.per_dyno {
            if self.per_dyno == 0 {
                return;
            }
            waiting.pop_front();
        }
        waiting.push_back(Idle { stream, since: now });
    }

    /// Connections waiting, over all dynos.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.idle.borrow().values().map(VecDeque::len).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;
    use tokio::net::TcpListener;

    #[tokio::test]
    async fn a_connection_the_dyno_closed_or_wrote_on_is_not_handed_out() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let pool = Pool::new(4, Duration::from_secs(60));
        let mut kept = Vec::new();
        for _ in 0..3 {
            let client = TcpStream::connect(addr).await.unwrap();
            let (server, _) = listener.accept().await.unwrap();
            pool.give_back(addr, client);
            kept.push(server);
        }
        // One closed by the dyno, one with unasked bytes, one quiet.
        let mut quiet = kept.remove(0);
        let mut chatty = kept.remove(0);
        chatty.write_all(b"HTTP/1.1 200 OK\r\n").await.unwrap();
        drop(kept);
        tokio::time::sleep(Duration::from_millis(50)).await;
        let got = pool.take(addr).expect("the quiet connection");
        assert_eq!(pool.len(), 0);
        quiet.write_all(b"x").await.unwrap();
        drop(got);
        assert!(pool.take(addr).is_none());
        let _ = chatty.shutdown().await;
    }

    #[tokio::test]
    async fn connections_past_the_cap_or_their_idle_time_are_dropped() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let pool = Pool::new(2, Duration::from_millis(100));
        let mut servers = Vec::new();
        for _ in 0..3 {
            pool.give_back(addr, TcpStream::connect(addr).await.unwrap());
            servers.push(listener.accept().await.unwrap().0);
        }
        assert_eq!(pool.len(), 2);
        tokio::time::sleep(Duration::from_millis(150)).await;
        assert!(pool.take(addr).is_none());
    }
}
