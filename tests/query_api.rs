//! `paas query` and `paas import` against the real router: lines sent over syslog are
//! answered by queries (lines, counts, percentiles, timecharts) checked against an
//! independent computation here; an app key sees its own app only; a query that does not read
//! gets its column; imported files keep their times; answers survive a clean stop and a
//! SIGKILL.

mod support;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde_json::Value;
use support::{KEY, Router, TempDir, frame, send};

/// A router line of request `i`: path, status and service time vary with `i`.
fn router_line(i: usize) -> (String, u16, u64) {
    let path = format!("/p{}", i % 7);
    let status = if i.is_multiple_of(10) { 503 } else { 200 };
    let service = (i * 37 % 1000) as u64 + 1;
    (path, status, service)
}

fn message(i: usize) -> String {
    let (path, status, service) = router_line(i);
    format!(
        "at=info method=GET path=\"{path}\" host=shop.example request_id=r{i} status={status} service={service}ms bytes={}",
        100 + i
    )
}

/// Sends `n` router lines for `token` and waits until the app accepted them.
fn send_router_lines(router: &Router, app: &str, token: &str, n: usize) {
    let mut conn = router.connect();
    let mut batch = Vec::new();
    for i in 0..n {
        batch.extend(frame(token, "router", &message(i)));
    }
    send(&mut conn, &batch);
    router.wait_accepted(app, n as u64);
}

