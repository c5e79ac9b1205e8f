//! LISTEN on `paas_releases`: a node running an app (`paas up`) hears of every release of it
//! (its own included) and reads the app's releases again; a newer current release made on
//! another node wakes `ReleaseLog::changes` (the API restarts the dynos with it). After a
//! lost connection it reconnects and reads again (what it missed meanwhile); a read every
//! `RELOAD_EVERY` besides bounds what a lost notification could cost.

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt as _;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_postgres::{AsyncMessage, NoTls};

use super::{PgReleases, RELEASES_CHANNEL};
use crate::config::PG_TIMEOUT;

/// A read of the app's releases at least this often, notified or not.
const RELOAD_EVERY: Duration = Duration::from_secs(10);

/// Waits before connecting again.
const RECONNECT_AFTER: Duration = Duration::from_millis(500);

/// Starts the listener of `releases`' app.
pub(crate) fn spawn_release_listener(releases: Arc<PgReleases>) -> JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            if let Err(e) = listen(&releases).await {
                tracing::warn!(error = %e, "release listener: reconnecting");
            }
            tokio::time::sleep(RECONNECT_AFTER).await;
        }
    })
}

async fn listen(releases: &PgReleases) -> Result<(), String> {
    let (client, mut connection) = tokio::time::timeout(
        PG_TIMEOUT,
        tokio_postgres::connect(releases.store().url(), NoTls),
    )
    .await
    .map_err(|_| "connect: timed out".to_owned())?
    .map_err(|e| format!("connect: {e}"))?;
    let (tx, mut rx) = mpsc::channel::<()>(16);
    let app_id = releases.app_id().to_owned();
    let pump = tokio::spawn(async move {
        let mut messages = futures_util::stream::poll_fn(move |cx| connection.poll_message(cx));
        while let Some(message) = messages.next().await {
            match message {
                Ok(AsyncMessage::Notification(n)) if n.payload() == app_id => {
                    // A full queue already holds a wake-up: this one is covered by it.
                    let _ = tx.try_send(());
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(error = %e, "release listener connection");
                    break;
                }
            }
        }
    });
    let result = async {
        tokio::time::timeout(
            PG_TIMEOUT,
            client.batch_execute(&format!("LISTEN {RELEASES_CHANNEL}")),
        )
        .await
        .map_err(|_| "LISTEN: timed out".to_owned())?
        .map_err(|e| format!("LISTEN: {e}"))?;
        let reload = || async { releases.reload().await.map_err(|e| e.to_string()) };
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
