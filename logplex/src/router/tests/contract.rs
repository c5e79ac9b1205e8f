//! The router-wide consumer's contract, tested through the router: per-app `seq` order under
//! concurrent publishers, `seq` kept monotonic across restarts, and resuming from a position
//! without a gap or a repeat.

use std::collections::HashMap;

use super::*;
use crate::line::LogLine;
use crate::line::tests::line;

fn router() -> Router {
    let config = RouterConfig {
        app_rate: 0,
        ..RouterConfig::default()
    };
    Router::new(config, Registry::in_memory())
}

fn batch(app: &str, n: usize) -> Vec<LogLine> {
    (0..n)
        .map(|i| line(app, "app", "web.1", "x", i as i64))
        .collect()
}

/// Takes everything waiting; the queue must have lost nothing.
fn take_all(sub: &Subscription) -> Vec<LogLine> {
    let taken = sub.queue().try_take(usize::MAX);
    assert_eq!(
        taken.loss, None,
        "the queue was large enough to lose nothing"
    );
    taken.lines
}

/// Checks that each app's lines come in strictly increasing `seq`; returns how many each had.
fn assert_in_seq_order(lines: &[LogLine]) -> HashMap<String, u64> {
    let mut last: HashMap<String, u64> = HashMap::new();
    for l in lines {
        let prev = last.entry(l.app.to_string()).or_default();
        assert!(l.seq > *prev, "{}: seq {} after {}", l.app, l.seq, prev);
        *prev = l.seq;
    }
    last
}

#[test]
fn concurrent_publishers_to_one_app_reach_a_router_wide_consumer_in_seq_order() {
    let router = router();
    router.create_app("shop").unwrap();
    router.create_app("blog").unwrap();
    let all = router.subscribe_all("index", 1 << 20);
    const THREADS: usize = 8;
    const BATCHES: usize = 2_000;
    std::thread::scope(|s| {
        for t in 0..THREADS {
            let router = router.clone();
            s.spawn(move || {
                let app = if t % 4 == 3 { "blog" } else { "shop" };
                let channel = router.channel(app).unwrap();
                let emitter = router.emitter(app, "paas").unwrap();
                for i in 0..BATCHES {
                    let now = Timestamp::from_micros(0);
                    match i % 3 {
                        0 => assert_eq!(channel.publish(batch(app, 1 + i % 4), now), 1 + i % 4),
                        1 => assert_eq!(
                            channel.publish_batch(batch(app, 2), None, now),
                            BatchOutcome::Accepted(2)
                        ),
                        _ => emitter.try_emit("router", "at=info").unwrap(),
                    }
                }
            });
        }
    });
    let lines = take_all(&all);
    let last = assert_in_seq_order(&lines);
    let shop = router.channel("shop").unwrap().accepted();
    let blog = router.channel("blog").unwrap().accepted();
    assert_eq!(lines.len() as u64, shop + blog);
    assert_eq!(
        (last["shop"], last["blog"]),
        (shop, blog),
        "seq has no gap in one run"
    );
}

fn router_keeping(history_lines: usize) -> Router {
    let config = RouterConfig {
        app_rate: 0,
        history_lines,
        ..RouterConfig::default()
    };
    Router::new(config, Registry::in_memory())
}

#[test]
fn a_consumer_resuming_while_lines_flow_gets_each_line_after_its_position_once() {
    let router = router_keeping(1_000_000);
    router.create_app("shop").unwrap();
    router.create_app("blog").unwrap();
    let shop = router.channel("shop").unwrap();
    shop.publish(batch("shop", 50), Timestamp::from_micros(0));
    let resumed = std::thread::scope(|s| {
        let publisher = s.spawn(|| {
            for _ in 0..2_000 {
                shop.publish(batch("shop", 3), Timestamp::from_micros(0));
            }
        });
        while shop.accepted() < 500 {
            std::thread::yield_now();
        }
        let resumed = router.subscribe_all_from("index", 1 << 20, &|app| {
            if app.as_str() == "shop" { 20 } else { 0 }
        });
        publisher.join().unwrap();
        resumed
    });
    assert_eq!(resumed.catch_up.len(), 1, "blog has nothing to catch up");
    let caught = &resumed.catch_up[0];
    assert_eq!((caught.app.as_str(), caught.loss), ("shop", None));
    let seqs: Vec<u64> = caught
        .lines
        .iter()
        .chain(take_all(&resumed.subscription).iter())
        .map(|l| l.seq)
        .collect();
    let want: Vec<u64> = (21..=shop.accepted()).collect();
    assert_eq!(seqs, want, "no gap, no repeat at the boundary");
}

