//! The router's own L-lines end to end: every one told in an app's stream is one count on
//! `/metrics` (`logplex_platform_events_total{app,code}`), the lines they told lost are
//! `logplex_platform_dropped_messages_total{app,code}`, and an app key sees only its app's.

mod support;

use serde_json::Value;
use support::{Router, TempDir, frames, send};

/// The value of the series `series` (`name{labels}`) in the exposition `text`.
fn sample(text: &str, series: &str) -> Option<u64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.trim().parse().ok())
}

/// The `N` of every `Error L12 (…): N messages dropped since …` line.
fn l12_drops(lines: &[String]) -> Vec<u64> {
    lines
        .iter()
        .filter_map(|l| {
            let rest = l.split("Error L12 (app rate limit exceeded): ").nth(1)?;
            rest.split(' ').next()?.parse().ok()
        })
        .collect()
}

#[test]
fn rate_limited_lines_in_history_agree_with_the_metric() {
    let dir = TempDir::new("l12");
    let router = Router::start(&dir.0, &["--app-rate", "5"]);
    let token = router.create_app("shop");
    router.create_app("blog");
    let mut conn = router.connect();
    send(&mut conn, &frames(&token, "web.1", "x", 0..40));
    drop(conn);
    let stats = router.wait_stats("shop", "every line accepted or refused", |s| {
        s["accepted"].as_u64().unwrap_or(0) + s["rejected"]["rate_limited"].as_u64().unwrap_or(0)
            == 40
    });
    let refused = stats["rejected"]["rate_limited"].as_u64().unwrap();
    assert!(refused > 0, "over the budget: {stats}");
    // Losses after the first report are told at most once a second: wait for all of them.
    let events = "logplex_platform_events_total{app=\"shop\",code=\"L12\"}";
    let dropped = "logplex_platform_dropped_messages_total{app=\"shop\",code=\"L12\"}";
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let metrics = loop {
        let (s, m) = router.curl(&["/metrics"]);
        assert_eq!(s, 200, "{m}");
        if sample(&m, dropped) == Some(refused) {
            break m;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "every refused line told: {m}"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    };
    let told = l12_drops(&router.history("shop", &[]));
    assert!(!told.is_empty());
    assert_eq!(
        sample(&metrics, events),
        Some(told.len() as u64),
        "{told:?}"
    );
    assert_eq!(told.iter().sum::<u64>(), refused);
    assert_eq!(
        sample(
            &metrics,
            "logplex_platform_events_total{app=\"blog\",code=\"L12\"}"
        ),
        Some(0)
    );
    assert!(metrics.contains("# TYPE logplex_platform_events_total counter"));

    // An app key: its own app's series only.
    let (s, b) = router.curl(&["-X", "POST", "/apps/shop/keys"]);
    assert_eq!(s, 201, "{b}");
    let key = serde_json::from_str::<Value>(&b).unwrap()["key"]
        .as_str()
        .unwrap()
        .to_owned();
    let (s, mine) = router.curl_as(&key, &["/metrics"]);
    assert_eq!(s, 200, "{mine}");
    assert_eq!(sample(&mine, events), Some(told.len() as u64), "{mine}");
    assert!(!mine.contains("blog"), "{mine}");
}
