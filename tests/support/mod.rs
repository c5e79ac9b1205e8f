//! A real `paas logplex` for end-to-end tests: started on free loopback ports with its own
//! data directory, spoken to with curl (the API), raw sockets and `logger` (syslog), and the
//! real `paas` client commands.

#![allow(dead_code)]

pub mod dynos;
pub mod pki;
pub mod port;
pub mod receiver;
pub mod rsyslog;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

pub const KEY: &str = "k.test-operator-key";

/// A temporary directory removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!(
            "paas-test-{tag}-{}-{}",
            std::process::id(),
            uuid_ish()
        ));
        std::fs::create_dir_all(&dir).expect("temp dir");
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn uuid_ish() -> u128 {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    t ^ u128::from(std::process::id()) << 64
}

/// A running router.
pub struct Router {
    pub child: Child,
    pub api: String,
    pub syslog: SocketAddr,
    pub udp: SocketAddr,
    pub tls: Option<SocketAddr>,
    pub data_dir: PathBuf,
    /// A CA file for curl, when the API serves HTTPS.
    pub ca: Option<PathBuf>,
    pub stdout: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
    /// What it wrote on standard error (its warnings), each line also echoed to ours.
    pub stderr: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
    /// `paas up`'s proxy: `http://127.0.0.1:PORT`.
    pub proxy: Option<String>,
    /// `paas up`'s HTTPS port.
    pub proxy_tls: Option<u16>,
}

impl Router {
    /// Starts `paas logplex` on free ports in `data_dir`, with `extra` flags; its drains may
    /// reach this machine's receivers (`--drain-allow-net 127.0.0.0/8`).
    pub fn start(data_dir: &Path, extra: &[&str]) -> Router {
        let loopback = ["--drain-allow-net", "127.0.0.0/8"];
        Router::start_command("logplex", data_dir, &[&loopback[..], extra].concat())
    }

    /// Starts `paas logplex` with the default address policy (drains reach no internal
    /// address) and `extra` flags.
    pub fn start_strict(data_dir: &Path, extra: &[&str]) -> Router {
        Router::start_command("logplex", data_dir, extra)
    }

    /// Starts `paas logplex` as `start` does, with `key` as the operator key it is given.
    pub fn start_keyed(data_dir: &Path, key: &str, extra: &[&str]) -> Router {
        Router::start_command_keyed("logplex", data_dir, key, extra)
    }

    /// Starts `paas up` (the router, the proxy and the app's dynos) on free ports.
    pub fn up(data_dir: &Path, extra: &[&str]) -> Router {
        let ports = ["--http-port", "0", "--https-port", "0"];
        Router::start_command("up", data_dir, &[&ports[..], extra].concat())
    }

    /// Starts `paas up` through `wrapper` (a program and its arguments, given the binary's
    /// path and its arguments after them: `sh -c 'ulimit -n 256; exec "$0" "$@"'`).
    pub fn up_wrapped(data_dir: &Path, wrapper: &[&str], extra: &[&str]) -> Router {
        let ports = ["--http-port", "0", "--https-port", "0"];
        let extra = [&ports[..], extra].concat();
        Router::start_via(wrapper, "up", data_dir, KEY, &extra)
    }

    /// Starts `paas logplex` as `start` does, through `wrapper` (see `up_wrapped`).
    pub fn start_wrapped(data_dir: &Path, wrapper: &[&str], extra: &[&str]) -> Router {
        let loopback = ["--drain-allow-net", "127.0.0.0/8"];
        Router::start_via(
            wrapper,
            "logplex",
            data_dir,
            KEY,
            &[&loopback[..], extra].concat(),
        )
    }

    /// Starts `paas COMMAND` on free ports in `data_dir`, with `extra` flags.
    fn start_command(command: &str, data_dir: &Path, extra: &[&str]) -> Router {
        Router::start_via(&[], command, data_dir, KEY, extra)
    }

    fn start_command_keyed(command: &str, data_dir: &Path, key: &str, extra: &[&str]) -> Router {
        Router::start_via(&[], command, data_dir, key, extra)
    }

