//! One dyno's run: a process of the app's Procfile, started with `PORT`, `DYNO`, `PS` and the
//! app's config vars in a process group of its own, its output read into the router, and its
//! life told in Heroku's words as `paas[web.1]` lines: `Starting process with command `…``,
//! `State changed from starting to up` (a web dyno once its port accepts connections, others
//! once started), `Error R10 (Boot timeout)`, `Error R14 (Memory quota exceeded)`, `Error R15
//! (Memory quota vastly exceeded)`, `Stopping all processes with SIGTERM`, `Error R12 (Exit
//! timeout)`, `Stopping process with SIGKILL`, `Process exited with status N`, `State changed
//! from up to crashed`; and its runtime metrics every interval, as log-runtime-metrics writes
//! them.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use logplex::Emitter;
use rustix::process::{Pid, Signal, kill_process_group};
use tokio::process::{Child, Command};
use tokio::sync::watch;

use crate::dyno::errors::{DynoError, DynoErrors};
use crate::dyno::metrics::{MemoryVerdict, RuntimeMetrics};
use crate::dyno::output::{MAX_LINE, pump};
use crate::dyno::procfs;

/// What a dyno runs, and the platform's limits on it.
#[derive(Clone, Debug)]
pub struct DynoSpec {
    /// `web.1`, `worker.2`.
    pub name: String,
    /// This run's unique id (`paas.hello.3f2a…`), as log-runtime-metrics' `dyno=`.
    pub id: String,
    /// The Procfile command (run by `sh -c`).
    pub command: String,
    /// The port a web dyno must listen on (`PORT`); `None` for other types.
    pub port: Option<u16>,
    /// Config vars.
    pub env: Vec<(String, String)>,
    /// The app's directory.
    pub dir: PathBuf,
    /// The platform's limits.
    pub limits: DynoLimits,
    /// A program that runs the command for the platform: `LAUNCHER dyno-run COMMAND` instead
    /// of `sh -c COMMAND` (`paas dyno-run` makes the dyno die with `paas` itself, even on a
    /// SIGKILL). `None`: `sh -c`.
    pub launcher: Option<PathBuf>,
    /// Where its R-codes are counted (the app's, shared by its dynos).
    pub errors: std::sync::Arc<DynoErrors>,
}

/// The timeouts and quotas a dyno runs under (Heroku's defaults; tests set short ones).
#[derive(Clone, Debug)]
pub struct DynoLimits {
    /// How long a web dyno may take to accept connections on its port (R10; Heroku: 60 s).
    pub boot_timeout: Duration,
    /// How long a dyno may take to exit after SIGTERM before SIGKILL (R12; Heroku: 30 s).
    pub exit_timeout: Duration,
    /// Memory (resident + swap) past which R14 is logged; past twice this, R15 and a restart.
    pub memory_quota: u64,
    /// How often memory is checked against the quota.
    pub memory_check: Duration,
    /// How often runtime metrics are written (Heroku: 20 s); `None`: never.
    pub metrics_interval: Option<Duration>,
    /// Lines a second each of the dyno's output streams may write before reading it pauses
    /// (0: no limit), so that one dyno cannot take the app's whole rate budget.
    pub log_rate: u64,
}

impl Default for DynoLimits {
    fn default() -> Self {
        DynoLimits {
            boot_timeout: Duration::from_secs(60),
            exit_timeout: Duration::from_secs(30),
            memory_quota: 512 << 20,
            memory_check: Duration::from_secs(5),
            metrics_interval: Some(Duration::from_secs(20)),
            log_rate: 100_000,
        }
    }
}

/// How a dyno's run ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DynoExit {
    /// It exited by itself with this status (signals as 128 + N, as a shell says).
    Exited(i32),
    /// It did not bind its port in time and was killed (R10).
    BootTimeout,
    /// It used over twice its memory quota and was killed (R15).
    MemoryExceeded,
    /// The platform stopped it (SIGTERM, then SIGKILL past the exit timeout); its status.
    Stopped(i32),
}

