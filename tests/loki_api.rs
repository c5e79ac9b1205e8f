//! The Loki-compatible API against a real `paas logplex`: each LogQL construct is answered
//! the same as the equivalent `paas query` (lines, counts, top-k, percentiles, a range query's
//! points against a timechart), in the Loki HTTP API's shapes; keys scope what is read;
//! malformed, oversized and hostile queries get a 400 with a message; `/tail` streams over a
//! WebSocket.

mod support;

use std::collections::BTreeMap;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::Value;
use support::{Router, TempDir, send};

/// The number of router lines sent.
const N: usize = 600;

/// Seconds since the epoch, now.
fn now_secs() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// An RFC 3339 time for `secs` since the epoch (UTC), as the router writes it.
fn rfc3339(secs: i64) -> String {
    logplex::Timestamp::from_micros(secs * 1_000_000).to_string()
}

/// Seconds since the epoch of an RFC 3339 UTC time (`2026-12-05T07:30:00…`).
fn epoch(t: &str) -> i64 {
    let n = |r: std::ops::Range<usize>| t[r].parse::<i64>().unwrap();
    let (y, m, d) = (n(0..4), n(5..7), n(8..10));
    // Howard Hinnant's days_from_civil.
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    days * 86_400 + n(11..13) * 3600 + n(14..16) * 60 + n(17..19)
}

/// Request `i`: its path, status and service time.
fn request(i: usize) -> (String, u16, u64) {
    let path = format!("/p{}", i % 5);
    let status = if i % 10 == 3 { 503 } else { 200 };
    let service = (i * 37 % 1000) as u64 + 1;
    (path, status, service)
}

fn message(i: usize) -> String {
    let (path, status, service) = request(i);
    let method = if i.is_multiple_of(4) { "POST" } else { "GET" };
    format!(
        "at=info method={method} path=\"{path}\" host=shop.example request_id=r{i} status={status} service={service}ms bytes={}",
        100 + i
    )
}

fn frame(token: &str, time: i64, process: &str, message: &str) -> Vec<u8> {
    let body = format!(
        "<190>1 {} host {token} {process} - {message}",
        rfc3339(time)
    );
    format!("{} {body}", body.len()).into_bytes()
}

/// The app, its lines (one a second from `base`) and the router.
struct Fixture {
    _dir: TempDir,
    router: Router,
    base: i64,
}

