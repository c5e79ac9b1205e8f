//! The dashboard in a real browser: `paas up` on the example app, and
//! `tests/browser/dashboard.mjs` driving Debian's `chromium` through playwright-core against
//! it (a request's router line in the live tail, an XSS line shown as text, a filter
//! narrowing the tail, pause and resume, a query's table and chart, the RED chart moving after
//! a burst, the health panels, a phone's width, the status page showing a web type scaled to
//! none as degraded). Screenshots are kept under the target directory; the path is printed.
//!
//! `scripts/test` installs chromium (apt) and playwright-core (npm, into
//! `~/.cache/paas-playwright`); without them this test says so and passes without running.

mod support;

use std::path::PathBuf;
use std::process::Command;

use support::{KEY, Router, TempDir, dynos, proxy_addr};

fn playwright_dir() -> PathBuf {
    std::env::var_os("PAAS_PLAYWRIGHT")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").unwrap_or_default())
                .join(".cache/paas-playwright")
        })
}

fn chromium() -> Option<PathBuf> {
    ["/usr/bin/chromium", "/usr/bin/chromium-browser"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
}

#[test]
fn the_dashboard_in_chromium() {
    let Some(chromium) = chromium() else {
        eprintln!(
            "SKIPPED the_dashboard_in_chromium: no chromium (apt-get install chromium; scripts/test does)"
        );
        return;
    };
    let playwright = playwright_dir();
    if !playwright.join("node_modules/playwright-core").exists() {
        eprintln!(
            "SKIPPED the_dashboard_in_chromium: no playwright-core in {} (scripts/test installs it)",
            playwright.display()
        );
        return;
    }
    let shots = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("dashboard-screenshots");
    let _ = std::fs::remove_dir_all(&shots);
    std::fs::create_dir_all(&shots).expect("screenshot dir");
    // The example app with one web dyno writing its runtime metrics every second.
    let dir = TempDir::new("dash-browser");
    let up = Router::up(
        &dir.0,
        &[
            "--scale",
            "web=1",
            "--scale",
            "worker=0",
            "--metrics-interval",
            "1",
        ],
    );
    dynos::wait_serving(&up);
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/browser/dashboard.mjs");
    let out = Command::new("timeout")
        .arg("170")
        .arg("node")
        .arg(&script)
        .env("PAAS_API", &up.api)
        .env("PAAS_KEY", KEY)
        .env("PAAS_PROXY", format!("http://{}", proxy_addr(&up)))
        .env("PAAS_APP", "hello")
        .env("SHOTS", &shots)
        .env("CHROMIUM", &chromium)
        .env("PLAYWRIGHT", &playwright)
        .output()
        .expect("run node");
    let stdout = String::from_utf8_lossy(&out.stdout);
    println!("{stdout}");
    eprintln!("{}", String::from_utf8_lossy(&out.stderr));
    println!("screenshots in {}", shots.display());
    assert!(out.status.success(), "the browser test failed:\n{stdout}");
    for step in [
        "02-tail-router-line",
        "04-filter-narrows",
        "06-red-chart-moves",
        "09-status-degraded",
    ] {
        assert!(stdout.contains(&format!("ok - {step}")), "{step}: {stdout}");
        assert!(
            shots.join(format!("{step}.png")).exists(),
            "{step}'s screenshot"
        );
    }
}
