//! `paas up`: the whole platform in one process: the router (listeners, API, drains), the
//! proxy and routing mesh, and an app's dynos (the example app unless `--app-dir` names one),
//! in the foreground until Ctrl-C or SIGTERM; then the proxy stops accepting, the dynos get
//! SIGTERM (SIGKILL past the exit timeout), and the router saves its history.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use serde_json::Value;
use stack::cache::{CacheConfig, HttpCache};
use stack::{
    Addon, AddonsApi, AppSpec, ConfigLimits, ConfigVars, DynoApi, DynoLimits, DynoManager,
    ManagerConfig, Mesh, Procfile, Proxy, ProxyConfig, ReleaseLog, ReleaseStore, ReleasesApi,
};

use crate::commands::logplex::{RouterArgs, Started, Termination, secs, start};
use crate::commands::pg::{DatabaseArgs, attach as attach_database};

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    router: RouterArgs,
    /// The app's directory: a Procfile, and optionally app.json (formation and env). Default:
    /// the example app, built into paas.
    #[arg(long, value_name = "DIR")]
    app_dir: Option<PathBuf>,
    /// The app's name (default: app.json's name, else the directory's).
    #[arg(long)]
    name: Option<String>,
    /// The proxy's HTTP port; 0 picks a free one.
    #[arg(long, default_value_t = 5000)]
    http_port: u16,
    /// The proxy's HTTPS port (HTTP/2 and HTTP/1.1; a self-signed certificate for localhost
    /// unless --tls-cert and --tls-key are given); 0 picks a free one.
    #[arg(long, default_value_t = 5443)]
    https_port: u16,
    /// Dynos per process type, over app.json's formation (repeatable): `--scale web=2`.
    #[arg(long = "scale", value_name = "TYPE=N")]
    scale: Vec<String>,
    /// A config var every dyno gets (repeatable): `--env GREETING=hi`.
    #[arg(long = "env", short = 'e', value_name = "KEY=VALUE")]
    env: Vec<String>,
    #[command(flatten)]
    database: DatabaseArgs,
    /// Seconds a web dyno may take to bind its port (R10).
    #[arg(long, default_value_t = 60.0)]
    boot_timeout: f64,
    /// Seconds a dyno may take to exit after SIGTERM before SIGKILL (R12).
    #[arg(long, default_value_t = 30.0)]
    exit_timeout: f64,
    /// Memory quota per dyno in MB (R14 past it; R15 and a restart past twice it).
    #[arg(long, default_value_t = 512)]
    memory_quota_mb: u64,
    /// Seconds between memory checks.
    #[arg(long, default_value_t = 5.0)]
    memory_check: f64,
    /// Seconds between runtime metric lines per dyno; 0: none.
    #[arg(long, default_value_t = 20.0)]
    metrics_interval: f64,
    /// Lines a second each dyno's stdout (and stderr) may write before reading pauses (its
    /// writes then wait), so that one dyno cannot take the app's whole rate budget; 0: no limit.
    #[arg(long, default_value_t = 100_000)]
    dyno_log_rate: u64,
    /// Seconds before the second restart of a crashing dyno (doubling after).
    #[arg(long, default_value_t = 1.0)]
    restart_delay: f64,
    /// Seconds to connect to a dyno (H19).
    #[arg(long, default_value_t = 5.0)]
    connect_timeout: f64,
    /// Seconds from a request reaching the dyno to its response's first byte (H12).
    #[arg(long, default_value_t = 30.0)]
    request_timeout: f64,
    /// Seconds either side of a request may stay quiet (H15, H28).
    #[arg(long, default_value_t = 55.0)]
    http_idle_timeout: f64,
    /// Seconds a client has to send a whole request head, from its first byte (the first
    /// request's: from the connection's accept, a TLS handshake included); past it the
    /// connection is closed. 10 s is ample for any real client's head (a few KiB) and keeps a
    /// slow-header client (slowloris) from pinning a connection and its buffer for long.
    #[arg(long, default_value_t = 10.0)]
    http_header_timeout: f64,
    /// Seconds a client connection with no request in flight is kept open (Heroku's Router
    /// 2.0 keeps idle keep-alive connections 90 s).
    #[arg(long, default_value_t = 90.0)]
    http_keepalive_timeout: f64,
    /// Largest request head in KiB (request line and headers; 431 past it; at least 16). With
    /// --http-max-pending-heads it bounds the memory slow heads can hold (64 KiB × 1024 = 64 MiB
    /// a listener by default). Vegur's own limits (8 KiB a line or header) give H25 below it.
    #[arg(long, default_value_t = 64)]
    http_max_head_kb: usize,
    /// Client connections the proxy keeps open at once, per listener (HTTP and HTTPS); one
    /// more is closed as soon as it is accepted, counted and told.
    #[arg(long, default_value_t = 10_000)]
    http_max_connections: usize,
    /// Client connections that have not yet sent their first whole request head, per listener;
    /// one more is closed as soon as it is accepted, counted and told.
    #[arg(long, default_value_t = 1024)]
    http_max_pending_heads: usize,
    /// Seconds requests wait for booting dynos (H20).
    #[arg(long, default_value_t = 75.0)]
    boot_wait: f64,
    /// Seconds a dyno that refused or timed out a connection is skipped.
    #[arg(long, default_value_t = 5.0)]
    skip_for: f64,
    /// Threads serving the proxy's requests, each accepting on its own (default: one a core).
    #[arg(long)]
    proxy_threads: Option<usize>,
    /// Session affinity: a client's requests go to the same web dyno (a cookie says which)
    /// while it can take them.
    #[arg(long)]
    session_affinity: bool,
    /// Memory for the HTTP cache between the proxy and the dynos, in MiB; 0 turns it off.
    /// Responses are stored as RFC 9111 lets a shared cache (an explicit max-age, s-maxage or
    /// Expires; not no-store, private, Set-Cookie or Vary: *).
    #[arg(long, default_value_t = 128)]
    cache_mb: u64,
    /// The largest response body the cache stores, in KiB; larger ones are streamed through.
    #[arg(long, default_value_t = 1024)]
    cache_max_object_kb: usize,
    /// Run the memcached add-on (Debian's memcached, supervised) for the app's dynos:
    /// MEMCACHE_SERVERS points at it, and its hits, misses, evictions, bytes and connections go
    /// into the stream as `app[memcached]` every --metrics-interval.
    #[arg(long)]
    memcached: bool,
    /// The memcached add-on's memory, in MiB.
    #[arg(long, default_value_t = 64)]
    memcached_mb: u64,
    /// The memcached add-on's port (0: a free one).
    #[arg(long, default_value_t = 0)]
    memcached_port: u16,
    /// Serve HTTP/1.x with hyper instead of the proxy's own forwarding path (slower; kept to
    /// compare against and to fall back to). HTTP/2 is served by hyper either way.
    #[arg(long)]
    proxy_hyper: bool,
    /// The source of the platform's lines about the app: `paas` (`paas[router]`,
    /// `paas[web.1]`, `paas[api]`), or `heroku` for tooling that matches Heroku's exact lines.
    #[arg(long, default_value = "paas", value_parser = ["paas", "heroku"])]
    platform_source: String,
    /// Config vars an app may have (`config:set` past it answers 422).
    #[arg(long, default_value_t = 500)]
    config_max_vars: usize,
    /// Bytes an app's config vars may take, names and values together (422 past it).
    #[arg(long, default_value_t = 32 << 10)]
    config_max_bytes: usize,
}

