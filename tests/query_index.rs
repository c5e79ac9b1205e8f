//! The query index against the real router: lines reach a query within a second of being
//! sent, then blocks (`--query-index-flush 0s` writes them at once); answers from blocks match
//! an independent computation and survive a SIGKILL; a damaged block is an error naming its
//! file until `paas index:rebuild`; retention deletes old blocks; `paas apps:stats` shows the
//! index's lag; an app key cannot see another app's index.

mod support;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde_json::Value;
use support::{Router, TempDir, frame, send};

fn message(i: usize) -> String {
    format!(
        "at=info method=GET path=\"/p{}\" host=shop.example request_id=r{i} status={} service={}ms bytes={} msg=\"{}\"",
        i % 13,
        if i.is_multiple_of(9) { 503 } else { 200 },
        i * 31 % 2000 + 1,
        100 + i,
        if i.is_multiple_of(4) {
            "upstream timeout"
        } else {
            "ok"
        },
    )
}

fn send_lines(router: &Router, token: &str, range: std::ops::Range<usize>) {
    let mut conn = router.connect();
    let mut batch = Vec::new();
    for i in range {
        batch.extend(frame(token, "router", &message(i)));
    }
    send(&mut conn, &batch);
}

fn query(router: &Router, app: &str, q: &str) -> Vec<Value> {
    let out = router.paas(&["query", "--json", "-a", app, q]);
    assert!(
        out.status.success(),
        "paas query {q}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

/// Waits until every line the app accepted is in a block.
fn wait_indexed(router: &Router, app: &str, lines: u64) -> Value {
    let start = Instant::now();
    loop {
        let kept = router.get_json(&format!("/apps/{app}/index"));
        if kept["index_lines"] == lines && kept["lag_bytes"] == 0 {
            return kept;
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "not indexed: {kept}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// `count, p50(service), max(bytes) by path` computed here from the messages sent.
fn expected(range: std::ops::Range<usize>) -> BTreeMap<String, (u64, f64, f64)> {
    let mut by: BTreeMap<String, Vec<(f64, f64)>> = BTreeMap::new();
    for i in range {
        by.entry(format!("/p{}", i % 13))
            .or_default()
            .push(((i * 31 % 2000 + 1) as f64, (100 + i) as f64));
    }
    by.into_iter()
        .map(|(path, mut v)| {
            v.sort_by(|a, b| a.0.total_cmp(&b.0));
            let rank = (0.5 * v.len() as f64).ceil() as usize;
            let max = v.iter().map(|x| x.1).fold(f64::MIN, f64::max);
            (path, (v.len() as u64, v[rank - 1].0, max))
        })
        .collect()
}

fn answered(rows: &[Value]) -> BTreeMap<String, (u64, f64, f64)> {
    rows.iter()
        .map(|r| {
            (
                r["path"].as_str().unwrap().to_owned(),
                (
                    r["count"].as_u64().unwrap(),
                    r["p50(service)"].as_f64().unwrap(),
                    r["max(bytes)"].as_f64().unwrap(),
                ),
            )
        })
        .collect()
}

const BY_PATH: &str = "* | count, p50(service), max(bytes) by path";

#[test]
fn a_line_is_answered_within_a_second_then_from_blocks_and_after_a_sigkill() {
    let dir = TempDir::new("query-index");
    let router = Router::start(&dir.0, &["--query-index-flush", "0s"]);
    let token = router.create_app("shop");

    // Near real time: one line, asked for until it is there.
    let sent = Instant::now();
    send_lines(&router, &token, 0..1);
    loop {
        if query(&router, "shop", "request_id=r0").len() == 1 {
            break;
        }
        assert!(
            sent.elapsed() < Duration::from_secs(1),
            "a line sent is answered within 1 s"
        );
        std::thread::sleep(Duration::from_millis(20));
    }

    send_lines(&router, &token, 1..3000);
    router.wait_accepted("shop", 3000);
    let kept = wait_indexed(&router, "shop", 3000);
    assert!(kept["index_blocks"].as_u64().unwrap() >= 1, "{kept}");
    assert_eq!(
        answered(&query(&router, "shop", BY_PATH)),
        expected(0..3000)
    );
    let timeouts = (0..3000).filter(|i| i % 4 == 0).count() as u64;
    assert_eq!(
        query(&router, "shop", "\"timeout\" | count")[0]["count"],
        timeouts
    );
    assert_eq!(
        query(&router, "shop", "status=503 path=/p3 | count")[0]["count"],
        (0..3000).filter(|i| i % 9 == 0 && i % 13 == 3).count() as u64
    );

    // apps:stats tells what is kept and the lag.
    let out = router.paas(&["apps:stats", "-a", "shop"]);
    let stats: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(stats["query"]["index_lines"], 3000, "{stats}");
    assert_eq!(stats["query"]["lag_bytes"], 0, "{stats}");

    // SIGKILL: the blocks and the spool's tail give the same answers after.
    send_lines(&router, &token, 3000..3100);
    router.wait_accepted("shop", 3100);
    std::thread::sleep(Duration::from_millis(300));
    let mut router = router;
    let _ = router.child.kill();
    let _ = router.child.wait();
    let router = Router::start(&dir.0, &["--query-index-flush", "0s"]);
    assert_eq!(
        answered(&query(&router, "shop", BY_PATH)),
        expected(0..3100)
    );
    wait_indexed(&router, "shop", 3100);
    assert_eq!(
        answered(&query(&router, "shop", BY_PATH)),
        expected(0..3100)
    );
}

#[test]
fn a_damaged_block_names_its_file_until_a_rebuild() {
    let dir = TempDir::new("query-rebuild");
    let mut router = Router::start(&dir.0, &["--query-index-flush", "0s"]);
    let token = router.create_app("shop");
    send_lines(&router, &token, 0..500);
    router.wait_accepted("shop", 500);
    wait_indexed(&router, "shop", 500);
    // A healthy rebuild changes no answer.
    let out = router.paas(&["index:rebuild", "-a", "shop"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("500 lines"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert_eq!(answered(&query(&router, "shop", BY_PATH)), expected(0..500));
    router.terminate();

    // Damage the blocks' token filters: queries name a damaged file; a rebuild reads every
    // line back (they are in the blocks' chunks). (Usually one block; lines that reached the
    // spool in two writes under load can make two.)
    let blocks = || {
        let blocks: Vec<_> = walk(&dir.0)
            .into_iter()
            .filter(|p| p.extension().is_some_and(|e| e == "blk"))
            .collect();
        assert!(!blocks.is_empty() && blocks.len() <= 4, "{blocks:?}");
        blocks
    };
    let section = |path: &std::path::Path, name: &str| -> u64 {
        let bytes = std::fs::read(path).unwrap();
        let len = u32::from_le_bytes(bytes[8..12].try_into().unwrap()) as usize;
        let header: Value = serde_json::from_slice(&bytes[12..12 + len]).unwrap();
        header["chunks"][0][name]["offset"].as_u64().unwrap()
    };
    let flip = |path: &std::path::Path, at: u64| {
        let mut bytes = std::fs::read(path).unwrap();
        bytes[at as usize + 3] ^= 0x55;
        std::fs::write(path, &bytes).unwrap();
    };
    let damaged = blocks();
    for path in &damaged {
        flip(path, section(path, "filter"));
    }
    let router = Router::start(&dir.0, &["--query-index-flush", "0s"]);
    let out = router.paas(&["query", "-a", "shop", "\"nosuchword\" | count"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        damaged
            .iter()
            .any(|p| err.contains(&p.display().to_string()))
            && err.contains("index:rebuild"),
        "{err}"
    );
    let out = router.paas(&["index:rebuild", "-a", "shop"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert_eq!(answered(&query(&router, "shop", BY_PATH)), expected(0..500));

    // Damage their lines: the rebuild says they are lost, and the rest answers.
    for path in blocks() {
        flip(&path, section(&path, "lines"));
    }
    let out = router.paas(&["index:rebuild", "-a", "shop"]);
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success(), "lines were lost: {said}");
    assert!(
        said.contains("unreadable") && said.contains("lines: checksum mismatch"),
        "{said}"
    );
    assert_eq!(query(&router, "shop", "* | count")[0]["count"], 0);
}

#[test]
fn retention_deletes_old_blocks_and_app_keys_see_their_own_index_only() {
    let dir = TempDir::new("query-retention");
    let router = Router::start(
        &dir.0,
        &["--query-index-flush", "0s", "--query-retention", "2s"],
    );
    let token = router.create_app("shop");
    router.create_app("other");
    send_lines(&router, &token, 0..100);
    router.wait_accepted("shop", 100);
    wait_indexed(&router, "shop", 100);
    std::thread::sleep(Duration::from_millis(2500));
    send_lines(&router, &token, 100..150);
    router.wait_accepted("shop", 150);
    let start = Instant::now();
    loop {
        let kept = router.get_json("/apps/shop/index");
        if kept["index_lines"] == 50 {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(20), "{kept}");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(query(&router, "shop", "* | count")[0]["count"], 50);

    let (status, body) = router.curl(&["-X", "POST", "-d", "{}", "/apps/other/keys"]);
    assert_eq!(status, 201, "{body}");
    let key: Value = serde_json::from_str(&body).unwrap();
    let key = key["key"].as_str().unwrap();
    for path in ["/apps/shop/index", "/apps/shop/query?q=*"] {
        let (status, body) = router.curl_as(key, &[path]);
        assert!(status == 403 || status == 404, "{path}: {status} {body}");
        assert!(!body.contains("index_lines") && !body.contains("request_id"));
    }
    let (status, _) = router.curl_as(key, &["-X", "POST", "/apps/shop/index/rebuild"]);
    assert!(status == 403 || status == 404);
    let (status, _) = router.curl_as(key, &["/apps/other/index"]);
    assert_eq!(status, 200);
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}