impl DynoExit {
    /// Whether the dyno crashed (rather than ending cleanly or being stopped).
    pub fn crashed(self) -> bool {
        !matches!(self, DynoExit::Exited(0) | DynoExit::Stopped(_))
    }
}

/// What a run tells its supervisor as it goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DynoEvent {
    /// The process started, with this pid (its process group).
    Started(u32),
    /// It is up: a web dyno accepts connections on its port.
    Up,
}

/// Runs a dyno to its end, writing its output (`app`) and its life (`platform`) into the
/// router. It stops, SIGTERM first, once `stop` holds `true`.
pub async fn run(
    spec: DynoSpec,
    app: Emitter,
    platform: Emitter,
    mut stop: watch::Receiver<bool>,
    on_event: impl Fn(DynoEvent) + Send,
) -> std::io::Result<DynoExit> {
    let say = |message: String| {
        let _ = platform.try_emit(&spec.name, message);
    };
    say(format!("Starting process with command `{}`", spec.command));
    let mut command = match &spec.launcher {
        Some(launcher) => {
            let mut c = Command::new(launcher);
            c.args(["dyno-run", &spec.command]);
            c
        }
        None => {
            let mut c = Command::new("sh");
            c.args(["-c", &spec.command]);
            c
        }
    };
    command
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
    let pid = child.id().unwrap_or(0);
    on_event(DynoEvent::Started(pid));
    let pumps: Vec<_> = [
        child.stdout.take().map(|s| {
            tokio::spawn(pump(
                s,
                app.clone(),
                spec.name.clone(),
                MAX_LINE,
                spec.limits.log_rate,
            ))
        }),
        child.stderr.take().map(|s| {
            tokio::spawn(pump(
                s,
                app.clone(),
                spec.name.clone(),
                MAX_LINE,
                spec.limits.log_rate,
            ))
        }),
    ]
    .into_iter()
    .flatten()
    .collect();

    let booted = boot(&spec, &mut child, &mut stop).await;
    let was_up = matches!(booted, Boot::Up);
    let exit = match booted {
        Boot::Up => {
            // The mesh first: whoever reads the line may send a request at once.
            on_event(DynoEvent::Up);
            say("State changed from starting to up".to_owned());
            supervise(&spec, &mut child, pid, &mut stop, &say).await?
        }
        Boot::Exited(code) => DynoExit::Exited(code),
        Boot::Stop => terminate(&spec, &mut child, pid, &say).await,
        Boot::TimedOut => {
            let secs = spec.limits.boot_timeout.as_secs();
            DynoError::BootTimeout { secs }.emit(&spec.errors, say);
            say("Stopping process with SIGKILL".to_owned());
            signal_group(pid, Signal::KILL);
            let _ = child.wait().await;
            DynoExit::BootTimeout
        }
    };
    // Whatever the group left behind goes with it.
    if procfs::group_alive(pid) {
        signal_group(pid, Signal::KILL);
    }
    for pumped in pumps {
        let _ = pumped.await;
    }
    match exit {
        DynoExit::Exited(code) | DynoExit::Stopped(code) => {
            say(format!("Process exited with status {code}"))
        }
        DynoExit::MemoryExceeded => say("Process exited with status 137".to_owned()),
        DynoExit::BootTimeout => {}
    }
    if exit.crashed() {
        let from = if was_up { "up" } else { "starting" };
        say(format!("State changed from {from} to crashed"));
    }
    Ok(exit)
}

enum Boot {
    Up,
    Exited(i32),
    Stop,
    TimedOut,
}

/// Waits for a web dyno to accept connections on its port (others are up once started).
async fn boot(spec: &DynoSpec, child: &mut Child, stop: &mut watch::Receiver<bool>) -> Boot {
    let Some(port) = spec.port else {
        return Boot::Up;
    };
    let deadline = tokio::time::Instant::now() + spec.limits.boot_timeout;
    loop {
        if *stop.borrow_and_update() {
            return Boot::Stop;
        }
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
        {
            return Boot::Up;
        }
        if let Ok(Some(status)) = child.try_wait() {
            return Boot::Exited(code_of(status));
        }
        if tokio::time::Instant::now() >= deadline {
            return Boot::TimedOut;
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(50)) => {}
            _ = stop.changed() => {}
        }
    }
}

