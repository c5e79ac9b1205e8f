//! The Platform API as the `heroku` CLI speaks it, against the real `paas up`: the requests
//! its `ps`, `ps:scale`, `ps:stop`, `ps:kill`, `ps:restart -p`, `apps` and `apps:info` send,
//! shaped as curl requests; then config vars and releases.

mod support;

use std::time::{Duration, Instant};

use serde_json::Value;
use support::Router;
use support::dynos::example_app;

fn json(body: &str) -> Value {
    serde_json::from_str(body).unwrap_or_else(|e| panic!("not JSON ({e}): {body}"))
}

/// Waits until the app's dynos satisfy `done`.
fn wait_dynos(up: &Router, what: &str, done: impl Fn(&[Value]) -> bool) -> Vec<Value> {
    let start = Instant::now();
    loop {
        let dynos = up.get_json("/apps/hello/dynos");
        let list = dynos.as_array().cloned().unwrap_or_default();
        if done(&list) {
            return list;
        }
        assert!(start.elapsed() < Duration::from_secs(20), "{what}: {dynos}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn all_up(list: &[Value]) -> bool {
    list.iter().all(|d| d["state"] == "up")
}

#[test]
fn heroku_cli_requests_are_answered() {
    let (_dir, up) = example_app("cli-requests", &[]);

    // `heroku ps` reads the account first.
    let account = up.get_json("/account");
    assert!(account["id"].is_string() && account["email"].is_string());

    // `heroku apps` and `apps:info`.
    let apps = up.get_json("/users/~/apps");
    assert!(
        apps.as_array()
            .is_some_and(|a| a.iter().any(|a| a["name"] == "hello"))
    );
    assert_eq!(up.get_json("/apps/hello/addons"), serde_json::json!([]));
    assert_eq!(
        up.get_json("/apps/hello/collaborators"),
        serde_json::json!([])
    );
    let (status, body) = up.curl(&["/apps/nope/addons"]);
    assert_eq!(status, 404, "{body}");
    assert_eq!(json(&body)["id"], "not_found");

    // `heroku ps:scale web=2 worker=1`: quantities as strings.
    let (status, body) = up.curl(&[
        "-X",
        "PATCH",
        "-H",
        "Content-Type: application/json",
        "-d",
        r#"{"updates":[{"type":"web","quantity":"2"},{"type":"worker","quantity":1}]}"#,
        "/apps/hello/formation",
    ]);
    assert_eq!(status, 200, "{body}");
    let list = wait_dynos(&up, "two web and a worker", |l| l.len() == 3 && all_up(l));
    assert_eq!(list.iter().filter(|d| d["type"] == "web").count(), 2);
    for bad in [r#""-1""#, r#""two""#, "1.5", "[]", r#""99999999""#] {
        let (status, body) = up.curl(&[
            "-X",
            "PATCH",
            "-d",
            &format!(r#"{{"quantity":{bad}}}"#),
            "/apps/hello/formations/web",
        ]);
        assert_eq!(status, 422, "quantity {bad}: {body}");
        assert_eq!(json(&body)["id"], "invalid_params");
    }

    // `heroku ps:stop web.1` / `ps:kill web.1`: the dyno restarts (the formation wants it).
    let id_of = |list: &[Value], name: &str| {
        list.iter()
            .find(|d| d["name"] == name)
            .map(|d| d["id"].clone())
            .unwrap_or_default()
    };
    for verb in ["stop", "kill"] {
        let before = id_of(&wait_dynos(&up, "up", all_up), "web.1");
        let (status, body) = up.curl(&[
            "-X",
            "POST",
            &format!("/apps/hello/dynos/web.1/actions/{verb}"),
        ]);
        assert_eq!(status, 202, "{verb}: {body}");
        wait_dynos(&up, "web.1 restarted", |l| {
            all_up(l) && id_of(l, "web.1") != before && l.len() == 3
        });
    }
    let (status, body) = up.curl(&["-X", "POST", "/apps/hello/dynos/web.9/actions/stop"]);
    assert_eq!(status, 404, "{body}");

    // `heroku ps:restart -p worker` and `ps:stop -p worker`.
    let before = id_of(&wait_dynos(&up, "up", all_up), "worker.1");
    let (status, body) = up.curl(&["-X", "DELETE", "/apps/hello/formations/worker"]);
    assert_eq!(status, 202, "{body}");
    let list = wait_dynos(&up, "worker restarted", |l| {
        all_up(l) && id_of(l, "worker.1") != before
    });
    let before = id_of(&list, "worker.1");
    let (status, body) = up.curl(&["-X", "POST", "/apps/hello/formations/worker/actions/stop"]);
    assert_eq!(status, 202, "{body}");
    wait_dynos(&up, "worker stopped and restarted", |l| {
        all_up(l) && id_of(l, "worker.1") != before
    });
    let (status, body) = up.curl(&["-X", "DELETE", "/apps/hello/formations/nope"]);
    assert_eq!(status, 404, "{body}");
    assert_eq!(json(&body)["id"], "not_found");
}

fn patch_config(up: &Router, body: &str) -> (u16, String) {
    up.curl(&[
        "-X",
        "PATCH",
        "-H",
        "Content-Type: application/json",
        "-d",
        body,
        "/apps/hello/config-vars",
    ])
}

/// Waits until every web dyno answers `/` with `want` (both dynos, by their `DYNO`).
fn wait_greeting(up: &Router, want: &str) {
    let start = Instant::now();
    loop {
        let seen: Vec<String> = (0..6)
            .map(|_| support::dynos::curl(up, "/", &[]).1)
            .collect();
        if seen.iter().all(|s| s.starts_with(want)) {
            return;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "want {want:?}: {seen:?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn config_vars_make_releases_and_reach_restarted_dynos() {
    let (dir, up) = example_app("config-vars", &["--scale", "web=2"]);
    wait_dynos(&up, "two web up", |l| l.len() == 2 && all_up(l));

    // v1 at first start, from app.json's env.
    let releases = up.get_json("/apps/hello/releases");
    assert_eq!(releases[0]["version"], 1, "{releases}");
    assert_eq!(releases[0]["description"], "Initial release");
    assert_eq!(up.get_json("/apps/hello/config-vars")["GREETING"], "hello");

    // Set: a release, the api lines, and every web dyno restarted with the new value while
    // requests keep being answered.
    let serving = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
    let failures = {
        let serving = serving.clone();
        let proxy = support::proxy_addr(&up);
        std::thread::spawn(move || {
            let mut failed = vec![];
            while serving.load(std::sync::atomic::Ordering::Relaxed) {
                let out = std::process::Command::new("curl")
                    .args(["-s", "-o", "/dev/null", "-m", "10", "-w", "%{http_code}"])
                    .arg(format!("http://{proxy}/"))
                    .output()
                    .expect("curl");
                let code = String::from_utf8_lossy(&out.stdout).into_owned();
                if code != "200" {
                    failed.push(code);
                }
            }
            failed
        })
    };
    let (status, body) = patch_config(
        &up,
        r#"{"GREETING":"bonjour","SECRET_TOKEN":"s3cr3t-v4lue"}"#,
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(json(&body)["GREETING"], "bonjour");
    wait_greeting(&up, "bonjour from web.");
    serving.store(false, std::sync::atomic::Ordering::Relaxed);
    let failed = failures.join().expect("requests");
    assert!(
        failed.is_empty(),
        "requests failed during the rolling restart: {failed:?}"
    );
    let v2 = up.get_json("/apps/hello/releases/v2");
    assert_eq!(v2["description"], "Set GREETING, SECRET_TOKEN config vars");
    assert_eq!(v2["user"]["email"], "operator@localhost");
    assert_eq!(v2["current"], true);

    // Remove.
    let (status, body) = patch_config(&up, r#"{"SECRET_TOKEN":null}"#);
    assert_eq!(status, 200, "{body}");
    assert!(json(&body).get("SECRET_TOKEN").is_none(), "{body}");
    assert_eq!(
        up.get_json("/apps/hello/releases/3")["description"],
        "Remove SECRET_TOKEN config vars"
    );

    // Rollback to v1 by id: GREETING back to hello.
    let v1_id = releases[0]["id"].as_str().expect("id").to_owned();
    let (status, body) = up.curl(&[
        "-X",
        "POST",
        "-d",
        &format!(r#"{{"release":"{v1_id}"}}"#),
        "/apps/hello/releases",
    ]);
    assert_eq!(status, 201, "{body}");
    assert_eq!(json(&body)["version"], 4);
    assert_eq!(json(&body)["description"], "Rollback to v1");
    wait_greeting(&up, "hello from web.");
    assert_eq!(up.get_json("/apps/hello/config-vars")["GREETING"], "hello");

    // The stream says what changed, by name only; the values are nowhere in it or /metrics.
    let lines = up.history("hello", &["--dyno", "api"]);
    let text = lines.join("\n");
    for want in [
        "paas[api]: Set GREETING, SECRET_TOKEN config vars by operator@localhost",
        "paas[api]: Release v2 created by operator@localhost",
        "paas[api]: Remove SECRET_TOKEN config vars by operator@localhost",
        "paas[api]: Rollback to v1 by operator@localhost",
        "paas[api]: Release v4 created by operator@localhost",
    ] {
        assert!(text.contains(want), "no {want:?} in {lines:?}");
    }
    let all = up.history("hello", &[]).join("\n");
    assert!(
        !all.contains("s3cr3t-v4lue"),
        "a config var's value in the stream"
    );
    let (_, metrics) = up.curl(&["/metrics"]);
    assert!(!metrics.contains("s3cr3t-v4lue"));

    // Kept in the data directory, 0600.
    let file = dir.0.join("releases/hello.json");
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(&file)
            .expect("releases file")
            .permissions(),
    );
    assert_eq!(mode & 0o777, 0o600);
}

#[test]
fn hostile_config_changes_are_refused() {
    let (_dir, up) = example_app(
        "config-hostile",
        &["--config-max-vars", "20", "--config-max-bytes", "1000"],
    );
    let before = up.get_json("/apps/hello/releases").as_array().map(Vec::len);
    for (body, status) in [
        ("{", 422),
        ("[1]", 422),
        (r#"{"1BAD":"x"}"#, 422),
        (r#"{"A B":"x"}"#, 422),
        (r#"{"A":{"b":1}}"#, 422),
        (&format!(r#"{{"BIG":"{}"}}"#, "x".repeat(2000)), 422),
    ] {
        let (got, answer) = patch_config(&up, body);
        assert_eq!(got, status, "{}: {answer}", &body[..body.len().min(40)]);
        assert_eq!(json(&answer)["id"], "invalid_params", "{answer}");
    }
    let many: Vec<String> = (0..25).map(|i| format!(r#""V{i}":"x""#)).collect();
    let (got, answer) = patch_config(&up, &format!("{{{}}}", many.join(",")));
    assert_eq!(got, 422, "{answer}");
    assert!(answer.contains("--config-max-vars"), "{answer}");
    // A body past the API's 64 KiB is refused before it is parsed.
    let (got, _) = patch_config(&up, &format!(r#"{{"A":"{}"}}"#, "x".repeat(100 << 10)));
    assert!((400..500).contains(&got), "{got}");
    // Nothing was released.
    assert_eq!(
        up.get_json("/apps/hello/releases").as_array().map(Vec::len),
        before
    );
    let (got, answer) = up.curl(&[
        "-X",
        "POST",
        "-d",
        r#"{"release":"v99"}"#,
        "/apps/hello/releases",
    ]);
    assert_eq!(got, 404, "{answer}");
    let (got, answer) = up.curl(&["-X", "POST", "-d", "{}", "/apps/hello/releases"]);
    assert_eq!(got, 422, "{answer}");
}

fn paas_ok(up: &Router, args: &[&str]) -> String {
    let out = up.paas(&[args, &["-a", "hello"]].concat());
    assert!(
        out.status.success(),
        "paas {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn paas_config_and_releases_commands() {
    let (_dir, up) = example_app("config-cli", &[]);
    let shown = paas_ok(&up, &["config"]);
    assert!(shown.starts_with("=== hello Config Vars"), "{shown}");
    assert!(shown.contains("GREETING: hello"), "{shown}");

    let set = paas_ok(&up, &["config:set", "GREETING=hej", "COLOR=blue"]);
    assert!(
        set.starts_with("Setting COLOR, GREETING and restarting hello... done, v2"),
        "{set}"
    );
    assert_eq!(paas_ok(&up, &["config:get", "COLOR"]), "blue\n");
    wait_greeting(&up, "hej from web.1");
    assert_eq!(paas_ok(&up, &["config", "--shell"]).lines().count(), 2);

    let unset = paas_ok(&up, &["config:unset", "COLOR"]);
    assert_eq!(unset, "Unsetting COLOR and restarting hello... done, v3\n");
    assert_eq!(paas_ok(&up, &["config:get", "COLOR"]), "\n");

    let releases = paas_ok(&up, &["releases"]);
    assert!(
        releases.starts_with("=== hello Releases - Current: v3"),
        "{releases}"
    );
    let lines: Vec<&str> = releases.lines().skip(2).collect();
    assert!(
        lines[0].starts_with("v3") && lines[0].contains("Remove COLOR config vars"),
        "{releases}"
    );
    assert!(
        lines[2].starts_with("v1") && lines[2].contains("Initial release"),
        "{releases}"
    );

    let info = paas_ok(&up, &["releases:info", "v2"]);
    assert!(info.contains("=== Release v2"), "{info}");
    assert!(
        info.contains("Change:  Set COLOR, GREETING config vars"),
        "{info}"
    );
    assert!(info.contains("COLOR:    blue"), "{info}");

    let rolled = paas_ok(&up, &["releases:rollback", "v1"]);
    assert_eq!(rolled, "Rolling back hello to v1... done, v4\n");
    wait_greeting(&up, "hello from web.1");
    // No version: the one before the current.
    let rolled = paas_ok(&up, &["releases:rollback"]);
    assert_eq!(rolled, "Rolling back hello to v3... done, v5\n");
    assert_eq!(paas_ok(&up, &["config:get", "GREETING"]), "hej\n");
}

/// A new key for `app`.
fn app_key(up: &Router, app: &str) -> String {
    let (status, body) = up.curl(&["-X", "POST", &format!("/apps/{app}/keys")]);
    assert_eq!(status, 201, "{body}");
    json(&body)["key"].as_str().expect("key").to_owned()
}

#[test]
fn an_app_key_sees_its_own_config_vars_only() {
    let (_dir, up) = example_app("config-keys", &[]);
    up.create_app("other");
    let other = app_key(&up, "other");
    let hello = app_key(&up, "hello");
    // Another app's key: "not found", for the vars, the releases and a change.
    for path in [
        "/apps/hello/config-vars",
        "/apps/hello/releases",
        "/apps/hello/releases/v1/config-vars",
    ] {
        let (status, body) = up.curl_as(&other, &[path]);
        assert_eq!(status, 404, "{path}: {body}");
        assert!(!body.contains("GREETING"), "{body}");
    }
    let (status, _) = up.curl_as(
        &other,
        &[
            "-X",
            "PATCH",
            "-d",
            r#"{"GREETING":"pwned"}"#,
            "/apps/hello/config-vars",
        ],
    );
    assert_eq!(status, 404);
    // The app's own key reads and changes them, and is named in the release.
    let (status, body) = up.curl_as(&hello, &["/apps/hello/config-vars"]);
    assert_eq!(status, 200, "{body}");
    assert_eq!(json(&body)["GREETING"], "hello");
    let (status, body) = up.curl_as(
        &hello,
        &[
            "-X",
            "PATCH",
            "-d",
            r#"{"NEW":"1"}"#,
            "/apps/hello/config-vars",
        ],
    );
    assert_eq!(status, 200, "{body}");
    let v2 = up.get_json("/apps/hello/releases/v2");
    assert_eq!(v2["user"]["email"], "hello@localhost", "{v2}");
    // `GET /account` names the key's owner.
    let (status, body) = up.curl_as(&hello, &["/account"]);
    assert_eq!(status, 200, "{body}");
    assert_eq!(json(&body)["email"], "hello@localhost");
    // The app `paas up` does not run has no releases here.
    let (status, body) = up.curl(&["/apps/other/config-vars"]);
    assert_eq!(status, 404, "{body}");
    assert_eq!(json(&body)["id"], "not_found");
}

#[test]
fn every_answer_has_a_request_id_and_errors_the_api_shape() {
    let (_dir, up) = example_app("request-id", &[]);
    let (status, head) = up.curl(&["-D", "-", "-o", "/dev/null", "/apps/hello/releases"]);
    assert_eq!(status, 200);
    let head = head.to_ascii_lowercase();
    assert!(head.contains("request-id: "), "{head}");
    assert!(head.contains("content-type: application/json"), "{head}");
    let (_, head) = up.curl(&[
        "-D",
        "-",
        "-o",
        "/dev/null",
        "-H",
        "X-Request-Id: mine-123",
        "/apps/hello/nothing-here",
    ]);
    assert!(
        head.to_ascii_lowercase().contains("request-id: mine-123"),
        "{head}"
    );
    let (status, body) = up.curl(&["/no/such/path"]);
    assert_eq!(status, 404);
    assert_eq!(json(&body)["id"], "not_found");
}

#[test]
fn platform_source_heroku_writes_herokus_lines() {
    let (_dir, up) = example_app("platform-source", &["--platform-source", "heroku"]);
    let (status, _) = support::dynos::curl(&up, "/", &[]);
    assert_eq!(status, "200");
    let (status, body) = patch_config(&up, r#"{"A":"1"}"#);
    assert_eq!(status, 200, "{body}");
    let start = Instant::now();
    loop {
        let lines = up.history("hello", &["--source", "heroku"]);
        let has = |p: &str| lines.iter().any(|l| l.contains(p));
        if has("heroku[router]: at=info")
            && has("heroku[web.1]: State changed")
            && has("heroku[api]: Release v2 created by")
        {
            assert!(
                !lines.iter().any(|l| l.contains(" paas[web.1]")),
                "{lines:?}"
            );
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(15), "{lines:?}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn paas_ps_stop_and_the_ps_aliases() {
    let (_dir, up) = example_app("ps-stop", &[]);
    let scaled = paas_ok(&up, &["ps:scale", "web=2"]);
    assert!(scaled.contains("web=2"), "{scaled}");
    let list = wait_dynos(&up, "two web", |l| l.len() == 2 && all_up(l));
    let id = |l: &[Value], n: &str| {
        l.iter()
            .find(|d| d["name"] == n)
            .map(|d| d["id"].clone())
            .unwrap_or_default()
    };
    let before = id(&list, "web.2");
    assert_eq!(
        paas_ok(&up, &["ps:stop", "web.2"]),
        "Stopping dyno web.2 on hello... done\n"
    );
    let list = wait_dynos(&up, "web.2 back", |l| all_up(l) && id(l, "web.2") != before);
    let before = id(&list, "web.1");
    assert_eq!(
        paas_ok(&up, &["ps:kill", "web"]),
        "Stopping all web dynos on hello... done\n"
    );
    let list = wait_dynos(&up, "web back", |l| all_up(l) && id(l, "web.1") != before);
    let before = id(&list, "web.1");
    paas_ok(&up, &["ps:restart", "web.1"]);
    wait_dynos(&up, "web.1 restarted", |l| {
        all_up(l) && id(l, "web.1") != before
    });
}

#[test]
fn changes_at_once_all_count() {
    let (_dir, up) = example_app("config-race", &[]);
    let up = std::sync::Arc::new(up);
    let threads: Vec<_> = (0..8)
        .map(|i| {
            let up = up.clone();
            std::thread::spawn(move || patch_config(&up, &format!(r#"{{"K{i}":"{i}"}}"#)).0)
        })
        .collect();
    for t in threads {
        assert_eq!(t.join().expect("thread"), 200);
    }
    let vars = up.get_json("/apps/hello/config-vars");
    for i in 0..8 {
        assert_eq!(vars[format!("K{i}")], i.to_string(), "{vars}");
    }
    let releases = up.get_json("/apps/hello/releases");
    assert_eq!(releases.as_array().map(Vec::len), Some(9), "{releases}");
}
