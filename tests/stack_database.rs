//! `paas up --database-url` end to end: the real binary attaches the database adapter in front
//! of the machine's PostgreSQL (127.0.0.1:5432, trust auth, database `test`); psql goes
//! through it (TLS with `sslmode=require`, a wrong password), the dynos get its URL, and its
//! `app[postgres]` and `app[heroku-postgres]` lines reach the app's stream, which the app's
//! own token cannot forge. Without a PostgreSQL or psql there, the tests say so and pass.

mod support;

use std::process::Command;
use std::time::{Duration, Instant};

use support::{Router, TempDir, frame, send};

const SERVER: &str = "postgres://root@127.0.0.1:5432/test";

fn have_postgres() -> bool {
    let ok = Command::new("psql")
        .args([SERVER, "-Atc", "SELECT 1"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        eprintln!("no psql or no PostgreSQL on 127.0.0.1:5432: skipped");
    }
    ok
}

fn up(tag: &str, extra: &[&str]) -> (TempDir, Router) {
    let dir = TempDir::new(tag);
    let flags = [
        "--scale",
        "web=1",
        "--scale",
        "worker=0",
        "--database-url",
        SERVER,
        "--database-pool-size",
        "3",
        "--database-slow-ms",
        "150",
        "--metrics-interval",
        "0.3",
    ];
    let router = Router::up(&dir.0, &[&flags[..], extra].concat());
    (dir, router)
}

fn psql(url: &str, sql: &str) -> std::process::Output {
    Command::new("psql")
        .args([url, "-Atc", sql])
        .env_remove("PGSSLMODE")
        .output()
        .expect("run psql")
}

/// The app's lines, until one contains `needle` (or a panic after 10 s).
fn wait_line(up: &Router, args: &[&str], needle: &str) -> Vec<String> {
    let start = Instant::now();
    loop {
        let lines = up.history("hello", args);
        if lines.iter().any(|l| l.contains(needle)) {
            return lines;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "no line with {needle:?}: {lines:#?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn psql_through_the_adapter_with_tls_and_the_lines_it_writes() {
    if !have_postgres() {
        return;
    }
    let (_dir, up) = up("db-psql", &[]);
    let info = up.get_json("/apps/hello/database");
    let url = info["url"].as_str().expect("url").to_owned();
    assert!(url.starts_with("postgres://u"), "{info}");
    assert_eq!(info["pool_mode"], "transaction");

    // TLS as Heroku requires it, and the session really is encrypted.
    let out = psql(&format!("{url}?sslmode=require"), "SELECT 40 + 2");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "42");
    let out = Command::new("psql")
        .args([&format!("{url}?sslmode=require"), "-c", "\\conninfo"])
        .output()
        .expect("psql");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("SSL connection"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );

    // A wrong password: PostgreSQL's own error.
    let (user_part, host_part) = url.split_once('@').expect("@ in url");
    let user = user_part.rsplit_once(':').expect("password").0;
    let out = psql(&format!("{user}:wrong@{host_part}"), "SELECT 1");
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("password authentication failed"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // The dyno's DATABASE_URL is the adapter's.
    let dynos = up.get_json("/apps/hello/dynos");
    let pid = dynos[0]["pid"].as_u64().expect("a dyno's pid");
    let environ = std::fs::read(format!("/proc/{pid}/environ")).unwrap_or_default();
    let env = String::from_utf8_lossy(&environ);
    assert!(
        env.split('\0')
            .any(|kv| kv == format!("DATABASE_URL={url}")),
        "the dyno's environment has no DATABASE_URL={url}"
    );

    // The add-on, as `heroku apps:info` reads it.
    let addons = up.get_json("/apps/hello/addons");
    assert_eq!(
        addons[0]["plan"]["name"], "heroku-postgresql:paas",
        "{addons}"
    );
    assert_eq!(addons[0]["config_vars"][0], "DATABASE_URL", "{addons}");

    // pg:psql and pg:info, as Heroku's.
    let out = up.paas(&["pg:psql", "-a", "hello", "-c", "SELECT 'through pg:psql'"]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("through pg:psql"));
    let out = up.paas(&["pg:info", "-a", "hello"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("=== DATABASE_URL (postgresql-hello)") && text.contains("transaction mode"),
        "{text}"
    );

    // A slow statement, an error and a failed login in the stream as app[postgres].
    let _ = psql(&url, "SELECT pg_sleep(0.2), 'hidden literal'");
    let _ = psql(&url, "SELECT * FROM no_such_table_here");
    let lines = wait_line(
        &up,
        &["--dyno", "postgres"],
        "statement: SELECT pg_sleep($1), $2",
    );
    assert!(
        lines.iter().any(|l| l.contains(
            "app[postgres]: [DATABASE] sql_error_code = 28P01 FATAL:  password authentication failed"
        )),
        "{lines:#?}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.contains("sql_error_code = 42P01 ERROR:"))
    );
    assert!(lines.iter().all(|l| !l.contains("hidden literal")));
    let lines = wait_line(
        &up,
        &["--source", "heroku-postgres"],
        "app[heroku-postgres]: source=DATABASE addon=postgresql-hello sample#current_transaction=",
    );
    assert!(lines.iter().any(|l| l.contains("sample#pool-servers=")));

    // The app's own token cannot write as the adapter.
    let token = up.create_app("forger");
    let mut conn = up.connect();
    send(&mut conn, &frame(&token, "postgres", "[DATABASE] forged"));
    send(&mut conn, &frame(&token, "web.1", "honest"));
    let stats = up.wait_stats("forger", "refused the forged line", |s| {
        s["rejected"]["reserved_process"] == 1 && s["accepted"] == 1
    });
    assert_eq!(stats["accepted"], 1);

    let (_, metrics) = up.curl(&["/metrics"]);
    // libpq tries again without TLS after a refusal under sslmode=prefer: one or two.
    let failures = metrics
        .lines()
        .find_map(|l| l.strip_prefix("paas_database_auth_failures_total "))
        .and_then(|v| v.parse::<u64>().ok());
    assert!(matches!(failures, Some(1 | 2)), "{failures:?}");
}

#[test]
fn session_mode_and_a_dyno_free_database() {
    if !have_postgres() {
        return;
    }
    let (_dir, up) = up(
        "db-session",
        &["--database-pool-mode", "session", "--database-auth", "md5"],
    );
    let info = up.get_json("/apps/hello/database");
    assert_eq!(info["pool_mode"], "session");
    let url = info["url"].as_str().expect("url");
    let out = psql(url, "SET application_name = 'kept'; SHOW application_name");
    assert!(
        String::from_utf8_lossy(&out.stdout)
            .trim()
            .ends_with("kept"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
