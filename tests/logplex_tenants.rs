//! Tenant boundaries, tried as a hostile tenant would against the real router: a filter that
//! recurses without end, an app name reused after its owner deleted it, drains aimed back at
//! the router, a token passing its lines off as the platform's, keys that outlive their
//! revocation, another app's tokens, and a flood of registry writes. Each was a hole (issue 10).

mod support;

use std::time::{Duration, Instant};

use serde_json::Value;
use support::receiver::Receiver;
use support::{KEY, Router, TempDir, frame, log_session, send};

fn json(body: &str) -> Value {
    serde_json::from_str(body).unwrap_or_else(|e| panic!("not JSON ({e}): {body}"))
}

fn post(router: &Router, key: &str, path: &str, body: &str) -> (u16, String) {
    router.curl_as(key, &["-X", "POST", "-d", body, path])
}

fn app_key(router: &Router, app: &str) -> Value {
    let (status, body) = post(router, KEY, &format!("/apps/{app}/keys"), "");
    assert_eq!(status, 201, "{body}");
    json(&body)
}

fn metrics(router: &Router) -> String {
    router.curl(&["/metrics"]).1
}

/// The value of one series in Prometheus text (0 when absent).
fn metric(text: &str, series: &str) -> u64 {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.trim().parse().ok())
        .unwrap_or(0)
}

/// The status of a GET on `url` (a log session's own URL needs no key).
fn status_of(url: &str) -> u16 {
    let out = std::process::Command::new("curl")
        .args([
            "-s",
            "-o",
            "/dev/null",
            "--max-time",
            "5",
            "-w",
            "%{http_code}",
            url,
        ])
        .output()
        .expect("curl");
    String::from_utf8_lossy(&out.stdout).parse().unwrap_or(0)
}

