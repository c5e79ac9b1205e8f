//! syslog drains end to end: the real router delivering to a real rsyslogd (Debian's) over
//! TCP and TLS, and to a UDP socket; receivers down, slow and untrusted; exact accounting.

mod support;

use std::time::Duration;

use serde_json::Value;
use support::port::PortHold;
use support::rsyslog::{Rsyslog, TlsFiles};
use support::{Router, TempDir, frame, send};

/// `expected` lines per process arrived intact and in order.
fn assert_in_order(lines: &[String], token: &str, process: &str, prefix: &str, n: usize) {
    let mine: Vec<&String> = lines
        .iter()
        .filter(|l| l.starts_with(&format!("{token}|app|{process}|")))
        .collect();
    assert_eq!(
        mine.len(),
        n,
        "{process}: {:?}",
        &lines[..lines.len().min(5)]
    );
    for (i, l) in mine.iter().enumerate() {
        let want = format!("{token}|app|{process}|{prefix} n={i} path=\"/a b\" status=200");
        assert_eq!(**l, want);
    }
}

fn send_lines(router: &Router, token: &str, n: usize) {
    let mut conn = router.connect();
    for i in 0..n {
        for process in ["web.1", "worker.1"] {
            send(
                &mut conn,
                &frame(
                    token,
                    process,
                    &format!("{process} n={i} path=\"/a b\" status=200"),
                ),
            );
        }
    }
}

#[test]
fn rsyslog_over_tcp_gets_every_line_intact_and_in_order() {
    let dir = TempDir::new("drain-tcp");
    let rsyslog = Rsyslog::start_free(&dir.0.join("rsyslog"), None);
    let router = Router::start(&dir.0.join("router"), &[]);
    let token = router.create_app("shop");
    let drain = router.add_drain("shop", &format!("syslog://127.0.0.1:{}", rsyslog.port));
    let drain_token = drain["token"].as_str().unwrap().to_owned();
    assert!(drain_token.starts_with("d."));
    assert_eq!(drain["app"]["name"], "shop");
    send_lines(&router, &token, 500);
    let lines = rsyslog.wait_lines(1000);
    assert_in_order(&lines, &drain_token, "web.1", "web.1", 500);
    assert_in_order(&lines, &drain_token, "worker.1", "worker.1", 500);
    let d = router.wait_drain("shop", &drain_token, "deliver everything", |h| {
        h["sent"] == 1000
    });
    let h = &d["delivery"];
    assert_eq!(
        (h["dropped"].as_u64(), h["buffered"].as_u64()),
        (Some(0), Some(0)),
        "{d}"
    );
    assert_eq!(h["degraded"], false);
    assert!(h["last_success_at"].is_string());
}

#[test]
fn rsyslog_over_tls_with_the_operators_ca() {
    let dir = TempDir::new("drain-tls");
    let pki = support::pki::make(&dir.0.join("pki"), "drain");
    let rsyslog = Rsyslog::start_free(
        &dir.0.join("rsyslog"),
        Some(TlsFiles {
            ca: &pki.ca,
            cert: &pki.cert,
            key: &pki.key,
        }),
    );
    let router = Router::start(
        &dir.0.join("router"),
        &["--drain-ca", pki.ca.to_str().unwrap()],
    );
    let token = router.create_app("shop");
    let drain = router.add_drain("shop", &format!("syslog+tls://localhost:{}", rsyslog.port));
    let drain_token = drain["token"].as_str().unwrap().to_owned();
    send_lines(&router, &token, 100);
    let lines = rsyslog.wait_lines(200);
    assert_in_order(&lines, &drain_token, "web.1", "web.1", 100);
    assert_in_order(&lines, &drain_token, "worker.1", "worker.1", 100);
}

