//! `paas up` on the dynos the stack tests use: the example app, or a dyno written to answer
//! in the ways it does not (`tests/fixtures/odd_backend.py`), and the ways to speak to it
//! through the proxy.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::time::{Duration, Instant};

use super::{Router, TempDir, proxy_addr, router_lines};

/// `paas up` on an app `hello` whose one web dyno is the odd backend.
pub fn odd_backend(tag: &str) -> (TempDir, Router) {
    odd_backend_with(tag, &[])
}

/// `odd_backend`, with `extra` flags.
pub fn odd_backend_with(tag: &str, extra: &[&str]) -> (TempDir, Router) {
    let dir = TempDir::new(tag);
    let app = dir.0.join("app-src");
    std::fs::create_dir_all(&app).expect("app dir");
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/odd_backend.py");
    std::fs::write(app.join("Procfile"), format!("web: python3 {script}\n")).expect("Procfile");
    let app = app.display().to_string();
    let flags = [
        &[
            "--app-dir",
            &app,
            "--name",
            "hello",
            "--metrics-interval",
            "0",
        ][..],
        extra,
    ]
    .concat();
    let up = Router::up(&dir.0, &flags);
    wait_serving(&up);
    (dir, up)
}

/// `paas up` on the example app with one web dyno, and `extra` flags.
pub fn example_app(tag: &str, extra: &[&str]) -> (TempDir, Router) {
    let dir = TempDir::new(tag);
    let flags = [
        &[
            "--scale",
            "web=1",
            "--scale",
            "worker=0",
            "--metrics-interval",
            "0",
        ][..],
        extra,
    ]
    .concat();
    let up = Router::up(&dir.0, &flags);
    wait_serving(&up);
    (dir, up)
}

/// Waits until the proxy answers `GET /healthz` with 200.
pub fn wait_serving(up: &Router) {
    let start = Instant::now();
    while curl(up, "/healthz", &[]).0 != "200" {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "the dyno did not come up: {:?}",
            router_lines(up)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// curl through the proxy: (status, body).
pub fn curl(up: &Router, path: &str, args: &[&str]) -> (String, String) {
    let url = format!("http://{}{path}", proxy_addr(up));
    let out = Command::new("curl")
        .args(["-s", "-m", "10", "-w", "\n%{http_code}"])
        .args(args)
        .arg(&url)
        .output()
        .expect("curl");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, status) = text.rsplit_once('\n').unwrap_or(("", &text));
    (status.to_owned(), body.to_owned())
}

/// Sends `bytes` on a new connection and reads until the proxy closes it (at most 10 s).
pub fn exchange(up: &Router, bytes: &[u8]) -> String {
    let mut s = TcpStream::connect(proxy_addr(up)).expect("connect to the proxy");
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    s.write_all(bytes).expect("send");
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    String::from_utf8_lossy(&out).into_owned()
}
