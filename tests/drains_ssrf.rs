//! Drains may not reach internal addresses (issue 10, SSRF): every spelling of one is refused
//! when the drain is added (422, saying why), a name is judged again on what it resolves to at
//! every connect (DNS rebinding), a stored drain the policy now refuses is not delivered to,
//! and the operator opens ranges with `--drain-allow-net`. Only loopback is ever connected to.

mod support;

use std::io::Read;
use std::net::{TcpListener, UdpSocket};

use serde_json::Value;
use support::{Router, TempDir, frame};

/// Every spelling the issue found accepted, and the other refused ranges, with the words the
/// 422 must give.
const REFUSED: &[(&str, &str)] = &[
    ("https://169.254.169.254/latest/meta-data/", "link-local"),
    ("syslog://10.0.0.1:6379", "private"),
    ("syslog://[::ffff:169.254.169.254]:601", "link-local"),
    ("syslog://[::ffff:a9fe:a9fe]:601", "link-local"),
    ("syslog://0x7f000001:601", "looks like an IP address"),
    ("syslog://2130706433:601", "looks like an IP address"),
    ("syslog://0177.0.0.1:601", "looks like an IP address"),
    ("syslog://127.1:601", "looks like an IP address"),
    ("syslog://127.0.0.1.:601", "looks like an IP address"),
    ("syslog+tls://[fd00::1]:6514", "unique-local"),
    ("syslog://127.0.0.1:6379", "loopback"),
    ("syslog+udp://[::1]:514", "loopback"),
    ("https://localhost/", "loopback"),
    ("https://LOCALHOST:8443/", "loopback"),
    ("https://metadata.localhost/", "loopback"),
    ("https://localhost./", "empty label"),
    ("syslog://172.16.0.1", "private"),
    ("syslog://192.168.1.1", "private"),
    ("syslog://100.64.0.1", "carrier-grade NAT"),
    ("syslog://[fe80::1]", "link-local"),
    ("syslog+udp://224.0.0.1", "multicast"),
    ("syslog+udp://255.255.255.255", "broadcast"),
    ("syslog://0.0.0.0:601", "unspecified"),
    ("syslog://[::]:601", "unspecified"),
    ("syslog://240.0.0.1", "reserved"),
    ("syslog://[64:ff9b::a00:1]", "private"),
    ("syslog://[2002:a9fe:a9fe::1]", "link-local"),
    ("http://127.0.0.1:8080/", "loopback"),
    ("syslog://bad_host.example", "characters"),
    ("syslog://-x.example", "starts or ends"),
];

fn post_drain(router: &Router, url: &str) -> (u16, Value) {
    let (status, body) = router.curl(&[
        "-X",
        "POST",
        "-d",
        &serde_json::json!({ "url": url }).to_string(),
        "/apps/shop/log-drains",
    ]);
    (status, serde_json::from_str(&body).unwrap_or(Value::Null))
}

/// The sum of `logplex_drain_destinations_refused_total` series with `at="STAGE"`.
fn refused_at(router: &Router, stage: &str) -> u64 {
    let (status, text) = router.curl(&["/metrics"]);
    assert_eq!(status, 200, "{text}");
    text.lines()
        .filter(|l| l.starts_with("logplex_drain_destinations_refused_total{"))
        .filter(|l| l.contains(&format!("at=\"{stage}\"")))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum()
}

/// A loopback listener that tells whether anyone connected.
fn listener() -> (TcpListener, u16) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    l.set_nonblocking(true).unwrap();
    let port = l.local_addr().unwrap().port();
    (l, port)
}

fn nobody_connected(l: &TcpListener) -> bool {
    matches!(l.accept(), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock)
}

