//! The router's own L-lines end to end: every one told in an app's stream is one count on
//! `/metrics` (`logplex_platform_events_total{app,code}`), the lines they told lost are
//! `logplex_platform_dropped_messages_total{app,code}`, and an app key sees only its app's.
//! A durable drain's L10 is told once in the stream and handed to the drain once.

mod support;

use std::time::{Duration, Instant};

use serde_json::Value;
use support::port::PortHold;
use support::{Router, TempDir, frame, frames, send};

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

/// The count each L10 report about `drain` in `text` tells, in order.
fn l10_drops(text: &str, drain: &str) -> Vec<u64> {
    let head = format!("Error L10 (output buffer overflow): drain '{drain}' dropped ");
    text.split(&head)
        .skip(1)
        .filter_map(|rest| rest.split(' ').next()?.parse().ok())
        .collect()
}

/// Reads octet-counted frames from the first connection to `listener` into `got`.
fn receive(listener: std::net::TcpListener) -> std::sync::Arc<std::sync::Mutex<Vec<u8>>> {
    let got = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let keep = got.clone();
    std::thread::spawn(move || {
        for mut c in listener.incoming().flatten() {
            let mut buf = vec![0u8; 1 << 16];
            while let Ok(n) = std::io::Read::read(&mut c, &mut buf) {
                if n == 0 {
                    break;
                }
                keep.lock().unwrap().extend_from_slice(&buf[..n]);
            }
        }
    });
    got
}

#[test]
fn a_durable_drains_l10_is_told_once_in_the_stream_and_once_to_the_drain() {
    let dir = TempDir::new("l10-durable");
    let hold = PortHold::new();
    let port = hold.port();
    let router = Router::start(
        &dir.0,
        // The history keeps every line sent, so that no L10 line is pushed out of it.
        &[
            "--durable-budget-mb",
            "1",
            "--drain-timeout",
            "1",
            "--history-lines",
            "20000",
        ],
    );
    let token = router.create_app("shop");
    let (status, body) = router.curl(&[
        "-X",
        "POST",
        "-d",
        &serde_json::json!({ "url": format!("syslog://127.0.0.1:{port}"), "durable": true })
            .to_string(),
        "/apps/shop/log-drains",
    ]);
    assert_eq!(status, 201, "{body}");
    let drain: Value = serde_json::from_str(&body).unwrap();
    let drain_token = drain["token"].as_str().unwrap().to_owned();
    // 2.5 MB of lines into a 1 MB disk budget while the receiver is down.
    let pad = "x".repeat(500);
    let mut conn = router.connect();
    let n = 5000;
    for i in 0..n {
        send(&mut conn, &frame(&token, "web.1", &format!("{pad} n={i}")));
    }
    router.wait_accepted("shop", n);
    let events = "logplex_platform_events_total{app=\"shop\",code=\"L10\"}";
    let dropped = "logplex_platform_dropped_messages_total{app=\"shop\",code=\"L10\"}";
    let deadline = Instant::now() + Duration::from_secs(15);
    // Until the losses have stopped (the same L10s twice, half a second apart) and the
    // metric agrees with them.
    let mut before: Vec<u64> = Vec::new();
    let told = loop {
        let told = l10_drops(
            &router.history("shop", &["--source", "logplex"]).join("\n"),
            &drain_token,
        );
        let m = router.curl(&["/metrics"]).1;
        if !told.is_empty()
            && told == before
            && sample(&m, events) == Some(told.len() as u64)
            && sample(&m, dropped) == Some(told.iter().sum())
        {
            break told;
        }
        before = told.clone();
        assert!(
            Instant::now() < deadline,
            "L10 told and counted: {told:?} {m}"
        );
        std::thread::sleep(Duration::from_millis(500));
    };
    // The receiver comes up: the drain gets its own copy of each L10 (up to 64), and the
    // stream is not told again.
    let got = receive(std::net::TcpListener::bind(("127.0.0.1", port)).unwrap());
    let deadline = Instant::now() + Duration::from_secs(20);
    let to_drain = loop {
        let bytes = got.lock().unwrap().clone();
        let text = String::from_utf8_lossy(&bytes).into_owned();
        let to_drain = l10_drops(&text, &drain_token);
        if to_drain.len() >= told.len().min(64) {
            break to_drain;
        }
        assert!(
            Instant::now() < deadline,
            "the drain's own L10s: {to_drain:?} of {told:?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(to_drain[..], told[..told.len().min(64)]);
    let again = l10_drops(
        &router.history("shop", &["--source", "logplex"]).join("\n"),
        &drain_token,
    );
    assert_eq!(again, told, "told once in the stream");
    let m = router.curl(&["/metrics"]).1;
    assert_eq!(sample(&m, events), Some(told.len() as u64), "{m}");
}
