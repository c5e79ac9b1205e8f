//! The dyno manager: an app's formation (dynos per process type), a supervisor per dyno that
//! runs it, restarts it when it crashes (at once the first time, then with a doubling delay,
//! as Heroku does), and stops it with SIGTERM when the formation shrinks or the platform stops;
//! `scale` and `restart` act on a running app. Web dynos that are up are in the routing mesh.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use logplex::{Emitter, Timestamp};
use tokio::sync::{Notify, watch};
use tokio::task::JoinHandle;

use crate::dyno::errors::{DynoError, DynoErrors};
use crate::dyno::process::{self, DynoEvent, DynoLimits, DynoSpec};
use crate::dyno::procfile::Procfile;
use crate::mesh::Mesh;

/// How the manager runs dynos.
#[derive(Clone, Debug)]
pub struct ManagerConfig {
    /// Each dyno's timeouts and quotas.
    pub limits: DynoLimits,
    /// The delay before the second restart of a dyno that keeps crashing; it doubles with each
    /// further crash (the first restart is at once).
    pub restart_delay: Duration,
    /// The longest delay between restarts.
    pub restart_delay_max: Duration,
    /// A dyno up this long has its run of crashes forgotten.
    pub stable_after: Duration,
    /// What runs each dyno's command (see `DynoSpec::launcher`).
    pub launcher: Option<PathBuf>,
}

impl Default for ManagerConfig {
    fn default() -> Self {
        ManagerConfig {
            limits: DynoLimits::default(),
            restart_delay: Duration::from_secs(1),
            restart_delay_max: Duration::from_secs(300),
            stable_after: Duration::from_secs(60),
            launcher: None,
        }
    }
}

/// The app a manager runs.
#[derive(Clone, Debug)]
pub struct AppSpec {
    /// The app's name.
    pub name: String,
    /// Where its processes run.
    pub dir: PathBuf,
    /// Its process types.
    pub procfile: Procfile,
    /// Config vars every dyno gets (with `DATABASE_URL` when a database is attached).
    pub env: Vec<(String, String)>,
    /// Dynos per type at start.
    pub formation: BTreeMap<String, usize>,
}

/// A dyno's state, in Heroku's words.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DynoState {
    /// Started, not yet up (a web dyno binding its port).
    Starting,
    /// Running (a web dyno accepts connections).
    Up,
    /// Ended on its own or killed; waiting to be restarted.
    Crashed,
    /// Being stopped (SIGTERM sent).
    Stopping,
}

impl DynoState {
    fn word(self) -> &'static str {
        match self {
            DynoState::Starting => "starting",
            DynoState::Up => "up",
            DynoState::Crashed => "crashed",
            DynoState::Stopping => "down",
        }
    }
}

/// One dyno as `ps` shows it.
#[derive(Clone, Debug, serde::Serialize)]
pub struct DynoInfo {
    /// `web.1`.
    pub name: String,
    /// `web`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Its current run's id (`paas.hello.…`).
    pub id: String,
    /// The Procfile command.
    pub command: String,
    /// Its state.
    pub state: DynoState,
    /// When it entered that state.
    pub updated_at: Timestamp,
    /// When the dyno was first started.
    pub created_at: Timestamp,
    /// Seconds in the current state.
    pub state_seconds: u64,
    /// Times it was restarted after a crash.
    pub restarts: u32,
    /// Its process group, while it runs.
    pub pid: Option<u32>,
    /// Its port (web dynos).
    pub port: Option<u16>,
}

/// Why a formation change or a restart was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ManagerError {
    /// The Procfile has no such process type.
    #[error("no such process type {0} in the Procfile")]
    NoSuchType(String),
    /// No such dyno.
    #[error("no such dyno {0}")]
    NoSuchDyno(String),
    /// The platform is stopping.
    #[error("the app is stopping")]
    Stopping,
}

#[derive(Debug)]
struct Dyno {
    key: u64,
    kind: String,
    number: usize,
    id: String,
    state: DynoState,
    since: (Instant, Timestamp),
    created_at: Timestamp,
    restarts: u32,
    pid: Option<u32>,
    port: Option<u16>,
    /// Set when the formation no longer has it: it is stopping for good.
    leaving: bool,
    /// Set by a restart request; the supervisor starts it again after the stop.
    restart: bool,
    stop: watch::Sender<bool>,
}

impl Dyno {
    fn name(&self) -> String {
        format!("{}.{}", self.kind, self.number)
    }
}

