//! LISTEN on `paas_releases`: a node running an app (`paas up`) hears of every release of it
//! (its own included) and reads the app's releases again; a newer current release made on
//! another node wakes `ReleaseLog::changes` (the API restarts the dynos with it). After a
//! lost connection it reconnects and reads again (what it missed meanwhile); a read every
//! 10 s besides bounds what a lost notification could cost (`listen_on`, as the
//! configuration's listener).

use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinHandle;

use super::{PgReleases, RELEASES_CHANNEL};
use crate::config::listen::listen_on;

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
    let app_id = releases.app_id().to_owned();
    listen_on(
        releases.store().url(),
        RELEASES_CHANNEL,
        move |payload| payload == app_id,
        "release",
        || async { releases.reload().await.map_err(|e| e.to_string()) },
    )
    .await
}
