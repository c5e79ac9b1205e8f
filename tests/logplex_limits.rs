//! The router's listeners and API under exhaustion attacks (issue 10), each against the real
//! binary with small limits given as flags: bodies that never finish, idle and capped API
//! connections, log sessions without end, unauthenticated syslog sockets, one address taking
//! every connection; and the smaller ones (an inexact Content-Type, a `logplex_url` built from
//! the client's `Host`, an attacker's `Logplex-Msg-Count` added to counters). Each limit is
//! answered with a status and a body naming it, and counted in `/metrics`.

mod support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use serde_json::Value;
use support::{Router, Stream, TempDir, closed_by_peer, frame, log_session, send};

/// The API's `host:port`.
fn api_addr(router: &Router) -> String {
    router.api.trim_start_matches("http://").to_owned()
}

/// The value of the `/metrics` series that starts with `series` (name and labels), if any.
fn metric(router: &Router, series: &str) -> Option<u64> {
    let text = router.curl(&["/metrics"]).1;
    text.lines()
        .find(|l| l.starts_with(series) && l[series.len()..].starts_with(' '))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

/// Waits until the series reads `want` (or panics after 10 s).
fn wait_metric(router: &Router, series: &str, want: u64) {
    let start = Instant::now();
    loop {
        let got = metric(router, series);
        if got == Some(want) {
            return;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "{series} never reached {want} (is {got:?}): {}",
            router.curl(&["/metrics"]).1
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A `POST /logs` that sends `bytes` of a chunked body and then stalls (never ends it).
fn stalled_post(router: &Router, token: &str, bytes: usize) -> TcpStream {
    let mut s = TcpStream::connect(api_addr(router)).expect("connect api");
    s.set_write_timeout(Some(Duration::from_secs(5))).unwrap();
    let head = format!(
        "POST /logs HTTP/1.1\r\nHost: test\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: application/logplex-1\r\nTransfer-Encoding: chunked\r\n\r\n"
    );
    if s.write_all(head.as_bytes()).is_err() {
        return s;
    }
    let chunk = vec![b'7'; 64 * 1024];
    let mut sent = 0;
    while sent < bytes {
        let n = chunk.len().min(bytes - sent);
        let mut piece = format!("{n:x}\r\n").into_bytes();
        piece.extend_from_slice(&chunk[..n]);
        piece.extend_from_slice(b"\r\n");
        // Refused early: the router closes the connection, and writing fails. That is fine.
        if s.write_all(&piece).is_err() {
            break;
        }
        sent += n;
    }
    s
}

/// What the peer sends until it closes, or `by` passes: (status, text, closed).
fn response(stream: &mut TcpStream, by: Instant) -> (u16, String, bool) {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    let closed = loop {
        let left = by.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break false;
        }
        stream.set_read_timeout(Some(left)).unwrap();
        match stream.read(&mut buf) {
            Ok(0) => break true,
            Ok(n) => got.extend_from_slice(&buf[..n]),
            // A reset after the answer (the router closed with our bytes unread) is a close.
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => break true,
            Err(_) => break false,
        }
    };
    let text = String::from_utf8_lossy(&got).into_owned();
    let status = text
        .strip_prefix("HTTP/1.1 ")
        .and_then(|t| t.get(..3))
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, text, closed)
}

#[test]
fn stalled_log_bodies_get_408_and_their_memory_is_returned() {
    let dir = TempDir::new("stalled-bodies");
    let router = Router::start(&dir.0, &["--body-timeout", "1", "--inflight-body-mb", "8"]);
    let token = router.create_app("shop");
    let before = router.rss_kib();
    let mut peak = before;
    // 64 senders each send 2 MB of a body and stall: 128 MB if the router kept them all.
    let mut stalled = Vec::new();
    for _ in 0..64 {
        stalled.push(stalled_post(&router, &token, 2 << 20));
        peak = peak.max(router.rss_kib());
    }
    let by = Instant::now() + Duration::from_secs(20);
    let answers: Vec<_> = stalled.iter_mut().map(|s| response(s, by)).collect();
    for (status, text, closed) in &answers {
        assert!(
            *closed,
            "every stalled body is answered and closed: {text:?}"
        );
        assert!(
            [0, 408, 503].contains(status),
            "408 (timed out) or 503 (over the budget): {text}"
        );
    }
    let timed_out: Vec<_> = answers.iter().filter(|a| a.0 == 408).collect();
    assert!(
        !timed_out.is_empty(),
        "some bodies were read until they stalled"
    );
    assert!(
        timed_out[0].1.contains("\"request_timeout\"") && timed_out[0].1.contains("1 s"),
        "the 408 says which limit: {}",
        timed_out[0].1
    );
    let grown = peak.saturating_sub(before);
    eprintln!("rss before {before} KiB, peak {peak} KiB");
    assert!(
        grown < 64 * 1024,
        "memory stayed bounded (grew {grown} KiB)"
    );
    // The memory is returned once the bodies are gone.
    let start = Instant::now();
    while router.rss_kib() > before + 24 * 1024 {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "memory never returned: {} KiB, {before} KiB before",
            router.rss_kib()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    eprintln!("rss after {} KiB", router.rss_kib());
    let timeouts = metric(
        &router,
        "logplex_api_refused_total{reason=\"body_timeout\"}",
    );
    assert_eq!(timeouts, Some(timed_out.len() as u64));
}

#[test]
fn the_inflight_body_budget_answers_503_with_retry_after() {
    let dir = TempDir::new("body-budget");
    let router = Router::start(&dir.0, &["--body-timeout", "2", "--inflight-body-mb", "1"]);
    let token = router.create_app("shop");
    let mut stalled = stalled_post(&router, &token, 900 * 1024);
    // Wait until the router holds it (the budget is taken as the body arrives).
    let start = Instant::now();
    while metric(&router, "logplex_api_body_bytes_inflight") != Some(900 * 1024) {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "the body was never read"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    // A second body that does not fit is refused at once, before it is read.
    let mut second = TcpStream::connect(api_addr(&router)).unwrap();
    let head = format!(
        "POST /logs HTTP/1.1\r\nHost: test\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: application/logplex-1\r\nContent-Length: {}\r\n\r\n",
        300 * 1024
    );
    second.write_all(head.as_bytes()).unwrap();
    let (status, text, _) = response(&mut second, Instant::now() + Duration::from_secs(10));
    assert_eq!(status, 503, "{text}");
    assert!(
        text.to_ascii_lowercase().contains("retry-after: "),
        "{text}"
    );
    assert!(
        text.contains("--inflight-body-mb") && text.contains("1 MB"),
        "{text}"
    );
    assert_eq!(
        metric(&router, "logplex_api_refused_total{reason=\"body_budget\"}"),
        Some(1)
    );
    // The stalled one times out, its budget is returned, and a sender gets in again.
    let (status, text, _) = response(&mut stalled, Instant::now() + Duration::from_secs(10));
    assert_eq!(status, 408, "{text}");
    wait_metric(&router, "logplex_api_body_bytes_inflight", 0);
    let body = frame(&token, "web.1", "after");
    let (s, b) = post_logs(&router, &token, "application/logplex-1", &[], &body);
    assert_eq!(s, 204, "{b}");
    router.wait_accepted("shop", 1);
}

#[test]
fn idle_api_connections_are_closed_but_a_quiet_tail_is_not() {
    let dir = TempDir::new("api-idle");
    let router = Router::start(&dir.0, &["--api-idle-timeout", "0.5"]);
    let token = router.create_app("shop");
    // A connection that never sends a byte.
    let mut idle = TcpStream::connect(api_addr(&router)).unwrap();
    assert!(
        closed_by_peer(&mut idle, Duration::from_secs(5)),
        "the router closes an idle API connection"
    );
    wait_metric(
        &router,
        "logplex_connections_closed_total{listener=\"api\",reason=\"idle\"}",
        1,
    );
    // A plain-text tail says nothing while no lines come; it is a response in progress.
    let url = log_session(&router, "shop", r#"{"tail": true, "lines": 0}"#);
    let tail = Stream::open(&url, "text/plain");
    router.wait_stats("shop", "open the tail", |s| s["tails"] == 1);
    std::thread::sleep(Duration::from_millis(1500));
    send(&mut router.connect(), &frame(&token, "web.1", "still here"));
    tail.until("still here");
}

/// A keep-alive connection that has been served once (so the router has surely accepted it),
/// and then says nothing.
fn served_and_kept(router: &Router) -> TcpStream {
    let mut s = TcpStream::connect(api_addr(router)).unwrap();
    s.write_all(b"GET /healthz HTTP/1.1\r\nHost: test\r\n\r\n")
        .unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 1024];
    while !String::from_utf8_lossy(&got).ends_with("ok\n") {
        let n = s.read(&mut buf).expect("an answer");
        assert!(n > 0, "closed: {}", String::from_utf8_lossy(&got));
        got.extend_from_slice(&buf[..n]);
    }
    assert!(got.starts_with(b"HTTP/1.1 200"));
    s
}

#[test]
fn the_api_connection_cap_refuses_extra_connections_and_serves_after() {
    let dir = TempDir::new("api-cap");
    let router = Router::start(&dir.0, &["--api-max-connections", "4"]);
    let held: Vec<TcpStream> = (0..4).map(|_| served_and_kept(&router)).collect();
    let (status, body) = router.curl_as("", &["/healthz"]);
    assert_eq!(status, 503, "{body}");
    assert!(
        body.contains("--api-max-connections") && body.contains("(4,"),
        "{body}"
    );
    drop(held);
    // Once they are gone, a normal call is served again.
    let start = Instant::now();
    while router.curl_as("", &["/healthz"]).0 != 200 {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "never served again"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(
        metric(
            &router,
            "logplex_connections_refused_total{listener=\"api\",reason=\"limit\"}"
        ),
        Some(1)
    );
}

#[test]
fn accept_failures_are_logged_rate_limited_and_the_api_recovers() {
    let dir = TempDir::new("api-emfile");
    let router = Router::start(&dir.0, &["--api-idle-timeout", "1"]);
    // Leave the router few file descriptors, then open more connections than it has.
    let pid = router.child.id().to_string();
    let limited = std::process::Command::new("prlimit")
        .args(["--pid", &pid, "--nofile=64:64"])
        .status()
        .expect("prlimit");
    assert!(limited.success());
    let flood: Vec<TcpStream> = (0..100)
        .filter_map(|_| TcpStream::connect(api_addr(&router)).ok())
        .collect();
    std::thread::sleep(Duration::from_millis(2500));
    let logged = router
        .stderr
        .lock()
        .unwrap()
        .iter()
        .filter(|l| l.contains("api accept failed"))
        .count();
    assert!(
        (1..=2).contains(&logged),
        "told, but not every 50 ms: {logged} lines"
    );
    // The idle connections are closed in turn, and the API serves again while they stay open.
    let start = Instant::now();
    while router.curl_as("", &["/healthz"]).0 != 200 {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "the API never recovered"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    drop(flood);
}

#[test]
fn log_sessions_are_capped_per_app_and_filters_by_length() {
    let dir = TempDir::new("session-caps");
    let router = Router::start(
        &dir.0,
        &[
            "--max-sessions-per-app",
            "3",
            "--max-filter-bytes",
            "64",
            "--session-ttl",
            "1",
        ],
    );
    router.create_app("shop");
    router.create_app("blog");
    for _ in 0..3 {
        log_session(&router, "shop", "{}");
    }
    let create = |app: &str, body: &str| {
        router.curl(&[
            "-i",
            "-X",
            "POST",
            "-d",
            body,
            &format!("/apps/{app}/log-sessions"),
        ])
    };
    let (s, b) = create("shop", "{}");
    assert_eq!(s, 429, "{b}");
    assert!(
        b.contains("--max-sessions-per-app") && b.contains(" 3 "),
        "{b}"
    );
    assert!(b.to_ascii_lowercase().contains("retry-after: "), "{b}");
    // Another app is not affected.
    log_session(&router, "blog", "{}");
    // A filter over the limit, valid as a predicate, is refused for its length.
    let long = format!(r#"{{"filter": "msg=\"{}\""}}"#, "x".repeat(60));
    let (s, b) = create("blog", &long);
    assert_eq!(s, 422, "{b}");
    assert!(b.contains("--max-filter-bytes") && b.contains("64"), "{b}");
    log_session(&router, "blog", r#"{"filter": "status>=500"}"#);
    assert_eq!(
        metric(
            &router,
            "logplex_api_refused_total{reason=\"sessions_per_app\"}"
        ),
        Some(1)
    );
    assert_eq!(
        metric(
            &router,
            "logplex_api_refused_total{reason=\"filter_too_long\"}"
        ),
        Some(1)
    );
    // Once they expire, the app may have sessions again.
    let start = Instant::now();
    while create("shop", "{}").0 != 201 {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "sessions never expired"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn unauthenticated_syslog_sockets_are_closed_after_the_window() {
    let dir = TempDir::new("syslog-auth");
    let router = Router::start(
        &dir.0,
        &["--syslog-auth-timeout", "0.5", "--max-connections", "4"],
    );
    let token = router.create_app("shop");
    // A real sender that then goes quiet for longer than the window: it stays.
    let mut quiet = router.connect();
    send(&mut quiet, &frame(&token, "web.1", "hello"));
    router.wait_accepted("shop", 1);
    // Two sockets that say nothing, one that sends only a frame with a token nobody has.
    let mut idle: Vec<TcpStream> = (0..2).map(|_| router.connect()).collect();
    let mut forged = router.connect();
    send(
        &mut forged,
        &frame("t.00000000-0000-0000-0000-000000000000", "web.1", "whose?"),
    );
    idle.push(forged);
    // The listener is full: a fifth is refused at once.
    wait_metric(&router, "logplex_connections_open{listener=\"tcp\"}", 4);
    let mut locked_out = router.connect();
    assert!(closed_by_peer(&mut locked_out, Duration::from_secs(5)));
    // After the window the unauthenticated ones are closed, and a sender gets in.
    for s in &mut idle {
        assert!(
            closed_by_peer(s, Duration::from_secs(5)),
            "an unauthenticated socket is closed"
        );
    }
    wait_metric(
        &router,
        "logplex_connections_closed_total{listener=\"tcp\",reason=\"unauthenticated\"}",
        3,
    );
    let mut sender = router.connect();
    send(&mut sender, &frame(&token, "web.1", "got in"));
    std::thread::sleep(Duration::from_millis(1000));
    send(&mut quiet, &frame(&token, "web.1", "still here"));
    router.wait_accepted("shop", 3);
}

/// A TCP connection to `to` from the loopback address `from`.
fn connect_from(from: [u8; 4], to: SocketAddr) -> TcpStream {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()
        .unwrap();
    rt.block_on(async {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.bind(SocketAddr::from((from, 0))).unwrap();
        let stream = socket.connect(to).await.expect("connect");
        let stream = stream.into_std().unwrap();
        stream.set_nonblocking(false).unwrap();
        stream
    })
}

#[test]
fn one_address_cannot_take_every_syslog_connection() {
    let dir = TempDir::new("per-ip");
    let router = Router::start(&dir.0, &["--max-connections-per-ip", "2"]);
    let token = router.create_app("shop");
    let _held: Vec<TcpStream> = (0..2).map(|_| router.connect()).collect();
    wait_metric(&router, "logplex_connections_open{listener=\"tcp\"}", 2);
    let mut third = router.connect();
    assert!(
        closed_by_peer(&mut third, Duration::from_secs(5)),
        "a third connection from the same address is refused"
    );
    assert_eq!(
        metric(
            &router,
            "logplex_connections_refused_total{listener=\"tcp\",reason=\"per_ip\"}"
        ),
        Some(1)
    );
    // Another address still gets in.
    let mut other = connect_from([127, 0, 0, 2], router.syslog);
    send(&mut other, &frame(&token, "web.1", "from elsewhere"));
    router.wait_accepted("shop", 1);
}

fn post_logs(
    router: &Router,
    token: &str,
    content_type: &str,
    extra: &[&str],
    body: &[u8],
) -> (u16, String) {
    let path = std::env::temp_dir().join(format!(
        "paas-limits-{}-{}-{}",
        std::process::id(),
        body.len(),
        extra.len()
    ));
    std::fs::write(&path, body).unwrap();
    let data = format!("@{}", path.display());
    let auth = format!("token:{token}");
    let content_type = format!("Content-Type: {content_type}");
    let mut args = vec!["-u", &auth, "-H", &content_type, "--data-binary", &data];
    args.extend_from_slice(extra);
    args.push("/logs");
    let r = router.curl_as("", &args);
    let _ = std::fs::remove_file(&path);
    r
}

#[test]
fn the_content_type_must_be_logplex_1_exactly() {
    let dir = TempDir::new("content-type");
    let router = Router::start(&dir.0, &[]);
    let token = router.create_app("shop");
    let body = frame(&token, "web.1", "hi");
    for wrong in [
        "application/logplex-1evil",
        "application/logplex-10",
        "text/plain",
    ] {
        let (s, b) = post_logs(&router, &token, wrong, &[], &body);
        assert_eq!(s, 415, "{wrong}: {b}");
    }
    for right in [
        "application/logplex-1",
        "Application/Logplex-1; charset=utf-8",
        "application/logplex-1 ;x=y",
    ] {
        let (s, b) = post_logs(&router, &token, right, &[], &body);
        assert_eq!(s, 204, "{right}: {b}");
    }
    router.wait_accepted("shop", 3);
}

#[test]
fn logplex_url_is_never_taken_from_the_host_header() {
    let dir = TempDir::new("logplex-url");
    let router = Router::start(&dir.0, &[]);
    router.create_app("shop");
    let create = |router: &Router| {
        let (s, b) = router.curl(&[
            "-H",
            "Host: evil.example",
            "-X",
            "POST",
            "-d",
            "{}",
            "/apps/shop/log-sessions",
        ]);
        assert_eq!(s, 201, "{b}");
        let v: Value = serde_json::from_str(&b).unwrap();
        v["logplex_url"].as_str().unwrap().to_owned()
    };
    let url = create(&router);
    assert!(
        url.starts_with(&format!("{}/log-sessions/", router.api)),
        "the listener's own address: {url}"
    );
    drop(router);

    let dir = TempDir::new("public-url");
    let router = Router::start(&dir.0, &["--public-url", "https://logs.example.test/"]);
    router.create_app("shop");
    let url = create(&router);
    assert!(
        url.starts_with("https://logs.example.test/log-sessions/"),
        "the configured public URL: {url}"
    );
}

#[test]
fn a_huge_logplex_msg_count_does_not_inflate_counters() {
    let dir = TempDir::new("msg-count");
    let router = Router::start(&dir.0, &[]);
    let token = router.create_app("shop");
    let huge = ["-H", "Logplex-Msg-Count: 18446744073709551615"];
    let gzip = [&huge[..], &["-H", "Content-Encoding: gzip"]].concat();
    for _ in 0..2 {
        let (s, b) = post_logs(&router, &token, "application/logplex-1", &gzip, b"not gzip");
        assert_eq!(s, 400, "{b}");
    }
    let (s, b) = post_logs(
        &router,
        &token,
        "application/logplex-1",
        &huge,
        &vec![b'7'; 5 << 20],
    );
    assert_eq!(s, 413, "{b}");
    let stats = router.stats("shop");
    assert_eq!(stats["rejected"]["malformed"], 2, "{stats}");
    assert_eq!(stats["rejected"]["body_too_large"], 1, "{stats}");
    assert_eq!(
        metric(
            &router,
            "logplex_lines_rejected_total{app=\"shop\",reason=\"malformed\"}"
        ),
        Some(2)
    );
}
