//! A dyno's runtime metrics, as Heroku's log-runtime-metrics writes them every 20 s:
//!
//! ```text
//! source=web.1 dyno=paas.hello.3f2a… sample#load_avg_1m=0.12 sample#load_avg_5m=0.08 sample#load_avg_15m=0.05
//! source=web.1 dyno=paas.hello.3f2a… sample#memory_total=21.00MB sample#memory_rss=20.50MB sample#memory_swap=0.50MB sample#memory_quota=512.00MB sample#cpu_time=1.23s sample#cpu_percent=0.40
//! ```
//!
//! Memory and CPU are the dyno's own (its process group, from `/proc`); the load average is
//! the host's, as every dyno shares it here. Heroku's `memory_cache` and `memory_pgpgin/out`
//! come from a container's cgroup and have no per-process equivalent, so they are not written.
//! The same figures decide the memory verdicts: over the quota R14, over twice it R15.

use std::time::{Duration, Instant};

use crate::dyno::procfs::GroupStats;

/// Where a dyno's memory stands against its quota.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MemoryVerdict {
    /// Within the quota.
    Within,
    /// Over it: R14 (logged only).
    Exceeded,
    /// Over twice it: R15 (the dyno is restarted).
    VastlyExceeded,
}

/// One dyno's metrics writer: remembers the last CPU reading to give a percentage.
#[derive(Debug)]
pub struct RuntimeMetrics {
    source: String,
    dyno: String,
    quota: u64,
    last_cpu: Option<(Duration, Instant)>,
}

const MB: f64 = (1 << 20) as f64;

impl RuntimeMetrics {
    /// Metrics of the dyno `source` (`web.1`), run `dyno`, under `quota` bytes.
    pub fn new(source: &str, dyno: &str, quota: u64) -> Self {
        RuntimeMetrics {
            source: source.to_owned(),
            dyno: dyno.to_owned(),
            quota,
            last_cpu: None,
        }
    }

    /// The verdict on `stats` (resident + swap against the quota).
    pub fn check(&self, stats: GroupStats) -> MemoryVerdict {
        let used = stats.rss + stats.swap;
        if used > self.quota.saturating_mul(2) {
            MemoryVerdict::VastlyExceeded
        } else if used > self.quota {
            MemoryVerdict::Exceeded
        } else {
            MemoryVerdict::Within
        }
    }

    /// The two lines for this reading.
    pub fn lines(&mut self, stats: GroupStats, load: Option<[f64; 3]>) -> Vec<String> {
        let head = format!("source={} dyno={}", self.source, self.dyno);
        let mut lines = Vec::with_capacity(2);
        if let Some([one, five, fifteen]) = load {
            lines.push(format!(
                "{head} sample#load_avg_1m={one:.2} sample#load_avg_5m={five:.2} sample#load_avg_15m={fifteen:.2}"
            ));
        }
        let now = Instant::now();
        let percent = self.last_cpu.map(|(cpu, at)| {
            let wall = now.duration_since(at).as_secs_f64();
            if wall > 0.0 {
                stats.cpu.saturating_sub(cpu).as_secs_f64() / wall * 100.0
            } else {
                0.0
            }
        });
        self.last_cpu = Some((stats.cpu, now));
        let mut memory = format!(
            "{head} sample#memory_total={:.2}MB sample#memory_rss={:.2}MB sample#memory_swap={:.2}MB sample#memory_quota={:.2}MB sample#cpu_time={:.2}s",
            (stats.rss + stats.swap) as f64 / MB,
            stats.rss as f64 / MB,
            stats.swap as f64 / MB,
            self.quota as f64 / MB,
            stats.cpu.as_secs_f64(),
        );
        if let Some(p) = percent {
            memory.push_str(&format!(" sample#cpu_percent={p:.2}"));
        }
        lines.push(memory);
        lines
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stats(rss_mb: u64, swap_mb: u64, cpu_ms: u64) -> GroupStats {
        GroupStats {
            processes: 1,
            rss: rss_mb << 20,
            swap: swap_mb << 20,
            cpu: Duration::from_millis(cpu_ms),
        }
    }

    #[test]
    fn verdicts_against_the_quota_count_swap() {
        let m = RuntimeMetrics::new("web.1", "paas.shop.1", 100 << 20);
        assert_eq!(m.check(stats(100, 0, 0)), MemoryVerdict::Within);
        assert_eq!(m.check(stats(90, 20, 0)), MemoryVerdict::Exceeded);
        assert_eq!(m.check(stats(150, 51, 0)), MemoryVerdict::VastlyExceeded);
    }

    /// The boundaries to the byte (issue 17: `>` made `>=` stayed green): at the quota and at
    /// exactly twice it, the lower verdict; one byte over, the next.
    #[test]
    fn verdicts_change_one_byte_past_the_quota_and_past_twice_it() {
        let quota = 100 << 20;
        let m = RuntimeMetrics::new("web.1", "paas.shop.1", quota);
        let at = |rss: u64, swap: u64| {
            m.check(GroupStats {
                processes: 1,
                rss,
                swap,
                cpu: Duration::ZERO,
            })
        };
        assert_eq!(at(quota, 0), MemoryVerdict::Within);
        assert_eq!(at(quota, 1), MemoryVerdict::Exceeded);
        assert_eq!(at(2 * quota - 7, 7), MemoryVerdict::Exceeded);
        assert_eq!(at(2 * quota, 1), MemoryVerdict::VastlyExceeded);
        assert_eq!(at(2 * quota + 1, 0), MemoryVerdict::VastlyExceeded);
    }

    #[test]
    fn lines_in_log_runtime_metrics_shape_parse_as_logfmt() {
        let mut m = RuntimeMetrics::new("web.1", "paas.shop.1", 512 << 20);
        let lines = m.lines(stats(20, 1, 1500), Some([0.5, 0.25, 0.125]));
        assert_eq!(
            lines,
            [
                "source=web.1 dyno=paas.shop.1 sample#load_avg_1m=0.50 sample#load_avg_5m=0.25 sample#load_avg_15m=0.12",
                "source=web.1 dyno=paas.shop.1 sample#memory_total=21.00MB sample#memory_rss=20.00MB sample#memory_swap=1.00MB sample#memory_quota=512.00MB sample#cpu_time=1.50s",
            ]
        );
        // The second reading has a CPU percentage over the time between them.
        let again = m.lines(stats(20, 1, 1500), None);
        assert_eq!(again.len(), 1);
        assert!(again[0].ends_with(" sample#cpu_percent=0.00"), "{again:?}");
        for line in lines.iter().chain(&again) {
            assert_eq!(logfmt::validate(line.as_bytes()), Ok(()), "{line}");
            assert!(
                logfmt::metrics(line.as_bytes()).all(|m| m.is_ok()),
                "{line}"
            );
        }
    }
}