#[derive(Debug, Default)]
struct State {
    formation: BTreeMap<String, usize>,
    dynos: Vec<Dyno>,
    next_key: u64,
    stopping: bool,
    tasks: Vec<JoinHandle<()>>,
}

#[derive(Debug)]
struct Inner {
    app: AppSpec,
    config: ManagerConfig,
    output: Emitter,
    platform: Emitter,
    mesh: Arc<Mesh>,
    /// The app's R-codes so far (each dyno's spec shares it).
    errors: Arc<DynoErrors>,
    state: Mutex<State>,
    changed: Notify,
    /// The environment each dyno starts with (the app's, then its config vars); replaced by
    /// a config change, read at each (re)start.
    env: Mutex<Vec<(String, String)>>,
}

/// Runs an app's dynos. Cheap to clone.
#[derive(Clone, Debug)]
pub struct DynoManager {
    inner: Arc<Inner>,
}

impl DynoManager {
    /// Starts the app's formation. `output` carries the dynos' own lines (`app`), `platform`
    /// their life (`paas`); web dynos that are up go into `mesh`.
    pub fn start(
        app: AppSpec,
        config: ManagerConfig,
        output: Emitter,
        platform: Emitter,
        mesh: Arc<Mesh>,
    ) -> Result<DynoManager, ManagerError> {
        for kind in app.formation.keys() {
            if app.procfile.command(kind).is_none() {
                return Err(ManagerError::NoSuchType(kind.clone()));
            }
        }
        let formation = app.formation.clone();
        let env = Mutex::new(app.env.clone());
        let manager = DynoManager {
            inner: Arc::new(Inner {
                errors: Arc::new(DynoErrors::new(&app.name)),
                app,
                config,
                output,
                platform,
                mesh,
                state: Mutex::new(State::default()),
                changed: Notify::new(),
                env,
            }),
        };
        for (kind, quantity) in formation {
            manager.scale(&kind, quantity)?;
        }
        Ok(manager)
    }

