//! The subcommands, one module each: `up` (everything), `logfmt` (a local tool), `logplex`
//! (the router alone), the API clients `apps`, `tokens`, `logs`, `drains`, `ps` (with `scale`
//! and `restart`), and `example` (the example app's processes).

mod apps;
mod cache;
mod client;
mod cluster;
mod config;
mod drains;
mod dyno_run;
mod example;
mod import;
mod keys;
mod logfmt;
mod logplex;
mod logs;
mod metrics;
mod pg;
mod ps;
mod query;
mod tokens;
mod up;

use std::process::ExitCode;

/// Every `paas` subcommand.
#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Run everything in one process: the router, the proxy and routing mesh, and an app's
    /// dynos (the example app unless --app-dir names one).
    Up(Box<up::Args>),
    /// Show an app's dynos: state, since when, restarts.
    Ps(client::AppListArgs),
    /// Change how many dynos of each process type run: `paas scale web=3 worker=1`.
    #[command(alias = "ps:scale")]
    Scale(ps::ScaleArgs),
    /// Restart a dyno (`web.1`), a process type (`web`), or every dyno.
    #[command(alias = "ps:restart")]
    Restart(ps::RestartArgs),
    /// Stop a dyno (`web.1`) or every dyno of a type (`web`); the formation still asks for
    /// them, so they start again (as on Heroku).
    #[command(name = "ps:stop", alias = "ps:kill")]
    PsStop(ps::StopArgs),
    /// Show the app's database: size, tables, connections, the pool's figures.
    #[command(name = "pg:info")]
    PgInfo(client::AppListArgs),
    /// Run psql against the app's database, through the adapter, as the app's user.
    #[command(name = "pg:psql")]
    PgPsql(pg::PsqlArgs),
    /// The example app's processes (what its Procfile runs).
    #[command(name = "example-app", hide = true)]
    ExampleApp(example::Args),
    /// Runs a dyno's command for `paas up`, dying with it.
    #[command(name = "dyno-run", hide = true)]
    DynoRun(dyno_run::Args),
    /// Read logfmt lines and print them as JSON or coloured for a terminal, optionally
    /// filtered (`--where 'status>=500 service>1s'`).
    Logfmt(logfmt::Args),
    /// Run the log router alone: syslog TCP/TLS/UDP and HTTP ingest, history, tails, the API.
    Logplex(Box<logplex::Args>),
    /// Show an app's logs: history, then live lines with --tail.
    Logs(logs::Args),
    /// List apps.
    Apps(apps::ListArgs),
    /// Create an app and print its ingest token.
    #[command(name = "apps:create")]
    AppsCreate(apps::CreateArgs),
    /// Show an app.
    #[command(name = "apps:info")]
    AppsInfo(apps::InfoArgs),
    /// Delete an app, its tokens, keys and history.
    #[command(name = "apps:destroy")]
    AppsDestroy(apps::DestroyArgs),
    /// Show an app's ingest and delivery counters.
    #[command(name = "apps:stats")]
    AppsStats(apps::InfoArgs),
    /// List an app's ingest tokens.
    Tokens(tokens::ListArgs),
    /// Create an ingest token whose lines carry the source NAME.
    #[command(name = "tokens:create")]
    TokensCreate(tokens::CreateArgs),
    /// Replace an ingest token with a new one (the old stops working).
    #[command(name = "tokens:rotate")]
    TokensRotate(tokens::TokenArgs),
    /// Revoke an ingest token.
    #[command(name = "tokens:revoke")]
    TokensRevoke(tokens::TokenArgs),
    /// Ask an app's kept lines a question: `paas query -a shop --since 1h 'status>=500 | count by path'`.
    Query(query::Args),
    /// Rebuild an app's query index from the lines it keeps (after an error names a damaged
    /// index file).
    #[command(name = "index:rebuild")]
    IndexRebuild(apps::InfoArgs),
    /// A live RED view of an app: requests/s by status class, error codes, p50/p95/p99
    /// service time, memory per dyno, refreshed every second (`--once`, `--json`).
    Metrics(metrics::Args),
    /// Show the cluster this router is a node of: nodes, their lag, the stream, the drains'
    /// shared consumers, NATS and PostgreSQL health.
    Cluster(cluster::Args),
    /// Index log files an app already has (heroku logs output, RFC 5424, bare logfmt), each
    /// line with its own time, for `paas query`.
    Import(import::Args),
    /// Show the HTTP cache's counters: objects, bytes, hits, misses, evictions.
    Cache(cache::ShowArgs),
    /// Purge the HTTP cache: everything, a path (`/a?b`), or a prefix (`/assets/*`).
    #[command(name = "cache:purge")]
    CachePurge(cache::PurgeArgs),
    /// Show an app's config vars (`--shell` for KEY='value' lines).
    Config(config::ShowArgs),
    /// Print one config var's value.
    #[command(name = "config:get")]
    ConfigGet(config::GetArgs),
    /// Set config vars (`KEY=VALUE`…): a new release, the dynos restarted one at a time.
    #[command(name = "config:set")]
    ConfigSet(config::SetArgs),
    /// Remove config vars: a new release, the dynos restarted one at a time.
    #[command(name = "config:unset")]
    ConfigUnset(config::UnsetArgs),
    /// List an app's releases, newest first.
    Releases(client::AppListArgs),
    /// Show a release (the current one by default) and its config vars.
    #[command(name = "releases:info")]
    ReleasesInfo(config::ReleaseArgs),
    /// Roll back to a release's config vars (the one before the current by default).
    #[command(name = "releases:rollback")]
    ReleasesRollback(config::ReleaseArgs),
    /// List an app's drains with their delivery health.
    Drains(client::AppListArgs),
    /// Add a drain: syslog://, syslog+tls://, syslog+udp://, relp:// or https:// URL.
    #[command(name = "drains:add")]
    DrainsAdd(drains::AddArgs),
    /// Remove a drain by URL, token or id.
    #[command(name = "drains:remove")]
    DrainsRemove(drains::RemoveArgs),
    /// List API keys: every key, or with -a an app's (ids and last four characters only).
    Keys(keys::ListArgs),
    /// Create an API key: one that sees one app only with -a, else an operator key.
    #[command(name = "keys:create")]
    KeysCreate(keys::CreateArgs),
    /// Revoke an API key by id: it stops working at once.
    #[command(name = "keys:revoke")]
    KeysRevoke(keys::KeyArgs),
    /// Replace an API key with a new one of the same scope (the old stops working).
    #[command(name = "keys:rotate")]
    KeysRotate(keys::KeyArgs),
}

