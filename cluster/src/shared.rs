//! Drains once across the cluster: every node runs every drain (the drains are rows in
//! PostgreSQL), and each drain's task on each node pulls from one JetStream durable pull
//! consumer per drain (`drain-<id>`, explicit acks, the drain's app's subject): a work queue,
//! so each message goes to one node's task at a time. A batch is acknowledged once the drain's
//! receiver took it (or refused it for good, counted); a node that dies mid-batch leaves it
//! unacknowledged, and JetStream hands it to another node after `--drain-ack-wait`. A message
//! delivered more than once (`num_delivered > 1`) counts its lines as `redelivered` in the
//! drain's health: at least once, the possible repeats told.
//!
//! The consumer is made when the drain is added (before the API answers), delivering from
//! then on, so no line accepted after the 201 is missed.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_nats::jetstream::consumer::{AckPolicy, DeliverPolicy, PullConsumer, pull};
use async_nats::jetstream::{Context, Message};
use drains::{Drain, DrainChange, SharedBatch, SharedDelivery, SharedFeed, SharedFuture};
use futures_util::StreamExt as _;
use logplex::{AppName, Router};
use tokio::sync::Mutex;

use crate::bus::decode;
use crate::config::PgStore;

/// Messages one batch takes at most (each holds up to 4,096 lines).
const FETCH_MESSAGES: usize = 16;

/// How long one pull waits for messages.
const FETCH_WAIT: Duration = Duration::from_secs(1);

/// Waits before trying the consumer again after an error.
const RETRY_AFTER: Duration = Duration::from_millis(500);

/// Unacknowledged messages one drain's consumer allows across the cluster.
const MAX_ACK_PENDING: i64 = 1024;

/// The cluster's shared delivery.
#[derive(Debug)]
pub(crate) struct JetStreamDrains {
    pub(crate) js: Context,
    pub(crate) stream: String,
    pub(crate) prefix: String,
    pub(crate) ack_wait: Duration,
    pub(crate) store: Arc<PgStore>,
    pub(crate) router: Router,
}

fn consumer_name(drain: &Drain) -> String {
    format!("drain-{}", drain.id)
}

impl JetStreamDrains {
    fn config(&self, drain: &Drain) -> pull::Config {
        pull::Config {
            durable_name: Some(consumer_name(drain)),
            filter_subject: format!("{}.logs.{}", self.prefix, drain.app_id),
            ack_policy: AckPolicy::Explicit,
            ack_wait: self.ack_wait,
            deliver_policy: DeliverPolicy::New,
            max_ack_pending: MAX_ACK_PENDING,
            ..Default::default()
        }
    }

    async fn make_consumer(&self, drain: &Drain) -> Result<(), String> {
        let stream = self
            .js
            .get_stream(&self.stream)
            .await
            .map_err(|e| e.to_string())?;
        stream
            .get_or_create_consumer(&consumer_name(drain), self.config(drain))
            .await
            .map_err(|e| e.to_string())?;
        Ok(())
    }
}

fn block_on<T>(f: impl std::future::Future<Output = Result<T, String>>) -> Result<T, String> {
    let handle = tokio::runtime::Handle::try_current().map_err(|e| e.to_string())?;
    if handle.runtime_flavor() != tokio::runtime::RuntimeFlavor::MultiThread {
        return Err("the cluster's drains need tokio's multi-thread runtime".into());
    }
    tokio::task::block_in_place(|| handle.block_on(f))
}

impl SharedDelivery for JetStreamDrains {
    fn commit(&self, change: DrainChange<'_>) -> Result<(), String> {
        block_on(async {
            if let DrainChange::Added(drain) = change {
                self.make_consumer(drain).await?;
            }
            self.store
                .commit_drain(change)
                .await
                .map_err(|e| e.to_string())
        })
    }

    fn feed(&self, drain: &Drain) -> Arc<dyn SharedFeed> {
        Arc::new(DrainFeed {
            js: self.js.clone(),
            stream: self.stream.clone(),
            name: consumer_name(drain),
            config: self.config(drain),
            app: match self.router.app_by_id(&drain.app_id) {
                Some(app) => AppName::from(app.name.as_str()),
                None => AppName::from(drain.app.as_str()),
            },
            consumer: Mutex::new(None),
            pending: Mutex::new(HashMap::new()),
            next: AtomicU64::new(1),
        })
    }

    fn forget(&self, drain: &Drain) {
        let (js, stream, name) = (self.js.clone(), self.stream.clone(), consumer_name(drain));
        tokio::spawn(async move {
            if let Ok(stream) = js.get_stream(&stream).await
                && let Err(e) = stream.delete_consumer(&name).await
            {
                // Every node asks when a drain goes: all but the first find it gone already.
                tracing::debug!(consumer = %name, error = %e, "deleting a drain's consumer");
            }
        });
    }
}

/// One drain's side of its shared consumer on this node.
#[derive(Debug)]
struct DrainFeed {
    js: Context,
    stream: String,
    name: String,
    config: pull::Config,
    app: AppName,
    consumer: Mutex<Option<PullConsumer>>,
    /// Batches handed out and not yet acknowledged, by ack id.
    pending: Mutex<HashMap<u64, Vec<Message>>>,
    next: AtomicU64,
}

impl DrainFeed {
    async fn consumer(&self) -> Result<PullConsumer, String> {
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

    async fn pull(&self) -> Result<Option<SharedBatch>, String> {
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
            match decode(message.payload.clone(), &self.app, sequence) {
                Ok(got) => {
                    if delivered > 1 {
                        redelivered += got.len() as u64;
                    }
                    lines.extend(got);
                }
                Err(e) => tracing::warn!(consumer = %self.name, error = %e, "bus message skipped"),
            }
            messages.push(message);
        }
        if messages.is_empty() {
            return Ok(None);
        }
        let ack = self.next.fetch_add(1, Ordering::Relaxed);
        self.pending.lock().await.insert(ack, messages);
        Ok(Some(SharedBatch {
            lines,
            redelivered,
            ack,
        }))
    }
}

impl SharedFeed for DrainFeed {
    fn next(&self, _max_lines: usize) -> SharedFuture<'_, Option<SharedBatch>> {
        Box::pin(async move {
            loop {
                match self.pull().await {
                    Ok(Some(batch)) => return Some(batch),
                    Ok(None) => {}
                    Err(e) => {
                        tracing::warn!(consumer = %self.name, error = %e, "drain's consumer");
                        *self.consumer.lock().await = None;
                        tokio::time::sleep(RETRY_AFTER).await;
                    }
                }
            }
        })
    }

    fn ack(&self, ack: u64) -> SharedFuture<'_, ()> {
        Box::pin(async move {
            let Some(messages) = self.pending.lock().await.remove(&ack) else {
                return;
            };
            for message in messages {
                if let Err(e) = message.ack().await {
                    // Unacknowledged: JetStream delivers it again after the ack wait.
                    tracing::warn!(consumer = %self.name, error = %e, "ack");
                }
            }
        })
    }
}
