//! `ConsumerFeed`: where a router-wide consumer that is not a drain (metric extraction, the
//! query spool) takes its lines from, one way alone or in a cluster. Alone (the embedded
//! default) it is the consumer's own `Subscription`: every app's lines through its bounded
//! queue, exactly as `Router::subscribe_all` gives them. In a cluster (a `SharedConsumers`
//! installed) it is the consumer's shared feed: its share of the cluster's lines, each batch
//! to be acknowledged once done with (`ConsumerFeed::done`), so the cluster counts or writes
//! each line once.

use std::sync::Arc;
use std::time::Duration;

use crate::line::LogLine;
use crate::router::consumers::Subscription;
use crate::router::queue::{LineQueue, Loss, QueueCounts};
use crate::shared_consumers::SharedConsumerFeed;

/// Where a router-wide consumer's lines come from (`Router::consumer_feed`).
#[derive(Debug)]
pub enum ConsumerFeed {
    /// This router's lines, through the consumer's own queue.
    Local(Subscription),
    /// The consumer's share of the cluster's lines.
    Shared(Arc<dyn SharedConsumerFeed>),
}

/// One take from a feed: the loss to report first (alone: the queue dropped lines), the lines,
/// and how many of them were delivered before (in a cluster: possible repeats).
#[derive(Debug, Default)]
pub struct FeedTake {
    /// Lines lost since the last take (alone only).
    pub loss: Option<Loss>,
    /// The lines.
    pub lines: Vec<LogLine>,
    /// How many of `lines` a cluster delivered before: possible repeats.
    pub redelivered: u64,
    /// What acknowledges the take in a cluster.
    ack: Option<u64>,
}

impl ConsumerFeed {
    /// The next take of at most `max_lines` lines (and, alone, `max_bytes` bytes), lingering
    /// up to `linger` for more once some wait (alone); `None` once the router closed the
    /// consumer's queue (alone; a shared feed ends when its consumer stops).
    pub async fn next(
        &self,
        max_lines: usize,
        max_bytes: usize,
        linger: Duration,
    ) -> Option<FeedTake> {
        match self {
            ConsumerFeed::Local(sub) => {
                let taken = sub
                    .queue()
                    .take_lingering(max_lines, max_bytes, linger)
                    .await?;
                Some(FeedTake {
                    loss: taken.loss,
                    lines: taken.lines,
                    redelivered: 0,
                    ack: None,
                })
            }
            ConsumerFeed::Shared(feed) => {
                let take = feed.next(max_lines).await;
                Some(FeedTake {
                    loss: None,
                    lines: take.lines,
                    redelivered: take.redelivered,
                    ack: Some(take.ack),
                })
            }
        }
    }

    /// What waits now, without waiting (alone: the queue's lines, for a consumer that stops
    /// and finishes what it was given). A shared feed holds nothing here: what this node did
    /// not take stays with the cluster; `None`.
    pub fn try_next(&self, max_lines: usize, max_bytes: usize) -> Option<FeedTake> {
        let ConsumerFeed::Local(sub) = self else {
            return None;
        };
        let taken = sub.queue().try_take_bounded(max_lines, max_bytes);
        if taken.lines.is_empty() && taken.loss.is_none() {
            return None;
        }
        Some(FeedTake {
            loss: taken.loss,
            lines: taken.lines,
            redelivered: 0,
            ack: None,
        })
    }

    /// Says the consumer is done with `take` (counted, written): in a cluster it is
    /// acknowledged and not delivered again. A take never done is delivered again, to this
    /// node or another, after the cluster's ack wait.
    pub async fn done(&self, take: &FeedTake) {
        if let (ConsumerFeed::Shared(feed), Some(ack)) = (self, take.ack) {
            feed.ack(ack).await;
        }
    }

    /// Whether the lines come from the cluster's shared feed.
    pub fn is_shared(&self) -> bool {
        matches!(self, ConsumerFeed::Shared(_))
    }

    /// The local queue (alone), for its counts.
    pub fn queue(&self) -> Option<&Arc<LineQueue>> {
        match self {
            ConsumerFeed::Local(sub) => Some(sub.queue()),
            ConsumerFeed::Shared(_) => None,
        }
    }

