//! The router's listeners and API under exhaustion attacks (issue 10), each against the real
//! binary with small limits given as flags: bodies that never finish, idle and capped API
//! connections, log sessions without end, unauthenticated syslog sockets, one address taking
//! every connection; and the smaller ones (an inexact Content-Type, a `logplex_url` built from
//! the client's `Host`, an attacker's `Logplex-Msg-Count` added to counters). Each limit is
//! answered with a status and a body naming it, and counted in `/metrics`.

mod support;

use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use support::{Router, TempDir, closed_by_peer, frame, send};

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
