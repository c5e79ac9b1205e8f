//! What `/proc` says of a dyno: the processes of its process group, their resident and swapped
//! memory and their CPU time, summed (a dyno is its command and everything it started), and the
//! host's load average.

use std::time::Duration;

/// A dyno's processes, summed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GroupStats {
    /// Processes in the group.
    pub processes: usize,
    /// Resident memory, bytes.
    pub rss: u64,
    /// Swapped-out memory, bytes.
    pub swap: u64,
    /// User and system CPU time.
    pub cpu: Duration,
}

/// The page size and clock tick Linux reports `/proc/<pid>/stat` in (4 KiB and 100 Hz on every
/// platform we run on; `getconf` would need a process or libc).
const PAGE: u64 = 4096;
const TICKS_PER_SECOND: u64 = 100;

/// Sums the processes whose process group is `pgid`, but for `skip` (the platform's own
/// launcher, which is not the app's to pay for).
pub fn group(pgid: u32, skip: Option<u32>) -> GroupStats {
    let mut stats = GroupStats::default();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return stats;
    };
    for entry in dir.flatten() {
        let name = entry.file_name();
        let Some(pid) = name.to_str().and_then(|n| n.parse::<u32>().ok()) else {
            continue;
        };
        if Some(pid) == skip {
            continue;
        }
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        let Some(fields) = StatFields::parse(&stat) else {
            continue;
        };
        if fields.pgrp != pgid {
            continue;
        }
        stats.processes += 1;
        stats.rss += fields.rss_pages * PAGE;
        stats.cpu += Duration::from_millis((fields.utime + fields.stime) * 1000 / TICKS_PER_SECOND);
        if let Ok(status) = std::fs::read_to_string(format!("/proc/{pid}/status")) {
            stats.swap += vm_swap(&status);
        }
    }
    stats
}

/// Whether any process of group `pgid` is still alive (zombies count as gone).
pub fn group_alive(pgid: u32) -> bool {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return false;
    };
    dir.flatten().any(|entry| {
        entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
            .and_then(|pid| std::fs::read_to_string(format!("/proc/{pid}/stat")).ok())
            .and_then(|stat| StatFields::parse(&stat))
            .is_some_and(|f| f.pgrp == pgid && f.state != 'Z')
    })
}

/// The host's load averages over 1, 5 and 15 minutes.
pub fn load_average() -> Option<[f64; 3]> {
    let text = std::fs::read_to_string("/proc/loadavg").ok()?;
    let mut it = text.split_ascii_whitespace().map(|s| s.parse::<f64>().ok());
    Some([it.next()??, it.next()??, it.next()??])
}

/// The fields of `/proc/<pid>/stat` used here.
#[derive(Debug, PartialEq, Eq)]
struct StatFields {
    state: char,
    pgrp: u32,
    utime: u64,
    stime: u64,
    rss_pages: u64,
}

impl StatFields {
    /// `pid (comm) state ppid pgrp …`: the command may hold spaces and parentheses, so fields
    /// are counted from the last `)`.
    fn parse(stat: &str) -> Option<StatFields> {
        let after = &stat[stat.rfind(')')? + 1..];
        let f: Vec<&str> = after.split_ascii_whitespace().collect();
        // After the command: state is field 3 of the man page, so f[0]; pgrp is 5 (f[2]);
        // utime 14 (f[11]); stime 15 (f[12]); rss 24 (f[21]).
        Some(StatFields {
            state: f.first()?.chars().next()?,
            pgrp: f.get(2)?.parse().ok()?,
            utime: f.get(11)?.parse().ok()?,
            stime: f.get(12)?.parse().ok()?,
            rss_pages: f.get(21)?.parse().ok()?,
        })
    }
}

/// `VmSwap:      123 kB` in `/proc/<pid>/status`, in bytes.
fn vm_swap(status: &str) -> u64 {
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmSwap:"))
        .and_then(|v| v.split_ascii_whitespace().next()?.parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_are_counted_from_the_command_s_last_parenthesis() {
        let stat = "4242 (my (odd) cmd) S 1 4240 4240 0 -1 4194304 100 0 0 0 250 50 0 0 20 0 1 0 \
                    123 10000000 2048 18446744073709551615";
        assert_eq!(
            StatFields::parse(stat),
            Some(StatFields {
                state: 'S',
                pgrp: 4240,
                utime: 250,
                stime: 50,
                rss_pages: 2048,
            })
        );
        assert_eq!(StatFields::parse("4242 (truncated"), None);
        assert_eq!(StatFields::parse("4242 (x) S 1"), None);
    }

    #[test]
    fn swap_is_read_in_kilobytes() {
        assert_eq!(vm_swap("Name:\tx\nVmSwap:\t     12 kB\n"), 12 * 1024);
        assert_eq!(vm_swap("Name:\tx\n"), 0);
    }

    #[test]
    fn a_real_process_group_is_measured() {
        let mut child = std::process::Command::new("sleep")
            .arg("5")
            .process_group(0)
            .spawn()
            .unwrap();
        let pgid = child.id();
        let stats = group(pgid, None);
        assert_eq!(stats.processes, 1);
        assert!(stats.rss > 0, "{stats:?}");
        assert_eq!(group(pgid, Some(pgid)).processes, 0);
        assert!(group_alive(pgid));
        child.kill().unwrap();
        child.wait().unwrap();
        assert!(!group_alive(pgid));
        assert!(load_average().is_some());
    }

    use std::os::unix::process::CommandExt as _;
}