    /// The app's R-codes so far, for `/metrics` (`paas_dyno_errors_total{app,code}`).
    pub fn errors(&self) -> &Arc<DynoErrors> {
        &self.inner.errors
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.inner.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn say(&self, dyno: &str, message: String) {
        let _ = self.inner.platform.try_emit(dyno, message);
    }

    /// The app's name.
    pub fn app(&self) -> &str {
        &self.inner.app.name
    }

    /// The Procfile's types with their commands and quantities, in Procfile order.
    pub fn formation(&self) -> Vec<(String, String, usize)> {
        let state = self.lock();
        self.inner
            .app
            .procfile
            .types()
            .iter()
            .map(|t| {
                let quantity = state.formation.get(&t.name).copied().unwrap_or(0);
                (t.name.clone(), t.command.clone(), quantity)
            })
            .collect()
    }

    /// The dynos, by type and number.
    pub fn dynos(&self) -> Vec<DynoInfo> {
        let state = self.lock();
        let mut out: Vec<DynoInfo> = state
            .dynos
            .iter()
            .map(|d| DynoInfo {
                name: d.name(),
                kind: d.kind.clone(),
                id: d.id.clone(),
                command: self
                    .inner
                    .app
                    .procfile
                    .command(&d.kind)
                    .unwrap_or_default()
                    .to_owned(),
                state: if d.leaving {
                    DynoState::Stopping
                } else {
                    d.state
                },
                updated_at: d.since.1,
                created_at: d.created_at,
                state_seconds: d.since.0.elapsed().as_secs(),
                restarts: d.restarts,
                pid: d.pid,
                port: d.port,
            })
            .collect();
        out.sort_by(|a, b| (&a.kind, a.name.len(), &a.name).cmp(&(&b.kind, b.name.len(), &b.name)));
        out
    }

    /// Sets the number of `kind` dynos: starts the missing ones, stops (SIGTERM) the extra.
    pub fn scale(&self, kind: &str, quantity: usize) -> Result<(), ManagerError> {
        let Some(command) = self.inner.app.procfile.command(kind) else {
            return Err(ManagerError::NoSuchType(kind.to_owned()));
        };
        let command = command.to_owned();
        let mut state = self.lock();
        if state.stopping {
            return Err(ManagerError::Stopping);
        }
        state.formation.insert(kind.to_owned(), quantity);
        for d in state.dynos.iter_mut() {
            if d.kind == kind && d.number > quantity && !d.leaving {
                d.leaving = true;
                let name = d.name();
                if let Some(port) = d.port {
                    self.inner.mesh.set_down(&name, addr(port));
                }
                self.say(
                    &name,
                    format!("State changed from {} to down", d.state.word()),
                );
                d.stop.send_replace(true);
            }
        }
        for number in 1..=quantity {
            let present = state
                .dynos
                .iter()
                .any(|d| d.kind == kind && d.number == number && !d.leaving);
            if !present {
                let key = state.next_key;
                state.next_key += 1;
                let (stop, stopped) = watch::channel(false);
                let now = (Instant::now(), Timestamp::now());
                state.dynos.push(Dyno {
                    key,
                    kind: kind.to_owned(),
                    number,
                    id: String::new(),
                    state: DynoState::Starting,
                    since: now,
                    created_at: now.1,
                    restarts: 0,
                    pid: None,
                    port: None,
                    leaving: false,
                    restart: false,
                    stop,
                });
                let manager = self.clone();
                let command = command.clone();
                let kind = kind.to_owned();
                state.tasks.push(tokio::spawn(async move {
                    manager.supervise(key, kind, number, command, stopped).await;
                }));
            }
        }
        state.tasks.retain(|t| !t.is_finished());
        self.refresh_mesh(&state);
        drop(state);
        self.inner.changed.notify_waiters();
        Ok(())
    }

    /// Restarts one dyno (`web.1`), every dyno of a type (`web`), or all (`None`).
    pub fn restart(&self, which: Option<&str>) -> Result<usize, ManagerError> {
        let mut state = self.lock();
        if state.stopping {
            return Err(ManagerError::Stopping);
        }
        let mut n = 0;
        for d in state.dynos.iter_mut().filter(|d| !d.leaving) {
            let name = d.name();
            if which.is_some_and(|w| w != name && w != d.kind) {
                continue;
            }
            n += 1;
            d.restart = true;
            // No new requests for a dyno on its way down (the others keep serving).
            if let Some(port) = d.port {
                self.inner.mesh.set_down(&name, addr(port));
            }
            let _ = self.inner.platform.try_emit(&name, "Restarting");
            if d.state != DynoState::Starting {
                let _ = self.inner.platform.try_emit(
                    &name,
                    format!("State changed from {} to starting", d.state.word()),
                );
            }
            d.stop.send_replace(true);
        }
        if n == 0 && which.is_some() {
            return Err(ManagerError::NoSuchDyno(
                which.unwrap_or_default().to_owned(),
            ));
        }
        Ok(n)
    }

    fn env(&self) -> Vec<(String, String)> {
        self.inner
            .env
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Replaces the environment dynos start with from now on (a config change); running
    /// dynos keep theirs until restarted.
    pub fn set_env(&self, env: Vec<(String, String)>) {
        *self.inner.env.lock().unwrap_or_else(|p| p.into_inner()) = env;
    }

    /// Restarts every dyno one at a time, each waited for until it is up again (at most
    /// `each`), so that with two or more web dynos the app keeps serving; how many were
    /// restarted.
    pub async fn restart_rolling(&self, each: Duration) -> usize {
        let before = self.dynos();
        let mut n = 0;
        for dyno in &before {
            if self.restart(Some(&dyno.name)).is_err() {
                continue;
            }
            n += 1;
            let (name, id) = (&dyno.name, &dyno.id);
            self.wait_for(each, |now| {
                now.iter()
                    .any(|d| d.name == *name && d.id != *id && d.state == DynoState::Up)
            })
            .await;
        }
        n
    }

    /// Stops every dyno (SIGTERM, SIGKILL past the exit timeout) and waits for them.
    pub async fn stop(&self) {
        let tasks = {
            let mut state = self.lock();
            state.stopping = true;
            for d in state.dynos.iter_mut() {
                let name = d.name();
                if !d.leaving {
                    d.leaving = true;
                    self.say(
                        &name,
                        format!("State changed from {} to down", d.state.word()),
                    );
                }
                if let Some(port) = d.port {
                    self.inner.mesh.set_down(&name, addr(port));
                }
                d.stop.send_replace(true);
            }
            std::mem::take(&mut state.tasks)
        };
        for task in tasks {
            let _ = task.await;
        }
    }

    /// Waits until `done` holds for the dynos, or `timeout` passes; whether it held.
    pub async fn wait_for(&self, timeout: Duration, done: impl Fn(&[DynoInfo]) -> bool) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let changed = self.inner.changed.notified();
            if done(&self.dynos()) {
                return true;
            }
            if tokio::time::timeout_at(deadline, changed).await.is_err() {
                return done(&self.dynos());
            }
        }
    }

