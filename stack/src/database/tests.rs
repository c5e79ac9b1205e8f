//! The adapter against the machine's PostgreSQL (127.0.0.1:5432, trust auth, database
//! `test`), through tokio-postgres and raw sockets. Each test makes its own schema and drops
//! it; without a PostgreSQL there, the tests say so and pass.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use logplex::{LineFilter, Registry, Router, RouterConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_postgres::{Client, NoTls};

use super::*;

const SERVER: &str = "postgres://root@127.0.0.1:5432/test";

struct Adapter {
    db: Arc<Database>,
    addr: SocketAddr,
    router: Router,
    url: String,
    _stop: watch::Sender<bool>,
}

async fn server_up() -> bool {
    let target = ServerTarget::parse(SERVER).unwrap_or_else(|e| panic!("{e}"));
    let up = ServerConn::connect(&target, Duration::from_secs(3))
        .await
        .is_ok();
    if !up {
        eprintln!("no PostgreSQL on 127.0.0.1:5432: skipped");
    }
    up
}

async fn adapter(tune: impl FnOnce(&mut DatabaseConfig)) -> Adapter {
    let mut config = DatabaseConfig::new(SERVER).unwrap();
    config.pool.size = 2;
    config.pool.timeout = Duration::from_secs(5);
    config.metrics_interval = None;
    tune(&mut config);
    let router = Router::new(RouterConfig::default(), Registry::in_memory());
    router.create_app("shop").unwrap();
    let db = Database::new(config, None);
    db.attach(
        "shop",
        Login::generate(),
        router.emitter("shop", "app").unwrap(),
    );
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = watch::channel(false);
    tokio::spawn(db.clone().serve(listener, stopped));
    let url = db.url("shop", addr).unwrap();
    Adapter {
        db,
        addr,
        router,
        url,
        _stop: stop,
    }
}

async fn connect(url: &str) -> Result<Client, tokio_postgres::Error> {
    let (client, conn) = tokio_postgres::connect(url, NoTls).await?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok(client)
}

/// A schema of the test's own, dropped when done.
async fn schema(a: &Adapter, name: &str) -> String {
    let schema = format!("paas_db_{name}_{}", std::process::id());
    let c = connect(&a.url).await.unwrap();
    c.batch_execute(&format!(
        "DROP SCHEMA IF EXISTS {schema} CASCADE; CREATE SCHEMA {schema}; \
         CREATE TABLE {schema}.t (id int primary key, v text)"
    ))
    .await
    .unwrap();
    schema
}

async fn drop_schema(a: &Adapter, schema: &str) {
    let c = connect(&a.url).await.unwrap();
    c.batch_execute(&format!("DROP SCHEMA {schema} CASCADE"))
        .await
        .unwrap();
}

fn lines(router: &Router) -> Vec<String> {
    router
        .channel("shop")
        .unwrap()
        .history(1000, &LineFilter::default())
        .iter()
        .map(|l| {
            format!(
                "{}[{}]: {}",
                String::from_utf8_lossy(&l.source),
                String::from_utf8_lossy(&l.process),
                String::from_utf8_lossy(&l.message)
            )
        })
        .collect()
}

fn code(e: &tokio_postgres::Error) -> String {
    e.code().map(|c| c.code().to_owned()).unwrap_or_default()
}

