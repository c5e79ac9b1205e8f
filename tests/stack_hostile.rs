//! Hostile clients against `paas up`'s proxy, end to end over raw sockets: a request target
//! that disagrees with its `Host`, two `Host`s, `CONNECT`, heads sent slowly or never,
//! connections left idle, more connections than the cap, and no file descriptors left. Each is
//! refused or cut off as its flag says, counted on `/metrics`, and a normal request is served
//! afterwards.

mod support;

use std::collections::BTreeMap;
use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::time::{Duration, Instant};

use support::{Router, TempDir, lines_of, proxy_addr, read_response};

/// One web dyno; the proxy's idle window long enough that it never closes a connection in a
/// test (so that only the limit under test can).
const BASE: &[&str] = &[
    "--scale",
    "web=1",
    "--scale",
    "worker=0",
    "--metrics-interval",
    "0",
    "--http-idle-timeout",
    "30",
];

/// `paas up` with `extra` flags, once its web dyno is up.
fn paas_up(tag: &str, extra: &[&str]) -> (TempDir, Router) {
    let dir = TempDir::new(tag);
    let up = Router::up(&dir.0, &[BASE, extra].concat());
    wait_until_up(&up);
    (dir, up)
}

/// Waits until the app's dynos are up.
fn wait_until_up(up: &Router) {
    let start = Instant::now();
    loop {
        let (status, body) = up.curl(&["/apps/hello/dynos"]);
        let dynos: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
        if status == 200
            && dynos
                .as_array()
                .is_some_and(|d| !d.is_empty() && d.iter().all(|d| d["state"] == "up"))
        {
            return;
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "dynos not up: {body}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn connect(up: &Router) -> TcpStream {
    let s = TcpStream::connect(proxy_addr(up)).expect("connect to the proxy");
    s.set_write_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    s
}

/// Sends `request` on a new connection and reads until the proxy closes it (at most 10 s).
fn exchange(up: &Router, request: &str) -> String {
    let mut s = connect(up);
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let _ = s.write_all(request.as_bytes());
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    String::from_utf8_lossy(&out).into_owned()
}

/// The JSON body of a whole response.
fn json_body(response: &str) -> serde_json::Value {
    let body = response.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {response}"))
}

/// Whether the peer closes `s` within `within` (reading and discarding what comes first).
fn closed_within(s: &mut TcpStream, within: Duration) -> bool {
    let start = Instant::now();
    let mut buf = [0u8; 4096];
    while start.elapsed() < within {
        s.set_read_timeout(Some(
            within
                .saturating_sub(start.elapsed())
                .max(Duration::from_millis(10)),
        ))
        .expect("timeout");
        match s.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                return false;
            }
            Err(_) => return true,
        }
    }
    false
}

/// A request id a test finds its router line by.
fn request_id(tag: &str) -> String {
    format!("hostile-{tag}-{:0>20}", std::process::id())
}

/// The one router line of request `id`.
fn line_of(up: &Router, id: &str) -> BTreeMap<String, String> {
    let mut lines = lines_of(up, id);
    assert_eq!(lines.len(), 1, "{lines:?}");
    lines.remove(0)
}

/// The value of one series on `/metrics` (`name{labels}`), if it is there.
fn metric(up: &Router, series: &str) -> Option<u64> {
    let (status, text) = up.curl(&["/metrics"]);
    assert_eq!(status, 200, "{text}");
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .and_then(|v| v.trim().parse().ok())
}

