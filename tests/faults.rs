//! The fault suite, bounded for CI (`benches/faults.sh` runs it in full): a drain's receiver
//! down under load, in default and durable mode, and the router SIGKILLed under load and
//! restarted on the same data directory. `FAULTS_SECONDS` (default 4) and `FAULTS_RATE`
//! (lines a second, default 10,000) size the load.

mod support;

use std::io::Read as _;
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;
use support::{Router, TempDir, frame, send};

fn seconds() -> f64 {
    std::env::var("FAULTS_SECONDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(4.0)
}

fn rate() -> u64 {
    std::env::var("FAULTS_RATE")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000)
}

/// A port nothing listens on now (the receiver "down"), to listen on later.
fn down_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr").port()
}

/// A receiver on `port` that reads as fast as it can and keeps every byte.
fn receiver_on(port: u16) -> Arc<Mutex<Vec<u8>>> {
    let listener = TcpListener::bind(("127.0.0.1", port)).expect("bind the receiver");
    let got = Arc::new(Mutex::new(Vec::new()));
    let keep = got.clone();
    std::thread::spawn(move || {
        for mut c in listener.incoming().flatten() {
            let keep = keep.clone();
            std::thread::spawn(move || {
                let mut buf = vec![0u8; 1 << 16];
                while let Ok(n) = c.read(&mut buf) {
                    if n == 0 {
                        break;
                    }
                    keep.lock().expect("lock").extend_from_slice(&buf[..n]);
                }
            });
        }
    });
    got
}

/// The octet-counted frames in `bytes`.
fn frames_in(mut bytes: &[u8]) -> Vec<String> {
    let mut out = Vec::new();
    while let Some(sp) = bytes.iter().position(|&b| b == b' ') {
        let Some(n) = std::str::from_utf8(&bytes[..sp])
            .ok()
            .and_then(|n| n.parse::<usize>().ok())
        else {
            break;
        };
        if bytes.len() < sp + 1 + n {
            break;
        }
        out.push(String::from_utf8_lossy(&bytes[sp + 1..sp + 1 + n]).into_owned());
        bytes = &bytes[sp + 1 + n..];
    }
    out
}

