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

use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::Context;
use async_nats::jetstream::consumer::{AckPolicy, DeliverPolicy, pull};
use drains::{Drain, DrainChange, SharedBatch, SharedDelivery, SharedFeed, SharedFuture};
use logplex::{AppName, Router};

use crate::config::PgStore;
use crate::work_queue::{Apps, MAX_ACK_PENDING, RETRY_AFTER, WorkQueue};

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
    /// `drain`'s queue: its app's subject, from the moment the consumer is made.
    fn queue(&self, drain: &Drain) -> WorkQueue {
        WorkQueue::new(
            self.js.clone(),
            &self.stream,
            pull::Config {
                durable_name: Some(consumer_name(drain)),
                filter_subject: format!("{}.logs.{}", self.prefix, drain.app_id),
                ack_policy: AckPolicy::Explicit,
                ack_wait: self.ack_wait,
                deliver_policy: DeliverPolicy::New,
                max_ack_pending: MAX_ACK_PENDING,
                ..Default::default()
            },
        )
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
                self.queue(drain).consumer().await?;
            }
            self.store
                .commit_drain(change)
                .await
                .map_err(|e| e.to_string())
        })
    }

    fn feed(&self, drain: &Drain) -> Arc<dyn SharedFeed> {
        Arc::new(DrainFeed {
            queue: self.queue(drain),
            app: match self.router.app_by_id(&drain.app_id) {
                Some(app) => AppName::from(app.name.as_str()),
                None => AppName::from(drain.app.as_str()),
            },
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
    queue: WorkQueue,
    app: AppName,
}

impl SharedFeed for DrainFeed {
    fn next(&self, _max_lines: usize) -> SharedFuture<'_, Option<SharedBatch>> {
        Box::pin(async move {
            loop {
                match self.queue.pull(&Apps::One(&self.app)).await {
                    Ok(Some(batch)) => return Some(batch),
                    Ok(None) => {}
                    Err(e) => {
                        tracing::warn!(consumer = %self.queue.name(), error = %e, "drain's consumer");
                        self.queue.reset().await;
                        tokio::time::sleep(RETRY_AFTER).await;
                    }
                }
            }
        })
    }

    fn ack(&self, ack: u64) -> SharedFuture<'_, ()> {
        Box::pin(self.queue.ack(ack))
    }
}
