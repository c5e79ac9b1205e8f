//! `WorkQueue`: one JetStream durable pull consumer that every node pulls from, with explicit
//! acks: each message goes to one node at a time, and one a node took and never acknowledged
//! (it died) goes to another after the consumer's ack wait. What a drain's shared delivery
//! (`shared.rs`) and the shared router-wide consumers (`consumers.rs`) both read through.
//!
//! A pull takes up to `FETCH_MESSAGES` messages (waiting `FETCH_WAIT` at most), decodes their
//! lines, counts those of a message delivered before (`num_delivered > 1`) as redelivered,
//! and keeps the messages under an ack id until `ack`.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_nats::jetstream::consumer::{PullConsumer, pull};
use async_nats::jetstream::{Context, Message};
use futures_util::StreamExt as _;
use logplex::{AppName, Router, SharedTake};
use tokio::sync::Mutex;

use crate::bus::decode;
use crate::config::PgStore;

/// Messages one pull takes at most (each holds up to 4,096 lines).
const FETCH_MESSAGES: usize = 16;

/// How long one pull waits for messages.
const FETCH_WAIT: Duration = Duration::from_secs(1);

/// Unacknowledged messages one consumer allows across the cluster.
pub(crate) const MAX_ACK_PENDING: i64 = 1024;

/// Waits before trying the consumer again after an error.
pub(crate) const RETRY_AFTER: Duration = Duration::from_millis(500);

/// Whose lines a queue's messages are.
pub(crate) enum Apps<'a> {
    /// One app's (a drain's queue reads its app's subject only).
    One(&'a AppName),
    /// The app the subject names (`<prefix>.logs.<app-id>`), looked up in `router`, and in
    /// PostgreSQL first when this node does not know it yet (made a moment ago elsewhere).
    BySubject {
        /// The node's router.
        router: &'a Router,
        /// The cluster's configuration.
        store: &'a PgStore,
    },
}

impl Apps<'_> {
    /// The app of a message on `subject`; `None`: an app deleted since.
    async fn of(&self, subject: &str) -> Option<AppName> {
        let (router, store) = match self {
            Apps::One(app) => return Some((*app).clone()),
            Apps::BySubject { router, store } => (router, store),
        };
        let id = subject.rsplit('.').next().unwrap_or("");
        if let Some(app) = router.app_by_id(id) {
            return Some(AppName::from(app.name.as_str()));
        }
        if let Err(e) = store.reload_into(router).await {
            tracing::warn!(error = %e, "reading the configuration");
        }
        let app = router.app_by_id(id)?;
        Some(AppName::from(app.name.as_str()))
    }
}

/// One shared consumer, as this node pulls from it.
#[derive(Debug)]
pub(crate) struct WorkQueue {
    js: Context,
    stream: String,
    name: String,
    config: pull::Config,
    consumer: Mutex<Option<PullConsumer>>,
    /// Messages handed out and not yet acknowledged, by ack id.
    pending: Mutex<HashMap<u64, Vec<Message>>>,
    next: AtomicU64,
}

impl WorkQueue {
    /// The consumer `config` names (its `durable_name`) on `stream`.
    pub(crate) fn new(js: Context, stream: &str, config: pull::Config) -> Self {
        WorkQueue {
            js,
            stream: stream.to_owned(),
            name: config.durable_name.clone().unwrap_or_default(),
            config,
            consumer: Mutex::new(None),
            pending: Mutex::new(HashMap::new()),
            next: AtomicU64::new(1),
        }
    }

    /// The consumer's name.
    pub(crate) fn name(&self) -> &str {
        &self.name
    }

    /// The consumer, made when it does not exist yet.
    pub(crate) async fn consumer(&self) -> Result<PullConsumer, String> {
        let mut slot = self.consumer.lock().await;
        if let Some(c) = slot.as_ref() {
            return Ok(c.clone());
        }
        let stream = self
            .js
            .get_stream(&self.stream)
            .await
            .map_err(|e| e.to_string())?;
        let consumer: PullConsumer = stream
            .get_or_create_consumer(&self.name, self.config.clone())
            .await
            .map_err(|e| e.to_string())?;
        *slot = Some(consumer.clone());
        Ok(consumer)
    }

    /// Forgets the consumer after an error: the next pull looks it up (or makes it) again.
    pub(crate) async fn reset(&self) {
        *self.consumer.lock().await = None;
    }

    /// The next messages' lines (`None`: none came within `FETCH_WAIT`), to `ack` once done.
    pub(crate) async fn pull(&self, apps: &Apps<'_>) -> Result<Option<SharedTake>, String> {
        let consumer = self.consumer().await?;
        let mut batch = consumer
            .batch()
            .max_messages(FETCH_MESSAGES)
            .expires(FETCH_WAIT)
            .messages()
            .await
            .map_err(|e| e.to_string())?;
        let mut lines = Vec::new();
        let mut redelivered = 0;
        let mut messages = Vec::new();
        while let Some(message) = batch.next().await {
            let message = message.map_err(|e| e.to_string())?;
            let (sequence, delivered) = match message.info() {
                Ok(info) => (info.stream_sequence, info.delivered),
                Err(e) => return Err(format!("message info: {e}")),
            };
            // An app deleted since: its lines are acknowledged and not kept.
            if let Some(app) = apps.of(&message.subject).await {
                match decode(message.payload.clone(), &app, sequence) {
                    Ok(got) => {
                        if delivered > 1 {
                            redelivered += got.len() as u64;
                        }
                        lines.extend(got);
                    }
                    Err(e) => {
                        tracing::warn!(consumer = %self.name, error = %e, "bus message skipped");
                    }
                }
            }
            messages.push(message);
        }
        if messages.is_empty() {
            return Ok(None);
        }
        let ack = self.next.fetch_add(1, Ordering::Relaxed);
        self.pending.lock().await.insert(ack, messages);
        Ok(Some(SharedTake {
            lines,
            redelivered,
            ack,
        }))
    }

    /// Acknowledges the messages of pull `ack`: not delivered again.
    pub(crate) async fn ack(&self, ack: u64) {
        let Some(messages) = self.pending.lock().await.remove(&ack) else {
            return;
        };
        for message in messages {
            if let Err(e) = message.ack().await {
                // Unacknowledged: JetStream delivers it again after the ack wait.
                tracing::warn!(consumer = %self.name, error = %e, "ack");
            }
        }
    }
}