/// The app to run, read from its directory or the built-in example.
struct LoadedApp {
    name: String,
    dir: PathBuf,
    procfile: Procfile,
    formation: BTreeMap<String, usize>,
    /// app.json's env: the config vars of a new app's first release.
    env: Vec<(String, String)>,
    /// What every dyno gets under its config vars (`PATH`, `DATABASE_URL`).
    base_env: Vec<(String, String)>,
    /// app.json lists the heroku-postgresql add-on.
    wants_database: bool,
}

fn load_app(args: &Args, data_dir: &Path) -> anyhow::Result<LoadedApp> {
    let (procfile_text, app_json, dir, dir_name) = match &args.app_dir {
        Some(dir) => {
            let procfile = std::fs::read_to_string(dir.join("Procfile"))
                .with_context(|| format!("reading {}", dir.join("Procfile").display()))?;
            let app_json = match std::fs::read_to_string(dir.join("app.json")) {
                Ok(text) => Some(text),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
                Err(e) => return Err(e).context("reading app.json"),
            };
            let name = std::fs::canonicalize(dir)
                .ok()
                .and_then(|d| d.file_name().map(|n| n.to_string_lossy().to_lowercase()));
            (procfile, app_json, dir.clone(), name)
        }
        None => (
            example_app::PROCFILE.to_owned(),
            Some(example_app::APP_JSON.to_owned()),
            data_dir.join("apps/example"),
            None,
        ),
    };
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let procfile = Procfile::parse(&procfile_text)?;
    let json: Value = match &app_json {
        Some(text) => serde_json::from_str(text).context("app.json is not valid JSON")?,
        None => Value::Null,
    };
    let name = args
        .name
        .clone()
        .or_else(|| json["name"].as_str().map(str::to_owned))
        .or(dir_name)
        .unwrap_or_else(|| "app".to_owned());
    if !logplex::is_valid_app_name(&name) {
        bail!("{name:?} is not an app name (lowercase letters, digits and dashes); use --name");
    }
    let mut formation = BTreeMap::new();
    for t in procfile.types() {
        let from_json = json["formation"][&t.name]["quantity"].as_u64();
        let default = usize::from(t.name == "web");
        formation.insert(t.name.clone(), from_json.map_or(default, |q| q as usize));
    }
    for s in &args.scale {
        let (kind, n) = s.split_once('=').context("--scale takes TYPE=N")?;
        let n: usize = n
            .parse()
            .with_context(|| format!("--scale {s}: N is a number"))?;
        if procfile.command(kind).is_none() {
            bail!("--scale {s}: the Procfile has no {kind} process");
        }
        formation.insert(kind.to_owned(), n);
    }
    let mut env = Vec::new();
    if let Some(vars) = json["env"].as_object() {
        for (k, v) in vars {
            let value = v["value"].as_str().or(v.as_str()).unwrap_or_default();
            env.push((k.clone(), value.to_owned()));
        }
    }
    let wants_database = json["addons"].as_array().is_some_and(|addons| {
        addons.iter().any(|a| {
            a.as_str()
                .or_else(|| a["plan"].as_str())
                .is_some_and(|p| p.starts_with("heroku-postgresql"))
        })
    });
    // Dynos find `paas` (the example app's command) beside this binary, first on their PATH.
    let mut base_env = Vec::new();
    if let Some(bin) = std::env::current_exe()
        .ok()
        .and_then(|p| p.parent().map(Path::to_path_buf))
    {
        let path = std::env::var("PATH").unwrap_or_default();
        base_env.push(("PATH".to_owned(), format!("{}:{path}", bin.display())));
    }
    Ok(LoadedApp {
        name,
        dir,
        procfile,
        formation,
        env,
        base_env,
        wants_database,
    })
}

