//! Router RED end to end on `paas up`: requests through the real proxy become
//! `paas_router_*` series whose values are exactly what the router lines say, the dyno
//! manager's runtime lines become `paas_dyno_*` gauges, `paas metrics --once --json` shows
//! the RED view, and the query engine's timechart over the same lines agrees with the metric.

mod support;

use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;
use support::{Router, TempDir, fields, router_lines};

/// `paas up` with one web dyno, quick runtime metrics, every dyno up.
fn paas_up(tag: &str) -> (TempDir, Router) {
    let dir = TempDir::new(tag);
    let flags = [
        "--scale",
        "web=1",
        "--scale",
        "worker=0",
        "--metrics-interval",
        "0.3",
    ];
    let up = Router::up(&dir.0, &flags);
    let start = Instant::now();
    loop {
        let (status, body) = up.curl(&["/apps/hello/dynos"]);
        let dynos: Value = serde_json::from_str(&body).unwrap_or_default();
        let all_up = dynos
            .as_array()
            .is_some_and(|d| !d.is_empty() && d.iter().all(|d| d["state"] == "up"));
        if status == 200 && all_up {
            return (dir, up);
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "dynos not up: {body}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A GET through the proxy: its status.
fn get(up: &Router, path: &str) -> u16 {
    let url = format!("{}{path}", up.proxy.as_deref().expect("proxy address"));
    let out = Command::new("curl")
        .args([
            "-s",
            "-o",
            "/dev/null",
            "--max-time",
            "10",
            "-w",
            "%{http_code}",
        ])
        .arg(url)
        .output()
        .expect("run curl");
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .unwrap_or(0)
}

/// `/metrics` once `check` holds on it.
fn metrics_when(up: &Router, what: &str, check: impl Fn(&str) -> bool) -> String {
    let start = Instant::now();
    loop {
        let (status, text) = up.curl(&["/metrics"]);
        if status == 200 && check(&text) {
            return text;
        }
        assert!(start.elapsed() < Duration::from_secs(15), "{what}: {text}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn router_lines_become_red_series_with_exactly_their_values() {
    let (_dir, up) = paas_up("metrics-red");
    for _ in 0..5 {
        assert_eq!(get(&up, "/"), 200);
    }
    for _ in 0..3 {
        assert_eq!(get(&up, "/no-such-page"), 404);
    }
    let requests = "paas_router_requests_total{app=\"hello\",process_type=\"web\"";
    let text = metrics_when(&up, "8 requests counted", |m| {
        m.contains(&format!("{requests},status_class=\"2xx\",code=\"\"}} 5"))
            && m.contains(&format!("{requests},status_class=\"4xx\",code=\"\"}} 3"))
            && m.contains("paas_dyno_memory_total_bytes{app=\"hello\",dyno=\"web.1\"}")
    });
    // What the router lines say, summed.
    let lines: Vec<_> = router_lines(&up).iter().map(|l| fields(l)).collect();
    assert_eq!(lines.len(), 8, "{lines:?}");
    let bytes: u64 = lines
        .iter()
        .map(|f| f["bytes"].parse::<u64>().unwrap())
        .sum();
    let service: f64 = lines
        .iter()
        .map(|f| f["service"].trim_end_matches("ms").parse::<f64>().unwrap() / 1e3)
        .sum();
    for want in [
        format!("paas_router_response_bytes_total{{app=\"hello\"}} {bytes}"),
        "paas_router_service_seconds_count{app=\"hello\"} 8".to_owned(),
        "paas_router_connect_seconds_count{app=\"hello\"} 8".to_owned(),
        "paas_router_service_seconds_bucket{le=\"+Inf\",app=\"hello\"} 8".to_owned(),
        "# TYPE paas_router_service_seconds histogram".to_owned(),
        // The dyno manager's typed R-codes are counted beside (none here).
        "paas_dyno_errors_total{app=\"hello\",code=\"R14\"} 0".to_owned(),
    ] {
        assert!(text.contains(&want), "{want} in\n{text}");
    }
    let sum_line = text
        .lines()
        .find(|l| l.starts_with("paas_router_service_seconds_sum{app=\"hello\"}"))
        .unwrap();
    let sum: f64 = sum_line.rsplit(' ').next().unwrap().parse().unwrap();
    assert!((sum - service).abs() < 1e-9, "{sum} vs {service}");

    // `paas metrics --once --json`: the RED view of the same.
    let out = up.paas(&[
        "metrics",
        "-a",
        "hello",
        "--once",
        "--json",
        "--interval",
        "0.2",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let view: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(view["app"], "hello");
    assert_eq!(view["requests_total"]["2xx"], 5);
    assert_eq!(view["requests_total"]["4xx"], 3);
    assert!(view["service_seconds"]["p99"].as_f64().is_some(), "{view}");
    assert!(
        view["memory_bytes"]["web.1"].as_f64().unwrap() > 0.0,
        "{view}"
    );
    let out = up.paas(&["metrics", "-a", "hello", "--once", "--interval", "0.1"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("requests     2xx 5 4xx 3"), "{text}");

    // The query engine's timechart over the same lines counts as many, in all and by class.
    timechart_counts(&up, "source=paas process=router", 8);
    timechart_counts(&up, "source=paas process=router status>=400 status<500", 3);
}

/// Waits until `paas query 'FILTER | timechart 1h count'` counts `want` lines in all.
fn timechart_counts(up: &Router, filter: &str, want: u64) {
    let start = Instant::now();
    loop {
        let q = format!("{filter} | timechart 1h count");
        let out = up.paas(&["query", "-a", "hello", "--json", &q]);
        let rows: Vec<Value> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect();
        let counted: u64 = rows.iter().filter_map(|r| r["count"].as_u64()).sum();
        if counted == want {
            return;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "{q} never counted {want}: {rows:?} {}",
            String::from_utf8_lossy(&out.stderr)
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// A running Prometheus (Debian's `prometheus`) scraping one target on loopback.
struct Prometheus {
    child: std::process::Child,
    url: String,
}

impl Prometheus {
    /// Starts Prometheus in `dir`, scraping `target`'s `/metrics` every 200 ms with `key`.
    fn start(dir: &std::path::Path, target: &str, key: &str) -> Prometheus {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let config = dir.join("prometheus.yml");
        std::fs::write(
            &config,
            format!(
                "global:\n  scrape_interval: 200ms\n  scrape_timeout: 200ms\n  evaluation_interval: 1s\n\
                 scrape_configs:\n  - job_name: paas\n    authorization:\n      credentials: {key}\n    \
                 static_configs:\n      - targets: ['{target}']\n"
            ),
        )
        .unwrap();
        let child = Command::new("prometheus")
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("tsdb").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("start prometheus (Debian's prometheus; scripts/test installs it)");
        let p = Prometheus {
            child,
            url: format!("http://127.0.0.1:{port}"),
        };
        let start = Instant::now();
        while Command::new("curl")
            .args(["-sf", "-o", "/dev/null", &format!("{}/-/ready", p.url)])
            .status()
            .map_or(true, |s| !s.success())
        {
            assert!(
                start.elapsed() < Duration::from_secs(15),
                "prometheus never ready"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        p
    }

    /// The value of an instant PromQL query with one result, if it has one.
    fn query(&self, promql: &str) -> Option<f64> {
        let out = Command::new("curl")
            .args(["-s", "-G", "--max-time", "5", "--data-urlencode"])
            .arg(format!("query={promql}"))
            .arg(format!("{}/api/v1/query", self.url))
            .output()
            .expect("run curl");
        let v: Value = serde_json::from_slice(&out.stdout).ok()?;
        v["data"]["result"][0]["value"][1].as_str()?.parse().ok()
    }

    /// Waits until `promql` answers `want`.
    fn wait_for(&self, promql: &str, want: f64) {
        let start = Instant::now();
        loop {
            let got = self.query(promql);
            if got == Some(want) {
                return;
            }
            assert!(
                start.elapsed() < Duration::from_secs(15),
                "{promql}: {got:?}, not {want}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn a_real_prometheus_scrapes_the_router_and_answers_promql() {
    let (dir, up) = paas_up("metrics-prometheus");
    let target = up.api.trim_start_matches("http://").to_owned();
    let prometheus = Prometheus::start(&dir.0, &target, support::KEY);
    let total = "sum(paas_router_requests_total{app=\"hello\"})";
    for _ in 0..5 {
        assert_eq!(get(&up, "/"), 200);
    }
    prometheus.wait_for(total, 5.0);
    for _ in 0..5 {
        assert_eq!(get(&up, "/"), 200);
    }
    prometheus.wait_for(total, 10.0);
    prometheus.wait_for(
        "sum(paas_router_requests_total{app=\"hello\",status_class=\"2xx\",code=\"\"})",
        10.0,
    );
    let rate = prometheus
        .query("sum(rate(paas_router_requests_total{app=\"hello\"}[1m]))")
        .expect("a rate");
    assert!(rate > 0.0, "{rate}");
    prometheus.wait_for(
        "sum(paas_router_service_seconds_count{app=\"hello\"})",
        10.0,
    );
    // The 0.99 quantile falls in the bucket where the router's own histogram puts it.
    let p99 = prometheus
        .query("histogram_quantile(0.99, sum by (le) (paas_router_service_seconds_bucket{app=\"hello\"}))")
        .expect("a quantile");
    let text = up.curl(&["/metrics"]).1;
    let buckets: Vec<(f64, f64)> = text
        .lines()
        .filter(|l| l.starts_with("paas_router_service_seconds_bucket{le=\""))
        .filter_map(|l| {
            let le = l.split('"').nth(1)?;
            let le = if le == "+Inf" {
                f64::INFINITY
            } else {
                le.parse().ok()?
            };
            Some((le, l.rsplit(' ').next()?.parse().ok()?))
        })
        .collect();
    let upper = buckets.iter().position(|(_, n)| *n >= 0.99 * 10.0).unwrap();
    let lower = if upper == 0 {
        0.0
    } else {
        buckets[upper - 1].0
    };
    assert!(
        p99 > lower && p99 <= buckets[upper].0,
        "p99 {p99} outside ({lower}, {}]",
        buckets[upper].0
    );
    // Prometheus took every family of the exposition (OpenMetrics, as it asked).
    prometheus.wait_for("up{job=\"paas\"}", 1.0);
    let families = prometheus
        .query("count(count by (__name__) ({job=\"paas\",__name__=~\"paas_router_.*\"}))")
        .expect("families");
    assert!(families >= 5.0, "{families}");
}
