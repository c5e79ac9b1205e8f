//! Metric extraction end to end on `paas logplex`: l2met lines sent over syslog become
//! Prometheus series with the exact values sent (units in base units), an app key sees only
//! its app's series on `/metrics`, hostile metric lines are bounded and counted, and the
//! exposition is clean under `promtool check metrics`.

mod support;

use std::io::Write as _;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use support::{Router, TempDir, frame, send};

/// `/metrics` with the operator key, once the extractor has read `lines` lines.
fn metrics_after(router: &Router, lines: u64) -> String {
    let start = Instant::now();
    loop {
        let (status, text) = router.curl(&["/metrics"]);
        assert_eq!(status, 200, "{text}");
        if text.contains(&format!("paas_metrics_lines_total {lines}\n")) {
            return text;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "the extractor never read {lines} lines: {text}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// `promtool check metrics` on `text`: its complaints, empty when clean.
fn promtool(text: &str) -> String {
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run promtool (Debian's prometheus; scripts/test installs it)");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    if out.status.success() {
        String::new()
    } else {
        said
    }
}

/// The sum of every sample of `family` (a full sample name) labelled `app`.
fn sum_of(text: &str, family: &str, app: &str) -> f64 {
    text.lines()
        .filter(|l| l.starts_with(&format!("{family}{{")) && l.contains(&format!("app=\"{app}\"")))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

#[test]
fn l2met_conventions_become_series_and_an_app_key_sees_only_its_own() {
    let dir = TempDir::new("metrics-l2met");
    let router = Router::start(&dir.0, &[]);
    let shop = router.create_app("shop");
    let blog = router.create_app("blog");
    let mut conn = router.connect();
    for (token, message) in [
        (
            &shop,
            "source=api measure#db.latency=20ms count#signups=2 sample#queue-depth=7 sample#cache.size=4KB unique#user=42",
        ),
        (
            &shop,
            "source=api measure#db.latency=40ms count#signups=1 unique#user=43 unique#user=42",
        ),
        (&shop, "source=worker count#signups=5 measure#render=1.5s"),
        (&blog, "count#secret.project=1"),
    ] {
        send(&mut conn, &frame(token, "web.1", message));
    }
    let text = metrics_after(&router, 4);
    for want in [
        "# TYPE paas_app_signups_total counter",
        "paas_app_signups_total{app=\"shop\",source=\"api\"} 3.0",
        "paas_app_signups_total{app=\"shop\",source=\"worker\"} 5.0",
        "# TYPE paas_app_queue_depth gauge",
        "paas_app_queue_depth{app=\"shop\",source=\"api\"} 7.0",
        "paas_app_cache_size_bytes{app=\"shop\",source=\"api\"} 4000.0",
        "# TYPE paas_app_db_latency_seconds histogram",
        "paas_app_db_latency_seconds_count{app=\"shop\",source=\"api\"} 2",
        "paas_app_db_latency_seconds_sum{app=\"shop\",source=\"api\"} 0.06",
        "paas_app_db_latency_seconds_bucket{le=\"0.01\",app=\"shop\",source=\"api\"} 0",
        "paas_app_db_latency_seconds_bucket{le=\"0.025\",app=\"shop\",source=\"api\"} 1",
        "paas_app_db_latency_seconds_bucket{le=\"0.05\",app=\"shop\",source=\"api\"} 2",
        "paas_app_render_seconds_sum{app=\"shop\",source=\"worker\"} 1.5",
        "paas_app_user_unique{app=\"shop\",source=\"api\"} 2.0",
        "paas_app_secret_project_total{app=\"blog\",source=\"\"} 1.0",
    ] {
        assert!(text.contains(want), "{want} in\n{text}");
    }
    assert_eq!(promtool(&text), "");

    // An app key: its own app's series, not another app's, nor even their names.
    let (s, b) = router.curl(&["-X", "POST", "/apps/shop/keys"]);
    assert_eq!(s, 201, "{b}");
    let key = serde_json::from_str::<Value>(&b).unwrap()["key"]
        .as_str()
        .unwrap()
        .to_owned();
    let (s, mine) = router.curl_as(&key, &["/metrics"]);
    assert_eq!(s, 200, "{mine}");
    assert!(mine.contains("paas_app_signups_total{app=\"shop\",source=\"api\"} 3.0"));
    assert!(mine.contains("logplex_lines_accepted_total{app=\"shop\"} 3"));
    assert!(!mine.contains("blog") && !mine.contains("secret"), "{mine}");
    assert!(
        !mine.contains("listener="),
        "router-wide series are the operator's: {mine}"
    );
    assert_eq!(promtool(&mine), "");
    // OpenMetrics when asked for, as Prometheus does.
    let (s, open) = router.curl_as(
        &key,
        &[
            "-H",
            "Accept: application/openmetrics-text; version=1.0.0",
            "/metrics",
        ],
    );
    assert_eq!(s, 200);
    assert!(open.ends_with("# EOF\n"), "{open}");
    assert!(open.contains("# TYPE paas_app_signups counter"), "{open}");
    // The JSON snapshot behind `paas metrics` is scoped the same way.
    let (s, _) = router.curl_as(&key, &["/apps/blog/metrics"]);
    assert_eq!(s, 404);
    let (s, snap) = router.curl_as(&key, &["/apps/shop/metrics"]);
    assert_eq!(s, 200, "{snap}");
    assert_eq!(serde_json::from_str::<Value>(&snap).unwrap()["app"], "shop");
}

#[test]
fn hostile_metric_lines_are_bounded_counted_and_never_break_the_router() {
    let dir = TempDir::new("metrics-hostile");
    let flags = [
        "--metrics-max-series-per-app",
        "20",
        "--metrics-max-series-per-metric",
        "5",
    ];
    let router = Router::start(&dir.0, &flags);
    let shop = router.create_app("shop");
    let mut conn = router.connect();
    let hostile = [
        "measure#a=NaN measure#b=inf sample#c=1e999 sample#d=1e300 count#e=-1 count#ü=1 \
         sample#=1 sample#ok=1 measure#big=99999999999999999999999999ms",
        "sample#\u{202e}evil=\"\u{0}\" count#\"}\\n=1 sample#x{y=\"z\"}=2",
    ];
    let mut bytes = Vec::new();
    for h in hostile {
        bytes.extend(frame(&shop, "web.1", h));
    }
    for i in 0..100 {
        bytes.extend(frame(&shop, "web.1", &format!("source=s{i} count#src=1")));
    }
    for i in 0..10_000 {
        bytes.extend(frame(&shop, "web.1", &format!("count#n{i}=1")));
    }
    send(&mut conn, &bytes);
    let text = metrics_after(&router, 10_102);
    let series = text
        .lines()
        .filter(|l| l.starts_with("paas_app_") && l.contains("app=\"shop\""))
        .count();
    assert_eq!(series, 20, "the per-app cap holds:\n{text}");
    let src = text
        .lines()
        .filter(|l| l.starts_with("paas_app_src_total{"))
        .count();
    assert_eq!(src, 5, "the per-metric cap holds");
    let dropped = sum_of(&text, "paas_metrics_dropped_series_total", "shop");
    // 95 of src; of the 10,000 names all but what the cap had left: 20 - 5 (src) - the
    // hostile lines' 2 (`ok`, and the counter `"}\n` sanitised to `n`; `evil` and `x{y`
    // have no number).
    assert_eq!(dropped, (95 + 10_000 - (20 - 5 - 2)) as f64, "{text}");
    let dropped_labels = text
        .lines()
        .filter(|l| l.starts_with("paas_metrics_dropped_series_total{app=\"shop\""))
        .count();
    assert_eq!(dropped_labels, 6, "5 metrics and other");
    for (reason, n) in [
        ("not_a_number", 5),
        ("out_of_range", 2),
        ("negative_count", 1),
        ("bad_name", 1),
    ] {
        let want =
            format!("paas_metrics_rejected_values_total{{app=\"shop\",reason=\"{reason}\"}} {n}");
        assert!(text.contains(&want), "{want} in\n{text}");
    }
    assert_eq!(promtool(&text), "");
    // The router took every line and goes on.
    assert_eq!(router.stats("shop")["accepted"], 10_102);
    send(&mut conn, &frame(&shop, "web.1", "count#n0=1"));
    metrics_after(&router, 10_103);
}