impl Args {
    fn manager(&self) -> anyhow::Result<ManagerConfig> {
        let metrics = secs(self.metrics_interval, "metrics-interval")?;
        Ok(ManagerConfig {
            limits: DynoLimits {
                boot_timeout: secs(self.boot_timeout, "boot-timeout")?,
                exit_timeout: secs(self.exit_timeout, "exit-timeout")?,
                memory_quota: self.memory_quota_mb.saturating_mul(1 << 20),
                memory_check: secs(self.memory_check, "memory-check")?
                    .max(Duration::from_millis(10)),
                metrics_interval: (!metrics.is_zero()).then_some(metrics),
                log_rate: self.dyno_log_rate,
            },
            restart_delay: secs(self.restart_delay, "restart-delay")?,
            // Each dyno through `paas dyno-run`, so that it dies with this process.
            launcher: std::env::current_exe().ok(),
            ..ManagerConfig::default()
        })
    }

    /// The proxy's settings; open connections get `grace` to finish at a stop.
    fn proxy(&self, grace: Duration) -> anyhow::Result<ProxyConfig> {
        let defaults = ProxyConfig::default();
        Ok(ProxyConfig {
            connect_timeout: secs(self.connect_timeout, "connect-timeout")?,
            response_timeout: secs(self.request_timeout, "request-timeout")?,
            idle_timeout: secs(self.http_idle_timeout, "http-idle-timeout")?,
            boot_wait: secs(self.boot_wait, "boot-wait")?,
            skip_for: secs(self.skip_for, "skip-for")?,
            threads: self.proxy_threads.unwrap_or(defaults.threads).max(1),
            affinity: self.session_affinity,
            shutdown_grace: grace,
            header_timeout: secs(self.http_header_timeout, "http-header-timeout")?,
            keepalive_timeout: secs(self.http_keepalive_timeout, "http-keepalive-timeout")?,
            max_head: self.http_max_head_kb.max(16).saturating_mul(1024),
            max_connections: self.http_max_connections,
            max_pending_heads: self.http_max_pending_heads,
            hyper_h1: self.proxy_hyper,
            ..defaults
        })
    }
}