pub fn run(command: Command) -> anyhow::Result<ExitCode> {
    match command {
        Command::Up(args) => up::run(*args),
        Command::Ps(args) => ps::ps(args),
        Command::Scale(args) => ps::scale(args),
        Command::Restart(args) => ps::restart(args),
        Command::PsStop(args) => ps::stop(args),
        Command::PgInfo(args) => pg::info(args),
        Command::PgPsql(args) => pg::psql(args),
        Command::ExampleApp(args) => example::run(args),
        Command::DynoRun(args) => dyno_run::run(args),
        Command::Logfmt(args) => logfmt::run(args),
        Command::Logplex(args) => logplex::run(*args),
        Command::Logs(args) => logs::run(args),
        Command::Apps(args) => apps::list(args),
        Command::AppsCreate(args) => apps::create(args),
        Command::AppsInfo(args) => apps::info(args),
        Command::AppsDestroy(args) => apps::destroy(args),
        Command::AppsStats(args) => apps::stats(args),
        Command::IndexRebuild(args) => apps::rebuild_index(args),
        Command::Tokens(args) => tokens::list(args),
        Command::TokensCreate(args) => tokens::create(args),
        Command::TokensRotate(args) => tokens::rotate(args),
        Command::TokensRevoke(args) => tokens::revoke(args),
        Command::Keys(args) => keys::list(args),
        Command::KeysCreate(args) => keys::create(args),
        Command::KeysRevoke(args) => keys::revoke(args),
        Command::KeysRotate(args) => keys::rotate(args),
        Command::Query(args) => query::run(args),
        Command::Metrics(args) => metrics::run(args),
        Command::Cluster(args) => cluster::run(args),
        Command::Import(args) => import::run(args),
        Command::Cache(args) => cache::show(args),
        Command::CachePurge(args) => cache::purge(args),
        Command::Config(args) => config::show(args),
        Command::ConfigGet(args) => config::get(args),
        Command::ConfigSet(args) => config::set(args),
        Command::ConfigUnset(args) => config::unset(args),
        Command::Releases(args) => config::releases(args),
        Command::ReleasesInfo(args) => config::info(args),
        Command::ReleasesRollback(args) => config::rollback(args),
        Command::Drains(args) => drains::list(args),
        Command::DrainsAdd(args) => drains::add(args),
        Command::DrainsRemove(args) => drains::remove(args),
    }
}

/// The async runtime of the commands that need one.
pub fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?)
}
