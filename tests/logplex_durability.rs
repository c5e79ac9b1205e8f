//! Durability end to end: one router a data directory (a second is refused, naming the
//! holder), history that survives a SIGKILL, and a damaged history file that does not stop
//! the router from starting.

mod support;

use std::process::{Command, Output};
use std::time::{Duration, Instant};

use support::{KEY, Router, TempDir};

/// Runs `paas COMMAND` on free ports in `dir` and waits (at most 20 s) for it to end.
fn run_refused(command: &str, dir: &std::path::Path) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_paas"));
    cmd.args([
        command,
        "--api-port",
        "0",
        "--syslog-port",
        "0",
        "--udp-port",
        "0",
        "--syslog-tls-port",
        "0",
    ]);
    if command == "up" {
        cmd.args(["--http-port", "0", "--https-port", "0"]);
    }
    let mut child = cmd
        .arg("--data-dir")
        .arg(dir)
        .env("PAAS_API_KEY", KEY)
        .env_remove("PAAS_API_URL")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start paas");
    let start = Instant::now();
    while child.try_wait().expect("wait").is_none() {
        if start.elapsed() > Duration::from_secs(20) {
            let _ = child.kill();
            panic!("a second paas {command} on a locked data directory kept running");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().expect("output")
}

#[test]
fn a_second_router_on_the_same_data_directory_is_refused_naming_the_holder() {
    let dir = TempDir::new("lock");
    let router = Router::start(&dir.0, &[]);
    router.create_app("shop");
    let (status, token) = router.curl(&["-X", "POST", "-d", "{}", "/apps/shop/tokens"]);
    assert_eq!(status, 201, "{token}");
    let credentials = std::fs::read(dir.0.join("credentials.json")).expect("credentials");
    let registry = std::fs::read(dir.0.join("registry.json")).ok();
    let pid = router.child.id().to_string();

    for command in ["logplex", "up"] {
        let out = run_refused(command, &dir.0);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "paas {command} started: {stderr}");
        assert!(
            stderr.contains(&format!("in use by another paas (pid {pid})")),
            "paas {command} names the holder: {stderr}"
        );
        // Nothing of the first's was touched.
        assert_eq!(
            std::fs::read(dir.0.join("credentials.json")).ok().as_ref(),
            Some(&credentials)
        );
        assert_eq!(std::fs::read(dir.0.join("registry.json")).ok(), registry);
    }
    assert_eq!(router.get_json("/apps/shop")["name"], "shop");
}

