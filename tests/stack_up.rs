//! `paas up` end to end: the real binary runs the router, the proxy and the example app's
//! dynos; real clients (curl, raw sockets, a WebSocket client) go through the proxy, and each
//! router line is read back from the router and checked field by field.

mod support;

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::time::{Duration, Instant};

use support::{Router, TempDir, fields, proxy_addr, read_response, router_lines};

/// Short timeouts, so every H-code comes quickly.
const QUICK: &[&str] = &[
    "--request-timeout",
    "1.5",
    "--http-idle-timeout",
    "1",
    "--connect-timeout",
    "0.3",
    "--boot-wait",
    "1",
    "--exit-timeout",
    "3",
    "--restart-delay",
    "0.3",
    "--skip-for",
    "2",
    "--metrics-interval",
    "0",
];

/// One web dyno, no worker.
const ONE_WEB: &[&str] = &["--scale", "web=1", "--scale", "worker=0"];

fn paas_up(tag: &str, extra: &[&str]) -> (TempDir, Router) {
    let (dir, up) = paas_up_booting(tag, extra);
    // Every dyno up before the test begins (many `paas up`s boot at once on 2 cores).
    let start = Instant::now();
    loop {
        let (status, body) = up.curl(&["/apps/hello/dynos"]);
        let dynos: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
        let all_up = dynos
            .as_array()
            .is_some_and(|d| d.iter().all(|d| d["state"] == "up"));
        if status == 200 && all_up {
            return (dir, up);
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "dynos not up: {body}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// `paas up` as soon as it listens, whatever its dynos are doing.
fn paas_up_booting(tag: &str, extra: &[&str]) -> (TempDir, Router) {
    start_in(TempDir::new(tag), extra)
}

/// `paas up` with its data in `dir`.
fn start_in(dir: TempDir, extra: &[&str]) -> (TempDir, Router) {
    // A test's own value of a flag wins over the quick default.
    let quick: Vec<&str> = QUICK
        .chunks(2)
        .filter(|pair| !extra.contains(&pair[0]))
        .flatten()
        .copied()
        .collect();
    let router = Router::up(&dir.0, &[&quick[..], extra].concat());
    (dir, router)
}

/// A request id a test can find its line by.
fn request_id(tag: &str) -> String {
    format!("test-{tag}-{:0>20}", std::process::id())
}

/// `curl` through the proxy: (status, body). `args` go before the URL.
fn curl(up: &Router, path: &str, args: &[&str]) -> (u16, String) {
    let url = format!("{}{path}", up.proxy.as_deref().expect("proxy address"));
    let out = Command::new("curl")
        .args(["-s", "--max-time", "20", "-w", "\n%{http_code}"])
        .args(args)
        .arg(url)
        .output()
        .expect("run curl");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, status) = text.rsplit_once('\n').unwrap_or(("", "0"));
    (status.trim().parse().unwrap_or(0), body.to_owned())
}

/// A GET of `path` through the proxy with a request id made from `tag`: (id, status, body).
fn request(up: &Router, tag: &str, path: &str) -> (String, u16, String) {
    let id = request_id(tag);
    let (status, body) = curl(up, path, &["-H", &format!("X-Request-Id: {id}")]);
    (id, status, body)
}

/// Waits for the router line of request `id` and returns its fields.
fn line_of(up: &Router, id: &str) -> BTreeMap<String, String> {
    let needle = format!("request_id={id} ");
    let start = Instant::now();
    loop {
        if let Some(line) = router_lines(up).into_iter().find(|l| l.contains(&needle)) {
            return fields(&line);
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "no router line for {id}: {:?}",
            router_lines(up)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Asserts the fields every router line has, and returns the line's fields.
fn assert_error_line(
    up: &Router,
    id: &str,
    code: &str,
    desc: &str,
    status: u16,
) -> BTreeMap<String, String> {
    let f = line_of(up, id);
    assert_eq!(f["code"], code, "{f:?}");
    assert_eq!(f["desc"], desc, "{f:?}");
    assert_eq!(f["status"], status.to_string(), "{f:?}");
    assert_eq!(f["method"], "GET", "{f:?}");
    assert_eq!(f["protocol"], "http", "{f:?}");
    assert!(f["host"].starts_with("127.0.0.1:"), "{f:?}");
    assert_eq!(f["fwd"], "127.0.0.1", "{f:?}");
    for key in ["connect", "service", "bytes", "dyno", "path"] {
        assert!(f.contains_key(key), "{key} missing: {f:?}");
    }
    f
}

fn is_ms(v: &str) -> bool {
    v.strip_suffix("ms")
        .is_some_and(|n| n.parse::<u64>().is_ok())
}

#[test]
fn a_request_is_proxied_with_vegur_s_headers_and_logged_in_heroku_s_shape() {
    let (_dir, up) = paas_up("up-info", &[]);
    let id = request_id("info");
    let (status, body) = curl(
        &up,
        "/echo?headers",
        &[
            "-H",
            &format!("X-Request-Id: {id}"),
            "-H",
            "X-Forwarded-For: 198.51.100.1",
            "-H",
            "Connection: keep-alive, x-secret",
            "-H",
            "X-Secret: 1",
        ],
    );
    assert_eq!(status, 200, "{body}");
    let echoed: serde_json::Value = serde_json::from_str(&body).expect("echo JSON");
    let h = &echoed["headers"];
    assert_eq!(h["x-request-id"], id.as_str());
    assert_eq!(h["x-forwarded-for"], "198.51.100.1, 127.0.0.1");
    assert_eq!(h["x-forwarded-proto"], "http");
    assert_eq!(h["via"], "1.1 paas");
    assert!(
        h["x-request-start"]
            .as_str()
            .is_some_and(|t| t.len() == 13 && t.parse::<u64>().is_ok()),
        "{h}"
    );
    assert!(
        h.get("x-secret").is_none(),
        "hop-by-hop header forwarded: {h}"
    );
    let port = up.proxy.as_deref().unwrap().rsplit(':').next().unwrap();
    assert_eq!(h["x-forwarded-port"], port);

    let f = line_of(&up, &id);
    assert_eq!(f["at"], "info");
    assert_eq!(f["method"], "GET");
    assert_eq!(f["path"], "/echo?headers");
    assert_eq!(f["host"], format!("127.0.0.1:{port}"));
    assert_eq!(f["fwd"], "198.51.100.1, 127.0.0.1");
    assert!(f["dyno"] == "web.1" || f["dyno"] == "web.2", "{f:?}");
    assert!(is_ms(&f["connect"]) && is_ms(&f["service"]), "{f:?}");
    assert_eq!(f["status"], "200");
    assert_eq!(f["bytes"], body.len().to_string());
    assert_eq!(f["protocol"], "http");
    assert!(!f.contains_key("code"));
    // The field order is Heroku's.
    let line = router_lines(&up)
        .into_iter()
        .find(|l| l.contains(&id))
        .unwrap();
    let keys: Vec<&str> = line
        .split_once("]: ")
        .unwrap()
        .1
        .split(' ')
        .filter_map(|kv| kv.split_once('=').map(|(k, _)| k))
        .filter(|k| !k.is_empty() && !k.contains('"') && !k.contains(','))
        .collect();
    assert_eq!(
        keys,
        [
            "at",
            "method",
            "path",
            "host",
            "request_id",
            "fwd",
            "dyno",
            "connect",
            "service",
            "status",
            "bytes",
            "protocol",
            // The HTTP cache (on by default) says what it decided: the example app's `/` is
            // not storable.
            "cache"
        ]
    );
    assert_eq!(f["cache"], "pass", "{f:?}");

    // A made-up id when the client's is not valid; the response carries Via.
    let out = Command::new("curl")
        .args([
            "-s",
            "-D",
            "-",
            "-o",
            "/dev/null",
            "-H",
            "X-Request-Id: short",
        ])
        .arg(format!("{}/", up.proxy.as_deref().unwrap()))
        .output()
        .unwrap();
    let head = String::from_utf8_lossy(&out.stdout).to_lowercase();
    assert!(head.contains("via: 1.1 paas"), "{head}");

    // The dyno's own line is in the same stream.
    let app = up.history("hello", &["--source", "app"]);
    assert!(
        app.iter()
            .any(|l| l.contains("path=/echo?headers status=200")),
        "{app:?}"
    );
}

#[test]
fn http2_over_tls_with_the_generated_certificate() {
    let (dir, up) = paas_up("up-h2", &[]);
    let ca = dir.0.join("tls/localhost.pem");
    let id = request_id("h2");
    let out = Command::new("curl")
        .args(["-s", "--http2", "--cacert"])
        .arg(&ca)
        .args([
            "-w",
            "\n%{http_version} %{http_code}",
            "-H",
            &format!("X-Request-Id: {id}"),
        ])
        .arg(format!(
            "https://localhost:{}/",
            up.proxy_tls.expect("https port")
        ))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.ends_with("\n2 200"),
        "{text} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.starts_with("hello from web."), "{text}");
    let f = line_of(&up, &id);
    assert_eq!(f["protocol"], "https");
    assert_eq!(f["status"], "200");
    assert!(f["host"].starts_with("localhost:"), "{f:?}");

    // Certificate verification is on: without the CA, curl refuses.
    let refused = Command::new("curl")
        .args(["-s", "-o", "/dev/null"])
        .arg(format!("https://localhost:{}/", up.proxy_tls.unwrap()))
        .status()
        .unwrap();
    assert!(!refused.success());
}

#[test]
fn a_websocket_is_piped_through_the_proxy() {
    use futures_util::{SinkExt as _, StreamExt as _};
    use tokio_tungstenite::tungstenite::Message;
    let (_dir, up) = paas_up("up-ws", &[]);
    let addr = proxy_addr(&up);
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let stream = tokio::net::TcpStream::connect(&addr).await.unwrap();
        let (mut ws, response) = tokio_tungstenite::client_async(format!("ws://{addr}/ws"), stream)
            .await
            .expect("WebSocket handshake through the proxy");
        assert_eq!(response.status(), 101);
        for text in ["hello", "through the proxy"] {
            ws.send(Message::text(text)).await.unwrap();
            let echoed = tokio::time::timeout(Duration::from_secs(5), ws.next())
                .await
                .unwrap()
                .unwrap()
                .unwrap();
            assert_eq!(echoed.into_text().unwrap().as_str(), text);
        }
        ws.send(Message::binary(vec![0u8, 1, 2, 255]))
            .await
            .unwrap();
        let echoed = ws.next().await.unwrap().unwrap();
        assert_eq!(echoed.into_data().as_ref(), &[0u8, 1, 2, 255]);
        ws.close(None).await.unwrap();
    });
    let line = router_lines(&up)
        .into_iter()
        .find(|l| l.contains("path=\"/ws\""))
        .expect("a line for the upgrade");
    let f = fields(&line);
    assert_eq!(f["status"], "101");
    assert_eq!(f["at"], "info");
}

#[test]
fn h12_request_timeout() {
    let (_dir, up) = paas_up("up-h12", &[]);
    let id = request_id("h12");
    let (status, body) = curl(
        &up,
        "/slow?ms=4000",
        &["-H", &format!("X-Request-Id: {id}")],
    );
    assert_eq!(status, 503);
    assert!(body.contains("H12"), "{body}");
    let f = assert_error_line(&up, &id, "H12", "Request timeout", 503);
    assert_eq!(f["at"], "error");
    assert!(f["dyno"].starts_with("web."), "{f:?}");
    let service: u64 = f["service"].trim_end_matches("ms").parse().unwrap();
    assert!(service >= 1500, "{f:?}");
}

#[test]
fn h13_connection_closed_without_response_and_h17_bad_response() {
    let (_dir, up) = paas_up("up-h13", &[]);
    let (id, status, _) = request(&up, "h13", "/close");
    assert_eq!(status, 503);
    assert_error_line(&up, &id, "H13", "Connection closed without response", 503);
    let (id, status, _) = request(&up, "h17", "/garbage");
    assert_eq!(status, 503);
    assert_error_line(&up, &id, "H17", "Bad HTTP response", 503);
    // The app is fine after both.
    assert_eq!(curl(&up, "/", &[]).0, 200);
}

#[test]
fn a_crash_mid_request_is_h13_and_the_dyno_comes_back() {
    let (_dir, up) = paas_up("up-crash", ONE_WEB);
    let (id, status, _) = request(&up, "crash", "/crash");
    assert_eq!(status, 503);
    assert_error_line(&up, &id, "H13", "Connection closed without response", 503);
    // The dyno is restarted at once (its first crash) and serves again.
    let start = Instant::now();
    loop {
        if curl(&up, "/", &[]).0 == 200 {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "web.1 did not come back"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let lines = up.history("hello", &["--dyno", "web.1", "--source", "paas"]);
    let text = lines.join("\n");
    for expected in [
        "paas[web.1]: Process exited with status 1",
        "paas[web.1]: State changed from up to crashed",
        "paas[web.1]: State changed from crashed to starting",
    ] {
        assert!(text.contains(expected), "{expected} not in {text}");
    }
    let ps = up.paas(&["ps", "--json"]);
    let dynos: serde_json::Value = serde_json::from_slice(&ps.stdout).unwrap();
    assert_eq!(dynos[0]["name"], "web.1");
    assert_eq!(dynos[0]["restarts"], 1);
    assert_eq!(dynos[0]["state"], "up");
}

#[test]
fn h14_no_web_dynos_then_scaling_up_serves() {
    let (_dir, up) = paas_up("up-h14", &["--scale", "web=0", "--scale", "worker=0"]);
    let (id, status, _) = request(&up, "h14", "/");
    assert_eq!(status, 503);
    let f = assert_error_line(&up, &id, "H14", "No web processes running", 503);
    assert_eq!(f["dyno"], "");
    assert_eq!(f["connect"], "");
    let out = up.paas(&["scale", "web=1"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("web=1:standard-1X"));
    // A request while web.1 boots waits for it (within the boot wait) rather than failing.
    let start = Instant::now();
    loop {
        let (status, _) = curl(&up, "/", &[]);
        if status == 200 {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(10), "status {status}");
    }
}

#[test]
fn h15_idle_dyno_and_h28_idle_client() {
    let (_dir, up) = paas_up("up-h15", &[]);
    let id = request_id("h15");
    let (_, body) = curl(&up, "/stall-body", &["-H", &format!("X-Request-Id: {id}")]);
    assert!(
        body.len() < 100,
        "the stalled body was not cut: {}",
        body.len()
    );
    let f = assert_error_line(&up, &id, "H15", "Idle connection", 503);
    assert_eq!(f["bytes"], "10", "{f:?}");

    // A client that promises 100 bytes and sends 10.
    let id = request_id("h28");
    let addr = proxy_addr(&up);
    let mut s = TcpStream::connect(&addr).unwrap();
    write!(s, "POST /echo HTTP/1.1\r\nHost: x\r\nX-Request-Id: {id}\r\nContent-Length: 100\r\n\r\n0123456789").unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut answer = String::new();
    let _ = s.read_to_string(&mut answer);
    let f = line_of(&up, &id);
    assert_eq!(f["code"], "H28", "{f:?}");
    assert_eq!(f["desc"], "Client Connection Idle");
    assert_eq!(f["status"], "499");
    assert_eq!(f["method"], "POST");
}

#[test]
fn h11_backlog_too_deep() {
    // Queued requests wait for a slot as long as it takes (the quick boot wait would end it).
    let extra = ["--request-timeout", "10", "--boot-wait", "30"];
    let (_dir, up) = paas_up("up-h11", &[ONE_WEB, &extra].concat());
    let addr = proxy_addr(&up);
    // 50 in flight on the dyno, 50 waiting: the next is refused. (Each its own URL: the
    // cache would have requests for one URL wait for the first's answer, not the mesh.)
    let held: Vec<TcpStream> = (0..100)
        .map(|i| {
            let mut s = TcpStream::connect(&addr).unwrap();
            write!(s, "GET /slow?ms=4000&n={i} HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
            s
        })
        .collect();
    std::thread::sleep(Duration::from_millis(700));
    let (id, status, _) = request(&up, "h11", "/");
    assert_eq!(status, 503);
    // At once: no held request (4 s each) has answered yet, so no slot had freed.
    for s in &held {
        s.set_nonblocking(true).unwrap();
        let mut byte = [0u8; 1];
        assert!(
            matches!(s.peek(&mut byte), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock),
            "H11 came only after a slot freed"
        );
        s.set_nonblocking(false).unwrap();
    }
    let f = assert_error_line(&up, &id, "H11", "Backlog too deep", 503);
    assert_eq!(f["dyno"], "");
    // The 50 in flight and the 50 queued all succeed as slots free (issue 17: the queued
    // results were ignored).
    for (i, mut s) in held.into_iter().enumerate() {
        assert_eq!(
            read_response(&mut s),
            Some(200),
            "request {i}: {:?}",
            router_lines(&up)
                .iter()
                .filter(|l| !l.contains("status=200"))
                .collect::<Vec<_>>()
        );
    }
}

#[test]
fn h19_connect_timeout_and_h21_connection_refused() {
    let (_dir, up) = paas_up("up-h19", ONE_WEB);
    assert_eq!(curl(&up, "/stall-accept", &[]).0, 200);
    let (id, status, _) = request(&up, "h19", "/");
    assert_eq!(status, 503);
    let f = assert_error_line(&up, &id, "H19", "Backend connection timeout", 503);
    assert_eq!(f["dyno"], "web.1");

    let (_dir, up) = paas_up("up-h21", ONE_WEB);
    assert_eq!(curl(&up, "/unlisten", &[]).0, 200);
    let (id, status, _) = request(&up, "h21", "/");
    assert_eq!(status, 503);
    assert_error_line(&up, &id, "H21", "Backend connection refused", 503);
}

/// `paas up` on an app `hello` of this Procfile, as soon as it listens.
fn paas_up_app(tag: &str, procfile: &str, extra: &[&str]) -> (TempDir, Router) {
    let dir = TempDir::new(tag);
    let app = dir.0.join("app-src");
    std::fs::create_dir_all(&app).unwrap();
    std::fs::write(app.join("Procfile"), procfile).unwrap();
    let app = app.display().to_string();
    start_in(
        dir,
        &[&["--app-dir", app.as_str(), "--name", "hello"], extra].concat(),
    )
}

#[test]
fn h10_app_crashed_and_h20_boot_timeout() {
    let (_d, up) = paas_up_app(
        "up-h10",
        "web: echo boom; exit 1\n",
        &["--restart-delay", "30"],
    );
    // First crash: an immediate restart; second crash: a 30 s wait, crashed meanwhile.
    let start = Instant::now();
    while up
        .history("hello", &["--source", "paas"])
        .iter()
        .filter(|l| l.contains("to crashed"))
        .nth(1)
        .is_none()
    {
        assert!(start.elapsed() < Duration::from_secs(10));
        std::thread::sleep(Duration::from_millis(50));
    }
    let (id, status, _) = request(&up, "h10", "/");
    assert_eq!(status, 503);
    assert_error_line(&up, &id, "H10", "App crashed", 503);

    let (_d, up) = paas_up_app("up-h20", "web: sleep 60\n", &["--boot-timeout", "30"]);
    let (id, status, _) = request(&up, "h20", "/");
    assert_eq!(status, 503);
    assert_error_line(&up, &id, "H20", "App boot timeout", 503);
}

#[test]
fn h25_oversized_headers_and_hostile_requests() {
    let (_dir, up) = paas_up("up-h25", &[]);
    let id = request_id("h25");
    let cookie = format!("Cookie: {}", "c".repeat(9 * 1024));
    let (status, _) = curl(
        &up,
        "/",
        &["-H", &format!("X-Request-Id: {id}"), "-H", &cookie],
    );
    assert_eq!(status, 400);
    assert_error_line(&up, &id, "H25", "HTTP restriction", 400);

    let addr = proxy_addr(&up);
    let answer = |bytes: &[u8]| {
        let mut s = TcpStream::connect(&addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let _ = s.write_all(bytes);
        let mut out = Vec::new();
        let _ = s.read_to_end(&mut out);
        String::from_utf8_lossy(&out).into_owned()
    };
    // Garbage, a truncated request line, a header block past the server's buffer, an
    // unsupported Expect: each a clear status, and the proxy carries on.
    assert!(answer(b"\x00\x01\x02 garbage\r\n\r\n").starts_with("HTTP/1.1 400"));
    // A request line cut short by the client's end: closed, no answer (nothing to answer).
    {
        let mut s = TcpStream::connect(&addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        s.write_all(b"GET / HT").unwrap();
        s.shutdown(std::net::Shutdown::Write).unwrap();
        let mut out = Vec::new();
        assert_eq!(s.read_to_end(&mut out).map_err(|e| e.kind()), Ok(0));
    }
    let huge = format!(
        "GET / HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n",
        "b".repeat(128 << 10)
    );
    // Past --http-max-head-kb (64), yet small enough that the client's write completes before
    // the proxy closes (a 2 MiB one raced the close: a reset could end it with no answer).
    let big = answer(huge.as_bytes());
    assert!(big.starts_with("HTTP/1.1 431 "), "{big}");
    let expect = answer(b"POST /echo HTTP/1.1\r\nHost: x\r\nExpect: something-else\r\nContent-Length: 1\r\nConnection: close\r\n\r\nx");
    assert!(expect.starts_with("HTTP/1.1 400 "), "{expect}");
    assert_eq!(curl(&up, "/", &[]).0, 200);
}

#[test]
fn h27_client_gone_before_the_response() {
    let (_dir, up) = paas_up("up-h27", &["--request-timeout", "10"]);
    let id = request_id("h27");
    let addr = proxy_addr(&up);
    let mut s = TcpStream::connect(&addr).unwrap();
    write!(
        s,
        "GET /slow?ms=1500 HTTP/1.1\r\nHost: x\r\nX-Request-Id: {id}\r\n\r\n"
    )
    .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    drop(s);
    let f = line_of(&up, &id);
    assert_eq!(f["code"], "H27", "{f:?}");
    assert_eq!(f["sock"], "client");
    assert_eq!(f["at"], "warning");
    assert_eq!(f["desc"], "Client Request Interrupted");
    assert_eq!(f["status"], "499");
}

#[test]
fn streaming_and_large_bodies_go_through_unbuffered() {
    let (_dir, up) = paas_up("up-stream", &["--http-idle-timeout", "5"]);
    // 64 MiB through the proxy, checked by size.
    let id = request_id("big");
    let out = Command::new("curl")
        .args([
            "-s",
            "-o",
            "/dev/null",
            "-w",
            "%{size_download} %{http_code}",
            "-H",
            &format!("X-Request-Id: {id}"),
        ])
        .arg(format!("{}/big?mb=64", up.proxy.as_deref().unwrap()))
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        format!("{} 200", 64u64 << 20)
    );
    assert_eq!(line_of(&up, &id)["bytes"], (64u64 << 20).to_string());
    // Chunks arrive as the dyno writes them, not at the end.
    let addr = proxy_addr(&up);
    let mut s = TcpStream::connect(&addr).unwrap();
    s.write_all(b"GET /drip?chunks=3&ms=700 HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let mut buf = [0u8; 4096];
    let mut got = String::new();
    while !got.contains("chunk 0") {
        let n = s.read(&mut buf).unwrap();
        got.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
    // By order of events, not a clock: the first chunk came before the dyno wrote the last
    // (700 ms later), so it was not held for the rest.
    assert!(
        !got.contains("chunk 2") && !got.ends_with("0\r\n\r\n"),
        "the first chunk waited for the rest: {got:?}"
    );
    // A request body with Expect: 100-continue is streamed to the dyno and echoed.
    let (status, body) = curl(
        &up,
        "/echo",
        &[
            "--data-binary",
            &"x".repeat(100_000),
            "-H",
            "Expect: 100-continue",
        ],
    );
    assert_eq!(status, 200);
    assert_eq!(body.len(), 100_000);
}

#[test]
fn scale_restart_and_ps_act_on_a_running_app() {
    let (_dir, up) = paas_up("up-scale", &["--scale", "web=1", "--scale", "worker=1"]);
    let out = up.paas(&["scale", "web=2", "worker=0"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let dynos = |up: &Router| -> serde_json::Value {
        serde_json::from_slice(&up.paas(&["ps", "--json"]).stdout).unwrap()
    };
    let start = Instant::now();
    loop {
        let d = dynos(&up);
        let names: Vec<&str> = d
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d["name"].as_str().unwrap())
            .collect();
        let all_up = d.as_array().unwrap().iter().all(|d| d["state"] == "up");
        if names == ["web.1", "web.2"] && all_up {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(10), "{d}");
        std::thread::sleep(Duration::from_millis(100));
    }
    let worker = up
        .history("hello", &["--dyno", "worker.1", "--source", "paas"])
        .join("\n");
    for expected in [
        "State changed from up to down",
        "Stopping all processes with SIGTERM",
        "Process exited with status",
    ] {
        assert!(worker.contains(expected), "{expected} not in {worker}");
    }
    let ps = String::from_utf8_lossy(&up.paas(&["ps"]).stdout).into_owned();
    assert!(
        ps.contains("=== web (standard-1X): paas example-app web (2)"),
        "{ps}"
    );
    assert!(ps.contains("web.2: up "), "{ps}");

    let out = up.paas(&["restart", "web.1"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let start = Instant::now();
    loop {
        let web1 = up
            .history("hello", &["--dyno", "web.1", "--source", "paas"])
            .join("\n");
        if web1.contains("Restarting")
            && web1.matches("State changed from starting to up").count() == 2
        {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(10), "{web1}");
        std::thread::sleep(Duration::from_millis(100));
    }
    // Errors are the API's words.
    let bad = up.paas(&["scale", "nosuch=1"]);
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("Couldn't find that formation."));
    let bad = up.paas(&["scale", "web=lots"]);
    assert!(!bad.status.success());
    let (status, _) = up.curl(&[
        "-X",
        "PATCH",
        "-H",
        "Content-Type: application/json",
        "-d",
        "{\"updates\":[{\"type\":\"web\",\"quantity\":1000}]}",
        "/apps/hello/formation",
    ]);
    assert_eq!(status, 422);
}

#[test]
fn scaling_1_3_1_under_steady_load_fails_no_request() {
    let (_dir, up) = paas_up("up-load", &[ONE_WEB, &["--request-timeout", "10"]].concat());
    let addr = proxy_addr(&up);
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let clients: Vec<_> = (0..4)
        .map(|_| {
            let (addr, stop) = (addr.clone(), stop.clone());
            std::thread::spawn(move || {
                let (mut ok, mut failed) = (0u64, Vec::new());
                let mut conn: Option<TcpStream> = None;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let s = conn.get_or_insert_with(|| TcpStream::connect(&addr).unwrap());
                    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
                    s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
                    match read_response(s) {
                        Some(200) => ok += 1,
                        other => {
                            failed.push(other);
                            conn = None;
                        }
                    }
                }
                (ok, failed)
            })
        })
        .collect();
    let scale = |spec: &str| {
        let out = up.paas(&["scale", spec]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    std::thread::sleep(Duration::from_secs(8));
    scale("web=3");
    std::thread::sleep(Duration::from_secs(11));
    // The last 1500 router lines: all three web dynos serve.
    let lines = router_lines(&up);
    for dyno in ["dyno=web.1 ", "dyno=web.2 ", "dyno=web.3 "] {
        assert!(
            lines.iter().any(|l| l.contains(dyno)),
            "{dyno} served nothing"
        );
    }
    scale("web=1");
    std::thread::sleep(Duration::from_secs(11));
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let (mut ok, mut failed) = (0, Vec::new());
    for c in clients {
        let (o, f) = c.join().unwrap();
        ok += o;
        failed.extend(f);
    }
    assert!(
        failed.is_empty(),
        "{} failed of {}: {failed:?}",
        failed.len(),
        ok + failed.len() as u64
    );
    // Throughput is the benchmarks' to measure (benches/proxy/); here: load went on
    // throughout, and none of it failed.
    assert!(ok > 0, "no request served");
    let ps = String::from_utf8_lossy(&up.paas(&["ps"]).stdout).into_owned();
    assert!(ps.contains("paas example-app web (1)"), "{ps}");
}

#[test]
fn ctrl_c_stops_every_dyno_and_runtime_metrics_are_written() {
    let extra = ["--metrics-interval", "0.3", "--request-timeout", "10"];
    let (_dir, mut up) = paas_up("up-stop", &extra);
    let start = Instant::now();
    loop {
        let lines = up.history("hello", &["--source", "paas"]);
        if lines.iter().any(|l| {
            l.contains("paas[web.1]: source=web.1 dyno=paas.hello.")
                && l.contains("sample#memory_rss=")
        }) {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "no runtime metrics: {lines:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let ps: serde_json::Value = serde_json::from_slice(&up.paas(&["ps", "--json"]).stdout).unwrap();
    let pids: Vec<u64> = ps
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["pid"].as_u64().unwrap())
        .collect();
    assert_eq!(pids.len(), 3);
    // A request in flight when Ctrl-C comes finishes (issue 17: nothing asserted it).
    let mut in_flight = TcpStream::connect(proxy_addr(&up)).unwrap();
    in_flight
        .write_all(b"GET /slow?ms=1500 HTTP/1.1\r\nHost: x\r\nX-Request-Id: test-in-flight-at-ctrl-c\r\n\r\n")
        .unwrap();
    let answered = std::thread::spawn(move || read_response(&mut in_flight));
    // Set-up, not an assertion: the request reaches its dyno before the signal.
    std::thread::sleep(Duration::from_millis(300));
    let _ = Command::new("kill")
        .args(["-INT", &up.child.id().to_string()])
        .status();
    let start = Instant::now();
    loop {
        if let Ok(Some(status)) = up.child.try_wait() {
            assert!(status.success());
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(15),
            "paas up did not stop on Ctrl-C"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    // No process of any dyno's group is left.
    for pid in pids {
        let left = group_members(pid);
        assert!(left.is_empty(), "group {pid} left: {left:?}");
    }
    let said = up.stdout.lock().unwrap().join("\n");
    assert!(said.contains("paas up: stopped"), "{said}");
    assert_eq!(
        answered.join().unwrap(),
        Some(200),
        "the request in flight finished"
    );
}

#[test]
fn session_affinity_keeps_a_client_on_its_dyno() {
    let (_dir, up) = paas_up("up-affinity", &["--session-affinity", "--scale", "web=2"]);
    let first = Command::new("curl")
        .args(["-s", "-D", "-"])
        .arg(format!("{}/", up.proxy.as_deref().unwrap()))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&first.stdout).into_owned();
    let cookie = text
        .lines()
        .find_map(|l| {
            l.to_lowercase()
                .strip_prefix("set-cookie: ")
                .map(|_| l[12..].to_owned())
        })
        .unwrap_or_else(|| panic!("no affinity cookie: {text}"));
    let dyno = cookie
        .split(';')
        .next()
        .and_then(|c| c.strip_prefix("paas-session-affinity="))
        .unwrap_or_else(|| panic!("{cookie}"))
        .to_owned();
    assert!(text.ends_with(&format!("hello from {dyno}\n")), "{text}");
    for _ in 0..10 {
        let (status, body) = curl(
            &up,
            "/",
            &["-H", &format!("Cookie: paas-session-affinity={dyno}")],
        );
        assert_eq!(
            (status, body.as_str()),
            (200, format!("hello from {dyno}\n").as_str())
        );
    }
}

#[test]
fn the_dyno_api_needs_a_key_that_sees_the_app() {
    let (_dir, up) = paas_up("up-auth", &["--scale", "worker=0"]);
    let (status, _) = up.curl_as("wrong-key", &["/apps/hello/dynos"]);
    assert_eq!(status, 401);
    let other = up.curl(&[
        "-X",
        "POST",
        "-H",
        "Content-Type: application/json",
        "-d",
        "{\"name\":\"other\"}",
        "/apps",
    ]);
    assert_eq!(other.0, 201, "{other:?}");
    let (status, body) = up.curl(&["-X", "POST", "/apps/other/keys"]);
    assert_eq!(status, 201, "{body}");
    let key: serde_json::Value = serde_json::from_str(&body).unwrap();
    let key = key["key"].as_str().unwrap();
    // A key of another app sees no such app; it may not scale or restart it either.
    assert_eq!(up.curl_as(key, &["/apps/hello/dynos"]).0, 404);
    assert_eq!(
        up.curl_as(key, &["-X", "DELETE", "/apps/hello/dynos"]).0,
        404
    );
    let (status, body) = up.curl(&["/apps/other/formation"]);
    assert_eq!(status, 404, "{body}");
    assert!(body.contains("no running dynos"), "{body}");
    let (status, body) = up.curl(&[
        "-X",
        "PATCH",
        "-H",
        "Content-Type: application/json",
        "-d",
        "{\"updates\": \"nope\"}",
        "/apps/hello/formation",
    ]);
    assert!(status == 400 || status == 422, "{status} {body}");
}

/// The processes of group `pgid` still alive (zombies excluded).
fn group_members(pgid: u64) -> Vec<String> {
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| std::fs::read_to_string(e.path().join("stat")).ok())
        .filter(|stat| {
            let mut after = stat
                .rsplit_once(')')
                .map_or("", |(_, a)| a)
                .split_whitespace();
            let state = after.next();
            after.nth(1) == Some(&pgid.to_string()) && state != Some("Z")
        })
        .collect()
}

#[test]
fn dynos_die_with_paas_up_even_on_sigkill() {
    let (_dir, mut up) = paas_up("up-sigkill", &[]);
    let ps: serde_json::Value = serde_json::from_slice(&up.paas(&["ps", "--json"]).stdout).unwrap();
    let pids: Vec<u64> = ps
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["pid"].as_u64().unwrap())
        .collect();
    assert_eq!(pids.len(), 3);
    assert!(pids.iter().all(|&p| !group_members(p).is_empty()));
    up.child.kill().unwrap();
    up.child.wait().unwrap();
    let start = Instant::now();
    for pid in pids {
        while !group_members(pid).is_empty() {
            assert!(
                start.elapsed() < Duration::from_secs(5),
                "group {pid} outlived paas up: {:?}",
                group_members(pid)
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

#[test]
fn the_request_timeout_counts_from_the_end_of_a_slow_upload() {
    // Request timeout 1.5 s: a body sent over 2.1 s, answered at once after its last byte, is
    // not H12. The idle window (5 s) leaves a busy machine seconds of slack between chunks.
    let (_dir, up) = paas_up("up-upload", &["--http-idle-timeout", "5"]);
    let id = request_id("upload");
    let mut s = TcpStream::connect(proxy_addr(&up)).unwrap();
    write!(
        s,
        "POST /echo HTTP/1.1\r\nHost: x\r\nX-Request-Id: {id}\r\nContent-Length: 30\r\n\r\n"
    )
    .unwrap();
    for chunk in ["0123456789", "abcdefghij", "ABCDEFGHIJ"] {
        std::thread::sleep(Duration::from_millis(700));
        s.write_all(chunk.as_bytes()).unwrap();
    }
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    assert_eq!(read_response(&mut s), Some(200));
    let f = line_of(&up, &id);
    assert_eq!(f["at"], "info", "{f:?}");
    assert_eq!(f["status"], "200");
}
