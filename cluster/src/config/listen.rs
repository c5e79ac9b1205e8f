//! LISTEN/NOTIFY: every node hears of every change (its own included) on `paas_config` and
//! reads the configuration whole again, applying the difference to its registry in memory.
//! After a lost connection (PostgreSQL restarted) it reconnects, reads again (what it missed
//! meanwhile), and listens on; a read every `RELOAD_EVERY` besides bounds what a lost
//! notification could cost.

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt as _;
use logplex::Router;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_postgres::{AsyncMessage, NoTls};

use super::{CHANNEL, PG_TIMEOUT, PgStore};

/// A read of the whole configuration at least this often, notified or not.
const RELOAD_EVERY: Duration = Duration::from_secs(10);

/// Waits before connecting again.
const RECONNECT_AFTER: Duration = Duration::from_millis(500);

/// Starts the listener of `store`'s changes into `router`.
pub(crate) fn spawn_listener(store: Arc<PgStore>, router: Router) -> JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            if let Err(e) = listen(&store, &router).await {
                tracing::warn!(error = %e, "configuration listener: reconnecting");
            }
            store.set_healthy(false);
            tokio::time::sleep(RECONNECT_AFTER).await;
        }
    })
}

/// Reads the whole configuration and applies it.
async fn reload(store: &PgStore, router: &Router) -> Result<(), String> {
    let changed = store.reload_into(router).await.map_err(|e| e.to_string())?;
    store.set_healthy(true);
    if changed {
        tracing::debug!("configuration changed");
    }
    store.sync_drains().await.map_err(|e| e.to_string())
}

async fn listen(store: &PgStore, router: &Router) -> Result<(), String> {
    listen_on(
        store.url(),
        CHANNEL,
        |_| true,
        "configuration",
        || reload(store, router),
    )
    .await
}

/// LISTENs on `channel` over a connection of its own to `url`, and calls `reload` at once,
/// on each notice whose payload `wanted` accepts (notices that came meanwhile folded into
/// one), and every `RELOAD_EVERY`; until the connection or a reload fails. `what` names the
/// listener in warnings.
pub(crate) async fn listen_on<F, Fut>(
    url: &str,
    channel: &str,
    wanted: impl Fn(&str) -> bool + Send + 'static,
    what: &'static str,
    mut reload: F,
) -> Result<(), String>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<(), String>>,
{
    let (client, mut connection) =
        tokio::time::timeout(PG_TIMEOUT, tokio_postgres::connect(url, NoTls))
            .await
            .map_err(|_| "connect: timed out".to_owned())?
            .map_err(|e| format!("connect: {e}"))?;
    let (tx, mut rx) = mpsc::channel::<()>(16);
    let pump = tokio::spawn(async move {
        let mut messages = futures_util::stream::poll_fn(move |cx| connection.poll_message(cx));
        while let Some(message) = messages.next().await {
            match message {
                Ok(AsyncMessage::Notification(n)) if wanted(n.payload()) => {
                    // A full queue already holds a wake-up: this one is covered by it.
                    let _ = tx.try_send(());
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(error = %e, "{what} listener connection");
                    break;
                }
            }
        }
    });
    let result = async {
        tokio::time::timeout(
            PG_TIMEOUT,
            client.batch_execute(&format!("LISTEN {channel}")),
        )
        .await
        .map_err(|_| "LISTEN: timed out".to_owned())?
        .map_err(|e| format!("LISTEN: {e}"))?;
        reload().await?;
        let mut every = tokio::time::interval(RELOAD_EVERY);
        every.tick().await;
        loop {
            tokio::select! {
                woke = rx.recv() => {
                    if woke.is_none() {
                        return Err("connection lost".to_owned());
                    }
                    while rx.try_recv().is_ok() {}
                    reload().await?;
                }
                _ = every.tick() => reload().await?,
            }
        }
    }
    .await;
    pump.abort();
    result
}
