//! The proxy's retry rule, end to end: a request a dyno may have seen is never sent again
//! (Heroku's router never replays one); only a request none of which reached a dyno may be.
//! Regression: a `GET /crash` on a pooled connection was sent again to another dyno, crashing
//! two of three (or logging H21 when the second try found the first dyno gone).

mod support;

use std::io::Write;
use std::net::TcpStream;
use std::time::{Duration, Instant};

use support::{Router, TempDir, lines_of, proxy_addr, read_response};

/// Three web dynos behind one proxy thread (so that one thread's pool holds a kept-alive
/// connection to each), short timeouts.
const THREE_WEB: &[&str] = &[
    "--scale",
    "web=3",
    "--scale",
    "worker=0",
    "--proxy-threads",
    "1",
    "--metrics-interval",
    "0",
    "--restart-delay",
    "0.3",
    "--request-timeout",
    "5",
];

/// The app's dynos, as `paas ps --json` lists them.
fn dynos(up: &Router) -> Vec<serde_json::Value> {
    let ps = up.paas(&["ps", "--json"]);
    serde_json::from_slice::<serde_json::Value>(&ps.stdout)
        .ok()
        .and_then(|v| v.as_array().cloned())
        .unwrap_or_default()
}

/// Waits until `check` holds of the dynos (at most 20 s); returns them.
fn wait_dynos(up: &Router, check: impl Fn(&[serde_json::Value]) -> bool) -> Vec<serde_json::Value> {
    let start = Instant::now();
    loop {
        let d = dynos(up);
        if check(&d) {
            return d;
        }
        assert!(start.elapsed() < Duration::from_secs(20), "dynos: {d:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn restarts(d: &serde_json::Value) -> u64 {
    d["restarts"].as_u64().unwrap_or(0)
}

#[test]
fn a_crash_on_a_pooled_connection_crashes_one_dyno_and_is_h13() {
    let dir = TempDir::new("retry-crash");
    let up = Router::up(&dir.0, THREE_WEB);
    wait_dynos(&up, |d| {
        d.len() == 3 && d.iter().all(|d| d["state"] == "up")
    });
    // Warm the proxy's pool: many requests, one at a time, spread over the three dynos, each
    // leaving its dyno connection kept alive, so that `/crash` goes out on a pooled one.
    let mut client = TcpStream::connect(proxy_addr(&up)).expect("connect to the proxy");
    for _ in 0..40 {
        client
            .write_all(b"GET / HTTP/1.1\r\nHost: retry.test\r\n\r\n")
            .expect("send");
        assert_eq!(read_response(&mut client), Some(200));
    }
    let id = format!("retry-crash-{:0>20}", std::process::id());
    let crash = format!("GET /crash HTTP/1.1\r\nHost: retry.test\r\nX-Request-Id: {id}\r\n\r\n");
    client.write_all(crash.as_bytes()).expect("send");
    assert_eq!(read_response(&mut client), Some(503));

    let lines = lines_of(&up, &id);
    assert_eq!(lines.len(), 1, "{lines:?}");
    let line = &lines[0];
    assert_eq!(line["code"], "H13", "{line:?}");
    assert_eq!(
        line["desc"], "Connection closed without response",
        "{line:?}"
    );
    let crashed = line["dyno"].clone();
    assert!(crashed.starts_with("web."), "{line:?}");

    // The dyno that took the request crashed and came back; no other saw the request.
    let d = wait_dynos(&up, |d| {
        d.iter()
            .any(|d| d["name"] == crashed.as_str() && restarts(d) == 1 && d["state"] == "up")
    });
    let restarted: Vec<_> = d
        .iter()
        .filter(|d| restarts(d) > 0)
        .map(|d| d["name"].clone())
        .collect();
    assert_eq!(
        restarted,
        [serde_json::Value::from(crashed.clone())],
        "{d:?}"
    );
    let exits = up
        .history("hello", &["--source", "paas"])
        .into_iter()
        .filter(|l| l.contains("Process exited with status 1"))
        .collect::<Vec<_>>();
    assert_eq!(exits.len(), 1, "{exits:?}");
    assert!(exits[0].contains(&format!("paas[{crashed}]")), "{exits:?}");
    // The app serves on.
    client
        .write_all(b"GET / HTTP/1.1\r\nHost: retry.test\r\n\r\n")
        .expect("send");
    assert_eq!(read_response(&mut client), Some(200));
}
