//! The dashboard's files and the status page, served by a real router: the page and its
//! modules without a key, each with a strict Content-Security-Policy and `nosniff`; the
//! status page without a key, naming components and never an app; under `paas up`, a web
//! type scaled to none shows the proxy and dynos degraded, and up again once it is back.

mod support;

use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;
use support::{Router, TempDir, dynos};

/// GET `path` without a key: (status, headers in lower case, body).
fn get(router: &Router, path: &str) -> (u16, String, String) {
    let out = Command::new("curl")
        .args(["-sS", "--path-as-is", "--max-time", "10", "-D", "-"])
        .arg(format!("{}{path}", router.api))
        .output()
        .expect("curl");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, head.to_lowercase(), body.to_owned())
}

fn assert_secure(path: &str, head: &str) {
    assert!(
        head.contains("content-security-policy: default-src 'self'; script-src 'self';"),
        "{path}: {head}"
    );
    assert!(head.contains("frame-ancestors 'none'"), "{path}: {head}");
    assert!(head.contains("x-content-type-options: nosniff"), "{path}");
    assert!(head.contains("x-frame-options: deny"), "{path}");
}

#[test]
fn the_page_and_its_modules_are_served_with_a_strict_policy() {
    let dir = TempDir::new("dash-page");
    let router = Router::start(&dir.0, &[]);
    let (status, head, body) = get(&router, "/dashboard");
    assert_eq!(status, 200);
    assert_secure("/dashboard", &head);
    assert!(head.contains("content-type: text/html; charset=utf-8"));
    assert!(body.contains("<script type=\"module\" src=\"/dashboard/app.js\"></script>"));
    for module in [
        "app.js",
        "api.js",
        "dom.js",
        "tail.js",
        "query.js",
        "chart.js",
        "metrics.js",
        "health.js",
    ] {
        let path = format!("/dashboard/{module}");
        let (status, head, body) = get(&router, &path);
        assert_eq!(status, 200, "{path}");
        assert_secure(&path, &head);
        assert!(
            head.contains("content-type: text/javascript"),
            "{path}: {head}"
        );
        assert!(!body.contains("innerHTML"), "{path}");
    }
    let (status, head, _) = get(&router, "/dashboard/style.css");
    assert_eq!(status, 200);
    assert!(head.contains("content-type: text/css"));
    let (status, head, _) = get(&router, "/dashboard/../registry.json");
    assert_eq!(status, 404);
    assert_secure("404", &head);
    let (status, _, _) = get(&router, "/dashboard/nothing.js");
    assert_eq!(status, 404);
    // The API's own paths stay the API's: no key, no apps.
    let (status, _, _) = get(&router, "/apps");
    assert_eq!(status, 401);
}

#[test]
fn the_status_page_needs_no_key_and_names_no_app() {
    let dir = TempDir::new("dash-status");
    let router = Router::start(&dir.0, &[]);
    router.create_app("secretshop");
    let (status, head, body) = get(&router, "/status.json");
    assert_eq!(status, 200, "{body}");
    assert_secure("/status.json", &head);
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["status"], "up", "{v}");
    let names: Vec<&str> = v["components"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["router ingest", "api", "drains"]);
    assert!(!body.contains("secretshop"));
    let (status, head, html) = get(&router, "/status");
    assert_eq!(status, 200);
    assert_secure("/status", &head);
    assert!(html.contains("All systems operational"), "{html}");
    assert!(!html.contains("secretshop"));
    assert!(!html.contains("<script"));
}

/// Waits until `/status.json` says `component` is `state`.
fn wait_component(router: &Router, component: &str, state: &str) -> Value {
    let start = Instant::now();
    loop {
        let (_, _, body) = get(router, "/status.json");
        let v: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
        let now = v["components"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|c| c["name"] == component)
            .map(|c| c["status"].clone());
        if now.as_ref().and_then(Value::as_str) == Some(state) {
            return v;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "{component} never {state}: {v}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn a_web_type_scaled_to_none_shows_degraded_then_up_again() {
    let (_dir, up) = dynos::example_app("dash-degraded", &[]);
    let v = wait_component(&up, "dynos", "up");
    assert_eq!(v["status"], "up", "{v}");
    let names: Vec<&str> = v["components"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        ["router ingest", "api", "drains", "proxy", "dynos", "cache"]
    );
    let out = up.paas(&["scale", "web=0"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v = wait_component(&up, "dynos", "degraded");
    assert_eq!(v["status"], "degraded");
    wait_component(&up, "proxy", "degraded");
    let (_, _, html) = get(&up, "/status");
    assert!(html.contains("Some systems are degraded"), "{html}");
    assert!(!html.contains("hello"), "no app's name: {html}");
    let out = up.paas(&["scale", "web=1"]);
    assert!(out.status.success());
    wait_component(&up, "dynos", "up");
    wait_component(&up, "proxy", "up");
}
