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