/// Watches an up dyno until it exits, is stopped, or uses over twice its memory quota; checks
/// memory and writes runtime metrics meanwhile.
async fn supervise(
    spec: &DynoSpec,
    child: &mut Child,
    pid: u32,
    stop: &mut watch::Receiver<bool>,
    say: &impl Fn(String),
) -> std::io::Result<DynoExit> {
    let limits = &spec.limits;
    // The launcher leads the group: its memory and CPU are the platform's, not the app's.
    let launcher = spec.launcher.is_some().then_some(pid);
    let mut memory = tokio::time::interval(limits.memory_check);
    memory.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let interval = limits.metrics_interval.unwrap_or(Duration::from_secs(3600));
    let mut metrics = tokio::time::interval_at(tokio::time::Instant::now() + interval, interval);
    metrics.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut runtime = RuntimeMetrics::new(&spec.name, &spec.id, limits.memory_quota);
    // R14 is told at most once a metrics interval while it lasts, as Heroku does.
    let mut r14_told: Option<Instant> = None;
    loop {
        if *stop.borrow_and_update() {
            return Ok(terminate(spec, child, pid, say).await);
        }
        tokio::select! {
            status = child.wait() => return Ok(DynoExit::Exited(code_of(status?))),
            _ = stop.changed() => {}
            _ = memory.tick() => {
                match runtime.check(procfs::group(pid, launcher)) {
                    MemoryVerdict::Within => r14_told = None,
                    MemoryVerdict::Exceeded => {
                        if r14_told.is_none_or(|t| t.elapsed() >= interval) {
                            DynoError::MemoryQuotaExceeded.emit(&spec.errors, say);
                            r14_told = Some(Instant::now());
                        }
                    }
                    MemoryVerdict::VastlyExceeded => {
                        DynoError::MemoryQuotaVastlyExceeded.emit(&spec.errors, say);
                        say("Stopping process with SIGKILL".to_owned());
                        signal_group(pid, Signal::KILL);
                        let _ = child.wait().await;
                        return Ok(DynoExit::MemoryExceeded);
                    }
                }
            }
            _ = metrics.tick(), if limits.metrics_interval.is_some() => {
                let stats = procfs::group(pid, launcher);
                for line in runtime.lines(stats, procfs::load_average()) {
                    say(line);
                }
            }
        }
    }
}

/// SIGTERM to the dyno's group; past the exit timeout, R12 and SIGKILL.
async fn terminate(
    spec: &DynoSpec,
    child: &mut Child,
    pid: u32,
    say: &impl Fn(String),
) -> DynoExit {
    say("Stopping all processes with SIGTERM".to_owned());
    signal_group(pid, Signal::TERM);
    let deadline = tokio::time::Instant::now() + spec.limits.exit_timeout;
    // The shell may be gone while what it started still runs: wait for the whole group.
    let status = tokio::time::timeout_at(deadline, child.wait()).await;
    while procfs::group_alive(pid) && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    if status.is_err() || procfs::group_alive(pid) {
        let secs = spec.limits.exit_timeout.as_secs();
        DynoError::ExitTimeout { secs }.emit(&spec.errors, say);
        say("Stopping remaining processes with SIGKILL".to_owned());
        signal_group(pid, Signal::KILL);
    }
    match status {
        Ok(Ok(status)) => DynoExit::Stopped(code_of(status)),
        _ => DynoExit::Stopped(child.wait().await.map_or(137, code_of)),
    }
}

