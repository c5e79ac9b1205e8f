//! The bus reader of one node: an ordered consumer over the whole stream (made again from
//! the last sequence read when it fails: NATS restarted), each message's lines published
//! into this node's channel of the app, numbered from the stream sequence.
//!
//! A reader that hears nothing for a while asks the stream for its last sequence, and makes
//! its consumer again when that is past what it read (a consumer that did not survive a NATS
//! restart).
//!
//! A message of an app this node does not know yet (made on another node a moment ago, its
//! NOTIFY not yet here) makes the node read its configuration again first; an app still
//! unknown then is deleted, and its lines are skipped and counted.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use async_nats::jetstream::Context;
use async_nats::jetstream::consumer::{DeliverPolicy, pull};
use futures_util::StreamExt as _;
use logplex::Router;
use tokio::task::JoinHandle;

use super::{BusStats, codec};
use crate::config::PgStore;

/// How long the reader waits for a message before it checks that it is not stalled.
const STALL_CHECK: Duration = Duration::from_secs(2);

/// Waits before making the consumer again.
const RETRY_AFTER: Duration = Duration::from_millis(500);

/// App ids found unknown after a fresh read of the configuration, remembered so that a
/// deleted app's old messages do not each cost a read (bounded; forgotten when full).
const UNKNOWN_APPS: usize = 10_000;

/// Starts the reader of stream `stream` into `router`.
pub(crate) fn spawn_reader(
    js: Context,
    stream: String,
    router: Router,
    store: Arc<PgStore>,
    stats: Arc<BusStats>,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut unknown = HashSet::new();
        loop {
            if let Err(e) = read(&js, &stream, &router, &store, &stats, &mut unknown).await {
                tracing::warn!(error = %e, "bus reader: starting again");
            }
            tokio::time::sleep(RETRY_AFTER).await;
        }
    })
}

async fn read(
    js: &Context,
    stream: &str,
    router: &Router,
    store: &PgStore,
    stats: &BusStats,
    unknown: &mut HashSet<String>,
) -> Result<(), String> {
    let stream = js.get_stream(stream).await.map_err(|e| e.to_string())?;
    let after = stats.read_sequence.load(Ordering::Relaxed);
    let deliver_policy = match after {
        0 => DeliverPolicy::All,
        n => DeliverPolicy::ByStartSequence {
            start_sequence: n + 1,
        },
    };
    let consumer = stream
        .create_consumer(pull::OrderedConfig {
            deliver_policy,
            ..Default::default()
        })
        .await
        .map_err(|e| e.to_string())?;
    let mut messages = consumer.messages().await.map_err(|e| e.to_string())?;
    let mut stream = stream;
    loop {
        let next = match tokio::time::timeout(STALL_CHECK, messages.next()).await {
            Ok(Some(next)) => next,
            Ok(None) => break,
            Err(_quiet) => {
                // Quiet: fine when the stream has nothing newer; otherwise the consumer has
                // stalled (a NATS restart it did not recover from) and is made again.
                let last = stream
                    .info()
                    .await
                    .map_err(|e| e.to_string())?
                    .state
                    .last_sequence;
                if last > stats.read_sequence.load(Ordering::Relaxed) {
                    return Err(format!("the consumer stalled below stream sequence {last}"));
                }
                continue;
            }
        };
        let message = next.map_err(|e| e.to_string())?;
        let sequence = match message.info() {
            Ok(info) => info.stream_sequence,
            Err(e) => return Err(format!("message info: {e}")),
        };
        let app_id = message.subject.rsplit('.').next().unwrap_or("");
        let channel = match router.channel_by_id(app_id) {
            Some(c) => Some(c),
            None if unknown.contains(app_id) => None,
            None => {
                if let Err(e) = store.reload_into(router).await {
                    tracing::warn!(error = %e, "bus reader: reading the configuration");
                }
                let found = router.channel_by_id(app_id);
                if found.is_none() {
                    if unknown.len() >= UNKNOWN_APPS {
                        unknown.clear();
                    }
                    unknown.insert(app_id.to_owned());
                }
                found
            }
        };
        match channel {
            Some(channel) => {
                match codec::decode(message.payload.clone(), channel.app(), sequence) {
                    Ok(lines) => {
                        let n = channel.publish_numbered(lines);
                        stats.read_lines.fetch_add(n as u64, Ordering::Relaxed);
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, sequence, "bus message skipped");
                        stats.undecodable.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
            None => {
                stats.unknown_app_messages.fetch_add(1, Ordering::Relaxed);
            }
        }
        stats.read_sequence.store(sequence, Ordering::Relaxed);
    }
    Err("the consumer's messages ended".to_owned())
}
