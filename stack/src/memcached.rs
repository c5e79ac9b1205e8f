//! The memcached add-on (the seeds' memory cache): `paas up --memcached` runs the real
//! memcached (Debian's `memcached`), supervised (restarted after an exit, one second, doubling
//! to a minute, after a failure), on loopback with UDP off, points the dynos'
//! `MEMCACHE_SERVERS` and `MEMCACHIER_SERVERS` at it, and every metrics interval reads its
//! `stats` and writes Heroku add-on-style lines into the app's stream as `app[memcached]`
//! (`source=memcached sample#memcached.hits=… sample#memcached.misses=…
//! sample#memcached.evictions=… sample#memcached.bytes=… sample#memcached.connections=…`).
//! Supervising the real server rather than serving its protocol in-process: its behaviour
//! (eviction, slab classes, the binary and meta protocols) is what apps were written against,
//! and a client's bugs are not ours to reproduce.

use std::net::SocketAddr;
use std::time::Duration;

use logplex::Emitter;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::process::Command;
use tokio::sync::watch;

/// The add-on's settings.
#[derive(Clone, Debug)]
pub struct MemcachedConfig {
    /// Where it listens (loopback).
    pub addr: SocketAddr,
    /// Its memory, in MiB.
    pub memory_mb: u64,
    /// Its most connections.
    pub max_connections: u32,
    /// How often its figures go into the stream (zero: never).
    pub interval: Duration,
}

/// What `stats` says, as the add-on line gives it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    pub hits: u64,
    pub misses: u64,
    pub evictions: u64,
    pub bytes: u64,
    pub connections: u64,
}

impl Stats {
    /// The add-on line.
    pub fn line(&self) -> String {
        format!(
            "source=memcached sample#memcached.hits={} sample#memcached.misses={} \
             sample#memcached.evictions={} sample#memcached.bytes={}bytes \
             sample#memcached.connections={}",
            self.hits, self.misses, self.evictions, self.bytes, self.connections
        )
    }

    /// Reads `STAT name value` lines (the answer to `stats`, up to `END`).
    pub fn parse<'a>(lines: impl IntoIterator<Item = &'a str>) -> Stats {
        let mut stats = Stats::default();
        for line in lines {
            let mut words = line.split_ascii_whitespace();
            let (Some("STAT"), Some(name), Some(value)) =
                (words.next(), words.next(), words.next())
            else {
                continue;
            };
            let Ok(value) = value.parse::<u64>() else {
                continue;
            };
            match name {
                "get_hits" => stats.hits = value,
                "get_misses" => stats.misses = value,
                "evictions" => stats.evictions = value,
                "bytes" => stats.bytes = value,
                "curr_connections" => stats.connections = value,
                _ => {}
            }
        }
        stats
    }
}

/// Asks the memcached at `addr` for its `stats` (within two seconds).
pub async fn stats(addr: SocketAddr) -> std::io::Result<Stats> {
    let ask = async {
        let mut stream = TcpStream::connect(addr).await?;
        stream.write_all(b"stats\r\n").await?;
        let mut lines = BufReader::new(stream).lines();
        let mut answer = Vec::new();
        while let Some(line) = lines.next_line().await? {
            if line == "END" || answer.len() > 1000 {
                break;
            }
            answer.push(line);
        }
        Ok(Stats::parse(answer.iter().map(String::as_str)))
    };
    tokio::time::timeout(Duration::from_secs(2), ask)
        .await
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "memcached stats"))?
}

/// Runs memcached under `config` until `stop` holds `true`, restarting it when it exits, and
/// writes its figures into `addon` (the app's `app` source, process `memcached`) and its
/// starts and exits into `platform` (the app's `paas` source).
pub async fn supervise(
    config: MemcachedConfig,
    addon: Emitter,
    platform: Emitter,
    mut stop: watch::Receiver<bool>,
) {
    let samples = tokio::spawn(sample(config.clone(), addon, stop.clone()));
    let mut delay = Duration::from_secs(1);
    while !*stop.borrow() {
        let started = std::time::Instant::now();
        let mut command = Command::new("memcached");
        // memcached will not run as root: as root, it runs as `nobody`.
        if rustix::process::geteuid().is_root() {
            command.args(["-u", "nobody"]);
        }
        let child = command
            .args(["-l", &config.addr.ip().to_string()])
            .args(["-p", &config.addr.port().to_string()])
            .args(["-U", "0"])
            .args(["-m", &config.memory_mb.to_string()])
            .args(["-c", &config.max_connections.to_string()])
            .kill_on_drop(true)
            .spawn();
        let mut child = match child {
            Ok(child) => child,
            Err(e) => {
                let _ = platform.try_emit(
                    "memcached",
                    format!("Error starting memcached (is Debian's memcached installed?): {e}"),
                );
                break;
            }
        };
        let _ = platform.try_emit(
            "memcached",
            format!(
                "Starting memcached on {} with {} MB",
                config.addr, config.memory_mb
            ),
        );
        let exited = tokio::select! {
            status = child.wait() => status.ok(),
            _ = stop.wait_for(|s| *s) => None,
        };
        let Some(status) = exited else {
            let _ = child.kill().await;
            break;
        };
        let _ = platform.try_emit(
            "memcached",
            format!("memcached exited: {status}; restarting"),
        );
        // A run that lasted a minute starts the back-off again.
        if started.elapsed() > Duration::from_secs(60) {
            delay = Duration::from_secs(1);
        }
        tokio::select! {
            () = tokio::time::sleep(delay) => {}
            _ = stop.wait_for(|s| *s) => break,
        }
        delay = (delay * 2).min(Duration::from_secs(60));
    }
    samples.abort();
}

/// Writes the add-on line every interval while memcached answers.
async fn sample(config: MemcachedConfig, addon: Emitter, mut stop: watch::Receiver<bool>) {
    if config.interval.is_zero() {
        return;
    }
    let mut every = tokio::time::interval(config.interval);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    every.tick().await;
    loop {
        tokio::select! {
            _ = every.tick() => {}
            _ = stop.wait_for(|s| *s) => return,
        }
        if let Ok(stats) = stats(config.addr).await {
            let _ = addon.try_emit("memcached", stats.line());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stats_are_read_and_told_as_an_add_on_line() {
        let stats = Stats::parse([
            "STAT pid 7",
            "STAT get_hits 12",
            "STAT get_misses 3",
            "STAT evictions 0",
            "STAT bytes 4096",
            "STAT curr_connections 2",
            "STAT junk not-a-number",
            "garbage",
        ]);
        assert_eq!(
            stats.line(),
            "source=memcached sample#memcached.hits=12 sample#memcached.misses=3 \
             sample#memcached.evictions=0 sample#memcached.bytes=4096bytes \
             sample#memcached.connections=2"
        );
    }
}