/// `paas query` with `--json`: its rows (the process must succeed).
fn query_json(router: &Router, args: &[&str]) -> Vec<Value> {
    let out = router.paas(&[&["query", "--json"], args].concat());
    assert!(
        out.status.success(),
        "paas query {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

/// Polls until `check` holds on the rows of a query (kept lines reach the spool within
/// its flush interval; the bound here is generous).
fn wait_rows(router: &Router, args: &[&str], check: impl Fn(&[Value]) -> bool) -> Vec<Value> {
    let start = Instant::now();
    loop {
        let rows = query_json(router, args);
        if check(&rows) {
            return rows;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "{args:?}: {rows:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn lines_counts_and_percentiles_match_an_independent_computation() {
    let dir = TempDir::new("query");
    let router = Router::start(&dir.0, &[]);
    let token = router.create_app("shop");
    let n = 700;
    send_router_lines(&router, "shop", &token, n);

    let errors = wait_rows(&router, &["-a", "shop", "status>=500"], |r| {
        r.len() == n / 10
    });
    assert_eq!(errors[0]["process"], "router");
    assert_eq!(errors[0]["fields"]["status"], "503");
    assert!(errors[0]["time"].as_str().unwrap().ends_with("+00:00"));

    let mut by_path: BTreeMap<String, (u64, Vec<u64>)> = BTreeMap::new();
    for i in 0..n {
        let (path, _, service) = router_line(i);
        let e = by_path.entry(path).or_default();
        e.0 += 1;
        e.1.push(service);
    }
    let rows = query_json(&router, &["-a", "shop", "* | count by path"]);
    assert_eq!(rows.len(), by_path.len());
    for row in &rows {
        let path = row["path"].as_str().unwrap();
        assert_eq!(row["count"].as_u64(), Some(by_path[path].0), "{row}");
    }
    let counts: Vec<u64> = rows.iter().map(|r| r["count"].as_u64().unwrap()).collect();
    assert!(
        counts.windows(2).all(|w| w[0] >= w[1]),
        "highest first: {counts:?}"
    );

    let rows = query_json(
        &router,
        &[
            "-a",
            "shop",
            "* | p50(service),p99(service),avg(service) by path",
        ],
    );
    for row in &rows {
        let mut values = by_path[row["path"].as_str().unwrap()].1.clone();
        values.sort_unstable();
        let avg = values.iter().sum::<u64>() as f64 / values.len() as f64;
        for (name, q) in [("p50(service)", 0.5), ("p99(service)", 0.99)] {
            let got = row[name].as_f64().unwrap();
            // Within 1% of a value ranked where some common definition of the quantile
            // (nearest rank, linear interpolation's neighbours) puts it.
            let n = values.len() as f64;
            let lo = ((q * (n - 1.0)).floor() as usize).saturating_sub(1);
            let hi = ((q * n).ceil() as usize).min(values.len() - 1);
            assert!(
                values[lo..=hi]
                    .iter()
                    .any(|&v| (got - v as f64).abs() <= v as f64 * 0.01),
                "{name}: {got} not near {:?} in {row}",
                &values[lo..=hi]
            );
        }
        let got = row["avg(service)"].as_f64().unwrap();
        assert!(
            (got - avg).abs() < 1e-6 * avg.max(1.0),
            "avg {got} vs {avg}"
        );
    }

    let text = router.paas(&["query", "-a", "shop", "* | count by status"]);
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(
        text.contains("status") && text.contains("count") && text.contains("503"),
        "{text}"
    );
}

#[test]
fn an_app_key_queries_its_own_app_only_and_bad_queries_say_where() {
    let dir = TempDir::new("query-scope");
    let router = Router::start(&dir.0, &[]);
    let shop = router.create_app("shop");
    router.create_app("blog");
    send_router_lines(&router, "shop", &shop, 10);
    let (_, body) = router.curl(&["-X", "POST", "/apps/blog/keys"]);
    let blog_key: Value = serde_json::from_str(&body).unwrap();
    let blog_key = blog_key["key"].as_str().unwrap();
    let (status, body) = router.curl_as(blog_key, &["/apps/shop/query?q=*"]);
    assert_eq!(status, 404, "{body}");
    assert!(!body.contains("request_id"), "{body}");
    let (status, body) = router.curl(&["/apps/shop/query?q=status%3E%3D500+%7C+cuont"]);
    assert_eq!(status, 422, "{body}");
    assert!(body.contains('^'), "a caret under the column: {body}");
    let (status, body) = router.curl(&["/apps/shop/query?q=*&since=yesterday"]);
    assert_eq!(status, 422, "{body}");
    let (status, _) = router.curl_as(KEY, &["/apps/shop/query?q=*"]);
    assert_eq!(status, 200);
}

#[test]
fn imported_files_keep_their_times_and_answers_survive_restarts() {
    let dir = TempDir::new("query-import");
    let mut router = Router::start(&dir.0, &[]);
    router.create_app("shop");
    let file = dir.0.join("old.log");
    let mut text = String::new();
    for i in 0..50 {
        text.push_str(&format!(
            "2026-11-21T12:{:02}:00.000000+00:00 heroku[router]: {}\n",
            i % 60,
            message(i)
        ));
    }
    std::fs::write(&file, text).unwrap();
    let out = router.paas(&["import", "-a", "shop", file.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("imported 50 lines"));
    let window = [
        "--since",
        "2026-11-21T12:10:00Z",
        "--until",
        "2026-11-21T12:20:00Z",
    ];
    let rows = wait_rows(
        &router,
        &[&["-a", "shop", "*"], &window[..]].concat(),
        |r| r.len() == 10,
    );
    assert_eq!(rows[0]["source"], "heroku");
    assert_eq!(rows[0]["time"], "2026-11-21T12:10:00.000000+00:00");
    assert_eq!(
        router.stats("shop")["accepted"],
        0,
        "imports are not live lines"
    );

    router.terminate();
    let mut router = Router::start(&dir.0, &[]);
    assert_eq!(
        query_json(&router, &["-a", "shop", "* | count"])[0]["count"],
        50
    );
    let token = router.get_json("/apps/shop/tokens")[0]["token"]
        .as_str()
        .unwrap()
        .to_owned();
    send_router_lines(&router, "shop", &token, 20);
    wait_rows(&router, &["-a", "shop", "* | count"], |r| {
        r[0]["count"] == 70
    });
    // A SIGKILL loses at most what was not yet flushed (100 ms): wait past that first.
    std::thread::sleep(Duration::from_millis(300));
    let _ = router.child.kill();
    let _ = router.child.wait();
    let router = Router::start(&dir.0, &[]);
    assert_eq!(
        query_json(&router, &["-a", "shop", "* | count"])[0]["count"],
        70
    );
}