/// Sends `fault n=I` lines at `rate()` for `seconds()`, paced every 10 ms; returns how many.
fn load(router: &Router, token: &str) -> u64 {
    let mut conn = router.connect();
    let start = Instant::now();
    let total = (seconds() * rate() as f64) as u64;
    let mut sent = 0u64;
    while sent < total {
        let due = ((start.elapsed().as_secs_f64() * rate() as f64) as u64).min(total);
        if due > sent {
            let mut batch = Vec::new();
            for i in sent..due {
                batch.extend(frame(token, "web.1", &format!("fault n={i}")));
            }
            send(&mut conn, &batch);
            sent = due;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    router.wait_accepted("shop", sent);
    sent
}

fn add_drain(router: &Router, url: &str, durable: bool) -> Value {
    let (status, body) = router.curl(&[
        "-X",
        "POST",
        "-d",
        &serde_json::json!({ "url": url, "durable": durable }).to_string(),
        "/apps/shop/log-drains",
    ]);
    assert_eq!(status, 201, "{body}");
    serde_json::from_str(&body).expect("JSON")
}

/// The N of every L10 line for `drain_token` in the app's stream, summed.
fn told_l10(router: &Router, drain_token: &str) -> u64 {
    let needle = format!("Error L10 (output buffer overflow): drain '{drain_token}' dropped ");
    router
        .history("shop", &["--source", "logplex"])
        .iter()
        .filter_map(|l| {
            l.split(&needle)
                .nth(1)?
                .split(' ')
                .next()?
                .parse::<u64>()
                .ok()
        })
        .sum()
}

#[test]
fn a_receiver_down_under_load_every_line_is_sent_dropped_or_buffered_and_told() {
    let dir = TempDir::new("fault-outage");
    let port = down_port();
    let router = Router::start(&dir.0, &["--drain-buffer", "1000", "--drain-timeout", "1"]);
    let token = router.create_app("shop");
    let drain = add_drain(&router, &format!("syslog://127.0.0.1:{port}"), false);
    let (id, drain_token) = (
        drain["id"].as_str().expect("id").to_owned(),
        drain["token"].as_str().expect("token").to_owned(),
    );
    let sent = load(&router, &token);
    // Down all along: counted exactly, nothing sent.
    let d = router.wait_drain("shop", &id, "account for every line", |h| {
        h["accepted"] == sent
            && h["dropped"].as_u64().unwrap_or(0) + h["buffered"].as_u64().unwrap_or(0) == sent
    });
    assert_eq!(d["delivery"]["sent"], 0, "{d}");
    // The receiver returns: the buffer goes, and the books balance to the line.
    let got = receiver_on(port);
    let d = router.wait_drain("shop", &id, "drain the buffer", |h| h["buffered"] == 0);
    let h = &d["delivery"];
    let (out, dropped) = (
        h["sent"].as_u64().expect("sent"),
        h["dropped"].as_u64().expect("dropped"),
    );
    assert_eq!(
        out + dropped,
        sent,
        "sent + dropped + buffered = accepted: {d}"
    );
    assert_eq!(h["accepted"], sent);
    // A 1000-line buffer (and the batch in hand when the receiver came back) kept the newest.
    assert!(dropped > 0 && out < sent / 2, "{d}");
    assert_eq!(
        told_l10(&router, &drain_token),
        dropped,
        "the L10 lines add up"
    );
    let start = Instant::now();
    loop {
        let frames = frames_in(&got.lock().expect("lock"));
        let lines = frames.iter().filter(|f| f.contains("fault n=")).count() as u64;
        if lines == out {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "{lines} of {out} arrived"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_durable_drain_loses_nothing_to_a_receiver_down_under_load() {
    let dir = TempDir::new("fault-durable");
    let port = down_port();
    let router = Router::start(&dir.0, &["--drain-timeout", "1"]);
    let token = router.create_app("shop");
    let drain = add_durable_drain(&router, port);
    let id = drain["id"].as_str().expect("id").to_owned();
    let sent = load(&router, &token);
    router.wait_drain("shop", &id, "spool everything", |h| h["buffered"] == sent);
    let got = receiver_on(port);
    let d = router.wait_drain("shop", &id, "deliver everything", |h| {
        h["buffered"] == 0 && h["sent"].as_u64().unwrap_or(0) >= sent
    });
    assert_eq!(d["delivery"]["dropped"], 0, "{d}");
    let start = Instant::now();
    loop {
        let frames = frames_in(&got.lock().expect("lock"));
        let mut seen = vec![false; sent as usize];
        for f in &frames {
            if let Some(i) = f
                .rsplit("fault n=")
                .next()
                .and_then(|v| v.parse::<usize>().ok())
                && i < seen.len()
            {
                seen[i] = true;
            }
        }
        let missing = seen.iter().filter(|s| !**s).count();
        if missing == 0 {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "{missing} of {sent} lines missing"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn add_durable_drain(router: &Router, port: u16) -> Value {
    add_drain(router, &format!("syslog://127.0.0.1:{port}"), true)
}

/// `paas logplex` SIGKILLed while lines pour in, restarted on the same data directory: apps,
/// tokens, keys, drains and their settings are what they were; every line accepted more than
/// the sync interval (100 ms) before the kill is in history and reaches the durable drain.
#[test]
fn a_sigkill_under_load_loses_no_configuration_and_nothing_older_than_100_ms() {
    let dir = TempDir::new("fault-kill");
    let port = down_port();
    let flags = ["--history-lines", "1000000", "--drain-timeout", "1"];
    let mut router = Router::start(&dir.0, &flags);
    let token = router.create_app("shop");
    let (s, _) = router.curl(&[
        "-X",
        "POST",
        "-d",
        r#"{"name":"deploys"}"#,
        "/apps/shop/tokens",
    ]);
    assert_eq!(s, 201);
    let (s, _) = router.curl(&["-X", "POST", "/apps/shop/keys"]);
    assert_eq!(s, 201);
    let drain = add_durable_drain(&router, port);
    let id = drain["id"].as_str().expect("id").to_owned();
    let config = |r: &Router| {
        [
            "/apps",
            "/apps/shop/tokens",
            "/apps/shop/keys",
            "/apps/shop/log-drains",
        ]
        .iter()
        .map(|path| {
            let mut v = r.get_json(path);
            strip_volatile(&mut v);
            v
        })
        .collect::<Vec<Value>>()
    };
    let before = config(&router);

    // Lines pour in; the kill comes 150 ms after the router had accepted `acked` of them.
    let sender = {
        let mut conn = router.connect();
        let token = token.clone();
        std::thread::spawn(move || {
            for i in 0..1_000_000u64 {
                let line = frame(&token, "web.1", &format!("fault n={i}"));
                if std::io::Write::write_all(&mut conn, &line).is_err() {
                    return;
                }
                if i % 100 == 99 {
                    std::thread::sleep(Duration::from_millis(10));
                }
            }
        })
    };
    let acked = {
        let start = Instant::now();
        loop {
            let n = router.stats("shop")["accepted"].as_u64().unwrap_or(0);
            if n >= 2000 {
                break n;
            }
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "only {n} accepted"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    };
    std::thread::sleep(Duration::from_millis(150));
    let _ = router.child.kill();
    let _ = router.child.wait();
    let _ = sender.join();

    let router = Router::start(&dir.0, &flags);
    assert_eq!(config(&router), before, "configuration after the kill");
    // History: every line up to `acked`, no gap.
    let stats = router.stats("shop");
    let kept = stats["history"]["lines"].as_u64().unwrap_or(0);
    assert!(
        kept >= acked,
        "{kept} lines of history, {acked} accepted before the kill"
    );
    // The durable drain: every one of them reaches the receiver when it returns.
    let got = receiver_on(port);
    router.wait_drain("shop", &id, "deliver what was spooled", |h| {
        h["buffered"] == 0
    });
    let frames = frames_in(&got.lock().expect("lock"));
    let mut seen = vec![false; acked as usize];
    for f in &frames {
        if let Some(i) = f
            .rsplit("fault n=")
            .next()
            .and_then(|v| v.parse::<usize>().ok())
            && i < seen.len()
        {
            seen[i] = true;
        }
    }
    let missing = seen.iter().filter(|s| !**s).count();
    assert_eq!(
        missing, 0,
        "{missing} of {acked} lines did not reach the durable drain"
    );
}

/// Drops what changes without a change of configuration (health counters, times of use).
fn strip_volatile(v: &mut Value) {
    match v {
        Value::Object(map) => {
            map.remove("delivery");
            map.remove("last_used_at");
            for value in map.values_mut() {
                strip_volatile(value);
            }
        }
        Value::Array(items) => items.iter_mut().for_each(strip_volatile),
        _ => {}
    }
}