#[tokio::test]
async fn transactions_and_prepared_statements_in_transaction_mode() {
    if !server_up().await {
        return;
    }
    let a = adapter(|_| {}).await;
    let s = schema(&a, "tx").await;
    let one = connect(&a.url).await.unwrap();
    let two = connect(&a.url).await.unwrap();
    // A prepared statement made on one server connection…
    let insert = one
        .prepare(&format!("INSERT INTO {s}.t VALUES ($1, $2)"))
        .await
        .unwrap();
    let count = one
        .prepare(&format!("SELECT count(*) FROM {s}.t"))
        .await
        .unwrap();
    // …while another client holds that connection in a transaction, runs on the other.
    two.batch_execute("BEGIN").await.unwrap();
    for i in 0..10 {
        one.execute(&insert, &[&i, &format!("v{i}")]).await.unwrap();
    }
    two.batch_execute(&format!("INSERT INTO {s}.t VALUES (100, 'x')"))
        .await
        .unwrap();
    let n: i64 = one.query_one(&count, &[]).await.unwrap().get(0);
    assert_eq!(n, 10, "the other client's transaction is not visible");
    two.batch_execute("ROLLBACK").await.unwrap();
    assert!(a.db.stats().reprepared.load(Ordering::Relaxed) >= 1);
    // Transactions through the pool, and an error inside one.
    let mut three = connect(&a.url).await.unwrap();
    let tx = three.transaction().await.unwrap();
    tx.execute(&format!("INSERT INTO {s}.t VALUES (50, 'y')"), &[])
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let err = one
        .execute(&insert, &[&50, &"dup"])
        .await
        .expect_err("a duplicate key");
    assert_eq!(code(&err), "23505");
    let n: i64 = one.query_one(&count, &[]).await.unwrap().get(0);
    assert_eq!(n, 11);
    // Pipelined queries on one client.
    let (x, y, z) = tokio::join!(
        one.query_one("SELECT 1::int4", &[]),
        one.query_one(&count, &[]),
        one.query_one("SELECT $1::text", &[&"hi"])
    );
    assert_eq!(x.unwrap().get::<_, i32>(0), 1);
    assert_eq!(y.unwrap().get::<_, i64>(0), 11);
    assert_eq!(z.unwrap().get::<_, String>(0), "hi");
    assert!(
        a.db.app("shop")
            .unwrap()
            .pool
            .servers
            .load(Ordering::Relaxed)
            <= 2
    );
    drop_schema(&a, &s).await;
}

#[tokio::test]
async fn wrong_password_and_unknown_user_get_28p01() {
    if !server_up().await {
        return;
    }
    let a = adapter(|_| {}).await;
    let url = a.url.replacen(":", "#", 2).replacen('#', ":", 1);
    let (user_pw, rest) = url.split_once('@').unwrap();
    let user = user_pw.rsplit_once('#').unwrap().0;
    let err = connect(&format!("{user}:wrong@{rest}"))
        .await
        .expect_err("refused");
    assert_eq!(code(&err), "28P01");
    let err = connect(&format!("postgres://nobody:x@{}/test", a.addr))
        .await
        .expect_err("refused");
    assert_eq!(code(&err), "28P01");
    let other_db = format!("{}/postgres", a.url.rsplit_once('/').unwrap().0);
    let err = connect(&other_db).await.expect_err("refused");
    assert_eq!(code(&err), "3D000");
    assert_eq!(a.db.stats().auth_failures.load(Ordering::Relaxed), 3);
    assert!(
        lines(&a.router).iter().any(|l| l.contains(
            "app[postgres]: [DATABASE] sql_error_code = 28P01 FATAL:  password authentication failed"
        )),
        "{:?}",
        lines(&a.router)
    );
}

#[tokio::test]
async fn md5_logins() {
    if !server_up().await {
        return;
    }
    let a = adapter(|c| c.auth = AuthMethod::Md5).await;
    let c = connect(&a.url).await.unwrap();
    let v: i32 = c.query_one("SELECT 7", &[]).await.unwrap().get(0);
    assert_eq!(v, 7);
}

#[tokio::test]
async fn an_exhausted_pool_makes_clients_wait_then_tells_them() {
    if !server_up().await {
        return;
    }
    let a = adapter(|c| {
        c.pool.size = 1;
        c.pool.timeout = Duration::from_millis(300);
    })
    .await;
    let holder = connect(&a.url).await.unwrap();
    let waiter = connect(&a.url).await.unwrap();
    holder.batch_execute("BEGIN").await.unwrap();
    let err = waiter
        .batch_execute("SELECT 1")
        .await
        .expect_err("timed out");
    let db = err.as_db_error().unwrap();
    assert_eq!(db.code().code(), "53300");
    assert!(
        db.message().contains("no database connection became free"),
        "{db:?}"
    );
    assert_eq!(a.db.stats().pool_timeouts.load(Ordering::Relaxed), 1);
    // Once the transaction ends, the connection is the next client's.
    holder.batch_execute("COMMIT").await.unwrap();
    let c = connect(&a.url).await.unwrap();
    c.batch_execute("SELECT 1").await.unwrap();
}

