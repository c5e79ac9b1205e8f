//! The real npm `heroku` CLI (11.x) against `paas up`: `ps`, `ps:scale`, `ps:restart`,
//! `ps:stop`, `ps:kill`, `apps`, `apps:info`, `config*`, `releases*`, `logs`, `drains*`, each
//! checked for what it prints and what it changed. `scripts/test` installs the CLI into
//! `~/.cache/heroku-cli`; without it (no npm, no registry) the test says so and passes.
//!
//! The CLI runs with its own `HOME`, telemetry off and every URL it knows (`HEROKU_HOST`,
//! `HEROKU_PARTICLEBOARD_URL`) pointed at our API: it must never reach Heroku itself.

mod support;

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use support::dynos::{curl, example_app};
use support::{KEY, Router, TempDir};

/// The installed CLI: `$PAAS_HEROKU_CLI`, else `~/.cache/heroku-cli/node_modules/.bin/heroku`.
fn heroku_cli() -> Option<PathBuf> {
    let path = std::env::var_os("PAAS_HEROKU_CLI")
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME")
                .map(|h| PathBuf::from(h).join(".cache/heroku-cli/node_modules/.bin/heroku"))
        })?;
    path.exists().then_some(path)
}

struct Cli {
    bin: PathBuf,
    home: TempDir,
    api: String,
}

impl Cli {
    /// Runs `heroku ARGS -a hello`: (success, stdout, stderr).
    fn run(&self, args: &[&str]) -> (bool, String, String) {
        let bin_dir = self.bin.parent().map(PathBuf::from).unwrap_or_default();
        let path = format!(
            "{}:{}",
            bin_dir.display(),
            std::env::var("PATH").unwrap_or_default()
        );
        let out = Command::new(&self.bin)
            .args(args)
            .env_clear()
            .env("PATH", path)
            .env("HOME", &self.home.0)
            .env("XDG_CACHE_HOME", self.home.0.join("cache"))
            .env("XDG_CONFIG_HOME", self.home.0.join("config"))
            .env("XDG_DATA_HOME", self.home.0.join("data"))
            .env("HEROKU_HOST", &self.api)
            .env("HEROKU_PARTICLEBOARD_URL", &self.api)
            .env("HEROKU_API_KEY", KEY)
            .env("HEROKU_APP", "hello")
            .env("DISABLE_TELEMETRY", "true")
            .env("HEROKU_SKIP_NEW_VERSION_CHECK", "true")
            .env("NO_COLOR", "1")
            .env("TERM", "dumb")
            .output()
            .expect("run heroku");
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    /// `heroku ARGS` that must succeed; what it printed on stdout, then stderr (where its
    /// `Doing... done` lines go).
    fn ok(&self, args: &[&str]) -> String {
        let (ok, out, err) = self.run(args);
        assert!(ok, "heroku {args:?} failed:\n{out}\n{err}");
        format!("{out}{err}")
    }

    /// `heroku ARGS` that must succeed; its stdout only.
    fn stdout(&self, args: &[&str]) -> String {
        let (ok, out, err) = self.run(args);
        assert!(ok, "heroku {args:?} failed:\n{out}\n{err}");
        out
    }
}

fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < Duration::from_secs(30), "{what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn dyno_ids(up: &Router) -> Vec<(String, String, String)> {
    up.get_json("/apps/hello/dynos")
        .as_array()
        .into_iter()
        .flatten()
        .map(|d| {
            let s = |k: &str| d[k].as_str().unwrap_or_default().to_owned();
            (s("name"), s("id"), s("state"))
        })
        .collect()
}

fn all_up(up: &Router, n: usize) -> bool {
    let d = dyno_ids(up);
    d.len() == n && d.iter().all(|(_, _, s)| s == "up")
}

fn id_of(up: &Router, name: &str) -> String {
    dyno_ids(up)
        .into_iter()
        .find(|(n, _, _)| n == name)
        .map(|(_, id, _)| id)
        .unwrap_or_default()
}