#[test]
fn an_untrusted_certificate_delivers_nothing_and_says_l14() {
    let dir = TempDir::new("drain-badca");
    let pki = support::pki::make(&dir.0.join("pki"), "drain");
    let rsyslog = Rsyslog::start_free(
        &dir.0.join("rsyslog"),
        Some(TlsFiles {
            ca: &pki.ca,
            cert: &pki.cert,
            key: &pki.key,
        }),
    );
    // The router trusts another CA only.
    let other = support::pki::make(&dir.0.join("other"), "other");
    let router = Router::start(
        &dir.0.join("router"),
        &["--drain-ca", other.ca.to_str().unwrap()],
    );
    let token = router.create_app("shop");
    let url = format!("syslog+tls://localhost:{}", rsyslog.port);
    let drain = router.add_drain("shop", &url);
    let mut conn = router.connect();
    send(&mut conn, &frame(&token, "web.1", "secret"));
    let d = router.wait_drain("shop", drain["id"].as_str().unwrap(), "fail", |h| {
        h["degraded"] == true && h["last_error"].is_string()
    });
    assert!(
        d["delivery"]["last_error"]
            .as_str()
            .unwrap()
            .contains("TLS"),
        "{d}"
    );
    assert_eq!(d["delivery"]["sent"], 0);
    let start = std::time::Instant::now();
    loop {
        let l14 = router.history("shop", &["--source", "logplex"]);
        if let Some(l) = l14
            .iter()
            .find(|l| l.contains("Error L14 (certificate validation): error="))
        {
            assert!(l.contains(&format!("uri=\"{url}\"")), "{l}");
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "no L14 line: {l14:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        rsyslog.lines().is_empty(),
        "nothing reached the untrusted receiver"
    );
}

#[test]
fn a_receiver_down_then_up_gets_what_fit_and_the_rest_is_counted_with_l10() {
    let dir = TempDir::new("drain-down");
    let hold = PortHold::new();
    let port = hold.port();
    let router = Router::start(
        &dir.0.join("router"),
        &["--drain-buffer", "50", "--drain-timeout", "1"],
    );
    let token = router.create_app("shop");
    let drain = router.add_drain("shop", &format!("syslog://127.0.0.1:{port}"));
    let id = drain["id"].as_str().unwrap().to_owned();
    let drain_token = drain["token"].as_str().unwrap().to_owned();
    let mut conn = router.connect();
    for i in 0..200 {
        send(&mut conn, &frame(&token, "web.1", &format!("down n={i}")));
    }
    router.wait_accepted("shop", 200);
    let down = router.wait_drain("shop", &id, "notice the receiver is down", |h| {
        h["degraded"] == true
    });
    assert!(
        down["delivery"]["last_error"]
            .as_str()
            .unwrap()
            .contains("connect"),
        "{down}"
    );
    // The receiver comes up: the drain reconnects by itself.
    let rsyslog = Rsyslog::start(&dir.0.join("rsyslog"), port, None);
    let d = router.wait_drain("shop", &id, "catch up", |h| {
        h["buffered"] == 0 && h["sent"].as_u64().unwrap_or(0) > 0
    });
    let h = &d["delivery"];
    let (delivered, dropped) = (h["sent"].as_u64().unwrap(), h["dropped"].as_u64().unwrap());
    assert_eq!(
        delivered + dropped,
        200,
        "every line delivered or counted: {d}"
    );
    assert_eq!(h["accepted"], 200);
    assert!(dropped >= 100, "the buffer of 50 overflowed: {d}");
    // The receiver got the newest lines, in order, after the drain's own L10.
    let lines = rsyslog.wait_lines(delivered as usize + 1);
    let l10 = lines
        .iter()
        .position(|l| l.contains("Error L10 (output buffer overflow): drain '"))
        .expect("the drain's own L10");
    assert!(
        lines[l10].starts_with(&format!("{drain_token}|paas|logplex|")),
        "{}",
        lines[l10]
    );
    assert!(lines.last().unwrap().ends_with("down n=199"));
    // The app's stream says it too, and the N of its L10 lines add up to the drain's
    // dropped: each loss told once, none missing.
    let stream = router.history("shop", &["--source", "logplex"]);
    let told: Vec<u64> = stream
        .iter()
        .filter_map(|l| {
            l.split(&format!(
                "Error L10 (output buffer overflow): drain '{drain_token}' dropped "
            ))
            .nth(1)?
            .split(' ')
            .next()?
            .parse()
            .ok()
        })
        .collect();
    assert!(!told.is_empty(), "{stream:?}");
    assert_eq!(told.iter().sum::<u64>(), dropped, "{stream:?}");
    // And those the drain itself was told add up to no more than that.
    let to_drain: u64 = lines
        .iter()
        .filter_map(|l| {
            l.split("dropped ")
                .nth(1)?
                .split(' ')
                .next()?
                .parse::<u64>()
                .ok()
        })
        .sum();
    assert!(
        to_drain > 0 && to_drain <= dropped,
        "{to_drain} of {dropped}"
    );
}

#[test]
fn udp_drains_get_one_datagram_per_message() {
    let dir = TempDir::new("drain-udp");
    let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let router = Router::start(&dir.0, &[]);
    let token = router.create_app("shop");
    let drain = router.add_drain(
        "shop",
        &format!("syslog+udp://{}", socket.local_addr().unwrap()),
    );
    let mut conn = router.connect();
    for i in 0..3 {
        send(&mut conn, &frame(&token, "web.1", &format!("udp n={i}")));
    }
    let mut buf = [0u8; 2048];
    for i in 0..3 {
        let n = socket.recv(&mut buf).unwrap();
        let got = String::from_utf8_lossy(&buf[..n]);
        let want = format!(
            " {} app web.1 - - udp n={i}",
            drain["token"].as_str().unwrap()
        );
        assert!(got.starts_with("<190>1 ") && got.ends_with(&want), "{got}");
    }
}

#[test]
fn drains_are_managed_through_the_api_and_cli_and_survive_a_restart() {
    let dir = TempDir::new("drain-api");
    let mut router = Router::start(&dir.0, &["--max-drains", "2"]);
    router.create_app("shop");
    router.create_app("blog");
    let a = router.add_drain("shop", "syslog://127.0.0.1:1514");
    let post = |url: &str| {
        router.curl(&[
            "-X",
            "POST",
            "-d",
            &serde_json::json!({ "url": url }).to_string(),
            "/apps/shop/log-drains",
        ])
    };
    let (s, b) = post("syslog://127.0.0.1:1514");
    assert_eq!(s, 409, "{b}");
    let (s, b) = post("ftp://nope");
    assert_eq!(s, 422);
    assert!(b.contains("scheme"), "{b}");
    let (s, b) = post("http://example.com/logs");
    assert_eq!(s, 422);
    assert!(b.contains("loopback"), "{b}");
    router.add_drain("shop", "https://127.0.0.1:9/logs");
    let (s, b) = post("syslog+udp://127.0.0.1:1515");
    assert_eq!(s, 422);
    assert!(b.contains("maximum number of drains"), "{b}");
    // Two drains are one series per app and kind in /metrics (each drain's own figures are
    // in the drains API).
    let metrics = router.curl(&["/metrics"]).1;
    let series = metrics
        .lines()
        .filter(|l| l.starts_with("logplex_lines_dropped_total{app=\"shop\",consumer=\"drain\"}"))
        .count();
    assert_eq!(series, 1, "{metrics}");
    // Another app's drains are its own.
    let (s, _) = router.curl(&[&format!(
        "/apps/blog/log-drains/{}",
        a["token"].as_str().unwrap()
    )]);
    assert_eq!(s, 404);
    // The CLI lists them with their health.
    let out = router.paas(&["drains", "-a", "shop"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("syslog://127.0.0.1:1514")
            && text.contains("sent 0  (syslog: no acknowledgement)"),
        "{text}"
    );
    // Survives a restart, then is removed by its URL-encoded URL.
    router.terminate();
    let router = Router::start(&dir.0, &[]);
    let list: Vec<Value> =
        serde_json::from_value(router.get_json("/apps/shop/log-drains")).unwrap();
    assert_eq!(list.len(), 2);
    let out = router.paas(&["drains:remove", "syslog://127.0.0.1:1514", "-a", "shop"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = router.paas(&[
        "drains:add",
        "syslog+tls://logs.example.com:6514",
        "-a",
        "shop",
    ]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("Drain token: d."));
    let list: Vec<Value> =
        serde_json::from_value(router.get_json("/apps/shop/log-drains")).unwrap();
    let urls: Vec<&str> = list.iter().filter_map(|d| d["url"].as_str()).collect();
    assert_eq!(
        urls,
        [
            "https://127.0.0.1:9/logs",
            "syslog+tls://logs.example.com:6514"
        ]
    );
}

/// A receiver that reads as fast as it can and keeps every byte.
fn fast_receiver() -> (
    std::net::SocketAddr,
    std::sync::Arc<std::sync::Mutex<Vec<u8>>>,
) {
    fast_receiver_on(0)
}

/// `fast_receiver` on a given loopback port.
fn fast_receiver_on(
    port: u16,
) -> (
    std::net::SocketAddr,
    std::sync::Arc<std::sync::Mutex<Vec<u8>>>,
) {
    let listener = std::net::TcpListener::bind(("127.0.0.1", port)).unwrap();
    let addr = listener.local_addr().unwrap();
    let got = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let keep = got.clone();
    std::thread::spawn(move || {
        for mut c in listener.incoming().flatten() {
            let keep = keep.clone();
            std::thread::spawn(move || {
                let mut buf = vec![0u8; 1 << 16];
                while let Ok(n) = std::io::Read::read(&mut c, &mut buf) {
                    if n == 0 {
                        break;
                    }
                    keep.lock().unwrap().extend_from_slice(&buf[..n]);
                }
            });
        }
    });
    (addr, got)
}

/// The octet-counted frames in `bytes`.
fn frames_in(mut bytes: &[u8]) -> Vec<String> {
    let mut out = Vec::new();
    while let Some(sp) = bytes.iter().position(|&b| b == b' ') {
        let n: usize = std::str::from_utf8(&bytes[..sp]).unwrap().parse().unwrap();
        out.push(String::from_utf8_lossy(&bytes[sp + 1..sp + 1 + n]).into_owned());
        bytes = &bytes[sp + 1 + n..];
    }
    out
}

#[test]
fn a_black_holed_drain_slows_nothing_and_counts_exactly() {
    let dir = TempDir::new("drain-blackhole");
    // A receiver that accepts and never reads: the kernel's buffers fill, then writes stall.
    let hole = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let hole_addr = hole.local_addr().unwrap();
    let _keep = std::thread::spawn(move || {
        let mut held = Vec::new();
        for c in hole.incoming().flatten() {
            held.push(c);
        }
    });
    let (good_addr, good_bytes) = fast_receiver();
    let router = Router::start(
        &dir.0.join("router"),
        &["--drain-buffer", "10000", "--drain-timeout", "1"],
    );
    let token = router.create_app("shop");
    let stuck = router.add_drain("shop", &format!("syslog://{hole_addr}"));
    let good = router.add_drain("shop", &format!("syslog://{good_addr}"));
    let url = support::log_session(&router, "shop", r#"{"tail": true, "lines": 0}"#);
    let tail = support::Stream::open(&url, "text/plain");
    router.wait_stats("shop", "open the tail", |s| s["tails"] == 1);
    // 20,000 lines of 1 KB: more than the kernel holds for the hole plus the drain's buffer.
    let n = 20_000;
    let big = "x".repeat(1000);
    let mut conn = router.connect();
    for chunk in 0..20 {
        for i in chunk * 1000..(chunk + 1) * 1000 {
            send(&mut conn, &frame(&token, "web.1", &format!("n={i} {big}")));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    router.wait_accepted("shop", n as u64);
    // The good drain and the tail get everything, in order; the stuck one slows neither.
    tail.until(&format!("n={} ", n - 1));
    // (The good drain also carries the app stream's L10 lines about the stuck one.)
    let g = router.wait_drain(
        "shop",
        good["id"].as_str().unwrap(),
        "deliver everything",
        |h| h["sent"].as_u64().unwrap_or(0) >= n as u64 && h["buffered"] == 0,
    );
    assert_eq!(g["delivery"]["dropped"], 0, "{g}");
    let frames: Vec<String> = frames_in(&good_bytes.lock().unwrap())
        .into_iter()
        .filter(|f| f.contains(" app web.1 "))
        .collect();
    assert_eq!(frames.len(), n);
    assert!(
        frames
            .iter()
            .enumerate()
            .all(|(i, f)| f.contains(&format!(" web.1 - - n={i} ")))
    );
    let d = router.wait_drain("shop", stuck["id"].as_str().unwrap(), "fall behind", |h| {
        h["dropped"].as_u64().unwrap_or(0) > 0 && h["accepted"] == n as u64
    });
    let h = &d["delivery"];
    let sum = h["sent"].as_u64().unwrap()
        + h["dropped"].as_u64().unwrap()
        + h["buffered"].as_u64().unwrap();
    assert_eq!(sum, n as u64, "sent + dropped + buffered = accepted: {d}");
    // A receiver that never reads took a socket buffer's worth: sent, never "delivered"
    // (issue 17: it showed 12,277 delivered).
    assert!(h["sent"].as_u64().unwrap() > 0, "{d}");
    assert_eq!(h["delivered"], 0, "syslog has no acknowledgement: {d}");
}

#[test]
fn a_clean_stop_delivers_what_the_drain_buffered() {
    let dir = TempDir::new("drain-stop");
    let rsyslog = Rsyslog::start_free(&dir.0.join("rsyslog"), None);
    let mut router = Router::start(&dir.0.join("router"), &["--drain-buffer", "10000"]);
    let token = router.create_app("shop");
    router.add_drain("shop", &format!("syslog://127.0.0.1:{}", rsyslog.port));
    let mut conn = router.connect();
    for i in 0..5000 {
        send(
            &mut conn,
            &frame(&token, "web.1", &format!("in flight n={i}")),
        );
    }
    router.wait_accepted("shop", 5000);
    router.terminate();
    let lines = rsyslog.wait_lines(5000);
    assert_eq!(lines.len(), 5000);
    assert!(lines[4999].ends_with("in flight n=4999"));
}

/// Adds a durable drain; returns its JSON.
fn add_durable(router: &Router, url: &str) -> Value {
    let (status, body) = router.curl(&[
        "-X",
        "POST",
        "-d",
        &serde_json::json!({ "url": url, "durable": true }).to_string(),
        "/apps/shop/log-drains",
    ]);
    assert_eq!(status, 201, "{body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["durable"], true);
    v
}

/// Every `durable n=I` for I in 0..n arrived (duplicates allowed, gaps not).
fn assert_none_missing(lines: &[String], n: usize) {
    let mut seen = vec![false; n];
    for l in lines {
        if let Some(i) = l
            .rsplit("durable n=")
            .next()
            .and_then(|v| v.parse::<usize>().ok())
            && i < n
        {
            seen[i] = true;
        }
    }
    let missing: Vec<usize> = (0..n).filter(|i| !seen[*i]).collect();
    assert!(
        missing.is_empty(),
        "missing {} lines, first {:?}",
        missing.len(),
        &missing[..missing.len().min(5)]
    );
}

/// Sends `durable n=I` for I in 0..n and waits until all are accepted; the connection stays
/// open.
fn send_numbered(router: &Router, token: &str, n: usize) -> std::net::TcpStream {
    let mut conn = router.connect();
    for i in 0..n {
        send(&mut conn, &frame(token, "web.1", &format!("durable n={i}")));
    }
    router.wait_accepted("shop", n as u64);
    conn
}

#[test]
fn a_durable_drain_keeps_everything_through_a_receiver_outage_and_a_restart() {
    let dir = TempDir::new("drain-durable");
    let hold = PortHold::new();
    let port = hold.port();
    let mut router = Router::start(&dir.0.join("router"), &["--drain-timeout", "1"]);
    let token = router.create_app("shop");
    let drain = add_durable(&router, &format!("syslog://127.0.0.1:{port}"));
    let id = drain["id"].as_str().unwrap().to_owned();
    // 5,000 lines, five times the in-memory buffer, while the receiver is down.
    let n = 5000;
    let conn = send_numbered(&router, &token, n);
    let d = router.wait_drain("shop", &id, "spool everything", |h| {
        h["buffered"] == n as u64
    });
    assert_eq!(
        d["delivery"]["dropped"], 0,
        "nothing dropped while the disk has room: {d}"
    );
    drop(conn);
    router.terminate();
    // Back up, and the receiver too: everything arrives.
    let router = Router::start(&dir.0.join("router"), &["--drain-timeout", "1"]);
    let rsyslog = Rsyslog::start(&dir.0.join("rsyslog"), port, None);
    router.wait_drain("shop", &id, "deliver after the restart", |h| {
        h["buffered"] == 0 && h["sent"].as_u64().unwrap_or(0) >= n as u64
    });
    assert_none_missing(&rsyslog.wait_lines(n), n);
}

#[test]
fn a_durable_drain_loses_nothing_synced_when_the_router_is_killed() {
    let dir = TempDir::new("drain-kill");
    let hold = PortHold::new();
    let port = hold.port();
    let mut router = Router::start(&dir.0.join("router"), &["--drain-timeout", "1"]);
    let token = router.create_app("shop");
    let drain = add_durable(&router, &format!("syslog://127.0.0.1:{port}"));
    let id = drain["id"].as_str().unwrap().to_owned();
    let n = 2000;
    let _conn = send_numbered(&router, &token, n);
    router.wait_drain("shop", &id, "spool everything", |h| {
        h["buffered"] == n as u64
    });
    // Past the sync window (100 ms), then SIGKILL: no clean stop.
    std::thread::sleep(Duration::from_millis(400));
    let _ = router.child.kill();
    let _ = router.child.wait();
    let router = Router::start(&dir.0.join("router"), &[]);
    let rsyslog = Rsyslog::start(&dir.0.join("rsyslog"), port, None);
    router.wait_drain("shop", &id, "deliver after the crash", |h| {
        h["buffered"] == 0 && h["sent"].as_u64().unwrap_or(0) >= n as u64
    });
    assert_none_missing(&rsyslog.wait_lines(n), n);
}

/// Regression (issue 17): 200 bytes of garbage in the middle of a durable drain's segment lost
/// every intact record after them, and health said `dropped 0`, with no L10.
#[test]
fn a_damaged_durable_segment_loses_only_the_damaged_records_and_says_so() {
    let dir = TempDir::new("drain-damaged");
    let hold = PortHold::new();
    let port = hold.port();
    let mut router = Router::start(&dir.0.join("router"), &["--drain-timeout", "1"]);
    let token = router.create_app("shop");
    let drain = add_durable(&router, &format!("syslog://127.0.0.1:{port}"));
    let id = drain["id"].as_str().unwrap().to_owned();
    let drain_token = drain["token"].as_str().unwrap().to_owned();
    let n = 2000;
    let conn = send_numbered(&router, &token, n);
    router.wait_drain("shop", &id, "spool everything", |h| {
        h["buffered"] == n as u64
    });
    drop(conn);
    router.terminate();
    let queue = dir.0.join("router").join("drains").join(&id);
    let segment = std::fs::read_dir(&queue)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "seg"))
        .expect("a segment");
    let mut bytes = std::fs::read(&segment).unwrap();
    let at = bytes.len() / 2;
    for (i, b) in bytes[at..at + 200].iter_mut().enumerate() {
        *b = (i as u8).wrapping_mul(151).wrapping_add(7);
    }
    std::fs::write(&segment, &bytes).unwrap();

    let router = Router::start(&dir.0.join("router"), &["--drain-timeout", "1"]);
    let (_, received) = fast_receiver_on(port);
    let d = router.wait_drain("shop", &id, "deliver what survived", |h| {
        h["buffered"] == 0 && h["sent"].as_u64().unwrap_or(0) > 0
    });
    let h = &d["delivery"];
    let (delivered, dropped) = (h["sent"].as_u64().unwrap(), h["dropped"].as_u64().unwrap());
    // 200 bytes cover a few ~80-byte records; everything else is delivered.
    assert!((2..=5).contains(&dropped), "dropped {dropped}: {d}");
    assert_eq!(delivered + dropped, n as u64, "{d}");
    // The lines after the damage arrived, the last one included; none twice.
    let lines = frames_in(&received.lock().unwrap());
    let got: Vec<&String> = lines.iter().filter(|l| l.contains("durable n=")).collect();
    assert_eq!(got.len() as u64, delivered);
    assert!(
        got.last()
            .unwrap()
            .ends_with(&format!("durable n={}", n - 1))
    );
    // Told as L10, to the drain first and in the app's stream, with the same N.
    let told = format!(
        "Error L10 (output buffer overflow): drain '{drain_token}' dropped {dropped} messages"
    );
    assert!(
        lines[0].contains(&told),
        "the drain's own L10: {}",
        lines[0]
    );
    let stream = router.history("shop", &["--source", "logplex"]);
    assert!(stream.iter().any(|l| l.contains(&told)), "{stream:?}");
}

/// The tests' receivers start on a port held for them (`support::port`).
#[test]
fn a_held_port_refuses_connections_until_a_receiver_listens_beside_it() {
    let hold = PortHold::new();
    let addr = ("127.0.0.1", hold.port());
    assert_eq!(
        std::net::TcpStream::connect(addr)
            .map_err(|e| e.kind())
            .err(),
        Some(std::io::ErrorKind::ConnectionRefused)
    );
    let listener = std::net::TcpListener::bind(addr).expect("a receiver binds beside the hold");
    assert!(std::net::TcpStream::connect(addr).is_ok());
    drop(listener);
}

/// RELP (issue 17): rsyslog's acknowledged protocol. Every line reaches rsyslog's imrelp and
/// is `delivered` (acknowledged), not only `sent`.
#[test]
fn a_relp_drain_counts_what_rsyslog_acknowledged_as_delivered() {
    let dir = TempDir::new("drain-relp");
    let hold = PortHold::new();
    let port = hold.port();
    let rsyslog = Rsyslog::start_relp(&dir.0.join("rsyslog"), port);
    let router = Router::start(&dir.0.join("router"), &["--drain-timeout", "1"]);
    let token = router.create_app("shop");
    let drain = router.add_drain("shop", &format!("relp://127.0.0.1:{port}"));
    let id = drain["id"].as_str().unwrap().to_owned();
    let drain_token = drain["token"].as_str().unwrap().to_owned();
    // Within the drain's buffer (1024 lines), so none is dropped while a batch waits for its
    // acknowledgements.
    let n = 800;
    let _conn = send_numbered(&router, &token, n);
    let d = router.wait_drain("shop", &id, "acknowledge every line", |h| {
        h["delivered"] == n as u64
    });
    assert_eq!(d["delivery"]["sent"], n as u64, "{d}");
    assert_eq!(d["delivery"]["dropped"], 0, "{d}");
    let lines = rsyslog.wait_lines(n);
    assert_none_missing(&lines, n);
    assert!(
        lines
            .iter()
            .all(|l| l.starts_with(&format!("{drain_token}|app|web.1|"))),
        "{:?}",
        &lines[..3]
    );
}

/// A RELP receiver that stops answering (SIGSTOP: the kernel still takes bytes) gets nothing
/// counted as sent or delivered meanwhile; a durable drain keeps the lines, and when the
/// receiver resumes every one of them arrives and is acknowledged.
#[test]
fn a_relp_receiver_that_stops_acknowledging_gets_nothing_counted_and_loses_nothing() {
    let dir = TempDir::new("drain-relp-stop");
    let hold = PortHold::new();
    let port = hold.port();
    let rsyslog = Rsyslog::start_relp(&dir.0.join("rsyslog"), port);
    let router = Router::start(&dir.0.join("router"), &["--drain-timeout", "1"]);
    let token = router.create_app("shop");
    let drain = add_durable(&router, &format!("relp://127.0.0.1:{port}"));
    let id = drain["id"].as_str().unwrap().to_owned();
    let mut conn = router.connect();
    for i in 0..500 {
        send(
            &mut conn,
            &frame(&token, "web.1", &format!("durable n={i}")),
        );
    }
    router.wait_drain("shop", &id, "acknowledge the first 500", |h| {
        h["delivered"] == 500
    });
    let pid = rsyslog.pid().to_string();
    let signal = |sig: &str| {
        let ok = std::process::Command::new("kill")
            .args([sig, &pid])
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "kill {sig} {pid}");
    };
    signal("-STOP");
    for i in 500..1000 {
        send(
            &mut conn,
            &frame(&token, "web.1", &format!("durable n={i}")),
        );
    }
    router.wait_accepted("shop", 1000);
    // The send times out (--drain-timeout 1) without a single acknowledgement.
    let d = router.wait_drain("shop", &id, "fail on the silent receiver", |h| {
        h["last_error"]
            .as_str()
            .is_some_and(|e| e.contains("timed out"))
    });
    assert_eq!(d["delivery"]["delivered"], 500, "{d}");
    assert_eq!(d["delivery"]["sent"], 500, "{d}");
    assert_eq!(d["delivery"]["dropped"], 0, "{d}");
    signal("-CONT");
    router.wait_drain("shop", &id, "deliver the rest", |h| {
        h["delivered"].as_u64().unwrap_or(0) >= 1000 && h["buffered"] == 0
    });
    assert_none_missing(&rsyslog.wait_lines(1000), 1000);
}