    /// Updates the dyno with `key`, then the mesh, then wakes whoever waits.
    fn update(&self, key: u64, f: impl FnOnce(&mut Dyno)) {
        let mut state = self.lock();
        if let Some(d) = state.dynos.iter_mut().find(|d| d.key == key) {
            f(d);
        }
        self.refresh_mesh(&state);
        drop(state);
        self.inner.changed.notify_waiters();
    }

    fn set_state(&self, key: u64, to: DynoState) {
        self.update(key, |d| {
            d.state = to;
            d.since = (Instant::now(), Timestamp::now());
        });
    }

    /// Tells the mesh how many web dynos are booting, and whether they crashed.
    fn refresh_mesh(&self, state: &State) {
        let web = state.dynos.iter().filter(|d| d.kind == "web" && !d.leaving);
        let (mut booting, mut crashed) = (0, false);
        for d in web {
            match d.state {
                DynoState::Starting => booting += 1,
                DynoState::Crashed => crashed = true,
                _ => {}
            }
        }
        self.inner.mesh.set_booting(booting);
        self.inner.mesh.set_crashed(crashed);
    }

    /// Runs one dyno until the formation lets it go: restarts after crashes (with the
    /// back-off) and after restart requests.
    async fn supervise(
        self,
        key: u64,
        kind: String,
        number: usize,
        command: String,
        mut stopped: watch::Receiver<bool>,
    ) {
        let name = format!("{kind}.{number}");
        let config = &self.inner.config;
        let mut crashes: u32 = 0;
        loop {
            let port = (kind == "web").then(free_port).flatten();
            let id = format!("paas.{}.{}", self.inner.app.name, uuid::Uuid::new_v4());
            self.update(key, |d| {
                d.port = port;
                d.id = id.clone();
                d.pid = None;
                d.state = DynoState::Starting;
                d.since = (Instant::now(), Timestamp::now());
            });
            if kind == "web" && port.is_none() {
                let error = DynoError::Platform {
                    detail: "no free port for the dyno".into(),
                };
                error.emit(&self.inner.errors, |line| self.say(&name, line));
            }
            let spec = DynoSpec {
                name: name.clone(),
                id,
                command: command.clone(),
                port,
                env: self.env(),
                dir: self.inner.app.dir.clone(),
                limits: config.limits.clone(),
                launcher: config.launcher.clone(),
                errors: self.inner.errors.clone(),
            };
            let this = self.clone();
            let web_name = name.clone();
            let on_event = move |event: DynoEvent| match event {
                DynoEvent::Started(pid) => this.update(key, |d| d.pid = Some(pid)),
                DynoEvent::Up => {
                    // Into the mesh before it stops counting the dyno as booting, so that a
                    // request in between finds it rather than none (H14).
                    let leaving = this
                        .lock()
                        .dynos
                        .iter()
                        .any(|d| d.key == key && (d.leaving || d.restart));
                    if let (Some(port), false) = (port, leaving) {
                        this.inner.mesh.set_up(&web_name, addr(port));
                    }
                    this.set_state(key, DynoState::Up);
                }
            };
            let ran_from = Instant::now();
            let exit = process::run(
                spec,
                self.inner.output.clone(),
                self.inner.platform.clone(),
                stopped.clone(),
                on_event,
            )
            .await;
            if let Some(port) = port {
                self.inner.mesh.set_down(&name, addr(port));
            }
            if let Err(e) = exit {
                self.say(
                    &name,
                    format!("Error R99 (Platform error) -> could not start: {e}"),
                );
            }
            match self.after_run(key) {
                Next::Leave => return self.remove(key),
                Next::Restart => {
                    crashes = 0;
                    continue;
                }
                Next::Crashed => {}
            }
            // It ended by itself: crashed, then restarted after the back-off.
            self.set_state(key, DynoState::Crashed);
            let delay;
            (crashes, delay) = backoff(crashes, ran_from.elapsed(), config);
            tokio::select! {
                _ = tokio::time::sleep(delay) => {}
                () = crate::proxy::server::until_true(&mut stopped) => {}
            }
            match self.after_run(key) {
                Next::Leave => return self.remove(key),
                Next::Restart => {}
                Next::Crashed => {
                    self.update(key, |d| d.restarts += 1);
                    self.say(&name, "State changed from crashed to starting".into());
                }
            }
        }
    }