fn fixture() -> Fixture {
    let dir = TempDir::new("loki");
    let router = Router::start(&dir.0, &[]);
    let token = router.create_app("shop");
    router.create_app("bank");
    // Whole minutes back, so that minute buckets hold 60 lines each.
    let base = (now_secs() - 1800).div_euclid(60) * 60;
    let mut batch = Vec::new();
    for i in 0..N {
        batch.extend(frame(&token, base + i as i64, "router", &message(i)));
    }
    batch.extend(frame(&token, base, "web.1", "hello from web <script>"));
    let mut conn = router.connect();
    send(&mut conn, &batch);
    router.wait_accepted("shop", N as u64 + 1);
    let f = Fixture {
        _dir: dir,
        router,
        base,
    };
    // Kept lines reach the spool within its flush interval.
    let start = Instant::now();
    loop {
        let rows = f.paas_query("* | count");
        if rows.first().and_then(|r| r["count"].as_u64()) == Some(N as u64 + 1) {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(20), "{rows:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
    f
}

impl Fixture {
    /// `paas query --json` over every kept line.
    fn paas_query(&self, q: &str) -> Vec<Value> {
        let out = self
            .router
            .paas(&["query", "--json", "-a", "shop", "--limit", "5000", q]);
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

    /// A Loki GET with `params` (URL-encoded by curl) as `key`: (status, body).
    fn loki_as(&self, key: &str, endpoint: &str, params: &[(&str, &str)]) -> (u16, String) {
        let mut args = vec!["-G".to_owned()];
        for (k, v) in params {
            args.push("--data-urlencode".to_owned());
            args.push(format!("{k}={v}"));
        }
        args.push(format!("/loki/api/v1/{endpoint}"));
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        self.router.curl_as(key, &args)
    }

    /// A Loki GET with the operator key that must succeed: its `data`.
    fn loki(&self, endpoint: &str, params: &[(&str, &str)]) -> Value {
        let (status, body) = self.loki_as(support::KEY, endpoint, params);
        assert_eq!(status, 200, "{endpoint} {params:?}: {body}");
        let v: Value = serde_json::from_str(&body).unwrap_or_else(|e| panic!("{e}: {body}"));
        assert_eq!(v["status"], "success", "{v}");
        v["data"].clone()
    }

    /// The window covering every line, as Loki parameters.
    fn start(&self) -> String {
        (self.base - 60).to_string()
    }

    fn end(&self) -> String {
        (self.base + N as i64 + 60).to_string()
    }

    /// A log query over every line: the messages, and the data.
    fn lines(&self, q: &str) -> (Vec<String>, Value) {
        let (start, end) = (self.start(), self.end());
        let data = self.loki(
            "query_range",
            &[
                ("query", q),
                ("start", &start),
                ("end", &end),
                ("limit", "5000"),
            ],
        );
        assert_eq!(data["resultType"], "streams", "{data}");
        let mut lines = Vec::new();
        for stream in data["result"].as_array().unwrap() {
            let mut last = None;
            for v in stream["values"].as_array().unwrap() {
                let ns: i128 = v[0].as_str().unwrap().parse().unwrap();
                // Backward: newest first within a stream.
                assert!(last.is_none_or(|l| ns <= l), "{stream}");
                last = Some(ns);
                lines.push(v[1].as_str().unwrap().to_owned());
            }
        }
        lines.sort();
        (lines, data)
    }

    /// A metric instant query at the end of the lines: labels → value.
    fn instant(&self, q: &str) -> BTreeMap<String, f64> {
        let time = (self.base + N as i64).to_string();
        let data = self.loki("query", &[("query", q), ("time", &time)]);
        assert_eq!(data["resultType"], "vector", "{data}");
        data["result"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                assert_eq!(r["value"][0].as_i64(), Some(self.base + N as i64), "{r}");
                (
                    r["metric"].to_string(),
                    r["value"][1].as_str().unwrap().parse::<f64>().unwrap(),
                )
            })
            .collect()
    }
}

fn messages(rows: &[Value]) -> Vec<String> {
    let mut m: Vec<String> = rows
        .iter()
        .map(|r| r["message"].as_str().unwrap().to_owned())
        .collect();
    m.sort();
    m
}

#[test]
fn each_logql_construct_answers_as_paas_query_does() {
    let f = fixture();

    // Selector and line filters.
    let (lines, data) = f.lines(r#"{app="shop", process="router"} |= "POST""#);
    assert_eq!(lines, messages(&f.paas_query(r#"process=router "POST""#)));
    assert_eq!(lines.len(), N / 4);
    let stream = &data["result"][0]["stream"];
    assert_eq!(stream["app"], "shop");
    assert_eq!(stream["process"], "router");
    assert!(stream["source"].is_string(), "{stream}");
    let (lines, _) = f.lines(r#"{app="shop"} != "GET""#);
    assert_eq!(lines, messages(&f.paas_query(r#"not "GET""#)));
    assert!(lines.iter().any(|l| l.contains("<script>")));
    let (lines, _) = f.lines(r#"{app="shop"} |~ "path=\"/p[12]\"""#);
    assert_eq!(
        lines,
        messages(&f.paas_query(r#"path="/p1" or path="/p2""#))
    );
    assert_eq!(lines.len(), 2 * N / 5);
    let (lines, _) = f.lines(r#"{app="shop", process!="router"}"#);
    assert_eq!(lines, ["hello from web <script>"]);

    // logfmt and label filters with numbers and durations.
    let (lines, _) = f.lines(r#"{app="shop"} | logfmt | status >= 500"#);
    assert_eq!(lines, messages(&f.paas_query("status>=500")));
    assert_eq!(lines.len(), N / 10);
    let (lines, _) = f.lines(r#"{app="shop"} | logfmt | service > 500ms and method = "GET""#);
    assert_eq!(lines, messages(&f.paas_query("service>500ms method=GET")));
    assert!(!lines.is_empty());
    let (lines, _) = f.lines(r#"{app="shop"} | logfmt | service > 0.9s or status >= 500"#);
    assert_eq!(
        lines,
        messages(&f.paas_query("service>0.9s or status>=500"))
    );

    // limit and direction.
    let (start, end) = (f.start(), f.end());
    let data = f.loki(
        "query_range",
        &[
            ("query", r#"{app="shop", process="router"}"#),
            ("start", &start),
            ("end", &end),
            ("limit", "3"),
            ("direction", "forward"),
        ],
    );
    let values = data["result"][0]["values"].as_array().unwrap();
    assert_eq!(values.len(), 3);
    assert_eq!(values[0][1], message(0));
    assert_eq!(values[2][1], message(2));
    let data = f.loki(
        "query_range",
        &[
            ("query", r#"{app="shop", process="router"}"#),
            ("start", &start),
            ("end", &end),
            ("limit", "2"),
        ],
    );
    let values = data["result"][0]["values"].as_array().unwrap();
    assert_eq!(values[0][1], message(N - 1));
    assert_eq!(values[1][1], message(N - 2));
    let ns: i128 = values[0][0].as_str().unwrap().parse().unwrap();
    assert_eq!(ns, i128::from(f.base + N as i64 - 1) * 1_000_000_000);

    // count_over_time, sum by, rate, topk against count by / top.
    let by_path = f.instant(r#"sum by (path) (count_over_time({app="shop"} | logfmt [1h]))"#);
    let rows = f.paas_query("* | count by path");
    assert_eq!(by_path.len(), rows.len());
    for row in &rows {
        let key = serde_json::json!({ "path": row["path"] }).to_string();
        assert_eq!(by_path[&key], row["count"].as_f64().unwrap(), "{key}");
    }
    let total = f.instant(r#"sum(count_over_time({app="shop"}[1h]))"#);
    assert_eq!(total["{}"], (N + 1) as f64);
    let rate = f.instant(r#"sum(rate({app="shop"} |= "POST" [1h]))"#);
    assert_eq!(rate["{}"], (N / 4) as f64 / 3600.0);
    let per_stream = f.instant(r#"count_over_time({app="shop"}[1h])"#);
    assert_eq!(per_stream.len(), 2, "{per_stream:?}");
    assert!(per_stream.keys().all(|k| k.contains("\"app\":\"shop\"")));
    let top = f.instant(
        r#"topk(2, sum by (path) (count_over_time({app="shop"} | logfmt | service > 500ms [1h])))"#,
    );
    let rows = f.paas_query("service>500ms | top 2 path");
    assert_eq!(top.len(), 2);
    let mut want: Vec<f64> = rows.iter().map(|r| r["count"].as_f64().unwrap()).collect();
    let mut got: Vec<f64> = top.values().copied().collect();
    want.sort_by(f64::total_cmp);
    got.sort_by(f64::total_cmp);
    assert_eq!(got, want, "{top:?} {rows:?}");
    let top1 = f.instant(
        r#"topk(1, sum by (path) (count_over_time({app="shop"} | logfmt | status >= 500 [1h])))"#,
    );
    assert_eq!(
        top1.into_iter().collect::<Vec<_>>(),
        [(r#"{"path":"/p3"}"#.to_owned(), (N / 10) as f64)]
    );

    // quantile_over_time with unwrap, against pNN.
    let p99 = f.instant(
        r#"quantile_over_time(0.99, {app="shop"} | logfmt | unwrap service [1h]) by (path)"#,
    );
    let p99s = f.instant(
        r#"quantile_over_time(0.99, {app="shop"} | logfmt | unwrap duration(service) [1h]) by (path)"#,
    );
    let rows = f.paas_query("* | p99(service) by path");
    assert_eq!(p99.len(), rows.len());
    for row in &rows {
        let key = serde_json::json!({ "path": row["path"] }).to_string();
        let want = row["p99(service)"].as_f64().unwrap();
        // The same number, give or take the last digit of its printing.
        assert!(
            (p99[&key] - want).abs() <= want * 1e-12,
            "{key}: {} vs {want}",
            p99[&key]
        );
        assert!((p99s[&key] - want / 1000.0).abs() < 1e-9, "{key}");
    }
    let avg = f.instant(r#"avg_over_time({app="shop"} | unwrap bytes [1h])"#);
    let rows = f.paas_query("* | avg(bytes) by source,process");
    let want = rows.iter().find(|r| r["process"] == "router").unwrap()["avg(bytes)"]
        .as_f64()
        .unwrap();
    assert!(avg.values().any(|v| *v == want), "{avg:?} {want}");
}

#[test]
fn range_queries_step_through_the_engines_timechart() {
    let f = fixture();
    let (start, end) = (f.base.to_string(), (f.base + N as i64).to_string());
    // A sliding minute, a point every 30 s: each is two 30 s buckets of the timechart.
    let data = f.loki(
        "query_range",
        &[
            (
                "query",
                r#"sum(count_over_time({app="shop", process="router"}[1m]))"#,
            ),
            ("start", &start),
            ("end", &end),
            ("step", "30s"),
        ],
    );
    assert_eq!(data["resultType"], "matrix", "{data}");
    let series = data["result"].as_array().unwrap();
    assert_eq!(series.len(), 1);
    assert_eq!(series[0]["metric"], serde_json::json!({}));
    let buckets: BTreeMap<i64, f64> = f
        .paas_query("process=router | timechart 30s count")
        .iter()
        .map(|r| {
            (
                epoch(r["time"].as_str().unwrap()),
                r["count"].as_f64().unwrap(),
            )
        })
        .collect();
    let points = series[0]["values"].as_array().unwrap();
    assert!(points.len() >= N / 30, "{}", points.len());
    for p in points {
        let t = p[0].as_i64().unwrap();
        assert_eq!(t % 30, 0, "aligned to the step");
        let want: f64 = buckets.range(t - 60..t).map(|(_, c)| c).sum();
        assert_eq!(
            p[1].as_str().unwrap().parse::<f64>().unwrap(),
            want,
            "at {t}"
        );
    }
    // A full minute window holds 60 lines, one a second.
    assert!(points.iter().any(|p| p[1] == "60"), "{points:?}");

    // quantile over windows of the step.
    let data = f.loki(
        "query_range",
        &[
            (
                "query",
                r#"quantile_over_time(0.5, {app="shop"} | logfmt | unwrap service [1m]) by (path)"#,
            ),
            ("start", &start),
            ("end", &end),
            ("step", "60"),
        ],
    );
    let rows = f.paas_query("* | timechart 1m p50(service) by path");
    // path → bucket start → p50, as `paas query` gives it.
    let mut want: BTreeMap<(String, i64), f64> = BTreeMap::new();
    for r in &rows {
        want.insert(
            (
                r["path"].as_str().unwrap().to_owned(),
                epoch(r["time"].as_str().unwrap()),
            ),
            r["p50(service)"].as_f64().unwrap(),
        );
    }
    let mut seen = 0;
    for s in data["result"].as_array().unwrap() {
        let path = s["metric"]["path"].as_str().unwrap().to_owned();
        for p in s["values"].as_array().unwrap() {
            // A point at t covers the minute before it.
            let t = p[0].as_i64().unwrap();
            let got: f64 = p[1].as_str().unwrap().parse().unwrap();
            let w = want[&(path.clone(), t - 60)];
            // The same number, give or take the last digit of its printing.
            assert!(
                (got - w).abs() <= w.abs() * 1e-12,
                "{path} at {t}: {got} vs {w}"
            );
            seen += 1;
        }
    }
    assert!(seen >= N / 60, "{seen}");

    // Too many points.
    let (status, body) = f.loki_as(
        support::KEY,
        "query_range",
        &[
            ("query", r#"count_over_time({app="shop"}[1m])"#),
            ("start", "0"),
            ("end", &end),
            ("step", "1"),
        ],
    );
    assert_eq!(status, 400);
    assert!(body.contains("maximum resolution"), "{body}");
}

#[test]
fn labels_series_and_keys() {
    let f = fixture();
    let labels = f.loki("labels", &[]);
    assert_eq!(labels, serde_json::json!(["app", "source", "process"]));
    let apps = f.loki("label/app/values", &[]);
    assert_eq!(apps, serde_json::json!(["bank", "shop"]));
    let (start, end) = (f.start(), f.end());
    let processes = f.loki(
        "label/process/values",
        &[
            ("start", &start),
            ("end", &end),
            ("query", r#"{app="shop"}"#),
        ],
    );
    assert_eq!(processes, serde_json::json!(["router", "web.1"]));
    let series = f.loki(
        "series",
        &[
            ("match[]", r#"{app="shop", process="web.1"}"#),
            ("start", &start),
            ("end", &end),
        ],
    );
    let series = series.as_array().unwrap();
    assert_eq!(series.len(), 1);
    assert_eq!(series[0]["app"], "shop");
    assert_eq!(series[0]["process"], "web.1");

    // Keys: none is a 401; an app key reads its app only, and a selector without app means it.
    let (status, _) = f.loki_as("", "labels", &[]);
    assert_eq!(status, 401);
    let (status, _) = f.loki_as("k.wrong", "labels", &[]);
    assert_eq!(status, 401);
    // Grafana's Basic auth: any user, the key as password.
    let basic = format!("grafana:{}", support::KEY);
    let (status, body) = f
        .router
        .curl_as("", &["-u", &basic, "/loki/api/v1/label/app/values"]);
    assert_eq!((status, body.contains("shop")), (200, true), "{body}");
    let (s, b) = f.router.curl(&["-X", "POST", "/apps/bank/keys"]);
    assert_eq!(s, 201, "{b}");
    let bank_key = serde_json::from_str::<Value>(&b).unwrap()["key"]
        .as_str()
        .unwrap()
        .to_owned();
    let (status, body) = f.loki_as(&bank_key, "query", &[("query", r#"{app="shop"}"#)]);
    assert_eq!(status, 403, "{body}");
    assert!(!body.contains("POST"), "{body}");
    let (status, body) = f.loki_as(&bank_key, "label/app/values", &[]);
    assert_eq!((status, body.contains("shop")), (200, false), "{body}");
    let (status, body) = f.loki_as(
        &bank_key,
        "query_range",
        &[
            ("query", r#"{source="app"}"#),
            ("start", &start),
            ("end", &end),
        ],
    );
    assert_eq!(status, 200, "{body}");
    assert!(!body.contains("shop"), "{body}");
    let (status, body) = f.loki_as(support::KEY, "query", &[("query", r#"{process="router"}"#)]);
    assert_eq!(status, 400);
    assert!(body.contains("name the app"), "{body}");
    let (status, body) = f.loki_as(support::KEY, "query", &[("query", r#"{app="nope"}"#)]);
    assert_eq!(status, 400);
    assert!(body.contains("no app named"), "{body}");
}

#[test]
fn hostile_queries_get_a_400_with_a_message() {
    let dir = TempDir::new("loki-hostile");
    let router = Router::start(&dir.0, &[]);
    router.create_app("shop");
    let f = Fixture {
        _dir: dir,
        router,
        base: now_secs(),
    };
    let deep = format!(
        "{}count_over_time({{app=\"shop\"}}[5m]){}",
        "sum(".repeat(500),
        ")".repeat(500)
    );
    let long = format!("{{app=\"shop\"}} |= \"{}\"", "x".repeat(20_000));
    let huge_re = r#"{app="shop"} |~ "(\w{500}){500}""#.to_owned();
    for (q, extra, needle) in [
        (deep.as_str(), None, "nested more than"),
        (long.as_str(), None, "longer than"),
        (huge_re.as_str(), None, "does not compile"),
        (
            r#"count_over_time({app="shop"}[5 minutes])"#,
            None,
            "not a duration",
        ),
        (r#"{app="shop"} | status > 5xx"#, None, "not a number"),
        (
            r#"{app="shop"}"#,
            Some(("limit", "1000000")),
            "max entries limit",
        ),
        (
            r#"{app="shop"}"#,
            Some(("step", "a while")),
            "invalid parameter step",
        ),
        (
            r#"{app="shop"}"#,
            Some(("start", "yesterday")),
            "invalid parameter start",
        ),
        (
            r#"{app="shop"}"#,
            Some(("direction", "sideways")),
            "invalid direction",
        ),
        ("", None, "query parameter is missing"),
        ("{app=\"shop\"} |= \"\u{202e}\" )))", None, "unexpected"),
    ] {
        let mut params = vec![("query", q)];
        params.extend(extra);
        let (status, body) = f.loki_as(support::KEY, "query_range", &params);
        assert_eq!(status, 400, "{q:.80}: {body}");
        assert!(body.contains(needle), "{q:.80}: {body}");
    }
    // Loki also takes a form body.
    let (status, body) = f.router.curl(&[
        "--data-urlencode",
        "query=sum(count_over_time({app=\"shop\"}[5m]))",
        "/loki/api/v1/query",
    ]);
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("\"resultType\":\"vector\""), "{body}");
    let (status, _) = f.loki_as(support::KEY, "nothing", &[]);
    assert_eq!(status, 404);
    // The router still answers.
    let (status, _) = f.loki_as(support::KEY, "labels", &[]);
    assert_eq!(status, 200);
}

/// The next WebSocket message, as JSON (within a generous 20 s).
async fn next_json<S>(ws: &mut tokio_tungstenite::WebSocketStream<S>) -> Value
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    use futures_util::StreamExt;
    let m = tokio::time::timeout(Duration::from_secs(20), ws.next())
        .await
        .expect("a message within 20 s")
        .expect("open")
        .expect("a frame");
    serde_json::from_str::<Value>(m.to_text().unwrap()).unwrap()
}

#[test]
fn tail_streams_history_then_live_lines_over_a_websocket() {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;

    let dir = TempDir::new("loki-tail");
    let router = Router::start(&dir.0, &[]);
    let token = router.create_app("shop");
    let now = now_secs();
    let mut conn = router.connect();
    send(
        &mut conn,
        &frame(&token, now, "router", "status=200 path=/before"),
    );
    send(
        &mut conn,
        &frame(&token, now, "router", "status=500 path=/before"),
    );
    router.wait_accepted("shop", 2);
    let wait_kept = Instant::now();
    while router
        .paas(&["query", "--json", "-a", "shop", "* | count"])
        .stdout
        .windows(9)
        .all(|w| w != b"\"count\":2")
    {
        assert!(wait_kept.elapsed() < Duration::from_secs(20));
        std::thread::sleep(Duration::from_millis(50));
    }

    let url = format!(
        "{}/loki/api/v1/tail?query={}",
        router.api.replace("http://", "ws://"),
        support::escape(r#"{app="shop"} | logfmt | status >= 500"#)
    );
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let mut request = url.into_client_request().unwrap();
        request.headers_mut().insert(
            "authorization",
            format!("Bearer {}", support::KEY).parse().unwrap(),
        );
        let (mut ws, _) = tokio_tungstenite::connect_async(request).await.unwrap();
        let history = next_json(&mut ws).await;
        let values = &history["streams"][0]["values"];
        assert_eq!(values.as_array().unwrap().len(), 1, "{history}");
        assert_eq!(values[0][1], "status=500 path=/before");
        let mut conn = router.connect();
        send(
            &mut conn,
            &frame(&token, now, "router", "status=200 path=/after"),
        );
        send(
            &mut conn,
            &frame(&token, now, "router", "status=503 path=/after"),
        );
        let live = next_json(&mut ws).await;
        assert_eq!(
            live["streams"][0]["values"][0][1], "status=503 path=/after",
            "{live}"
        );
        assert_eq!(live["streams"][0]["stream"]["app"], "shop");
    });

    // Not a WebSocket, or a metric query: a 400.
    let (status, body) = router.curl(&["/loki/api/v1/tail?query=%7Bapp%3D%22shop%22%7D"]);
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("WebSocket"), "{body}");
}
