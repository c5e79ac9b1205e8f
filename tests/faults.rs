//! The fault suite, bounded for CI (`benches/faults.sh` runs it in full): a drain's receiver
//! down under load, in default and durable mode, and the router SIGKILLed under load and
//! restarted on the same data directory, and a soak under a steady mixed load.
//! `FAULTS_SECONDS` (the outage; CI default 20, `benches/faults.sh` 300), `FAULTS_RATE` (lines a
//! second; CI default 10,000, `benches/faults.sh` 50,000) and `FAULTS_SOAK_SECONDS` (CI default
//! 120, `benches/faults.sh` 1800) size them.

mod support;

use std::io::Read as _;
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;
use support::port::PortHold;
use support::{Router, TempDir, frame, send};

fn seconds() -> f64 {
    std::env::var("FAULTS_SECONDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20.0)
}

fn rate() -> u64 {
    std::env::var("FAULTS_RATE")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000)
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

/// Waits (up to 90 s: after a long outage the drain's reconnect back-off, capped at 30 s, may
/// be that long) until the drain's report satisfies `check`.
fn wait_back(router: &Router, id: &str, what: &str, check: impl Fn(&Value) -> bool) -> Value {
    let start = Instant::now();
    loop {
        let d = router.drain("shop", id);
        if check(&d["delivery"]) {
            return d;
        }
        assert!(
            start.elapsed() < Duration::from_secs(90),
            "drain never {what}: {d}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
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
    // Held bound, not listening: the receiver is down until `receiver_on` listens beside it.
    let hold = PortHold::new();
    let port = hold.port();
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
    let d = wait_back(&router, &id, "drain the buffer", |h| h["buffered"] == 0);
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
    // Held bound, not listening: the receiver is down until `receiver_on` listens beside it.
    let hold = PortHold::new();
    let port = hold.port();
    // Room on disk for the whole outage (about 256 bytes a line, framed), so none need drop.
    let budget_mb = (seconds() * rate() as f64 * 256.0 / 1e6) as u64 + 64;
    let budget = budget_mb.max(256).to_string();
    let router = Router::start(
        &dir.0,
        &["--drain-timeout", "1", "--durable-budget-mb", &budget],
    );
    let token = router.create_app("shop");
    let drain = add_durable_drain(&router, port);
    let id = drain["id"].as_str().expect("id").to_owned();
    let sent = load(&router, &token);
    router.wait_drain("shop", &id, "spool everything", |h| h["buffered"] == sent);
    let got = receiver_on(port);
    let d = wait_back(&router, &id, "deliver everything", |h| {
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
    // Held bound, not listening: the receiver is down until `receiver_on` listens beside it.
    let hold = PortHold::new();
    let port = hold.port();
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
    wait_back(&router, &id, "deliver what was spooled", |h| {
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

/// One reading of the router process: resident memory (KiB), open file descriptors, CPU time.
#[derive(Debug, Clone, Copy)]
struct Sample {
    rss_kib: u64,
    fds: u64,
    cpu: Duration,
}

fn sample(router: &Router) -> Sample {
    let pid = router.child.id();
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| d.count() as u64)
        .unwrap_or(0);
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command's closing parenthesis: utime and stime are the 12th and 13th.
    let ticks: u64 = stat
        .rsplit_once(')')
        .map(|(_, rest)| {
            rest.split_whitespace()
                .skip(11)
                .take(2)
                .filter_map(|v| v.parse::<u64>().ok())
                .sum()
        })
        .unwrap_or(0);
    Sample {
        rss_kib: router.rss_kib(),
        fds,
        cpu: Duration::from_millis(ticks * 10),
    }
}

/// A receiver that takes a connection, reads for 3 s and hangs up, again and again: a drain
/// whose receiver flaps.
fn flapping_receiver() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    std::thread::spawn(move || {
        for mut c in listener.incoming().flatten() {
            let _ = c.set_read_timeout(Some(Duration::from_millis(200)));
            let start = Instant::now();
            let mut buf = vec![0u8; 1 << 16];
            while start.elapsed() < Duration::from_secs(3) {
                if let Ok(0) = c.read(&mut buf) {
                    break;
                }
            }
        }
    });
    port
}

/// A GET on the API over a plain socket (no process per call): its status.
fn api_get(api: &str, path: &str) -> u16 {
    let host = api.trim_start_matches("http://");
    let Ok(mut s) = std::net::TcpStream::connect(host) else {
        return 0;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {}\r\nConnection: close\r\n\r\n",
        support::KEY
    );
    if std::io::Write::write_all(&mut s, request.as_bytes()).is_err() {
        return 0;
    }
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    String::from_utf8_lossy(&out)
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0)
}

/// A steady mixed load for `FAULTS_SOAK_SECONDS` (CI: 120; `benches/faults.sh soak`: 1800):
/// ingest at 2,000 lines/s, a live tail, a drain to a steady receiver and one to a flapping
/// one, API reads 10 a second. RSS, file descriptors and CPU are printed every 10 s; past the
/// first minute's warm-up (or the first reading, in a short run), RSS may not grow by more
/// than half plus 32 MiB, nor file descriptors by more than 32; and the books balance.
#[test]
fn a_soak_under_mixed_load_holds_memory_and_descriptors_steady() {
    let soak: u64 = std::env::var("FAULTS_SOAK_SECONDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(120);
    let dir = TempDir::new("fault-soak");
    let router = Router::start(&dir.0, &["--drain-timeout", "1"]);
    let token = router.create_app("shop");
    let steady_hold = PortHold::new();
    let steady_port = steady_hold.port();
    let _steady = receiver_on(steady_port);
    let steady = add_drain(&router, &format!("syslog://127.0.0.1:{steady_port}"), false);
    let flapping = add_drain(
        &router,
        &format!("syslog://127.0.0.1:{}", flapping_receiver()),
        false,
    );
    // A live tail, moved to a fresh log session every 20 s (a stream's client gives up at 30).
    let (sessions, session_urls) = std::sync::mpsc::channel::<String>();
    let new_session = || support::log_session(&router, "shop", r#"{"tail": true, "lines": 0}"#);
    sessions.send(new_session()).expect("send");
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let tailed = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut n = 0u64;
            let mut tail = None;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                if let Ok(url) = session_urls.try_recv() {
                    tail = Some(support::Stream::open(&url, "text/plain"));
                }
                if tail.as_ref().and_then(support::Stream::next).is_some() {
                    n += 1;
                }
            }
            n
        })
    };
    let mut session_at = Instant::now();
    let sender = {
        let (stop, mut conn, token) = (stop.clone(), router.connect(), token.clone());
        std::thread::spawn(move || {
            let mut sent = 0u64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let mut batch = Vec::new();
                for _ in 0..20 {
                    batch.extend(frame(&token, "web.1", &format!("soak n={sent}")));
                    sent += 1;
                }
                send(&mut conn, &batch);
                std::thread::sleep(Duration::from_millis(10));
            }
            sent
        })
    };
    let reader = {
        let (stop, api) = (stop.clone(), router.api.clone());
        std::thread::spawn(move || {
            let mut failed = 0u64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                for path in ["/apps/shop/stats", "/apps/shop/log-drains", "/apps"] {
                    if api_get(&api, path) != 200 {
                        failed += 1;
                    }
                }
                std::thread::sleep(Duration::from_millis(300));
            }
            failed
        })
    };
    let start = Instant::now();
    let warm_up = Duration::from_secs(60.min(soak / 2));
    let (mut base, mut last) = (None, sample(&router));
    let mut most = last;
    while start.elapsed() < Duration::from_secs(soak) {
        std::thread::sleep(Duration::from_secs(10).min(Duration::from_secs(soak)));
        if session_at.elapsed() >= Duration::from_secs(20) {
            let _ = sessions.send(new_session());
            session_at = Instant::now();
        }
        let s = sample(&router);
        let cpu = (s.cpu.saturating_sub(last.cpu)).as_secs_f64() / 10.0 * 100.0;
        eprintln!(
            "soak t={}s rss={}MiB fds={} cpu={cpu:.0}%",
            start.elapsed().as_secs(),
            s.rss_kib / 1024,
            s.fds
        );
        if base.is_none() && start.elapsed() >= warm_up {
            base = Some(s);
        }
        most = Sample {
            rss_kib: most.rss_kib.max(s.rss_kib),
            fds: most.fds.max(s.fds),
            cpu: s.cpu,
        };
        last = s;
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let sent = sender.join().expect("sender");
    let failed_reads = reader.join().expect("reader");
    let tailed = tailed.join().expect("tail");
    let base = base.unwrap_or(last);
    eprintln!(
        "soak done: {sent} lines, {tailed} tailed, rss {}..{} MiB (peak {}), fds {}..{}",
        base.rss_kib / 1024,
        last.rss_kib / 1024,
        most.rss_kib / 1024,
        base.fds,
        last.fds
    );
    assert!(
        last.rss_kib <= base.rss_kib + base.rss_kib / 2 + 32 * 1024,
        "RSS grew from {} to {} KiB",
        base.rss_kib,
        last.rss_kib
    );
    assert!(
        last.fds <= base.fds + 32,
        "fds grew from {} to {}",
        base.fds,
        last.fds
    );
    assert_eq!(failed_reads, 0, "API reads failed");
    assert!(tailed > 0);
    router.wait_accepted("shop", sent);
    for d in [&steady, &flapping] {
        let id = d["id"].as_str().expect("id");
        let d = wait_back(&router, id, "settle", |h| h["buffered"] == 0);
        let h = &d["delivery"];
        assert_eq!(
            h["sent"].as_u64().unwrap_or(0) + h["dropped"].as_u64().unwrap_or(0),
            h["accepted"].as_u64().unwrap_or(u64::MAX),
            "{d}"
        );
    }
}

/// `paas up` SIGKILLed while requests go through its proxy, restarted on the same data
/// directory: the lock is free again (the kernel let go of it), the app is what it was, and
/// every router line written 150 ms before the kill is in its history.
#[test]
fn paas_up_sigkilled_under_load_restarts_with_its_app_and_history() {
    let dir = TempDir::new("fault-up-kill");
    let flags = [
        "--scale",
        "web=1",
        "--scale",
        "worker=0",
        "--history-lines",
        "100000",
    ];
    let mut up = Router::up(&dir.0, &flags);
    let apps = |r: &Router| {
        let mut v = r.get_json("/apps");
        strip_volatile(&mut v);
        v
    };
    let before = apps(&up);
    let app = before[0]["name"].as_str().expect("the app").to_owned();
    let start = Instant::now();
    while !up
        .get_json(&format!("/apps/{app}/dynos"))
        .as_array()
        .is_some_and(|d| !d.is_empty() && d.iter().all(|d| d["state"] == "up"))
    {
        assert!(start.elapsed() < Duration::from_secs(30), "web never up");
        std::thread::sleep(Duration::from_millis(50));
    }
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let sender = {
        let (stop, addr) = (stop.clone(), support::proxy_addr(&up));
        std::thread::spawn(move || {
            let mut ok = 0u64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let Ok(mut s) = std::net::TcpStream::connect(&addr) else {
                    return ok;
                };
                let request = b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
                if std::io::Write::write_all(&mut s, request).is_ok()
                    && support::read_response(&mut s) == Some(200)
                {
                    ok += 1;
                }
            }
            ok
        })
    };
    // Some requests through, then the kill 150 ms after counting the router lines so far.
    let start = Instant::now();
    let written = loop {
        let n = up.history(&app, &["--source", "router"]).len();
        if n >= 20 {
            break n;
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "{n} router lines"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    std::thread::sleep(Duration::from_millis(150));
    let _ = up.child.kill();
    let _ = up.child.wait();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    assert!(sender.join().expect("sender") > 0);

    let up = Router::up(&dir.0, &flags);
    assert_eq!(apps(&up), before, "the app after the kill");
    let kept = up.history(&app, &["--source", "router"]).len();
    assert!(
        kept >= written,
        "{kept} router lines kept of {written} written before the kill"
    );
}