#[tokio::test]
async fn a_client_idle_in_a_transaction_is_closed_past_the_timeout() {
    if !server_up().await {
        return;
    }
    let a = adapter(|c| c.idle_transaction_timeout = Some(Duration::from_millis(200))).await;
    let c = connect(&a.url).await.unwrap();
    c.batch_execute("BEGIN").await.unwrap();
    let stats = a.db.stats();
    let start = std::time::Instant::now();
    while stats.idle_transaction_timeouts.load(Ordering::Relaxed) == 0 {
        assert!(start.elapsed() < Duration::from_secs(10), "never timed out");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let err = c.batch_execute("SELECT 1").await.expect_err("closed");
    assert!(c.is_closed() || code(&err) == "25P03", "{err:?}");
    assert_eq!(stats.idle_transaction_timeouts.load(Ordering::Relaxed), 1);
    assert_eq!(stats.server_abandoned.load(Ordering::Relaxed), 1);
    // Outside a transaction, a quiet client is left alone.
    let d = connect(&a.url).await.unwrap();
    tokio::time::sleep(Duration::from_millis(400)).await;
    d.batch_execute("SELECT 1").await.unwrap();
}

#[tokio::test]
async fn cancel_reaches_the_right_backend() {
    if !server_up().await {
        return;
    }
    let a = adapter(|_| {}).await;
    let c = connect(&a.url).await.unwrap();
    let token = c.cancel_token();
    let mut sleeping = tokio::spawn(async move { c.batch_execute("SELECT pg_sleep(20)").await });
    // Cancelled again until it ends: a cancel before the query holds a backend finds none.
    let start = std::time::Instant::now();
    let err = loop {
        token.cancel_query(NoTls).await.unwrap();
        if let Ok(done) = tokio::time::timeout(Duration::from_millis(300), &mut sleeping).await {
            break done.unwrap().expect_err("cancelled");
        }
        assert!(start.elapsed() < Duration::from_secs(15), "never cancelled");
    };
    assert_eq!(code(&err), "57014");
    assert!(a.db.stats().cancels.load(Ordering::Relaxed) >= 1);
}

#[tokio::test]
async fn copy_in_and_out() {
    if !server_up().await {
        return;
    }
    let a = adapter(|_| {}).await;
    let s = schema(&a, "copy").await;
    let c = connect(&a.url).await.unwrap();
    let sink = c.copy_in(&format!("COPY {s}.t FROM STDIN")).await.unwrap();
    let rows: String = (0..1000).map(|i| format!("{i}\trow {i}\n")).collect();
    futures_util::pin_mut!(sink);
    sink.send(bytes::Bytes::from(rows)).await.unwrap();
    let n = sink.finish().await.unwrap();
    assert_eq!(n, 1000);
    let out = c
        .copy_out(&format!("COPY (SELECT * FROM {s}.t ORDER BY id) TO STDOUT"))
        .await
        .unwrap();
    futures_util::pin_mut!(out);
    let mut got = Vec::new();
    while let Some(chunk) = out.next().await {
        got.extend_from_slice(&chunk.unwrap());
    }
    assert_eq!(got.iter().filter(|b| **b == b'\n').count(), 1000);
    assert!(got.starts_with(b"0\trow 0\n"));
    drop_schema(&a, &s).await;
}

#[tokio::test]
async fn listen_and_notify_in_session_mode() {
    if !server_up().await {
        return;
    }
    let a = adapter(|c| c.mode = PoolMode::Session).await;
    let (listener, mut conn) = tokio_postgres::connect(&a.url, NoTls).await.unwrap();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Some(m) = std::future::poll_fn(|cx| conn.poll_message(cx)).await {
            match m {
                Ok(tokio_postgres::AsyncMessage::Notification(n)) => {
                    let _ = tx.send(n.payload().to_owned());
                }
                Ok(_) => {}
                Err(_) => break,
            }
        }
    });
    listener.batch_execute("LISTEN paas_test").await.unwrap();
    let notifier = connect(&a.url).await.unwrap();
    notifier
        .batch_execute("NOTIFY paas_test, 'hello'")
        .await
        .unwrap();
    let got = tokio::time::timeout(Duration::from_secs(5), rx.recv())
        .await
        .unwrap();
    assert_eq!(got.as_deref(), Some("hello"));
    // A notice passes through too.
    notifier
        .batch_execute("DO $$ BEGIN RAISE NOTICE 'note'; END $$")
        .await
        .unwrap();
}

