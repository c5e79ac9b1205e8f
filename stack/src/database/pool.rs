//! A bounded pool of server connections for one database and user: at most `size` open at
//! once, clients past that wait in a FIFO queue (a semaphore's) up to the pool timeout, and a
//! connection goes back to the idle list only when it is idle (`ReadyForQuery` said `I`) and
//! whole; anything else closes it, so a connection is never handed to another client
//! mid-transaction.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::server::{ServerConn, ServerError, ServerTarget};
use super::stats::DatabaseStats;

/// An idle connection is checked before reuse once it has been idle this long.
const RECHECK_AFTER: Duration = Duration::from_secs(1);

/// Why no server connection was had.
#[derive(Debug, thiserror::Error)]
pub enum PoolError {
    /// Every connection stayed busy for the whole pool timeout.
    #[error(
        "no database connection became free within {0:?} (the pool has {1} connections, all busy)"
    )]
    Timeout(Duration, usize),
    /// Opening a new connection failed.
    #[error(transparent)]
    Server(#[from] ServerError),
}

/// How the pool is set.
#[derive(Clone, Debug)]
pub struct PoolConfig {
    /// Server connections at most.
    pub size: usize,
    /// How long a client waits for one.
    pub timeout: Duration,
    /// How long opening one may take.
    pub connect_timeout: Duration,
    /// Idle connections older than this are closed rather than reused.
    pub idle_timeout: Duration,
}

/// One database and user's pool.
#[derive(Debug)]
pub struct Pool {
    target: ServerTarget,
    config: PoolConfig,
    permits: Arc<Semaphore>,
    idle: Mutex<Vec<ServerConn>>,
    /// The parameters the server reported on the first connection (sent to clients).
    params: Mutex<Option<BTreeMap<String, String>>>,
    /// Server connections open (idle and in use).
    pub servers: AtomicU64,
    /// Clients connected to this pool.
    pub clients: AtomicU64,
    /// Clients waiting for a server connection now.
    pub waiting: AtomicU64,
    /// The longest wait since the last sample, in microseconds.
    pub max_wait_us: AtomicU64,
    stats: Arc<DatabaseStats>,
}

/// A server connection lent to one client, with its place in the pool. Dropped without
/// [`Checkout::release`], the connection is closed.
#[derive(Debug)]
pub struct Checkout {
    /// The connection.
    pub conn: ServerConn,
    slot: Slot,
}

/// A checkout's place: its permit, and the close it counts when dropped unless reused.
#[derive(Debug)]
struct Slot {
    pool: Arc<Pool>,
    reused: bool,
    _permit: OwnedSemaphorePermit,
}

impl Drop for Slot {
    fn drop(&mut self) {
        if !self.reused {
            self.pool.closed();
        }
    }
}

impl Pool {
    /// An empty pool.
    pub fn new(target: ServerTarget, config: PoolConfig, stats: Arc<DatabaseStats>) -> Arc<Pool> {
        Arc::new(Pool {
            target,
            permits: Arc::new(Semaphore::new(config.size.max(1))),
            config,
            idle: Mutex::new(Vec::new()),
            params: Mutex::new(None),
            servers: AtomicU64::new(0),
            clients: AtomicU64::new(0),
            waiting: AtomicU64::new(0),
            max_wait_us: AtomicU64::new(0),
            stats,
        })
    }

    /// The pool's size.
    pub fn size(&self) -> usize {
        self.config.size
    }

    /// The server's startup parameters (from a connection opened for it if none was yet).
    pub async fn params(self: &Arc<Self>) -> Result<BTreeMap<String, String>, PoolError> {
        if let Some(p) = lock(&self.params).clone() {
            return Ok(p);
        }
        let c = self.get().await?;
        let p = c.conn.params.clone();
        c.release();
        Ok(p)
    }

    /// A connection: an idle one that still looks alive, else a new one; waits in line up to
    /// the pool timeout when all are in use.
    pub async fn get(self: &Arc<Self>) -> Result<Checkout, PoolError> {
        let started = Instant::now();
        let permit = match self.permits.clone().try_acquire_owned() {
            Ok(p) => p,
            Err(_) => {
                self.waiting.fetch_add(1, Ordering::Relaxed);
                let got =
                    tokio::time::timeout(self.config.timeout, self.permits.clone().acquire_owned())
                        .await;
                self.waiting.fetch_sub(1, Ordering::Relaxed);
                self.max_wait_us.fetch_max(
                    started.elapsed().as_micros().min(u64::MAX.into()) as u64,
                    Ordering::Relaxed,
                );
                match got {
                    Ok(Ok(p)) => p,
                    _ => {
                        self.stats.pool_timeouts.fetch_add(1, Ordering::Relaxed);
                        return Err(PoolError::Timeout(self.config.timeout, self.config.size));
                    }
                }
            }
        };
        loop {
            let Some(mut conn) = lock(&self.idle).pop() else {
                break;
            };
            // Checked without a round trip, and only past a second idle (a busy pool's
            // connections come back within microseconds; a dead one is then the client's
            // error, as with PgBouncer's server_check_delay).
            let idle = conn.idle_since.elapsed();
            if idle < self.config.idle_timeout && (idle < RECHECK_AFTER || conn.looks_alive()) {
                return Ok(Checkout::new(conn, self.clone(), permit));
            }
            self.closed();
        }
        let conn = match ServerConn::connect(&self.target, self.config.connect_timeout).await {
            Ok(c) => c,
            Err(e) => {
                self.stats
                    .server_connect_errors
                    .fetch_add(1, Ordering::Relaxed);
                return Err(e.into());
            }
        };
        self.servers.fetch_add(1, Ordering::Relaxed);
        self.stats.server_opened.fetch_add(1, Ordering::Relaxed);
        let mut params = lock(&self.params);
        if params.is_none() {
            *params = Some(conn.params.clone());
        }
        drop(params);
        Ok(Checkout::new(conn, self.clone(), permit))
    }

    fn closed(&self) {
        self.servers.fetch_sub(1, Ordering::Relaxed);
        self.stats.server_closed.fetch_add(1, Ordering::Relaxed);
    }

    /// Closes the idle connections (at a stop).
    pub fn close_idle(&self) {
        let idle = std::mem::take(&mut *lock(&self.idle));
        for _ in idle {
            self.closed();
        }
    }

    /// Idle connections now.
    pub fn idle_count(&self) -> usize {
        lock(&self.idle).len()
    }
}

impl Checkout {
    fn new(conn: ServerConn, pool: Arc<Pool>, permit: OwnedSemaphorePermit) -> Checkout {
        Checkout {
            conn,
            slot: Slot {
                pool,
                reused: false,
                _permit: permit,
            },
        }
    }

    /// Gives the connection back for reuse if it is idle and whole; else closes it.
    pub fn release(self) {
        let Checkout { mut conn, mut slot } = self;
        if conn.idle && conn.buf.is_empty() {
            conn.idle_since = Instant::now();
            lock(&slot.pool.idle).push(conn);
            slot.reused = true;
        }
        // The permit goes back after the connection is in the idle list.
        drop(slot);
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}
