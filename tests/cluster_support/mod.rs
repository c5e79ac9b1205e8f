//! What the cluster tests share: a fresh PostgreSQL database per test (dropped at the end),
//! a unique JetStream stream and subject prefix per test (so tests run in parallel and again),
//! nodes of `paas logplex` joined to them, and event-based waits with generous deadlines.

#![allow(dead_code)]

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::support::{Router, TempDir};

/// The machine's NATS (JetStream on).
pub const NATS: &str = "nats://127.0.0.1:4222";

/// A name no other test (nor run) uses: `tag` and random hex.
pub fn unique(tag: &str) -> String {
    let n = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0)
        ^ (u128::from(std::process::id()) << 64);
    format!("{tag}_{:x}", n & 0xffff_ffff_ffff)
}

fn psql(db: &str, sql: &str) -> String {
    let out = Command::new("psql")
        .args(["-h", "127.0.0.1", "-U", "postgres", "-d", db, "-tAc", sql])
        .output()
        .expect("run psql");
    assert!(
        out.status.success(),
        "psql {sql}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// A fresh database on the machine's PostgreSQL, dropped on drop.
pub struct Db {
    pub name: String,
}

impl Db {
    pub fn new() -> Db {
        let name = unique("paas_test");
        psql("postgres", &format!("CREATE DATABASE {name}"));
        Db { name }
    }

    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:5432/{}", self.name)
    }

    /// A query's rows, `|`-separated.
    pub fn query(&self, sql: &str) -> String {
        psql(&self.name, sql)
    }
}

impl Drop for Db {
    fn drop(&mut self) {
        let _ = Command::new("psql")
            .args([
                "-h",
                "127.0.0.1",
                "-U",
                "postgres",
                "-d",
                "postgres",
                "-tAc",
            ])
            .arg(format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                self.name
            ))
            .output();
    }
}

/// A test's cluster: its database, stream and prefix, and its nodes' data directories.
pub struct Cluster {
    pub db: Db,
    /// The URL the nodes are given for the database, when not the database's own (a proxy).
    pub db_url: Option<String>,
    pub stream: String,
    pub prefix: String,
    pub nats: String,
    pub dirs: Vec<TempDir>,
}

impl Cluster {
    pub fn new(tag: &str) -> Cluster {
        Cluster::on(tag, NATS)
    }

    /// A cluster on the NATS at `nats`.
    pub fn on(tag: &str, nats: &str) -> Cluster {
        let id = unique(tag);
        Cluster {
            db: Db::new(),
            db_url: None,
            stream: format!("T_{id}"),
            prefix: format!("t_{id}"),
            nats: nats.to_owned(),
            dirs: Vec::new(),
        }
    }

