//! The log bus on NATS JetStream: one stream (`--nats-stream`, bounded by `--bus-max-mb` and
//! `--bus-max-age`) with a subject per app, `<prefix>.logs.<app-id>`.
//!
//! Ingest on any node publishes an admitted batch (one read, one `POST /logs`) as messages
//! of at most 4,096 lines (`codec.rs`) and awaits every message's JetStream acknowledgement
//! before its sender is acknowledged. Every node runs one `reader.rs`: an ordered consumer
//! over the whole stream, which publishes each message's lines into this node's channel of
//! the app, numbered from the stream sequence, so tails and history on every node see every
//! node's lines in the stream's order.

mod codec;
mod reader;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_nats::jetstream::message::PublishMessage;
use async_nats::jetstream::{self, Context, stream};
use logplex::{BusBatch, BusError, BusFuture, LineBus, Published};

use crate::error::{Result, nats};

pub use codec::DecodeError;
pub(crate) use codec::decode;
pub(crate) use reader::spawn_reader;

/// The stream and its bounds.
#[derive(Clone, Debug)]
pub struct BusConfig {
    /// The stream's name.
    pub stream: String,
    /// The subjects' prefix: lines of app `ID` are published to `<prefix>.logs.<ID>`.
    pub prefix: String,
    /// Bytes the stream keeps at most (the oldest messages go first).
    pub max_bytes: i64,
    /// How long the stream keeps a message at most.
    pub max_age: Duration,
    /// How long a publish waits for JetStream's acknowledgement.
    pub ack_timeout: Duration,
    /// How long a drain's batch may stay unacknowledged on one node before JetStream hands it
    /// to another (a node that died mid-batch).
    pub drain_ack_wait: Duration,
    /// Lines the node's emitters may have waiting for the bus (`logplex::BusOutbox`).
    pub outbox_lines: usize,
}

impl Default for BusConfig {
    fn default() -> Self {
        BusConfig {
            stream: "PAAS_LOGS".into(),
            prefix: "paas".into(),
            max_bytes: 1 << 30,
            max_age: Duration::from_secs(24 * 3600),
            ack_timeout: Duration::from_secs(5),
            drain_ack_wait: Duration::from_secs(30),
            outbox_lines: logplex::OUTBOX_CAPACITY,
        }
    }
}

/// The bus's counters on this node.
#[derive(Debug, Default)]
pub struct BusStats {
    /// Lines published and acknowledged by JetStream.
    pub published_lines: AtomicU64,
    /// Messages published and acknowledged.
    pub published_messages: AtomicU64,
    /// Lines of batches JetStream had already, under the same `Logplex-Frame-Id` (a
    /// sender's retry, maybe to another node): acknowledged, not stored again.
    pub duplicate_lines: AtomicU64,
    /// Lines whose publish failed (never acknowledged to their sender).
    pub publish_failed_lines: AtomicU64,
    /// The stream sequence of the last message the reader published locally.
    pub read_sequence: AtomicU64,
    /// Lines the reader published locally.
    pub read_lines: AtomicU64,
    /// Messages the reader could not read (counted, skipped).
    pub undecodable: AtomicU64,
    /// Messages of apps this node does not know (deleted), skipped.
    pub unknown_app_messages: AtomicU64,
}

/// Makes sure the stream exists (made with the bounds when it does not).
pub(crate) async fn ensure_stream(js: &Context, config: &BusConfig) -> Result<()> {
    let subjects = vec![format!("{}.logs.>", config.prefix)];
    js.get_or_create_stream(stream::Config {
        name: config.stream.clone(),
        subjects,
        max_bytes: config.max_bytes,
        max_age: config.max_age,
        storage: stream::StorageType::File,
        ..Default::default()
    })
    .await
    .map_err(nats("creating the stream"))?;
    Ok(())
}

/// This node's publisher.
#[derive(Debug)]
pub struct JetStreamBus {
    js: Context,
    prefix: String,
    stats: Arc<BusStats>,
}

impl JetStreamBus {
    pub(crate) fn new(js: Context, config: &BusConfig, stats: Arc<BusStats>) -> Self {
        JetStreamBus {
            js,
            prefix: config.prefix.clone(),
            stats,
        }
    }

    /// Publishes `batch` as messages of `codec::encode`; with a de-duplication id, message
    /// `i` carries `Nats-Msg-Id: <app-id>/<id>/<i>` (the stream's duplicate window is one for
    /// all subjects, so the app scopes it), and JetStream stores a repeat of it only once.
    /// The messages sent, and whether JetStream had every one of them already.
    async fn publish_all(&self, batch: &BusBatch) -> std::result::Result<(u64, bool), BusError> {
        let subject = format!("{}.logs.{}", self.prefix, batch.app_id);
        let payloads = codec::encode(&batch.lines);
        let mut acks = Vec::with_capacity(payloads.len());
        // Every message is sent before any acknowledgement is awaited: one round trip for
        // the batch, not one per message.
        for (i, payload) in payloads.into_iter().enumerate() {
            let message = PublishMessage::build().payload(payload);
            let message = match &batch.dedup_id {
                Some(id) => message.message_id(format!("{}/{id}/{i}", batch.app_id)),
                None => message,
            };
            let ack = self
                .js
                .send_publish(subject.clone(), message)
                .await
                .map_err(|e| BusError(e.to_string()))?;
            acks.push(ack);
        }
        let messages = acks.len() as u64;
        let mut all_repeats = messages > 0;
        for ack in acks {
            let ack = ack.await.map_err(|e| BusError(e.to_string()))?;
            all_repeats &= ack.duplicate;
        }
        Ok((messages, all_repeats))
    }
}

impl LineBus for JetStreamBus {
    fn publish<'a>(&'a self, batch: &'a BusBatch) -> BusFuture<'a> {
        Box::pin(async move {
            let n = batch.lines.len() as u64;
            match self.publish_all(batch).await {
                Ok((_, true)) => {
                    self.stats.duplicate_lines.fetch_add(n, Ordering::Relaxed);
                    Ok(Published::Duplicate)
                }
                Ok((messages, false)) => {
                    self.stats.published_lines.fetch_add(n, Ordering::Relaxed);
                    self.stats
                        .published_messages
                        .fetch_add(messages, Ordering::Relaxed);
                    Ok(Published::Stored)
                }
                Err(e) => {
                    self.stats
                        .publish_failed_lines
                        .fetch_add(n, Ordering::Relaxed);
                    Err(e)
                }
            }
        })
    }
}

/// The JetStream context of `client`, with its acknowledgement bound.
pub(crate) fn context(client: async_nats::Client, config: &BusConfig) -> Context {
    let mut js = jetstream::new(client);
    js.set_timeout(config.ack_timeout);
    js
}