#[test]
fn the_heroku_cli_drives_paas() {
    let Some(bin) = heroku_cli() else {
        eprintln!("skipped: no heroku CLI (scripts/test installs it with npm when it can)");
        return;
    };
    let (_dir, up) = example_app("heroku-cli", &[]);
    let cli = Cli {
        bin,
        home: TempDir::new("heroku-cli-home"),
        api: up.api.clone(),
    };

    // ps, ps:scale (quantities sent as strings).
    let ps = cli.ok(&["ps"]);
    assert!(ps.contains("=== web (standard-1X)"), "{ps}");
    assert!(ps.contains("web.1: up"), "{ps}");
    let scaled = cli.ok(&["ps:scale", "web=2", "worker=1"]);
    assert!(scaled.contains("web at 2:standard-1X"), "{scaled}");
    assert!(scaled.contains("worker at 1:standard-1X"), "{scaled}");
    wait_for("three dynos up", || all_up(&up, 3));

    // ps:restart (all, a type), ps:stop and ps:kill of a dyno, ps:stop of a type.
    let restarted = |name: &str, before: &str| {
        let now = id_of(&up, name);
        !now.is_empty() && now != before && all_up(&up, 3)
    };
    let before = id_of(&up, "web.1");
    assert!(cli.ok(&["ps:restart"]).contains("Restarting all dynos"));
    wait_for("all restarted", || restarted("web.1", &before));
    let before = id_of(&up, "web.2");
    cli.ok(&["ps:restart", "-p", "web"]);
    wait_for("web restarted", || restarted("web.2", &before));
    let before = id_of(&up, "web.1");
    assert!(
        cli.ok(&["ps:stop", "web.1"])
            .contains("Stopping dyno web.1")
    );
    wait_for("web.1 stopped and back", || restarted("web.1", &before));
    let before = id_of(&up, "web.2");
    cli.ok(&["ps:kill", "web.2"]);
    wait_for("web.2 killed and back", || restarted("web.2", &before));
    let before = id_of(&up, "worker.1");
    cli.ok(&["ps:stop", "-p", "worker"]);
    wait_for("worker stopped and back", || restarted("worker.1", &before));

    // apps, apps:info.
    let apps = cli.ok(&["apps"]);
    assert!(apps.contains("hello"), "{apps}");
    let info = cli.ok(&["apps:info"]);
    assert!(info.contains("=== hello"), "{info}");
    assert!(info.contains("Dynos:") && info.contains("web: 2"), "{info}");

    // config, config:set (a release; the dynos restarted with it, no request failing),
    // config:get, config:unset.
    assert!(cli.ok(&["config"]).contains("GREETING: hello"));
    let set = cli.ok(&["config:set", "GREETING=hola"]);
    assert!(set.contains("done, v2"), "{set}");
    wait_for("the new greeting served", || {
        (0..4).all(|_| curl(&up, "/", &[]).1.starts_with("hola from web."))
    });
    assert_eq!(cli.stdout(&["config:get", "GREETING"]).trim(), "hola");
    cli.ok(&["config:set", "EXTRA=1"]);
    let unset = cli.ok(&["config:unset", "EXTRA"]);
    assert!(unset.contains("done, v4"), "{unset}");
    assert!(!cli.stdout(&["config"]).contains("EXTRA"));

    // releases, releases:info, releases:rollback.
    let releases = cli.ok(&["releases"]);
    assert!(releases.contains("Current: v4"), "{releases}");
    for want in [
        "Initial release",
        "Set GREETING config vars",
        "Remove EXTRA config vars",
    ] {
        assert!(releases.contains(want), "{want}: {releases}");
    }
    let info = cli.ok(&["releases:info", "v2"]);
    assert!(info.contains("Set GREETING config vars"), "{info}");
    assert!(info.contains("GREETING: hola"), "{info}");
    let rolled = cli.ok(&["releases:rollback", "v1"]);
    assert!(
        rolled.contains("Rolling back hello to v1... done, v5"),
        "{rolled}"
    );
    wait_for("the greeting rolled back", || {
        (0..4).all(|_| curl(&up, "/", &[]).1.starts_with("hello from web."))
    });

    // logs: the api lines, the router's, a dyno's.
    let logs = cli.stdout(&["logs", "-n", "1500"]);
    assert!(
        logs.contains("paas[api]: Set GREETING config vars by"),
        "{logs}"
    );
    assert!(logs.contains("paas[api]: Release v5 created by"), "{logs}");
    assert!(!logs.contains("hola"), "a config var's value in the stream");
    let router = cli.stdout(&["logs", "-n", "20", "--source", "router"]);
    assert!(
        !router.is_empty() && router.lines().all(|l| l.contains("paas[router]: at=")),
        "{router}"
    );
    let web = cli.stdout(&["logs", "-n", "20", "--dyno", "web"]);
    assert!(
        !web.is_empty() && web.lines().all(|l| l.contains("[web.")),
        "{web}"
    );

    // drains:add, drains, drains:remove.
    let added = cli.ok(&["drains:add", "syslog://127.0.0.1:9"]);
    assert!(added.contains("Successfully added drain"), "{added}");
    assert!(cli.ok(&["drains"]).contains("syslog://127.0.0.1:9"));
    cli.ok(&["drains:remove", "syslog://127.0.0.1:9"]);
    assert!(!cli.ok(&["drains"]).contains("syslog://127.0.0.1:9"));
}
