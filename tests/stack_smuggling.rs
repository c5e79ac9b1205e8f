//! Request smuggling refused, end to end over raw sockets: a head whose body length two
//! parsers could read differently (`Content-Length` with `Transfer-Encoding`, in either order;
//! two differing `Content-Length`s), a folded header line (obs-fold), a bare CR. Each is
//! answered 400, the connection closed, one router line written (H26), and neither it nor
//! what was smuggled behind it reaches a dyno.

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use support::{Router, TempDir, lines_of, proxy_addr};

/// One web dyno.
const ONE_WEB: &[&str] = &[
    "--scale",
    "web=1",
    "--scale",
    "worker=0",
    "--metrics-interval",
    "0",
];

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

/// Sends `bytes` on a new connection and reads until the proxy closes it (at most 10 s).
fn exchange(up: &Router, bytes: &[u8]) -> String {
    let mut s = TcpStream::connect(proxy_addr(up)).expect("connect to the proxy");
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let _ = s.write_all(bytes);
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    String::from_utf8_lossy(&out).into_owned()
}

/// A request id a test finds its line by.
fn request_id(tag: &str) -> String {
    format!("smuggle-{tag}-{:0>20}", std::process::id())
}

/// A smuggled request behind each refused head: were it read, the dyno would crash.
const SMUGGLED: &str = "GET /crash HTTP/1.1\r\nHost: smuggle.test\r\n\r\n";

#[test]
fn ambiguous_or_malformed_heads_are_refused_with_400_and_one_line() {
    let dir = TempDir::new("smuggling");
    let up = Router::up(&dir.0, ONE_WEB);
    wait_until_up(&up);
    let cases: [(&str, &str); 6] = [
        (
            "cl-te",
            "Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        ),
        (
            "te-cl",
            "Transfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n",
        ),
        (
            "two-lengths",
            "Content-Length: 0\r\nContent-Length: 44\r\n\r\n",
        ),
        (
            "obs-fold",
            "X-Note: one\r\n  folded\r\nContent-Length: 0\r\n\r\n",
        ),
        ("bare-cr", "X-Note: one\rtwo\r\nContent-Length: 0\r\n\r\n"),
        (
            "te-not-chunked",
            "Transfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n",
        ),
    ];
    for (tag, rest) in cases {
        let id = request_id(tag);
        let request = format!(
            "POST /echo HTTP/1.1\r\nHost: smuggle.test\r\nX-Request-Id: {id}\r\n{rest}{SMUGGLED}"
        );
        let answer = exchange(&up, request.as_bytes());
        assert!(answer.starts_with("HTTP/1.1 400"), "{tag}: {answer}");
        // Nothing after the refusal: the smuggled request was not answered.
        assert_eq!(answer.matches("HTTP/1.1 ").count(), 1, "{tag}: {answer}");
        let lines = lines_of(&up, &id);
        assert_eq!(lines.len(), 1, "{tag}: {lines:?}");
        let f = &lines[0];
        assert_eq!(f["code"], "H26", "{tag}: {f:?}");
        assert_eq!(f["desc"], "Request Error", "{tag}: {f:?}");
        assert_eq!(f["status"], "400", "{tag}: {f:?}");
        assert_eq!(f["method"], "POST", "{tag}: {f:?}");
        assert_eq!(f["path"], "/echo", "{tag}: {f:?}");
        assert_eq!(f["host"], "smuggle.test", "{tag}: {f:?}");
        assert_eq!(f["fwd"], "127.0.0.1", "{tag}: {f:?}");
        assert_eq!(f["dyno"], "", "{tag}: {f:?}");
    }
    // Every refusal is counted.
    let (_, metrics) = up.curl(&["/metrics"]);
    let refused: u64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("paas_proxy_malformed_heads_total{listener=\"http\"} "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    assert_eq!(refused, cases.len() as u64, "{metrics}");
    // No dyno saw any of it: web.1 never crashed, and it still serves.
    let mut s = TcpStream::connect(proxy_addr(&up)).expect("connect to the proxy");
    s.write_all(b"GET / HTTP/1.1\r\nHost: smuggle.test\r\n\r\n")
        .expect("send");
    assert_eq!(support::read_response(&mut s), Some(200));
    let exits: Vec<_> = up
        .history("hello", &["--source", "paas"])
        .into_iter()
        .filter(|l| l.contains("Process exited"))
        .collect();
    assert!(exits.is_empty(), "{exits:?}");
}