#[test]
fn a_deeply_nested_filter_is_refused_and_the_router_lives() {
    let dir = TempDir::new("deep-filter");
    let router = Router::start(&dir.0, &[]);
    router.create_app("shop");
    let parens = format!("{}a=1{}", "(".repeat(2000), ")".repeat(2000));
    let bangs = format!("{}a", "!".repeat(3000));
    for filter in [&parens, &bangs] {
        let body = serde_json::json!({ "filter": filter }).to_string();
        let (status, out) = post(&router, KEY, "/apps/shop/log-sessions", &body);
        assert_eq!(status, 422, "{out}");
        assert!(out.contains("nested more than 32 levels deep"), "{out}");
    }
    let out = router.logs(&["-a", "shop", "--where", &bangs]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("nested more than"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(router.curl(&["/healthz"]).0, 200, "the router is still up");
    assert_eq!(router.history("shop", &[]).len(), 0);
}

/// Regression: an app deleted and made again under its name by someone else used to inherit
/// the old owner's drains and log sessions (and, after a restart, sent its lines to the old
/// owner's receiver).
#[test]
fn a_recreated_app_name_inherits_no_drain_session_or_history() {
    let dir = TempDir::new("app-reuse");
    let mut router = Router::start(&dir.0, &[]);
    let receiver = Receiver::start(None);
    let old_token = router.create_app("tenant-x");
    let old_url = format!("http://{}/old-owner", receiver.addr);
    router.add_drain("tenant-x", &old_url);
    let session = log_session(&router, "tenant-x", r#"{"tail": true}"#);
    let mut conn = router.connect();
    send(&mut conn, &frame(&old_token, "web.1", "old owner's secret"));
    router.wait_accepted("tenant-x", 1);
    receiver.wait("the old owner's line", |r| !r.is_empty());
    drop(conn);
    let (status, body) = router.curl(&["-X", "DELETE", "/apps/tenant-x"]);
    assert_eq!(status, 200, "{body}");

    let new_token = router.create_app("tenant-x");
    assert_eq!(
        router.get_json("/apps/tenant-x/log-drains"),
        serde_json::json!([]),
        "the old owner's drain went with the old app"
    );
    let mut conn = router.connect();
    send(&mut conn, &frame(&new_token, "web.1", "new owner's line"));
    router.wait_accepted("tenant-x", 1);
    assert_eq!(
        status_of(&session),
        404,
        "the old session URL streams nothing"
    );
    assert!(router.history("tenant-x", &[])[0].contains("new owner's line"));

    router.terminate();
    let router = Router::start(&dir.0, &[]);
    let history = router.history("tenant-x", &[]);
    assert_eq!(history.len(), 1, "{history:?}");
    assert!(history[0].contains("new owner's line"), "{history:?}");
    let mut conn = router.connect();
    send(&mut conn, &frame(&new_token, "web.1", "after the restart"));
    router.wait_accepted("tenant-x", 1);
    std::thread::sleep(Duration::from_millis(500));
    let got = receiver.received.lock().unwrap().clone();
    assert!(
        got.iter()
            .flat_map(|r| &r.frames)
            .all(|f| !f.contains("new owner")),
        "the old owner's receiver got the new owner's lines: {got:?}"
    );
}

/// Regression: drains aimed at the router's own syslog port, with tokens named after one
/// another, turned one line into hundreds.
#[test]
fn drain_output_sent_back_to_the_router_is_not_ingested_again() {
    let dir = TempDir::new("drain-loop");
    let router = Router::start(&dir.0, &[]);
    let token = router.create_app("shop");
    let (status, body) = post(
        &router,
        KEY,
        "/apps/shop/tokens",
        &format!(r#"{{"name":"{token}"}}"#),
    );
    assert_eq!(status, 422, "a token-shaped name: {body}");
    assert!(body.contains("Invalid token name"), "{body}");
    router.add_drain("shop", &format!("syslog://{}", router.syslog));
    let mut conn = router.connect();
    send(&mut conn, &frame(&token, "web.1", "once"));
    router.wait_accepted("shop", 1);
    let deadline = Instant::now() + Duration::from_secs(10);
    let series = "logplex_lines_rejected_total{app=\"\",reason=\"drain_loop\"}";
    while metric(&metrics(&router), series) < 1 {
        assert!(Instant::now() < deadline, "{}", metrics(&router));
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(
        router.stats("shop")["accepted"],
        1,
        "one line stays one line"
    );
}

/// Regression: an app key could make a token named `paas`, whose lines then showed as the
/// platform's (`paas[router]`) and were picked by `--source router`.
#[test]
fn a_tenant_cannot_write_as_the_platform() {
    let dir = TempDir::new("forge");
    let router = Router::start(&dir.0, &[]);
    router.create_app("shop");
    let key = app_key(&router, "shop")["key"].as_str().unwrap().to_owned();
    for name in ["paas", "PAAS", "heroku", "logplex", "t.x", "a b", "x/y"] {
        let body = serde_json::json!({ "name": name }).to_string();
        let (status, out) = post(&router, &key, "/apps/shop/tokens", &body);
        assert_eq!(status, 422, "{name}: {out}");
    }
    let (status, out) = post(&router, &key, "/apps/shop/tokens", r#"{"name":"deploys"}"#);
    assert_eq!(status, 201, "{out}");
    let series = "logplex_limit_refusals_total{limit=\"token_name\"}";
    assert_eq!(metric(&metrics(&router), series), 7);
}

#[test]
fn keys_are_listed_revoked_rotated_and_stored_hashed() {
    let dir = TempDir::new("keys");
    let mut router = Router::start(&dir.0, &[]);
    router.create_app("shop");
    let made = app_key(&router, "shop");
    let secret = made["key"].as_str().unwrap().to_owned();
    let id = made["id"].as_str().unwrap().to_owned();
    assert_eq!(router.curl_as(&secret, &["/apps/shop"]).0, 200);

    let listed = router.paas(&["keys"]);
    let text = String::from_utf8_lossy(&listed.stdout);
    assert!(listed.status.success(), "{listed:?}");
    assert!(text.contains(&id) && text.contains("app:shop"), "{text}");
    assert!(!text.contains(&secret), "a list never shows a key: {text}");
    let registry = std::fs::read_to_string(dir.0.join("registry.json")).unwrap();
    assert!(
        !registry.contains(&secret) && !registry.contains(KEY),
        "registry.json holds no working key: {registry}"
    );

    let rotated = router.paas(&["keys:rotate", &id]);
    assert!(rotated.status.success(), "{rotated:?}");
    let new_secret = String::from_utf8_lossy(&rotated.stdout).trim().to_owned();
    assert_eq!(
        router.curl_as(&secret, &["/apps/shop"]).0,
        401,
        "the old key"
    );
    assert_eq!(router.curl_as(&new_secret, &["/apps/shop"]).0, 200);
    let new_id = router.get_json("/apps/shop/keys")[0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    // An app key revokes itself; afterwards it is refused at once.
    let (status, body) = router.curl_as(
        &new_secret,
        &["-X", "DELETE", &format!("/apps/shop/keys/{new_id}")],
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(router.curl_as(&new_secret, &["/apps/shop"]).0, 401);

    // A restart with another operator key retires the old one.
    router.terminate();
    let router = Router::start_keyed(&dir.0, "k.rotated-operator", &[]);
    assert_eq!(
        router.curl_as(KEY, &["/apps"]).0,
        401,
        "the old operator key"
    );
    assert_eq!(router.curl_as("k.rotated-operator", &["/apps"]).0, 200);
}

/// Regression (a hole in the tests): a token revoked or rotated while a syslog connection that
/// already used it stays open must stop working on that connection too.
#[test]
fn a_revoked_token_stops_working_on_an_open_connection() {
    let dir = TempDir::new("revoke-open");
    let router = Router::start(&dir.0, &[]);
    let token = router.create_app("shop");
    let (_, body) = post(&router, KEY, "/apps/shop/tokens", r#"{"name":"deploys"}"#);
    let deploys = json(&body)["token"].as_str().unwrap().to_owned();
    let mut conn = router.connect();
    send(&mut conn, &frame(&token, "web.1", "before n=1"));
    send(&mut conn, &frame(&deploys, "ci", "before n=2"));
    router.wait_accepted("shop", 2);
    let (status, body) = router.curl(&["-X", "DELETE", &format!("/apps/shop/tokens/{token}")]);
    assert_eq!(status, 200, "{body}");
    let (status, body) = post(
        &router,
        KEY,
        &format!("/apps/shop/tokens/{deploys}/actions/rotate"),
        "",
    );
    assert_eq!(status, 201, "{body}");
    let rotated = json(&body)["token"].as_str().unwrap().to_owned();
    send(&mut conn, &frame(&token, "web.1", "after revoke"));
    send(&mut conn, &frame(&deploys, "ci", "after rotate"));
    send(&mut conn, &frame(&rotated, "ci", "with the new token"));
    router.wait_accepted("shop", 3);
    let history = router.history("shop", &[]);
    assert_eq!(history.len(), 3, "{history:?}");
    assert!(history[2].contains("with the new token"), "{history:?}");
    assert!(
        metrics(&router)
            .contains("logplex_lines_rejected_total{app=\"\",reason=\"unknown_token\"} 2"),
        "{}",
        metrics(&router)
    );
}

/// Regression (a hole in the tests): an app key must not rotate or revoke another app's token.
#[test]
fn an_app_key_cannot_touch_another_apps_tokens_or_keys() {
    let dir = TempDir::new("own-token");
    let router = Router::start(&dir.0, &[]);
    router.create_app("shop");
    let blog_token = router.create_app("blog");
    let shop_key = app_key(&router, "shop")["key"].as_str().unwrap().to_owned();
    let blog_key_id = app_key(&router, "blog")["id"].as_str().unwrap().to_owned();
    let attempts = [
        vec![
            "-X".to_owned(),
            "POST".to_owned(),
            format!("/apps/shop/tokens/{blog_token}/actions/rotate"),
        ],
        vec![
            "-X".to_owned(),
            "DELETE".to_owned(),
            format!("/apps/shop/tokens/{blog_token}"),
        ],
        vec![
            "-X".to_owned(),
            "DELETE".to_owned(),
            format!("/apps/shop/keys/{blog_key_id}"),
        ],
        vec![
            "-X".to_owned(),
            "DELETE".to_owned(),
            format!("/keys/{blog_key_id}"),
        ],
    ];
    for args in &attempts {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let (status, body) = router.curl_as(&shop_key, &args);
        assert_eq!(status, 404, "{args:?}: {body}");
    }
    for path in [
        format!("/apps/blog/tokens/{blog_token}"),
        "/apps/blog/keys".to_owned(),
    ] {
        let (status, _) = router.curl_as(&shop_key, &["-X", "DELETE", &path]);
        assert_eq!(status, 404, "{path}");
    }
    let mut conn = router.connect();
    send(&mut conn, &frame(&blog_token, "web.1", "still mine"));
    router.wait_accepted("blog", 1);
    assert_eq!(
        router.get_json("/apps/blog/keys").as_array().unwrap().len(),
        1
    );
}

/// Regression: 5,000 token creations by one key rewrote the registry 5,000 times under the
/// lock ingest reads. Now an app has a bounded number of tokens and keys, a key a bounded
/// rate of writes, and each refusal is counted.
#[test]
fn registry_writes_are_bounded_per_app_and_per_key() {
    let dir = TempDir::new("churn");
    let router = Router::start(
        &dir.0,
        &[
            "--max-tokens-per-app",
            "3",
            "--max-keys-per-app",
            "1",
            "--api-write-rate",
            "1",
            "--api-write-burst",
            "5",
        ],
    );
    router.create_app("shop");
    let key = app_key(&router, "shop")["key"].as_str().unwrap().to_owned();
    let mut statuses = Vec::new();
    for i in 0..4 {
        let body = format!(r#"{{"name":"n{i}"}}"#);
        let (status, out) = post(&router, &key, "/apps/shop/tokens", &body);
        statuses.push(status);
        if status == 422 {
            assert!(out.contains("at most 3 tokens"), "{out}");
        }
    }
    assert_eq!(
        statuses,
        [201, 201, 422, 422],
        "the app's first token counts"
    );
    let (status, out) = post(&router, KEY, "/apps/shop/keys", "");
    assert_eq!(status, 422, "{out}");
    // The key's fifth write is its burst's last; the budget refills at one a second.
    let mut refused = None;
    for _ in 0..20 {
        let (status, out) = router.curl_as(
            &key,
            &[
                "-i",
                "-X",
                "POST",
                "-d",
                r#"{"name":"x"}"#,
                "/apps/shop/tokens",
            ],
        );
        if status == 429 {
            refused = Some(out);
            break;
        }
        assert_eq!(status, 422, "{out}");
    }
    let refused = refused.expect("a key over its write budget is refused");
    assert!(
        refused.to_ascii_lowercase().contains("retry-after: 1"),
        "{refused}"
    );
    assert!(refused.contains("API writes a second"), "{refused}");
    assert_eq!(
        router.curl_as(&key, &["/apps/shop/tokens"]).0,
        200,
        "reads are free"
    );
    assert_eq!(
        post(&router, KEY, "/apps/shop/tokens", r#"{"name":"y"}"#).0,
        422,
        "the operator's writes are not budgeted (the app's token limit still holds)"
    );
    for i in 0..8 {
        let body = format!(r#"{{"name":"bulk-{i}"}}"#);
        assert_eq!(
            post(&router, KEY, "/apps", &body).0,
            201,
            "operator writes are not budgeted"
        );
    }
    let m = metrics(&router);
    assert!(
        metric(&m, "logplex_limit_refusals_total{limit=\"api_write_rate\"}") >= 1,
        "{m}"
    );
    assert!(
        metric(&m, "logplex_limit_refusals_total{limit=\"tokens_per_app\"}") >= 4,
        "{m}"
    );
    assert_eq!(
        metric(&m, "logplex_limit_refusals_total{limit=\"keys_per_app\"}"),
        1,
        "{m}"
    );
}

/// Regression: `paas logs` printed tenant bytes raw: an escape sequence drove the reader's
/// terminal, and an embedded newline forged a platform line.
#[test]
fn paas_logs_escapes_what_would_drive_a_terminal() {
    let dir = TempDir::new("escape");
    let router = Router::start(&dir.0, &[]);
    let token = router.create_app("shop");
    let mut conn = router.connect();
    let forged = "ok\n2026-11-21T12:00:00.000000+00:00 paas[router]: at=info forged=1";
    send(
        &mut conn,
        &frame(&token, "web.1", "\x1b]52;c;ZXZpbA==\x07 clip"),
    );
    send(&mut conn, &frame(&token, "web.1", forged));
    router.wait_accepted("shop", 2);
    let out = router.logs(&["-a", "shop", "--force-colors"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        !text.contains("\x1b]52") && !text.contains('\x07'),
        "{text:?}"
    );
    assert!(text.contains("\\x1b]52;c;ZXZpbA==\\x07 clip"), "{text:?}");
    assert_eq!(text.lines().count(), 2, "{text:?}");
    assert!(
        text.lines()
            .all(|l| !l.contains("paas[router]:") || l.contains("\\n2026")),
        "{text:?}"
    );
}

#[test]
fn the_data_directory_and_history_are_private() {
    use std::os::unix::fs::PermissionsExt;
    let dir = TempDir::new("modes");
    let data = dir.0.join("data");
    let mut router = Router::start(&data, &[]);
    let token = router.create_app("shop");
    let mut conn = router.connect();
    send(&mut conn, &frame(&token, "web.1", "private"));
    router.wait_accepted("shop", 1);
    router.terminate();
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&data), 0o700);
    assert_eq!(mode(&data.join("history")), 0o700);
    let files: Vec<_> = std::fs::read_dir(data.join("history"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(files.len(), 1, "{files:?}");
    assert_eq!(mode(&files[0]), 0o600, "{files:?}");
}