/// Waits until `series` on `/metrics` satisfies `check`; returns its value.
fn wait_metric(up: &Router, series: &str, check: impl Fn(u64) -> bool) -> u64 {
    let start = Instant::now();
    loop {
        if let Some(v) = metric(up, series).filter(|v| check(*v)) {
            return v;
        }
        assert!(
            start.elapsed() < Duration::from_secs(15),
            "{series} is {:?}: {}",
            metric(up, series),
            up.curl(&["/metrics"]).1
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Waits until a plain GET through the proxy is answered 200 (the proxy has recovered).
fn wait_served(up: &Router) {
    let url = format!("{}/", up.proxy.as_deref().expect("proxy address"));
    let start = Instant::now();
    loop {
        let out = Command::new("curl")
            .args([
                "-s",
                "-o",
                "/dev/null",
                "-w",
                "%{http_code}",
                "--max-time",
                "5",
            ])
            .arg(&url)
            .output()
            .expect("run curl");
        if out.stdout == b"200" {
            return;
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "the proxy never served again: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn an_absolute_form_target_s_authority_wins_over_the_host_header() {
    let (_dir, up) = paas_up("hostile-absolute", &[]);
    let id = request_id("absolute");
    let answer = exchange(
        &up,
        &format!(
            "GET http://a.example/echo?headers HTTP/1.1\r\nHost: b.example\r\n\
             X-Request-Id: {id}\r\nConnection: close\r\n\r\n"
        ),
    );
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    let echoed = json_body(&answer);
    assert_eq!(echoed["headers"]["host"], "a.example", "{echoed}");
    assert_eq!(echoed["path"], "/echo");
    let f = line_of(&up, &id);
    assert_eq!(f["host"], "a.example", "{f:?}");
    assert_eq!(f["path"], "/echo?headers");
    assert_eq!(f["status"], "200");

    // With a port: the target's authority, port and all.
    let id = request_id("absolute-port");
    let answer = exchange(
        &up,
        &format!(
            "GET http://a.example:8080/echo?headers HTTP/1.1\r\nHost: a.example\r\n\
             X-Request-Id: {id}\r\nConnection: close\r\n\r\n"
        ),
    );
    assert_eq!(json_body(&answer)["headers"]["host"], "a.example:8080");
    assert_eq!(line_of(&up, &id)["host"], "a.example:8080");

    // An origin-form request keeps its Host.
    let answer = exchange(
        &up,
        "GET /echo?headers HTTP/1.1\r\nHost: c.example:8080\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(json_body(&answer)["headers"]["host"], "c.example:8080");
}

#[test]
fn two_hosts_an_invalid_host_or_none_are_refused_with_400_and_one_line() {
    let (_dir, up) = paas_up("hostile-host", &[]);
    let cases = [
        (
            "two",
            "GET /echo?headers HTTP/1.1\r\nHost: a.example\r\nHost: b.example\r\n",
        ),
        (
            "same-twice",
            "GET /echo?headers HTTP/1.1\r\nHost: a.example\r\nHost: a.example\r\n",
        ),
        ("space", "GET /echo?headers HTTP/1.1\r\nHost: a example\r\n"),
        (
            "userinfo",
            "GET /echo?headers HTTP/1.1\r\nHost: evil@a.example\r\n",
        ),
        (
            "port",
            "GET /echo?headers HTTP/1.1\r\nHost: a.example:http\r\n",
        ),
        ("empty", "GET /echo?headers HTTP/1.1\r\nHost: \r\n"),
        ("missing", "GET /echo?headers HTTP/1.1\r\n"),
        (
            "target-userinfo",
            "GET http://u:p@a.example/echo HTTP/1.1\r\nHost: a.example\r\n",
        ),
        (
            "target-scheme",
            "GET ftp://a.example/echo HTTP/1.1\r\nHost: a.example\r\n",
        ),
    ];
    for (tag, head) in cases {
        let id = request_id(&format!("host-{tag}"));
        let answer = exchange(&up, &format!("{head}X-Request-Id: {id}\r\n\r\n"));
        assert!(answer.starts_with("HTTP/1.1 400"), "{tag}: {answer}");
        let f = line_of(&up, &id);
        assert_eq!(f["code"], "H26", "{tag}: {f:?}");
        assert_eq!(f["status"], "400", "{tag}: {f:?}");
        assert_eq!(f["dyno"], "", "{tag}: no dyno saw it: {f:?}");
    }
    // HTTP/1.0 needs no Host.
    let answer = exchange(&up, "GET / HTTP/1.0\r\n\r\n");
    assert!(
        answer.starts_with("HTTP/1.1 200") || answer.starts_with("HTTP/1.0 200"),
        "{answer}"
    );
}

#[test]
fn connect_is_refused_with_405_and_exactly_one_router_line() {
    let (_dir, up) = paas_up("hostile-connect", &[]);
    let id = request_id("connect");
    let answer = exchange(
        &up,
        &format!(
            "CONNECT a.example:443 HTTP/1.1\r\nHost: a.example:443\r\nX-Request-Id: {id}\r\n\r\n"
        ),
    );
    assert!(answer.starts_with("HTTP/1.1 405"), "{answer}");
    assert!(answer.to_lowercase().contains("\r\nallow: "), "{answer}");
    let f = line_of(&up, &id);
    assert_eq!(f["method"], "CONNECT");
    assert_eq!(f["status"], "405", "{f:?}");
    assert_eq!(f["dyno"], "", "no dyno was picked: {f:?}");
    // A request after it is logged; by then a second line for CONNECT would be there too.
    let after = request_id("after-connect");
    let answer = exchange(
        &up,
        &format!("GET / HTTP/1.1\r\nHost: x\r\nX-Request-Id: {after}\r\nConnection: close\r\n\r\n"),
    );
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    line_of(&up, &after);
    assert_eq!(lines_of(&up, &id).len(), 1);
}

#[test]
fn a_head_sent_slowly_or_never_is_cut_off_at_the_header_timeout() {
    let (_dir, up) = paas_up("hostile-slow-head", &["--http-header-timeout", "1"]);
    // A slowloris: a byte of its head every 100 ms, never the end.
    let mut slow = connect(&up);
    slow.write_all(b"GET / HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        .expect("send");
    let mut trickle = slow.try_clone().expect("clone");
    let trickling = std::thread::spawn(move || {
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(20) && trickle.write_all(b"a").is_ok() {
            std::thread::sleep(Duration::from_millis(100));
        }
    });
    // A client that connects and sends nothing at all.
    let mut silent = connect(&up);
    assert!(
        closed_within(&mut slow, Duration::from_secs(10)),
        "the slow head was never cut off"
    );
    assert!(
        closed_within(&mut silent, Duration::from_secs(10)),
        "the silent connection was never closed"
    );
    trickling.join().expect("trickle");
    wait_metric(
        &up,
        "paas_proxy_header_timeouts_total{listener=\"http\"}",
        |n| n >= 2,
    );
    wait_served(&up);
}

#[test]
fn heads_pin_bounded_memory() {
    let (_dir, up) = paas_up("hostile-head-memory", &["--http-header-timeout", "30"]);
    let before = up.rss_kib();
    // 300 clients each send 900 KiB of head (under hyper's old limit of 1 MiB) and stall.
    let junk = vec![b'a'; 900 << 10];
    let held: Vec<TcpStream> = (0..300)
        .map(|_| {
            let mut s = connect(&up);
            let _ = s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: ");
            let _ = s.write_all(&junk);
            s
        })
        .collect();
    std::thread::sleep(Duration::from_millis(500));
    let grown = up.rss_kib().saturating_sub(before);
    assert!(grown < 96 * 1024, "300 slow heads took {grown} KiB");
    drop(held);
    wait_served(&up);
}

#[test]
fn connections_still_reading_their_first_head_are_capped() {
    let (_dir, up) = paas_up(
        "hostile-pending",
        &[
            "--http-max-pending-heads",
            "20",
            "--http-header-timeout",
            "30",
        ],
    );
    let held: Vec<TcpStream> = (0..20)
        .map(|_| {
            let mut s = connect(&up);
            s.write_all(b"GET / HTTP/1.1\r\n").expect("send");
            s
        })
        .collect();
    wait_metric(&up, "paas_proxy_heads_pending{listener=\"http\"}", |n| {
        n == 20
    });
    let mut over = connect(&up);
    assert!(
        closed_within(&mut over, Duration::from_secs(10)),
        "a connection over the cap was kept"
    );
    wait_metric(
        &up,
        "paas_proxy_connections_refused_total{listener=\"http\",reason=\"pending_heads\"}",
        |n| n >= 1,
    );
    drop(held);
    wait_served(&up);
}

#[test]
fn idle_keep_alive_connections_are_closed_and_busy_ones_are_not() {
    let (_dir, up) = paas_up(
        "hostile-idle",
        &[
            "--http-keepalive-timeout",
            "1",
            "--http-header-timeout",
            "5",
        ],
    );
    let mut idle = connect(&up);
    idle.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .expect("send");
    assert_eq!(read_response(&mut idle), Some(200));
    assert!(
        closed_within(&mut idle, Duration::from_secs(10)),
        "an idle keep-alive connection was kept"
    );
    wait_metric(
        &up,
        "paas_proxy_keepalive_timeouts_total{listener=\"http\"}",
        |n| n >= 1,
    );
    // A request that takes longer than the keep-alive timeout is not cut, and its connection
    // serves another request after it.
    let mut busy = connect(&up);
    busy.write_all(b"GET /slow?ms=2500 HTTP/1.1\r\nHost: x\r\n\r\n")
        .expect("send");
    assert_eq!(read_response(&mut busy), Some(200));
    busy.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .expect("send");
    assert_eq!(read_response(&mut busy), Some(200));
}

#[test]
fn connections_over_the_cap_are_refused_and_counted() {
    let (_dir, up) = paas_up("hostile-cap", &["--http-max-connections", "20"]);
    let held: Vec<TcpStream> = (0..20)
        .map(|_| {
            let mut s = connect(&up);
            s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
                .expect("send");
            assert_eq!(read_response(&mut s), Some(200));
            s
        })
        .collect();
    assert_eq!(
        metric(&up, "paas_proxy_connections_open{listener=\"http\"}"),
        Some(20)
    );
    let mut over = connect(&up);
    let _ = over.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(
        read_response(&mut over),
        None,
        "a connection over the cap was served"
    );
    wait_metric(
        &up,
        "paas_proxy_connections_refused_total{listener=\"http\",reason=\"max_connections\"}",
        |n| n >= 1,
    );
    drop(held);
    wait_served(&up);
}

/// `paas up` with at most `nofile` file descriptors (soft and hard), its standard error in
/// `stderr`.
fn paas_up_limited(dir: &TempDir, limits: &str, stderr: &std::path::Path) -> Router {
    let script = format!("{limits} && exec \"$0\" \"$@\" 2>'{}'", stderr.display());
    let up = Router::up_wrapped(&dir.0, &["sh", "-c", &script], BASE);
    wait_until_up(&up);
    up
}

#[test]
fn accept_failures_back_off_and_are_logged_once() {
    let dir = TempDir::new("hostile-emfile");
    let stderr = dir.0.join("stderr.log");
    let up = paas_up_limited(&dir, "ulimit -n 256", &stderr);
    // More connections than descriptors: the proxy accepts until none are left, then its
    // accepts fail while the rest wait in the kernel's queue.
    let held: Vec<TcpStream> = (0..300).map(|_| connect(&up)).collect();
    std::thread::sleep(Duration::from_secs(2));
    drop(held);
    wait_served(&up);
    let log = std::fs::read_to_string(&stderr).unwrap_or_default();
    let told: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("proxy") && l.contains("Too many open files"))
        .collect();
    assert!(!told.is_empty(), "the failure was never told: {log}");
    assert!(told.len() <= 2, "told {} times: {told:?}", told.len());
    wait_metric(
        &up,
        "paas_proxy_accept_errors_total{listener=\"http\"}",
        |n| n >= 1,
    );
}

#[test]
fn the_open_files_limit_is_raised_to_the_hard_limit() {
    let dir = TempDir::new("hostile-nofile");
    let stderr = dir.0.join("stderr.log");
    let up = paas_up_limited(&dir, "ulimit -Sn 256 && ulimit -Hn 4096", &stderr);
    let limits =
        std::fs::read_to_string(format!("/proc/{}/limits", up.child.id())).expect("read limits");
    let nofile: Vec<&str> = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .expect("a Max open files line")
        .split_whitespace()
        .collect();
    assert_eq!(nofile[3..5], ["4096", "4096"], "{limits}");
}