/// Regression (issue 17): a damaged history file stopped the whole router from starting
/// (`damaged history frame 4`, API down).
#[test]
fn a_damaged_history_file_keeps_what_reads_moves_it_aside_and_starts() {
    let dir = TempDir::new("history-damaged");
    let mut router = Router::start(&dir.0, &[]);
    let token = router.create_app("shop");
    let app_id = router.get_json("/apps/shop")["id"]
        .as_str()
        .expect("id")
        .to_owned();
    let mut conn = router.connect();
    support::send(&mut conn, &support::frames(&token, "web.1", "kept", 0..10));
    router.wait_accepted("shop", 10);
    drop(conn);
    router.terminate();
    let file = dir.0.join("history").join(format!("{app_id}.log"));
    let mut bytes = std::fs::read(&file).expect("history file");
    // Garbage over the middle of the file: the frames from there on do not read.
    let at = bytes.len() / 2;
    bytes[at..at + 8].copy_from_slice(b"garbage!");
    std::fs::write(&file, &bytes).expect("damage");

    let router = Router::start(&dir.0, &[]);
    let lines = router.history("shop", &[]);
    let kept = lines.iter().filter(|l| l.contains("kept n=")).count();
    assert!((1..10).contains(&kept), "{lines:?}");
    assert!(
        lines
            .iter()
            .any(|l| l.contains("paas[logplex]: Error (history file damaged): kept the")),
        "{lines:?}"
    );
    let aside: Vec<String> = std::fs::read_dir(dir.0.join("history"))
        .expect("history dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(&format!("{app_id}.log.damaged-")))
        .collect();
    assert_eq!(aside.len(), 1, "moved aside once");
    let logged = router.stderr.lock().expect("stderr").join("\n");
    assert!(logged.contains("history file damaged"), "{logged}");
}

/// Regression (issue 17): history was saved only at a clean stop, so a SIGKILL lost every
/// app's history since the last one. Now it is on disk within 100 ms of being accepted.
#[test]
fn history_survives_a_sigkill() {
    let dir = TempDir::new("history-kill");
    let mut router = Router::start(&dir.0, &[]);
    let token = router.create_app("shop");
    let mut conn = router.connect();
    support::send(
        &mut conn,
        &support::frames(&token, "web.1", "before", 0..500),
    );
    router.wait_accepted("shop", 500);
    // Past the sync interval (100 ms), then SIGKILL: no clean stop.
    std::thread::sleep(Duration::from_millis(500));
    let _ = router.child.kill();
    let _ = router.child.wait();
    drop(conn);

    let start = Instant::now();
    let router = Router::start(&dir.0, &[]);
    eprintln!("restarted in {:?}", start.elapsed());
    let lines = router.history("shop", &[]);
    let kept: Vec<&String> = lines.iter().filter(|l| l.contains("before n=")).collect();
    assert_eq!(kept.len(), 500, "{} of 500 lines survived", kept.len());
    assert!(kept[499].ends_with("before n=499"));
    // New lines follow them.
    let mut conn = router.connect();
    support::send(&mut conn, &support::frames(&token, "web.1", "after", 0..1));
    router.wait_accepted("shop", 1);
    let lines = router.history("shop", &[]);
    assert!(
        lines.last().is_some_and(|l| l.ends_with("after n=0")),
        "{lines:?}"
    );
}

/// The disk fills (here: a file size limit, `ulimit -f`, with SIGXFSZ ignored so that writes
/// fail with EFBIG as they would with ENOSPC): ingest and tails go on, the failed history
/// writes are counted (`/metrics`) and told (`paas[logplex]` in the app's stream), and nothing
/// on disk is corrupt: a restart without the limit reads the history clean.
#[test]
fn a_full_disk_keeps_ingest_and_tails_going_and_history_writes_fail_counted_and_told() {
    let dir = TempDir::new("disk-full");
    let wrapper = [
        "sh",
        "-c",
        "trap '' XFSZ; ulimit -f 256; exec \"$0\" \"$@\"",
    ];
    let mut router = Router::start_wrapped(&dir.0, &wrapper, &["--history-lines", "100000"]);
    let token = router.create_app("shop");
    let url = support::log_session(&router, "shop", r#"{"tail": true, "lines": 0}"#);
    let tail = support::Stream::open(&url, "text/plain");
    router.wait_stats("shop", "open the tail", |s| s["tails"] == 1);
    let mut conn = router.connect();
    let n = 5000;
    support::send(&mut conn, &support::frames(&token, "web.1", "full", 0..n));
    router.wait_accepted("shop", n as u64);
    // The tail still gets every line, the last one included.
    tail.until(&format!("full n={}", n - 1));
    // The history writer takes its lines a batch at a time: wait for it to have tried.
    let deadline = Instant::now() + Duration::from_secs(20);
    let not_written = loop {
        let (status, metrics) = router.curl(&["/metrics"]);
        assert_eq!(status, 200);
        let not_written: u64 = metrics
            .lines()
            .find(|l| l.starts_with("logplex_history_lines_not_written_total "))
            .and_then(|l| l.rsplit(' ').next()?.parse().ok())
            .expect("the metric");
        let told = router.history("shop", &["--source", "logplex"]);
        let is_told = told
            .iter()
            .any(|l| l.contains("Error (history not written to disk)"));
        if (not_written > 0 && is_told) || Instant::now() > deadline {
            break (not_written, told);
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let (not_written, told) = not_written;
    assert!(not_written > 0, "{not_written}");
    assert!(
        told.iter()
            .any(|l| l.contains("Error (history not written to disk)")),
        "{told:?}"
    );
    router.terminate();
    drop(conn);

    // Room again: the router starts, reads what reached the disk, and finds nothing damaged.
    let router = Router::start(&dir.0, &[]);
    let lines = router.history("shop", &[]);
    assert!(lines.iter().any(|l| l.contains("full n=0")), "{lines:?}");
    assert!(
        !lines.iter().any(|l| l.contains("history file damaged")),
        "{lines:?}"
    );
    let aside = std::fs::read_dir(dir.0.join("history"))
        .expect("history dir")
        .filter_map(Result::ok)
        .any(|e| e.file_name().to_string_lossy().contains(".damaged-"));
    assert!(!aside);
}