/// A signal to the dyno's whole process group (the shell and what it started).
fn signal_group(pgid: u32, signal: Signal) {
    if let Some(pid) = i32::try_from(pgid).ok().and_then(Pid::from_raw) {
        // The group may be gone already: nothing to do then.
        let _ = kill_process_group(pid, signal);
    }
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
    pub(crate) fn free_port() -> u16 {
        std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port()
    }

    fn spec(name: &str, command: &str, port: Option<u16>, limits: DynoLimits) -> DynoSpec {
        DynoSpec {
            name: name.into(),
            id: "paas.shop.test".into(),
            command: command.into(),
            port,
            env: vec![("GREETING".into(), "hi".into())],
            dir: std::env::temp_dir(),
            limits,
            launcher: None,
            errors: std::sync::Arc::new(DynoErrors::new("shop")),
        }
    }

    fn quick() -> DynoLimits {
        DynoLimits {
            boot_timeout: Duration::from_secs(10),
            exit_timeout: Duration::from_secs(5),
            memory_quota: 1 << 40,
            memory_check: Duration::from_millis(100),
            metrics_interval: None,
            log_rate: 0,
        }
    }

    fn shop() -> (Router, Emitter, Emitter) {
        let router = Router::new(RouterConfig::default(), Registry::in_memory());
        router.create_app("shop").unwrap();
        let app = router.emitter("shop", "app").unwrap();
        let platform = router.emitter("shop", "paas").unwrap();
        (router, app, platform)
    }

    /// Runs a dyno, stops it after `ms` milliseconds, and returns how it ended.
    async fn stop_after(spec: DynoSpec, app: Emitter, platform: Emitter, ms: u64) -> DynoExit {
        let (stop, rx) = watch::channel(false);
        let dyno = tokio::spawn(run(spec, app, platform, rx, |_| {}));
        tokio::time::sleep(Duration::from_millis(ms)).await;
        stop.send_replace(true);
        dyno.await.unwrap().unwrap()
    }

    async fn run_to_end(spec: DynoSpec, app: Emitter, platform: Emitter) -> DynoExit {
        let (_stop, rx) = watch::channel(false);
        run(spec, app, platform, rx, |_| {}).await.unwrap()
    }

    #[tokio::test]
    async fn a_worker_starts_logs_and_crashes_in_heroku_s_words() {
        let (router, app, platform) = shop();
        let command = "echo $GREETING from $DYNO; exit 3";
        let exit = run_to_end(spec("worker.1", command, None, quick()), app, platform).await;
        assert_eq!(exit, DynoExit::Exited(3));
        assert!(exit.crashed());
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
        let (router, app, platform) = shop();
        let port = free_port();
        // Listens on $PORT for one connection (the boot check), then exits cleanly.
        let command = "exec python3 -c 'import os,socket; s=socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); s.bind((\"127.0.0.1\", int(os.environ[\"PORT\"]))); s.listen(); print(\"listening\", flush=True); s.accept()'";
        let (_stop, rx) = watch::channel(false);
        let events = std::sync::Mutex::new(Vec::new());
        let exit = run(
            spec("web.1", command, Some(port), quick()),
            app,
            platform,
            rx,
            |e| events.lock().unwrap().push(e),
        )
        .await
        .unwrap();
        assert_eq!(exit, DynoExit::Exited(0));
        let events = events.into_inner().unwrap();
        assert!(matches!(events[..], [DynoEvent::Started(pid), DynoEvent::Up] if pid > 0));
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
        let (router, app, platform) = shop();
        let limits = DynoLimits {
            boot_timeout: Duration::from_millis(300),
            ..quick()
        };
        let spec = spec("web.1", "sleep 30", Some(free_port()), limits);
        let errors = spec.errors.clone();
        let exit = run_to_end(spec, app, platform).await;
        assert_eq!(exit, DynoExit::BootTimeout);
        // The one emit wrote the line and counted it.
        assert_eq!(errors.count("R10"), 1);
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

    #[tokio::test]
    async fn a_stop_is_sigterm_and_a_dyno_that_ignores_it_gets_r12_then_sigkill() {
        let (router, app, platform) = shop();
        let limits = DynoLimits {
            exit_timeout: Duration::from_millis(400),
            ..quick()
        };
        // The shell ignores SIGTERM and so does the sleep it starts in the background.
        let command = "trap '' TERM; sleep 30 & wait";
        let exit = stop_after(spec("worker.1", command, None, limits), app, platform, 200).await;
        assert!(matches!(exit, DynoExit::Stopped(_)), "{exit:?}");
        assert!(!exit.crashed());
        let got = lines(&router);
        let at = |l: &str| {
            got.iter()
                .position(|g| g == l)
                .unwrap_or_else(|| panic!("{l} not in {got:?}"))
        };
        assert!(
            at("paas[worker.1]: Stopping all processes with SIGTERM")
                < at(
                    "paas[worker.1]: Error R12 (Exit timeout) -> At least one process failed to exit within 0 seconds of SIGTERM"
                )
        );
        assert!(at("paas[worker.1]: Stopping remaining processes with SIGKILL") < got.len() - 1);
        assert!(
            got.last()
                .unwrap()
                .starts_with("paas[worker.1]: Process exited with status ")
        );
    }

    #[tokio::test]
    async fn a_stop_that_is_obeyed_is_a_clean_exit() {
        let (router, app, platform) = shop();
        assert_eq!(
            stop_after(
                spec("worker.1", "sleep 30", None, quick()),
                app,
                platform,
                200
            )
            .await,
            DynoExit::Stopped(143)
        );
        let got = lines(&router);
        assert!(!got.iter().any(|l| l.contains("R12")), "{got:?}");
        assert_eq!(
            got.last().unwrap(),
            "paas[worker.1]: Process exited with status 143"
        );
    }

    #[tokio::test]
    async fn memory_over_the_quota_is_r14_and_over_twice_it_r15() {
        let (router, app, platform) = shop();
        // `sleep` uses about a megabyte: a quota of 1 KiB is vastly exceeded at once.
        let limits = DynoLimits {
            memory_quota: 1024,
            metrics_interval: Some(Duration::from_millis(50)),
            ..quick()
        };
        let exit = run_to_end(spec("worker.1", "sleep 30", None, limits), app, platform).await;
        assert_eq!(exit, DynoExit::MemoryExceeded);
        assert!(exit.crashed());
        let got = lines(&router);
        let tail: Vec<&str> = got.iter().rev().take(4).rev().map(String::as_str).collect();
        assert_eq!(
            tail,
            [
                "paas[worker.1]: Error R15 (Memory quota vastly exceeded)",
                "paas[worker.1]: Stopping process with SIGKILL",
                "paas[worker.1]: Process exited with status 137",
                "paas[worker.1]: State changed from up to crashed",
            ]
        );

        // Between the quota and twice it: R14, told but not acted on. The quota is two
        // thirds of what the same command measures.
        let mut probe = std::process::Command::new("sh");
        use std::os::unix::process::CommandExt as _;
        let mut probe = probe
            .args(["-c", "sleep 30"])
            .process_group(0)
            .spawn()
            .unwrap();
        tokio::time::sleep(Duration::from_millis(200)).await;
        let used = procfs::group(probe.id(), None).rss;
        probe.kill().unwrap();
        let _ = probe.wait();
        let (router, app, platform) = shop();
        let limits = DynoLimits {
            memory_quota: used * 2 / 3,
            ..quick()
        };
        let spec = spec("worker.1", "sleep 30", None, limits);
        let errors = spec.errors.clone();
        assert_eq!(
            stop_after(spec, app, platform, 600).await,
            DynoExit::Stopped(143)
        );
        let got = lines(&router);
        assert!(
            got.contains(&"paas[worker.1]: Error R14 (Memory quota exceeded)".to_owned()),
            "{got:?}"
        );
        let told = got.iter().filter(|l| l.contains("Error R14")).count() as u64;
        // Checked every 100 ms for 600 ms, told once: at most once a metrics interval (an
        // hour here), however many checks find it over.
        assert_eq!(told, 1, "{got:?}");
        assert_eq!(errors.count("R14"), told, "the stream and the count agree");
        assert!(!got.iter().any(|l| l.contains("R15")), "{got:?}");
    }
}