    /// The local queue's counts (alone); zeros for a shared feed, which queues nothing on
    /// the node (its backlog is the JetStream consumer's, in `GET /cluster`).
    pub fn counts(&self) -> QueueCounts {
        self.queue().map(|q| q.counts()).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;
    use crate::registry::Registry;
    use crate::router::{Router, RouterConfig};
    use crate::shared_consumers::{SharedConsumerFuture, SharedConsumers, SharedTake};

    /// A cluster's shared feed of one take of one line, recording what was acknowledged.
    #[derive(Debug, Default)]
    struct FakeFeed {
        acked: Mutex<Vec<u64>>,
    }

    impl SharedConsumerFeed for FakeFeed {
        fn next(&self, _max_lines: usize) -> SharedConsumerFuture<'_, SharedTake> {
            Box::pin(async {
                SharedTake {
                    lines: vec![LogLine {
                        received: crate::time::Timestamp::now(),
                        time: crate::time::Timestamp::now(),
                        app: crate::line::AppName::from("shop"),
                        source: bytes::Bytes::from_static(b"app"),
                        process: bytes::Bytes::from_static(b"web.1"),
                        facility: 1,
                        severity: 6,
                        message: bytes::Bytes::from_static(b"from the cluster"),
                        seq: 1,
                    }],
                    redelivered: 1,
                    ack: 7,
                }
            })
        }

        fn ack(&self, ack: u64) -> SharedConsumerFuture<'_, ()> {
            Box::pin(async move { self.acked.lock().unwrap().push(ack) })
        }
    }

    #[derive(Debug, Default)]
    struct FakeShared {
        feed: Arc<FakeFeed>,
        names: Mutex<Vec<String>>,
    }

    impl SharedConsumers for FakeShared {
        fn feed(&self, name: &str) -> Arc<dyn SharedConsumerFeed> {
            self.names.lock().unwrap().push(name.to_owned());
            self.feed.clone()
        }
    }

    #[tokio::test]
    async fn alone_a_feed_is_the_consumers_own_subscription() {
        let router = Router::new(RouterConfig::default(), Registry::in_memory());
        router.create_app("shop").unwrap();
        let feed = router.consumer_feed("metrics", 10);
        assert!(!feed.is_shared());
        assert_eq!(router.consumer_stats().len(), 1);
        let e = router.emitter("shop", "app").unwrap();
        e.try_emit("web.1", "one").unwrap();
        e.try_emit("web.1", "two").unwrap();
        let take = feed.next(10, usize::MAX, Duration::ZERO).await.unwrap();
        assert_eq!(take.lines.len(), 2);
        assert_eq!(take.redelivered, 0);
        feed.done(&take).await;
        assert_eq!(feed.counts().taken, 2);
        e.try_emit("web.1", "three").unwrap();
        assert_eq!(feed.try_next(10, usize::MAX).unwrap().lines.len(), 1);
        assert!(feed.try_next(10, usize::MAX).is_none());
    }

    #[tokio::test]
    async fn in_a_cluster_a_feed_is_its_shared_consumer_and_done_acknowledges() {
        let router = Router::new(RouterConfig::default(), Registry::in_memory());
        let shared = Arc::new(FakeShared::default());
        router.set_shared_consumers(shared.clone());
        let feed = router.consumer_feed("metrics", 10);
        assert!(feed.is_shared());
        assert_eq!(*shared.names.lock().unwrap(), ["metrics"]);
        // No local subscription: this router's channels do not feed it.
        assert!(router.consumer_stats().is_empty());
        let take = feed.next(10, usize::MAX, Duration::ZERO).await.unwrap();
        assert_eq!(&take.lines[0].message[..], b"from the cluster");
        assert_eq!(take.redelivered, 1);
        assert!(shared.feed.acked.lock().unwrap().is_empty());
        feed.done(&take).await;
        assert_eq!(*shared.feed.acked.lock().unwrap(), [7]);
        assert!(feed.try_next(10, usize::MAX).is_none());
        assert_eq!(feed.counts(), QueueCounts::default());
    }
}
