//! One dyno: a process of the app's Procfile, started with `PORT`, `DYNO`, `PS` and the app's
//! config vars, its output read into the router, and its life told in Heroku's words as
//! `paas[web.1]` lines: `Starting process with command `…``, `State changed from starting to
//! up` (a web dyno once its port accepts connections, others once started), `Error R10 (Boot
//! timeout)`, `Stopping process with SIGKILL`, `Process exited with status N`, `State changed
//! from up to crashed`.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use logplex::Emitter;
use tokio::process::Command;

use crate::dyno::output::{MAX_LINE, pump};

/// What a dyno runs.
#[derive(Clone, Debug)]
pub struct DynoSpec {
    /// `web.1`, `worker.2`.
    pub name: String,
    /// The Procfile command (run by `sh -c`).
    pub command: String,
    /// The port a web dyno must listen on (`PORT`); `None` for other types.
    pub port: Option<u16>,
    /// Config vars.
    pub env: Vec<(String, String)>,
    /// The app's directory.
    pub dir: PathBuf,
    /// How long a web dyno may take to accept connections on its port (R10; Heroku: 60 s).
    pub boot_timeout: Duration,
}

/// How a dyno ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DynoExit {
    /// It exited with this status (signals as 128 + N, as a shell says).
    Exited(i32),
    /// It did not bind its port in time and was killed (R10).
    BootTimeout,
}

