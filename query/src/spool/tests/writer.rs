//! The writer end to end, with a real in-process router.

use logplex::{Registry, Router, RouterConfig};

use super::*;

/// Waits (yielding to the runtime) until `done`, at most a generous number of rounds.
async fn until(mut done: impl FnMut() -> bool) {
    for _ in 0..2000 {
        if done() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    panic!("never happened");
}

#[tokio::test]
async fn lines_emitted_in_the_router_reach_the_spool_and_a_deleted_app_goes() {
    let dir = tempfile::tempdir().unwrap();
    let spool = Spool::open(dir.path(), SpoolConfig::default()).unwrap();
    let router = Router::new(RouterConfig::default(), Registry::in_memory());
    let (shop, _) = router.create_app("shop").unwrap();
    let (other, _) = router.create_app("other").unwrap();
    let writer = SpoolWriter::start(&router, spool.clone(), SpoolWriterConfig::default());

    let emitter = router.emitter("shop", "app").unwrap();
    for i in 0..20 {
        emitter.try_emit("web.1", format!("at=info n={i}")).unwrap();
    }
    let other_emitter = router.emitter("other", "app").unwrap();
    other_emitter.try_emit("worker.1", "hello").unwrap();
    until(|| writer.stats().appended == 21).await;

    let got = read_all(&spool, &shop.id);
    assert_eq!(got.len(), 20);
    for (i, l) in got.iter().enumerate() {
        assert_eq!(l.message, format!("at=info n={i}").as_bytes());
        assert_eq!(
            (&l.source[..], &l.process[..]),
            (&b"app"[..], &b"web.1"[..])
        );
        assert_eq!(l.app.as_str(), "shop");
        assert_eq!(l.seq, i as u64 + 1);
    }
    assert_eq!(read_all(&spool, &other.id).len(), 1);

    router.delete_app("shop").unwrap();
    assert!(!dir.path().join(&shop.id).exists(), "removed at once");
    assert!(dir.path().join(&other.id).exists());

    let stats = writer.stats();
    assert_eq!((stats.dropped, stats.buffered, stats.failed), (0, 0, 0));
    writer.stop(Duration::from_secs(10)).await.unwrap();
}

#[tokio::test]
async fn stop_writes_what_waits_and_a_slow_writer_drops_the_oldest_counted() {
    let dir = tempfile::tempdir().unwrap();
    let spool = Spool::open(dir.path(), SpoolConfig::default()).unwrap();
    let router = Router::new(RouterConfig::default(), Registry::in_memory());
    let (shop, _) = router.create_app("shop").unwrap();
    let config = SpoolWriterConfig {
        capacity: 10,
        ..SpoolWriterConfig::default()
    };
    let writer = SpoolWriter::start(&router, spool.clone(), config);
    // The current-thread runtime does not run the writer while this loop runs: its queue
    // overflows, and ingest never waits.
    let emitter = router.emitter("shop", "app").unwrap();
    for i in 0..50 {
        emitter.try_emit("web.1", format!("n={i}")).unwrap();
    }
    let before = writer.stats();
    assert_eq!((before.dropped, before.buffered), (40, 10));
    writer.stop(Duration::from_secs(10)).await.unwrap();
    let got: Vec<u64> = read_all(&spool, &shop.id).iter().map(|l| l.seq).collect();
    assert_eq!(got, (41..=50).collect::<Vec<u64>>());
}