/// The proxy's certificate: the given one, else a self-signed one for localhost kept in the
/// data directory (made on first start, so a client can trust it once).
fn proxy_tls(router: &RouterArgs, data_dir: &Path) -> anyhow::Result<(PathBuf, PathBuf, bool)> {
    if let Some((cert, key)) = router.tls() {
        return Ok((cert, key, false));
    }
    let dir = data_dir.join("tls");
    let (cert, key) = (dir.join("localhost.pem"), dir.join("localhost-key.pem"));
    if !cert.exists() || !key.exists() {
        std::fs::create_dir_all(&dir)?;
        let made = rcgen::generate_simple_self_signed(vec![
            "localhost".to_owned(),
            "127.0.0.1".to_owned(),
        ])
        .context("making a self-signed certificate")?;
        std::fs::write(&cert, made.cert.pem())?;
        write_private(&key, made.signing_key.serialize_pem().as_bytes())?;
    }
    Ok((cert, key, true))
}

pub(crate) fn write_private(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("writing {}", path.display()))?;
    f.write_all(bytes)?;
    Ok(())
}

/// The app's releases: in the data directory, or in a cluster the cluster's PostgreSQL (this
/// directory's `releases/{app}.json` imported once into an empty table for the app). v1 from
/// app.json's env for a new app; then each start's `--env` values that differ from the
/// current config vars make a release of their own.
async fn open_releases(
    args: &Args,
    data_dir: &Path,
    app: &LoadedApp,
    cluster: Option<(&cluster::Cluster, &logplex::Router)>,
) -> anyhow::Result<Arc<dyn ReleaseLog>> {
    let user = "operator@localhost";
    let initial: ConfigVars = app.env.iter().cloned().collect();
    let log: Arc<dyn ReleaseLog> = match cluster {
        None => Arc::new(ReleaseStore::open(
            Some(data_dir),
            &app.name,
            initial,
            user,
        )?),
        Some((node, router)) => {
            let id = router
                .app(&app.name)
                .with_context(|| format!("the cluster has no app {}", app.name))?
                .id;
            let local = ReleaseStore::read(data_dir, &app.name)?;
            let (log, imported) = node
                .releases(&id, &local, initial, user)
                .await
                .context("reading the app's releases from the cluster's database")?;
            if imported {
                println!(
                    "paas up: releases/{}.json imported into the cluster's database ({} releases)",
                    app.name,
                    local.len()
                );
            }
            log
        }
    };
    let mut env = Vec::new();
    for e in &args.env {
        let (k, v) = e.split_once('=').context("--env takes KEY=VALUE")?;
        env.push((k.to_owned(), v.to_owned()));
    }
    stack::make_release(&*log, user, |current| {
        let mut vars = current.clone();
        let mut set = Vec::new();
        for (k, v) in &env {
            if vars.get(k) != Some(v) {
                vars.insert(k.clone(), v.clone());
                set.push(k.clone());
            }
        }
        Ok((!set.is_empty()).then(|| (format!("Set {} config vars", set.join(", ")), vars)))
    })
    .await
    .map_err(|e| match e {
        stack::ChangeError::Invalid(why) => anyhow::anyhow!(why),
        stack::ChangeError::Store(e) => anyhow::Error::new(e).context("--env"),
    })?;
    Ok(log)
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    crate::commands::runtime()?.block_on(async {
        let mut termination = Termination::listen()?;
        let mut config = args.router.config()?;
        let data_dir = config.data_dir.clone();
        std::fs::create_dir_all(&data_dir)
            .with_context(|| format!("creating {}", data_dir.display()))?;
        // One `paas` a data directory, refused before anything there is written.
        config.data_lock = Some(Arc::new(logplex::DataDirLock::acquire(&data_dir)?));
        let app = load_app(&args, &data_dir)?;
        let bound = config.shutdown_timeout;
        let bind = config.bind;
        // The proxy's ports first: a port in use stops `paas up` before anything starts.
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let http = stack::bind_proxy_listener((bind, args.http_port).into())
            .with_context(|| format!("binding the proxy's HTTP port {}", args.http_port))?;
        let https = stack::bind_proxy_listener((bind, args.https_port).into())
            .with_context(|| format!("binding the proxy's HTTPS port {}", args.https_port))?;
        let (cert, key, self_signed) = proxy_tls(&args.router, &data_dir)?;
        let tls = logplex::tls_server_config(&cert, &key, &[b"h2", b"http/1.1"])?;
        let mut drains_config = args.router.drains()?;
        // One machine: its drains may reach receivers on loopback.
        for net in drains::AddressPolicy::LOOPBACK {
            drains_config.policy.allow(net);
        }
        let query = args.router.query_engine()?;
        let metrics = args.router.metrics()?;
        let Started {
            logplex,
            status,
            node,
        } = start(
            config,
            drains_config,
            query,
            metrics,
            args.router.cluster()?,
            "paas up",
            Some(&app.name),
        )
        .await?;
        let router = logplex.router().clone();
        match router.create_app(&app.name) {
            Ok(_) | Err(logplex::RegistryError::AppExists(_)) => {}
            Err(e) => return Err(e.into()),
        }
        let (Some(output), Some(platform)) = (
            router.emitter(&app.name, "app"),
            router.emitter(&app.name, &args.platform_source),
        ) else {
            bail!("the router has no channel for {}", app.name);
        };
        let mut app = app;
        let database = attach_database(
            &args.database,
            secs(args.metrics_interval, "metrics-interval")?,
            bind,
            &data_dir,
            &app.name,
            logplex::tls_server_config(&cert, &key, &[b"postgresql"])?,
            output.clone(),
        )
        .await?;
        if let Some(db) = &database {
            app.base_env
                .push(("DATABASE_URL".to_owned(), db.url.clone()));
        } else if app.wants_database {
            eprintln!(
                "paas up: app.json asks for heroku-postgresql; give --database-url to attach a database"
            );
        }
        // The memcached add-on: the dynos find it in MEMCACHE_SERVERS (and MEMCACHIER_SERVERS).
        let memcached = if args.memcached {
            let port = match args.memcached_port {
                0 => std::net::TcpListener::bind((bind, 0))?.local_addr()?.port(),
                port => port,
            };
            let addr = std::net::SocketAddr::from((bind, port));
            for name in ["MEMCACHE_SERVERS", "MEMCACHIER_SERVERS"] {
                app.base_env.push((name.to_owned(), addr.to_string()));
            }
            let config = stack::MemcachedConfig {
                addr,
                memory_mb: args.memcached_mb,
                max_connections: 1024,
                interval: secs(args.metrics_interval, "metrics-interval")?,
            };
            println!("paas up: memcached on {addr} ({} MB; MEMCACHE_SERVERS)", args.memcached_mb);
            Some(tokio::spawn(stack::supervise_memcached(
                config,
                output.clone(),
                platform.clone(),
                stopped.clone(),
            )))
        } else {
            None
        };
        let mesh = Arc::new(Mesh::default());
        let summary: Vec<String> = app
            .formation
            .iter()
            .map(|(k, n)| format!("{k}={n}"))
            .collect();
        let releases = open_releases(
            &args,
            &data_dir,
            &app,
            node.as_deref().map(|n| (n, &router)),
        )
        .await?;
        let running = releases.current();
        let vars = running.as_ref().map(|r| r.config_vars.clone()).unwrap_or_default();
        let manager = DynoManager::start(
            AppSpec {
                name: app.name.clone(),
                dir: app.dir.clone(),
                procfile: app.procfile.clone(),
                env: ReleasesApi::env_for(&app.base_env, &vars),
                formation: app.formation.clone(),
            },
            args.manager()?,
            output,
            platform.clone(),
            mesh.clone(),
        )?;
        logplex.api().register_metrics(manager.errors().clone());
        let api = DynoApi::default();
        api.add(manager.clone());
        logplex.api().register("formation", api.formation());
        logplex.api().register("formations", api.formation());
        logplex.api().register("dynos", api.dynos());
        let releases = ReleasesApi::new(
            releases,
            running.as_ref(),
            manager.clone(),
            app.base_env.clone(),
            platform.clone(),
            ConfigLimits {
                max_vars: args.config_max_vars,
                max_bytes: args.config_max_bytes,
            },
        );
        logplex.api().register("config-vars", releases.config_vars());
        logplex.api().register("releases", releases.releases());

        let cache = HttpCache::new(
            &app.name,
            CacheConfig {
                max_bytes: args.cache_mb.saturating_mul(1 << 20),
                max_object: args.cache_max_object_kb.saturating_mul(1 << 10),
            },
        );
        if let Some(cache) = &cache {
            logplex.api().register("cache", cache.resource());
            logplex.api().register_metrics(cache.clone());
        }
        stack_status(
            &status,
            &manager,
            cache.is_some(),
            database.as_ref().map(|db| db.database.stats()),
        );
        let proxy = Proxy::with_cache(mesh, platform, args.proxy(bound)?, cache);
        logplex.api().register_metrics(proxy.stats().clone());
        let (http_at, https_at) = (http.local_addr()?, https.local_addr()?);
        let serving = [
            tokio::spawn(proxy.clone().serve(http, None, stopped.clone())),
            tokio::spawn(proxy.serve(https, Some(tokio_rustls::TlsAcceptor::from(tls)), stopped)),
        ];
        let mut addons: Vec<Addon> = database
            .iter()
            .map(|_| Addon {
                service: "heroku-postgresql".to_owned(),
                plan: "heroku-postgresql:paas".to_owned(),
                config_vars: vec!["DATABASE_URL".to_owned()],
            })
            .collect();
        if memcached.is_some() {
            addons.push(Addon {
                service: "memcachier".to_owned(),
                plan: "memcachier:paas".to_owned(),
                config_vars: vec!["MEMCACHE_SERVERS".to_owned(), "MEMCACHIER_SERVERS".to_owned()],
            });
        }
        logplex
            .api()
            .register("addons", AddonsApi::resource(&app.name, addons));
        let database_serving = database.map(|db| {
            logplex.api().register_metrics(db.database.stats());
            logplex.api().register(
                "database",
                stack::DatabaseApi::new(db.database.clone(), db.addr),
            );
            println!(
                "paas up: database adapter on postgres://{} ({} pooling; `paas pg:info`, `paas pg:psql`)",
                db.addr,
                match db.database.config().mode {
                    stack::PoolMode::Transaction => "transaction",
                    stack::PoolMode::Session => "session",
                }
            );
            let listener = db.listener.into_std()?;
            anyhow::Ok(db.database.clone().serve_on_thread(listener, stop.subscribe())?)
        });
        let database_serving = database_serving.transpose()?;
        println!("paas up: app {} ({}) from {}", app.name, summary.join(" "), app.dir.display());
        println!("paas up: proxy on http://{http_at}");
        println!(
            "paas up: proxy on https://localhost:{} (HTTP/2){}",
            https_at.port(),
            if self_signed {
                format!(", self-signed certificate {}", cert.display())
            } else {
                String::new()
            }
        );
        println!("paas up: see the router's lines with `paas logs --source router --tail`, the dynos with `paas ps`");

        let why = termination.wait().await;
        println!("paas up: {why}, stopping");
        stop.send_replace(true);
        for s in serving {
            if let Ok(Err(e)) = s.await {
                eprintln!("paas up: the proxy stopped with an error: {e}");
            }
        }
        // The proxy and the dynos stop before the router, so their last lines (H-codes, state
        // changes, exit statuses) reach the stream; then the router closes its channels and
        // stops its components (the drains deliver what waits).
        manager.stop().await;
        if let Some(memcached) = memcached {
            let _ = memcached.await;
        }
        if let Some(thread) = database_serving {
            let _ = tokio::task::spawn_blocking(move || thread.join()).await;
        }
        logplex.stop().await;
        println!("paas up: stopped");
        Ok(ExitCode::SUCCESS)
    })
}