    /// What follows a run: the dyno leaves, starts again (a restart was asked for), or crashed.
    fn after_run(&self, key: u64) -> Next {
        let mut state = self.lock();
        let stopping = state.stopping;
        let Some(d) = state.dynos.iter_mut().find(|d| d.key == key) else {
            return Next::Leave;
        };
        d.pid = None;
        if d.leaving || stopping {
            Next::Leave
        } else if std::mem::take(&mut d.restart) {
            d.stop.send_replace(false);
            Next::Restart
        } else {
            Next::Crashed
        }
    }

    fn remove(&self, key: u64) {
        let mut state = self.lock();
        state.dynos.retain(|d| d.key != key);
        self.refresh_mesh(&state);
        drop(state);
        self.inner.changed.notify_waiters();
    }
}

enum Next {
    Leave,
    Restart,
    Crashed,
}

fn addr(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

/// A loopback port that was free a moment ago.
fn free_port() -> Option<u16> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").ok()?;
    Some(listener.local_addr().ok()?.port())
}

/// After a crash: the dyno's crashes in a row (forgotten after `stable_after` up) and the
/// delay before its restart: none the first time, then `restart_delay` doubling with each
/// further crash, up to `restart_delay_max`.
fn backoff(crashes: u32, ran_for: Duration, config: &ManagerConfig) -> (u32, Duration) {
    let crashes = if ran_for >= config.stable_after {
        1
    } else {
        crashes.saturating_add(1)
    };
    let delay = match crashes {
        1 => Duration::ZERO,
        n => config
            .restart_delay
            .saturating_mul(1 << (n - 2).min(16))
            .min(config.restart_delay_max),
    };
    (crashes, delay)
}

#[cfg(test)]
mod tests {
    use super::*;
    use logplex::{Registry, Router, RouterConfig};

    use crate::dyno::output::tests::shown;

    fn manager(
        procfile: &str,
        formation: &[(&str, usize)],
        config: ManagerConfig,
    ) -> (Router, DynoManager, Arc<Mesh>) {
        let router = Router::new(RouterConfig::default(), Registry::in_memory());
        router.create_app("shop").unwrap();
        let mesh = Arc::new(Mesh::default());
        let manager = DynoManager::start(
            AppSpec {
                name: "shop".into(),
                dir: std::env::temp_dir(),
                procfile: Procfile::parse(procfile).unwrap(),
                env: vec![],
                formation: formation.iter().map(|(k, n)| (k.to_string(), *n)).collect(),
            },
            config,
            router.emitter("shop", "app").unwrap(),
            router.emitter("shop", "paas").unwrap(),
            mesh.clone(),
        )
        .unwrap();
        (router, manager, mesh)
    }

    fn quick() -> ManagerConfig {
        ManagerConfig {
            limits: DynoLimits {
                exit_timeout: Duration::from_secs(2),
                metrics_interval: None,
                ..DynoLimits::default()
            },
            restart_delay: Duration::from_millis(300),
            ..ManagerConfig::default()
        }
    }

    fn names(dynos: &[DynoInfo]) -> Vec<(String, DynoState)> {
        dynos.iter().map(|d| (d.name.clone(), d.state)).collect()
    }

    #[tokio::test]
    async fn scaling_starts_and_stops_dynos_in_order() {
        let (router, m, _) = manager(
            "worker: sleep 30\nclock: sleep 30\n",
            &[("worker", 2)],
            quick(),
        );
        let two_up = |d: &[DynoInfo]| d.len() == 2 && d.iter().all(|d| d.state == DynoState::Up);
        assert!(
            m.wait_for(Duration::from_secs(5), two_up).await,
            "{:?}",
            m.dynos()
        );
        assert_eq!(
            m.formation(),
            [
                ("worker".into(), "sleep 30".into(), 2),
                ("clock".into(), "sleep 30".into(), 0)
            ]
        );
        assert_eq!(
            m.scale("nosuch", 1),
            Err(ManagerError::NoSuchType("nosuch".into()))
        );
        m.scale("worker", 1).unwrap();
        assert!(m.wait_for(Duration::from_secs(5), |d| d.len() == 1).await);
        assert_eq!(names(&m.dynos()), [("worker.1".into(), DynoState::Up)]);
        let lines = shown(&router);
        for expected in [
            "paas[worker.2]: State changed from up to down",
            "paas[worker.2]: Stopping all processes with SIGTERM",
            "paas[worker.2]: Process exited with status 143",
        ] {
            assert!(
                lines.contains(&expected.to_owned()),
                "{expected} not in {lines:?}"
            );
        }
        m.stop().await;
        assert!(m.dynos().is_empty());
        assert_eq!(m.scale("worker", 1), Err(ManagerError::Stopping));
    }