/// Logs in on a raw socket (MD5) and returns it after the first ReadyForQuery.
async fn raw_login(a: &Adapter) -> TcpStream {
    let db = a.db.app("shop").unwrap();
    let mut s = TcpStream::connect(a.addr).await.unwrap();
    s.write_all(&wire::startup_message(&[
        ("user", &db.login.user),
        ("database", &db.database),
    ]))
    .await
    .unwrap();
    let mut buf = bytes::BytesMut::new();
    loop {
        let f = wire::read_frame(&mut s, &mut buf, 1 << 20)
            .await
            .unwrap()
            .unwrap();
        match f.tag {
            b'R' if f.body()[..4] == [0, 0, 0, 5] => {
                let salt = [f.body()[4], f.body()[5], f.body()[6], f.body()[7]];
                let mut p = postgres_protocol::authentication::md5_hash(
                    db.login.user.as_bytes(),
                    db.login.password().as_bytes(),
                    salt,
                )
                .into_bytes();
                p.push(0);
                s.write_all(&wire::Frame::new(b'p', &p).raw).await.unwrap();
            }
            b'Z' => return s,
            b'E' => panic!("login failed"),
            _ => {}
        }
    }
}

async fn read_to_end(s: &mut TcpStream) -> Vec<u8> {
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut out)).await;
    out
}