    /// The flags that make a node of this cluster.
    pub fn flags(&self, node: usize) -> Vec<String> {
        [
            "--nats",
            &self.nats,
            "--database-url",
            &self.db_url.clone().unwrap_or_else(|| self.db.url()),
            "--nats-stream",
            &self.stream,
            "--nats-prefix",
            &self.prefix,
            "--bus-max-mb",
            "64",
            "--bus-max-age",
            "30m",
            "--node-id",
            &format!("node{node}"),
            // Each look at history (`paas logs`) is a log session: the tests look often.
            "--max-sessions-per-app",
            "100000",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect()
    }

    /// Starts node `node` in a new data directory with `extra` flags.
    pub fn node(&mut self, node: usize, extra: &[&str]) -> Router {
        let dir = TempDir::new(&format!("cluster-node{node}"));
        let router = self.node_in(&dir.0, node, extra);
        self.dirs.push(dir);
        router
    }

    /// Starts node `node` in `dir`.
    pub fn node_in(&self, dir: &Path, node: usize, extra: &[&str]) -> Router {
        let flags = self.flags(node);
        let mut all: Vec<&str> = flags.iter().map(String::as_str).collect();
        all.extend_from_slice(extra);
        Router::start(dir, &all)
    }

    /// Starts `paas up` (the example app) as node `node`, in a new data directory, with
    /// `extra` flags: the cluster's database is its `--cluster-database-url` (its own
    /// `--database-url` is the app's).
    pub fn up(&mut self, node: usize, extra: &[&str]) -> Router {
        let dir = TempDir::new(&format!("cluster-up{node}"));
        let flags: Vec<String> = self
            .flags(node)
            .into_iter()
            .map(|f| match f.as_str() {
                "--database-url" => "--cluster-database-url".to_owned(),
                _ => f,
            })
            .collect();
        let mut all: Vec<&str> = flags.iter().map(String::as_str).collect();
        all.extend_from_slice(extra);
        let router = Router::up(&dir.0, &all);
        self.dirs.push(dir);
        router
    }

    /// Starts `n` nodes at once (their migrations race for the advisory lock).
    pub fn nodes(&mut self, n: usize) -> Vec<Router> {
        let dirs: Vec<TempDir> = (0..n)
            .map(|i| TempDir::new(&format!("cluster-node{i}")))
            .collect();
        let routers = std::thread::scope(|s| {
            let handles: Vec<_> = dirs
                .iter()
                .enumerate()
                .map(|(i, dir)| {
                    let flags = self.flags(i);
                    s.spawn(move || {
                        let all: Vec<&str> = flags.iter().map(String::as_str).collect();
                        Router::start(&dir.0, &all)
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().expect("node started"))
                .collect()
        });
        self.dirs.extend(dirs);
        routers
    }
}

impl Drop for Cluster {
    /// The test's stream goes with it (the machine's NATS is shared by every run).
    fn drop(&mut self) {
        delete_stream(&self.nats, &self.stream);
    }
}

/// Deletes JetStream stream `name` on the NATS at `url` (`nats://HOST:PORT`), speaking the
/// NATS protocol itself: a request to `$JS.API.STREAM.DELETE.<name>`, its answer awaited
/// (5 s at most). Best effort: a NATS that is gone has nothing to delete.
pub fn delete_stream(url: &str, name: &str) {
    use std::io::{BufRead as _, BufReader, Write as _};
    let Some(addr) = url.strip_prefix("nats://") else {
        return;
    };
    let Ok(stream) = std::net::TcpStream::connect(addr) else {
        return;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
    let Ok(mut writer) = stream.try_clone() else {
        return;
    };
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    let _ = reader.read_line(&mut line); // INFO
    let request = format!(
        "CONNECT {{\"verbose\":false}}\r\nSUB _DEL.{name} 1\r\nPUB $JS.API.STREAM.DELETE.{name} _DEL.{name} 0\r\n\r\n"
    );
    if writer.write_all(request.as_bytes()).is_err() {
        return;
    }
    // The answer is a MSG on the reply subject (or an error); PINGs are answered.
    for _ in 0..20 {
        line.clear();
        match reader.read_line(&mut line) {
            Ok(0) | Err(_) => return,
            Ok(_) if line.starts_with("MSG") || line.starts_with("-ERR") => return,
            Ok(_) if line.starts_with("PING") => {
                let _ = writer.write_all(b"PONG\r\n");
            }
            Ok(_) => {}
        }
    }
}

/// Waits until `check` holds, polling every 20 ms; panics with `what` after `within`.
pub fn wait_until(what: &str, within: Duration, mut check: impl FnMut() -> bool) {
    let start = Instant::now();
    while !check() {
        assert!(start.elapsed() < within, "never {what} within {within:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A generous deadline for what the cluster promises within a second.
pub const SOON: Duration = Duration::from_secs(10);

/// `POST /logs` of `frames` with `token` to `router`: the HTTP status.
pub fn post_logs(router: &Router, token: &str, frames: &[u8], count: usize) -> u16 {
    post_logs_with(router, token, frames, count, &[])
}

/// `post_logs` with more request headers (`"Logplex-Frame-Id: f1"`).
pub fn post_logs_with(
    router: &Router,
    token: &str,
    frames: &[u8],
    count: usize,
    headers: &[&str],
) -> u16 {
    let out = Command::new("curl")
        .args([
            "-sS",
            "--max-time",
            "10",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "-u",
            &format!("token:{token}"),
            "-H",
            "Content-Type: application/logplex-1",
            "-H",
            &format!("Logplex-Msg-Count: {count}"),
            "--data-binary",
            "@-",
        ])
        .args(headers.iter().flat_map(|h| ["-H", h]))
        .arg(format!("{}/logs", router.api))
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut child| {
            use std::io::Write as _;
            if let Some(mut stdin) = child.stdin.take() {
                stdin.write_all(frames)?;
            }
            child.wait_with_output()
        })
        .expect("run curl");
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .unwrap_or(0)
}

/// A TCP forwarder to PostgreSQL that a test can cut (every connection closed, new ones
/// refused) and restore: a PostgreSQL outage without stopping the machine's server.
pub struct PgProxy {
    pub port: u16,
    cut: std::sync::Arc<std::sync::atomic::AtomicBool>,
    open: std::sync::Arc<std::sync::Mutex<Vec<std::net::TcpStream>>>,
}

impl PgProxy {
    pub fn start() -> PgProxy {
        use std::sync::atomic::Ordering;
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind proxy");
        let port = listener.local_addr().expect("addr").port();
        let cut = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let open = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let (c, o) = (cut.clone(), open.clone());
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { continue };
                if c.load(Ordering::SeqCst) {
                    drop(client);
                    continue;
                }
                let Ok(server) = std::net::TcpStream::connect("127.0.0.1:5432") else {
                    continue;
                };
                for s in [&client, &server] {
                    if let Ok(clone) = s.try_clone() {
                        o.lock().unwrap().push(clone);
                    }
                }
                for (mut from, mut to) in [
                    (client.try_clone(), server.try_clone()),
                    (server.try_clone(), client.try_clone()),
                ]
                .into_iter()
                .filter_map(|(a, b)| Some((a.ok()?, b.ok()?)))
                {
                    std::thread::spawn(move || {
                        let _ = std::io::copy(&mut from, &mut to);
                        let _ = to.shutdown(std::net::Shutdown::Both);
                    });
                }
            }
        });
        PgProxy { port, cut, open }
    }

    /// The database URL through the proxy.
    pub fn url(&self, db: &Db) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{}", self.port, db.name)
    }

    /// PostgreSQL goes away: every connection through the proxy closes, new ones are refused.
    pub fn cut(&self) {
        self.cut.store(true, std::sync::atomic::Ordering::SeqCst);
        for s in self.open.lock().unwrap().drain(..) {
            let _ = s.shutdown(std::net::Shutdown::Both);
        }
    }

    /// PostgreSQL is back.
    pub fn restore(&self) {
        self.cut.store(false, std::sync::atomic::Ordering::SeqCst);
    }
}