/// Runs a dyno to its end, writing its output (`app`) and its life (`platform`) into the
/// router.
pub async fn run(spec: DynoSpec, app: Emitter, platform: Emitter) -> std::io::Result<DynoExit> {
    let say = |message: String| {
        let _ = platform.try_emit(&spec.name, message);
    };
    say(format!("Starting process with command `{}`", spec.command));
    let mut command = Command::new("sh");
    command
        .args(["-c", &spec.command])
        .current_dir(&spec.dir)
        .envs(spec.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .env("DYNO", &spec.name)
        .env("PS", &spec.name)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        // Its own process group, so that stopping the dyno stops everything it started.
        .process_group(0)
        .kill_on_drop(true);
    if let Some(port) = spec.port {
        command.env("PORT", port.to_string());
    }
    let mut child = command.spawn()?;
    let out = child
        .stdout
        .take()
        .map(|s| tokio::spawn(pump(s, app.clone(), spec.name.clone(), MAX_LINE)));
    let err = child
        .stderr
        .take()
        .map(|s| tokio::spawn(pump(s, app.clone(), spec.name.clone(), MAX_LINE)));
    let booted = match spec.port {
        None => true,
        Some(port) => {
            let deadline = tokio::time::Instant::now() + spec.boot_timeout;
            loop {
                if tokio::net::TcpStream::connect(("127.0.0.1", port))
                    .await
                    .is_ok()
                {
                    break true;
                }
                if tokio::time::Instant::now() >= deadline {
                    break false;
                }
                if let Ok(Some(_)) = child.try_wait() {
                    break false;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    };
    let exit = if booted {
        say("State changed from starting to up".to_owned());
        let status = child.wait().await?;
        DynoExit::Exited(code_of(status))
    } else if let Ok(Some(status)) = child.try_wait() {
        DynoExit::Exited(code_of(status))
    } else {
        let secs = spec.boot_timeout.as_secs();
        say(format!(
            "Error R10 (Boot timeout) -> Web process failed to bind to $PORT within {secs} seconds of launch"
        ));
        say("Stopping process with SIGKILL".to_owned());
        kill_group(&mut child).await;
        DynoExit::BootTimeout
    };
    for pumped in [out, err].into_iter().flatten() {
        let _ = pumped.await;
    }
    match exit {
        DynoExit::Exited(code) => {
            say(format!("Process exited with status {code}"));
            if code != 0 {
                let from = if booted { "up" } else { "starting" };
                say(format!("State changed from {from} to crashed"));
            }
        }
        DynoExit::BootTimeout => say("State changed from starting to crashed".to_owned()),
    }
    Ok(exit)
}

/// SIGKILL to the dyno's whole process group (the shell and what it started).
async fn kill_group(child: &mut tokio::process::Child) {
    if let Some(pid) = child.id() {
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{pid}")])
            .status()
            .await;
    }
    let _ = child.kill().await;
}

fn code_of(status: std::process::ExitStatus) -> i32 {
    use std::os::unix::process::ExitStatusExt;
    status
        .code()
        .or_else(|| status.signal().map(|s| 128 + s))
        .unwrap_or(-1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use logplex::{Registry, Router, RouterConfig};

    use crate::dyno::output::tests::shown as lines;

    /// A loopback port free a moment ago.
    fn free_port() -> u16 {
        std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port()
    }

    fn spec(name: &str, command: &str, port: Option<u16>, boot: Duration) -> DynoSpec {
        DynoSpec {
            name: name.into(),
            command: command.into(),
            port,
            env: vec![("GREETING".into(), "hi".into())],
            dir: std::env::temp_dir(),
            boot_timeout: boot,
        }
    }

    fn router() -> (Router, Emitter, Emitter) {
        let router = Router::new(RouterConfig::default(), Registry::in_memory());
        router.create_app("shop").unwrap();
        let app = router.emitter("shop", "app").unwrap();
        let platform = router.emitter("shop", "paas").unwrap();
        (router, app, platform)
    }

    #[tokio::test]
    async fn a_worker_starts_logs_and_crashes_in_heroku_s_words() {
        let (router, app, platform) = router();
        let exit = run(
            spec(
                "worker.1",
                "echo $GREETING from $DYNO; exit 3",
                None,
                Duration::from_secs(5),
            ),
            app,
            platform,
        )
        .await
        .unwrap();
        assert_eq!(exit, DynoExit::Exited(3));
        assert_eq!(
            lines(&router),
            [
                "paas[worker.1]: Starting process with command `echo $GREETING from $DYNO; exit 3`",
                "paas[worker.1]: State changed from starting to up",
                "app[worker.1]: hi from worker.1",
                "paas[worker.1]: Process exited with status 3",
                "paas[worker.1]: State changed from up to crashed",
            ]
        );
    }

    #[tokio::test]
    async fn a_web_dyno_is_up_once_its_port_accepts() {
        let (router, app, platform) = router();
        let port = free_port();
        // Listens on $PORT for one connection (the boot check), then exits cleanly.
        let command = "exec python3 -c 'import os,socket; s=socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); s.bind((\"127.0.0.1\", int(os.environ[\"PORT\"]))); s.listen(); print(\"listening\", flush=True); s.accept()'";
        let exit = run(
            spec("web.1", command, Some(port), Duration::from_secs(10)),
            app,
            platform,
        )
        .await
        .unwrap();
        assert_eq!(exit, DynoExit::Exited(0));
        let got = lines(&router);
        assert!(
            got.contains(&"paas[web.1]: State changed from starting to up".to_owned()),
            "{got:?}"
        );
        assert!(got.contains(&"app[web.1]: listening".to_owned()), "{got:?}");
        assert_eq!(
            got.last().unwrap(),
            "paas[web.1]: Process exited with status 0"
        );
    }

    #[tokio::test]
    async fn a_web_dyno_that_never_binds_gets_r10() {
        let (router, app, platform) = router();
        let port = free_port();
        let exit = run(
            spec("web.1", "sleep 30", Some(port), Duration::from_millis(300)),
            app,
            platform,
        )
        .await
        .unwrap();
        assert_eq!(exit, DynoExit::BootTimeout);
        let got = lines(&router);
        assert!(
            got.contains(&"paas[web.1]: Error R10 (Boot timeout) -> Web process failed to bind to $PORT within 0 seconds of launch".to_owned()),
            "{got:?}"
        );
        assert!(got.contains(&"paas[web.1]: Stopping process with SIGKILL".to_owned()));
        assert_eq!(
            got.last().unwrap(),
            "paas[web.1]: State changed from starting to crashed"
        );
    }
}
