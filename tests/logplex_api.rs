//! The API end to end: Platform-API app info, keys and tenancy, log sessions as SSE, NDJSON
//! and plain text with their filters, live tails with `paas logs --tail`, stats, metrics,
//! probes, and a clean restart that keeps apps, tokens and history.

mod support;

use std::time::Duration;

use serde_json::Value;
use support::{KEY, Router, Stream, TempDir, frame, frames, log_session, send};

#[test]
fn app_info_follows_the_platform_api_and_keys_see_their_own_app_only() {
    let dir = TempDir::new("api");
    let router = Router::start(&dir.0, &[]);
    router.create_app("shop");
    router.create_app("blog");
    let app = router.get_json("/apps/shop");
    assert_eq!(app["name"], "shop");
    assert_eq!(app["generation"]["name"], "cedar");
    for field in [
        "id",
        "created_at",
        "updated_at",
        "stack",
        "region",
        "owner",
        "maintenance",
    ] {
        assert!(app.get(field).is_some(), "app info has {field}: {app}");
    }
    assert_eq!(router.get_json("/apps").as_array().unwrap().len(), 2);

    let (s, b) = router.curl(&["-X", "POST", "/apps/shop/keys"]);
    assert_eq!(s, 201, "{b}");
    let shop_key = serde_json::from_str::<Value>(&b).unwrap()["key"]
        .as_str()
        .unwrap()
        .to_owned();
    let (s, b) = router.curl_as(&shop_key, &["/apps"]);
    assert_eq!(s, 200);
    let names: Vec<Value> = serde_json::from_str::<Vec<Value>>(&b)
        .unwrap()
        .into_iter()
        .map(|a| a["name"].clone())
        .collect();
    assert_eq!(names, ["shop"]);
    // Another tenant's app is "not found", exactly as one that does not exist.
    let (s, other) = router.curl_as(&shop_key, &["/apps/blog/stats"]);
    let (s2, missing) = router.curl_as(&shop_key, &["/apps/nope/stats"]);
    assert_eq!((s, s2), (404, 404));
    assert_eq!(other, missing);
    assert!(!other.contains("blog"));
    let (s, _) = router.curl_as(
        &shop_key,
        &[
            "-X",
            "POST",
            "-d",
            r#"{"lines":1}"#,
            "/apps/blog/log-sessions",
        ],
    );
    assert_eq!(s, 404);
    // /metrics for an app key: its own app's series only (tests/metrics_extract.rs says more).
    let (s, m) = router.curl_as(&shop_key, &["/metrics"]);
    assert_eq!(s, 200, "{m}");
    assert!(
        m.contains("logplex_lines_accepted_total{app=\"shop\"}"),
        "{m}"
    );
    assert!(!m.contains("blog") && !m.contains("listener="), "{m}");
    let (s, _) = router.curl_as(&shop_key, &["-X", "DELETE", "/apps/shop"]);
    assert_eq!(s, 403);
    // No key, or a wrong one: 401 with the Platform API's error shape.
    let (s, b) = router.curl_as("", &["/apps"]);
    assert_eq!(s, 401);
    assert_eq!(
        serde_json::from_str::<Value>(&b).unwrap()["id"],
        "unauthorized"
    );
    assert_eq!(router.curl_as("k.wrong", &["/apps/shop"]).0, 401);
    // Probes need no key.
    assert_eq!(router.curl_as("", &["/healthz"]).0, 200);
    assert_eq!(router.curl_as("", &["/readyz"]).0, 200);
    // Bad requests are clear.
    let (s, b) = router.curl(&["-X", "POST", "-d", r#"{"name":"Bad Name"}"#, "/apps"]);
    assert_eq!(s, 422, "{b}");
    let (s, _) = router.curl(&["-X", "POST", "-d", r#"{"name":"shop"}"#, "/apps"]);
    assert_eq!(s, 409);
    let (s, _) = router.curl(&["-X", "POST", "-d", "{not json", "/apps"]);
    assert_eq!(s, 422);
}

#[test]
fn log_sessions_stream_history_in_every_format_with_filters() {
    let dir = TempDir::new("sessions");
    let router = Router::start(&dir.0, &[]);
    let token = router.create_app("shop");
    let other = router.create_app("blog");
    let mut conn = router.connect();
    send(&mut conn, &frame(&token, "web.1", "at=info status=200"));
    send(&mut conn, &frame(&token, "web.2", "at=info status=503"));
    send(&mut conn, &frame(&token, "worker.1", "job done"));
    send(
        &mut conn,
        &frame(&token, "router", "from the app, not the platform"),
    );
    send(&mut conn, &frame(&other, "web.1", "blog secret"));
    drop(conn);
    router.wait_accepted("shop", 4);
    router.wait_accepted("blog", 1);

    let url = log_session(&router, "shop", r#"{"lines": 10}"#);
    let plain = Stream::open(&url, "text/plain");
    let lines: Vec<String> = std::iter::from_fn(|| plain.next()).collect();
    assert_eq!(lines.len(), 4, "{lines:?}");
    assert_eq!(
        lines[0],
        "2026-11-21T12:00:00.123456+00:00 app[web.1]: at=info status=200"
    );
    assert!(!lines.iter().any(|l| l.contains("blog")));

    let url = log_session(&router, "shop", r#"{"lines": "10", "dyno": "web"}"#);
    let sse = Stream::open(&url, "text/event-stream");
    let events: Vec<String> = std::iter::from_fn(|| sse.next()).collect();
    assert_eq!(
        events,
        [
            "retry: 1000",
            "",
            "id: 1",
            "data: 2026-11-21T12:00:00.123456+00:00 app[web.1]: at=info status=200",
            "",
            "id: 2",
            "data: 2026-11-21T12:00:00.123456+00:00 app[web.2]: at=info status=503",
            "",
        ]
    );

    let url = log_session(&router, "shop", r#"{"filter": "status>=500"}"#);
    let nd = Stream::open(&url, "application/x-ndjson");
    let objs: Vec<Value> = std::iter::from_fn(|| nd.next())
        .map(|l| serde_json::from_str(&l).unwrap())
        .collect();
    assert_eq!(objs.len(), 1);
    assert_eq!(
        (objs[0]["process"].as_str(), objs[0]["message"].as_str()),
        (Some("web.2"), Some("at=info status=503"))
    );

    // `--source router` means the platform's router, not an app process called "router".
    assert!(router.history("shop", &["--source", "router"]).is_empty());
    assert_eq!(
        router
            .history("shop", &["--source", "app", "-d", "worker"])
            .len(),
        1
    );
    let out = router.logs(&["-a", "shop", "-n", "2"]);
    assert_eq!(String::from_utf8_lossy(&out.stdout).lines().count(), 2);
    // --json: one object per line with the logfmt fields.
    let out = router.logs(&["-a", "shop", "--json", "-d", "web.2"]);
    let v: Value =
        serde_json::from_slice(out.stdout.split(|&b| b == b'\n').next().unwrap()).unwrap();
    assert_eq!(v["fields"]["status"], "503");
    assert_eq!(v["fields"]["at"], "info");

    let (s, b) = router.curl(&[
        "-X",
        "POST",
        "-d",
        r#"{"filter": "(status=1"}"#,
        "/apps/shop/log-sessions",
    ]);
    assert_eq!(s, 422, "{b}");
    assert_eq!(router.curl_as("", &["/log-sessions/not-a-session"]).0, 404);
}

#[test]
fn paas_logs_tail_shows_live_lines_and_a_slow_tail_gets_l11() {
    let dir = TempDir::new("tail");
    let router = Router::start(&dir.0, &["--tail-buffer", "5", "--keepalive", "0.2"]);
    let token = router.create_app("shop");
    let mut conn = router.connect();
    send(&mut conn, &frame(&token, "web.1", "before the tail"));
    router.wait_accepted("shop", 1);
    let mut tail = std::process::Command::new(env!("CARGO_BIN_EXE_paas"))
        .args(["logs", "-a", "shop", "--tail", "-n", "1", "--source", "app"])
        .env("PAAS_API_URL", &router.api)
        .env("PAAS_API_KEY", KEY)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let out = tail.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for l in std::io::BufReader::new(out).lines().map_while(Result::ok) {
            let _ = tx.send(l);
        }
    });
    let next = || {
        rx.recv_timeout(Duration::from_secs(10))
            .expect("a tail line")
    };
    assert!(next().ends_with("app[web.1]: before the tail"));
    router.wait_stats("shop", "open the tail", |s| s["tails"] == 1);
    send(&mut conn, &frame(&token, "web.1", "live one"));
    assert!(next().ends_with("app[web.1]: live one"));
    let _ = tail.kill();
    let _ = tail.wait();
    router.wait_stats("shop", "close the tail", |s| s["tails"] == 0);

    // An SSE reader that stops reading for a while loses the oldest lines and is told so.
    let url = log_session(&router, "shop", r#"{"tail": true, "lines": 0}"#);
    let sse = Stream::open(&url, "text/event-stream");
    router.wait_stats("shop", "open the tail", |s| s["tails"] == 1);
    assert_eq!(sse.next().as_deref(), Some("retry: 1000"));
    assert_eq!(sse.next().as_deref(), Some(""));
    assert_eq!(
        sse.next().as_deref(),
        Some(": keep-alive"),
        "quiet tails get keep-alives"
    );
    let _ = sse.next();
    // Stop the reader process so its buffer fills, then let it go on.
    let pid = sse.child.id().to_string();
    let _ = std::process::Command::new("kill")
        .args(["-STOP", &pid])
        .status();
    send(
        &mut conn,
        &frames(&token, "web.1", &"x".repeat(2000), 0..3000),
    );
    router.wait_stats("shop", "drop for the stopped reader", |s| {
        s["consumers"][0]["dropped"].as_u64().unwrap_or(0) > 0
    });
    let _ = std::process::Command::new("kill")
        .args(["-CONT", &pid])
        .status();
    let lines = sse.until("Error L11 (Tail buffer overflow) -> This tail session dropped");
    assert!(lines.last().unwrap().contains("paas[logplex]"), "{lines:?}");
}

#[test]
fn an_event_source_reconnects_without_gaps_or_repeats() {
    let dir = TempDir::new("resume");
    let router = Router::start(&dir.0, &[]);
    let token = router.create_app("shop");
    let other = router.create_app("blog");
    let mut conn = router.connect();
    send(&mut conn, &frames(&token, "web.1", "first", 0..3));
    router.wait_accepted("shop", 3);
    let url = log_session(&router, "shop", r#"{"tail": true, "lines": 10}"#);
    let events = Stream::open(&url, "text/event-stream");
    let got = events.until("first n=2");
    assert_eq!(got[0], "retry: 1000", "{got:?}");
    let last_id = got
        .iter()
        .rev()
        .find_map(|l| l.strip_prefix("id: "))
        .expect("events carry ids")
        .to_owned();
    drop(events);
    router.wait_stats("shop", "close the tail", |s| s["tails"] == 0);
    // While it is away: more lines, interleaved with another app's.
    send(&mut conn, &frames(&token, "web.1", "missed", 0..3));
    send(&mut conn, &frames(&other, "web.1", "not yours", 0..3));
    router.wait_accepted("shop", 6);
    let resumed = Stream::open_with(
        &url,
        "text/event-stream",
        &[&format!("Last-Event-ID: {last_id}")],
    );
    let got = resumed.until("missed n=2");
    let data: Vec<&str> = got
        .iter()
        .filter_map(|l| l.strip_prefix("data: "))
        .collect();
    assert_eq!(data.len(), 3, "exactly the missed lines: {got:?}");
    assert!(data[0].ends_with("missed n=0") && data[2].ends_with("missed n=2"));
    // And it goes on live.
    send(&mut conn, &frame(&token, "web.1", "live after resume"));
    resumed.until("live after resume");
}

#[test]
fn metrics_and_stats_count_what_happened() {
    let dir = TempDir::new("metrics");
    let router = Router::start(&dir.0, &[]);
    let token = router.create_app("shop");
    let mut conn = router.connect();
    send(&mut conn, &frames(&token, "web.1", "m", 0..7));
    send(&mut conn, b"99999999999999999999 junk\n");
    drop(conn);
    // The junk frame is counted once the connection reads it, which may be after the lines
    // it follows are accepted.
    let stats = router.wait_stats("shop", "7 lines and the junk frame", |s| {
        s["accepted"] == 7 && s["rejected"]["bad_length"] == 1
    });
    assert_eq!(stats["history"]["lines"], 7);
    let (s, m) = router.curl(&["/metrics"]);
    assert_eq!(s, 200);
    for expected in [
        "logplex_lines_accepted_total{app=\"shop\"} 7",
        "logplex_lines_rejected_total{app=\"shop\",reason=\"bad_length\"} 1",
        "logplex_history_lines{app=\"shop\"} 7",
        "logplex_connections_accepted_total{listener=\"tcp\"} 1",
        "# TYPE logplex_lines_dropped_total counter",
    ] {
        assert!(m.contains(expected), "{expected} in {m}");
    }
}

#[test]
fn sigterm_stops_cleanly_and_apps_tokens_and_history_survive() {
    let dir = TempDir::new("restart");
    let mut router = Router::start(&dir.0, &[]);
    let token = router.create_app("shop");
    let url = log_session(&router, "shop", r#"{"tail": true, "lines": 0}"#);
    let tail = Stream::open(&url, "text/plain");
    router.wait_stats("shop", "open the tail", |s| s["tails"] == 1);
    let mut conn = router.connect();
    send(&mut conn, &frames(&token, "web.1", "kept", 0..50));
    router.wait_accepted("shop", 50);
    // It stops (terminate fails past 15 s); how fast is a benchmark's question, not a test's.
    router.terminate();
    // The tail got its lines, then the end of the stream.
    let got: Vec<String> = std::iter::from_fn(|| tail.next()).collect();
    assert_eq!(got.len(), 50);
    drop(conn);

    let router = Router::start(&dir.0, &[]);
    let lines = router.history("shop", &[]);
    assert_eq!(lines.len(), 50);
    assert!(lines[49].ends_with("app[web.1]: kept n=49"));
    // Lines keep their place in the stream, so readers resume across the restart.
    let url = log_session(&router, "shop", r#"{"lines": 1}"#);
    let last: Value =
        serde_json::from_str(&Stream::open(&url, "application/x-ndjson").next().unwrap()).unwrap();
    assert_eq!(last["seq"], 50);
    // The same token still works.
    let mut conn = router.connect();
    send(&mut conn, &frame(&token, "web.1", "after restart"));
    drop(conn);
    router.wait_accepted("shop", 1);
}
