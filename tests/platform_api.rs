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