    /// Starts `paas COMMAND` with `key` as its operator key, through `wrapper` when one is
    /// given.
    fn start_via(
        wrapper: &[&str],
        command: &str,
        data_dir: &Path,
        key: &str,
        extra: &[&str],
    ) -> Router {
        let paas = env!("CARGO_BIN_EXE_paas");
        let mut cmd = match wrapper.split_first() {
            Some((program, args)) => {
                let mut cmd = Command::new(program);
                cmd.args(args).arg(paas);
                cmd
            }
            None => Command::new(paas),
        };
        let mut child = cmd
            .args([
                command,
                "--api-port",
                "0",
                "--syslog-port",
                "0",
                "--udp-port",
                "0",
                "--syslog-tls-port",
                "0",
                "--shutdown-timeout",
                "3",
                "--data-dir",
            ])
            .arg(data_dir)
            .args(extra)
            .env("PAAS_API_KEY", key)
            .env_remove("PAAS_API_URL")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start paas logplex");
        let stderr = keep_lines(child.stderr.take().expect("stderr"));
        let stdout = child.stdout.take().expect("stdout");
        let mut lines = BufReader::new(stdout).lines();
        let (mut api, mut syslog, mut udp, mut tls) = (None, None, None, None);
        let (mut proxy, mut proxy_tls) = (None, None);
        for line in lines.by_ref() {
            let line = line.expect("read router output");
            let last = line.rsplit(' ').next().unwrap_or("").to_owned();
            if line.contains(" api on ") {
                api = line
                    .split(' ')
                    .find(|w| w.starts_with("http"))
                    .map(str::to_owned);
            } else if line.contains("syslog tcp on") {
                syslog = last.parse().ok();
            } else if line.contains("syslog udp on") {
                udp = last.parse().ok();
            } else if line.contains("syslog tls on") {
                tls = last.parse().ok();
            } else if line.contains("proxy on http://") {
                proxy = Some(last.clone());
            } else if line.contains("proxy on https://") {
                proxy_tls = line.split([':', ' ']).find_map(|w| w.parse::<u16>().ok());
            } else if line.contains("cannot") || line.starts_with("paas: ") {
                panic!("paas {command}: {line}");
            }
            if (command == "logplex" && line.contains("data in"))
                || line.contains("see the router's lines")
            {
                break;
            }
        }
        let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let keep = seen.clone();
        std::thread::spawn(move || {
            for line in lines.map_while(Result::ok) {
                keep.lock().unwrap().push(line);
            }
        });
        Router {
            child,
            api: api.expect("api address printed"),
            syslog: syslog.expect("syslog address printed"),
            udp: udp.expect("udp address printed"),
            tls,
            data_dir: data_dir.to_owned(),
            ca: None,
            stdout: seen,
            stderr,
            proxy,
            proxy_tls,
        }
    }

    /// curl against the API with the operator key: (status, body).
    pub fn curl(&self, args: &[&str]) -> (u16, String) {
        self.curl_as(KEY, args)
    }

    /// curl against the API with `key`: (status, body). The last argument is the path.
    pub fn curl_as(&self, key: &str, args: &[&str]) -> (u16, String) {
        let (path, rest) = args.split_last().expect("a path");
        let mut cmd = Command::new("curl");
        cmd.args(["-sS", "--max-time", "10", "-w", "\n%{http_code}"]);
        if !key.is_empty() {
            cmd.args(["-H", &format!("Authorization: Bearer {key}")]);
        }
        if let Some(ca) = &self.ca {
            cmd.arg("--cacert").arg(ca);
        }
        let out = cmd
            .args(rest)
            .arg(format!("{}{path}", self.api))
            .output()
            .expect("run curl");
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let (body, code) = text.rsplit_once('\n').unwrap_or(("", "0"));
        if code.trim() == "000" || code.trim().is_empty() {
            eprintln!("curl failed: {}", String::from_utf8_lossy(&out.stderr));
        }
        (code.trim().parse().unwrap_or(0), body.to_owned())
    }

    /// JSON of a GET that must answer 200.
    pub fn get_json(&self, path: &str) -> Value {
        let (status, body) = self.curl(&[path]);
        assert_eq!(status, 200, "GET {path}: {body}");
        serde_json::from_str(&body).expect("JSON")
    }

    /// Creates an app; returns its ingest token.
    pub fn create_app(&self, name: &str) -> String {
        let (status, body) = self.curl(&[
            "-X",
            "POST",
            "-d",
            &format!("{{\"name\":\"{name}\"}}"),
            "/apps",
        ]);
        assert_eq!(status, 201, "create {name}: {body}");
        let v: Value = serde_json::from_str(&body).expect("JSON");
        v["ingest_token"]["token"]
            .as_str()
            .expect("token")
            .to_owned()
    }

    /// The app's stats.
    pub fn stats(&self, app: &str) -> Value {
        self.get_json(&format!("/apps/{app}/stats"))
    }

