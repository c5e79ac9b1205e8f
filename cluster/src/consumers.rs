//! The router-wide consumers once across the cluster (`logplex::SharedConsumers`): metric
//! extraction and the query spool each read one JetStream durable pull consumer named after
//! them (`metrics`, `spool`) over every app's subject (`<prefix>.logs.>`), with explicit acks,
//! pulled from by every node: a work queue, so each message goes to one node's consumer. A
//! batch is acknowledged once the consumer is done with its lines (counted, written); a node
//! that dies mid-batch leaves it unacknowledged, and JetStream hands it to another node after
//! the ack wait (`--drain-ack-wait`). A message delivered more than once (`num_delivered > 1`)
//! counts its lines as redelivered: at least once, the possible repeats told.
//!
//! Each feed pulls in a task of its own and hands takes over a channel of one, so a consumer
//! that waits for its next take among other things (the spool writer's sync timer) never
//! cancels a pull halfway (which would leave its messages to the ack wait).
//!
//! The consumer delivers the whole stream when it is first made (by the first node to pull),
//! so no line on the bus is missed whichever node starts first; once made it lasts, and a
//! node that joins later shares its position.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_nats::jetstream::consumer::{AckPolicy, DeliverPolicy, PullConsumer, pull};
use async_nats::jetstream::{Context, Message};
use futures_util::StreamExt as _;
use logplex::{
    AppName, LogLine, Router, SharedConsumerFeed, SharedConsumerFuture, SharedConsumers, SharedTake,
};
use tokio::sync::{Mutex, mpsc};

use crate::bus::decode;
use crate::config::PgStore;

/// Messages one take holds at most (each holds up to 4,096 lines).
const FETCH_MESSAGES: usize = 16;

/// How long one pull waits for messages.
const FETCH_WAIT: Duration = Duration::from_secs(1);

/// Waits before trying the consumer again after an error.
const RETRY_AFTER: Duration = Duration::from_millis(500);

/// Unacknowledged messages one consumer allows across the cluster.
const MAX_ACK_PENDING: i64 = 1024;

/// The cluster's shared router-wide consumers.
#[derive(Debug)]
pub(crate) struct JetStreamConsumers {
    pub(crate) js: Context,
    pub(crate) stream: String,
    pub(crate) prefix: String,
    pub(crate) ack_wait: Duration,
    pub(crate) store: Arc<PgStore>,
    pub(crate) router: Router,
}

impl SharedConsumers for JetStreamConsumers {
    fn feed(&self, name: &str) -> Arc<dyn SharedConsumerFeed> {
        let pending = Arc::new(Mutex::new(HashMap::new()));
        let puller = Puller {
            js: self.js.clone(),
            stream: self.stream.clone(),
            name: name.to_owned(),
            config: pull::Config {
                durable_name: Some(name.to_owned()),
                filter_subject: format!("{}.logs.>", self.prefix),
                ack_policy: AckPolicy::Explicit,
                ack_wait: self.ack_wait,
                deliver_policy: DeliverPolicy::All,
                max_ack_pending: MAX_ACK_PENDING,
                ..Default::default()
            },
            store: self.store.clone(),
            router: self.router.clone(),
            consumer: None,
            pending: pending.clone(),
            next: AtomicU64::new(1),
        };
        let (tx, rx) = mpsc::channel(1);
        tokio::spawn(puller.run(tx));
        Arc::new(JetStreamFeed {
            name: name.to_owned(),
            takes: Mutex::new(rx),
            pending,
        })
    }
}

/// Takes handed out and not yet acknowledged, by ack id.
type Pending = Arc<Mutex<HashMap<u64, Vec<Message>>>>;

/// One consumer's side of its shared consumer on this node: the takes its puller made.
#[derive(Debug)]
struct JetStreamFeed {
    name: String,
    takes: Mutex<mpsc::Receiver<SharedTake>>,
    pending: Pending,
}

/// Pulls one consumer's takes on this node, until its feed is dropped.
#[derive(Debug)]
struct Puller {
    js: Context,
    stream: String,
    name: String,
    config: pull::Config,
    store: Arc<PgStore>,
    router: Router,
    consumer: Option<PullConsumer>,
    pending: Pending,
    next: AtomicU64,
}

impl Puller {
    async fn run(mut self, takes: mpsc::Sender<SharedTake>) {
        while !takes.is_closed() {
            match self.pull().await {
                Ok(Some(take)) => {
                    if takes.send(take).await.is_err() {
                        break;
                    }
                }
                Ok(None) => {}
                Err(e) => {
                    tracing::warn!(consumer = %self.name, error = %e, "shared consumer");
                    self.consumer = None;
                    tokio::time::sleep(RETRY_AFTER).await;
                }
            }
        }
    }

    async fn consumer(&mut self) -> Result<PullConsumer, String> {
        if let Some(c) = self.consumer.as_ref() {
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
        self.consumer = Some(consumer.clone());
        Ok(consumer)
    }

    /// The app of a message's subject (`<prefix>.logs.<app-id>`): looked up again in
    /// PostgreSQL when this node does not know it yet (made a moment ago on another node).
    async fn app_of(&self, subject: &str) -> Option<AppName> {
        let id = subject.rsplit('.').next().unwrap_or("");
        if let Some(app) = self.router.app_by_id(id) {
            return Some(AppName::from(app.name.as_str()));
        }
        if let Err(e) = self.store.reload_into(&self.router).await {
            tracing::warn!(consumer = %self.name, error = %e, "reading the configuration");
        }
        let app = self.router.app_by_id(id)?;
        Some(AppName::from(app.name.as_str()))
    }

    async fn pull(&mut self) -> Result<Option<SharedTake>, String> {
        let consumer = self.consumer().await?;
        let mut batch = consumer
            .batch()
            .max_messages(FETCH_MESSAGES)
            .expires(FETCH_WAIT)
            .messages()
            .await
            .map_err(|e| e.to_string())?;
        let mut lines: Vec<LogLine> = Vec::new();
        let mut redelivered = 0;
        let mut messages = Vec::new();
        while let Some(message) = batch.next().await {
            let message = message.map_err(|e| e.to_string())?;
            let (sequence, delivered) = match message.info() {
                Ok(info) => (info.stream_sequence, info.delivered),
                Err(e) => return Err(format!("message info: {e}")),
            };
            // An app deleted since: its lines are acknowledged and not kept.
            if let Some(app) = self.app_of(&message.subject).await {
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
}

impl SharedConsumerFeed for JetStreamFeed {
    fn next(&self, _max_lines: usize) -> SharedConsumerFuture<'_, SharedTake> {
        Box::pin(async move {
            match self.takes.lock().await.recv().await {
                Some(take) => take,
                // The puller ends only when the feed is dropped: nothing more comes.
                None => std::future::pending().await,
            }
        })
    }

    fn ack(&self, ack: u64) -> SharedConsumerFuture<'_, ()> {
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
