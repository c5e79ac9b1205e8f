//! The client commands against a real router: `paas apps`, `apps:create`, `tokens`,
//! `tokens:rotate`, `tokens:revoke`, `keys:create`, `apps:destroy`, and how clients find the
//! API and key (the credentials file the router writes when it makes the operator key).

mod support;

use std::process::{Command, Stdio};

use support::{Router, TempDir, frame, send};

fn text(o: &std::process::Output) -> String {
    assert!(
        o.status.success(),
        "paas failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[test]
fn apps_and_tokens_are_managed_from_the_cli() {
    let dir = TempDir::new("cli");
    let router = Router::start(&dir.0, &[]);
    let created = text(&router.paas(&["apps:create", "shop"]));
    let token = created
        .lines()
        .find_map(|l| l.strip_prefix("Ingest token (source \"app\"): "))
        .expect("the token is printed")
        .to_owned();
    assert!(token.starts_with("t."));
    assert_eq!(text(&router.paas(&["apps"])).trim(), "shop");
    let bad = router.paas(&["apps:create", "Not Valid"]);
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("HTTP 422"));

    let listed = text(&router.paas(&["tokens", "-a", "shop"]));
    assert!(
        listed.contains(&token) && listed.contains(" app "),
        "{listed}"
    );
    let rotated = text(&router.paas(&["tokens:rotate", "-a", "shop", &token]))
        .trim()
        .to_owned();
    assert!(rotated.starts_with("t.") && rotated != token);
    let mut conn = router.connect();
    send(&mut conn, &frame(&token, "web.1", "old token"));
    send(&mut conn, &frame(&rotated, "web.1", "new token"));
    drop(conn);
    router.wait_accepted("shop", 1);
    let lines = router.history("shop", &[]);
    assert_eq!(lines.len(), 1);
    assert!(lines[0].ends_with("new token"));

    let deploys = text(&router.paas(&["tokens:create", "-a", "shop", "deploys"]))
        .trim()
        .to_owned();
    text(&router.paas(&["tokens:revoke", "-a", "shop", &deploys]));
    assert!(!text(&router.paas(&["tokens", "-a", "shop"])).contains(&deploys));

    // An app-scoped key works for its app and sees nothing else.
    router.paas(&["apps:create", "blog"]);
    let key = text(&router.paas(&["keys:create", "-a", "shop"]))
        .trim()
        .to_owned();
    let as_shop = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_paas"))
            .args(args)
            .env("PAAS_API_URL", &router.api)
            .env("PAAS_API_KEY", &key)
            .output()
            .unwrap()
    };
    assert_eq!(text(&as_shop(&["apps"])).trim(), "shop");
    let denied = as_shop(&["logs", "-a", "blog"]);
    assert!(!denied.status.success());
    assert!(String::from_utf8_lossy(&denied.stderr).contains("Couldn't find that app."));

    let refused = router.paas(&["apps:destroy", "-a", "blog"]);
    assert!(!refused.status.success(), "destroy needs --confirm");
    text(&router.paas(&["apps:destroy", "-a", "blog", "--confirm", "blog"]));
    assert_eq!(text(&router.paas(&["apps"])).trim(), "shop");
}

#[test]
fn the_first_start_makes_an_operator_key_that_local_clients_find() {
    let dir = TempDir::new("firstkey");
    let start = || {
        let mut child = Command::new(env!("CARGO_BIN_EXE_paas"))
            .args([
                "logplex",
                "--api-port",
                "0",
                "--syslog-port",
                "0",
                "--udp-port",
                "0",
                "--data-dir",
            ])
            .arg(&dir.0)
            .env_remove("PAAS_API_KEY")
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut out = std::io::BufReader::new(child.stdout.take().unwrap());
        let mut printed = Vec::new();
        loop {
            let mut line = String::new();
            use std::io::BufRead;
            if out.read_line(&mut line).unwrap() == 0 {
                break;
            }
            let done = line.contains("data in");
            printed.push(line);
            if done {
                // The key line, when there is one, comes right after.
                break;
            }
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
        (child, out, printed)
    };
    let (mut first, mut out, _) = start();
    let mut key_line = String::new();
    use std::io::BufRead;
    out.read_line(&mut key_line).unwrap();
    assert!(
        key_line.contains("operator API key (shown once"),
        "{key_line}"
    );
    let key = key_line.rsplit(' ').next().unwrap().trim().to_owned();
    assert!(key.starts_with("k."));
    // A client with no URL and no key finds both in the data directory.
    let client = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_paas"))
            .args(args)
            .env("PAAS_DATA_DIR", &dir.0)
            .env_remove("PAAS_API_URL")
            .env_remove("PAAS_API_KEY")
            .output()
            .unwrap()
    };
    text(&client(&["apps:create", "shop"]));
    let _ = Command::new("kill")
        .args(["-TERM", &first.id().to_string()])
        .status();
    assert!(first.wait().unwrap().success());
    let mode = std::fs::metadata(dir.0.join("credentials.json")).unwrap();
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(mode.permissions().mode() & 0o777, 0o600);

    // The second start shows no key, and the same key still works.
    let (mut second, mut out, _) = start();
    let _ = Command::new("kill")
        .args(["-TERM", &second.id().to_string()])
        .status();
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut out, &mut rest).unwrap();
    assert!(!rest.contains("operator API key"), "{rest}");
    assert!(second.wait().unwrap().success());
    let (mut third, _out, _) = start();
    assert_eq!(text(&client(&["apps"])).trim(), "shop");
    let _ = third.kill();
    let _ = third.wait();
}