    /// Waits until the app has accepted `n` lines (or panics after 10 s).
    pub fn wait_accepted(&self, app: &str, n: u64) -> Value {
        let start = Instant::now();
        loop {
            let s = self.stats(app);
            if s["accepted"].as_u64() == Some(n) {
                return s;
            }
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "{app} never accepted {n}: {s}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// A drain's JSON (with its delivery health).
    pub fn drain(&self, app: &str, key: &str) -> Value {
        self.get_json(&format!("/apps/{app}/log-drains/{}", escape(key)))
    }

    /// Adds a drain; returns its JSON.
    pub fn add_drain(&self, app: &str, url: &str) -> Value {
        let (status, body) = self.curl(&[
            "-X",
            "POST",
            "-d",
            &serde_json::json!({ "url": url }).to_string(),
            &format!("/apps/{app}/log-drains"),
        ]);
        assert_eq!(status, 201, "add drain {url}: {body}");
        serde_json::from_str(&body).expect("JSON")
    }

    /// Waits until the drain's delivery report satisfies `check`.
    pub fn wait_drain(
        &self,
        app: &str,
        key: &str,
        what: &str,
        check: impl Fn(&Value) -> bool,
    ) -> Value {
        let start = Instant::now();
        loop {
            let d = self.drain(app, key);
            if check(&d["delivery"]) {
                return d;
            }
            assert!(
                start.elapsed() < Duration::from_secs(15),
                "drain never {what}: {d}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Waits until `check` holds on the app's stats.
    pub fn wait_stats(&self, app: &str, what: &str, check: impl Fn(&Value) -> bool) -> Value {
        let start = Instant::now();
        loop {
            let s = self.stats(app);
            if check(&s) {
                return s;
            }
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "{app}: never {what}: {s}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// `paas logs` (the real client) against this router.
    pub fn logs(&self, args: &[&str]) -> Output {
        self.paas(&[&["logs"], args].concat())
    }

    /// Any `paas` client command against this router.
    pub fn paas(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_paas"))
            .args(args)
            .env("PAAS_API_URL", &self.api)
            .env("PAAS_API_KEY", KEY)
            .env("PAAS_DATA_DIR", &self.data_dir)
            .env_remove("NO_COLOR")
            .output()
            .expect("run paas")
    }

    /// The history lines of `app` as `paas logs` prints them (no colour: not a terminal).
    pub fn history(&self, app: &str, args: &[&str]) -> Vec<String> {
        let out = self.logs(&[&["-a", app, "-n", "1500"], args].concat());
        assert!(
            out.status.success(),
            "paas logs: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(str::to_owned)
            .collect()
    }

    /// Opens a syslog TCP connection.
    pub fn connect(&self) -> TcpStream {
        let s = TcpStream::connect(self.syslog).expect("connect syslog");
        s.set_write_timeout(Some(Duration::from_secs(5)))
            .expect("timeout");
        s
    }

    /// Sends one UDP datagram.
    pub fn send_udp(&self, datagram: &[u8]) {
        let s = UdpSocket::bind("127.0.0.1:0").expect("udp socket");
        s.send_to(datagram, self.udp).expect("send datagram");
    }

    /// Sends SIGTERM and waits for the process to end; returns how long it took.
    pub fn terminate(&mut self) -> Duration {
        let start = Instant::now();
        let pid = self.child.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                assert!(status.success(), "router exit status {status}");
                return start.elapsed();
            }
            assert!(
                start.elapsed() < Duration::from_secs(15),
                "router did not stop on SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The router's resident memory, from /proc.
    pub fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .unwrap_or_default();
        status
            .lines()
            .find(|l| l.starts_with("VmRSS:"))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|n| n.parse().ok())
            .unwrap_or(0)
    }
}

/// Collects a child's standard error line by line, echoing each to ours.
fn keep_lines(from: std::process::ChildStderr) -> std::sync::Arc<std::sync::Mutex<Vec<String>>> {
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let keep = seen.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(from).lines().map_while(Result::ok) {
            eprintln!("{line}");
            keep.lock().unwrap().push(line);
        }
    });
    seen
}

impl Drop for Router {
    /// SIGTERM first, so that `paas up` stops its dynos (a SIGKILL would leave them running);
    /// SIGKILL if it has not stopped within 10 s.
    fn drop(&mut self) {
        if let Ok(Some(_)) = self.child.try_wait() {
            return;
        }
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(10) {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A path segment with everything but unreserved characters escaped.
pub fn escape(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// One RFC 5424 frame in Logplex's form, octet-counted.
pub fn frame(token: &str, process: &str, message: &str) -> Vec<u8> {
    let body =
        format!("<190>1 2026-11-21T12:00:00.123456+00:00 host {token} {process} - {message}");
    format!("{} {body}", body.len()).into_bytes()
}

/// Many frames, `prefix n=I` for I in range.
pub fn frames(token: &str, process: &str, prefix: &str, range: std::ops::Range<usize>) -> Vec<u8> {
    range
        .flat_map(|i| frame(token, process, &format!("{prefix} n={i}")))
        .collect()
}

/// Reads a streaming HTTP response (curl -N) line by line in a thread.
pub struct Stream {
    pub child: Child,
    pub lines: std::sync::mpsc::Receiver<String>,
}

impl Stream {
    /// GETs `url` with curl, streaming, with an `Accept` header.
    pub fn open(url: &str, accept: &str) -> Stream {
        Stream::open_with(url, accept, &[])
    }

    /// The same with more request headers.
    pub fn open_with(url: &str, accept: &str, headers: &[&str]) -> Stream {
        let mut child = Command::new("curl")
            .args([
                "-sSN",
                "--max-time",
                "30",
                "-H",
                &format!("Accept: {accept}"),
            ])
            .args(headers.iter().flat_map(|h| ["-H", h]))
            .arg(url)
            .stdout(Stdio::piped())
            .spawn()
            .expect("curl");
        let out = child.stdout.take().expect("stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Stream { child, lines: rx }
    }

    /// The next line, waiting at most 10 s.
    pub fn next(&self) -> Option<String> {
        self.lines.recv_timeout(Duration::from_secs(10)).ok()
    }

    /// Lines until one contains `needle` (inclusive), waiting at most 10 s in all.
    pub fn until(&self, needle: &str) -> Vec<String> {
        let start = Instant::now();
        let mut got = Vec::new();
        while start.elapsed() < Duration::from_secs(10) {
            if let Ok(l) = self.lines.recv_timeout(Duration::from_millis(200)) {
                let done = l.contains(needle);
                got.push(l);
                if done {
                    return got;
                }
            }
        }
        panic!("never saw {needle:?}; got {got:?}");
    }
}

impl Drop for Stream {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Creates a log session and returns its URL.
pub fn log_session(router: &Router, app: &str, body: &str) -> String {
    let (status, out) = router.curl(&[
        "-X",
        "POST",
        "-d",
        body,
        &format!("/apps/{app}/log-sessions"),
    ]);
    assert_eq!(status, 201, "log session: {out}");
    let v: Value = serde_json::from_str(&out).expect("JSON");
    v["logplex_url"].as_str().expect("url").to_owned()
}

/// Writes all of `bytes` to `stream`.
pub fn send(stream: &mut TcpStream, bytes: &[u8]) {
    stream.write_all(bytes).expect("send");
}

/// Reads whatever the peer sends until it closes (or 5 s pass); true if it closed.
pub fn closed_by_peer(stream: &mut TcpStream, within: Duration) -> bool {
    stream.set_read_timeout(Some(within)).expect("timeout");
    let mut buf = [0u8; 64];
    matches!(stream.read(&mut buf), Ok(0))
}

/// Reads one HTTP/1.1 response with a `Content-Length` body from a kept-alive connection
/// (within 10 s); its status.
pub fn read_response(s: &mut TcpStream) -> Option<u16> {
    s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if s.read(&mut byte).ok()? == 0 {
            return None;
        }
        head.push(byte[0]);
    }
    let text = String::from_utf8_lossy(&head).to_lowercase();
    let status = text.split(' ').nth(1)?.parse().ok()?;
    let length: usize = text
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    let mut body = vec![0u8; length];
    s.read_exact(&mut body).ok()?;
    Some(status)
}

/// `paas up`'s proxy address, `127.0.0.1:PORT`.
pub fn proxy_addr(up: &Router) -> String {
    let url = up.proxy.as_deref().expect("proxy address");
    url.trim_start_matches("http://").to_owned()
}

/// The router's lines of the example app (`hello`), as `paas logs --source router` shows them.
pub fn router_lines(up: &Router) -> Vec<String> {
    up.history("hello", &["--source", "router"])
}

/// The router lines of request `id` (its `request_id`), once there is at least one (or a
/// panic after 10 s).
pub fn lines_of(up: &Router, id: &str) -> Vec<std::collections::BTreeMap<String, String>> {
    let needle = format!("request_id={id} ");
    let start = Instant::now();
    loop {
        let lines: Vec<_> = router_lines(up)
            .into_iter()
            .filter(|l| l.contains(&needle))
            .map(|l| fields(&l))
            .collect();
        if !lines.is_empty() {
            return lines;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "no router line for {id}: {:?}",
            router_lines(up)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The logfmt fields of a displayed line (`TIMESTAMP paas[router]: at=info …`).
pub fn fields(line: &str) -> std::collections::BTreeMap<String, String> {
    let message = line.split_once("]: ").map_or(line, |(_, m)| m);
    logfmt::pairs(message.as_bytes())
        .map(|p| {
            (
                String::from_utf8_lossy(p.key).into_owned(),
                p.value
                    .map(|v| v.to_str_lossy().into_owned())
                    .unwrap_or_default(),
            )
        })
        .collect()
}