#[tokio::test]
async fn garbage_and_clients_that_leave_mid_transaction() {
    if !server_up().await {
        return;
    }
    let a = adapter(|c| {
        c.pool.size = 1;
        c.auth = AuthMethod::Md5;
        c.max_message = 1024;
    })
    .await;
    let s = schema(&a, "garbage").await;
    // Garbage instead of a startup packet.
    let mut g = TcpStream::connect(a.addr).await.unwrap();
    g.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let reply = read_to_end(&mut g).await;
    assert_eq!(reply.first(), Some(&b'E'), "{reply:?}");
    // A message over the limit after login, and an unknown message type.
    let mut big = raw_login(&a).await;
    big.write_all(&[b'Q', 0, 1, 0, 0]).await.unwrap();
    let reply = read_to_end(&mut big).await;
    assert!(String::from_utf8_lossy(&reply).contains("--database-max-message-kb"));
    let mut odd = raw_login(&a).await;
    odd.write_all(&wire::Frame::new(b'!', b"").raw)
        .await
        .unwrap();
    let reply = read_to_end(&mut odd).await;
    assert!(String::from_utf8_lossy(&reply).contains("invalid frontend message type"));
    // A client that inserts in a transaction and disconnects: the insert is gone, and the
    // pool's one connection was closed rather than handed on mid-transaction.
    let mut leaver = raw_login(&a).await;
    leaver
        .write_all(&wire::query(&format!(
            "BEGIN; INSERT INTO {s}.t VALUES (1, 'left behind')"
        )))
        .await
        .unwrap();
    let mut buf = bytes::BytesMut::new();
    loop {
        let f = wire::read_frame(&mut leaver, &mut buf, 1 << 20)
            .await
            .unwrap()
            .unwrap();
        if f.tag == b'Z' {
            assert_eq!(f.body()[0], b'T');
            break;
        }
    }
    // Half a message, then gone.
    leaver.write_all(&[b'Q', 0, 0, 0, 40, b'S']).await.unwrap();
    drop(leaver);
    let c = connect(&a.url).await.unwrap();
    let n: i64 = c
        .query_one(&format!("SELECT count(*) FROM {s}.t"), &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 0);
    let status: String = c
        .query_one(
            "SELECT (pg_current_xact_id_if_assigned() IS NULL)::text",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(status, "true");
    // An answer over the message limit: the client is told, the connection closed.
    // (Regression: the answers to the statements tokio-postgres closes, sent in the same
    // batch, were lost with the error, and the client saw its connection closed instead.)
    let err = c
        .batch_execute("SELECT repeat('x', 5000)")
        .await
        .expect_err("over the limit");
    assert_eq!(code(&err), "54000", "{err:?}");
    let message = err.as_db_error().map(|e| e.message().to_owned());
    assert!(
        message
            .as_deref()
            .is_some_and(|m| m.contains("--database-max-message-kb")),
        "{message:?}"
    );
    let stats = a.db.stats();
    assert_eq!(stats.server_abandoned.load(Ordering::Relaxed), 2);
    // The unknown type and the half message; the HTTP request's first bytes read as a
    // startup length over the limit, as do the big query and the big answer.
    assert_eq!(stats.malformed.load(Ordering::Relaxed), 2);
    assert_eq!(stats.oversized.load(Ordering::Relaxed), 3);
    drop_schema(&a, &s).await;
}

/// A client asking for protocol 3.2 and an option is told the adapter speaks 3.0, then logs
/// in as usual.
#[tokio::test]
async fn a_newer_protocol_is_negotiated_down() {
    if !server_up().await {
        return;
    }
    let a = adapter(|c| c.auth = AuthMethod::Md5).await;
    let db = a.db.app("shop").unwrap();
    let mut s = TcpStream::connect(a.addr).await.unwrap();
    let mut startup = wire::startup_message(&[
        ("user", &db.login.user),
        ("database", &db.database),
        ("_pq_.something", "on"),
    ])
    .to_vec();
    startup[7] = 2; // 3.2
    s.write_all(&startup).await.unwrap();
    let mut buf = bytes::BytesMut::new();
    let f = wire::read_frame(&mut s, &mut buf, 1 << 20)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(f.tag, b'v');
    assert_eq!(&f.body()[..8], &[0, 3, 0, 0, 0, 0, 0, 1]);
    assert_eq!(&f.body()[8..], b"_pq_.something\0");
    let f = wire::read_frame(&mut s, &mut buf, 1 << 20)
        .await
        .unwrap()
        .unwrap();
    assert_eq!((f.tag, &f.body()[..4]), (b'R', &[0, 0, 0, 5][..]));
}

/// A client that writes a long pipeline before reading anything: the adapter keeps reading
/// the server's answers while it writes, so neither side stalls on a full socket buffer.
#[tokio::test]
async fn a_long_pipeline_written_before_any_answer_is_read() {
    if !server_up().await {
        return;
    }
    let a = adapter(|c| c.auth = AuthMethod::Md5).await;
    let mut s = raw_login(&a).await;
    let n = 30_000;
    let query = wire::query("SELECT 1");
    let batch: Vec<u8> = (0..n).flat_map(|_| query.to_vec()).collect();
    let (mut rd, mut wr) = s.split();
    let write = async {
        wr.write_all(&batch).await.unwrap();
    };
    let read = async {
        let mut buf = bytes::BytesMut::new();
        let mut ready = 0;
        while ready < n {
            let f = wire::read_frame(&mut rd, &mut buf, 1 << 20)
                .await
                .unwrap()
                .unwrap();
            ready += usize::from(f.tag == b'Z');
        }
        ready
    };
    // The client itself writes everything first, then reads.
    let got = tokio::time::timeout(Duration::from_secs(60), async {
        write.await;
        read.await
    })
    .await
    .expect("the pipeline stalled");
    assert_eq!(got, n);
}

#[tokio::test]
async fn slow_statements_and_errors_go_into_the_stream() {
    if !server_up().await {
        return;
    }
    let a = adapter(|c| c.slow = Some(Duration::from_millis(100))).await;
    let c = connect(&a.url).await.unwrap();
    c.batch_execute("SELECT pg_sleep(0.15), 'secret'")
        .await
        .unwrap();
    c.query("SELECT pg_sleep($1::float8)", &[&0.12f64])
        .await
        .unwrap();
    let _ = c.batch_execute("SELECT * FROM no_such_table").await;
    let shown = lines(&a.router);
    let slow: Vec<_> = shown.iter().filter(|l| l.contains("duration:")).collect();
    assert_eq!(slow.len(), 2, "{shown:#?}");
    assert!(
        slow[0].starts_with("app[postgres]: [DATABASE] duration: ")
            && slow[0].ends_with(" ms  statement: SELECT pg_sleep($1), $2"),
        "{slow:?}"
    );
    assert!(
        slow[1].ends_with("statement: SELECT pg_sleep($1::float8)"),
        "{slow:?}"
    );
    assert!(shown.iter().any(|l| l.starts_with(
        "app[postgres]: [DATABASE] sql_error_code = 42P01 ERROR:  relation \"no_such_table\""
    )));
    assert!(
        shown
            .iter()
            .any(|l| l.contains("connection authorized: user=u"))
    );
    let sample = a.db.sample("shop").await.unwrap();
    assert!(sample.db_size > 0 && sample.pool_servers >= 1, "{sample:?}");
    assert!(
        sample
            .line("postgresql-shop")
            .contains("sample#pool-clients=1")
    );
}

/// A PostgreSQL of the test's own (Debian's binaries, run as the `postgres` user in a temp
/// directory on a free port), so it can be restarted without touching the machine's.
struct OwnServer {
    dir: std::path::PathBuf,
    port: u16,
}

impl OwnServer {
    fn pg_ctl(&self, args: &[&str]) -> bool {
        std::process::Command::new("runuser")
            .args(["-u", "postgres", "--", "pg_ctl", "-D"])
            .arg(&self.dir)
            .args(args)
            // The server it starts keeps whatever it inherits open: no pipes to wait on.
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    }

    fn start() -> Option<OwnServer> {
        let uid = std::process::Command::new("id")
            .args(["-u", "postgres"])
            .output()
            .ok()
            .and_then(|o| {
                String::from_utf8_lossy(&o.stdout)
                    .trim()
                    .parse::<u32>()
                    .ok()
            })?;
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .ok()?
            .local_addr()
            .ok()?
            .port();
        let dir = std::env::temp_dir().join(format!("paas-pg-{}-{port}", std::process::id()));
        std::fs::create_dir_all(&dir).ok()?;
        std::os::unix::fs::chown(&dir, Some(uid), None).ok()?;
        let made = std::process::Command::new("runuser")
            .args([
                "-u",
                "postgres",
                "--",
                "initdb",
                "-A",
                "trust",
                "-U",
                "root",
                "--no-sync",
                "-D",
            ])
            .arg(&dir)
            .output()
            .is_ok_and(|o| o.status.success());
        let server = OwnServer { dir, port };
        let options = format!(
            "-p {port} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=20",
            server.dir.display()
        );
        (made && server.pg_ctl(&["-o", &options, "-l", "/dev/null", "-w", "start"]))
            .then_some(server)
    }
}

impl Drop for OwnServer {
    fn drop(&mut self) {
        self.pg_ctl(&["-m", "immediate", "stop"]);
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_server_gives_errors_then_the_pool_recovers() {
    let Some(pg) = tokio::task::spawn_blocking(OwnServer::start).await.unwrap() else {
        eprintln!("cannot run a PostgreSQL of the test's own (runuser, initdb, pg_ctl): skipped");
        return;
    };
    let url = format!("postgres://root@127.0.0.1:{}/postgres", pg.port);
    let mut config = DatabaseConfig::new(&url).unwrap();
    config.pool.size = 3;
    config.pool.connect_timeout = Duration::from_secs(2);
    config.metrics_interval = None;
    let router = Router::new(RouterConfig::default(), Registry::in_memory());
    router.create_app("shop").unwrap();
    let db = Database::new(config, None);
    db.attach(
        "shop",
        Login::generate(),
        router.emitter("shop", "app").unwrap(),
    );
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (_stop, stopped) = watch::channel(false);
    tokio::spawn(db.clone().serve(listener, stopped));
    let client_url = db.url("shop", addr).unwrap();
    // Load: clients that query in a loop, connecting again after an error.
    let (ok, failed) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let (running, _) = (Arc::new(std::sync::atomic::AtomicBool::new(true)), ());
    let mut load = Vec::new();
    for _ in 0..6 {
        let (url, ok, failed, running) = (
            client_url.clone(),
            ok.clone(),
            failed.clone(),
            running.clone(),
        );
        load.push(tokio::spawn(async move {
            while running.load(Ordering::Relaxed) {
                let Ok(c) = connect(&url).await else {
                    failed.fetch_add(1, Ordering::Relaxed);
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                };
                while running.load(Ordering::Relaxed) {
                    match c.query_one("SELECT 1", &[]).await {
                        Ok(_) => ok.fetch_add(1, Ordering::Relaxed),
                        Err(_) => {
                            failed.fetch_add(1, Ordering::Relaxed);
                            break;
                        }
                    };
                }
            }
        }));
    }
    let start = std::time::Instant::now();
    while ok.load(Ordering::Relaxed) == 0 {
        assert!(
            start.elapsed() < Duration::from_secs(15),
            "no query went through"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let pg = tokio::task::spawn_blocking(move || {
        assert!(pg.pg_ctl(&["-m", "fast", "-w", "restart"]), "restart");
        pg
    })
    .await
    .unwrap();
    let before = ok.load(Ordering::Relaxed);
    let start = std::time::Instant::now();
    while ok.load(Ordering::Relaxed) < before + 100 {
        assert!(
            start.elapsed() < Duration::from_secs(15),
            "the pool did not recover"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    running.store(false, Ordering::Relaxed);
    for l in load {
        let _ = l.await;
    }
    assert!(
        failed.load(Ordering::Relaxed) > 0,
        "clients saw the restart"
    );
    let pool = &db.app("shop").unwrap().pool;
    assert!(pool.servers.load(Ordering::Relaxed) <= 3);
    drop(pg);
}