/// Waits until the app's history holds a line containing `needle`.
fn wait_history(router: &Router, needle: &str) {
    let start = std::time::Instant::now();
    while !router
        .history("shop", &[])
        .iter()
        .any(|l| l.contains(needle))
    {
        assert!(
            start.elapsed() < std::time::Duration::from_secs(10),
            "never saw {needle:?}"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

fn send_line(router: &Router, token: &str, message: &str) {
    support::send(&mut router.connect(), &frame(token, "web.1", message));
}

#[test]
fn every_spelling_of_an_internal_address_is_refused_with_a_reason() {
    let dir = TempDir::new("ssrf-spellings");
    let router = Router::start_strict(&dir.0, &[]);
    router.create_app("shop");
    for (url, why) in REFUSED {
        let (status, body) = post_drain(&router, url);
        assert_eq!(status, 422, "{url} was accepted: {body}");
        let message = body["message"].as_str().unwrap_or_default();
        assert!(message.contains(why), "{url}: {message}");
    }
    let list = router.get_json("/apps/shop/log-drains");
    assert_eq!(list, serde_json::json!([]), "nothing was stored");
    let by_policy = REFUSED
        .iter()
        .filter(|(_, why)| {
            !matches!(
                *why,
                "looks like an IP address" | "empty label" | "characters" | "starts or ends"
            )
        })
        .count() as u64;
    assert_eq!(refused_at(&router, "create"), by_policy);
    // Public destinations are still fine (nothing connects to them: the app sends nothing).
    for url in [
        "syslog+tls://logs.example.com:6514",
        "https://203.0.114.7/logs",
    ] {
        assert_eq!(post_drain(&router, url).0, 201, "{url}");
    }
}

#[test]
fn the_operator_opens_loopback_and_a_receiver_there_gets_lines() {
    let dir = TempDir::new("ssrf-allowed");
    let router = Router::start_strict(&dir.0, &["--drain-allow-net", "127.0.0.0/8"]);
    let token = router.create_app("shop");
    let receiver = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = receiver.local_addr().unwrap().port();
    router.add_drain("shop", &format!("syslog://127.0.0.1:{port}"));
    assert_eq!(
        post_drain(&router, "syslog://[::1]:601").0,
        422,
        "::1 is not in 127.0.0.0/8"
    );
    assert_eq!(post_drain(&router, "syslog://10.0.0.1:601").0, 422);
    send_line(&router, &token, "hello through an allowed range");
    let (mut conn, _) = receiver.accept().unwrap();
    conn.set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while !String::from_utf8_lossy(&got).contains("hello through an allowed range") {
        let n = conn.read(&mut buf).expect("the drain's lines");
        assert!(n > 0, "closed early: {}", String::from_utf8_lossy(&got));
        got.extend_from_slice(&buf[..n]);
    }
}

#[test]
fn a_name_allowed_when_added_is_refused_at_connect_when_it_resolves_to_loopback() {
    let dir = TempDir::new("ssrf-rebind");
    // Some loopback is open (127.0.0.2), so the name `localhost` passes when added; but it
    // resolves to 127.0.0.1 (and ::1), which the policy refuses: judged at every connect.
    let router = Router::start_strict(&dir.0, &["--drain-allow-net", "127.0.0.2/32"]);
    let token = router.create_app("shop");
    let (tcp, tcp_port) = listener();
    let (https, https_port) = listener();
    let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
    udp.set_nonblocking(true).unwrap();
    let udp_port = udp.local_addr().unwrap().port();
    let urls = [
        format!("syslog://localhost:{tcp_port}"),
        format!("https://localhost:{https_port}/logs"),
        format!("syslog+udp://localhost:{udp_port}"),
    ];
    let drains: Vec<String> = urls
        .iter()
        .map(|u| {
            router.add_drain("shop", u)["id"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    send_line(&router, &token, "where does this go");
    for id in &drains {
        let d = router.wait_drain("shop", id, "refused at connect", |h| {
            h["last_error"]
                .as_str()
                .is_some_and(|e| e.contains("not connecting to localhost"))
        });
        let error = d["delivery"]["last_error"].as_str().unwrap();
        assert!(error.contains("is a loopback address"), "{error}");
        assert_eq!(d["delivery"]["sent"], 0, "{d}");
        assert_eq!(d["delivery"]["degraded"], true, "{d}");
    }
    assert!(nobody_connected(&tcp) && nobody_connected(&https));
    let mut buf = [0u8; 64];
    assert!(
        matches!(udp.recv(&mut buf), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock),
        "no datagram reached the receiver"
    );
    assert!(refused_at(&router, "connect") >= 3);
    let told: Vec<String> = router
        .history("shop", &["--source", "logplex"])
        .into_iter()
        .filter(|l| l.contains("Error (drain destination refused)"))
        .collect();
    for url in &urls {
        assert!(
            told.iter().any(|l| l.contains(&format!("uri=\"{url}\""))),
            "{url} not told: {told:?}"
        );
    }
}

#[test]
fn a_stored_drain_the_policy_now_refuses_is_not_delivered_to() {
    let dir = TempDir::new("ssrf-stored");
    let (receiver, port) = listener();
    let url = format!("syslog://127.0.0.1:{port}");
    let (id, token) = {
        let mut router = Router::start(&dir.0, &[]);
        let token = router.create_app("shop");
        let id = router.add_drain("shop", &url)["id"]
            .as_str()
            .unwrap()
            .to_owned();
        send_line(&router, &token, "before the policy changed");
        router.wait_drain("shop", &id, "sent", |h| h["sent"] == 1);
        router.terminate();
        (id, token)
    };
    while receiver.accept().is_ok() {} // the first run's connections
    let router = Router::start_strict(&dir.0, &[]);
    let d = router.wait_drain("shop", &id, "held", |h| {
        h["last_error"]
            .as_str()
            .is_some_and(|e| e.contains("not delivering") && e.contains("loopback"))
    });
    assert_eq!(
        d["url"],
        url.as_str(),
        "still listed, so the owner sees why"
    );
    send_line(&router, &token, "after the policy changed");
    wait_history(&router, "after the policy changed");
    let d = router.drain("shop", &id);
    assert_eq!(d["delivery"]["accepted"], 0, "it takes no line: {d}");
    assert_eq!(d["delivery"]["degraded"], true, "{d}");
    assert!(nobody_connected(&receiver));
    assert_eq!(refused_at(&router, "start"), 1);
    let told = router.history("shop", &["--source", "logplex"]);
    assert!(
        told.iter()
            .any(|l| l.contains("Error (drain destination refused)") && l.contains(&url)),
        "{told:?}"
    );
}