    /// Restarts after crashes: at once, then 1, 2, 4 s … up to the cap, and the count
    /// forgotten once the dyno stayed up a minute.
    #[test]
    fn restart_back_off_doubles_to_its_cap_and_resets_after_a_minute_up() {
        let config = ManagerConfig::default();
        let s = Duration::from_secs;
        let quick = s(1);
        let mut crashes = 0;
        let mut delays = Vec::new();
        for _ in 0..12 {
            let delay;
            (crashes, delay) = backoff(crashes, quick, &config);
            delays.push(delay.as_secs());
        }
        assert_eq!(delays, [0, 1, 2, 4, 8, 16, 32, 64, 128, 256, 300, 300]);
        // Up for just under a minute: the count goes on; a minute: it starts again.
        assert_eq!(backoff(crashes, s(59), &config), (13, s(300)));
        assert_eq!(backoff(crashes, s(60), &config), (1, Duration::ZERO));
        assert_eq!(backoff(1, quick, &config), (2, s(1)));
        // A huge count does not overflow.
        assert_eq!(backoff(u32::MAX, quick, &config).1, s(300));
    }

    #[tokio::test]
    async fn a_crashing_dyno_is_restarted_at_once_then_with_a_growing_delay() {
        let (router, m, mesh) = manager("web: exit 1\n", &[("web", 1)], quick());
        let restarted_twice = |d: &[DynoInfo]| d.first().is_some_and(|d| d.restarts >= 2);
        let start = Instant::now();
        assert!(
            m.wait_for(Duration::from_secs(5), restarted_twice).await,
            "{:?}",
            m.dynos()
        );
        // The first restart is at once, the second after the delay.
        assert!(
            start.elapsed() >= Duration::from_millis(300),
            "{:?}",
            start.elapsed()
        );
        let lines = shown(&router);
        assert!(
            lines.contains(&"paas[web.1]: State changed from crashed to starting".to_owned()),
            "{lines:?}"
        );
        // While it is crashed, the mesh says so (H10 to requests).
        assert!(
            m.wait_for(Duration::from_secs(5), |d| d[0].state == DynoState::Crashed)
                .await
        );
        assert_eq!(
            mesh.pick(Duration::from_millis(10)).await.unwrap_err(),
            crate::errors::ProxyError::AppCrashed
        );
        m.stop().await;
    }

    #[tokio::test]
    async fn a_restart_stops_and_starts_the_dyno_again() {
        let (router, m, _) = manager("worker: sleep 30\n", &[("worker", 1)], quick());
        assert!(
            m.wait_for(Duration::from_secs(5), |d| d
                .first()
                .is_some_and(|d| d.state == DynoState::Up))
                .await
        );
        let first = m.dynos()[0].id.clone();
        assert_eq!(m.restart(Some("worker.1")), Ok(1));
        assert_eq!(
            m.restart(Some("web.1")),
            Err(ManagerError::NoSuchDyno("web.1".into()))
        );
        let again = |d: &[DynoInfo]| {
            d.first()
                .is_some_and(|d| d.state == DynoState::Up && d.id != first)
        };
        assert!(
            m.wait_for(Duration::from_secs(5), again).await,
            "{:?}",
            m.dynos()
        );
        assert_eq!(m.dynos()[0].restarts, 0);
        let lines = shown(&router);
        let at = |l: &str| {
            lines
                .iter()
                .position(|g| g == l)
                .unwrap_or_else(|| panic!("{l} not in {lines:?}"))
        };
        assert!(
            at("paas[worker.1]: Restarting")
                < at("paas[worker.1]: Stopping all processes with SIGTERM")
        );
        assert_eq!(
            lines
                .iter()
                .filter(|l| l.contains("Starting process"))
                .count(),
            2
        );
        m.stop().await;
    }
}