/// The status page's components the stack has: the proxy (degraded when no web dyno is up, so
/// that requests fail with H14 or H10), the dynos (degraded when one of the formation is not
/// up, or a type is scaled to none), and, when attached, the cache and the database adapter
/// (degraded for a minute after it could not reach PostgreSQL or a client waited out the
/// pool).
fn stack_status(
    status: &dashboard::StatusPage,
    manager: &DynoManager,
    cache: bool,
    database: Option<Arc<stack::DatabaseStats>>,
) {
    use dashboard::Health;
    let verdict = |ok: bool| if ok { Health::Up } else { Health::Degraded };
    let m = manager.clone();
    status.add("proxy", move || {
        let up = m
            .dynos()
            .iter()
            .any(|d| d.kind == "web" && d.state == stack::DynoState::Up);
        let web = m.formation().iter().any(|(kind, _, _)| kind == "web");
        verdict(up || !web)
    });
    let m = manager.clone();
    status.add("dynos", move || {
        let dynos = m.dynos();
        let complete = m.formation().iter().all(|(kind, _, wanted)| {
            (*wanted > 0 || kind != "web")
                && dynos
                    .iter()
                    .filter(|d| &d.kind == kind && d.state == stack::DynoState::Up)
                    .count()
                    >= *wanted
        });
        verdict(complete)
    });
    if cache {
        status.add("cache", || Health::Up);
    }
    if let Some(stats) = database {
        let failures = std::sync::Mutex::new((0u64, None::<std::time::Instant>));
        status.add("database", move || {
            use std::sync::atomic::Ordering::Relaxed;
            let now = stats.server_connect_errors.load(Relaxed) + stats.pool_timeouts.load(Relaxed);
            let mut seen = failures.lock().unwrap_or_else(|p| p.into_inner());
            if now > seen.0 {
                *seen = (now, Some(std::time::Instant::now()));
            }
            let recent = seen
                .1
                .is_some_and(|at| at.elapsed() < std::time::Duration::from_secs(60));
            verdict(!recent)
        });
    }
}