#[test]
fn a_position_older_than_history_is_a_loss() {
    let router = router_keeping(5);
    router.create_app("shop").unwrap();
    let shop = router.channel("shop").unwrap();
    shop.publish(batch("shop", 20), Timestamp::from_micros(0));
    let resumed = router.subscribe_all_from("index", 100, &|_| 3);
    let caught = &resumed.catch_up[0];
    let seqs: Vec<u64> = caught.lines.iter().map(|l| l.seq).collect();
    assert_eq!(seqs, [16, 17, 18, 19, 20]);
    assert_eq!(
        caught.loss.map(|l| l.dropped),
        Some(12),
        "seq 4 to 15 are gone"
    );
    let current = router.subscribe_all_from("metrics", 100, &|_| 20);
    assert!(
        current.catch_up.is_empty(),
        "a consumer up to date misses nothing"
    );
    shop.publish(batch("shop", 1), Timestamp::from_micros(0));
    assert_eq!(take_all(&current.subscription)[0].seq, 21);
}

/// A router over the data directory `dir`, restored as `Logplex::start` restores it.
fn start(dir: &std::path::Path) -> Router {
    let config = RouterConfig {
        app_rate: 0,
        seq_dir: Some(seq_dir(dir)),
        ..RouterConfig::default()
    };
    let router = Router::new(config, Registry::open(dir).unwrap());
    crate::server::restore(&router, dir).unwrap();
    router
}

/// What `Logplex::stop` leaves behind: every app's history and exact last `seq`.
fn clean_stop(router: Router, dir: &std::path::Path) {
    router.stop();
    for app in router.apps() {
        let channel = router.channel(&app.name).unwrap();
        crate::persist::save_history(dir, &app.id, &channel.all_history()).unwrap();
        channel.save_seq().unwrap();
    }
}

fn publish(router: &Router, n: usize) -> Vec<u64> {
    let all = router.subscribe_all("probe", 1 << 10);
    let channel = router.channel("shop").unwrap();
    channel.publish(batch("shop", n), Timestamp::from_micros(0));
    take_all(&all).iter().map(|l| l.seq).collect()
}

fn data_dir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("logplex-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn seq_goes_on_after_a_clean_restart_and_a_consumer_resumes_without_gap_or_repeat() {
    let dir = data_dir("seq-clean");
    let router = start(&dir);
    router.create_app("shop").unwrap();
    assert_eq!(publish(&router, 10), (1..=10).collect::<Vec<_>>());
    clean_stop(router, &dir);

    let router = start(&dir);
    let resumed = router.subscribe_all_from("index", 100, &|_| 7);
    let caught: Vec<u64> = resumed.catch_up[0].lines.iter().map(|l| l.seq).collect();
    assert_eq!(caught, [8, 9, 10], "restored history keeps its seq");
    assert_eq!(publish(&router, 2), [11, 12], "numbering goes on, no jump");
    let live: Vec<u64> = take_all(&resumed.subscription)
        .iter()
        .map(|l| l.seq)
        .collect();
    assert_eq!(live, [11, 12]);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn after_a_crash_seq_never_reuses_a_number_a_reader_may_have_seen() {
    let dir = data_dir("seq-crash");
    let router = start(&dir);
    router.create_app("shop").unwrap();
    assert_eq!(publish(&router, 10), (1..=10).collect::<Vec<_>>());
    clean_stop(router, &dir);
    let router = start(&dir);
    assert_eq!(publish(&router, 5), [11, 12, 13, 14, 15]);
    drop(router); // killed: neither history nor the last seq is saved

    let router = start(&dir);
    let resumed = router.subscribe_all_from("index", 100, &|_| 15);
    assert!(resumed.catch_up.is_empty(), "history (1..=10) is behind 15");
    let next = publish(&router, 1)[0];
    assert_eq!(
        next,
        10 + SEQ_BLOCK + 1,
        "past the block reserved before 11"
    );
    let live: Vec<u64> = take_all(&resumed.subscription)
        .iter()
        .map(|l| l.seq)
        .collect();
    assert_eq!(live, [next]);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_deleted_app_made_again_numbers_from_one() {
    let dir = data_dir("seq-delete");
    let router = start(&dir);
    router.create_app("shop").unwrap();
    publish(&router, 3);
    router.delete_app("shop").unwrap();
    router.create_app("shop").unwrap(); // a new id, so a seq file of its own
    assert_eq!(publish(&router, 1), [1]);
    let _ = std::fs::remove_dir_all(&dir);
}
