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

use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::Context;
use async_nats::jetstream::consumer::{AckPolicy, DeliverPolicy, pull};
use logplex::{Router, SharedConsumerFeed, SharedConsumerFuture, SharedConsumers, SharedTake};
use tokio::sync::{Mutex, mpsc};

use crate::config::PgStore;
use crate::work_queue::{Apps, MAX_ACK_PENDING, RETRY_AFTER, WorkQueue};

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
        let queue = Arc::new(WorkQueue::new(
            self.js.clone(),
            &self.stream,
            pull::Config {
                durable_name: Some(name.to_owned()),
                filter_subject: format!("{}.logs.>", self.prefix),
                ack_policy: AckPolicy::Explicit,
                ack_wait: self.ack_wait,
                deliver_policy: DeliverPolicy::All,
                max_ack_pending: MAX_ACK_PENDING,
                ..Default::default()
            },
        ));
        let (tx, rx) = mpsc::channel(1);
        tokio::spawn(pull(
            queue.clone(),
            self.router.clone(),
            self.store.clone(),
            tx,
        ));
        Arc::new(JetStreamFeed {
            queue,
            takes: Mutex::new(rx),
        })
    }
}

/// One consumer's side of its shared consumer on this node: the takes its puller made.
#[derive(Debug)]
struct JetStreamFeed {
    queue: Arc<WorkQueue>,
    takes: Mutex<mpsc::Receiver<SharedTake>>,
}

/// Pulls `queue`'s takes on this node and hands them over, until the feed is dropped.
async fn pull(
    queue: Arc<WorkQueue>,
    router: Router,
    store: Arc<PgStore>,
    takes: mpsc::Sender<SharedTake>,
) {
    let apps = Apps::BySubject {
        router: &router,
        store: &store,
    };
    while !takes.is_closed() {
        match queue.pull(&apps).await {
            Ok(Some(take)) => {
                if takes.send(take).await.is_err() {
                    break;
                }
            }
            Ok(None) => {}
            Err(e) => {
                tracing::warn!(consumer = %queue.name(), error = %e, "shared consumer");
                queue.reset().await;
                tokio::time::sleep(RETRY_AFTER).await;
            }
        }
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
        Box::pin(self.queue.ack(ack))
    }
}
